//! The one HTTP/1.1 listener of both servers (`kms` and `xks-proxy`).
//!
//! What it owns, per connection: accepting it (when `max_connections` are open: closing the
//! longest-open *idle* connection to make room, or else the new one at once), `TCP_NODELAY`,
//! the TLS handshake within a deadline (rustls; configuration in [`tls`], replaceable while
//! running), HTTP/1.1 with keep-alive and a deadline for each
//! request's headers (which also ends idle keep-alive connections), a deadline for request
//! bodies ([`BodyTimeout`]), the peer handed to handlers as a request extension
//! (`axum::extract::ConnectInfo<SocketAddr>` by default, or what [`Server::peer_data`] makes of
//! the connection), and graceful shutdown: stop accepting, let requests in flight finish,
//! close idle connections, and close whatever is left when the grace period ends.
//! [`Observer`] tells the server about connections opened, closed and rejected (metrics, logs).
//! [`forwarded`]: the client address behind trusted reverse proxies (`X-Forwarded-For`).
//!
//! What it refuses to do: HTTP/2, routing, authentication, request limits other than time
//! (body sizes are the handlers' business), and any policy about which TLS clients may connect
//! beyond what the [`tls::TlsOptions`] it is given say. It never logs request contents.
//!
//! ```no_run
//! # async fn example(router: axum::Router) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let drained = serve::Server::new(listener, router)
//!     .config(serve::ServeConfig::default())
//!     .run(async { let _ = tokio::signal::ctrl_c().await; })
//!     .await;
//! println!("{} connection(s) closed at the end of the grace period", drained.forced);
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod body;
pub mod forwarded;
pub mod tls;

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};
use tower::ServiceExt;

pub use body::{is_body_timeout, BodyTimeout};
pub use forwarded::{Network, TrustedProxies};
pub use tls::{Tls, TlsError, TlsOptions};

/// Listener settings. The defaults suit a public API port; servers expose them as settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    /// Open connections at most (TLS handshakes included). When a connection arrives with this
    /// many open, the longest-open connection without a request in flight (idle between
    /// requests, or still in its TLS handshake or request headers) is closed to make room
    /// ([`Rejection::IdleEvicted`]); when every open connection is busy the new one is closed
    /// at once ([`Rejection::OverCapacity`]). So idle or half-open connections cannot lock
    /// clients out, and the excess never costs more than an accept and a close. Default:
    /// 4096. 0 counts as 1.
    pub max_connections: usize,
    /// Time for a TLS client to complete its handshake, from the accept. Default: 10 s.
    pub tls_handshake_timeout: Duration,
    /// Time for a client to send a request's complete headers, from the end of the handshake
    /// or of the previous response; so it also closes keep-alive connections left idle this
    /// long. Default: 30 s.
    pub header_read_timeout: Duration,
    /// Once a handler has to wait for request body bytes, time for the rest of the body to
    /// arrive (see [`BodyTimeout`]). Default: 30 s.
    pub body_read_timeout: Duration,
    /// HTTP/1.1 keep-alive. Default: true.
    pub keep_alive: bool,
    /// After shutdown is requested, time for requests in flight to finish; connections still
    /// open then are closed. Default: 10 s.
    pub shutdown_grace: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_connections: 4096,
            tls_handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            keep_alive: true,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Why a connection was closed before it could carry a request.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Rejection<'a> {
    /// `max_connections` were open.
    OverCapacity,
    /// The TLS handshake did not complete within `tls_handshake_timeout`.
    TlsHandshakeTimeout,
    /// The TLS handshake failed (the client's alert, our alert, or the connection dropped).
    TlsHandshakeFailed(&'a std::io::Error),
    /// `max_connections` were open and this one, the longest open without a request in
    /// flight, was closed to make room for a new one (it may have carried requests before).
    IdleEvicted,
}

impl Rejection<'_> {
    /// A metric label: `over_capacity`, `tls_handshake_timeout`, `tls_handshake_failed`,
    /// `idle_evicted`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Rejection::OverCapacity => "over_capacity",
            Rejection::IdleEvicted => "idle_evicted",
            Rejection::TlsHandshakeTimeout => "tls_handshake_timeout",
            Rejection::TlsHandshakeFailed(_) => "tls_handshake_failed",
        }
    }
}

