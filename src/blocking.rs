//! A fixed set of dedicated threads for calls that block: PKCS#11 calls (the KMS's crypto
//! operations on HSM keys, the XKS proxy's HSM calls).
//!
//! Why not `tokio::task::spawn_blocking`: tokio's pool parks a thread after every task and
//! wakes one (a futex call and a context switch) for the next, and under load it grows to one
//! thread per request in flight, all waiting for the few PKCS#11 sessions. On a 2-core
//! machine that hand-off cost more CPU than the SoftHSM call itself (docs/benchmarks.md).
//! Here a fixed number of workers take jobs from one queue; a worker that finds the queue
//! empty yields the CPU a few times before it parks, so under load jobs are handed over
//! without a wake-up system call, and at most `threads` calls reach the HSM at once.
//!
//! A job that is about to wait on something slow that is not the HSM (an external key store
//! proxy over the network) calls [`detach`]: its thread leaves the pool and a fresh worker
//! takes its place, so slow waits never occupy the HSM threads.
//!
//! A job that panics is reported to its caller as [`PoolError`]; the worker survives.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The job did not produce a result: it panicked, or the pool was shut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolError;

impl std::fmt::Display for PoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the blocking call ended without a result")
    }
}

impl std::error::Error for PoolError {}

/// The pool. Dropping it lets the workers finish the queued jobs and exit.
pub struct BlockingPool {
    shared: Arc<Shared>,
    threads: usize,
}

impl std::fmt::Debug for BlockingPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingPool")
            .field("name", &self.shared.name)
            .field("threads", &self.threads)
            .finish()
    }
}

struct Shared {
    name: String,
    state: Mutex<State>,
    work: Condvar,
    /// Jobs in the queue (read without the lock while spinning).
    queued: AtomicUsize,
}

struct State {
    queue: VecDeque<Job>,
    parked: usize,
    shutdown: bool,
}

/// How many times an idle worker yields before it parks. Measured on the 2-core VM with
/// `softhsm/bench.sh` (Encrypt on the PKCS#11 root): 0 -> 33k/s, 4 -> 34k/s, 32 -> 37k/s,
/// 128 -> 38.5-38.9k/s, 200 -> 38.7k/s. A worker whose spins keep ending in a park spins
/// less (down to `MIN_SPINS`) until spinning finds work again.
const SPINS: u32 = 128;

/// The spin budget after repeated parking (see `worker`).
const MIN_SPINS: u32 = 4;

thread_local! {
    /// The pool this thread works for; `None` once the current job detached it.
    static MEMBER: RefCell<Option<Arc<Shared>>> = const { RefCell::new(None) };
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl BlockingPool {
    /// Starts `threads` (at least 1) workers named `{name}-{n}`.
    pub fn new(name: &str, threads: usize) -> std::io::Result<BlockingPool> {
        let shared = Arc::new(Shared {
            name: name.to_string(),
            state: Mutex::new(State {
                queue: VecDeque::new(),
                parked: 0,
                shutdown: false,
            }),
            work: Condvar::new(),
            queued: AtomicUsize::new(0),
        });
        let threads = threads.max(1);
        for _ in 0..threads {
            spawn_worker(&shared)?;
        }
        Ok(BlockingPool { shared, threads })
    }

    /// Number of workers.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Jobs waiting for a worker.
    pub fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }

    /// Runs `f` on a worker; the future resolves with its result.
    pub fn run<T, F>(&self, f: F) -> impl Future<Output = Result<T, PoolError>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(Box::new(move || {
            let _ = tx.send(f());
        }));
        async move { rx.await.map_err(|_| PoolError) }
    }

    fn submit(&self, job: Job) {
        let mut st = lock(&self.shared.state);
        if st.shutdown {
            return; // dropping the job drops its sender: the caller sees PoolError
        }
        st.queue.push_back(job);
        self.shared.queued.fetch_add(1, Ordering::Release);
        let wake = st.parked > 0;
        drop(st);
        if wake {
            self.shared.work.notify_one();
        }
    }
}

impl Drop for BlockingPool {
    fn drop(&mut self) {
        lock(&self.shared.state).shutdown = true;
        self.shared.work.notify_all();
    }
}

fn spawn_worker(shared: &Arc<Shared>) -> std::io::Result<()> {
    let s = shared.clone();
    std::thread::Builder::new()
        .name(format!("{}-worker", shared.name))
        .spawn(move || {
            MEMBER.with(|m| *m.borrow_mut() = Some(s.clone()));
            worker(&s);
        })
        .map(|_| ())
}

