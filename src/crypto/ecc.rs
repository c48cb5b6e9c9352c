//! ECDSA (P-256, P-384, P-521, secp256k1) and ECDH (P-256/384/521) with `aws-lc-rs`: key
//! generation, signing a given digest (DER output), verification (high-S accepted: AWS-LC,
//! like OpenSSL and like AWS KMS, does not require low-S), checking a peer's SPKI, raw ECDH.

use aws_lc_rs::agreement;
use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, EcdsaSigningAlgorithm, EcdsaVerificationAlgorithm, KeyPair as _,
    UnparsedPublicKey,
};
use zeroize::Zeroizing;

use super::der::{self, oid};
use super::rsa::import_digest;
use super::{CryptoError, CryptoResult, KeyPair};
use crate::model::{KeySpec, SigningAlgorithm};

/// What each curve spec uses.
pub(crate) struct Curve {
    pub oid: &'static [u8],
    /// Uncompressed point length (`04 || X || Y`).
    pub point_len: usize,
    pub signing: &'static EcdsaSigningAlgorithm,
    pub verification: &'static EcdsaVerificationAlgorithm,
    pub signing_alg: SigningAlgorithm,
    /// ECDH (KEY_AGREEMENT) where the spec allows it.
    pub agreement: Option<&'static agreement::Algorithm>,
}

pub(crate) fn curve(spec: KeySpec) -> CryptoResult<Curve> {
    Ok(match spec {
        KeySpec::EccNistP256 => Curve {
            oid: oid::P256,
            point_len: 65,
            signing: &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            verification: &signature::ECDSA_P256_SHA256_ASN1,
            signing_alg: SigningAlgorithm::EcdsaSha256,
            agreement: Some(&agreement::ECDH_P256),
        },
        KeySpec::EccNistP384 => Curve {
            oid: oid::P384,
            point_len: 97,
            signing: &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
            verification: &signature::ECDSA_P384_SHA384_ASN1,
            signing_alg: SigningAlgorithm::EcdsaSha384,
            agreement: Some(&agreement::ECDH_P384),
        },
        KeySpec::EccNistP521 => Curve {
            oid: oid::P521,
            point_len: 133,
            signing: &signature::ECDSA_P521_SHA512_ASN1_SIGNING,
            verification: &signature::ECDSA_P521_SHA512_ASN1,
            signing_alg: SigningAlgorithm::EcdsaSha512,
            agreement: Some(&agreement::ECDH_P521),
        },
        KeySpec::EccSecgP256k1 => Curve {
            oid: oid::SECP256K1,
            point_len: 65,
            signing: &signature::ECDSA_P256K1_SHA256_ASN1_SIGNING,
            verification: &signature::ECDSA_P256K1_SHA256_ASN1,
            signing_alg: SigningAlgorithm::EcdsaSha256,
            agreement: None,
        },
        other => {
            return Err(CryptoError::Unsupported(format!(
                "{other} is not an ECC spec"
            )))
        }
    })
}

fn check_alg(c: &Curve, spec: KeySpec, alg: SigningAlgorithm) -> CryptoResult<()> {
    if alg == c.signing_alg {
        Ok(())
    } else {
        Err(CryptoError::Unsupported(format!(
            "{alg} is not valid for {spec}"
        )))
    }
}