/// Connection events, for metrics and logs. Called on the connection's task (or, for
/// [`Rejection::OverCapacity`] and [`Rejection::IdleEvicted`], on the accept loop): keep them
/// cheap and non-blocking.
pub trait Observer: Send + Sync + 'static {
    /// A connection was accepted and counts against `max_connections` (before any handshake).
    fn opened(&self, _peer: SocketAddr) {}
    /// A connection reported by [`Observer::opened`] ended, however it ended (also when it
    /// was closed at the end of the shutdown grace period).
    fn closed(&self, _peer: SocketAddr) {}
    /// A connection was closed before it could carry a request, or (for
    /// [`Rejection::IdleEvicted`], whose `closed` still follows) while idle at the cap. For
    /// [`Rejection::OverCapacity`] neither `opened` nor `closed` is called.
    fn rejected(&self, _peer: SocketAddr, _why: Rejection<'_>) {}
}

/// What [`Server::peer_data`] sees of a new connection, once its TLS handshake is done.
pub struct Connection<'a> {
    peer: SocketAddr,
    tls: Option<&'a rustls::ServerConnection>,
}

impl Connection<'_> {
    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The TLS session (protocol version, ALPN, client certificates), on a TLS listener.
    pub fn tls(&self) -> Option<&rustls::ServerConnection> {
        self.tls
    }

    /// The client's end-entity certificate, when the client presented one and the configured
    /// verifier accepted it (mTLS).
    pub fn client_certificate(&self) -> Option<&CertificateDer<'static>> {
        self.tls?.peer_certificates()?.first()
    }
}

/// How [`Server::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Connections still open at the end of the grace period, closed then.
    pub forced: usize,
}

