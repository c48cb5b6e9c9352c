//! The listener's behaviours over real loopback sockets: timeouts, the connection cap, peer
//! data, mTLS, TLS replacement, graceful shutdown, PEM errors.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_types
)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Router};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

/// Short timeouts so that every test runs in about a second.
const SHORT: Duration = Duration::from_millis(300);

fn short_config() -> ServeConfig {
    ServeConfig {
        max_connections: 16,
        tls_handshake_timeout: SHORT,
        header_read_timeout: SHORT,
        body_read_timeout: SHORT,
        keep_alive: true,
        shutdown_grace: Duration::from_secs(5),
    }
}

fn router() -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        )
        .route(
            "/sleep/{ms}",
            get(
                |axum::extract::Path(ms): axum::extract::Path<u64>| async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    "slept"
                },
            ),
        )
        .route(
            "/body",
            post(|body: axum::body::Body| async move {
                match axum::body::to_bytes(body, 1 << 20).await {
                    Ok(b) => (StatusCode::OK, b.len().to_string()),
                    Err(e) if is_body_timeout(&e) => (StatusCode::REQUEST_TIMEOUT, e.to_string()),
                    Err(e) => (StatusCode::BAD_REQUEST, e.to_string()),
                }
            }),
        )
}

/// Records every observer call.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
}

impl Recorder {
    fn count(&self, what: &str) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| *e == what)
            .count()
    }
}

impl Observer for Recorder {
    fn opened(&self, _: SocketAddr) {
        self.events.lock().unwrap().push("opened".into());
    }
    fn closed(&self, _: SocketAddr) {
        self.events.lock().unwrap().push("closed".into());
    }
    fn rejected(&self, _: SocketAddr, why: Rejection<'_>) {
        self.events.lock().unwrap().push(why.as_str().into());
    }
}

struct Running {
    addr: SocketAddr,
    recorder: Arc<Recorder>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Drained>,
}

impl Running {
    async fn stop(mut self) -> Drained {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the listener did not stop")
            .unwrap()
    }
}

async fn start(config: ServeConfig, tls: Option<Arc<Tls>>) -> Running {
    start_with(config, tls, router(), |s| s).await
}

async fn start_with<X: Clone + Send + Sync + 'static>(
    config: ServeConfig,
    tls: Option<Arc<Tls>>,
    router: Router,
    customize: impl FnOnce(Server) -> Server<X>,
) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let recorder = Arc::new(Recorder::default());
    let server = Server::new(listener, router)
        .config(config)
        .tls(tls)
        .observer(recorder.clone());
    let server = customize(server);
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        recorder,
        stop: Some(stop),
        task,
    }
}

/// An HTTP/1.1 client connection (keep-alive).
async fn client<S>(io: S) -> SendRequest<Full<bytes::Bytes>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

async fn get_on(
    send: &mut SendRequest<Full<bytes::Bytes>>,
    path: &str,
) -> Result<(StatusCode, String), hyper::Error> {
    let req = http::Request::get(path)
        .header("host", "localhost")
        .body(Full::default())
        .unwrap();
    let resp = send.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

async fn fetch(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let mut send = client(TcpStream::connect(addr).await.unwrap()).await;
    get_on(&mut send, path).await.unwrap()
}

/// Reads until the server closes the connection; returns what it sent and when it closed.
async fn until_closed(stream: &mut TcpStream, started: Instant) -> (Vec<u8>, Duration) {
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server did not close the connection within 5 s"
    );
    (got, started.elapsed())
}

/// The server closed within [timeout - slack, timeout + generous margin for a busy machine].
fn assert_closed_after_timeout(elapsed: Duration, timeout: Duration) {
    assert!(
        elapsed >= timeout - Duration::from_millis(50),
        "closed after {elapsed:?}, before the {timeout:?} timeout"
    );
    assert!(
        elapsed < timeout + Duration::from_secs(3),
        "closed only after {elapsed:?} (timeout {timeout:?})"
    );
}

