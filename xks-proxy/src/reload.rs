//! Run-time reloads of the reloadable configuration (see [`crate::config`]): on SIGHUP and
//! every `[reload] interval_secs` (0: SIGHUP only) the configuration file and the files it
//! names are read again; when anything changed and the result is valid, the new keystores
//! (credentials, rules, rate limits), keys and TLS files take effect for requests that start
//! afterwards. Requests in flight finish with the configuration they started with. An invalid
//! file is logged and ignored (the previous configuration stays).

use std::sync::Arc;
use std::time::Duration;

use crate::state::AppState;

/// Starts the reload loop; it ends when `stop` fires.
pub fn spawn(
    state: Arc<AppState>,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            let periodic = async {
                if interval.is_zero() {
                    std::future::pending::<()>().await;
                } else {
                    tokio::time::sleep(interval).await;
                }
            };
            #[cfg(unix)]
            let sighup = async {
                match hup.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            #[cfg(not(unix))]
            let sighup = std::future::pending::<()>();
            let reason = tokio::select! {
                _ = stop.changed() => return,
                _ = periodic => "periodic",
                _ = sighup => "SIGHUP",
            };
            let s = state.clone();
            match tokio::task::spawn_blocking(move || s.reload()).await {
                Ok(Ok(outcome)) => {
                    tracing::debug!(reason, ?outcome, "configuration re-read");
                }
                Ok(Err(_)) => {} // logged by reload()
                Err(e) => tracing::error!(error = %e, "configuration reload task failed"),
            }
        }
    })
}
