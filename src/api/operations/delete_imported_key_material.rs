//! `DeleteImportedKeyMaterial`: deletes imported key material now (the current material unless
//! `KeyMaterialId` names another); the key waits in `PendingImport` for the same material.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{check_key_id, present, Operation};
use crate::api::validate::Checks;
use crate::model::is_material_id;
use crate::service::{Call, Kms, KmsResult};

pub struct DeleteImportedKeyMaterial;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    key_material_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_material_id: Option<String>,
}

impl Operation for DeleteImportedKeyMaterial {
    const NAME: &'static str = "DeleteImportedKeyMaterial";
    const READ_ONLY: bool = false;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        json!({ "keyId": r.key_id, "keyMaterialId": r.key_material_id })
    }

    fn audit_response(r: &Response) -> Value {
        json!({ "keyId": r.key_id, "keyMaterialId": r.key_material_id })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        c.len("keyMaterialId", r.key_material_id.as_deref(), 0, 64)
            .pattern(
                "keyMaterialId",
                r.key_material_id.as_deref(),
                |s| s.is_empty() || is_material_id(s),
                "^[a-f0-9]+$",
            );
        c.finish()?;
        let wanted = r.key_material_id.as_deref().filter(|s| !s.is_empty());
        let (key, material_id) = kms
            .import
            .delete_imported_key_material(call, &present(r.key_id)?, wanted)
            .await?;
        Ok(Response {
            key_id: key.arn,
            key_material_id: material_id,
        })
    }
}
