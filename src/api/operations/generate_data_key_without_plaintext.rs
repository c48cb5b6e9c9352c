//! `GenerateDataKeyWithoutPlaintext`: like GenerateDataKey, but only the encrypted copy returns.

use serde::Serialize;
use serde_json::Value;

use super::generate_data_key::Request;
use super::{accept_grant_tokens, present, Operation};
use crate::api::shapes::Blob;
use crate::service::crypto::CryptoOp;
use crate::service::{Call, Kms, KmsResult};

pub struct GenerateDataKeyWithoutPlaintext;

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    ciphertext_blob: Blob,
    key_id: String,
}

impl Operation for GenerateDataKeyWithoutPlaintext {
    const NAME: &'static str = "GenerateDataKeyWithoutPlaintext";
    const READ_ONLY: bool = true;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        r.audit()
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        let len = r.validate()?;
        accept_grant_tokens(kms, &r.grant_tokens).await?;
        let context = r.encryption_context.unwrap_or_default().0;
        let (out, _data_key) = kms
            .crypto
            .generate_data_key(
                call,
                &present(r.key_id)?,
                len,
                &context,
                CryptoOp::GenerateDataKeyWithoutPlaintext,
                r.dry_run.unwrap_or(false),
            )
            .await?;
        Ok(Response {
            ciphertext_blob: Blob(out.blob),
            key_id: out.key.arn,
        })
    }
}
