//! Health of each HSM instance from a real probe (token present, session usable, an AES-GCM
//! round trip with a test key), run in the background every `[health] interval_secs` (at most
//! 60 s) and cached; GetHealthStatus only reads the cache.
//!
//! ACTIVE: the probe passed within `degraded_latency_ms`. DEGRADED: it passed, but slowly.
//! UNAVAILABLE: it failed, timed out, the previous probe is still hanging, or the cached result
//! is older than 60 s.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use std::time::{Duration, Instant};

use xks_wire::HealthStatus;

use crate::config::HealthConfig;
use crate::hsm::HsmInstance;

/// The longest a cached result may be used.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// The last probe result of one instance.
#[derive(Debug, Clone)]
pub struct HsmHealth {
    pub status: HealthStatus,
    pub checked_at: Instant,
    pub latency: Option<Duration>,
    pub detail: String,
}

struct Entry {
    hsm: Arc<HsmInstance>,
    state: RwLock<HsmHealth>,
    running: Arc<AtomicBool>,
}

/// The cache and the prober.
pub struct HealthMonitor {
    entries: Vec<Entry>,
    cfg: HealthConfig,
    probe_timeout: Duration,
}

impl HealthMonitor {
    pub fn new(hsms: &[Arc<HsmInstance>], cfg: HealthConfig, hsm_timeout: Duration) -> Self {
        HealthMonitor {
            entries: hsms
                .iter()
                .map(|h| Entry {
                    hsm: h.clone(),
                    state: RwLock::new(HsmHealth {
                        status: HealthStatus::Unavailable,
                        checked_at: Instant::now(),
                        latency: None,
                        detail: "not checked yet".into(),
                    }),
                    running: Arc::new(AtomicBool::new(false)),
                })
                .collect(),
            cfg,
            probe_timeout: (hsm_timeout * 2).max(Duration::from_secs(1)),
        }
    }

    /// Probes every instance now (concurrently) and updates the cache.
    pub async fn check_all(&self) {
        let mut jobs = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            if e.running.swap(true, Ordering::AcqRel) {
                self.set(
                    i,
                    HealthStatus::Unavailable,
                    None,
                    "the previous probe has not finished".into(),
                );
                continue;
            }
            let hsm = e.hsm.clone();
            let running = e.running.clone();
            let job = tokio::task::spawn_blocking(move || {
                let r = hsm.health_check();
                running.store(false, Ordering::Release);
                r
            });
            jobs.push((i, job));
        }
        for (i, job) in jobs {
            let (status, latency, detail) =
                match tokio::time::timeout(self.probe_timeout, job).await {
                    Ok(Ok(Ok(latency))) if latency <= self.cfg.degraded_latency => {
                        (HealthStatus::Active, Some(latency), "ok".to_string())
                    }
                    Ok(Ok(Ok(latency))) => (
                        HealthStatus::Degraded,
                        Some(latency),
                        format!(
                            "probe took {} ms (> {} ms)",
                            latency.as_millis(),
                            self.cfg.degraded_latency.as_millis()
                        ),
                    ),
                    Ok(Ok(Err(e))) => (HealthStatus::Unavailable, None, e.to_string()),
                    Ok(Err(e)) => (
                        HealthStatus::Unavailable,
                        None,
                        format!("probe failed: {e}"),
                    ),
                    Err(_) => (
                        HealthStatus::Unavailable,
                        None,
                        format!(
                            "probe did not finish within {} ms",
                            self.probe_timeout.as_millis()
                        ),
                    ),
                };
            self.set(i, status, latency, detail);
        }
    }

    fn set(&self, i: usize, status: HealthStatus, latency: Option<Duration>, detail: String) {
        let Some(e) = self.entries.get(i) else {
            return;
        };
        let mut s = e.state.write();
        if s.status != status {
            if status == HealthStatus::Active {
                tracing::info!(hsm = %e.hsm.name, status = status.as_str(), %detail, "HSM health changed");
            } else {
                tracing::warn!(hsm = %e.hsm.name, status = status.as_str(), %detail, "HSM health changed");
            }
        }
        *s = HsmHealth {
            status,
            checked_at: Instant::now(),
            latency,
            detail,
        };
    }

    /// The cached results, in configuration order; results older than [`MAX_AGE`] count as
    /// UNAVAILABLE.
    pub fn snapshot(&self) -> Vec<(Arc<HsmInstance>, HsmHealth)> {
        self.entries
            .iter()
            .map(|e| {
                let mut h = e.state.read().clone();
                if h.checked_at.elapsed() > MAX_AGE {
                    h.status = HealthStatus::Unavailable;
                    h.detail = "the last probe result is older than 60 s".into();
                }
                (e.hsm.clone(), h)
            })
            .collect()
    }

    /// Runs [`Self::check_all`] every interval until `stop` fires.
    pub fn spawn(
        self: Arc<Self>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(self.cfg.interval) => {}
                    _ = stop.changed() => return,
                }
                self.check_all().await;
            }
        })
    }
}
