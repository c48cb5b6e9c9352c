//! Signing for our own clients (the KMS's XKS client, the load generators, the tests): a thin
//! wrapper over the `aws-sigv4` crate, so what we send is signed by AWS's own Rust signer and
//! our verifier is checked against it (`tests/differential.rs`) rather than against itself.
//!
//! A [`Signer`] holds one set of credentials (long-term, or temporary with a session token)
//! and one scope (region, service). It signs exactly the headers it is given plus `host` and
//! `x-amz-date` (and `x-amz-security-token` with temporary credentials): nothing is excluded
//! behind the caller's back, and headers added after signing are simply unsigned.
//!
//! This module does not send requests, read the clock (callers pass the signing time), or
//! presign for production use: presigned requests exist for tests of the verifier's policy.
//! Secrets live in `aws-credential-types`' `Credentials`, which zeroizes them on drop; no
//! `Debug` here prints a secret or a session token.

use std::borrow::Cow;
use std::fmt;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign as aws_sign, PercentEncodingMode, SessionTokenMode, SignableBody,
    SignableRequest as AwsSignableRequest, SignatureLocation, SigningParams, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use chrono::{DateTime, Utc};

use crate::{
    AUTHORIZATION, HOST, KMS_JSON_CONTENT_TYPE, KMS_TARGET_PREFIX, UNSIGNED_PAYLOAD,
    X_AMZ_CONTENT_SHA256, X_AMZ_DATE, X_AMZ_SECURITY_TOKEN,
};

/// The `provider_name` our credentials carry inside `aws-credential-types` (diagnostics only).
const PROVIDER: &str = "sigv4::Signer";

/// Credentials and scope to sign with. Cheap to clone (the credentials are shared).
#[derive(Clone)]
pub struct Signer {
    credentials: Credentials,
    identity: Identity,
    region: String,
    service: String,
}

