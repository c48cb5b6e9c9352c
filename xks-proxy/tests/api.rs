//! The XKS API against SoftHSM: every route and method, every field, the error table, IV sizes,
//! size limits, AAD and ciphertextMetadata binding, CDIV, key usage and state, credentials,
//! authorization, metrics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{json, Value};
use xks_wire::{cdiv_sha256, ErrorName, Operation};

/// A proxy on the shared token with keys: `foo` (AES-256 enc+dec), `enc-only`, `dec-only`,
/// `neither`, `off` (disabled), `aes128`, `dup` (two objects with one label), `gone` (no object).
async fn proxy_with(extra: &str, keystore_extra: &str) -> (TestProxy, Keys) {
    let token = shared_token();
    let k = Keys {
        foo: unique("foo"),
        enc_only: unique("enc-only"),
        dec_only: unique("dec-only"),
        neither: unique("neither"),
        off: unique("off"),
        aes128: unique("aes128"),
        dup: unique("dup"),
    };
    create_key(&token, &k.foo);
    create_key_with(&token, &k.enc_only, 32, true, false);
    create_key_with(&token, &k.dec_only, 32, false, true);
    create_key_with(&token, &k.neither, 32, false, false);
    create_key(&token, &k.off);
    create_key_with(&token, &k.aes128, 16, true, true);
    create_key(&token, &k.dup);
    create_key(&token, &k.dup);
    let mut opts = ProxyOptions::new(&token)
        .key("foo", &k.foo)
        .key("enc-only", &k.enc_only)
        .key("dec-only", &k.dec_only)
        .key("neither", &k.neither)
        .disabled_key("off", &k.off)
        .key("aes128", &k.aes128)
        .key("dup", &k.dup)
        .key("gone", &unique("never-created"));
    opts.extra = extra.to_string();
    opts.keystore_extra = keystore_extra.to_string();
    (TestProxy::start(opts).await, k)
}

struct Keys {
    foo: String,
    enc_only: String,
    dec_only: String,
    neither: String,
    off: String,
    aes128: String,
    dup: String,
}

