//! External key stores end to end with the real `aws-sdk-kms` client: KMS -> an XKS proxy over
//! TLS with SigV4 (a recording test proxy that shows exactly what the KMS sends), double
//! encryption, store lifecycle, key creation, every crypto operation, encryption context
//! binding, and the fault cases (proxy down, slow, each error name, wrong credential, untrusted
//! certificate) with their exceptions, messages and connection error codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    ConnectionStateType, CustomKeyStoreType, KeyState, OriginType,
    XksProxyAuthenticationCredentialType, XksProxyConnectivityType,
};
use base64::Engine;
use common::xks_test_proxy::{TestProxy, AKID, SECRET};
use common::{code, message, TestServer};

fn cred(akid: &str, secret: &str) -> XksProxyAuthenticationCredentialType {
    XksProxyAuthenticationCredentialType::builder()
        .access_key_id(akid)
        .raw_secret_access_key(secret)
        .build()
        .unwrap()
}

async fn server_trusting(ca_pem: &str) -> TestServer {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("xks-ca-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    TestServer::start_with_config(
        &format!(
            // The metrics tests here look at each store's own series.
            "[xks]\nallowed_proxy_networks = ['127.0.0.1', '::1']\nca_file = '{}'\nmetrics_per_store = true\n",
            ca.display()
        ),
        common::backend_env(),
    )
    .await
}

async fn create_store(
    kms: &aws_sdk_kms::Client,
    proxy: &TestProxy,
    name: &str,
    path: &str,
) -> String {
    kms.create_custom_key_store()
        .custom_key_store_name(name)
        .custom_key_store_type(CustomKeyStoreType::ExternalKeyStore)
        .xks_proxy_uri_endpoint(proxy.endpoint())
        .xks_proxy_uri_path(path)
        .xks_proxy_connectivity(XksProxyConnectivityType::PublicEndpoint)
        .xks_proxy_authentication_credential(cred(AKID, SECRET))
        .send()
        .await
        .unwrap()
        .custom_key_store_id
        .unwrap()
}

async fn state(kms: &aws_sdk_kms::Client, id: &str) -> (ConnectionStateType, Option<String>) {
    let d = kms
        .describe_custom_key_stores()
        .custom_key_store_id(id)
        .send()
        .await
        .unwrap();
    let s = &d.custom_key_stores()[0];
    (
        s.connection_state().unwrap().clone(),
        s.connection_error_code().map(|c| c.as_str().to_string()),
    )
}

async fn connected_key(kms: &aws_sdk_kms::Client, store: &str, xks_key: &str) -> String {
    kms.connect_custom_key_store()
        .custom_key_store_id(store)
        .send()
        .await
        .unwrap();
    assert_eq!(state(kms, store).await.0, ConnectionStateType::Connected);
    kms.create_key()
        .origin(OriginType::ExternalKeyStore)
        .custom_key_store_id(store)
        .xks_key_id(xks_key)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id
}