fn worker(shared: &Shared) {
    // Spin budget: the full SPINS while spinning finds work (under load), a quarter of it after
    // each spin that ended in parking (so a lightly loaded pool does not burn CPU).
    let mut budget = SPINS;
    while let Some(job) = next_job(shared, &mut budget) {
        // A panicking job drops its result sender; the caller gets PoolError.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
        if MEMBER.with(|m| m.borrow().is_none()) {
            return; // detached during the job: a replacement already works for the pool
        }
    }
}

fn next_job(shared: &Shared, budget: &mut u32) -> Option<Job> {
    let mut spins = 0;
    let mut st = lock(&shared.state);
    loop {
        if let Some(job) = st.queue.pop_front() {
            shared.queued.fetch_sub(1, Ordering::Release);
            if spins > 0 {
                *budget = SPINS; // spinning paid off
            }
            return Some(job);
        }
        if st.shutdown {
            return None;
        }
        if spins < *budget {
            spins += 1;
            drop(st);
            std::thread::yield_now();
            while spins < *budget && shared.queued.load(Ordering::Acquire) == 0 {
                spins += 1;
                std::thread::yield_now();
            }
            st = lock(&shared.state);
            continue;
        }
        *budget = (*budget / 4).max(MIN_SPINS);
        st.parked += 1;
        st = shared.work.wait(st).unwrap_or_else(|p| p.into_inner());
        st.parked -= 1;
        spins = 0;
    }
}

/// Runs `f`, which waits on something slow that is not the pool's device, outside the pool:
/// on a pool worker the thread leaves the pool first and a new worker takes its place (the
/// thread ends when its current job is done). Elsewhere it just runs `f`.
pub fn detach<T>(f: impl FnOnce() -> T) -> T {
    if let Some(shared) = MEMBER.with(|m| m.borrow_mut().take()) {
        if let Err(e) = spawn_worker(&shared) {
            // Keep serving with one worker less rather than failing the request.
            tracing::error!(pool = %shared.name, error = %e, "cannot start a replacement worker");
        }
    }
    f()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn runs_jobs_and_returns_results() {
        let pool = BlockingPool::new("t", 2).unwrap();
        let rt = rt();
        let sum: u64 = rt.block_on(async {
            let futs: Vec<_> = (0..1000u64).map(|i| pool.run(move || i * 2)).collect();
            let mut s = 0;
            for f in futs {
                s += f.await.unwrap();
            }
            s
        });
        assert_eq!(sum, 999 * 1000);
    }

    #[test]
    fn at_most_threads_jobs_run_at_once() {
        let pool = BlockingPool::new("t", 3).unwrap();
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let rt = rt();
        rt.block_on(async {
            let futs: Vec<_> = (0..30)
                .map(|_| {
                    let (running, peak) = (running.clone(), peak.clone());
                    pool.run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(5));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                })
                .collect();
            for f in futs {
                f.await.unwrap();
            }
        });
        assert_eq!(peak.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_panicking_job_is_an_error_and_the_worker_survives() {
        let pool = BlockingPool::new("t", 1).unwrap();
        let rt = rt();
        let r: Result<(), PoolError> = rt.block_on(pool.run(|| panic!("boom")));
        assert_eq!(r, Err(PoolError));
        assert_eq!(rt.block_on(pool.run(|| 7)), Ok(7));
    }

    #[test]
    fn a_detached_job_does_not_hold_a_worker() {
        // One worker: while a detached job waits, another job still runs.
        let pool = BlockingPool::new("t", 1).unwrap();
        let rt = rt();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        rt.block_on(async {
            let slow = pool.run(move || detach(|| release_rx.recv().is_ok()));
            let quick = tokio::time::timeout(Duration::from_secs(5), pool.run(|| 42))
                .await
                .expect("a detached job must not block the pool");
            assert_eq!(quick, Ok(42));
            release_tx.send(()).unwrap();
            assert_eq!(slow.await, Ok(true));
            // Still one worker serving after the detached thread ended.
            assert_eq!(pool.run(|| 1).await, Ok(1));
        });
    }

    #[test]
    fn detach_outside_a_pool_just_runs() {
        assert_eq!(detach(|| 5), 5);
    }
}
