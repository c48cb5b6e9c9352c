//! ML-DSA (FIPS 204), pure mode with an empty context. Key generation and RAW verification use
//! `aws-lc-rs`; signing uses RustCrypto `ml-dsa`, which can sign an external μ (aws-lc-rs
//! cannot). Signing is deterministic, so RAW and EXTERNAL_MU give the same signature for the
//! same key and message, as AWS documents. See `docs/key-types.md`.
//!
//! PKCS#8: `PrivateKeyInfo { 0, { id-ml-dsa-NN }, OCTET STRING { ML-DSA-PrivateKey } }` where
//! the private key is the 32-byte seed `[0] IMPLICIT OCTET STRING` (RFC 9881), as aws-lc-rs
//! writes it. The `expandedKey` and `both` forms are refused: this service never writes them.

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::signature::{
    self, KeyPair as _, PqdsaKeyPair, PqdsaSigningAlgorithm, PqdsaVerificationAlgorithm,
    UnparsedPublicKey,
};
use ml_dsa::{ExpandedSigningKey, MlDsa44, MlDsa65, MlDsa87, MlDsaParams, Seed, VerifyingKey};
use zeroize::{Zeroize, Zeroizing};

use super::der::{self, oid};
use super::{CryptoError, CryptoResult, KeyPair};
use crate::model::KeySpec;

struct Params {
    oid: &'static [u8],
    signing: &'static PqdsaSigningAlgorithm,
    verification: &'static PqdsaVerificationAlgorithm,
}

fn params(spec: KeySpec) -> CryptoResult<Params> {
    Ok(match spec {
        KeySpec::MlDsa44 => Params {
            oid: oid::ML_DSA_44,
            signing: &signature::ML_DSA_44_SIGNING,
            verification: &signature::ML_DSA_44,
        },
        KeySpec::MlDsa65 => Params {
            oid: oid::ML_DSA_65,
            signing: &signature::ML_DSA_65_SIGNING,
            verification: &signature::ML_DSA_65,
        },
        KeySpec::MlDsa87 => Params {
            oid: oid::ML_DSA_87,
            signing: &signature::ML_DSA_87_SIGNING,
            verification: &signature::ML_DSA_87,
        },
        other => {
            return Err(CryptoError::Unsupported(format!(
                "{other} is not an ML-DSA spec"
            )))
        }
    })
}

pub(crate) fn generate(spec: KeySpec) -> CryptoResult<KeyPair> {
    let p = params(spec)?;
    let pair = PqdsaKeyPair::generate(p.signing)
        .map_err(|_| CryptoError::Internal("ML-DSA key generation failed"))?;
    let pkcs8 = pair
        .to_pkcs8v1()
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

/// The seed of an ML-DSA PKCS#8 of algorithm `alg_oid` (seed form only).
fn parse_pkcs8<'a>(alg_oid: &[u8], pkcs8: &'a [u8]) -> Option<&'a [u8]> {
    let (info, rest) = der::expect(pkcs8, der::TAG_SEQUENCE)?;
    if !rest.is_empty() {
        return None;
    }
    let (version, rest) = der::expect(info, der::TAG_INTEGER)?;
    if version != [0] && version != [1] {
        return None;
    }
    let (alg, rest) = der::expect(rest, der::TAG_SEQUENCE)?;
    let (alg_id, params) = der::expect(alg, der::TAG_OID)?;
    if alg_id != alg_oid || !params.is_empty() {
        return None;
    }
    let (private, _attributes_or_public_key) = der::expect(rest, der::TAG_OCTET_STRING)?;
    let (seed, tail) = der::expect(private, der::TAG_CONTEXT_0)?;
    (tail.is_empty() && seed.len() == 32).then_some(seed)
}

fn expand<P: MlDsaParams>(seed: &[u8]) -> CryptoResult<Box<ExpandedSigningKey<P>>> {
    let mut seed = Seed::try_from(seed).map_err(|_| CryptoError::InvalidPrivateKey)?;
    let key = Box::new(ExpandedSigningKey::<P>::from_seed(&seed));
    seed.zeroize();
    Ok(key)
}

enum Expanded {
    L44(Box<ExpandedSigningKey<MlDsa44>>),
    L65(Box<ExpandedSigningKey<MlDsa65>>),
    L87(Box<ExpandedSigningKey<MlDsa87>>),
}

/// A parsed ML-DSA signing key (the expanded form, ready to sign).
pub(crate) struct MlDsaPrivate {
    spec: KeySpec,
    key: Expanded,
}

fn sign_message<P: MlDsaParams>(
    k: &ExpandedSigningKey<P>,
    message: &[u8],
) -> CryptoResult<Vec<u8>> {
    k.sign_deterministic(message, &[])
        .map(|s| s.encode().as_slice().to_vec())
        .map_err(|_| CryptoError::Internal("ML-DSA signing failed"))
}

fn sign_mu<P: MlDsaParams>(k: &ExpandedSigningKey<P>, mu: &[u8]) -> CryptoResult<Vec<u8>> {
    let mu = mu
        .try_into()
        .map_err(|_| CryptoError::Unsupported("external mu must be 64 bytes".into()))?;
    Ok(k.sign_mu_deterministic(mu).encode().as_slice().to_vec())
}

fn raw_public<P: MlDsaParams>(k: &ExpandedSigningKey<P>) -> Vec<u8> {
    k.verifying_key().encode().as_slice().to_vec()
}

