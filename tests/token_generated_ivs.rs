//! HSMs that generate AES-GCM IVs themselves (vendor profile `host_generated_iv = false`, as
//! for AWS CloudHSM), end to end through the real `aws-sdk-kms` client: the PKCS#11 root of the
//! default key store and a CloudHSM-style cluster of a custom key store.
//!
//! SoftHSM takes caller IVs only, so such a token is emulated by the fault-injection module
//! (softhsm/fault-module/, marker `<label>.token-iv`): C_EncryptInit with CKM_AES_GCM refuses a
//! caller IV that is not all zeros (CKR_MECHANISM_PARAM_INVALID) and writes a random IV of its
//! own into the parameter buffer, logging each one to `<label>.token-ivs`. The server is given a
//! profile file: SoftHSM's, with `host_generated_iv = false`. With SoftHSM's own profile (host
//! IVs) the same tokens refuse every encryption, which shows that the emulation bites.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{ConnectionStateType, DataKeySpec, OriginType};
use common::{code, message, softhsm, TestServer};

/// SoftHSM's profile with `host_generated_iv = false`, written into `dir`.
fn token_iv_profile(dir: &Path) -> PathBuf {
    let builtin = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("hsm-config/profiles/softhsm2.toml"),
    )
    .unwrap();
    let line = "\nhost_generated_iv = true\n";
    assert!(builtin.contains(line), "softhsm2.toml changed: {builtin}");
    let text = builtin
        .replace(line, "\nhost_generated_iv = false\n")
        .replace("name = \"softhsm2\"", "name = \"softhsm2-token-iv\"");
    let path = dir.join("softhsm2-token-iv.toml");
    std::fs::write(&path, text).unwrap();
    assert!(
        !hsm::VendorProfile::load(path.to_str().unwrap())
            .unwrap()
            .host_generated_iv
    );
    path
}

/// Makes the token `label`, reached through the fault module, generate its GCM IVs.
fn generate_ivs_on(label: &str) {
    std::fs::write(softhsm::fault_dir().join(format!("{label}.token-iv")), b"").unwrap();
}

