//! TLS and mTLS: the spec's cipher suites, client certificates accepted only with an allowed
//! subject CN *and* a chain to the configured CA, certificate reload without a restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;

use common::*;
use xks_wire::Operation;

const KMS_CN: &str = "cks.kms.us-east-1.amazonaws.com";

fn key_on_shared_token() -> (String, String) {
    let token = shared_token();
    let label = unique("tls");
    create_key(&token, &label);
    (token, label)
}

async fn tls_proxy(mtls: bool) -> (TestProxy, TestCa, TestCa, tempfile::TempDir) {
    let (token, label) = key_on_shared_token();
    let dir = tempfile::tempdir().unwrap();
    let server_ca = new_ca("test server CA");
    let client_ca = new_ca("test client CA");
    let files = tls_files(dir.path(), &server_ca, mtls.then_some(&client_ca));
    let mut opts = ProxyOptions::new(&token).key("foo", &label);
    opts.tls = Some(files);
    (TestProxy::start(opts).await, server_ca, client_ca, dir)
}

fn client_over(p: &TestProxy, cfg: Arc<rustls::ClientConfig>) -> Client {
    let mut c = p.client();
    c.transport = Transport::Tls(cfg);
    c
}

/// Connects and sends one signed health request; Err when the connection is refused.
async fn try_health(c: &Client) -> Result<Resp, String> {
    let mut conn = c.connect().await?;
    c.send_raw(
        &mut conn,
        "POST",
        &c.path(Operation::GetHealthStatus, ""),
        serde_json::to_vec(&serde_json::json!({"requestMetadata": {"kmsRequestId": "r", "kmsOperation": "KmsHealthCheck"}})).unwrap(),
        true,
    )
    .await
}

/// The TLS alert the server sends to a client using `transport` (as text).
async fn tls_alert(p: &TestProxy, transport: Transport) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Transport::Tls(cfg) = transport else {
        panic!("not TLS");
    };
    let stream = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = match tokio_rustls::TlsConnector::from(cfg)
        .connect(name, stream)
        .await
    {
        Ok(s) => s,
        Err(e) => return e.to_string(),
    };
    let _ = tls
        .write_all(b"GET /ping HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;
    let mut buf = [0u8; 64];
    match tls.read(&mut buf).await {
        Ok(n) => format!("read {n} bytes"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_spec_cipher_suites() {
    let (p, server_ca, _, _dir) = tls_proxy(false).await;
    assert!(p.running().endpoint().starts_with("https://"));
    let c = client_over(&p, client_tls(&server_ca.pem, None));
    let r = try_health(&c).await.unwrap();
    r.assert_ok();
    let e = c.encrypt("foo", b"over tls", None, false).await;
    e.assert_ok();
    // TLS 1.2 with a spec suite works; TLS 1.2 offering only AES-128 suites does not.
    for (suite, ok) in [
        (
            rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            true,
        ),
        (
            rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            false,
        ),
    ] {
        let mut provider = rustls::crypto::ring::default_provider();
        provider.cipher_suites.retain(|s| s.suite() == suite);
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(server_ca.pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let c = client_over(&p, Arc::new(cfg));
        assert_eq!(try_health(&c).await.is_ok(), ok, "{suite:?}");
    }
    // Plain HTTP to the TLS port fails.
    assert!(try_health(&p.client()).await.is_err());
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_accepts_only_the_configured_subject_chained_to_the_configured_ca() {
    let (p, server_ca, client_ca, _dir) = tls_proxy(true).await;
    // Accepted: CN=cks.kms.<region>.amazonaws.com from the configured CA.
    let (cert, key) = issue(&client_ca, KMS_CN, &[], true);
    let good = client_over(&p, client_tls(&server_ca.pem, Some((&cert, &key))));
    try_health(&good).await.unwrap().assert_ok();
    let e = good.encrypt("foo", b"mtls", None, false).await;
    e.assert_ok();
    good.decrypt_response("foo", &e.body, None)
        .await
        .assert_ok();

    // Rejected: no certificate; another subject; the right subject from another CA; another
    // region's subject; an expired certificate; a self-signed one.
    let other_ca = new_ca("someone else's CA");
    let (c1, k1) = issue(&client_ca, "client.example.com", &[], true);
    let (c2, k2) = issue(&other_ca, KMS_CN, &[], true);
    let (c3, k3) = issue(&client_ca, "cks.kms.eu-west-1.amazonaws.com", &[], true);
    let expired = {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, KMS_CN);
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &client_ca.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let self_signed = {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, KMS_CN);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let cases: Vec<(&str, Option<(String, String)>)> = vec![
        ("no client certificate", None),
        ("wrong subject", Some((c1, k1))),
        ("wrong CA", Some((c2, k2))),
        ("other region", Some((c3, k3))),
        ("expired", Some(expired)),
        ("self-signed", Some(self_signed)),
    ];
    for (what, client) in cases {
        let cfg = client_tls(
            &server_ca.pem,
            client.as_ref().map(|(c, k)| (c.as_str(), k.as_str())),
        );
        let c = client_over(&p, cfg);
        let r = try_health(&c).await;
        let err = r.err().unwrap_or_else(|| panic!("{what}: accepted"));
        assert!(!err.is_empty());
        // The server ends the handshake with an alert: handshake_failure for a rejected
        // certificate (what the AWS test client looks for), certificate_required for none.
        let alert = tls_alert(&p, c.transport.clone()).await;
        let expected = if what == "no client certificate" {
            "CertificateRequired"
        } else {
            "HandshakeFailure"
        };
        assert!(alert.contains(expected), "{what}: {alert}");
    }
    // The accepted client still works afterwards.
    try_health(&good).await.unwrap().assert_ok();
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_certificate_is_reloaded_without_a_restart() {
    let (p, server_ca, _, dir) = tls_proxy(false).await;
    let old = client_over(&p, client_tls(&server_ca.pem, None));
    try_health(&old).await.unwrap().assert_ok();
    // Rotate the server certificate to one from a new CA and reload.
    let new_ca_ = new_ca("rotated server CA");
    let files = tls_files(dir.path(), &new_ca_, None);
    let mut opts = p.opts.clone();
    opts.tls = Some(files);
    p.rewrite(&opts.toml());
    let new = client_over(&p, client_tls(&new_ca_.pem, None));
    try_health(&new).await.unwrap().assert_ok();
    assert!(try_health(&old).await.is_err());
    p.stop().await;
}