#[tokio::test]
async fn double_encryption_end_to_end() {
    let proxy = TestProxy::start().await;
    let srv = server_trusting(&proxy.ca_pem).await;
    let kms = srv.client();
    let store = create_store(&kms, &proxy, "xks-1", "/kms/xks/v1").await;

    let d = kms
        .describe_custom_key_stores()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
    let s = &d.custom_key_stores()[0];
    assert_eq!(
        s.custom_key_store_type(),
        Some(&CustomKeyStoreType::ExternalKeyStore)
    );
    assert_eq!(
        s.connection_state(),
        Some(&ConnectionStateType::Disconnected)
    );
    let cfg = s.xks_proxy_configuration().unwrap();
    assert_eq!(cfg.access_key_id(), Some(AKID));
    assert_eq!(cfg.uri_endpoint(), Some(proxy.endpoint().as_str()));
    assert_eq!(cfg.uri_path(), Some("/kms/xks/v1"));
    let raw = format!("{d:?}");
    assert!(
        !raw.contains(SECRET),
        "DescribeCustomKeyStores leaked the secret"
    );

    // Keys cannot be created while disconnected.
    let e = kms
        .create_key()
        .origin(OriginType::ExternalKeyStore)
        .custom_key_store_id(&store)
        .xks_key_id("k1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CustomKeyStoreInvalidStateException");

    let key = connected_key(&kms, &store, "k1").await;
    let meta = kms
        .describe_key()
        .key_id(&key)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(meta.origin(), Some(&OriginType::ExternalKeyStore));
    assert_eq!(meta.custom_key_store_id(), Some(store.as_str()));
    assert_eq!(meta.xks_key_configuration().unwrap().id(), Some("k1"));
    // One KMS key per external key in a store; unknown external keys are rejected.
    let e = kms
        .create_key()
        .origin(OriginType::ExternalKeyStore)
        .custom_key_store_id(&store)
        .xks_key_id("k1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "XksKeyAlreadyInUseException");
    let e = kms
        .create_key()
        .origin(OriginType::ExternalKeyStore)
        .custom_key_store_id(&store)
        .xks_key_id("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "XksKeyNotFoundException");
    proxy.state.disabled.lock().unwrap().push("k3".into());
    let e = kms
        .create_key()
        .origin(OriginType::ExternalKeyStore)
        .custom_key_store_id(&store)
        .xks_key_id("k3")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "XksKeyInvalidConfigurationException");
    assert_eq!(message(&e), "The external key status must be ENABLED. The status of the specified external key is DISABLED.");

    // Every crypto operation.
    let secret_text = b"the proxy must never see this".to_vec();
    let enc = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(secret_text.clone()))
        .encryption_context("purpose", "xks")
        .send()
        .await
        .unwrap();
    let enc_request_id = aws_sdk_kms::operation::RequestId::request_id(&enc)
        .unwrap()
        .to_string();
    let blob = enc.ciphertext_blob.unwrap();
    let pt = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .encryption_context("purpose", "xks")
        .send()
        .await
        .unwrap();
    assert_eq!(pt.plaintext.unwrap().as_ref(), secret_text.as_slice());
    let e = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .encryption_context("purpose", "other")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "KMSInvalidStateException");
    assert!(
        message(&e).contains("ciphertext or additional authenticated data is corrupted"),
        "{}",
        message(&e)
    );
    let dk = kms
        .generate_data_key()
        .key_id(&key)
        .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    let data_key = dk.plaintext.unwrap().into_inner();
    let back = kms
        .decrypt()
        .ciphertext_blob(dk.ciphertext_blob.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(back.plaintext.unwrap().as_ref(), data_key.as_slice());
    let wp = kms
        .generate_data_key_without_plaintext()
        .key_id(&key)
        .number_of_bytes(24)
        .send()
        .await
        .unwrap();
    let back = kms
        .decrypt()
        .ciphertext_blob(wp.ciphertext_blob.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(back.plaintext.unwrap().as_ref().len(), 24);
    let default_key = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let re = kms
        .re_encrypt()
        .ciphertext_blob(blob.clone())
        .source_encryption_context("purpose", "xks")
        .destination_key_id(&default_key)
        .send()
        .await
        .unwrap();
    let re_back = kms
        .re_encrypt()
        .ciphertext_blob(re.ciphertext_blob.unwrap())
        .destination_key_id(&key)
        .destination_encryption_context("again", "yes")
        .send()
        .await
        .unwrap();
    let pt = kms
        .decrypt()
        .ciphertext_blob(re_back.ciphertext_blob.unwrap())
        .encryption_context("again", "yes")
        .send()
        .await
        .unwrap();
    assert_eq!(pt.plaintext.unwrap().as_ref(), secret_text.as_slice());

    // Another KMS key on the same external key (another store on the same proxy) cannot decrypt.
    let store2 = create_store(&kms, &proxy, "xks-2", "/tenant2/kms/xks/v1").await;
    let key2 = connected_key(&kms, &store2, "k1").await;
    let e = kms
        .decrypt()
        .key_id(&key2)
        .ciphertext_blob(blob.clone())
        .encryption_context("purpose", "xks")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "IncorrectKeyException");
    // Rewriting the blob's key id to key2 does not help either.
    let mut forged = blob.clone().into_inner();
    forged[2..38].copy_from_slice(key2.as_bytes());
    let e = kms
        .decrypt()
        .ciphertext_blob(Blob::new(forged))
        .encryption_context("purpose", "xks")
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(
            code(&e).as_str(),
            "KMSInvalidStateException" | "InvalidCiphertextException"
        ),
        "{}",
        code(&e)
    );

    // What the proxy saw: request metadata, never plaintext or data keys.
    let text = proxy.all_request_text();
    let b64 = base64::engine::general_purpose::STANDARD;
    for secret in [secret_text.as_slice(), data_key.as_slice()] {
        assert!(
            !text.contains(&b64.encode(secret)),
            "a plaintext reached the proxy"
        );
        for shift in 1..3 {
            let enc = b64.encode(&secret[shift..]);
            assert!(
                !text.contains(&enc[4..enc.len() - 4]),
                "a plaintext reached the proxy"
            );
        }
    }
    assert!(!text.contains("the proxy must never see this"));
    let reqs = proxy.state.requests.lock().unwrap().clone();
    let enc_call = reqs
        .iter()
        .find(|(p, b)| {
            p.ends_with("/keys/k1/encrypt")
                && b["requestMetadata"]["kmsRequestId"] == enc_request_id.as_str()
        })
        .expect("the Encrypt call carries the KMS request id");
    let md = &enc_call.1["requestMetadata"];
    assert_eq!(md["kmsOperation"], "Encrypt");
    assert_eq!(
        md["awsPrincipalArn"],
        "arn:aws:iam::111122223333:user/alice"
    );
    assert_eq!(md["kmsKeyArn"], meta.arn().unwrap());
    assert!(reqs.iter().any(|(p, b)| p.ends_with("/health")
        && b["requestMetadata"]["kmsOperation"] == "ConnectCustomKeyStore"));
    assert!(reqs.iter().any(|(p, b)| p.ends_with("/keys/k1/metadata")
        && b["requestMetadata"]["kmsOperation"] == "CreateKey"));
    assert!(reqs
        .iter()
        .any(|(p, _)| p.starts_with("/tenant2/kms/xks/v1/")));
    // The audit record of that Encrypt names the store and has the same request id.
    let records = srv.audit_records().await;
    let rec = records
        .iter()
        .find(|r| r["eventName"] == "Encrypt" && r["requestID"] == enc_request_id.as_str())
        .expect("the Encrypt audit record");
    assert_eq!(
        rec["additionalEventData"]["customKeyStoreId"],
        store.as_str()
    );
    assert_eq!(rec["additionalEventData"]["xksKeyId"], "k1");

    // Disconnect: Unavailable; update the path while disconnected; reconnect; delete.
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
    let d = kms
        .describe_key()
        .key_id(&key)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(d.key_state(), Some(&KeyState::Unavailable));
    let e = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(vec![1]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "KMSInvalidStateException");
    kms.update_custom_key_store()
        .custom_key_store_id(&store)
        .new_custom_key_store_name("xks-1-renamed")
        .xks_proxy_authentication_credential(cred(AKID, SECRET))
        .send()
        .await
        .unwrap();
    kms.connect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
    let pt = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .encryption_context("purpose", "xks")
        .send()
        .await
        .unwrap();
    assert_eq!(pt.plaintext.unwrap().as_ref(), secret_text.as_slice());
    kms.schedule_key_deletion()
        .key_id(&key)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    srv.clock.advance(chrono::Duration::days(8));
    srv.run_maintenance().await;
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
    kms.delete_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn proxy_faults_map_to_the_reference_exceptions() {
    let mut proxy = TestProxy::start().await;
    let srv = server_trusting(&proxy.ca_pem).await;
    let kms = srv.client();

    // Wrong credential at create: the health probe is rejected.
    let e = kms
        .create_custom_key_store()
        .custom_key_store_name("bad")
        .custom_key_store_type(CustomKeyStoreType::ExternalKeyStore)
        .xks_proxy_uri_endpoint(proxy.endpoint())
        .xks_proxy_uri_path("/kms/xks/v1")
        .xks_proxy_connectivity(XksProxyConnectivityType::PublicEndpoint)
        .xks_proxy_authentication_credential(cred("ZZZZZZZZZZZZZZZZZZZZ", SECRET))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&e),
        "XksProxyIncorrectAuthenticationCredentialException"
    );
    let e = kms
        .create_custom_key_store()
        .custom_key_store_name("bad")
        .custom_key_store_type(CustomKeyStoreType::ExternalKeyStore)
        .xks_proxy_uri_endpoint("https://localhost:1")
        .xks_proxy_uri_path("/kms/xks/v1")
        .xks_proxy_connectivity(XksProxyConnectivityType::PublicEndpoint)
        .xks_proxy_authentication_credential(cred(AKID, SECRET))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "XksProxyUriUnreachableException");

    let store = create_store(&kms, &proxy, "faults", "/kms/xks/v1").await;
    let key = connected_key(&kms, &store, "k2").await;
    let default_key = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let healthy = |kms: aws_sdk_kms::Client, k: String| async move {
        kms.encrypt()
            .key_id(k)
            .plaintext(Blob::new(vec![9; 8]))
            .send()
            .await
            .unwrap();
    };

    // Each proxy error name -> KMSInvalidStateException with the cause in the message.
    let cases = [
        (400, "ValidationException", "unhealthy"),
        (
            400,
            "InvalidStateException",
            "not enabled in the external key manager",
        ),
        (
            400,
            "InvalidKeyUsageException",
            "does not support the requested operation",
        ),
        (
            401,
            "AuthenticationFailedException",
            "could not authenticate AWS KMS",
        ),
        (403, "AccessDeniedException", "denied access"),
        (
            404,
            "KeyNotFoundException",
            "could not find the external key",
        ),
        (404, "InvalidUriPathException", "invalid URI path"),
        (429, "ThrottlingException", "very high request rate"),
        (
            501,
            "UnsupportedOperationException",
            "does not support the requested cryptographic operation",
        ),
        (503, "DependencyTimeoutException", "did not respond in time"),
        (500, "InternalException", "unhealthy"),
    ];
    for (status, name, gist) in cases {
        *proxy.state.fail.lock().unwrap() = Some((status, name.to_string()));
        let e = kms
            .encrypt()
            .key_id(&key)
            .plaintext(Blob::new(vec![1; 4]))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "KMSInvalidStateException", "{name}");
        assert!(message(&e).contains(gist), "{name}: {}", message(&e));
        healthy(kms.clone(), default_key.clone()).await;
    }
    *proxy.state.fail.lock().unwrap() = None;

    // Slow proxy (> 250 ms, retried once): a timeout.
    *proxy.state.delay_ms.lock().unwrap() = 400;
    let started = std::time::Instant::now();
    let e = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(vec![1; 4]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "KMSInvalidStateException");
    assert!(
        message(&e).contains("did not respond in time"),
        "{}",
        message(&e)
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(480),
        "no retry: {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    *proxy.state.delay_ms.lock().unwrap() = 0;
    healthy(kms.clone(), default_key.clone()).await;

    // Reconnect checks: the health probe fails with each connection error code.
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
    *proxy.state.fail_health.lock().unwrap() = Some((401, "AuthenticationFailedException".into()));
    kms.connect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
    assert_eq!(
        state(&kms, &store).await,
        (
            ConnectionStateType::Failed,
            Some("INVALID_CREDENTIALS".into())
        )
    );
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
    *proxy.state.fail_health.lock().unwrap() = Some((404, "InvalidUriPathException".into()));
    kms.connect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
    assert_eq!(
        state(&kms, &store).await,
        (
            ConnectionStateType::Failed,
            Some("XKS_PROXY_INVALID_CONFIGURATION".into())
        )
    );
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
    *proxy.state.fail_health.lock().unwrap() = None;
    *proxy.state.delay_ms.lock().unwrap() = 400;
    kms.connect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
    assert_eq!(
        state(&kms, &store).await,
        (
            ConnectionStateType::Failed,
            Some("XKS_PROXY_TIMED_OUT".into())
        )
    );
    *proxy.state.delay_ms.lock().unwrap() = 0;
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
    kms.connect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
    assert_eq!(state(&kms, &store).await.0, ConnectionStateType::Connected);

    // Proxy down: crypto says KMS cannot communicate; other keys keep working.
    proxy.shutdown();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let e = kms
        .decrypt()
        .key_id(&key)
        .ciphertext_blob(Blob::new(vec![2; 200]))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        code(&e).as_str(),
        "InvalidCiphertextException" | "KMSInvalidStateException"
    ));
    let e = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(vec![1; 4]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "KMSInvalidStateException");
    assert!(
        message(&e).contains("cannot communicate with the external key store proxy"),
        "{}",
        message(&e)
    );
    healthy(kms.clone(), default_key.clone()).await;
    // The periodic health check notices the dead proxy.
    assert_eq!(srv.run_maintenance().await.unhealthy_proxies, 1);
    // Metrics: proxy latency, errors by type, key manager states, certificate and credential age.
    let text = srv.state.service.metrics().render();
    let has = |needle: &str| text.lines().any(|l| l.contains(needle));
    assert!(has(&format!("kms_xks_proxy_request_duration_seconds_count{{custom_key_store_id=\"{store}\",operation=\"Encrypt\"}}")), "{text}");
    // The ThrottlingException above was counted before the store was last disconnected, which
    // removed the store's series (a_proxy_cannot_grow_the_metrics_without_bound).
    assert!(!has(&format!("kms_xks_proxy_errors_total{{custom_key_store_id=\"{store}\",error_type=\"ThrottlingException\"}}")), "{text}");
    assert!(has(&format!("kms_xks_proxy_errors_total{{custom_key_store_id=\"{store}\",error_type=\"Unreachable\"}}")), "{text}");
    assert!(has(&format!("kms_xks_external_key_manager_state{{custom_key_store_id=\"{store}\",ekm_id=\"hsm-1\",state=\"ACTIVE\"}} 1")), "{text}");
    let days = text
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "kms_xks_proxy_certificate_days_left{{custom_key_store_id=\"{store}\"}}"
            ))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .expect("certificate days gauge");
    assert!(days > 300.0, "{days}");
    assert!(
        has(&format!(
            "kms_xks_proxy_credential_age_days{{custom_key_store_id=\"{store}\"}}"
        )),
        "{text}"
    );
    assert!(
        has("kms_requests_total{operation=\"Encrypt\",outcome=\"KMSInvalidStateException\"}"),
        "{text}"
    );
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
    kms.connect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
    assert_eq!(
        state(&kms, &store).await,
        (
            ConnectionStateType::Failed,
            Some("XKS_PROXY_NOT_REACHABLE".into())
        )
    );
}

