//! `RotateKeyOnDemand`: adds a key material version now.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{check_key_id, present, Operation};
use crate::api::validate::Checks;
use crate::service::{Call, KmsResult, KmsService};

pub struct RotateKeyOnDemand;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    key_id: String,
}

impl Operation for RotateKeyOnDemand {
    const NAME: &'static str = "RotateKeyOnDemand";
    const READ_ONLY: bool = false;
    const BLOCKING: bool = true;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        json!({ "keyId": r.key_id })
    }

    fn audit_response(r: &Response) -> Value {
        json!({ "keyId": r.key_id })
    }

    fn execute(svc: &KmsService, call: &mut Call, r: Request) -> KmsResult<Response> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        c.finish()?;
        let key = svc.rotate_key_on_demand(call, &present(r.key_id)?)?;
        Ok(Response { key_id: key.arn })
    }
}
