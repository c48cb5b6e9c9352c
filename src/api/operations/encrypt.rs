//! `Encrypt`: up to 4096 bytes under a symmetric key, bound to the encryption context, or up to
//! the OAEP limit under an RSA `ENCRYPT_DECRYPT` key with an `RSAES_OAEP_*` algorithm.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{accept_grant_tokens, check_grant_tokens, check_key_id, present, Operation};
use crate::api::shapes::{Blob, SecretBlob, WireContext};
use crate::api::validate::Checks;
use crate::model::EncryptionAlgorithm;
use crate::service::crypto::CryptoOp;
use crate::service::{Call, Kms, KmsResult};

pub struct Encrypt;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    plaintext: Option<SecretBlob>,
    encryption_context: Option<WireContext>,
    grant_tokens: Option<Vec<String>>,
    encryption_algorithm: Option<String>,
    dry_run: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    ciphertext_blob: Blob,
    key_id: String,
    encryption_algorithm: &'static str,
}

/// Parses an `EncryptionAlgorithm` member.
pub fn algorithm(c: &mut Checks, field: &str, v: Option<&str>) -> Option<EncryptionAlgorithm> {
    c.enum_value(
        field,
        v,
        EncryptionAlgorithm::parse,
        EncryptionAlgorithm::wire_list(),
    )
}

impl Operation for Encrypt {
    const NAME: &'static str = "Encrypt";
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
        check_key_id(&mut c, "keyId", &r.key_id);
        c.required("plaintext", &r.plaintext).blob_len(
            "plaintext",
            r.plaintext.as_ref().map(|p| p.0.as_slice()),
            1,
            4096,
        );
        check_grant_tokens(&mut c, &r.grant_tokens);
        let alg = algorithm(
            &mut c,
            "encryptionAlgorithm",
            r.encryption_algorithm.as_deref(),
        );
        c.finish()?;
        accept_grant_tokens(kms, &r.grant_tokens).await?;
        let plaintext = present(r.plaintext)?;
        let context = r.encryption_context.unwrap_or_default().0;
        let out = kms
            .crypto
            .encrypt(
                call,
                &present(r.key_id)?,
                &plaintext.0,
                &context,
                alg,
                CryptoOp::Encrypt,
                r.dry_run.unwrap_or(false),
            )
            .await?;
        Ok(Response {
            ciphertext_blob: Blob(out.blob),
            key_id: out.key.arn,
            encryption_algorithm: out.algorithm.as_str(),
        })
    }
}