#[tokio::test]
async fn untrusted_proxy_certificate_fails_tls() {
    let proxy = TestProxy::start().await;
    // The KMS trusts another CA.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .unwrap()
        .cert
        .pem();
    let srv = server_trusting(&other).await;
    let kms = srv.client();
    let e = kms
        .create_custom_key_store()
        .custom_key_store_name("tls")
        .custom_key_store_type(CustomKeyStoreType::ExternalKeyStore)
        .xks_proxy_uri_endpoint(proxy.endpoint())
        .xks_proxy_uri_path("/kms/xks/v1")
        .xks_proxy_connectivity(XksProxyConnectivityType::PublicEndpoint)
        .xks_proxy_authentication_credential(cred(AKID, SECRET))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "XksProxyInvalidConfigurationException");
    assert!(message(&e).contains("TLS"), "{}", message(&e));
}

#[tokio::test]
async fn per_store_quota_gives_throttling() {
    let proxy = TestProxy::start().await;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("xks-ca-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.pem"), &proxy.ca_pem).unwrap();
    let srv = TestServer::start_with_config(
        &format!(
            "[xks]\nallowed_proxy_networks = ['127.0.0.1', '::1']\nca_file = '{}'\nrequests_per_second = 5\n",
            dir.join("ca.pem").display()
        ),
        common::backend_env(),
    )
    .await;
    let kms = srv.client();
    let store = create_store(&kms, &proxy, "quota", "/kms/xks/v1").await;
    let key = connected_key(&kms, &store, "k4").await;
    let mut throttled = 0;
    for _ in 0..20 {
        match kms
            .encrypt()
            .key_id(&key)
            .plaintext(Blob::new(vec![1; 8]))
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(code(&e), "ThrottlingException");
                throttled += 1;
            }
        }
    }
    assert!(
        throttled >= 10,
        "only {throttled} of 20 throttled at 5 requests/s"
    );
}

