//! TLS to PostgreSQL: a node verifying the server's certificate against the configured CA
//! connects over TLS and serves; a node given another CA, or none, refuses to start and says
//! which certificate problem stopped it; a node without TLS is refused by a server that takes
//! TLS only; the server's certificate and its CA rotated while nodes run (the runbook of
//! `docs/operations.md`). The cluster is the test's own (`tests/pg/cluster.sh start DIR hostssl-only`: a
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

/// Runs openssl with `args` in `dir`; its standard output.
fn openssl(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A CA of its own, `<name>-ca.crt` with its key `<name>-ca.key` in `dir` (ECDSA P-256).
fn make_ca(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            &format!("/CN=kms test CA {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}-ca.key"),
            "-out",
            &format!("{name}-ca.crt"),
        ],
    );
    dir.join(format!("{name}-ca.crt"))
}

/// A CA of its own, which signed nothing the server shows.
fn other_ca(dir: &std::path::Path) -> std::path::PathBuf {
    make_ca(dir, "other")
}

/// A new key and a server certificate for 127.0.0.1 signed by the CA `ca` of [`make_ca`]:
/// `<name>.crt` and `<name>.key` in `dir`.
fn server_cert(
    dir: &std::path::Path,
    ca: &str,
    name: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let (key, csr, crt) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}-ca.crt"),
            "-CAkey",
            &format!("{ca}-ca.key"),
            "-set_serial",
            &format!("{}", uuid::Uuid::new_v4().as_u128() >> 1),
            "-days",
            "1",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &crt,
        ],
    );
    (dir.join(crt), dir.join(key))
}

/// The SHA-256 fingerprint of a PEM certificate file.
fn fingerprint(dir: &std::path::Path, cert: &std::path::Path) -> String {
    openssl(
        dir,
        &[
            "x509",
            "-noout",
            "-fingerprint",
            "-sha256",
            "-in",
            cert.to_str().unwrap(),
        ],
    )
}

/// Installs `cert` on the server and waits until new sessions get it (the reload is
/// asynchronous): the certificate a TLS handshake is shown is read with `openssl s_client`.
async fn serve_cert(
    pg: &OwnCluster,
    dir: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
) {
    pg.install_cert(cert, key);
    let want = fingerprint(dir, cert);
    let shown = dir.join("shown.crt");
    let t0 = Instant::now();
    loop {
        let out = std::process::Command::new("openssl")
            .args(["s_client", "-starttls", "postgres", "-connect"])
            .arg(format!("127.0.0.1:{}", pg.port()))
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .unwrap();
        std::fs::write(&shown, &out.stdout).unwrap();
        let got = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(&shown)
            .output()
            .unwrap();
        if String::from_utf8_lossy(&got.stdout).trim() == want {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the server never showed {}",
            cert.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Ends every session of the node(s) on database `db`: their next requests need new pool
/// connections (and the change listener reconnects), each with a fresh TLS handshake.
fn end_sessions(pg: &OwnCluster, db: &str) {
    psql(
        pg,
        "postgres",
        &format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = '{db}' AND pid <> pg_backend_pid()"
        ),
    );
}

/// A key created, used and described on `server`: every step needs the database (CreateKey
/// writes; with the change listener reconnecting, reads bypass the cache).
async fn round_trip(client: &aws_sdk_kms::Client) -> Result<(), String> {
    let key = client
        .create_key()
        .send()
        .await
        .map_err(|e| common::code(&e))?
        .key_metadata
        .unwrap()
        .key_id;
    let ct = client
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"rotated".to_vec()))
        .send()
        .await
        .map_err(|e| common::code(&e))?;
    let pt = client
        .decrypt()
        .ciphertext_blob(ct.ciphertext_blob().unwrap().clone())
        .send()
        .await
        .map_err(|e| common::code(&e))?;
    assert_eq!(pt.plaintext().unwrap().as_ref(), b"rotated");
    Ok(())
}

