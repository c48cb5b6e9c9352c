//! `ListKeys` (Limit 1-1000, default 100; Marker paging).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{check_limit, check_marker, Operation};
use crate::api::validate::Checks;
use crate::service::{Call, Kms, KmsResult};

pub struct ListKeys;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    limit: Option<i64>,
    marker: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Entry {
    key_id: String,
    key_arn: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    keys: Vec<Entry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_marker: Option<String>,
    truncated: bool,
}

impl Operation for ListKeys {
    const NAME: &'static str = "ListKeys";
    const READ_ONLY: bool = true;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        json!({ "limit": r.limit, "marker": r.marker })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        let mut c = Checks::new();
        check_limit(&mut c, r.limit, 1000);
        check_marker(&mut c, &r.marker);
        c.finish()?;
        let limit = r.limit.unwrap_or(100) as usize;
        let (keys, truncated) = kms.keys.list_keys(call, r.marker.as_deref(), limit).await?;
        let next_marker = if truncated {
            // The stored form: related multi-Region keys share their public id.
            keys.last().map(|k| k.key_id.as_str().to_string())
        } else {
            None
        };
        Ok(Response {
            keys: keys
                .into_iter()
                .map(|k| Entry {
                    key_id: k.key_id.to_string(),
                    key_arn: k.arn,
                })
                .collect(),
            next_marker,
            truncated,
        })
    }
}
