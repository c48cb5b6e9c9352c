//! CORS, so that browser code (the AWS SDK for JavaScript v3) can call the KMS and STS API:
//! one layer around the whole API router, off unless `[server] cors_allowed_origins` is set
//! ([`CorsOrigins`]).
//!
//! For a request whose `Origin` is allowed:
//! - a preflight (`OPTIONS /` with `Access-Control-Request-Method`) is answered here, before
//!   authentication (browsers send no credentials on a preflight): 200, the allowed origin,
//!   `GET, POST` (STS query requests may be GETs), the requested headers echoed (the SDK's
//!   `authorization`, `x-amz-*`, `amz-sdk-*`, ...), a max age;
//! - every other response, errors of the edge (SigV4, throttling, body limits) included, gets
//!   `Access-Control-Allow-Origin` and `Access-Control-Expose-Headers` (the request id and
//!   error headers the SDK reads).
//!
//! A request from any other origin passes untouched (a preflight then gets what any `OPTIONS`
//! gets: `UnknownOperationException`), and the browser refuses the answer. Caches are told
//! what the answer depends on, as the Fetch standard asks ("CORS protocol and HTTP caches"):
//! with a list of origins every answer, to any origin or none, carries `Vary: Origin`; with
//! `"*"` every answer, with an `Origin` or without, carries the same `*` and no `Vary`. When
//! CORS is off nothing is added.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, CONTENT_LENGTH, ORIGIN, VARY,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::config::CorsOrigins;

/// The methods of the API: `POST` (KMS JSON, STS forms) and `GET` (STS query strings).
const ALLOW_METHODS: &str = "GET, POST";

/// The headers the AWS SDKs send, allowed when a preflight names none or names them in a form
/// that cannot be echoed.
const ALLOW_HEADERS: &str = "authorization, content-type, x-amz-date, x-amz-security-token, \
     x-amz-target, x-amz-user-agent, x-amz-content-sha256, amz-sdk-invocation-id, \
     amz-sdk-request";

/// What browser code may read of a response: the request id and the error's type and message
/// (the SDK's error parsing), and `Date` (the SDK's clock-skew correction).
const EXPOSE_HEADERS: &str = "x-amzn-RequestId, x-amzn-ErrorType, x-amzn-ErrorMessage, Date";

/// How long a browser may reuse a preflight answer, in seconds (Chromium's ceiling).
const MAX_AGE_SECONDS: &str = "7200";

/// Longest `Access-Control-Request-Headers` echoed; longer ones get [`ALLOW_HEADERS`].
const MAX_ECHOED_HEADERS_LEN: usize = 2048;

/// `router` with CORS as `origins` says (unchanged when off).
pub fn layer(router: Router, origins: &CorsOrigins) -> Router {
    match origins {
        CorsOrigins::Off => router,
        on => router.layer(axum::middleware::from_fn_with_state(
            Arc::new(on.clone()),
            cors,
        )),
    }
}

async fn cors(State(origins): State<Arc<CorsOrigins>>, req: Request, next: Next) -> Response {
    let allow_origin = allowed_origin(&origins, req.headers());
    let vary_origin = matches!(*origins, CorsOrigins::Only(_));
    if let Some(allow_origin) = &allow_origin {
        if req.method() == Method::OPTIONS
            && req.uri().path() == "/"
            && req.headers().contains_key(ORIGIN)
            && req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD)
        {
            return preflight(allow_origin.clone(), vary_origin, req.headers());
        }
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    if let Some(allow_origin) = allow_origin {
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        h.insert(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
    }
    if vary_origin {
        h.append(VARY, HeaderValue::from_static("Origin"));
    }
    resp
}

/// The `Access-Control-Allow-Origin` value for this request: `*` for every request when any
/// origin is allowed, the request's `Origin` when it is listed, else `None`.
fn allowed_origin(origins: &CorsOrigins, headers: &HeaderMap) -> Option<HeaderValue> {
    match origins {
        CorsOrigins::Off => None,
        CorsOrigins::Any => Some(HeaderValue::from_static("*")),
        CorsOrigins::Only(list) => {
            let origin = headers.get(ORIGIN)?;
            list.iter()
                .any(|o| o.as_bytes() == origin.as_bytes())
                .then(|| origin.clone())
        }
    }
}

/// The answer to a preflight from an allowed origin.
fn preflight(allow_origin: HeaderValue, vary_origin: bool, request: &HeaderMap) -> Response {
    let mut resp = StatusCode::OK.into_response();
    let h = resp.headers_mut();
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
    h.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOW_METHODS),
    );
    h.insert(ACCESS_CONTROL_ALLOW_HEADERS, allow_headers(request));
    h.insert(
        ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(MAX_AGE_SECONDS),
    );
    h.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    let vary = if vary_origin {
        "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
    } else {
        "Access-Control-Request-Method, Access-Control-Request-Headers"
    };
    h.insert(VARY, HeaderValue::from_static(vary));
    resp
}

/// The preflight's `Access-Control-Request-Headers` echoed when it is a plain list of header
/// names (what browsers send), else [`ALLOW_HEADERS`].
fn allow_headers(request: &HeaderMap) -> HeaderValue {
    let echoable = |v: &HeaderValue| {
        let s = v.to_str().ok()?;
        let names_only = s.len() <= MAX_ECHOED_HEADERS_LEN
            && s.split(',')
                .all(|name| HeaderName::from_bytes(name.trim().as_bytes()).is_ok());
        names_only.then(|| v.clone())
    };
    request
        .get(ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(echoable)
        .unwrap_or_else(|| HeaderValue::from_static(ALLOW_HEADERS))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn only_listed_origins_byte_for_byte() {
        let only = CorsOrigins::Only(vec!["http://127.0.0.1:5173".into()]);
        let from = |o: &str| allowed_origin(&only, &headers(&[("origin", o)]));
        assert_eq!(
            from("http://127.0.0.1:5173").unwrap(),
            "http://127.0.0.1:5173"
        );
        for other in [
            "http://127.0.0.1:5174",
            "http://127.0.0.1:51730",
            "https://127.0.0.1:5173",
            "http://localhost:5173",
            "http://127.0.0.1:5173/",
            "null",
        ] {
            assert_eq!(from(other), None, "{other}");
        }
        assert_eq!(allowed_origin(&only, &HeaderMap::new()), None);
        let any = CorsOrigins::Any;
        assert_eq!(
            allowed_origin(&any, &headers(&[("origin", "null")])).unwrap(),
            "*"
        );
        assert_eq!(allowed_origin(&any, &HeaderMap::new()).unwrap(), "*");
        assert_eq!(
            allowed_origin(&CorsOrigins::Off, &headers(&[("origin", "http://a")])),
            None
        );
    }

    #[test]
    fn requested_headers_are_echoed_only_when_they_are_header_names() {
        let asked = "authorization,content-type,x-amz-date,x-amz-target";
        assert_eq!(
            allow_headers(&headers(&[("access-control-request-headers", asked)])),
            asked
        );
        assert_eq!(allow_headers(&HeaderMap::new()), ALLOW_HEADERS);
        assert_eq!(
            allow_headers(&headers(&[(
                "access-control-request-headers",
                "x-amz-date, bad header"
            )])),
            ALLOW_HEADERS
        );
        let long = vec!["x-a"; 1000].join(",");
        assert_eq!(
            allow_headers(&headers(&[("access-control-request-headers", &long)])),
            ALLOW_HEADERS
        );
    }
}
