//! End to end: the real `aws-sdk-kms` client -> our KMS -> our xks-proxy over TLS (SigV4,
//! `kms-xks-proxy`) -> SoftHSM. Store create/connect/update/disconnect/delete, key creation,
//! every crypto operation with encryption context binding, and a ciphertext of one KMS key
//! failing under another KMS key that uses the same external key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[path = "../xks-proxy/tests/common/mod.rs"]
mod common;

use std::sync::Arc;

use aws_credential_types::Credentials;
use aws_sdk_kms::config::{BehaviorVersion, Region};
use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    ConnectionStateType, CustomKeyStoreType, KeyState, OriginType,
    XksProxyAuthenticationCredentialType, XksProxyConnectivityType,
};
use common::*;

/// An in-process KMS trusting `ca_pem` for proxies; returns its SDK client.
async fn kms(
    dir: &std::path::Path,
    ca_pem: &str,
) -> (aws_sdk_kms::Client, tokio::sync::oneshot::Sender<()>) {
    kms_with(dir, ca_pem, "").await
}

/// Like [`kms`], with extra lines for the `[xks]` section.
async fn kms_with(
    dir: &std::path::Path,
    ca_pem: &str,
    xks_extra: &str,
) -> (aws_sdk_kms::Client, tokio::sync::oneshot::Sender<()>) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_pem).unwrap();
    let cfg = dir.join("kms.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = '127.0.0.1:0'\ndata_dir = '{}'\n[xks]\nallowed_proxy_networks = ['127.0.0.1', '::1']\nca_file = '{}'\n{xks_extra}\n",
            dir.join("data").display(),
            dir.join("ca.pem").display()
        ),
    )
    .unwrap();
    let config = kms::config::load(Some(&cfg), Vec::new()).unwrap();
    let app = kms::app::build(&config, Arc::new(kms::service::clock::SystemClock))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = kms::api::server::listener(
        listener,
        kms::api::router(app.state.clone()),
        &config,
        app.state.service.metrics(),
    )
    .unwrap();
    tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(format!("http://{addr}"))
        .credentials_provider(Credentials::new(
            kms::config::DEV_ACCESS_KEY_ID,
            kms::config::DEV_SECRET_ACCESS_KEY,
            None,
            None,
            "test",
        ))
        .build();
    (aws_sdk_kms::Client::from_conf(conf), tx)
}

fn cred(akid: &str, secret: &str) -> XksProxyAuthenticationCredentialType {
    XksProxyAuthenticationCredentialType::builder()
        .access_key_id(akid)
        .raw_secret_access_key(secret)
        .build()
        .unwrap()
}

