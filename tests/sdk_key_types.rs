//! Every key type through the real `aws-sdk-kms` client: CreateKey of every spec x usage and
//! the metadata algorithm lists, GetPublicKey, Sign and Verify for every algorithm and message
//! type (signatures also checked with a second library: `ring` for RSA, P-256, P-384 and
//! Ed25519, the OpenSSL CLI for P-521 and secp256k1), GenerateMac and VerifyMac, the errors of
//! each mismatch, DryRun, rotation refusals, authorization on `kms:SigningAlgorithm`, grants for
//! Sign, and the audit records. Runs on both roots (`KMS_TEST_BACKEND=pkcs11`); the PKCS#11 root
//! refuses ML-DSA keys.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, deprecated)]
mod common;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    GrantOperation, KeySpec, KeyUsageType, MacAlgorithmSpec, MessageType, SigningAlgorithmSpec,
};
use aws_sdk_kms::Client;
use common::TestServer;

const DRY_RUN_MESSAGE: &str = "The request would have succeeded, but the DryRun option is set.";

fn pkcs11() -> bool {
    common::backend() == "pkcs11"
}

/// Every signing spec with its algorithms (reference key-types.md §1.1).
const SIGNING: &[(&str, &[&str])] = &[
    (
        "RSA_2048",
        &[
            "RSASSA_PKCS1_V1_5_SHA_256",
            "RSASSA_PKCS1_V1_5_SHA_384",
            "RSASSA_PKCS1_V1_5_SHA_512",
            "RSASSA_PSS_SHA_256",
            "RSASSA_PSS_SHA_384",
            "RSASSA_PSS_SHA_512",
        ],
    ),
    (
        "RSA_3072",
        &[
            "RSASSA_PKCS1_V1_5_SHA_256",
            "RSASSA_PKCS1_V1_5_SHA_384",
            "RSASSA_PKCS1_V1_5_SHA_512",
            "RSASSA_PSS_SHA_256",
            "RSASSA_PSS_SHA_384",
            "RSASSA_PSS_SHA_512",
        ],
    ),
    (
        "RSA_4096",
        &[
            "RSASSA_PKCS1_V1_5_SHA_256",
            "RSASSA_PKCS1_V1_5_SHA_384",
            "RSASSA_PKCS1_V1_5_SHA_512",
            "RSASSA_PSS_SHA_256",
            "RSASSA_PSS_SHA_384",
            "RSASSA_PSS_SHA_512",
        ],
    ),
    ("ECC_NIST_P256", &["ECDSA_SHA_256"]),
    ("ECC_NIST_P384", &["ECDSA_SHA_384"]),
    ("ECC_NIST_P521", &["ECDSA_SHA_512"]),
    ("ECC_SECG_P256K1", &["ECDSA_SHA_256"]),
    (
        "ECC_NIST_EDWARDS25519",
        &["ED25519_SHA_512", "ED25519_PH_SHA_512"],
    ),
    ("ML_DSA_44", &["ML_DSA_SHAKE_256"]),
    ("ML_DSA_65", &["ML_DSA_SHAKE_256"]),
    ("ML_DSA_87", &["ML_DSA_SHAKE_256"]),
];

const HMAC: &[(&str, &str, usize)] = &[
    ("HMAC_224", "HMAC_SHA_224", 28),
    ("HMAC_256", "HMAC_SHA_256", 32),
    ("HMAC_384", "HMAC_SHA_384", 48),
    ("HMAC_512", "HMAC_SHA_512", 64),
];

