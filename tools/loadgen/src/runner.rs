//! The runners and the run: the closed loop (N connections, one request in flight each, as
//! fast as the server answers), the open loop (a fixed rate, latency counted from each
//! request's scheduled time so that a stall is not hidden), and the interleaved rounds that
//! both subcommands share.
//!
//! A round runs every closed-loop scenario once, then every raw scenario (PKCS#11 or library),
//! each for `--warmup` unmeasured seconds and `--duration` measured ones. This VM's speed drifts by
//! 10-20% within minutes; with one long block per scenario, whichever scenario ran in a slow
//! minute lost, while interleaved rounds make the drift hit every scenario alike. The
//! open-loop scenarios run once, after the rounds.
//!
//! Only 200 responses count as successes; everything else is counted per status (`transport`
//! for connection errors and timeouts), and the first error body is kept for the report.
//! Nothing runs past its deadline: every request has a timeout, so the run ends by itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tokio::time::Instant;

use crate::histogram::Histogram;
use crate::procstat::{self, Process, Usage};
use crate::raw::{RawBench, RawKind};
use crate::rawlib::{LibBench, LibKind};
use crate::report::{Report, ScenarioResult, TRANSPORT_ERROR};
use crate::target::{send, Endpoint, Sender, Template, REQUEST_TIMEOUT};
use crate::BoxError;

/// Pause before reconnecting after a connection error.
const RECONNECT_PAUSE: Duration = Duration::from_millis(50);

/// A closed-loop scenario.
pub struct Scenario {
    pub name: String,
    pub template: Arc<Template>,
    /// Also run at `--rate` in the open loop (the real operations; not the baseline or floor).
    pub open_loop: bool,
}

/// The scenarios and comparisons a subcommand asks for.
pub struct Plan {
    pub scenarios: Vec<Scenario>,
    pub checks: Vec<crate::report::Check>,
}

/// Timing and load of a run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub concurrency: u32,
    pub warmup: Duration,
    pub duration: Duration,
    pub rounds: u32,
    /// Requests/s of the open-loop scenarios; 0 runs none.
    pub rate: u32,
    pub rate_duration: Duration,
    /// The server's process ids, for their CPU and context switches (summed).
    pub server_pids: Arc<[u32]>,
}

/// One raw scenario: a PKCS#11 call (`raw.rs`) or a library call (`rawlib.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawScenario {
    Pkcs11(RawKind),
    Lib(LibKind),
}

impl RawScenario {
    pub fn group(self) -> &'static str {
        match self {
            RawScenario::Pkcs11(k) => k.group(),
            RawScenario::Lib(k) => k.group(),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            RawScenario::Pkcs11(k) => k.describe(),
            RawScenario::Lib(k) => k.describe(),
        }
    }
}

/// The raw scenarios of a run: which calls, at which thread counts.
pub struct RawPlan {
    /// The token of the PKCS#11 scenarios (when any).
    pub pkcs11: Option<Arc<RawBench>>,
    /// The keys of the library scenarios (when any).
    pub lib: Option<Arc<LibBench>>,
    pub scenarios: Vec<RawScenario>,
    pub threads: Vec<usize>,
}

impl RawPlan {
    fn name(&self, scenario: RawScenario, threads: usize) -> String {
        if self.threads.len() > 1 {
            format!("{}-{threads}t", scenario.group())
        } else {
            scenario.group().to_owned()
        }
    }

    /// Runs one raw scenario on the blocking pool.
    async fn run(
        &self,
        scenario: RawScenario,
        threads: usize,
        warmup: Duration,
        duration: Duration,
    ) -> Result<ScenarioResult, BoxError> {
        match scenario {
            RawScenario::Pkcs11(kind) => {
                let bench = Arc::clone(self.pkcs11.as_ref().ok_or("no PKCS#11 token is open")?);
                tokio::task::spawn_blocking(move || bench.run(kind, threads, warmup, duration))
                    .await?
            }
            RawScenario::Lib(kind) => {
                let bench = Arc::clone(self.lib.as_ref().ok_or("no library keys were made")?);
                tokio::task::spawn_blocking(move || bench.run(kind, threads, warmup, duration))
                    .await?
            }
        }
    }
}

/// What the server and the load generator used in a window (each when readable).
type Used = (Option<Usage>, Option<Usage>);

