//! `UpdateAlias`.

use serde::Deserialize;
use serde_json::{json, Value};

use super::create_alias::check_alias_name;
use super::{check_key_id, present, KeyAffected, Operation};
use crate::api::validate::Checks;
use crate::service::{Call, KmsResult, KmsService};

pub struct UpdateAlias;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    alias_name: Option<String>,
    target_key_id: Option<String>,
}

impl Operation for UpdateAlias {
    const NAME: &'static str = "UpdateAlias";
    const READ_ONLY: bool = false;
    const BLOCKING: bool = true;
    type Request = Request;
    type Response = KeyAffected;

    fn audit_parameters(r: &Request) -> Value {
        json!({ "aliasName": r.alias_name, "targetKeyId": r.target_key_id })
    }

    fn audit_response(r: &KeyAffected) -> Value {
        r.audit()
    }

    fn execute(svc: &KmsService, call: &mut Call, r: Request) -> KmsResult<KeyAffected> {
        let mut c = Checks::new();
        check_alias_name(&mut c, &r.alias_name);
        check_key_id(&mut c, "targetKeyId", &r.target_key_id);
        c.finish()?;
        svc.update_alias(call, &present(r.alias_name)?, &present(r.target_key_id)?)?;
        Ok(KeyAffected::of(call))
    }
}
