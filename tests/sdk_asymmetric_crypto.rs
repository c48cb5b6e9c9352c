//! RSA encryption, key agreement and data key pairs through the real `aws-sdk-kms` client, on
//! the root under test (`KMS_TEST_BACKEND=pkcs11` for the PKCS#11 root): Encrypt/Decrypt round
//! trips for every RSA spec and algorithm at the OAEP limit and one byte over it, OAEP
//! ciphertext made offline by OpenSSL from GetPublicKey's SPKI, corrupted ciphertext, the
//! encryption-context refusal, ReEncrypt across RSA and symmetric keys, DeriveSharedSecret
//! against the secret OpenSSL derives, GenerateDataKeyPair(WithoutPlaintext) for every pair spec
//! checked with OpenSSL, wrong-usage errors and DryRun.
//!
//! OpenSSL (the `openssl` command, 3.0) is the independent second implementation: the server's
//! host cryptography is aws-lc-rs, its PKCS#11 root SoftHSM.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use std::path::Path;
use std::process::Command;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    DataKeyPairSpec, EncryptionAlgorithmSpec as Alg, KeyAgreementAlgorithmSpec, KeySpec,
    KeyUsageType,
};

const DRY_RUN_MESSAGE: &str = "The request would have succeeded, but the DryRun option is set.";
const INCORRECT_KEY_MESSAGE: &str =
    "The key ID in the request does not identify a CMK that can perform this operation.";
const CONTEXT_MESSAGE: &str =
    "EncryptionContext is not supported when encrypting/decrypting with asymmetric CMKs.";

async fn new_symmetric_key(kms: &aws_sdk_kms::Client) -> (String, String) {
    let md = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    (md.key_id().to_string(), md.arn().unwrap().to_string())
}

async fn public_key(kms: &aws_sdk_kms::Client, key: &str) -> Vec<u8> {
    kms.get_public_key()
        .key_id(key)
        .send()
        .await
        .unwrap()
        .public_key
        .unwrap()
        .into_inner()
}

/// Runs `openssl` with `args` in `dir`; panics with its stderr when it fails.
fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Whether `openssl` accepts the command (for negative checks).
fn openssl_ok(dir: &Path, args: &[&str]) -> bool {
    Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs")
        .status
        .success()
}

