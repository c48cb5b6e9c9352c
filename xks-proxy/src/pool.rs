//! The bounded pool for HSM calls.
//!
//! PKCS#11 calls block, so they never run on async workers: each one takes a permit of a
//! semaphore (`[pool] max_in_flight`: calls admitted at once) and runs on one of `[pool]
//! threads` dedicated threads ([`hsm::threads::BlockingPool`], shared with the KMS: a busy
//! thread takes the next queued call without being parked and woken again).
//!
//! A caller waits at most `queue_timeout` for a permit (more work than the pool takes in
//! that time is a 429 ThrottlingException) and at most `hsm_timeout` for the call, queueing
//! for a thread included (a 503 DependencyTimeoutException). A call that timed out keeps its
//! permit until it really ends, so a hung HSM shrinks the pool instead of piling up work.

use std::sync::Arc;
use std::time::Duration;

use hsm::threads::BlockingPool;
use tokio::sync::Semaphore;

use crate::config::PoolConfig;
use crate::error::XksError;
use xks_wire::ErrorName;

/// The pool.
#[derive(Debug, Clone)]
pub struct HsmExecutor {
    threads: Arc<BlockingPool>,
    permits: Arc<Semaphore>,
    capacity: usize,
    queue_timeout: Duration,
    hsm_timeout: Duration,
}

impl HsmExecutor {
    pub fn new(cfg: &PoolConfig) -> Result<Self, String> {
        let threads = BlockingPool::new("xks-hsm", cfg.threads)
            .map_err(|e| format!("cannot start the HSM threads: {e}"))?;
        Ok(HsmExecutor {
            threads: Arc::new(threads),
            permits: Arc::new(Semaphore::new(cfg.max_in_flight)),
            capacity: cfg.max_in_flight,
            queue_timeout: cfg.queue_timeout,
            hsm_timeout: cfg.hsm_timeout,
        })
    }

    /// Permits in use and the pool size (for metrics).
    pub fn usage(&self) -> (usize, usize) {
        (
            self.capacity
                .saturating_sub(self.permits.available_permits()),
            self.capacity,
        )
    }

    pub fn hsm_timeout(&self) -> Duration {
        self.hsm_timeout
    }

    /// Runs `f` on the pool (see the module documentation for the deadlines).
    pub async fn run<T, F>(&self, what: &'static str, f: F) -> Result<T, XksError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, XksError> + Send + 'static,
    {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) if self.queue_timeout.is_zero() => {
                return Err(throttled(self.capacity));
            }
            Err(_) => {
                match tokio::time::timeout(self.queue_timeout, self.permits.clone().acquire_owned())
                    .await
                {
                    Ok(Ok(p)) => p,
                    Ok(Err(_)) => return Err(XksError::internal("the HSM pool is shut down")),
                    Err(_) => return Err(throttled(self.capacity)),
                }
            }
        };
        let job = self.threads.run(move || {
            let _permit = permit;
            f()
        });
        match tokio::time::timeout(self.hsm_timeout, job).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(XksError::internal(format!(
                "the HSM call {what} failed: {e}"
            ))),
            Err(_) => Err(XksError::new(
                ErrorName::DependencyTimeoutException,
                format!(
                    "the HSM did not answer {what} within {} ms",
                    self.hsm_timeout.as_millis()
                ),
            )),
        }
    }
}

fn throttled(capacity: usize) -> XksError {
    XksError::throttled(format!(
        "all {capacity} HSM call slots are taken: the request rate is too high"
    ))
}
