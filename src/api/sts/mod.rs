//! STS on the KMS listener: the AWS query protocol, API version 2011-06-15
//! (reference §8.1). A request without `X-Amz-Target` that is `POST /` with a
//! `application/x-www-form-urlencoded` body, or `GET /` with a query string, comes here
//! (`is_sts_request`); everything else stays with the KMS JSON front.
//!
//! Per request this module reads the parameters (query string and form body), authenticates
//! with the shared SigV4 layer for the `sts` scope ([`Api::Sts`]: the server's region or
//! `us-east-1`, see `api::auth`), checks `Action` and `Version`, runs the action, renders the
//! XML result or `ErrorResponse`, and writes one audit record (`eventSource`
//! `sts.amazonaws.com`) per call, failed authentication included.
//!
//! Actions: `GetCallerIdentity` (`get_caller_identity`) and `AssumeRole`
//! (`assume_role`; the rules are `service::sts`). Anything else is `InvalidAction`.
//! Presigned (query-string-signed) requests are refused like on the KMS API.

mod assume_role;
mod error;
mod get_caller_identity;
mod query;
mod xml;

use std::sync::Arc;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::auth::Api;
use super::AppState;
use crate::model::Principal;
use crate::service::sts::StsError;
use crate::service::{AuditError, Call, Kms};
pub use error::StsApiError;
use error::{error_response, xml_response};
use query::Params;

/// The one API version served.
pub const API_VERSION: &str = "2011-06-15";
/// `eventSource` of STS audit records.
pub const EVENT_SOURCE: &str = "sts.amazonaws.com";
/// Longest `eventName` recorded for an unknown action (the rest is cut).
const MAX_EVENT_NAME_CHARS: usize = 128;

/// Whether a request is for STS: no `X-Amz-Target`, path `/`, and either `POST` with a form
/// body or `GET` with a query string.
pub(super) fn is_sts_request(parts: &Parts) -> bool {
    if parts.headers.contains_key("x-amz-target") || parts.uri.path() != "/" {
        return false;
    }
    match parts.method {
        Method::POST => parts
            .headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| {
                t.trim_start()
                    .get(..33)
                    .is_some_and(|p| p.eq_ignore_ascii_case("application/x-www-form-urlencoded"))
            }),
        Method::GET => parts.uri.query().is_some_and(|q| !q.is_empty()),
        _ => false,
    }
}

/// The known actions (names for metrics and audit records).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    GetCallerIdentity,
    AssumeRole,
}

impl Action {
    fn parse(name: &str) -> Option<Action> {
        match name {
            "GetCallerIdentity" => Some(Action::GetCallerIdentity),
            "AssumeRole" => Some(Action::AssumeRole),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Action::GetCallerIdentity => "GetCallerIdentity",
            Action::AssumeRole => "AssumeRole",
        }
    }
}

/// What one action produced: the audit parameters, and the XML body with the audit response
/// elements, or the error.
struct Outcome {
    request_parameters: Value,
    result: Result<(String, Value), StsApiError>,
}

/// Serves one STS request from `source_ip` (the client's address, worked out by the caller).
pub(super) async fn handle(
    state: &Arc<AppState>,
    parts: Parts,
    body: Body,
    request_id: String,
    source_ip: String,
) -> Response {
    let body = match super::body::read_body(body, state.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return error_response(&e.into(), &request_id),
    };
    let form: &[u8] = if parts.method == Method::POST {
        &body
    } else {
        &[]
    };
    let params = Params::parse(parts.uri.query().unwrap_or(""), form);
    let event_name: String = params
        .get("Action")
        .unwrap_or_default()
        .chars()
        .take(MAX_EVENT_NAME_CHARS)
        .collect();
    let user_agent = super::user_agent(&parts);
    let principal = match state.auth.authenticate_for(Api::Sts, &parts, &body) {
        Ok(p) => p,
        Err(e) => {
            let call = Call::new(
                Principal::anonymous(
                    "",
                    &state.auth.claimed_access_key(&parts).unwrap_or_default(),
                ),
                request_id.clone(),
                source_ip,
                user_agent,
            );
            let e = StsApiError::from(e);
            let message = e.message();
            let ack = state.service.audit_call_from(
                EVENT_SOURCE,
                call,
                &event_name,
                Value::Null,
                Value::Null,
                Some(AuditError {
                    code: e.code(),
                    message: Some(&message),
                }),
                true,
            );
            tracing::info!(request_id = %request_id, action = %super::escaped(&event_name), error = e.code(), "authentication failed");
            return answer(ack, e, &request_id).await;
        }
    };
    let mut call = Call::new(principal, request_id.clone(), source_ip, user_agent);
    call.secure_transport = super::secure_transport(&parts);

    let action = match select_action(&params) {
        Ok(a) => a,
        Err(e) => {
            let ack = audit(&state.service, call, &event_name, Value::Null, Err(&e));
            return answer(ack, e, &request_id).await;
        }
    };
    call.operation = action.name();
    let started = std::time::Instant::now();
    let outcome = run(&state.service, &mut call, action, &params, &request_id).await;
    let metrics = state.service.metrics();
    let label = match &outcome.result {
        Ok(_) => "ok",
        Err(e) => e.code(),
    };
    metrics
        .requests
        .with_label_values(&[action.name(), label])
        .inc();
    metrics
        .request_seconds
        .with_label_values(&[action.name()])
        .observe(started.elapsed().as_secs_f64());
    match outcome.result {
        Ok((xml, response_elements)) => {
            let ack = audit(
                &state.service,
                call,
                action.name(),
                outcome.request_parameters,
                Ok(response_elements),
            );
            if crate::service::audited(ack).await.is_err() {
                return error_response(&audit_failed(), &request_id);
            }
            xml_response(StatusCode::OK, xml, &request_id)
        }
        Err(e) => {
            // Logged once, here, where it is answered.
            if let StsApiError::Sts(StsError::Internal(cause)) = &e {
                tracing::error!(request_id = %request_id, action = action.name(), cause, "internal error")
            }
            let ack = audit(
                &state.service,
                call,
                action.name(),
                outcome.request_parameters,
                Err(&e),
            );
            answer(ack, e, &request_id).await
        }
    }
}

