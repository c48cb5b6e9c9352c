//! The HTTP edge: `POST /` with `X-Amz-Target: TrentService.<Operation>` and an
//! `application/x-amz-json-1.1` body. This layer assigns the request id, bounds the body,
//! verifies SigV4 (-> [`Principal`](crate::model::Principal)), decodes the operation's JSON,
//! runs it (on the blocking pool when it writes to disk), renders the result or the error, and
//! hands the audit record to the service. It holds no KMS rules.

pub mod auth;
pub mod error;
pub mod operations;
pub mod server;
pub mod shapes;
pub mod validate;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{Method, Request, StatusCode};
use axum::response::Response;
use axum::Router;

use crate::service::{Call, KmsError, KmsService};
use auth::Authenticator;
use error::{error_response, with_headers};
use operations::Operation;

/// Everything the HTTP layer needs; built once by `main` (or a test) and shared.
pub struct AppState {
    pub service: Arc<KmsService>,
    pub auth: Authenticator,
    pub max_body_bytes: usize,
    /// Serve `POST /__baseline` (no auth, no work) for benchmarks.
    pub baseline_route: bool,
}

/// The metrics router (`GET /metrics`, Prometheus text), served on its own listener.
pub fn metrics_router(service: Arc<KmsService>) -> Router {
    Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let svc = service.clone();
            async move {
                let mut resp = axum::response::IntoResponse::into_response(svc.metrics().render());
                resp.headers_mut().insert(
                    axum::http::header::CONTENT_TYPE,
                    axum::http::HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                resp
            }
        }),
    )
}

/// The KMS router.
pub fn router(state: Arc<AppState>) -> Router {
    let mut r = Router::new();
    if state.baseline_route {
        r = r.route("/__baseline", axum::routing::any(baseline));
    }
    r.fallback(handle).with_state(state)
}

/// Request header naming a key for the benchmark floor (see [`baseline`]).
pub const BENCH_KEY_HEADER: &str = "x-kms-bench-key";

/// With [`BENCH_KEY_HEADER`]: run the floor's encryption on the HSM threads, as Encrypt does
/// (see [`baseline`]).
pub const BENCH_HANDOFF_HEADER: &str = "x-kms-bench-handoff";

/// The benchmark baseline: the same HTTP stack and body handling, then a fixed answer.
///
/// With an `x-kms-bench-key: <key id>` header it is the benchmark *floor* instead: the key's
/// backend also encrypts the first 256 bytes of the body, right here on the async worker
/// ([`KmsService::bench_seal`]). That is the least work any server must do per Encrypt (HTTP
/// plus the HSM call, nothing else), so its rate bounds what Encrypt can reach on the machine.
/// With `x-kms-bench-handoff` too, the encryption runs on the HSM threads (when an HSM is
/// configured) and the request waits for it, as Encrypt's does: the difference to the floor is
/// what the hand-off costs. The route exists only with `server.baseline_route` (benchmarks;
/// never in production).
async fn baseline(State(state): State<Arc<AppState>>, req: Request<Body>) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let bench_key = req
        .headers()
        .get(BENCH_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let handoff = req.headers().contains_key(BENCH_HANDOFF_HEADER);
    let body = match axum::body::to_bytes(req.into_body(), state.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => return error_response(&too_large(), &request_id),
    };
    if let Some(key_id) = bench_key {
        let svc = state.service.clone();
        let seal = move || svc.bench_seal(&key_id, &body[..body.len().min(256)]);
        let sealed = match state.service.hsm_pool().filter(|_| handoff) {
            Some(pool) => pool
                .run(seal)
                .await
                .unwrap_or_else(|_| Err(KmsError::internal())),
            None => seal(),
        };
        if let Err(e) = sealed {
            return error_response(&e, &request_id);
        }
    }
    with_headers(StatusCode::OK, b"{}".to_vec(), &request_id)
}

fn too_large() -> KmsError {
    KmsError::RequestEntityTooLarge("Request body is too large".into())
}

macro_rules! dispatch {
    ($op:expr, $state:expr, $call:expr, $body:expr, $rid:expr; $($name:literal => $ty:ty),+ $(,)?) => {
        match $op {
            $($name => run::<$ty>($state, $call, $body, $rid).await,)+
            _ => Err(KmsError::UnknownOperation),
        }
    };
}

