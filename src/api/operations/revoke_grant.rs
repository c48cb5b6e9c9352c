//! `RevokeGrant`: deletes a grant of a key, authorized by `kms:RevokeGrant` on the key (no
//! grant token: revoking is for taking access away, not for grantees).

use serde::Deserialize;
use serde_json::{json, Value};

use super::{check_key_id, present, Empty, Operation};
use crate::api::validate::Checks;
use crate::service::{Call, Kms, KmsResult};

pub struct RevokeGrant;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    grant_id: Option<String>,
    dry_run: Option<bool>,
}

impl Operation for RevokeGrant {
    const NAME: &'static str = "RevokeGrant";
    const READ_ONLY: bool = false;
    type Request = Request;
    type Response = Empty;

    fn audit_parameters(r: &Request) -> Value {
        json!({ "keyId": r.key_id, "grantId": r.grant_id, "dryRun": r.dry_run })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Empty> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        c.required("grantId", &r.grant_id)
            .len("grantId", r.grant_id.as_deref(), 1, 128);
        c.finish()?;
        kms.grants
            .revoke_grant(
                call,
                &present(r.key_id)?,
                &present(r.grant_id)?,
                r.dry_run.unwrap_or(false),
            )
            .await?;
        Ok(Empty {})
    }
}