fn rsa_specs() -> [(KeySpec, &'static str, usize); 3] {
    [
        (KeySpec::Rsa2048, "RSA_2048", 256),
        (KeySpec::Rsa3072, "RSA_3072", 384),
        (KeySpec::Rsa4096, "RSA_4096", 512),
    ]
}

/// The OAEP plaintext limit (reference key-types.md §2.4).
fn limit(k: usize, alg: &Alg) -> usize {
    let h = if *alg == Alg::RsaesOaepSha1 { 20 } else { 32 };
    k - 2 * h - 2
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[tokio::test]
async fn rsa_round_trips_at_the_limit_for_every_spec_and_algorithm() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    for (spec, spec_name, k) in rsa_specs() {
        let (id, arn) = common::new_key_of(&kms, spec, KeyUsageType::EncryptDecrypt).await;
        for alg in [Alg::RsaesOaepSha1, Alg::RsaesOaepSha256] {
            let max = limit(k, &alg);
            for len in [1, max] {
                let plaintext = pattern(len, 7);
                let out = kms
                    .encrypt()
                    .key_id(&id)
                    .encryption_algorithm(alg.clone())
                    .plaintext(Blob::new(plaintext.clone()))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(out.key_id(), Some(arn.as_str()));
                assert_eq!(out.encryption_algorithm(), Some(&alg));
                let blob = out.ciphertext_blob.unwrap().into_inner();
                // The bare OAEP output: exactly k bytes, no header.
                assert_eq!(blob.len(), k, "{spec_name} {alg}");
                let dec = kms
                    .decrypt()
                    .key_id(&id)
                    .encryption_algorithm(alg.clone())
                    .ciphertext_blob(Blob::new(blob.clone()))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(dec.key_id(), Some(arn.as_str()));
                assert_eq!(dec.encryption_algorithm(), Some(&alg));
                assert_eq!(dec.plaintext.unwrap().into_inner(), plaintext);

                // The other OAEP hash does not decode it.
                let other = if alg == Alg::RsaesOaepSha1 {
                    Alg::RsaesOaepSha256
                } else {
                    Alg::RsaesOaepSha1
                };
                let (code, msg) = common::fail(
                    kms.decrypt()
                        .key_id(&id)
                        .encryption_algorithm(other)
                        .ciphertext_blob(Blob::new(blob))
                        .send()
                        .await,
                );
                assert_eq!(
                    (code.as_str(), msg.as_str()),
                    ("InvalidCiphertextException", "")
                );
            }
            let (code, msg) = common::fail(
                kms.encrypt()
                    .key_id(&id)
                    .encryption_algorithm(alg.clone())
                    .plaintext(Blob::new(pattern(max + 1, 1)))
                    .send()
                    .await,
            );
            assert_eq!(code, "ValidationException");
            assert_eq!(
                msg,
                format!(
                    "Algorithm {alg} and key spec {spec_name} cannot encrypt data larger than \
                     {max} bytes."
                )
            );
        }
    }
}

#[tokio::test]
async fn openssl_oaep_ciphertext_decrypts_and_tampering_is_refused() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let dir = tempfile::tempdir().unwrap();
    let (id, _) = common::new_key_of(&kms, KeySpec::Rsa2048, KeyUsageType::EncryptDecrypt).await;
    let (other_rsa, _) =
        common::new_key_of(&kms, KeySpec::Rsa2048, KeyUsageType::EncryptDecrypt).await;
    std::fs::write(dir.path().join("pub.der"), public_key(&kms, &id).await).unwrap();
    let plaintext = pattern(190, 3);
    std::fs::write(dir.path().join("pt.bin"), &plaintext).unwrap();
    for (alg, md) in [
        (Alg::RsaesOaepSha1, "sha1"),
        (Alg::RsaesOaepSha256, "sha256"),
    ] {
        let oaep_md = format!("rsa_oaep_md:{md}");
        let mgf1_md = format!("rsa_mgf1_md:{md}");
        openssl(
            dir.path(),
            &[
                "pkeyutl",
                "-encrypt",
                "-pubin",
                "-keyform",
                "DER",
                "-inkey",
                "pub.der",
                "-in",
                "pt.bin",
                "-out",
                "ct.bin",
                "-pkeyopt",
                "rsa_padding_mode:oaep",
                "-pkeyopt",
                &oaep_md,
                "-pkeyopt",
                &mgf1_md,
            ],
        );
        let ct = std::fs::read(dir.path().join("ct.bin")).unwrap();
        assert_eq!(ct.len(), 256);
        let out = kms
            .decrypt()
            .key_id(&id)
            .encryption_algorithm(alg.clone())
            .ciphertext_blob(Blob::new(ct.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(out.plaintext.unwrap().into_inner(), plaintext, "{alg}");

        // One flipped bit, a truncated blob, another RSA key, or no KeyId: invalid ciphertext.
        let mut flipped = ct.clone();
        flipped[100] ^= 0x01;
        for (what, blob, key) in [
            ("flipped", flipped, Some(id.as_str())),
            ("truncated", ct[..255].to_vec(), Some(id.as_str())),
            ("other key", ct.clone(), Some(other_rsa.as_str())),
            ("no key id", ct.clone(), None),
        ] {
            let mut req = kms
                .decrypt()
                .encryption_algorithm(alg.clone())
                .ciphertext_blob(Blob::new(blob));
            if let Some(k) = key {
                req = req.key_id(k);
            }
            let (code, msg) = common::fail(req.send().await);
            assert_eq!(
                (code.as_str(), msg.as_str()),
                ("InvalidCiphertextException", ""),
                "{what} {alg}"
            );
        }
    }
}

#[tokio::test]
async fn rsa_algorithm_usage_and_context_refusals() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (rsa, rsa_arn) =
        common::new_key_of(&kms, KeySpec::Rsa2048, KeyUsageType::EncryptDecrypt).await;
    let (rsa4096, _) =
        common::new_key_of(&kms, KeySpec::Rsa4096, KeyUsageType::EncryptDecrypt).await;
    let (signing, signing_arn) =
        common::new_key_of(&kms, KeySpec::Rsa2048, KeyUsageType::SignVerify).await;
    let (sym, _) = new_symmetric_key(&kms).await;

    // No algorithm, or SYMMETRIC_DEFAULT, with an RSA key.
    for alg in [None, Some(Alg::SymmetricDefault)] {
        let (code, msg) = common::fail(
            kms.encrypt()
                .key_id(&rsa4096)
                .set_encryption_algorithm(alg.clone())
                .plaintext(Blob::new(b"x".to_vec()))
                .send()
                .await,
        );
        assert_eq!(code, "InvalidKeyUsageException");
        assert_eq!(
            msg,
            "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_4096."
        );
    }
    // An RSA algorithm with a symmetric key.
    let (code, msg) = common::fail(
        kms.encrypt()
            .key_id(&sym)
            .encryption_algorithm(Alg::RsaesOaepSha256)
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
            .await,
    );
    assert_eq!(code, "InvalidKeyUsageException");
    assert_eq!(
        msg,
        "Algorithm RSAES_OAEP_SHA_256 is incompatible with key spec SYMMETRIC_DEFAULT."
    );
    // A SIGN_VERIFY key.
    let (code, msg) = common::fail(
        kms.encrypt()
            .key_id(&signing)
            .encryption_algorithm(Alg::RsaesOaepSha256)
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
            .await,
    );
    assert_eq!(code, "InvalidKeyUsageException");
    assert_eq!(
        msg,
        format!("{signing_arn} key usage is SIGN_VERIFY which is not valid for Encrypt.")
    );

    // Encryption context with an RSA key, on Encrypt and Decrypt.
    let (code, msg) = common::fail(
        kms.encrypt()
            .key_id(&rsa)
            .encryption_algorithm(Alg::RsaesOaepSha1)
            .encryption_context("a", "b")
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
            .await,
    );
    assert_eq!(
        (code.as_str(), msg.as_str()),
        ("ValidationException", CONTEXT_MESSAGE)
    );
    let blob = kms
        .encrypt()
        .key_id(&rsa)
        .encryption_algorithm(Alg::RsaesOaepSha1)
        .plaintext(Blob::new(b"secret".to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap()
        .into_inner();
    let (code, msg) = common::fail(
        kms.decrypt()
            .key_id(&rsa)
            .encryption_algorithm(Alg::RsaesOaepSha1)
            .encryption_context("a", "b")
            .ciphertext_blob(Blob::new(blob.clone()))
            .send()
            .await,
    );
    assert_eq!(
        (code.as_str(), msg.as_str()),
        ("ValidationException", CONTEXT_MESSAGE)
    );

    // Decrypt of the RSA blob with the RSA key but no algorithm.
    let (code, msg) = common::fail(
        kms.decrypt()
            .key_id(&rsa)
            .ciphertext_blob(Blob::new(blob.clone()))
            .send()
            .await,
    );
    assert_eq!(code, "InvalidKeyUsageException");
    assert_eq!(
        msg,
        "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_2048."
    );
    // ... with a symmetric key's id and the RSA algorithm.
    let (code, msg) = common::fail(
        kms.decrypt()
            .key_id(&sym)
            .encryption_algorithm(Alg::RsaesOaepSha1)
            .ciphertext_blob(Blob::new(blob.clone()))
            .send()
            .await,
    );
    assert_eq!(code, "InvalidKeyUsageException");
    assert_eq!(
        msg,
        "Algorithm RSAES_OAEP_SHA_1 is incompatible with key spec SYMMETRIC_DEFAULT."
    );
    // ... with a symmetric key's id and no algorithm: not one of its blobs.
    let (code, msg) = common::fail(
        kms.decrypt()
            .key_id(&sym)
            .ciphertext_blob(Blob::new(blob.clone()))
            .send()
            .await,
    );
    assert_eq!(
        (code.as_str(), msg.as_str()),
        ("InvalidCiphertextException", "")
    );

    // A symmetric blob with the RSA key's id: the named key did not make it.
    let sym_blob = kms
        .encrypt()
        .key_id(&sym)
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap()
        .into_inner();
    for alg in [None, Some(Alg::RsaesOaepSha256)] {
        let (code, msg) = common::fail(
            kms.decrypt()
                .key_id(&rsa)
                .set_encryption_algorithm(alg)
                .ciphertext_blob(Blob::new(sym_blob.clone()))
                .send()
                .await,
        );
        assert_eq!(
            (code.as_str(), msg.as_str()),
            ("IncorrectKeyException", INCORRECT_KEY_MESSAGE)
        );
    }

    // DryRun: validated, then refused.
    let (code, msg) = common::fail(
        kms.encrypt()
            .key_id(&rsa)
            .encryption_algorithm(Alg::RsaesOaepSha256)
            .plaintext(Blob::new(b"x".to_vec()))
            .dry_run(true)
            .send()
            .await,
    );
    assert_eq!(
        (code.as_str(), msg.as_str()),
        ("DryRunOperationException", DRY_RUN_MESSAGE)
    );
    let (code, _) = common::fail(
        kms.encrypt()
            .key_id(&rsa)
            .encryption_algorithm(Alg::RsaesOaepSha256)
            .plaintext(Blob::new(vec![0; 191]))
            .dry_run(true)
            .send()
            .await,
    );
    assert_eq!(
        code, "ValidationException",
        "a dry run checks the limit first"
    );
    let (code, msg) = common::fail(
        kms.decrypt()
            .key_id(&rsa)
            .encryption_algorithm(Alg::RsaesOaepSha1)
            .ciphertext_blob(Blob::new(blob.clone()))
            .dry_run(true)
            .send()
            .await,
    );
    assert_eq!(
        (code.as_str(), msg.as_str()),
        ("DryRunOperationException", DRY_RUN_MESSAGE)
    );

    // A disabled RSA key.
    kms.disable_key().key_id(&rsa).send().await.unwrap();
    let (code, msg) = common::fail(
        kms.decrypt()
            .key_id(&rsa)
            .encryption_algorithm(Alg::RsaesOaepSha1)
            .ciphertext_blob(Blob::new(blob))
            .send()
            .await,
    );
    assert_eq!(
        (code.as_str(), msg),
        ("DisabledException", format!("{rsa_arn} is disabled."))
    );

    // The audit records carry the algorithm and never the plaintext.
    let records = srv.audit_records().await;
    let encrypts: Vec<_> = records
        .iter()
        .filter(|r| {
            r["eventName"] == "Encrypt"
                && r["errorCode"].is_null()
                && r["requestParameters"]["keyId"] == rsa.as_str()
        })
        .collect();
    assert!(!encrypts.is_empty());
    for r in encrypts {
        assert_eq!(
            r["requestParameters"]["encryptionAlgorithm"],
            "RSAES_OAEP_SHA_1"
        );
        assert!(r["requestParameters"].get("plaintext").is_none());
    }
}

#[tokio::test]
async fn re_encrypt_between_rsa_and_symmetric_keys() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (rsa, rsa_arn) =
        common::new_key_of(&kms, KeySpec::Rsa3072, KeyUsageType::EncryptDecrypt).await;
    let (rsa2, rsa2_arn) =
        common::new_key_of(&kms, KeySpec::Rsa2048, KeyUsageType::EncryptDecrypt).await;
    let (sym, sym_arn) = new_symmetric_key(&kms).await;
    let plaintext = pattern(100, 9);
    let blob = kms
        .encrypt()
        .key_id(&rsa)
        .encryption_algorithm(Alg::RsaesOaepSha256)
        .plaintext(Blob::new(plaintext.clone()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap()
        .into_inner();

    // RSA -> symmetric (with a context).
    let out = kms
        .re_encrypt()
        .ciphertext_blob(Blob::new(blob))
        .source_key_id(&rsa)
        .source_encryption_algorithm(Alg::RsaesOaepSha256)
        .destination_key_id(&sym)
        .destination_encryption_context("k", "v")
        .send()
        .await
        .unwrap();
    assert_eq!(out.source_key_id(), Some(rsa_arn.as_str()));
    assert_eq!(out.key_id(), Some(sym_arn.as_str()));
    assert_eq!(
        out.source_encryption_algorithm(),
        Some(&Alg::RsaesOaepSha256)
    );
    assert_eq!(
        out.destination_encryption_algorithm(),
        Some(&Alg::SymmetricDefault)
    );
    let sym_blob = out.ciphertext_blob.unwrap().into_inner();

    // symmetric -> RSA (no KeyId needed for the symmetric source).
    let out = kms
        .re_encrypt()
        .ciphertext_blob(Blob::new(sym_blob.clone()))
        .source_encryption_context("k", "v")
        .destination_key_id(&rsa2)
        .destination_encryption_algorithm(Alg::RsaesOaepSha1)
        .send()
        .await
        .unwrap();
    assert_eq!(out.source_key_id(), Some(sym_arn.as_str()));
    assert_eq!(out.key_id(), Some(rsa2_arn.as_str()));
    assert_eq!(
        out.source_encryption_algorithm(),
        Some(&Alg::SymmetricDefault)
    );
    assert_eq!(
        out.destination_encryption_algorithm(),
        Some(&Alg::RsaesOaepSha1)
    );
    let rsa_blob = out.ciphertext_blob.unwrap().into_inner();
    assert_eq!(rsa_blob.len(), 256);

    // RSA -> RSA.
    let out = kms
        .re_encrypt()
        .ciphertext_blob(Blob::new(rsa_blob))
        .source_key_id(&rsa2)
        .source_encryption_algorithm(Alg::RsaesOaepSha1)
        .destination_key_id(&rsa)
        .destination_encryption_algorithm(Alg::RsaesOaepSha1)
        .send()
        .await
        .unwrap();
    let back = kms
        .decrypt()
        .key_id(&rsa)
        .encryption_algorithm(Alg::RsaesOaepSha1)
        .ciphertext_blob(out.ciphertext_blob.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(back.plaintext.unwrap().into_inner(), plaintext);

    // RSA destination without an algorithm; with a context; a plaintext over its limit.
    let (code, msg) = common::fail(
        kms.re_encrypt()
            .ciphertext_blob(Blob::new(sym_blob.clone()))
            .source_encryption_context("k", "v")
            .destination_key_id(&rsa2)
            .send()
            .await,
    );
    assert_eq!(code, "InvalidKeyUsageException");
    assert_eq!(
        msg,
        "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_2048."
    );
    let (code, msg) = common::fail(
        kms.re_encrypt()
            .ciphertext_blob(Blob::new(sym_blob.clone()))
            .source_encryption_context("k", "v")
            .destination_key_id(&rsa2)
            .destination_encryption_algorithm(Alg::RsaesOaepSha1)
            .destination_encryption_context("x", "y")
            .send()
            .await,
    );
    assert_eq!(
        (code.as_str(), msg.as_str()),
        ("ValidationException", CONTEXT_MESSAGE)
    );
    let big = kms
        .encrypt()
        .key_id(&sym)
        .plaintext(Blob::new(vec![5; 300]))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    let (code, msg) = common::fail(
        kms.re_encrypt()
            .ciphertext_blob(big)
            .destination_key_id(&rsa2)
            .destination_encryption_algorithm(Alg::RsaesOaepSha256)
            .send()
            .await,
    );
    assert_eq!(code, "ValidationException");
    assert_eq!(
        msg,
        "Algorithm RSAES_OAEP_SHA_256 and key spec RSA_2048 cannot encrypt data larger than 190 \
         bytes."
    );
    // DryRun across the two kinds.
    let (code, _) = common::fail(
        kms.re_encrypt()
            .ciphertext_blob(Blob::new(sym_blob))
            .source_encryption_context("k", "v")
            .destination_key_id(&rsa2)
            .destination_encryption_algorithm(Alg::RsaesOaepSha1)
            .dry_run(true)
            .send()
            .await,
    );
    assert_eq!(code, "DryRunOperationException");
}

/// (key spec, OpenSSL curve name, shared secret length).
fn agreement_curves() -> [(KeySpec, &'static str, usize); 3] {
    [
        (KeySpec::EccNistP256, "P-256", 32),
        (KeySpec::EccNistP384, "P-384", 48),
        (KeySpec::EccNistP521, "P-521", 66),
    ]
}

/// Makes an OpenSSL peer key on `curve` in `dir` (`<name>.pem`, `<name>.der` = its SPKI).
fn peer_key(dir: &Path, curve: &str, name: &str) -> Vec<u8> {
    let pem = format!("{name}.pem");
    let der = format!("{name}.der");
    let param = format!("ec_paramgen_curve:{curve}");
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            &param,
            "-out",
            &pem,
        ],
    );
    openssl(
        dir,
        &[
            "pkey", "-in", &pem, "-pubout", "-outform", "DER", "-out", &der,
        ],
    );
    std::fs::read(dir.join(der)).unwrap()
}

#[tokio::test]
async fn derive_shared_secret_matches_openssl_on_every_curve() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let dir = tempfile::tempdir().unwrap();
    let mut secrets = Vec::new();
    for (spec, curve, len) in agreement_curves() {
        let (id, arn) = common::new_key_of(&kms, spec.clone(), KeyUsageType::KeyAgreement).await;
        std::fs::write(dir.path().join("kms.der"), public_key(&kms, &id).await).unwrap();
        let peer = peer_key(dir.path(), curve, "peer");
        let out = kms
            .derive_shared_secret()
            .key_id(&id)
            .key_agreement_algorithm(KeyAgreementAlgorithmSpec::Ecdh)
            .public_key(Blob::new(peer))
            .send()
            .await
            .unwrap();
        assert_eq!(out.key_id(), Some(arn.as_str()));
        assert_eq!(
            out.key_agreement_algorithm(),
            Some(&KeyAgreementAlgorithmSpec::Ecdh)
        );
        assert_eq!(out.key_origin().map(|o| o.as_str()), Some("AWS_KMS"));
        let secret = out.shared_secret.unwrap().into_inner();
        assert_eq!(secret.len(), len, "{curve}");
        let expected = openssl(
            dir.path(),
            &[
                "pkeyutl",
                "-derive",
                "-inkey",
                "peer.pem",
                "-peerkey",
                "kms.der",
                "-peerform",
                "DER",
            ],
        );
        assert_eq!(secret, expected, "{curve}: the secret OpenSSL derives");
        secrets.push(secret);

        // A key on another curve, garbage, an RSA SPKI: ValidationException, empty message.
        let other_curve = if curve == "P-256" { "P-384" } else { "P-256" };
        let wrong = peer_key(dir.path(), other_curve, "wrong");
        let rsa_spki = {
            openssl(
                dir.path(),
                &[
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:1024",
                    "-out",
                    "rsa.pem",
                ],
            );
            openssl(
                dir.path(),
                &["pkey", "-in", "rsa.pem", "-pubout", "-outform", "DER"],
            )
        };
        for (what, pk) in [
            ("other curve", wrong),
            ("garbage", b"not a public key".to_vec()),
            ("rsa", rsa_spki),
        ] {
            let (code, msg) = common::fail(
                kms.derive_shared_secret()
                    .key_id(&id)
                    .key_agreement_algorithm(KeyAgreementAlgorithmSpec::Ecdh)
                    .public_key(Blob::new(pk))
                    .send()
                    .await,
            );
            assert_eq!(
                (code.as_str(), msg.as_str()),
                ("ValidationException", ""),
                "{curve} {what}"
            );
        }
    }

    // The audit records never carry the secret.
    let records = srv.audit_records().await;
    let derives: Vec<_> = records
        .iter()
        .filter(|r| r["eventName"] == "DeriveSharedSecret")
        .collect();
    assert!(!derives.is_empty());
    let text = serde_json::to_string(&derives).unwrap();
    use base64::Engine;
    for s in &secrets {
        let b64 = base64::engine::general_purpose::STANDARD.encode(s);
        assert!(!text.contains(&b64));
    }
    assert!(derives
        .iter()
        .all(|r| r["responseElements"].is_null()
            || r["responseElements"].get("sharedSecret").is_none()));
}

#[tokio::test]
async fn derive_shared_secret_refusals_and_dry_run() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let dir = tempfile::tempdir().unwrap();
    let peer = peer_key(dir.path(), "P-256", "peer");
    let (ka, _) = common::new_key_of(&kms, KeySpec::EccNistP256, KeyUsageType::KeyAgreement).await;
    let (sign, sign_arn) =
        common::new_key_of(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let (sym, sym_arn) = new_symmetric_key(&kms).await;

    let (code, msg) = common::fail(
        kms.derive_shared_secret()
            .key_id(&ka)
            .key_agreement_algorithm(KeyAgreementAlgorithmSpec::from("INVALID"))
            .public_key(Blob::new(peer.clone()))
            .send()
            .await,
    );
    assert_eq!(code, "ValidationException");
    assert_eq!(
        msg,
        "1 validation error detected: Value 'INVALID' at 'keyAgreementAlgorithm' failed to \
         satisfy constraint: Member must satisfy enum value set: [ECDH]"
    );
    for (key, arn, usage) in [
        (&sign, &sign_arn, "SIGN_VERIFY"),
        (&sym, &sym_arn, "ENCRYPT_DECRYPT"),
    ] {
        let (code, msg) = common::fail(
            kms.derive_shared_secret()
                .key_id(key)
                .key_agreement_algorithm(KeyAgreementAlgorithmSpec::Ecdh)
                .public_key(Blob::new(peer.clone()))
                .send()
                .await,
        );
        assert_eq!(code, "InvalidKeyUsageException");
        assert_eq!(
            msg,
            format!("{arn} key usage is {usage} which is not valid for DeriveSharedSecret.")
        );
    }
    let (code, msg) = common::fail(
        kms.derive_shared_secret()
            .key_id(&ka)
            .key_agreement_algorithm(KeyAgreementAlgorithmSpec::Ecdh)
            .public_key(Blob::new(peer.clone()))
            .dry_run(true)
            .send()
            .await,
    );
    assert_eq!(
        (code.as_str(), msg.as_str()),
        ("DryRunOperationException", DRY_RUN_MESSAGE)
    );
    // A dry run still checks the public key.
    let (code, _) = common::fail(
        kms.derive_shared_secret()
            .key_id(&ka)
            .key_agreement_algorithm(KeyAgreementAlgorithmSpec::Ecdh)
            .public_key(Blob::new(vec![0x30, 0x00]))
            .dry_run(true)
            .send()
            .await,
    );
    assert_eq!(code, "ValidationException");
}

#[tokio::test]
async fn derive_shared_secret_and_data_key_pairs_through_grants() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let bob = srv.other_client();
    let dir = tempfile::tempdir().unwrap();
    let peer = peer_key(dir.path(), "P-256", "peer");
    let (_, ka_arn) =
        common::new_key_of(&kms, KeySpec::EccNistP256, KeyUsageType::KeyAgreement).await;
    let (_, sym_arn) = new_symmetric_key(&kms).await;

    // Another account's user: denied until a grant allows exactly that operation.
    let derive = || {
        bob.derive_shared_secret()
            .key_id(&ka_arn)
            .key_agreement_algorithm(KeyAgreementAlgorithmSpec::Ecdh)
            .public_key(Blob::new(peer.clone()))
            .send()
    };
    let pair = || {
        bob.generate_data_key_pair_without_plaintext()
            .key_id(&sym_arn)
            .key_pair_spec(DataKeyPairSpec::EccNistP256)
            .send()
    };
    assert_eq!(common::fail(derive().await).0, "AccessDeniedException");
    assert_eq!(common::fail(pair().await).0, "AccessDeniedException");
    for (arn, op) in [
        (
            &ka_arn,
            aws_sdk_kms::types::GrantOperation::DeriveSharedSecret,
        ),
        (
            &sym_arn,
            aws_sdk_kms::types::GrantOperation::GenerateDataKeyPairWithoutPlaintext,
        ),
    ] {
        kms.create_grant()
            .key_id(arn)
            .grantee_principal("arn:aws:iam::444455556666:user/bob")
            .operations(op)
            .send()
            .await
            .unwrap();
    }
    assert_eq!(
        derive()
            .await
            .unwrap()
            .shared_secret
            .unwrap()
            .into_inner()
            .len(),
        32
    );
    assert_eq!(pair().await.unwrap().key_id(), Some(sym_arn.as_str()));
    // The grant covers only the operation it names.
    let (code, _) = common::fail(
        bob.generate_data_key_pair()
            .key_id(&sym_arn)
            .key_pair_spec(DataKeyPairSpec::EccNistP256)
            .send()
            .await,
    );
    assert_eq!(code, "AccessDeniedException");
}

/// Every pair spec this server makes, with the OpenSSL check that applies.
fn pair_specs() -> Vec<DataKeyPairSpec> {
    vec![
        DataKeyPairSpec::Rsa2048,
        DataKeyPairSpec::Rsa3072,
        DataKeyPairSpec::Rsa4096,
        DataKeyPairSpec::EccNistP256,
        DataKeyPairSpec::EccNistP384,
        DataKeyPairSpec::EccNistP521,
        DataKeyPairSpec::EccSecgP256K1,
        DataKeyPairSpec::EccNistEdwards25519,
    ]
}

/// Checks a PKCS#8 private key with OpenSSL and returns the SPKI OpenSSL derives from it.
fn openssl_public_of(dir: &Path, pkcs8: &[u8]) -> Vec<u8> {
    std::fs::write(dir.join("priv.der"), pkcs8).unwrap();
    // Parses as PKCS#8 (an RFC 5958 PrivateKeyInfo, unencrypted).
    let text = openssl(
        dir,
        &["pkcs8", "-nocrypt", "-inform", "DER", "-in", "priv.der"],
    );
    assert!(String::from_utf8_lossy(&text).contains("BEGIN PRIVATE KEY"));
    openssl(
        dir,
        &[
            "pkey", "-inform", "DER", "-in", "priv.der", "-pubout", "-outform", "DER",
        ],
    )
}

#[tokio::test]
async fn generate_data_key_pair_for_every_spec() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let dir = tempfile::tempdir().unwrap();
    let (sym, sym_arn) = new_symmetric_key(&kms).await;
    for spec in pair_specs() {
        let out = kms
            .generate_data_key_pair()
            .key_id(&sym)
            .key_pair_spec(spec.clone())
            .encryption_context("purpose", "test")
            .send()
            .await
            .unwrap();
        assert_eq!(out.key_id(), Some(sym_arn.as_str()), "{spec}");
        assert_eq!(out.key_pair_spec(), Some(&spec));
        let public = out.public_key.unwrap().into_inner();
        let private = out.private_key_plaintext.unwrap().into_inner();
        let blob = out.private_key_ciphertext_blob.unwrap().into_inner();

        // The private key is PKCS#8 and its public key is `PublicKey`.
        assert_eq!(openssl_public_of(dir.path(), &private), public, "{spec}");
        if spec != DataKeyPairSpec::EccNistEdwards25519 {
            assert!(
                openssl_ok(
                    dir.path(),
                    &["pkey", "-inform", "DER", "-in", "priv.der", "-check", "-noout"]
                ),
                "{spec}: openssl pkey -check"
            );
        }

        // The ciphertext is an ordinary symmetric one, bound to the context.
        let dec = kms
            .decrypt()
            .ciphertext_blob(Blob::new(blob.clone()))
            .encryption_context("purpose", "test")
            .send()
            .await
            .unwrap();
        assert_eq!(dec.key_id(), Some(sym_arn.as_str()));
        assert_eq!(dec.plaintext.unwrap().into_inner(), private, "{spec}");
        for ctx in [None, Some(("purpose", "other"))] {
            let mut req = kms.decrypt().ciphertext_blob(Blob::new(blob.clone()));
            if let Some((k, v)) = ctx {
                req = req.encryption_context(k, v);
            }
            let (code, msg) = common::fail(req.send().await);
            assert_eq!(
                (code.as_str(), msg.as_str()),
                ("InvalidCiphertextException", ""),
                "{spec} {ctx:?}"
            );
        }
    }

    // Two calls, two different pairs.
    let a = kms
        .generate_data_key_pair()
        .key_id(&sym)
        .key_pair_spec(DataKeyPairSpec::EccNistP256)
        .send()
        .await
        .unwrap();
    let b = kms
        .generate_data_key_pair()
        .key_id(&sym)
        .key_pair_spec(DataKeyPairSpec::EccNistP256)
        .send()
        .await
        .unwrap();
    assert_ne!(a.public_key, b.public_key);

    // The audit records carry the spec and never the private key.
    let records = srv.audit_records().await;
    let pairs: Vec<_> = records
        .iter()
        .filter(|r| r["eventName"] == "GenerateDataKeyPair" && r["errorCode"].is_null())
        .collect();
    assert!(pairs.len() >= pair_specs().len());
    for r in &pairs {
        assert!(r["requestParameters"]["keyPairSpec"].is_string());
        assert!(r["responseElements"].is_null());
    }
    let text = serde_json::to_string(&pairs).unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD
        .encode(a.private_key_plaintext.unwrap().into_inner());
    assert!(!text.contains(&b64));
}

#[tokio::test]
async fn generate_data_key_pair_without_plaintext() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let dir = tempfile::tempdir().unwrap();
    let (sym, sym_arn) = new_symmetric_key(&kms).await;
    for spec in [DataKeyPairSpec::Rsa2048, DataKeyPairSpec::EccNistP384] {
        let out = kms
            .generate_data_key_pair_without_plaintext()
            .key_id(&sym)
            .key_pair_spec(spec.clone())
            .encryption_context("a", "1")
            .send()
            .await
            .unwrap();
        assert_eq!(out.key_id(), Some(sym_arn.as_str()));
        assert_eq!(out.key_pair_spec(), Some(&spec));
        let public = out.public_key.unwrap().into_inner();
        let private = kms
            .decrypt()
            .ciphertext_blob(out.private_key_ciphertext_blob.unwrap())
            .encryption_context("a", "1")
            .send()
            .await
            .unwrap()
            .plaintext
            .unwrap()
            .into_inner();
        assert_eq!(openssl_public_of(dir.path(), &private), public, "{spec}");
    }
}

