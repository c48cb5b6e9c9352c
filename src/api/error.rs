//! The one place where errors become wire responses: `{"__type": "...", "message": "..."}` with
//! AWS's HTTP status and the `x-amzn-RequestId` header.
//!
//! [`ApiError`] is either a domain error of the service ([`KmsError`]) or a protocol error of
//! this layer ([`ProtocolError`]: authentication, decoding, unknown operations, body limits),
//! which the service never sees.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::service::KmsError;

pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Failures of the HTTP edge itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// No such operation (or not `POST /` with an `X-Amz-Target`); AWS sends no message.
    #[error("")]
    UnknownOperation,
    /// The body is not the operation's JSON shape.
    #[error("{0}")]
    Serialization(String),
    #[error("Missing Authentication Token")]
    MissingAuthenticationToken,
    #[error("{0}")]
    IncompleteSignature(String),
    #[error("{0}")]
    InvalidSignature(String),
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient,
    #[error("The security token included in the request is expired")]
    ExpiredToken,
    #[error("Request body is too large")]
    RequestEntityTooLarge,
    /// The body did not arrive within the listener's body timeout.
    #[error("Your socket connection to the server was not read from or written to within the timeout period.")]
    RequestTimeout,
}

impl ProtocolError {
    pub fn code(&self) -> &'static str {
        match self {
            ProtocolError::UnknownOperation => "UnknownOperationException",
            ProtocolError::Serialization(_) => "SerializationException",
            ProtocolError::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            ProtocolError::IncompleteSignature(_) => "IncompleteSignatureException",
            ProtocolError::InvalidSignature(_) => "InvalidSignatureException",
            ProtocolError::UnrecognizedClient => "UnrecognizedClientException",
            ProtocolError::ExpiredToken => "ExpiredTokenException",
            ProtocolError::RequestEntityTooLarge => "RequestEntityTooLargeException",
            ProtocolError::RequestTimeout => "RequestTimeoutException",
        }
    }
}

/// Every error the KMS endpoint answers with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Kms(#[from] KmsError),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

impl ApiError {
    /// The AWS exception name (`__type`).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Kms(e) => e.code(),
            ApiError::Protocol(e) => e.code(),
        }
    }

    /// The message, or `None` where AWS sends none.
    pub fn message(&self) -> Option<String> {
        match self {
            ApiError::Kms(e) => e.message(),
            ApiError::Protocol(ProtocolError::UnknownOperation) => None,
            ApiError::Protocol(e) => Some(e.to_string()),
        }
    }

    /// The HTTP status AWS KMS uses for this exception.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Kms(KmsError::KmsInternal { .. }) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Kms(KmsError::DependencyTimeout(_)) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Protocol(ProtocolError::RequestEntityTooLarge) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::Protocol(ProtocolError::RequestTimeout) => StatusCode::REQUEST_TIMEOUT,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Renders an error for the wire.
pub fn error_response(err: &ApiError, request_id: &str) -> Response {
    let mut body = serde_json::Map::new();
    body.insert("__type".into(), err.code().into());
    if let Some(m) = err.message() {
        body.insert("message".into(), m.into());
    }
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    with_headers(err.status(), bytes, request_id)
}

/// A JSON response with the KMS content type and request id.
pub fn with_headers(status: StatusCode, body: Vec<u8>, request_id: &str) -> Response {
    with_body(status, Body::from(body), request_id)
}

/// [`with_headers`] for a body built elsewhere (a wiped one, `api::body`).
pub fn with_body(status: StatusCode, body: Body, request_id: &str) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(CONTENT_TYPE),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_names() {
        let cases: [(ApiError, u16, &str); 5] = [
            (KmsError::internal().into(), 500, "KMSInternalException"),
            (
                KmsError::DependencyTimeout("t".into()).into(),
                503,
                "DependencyTimeoutException",
            ),
            (
                ProtocolError::RequestEntityTooLarge.into(),
                413,
                "RequestEntityTooLargeException",
            ),
            (
                ProtocolError::UnknownOperation.into(),
                400,
                "UnknownOperationException",
            ),
            (
                KmsError::InvalidCiphertext.into(),
                400,
                "InvalidCiphertextException",
            ),
        ];
        for (e, status, code) in cases {
            assert_eq!(e.status().as_u16(), status, "{code}");
            assert_eq!(e.code(), code);
        }
        // AWS sends these two without a message.
        assert_eq!(
            ApiError::from(ProtocolError::UnknownOperation).message(),
            None
        );
        assert_eq!(ApiError::from(KmsError::InvalidCiphertext).message(), None);
    }
}
