//! `GET /healthz` and `GET /readyz` on the metrics listener: both 200 on a serving node (the
//! real binary, on the root `KMS_TEST_BACKEND` selects), and readyz 503 with its reason while
//! the node drains (SIGTERM) and when its PostgreSQL store is stopped.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]
mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// `GET path` over a plain connection: (status, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {resp:?}"));
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_binary_serves_healthz_and_readyz_on_the_metrics_listener() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut env = common::backend_env();
    env.push((
        "KMS_SERVER__METRICS_LISTEN".into(),
        format!("127.0.0.1:{port}"),
    ));
    let (mut child, _endpoint) = common::spawn_kms(dir.path(), env, Stdio::null());
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // The metrics listener binds after the banner: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "metrics listener never came up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, body) = get(addr, "/healthz");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, r#"{"status":"ok"}"#);
    let (status, body) = get(addr, "/readyz");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, r#"{"status":"ready"}"#);
    let (status, _) = get(addr, "/nothing");
    assert_eq!(status, 404);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn readyz_answers_503_with_the_reason_while_draining() {
    let srv = common::TestServer::start().await;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let metrics = serve::Server::new(l, kms::api::metrics_router(srv.state.service.clone()));
    tokio::spawn(metrics.run(std::future::pending()));
    let ask = |path: &'static str| tokio::task::spawn_blocking(move || get(addr, path));
    assert_eq!(ask("/readyz").await.unwrap().0, 200);
    srv.state.service.start_draining();
    let (status, body) = ask("/readyz").await.unwrap();
    assert_eq!(status, 503);
    assert_eq!(body, r#"{"reason":"draining","status":"not ready"}"#);
    // Still alive while draining.
    assert_eq!(ask("/healthz").await.unwrap().0, 200);
}

/// A node on PostgreSQL (a cluster of the test's own) is ready while the database answers and
/// answers 503 "store unreachable" once it is stopped; it stays alive.
#[tokio::test]
async fn readyz_answers_503_when_the_store_is_unreachable() {
    let pg = common::pg::OwnCluster::start();
    let mut env = common::backend_env();
    env.extend([
        ("KMS_STORE__KIND".to_string(), "postgres".to_string()),
        ("KMS_STORE__URL".into(), pg.url.clone()),
        ("KMS_STORE__TLS".into(), "disable".into()),
        (
            "KMS_STORE__PASSWORD_ENV".into(),
            "KMS_OWN_PG_PASSWORD".into(),
        ),
        ("KMS_OWN_PG_PASSWORD".into(), pg.password.clone()),
        ("KMS_STORE__CONNECT_TIMEOUT_MS".into(), "1000".into()),
        ("KMS_STORE__POOL_WAIT_MS".into(), "1000".into()),
    ]);
    let srv = common::TestServer::start_with(env).await;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let metrics = serve::Server::new(l, kms::api::metrics_router(srv.state.service.clone()));
    tokio::spawn(metrics.run(std::future::pending()));
    let ask = |path: &'static str| tokio::task::spawn_blocking(move || get(addr, path));
    assert_eq!(ask("/readyz").await.unwrap().0, 200);
    tokio::task::spawn_blocking(move || pg.run("stop"))
        .await
        .unwrap();
    let (status, body) = ask("/readyz").await.unwrap();
    assert_eq!(status, 503);
    assert_eq!(
        body,
        r#"{"reason":"store unreachable","status":"not ready"}"#
    );
    assert_eq!(ask("/healthz").await.unwrap().0, 200);
}

/// SIGTERM with a request in flight (its body still coming): the node drains, and readyz
/// answers 503 "draining" meanwhile, so a load balancer stops sending to it.
#[test]
fn the_binary_is_not_ready_while_it_drains_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut env = common::backend_env();
    env.push((
        "KMS_SERVER__METRICS_LISTEN".into(),
        format!("127.0.0.1:{port}"),
    ));
    env.push(("KMS_SERVER__SHUTDOWN_GRACE_MS".into(), "5000".into()));
    let (mut child, endpoint) = common::spawn_kms(dir.path(), env, Stdio::null());
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "metrics listener never came up");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(get(addr, "/readyz").0, 200);
    // A request whose body has not all arrived keeps the API listener draining.
    let api: SocketAddr = endpoint.trim_start_matches("http://").parse().unwrap();
    let mut slow = std::net::TcpStream::connect(api).unwrap();
    write!(
        slow,
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: TrentService.ListKeys\r\nContent-Length: 100\r\n\r\n{{"
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let deadline = Instant::now() + Duration::from_secs(3);
    let body = loop {
        let (status, body) = get(addr, "/readyz");
        if status == 503 {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "still ready after SIGTERM: {body}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(body, r#"{"reason":"draining","status":"not ready"}"#);
    assert_eq!(get(addr, "/healthz").0, 200);
    drop(slow);
    child.kill().unwrap();
    child.wait().unwrap();
}
