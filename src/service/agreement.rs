//! Key agreement: `DeriveSharedSecret` (ECDH) with a `KEY_AGREEMENT` key. The service checks
//! the key, the algorithm and the peer's public key (DER SubjectPublicKeyInfo on the key's
//! curve, [`crate::crypto::peer_point`]); the private half works in the key's backend
//! ([`crate::backend::CryptoBackend::derive_shared_secret`]). The result is the raw ECC CDH
//! x-coordinate Z, with no KDF. It stays in a [`Zeroizing`] buffer and never reaches a log,
//! an error or an audit record.
//!
//! `Recipient` (a Nitro Enclaves attestation document) is accepted and ignored: this service
//! has no enclave attestation, so it always answers with the plaintext `SharedSecret` and no
//! `CiphertextForRecipient`.

use zeroize::Zeroizing;

use super::{part, Call, KmsError, KmsResult};
use crate::backend::MaterialId;
use crate::model::{KeyAgreementAlgorithm, KeyRecord, KeyUsage};

part!(
    /// DeriveSharedSecret.
    Agreement
);

/// The result of DeriveSharedSecret.
pub struct SharedSecret {
    pub key: KeyRecord,
    pub secret: Zeroizing<Vec<u8>>,
}

impl Agreement {
    /// Resolves, authorizes (`kms:KeyAgreementAlgorithm`; a grant operation), checks the key
    /// and the peer's public key, and derives; `dry_run` stops just before the derivation.
    pub async fn derive_shared_secret(
        &self,
        call: &mut Call,
        key_id: &str,
        algorithm: KeyAgreementAlgorithm,
        peer_public_key: &[u8],
        dry_run: bool,
    ) -> KmsResult<SharedSecret> {
        let key = self.resolve(call, key_id, true).await?;
        self.authorize_key(call, "DeriveSharedSecret", &key, None, |ctx| {
            ctx.set("kms:KeyAgreementAlgorithm", algorithm.as_str());
        })
        .await?;
        if key.key_usage != KeyUsage::KeyAgreement {
            return Err(KmsError::InvalidKeyUsage(format!(
                "{} key usage is {} which is not valid for DeriveSharedSecret.",
                key.arn, key.key_usage
            )));
        }
        if !key
            .key_spec
            .algorithms(key.key_usage)
            .key_agreement
            .contains(&algorithm)
        {
            return Err(KmsError::InvalidKeyUsage(format!(
                "Algorithm {algorithm} is incompatible with key spec {}.",
                key.key_spec
            )));
        }
        // An unparsable key, or one on another curve: AWS answers with an empty message.
        let peer = crate::crypto::peer_point(key.key_spec, peer_public_key)
            .map_err(|_| KmsError::Validation(String::new()))?;
        self.admit_crypto(call, &key)?;
        if dry_run {
            return Err(KmsError::DryRunOperation);
        }
        let m = MaterialId {
            key_id: &key.key_id,
            version: key.current_material,
            label: &key.arn,
            spec: key.key_spec,
        };
        let backend = self.backend_for(&key)?;
        let b = backend.as_ref();
        let secret = self
            .with_material(
                b,
                m,
                |e| self.backend_error(&key, e),
                || b.derive_shared_secret(m, &peer),
            )
            .await?;
        Ok(SharedSecret { key, secret })
    }
}
