//! Configuration: embedded defaults, then an optional TOML file (`--config`), then `KMS_*`
//! environment variables. The raw (serde) form is validated into a typed [`Config`]; every
//! problem is reported at once.
//!
//! Environment overrides: `KMS_<SECTION>__<FIELD>` sets `[section] field` (for example
//! `KMS_SERVER__LISTEN=127.0.0.1:8443`, `KMS_SERVER__BASELINE_ROUTE=true`), and
//! `KMS_ACCESS_KEY_ID` + `KMS_SECRET_ACCESS_KEY` (+ optional `KMS_PRINCIPAL_ARN`) replace the
//! credential list with one credential.

mod cors;
pub mod iam;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

/// The development credential used when none is configured (AWS's documentation example key).
pub const DEV_ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
pub const DEV_SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
pub const DEV_PRINCIPAL_ARN: &str = "arn:aws:iam::111122223333:user/kms-dev";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    credentials: Vec<iam::RawCredential>,
    #[serde(default)]
    users: Vec<iam::RawUser>,
    #[serde(default)]
    groups: Vec<iam::RawGroup>,
    #[serde(default)]
    roles: Vec<iam::RawRole>,
    #[serde(default)]
    guardrails: Vec<iam::RawGuardrail>,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    root: RawRoot,
    #[serde(default)]
    clusters: Vec<RawCluster>,
    #[serde(default)]
    xks: RawXks,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    limits: RawLimits,
}

/// `[limits]`: resource quotas (AWS's defaults unless set), globally and per account
/// (`[limits.accounts."111122223333"]`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    /// KMS keys per account and region (AWS default 100,000).
    keys_per_account: Option<usize>,
    /// Aliases per KMS key (AWS default 50).
    aliases_per_key: Option<usize>,
    /// Grants per KMS key (AWS default 50,000).
    grants_per_key: Option<usize>,
    /// Custom key stores per account and region (AWS default 10).
    custom_key_stores: Option<usize>,
    /// Enforce request quotas (default true).
    request_quotas: Option<bool>,
    /// Nodes sharing the request rates: each enforces 1/n of every rate (default 1).
    cluster_nodes: Option<u32>,
    /// Capacity of the in-memory map of request-quota buckets (default 100,000).
    quota_buckets: Option<usize>,
    /// Request rates replacing AWS's defaults, by quota name (`service::quotas::Quota::parse`).
    #[serde(default)]
    request_rates: std::collections::BTreeMap<String, f64>,
    #[serde(default)]
    accounts: std::collections::BTreeMap<String, RawAccountLimits>,
}

/// One account's quotas; unset ones are the global ones.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccountLimits {
    keys_per_account: Option<usize>,
    aliases_per_key: Option<usize>,
    grants_per_key: Option<usize>,
    custom_key_stores: Option<usize>,
    #[serde(default)]
    request_rates: std::collections::BTreeMap<String, f64>,
}

/// Validated resource quotas.
#[derive(Debug, Clone)]
pub struct Limits {
    /// KMS keys per account and region, unless the account has its own.
    pub keys_per_account: usize,
    /// Accounts with their own key quota.
    pub keys_by_account: std::collections::HashMap<String, usize>,
    /// Aliases per key, unless the key's account has its own.
    pub aliases_per_key: usize,
    /// Grants per key, unless the key's account has its own.
    pub grants_per_key: usize,
    /// Custom key stores per account and region, unless the account has its own.
    pub custom_key_stores: usize,
    /// Accounts with their own alias, grant or custom key store quotas.
    pub resources_by_account: std::collections::HashMap<String, AccountResourceLimits>,
    /// Request quotas (rates per second).
    pub requests: crate::service::quotas::QuotaSettings,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            keys_per_account: crate::service::keys::MAX_KEYS_PER_ACCOUNT,
            keys_by_account: Default::default(),
            aliases_per_key: crate::service::aliases::MAX_ALIASES_PER_KEY,
            grants_per_key: crate::service::grants::MAX_GRANTS_PER_KEY,
            custom_key_stores: crate::service::custom_key_stores::MAX_STORES,
            resources_by_account: Default::default(),
            requests: Default::default(),
        }
    }
}

/// One account's own resource quotas (unset: the global ones).
#[derive(Debug, Clone, Default)]
pub struct AccountResourceLimits {
    pub aliases_per_key: Option<usize>,
    pub grants_per_key: Option<usize>,
    pub custom_key_stores: Option<usize>,
}

impl Limits {
    /// The key quota of `account`.
    pub fn keys_for(&self, account: &str) -> usize {
        self.keys_by_account
            .get(account)
            .copied()
            .unwrap_or(self.keys_per_account)
    }

    /// The aliases-per-key quota of a key of `account`.
    pub fn aliases_for(&self, account: &str) -> usize {
        self.resources_by_account
            .get(account)
            .and_then(|a| a.aliases_per_key)
            .unwrap_or(self.aliases_per_key)
    }

    /// The grants-per-key quota of a key of `account`.
    pub fn grants_for(&self, account: &str) -> usize {
        self.resources_by_account
            .get(account)
            .and_then(|a| a.grants_per_key)
            .unwrap_or(self.grants_per_key)
    }

    /// The custom key store quota of `account`.
    pub fn custom_key_stores_for(&self, account: &str) -> usize {
        self.resources_by_account
            .get(account)
            .and_then(|a| a.custom_key_stores)
            .unwrap_or(self.custom_key_stores)
    }
}

/// `[limits]` validated; every problem goes to `errors`.
fn limits_settings(r: RawLimits, errors: &mut Vec<String>) -> Limits {
    let mut limits = Limits::default();
    if let Some(n) = r.keys_per_account {
        if n == 0 {
            errors.push("limits.keys_per_account: must be at least 1".into());
        }
        limits.keys_per_account = n;
    }
    let at_least_one = |name: &str, n: Option<usize>, errors: &mut Vec<String>| {
        if n == Some(0) {
            errors.push(format!("{name}: must be at least 1"));
        }
        n
    };
    if let Some(n) = at_least_one("limits.aliases_per_key", r.aliases_per_key, errors) {
        limits.aliases_per_key = n;
    }
    if let Some(n) = at_least_one("limits.grants_per_key", r.grants_per_key, errors) {
        limits.grants_per_key = n;
    }
    if let Some(n) = at_least_one("limits.custom_key_stores", r.custom_key_stores, errors) {
        limits.custom_key_stores = n;
    }
    if let Some(on) = r.request_quotas {
        limits.requests.enabled = on;
    }
    if let Some(n) = r.cluster_nodes {
        if n == 0 {
            errors.push("limits.cluster_nodes: must be at least 1".into());
        }
        limits.requests.cluster_nodes = n.max(1);
    }
    if let Some(n) = r.quota_buckets {
        if n == 0 {
            errors.push("limits.quota_buckets: must be at least 1".into());
        }
        limits.requests.buckets = n.max(1);
    }
    limits.requests.rates = request_rates("limits.request_rates", r.request_rates, errors);
    for (account, a) in r.accounts {
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            errors.push(format!(
                "limits.accounts: '{account}' is not a 12-digit account id"
            ));
        }
        let own = AccountResourceLimits {
            aliases_per_key: at_least_one(
                &format!("limits.accounts.{account}.aliases_per_key"),
                a.aliases_per_key,
                errors,
            ),
            grants_per_key: at_least_one(
                &format!("limits.accounts.{account}.grants_per_key"),
                a.grants_per_key,
                errors,
            ),
            custom_key_stores: at_least_one(
                &format!("limits.accounts.{account}.custom_key_stores"),
                a.custom_key_stores,
                errors,
            ),
        };
        if own.aliases_per_key.is_some()
            || own.grants_per_key.is_some()
            || own.custom_key_stores.is_some()
        {
            limits.resources_by_account.insert(account.clone(), own);
        }
        if !a.request_rates.is_empty() {
            let rates = request_rates(
                &format!("limits.accounts.{account}.request_rates"),
                a.request_rates,
                errors,
            );
            limits
                .requests
                .rates_by_account
                .insert(account.clone(), rates);
        }
        if let Some(n) = a.keys_per_account {
            if n == 0 {
                errors.push(format!(
                    "limits.accounts.{account}.keys_per_account: must be at least 1"
                ));
            }
            limits.keys_by_account.insert(account, n);
        }
    }
    limits
}

/// A `request_rates` table: known quota names, positive finite rates.
fn request_rates(
    at: &str,
    raw: std::collections::BTreeMap<String, f64>,
    errors: &mut Vec<String>,
) -> std::collections::HashMap<crate::service::quotas::Quota, f64> {
    let mut rates = std::collections::HashMap::new();
    for (name, rate) in raw {
        let Some(quota) = crate::service::quotas::Quota::parse(&name) else {
            errors.push(format!(
                "{at}: '{name}' is not a request quota (cryptographic_symmetric, \
                 cryptographic_rsa, cryptographic_ecc, GenerateDataKeyPair:<spec>, or an \
                 operation with its own quota)"
            ));
            continue;
        };
        if !(rate.is_finite() && rate > 0.0) {
            errors.push(format!(
                "{at}.{name}: must be a positive number of requests per second"
            ));
            continue;
        }
        rates.insert(quota, rate);
    }
    rates
}