/// The usages CreateKey accepts per spec and the one algorithm list metadata then carries:
/// (spec, usage, list name, list).
fn expected_lists(spec: &str, usage: &str) -> Option<(&'static str, Vec<&'static str>)> {
    let rsa = spec.starts_with("RSA_");
    let nist = matches!(spec, "ECC_NIST_P256" | "ECC_NIST_P384" | "ECC_NIST_P521");
    match usage {
        "ENCRYPT_DECRYPT" if spec == "SYMMETRIC_DEFAULT" => {
            Some(("encryption", vec!["SYMMETRIC_DEFAULT"]))
        }
        "ENCRYPT_DECRYPT" if rsa => {
            Some(("encryption", vec!["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]))
        }
        "SIGN_VERIFY" => SIGNING
            .iter()
            .find(|(s, _)| *s == spec)
            .map(|(_, algs)| ("signing", algs.to_vec())),
        "KEY_AGREEMENT" if nist => Some(("key_agreement", vec!["ECDH"])),
        "GENERATE_VERIFY_MAC" => HMAC
            .iter()
            .find(|(s, _, _)| *s == spec)
            .map(|(_, a, _)| ("mac", vec![*a])),
        _ => None,
    }
}

fn is_ml_dsa(spec: &str) -> bool {
    spec.starts_with("ML_DSA_")
}

/// Specs the PKCS#11 root refuses with UnsupportedOperationException: ML-DSA (no mechanism in
/// SoftHSM 2.6.1) and Ed25519 (SoftHSM cannot wrap EdDSA keys, so they cannot be stored under
/// the domain key).
fn refused_here(spec: &str) -> bool {
    pkcs11() && (is_ml_dsa(spec) || spec == "ECC_NIST_EDWARDS25519")
}

/// Creates a key; panics on failure.
async fn create(kms: &Client, spec: &str, usage: &str) -> (String, String) {
    let md = kms
        .create_key()
        .key_spec(KeySpec::from(spec))
        .key_usage(KeyUsageType::from(usage))
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateKey {spec} {usage}: {e:?}"))
        .key_metadata
        .unwrap();
    (md.key_id().to_string(), md.arn().unwrap().to_string())
}

fn names<T: AsRef<str>>(items: &[T]) -> Vec<&str> {
    items.iter().map(|i| i.as_ref()).collect()
}

fn check_metadata(md: &aws_sdk_kms::types::KeyMetadata, spec: &str, usage: &str) {
    let (list, algs) = expected_lists(spec, usage).unwrap();
    assert_eq!(md.key_spec().map(|s| s.as_str()), Some(spec));
    assert_eq!(
        md.customer_master_key_spec().map(|s| s.as_str()),
        Some(spec)
    );
    assert_eq!(md.key_usage().map(|s| s.as_str()), Some(usage));
    let present = [
        (
            "encryption",
            md.encryption_algorithms.as_ref().map(|v| names(v)),
        ),
        ("signing", md.signing_algorithms.as_ref().map(|v| names(v))),
        ("mac", md.mac_algorithms.as_ref().map(|v| names(v))),
        (
            "key_agreement",
            md.key_agreement_algorithms.as_ref().map(|v| names(v)),
        ),
    ];
    for (name, got) in present {
        if name == list {
            assert_eq!(got, Some(algs.clone()), "{spec} {usage} {name}");
        } else {
            assert_eq!(got, None, "{spec} {usage}: {name} must be absent");
        }
    }
}

const SPECS: &[&str] = &[
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "ECC_NIST_P256",
    "ECC_NIST_P384",
    "ECC_NIST_P521",
    "ECC_SECG_P256K1",
    "ECC_NIST_EDWARDS25519",
    "ML_DSA_44",
    "ML_DSA_65",
    "ML_DSA_87",
    "HMAC_224",
    "HMAC_256",
    "HMAC_384",
    "HMAC_512",
    "SYMMETRIC_DEFAULT",
];
const USAGES: &[&str] = &[
    "ENCRYPT_DECRYPT",
    "SIGN_VERIFY",
    "GENERATE_VERIFY_MAC",
    "KEY_AGREEMENT",
];

#[tokio::test]
async fn create_key_every_spec_and_usage_with_metadata_lists() {
    let srv = TestServer::start().await;
    let kms = srv.client();
    for spec in SPECS {
        for usage in USAGES {
            let r = kms
                .create_key()
                .key_spec(KeySpec::from(*spec))
                .key_usage(KeyUsageType::from(*usage))
                .send()
                .await;
            if expected_lists(spec, usage).is_none() {
                assert_eq!(
                    common::fail(r),
                    (
                        "ValidationException".into(),
                        format!("KeyUsage {usage} is not compatible with KeySpec {spec}")
                    )
                );
                continue;
            }
            if refused_here(spec) {
                let (code, message) = common::fail(r);
                assert_eq!(code, "UnsupportedOperationException", "{spec}");
                assert!(message.contains(spec), "{message}");
                continue;
            }
            let md = r
                .unwrap_or_else(|e| panic!("{spec} {usage}: {e:?}"))
                .key_metadata
                .unwrap();
            check_metadata(&md, spec, usage);
            let described = kms
                .describe_key()
                .key_id(md.key_id())
                .send()
                .await
                .unwrap()
                .key_metadata
                .unwrap();
            check_metadata(&described, spec, usage);
            assert_eq!(described.origin().map(|o| o.as_str()), Some("AWS_KMS"));
        }
    }
}

#[tokio::test]
async fn create_key_rules() {
    let srv = TestServer::start().await;
    let kms = srv.client();
    // KeyUsage is mandatory for every spec but SYMMETRIC_DEFAULT.
    for spec in ["RSA_2048", "ECC_NIST_P256", "HMAC_256", "ML_DSA_44"] {
        assert_eq!(
            common::fail(kms.create_key().key_spec(KeySpec::from(spec)).send().await),
            (
                "ValidationException".into(),
                "You must specify a KeyUsage value for all KMS keys except for symmetric \
                 encryption keys."
                    .into()
            ),
            "{spec}"
        );
    }
    // SM2 exists only in the China Regions.
    assert_eq!(
        common::fail(
            kms.create_key()
                .key_spec(KeySpec::Sm2)
                .key_usage(KeyUsageType::SignVerify)
                .send()
                .await
        ),
        (
            "UnsupportedOperationException".into(),
            "KeySpec SM2 is not supported in this Region".into()
        )
    );
    // The deprecated CustomerMasterKeySpec alone: both members come back.
    let md = kms
        .create_key()
        .customer_master_key_spec(aws_sdk_kms::types::CustomerMasterKeySpec::EccNistP256)
        .key_usage(KeyUsageType::SignVerify)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    check_metadata(&md, "ECC_NIST_P256", "SIGN_VERIFY");
    // Custom key stores (CloudHSM and external) hold symmetric encryption keys only.
    for (spec, usage) in [
        ("RSA_2048", "SIGN_VERIFY"),
        ("HMAC_256", "GENERATE_VERIFY_MAC"),
    ] {
        let cloudhsm = kms
            .create_key()
            .key_spec(KeySpec::from(spec))
            .key_usage(KeyUsageType::from(usage))
            .origin(aws_sdk_kms::types::OriginType::AwsCloudhsm)
            .custom_key_store_id("cks-1234567890abcdef0")
            .send()
            .await;
        let xks = kms
            .create_key()
            .key_spec(KeySpec::from(spec))
            .key_usage(KeyUsageType::from(usage))
            .origin(aws_sdk_kms::types::OriginType::ExternalKeyStore)
            .custom_key_store_id("cks-1234567890abcdef0")
            .xks_key_id("external-key-1")
            .send()
            .await;
        for (code, message) in [common::fail(cloudhsm), common::fail(xks)] {
            assert_eq!(code, "UnsupportedOperationException", "{spec}");
            assert!(message.contains("symmetric encryption keys"), "{message}");
        }
    }
    // Origin EXTERNAL: ML-DSA key material cannot be imported (AWS); tests/sdk_import.rs
    // covers the specs that can.
    let (code, _) = common::fail(
        kms.create_key()
            .key_spec(KeySpec::MlDsa65)
            .key_usage(KeyUsageType::SignVerify)
            .origin(aws_sdk_kms::types::OriginType::External)
            .send()
            .await,
    );
    assert_eq!(code, "UnsupportedOperationException");
}

/// The hash of `alg` (RAW messages are hashed with it; DIGEST messages are this long).
fn digest(alg: &str, message: &[u8]) -> Option<Vec<u8>> {
    use ring::digest::{digest, SHA256, SHA384, SHA512};
    let d = if alg.ends_with("SHA_256") {
        &SHA256
    } else if alg.ends_with("SHA_384") {
        &SHA384
    } else if alg == "ED25519_PH_SHA_512" || alg.ends_with("SHA_512") && alg != "ED25519_SHA_512" {
        &SHA512
    } else {
        return None;
    };
    Some(digest(d, message).as_ref().to_vec())
}

/// The message types an algorithm takes (EXTERNAL_MU is tested on its own).
fn message_types(alg: &str) -> &'static [&'static str] {
    match alg {
        "ED25519_SHA_512" | "ML_DSA_SHAKE_256" => &["RAW"],
        "ED25519_PH_SHA_512" => &["DIGEST"],
        _ => &["RAW", "DIGEST"],
    }
}

/// The SPKI's algorithm OID (dotted) and its subjectPublicKey bytes.
fn parse_spki(der: &[u8]) -> (String, Vec<u8>) {
    use x509_parser::prelude::FromDer;
    let (rest, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(der).unwrap();
    assert!(rest.is_empty(), "trailing bytes after the SPKI");
    (
        spki.algorithm.algorithm.to_id_string(),
        spki.subject_public_key.data.to_vec(),
    )
}

fn expected_oid(spec: &str) -> &'static str {
    match spec {
        s if s.starts_with("RSA_") => "1.2.840.113549.1.1.1",
        s if s.starts_with("ECC_NIST_P") || s == "ECC_SECG_P256K1" => "1.2.840.10045.2.1",
        "ECC_NIST_EDWARDS25519" => "1.3.101.112",
        "ML_DSA_44" => "2.16.840.1.101.3.4.3.17",
        "ML_DSA_65" => "2.16.840.1.101.3.4.3.18",
        "ML_DSA_87" => "2.16.840.1.101.3.4.3.19",
        _ => panic!("no OID for {spec}"),
    }
}

/// Checks a signature on `message` with a library other than the server's: `Some(valid)`, or
/// `None` where no second library covers the algorithm (Ed25519ph, ML-DSA).
fn verify_elsewhere(
    spec: &str,
    alg: &str,
    spki: &[u8],
    message: &[u8],
    sig: &[u8],
) -> Option<bool> {
    use ring::signature as s;
    let (_, key) = parse_spki(spki);
    let ring_alg: &dyn s::VerificationAlgorithm = match (spec, alg) {
        (_, "RSASSA_PKCS1_V1_5_SHA_256") => &s::RSA_PKCS1_2048_8192_SHA256,
        (_, "RSASSA_PKCS1_V1_5_SHA_384") => &s::RSA_PKCS1_2048_8192_SHA384,
        (_, "RSASSA_PKCS1_V1_5_SHA_512") => &s::RSA_PKCS1_2048_8192_SHA512,
        (_, "RSASSA_PSS_SHA_256") => &s::RSA_PSS_2048_8192_SHA256,
        (_, "RSASSA_PSS_SHA_384") => &s::RSA_PSS_2048_8192_SHA384,
        (_, "RSASSA_PSS_SHA_512") => &s::RSA_PSS_2048_8192_SHA512,
        ("ECC_NIST_P256", _) => &s::ECDSA_P256_SHA256_ASN1,
        ("ECC_NIST_P384", _) => &s::ECDSA_P384_SHA384_ASN1,
        (_, "ED25519_SHA_512") => &s::ED25519,
        ("ECC_NIST_P521", _) => return Some(openssl_verify(spki, "-sha512", message, sig)),
        ("ECC_SECG_P256K1", _) => return Some(openssl_verify(spki, "-sha256", message, sig)),
        _ => return None,
    };
    Some(
        s::UnparsedPublicKey::new(ring_alg, &key)
            .verify(message, sig)
            .is_ok(),
    )
}

/// `openssl dgst -verify` with the DER public key.
fn openssl_verify(spki: &[u8], hash: &str, message: &[u8], sig: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let (der, pem, msg, sg) = (
        dir.path().join("pub.der"),
        dir.path().join("pub.pem"),
        dir.path().join("msg.bin"),
        dir.path().join("sig.bin"),
    );
    std::fs::write(&der, spki).unwrap();
    std::fs::write(&msg, message).unwrap();
    std::fs::write(&sg, sig).unwrap();
    let ok = std::process::Command::new("openssl")
        .args(["pkey", "-pubin", "-inform", "DER", "-in"])
        .arg(&der)
        .arg("-out")
        .arg(&pem)
        .status()
        .expect("openssl must be installed")
        .success();
    assert!(ok, "openssl cannot read the public key");
    std::process::Command::new("openssl")
        .args(["dgst", hash, "-verify"])
        .arg(&pem)
        .arg("-signature")
        .arg(&sg)
        .arg(&msg)
        .output()
        .unwrap()
        .status
        .success()
}

async fn sign(kms: &Client, key: &str, alg: &str, mt: &str, message: &[u8]) -> Vec<u8> {
    kms.sign()
        .key_id(key)
        .message(Blob::new(message.to_vec()))
        .message_type(MessageType::from(mt))
        .signing_algorithm(SigningAlgorithmSpec::from(alg))
        .send()
        .await
        .unwrap_or_else(|e| panic!("Sign {alg} {mt}: {e:?}"))
        .signature
        .unwrap()
        .into_inner()
}

async fn verify(
    kms: &Client,
    key: &str,
    alg: &str,
    mt: &str,
    message: &[u8],
    sig: &[u8],
) -> Result<bool, (String, String)> {
    kms.verify()
        .key_id(key)
        .message(Blob::new(message.to_vec()))
        .message_type(MessageType::from(mt))
        .signing_algorithm(SigningAlgorithmSpec::from(alg))
        .signature(Blob::new(sig.to_vec()))
        .send()
        .await
        .map(|o| o.signature_valid)
        .map_err(|e| (common::code(&e), common::message(&e)))
}

#[tokio::test]
async fn sign_and_verify_every_spec_algorithm_and_message_type() {
    let srv = TestServer::start().await;
    let kms = srv.client();
    let message = b"every key type, signed in the key store".to_vec();
    for (spec, algs) in SIGNING {
        if refused_here(spec) {
            continue; // refused at CreateKey (asserted above)
        }
        let (id, arn) = create(&kms, spec, "SIGN_VERIFY").await;
        let pk = kms.get_public_key().key_id(&id).send().await.unwrap();
        assert_eq!(pk.key_id(), Some(arn.as_str()));
        assert_eq!(pk.key_spec().map(|s| s.as_str()), Some(*spec));
        assert_eq!(
            pk.customer_master_key_spec().map(|s| s.as_str()),
            Some(*spec)
        );
        assert_eq!(pk.key_usage(), Some(&KeyUsageType::SignVerify));
        assert_eq!(
            pk.signing_algorithms.as_ref().map(|v| names(v)),
            Some(algs.to_vec())
        );
        assert!(pk.encryption_algorithms.is_none() && pk.key_agreement_algorithms.is_none());
        let spki = pk.public_key.unwrap().into_inner();
        let (oid, _) = parse_spki(&spki);
        assert_eq!(oid, expected_oid(spec), "{spec}");

        for alg in *algs {
            if *alg == "ED25519_PH_SHA_512" {
                // No library we carry signs or verifies Ed25519ph over a given digest (and
                // SoftHSM ignores CK_EDDSA_PARAMS): listed in the metadata as AWS does, but
                // refused with UnsupportedOperationException.
                let d = digest(alg, &message).unwrap();
                let r = kms
                    .sign()
                    .key_id(&id)
                    .message(Blob::new(d.clone()))
                    .message_type(MessageType::Digest)
                    .signing_algorithm(SigningAlgorithmSpec::from(*alg))
                    .send()
                    .await;
                assert_eq!(common::fail(r).0, "UnsupportedOperationException");
                let r = verify(&kms, &id, alg, "DIGEST", &d, &[0; 64]).await;
                assert_eq!(r.unwrap_err().0, "UnsupportedOperationException");
                continue;
            }
            for mt in message_types(alg) {
                let input = if *mt == "DIGEST" {
                    digest(alg, &message).unwrap()
                } else {
                    message.clone()
                };
                let sig = sign(&kms, &id, alg, mt, &input).await;
                if let Some(k) = [("RSA_2048", 256), ("RSA_3072", 384), ("RSA_4096", 512)]
                    .iter()
                    .find(|(s, _)| s == spec)
                    .map(|(_, k)| *k)
                {
                    assert_eq!(sig.len(), k, "{spec} {alg}");
                }
                if spec.starts_with("ECC_") && !spec.ends_with("25519") {
                    assert_eq!(sig[0], 0x30, "ECDSA signatures are DER");
                }
                if *spec == "ECC_NIST_EDWARDS25519" {
                    assert_eq!(sig.len(), 64);
                }
                assert_eq!(
                    verify(&kms, &id, alg, mt, &input, &sig).await,
                    Ok(true),
                    "{spec} {alg} {mt}"
                );
                // Verify may use the other message type.
                if message_types(alg).len() == 2 {
                    let (other_mt, other_input) = if *mt == "RAW" {
                        ("DIGEST", digest(alg, &message).unwrap())
                    } else {
                        ("RAW", message.clone())
                    };
                    assert_eq!(
                        verify(&kms, &id, alg, other_mt, &other_input, &sig).await,
                        Ok(true),
                        "{spec} {alg} signed {mt}, verified {other_mt}"
                    );
                }
                // A second library, on the original message.
                if let Some(valid) = verify_elsewhere(spec, alg, &spki, &message, &sig) {
                    assert!(valid, "{spec} {alg} {mt}: the second library rejects it");
                }
                // Tampered: KMSInvalidSignatureException without a message.
                let mut bad = sig.clone();
                let last = bad.len() - 1;
                bad[last] ^= 0x01;
                assert_eq!(
                    verify(&kms, &id, alg, mt, &input, &bad).await,
                    Err(("KMSInvalidSignatureException".into(), String::new())),
                    "{spec} {alg} {mt}"
                );
                // Another message.
                let mut other = input.clone();
                other[0] ^= 0x80;
                assert_eq!(
                    verify(&kms, &id, alg, mt, &other, &sig)
                        .await
                        .unwrap_err()
                        .0,
                    "KMSInvalidSignatureException"
                );
            }
        }
    }
}

#[tokio::test]
async fn ml_dsa_external_mu_and_signature_sizes() {
    let srv = TestServer::start().await;
    let kms = srv.client();
    for (spec, sig_len, spki_len) in [
        ("ML_DSA_44", 2420, 1334),
        ("ML_DSA_65", 3309, 1974),
        ("ML_DSA_87", 4627, 2614),
    ] {
        if pkcs11() {
            let (code, _) = common::fail(
                kms.create_key()
                    .key_spec(KeySpec::from(spec))
                    .key_usage(KeyUsageType::SignVerify)
                    .send()
                    .await,
            );
            assert_eq!(code, "UnsupportedOperationException");
            continue;
        }
        let (id, _) = create(&kms, spec, "SIGN_VERIFY").await;
        let spki = kms
            .get_public_key()
            .key_id(&id)
            .send()
            .await
            .unwrap()
            .public_key
            .unwrap()
            .into_inner();
        assert_eq!(spki.len(), spki_len, "{spec}");
        let raw = sign(&kms, &id, "ML_DSA_SHAKE_256", "RAW", b"post-quantum").await;
        assert_eq!(raw.len(), sig_len, "{spec}");
        // RAW and EXTERNAL_MU are interchangeable: μ of the message verifies the RAW signature,
        // and (signing is deterministic here) signing μ gives the same signature.
        let kspec = kms::model::KeySpec::parse(spec).unwrap();
        let mu_of = kms::crypto::external_mu(kspec, &spki, b"post-quantum").unwrap();
        assert_eq!(
            verify(&kms, &id, "ML_DSA_SHAKE_256", "EXTERNAL_MU", &mu_of, &raw).await,
            Ok(true)
        );
        let from_mu = sign(&kms, &id, "ML_DSA_SHAKE_256", "EXTERNAL_MU", &mu_of).await;
        assert_eq!(from_mu, raw, "{spec}");
        assert_eq!(
            verify(
                &kms,
                &id,
                "ML_DSA_SHAKE_256",
                "RAW",
                b"post-quantum",
                &from_mu
            )
            .await,
            Ok(true)
        );
        let mu = [7u8; 64];
        let sig = sign(&kms, &id, "ML_DSA_SHAKE_256", "EXTERNAL_MU", &mu).await;
        assert_eq!(sig.len(), sig_len);
        assert_eq!(
            verify(&kms, &id, "ML_DSA_SHAKE_256", "EXTERNAL_MU", &mu, &sig).await,
            Ok(true)
        );
        assert_eq!(
            verify(
                &kms,
                &id,
                "ML_DSA_SHAKE_256",
                "EXTERNAL_MU",
                &[8u8; 64],
                &sig
            )
            .await
            .unwrap_err()
            .0,
            "KMSInvalidSignatureException"
        );
        // μ must be exactly 64 bytes; ML-DSA takes no DIGEST.
        let r = kms
            .sign()
            .key_id(&id)
            .message(Blob::new(vec![7u8; 63]))
            .message_type(MessageType::ExternalMu)
            .signing_algorithm(SigningAlgorithmSpec::from("ML_DSA_SHAKE_256"))
            .send()
            .await;
        assert_eq!(
            common::fail(r),
            (
                "ValidationException".into(),
                "External Mu is invalid length for algorithm ML_DSA_SHAKE_256.".into()
            )
        );
        let r = kms
            .sign()
            .key_id(&id)
            .message(Blob::new(vec![7u8; 32]))
            .message_type(MessageType::Digest)
            .signing_algorithm(SigningAlgorithmSpec::from("ML_DSA_SHAKE_256"))
            .send()
            .await;
        assert_eq!(
            common::fail(r),
            (
                "ValidationException".into(),
                format!("Message type DIGEST is incompatible with key spec {spec}.")
            )
        );
    }
}

#[tokio::test]
async fn sign_and_verify_errors() {
    let srv = TestServer::start().await;
    let kms = srv.client();
    let (p256, p256_arn) = create(&kms, "ECC_NIST_P256", "SIGN_VERIFY").await;
    let (rsa, _) = create(&kms, "RSA_2048", "SIGN_VERIFY").await;
    let sign_req = |key: &str, alg: &str, mt: MessageType, msg: Vec<u8>| {
        kms.sign()
            .key_id(key)
            .message(Blob::new(msg))
            .message_type(mt)
            .signing_algorithm(SigningAlgorithmSpec::from(alg))
    };

    // Digest of the wrong length: never truncated or padded.
    for len in [31usize, 33, 48] {
        let r = sign_req(
            &rsa,
            "RSASSA_PSS_SHA_256",
            MessageType::Digest,
            vec![1; len],
        )
        .send()
        .await;
        assert_eq!(
            common::fail(r),
            (
                "ValidationException".into(),
                "Digest is invalid length for algorithm RSASSA_PSS_SHA_256.".into()
            )
        );
    }
    let r = kms
        .verify()
        .key_id(&p256)
        .message(Blob::new(vec![1; 31]))
        .message_type(MessageType::Digest)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .signature(Blob::new(vec![0x30, 0x00]))
        .send()
        .await;
    assert_eq!(
        common::fail(r),
        (
            "ValidationException".into(),
            "Digest is invalid length for algorithm ECDSA_SHA_256.".into()
        )
    );
    // An algorithm of another spec.
    let r = sign_req(&p256, "ECDSA_SHA_384", MessageType::Raw, b"m".to_vec())
        .send()
        .await;
    assert_eq!(
        common::fail(r),
        (
            "InvalidKeyUsageException".into(),
            "Algorithm ECDSA_SHA_384 is incompatible with key spec ECC_NIST_P256.".into()
        )
    );
    let r = sign_req(&rsa, "ECDSA_SHA_256", MessageType::Raw, b"m".to_vec())
        .send()
        .await;
    assert_eq!(
        common::fail(r),
        (
            "InvalidKeyUsageException".into(),
            "Algorithm ECDSA_SHA_256 is incompatible with key spec RSA_2048.".into()
        )
    );
    // EXTERNAL_MU is for ML-DSA only.
    let r = sign_req(&p256, "ECDSA_SHA_256", MessageType::ExternalMu, vec![0; 64])
        .send()
        .await;
    assert_eq!(
        common::fail(r),
        (
            "ValidationException".into(),
            "Message type EXTERNAL_MU is incompatible with key spec ECC_NIST_P256.".into()
        )
    );
    // Message size: 4096 bytes is the most, and an empty message is refused.
    let r = sign_req(&p256, "ECDSA_SHA_256", MessageType::Raw, vec![0; 4097])
        .send()
        .await;
    assert_eq!(
        common::fail(r),
        (
            "ValidationException".into(),
            "1 validation error detected: Value at 'message' failed to satisfy constraint: \
             Member must have length less than or equal to 4096"
                .into()
        )
    );
    let sig = sign(&kms, &p256, "ECDSA_SHA_256", "RAW", &[0x5a; 4096]).await;
    assert_eq!(
        verify(&kms, &p256, "ECDSA_SHA_256", "RAW", &[0x5a; 4096], &sig).await,
        Ok(true)
    );
    // Required members.
    let r = kms
        .sign()
        .key_id(&p256)
        .message(Blob::new(b"m".to_vec()))
        .send()
        .await;
    assert_eq!(
        common::fail(r),
        (
            "ValidationException".into(),
            "1 validation error detected: Value null at 'signingAlgorithm' failed to satisfy \
             constraint: Member must not be null"
                .into()
        )
    );
    let r = kms
        .sign()
        .key_id(&p256)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await;
    assert_eq!(
        common::fail(r),
        (
            "ValidationException".into(),
            "1 validation error detected: Value null at 'message' failed to satisfy \
             constraint: Member must not be null"
                .into()
        )
    );
    // A key of another usage.
    let (sym, sym_arn) = {
        let md = kms.create_key().send().await.unwrap().key_metadata.unwrap();
        (md.key_id().to_string(), md.arn().unwrap().to_string())
    };
    let r = sign_req(&sym, "ECDSA_SHA_256", MessageType::Raw, b"m".to_vec())
        .send()
        .await;
    assert_eq!(
        common::fail(r),
        (
            "InvalidKeyUsageException".into(),
            format!("{sym_arn} key usage is ENCRYPT_DECRYPT which is not valid for Sign.")
        )
    );
    let (rsa_enc, rsa_enc_arn) = create(&kms, "RSA_2048", "ENCRYPT_DECRYPT").await;
    let r = kms
        .verify()
        .key_id(&rsa_enc)
        .message(Blob::new(b"m".to_vec()))
        .signing_algorithm(SigningAlgorithmSpec::RsassaPssSha256)
        .signature(Blob::new(vec![1; 256]))
        .send()
        .await;
    assert_eq!(
        common::fail(r),
        (
            "InvalidKeyUsageException".into(),
            format!("{rsa_enc_arn} key usage is ENCRYPT_DECRYPT which is not valid for Verify.")
        )
    );
    // Symmetric operations refuse signing keys.
    let r = kms
        .encrypt()
        .key_id(&p256)
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await;
    assert_eq!(
        common::fail(r),
        (
            "InvalidKeyUsageException".into(),
            format!("{p256_arn} key usage is SIGN_VERIFY which is not valid for Encrypt.")
        )
    );
    let r = kms
        .generate_data_key()
        .key_id(&p256)
        .number_of_bytes(32)
        .send()
        .await;
    assert_eq!(
        common::fail(r),
        (
            "InvalidKeyUsageException".into(),
            format!("{p256_arn} key usage is SIGN_VERIFY which is not valid for GenerateDataKey.")
        )
    );
    // Malformed signatures are invalid signatures, not errors of another kind.
    assert_eq!(
        verify(&kms, &p256, "ECDSA_SHA_256", "RAW", b"m", &[0xff; 8]).await,
        Err(("KMSInvalidSignatureException".into(), String::new()))
    );
    // DryRun validates fully, then stops.
    let r = sign_req(&p256, "ECDSA_SHA_256", MessageType::Raw, b"m".to_vec())
        .dry_run(true)
        .send()
        .await;
    assert_eq!(
        common::fail(r),
        ("DryRunOperationException".into(), DRY_RUN_MESSAGE.into())
    );
    let r = sign_req(&p256, "ECDSA_SHA_384", MessageType::Raw, b"m".to_vec())
        .dry_run(true)
        .send()
        .await;
    assert_eq!(common::fail(r).0, "InvalidKeyUsageException");
    let r = kms
        .verify()
        .key_id(&p256)
        .message(Blob::new(b"m".to_vec()))
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .signature(Blob::new(vec![0xff; 8]))
        .dry_run(true)
        .send()
        .await;
    assert_eq!(
        common::fail(r),
        ("DryRunOperationException".into(), DRY_RUN_MESSAGE.into())
    );
    // Disabled keys neither sign nor verify.
    kms.disable_key().key_id(&p256).send().await.unwrap();
    let r = sign_req(&p256, "ECDSA_SHA_256", MessageType::Raw, b"m".to_vec())
        .send()
        .await;
    assert_eq!(
        common::fail(r),
        (
            "DisabledException".into(),
            format!("{p256_arn} is disabled.")
        )
    );
}

#[tokio::test]
async fn ed25519_message_type_rules() {
    if refused_here("ECC_NIST_EDWARDS25519") {
        return; // refused at CreateKey (asserted in the spec x usage test)
    }
    let srv = TestServer::start().await;
    let kms = srv.client();
    let (id, _) = create(&kms, "ECC_NIST_EDWARDS25519", "SIGN_VERIFY").await;
    for (alg, mt, msg) in [
        ("ED25519_SHA_512", MessageType::Digest, vec![0u8; 64]),
        ("ED25519_PH_SHA_512", MessageType::Raw, b"m".to_vec()),
    ] {
        let r = kms
            .sign()
            .key_id(&id)
            .message(Blob::new(msg))
            .message_type(mt.clone())
            .signing_algorithm(SigningAlgorithmSpec::from(alg))
            .send()
            .await;
        assert_eq!(
            common::fail(r),
            (
                "ValidationException".into(),
                format!("Message type {mt} is incompatible with algorithm {alg}.")
            )
        );
    }
    let r = kms
        .sign()
        .key_id(&id)
        .message(Blob::new(vec![0u8; 32]))
        .message_type(MessageType::Digest)
        .signing_algorithm(SigningAlgorithmSpec::from("ED25519_PH_SHA_512"))
        .send()
        .await;
    assert_eq!(
        common::fail(r),
        (
            "ValidationException".into(),
            "Digest is invalid length for algorithm ED25519_PH_SHA_512.".into()
        )
    );
}

#[tokio::test]
async fn get_public_key_refuses_symmetric_and_hmac_keys() {
    let srv = TestServer::start().await;
    let kms = srv.client();
    let sym = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let (hmac, _) = create(&kms, "HMAC_256", "GENERATE_VERIFY_MAC").await;
    for key in [sym.key_id(), hmac.as_str()] {
        let (code, _) = common::fail(kms.get_public_key().key_id(key).send().await);
        assert_eq!(code, "UnsupportedOperationException");
    }
    // RSA encryption and ECDH keys have public keys too, with their own list.
    let (rsa, _) = create(&kms, "RSA_3072", "ENCRYPT_DECRYPT").await;
    let pk = kms.get_public_key().key_id(&rsa).send().await.unwrap();
    assert_eq!(pk.public_key.unwrap().into_inner().len(), 422);
    assert_eq!(
        pk.encryption_algorithms.as_ref().map(|v| names(v)),
        Some(vec!["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"])
    );
    assert!(pk.signing_algorithms.is_none());
    let (ka, _) = create(&kms, "ECC_NIST_P384", "KEY_AGREEMENT").await;
    let pk = kms.get_public_key().key_id(&ka).send().await.unwrap();
    let spki = pk.public_key.unwrap().into_inner();
    assert_eq!(spki.len(), 120);
    assert_eq!(parse_spki(&spki).1.len(), 97);
    assert_eq!(
        pk.key_agreement_algorithms.as_ref().map(|v| names(v)),
        Some(vec!["ECDH"])
    );
}

async fn mac(kms: &Client, key: &str, alg: &str, message: &[u8]) -> Vec<u8> {
    kms.generate_mac()
        .key_id(key)
        .message(Blob::new(message.to_vec()))
        .mac_algorithm(MacAlgorithmSpec::from(alg))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GenerateMac {alg}: {e:?}"))
        .mac
        .unwrap()
        .into_inner()
}

async fn verify_mac(
    kms: &Client,
    key: &str,
    alg: &str,
    message: &[u8],
    tag: &[u8],
) -> Result<bool, (String, String)> {
    kms.verify_mac()
        .key_id(key)
        .message(Blob::new(message.to_vec()))
        .mac_algorithm(MacAlgorithmSpec::from(alg))
        .mac(Blob::new(tag.to_vec()))
        .send()
        .await
        .map(|o| o.mac_valid)
        .map_err(|e| (common::code(&e), common::message(&e)))
}

#[tokio::test]
async fn generate_and_verify_mac_every_hmac_spec() {
    let srv = TestServer::start().await;
    let kms = srv.client();
    let message = b"what do ya want for nothing?";
    for (spec, alg, len) in HMAC {
        let (id, arn) = create(&kms, spec, "GENERATE_VERIFY_MAC").await;
        let out = kms
            .generate_mac()
            .key_id(&id)
            .message(Blob::new(message.to_vec()))
            .mac_algorithm(MacAlgorithmSpec::from(*alg))
            .send()
            .await
            .unwrap();
        assert_eq!(out.key_id(), Some(arn.as_str()));
        assert_eq!(out.mac_algorithm().map(|a| a.as_str()), Some(*alg));
        let tag = out.mac.unwrap().into_inner();
        assert_eq!(tag.len(), *len, "{spec}");
        // Deterministic (RFC 2104): the same message gives the same MAC.
        assert_eq!(mac(&kms, &id, alg, message).await, tag);
        assert_ne!(mac(&kms, &id, alg, b"another message").await, tag);
        assert_eq!(verify_mac(&kms, &id, alg, message, &tag).await, Ok(true));
        // One flipped bit, a truncated tag, another message: KMSInvalidMacException.
        for i in [0, tag.len() - 1] {
            let mut bad = tag.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                verify_mac(&kms, &id, alg, message, &bad).await,
                Err(("KMSInvalidMacException".into(), String::new()))
            );
        }
        assert_eq!(
            verify_mac(&kms, &id, alg, message, &tag[..tag.len() - 1])
                .await
                .unwrap_err()
                .0,
            "KMSInvalidMacException"
        );
        assert_eq!(
            verify_mac(&kms, &id, alg, b"what do ya want for nothing!", &tag)
                .await
                .unwrap_err()
                .0,
            "KMSInvalidMacException"
        );
        // Keys are separate: another key of the same spec gives another MAC.
        let (other, _) = create(&kms, spec, "GENERATE_VERIFY_MAC").await;
        assert_ne!(mac(&kms, &other, alg, message).await, tag);
    }
}

#[tokio::test]
async fn mac_errors() {
    let srv = TestServer::start().await;
    let kms = srv.client();
    let (id, arn) = create(&kms, "HMAC_224", "GENERATE_VERIFY_MAC").await;
    let gen = |alg: &str, msg: Vec<u8>| {
        kms.generate_mac()
            .key_id(&id)
            .message(Blob::new(msg))
            .mac_algorithm(MacAlgorithmSpec::from(alg))
    };
    assert_eq!(
        common::fail(gen("HMAC_SHA_256", b"m".to_vec()).send().await),
        (
            "InvalidKeyUsageException".into(),
            "Algorithm HMAC_SHA_256 is incompatible with key spec HMAC_224.".into()
        )
    );
    assert_eq!(
        common::fail(gen("HMAC_SHA_224", vec![0; 4097]).send().await),
        (
            "ValidationException".into(),
            "1 validation error detected: Value at 'message' failed to satisfy constraint: \
             Member must have length less than or equal to 4096"
                .into()
        )
    );
    assert_eq!(mac(&kms, &id, "HMAC_SHA_224", &[1; 4096]).await.len(), 28);
    // The enum set in the order AWS prints it (recorded AWS response, docs/errors.md).
    assert_eq!(
        common::fail(gen("INVALID", b"m".to_vec()).send().await),
        (
            "ValidationException".into(),
            "1 validation error detected: Value 'INVALID' at 'macAlgorithm' failed to satisfy \
             constraint: Member must satisfy enum value set: [HMAC_SHA_384, HMAC_SHA_256, \
             HMAC_SHA_224, HMAC_SHA_512]"
                .into()
        )
    );
    let r = kms
        .generate_mac()
        .key_id(&id)
        .message(Blob::new(b"m".to_vec()))
        .send()
        .await;
    assert_eq!(
        common::fail(r),
        (
            "ValidationException".into(),
            "1 validation error detected: Value null at 'macAlgorithm' failed to satisfy \
             constraint: Member must not be null"
                .into()
        )
    );
    assert_eq!(
        common::fail(
            gen("HMAC_SHA_224", b"m".to_vec())
                .dry_run(true)
                .send()
                .await
        ),
        ("DryRunOperationException".into(), DRY_RUN_MESSAGE.into())
    );
    let r = kms
        .verify_mac()
        .key_id(&id)
        .message(Blob::new(b"m".to_vec()))
        .mac_algorithm(MacAlgorithmSpec::HmacSha224)
        .mac(Blob::new(vec![0; 28]))
        .dry_run(true)
        .send()
        .await;
    assert_eq!(
        common::fail(r),
        ("DryRunOperationException".into(), DRY_RUN_MESSAGE.into())
    );
    // Keys of other usages.
    let (p256, p256_arn) = create(&kms, "ECC_NIST_P256", "SIGN_VERIFY").await;
    let r = kms
        .generate_mac()
        .key_id(&p256)
        .message(Blob::new(b"m".to_vec()))
        .mac_algorithm(MacAlgorithmSpec::HmacSha256)
        .send()
        .await;
    assert_eq!(
        common::fail(r),
        (
            "InvalidKeyUsageException".into(),
            format!("{p256_arn} key usage is SIGN_VERIFY which is not valid for GenerateMac.")
        )
    );
    // HMAC keys neither encrypt nor sign.
    let r = kms
        .encrypt()
        .key_id(&id)
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await;
    assert_eq!(
        common::fail(r),
        (
            "InvalidKeyUsageException".into(),
            format!("{arn} key usage is GENERATE_VERIFY_MAC which is not valid for Encrypt.")
        )
    );
    let r = kms
        .sign()
        .key_id(&id)
        .message(Blob::new(b"m".to_vec()))
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await;
    assert_eq!(
        common::fail(r),
        (
            "InvalidKeyUsageException".into(),
            format!("{arn} key usage is GENERATE_VERIFY_MAC which is not valid for Sign.")
        )
    );
}

#[tokio::test]
async fn rotation_is_refused_for_non_symmetric_keys() {
    let srv = TestServer::start().await;
    let kms = srv.client();
    for (spec, usage) in [
        ("ECC_NIST_P256", "SIGN_VERIFY"),
        ("RSA_2048", "ENCRYPT_DECRYPT"),
        ("HMAC_256", "GENERATE_VERIFY_MAC"),
    ] {
        let (id, _) = create(&kms, spec, usage).await;
        let (code, message) = common::fail(kms.enable_key_rotation().key_id(&id).send().await);
        assert_eq!(
            (code.as_str(), message.as_str()),
            ("UnsupportedOperationException", "")
        );
        let (code, _) = common::fail(kms.disable_key_rotation().key_id(&id).send().await);
        assert_eq!(code, "UnsupportedOperationException");
        let (code, message) = common::fail(kms.rotate_key_on_demand().key_id(&id).send().await);
        assert_eq!(
            (code.as_str(), message.as_str()),
            ("UnsupportedOperationException", "")
        );
        let status = kms
            .get_key_rotation_status()
            .key_id(&id)
            .send()
            .await
            .unwrap();
        assert!(!status.key_rotation_enabled, "{spec}");
    }
}

#[tokio::test]
async fn signing_algorithm_condition_and_grants() {
    let srv = TestServer::start().await;
    let kms = srv.client();
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"},
                "Action": "kms:*",
                "Resource": "*"
            },
            {
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": ["kms:Sign", "kms:Verify"],
                "Resource": "*",
                "Condition": {"StringNotEquals": {"kms:SigningAlgorithm": "RSASSA_PSS_SHA_256"}}
            }
        ]
    });
    let md = kms
        .create_key()
        .key_spec(KeySpec::Rsa2048)
        .key_usage(KeyUsageType::SignVerify)
        .policy(policy.to_string())
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let (id, arn) = (md.key_id().to_string(), md.arn().unwrap().to_string());
    let sig = sign(&kms, &id, "RSASSA_PSS_SHA_256", "RAW", b"allowed").await;
    assert_eq!(
        verify(&kms, &id, "RSASSA_PSS_SHA_256", "RAW", b"allowed", &sig).await,
        Ok(true)
    );
    let (code, message) = common::fail(
        kms.sign()
            .key_id(&id)
            .message(Blob::new(b"denied".to_vec()))
            .signing_algorithm(SigningAlgorithmSpec::RsassaPkcs1V15Sha256)
            .send()
            .await,
    );
    assert_eq!(code, "AccessDeniedException");
    assert!(
        message.contains("kms:Sign") && message.contains("explicit deny"),
        "{message}"
    );

    // A grant lets another account's user sign (and only sign) with the key.
    let (p256, p256_arn) = create(&kms, "ECC_NIST_P256", "SIGN_VERIFY").await;
    let bob = srv.other_client();
    let r = bob
        .sign()
        .key_id(&p256_arn)
        .message(Blob::new(b"m".to_vec()))
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await;
    assert_eq!(common::fail(r).0, "AccessDeniedException");
    kms.create_grant()
        .key_id(&p256)
        .grantee_principal("arn:aws:iam::444455556666:user/bob")
        .operations(GrantOperation::Sign)
        .operations(GrantOperation::GetPublicKey)
        .send()
        .await
        .unwrap();
    let sig = sign(&bob, &p256_arn, "ECDSA_SHA_256", "RAW", b"m").await;
    bob.get_public_key().key_id(&p256_arn).send().await.unwrap();
    let r = verify(&bob, &p256_arn, "ECDSA_SHA_256", "RAW", b"m", &sig).await;
    assert_eq!(r.unwrap_err().0, "AccessDeniedException");
    assert_eq!(
        verify(&kms, &p256, "ECDSA_SHA_256", "RAW", b"m", &sig).await,
        Ok(true)
    );
    let _ = arn;
}

