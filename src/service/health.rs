//! Liveness and readiness of the node, for the metrics listener's `/healthz` and `/readyz`:
//! ready means not draining, the metadata store answers a trivial query, and the root of the
//! default key store answers a trivial call.

use std::sync::atomic::Ordering;

use super::Core;

impl Core {
    /// Marks the node as draining (SIGTERM): from now on it reports not ready, so a load
    /// balancer stops sending new requests while those in flight finish.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// `Ok` when the node can serve requests; otherwise a short reason (no details of the
    /// failure: the endpoint has no authentication; the cause is logged).
    pub async fn readiness(&self) -> Result<(), &'static str> {
        if self.draining.load(Ordering::SeqCst) {
            return Err("draining");
        }
        if let Err(e) = self.store.ping().await {
            tracing::warn!(error = %e, "readiness: the metadata store does not answer");
            return Err("store unreachable");
        }
        // A random byte from the root: a session of the PKCS#11 root, nothing for the
        // software root.
        if let Err(e) = self.root.random(1).await {
            tracing::warn!(error = %e, "readiness: the root backend does not answer");
            return Err("root unusable");
        }
        Ok(())
    }
}