impl MlDsaPrivate {
    pub(crate) fn from_pkcs8(spec: KeySpec, pkcs8: &[u8]) -> CryptoResult<Self> {
        let p = params(spec)?;
        let seed = parse_pkcs8(p.oid, pkcs8).ok_or(CryptoError::InvalidPrivateKey)?;
        let key = match spec {
            KeySpec::MlDsa44 => Expanded::L44(expand(seed)?),
            KeySpec::MlDsa65 => Expanded::L65(expand(seed)?),
            _ => Expanded::L87(expand(seed)?),
        };
        Ok(MlDsaPrivate { spec, key })
    }

    pub(crate) fn public_spki(&self) -> CryptoResult<Vec<u8>> {
        let raw = match &self.key {
            Expanded::L44(k) => raw_public(k),
            Expanded::L65(k) => raw_public(k),
            Expanded::L87(k) => raw_public(k),
        };
        Ok(der::spki_without_parameters(params(self.spec)?.oid, &raw))
    }

    /// Pure ML-DSA of a message, empty context.
    pub(crate) fn sign_message(&self, message: &[u8]) -> CryptoResult<Vec<u8>> {
        match &self.key {
            Expanded::L44(k) => sign_message(k, message),
            Expanded::L65(k) => sign_message(k, message),
            Expanded::L87(k) => sign_message(k, message),
        }
    }

    /// ML-DSA of an external μ (64 bytes).
    pub(crate) fn sign_mu(&self, mu: &[u8]) -> CryptoResult<Vec<u8>> {
        match &self.key {
            Expanded::L44(k) => sign_mu(k, mu),
            Expanded::L65(k) => sign_mu(k, mu),
            Expanded::L87(k) => sign_mu(k, mu),
        }
    }
}

/// The raw public key of an ML-DSA SPKI of `spec`.
fn raw_key(spec: KeySpec, spki: &[u8]) -> CryptoResult<&[u8]> {
    let p = params(spec)?;
    let parsed = der::parse_spki(spki)?;
    if parsed.algorithm != p.oid || parsed.parameters.is_some() {
        return Err(CryptoError::InvalidPublicKey);
    }
    Ok(parsed.key)
}

/// The key spec of an ML-DSA SPKI, from its OID.
pub(crate) fn spec_of_spki(spki: &[u8]) -> Option<KeySpec> {
    let parsed = der::parse_spki(spki).ok()?;
    [KeySpec::MlDsa44, KeySpec::MlDsa65, KeySpec::MlDsa87]
        .into_iter()
        .find(|s| params(*s).is_ok_and(|p| p.oid == parsed.algorithm))
}

/// Verifies a pure ML-DSA signature of a message (aws-lc-rs).
pub(crate) fn verify_message(
    spec: KeySpec,
    spki: &[u8],
    message: &[u8],
    sig: &[u8],
) -> CryptoResult<bool> {
    let p = params(spec)?;
    let raw = raw_key(spec, spki)?;
    let key = UnparsedPublicKey::new(p.verification, raw)
        .parse()
        .map_err(|_| CryptoError::InvalidPublicKey)?;
    Ok(key.verify_sig(message, sig).is_ok())
}

fn verify_mu_with<P: MlDsaParams>(raw: &[u8], mu: &[u8], sig: &[u8]) -> CryptoResult<bool> {
    let enc = raw.try_into().map_err(|_| CryptoError::InvalidPublicKey)?;
    let key = VerifyingKey::<P>::decode(enc);
    let Ok(mu) = mu.try_into() else {
        return Ok(false);
    };
    let Ok(sig) = ml_dsa::Signature::<P>::try_from(sig) else {
        return Ok(false);
    };
    Ok(key.verify_mu(mu, &sig))
}

/// Verifies an ML-DSA signature of an external μ (RustCrypto `ml-dsa`; aws-lc-rs has no μ API).
pub(crate) fn verify_mu(spec: KeySpec, spki: &[u8], mu: &[u8], sig: &[u8]) -> CryptoResult<bool> {
    let raw = raw_key(spec, spki)?;
    match spec {
        KeySpec::MlDsa44 => verify_mu_with::<MlDsa44>(raw, mu, sig),
        KeySpec::MlDsa65 => verify_mu_with::<MlDsa65>(raw, mu, sig),
        _ => verify_mu_with::<MlDsa87>(raw, mu, sig),
    }
}

/// μ = SHAKE256(SHAKE256(pk, 64) || 0x00 || 0x00 || M, 64) for a key's SPKI (pure mode, empty
/// context): what a caller sends as EXTERNAL_MU.
pub fn external_mu(spec: KeySpec, spki: &[u8], message: &[u8]) -> CryptoResult<Vec<u8>> {
    fn mu<P: MlDsaParams>(raw: &[u8], message: &[u8]) -> CryptoResult<Vec<u8>> {
        let enc = raw.try_into().map_err(|_| CryptoError::InvalidPublicKey)?;
        let key = VerifyingKey::<P>::decode(enc);
        key.compute_mu(
            |h| {
                ml_dsa::signature::digest::Update::update(h, message);
                Ok(())
            },
            &[],
        )
        .map(|m| m.as_slice().to_vec())
        .map_err(|_| CryptoError::Internal("mu computation failed"))
    }
    let raw = raw_key(spec, spki)?;
    match spec {
        KeySpec::MlDsa44 => mu::<MlDsa44>(raw, message),
        KeySpec::MlDsa65 => mu::<MlDsa65>(raw, message),
        _ => mu::<MlDsa87>(raw, message),
    }
}
