//! A small XKS proxy for tests of the KMS's external key store support: HTTPS (rustls, a
//! certificate for `localhost`), SigV4 verification with service `kms-xks-proxy`, AES-256-GCM
//! with in-memory external keys, a record of every request body, and knobs for faults (an error
//! name to return, a delay, dropping the listener). It is not our production proxy
//! (`xks-proxy/`); it exists to observe exactly what the KMS sends.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]
// Test knobs are std mutexes the tests lock and unwrap directly.
#![allow(clippy::disallowed_types)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

pub const AKID: &str = "ABCDEFGHIJKLMNOPQRST234567";
pub const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0xMjM0";

pub struct ProxyState {
    /// Every request: (path, body as JSON).
    pub requests: Mutex<Vec<(String, serde_json::Value)>>,
    /// When set, every non-health call fails with (status, errorName).
    pub fail: Mutex<Option<(u16, String)>>,
    /// When set, health fails too.
    pub fail_health: Mutex<Option<(u16, String)>>,
    /// Delay before answering.
    pub delay_ms: Mutex<u64>,
    /// When set, health answers with these `ekmFleetDetails` (default: one ACTIVE `hsm-1`).
    pub fleet: Mutex<Option<serde_json::Value>>,
    /// Disabled external keys.
    pub disabled: Mutex<Vec<String>>,
    keys: HashMap<String, [u8; 32]>,
    credentials: Mutex<Vec<(String, String)>>,
}

