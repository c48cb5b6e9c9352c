//! The HTTPS listener: with `server.tls_cert`/`server.tls_key` configured the server speaks
//! TLS (rustls), and a SigV4-signed KMS request over it succeeds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use sigv4::Signer;

#[tokio::test]
async fn https_listener_serves_signed_requests() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();

    let env = vec![
        (
            "KMS_SERVER__DATA_DIR".to_string(),
            dir.path().join("data").display().to_string(),
        ),
        (
            "KMS_SERVER__TLS_CERT".to_string(),
            cert_path.display().to_string(),
        ),
        (
            "KMS_SERVER__TLS_KEY".to_string(),
            key_path.display().to_string(),
        ),
    ];
    let config = kms::config::load(None, env).unwrap();
    let app = kms::app::build(&config, Arc::new(kms::service::clock::SystemClock))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = kms::api::server::listener(
        listener,
        kms::api::router(app.state.clone()),
        &config,
        app.state.service.metrics(),
    )
    .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stop_rx.await;
    }));

    // A client that trusts only the test certificate.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let tls = connector
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);

    let host = format!("localhost:{port}");
    let signer = Signer::new(
        kms::config::DEV_ACCESS_KEY_ID,
        kms::config::DEV_SECRET_ACCESS_KEY,
        "us-east-1",
        "kms",
    );
    // A key whose policy allows only requests that arrive over TLS (aws:SecureTransport).
    let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
        "Action": "kms:*", "Resource": "*",
        "Condition": {"Bool": {"aws:SecureTransport": "true"}}}]})
    .to_string();
    let create = serde_json::json!({ "Policy": policy }).to_string();
    let mut key_id = String::new();
    for (op, body) in [
        ("CreateKey", create),
        ("ListKeys", "{}".to_string()),
        ("DescribeKey", String::new()),
    ] {
        let body = if op == "DescribeKey" {
            serde_json::json!({ "KeyId": key_id }).to_string()
        } else {
            body
        };
        let headers = signer
            .sign_kms_json(&host, op, body.as_bytes(), chrono::Utc::now())
            .unwrap();
        let mut req = hyper::Request::builder()
            .method("POST")
            .uri("/")
            .header("host", &host);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let resp = sender
            .send_request(req.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let json: serde_json::Value =
            serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(status, 200, "{op}: {json}");
        match op {
            "CreateKey" => key_id = json["KeyMetadata"]["KeyId"].as_str().unwrap().to_string(),
            "ListKeys" => assert_eq!(json["Keys"].as_array().unwrap().len(), 1),
            _ => assert_eq!(json["KeyMetadata"]["KeyId"], key_id.as_str()),
        }
    }

    // A plain-HTTP client cannot talk to the TLS listener.
    let mut plain = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    plain
        .write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        plain.read_to_end(&mut buf),
    )
    .await;
    assert!(!buf.starts_with(b"HTTP/1.1 200"));
    let _ = stop_tx.send(());
}
