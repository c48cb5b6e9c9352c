//! Why a request failed SigV4 authentication ([`SigV4Error`]), the AWS error kind each failure
//! is answered with ([`AwsErrorKind`]), and the AWS wording of every message.
//!
//! This module owns the classification and the text; it does not build HTTP responses (status
//! codes and JSON bodies belong to each server's edge) and never renders a secret, a signing
//! key or a session token: the values it echoes (the `Authorization` header, a credential, a
//! date) are the ones AWS itself echoes.

use std::fmt;

use chrono::{DateTime, Duration, Utc};

use crate::parse::format_amz_date;
use crate::MAX_PRESIGNED_EXPIRES_SECS;

/// The AWS exception a SigV4 failure is answered with.
///
/// Deliberately *not* `#[non_exhaustive]`: a server maps each kind to its own error type with
/// an exhaustive `match`, so a kind added here fails to compile at every edge until someone
/// decides how that edge answers it (instead of silently falling into a wildcard arm).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AwsErrorKind {
    /// `MissingAuthenticationTokenException`: the request carries no authentication at all.
    MissingAuthenticationToken,
    /// `IncompleteSignatureException`: the authentication is malformed, or does not cover what
    /// the service requires it to cover. Retrying the same request cannot help.
    IncompleteSignature,
    /// `InvalidSignatureException`: well-formed, but wrong: signature, scope or time. The JS
    /// SDK v3 treats this code as a possible clock-skew error and retries with a corrected
    /// clock.
    InvalidSignature,
}

impl AwsErrorKind {
    /// The AWS exception name (`__type` of a JSON error response).
    pub fn code(self) -> &'static str {
        match self {
            AwsErrorKind::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            AwsErrorKind::IncompleteSignature => "IncompleteSignatureException",
            AwsErrorKind::InvalidSignature => "InvalidSignatureException",
        }
    }

    /// The HTTP status AWS uses with this kind: 403 for a missing token, 400 otherwise.
    pub fn http_status(self) -> u16 {
        match self {
            AwsErrorKind::MissingAuthenticationToken => 403,
            AwsErrorKind::IncompleteSignature | AwsErrorKind::InvalidSignature => 400,
        }
    }
}

impl fmt::Display for AwsErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

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
/// [`SigV4Error::kind`] gives the AWS error kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
    /// Query-string ("presigned") authentication, which the verifier's policy refuses
    /// ([`VerifyOptions::allow_presigned`](crate::VerifyOptions::allow_presigned)).
    PresignedNotAccepted,
    /// `host` is not among the signed headers.
    HostNotSigned,
    /// `x-amz-date` is not among the signed headers (header authentication).
    DateNotSigned,
    /// An `X-Amz-Security-Token` header is present but not signed.
    SecurityTokenNotSigned,
    /// A header the verifier's policy requires to be signed
    /// ([`VerifyOptions::required_signed_headers`](crate::VerifyOptions::required_signed_headers))
    /// is not among the signed headers.
    RequiredHeaderNotSigned {
        /// The header's lower-case name.
        name: String,
    },
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
    /// A signed `x-amz-content-sha256: UNSIGNED-PAYLOAD`, which the verifier's policy refuses
    /// ([`VerifyOptions::allow_unsigned_payload`](crate::VerifyOptions::allow_unsigned_payload)).
    UnsignedPayloadNotAccepted,
    /// The signature is not the one computed with the secret.
    SignatureMismatch,
}

