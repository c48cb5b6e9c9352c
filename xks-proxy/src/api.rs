//! The HTTP edge: routing of `[/{prefix}]/kms/xks/v1/...`, SigV4 authentication, the
//! per-keystore rate limit, request parsing and validation, secondary authorization, the four
//! operations, the one request log line (with kmsRequestId) and request metrics.
//!
//! Order of checks for a request: path shape (404 InvalidUriPathException) -> method (405) ->
//! keystore of the prefix (404 InvalidUriPathException) -> body size (501) -> SigV4 (401) ->
//! rate limit (429) -> JSON and fields (400 / 501) -> authorization (403, not for health) ->
//! key (404 KeyNotFoundException, 400 InvalidStateException when disabled) -> HSM via the
//! bounded pool (429 / 503 / errors of the key manager).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sigv4::{extract_authorization, verify_cached, RequestParts, VerifyOptions};
use xks_wire::{
    self, Base64, DecryptRequest, DecryptResponse, EkmFleetDetail, EncryptRequest, EncryptResponse,
    ErrorName, GetHealthStatusResponse, GetKeyMetadataResponse, HealthStatus, MetadataOnlyRequest,
    Operation, RequestMetadata, SecretBase64,
};
use zeroize::{Zeroize, Zeroizing};

use crate::authz::Decision;
use crate::config::VerifyEncrypt;
use crate::error::XksError;
use crate::key::KeyEntry;
use crate::state::{AppState, Dynamic, Keystore};

/// `ciphertextMetadata` of this proxy's ciphertexts: format marker `xkp` + version 1, meaning
/// "AAD built exactly as the spec text says" (see README, "Ciphertext format").
pub const CIPHERTEXT_METADATA_V1: &[u8] = b"xkp\x01";

/// Maximum clock skew of SigV4 requests.
const MAX_SKEW_MINUTES: i64 = 5;

/// Who is on the other end of the connection (inserted by the listener).
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub addr: SocketAddr,
    /// The subject CN of the verified client certificate (mTLS only).
    pub client_cn: Option<String>,
}

/// The HTTP router: the XKS API (any path; parsed by hand because prefixes contain slashes),
/// the load-balancer ping and, if enabled, the benchmark baseline route.
pub fn router(state: Arc<AppState>) -> Router {
    let mut r = Router::new();
    if let Some(p) = &state.server.ping_path {
        // GET (and HEAD) only; another method on the ping path is no XKS API either, and gets
        // the API's JSON answer for an unknown path rather than a bare 405 (fuzz finding 6).
        r = r.route(p, get(ping).fallback(handle));
    }
    if state.server.baseline_route {
        r = r
            .route("/__baseline", post(baseline))
            .route("/__baseline/floor/{key}", post(floor));
    }
    r.fallback(handle).with_state(state)
}

/// `GET <ping_path>`: 200 while at least one HSM is not UNAVAILABLE, else 503. No
/// authentication, no HSM call (it reads the cached health).
async fn ping(State(state): State<Arc<AppState>>) -> Response {
    let up = state
        .health
        .snapshot()
        .iter()
        .any(|(_, h)| h.status != HealthStatus::Unavailable);
    let (status, body) = if up {
        (StatusCode::OK, "{\"status\":\"ok\"}")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "{\"status\":\"unavailable\"}",
        )
    };
    json_bytes(status, Bytes::from_static(body.as_bytes()))
}

/// `POST /__baseline`: reads the body like the API does and answers `{}`; measures the HTTP
/// stack without authentication, parsing or HSM work.
async fn baseline(State(state): State<Arc<AppState>>, req: Request) -> Response {
    match axum::body::to_bytes(req.into_body(), state.limits.max_body()).await {
        Ok(_) => json_bytes(StatusCode::OK, Bytes::from_static(b"{}")),
        Err(_) => XksError::validation("unreadable body").into_response(),
    }
}

