//! Custom key stores on several nodes: each node keeps its *attachments* (logged-in clusters,
//! XKS proxy clients) in step with the stored connection state of every custom key store.
//!
//! - CONNECTED in the store and not attached here: attach. A cluster is attached by logging in
//!   with the PIN book stored now, never changing a PIN ([`Cluster::attach`]); only the node
//!   that runs ConnectCustomKeyStore rotates. An XKS store is attached by building its proxy
//!   client from the record (no probe; health checks run under the maintenance lease).
//! - Any other state, or no row: detach (clusters log out and drop their sessions).
//! - Attached from an older version of the record (another PIN book, cluster, proxy URI or
//!   credential): replaced, make before break (the old attachment serves until the new one is
//!   in place; a replaced cluster's sessions close without a logout, as the login belongs to
//!   the process and the replacement shares it). The node that connected a cluster keeps its
//!   own attachment while the record changes only by its own PIN saves.
//!
//! Triggered by the PostgreSQL change feed (`s:<store id>`; a feed (re)start reconciles every
//! store) and every [`RECONCILE_EVERY`] as a backstop. A node that fails to attach logs a
//! warning, counts it (`kms_custom_key_store_attach_failures_total`) and retries on the next
//! reconcile; it never marks the store FAILED (only the connecting node records an outcome).
//! A credential failure is retried at once when the record changes, otherwise only after
//! [`CREDENTIAL_RETRY_AFTER`], so a node holding an outdated PIN book cannot lock the crypto
//! user out by retrying.
//!
//! A store left CONNECTING by a node that died mid-connect is connected by another node. The
//! node that runs a connect holds the store's *connect claim* (a PostgreSQL session advisory
//! lock, [`crate::store::MetadataStore::claim_store_connect`]) from before it writes CONNECTING
//! until it has written CONNECTED or FAILED; the claim ends with its database session, so with
//! the node. A reconcile that finds a store CONNECTING tries the claim: taken, no live node is
//! connecting it, and this node takes the connect over (`CustomKeyStores::take_over_connect`:
//! the row read again under the claim, then the ordinary connect, which rotates the PIN and
//! records the outcome). Connects of a store are serialized across nodes by the claim (a
//! second connect waits for it), and every connect acts only on a row still CONNECTING, so a
//! takeover that races a connect about to begin (its claim not yet taken) is harmless: one of
//! them connects, the other finds the outcome written.
//!
//! Why taking over, rather than recording FAILED: the dead node changed a member's PIN only if
//! it got as far as rotating, and then its new PIN died with it; the takeover logs in with the
//! stored book, is refused once by that member and records FAILED with INVALID_CREDENTIALS,
//! the state (and the one refused login) a Disconnect and Connect by the operator would have
//! reached, and a FAILED store is not retried, so nothing counts towards a lockout. In every
//! other case (the node died while logging in, the usual slow part) the store ends CONNECTED
//! without an operator. The limit: a node that is alive but lost its database session (its
//! claim) while connecting, e.g. across a database restart, is still connecting when another
//! node takes over. `CustomKeyStores::take_over_connect` rewrites the row (a new row version)
//! first, and a connect rotates, and records a state, only while it still holds its claim
//! ([`crate::store::Lease::alive`]) and the row is the version it read: the stale connect
//! stops after its logins and records nothing (a login of it that comes after the takeover's
//! rotation is refused once). What is left is a claim lost between the stale connect's check
//! and the end of its rotation, unnoticed by its driver at the check, with a takeover in time.
//!
//! Only stores that other nodes share have a change feed: on SQLite none of this runs and the
//! single node connects and reconnects its stores as before (`reconnect_stores`).

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::broadcast::error::RecvError;

use super::custom_key_stores::{fingerprint, CustomKeyStores};
use super::{Core, KmsResult};
use crate::backend::cluster::{Cluster, ClusterBackend, ConnectError, PinBook};
use crate::model::{ConnectionState, CustomKeyStoreRecord, CustomKeyStoreType};
use crate::store::StoreChange;

/// The node-local backstop reconcile of every store.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(5);
/// How long a node waits before it tries again the same PIN book that a member refused.
pub const CREDENTIAL_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Why a node could not attach a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachError {
    /// A member refused the stored PIN (or the user is locked out).
    Credentials(ConnectError),
    /// Members unreachable, the cluster key missing, the cluster not configured here, XKS not
    /// configured here, the stored secret unreadable.
    Other(&'static str),
}

impl AttachError {
    /// The metric label.
    pub fn code(self) -> &'static str {
        match self {
            AttachError::Credentials(c) => c.code(),
            AttachError::Other(c) => c,
        }
    }
}

