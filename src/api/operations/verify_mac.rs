//! `VerifyMac`: recomputes the HMAC and compares in constant time; a mismatch is
//! `KMSInvalidMacException` (never `MacValid: false`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::generate_mac::{audit_mac, check_mac_members};
use super::{accept_grant_tokens, check_grant_tokens, check_key_id, present, Operation};
use crate::api::shapes::{Blob, SecretBlob};
use crate::api::validate::Checks;
use crate::service::{Call, Kms, KmsResult};

pub struct VerifyMac;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    message: Option<SecretBlob>,
    mac_algorithm: Option<String>,
    mac: Option<Blob>,
    grant_tokens: Option<Vec<String>>,
    dry_run: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    key_id: String,
    mac_valid: bool,
    mac_algorithm: &'static str,
}

impl Operation for VerifyMac {
    const NAME: &'static str = "VerifyMac";
    const READ_ONLY: bool = true;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        audit_mac(&r.key_id, &r.mac_algorithm, r.dry_run)
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        let alg = check_mac_members(&mut c, r.message.as_ref(), r.mac_algorithm.as_deref());
        c.required("mac", &r.mac)
            .blob_len("mac", r.mac.as_ref().map(|m| m.0.as_slice()), 1, 6144);
        check_grant_tokens(&mut c, &r.grant_tokens);
        c.finish()?;
        accept_grant_tokens(kms, &r.grant_tokens).await?;
        let message = present(r.message)?;
        let mac = present(r.mac)?;
        let alg = present(alg)?;
        let key = kms
            .mac
            .verify_mac(
                call,
                &present(r.key_id)?,
                &message.0,
                alg,
                &mac.0,
                r.dry_run.unwrap_or(false),
            )
            .await?;
        Ok(Response {
            key_id: key.arn,
            mac_valid: true,
            mac_algorithm: alg.as_str(),
        })
    }
}
