//! `GenerateMac`: the HMAC of a message (1-4096 bytes) under an HMAC key.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{accept_grant_tokens, check_grant_tokens, check_key_id, present, Operation};
use crate::api::shapes::{Blob, SecretBlob};
use crate::api::validate::Checks;
use crate::model::MacAlgorithm;
use crate::service::{Call, Kms, KmsResult};

pub struct GenerateMac;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    message: Option<SecretBlob>,
    mac_algorithm: Option<String>,
    grant_tokens: Option<Vec<String>>,
    dry_run: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    mac: Blob,
    mac_algorithm: &'static str,
    key_id: String,
}

/// Validates the members GenerateMac and VerifyMac share: `Message` (1-4096 bytes) and the
/// required `MacAlgorithm`.
pub fn check_mac_members(
    c: &mut Checks,
    message: Option<&SecretBlob>,
    algorithm: Option<&str>,
) -> Option<MacAlgorithm> {
    c.required("message", &message)
        .blob_len("message", message.map(|m| m.0.as_slice()), 1, 4096);
    c.required("macAlgorithm", &algorithm);
    c.enum_value(
        "macAlgorithm",
        algorithm,
        MacAlgorithm::parse,
        MAC_ALGORITHMS_AS_AWS_LISTS_THEM,
    )
}

/// The `MacAlgorithmSpec` set in the order AWS prints it in a ValidationException (recorded
/// AWS response, docs/errors.md), which is not the model's order.
const MAC_ALGORITHMS_AS_AWS_LISTS_THEM: &str =
    "[HMAC_SHA_384, HMAC_SHA_256, HMAC_SHA_224, HMAC_SHA_512]";

/// `requestParameters` of GenerateMac and VerifyMac: never the message or the MAC.
pub fn audit_mac(
    key_id: &Option<String>,
    algorithm: &Option<String>,
    dry_run: Option<bool>,
) -> Value {
    json!({ "keyId": key_id, "macAlgorithm": algorithm, "dryRun": dry_run })
}

impl Operation for GenerateMac {
    const NAME: &'static str = "GenerateMac";
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
        check_grant_tokens(&mut c, &r.grant_tokens);
        c.finish()?;
        accept_grant_tokens(kms, &r.grant_tokens).await?;
        let message = present(r.message)?;
        let alg = present(alg)?;
        let (key, mac) = kms
            .mac
            .generate_mac(
                call,
                &present(r.key_id)?,
                &message.0,
                alg,
                r.dry_run.unwrap_or(false),
            )
            .await?;
        Ok(Response {
            mac: Blob(mac),
            mac_algorithm: alg.as_str(),
            key_id: key.arn,
        })
    }
}
