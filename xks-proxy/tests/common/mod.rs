//! Test harness: SoftHSM tokens private to the test process, AES keys on them, an in-process
//! proxy on 127.0.0.1:0 configured from a TOML file in a temporary directory, and a SigV4
//! signing HTTP client (plain or TLS, with or without a client certificate).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use sigv4::{SignableRequest, Signer};
use xks_wire::{self, Operation};

pub mod faults;

pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
pub const PIN: &str = "1234";
pub const SO_PIN: &str = "12345678";
pub const REGION: &str = "us-east-1";

/// Two valid credentials (A-Z2-7 access key ids, 43-64 character secrets).
pub const AKID_1: &str = "AKIAXKSPROXYTESTONE2";
pub const SECRET_1: &str = "dGVzdC1zZWNyZXQtb25lLWZvci14a3MtcHJveHktdGVzdHM=";
pub const AKID_2: &str = "AKIAXKSPROXYTESTTWO3";
pub const SECRET_2: &str = "dGVzdC1zZWNyZXQtdHdvLWZvci14a3MtcHJveHktdGVzdHM=";
pub const AKID_3: &str = "AKIAXKSPROXYTESTTHRE";
pub const SECRET_3: &str = "dGVzdC1zZWNyZXQtdGhyZWUtZm9yLXhrcy1wcm94eS10ZXN0cw==";

pub const PREFIX: &str = "example/uri/path/prefix";
pub const PRINCIPAL: &str = "arn:aws:iam::123456789012:user/Alice";
pub const KEY_ARN: &str =
    "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

/// The directory of this process's SoftHSM configuration and tokens.
pub fn softhsm_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        assert!(
            Path::new(MODULE).exists(),
            "SoftHSMv2 is not installed ({MODULE} missing): run softhsm/install.sh"
        );
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("xks-proxy-test-softhsm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            ),
        )
        .unwrap();
        // Read at C_Initialize, i.e. before the module is first loaded by this process.
        std::env::set_var("SOFTHSM2_CONF", &conf);
        dir
    })
}

fn profile() -> hsm::VendorProfile {
    hsm::VendorProfile::builtin("softhsm2").unwrap()
}

/// Initializes (once) a token with `label` and user PIN [`PIN`].
pub fn token(label: &str) -> String {
    softhsm_dir();
    hsm::token::init_token(
        Path::new(MODULE),
        label,
        &SO_PIN.to_string().into(),
        &PIN.to_string().into(),
        &profile(),
    )
    .unwrap();
    label.to_string()
}

/// A token for one test (its keys are created before its proxy starts).
///
/// Every call makes a new token: SoftHSM 2.6 sometimes fails C_GenerateKey for a token object
/// (CKR_GENERAL_ERROR) while other sessions of the process work on the same token, and tests
/// run as concurrent threads. A token per test keeps object creation and use apart.
pub fn shared_token() -> String {
    token(&unique("xks-test"))
}

/// A label unique in this process.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{}", N.fetch_add(1, Ordering::SeqCst))
}

/// Creates a persistent AES key (`value_len` bytes) labelled `label` on `token_label`.
pub fn create_key_with(
    token_label: &str,
    label: &str,
    value_len: u64,
    encrypt: bool,
    decrypt: bool,
) {
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::Attribute;
    use cryptoki::session::UserType;
    // SoftHSM 2.6 answers CKR_GENERAL_ERROR when one process creates token objects on one
    // token from several threads at once: tests create their keys one at a time.
    static CREATE: parking_lot::Mutex<()> = parking_lot::Mutex::new(());
    let _one_at_a_time = CREATE.lock();
    let ctx = hsm::module::load(Path::new(MODULE)).unwrap();
    let slot = hsm::token::find_slot(&ctx, token_label, &profile()).unwrap();
    let s = ctx.open_rw_session(slot).unwrap();
    match s.login(UserType::User, Some(&PIN.to_string().into())) {
        Ok(()) => {}
        Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("login: {e}"),
    }
    let template = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Encrypt(encrypt),
        Attribute::Decrypt(decrypt),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::ValueLen(value_len.into()),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    // The login belongs to the process and ends with its last session: if another test's
    // sessions all closed in between, log in again.
    // SoftHSM's object store is not safe for concurrent writes: take the driver's lock.
    let _exclusive = hsm::module::object_store_lock().write();
    match s.generate_key(&Mechanism::AesKeyGen, &template) {
        Ok(_) => {}
        Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserNotLoggedIn, _)) => {
            s.login(UserType::User, Some(&PIN.to_string().into()))
                .unwrap();
            s.generate_key(&Mechanism::AesKeyGen, &template).unwrap();
        }
        Err(e) => panic!("generate_key: {e}"),
    }
    // No logout, and the session stays open for the life of the process, so that the login
    // (per application, gone with the last session) survives for the other tests.
    anchors().lock().push(s);
}

