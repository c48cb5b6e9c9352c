//! The listener loop: HTTP/1.1 keep-alive over TCP or rustls TLS (the TLS configuration is
//! taken per connection, so certificate reloads apply to new connections), a bound on open
//! connections, handshake and header timeouts, the peer address and mTLS subject handed to
//! handlers, and graceful shutdown: stop accepting, let requests in flight finish, close idle
//! connections, give up after the grace period.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::api::PeerInfo;
use crate::tls::{subject_common_names, TlsHolder};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Listener settings.
#[derive(Clone)]
pub struct ServeOptions {
    pub tls: Option<Arc<TlsHolder>>,
    pub max_connections: usize,
    pub grace: Duration,
    /// Incremented/decremented with open connections (metrics).
    pub connections: Option<prometheus::IntGauge>,
}

async fn serve_conn<S>(
    io: S,
    router: Router,
    peer: PeerInfo,
    mut stop: tokio::sync::watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = router.map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(peer.clone());
        req.map(axum::body::Body::new)
    });
    let svc = TowerToHyperService::new(svc);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains (see module docs).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let max = opts.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max));
    let mut accept_stop = stop_rx.clone();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = accept_stop.changed() => break,
        };
        let (stream, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = accept_stop.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let tls = opts.tls.clone();
        let stop = stop_rx.clone();
        let gauge = opts.connections.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Some(g) = &gauge {
                g.inc();
            }
            match tls {
                None => {
                    let peer = PeerInfo {
                        addr,
                        client_cn: None,
                    };
                    serve_conn(stream, router, peer, stop).await;
                }
                Some(holder) => {
                    let acceptor = holder.acceptor();
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            let client_cn = tls_stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .and_then(|c| subject_common_names(c.as_ref()).into_iter().next());
                            let peer = PeerInfo { addr, client_cn };
                            serve_conn(tls_stream, router, peer, stop).await;
                        }
                        Ok(Err(e)) => {
                            tracing::info!(peer = %addr, error = %e, "TLS handshake failed");
                        }
                        Err(_) => {
                            tracing::info!(peer = %addr, "TLS handshake timed out");
                        }
                    }
                }
            }
            if let Some(g) = &gauge {
                g.dec();
            }
        });
    }
    drop(listener);
    // Wait for open connections to finish (each holds a slot), at most the grace period.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    match tokio::time::timeout(opts.grace, slots.clone().acquire_many_owned(all)).await {
        Ok(_) => tracing::info!("all connections closed"),
        Err(_) => tracing::warn!(
            grace_secs = opts.grace.as_secs(),
            "connections still open after the grace period"
        ),
    }
}
