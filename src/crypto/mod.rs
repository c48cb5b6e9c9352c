//! Host-side cryptography for the non-symmetric key specs.
//!
//! Owns: public-key operations against a key's stored SubjectPublicKeyInfo (Verify, RSA-OAEP
//! Encrypt, checking a peer's public key for ECDH), data key pairs (GenerateDataKeyPair, whose
//! private key leaves the service anyway), the encodings the PKCS#11 root needs (SPKI from token
//! attributes, ECDSA `r || s` <-> DER), and the private-key operations of the *software root*
//! on PKCS#8 material it has just unwrapped. The PKCS#11 root never hands private material here.
//!
//! Everything is synchronous and CPU-bound; callers on async workers keep calls short (RSA key
//! generation belongs on the blocking pool).

use zeroize::Zeroizing;

use crate::model::{EncryptionAlgorithm, HashAlg, KeySpec, MacAlgorithm, SigningAlgorithm};

/// Errors of host-side cryptography.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// A public key (stored or sent by a caller) does not parse or is not on the expected curve.
    #[error("invalid public key")]
    InvalidPublicKey,
    /// Private material does not parse (corrupt store or wrong root).
    #[error("invalid private key")]
    InvalidPrivateKey,
    /// OAEP decoding failed (wrong key, wrong algorithm, corrupt ciphertext).
    #[error("decryption failed")]
    Decrypt,
    /// This spec or algorithm is not implemented on the host.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A library failure that fits none of the above (the text is for logs, never secrets).
    #[error("crypto failure: {0}")]
    Internal(&'static str),
}

pub type CryptoResult<T> = Result<T, CryptoError>;

/// What a signing call signs (see `backend::CryptoBackend::sign`).
#[derive(Debug, Clone, Copy)]
pub enum SignInput<'a> {
    /// The hash of the message under the algorithm's hash (RSA PSS and PKCS#1 v1.5, ECDSA,
    /// Ed25519ph): RAW messages are hashed by the service, DIGEST messages are passed as sent.
    Digest(&'a [u8]),
    /// The message itself (pure Ed25519; ML-DSA with MessageType RAW).
    Message(&'a [u8]),
    /// ML-DSA's 64-byte message representative μ (MessageType EXTERNAL_MU).
    Mu(&'a [u8]),
}

/// A freshly generated key pair.
pub struct KeyPair {
    /// DER PKCS#8 PrivateKeyInfo (RFC 5958).
    pub private_pkcs8: Zeroizing<Vec<u8>>,
    /// DER SubjectPublicKeyInfo (RFC 5280).
    pub public_spki: Vec<u8>,
}

fn not_yet<T>(what: &str) -> CryptoResult<T> {
    Err(CryptoError::Unsupported(format!(
        "{what} is not implemented"
    )))
}

/// Generates a key pair of an asymmetric spec.
pub fn generate_key_pair(spec: KeySpec) -> CryptoResult<KeyPair> {
    not_yet(spec.as_str())
}

/// A digest of `data`.
pub fn hash(alg: HashAlg, data: &[u8]) -> Vec<u8> {
    let _ = (alg, data);
    Vec::new()
}

/// Signs with PKCS#8 private material (software root). Output in the wire encoding.
pub fn sign(
    spec: KeySpec,
    private_pkcs8: &[u8],
    alg: SigningAlgorithm,
    input: SignInput<'_>,
) -> CryptoResult<Vec<u8>> {
    let _ = (spec, private_pkcs8, input);
    not_yet(alg.as_str())
}

/// Verifies a signature against a stored SPKI: `Ok(false)` when it does not verify (any
/// malformed signature included), `Err` only when the public key itself is unusable.
pub fn verify(
    public_spki: &[u8],
    alg: SigningAlgorithm,
    input: SignInput<'_>,
    signature: &[u8],
) -> CryptoResult<bool> {
    let _ = (public_spki, input, signature);
    not_yet(alg.as_str())
}

/// RSAES-OAEP encryption with the public key (empty label, MGF1 with the OAEP hash).
pub fn rsa_oaep_encrypt(
    public_spki: &[u8],
    alg: EncryptionAlgorithm,
    plaintext: &[u8],
) -> CryptoResult<Vec<u8>> {
    let _ = (public_spki, plaintext);
    not_yet(alg.as_str())
}

/// RSAES-OAEP decryption with PKCS#8 private material (software root).
pub fn rsa_oaep_decrypt(
    private_pkcs8: &[u8],
    alg: EncryptionAlgorithm,
    ciphertext: &[u8],
) -> CryptoResult<Zeroizing<Vec<u8>>> {
    let _ = (private_pkcs8, ciphertext);
    not_yet(alg.as_str())
}

/// Checks a peer's DER SPKI for ECDH with a key of `spec` and returns its uncompressed point
/// `04 || X || Y`; [`CryptoError::InvalidPublicKey`] when it does not parse or is on another curve.
pub fn peer_point(spec: KeySpec, peer_spki: &[u8]) -> CryptoResult<Vec<u8>> {
    let _ = peer_spki;
    not_yet(spec.as_str())
}

/// ECDH with PKCS#8 private material (software root): the raw x-coordinate Z.
pub fn ecdh(
    spec: KeySpec,
    private_pkcs8: &[u8],
    peer_point: &[u8],
) -> CryptoResult<Zeroizing<Vec<u8>>> {
    let _ = (private_pkcs8, peer_point);
    not_yet(spec.as_str())
}

/// HMAC (RFC 2104).
pub fn hmac(alg: MacAlgorithm, key: &[u8], message: &[u8]) -> Vec<u8> {
    let _ = (alg, key, message);
    Vec::new()
}
