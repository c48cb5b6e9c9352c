//! The proxy on the shared listener (`serve`): HTTP/1.1 keep-alive over TCP or TLS (the TLS
//! configuration is read per connection, so certificate reloads apply to new connections), a
//! bound on open connections, handshake, header and body timeouts, graceful shutdown. What is
//! the proxy's here: [`PeerInfo`] (the peer address and the mTLS subject CN, worked out once per
//! connection) for the request log, the connection metrics, and the handshake-failure log line.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use prometheus::{IntCounterVec, IntGauge};
use tokio::net::TcpListener;

use crate::api::PeerInfo;
use crate::tls::{subject_common_names, TlsHolder};

/// Listener settings.
#[derive(Clone)]
pub struct ServeOptions {
    pub tls: Option<Arc<TlsHolder>>,
    pub max_connections: usize,
    pub grace: Duration,
    /// Open connections (gauge) and connections rejected by reason (counter).
    pub metrics: Option<(IntGauge, IntCounterVec)>,
}

/// Connection metrics and the log line for failed handshakes (at info, as operators of an mTLS
/// endpoint want to see rejected clients).
struct Events {
    metrics: Option<(IntGauge, IntCounterVec)>,
}

impl serve::Observer for Events {
    fn opened(&self, _: SocketAddr) {
        if let Some((open, _)) = &self.metrics {
            open.inc();
        }
    }

    fn closed(&self, _: SocketAddr) {
        if let Some((open, _)) = &self.metrics {
            open.dec();
        }
    }

    fn rejected(&self, peer: SocketAddr, why: serve::Rejection<'_>) {
        match why {
            serve::Rejection::TlsHandshakeFailed(e) => {
                tracing::info!(%peer, error = %e, "TLS handshake failed");
            }
            serve::Rejection::TlsHandshakeTimeout => {
                tracing::info!(%peer, "TLS handshake timed out");
            }
            _ => {}
        }
        if let Some((_, rejected)) = &self.metrics {
            rejected.with_label_values(&[why.as_str()]).inc();
        }
    }
}

fn peer_info(c: &serve::Connection<'_>) -> PeerInfo {
    PeerInfo {
        addr: c.peer_addr(),
        client_cn: c
            .client_certificate()
            .and_then(|cert| subject_common_names(cert.as_ref()).into_iter().next()),
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains (see `serve`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let config = serve::ServeConfig {
        max_connections: opts.max_connections,
        shutdown_grace: opts.grace,
        ..serve::ServeConfig::default()
    };
    serve::Server::new(listener, router)
        .config(config)
        .tls(opts.tls.map(|t| t.listener()))
        .observer(Arc::new(Events {
            metrics: opts.metrics,
        }))
        .peer_data(peer_info)
        .run(shutdown)
        .await;
}
