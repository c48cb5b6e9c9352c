//! `GenerateDataKey`: a random data key, in plaintext and encrypted under the KMS key.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{accept_grant_tokens, check_grant_tokens, check_key_id, present, Operation};
use crate::api::shapes::{Blob, SecretBlob, WireContext};
use crate::api::validate::Checks;
use crate::model::DataKeySpec;
use crate::service::crypto::CryptoOp;
use crate::service::{Call, Kms, KmsError, KmsResult};

pub struct GenerateDataKey;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    pub(super) key_id: Option<String>,
    pub(super) encryption_context: Option<WireContext>,
    pub(super) number_of_bytes: Option<i64>,
    pub(super) key_spec: Option<String>,
    pub(super) grant_tokens: Option<Vec<String>>,
    pub(super) dry_run: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    ciphertext_blob: Blob,
    plaintext: SecretBlob,
    key_id: String,
}

impl Request {
    pub(super) fn audit(&self) -> Value {
        json!({
            "keyId": self.key_id,
            "encryptionContext": self.encryption_context.as_ref().map(|c| &c.0),
            "keySpec": self.key_spec,
            "numberOfBytes": self.number_of_bytes,
            "dryRun": self.dry_run,
        })
    }

    /// Validates and returns the data key length (KeySpec xor NumberOfBytes).
    pub(super) fn validate(&self) -> KmsResult<usize> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &self.key_id);
        c.range("numberOfBytes", self.number_of_bytes, 1, 1024);
        let spec = c.enum_value(
            "keySpec",
            self.key_spec.as_deref(),
            DataKeySpec::parse,
            DataKeySpec::wire_list(),
        );
        check_grant_tokens(&mut c, &self.grant_tokens);
        c.finish()?;
        match (spec, self.number_of_bytes) {
            (Some(s), None) => Ok(s.byte_len()),
            (None, Some(n)) => Ok(n as usize),
            _ => Err(KmsError::Validation(
                "Please specify either number of bytes or key spec.".into(),
            )),
        }
    }
}

impl Operation for GenerateDataKey {
    const NAME: &'static str = "GenerateDataKey";
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
        let (out, data_key) = kms
            .crypto
            .generate_data_key(
                call,
                &present(r.key_id)?,
                len,
                &context,
                CryptoOp::GenerateDataKey,
                r.dry_run.unwrap_or(false),
            )
            .await?;
        Ok(Response {
            ciphertext_blob: Blob(out.blob),
            plaintext: SecretBlob(data_key),
            key_id: out.key.arn,
        })
    }
}
