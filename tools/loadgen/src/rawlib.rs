//! The raw library ceilings: no server, the load generator itself doing in process, on threads
//! of its own, the cryptography the KMS's software root and host do per request, with the same
//! crate (`aws-lc-rs`, `docs/key-types.md`) and the same calls (`src/crypto/`):
//!
//! - `sign-p256`: SHA-256 of the RAW message (`digest::digest`), the digest imported
//!   (`Digest::import_less_safe`) and signed with a parsed P-256 key
//!   (`EcdsaKeyPair::sign_digest`, `ECDSA_P256_SHA256_ASN1_SIGNING`: DER output);
//! - `sign-rsa2048`: SHA-256, then `RsaKeyPair::sign_digest` with `RSA_PKCS1_SHA256`
//!   (RSASSA_PKCS1_V1_5_SHA_256) with a parsed 2048-bit key;
//! - `hmac256`: `hmac::sign` with an `HMAC_SHA256` key made once (the software root caches it
//!   per key version);
//! - `verify-p256`: what Verify does on the host on *both* roots (the public key is the stored
//!   SubjectPublicKeyInfo): SHA-256, the SPKI parsed (`UnparsedPublicKey::parse`, per call, as
//!   the service does) and `verify_digest_sig` of a signature made at setup.
//!
//! The keys are generated for the run; a private key is parsed once, as the software root
//! caches it per key version. The message is the one the server's requests carry.

use std::time::Duration;

use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair, UnparsedPublicKey};
use aws_lc_rs::{hmac, rand, rsa::KeySize};

use crate::raw::measure;
use crate::report::ScenarioResult;
use crate::BoxError;

/// A library call a raw scenario makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum LibKind {
    /// SHA-256 + ECDSA P-256 signing of the digest (DER).
    SignP256,
    /// SHA-256 + RSASSA-PKCS1-v1_5 signing of the digest, RSA-2048.
    SignRsa2048,
    /// HMAC-SHA-256 with a cached key.
    Hmac256,
    /// SHA-256 + SPKI parsing + ECDSA P-256 verification.
    VerifyP256,
}

impl LibKind {
    /// The scenario group name (`raw-lib-sign-p256`, ...).
    pub fn group(self) -> &'static str {
        match self {
            LibKind::SignP256 => "raw-lib-sign-p256",
            LibKind::SignRsa2048 => "raw-lib-sign-rsa2048",
            LibKind::Hmac256 => "raw-lib-hmac256",
            LibKind::VerifyP256 => "raw-lib-verify-p256",
        }
    }

    /// What one call does, for progress messages.
    pub fn describe(self) -> &'static str {
        match self {
            LibKind::SignP256 => "aws-lc-rs SHA-256 + ECDSA P-256 sign_digest",
            LibKind::SignRsa2048 => "aws-lc-rs SHA-256 + RSA-2048 PKCS#1 v1.5 sign_digest",
            LibKind::Hmac256 => "aws-lc-rs HMAC-SHA-256",
            LibKind::VerifyP256 => "aws-lc-rs SHA-256 + SPKI parse + ECDSA P-256 verify",
        }
    }
}

/// Keys of the library scenarios, made once per run.
pub struct LibBench {
    message: Vec<u8>,
    ecdsa: EcdsaKeyPair,
    rsa: Option<RsaKeyPair>,
    hmac: hmac::Key,
    /// The P-256 key's SPKI and a signature of the message under it (for `verify-p256`).
    spki: Vec<u8>,
    signature: Vec<u8>,
}

/// The digest of a RAW message as the service computes it and hands it to the signer.
fn hashed(message: &[u8]) -> Result<Digest, BoxError> {
    let hash = digest::digest(&digest::SHA256, message).as_ref().to_vec();
    Digest::import_less_safe(&hash, &digest::SHA256)
        .map_err(|_| BoxError::from("digest import failed"))
}

fn failed<E>(what: &'static str) -> impl FnOnce(E) -> BoxError {
    move |_| BoxError::from(what)
}

