//! SigV4 authentication of KMS requests: access key id -> secret + principal, signature
//! recomputed and compared in constant time ([`sigv4`]), clock-skew window, scope checks, and
//! the KMS API's signing policy ([`KMS_REQUIRED_SIGNED_HEADERS`], no presigned requests, no
//! `UNSIGNED-PAYLOAD`).
//!
//! This module owns the mapping of SigV4 failures to [`KmsError`] (by [`AwsErrorKind`], never
//! by message text); it does not validate session tokens yet (temporary credentials arrive
//! with STS).

use std::collections::HashMap;

use axum::http::request::Parts;
use secrecy::{ExposeSecret, SecretString};

use crate::config::Credential;
use crate::model::Principal;
use crate::service::KmsError;
use sigv4::{self, AwsErrorKind, RequestParts, SigV4Error, SigningKeyCache, VerifyOptions};

/// Headers a KMS request must sign besides `host` and `x-amz-date`.
///
/// `x-amz-target` names the operation: were it unsigned, a request signed as `DescribeKey`
/// could be replayed (within the clock-skew window) as `DisableKey` or `ScheduleKeyDeletion`
/// by rewriting that one header. Every AWS SDK signs it (captured: botocore/boto3, awscli,
/// the Encryption SDK CLI, curl `--aws-sigv4`, the Rust SDK; by source: Java v2, JS v3, Go v2
/// and PHP v3 sign every header except a short exclusion list that does not name it).
///
/// `content-type` is deliberately not required: the AWS SDK for PHP v3 never signs it (its
/// `SignatureV4` excludes `content-type` and `content-length`), and this server never reads
/// the request's `Content-Type`, so an unsigned one cannot change what a request does. If the
/// server ever starts branching on it (JSON 1.0 vs 1.1, CBOR), add it here: every captured
/// client already signs it.
pub const KMS_REQUIRED_SIGNED_HEADERS: &[&str] = &["x-amz-target"];

/// Verifies requests against the configured credentials.
pub struct Authenticator {
    credentials: HashMap<String, (SecretString, Principal)>,
    cache: SigningKeyCache,
    region: String,
    max_skew: chrono::Duration,
}

impl Authenticator {
    pub fn new(credentials: &[Credential], region: &str, max_skew: chrono::Duration) -> Self {
        let credentials = credentials
            .iter()
            .map(|c| {
                let principal = Principal {
                    account: c.account.clone(),
                    arn: c.principal_arn.clone(),
                    access_key_id: c.access_key_id.clone(),
                };
                (
                    c.access_key_id.clone(),
                    (c.secret_access_key.clone(), principal),
                )
            })
            .collect();
        Authenticator {
            credentials,
            cache: SigningKeyCache::new(),
            region: region.into(),
            max_skew,
        }
    }

    /// The access key id a request claims (for audit records of failed authentication).
    pub fn claimed_access_key(&self, parts: &Parts) -> Option<String> {
        let req = RequestParts::from_http(parts, &[]);
        sigv4::extract_authorization(&req)
            .ok()
            .map(|a| a.access_key_id)
    }

    /// Authenticates a request; the error is the AWS exception to return.
    pub fn authenticate(&self, parts: &Parts, body: &[u8]) -> Result<Principal, KmsError> {
        let req = RequestParts::from_http(parts, body);
        let auth = sigv4::extract_authorization(&req).map_err(to_kms)?;
        let Some((secret, principal)) = self.credentials.get(&auth.access_key_id) else {
            return Err(KmsError::UnrecognizedClient);
        };
        // The strict policy: presigned (query-string) requests and `UNSIGNED-PAYLOAD` are
        // refused. No AWS SDK presigns KMS calls or leaves a KMS body unsigned, and either would
        // let a request's meaning escape its signature (a presigned URL is a bearer token for
        // whoever holds it; an unsigned body can be swapped).
        let options = VerifyOptions {
            required_signed_headers: KMS_REQUIRED_SIGNED_HEADERS,
            ..VerifyOptions::new("kms", &self.region, self.max_skew)
        };
        sigv4::verify_cached(
            &req,
            &auth,
            secret.expose_secret().as_bytes(),
            &self.cache,
            &options,
            chrono::Utc::now(),
        )
        .map_err(to_kms)?;
        Ok(principal.clone())
    }
}

fn to_kms(e: SigV4Error) -> KmsError {
    match e.kind() {
        AwsErrorKind::MissingAuthenticationToken => KmsError::MissingAuthenticationToken,
        AwsErrorKind::IncompleteSignature => KmsError::IncompleteSignature(e.to_string()),
        AwsErrorKind::InvalidSignature => KmsError::InvalidSignature(e.to_string()),
    }
}