/// `POST /__baseline/floor/<external key id>` (with the baseline route): the work floor of
/// Encrypt. Like the baseline, plus the key's AES-GCM encryption of the body's first 256
/// bytes (with a 64-byte AAD) in the HSM, right here on the async worker; no authentication,
/// JSON, checks or hand-off to the HSM threads. No proxy can serve an Encrypt with less work
/// on the machine, so its rate bounds the proxy's (`loadgen xks --floor`).
async fn floor(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(key_id): axum::extract::Path<String>,
    req: Request,
) -> Response {
    let body = match axum::body::to_bytes(req.into_body(), state.limits.max_body()).await {
        Ok(b) => b,
        Err(_) => return XksError::validation("unreadable body").into_response(),
    };
    let Some(key) = state.dynamic().keys.get(&key_id).cloned() else {
        return XksError::new(
            ErrorName::KeyNotFoundException,
            format!("external key {key_id} is not configured"),
        )
        .into_response();
    };
    let data = &body[..body.len().min(256)];
    match key.encrypt(12, data, &[0x61; 64], None, false) {
        Ok(_) => json_bytes(StatusCode::OK, Bytes::from_static(b"{}")),
        Err(e) => e.into_response(),
    }
}

fn json_bytes(status: StatusCode, body: Bytes) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn json<T: Serialize>(v: &T) -> Result<Response, XksError> {
    let body = serde_json::to_vec(v)
        .map_err(|e| XksError::internal(format!("cannot serialize the response: {e}")))?;
    Ok(json_bytes(StatusCode::OK, Bytes::from(body)))
}

/// A buffer that is zeroized when the last `Bytes` referring to it is dropped.
struct ZeroOnDrop(Vec<u8>);