impl LibBench {
    /// Generates the keys the `kinds` need (RSA only when asked: it takes a while).
    pub fn open(kinds: &[LibKind], message: Vec<u8>) -> Result<LibBench, BoxError> {
        let ecdsa = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING)
            .map_err(failed("P-256 key generation failed"))?;
        let rsa = if kinds.contains(&LibKind::SignRsa2048) {
            Some(
                RsaKeyPair::generate(KeySize::Rsa2048)
                    .map_err(failed("RSA key generation failed"))?,
            )
        } else {
            None
        };
        let mut secret = [0u8; 32];
        rand::fill(&mut secret).map_err(failed("no random bytes"))?;
        let hmac = hmac::Key::new(hmac::HMAC_SHA256, &secret);
        let spki: PublicKeyX509Der<'static> = ecdsa
            .public_key()
            .as_der()
            .map_err(failed("SPKI encoding failed"))?;
        let signature = ecdsa
            .sign_digest(&hashed(&message)?)
            .map_err(failed("ECDSA signing failed"))?
            .as_ref()
            .to_vec();
        let bench = LibBench {
            message,
            ecdsa,
            rsa,
            hmac,
            spki: spki.as_ref().to_vec(),
            signature,
        };
        // Every call the scenarios make, once: a failure shows at setup, not as errors.
        for &kind in kinds {
            bench.call(kind)?;
        }
        Ok(bench)
    }

    /// One call of `kind`; its output is dropped (after being made, as the server's is sent).
    fn call(&self, kind: LibKind) -> Result<(), BoxError> {
        match kind {
            LibKind::SignP256 => {
                let digest = hashed(&self.message)?;
                let sig = self
                    .ecdsa
                    .sign_digest(&digest)
                    .map_err(failed("ECDSA signing failed"))?;
                drop(sig.as_ref().to_vec());
            }
            LibKind::SignRsa2048 => {
                let key = self.rsa.as_ref().ok_or("no RSA key was generated")?;
                let digest = hashed(&self.message)?;
                let mut out = vec![0u8; key.public_modulus_len()];
                key.sign_digest(&signature::RSA_PKCS1_SHA256, &digest, &mut out)
                    .map_err(failed("RSA signing failed"))?;
            }
            LibKind::Hmac256 => {
                drop(hmac::sign(&self.hmac, &self.message).as_ref().to_vec());
            }
            LibKind::VerifyP256 => {
                let digest = hashed(&self.message)?;
                let key = UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &self.spki)
                    .parse()
                    .map_err(failed("SPKI parsing failed"))?;
                key.verify_digest_sig(&digest, &self.signature)
                    .map_err(failed("the signature did not verify"))?;
            }
        }
        Ok(())
    }

    /// Runs `threads` threads making the `kind` call for `warmup` + `duration`.
    pub fn run(
        &self,
        kind: LibKind,
        threads: usize,
        warmup: Duration,
        duration: Duration,
    ) -> Result<ScenarioResult, BoxError> {
        measure(kind.group(), threads, warmup, duration, || {
            move || self.call(kind)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn every_call_works_and_a_tampered_signature_fails() {
        let all = [
            LibKind::SignP256,
            LibKind::SignRsa2048,
            LibKind::Hmac256,
            LibKind::VerifyP256,
        ];
        let mut bench = LibBench::open(&all, b"message".to_vec()).unwrap();
        for kind in all {
            bench.call(kind).unwrap();
        }
        bench.signature[10] ^= 1;
        assert!(bench.call(LibKind::VerifyP256).is_err());
    }

    #[test]
    fn measured_calls_are_counted_per_scenario() {
        let bench = LibBench::open(&[LibKind::Hmac256], vec![7; 256]).unwrap();
        let result = bench
            .run(
                LibKind::Hmac256,
                2,
                Duration::ZERO,
                Duration::from_millis(200),
            )
            .unwrap();
        assert_eq!(result.name, "raw-lib-hmac256");
        assert_eq!(result.raw.as_ref().unwrap().threads, 2);
        assert!(result.requests() > 100, "{}", result.requests());
        assert_eq!(result.error_count(), 0);
    }
}