#[tokio::test]
async fn audit_records_name_the_algorithm_never_the_data() {
    let srv = TestServer::start().await;
    let kms = srv.client();
    let (p256, arn) = create(&kms, "ECC_NIST_P256", "SIGN_VERIFY").await;
    let (hmac, _) = create(&kms, "HMAC_256", "GENERATE_VERIFY_MAC").await;
    let secret = b"secret-message-bytes".to_vec();
    let sig = sign(&kms, &p256, "ECDSA_SHA_256", "RAW", &secret).await;
    verify(&kms, &p256, "ECDSA_SHA_256", "RAW", &secret, &sig)
        .await
        .unwrap();
    let tag = mac(&kms, &hmac, "HMAC_SHA_256", &secret).await;
    verify_mac(&kms, &hmac, "HMAC_SHA_256", &secret, &tag)
        .await
        .unwrap();
    kms.get_public_key().key_id(&p256).send().await.unwrap();
    let records = srv.audit_records().await;
    let find = |name: &str| {
        records
            .iter()
            .find(|r| r["eventName"] == name)
            .unwrap_or_else(|| panic!("no {name} record"))
            .clone()
    };
    for name in ["Sign", "Verify"] {
        let r = find(name);
        assert_eq!(r["requestParameters"]["signingAlgorithm"], "ECDSA_SHA_256");
        assert_eq!(r["requestParameters"]["messageType"], "RAW");
        assert_eq!(r["requestParameters"]["keyId"], p256.as_str());
        assert_eq!(r["resources"][0]["ARN"], arn.as_str());
        assert_eq!(r["readOnly"], true);
    }
    for name in ["GenerateMac", "VerifyMac"] {
        assert_eq!(
            find(name)["requestParameters"]["macAlgorithm"],
            "HMAC_SHA_256"
        );
    }
    find("GetPublicKey");
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let text = serde_json::to_string(&records).unwrap();
    for bytes in [&secret, &sig, &tag] {
        assert!(!text.contains(&b64.encode(bytes)), "data in the audit log");
    }
    assert!(!text.contains("secret-message-bytes"));
}

