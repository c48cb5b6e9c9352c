//! `RotateKeyOnDemand`: adds a key material version now.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{check_key_id, present, Operation};
use crate::api::validate::Checks;
use crate::service::{Call, Kms, KmsResult};

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
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        json!({ "keyId": r.key_id })
    }

    fn audit_response(r: &Response) -> Value {
        json!({ "keyId": r.key_id })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        c.finish()?;
        let key = kms
            .rotation
            .rotate_key_on_demand(call, &present(r.key_id)?)
            .await?;
        Ok(Response { key_id: key.arn })
    }
}
