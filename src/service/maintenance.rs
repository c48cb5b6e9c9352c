//! The background maintenance pass: deletes keys whose deletion window has ended (with their
//! aliases, tags and material), performs scheduled rotations and expires imported key
//! material whose `ValidTo` has passed. Driven by the service clock,
//! so tests can advance time and call [`Kms::run_maintenance`] directly.
//!
//! With several nodes on one database a pass runs under the store's maintenance lease: one node
//! at a time does it, and a node that dies loses the lease with its database session, so a
//! survivor's next pass takes over. Deletions are also conditional on the row version read, so
//! a key changed meanwhile (CancelKeyDeletion on another node) is never deleted.

use std::sync::Arc;
use std::time::Duration;

use super::{Kms, KmsResult};
use crate::model::{KeyState, RotationType};
use crate::store::LeaseName;

/// What one maintenance pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MaintenanceReport {
    pub deleted: usize,
    pub rotated: usize,
    /// Imported key materials whose `ValidTo` passed (deleted; their keys `PendingImport`).
    pub expired: usize,
    /// External key store proxies whose health check failed.
    pub unhealthy_proxies: usize,
    /// True when another node held the maintenance lease and this pass did nothing.
    pub skipped: bool,
}

impl Kms {
    /// One pass over due deletions and rotations.
    pub async fn run_maintenance(&self) -> KmsResult<MaintenanceReport> {
        let mut report = MaintenanceReport::default();
        // Per node (before the lease): opened role sessions that have expired leave the cache.
        self.iam.sessions().sweep(self.clock.now());
        let Some(_lease) = self.store.try_lease(LeaseName::Maintenance).await? else {
            report.skipped = true;
            return Ok(report);
        };
        let now = self.clock.now();
        for id in self.store.keys_due_for_deletion(now).await? {
            let Some(key) = self.store.get_key(&id).await? else {
                continue;
            };
            if key.state != KeyState::PendingDeletion || key.deletion_date.is_none_or(|d| d > now) {
                continue;
            }
            if !self.store.delete_key(&id, key.row_version).await? {
                // Changed or deleted since it was read: the next pass looks again.
                continue;
            }
            self.root.forget(&id);
            // Keys of a CloudHSM-style store: best-effort deletion of the backing objects.
            let deleted = self.delete_backing_key(&key).await;
            let store = key.custom_key_store_id.clone().unwrap_or_default();
            // For the audit record of a deletion already made: left out if it cannot be read.
            let cluster_id = self
                .cloud_hsm_cluster_id_of_store(&store)
                .await
                .ok()
                .flatten();
            let additional = deleted.map(|ok| {
                serde_json::json!({
                    "customKeyStoreId": store,
                    "clusterId": cluster_id,
                    "backingKeys": serde_json::json!([{ "backingKeyId": key.arn }]).to_string(),
                    "backingKeysDeletionStatus": serde_json::json!([{
                        "backingKeyId": key.arn,
                        "deletionStatus": if ok { "SUCCESS" } else { "FAILURE" },
                    }]).to_string(),
                })
            });
            self.audit_service_event("DeleteKey", &key, additional);
            // The last replica gone starts a waiting primary's own deletion window.
            self.replica_deleted(&key).await?;
            tracing::info!(key_arn = %key.arn, "deleted key at the end of its waiting period");
            report.deleted += 1;
        }
        for id in self.store.keys_due_for_rotation(now).await? {
            let Some(key) = self.store.get_key(&id).await? else {
                continue;
            };
            // Disabled or pending-deletion keys are not rotated; they rotate when they come back.
            if key.state != KeyState::Enabled || key.next_rotation_date.is_none_or(|d| d > now) {
                continue;
            }
            // A multi-Region replica rotates with its primary (which gives it the version).
            if key
                .mrk_primary_region
                .as_ref()
                .is_some_and(|p| *p != key.region)
            {
                continue;
            }
            let arn = key.arn.clone();
            self.rotation.rotate(key, RotationType::Automatic).await?;
            tracing::info!(key_arn = %arn, "rotated key material on schedule");
            report.rotated += 1;
        }
        for id in self.store.keys_with_expired_material(now).await? {
            report.expired += self.import.expire(&id, now).await?;
        }
        report.unhealthy_proxies = self.custom_key_stores.xks_health_pass().await;
        Ok(report)
    }
}

/// Runs maintenance every `every` until the service is dropped by everyone else.
pub fn spawn_maintenance(service: Arc<Kms>, every: Duration) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(&service);
    drop(service);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(svc) = weak.upgrade() else { break };
            match svc.run_maintenance().await {
                Ok(r) if r != MaintenanceReport::default() => {
                    tracing::debug!(
                        deleted = r.deleted,
                        rotated = r.rotated,
                        expired = r.expired,
                        skipped = r.skipped,
                        "maintenance pass"
                    )
                }
                Ok(_) => {}
                Err(e) => match e.cause() {
                    Some(cause) => {
                        tracing::warn!(error = %e.code(), %cause, "maintenance pass failed")
                    }
                    None => tracing::warn!(error = %e.code(), "maintenance pass failed"),
                },
            }
        }
    })
}
