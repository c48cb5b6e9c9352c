//! `GenerateDataKeyPairWithoutPlaintext`: as `GenerateDataKeyPair`, without the plaintext
//! private key in the response (the generated one is dropped, zeroized).

use serde::Serialize;
use serde_json::Value;

use super::generate_data_key_pair::Request;
use super::Operation;
use crate::api::shapes::Blob;
use crate::service::data_key_pairs::PairOp;
use crate::service::{Call, Kms, KmsResult};

pub struct GenerateDataKeyPairWithoutPlaintext;

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    private_key_ciphertext_blob: Blob,
    public_key: Blob,
    key_id: String,
    key_pair_spec: &'static str,
}

impl Operation for GenerateDataKeyPairWithoutPlaintext {
    const NAME: &'static str = "GenerateDataKeyPairWithoutPlaintext";
    const READ_ONLY: bool = true;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        r.audit()
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        let (out, spec) = r
            .run(kms, call, PairOp::GenerateDataKeyPairWithoutPlaintext)
            .await?;
        Ok(Response {
            private_key_ciphertext_blob: Blob(out.private_key_ciphertext),
            public_key: Blob(out.public_key),
            key_id: out.key.arn,
            key_pair_spec: spec.as_str(),
        })
    }
}
