//! The shared application state: static settings, the HSM fleet, the blocking pool, health,
//! metrics, TLS, and the reloadable part (keystores with their credentials, rules and rate
//! limits; the key table). A request takes one snapshot of the reloadable part at its start,
//! so a reload never changes the rules under a request in flight.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use secrecy::SecretString;
use sigv4::SigningKeyCache;

use crate::authz::Policy;
use crate::config::{
    Config, CryptoConfig, DynamicConfig, Identity, Limits, ServerConfig, TlsConfig,
};
use crate::health::HealthMonitor;
use crate::hsm::HsmInstance;
use crate::key::KeyEntry;
use crate::metrics::Metrics;
use crate::pool::HsmExecutor;
use crate::ratelimit::RateLimiter;
use crate::tls::TlsHolder;

/// One keystore: a URI path prefix with its credentials and rules.
pub struct Keystore {
    pub prefix: String,
    pub region: String,
    credentials: HashMap<String, SecretString>,
    pub keys: Option<HashSet<String>>,
    pub policy: Option<Arc<Policy>>,
    pub limiter: Option<Arc<RateLimiter>>,
}

impl Keystore {
    /// The secret of an access key id.
    pub fn secret(&self, access_key_id: &str) -> Option<&SecretString> {
        self.credentials.get(access_key_id)
    }

    /// The configured access key ids (for logs and tests; never the secrets).
    pub fn access_key_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.credentials.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Whether this keystore may use the key.
    pub fn may_use(&self, key_id: &str) -> bool {
        self.keys.as_ref().is_none_or(|k| k.contains(key_id))
    }
}

/// The reloadable part.
pub struct Dynamic {
    pub keystores: HashMap<String, Arc<Keystore>>,
    pub keys: HashMap<String, Arc<KeyEntry>>,
}

impl Dynamic {
    fn build(
        cfg: &DynamicConfig,
        fleet: &[Arc<HsmInstance>],
        previous: Option<&Dynamic>,
    ) -> Result<Dynamic, String> {
        let mut keys = HashMap::new();
        for k in &cfg.keys {
            let mut hsms = Vec::with_capacity(k.hsms.len());
            for name in &k.hsms {
                let Some(hsm) = fleet.iter().find(|h| &h.name == name) else {
                    return Err(format!(
                        "key {} uses hsm '{name}', which is not connected (adding [[hsms]] needs a restart)",
                        k.id
                    ));
                };
                hsms.push(hsm.clone());
            }
            let entry = match previous.and_then(|p| p.keys.get(&k.id)) {
                Some(old) if old.is_placed(&k.label, &hsms) => {
                    if old.enabled == k.enabled {
                        old.clone()
                    } else {
                        Arc::new(old.with_enabled(k.enabled))
                    }
                }
                _ => Arc::new(KeyEntry::new(&k.id, &k.label, k.enabled, &hsms)),
            };
            keys.insert(k.id.clone(), entry);
        }
        let mut keystores = HashMap::new();
        for ks in &cfg.keystores {
            let limiter = ks.rate_limit.map(|(rate, burst)| {
                match previous
                    .and_then(|p| p.keystores.get(&ks.prefix))
                    .and_then(|old| old.limiter.clone())
                {
                    Some(l) if l.params() == (rate, burst) => l,
                    _ => Arc::new(RateLimiter::new(rate, burst)),
                }
            });
            keystores.insert(
                ks.prefix.clone(),
                Arc::new(Keystore {
                    prefix: ks.prefix.clone(),
                    region: ks.region.clone(),
                    credentials: ks
                        .credentials
                        .iter()
                        .map(|c| (c.access_key_id.clone(), c.secret.clone()))
                        .collect(),
                    keys: ks.keys.clone(),
                    policy: ks.authorization.clone(),
                    limiter,
                }),
            );
        }
        Ok(Dynamic { keystores, keys })
    }
}

/// Everything a request handler needs.
pub struct AppState {
    pub server: ServerConfig,
    pub limits: Limits,
    pub crypto: CryptoConfig,
    pub identity: Identity,
    pub fleet: Vec<Arc<HsmInstance>>,
    pub executor: HsmExecutor,
    pub health: Arc<HealthMonitor>,
    pub metrics: Metrics,
    pub sigv4_cache: SigningKeyCache,
    pub tls: Option<Arc<TlsHolder>>,
    dynamic: RwLock<Arc<Dynamic>>,
    config_path: Option<PathBuf>,
    applied: Mutex<(Option<TlsConfig>, [u8; 32])>,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    Unchanged,
    Applied,
}

