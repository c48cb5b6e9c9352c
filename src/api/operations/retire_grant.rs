//! `RetireGrant`: deletes a grant, named by a grant token or by key ARN and grant id. The grant
//! says who may (its retiring principal, its grantee when it lists RetireGrant, the account
//! that created it).

use serde::Deserialize;
use serde_json::{json, Value};

use super::{Empty, Operation};
use crate::api::validate::Checks;
use crate::service::grants::RetireTarget;
use crate::service::{Call, Kms, KmsResult};

pub struct RetireGrant;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    grant_token: Option<String>,
    key_id: Option<String>,
    grant_id: Option<String>,
    dry_run: Option<bool>,
}

impl Operation for RetireGrant {
    const NAME: &'static str = "RetireGrant";
    const READ_ONLY: bool = false;
    type Request = Request;
    type Response = Empty;

    /// CloudTrail's RetireGrant record has no request parameters (the grant id goes to
    /// `additionalEventData`); the key ARN and grant id are kept when the request named them,
    /// the token never.
    fn audit_parameters(r: &Request) -> Value {
        if r.key_id.is_none() && r.grant_id.is_none() && r.dry_run.is_none() {
            return Value::Null;
        }
        json!({ "keyId": r.key_id, "grantId": r.grant_id, "dryRun": r.dry_run })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Empty> {
        let mut c = Checks::new();
        c.len("grantToken", r.grant_token.as_deref(), 1, 8192)
            .len("keyId", r.key_id.as_deref(), 1, 2048)
            .len("grantId", r.grant_id.as_deref(), 1, 128);
        c.finish()?;
        let target = RetireTarget {
            grant_token: r.grant_token.as_deref(),
            key_id: r.key_id.as_deref(),
            grant_id: r.grant_id.as_deref(),
        };
        kms.grants
            .retire_grant(call, target, r.dry_run.unwrap_or(false))
            .await?;
        Ok(Empty {})
    }
}
