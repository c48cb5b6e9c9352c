//! `DeleteAlias`.

use serde::Deserialize;
use serde_json::{json, Value};

use super::create_alias::check_alias_name;
use super::{present, KeyAffected, Operation};
use crate::api::validate::Checks;
use crate::service::{Call, Kms, KmsResult};

pub struct DeleteAlias;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    alias_name: Option<String>,
}

impl Operation for DeleteAlias {
    const NAME: &'static str = "DeleteAlias";
    const READ_ONLY: bool = false;
    type Request = Request;
    type Response = KeyAffected;

    fn audit_parameters(r: &Request) -> Value {
        json!({ "aliasName": r.alias_name })
    }

    fn audit_response(r: &KeyAffected) -> Value {
        r.audit()
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<KeyAffected> {
        let mut c = Checks::new();
        check_alias_name(&mut c, &r.alias_name);
        c.finish()?;
        kms.aliases
            .delete_alias(call, &present(r.alias_name)?)
            .await?;
        Ok(KeyAffected::of(call))
    }
}
