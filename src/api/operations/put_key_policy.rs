//! `PutKeyPolicy`: size and characters here; grammar, principals and the lockout safety check
//! in the service.

use serde::Deserialize;
use serde_json::{json, Value};

use super::create_key::check_policy_text;
use super::get_key_policy::check_policy_name;
use super::{check_key_id, present, Empty, Operation};
use crate::api::validate::Checks;
use crate::service::policy::POLICY_NAME;
use crate::service::{Call, Kms, KmsResult};

pub struct PutKeyPolicy;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    policy_name: Option<String>,
    policy: Option<String>,
    bypass_policy_lockout_safety_check: Option<bool>,
}

impl Operation for PutKeyPolicy {
    const NAME: &'static str = "PutKeyPolicy";
    const READ_ONLY: bool = false;
    type Request = Request;
    type Response = Empty;

    fn audit_parameters(r: &Request) -> Value {
        json!({
            "keyId": r.key_id,
            "policyName": r.policy_name.as_deref().unwrap_or(POLICY_NAME),
            "policy": r.policy,
            "bypassPolicyLockoutSafetyCheck": r.bypass_policy_lockout_safety_check.unwrap_or(false),
        })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Empty> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        check_policy_name(&mut c, &r.policy_name);
        c.required("policy", &r.policy);
        check_policy_text(&mut c, r.policy.as_deref())?;
        c.finish()?;
        let name = r.policy_name.unwrap_or_else(|| POLICY_NAME.to_string());
        kms.policies
            .put_key_policy(
                call,
                &present(r.key_id)?,
                &name,
                present(r.policy)?,
                r.bypass_policy_lockout_safety_check,
            )
            .await?;
        Ok(Empty {})
    }
}