#[tokio::test]
async fn generate_data_key_pair_refusals_and_dry_run() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (sym, _) = new_symmetric_key(&kms).await;
    let (signing, signing_arn) =
        common::new_key_of(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let (rsa_enc, rsa_enc_arn) =
        common::new_key_of(&kms, KeySpec::Rsa2048, KeyUsageType::EncryptDecrypt).await;
    let (hmac, hmac_arn) =
        common::new_key_of(&kms, KeySpec::Hmac256, KeyUsageType::GenerateVerifyMac).await;

    for (key, expected) in [
        (
            &signing,
            format!("{signing_arn} key usage is SIGN_VERIFY which is not valid for GenerateDataKeyPair."),
        ),
        (
            &hmac,
            format!(
                "{hmac_arn} key usage is GENERATE_VERIFY_MAC which is not valid for \
                 GenerateDataKeyPair."
            ),
        ),
        (
            &rsa_enc,
            format!("{rsa_enc_arn} key spec is RSA_2048 which is not valid for GenerateDataKeyPair."),
        ),
    ] {
        let (code, msg) = common::fail(
            kms.generate_data_key_pair()
                .key_id(key)
                .key_pair_spec(DataKeyPairSpec::EccNistP256)
                .send()
                .await,
        );
        assert_eq!((code.as_str(), msg), ("InvalidKeyUsageException", expected));
    }
    let (code, msg) = common::fail(
        kms.generate_data_key_pair_without_plaintext()
            .key_id(&signing)
            .key_pair_spec(DataKeyPairSpec::EccNistP256)
            .send()
            .await,
    );
    assert_eq!(code, "InvalidKeyUsageException");
    assert_eq!(
        msg,
        format!(
            "{signing_arn} key usage is SIGN_VERIFY which is not valid for \
             GenerateDataKeyPairWithoutPlaintext."
        )
    );

    // GenerateDataKey and GenerateDataKeyWithoutPlaintext refuse every key but a symmetric
    // encryption key alike (reference §15, requirement 14).
    for (key, what) in [
        (&rsa_enc, format!("{rsa_enc_arn} key spec is RSA_2048")),
        (
            &hmac,
            format!("{hmac_arn} key usage is GENERATE_VERIFY_MAC"),
        ),
        (&signing, format!("{signing_arn} key usage is SIGN_VERIFY")),
    ] {
        let got = common::fail(
            kms.generate_data_key()
                .key_id(key)
                .number_of_bytes(32)
                .send()
                .await,
        );
        assert_eq!(
            got,
            (
                "InvalidKeyUsageException".to_string(),
                format!("{what} which is not valid for GenerateDataKey.")
            )
        );
        let got = common::fail(
            kms.generate_data_key_without_plaintext()
                .key_id(key)
                .number_of_bytes(32)
                .send()
                .await,
        );
        assert_eq!(
            got,
            (
                "InvalidKeyUsageException".to_string(),
                format!("{what} which is not valid for GenerateDataKeyWithoutPlaintext.")
            )
        );
    }

    // SM2 outside the China Regions; values that are not pair specs.
    let (code, msg) = common::fail(
        kms.generate_data_key_pair()
            .key_id(&sym)
            .key_pair_spec(DataKeyPairSpec::Sm2)
            .send()
            .await,
    );
    assert_eq!(code, "UnsupportedOperationException");
    assert_eq!(msg, "KeyPairSpec SM2 is not supported in this Region");
    let (code, msg) = common::fail(
        kms.generate_data_key_pair()
            .key_id(&sym)
            .key_pair_spec(DataKeyPairSpec::from("ML_DSA_44"))
            .send()
            .await,
    );
    assert_eq!(code, "ValidationException");
    assert!(
        msg.starts_with(
            "1 validation error detected: Value 'ML_DSA_44' at 'keyPairSpec' failed to satisfy \
             constraint: Member must satisfy enum value set: [RSA_2048,"
        ),
        "{msg}"
    );
    let (code, msg) = common::fail(kms.generate_data_key_pair().key_id(&sym).send().await);
    assert_eq!(code, "ValidationException");
    assert!(msg.contains("'keyPairSpec'"), "{msg}");

    // DryRun, both operations.
    let (code, msg) = common::fail(
        kms.generate_data_key_pair()
            .key_id(&sym)
            .key_pair_spec(DataKeyPairSpec::Rsa4096)
            .dry_run(true)
            .send()
            .await,
    );
    assert_eq!(
        (code.as_str(), msg.as_str()),
        ("DryRunOperationException", DRY_RUN_MESSAGE)
    );
    let (code, _) = common::fail(
        kms.generate_data_key_pair_without_plaintext()
            .key_id(&sym)
            .key_pair_spec(DataKeyPairSpec::EccNistP256)
            .dry_run(true)
            .send()
            .await,
    );
    assert_eq!(code, "DryRunOperationException");
    let (code, _) = common::fail(
        kms.generate_data_key_pair_without_plaintext()
            .key_id(&signing)
            .key_pair_spec(DataKeyPairSpec::EccNistP256)
            .dry_run(true)
            .send()
            .await,
    );
    assert_eq!(
        code, "InvalidKeyUsageException",
        "a dry run checks the key first"
    );
}