type PeerData<X> = Arc<dyn Fn(&Connection<'_>) -> X + Send + Sync>;

/// A listener and what it serves; [`Server::run`] serves until shutdown. `X` is the request
/// extension each request carries about its connection (see [`Server::peer_data`]).
pub struct Server<X = ConnectInfo<SocketAddr>> {
    listener: TcpListener,
    router: Router,
    config: ServeConfig,
    tls: Option<Arc<Tls>>,
    observer: Option<Arc<dyn Observer>>,
    peer_data: PeerData<X>,
}

impl Server {
    /// Serves `router` on `listener`, plain HTTP, with the default [`ServeConfig`]; each
    /// request carries `ConnectInfo<SocketAddr>`.
    pub fn new(listener: TcpListener, router: Router) -> Server {
        Server {
            listener,
            router,
            config: ServeConfig::default(),
            tls: None,
            observer: None,
            peer_data: Arc::new(|c: &Connection<'_>| ConnectInfo(c.peer_addr())),
        }
    }
}

impl<X: Clone + Send + Sync + 'static> Server<X> {
    pub fn config(mut self, config: ServeConfig) -> Self {
        self.config = config;
        self
    }

    /// Speak TLS (None: plain HTTP). The configuration is read at each handshake, so
    /// [`Tls::replace`] applies to new connections.
    pub fn tls(mut self, tls: Option<Arc<Tls>>) -> Self {
        self.tls = tls;
        self
    }

    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Replaces the per-request extension: `make` runs once per connection (after the TLS
    /// handshake) and every request on that connection carries a clone of its result, instead
    /// of `ConnectInfo<SocketAddr>`. Work such as parsing the client certificate belongs
    /// here, once per connection rather than once per request.
    pub fn peer_data<Y, F>(self, make: F) -> Server<Y>
    where
        Y: Clone + Send + Sync + 'static,
        F: Fn(&Connection<'_>) -> Y + Send + Sync + 'static,
    {
        Server {
            listener: self.listener,
            router: self.router,
            config: self.config,
            tls: self.tls,
            observer: self.observer,
            peer_data: Arc::new(make),
        }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops accepting (the port is closed at once),
    /// lets requests in flight finish within `shutdown_grace`, and returns once every
    /// connection has ended. Dropping the returned future closes every connection at once.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Drained {
        let Server {
            listener,
            router,
            config,
            tls,
            observer,
            peer_data,
        } = self;
        let max_connections = config.max_connections.max(1);
        let shared = Arc::new(Shared {
            router,
            config,
            observer,
            peer_data,
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        // Connection tasks live in this set: counting them is the connection cap, and dropping
        // it (at the grace deadline, or with this future) ends them all.
        let mut connections = JoinSet::new();
        // The same connections in accept order, for eviction at the cap.
        let mut open: VecDeque<OpenConnection> = VecDeque::new();
        let mut refusals = RefusalLog::default();
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_per_connection(&e) => continue,
                Err(e) => {
                    // Typically EMFILE/ENFILE (descriptor limit). Retrying at once would spin
                    // on the same error; a short pause lets open connections close.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(Duration::from_millis(50)) => continue,
                    }
                }
            };
            reap(&mut connections);
            if connections.len() >= max_connections {
                match evict_idle(&mut open) {
                    Some(evicted) => {
                        if let Some(o) = &shared.observer {
                            o.rejected(evicted, Rejection::IdleEvicted);
                        }
                    }
                    None => {
                        drop(stream);
                        refusals.refused(max_connections);
                        if let Some(o) = &shared.observer {
                            o.rejected(peer, Rejection::OverCapacity);
                        }
                        continue;
                    }
                }
            } else if open.len() > 2 * max_connections {
                open.retain(|c| !c.task.is_finished());
            }
            // Responses are written whole; Nagle would only delay the last segment.
            let _ = stream.set_nodelay(true);
            let activity = Arc::new(Activity::default());
            let task = connections.spawn(connection(
                stream,
                peer,
                tls.clone(),
                shared.clone(),
                activity.clone(),
                stop_rx.clone(),
            ));
            open.push_back(OpenConnection {
                peer,
                activity,
                task,
            });
        }
        drop(listener);
        let _ = stop_tx.send(true);
        let open = connections.len();
        let grace = shared.config.shutdown_grace;
        let drain = async {
            while let Some(joined) = connections.join_next().await {
                log_panic(joined);
            }
        };
        if tokio::time::timeout(grace, drain).await.is_ok() {
            tracing::debug!(
                connections = open,
                "listener stopped; all connections closed"
            );
            return Drained { forced: 0 };
        }
        let forced = connections.len();
        tracing::warn!(
            connections = forced,
            grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
            "connections still open at the end of the shutdown grace period; closing them"
        );
        connections.shutdown().await;
        Drained { forced }
    }
}

/// What every connection task of one server shares.
struct Shared<X> {
    router: Router,
    config: ServeConfig,
    observer: Option<Arc<dyn Observer>>,
    peer_data: PeerData<X>,
}

/// Accept errors that concern one connection only (the client went away before we took it).
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted
    )
}

/// An open connection as the accept loop sees it, for eviction.
struct OpenConnection {
    peer: SocketAddr,
    activity: Arc<Activity>,
    task: AbortHandle,
}

/// Requests in flight on one connection: a request counts from its headers until its response
/// body is written (or dropped). Zero means idle: between requests, in the TLS handshake, or
/// still reading request headers.
#[derive(Default)]
struct Activity {
    in_flight: AtomicUsize,
}

/// One request in flight; the count drops when this does (with the response body).
struct Busy(Arc<Activity>);

