//! `UpdatePrimaryRegion`: the replica of a multi-Region key in another region becomes the
//! primary of its set.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{check_key_id, present, KeyAffected, Operation};
use crate::api::validate::Checks;
use crate::service::{Call, Kms, KmsResult};

pub struct UpdatePrimaryRegion;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    primary_region: Option<String>,
}

impl Operation for UpdatePrimaryRegion {
    const NAME: &'static str = "UpdatePrimaryRegion";
    const READ_ONLY: bool = false;
    type Request = Request;
    type Response = KeyAffected;

    fn audit_parameters(r: &Request) -> Value {
        json!({ "keyId": r.key_id, "primaryRegion": r.primary_region })
    }

    fn audit_response(r: &KeyAffected) -> Value {
        r.audit()
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<KeyAffected> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        c.required("primaryRegion", &r.primary_region).len(
            "primaryRegion",
            r.primary_region.as_deref(),
            1,
            32,
        );
        c.finish()?;
        kms.keys
            .update_primary_region(call, &present(r.key_id)?, &present(r.primary_region)?)
            .await?;
        Ok(KeyAffected::of(call))
    }
}