impl Signer {
    /// A signer for long-term credentials, scoped to `region` and `service`.
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        region: impl Into<String>,
        service: impl Into<String>,
    ) -> Self {
        let credentials = Credentials::new(access_key_id, secret_access_key, None, None, PROVIDER);
        Signer {
            identity: credentials.clone().into(),
            credentials,
            region: region.into(),
            service: service.into(),
        }
    }

    /// The same signer with temporary credentials: `session_token` (from STS) is sent as
    /// `X-Amz-Security-Token` and signed, like the AWS SDKs do.
    pub fn with_session_token(self, session_token: impl Into<String>) -> Self {
        let credentials = Credentials::new(
            self.credentials.access_key_id(),
            self.credentials.secret_access_key(),
            Some(session_token.into()),
            None,
            PROVIDER,
        );
        Signer {
            identity: credentials.clone().into(),
            credentials,
            ..self
        }
    }

    /// The access key id.
    pub fn access_key_id(&self) -> &str {
        self.credentials.access_key_id()
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The service requests are signed for.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Signs `req` with header authentication at `time`.
    ///
    /// Signed: `host` (from `req.host`), `x-amz-date` (from `time`), every entry of
    /// `req.headers`, and `x-amz-security-token` with temporary credentials. The payload hash
    /// is the body's SHA-256, or the value of an `x-amz-content-sha256` entry
    /// (`UNSIGNED-PAYLOAD` included).
    pub fn sign(
        &self,
        req: &SignableRequest<'_>,
        time: DateTime<Utc>,
    ) -> Result<SignedRequest, SignError> {
        let uri = if req.query.is_empty() {
            Cow::Borrowed(req.path)
        } else {
            Cow::Owned(format!("{}?{}", req.path, req.query))
        };
        let mut content_sha256 = None;
        let mut headers = Vec::with_capacity(req.headers.len() + 1);
        headers.push((HOST, req.host));
        for &(name, value) in req.headers {
            let name = name.trim();
            if [HOST, X_AMZ_DATE, X_AMZ_SECURITY_TOKEN, AUTHORIZATION]
                .iter()
                .any(|generated| name.eq_ignore_ascii_case(generated))
            {
                continue;
            }
            if name.eq_ignore_ascii_case(X_AMZ_CONTENT_SHA256) {
                content_sha256 = Some(value.trim());
            }
            headers.push((name, value));
        }
        let body = match content_sha256 {
            Some(UNSIGNED_PAYLOAD) => SignableBody::UnsignedPayload,
            Some(hash) => SignableBody::Precomputed(hash.to_owned()),
            None => SignableBody::Bytes(req.body),
        };

        let params: SigningParams<'_> = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name(&self.service)
            .time(SystemTime::from(time))
            .settings(settings())
            .build()
            .map_err(SignError::new)?
            .into();
        let request = AwsSignableRequest::new(req.method, uri, headers.into_iter(), body)
            .map_err(SignError::new)?;
        let (instructions, _signature) = aws_sign(request, &params)
            .map_err(SignError::new)?
            .into_parts();

        let mut authorization = None;
        let mut amz_date = None;
        let mut security_token = None;
        for (name, value) in instructions.headers() {
            let slot = match name {
                AUTHORIZATION => &mut authorization,
                X_AMZ_DATE => &mut amz_date,
                X_AMZ_SECURITY_TOKEN => &mut security_token,
                _ => continue,
            };
            *slot = Some(value.to_owned());
        }
        let (Some(authorization), Some(amz_date)) = (authorization, amz_date) else {
            return Err(SignError::new(MissingSignatureHeaders));
        };
        Ok(SignedRequest {
            authorization,
            amz_date,
            security_token,
        })
    }

    /// Signs a KMS JSON-protocol request (`POST /`, `X-Amz-Target: TrentService.<operation>`),
    /// signing `content-type;host;x-amz-date;x-amz-target` like botocore (plus
    /// `x-amz-security-token` with temporary credentials).
    ///
    /// Returns the headers to send besides `Host` (which must be exactly `host`), in this
    /// order: `Content-Type`, `X-Amz-Target`, `X-Amz-Date`, `Authorization`, then
    /// `X-Amz-Security-Token` with temporary credentials.
    pub fn sign_kms_json(
        &self,
        host: &str,
        operation: &str,
        body: &[u8],
        time: DateTime<Utc>,
    ) -> Result<Vec<(&'static str, String)>, SignError> {
        let mut target = String::with_capacity(KMS_TARGET_PREFIX.len() + operation.len());
        target.push_str(KMS_TARGET_PREFIX);
        target.push_str(operation);
        let signed = self.sign(
            &SignableRequest {
                method: "POST",
                host,
                path: "/",
                query: "",
                headers: &[
                    ("content-type", KMS_JSON_CONTENT_TYPE),
                    ("x-amz-target", target.as_str()),
                ],
                body,
            },
            time,
        )?;
        let mut headers = Vec::with_capacity(5);
        headers.push(("Content-Type", KMS_JSON_CONTENT_TYPE.to_owned()));
        headers.push(("X-Amz-Target", target));
        headers.push(("X-Amz-Date", signed.amz_date));
        headers.push(("Authorization", signed.authorization));
        if let Some(token) = signed.security_token {
            headers.push(("X-Amz-Security-Token", token));
        }
        Ok(headers)
    }

    /// Presigns `req` (query-string authentication valid for `expires`) and returns the query
    /// string to send: `req.query` followed by the `X-Amz-*` parameters. For tests of the
    /// verifier's policy; our servers refuse presigned requests.
    pub fn presign(
        &self,
        req: &SignableRequest<'_>,
        time: DateTime<Utc>,
        expires: std::time::Duration,
    ) -> Result<String, SignError> {
        let uri = if req.query.is_empty() {
            Cow::Borrowed(req.path)
        } else {
            Cow::Owned(format!("{}?{}", req.path, req.query))
        };
        let mut headers = Vec::with_capacity(req.headers.len() + 1);
        headers.push((HOST, req.host));
        headers.extend(req.headers.iter().copied().filter(|(name, _)| {
            ![HOST, X_AMZ_DATE, X_AMZ_SECURITY_TOKEN, AUTHORIZATION]
                .iter()
                .any(|generated| name.trim().eq_ignore_ascii_case(generated))
        }));
        let mut settings = settings();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(expires);
        let params: SigningParams<'_> = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name(&self.service)
            .time(SystemTime::from(time))
            .settings(settings)
            .build()
            .map_err(SignError::new)?
            .into();
        let request = AwsSignableRequest::new(
            req.method,
            uri,
            headers.into_iter(),
            SignableBody::Bytes(req.body),
        )
        .map_err(SignError::new)?;
        let (instructions, _signature) = aws_sign(request, &params)
            .map_err(SignError::new)?
            .into_parts();
        let mut query = req.query.to_owned();
        for (name, value) in instructions.params() {
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str(name);
            query.push('=');
            let mut encoded = Vec::with_capacity(value.len());
            crate::canonical::write_uri_encoded(&mut encoded, value.as_bytes());
            // `write_uri_encoded` emits ASCII only.
            query.push_str(&String::from_utf8_lossy(&encoded));
        }
        Ok(query)
    }
}

