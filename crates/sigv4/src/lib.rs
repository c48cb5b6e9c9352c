//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`): verification for the server and signing for
//! our own clients (benchmark, tests). Pure code: no I/O, no clock (callers pass "now").
//!
//! This module owns:
//! * parsing of the `Authorization` header ([`parse_authorization`]) and of query-string
//!   ("presigned") authentication ([`parse_presigned_query`]), and picking between them
//!   ([`extract_authorization`]);
//! * the canonical request and string to sign ([`canonical_request_and_string_to_sign`]);
//! * signing-key derivation ([`signing_key`]) and a bounded, thread-safe cache of derived keys
//!   ([`SigningKeyCache`]);
//! * verification ([`verify`], [`verify_cached`]) with classified errors ([`SigV4Error`]) whose
//!   `Display` is the AWS error message and whose [`SigV4Error::aws_error_code`] is the AWS
//!   exception name;
//! * signing ([`sign`], [`sign_kms_json`]).
//!
//! It does not own credential lookup (mapping an access key id to a secret, and the
//! `UnrecognizedClientException` for unknown ids), nor the HTTP error responses.
//!
//! # Canonicalization rules (as implemented)
//! * **Path**: the raw (on-the-wire, already percent-encoded) path is normalized the way the
//!   AWS SDKs do for services other than S3 (empty and `.` segments are dropped, `..` removes
//!   the previous segment, a trailing `/` is kept), then every byte outside the RFC 3986
//!   unreserved set `A-Z a-z 0-9 - . _ ~` is percent-encoded (upper-case hex). Because the input
//!   is the already-encoded wire path, this is the "each path segment is URI-encoded twice" rule
//!   that AWS documents for every service except S3 (botocore and the Rust SDK do the same):
//!   a wire path `/a%2Fb` is canonicalized as `/a%252Fb`. For the paths this server uses
//!   (`/`, `/kms/xks/v1/keys/{id}/encrypt` with an optional prefix), which contain only
//!   unreserved characters, single and double encoding agree.
//! * **Query**: split on `&`, each pair at its first `=`; names and values are percent-decoded
//!   and re-encoded with the strict RFC 3986 rule (so `~`/`%7E` and `%2f`/`%2F` are equivalent,
//!   and `+` stays a literal plus, `%2B`); pairs sorted by encoded name, then encoded value.
//!   For presigned requests `X-Amz-Signature` is left out.
//! * **Headers**: the `SignedHeaders` list is used in the order given (clients send it
//!   sorted); each value is trimmed and internal runs of spaces/tabs collapsed to one space;
//!   multiple values of one header are joined with `,`. A signed header that is absent
//!   contributes an empty value (the signature then fails unless the client did the same).
//! * **Payload hash**: lower-case hex SHA-256 of the body, unless `x-amz-content-sha256` is
//!   present *and signed*: then its value is used. `UNSIGNED-PAYLOAD` is accepted (the body is
//!   then not covered by the signature); any other value must equal the body's SHA-256, else
//!   [`SigV4Error::ContentSha256Mismatch`].
//!
//! # Verification policy
//! * `host` must be signed; for header authentication `x-amz-date` must be present and signed
//!   (the HTTP `Date` header is not supported as a substitute).
//! * If an `X-Amz-Security-Token` header is present it must be signed
//!   ([`SigV4Error::SecurityTokenNotSigned`]). The token itself is not validated here: this
//!   module only proves possession of the secret; whether session tokens are acceptable is the
//!   caller's decision.
//! * The credential scope must be `<YYYYMMDD of X-Amz-Date>/<expected region>/<expected
//!   service>/aws4_request`.
//! * Header authentication: X-Amz-Date must lie within `now ± max_skew`.
//!   Presigned authentication: X-Amz-Date must not be later than `now + max_skew` and
//!   `X-Amz-Date + X-Amz-Expires` (at most 7 days) must not be earlier than `now`.
//! * The signature is compared in constant time.
//!
//! Presigned requests are hashed like header-signed ones (the payload hash is the body's
//! SHA-256, never an implicit `UNSIGNED-PAYLOAD`), which is what the SDKs do for services other
//! than S3.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fmt;
use std::sync::{PoisonError, RwLock};

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};
use http::HeaderMap;
use ring::{digest, hmac};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The only supported signing algorithm.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The credential scope terminator.
pub const TERMINATOR: &str = "aws4_request";
/// Payload hash placeholder allowed in a signed `x-amz-content-sha256` header.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// `chrono` format of `X-Amz-Date` (ISO 8601 basic format, UTC).
pub const AMZ_DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";
/// Largest `X-Amz-Expires` accepted for presigned requests (7 days).
pub const MAX_PRESIGNED_EXPIRES_SECS: u32 = 604_800;
/// `Content-Type` of the KMS JSON protocol.
pub const KMS_JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// Prefix of `X-Amz-Target` values of the KMS API.
pub const KMS_TARGET_PREFIX: &str = "TrentService.";

const X_AMZ_DATE: &str = "x-amz-date";
const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";
const X_AMZ_SECURITY_TOKEN: &str = "x-amz-security-token";
const HOST: &str = "host";

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Which components an `Authorization` header lacks (for
/// [`SigV4Error::IncompleteAuthorization`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MissingComponents {
    /// No `Credential=` parameter.
    pub credential: bool,
    /// No `Signature=` parameter.
    pub signature: bool,
    /// No `SignedHeaders=` parameter.
    pub signed_headers: bool,
    /// No `X-Amz-Date` header in the request.
    pub date: bool,
}

/// Why a request failed SigV4 authentication. `Display` renders the AWS message;
/// [`SigV4Error::aws_error_code`] gives the AWS exception name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// Neither an `Authorization` header nor query-string authentication.
    Missing,
    /// The `Authorization` header lacks parameters (or the request lacks `X-Amz-Date`).
    /// `authorization` is the header as received (echoed in the message, like AWS does).
    IncompleteAuthorization {
        /// What is missing.
        missing: MissingComponents,
        /// The `Authorization` header value as received (lossy UTF-8).
        authorization: String,
    },
    /// Query-string authentication lacks one of the required `X-Amz-*` parameters.
    IncompleteQuery,
    /// The algorithm is not `AWS4-HMAC-SHA256`.
    UnsupportedAlgorithm {
        /// The algorithm as received.
        algorithm: String,
    },
    /// The credential is not `keyid/date/region/service/terminator`.
    MalformedCredential {
        /// The credential as received.
        credential: String,
    },
    /// The credential scope does not end in `aws4_request`.
    InvalidTerminator {
        /// The terminator as received.
        terminator: String,
    },
    /// `host` is not among the signed headers.
    HostNotSigned,
    /// `x-amz-date` is not among the signed headers (header authentication).
    DateNotSigned,
    /// An `X-Amz-Security-Token` header is present but not signed.
    SecurityTokenNotSigned,
    /// `X-Amz-Date` is not in ISO 8601 basic format `YYYYMMDD'T'HHMMSS'Z'`.
    InvalidDate {
        /// The value as received (lossy UTF-8).
        value: String,
    },
    /// `X-Amz-Expires` is not an integer in `0..=604800`.
    InvalidExpires {
        /// The value as received.
        value: String,
    },
    /// The credential scope date is not the date part of `X-Amz-Date`.
    ScopeDateMismatch {
        /// Date of the credential scope.
        scope_date: String,
        /// The request's `X-Amz-Date`.
        amz_date: String,
    },
    /// The credential scope names another region.
    WrongRegion {
        /// Region of the credential scope.
        region: String,
        /// The region this server serves.
        expected: String,
    },
    /// The credential scope names another service.
    WrongService {
        /// Service of the credential scope.
        service: String,
        /// The service this endpoint serves.
        expected: String,
    },
    /// The request is too old: `request_time < now - window`.
    SignatureExpired {
        /// The request's `X-Amz-Date`.
        request_time: DateTime<Utc>,
        /// The verifier's current time.
        now: DateTime<Utc>,
        /// Allowed age: the clock skew, or `X-Amz-Expires` for presigned requests.
        window: Duration,
    },
    /// The request is too far in the future: `request_time > now + window`.
    SignatureNotYetCurrent {
        /// The request's `X-Amz-Date`.
        request_time: DateTime<Utc>,
        /// The verifier's current time.
        now: DateTime<Utc>,
        /// The allowed clock skew.
        window: Duration,
    },
    /// A signed `x-amz-content-sha256` header does not match the body.
    ContentSha256Mismatch,
    /// The signature is not the one computed with the secret.
    SignatureMismatch,
}

