//! `ImportKeyMaterial`: imports wrapped key material into an EXTERNAL key (new material, or
//! the same material again), with its expiration.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{check_key_id, present, Operation};
use crate::api::shapes::Blob;
use crate::api::validate::Checks;
use crate::model::{is_material_id, ExpirationModel, ImportType};
use crate::service::import::NewImport;
use crate::service::{Call, Kms, KmsError, KmsResult};

pub struct ImportKeyMaterial;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    import_token: Option<Blob>,
    encrypted_key_material: Option<Blob>,
    valid_to: Option<f64>,
    expiration_model: Option<String>,
    import_type: Option<String>,
    key_material_description: Option<String>,
    key_material_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    key_id: String,
    key_material_id: String,
}

/// `KeyMaterialDescription`: `^[a-zA-Z0-9:/_\s.-]+$`.
fn is_description(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c.is_whitespace() || ":/_.-".contains(c))
}

impl Operation for ImportKeyMaterial {
    const NAME: &'static str = "ImportKeyMaterial";
    const READ_ONLY: bool = false;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        json!({
            "keyId": r.key_id,
            "validTo": r.valid_to,
            "expirationModel": r.expiration_model,
            "importType": r.import_type,
            "keyMaterialDescription": r.key_material_description,
            "keyMaterialId": r.key_material_id,
        })
    }

    fn audit_response(r: &Response) -> Value {
        json!({ "keyId": r.key_id, "keyMaterialId": r.key_material_id })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        c.required("importToken", &r.import_token)
            .required("encryptedKeyMaterial", &r.encrypted_key_material)
            .blob_len(
                "importToken",
                r.import_token.as_ref().map(|b| b.0.as_slice()),
                1,
                6144,
            )
            .blob_len(
                "encryptedKeyMaterial",
                r.encrypted_key_material.as_ref().map(|b| b.0.as_slice()),
                1,
                6144,
            );
        let model = c.enum_value(
            "expirationModel",
            r.expiration_model.as_deref(),
            ExpirationModel::parse,
            ExpirationModel::wire_list(),
        );
        let import_type = c.enum_value(
            "importType",
            r.import_type.as_deref(),
            ImportType::parse,
            ImportType::wire_list(),
        );
        c.len(
            "keyMaterialDescription",
            r.key_material_description.as_deref(),
            0,
            256,
        )
        .pattern(
            "keyMaterialDescription",
            r.key_material_description.as_deref(),
            is_description,
            "^[a-zA-Z0-9:/_\\s.-]+$",
        )
        .len("keyMaterialId", r.key_material_id.as_deref(), 64, 64)
        .pattern(
            "keyMaterialId",
            r.key_material_id.as_deref(),
            is_material_id,
            "^[a-f0-9]+$",
        );
        c.finish()?;
        let valid_to = match r.valid_to {
            None => None,
            Some(t) => Some(
                DateTime::<Utc>::from_timestamp_millis((t * 1000.0) as i64)
                    .filter(|_| t.is_finite())
                    .ok_or_else(|| KmsError::Validation("ValidTo is not a valid date.".into()))?,
            ),
        };
        let (key, material_id) = kms
            .import
            .import_key_material(
                call,
                &present(r.key_id)?,
                NewImport {
                    import_token: present(r.import_token)?.0,
                    encrypted_key_material: present(r.encrypted_key_material)?.0,
                    expiration_model: model,
                    valid_to,
                    import_type,
                    description: r.key_material_description,
                    key_material_id: r.key_material_id,
                },
            )
            .await?;
        Ok(Response {
            key_id: key.arn,
            key_material_id: material_id,
        })
    }
}