fn anchors() -> &'static parking_lot::Mutex<Vec<cryptoki::session::Session>> {
    static A: OnceLock<parking_lot::Mutex<Vec<cryptoki::session::Session>>> = OnceLock::new();
    A.get_or_init(Default::default)
}

pub fn create_key(token_label: &str, label: &str) {
    create_key_with(token_label, label, 32, true, true);
}

/// Options of a test proxy. `extra` is appended to the generated TOML.
#[derive(Clone)]
pub struct ProxyOptions {
    pub token: String,
    /// `[[keys]]` entries: (id, label, enabled).
    pub keys: Vec<(String, String, bool)>,
    pub extra: String,
    pub keystore_extra: String,
    pub credentials: Vec<(String, String)>,
    pub tls: Option<TlsFiles>,
    pub head: String,
}

impl ProxyOptions {
    pub fn new(token: &str) -> Self {
        ProxyOptions {
            token: token.to_string(),
            keys: Vec::new(),
            extra: String::new(),
            keystore_extra: String::new(),
            credentials: vec![
                (AKID_1.into(), SECRET_1.into()),
                (AKID_2.into(), SECRET_2.into()),
            ],
            tls: None,
            head: String::new(),
        }
    }

    pub fn key(mut self, id: &str, label: &str) -> Self {
        self.keys.push((id.into(), label.into(), true));
        self
    }

    pub fn disabled_key(mut self, id: &str, label: &str) -> Self {
        self.keys.push((id.into(), label.into(), false));
        self
    }

    pub fn toml(&self) -> String {
        let mut t = format!(
            "[server]\nlisten = '127.0.0.1:0'\nregion = '{REGION}'\nbaseline_route = true\n{}\n",
            self.head
        );
        if let Some(tls) = &self.tls {
            t.push_str(&format!(
                "[tls]\ncert_file = '{}'\nkey_file = '{}'\n",
                tls.server_cert.display(),
                tls.server_key.display()
            ));
            if let Some(ca) = &tls.client_ca {
                t.push_str(&format!("client_ca_file = '{}'\n", ca.display()));
            }
        }
        t.push_str("[metrics]\nlisten = '127.0.0.1:0'\n");
        t.push_str(&self.extra);
        t.push_str(&format!(
            "\n[[hsms]]\nname = 'softhsm-a'\nmodule = '{MODULE}'\ntoken_label = '{}'\npin = '{PIN}'\nmax_sessions = 4\n",
            self.token
        ));
        for (id, label, enabled) in &self.keys {
            t.push_str(&format!(
                "[[keys]]\nid = '{id}'\nlabel = '{label}'\nenabled = {enabled}\n"
            ));
        }
        t.push_str(&format!(
            "[[keystores]]\nprefix = '{PREFIX}'\n{}\n",
            self.keystore_extra
        ));
        for (akid, secret) in &self.credentials {
            t.push_str(&format!(
                "[[keystores.credentials]]\naccess_key_id = '{akid}'\nsecret_access_key = '{secret}'\n"
            ));
        }
        t
    }
}

pub struct TestProxy {
    pub proxy: Option<xks_proxy::RunningProxy>,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub opts: ProxyOptions,
}

impl TestProxy {
    pub async fn start(opts: ProxyOptions) -> TestProxy {
        Self::start_toml(opts.toml(), opts).await
    }

    pub async fn start_toml(toml: String, opts: ProxyOptions) -> TestProxy {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("xks-proxy.toml");
        std::fs::write(&config_path, toml).unwrap();
        let cfg = xks_proxy::config::load(&config_path).unwrap_or_else(|e| panic!("{e}"));
        let proxy = xks_proxy::start(cfg).await.unwrap();
        TestProxy {
            proxy: Some(proxy),
            dir,
            config_path,
            opts,
        }
    }

    pub fn running(&self) -> &xks_proxy::RunningProxy {
        self.proxy.as_ref().unwrap()
    }

    pub fn state(&self) -> &Arc<xks_proxy::AppState> {
        &self.running().state
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.running().addr
    }

    pub fn client(&self) -> Client {
        Client::new(self.addr(), AKID_1, SECRET_1)
    }

    pub fn client_with(&self, akid: &str, secret: &str) -> Client {
        Client::new(self.addr(), akid, secret)
    }

    /// Rewrites the configuration file and reloads it.
    pub fn rewrite(&self, toml: &str) {
        std::fs::write(&self.config_path, toml).unwrap();
        self.state().reload().unwrap();
    }

