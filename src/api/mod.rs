//! The HTTP edge: `POST /` with `X-Amz-Target: TrentService.<Operation>` and an
//! `application/x-amz-json-1.1` body. This layer assigns the request id, bounds the body,
//! verifies SigV4 (-> [`Principal`](crate::model::Principal)), decodes the operation's JSON,
//! runs it (on the request's task: the service sends only blocking calls elsewhere), renders
//! the result or the error, logs an internal error's cause once, and hands the audit record to
//! the service. It holds no KMS rules. STS requests (the query protocol, no `X-Amz-Target`) are
//! handed to [`sts`] on the same listener.

pub mod auth;
mod body;
pub mod cors;
pub mod error;
pub mod operations;
pub mod server;
pub mod shapes;
pub mod sts;
pub mod validate;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{Method, Request, StatusCode};
use axum::response::Response;
use axum::Router;

use crate::service::{AuditError, Call, Kms, KmsError};
use auth::Authenticator;
use body::read_body;
use error::{error_response, with_body, with_headers, ApiError, ProtocolError};
use operations::Operation;
use zeroize::Zeroizing;

/// Everything the HTTP layer needs; built once by `main` (or a test) and shared.
pub struct AppState {
    pub service: Arc<Kms>,
    pub auth: Authenticator,
    pub max_body_bytes: usize,
    /// Serve `POST /__baseline` (no auth, no work) for benchmarks.
    pub baseline_route: bool,
    /// Browser origins answered with CORS headers ([`cors`]).
    pub cors_allowed_origins: crate::config::CorsOrigins,
    /// Peers whose `X-Forwarded-For` names the client (`client_address`).
    pub trusted_proxies: serve::TrustedProxies,
}

/// The metrics router (`GET /metrics`, Prometheus text), served on its own listener.
pub fn metrics_router(service: Arc<Kms>) -> Router {
    let ready = service.clone();
    Router::new()
        // Liveness: the process serves HTTP.
        .route(
            "/healthz",
            axum::routing::get(|| async {
                json_response(
                    axum::http::StatusCode::OK,
                    serde_json::json!({ "status": "ok" }),
                )
            }),
        )
        // Readiness: not draining, store and root answer (503 with the reason otherwise).
        .route(
            "/readyz",
            axum::routing::get(move || {
                let svc = ready.clone();
                async move {
                    match svc.readiness().await {
                        Ok(()) => json_response(
                            axum::http::StatusCode::OK,
                            serde_json::json!({ "status": "ready" }),
                        ),
                        Err(reason) => json_response(
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            serde_json::json!({ "status": "not ready", "reason": reason }),
                        ),
                    }
                }
            }),
        )
        .route(
            "/metrics",
            axum::routing::get(move || {
                let svc = service.clone();
                async move {
                    svc.refresh_cache_metrics();
                    let mut resp =
                        axum::response::IntoResponse::into_response(svc.metrics().render());
                    resp.headers_mut().insert(
                        axum::http::header::CONTENT_TYPE,
                        axum::http::HeaderValue::from_static("text/plain; version=0.0.4"),
                    );
                    resp
                }
            }),
        )
}

