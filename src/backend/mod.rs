//! Where key material lives and cryptography runs.
//!
//! A [`CryptoBackend`] generates key material, hands it to the service only *wrapped* (for the
//! metadata store), and performs the private-key and secret-key operations with it: AES-256-GCM
//! for symmetric keys, signing, RSA decryption, HMAC and ECDH for the other key specs. Public-key
//! operations (Verify, RSA Encrypt) run on the host against the stored public key
//! (`crate::crypto`), never here. The service never sees unwrapped key
//! material; a backend may cache unwrapped key objects (handles) keyed by key id and material
//! version. Errors are classified ([`BackendError`]) and mapped to the wire by the service.
//!
//! Backends: [`software`] (development root; key file on disk) and [`pkcs11`] (HSM root). The
//! XKS backend plugs in behind the same trait.

pub mod pkcs11;
pub use pkcs11::cluster;
pub mod software;
pub mod xks;

use zeroize::Zeroizing;

use crate::model::{
    EncryptionAlgorithm, KeyId, KeySpec, MacAlgorithm, SigningAlgorithm, WrappingAlgorithm,
    WrappingKeySpec,
};

/// Errors of the backend layer, classified so that callers never match on strings.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Authentication of a ciphertext failed, or it is malformed.
    #[error("invalid ciphertext")]
    InvalidCiphertext,
    /// The backend has no usable object for this material version: the caller loads the
    /// wrapped material from the store, hands it over with [`CryptoBackend::load`], and retries.
    #[error("key material not loaded")]
    MaterialNeeded,
    /// The wrapped material could not be unwrapped (wrong root, corrupted store).
    #[error("key material could not be unwrapped")]
    Unwrap,
    /// Imported key material does not fit the key (length, curve, modulus, format); the text
    /// is for the caller and never contains material.
    #[error("incorrect key material: {0}")]
    IncorrectKeyMaterial(String),
    /// The backend cannot do this (mechanism missing, key spec not supported).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The backend is not reachable right now.
    #[error("backend unavailable")]
    Unavailable { retryable: bool },
    /// The backend did not answer in time.
    #[error("backend timeout")]
    Timeout,
    /// No HSM session became free within the deadline (overload).
    #[error("backend busy")]
    Busy,
    /// The key's backing object is gone from the key store.
    #[error("key material missing from the key store")]
    KeyMaterialMissing,
    /// A PKCS#11 failure that fits none of the classes above (the return value and the
    /// function stay typed inside).
    #[error(transparent)]
    Pkcs11(hsm::Pkcs11Error),
    /// The HSM threads ended the job without a result (shutdown).
    #[error("the HSM threads are gone")]
    ThreadsGone,
    /// Anything else: a bug or a resource failure; the text is for logs (never secrets).
    #[error("backend failure: {0}")]
    Internal(&'static str),
}

pub type BackendResult<T> = Result<T, BackendError>;

/// Identifies one key material version.
#[derive(Debug, Clone, Copy)]
pub struct MaterialId<'a> {
    pub key_id: &'a KeyId,
    pub version: u32,
    /// The key ARN: the label of the key's backing object in a cluster.
    pub label: &'a str,
    /// The key's spec: what kind of object the wrapped material unwraps to.
    pub spec: KeySpec,
}

/// Newly generated key material of a non-symmetric spec.
pub struct Generated {
    /// The material wrapped under the root (as stored; never plaintext).
    pub wrapped: Vec<u8>,
    /// Asymmetric specs: the public key as DER SubjectPublicKeyInfo. `None` for HMAC.
    pub public_key: Option<Vec<u8>>,
}

pub use crate::crypto::SignInput;

/// A wrapping key pair made for an import (GetParametersForImport): the public key goes to the
/// caller, the private key only wrapped under the root (it travels inside the import token).
pub struct WrappingKeyPair {
    /// DER SubjectPublicKeyInfo.
    pub public_spki: Vec<u8>,
    /// The private key wrapped under the root; never plaintext.
    pub wrapped_private: Vec<u8>,
}

/// How imported material arrives: the wrapping key pair's private key (wrapped, as made by
/// [`CryptoBackend::create_wrapping_key`]), its spec, and the algorithm the caller used.
#[derive(Clone, Copy)]
pub struct ImportWrapping<'a> {
    pub spec: WrappingKeySpec,
    pub algorithm: WrappingAlgorithm,
    pub wrapped_private: &'a [u8],
}

/// Imported material, checked against the key spec and re-wrapped under the root.
pub struct Imported {
    /// The material wrapped under the root, as stored (never plaintext).
    pub wrapped: Vec<u8>,
    /// Asymmetric specs: the public key derived from the private key (DER SPKI).
    pub public_key: Option<Vec<u8>>,
    /// A fingerprint of the material computed without exporting it (module docs of
    /// `service::import`): the key material id is derived from it.
    pub fingerprint: Vec<u8>,
}

/// The label whose HMAC is the fingerprint of imported HMAC material.
pub const HMAC_FINGERPRINT_LABEL: &[u8] = b"kms/key-material-fingerprint/v1";

/// Output of an AEAD encryption: the IV the backend chose and ciphertext with the tag appended.
pub struct Sealed {
    pub iv: [u8; 12],
    pub ciphertext_and_tag: Vec<u8>,
}

/// The crypto backend of a key store.
///
/// Async: a backend whose calls block (PKCS#11) submits only the blocking call itself to the
/// HSM threads and awaits it. A backend never reads the metadata store: when it has no usable
/// object for a material version it answers [`BackendError::MaterialNeeded`], and the service
/// hands it the wrapped material ([`CryptoBackend::load`]) and retries.
#[async_trait::async_trait]
pub trait CryptoBackend: Send + Sync {
    /// Short name for logs and metrics (`software`, `pkcs11`, ...).
    fn name(&self) -> &'static str;

