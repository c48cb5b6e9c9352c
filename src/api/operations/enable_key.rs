//! `EnableKey`.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{check_key_id, present, KeyAffected, Operation};
use crate::api::validate::Checks;
use crate::service::{Call, KmsResult, KmsService};

pub struct EnableKey;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
}

impl Operation for EnableKey {
    const NAME: &'static str = "EnableKey";
    const READ_ONLY: bool = false;
    const BLOCKING: bool = true;
    type Request = Request;
    type Response = KeyAffected;

    fn audit_parameters(r: &Request) -> Value {
        json!({ "keyId": r.key_id })
    }

    fn audit_response(r: &KeyAffected) -> Value {
        r.audit()
    }

    fn execute(svc: &KmsService, call: &mut Call, r: Request) -> KmsResult<KeyAffected> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        c.finish()?;
        let key_id = present(r.key_id)?;
        svc.enable_key(call, &key_id)?;
        Ok(KeyAffected::of(call))
    }
}