/// A small JSON answer of the metrics listener.
fn json_response(
    status: axum::http::StatusCode,
    body: serde_json::Value,
) -> axum::response::Response {
    let mut resp = axum::response::IntoResponse::into_response((status, body.to_string()));
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// The KMS router (STS included), inside the CORS layer when CORS is configured.
pub fn router(state: Arc<AppState>) -> Router {
    let mut r = Router::new();
    if state.baseline_route {
        r = r.route("/__baseline", axum::routing::any(baseline));
    }
    let cors_allowed_origins = state.cors_allowed_origins.clone();
    cors::layer(r.fallback(handle).with_state(state), &cors_allowed_origins)
}

/// Request header naming a key for the benchmark floor (see the `baseline` route handler).
pub const BENCH_KEY_HEADER: &str = "x-kms-bench-key";

/// With [`BENCH_KEY_HEADER`]: run the floor's encryption on the HSM threads, as Encrypt does
/// (see the `baseline` route handler).
pub const BENCH_HANDOFF_HEADER: &str = "x-kms-bench-handoff";

/// The benchmark baseline: the same HTTP stack and body handling, then a fixed answer.
///
/// With an `x-kms-bench-key: <key id>` header it is the benchmark *floor* instead: the key's
/// backend also encrypts the first 256 bytes of the body exactly as Encrypt's does (on the
/// HSM threads when the key is in an HSM), [`crate::service::crypto::Crypto::bench_seal`].
/// That is the least work any server must do per Encrypt (HTTP plus the HSM call, nothing
/// else), so its rate bounds what Encrypt can reach on the machine. `x-kms-bench-handoff` is
/// accepted for older load generators and changes nothing: the hand-off is part of the floor
/// now that only the PKCS#11 call leaves the async workers. The route exists only with
/// `server.baseline_route` (benchmarks; never in production).
async fn baseline(State(state): State<Arc<AppState>>, req: Request<Body>) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let bench_key = req
        .headers()
        .get(BENCH_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match read_body(req.into_body(), state.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return error_response(&e.into(), &request_id),
    };
    if let Some(key_id) = bench_key {
        let sealed = state
            .service
            .crypto
            .bench_seal(&key_id, &body[..body.len().min(256)])
            .await;
        if let Err(e) = sealed {
            return error_response(&e.into(), &request_id);
        }
    }
    with_headers(StatusCode::OK, b"{}".to_vec(), &request_id)
}

macro_rules! dispatch {
    ($op:expr, $state:expr, $call:expr, $body:expr, $rid:expr; $($name:literal => $ty:ty),+ $(,)?) => {
        match $op {
            $($name => run::<$ty>($state, $call, $body, $rid).await,)+
            _ => Err(ProtocolError::UnknownOperation.into()),
        }
    };
}

async fn handle(State(state): State<Arc<AppState>>, req: Request<Body>) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = req.into_parts();
    let source_ip = client_address(&state, &parts);
    if sts::is_sts_request(&parts) {
        return sts::handle(&state, parts, body, request_id, source_ip).await;
    }
    if parts.method != Method::POST || parts.uri.path() != "/" {
        return rejected(
            &state,
            &parts,
            request_id,
            source_ip,
            "",
            ProtocolError::UnknownOperation,
        )
        .await;
    }
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("TrentService."))
        .map(str::to_string);
    let Some(operation) = operation else {
        return rejected(
            &state,
            &parts,
            request_id,
            source_ip,
            "",
            ProtocolError::UnknownOperation,
        )
        .await;
    };
    let body = match read_body(body, state.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return rejected(&state, &parts, request_id, source_ip, &operation, e).await,
    };
    let user_agent = user_agent(&parts);
    let (principal, region) = match state.auth.authenticate(&parts, &body) {
        Ok(p) => p,
        Err(e) => {
            let call = Call::new(
                crate::model::Principal::anonymous(
                    "",
                    &state.auth.claimed_access_key(&parts).unwrap_or_default(),
                ),
                request_id.clone(),
                source_ip,
                user_agent,
            );
            let message = e.to_string();
            let ack = state.service.audit_call(
                call,
                &operation,
                serde_json::Value::Null,
                serde_json::Value::Null,
                Some(AuditError {
                    code: e.code(),
                    message: Some(&message),
                }),
                true,
            );
            state
                .service
                .metrics()
                .authentication_failures
                .with_label_values(&[e.code()])
                .inc();
            tracing::info!(request_id = %request_id, operation = %escaped(&operation), error = e.code(), "authentication failed");
            if let Err(audit) = crate::service::audited(ack).await {
                return error_response(&audit.into(), &request_id);
            }
            return error_response(&e.into(), &request_id);
        }
    };
    let mut call = Call::new(principal, request_id.clone(), source_ip, user_agent);
    call.secure_transport = secure_transport(&parts);
    call.region = region;
    let result = dispatch!(operation.as_str(), &state, call, body, &request_id;
        "CancelKeyDeletion" => operations::cancel_key_deletion::CancelKeyDeletion,
        "ConnectCustomKeyStore" => operations::connect_custom_key_store::ConnectCustomKeyStore,
        "CreateCustomKeyStore" => operations::create_custom_key_store::CreateCustomKeyStore,
        "DeleteCustomKeyStore" => operations::delete_custom_key_store::DeleteCustomKeyStore,
        "DescribeCustomKeyStores" => operations::describe_custom_key_stores::DescribeCustomKeyStores,
        "DisconnectCustomKeyStore" => operations::disconnect_custom_key_store::DisconnectCustomKeyStore,
        "UpdateCustomKeyStore" => operations::update_custom_key_store::UpdateCustomKeyStore,
        "CreateAlias" => operations::create_alias::CreateAlias,
        "CreateGrant" => operations::create_grant::CreateGrant,
        "CreateKey" => operations::create_key::CreateKey,
        "Decrypt" => operations::decrypt::Decrypt,
        "DeleteAlias" => operations::delete_alias::DeleteAlias,
        "DeleteImportedKeyMaterial" => operations::delete_imported_key_material::DeleteImportedKeyMaterial,
        "DeriveSharedSecret" => operations::derive_shared_secret::DeriveSharedSecret,
        "DescribeKey" => operations::describe_key::DescribeKey,
        "DisableKey" => operations::disable_key::DisableKey,
        "DisableKeyRotation" => operations::disable_key_rotation::DisableKeyRotation,
        "EnableKey" => operations::enable_key::EnableKey,
        "EnableKeyRotation" => operations::enable_key_rotation::EnableKeyRotation,
        "Encrypt" => operations::encrypt::Encrypt,
        "GenerateDataKey" => operations::generate_data_key::GenerateDataKey,
        "GenerateDataKeyPair" => operations::generate_data_key_pair::GenerateDataKeyPair,
        "GenerateDataKeyPairWithoutPlaintext" => operations::generate_data_key_pair_without_plaintext::GenerateDataKeyPairWithoutPlaintext,
        "GenerateDataKeyWithoutPlaintext" => operations::generate_data_key_without_plaintext::GenerateDataKeyWithoutPlaintext,
        "GenerateMac" => operations::generate_mac::GenerateMac,
        "GenerateRandom" => operations::generate_random::GenerateRandom,
        "GetKeyPolicy" => operations::get_key_policy::GetKeyPolicy,
        "GetKeyRotationStatus" => operations::get_key_rotation_status::GetKeyRotationStatus,
        "GetParametersForImport" => operations::get_parameters_for_import::GetParametersForImport,
        "GetPublicKey" => operations::get_public_key::GetPublicKey,
        "ImportKeyMaterial" => operations::import_key_material::ImportKeyMaterial,
        "ListAliases" => operations::list_aliases::ListAliases,
        "ListGrants" => operations::list_grants::ListGrants,
        "ListKeyPolicies" => operations::list_key_policies::ListKeyPolicies,
        "ListKeyRotations" => operations::list_key_rotations::ListKeyRotations,
        "ListKeys" => operations::list_keys::ListKeys,
        "ListResourceTags" => operations::list_resource_tags::ListResourceTags,
        "ListRetirableGrants" => operations::list_retirable_grants::ListRetirableGrants,
        "PutKeyPolicy" => operations::put_key_policy::PutKeyPolicy,
        "ReEncrypt" => operations::re_encrypt::ReEncrypt,
        "ReplicateKey" => operations::replicate_key::ReplicateKey,
        "RetireGrant" => operations::retire_grant::RetireGrant,
        "RevokeGrant" => operations::revoke_grant::RevokeGrant,
        "RotateKeyOnDemand" => operations::rotate_key_on_demand::RotateKeyOnDemand,
        "ScheduleKeyDeletion" => operations::schedule_key_deletion::ScheduleKeyDeletion,
        "Sign" => operations::sign::Sign,
        "TagResource" => operations::tag_resource::TagResource,
        "UntagResource" => operations::untag_resource::UntagResource,
        "UpdateAlias" => operations::update_alias::UpdateAlias,
        "UpdateKeyDescription" => operations::update_key_description::UpdateKeyDescription,
        "UpdatePrimaryRegion" => operations::update_primary_region::UpdatePrimaryRegion,
        "Verify" => operations::verify::Verify,
        "VerifyMac" => operations::verify_mac::VerifyMac,
    );
    match result {
        Ok(bytes) => with_body(StatusCode::OK, body::wiped(bytes), &request_id),
        Err(e) => error_response(&e, &request_id),
    }
}

