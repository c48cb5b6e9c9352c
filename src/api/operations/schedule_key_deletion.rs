//! `ScheduleKeyDeletion` (PendingWindowInDays 7-30, default 30).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{check_key_id, present, Operation};
use crate::api::shapes::epoch_opt;
use crate::api::validate::Checks;
use crate::service::{Call, Kms, KmsError, KmsResult};

pub struct ScheduleKeyDeletion;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    pending_window_in_days: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    key_id: String,
    #[serde(serialize_with = "epoch_opt", skip_serializing_if = "Option::is_none")]
    deletion_date: Option<DateTime<Utc>>,
    key_state: &'static str,
    pending_window_in_days: i64,
}

impl Operation for ScheduleKeyDeletion {
    const NAME: &'static str = "ScheduleKeyDeletion";
    const READ_ONLY: bool = false;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        json!({ "keyId": r.key_id, "pendingWindowInDays": r.pending_window_in_days.unwrap_or(30) })
    }

    fn audit_response(r: &Response) -> Value {
        json!({
            "keyId": r.key_id,
            "keyState": r.key_state,
            "deletionDate": r.deletion_date.map(|d| d.format("%b %-d, %Y, %-I:%M:%S %p").to_string()),
            "pendingWindowInDays": r.pending_window_in_days,
        })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        c.range("pendingWindowInDays", r.pending_window_in_days, 1, 365);
        c.finish()?;
        let days = r.pending_window_in_days.unwrap_or(30);
        // The model allows 1-365; KMS itself takes 7-30 [003:L8221], in these words (a
        // recorded AWS response, docs/errors.md).
        if !(7..=30).contains(&days) {
            return Err(KmsError::Validation(
                "PendingWindowInDays must be between 7 and 30".into(),
            ));
        }
        let s = kms
            .keys
            .schedule_key_deletion(call, &present(r.key_id)?, days)
            .await?;
        Ok(Response {
            key_id: s.key.arn,
            deletion_date: s.deletion_date,
            key_state: s.key.state.as_str(),
            pending_window_in_days: s.pending_window_days,
        })
    }
}
