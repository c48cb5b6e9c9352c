//! `DescribeKey`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{accept_grant_tokens, check_grant_tokens, check_key_id, present, Operation};
use crate::api::shapes::KeyMetadata;
use crate::api::validate::Checks;
use crate::service::{Call, Kms, KmsResult};

pub struct DescribeKey;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    grant_tokens: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    key_metadata: KeyMetadata,
}

impl Operation for DescribeKey {
    const NAME: &'static str = "DescribeKey";
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
        let key = kms.keys.describe_key(call, &present(r.key_id)?).await?;
        Ok(Response {
            key_metadata: KeyMetadata::of(kms, &key).await?,
        })
    }
}
