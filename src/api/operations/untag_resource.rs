//! `UntagResource`: removing a tag key that is not there is not an error.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{check_key_id, present, KeyAffected, Operation};
use crate::api::validate::Checks;
use crate::service::{Call, Kms, KmsResult};

pub struct UntagResource;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    tag_keys: Option<Vec<String>>,
}

impl Operation for UntagResource {
    const NAME: &'static str = "UntagResource";
    const READ_ONLY: bool = false;
    type Request = Request;
    type Response = KeyAffected;

    fn audit_parameters(r: &Request) -> Value {
        json!({ "keyId": r.key_id, "tagKeys": r.tag_keys })
    }

    fn audit_response(r: &KeyAffected) -> Value {
        r.audit()
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<KeyAffected> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        c.required("tagKeys", &r.tag_keys);
        c.string_list("tagKeys", r.tag_keys.as_deref(), (0, usize::MAX), (1, 128));
        c.finish()?;
        kms.tags
            .untag_resource(call, &present(r.key_id)?, present(r.tag_keys)?)
            .await?;
        Ok(KeyAffected::of(call))
    }
}