/// `Action` and `Version`: a known action of API version 2011-06-15.
fn select_action(params: &Params) -> Result<Action, StsApiError> {
    let name = params.get("Action").ok_or(StsApiError::MissingAction)?;
    let version = params.get("Version").unwrap_or("NO_VERSION_SPECIFIED");
    match Action::parse(name) {
        Some(action) if version == API_VERSION => Ok(action),
        _ => Err(StsApiError::InvalidAction {
            action: name.to_string(),
            version: version.to_string(),
        }),
    }
}

async fn run(
    kms: &Kms,
    call: &mut Call,
    action: Action,
    params: &Params,
    request_id: &str,
) -> Outcome {
    match action {
        Action::GetCallerIdentity => {
            let xml = xml::success(action.name(), request_id, |w| {
                get_caller_identity::write_result(w, &call.principal)
            });
            Outcome {
                request_parameters: Value::Null,
                result: Ok((xml, Value::Null)),
            }
        }
        Action::AssumeRole => {
            let input = assume_role::Input::from_params(params);
            let request_parameters = input.audit_parameters(&call.principal);
            let result = match input.validate() {
                Ok(request) => kms.sts().assume_role(call, request).await,
                Err(e) => Err(e),
            };
            let result = result
                .map(|out| {
                    let xml = xml::success(action.name(), request_id, |w| {
                        assume_role::write_result(w, &out)
                    });
                    (xml, assume_role::audit_response(&out))
                })
                .map_err(StsApiError::from);
            Outcome {
                request_parameters,
                result,
            }
        }
    }
}

/// Durable audit mode: a request whose record could not be written fails.
fn audit_failed() -> StsApiError {
    StsApiError::Sts(StsError::Internal("the audit record could not be written"))
}

/// The error response of a failed call, once its audit record is written (durable mode).
async fn answer(ack: Option<crate::audit::AuditAck>, e: StsApiError, request_id: &str) -> Response {
    if crate::service::audited(ack).await.is_err() {
        return error_response(&audit_failed(), request_id);
    }
    error_response(&e, request_id)
}

/// Writes the audit record of an STS call.
fn audit(
    kms: &Kms,
    call: Call,
    event_name: &str,
    request_parameters: Value,
    result: Result<Value, &StsApiError>,
) -> Option<crate::audit::AuditAck> {
    match result {
        Ok(response_elements) => kms.audit_call_from(
            EVENT_SOURCE,
            call,
            event_name,
            request_parameters,
            response_elements,
            None,
            true,
        ),
        Err(e) => {
            let message = e.message();
            kms.audit_call_from(
                EVENT_SOURCE,
                call,
                event_name,
                request_parameters,
                Value::Null,
                Some(AuditError {
                    code: e.code(),
                    message: Some(&message),
                }),
                true,
            )
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = axum::http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn routing() {
        let form = (
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        );
        assert!(is_sts_request(&parts("POST", "/", &[form])));
        assert!(is_sts_request(&parts(
            "POST",
            "/",
            &[("content-type", "Application/X-WWW-Form-Urlencoded")]
        )));
        assert!(is_sts_request(&parts(
            "GET",
            "/?Action=GetCallerIdentity&Version=2011-06-15",
            &[]
        )));
        // KMS requests, and everything that is neither.
        assert!(!is_sts_request(&parts(
            "POST",
            "/",
            &[form, ("x-amz-target", "TrentService.ListKeys")]
        )));
        assert!(!is_sts_request(&parts(
            "POST",
            "/",
            &[("content-type", "application/x-amz-json-1.1")]
        )));
        assert!(!is_sts_request(&parts("POST", "/other", &[form])));
        assert!(!is_sts_request(&parts("GET", "/", &[])));
        assert!(!is_sts_request(&parts("PUT", "/?Action=x", &[form])));
    }

    #[test]
    fn action_and_version() {
        let p = |q: &str| Params::parse(q, b"");
        assert_eq!(
            select_action(&p("Action=AssumeRole&Version=2011-06-15")).unwrap(),
            Action::AssumeRole
        );
        assert_eq!(
            select_action(&p("Action=GetSessionToken&Version=2011-06-15"))
                .unwrap_err()
                .message(),
            "Could not find operation GetSessionToken for version 2011-06-15"
        );
        assert_eq!(
            select_action(&p("Action=GetCallerIdentity"))
                .unwrap_err()
                .message(),
            "Could not find operation GetCallerIdentity for version NO_VERSION_SPECIFIED"
        );
        assert_eq!(
            select_action(&p("Version=2011-06-15")).unwrap_err(),
            StsApiError::MissingAction
        );
    }
}