/// A request refused before authentication (method, path, target, body): its audit record
/// names no principal, only where it came from.
async fn rejected(
    state: &AppState,
    parts: &axum::http::request::Parts,
    request_id: String,
    source_ip: String,
    operation: &str,
    e: ProtocolError,
) -> Response {
    let call = Call::new(
        crate::model::Principal::anonymous("", ""),
        request_id.clone(),
        source_ip,
        user_agent(parts),
    );
    let message = e.to_string();
    // The event name is the operation when it looks like one, never arbitrary client text.
    let looks_like_operation =
        (1..=64).contains(&operation.len()) && operation.bytes().all(|b| b.is_ascii_alphanumeric());
    let event_name = if looks_like_operation {
        operation
    } else {
        "Unknown"
    };
    let ack = state.service.audit_call(
        call,
        event_name,
        serde_json::Value::Null,
        serde_json::Value::Null,
        Some(AuditError {
            code: e.code(),
            message: Some(&message),
        }),
        true,
    );
    if let Err(audit) = crate::service::audited(ack).await {
        return error_response(&audit.into(), &request_id);
    }
    error_response(&e.into(), &request_id)
}

/// Client-supplied text for a log line: control characters escaped, at most 128 characters.
pub(crate) fn escaped(s: &str) -> String {
    s.chars().take(128).flat_map(char::escape_debug).collect()
}

