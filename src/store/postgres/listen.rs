//! Cache coherence across nodes: a dedicated connection that `LISTEN`s on the channel the
//! schema's triggers notify (`k:<key id>` when a key row changes, `g:<key id>` when a grant of
//! the key does, `s:<store id>` when a custom key store's row does) and drops the matching
//! cache entries (or, for a store, tells the node's store sync).
//!
//! While the connection is down the cache is marked incoherent (it neither answers from nor
//! fills its maps), and it is flushed whenever listening (re)starts, so a notification lost with
//! a connection can never leave a stale entry behind. A ping every [`PING_EVERY`] finds a
//! connection that died silently (a half-open TCP connection, a server that froze): a change
//! is in force on every node within about one ping period plus the ping timeout.

use std::sync::Weak;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_postgres::AsyncMessage;

use super::schema::CHANNEL;
use crate::config::PostgresConfig;
use crate::model::KeyId;
use crate::store::Invalidate;

/// How often the listening connection is checked.
const PING_EVERY: Duration = Duration::from_millis(250);
/// How long a ping may take before the connection is given up.
const PING_TIMEOUT: Duration = Duration::from_millis(500);
/// Wait between reconnection attempts.
const RETRY_EVERY: Duration = Duration::from_millis(250);

/// Starts the listener task on the current runtime; it ends when the cache is dropped.
pub(crate) fn spawn_listener(
    config: PostgresConfig,
    cache: Weak<dyn Invalidate>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // One warning per outage, not one per retry.
        let mut quiet = false;
        loop {
            match cache.upgrade() {
                Some(c) => c.set_coherent(false),
                None => return,
            }
            let mut was_up = false;
            match listen(&config, &cache, &mut was_up).await {
                Ok(()) => return,
                Err(e) => {
                    if was_up {
                        quiet = false;
                    }
                    if !quiet {
                        tracing::warn!(
                            error = %e,
                            "PostgreSQL change listener down: caches bypassed until it is back"
                        );
                        quiet = true;
                    }
                }
            }
            tokio::time::sleep(RETRY_EVERY).await;
        }
    })
}

/// One listening session: returns `Ok` when the cache is gone, an error when the connection
/// failed (the caller marks the cache incoherent and retries).
async fn listen(
    config: &PostgresConfig,
    cache: &Weak<dyn Invalidate>,
    was_up: &mut bool,
) -> Result<(), String> {
    let (pg, tls) = super::connector(config).map_err(|e| e.to_string())?;
    let (client, mut connection) = pg.connect(tls).await.map_err(|e| e.to_string())?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // The connection future delivers notifications; it ends when the connection does.
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(m) = messages.next().await {
            match m {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(Some(n.payload().to_string())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let _ = tx.send(None);
    });
    let result = async {
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .map_err(|e| e.to_string())?;
        // Listening from here on: what was cached before may have missed a change.
        match cache.upgrade() {
            Some(c) => {
                c.invalidate_all();
                c.set_coherent(true);
            }
            None => return Ok(()),
        }
        *was_up = true;
        tracing::info!("PostgreSQL change listener up");
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(Some(payload)) => {
                        let Some(c) = cache.upgrade() else { return Ok(()) };
                        apply(&*c, &payload);
                    }
                    _ => return Err("listener connection closed".to_string()),
                },
                _ = ping.tick() => {
                    if cache.strong_count() == 0 {
                        return Ok(());
                    }
                    match tokio::time::timeout(PING_TIMEOUT, client.simple_query("")).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Err(e.to_string()),
                        Err(_) => return Err("listener ping timed out".to_string()),
                    }
                }
            }
        }
    }
    .await;
    if let Some(c) = cache.upgrade() {
        c.set_coherent(false);
        c.invalidate_all();
    }
    driver.abort();
    result
}

/// Drops what one notification names; an unknown payload drops everything (safe default).
fn apply(cache: &dyn Invalidate, payload: &str) {
    if let Some(store_id) = payload.strip_prefix("s:") {
        cache.custom_key_store_changed(store_id);
        return;
    }
    let parsed = payload
        .split_once(':')
        .and_then(|(kind, id)| KeyId::from_storage(id).map(|id| (kind, id)));
    match parsed {
        Some(("k", id)) => cache.key_changed(&id),
        Some(("g", id)) => cache.grants_changed(&id),
        _ => cache.invalidate_all(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    /// Records what the listener told it.
    #[derive(Default)]
    struct Told(Mutex<Vec<String>>);

    impl Invalidate for Told {
        fn key_changed(&self, key_id: &KeyId) {
            self.0.lock().push(format!("key {key_id}"));
        }
        fn grants_changed(&self, key_id: &KeyId) {
            self.0.lock().push(format!("grants {key_id}"));
        }
        fn custom_key_store_changed(&self, store_id: &str) {
            self.0.lock().push(format!("store {store_id}"));
        }
        fn invalidate_all(&self) {
            self.0.lock().push("all".into());
        }
        fn set_coherent(&self, _coherent: bool) {}
    }

    #[test]
    fn each_payload_reaches_its_handler() {
        let told = Told::default();
        let key = "1234abcd-12ab-34cd-56ef-1234567890ab";
        apply(&told, &format!("k:{key}"));
        apply(&told, &format!("g:{key}"));
        apply(&told, "s:cks-0123456789abcdef0");
        apply(&told, "x:whatever");
        assert_eq!(
            *told.0.lock(),
            [
                format!("key {key}"),
                format!("grants {key}"),
                "store cks-0123456789abcdef0".to_string(),
                "all".to_string(),
            ]
        );
    }
}