async fn proxy() -> TestProxy {
    proxy_with("", "").await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_a_deep_probe_of_each_hsm() {
    let p = proxy().await;
    let c = p.client();
    let r = c.health().await;
    r.assert_ok();
    assert_eq!(r.body["xksProxyFleetSize"], 1);
    assert!(r.body["xksProxyVendor"].as_str().unwrap().len() > 3);
    assert!(r.body["xksProxyModel"]
        .as_str()
        .unwrap()
        .starts_with("xks-proxy "));
    assert!(!r.body["ekmVendor"].as_str().unwrap().is_empty());
    let fleet = r.body["ekmFleetDetails"].as_array().unwrap();
    assert_eq!(fleet.len(), 1);
    assert_eq!(fleet[0]["id"], "softhsm-a");
    assert_eq!(fleet[0]["healthStatus"], "ACTIVE");
    assert!(fleet[0]["model"].as_str().unwrap().contains("SoftHSM"));
    assert_eq!(r.headers.get("content-type").unwrap(), "application/json");
    // Without requestMetadata, or with an empty one.
    c.call(Operation::GetHealthStatus, "", json!({}))
        .await
        .assert_error(ErrorName::ValidationException);
    c.call(
        Operation::GetHealthStatus,
        "",
        json!({"requestMetadata": {}}),
    )
    .await
    .assert_error(ErrorName::ValidationException);
    // Unknown kmsOperation values and unknown fields are accepted.
    c.call(
        Operation::GetHealthStatus,
        "",
        json!({"requestMetadata": {"kmsRequestId": "x", "kmsOperation": "SomeFutureApi", "newField": [1]}, "other": true}),
    )
    .await
    .assert_ok();
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_metadata_reads_spec_usage_and_status_from_the_hsm() {
    let p = proxy().await;
    let c = p.client();
    let r = c.metadata("foo").await;
    r.assert_ok();
    assert_eq!(
        r.body,
        json!({"keySpec": "AES_256", "keyUsage": ["ENCRYPT", "DECRYPT"], "keyStatus": "ENABLED"})
    );
    assert_eq!(
        c.metadata("enc-only").await.body["keyUsage"],
        json!(["ENCRYPT"])
    );
    assert_eq!(
        c.metadata("dec-only").await.body["keyUsage"],
        json!(["DECRYPT"])
    );
    assert_eq!(c.metadata("neither").await.body["keyUsage"], json!([]));
    assert_eq!(c.metadata("aes128").await.body["keySpec"], "AES_128");
    let off = c.metadata("off").await;
    off.assert_ok();
    assert_eq!(off.body["keyStatus"], "DISABLED");
    assert_eq!(off.body["keySpec"], "AES_256");
    // Not configured, configured but absent from the HSM, ambiguous.
    c.metadata("non_existing_key")
        .await
        .assert_error(ErrorName::KeyNotFoundException);
    c.metadata("gone")
        .await
        .assert_error(ErrorName::KeyNotFoundException);
    c.metadata("dup")
        .await
        .assert_error(ErrorName::InternalException);
    // Key id syntax and length.
    c.metadata("bad%21id")
        .await
        .assert_error(ErrorName::ValidationException);
    c.metadata(&"k".repeat(129))
        .await
        .assert_error(ErrorName::ValidationException);
    c.metadata(&"k".repeat(128))
        .await
        .assert_error(ErrorName::KeyNotFoundException);
    // requestMetadata is required, awsPrincipalArn too.
    c.call(Operation::GetKeyMetadata, "foo", json!({}))
        .await
        .assert_error(ErrorName::ValidationException);
    c.call(
        Operation::GetKeyMetadata,
        "foo",
        json!({"requestMetadata": {"kmsRequestId": "r", "kmsOperation": "CreateKey"}}),
    )
    .await
    .assert_error(ErrorName::ValidationException);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypt_decrypt_round_trip_with_12_byte_ivs() {
    let p = proxy().await;
    let c = p.client();
    let plaintext = b"Hello World!";
    let e = c
        .encrypt("foo", plaintext, Some(b"project=nile"), false)
        .await;
    e.assert_ok();
    assert_eq!(unb64(&e.body["initializationVector"]).len(), 12);
    assert_eq!(unb64(&e.body["authenticationTag"]).len(), 16);
    assert_eq!(unb64(&e.body["ciphertext"]).len(), plaintext.len());
    assert_ne!(unb64(&e.body["ciphertext"]), plaintext);
    let cm = unb64(&e.body["ciphertextMetadata"]);
    assert!(!cm.is_empty() && cm.len() <= 20);
    assert!(e.body.get("ciphertextDataIntegrityValue").is_none());
    let d = c
        .decrypt_response("foo", &e.body, Some(b"project=nile"))
        .await;
    d.assert_ok();
    assert_eq!(unb64(&d.body["plaintext"]), plaintext);
    // Empty AAD field is the same as none; two encryptions use different IVs.
    let e1 = c.encrypt("foo", plaintext, None, false).await;
    let e2 = c.encrypt("foo", plaintext, Some(b""), false).await;
    assert_ne!(
        e1.body["initializationVector"],
        e2.body["initializationVector"]
    );
    c.decrypt_response("foo", &e2.body, None).await.assert_ok();
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_byte_ivs() {
    let (p, _) = proxy_with("[crypto]\niv_length = 16\n", "").await;
    let c = p.client();
    let e = c.encrypt("foo", b"sixteen", Some(b"aad"), true).await;
    e.assert_ok();
    let iv = unb64(&e.body["initializationVector"]);
    assert_eq!(iv.len(), 16);
    let d = c.decrypt_response("foo", &e.body, Some(b"aad")).await;
    d.assert_ok();
    assert_eq!(unb64(&d.body["plaintext"]), b"sixteen");
    // The IV length is part of the ciphertext: a 12-byte prefix of it does not decrypt.
    let mut bad = e.body.clone();
    bad["initializationVector"] = json!(b64(&iv[..12]));
    c.decrypt_response("foo", &bad, Some(b"aad"))
        .await
        .assert_error(ErrorName::InvalidCiphertextException);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aad_and_ciphertext_metadata_are_bound() {
    let p = proxy().await;
    let c = p.client();
    let e = c.encrypt("foo", b"secret", Some(b"context-a"), false).await;
    e.assert_ok();
    // Missing or different AAD.
    c.decrypt_response("foo", &e.body, None)
        .await
        .assert_error(ErrorName::InvalidCiphertextException);
    c.decrypt_response("foo", &e.body, Some(b"context-b"))
        .await
        .assert_error(ErrorName::InvalidCiphertextException);
    // ciphertextMetadata dropped, changed, or passed as AAD instead (the spec's example).
    let mut no_cm = e.body.clone();
    no_cm.as_object_mut().unwrap().remove("ciphertextMetadata");
    c.decrypt_response("foo", &no_cm, Some(b"context-a"))
        .await
        .assert_error(ErrorName::InvalidCiphertextException);
    let mut other_cm = e.body.clone();
    other_cm["ciphertextMetadata"] = json!(b64(b"xkp\x02"));
    c.decrypt_response("foo", &other_cm, Some(b"context-a"))
        .await
        .assert_error(ErrorName::InvalidCiphertextException);
    let e0 = c.encrypt("foo", b"secret", None, false).await;
    let cm = unb64(&e0.body["ciphertextMetadata"]);
    let mut swapped = e0.body.clone();
    swapped
        .as_object_mut()
        .unwrap()
        .remove("ciphertextMetadata");
    c.decrypt_response("foo", &swapped, Some(&cm))
        .await
        .assert_error(ErrorName::InvalidCiphertextException);
    // Tampered ciphertext, tag, IV.
    for field in ["ciphertext", "authenticationTag", "initializationVector"] {
        let mut t = e.body.clone();
        let mut bytes = unb64(&t[field]);
        bytes[0] ^= 1;
        t[field] = json!(b64(&bytes));
        c.decrypt_response("foo", &t, Some(b"context-a"))
            .await
            .assert_error(ErrorName::InvalidCiphertextException);
    }
    // Wrong IV and tag lengths.
    let mut t = e.body.clone();
    t["initializationVector"] = json!(b64(&[0u8; 13]));
    c.decrypt_response("foo", &t, Some(b"context-a"))
        .await
        .assert_error(ErrorName::InvalidCiphertextException);
    let mut t = e.body.clone();
    t["authenticationTag"] = json!(b64(&[0u8; 12]));
    c.decrypt_response("foo", &t, Some(b"context-a"))
        .await
        .assert_error(ErrorName::InvalidCiphertextException);
    // ciphertextMetadata longer than 20 bytes.
    let mut t = e.body.clone();
    t["ciphertextMetadata"] = json!(b64(&[1u8; 21]));
    c.decrypt_response("foo", &t, Some(b"context-a"))
        .await
        .assert_error(ErrorName::ValidationException);
    // The HSM saw exactly len16(AAD) || AAD || len8(cm) || cm: a proxy without
    // ciphertextMetadata produces ciphertexts this one decrypts when given no metadata.
    p.stop().await;
    let (p2, _) = proxy_with("[crypto]\nciphertext_metadata = false\n", "").await;
    let e = p2.client().encrypt("foo", b"x", Some(b"a"), false).await;
    e.assert_ok();
    assert!(e.body.get("ciphertextMetadata").is_none());
    p2.client()
        .decrypt_response("foo", &e.body, Some(b"a"))
        .await
        .assert_ok();
    p2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ciphertext_data_integrity_value() {
    let p = proxy().await;
    let c = p.client();
    for aad in [Some(&b"project=nile,department=marketing"[..]), None] {
        let e = c.encrypt("foo", b"cdiv me", aad, true).await;
        e.assert_ok();
        let expect = cdiv_sha256(
            aad.unwrap_or(b""),
            &unb64(&e.body["ciphertextMetadata"]),
            &unb64(&e.body["initializationVector"]),
            &unb64(&e.body["ciphertext"]),
            &unb64(&e.body["authenticationTag"]),
        );
        assert_eq!(unb64(&e.body["ciphertextDataIntegrityValue"]), expect);
        c.decrypt_response("foo", &e.body, aad).await.assert_ok();
    }
    let mut body = json!({
        "requestMetadata": metadata("Encrypt"),
        "plaintext": b64(b"x"),
        "encryptionAlgorithm": "AES_GCM",
        "ciphertextDataIntegrityValueAlgorithm": "SHA_512",
    });
    c.call(Operation::Encrypt, "foo", body.clone())
        .await
        .assert_error(ErrorName::UnsupportedOperationException);
    body["ciphertextDataIntegrityValueAlgorithm"] = json!("SHA_256");
    body["encryptionAlgorithm"] = json!("AES_CBC");
    c.call(Operation::Encrypt, "foo", body.clone())
        .await
        .assert_error(ErrorName::UnsupportedOperationException);
    body.as_object_mut().unwrap().remove("encryptionAlgorithm");
    c.call(Operation::Encrypt, "foo", body)
        .await
        .assert_error(ErrorName::ValidationException);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_limits() {
    let (p, _) = proxy_with(
        "[limits]\nmax_plaintext_bytes = 4300\nmax_aad_bytes = 8192\n",
        "",
    )
    .await;
    let c = p.client();
    // The spec's minimums work.
    let pt = vec![7u8; 4300];
    let aad = vec![9u8; 8192];
    let e = c.encrypt("foo", &pt, Some(&aad), true).await;
    e.assert_ok();
    let d = c.decrypt_response("foo", &e.body, Some(&aad)).await;
    d.assert_ok();
    assert_eq!(unb64(&d.body["plaintext"]), pt);
    // One byte more than configured is "a parameter above what this implementation supports".
    c.encrypt("foo", &vec![7u8; 4301], None, false)
        .await
        .assert_error(ErrorName::UnsupportedOperationException);
    c.encrypt("foo", b"x", Some(&vec![9u8; 8193]), false)
        .await
        .assert_error(ErrorName::UnsupportedOperationException);
    let mut big = e.body.clone();
    big["ciphertext"] = json!(b64(&vec![0u8; 4301]));
    c.decrypt_response("foo", &big, Some(&aad))
        .await
        .assert_error(ErrorName::UnsupportedOperationException);
    // A body beyond any field limit.
    let huge = json!({"requestMetadata": metadata("Encrypt"), "plaintext": "A".repeat(100_000), "encryptionAlgorithm": "AES_GCM"});
    c.call(Operation::Encrypt, "foo", huge)
        .await
        .assert_error(ErrorName::UnsupportedOperationException);
    // ARNs of 2048 characters are fine.
    let mut md = metadata("Encrypt");
    md["awsPrincipalArn"] = json!(format!(
        "arn:aws:iam::123456789012:role/{}",
        "r".repeat(2010)
    ));
    c.call(
        Operation::Encrypt,
        "foo",
        json!({"requestMetadata": md, "plaintext": b64(b"x"), "encryptionAlgorithm": "AES_GCM"}),
    )
    .await
    .assert_ok();
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_validation() {
    let p = proxy().await;
    let c = p.client();
    let md = metadata("Encrypt");
    let cases: Vec<(Operation, Value)> = vec![
        // Missing plaintext, bad Base64.
        (
            Operation::Encrypt,
            json!({"requestMetadata": md, "encryptionAlgorithm": "AES_GCM"}),
        ),
        (
            Operation::Encrypt,
            json!({"requestMetadata": md, "plaintext": "not base64!", "encryptionAlgorithm": "AES_GCM"}),
        ),
        (
            Operation::Encrypt,
            json!({"requestMetadata": md, "plaintext": b64(b"x"), "additionalAuthenticatedData": "%%", "encryptionAlgorithm": "AES_GCM"}),
        ),
        // Wrong types, missing kmsKeyArn, malformed JSON.
        (
            Operation::Encrypt,
            json!({"requestMetadata": md, "plaintext": 5, "encryptionAlgorithm": "AES_GCM"}),
        ),
        (
            Operation::Encrypt,
            json!({"requestMetadata": {"kmsRequestId": "r", "kmsOperation": "Encrypt", "awsPrincipalArn": PRINCIPAL}, "plaintext": b64(b"x"), "encryptionAlgorithm": "AES_GCM"}),
        ),
        (Operation::Encrypt, json!("just a string")),
        // Decrypt without ciphertext, IV or tag.
        (
            Operation::Decrypt,
            json!({"requestMetadata": md, "initializationVector": b64(&[0; 12]), "authenticationTag": b64(&[0; 16]), "encryptionAlgorithm": "AES_GCM"}),
        ),
        (
            Operation::Decrypt,
            json!({"requestMetadata": md, "ciphertext": b64(b"x"), "authenticationTag": b64(&[0; 16]), "encryptionAlgorithm": "AES_GCM"}),
        ),
        (
            Operation::Decrypt,
            json!({"requestMetadata": md, "ciphertext": b64(b"x"), "initializationVector": b64(&[0; 12]), "encryptionAlgorithm": "AES_GCM"}),
        ),
    ];
    for (op, body) in cases {
        let r = c.call(op, "foo", body.clone()).await;
        r.assert_error(ErrorName::ValidationException);
        // Error messages never quote request values.
        assert!(!r.body.to_string().contains("not base64!"), "{body}");
    }
    let mut conn = c.connect().await.unwrap();
    let r = c
        .send_raw(
            &mut conn,
            "POST",
            &c.path(Operation::Encrypt, "foo"),
            b"{\"requestMetadata\":".to_vec(),
            true,
        )
        .await
        .unwrap();
    r.assert_error(ErrorName::ValidationException);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_usage_and_key_state() {
    let p = proxy().await;
    let c = p.client();
    // Encrypt-only: encrypt works, decrypt and encrypt-with-CDIV (it check-decrypts) do not.
    let e = c.encrypt("enc-only", b"x", Some(b"a"), false).await;
    e.assert_ok();
    c.decrypt_response("enc-only", &e.body, Some(b"a"))
        .await
        .assert_error(ErrorName::InvalidKeyUsageException);
    c.encrypt("enc-only", b"x", Some(b"a"), true)
        .await
        .assert_error(ErrorName::InvalidKeyUsageException);
    // Decrypt-only and neither.
    for k in ["dec-only", "neither", "aes128"] {
        c.encrypt(k, b"x", None, false)
            .await
            .assert_error(ErrorName::InvalidKeyUsageException);
    }
    let e = c.encrypt("foo", b"x", None, false).await;
    c.decrypt_response("neither", &e.body, None)
        .await
        .assert_error(ErrorName::InvalidKeyUsageException);
    // A key decrypt-only key refuses ciphertexts of another key as invalid, not as misuse.
    c.decrypt_response("dec-only", &e.body, None)
        .await
        .assert_error(ErrorName::InvalidCiphertextException);
    // Disabled by the operator: no crypto, metadata says DISABLED.
    c.encrypt("off", b"x", None, false)
        .await
        .assert_error(ErrorName::InvalidStateException);
    c.decrypt_response("off", &e.body, None)
        .await
        .assert_error(ErrorName::InvalidStateException);
    c.encrypt("non_existing_key", b"x", None, false)
        .await
        .assert_error(ErrorName::KeyNotFoundException);
    c.encrypt("gone", b"x", None, false)
        .await
        .assert_error(ErrorName::KeyNotFoundException);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_methods_and_uri_paths() {
    let p = proxy().await;
    let c = p.client();
    // GET (and other methods) on the four API URIs: 405.
    for (op, key) in [
        (Operation::GetHealthStatus, ""),
        (Operation::GetKeyMetadata, "foo"),
        (Operation::Encrypt, "foo"),
        (Operation::Decrypt, "foo"),
    ] {
        for method in ["GET", "PUT", "DELETE"] {
            let mut conn = c.connect().await.unwrap();
            let r = c
                .send_raw(&mut conn, method, &c.path(op, key), Vec::new(), true)
                .await
                .unwrap();
            assert_eq!(r.status, 405, "{method} {}", c.path(op, key));
            assert_eq!(r.headers.get("allow").unwrap(), "POST");
        }
    }
    // Unknown prefix, unknown paths.
    let mut other = c.clone();
    other.prefix = format!("{PREFIX}/invalid");
    other
        .health()
        .await
        .assert_error(ErrorName::InvalidUriPathException);
    other
        .metadata("foo")
        .await
        .assert_error(ErrorName::InvalidUriPathException);
    other.prefix = String::new();
    other
        .health()
        .await
        .assert_error(ErrorName::InvalidUriPathException);
    for path in [
        "/",
        "/kms/xks/v2/health",
        &format!("/{PREFIX}/kms/xks/v1/keys/foo/sign"),
        &format!("/{PREFIX}/kms/xks/v1/health/extra"),
    ] {
        let mut conn = c.connect().await.unwrap();
        let r = c
            .send_raw(&mut conn, "POST", path, b"{}".to_vec(), true)
            .await
            .unwrap();
        r.assert_error(ErrorName::InvalidUriPathException);
    }
    // Load-balancer ping.
    let mut conn = c.connect().await.unwrap();
    let r = c
        .send_raw(&mut conn, "GET", "/ping", Vec::new(), false)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    // Another method on the ping path: the JSON answer for a path that is no XKS API (a bare
    // 405 without an errorName before; fuzz finding 6 in docs/abuse.md).
    for method in ["POST", "PUT", "DELETE"] {
        let mut conn = c.connect().await.unwrap();
        let r = c
            .send_raw(&mut conn, method, "/ping", b"{}".to_vec(), true)
            .await
            .unwrap();
        r.assert_error(ErrorName::InvalidUriPathException);
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigv4_authentication_with_two_credentials() {
    let p = proxy().await;
    // Both configured credentials work, on one prefix, at the same time.
    p.client_with(AKID_1, SECRET_1).health().await.assert_ok();
    p.client_with(AKID_2, SECRET_2).health().await.assert_ok();
    let e = p
        .client_with(AKID_1, SECRET_1)
        .encrypt("foo", b"x", None, false)
        .await;
    e.assert_ok();
    p.client_with(AKID_2, SECRET_2)
        .decrypt_response("foo", &e.body, None)
        .await
        .assert_ok();
    // Unknown key id, wrong secret, other region, other service.
    let fail = ErrorName::AuthenticationFailedException;
    p.client_with(&format!("Invalid{AKID_1}"), SECRET_1)
        .health()
        .await
        .assert_error(fail);
    p.client_with(AKID_1, &format!("Invalid{SECRET_1}"))
        .health()
        .await
        .assert_error(fail);
    p.client_with(AKID_1, SECRET_2)
        .metadata("foo")
        .await
        .assert_error(fail);
    let mut c = p.client();
    c.region = "eu-west-1".into();
    c.health().await.assert_error(fail);
    let mut c = p.client();
    c.service = "kms".into();
    c.health().await.assert_error(fail);
    // Clock skew: 4 minutes is fine, 6 minutes either way is not.
    let mut c = p.client();
    c.skew = chrono::Duration::minutes(4);
    c.health().await.assert_ok();
    c.skew = chrono::Duration::minutes(-4);
    c.health().await.assert_ok();
    c.skew = chrono::Duration::minutes(6);
    c.health().await.assert_error(fail);
    c.skew = chrono::Duration::minutes(-6);
    c.encrypt("foo", b"x", None, false).await.assert_error(fail);
    // Unsigned, and a body changed after signing.
    let c = p.client();
    let mut conn = c.connect().await.unwrap();
    let r = c
        .send_raw(
            &mut conn,
            "POST",
            &c.path(Operation::GetHealthStatus, ""),
            b"{}".to_vec(),
            false,
        )
        .await
        .unwrap();
    r.assert_error(fail);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secondary_authorization_allows_denies_and_exempts_health() {
    let rules = "[keystores.authorization]\n\
        [[keystores.authorization.rules]]\nname = 'alice-team'\neffect = 'allow'\n\
        principals = ['arn:aws:iam::123456789012:user/*']\nkms_operations = ['CreateKey', 'Encrypt', 'Decrypt', 'GenerateDataKey*']\n\
        via_services = ['ebs', '']\n\
        [[keystores.authorization.rules]]\nname = 'no-enc-only'\neffect = 'deny'\nkey_ids = ['enc-*']\n";
    let (p, _) = proxy_with("", rules).await;
    let c = p.client();
    // Health is never subject to authorization.
    c.health().await.assert_ok();
    // Allowed: principal matches the wildcard.
    c.metadata("foo").await.assert_ok();
    let e = c.encrypt("foo", b"x", None, false).await;
    e.assert_ok();
    c.decrypt_response("foo", &e.body, None).await.assert_ok();
    // Denied: explicit deny rule; principal of another account; kmsOperation not listed;
    // a kmsViaService not allowed.
    c.encrypt("enc-only", b"x", None, false)
        .await
        .assert_error(ErrorName::AccessDeniedException);
    let mut md = metadata("Encrypt");
    md["awsPrincipalArn"] = json!("arn:aws:iam::999999999999:user/Mallory");
    let body =
        json!({"requestMetadata": md, "plaintext": b64(b"x"), "encryptionAlgorithm": "AES_GCM"});
    c.call(Operation::Encrypt, "foo", body)
        .await
        .assert_error(ErrorName::AccessDeniedException);
    let md = metadata("ReEncrypt");
    let body =
        json!({"requestMetadata": md, "plaintext": b64(b"x"), "encryptionAlgorithm": "AES_GCM"});
    c.call(Operation::Encrypt, "foo", body)
        .await
        .assert_error(ErrorName::AccessDeniedException);
    let mut md = metadata("GenerateDataKeyWithoutPlaintext");
    md["kmsViaService"] = json!("s3");
    let body =
        json!({"requestMetadata": md, "plaintext": b64(b"x"), "encryptionAlgorithm": "AES_GCM"});
    c.call(Operation::Encrypt, "foo", body.clone())
        .await
        .assert_error(ErrorName::AccessDeniedException);
    // Without kmsViaService (a direct call) the empty pattern matches.
    let mut md = metadata("GenerateDataKeyWithoutPlaintext");
    md.as_object_mut().unwrap().remove("kmsViaService");
    let body =
        json!({"requestMetadata": md, "plaintext": b64(b"x"), "encryptionAlgorithm": "AES_GCM"});
    c.call(Operation::Encrypt, "foo", body).await.assert_ok();
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystores_are_isolated_and_rate_limited() {
    let token = shared_token();
    let a = unique("iso-a");
    let b = unique("iso-b");
    create_key(&token, &a);
    create_key(&token, &b);
    let mut opts = ProxyOptions::new(&token).key("key-a", &a).key("key-b", &b);
    opts.keystore_extra = "keys = ['key-a']\n".into();
    let mut toml = opts.toml();
    toml.push_str(&format!(
        "[[keystores]]\nprefix = 'tenant-b'\nkeys = ['key-b']\nrate_limit = 2\nrate_burst = 3\n\
         [[keystores.credentials]]\naccess_key_id = '{AKID_3}'\nsecret_access_key = '{SECRET_3}'\n"
    ));
    let p = TestProxy::start_toml(toml, opts).await;
    let ca = p.client();
    let mut cb = p.client_with(AKID_3, SECRET_3);
    cb.prefix = "tenant-b".into();
    ca.metadata("key-a").await.assert_ok();
    ca.metadata("key-b")
        .await
        .assert_error(ErrorName::KeyNotFoundException);
    // Credentials are per prefix.
    let mut wrong = p.client_with(AKID_1, SECRET_1);
    wrong.prefix = "tenant-b".into();
    wrong
        .health()
        .await
        .assert_error(ErrorName::AuthenticationFailedException);
    // tenant-b: burst of 3, then throttled; tenant A is not affected.
    let mut results = Vec::new();
    for _ in 0..6 {
        results.push(cb.metadata("key-b").await.status);
    }
    assert_eq!(&results[..3], &[200, 200, 200], "{results:?}");
    assert!(results[3..].contains(&429), "{results:?}");
    cb.metadata("key-b")
        .await
        .assert_error(ErrorName::ThrottlingException);
    ca.metadata("key-a").await.assert_ok();
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    cb.metadata("key-b").await.assert_ok();
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_operation_and_outcome() {
    let p = proxy().await;
    let c = p.client();
    c.health().await.assert_ok();
    c.encrypt("foo", b"x", None, false).await.assert_ok();
    c.metadata("non_existing_key").await;
    let m = p.metrics().await;
    assert!(
        m.contains("xks_requests_total{operation=\"Encrypt\",outcome=\"ok\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("operation=\"GetKeyMetadata\",outcome=\"KeyNotFoundException\""),
        "{m}"
    );
    assert!(m.contains("xks_request_duration_seconds_bucket"), "{m}");
    assert!(
        m.contains("xks_hsm_sessions{hsm=\"softhsm-a\",state=\"max\"} 4"),
        "{m}"
    );
    assert!(
        m.contains("xks_hsm_health{hsm=\"softhsm-a\",status=\"ACTIVE\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("xks_hsm_pool_calls{state=\"capacity\"} 16"),
        "{m}"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_credentials_file_and_config_errors() {
    let token = shared_token();
    let k = unique("console");
    create_key(&token, &k);
    let dir = tempfile::tempdir().unwrap();
    let cred = dir.path().join("console.json");
    std::fs::write(
        &cred,
        format!(
            r#"{{"XksProxyUriPath": "/{PREFIX}/kms/xks/v1", "XksProxyAuthenticationCredential": {{"AccessKeyId": "{AKID_3}", "RawSecretAccessKey": "{SECRET_3}"}}}}"#
        ),
    )
    .unwrap();
    let mut opts = ProxyOptions::new(&token).key("foo", &k);
    opts.keystore_extra = format!("credentials_files = ['{}']\n", cred.display());
    let p = TestProxy::start(opts).await;
    p.client_with(AKID_3, SECRET_3).health().await.assert_ok();
    p.client_with(AKID_1, SECRET_1).health().await.assert_ok();
    p.stop().await;
    // A broken configuration reports every problem.
    let bad = "[server]\nlisten = 'x'\n[[hsms]]\nname = 'h'\nmodule = '/none.so'\ntoken_label = 't'\n[[keystores]]\nprefix = 'a b'\n";
    let err = xks_proxy::config::parse(bad, dir.path(), "bad.toml").unwrap_err();
    assert!(err.problems.len() >= 4, "{err}");
}

#[test]
fn the_example_configuration_is_valid() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../hsm-config/xks-proxy.toml"
    ))
    .unwrap();
    // Secrets from the environment, TLS files next to the configuration: provide both.
    let text = text
        .replace("pin_env = \"XKS_HSM_PIN\"", "pin = \"1234\"")
        .replace(
            "secret_access_key_env = \"XKS_SECRET_1\"",
            &format!("secret_access_key = \"{SECRET_1}\""),
        );
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tls")).unwrap();
    let ca = new_ca("example");
    let (cert, key) = issue(&ca, "localhost", &["localhost"], false);
    std::fs::write(dir.path().join("tls/server.pem"), cert).unwrap();
    std::fs::write(dir.path().join("tls/server.key"), key).unwrap();
    let cfg = xks_proxy::config::parse(&text, dir.path(), "xks-proxy.toml")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.dynamic.keys[0].id, "foo");
    assert_eq!(cfg.dynamic.keystores[0].prefix, "example/uri/path/prefix");
    assert!(cfg.tls.is_some() && cfg.metrics_listen.is_some());
}

/// The benchmark routes (test proxies enable `baseline_route`): the baseline answers `{}`
/// without authentication; the work floor encrypts with the named key in the HSM and fails
/// like the API for a key that is not configured or cannot encrypt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn benchmark_baseline_and_floor_routes() {
    let p = proxy().await;
    let c = p.client();
    let mut conn = c.connect().await.unwrap();
    let body = vec![b'x'; 300];
    for path in ["/__baseline", "/__baseline/floor/foo"] {
        let r = c
            .send_raw(&mut conn, "POST", path, body.clone(), false)
            .await
            .unwrap();
        r.assert_ok();
        assert_eq!(r.body, json!({}), "{path}");
    }
    let missing = c
        .send_raw(
            &mut conn,
            "POST",
            "/__baseline/floor/nope",
            body.clone(),
            false,
        )
        .await
        .unwrap();
    missing.assert_error(ErrorName::KeyNotFoundException);
    // The floor does the HSM work: a key that may not encrypt is refused by the HSM path.
    let dec_only = c
        .send_raw(&mut conn, "POST", "/__baseline/floor/dec-only", body, false)
        .await
        .unwrap();
    assert_ne!(dec_only.status, 200, "body: {}", dec_only.body);
}
