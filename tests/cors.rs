//! CORS (`[server] cors_allowed_origins`, `api::cors`) with raw HTTP: the exact preflight and
//! response headers for a listed origin, for `"*"`, for an origin not listed and with CORS off
//! (the default); preflights need no credentials; errors of the edge (SigV4, throttling, body
//! too large, STS) carry the headers too. The browser itself is `tests/cli/browser.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use hyper::HeaderMap;
use sigv4::Signer;

const APP: &str = "http://127.0.0.1:5173";
const OTHER: &str = "http://127.0.0.1:5174";
const EXPOSE: &str = "x-amzn-RequestId, x-amzn-ErrorType, x-amzn-ErrorMessage, Date";
/// What Chromium asks for before the JS SDK's first KMS call (lower case, sorted).
const SDK_HEADERS: &str = "amz-sdk-invocation-id,amz-sdk-request,authorization,content-type,\
                           x-amz-content-sha256,x-amz-date,x-amz-security-token,x-amz-target,\
                           x-amz-user-agent";

async fn server(origins: Option<&str>) -> common::TestServer {
    let mut env = common::backend_env();
    env.push(("KMS_LIMITS__REQUEST_QUOTAS".into(), "true".into()));
    if let Some(o) = origins {
        env.push(("KMS_SERVER__CORS_ALLOWED_ORIGINS".into(), o.into()));
    }
    // Request quotas on (the harness turns them off), and ListAliases at one request, then
    // ThrottlingException for 1000 s.
    common::TestServer::start_with_config(
        "[limits]\nrequest_rates = { ListAliases = 0.001 }\n",
        env,
    )
    .await
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: bytes::Bytes,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// The `Access-Control-*` headers, sorted, with `Vary`.
    fn cors(&self) -> Vec<(String, String)> {
        let mut h: Vec<(String, String)> = self
            .headers
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("access-control-") || k.as_str() == "vary")
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        h.sort();
        h
    }

    fn error_type(&self) -> String {
        let json: serde_json::Value = serde_json::from_slice(&self.body).unwrap();
        json["__type"].as_str().unwrap().to_string()
    }
}

