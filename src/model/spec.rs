//! What each key spec is and allows: usages, the algorithm lists KeyMetadata and GetPublicKey
//! carry, hash sizes and plaintext limits (`reference/key-types.md` §1–§2). Pure tables; the
//! service enforces them and the backends and `crate::crypto` implement them.

use super::key::{
    DataKeyPairSpec, EncryptionAlgorithm, KeyAgreementAlgorithm, KeySpec, KeyUsage, MacAlgorithm,
    SigningAlgorithm,
};

/// A hash function named by an algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    /// Output size in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha224 => 28,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }
}

/// The family of a key spec, which decides where its material lives and how it is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyFamily {
    Symmetric,
    Hmac,
    Rsa,
    /// NIST P-256/384/521 and secp256k1.
    Ecc,
    Ed25519,
    MlDsa,
    Sm2,
}

/// The algorithm list a key's metadata carries: exactly one of them is non-empty for an
/// asymmetric or HMAC key; symmetric keys carry `[SYMMETRIC_DEFAULT]` as encryption algorithms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyAlgorithms {
    pub encryption: &'static [EncryptionAlgorithm],
    pub signing: &'static [SigningAlgorithm],
    pub mac: &'static [MacAlgorithm],
    pub key_agreement: &'static [KeyAgreementAlgorithm],
}

use EncryptionAlgorithm as E;
use KeyUsage as U;
use SigningAlgorithm as S;

const RSA_SIGNING: &[SigningAlgorithm] = &[
    S::RsassaPkcs1V15Sha256,
    S::RsassaPkcs1V15Sha384,
    S::RsassaPkcs1V15Sha512,
    S::RsassaPssSha256,
    S::RsassaPssSha384,
    S::RsassaPssSha512,
];
const RSA_ENCRYPTION: &[EncryptionAlgorithm] = &[E::RsaesOaepSha1, E::RsaesOaepSha256];

impl KeySpec {
    pub fn family(self) -> KeyFamily {
        match self {
            KeySpec::SymmetricDefault => KeyFamily::Symmetric,
            KeySpec::Hmac224 | KeySpec::Hmac256 | KeySpec::Hmac384 | KeySpec::Hmac512 => {
                KeyFamily::Hmac
            }
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => KeyFamily::Rsa,
            KeySpec::EccNistP256
            | KeySpec::EccNistP384
            | KeySpec::EccNistP521
            | KeySpec::EccSecgP256k1 => KeyFamily::Ecc,
            KeySpec::EccNistEdwards25519 => KeyFamily::Ed25519,
            KeySpec::MlDsa44 | KeySpec::MlDsa65 | KeySpec::MlDsa87 => KeyFamily::MlDsa,
            KeySpec::Sm2 => KeyFamily::Sm2,
        }
    }

    /// Has a public key (GetPublicKey answers).
    pub fn is_asymmetric(self) -> bool {
        !matches!(self.family(), KeyFamily::Symmetric | KeyFamily::Hmac)
    }

    /// The usages CreateKey accepts for this spec.
    pub fn allowed_usages(self) -> &'static [KeyUsage] {
        match self {
            KeySpec::SymmetricDefault => &[U::EncryptDecrypt],
            KeySpec::Hmac224 | KeySpec::Hmac256 | KeySpec::Hmac384 | KeySpec::Hmac512 => {
                &[U::GenerateVerifyMac]
            }
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
                &[U::EncryptDecrypt, U::SignVerify]
            }
            KeySpec::EccNistP256 | KeySpec::EccNistP384 | KeySpec::EccNistP521 => {
                &[U::SignVerify, U::KeyAgreement]
            }
            KeySpec::EccSecgP256k1
            | KeySpec::EccNistEdwards25519
            | KeySpec::MlDsa44
            | KeySpec::MlDsa65
            | KeySpec::MlDsa87 => &[U::SignVerify],
            KeySpec::Sm2 => &[U::EncryptDecrypt, U::SignVerify, U::KeyAgreement],
        }
    }

    /// The algorithms of a key of this spec and usage, as KeyMetadata lists them.
    pub fn algorithms(self, usage: KeyUsage) -> KeyAlgorithms {
        let none = KeyAlgorithms::default();
        if !self.allowed_usages().contains(&usage) {
            return none;
        }
        match (self.family(), usage) {
            (KeyFamily::Symmetric, U::EncryptDecrypt) => KeyAlgorithms {
                encryption: &[E::SymmetricDefault],
                ..none
            },
            (KeyFamily::Hmac, U::GenerateVerifyMac) => KeyAlgorithms {
                mac: match self {
                    KeySpec::Hmac224 => &[MacAlgorithm::HmacSha224],
                    KeySpec::Hmac256 => &[MacAlgorithm::HmacSha256],
                    KeySpec::Hmac384 => &[MacAlgorithm::HmacSha384],
                    _ => &[MacAlgorithm::HmacSha512],
                },
                ..none
            },
            (KeyFamily::Rsa, U::EncryptDecrypt) => KeyAlgorithms {
                encryption: RSA_ENCRYPTION,
                ..none
            },
            (KeyFamily::Rsa, U::SignVerify) => KeyAlgorithms {
                signing: RSA_SIGNING,
                ..none
            },
            (KeyFamily::Ecc, U::SignVerify) => KeyAlgorithms {
                signing: match self {
                    KeySpec::EccNistP384 => &[S::EcdsaSha384],
                    KeySpec::EccNistP521 => &[S::EcdsaSha512],
                    _ => &[S::EcdsaSha256],
                },
                ..none
            },
            (KeyFamily::Ecc | KeyFamily::Sm2, U::KeyAgreement) => KeyAlgorithms {
                key_agreement: &[KeyAgreementAlgorithm::Ecdh],
                ..none
            },
            (KeyFamily::Ed25519, U::SignVerify) => KeyAlgorithms {
                signing: &[S::Ed25519Sha512, S::Ed25519PhSha512],
                ..none
            },
            (KeyFamily::MlDsa, U::SignVerify) => KeyAlgorithms {
                signing: &[S::MlDsaShake256],
                ..none
            },
            (KeyFamily::Sm2, U::EncryptDecrypt) => KeyAlgorithms {
                encryption: &[E::Sm2Pke],
                ..none
            },
            (KeyFamily::Sm2, U::SignVerify) => KeyAlgorithms {
                signing: &[S::Sm2Dsa],
                ..none
            },
            _ => none,
        }
    }

    /// RSA modulus size in bytes (signature and OAEP ciphertext length).
    pub fn rsa_modulus_len(self) -> Option<usize> {
        match self {
            KeySpec::Rsa2048 => Some(256),
            KeySpec::Rsa3072 => Some(384),
            KeySpec::Rsa4096 => Some(512),
            _ => None,
        }
    }
}