impl SigV4Error {
    /// The AWS exception name (`__type` of a JSON error response) for this error.
    pub fn aws_error_code(&self) -> &'static str {
        match self {
            SigV4Error::Missing => "MissingAuthenticationTokenException",
            SigV4Error::IncompleteAuthorization { .. }
            | SigV4Error::IncompleteQuery
            | SigV4Error::UnsupportedAlgorithm { .. }
            | SigV4Error::MalformedCredential { .. }
            | SigV4Error::HostNotSigned
            | SigV4Error::DateNotSigned
            | SigV4Error::SecurityTokenNotSigned
            | SigV4Error::InvalidDate { .. }
            | SigV4Error::InvalidExpires { .. } => "IncompleteSignatureException",
            SigV4Error::InvalidTerminator { .. }
            | SigV4Error::ScopeDateMismatch { .. }
            | SigV4Error::WrongRegion { .. }
            | SigV4Error::WrongService { .. }
            | SigV4Error::SignatureExpired { .. }
            | SigV4Error::SignatureNotYetCurrent { .. }
            | SigV4Error::ContentSha256Mismatch
            | SigV4Error::SignatureMismatch => "InvalidSignatureException",
        }
    }

    /// The HTTP status AWS uses with [`Self::aws_error_code`]: 403 for a missing token,
    /// 400 otherwise.
    pub fn http_status(&self) -> u16 {
        match self {
            SigV4Error::Missing => 403,
            _ => 400,
        }
    }
}

impl fmt::Display for SigV4Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SigV4Error::Missing => f.write_str("Missing Authentication Token"),
            SigV4Error::IncompleteAuthorization {
                missing,
                authorization,
            } => {
                if missing.credential {
                    f.write_str("Authorization header requires 'Credential' parameter. ")?;
                }
                if missing.signature {
                    f.write_str("Authorization header requires 'Signature' parameter. ")?;
                }
                if missing.signed_headers {
                    f.write_str("Authorization header requires 'SignedHeaders' parameter. ")?;
                }
                if missing.date {
                    f.write_str(
                        "Authorization header requires existence of either a 'X-Amz-Date' or \
                         a 'Date' header. ",
                    )?;
                }
                write!(f, "Authorization={authorization}")
            }
            SigV4Error::IncompleteQuery => f.write_str(
                "AWS query-string parameters must include 'X-Amz-Algorithm', \
                 'X-Amz-Credential', 'X-Amz-Signature', 'X-Amz-Date', 'X-Amz-SignedHeaders', \
                 'X-Amz-Expires'. Re-examine the query-string parameters.",
            ),
            SigV4Error::UnsupportedAlgorithm { algorithm } => {
                write!(f, "Unsupported AWS 'algorithm': '{algorithm}'")
            }
            SigV4Error::MalformedCredential { credential } => write!(
                f,
                "Credential must have exactly 5 slash-delimited elements, e.g. \
                 keyid/date/region/service/term, got '{credential}'"
            ),
            SigV4Error::InvalidTerminator { terminator } => write!(
                f,
                "Credential should be scoped with a valid terminator: 'aws4_request', not \
                 '{terminator}'. "
            ),
            SigV4Error::HostNotSigned => f.write_str(
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
            ),
            SigV4Error::DateNotSigned => {
                f.write_str("'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.")
            }
            SigV4Error::SecurityTokenNotSigned => f.write_str(
                "'X-Amz-Security-Token' must be a 'SignedHeader' in the AWS Authorization.",
            ),
            SigV4Error::InvalidDate { value } => write!(
                f,
                "Date must be in ISO-8601 'basic format'. Got '{value}'. See \
                 http://en.wikipedia.org/wiki/ISO_8601"
            ),
            SigV4Error::InvalidExpires { value } => write!(
                f,
                "X-Amz-Expires must be a non-negative integer number of seconds less than or \
                 equal to {MAX_PRESIGNED_EXPIRES_SECS}, got '{value}'"
            ),
            SigV4Error::ScopeDateMismatch {
                scope_date,
                amz_date,
            } => write!(
                f,
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
                 from HTTP: '{scope_date}' != '{}', from '{amz_date}'.",
                amz_date.get(..8).unwrap_or(amz_date)
            ),
            SigV4Error::WrongRegion { .. } => {
                f.write_str("Credential should be scoped to a valid region. ")
            }
            SigV4Error::WrongService { expected, .. } => {
                write!(
                    f,
                    "Credential should be scoped to correct service: '{expected}'. "
                )
            }
            SigV4Error::SignatureExpired {
                request_time,
                now,
                window,
            } => write!(
                f,
                "Signature expired: {} is now earlier than {} ({} - {})",
                AmzDate(Some(*request_time)),
                AmzDate(now.checked_sub_signed(*window)),
                AmzDate(Some(*now)),
                Window(*window)
            ),
            SigV4Error::SignatureNotYetCurrent {
                request_time,
                now,
                window,
            } => write!(
                f,
                "Signature not yet current: {} is still later than {} ({} + {})",
                AmzDate(Some(*request_time)),
                AmzDate(now.checked_add_signed(*window)),
                AmzDate(Some(*now)),
                Window(*window)
            ),
            SigV4Error::ContentSha256Mismatch => f.write_str(
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            ),
            SigV4Error::SignatureMismatch => f.write_str(
                "The request signature we calculated does not match the signature you provided. \
                 Check your AWS Secret Access Key and signing method. Consult the service \
                 documentation for details.",
            ),
        }
    }
}

/// Displays a time as `X-Amz-Date` (or `?` when out of range).
struct AmzDate(Option<DateTime<Utc>>);

impl fmt::Display for AmzDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(t) => f.write_str(&format_amz_date(&t)),
            None => f.write_str("?"),
        }
    }
}

/// Displays a window like AWS: `5 min.`, or `90 sec.` when not whole minutes.
struct Window(Duration);

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.num_seconds();
        if secs % 60 == 0 {
            write!(f, "{} min.", secs / 60)
        } else {
            write!(f, "{secs} sec.")
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// A parsed SigV4 authorization (from the `Authorization` header or from the query string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAuthorization {
    /// Access key id (first credential element).
    pub access_key_id: String,
    /// Scope date, `YYYYMMDD` as sent (checked against `X-Amz-Date` by [`verify`]).
    pub date: String,
    /// Scope region.
    pub region: String,
    /// Scope service.
    pub service: String,
    /// Signed header names, lower-cased, in the order given.
    pub signed_headers: Vec<String>,
    /// The signature as sent (expected: 64 lower-case hex digits).
    pub signature: String,
    /// Present when the authorization came from the query string.
    pub presigned: Option<Presigned>,
}

/// The extra parameters of query-string ("presigned") authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presigned {
    /// `X-Amz-Date` from the query string.
    pub amz_date: String,
    /// `X-Amz-Expires` in seconds (at most [`MAX_PRESIGNED_EXPIRES_SECS`]).
    pub expires_secs: u32,
}

impl ParsedAuthorization {
    /// The credential scope (date/region/service).
    pub fn scope(&self) -> CredentialScope<'_> {
        CredentialScope {
            date: &self.date,
            region: &self.region,
            service: &self.service,
        }
    }

    fn signs(&self, name: &str) -> bool {
        self.signed_headers.iter().any(|h| h == name)
    }
}

/// A credential scope without its `aws4_request` terminator. `Display` renders
/// `date/region/service/aws4_request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialScope<'a> {
    /// `YYYYMMDD`.
    pub date: &'a str,
    /// Region, e.g. `us-east-1`.
    pub region: &'a str,
    /// Service, e.g. `kms`.
    pub service: &'a str,
}

impl fmt::Display for CredentialScope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{TERMINATOR}",
            self.date, self.region, self.service
        )
    }
}