impl SigV4Error {
    /// The AWS error kind of this failure.
    ///
    /// Policy refusals (presigned, a required header not signed, `UNSIGNED-PAYLOAD`) are
    /// `IncompleteSignature`, like AWS's own "'Host' must be a 'SignedHeader'": the signature
    /// may well be correct, it just does not cover what the service requires. They are not
    /// `InvalidSignature` on purpose: the JS SDK v3 lists `InvalidSignatureException` among
    /// its `CLOCK_SKEW_ERROR_CODES` (retryable after correcting the clock), and a retry cannot
    /// help here; the message names what must be signed instead.
    pub fn kind(&self) -> AwsErrorKind {
        match self {
            SigV4Error::Missing => AwsErrorKind::MissingAuthenticationToken,
            SigV4Error::IncompleteAuthorization { .. }
            | SigV4Error::IncompleteQuery
            | SigV4Error::UnsupportedAlgorithm { .. }
            | SigV4Error::MalformedCredential { .. }
            | SigV4Error::PresignedNotAccepted
            | SigV4Error::HostNotSigned
            | SigV4Error::DateNotSigned
            | SigV4Error::SecurityTokenNotSigned
            | SigV4Error::RequiredHeaderNotSigned { .. }
            | SigV4Error::InvalidDate { .. }
            | SigV4Error::InvalidExpires { .. }
            | SigV4Error::UnsignedPayloadNotAccepted => AwsErrorKind::IncompleteSignature,
            SigV4Error::InvalidTerminator { .. }
            | SigV4Error::ScopeDateMismatch { .. }
            | SigV4Error::WrongRegion { .. }
            | SigV4Error::WrongService { .. }
            | SigV4Error::SignatureExpired { .. }
            | SigV4Error::SignatureNotYetCurrent { .. }
            | SigV4Error::ContentSha256Mismatch
            | SigV4Error::SignatureMismatch => AwsErrorKind::InvalidSignature,
        }
    }

    /// The AWS exception name (`__type` of a JSON error response) for this error:
    /// `self.kind().code()`.
    pub fn aws_error_code(&self) -> &'static str {
        self.kind().code()
    }

    /// The HTTP status AWS uses with [`Self::kind`]: 403 for a missing token, 400 otherwise.
    pub fn http_status(&self) -> u16 {
        self.kind().http_status()
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
            SigV4Error::PresignedNotAccepted => f.write_str(
                "Query-string authentication (a presigned request) is not accepted by this \
                 service. Sign the request with the 'Authorization' header.",
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
            SigV4Error::RequiredHeaderNotSigned { name } => write!(
                f,
                "'{}' must be a 'SignedHeader' in the AWS Authorization.",
                HeaderTitle(name)
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
            SigV4Error::UnsignedPayloadNotAccepted => f.write_str(
                "'x-amz-content-sha256: UNSIGNED-PAYLOAD' is not accepted by this service: the \
                 signature must cover the SHA-256 of the body.",
            ),
            SigV4Error::SignatureMismatch => f.write_str(
                "The request signature we calculated does not match the signature you provided. \
                 Check your AWS Secret Access Key and signing method. Consult the service \
                 documentation for details.",
            ),
        }
    }
}

/// Displays a lower-case header name the way AWS messages spell headers: `X-Amz-Target`.
struct HeaderTitle<'a>(&'a str);

impl fmt::Display for HeaderTitle<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, word) in self.0.split('-').enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                write!(f, "{}{}", first.to_ascii_uppercase(), chars.as_str())?;
            }
        }
        Ok(())
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_aws_codes_and_statuses() {
        for (kind, code, status) in [
            (
                AwsErrorKind::MissingAuthenticationToken,
                "MissingAuthenticationTokenException",
                403,
            ),
            (
                AwsErrorKind::IncompleteSignature,
                "IncompleteSignatureException",
                400,
            ),
            (
                AwsErrorKind::InvalidSignature,
                "InvalidSignatureException",
                400,
            ),
        ] {
            assert_eq!(kind.code(), code);
            assert_eq!(kind.to_string(), code);
            assert_eq!(kind.http_status(), status);
        }
    }

    #[test]
    fn policy_refusals_are_incomplete_signature_and_name_the_header() {
        let err = SigV4Error::RequiredHeaderNotSigned {
            name: "x-amz-target".into(),
        };
        assert_eq!(err.kind(), AwsErrorKind::IncompleteSignature);
        assert_eq!(
            err.to_string(),
            "'X-Amz-Target' must be a 'SignedHeader' in the AWS Authorization."
        );
        assert_eq!(
            SigV4Error::RequiredHeaderNotSigned {
                name: "content-type".into()
            }
            .to_string(),
            "'Content-Type' must be a 'SignedHeader' in the AWS Authorization."
        );
        for err in [
            SigV4Error::PresignedNotAccepted,
            SigV4Error::UnsignedPayloadNotAccepted,
        ] {
            assert_eq!(err.kind(), AwsErrorKind::IncompleteSignature);
            assert_eq!(err.aws_error_code(), "IncompleteSignatureException");
            assert_eq!(err.http_status(), 400);
        }
    }
}
