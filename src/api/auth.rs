//! SigV4 authentication of KMS requests: access key id -> secret + principal, signature
//! recomputed and compared in constant time ([`sigv4`]), clock-skew window, scope checks.

use std::collections::HashMap;

use axum::http::request::Parts;
use secrecy::{ExposeSecret, SecretString};

use super::error::ProtocolError;
use crate::config::Credential;
use crate::model::Principal;
use sigv4::{self, RequestParts, SigV4Error, SigningKeyCache, VerifyOptions};

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
    pub fn authenticate(&self, parts: &Parts, body: &[u8]) -> Result<Principal, ProtocolError> {
        let req = RequestParts::from_http(parts, body);
        let auth = sigv4::extract_authorization(&req).map_err(to_kms)?;
        let Some((secret, principal)) = self.credentials.get(&auth.access_key_id) else {
            return Err(ProtocolError::UnrecognizedClient);
        };
        let options = VerifyOptions {
            service: "kms",
            region: &self.region,
            max_skew: self.max_skew,
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

fn to_kms(e: SigV4Error) -> ProtocolError {
    match e.aws_error_code() {
        "MissingAuthenticationTokenException" => ProtocolError::MissingAuthenticationToken,
        "IncompleteSignatureException" => ProtocolError::IncompleteSignature(e.to_string()),
        _ => ProtocolError::InvalidSignature(e.to_string()),
    }
}