impl AsRef<[u8]> for ZeroOnDrop {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for ZeroOnDrop {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// A JSON response holding a secret: serialized into a buffer sized up front (no
/// reallocation leaves copies behind) that is zeroized once sent.
fn secret_json<T: Serialize>(v: &T, size_hint: usize) -> Result<Response, XksError> {
    let mut buf = Vec::with_capacity(size_hint + 64);
    serde_json::to_writer(&mut buf, v)
        .map_err(|_| XksError::internal("cannot serialize the response"))?;
    Ok(json_bytes(
        StatusCode::OK,
        Bytes::from_owner(ZeroOnDrop(buf)),
    ))
}

/// A parsed API path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub prefix: String,
    pub op: Operation,
    pub key_id: String,
}

/// Parses `[/{prefix}]/kms/xks/v1/health` and `[/{prefix}]/kms/xks/v1/keys/{id}/{op}`.
/// Empty prefix segments are ignored (`//kms/xks/v1/health` has the empty prefix).
pub fn parse_route(path: &str) -> Option<Route> {
    let rest = path.strip_prefix('/')?;
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    let base_at = |i: usize| segs.get(i..i + 3) == Some(&["kms", "xks", "v1"][..]);
    let prefix_of = |end: usize| {
        segs[..end]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/")
    };
    if n >= 4 && segs[n - 1] == "health" && base_at(n - 4) {
        return Some(Route {
            prefix: prefix_of(n - 4),
            op: Operation::GetHealthStatus,
            key_id: String::new(),
        });
    }
    if n >= 6 && segs[n - 3] == "keys" && base_at(n - 6) {
        let op = match segs[n - 1] {
            "metadata" => Operation::GetKeyMetadata,
            "encrypt" => Operation::Encrypt,
            "decrypt" => Operation::Decrypt,
            _ => return None,
        };
        return Some(Route {
            prefix: prefix_of(n - 6),
            op,
            key_id: segs[n - 2].to_string(),
        });
    }
    None
}

/// What the request log line and metrics need.
#[derive(Default)]
struct ReqLog {
    op: Option<Operation>,
    prefix: String,
    key_id: String,
    access_key_id: String,
    md: Option<RequestMetadata>,
}

async fn handle(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let started = Instant::now();
    let peer = req.extensions().get::<PeerInfo>().cloned();
    // The client behind trusted reverse proxies (`[server] trusted_proxies`), else the peer.
    let client = peer.as_ref().map(|p| {
        state
            .server
            .trusted_proxies
            .client_ip(p.addr.ip(), req.headers())
    });
    let mut log = ReqLog::default();
    let result = process(&state, req, &mut log).await;
    let elapsed = started.elapsed();
    let op = log.op.map_or("Unknown", Operation::as_str);
    let (response, outcome, message) = match result {
        Ok(resp) => {
            let outcome = if resp.status() == StatusCode::METHOD_NOT_ALLOWED {
                "MethodNotAllowed"
            } else {
                "ok"
            };
            (resp, outcome, String::new())
        }
        Err(e) => {
            let outcome = e.name.as_str();
            let message = e.message.clone();
            (e.into_response(), outcome, message)
        }
    };
    state
        .metrics
        .observe_request(op, outcome, elapsed.as_secs_f64());
    let md = log.md.unwrap_or_default();
    let status = response.status().as_u16();
    macro_rules! request_log {
        ($level:ident) => {
            tracing::$level!(
                target: "xks_proxy::request",
                kms_request_id = %md.kms_request_id,
                kms_operation = %md.kms_operation,
                operation = op,
                prefix = %log.prefix,
                key_id = %log.key_id,
                aws_principal_arn = md.aws_principal_arn.as_deref().unwrap_or(""),
                kms_key_arn = md.kms_key_arn.as_deref().unwrap_or(""),
                kms_via_service = md.kms_via_service.as_deref().unwrap_or(""),
                aws_source_vpc = md.aws_source_vpc.as_deref().unwrap_or(""),
                aws_source_vpce = md.aws_source_vpce.as_deref().unwrap_or(""),
                access_key_id = %log.access_key_id,
                peer = %peer.as_ref().map(|p| p.addr.to_string()).unwrap_or_default(),
                client = %client.map(|c| c.to_string()).unwrap_or_default(),
                client_cn = peer.as_ref().and_then(|p| p.client_cn.as_deref()).unwrap_or(""),
                status,
                outcome,
                error_message = %message,
                latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                "xks request"
            )
        };
    }
    if status >= 500 {
        request_log!(warn);
    } else {
        request_log!(info);
    }
    response
}

fn uri_path_error(path: &str) -> XksError {
    let shown: String = path.chars().take(200).collect();
    XksError::new(
        ErrorName::InvalidUriPathException,
        format!("no XKS API at URI path '{shown}'"),
    )
}

async fn process(state: &AppState, req: Request, log: &mut ReqLog) -> Result<Response, XksError> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let route = parse_route(path).ok_or_else(|| uri_path_error(path))?;
    log.op = Some(route.op);
    log.prefix.clone_from(&route.prefix);
    log.key_id.clone_from(&route.key_id);
    if parts.method != Method::POST {
        let err = XksError::unsupported(format!(
            "method {} is not allowed: the XKS API accepts POST only",
            parts.method
        ));
        let mut resp = err.into_response();
        *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return Ok(resp);
    }
    let dynamic = state.dynamic();
    let keystore = dynamic
        .keystores
        .get(&route.prefix)
        .cloned()
        .ok_or_else(|| uri_path_error(path))?;
    let max_body = state.limits.max_body();
    let body = axum::body::to_bytes(body, max_body).await.map_err(|_| {
        XksError::unsupported(format!(
            "the request body is unreadable or larger than {max_body} bytes"
        ))
    })?;
    authenticate(state, &keystore, &parts, &body, log)?;
    if let Some(limiter) = &keystore.limiter {
        if !limiter.try_acquire() {
            return Err(XksError::throttled(format!(
                "the request quota of this keystore ({} requests/s) is exceeded",
                limiter.params().0
            )));
        }
    }
    let ctx = OpCtx {
        state,
        dynamic: &dynamic,
        keystore: &keystore,
        key_id: &route.key_id,
    };
    match route.op {
        Operation::GetHealthStatus => health(&ctx, &body, log),
        Operation::GetKeyMetadata => metadata(&ctx, &body, log).await,
        Operation::Encrypt => {
            let r = encrypt(&ctx, &body, log).await;
            wipe(body);
            r
        }
        Operation::Decrypt => decrypt(&ctx, &body, log).await,
    }
}

