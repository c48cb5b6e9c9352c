//! `Decrypt`: KeyId is optional for symmetric ciphertext (the blob names its key) and required
//! for RSA ciphertext, which names none. A dry run with `IGNORE_CIPHERTEXT` checks only the
//! authorization and the key (the one named, else the one a given ciphertext names).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::encrypt::algorithm;
use super::{
    accept_grant_tokens, check_ciphertext_blob, check_grant_tokens, decrypt_run, Operation,
};
use crate::api::shapes::{Blob, SecretBlob, WireContext};
use crate::api::validate::Checks;
use crate::service::crypto::CryptoOp;
use crate::service::{Call, Kms, KmsError, KmsResult};

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
    dry_run_modifiers: Option<Vec<String>>,
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
        let run = decrypt_run(&mut c, r.dry_run, &r.dry_run_modifiers);
        check_ciphertext_blob(
            &mut c,
            run,
            r.ciphertext_blob.as_ref().map(|b| b.0.as_slice()),
        );
        c.len("keyId", r.key_id.as_deref(), 1, 2048);
        check_grant_tokens(&mut c, &r.grant_tokens);
        let alg = algorithm(
            &mut c,
            "encryptionAlgorithm",
            r.encryption_algorithm.as_deref(),
        );
        c.finish()?;
        if r.key_id.is_none() && r.ciphertext_blob.is_none() {
            return Err(KmsError::Validation(
                "A dry run with IGNORE_CIPHERTEXT and no CiphertextBlob must name its KMS key \
                 in KeyId."
                    .into(),
            ));
        }
        accept_grant_tokens(kms, &r.grant_tokens).await?;
        let blob = r.ciphertext_blob.map(|b| b.0).unwrap_or_default();
        let context = r.encryption_context.unwrap_or_default().0;
        let out = kms
            .crypto
            .decrypt(
                call,
                &blob,
                r.key_id.as_deref(),
                &context,
                alg,
                CryptoOp::Decrypt,
                run,
            )
            .await?;
        Ok(Response {
            key_id: out.key.arn,
            plaintext: SecretBlob(out.plaintext),
            encryption_algorithm: out.algorithm.as_str(),
        })
    }
}
