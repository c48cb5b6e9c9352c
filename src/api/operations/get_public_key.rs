//! `GetPublicKey`: the DER SubjectPublicKeyInfo of an asymmetric key, with its spec, usage and
//! algorithm list. No `DryRun`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{accept_grant_tokens, check_grant_tokens, check_key_id, present, Operation};
use crate::api::shapes::{AlgorithmLists, Blob};
use crate::api::validate::Checks;
use crate::service::{Call, Kms, KmsResult};

pub struct GetPublicKey;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    grant_tokens: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    key_id: String,
    public_key: Blob,
    customer_master_key_spec: &'static str,
    key_spec: &'static str,
    key_usage: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption_algorithms: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signing_algorithms: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_agreement_algorithms: Option<Vec<&'static str>>,
}

impl Operation for GetPublicKey {
    const NAME: &'static str = "GetPublicKey";
    const READ_ONLY: bool = true;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        json!({ "keyId": r.key_id })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        check_grant_tokens(&mut c, &r.grant_tokens);
        c.finish()?;
        accept_grant_tokens(kms, &r.grant_tokens).await?;
        let key = kms
            .signing
            .get_public_key(call, &present(r.key_id)?)
            .await?;
        let lists = AlgorithmLists::of(key.key_spec, key.key_usage);
        Ok(Response {
            key_id: key.arn,
            public_key: Blob(key.public_key.unwrap_or_default()),
            customer_master_key_spec: key.key_spec.as_str(),
            key_spec: key.key_spec.as_str(),
            key_usage: key.key_usage.as_str(),
            encryption_algorithms: lists.encryption,
            signing_algorithms: lists.signing,
            key_agreement_algorithms: lists.key_agreement,
        })
    }
}