/// `[store]`: where metadata lives (SQLite by default; PostgreSQL for several nodes).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    /// `sqlite` (default) or `postgres`.
    kind: Option<String>,
    /// SQLite: the database file (default `<data_dir>/kms.sqlite3`).
    path: Option<PathBuf>,
    /// PostgreSQL: `postgres://user@host:port/db` or `host=... user=...` (no password).
    url: Option<String>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    /// `disable` or `verify-full` (default).
    tls: Option<String>,
    tls_ca_file: Option<PathBuf>,
    pool_size: Option<usize>,
    connect_timeout_ms: Option<u64>,
    pool_wait_ms: Option<u64>,
    /// Apply pending schema migrations at start-up (default true); when false a node refuses
    /// an older schema and `kms migrate` applies them.
    auto_migrate: Option<bool>,
}

/// Where the metadata store is.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    Sqlite { path: PathBuf, auto_migrate: bool },
    Postgres(PostgresConfig),
}

/// TLS to PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgTls {
    /// Plain TCP (a loopback or otherwise protected network only).
    Disable,
    /// TLS with the server's chain verified against the CA file (or the public web PKI) and
    /// its name checked against the host of the URL.
    VerifyFull,
}

/// Validated PostgreSQL settings.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// Connection URL or key-value string, without a password.
    pub url: String,
    pub password: Option<SecretString>,
    pub tls: PgTls,
    /// `tls_ca_file` (none: the public web PKI's roots).
    pub ca: Option<CaFile>,
    /// Connections per node.
    pub pool_size: usize,
    pub connect_timeout: std::time::Duration,
    /// How long a request waits for a free connection before a retryable error.
    pub pool_wait: std::time::Duration,
    pub auto_migrate: bool,
}

/// `store.tls_ca_file`: its path and the PEM read from it, shared by every clone of the
/// configuration. The TLS verifiers of the store's connections (pool and change listener) read
/// the PEM at each handshake, so [`CaFile::reload`] (on SIGHUP) is in force for every new
/// connection; connections already open keep their session.
#[derive(Debug, Clone)]
pub struct CaFile {
    pub path: PathBuf,
    pem: std::sync::Arc<parking_lot::RwLock<std::sync::Arc<Vec<u8>>>>,
}

impl CaFile {
    pub fn new(path: PathBuf, pem: Vec<u8>) -> Self {
        CaFile {
            path,
            pem: std::sync::Arc::new(parking_lot::RwLock::new(std::sync::Arc::new(pem))),
        }
    }

    /// The PEM in force.
    pub fn pem(&self) -> std::sync::Arc<Vec<u8>> {
        self.pem.read().clone()
    }

    /// Reads the file again and puts it in force if every certificate in it is a usable CA
    /// certificate and there is at least one (the number); otherwise the PEM in force stays
    /// and the error says why.
    pub fn reload(&self) -> Result<usize, String> {
        use rustls_pki_types::pem::PemObject;
        let pem = std::fs::read(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("{}: {e}", self.path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", self.path.display()))?;
        }
        let n = roots.len();
        if n == 0 {
            return Err(format!("{}: no certificate", self.path.display()));
        }
        *self.pem.write() = std::sync::Arc::new(pem);
        Ok(n)
    }
}

/// How the KMS reaches external key store proxies.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawXks {
    /// PEM bundle of the CAs that sign proxy certificates (default: the public web PKI).
    ca_file: Option<PathBuf>,
    /// Client certificate chain and key (PEM) for proxies that require mTLS.
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    /// Per-attempt timeout (AWS: 250 ms).
    timeout_ms: Option<u64>,
    /// Request quota per external key store (AWS default 1800/s).
    requests_per_second: Option<u32>,
    /// Networks (`10.0.0.0/8`, `127.0.0.1`) a proxy endpoint may resolve to even though they
    /// would be refused (loopback, link-local, private): on-premises proxies, tests.
    #[serde(default)]
    allowed_proxy_networks: Vec<String>,
    /// Refuse private ranges (RFC 1918, 100.64/10, fc00::/7) too.
    refuse_private_networks: Option<bool>,
    /// Create/update probes of proxy endpoints per account and minute.
    probes_per_minute: Option<u32>,
    /// Label the external key store metrics with the custom key store id (tenant
    /// identifiers); aggregated over every store otherwise.
    metrics_per_store: Option<bool>,
}