/// What a request knows about its connection, set once per connection by the listener
/// (`api::server`).
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The connection is TLS (`aws:SecureTransport`).
    pub secure: bool,
}

/// The client's address (audit records, `aws:SourceIp`), worked out once per request from the
/// TCP peer (see [`client_ip`]).
fn client_address(state: &AppState, parts: &axum::http::request::Parts) -> String {
    let peer = parts.extensions.get::<Peer>().map(|p| p.addr).or_else(|| {
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0)
    });
    client_ip(&state.trusted_proxies, peer.map(|a| a.ip()), &parts.headers)
}

/// The rightmost `X-Forwarded-For` hop that is not a trusted proxy when the peer is one
/// (`[server] trusted_proxies`, [`serve::TrustedProxies::client_ip`]), else the peer. An IPv4
/// client of a dual-stack listener (`::ffff:a.b.c.d`) is named by its IPv4 address, as
/// CloudTrail names it. No peer (an in-process call) is loopback.
fn client_ip(
    trusted: &serve::TrustedProxies,
    peer: Option<std::net::IpAddr>,
    headers: &axum::http::HeaderMap,
) -> String {
    let Some(peer) = peer.map(|p| p.to_canonical()) else {
        return "127.0.0.1".into();
    };
    if trusted.trusts(peer) {
        trusted.client_ip(peer, headers)
    } else {
        peer
    }
    .to_canonical()
    .to_string()
}

/// Whether the request came over TLS.
fn secure_transport(parts: &axum::http::request::Parts) -> bool {
    parts.extensions.get::<Peer>().is_some_and(|p| p.secure)
}

/// The `User-Agent` header, or empty.
fn user_agent(parts: &axum::http::request::Parts) -> String {
    parts
        .headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Decodes, executes, audits and serializes one operation.
async fn run<O: Operation>(
    state: &Arc<AppState>,
    mut call: Call,
    body: Zeroizing<Vec<u8>>,
    request_id: &str,
) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    call.operation = O::NAME;
    let started = std::time::Instant::now();
    let result = run_inner::<O>(&state.service, call, body, request_id).await;
    let m = state.service.metrics();
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.code(),
    };
    m.requests.with_label_values(&[O::NAME, outcome]).inc();
    m.request_seconds
        .with_label_values(&[O::NAME])
        .observe(started.elapsed().as_secs_f64());
    result
}