/// The settings of every signature we make: those of the AWS SDKs for services other than S3
/// (path normalized and double-encoded, body hash without an `x-amz-content-sha256` header,
/// session token signed), except that no header the caller passes is excluded.
fn settings() -> SigningSettings {
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Double;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Enabled;
    settings.session_token_mode = SessionTokenMode::Include;
    settings.excluded_headers = None;
    settings
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("access_key_id", &self.credentials.access_key_id())
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.credentials.session_token().map(|_| "<redacted>"),
            )
            .field("region", &self.region)
            .field("service", &self.service)
            .finish()
    }
}

/// A request to sign.
#[derive(Debug, Clone, Copy)]
pub struct SignableRequest<'a> {
    /// Method, e.g. `POST`.
    pub method: &'a str,
    /// Value of the `Host` header the request will carry (always signed).
    pub host: &'a str,
    /// Path as it will be sent on the wire (already percent-encoded), e.g. `/`.
    pub path: &'a str,
    /// Query string as it will be sent, without `?` (empty for none).
    pub query: &'a str,
    /// Further headers to sign (any case), sent with exactly these values. Entries named
    /// `host`, `x-amz-date`, `x-amz-security-token` or `authorization` are ignored (the signer
    /// produces those). Repeated names are signed as one multi-valued header, in this order.
    /// Values should not contain tabs: `aws-sigv4` keeps them where our verifier and botocore
    /// collapse them (see "Where signers disagree" in `canonical.rs`).
    pub headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub body: &'a [u8],
}

/// The headers produced by [`Signer::sign`].
#[derive(Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// Value of the `Authorization` header.
    pub authorization: String,
    /// Value of the `X-Amz-Date` header.
    pub amz_date: String,
    /// Value of the `X-Amz-Security-Token` header (temporary credentials only).
    pub security_token: Option<String>,
}

impl SignedRequest {
    /// Every header to add to the request: `x-amz-date`, `authorization`, and
    /// `x-amz-security-token` with temporary credentials.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            (X_AMZ_DATE, Some(self.amz_date.as_str())),
            (AUTHORIZATION, Some(self.authorization.as_str())),
            (X_AMZ_SECURITY_TOKEN, self.security_token.as_deref()),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
    }
}

