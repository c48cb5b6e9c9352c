//! `GenerateDataKeyPair`: a fresh key pair, its public key, its PKCS#8 private key, and that
//! private key encrypted under a symmetric key with the encryption context.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{accept_grant_tokens, check_grant_tokens, check_key_id, present, Operation};
use crate::api::shapes::{Blob, SecretBlob, WireContext};
use crate::api::validate::Checks;
use crate::model::DataKeyPairSpec;
use crate::service::data_key_pairs::PairOp;
use crate::service::{Call, Kms, KmsResult};

pub struct GenerateDataKeyPair;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    pub(super) key_id: Option<String>,
    pub(super) key_pair_spec: Option<String>,
    pub(super) encryption_context: Option<WireContext>,
    pub(super) grant_tokens: Option<Vec<String>>,
    pub(super) dry_run: Option<bool>,
    /// Accepted and ignored: there are no Nitro enclaves here, so the answer always carries
    /// `PrivateKeyPlaintext` and never `CiphertextForRecipient`.
    #[allow(dead_code)]
    pub(super) recipient: Option<Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    private_key_ciphertext_blob: Blob,
    private_key_plaintext: SecretBlob,
    public_key: Blob,
    key_id: String,
    key_pair_spec: &'static str,
}

impl Request {
    pub(super) fn audit(&self) -> Value {
        json!({
            "keyId": self.key_id,
            "keyPairSpec": self.key_pair_spec,
            "encryptionContext": self.encryption_context.as_ref().map(|c| &c.0),
            "dryRun": self.dry_run,
        })
    }

    /// Validates the members both operations share.
    pub(super) fn validate(&self) -> KmsResult<DataKeyPairSpec> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &self.key_id);
        c.required("keyPairSpec", &self.key_pair_spec);
        let spec = c.enum_value(
            "keyPairSpec",
            self.key_pair_spec.as_deref(),
            DataKeyPairSpec::parse,
            DataKeyPairSpec::wire_list(),
        );
        check_grant_tokens(&mut c, &self.grant_tokens);
        c.finish()?;
        present(spec)
    }

    /// Runs the operation.
    pub(super) async fn run(
        self,
        kms: &Kms,
        call: &mut Call,
        op: PairOp,
    ) -> KmsResult<(crate::service::data_key_pairs::DataKeyPair, DataKeyPairSpec)> {
        let spec = self.validate()?;
        accept_grant_tokens(kms, &self.grant_tokens).await?;
        let context = self.encryption_context.unwrap_or_default().0;
        let out = kms
            .data_key_pairs
            .generate_data_key_pair(
                call,
                &present(self.key_id)?,
                spec,
                &context,
                op,
                self.dry_run.unwrap_or(false),
            )
            .await?;
        Ok((out, spec))
    }
}

impl Operation for GenerateDataKeyPair {
    const NAME: &'static str = "GenerateDataKeyPair";
    const READ_ONLY: bool = true;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        r.audit()
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        let (out, spec) = r.run(kms, call, PairOp::GenerateDataKeyPair).await?;
        Ok(Response {
            private_key_ciphertext_blob: Blob(out.private_key_ciphertext),
            private_key_plaintext: SecretBlob(out.private_key),
            public_key: Blob(out.public_key),
            key_id: out.key.arn,
            key_pair_spec: spec.as_str(),
        })
    }
}
