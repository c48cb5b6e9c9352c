//! Verification of a parsed authorization against the request and a secret ([`verify`],
//! [`verify_cached`]), under a policy ([`VerifyOptions`]).
//!
//! # Policy
//! Always:
//! * `host` must be signed; for header authentication `x-amz-date` must be present and signed
//!   (the HTTP `Date` header is not supported as a substitute).
//! * If an `X-Amz-Security-Token` header is present it must be signed
//!   ([`SigV4Error::SecurityTokenNotSigned`]). The token itself is not validated here: this
//!   module only proves possession of the secret; whether a session token is valid, and
//!   whether it is required (temporary credentials), is the caller's decision.
//! * The credential scope must be `<YYYYMMDD of X-Amz-Date>/<expected region>/<expected
//!   service>/aws4_request`.
//! * Header authentication: X-Amz-Date must lie within `now ± max_skew`.
//!   Presigned authentication: X-Amz-Date must not be later than `now + max_skew` and
//!   `X-Amz-Date + X-Amz-Expires` (at most 7 days) must not be earlier than `now`.
//! * The signature is compared in constant time.
//!
//! Per service ([`VerifyOptions`]): further headers that must be signed (the KMS API requires
//! `x-amz-target`, so that a signed request cannot be replayed as another operation), whether
//! query-string authentication is accepted, and whether `UNSIGNED-PAYLOAD` is.
//!
//! This module does not look up credentials (the caller maps the access key id to a secret
//! and answers unknown ids), and does not read the clock: the caller passes `now`.

use chrono::{DateTime, Duration, Utc};
use ring::{digest, hmac};
use subtle::ConstantTimeEq;

use crate::canonical::{
    hex32, request_payload_hash, unhex32, write_canonical_request, write_string_to_sign,
    CanonicalInput, PayloadHash, RequestParts,
};
use crate::error::{MissingComponents, SigV4Error};
use crate::key::{SigningKey, SigningKeyCache};
use crate::parse::{parse_amz_date, ParsedAuthorization, Presigned};
use crate::{HOST, X_AMZ_DATE, X_AMZ_SECURITY_TOKEN};

/// What a verifier expects of a request: its credential scope, its clock, and the service's
/// policy.
///
/// [`VerifyOptions::new`] gives the strict policy (nothing beyond `host`/`x-amz-date` must be
/// signed; presigned requests and `UNSIGNED-PAYLOAD` refused); set the public fields to relax
/// or extend it.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions<'a> {
    /// The service name, e.g. `kms` or `kms-xks-proxy`.
    pub service: &'a str,
    /// The region this server serves.
    pub region: &'a str,
    /// Maximum clock skew (AWS: 5 minutes).
    pub max_skew: Duration,
    /// Lower-case names of headers that must be among the signed headers, besides `host` and
    /// `x-amz-date` (always required). Else [`SigV4Error::RequiredHeaderNotSigned`].
    pub required_signed_headers: &'a [&'a str],
    /// Whether query-string ("presigned") authentication is accepted. Else
    /// [`SigV4Error::PresignedNotAccepted`].
    pub allow_presigned: bool,
    /// Whether a signed `x-amz-content-sha256: UNSIGNED-PAYLOAD` is accepted (the body is then
    /// not covered by the signature). Else [`SigV4Error::UnsignedPayloadNotAccepted`].
    pub allow_unsigned_payload: bool,
}

impl<'a> VerifyOptions<'a> {
    /// The strict policy for `service` in `region`: no further required signed headers,
    /// presigned requests and `UNSIGNED-PAYLOAD` refused.
    pub fn new(service: &'a str, region: &'a str, max_skew: Duration) -> Self {
        VerifyOptions {
            service,
            region,
            max_skew,
            required_signed_headers: &[],
            allow_presigned: false,
            allow_unsigned_payload: false,
        }
    }
}

enum KeySource<'a> {
    Secret(&'a [u8]),
    Cached {
        cache: &'a SigningKeyCache,
        secret: &'a [u8],
    },
}

