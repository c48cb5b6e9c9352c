//! The configuration: one TOML file (plus the credential files it names), parsed into raw serde
//! types and validated into [`Config`]. Validation collects *every* problem and reports them
//! together ([`ConfigError`]); the binary exits with status 64 on any.
//!
//! Relative paths are resolved against the directory of the configuration file. Secrets (HSM
//! PINs, SigV4 secret access keys) may be given inline (development), from an environment
//! variable (`*_env`) or from a file (`*_file`); they are held in `secrecy` types.
//!
//! What is reloadable at run time (SIGHUP, or the periodic re-read, see [`crate::reload`]):
//! `[[keys]]` (enable/disable, add/remove, label), `[[keystores]]` (credentials, credential
//! files, authorization rules, rate limits, key lists) and the TLS certificate and key files.
//! Everything else needs a restart.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hsm::VendorProfile;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use xks_wire::{self, Operation};

use crate::authz::{Effect, Pattern, Policy, Rule};

/// Default plaintext/ciphertext limit (bytes); the spec requires at least 4300.
pub const DEFAULT_MAX_PLAINTEXT: usize = 65_536;
/// Default AAD limit (bytes); the spec requires at least 8192.
pub const DEFAULT_MAX_AAD: usize = 16_384;

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub source: String,
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} configuration problem{}:",
            self.source,
            self.problems.len(),
            if self.problems.len() == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

// ---------------------------------------------------------------------------------------------
// Raw (serde) types: the file format
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: RawServer,
    tls: Option<RawTls>,
    metrics: Option<RawMetrics>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    pool: RawPool,
    #[serde(default)]
    health: RawHealth,
    #[serde(default)]
    crypto: RawCrypto,
    #[serde(default)]
    identity: RawIdentity,
    #[serde(default)]
    reload: RawReload,
    #[serde(default)]
    hsms: Vec<RawHsm>,
    #[serde(default)]
    keys: Vec<RawKey>,
    #[serde(default)]
    keystores: Vec<RawKeystore>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: String,
    #[serde(default = "default_region")]
    region: String,
    #[serde(default)]
    baseline_route: bool,
    #[serde(default = "default_ping_path")]
    ping_path: String,
    #[serde(default = "default_shutdown_grace")]
    shutdown_grace_secs: u64,
    #[serde(default = "default_log_format")]
    log_format: String,
    #[serde(default = "default_max_connections")]
    max_connections: usize,
    #[serde(default)]
    async_threads: Option<usize>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
}

/// The async workers when `[server] async_threads` is not set: as in the KMS
/// ([`hsm::async_threads_beside`]), one less per two HSM threads of an in-process module
/// (SoftHSM): on two cores with two SoftHSM threads, one worker, which gave the proxy 5-6 points
/// more of the reference rate than two did (docs/benchmarks.md).
fn default_async_threads(hsms: &[HsmConfig], hsm_threads: usize) -> usize {
    let in_process = hsms.iter().any(|h| h.token.profile.in_process);
    hsm::async_threads_beside(hsm_threads, in_process)
}

fn default_region() -> String {
    "us-east-1".into()
}
fn default_ping_path() -> String {
    "/ping".into()
}
fn default_shutdown_grace() -> u64 {
    10
}
fn default_log_format() -> String {
    "text".into()
}
fn default_max_connections() -> usize {
    4096
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: PathBuf,
    key_file: PathBuf,
    client_ca_file: Option<PathBuf>,
    client_subjects: Option<Vec<String>>,
    #[serde(default = "yes")]
    tls12: bool,
    #[serde(default = "default_suites")]
    cipher_suites: String,
}

fn yes() -> bool {
    true
}
fn default_suites() -> String {
    "spec".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    #[serde(default = "default_max_plaintext")]
    max_plaintext_bytes: usize,
    #[serde(default = "default_max_aad")]
    max_aad_bytes: usize,
}

fn default_max_plaintext() -> usize {
    DEFAULT_MAX_PLAINTEXT
}
fn default_max_aad() -> usize {
    DEFAULT_MAX_AAD
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            max_plaintext_bytes: DEFAULT_MAX_PLAINTEXT,
            max_aad_bytes: DEFAULT_MAX_AAD,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    #[serde(default)]
    threads: usize,
    #[serde(default)]
    max_in_flight: usize,
    #[serde(default = "default_queue_timeout")]
    queue_timeout_ms: u64,
    #[serde(default = "default_hsm_timeout")]
    hsm_timeout_ms: u64,
}

fn default_queue_timeout() -> u64 {
    50
}
fn default_hsm_timeout() -> u64 {
    200
}