/// Polls [`round_trip`] until it succeeds (the first requests after [`end_sessions`] may meet
/// a pooled connection that is closing: `DependencyTimeoutException`, as after a database
/// restart), then requires three more in a row.
async fn keeps_serving(client: &aws_sdk_kms::Client) {
    let t0 = Instant::now();
    while let Err(code) = round_trip(client).await {
        assert_eq!(code, "DependencyTimeoutException");
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "not serving again: {code}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..3 {
        round_trip(client).await.unwrap();
    }
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

/// The runbook of `docs/operations.md` ("Rotating the server certificate and its CA") on a
/// hostssl-only cluster: (1) a new key and certificate from the same CA, configuration
/// reloaded: a running node keeps serving, its new connections verify the new certificate;
/// (2) a CA rotation: a node (re)started with a bundle of the old and new CA keeps serving when
/// the server switches to a certificate of the new CA, while a node still running with the old
/// CA alone (neither restarted nor sent SIGHUP) cannot open connections any more;
/// (3) the old CA dropped: a node started with the new CA alone serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_certificate_and_ca_rotations_keep_nodes_serving() {
    let pg = OwnCluster::start_with(&["hostssl-only"]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The operator's CA `a` (the cluster's own CA key is gone) and its first certificate.
    make_ca(d, "a");
    let (crt, key) = server_cert(d, "a", "server-1");
    serve_cert(&pg, d, &crt, &key).await;
    // Two nodes' CA files, as each node's configuration names them; one root for both.
    let only_a = d.join("node-1-ca.pem");
    std::fs::copy(d.join("a-ca.crt"), &only_a).unwrap();
    let bundle = d.join("node-2-ca.pem");
    std::fs::copy(d.join("a-ca.crt"), &bundle).unwrap();
    let (db, mut env) = store_env(&pg, "verify-full", Some(&only_a));
    env.push((
        "KMS_ROOT__KEY_FILE".into(),
        d.join("root.key").display().to_string(),
    ));
    let node_env = |ca: &std::path::Path| {
        let mut e = env.clone();
        e.retain(|(k, _)| k != "KMS_STORE__TLS_CA_FILE");
        e.push(("KMS_STORE__TLS_CA_FILE".into(), ca.display().to_string()));
        e
    };
    let node_1 = common::TestServer::start_with(node_env(&only_a)).await;
    keeps_serving(&node_1.client()).await;

    // 1. Same CA, new key and certificate, `pg_reload_conf`: existing sessions keep the old
    //    one; the node's new connections (after its sessions end) verify the new one.
    let (crt, key) = server_cert(d, "a", "server-2");
    serve_cert(&pg, d, &crt, &key).await;
    keeps_serving(&node_1.client()).await; // on the sessions it had
    end_sessions(&pg, &db);
    keeps_serving(&node_1.client()).await;
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

    // 2. CA rotation. The bundle (old and new CA) on node 2, read when it starts (a restart).
    make_ca(d, "b");
    let both = [
        std::fs::read_to_string(d.join("a-ca.crt")).unwrap(),
        std::fs::read_to_string(d.join("b-ca.crt")).unwrap(),
    ]
    .concat();
    std::fs::write(&bundle, both).unwrap();
    let node_2 = common::TestServer::start_with(node_env(&bundle)).await;
    keeps_serving(&node_2.client()).await;
    // The server switches to a certificate of the new CA.
    let (crt, key) = server_cert(d, "b", "server-3");
    serve_cert(&pg, d, &crt, &key).await;
    end_sessions(&pg, &db);
    keeps_serving(&node_2.client()).await;
    // Node 1 runs with the CA it read at start: new connections fail verification.
    let t0 = Instant::now();
    loop {
        match round_trip(&node_1.client()).await {
            Err(code) => {
                assert_eq!(code, "DependencyTimeoutException");
                break;
            }
            // A pooled session that survived end_sessions (opened just after it): end it.
            Ok(()) => end_sessions(&pg, &db),
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "node 1 kept connecting"
        );
    }
    for _ in 0..3 {
        assert_eq!(
            round_trip(&node_1.client()).await.unwrap_err(),
            "DependencyTimeoutException"
        );
    }
    drop(node_1);

    // 3. The old CA dropped from the bundle: a node started with the new CA alone serves.
    std::fs::copy(d.join("b-ca.crt"), &bundle).unwrap();
    drop(node_2);
    let node_2 = common::TestServer::start_with(node_env(&bundle)).await;
    keeps_serving(&node_2.client()).await;
}