pub(crate) fn generate(spec: KeySpec) -> CryptoResult<KeyPair> {
    let c = curve(spec)?;
    let pair = EcdsaKeyPair::generate(c.signing)
        .map_err(|_| CryptoError::Internal("EC key generation failed"))?;
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

/// A parsed EC private key: ECDSA, and ECDH on the NIST curves.
pub(crate) struct EcPrivate {
    spec: KeySpec,
    signing: EcdsaKeyPair,
    agreement: Option<agreement::PrivateKey>,
}

impl EcPrivate {
    pub(crate) fn from_pkcs8(spec: KeySpec, pkcs8: &[u8]) -> CryptoResult<Self> {
        let c = curve(spec)?;
        let signing = EcdsaKeyPair::from_pkcs8(c.signing, pkcs8)
            .map_err(|_| CryptoError::InvalidPrivateKey)?;
        let agreement = match c.agreement {
            Some(alg) => Some(
                agreement::PrivateKey::from_private_key_der(alg, pkcs8)
                    .map_err(|_| CryptoError::InvalidPrivateKey)?,
            ),
            None => None,
        };
        Ok(EcPrivate {
            spec,
            signing,
            agreement,
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

    /// Signs a digest of the curve's hash: DER `SEQUENCE { r, s }`.
    pub(crate) fn sign_digest(
        &self,
        alg: SigningAlgorithm,
        digest: &[u8],
    ) -> CryptoResult<Vec<u8>> {
        let c = curve(self.spec)?;
        check_alg(&c, self.spec, alg)?;
        let digest = import_digest(alg, digest)?;
        let sig = self
            .signing
            .sign_digest(&digest)
            .map_err(|_| CryptoError::Internal("ECDSA signing failed"))?;
        Ok(sig.as_ref().to_vec())
    }

    /// ECDH with a peer point already checked by [`peer_point`]: the raw x-coordinate Z.
    pub(crate) fn ecdh(&self, peer_point: &[u8]) -> CryptoResult<Zeroizing<Vec<u8>>> {
        let c = curve(self.spec)?;
        let (Some(alg), Some(private)) = (c.agreement, self.agreement.as_ref()) else {
            return Err(CryptoError::Unsupported(format!(
                "{} has no key agreement",
                self.spec
            )));
        };
        agreement::agree(
            private,
            agreement::UnparsedPublicKey::new(alg, peer_point),
            CryptoError::InvalidPublicKey,
            |z| Ok(Zeroizing::new(z.to_vec())),
        )
    }
}

/// Verifies a DER ECDSA signature over a digest.
pub(crate) fn verify_digest(
    spec: KeySpec,
    spki: &[u8],
    alg: SigningAlgorithm,
    digest: &[u8],
    sig: &[u8],
) -> CryptoResult<bool> {
    let c = curve(spec)?;
    check_alg(&c, spec, alg)?;
    let digest = import_digest(alg, digest)?;
    let key = UnparsedPublicKey::new(c.verification, spki)
        .parse()
        .map_err(|_| CryptoError::InvalidPublicKey)?;
    Ok(key.verify_digest_sig(&digest, sig).is_ok())
}

/// The key spec of an EC SPKI (by its named curve), or `None` when it is not one of ours.
pub(crate) fn spec_of_spki(spki: &[u8]) -> Option<KeySpec> {
    let parsed = der::parse_spki(spki).ok()?;
    if parsed.algorithm != oid::EC_PUBLIC_KEY {
        return None;
    }
    let (curve_oid, rest) = der::expect(parsed.parameters?, der::TAG_OID)?;
    if !rest.is_empty() {
        return None;
    }
    [
        KeySpec::EccNistP256,
        KeySpec::EccNistP384,
        KeySpec::EccNistP521,
        KeySpec::EccSecgP256k1,
    ]
    .into_iter()
    .find(|s| curve(*s).is_ok_and(|c| c.oid == curve_oid))
}

/// Checks a peer's SPKI for ECDH with a key of `spec`: id-ecPublicKey with the key's named
/// curve and an uncompressed point on that curve. Compressed points are refused (AWS's
/// behaviour is not recorded; the PKCS#11 root's `CKM_ECDH1_DERIVE` takes an uncompressed point).
pub(crate) fn peer_point(spec: KeySpec, peer_spki: &[u8]) -> CryptoResult<Vec<u8>> {
    let c = curve(spec)?;
    if c.agreement.is_none() {
        return Err(CryptoError::Unsupported(format!(
            "{spec} has no key agreement"
        )));
    }
    if spec_of_spki(peer_spki) != Some(spec) {
        return Err(CryptoError::InvalidPublicKey);
    }
    let parsed = der::parse_spki(peer_spki)?;
    let point = parsed.key;
    if point.len() != c.point_len || point.first() != Some(&0x04) {
        return Err(CryptoError::InvalidPublicKey);
    }
    // On the curve (and not the point at infinity): AWS-LC validates the point when parsing.
    UnparsedPublicKey::new(c.verification, point)
        .parse()
        .map_err(|_| CryptoError::InvalidPublicKey)?;
    Ok(point.to_vec())
}

/// An EC SPKI from a spec and its uncompressed point (the PKCS#11 root reads the point from
/// `CKA_EC_POINT`).
pub fn ec_spki(spec: KeySpec, point: &[u8]) -> CryptoResult<Vec<u8>> {
    let c = curve(spec)?;
    if point.len() != c.point_len || point.first() != Some(&0x04) {
        return Err(CryptoError::InvalidPublicKey);
    }
    let mut alg = der::tlv(der::TAG_OID, oid::EC_PUBLIC_KEY);
    alg.extend_from_slice(&der::tlv(der::TAG_OID, c.oid));
    let mut body = der::tlv(der::TAG_SEQUENCE, &alg);
    let mut bits = Vec::with_capacity(point.len() + 1);
    bits.push(0);
    bits.extend_from_slice(point);
    body.extend_from_slice(&der::tlv(der::TAG_BIT_STRING, &bits));
    Ok(der::tlv(der::TAG_SEQUENCE, &body))
}

/// The ECDSA signing algorithm of an ECC key spec (for keys built from DER elsewhere).
pub fn ecdsa_signing_algorithm(spec: KeySpec) -> Option<&'static EcdsaSigningAlgorithm> {
    curve(spec).ok().map(|c| c.signing)
}
