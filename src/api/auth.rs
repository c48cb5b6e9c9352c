//! SigV4 authentication of KMS and STS requests: access key id -> secret + principal (long-term
//! keys from the configured identities, `ASIA...` keys from role sessions with their
//! `X-Amz-Security-Token`), signature recomputed and compared in constant time ([`sigv4`]),
//! clock-skew window (one per API, as AWS: 5 minutes for KMS, 15 for STS), scope checks, and
//! the KMS API's signing policy ([`KMS_REQUIRED_SIGNED_HEADERS`], no presigned requests, no
//! `UNSIGNED-PAYLOAD`).
//!
//! Two clocks: the SigV4 clock-skew window compares the client's `X-Amz-Date` with the wall
//! clock (clients sign with theirs), while a role session's expiry is checked against the
//! service's injected [`Clock`] (the one that set the expiry when the session was made), so that
//! tests can move time past `Expiration` without also making every signature stale.
//!
//! Region of the credential scope: a KMS request must be scoped to one of the regions the
//! server serves (`[server] regions`), and that region is the request's (its keys, aliases,
//! ARNs); a scope naming another region fails as a signature for the wrong region does. STS
//! requests may be scoped to a served region or to `us-east-1`, the signing region of
//! STS's global endpoint (`sts.amazonaws.com`), which SDKs and the AWS CLI use when no
//! regional STS endpoint is configured; any other region is `SignatureDoesNotMatch`.
//!
//! This module owns the mapping of SigV4 failures to [`ProtocolError`] (by [`AwsErrorKind`],
//! never by message text). Authorization is not here: the service decides what a principal
//! may do.

use std::sync::Arc;

use axum::http::request::Parts;
use secrecy::{ExposeSecret, SecretString};

use super::error::ProtocolError;
use crate::iam::sessions::OpenError;
use crate::iam::Iam;
use crate::model::Principal;
use crate::service::clock::{Clock, SystemClock};
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
/// the request's `Content-Type` on the KMS API, so an unsigned one cannot change what a
/// request does. If the server ever starts branching on it (JSON 1.0 vs 1.1, CBOR), add it
/// here: every captured client already signs it.
pub const KMS_REQUIRED_SIGNED_HEADERS: &[&str] = &["x-amz-target"];

/// Which API a request is for (the SigV4 scope's service, and the signing policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `kms`: JSON 1.1 with `X-Amz-Target`.
    Kms,
    /// `sts`: the query protocol (form body); the action is in the signed body.
    Sts,
}

/// The signing region of STS's global endpoint, accepted for STS whatever the server's region.
pub const STS_GLOBAL_REGION: &str = "us-east-1";

/// AWS STS's clock-skew window: a request signed up to 15 minutes off is accepted, and a later
/// one is refused with `... (<now> - 15 min.)` (AWS KMS's window is 5 minutes). A client whose
/// clock is 10 minutes off can call STS on AWS; so it can here.
pub const STS_MAX_SKEW: chrono::Duration = chrono::Duration::minutes(15);

/// Verifies requests against the identities in force.
pub struct Authenticator {
    iam: Arc<Iam>,
    cache: SigningKeyCache,
    /// The default region (first served).
    region: String,
    /// Every region served (KMS requests).
    regions: Vec<String>,
    /// The KMS API's clock-skew window.
    max_skew: chrono::Duration,
    /// STS's clock-skew window ([`STS_MAX_SKEW`] unless set).
    sts_max_skew: chrono::Duration,
    /// The service's clock: role session expiry (not the SigV4 window, see the module docs).
    clock: Arc<dyn Clock>,
}

impl Authenticator {
    pub fn new(iam: Arc<Iam>, region: &str, max_skew: chrono::Duration) -> Self {
        Authenticator {
            iam,
            cache: SigningKeyCache::new(),
            region: region.into(),
            regions: vec![region.into()],
            max_skew,
            sts_max_skew: STS_MAX_SKEW,
            clock: Arc::new(SystemClock),
        }
    }

    /// Sets STS's clock-skew window (`[server] sts_max_clock_skew_seconds`).
    pub fn with_sts_max_skew(mut self, window: chrono::Duration) -> Self {
        self.sts_max_skew = window;
        self
    }

    /// Serves KMS requests for `regions` (the default region is always served).
    pub fn with_regions(mut self, regions: &[String]) -> Self {
        for r in regions {
            if !self.regions.contains(r) {
                self.regions.push(r.clone());
            }
        }
        self
    }

    /// Checks role session expiry against `clock` (the service's) instead of the wall clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The identities this authenticator reads.
    pub fn iam(&self) -> &Arc<Iam> {
        &self.iam
    }