/// Validated XKS client settings.
#[derive(Debug, Clone, Default)]
pub struct XksClientConfig {
    pub ca_pem: Option<Vec<u8>>,
    pub client_cert_pem: Option<Vec<u8>>,
    pub client_key_pem: Option<zeroize::Zeroizing<Vec<u8>>>,
    pub timeout: Option<std::time::Duration>,
    pub requests_per_second: Option<u32>,
    /// Which addresses proxy endpoints may resolve to.
    pub endpoint_policy: crate::backend::xks::EndpointPolicy,
    /// Create/update probes per account and minute (a tenant cannot scan with them).
    pub probes_per_minute: u32,
    /// `[xks] metrics_per_store`: series per custom key store, labelled with its id. Off by
    /// default: store ids are tenants' identifiers, so the metrics aggregate over stores.
    pub metrics_per_store: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    id: String,
    /// The AWS account that owns the cluster: only its principals can create a custom key
    /// store on it.
    account: Option<String>,
    profile: Option<String>,
    trust_anchor_file: PathBuf,
    cluster_key_label: Option<String>,
    sessions: Option<usize>,
    session_wait_ms: Option<u64>,
    requests_per_second: Option<u32>,
    #[serde(default)]
    members: Vec<RawMember>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMember {
    name: String,
    module: Option<PathBuf>,
    token_label: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    region: Option<String>,
    regions: Option<Vec<String>>,
    seed_file: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    max_clock_skew_seconds: Option<i64>,
    sts_max_clock_skew_seconds: Option<i64>,
    baseline_route: Option<bool>,
    maintenance_interval_seconds: Option<u64>,
    identity_reload_seconds: Option<u64>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    max_body_bytes: Option<usize>,
    metrics_listen: Option<String>,
    hsm_threads: Option<usize>,
    async_threads: Option<usize>,
    /// Unwrapped material versions kept by the root (default 10,000).
    key_cache_entries: Option<usize>,
    /// Key rows (and as many keys' grant lists) kept by the metadata cache (default 100,000).
    metadata_cache_entries: Option<usize>,
    max_connections: Option<usize>,
    tls_handshake_timeout_ms: Option<u64>,
    header_read_timeout_ms: Option<u64>,
    body_read_timeout_ms: Option<u64>,
    shutdown_grace_ms: Option<u64>,
    /// Serve metrics on an address that is not loopback.
    metrics_public: Option<bool>,
    /// Browser origins allowed to call the API (CORS): a list, or `"*"`.
    cors_allowed_origins: Option<toml::Value>,
    /// Load balancers and reverse proxies whose `X-Forwarded-For` names the client: addresses
    /// or CIDRs.
    #[serde(default)]
    trusted_proxies: Vec<String>,
    /// Development switch: allows the built-in development credential and plain HTTP on a
    /// listen address that is not loopback.
    development: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    path: Option<PathBuf>,
    /// Send a response only after its audit record is on disk; fail it when the record
    /// cannot be written.
    durable: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoot {
    kind: Option<String>,
    key_file: Option<PathBuf>,
    module: Option<PathBuf>,
    profile: Option<String>,
    token_label: Option<String>,
    pin_file: Option<PathBuf>,
    pin_env: Option<String>,
    domain_key_label: Option<String>,
    sessions: Option<usize>,
    session_wait_ms: Option<u64>,
}

/// Where the default key store's key material lives.
#[derive(Debug, Clone)]
pub enum RootConfig {
    /// Development only: a root key file.
    Software { key_file: PathBuf },
    /// A PKCS#11 token holding the domain key.
    Pkcs11 {
        token: hsm::TokenConfig,
        domain_key_label: String,
    },
}

/// The CPUs this process may use (2 when unknown).
use hsm::{async_threads_beside, cpus};

impl Config {
    /// How many threads run crypto operations when an HSM is configured (`None` without one):
    /// `[server] hsm_threads` if set; otherwise, from the configured tokens' sessions (a
    /// cluster's over all its members): for modules that compute in this process (SoftHSM),
    /// their sessions capped at the CPU count, since more threads only contend; for devices,
    /// twice their sessions, so that callers beyond the sessions reach the session pool and
    /// fail after `session_wait_ms` instead of queueing without a deadline.
    pub fn hsm_threads(&self) -> Option<usize> {
        let mut tokens: Vec<(bool, usize)> = self
            .clusters
            .iter()
            .map(|c| (c.profile.in_process, c.sessions * c.members.len().max(1)))
            .collect();
        if let RootConfig::Pkcs11 { token, .. } = &self.root {
            tokens.push((token.profile.in_process, token.max_sessions));
        }
        if tokens.is_empty() {
            return None;
        }
        if self.hsm_threads.is_some() {
            return self.hsm_threads;
        }
        let cpus = cpus();
        let wanted = |&(in_process, sessions): &(bool, usize)| {
            if in_process {
                sessions.min(cpus)
            } else {
                sessions * 2
            }
        };
        tokens.iter().map(wanted).max().map(|n| n.clamp(1, 1024))
    }

    /// How many async worker threads serve HTTP: `[server] async_threads` if set; otherwise
    /// the CPU count, less half the HSM threads when a module computes in this process
    /// (SoftHSM), because those threads need the same cores. With two cores and two SoftHSM
    /// threads that is one async worker: it served Encrypt with about 8% less server CPU
    /// per request than two did (docs/benchmarks.md). Nothing blocks on these threads: crypto
    /// runs on the HSM threads and store writes on tokio's blocking pool.
    pub fn async_threads(&self) -> usize {
        if let Some(n) = self.async_threads {
            return n;
        }
        let in_process = self.clusters.iter().any(|c| c.profile.in_process)
            || matches!(&self.root, RootConfig::Pkcs11 { token, .. } if token.profile.in_process);
        async_threads_beside(self.hsm_threads().unwrap_or(0), in_process)
    }
}

/// Reads a PIN from a file (first line) or an environment variable; never from the command line.
fn read_pin(
    at: &str,
    file: Option<&Path>,
    env_name: Option<&str>,
    env: &std::collections::HashMap<String, String>,
    errors: &mut Vec<String>,
) -> Option<SecretString> {
    read_secret(at, ("pin_file", file), ("pin_env", env_name), env, errors)
}

/// Reads a secret from a file (first line) or an environment variable, exactly one of them;
/// the fields are named as the configuration names them.
fn read_secret(
    at: &str,
    (file_field, file): (&str, Option<&Path>),
    (env_field, env_name): (&str, Option<&str>),
    env: &std::collections::HashMap<String, String>,
    errors: &mut Vec<String>,
) -> Option<SecretString> {
    match (file, env_name) {
        (Some(p), None) => match std::fs::read_to_string(p) {
            Ok(s) => Some(SecretString::from(
                s.lines().next().unwrap_or("").to_string(),
            )),
            Err(e) => {
                errors.push(format!("{at}.{file_field}: {}: {e}", p.display()));
                None
            }
        },
        (None, Some(name)) => match env.get(name) {
            Some(v) => Some(SecretString::from(v.clone())),
            None => {
                errors.push(format!(
                    "{at}.{env_field}: environment variable {name} is not set"
                ));
                None
            }
        },
        _ => {
            errors.push(format!(
                "{at}: set exactly one of {file_field} and {env_field}"
            ));
            None
        }
    }
}

pub use cors::CorsOrigins;
pub use iam::{Credential, IamConfig, RoleConfig, UserConfig};

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// The default region (the first of `regions`): the banner, and what the region-less
    /// parts (STS) answer for.
    pub region: String,
    /// The regions this deployment serves (`[server] regions`; default: `[region]`). A KMS
    /// request's region is its SigV4 scope's and must be one of these.
    pub regions: Vec<String>,
    /// Keys, aliases and policies created at start-up, idempotently (`[server] seed_file`,
    /// format in `docs/seeding.md`).
    pub seed_file: Option<PathBuf>,
    pub data_dir: PathBuf,
    /// SigV4 clock-skew window of the KMS API (AWS KMS: 5 minutes).
    pub max_clock_skew: chrono::Duration,
    /// SigV4 clock-skew window of STS (AWS STS: 15 minutes).
    pub sts_max_clock_skew: chrono::Duration,
    pub baseline_route: bool,
    pub maintenance_interval: std::time::Duration,
    /// How often the identity sections are read again (they are also on SIGHUP).
    pub identity_reload: std::time::Duration,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub max_body_bytes: usize,
    /// Browser origins answered with CORS headers (`[server] cors_allowed_origins`; default
    /// off).
    pub cors_allowed_origins: CorsOrigins,
    /// The load balancers and reverse proxies whose `X-Forwarded-For` names the client
    /// (`[server] trusted_proxies`; default none: the client is the TCP peer). Read at start-up
    /// only.
    pub trusted_proxies: serve::TrustedProxies,
    /// Where Prometheus metrics are served (`GET /metrics`), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Threads that run crypto operations when an HSM is configured (`None`: derived from
    /// the HSM profiles and session counts, see [`Config::hsm_threads`]).
    pub hsm_threads: Option<usize>,
    /// Async worker threads (`None`: derived, see [`Config::async_threads`]).
    pub async_threads: Option<usize>,
    /// Unwrapped material versions the root keeps (least recently used evicted; on the
    /// PKCS#11 root each is a session object in the token).
    pub key_cache_entries: usize,
    /// Key rows, and grant lists, the metadata cache keeps (least recently used evicted).
    pub metadata_cache_entries: usize,
    /// Users, groups, roles, access keys and guardrails (reloadable: [`load_iam`]).
    pub iam: IamConfig,
    /// The configuration file, when there is one (identities are reloaded from it).
    pub file: Option<PathBuf>,
    /// The API listener's connection cap, timeouts and shutdown grace (`[server]
    /// max_connections`, `*_timeout_ms`, `shutdown_grace_ms`; defaults: `serve`'s).
    pub listener: serve::ServeConfig,
    /// True when the built-in development credential is in use.
    pub dev_credential: bool,
    pub audit_path: PathBuf,
    /// `[audit] durable`: responses wait for their record to be on disk.
    pub audit_durable: bool,
    pub root: RootConfig,
    /// CloudHSM-style clusters that custom key stores can use.
    pub clusters: Vec<crate::backend::cluster::ClusterConfig>,
    /// How external key store proxies are reached.
    pub xks: XksClientConfig,
    /// The metadata store.
    pub store: StoreConfig,
    /// Resource quotas (`[limits]`).
    pub limits: Limits,
}

/// Default of `[server] key_cache_entries`.
pub const DEFAULT_KEY_CACHE_ENTRIES: usize = 10_000;
/// Default of `[server] metadata_cache_entries`.
pub const DEFAULT_METADATA_CACHE_ENTRIES: usize = 100_000;

/// All the problems found in a configuration.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<String>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "invalid configuration ({} problem(s)):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Loads the configuration from an optional file and the given environment.
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigErrors> {
    let env: std::collections::HashMap<String, String> = env.into_iter().collect();
    let mut errors = Vec::new();
    let table = read_table(file, &env, &mut errors);
    let raw: RawConfig = match table.try_into() {
        Ok(r) => r,
        Err(e) => {
            errors.push(e.message().to_string());
            RawConfig::default()
        }
    };
    validate(raw, file, errors, &env)
}

/// Loads only the identity sections (users, groups, roles, credentials, guardrails) of the
/// configuration file, with the same environment: what a reload swaps in. Every problem is
/// reported; other sections are not validated again.
pub fn load_iam(
    file: Option<&Path>,
    env: &std::collections::HashMap<String, String>,
) -> Result<IamConfig, ConfigErrors> {
    #[derive(Default, Deserialize)]
    struct Sections {
        #[serde(default)]
        credentials: Vec<iam::RawCredential>,
        #[serde(default)]
        users: Vec<iam::RawUser>,
        #[serde(default)]
        groups: Vec<iam::RawGroup>,
        #[serde(default)]
        roles: Vec<iam::RawRole>,
        #[serde(default)]
        guardrails: Vec<iam::RawGuardrail>,
        #[serde(default)]
        server: RawServer,
    }
    let mut errors = Vec::new();
    let table = read_table(file, env, &mut errors);
    let raw: Sections = match table.try_into() {
        Ok(r) => r,
        Err(e) => {
            errors.push(e.message().to_string());
            Sections::default()
        }
    };
    let (raw_iam, dev_credential) = identity_sections(
        raw.credentials,
        raw.users,
        raw.groups,
        raw.roles,
        raw.guardrails,
    );
    let iam = iam::validate(raw_iam, file.and_then(Path::parent), &mut errors);
    // A reload must not bring the development credential to a public listener either.
    let listen = raw.server.listen.as_deref().map(str::parse::<SocketAddr>);
    if let Some(Ok(listen)) = listen {
        if !listen.ip().is_loopback() && raw.server.development != Some(true) {
            // TLS was checked at start; only the credential can change here.
            exposed_insecurely(listen, &iam, dev_credential, true, &mut errors);
        }
    }
    if errors.is_empty() {
        Ok(iam)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// The identity sections, with the development credential when no credential is configured
/// (and whether it was used).
fn identity_sections(
    credentials: Vec<iam::RawCredential>,
    users: Vec<iam::RawUser>,
    groups: Vec<iam::RawGroup>,
    roles: Vec<iam::RawRole>,
    guardrails: Vec<iam::RawGuardrail>,
) -> (iam::RawIam, bool) {
    let dev_credential = credentials.is_empty();
    let credentials = if dev_credential {
        vec![iam::RawCredential {
            access_key_id: DEV_ACCESS_KEY_ID.into(),
            secret_access_key: Some(SecretString::from(DEV_SECRET_ACCESS_KEY)),
            secret_access_key_file: None,
            principal: DEV_PRINCIPAL_ARN.into(),
        }]
    } else {
        credentials
    };
    (
        iam::RawIam {
            users,
            groups,
            roles,
            guardrails,
            credentials,
        },
        dev_credential,
    )
}

/// The configuration file as a TOML table with the `KMS_*` environment applied.
fn read_table(
    file: Option<&Path>,
    env: &std::collections::HashMap<String, String>,
    errors: &mut Vec<String>,
) -> toml::Table {
    let mut table = match file {
        None => toml::Table::new(),
        Some(p) => match std::fs::read_to_string(p) {
            Ok(text) => match text.parse::<toml::Table>() {
                Ok(t) => t,
                Err(e) => {
                    errors.push(format!("{}: {}", p.display(), e.message()));
                    toml::Table::new()
                }
            },
            Err(e) => {
                errors.push(format!("{}: {e}", p.display()));
                toml::Table::new()
            }
        },
    };
    let mut single = (None, None, None);
    for (name, value) in env.iter().map(|(k, v)| (k.clone(), v.clone())) {
        let Some(rest) = name.strip_prefix("KMS_") else {
            continue;
        };
        match rest {
            "ACCESS_KEY_ID" => single.0 = Some(value),
            "SECRET_ACCESS_KEY" => single.1 = Some(value),
            "PRINCIPAL_ARN" => single.2 = Some(value),
            _ => {
                let Some((section, field)) = rest.split_once("__") else {
                    continue;
                };
                let section = section.to_ascii_lowercase();
                let field = field.to_ascii_lowercase();
                let v = parse_env_value(&value);
                match table
                    .entry(section.clone())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                {
                    toml::Value::Table(t) => {
                        t.insert(field, v);
                    }
                    _ => errors.push(format!("{name}: [{section}] is not a table")),
                }
            }
        }
    }
    match single {
        (Some(akid), Some(secret), principal) => {
            let mut c = toml::Table::new();
            c.insert("access_key_id".into(), toml::Value::String(akid));
            c.insert("secret_access_key".into(), toml::Value::String(secret));
            c.insert(
                "principal".into(),
                toml::Value::String(principal.unwrap_or_else(|| DEV_PRINCIPAL_ARN.into())),
            );
            table.insert(
                "credentials".into(),
                toml::Value::Array(vec![toml::Value::Table(c)]),
            );
        }
        (None, None, None) => {}
        _ => errors
            .push("KMS_ACCESS_KEY_ID and KMS_SECRET_ACCESS_KEY must be set together".to_string()),
    }
    table
}

fn parse_env_value(v: &str) -> toml::Value {
    // An array in TOML syntax (`KMS_SERVER__REGIONS='["us-east-1", "us-west-2"]'`).
    if v.trim_start().starts_with('[') {
        if let Ok(mut t) = format!("v = {v}").parse::<toml::Table>() {
            if let Some(array) = t.remove("v") {
                return array;
            }
        }
    }
    if let Ok(b) = v.parse::<bool>() {
        return toml::Value::Boolean(b);
    }
    if let Ok(i) = v.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    toml::Value::String(v.to_string())
}

/// A listen address that is not loopback takes neither the well-known development credential
/// nor plain HTTP, unless `server.development` is set: each is reported with the way out.
fn exposed_insecurely(
    listen: SocketAddr,
    iam: &IamConfig,
    dev_credential: bool,
    tls: bool,
    errors: &mut Vec<String>,
) {
    let well_known = dev_credential
        || iam
            .credentials
            .iter()
            .any(|c| c.access_key_id == DEV_ACCESS_KEY_ID);
    if well_known {
        errors.push(format!(
            "server.listen: {listen} is not a loopback address and the development credential \
             {DEV_ACCESS_KEY_ID} (published in AWS's documentation) would be accepted there; \
             configure your own [[credentials]], listen on 127.0.0.1, or set \
             server.development = true (development only)"
        ));
    }
    if !tls {
        errors.push(format!(
            "server.listen: {listen} is not a loopback address and the server would speak plain \
             HTTP there; set server.tls_cert and server.tls_key, listen on 127.0.0.1, or set \
             server.development = true (development only)"
        ));
    }
}

/// `[server]`'s listener settings over `serve`'s defaults; out-of-range values are reported.
fn listener_settings(s: &RawServer, errors: &mut Vec<String>) -> serve::ServeConfig {
    use std::time::Duration;
    let defaults = serve::ServeConfig::default();
    let max_connections = s.max_connections.unwrap_or(defaults.max_connections);
    if !(1..=1_000_000).contains(&max_connections) {
        errors.push(format!(
            "server.max_connections: {max_connections} is not within 1..=1000000"
        ));
    }
    // 10 ms at least: shorter deadlines would cut off healthy clients on a busy host.
    let mut millis = |field: &str, value: Option<u64>, default: Duration, min: u64| {
        let Some(ms) = value else {
            return default;
        };
        if !(min..=600_000).contains(&ms) {
            errors.push(format!("server.{field}: {ms} is not within {min}..=600000"));
        }
        Duration::from_millis(ms)
    };
    serve::ServeConfig {
        max_connections,
        tls_handshake_timeout: millis(
            "tls_handshake_timeout_ms",
            s.tls_handshake_timeout_ms,
            defaults.tls_handshake_timeout,
            10,
        ),
        header_read_timeout: millis(
            "header_read_timeout_ms",
            s.header_read_timeout_ms,
            defaults.header_read_timeout,
            10,
        ),
        body_read_timeout: millis(
            "body_read_timeout_ms",
            s.body_read_timeout_ms,
            defaults.body_read_timeout,
            10,
        ),
        shutdown_grace: millis(
            "shutdown_grace_ms",
            s.shutdown_grace_ms,
            defaults.shutdown_grace,
            0,
        ),
        ..defaults
    }
}

fn validate(
    raw: RawConfig,
    file: Option<&Path>,
    mut errors: Vec<String>,
    env: &std::collections::HashMap<String, String>,
) -> Result<Config, ConfigErrors> {
    let s = raw.server;
    let listener = listener_settings(&s, &mut errors);
    let listen = s.listen.unwrap_or_else(|| "127.0.0.1:4599".into());
    let listen: SocketAddr = match listen.parse() {
        Ok(a) => a,
        Err(_) => {
            errors.push(format!("server.listen: '{listen}' is not an address:port"));
            SocketAddr::from(([127, 0, 0, 1], 4599))
        }
    };
    let development = s.development.unwrap_or(false);
    if s.baseline_route == Some(true) && !listen.ip().is_loopback() {
        errors.push(format!(
            "server.baseline_route: the unauthenticated benchmark routes are served only on a \
             loopback listen address, not {listen}"
        ));
    }
    let region_ok = |r: &str| {
        !r.is_empty()
            && r.len() <= 32
            && r.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    let regions = match (s.region.clone(), s.regions.clone()) {
        (None, None) => vec!["us-east-1".to_string()],
        (Some(r), None) => vec![r],
        (None, Some(list)) => list,
        // The default region first, then the others in their order.
        (Some(r), Some(list)) => {
            if !list.contains(&r) {
                errors.push(format!(
                    "server.regions: must include server.region '{r}' (or leave server.region out)"
                ));
            }
            let mut out = vec![r.clone()];
            out.extend(list.into_iter().filter(|x| *x != r));
            out
        }
    };
    if regions.is_empty() {
        errors.push("server.regions: name at least one region".into());
    }
    for r in &regions {
        if !region_ok(r) {
            errors.push(format!(
                "server.region: '{r}' is not a region name like us-east-1"
            ));
        }
    }
    if regions
        .iter()
        .enumerate()
        .any(|(i, r)| regions[..i].contains(r))
    {
        errors.push("server.regions: a region is named twice".into());
    }
    let region = regions
        .first()
        .cloned()
        .unwrap_or_else(|| "us-east-1".into());
    let seed_file = s.seed_file.clone();
    let data_dir = s.data_dir.unwrap_or_else(|| PathBuf::from("kms-data"));
    let skew = s.max_clock_skew_seconds.unwrap_or(300);
    if !(1..=3600).contains(&skew) {
        errors.push(format!(
            "server.max_clock_skew_seconds: {skew} is not within 1..=3600"
        ));
    }
    let sts_skew = s.sts_max_clock_skew_seconds.unwrap_or(900);
    if !(1..=3600).contains(&sts_skew) {
        errors.push(format!(
            "server.sts_max_clock_skew_seconds: {sts_skew} is not within 1..=3600"
        ));
    }
    let identity_reload = s.identity_reload_seconds.unwrap_or(30);
    if !(1..=86_400).contains(&identity_reload) {
        errors.push(format!(
            "server.identity_reload_seconds: {identity_reload} is not within 1..=86400"
        ));
    }
    let maintenance = s.maintenance_interval_seconds.unwrap_or(60);
    if maintenance == 0 {
        errors.push("server.maintenance_interval_seconds: must be at least 1".into());
    }
    let max_body_bytes = s.max_body_bytes.unwrap_or(256 * 1024);
    if !(64 * 1024..=16 * 1024 * 1024).contains(&max_body_bytes) {
        errors.push(format!(
            "server.max_body_bytes: {max_body_bytes} is not within 65536..=16777216"
        ));
    }
    if let Some(n) = s.hsm_threads {
        if !(1..=1024).contains(&n) {
            errors.push(format!("server.hsm_threads: {n} is not within 1..=1024"));
        }
    }
    if let Some(n) = s.async_threads {
        if !(1..=1024).contains(&n) {
            errors.push(format!("server.async_threads: {n} is not within 1..=1024"));
        }
    }
    let key_cache_entries = s.key_cache_entries.unwrap_or(DEFAULT_KEY_CACHE_ENTRIES);
    if key_cache_entries == 0 {
        errors.push("server.key_cache_entries: must be at least 1".into());
    }
    let metadata_cache_entries = s
        .metadata_cache_entries
        .unwrap_or(DEFAULT_METADATA_CACHE_ENTRIES);
    if metadata_cache_entries == 0 {
        errors.push("server.metadata_cache_entries: must be at least 1".into());
    }
    let metrics_listen = match s.metrics_listen {
        None => None,
        Some(a) => match a.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                errors.push(format!(
                    "server.metrics_listen: '{a}' is not an address:port"
                ));
                None
            }
        },
    };
    if let Some(a) = metrics_listen {
        if !a.ip().is_loopback() && s.metrics_public != Some(true) {
            errors.push(format!(
                "server.metrics_listen: {a} is not a loopback address; metrics are served \
                 without authentication, so set server.metrics_public = true to serve them there"
            ));
        }
    }
    let tls = match (s.tls_cert, s.tls_key) {
        (None, None) => None,
        (Some(c), Some(k)) => {
            for p in [&c, &k] {
                if !p.is_file() {
                    errors.push(format!("server.tls: {} does not exist", p.display()));
                }
            }
            Some((c, k))
        }
        _ => {
            errors.push("server.tls_cert and server.tls_key must be set together".into());
            None
        }
    };

    let (raw_iam, dev_credential) = identity_sections(
        raw.credentials,
        raw.users,
        raw.groups,
        raw.roles,
        raw.guardrails,
    );
    let iam = iam::validate(raw_iam, file.and_then(Path::parent), &mut errors);
    if !listen.ip().is_loopback() && !development {
        exposed_insecurely(listen, &iam, dev_credential, tls.is_some(), &mut errors);
    }
    let r = raw.root;
    let root = match r.kind.as_deref() {
        None | Some("software") => RootConfig::Software {
            key_file: r.key_file.unwrap_or_else(|| data_dir.join("root.key")),
        },
        Some("pkcs11") => {
            let profile = match hsm::VendorProfile::load(r.profile.as_deref().unwrap_or("softhsm2"))
            {
                Ok(p) => p,
                Err(e) => {
                    errors.push(format!("root.profile: {e}"));
                    hsm::VendorProfile::default()
                }
            };
            let module = r
                .module
                .unwrap_or_else(|| PathBuf::from(&profile.default_module));
            if !module.is_file() {
                errors.push(format!("root.module: {} does not exist", module.display()));
            }
            let token_label = r.token_label.unwrap_or_default();
            if token_label.is_empty() || token_label.len() > 32 {
                errors.push("root.token_label: must be 1-32 characters".into());
            }
            let pin = read_pin(
                "root",
                r.pin_file.as_deref(),
                r.pin_env.as_deref(),
                env,
                &mut errors,
            );
            let sessions = r.sessions.unwrap_or(profile.max_sessions);
            if !(1..=4096).contains(&sessions) {
                errors.push(format!("root.sessions: {sessions} is not within 1..=4096"));
            }
            let wait = r.session_wait_ms.unwrap_or(200);
            if !(1..=60_000).contains(&wait) {
                errors.push(format!(
                    "root.session_wait_ms: {wait} is not within 1..=60000"
                ));
            }
            RootConfig::Pkcs11 {
                token: hsm::TokenConfig {
                    module,
                    token_label,
                    pin: pin.unwrap_or_else(|| SecretString::from(String::new())),
                    so: false,
                    max_sessions: sessions,
                    session_wait: std::time::Duration::from_millis(wait),
                    profile: std::sync::Arc::new(profile),
                },
                domain_key_label: r
                    .domain_key_label
                    .unwrap_or_else(|| "kms-domain-key".into()),
            }
        }
        Some(other) => {
            errors.push(format!(
                "root.kind: '{other}' is not supported (software or pkcs11)"
            ));
            RootConfig::Software {
                key_file: data_dir.join("root.key"),
            }
        }
    };
    let audit_path = raw.audit.path.unwrap_or_else(|| data_dir.join("audit.log"));
    let mut clusters = Vec::new();
    for (i, c) in raw.clusters.into_iter().enumerate() {
        let at = format!("clusters[{i}]");
        let id_ok = c.id.len() == 19
            && c.id.starts_with("cluster-")
            && c.id[8..].bytes().all(|b| b.is_ascii_alphanumeric());
        if !id_ok {
            errors.push(format!(
                "{at}.id: '{}' is not like cluster-1a23b4cdefg (cluster- and 11 letters or digits)",
                c.id
            ));
        }
        if clusters
            .iter()
            .any(|o: &crate::backend::cluster::ClusterConfig| o.id == c.id)
        {
            errors.push(format!("{at}.id: duplicate cluster id {}", c.id));
        }
        let profile = match hsm::VendorProfile::load(c.profile.as_deref().unwrap_or("softhsm2")) {
            Ok(p) => p,
            Err(e) => {
                errors.push(format!("{at}.profile: {e}"));
                hsm::VendorProfile::default()
            }
        };
        let trust_anchor_pem = match std::fs::read_to_string(&c.trust_anchor_file) {
            Ok(t) if t.contains("-----BEGIN CERTIFICATE-----") => t,
            Ok(_) => {
                errors.push(format!(
                    "{at}.trust_anchor_file: {} holds no PEM certificate",
                    c.trust_anchor_file.display()
                ));
                String::new()
            }
            Err(e) => {
                errors.push(format!(
                    "{at}.trust_anchor_file: {}: {e}",
                    c.trust_anchor_file.display()
                ));
                String::new()
            }
        };
        let account = c.account.unwrap_or_default();
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            errors.push(format!(
                "{at}.account: '{account}' is not an AWS account id (12 digits); a cluster \
                 belongs to the one account whose principals may create a custom key store on it"
            ));
        }
        if c.members.is_empty() {
            errors.push(format!("{at}.members: a cluster needs at least one member"));
        }
        let requests_per_second = c
            .requests_per_second
            .unwrap_or(crate::service::custom_key_stores::DEFAULT_STORE_RPS);
        if !(1..=1_000_000).contains(&requests_per_second) {
            errors.push(format!(
                "{at}.requests_per_second: {requests_per_second} is not within 1..=1000000"
            ));
        }
        let mut members = Vec::new();
        for (j, m) in c.members.into_iter().enumerate() {
            let module = m
                .module
                .unwrap_or_else(|| PathBuf::from(&profile.default_module));
            if !module.is_file() {
                errors.push(format!(
                    "{at}.members[{j}].module: {} does not exist",
                    module.display()
                ));
            }
            if m.token_label.is_empty() || m.token_label.len() > 32 {
                errors.push(format!(
                    "{at}.members[{j}].token_label: must be 1-32 characters"
                ));
            }
            if members
                .iter()
                .any(|o: &crate::backend::cluster::MemberConfig| o.name == m.name)
            {
                errors.push(format!(
                    "{at}.members[{j}].name: duplicate member name {}",
                    m.name
                ));
            }
            members.push(crate::backend::cluster::MemberConfig {
                name: m.name,
                module,
                token_label: m.token_label,
            });
        }
        clusters.push(crate::backend::cluster::ClusterConfig {
            id: c.id,
            account,
            sessions: c.sessions.unwrap_or(profile.max_sessions).clamp(1, 4096),
            session_wait: std::time::Duration::from_millis(
                c.session_wait_ms.unwrap_or(200).clamp(1, 60_000),
            ),
            requests_per_second,
            profile: std::sync::Arc::new(profile),
            trust_anchor_pem,
            cluster_key_label: c
                .cluster_key_label
                .unwrap_or_else(|| "kms-cluster-key".into()),
            members,
        });
    }
    let read = |what: &str, p: &Option<PathBuf>, errors: &mut Vec<String>| -> Option<Vec<u8>> {
        let p = p.as_ref()?;
        match std::fs::read(p) {
            Ok(b) => Some(b),
            Err(e) => {
                errors.push(format!("xks.{what}: {}: {e}", p.display()));
                None
            }
        }
    };
    let xks = XksClientConfig {
        ca_pem: read("ca_file", &raw.xks.ca_file, &mut errors),
        client_cert_pem: read("client_cert", &raw.xks.client_cert, &mut errors),
        client_key_pem: read("client_key", &raw.xks.client_key, &mut errors)
            .map(zeroize::Zeroizing::new),
        timeout: raw.xks.timeout_ms.map(std::time::Duration::from_millis),
        requests_per_second: raw.xks.requests_per_second,
        endpoint_policy: crate::backend::xks::EndpointPolicy {
            allowed: raw
                .xks
                .allowed_proxy_networks
                .iter()
                .filter_map(|n| {
                    let parsed = crate::backend::xks::Network::parse(n);
                    if parsed.is_none() {
                        errors.push(format!(
                            "xks.allowed_proxy_networks: '{n}' is not an address or address/prefix"
                        ));
                    }
                    parsed
                })
                .collect(),
            refuse_private: raw.xks.refuse_private_networks.unwrap_or(false),
        },
        probes_per_minute: raw
            .xks
            .probes_per_minute
            .unwrap_or(crate::service::xks::DEFAULT_PROBES_PER_MINUTE),
        metrics_per_store: raw.xks.metrics_per_store.unwrap_or(false),
    };
    if !(1..=10_000).contains(&xks.probes_per_minute) {
        errors.push(format!(
            "xks.probes_per_minute: {} is not within 1..=10000",
            xks.probes_per_minute
        ));
    }
    if raw.xks.client_cert.is_some() != raw.xks.client_key.is_some() {
        errors.push("xks.client_cert and xks.client_key must be set together".into());
    }
    if let Some(t) = raw.xks.timeout_ms {
        if !(10..=60_000).contains(&t) {
            errors.push(format!("xks.timeout_ms: {t} is not within 10..=60000"));
        }
    }
    let cors_allowed_origins = cors::cors_settings(s.cors_allowed_origins, &mut errors);
    let trusted_proxies = trusted_proxies(&s.trusted_proxies, &mut errors);
    let store = store_settings(raw.store, &data_dir, env, &mut errors);
    let limits = limits_settings(raw.limits, &mut errors);
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    Ok(Config {
        listen,
        region,
        regions,
        seed_file,
        data_dir,
        max_clock_skew: chrono::Duration::seconds(skew),
        sts_max_clock_skew: chrono::Duration::seconds(sts_skew),
        baseline_route: s.baseline_route.unwrap_or(false),
        maintenance_interval: std::time::Duration::from_secs(maintenance),
        identity_reload: std::time::Duration::from_secs(identity_reload),
        tls,
        max_body_bytes,
        cors_allowed_origins,
        trusted_proxies,
        metrics_listen,
        hsm_threads: s.hsm_threads,
        async_threads: s.async_threads,
        key_cache_entries,
        metadata_cache_entries,
        iam,
        file: file.map(Path::to_path_buf),
        listener,
        dev_credential,
        audit_path,
        audit_durable: raw.audit.durable.unwrap_or(false),
        root,
        clusters,
        xks,
        store,
        limits,
    })
}

/// `[server] trusted_proxies` validated: each entry an address or `address/prefix`; every
/// bad entry goes to `errors`.
fn trusted_proxies(entries: &[String], errors: &mut Vec<String>) -> serve::TrustedProxies {
    let mut networks = Vec::with_capacity(entries.len());
    for e in entries {
        match serve::Network::parse(e) {
            Some(n) => networks.push(n),
            None => errors.push(format!(
                "server.trusted_proxies: '{e}' is not an address or address/prefix \
                 (such as 10.0.0.5 or 10.0.0.0/8)"
            )),
        }
    }
    serve::TrustedProxies::new(networks)
}

/// `[store]` validated; every problem goes to `errors`.
fn store_settings(
    r: RawStore,
    data_dir: &Path,
    env: &std::collections::HashMap<String, String>,
    errors: &mut Vec<String>,
) -> StoreConfig {
    let auto_migrate = r.auto_migrate.unwrap_or(true);
    let postgres_only = [
        ("url", r.url.is_some()),
        ("password_file", r.password_file.is_some()),
        ("password_env", r.password_env.is_some()),
        ("tls", r.tls.is_some()),
        ("tls_ca_file", r.tls_ca_file.is_some()),
        ("pool_size", r.pool_size.is_some()),
        ("connect_timeout_ms", r.connect_timeout_ms.is_some()),
        ("pool_wait_ms", r.pool_wait_ms.is_some()),
    ];
    match r.kind.as_deref() {
        None | Some("sqlite") => {
            for (field, set) in postgres_only {
                if set {
                    errors.push(format!("store.{field}: only for kind = \"postgres\""));
                }
            }
            StoreConfig::Sqlite {
                path: r.path.unwrap_or_else(|| data_dir.join("kms.sqlite3")),
                auto_migrate,
            }
        }
        Some("postgres") => {
            if r.path.is_some() {
                errors.push("store.path: only for kind = \"sqlite\"".into());
            }
            let url = r.url.unwrap_or_default();
            match url.parse::<tokio_postgres::Config>() {
                Err(e) => errors.push(format!("store.url: {e}")),
                Ok(c) if c.get_password().is_some() => errors.push(
                    "store.url: must not hold a password (use store.password_file or \
                     store.password_env)"
                        .into(),
                ),
                Ok(c) if c.get_hosts().is_empty() => errors.push("store.url: names no host".into()),
                Ok(_) => {}
            }
            let password = match (r.password_file.as_deref(), r.password_env.as_deref()) {
                (None, None) => None,
                (file, env_name) => read_secret(
                    "store",
                    ("password_file", file),
                    ("password_env", env_name),
                    env,
                    errors,
                ),
            };
            let tls = match r.tls.as_deref() {
                None | Some("verify-full") => PgTls::VerifyFull,
                Some("disable") => PgTls::Disable,
                Some(other) => {
                    errors.push(format!(
                        "store.tls: '{other}' is not supported (disable or verify-full)"
                    ));
                    PgTls::VerifyFull
                }
            };
            let ca = match &r.tls_ca_file {
                None => None,
                Some(p) => match std::fs::read(p) {
                    Ok(b) => Some(CaFile::new(p.clone(), b)),
                    Err(e) => {
                        errors.push(format!("store.tls_ca_file: {}: {e}", p.display()));
                        None
                    }
                },
            };
            let pool_size = r.pool_size.unwrap_or(16);
            if !(1..=1024).contains(&pool_size) {
                errors.push(format!(
                    "store.pool_size: {pool_size} is not within 1..=1024"
                ));
            }
            let mut millis = |field: &str, v: Option<u64>, default: u64| {
                let ms = v.unwrap_or(default);
                if !(10..=600_000).contains(&ms) {
                    errors.push(format!("store.{field}: {ms} is not within 10..=600000"));
                }
                std::time::Duration::from_millis(ms)
            };
            StoreConfig::Postgres(PostgresConfig {
                url,
                password,
                tls,
                ca,
                pool_size,
                connect_timeout: millis("connect_timeout_ms", r.connect_timeout_ms, 5_000),
                pool_wait: millis("pool_wait_ms", r.pool_wait_ms, 5_000),
                auto_migrate,
            })
        }
        Some(other) => {
            errors.push(format!(
                "store.kind: '{other}' is not supported (sqlite or postgres)"
            ));
            StoreConfig::Sqlite {
                path: data_dir.join("kms.sqlite3"),
                auto_migrate,
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A reload takes a file of CA certificates and keeps the PEM in force when the file is
    /// unreadable, holds no certificate or holds a broken one.
    #[test]
    fn ca_file_reload_keeps_the_cas_in_force_on_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        let pem = |name: &str| {
            rcgen::generate_simple_self_signed(vec![name.to_string()])
                .unwrap()
                .cert
                .pem()
        };
        let first = pem("first");
        std::fs::write(&path, &first).unwrap();
        let ca = CaFile::new(path.clone(), first.clone().into_bytes());
        let clone = ca.clone();
        for bad in [
            "".to_string(),
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_string(),
        ] {
            std::fs::write(&path, bad).unwrap();
            assert!(ca.reload().is_err());
            assert_eq!(clone.pem().as_slice(), first.as_bytes());
        }
        std::fs::remove_file(&path).unwrap();
        assert!(ca.reload().is_err());
        let both = format!("{first}{}", pem("second"));
        std::fs::write(&path, &both).unwrap();
        assert_eq!(ca.reload(), Ok(2));
        // In force for every clone of the configuration.
        assert_eq!(clone.pem().as_slice(), both.as_bytes());
    }

    /// Environment pairs as `load` takes them.
    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_valid() {
        let c = load(None, Vec::new()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:4599");
        assert_eq!(c.region, "us-east-1");
        assert!(c.dev_credential);
        assert_eq!(c.iam.credentials[0].account, "111122223333");
        // AWS's SigV4 clock-skew windows: KMS 5 minutes, STS 15.
        assert_eq!(c.max_clock_skew, chrono::Duration::minutes(5));
        assert_eq!(c.sts_max_clock_skew, chrono::Duration::minutes(15));
    }

    #[test]
    fn cors_is_off_by_default_and_set_from_the_environment() {
        let env = |p: &[(&str, &str)]| load(None, owned(p));
        let c = env(&[]).unwrap();
        assert_eq!(c.cors_allowed_origins, CorsOrigins::Off);
        let c = env(&[("KMS_SERVER__CORS_ALLOWED_ORIGINS", "*")]).unwrap();
        assert_eq!(c.cors_allowed_origins, CorsOrigins::Any);
        let c = env(&[(
            "KMS_SERVER__CORS_ALLOWED_ORIGINS",
            r#"["http://127.0.0.1:5173", "https://app.example.com"]"#,
        )])
        .unwrap();
        assert_eq!(
            c.cors_allowed_origins,
            CorsOrigins::Only(vec![
                "http://127.0.0.1:5173".into(),
                "https://app.example.com".into()
            ])
        );
        let e = env(&[("KMS_SERVER__CORS_ALLOWED_ORIGINS", "http://127.0.0.1:5173/")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("server.cors_allowed_origins: 'http://127.0.0.1:5173/'"),
            "{e}"
        );
    }

    #[test]
    fn trusted_proxies_are_none_by_default_and_every_bad_entry_is_named() {
        let env = |p: &[(&str, &str)]| load(None, owned(p));
        let c = env(&[]).unwrap();
        assert_eq!(c.trusted_proxies, serve::TrustedProxies::default());
        let c = env(&[(
            "KMS_SERVER__TRUSTED_PROXIES",
            r#"["10.0.0.0/8", "127.0.0.2", "fd00::/8"]"#,
        )])
        .unwrap();
        let peer = "10.1.2.3".parse().unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.7".parse().unwrap());
        assert!(c.trusted_proxies.trusts("127.0.0.2".parse().unwrap()));
        assert!(c.trusted_proxies.trusts("fd00::1".parse().unwrap()));
        assert!(!c.trusted_proxies.trusts("127.0.0.1".parse().unwrap()));
        assert_eq!(
            c.trusted_proxies.client_ip(peer, &headers),
            "203.0.113.7".parse::<std::net::IpAddr>().unwrap()
        );
        let e = env(&[(
            "KMS_SERVER__TRUSTED_PROXIES",
            r#"["10.0.0.0/33", "lb.example.com", "127.0.0.2"]"#,
        )])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("server.trusted_proxies: '10.0.0.0/33' is not an address or address/prefix"),
            "{e}"
        );
        assert!(e.contains("'lb.example.com'"), "{e}");
        assert!(!e.contains("'127.0.0.2'"), "{e}");
        // A list, not a bare string (as every list key).
        let e = env(&[("KMS_SERVER__TRUSTED_PROXIES", "10.0.0.0/8")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected a sequence"), "{e}");
    }

    #[test]
    fn regions_default_to_the_region_and_are_validated() {
        let env = |p: &[(&str, &str)]| load(None, owned(p));
        let c = env(&[]).unwrap();
        assert_eq!(c.regions, vec!["us-east-1".to_string()]);
        let c = env(&[("KMS_SERVER__REGION", "eu-west-1")]).unwrap();
        assert_eq!(c.regions, vec!["eu-west-1".to_string()]);
        // A list (TOML array syntax in the environment); the default region is the first.
        let c = env(&[("KMS_SERVER__REGIONS", r#"["us-west-2", "us-east-1"]"#)]).unwrap();
        assert_eq!((c.region.as_str(), c.regions.len()), ("us-west-2", 2));
        // With both, the region comes first and must be listed.
        let c = env(&[
            ("KMS_SERVER__REGION", "us-east-1"),
            ("KMS_SERVER__REGIONS", r#"["us-west-2", "us-east-1"]"#),
        ])
        .unwrap();
        assert_eq!(
            c.regions,
            vec!["us-east-1".to_string(), "us-west-2".to_string()]
        );
        let errors = |pairs: &[(&str, &str)]| env(pairs).unwrap_err().to_string();
        assert!(errors(&[
            ("KMS_SERVER__REGION", "us-east-1"),
            ("KMS_SERVER__REGIONS", r#"["us-west-2"]"#),
        ])
        .contains("must include server.region 'us-east-1'"));
        assert!(errors(&[("KMS_SERVER__REGIONS", "[]")]).contains("name at least one region"));
        assert!(
            errors(&[("KMS_SERVER__REGIONS", r#"["us-east-1", "us-east-1"]"#)])
                .contains("named twice")
        );
        assert!(errors(&[("KMS_SERVER__REGIONS", r#"["US East"]"#)])
            .contains("'US East' is not a region name"));
        let c = env(&[("KMS_SERVER__SEED_FILE", "/etc/kms/seed.toml")]).unwrap();
        assert_eq!(
            c.seed_file.as_deref(),
            Some(std::path::Path::new("/etc/kms/seed.toml"))
        );
    }

    #[test]
    fn limits_default_global_per_account_and_validated() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kms.toml");
        let with = |toml: &str| {
            std::fs::write(&file, toml).unwrap();
            load(Some(&file), Vec::new())
        };
        let c = load(None, Vec::new()).unwrap();
        assert_eq!(c.limits.keys_for("111122223333"), 100_000);
        let c = with(
            "[limits]\nkeys_per_account = 5\n\
             [limits.accounts.444455556666]\nkeys_per_account = 2\n",
        )
        .unwrap();
        assert_eq!(c.limits.keys_for("111122223333"), 5);
        assert_eq!(c.limits.keys_for("444455556666"), 2);
        let errors =
            with("[limits]\nkeys_per_account = 0\n[limits.accounts.12345]\nkeys_per_account = 1\n")
                .unwrap_err()
                .0;
        assert!(
            errors.contains(&"limits.keys_per_account: must be at least 1".to_string()),
            "{errors:?}"
        );
        assert!(
            errors.contains(&"limits.accounts: '12345' is not a 12-digit account id".to_string()),
            "{errors:?}"
        );
        assert!(with("[limits]\nkeys = 5\n").is_err());
    }

    #[test]
    fn request_and_resource_quotas_configured_and_validated() {
        use crate::service::quotas::Quota;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kms.toml");
        let with = |toml: &str, env: Vec<(String, String)>| {
            std::fs::write(&file, toml).unwrap();
            load(Some(&file), env)
        };
        let c = load(None, Vec::new()).unwrap();
        assert!(c.limits.requests.enabled);
        assert_eq!(c.limits.requests.cluster_nodes, 1);
        assert_eq!(c.limits.aliases_for("111122223333"), 50);
        assert_eq!(c.limits.grants_for("111122223333"), 50_000);
        assert_eq!(c.limits.custom_key_stores_for("111122223333"), 10);
        let c = with(
            "[limits]\ncluster_nodes = 3\naliases_per_key = 4\ngrants_per_key = 7\n\
             custom_key_stores = 2\nrequest_rates = { cryptographic_rsa = 50, CreateKey = 1 }\n\
             [limits.accounts.444455556666]\ngrants_per_key = 9\n\
             request_rates = { 'GenerateDataKeyPair:RSA_2048' = 3 }\n",
            vec![("KMS_LIMITS__REQUEST_QUOTAS".into(), "false".into())],
        )
        .unwrap();
        let r = &c.limits.requests;
        assert!(!r.enabled);
        assert_eq!(r.cluster_nodes, 3);
        assert_eq!(r.rates[&Quota::CryptoRsa], 50.0);
        assert_eq!(r.rates[&Quota::Operation("CreateKey")], 1.0);
        assert_eq!(
            r.rates_by_account["444455556666"]
                [&Quota::DataKeyPair(crate::model::DataKeyPairSpec::Rsa2048)],
            3.0
        );
        assert_eq!(c.limits.aliases_for("444455556666"), 4);
        assert_eq!(c.limits.grants_for("444455556666"), 9);
        assert_eq!(c.limits.grants_for("111122223333"), 7);
        assert_eq!(c.limits.custom_key_stores_for("111122223333"), 2);
        let errors = with(
            "[limits]\ncluster_nodes = 0\ngrants_per_key = 0\n\
             request_rates = { Encrypt = 5, CreateKey = -1 }\n",
            Vec::new(),
        )
        .unwrap_err()
        .0;
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors
            .iter()
            .any(|e| e.starts_with("limits.request_rates: 'Encrypt' is not")));
        assert!(errors.contains(
            &"limits.request_rates.CreateKey: must be a positive number of requests per second"
                .to_string()
        ));
    }

    #[test]
    fn store_settings_sqlite_by_default_postgres_validated() {
        let vars = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let c = load(None, vars(&[])).unwrap();
        assert!(
            matches!(&c.store, StoreConfig::Sqlite { path, auto_migrate: true }
                if path.ends_with("kms.sqlite3"))
        );
        let c = load(
            None,
            vars(&[
                ("KMS_STORE__KIND", "postgres"),
                ("KMS_STORE__URL", "postgres://kms@127.0.0.1:5432/kms"),
                ("KMS_STORE__PASSWORD_ENV", "DBPW"),
                ("DBPW", "s3cret"),
                ("KMS_STORE__TLS", "disable"),
                ("KMS_STORE__POOL_SIZE", "8"),
                ("KMS_STORE__AUTO_MIGRATE", "false"),
            ]),
        )
        .unwrap();
        let pg = match &c.store {
            StoreConfig::Postgres(pg) => pg,
            other => unreachable!("not postgres: {other:?}"),
        };
        assert_eq!(pg.pool_size, 8);
        assert_eq!(pg.tls, PgTls::Disable);
        assert!(!pg.auto_migrate);
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(pg.password.as_ref().unwrap()),
            "s3cret"
        );
        // The password never shows in the configuration's debug form.
        assert!(!format!("{:?}", c.store).contains("s3cret"));
        let e = load(
            None,
            vars(&[
                ("KMS_STORE__KIND", "postgres"),
                ("KMS_STORE__URL", "postgres://kms:pw@127.0.0.1/kms"),
                ("KMS_STORE__PASSWORD_ENV", "UNSET_VARIABLE"),
                ("KMS_STORE__TLS", "prefer"),
                ("KMS_STORE__POOL_SIZE", "0"),
            ]),
        )
        .unwrap_err();
        for want in [
            "store.url: must not hold a password",
            "store.password_env: environment variable UNSET_VARIABLE is not set",
            "store.tls: 'prefer' is not supported",
            "store.pool_size: 0 is not within",
        ] {
            assert!(e.0.iter().any(|m| m.starts_with(want)), "{want}: {e}");
        }
        let e = load(
            None,
            vars(&[("KMS_STORE__URL", "postgres://kms@127.0.0.1/kms")]),
        )
        .unwrap_err();
        assert!(
            e.0.iter()
                .any(|m| m.starts_with("store.url: only for kind")),
            "{e}"
        );
    }

    #[test]
    fn env_overrides_and_every_error_is_reported() {
        let env = vec![
            ("KMS_SERVER__LISTEN".to_string(), "nonsense".to_string()),
            ("KMS_SERVER__REGION".to_string(), "US EAST".to_string()),
            (
                "KMS_SERVER__MAX_CLOCK_SKEW_SECONDS".to_string(),
                "0".to_string(),
            ),
        ];
        let e = load(None, env).unwrap_err();
        assert_eq!(e.0.len(), 3, "{e}");
        let e = load(
            None,
            vec![(
                "KMS_SERVER__STS_MAX_CLOCK_SKEW_SECONDS".into(),
                "3601".into(),
            )],
        )
        .unwrap_err();
        assert_eq!(
            e.0,
            ["server.sts_max_clock_skew_seconds: 3601 is not within 1..=3600"]
        );
        let ok = load(
            None,
            vec![
                ("KMS_SERVER__BASELINE_ROUTE".into(), "true".into()),
                (
                    "KMS_SERVER__STS_MAX_CLOCK_SKEW_SECONDS".into(),
                    "600".into(),
                ),
            ],
        )
        .unwrap();
        assert!(ok.baseline_route);
        assert_eq!(ok.sts_max_clock_skew, chrono::Duration::minutes(10));
        let e = load(
            None,
            vec![
                ("KMS_SERVER__BASELINE_ROUTE".into(), "true".into()),
                ("KMS_SERVER__LISTEN".into(), "0.0.0.0:4599".into()),
            ],
        )
        .unwrap_err();
        assert!(
            e.0.iter()
                .any(|m| m.starts_with("server.baseline_route") && m.contains("loopback")),
            "{e}"
        );
    }

    #[test]
    fn listener_settings_default_to_serve_and_follow_the_environment() {
        assert_eq!(
            load(None, Vec::new()).unwrap().listener,
            serve::ServeConfig::default()
        );
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (format!("KMS_SERVER__{k}"), v.to_string()))
                .collect()
        };
        let c = load(
            None,
            env(&[
                ("MAX_CONNECTIONS", "7"),
                ("TLS_HANDSHAKE_TIMEOUT_MS", "250"),
                ("HEADER_READ_TIMEOUT_MS", "300"),
                ("BODY_READ_TIMEOUT_MS", "400"),
                ("SHUTDOWN_GRACE_MS", "0"),
            ]),
        )
        .unwrap();
        let ms = std::time::Duration::from_millis;
        assert_eq!(
            c.listener,
            serve::ServeConfig {
                max_connections: 7,
                tls_handshake_timeout: ms(250),
                header_read_timeout: ms(300),
                body_read_timeout: ms(400),
                shutdown_grace: ms(0),
                ..serve::ServeConfig::default()
            }
        );
        let e = load(
            None,
            env(&[
                ("MAX_CONNECTIONS", "0"),
                ("HEADER_READ_TIMEOUT_MS", "5"),
                ("SHUTDOWN_GRACE_MS", "600001"),
            ]),
        )
        .unwrap_err();
        assert_eq!(e.0.len(), 3, "{e}");
        for field in [
            "max_connections",
            "header_read_timeout_ms",
            "shutdown_grace_ms",
        ] {
            assert!(
                e.0.iter()
                    .any(|m| m.starts_with(&format!("server.{field}"))),
                "{e}"
            );
        }
    }

    #[test]
    fn a_public_listen_address_refuses_the_development_credential_and_plain_http() {
        let env = owned;
        // Nothing listens here: validation only.
        let e = load(None, env(&[("KMS_SERVER__LISTEN", "0.0.0.0:4599")])).unwrap_err();
        assert_eq!(e.0.len(), 2, "{e}");
        assert!(
            e.0.iter().any(|m| m.contains(DEV_ACCESS_KEY_ID)
                && m.contains("not a loopback address")
                && m.contains("server.development = true")),
            "{e}"
        );
        assert!(
            e.0.iter().any(|m| m.contains("plain HTTP")
                && m.contains("server.tls_cert")
                && m.contains("server.development = true")),
            "{e}"
        );
        // The example key configured explicitly is just as public.
        let e = load(
            None,
            env(&[
                ("KMS_SERVER__LISTEN", "10.1.2.3:4599"),
                ("KMS_ACCESS_KEY_ID", DEV_ACCESS_KEY_ID),
                ("KMS_SECRET_ACCESS_KEY", DEV_SECRET_ACCESS_KEY),
            ]),
        )
        .unwrap_err();
        assert!(e.0.iter().any(|m| m.contains(DEV_ACCESS_KEY_ID)), "{e}");
        // A real credential still needs TLS.
        let own = [
            ("KMS_SERVER__LISTEN", "[::]:4599"),
            ("KMS_ACCESS_KEY_ID", "AKIA0000000000000001"),
            ("KMS_SECRET_ACCESS_KEY", "secret"),
        ];
        let e = load(None, env(&own)).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert!(e.0[0].contains("plain HTTP"), "{e}");
        // The explicit development switch allows both; loopback needs no switch.
        let mut dev = env(&[("KMS_SERVER__LISTEN", "0.0.0.0:4599")]);
        dev.push(("KMS_SERVER__DEVELOPMENT".into(), "true".into()));
        assert!(load(None, dev).unwrap().dev_credential);
        assert!(load(None, env(&[("KMS_SERVER__LISTEN", "[::1]:4599")])).is_ok());
    }

    #[test]
    fn the_metrics_listener_is_loopback_unless_the_operator_says_otherwise() {
        let env = owned;
        let e = load(None, env(&[("KMS_SERVER__METRICS_LISTEN", "0.0.0.0:9599")])).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert!(
            e.0[0].starts_with("server.metrics_listen: 0.0.0.0:9599 is not a loopback address")
                && e.0[0].contains("server.metrics_public = true"),
            "{e}"
        );
        assert!(load(None, env(&[("KMS_SERVER__METRICS_LISTEN", "[::1]:9599")])).is_ok());
        let public = env(&[
            ("KMS_SERVER__METRICS_LISTEN", "0.0.0.0:9599"),
            ("KMS_SERVER__METRICS_PUBLIC", "true"),
        ]);
        assert!(load(None, public).is_ok());
    }

    #[test]
    fn a_reload_refuses_the_development_credential_on_a_public_listener() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[server]\nlisten = '0.0.0.0:4599'\n").unwrap();
        let e = load_iam(Some(&p), &Default::default()).unwrap_err();
        assert!(e.0.iter().any(|m| m.contains(DEV_ACCESS_KEY_ID)), "{e}");
        std::fs::write(&p, "[server]\nlisten = '127.0.0.1:4599'\n").unwrap();
        assert!(load_iam(Some(&p), &Default::default()).is_ok());
    }

    #[test]
    fn example_config_loads() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("hsm-config/kms.toml");
        let c = load(Some(&p), Vec::new()).unwrap();
        assert_eq!(c.iam.credentials.len(), 1);
        assert!(!c.dev_credential);
    }

    #[test]
    fn unknown_keys_and_bad_principals_fail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "[server]\nlisten='127.0.0.1:1'\nbogus=1\n[[credentials]]\naccess_key_id='AKIA0000000000000001'\nsecret_access_key='x'\nprincipal='bob'\n",
        )
        .unwrap();
        let e = load(Some(&p), Vec::new()).unwrap_err();
        assert!(e.0.iter().any(|m| m.contains("bogus")), "{e}");
        std::fs::write(
            &p,
            "[[credentials]]\naccess_key_id='AKIA0000000000000001'\nsecret_access_key='x'\nprincipal='bob'\n",
        )
        .unwrap();
        let e = load(Some(&p), Vec::new()).unwrap_err();
        assert!(e.0.iter().any(|m| m.contains("principal")), "{e}");
    }

    #[test]
    fn cluster_request_quota_defaults_to_aws_and_is_configurable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        let anchor = dir.path().join("ca.crt");
        std::fs::write(
            &anchor,
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        // Any existing file stands in for the PKCS#11 module (it is not loaded here).
        let cluster = |extra: &str| {
            format!(
                "[[clusters]]\nid = 'cluster-1a23b4cdefg'\naccount = '111122223333'\ntrust_anchor_file = '{}'\n{extra}\n\
                 [[clusters.members]]\nname = 'a'\nmodule = '{}'\ntoken_label = 'a'\n",
                anchor.display(),
                anchor.display()
            )
        };
        std::fs::write(&p, cluster("")).unwrap();
        let c = load(Some(&p), Vec::new()).unwrap();
        assert_eq!(c.clusters[0].requests_per_second, 1800);
        std::fs::write(&p, cluster("requests_per_second = 5")).unwrap();
        let c = load(Some(&p), Vec::new()).unwrap();
        assert_eq!(c.clusters[0].requests_per_second, 5);
        assert_eq!(c.clusters[0].account, "111122223333");
        std::fs::write(&p, cluster("requests_per_second = 0")).unwrap();
        let e = load(Some(&p), Vec::new()).unwrap_err();
        assert!(e.0.iter().any(|m| m.contains("requests_per_second")), "{e}");
    }

    #[test]
    fn hsm_threads_follow_the_profiles_and_can_be_set() {
        // No HSM: no HSM threads.
        assert_eq!(load(None, Vec::new()).unwrap().hsm_threads(), None);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        let anchor = dir.path().join("ca.crt");
        std::fs::write(
            &anchor,
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let network = dir.path().join("network.toml");
        std::fs::write(
            &network,
            std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("hsm-config/profiles/softhsm2.toml"),
            )
            .unwrap()
            .replace("in_process = true", "in_process = false"),
        )
        .unwrap();
        let cfg = |profile: &str, server: &str| {
            format!(
                "[server]\n{server}\n[[clusters]]\nid = 'cluster-1a23b4cdefg'\naccount = '111122223333'\n\
                 trust_anchor_file = '{}'\nprofile = '{profile}'\nsessions = 3\n\
                 [[clusters.members]]\nname = 'a'\nmodule = '{}'\ntoken_label = 'a'\n\
                 [[clusters.members]]\nname = 'b'\nmodule = '{}'\ntoken_label = 'b'\n",
                anchor.display(),
                anchor.display(),
                anchor.display()
            )
        };
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        // No HSM: one async worker per CPU.
        assert_eq!(load(None, Vec::new()).unwrap().async_threads(), cpus);
        // In-process module: 2 members x 3 sessions, capped at the CPU count; the async
        // workers leave half of those threads' cores to them.
        std::fs::write(&p, cfg("softhsm2", "")).unwrap();
        let c = load(Some(&p), Vec::new()).unwrap();
        assert_eq!(c.hsm_threads(), Some(6.min(cpus)));
        assert_eq!(c.async_threads(), (cpus - 6.min(cpus) / 2).max(1));
        // A device: twice its 6 sessions; they wait on the network, not on our cores.
        std::fs::write(&p, cfg(&network.display().to_string(), "")).unwrap();
        let c = load(Some(&p), Vec::new()).unwrap();
        assert_eq!(c.hsm_threads(), Some(12));
        assert_eq!(c.async_threads(), cpus);
        // Set explicitly; out of range is reported.
        std::fs::write(&p, cfg("softhsm2", "hsm_threads = 5\nasync_threads = 3")).unwrap();
        let c = load(Some(&p), Vec::new()).unwrap();
        assert_eq!((c.hsm_threads(), c.async_threads()), (Some(5), 3));
        for bad in [
            "hsm_threads = 0",
            "async_threads = 0",
            "async_threads = 2000",
        ] {
            std::fs::write(&p, cfg("softhsm2", bad)).unwrap();
            let e = load(Some(&p), Vec::new()).unwrap_err();
            let field = bad.split(' ').next().unwrap();
            assert!(e.0.iter().any(|m| m.contains(field)), "{e}");
        }
    }
}
