//! `Decrypt`: KeyId is optional for symmetric ciphertext (the blob names its key) and required
//! for RSA ciphertext, which names none.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::encrypt::algorithm;
use super::{accept_grant_tokens, check_grant_tokens, present, Operation};
use crate::api::shapes::{Blob, SecretBlob, WireContext};
use crate::api::validate::Checks;
use crate::service::crypto::CryptoOp;
use crate::service::{Call, Kms, KmsResult};

pub struct Decrypt;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    ciphertext_blob: Option<Blob>,
    encryption_context: Option<WireContext>,
    grant_tokens: Option<Vec<String>>,
    key_id: Option<String>,
    encryption_algorithm: Option<String>,
    dry_run: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    key_id: String,
    plaintext: SecretBlob,
    encryption_algorithm: &'static str,
}

impl Operation for Decrypt {
    const NAME: &'static str = "Decrypt";
    const READ_ONLY: bool = true;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        json!({
            "keyId": r.key_id,
            "encryptionContext": r.encryption_context.as_ref().map(|c| &c.0),
            "encryptionAlgorithm": r.encryption_algorithm.as_deref().unwrap_or("SYMMETRIC_DEFAULT"),
            "dryRun": r.dry_run,
        })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        let mut c = Checks::new();
        c.required("ciphertextBlob", &r.ciphertext_blob).blob_len(
            "ciphertextBlob",
            r.ciphertext_blob.as_ref().map(|b| b.0.as_slice()),
            1,
            6144,
        );
        c.len("keyId", r.key_id.as_deref(), 1, 2048);
        check_grant_tokens(&mut c, &r.grant_tokens);
        let alg = algorithm(
            &mut c,
            "encryptionAlgorithm",
            r.encryption_algorithm.as_deref(),
        );
        c.finish()?;
        accept_grant_tokens(kms, &r.grant_tokens).await?;
        let blob = present(r.ciphertext_blob)?;
        let context = r.encryption_context.unwrap_or_default().0;
        let out = kms
            .crypto
            .decrypt(
                call,
                &blob.0,
                r.key_id.as_deref(),
                &context,
                alg,
                CryptoOp::Decrypt,
                r.dry_run.unwrap_or(false),
            )
            .await?;
        Ok(Response {
            key_id: out.key.arn,
            plaintext: SecretBlob(out.plaintext),
            encryption_algorithm: out.algorithm.as_str(),
        })
    }
}