/// Requirement 4 of the reference's §15 for the operations of asymmetric and HMAC keys: Sign,
/// Verify, GetPublicKey, GenerateMac and VerifyMac take a key id, key ARN, alias name and alias
/// ARN alike, and answer the key ARN.
#[tokio::test]
async fn signing_and_mac_operations_take_every_identifier_form() {
    let srv = TestServer::start().await;
    let kms = srv.client();
    let mut forms = Vec::new();
    for (spec, usage, alias) in [
        (
            KeySpec::EccNistP256,
            KeyUsageType::SignVerify,
            "alias/signer",
        ),
        (
            KeySpec::Hmac256,
            KeyUsageType::GenerateVerifyMac,
            "alias/mac",
        ),
    ] {
        let (key_id, arn) = common::new_key_of(&kms, spec, usage).await;
        kms.create_alias()
            .alias_name(alias)
            .target_key_id(&key_id)
            .send()
            .await
            .unwrap();
        forms.push((
            arn.clone(),
            [
                key_id,
                arn,
                alias.to_string(),
                format!("arn:aws:kms:us-east-1:111122223333:{alias}"),
            ],
        ));
    }
    let message = Blob::new(b"identifier forms".to_vec());
    let (signer_arn, signer_forms) = &forms[0];
    for ident in signer_forms {
        let sig = kms
            .sign()
            .key_id(ident)
            .message(message.clone())
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .unwrap();
        assert_eq!(sig.key_id(), Some(signer_arn.as_str()), "Sign by {ident}");
        for verify_by in signer_forms {
            let v = kms
                .verify()
                .key_id(verify_by)
                .message(message.clone())
                .signature(sig.signature.clone().unwrap())
                .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
                .send()
                .await
                .unwrap();
            assert!(v.signature_valid(), "Verify by {verify_by}");
            assert_eq!(v.key_id(), Some(signer_arn.as_str()));
        }
        let pk = kms.get_public_key().key_id(ident).send().await.unwrap();
        assert_eq!(
            pk.key_id(),
            Some(signer_arn.as_str()),
            "GetPublicKey by {ident}"
        );
    }
    let (mac_arn, mac_forms) = &forms[1];
    for ident in mac_forms {
        let mac = kms
            .generate_mac()
            .key_id(ident)
            .message(message.clone())
            .mac_algorithm(MacAlgorithmSpec::HmacSha256)
            .send()
            .await
            .unwrap();
        assert_eq!(
            mac.key_id(),
            Some(mac_arn.as_str()),
            "GenerateMac by {ident}"
        );
        for verify_by in mac_forms {
            let v = kms
                .verify_mac()
                .key_id(verify_by)
                .message(message.clone())
                .mac(mac.mac.clone().unwrap())
                .mac_algorithm(MacAlgorithmSpec::HmacSha256)
                .send()
                .await
                .unwrap();
            assert!(v.mac_valid(), "VerifyMac by {verify_by}");
            assert_eq!(v.key_id(), Some(mac_arn.as_str()));
        }
    }
}