/// Verifies `req` against `auth` with `secret`, deriving the signing key (see
/// [`verify_cached`] for the server's hot path).
///
/// Checks, in order: policy on the form (presigned); `host` signed; `X-Amz-Date` present,
/// signed; a present `X-Amz-Security-Token` header signed; the policy's required signed
/// headers; `X-Amz-Date` well-formed; scope date = date of `X-Amz-Date`; service; region;
/// clock window; payload hash (and the policy on `UNSIGNED-PAYLOAD`); signature
/// (constant-time). Every check before the signature is cheap and needs no secret.
pub fn verify(
    req: &RequestParts<'_>,
    auth: &ParsedAuthorization,
    secret: &[u8],
    options: &VerifyOptions<'_>,
    now: DateTime<Utc>,
) -> Result<(), SigV4Error> {
    verify_inner(req, auth, KeySource::Secret(secret), options, now)
}

/// Like [`verify`], but takes the signing key from `cache` (keyed by `auth.access_key_id`).
/// The cache is only consulted once every check except the signature itself has passed, so
/// requests with bogus scopes cannot fill it.
pub fn verify_cached(
    req: &RequestParts<'_>,
    auth: &ParsedAuthorization,
    secret: &[u8],
    cache: &SigningKeyCache,
    options: &VerifyOptions<'_>,
    now: DateTime<Utc>,
) -> Result<(), SigV4Error> {
    verify_inner(req, auth, KeySource::Cached { cache, secret }, options, now)
}

fn verify_inner(
    req: &RequestParts<'_>,
    auth: &ParsedAuthorization,
    key_source: KeySource<'_>,
    options: &VerifyOptions<'_>,
    now: DateTime<Utc>,
) -> Result<(), SigV4Error> {
    if auth.presigned.is_some() && !options.allow_presigned {
        return Err(SigV4Error::PresignedNotAccepted);
    }
    if !auth.signs(HOST) {
        return Err(SigV4Error::HostNotSigned);
    }
    let amz_date: &str = match &auth.presigned {
        Some(presigned) => &presigned.amz_date,
        None => {
            let Some(value) = req.headers.get(X_AMZ_DATE) else {
                let authorization = req
                    .headers
                    .get(http::header::AUTHORIZATION)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_default();
                return Err(SigV4Error::IncompleteAuthorization {
                    missing: MissingComponents {
                        date: true,
                        ..MissingComponents::default()
                    },
                    authorization,
                });
            };
            if !auth.signs(X_AMZ_DATE) {
                return Err(SigV4Error::DateNotSigned);
            }
            if req.headers.contains_key(X_AMZ_SECURITY_TOKEN) && !auth.signs(X_AMZ_SECURITY_TOKEN) {
                return Err(SigV4Error::SecurityTokenNotSigned);
            }
            value.to_str().map_err(|_| SigV4Error::InvalidDate {
                value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
            })?
        }
    };
    if let Some(name) = options
        .required_signed_headers
        .iter()
        .find(|name| !auth.signs(name))
    {
        return Err(SigV4Error::RequiredHeaderNotSigned {
            name: (*name).to_owned(),
        });
    }
    let request_time = parse_amz_date(amz_date).ok_or_else(|| SigV4Error::InvalidDate {
        value: amz_date.to_owned(),
    })?;
    if amz_date.get(..8) != Some(auth.date.as_str()) {
        return Err(SigV4Error::ScopeDateMismatch {
            scope_date: auth.date.clone(),
            amz_date: amz_date.to_owned(),
        });
    }
    if auth.service != options.service {
        return Err(SigV4Error::WrongService {
            service: auth.service.clone(),
            expected: options.service.to_owned(),
        });
    }
    if auth.region != options.region {
        return Err(SigV4Error::WrongRegion {
            region: auth.region.clone(),
            expected: options.region.to_owned(),
        });
    }
    check_clock(request_time, auth.presigned.as_ref(), now, options.max_skew)?;

    let hash = request_payload_hash(req, &auth.signed_headers)?;
    if matches!(hash, PayloadHash::Unsigned) && !options.allow_unsigned_payload {
        return Err(SigV4Error::UnsignedPayloadNotAccepted);
    }
    // The canonical request is streamed into SHA-256 as it is produced: no allocation for its
    // text (only the query's pairs, when there is a query, are collected for sorting).
    let mut canonical = digest::Context::new(&digest::SHA256);
    write_canonical_request(
        &mut canonical,
        &CanonicalInput {
            method: req.method,
            path: req.path,
            query: req.query,
            exclude_query_signature: auth.presigned.is_some(),
            headers: req.headers,
            signed_headers: &auth.signed_headers,
            payload_hash: hash.as_bytes(),
        },
    );
    let canonical_hash = hex32(canonical.finish().as_ref());

    let scope = auth.scope();
    let key = match key_source {
        KeySource::Secret(secret) => SigningKey::derive(secret, &scope),
        KeySource::Cached { cache, secret } => {
            cache.get_or_derive(&auth.access_key_id, secret, &scope)
        }
    };
    let mut mac = hmac::Context::with_key(key.hmac_key());
    write_string_to_sign(&mut mac, amz_date, &scope, &canonical_hash);
    let computed = mac.sign();

    let provided = unhex32(&auth.signature).ok_or(SigV4Error::SignatureMismatch)?;
    if bool::from(provided.as_slice().ct_eq(computed.as_ref())) {
        Ok(())
    } else {
        Err(SigV4Error::SignatureMismatch)
    }
}

