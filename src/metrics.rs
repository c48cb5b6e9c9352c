//! Prometheus metrics of the KMS: requests by operation and outcome with latency, and for
//! external key stores the proxy latency, proxy errors by type, the external key manager states
//! last reported by GetHealthStatus, days until the proxy's TLS certificate expires, and the age
//! of the proxy credential; open and rejected connections of the API listener. Served as text on
//! a separate listener (`server.metrics_listen`).

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// The metric families, registered in their own registry (no globals).
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub xks_seconds: HistogramVec,
    pub xks_errors: IntCounterVec,
    pub xks_ekm_state: GaugeVec,
    pub xks_cert_days_left: GaugeVec,
    pub xks_credential_age_days: GaugeVec,
    /// Open connections of the API listener.
    pub open_connections: IntGauge,
    /// API connections closed before carrying a request, by reason (`serve::Rejection`).
    pub connections_rejected: IntCounterVec,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
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
            &["custom_key_store_id", "operation"],
        )?;
        let xks_errors = IntCounterVec::new(
            Opts::new(
                "kms_xks_proxy_errors_total",
                "Failed calls to external key store proxies by error type",
            ),
            &["custom_key_store_id", "error_type"],
        )?;
        let xks_ekm_state = GaugeVec::new(
            Opts::new(
                "kms_xks_external_key_manager_state",
                "1 for the state each external key manager instance last reported (ACTIVE, DEGRADED, UNAVAILABLE)",
            ),
            &["custom_key_store_id", "ekm_id", "state"],
        )?;
        let xks_cert_days_left = GaugeVec::new(
            Opts::new(
                "kms_xks_proxy_certificate_days_left",
                "Days until the proxy's TLS certificate expires",
            ),
            &["custom_key_store_id"],
        )?;
        let xks_credential_age_days = GaugeVec::new(
            Opts::new(
                "kms_xks_proxy_credential_age_days",
                "Days since the proxy credential was associated with the store",
            ),
            &["custom_key_store_id"],
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
        registry.register(Box::new(connections_rejected.clone()))?;
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
        })
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