/// Samples the server's and the load generator's counters at the start and the end of a
/// measured window.
struct Probe {
    /// The server's processes (their usage is summed).
    server: Arc<[u32]>,
    start: (Option<Usage>, Option<Usage>),
}

/// The summed counters of `pids` (`None` for none; an error naming a PID that cannot be read).
fn read_all(pids: &[u32]) -> Result<Option<Usage>, String> {
    let mut total: Option<Usage> = None;
    for &pid in pids {
        let usage = procstat::read(Process::Pid(pid)).ok_or_else(|| {
            format!("--server-pid: cannot read the CPU time of process {pid} in /proc")
        })?;
        total = Some(total.map_or(usage, |t| t.add(usage)));
    }
    Ok(total)
}

impl Probe {
    fn start(server: Arc<[u32]>) -> Result<Probe, String> {
        Ok(Probe {
            start: (read_all(&server)?, procstat::read(Process::This)),
            server,
        })
    }

    /// What the server and the load generator used since the start; an error when the
    /// server's counters cannot be read (a PID is wrong, or the server died).
    fn finish(self) -> Result<Used, String> {
        let server = match (self.start.0, read_all(&self.server)?) {
            (Some(a), Some(b)) => Some(b.since(a)),
            _ => None,
        };
        let client = match (self.start.1, procstat::read(Process::This)) {
            (Some(a), Some(b)) => Some(b.since(a)),
            _ => None,
        };
        Ok((server, client))
    }

    /// Samples at `from` and at `until` in a task of its own.
    fn spawn(
        server: Arc<[u32]>,
        from: Instant,
        until: Instant,
    ) -> tokio::task::JoinHandle<Result<Used, String>> {
        tokio::spawn(async move {
            tokio::time::sleep_until(from).await;
            let probe = Probe::start(server)?;
            tokio::time::sleep_until(until).await;
            probe.finish()
        })
    }
}

/// What one connection measured.
#[derive(Default)]
struct ConnectionStats {
    histogram: Histogram,
    errors: BTreeMap<u16, u64>,
    first_error: Option<String>,
    last_completion: Option<Instant>,
}

impl ConnectionStats {
    fn error(&mut self, measured: bool, status: Option<StatusCode>, text: &str) {
        if !measured {
            return;
        }
        let code = status.map_or(TRANSPORT_ERROR, |s| s.as_u16());
        *self.errors.entry(code).or_insert(0) += 1;
        if self.first_error.is_none() {
            let label = status.map_or_else(|| "transport error".to_owned(), |s| s.to_string());
            let text: String = text.chars().take(2000).collect();
            self.first_error = Some(format!("{label}: {text}"));
        }
    }

    fn into_result(
        stats: Vec<ConnectionStats>,
        name: &str,
        measure_from: Instant,
    ) -> ScenarioResult {
        let mut histogram = Histogram::new();
        let mut errors: BTreeMap<u16, u64> = BTreeMap::new();
        let mut first_error = None;
        let mut last = measure_from;
        for s in stats {
            histogram.merge(&s.histogram);
            for (code, n) in s.errors {
                *errors.entry(code).or_insert(0) += n;
            }
            first_error = first_error.or(s.first_error);
            if let Some(t) = s.last_completion {
                last = last.max(t);
            }
        }
        let mut result = ScenarioResult::new(
            name,
            histogram,
            last.saturating_duration_since(measure_from),
        );
        result.errors = errors;
        result.first_error = first_error;
        result
    }
}

/// A connection that is (re)opened on demand.
async fn connection(
    endpoint: &Endpoint,
    slot: &mut Option<Sender>,
    stats: &mut ConnectionStats,
    measured: bool,
) -> Option<Sender> {
    match slot.take() {
        Some(s) if !s.is_closed() => Some(s),
        _ => match tokio::time::timeout(REQUEST_TIMEOUT, endpoint.connect()).await {
            Ok(Ok(s)) => Some(s),
            Ok(Err(e)) => {
                stats.error(measured, None, &e.to_string());
                tokio::time::sleep(RECONNECT_PAUSE).await;
                None
            }
            Err(_) => {
                stats.error(measured, None, "connect timed out");
                None
            }
        },
    }
}