#[tokio::test]
async fn connect_reports_an_invalid_tls_configuration() {
    let mut proxy = TestProxy::start().await;
    let port = proxy.port;
    let srv = server_trusting(&proxy.ca_pem).await;
    let kms = srv.client();
    let store = create_store(&kms, &proxy, "tls-later", "/kms/xks/v1").await;
    // The proxy is replaced, on the same endpoint, by one whose certificate the KMS does not trust.
    proxy.shutdown();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let _impostor = TestProxy::start_on(port).await;
    kms.connect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
    assert_eq!(
        state(&kms, &store).await,
        (
            ConnectionStateType::Failed,
            Some("XKS_PROXY_INVALID_TLS_CONFIGURATION".into())
        )
    );
}

/// A tenant's own proxy answering with made-up error names and an ever-changing fleet of
/// external key manager ids cannot grow the metrics registry: error names fall into the
/// specification's set plus `Other`, at most 10 well-formed ids of the last report are
/// labelled, and the store's series go when it is disconnected.
#[tokio::test]
async fn a_proxy_cannot_grow_the_metrics_without_bound() {
    let proxy = TestProxy::start().await;
    let srv = server_trusting(&proxy.ca_pem).await;
    let kms = srv.client();
    let store = create_store(&kms, &proxy, "noisy", "/kms/xks/v1").await;
    let key = connected_key(&kms, &store, "k1").await;
    let series = |srv: &TestServer, family: &str| -> Vec<String> {
        srv.state
            .service
            .metrics()
            .render()
            .lines()
            .filter(|l| l.starts_with(family) && l.contains(&store))
            .map(str::to_string)
            .collect()
    };
    for round in 0..5 {
        // 40 fresh ids per report, some of them not label material at all.
        let fleet: Vec<serde_json::Value> = (0..40)
            .map(|i| {
                let id = match i % 4 {
                    0 => format!("ekm-{round}-{i}\"}} 1\nfake_metric{{a=\"b"),
                    1 => "x".repeat(200 + i),
                    _ => format!("ekm-{round}-{i}"),
                };
                serde_json::json!({"id": id, "model": "m", "healthStatus": "ACTIVE"})
            })
            .collect();
        *proxy.state.fleet.lock().unwrap() = Some(serde_json::Value::Array(fleet));
        srv.run_maintenance().await;
        // Error names nobody specified.
        for i in 0..10 {
            *proxy.state.fail.lock().unwrap() = Some((500, format!("Made{round}Up{i}Exception")));
            let e = kms
                .encrypt()
                .key_id(&key)
                .plaintext(Blob::new(vec![1; 8]))
                .send()
                .await
                .unwrap_err();
            assert_eq!(code(&e), "KMSInvalidStateException");
        }
        *proxy.state.fail.lock().unwrap() = None;
    }
    let ekm = series(&srv, "kms_xks_external_key_manager_state");
    // The last report's first 10 usable ids, three states each.
    assert_eq!(ekm.len(), 30, "{ekm:#?}");
    assert!(
        ekm.iter().all(|l| l.contains("ekm_id=\"ekm-4-")),
        "{ekm:#?}"
    );
    assert!(
        !srv.state.service.metrics().render().contains("fake_metric"),
        "an id that is not label material was labelled"
    );
    let errors = series(&srv, "kms_xks_proxy_errors_total");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains("error_type=\"Other\"} 50"),
        "{errors:#?}"
    );
    // Disconnect removes every series of the store.
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
    let left: Vec<String> = srv
        .state
        .service
        .metrics()
        .render()
        .lines()
        .filter(|l| l.contains(&store))
        .map(str::to_string)
        .collect();
    assert!(left.is_empty(), "{left:#?}");
}

