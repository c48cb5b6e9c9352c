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
//!
//! Dropping the pool waits (up to [`JOIN_WAIT`]) until its threads, detached ones included,
//! have exited. A thread that called into an HSM library runs that library's per-thread
//! clean-up (OpenSSL's, under SoftHSM) as it exits; if the process exits at the same moment,
//! the clean-up races the library's exit handlers and the process dies of SIGSEGV or SIGABRT
//! after a clean shutdown (measured: 10 of 400 runs of a 16-thread SoftHSM program, 4 at a time on 2 cores). So an
//! owner of such threads joins them before it goes away ([`join_within`]).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    /// Every thread started for the pool that may still run (detached ones included).
    threads: Vec<JoinHandle<()>>,
}

/// How many times an idle worker yields before it parks. Measured on the 2-core VM with
/// `softhsm/bench.sh` (Encrypt on the PKCS#11 root): 0 -> 33k/s, 4 -> 34k/s, 32 -> 37k/s,
/// 128 -> 38.5-38.9k/s, 200 -> 38.7k/s. A worker whose spins keep ending in a park spins
/// less (down to `MIN_SPINS`) until spinning finds work again.
const SPINS: u32 = 128;

/// The spin budget after repeated parking (see `worker`).
const MIN_SPINS: u32 = 4;

/// How long dropping a pool waits for its threads to exit. A thread still in a call after
/// that (a hung HSM) is left behind, with a warning.
pub const JOIN_WAIT: Duration = Duration::from_secs(5);

thread_local! {
    /// The pool this thread works for; `None` once the current job detached it.
    static MEMBER: RefCell<Option<Arc<Shared>>> = const { RefCell::new(None) };
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock()
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
                threads: Vec::new(),
            }),
            work: Condvar::new(),
            queued: AtomicUsize::new(0),
        });
        let threads = threads.max(1);
        for _ in 0..threads {
            let mut st = lock(&shared.state);
            spawn_worker(&shared, &mut st)?;
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
        let threads = {
            let mut st = lock(&self.shared.state);
            st.shutdown = true;
            std::mem::take(&mut st.threads)
        };
        self.shared.work.notify_all();
        join_within(threads, JOIN_WAIT, &self.shared.name);
    }
}

/// Starts a worker and records its thread (under the state lock, so that a pool being dropped
/// either sees the new thread or refuses to start it).
fn spawn_worker(shared: &Arc<Shared>, st: &mut State) -> std::io::Result<()> {
    let s = shared.clone();
    let handle = std::thread::Builder::new()
        .name(format!("{}-worker", shared.name))
        .spawn(move || {
            MEMBER.with(|m| *m.borrow_mut() = Some(s.clone()));
            worker(&s);
        })?;
    // Forget the threads that have ended (detached workers come and go).
    st.threads.retain(|t| !t.is_finished());
    st.threads.push(handle);
    Ok(())
}

/// Set once [`join_within`] returned without joining a thread: that thread may still call
/// into a PKCS#11 module, so the process must not finalize the modules
/// ([`crate::module::finalize_all`]).
static LEFT_BEHIND: AtomicBool = AtomicBool::new(false);

/// True when some pool or service gave up waiting for one of its threads (see [`join_within`]).
pub fn threads_left_behind() -> bool {
    LEFT_BEHIND.load(Ordering::Acquire)
}

