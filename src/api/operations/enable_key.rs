//! `EnableKey`.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{check_key_id, present, KeyAffected, Operation};
use crate::api::validate::Checks;
use crate::service::{Call, Kms, KmsResult};

pub struct EnableKey;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
}

impl Operation for EnableKey {
    const NAME: &'static str = "EnableKey";
    const READ_ONLY: bool = false;
    type Request = Request;
    type Response = KeyAffected;

    fn audit_parameters(r: &Request) -> Value {
        json!({ "keyId": r.key_id })
    }

    fn audit_response(r: &KeyAffected) -> Value {
        r.audit()
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<KeyAffected> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        c.finish()?;
        let key_id = present(r.key_id)?;
        kms.keys.enable_key(call, &key_id).await?;
        Ok(KeyAffected::of(call))
    }
}