    /// Generates a new 256-bit symmetric key material version and returns it wrapped.
    async fn generate_symmetric(&self, material: MaterialId<'_>) -> BackendResult<Vec<u8>>;

    /// Makes a material version usable from its wrapped form (as stored).
    async fn load(&self, material: MaterialId<'_>, wrapped: &[u8]) -> BackendResult<()>;

    /// AES-256-GCM encryption with a fresh 96-bit IV and a 128-bit tag.
    async fn encrypt(
        &self,
        material: MaterialId<'_>,
        plaintext: &[u8],
        aad: &[u8],
    ) -> BackendResult<Sealed>;

    /// AES-256-GCM decryption; [`BackendError::InvalidCiphertext`] on any authentication failure.
    async fn decrypt(
        &self,
        material: MaterialId<'_>,
        iv: &[u8; 12],
        ciphertext_and_tag: &[u8],
        aad: &[u8],
    ) -> BackendResult<Zeroizing<Vec<u8>>>;

    /// Generates material of a non-symmetric spec (HMAC, RSA, ECC, ...) and returns it wrapped,
    /// with its public key. The private or secret part never leaves the backend unwrapped.
    /// A spec this backend cannot hold gives [`BackendError::Unsupported`] with a message
    /// the service passes to the caller.
    async fn generate(&self, material: MaterialId<'_>) -> BackendResult<Generated> {
        Err(BackendError::Unsupported(format!(
            "KeySpec {} is not supported by this key store.",
            material.spec
        )))
    }

    /// Signs with an asymmetric private key; the result is in its wire encoding (DER ECDSA,
    /// k-byte RSA, raw Ed25519 or ML-DSA).
    async fn sign(
        &self,
        material: MaterialId<'_>,
        algorithm: SigningAlgorithm,
        input: SignInput<'_>,
    ) -> BackendResult<Vec<u8>> {
        let _ = (algorithm, input);
        Err(BackendError::Unsupported(format!(
            "KeySpec {} is not supported by this key store.",
            material.spec
        )))
    }

    /// RSAES-OAEP decryption (empty label, MGF1 with the OAEP hash);
    /// [`BackendError::InvalidCiphertext`] when the decoding fails.
    async fn decrypt_asymmetric(
        &self,
        material: MaterialId<'_>,
        algorithm: EncryptionAlgorithm,
        ciphertext: &[u8],
    ) -> BackendResult<Zeroizing<Vec<u8>>> {
        let _ = (algorithm, ciphertext);
        Err(BackendError::Unsupported(format!(
            "KeySpec {} is not supported by this key store.",
            material.spec
        )))
    }

    /// HMAC of `message` with an HMAC key (RFC 2104). The service verifies a MAC by computing it
    /// and comparing in constant time.
    async fn mac(
        &self,
        material: MaterialId<'_>,
        algorithm: MacAlgorithm,
        message: &[u8],
    ) -> BackendResult<Vec<u8>> {
        let _ = (algorithm, message);
        Err(BackendError::Unsupported(format!(
            "KeySpec {} is not supported by this key store.",
            material.spec
        )))
    }

    /// ECDH with a KEY_AGREEMENT key: the raw shared secret Z (the x-coordinate, no KDF).
    /// `peer_point` is the peer's uncompressed point `04 || X || Y` on the key's curve, already
    /// checked by the service.
    async fn derive_shared_secret(
        &self,
        material: MaterialId<'_>,
        peer_point: &[u8],
    ) -> BackendResult<Zeroizing<Vec<u8>>> {
        let _ = peer_point;
        Err(BackendError::Unsupported(format!(
            "KeySpec {} is not supported by this key store.",
            material.spec
        )))
    }

    /// Whether this root can unwrap material of `spec` wrapped with `algorithm`; `Err` with
    /// the reason (for the caller) when it cannot. The service checks AWS's table first.
    fn import_support(&self, spec: KeySpec, algorithm: WrappingAlgorithm) -> Result<(), String> {
        let _ = (spec, algorithm);
        Err("this key store does not import key material".into())
    }

    /// Makes an RSA wrapping key pair for an import.
    async fn create_wrapping_key(&self, spec: WrappingKeySpec) -> BackendResult<WrappingKeyPair> {
        Err(BackendError::Unsupported(format!(
            "WrappingKeySpec {spec} is not supported by this key store."
        )))
    }

    /// Unwraps imported material with the wrapping key pair's private key, checks it against
    /// `material.spec`, and returns it re-wrapped under the root with its fingerprint. The
    /// plaintext material stays inside the backend (the token, for an HSM root).
    /// [`BackendError::InvalidCiphertext`] when the wrapped material does not unwrap,
    /// [`BackendError::IncorrectKeyMaterial`] when it is not material of the spec.
    async fn import_material(
        &self,
        material: MaterialId<'_>,
        wrapping: ImportWrapping<'_>,
        encrypted: &[u8],
    ) -> BackendResult<Imported> {
        let _ = (wrapping, encrypted);
        Err(BackendError::Unsupported(format!(
            "KeySpec {} is not supported by this key store.",
            material.spec
        )))
    }

    /// Cryptographically secure random bytes.
    async fn random(&self, len: usize) -> BackendResult<Zeroizing<Vec<u8>>>;

    /// Drops cached objects of a key (called when the key is deleted).
    fn forget(&self, key_id: &KeyId);

    /// Unwrapped material versions held now, for a backend with a bounded cache (metrics).
    fn cached_versions(&self) -> Option<usize> {
        None
    }
}
