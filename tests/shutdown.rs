//! A clean stop of the `kms` binary on the PKCS#11 root: SIGTERM after HSM work ends the server
//! with status 0, having closed its sessions and finalized the module (`C_Finalize`) itself,
//! rather than leaving SoftHSM to its static destructors at exit.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]
mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_kms::primitives::Blob;

#[tokio::test]
async fn sigterm_after_hsm_work_finalizes_the_module_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = common::pkcs11_env();
    env.push(("KMS_LOG".into(), "info,cryptoki=off".into()));
    let (mut child, endpoint) = common::spawn_kms(dir.path(), env, Stdio::piped());
    // Drained on a thread, so that the server never blocks on a full pipe.
    let mut stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    let kms = common::sdk_client(
        &endpoint,
        kms::config::DEV_ACCESS_KEY_ID,
        kms::config::DEV_SECRET_ACCESS_KEY,
    );
    let key = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    // Concurrent requests, so that both HSM threads have called into the module.
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..16u8 {
        let kms = kms.clone();
        let key = key.clone();
        calls.spawn(async move {
            let blob = kms
                .encrypt()
                .key_id(&key)
                .plaintext(Blob::new(vec![i; 64]))
                .send()
                .await
                .unwrap()
                .ciphertext_blob
                .unwrap();
            let back = kms.decrypt().ciphertext_blob(blob).send().await.unwrap();
            assert_eq!(back.plaintext.unwrap().into_inner(), vec![i; 64]);
        });
    }
    while let Some(done) = calls.join_next().await {
        done.unwrap();
    }

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the server did not stop within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = log.join().unwrap();
    assert!(status.success(), "exit status {status:?}; log:\n{log}");
    assert!(log.contains("kms stopped"), "{log}");
    assert!(
        log.contains("PKCS#11 modules finalized") && log.contains("modules=1"),
        "{log}"
    );
    assert!(!log.contains("not finalized"), "{log}");
}
