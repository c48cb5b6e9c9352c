//! The KMS API listener (`serve` with the `[server]` settings) against the real server: a TLS
//! handshake, request headers or a request body that stall are cut off after their configured
//! timeouts, and at `server.max_connections` a new connection takes the place of the longest
//! idle one. Short timeouts keep each test to about a second.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestServer;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const TIMEOUT_MS: u64 = 400;
const TIMEOUT: Duration = Duration::from_millis(TIMEOUT_MS);

fn env(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (format!("KMS_SERVER__{k}"), v.clone()))
        .collect()
}

fn addr(server: &TestServer) -> String {
    server.endpoint.split("://").nth(1).unwrap().to_string()
}

/// Reads until the server closes the connection: (bytes received, time since `started`).
async fn until_closed(stream: &mut TcpStream, started: Instant) -> (Vec<u8>, Duration) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server kept the connection open for 5 s");
    (got, started.elapsed())
}

/// Closed no earlier than the timeout, and not much later (generous for a busy machine).
fn assert_closed_after_timeout(elapsed: Duration) {
    assert!(
        elapsed >= TIMEOUT - Duration::from_millis(50),
        "closed after {elapsed:?}, before the {TIMEOUT:?} timeout"
    );
    assert!(
        elapsed < TIMEOUT + Duration::from_secs(3),
        "closed only after {elapsed:?}"
    );
}

/// The value of one sample of the server's metrics text.
fn metric(server: &TestServer, sample: &str) -> f64 {
    let text = server.state.service.metrics().render();
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {sample} in\n{text}"))
        .parse()
        .unwrap()
}

async fn http1<S>(io: S) -> SendRequest<Full<Bytes>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

/// `POST /__baseline` (the benchmark route: no authentication, answers `{}`) on a kept-alive
/// connection.
async fn baseline(send: &mut SendRequest<Full<Bytes>>) -> Result<u16, hyper::Error> {
    let req = hyper::Request::post("/__baseline")
        .header("host", "localhost")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let resp = send.send_request(req).await?;
    let status = resp.status().as_u16();
    resp.into_body().collect().await?;
    Ok(status)
}

#[tokio::test]
async fn a_tls_handshake_that_stalls_is_closed_after_the_configured_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let server = TestServer::start_with(env(&[
        ("TLS_CERT", cert_path.display().to_string()),
        ("TLS_KEY", key_path.display().to_string()),
        ("TLS_HANDSHAKE_TIMEOUT_MS", TIMEOUT_MS.to_string()),
    ]))
    .await;
    assert!(server.endpoint.starts_with("https://"));
    let addr = addr(&server);

    // Connects and sends nothing.
    let started = Instant::now();
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    let (got, elapsed) = until_closed(&mut silent, started).await;
    assert!(got.is_empty());
    assert_closed_after_timeout(elapsed);

    // Sends half a ClientHello: a handshake record header announcing 512 bytes, then 16.
    let started = Instant::now();
    let mut half = TcpStream::connect(&addr).await.unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
        .await
        .unwrap();
    half.write_all(&[0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])
        .await
        .unwrap();
    half.write_all(&[0u8; 10]).await.unwrap();
    let (got, elapsed) = until_closed(&mut half, started).await;
    assert!(got.is_empty());
    assert_closed_after_timeout(elapsed);
    assert_eq!(
        metric(
            &server,
            "kms_connections_rejected_total{reason=\"tls_handshake_timeout\"}"
        ),
        2.0
    );

    // A client that completes its handshake is served.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            TcpStream::connect(&addr).await.unwrap(),
        )
        .await
        .unwrap();
    let mut send = http1(tls).await;
    assert_eq!(baseline(&mut send).await.unwrap(), 200);
}

#[tokio::test]
async fn request_headers_or_a_body_that_stall_are_cut_off_after_the_configured_timeouts() {
    let server = TestServer::start_with(env(&[
        ("HEADER_READ_TIMEOUT_MS", TIMEOUT_MS.to_string()),
        ("BODY_READ_TIMEOUT_MS", TIMEOUT_MS.to_string()),
    ]))
    .await;
    let addr = addr(&server);

    // Half a request line and headers, then nothing.
    let started = Instant::now();
    let mut stalled = TcpStream::connect(&addr).await.unwrap();
    stalled
        .write_all(b"POST / HTTP/1.1\r\nhost: localhost\r\nx-amz-target: TrentService.")
        .await
        .unwrap();
    let (got, elapsed) = until_closed(&mut stalled, started).await;
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    assert_closed_after_timeout(elapsed);

    // Complete headers announcing 100 body bytes, then 10 of them: the handler's read fails
    // after the body timeout, it answers, and the connection closes.
    let started = Instant::now();
    let mut slow_body = TcpStream::connect(&addr).await.unwrap();
    slow_body
        .write_all(
            b"POST /__baseline HTTP/1.1\r\nhost: localhost\r\ncontent-length: 100\r\n\r\n{\"a\":\"12",
        )
        .await
        .unwrap();
    let (got, elapsed) = until_closed(&mut slow_body, started).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("RequestTimeoutException"), "{text}");
    assert_closed_after_timeout(elapsed);

    // A complete request is answered.
    let mut send = http1(TcpStream::connect(&addr).await.unwrap()).await;
    assert_eq!(baseline(&mut send).await.unwrap(), 200);
}

#[tokio::test]
async fn at_the_cap_a_new_connection_takes_the_place_of_the_longest_idle_one() {
    const CAP: usize = 3;
    let server = TestServer::start_with(env(&[("MAX_CONNECTIONS", CAP.to_string())])).await;
    let addr = addr(&server);
    let mut open = Vec::new();
    for _ in 0..CAP {
        let mut send = http1(TcpStream::connect(&addr).await.unwrap()).await;
        assert_eq!(baseline(&mut send).await.unwrap(), 200);
        open.push(send);
    }
    assert_eq!(metric(&server, "kms_open_connections"), CAP as f64);

    // One more, with all three idle: it is served, and the oldest idle one is closed for it
    // (only when every open connection has a request in flight is the new one refused:
    // crates/serve's tests).
    let mut extra = http1(TcpStream::connect(&addr).await.unwrap()).await;
    assert_eq!(baseline(&mut extra).await.unwrap(), 200);
    assert_eq!(
        metric(
            &server,
            "kms_connections_rejected_total{reason=\"idle_evicted\"}"
        ),
        1.0
    );
    assert!(
        baseline(&mut open[0]).await.is_err(),
        "the oldest idle connection is still open"
    );
    for send in &mut open[1..] {
        assert_eq!(baseline(send).await.unwrap(), 200);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while metric(&server, "kms_open_connections") != CAP as f64 {
        assert!(
            Instant::now() < deadline,
            "open connections not back to the cap"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
