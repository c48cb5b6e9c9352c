//! `ListKeyRotations`: completed rotations, oldest first (Limit 1-1000, default 100).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{check_key_id, check_limit, check_marker, present, Operation};
use crate::api::shapes::epoch;
use crate::api::validate::Checks;
use crate::service::{Call, Kms, KmsResult};

pub struct ListKeyRotations;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    limit: Option<i64>,
    marker: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Entry {
    key_id: String,
    #[serde(serialize_with = "epoch")]
    rotation_date: DateTime<Utc>,
    rotation_type: &'static str,
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
        json!({ "keyId": r.key_id, "limit": r.limit, "marker": r.marker })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        check_limit(&mut c, r.limit, 1000);
        check_marker(&mut c, &r.marker);
        c.finish()?;
        let limit = r.limit.unwrap_or(100) as usize;
        let start: usize = r
            .marker
            .as_deref()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        let (key, page, truncated) = kms
            .rotation
            .list_key_rotations(call, &present(r.key_id)?, r.marker.as_deref(), limit)
            .await?;
        let next_marker = truncated.then(|| (start + page.len()).to_string());
        Ok(Response {
            rotations: page
                .into_iter()
                .map(|e| Entry {
                    key_id: key.key_id.to_string(),
                    rotation_date: e.rotation_date,
                    rotation_type: e.rotation_type.as_str(),
                })
                .collect(),
            next_marker,
            truncated,
        })
    }
}
