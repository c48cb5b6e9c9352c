//! A node whose root does not match the database's wrapped material refuses to start: on the
//! software root (two root key files, one database) and on the PKCS#11 root (two domain keys on
//! one token, one database), with a clear error; the right root starts again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use std::sync::Arc;

use kms::service::clock::ManualClock;

/// Builds (and drops) an application on `data_dir` with the extra `env`; the start error's
/// text if it refused.
async fn start(data_dir: &std::path::Path, env: &[(String, String)]) -> Result<(), String> {
    let mut env = env.to_vec();
    env.push((
        "KMS_SERVER__DATA_DIR".into(),
        data_dir.display().to_string(),
    ));
    let config = kms::config::load(None, env).unwrap();
    let app = kms::app::build(&config, Arc::new(ManualClock::default())).await;
    app.map(drop).map_err(|e| e.to_string())
}

fn var(k: &str, v: impl ToString) -> (String, String) {
    (k.to_string(), v.to_string())
}

#[tokio::test]
async fn software_root_of_another_installation_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let roots = tempfile::tempdir().unwrap();
    let first = [var(
        "KMS_ROOT__KEY_FILE",
        roots.path().join("a.key").display(),
    )];
    let second = [var(
        "KMS_ROOT__KEY_FILE",
        roots.path().join("b.key").display(),
    )];
    start(data.path(), &first).await.unwrap();
    // The check value is in the database now; another root key file cannot unwrap it.
    let err = start(data.path(), &second).await.unwrap_err();
    assert!(
        err.contains("the root does not match the database"),
        "{err}"
    );
    assert!(err.contains("root-check-v1"), "{err}");
    // The right one still starts.
    start(data.path(), &first).await.unwrap();
}

#[tokio::test]
async fn pkcs11_domain_key_of_another_installation_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let env = common::pkcs11_env();
    let other: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| match k.as_str() {
            "KMS_ROOT__DOMAIN_KEY_LABEL" => (k.clone(), format!("{v}-other")),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    start(data.path(), &env).await.unwrap();
    let err = start(data.path(), &other).await.unwrap_err();
    assert!(
        err.contains("the root does not match the database"),
        "{err}"
    );
    start(data.path(), &env).await.unwrap();
}
