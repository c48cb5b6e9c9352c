//! `GetKeyRotationStatus`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{check_key_id, present, Operation};
use crate::api::shapes::epoch_opt;
use crate::api::validate::Checks;
use crate::service::{Call, Kms, KmsResult};

pub struct GetKeyRotationStatus;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    key_rotation_enabled: bool,
    key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rotation_period_in_days: Option<i64>,
    #[serde(serialize_with = "epoch_opt", skip_serializing_if = "Option::is_none")]
    next_rotation_date: Option<DateTime<Utc>>,
}

impl Operation for GetKeyRotationStatus {
    const NAME: &'static str = "GetKeyRotationStatus";
    const READ_ONLY: bool = true;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        json!({ "keyId": r.key_id })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        c.finish()?;
        let s = kms
            .rotation
            .get_key_rotation_status(call, &present(r.key_id)?)
            .await?;
        Ok(Response {
            key_rotation_enabled: s.enabled,
            key_id: s.key.arn,
            rotation_period_in_days: s.period_days,
            next_rotation_date: s.next_rotation,
        })
    }
}
