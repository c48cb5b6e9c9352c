//! Assembly: turns a validated [`Config`] into the shared [`AppState`] (store, backend, audit
//! sink, service, authenticator). No globals: tests build their own with their own clock.

use std::sync::Arc;

use crate::api::auth::Authenticator;
use crate::api::AppState;
use crate::audit::{AuditSink, FileAuditSink};
use crate::backend::pkcs11::root::Pkcs11Root;
use crate::backend::software::SoftwareRoot;
use crate::backend::CryptoBackend;
use crate::config::{Config, RootConfig};
use crate::service::clock::Clock;
use crate::service::custom_key_stores::Connections;
use crate::service::Kms;
use crate::store::MetadataStore;
use hsm::Token;

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("metadata store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("root key: {0}")]
    Root(#[from] crate::backend::software::RootKeyError),
    #[error("PKCS#11 root: {0}")]
    Pkcs11(#[from] hsm::Pkcs11Error),
    #[error("metrics: {0}")]
    Metrics(String),
    #[error("XKS client TLS settings: {0}")]
    XksTls(String),
    #[error("HSM threads: {0}")]
    Threads(std::io::Error),
    #[error("HSM threads: none configured for the PKCS#11 root")]
    NoHsmThreads,
    #[error("{0}")]
    Seed(#[from] crate::service::seed::SeedError),
    #[error("{0}")]
    RootMismatch(#[from] crate::service::root_check::RootCheckError),
    #[error("audit log {path}: {source}")]
    Audit {
        path: String,
        source: std::io::Error,
    },
}

/// The assembled application.
pub struct App {
    pub state: Arc<AppState>,
    /// True when the software root key was created by this start.
    pub root_created: bool,
}

/// Builds the application from a configuration and a clock (in a tokio runtime: custom key
/// stores that were connected are reconnected, or on a shared database attached, before it
/// returns).
pub async fn build(config: &Config, clock: Arc<dyn Clock>) -> Result<App, StartError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700));
    }
    let store: Arc<dyn MetadataStore> =
        crate::store::open_with_cache(&config.store, config.metadata_cache_entries).await?;
    // The HSM threads: every PKCS#11 call of the root and of the clusters runs there.
    let threads = match config.hsm_threads() {
        None => None,
        Some(n) => Some(Arc::new(
            hsm::threads::BlockingPool::new("hsm", n).map_err(StartError::Threads)?,
        )),
    };
    let (root, root_created): (Arc<dyn CryptoBackend>, bool) = match &config.root {
        RootConfig::Software { key_file } => {
            let (root, created) = SoftwareRoot::open_or_create(key_file)?;
            (
                Arc::new(root.with_cache_entries(config.key_cache_entries)),
                created,
            )
        }
        RootConfig::Pkcs11 {
            token,
            domain_key_label,
        } => {
            let threads = threads.clone().ok_or(StartError::NoHsmThreads)?;
            let token = Token::open(token.clone())?;
            let root = Pkcs11Root::open(token, domain_key_label, threads)?
                .with_cache_entries(config.key_cache_entries);
            (Arc::new(root), false)
        }
    };
    let audit: Arc<dyn AuditSink> = Arc::new(
        FileAuditSink::open(&config.audit_path)
            .map_err(|source| StartError::Audit {
                path: config.audit_path.display().to_string(),
                source,
            })?
            .durable(config.audit_durable),
    );
    let xks_tls = crate::backend::xks::XksTls::new(
        config.xks.ca_pem.as_deref(),
        match (&config.xks.client_cert_pem, &config.xks.client_key_pem) {
            (Some(c), Some(k)) => Some((c.as_slice(), k.as_slice())),
            _ => None,
        },
    )
    .map_err(StartError::XksTls)?;
    let mut xks = crate::service::xks::XksStores::new(Some(xks_tls));
    if let Some(t) = config.xks.timeout {
        xks = xks.with_timeout(t);
    }
    if let Some(rps) = config.xks.requests_per_second {
        xks = xks.with_requests_per_second(rps);
    }
    xks = xks
        .with_endpoint_policy(config.xks.endpoint_policy.clone())
        .with_probes_per_minute(config.xks.probes_per_minute);
    let connections = Connections::new(config.clusters.clone(), threads).with_xks(xks);
    let metrics = Arc::new(
        crate::metrics::Metrics::new(config.xks.metrics_per_store)
            .map_err(|e| StartError::Metrics(e.to_string()))?,
    );
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let iam = Arc::new(crate::iam::Iam::new(&config.iam).with_source(config.file.clone(), env));
    let service = Kms::new(
        store,
        root,
        audit,
        clock.clone(),
        config.regions.clone(),
        connections,
        metrics,
        iam.clone(),
        config.limits.clone(),
    );
    // A node whose root does not unwrap the database's material refuses to start.
    service.check_root().await?;
    // The role sessions' token key, loaded before serving: the authenticator is synchronous
    // and never waits on the database or the root. A root that cannot open it now fails the
    // same way on KMS requests; role sessions are refused until AssumeRole loads the key.
    if let Err(e) = service.sts().load_session_key().await {
        match e.cause() {
            Some(cause) => {
                tracing::error!(error = e.code(), %cause, "loading the session-token key failed")
            }
            None => tracing::error!(error = e.code(), "loading the session-token key failed"),
        }
    }
    if let Err(e) = service.custom_key_stores.warn_shared_clusters().await {
        tracing::warn!(error = e.code(), "listing custom key stores failed");
    }
    // Custom key stores: on a database other nodes share, attach the stores they connected
    // (never rotating a PIN) and follow their changes from now on; on a database of this node
    // alone, connect again the stores that were connected.
    let following = crate::service::store_sync::start(service.core()).await;
    if following.is_none() {
        if let Err(e) = service.custom_key_stores.reconnect_stores().await {
            match e.cause() {
                Some(cause) => {
                    tracing::warn!(error = e.code(), %cause, "reconnecting custom key stores failed")
                }
                None => tracing::warn!(error = e.code(), "reconnecting custom key stores failed"),
            }
        }
    }
    if let Some(path) = &config.seed_file {
        let seed = crate::service::seed::load(path)?;
        let account = config.iam.credentials.first().map(|c| c.account.as_str());
        let report = service.apply_seed(&seed, account).await?;
        tracing::info!(
            created = report.created,
            existing = report.existing,
            aliases = report.aliases,
            "seed file applied"
        );
    }
    let auth = Authenticator::new(iam, &config.region, config.max_clock_skew)
        .with_sts_max_skew(config.sts_max_clock_skew)
        .with_regions(&config.regions)
        .with_clock(clock);
    let state = Arc::new(AppState {
        service,
        auth,
        max_body_bytes: config.max_body_bytes,
        baseline_route: config.baseline_route,
        cors_allowed_origins: config.cors_allowed_origins.clone(),
        trusted_proxies: config.trusted_proxies.clone(),
    });
    Ok(App {
        state,
        root_created,
    })
}
