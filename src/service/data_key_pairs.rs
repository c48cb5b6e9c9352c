//! Data key pairs: `GenerateDataKeyPair` and `GenerateDataKeyPairWithoutPlaintext`. A fresh key
//! pair of the requested `KeyPairSpec` is made on the host ([`crate::crypto::generate_key_pair`];
//! RSA on the blocking pool) and never stored: its private key leaves the service anyway, so
//! generating it outside the HSM costs no confidentiality on either root. The PKCS#8 private key
//! is encrypted under a symmetric `ENCRYPT_DECRYPT` key by the ordinary symmetric path, bound to
//! the request's encryption context, so `Decrypt` with the same context returns the PKCS#8 bytes.
//! The plaintext private key stays in a [`Zeroizing`] buffer until the response is serialized.

use zeroize::Zeroizing;

use super::ciphertext::EncryptionContext;
use super::crypto::CryptoOp;
use super::{part, Call, InternalCause, KmsError, KmsResult, StateRule};
use crate::crypto::{CryptoError, KeyPair};
use crate::model::{DataKeyPairSpec, EncryptionAlgorithm, KeyFamily, KeyRecord, KeySpec};

part!(
    /// GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext.
    DataKeyPairs
);

/// Which of the two operations runs (the name in errors and authorization).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairOp {
    GenerateDataKeyPair,
    GenerateDataKeyPairWithoutPlaintext,
}

impl PairOp {
    pub fn name(self) -> &'static str {
        match self {
            PairOp::GenerateDataKeyPair => "GenerateDataKeyPair",
            PairOp::GenerateDataKeyPairWithoutPlaintext => "GenerateDataKeyPairWithoutPlaintext",
        }
    }
}

/// A generated data key pair.
pub struct DataKeyPair {
    /// The symmetric key that encrypted the private key.
    pub key: KeyRecord,
    /// DER SubjectPublicKeyInfo.
    pub public_key: Vec<u8>,
    /// DER PKCS#8 PrivateKeyInfo.
    pub private_key: Zeroizing<Vec<u8>>,
    /// The private key encrypted under `key` (an ordinary symmetric ciphertext blob).
    pub private_key_ciphertext: Vec<u8>,
}

impl DataKeyPairs {
    /// Resolves, authorizes (`kms:EncryptionContext*`, `kms:EncryptionAlgorithm`,
    /// `kms:DataKeyPairSpec`; grant operations), checks the key, generates the pair and encrypts
    /// its private key; `dry_run` stops just before the generation.
    pub async fn generate_data_key_pair(
        &self,
        call: &mut Call,
        key_id: &str,
        spec: DataKeyPairSpec,
        context: &EncryptionContext,
        op: PairOp,
        dry_run: bool,
    ) -> KmsResult<DataKeyPair> {
        // SM2 exists only in AWS's China Regions; elsewhere AWS refuses it (as CreateKey does).
        if spec == DataKeyPairSpec::Sm2 && !self.region_of(call).starts_with("cn-") {
            return Err(KmsError::UnsupportedOperation(
                "KeyPairSpec SM2 is not supported in this Region".into(),
            ));
        }
        let key = self.resolve(call, key_id, true).await?;
        self.authorize_key(call, op.name(), &key, Some(context), |ctx| {
            ctx.set(
                "kms:EncryptionAlgorithm",
                EncryptionAlgorithm::SymmetricDefault.as_str(),
            )
            .set("kms:DataKeyPairSpec", spec.as_str());
        })
        .await?;
        let crypto_op = match op {
            PairOp::GenerateDataKeyPair => CryptoOp::GenerateDataKeyPair,
            PairOp::GenerateDataKeyPairWithoutPlaintext => {
                CryptoOp::GenerateDataKeyPairWithoutPlaintext
            }
        };
        self.check_symmetric(&key, crypto_op, None)?;
        if key.custom_key_store_id.is_some() {
            return Err(super::in_custom_key_store(&key));
        }
        self.admit_quota(call, super::quotas::Quota::DataKeyPair(spec))?;
        self.check_state(&key, StateRule::Crypto)?;
        if dry_run {
            return Err(KmsError::DryRunOperation);
        }
        let pair = generate(spec.key_spec()).await?;
        let private_key_ciphertext = self.seal(call, &key, &pair.private_pkcs8, context).await?;
        Ok(DataKeyPair {
            key,
            public_key: pair.public_spki,
            private_key: pair.private_pkcs8,
            private_key_ciphertext,
        })
    }
}

/// Generates a pair; RSA (tens to hundreds of milliseconds) on the blocking pool.
async fn generate(spec: KeySpec) -> KmsResult<KeyPair> {
    let result = if spec.family() == KeyFamily::Rsa {
        tokio::task::spawn_blocking(move || crate::crypto::generate_key_pair(spec))
            .await
            .map_err(|_| {
                KmsError::internal_because(InternalCause::Invariant(
                    "key pair generation did not finish",
                ))
            })?
    } else {
        crate::crypto::generate_key_pair(spec)
    };
    result.map_err(|e| match e {
        CryptoError::Unsupported(_) => KmsError::UnsupportedOperation(format!(
            "KeyPairSpec {spec} is not supported by this server."
        )),
        other => {
            tracing::error!(spec = %spec, error = %other, "data key pair generation failed");
            KmsError::internal_because(InternalCause::Invariant("data key pair generation failed"))
        }
    })
}