async fn handle(State(state): State<Arc<AppState>>, req: Request<Body>) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = req.into_parts();
    if parts.method != Method::POST || parts.uri.path() != "/" {
        return error_response(&KmsError::UnknownOperation, &request_id);
    }
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("TrentService."))
        .map(str::to_string);
    let Some(operation) = operation else {
        return error_response(&KmsError::UnknownOperation, &request_id);
    };
    let body = match axum::body::to_bytes(body, state.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => return error_response(&too_large(), &request_id),
    };
    let source_ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "127.0.0.1".into());
    let user_agent = parts
        .headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let principal = match state.auth.authenticate(&parts, &body) {
        Ok(p) => p,
        Err(e) => {
            let call = Call::new(
                crate::model::Principal {
                    account: String::new(),
                    arn: String::new(),
                    access_key_id: state.auth.claimed_access_key(&parts).unwrap_or_default(),
                },
                request_id.clone(),
                source_ip,
                user_agent,
            );
            state.service.audit_call(
                call,
                &operation,
                serde_json::Value::Null,
                serde_json::Value::Null,
                Some(&e),
                true,
            );
            tracing::info!(request_id = %request_id, operation = %operation, error = e.code(), "authentication failed");
            return error_response(&e, &request_id);
        }
    };
    let call = Call::new(principal, request_id.clone(), source_ip, user_agent);
    let result = dispatch!(operation.as_str(), &state, call, body, &request_id;
        "CancelKeyDeletion" => operations::cancel_key_deletion::CancelKeyDeletion,
        "ConnectCustomKeyStore" => operations::connect_custom_key_store::ConnectCustomKeyStore,
        "CreateCustomKeyStore" => operations::create_custom_key_store::CreateCustomKeyStore,
        "DeleteCustomKeyStore" => operations::delete_custom_key_store::DeleteCustomKeyStore,
        "DescribeCustomKeyStores" => operations::describe_custom_key_stores::DescribeCustomKeyStores,
        "DisconnectCustomKeyStore" => operations::disconnect_custom_key_store::DisconnectCustomKeyStore,
        "UpdateCustomKeyStore" => operations::update_custom_key_store::UpdateCustomKeyStore,
        "CreateAlias" => operations::create_alias::CreateAlias,
        "CreateKey" => operations::create_key::CreateKey,
        "Decrypt" => operations::decrypt::Decrypt,
        "DeleteAlias" => operations::delete_alias::DeleteAlias,
        "DescribeKey" => operations::describe_key::DescribeKey,
        "DisableKey" => operations::disable_key::DisableKey,
        "DisableKeyRotation" => operations::disable_key_rotation::DisableKeyRotation,
        "EnableKey" => operations::enable_key::EnableKey,
        "EnableKeyRotation" => operations::enable_key_rotation::EnableKeyRotation,
        "Encrypt" => operations::encrypt::Encrypt,
        "GenerateDataKey" => operations::generate_data_key::GenerateDataKey,
        "GenerateDataKeyWithoutPlaintext" => operations::generate_data_key_without_plaintext::GenerateDataKeyWithoutPlaintext,
        "GenerateRandom" => operations::generate_random::GenerateRandom,
        "GetKeyPolicy" => operations::get_key_policy::GetKeyPolicy,
        "GetKeyRotationStatus" => operations::get_key_rotation_status::GetKeyRotationStatus,
        "ListAliases" => operations::list_aliases::ListAliases,
        "ListKeyPolicies" => operations::list_key_policies::ListKeyPolicies,
        "ListKeyRotations" => operations::list_key_rotations::ListKeyRotations,
        "ListKeys" => operations::list_keys::ListKeys,
        "ListResourceTags" => operations::list_resource_tags::ListResourceTags,
        "PutKeyPolicy" => operations::put_key_policy::PutKeyPolicy,
        "ReEncrypt" => operations::re_encrypt::ReEncrypt,
        "RotateKeyOnDemand" => operations::rotate_key_on_demand::RotateKeyOnDemand,
        "ScheduleKeyDeletion" => operations::schedule_key_deletion::ScheduleKeyDeletion,
        "TagResource" => operations::tag_resource::TagResource,
        "UntagResource" => operations::untag_resource::UntagResource,
        "UpdateAlias" => operations::update_alias::UpdateAlias,
        "UpdateKeyDescription" => operations::update_key_description::UpdateKeyDescription,
    );
    match result {
        Ok(bytes) => with_headers(StatusCode::OK, bytes, &request_id),
        Err(e) => error_response(&e, &request_id),
    }
}

