//! Hashes (SHA-1…SHA-512) and HMAC (RFC 2104) with `aws-lc-rs`.

use aws_lc_rs::{digest, hmac};

use crate::model::{HashAlg, MacAlgorithm};

pub(crate) fn digest_alg(alg: HashAlg) -> &'static digest::Algorithm {
    match alg {
        HashAlg::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        HashAlg::Sha224 => &digest::SHA224,
        HashAlg::Sha256 => &digest::SHA256,
        HashAlg::Sha384 => &digest::SHA384,
        HashAlg::Sha512 => &digest::SHA512,
    }
}

/// A digest of `data`.
pub fn hash(alg: HashAlg, data: &[u8]) -> Vec<u8> {
    digest::digest(digest_alg(alg), data).as_ref().to_vec()
}

fn hmac_alg(alg: MacAlgorithm) -> hmac::Algorithm {
    match alg {
        MacAlgorithm::HmacSha224 => hmac::HMAC_SHA224,
        MacAlgorithm::HmacSha256 => hmac::HMAC_SHA256,
        MacAlgorithm::HmacSha384 => hmac::HMAC_SHA384,
        MacAlgorithm::HmacSha512 => hmac::HMAC_SHA512,
    }
}

/// An HMAC key ready to use (the software root caches these per key version).
pub struct HmacKey {
    key: hmac::Key,
    algorithm: MacAlgorithm,
}

impl HmacKey {
    pub fn new(algorithm: MacAlgorithm, secret: &[u8]) -> Self {
        HmacKey {
            key: hmac::Key::new(hmac_alg(algorithm), secret),
            algorithm,
        }
    }

    /// The algorithm this key was made for.
    pub fn algorithm(&self) -> MacAlgorithm {
        self.algorithm
    }

    /// The tag of `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        hmac::sign(&self.key, message).as_ref().to_vec()
    }
}

impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HmacKey({})", self.algorithm.as_str())
    }
}

/// HMAC (RFC 2104).
pub fn hmac(alg: MacAlgorithm, key: &[u8], message: &[u8]) -> Vec<u8> {
    HmacKey::new(alg, key).sign(message)
}
