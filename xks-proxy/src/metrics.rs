//! Prometheus metrics, served on their own listener (`[metrics] listen`), never on the API
//! port: requests by operation and outcome, request latency, HSM call latency, blocking-pool
//! and session-pool use, health per HSM instance, configuration reloads, open and rejected
//! connections.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use xks_wire::Operation;

use crate::state::AppState;

/// Latency buckets in seconds: 100 µs .. 1 s (KMS gives up at 250 ms).
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.25, 0.5, 1.0,
];

/// The metric families.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pool: IntGaugeVec,
    sessions: IntGaugeVec,
    health: IntGaugeVec,
    reloads: IntCounterVec,
    copy_usable: IntGaugeVec,
    copy_failures: IntCounterVec,
    pub connections: IntGauge,
    /// Connections closed before carrying a request or while idle at the cap, by reason
    /// (`over_capacity`, `idle_evicted`, `tls_handshake_timeout`, `tls_handshake_failed`).
    pub connections_rejected: IntCounterVec,
    /// Per operation (in [`Operation::ALL`] order): the ok counter, the request and the HSM
    /// latency histograms, resolved once (the hot path does no label lookups).
    hot: Vec<(Operation, IntCounter, Histogram, Histogram)>,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> T {
    if let Err(e) = r.register(Box::new(c.clone())) {
        tracing::warn!(error = %e, "metric registration failed");
    }
    c
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let requests = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "xks_requests_total",
                    "XKS API requests by operation and outcome (ok or the errorName)",
                ),
                &["operation", "outcome"],
            )?,
        );
        let latency = register(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "xks_request_duration_seconds",
                    "Time from request start to response, by operation",
                )
                .buckets(BUCKETS.to_vec()),
                &["operation"],
            )?,
        );
        let hsm_latency = register(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "xks_hsm_call_duration_seconds",
                    "Time spent in the blocking HSM pool (queueing included), by operation",
                )
                .buckets(BUCKETS.to_vec()),
                &["operation"],
            )?,
        );
        let pool = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "xks_hsm_pool_calls",
                    "Blocking HSM pool: calls admitted (running or queued) and the maximum",
                ),
                &["state"],
            )?,
        );
        let sessions = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "xks_hsm_sessions",
                    "PKCS#11 session pool per HSM: in use, open, maximum",
                ),
                &["hsm", "state"],
            )?,
        );
        let health = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "xks_hsm_health",
                    "1 for the current health status of each HSM (ACTIVE, DEGRADED, UNAVAILABLE)",
                ),
                &["hsm", "status"],
            )?,
        );
        let reloads = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "xks_config_reloads_total",
                    "Configuration reloads by result (applied, unchanged, failed)",
                ),
                &["result"],
            )?,
        );
        let copy_usable = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "xks_key_copy_usable",
                    "Per external key and HSM: 1 if the copy may serve, 0 if it holds different \
                     key material than the key's reference copy",
                ),
                &["key", "hsm"],
            )?,
        );
        let copy_failures = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "xks_key_copy_failures_total",
                    "Requests that failed on a copy of an external key and were tried on the \
                     key's other copies (keys on several HSMs)",
                ),
                &["key", "hsm"],
            )?,
        );
        let connections = register(
            &registry,
            IntGauge::new("xks_open_connections", "Open client connections")?,
        );
        let connections_rejected = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "xks_connections_rejected_total",
                    "Connections closed before carrying a request or while idle at the cap, by \
                     reason (over_capacity, idle_evicted, tls_handshake_timeout, \
                     tls_handshake_failed)",
                ),
                &["reason"],
            )?,
        );
        let mut hot = Vec::new();
        for op in Operation::ALL {
            let name = op.as_str();
            hot.push((
                op,
                requests.get_metric_with_label_values(&[name, "ok"])?,
                latency.get_metric_with_label_values(&[name])?,
                hsm_latency.get_metric_with_label_values(&[name])?,
            ));
        }
        Ok(Metrics {
            hot,
            registry,
            requests,
            latency,
            pool,
            sessions,
            health,
            reloads,
            copy_usable,
            copy_failures,
            connections,
            connections_rejected,
        })
    }

    /// Counts one finished request.
    pub fn observe_request(&self, operation: &str, outcome: &str, seconds: f64) {
        if outcome == "ok" {
            if let Some((_, ok, lat, _)) = self.hot.iter().find(|h| h.0.as_str() == operation) {
                ok.inc();
                lat.observe(seconds);
                return;
            }
        }
        if let Ok(c) = self
            .requests
            .get_metric_with_label_values(&[operation, outcome])
        {
            c.inc();
        }
        if let Ok(h) = self.latency.get_metric_with_label_values(&[operation]) {
            h.observe(seconds);
        }
    }

    /// The HSM-latency histogram of an operation.
    pub fn hsm_histogram(&self, operation: Operation) -> Option<&Histogram> {
        self.hot.iter().find(|h| h.0 == operation).map(|h| &h.3)
    }

    pub fn reload(&self, result: &str) {
        if let Ok(c) = self.reloads.get_metric_with_label_values(&[result]) {
            c.inc();
        }
    }

    /// Refreshes the gauges from `state` and renders the text exposition format.
    pub fn render(&self, state: &AppState) -> String {
        let (in_use, capacity) = state.executor.usage();
        self.set(&self.pool, &["in_use"], in_use);
        self.set(&self.pool, &["capacity"], capacity);
        for hsm in &state.fleet {
            let (used, open, max) = hsm.session_use();
            self.set(&self.sessions, &[&hsm.name, "in_use"], used);
            self.set(&self.sessions, &[&hsm.name, "open"], open);
            self.set(&self.sessions, &[&hsm.name, "max"], max);
        }
        for (hsm, h) in state.health.snapshot() {
            for s in ["ACTIVE", "DEGRADED", "UNAVAILABLE"] {
                self.set(
                    &self.health,
                    &[&hsm.name, s],
                    usize::from(h.status.as_str() == s),
                );
            }
        }
        for key in state.dynamic().keys.values() {
            let copies = key.copies();
            if copies.len() < 2 {
                continue; // a key on one HSM has no copies to report (keeps the series few)
            }
            for copy in copies {
                self.set(
                    &self.copy_usable,
                    &[&key.id, &copy.hsm],
                    usize::from(copy.usable),
                );
                if let Ok(c) = self
                    .copy_failures
                    .get_metric_with_label_values(&[&key.id, &copy.hsm])
                {
                    // The entry counts since it was built (a reload can start it again).
                    c.inc_by(copy.failures.saturating_sub(c.get()));
                }
            }
        }
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    fn set(&self, g: &IntGaugeVec, labels: &[&str], v: usize) {
        if let Ok(g) = g.get_metric_with_label_values(labels) {
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
        }
    }
}
