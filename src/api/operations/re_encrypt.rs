//! `ReEncrypt`: decrypt under the source key and encrypt under the destination, server-side. A
//! dry run with `IGNORE_CIPHERTEXT` checks only the authorization and both keys.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::encrypt::algorithm;
use super::{
    accept_grant_tokens, check_ciphertext_blob, check_grant_tokens, check_key_id, decrypt_run,
    present, Operation,
};
use crate::api::shapes::{Blob, WireContext};
use crate::api::validate::Checks;
use crate::service::{Call, Kms, KmsError, KmsResult};

pub struct ReEncrypt;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    ciphertext_blob: Option<Blob>,
    source_encryption_context: Option<WireContext>,
    source_key_id: Option<String>,
    destination_key_id: Option<String>,
    destination_encryption_context: Option<WireContext>,
    source_encryption_algorithm: Option<String>,
    destination_encryption_algorithm: Option<String>,
    grant_tokens: Option<Vec<String>>,
    dry_run: Option<bool>,
    dry_run_modifiers: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    ciphertext_blob: Blob,
    source_key_id: String,
    key_id: String,
    source_encryption_algorithm: &'static str,
    destination_encryption_algorithm: &'static str,
}

impl Operation for ReEncrypt {
    const NAME: &'static str = "ReEncrypt";
    const READ_ONLY: bool = true;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        json!({
            "sourceKeyId": r.source_key_id,
            "sourceEncryptionContext": r.source_encryption_context.as_ref().map(|c| &c.0),
            "sourceEncryptionAlgorithm": r.source_encryption_algorithm.as_deref().unwrap_or("SYMMETRIC_DEFAULT"),
            "destinationKeyId": r.destination_key_id,
            "destinationEncryptionContext": r.destination_encryption_context.as_ref().map(|c| &c.0),
            "destinationEncryptionAlgorithm": r.destination_encryption_algorithm.as_deref().unwrap_or("SYMMETRIC_DEFAULT"),
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
        c.len("sourceKeyId", r.source_key_id.as_deref(), 1, 2048);
        check_key_id(&mut c, "destinationKeyId", &r.destination_key_id);
        check_grant_tokens(&mut c, &r.grant_tokens);
        let src_alg = algorithm(
            &mut c,
            "sourceEncryptionAlgorithm",
            r.source_encryption_algorithm.as_deref(),
        );
        let dst_alg = algorithm(
            &mut c,
            "destinationEncryptionAlgorithm",
            r.destination_encryption_algorithm.as_deref(),
        );
        c.finish()?;
        if r.source_key_id.is_none() && r.ciphertext_blob.is_none() {
            return Err(KmsError::Validation(
                "A dry run with IGNORE_CIPHERTEXT and no CiphertextBlob must name its source \
                 KMS key in SourceKeyId."
                    .into(),
            ));
        }
        accept_grant_tokens(kms, &r.grant_tokens).await?;
        let blob = r.ciphertext_blob.map(|b| b.0).unwrap_or_default();
        let out = kms
            .crypto
            .re_encrypt(
                call,
                &blob,
                r.source_key_id.as_deref(),
                &r.source_encryption_context.unwrap_or_default().0,
                src_alg,
                &present(r.destination_key_id)?,
                &r.destination_encryption_context.unwrap_or_default().0,
                dst_alg,
                run,
            )
            .await?;
        Ok(Response {
            ciphertext_blob: Blob(out.destination.blob),
            source_key_id: out.source.arn,
            key_id: out.destination.key.arn,
            source_encryption_algorithm: out.source_algorithm.as_str(),
            destination_encryption_algorithm: out.destination.algorithm.as_str(),
        })
    }
}
