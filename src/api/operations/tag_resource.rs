//! `TagResource`: adds or overwrites tags (at most 50 per key).

use serde::Deserialize;
use serde_json::{json, Value};

use super::create_key::wire_tags;
use super::{check_key_id, present, KeyAffected, Operation};
use crate::api::shapes::WireTag;
use crate::api::validate::Checks;
use crate::service::{Call, Kms, KmsResult};

pub struct TagResource;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    tags: Option<Vec<WireTag>>,
}

impl Operation for TagResource {
    const NAME: &'static str = "TagResource";
    const READ_ONLY: bool = false;
    type Request = Request;
    type Response = KeyAffected;

    fn audit_parameters(r: &Request) -> Value {
        json!({
            "keyId": r.key_id,
            "tags": r.tags.as_ref().map(|t| t.iter().map(|t| json!({"tagKey": t.tag_key, "tagValue": t.tag_value})).collect::<Vec<_>>()),
        })
    }

    fn audit_response(r: &KeyAffected) -> Value {
        r.audit()
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<KeyAffected> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        c.required("tags", &r.tags);
        let tags = wire_tags(&mut c, r.tags);
        c.finish()?;
        kms.tags
            .tag_resource(call, &present(r.key_id)?, tags)
            .await?;
        Ok(KeyAffected::of(call))
    }
}