    pub async fn metrics(&self) -> String {
        let addr = self.running().metrics_addr.unwrap();
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get("/metrics")
            .header("host", addr.to_string())
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(p) = self.proxy.take() {
            p.shutdown().await;
        }
    }
}

/// TLS material for a test.
#[derive(Clone)]
pub struct TlsFiles {
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub server_ca_pem: String,
    pub client_ca: Option<PathBuf>,
}

/// A response: status and JSON body (or `Value::Null`).
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub headers: http::HeaderMap,
}

impl Resp {
    pub fn error_name(&self) -> &str {
        self.body["errorName"].as_str().unwrap_or("")
    }

    /// Asserts an error response with `name` and the spec's status for it.
    pub fn assert_error(&self, name: xks_wire::ErrorName) {
        assert_eq!(self.error_name(), name.as_str(), "body: {}", self.body);
        assert_eq!(self.status, name.http_status(), "body: {}", self.body);
        let msg = self.body["errorMessage"].as_str().unwrap_or("");
        assert!(msg.len() < 512 && msg.chars().all(|c| (' '..='~').contains(&c)));
    }

    pub fn assert_ok(&self) {
        assert_eq!(self.status, 200, "body: {}", self.body);
    }
}

/// A transport: plain TCP or TLS (optionally with a client certificate).
#[derive(Clone)]
pub enum Transport {
    Plain,
    Tls(Arc<rustls::ClientConfig>),
}

/// A keep-alive connection.
pub struct Conn {
    send: SendRequest<Full<Bytes>>,
}

/// A signing client for one proxy.
#[derive(Clone)]
pub struct Client {
    pub addr: std::net::SocketAddr,
    pub akid: String,
    pub secret: String,
    pub region: String,
    pub service: String,
    pub prefix: String,
    pub transport: Transport,
    /// Signing time offset (clock-skew tests).
    pub skew: chrono::Duration,
}

pub fn metadata(op: &str) -> Value {
    json!({
        "awsPrincipalArn": PRINCIPAL,
        "kmsKeyArn": KEY_ARN,
        "kmsOperation": op,
        "kmsRequestId": uuid(),
        "kmsViaService": "ebs"
    })
}

fn uuid() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "00000000-0000-4000-8000-{:012}",
        N.fetch_add(1, Ordering::SeqCst)
    )
}

pub fn b64(b: &[u8]) -> String {
    xks_wire::Base64::encode(b).0
}

pub fn unb64(v: &Value) -> Vec<u8> {
    xks_wire::Base64(v.as_str().unwrap_or("").to_string())
        .decode()
        .unwrap()
}

impl Client {
    pub fn new(addr: std::net::SocketAddr, akid: &str, secret: &str) -> Client {
        Client {
            addr,
            akid: akid.into(),
            secret: secret.into(),
            region: REGION.into(),
            service: xks_wire::SIGV4_SERVICE.into(),
            prefix: PREFIX.into(),
            transport: Transport::Plain,
            skew: chrono::Duration::zero(),
        }
    }

    pub fn host(&self) -> String {
        match self.transport {
            Transport::Plain => self.addr.to_string(),
            Transport::Tls(_) => format!("localhost:{}", self.addr.port()),
        }
    }