/// Best-effort wipe of a request body that held plaintext.
fn wipe(body: Bytes) {
    if let Ok(mut b) = body.try_into_mut() {
        b.zeroize();
    }
}

fn authenticate(
    state: &AppState,
    keystore: &Keystore,
    parts: &axum::http::request::Parts,
    body: &[u8],
    log: &mut ReqLog,
) -> Result<(), XksError> {
    let req = RequestParts::from_http(parts, body);
    let auth = extract_authorization(&req).map_err(|e| XksError::auth(e.to_string()))?;
    if auth.presigned.is_some() {
        return Err(XksError::auth(
            "query-string (presigned) authentication is not accepted",
        ));
    }
    log.access_key_id.clone_from(&auth.access_key_id);
    let secret = keystore.secret(&auth.access_key_id).ok_or_else(|| {
        XksError::auth(format!(
            "the access key id {} is not valid for this URI path",
            auth.access_key_id
        ))
    })?;
    // The proxy's own policy, unchanged by the KMS API's hardening: presigned requests are
    // refused above; `UNSIGNED-PAYLOAD` stays accepted as before, although AWS KMS always
    // signs the body's SHA-256 (XKS API §1.10) and refusing it would break no known client.
    let options = VerifyOptions {
        allow_presigned: false,
        allow_unsigned_payload: true,
        ..VerifyOptions::new(
            xks_wire::SIGV4_SERVICE,
            &keystore.region,
            chrono::Duration::minutes(MAX_SKEW_MINUTES),
        )
    };
    verify_cached(
        &req,
        &auth,
        secret.expose_secret().as_bytes(),
        &state.sigv4_cache,
        &options,
        chrono::Utc::now(),
    )
    .map_err(|e| XksError::auth(e.to_string()))
}

struct OpCtx<'a> {
    state: &'a AppState,
    dynamic: &'a Dynamic,
    keystore: &'a Keystore,
    key_id: &'a str,
}

fn parse_json<T: DeserializeOwned>(body: &[u8], op: Operation) -> Result<T, XksError> {
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        let what = match e.classify() {
            Category::Syntax => "malformed JSON",
            Category::Eof => "truncated JSON",
            Category::Data => "a field has the wrong type",
            Category::Io => "unreadable input",
        };
        // The serde message is not used: it could quote request values.
        XksError::validation(format!(
            "the body is not a valid {op} request: {what} at line {} column {}",
            e.line(),
            e.column()
        ))
    })
}

fn require_metadata(
    md: Option<RequestMetadata>,
    op: Operation,
) -> Result<RequestMetadata, XksError> {
    let md = md.ok_or_else(|| XksError::validation("requestMetadata is missing"))?;
    if let Some(field) = md.missing_required(op) {
        return Err(XksError::validation(format!(
            "requestMetadata.{field} is missing"
        )));
    }
    Ok(md)
}

fn check_key_id(id: &str) -> Result<(), XksError> {
    if xks_wire::is_valid_key_id(id) {
        Ok(())
    } else {
        Err(XksError::validation(
            "the external key id must be 1 to 128 characters from A-Z a-z 0-9 - . _",
        ))
    }
}

fn authorize(ctx: &OpCtx<'_>, op: Operation, md: &RequestMetadata) -> Result<(), XksError> {
    let Some(policy) = &ctx.keystore.policy else {
        return Ok(());
    };
    match policy.evaluate(op, ctx.key_id, md) {
        Decision::Allow { .. } => Ok(()),
        Decision::Deny { reason } => {
            tracing::warn!(
                kms_request_id = %md.kms_request_id,
                operation = op.as_str(),
                key_id = ctx.key_id,
                aws_principal_arn = md.aws_principal_arn.as_deref().unwrap_or(""),
                kms_operation = %md.kms_operation,
                %reason,
                "request denied by secondary authorization"
            );
            Err(XksError::new(
                ErrorName::AccessDeniedException,
                format!("{op} on key {} is not authorized: {reason}", ctx.key_id),
            ))
        }
    }
}

