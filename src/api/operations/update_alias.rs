//! `UpdateAlias`.

use serde::Deserialize;
use serde_json::{json, Value};

use super::create_alias::check_alias_name;
use super::{check_key_id, present, KeyAffected, Operation};
use crate::api::validate::Checks;
use crate::service::{Call, Kms, KmsResult};

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
    type Request = Request;
    type Response = KeyAffected;

    fn audit_parameters(r: &Request) -> Value {
        json!({ "aliasName": r.alias_name, "targetKeyId": r.target_key_id })
    }

    fn audit_response(r: &KeyAffected) -> Value {
        r.audit()
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<KeyAffected> {
        let mut c = Checks::new();
        check_alias_name(&mut c, &r.alias_name);
        check_key_id(&mut c, "targetKeyId", &r.target_key_id);
        c.finish()?;
        kms.aliases
            .update_alias(call, &present(r.alias_name)?, &present(r.target_key_id)?)
            .await?;
        Ok(KeyAffected::of(call))
    }
}