impl AppState {
    /// Connects every HSM, builds the key table and keystores, and looks every key up once
    /// (a key that is missing is logged, not fatal: GetKeyMetadata reports it). Blocking.
    pub fn build(config: &Config) -> Result<Arc<AppState>, String> {
        let mut fleet = Vec::new();
        for h in &config.hsms {
            let inst = HsmInstance::open(h).map_err(|e| {
                format!(
                    "HSM '{}' (token '{}' of {}): {e}",
                    h.name,
                    h.token.token_label,
                    h.token.module.display()
                )
            })?;
            tracing::info!(hsm = %h.name, model = %inst.model(), sessions = h.token.max_sessions, "HSM connected");
            fleet.push(inst);
        }
        let dynamic = Dynamic::build(&config.dynamic, &fleet, None)?;
        for k in dynamic.keys.values() {
            match k.warm_up() {
                Ok(info) => tracing::info!(
                    key = %k.id, hsms = %k.hsm_names(), label = %k.label, spec = %info.key_spec(),
                    usage = ?info.key_usage(), enabled = k.enabled, "external key found"
                ),
                Err(e) => {
                    tracing::warn!(key = %k.id, hsms = %k.hsm_names(), label = %k.label, error = %e, "external key not usable")
                }
            }
        }
        let tls = match &config.tls {
            Some(t) => Some(Arc::new(TlsHolder::new(t)?)),
            None => None,
        };
        let executor = HsmExecutor::new(&config.pool)?;
        let health = Arc::new(HealthMonitor::new(
            &fleet,
            config.health,
            config.pool.hsm_timeout,
        ));
        let metrics = Metrics::new().map_err(|e| format!("metrics: {e}"))?;
        Ok(Arc::new(AppState {
            server: config.server.clone(),
            limits: config.limits,
            crypto: config.crypto,
            identity: config.identity.clone(),
            fleet,
            executor,
            health,
            metrics,
            sigv4_cache: SigningKeyCache::new(),
            tls,
            dynamic: RwLock::new(Arc::new(dynamic)),
            config_path: config.path.clone(),
            applied: Mutex::new((config.tls.clone(), config.fingerprint)),
        }))
    }

    /// The current reloadable configuration.
    pub fn dynamic(&self) -> Arc<Dynamic> {
        self.dynamic.read().clone()
    }

    /// Applies the reloadable parts of `config` (keys, keystores, TLS files). Changes to other
    /// settings are ignored until a restart.
    pub fn apply(&self, config: &Config) -> Result<(), String> {
        let current = self.dynamic();
        let next = Dynamic::build(&config.dynamic, &self.fleet, Some(&current))?;
        if let (Some(holder), Some(tls)) = (&self.tls, &config.tls) {
            holder.reload(tls)?;
        }
        *self.dynamic.write() = Arc::new(next);
        *self.applied.lock() = (config.tls.clone(), config.fingerprint);
        Ok(())
    }

    /// Re-reads the configuration file (and the files it names) and applies it if anything
    /// changed. Blocking (file I/O). Requests in flight keep the snapshot they started with.
    pub fn reload(&self) -> Result<ReloadOutcome, String> {
        let Some(path) = &self.config_path else {
            return Ok(ReloadOutcome::Unchanged);
        };
        let result = crate::config::load(path)
            .map_err(|e| e.to_string())
            .and_then(|cfg| {
                let unchanged = self.applied.lock().1 == cfg.fingerprint;
                if unchanged {
                    return Ok(ReloadOutcome::Unchanged);
                }
                self.apply(&cfg)?;
                Ok(ReloadOutcome::Applied)
            });
        match &result {
            Ok(ReloadOutcome::Applied) => {
                self.metrics.reload("applied");
                let d = self.dynamic();
                let mut summary: Vec<String> = d
                    .keystores
                    .values()
                    .map(|k| format!("'{}': {:?}", k.prefix, k.access_key_ids()))
                    .collect();
                summary.sort();
                tracing::info!(keys = d.keys.len(), credentials = %summary.join(", "), "configuration reloaded");
            }
            Ok(ReloadOutcome::Unchanged) => self.metrics.reload("unchanged"),
            Err(e) => {
                self.metrics.reload("failed");
                tracing::error!(error = %e, "configuration reload failed; the previous configuration stays in effect");
            }
        }
        result
    }
}
