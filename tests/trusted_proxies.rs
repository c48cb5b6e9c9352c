//! `[server] trusted_proxies`: behind a load balancer the client's address -- `aws:SourceIp` in
//! key policies, the audit record's `sourceIPAddress` -- is the one the balancer names in
//! `X-Forwarded-For` (`serve::TrustedProxies`), and only a trusted peer can name it. Requests
//! come from other loopback addresses: 127.0.0.2 is the trusted balancer, 127.0.0.3 a client
//! that connects directly and forges the header.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::net::IpAddr;

use serde_json::{json, Value};
use sigv4::Signer;

const BALANCER: &str = "127.0.0.2";
const DIRECT: &str = "127.0.0.3";
/// The office network the key policy allows Encrypt from.
const OFFICE: &str = "203.0.113.7";
const ELSEWHERE: &str = "198.51.100.9";

/// A server that trusts the balancer's `X-Forwarded-For` (or nobody's, the default).
async fn server(trusted: Option<&str>) -> common::TestServer {
    let mut env = common::backend_env();
    if let Some(t) = trusted {
        env.push(("KMS_SERVER__TRUSTED_PROXIES".into(), t.into()));
    }
    common::TestServer::start_with(env).await
}

/// A key whose policy denies Encrypt from outside 203.0.113.0/24.
async fn office_only_key(srv: &common::TestServer) -> String {
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Account",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                "Action": "kms:*",
                "Resource": "*"
            },
            {
                "Sid": "EncryptFromTheOfficeOnly",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "kms:Encrypt",
                "Resource": "*",
                "Condition": {"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}
            }
        ]
    });
    let md = srv
        .client()
        .create_key()
        .policy(policy.to_string())
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    md.key_id().to_string()
}

/// What one raw call answered.
struct Answer {
    status: u16,
    error_type: Option<String>,
    request_id: String,
}

/// A signed KMS `operation` from the local address `from`, with one `X-Forwarded-For` header
/// per entry of `xff`.
async fn kms_call(
    srv: &common::TestServer,
    from: &str,
    xff: &[&str],
    operation: &str,
    body: &Value,
) -> Answer {
    let host = srv.endpoint.trim_start_matches("http://");
    let body = body.to_string().into_bytes();
    let signed = Signer::new(common::ACCESS_KEY, common::SECRET_KEY, "us-east-1", "kms")
        .sign_kms_json(host, operation, &body, chrono::Utc::now())
        .unwrap();
    let mut headers: Vec<(&str, &str)> = signed.iter().map(|(k, v)| (*k, v.as_str())).collect();
    headers.extend(xff.iter().map(|v| ("x-forwarded-for", *v)));
    send(srv, from, &headers, body).await
}

async fn send(
    srv: &common::TestServer,
    from: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Answer {
    let from: IpAddr = from.parse().unwrap();
    let (status, headers, body) =
        common::raw_exchange_from(Some(from), &srv.endpoint, "POST", "/", headers, body).await;
    let error_type = (status != 200).then(|| {
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        v["__type"].as_str().unwrap_or("").to_string()
    });
    let request_id = headers
        .get("x-amzn-requestid")
        .expect("every answer carries its request id")
        .to_str()
        .unwrap()
        .to_string();
    Answer {
        status,
        error_type,
        request_id,
    }
}

/// Encrypt under `key` from `from` with these `X-Forwarded-For` headers.
async fn encrypt(srv: &common::TestServer, key: &str, from: &str, xff: &[&str]) -> Answer {
    kms_call(
        srv,
        from,
        xff,
        "Encrypt",
        &json!({"KeyId": key, "Plaintext": "aGk="}),
    )
    .await
}

/// The `sourceIPAddress` of the audit record of request `request_id`.
async fn audited_address(srv: &common::TestServer, request_id: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let records = srv.audit_records().await;
        if let Some(r) = records.iter().find(|r| r["requestID"] == request_id) {
            return r["sourceIPAddress"].as_str().unwrap().to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no audit record for {request_id}"
        );
    }
}

/// Asserts that an Encrypt was allowed (or denied by the policy) and audited from `address`.
async fn assert_encrypt(srv: &common::TestServer, a: &Answer, allowed: bool, address: &str) {
    if allowed {
        assert_eq!((a.status, a.error_type.as_deref()), (200, None));
    } else {
        assert_eq!(
            (a.status, a.error_type.as_deref()),
            (400, Some("AccessDeniedException"))
        );
    }
    assert_eq!(audited_address(srv, &a.request_id).await, address);
}

