//! Ed25519 (RFC 8032, pure) with `aws-lc-rs`. Ed25519ph (`ED25519_PH_SHA_512`) is not offered
//! on the host: no library we carry signs Ed25519ph over a given SHA-512 digest.

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use zeroize::Zeroizing;

use super::der;
use super::{CryptoError, CryptoResult, KeyPair};

/// id-Ed25519 1.3.101.112
pub(crate) const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

pub(crate) fn generate() -> CryptoResult<KeyPair> {
    let pair = Ed25519KeyPair::generate()
        .map_err(|_| CryptoError::Internal("Ed25519 key generation failed"))?;
    let pkcs8 = pair
        .to_pkcs8v1()
        .map_err(|_| CryptoError::Internal("PKCS#8 encoding failed"))?;
    let private = Ed25519Private::from_pkcs8(pkcs8.as_ref())?;
    Ok(KeyPair {
        private_pkcs8: Zeroizing::new(pkcs8.as_ref().to_vec()),
        public_spki: private.public_spki()?,
    })
}

pub(crate) struct Ed25519Private(Ed25519KeyPair);

impl Ed25519Private {
    pub(crate) fn from_pkcs8(pkcs8: &[u8]) -> CryptoResult<Self> {
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
            .map(Ed25519Private)
            .map_err(|_| CryptoError::InvalidPrivateKey)
    }

    pub(crate) fn public_spki(&self) -> CryptoResult<Vec<u8>> {
        let der: PublicKeyX509Der<'static> = self
            .0
            .public_key()
            .as_der()
            .map_err(|_| CryptoError::Internal("SPKI encoding failed"))?;
        Ok(der.as_ref().to_vec())
    }

    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.0.sign(message).as_ref().to_vec()
    }
}

/// Verifies a pure Ed25519 signature against an SPKI (OID 1.3.101.112, no parameters).
pub(crate) fn verify(spki: &[u8], message: &[u8], sig: &[u8]) -> CryptoResult<bool> {
    let parsed = der::parse_spki(spki)?;
    if parsed.algorithm != OID_ED25519 || parsed.parameters.is_some() || parsed.key.len() != 32 {
        return Err(CryptoError::InvalidPublicKey);
    }
    Ok(UnparsedPublicKey::new(&signature::ED25519, parsed.key)
        .verify(message, sig)
        .is_ok())
}
