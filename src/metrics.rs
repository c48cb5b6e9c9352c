//! Prometheus metrics of the KMS: requests by operation and outcome with latency, and for
//! external key stores the proxy latency, proxy errors by type, the external key manager states
//! last reported by GetHealthStatus, days until the proxy's TLS certificate expires, and the age
//! of the proxy credential; open and rejected connections of the API listener. Served as text on
//! a separate listener (`server.metrics_listen`).
//!
//! Custom key store ids are tenants' identifiers: by default the external key store series are
//! aggregated over every store and name none (latency and errors summed, key manager instances
//! counted per state, the soonest certificate expiry, the oldest credential). With `[xks]
//! metrics_per_store = true` the operator asks for them, and each store has its own series,
//! labelled `custom_key_store_id` (key manager states also by `ekm_id`).
//!
//! Every label value is from a closed set or bounded: proxy error names map onto the XKS
//! specification's names plus `Other`, at most [`MAX_EKM_INSTANCES`] external key manager ids
//! of a checked shape are kept per store (the last probe's only), and a store's series are
//! removed when it is disconnected or deleted ([`Metrics::forget_xks_store`]). A tenant's proxy
//! cannot grow the registry.

use std::collections::HashMap;

use parking_lot::Mutex;

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The metric families, registered in their own registry (no globals).
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    xks_seconds: HistogramVec,
    xks_errors: IntCounterVec,
    /// Per store: 0/1 by store, `ekm_id` and state; aggregated: instances per state.
    xks_ekm_state: GaugeVec,
    xks_cert_days_left: GaugeVec,
    xks_credential_age_days: GaugeVec,
    /// Open connections of the API listener.
    pub open_connections: IntGauge,
    /// API connections closed before carrying a request, by reason (`serve::Rejection`).
    pub connections_rejected: IntCounterVec,
    /// Entries of the bounded caches, by cache (`root_key_versions`, `key_rows`, `grant_lists`),
    /// read when metrics are rendered.
    pub cache_entries: IntGaugeVec,
    /// Entries evicted for room from the metadata cache.
    pub metadata_cache_evictions: prometheus::IntCounter,
    /// Calls the metadata cache passed on to the store (reads it did not answer, writes).
    pub metadata_store_calls: prometheus::IntCounter,
    /// Failed attachments of custom key stores connected by another node, by code.
    store_attach_failures: IntCounterVec,
    /// Requests refused before authentication completed, by error code (they count against no
    /// account's request quota).
    pub authentication_failures: IntCounterVec,
    /// Series labelled with the custom key store id (`[xks] metrics_per_store`).
    per_store: bool,
    /// What each store last reported: the per-store series to replace and remove, and the
    /// inputs of the aggregates.
    stores: Mutex<HashMap<String, StoreReport>>,
}

/// The last values of one external key store.
#[derive(Default)]
struct StoreReport {
    /// Usable external key manager ids and their states (at most [`MAX_EKM_INSTANCES`]).
    ekm: Vec<(String, xks_wire::HealthStatus)>,
    cert_days_left: Option<f64>,
    credential_age_days: Option<f64>,
}

/// External key manager instances labelled per store (the XKS specification allows 1 to 10).
pub const MAX_EKM_INSTANCES: usize = 10;
/// Longest external key manager id used as a label value.
const MAX_EKM_ID_LEN: usize = 64;

/// The `error_type` values of `kms_xks_proxy_errors_total` besides the XKS error names.
pub const XKS_TRANSPORT_ERRORS: [&str; 6] = [
    "Timeout",
    "Unreachable",
    "TlsError",
    "InvalidResponse",
    "RefusedAddress",
    "Other",
];

/// The health states of `kms_xks_external_key_manager_state`.
const EKM_STATES: [xks_wire::HealthStatus; 3] = [
    xks_wire::HealthStatus::Active,
    xks_wire::HealthStatus::Degraded,
    xks_wire::HealthStatus::Unavailable,
];

/// Whether an external key manager id may become a label value: 1-64 characters of
/// `[A-Za-z0-9._:-]`.
fn usable_ekm_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_EKM_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

