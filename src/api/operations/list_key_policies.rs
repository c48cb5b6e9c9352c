//! `ListKeyPolicies`: always `["default"]`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{check_key_id, check_limit, check_marker, present, Operation};
use crate::api::validate::Checks;
use crate::service::{Call, Kms, KmsResult};

pub struct ListKeyPolicies;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    limit: Option<i64>,
    marker: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    policy_names: Vec<String>,
    truncated: bool,
}

impl Operation for ListKeyPolicies {
    const NAME: &'static str = "ListKeyPolicies";
    const READ_ONLY: bool = true;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        json!({ "keyId": r.key_id, "limit": r.limit, "marker": r.marker })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        check_limit(&mut c, r.limit, 1000);
        check_marker(&mut c, &r.marker);
        c.finish()?;
        let names = kms
            .policies
            .list_key_policies(call, &present(r.key_id)?)
            .await?;
        Ok(Response {
            policy_names: names,
            truncated: false,
        })
    }
}
