//! In-process raw rates of the host cryptography (one thread), for comparison with the bare
//! route and the service (`docs/key-types.md`, "Raw rates"). Ignored by default; run with
//!
//! ```sh
//! cargo test --release -p kms --lib crypto::bench -- --ignored --nocapture
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use super::*;
use crate::model::{HashAlg, MacAlgorithm};

/// Runs `f` for about `budget` and returns operations per second.
fn rate(budget: Duration, mut f: impl FnMut()) -> f64 {
    for _ in 0..10 {
        f(); // warm-up
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..16 {
            f();
        }
        n += 16;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

#[test]
#[ignore = "benchmark: run with --release --ignored --nocapture"]
fn raw_rates() {
    let budget = Duration::from_secs(2);
    let digest = hash(HashAlg::Sha256, b"benchmark message");
    let input = SignInput::Digest(&digest);
    let mut rows: Vec<(&str, f64)> = Vec::new();

    let p256 = generate_key_pair(KeySpec::EccNistP256).unwrap();
    let p256_key = PrivateKey::from_pkcs8(KeySpec::EccNistP256, &p256.private_pkcs8).unwrap();
    let ecdsa = SigningAlgorithm::EcdsaSha256;
    rows.push((
        "P-256 sign (ECDSA_SHA_256, digest)",
        rate(budget, || {
            std::hint::black_box(p256_key.sign(ecdsa, input).unwrap());
        }),
    ));
    let sig = p256_key.sign(ecdsa, input).unwrap();
    rows.push((
        "P-256 verify (from the SPKI, parsed per call)",
        rate(budget, || {
            assert!(verify(&p256.public_spki, ecdsa, input, &sig).unwrap());
        }),
    ));

    let rsa = generate_key_pair(KeySpec::Rsa2048).unwrap();
    let rsa_key = PrivateKey::from_pkcs8(KeySpec::Rsa2048, &rsa.private_pkcs8).unwrap();
    for (name, alg) in [
        (
            "RSA-2048 sign (RSASSA_PKCS1_V1_5_SHA_256)",
            SigningAlgorithm::RsassaPkcs1V15Sha256,
        ),
        (
            "RSA-2048 sign (RSASSA_PSS_SHA_256)",
            SigningAlgorithm::RsassaPssSha256,
        ),
    ] {
        rows.push((
            name,
            rate(budget, || {
                std::hint::black_box(rsa_key.sign(alg, input).unwrap());
            }),
        ));
    }
    let rsa_sig = rsa_key
        .sign(SigningAlgorithm::RsassaPssSha256, input)
        .unwrap();
    rows.push((
        "RSA-2048 verify (RSASSA_PSS_SHA_256)",
        rate(budget, || {
            assert!(verify(
                &rsa.public_spki,
                SigningAlgorithm::RsassaPssSha256,
                input,
                &rsa_sig
            )
            .unwrap());
        }),
    ));

    let hmac_key = HmacKey::new(MacAlgorithm::HmacSha256, &[7u8; 32]);
    let message = [0x5au8; 64];
    rows.push((
        "HMAC_SHA_256 (64-byte message)",
        rate(budget, || {
            std::hint::black_box(hmac_key.sign(&message));
        }),
    ));

    let ml = generate_key_pair(KeySpec::MlDsa65).unwrap();
    let ml_key = PrivateKey::from_pkcs8(KeySpec::MlDsa65, &ml.private_pkcs8).unwrap();
    rows.push((
        "ML-DSA-65 sign (RAW, 64-byte message)",
        rate(budget, || {
            std::hint::black_box(
                ml_key
                    .sign(
                        SigningAlgorithm::MlDsaShake256,
                        SignInput::Message(&message),
                    )
                    .unwrap(),
            );
        }),
    ));

    let peer = generate_key_pair(KeySpec::EccNistP256).unwrap();
    let point = peer_point(KeySpec::EccNistP256, &peer.public_spki).unwrap();
    rows.push((
        "P-256 ECDH (raw Z)",
        rate(budget, || {
            std::hint::black_box(p256_key.ecdh(&point).unwrap());
        }),
    ));

    println!("\n| operation | ops/s (1 thread) |\n|---|---|");
    for (name, r) in rows {
        println!("| {name} | {r:.0} |");
    }
}
