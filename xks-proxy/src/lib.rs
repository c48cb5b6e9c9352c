//! `xks-proxy`: an AWS KMS External Key Store (XKS) Proxy API v1 server in front of key
//! managers reached through PKCS#11.
//!
//! # Layout
//! - [`config`]: the TOML file (and credential files) -> validated [`config::Config`]; every
//!   problem reported at once.
//! - [`state`]: the shared [`state::AppState`]; the reloadable part (keystores, keys) is
//!   swapped atomically by [`reload`].
//! - [`api`]: the HTTP edge: routing, SigV4, validation, authorization, the four operations,
//!   request logs and metrics. [`router`] builds the axum router.
//! - [`error`]: the one mapping of failures to `{"errorName","errorMessage"}` + HTTP status.
//! - [`hsm`]: PKCS#11 instances and external keys on the shared driver
//!   (`hsm`); all blocking.
//! - [`pool`]: the bounded HSM pool (semaphore + dedicated threads, deadlines).
//! - [`health`]: background deep probes, cached for GetHealthStatus.
//! - [`authz`]: optional secondary authorization rules per keystore.
//! - [`ratelimit`]: optional per-keystore token bucket.
//! - [`tls`]: rustls server configuration, mTLS subject check, certificate reload.
//! - [`metrics`]: Prometheus metrics on a separate listener.
//! - [`server`]: the proxy on the shared listener (`serve`): peer info, connection metrics.
//!
//! Wire types are shared with the KMS's XKS client: `xks_wire`. SigV4 is `sigv4`.

#![forbid(unsafe_code)]

pub mod api;
pub mod authz;
pub mod config;
pub mod error;
pub mod health;
pub mod hsm;
pub mod key;
pub mod metrics;
pub mod pool;
pub mod ratelimit;
pub mod reload;
pub mod server;
pub mod state;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

pub use api::router;
pub use config::Config;
pub use state::AppState;

/// A running proxy (API listener, metrics listener, health and reload loops).
pub struct RunningProxy {
    pub state: Arc<AppState>,
    /// The API listener's address.
    pub addr: SocketAddr,
    /// The metrics listener's address, if configured.
    pub metrics_addr: Option<SocketAddr>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningProxy {
    /// `https://addr` or `http://addr`.
    pub fn endpoint(&self) -> String {
        let scheme = if self.state.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// Stops accepting, drains requests in flight (grace period), stops the loops.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// The tokio runtime the proxy is meant to run on: multi-threaded, `[server] async_threads`
/// workers, with the blocking-thread cap set to `[pool] threads` (see [`pool`]). Tests and embedders may use any runtime; the
/// semaphore still bounds HSM calls, only the thread reuse differs.
pub fn runtime_builder(config: &Config) -> tokio::runtime::Builder {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all()
        .worker_threads(config.server.async_threads.max(1))
        .thread_name("xks-proxy")
        // HSM calls have their own threads (crate::pool); these serve start-up, reloads and
        // health probes.
        .max_blocking_threads(config.pool.threads.clamp(1, 8));
    b
}

/// Connects the HSMs, probes their health once, binds the listeners and starts serving.
pub async fn start(config: Config) -> Result<RunningProxy, String> {
    let cfg = config.clone();
    let state = tokio::task::spawn_blocking(move || AppState::build(&cfg))
        .await
        .map_err(|e| format!("start-up task failed: {e}"))??;
    state.health.check_all().await;
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.server.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("listener address: {e}"))?;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    let mut metrics_addr = None;
    if let Some(listen) = config.metrics_listen {
        let ml = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen} (metrics): {e}"))?;
        metrics_addr = ml.local_addr().ok();
        let router = metrics_router(state.clone());
        let mut rx = stop_rx.clone();
        tasks.push(tokio::spawn(server::serve(
            ml,
            router,
            server::ServeOptions {
                tls: None,
                max_connections: 64,
                grace: std::time::Duration::from_secs(1),
                metrics: None,
            },
            async move {
                let _ = rx.changed().await;
            },
        )));
    }
    tasks.push(state.health.clone().spawn(stop_rx.clone()));
    if config.path.is_some() {
        tasks.push(reload::spawn(
            state.clone(),
            config.reload_interval,
            stop_rx.clone(),
        ));
    }
    let mut rx = stop_rx.clone();
    tasks.push(tokio::spawn(server::serve(
        listener,
        router(state.clone()),
        server::ServeOptions {
            tls: state.tls.clone(),
            max_connections: config.server.max_connections,
            grace: config.server.shutdown_grace,
            metrics: Some((
                state.metrics.connections.clone(),
                state.metrics.connections_rejected.clone(),
            )),
        },
        async move {
            let _ = rx.changed().await;
        },
    )));
    Ok(RunningProxy {
        state,
        addr,
        metrics_addr,
        stop,
        tasks,
    })
}

/// `GET /metrics` (Prometheus text format) and `GET /healthz` on the metrics listener.
pub fn metrics_router(state: Arc<AppState>) -> axum::Router {
    use axum::extract::State;
    use axum::routing::get;
    axum::Router::new()
        .route(
            "/metrics",
            get(|State(s): State<Arc<AppState>>| async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    s.metrics.render(&s),
                )
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state)
}