/// Parses an `Authorization` header value such as
/// `AWS4-HMAC-SHA256 Credential=AKID/20261122/us-east-1/kms/aws4_request,
/// SignedHeaders=host;x-amz-date, Signature=<hex>`.
///
/// Parameters may be separated by commas and/or whitespace, in any order; unknown parameters
/// are ignored, and the first occurrence of a repeated one wins.
pub fn parse_authorization(header_value: &str) -> Result<ParsedAuthorization, SigV4Error> {
    let trimmed = header_value.trim_start_matches([' ', '\t']);
    let (algorithm, params) = match trimmed.find([' ', '\t', ',']) {
        Some(i) => trimmed.split_at(i),
        None => (trimmed, ""),
    };
    // Without an algorithm token, the first token is already a parameter.
    let (algorithm, params) = if algorithm.contains('=') {
        ("", trimmed)
    } else {
        (algorithm, params)
    };

    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in params
        .split([',', ' ', '\t'])
        .filter(|part| !part.is_empty())
    {
        if let Some((key, value)) = part.split_once('=') {
            let slot = match key {
                "Credential" => &mut credential,
                "SignedHeaders" => &mut signed_headers,
                "Signature" => &mut signature,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value);
            }
        }
    }

    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(SigV4Error::IncompleteAuthorization {
            missing: MissingComponents {
                credential: credential.is_none(),
                signature: signature.is_none(),
                signed_headers: signed_headers.is_none(),
                date: false,
            },
            authorization: header_value.to_owned(),
        });
    };
    if algorithm != ALGORITHM {
        return Err(SigV4Error::UnsupportedAlgorithm {
            algorithm: algorithm.to_owned(),
        });
    }
    build_authorization(credential, signed_headers, signature, None)
}

fn build_authorization(
    credential: &str,
    signed_headers: &str,
    signature: &str,
    presigned: Option<Presigned>,
) -> Result<ParsedAuthorization, SigV4Error> {
    let mut elements = credential.split('/');
    let (Some(access_key_id), Some(date), Some(region), Some(service), Some(terminator), None) = (
        elements.next(),
        elements.next(),
        elements.next(),
        elements.next(),
        elements.next(),
        elements.next(),
    ) else {
        return Err(SigV4Error::MalformedCredential {
            credential: credential.to_owned(),
        });
    };
    if terminator != TERMINATOR {
        return Err(SigV4Error::InvalidTerminator {
            terminator: terminator.to_owned(),
        });
    }
    Ok(ParsedAuthorization {
        access_key_id: access_key_id.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers: signed_headers
            .split(';')
            .filter(|name| !name.is_empty())
            .map(str::to_ascii_lowercase)
            .collect(),
        signature: signature.to_owned(),
        presigned,
    })
}

/// Parses query-string ("presigned") authentication from a raw query string.
///
/// Returns `Ok(None)` when the query carries none of `X-Amz-Algorithm`, `X-Amz-Credential`,
/// `X-Amz-SignedHeaders`, `X-Amz-Signature`; [`SigV4Error::IncompleteQuery`] when it carries
/// some but not all of those plus `X-Amz-Date` and `X-Amz-Expires`.
pub fn parse_presigned_query(query: &str) -> Result<Option<ParsedAuthorization>, SigV4Error> {
    if !query.contains("X-Amz-") {
        return Ok(None);
    }
    let mut algorithm = None;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    let mut amz_date = None;
    let mut expires = None;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match key {
            "X-Amz-Algorithm" => &mut algorithm,
            "X-Amz-Credential" => &mut credential,
            "X-Amz-SignedHeaders" => &mut signed_headers,
            "X-Amz-Signature" => &mut signature,
            "X-Amz-Date" => &mut amz_date,
            "X-Amz-Expires" => &mut expires,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(percent_decode(value));
        }
    }
    if algorithm.is_none()
        && credential.is_none()
        && signed_headers.is_none()
        && signature.is_none()
    {
        return Ok(None);
    }
    let (
        Some(algorithm),
        Some(credential),
        Some(signed_headers),
        Some(signature),
        Some(amz_date),
        Some(expires),
    ) = (
        algorithm,
        credential,
        signed_headers,
        signature,
        amz_date,
        expires,
    )
    else {
        return Err(SigV4Error::IncompleteQuery);
    };
    if algorithm != ALGORITHM {
        return Err(SigV4Error::UnsupportedAlgorithm { algorithm });
    }
    let expires_secs = match expires.parse::<u32>() {
        Ok(secs) if secs <= MAX_PRESIGNED_EXPIRES_SECS && !expires.starts_with('+') => secs,
        _ => return Err(SigV4Error::InvalidExpires { value: expires }),
    };
    build_authorization(
        &credential,
        &signed_headers,
        &signature,
        Some(Presigned {
            amz_date,
            expires_secs,
        }),
    )
    .map(Some)
}

/// The parts of an HTTP request that SigV4 covers.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// Method, e.g. `POST`.
    pub method: &'a str,
    /// Raw path as received (percent-encoded as on the wire), e.g. `/`.
    pub path: &'a str,
    /// Raw query string without the `?`; empty when there is none.
    pub query: &'a str,
    /// All request headers.
    pub headers: &'a HeaderMap,
    /// The complete body.
    pub body: &'a [u8],
}

impl<'a> RequestParts<'a> {
    /// Builds the parts from an `http` request head and its collected body.
    pub fn from_http(parts: &'a http::request::Parts, body: &'a [u8]) -> Self {
        RequestParts {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            headers: &parts.headers,
            body,
        }
    }
}

/// Finds the request's authentication: the `Authorization` header if present (a blank one
/// counts as absent), else query-string authentication, else [`SigV4Error::Missing`].
///
/// Unlike [`parse_authorization`], this also reports a missing `X-Amz-Date` header as part of
/// [`SigV4Error::IncompleteAuthorization`], like AWS does.
pub fn extract_authorization(req: &RequestParts<'_>) -> Result<ParsedAuthorization, SigV4Error> {
    let header = req
        .headers
        .get(http::header::AUTHORIZATION)
        .filter(|value| !value.as_bytes().iter().all(|b| *b == b' ' || *b == b'\t'));
    let Some(header) = header else {
        return parse_presigned_query(req.query)?.ok_or(SigV4Error::Missing);
    };
    let date_missing = !req.headers.contains_key(X_AMZ_DATE);
    let parsed = match header.to_str() {
        Ok(value) => parse_authorization(value),
        Err(_) => Err(SigV4Error::IncompleteAuthorization {
            missing: MissingComponents {
                credential: true,
                signature: true,
                signed_headers: true,
                date: false,
            },
            authorization: String::from_utf8_lossy(header.as_bytes()).into_owned(),
        }),
    };
    match parsed {
        Err(SigV4Error::IncompleteAuthorization {
            mut missing,
            authorization,
        }) => {
            missing.date = date_missing;
            Err(SigV4Error::IncompleteAuthorization {
                missing,
                authorization,
            })
        }
        Ok(_) if date_missing => Err(SigV4Error::IncompleteAuthorization {
            missing: MissingComponents {
                date: true,
                ..MissingComponents::default()
            },
            authorization: String::from_utf8_lossy(header.as_bytes()).into_owned(),
        }),
        other => other,
    }
}

// ---------------------------------------------------------------------------------------------
// Canonical request
// ---------------------------------------------------------------------------------------------