#[tokio::test]
async fn policy_conditions_on_algorithm_pair_spec_and_context() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "root", "Effect": "Allow",
             "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "no-sha1", "Effect": "Deny", "Principal": "*",
             "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*",
             "Condition": {"StringEquals": {"kms:EncryptionAlgorithm": "RSAES_OAEP_SHA_1"}}},
            {"Sid": "no-big-pairs", "Effect": "Deny", "Principal": "*",
             "Action": "kms:GenerateDataKeyPair*", "Resource": "*",
             "Condition": {"StringEquals": {"kms:DataKeyPairSpec": "RSA_4096"}}},
            {"Sid": "no-blocked", "Effect": "Deny", "Principal": "*",
             "Action": "kms:GenerateDataKeyPair*", "Resource": "*",
             "Condition": {"StringEquals": {"kms:EncryptionContext:purpose": "blocked"}}},
            {"Sid": "ecdh-only", "Effect": "Deny", "Principal": "*",
             "Action": "kms:DeriveSharedSecret", "Resource": "*",
             "Condition": {"StringNotEquals": {"kms:KeyAgreementAlgorithm": "ECDH"}}}
        ]
    })
    .to_string();
    let create = |spec: KeySpec, usage: KeyUsageType| {
        kms.create_key()
            .key_spec(spec)
            .key_usage(usage)
            .policy(policy.clone())
            .send()
    };
    let rsa = create(KeySpec::Rsa2048, KeyUsageType::EncryptDecrypt)
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let sym = create(KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt)
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let ka = create(KeySpec::EccNistP256, KeyUsageType::KeyAgreement)
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;

    let encrypt = |alg: Alg| {
        kms.encrypt()
            .key_id(&rsa)
            .encryption_algorithm(alg)
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
    };
    assert_eq!(
        common::fail(encrypt(Alg::RsaesOaepSha1).await).0,
        "AccessDeniedException"
    );
    encrypt(Alg::RsaesOaepSha256).await.unwrap();

    let pair = |spec: DataKeyPairSpec, purpose: &str| {
        kms.generate_data_key_pair_without_plaintext()
            .key_id(&sym)
            .key_pair_spec(spec)
            .encryption_context("purpose", purpose)
            .send()
    };
    assert_eq!(
        common::fail(pair(DataKeyPairSpec::Rsa4096, "ok").await).0,
        "AccessDeniedException"
    );
    assert_eq!(
        common::fail(pair(DataKeyPairSpec::EccNistP256, "blocked").await).0,
        "AccessDeniedException"
    );
    pair(DataKeyPairSpec::EccNistP256, "ok").await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let peer = peer_key(dir.path(), "P-256", "peer");
    kms.derive_shared_secret()
        .key_id(&ka)
        .key_agreement_algorithm(KeyAgreementAlgorithmSpec::Ecdh)
        .public_key(Blob::new(peer))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn generate_data_key_pair_refuses_custom_key_store_keys() {
    use aws_sdk_kms::types::{
        CustomKeyStoreType, OriginType, XksProxyAuthenticationCredentialType,
        XksProxyConnectivityType,
    };
    use common::xks_test_proxy::{TestProxy, AKID, SECRET};
    let proxy = TestProxy::start().await;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("xks-ca-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &proxy.ca_pem).unwrap();
    let srv = common::TestServer::start_with_config(
        &format!(
            "[xks]\nallowed_proxy_networks = ['127.0.0.1', '::1']\nca_file = '{}'\n",
            ca.display()
        ),
        common::backend_env(),
    )
    .await;
    let kms = srv.client();
    let store = kms
        .create_custom_key_store()
        .custom_key_store_name("xks-pairs")
        .custom_key_store_type(CustomKeyStoreType::ExternalKeyStore)
        .xks_proxy_uri_endpoint(proxy.endpoint())
        .xks_proxy_uri_path("/kms/xks/v1")
        .xks_proxy_connectivity(XksProxyConnectivityType::PublicEndpoint)
        .xks_proxy_authentication_credential(
            XksProxyAuthenticationCredentialType::builder()
                .access_key_id(AKID)
                .raw_secret_access_key(SECRET)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .custom_key_store_id
        .unwrap();
    kms.connect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
    let md = kms
        .create_key()
        .origin(OriginType::ExternalKeyStore)
        .custom_key_store_id(&store)
        .xks_key_id("k1")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    for without_plaintext in [false, true] {
        let r = if without_plaintext {
            common::fail(
                kms.generate_data_key_pair_without_plaintext()
                    .key_id(md.key_id())
                    .key_pair_spec(DataKeyPairSpec::EccNistP256)
                    .send()
                    .await,
            )
        } else {
            common::fail(
                kms.generate_data_key_pair()
                    .key_id(md.key_id())
                    .key_pair_spec(DataKeyPairSpec::EccNistP256)
                    .send()
                    .await,
            )
        };
        assert_eq!(r.0, "UnsupportedOperationException");
        assert_eq!(
            r.1,
            format!(
                "{} is in a custom key store, which does not support this operation.",
                md.arn().unwrap()
            )
        );
    }
}