fn key(ctx: &OpCtx<'_>) -> Result<Arc<KeyEntry>, XksError> {
    ctx.dynamic
        .keys
        .get(ctx.key_id)
        .filter(|_| ctx.keystore.may_use(ctx.key_id))
        .cloned()
        .ok_or_else(|| {
            XksError::new(
                ErrorName::KeyNotFoundException,
                format!("external key {} is not configured", ctx.key_id),
            )
        })
}

fn enabled(key: &KeyEntry) -> Result<(), XksError> {
    if key.enabled {
        Ok(())
    } else {
        Err(XksError::new(
            ErrorName::InvalidStateException,
            format!("external key {} is disabled", key.id),
        ))
    }
}

fn check_algorithm(alg: &str) -> Result<(), XksError> {
    match alg {
        "" => Err(XksError::validation("encryptionAlgorithm is missing")),
        xks_wire::AES_GCM => Ok(()),
        _ => Err(XksError::unsupported(
            "encryptionAlgorithm must be AES_GCM (the only algorithm of XKS API v1)",
        )),
    }
}

fn decode(field: &str, v: &Base64, max: usize) -> Result<Vec<u8>, XksError> {
    if v.max_decoded_len() > max + 2 {
        return Err(XksError::unsupported(format!(
            "{field} is larger than {max} bytes, the most this proxy is configured for"
        )));
    }
    let bytes = v
        .decode()
        .map_err(|_| XksError::validation(format!("{field} is not valid Base64")))?;
    if bytes.len() > max {
        return Err(XksError::unsupported(format!(
            "{field} is larger than {max} bytes, the most this proxy is configured for"
        )));
    }
    Ok(bytes)
}