// --- TLS fixtures --------------------------------------------------------------------------

struct Ca {
    cert: rcgen::Certificate,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

fn ca(name: &str) -> Ca {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        cert,
        issuer: rcgen::Issuer::new(params, key),
    }
}

/// (certificate PEM, key PEM) signed by `ca`.
fn issue(ca: &Ca, cn: &str, client: bool) -> (String, String) {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.extended_key_usages = vec![if client {
        rcgen::ExtendedKeyUsagePurpose::ClientAuth
    } else {
        rcgen::ExtendedKeyUsagePurpose::ServerAuth
    }];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Server certificate files for `localhost` signed by `ca`.
fn server_files(dir: &Path, ca: &Ca, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = issue(ca, "localhost", false);
    let (c, k) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&c, cert).unwrap();
    std::fs::write(&k, key).unwrap();
    (c, k)
}

fn client_config(trust: &Ca, client_cert: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trust.cert.der().clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

async fn tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

// --- Tests ---------------------------------------------------------------------------------

#[tokio::test]
async fn requests_carry_the_peer_address() {
    let server = start(short_config(), None).await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let local = stream.local_addr().unwrap();
    let mut send = client(stream).await;
    let (status, body) = get_on(&mut send, "/peer").await.unwrap();
    assert_eq!((status, body), (StatusCode::OK, local.to_string()));
    assert_eq!(server.stop().await, Drained { forced: 0 });
}

#[tokio::test]
async fn a_tls_handshake_that_stalls_is_closed_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("server ca");
    let (cert, key) = server_files(dir.path(), &ca, "server");
    let tls = Arc::new(Tls::from_files(&cert, &key, &TlsOptions::default()).unwrap());
    // A long header timeout: the idle pauses below must not trip it.
    let config = ServeConfig {
        header_read_timeout: Duration::from_secs(10),
        ..short_config()
    };
    let server = start(config, Some(tls)).await;

    // Connects and sends nothing.
    let started = Instant::now();
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let (got, elapsed) = until_closed(&mut silent, started).await;
    assert!(got.is_empty(), "{got:?}");
    assert_closed_after_timeout(elapsed, SHORT);

    // Sends the first half of a ClientHello: a handshake record header announcing 512 bytes,
    // and 16 of them.
    let started = Instant::now();
    let mut half = TcpStream::connect(server.addr).await.unwrap();
    half.write_all(&[
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ])
    .await
    .unwrap();
    half.write_all(&[0u8; 10]).await.unwrap();
    let (_, elapsed) = until_closed(&mut half, started).await;
    assert_closed_after_timeout(elapsed, SHORT);
    assert_eq!(server.recorder.count("tls_handshake_timeout"), 2);

    // A client that completes its handshake is served, with ALPN http/1.1, also after the
    // handshake timeout has passed.
    let stream = tls_connect(server.addr, client_config(&ca, None))
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut send = client(stream).await;
    tokio::time::sleep(SHORT / 2).await;
    assert_eq!(get_on(&mut send, "/").await.unwrap().0, StatusCode::OK);
    tokio::time::sleep(SHORT / 2 + Duration::from_millis(50)).await;
    assert_eq!(get_on(&mut send, "/").await.unwrap().0, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn request_headers_that_stall_are_closed_after_the_timeout() {
    let server = start(short_config(), None).await;
    let started = Instant::now();
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    stalled
        .write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nx-part")
        .await
        .unwrap();
    let (got, elapsed) = until_closed(&mut stalled, started).await;
    assert!(!got.starts_with(b"HTTP/1.1 200"), "{got:?}");
    assert_closed_after_timeout(elapsed, SHORT);

    // The same deadline closes a keep-alive connection left idle after a response.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let started = Instant::now();
    let (_, elapsed) = until_closed(&mut idle, started).await;
    assert_closed_after_timeout(elapsed, SHORT);
    server.stop().await;
}

#[tokio::test]
async fn a_request_body_that_stalls_fails_the_read_after_the_timeout() {
    let server = start(short_config(), None).await;
    let started = Instant::now();
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    stalled
        .write_all(
            b"POST /body HTTP/1.1\r\nhost: localhost\r\ncontent-length: 100\r\n\r\n0123456789",
        )
        .await
        .unwrap();
    let (got, elapsed) = until_closed(&mut stalled, started).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("did not arrive within 300 ms"), "{text}");
    assert_closed_after_timeout(elapsed, SHORT);

    // A body that arrives in pieces, each well within the timeout, is read whole.
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(
        b"POST /body HTTP/1.1\r\nhost: localhost\r\ncontent-length: 20\r\n\r\n0123456789",
    )
    .await
    .unwrap();
    tokio::time::sleep(SHORT / 6).await;
    slow.write_all(b"0123456789").await.unwrap();
    let mut buf = [0u8; 512];
    let n = slow.read(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("20"),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once_when_every_open_one_is_busy() {
    let config = ServeConfig {
        max_connections: 2,
        header_read_timeout: Duration::from_secs(10),
        ..short_config()
    };
    let server = start(config, None).await;
    let addr = server.addr;
    // Two requests in flight hold both places.
    let busy: Vec<_> = (0..2)
        .map(|_| tokio::spawn(async move { fetch(addr, "/sleep/1500").await }))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(3);
    while server.recorder.count("opened") < 2 {
        assert!(
            Instant::now() < deadline,
            "the busy connections never opened"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let _ = extra
        .write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await;
    let (got, elapsed) = until_closed(&mut extra, started).await;
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    assert!(elapsed < Duration::from_secs(1), "closed after {elapsed:?}");
    assert_eq!(server.recorder.count("over_capacity"), 1);
    assert_eq!(server.recorder.count("idle_evicted"), 0);
    assert_eq!(server.recorder.count("opened"), 2);

    // The busy ones finish undisturbed.
    for b in busy {
        assert_eq!(b.await.unwrap(), (StatusCode::OK, "slept".into()));
    }
    // Their connections are gone with their clients: a new one is served.
    assert_eq!(fetch(addr, "/").await.0, StatusCode::OK);
    let recorder = server.recorder.clone();
    assert_eq!(server.stop().await, Drained { forced: 0 });
    // Every counted connection was reported closed (refused ones are never counted).
    assert_eq!(recorder.count("opened"), recorder.count("closed"));
}

#[tokio::test]
async fn at_the_cap_the_longest_open_idle_connection_makes_room_for_a_new_client() {
    let config = ServeConfig {
        max_connections: 3,
        header_read_timeout: Duration::from_secs(10),
        ..short_config()
    };
    let server = start(config, None).await;
    let addr = server.addr;
    // Oldest: a kept-alive connection that carried a request and is now idle.
    let mut kept = client(TcpStream::connect(addr).await.unwrap()).await;
    assert_eq!(get_on(&mut kept, "/").await.unwrap().0, StatusCode::OK);
    // Then one that never sends anything, and one stuck in the middle of its headers.
    let silent = TcpStream::connect(addr).await.unwrap();
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET / HTTP/1.1\r\nhost: loc")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while server.recorder.count("opened") < 3 {
        assert!(Instant::now() < deadline, "the connections never opened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // A new client is served at once, in place of the oldest idle connection. The newcomers
    // stay connected, so each of the next ones needs a place too.
    let started = Instant::now();
    let mut n1 = client(TcpStream::connect(addr).await.unwrap()).await;
    assert_eq!(
        get_on(&mut n1, "/").await.unwrap(),
        (StatusCode::OK, "ok".into())
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(server.recorder.count("idle_evicted"), 1);
    assert_eq!(server.recorder.count("over_capacity"), 0);
    assert!(
        get_on(&mut kept, "/").await.is_err(),
        "the oldest idle one was not closed"
    );
    // The next newcomer takes the silent one's place, then the half-open one's.
    let mut n2 = client(TcpStream::connect(addr).await.unwrap()).await;
    assert_eq!(get_on(&mut n2, "/").await.unwrap().0, StatusCode::OK);
    let (got, _) = until_closed(&mut { silent }, Instant::now()).await;
    assert!(got.is_empty());
    let mut n3 = client(TcpStream::connect(addr).await.unwrap()).await;
    assert_eq!(get_on(&mut n3, "/").await.unwrap().0, StatusCode::OK);
    let (got, _) = until_closed(&mut half, Instant::now()).await;
    assert!(got.is_empty());
    assert_eq!(server.recorder.count("idle_evicted"), 3);
    drop((n1, n2, n3));
    let recorder = server.recorder.clone();
    assert_eq!(server.stop().await, Drained { forced: 0 });
    assert_eq!(recorder.count("opened"), recorder.count("closed"));
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight_and_closes_the_port() {
    let server = start(short_config(), None).await;
    let addr = server.addr;
    let mut idle = client(TcpStream::connect(addr).await.unwrap()).await;
    assert_eq!(get_on(&mut idle, "/").await.unwrap().0, StatusCode::OK);
    let in_flight = tokio::spawn(async move { fetch(addr, "/sleep/400").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let recorder = server.recorder.clone();
    let started = Instant::now();
    assert_eq!(server.stop().await, Drained { forced: 0 });
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(
        in_flight.await.unwrap(),
        (StatusCode::OK, "slept".to_string())
    );
    // The idle connection was closed, the port no longer accepts, and every opened
    // connection was reported closed.
    assert!(get_on(&mut idle, "/").await.is_err());
    assert!(TcpStream::connect(addr).await.is_err());
    assert_eq!(recorder.count("opened"), 2);
    assert_eq!(recorder.count("closed"), 2);
}

#[tokio::test]
async fn shutdown_closes_what_is_left_at_the_end_of_the_grace_period() {
    let config = ServeConfig {
        shutdown_grace: Duration::from_millis(200),
        ..short_config()
    };
    let server = start(config, None).await;
    let addr = server.addr;
    let in_flight = tokio::spawn(async move {
        let mut send = client(TcpStream::connect(addr).await.unwrap()).await;
        get_on(&mut send, "/sleep/10000").await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let recorder = server.recorder.clone();
    let started = Instant::now();
    assert_eq!(server.stop().await, Drained { forced: 1 });
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(in_flight.await.unwrap().is_err());
    assert_eq!(recorder.count("closed"), 1);
}

#[tokio::test]
async fn mtls_hands_the_verified_client_certificate_to_peer_data() {
    #[derive(Clone)]
    struct ClientDer(Option<Vec<u8>>);

    let dir = tempfile::tempdir().unwrap();
    let server_ca = ca("server ca");
    let client_ca = ca("client ca");
    let (cert, key) = server_files(dir.path(), &server_ca, "server");
    let ca_file = dir.path().join("client-ca.pem");
    std::fs::write(&ca_file, client_ca.cert.pem()).unwrap();
    let options = TlsOptions {
        client_verifier: Some(
            tls::client_ca_verifier(&ca_file, TlsOptions::default().provider).unwrap(),
        ),
        ..TlsOptions::default()
    };
    let tls = Arc::new(Tls::from_files(&cert, &key, &options).unwrap());
    let router = Router::new().route(
        "/",
        get(
            |Extension(ClientDer(der)): Extension<ClientDer>| async move {
                der.map(|d| d.len().to_string()).unwrap_or_default()
            },
        ),
    );
    let server = start_with(short_config(), Some(tls), router, |s| {
        s.peer_data(|c: &Connection<'_>| ClientDer(c.client_certificate().map(|d| d.to_vec())))
    })
    .await;

    let (client_cert, client_key) = issue(&client_ca, "client-a", true);
    let der = CertificateDer::from_pem_slice(client_cert.as_bytes()).unwrap();
    let stream = tls_connect(
        server.addr,
        client_config(&server_ca, Some((&client_cert, &client_key))),
    )
    .await
    .unwrap();
    let mut send = client(stream).await;
    let (status, body) = get_on(&mut send, "/").await.unwrap();
    assert_eq!((status, body), (StatusCode::OK, der.len().to_string()));

    // Without a certificate, or with one from another CA, the handshake fails.
    let other_ca = ca("other ca");
    let (other_cert, other_key) = issue(&other_ca, "client-a", true);
    for config in [
        client_config(&server_ca, None),
        client_config(&server_ca, Some((&other_cert, &other_key))),
    ] {
        // TLS 1.3: the client learns of the rejection on its first read.
        let failed = match tls_connect(server.addr, config).await {
            Err(_) => true,
            Ok(stream) => {
                let mut send = client(stream).await;
                get_on(&mut send, "/").await.is_err()
            }
        };
        assert!(failed);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while server.recorder.count("tls_handshake_failed") < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.recorder.count("tls_handshake_failed"), 2);
    server.stop().await;
}

#[tokio::test]
async fn a_replaced_tls_configuration_applies_to_new_connections_only() {
    let dir = tempfile::tempdir().unwrap();
    let (old_ca, new_ca) = (ca("old ca"), ca("new ca"));
    let (old_cert, old_key) = server_files(dir.path(), &old_ca, "old");
    let (new_cert, new_key) = server_files(dir.path(), &new_ca, "new");
    let tls = Arc::new(Tls::from_files(&old_cert, &old_key, &TlsOptions::default()).unwrap());
    let server = start(short_config(), Some(tls.clone())).await;
    let mut established = client(
        tls_connect(server.addr, client_config(&old_ca, None))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        get_on(&mut established, "/").await.unwrap().0,
        StatusCode::OK
    );

    tls.replace(tls::server_config(&new_cert, &new_key, &TlsOptions::default()).unwrap());
    assert!(tls_connect(server.addr, client_config(&old_ca, None))
        .await
        .is_err());
    let mut renewed = client(
        tls_connect(server.addr, client_config(&new_ca, None))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(get_on(&mut renewed, "/").await.unwrap().0, StatusCode::OK);
    assert_eq!(
        get_on(&mut established, "/").await.unwrap().0,
        StatusCode::OK
    );
    server.stop().await;
}

#[test]
fn pem_problems_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("ca");
    let (cert, key) = server_files(dir.path(), &ca, "server");
    let (_, other_key) = server_files(dir.path(), &ca, "other");
    let missing = dir.path().join("missing.pem");
    let options = TlsOptions::default();

    let e = tls::server_config(&missing, &key, &options).unwrap_err();
    assert!(matches!(e, TlsError::Pem { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with(&missing.display().to_string()),
        "{e}"
    );
    // A key file where the certificate should be, and the other way round.
    let e = tls::server_config(&key, &key, &options).unwrap_err();
    assert!(matches!(e, TlsError::NoCertificate { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!("{}: no PEM certificate found", key.display())
    );
    let e = tls::server_config(&cert, &cert, &options).unwrap_err();
    assert!(matches!(e, TlsError::NoPrivateKey { .. }), "{e:?}");
    // A key that is not the certificate's.
    let e = tls::server_config(&cert, &other_key, &options).unwrap_err();
    assert!(matches!(e, TlsError::CertifiedKey { .. }), "{e:?}");
    // The key's contents never appear in a message.
    let key_pem = std::fs::read_to_string(&key).unwrap();
    let body = key_pem.lines().nth(1).unwrap();
    assert!(!e.to_string().contains(body));
    assert!(tls::server_config(&cert, &key, &options).is_ok());
}