/// One connection of the closed loop: one request in flight until the deadline.
async fn closed_connection(
    endpoint: Arc<Endpoint>,
    template: Arc<Template>,
    measure_from: Instant,
    deadline: Instant,
) -> ConnectionStats {
    let mut stats = ConnectionStats::default();
    let mut slot: Option<Sender> = None;
    while Instant::now() < deadline {
        let measured = Instant::now() >= measure_from;
        let Some(mut sender) = connection(&endpoint, &mut slot, &mut stats, measured).await else {
            continue;
        };
        let request = match template.request() {
            Ok(r) => r,
            Err(e) => {
                stats.error(true, None, &e.to_string());
                break;
            }
        };
        let started = Instant::now();
        let measured = started >= measure_from;
        match send(&mut sender, request).await {
            Ok((status, body)) => {
                let done = Instant::now();
                if status == StatusCode::OK {
                    if measured {
                        stats.histogram.record(done - started);
                        stats.last_completion = Some(done);
                    }
                } else {
                    stats.error(measured, Some(status), &String::from_utf8_lossy(&body));
                }
                slot = Some(sender);
            }
            Err(e) => {
                stats.error(measured, None, &e.to_string());
                tokio::time::sleep(RECONNECT_PAUSE).await;
            }
        }
    }
    stats
}

/// Runs one closed-loop scenario: `concurrency` connections for warm-up + duration. The rate is
/// the requests started in the measured window over the time to the last one's completion.
pub async fn closed_loop(
    endpoint: &Arc<Endpoint>,
    scenario: &Scenario,
    settings: &Settings,
) -> Result<ScenarioResult, BoxError> {
    let measure_from = Instant::now() + settings.warmup;
    let deadline = measure_from + settings.duration;
    let probe = Probe::spawn(Arc::clone(&settings.server_pids), measure_from, deadline);
    let tasks: Vec<_> = (0..settings.concurrency)
        .map(|_| {
            tokio::spawn(closed_connection(
                Arc::clone(endpoint),
                Arc::clone(&scenario.template),
                measure_from,
                deadline,
            ))
        })
        .collect();
    let mut stats = Vec::with_capacity(tasks.len());
    for task in tasks {
        stats.push(task.await?);
    }
    let mut result = ConnectionStats::into_result(stats, &scenario.name, measure_from);
    (result.server, result.client) = probe.await??;
    Ok(result)
}

/// Runs one scenario in the open loop at `settings.rate` for `settings.rate_duration` (after
/// `settings.warmup` of the same load, unmeasured): request k is due at t0 + k/rate and
/// connection i sends requests i, i+C, i+2C, ...; latency counts from the due time. It
/// includes up to ~1 ms of the timer's granularity.
pub async fn open_loop(
    endpoint: &Arc<Endpoint>,
    scenario: &Scenario,
    settings: &Settings,
) -> Result<ScenarioResult, BoxError> {
    let rate = f64::from(settings.rate.max(1));
    let connections = u64::from(settings.concurrency.max(1));
    let total = (rate * settings.rate_duration.as_secs_f64()) as u64;
    let warm = (rate * settings.warmup.as_secs_f64()) as u64;
    let t0 = Instant::now() + Duration::from_millis(100);
    let measure_from = t0 + Duration::from_secs_f64(warm as f64 / rate);
    let measure_until = t0 + Duration::from_secs_f64((warm + total) as f64 / rate);
    let probe = Probe::spawn(
        Arc::clone(&settings.server_pids),
        measure_from,
        measure_until,
    );
    let mut tasks = Vec::new();
    for i in 0..connections {
        let endpoint = Arc::clone(endpoint);
        let template = Arc::clone(&scenario.template);
        tasks.push(tokio::spawn(async move {
            let mut stats = ConnectionStats::default();
            let mut slot: Option<Sender> = None;
            let mut k = i;
            while k < warm + total {
                let due = t0 + Duration::from_secs_f64(k as f64 / rate);
                let measured = k >= warm;
                k += connections;
                tokio::time::sleep_until(due).await;
                let Some(mut sender) = connection(&endpoint, &mut slot, &mut stats, measured).await
                else {
                    continue;
                };
                let request = match template.request() {
                    Ok(r) => r,
                    Err(e) => {
                        stats.error(true, None, &e.to_string());
                        break;
                    }
                };
                match send(&mut sender, request).await {
                    Ok((status, body)) => {
                        let done = Instant::now();
                        if status == StatusCode::OK {
                            if measured {
                                stats.histogram.record(done - due);
                                stats.last_completion = Some(done);
                            }
                        } else {
                            stats.error(measured, Some(status), &String::from_utf8_lossy(&body));
                        }
                        slot = Some(sender);
                    }
                    Err(e) => stats.error(measured, None, &e.to_string()),
                }
            }
            stats
        }));
    }
    let mut stats = Vec::with_capacity(tasks.len());
    for task in tasks {
        stats.push(task.await?);
    }
    let mut result = ConnectionStats::into_result(stats, &scenario.name, measure_from);
    // The window runs to the end of the schedule or to the last completion, whichever is
    // later: a server that falls behind shows a rate below the target.
    result.window = result
        .window
        .max(measure_until.saturating_duration_since(measure_from));
    result.round_rates = vec![result.rps()];
    result.fixed_rate = Some(settings.rate);
    (result.server, result.client) = probe.await??;
    Ok(result)
}

