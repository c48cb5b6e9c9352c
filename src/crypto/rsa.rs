//! RSA with `aws-lc-rs` (constant-time, blinded private-key operations; see
//! `docs/key-types.md`): key generation, RSASSA-PSS and PKCS#1 v1.5 signing of a given digest,
//! verification, RSAES-OAEP with SHA-1 or SHA-256 (MGF1 with the same hash, empty label).

use aws_lc_rs::digest::Digest;
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{
    KeyPair as RsaKeyPair, KeySize, OaepAlgorithm, OaepPrivateDecryptingKey,
    OaepPublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey, OAEP_SHA1_MGF1SHA1,
    OAEP_SHA256_MGF1SHA256,
};
use aws_lc_rs::signature::{self, KeyPair as _, RsaEncoding, RsaParameters, UnparsedPublicKey};
use zeroize::Zeroizing;

use super::hmac::digest_alg;
use super::{CryptoError, CryptoResult, KeyPair};
use crate::model::{EncryptionAlgorithm, KeySpec, SigningAlgorithm};

fn key_size(spec: KeySpec) -> CryptoResult<KeySize> {
    match spec {
        KeySpec::Rsa2048 => Ok(KeySize::Rsa2048),
        KeySpec::Rsa3072 => Ok(KeySize::Rsa3072),
        KeySpec::Rsa4096 => Ok(KeySize::Rsa4096),
        other => Err(CryptoError::Unsupported(format!(
            "{other} is not an RSA spec"
        ))),
    }
}

pub(crate) fn generate(spec: KeySpec) -> CryptoResult<KeyPair> {
    let pair = RsaKeyPair::generate(key_size(spec)?)
        .map_err(|_| CryptoError::Internal("RSA key generation failed"))?;
    let pkcs8: Pkcs8V1Der<'static> = pair
        .as_der()
        .map_err(|_| CryptoError::Internal("PKCS#8 encoding failed"))?;
    let spki: PublicKeyX509Der<'static> = pair
        .public_key()
        .as_der()
        .map_err(|_| CryptoError::Internal("SPKI encoding failed"))?;
    Ok(KeyPair {
        private_pkcs8: Zeroizing::new(pkcs8.as_ref().to_vec()),
        public_spki: spki.as_ref().to_vec(),
    })
}

fn signing_encoding(alg: SigningAlgorithm) -> CryptoResult<&'static dyn RsaEncoding> {
    Ok(match alg {
        SigningAlgorithm::RsassaPssSha256 => &signature::RSA_PSS_SHA256,
        SigningAlgorithm::RsassaPssSha384 => &signature::RSA_PSS_SHA384,
        SigningAlgorithm::RsassaPssSha512 => &signature::RSA_PSS_SHA512,
        SigningAlgorithm::RsassaPkcs1V15Sha256 => &signature::RSA_PKCS1_SHA256,
        SigningAlgorithm::RsassaPkcs1V15Sha384 => &signature::RSA_PKCS1_SHA384,
        SigningAlgorithm::RsassaPkcs1V15Sha512 => &signature::RSA_PKCS1_SHA512,
        other => return Err(not_rsa(other)),
    })
}

fn verification(alg: SigningAlgorithm) -> CryptoResult<&'static RsaParameters> {
    Ok(match alg {
        SigningAlgorithm::RsassaPssSha256 => &signature::RSA_PSS_2048_8192_SHA256,
        SigningAlgorithm::RsassaPssSha384 => &signature::RSA_PSS_2048_8192_SHA384,
        SigningAlgorithm::RsassaPssSha512 => &signature::RSA_PSS_2048_8192_SHA512,
        SigningAlgorithm::RsassaPkcs1V15Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        SigningAlgorithm::RsassaPkcs1V15Sha384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        SigningAlgorithm::RsassaPkcs1V15Sha512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        other => return Err(not_rsa(other)),
    })
}

fn not_rsa(alg: SigningAlgorithm) -> CryptoError {
    CryptoError::Unsupported(format!("{alg} is not an RSA signing algorithm"))
}

/// The algorithm's digest, imported from the caller's bytes (length checked).
pub(crate) fn import_digest(alg: SigningAlgorithm, digest: &[u8]) -> CryptoResult<Digest> {
    let hash = alg.hash().ok_or_else(|| not_rsa(alg))?;
    Digest::import_less_safe(digest, digest_alg(hash))
        .map_err(|_| CryptoError::Unsupported(format!("digest of the wrong length for {alg}")))
}

fn oaep(alg: EncryptionAlgorithm) -> CryptoResult<&'static OaepAlgorithm> {
    match alg {
        EncryptionAlgorithm::RsaesOaepSha1 => Ok(&OAEP_SHA1_MGF1SHA1),
        EncryptionAlgorithm::RsaesOaepSha256 => Ok(&OAEP_SHA256_MGF1SHA256),
        other => Err(CryptoError::Unsupported(format!(
            "{other} is not an RSA encryption algorithm"
        ))),
    }
}

