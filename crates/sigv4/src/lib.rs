//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`) for our servers and our clients.
//!
//! # What this crate owns
//! * **Verification, our own code**, on the hot path of every KMS and XKS request:
//!   [`parse`](extract_authorization) the `Authorization` header or the presigned query,
//!   recompute the [canonical request](canonical_request_and_string_to_sign) without
//!   materializing it, take the signing key from a bounded [cache](SigningKeyCache), and
//!   [verify](verify_cached) under a per-service policy ([`VerifyOptions`]: scope, clock
//!   skew, headers that must be signed, presigned requests, `UNSIGNED-PAYLOAD`).
//!   Pure code: no I/O, no clock (callers pass "now"), no credential store.
//! * **Signing, through the `aws-sigv4` crate** ([`Signer`]): a thin wrapper, so what our
//!   clients send is signed by AWS's own Rust signer, and our verifier is checked against that
//!   signer on thousands of random requests (`tests/differential.rs`) as well as against the
//!   requests of real clients (`tests/data/sigv4-captured-requests.txt`) and AWS's published
//!   test vectors.
//! * **A typed classification** of every failure ([`SigV4Error::kind`] -> [`AwsErrorKind`]),
//!   whose `Display` is AWS's message, so servers map errors by `match`, never by text.
//!
//! # What it refuses to do
//! * Look up credentials, decide whether an access key id is known, or validate a session
//!   token: the caller maps the access key id to a secret (and answers
//!   `UnrecognizedClientException`); this crate only proves possession of that secret.
//! * Build HTTP responses: statuses and bodies belong to each server's edge.
//! * SigV4a (ECDSA), chunked payload signatures (`STREAMING-*`), S3's single-encoding path
//!   rules, or the HTTP `Date` header in place of `X-Amz-Date`.
//! * Verify by re-signing with `aws-sigv4`: that allocates the canonical request as text and
//!   derives the signing key every time. On a 400-byte KMS `Encrypt` (release build, 100k
//!   iterations, shared 2-core VM at load 5-6) `aws-sigv4` signed in 7.6-12 µs, our
//!   `extract_authorization` + `verify_cached` took 2.6-4.2 µs; re-measure with
//!   `cargo test --release -p sigv4 --lib verify::tests::timing -- --ignored --nocapture`.
//! * Log or `Debug`-print secrets, signing keys or session tokens.
//!
//! # Modules
//! * `error`: [`SigV4Error`], [`AwsErrorKind`], AWS's messages.
//! * `parse`: `Authorization` header, presigned query, `X-Amz-Date`.
//! * `canonical`: canonical request and string to sign (its docs list the rules, and where
//!   real signers disagree).
//! * `key`: signing-key derivation and the bounded cache.
//! * `verify`: verification and its policy.
//! * `sign`: [`Signer`], over `aws-sigv4`.

#![forbid(unsafe_code)]

mod canonical;
mod error;
mod key;
mod parse;
mod sign;
mod verify;

pub use canonical::{canonical_request_and_string_to_sign, RequestParts};
pub use error::{AwsErrorKind, MissingComponents, SigV4Error};
pub use key::{signing_key, SigningKey, SigningKeyCache};
pub use parse::{
    extract_authorization, format_amz_date, parse_amz_date, parse_authorization,
    parse_presigned_query, CredentialScope, ParsedAuthorization, Presigned,
};
pub use sign::{SignError, SignableRequest, SignedRequest, Signer};
pub use verify::{verify, verify_cached, VerifyOptions};

/// The only supported signing algorithm.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The credential scope terminator.
pub const TERMINATOR: &str = "aws4_request";
/// Payload hash placeholder allowed in a signed `x-amz-content-sha256` header (when the
/// verifier's policy allows it).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// `chrono` format of `X-Amz-Date` (ISO 8601 basic format, UTC).
pub const AMZ_DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";
/// Largest `X-Amz-Expires` accepted for presigned requests (7 days).
pub const MAX_PRESIGNED_EXPIRES_SECS: u32 = 604_800;
/// `Content-Type` of the KMS JSON protocol.
pub const KMS_JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// Prefix of `X-Amz-Target` values of the KMS API.
pub const KMS_TARGET_PREFIX: &str = "TrentService.";

const HOST: &str = "host";
const AUTHORIZATION: &str = "authorization";
const X_AMZ_DATE: &str = "x-amz-date";
const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";
const X_AMZ_SECURITY_TOKEN: &str = "x-amz-security-token";