impl Metrics {
    /// The registry; `per_store` labels the external key store series with store ids.
    pub fn new(per_store: bool) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        // The store label, when the operator asked for it, before the family's own labels.
        let labels = |own: &[&'static str]| -> Vec<&'static str> {
            let store: &[&'static str] = if per_store {
                &["custom_key_store_id"]
            } else {
                &[]
            };
            store.iter().chain(own).copied().collect()
        };
        let requests = IntCounterVec::new(
            Opts::new(
                "kms_requests_total",
                "KMS API requests by operation and outcome (ok or the AWS error code)",
            ),
            &["operation", "outcome"],
        )?;
        let request_seconds = HistogramVec::new(
            HistogramOpts::new("kms_request_duration_seconds", "KMS API request latency")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["operation"],
        )?;
        let xks_seconds = HistogramVec::new(
            HistogramOpts::new(
                "kms_xks_proxy_request_duration_seconds",
                "Latency of calls to external key store proxies",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &labels(&["operation"]),
        )?;
        let xks_errors = IntCounterVec::new(
            Opts::new(
                "kms_xks_proxy_errors_total",
                "Failed calls to external key store proxies by error type",
            ),
            &labels(&["error_type"]),
        )?;
        let xks_ekm_state = if per_store {
            GaugeVec::new(
                Opts::new(
                    "kms_xks_external_key_manager_state",
                    "1 for the state each external key manager instance last reported (ACTIVE, DEGRADED, UNAVAILABLE)",
                ),
                &labels(&["ekm_id", "state"]),
            )?
        } else {
            GaugeVec::new(
                Opts::new(
                    "kms_xks_external_key_managers",
                    "External key manager instances of every connected external key store by the state they last reported (ACTIVE, DEGRADED, UNAVAILABLE)",
                ),
                &["state"],
            )?
        };
        let (cert_help, age_help) = if per_store {
            (
                "Days until the proxy's TLS certificate expires",
                "Days since the proxy credential was associated with the store",
            )
        } else {
            (
                "Days until the first of the proxies' TLS certificates expires",
                "Days since the oldest proxy credential was associated with its store",
            )
        };
        let xks_cert_days_left = GaugeVec::new(
            Opts::new("kms_xks_proxy_certificate_days_left", cert_help),
            &labels(&[]),
        )?;
        let xks_credential_age_days = GaugeVec::new(
            Opts::new("kms_xks_proxy_credential_age_days", age_help),
            &labels(&[]),
        )?;
        let open_connections = IntGauge::new(
            "kms_open_connections",
            "Open connections of the API listener",
        )?;
        let connections_rejected = IntCounterVec::new(
            Opts::new(
                "kms_connections_rejected_total",
                "API connections closed before carrying a request or while idle at the cap, by \
                 reason (over_capacity, idle_evicted, tls_handshake_timeout, tls_handshake_failed)",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_seconds.clone()))?;
        registry.register(Box::new(xks_seconds.clone()))?;
        registry.register(Box::new(xks_errors.clone()))?;
        registry.register(Box::new(xks_ekm_state.clone()))?;
        registry.register(Box::new(xks_cert_days_left.clone()))?;
        registry.register(Box::new(xks_credential_age_days.clone()))?;
        registry.register(Box::new(open_connections.clone()))?;
        let cache_entries = IntGaugeVec::new(
            Opts::new(
                "kms_cache_entries",
                "Entries of the bounded caches: root_key_versions (unwrapped material; on the \
                 PKCS#11 root, session objects), key_rows, grant_lists",
            ),
            &["cache"],
        )?;
        let metadata_cache_evictions = prometheus::IntCounter::new(
            "kms_metadata_cache_evictions_total",
            "Key rows and grant lists evicted from the metadata cache for room",
        )?;
        registry.register(Box::new(connections_rejected.clone()))?;
        registry.register(Box::new(cache_entries.clone()))?;
        registry.register(Box::new(metadata_cache_evictions.clone()))?;
        let metadata_store_calls = prometheus::IntCounter::new(
            "kms_metadata_store_calls_total",
            "Calls the metadata cache passed on to the store: every read it did not answer, \
             and every write",
        )?;
        registry.register(Box::new(metadata_store_calls.clone()))?;
        let store_attach_failures = IntCounterVec::new(
            Opts::new(
                "kms_custom_key_store_attach_failures_total",
                "Failed attachments of custom key stores that another node connected, by \
                 connection error code (retried on the next reconcile)",
            ),
            &["code"],
        )?;
        registry.register(Box::new(store_attach_failures.clone()))?;
        let authentication_failures = IntCounterVec::new(
            Opts::new(
                "kms_authentication_failures_total",
                "Requests refused because their signature, access key or security token did \
                 not authenticate, by error code (no account's request quota counts them)",
            ),
            &["code"],
        )?;
        registry.register(Box::new(authentication_failures.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            request_seconds,
            xks_seconds,
            xks_errors,
            xks_ekm_state,
            xks_cert_days_left,
            xks_credential_age_days,
            open_connections,
            connections_rejected,
            cache_entries,
            metadata_cache_evictions,
            metadata_store_calls,
            store_attach_failures,
            authentication_failures,
            per_store,
            stores: Mutex::default(),
        })
    }

    /// Counts a failed attachment of a custom key store connected by another node.
    pub fn count_attach_failure(&self, code: &str) {
        self.store_attach_failures.with_label_values(&[code]).inc();
    }

    /// The label values of a store's series: its id only when the operator asked for ids.
    fn with_store<'a>(&self, store_id: &'a str, own: &[&'a str]) -> Vec<&'a str> {
        let store: &[&'a str] = if self.per_store { &[store_id] } else { &[] };
        store.iter().chain(own).copied().collect()
    }

    /// Records the latency of one call to a store's proxy.
    pub fn observe_xks_call(&self, store_id: &str, operation: &str, seconds: f64) {
        self.xks_seconds
            .with_label_values(&self.with_store(store_id, &[operation]))
            .observe(seconds);
    }

    /// Counts a failed call to a store's proxy (`kind`: [`XKS_TRANSPORT_ERRORS`] or an XKS
    /// error name).
    pub fn count_xks_error(&self, store_id: &str, kind: &str) {
        self.xks_errors
            .with_label_values(&self.with_store(store_id, &[kind]))
            .inc();
    }

    /// Records the days until a store's proxy certificate expires.
    pub fn set_cert_days_left(&self, store_id: &str, days: f64) {
        let mut stores = self.stores.lock();
        stores
            .entry(store_id.to_string())
            .or_default()
            .cert_days_left = Some(days);
        self.publish_gauges(store_id, &stores);
    }

    /// Records the age of a store's proxy credential in days.
    pub fn set_credential_age_days(&self, store_id: &str, days: f64) {
        let mut stores = self.stores.lock();
        stores
            .entry(store_id.to_string())
            .or_default()
            .credential_age_days = Some(days);
        self.publish_gauges(store_id, &stores);
    }

    /// Sets the certificate and credential gauges: the store's own, or the aggregates (the
    /// soonest expiry, the oldest credential) over every store.
    fn publish_gauges(&self, store_id: &str, stores: &HashMap<String, StoreReport>) {
        let pick = |get: fn(&StoreReport) -> Option<f64>, first: fn(f64, f64) -> f64| {
            if self.per_store {
                stores.get(store_id).and_then(get)
            } else {
                stores.values().filter_map(get).reduce(first)
            }
        };
        let values = self.with_store(store_id, &[]);
        for (gauge, value) in [
            (
                &self.xks_cert_days_left,
                pick(|r| r.cert_days_left, f64::min),
            ),
            (
                &self.xks_credential_age_days,
                pick(|r| r.credential_age_days, f64::max),
            ),
        ] {
            match value {
                Some(v) => gauge.with_label_values(&values).set(v),
                None => {
                    let _ = gauge.remove_label_values(&values);
                }
            }
        }
    }

    /// The aggregated key manager gauge: instances per state over every store.
    fn publish_ekm_counts(&self, stores: &HashMap<String, StoreReport>) {
        for state in EKM_STATES {
            let n = stores
                .values()
                .flat_map(|r| &r.ekm)
                .filter(|(_, s)| *s == state)
                .count();
            self.xks_ekm_state
                .with_label_values(&[state.as_str()])
                .set(n as f64);
        }
    }

    /// Records the external key manager states a store's proxy reported, replacing its previous
    /// report. Ids of another shape, repeated ids and instances beyond [`MAX_EKM_INSTANCES`] are
    /// left out; returns how many were.
    pub fn set_ekm_states(&self, store_id: &str, fleet: &[xks_wire::EkmFleetDetail]) -> usize {
        let mut kept: Vec<(String, xks_wire::HealthStatus)> = Vec::new();
        for d in fleet {
            if kept.len() < MAX_EKM_INSTANCES
                && usable_ekm_id(&d.id)
                && !kept.iter().any(|(id, _)| *id == d.id)
            {
                kept.push((d.id.clone(), d.health_status));
            }
        }
        let left_out = fleet.len() - kept.len();
        let mut stores = self.stores.lock();
        let report = stores.entry(store_id.to_string()).or_default();
        if self.per_store {
            for (old, _) in &report.ekm {
                if !kept.iter().any(|(id, _)| id == old) {
                    for state in EKM_STATES {
                        let _ = self.xks_ekm_state.remove_label_values(&[
                            store_id,
                            old,
                            state.as_str(),
                        ]);
                    }
                }
            }
            for (id, status) in &kept {
                for state in EKM_STATES {
                    let v = if *status == state { 1.0 } else { 0.0 };
                    self.xks_ekm_state
                        .with_label_values(&[store_id, id, state.as_str()])
                        .set(v);
                }
            }
            report.ekm = kept;
        } else {
            report.ekm = kept;
            self.publish_ekm_counts(&stores);
        }
        left_out
    }

    /// Removes every series of an external key store (on disconnect and deletion); without
    /// per-store series, its part of the aggregated gauges (counters keep what it added).
    pub fn forget_xks_store(&self, store_id: &str) {
        let mut stores = self.stores.lock();
        let report = stores.remove(store_id);
        if !self.per_store {
            self.publish_ekm_counts(&stores);
            self.publish_gauges(store_id, &stores);
            return;
        }
        for op in xks_wire::Operation::ALL {
            let _ = self
                .xks_seconds
                .remove_label_values(&[store_id, op.as_str()]);
        }
        let names = xks_wire::ErrorName::ALL.map(xks_wire::ErrorName::as_str);
        for kind in XKS_TRANSPORT_ERRORS.iter().chain(names.iter()) {
            let _ = self.xks_errors.remove_label_values(&[store_id, kind]);
        }
        for (id, _) in report.map(|r| r.ekm).unwrap_or_default() {
            for state in EKM_STATES {
                let _ = self
                    .xks_ekm_state
                    .remove_label_values(&[store_id, &id, state.as_str()]);
            }
        }
        let _ = self.xks_cert_days_left.remove_label_values(&[store_id]);
        let _ = self
            .xks_credential_age_days
            .remove_label_values(&[store_id]);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