/// A parsed RSA private key (for signing and for OAEP decryption).
pub(crate) struct RsaPrivate {
    signing: RsaKeyPair,
    decrypting: OaepPrivateDecryptingKey,
}

impl RsaPrivate {
    pub(crate) fn from_pkcs8(spec: KeySpec, pkcs8: &[u8]) -> CryptoResult<Self> {
        let signing = RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| CryptoError::InvalidPrivateKey)?;
        let decrypting = PrivateDecryptingKey::from_pkcs8(pkcs8)
            .ok()
            .and_then(|k| OaepPrivateDecryptingKey::new(k).ok())
            .ok_or(CryptoError::InvalidPrivateKey)?;
        if Some(signing.public_modulus_len()) != spec.rsa_modulus_len() {
            return Err(CryptoError::InvalidPrivateKey);
        }
        Ok(RsaPrivate {
            signing,
            decrypting,
        })
    }

    pub(crate) fn public_spki(&self) -> CryptoResult<Vec<u8>> {
        let der: PublicKeyX509Der<'static> = self
            .signing
            .public_key()
            .as_der()
            .map_err(|_| CryptoError::Internal("SPKI encoding failed"))?;
        Ok(der.as_ref().to_vec())
    }

    /// Signs a digest (already of the algorithm's hash): k bytes.
    pub(crate) fn sign_digest(
        &self,
        alg: SigningAlgorithm,
        digest: &[u8],
    ) -> CryptoResult<Vec<u8>> {
        let encoding = signing_encoding(alg)?;
        let digest = import_digest(alg, digest)?;
        let mut out = vec![0u8; self.signing.public_modulus_len()];
        self.signing
            .sign_digest(encoding, &digest, &mut out)
            .map_err(|_| CryptoError::Internal("RSA signing failed"))?;
        Ok(out)
    }

    pub(crate) fn decrypt(
        &self,
        alg: EncryptionAlgorithm,
        ciphertext: &[u8],
    ) -> CryptoResult<Zeroizing<Vec<u8>>> {
        let alg = oaep(alg)?;
        if ciphertext.len() != self.decrypting.key_size_bytes() {
            return Err(CryptoError::Decrypt);
        }
        let mut out = Zeroizing::new(vec![0u8; self.decrypting.min_output_size()]);
        let n = self
            .decrypting
            .decrypt(alg, ciphertext, &mut out, None)
            .map_err(|_| CryptoError::Decrypt)?
            .len();
        out.truncate(n);
        Ok(out)
    }
}

/// Verifies an RSA signature over a digest.
pub(crate) fn verify_digest(
    spki: &[u8],
    alg: SigningAlgorithm,
    digest: &[u8],
    sig: &[u8],
) -> CryptoResult<bool> {
    let params = verification(alg)?;
    let digest = import_digest(alg, digest)?;
    let key = UnparsedPublicKey::new(params, spki)
        .parse()
        .map_err(|_| CryptoError::InvalidPublicKey)?;
    Ok(key.verify_digest_sig(&digest, sig).is_ok())
}

/// RSAES-OAEP encryption with the public key of an SPKI.
pub(crate) fn encrypt(
    spki: &[u8],
    alg: EncryptionAlgorithm,
    plaintext: &[u8],
) -> CryptoResult<Vec<u8>> {
    let alg = oaep(alg)?;
    let key = PublicEncryptingKey::from_der(spki)
        .ok()
        .and_then(|k| OaepPublicEncryptingKey::new(k).ok())
        .ok_or(CryptoError::InvalidPublicKey)?;
    if plaintext.len() > key.max_plaintext_size(alg) {
        return Err(CryptoError::Unsupported(format!(
            "plaintext larger than {} bytes",
            key.max_plaintext_size(alg)
        )));
    }
    let mut out = vec![0u8; key.ciphertext_size()];
    let n = key
        .encrypt(alg, plaintext, &mut out, None)
        .map_err(|_| CryptoError::Internal("RSA encryption failed"))?
        .len();
    out.truncate(n);
    Ok(out)
}

/// The modulus length in bytes of an RSA SPKI (rsaEncryption), `None` when it does not parse.
pub(crate) fn modulus_len(spki: &[u8]) -> Option<usize> {
    let parsed = super::der::parse_spki(spki).ok()?;
    let (key, rest) = super::der::expect(parsed.key, super::der::TAG_SEQUENCE)?;
    if !rest.is_empty() {
        return None;
    }
    let (n, _) = super::der::read_unsigned_integer(key)?;
    Some(n.len())
}