/// A new CA bundle put in force by SIGHUP, without a restart: a running node (the `kms`
/// binary) with the old CA alone gets the bundle of old and new CA in its `tls_ca_file` and a
/// SIGHUP, and keeps serving when the server switches to a certificate of the new CA; a node
/// started with the old CA and sent no SIGHUP cannot connect any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_ca_bundle_is_put_in_force_by_sighup() {
    let pg = OwnCluster::start_with(&["hostssl-only"]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca(d, "a");
    let (crt, key) = server_cert(d, "a", "server-1");
    serve_cert(&pg, d, &crt, &key).await;
    let ca_file = d.join("kms-ca.pem");
    std::fs::copy(d.join("a-ca.crt"), &ca_file).unwrap();
    let (db, mut env) = store_env(&pg, "verify-full", Some(&ca_file));
    env.push((
        "KMS_ROOT__KEY_FILE".into(),
        d.join("root.key").display().to_string(),
    ));
    let spawn = |data: &std::path::Path| {
        let (child, endpoint) = common::spawn_kms(data, env.clone(), std::process::Stdio::null());
        let client = common::sdk_client(
            &endpoint,
            kms::config::DEV_ACCESS_KEY_ID,
            kms::config::DEV_SECRET_ACCESS_KEY,
        );
        (child, client)
    };
    let (data_1, data_2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut reloaded, client) = spawn(data_1.path());
    keeps_serving(&client).await;
    // The other node reads the same file at start, before the bundle is written.
    let other_ca_file = d.join("other-kms-ca.pem");
    std::fs::copy(&ca_file, &other_ca_file).unwrap();
    let (mut stale, stale_client) = {
        let mut e = env.clone();
        e.retain(|(k, _)| k != "KMS_STORE__TLS_CA_FILE");
        e.push((
            "KMS_STORE__TLS_CA_FILE".into(),
            other_ca_file.display().to_string(),
        ));
        let (child, endpoint) = common::spawn_kms(data_2.path(), e, std::process::Stdio::null());
        let client = common::sdk_client(
            &endpoint,
            kms::config::DEV_ACCESS_KEY_ID,
            kms::config::DEV_SECRET_ACCESS_KEY,
        );
        (child, client)
    };
    keeps_serving(&stale_client).await;

    // The bundle, then SIGHUP; then the server switches to the new CA's certificate.
    make_ca(d, "b");
    let both = [
        std::fs::read_to_string(d.join("a-ca.crt")).unwrap(),
        std::fs::read_to_string(d.join("b-ca.crt")).unwrap(),
    ]
    .concat();
    std::fs::write(&ca_file, &both).unwrap();
    std::fs::write(&other_ca_file, &both).unwrap(); // written, but never reloaded
    let status = std::process::Command::new("kill")
        .args(["-HUP", &reloaded.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (crt, key) = server_cert(d, "b", "server-2");
    serve_cert(&pg, d, &crt, &key).await;
    end_sessions(&pg, &db);
    keeps_serving(&client).await;
    let t0 = Instant::now();
    loop {
        match round_trip(&stale_client).await {
            Err(code) => {
                assert_eq!(code, "DependencyTimeoutException");
                break;
            }
            Ok(()) => end_sessions(&pg, &db),
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the stale node kept connecting"
        );
    }
    // The reloaded node is still up (SIGHUP did not stop it) and serving.
    assert!(reloaded.try_wait().unwrap().is_none());
    round_trip(&client).await.unwrap();
    for child in [&mut reloaded, &mut stale] {
        let _ = child.kill();
        let _ = child.wait();
    }
}
