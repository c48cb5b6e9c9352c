//! The one place where STS errors become wire responses: the XML `ErrorResponse` with AWS
//! STS's code, HTTP status and fault type (`Sender` for the caller's mistakes, `Receiver` for
//! the service's), and the `x-amzn-RequestId` header.
//!
//! Authentication failures are the shared [`ProtocolError`]s of the SigV4 layer, named here as
//! STS names them: `InvalidClientTokenId` (unknown key or wrong session token),
//! `SignatureDoesNotMatch` (wrong signature, scope or time), `IncompleteSignature`,
//! `MissingAuthenticationToken` and `ExpiredToken`, all 403 except `IncompleteSignature` (400).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::xml;
use crate::api::error::ProtocolError;
use crate::service::sts::StsError;

/// The content type of every STS response.
pub const CONTENT_TYPE: &str = "text/xml";

/// Every error the STS front answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StsApiError {
    /// An error of the STS rules or of parameter validation.
    #[error(transparent)]
    Sts(#[from] StsError),
    /// Authentication and body failures of the HTTP edge.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// No such action in this version of the API.
    #[error("Could not find operation {action} for version {version}")]
    InvalidAction { action: String, version: String },
    /// No `Action` parameter.
    #[error("The request is missing an action or a required parameter.")]
    MissingAction,
}

impl StsApiError {
    /// The STS error code (`<Code>`).
    pub fn code(&self) -> &'static str {
        match self {
            StsApiError::Sts(e) => match e {
                StsError::AccessDenied(_) => "AccessDenied",
                StsError::Validation(_) => "ValidationError",
                StsError::InvalidParameterValue(_) => "InvalidParameterValue",
                StsError::MalformedPolicyDocument(_) => "MalformedPolicyDocument",
                StsError::PackedPolicyTooLarge(_) => "PackedPolicyTooLarge",
                StsError::Internal(_) => "InternalFailure",
            },
            StsApiError::Protocol(e) => match e {
                ProtocolError::MissingAuthenticationToken => "MissingAuthenticationToken",
                ProtocolError::IncompleteSignature(_) => "IncompleteSignature",
                ProtocolError::InvalidSignature(_) => "SignatureDoesNotMatch",
                ProtocolError::UnrecognizedClient => "InvalidClientTokenId",
                ProtocolError::ExpiredToken => "ExpiredToken",
                ProtocolError::RequestEntityTooLarge => "RequestEntityTooLarge",
                ProtocolError::RequestTimeout => "RequestTimeout",
                ProtocolError::Serialization(_) => "MalformedQueryString",
                ProtocolError::UnknownOperation => "InvalidAction",
            },
            StsApiError::InvalidAction { .. } => "InvalidAction",
            StsApiError::MissingAction => "MissingAction",
        }
    }

    /// The message (`<Message>`).
    pub fn message(&self) -> String {
        match self {
            StsApiError::Protocol(ProtocolError::MissingAuthenticationToken) => {
                "Request is missing Authentication Token".into()
            }
            StsApiError::Protocol(ProtocolError::UnknownOperation) => {
                "The action or operation requested is invalid. Verify that the action is typed correctly.".into()
            }
            other => other.to_string(),
        }
    }

    /// The HTTP status AWS STS uses for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            StsApiError::Sts(e) => match e {
                StsError::AccessDenied(_) => StatusCode::FORBIDDEN,
                StsError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            },
            StsApiError::Protocol(e) => match e {
                ProtocolError::IncompleteSignature(_)
                | ProtocolError::Serialization(_)
                | ProtocolError::UnknownOperation => StatusCode::BAD_REQUEST,
                ProtocolError::RequestEntityTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                ProtocolError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
                ProtocolError::MissingAuthenticationToken
                | ProtocolError::InvalidSignature(_)
                | ProtocolError::UnrecognizedClient
                | ProtocolError::ExpiredToken => StatusCode::FORBIDDEN,
            },
            StsApiError::InvalidAction { .. } | StsApiError::MissingAction => {
                StatusCode::BAD_REQUEST
            }
        }
    }

    /// `Sender` or `Receiver` (`<Type>`).
    pub fn fault(&self) -> &'static str {
        if self.status().is_server_error() {
            "Receiver"
        } else {
            "Sender"
        }
    }
}

/// Renders an error for the wire.
pub fn error_response(err: &StsApiError, request_id: &str) -> Response {
    let body = xml::error(err.fault(), err.code(), &err.message(), request_id);
    xml_response(err.status(), body, request_id)
}

/// An XML response with the STS content type and request id.
pub fn xml_response(status: StatusCode, body: String, request_id: &str) -> Response {
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
    fn codes_statuses_and_faults() {
        let cases: Vec<(StsApiError, &str, u16, &str)> = vec![
            (
                StsError::AccessDenied("x".into()).into(),
                "AccessDenied",
                403,
                "Sender",
            ),
            (
                StsError::Validation("x".into()).into(),
                "ValidationError",
                400,
                "Sender",
            ),
            (
                StsError::MalformedPolicyDocument("x".into()).into(),
                "MalformedPolicyDocument",
                400,
                "Sender",
            ),
            (
                StsError::PackedPolicyTooLarge(120).into(),
                "PackedPolicyTooLarge",
                400,
                "Sender",
            ),
            (
                StsError::Internal("bug").into(),
                "InternalFailure",
                500,
                "Receiver",
            ),
            (
                ProtocolError::UnrecognizedClient.into(),
                "InvalidClientTokenId",
                403,
                "Sender",
            ),
            (
                ProtocolError::InvalidSignature("x".into()).into(),
                "SignatureDoesNotMatch",
                403,
                "Sender",
            ),
            (
                ProtocolError::IncompleteSignature("x".into()).into(),
                "IncompleteSignature",
                400,
                "Sender",
            ),
            (
                ProtocolError::MissingAuthenticationToken.into(),
                "MissingAuthenticationToken",
                403,
                "Sender",
            ),
            (
                ProtocolError::ExpiredToken.into(),
                "ExpiredToken",
                403,
                "Sender",
            ),
            (
                StsApiError::InvalidAction {
                    action: "Nope".into(),
                    version: "2011-06-15".into(),
                },
                "InvalidAction",
                400,
                "Sender",
            ),
        ];
        for (e, code, status, fault) in cases {
            assert_eq!(e.code(), code);
            assert_eq!(e.status().as_u16(), status, "{code}");
            assert_eq!(e.fault(), fault, "{code}");
        }
        assert_eq!(
            StsApiError::from(ProtocolError::MissingAuthenticationToken).message(),
            "Request is missing Authentication Token"
        );
        assert_eq!(
            StsApiError::from(ProtocolError::UnrecognizedClient).message(),
            "The security token included in the request is invalid."
        );
        assert_eq!(
            StsApiError::from(ProtocolError::ExpiredToken).message(),
            "The security token included in the request is expired"
        );
        assert_eq!(
            StsApiError::InvalidAction {
                action: "Nope".into(),
                version: "2011-06-15".into()
            }
            .message(),
            "Could not find operation Nope for version 2011-06-15"
        );
    }
}