/// Receives the bytes of a canonical request or string to sign: a buffer (for debugging and
/// tests) or directly a hash/HMAC context (the hot path, no allocation).
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Sink for digest::Context {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

impl Sink for hmac::Context {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

/// Where canonical header values come from.
trait HeaderSource {
    /// Writes the canonical value of header `name` (lower case): all values trimmed,
    /// whitespace-collapsed and joined with `,`.
    fn write_value<S: Sink>(&self, name: &str, sink: &mut S);
}

impl HeaderSource for HeaderMap {
    fn write_value<S: Sink>(&self, name: &str, sink: &mut S) {
        for (i, value) in self.get_all(name).iter().enumerate() {
            if i > 0 {
                sink.put(b",");
            }
            write_trimmed(sink, value.as_bytes());
        }
    }
}

/// Headers given as `(lower-case name, value)` pairs sorted by name (for signing).
struct HeaderList<'a, N>(&'a [(N, &'a str)]);

impl<N: AsRef<str>> HeaderSource for HeaderList<'_, N> {
    fn write_value<S: Sink>(&self, name: &str, sink: &mut S) {
        let mut first = true;
        for (_, value) in self.0.iter().filter(|(n, _)| n.as_ref() == name) {
            if !first {
                sink.put(b",");
            }
            first = false;
            write_trimmed(sink, value.as_bytes());
        }
    }
}

fn is_space(b: &u8) -> bool {
    *b == b' ' || *b == b'\t'
}

/// Writes `value` without leading/trailing whitespace and with internal runs collapsed.
fn write_trimmed<S: Sink>(sink: &mut S, value: &[u8]) {
    let mut first = true;
    for word in value.split(is_space).filter(|word| !word.is_empty()) {
        if !first {
            sink.put(b" ");
        }
        first = false;
        sink.put(word);
    }
}

const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

/// Writes `bytes` with every byte outside the unreserved set as `%XX` (upper-case hex).
fn write_uri_encoded<S: Sink>(sink: &mut S, bytes: &[u8]) {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !is_unreserved(b) {
            sink.put(&bytes[start..i]);
            let hi = HEX_UPPER[usize::from(b >> 4)];
            let lo = HEX_UPPER[usize::from(b & 0x0f)];
            sink.put(&[b'%', hi, lo]);
            start = i + 1;
        }
    }
    sink.put(&bytes[start..]);
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `raw`; invalid escapes are kept literally, `+` is kept as `+`.
fn percent_decode_bytes(raw: &str) -> Vec<u8> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            if let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex_value),
                bytes.get(i + 2).copied().and_then(hex_value),
            ) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

fn percent_decode(raw: &str) -> String {
    match String::from_utf8(percent_decode_bytes(raw)) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Re-encodes a raw query component: decode, then strict RFC 3986 encoding.
fn canonical_query_component(raw: &str) -> Vec<u8> {
    if raw.bytes().all(is_unreserved) {
        return raw.as_bytes().to_vec();
    }
    let decoded = percent_decode_bytes(raw);
    let mut out = Vec::with_capacity(decoded.len() + 8);
    write_uri_encoded(&mut out, &decoded);
    out
}

/// Does the path need dot-segment / empty-segment normalization?
fn needs_normalization(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return true;
    };
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            "." | ".." => return true,
            "" if !last => return true,
            _ => {}
        }
    }
    false
}

fn write_canonical_path<S: Sink>(sink: &mut S, path: &str) {
    if path == "/" || path.is_empty() {
        sink.put(b"/");
        return;
    }
    if !needs_normalization(path) {
        // Starts with '/': encode every segment, keeping the separators.
        for (i, segment) in path.split('/').enumerate() {
            if i > 0 {
                sink.put(b"/");
            }
            write_uri_encoded(sink, segment.as_bytes());
        }
        return;
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    for segment in &segments {
        sink.put(b"/");
        write_uri_encoded(sink, segment.as_bytes());
    }
    if segments.is_empty() || path.ends_with('/') {
        sink.put(b"/");
    }
}

fn write_canonical_query<S: Sink>(sink: &mut S, query: &str, exclude_signature: bool) {
    if query.is_empty() {
        return;
    }
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                canonical_query_component(key),
                canonical_query_component(value),
            )
        })
        .filter(|(key, _)| !(exclude_signature && key == b"X-Amz-Signature"))
        .collect();
    pairs.sort_unstable();
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            sink.put(b"&");
        }
        sink.put(key);
        sink.put(b"=");
        sink.put(value);
    }
}

/// The request fields that enter the canonical request.
struct CanonicalInput<'a, H, N> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    exclude_query_signature: bool,
    headers: &'a H,
    signed_headers: &'a [N],
    payload_hash: &'a [u8],
}

fn write_canonical_request<S: Sink, H: HeaderSource, N: AsRef<str>>(
    sink: &mut S,
    input: &CanonicalInput<'_, H, N>,
) {
    sink.put(input.method.as_bytes());
    sink.put(b"\n");
    write_canonical_path(sink, input.path);
    sink.put(b"\n");
    write_canonical_query(sink, input.query, input.exclude_query_signature);
    sink.put(b"\n");
    for name in input.signed_headers {
        let name = name.as_ref();
        sink.put(name.as_bytes());
        sink.put(b":");
        input.headers.write_value(name, sink);
        sink.put(b"\n");
    }
    sink.put(b"\n");
    for (i, name) in input.signed_headers.iter().enumerate() {
        if i > 0 {
            sink.put(b";");
        }
        sink.put(name.as_ref().as_bytes());
    }
    sink.put(b"\n");
    sink.put(input.payload_hash);
}

fn write_string_to_sign<S: Sink>(
    sink: &mut S,
    amz_date: &str,
    scope: &CredentialScope<'_>,
    canonical_request_hash: &[u8; 64],
) {
    sink.put(ALGORITHM.as_bytes());
    sink.put(b"\n");
    sink.put(amz_date.as_bytes());
    sink.put(b"\n");
    sink.put(scope.date.as_bytes());
    sink.put(b"/");
    sink.put(scope.region.as_bytes());
    sink.put(b"/");
    sink.put(scope.service.as_bytes());
    sink.put(b"/");
    sink.put(TERMINATOR.as_bytes());
    sink.put(b"\n");
    sink.put(canonical_request_hash);
}

/// Lower-case hex of a 32-byte value.
fn hex32(bytes: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX_LOWER[usize::from(b >> 4)];
        pair[1] = HEX_LOWER[usize::from(b & 0x0f)];
    }
    out
}

/// Decodes exactly 64 hex digits (either case).
fn unhex32(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (b, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *b = hex_value(pair[0])? << 4 | hex_value(pair[1])?;
    }
    Some(out)
}

fn sha256_hex(data: &[u8]) -> [u8; 64] {
    hex32(digest::digest(&digest::SHA256, data).as_ref())
}

/// The payload hash to use, per the rules in the module documentation.
enum PayloadHash<'a> {
    Computed([u8; 64]),
    Header(&'a [u8]),
}

impl PayloadHash<'_> {
    fn as_bytes(&self) -> &[u8] {
        match self {
            PayloadHash::Computed(hex) => hex,
            PayloadHash::Header(value) => value,
        }
    }
}

fn payload_hash<'a>(header: Option<&'a [u8]>, body: &[u8]) -> Result<PayloadHash<'a>, SigV4Error> {
    match header {
        None => Ok(PayloadHash::Computed(sha256_hex(body))),
        Some(value) if value == UNSIGNED_PAYLOAD.as_bytes() => Ok(PayloadHash::Header(value)),
        Some(value) => {
            if value.eq_ignore_ascii_case(&sha256_hex(body)) {
                Ok(PayloadHash::Header(value))
            } else {
                Err(SigV4Error::ContentSha256Mismatch)
            }
        }
    }
}

fn request_payload_hash<'a>(
    req: &RequestParts<'a>,
    signed_headers: &[impl AsRef<str>],
) -> Result<PayloadHash<'a>, SigV4Error> {
    let header = if signed_headers
        .iter()
        .any(|name| name.as_ref() == X_AMZ_CONTENT_SHA256)
    {
        req.headers
            .get(X_AMZ_CONTENT_SHA256)
            .map(|value| value.as_bytes())
    } else {
        None
    };
    payload_hash(header, req.body)
}

