//! `GetKeyPolicy` (the only policy name is `default`; PolicyName may be omitted).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{check_key_id, present, Operation};
use crate::api::validate::Checks;
use crate::service::policy::POLICY_NAME;
use crate::service::{Call, Kms, KmsResult};

pub struct GetKeyPolicy;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    policy_name: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    policy: String,
    policy_name: String,
}

/// `PolicyName`: 1-128 characters of `[\w]+`.
pub fn check_policy_name(c: &mut Checks, v: &Option<String>) {
    c.len("policyName", v.as_deref(), 1, 128).pattern(
        "policyName",
        v.as_deref(),
        |s| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "[\\w]+",
    );
}

impl Operation for GetKeyPolicy {
    const NAME: &'static str = "GetKeyPolicy";
    const READ_ONLY: bool = true;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        json!({ "keyId": r.key_id, "policyName": r.policy_name.as_deref().unwrap_or(POLICY_NAME) })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        check_policy_name(&mut c, &r.policy_name);
        c.finish()?;
        let name = r.policy_name.unwrap_or_else(|| POLICY_NAME.to_string());
        let policy = kms
            .policies
            .get_key_policy(call, &present(r.key_id)?, &name)
            .await?;
        Ok(Response {
            policy,
            policy_name: name,
        })
    }
}
