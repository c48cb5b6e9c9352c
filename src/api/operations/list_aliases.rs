//! `ListAliases` (optional KeyId filter; Limit 1-100, default 50; Marker paging).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{check_limit, check_marker, Operation};
use crate::api::shapes::epoch;
use crate::api::validate::Checks;
use crate::service::{Call, Kms, KmsResult};

pub struct ListAliases;

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
    alias_name: String,
    alias_arn: String,
    target_key_id: String,
    #[serde(serialize_with = "epoch")]
    creation_date: DateTime<Utc>,
    #[serde(serialize_with = "epoch")]
    last_updated_date: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    aliases: Vec<Entry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_marker: Option<String>,
    truncated: bool,
}

impl Operation for ListAliases {
    const NAME: &'static str = "ListAliases";
    const READ_ONLY: bool = true;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        json!({ "keyId": r.key_id, "limit": r.limit, "marker": r.marker })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        let mut c = Checks::new();
        c.len("keyId", r.key_id.as_deref(), 1, 2048);
        check_limit(&mut c, r.limit, 100);
        check_marker(&mut c, &r.marker);
        c.finish()?;
        let limit = r.limit.unwrap_or(50) as usize;
        let (page, truncated) = kms
            .aliases
            .list_aliases(call, r.key_id.as_deref(), r.marker.as_deref(), limit)
            .await?;
        let next_marker = if truncated {
            page.last().map(|a| a.name.clone())
        } else {
            None
        };
        Ok(Response {
            aliases: page
                .iter()
                .map(|a| Entry {
                    alias_name: a.name.clone(),
                    alias_arn: kms.aliases.alias_arn_of(a),
                    target_key_id: a.target_key_id.to_string(),
                    creation_date: a.creation_date,
                    last_updated_date: a.last_updated_date,
                })
                .collect(),
            next_marker,
            truncated,
        })
    }
}