/// Computes the canonical request and the string to sign of `req`, as a verifier would.
///
/// `signed_headers` are lower-case names in signing order; `amz_date` is the request's
/// `X-Amz-Date`; `exclude_query_signature` leaves `X-Amz-Signature` out of the canonical query
/// (presigned requests). Meant for tests and diagnostics: [`verify`] computes the same bytes
/// without materializing them.
pub fn canonical_request_and_string_to_sign(
    req: &RequestParts<'_>,
    signed_headers: &[impl AsRef<str>],
    amz_date: &str,
    scope: &CredentialScope<'_>,
    exclude_query_signature: bool,
) -> Result<(String, String), SigV4Error> {
    let hash = request_payload_hash(req, signed_headers)?;
    let mut canonical = Vec::with_capacity(256 + req.query.len());
    write_canonical_request(
        &mut canonical,
        &CanonicalInput {
            method: req.method,
            path: req.path,
            query: req.query,
            exclude_query_signature,
            headers: req.headers,
            signed_headers,
            payload_hash: hash.as_bytes(),
        },
    );
    let mut to_sign = Vec::with_capacity(160);
    write_string_to_sign(&mut to_sign, amz_date, scope, &sha256_hex(&canonical));
    Ok((
        String::from_utf8_lossy(&canonical).into_owned(),
        String::from_utf8_lossy(&to_sign).into_owned(),
    ))
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

/// Derives the SigV4 signing key: `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region),
/// service), "aws4_request")`.
pub fn signing_key(secret: &[u8], date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut k_secret = Zeroizing::new(Vec::with_capacity(4 + secret.len()));
    k_secret.extend_from_slice(b"AWS4");
    k_secret.extend_from_slice(secret);
    let step = |key: &[u8], data: &str| {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
    };
    let k_date = step(&k_secret, date);
    let k_region = step(k_date.as_ref(), region);
    let k_service = step(k_region.as_ref(), service);
    let k_signing = step(k_service.as_ref(), TERMINATOR);
    let mut out = [0u8; 32];
    for (dst, src) in out.iter_mut().zip(k_signing.as_ref()) {
        *dst = *src;
    }
    out
}

/// A derived signing key, ready for HMAC (the HMAC pads are precomputed).
#[derive(Clone)]
pub struct SigningKey(hmac::Key);

impl SigningKey {
    /// Derives the key for a secret and credential scope.
    pub fn derive(secret: &[u8], scope: &CredentialScope<'_>) -> Self {
        let bytes = Zeroizing::new(signing_key(secret, scope.date, scope.region, scope.service));
        Self::from_bytes(&bytes)
    }

    /// Wraps raw signing-key bytes (as returned by [`signing_key`]).
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        SigningKey(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

struct CacheEntry {
    date: String,
    region: String,
    service: String,
    secret: Zeroizing<Vec<u8>>,
    key: SigningKey,
}

#[derive(Default)]
struct CacheMap {
    by_access_key_id: HashMap<String, Vec<CacheEntry>>,
    len: usize,
}

/// A bounded, thread-safe cache of signing keys keyed by (access key id, date, region,
/// service).
///
/// Each entry also remembers the secret it was derived from: a lookup with a different secret
/// (e.g. after a rotation) derives and replaces the key. When full, the whole cache is cleared
/// (entries are only valid for a day anyway). Lookups take a read lock and do not allocate.
pub struct SigningKeyCache {
    max_entries: usize,
    inner: RwLock<CacheMap>,
}

impl SigningKeyCache {
    /// Default bound on the number of cached keys.
    pub const DEFAULT_MAX_ENTRIES: usize = 1024;

    /// A cache holding at most [`Self::DEFAULT_MAX_ENTRIES`] keys.
    pub fn new() -> Self {
        Self::with_max_entries(Self::DEFAULT_MAX_ENTRIES)
    }

    /// A cache holding at most `max_entries` keys (at least 1).
    pub fn with_max_entries(max_entries: usize) -> Self {
        SigningKeyCache {
            max_entries: max_entries.max(1),
            inner: RwLock::new(CacheMap::default()),
        }
    }

    /// Returns the signing key for `access_key_id`/`secret` and `scope`, deriving and caching
    /// it on a miss.
    pub fn get_or_derive(
        &self,
        access_key_id: &str,
        secret: &[u8],
        scope: &CredentialScope<'_>,
    ) -> SigningKey {
        let matches = |entry: &CacheEntry| {
            entry.date == scope.date
                && entry.region == scope.region
                && entry.service == scope.service
        };
        {
            let map = self.inner.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(entry) = map
                .by_access_key_id
                .get(access_key_id)
                .and_then(|entries| entries.iter().find(|e| matches(e)))
            {
                if bool::from(entry.secret.as_slice().ct_eq(secret)) {
                    return entry.key.clone();
                }
            }
        }
        let key = SigningKey::derive(secret, scope);
        let mut map = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if map.len >= self.max_entries {
            map.by_access_key_id.clear();
            map.len = 0;
        }
        let entry = CacheEntry {
            date: scope.date.to_owned(),
            region: scope.region.to_owned(),
            service: scope.service.to_owned(),
            secret: Zeroizing::new(secret.to_vec()),
            key: key.clone(),
        };
        let entries = map
            .by_access_key_id
            .entry(access_key_id.to_owned())
            .or_default();
        if let Some(existing) = entries.iter_mut().find(|e| matches(e)) {
            *existing = entry;
        } else {
            entries.push(entry);
            map.len += 1;
        }
        key
    }

    /// Number of cached keys.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every cached key (e.g. after credentials were reconfigured).
    pub fn clear(&self) {
        let mut map = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        map.by_access_key_id.clear();
        map.len = 0;
    }
}

impl Default for SigningKeyCache {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SigningKeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyCache")
            .field("max_entries", &self.max_entries)
            .field("len", &self.len())
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------------------------

/// Parses `YYYYMMDD'T'HHMMSS'Z'` (exactly; no chrono format-string interpretation).
pub fn parse_amz_date(value: &str) -> Option<DateTime<Utc>> {
    let b = value.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        b.get(range)?.iter().try_fold(0u32, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
        })
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    let naive = NaiveDate::from_ymd_opt(year, num(4..6)?, num(6..8)?)?.and_hms_opt(
        num(9..11)?,
        num(11..13)?,
        num(13..15)?,
    )?;
    Some(Utc.from_utc_datetime(&naive))
}

/// Formats a time as `X-Amz-Date` (`YYYYMMDD'T'HHMMSS'Z'`).
pub fn format_amz_date(time: &DateTime<Utc>) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

// ---------------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------------

/// What a verifier expects of a request's credential scope and clock.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions<'a> {
    /// The service name, e.g. `kms` or `kms-xks-proxy`.
    pub service: &'a str,
    /// The region this server serves.
    pub region: &'a str,
    /// Maximum clock skew (AWS: 5 minutes).
    pub max_skew: Duration,
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
/// Checks, in order: `host` signed; `X-Amz-Date` present, signed and well-formed; a present
/// `X-Amz-Security-Token` header signed; scope date = date of `X-Amz-Date`; service; region;
/// clock window; payload hash; signature (constant-time).
pub fn verify(
    req: &RequestParts<'_>,
    auth: &ParsedAuthorization,
    secret: &[u8],
    service: &str,
    region: &str,
    now: DateTime<Utc>,
    max_skew: Duration,
) -> Result<(), SigV4Error> {
    let options = VerifyOptions {
        service,
        region,
        max_skew,
    };
    verify_inner(req, auth, KeySource::Secret(secret), &options, now)
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
    let mut mac = hmac::Context::with_key(&key.0);
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

// ---------------------------------------------------------------------------------------------
// Signing
// ---------------------------------------------------------------------------------------------

/// Signing credentials and scope.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    /// Access key id.
    pub access_key_id: &'a str,
    /// Secret access key.
    pub secret_access_key: &'a [u8],
    /// Region, e.g. `us-east-1`.
    pub region: &'a str,
    /// Service, e.g. `kms`.
    pub service: &'a str,
}

impl fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
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
    /// Path as it will be sent on the wire, e.g. `/`.
    pub path: &'a str,
    /// Query string as it will be sent, without `?` (empty for none).
    pub query: &'a str,
    /// Further headers to sign (any case). `host` and `x-amz-date` are always signed and
    /// taken from `host` and the signing time; entries with those names are ignored. A
    /// `x-amz-content-sha256` entry's value is used as the payload hash.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub body: &'a [u8],
}

/// The headers produced by [`sign`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// Value of the `Authorization` header.
    pub authorization: String,
    /// Value of the `X-Amz-Date` header.
    pub amz_date: String,
}

/// Signs a request with header authentication, taking the signing key from `cache`.
pub fn sign(
    cache: &SigningKeyCache,
    creds: &Credentials<'_>,
    req: &SignableRequest<'_>,
    time: DateTime<Utc>,
) -> SignedRequest {
    let amz_date = format_amz_date(&time);
    let mut headers: Vec<(String, &str)> = Vec::with_capacity(req.headers.len() + 2);
    headers.push((HOST.to_owned(), req.host));
    headers.push((X_AMZ_DATE.to_owned(), &amz_date));
    for (name, value) in req.headers {
        let name = name.trim().to_ascii_lowercase();
        if name != HOST && name != X_AMZ_DATE {
            headers.push((name, value));
        }
    }
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let mut names: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
    names.dedup();
    let content_sha = headers
        .iter()
        .find(|(name, _)| name == X_AMZ_CONTENT_SHA256)
        .map(|(_, value)| value.trim().as_bytes());
    let hash = match content_sha {
        Some(value) => PayloadHash::Header(value),
        None => PayloadHash::Computed(sha256_hex(req.body)),
    };
    let signature = sign_with(
        cache,
        creds,
        &CanonicalInput {
            method: req.method,
            path: req.path,
            query: req.query,
            exclude_query_signature: false,
            headers: &HeaderList(&headers),
            signed_headers: &names,
            payload_hash: hash.as_bytes(),
        },
        &amz_date,
    );
    let authorization = authorization_value(creds, &amz_date, &names.join(";"), &signature);
    SignedRequest {
        authorization,
        amz_date,
    }
}

fn sign_with<H: HeaderSource, N: AsRef<str>>(
    cache: &SigningKeyCache,
    creds: &Credentials<'_>,
    input: &CanonicalInput<'_, H, N>,
    amz_date: &str,
) -> [u8; 64] {
    let mut canonical = digest::Context::new(&digest::SHA256);
    write_canonical_request(&mut canonical, input);
    let canonical_hash = hex32(canonical.finish().as_ref());
    let scope = CredentialScope {
        date: amz_date.get(..8).unwrap_or(amz_date),
        region: creds.region,
        service: creds.service,
    };
    let key = cache.get_or_derive(creds.access_key_id, creds.secret_access_key, &scope);
    let mut mac = hmac::Context::with_key(&key.0);
    write_string_to_sign(&mut mac, amz_date, &scope, &canonical_hash);
    hex32(mac.sign().as_ref())
}

fn authorization_value(
    creds: &Credentials<'_>,
    amz_date: &str,
    signed_headers: &str,
    signature: &[u8; 64],
) -> String {
    let date = amz_date.get(..8).unwrap_or(amz_date);
    let mut out = String::with_capacity(
        ALGORITHM.len()
            + creds.access_key_id.len()
            + creds.region.len()
            + creds.service.len()
            + signed_headers.len()
            + 140,
    );
    out.push_str(ALGORITHM);
    out.push_str(" Credential=");
    out.push_str(creds.access_key_id);
    out.push('/');
    out.push_str(date);
    out.push('/');
    out.push_str(creds.region);
    out.push('/');
    out.push_str(creds.service);
    out.push('/');
    out.push_str(TERMINATOR);
    out.push_str(", SignedHeaders=");
    out.push_str(signed_headers);
    out.push_str(", Signature=");
    // `signature` is ASCII hex.
    out.extend(signature.iter().map(|&b| char::from(b)));
    out
}

/// Signs a KMS JSON-protocol request (`POST /`, `X-Amz-Target: TrentService.<operation>`),
/// signing `content-type;host;x-amz-date;x-amz-target` like botocore.
///
/// Returns the headers to send besides `Host` (which must be exactly `host`):
/// `Content-Type`, `X-Amz-Target`, `X-Amz-Date`, `Authorization`, in that order.
pub fn sign_kms_json(
    cache: &SigningKeyCache,
    creds: &Credentials<'_>,
    host: &str,
    operation: &str,
    body: &[u8],
    time: DateTime<Utc>,
) -> [(&'static str, String); 4] {
    const SIGNED: [&str; 4] = ["content-type", HOST, X_AMZ_DATE, "x-amz-target"];
    let amz_date = format_amz_date(&time);
    let mut target = String::with_capacity(KMS_TARGET_PREFIX.len() + operation.len());
    target.push_str(KMS_TARGET_PREFIX);
    target.push_str(operation);
    let headers: [(&str, &str); 4] = [
        (SIGNED[0], KMS_JSON_CONTENT_TYPE),
        (SIGNED[1], host),
        (SIGNED[2], &amz_date),
        (SIGNED[3], &target),
    ];
    let signature = sign_with(
        cache,
        creds,
        &CanonicalInput {
            method: "POST",
            path: "/",
            query: "",
            exclude_query_signature: false,
            headers: &HeaderList(&headers),
            signed_headers: &SIGNED,
            payload_hash: &sha256_hex(body),
        },
        &amz_date,
    );
    let authorization = authorization_value(
        creds,
        &amz_date,
        "content-type;host;x-amz-date;x-amz-target",
        &signature,
    );
    [
        ("Content-Type", KMS_JSON_CONTENT_TYPE.to_owned()),
        ("X-Amz-Target", target),
        ("X-Amz-Date", amz_date),
        ("Authorization", authorization),
    ]
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};

    const GOLDEN: &str = include_str!("../tests/data/sigv4-captured-requests.txt");
    const GOLDEN_SECRET: &[u8] = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

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

    fn five_min() -> Duration {
        Duration::minutes(5)
    }

    #[test]
    fn golden_requests_verify_with_the_right_secret_only() {
        let captured = parse_golden();
        assert_eq!(captured.len(), GOLDEN.matches("\n=== ").count());
        assert!(captured.len() >= 12);
        let cache = SigningKeyCache::new();
        let options = VerifyOptions {
            service: "kms",
            region: "us-east-1",
            max_skew: five_min(),
        };
        for (i, request) in captured.iter().enumerate() {
            let parts = request.parts();
            let auth = extract_authorization(&parts).unwrap();
            assert_eq!(auth.access_key_id, "AKIDEXAMPLE");
            let now = request.now();
            verify(
                &parts,
                &auth,
                GOLDEN_SECRET,
                "kms",
                "us-east-1",
                now,
                five_min(),
            )
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
            verify_cached(&parts, &auth, GOLDEN_SECRET, &cache, &options, now).unwrap();
            // Still valid at the edges of the window.
            verify(
                &parts,
                &auth,
                GOLDEN_SECRET,
                "kms",
                "us-east-1",
                now + five_min(),
                five_min(),
            )
            .unwrap();
            verify(
                &parts,
                &auth,
                GOLDEN_SECRET,
                "kms",
                "us-east-1",
                now - five_min(),
                five_min(),
            )
            .unwrap();

            let wrong = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEz";
            assert_eq!(
                verify(&parts, &auth, wrong, "kms", "us-east-1", now, five_min()),
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

    #[test]
    fn golden_requests_fail_when_tampered() {
        for request in parse_golden() {
            let now = request.now();
            let check = |parts: &RequestParts<'_>| {
                let auth = extract_authorization(parts).unwrap();
                verify(
                    parts,
                    &auth,
                    GOLDEN_SECRET,
                    "kms",
                    "us-east-1",
                    now,
                    five_min(),
                )
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

    #[test]
    fn signing_key_matches_aws_documentation_example() {
        let key = signing_key(GOLDEN_SECRET, "20150830", "us-east-1", "iam");
        assert_eq!(
            &hex32(&key)[..],
            b"c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
    }

    fn test_suite_request(query: &str) -> (HeaderMap, String) {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
        headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        (headers, query.to_owned())
    }

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
            verify(
                &parts,
                &auth,
                GOLDEN_SECRET,
                "service",
                "us-east-1",
                now,
                five_min(),
            )
            .unwrap();
        }
    }

    #[test]
    fn canonical_request_text() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
        headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        headers.append("my-header", HeaderValue::from_static("  a   b  "));
        headers.append("my-header", HeaderValue::from_static("c\t\td"));
        let parts = RequestParts {
            method: "GET",
            path: "/a/./b/../c//d%2Fe/",
            query: "b=2&a=%7e x&a=1&X-Amz-Signature=zz&c",
            headers: &headers,
            body: b"",
        };
        let scope = CredentialScope {
            date: "20150830",
            region: "us-east-1",
            service: "service",
        };
        let signed = ["host", "my-header", "x-amz-date"];
        let (canonical, to_sign) =
            canonical_request_and_string_to_sign(&parts, &signed, "20150830T123600Z", &scope, true)
                .unwrap();
        assert_eq!(
            canonical,
            "GET\n/a/c/d%252Fe/\na=1&a=~%20x&b=2&c=\nhost:example.amazonaws.com\n\
             my-header:a b,c d\nx-amz-date:20150830T123600Z\n\nhost;my-header;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let hash = sha256_hex(canonical.as_bytes());
        assert_eq!(
            to_sign,
            format!(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n{}",
                std::str::from_utf8(&hash).unwrap()
            )
        );
        // Without the presigned flag, X-Amz-Signature stays in the query.
        let (canonical, _) = canonical_request_and_string_to_sign(
            &parts,
            &signed,
            "20150830T123600Z",
            &scope,
            false,
        )
        .unwrap();
        assert!(canonical.contains("\nX-Amz-Signature=zz&a=1&"));
    }

    #[test]
    fn canonical_paths() {
        let canon = |path: &str| {
            let mut out = Vec::new();
            write_canonical_path(&mut out, path);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(canon("/"), "/");
        assert_eq!(canon(""), "/");
        assert_eq!(
            canon("/prefix/kms/xks/v1/keys/key-1_a.b~c/encrypt"),
            "/prefix/kms/xks/v1/keys/key-1_a.b~c/encrypt"
        );
        assert_eq!(canon("/a/"), "/a/");
        assert_eq!(canon("//"), "/");
        assert_eq!(canon("/.."), "/");
        assert_eq!(canon("/a/b/.."), "/a");
        assert_eq!(canon("/a b:c"), "/a%20b%3Ac");
        assert_eq!(canon("/a%20b"), "/a%2520b");
        assert_eq!(canon("a/b"), "/a/b");
    }

    #[test]
    fn sign_output_verifies_and_tampering_fails() {
        let cache = SigningKeyCache::new();
        let creds = Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE",
            secret_access_key: b"secret",
            region: "eu-west-1",
            service: "kms",
        };
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 7, 15, 0).unwrap();
        let body = br#"{"KeyId":"alias/a","Plaintext":"AAAA"}"#;
        let signed = sign_kms_json(&cache, &creds, "127.0.0.1:4599", "Encrypt", body, now);
        assert_eq!(signed[2].1, "20261122T071500Z");
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:4599"));
        for (name, value) in &signed {
            headers.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        let options = VerifyOptions {
            service: "kms",
            region: "eu-west-1",
            max_skew: five_min(),
        };
        let run = |headers: &HeaderMap, body: &[u8], now: DateTime<Utc>| {
            let parts = RequestParts {
                method: "POST",
                path: "/",
                query: "",
                headers,
                body,
            };
            let auth = extract_authorization(&parts)?;
            verify_cached(&parts, &auth, b"secret", &cache, &options, now)
        };
        run(&headers, body, now).unwrap();

        // The generic signer yields the same signature.
        let generic = sign(
            &cache,
            &creds,
            &SignableRequest {
                method: "POST",
                host: "127.0.0.1:4599",
                path: "/",
                query: "",
                headers: &[
                    ("X-Amz-Target", "TrentService.Encrypt"),
                    ("Content-Type", KMS_JSON_CONTENT_TYPE),
                ],
                body,
            },
            now,
        );
        assert_eq!(generic.authorization, signed[3].1);
        assert_eq!(generic.amz_date, signed[2].1);

        assert_eq!(
            run(&headers, b"{}", now),
            Err(SigV4Error::SignatureMismatch)
        );
        for (name, value) in [
            ("x-amz-target", "TrentService.Decrypt"),
            ("x-amz-date", "20261122T071501Z"),
            ("content-type", "application/json"),
            ("host", "127.0.0.1:4598"),
        ] {
            let mut tampered = headers.clone();
            tampered.insert(name, HeaderValue::from_static(value));
            assert_eq!(
                run(&tampered, body, now),
                Err(SigV4Error::SignatureMismatch),
                "{name}"
            );
        }

        // Clock skew.
        let late = now + Duration::minutes(5) + Duration::seconds(1);
        let err = run(&headers, body, late).unwrap_err();
        assert!(
            matches!(err, SigV4Error::SignatureExpired { .. }),
            "{err:?}"
        );
        assert_eq!(err.aws_error_code(), "InvalidSignatureException");
        let early = now - Duration::minutes(5) - Duration::seconds(1);
        let err = run(&headers, body, early).unwrap_err();
        assert!(
            matches!(err, SigV4Error::SignatureNotYetCurrent { .. }),
            "{err:?}"
        );
        run(&headers, body, now + Duration::minutes(5)).unwrap();
        run(&headers, body, now - Duration::minutes(5)).unwrap();
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
        assert_eq!(err.aws_error_code(), "InvalidSignatureException");
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

    fn verify_headers(headers: &HeaderMap) -> Result<(), SigV4Error> {
        let parts = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers,
            body: b"{}",
        };
        let auth = extract_authorization(&parts)?;
        let now = parse_amz_date("20261122T062947Z").unwrap();
        verify(
            &parts,
            &auth,
            GOLDEN_SECRET,
            "kms",
            "us-east-1",
            now,
            five_min(),
        )
    }

    const SIG: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn scope_and_signed_header_checks() {
        let auth = |cred: &str, signed: &str| {
            format!("AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders={signed}, Signature={SIG}")
        };
        let date = "20261122T062947Z";

        let err = verify_headers(&header_request(
            &auth("AKID/20261122/us-east-1/kms/aws4_request", "x-amz-date"),
            date,
        ))
        .unwrap_err();
        assert_eq!(err, SigV4Error::HostNotSigned);
        assert_eq!(err.aws_error_code(), "IncompleteSignatureException");

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
        assert_eq!(err.aws_error_code(), "InvalidSignatureException");

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
    fn parse_errors_are_incomplete_signature() {
        let cases = [
            "AWS4-HMAC-SHA256",
            "AWS4-HMAC-SHA256 Credential=AKID/20261122/us-east-1/kms/aws4_request",
            "Bearer abc",
            "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00",
        ];
        for case in cases {
            let err = parse_authorization(case).unwrap_err();
            assert!(
                matches!(err, SigV4Error::IncompleteAuthorization { .. }),
                "{case}: {err:?}"
            );
            assert_eq!(err.aws_error_code(), "IncompleteSignatureException");
        }
        let err = parse_authorization("Bearer abc").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Authorization header requires 'Credential' parameter. Authorization header \
             requires 'Signature' parameter. Authorization header requires 'SignedHeaders' \
             parameter. Authorization=Bearer abc"
        );
        // Through extract_authorization a missing X-Amz-Date is reported too.
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer abc"));
        let parts = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: b"",
        };
        assert!(extract_authorization(&parts)
            .unwrap_err()
            .to_string()
            .contains("requires existence of either a 'X-Amz-Date' or a 'Date' header. "));

        let err = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKID/20261122/us-east-1/kms, SignedHeaders=host, \
             Signature=00",
        )
        .unwrap_err();
        assert!(matches!(err, SigV4Error::MalformedCredential { .. }));
        assert_eq!(err.aws_error_code(), "IncompleteSignatureException");

        let err = parse_authorization(
            "AWS4-HMAC-SHA512 Credential=AKID/20261122/us-east-1/kms/aws4_request, \
             SignedHeaders=host, Signature=00",
        )
        .unwrap_err();
        assert!(matches!(err, SigV4Error::UnsupportedAlgorithm { .. }));
        assert_eq!(err.aws_error_code(), "IncompleteSignatureException");

        let err = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKID/20261122/us-east-1/kms/aws5_request, \
             SignedHeaders=host, Signature=00",
        )
        .unwrap_err();
        assert!(matches!(err, SigV4Error::InvalidTerminator { .. }));
    }

    #[test]
    fn hostile_signed_header_names_do_not_panic() {
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
        assert_eq!(
            verify(
                &parts,
                &auth,
                GOLDEN_SECRET,
                "kms",
                "us-east-1",
                now,
                five_min()
            ),
            Err(SigV4Error::SignatureMismatch)
        );
    }

    #[test]
    fn parse_tolerates_spacing() {
        for value in [
            "AWS4-HMAC-SHA256 Credential=AK/20261122/us-east-1/kms/aws4_request, SignedHeaders=Host;X-Amz-Date, Signature=ab",
            "AWS4-HMAC-SHA256 Credential=AK/20261122/us-east-1/kms/aws4_request,SignedHeaders=Host;X-Amz-Date,Signature=ab",
            "  AWS4-HMAC-SHA256   Signature=ab  SignedHeaders=Host;X-Amz-Date ,, Credential=AK/20261122/us-east-1/kms/aws4_request",
        ] {
            let auth = parse_authorization(value).unwrap();
            assert_eq!(
                auth,
                ParsedAuthorization {
                    access_key_id: "AK".into(),
                    date: "20261122".into(),
                    region: "us-east-1".into(),
                    service: "kms".into(),
                    signed_headers: vec!["host".into(), "x-amz-date".into()],
                    signature: "ab".into(),
                    presigned: None,
                }
            );
        }
    }

    #[test]
    fn missing_authentication() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1"));
        let parts = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: b"",
        };
        let err = extract_authorization(&parts).unwrap_err();
        assert_eq!(err, SigV4Error::Missing);
        assert_eq!(err.aws_error_code(), "MissingAuthenticationTokenException");
        assert_eq!(err.to_string(), "Missing Authentication Token");
        assert_eq!(err.http_status(), 403);
        let parts = RequestParts {
            query: "Action=ListKeys&X-Amz-Date=20261122T062947Z",
            ..parts
        };
        assert_eq!(extract_authorization(&parts), Err(SigV4Error::Missing));
        let parts = RequestParts {
            query: "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            ..parts
        };
        assert_eq!(
            extract_authorization(&parts),
            Err(SigV4Error::IncompleteQuery)
        );
    }

    /// Builds a presigned query the way an SDK does (independently of the verifier).
    fn presign(now: DateTime<Utc>, expires: u32, secret: &[u8]) -> String {
        let amz_date = format_amz_date(&now);
        let date = &amz_date[..8];
        let base = format!(
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F{date}%2Fus-east-1%2Fkms%2Faws4_request\
             &X-Amz-Date={amz_date}&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host"
        );
        let canonical = format!(
            "GET\n/\n{base}\nhost:127.0.0.1\n\nhost\n{}",
            std::str::from_utf8(&sha256_hex(b"")).unwrap()
        );
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{date}/us-east-1/kms/aws4_request\n{}",
            std::str::from_utf8(&sha256_hex(canonical.as_bytes())).unwrap()
        );
        let key = signing_key(secret, date, "us-east-1", "kms");
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), to_sign.as_bytes());
        format!(
            "{base}&X-Amz-Signature={}",
            std::str::from_utf8(&hex32(tag.as_ref())).unwrap()
        )
    }

    #[test]
    fn presigned_query() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 22, 7, 15, 0).unwrap();
        let query = presign(t0, 60, GOLDEN_SECRET);
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
        let check = |now| {
            verify(
                &parts,
                &auth,
                GOLDEN_SECRET,
                "kms",
                "us-east-1",
                now,
                five_min(),
            )
        };
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
            verify(&parts, &auth, b"wrong", "kms", "us-east-1", t0, five_min()),
            Err(SigV4Error::SignatureMismatch)
        );
        let tampered = query.replace("X-Amz-Expires=60", "X-Amz-Expires=600");
        let parts = RequestParts {
            query: &tampered,
            ..parts
        };
        let auth = extract_authorization(&parts).unwrap();
        assert_eq!(
            verify(
                &parts,
                &auth,
                GOLDEN_SECRET,
                "kms",
                "us-east-1",
                t0,
                five_min()
            ),
            Err(SigV4Error::SignatureMismatch)
        );
        let bad = query.replace("X-Amz-Expires=60", "X-Amz-Expires=604801");
        assert!(matches!(
            parse_presigned_query(&bad),
            Err(SigV4Error::InvalidExpires { .. })
        ));
    }

    #[test]
    fn content_sha256_header() {
        let cache = SigningKeyCache::new();
        let creds = Credentials {
            access_key_id: "AKID",
            secret_access_key: GOLDEN_SECRET,
            region: "us-east-1",
            service: "kms",
        };
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 7, 15, 0).unwrap();
        let body_hash = sha256_hex(b"{}");
        let body_hash = std::str::from_utf8(&body_hash).unwrap();
        for (value, body, expected) in [
            (UNSIGNED_PAYLOAD, &b"{\"x\":1}"[..], Ok(())),
            (body_hash, &b"{}"[..], Ok(())),
            (
                body_hash,
                &b"{ }"[..],
                Err(SigV4Error::ContentSha256Mismatch),
            ),
        ] {
            let signed = sign(
                &cache,
                &creds,
                &SignableRequest {
                    method: "POST",
                    host: "h",
                    path: "/",
                    query: "",
                    headers: &[("X-Amz-Content-Sha256", value)],
                    body,
                },
                now,
            );
            let mut headers = HeaderMap::new();
            headers.insert("host", HeaderValue::from_static("h"));
            headers.insert(
                "x-amz-content-sha256",
                HeaderValue::from_str(value).unwrap(),
            );
            headers.insert(
                "x-amz-date",
                HeaderValue::from_str(&signed.amz_date).unwrap(),
            );
            headers.insert(
                "authorization",
                HeaderValue::from_str(&signed.authorization).unwrap(),
            );
            let parts = RequestParts {
                method: "POST",
                path: "/",
                query: "",
                headers: &headers,
                body,
            };
            let auth = extract_authorization(&parts).unwrap();
            assert_eq!(
                verify(
                    &parts,
                    &auth,
                    GOLDEN_SECRET,
                    "kms",
                    "us-east-1",
                    now,
                    five_min()
                ),
                expected
            );
        }
    }

    #[test]
    fn amz_date_round_trip_and_strictness() {
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(format_amz_date(&t), "20260102T030405Z");
        assert_eq!(t.format(AMZ_DATE_FORMAT).to_string(), "20260102T030405Z");
        assert_eq!(parse_amz_date("20260102T030405Z"), Some(t));
        for bad in [
            "20260102T030405",
            "2026010T030405Z0",
            "20261302T030405Z",
            "20260102T250405Z",
            "2026+102T030405Z",
            "20260102t030405Z",
            "",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn cache_is_bounded_and_tracks_secrets() {
        let cache = SigningKeyCache::with_max_entries(2);
        let scope = |date| CredentialScope {
            date,
            region: "r",
            service: "s",
        };
        cache.get_or_derive("a", b"x", &scope("20260101"));
        cache.get_or_derive("a", b"x", &scope("20260101"));
        assert_eq!(cache.len(), 1);
        cache.get_or_derive("a", b"y", &scope("20260101"));
        assert_eq!(cache.len(), 1);
        cache.get_or_derive("b", b"x", &scope("20260101"));
        assert_eq!(cache.len(), 2);
        cache.get_or_derive("a", b"x", &scope("20260102"));
        assert_eq!(cache.len(), 1);
        cache.clear();
        assert!(cache.is_empty());
    }

    /// Rough cost of signing and of verifying (with the key cache) one KMS request:
    /// `cargo test --release --lib sigv4::tests::timing -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing report, run manually in release mode"]
    fn timing() {
        let cache = SigningKeyCache::new();
        let creds = Credentials {
            access_key_id: "AKID",
            secret_access_key: GOLDEN_SECRET,
            region: "us-east-1",
            service: "kms",
        };
        let now = Utc::now();
        let body = [b'x'; 400];
        let n = 200_000u32;
        let start = std::time::Instant::now();
        let mut signed = sign_kms_json(&cache, &creds, "127.0.0.1:4599", "Encrypt", &body, now);
        for _ in 1..n {
            signed = sign_kms_json(&cache, &creds, "127.0.0.1:4599", "Encrypt", &body, now);
        }
        println!("sign_kms_json: {:?}/request", start.elapsed() / n);
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:4599"));
        for (name, value) in &signed {
            headers.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let options = VerifyOptions {
            service: "kms",
            region: "us-east-1",
            max_skew: five_min(),
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

    #[test]
    fn hex_helpers() {
        let bytes: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37)).collect();
        let hex = hex32(&bytes);
        assert_eq!(
            unhex32(std::str::from_utf8(&hex).unwrap()).unwrap()[..],
            bytes[..]
        );
        assert_eq!(unhex32("zz"), None);
    }
}