impl SigningAlgorithm {
    /// The hash a RAW message goes through, and the length a DIGEST message must have.
    /// `None` for pure Ed25519 and ML-DSA (they sign the message itself).
    pub fn hash(self) -> Option<HashAlg> {
        match self {
            S::RsassaPssSha256 | S::RsassaPkcs1V15Sha256 | S::EcdsaSha256 | S::Sm2Dsa => {
                Some(HashAlg::Sha256)
            }
            S::RsassaPssSha384 | S::RsassaPkcs1V15Sha384 | S::EcdsaSha384 => Some(HashAlg::Sha384),
            S::RsassaPssSha512 | S::RsassaPkcs1V15Sha512 | S::EcdsaSha512 => Some(HashAlg::Sha512),
            S::Ed25519PhSha512 => Some(HashAlg::Sha512),
            S::MlDsaShake256 | S::Ed25519Sha512 => None,
        }
    }
}

impl MacAlgorithm {
    pub fn hash(self) -> HashAlg {
        match self {
            MacAlgorithm::HmacSha224 => HashAlg::Sha224,
            MacAlgorithm::HmacSha256 => HashAlg::Sha256,
            MacAlgorithm::HmacSha384 => HashAlg::Sha384,
            MacAlgorithm::HmacSha512 => HashAlg::Sha512,
        }
    }
}

impl EncryptionAlgorithm {
    /// The OAEP hash (also the MGF1 hash; the label is empty).
    pub fn oaep_hash(self) -> Option<HashAlg> {
        match self {
            E::RsaesOaepSha1 => Some(HashAlg::Sha1),
            E::RsaesOaepSha256 => Some(HashAlg::Sha256),
            _ => None,
        }
    }

    /// The largest plaintext an RSA key of `spec` encrypts with this algorithm: k − 2·hLen − 2.
    pub fn max_plaintext(self, spec: KeySpec) -> Option<usize> {
        Some(spec.rsa_modulus_len()? - 2 * self.oaep_hash()?.output_len() - 2)
    }
}

impl DataKeyPairSpec {
    /// The key spec of the same name.
    pub fn key_spec(self) -> KeySpec {
        match self {
            DataKeyPairSpec::Rsa2048 => KeySpec::Rsa2048,
            DataKeyPairSpec::Rsa3072 => KeySpec::Rsa3072,
            DataKeyPairSpec::Rsa4096 => KeySpec::Rsa4096,
            DataKeyPairSpec::EccNistP256 => KeySpec::EccNistP256,
            DataKeyPairSpec::EccNistP384 => KeySpec::EccNistP384,
            DataKeyPairSpec::EccNistP521 => KeySpec::EccNistP521,
            DataKeyPairSpec::EccSecgP256k1 => KeySpec::EccSecgP256k1,
            DataKeyPairSpec::Sm2 => KeySpec::Sm2,
            DataKeyPairSpec::EccNistEdwards25519 => KeySpec::EccNistEdwards25519,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oaep_limits_match_the_reference_table() {
        let cases = [
            (KeySpec::Rsa2048, 214, 190),
            (KeySpec::Rsa3072, 342, 318),
            (KeySpec::Rsa4096, 470, 446),
        ];
        for (spec, sha1, sha256) in cases {
            assert_eq!(E::RsaesOaepSha1.max_plaintext(spec), Some(sha1));
            assert_eq!(E::RsaesOaepSha256.max_plaintext(spec), Some(sha256));
        }
        assert_eq!(E::SymmetricDefault.max_plaintext(KeySpec::Rsa2048), None);
    }

    #[test]
    fn every_allowed_usage_has_exactly_one_algorithm_list() {
        for &spec in KeySpec::ALL {
            for &usage in spec.allowed_usages() {
                let a = spec.algorithms(usage);
                let lists = [
                    !a.encryption.is_empty(),
                    !a.signing.is_empty(),
                    !a.mac.is_empty(),
                    !a.key_agreement.is_empty(),
                ];
                assert_eq!(lists.iter().filter(|x| **x).count(), 1, "{spec} {usage}");
            }
            for &usage in KeyUsage::ALL {
                if !spec.allowed_usages().contains(&usage) {
                    assert_eq!(spec.algorithms(usage), KeyAlgorithms::default());
                }
            }
        }
    }
}