    /// The access key id a request claims (for audit records of failed authentication).
    pub fn claimed_access_key(&self, parts: &Parts) -> Option<String> {
        let req = RequestParts::from_http(parts, &[]);
        sigv4::extract_authorization(&req)
            .ok()
            .map(|a| a.access_key_id)
    }

    /// Authenticates a KMS request; returns the caller and the request's region (the
    /// credential scope's, one the server serves). The error is the AWS exception to return.
    pub fn authenticate(
        &self,
        parts: &Parts,
        body: &[u8],
    ) -> Result<(Arc<Principal>, String), ProtocolError> {
        let req = RequestParts::from_http(parts, body);
        let auth = sigv4::extract_authorization(&req).map_err(to_protocol)?;
        let principal = self.verify(Api::Kms, &req, &auth, parts)?;
        // `verify` checked the scope against the served regions.
        Ok((principal, auth.region))
    }

    /// Authenticates a request for `api`.
    pub fn authenticate_for(
        &self,
        api: Api,
        parts: &Parts,
        body: &[u8],
    ) -> Result<Arc<Principal>, ProtocolError> {
        let req = RequestParts::from_http(parts, body);
        let auth = sigv4::extract_authorization(&req).map_err(to_protocol)?;
        self.verify(api, &req, &auth, parts)
    }

    fn verify(
        &self,
        api: Api,
        req: &RequestParts<'_>,
        auth: &sigv4::ParsedAuthorization,
        parts: &Parts,
    ) -> Result<Arc<Principal>, ProtocolError> {
        let (secret, principal) = self.credential(parts, &auth.access_key_id)?;
        // The strict policy: presigned (query-string) requests and `UNSIGNED-PAYLOAD` are
        // refused. No AWS SDK presigns KMS calls or leaves a KMS body unsigned, and either would
        // let a request's meaning escape its signature (a presigned URL is a bearer token for
        // whoever holds it; an unsigned body can be swapped). STS bodies carry the action, so
        // they are always signed too.
        let (service, required, max_skew): (&str, &[&str], _) = match api {
            Api::Kms => ("kms", KMS_REQUIRED_SIGNED_HEADERS, self.max_skew),
            Api::Sts => ("sts", &[], self.sts_max_skew),
        };
        let region = match api {
            Api::Sts if auth.region == STS_GLOBAL_REGION => STS_GLOBAL_REGION,
            // A served region is checked as the scope's; any other fails as a signature
            // scoped to the wrong region always has.
            _ if self.regions.contains(&auth.region) => auth.region.as_str(),
            _ => self.region.as_str(),
        };
        let options = VerifyOptions {
            required_signed_headers: required,
            ..VerifyOptions::new(service, region, max_skew)
        };
        sigv4::verify_cached(
            req,
            auth,
            secret.expose_secret().as_bytes(),
            &self.cache,
            &options,
            chrono::Utc::now(),
        )
        .map_err(to_protocol)?;
        Ok(principal)
    }

    /// The secret and principal of an access key: a configured long-term key, or a role
    /// session's temporary key with its token.
    fn credential(
        &self,
        parts: &Parts,
        access_key_id: &str,
    ) -> Result<(SecretString, Arc<Principal>), ProtocolError> {
        let token = parts
            .headers
            .get("x-amz-security-token")
            .and_then(|v| v.to_str().ok());
        let directory = self.iam.directory();
        if let Some(found) = directory.long_term(access_key_id) {
            // A session token with a long-term key is not a token of that key: AWS refuses it.
            if token.is_some() {
                return Err(ProtocolError::UnrecognizedClient);
            }
            return Ok(found);
        }
        // A temporary key is only as good as the sealed token it came with (`iam::sessions`).
        let Some(token) = token else {
            return Err(ProtocolError::UnrecognizedClient);
        };
        let session = self
            .iam
            .sessions()
            .open(access_key_id, token, self.clock.now())
            .map_err(|e| match e {
                OpenError::Invalid => ProtocolError::UnrecognizedClient,
                OpenError::Expired => ProtocolError::ExpiredToken,
            })?;
        let principal = session
            .principal_in(&directory)
            .ok_or(ProtocolError::UnrecognizedClient)?;
        Ok((session.secret_access_key.clone(), principal))
    }
}

fn to_protocol(e: SigV4Error) -> ProtocolError {
    match e.kind() {
        AwsErrorKind::MissingAuthenticationToken => ProtocolError::MissingAuthenticationToken,
        AwsErrorKind::IncompleteSignature => ProtocolError::IncompleteSignature(e.to_string()),
        AwsErrorKind::InvalidSignature => ProtocolError::InvalidSignature(e.to_string()),
    }
}