/// The whole run: `rounds` interleaved rounds of the closed-loop and raw scenarios, then the
/// open-loop scenarios once. Progress goes to stderr.
pub async fn run(
    endpoint: &Arc<Endpoint>,
    scenarios: &[Scenario],
    raw: Option<&RawPlan>,
    settings: &Settings,
    report: &mut Report,
) -> Result<(), BoxError> {
    let rounds = settings.rounds;
    for round in 1..=rounds {
        let mut this_round = Vec::new();
        for scenario in scenarios {
            eprintln!(
                "loadgen: round {round}/{rounds}: {} ({} connections, {:?} warm-up + {:?})",
                scenario.name, settings.concurrency, settings.warmup, settings.duration
            );
            this_round.push(closed_loop(endpoint, scenario, settings).await?);
        }
        if let Some(plan) = raw {
            for &scenario in &plan.scenarios {
                for &threads in &plan.threads {
                    let name = plan.name(scenario, threads);
                    eprintln!(
                        "loadgen: round {round}/{rounds}: {name} (in process: {}, {threads} \
                         threads, {:?} warm-up + {:?})",
                        scenario.describe(),
                        settings.warmup,
                        settings.duration
                    );
                    let mut result = plan
                        .run(scenario, threads, settings.warmup, settings.duration)
                        .await?;
                    result.name = name;
                    this_round.push(result);
                }
            }
        }
        if rounds > 1 {
            let line: Vec<String> = this_round
                .iter()
                .map(|r| format!("{} {:.0}/s", r.name, r.rps()))
                .collect();
            eprintln!("loadgen: round {round}: {}", line.join(", "));
        }
        report.add_round(this_round);
    }
    if settings.rate > 0 {
        for scenario in scenarios.iter().filter(|s| s.open_loop) {
            let named = Scenario {
                name: format!("{}@{}", scenario.name, settings.rate),
                template: Arc::clone(&scenario.template),
                open_loop: true,
            };
            eprintln!(
                "loadgen: {} (open loop at {} req/s over {} connections, {:?} warm-up + {:?})",
                named.name,
                settings.rate,
                settings.concurrency,
                settings.warmup,
                settings.rate_duration
            );
            report.add_once(open_loop(endpoint, &named, settings).await?);
        }
    }
    for result in &report.results {
        if let Some(first) = &result.first_error {
            let by_status: Vec<String> = result
                .errors
                .iter()
                .map(|(code, n)| match *code {
                    TRANSPORT_ERROR => format!("transport: {n}"),
                    code => format!("{code}: {n}"),
                })
                .collect();
            eprintln!(
                "loadgen: {} errors ({}); first: {first}",
                result.name,
                by_status.join(", ")
            );
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn server_usage_is_summed_over_the_pids() {
        assert_eq!(read_all(&[]), Ok(None));
        if cfg!(target_os = "linux") {
            let me = std::process::id();
            let one = read_all(&[me]).unwrap().unwrap();
            let twice = read_all(&[me, me]).unwrap().unwrap();
            assert!(
                twice.cpu + Duration::from_millis(50) >= one.cpu * 2,
                "{one:?} {twice:?}"
            );
            assert!(read_all(&[me, u32::MAX])
                .unwrap_err()
                .contains("4294967295"));
        }
    }
}
