//! `DeriveSharedSecret`: ECDH between a `KEY_AGREEMENT` key and a peer's public key. The
//! response carries the raw shared secret; the audit record never does.
//!
//! `Recipient` (Nitro Enclaves attestation) is accepted and ignored: there are no enclaves
//! here, so the answer is always the plaintext `SharedSecret` and never
//! `CiphertextForRecipient`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{accept_grant_tokens, check_grant_tokens, check_key_id, present, Operation};
use crate::api::shapes::{Blob, SecretBlob};
use crate::api::validate::Checks;
use crate::model::KeyAgreementAlgorithm;
use crate::service::{Call, Kms, KmsResult};

pub struct DeriveSharedSecret;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    key_agreement_algorithm: Option<String>,
    public_key: Option<Blob>,
    grant_tokens: Option<Vec<String>>,
    dry_run: Option<bool>,
    /// Accepted and ignored (see the module documentation).
    #[allow(dead_code)]
    recipient: Option<Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    key_id: String,
    shared_secret: SecretBlob,
    key_agreement_algorithm: &'static str,
    key_origin: &'static str,
}

impl Operation for DeriveSharedSecret {
    const NAME: &'static str = "DeriveSharedSecret";
    const READ_ONLY: bool = true;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        json!({
            "keyId": r.key_id,
            "keyAgreementAlgorithm": r.key_agreement_algorithm,
            "dryRun": r.dry_run,
        })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        c.required("keyAgreementAlgorithm", &r.key_agreement_algorithm);
        let alg = c.enum_value(
            "keyAgreementAlgorithm",
            r.key_agreement_algorithm.as_deref(),
            KeyAgreementAlgorithm::parse,
            KeyAgreementAlgorithm::wire_list(),
        );
        c.required("publicKey", &r.public_key).blob_len(
            "publicKey",
            r.public_key.as_ref().map(|b| b.0.as_slice()),
            1,
            8192,
        );
        check_grant_tokens(&mut c, &r.grant_tokens);
        c.finish()?;
        accept_grant_tokens(kms, &r.grant_tokens).await?;
        let public_key = present(r.public_key)?;
        let out = kms
            .agreement
            .derive_shared_secret(
                call,
                &present(r.key_id)?,
                present(alg)?,
                &public_key.0,
                r.dry_run.unwrap_or(false),
            )
            .await?;
        Ok(Response {
            key_id: out.key.arn,
            shared_secret: SecretBlob(out.secret),
            key_agreement_algorithm: present(alg)?.as_str(),
            key_origin: out.key.origin.as_str(),
        })
    }
}