async fn send(
    endpoint: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Answer {
    let (status, headers, body) = common::raw_exchange(endpoint, method, path, headers, body).await;
    Answer {
        status,
        headers,
        body,
    }
}

async fn preflight(endpoint: &str, origin: &str) -> Answer {
    send(
        endpoint,
        "OPTIONS",
        "/",
        &[
            ("origin", origin),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", SDK_HEADERS),
        ],
        Vec::new(),
    )
    .await
}

/// A KMS call signed for the default user, sent with `origin` when given.
async fn call(endpoint: &str, origin: Option<&str>, op: &str, body: &[u8]) -> Answer {
    let host = endpoint.trim_start_matches("http://");
    let signed = Signer::new(common::ACCESS_KEY, common::SECRET_KEY, "us-east-1", "kms")
        .sign_kms_json(host, op, body, chrono::Utc::now())
        .unwrap();
    let mut headers: Vec<(&str, &str)> = signed.iter().map(|(k, v)| (*k, v.as_str())).collect();
    headers.extend(origin.map(|o| ("origin", o)));
    send(endpoint, "POST", "/", &headers, body.to_vec()).await
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `Vary: Origin` alone: an answer of a server with a list of origins to a request from no
/// listed origin.
fn vary_origin() -> Vec<(String, String)> {
    pairs(&[("vary", "Origin")])
}

/// The headers of an actual response to an allowed origin.
fn response_cors(allow_origin: &str, vary: bool) -> Vec<(String, String)> {
    let mut h = vec![
        ("access-control-allow-origin", allow_origin),
        ("access-control-expose-headers", EXPOSE),
    ];
    if vary {
        h.push(("vary", "Origin"));
    }
    pairs(&h)
}

#[tokio::test]
async fn a_listed_origin_gets_preflights_answered_without_credentials() {
    let srv = server(Some(&format!(r#"["{APP}", "https://app.example.com"]"#))).await;
    let before = srv.audit_records().await.len();
    let r = preflight(&srv.endpoint, APP).await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(
        r.cors(),
        pairs(&[
            ("access-control-allow-headers", SDK_HEADERS),
            ("access-control-allow-methods", "GET, POST"),
            ("access-control-allow-origin", APP),
            ("access-control-max-age", "7200"),
            (
                "vary",
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
            ),
        ])
    );
    // Answered before authentication and dispatch: no call, so no audit record.
    assert_eq!(srv.audit_records().await.len(), before);

    // The second origin of the list; a preflight naming no headers gets the SDK's list.
    let r = send(
        &srv.endpoint,
        "OPTIONS",
        "/",
        &[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "POST"),
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let allowed = r.header("access-control-allow-headers").unwrap();
    for h in SDK_HEADERS.split(',') {
        assert!(allowed.split(", ").any(|a| a == h), "{h} in {allowed}");
    }
}

#[tokio::test]
async fn a_listed_origin_gets_cors_headers_on_answers_and_on_every_kind_of_error() {
    let srv = server(Some(&format!(r#"["{APP}"]"#))).await;
    let e = &srv.endpoint;
    let want = response_cors(APP, true);

    let r = call(e, Some(APP), "CreateKey", b"{}").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.cors(), want);
    assert!(r.header("x-amzn-requestid").is_some());

    // An operation's error.
    let r = call(
        e,
        Some(APP),
        "Decrypt",
        br#"{"CiphertextBlob":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
    )
    .await;
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (400, "InvalidCiphertextException")
    );
    assert_eq!(r.cors(), want);

    // Errors of the edge, before any operation runs: no signature, a bad one.
    let r = send(
        e,
        "POST",
        "/",
        &[
            ("origin", APP),
            ("x-amz-target", "TrentService.ListKeys"),
            ("content-type", "application/x-amz-json-1.1"),
        ],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (400, "MissingAuthenticationTokenException")
    );
    assert_eq!(r.cors(), want);
    let r = call(e, Some(APP), "ListKeys", b"{}").await;
    assert_eq!(r.status, 200);
    let host = e.trim_start_matches("http://");
    let mut signed = Signer::new(common::ACCESS_KEY, "wrong", "us-east-1", "kms")
        .sign_kms_json(host, "ListKeys", b"{}", chrono::Utc::now())
        .unwrap();
    signed.push(("origin", APP.to_string()));
    let headers: Vec<(&str, &str)> = signed.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = send(e, "POST", "/", &headers, b"{}".to_vec()).await;
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (400, "InvalidSignatureException")
    );
    assert_eq!(r.cors(), want);

    // Throttling: the first ListAliases passes, the second is over the quota.
    let r = call(e, Some(APP), "ListAliases", b"{}").await;
    assert_eq!(r.status, 200);
    let r = call(e, Some(APP), "ListAliases", b"{}").await;
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (400, "ThrottlingException")
    );
    assert_eq!(r.cors(), want);

    // A body over server.max_body_bytes (256 KiB).
    let big = vec![b' '; 300 * 1024];
    let r = send(
        e,
        "POST",
        "/",
        &[
            ("origin", APP),
            ("x-amz-target", "TrentService.Encrypt"),
            ("content-type", "application/x-amz-json-1.1"),
        ],
        big,
    )
    .await;
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (413, "RequestEntityTooLargeException")
    );
    assert_eq!(r.cors(), want);

    // STS on the same listener (query protocol, XML error).
    let r = send(
        e,
        "GET",
        "/?Action=GetCallerIdentity&Version=2011-06-15",
        &[("origin", APP)],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert!(
        std::str::from_utf8(&r.body)
            .unwrap()
            .contains("<Code>MissingAuthenticationToken</Code>"),
        "{:?}",
        r.body
    );
    assert_eq!(r.cors(), want);

    // The same call without an Origin (not a browser): no CORS headers but `Vary: Origin`,
    // so that a cache does not hand this answer to a page of a listed origin.
    let r = call(e, None, "ListKeys", b"{}").await;
    assert_eq!((r.status, r.cors()), (200, vary_origin()));
}

#[tokio::test]
async fn an_origin_not_listed_gets_no_cors_headers_and_the_usual_answers() {
    let srv = server(Some(APP)).await;
    let e = &srv.endpoint;
    for origin in [OTHER, "https://127.0.0.1:5173", "null"] {
        // The preflight is what any OPTIONS gets; like every answer of a server whose answer
        // depends on the origin, it says so (`Vary: Origin`, for caches).
        let r = preflight(e, origin).await;
        assert_eq!(
            (r.status, r.error_type().as_str(), r.cors()),
            (400, "UnknownOperationException", vary_origin()),
            "{origin}"
        );
        let r = call(e, Some(origin), "ListKeys", b"{}").await;
        assert_eq!((r.status, r.cors()), (200, vary_origin()), "{origin}");
    }
    // A listed origin is still answered (the setting was one origin as a string).
    let r = preflight(e, APP).await;
    assert_eq!(
        (r.status, r.header("access-control-allow-origin")),
        (200, Some(APP))
    );
}

#[tokio::test]
async fn any_origin_gets_a_star_and_no_vary_origin() {
    let srv = server(Some("*")).await;
    let e = &srv.endpoint;
    for origin in [APP, OTHER, "null"] {
        let r = preflight(e, origin).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.cors(),
            pairs(&[
                ("access-control-allow-headers", SDK_HEADERS),
                ("access-control-allow-methods", "GET, POST"),
                ("access-control-allow-origin", "*"),
                ("access-control-max-age", "7200"),
                (
                    "vary",
                    "Access-Control-Request-Method, Access-Control-Request-Headers"
                ),
            ]),
            "{origin}"
        );
        let r = call(e, Some(origin), "ListKeys", b"{}").await;
        assert_eq!((r.status, r.cors()), (200, response_cors("*", false)));
    }
    // OPTIONS that is not a preflight (no Access-Control-Request-Method) is not one.
    let r = send(e, "OPTIONS", "/", &[("origin", APP)], Vec::new()).await;
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (400, "UnknownOperationException")
    );
    assert_eq!(r.cors(), response_cors("*", false));
    // Without an Origin the answer is the same (`*` for every request, so no `Vary: Origin`
    // and a cached answer serves every page); OPTIONS with Access-Control-Request-Method but
    // no Origin is no preflight.
    let r = call(e, None, "ListKeys", b"{}").await;
    assert_eq!((r.status, r.cors()), (200, response_cors("*", false)));
    let r = send(
        e,
        "OPTIONS",
        "/",
        &[("access-control-request-method", "POST")],
        Vec::new(),
    )
    .await;
    assert_eq!(
        (r.status, r.error_type().as_str(), r.cors()),
        (400, "UnknownOperationException", response_cors("*", false))
    );
}

#[tokio::test]
async fn off_by_default_options_is_an_unknown_operation_and_no_cors_headers() {
    let srv = server(None).await;
    let e = &srv.endpoint;
    let r = preflight(e, APP).await;
    assert_eq!(
        (r.status, r.error_type().as_str(), r.cors()),
        (400, "UnknownOperationException", vec![])
    );
    assert!(r.header("x-amzn-requestid").is_some());
    let r = call(e, Some(APP), "ListKeys", b"{}").await;
    assert_eq!((r.status, r.cors()), (200, vec![]));
    let r = send(
        e,
        "POST",
        "/",
        &[("origin", APP), ("x-amz-target", "TrentService.ListKeys")],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(
        (r.status, r.error_type().as_str(), r.cors()),
        (400, "MissingAuthenticationTokenException", vec![])
    );
}
