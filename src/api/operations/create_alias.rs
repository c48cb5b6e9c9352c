//! `CreateAlias`.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{check_key_id, present, KeyAffected, Operation};
use crate::api::validate::Checks;
use crate::service::{Call, Kms, KmsResult};

pub struct CreateAlias;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    alias_name: Option<String>,
    target_key_id: Option<String>,
}

/// `AliasName`: 1-256 characters of `[a-zA-Z0-9:/_-]`.
pub(super) fn check_alias_name(c: &mut Checks, v: &Option<String>) {
    c.required("aliasName", v)
        .len("aliasName", v.as_deref(), 1, 256)
        .pattern(
            "aliasName",
            v.as_deref(),
            |s| {
                s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b":/_-".contains(&b))
            },
            "^[a-zA-Z0-9:/_-]+$",
        );
}

impl Operation for CreateAlias {
    const NAME: &'static str = "CreateAlias";
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
            .create_alias(call, &present(r.alias_name)?, &present(r.target_key_id)?)
            .await?;
        Ok(KeyAffected::of(call))
    }
}