async fn store_and_key(
    client: &aws_sdk_kms::Client,
    port: u16,
    name: &str,
    ext_id: &str,
) -> (String, String) {
    let store = client
        .create_custom_key_store()
        .custom_key_store_name(name)
        .custom_key_store_type(CustomKeyStoreType::ExternalKeyStore)
        .xks_proxy_uri_endpoint(format!("https://localhost:{port}"))
        .xks_proxy_uri_path(format!("/{PREFIX}/kms/xks/v1"))
        .xks_proxy_connectivity(XksProxyConnectivityType::PublicEndpoint)
        .xks_proxy_authentication_credential(cred(AKID_1, SECRET_1))
        .send()
        .await
        .unwrap()
        .custom_key_store_id
        .unwrap();
    client
        .connect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
    let d = client
        .describe_custom_key_stores()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
    assert_eq!(
        d.custom_key_stores()[0].connection_state(),
        Some(&ConnectionStateType::Connected)
    );
    let key = client
        .create_key()
        .origin(OriginType::ExternalKeyStore)
        .custom_key_store_id(&store)
        .xks_key_id(ext_id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(key.xks_key_configuration().unwrap().id(), Some(ext_id));
    (store, key.key_id)
}

#[tokio::test]
async fn aws_sdk_to_kms_to_xks_proxy_to_softhsm() {
    let token = shared_token();
    let label = unique("e2e");
    create_key(&token, &label);
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca("e2e proxy CA");
    let mut opts = ProxyOptions::new(&token).key("e2e-ext-1", &label);
    opts.tls = Some(tls_files(dir.path(), &ca, None));
    let proxy = TestProxy::start(opts).await;
    let port = proxy.addr().port();

    let (kms1, _stop1) = kms(&dir.path().join("kms1"), &ca.pem).await;
    let (store, key) = store_and_key(&kms1, port, "e2e", "e2e-ext-1").await;

    // Every crypto operation, with encryption context binding.
    let enc = kms1
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"through the proxy to the HSM".to_vec()))
        .encryption_context("app", "e2e")
        .send()
        .await
        .unwrap();
    let blob = enc.ciphertext_blob.unwrap();
    let pt = kms1
        .decrypt()
        .ciphertext_blob(blob.clone())
        .encryption_context("app", "e2e")
        .send()
        .await
        .unwrap();
    assert_eq!(
        pt.plaintext.unwrap().as_ref(),
        b"through the proxy to the HSM"
    );
    let e = kms1
        .decrypt()
        .ciphertext_blob(blob.clone())
        .encryption_context("app", "other")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("KMSInvalidStateException"));
    let dk = kms1
        .generate_data_key()
        .key_id(&key)
        .number_of_bytes(32)
        .send()
        .await
        .unwrap();
    let back = kms1
        .decrypt()
        .ciphertext_blob(dk.ciphertext_blob.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        back.plaintext.unwrap().as_ref(),
        dk.plaintext.unwrap().as_ref()
    );
    let wp = kms1
        .generate_data_key_without_plaintext()
        .key_id(&key)
        .number_of_bytes(16)
        .send()
        .await
        .unwrap();
    assert_eq!(
        kms1.decrypt()
            .ciphertext_blob(wp.ciphertext_blob.unwrap())
            .send()
            .await
            .unwrap()
            .plaintext
            .unwrap()
            .as_ref()
            .len(),
        16
    );
    let other = kms1
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let re = kms1
        .re_encrypt()
        .ciphertext_blob(blob.clone())
        .source_encryption_context("app", "e2e")
        .destination_key_id(&other)
        .send()
        .await
        .unwrap();
    let back = kms1
        .re_encrypt()
        .ciphertext_blob(re.ciphertext_blob.unwrap())
        .destination_key_id(&key)
        .send()
        .await
        .unwrap();
    let pt = kms1
        .decrypt()
        .ciphertext_blob(back.ciphertext_blob.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        pt.plaintext.unwrap().as_ref(),
        b"through the proxy to the HSM"
    );

    // Another KMS key on the same external key (a second KMS) cannot decrypt the first's blob.
    let (kms2, _stop2) = kms(&dir.path().join("kms2"), &ca.pem).await;
    let (_store2, key2) = store_and_key(&kms2, port, "e2e-2", "e2e-ext-1").await;
    let e = kms2
        .decrypt()
        .ciphertext_blob(blob.clone())
        .encryption_context("app", "e2e")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidCiphertextException"));
    let e = kms2
        .decrypt()
        .key_id(&key2)
        .ciphertext_blob(blob.clone())
        .encryption_context("app", "e2e")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("IncorrectKeyException"));
    let mut forged = blob.clone().into_inner();
    forged[2..38].copy_from_slice(key2.as_bytes());
    let e = kms2
        .decrypt()
        .ciphertext_blob(Blob::new(forged))
        .encryption_context("app", "e2e")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some("KMSInvalidStateException"),
        "{:?}",
        e.message()
    );

    // Rotate the proxy credential (the proxy accepts two) while connected.
    kms1.update_custom_key_store()
        .custom_key_store_id(&store)
        .xks_proxy_authentication_credential(cred(AKID_2, SECRET_2))
        .send()
        .await
        .unwrap();
    let pt = kms1
        .decrypt()
        .ciphertext_blob(blob.clone())
        .encryption_context("app", "e2e")
        .send()
        .await
        .unwrap();
    assert_eq!(
        pt.plaintext.unwrap().as_ref(),
        b"through the proxy to the HSM"
    );
    let e = kms1
        .update_custom_key_store()
        .custom_key_store_id(&store)
        .xks_proxy_authentication_credential(cred("AKIAXKSPROXYUNKNOWN2", SECRET_1))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some("XksProxyIncorrectAuthenticationCredentialException")
    );

    // Disconnect: Unavailable; then delete the key and the store.
    kms1.disconnect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
    let d = kms1
        .describe_key()
        .key_id(&key)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(d.key_state(), Some(&KeyState::Unavailable));
    let e = kms1
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(vec![1]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("KMSInvalidStateException"));
    let e = kms1
        .delete_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("CustomKeyStoreHasCMKsException"));
    // The same endpoint and path cannot back a second store of the same KMS.
    let e = kms1
        .create_custom_key_store()
        .custom_key_store_name("spare")
        .custom_key_store_type(CustomKeyStoreType::ExternalKeyStore)
        .xks_proxy_uri_endpoint(format!("https://localhost:{port}"))
        .xks_proxy_uri_path(format!("/{PREFIX}/kms/xks/v1"))
        .xks_proxy_connectivity(XksProxyConnectivityType::PublicEndpoint)
        .xks_proxy_authentication_credential(cred(AKID_1, SECRET_1))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("XksProxyUriInUseException"));
    proxy.stop().await;
}

