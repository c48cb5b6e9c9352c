//! `Verify`: checks a signature on the host against the key's public key. A signature that
//! does not verify is `KMSInvalidSignatureException` (never `SignatureValid: false`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::sign::{audit_signing, check_signing_members};
use super::{accept_grant_tokens, check_grant_tokens, check_key_id, present, Operation};
use crate::api::shapes::{Blob, SecretBlob};
use crate::api::validate::Checks;
use crate::service::{Call, Kms, KmsResult};

pub struct Verify;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    message: Option<SecretBlob>,
    message_type: Option<String>,
    signature: Option<Blob>,
    signing_algorithm: Option<String>,
    grant_tokens: Option<Vec<String>>,
    dry_run: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    key_id: String,
    signature_valid: bool,
    signing_algorithm: &'static str,
}

impl Operation for Verify {
    const NAME: &'static str = "Verify";
    const READ_ONLY: bool = true;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        audit_signing(&r.key_id, &r.message_type, &r.signing_algorithm, r.dry_run)
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        let (message_type, alg) = check_signing_members(
            &mut c,
            r.message.as_ref(),
            r.message_type.as_deref(),
            r.signing_algorithm.as_deref(),
        );
        c.required("signature", &r.signature).blob_len(
            "signature",
            r.signature.as_ref().map(|s| s.0.as_slice()),
            1,
            6144,
        );
        check_grant_tokens(&mut c, &r.grant_tokens);
        c.finish()?;
        accept_grant_tokens(kms, &r.grant_tokens).await?;
        let message = present(r.message)?;
        let signature = present(r.signature)?;
        let alg = present(alg)?;
        let key = kms
            .signing
            .verify(
                call,
                &present(r.key_id)?,
                &message.0,
                message_type,
                alg,
                &signature.0,
                r.dry_run.unwrap_or(false),
            )
            .await?;
        Ok(Response {
            key_id: key.arn,
            signature_valid: true,
            signing_algorithm: alg.as_str(),
        })
    }
}
