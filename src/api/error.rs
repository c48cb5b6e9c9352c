//! The one place where errors become wire responses: `{"__type": "...", "message": "..."}` with
//! AWS's HTTP status and the `x-amzn-RequestId` header.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::service::KmsError;

pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Renders an error for the wire.
pub fn error_response(err: &KmsError, request_id: &str) -> Response {
    let mut body = serde_json::Map::new();
    body.insert("__type".into(), err.code().into());
    if let Some(m) = err.message() {
        body.insert("message".into(), m.into());
    }
    let status = StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    with_headers(status, bytes, request_id)
}

/// A JSON response with the KMS content type and request id.
pub fn with_headers(status: StatusCode, body: Vec<u8>, request_id: &str) -> Response {
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
