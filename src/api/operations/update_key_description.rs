//! `UpdateKeyDescription`.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{check_key_id, present, Empty, Operation};
use crate::api::validate::Checks;
use crate::service::{Call, Kms, KmsResult};

pub struct UpdateKeyDescription;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    description: Option<String>,
}

impl Operation for UpdateKeyDescription {
    const NAME: &'static str = "UpdateKeyDescription";
    const READ_ONLY: bool = false;
    type Request = Request;
    type Response = Empty;

    fn audit_parameters(r: &Request) -> Value {
        json!({ "keyId": r.key_id, "description": r.description })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Empty> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        c.required("description", &r.description).len(
            "description",
            r.description.as_deref(),
            0,
            8192,
        );
        c.finish()?;
        kms.keys
            .update_key_description(call, &present(r.key_id)?, present(r.description)?)
            .await?;
        Ok(Empty {})
    }
}
