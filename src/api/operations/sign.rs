//! `Sign`: a message (at most 4096 bytes) or its digest signed with an asymmetric key.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{accept_grant_tokens, check_grant_tokens, check_key_id, present, Operation};
use crate::api::shapes::{Blob, SecretBlob};
use crate::api::validate::Checks;
use crate::model::{MessageType, SigningAlgorithm};
use crate::service::{Call, Kms, KmsResult};

pub struct Sign;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    message: Option<SecretBlob>,
    message_type: Option<String>,
    grant_tokens: Option<Vec<String>>,
    signing_algorithm: Option<String>,
    dry_run: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    key_id: String,
    signature: Blob,
    signing_algorithm: &'static str,
}

/// Validates the members Sign and Verify share: `Message` (1-4096 bytes), `MessageType`
/// (RAW by default) and the required `SigningAlgorithm`.
pub fn check_signing_members(
    c: &mut Checks,
    message: Option<&SecretBlob>,
    message_type: Option<&str>,
    algorithm: Option<&str>,
) -> (MessageType, Option<SigningAlgorithm>) {
    c.required("message", &message)
        .blob_len("message", message.map(|m| m.0.as_slice()), 1, 4096);
    let mt = c.enum_value(
        "messageType",
        message_type,
        MessageType::parse,
        &MessageType::wire_list(),
    );
    c.required("signingAlgorithm", &algorithm);
    let alg = c.enum_value(
        "signingAlgorithm",
        algorithm,
        SigningAlgorithm::parse,
        &SigningAlgorithm::wire_list(),
    );
    (mt.unwrap_or(MessageType::Raw), alg)
}

/// `requestParameters` of Sign and Verify: never the message or the signature.
pub fn audit_signing(
    key_id: &Option<String>,
    message_type: &Option<String>,
    algorithm: &Option<String>,
    dry_run: Option<bool>,
) -> Value {
    json!({
        "keyId": key_id,
        "messageType": message_type.as_deref().unwrap_or("RAW"),
        "signingAlgorithm": algorithm,
        "dryRun": dry_run,
    })
}

impl Operation for Sign {
    const NAME: &'static str = "Sign";
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
        check_grant_tokens(&mut c, &r.grant_tokens);
        c.finish()?;
        accept_grant_tokens(kms, &r.grant_tokens).await?;
        let message = present(r.message)?;
        let alg = present(alg)?;
        let out = kms
            .signing
            .sign(
                call,
                &present(r.key_id)?,
                &message.0,
                message_type,
                alg,
                r.dry_run.unwrap_or(false),
            )
            .await?;
        Ok(Response {
            key_id: out.key.arn,
            signature: Blob(out.signature),
            signing_algorithm: alg.as_str(),
        })
    }
}