/// Brings this node's attachment of one store in step with its stored record.
pub async fn reconcile_one(core: &Arc<Core>, store_id: &str) {
    if let Err(e) = reconcile(core, store_id).await {
        tracing::warn!(
            custom_key_store_id = store_id,
            error = e.code(),
            "reconciling a custom key store failed; retried on the next pass"
        );
    }
}

/// Every stored store, and every store attached here (a deleted one is detached).
pub async fn reconcile_all(core: &Arc<Core>) {
    let stored = match core.store.all_custom_key_stores().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "listing custom key stores to reconcile failed");
            return;
        }
    };
    let mut ids: Vec<String> = stored.into_iter().map(|s| s.id).collect();
    for id in core.connections.attached_ids() {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    for id in ids {
        reconcile_one(core, &id).await;
    }
}

async fn reconcile(core: &Arc<Core>, store_id: &str) -> KmsResult<()> {
    if reconcile_attachment(core, store_id).await? == Some(ConnectionState::Connecting) {
        take_over_if_orphaned(core, store_id).await?;
    }
    Ok(())
}

/// A CONNECTING store whose connect claim this node can take has lost its connecting node: the
/// connect is taken over here, in a task of its own (a slow login delays no other store).
async fn take_over_if_orphaned(core: &Arc<Core>, store_id: &str) -> KmsResult<()> {
    let Some(claim) = core.store.claim_store_connect(store_id, false).await? else {
        return Ok(()); // a live node is connecting it
    };
    let stores = CustomKeyStores::new(core.clone());
    let id = store_id.to_string();
    tokio::spawn(async move {
        if let Err(e) = stores.take_over_connect(&id, claim).await {
            tracing::warn!(
                custom_key_store_id = %id,
                error = e.code(),
                "taking over a custom key store's connect failed; retried on the next reconcile"
            );
        }
    });
    Ok(())
}

/// Brings this node's attachment of the store in step with its record; the state read (`None`:
/// no row).
async fn reconcile_attachment(
    core: &Arc<Core>,
    store_id: &str,
) -> KmsResult<Option<ConnectionState>> {
    let c = &core.connections;
    // One change of attachment at a time per store, and never during a connect here.
    let turn = c.current_turn(store_id);
    let _one_at_a_time = turn.lock.lock().await;
    let generation = c.generation(store_id);
    let record = core.store.get_custom_key_store(store_id).await?;
    let state = record.as_ref().map(|r| r.connection_state);
    let Some(record) = record.filter(|r| r.connection_state == ConnectionState::Connected) else {
        if c.detach(store_id).await {
            core.metrics.forget_xks_store(store_id);
            tracing::info!(
                custom_key_store_id = store_id,
                "custom key store detached (not connected in the store)"
            );
        }
        c.forget_attach_failure(store_id);
        return Ok(state);
    };
    let fp = fingerprint(&record);
    if c.attached_fingerprint(store_id) == Some(fp) {
        return Ok(state);
    }
    if c.attach_on_hold(store_id, &fp) {
        return Ok(state);
    }
    // An attachment from an older record stays in service until its replacement is ready.
    match attach(core, &record, generation).await {
        Ok(true) => {
            c.forget_attach_failure(store_id);
            tracing::info!(
                custom_key_store_id = store_id,
                "custom key store attached (connected by another node)"
            );
        }
        Ok(false) => {} // a Connect or Disconnect on this node came first
        Err(e) => {
            core.metrics.count_attach_failure(e.code());
            c.note_attach_failure(store_id, fp, matches!(e, AttachError::Credentials(_)));
            tracing::warn!(
                custom_key_store_id = store_id,
                code = e.code(),
                "attaching a custom key store connected by another node failed; retried on the \
                 next reconcile"
            );
        }
    }
    Ok(state)
}

