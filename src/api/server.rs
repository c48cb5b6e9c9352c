//! The KMS API listener: the shared listener (`serve`) with the `[server]` settings (TLS files,
//! connection cap, timeouts, shutdown grace) and the connection metrics. Everything else about
//! connections (TLS handshake, keep-alive, timeouts, draining) is `serve`'s; handlers get the
//! peer's address and whether the connection is TLS as [`super::Peer`].

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use prometheus::{IntCounterVec, IntGauge};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::metrics::Metrics;

/// The listener for `router` as `config` says: HTTPS when `server.tls_cert`/`tls_key` are set
/// (TLS 1.3 and 1.2, rustls' default suites), plain HTTP otherwise; connection events counted
/// in `metrics`. Fails only when the TLS files cannot be used.
pub fn listener(
    tcp: TcpListener,
    router: Router,
    config: &Config,
    metrics: &Metrics,
) -> Result<serve::Server<super::Peer>, serve::TlsError> {
    let tls = match &config.tls {
        None => None,
        Some((cert, key)) => Some(Arc::new(serve::Tls::from_files(
            cert,
            key,
            &serve::TlsOptions::default(),
        )?)),
    };
    Ok(serve::Server::new(tcp, router)
        .config(config.listener.clone())
        .tls(tls)
        .observer(Arc::new(ConnectionMetrics {
            open: metrics.open_connections.clone(),
            rejected: metrics.connections_rejected.clone(),
        }))
        .peer_data(|c| super::Peer {
            addr: c.peer_addr(),
            secure: c.tls().is_some(),
        }))
}

/// `kms_open_connections` and `kms_connections_rejected_total{reason}`.
struct ConnectionMetrics {
    open: IntGauge,
    rejected: IntCounterVec,
}

impl serve::Observer for ConnectionMetrics {
    fn opened(&self, _: SocketAddr) {
        self.open.inc();
    }

    fn closed(&self, _: SocketAddr) {
        self.open.dec();
    }

    fn rejected(&self, _: SocketAddr, why: serve::Rejection<'_>) {
        self.rejected.with_label_values(&[why.as_str()]).inc();
    }
}