async fn hsm_call<T, F>(ctx: &OpCtx<'_>, op: Operation, f: F) -> Result<T, XksError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, XksError> + Send + 'static,
{
    let started = Instant::now();
    let r = ctx.state.executor.run(op.as_str(), f).await;
    if let Some(h) = ctx.state.metrics.hsm_histogram(op) {
        h.observe(started.elapsed().as_secs_f64());
    }
    r
}

fn health(ctx: &OpCtx<'_>, body: &[u8], log: &mut ReqLog) -> Result<Response, XksError> {
    let req: MetadataOnlyRequest = parse_json(body, Operation::GetHealthStatus)?;
    log.md = Some(require_metadata(
        req.request_metadata,
        Operation::GetHealthStatus,
    )?);
    let state = ctx.state;
    let snapshot = state.health.snapshot();
    let ekm_vendor = state.identity.ekm_vendor.clone().unwrap_or_else(|| {
        let mut vendors: Vec<String> = snapshot.iter().map(|(h, _)| h.vendor()).collect();
        vendors.dedup();
        vendors.join(", ")
    });
    let resp = GetHealthStatusResponse {
        xks_proxy_fleet_size: state.identity.fleet_size,
        xks_proxy_vendor: state.identity.vendor.clone(),
        xks_proxy_model: state.identity.model.clone(),
        ekm_vendor,
        ekm_fleet_details: snapshot
            .into_iter()
            .take(xks_wire::MAX_FLEET_DETAILS)
            .map(|(hsm, h)| EkmFleetDetail {
                id: hsm.name.clone(),
                model: hsm.model(),
                health_status: h.status,
            })
            .collect(),
    };
    json(&resp)
}

async fn metadata(ctx: &OpCtx<'_>, body: &[u8], log: &mut ReqLog) -> Result<Response, XksError> {
    let op = Operation::GetKeyMetadata;
    let req: MetadataOnlyRequest = parse_json(body, op)?;
    let md = log.md.insert(require_metadata(req.request_metadata, op)?);
    check_key_id(ctx.key_id)?;
    authorize(ctx, op, md)?;
    let key = key(ctx)?;
    let k = key.clone();
    let info = hsm_call(ctx, op, move || k.metadata()).await?;
    json(&GetKeyMetadataResponse {
        key_spec: info.key_spec(),
        key_usage: info.key_usage(),
        key_status: if key.enabled {
            xks_wire::KEY_STATUS_ENABLED
        } else {
            xks_wire::KEY_STATUS_DISABLED
        }
        .to_string(),
    })
}

async fn encrypt(ctx: &OpCtx<'_>, body: &[u8], log: &mut ReqLog) -> Result<Response, XksError> {
    let op = Operation::Encrypt;
    let limits = ctx.state.limits;
    let mut req: EncryptRequest = parse_json(body, op)?;
    let md = log
        .md
        .insert(require_metadata(req.request_metadata.take(), op)?);
    check_key_id(ctx.key_id)?;
    let plaintext_b64 = req
        .plaintext
        .as_ref()
        .ok_or_else(|| XksError::validation("plaintext is missing"))?;
    if plaintext_b64.text_len().div_ceil(4) * 3 > limits.max_plaintext + 2 {
        return Err(XksError::unsupported(format!(
            "plaintext is larger than {} bytes, the most this proxy is configured for",
            limits.max_plaintext
        )));
    }
    let plaintext: Zeroizing<Vec<u8>> = plaintext_b64
        .decode()
        .map_err(|_| XksError::validation("plaintext is not valid Base64"))?;
    if plaintext.len() > limits.max_plaintext {
        return Err(XksError::unsupported(format!(
            "plaintext is larger than {} bytes, the most this proxy is configured for",
            limits.max_plaintext
        )));
    }
    check_algorithm(&req.encryption_algorithm)?;
    let aad = match &req.additional_authenticated_data {
        Some(a) => decode("additionalAuthenticatedData", a, limits.max_aad)?,
        None => Vec::new(),
    };
    let want_cdiv = match req.ciphertext_data_integrity_value_algorithm.as_deref() {
        None => false,
        Some(xks_wire::SHA_256) => true,
        Some(_) => {
            return Err(XksError::unsupported(
                "ciphertextDataIntegrityValueAlgorithm must be SHA_256",
            ))
        }
    };
    authorize(ctx, op, md)?;
    let key = key(ctx)?;
    enabled(&key)?;
    let cm: &'static [u8] = if ctx.state.crypto.ciphertext_metadata {
        CIPHERTEXT_METADATA_V1
    } else {
        b""
    };
    let gcm_aad = xks_wire::gcm_aad(&aad, cm)
        .ok_or_else(|| XksError::unsupported("additionalAuthenticatedData is too long"))?;
    let verify = match ctx.state.crypto.verify_encrypt {
        VerifyEncrypt::Never => false,
        VerifyEncrypt::WithCdiv => want_cdiv,
        VerifyEncrypt::Always => true,
    };
    let iv_len = ctx.state.crypto.iv_length;
    let sealed = hsm_call(ctx, op, move || {
        let cdiv_input = want_cdiv.then_some((aad.as_slice(), cm));
        key.encrypt(iv_len, &plaintext, &gcm_aad, cdiv_input, verify)
    })
    .await?;
    let resp = EncryptResponse {
        authentication_tag: Base64::encode(&sealed.tag),
        ciphertext: Base64::encode(&sealed.ciphertext),
        ciphertext_data_integrity_value: sealed.cdiv.map(|d| Base64::encode(&d)),
        ciphertext_metadata: (!cm.is_empty()).then(|| Base64::encode(cm)),
        initialization_vector: Base64::encode(&sealed.iv),
    };
    json(&resp)
}