    pub async fn connect(&self) -> Result<Conn, String> {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| e.to_string())?;
        stream.set_nodelay(true).unwrap();
        let send = match &self.transport {
            Transport::Plain => {
                let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                send
            }
            Transport::Tls(cfg) => {
                let connector = tokio_rustls::TlsConnector::from(cfg.clone());
                let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                let tls = connector
                    .connect(name, stream)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                send
            }
        };
        Ok(Conn { send })
    }

    /// Sends a request signed for `path` (no signature when `signed` is false).
    pub async fn send_raw(
        &self,
        conn: &mut Conn,
        method: &str,
        path: &str,
        body: Vec<u8>,
        signed: bool,
    ) -> Result<Resp, String> {
        let host = self.host();
        let mut b = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &host)
            .header("content-type", "application/json");
        if signed {
            let signer = Signer::new(
                self.akid.as_str(),
                self.secret.as_str(),
                self.region.as_str(),
                self.service.as_str(),
            );
            let s = signer
                .sign(
                    &SignableRequest {
                        method,
                        host: &host,
                        path,
                        query: "",
                        headers: &[],
                        body: &body,
                    },
                    chrono::Utc::now() + self.skew,
                )
                .map_err(|e| e.to_string())?;
            for (name, value) in s.headers() {
                b = b.header(name, value);
            }
        }
        let req = b.body(Full::new(Bytes::from(body))).unwrap();
        conn.send.ready().await.map_err(|e| e.to_string())?;
        let resp = conn
            .send
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Resp {
            status,
            body,
            headers,
        })
    }

    pub fn path(&self, op: Operation, key_id: &str) -> String {
        xks_wire::uri_path(&self.prefix, op, key_id)
    }

    /// One signed POST on a fresh connection.
    pub async fn call(&self, op: Operation, key_id: &str, body: Value) -> Resp {
        let mut conn = self.connect().await.unwrap();
        self.send_raw(
            &mut conn,
            "POST",
            &self.path(op, key_id),
            serde_json::to_vec(&body).unwrap(),
            true,
        )
        .await
        .unwrap()
    }

    pub async fn health(&self) -> Resp {
        self.call(
            Operation::GetHealthStatus,
            "",
            json!({"requestMetadata": {"kmsRequestId": uuid(), "kmsOperation": "KmsHealthCheck"}}),
        )
        .await
    }

    pub async fn metadata(&self, key_id: &str) -> Resp {
        self.call(
            Operation::GetKeyMetadata,
            key_id,
            json!({"requestMetadata": metadata("CreateKey")}),
        )
        .await
    }

    pub async fn encrypt(
        &self,
        key_id: &str,
        plaintext: &[u8],
        aad: Option<&[u8]>,
        cdiv: bool,
    ) -> Resp {
        let mut body = json!({
            "requestMetadata": metadata("Encrypt"),
            "plaintext": b64(plaintext),
            "encryptionAlgorithm": "AES_GCM",
        });
        if let Some(a) = aad {
            body["additionalAuthenticatedData"] = json!(b64(a));
        }
        if cdiv {
            body["ciphertextDataIntegrityValueAlgorithm"] = json!("SHA_256");
        }
        self.call(Operation::Encrypt, key_id, body).await
    }

    /// Decrypts an Encrypt response (its ciphertext, IV, tag and metadata) with `aad`.
    pub async fn decrypt_response(&self, key_id: &str, enc: &Value, aad: Option<&[u8]>) -> Resp {
        let mut body = json!({
            "requestMetadata": metadata("Decrypt"),
            "ciphertext": enc["ciphertext"],
            "initializationVector": enc["initializationVector"],
            "authenticationTag": enc["authenticationTag"],
            "encryptionAlgorithm": "AES_GCM",
        });
        if !enc["ciphertextMetadata"].is_null() {
            body["ciphertextMetadata"] = enc["ciphertextMetadata"].clone();
        }
        if let Some(a) = aad {
            body["additionalAuthenticatedData"] = json!(b64(a));
        }
        self.call(Operation::Decrypt, key_id, body).await
    }
}

// ---------------------------------------------------------------------------------------------
// Certificates (rcgen)
// ---------------------------------------------------------------------------------------------

/// A CA that can issue certificates.
pub struct TestCa {
    pub cert: rcgen::Certificate,
    pub issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pub pem: String,
}

pub fn new_ca(name: &str) -> TestCa {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let pem = cert.pem();
    TestCa {
        cert,
        issuer: rcgen::Issuer::new(params, key),
        pem,
    }
}

/// Issues a certificate; returns (cert PEM, key PEM).
pub fn issue(ca: &TestCa, cn: &str, sans: &[&str], client: bool) -> (String, String) {
    let mut params =
        rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.extended_key_usages = vec![if client {
        rcgen::ExtendedKeyUsagePurpose::ClientAuth
    } else {
        rcgen::ExtendedKeyUsagePurpose::ServerAuth
    }];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Writes server TLS files (and a client CA when `client_ca` is given) into `dir`.
pub fn tls_files(dir: &Path, server_ca: &TestCa, client_ca: Option<&TestCa>) -> TlsFiles {
    let (cert, key) = issue(server_ca, "localhost", &["localhost", "127.0.0.1"], false);
    let server_cert = dir.join("server.pem");
    let server_key = dir.join("server.key");
    std::fs::write(&server_cert, cert).unwrap();
    std::fs::write(&server_key, key).unwrap();
    let client_ca_path = client_ca.map(|ca| {
        let p = dir.join("client-ca.pem");
        std::fs::write(&p, &ca.pem).unwrap();
        p
    });
    TlsFiles {
        server_cert,
        server_key,
        server_ca_pem: server_ca.pem.clone(),
        client_ca: client_ca_path,
    }
}

/// A rustls client configuration trusting `server_ca_pem`, optionally presenting a client
/// certificate.
pub fn client_tls(server_ca_pem: &str, client: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(server_ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let cfg = match client {
        None => b.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            b.with_client_auth_cert(certs, key).unwrap()
        }
    };
    Arc::new(cfg)
}