/// Decodes, executes, audits and serializes one operation.
async fn run<O: Operation>(
    state: &Arc<AppState>,
    mut call: Call,
    body: Bytes,
    request_id: &str,
) -> Result<Vec<u8>, KmsError> {
    let svc = state.service.clone();
    call.operation = O::NAME;
    let started = std::time::Instant::now();
    let result = run_inner::<O>(&svc, call, body, request_id).await;
    let m = svc.metrics();
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
    svc: &Arc<KmsService>,
    mut call: Call,
    body: Bytes,
    request_id: &str,
) -> Result<Vec<u8>, KmsError> {
    let svc = svc.clone();
    let decoded: Result<O::Request, KmsError> = if body.is_empty() {
        serde_json::from_slice(b"{}")
    } else {
        serde_json::from_slice(&body)
    }
    .map_err(serialization_error);
    let req = match decoded {
        Ok(r) => r,
        Err(e) => {
            svc.audit_call(
                call,
                O::NAME,
                serde_json::Value::Null,
                serde_json::Value::Null,
                Some(&e),
                O::READ_ONLY,
            );
            return Err(e);
        }
    };
    let params = O::audit_parameters(&req);
    let hsm_pool = if O::BLOCKING { None } else { svc.hsm_pool() };
    let (call, result) = if hsm_pool.is_none() && !O::BLOCKING && !svc.crypto_blocks() {
        let r = O::execute(&svc, &mut call, req);
        (call, r)
    } else {
        // Off the async workers: crypto with an HSM configured on the HSM threads (see
        // hsm::threads), store writes and XKS-only crypto on tokio's blocking pool.
        let svc2 = svc.clone();
        let job = move || {
            let r = O::execute(&svc2, &mut call, req);
            (call, r)
        };
        let done = match hsm_pool {
            Some(pool) => pool.run(job).await.map_err(|e| e.to_string()),
            None => tokio::task::spawn_blocking(job)
                .await
                .map_err(|e| e.to_string()),
        };
        match done {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(request_id, error = %e, "operation task failed");
                return Err(KmsError::internal());
            }
        }
    };
    match result {
        Ok(resp) => {
            svc.audit_call(
                call,
                O::NAME,
                params,
                O::audit_response(&resp),
                None,
                O::READ_ONLY,
            );
            serde_json::to_vec(&resp).map_err(|e| {
                tracing::error!(request_id, error = %e, "response not serializable");
                KmsError::internal()
            })
        }
        Err(e) => {
            svc.audit_call(
                call,
                O::NAME,
                params,
                serde_json::Value::Null,
                Some(&e),
                O::READ_ONLY,
            );
            if matches!(e, KmsError::KmsInternal(_)) {
                tracing::warn!(request_id, operation = O::NAME, "internal error");
            }
            Err(e)
        }
    }
}

/// Maps a JSON decoding error to AWS's SerializationException (the message describes where,
/// never echoes values).
fn serialization_error(e: serde_json::Error) -> KmsError {
    use serde_json::error::Category;
    let msg = match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            "Malformed JSON in request body".to_string()
        }
        Category::Data => {
            let text = e.to_string();
            if text.contains("Invalid base64") {
                "Base64 encoded value is not valid".to_string()
            } else if text.starts_with("invalid type") {
                // serde's "invalid type: integer `5`, expected a string at line 1 column 12"
                // names the JSON type and the expected type; drop the value itself.
                let expected = text.split("expected ").nth(1).unwrap_or("another type");
                format!(
                    "Unexpected value type in request body, expected {}",
                    expected.split(" at line").next().unwrap_or(expected)
                )
            } else {
                "Request body does not match the operation's input shape".to_string()
            }
        }
    };
    KmsError::Serialization(msg)
}