/// Attaches a CONNECTED store; `Ok(false)` when this node's own Connect or Disconnect
/// superseded the attachment meanwhile (it is dropped again).
async fn attach(
    core: &Arc<Core>,
    record: &CustomKeyStoreRecord,
    generation: u64,
) -> Result<bool, AttachError> {
    let c = &core.connections;
    let secret = core
        .open_secret(&record.id, &record.password_encrypted)
        .await
        .map_err(|_| AttachError::Other("SECRET_UNREADABLE"))?;
    let fp = fingerprint(record);
    if record.store_type == CustomKeyStoreType::ExternalKeyStore {
        let settings = record
            .xks
            .as_ref()
            .ok_or(AttachError::Other("XKS_SETTINGS_MISSING"))?;
        let client = c
            .xks
            .client_for(settings, secret, &record.region)
            .map_err(|_| AttachError::Other("XKS_PROXY_INVALID_CONFIGURATION"))?
            .with_metrics(core.metrics.clone(), &record.id);
        if !c.is_current(&record.id, generation) {
            return Ok(false);
        }
        c.attach_xks(&record.id, Arc::new(client), fp); // replaces an older client
        return Ok(true);
    }
    let cfg = record
        .cluster_id
        .as_deref()
        .and_then(|id| c.cluster_config(id, &record.account))
        .cloned()
        .ok_or(AttachError::Other("CLUSTER_NOT_FOUND"))?;
    let threads = c.threads().ok_or(AttachError::Other("INTERNAL_ERROR"))?;
    let pins = PinBook::from_secret(&secret).map_err(|_| AttachError::Other("INTERNAL_ERROR"))?;
    let cluster = threads
        .run(move || hsm::threads::detach(|| Cluster::attach(cfg, &pins)))
        .await
        .unwrap_or(Err(ConnectError::InternalError))
        .map_err(|e| match e {
            ConnectError::InvalidCredentials | ConnectError::UserLockedOut => {
                AttachError::Credentials(e)
            }
            other => AttachError::Other(other.code()),
        })?;
    let backend = Arc::new(ClusterBackend::new(cluster, threads));
    if !c.is_current(&record.id, generation) {
        backend.disconnect().await;
        return Ok(false);
    }
    if let Some(old) = c.attach_cluster(&record.id, backend, fp) {
        // Replaced: its sessions go, the login stays with the replacement's.
        old.release().await;
    }
    Ok(true)
}

/// Follows a shared store's custom key store changes until the service is dropped; `None` on
/// a store only this node writes. Attaches every CONNECTED store before it returns (a node
/// that starts serves the stores the others connected).
pub async fn start(core: &Arc<Core>) -> Option<tokio::task::JoinHandle<()>> {
    let changes = core.store.custom_key_store_changes()?;
    reconcile_all(core).await;
    Some(tokio::spawn(follow(Arc::downgrade(core), changes)))
}

async fn follow(core: Weak<Core>, mut changes: tokio::sync::broadcast::Receiver<StoreChange>) {
    let mut tick = tokio::time::interval(RECONCILE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is now: start() just reconciled
                       // Stores with a reconcile queued but not begun: a burst of notifications makes one.
    let queued: Arc<Mutex<HashSet<String>>> = Arc::default();
    // Passes over every store run one at a time; a backstop tick skips while one runs.
    let all_pass: Arc<tokio::sync::Mutex<()>> = Arc::default();
    loop {
        // Everything runs in tasks of its own: a slow cluster login delays no other store.
        let (change, backstop) = tokio::select! {
            c = changes.recv() => match c {
                Ok(c) => (c, false),
                Err(RecvError::Lagged(_)) => (StoreChange::All, false),
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => (StoreChange::All, true),
        };
        let Some(strong) = core.upgrade() else { return };
        match change {
            StoreChange::One(id) => {
                if !queued.lock().insert(id.clone()) {
                    continue;
                }
                let queued = queued.clone();
                tokio::spawn(async move {
                    queued.lock().remove(&id);
                    reconcile_one(&strong, &id).await;
                });
            }
            StoreChange::All => {
                let pass = all_pass.clone();
                if backstop && pass.try_lock().is_err() {
                    continue;
                }
                tokio::spawn(async move {
                    let _one_pass = pass.lock().await;
                    reconcile_all(&strong).await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_error_codes_are_the_connection_error_codes() {
        assert_eq!(
            AttachError::Credentials(ConnectError::InvalidCredentials).code(),
            "INVALID_CREDENTIALS"
        );
        assert_eq!(
            AttachError::Other("CLUSTER_NOT_FOUND").code(),
            "CLUSTER_NOT_FOUND"
        );
    }
}