/// The IVs (hex) the fault module generated on the token `label`.
fn token_ivs(label: &str) -> HashSet<String> {
    std::fs::read_to_string(softhsm::fault_dir().join(format!("{label}.token-ivs")))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The IV of a symmetric ciphertext blob (layout in src/service/ciphertext.rs: version, key id
/// length n, key id, material version, then the 12-byte IV).
fn blob_iv(blob: &Blob) -> [u8; 12] {
    let b = blob.as_ref();
    let n = b[1] as usize;
    b[6 + n..18 + n].try_into().unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The root on the process's test token, reached through the fault module, with `profile`.
fn root_env(profile: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = common::pkcs11_env()
        .into_iter()
        .filter(|(k, _)| k != "KMS_ROOT__MODULE")
        .collect();
    env.push(("KMS_ROOT__MODULE".into(), softhsm::fault_module().into()));
    env.push(("KMS_ROOT__PROFILE".into(), profile.into()));
    env
}

/// Encrypt, Decrypt, GenerateDataKey and ReEncrypt with `key` (and `other` as the ReEncrypt
/// destination); every call must succeed. Returns every ciphertext made.
async fn exercise(kms: &aws_sdk_kms::Client, key: &str, other: &str) -> Vec<Blob> {
    let mut made = Vec::new();
    let mut pairs = Vec::new();
    for i in 0..4 {
        let data = format!("plaintext {i}").into_bytes();
        let ct = kms
            .encrypt()
            .key_id(key)
            .plaintext(Blob::new(data.clone()))
            .encryption_context("purpose", "token-iv")
            .send()
            .await
            .unwrap()
            .ciphertext_blob
            .unwrap();
        pairs.push((ct, data));
    }
    for (ct, data) in &pairs {
        let pt = kms
            .decrypt()
            .ciphertext_blob(ct.clone())
            .encryption_context("purpose", "token-iv")
            .send()
            .await
            .unwrap()
            .plaintext
            .unwrap();
        assert_eq!(pt.as_ref(), data.as_slice());
    }
    let dk = kms
        .generate_data_key()
        .key_id(key)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    let dk_ct = dk.ciphertext_blob.unwrap();
    let opened = kms
        .decrypt()
        .ciphertext_blob(dk_ct.clone())
        .send()
        .await
        .unwrap()
        .plaintext
        .unwrap();
    assert_eq!(opened.as_ref(), dk.plaintext.unwrap().as_ref());
    let re = kms
        .re_encrypt()
        .ciphertext_blob(pairs[0].0.clone())
        .source_encryption_context("purpose", "token-iv")
        .destination_key_id(other)
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    let pt = kms
        .decrypt()
        .ciphertext_blob(re.clone())
        .send()
        .await
        .unwrap()
        .plaintext
        .unwrap();
    assert_eq!(pt.as_ref(), pairs[0].1.as_slice());
    made.extend(pairs.into_iter().map(|(ct, _)| ct));
    made.push(dk_ct);
    made.push(re);
    made
}

/// Every blob's IV is non-zero, distinct, and one the token generated (in `generated`).
fn assert_token_ivs(blobs: &[Blob], generated: &HashSet<String>) {
    let ivs: Vec<String> = blobs.iter().map(|b| hex(&blob_iv(b))).collect();
    assert_eq!(
        ivs.iter().collect::<HashSet<_>>().len(),
        ivs.len(),
        "{ivs:?}"
    );
    for iv in &ivs {
        assert_ne!(iv, &"00".repeat(12));
        assert!(
            generated.contains(iv),
            "IV {iv} was not generated by the token"
        );
    }
}

async fn encrypt_fails(kms: &aws_sdk_kms::Client, key: &str) -> (String, String) {
    let e = kms
        .encrypt()
        .key_id(key)
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await
        .unwrap_err();
    (code(&e), message(&e))
}

#[tokio::test]
async fn root_encrypts_with_ivs_the_token_generates() {
    let dir = tempfile::tempdir().unwrap();
    let profile = token_iv_profile(dir.path());
    let label = &softhsm::test_token().label;
    generate_ivs_on(label);
    let srv = TestServer::start_with(root_env(profile.to_str().unwrap())).await;
    let kms = srv.client();
    let key = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let other = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let blobs = exercise(&kms, &key, &other).await;
    assert_token_ivs(&blobs, &token_ivs(label));
}

#[tokio::test]
async fn root_with_host_ivs_fails_on_a_token_that_generates_them() {
    let label = &softhsm::test_token().label;
    generate_ivs_on(label);
    let srv = TestServer::start_with(root_env("softhsm2")).await;
    let kms = srv.client();
    let key = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let (code, message) = encrypt_fails(&kms, &key).await;
    assert_eq!(code, "UnsupportedOperationException", "{message}");
    assert!(message.contains("CKR_MECHANISM_PARAM_INVALID"), "{message}");
    assert!(token_ivs(label).is_empty());
}

/// A connected custom key store on `cluster`.
async fn connected_store(kms: &aws_sdk_kms::Client, cluster: &softhsm::TestCluster) -> String {
    let id = cluster
        .create_store(kms, &format!("store-{}", cluster.id), &cluster.pin)
        .await;
    kms.connect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    for _ in 0..200 {
        let d = kms
            .describe_custom_key_stores()
            .custom_key_store_id(&id)
            .send()
            .await
            .unwrap();
        match d.custom_key_stores()[0].connection_state().unwrap() {
            ConnectionStateType::Connected => return id,
            ConnectionStateType::Connecting => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("store {id} is {other:?}"),
        }
    }
    panic!("store {id} stayed CONNECTING");
}

async fn cluster_key(kms: &aws_sdk_kms::Client, store: &str) -> String {
    kms.create_key()
        .origin(OriginType::AwsCloudhsm)
        .custom_key_store_id(store)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id
}

/// A two-member cluster through the fault module whose tokens generate their IVs.
fn token_iv_cluster(profile: &str) -> softhsm::TestCluster {
    let mut cluster = softhsm::fault_cluster(2);
    cluster.settings = format!("profile = '{profile}'\nsession_wait_ms = 200");
    for m in &cluster.members {
        generate_ivs_on(m);
    }
    cluster
}

#[tokio::test]
async fn cluster_encrypts_with_ivs_the_tokens_generate() {
    let dir = tempfile::tempdir().unwrap();
    let profile = token_iv_profile(dir.path());
    let cluster = token_iv_cluster(profile.to_str().unwrap());
    let srv = TestServer::start_with_config(&cluster.toml(), common::backend_env()).await;
    let kms = srv.client();
    let store = connected_store(&kms, &cluster).await;
    let key = cluster_key(&kms, &store).await;
    let other = cluster_key(&kms, &store).await;
    let blobs = exercise(&kms, &key, &other).await;
    let per_member: Vec<HashSet<String>> = cluster.members.iter().map(|m| token_ivs(m)).collect();
    assert_token_ivs(&blobs, &per_member.iter().flatten().cloned().collect());
    // Requests go round-robin over the members, so the four Encrypts in a row ran on both.
    for (m, generated) in cluster.members.iter().zip(&per_member) {
        assert!(
            blobs.iter().any(|b| generated.contains(&hex(&blob_iv(b)))),
            "no ciphertext was made on member {m}"
        );
    }
}

#[tokio::test]
async fn cluster_with_host_ivs_fails_on_tokens_that_generate_them() {
    let cluster = token_iv_cluster("softhsm2");
    let srv = TestServer::start_with_config(&cluster.toml(), common::backend_env()).await;
    let kms = srv.client();
    let store = connected_store(&kms, &cluster).await;
    let key = cluster_key(&kms, &store).await;
    let (code, message) = encrypt_fails(&kms, &key).await;
    assert_eq!(code, "UnsupportedOperationException", "{message}");
    assert!(message.contains("CKR_MECHANISM_PARAM_INVALID"), "{message}");
    for m in &cluster.members {
        assert!(token_ivs(m).is_empty());
    }
}
