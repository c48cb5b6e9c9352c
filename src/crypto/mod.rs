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

//!
//! Crates (`docs/key-types.md`, "Software root crates"): `aws-lc-rs` for everything but ML-DSA
//! signing, which uses RustCrypto `ml-dsa` (external μ). Files: `rsa`, `ecc`, `eddsa`,
//! `mldsa`, `hmac` (and hashes), `der` (the few DER structures parsed or built here).
//! [`PrivateKey`] is a parsed private key the software root caches per key version; the free
//! functions taking PKCS#8 parse it per call.

#[cfg(test)]
mod bench;
mod der;
mod ecc;
mod eddsa;
mod hmac;
mod mldsa;
mod rsa;
#[cfg(test)]
mod tests;

use zeroize::Zeroizing;

use crate::model::{EncryptionAlgorithm, KeyFamily, KeySpec, SigningAlgorithm};

pub use self::der::{ecdsa_der_to_fixed, ecdsa_fixed_to_der};
pub use self::ecc::{ec_spki, ecdsa_signing_algorithm};
pub use self::hmac::{hash, hmac, HmacKey};
pub use self::mldsa::external_mu;

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

fn unsupported<T>(what: impl std::fmt::Display) -> CryptoResult<T> {
    Err(CryptoError::Unsupported(format!("{what} is not supported")))
}

/// Generates a key pair of an asymmetric spec. RSA generation takes up to seconds: callers on
/// async workers run it on the blocking pool.
pub fn generate_key_pair(spec: KeySpec) -> CryptoResult<KeyPair> {
    match spec.family() {
        KeyFamily::Rsa => rsa::generate(spec),
        KeyFamily::Ecc => ecc::generate(spec),
        KeyFamily::Ed25519 => eddsa::generate(),
        KeyFamily::MlDsa => mldsa::generate(spec),
        KeyFamily::Symmetric | KeyFamily::Hmac | KeyFamily::Sm2 => unsupported(spec),
    }
}

enum Inner {
    Rsa(rsa::RsaPrivate),
    Ec(ecc::EcPrivate),
    Ed25519(eddsa::Ed25519Private),
    MlDsa(mldsa::MlDsaPrivate),
}

/// A parsed asymmetric private key, ready for every operation its spec allows (the software
/// root caches these per key version so that a request does not re-parse PKCS#8).
pub struct PrivateKey {
    spec: KeySpec,
    inner: Inner,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({})", self.spec)
    }
}

impl PrivateKey {
    /// Parses DER PKCS#8 private material of `spec`; [`CryptoError::InvalidPrivateKey`] when it
    /// does not parse or is of another spec.
    pub fn from_pkcs8(spec: KeySpec, pkcs8: &[u8]) -> CryptoResult<Self> {
        let inner = match spec.family() {
            KeyFamily::Rsa => Inner::Rsa(rsa::RsaPrivate::from_pkcs8(spec, pkcs8)?),
            KeyFamily::Ecc => Inner::Ec(ecc::EcPrivate::from_pkcs8(spec, pkcs8)?),
            KeyFamily::Ed25519 => Inner::Ed25519(eddsa::Ed25519Private::from_pkcs8(pkcs8)?),
            KeyFamily::MlDsa => Inner::MlDsa(mldsa::MlDsaPrivate::from_pkcs8(spec, pkcs8)?),
            KeyFamily::Symmetric | KeyFamily::Hmac | KeyFamily::Sm2 => return unsupported(spec),
        };
        Ok(PrivateKey { spec, inner })
    }

    pub fn spec(&self) -> KeySpec {
        self.spec
    }

    /// The public key as DER SubjectPublicKeyInfo.
    pub fn public_spki(&self) -> CryptoResult<Vec<u8>> {
        match &self.inner {
            Inner::Rsa(k) => k.public_spki(),
            Inner::Ec(k) => k.public_spki(),
            Inner::Ed25519(k) => k.public_spki(),
            Inner::MlDsa(k) => k.public_spki(),
        }
    }

