//! Asymmetric signing: GetPublicKey, Sign and Verify (reference key-types.md §2.2-§2.3).
//!
//! Owns the rules of these operations: which keys they take (usage SIGN_VERIFY, the key's own
//! algorithms), what a message is under each `MessageType` (RAW is hashed here for the
//! algorithms that sign a digest; DIGEST must have the hash's length; EXTERNAL_MU is ML-DSA's
//! 64-byte μ; pure Ed25519 takes RAW only and Ed25519ph DIGEST only), and where the work runs:
//! signing in the key's backend (the private key never leaves it), verification on the host
//! against the stored public key (`crate::crypto::verify`). A signature that does not verify is
//! `KMSInvalidSignatureException`, never `SignatureValid: false`.
//!
//! Wording where the reference records none (choices, not AWS recordings): a message type a
//! spec cannot take is `Message type DIGEST is incompatible with key spec ML_DSA_44.` (seen from
//! an emulator validated against AWS); one an Ed25519 algorithm cannot take is `Message type RAW
//! is incompatible with algorithm ED25519_PH_SHA_512.`; GetPublicKey on a symmetric or HMAC key
//! is UnsupportedOperationException `<arn> key spec is HMAC_256 which is not valid for
//! GetPublicKey.`. Order of checks: resolve, authorize, usage, algorithm, message, key state,
//! DryRun.

use super::{part, Call, KmsError, KmsResult, StateRule};
use crate::backend::MaterialId;
use crate::crypto::SignInput;
use crate::model::{KeyFamily, KeyRecord, KeySpec, KeyUsage, MessageType, SigningAlgorithm};

/// Result of Sign.
pub struct Signed {
    pub key: KeyRecord,
    pub signature: Vec<u8>,
}

/// A message as the backend or `crypto::verify` takes it; RAW messages of hashing algorithms
/// are hashed here.
enum Input {
    /// The hash the service computed of a RAW message.
    Hashed(Vec<u8>),
    Digest,
    Message,
    Mu,
}

impl Input {
    fn with<'a>(&'a self, message: &'a [u8]) -> SignInput<'a> {
        match self {
            Input::Hashed(h) => SignInput::Digest(h),
            Input::Digest => SignInput::Digest(message),
            Input::Message => SignInput::Message(message),
            Input::Mu => SignInput::Mu(message),
        }
    }
}

part!(
    /// GetPublicKey, Sign, Verify.
    Signing
);

impl Signing {
    /// GetPublicKey: the key (with its stored SPKI) of an asymmetric key. Symmetric and HMAC
    /// keys: UnsupportedOperationException.
    pub async fn get_public_key(&self, call: &mut Call, key_id: &str) -> KmsResult<KeyRecord> {
        let key = self.resolve(call, key_id, true).await?;
        self.authorize_key(call, "GetPublicKey", &key, None, |_| {})
            .await?;
        if !key.key_spec.is_asymmetric() {
            return Err(KmsError::UnsupportedOperation(format!(
                "{} key spec is {} which is not valid for GetPublicKey.",
                key.arn, key.key_spec
            )));
        }
        self.check_state(&key, StateRule::Crypto)?;
        if key.public_key.is_none() {
            return Err(KmsError::internal_because(super::InternalCause::Invariant(
                "an asymmetric key has no public key",
            )));
        }
        Ok(key)
    }

    /// Resolves, authorizes and checks a Sign or Verify request; returns the key and how its
    /// message is to be passed on.
    async fn prepare(
        &self,
        call: &mut Call,
        operation: &str,
        key_id: &str,
        message: &[u8],
        message_type: MessageType,
        algorithm: SigningAlgorithm,
    ) -> KmsResult<(KeyRecord, Input)> {
        let key = self.resolve(call, key_id, true).await?;
        self.authorize_key(call, operation, &key, None, |ctx| {
            ctx.set("kms:SigningAlgorithm", algorithm.as_str())
                .set("kms:MessageType", message_type.as_str());
        })
        .await?;
        if key.key_usage != KeyUsage::SignVerify {
            return Err(KmsError::InvalidKeyUsage(format!(
                "{} key usage is {} which is not valid for {operation}.",
                key.arn, key.key_usage
            )));
        }
        if !key
            .key_spec
            .algorithms(key.key_usage)
            .signing
            .contains(&algorithm)
        {
            return Err(KmsError::InvalidKeyUsage(format!(
                "Algorithm {algorithm} is incompatible with key spec {}.",
                key.key_spec
            )));
        }
        let input = message_input(key.key_spec, message, message_type, algorithm)?;
        self.admit_crypto(call, &key)?;
        Ok((key, input))
    }

    /// Sign: in the key's backend. `dry_run` stops after every check.
    pub async fn sign(
        &self,
        call: &mut Call,
        key_id: &str,
        message: &[u8],
        message_type: MessageType,
        algorithm: SigningAlgorithm,
        dry_run: bool,
    ) -> KmsResult<Signed> {
        let (key, input) = self
            .prepare(call, "Sign", key_id, message, message_type, algorithm)
            .await?;
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
        let signing_input = input.with(message);
        let signature = self
            .with_material(
                b,
                m,
                |e| self.backend_error(&key, e),
                || b.sign(m, algorithm, signing_input),
            )
            .await?;
        Ok(Signed { key, signature })
    }

