//! Wire-level tests with raw HTTP: what the SDKs never send (malformed JSON, wrong types,
//! unknown operations, oversized bodies, missing or bad signatures, signatures that do not
//! cover the operation) still gets AWS's errors, and a ciphertext with any single byte flipped
//! fails with InvalidCiphertextException.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use base64::Engine;
use sigv4::{SignableRequest, Signer};

struct Raw {
    status: u16,
    request_id: Option<String>,
    json: serde_json::Value,
}

async fn send(endpoint: &str, method: &str, headers: Vec<(String, String)>, body: Vec<u8>) -> Raw {
    send_to(endpoint, "/", method, headers, body).await
}

async fn send_to(
    endpoint: &str,
    path: &str,
    method: &str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> Raw {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (status, request_id, bytes) =
        common::raw_request(endpoint, method, path, &headers, body).await;
    let json = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    Raw {
        status,
        request_id,
        json,
    }
}

fn signed_headers(
    endpoint: &str,
    op: &str,
    body: &[u8],
    secret: &str,
    time: chrono::DateTime<chrono::Utc>,
) -> Vec<(String, String)> {
    let host = endpoint.trim_start_matches("http://");
    Signer::new(common::ACCESS_KEY, secret, "us-east-1", "kms")
        .sign_kms_json(host, op, body, time)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

async fn call(endpoint: &str, op: &str, body: &str) -> Raw {
    let h = signed_headers(
        endpoint,
        op,
        body.as_bytes(),
        common::SECRET_KEY,
        chrono::Utc::now(),
    );
    send(endpoint, "POST", h, body.as_bytes().to_vec()).await
}

fn err(r: &Raw) -> (u16, &str, Option<&str>) {
    (
        r.status,
        r.json["__type"].as_str().unwrap_or(""),
        r.json["message"].as_str(),
    )
}

#[tokio::test]
async fn errors_on_the_wire() {
    let srv = common::TestServer::start().await;
    let e = &srv.endpoint;

    // Success has a request id and the JSON 1.1 shape.
    let ok = call(e, "ListKeys", "{}").await;
    assert_eq!(ok.status, 200);
    assert!(ok.request_id.is_some());
    assert_eq!(ok.json["Truncated"], false);
    // DisableKey and EnableKey have no output members (reference §1.2, §15 requirement 21):
    // an empty JSON object, and the key state changes.
    let key = call(e, "CreateKey", "{}").await.json["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let by_key = format!(r#"{{"KeyId": "{key}"}}"#);
    for (op, state) in [("DisableKey", "Disabled"), ("EnableKey", "Enabled")] {
        let r = call(e, op, &by_key).await;
        assert_eq!((r.status, &r.json), (200, &serde_json::json!({})), "{op}");
        let d = call(e, "DescribeKey", &by_key).await;
        assert_eq!(d.json["KeyMetadata"]["KeyState"], state, "{op}");
        assert_eq!(d.json["KeyMetadata"]["Enabled"], state == "Enabled", "{op}");
    }

    // Malformed JSON and wrong member types: SerializationException, 400.
    let r = call(e, "CreateKey", "{not json").await;
    assert_eq!(err(&r).0, 400);
    assert_eq!(err(&r).1, "SerializationException");
    assert!(r.request_id.is_some());
    let r = call(e, "CreateKey", r#"{"Description": 5}"#).await;
    assert_eq!(err(&r).1, "SerializationException");
    let r = call(e, "Encrypt", r#"{"KeyId": "alias/x", "Plaintext": "***"}"#).await;
    assert_eq!(err(&r).1, "SerializationException");
    let r = call(e, "ListKeys", "[]").await;
    assert_eq!(err(&r).1, "SerializationException");

    // Unknown operation and missing target.
    let r = call(e, "MakeCoffee", "{}").await;
    assert_eq!(err(&r), (400, "UnknownOperationException", None));
    let r = send(
        e,
        "POST",
        vec![("content-type".into(), "application/x-amz-json-1.1".into())],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(err(&r).1, "UnknownOperationException");

    // Missing required members: ValidationException with AWS's wording.
    let r = call(e, "Encrypt", "{}").await;
    assert_eq!(
        err(&r),
        (400, "ValidationException", Some("2 validation errors detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null; Value null at 'plaintext' failed to satisfy constraint: Member must not be null"))
    );

    // Oversized body.
    let big = format!(r#"{{"Description": "{}"}}"#, "a".repeat(300 * 1024));
    let r = call(e, "CreateKey", &big).await;
    assert_eq!(err(&r).0, 413);
    assert_eq!(err(&r).1, "RequestEntityTooLargeException");

    // Authentication failures.
    let r = send(
        e,
        "POST",
        vec![
            ("content-type".into(), "application/x-amz-json-1.1".into()),
            ("x-amz-target".into(), "TrentService.ListKeys".into()),
        ],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(
        err(&r),
        (
            400,
            "MissingAuthenticationTokenException",
            Some("Missing Authentication Token")
        )
    );
    let h = signed_headers(e, "ListKeys", b"{}", "wrong-secret", chrono::Utc::now());
    let r = send(e, "POST", h, b"{}".to_vec()).await;
    assert_eq!(err(&r).1, "InvalidSignatureException");
    assert!(err(&r)
        .2
        .unwrap()
        .starts_with("The request signature we calculated does not match"));
    let old = chrono::Utc::now() - chrono::Duration::minutes(20);
    let h = signed_headers(e, "ListKeys", b"{}", common::SECRET_KEY, old);
    let r = send(e, "POST", h, b"{}".to_vec()).await;
    assert_eq!(err(&r).1, "InvalidSignatureException");
    assert!(
        err(&r).2.unwrap().starts_with("Signature expired"),
        "{:?}",
        r.json
    );
    // A body changed after signing.
    let h = signed_headers(e, "ListKeys", b"{}", common::SECRET_KEY, chrono::Utc::now());
    let r = send(e, "POST", h, br#"{"Limit": 1}"#.to_vec()).await;
    assert_eq!(err(&r).1, "InvalidSignatureException");
    let mut h = signed_headers(e, "ListKeys", b"{}", common::SECRET_KEY, chrono::Utc::now());
    h[3].1 = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261122/us-east-1/kms/aws4_request"
        .into();
    let r = send(e, "POST", h, b"{}".to_vec()).await;
    assert_eq!(err(&r).1, "IncompleteSignatureException");

    // Other methods.
    let r = send(e, "GET", vec![], vec![]).await;
    assert_eq!(err(&r).1, "UnknownOperationException");
}

/// Validation answers the SDKs would not let a caller provoke (members their models make
/// required or bound), in AWS's words (docs/errors.md says where each comes from).
#[tokio::test]
async fn validation_answers_in_aws_words() {
    let srv = common::TestServer::start().await;
    let e = &srv.endpoint;

    // NumberOfBytes is optional in the model; KMS itself requires it (recorded AWS response).
    let r = call(e, "GenerateRandom", "{}").await;
    assert_eq!(
        err(&r),
        (
            400,
            "ValidationException",
            Some("NumberOfBytes is required.")
        )
    );

    let created = call(e, "CreateKey", "{}").await;
    let id = created.json["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();

    // A list of strings names the list, echoes it, and lists the member's constraints.
    let long = "k".repeat(129);
    let r = call(
        e,
        "UntagResource",
        &format!(r#"{{"KeyId": "{id}", "TagKeys": ["a", "{long}"]}}"#),
    )
    .await;
    let want = format!(
        "1 validation error detected: Value '[a, {long}]' at 'tagKeys' failed to satisfy \
         constraint: Member must satisfy constraint: [Member must have length less than or \
         equal to 128, Member must have length greater than or equal to 1]"
    );
    assert_eq!(err(&r), (400, "ValidationException", Some(want.as_str())));
    let tokens: Vec<String> = (0..11).map(|i| format!("\"t{i}\"")).collect();
    let r = call(
        e,
        "DescribeKey",
        &format!(
            r#"{{"KeyId": "{id}", "GrantTokens": [{}]}}"#,
            tokens.join(",")
        ),
    )
    .await;
    assert_eq!(
        err(&r),
        (
            400,
            "ValidationException",
            Some(
                "1 validation error detected: Value '[t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, \
                 t10]' at 'grantTokens' failed to satisfy constraint: Member must have length \
                 less than or equal to 10"
            )
        )
    );
    // The XKS credential's members: required, with the model's lengths and patterns; the
    // secret is never echoed.
    let store = |cred: &str| {
        format!(
            r#"{{"CustomKeyStoreName": "x", "CustomKeyStoreType": "EXTERNAL_KEY_STORE",
                "XksProxyUriEndpoint": "https://127.0.0.1", "XksProxyUriPath": "/kms/xks/v1",
                "XksProxyConnectivity": "PUBLIC_ENDPOINT",
                "XksProxyAuthenticationCredential": {cred}}}"#
        )
    };
    let r = call(
        e,
        "CreateCustomKeyStore",
        &store(r#"{"AccessKeyId": "ABCDEFGHIJKLMNOPQRST"}"#),
    )
    .await;
    assert_eq!(
        err(&r),
        (
            400,
            "ValidationException",
            Some(
                "1 validation error detected: Value null at \
                 'xksProxyAuthenticationCredential.rawSecretAccessKey' failed to satisfy \
                 constraint: Member must not be null"
            )
        )
    );
    let secret = "s".repeat(42);
    let r = call(
        e,
        "UpdateCustomKeyStore",
        &format!(
            r#"{{"CustomKeyStoreId": "cks-1", "XksProxyAuthenticationCredential":
                {{"AccessKeyId": "abcdefghijklmnopqrst", "RawSecretAccessKey": "{secret}"}}}}"#
        ),
    )
    .await;
    let (_, code, message) = err(&r);
    assert_eq!(code, "ValidationException");
    assert_eq!(
        message,
        Some(
            "2 validation errors detected: Value 'abcdefghijklmnopqrst' at \
             'xksProxyAuthenticationCredential.accessKeyId' failed to satisfy constraint: Member \
             must satisfy regular expression pattern: ^[A-Z2-7]+$; Value at \
             'xksProxyAuthenticationCredential.rawSecretAccessKey' failed to satisfy constraint: \
             Member must have length greater than or equal to 43"
        )
    );

    // A tag member missing its value is named by position.
    let r = call(
        e,
        "TagResource",
        &format!(
            r#"{{"KeyId": "{id}", "Tags": [{{"TagKey": "a", "TagValue": ""}}, {{"TagKey": "b"}}]}}"#
        ),
    )
    .await;
    assert_eq!(
        err(&r),
        (
            400,
            "ValidationException",
            Some(
                "1 validation error detected: Value null at 'tags.2.member.tagValue' failed to \
                 satisfy constraint: Member must not be null"
            )
        )
    );
}

/// Headers of a request signed by `signer` over `signed` (plus `host` and `x-amz-date`), with
/// `unsigned` added after signing.
fn signed_over(
    endpoint: &str,
    signed: &[(&str, &str)],
    unsigned: &[(&str, &str)],
    body: &str,
) -> Vec<(String, String)> {
    let host = endpoint.trim_start_matches("http://");
    let signature = Signer::new(common::ACCESS_KEY, common::SECRET_KEY, "us-east-1", "kms")
        .sign(
            &SignableRequest {
                method: "POST",
                host,
                path: "/",
                query: "",
                headers: signed,
                body: body.as_bytes(),
            },
            chrono::Utc::now(),
        )
        .unwrap();
    signed
        .iter()
        .chain(unsigned)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain(
            signature
                .headers()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .collect()
}

fn with_target(headers: &[(String, String)], target: &str) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            let v = if k == "x-amz-target" { target } else { v };
            (k.clone(), v.to_string())
        })
        .collect()
}

/// The KMS API's SigV4 policy: `x-amz-target` must be signed, so that a signed `DescribeKey`
/// cannot be replayed as `DisableKey` by rewriting that header; presigned (query-string)
/// requests and `UNSIGNED-PAYLOAD` are refused; an unsigned `Content-Type` (the AWS SDK for
/// PHP never signs it) is accepted.
#[tokio::test]
async fn sigv4_policy_of_the_kms_api() {
    const JSON: &str = "application/x-amz-json-1.1";
    const DESCRIBE: &str = "TrentService.DescribeKey";
    const DISABLE: &str = "TrentService.DisableKey";
    let srv = common::TestServer::start().await;
    let e = &srv.endpoint;
    let created = call(e, "CreateKey", "{}").await;
    let key_id = created.json["KeyMetadata"]["KeyId"].as_str().unwrap();
    let body = format!(r#"{{"KeyId": "{key_id}"}}"#);
    let key_state = || async {
        let r = call(e, "DescribeKey", &body).await;
        r.json["KeyMetadata"]["KeyState"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(key_state().await, "Enabled");

    // Signed over host;x-amz-date only: refused whatever the target, so the replay as
    // DisableKey does nothing.
    let h = signed_over(
        e,
        &[],
        &[("content-type", JSON), ("x-amz-target", DESCRIBE)],
        &body,
    );
    assert!(h
        .iter()
        .any(|(k, v)| k == "authorization" && v.contains("SignedHeaders=host;x-amz-date,")));
    for target in [DESCRIBE, DISABLE] {
        let r = send(
            e,
            "POST",
            with_target(&h, target),
            body.clone().into_bytes(),
        )
        .await;
        assert_eq!(
            err(&r),
            (
                400,
                "IncompleteSignatureException",
                Some("'X-Amz-Target' must be a 'SignedHeader' in the AWS Authorization.")
            ),
            "{target}"
        );
    }
    assert_eq!(key_state().await, "Enabled");

    // Target signed (as every AWS SDK does): accepted as signed; the replay as DisableKey
    // breaks the signature.
    let h = signed_over(
        e,
        &[("content-type", JSON), ("x-amz-target", DESCRIBE)],
        &[],
        &body,
    );
    let r = send(e, "POST", h.clone(), body.clone().into_bytes()).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let r = send(
        e,
        "POST",
        with_target(&h, DISABLE),
        body.clone().into_bytes(),
    )
    .await;
    assert_eq!(err(&r).0, 400);
    assert_eq!(err(&r).1, "InvalidSignatureException");
    assert!(err(&r)
        .2
        .unwrap()
        .starts_with("The request signature we calculated does not match"));
    assert_eq!(key_state().await, "Enabled");

    // Content-Type unsigned, target signed (the AWS SDK for PHP): accepted.
    let h = signed_over(
        e,
        &[("x-amz-target", DESCRIBE)],
        &[("content-type", JSON)],
        &body,
    );
    let r = send(e, "POST", h, body.clone().into_bytes()).await;
    assert_eq!(r.status, 200, "{:?}", r.json);

    // UNSIGNED-PAYLOAD: the body would not be covered.
    let h = signed_over(
        e,
        &[
            ("content-type", JSON),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
            ("x-amz-target", DESCRIBE),
        ],
        &[],
        &body,
    );
    let r = send(e, "POST", h, body.clone().into_bytes()).await;
    assert_eq!(err(&r).0, 400);
    assert_eq!(err(&r).1, "IncompleteSignatureException");
    assert!(
        err(&r).2.unwrap().contains("UNSIGNED-PAYLOAD"),
        "{:?}",
        r.json
    );

    // A presigned request, validly signed: refused.
    let host = e.trim_start_matches("http://");
    let signed_headers = [("content-type", JSON), ("x-amz-target", DESCRIBE)];
    let query = Signer::new(common::ACCESS_KEY, common::SECRET_KEY, "us-east-1", "kms")
        .presign(
            &SignableRequest {
                method: "POST",
                host,
                path: "/",
                query: "",
                headers: &signed_headers,
                body: body.as_bytes(),
            },
            chrono::Utc::now(),
            std::time::Duration::from_secs(300),
        )
        .unwrap();
    let h = signed_headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let r = send_to(
        e,
        &format!("/?{query}"),
        "POST",
        h,
        body.clone().into_bytes(),
    )
    .await;
    assert_eq!(
        err(&r),
        (
            400,
            "IncompleteSignatureException",
            Some(
                "Query-string authentication (a presigned request) is not accepted by this \
                 service. Sign the request with the 'Authorization' header."
            )
        )
    );
    assert_eq!(key_state().await, "Enabled");
}

#[tokio::test]
async fn every_single_byte_flip_is_invalid_ciphertext() {
    let srv = common::TestServer::start().await;
    let e = &srv.endpoint;
    let key = call(e, "CreateKey", "{}").await;
    let key_id = key.json["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = serde_json::json!({
        "KeyId": key_id,
        "Plaintext": b64.encode(b"sixteen byte msg"),
        "EncryptionContext": {"k": "v"},
    });
    let enc = call(e, "Encrypt", &body.to_string()).await;
    let blob = b64
        .decode(enc.json["CiphertextBlob"].as_str().unwrap())
        .unwrap();
    // The untouched blob decrypts.
    let ok = call(
        e,
        "Decrypt",
        &serde_json::json!({"CiphertextBlob": b64.encode(&blob), "EncryptionContext": {"k": "v"}})
            .to_string(),
    )
    .await;
    assert_eq!(ok.status, 200, "{:?}", ok.json);
    for i in 0..blob.len() {
        for flip in [0x01u8, 0x80] {
            let mut t = blob.clone();
            t[i] ^= flip;
            let req = serde_json::json!({"CiphertextBlob": b64.encode(&t), "EncryptionContext": {"k": "v"}});
            let r = call(e, "Decrypt", &req.to_string()).await;
            assert_eq!(
                (r.status, r.json["__type"].as_str()),
                (400, Some("InvalidCiphertextException")),
                "byte {i} flipped with {flip:#x}: {:?}",
                r.json
            );
        }
    }
    // Truncations and extensions too.
    for len in [0usize, 1, 2, 10, 40, blob.len() - 1] {
        let req = serde_json::json!({"CiphertextBlob": b64.encode(&blob[..len.max(1)])});
        let r = call(e, "Decrypt", &req.to_string()).await;
        assert!(
            matches!(
                r.json["__type"].as_str(),
                Some("InvalidCiphertextException") | Some("ValidationException")
            ),
            "{len}: {:?}",
            r.json
        );
    }
    let mut longer = blob.clone();
    longer.push(0);
    let r = call(e, "Decrypt", &serde_json::json!({"CiphertextBlob": b64.encode(&longer), "EncryptionContext": {"k": "v"}}).to_string()).await;
    assert_eq!(r.json["__type"], "InvalidCiphertextException");
}

/// The benchmark routes (test servers enable `baseline_route`): the baseline answers `{}`
/// without authentication; the work floor (`x-kms-bench-key`) encrypts with the named key's
/// backend and fails like KMS for a key that does not exist.
#[tokio::test]
async fn benchmark_baseline_and_floor_routes() {
    let srv = common::TestServer::start().await;
    let e = &srv.endpoint;
    let bare = send_to(e, "/__baseline", "POST", Vec::new(), b"x".to_vec()).await;
    assert_eq!(
        (bare.status, bare.json.clone()),
        (200, serde_json::json!({}))
    );

    let created = call(e, "CreateKey", "{}").await;
    let key_id = created.json["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let floor = |key: String| {
        send_to(
            e,
            "/__baseline",
            "POST",
            vec![(kms::api::BENCH_KEY_HEADER.to_string(), key)],
            vec![7u8; 300],
        )
    };
    let ok = floor(key_id.clone()).await;
    assert_eq!((ok.status, ok.json.clone()), (200, serde_json::json!({})));
    // The same with the hand-off (on the HSM threads when an HSM is configured).
    let handed = send_to(
        e,
        "/__baseline",
        "POST",
        vec![
            (kms::api::BENCH_KEY_HEADER.to_string(), key_id),
            (kms::api::BENCH_HANDOFF_HEADER.to_string(), "1".to_string()),
        ],
        vec![7u8; 300],
    )
    .await;
    assert_eq!(
        (handed.status, handed.json.clone()),
        (200, serde_json::json!({}))
    );
    let missing = floor("00000000-0000-4000-8000-000000000000".into()).await;
    assert_eq!(err(&missing).0, 400);
    assert_eq!(err(&missing).1, "NotFoundException");
    let malformed = floor("alias/nope".into()).await;
    assert_eq!(err(&malformed).1, "NotFoundException");
}

/// The SigV4 window is measured against the wall clock (the clock clients sign with), not the
/// service's injectable clock; in production both are the system clock (`main` builds the
/// service with `SystemClock`). A service clock moved 30 days ahead (tests do this to pass
/// deletion windows) changes neither what is accepted nor what is refused.
#[tokio::test]
async fn request_time_skew_is_measured_against_the_wall_clock() {
    use kms::service::clock::Clock;
    let srv = common::TestServer::start().await;
    srv.clock.advance(chrono::Duration::days(30));
    let body = b"{}";
    let at = |time: chrono::DateTime<chrono::Utc>| {
        signed_headers(&srv.endpoint, "ListKeys", body, common::SECRET_KEY, time)
    };
    let now = chrono::Utc::now();
    let r = send(&srv.endpoint, "POST", at(now), body.to_vec()).await;
    assert_eq!(r.status, 200, "{}", r.json);
    for (time, reason) in [
        (
            now - chrono::Duration::minutes(6),
            "6 minutes behind the wall clock",
        ),
        (
            now + chrono::Duration::minutes(6),
            "6 minutes ahead of the wall clock",
        ),
        (
            srv.clock.now(),
            "the service clock's time, 30 days ahead of the wall clock",
        ),
    ] {
        let r = send(&srv.endpoint, "POST", at(time), body.to_vec()).await;
        assert_eq!(r.status, 400, "{reason}: {}", r.json);
        assert_eq!(r.json["__type"], "InvalidSignatureException", "{reason}");
        assert!(
            r.json["message"]
                .as_str()
                .unwrap()
                .starts_with("Signature expired:")
                || r.json["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("Signature not yet current:"),
            "{reason}: {}",
            r.json
        );
    }
}