/// Waits until each thread of `threads` has exited (its thread-local clean-up included), for
/// at most `wait` in all. The calling thread, if listed, is skipped: it cannot wait for itself.
pub fn join_within(threads: Vec<JoinHandle<()>>, wait: Duration, owner: &str) {
    let deadline = Instant::now() + wait;
    let me = std::thread::current().id();
    let mut left_behind = 0;
    for t in threads {
        if t.thread().id() == me {
            // Still running (it is us), so it may call into a module after this returns.
            LEFT_BEHIND.store(true, Ordering::Release);
            continue;
        }
        while !t.is_finished() && Instant::now() < deadline {
            // A bounded wait for a thread to exit, at shutdown, off the async workers.
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(Duration::from_millis(1));
        }
        if t.is_finished() {
            let _ = t.join(); // a panic was already reported to the job's caller
        } else {
            left_behind += 1;
        }
    }
    if left_behind > 0 {
        LEFT_BEHIND.store(true, Ordering::Release);
        tracing::warn!(
            owner,
            threads = left_behind,
            wait_ms = wait.as_millis() as u64,
            "threads still busy at shutdown were left behind"
        );
    }
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
        shared.work.wait(&mut st);
        st.parked -= 1;
        spins = 0;
    }
}

/// Runs `f`, which waits on something slow that is not the pool's device, outside the pool:
/// on a pool worker the thread leaves the pool first and a new worker takes its place (the
/// thread ends when its current job is done). Elsewhere it just runs `f`.
pub fn detach<T>(f: impl FnOnce() -> T) -> T {
    if let Some(shared) = MEMBER.with(|m| m.borrow_mut().take()) {
        let mut st = lock(&shared.state);
        let replaced = if st.shutdown {
            Ok(()) // the pool is going away: no replacement
        } else {
            spawn_worker(&shared, &mut st)
        };
        drop(st);
        if let Err(e) = replaced {
            // Keep serving with one worker less rather than failing the request.
            tracing::error!(pool = %shared.name, error = %e, "cannot start a replacement worker");
        }
    }
    f()
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]
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

    /// Counts, as its thread exits, that the thread's clean-up ran (slowly, like a library's).
    struct SlowExit(Arc<AtomicUsize>);

    impl Drop for SlowExit {
        fn drop(&mut self) {
            std::thread::sleep(Duration::from_millis(50));
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    thread_local! {
        static EXIT_GUARD: RefCell<Option<SlowExit>> = const { RefCell::new(None) };
    }

    fn guard_this_thread(exited: &Arc<AtomicUsize>) {
        EXIT_GUARD.with(|s| {
            s.borrow_mut()
                .get_or_insert_with(|| SlowExit(exited.clone()));
        });
    }

    #[test]
    fn dropping_the_pool_waits_until_its_threads_have_exited() {
        let exited = Arc::new(AtomicUsize::new(0));
        let pool = BlockingPool::new("t", 2).unwrap();
        let rt = rt();
        rt.block_on(async {
            // Both workers at once (the barrier), then a job that detaches its thread.
            let both = Arc::new(std::sync::Barrier::new(2));
            let jobs: Vec<_> = (0..2)
                .map(|_| {
                    let (both, exited) = (both.clone(), exited.clone());
                    pool.run(move || {
                        guard_this_thread(&exited);
                        both.wait();
                    })
                })
                .collect();
            for j in jobs {
                j.await.unwrap();
            }
            let exited2 = exited.clone();
            pool.run(move || detach(|| guard_this_thread(&exited2)))
                .await
                .unwrap();
        });
        drop(pool);
        // The two workers (one of them detached since) ran their slow clean-up before drop
        // returned.
        assert_eq!(exited.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_pool_dropped_by_its_own_job_does_not_wait_for_itself() {
        let pool = Arc::new(BlockingPool::new("t", 2).unwrap());
        let rt = rt();
        let last = pool.clone();
        // The job drops the last reference: it waits until the test has dropped its own (a
        // worker that ran first would otherwise leave the last drop, and the join, to the test).
        let (dropped, wait) = std::sync::mpsc::channel::<()>();
        let job = pool.run(move || {
            let _ = wait.recv();
            drop(last)
        });
        drop(pool);
        let _ = dropped.send(());
        let r = rt.block_on(async { tokio::time::timeout(Duration::from_secs(3), job).await });
        assert_eq!(r.expect("the job must not wait for its own thread"), Ok(()));
        // The job's thread was not joined, so the modules must not be finalized.
        assert!(threads_left_behind());
    }
}
