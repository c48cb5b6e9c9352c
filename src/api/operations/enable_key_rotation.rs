//! `EnableKeyRotation` (RotationPeriodInDays 90-2560, default 365).

use serde::Deserialize;
use serde_json::{json, Value};

use super::{check_key_id, present, KeyAffected, Operation};
use crate::api::validate::Checks;
use crate::service::rotation::{DEFAULT_ROTATION_DAYS, MAX_ROTATION_DAYS, MIN_ROTATION_DAYS};
use crate::service::{Call, Kms, KmsResult};

pub struct EnableKeyRotation;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    rotation_period_in_days: Option<i64>,
}

impl Operation for EnableKeyRotation {
    const NAME: &'static str = "EnableKeyRotation";
    const READ_ONLY: bool = false;
    type Request = Request;
    type Response = KeyAffected;

    fn audit_parameters(r: &Request) -> Value {
        json!({ "keyId": r.key_id, "rotationPeriodInDays": r.rotation_period_in_days })
    }

    fn audit_response(r: &KeyAffected) -> Value {
        r.audit()
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<KeyAffected> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        c.range(
            "rotationPeriodInDays",
            r.rotation_period_in_days,
            MIN_ROTATION_DAYS,
            MAX_ROTATION_DAYS,
        );
        c.finish()?;
        let days = r.rotation_period_in_days.unwrap_or(DEFAULT_ROTATION_DAYS);
        kms.rotation
            .enable_key_rotation(call, &present(r.key_id)?, days)
            .await?;
        Ok(KeyAffected::of(call))
    }
}