#[tokio::test]
async fn store_without_keys_is_deleted() {
    let token = shared_token();
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca("delete CA");
    let mut opts = ProxyOptions::new(&token);
    opts.tls = Some(tls_files(dir.path(), &ca, None));
    let proxy = TestProxy::start(opts).await;
    let port = proxy.addr().port();
    let (kms1, _stop) = kms(&dir.path().join("kms"), &ca.pem).await;
    let store = kms1
        .create_custom_key_store()
        .custom_key_store_name("to-delete")
        .custom_key_store_type(CustomKeyStoreType::ExternalKeyStore)
        .xks_proxy_uri_endpoint(format!("https://localhost:{port}"))
        .xks_proxy_uri_path(format!("/{PREFIX}/kms/xks/v1"))
        .xks_proxy_connectivity(XksProxyConnectivityType::PublicEndpoint)
        .xks_proxy_authentication_credential(cred(AKID_1, SECRET_1))
        .send()
        .await
        .unwrap()
        .custom_key_store_id
        .unwrap();
    kms1.connect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
    let e = kms1
        .delete_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("CustomKeyStoreInvalidStateException"));
    kms1.disconnect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
    kms1.delete_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
    let e = kms1
        .describe_custom_key_stores()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("CustomKeyStoreNotFoundException"));
    proxy.stop().await;
}

#[tokio::test]
async fn kms_presents_its_client_certificate_to_an_mtls_proxy() {
    let token = shared_token();
    let label = unique("mtls");
    create_key(&token, &label);
    let dir = tempfile::tempdir().unwrap();
    let server_ca = new_ca("mtls server CA");
    let client_ca = new_ca("mtls client CA");
    let mut opts = ProxyOptions::new(&token).key("mtls-ext", &label);
    opts.tls = Some(tls_files(dir.path(), &server_ca, Some(&client_ca)));
    let proxy = TestProxy::start(opts).await;
    let port = proxy.addr().port();

    // Without a client certificate the proxy ends the TLS handshake.
    let (plain, _s1) = kms(&dir.path().join("kms-plain"), &server_ca.pem).await;
    let e = plain
        .create_custom_key_store()
        .custom_key_store_name("mtls")
        .custom_key_store_type(CustomKeyStoreType::ExternalKeyStore)
        .xks_proxy_uri_endpoint(format!("https://localhost:{port}"))
        .xks_proxy_uri_path(format!("/{PREFIX}/kms/xks/v1"))
        .xks_proxy_connectivity(XksProxyConnectivityType::PublicEndpoint)
        .xks_proxy_authentication_credential(cred(AKID_1, SECRET_1))
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(
            e.code(),
            Some("XksProxyInvalidConfigurationException" | "XksProxyUriUnreachableException")
        ),
        "{:?}",
        e.code()
    );

    // With a cks.kms.<region>.amazonaws.com certificate from the configured CA it works.
    let (cert, key) = issue(&client_ca, "cks.kms.us-east-1.amazonaws.com", &[], true);
    let kdir = dir.path().join("kms-mtls");
    std::fs::create_dir_all(&kdir).unwrap();
    std::fs::write(kdir.join("client.pem"), cert).unwrap();
    std::fs::write(kdir.join("client.key"), key).unwrap();
    let extra = format!(
        "client_cert = '{}'\nclient_key = '{}'",
        kdir.join("client.pem").display(),
        kdir.join("client.key").display()
    );
    let (mtls, _s2) = kms_with(&kdir, &server_ca.pem, &extra).await;
    let (_store, k) = store_and_key(&mtls, port, "mtls", "mtls-ext").await;
    let ct = mtls
        .encrypt()
        .key_id(&k)
        .plaintext(Blob::new(b"mtls".to_vec()))
        .send()
        .await
        .unwrap();
    let pt = mtls
        .decrypt()
        .ciphertext_blob(ct.ciphertext_blob.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(pt.plaintext.unwrap().as_ref(), b"mtls");
    proxy.stop().await;
}
