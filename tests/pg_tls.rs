//! TLS to PostgreSQL: a node verifying the server's certificate against the configured CA
//! connects over TLS and serves; a node given another CA, or none, refuses to start and says
//! which certificate problem stopped it; a node without TLS is refused by a server that takes
//! TLS only. The cluster is the test's own (`tests/pg/cluster.sh start DIR hostssl-only`: a
//! throwaway CA, a server certificate for 127.0.0.1 and localhost, TCP over TLS only).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use std::time::{Duration, Instant};

use aws_sdk_kms::primitives::Blob;
use common::pg::OwnCluster;

/// psql on the cluster's database `db` (over TLS: psql's default `sslmode=prefer`).
fn psql(pg: &OwnCluster, db: &str, sql: &str) -> String {
    let url = match pg.url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{db}"),
        None => panic!("no database in {}", pg.url),
    };
    let out = std::process::Command::new("psql")
        .env("PGPASSWORD", &pg.password)
        .args([url.as_str(), "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .expect("psql (postgresql-client) must be installed");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A fresh database on the cluster and the `KMS_*` store settings of a node on it, with `tls`
/// (`verify-full` or `disable`) and the CA file `ca`, if any.
fn store_env(
    pg: &OwnCluster,
    tls: &str,
    ca: Option<&std::path::Path>,
) -> (String, Vec<(String, String)>) {
    let db = format!("kms_{}", uuid::Uuid::new_v4().simple());
    psql(pg, "postgres", &format!("CREATE DATABASE {db}"));
    let url = format!("{}/{db}", pg.url.rsplit_once('/').unwrap().0);
    let mut env = vec![
        ("KMS_STORE__KIND".to_string(), "postgres".to_string()),
        ("KMS_STORE__URL".into(), url),
        ("KMS_STORE__TLS".into(), tls.into()),
        (
            "KMS_STORE__PASSWORD_ENV".into(),
            "KMS_PG_TLS_PASSWORD".into(),
        ),
        ("KMS_PG_TLS_PASSWORD".into(), pg.password.clone()),
        ("KMS_STORE__POOL_SIZE".into(), "2".into()),
        ("KMS_STORE__CONNECT_TIMEOUT_MS".into(), "5000".into()),
    ];
    if let Some(ca) = ca {
        env.push(("KMS_STORE__TLS_CA_FILE".into(), ca.display().to_string()));
    }
    (db, env)
}

/// Runs the `kms` binary with `env` and expects it to refuse to start: its exit status is a
/// failure and its standard error is returned.
async fn refused_start(env: Vec<(String, String)>) -> String {
    let data = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kms"))
        .env("KMS_SERVER__LISTEN", "127.0.0.1:0")
        .env("KMS_SERVER__DATA_DIR", data.path())
        .envs(env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kms started (or hung) where it should have refused to start");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "kms exited successfully: {stderr}");
    stderr
}

/// A CA of its own, which signed nothing the server shows.
fn other_ca(dir: &std::path::Path) -> std::path::PathBuf {
    let ca = dir.join("other-ca.crt");
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=another CA"])
        .arg("-keyout")
        .arg(dir.join("other-ca.key"))
        .arg("-out")
        .arg(&ca)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl must be installed");
    assert!(status.success(), "openssl req");
    ca
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_verified_connects_and_refuses_what_it_cannot_verify() {
    let pg = OwnCluster::start_with(&["hostssl-only"]);

    // 1. The cluster's CA, full verification: the node starts and serves a key round trip,
    //    and every connection it holds is TLS.
    let (db, env) = store_env(&pg, "verify-full", Some(&pg.ca_file));
    let server = common::TestServer::start_with(env).await;
    let client = server.client();
    let key = client.create_key().send().await.unwrap();
    let key_id = key.key_metadata().unwrap().key_id().to_string();
    let ct = client
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new(b"over tls".to_vec()))
        .send()
        .await
        .unwrap();
    let pt = client
        .decrypt()
        .ciphertext_blob(ct.ciphertext_blob().unwrap().clone())
        .send()
        .await
        .unwrap();
    assert_eq!(pt.plaintext().unwrap().as_ref(), b"over tls");
    let described = client.describe_key().key_id(&key_id).send().await.unwrap();
    assert_eq!(described.key_metadata().unwrap().key_id(), key_id);
    let tls = psql(
        &pg,
        "postgres",
        &format!(
            "SELECT count(*) FILTER (WHERE s.ssl) || '/' || count(*) FROM pg_stat_activity a \
             JOIN pg_stat_ssl s USING (pid) WHERE a.datname = '{db}' \
             AND a.application_name = 'kms'"
        ),
    );
    let (on_tls, all) = tls.split_once('/').unwrap();
    assert!(all.parse::<u32>().unwrap() >= 1, "no kms connection: {tls}");
    assert_eq!(on_tls, all, "kms connections not all on TLS: {tls}");
    drop(client);
    drop(server);

    // 2. Another CA: the server's certificate cannot be verified; the node refuses to start
    //    and names the problem, without the password.
    let dir = tempfile::tempdir().unwrap();
    let (_, env) = store_env(&pg, "verify-full", Some(&other_ca(dir.path())));
    let err = refused_start(env).await;
    eprintln!("refused: {err}");
    assert!(err.contains("kms: cannot start"), "{err}");
    assert!(err.contains("invalid peer certificate"), "{err}");
    assert!(err.contains("UnknownIssuer"), "{err}");
    assert!(
        !err.contains(&pg.password),
        "the password is in the error: {err}"
    );

    // 3. No TLS against a server that takes TLS only: refused by the server, which says so.
    let (_, env) = store_env(&pg, "disable", None);
    let err = refused_start(env).await;
    eprintln!("refused: {err}");
    assert!(err.contains("kms: cannot start"), "{err}");
    assert!(err.contains("no pg_hba.conf entry"), "{err}");
    assert!(err.contains("no encryption"), "{err}");
    assert!(
        !err.contains(&pg.password),
        "the password is in the error: {err}"
    );
}