    /// Verify: on the host, against the stored public key. A signature that does not verify
    /// (malformed included) is `KMSInvalidSignatureException`.
    #[allow(clippy::too_many_arguments)]
    pub async fn verify(
        &self,
        call: &mut Call,
        key_id: &str,
        message: &[u8],
        message_type: MessageType,
        algorithm: SigningAlgorithm,
        signature: &[u8],
        dry_run: bool,
    ) -> KmsResult<KeyRecord> {
        let (key, input) = self
            .prepare(call, "Verify", key_id, message, message_type, algorithm)
            .await?;
        if dry_run {
            return Err(KmsError::DryRunOperation);
        }
        let Some(spki) = key.public_key.as_deref() else {
            return Err(KmsError::internal_because(super::InternalCause::Invariant(
                "an asymmetric key has no public key",
            )));
        };
        match crate::crypto::verify(spki, algorithm, input.with(message), signature) {
            Ok(true) => Ok(key),
            Ok(false) => Err(KmsError::KmsInvalidSignature),
            // An algorithm the host cannot verify (Ed25519ph): said as such, like Sign does.
            Err(crate::crypto::CryptoError::Unsupported(m)) => {
                Err(KmsError::UnsupportedOperation(m))
            }
            Err(e) => {
                tracing::error!(key = %key.arn, error = %e, "verification could not run");
                Err(KmsError::internal())
            }
        }
    }
}

/// Checks a message against its type and the algorithm, and says how it is signed.
fn message_input(
    spec: KeySpec,
    message: &[u8],
    message_type: MessageType,
    algorithm: SigningAlgorithm,
) -> KmsResult<Input> {
    let incompatible_type = || {
        KmsError::Validation(format!(
            "Message type {message_type} is incompatible with key spec {spec}."
        ))
    };
    let incompatible_algorithm = || {
        KmsError::Validation(format!(
            "Message type {message_type} is incompatible with algorithm {algorithm}."
        ))
    };
    let is_ml_dsa = spec.family() == KeyFamily::MlDsa;
    match message_type {
        MessageType::ExternalMu => {
            if !is_ml_dsa {
                return Err(incompatible_type());
            }
            if message.len() != 64 {
                return Err(KmsError::Validation(format!(
                    "External Mu is invalid length for algorithm {algorithm}."
                )));
            }
            Ok(Input::Mu)
        }
        MessageType::Digest => {
            if is_ml_dsa {
                return Err(incompatible_type());
            }
            // Pure Ed25519 signs the message itself: it takes RAW only.
            let Some(hash) = algorithm.hash() else {
                return Err(incompatible_algorithm());
            };
            if message.len() != hash.output_len() {
                return Err(KmsError::Validation(format!(
                    "Digest is invalid length for algorithm {algorithm}."
                )));
            }
            Ok(Input::Digest)
        }
        MessageType::Raw => {
            // Ed25519ph takes the SHA-512 digest only (AWS: DIGEST only).
            if algorithm == SigningAlgorithm::Ed25519PhSha512 {
                return Err(incompatible_algorithm());
            }
            match algorithm.hash() {
                Some(h) => Ok(Input::Hashed(crate::crypto::hash(h, message))),
                None => Ok(Input::Message),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use MessageType as M;
    use SigningAlgorithm as S;

    fn err(spec: KeySpec, m: &[u8], mt: MessageType, alg: SigningAlgorithm) -> String {
        match message_input(spec, m, mt, alg) {
            Err(KmsError::Validation(msg)) => msg,
            Err(other) => panic!("not a ValidationException: {other:?}"),
            Ok(_) => panic!("{spec} {mt} {alg} accepted"),
        }
    }

    #[test]
    fn digests_must_have_the_hash_length() {
        for (alg, len) in [
            (S::RsassaPssSha256, 32),
            (S::RsassaPkcs1V15Sha384, 48),
            (S::EcdsaSha512, 64),
            (S::Ed25519PhSha512, 64),
        ] {
            let spec = match alg {
                S::EcdsaSha512 => KeySpec::EccNistP521,
                S::Ed25519PhSha512 => KeySpec::EccNistEdwards25519,
                _ => KeySpec::Rsa2048,
            };
            assert!(matches!(
                message_input(spec, &vec![0; len], M::Digest, alg),
                Ok(Input::Digest)
            ));
            for bad in [len - 1, len + 1] {
                assert_eq!(
                    err(spec, &vec![0; bad], M::Digest, alg),
                    format!("Digest is invalid length for algorithm {alg}.")
                );
            }
        }
    }

    #[test]
    fn message_type_rules() {
        assert_eq!(
            err(
                KeySpec::EccNistP256,
                &[0; 64],
                M::ExternalMu,
                S::EcdsaSha256
            ),
            "Message type EXTERNAL_MU is incompatible with key spec ECC_NIST_P256."
        );
        assert_eq!(
            err(KeySpec::MlDsa65, &[0; 32], M::Digest, S::MlDsaShake256),
            "Message type DIGEST is incompatible with key spec ML_DSA_65."
        );
        assert_eq!(
            err(KeySpec::MlDsa44, &[0; 63], M::ExternalMu, S::MlDsaShake256),
            "External Mu is invalid length for algorithm ML_DSA_SHAKE_256."
        );
        assert!(matches!(
            message_input(KeySpec::MlDsa44, &[0; 64], M::ExternalMu, S::MlDsaShake256),
            Ok(Input::Mu)
        ));
        assert!(matches!(
            message_input(KeySpec::MlDsa44, b"m", M::Raw, S::MlDsaShake256),
            Ok(Input::Message)
        ));
        let ed = KeySpec::EccNistEdwards25519;
        assert_eq!(
            err(ed, &[0; 64], M::Digest, S::Ed25519Sha512),
            "Message type DIGEST is incompatible with algorithm ED25519_SHA_512."
        );
        assert_eq!(
            err(ed, b"m", M::Raw, S::Ed25519PhSha512),
            "Message type RAW is incompatible with algorithm ED25519_PH_SHA_512."
        );
        assert!(matches!(
            message_input(ed, b"m", M::Raw, S::Ed25519Sha512),
            Ok(Input::Message)
        ));
    }
}
