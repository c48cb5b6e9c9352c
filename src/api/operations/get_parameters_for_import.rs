//! `GetParametersForImport`: a wrapping public key and an import token for an EXTERNAL key,
//! valid 24 hours.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{check_key_id, present, Operation};
use crate::api::shapes::{epoch, Blob};
use crate::api::validate::Checks;
use crate::model::{WrappingAlgorithm, WrappingKeySpec};
use crate::service::{Call, Kms, KmsResult};

pub struct GetParametersForImport;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    wrapping_algorithm: Option<String>,
    wrapping_key_spec: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    key_id: String,
    import_token: Blob,
    public_key: Blob,
    #[serde(serialize_with = "epoch")]
    parameters_valid_to: DateTime<Utc>,
}

impl Operation for GetParametersForImport {
    const NAME: &'static str = "GetParametersForImport";
    const READ_ONLY: bool = true;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        json!({
            "keyId": r.key_id,
            "wrappingAlgorithm": r.wrapping_algorithm,
            "wrappingKeySpec": r.wrapping_key_spec,
        })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        c.required("wrappingAlgorithm", &r.wrapping_algorithm)
            .required("wrappingKeySpec", &r.wrapping_key_spec);
        let algorithm = c.enum_value(
            "wrappingAlgorithm",
            r.wrapping_algorithm.as_deref(),
            WrappingAlgorithm::parse,
            WrappingAlgorithm::wire_list(),
        );
        let spec = c.enum_value(
            "wrappingKeySpec",
            r.wrapping_key_spec.as_deref(),
            WrappingKeySpec::parse,
            WrappingKeySpec::wire_list(),
        );
        c.finish()?;
        let p = kms
            .import
            .get_parameters_for_import(
                call,
                &present(r.key_id)?,
                present(algorithm)?,
                present(spec)?,
            )
            .await?;
        Ok(Response {
            key_id: p.key.arn,
            import_token: Blob(p.import_token),
            public_key: Blob(p.public_key),
            parameters_valid_to: p.valid_to,
        })
    }
}