async fn run_inner<O: Operation>(
    kms: &Kms,
    mut call: Call,
    body: Zeroizing<Vec<u8>>,
    request_id: &str,
) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let decoded: Result<O::Request, ProtocolError> = if body.is_empty() {
        serde_json::from_slice(b"{}")
    } else {
        serde_json::from_slice(&body)
    }
    .map_err(serialization_error);
    let req = match decoded {
        Ok(r) => r,
        Err(e) => {
            let message = e.to_string();
            let ack = kms.audit_call(
                call,
                O::NAME,
                serde_json::Value::Null,
                serde_json::Value::Null,
                Some(AuditError {
                    code: e.code(),
                    message: Some(&message),
                }),
                O::READ_ONLY,
            );
            crate::service::audited(ack).await?;
            return Err(e.into());
        }
    };
    let params = O::audit_parameters(&req);
    // The operation's own request quota (the cryptographic ones are counted in the service,
    // which knows the key's type).
    let result = match kms.admit_operation(&call) {
        Ok(()) => O::execute(kms, &mut call, req).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(resp) => {
            let ack = kms.audit_call(
                call,
                O::NAME,
                params,
                O::audit_response(&resp),
                None,
                O::READ_ONLY,
            );
            crate::service::audited(ack).await.inspect_err(|_| {
                tracing::error!(
                    request_id,
                    operation = O::NAME,
                    "audit record not written; the request fails"
                );
            })?;
            // Plaintext and data keys: serialized into a buffer that is wiped (`api::body`).
            body::to_wiped_json(&resp).map_err(|e| {
                tracing::error!(request_id, operation = O::NAME, error = %e, "response not serializable");
                KmsError::internal().into()
            })
        }
        Err(e) => {
            let message = e.message();
            let ack = kms.audit_call(
                call,
                O::NAME,
                params,
                serde_json::Value::Null,
                Some(AuditError {
                    code: e.code(),
                    message: message.as_deref(),
                }),
                O::READ_ONLY,
            );
            crate::service::audited(ack).await?;
            // Logged once, here, where it is answered.
            if let KmsError::KmsInternal { cause, .. } = &e {
                match cause {
                    Some(cause) => {
                        tracing::error!(request_id, operation = O::NAME, %cause, "internal error")
                    }
                    None => {
                        tracing::warn!(request_id, operation = O::NAME, error = %e, "internal error")
                    }
                }
            }
            Err(e.into())
        }
    }
}

/// Maps a JSON decoding error to AWS's SerializationException. The message says where and what
/// type was expected, from serde's classification and position, never the value itself.
fn serialization_error(e: serde_json::Error) -> ProtocolError {
    use serde_json::error::Category;
    let msg = match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            "Malformed JSON in request body".to_string()
        }
        Category::Data => format!(
            "The request body does not match the operation's input shape (line {}, column {})",
            e.line(),
            e.column()
        ),
    };
    ProtocolError::Serialization(msg)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{client_ip, escaped};

    #[test]
    fn an_ipv4_client_of_a_dual_stack_listener_is_named_by_its_ipv4_address() {
        let mapped: std::net::IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let none = serve::TrustedProxies::default();
        let headers = axum::http::HeaderMap::new();
        assert_eq!(client_ip(&none, Some(mapped), &headers), "192.0.2.7");
        assert_eq!(
            client_ip(&none, Some("::1".parse().unwrap()), &headers),
            "::1"
        );
        // A trusted balancer written either way, and the client it names in either form.
        let lb = serve::TrustedProxies::new(vec![serve::Network::parse("192.0.2.7").unwrap()]);
        let mut fwd = axum::http::HeaderMap::new();
        fwd.insert("x-forwarded-for", "::ffff:203.0.113.9".parse().unwrap());
        assert_eq!(client_ip(&lb, Some(mapped), &fwd), "203.0.113.9");
        fwd.insert("x-forwarded-for", "203.0.113.10".parse().unwrap());
        assert_eq!(client_ip(&lb, Some(mapped), &fwd), "203.0.113.10");
        // An untrusted peer cannot name another client.
        assert_eq!(client_ip(&none, Some(mapped), &fwd), "192.0.2.7");
    }

    #[test]
    fn client_text_for_a_log_line_cannot_forge_lines_or_terminal_codes() {
        let forged = "Encrypt\n2026-12-03T00:00:00Z INFO forged line\r\u{1b}[31mred\u{0}";
        let e = escaped(forged);
        assert!(!e.chars().any(char::is_control), "{e:?}");
        assert_eq!(
            e,
            "Encrypt\\n2026-12-03T00:00:00Z INFO forged line\\r\\u{1b}[31mred\\0"
        );
        // Bounded: 128 characters of input at most, whatever the client sent.
        let long = "A".repeat(10_000);
        assert_eq!(escaped(&long).len(), 128);
    }
}
