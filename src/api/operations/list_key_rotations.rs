//! `ListKeyRotations`: completed rotations, oldest first (Limit 1-1000, default 100); with
//! `IncludeKeyMaterial=ALL_KEY_MATERIAL` every key material (the first and pending ones too),
//! with its `KeyMaterialId`, state and, for imported material, import state and expiry.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{check_key_id, check_limit, check_marker, present, Operation};
use crate::api::shapes::epoch_opt;
use crate::api::validate::Checks;
use crate::model::IncludeKeyMaterial;
use crate::service::{Call, Kms, KmsResult};

pub struct ListKeyRotations;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    include_key_material: Option<String>,
    limit: Option<i64>,
    marker: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Entry {
    key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_material_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_material_description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    import_state: Option<&'static str>,
    key_material_state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiration_model: Option<&'static str>,
    #[serde(serialize_with = "epoch_opt", skip_serializing_if = "Option::is_none")]
    valid_to: Option<DateTime<Utc>>,
    #[serde(serialize_with = "epoch_opt", skip_serializing_if = "Option::is_none")]
    rotation_date: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rotation_type: Option<&'static str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    rotations: Vec<Entry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_marker: Option<String>,
    truncated: bool,
}

impl Operation for ListKeyRotations {
    const NAME: &'static str = "ListKeyRotations";
    const READ_ONLY: bool = true;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        json!({
            "keyId": r.key_id,
            "includeKeyMaterial": r.include_key_material,
            "limit": r.limit,
            "marker": r.marker,
        })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        check_limit(&mut c, r.limit, 1000);
        check_marker(&mut c, &r.marker);
        let include = c.enum_value(
            "includeKeyMaterial",
            r.include_key_material.as_deref(),
            IncludeKeyMaterial::parse,
            IncludeKeyMaterial::wire_list(),
        );
        c.finish()?;
        let include = include.unwrap_or(IncludeKeyMaterial::RotationsOnly);
        let limit = r.limit.unwrap_or(100) as usize;
        let start: usize = r
            .marker
            .as_deref()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        let (key, page, truncated) = kms
            .rotation
            .list_key_rotations(
                call,
                &present(r.key_id)?,
                include,
                r.marker.as_deref(),
                limit,
            )
            .await?;
        let next_marker = truncated.then(|| (start + page.len()).to_string());
        Ok(Response {
            rotations: page
                .into_iter()
                .map(|e| {
                    let import = e.import.as_ref();
                    Entry {
                        key_id: key.key_id.to_string(),
                        key_material_id: e.material_id,
                        key_material_description: import.and_then(|i| i.description.clone()),
                        import_state: import.map(|i| i.state.as_str()),
                        key_material_state: e.state.as_str(),
                        expiration_model: import.map(|i| i.expiration_model.as_str()),
                        valid_to: import.and_then(|i| i.valid_to),
                        rotation_date: e.rotation_date,
                        rotation_type: e.rotation_type.map(|t| t.as_str()),
                    }
                })
                .collect(),
            next_marker,
            truncated,
        })
    }
}
