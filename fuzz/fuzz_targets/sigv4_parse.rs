//! SigV4 parsing and verification on arbitrary requests: the `Authorization` header, the query
//! string (presigned form), `X-Amz-Date`, the path, and one extra signed header. Nothing may
//! panic; a request signed by our signer (aws-sigv4) over the fuzzed path, query and header must
//! verify, with the form's known divergences (`.` segments, `%`, `+`, tabs) left out.
#![no_main]

use chrono::{TimeZone, Utc};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use sigv4::{RequestParts, Signer, VerifyOptions};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn field<'a>(parts: &mut std::slice::Split<'a, u8, impl FnMut(&u8) -> bool>) -> &'a [u8] {
    parts.next().unwrap_or(b"")
}

fn safe(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~' | b'/' | b'=' | b'&'))
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|b| *b == b'\n');
    let auth = field(&mut parts);
    let query = String::from_utf8_lossy(field(&mut parts)).into_owned();
    let date = String::from_utf8_lossy(field(&mut parts)).into_owned();
    let path = String::from_utf8_lossy(field(&mut parts)).into_owned();
    let extra = field(&mut parts);
    let body = field(&mut parts);

    if let Ok(a) = std::str::from_utf8(auth) {
        let _ = sigv4::parse_authorization(a);
    }
    let _ = sigv4::parse_presigned_query(&query);
    if let Some(t) = sigv4::parse_amz_date(&date) {
        // The parser accepts exactly what the formatter writes.
        assert_eq!(sigv4::format_amz_date(&t), date);
    }

    let now = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).single().unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(http::header::HOST, HeaderValue::from_static("localhost"));
    if let Ok(v) = HeaderValue::from_bytes(auth) {
        headers.insert(http::header::AUTHORIZATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&date) {
        headers.insert("x-amz-date", v);
    }
    if let Ok(v) = HeaderValue::from_bytes(extra) {
        headers.insert(HeaderName::from_static("x-amz-target"), v);
    }
    let req = RequestParts {
        method: "POST",
        path: &path,
        query: &query,
        headers: &headers,
        body,
    };
    if let Ok(parsed) = sigv4::extract_authorization(&req) {
        for presigned in [false, true] {
            let mut options =
                VerifyOptions::new("kms", "us-east-1", chrono::Duration::seconds(300));
            options.allow_presigned = presigned;
            let e = sigv4::verify(&req, &parsed, SECRET.as_bytes(), &options, now);
            if let Err(e) = e {
                let _ = (e.aws_error_code(), e.http_status(), e.to_string());
            }
            let _ = sigv4::canonical_request_and_string_to_sign(
                &req,
                &parsed.signed_headers,
                &parsed.date,
                &parsed.scope(),
                presigned,
            );
        }
    }

    // Sign, then verify: our verifier must accept what the signer produced.
    let extra_value = String::from_utf8_lossy(extra);
    let path_ok = path.starts_with('/') && safe(&path) && !path.contains("//");
    let header_ok = extra_value
        .bytes()
        .all(|b| b.is_ascii_graphic() || b == b' ');
    if path_ok && safe(&query) && header_ok {
        let signer = Signer::new("AKIAIOSFODNN7EXAMPLE", SECRET, "us-east-1", "kms");
        let extra_headers = [("x-amz-target", extra_value.as_ref())];
        let Ok(signed) = signer.sign(
            &sigv4::SignableRequest {
                method: "POST",
                host: "localhost",
                path: &path,
                query: &query,
                headers: &extra_headers,
                body,
            },
            now,
        ) else {
            return;
        };
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, HeaderValue::from_static("localhost"));
        let Ok(v) = HeaderValue::from_str(&extra_value) else {
            return;
        };
        headers.insert(HeaderName::from_static("x-amz-target"), v);
        for (name, value) in signed.headers() {
            headers.insert(name, HeaderValue::from_str(value).unwrap());
        }
        let req = RequestParts {
            method: "POST",
            path: &path,
            query: &query,
            headers: &headers,
            body,
        };
        let parsed = sigv4::extract_authorization(&req).unwrap();
        let options = VerifyOptions::new("kms", "us-east-1", chrono::Duration::seconds(300));
        if let Err(e) = sigv4::verify(&req, &parsed, SECRET.as_bytes(), &options, now) {
            panic!("signed request rejected: {e} (path {path:?}, query {query:?}, header {extra_value:?})");
        }
    }
});