async fn decrypt(ctx: &OpCtx<'_>, body: &[u8], log: &mut ReqLog) -> Result<Response, XksError> {
    let op = Operation::Decrypt;
    let limits = ctx.state.limits;
    let mut req: DecryptRequest = parse_json(body, op)?;
    let md = log
        .md
        .insert(require_metadata(req.request_metadata.take(), op)?);
    check_key_id(ctx.key_id)?;
    let ciphertext = decode(
        "ciphertext",
        req.ciphertext
            .as_ref()
            .ok_or_else(|| XksError::validation("ciphertext is missing"))?,
        limits.max_plaintext,
    )?;
    let cm = match &req.ciphertext_metadata {
        Some(m) => {
            let m = m
                .decode()
                .map_err(|_| XksError::validation("ciphertextMetadata is not valid Base64"))?;
            if m.len() > xks_wire::MAX_CIPHERTEXT_METADATA {
                return Err(XksError::validation(format!(
                    "ciphertextMetadata is {} bytes; at most {} are allowed",
                    m.len(),
                    xks_wire::MAX_CIPHERTEXT_METADATA
                )));
            }
            m
        }
        None => Vec::new(),
    };
    check_algorithm(&req.encryption_algorithm)?;
    let aad = match &req.additional_authenticated_data {
        Some(a) => decode("additionalAuthenticatedData", a, limits.max_aad)?,
        None => Vec::new(),
    };
    let iv = req
        .initialization_vector
        .as_ref()
        .ok_or_else(|| XksError::validation("initializationVector is missing"))?
        .decode()
        .map_err(|_| XksError::validation("initializationVector is not valid Base64"))?;
    if iv.len() != 12 && iv.len() != 16 {
        return Err(XksError::invalid_ciphertext(format!(
            "initializationVector is {} bytes; it must be 12 or 16",
            iv.len()
        )));
    }
    let tag = req
        .authentication_tag
        .as_ref()
        .ok_or_else(|| XksError::validation("authenticationTag is missing"))?
        .decode()
        .map_err(|_| XksError::validation("authenticationTag is not valid Base64"))?;
    if tag.len() != xks_wire::TAG_LEN {
        return Err(XksError::invalid_ciphertext(format!(
            "authenticationTag is {} bytes; it must be 16",
            tag.len()
        )));
    }
    authorize(ctx, op, md)?;
    let key = key(ctx)?;
    enabled(&key)?;
    let gcm_aad = xks_wire::gcm_aad(&aad, &cm)
        .ok_or_else(|| XksError::unsupported("additionalAuthenticatedData is too long"))?;
    let mut sealed = ciphertext;
    sealed.extend_from_slice(&tag);
    let plaintext = hsm_call(ctx, op, move || key.decrypt(&iv, &sealed, &gcm_aad)).await?;
    let resp = DecryptResponse {
        plaintext: SecretBase64::encode(&plaintext),
    };
    secret_json(&resp, resp.plaintext.text_len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = parse_route("/example/uri/path/prefix/kms/xks/v1/health");
        assert_eq!(
            r,
            Some(Route {
                prefix: "example/uri/path/prefix".into(),
                op: Operation::GetHealthStatus,
                key_id: String::new()
            })
        );
        let r = parse_route("/kms/xks/v1/keys/foo/encrypt");
        assert_eq!(
            r,
            Some(Route {
                prefix: String::new(),
                op: Operation::Encrypt,
                key_id: "foo".into()
            })
        );
        assert_eq!(
            parse_route("//kms/xks/v1/keys/k/decrypt").map(|r| r.prefix),
            Some(String::new())
        );
        assert_eq!(
            parse_route("/a/kms/xks/v1/keys/kms/metadata").map(|r| (r.prefix, r.key_id)),
            Some(("a".into(), "kms".into()))
        );
        assert_eq!(parse_route("/kms/xks/v1/keys/foo/sign"), None);
        assert_eq!(parse_route("/kms/xks/v1/health/"), None);
        assert_eq!(parse_route("/kms/xks/v2/health"), None);
        assert_eq!(parse_route("/"), None);
        assert_eq!(parse_route(""), None);
    }
}
