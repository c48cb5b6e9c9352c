//! A key whose CreateKey returned survives `kill -9` of the server right afterwards, and so do
//! ciphertexts made before the kill (the root key and wrapped material are durable too).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use std::process::{Command, Stdio};

use aws_sdk_kms::primitives::Blob;

fn spawn(data_dir: &std::path::Path) -> (std::process::Child, String) {
    let env = vec![("KMS_LOG".to_string(), "warn".to_string())];
    common::spawn_kms(data_dir, env, Stdio::null())
}

fn client(endpoint: &str) -> aws_sdk_kms::Client {
    common::sdk_client(
        endpoint,
        kms::config::DEV_ACCESS_KEY_ID,
        kms::config::DEV_SECRET_ACCESS_KEY,
    )
}

#[tokio::test]
async fn created_key_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, endpoint) = spawn(dir.path());
    let kms = client(&endpoint);
    let mut ids = Vec::new();
    let mut blobs = Vec::new();
    for i in 0..5u8 {
        let key = kms
            .create_key()
            .description(format!("k{i}"))
            .send()
            .await
            .unwrap();
        let id = key.key_metadata.unwrap().key_id;
        let ct = kms
            .encrypt()
            .key_id(&id)
            .plaintext(Blob::new(vec![i; 32]))
            .send()
            .await
            .unwrap();
        blobs.push(ct.ciphertext_blob.unwrap());
        ids.push(id);
    }
    // The last CreateKey returned; kill immediately, no graceful shutdown.
    let last = kms.create_key().description("last").send().await.unwrap();
    let last_id = last.key_metadata.unwrap().key_id;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let (mut child, endpoint) = spawn(dir.path());
    let kms = client(&endpoint);
    let d = kms.describe_key().key_id(&last_id).send().await.unwrap();
    assert_eq!(d.key_metadata.unwrap().description.unwrap(), "last");
    for (i, (id, blob)) in ids.iter().zip(blobs).enumerate() {
        let pt = kms
            .decrypt()
            .key_id(id)
            .ciphertext_blob(blob)
            .send()
            .await
            .unwrap();
        assert_eq!(pt.plaintext.unwrap().as_ref(), vec![i as u8; 32].as_slice());
    }
    let listed = kms.list_keys().send().await.unwrap().keys.unwrap();
    assert_eq!(listed.len(), 6);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn invalid_config_reports_every_problem_and_exits_64() {
    let out = Command::new(env!("CARGO_BIN_EXE_kms"))
        .env("KMS_SERVER__LISTEN", "not-an-address")
        .env("KMS_SERVER__REGION", "Not A Region")
        .env("KMS_SERVER__MAX_CLOCK_SKEW_SECONDS", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.listen"), "{err}");
    assert!(err.contains("server.region"), "{err}");
    assert!(err.contains("max_clock_skew_seconds"), "{err}");
}