pub struct TestProxy {
    pub state: Arc<ProxyState>,
    pub port: u16,
    pub ca_pem: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl TestProxy {
    pub async fn start() -> TestProxy {
        Self::start_on(0).await
    }

    /// Starts on a given loopback port (0: any free port).
    pub async fn start_on(port: u16) -> TestProxy {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("xks-proxy-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
        let tls = serve::Tls::from_files(
            &dir.join("cert.pem"),
            &dir.join("key.pem"),
            &serve::TlsOptions::default(),
        )
        .unwrap();
        let mut keys = HashMap::new();
        for (i, id) in ["k1", "k2", "k3", "k4"].iter().enumerate() {
            keys.insert(id.to_string(), [i as u8 + 7; 32]);
        }
        let state = Arc::new(ProxyState {
            requests: Mutex::default(),
            fail: Mutex::default(),
            fail_health: Mutex::default(),
            delay_ms: Mutex::new(0),
            fleet: Mutex::default(),
            disabled: Mutex::default(),
            keys,
            credentials: Mutex::new(vec![(AKID.to_string(), SECRET.to_string())]),
        });
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = serve::Server::new(listener, router).tls(Some(Arc::new(tls)));
        tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        TestProxy {
            state,
            port,
            ca_pem: cert.cert.pem(),
            stop: Some(tx),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// Stops listening (the port then refuses connections).
    pub fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    pub fn all_request_text(&self) -> String {
        self.state
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|(p, b)| format!("{p} {b}\n"))
            .collect()
    }
}

fn err(status: u16, name: &str) -> Response {
    let body = serde_json::json!({"errorName": name, "errorMessage": "test proxy"}).to_string();
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body,
    )
        .into_response()
}

fn b64(s: &serde_json::Value) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(s.as_str()?)
        .ok()
}

fn gcm_aad(aad: &[u8], cm: &[u8]) -> Vec<u8> {
    let mut out = (aad.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(aad);
    out.push(cm.len() as u8);
    out.extend_from_slice(cm);
    out
}

async fn handle(
    State(st): State<Arc<ProxyState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    // SigV4 with service kms-xks-proxy.
    let mut builder = axum::http::Request::builder()
        .method("POST")
        .uri(uri.clone());
    for (k, v) in headers.iter() {
        builder = builder.header(k, v);
    }
    let (parts, _) = builder.body(()).unwrap().into_parts();
    let req = sigv4::RequestParts::from_http(&parts, &body);
    let auth = match sigv4::extract_authorization(&req) {
        Ok(a) => a,
        Err(_) => return err(401, "AuthenticationFailedException"),
    };
    let secret = st
        .credentials
        .lock()
        .unwrap()
        .iter()
        .find(|(a, _)| *a == auth.access_key_id)
        .map(|(_, s)| s.clone());
    let Some(secret) = secret else {
        return err(401, "AuthenticationFailedException");
    };
    let options =
        sigv4::VerifyOptions::new("kms-xks-proxy", "us-east-1", chrono::Duration::minutes(5));
    if sigv4::verify(&req, &auth, secret.as_bytes(), &options, chrono::Utc::now()).is_err() {
        return err(401, "AuthenticationFailedException");
    }
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    st.requests
        .lock()
        .unwrap()
        .push((path.clone(), json.clone()));
    let delay = *st.delay_ms.lock().unwrap();
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let Some(rest) = path.split("/kms/xks/v1/").nth(1) else {
        return err(404, "InvalidUriPathException");
    };
    if rest == "health" {
        if let Some((s, n)) = st.fail_health.lock().unwrap().clone() {
            return err(s, &n);
        }
        let fleet = st.fleet.lock().unwrap().clone().unwrap_or_else(
            || serde_json::json!([{"id": "hsm-1", "model": "memory", "healthStatus": "ACTIVE"}]),
        );
        return json_ok(serde_json::json!({
            "xksProxyFleetSize": 1, "xksProxyVendor": "test", "xksProxyModel": "test proxy",
            "ekmVendor": "test", "ekmFleetDetails": fleet
        }))
        .into_response();
    }
    if let Some((s, n)) = st.fail.lock().unwrap().clone() {
        return err(s, &n);
    }
    let mut segs = rest.split('/');
    let (Some("keys"), Some(id), Some(op)) = (segs.next(), segs.next(), segs.next()) else {
        return err(404, "InvalidUriPathException");
    };
    let Some(material) = st.keys.get(id) else {
        return err(404, "KeyNotFoundException");
    };
    let disabled = st.disabled.lock().unwrap().iter().any(|d| d == id);
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, material).unwrap());
    let aad = json
        .get("additionalAuthenticatedData")
        .and_then(b64)
        .unwrap_or_default();
    match op {
        "metadata" => json_ok(serde_json::json!({
            "keySpec": "AES_256", "keyUsage": ["ENCRYPT", "DECRYPT"],
            "keyStatus": if disabled { "DISABLED" } else { "ENABLED" }
        }))
        .into_response(),
        "encrypt" => {
            if disabled {
                return err(400, "InvalidStateException");
            }
            let Some(mut data) = json.get("plaintext").and_then(b64) else {
                return err(400, "ValidationException");
            };
            let iv: [u8; 12] = rand_iv();
            let cm = b"tp-v1".to_vec();
            let tag = key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(iv),
                    Aad::from(gcm_aad(&aad, &cm)),
                    &mut data,
                )
                .unwrap();
            let e = base64::engine::general_purpose::STANDARD;
            json_ok(serde_json::json!({
                "ciphertext": e.encode(&data), "initializationVector": e.encode(iv),
                "authenticationTag": e.encode(tag.as_ref()), "ciphertextMetadata": e.encode(&cm)
            }))
            .into_response()
        }
        "decrypt" => {
            if disabled {
                return err(400, "InvalidStateException");
            }
            let (Some(ct), Some(iv), Some(tag)) = (
                json.get("ciphertext").and_then(b64),
                json.get("initializationVector").and_then(b64),
                json.get("authenticationTag").and_then(b64),
            ) else {
                return err(400, "ValidationException");
            };
            let cm = json
                .get("ciphertextMetadata")
                .and_then(b64)
                .unwrap_or_default();
            let Ok(iv) = <[u8; 12]>::try_from(iv.as_slice()) else {
                return err(400, "InvalidCiphertextException");
            };
            let mut buf = ct;
            buf.extend_from_slice(&tag);
            match key.open_in_place(
                Nonce::assume_unique_for_key(iv),
                Aad::from(gcm_aad(&aad, &cm)),
                &mut buf,
            ) {
                Ok(pt) => json_ok(serde_json::json!({
                    "plaintext": base64::engine::general_purpose::STANDARD.encode(pt)
                }))
                .into_response(),
                Err(_) => err(400, "InvalidCiphertextException"),
            }
        }
        _ => err(404, "InvalidUriPathException"),
    }
}

fn json_ok(v: serde_json::Value) -> Json {
    Json(v)
}

/// A JSON response (axum's `Json` needs a feature the server does not use).
struct Json(serde_json::Value);

impl Json {
    fn into_response(self) -> Response {
        (
            StatusCode::OK,
            [("content-type", "application/json")],
            self.0.to_string(),
        )
            .into_response()
    }
}

fn rand_iv() -> [u8; 12] {
    let mut iv = [0u8; 12];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut iv).unwrap();
    iv
}
