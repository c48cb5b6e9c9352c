//! `ListResourceTags` (Limit 1-50, default 50; Marker paging).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{check_key_id, check_limit, check_marker, present, Operation};
use crate::api::shapes::WireTag;
use crate::api::validate::Checks;
use crate::service::{Call, Kms, KmsResult};

pub struct ListResourceTags;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    limit: Option<i64>,
    marker: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    tags: Vec<WireTag>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_marker: Option<String>,
    truncated: bool,
}

impl Operation for ListResourceTags {
    const NAME: &'static str = "ListResourceTags";
    const READ_ONLY: bool = true;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        json!({ "keyId": r.key_id, "limit": r.limit, "marker": r.marker })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        check_limit(&mut c, r.limit, 50);
        check_marker(&mut c, &r.marker);
        c.finish()?;
        let limit = r.limit.unwrap_or(50) as usize;
        let (tags, truncated) = kms
            .tags
            .list_resource_tags(call, &present(r.key_id)?, r.marker.as_deref(), limit)
            .await?;
        let next_marker = if truncated {
            tags.last().map(|t| t.key.clone())
        } else {
            None
        };
        Ok(Response {
            tags: tags
                .into_iter()
                .map(|t| WireTag {
                    tag_key: Some(t.key),
                    tag_value: Some(t.value),
                })
                .collect(),
            next_marker,
            truncated,
        })
    }
}