#[tokio::test]
async fn a_trusted_balancer_names_the_client_for_policies_and_the_audit_trail() {
    let srv = server(Some(r#"["127.0.0.2", "10.0.0.0/8"]"#)).await;
    let key = office_only_key(&srv).await;

    // Through the balancer, from the office and from elsewhere.
    let a = encrypt(&srv, &key, BALANCER, &[OFFICE]).await;
    assert_encrypt(&srv, &a, true, OFFICE).await;
    let a = encrypt(&srv, &key, BALANCER, &[ELSEWHERE]).await;
    assert_encrypt(&srv, &a, false, ELSEWHERE).await;
    // A client outside claims the office address; the balancer appends the one it saw. The
    // rightmost hop that is not a trusted proxy is the client.
    let a = encrypt(&srv, &key, BALANCER, &[&format!("{OFFICE}, {ELSEWHERE}")]).await;
    assert_encrypt(&srv, &a, false, ELSEWHERE).await;
    // A second trusted proxy (10/8) in front of the balancer is skipped.
    let a = encrypt(&srv, &key, BALANCER, &[&format!("{OFFICE}, 10.1.2.3")]).await;
    assert_encrypt(&srv, &a, true, OFFICE).await;
    // Several headers are one list, in order: the last header's last entry is the nearest.
    let a = encrypt(&srv, &key, BALANCER, &[ELSEWHERE, OFFICE]).await;
    assert_encrypt(&srv, &a, true, OFFICE).await;
    let a = encrypt(&srv, &key, BALANCER, &[OFFICE, ELSEWHERE]).await;
    assert_encrypt(&srv, &a, false, ELSEWHERE).await;
    // Without the header the balancer itself is the client.
    let a = encrypt(&srv, &key, BALANCER, &[]).await;
    assert_encrypt(&srv, &a, false, BALANCER).await;
}

#[tokio::test]
async fn a_malformed_header_from_the_balancer_falls_back_to_the_peer() {
    let srv = server(Some(r#"["127.0.0.2"]"#)).await;
    let key = office_only_key(&srv).await;
    for xff in [
        "unknown",
        "",
        "203.0.113.7, not-an-address",
        "203.0.113.7/24",
        "203.0.113.7 198.51.100.9",
    ] {
        let a = encrypt(&srv, &key, BALANCER, &[xff]).await;
        assert_encrypt(&srv, &a, false, BALANCER).await;
    }
    // Garbage left of a good entry the balancer wrote is never reached.
    let a = encrypt(&srv, &key, BALANCER, &[&format!("garbage, {OFFICE}")]).await;
    assert_encrypt(&srv, &a, true, OFFICE).await;
}

#[tokio::test]
async fn a_client_that_is_not_a_trusted_proxy_cannot_name_itself() {
    let srv = server(Some(r#"["127.0.0.2"]"#)).await;
    let key = office_only_key(&srv).await;
    for xff in [
        vec![OFFICE],
        vec![OFFICE, OFFICE],
        vec!["203.0.113.7, 127.0.0.2"],
    ] {
        let a = encrypt(&srv, &key, DIRECT, &xff).await;
        assert_encrypt(&srv, &a, false, DIRECT).await;
    }
    // Requests refused before authentication are audited from the peer too.
    let host = srv.endpoint.trim_start_matches("http://");
    let body = b"{}".to_vec();
    let mut signed = Signer::new(common::ACCESS_KEY, "wrong", "us-east-1", "kms")
        .sign_kms_json(host, "ListKeys", &body, chrono::Utc::now())
        .unwrap();
    signed.push(("x-forwarded-for", OFFICE.to_string()));
    let headers: Vec<(&str, &str)> = signed.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = send(&srv, DIRECT, &headers, body.clone()).await;
    assert_eq!(a.status, 400);
    assert_eq!(audited_address(&srv, &a.request_id).await, DIRECT);
    // ... and from the named client when the balancer forwards them.
    let a = send(&srv, BALANCER, &headers, body).await;
    assert_eq!(a.status, 400);
    assert_eq!(audited_address(&srv, &a.request_id).await, OFFICE);
}

#[tokio::test]
async fn by_default_nobody_is_trusted() {
    let srv = server(None).await;
    let key = office_only_key(&srv).await;
    for from in [BALANCER, DIRECT] {
        let a = encrypt(&srv, &key, from, &[OFFICE]).await;
        assert_encrypt(&srv, &a, false, from).await;
    }
}

#[tokio::test]
async fn sts_sees_the_forwarded_client_too() {
    let srv = server(Some(r#"["127.0.0.2"]"#)).await;
    let host = srv.endpoint.trim_start_matches("http://");
    let body = "Action=GetCallerIdentity&Version=2011-06-15";
    let form = ("content-type", "application/x-www-form-urlencoded");
    let signed = Signer::new(common::ACCESS_KEY, common::SECRET_KEY, "us-east-1", "sts")
        .sign(
            &sigv4::SignableRequest {
                method: "POST",
                host,
                path: "/",
                query: "",
                headers: &[form],
                body: body.as_bytes(),
            },
            chrono::Utc::now(),
        )
        .unwrap();
    let mut headers: Vec<(&str, &str)> = vec![form, ("x-forwarded-for", OFFICE)];
    headers.extend(signed.headers());
    for (from, address) in [(BALANCER, OFFICE), (DIRECT, DIRECT)] {
        let a = send(&srv, from, &headers, body.as_bytes().to_vec()).await;
        assert_eq!(a.status, 200, "{from}");
        assert_eq!(audited_address(&srv, &a.request_id).await, address);
    }
}