impl fmt::Debug for SignedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedRequest")
            .field("authorization", &self.authorization)
            .field("amz_date", &self.amz_date)
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Why a request could not be signed: an input `aws-sigv4` refuses (a header name or value
/// that is not valid HTTP, a path that is not a valid URI).
#[derive(Debug, thiserror::Error)]
#[error("the request cannot be signed: {source}")]
pub struct SignError {
    #[source]
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl SignError {
    fn new(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        SignError {
            source: Box::new(source),
        }
    }
}

/// `aws-sigv4` returned no `Authorization` or `X-Amz-Date` header (it always does for header
/// signing; reported rather than assumed).
#[derive(Debug, thiserror::Error)]
#[error("the signer produced no Authorization or X-Amz-Date header")]
struct MissingSignatureHeaders;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use chrono::{Duration, TimeZone};
    use http::{HeaderMap, HeaderValue};

    use super::*;
    use crate::{extract_authorization, verify, RequestParts, SigV4Error, VerifyOptions};

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 7, 15, 0).unwrap()
    }

    fn to_header_map(host: &str, headers: &[(&str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert("host", HeaderValue::from_str(host).unwrap());
        for (name, value) in headers {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    /// What AWS KMS signs towards an XKS proxy, and what our XKS client must keep signing:
    /// `host;x-amz-date` and nothing else.
    #[test]
    fn xks_style_request_signs_host_and_date_only() {
        let signer = Signer::new("AKIAXKS", "secret", "eu-west-1", "kms-xks-proxy");
        let body = br#"{"requestMetadata":{}}"#;
        let path = "/prefix/kms/xks/v1/keys/k1/encrypt";
        let signed = signer
            .sign(
                &SignableRequest {
                    method: "POST",
                    host: "xks.example.com",
                    path,
                    query: "",
                    headers: &[],
                    body,
                },
                t0(),
            )
            .unwrap();
        assert_eq!(signed.amz_date, "20261122T071500Z");
        assert!(signed.authorization.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIAXKS/20261122/eu-west-1/kms-xks-proxy/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature="
        ));
        assert_eq!(signed.security_token, None);
        assert_eq!(signed.headers().count(), 2);

        let mut headers = to_header_map(
            "xks.example.com",
            &signed
                .headers()
                .map(|(n, v)| (n, v.to_owned()))
                .collect::<Vec<_>>(),
        );
        // Added after signing: not signed, may change.
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let parts = RequestParts {
            method: "POST",
            path,
            query: "",
            headers: &headers,
            body,
        };
        let auth = extract_authorization(&parts).unwrap();
        let options = VerifyOptions::new("kms-xks-proxy", "eu-west-1", Duration::minutes(5));
        verify(&parts, &auth, b"secret", &options, t0()).unwrap();
        assert_eq!(
            verify(&parts, &auth, b"other", &options, t0()),
            Err(SigV4Error::SignatureMismatch)
        );
    }

    #[test]
    fn kms_json_headers_verify_and_carry_a_session_token() {
        let long_term = Signer::new("AKIDEXAMPLE", "s3cr3t-value", "us-east-1", "kms");
        let temporary = long_term
            .clone()
            .with_session_token("FwoGZXIvYXdzEJr//token+/=");
        assert_eq!(temporary.access_key_id(), "AKIDEXAMPLE");
        assert_eq!(
            (temporary.region(), temporary.service()),
            ("us-east-1", "kms")
        );
        let body = br#"{"KeyId":"alias/a"}"#;
        for (signer, with_token) in [(&long_term, false), (&temporary, true)] {
            let headers = signer
                .sign_kms_json("127.0.0.1:4599", "DescribeKey", body, t0())
                .unwrap();
            let names: Vec<&str> = headers.iter().map(|(n, _)| *n).collect();
            let mut expected = vec![
                "Content-Type",
                "X-Amz-Target",
                "X-Amz-Date",
                "Authorization",
            ];
            if with_token {
                expected.push("X-Amz-Security-Token");
            }
            assert_eq!(names, expected);
            assert_eq!(headers[1].1, "TrentService.DescribeKey");
            let signed_list = if with_token {
                "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target,"
            } else {
                "SignedHeaders=content-type;host;x-amz-date;x-amz-target,"
            };
            assert!(headers[3].1.contains(signed_list), "{}", headers[3].1);

            let map = to_header_map("127.0.0.1:4599", &headers);
            let parts = RequestParts {
                method: "POST",
                path: "/",
                query: "",
                headers: &map,
                body,
            };
            let auth = extract_authorization(&parts).unwrap();
            let options = VerifyOptions {
                required_signed_headers: &["x-amz-target", "content-type"],
                ..VerifyOptions::new("kms", "us-east-1", Duration::minutes(5))
            };
            verify(&parts, &auth, b"s3cr3t-value", &options, t0()).unwrap();
            if with_token {
                // The token is covered by the signature.
                let mut changed = map.clone();
                changed.insert("x-amz-security-token", HeaderValue::from_static("other"));
                let parts = RequestParts {
                    headers: &changed,
                    ..parts
                };
                assert_eq!(
                    verify(&parts, &auth, b"s3cr3t-value", &options, t0()),
                    Err(SigV4Error::SignatureMismatch)
                );
            }
        }
        // Debug output never holds the secret or the token.
        let debug = format!("{temporary:?}");
        assert!(
            !debug.contains("s3cr3t") && !debug.contains("token+"),
            "{debug}"
        );
        let signed = temporary
            .sign(
                &SignableRequest {
                    method: "POST",
                    host: "h",
                    path: "/",
                    query: "",
                    headers: &[],
                    body: b"",
                },
                t0(),
            )
            .unwrap();
        assert!(signed.security_token.is_some());
        assert!(!format!("{signed:?}").contains("token+"));
    }

    #[test]
    fn generated_headers_in_the_input_are_ignored_and_bad_input_is_an_error() {
        let signer = Signer::new("AK", "secret", "us-east-1", "kms");
        let plain = SignableRequest {
            method: "POST",
            host: "h",
            path: "/",
            query: "",
            headers: &[],
            body: b"{}",
        };
        let reference = signer.sign(&plain, t0()).unwrap();
        let with_generated = signer
            .sign(
                &SignableRequest {
                    headers: &[
                        ("Host", "elsewhere"),
                        ("X-Amz-Date", "19990101T000000Z"),
                        ("authorization", "x"),
                        (" x-amz-security-token ", "t"),
                    ],
                    ..plain
                },
                t0(),
            )
            .unwrap();
        assert_eq!(with_generated, reference);
        let err = signer
            .sign(
                &SignableRequest {
                    headers: &[("bad name", "v")],
                    ..plain
                },
                t0(),
            )
            .unwrap_err();
        assert!(err.to_string().starts_with("the request cannot be signed"));
        assert!(signer
            .sign(
                &SignableRequest {
                    path: "/a b",
                    ..plain
                },
                t0()
            )
            .is_err());
    }

    #[test]
    fn presigned_query_verifies_under_a_permissive_policy_only() {
        let signer = Signer::new("AK", "secret", "us-east-1", "kms");
        let req = SignableRequest {
            method: "POST",
            host: "h",
            path: "/",
            query: "a=1",
            headers: &[("x-amz-target", "TrentService.ListKeys")],
            body: b"{}",
        };
        let query = signer
            .presign(&req, t0(), std::time::Duration::from_secs(300))
            .unwrap();
        assert!(query.starts_with("a=1&X-Amz-"), "{query}");
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("h"));
        headers.insert(
            "x-amz-target",
            HeaderValue::from_static("TrentService.ListKeys"),
        );
        let parts = RequestParts {
            method: "POST",
            path: "/",
            query: &query,
            headers: &headers,
            body: b"{}",
        };
        let auth = extract_authorization(&parts).unwrap();
        assert!(auth.presigned.is_some());
        let strict = VerifyOptions::new("kms", "us-east-1", Duration::minutes(5));
        assert_eq!(
            verify(&parts, &auth, b"secret", &strict, t0()),
            Err(SigV4Error::PresignedNotAccepted)
        );
        let permissive = VerifyOptions {
            allow_presigned: true,
            ..strict
        };
        verify(&parts, &auth, b"secret", &permissive, t0()).unwrap();
    }
}
