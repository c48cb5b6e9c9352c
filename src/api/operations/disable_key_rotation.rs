//! `DisableKeyRotation`.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{check_key_id, present, Empty, Operation};
use crate::api::validate::Checks;
use crate::service::{Call, Kms, KmsResult};

pub struct DisableKeyRotation;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
}

impl Operation for DisableKeyRotation {
    const NAME: &'static str = "DisableKeyRotation";
    const READ_ONLY: bool = false;
    type Request = Request;
    type Response = Empty;

    fn audit_parameters(r: &Request) -> Value {
        json!({ "keyId": r.key_id })
    }

    fn audit_response(_: &Empty) -> Value {
        Value::Null
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Empty> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        c.finish()?;
        let key_id = present(r.key_id)?;
        kms.rotation.disable_key_rotation(call, &key_id).await?;
        Ok(Empty {})
    }
}