/// Without `[xks] metrics_per_store`, `GET /metrics` names no custom key store (a tenant's
/// identifier) and no external key manager id: the external key store series are aggregates.
#[tokio::test]
async fn metrics_name_no_custom_key_store_unless_the_operator_asks() {
    let proxy = TestProxy::start().await;
    let srv = server_with_xks(
        &proxy.ca_pem,
        "allowed_proxy_networks = ['127.0.0.1', '::1']",
    )
    .await;
    let kms = srv.client();
    let store = create_store(&kms, &proxy, "private", "/kms/xks/v1").await;
    let key = connected_key(&kms, &store, "k1").await;
    kms.encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"counted".to_vec()))
        .send()
        .await
        .unwrap();
    *proxy.state.fail.lock().unwrap() = Some((500, "InternalException".into()));
    kms.encrypt()
        .key_id(&key)
        .plaintext(Blob::new(vec![1; 8]))
        .send()
        .await
        .unwrap_err();
    *proxy.state.fail.lock().unwrap() = None;
    srv.run_maintenance().await;

    // Scraped as an operator's Prometheus would, from the metrics listener.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", l.local_addr().unwrap());
    let metrics = serve::Server::new(l, kms::api::metrics_router(srv.state.service.clone()));
    tokio::spawn(metrics.run(std::future::pending()));
    let scrape = || async {
        let (status, _, body) =
            common::raw_request(&endpoint, "GET", "/metrics", &[], vec![]).await;
        assert_eq!(status, 200);
        String::from_utf8(body.to_vec()).unwrap()
    };
    let text = scrape().await;
    for tenant_text in [store.as_str(), "custom_key_store_id", "hsm-1", "ekm_id"] {
        assert!(!text.contains(tenant_text), "{tenant_text} in {text}");
    }
    let value = |text: &str, series: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    };
    assert_eq!(
        value(
            &text,
            "kms_xks_proxy_request_duration_seconds_count{operation=\"Encrypt\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "kms_xks_proxy_errors_total{error_type=\"InternalException\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "kms_xks_external_key_managers{state=\"ACTIVE\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "kms_xks_external_key_managers{state=\"UNAVAILABLE\"}"
        ),
        Some(0.0),
        "{text}"
    );
    let days = value(&text, "kms_xks_proxy_certificate_days_left").expect("certificate gauge");
    assert!(days > 300.0, "{days}");
    assert!(
        value(&text, "kms_xks_proxy_credential_age_days").is_some(),
        "{text}"
    );
    // Disconnected, the store leaves the aggregates; the counters keep their history.
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
    let text = scrape().await;
    assert_eq!(
        value(&text, "kms_xks_external_key_managers{state=\"ACTIVE\"}"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "kms_xks_proxy_certificate_days_left"),
        None,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "kms_xks_proxy_errors_total{error_type=\"InternalException\"}"
        ),
        Some(1.0),
        "{text}"
    );
}

async fn server_with_xks(ca_pem: &str, xks_extra: &str) -> TestServer {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("xks-ca-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    TestServer::start_with_config(
        &format!("[xks]\nca_file = '{}'\n{xks_extra}\n", ca.display()),
        common::backend_env(),
    )
    .await
}

async fn try_create(
    kms: &aws_sdk_kms::Client,
    name: &str,
    endpoint: &str,
) -> Result<String, (String, String)> {
    kms.create_custom_key_store()
        .custom_key_store_name(name)
        .custom_key_store_type(CustomKeyStoreType::ExternalKeyStore)
        .xks_proxy_uri_endpoint(endpoint)
        .xks_proxy_uri_path("/kms/xks/v1")
        .xks_proxy_connectivity(XksProxyConnectivityType::PublicEndpoint)
        .xks_proxy_authentication_credential(cred(AKID, SECRET))
        .send()
        .await
        .map(|o| o.custom_key_store_id.unwrap())
        .map_err(|e| (code(&e), message(&e)))
}

/// `XksProxyUriEndpoint` is tenant input: by default the KMS refuses endpoints that resolve to
/// loopback, link-local (the metadata service), unspecified or multicast addresses, before
/// any connection is made, and connects to loopback only when the operator allows it.
#[tokio::test]
async fn proxy_endpoints_on_internal_addresses_are_refused_without_traffic() {
    let proxy = TestProxy::start().await;
    // A listener that must never see a connection.
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let trap_port = trap.local_addr().unwrap().port();
    let srv = server_with_xks(&proxy.ca_pem, "").await;
    let kms = srv.client();
    for (endpoint, kind) in [
        (proxy.endpoint(), "a loopback address"),
        (
            format!("https://localhost:{trap_port}"),
            "a loopback address",
        ),
        (
            format!("https://127.0.0.1:{trap_port}"),
            "a loopback address",
        ),
        (
            format!("https://0.0.0.0:{trap_port}"),
            "an unspecified address",
        ),
        // Metadata, link-local and multicast addresses are refused by the same check; they are
        // covered by `backend::xks::endpoint`'s unit tests, not here, so that even a regressed
        // check cannot make this test send a packet off the host.
    ] {
        let (c, m) = try_create(&kms, "internal", &endpoint).await.unwrap_err();
        assert_eq!(
            c, "XksProxyInvalidConfigurationException",
            "{endpoint}: {m}"
        );
        assert!(m.contains(kind), "{endpoint}: {m}");
    }
    assert!(proxy.state.requests.lock().unwrap().is_empty());
    let nothing = tokio::time::timeout(std::time::Duration::from_millis(200), trap.accept()).await;
    assert!(nothing.is_err(), "a refused endpoint was connected to");

    // The operator's allow-list admits exactly what it names.
    let srv = server_with_xks(
        &proxy.ca_pem,
        "allowed_proxy_networks = ['127.0.0.1', '::1']",
    )
    .await;
    let kms = srv.client();
    assert!(try_create(&kms, "allowed", &proxy.endpoint()).await.is_ok());
    let (c, m) = try_create(
        &kms,
        "other-loopback",
        &format!("https://127.0.0.2:{trap_port}"),
    )
    .await
    .unwrap_err();
    assert_eq!(c, "XksProxyInvalidConfigurationException", "{m}");
    let nothing = tokio::time::timeout(std::time::Duration::from_millis(200), trap.accept()).await;
    assert!(nothing.is_err(), "a refused endpoint was connected to");
}

/// Create and update probes are rate-limited per account, so the probe cannot scan ports.
#[tokio::test]
async fn proxy_probes_are_rate_limited_per_account() {
    let proxy = TestProxy::start().await;
    let srv = server_with_xks(
        &proxy.ca_pem,
        "allowed_proxy_networks = ['127.0.0.1', '::1']\nprobes_per_minute = 3",
    )
    .await;
    let kms = srv.client();
    for port in [1, 2, 3] {
        let (c, _) = try_create(
            &kms,
            &format!("scan{port}"),
            &format!("https://127.0.0.1:{port}"),
        )
        .await
        .unwrap_err();
        assert_eq!(c, "XksProxyUriUnreachableException");
    }
    let (c, _) = try_create(&kms, "scan4", "https://127.0.0.1:4")
        .await
        .unwrap_err();
    assert_eq!(c, "ThrottlingException");
    // Another account has its own budget.
    let other = srv.other_client();
    assert!(try_create(&other, "legit", &proxy.endpoint()).await.is_ok());
}

/// The custom key store quota per account (`[limits] custom_key_stores`, AWS default 10) with
/// AWS's LimitExceededException; another account has its own count.
#[tokio::test]
async fn custom_key_store_quota_is_configurable() {
    let proxy = TestProxy::start().await;
    let srv = server_with_xks(
        &proxy.ca_pem,
        "allowed_proxy_networks = ['127.0.0.1', '::1']\n[limits]\ncustom_key_stores = 1",
    )
    .await;
    let kms = srv.client();
    create_store(&kms, &proxy, "first", "/kms/xks/v1").await;
    let e = kms
        .create_custom_key_store()
        .custom_key_store_name("second")
        .custom_key_store_type(CustomKeyStoreType::ExternalKeyStore)
        .xks_proxy_uri_endpoint(proxy.endpoint())
        .xks_proxy_uri_path("/other/kms/xks/v1")
        .xks_proxy_connectivity(XksProxyConnectivityType::PublicEndpoint)
        .xks_proxy_authentication_credential(cred(AKID, SECRET))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (code(&e).as_str(), message(&e).as_str()),
        (
            "LimitExceededException",
            "The request was rejected because the account already has 1 custom key stores."
        )
    );
    let other = srv.other_client();
    create_store(&other, &proxy, "theirs", "/theirs/kms/xks/v1").await;
}