    /// Signs; the output is in the wire encoding (k-byte RSA, DER ECDSA, raw Ed25519 / ML-DSA).
    /// The input kind must fit the algorithm: `Digest` for RSA and ECDSA, `Message` for pure
    /// Ed25519 and ML-DSA, `Mu` for ML-DSA; anything else is `Unsupported`.
    pub fn sign(&self, alg: SigningAlgorithm, input: SignInput<'_>) -> CryptoResult<Vec<u8>> {
        match (&self.inner, alg, input) {
            (Inner::Rsa(k), _, SignInput::Digest(d)) => k.sign_digest(alg, d),
            (Inner::Ec(k), _, SignInput::Digest(d)) => k.sign_digest(alg, d),
            (Inner::Ed25519(k), SigningAlgorithm::Ed25519Sha512, SignInput::Message(m)) => {
                Ok(k.sign(m))
            }
            (Inner::MlDsa(k), SigningAlgorithm::MlDsaShake256, SignInput::Message(m)) => {
                k.sign_message(m)
            }
            (Inner::MlDsa(k), SigningAlgorithm::MlDsaShake256, SignInput::Mu(mu)) => k.sign_mu(mu),
            _ => Err(CryptoError::Unsupported(format!(
                "{alg} with this message type is not supported for {}",
                self.spec
            ))),
        }
    }

    /// RSAES-OAEP decryption; [`CryptoError::Decrypt`] on any decoding failure.
    pub fn rsa_oaep_decrypt(
        &self,
        alg: EncryptionAlgorithm,
        ciphertext: &[u8],
    ) -> CryptoResult<Zeroizing<Vec<u8>>> {
        match &self.inner {
            Inner::Rsa(k) => k.decrypt(alg, ciphertext),
            _ => unsupported(format_args!("{alg} with {}", self.spec)),
        }
    }

    /// ECDH with a peer point checked by [`peer_point`]: the raw x-coordinate Z.
    pub fn ecdh(&self, peer_point: &[u8]) -> CryptoResult<Zeroizing<Vec<u8>>> {
        match &self.inner {
            Inner::Ec(k) => k.ecdh(peer_point),
            _ => unsupported(format_args!("ECDH with {}", self.spec)),
        }
    }
}

/// Signs with PKCS#8 private material (parsed per call; see [`PrivateKey`]).
pub fn sign(
    spec: KeySpec,
    private_pkcs8: &[u8],
    alg: SigningAlgorithm,
    input: SignInput<'_>,
) -> CryptoResult<Vec<u8>> {
    PrivateKey::from_pkcs8(spec, private_pkcs8)?.sign(alg, input)
}

/// The spec of a DER SPKI this module can use, from its algorithm (and curve) OID; RSA keys
/// give the spec of their modulus size. `None` for anything else.
pub fn spec_of_spki(spki: &[u8]) -> Option<KeySpec> {
    let parsed = der::parse_spki(spki).ok()?;
    if parsed.algorithm == der::oid::RSA_ENCRYPTION {
        let n = rsa::modulus_len(spki)?;
        return [KeySpec::Rsa2048, KeySpec::Rsa3072, KeySpec::Rsa4096]
            .into_iter()
            .find(|s| s.rsa_modulus_len() == Some(n));
    }
    if parsed.algorithm == eddsa::OID_ED25519 {
        return Some(KeySpec::EccNistEdwards25519);
    }
    ecc::spec_of_spki(spki).or_else(|| mldsa::spec_of_spki(spki))
}