fn check_clock(
    request_time: DateTime<Utc>,
    presigned: Option<&Presigned>,
    now: DateTime<Utc>,
    max_skew: Duration,
) -> Result<(), SigV4Error> {
    let latest = now.checked_add_signed(max_skew).unwrap_or(now);
    if request_time > latest {
        return Err(SigV4Error::SignatureNotYetCurrent {
            request_time,
            now,
            window: max_skew,
        });
    }
    let window = match presigned {
        Some(p) => Duration::seconds(i64::from(p.expires_secs)),
        None => max_skew,
    };
    let earliest = now.checked_sub_signed(window).unwrap_or(now);
    if request_time < earliest {
        return Err(SigV4Error::SignatureExpired {
            request_time,
            now,
            window,
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::time::SystemTime;

    use aws_credential_types::Credentials as AwsCredentials;
    use aws_sigv4::http_request::{
        sign as aws_sign, SignableBody, SignableRequest as AwsSignable, SignatureLocation,
        SigningSettings,
    };
    use aws_sigv4::sign::v4;
    use aws_smithy_runtime_api::client::identity::Identity;
    use chrono::TimeZone;
    use http::{HeaderMap, HeaderName, HeaderValue};

    use super::*;
    use crate::canonical::sha256_hex;
    use crate::parse::{extract_authorization, parse_amz_date, parse_authorization};
    use crate::sign::{SignableRequest, Signer};
    use crate::{AwsErrorKind, UNSIGNED_PAYLOAD};

    const GOLDEN: &str = include_str!("../tests/data/sigv4-captured-requests.txt");
    const GOLDEN_SECRET: &[u8] = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn five_min() -> Duration {
        Duration::minutes(5)
    }

    /// The generic policy (what AWS accepts in general), for tests of the always-on checks.
    fn permissive<'a>(service: &'a str, region: &'a str) -> VerifyOptions<'a> {
        VerifyOptions {
            allow_presigned: true,
            allow_unsigned_payload: true,
            ..VerifyOptions::new(service, region, five_min())
        }
    }

    struct Captured {
        method: String,
        path: String,
        query: String,
        headers: HeaderMap,
        body: Vec<u8>,
    }

    impl Captured {
        fn parts(&self) -> RequestParts<'_> {
            RequestParts {
                method: &self.method,
                path: &self.path,
                query: &self.query,
                headers: &self.headers,
                body: &self.body,
            }
        }

        fn now(&self) -> DateTime<Utc> {
            let date = self.headers.get("x-amz-date").unwrap().to_str().unwrap();
            parse_amz_date(date).unwrap()
        }
    }

    fn parse_golden() -> Vec<Captured> {
        let mut out = Vec::new();
        let blocks = GOLDEN.split("\n=== ").skip(1);
        for block in blocks {
            let (head, body) = block.split_once("\n\n").unwrap_or((block, ""));
            let mut lines = head.lines();
            let request_line = lines.next().unwrap();
            let mut words = request_line.split(' ');
            let method = words.next().unwrap().to_owned();
            let target = words.next().unwrap();
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            let mut headers = HeaderMap::new();
            for line in lines {
                let (name, value) = line.split_once(':').unwrap();
                headers.append(
                    HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
                    HeaderValue::from_str(value.trim()).unwrap(),
                );
            }
            let body = body.trim_end_matches('\n').as_bytes().to_vec();
            if let Some(length) = headers.get("content-length") {
                let length: usize = length.to_str().unwrap().parse().unwrap();
                assert_eq!(length, body.len(), "body of {request_line}");
            }
            out.push(Captured {
                method,
                path: path.to_owned(),
                query: query.to_owned(),
                headers,
                body,
            });
        }
        out
    }

    #[test]
    fn golden_requests_verify_with_the_right_secret_only() {
        let captured = parse_golden();
        assert_eq!(captured.len(), GOLDEN.matches("\n=== ").count());
        assert!(captured.len() >= 12);
        let cache = SigningKeyCache::new();
        let options = VerifyOptions::new("kms", "us-east-1", five_min());
        for (i, request) in captured.iter().enumerate() {
            let parts = request.parts();
            let auth = extract_authorization(&parts).unwrap();
            assert_eq!(auth.access_key_id, "AKIDEXAMPLE");
            let now = request.now();
            verify(&parts, &auth, GOLDEN_SECRET, &options, now)
                .unwrap_or_else(|e| panic!("request {i}: {e}"));
            verify_cached(&parts, &auth, GOLDEN_SECRET, &cache, &options, now).unwrap();
            // Still valid at the edges of the window.
            verify(&parts, &auth, GOLDEN_SECRET, &options, now + five_min()).unwrap();
            verify(&parts, &auth, GOLDEN_SECRET, &options, now - five_min()).unwrap();

            let wrong = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEz";
            assert_eq!(
                verify(&parts, &auth, wrong, &options, now),
                Err(SigV4Error::SignatureMismatch),
                "request {i}"
            );
            assert_eq!(
                verify_cached(&parts, &auth, wrong, &cache, &options, now),
                Err(SigV4Error::SignatureMismatch)
            );
            // The cache must not keep serving the key of the wrong secret.
            verify_cached(&parts, &auth, GOLDEN_SECRET, &cache, &options, now).unwrap();
        }
        assert!(!cache.is_empty());
    }

    /// Every captured real client (boto3, awscli, curl, the Encryption SDK CLI, the Rust SDK)
    /// signs `x-amz-target` and `content-type`, so the KMS API's policy breaks none of them.
    #[test]
    fn golden_requests_sign_target_and_content_type() {
        let options = VerifyOptions {
            required_signed_headers: &["x-amz-target", "content-type"],
            ..VerifyOptions::new("kms", "us-east-1", five_min())
        };
        for (i, request) in parse_golden().iter().enumerate() {
            let parts = request.parts();
            let auth = extract_authorization(&parts).unwrap();
            assert!(
                auth.signs("x-amz-target") && auth.signs("content-type"),
                "{i}"
            );
            verify(&parts, &auth, GOLDEN_SECRET, &options, request.now()).unwrap();
        }
    }

    #[test]
    fn golden_requests_fail_when_tampered() {
        let options = VerifyOptions::new("kms", "us-east-1", five_min());
        for request in parse_golden() {
            let now = request.now();
            let check = |parts: &RequestParts<'_>| {
                let auth = extract_authorization(parts).unwrap();
                verify(parts, &auth, GOLDEN_SECRET, &options, now)
            };
            // Body.
            let mut body = request.body.clone();
            body.push(b' ');
            let mut parts = request.parts();
            parts.body = &body;
            assert_eq!(check(&parts), Err(SigV4Error::SignatureMismatch));
            // Target.
            let mut headers = request.headers.clone();
            headers.insert(
                "x-amz-target",
                HeaderValue::from_static("TrentService.ScheduleKeyDeletion"),
            );
            let mut parts = request.parts();
            parts.headers = &headers;
            assert_eq!(check(&parts), Err(SigV4Error::SignatureMismatch));
            // A second target value after the signed one.
            let mut headers = request.headers.clone();
            headers.append(
                "x-amz-target",
                HeaderValue::from_static("TrentService.DisableKey"),
            );
            let mut parts = request.parts();
            parts.headers = &headers;
            assert_eq!(check(&parts), Err(SigV4Error::SignatureMismatch));
            // Path and query.
            let mut parts = request.parts();
            parts.path = "/x";
            assert_eq!(check(&parts), Err(SigV4Error::SignatureMismatch));
            let mut parts = request.parts();
            parts.query = "a=b";
            assert_eq!(check(&parts), Err(SigV4Error::SignatureMismatch));
            // Unsigned headers may change; whitespace in signed values is normalized.
            let mut headers = request.headers.clone();
            headers.insert("user-agent", HeaderValue::from_static("other"));
            let ct = headers.get("content-type").unwrap().to_str().unwrap();
            let padded = format!("  {ct}  ");
            headers.insert("content-type", HeaderValue::from_str(&padded).unwrap());
            let mut parts = request.parts();
            parts.headers = &headers;
            check(&parts).unwrap();
        }
    }

    fn test_suite_request(query: &str) -> (HeaderMap, String) {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
        headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        (headers, query.to_owned())
    }

    /// Vectors of AWS's published SigV4 test suite (`get-vanilla`,
    /// `get-vanilla-query-order-key-case`).
    #[test]
    fn aws_test_suite_get_vanilla_vectors() {
        for (query, signature) in [
            (
                "",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
            (
                "Param2=value2&Param1=value1",
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            ),
        ] {
            let (headers, query) = test_suite_request(query);
            let parts = RequestParts {
                method: "GET",
                path: "/",
                query: &query,
                headers: &headers,
                body: b"",
            };
            let auth = parse_authorization(&format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature={signature}"
            ))
            .unwrap();
            let now = parse_amz_date("20150830T123600Z").unwrap();
            let options = VerifyOptions::new("service", "us-east-1", five_min());
            verify(&parts, &auth, GOLDEN_SECRET, &options, now).unwrap();
        }
    }

    #[test]
    fn skew_messages_match_aws() {
        let request_time = parse_amz_date("20261122T062947Z").unwrap();
        let now = parse_amz_date("20261122T071500Z").unwrap();
        let err = check_clock(request_time, None, now, five_min()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Signature expired: 20261122T062947Z is now earlier than 20261122T071000Z \
             (20261122T071500Z - 5 min.)"
        );
        let request_time = parse_amz_date("20261122T080000Z").unwrap();
        let err = check_clock(request_time, None, now, five_min()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Signature not yet current: 20261122T080000Z is still later than 20261122T072000Z \
             (20261122T071500Z + 5 min.)"
        );
        assert_eq!(err.kind(), AwsErrorKind::InvalidSignature);
        let err = check_clock(request_time, None, now, Duration::seconds(90)).unwrap_err();
        assert!(err.to_string().ends_with("(20261122T071500Z + 90 sec.)"));
    }

    fn header_request(authorization: &str, amz_date: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1"));
        headers.insert("x-amz-date", HeaderValue::from_str(amz_date).unwrap());
        headers.insert(
            "authorization",
            HeaderValue::from_str(authorization).unwrap(),
        );
        headers
    }

    fn verify_headers_with(
        headers: &HeaderMap,
        options: &VerifyOptions<'_>,
    ) -> Result<(), SigV4Error> {
        let parts = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers,
            body: b"{}",
        };
        let auth = extract_authorization(&parts)?;
        let now = parse_amz_date("20261122T062947Z").unwrap();
        verify(&parts, &auth, GOLDEN_SECRET, options, now)
    }

    fn verify_headers(headers: &HeaderMap) -> Result<(), SigV4Error> {
        verify_headers_with(headers, &VerifyOptions::new("kms", "us-east-1", five_min()))
    }

    const SIG: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    fn auth_header(cred: &str, signed: &str) -> String {
        format!("AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders={signed}, Signature={SIG}")
    }

    #[test]
    fn scope_and_signed_header_checks() {
        let auth = auth_header;
        let date = "20261122T062947Z";

        let err = verify_headers(&header_request(
            &auth("AKID/20261122/us-east-1/kms/aws4_request", "x-amz-date"),
            date,
        ))
        .unwrap_err();
        assert_eq!(err, SigV4Error::HostNotSigned);
        assert_eq!(err.kind(), AwsErrorKind::IncompleteSignature);

        let err = verify_headers(&header_request(
            &auth("AKID/20261122/us-east-1/kms/aws4_request", "host"),
            date,
        ))
        .unwrap_err();
        assert_eq!(err, SigV4Error::DateNotSigned);

        let err = verify_headers(&header_request(
            &auth(
                "AKID/20261121/us-east-1/kms/aws4_request",
                "host;x-amz-date",
            ),
            date,
        ))
        .unwrap_err();
        assert!(matches!(err, SigV4Error::ScopeDateMismatch { .. }));
        assert_eq!(
            err.to_string(),
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '20261121' != '20261122', from '20261122T062947Z'."
        );
        assert_eq!(err.kind(), AwsErrorKind::InvalidSignature);

        let err = verify_headers(&header_request(
            &auth(
                "AKID/20261122/us-west-2/kms/aws4_request",
                "host;x-amz-date",
            ),
            date,
        ))
        .unwrap_err();
        assert!(matches!(err, SigV4Error::WrongRegion { .. }));
        assert_eq!(
            err.to_string(),
            "Credential should be scoped to a valid region. "
        );

        let err = verify_headers(&header_request(
            &auth("AKID/20261122/us-east-1/s3/aws4_request", "host;x-amz-date"),
            date,
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Credential should be scoped to correct service: 'kms'. "
        );

        let err = verify_headers(&header_request(
            &auth(
                "AKID/20261122/us-east-1/kms/aws4_request",
                "host;x-amz-date",
            ),
            "2026-11-22T06:29:47Z",
        ))
        .unwrap_err();
        assert!(matches!(err, SigV4Error::InvalidDate { .. }));

        let mut headers = header_request(
            &auth(
                "AKID/20261122/us-east-1/kms/aws4_request",
                "host;x-amz-date",
            ),
            date,
        );
        assert_eq!(verify_headers(&headers), Err(SigV4Error::SignatureMismatch));
        headers.insert("x-amz-security-token", HeaderValue::from_static("tok"));
        assert_eq!(
            verify_headers(&headers),
            Err(SigV4Error::SecurityTokenNotSigned)
        );

        let mut headers = header_request(
            &auth(
                "AKID/20261122/us-east-1/kms/aws4_request",
                "host;x-amz-date",
            ),
            date,
        );
        headers.remove("x-amz-date");
        let err = verify_headers(&headers).unwrap_err();
        assert!(matches!(
            err,
            SigV4Error::IncompleteAuthorization {
                missing: MissingComponents { date: true, .. },
                ..
            }
        ));
    }

    #[test]
    fn required_signed_headers_are_checked_before_the_signature() {
        let options = VerifyOptions {
            required_signed_headers: &["x-amz-target"],
            ..VerifyOptions::new("kms", "us-east-1", five_min())
        };
        let date = "20261122T062947Z";
        let cred = "AKID/20261122/us-east-1/kms/aws4_request";
        let err = verify_headers_with(
            &header_request(&auth_header(cred, "content-type;host;x-amz-date"), date),
            &options,
        )
        .unwrap_err();
        assert_eq!(
            err,
            SigV4Error::RequiredHeaderNotSigned {
                name: "x-amz-target".into()
            }
        );
        assert_eq!(err.kind(), AwsErrorKind::IncompleteSignature);
        // Signed (the zero signature is then what fails).
        assert_eq!(
            verify_headers_with(
                &header_request(&auth_header(cred, "host;x-amz-date;x-amz-target"), date),
                &options,
            ),
            Err(SigV4Error::SignatureMismatch)
        );
    }

    fn hostile_signed_header_names_do_not_panic_case() -> Result<(), SigV4Error> {
        let value = "AWS4-HMAC-SHA256 Credential=AKID/20261122/us-east-1/kms/aws4_request, \
                     SignedHeaders=host;x-amz-date;h(o)st;\u{c4}\u{d6};:authority;a\u{7f}, \
                     Signature=00";
        let auth = parse_authorization(value).unwrap();
        let headers = header_request(
            "AWS4-HMAC-SHA256 Credential=AKID/20261122/us-east-1/kms/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=00",
            "20261122T062947Z",
        );
        let parts = RequestParts {
            method: "POST",
            path: "/%zz/../\u{e9}",
            query: "%=%&&=&\u{e9}=%f",
            headers: &headers,
            body: b"",
        };
        let now = parse_amz_date("20261122T062947Z").unwrap();
        verify(
            &parts,
            &auth,
            GOLDEN_SECRET,
            &permissive("kms", "us-east-1"),
            now,
        )
    }

    #[test]
    fn hostile_signed_header_names_do_not_panic() {
        assert_eq!(
            hostile_signed_header_names_do_not_panic_case(),
            Err(SigV4Error::SignatureMismatch)
        );
    }

    /// A presigned query made by `aws-sigv4` (independent of this verifier).
    fn presign(now: DateTime<Utc>, expires: u64, secret: &str) -> String {
        let identity: Identity =
            AwsCredentials::new("AKID", secret, None, None, "verify-tests").into();
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(std::time::Duration::from_secs(expires));
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("kms")
            .time(SystemTime::from(now))
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let request = AwsSignable::new(
            "GET",
            "/",
            [("host", "127.0.0.1")].into_iter(),
            SignableBody::Bytes(b""),
        )
        .unwrap();
        let (instructions, _) = aws_sign(request, &params).unwrap().into_parts();
        instructions
            .params()
            .iter()
            .map(|(name, value)| {
                let mut encoded = Vec::new();
                crate::canonical::write_uri_encoded(&mut encoded, value.as_bytes());
                format!("{name}={}", String::from_utf8(encoded).unwrap())
            })
            .collect::<Vec<_>>()
            .join("&")
    }

    #[test]
    fn presigned_query() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 22, 7, 15, 0).unwrap();
        let secret = std::str::from_utf8(GOLDEN_SECRET).unwrap();
        let query = presign(t0, 60, secret);
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1"));
        let parts = RequestParts {
            method: "GET",
            path: "/",
            query: &query,
            headers: &headers,
            body: b"",
        };
        let auth = extract_authorization(&parts).unwrap();
        assert_eq!(
            auth.presigned,
            Some(Presigned {
                amz_date: "20261122T071500Z".into(),
                expires_secs: 60
            })
        );
        let options = permissive("kms", "us-east-1");
        let check = |now| verify(&parts, &auth, GOLDEN_SECRET, &options, now);
        check(t0).unwrap();
        check(t0 + Duration::seconds(60)).unwrap();
        assert!(matches!(
            check(t0 + Duration::seconds(61)),
            Err(SigV4Error::SignatureExpired { .. })
        ));
        assert!(matches!(
            check(t0 - Duration::minutes(6)),
            Err(SigV4Error::SignatureNotYetCurrent { .. })
        ));
        assert_eq!(
            verify(&parts, &auth, b"wrong", &options, t0),
            Err(SigV4Error::SignatureMismatch)
        );
        // The strict policy refuses it before looking at anything else.
        let strict = VerifyOptions::new("kms", "us-east-1", five_min());
        assert_eq!(
            verify(&parts, &auth, GOLDEN_SECRET, &strict, t0),
            Err(SigV4Error::PresignedNotAccepted)
        );
        let tampered = query.replace("X-Amz-Expires=60", "X-Amz-Expires=600");
        assert_ne!(tampered, query);
        let parts = RequestParts {
            query: &tampered,
            ..parts
        };
        let auth = extract_authorization(&parts).unwrap();
        assert_eq!(
            verify(&parts, &auth, GOLDEN_SECRET, &options, t0),
            Err(SigV4Error::SignatureMismatch)
        );
    }

    #[test]
    fn content_sha256_header() {
        let signer = Signer::new(
            "AKID",
            std::str::from_utf8(GOLDEN_SECRET).unwrap(),
            "us-east-1",
            "kms",
        );
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 7, 15, 0).unwrap();
        let body_hash = sha256_hex(b"{}");
        let body_hash = std::str::from_utf8(&body_hash).unwrap();
        let permissive = permissive("kms", "us-east-1");
        let strict = VerifyOptions::new("kms", "us-east-1", five_min());
        for (value, body, with_permissive, with_strict) in [
            (
                UNSIGNED_PAYLOAD,
                &b"{\"x\":1}"[..],
                Ok(()),
                Err(SigV4Error::UnsignedPayloadNotAccepted),
            ),
            (body_hash, &b"{}"[..], Ok(()), Ok(())),
            (
                body_hash,
                &b"{ }"[..],
                Err(SigV4Error::ContentSha256Mismatch),
                Err(SigV4Error::ContentSha256Mismatch),
            ),
        ] {
            let signed = signer
                .sign(
                    &SignableRequest {
                        method: "POST",
                        host: "h",
                        path: "/",
                        query: "",
                        headers: &[("X-Amz-Content-Sha256", value)],
                        body,
                    },
                    now,
                )
                .unwrap();
            let mut headers = HeaderMap::new();
            headers.insert("host", HeaderValue::from_static("h"));
            headers.insert(
                "x-amz-content-sha256",
                HeaderValue::from_str(value).unwrap(),
            );
            for (name, value) in signed.headers() {
                headers.insert(name, HeaderValue::from_str(value).unwrap());
            }
            let parts = RequestParts {
                method: "POST",
                path: "/",
                query: "",
                headers: &headers,
                body,
            };
            let auth = extract_authorization(&parts).unwrap();
            assert!(auth.signs("x-amz-content-sha256"));
            assert_eq!(
                verify(&parts, &auth, GOLDEN_SECRET, &permissive, now),
                with_permissive
            );
            assert_eq!(
                verify(&parts, &auth, GOLDEN_SECRET, &strict, now),
                with_strict
            );
        }
    }

    /// Rough cost of verifying (with the key cache) one KMS request, and of signing it with
    /// `aws-sigv4` (which is also what verifying by re-signing with `aws-sigv4` would cost):
    /// `cargo test --release -p sigv4 --lib verify::tests::timing -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing report, run manually in release mode"]
    fn timing() {
        let secret = std::str::from_utf8(GOLDEN_SECRET).unwrap();
        let signer = Signer::new("AKID", secret, "us-east-1", "kms");
        let now = Utc::now();
        let body = [b'x'; 400];
        let n = 100_000u32;
        let start = std::time::Instant::now();
        let mut signed = signer
            .sign_kms_json("127.0.0.1:4599", "Encrypt", &body, now)
            .unwrap();
        for _ in 1..n {
            signed = signer
                .sign_kms_json("127.0.0.1:4599", "Encrypt", &body, now)
                .unwrap();
        }
        println!(
            "sign_kms_json (aws-sigv4): {:?}/request",
            start.elapsed() / n
        );
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:4599"));
        for (name, value) in &signed {
            headers.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let cache = SigningKeyCache::new();
        let options = VerifyOptions {
            required_signed_headers: &["x-amz-target"],
            ..VerifyOptions::new("kms", "us-east-1", five_min())
        };
        let parts = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: &body,
        };
        let start = std::time::Instant::now();
        for _ in 0..n {
            let auth = extract_authorization(&parts).unwrap();
            verify_cached(&parts, &auth, GOLDEN_SECRET, &cache, &options, now).unwrap();
        }
        println!("extract + verify_cached: {:?}/request", start.elapsed() / n);
    }
}
