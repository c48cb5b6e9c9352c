//! `kms backup` (SQLite's online backup API) while a node writes: the copy holds every key
//! acknowledged before the backup began, passes SQLite's integrity check, and a node started on
//! it (with the same root key file) serves those keys, ciphertexts included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;

use parking_lot::Mutex;

use aws_sdk_kms::primitives::Blob;

/// A node on SQLite whatever `KMS_TEST_STORE` says (the backup is of the SQLite file).
fn spawn(data_dir: &std::path::Path) -> (std::process::Child, String) {
    let env = vec![
        ("KMS_LOG".to_string(), "warn".to_string()),
        ("KMS_STORE__KIND".to_string(), "sqlite".to_string()),
    ];
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
async fn online_backup_under_write_load_restores_every_acknowledged_key() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, endpoint) = spawn(dir.path());
    let kms = client(&endpoint);
    // Writers: keys with a ciphertext each, recorded once acknowledged.
    let acked: Arc<Mutex<Vec<(String, Blob)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4u8 {
        let (kms, acked, stop) = (kms.clone(), acked.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let id = kms
                    .create_key()
                    .send()
                    .await
                    .unwrap()
                    .key_metadata
                    .unwrap()
                    .key_id;
                let ct = kms
                    .encrypt()
                    .key_id(&id)
                    .plaintext(Blob::new(vec![w; 16]))
                    .send()
                    .await
                    .unwrap()
                    .ciphertext_blob
                    .unwrap();
                acked.lock().push((id, ct));
            }
        }));
    }
    while acked.lock().len() < 20 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Under load: what was acknowledged before the backup began must be in it.
    let before: Vec<(String, Blob)> = acked.lock().clone();
    let copy = dir.path().join("backup.sqlite3");
    let out = tokio::task::spawn_blocking({
        let (dir, copy) = (dir.path().to_path_buf(), copy.clone());
        move || {
            Command::new(env!("CARGO_BIN_EXE_kms"))
                .env("KMS_SERVER__DATA_DIR", &dir)
                .env("KMS_STORE__KIND", "sqlite")
                .arg("backup")
                .arg(&copy)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let during = acked.lock().len();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.starts_with("backed up "), "{report}");
    // Writing went on while the backup ran.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    assert!(acked.lock().len() > before.len());
    let copied: usize = report
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(
        copied >= before.len(),
        "{report}: {} acknowledged",
        before.len()
    );
    assert!(
        copied <= during + 4,
        "{report}: {during} acknowledged by the end"
    );

    // A second backup to the same file is refused (never overwrites).
    let again = Command::new(env!("CARGO_BIN_EXE_kms"))
        .env("KMS_SERVER__DATA_DIR", dir.path())
        .env("KMS_STORE__KIND", "sqlite")
        .arg("backup")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(!again.status.success());
    child.kill().unwrap();
    child.wait().unwrap();

    // Restore: a new data directory with the copy and the same root key file.
    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(&copy, restored.path().join("kms.sqlite3")).unwrap();
    std::fs::copy(
        dir.path().join("root.key"),
        restored.path().join("root.key"),
    )
    .unwrap();
    let (mut child, endpoint) = spawn(restored.path());
    let kms = client(&endpoint);
    for (id, blob) in &before {
        let pt = kms
            .decrypt()
            .key_id(id)
            .ciphertext_blob(blob.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(pt.plaintext.unwrap().as_ref().len(), 16);
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