impl Busy {
    fn start(activity: &Arc<Activity>) -> Busy {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Closes the longest-open idle connection (aborting its task drops the socket; its
/// [`Observer::closed`] still runs). Returns its peer, or `None` when every open connection has
/// a request in flight. Amortized O(1) under a flood of idle connections: the oldest entry is
/// normally the one to close, and ended ones are dropped from the front here and, when the
/// queue grows past twice the cap, by the accept loop (a full sweep per eviction cost 1.4 ms
/// at 4,096 connections, enough to overflow the listen backlog).
fn evict_idle(open: &mut VecDeque<OpenConnection>) -> Option<SocketAddr> {
    while open.front().is_some_and(|c| c.task.is_finished()) {
        open.pop_front();
    }
    let at = open
        .iter()
        .position(|c| c.activity.in_flight.load(Ordering::Acquire) == 0 && !c.task.is_finished())?;
    let c = open.remove(at)?;
    c.task.abort();
    Some(c.peer)
}

/// Removes finished connection tasks, so that the set's length is the open connections.
fn reap(connections: &mut JoinSet<()>) {
    while let Some(joined) = connections.try_join_next() {
        log_panic(joined);
    }
}

fn log_panic(joined: Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined {
        if e.is_panic() {
            tracing::error!("a connection task panicked");
        }
    }
}

/// One warning when the cap is first hit, then at most one per interval with the count since:
/// a flood of connections must not become a flood of log lines.
#[derive(Default)]
struct RefusalLog {
    last: Option<Instant>,
    since_last: u64,
}

impl RefusalLog {
    const INTERVAL: Duration = Duration::from_secs(10);

    fn refused(&mut self, max_connections: usize) {
        self.since_last += 1;
        let now = Instant::now();
        if self
            .last
            .is_none_or(|t| now.duration_since(t) >= Self::INTERVAL)
        {
            tracing::warn!(
                max_connections,
                refused = self.since_last,
                "connection limit reached: new connections are closed at once"
            );
            self.last = Some(now);
            self.since_last = 0;
        }
    }
}

/// Calls [`Observer::closed`] however the connection task ends (also when it is aborted).
struct OpenGuard<'a> {
    observer: Option<&'a dyn Observer>,
    peer: SocketAddr,
}

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        if let Some(o) = self.observer {
            o.closed(self.peer);
        }
    }
}

/// Resolves when shutdown is requested (or the server is gone).
async fn stopping(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn connection<X: Clone + Send + Sync + 'static>(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<Tls>>,
    shared: Arc<Shared<X>>,
    activity: Arc<Activity>,
    mut stop: watch::Receiver<bool>,
) {
    let observer = shared.observer.as_deref();
    if let Some(o) = observer {
        o.opened(peer);
    }
    let _guard = OpenGuard { observer, peer };
    let Some(tls) = tls else {
        let data = (shared.peer_data)(&Connection { peer, tls: None });
        return http(stream, peer, data, &shared, activity, stop).await;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
    let handshake =
        tokio::time::timeout(shared.config.tls_handshake_timeout, acceptor.accept(stream));
    let handshake = tokio::select! {
        handshake = handshake => handshake,
        // No request has started on it yet: nothing to drain.
        () = stopping(&mut stop) => return,
    };
    match handshake {
        Ok(Ok(stream)) => {
            let data = (shared.peer_data)(&Connection {
                peer,
                tls: Some(stream.get_ref().1),
            });
            http(stream, peer, data, &shared, activity, stop).await;
        }
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            if let Some(o) = observer {
                o.rejected(peer, Rejection::TlsHandshakeFailed(&e));
            }
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            if let Some(o) = observer {
                o.rejected(peer, Rejection::TlsHandshakeTimeout);
            }
        }
    }
}

/// HTTP/1.1 on an established connection until it closes, times out, or shutdown drains it.
async fn http<I, X>(
    io: I,
    peer: SocketAddr,
    data: X,
    shared: &Shared<X>,
    activity: Arc<Activity>,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    X: Clone + Send + Sync + 'static,
{
    let body_read_timeout = shared.config.body_read_timeout;
    let service = shared
        .router
        .clone()
        .map_request(move |mut request: http::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(data.clone());
            request.map(|body| axum::body::Body::new(body::TimedBody::new(body, body_read_timeout)))
        })
        .map_future(move |response| {
            // Counted from here (the headers are in) until the response body is gone.
            let busy = Busy::start(&activity);
            async move {
                let response: Result<http::Response<axum::body::Body>, _> = response.await;
                response.map(|r| r.map(|b| axum::body::Body::new(body::Tracked::new(b, busy))))
            }
        });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(shared.config.header_read_timeout)
        .keep_alive(shared.config.keep_alive);
    let connection = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    tokio::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        () = stopping(&mut stop) => {
            // Finishes the request in progress (if any), then closes; an idle connection
            // closes at once.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    match ended {
        Ok(()) => {}
        Err(e) if e.is_timeout() => {
            tracing::debug!(%peer, "connection closed: no complete request headers in time (stalled or idle)");
        }
        Err(e) => tracing::debug!(%peer, error = %e, "connection ended with an error"),
    }
}

#[cfg(test)]
mod tests;
