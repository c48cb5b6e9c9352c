//! `GenerateRandom` (1-1024 bytes; `NumberOfBytes` optional in the model, required by KMS).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::Operation;
use crate::api::shapes::SecretBlob;
use crate::api::validate::Checks;
use crate::service::{Call, Kms, KmsError, KmsResult};

pub struct GenerateRandom;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    number_of_bytes: Option<i64>,
    custom_key_store_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    plaintext: SecretBlob,
}

impl Operation for GenerateRandom {
    const NAME: &'static str = "GenerateRandom";
    const READ_ONLY: bool = true;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(_: &Request) -> Value {
        json!(null)
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        let mut c = Checks::new();
        c.range("numberOfBytes", r.number_of_bytes, 1, 1024);
        c.len("customKeyStoreId", r.custom_key_store_id.as_deref(), 1, 64);
        c.finish()?;
        // Optional in AWS's model; KMS itself requires it, in these words (recorded AWS
        // response, docs/errors.md).
        let Some(n) = r.number_of_bytes else {
            return Err(KmsError::Validation("NumberOfBytes is required.".into()));
        };
        let n = n as usize;
        if let Some(id) = r.custom_key_store_id {
            let bytes = kms
                .custom_key_stores
                .generate_random_in_store(call, &id, n)
                .await?;
            return Ok(Response {
                plaintext: SecretBlob(bytes),
            });
        }
        Ok(Response {
            plaintext: SecretBlob(kms.crypto.generate_random(call, n).await?),
        })
    }
}