impl Default for RawPool {
    fn default() -> Self {
        RawPool {
            threads: 0,
            max_in_flight: 0,
            queue_timeout_ms: default_queue_timeout(),
            hsm_timeout_ms: default_hsm_timeout(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    #[serde(default = "default_health_interval")]
    interval_secs: u64,
    #[serde(default = "default_degraded_latency")]
    degraded_latency_ms: u64,
}

fn default_health_interval() -> u64 {
    15
}
fn default_degraded_latency() -> u64 {
    50
}

impl Default for RawHealth {
    fn default() -> Self {
        RawHealth {
            interval_secs: default_health_interval(),
            degraded_latency_ms: default_degraded_latency(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCrypto {
    #[serde(default = "default_iv_length")]
    iv_length: usize,
    #[serde(default = "yes")]
    ciphertext_metadata: bool,
    #[serde(default = "default_verify")]
    verify_encrypt: String,
}

fn default_iv_length() -> usize {
    12
}
fn default_verify() -> String {
    "with-cdiv".into()
}

impl Default for RawCrypto {
    fn default() -> Self {
        RawCrypto {
            iv_length: 12,
            ciphertext_metadata: true,
            verify_encrypt: default_verify(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    vendor: Option<String>,
    model: Option<String>,
    ekm_vendor: Option<String>,
    fleet_size: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReload {
    #[serde(default = "default_reload_interval")]
    interval_secs: u64,
}

fn default_reload_interval() -> u64 {
    10
}

impl Default for RawReload {
    fn default() -> Self {
        RawReload {
            interval_secs: default_reload_interval(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHsm {
    name: String,
    #[serde(default = "default_profile")]
    profile: String,
    module: Option<PathBuf>,
    token_label: String,
    pin: Option<SecretString>,
    pin_env: Option<String>,
    pin_file: Option<PathBuf>,
    max_sessions: Option<usize>,
    health_key_label: Option<String>,
}

fn default_profile() -> String {
    "softhsm2".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    id: String,
    hsm: Option<String>,
    hsms: Option<Vec<String>>,
    label: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeystore {
    #[serde(default)]
    prefix: String,
    region: Option<String>,
    keys: Option<Vec<String>>,
    #[serde(default)]
    rate_limit: f64,
    rate_burst: Option<f64>,
    #[serde(default)]
    credentials: Vec<RawCredential>,
    #[serde(default)]
    credentials_files: Vec<PathBuf>,
    authorization: Option<RawAuthorization>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredential {
    access_key_id: String,
    secret_access_key: Option<SecretString>,
    secret_access_key_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuthorization {
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Option<String>,
    effect: String,
    principals: Option<Vec<String>>,
    kms_operations: Option<Vec<String>>,
    operations: Option<Vec<String>>,
    key_ids: Option<Vec<String>>,
    kms_key_arns: Option<Vec<String>>,
    via_services: Option<Vec<String>>,
    source_vpcs: Option<Vec<String>>,
    source_vpces: Option<Vec<String>>,
}

/// A credentials file in TOML: `[[credentials]]` entries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredentialsFile {
    #[serde(default)]
    credentials: Vec<RawCredential>,
}

/// The proxy configuration file that the AWS KMS console offers for download.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConsoleCredentialsFile {
    xks_proxy_uri_path: Option<String>,
    xks_proxy_authentication_credential: ConsoleCredential,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConsoleCredential {
    access_key_id: String,
    raw_secret_access_key: SecretString,
}

// ---------------------------------------------------------------------------------------------
// Validated types
// ---------------------------------------------------------------------------------------------

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from (for reloads); `None` for in-memory configurations.
    pub path: Option<PathBuf>,
    pub server: ServerConfig,
    pub tls: Option<TlsConfig>,
    pub metrics_listen: Option<SocketAddr>,
    pub limits: Limits,
    pub pool: PoolConfig,
    pub health: HealthConfig,
    pub crypto: CryptoConfig,
    pub identity: Identity,
    pub reload_interval: Duration,
    pub hsms: Vec<HsmConfig>,
    /// The parts that can change at run time.
    pub dynamic: DynamicConfig,
    /// SHA-256 over every file the configuration was built from (change detection).
    pub fingerprint: [u8; 32],
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub region: String,
    pub baseline_route: bool,
    pub ping_path: Option<String>,
    pub shutdown_grace: Duration,
    pub json_logs: bool,
    pub max_connections: usize,
    /// Async worker threads of the runtime (see [`Config`]'s loader: `[server] async_threads`,
    /// or derived from the HSM threads).
    pub async_threads: usize,
    /// Reverse proxies whose `X-Forwarded-For` names the client in the request log (none by
    /// default: the client is the socket peer).
    pub trusted_proxies: serve::TrustedProxies,
}

#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// mTLS: the CA client certificates must chain to, and the accepted subject CNs.
    pub client_auth: Option<ClientAuth>,
    pub tls12: bool,
    /// Only the four suites the XKS spec names (true), or rustls' defaults.
    pub spec_suites_only: bool,
}

#[derive(Debug, Clone)]
pub struct ClientAuth {
    pub ca_file: PathBuf,
    pub subjects: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_plaintext: usize,
    pub max_aad: usize,
}

impl Limits {
    /// Largest request body: Base64 of plaintext/ciphertext and AAD plus room for metadata,
    /// IV, tag and JSON (ARNs may be 2048 characters each).
    pub fn max_body(&self) -> usize {
        (self.max_plaintext + self.max_aad).div_ceil(3) * 4 + 32 * 1024
    }
}

#[derive(Debug, Clone, Copy)]
pub struct PoolConfig {
    /// Blocking threads that run HSM calls (the runtime's blocking-thread cap; each one uses
    /// one PKCS#11 session at a time).
    pub threads: usize,
    /// HSM calls admitted at once, running or queued for a thread.
    pub max_in_flight: usize,
    pub queue_timeout: Duration,
    pub hsm_timeout: Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct HealthConfig {
    pub interval: Duration,
    pub degraded_latency: Duration,
}

/// When Encrypt decrypts its own output as a check (spec Appendix C).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyEncrypt {
    Never,
    /// Only when a ciphertextDataIntegrityValue is requested (the default).
    WithCdiv,
    Always,
}

#[derive(Debug, Clone, Copy)]
pub struct CryptoConfig {
    pub iv_length: usize,
    pub ciphertext_metadata: bool,
    pub verify_encrypt: VerifyEncrypt,
}

#[derive(Debug, Clone)]
pub struct Identity {
    pub vendor: String,
    pub model: String,
    pub ekm_vendor: Option<String>,
    pub fleet_size: u32,
}

/// One PKCS#11 instance (module + token).
#[derive(Debug, Clone)]
pub struct HsmConfig {
    pub name: String,
    pub token: hsm::TokenConfig,
    pub health_key_label: Option<String>,
}

/// Reloadable configuration.
#[derive(Debug, Clone, Default)]
pub struct DynamicConfig {
    pub keys: Vec<KeyConfig>,
    pub keystores: Vec<KeystoreConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyConfig {
    pub id: String,
    /// The HSMs holding a copy of the key (at least one; see [`crate::key`]).
    pub hsms: Vec<String>,
    pub label: String,
    pub enabled: bool,
}

#[derive(Debug, Clone)]
pub struct KeystoreConfig {
    /// Without leading or trailing slashes; empty for none.
    pub prefix: String,
    pub region: String,
    /// Keys this keystore may use (`None`: all).
    pub keys: Option<HashSet<String>>,
    /// Requests per second (token bucket) and burst; `None`: unlimited.
    pub rate_limit: Option<(f64, f64)>,
    pub credentials: Vec<Credential>,
    pub authorization: Option<Arc<Policy>>,
}

#[derive(Clone)]
pub struct Credential {
    pub access_key_id: String,
    pub secret: SecretString,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("access_key_id", &self.access_key_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

/// Reads and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        source: path.display().to_string(),
        problems: vec![format!("cannot read: {e}")],
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut cfg = parse(&text, &base, &path.display().to_string())?;
    cfg.path = Some(path.to_path_buf());
    Ok(cfg)
}

/// Parses and validates configuration text; relative paths are resolved against `base_dir`.
pub fn parse(text: &str, base_dir: &Path, source: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError {
        source: source.to_string(),
        problems: vec![e.to_string().trim().replace('\n', " ")],
    })?;
    let mut v = Validator {
        problems: Vec::new(),
        base: base_dir.to_path_buf(),
        fingerprint: ring::digest::Context::new(&ring::digest::SHA256),
    };
    v.fingerprint.update(text.as_bytes());
    let cfg = v.config(raw);
    if v.problems.is_empty() {
        let mut cfg = cfg;
        let digest = v.fingerprint.finish();
        cfg.fingerprint.copy_from_slice(digest.as_ref());
        Ok(cfg)
    } else {
        Err(ConfigError {
            source: source.to_string(),
            problems: v.problems,
        })
    }
}

struct Validator {
    problems: Vec<String>,
    base: PathBuf,
    fingerprint: ring::digest::Context,
}

fn is_valid_access_key_id(id: &str) -> bool {
    (20..=30).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
}

fn is_valid_secret(s: &str) -> bool {
    (43..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

/// Whether a path prefix is valid: characters `a-z A-Z 0-9 / - _`, no empty segments, and the
/// whole `XksProxyUriPath` at most 128 characters.
pub fn is_valid_prefix(prefix: &str) -> bool {
    if prefix.is_empty() {
        return true;
    }
    prefix.len() + 1 + xks_wire::API_BASE.len() <= xks_wire::MAX_URI_PATH_LEN
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_'))
        && prefix.split('/').all(|s| !s.is_empty())
}

impl Validator {
    fn problem(&mut self, p: impl Into<String>) {
        self.problems.push(p.into());
    }

    fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    fn addr(&mut self, what: &str, s: &str) -> SocketAddr {
        match s.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                self.problem(format!(
                    "{what} = '{s}': expected an IP address and port such as 127.0.0.1:8443"
                ));
                SocketAddr::from(([127, 0, 0, 1], 0))
            }
        }
    }

    fn readable(&mut self, what: &str, p: &Path) {
        match std::fs::read(p) {
            Ok(bytes) => self.fingerprint.update(&bytes),
            Err(e) => self.problem(format!("{what} {}: {e}", p.display())),
        }
    }

    fn config(&mut self, raw: RawConfig) -> Config {
        let server = self.server(&raw.server);
        let tls = raw.tls.as_ref().map(|t| self.tls(t, &raw, &server));
        let metrics_listen = raw
            .metrics
            .as_ref()
            .map(|m| self.addr("[metrics] listen", &m.listen));
        let limits = self.limits(&raw.limits);
        let health = self.health(&raw.health);
        let crypto = self.crypto(&raw.crypto);
        if raw.reload.interval_secs > 3600 {
            self.problem(
                "[reload] interval_secs must be at most 3600 (0 disables the periodic re-read)",
            );
        }
        let mut hsms = self.hsms(&raw.hsms);
        let pool = self.pool(&raw.pool, &hsms);
        let mut server = server;
        if server.async_threads == 0 {
            server.async_threads = default_async_threads(&hsms, pool.threads);
        }
        for h in &mut hsms {
            // Waiting for a PKCS#11 session is part of the HSM call: the request gives up at
            // the HSM timeout (503) well before the driver would report "busy".
            h.token.session_wait = pool.hsm_timeout * 2;
        }
        let identity = Identity {
            vendor: raw
                .identity
                .vendor
                .clone()
                .unwrap_or_else(|| "Open-source xks-proxy".into()),
            model: raw
                .identity
                .model
                .clone()
                .unwrap_or_else(|| format!("xks-proxy {}", env!("CARGO_PKG_VERSION"))),
            ekm_vendor: raw.identity.ekm_vendor.clone(),
            fleet_size: raw.identity.fleet_size.unwrap_or(1),
        };
        if identity.fleet_size == 0 {
            self.problem("[identity] fleet_size must be greater than zero");
        }
        let dynamic = self.dynamic(&raw, &hsms, &server);
        Config {
            path: None,
            server,
            tls,
            metrics_listen,
            limits,
            pool,
            health,
            crypto,
            identity,
            reload_interval: Duration::from_secs(raw.reload.interval_secs),
            hsms,
            dynamic,
            fingerprint: [0; 32],
        }
    }

    fn server(&mut self, s: &RawServer) -> ServerConfig {
        let listen = self.addr("[server] listen", &s.listen);
        if s.baseline_route && !listen.ip().is_loopback() {
            self.problem(format!(
                "[server] baseline_route: the unauthenticated benchmark routes are served only \
                 on a loopback listen address, not {listen}"
            ));
        }
        if s.region.is_empty()
            || !s
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            self.problem(format!(
                "[server] region = '{}': expected a region name such as us-east-1",
                s.region
            ));
        }
        let ping_path = if s.ping_path.is_empty() {
            None
        } else {
            if !s.ping_path.starts_with('/') || s.ping_path.contains("/kms/xks/") {
                self.problem(format!(
                    "[server] ping_path = '{}': must start with '/' and not lie under /kms/xks/",
                    s.ping_path
                ));
            }
            Some(s.ping_path.clone())
        };
        let json_logs = match s.log_format.as_str() {
            "text" => false,
            "json" => true,
            other => {
                self.problem(format!(
                    "[server] log_format = '{other}': expected 'text' or 'json'"
                ));
                false
            }
        };
        if s.max_connections == 0 {
            self.problem("[server] max_connections must be at least 1");
        }
        if let Some(n) = s.async_threads {
            if !(1..=1024).contains(&n) {
                self.problem(format!(
                    "[server] async_threads = {n}: must be between 1 and 1024"
                ));
            }
        }
        let mut trusted = Vec::new();
        for n in &s.trusted_proxies {
            match serve::Network::parse(n) {
                Some(net) => trusted.push(net),
                None => self.problem(format!(
                    "[server] trusted_proxies: '{n}' is not an address or address/prefix"
                )),
            }
        }
        ServerConfig {
            listen,
            region: s.region.clone(),
            baseline_route: s.baseline_route,
            ping_path,
            shutdown_grace: Duration::from_secs(s.shutdown_grace_secs),
            json_logs,
            max_connections: s.max_connections.max(1),
            // Derived once the HSM threads are known (see `config`).
            async_threads: s.async_threads.unwrap_or(0).clamp(0, 1024),
            trusted_proxies: serve::TrustedProxies::new(trusted),
        }
    }

    fn tls(&mut self, t: &RawTls, raw: &RawConfig, server: &ServerConfig) -> TlsConfig {
        let cert_file = self.path(&t.cert_file);
        let key_file = self.path(&t.key_file);
        self.readable("[tls] cert_file", &cert_file);
        self.readable("[tls] key_file", &key_file);
        let client_auth = match (&t.client_ca_file, &t.client_subjects) {
            (None, None) => None,
            (None, Some(_)) => {
                self.problem("[tls] client_subjects needs client_ca_file (mTLS)");
                None
            }
            (Some(ca), subjects) => {
                let ca_file = self.path(ca);
                self.readable("[tls] client_ca_file", &ca_file);
                let subjects = match subjects {
                    Some(s) if s.is_empty() => {
                        self.problem("[tls] client_subjects must not be empty");
                        Vec::new()
                    }
                    Some(s) => s.clone(),
                    None => {
                        // KMS presents CN=cks.kms.<region>.amazonaws.com.
                        let mut regions: BTreeSet<String> = raw
                            .keystores
                            .iter()
                            .filter_map(|k| k.region.clone())
                            .collect();
                        regions.insert(server.region.clone());
                        regions
                            .into_iter()
                            .map(|r| format!("cks.kms.{r}.amazonaws.com"))
                            .collect()
                    }
                };
                Some(ClientAuth { ca_file, subjects })
            }
        };
        let spec_suites_only = match t.cipher_suites.as_str() {
            "spec" => true,
            "default" => false,
            other => {
                self.problem(format!(
                    "[tls] cipher_suites = '{other}': expected 'spec' or 'default'"
                ));
                true
            }
        };
        TlsConfig {
            cert_file,
            key_file,
            client_auth,
            tls12: t.tls12,
            spec_suites_only,
        }
    }

    fn limits(&mut self, l: &RawLimits) -> Limits {
        if l.max_plaintext_bytes < xks_wire::MIN_SUPPORTED_PLAINTEXT {
            self.problem(format!(
                "[limits] max_plaintext_bytes = {}: the XKS spec requires at least {}",
                l.max_plaintext_bytes,
                xks_wire::MIN_SUPPORTED_PLAINTEXT
            ));
        }
        if l.max_plaintext_bytes > 1 << 20 {
            self.problem("[limits] max_plaintext_bytes must be at most 1048576");
        }
        if l.max_aad_bytes < xks_wire::MIN_SUPPORTED_AAD {
            self.problem(format!(
                "[limits] max_aad_bytes = {}: the XKS spec requires at least {}",
                l.max_aad_bytes,
                xks_wire::MIN_SUPPORTED_AAD
            ));
        }
        if l.max_aad_bytes > usize::from(u16::MAX) {
            self.problem(format!(
                "[limits] max_aad_bytes = {}: at most 65535 (the AAD length is encoded in 2 bytes)",
                l.max_aad_bytes
            ));
        }
        Limits {
            max_plaintext: l.max_plaintext_bytes,
            max_aad: l.max_aad_bytes,
        }
    }

    fn pool(&mut self, p: &RawPool, hsms: &[HsmConfig]) -> PoolConfig {
        let sessions: usize = hsms.iter().map(|h| h.token.max_sessions).sum();
        let threads = if p.threads == 0 {
            sessions.max(1)
        } else {
            p.threads
        };
        if p.threads > 1024 {
            self.problem("[pool] threads must be at most 1024");
        }
        let max_in_flight = if p.max_in_flight == 0 {
            threads * 4
        } else {
            p.max_in_flight
        };
        if p.max_in_flight > 65_536 {
            self.problem("[pool] max_in_flight must be at most 65536");
        }
        if p.hsm_timeout_ms == 0 || p.hsm_timeout_ms > 60_000 {
            self.problem("[pool] hsm_timeout_ms must be between 1 and 60000");
        }
        if p.queue_timeout_ms > 60_000 {
            self.problem("[pool] queue_timeout_ms must be at most 60000");
        }
        PoolConfig {
            threads,
            max_in_flight,
            queue_timeout: Duration::from_millis(p.queue_timeout_ms),
            hsm_timeout: Duration::from_millis(p.hsm_timeout_ms.max(1)),
        }
    }

    fn health(&mut self, h: &RawHealth) -> HealthConfig {
        if !(1..=60).contains(&h.interval_secs) {
            self.problem(format!(
                "[health] interval_secs = {}: must be between 1 and 60 (KMS accepts results at most 60 s old)",
                h.interval_secs
            ));
        }
        HealthConfig {
            interval: Duration::from_secs(h.interval_secs.clamp(1, 60)),
            degraded_latency: Duration::from_millis(h.degraded_latency_ms),
        }
    }

    fn crypto(&mut self, c: &RawCrypto) -> CryptoConfig {
        if c.iv_length != 12 && c.iv_length != 16 {
            self.problem(format!(
                "[crypto] iv_length = {}: must be 12 or 16",
                c.iv_length
            ));
        }
        let verify_encrypt = match c.verify_encrypt.as_str() {
            "never" => VerifyEncrypt::Never,
            "with-cdiv" => VerifyEncrypt::WithCdiv,
            "always" => VerifyEncrypt::Always,
            other => {
                self.problem(format!(
                    "[crypto] verify_encrypt = '{other}': expected 'never', 'with-cdiv' or 'always'"
                ));
                VerifyEncrypt::WithCdiv
            }
        };
        CryptoConfig {
            iv_length: c.iv_length,
            ciphertext_metadata: c.ciphertext_metadata,
            verify_encrypt,
        }
    }

    fn hsms(&mut self, raw: &[RawHsm]) -> Vec<HsmConfig> {
        if raw.is_empty() {
            self.problem("no [[hsms]] configured: at least one PKCS#11 token is needed");
        }
        if raw.len() > xks_wire::MAX_FLEET_DETAILS {
            self.problem(format!(
                "{} [[hsms]] configured: GetHealthStatus can report at most {}",
                raw.len(),
                xks_wire::MAX_FLEET_DETAILS
            ));
        }
        let mut names = HashSet::new();
        let mut tokens = HashSet::new();
        let mut out = Vec::new();
        for (i, h) in raw.iter().enumerate() {
            let at = format!("[[hsms]] #{} ('{}')", i + 1, h.name);
            if h.name.is_empty() {
                self.problem(format!("{at}: name must not be empty"));
            }
            if !names.insert(h.name.clone()) {
                self.problem(format!("{at}: duplicate name"));
            }
            let profile = match VendorProfile::load(&h.profile) {
                Ok(p) => p,
                Err(e) => {
                    self.problem(format!("{at}: {e}"));
                    VendorProfile::default()
                }
            };
            let module = match &h.module {
                Some(m) => self.path(m),
                None if !profile.default_module.is_empty() => {
                    PathBuf::from(&profile.default_module)
                }
                None => {
                    self.problem(format!(
                        "{at}: module is required (profile '{}' has no default module)",
                        profile.name
                    ));
                    PathBuf::new()
                }
            };
            if !module.as_os_str().is_empty() && !module.exists() {
                self.problem(format!(
                    "{at}: PKCS#11 module {} does not exist",
                    module.display()
                ));
            }
            if h.token_label.is_empty() || h.token_label.len() > 32 {
                self.problem(format!("{at}: token_label must be 1 to 32 characters"));
            }
            if !tokens.insert((module.clone(), h.token_label.clone())) {
                self.problem(format!("{at}: the same module and token appear twice"));
            }
            let pin = self.secret(
                &at,
                "pin",
                h.pin.as_ref(),
                h.pin_env.as_deref(),
                h.pin_file.as_deref(),
            );
            let max_sessions = h.max_sessions.unwrap_or(profile.max_sessions);
            if max_sessions == 0 || max_sessions > 1024 {
                self.problem(format!("{at}: max_sessions must be between 1 and 1024"));
            }
            out.push(HsmConfig {
                name: h.name.clone(),
                token: hsm::TokenConfig {
                    module,
                    token_label: h.token_label.clone(),
                    pin: pin.unwrap_or_else(|| SecretString::from(String::new())),
                    so: false,
                    max_sessions: max_sessions.max(1),
                    session_wait: Duration::from_millis(default_hsm_timeout()),
                    profile: Arc::new(profile),
                },
                health_key_label: h.health_key_label.clone(),
            });
        }
        out
    }

    fn secret(
        &mut self,
        at: &str,
        what: &str,
        inline: Option<&SecretString>,
        env: Option<&str>,
        file: Option<&Path>,
    ) -> Option<SecretString> {
        let given = usize::from(inline.is_some())
            + usize::from(env.is_some())
            + usize::from(file.is_some());
        if given != 1 {
            self.problem(format!(
                "{at}: give exactly one of {what}, {what}_env, {what}_file"
            ));
            return None;
        }
        if let Some(s) = inline {
            return Some(s.clone());
        }
        if let Some(var) = env {
            return match std::env::var(var) {
                Ok(v) => Some(SecretString::from(v)),
                Err(_) => {
                    self.problem(format!(
                        "{at}: environment variable {var} ({what}_env) is not set"
                    ));
                    None
                }
            };
        }
        let path = self.path(file.unwrap_or(Path::new("")));
        match std::fs::read_to_string(&path) {
            Ok(s) => Some(SecretString::from(
                s.trim_end_matches(['\n', '\r']).to_string(),
            )),
            Err(e) => {
                self.problem(format!("{at}: {what}_file {}: {e}", path.display()));
                None
            }
        }
    }

    fn dynamic(
        &mut self,
        raw: &RawConfig,
        hsms: &[HsmConfig],
        server: &ServerConfig,
    ) -> DynamicConfig {
        let hsm_names: HashSet<&str> = hsms.iter().map(|h| h.name.as_str()).collect();
        let mut keys = Vec::new();
        let mut ids = HashSet::new();
        let mut placements = HashSet::new();
        for (i, k) in raw.keys.iter().enumerate() {
            let at = format!("[[keys]] #{} ('{}')", i + 1, k.id);
            if !xks_wire::is_valid_key_id(&k.id) {
                self.problem(format!(
                    "{at}: id must be 1 to 128 characters from A-Z a-z 0-9 - . _"
                ));
            }
            if !ids.insert(k.id.clone()) {
                self.problem(format!("{at}: duplicate key id"));
            }
            let on: Vec<String> = match (&k.hsm, &k.hsms) {
                (Some(_), Some(_)) => {
                    self.problem(format!("{at}: give either hsm or hsms, not both"));
                    Vec::new()
                }
                (Some(h), None) => vec![h.clone()],
                (None, Some(list)) => {
                    if list.is_empty() {
                        self.problem(format!("{at}: hsms must name at least one hsm"));
                    }
                    let mut seen = HashSet::new();
                    for h in list {
                        if !seen.insert(h.as_str()) {
                            self.problem(format!("{at}: hsm '{h}' is listed twice"));
                        }
                    }
                    list.clone()
                }
                (None, None) if hsms.len() == 1 => vec![hsms[0].name.clone()],
                (None, None) => {
                    if !hsms.is_empty() {
                        self.problem(format!(
                            "{at}: hsm (or hsms) is required when several [[hsms]] are configured"
                        ));
                    }
                    Vec::new()
                }
            };
            for h in &on {
                if !hsm_names.contains(h.as_str()) {
                    self.problem(format!("{at}: unknown hsm '{h}'"));
                }
            }
            let label = k.label.clone().unwrap_or_else(|| k.id.clone());
            if label.is_empty() {
                self.problem(format!("{at}: label must not be empty"));
            }
            for hsm in &on {
                if !placements.insert((hsm.clone(), label.clone())) {
                    self.problem(format!(
                        "{at}: another key already maps to label '{label}' on hsm '{hsm}' (external keys must be unambiguous)"
                    ));
                }
            }
            keys.push(KeyConfig {
                id: k.id.clone(),
                hsms: on,
                label,
                enabled: k.enabled,
            });
        }
        if raw.keystores.is_empty() {
            self.problem("no [[keystores]] configured: at least one URI path prefix with credentials is needed");
        }
        let mut prefixes = HashSet::new();
        let mut access_key_ids: HashMap<String, String> = HashMap::new();
        let mut keystores = Vec::new();
        for (i, ks) in raw.keystores.iter().enumerate() {
            let prefix = ks.prefix.trim_matches('/').to_string();
            let at = format!("[[keystores]] #{} (prefix '{}')", i + 1, prefix);
            if !is_valid_prefix(&prefix) {
                self.problem(format!(
                    "{at}: prefix must use only a-z A-Z 0-9 / - _, have no empty segments, and keep /<prefix>/kms/xks/v1 within 128 characters"
                ));
            }
            if !prefixes.insert(prefix.clone()) {
                self.problem(format!("{at}: duplicate prefix"));
            }
            let region = ks.region.clone().unwrap_or_else(|| server.region.clone());
            let key_set = ks.keys.as_ref().map(|list| {
                for k in list {
                    if !ids.contains(k) {
                        self.problem(format!("{at}: unknown key '{k}' in keys"));
                    }
                }
                list.iter().cloned().collect::<HashSet<_>>()
            });
            let rate_limit = if ks.rate_limit < 0.0 || !ks.rate_limit.is_finite() {
                self.problem(format!("{at}: rate_limit must be >= 0"));
                None
            } else if ks.rate_limit == 0.0 {
                if ks.rate_burst.is_some() {
                    self.problem(format!("{at}: rate_burst needs rate_limit"));
                }
                None
            } else {
                let burst = ks.rate_burst.unwrap_or(ks.rate_limit);
                if burst < 1.0 || !burst.is_finite() {
                    self.problem(format!("{at}: rate_burst must be >= 1"));
                }
                Some((ks.rate_limit, burst.max(1.0)))
            };
            let mut credentials = Vec::new();
            for (j, c) in ks.credentials.iter().enumerate() {
                let cat = format!("{at} credential #{}", j + 1);
                if let Some(cred) = self.credential(&cat, c) {
                    credentials.push(cred);
                }
            }
            for f in &ks.credentials_files {
                let path = self.path(f);
                credentials.extend(self.credentials_file(&at, &path, &prefix));
            }
            if credentials.is_empty() {
                self.problem(format!(
                    "{at}: no credentials (give [[keystores.credentials]] or credentials_files)"
                ));
            }
            for c in &credentials {
                if let Some(other) = access_key_ids.insert(c.access_key_id.clone(), prefix.clone())
                {
                    if other != prefix {
                        self.problem(format!(
                            "{at}: access key id {} is also used by prefix '{other}' (an access key id must identify one secret)",
                            c.access_key_id
                        ));
                    }
                }
            }
            let mut seen = HashSet::new();
            for c in &credentials {
                if !seen.insert(c.access_key_id.clone()) {
                    self.problem(format!(
                        "{at}: access key id {} is configured twice",
                        c.access_key_id
                    ));
                }
            }
            let authorization = ks
                .authorization
                .as_ref()
                .map(|a| Arc::new(self.policy(&at, a)));
            keystores.push(KeystoreConfig {
                prefix,
                region,
                keys: key_set,
                rate_limit,
                credentials,
                authorization,
            });
        }
        DynamicConfig { keys, keystores }
    }

    fn credential(&mut self, at: &str, c: &RawCredential) -> Option<Credential> {
        let secret = self.secret(
            at,
            "secret_access_key",
            c.secret_access_key.as_ref(),
            c.secret_access_key_env.as_deref(),
            None,
        )?;
        self.check_credential(at, &c.access_key_id, &secret)
    }

    fn check_credential(
        &mut self,
        at: &str,
        akid: &str,
        secret: &SecretString,
    ) -> Option<Credential> {
        let mut ok = true;
        if !is_valid_access_key_id(akid) {
            self.problem(format!(
                "{at}: access key id '{akid}' must be 20 to 30 characters from A-Z and 2-7"
            ));
            ok = false;
        }
        if !is_valid_secret(secret.expose_secret()) {
            self.problem(format!(
                "{at}: the secret access key of {akid} must be 43 to 64 characters from A-Z a-z 0-9 + / ="
            ));
            ok = false;
        }
        ok.then(|| Credential {
            access_key_id: akid.to_string(),
            secret: secret.clone(),
        })
    }

    fn credentials_file(&mut self, at: &str, path: &Path, prefix: &str) -> Vec<Credential> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                self.problem(format!("{at}: credentials file {}: {e}", path.display()));
                return Vec::new();
            }
        };
        self.fingerprint.update(text.as_bytes());
        let fat = format!("{at}: credentials file {}", path.display());
        if text.trim_start().starts_with('{') {
            let console: ConsoleCredentialsFile = match serde_json::from_str(&text) {
                Ok(c) => c,
                Err(e) => {
                    self.problem(format!(
                        "{fat}: not a KMS proxy configuration file (JSON): line {} column {}",
                        e.line(),
                        e.column()
                    ));
                    return Vec::new();
                }
            };
            if let Some(uri_path) = &console.xks_proxy_uri_path {
                let expected = if prefix.is_empty() {
                    xks_wire::API_BASE.to_string()
                } else {
                    format!("/{prefix}{}", xks_wire::API_BASE)
                };
                if uri_path != &expected {
                    self.problem(format!(
                        "{fat}: XksProxyUriPath is '{uri_path}' but this keystore serves '{expected}'"
                    ));
                }
            }
            let c = console.xks_proxy_authentication_credential;
            return self
                .check_credential(&fat, &c.access_key_id, &c.raw_secret_access_key)
                .into_iter()
                .collect();
        }
        let file: RawCredentialsFile = match toml::from_str(&text) {
            Ok(f) => f,
            Err(e) => {
                self.problem(format!("{fat}: {}", e.message()));
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (j, c) in file.credentials.iter().enumerate() {
            if let Some(cred) = self.credential(&format!("{fat} credential #{}", j + 1), c) {
                out.push(cred);
            }
        }
        out
    }

    fn policy(&mut self, at: &str, a: &RawAuthorization) -> Policy {
        if a.rules.is_empty() {
            self.problem(format!(
                "{at}: [keystores.authorization] has no rules (it would deny everything)"
            ));
        }
        let mut rules = Vec::new();
        for (i, r) in a.rules.iter().enumerate() {
            let name = r.name.clone().unwrap_or_else(|| format!("rule-{}", i + 1));
            let rat = format!("{at} authorization rule '{name}'");
            let effect = match r.effect.as_str() {
                "allow" => Effect::Allow,
                "deny" => Effect::Deny,
                other => {
                    self.problem(format!(
                        "{rat}: effect = '{other}': expected 'allow' or 'deny'"
                    ));
                    Effect::Deny
                }
            };
            let pats = |v: &Option<Vec<String>>| {
                v.as_ref()
                    .map(|list| list.iter().map(|s| Pattern::new(s)).collect::<Vec<_>>())
            };
            let operations = match &r.operations {
                None => None,
                Some(list) => {
                    let mut ops = Vec::new();
                    for o in list {
                        match Operation::ALL
                            .into_iter()
                            .find(|op| op.as_str() == o && *op != Operation::GetHealthStatus)
                        {
                            Some(op) => ops.push(op),
                            None => self.problem(format!(
                                "{rat}: operations: '{o}' is not GetKeyMetadata, Encrypt or Decrypt (GetHealthStatus is never subject to authorization)"
                            )),
                        }
                    }
                    Some(ops)
                }
            };
            rules.push(Rule {
                name,
                effect,
                principals: pats(&r.principals),
                kms_operations: pats(&r.kms_operations),
                operations,
                key_ids: pats(&r.key_ids),
                kms_key_arns: pats(&r.kms_key_arns),
                via_services: pats(&r.via_services),
                source_vpcs: pats(&r.source_vpcs),
                source_vpces: pats(&r.source_vpces),
            });
        }
        Policy { rules }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const AKID: &str = "AKIAXKSPROXYTEST2345";
    const SECRET: &str = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0";

    fn minimal() -> String {
        format!(
            "[server]\nlisten = '127.0.0.1:0'\n\
             [[hsms]]\nname = 'a'\nmodule = '/dev/null'\ntoken_label = 't'\npin = '1234'\n\
             [[keys]]\nid = 'foo'\n\
             [[keystores]]\nprefix = 'p/q'\n[[keystores.credentials]]\naccess_key_id = '{AKID}'\nsecret_access_key = '{SECRET}'\n"
        )
    }

    #[test]
    fn minimal_config_is_valid() {
        let cfg = parse(&minimal(), Path::new("/"), "test").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.dynamic.keys[0].hsms, ["a"]);
        assert_eq!(cfg.dynamic.keys[0].label, "foo");
        assert_eq!(cfg.dynamic.keystores[0].prefix, "p/q");
        assert_eq!(cfg.pool.threads, cfg.hsms[0].token.max_sessions);
        assert_eq!(cfg.pool.max_in_flight, 4 * cfg.pool.threads);
    }

    #[test]
    fn async_threads_default_leaves_cores_to_in_process_hsm_threads() {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let cfg = parse(&minimal(), Path::new("/"), "test").unwrap_or_else(|e| panic!("{e}"));
        let expected = if cfg.hsms[0].token.profile.in_process {
            cpus.saturating_sub(cfg.pool.threads / 2).max(1)
        } else {
            cpus
        };
        assert_eq!(cfg.server.async_threads, expected);
        // An in-process module (SoftHSM) with 2 HSM threads.
        let soft = minimal().replace(
            "token_label = 't'\n",
            "token_label = 't'\nprofile = 'softhsm2'\nmax_sessions = 2\n",
        );
        let cfg = parse(&soft, Path::new("/"), "test").unwrap_or_else(|e| panic!("{e}"));
        assert!(cfg.hsms[0].token.profile.in_process);
        assert_eq!(cfg.pool.threads, 2);
        assert_eq!(cfg.server.async_threads, cpus.saturating_sub(1).max(1));
        // Explicit, and out of range.
        let explicit = minimal().replace(
            "listen = '127.0.0.1:0'\n",
            "listen = '127.0.0.1:0'\nasync_threads = 3\n",
        );
        let cfg = parse(&explicit, Path::new("/"), "test").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.server.async_threads, 3);
        for bad in ["0", "1025"] {
            let text = minimal().replace(
                "listen = '127.0.0.1:0'\n",
                &format!("listen = '127.0.0.1:0'\nasync_threads = {bad}\n"),
            );
            let err = parse(&text, Path::new("/"), "test")
                .unwrap_err()
                .to_string();
            assert!(err.contains("async_threads"), "{err}");
        }
    }

    #[test]
    fn every_problem_is_reported() {
        let text = "[server]\nlisten = 'nope'\nregion = 'US EAST'\n\
             [crypto]\niv_length = 13\n\
             [health]\ninterval_secs = 90\n\
             [[hsms]]\nname = 'a'\nmodule = '/nonexistent.so'\ntoken_label = 't'\n\
             [[keys]]\nid = 'bad/id'\nhsm = 'zzz'\n\
             [[keystores]]\nprefix = 'bad prefix'\n[[keystores.credentials]]\naccess_key_id = 'short'\nsecret_access_key = 'x'\n";
        let Err(err) = parse(text, Path::new("/"), "test") else {
            panic!("accepted an invalid configuration");
        };
        let all = err.to_string();
        for needle in [
            "listen",
            "region",
            "iv_length",
            "interval_secs",
            "does not exist",
            "exactly one of pin",
            "id must be",
            "unknown hsm",
            "prefix must",
            "access key id 'short'",
            "secret access key",
        ] {
            assert!(all.contains(needle), "missing '{needle}' in:\n{all}");
        }
        assert!(err.problems.len() >= 11, "{all}");
    }

    #[test]
    fn trusted_proxies_are_networks() {
        let cfg = parse(&minimal(), Path::new("/"), "test").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.server.trusted_proxies, serve::TrustedProxies::default());
        let text = minimal().replace(
            "listen = '127.0.0.1:0'\n",
            "listen = '127.0.0.1:0'\ntrusted_proxies = ['10.0.0.0/8', '2001:db8::1']\n",
        );
        let cfg = parse(&text, Path::new("/"), "test").unwrap_or_else(|e| panic!("{e}"));
        let trusted = &cfg.server.trusted_proxies;
        assert!(trusted.trusts("10.9.8.7".parse().unwrap()));
        assert!(trusted.trusts("2001:db8::1".parse().unwrap()));
        assert!(!trusted.trusts("11.0.0.1".parse().unwrap()));
        let bad = minimal().replace(
            "listen = '127.0.0.1:0'\n",
            "listen = '127.0.0.1:0'\ntrusted_proxies = ['10.0.0.0/33', 'lb.example.com']\n",
        );
        let Err(err) = parse(&bad, Path::new("/"), "test") else {
            panic!("accepted bad trusted_proxies");
        };
        let all = err.to_string();
        assert!(all.contains("'10.0.0.0/33' is not an address"), "{all}");
        assert!(all.contains("'lb.example.com' is not an address"), "{all}");
    }

    #[test]
    fn a_key_on_several_hsms() {
        let two = minimal().replace(
            "[[keys]]\nid = 'foo'\n",
            "[[hsms]]\nname = 'b'\nmodule = '/dev/null'\ntoken_label = 'u'\npin = '1234'\n\
             [[keys]]\nid = 'foo'\nhsms = ['a', 'b']\n",
        );
        let cfg = parse(&two, Path::new("/"), "test").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.dynamic.keys[0].hsms, ["a", "b"]);
        for (keys, needle) in [
            ("hsm = 'a'\nhsms = ['a']", "either hsm or hsms"),
            ("hsms = []", "at least one"),
            ("hsms = ['a', 'a']", "listed twice"),
            ("hsms = ['a', 'zzz']", "unknown hsm 'zzz'"),
        ] {
            let text = minimal().replace(
                "[[keys]]\nid = 'foo'\n",
                &format!("[[keys]]\nid = 'foo'\n{keys}\n"),
            );
            let Err(err) = parse(&text, Path::new("/"), "test") else {
                panic!("accepted {keys}");
            };
            assert!(err.to_string().contains(needle), "{keys}: {err}");
        }
    }

    #[test]
    fn benchmark_routes_only_on_loopback() {
        let open = minimal().replace(
            "listen = '127.0.0.1:0'",
            "listen = '0.0.0.0:0'\nbaseline_route = true",
        );
        let Err(err) = parse(&open, Path::new("/"), "test") else {
            panic!("accepted the benchmark routes on a public address");
        };
        assert!(err.to_string().contains("baseline_route"), "{err}");
        let local = minimal().replace(
            "listen = '127.0.0.1:0'",
            "listen = '127.0.0.1:0'\nbaseline_route = true",
        );
        assert!(parse(&local, Path::new("/"), "test").is_ok());
    }

    #[test]
    fn prefixes() {
        assert!(is_valid_prefix(""));
        assert!(is_valid_prefix("example/uri/path/prefix"));
        assert!(!is_valid_prefix("a//b"));
        assert!(!is_valid_prefix("a.b"));
        assert!(!is_valid_prefix(&"a".repeat(120)));
    }
}
