//! The one mapping from failures to the wire: `{"errorName", "errorMessage"}` with the spec's
//! HTTP status. Every failure of a request path becomes an [`XksError`]; nothing else writes
//! error responses.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cryptoki::error::RvError;
use hsm::error::ckr_name;
use hsm::{ErrorClass, Pkcs11Error};
use xks_wire::{sanitize_error_message, ErrorName, ErrorResponse};

/// A failed request: the spec's error name and a message for the operator (KMS logs it to the
/// customer's CloudWatch; it never contains plaintext, keys or secrets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {message}")]
pub struct XksError {
    pub name: ErrorName,
    pub message: String,
}

impl XksError {
    pub fn new(name: ErrorName, message: impl Into<String>) -> Self {
        XksError {
            name,
            message: message.into(),
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorName::ValidationException, message)
    }

    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorName::UnsupportedOperationException, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorName::InternalException, message)
    }

    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(ErrorName::AuthenticationFailedException, message)
    }

    pub fn throttled(message: impl Into<String>) -> Self {
        Self::new(ErrorName::ThrottlingException, message)
    }

    pub fn invalid_ciphertext(message: impl Into<String>) -> Self {
        Self::new(ErrorName::InvalidCiphertextException, message)
    }

    pub fn key_usage(message: impl Into<String>) -> Self {
        Self::new(ErrorName::InvalidKeyUsageException, message)
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.name.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Maps a PKCS#11 failure of an operation on `key_id`. `decrypting` marks AEAD decryption.
    pub fn from_pkcs11(e: &Pkcs11Error, key_id: &str, decrypting: bool) -> Self {
        if matches!(e, Pkcs11Error::Busy) {
            return Self::throttled("no HSM session became free within the deadline");
        }
        if let Pkcs11Error::ObjectNotFound(_) = e {
            return Self::new(
                ErrorName::KeyNotFoundException,
                format!("external key {key_id} was not found in the key manager"),
            );
        }
        let rv = e.rv();
        let rv_name = rv.as_ref().map(ckr_name).unwrap_or_default();
        if matches!(
            rv,
            Some(RvError::KeyFunctionNotPermitted | RvError::KeyTypeInconsistent)
        ) {
            return Self::key_usage(format!(
                "external key {key_id} does not permit this operation ({rv_name})"
            ));
        }
        match e.class() {
            ErrorClass::InvalidCiphertext => Self::invalid_ciphertext(
                "the ciphertext, initialization vector, additional authenticated data or \
                 authentication tag is corrupted, missing, or otherwise invalid",
            ),
            ErrorClass::Invalid if decrypting => Self::invalid_ciphertext(format!(
                "the key manager rejected the ciphertext ({rv_name})"
            )),
            ErrorClass::Unsupported => Self::unsupported(format!(
                "the key manager does not support this operation or parameter: {e}"
            )),
            _ => Self::internal(format!("the key manager failed: {e}")),
        }
    }

    /// The error body (message sanitized to the spec's character set and length).
    pub fn body(&self) -> ErrorResponse {
        ErrorResponse {
            error_name: self.name.as_str().to_string(),
            error_message: Some(sanitize_error_message(&self.message)),
        }
    }
}

impl IntoResponse for XksError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_else(|_| {
            format!("{{\"errorName\":\"{}\"}}", self.name.as_str()).into_bytes()
        });
        let mut resp = (self.status(), body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}