/// Verifies a signature against a stored SPKI: `Ok(false)` when it does not verify (any
/// malformed signature included), `Err` when the public key itself is unusable or the input
/// kind does not fit the algorithm (`Digest` for RSA, ECDSA; `Message` for pure Ed25519 and
/// ML-DSA; `Mu` for ML-DSA) or a digest has the wrong length.
pub fn verify(
    public_spki: &[u8],
    alg: SigningAlgorithm,
    input: SignInput<'_>,
    signature: &[u8],
) -> CryptoResult<bool> {
    use SigningAlgorithm as S;
    let spec = spec_of_spki(public_spki).ok_or(CryptoError::InvalidPublicKey)?;
    match (spec.family(), alg, input) {
        (
            KeyFamily::Rsa,
            S::RsassaPssSha256
            | S::RsassaPssSha384
            | S::RsassaPssSha512
            | S::RsassaPkcs1V15Sha256
            | S::RsassaPkcs1V15Sha384
            | S::RsassaPkcs1V15Sha512,
            SignInput::Digest(d),
        ) => rsa::verify_digest(public_spki, alg, d, signature),
        (
            KeyFamily::Ecc,
            S::EcdsaSha256 | S::EcdsaSha384 | S::EcdsaSha512,
            SignInput::Digest(d),
        ) => ecc::verify_digest(spec, public_spki, alg, d, signature),
        (KeyFamily::Ed25519, S::Ed25519Sha512, SignInput::Message(m)) => {
            eddsa::verify(public_spki, m, signature)
        }
        (KeyFamily::MlDsa, S::MlDsaShake256, SignInput::Message(m)) => {
            mldsa::verify_message(spec, public_spki, m, signature)
        }
        (KeyFamily::MlDsa, S::MlDsaShake256, SignInput::Mu(mu)) => {
            mldsa::verify_mu(spec, public_spki, mu, signature)
        }
        _ => Err(CryptoError::Unsupported(format!(
            "{alg} with this message type is not supported for {spec}"
        ))),
    }
}

/// RSAES-OAEP encryption with the public key (empty label, MGF1 with the OAEP hash). A
/// plaintext over the limit (k − 2·hLen − 2) gives `Unsupported` (the service checks first).
pub fn rsa_oaep_encrypt(
    public_spki: &[u8],
    alg: EncryptionAlgorithm,
    plaintext: &[u8],
) -> CryptoResult<Vec<u8>> {
    rsa::encrypt(public_spki, alg, plaintext)
}

/// RSAES-OAEP decryption with PKCS#8 private material (parsed per call; see [`PrivateKey`]).
pub fn rsa_oaep_decrypt(
    spec: KeySpec,
    private_pkcs8: &[u8],
    alg: EncryptionAlgorithm,
    ciphertext: &[u8],
) -> CryptoResult<Zeroizing<Vec<u8>>> {
    PrivateKey::from_pkcs8(spec, private_pkcs8)?.rsa_oaep_decrypt(alg, ciphertext)
}

/// Checks a peer's DER SPKI for ECDH with a key of `spec` and returns its uncompressed point
/// `04 || X || Y`; [`CryptoError::InvalidPublicKey`] when it does not parse, is on another
/// curve, is not on the curve, or carries a compressed point (refused; AWS's behaviour there
/// is not recorded).
pub fn peer_point(spec: KeySpec, peer_spki: &[u8]) -> CryptoResult<Vec<u8>> {
    ecc::peer_point(spec, peer_spki)
}

/// ECDH with PKCS#8 private material (parsed per call; see [`PrivateKey`]): the raw
/// x-coordinate Z.
pub fn ecdh(
    spec: KeySpec,
    private_pkcs8: &[u8],
    peer_point: &[u8],
) -> CryptoResult<Zeroizing<Vec<u8>>> {
    PrivateKey::from_pkcs8(spec, private_pkcs8)?.ecdh(peer_point)
}

/// An RSA SPKI (rsaEncryption, NULL parameters) from the unsigned big-endian modulus and
/// public exponent (the PKCS#11 root reads them from `CKA_MODULUS` and `CKA_PUBLIC_EXPONENT`).
pub fn rsa_spki(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    let mut key = der::unsigned_integer(modulus);
    key.extend_from_slice(&der::unsigned_integer(exponent));
    let rsa_public_key = der::tlv(der::TAG_SEQUENCE, &key);
    let mut alg = der::tlv(der::TAG_OID, der::oid::RSA_ENCRYPTION);
    alg.extend_from_slice(&[der::TAG_NULL, 0]);
    let mut body = der::tlv(der::TAG_SEQUENCE, &alg);
    let mut bits = Vec::with_capacity(rsa_public_key.len() + 1);
    bits.push(0);
    bits.extend_from_slice(&rsa_public_key);
    body.extend_from_slice(&der::tlv(der::TAG_BIT_STRING, &bits));
    der::tlv(der::TAG_SEQUENCE, &body)
}
