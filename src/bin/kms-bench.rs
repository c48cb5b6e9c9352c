//! `kms-bench`: a load generator for a running kms server on this machine.
//!
//! It creates a key (`CreateKey`), makes one ciphertext (`Encrypt`), then runs one scenario
//! after the other, each for `--warmup` + `--duration` seconds over `--concurrency` HTTP/1.1
//! keep-alive connections (one request in flight per connection). Every request is freshly
//! SigV4-signed with `sigv4` (current `X-Amz-Date`), like a real client.
//!
//! Scenarios: `baseline` (always first: a POST to `--baseline-path` with the same headers,
//! signing and body as `encrypt`; the server answers `{}` there without authentication or
//! work, so it measures the HTTP + client overhead), then the `--ops` among `encrypt`,
//! `decrypt` and `generate-data-key` (AES_256).
//!
//! Work floor: `--floor` adds `floor-encrypt` (and `floor-encrypt-cks`) before each Encrypt
//! scenario: the baseline route with an `x-kms-bench-key` header, where the server also has
//! the key's backend encrypt 256 bytes inline (the same IV source, AAD shape and PKCS#11 calls
//! as Encrypt) and does nothing else: no SigV4, JSON, checks, audit or hand-off. That is the
//! least work an Encrypt can cost, so its rate is the most any server reaches on the machine.
//! It also adds `handoff-encrypt` (`-cks`): the same with the encryption run on the server's
//! HSM threads, as Encrypt runs it (`x-kms-bench-handoff`); floor -> handoff -> encrypt splits
//! Encrypt's cost into the HSM call, the hand-off to the HSM threads, and the KMS work.
//!
//! Only 200 responses count as successes; everything else is counted per status (`transport`
//! for connection errors and timeouts) and the first error body is printed. The output is a
//! table of requests, errors, requests/s, p50/p99/p99.9 latency and the ratio to the baseline
//! rate (`--json` adds a JSON document on stdout). The exit status is 1 if any scenario had
//! errors, 2 if the setup failed.
//!
//! Only loopback endpoints are accepted (127.0.0.0/8, ::1, localhost), over plain HTTP.
//!
//! ```text
//! KMS_SERVER__BASELINE_ROUTE=true cargo run --release &
//! cargo run --release --bin kms-bench -- --duration 10 --concurrency 32
//! ```
//!
//! Keys: `--key-id` benchmarks an existing key instead of creating one; `--custom-key-store`
//! also creates a key in that (connected, CloudHSM-style) store and runs every op on it too
//! (scenarios `encrypt-cks`, ...).
//!
//! HSM ceiling: `--raw-pkcs11 session,token` adds in-process scenarios with no server at all:
//! `--concurrency` threads, one PKCS#11 session each, doing what the server does per Encrypt
//! (`Session::encrypt`: C_EncryptInit + C_Encrypt, AES-256-GCM, same plaintext size, 96-bit IV,
//! 128-bit tag) on an AES-256 key object that is private, sensitive and non-extractable, either
//! a *session* object (as the PKCS#11 root uses) or a *token* object (as a custom key store
//! uses), in `--pkcs11-token` of `--pkcs11-module`, logged in with the PIN in
//! `--pkcs11-pin-file`. The object is destroyed afterwards. The table then also compares
//! `encrypt` with the lower of `baseline` and `raw-session`, and `encrypt-cks` with the lower of
//! `baseline` and `raw-token`. See `softhsm/bench.sh`.
//!
//! With `--rounds` > 1 each compared scenario also gets its ratio per round (that round's rate
//! against that round's baseline and raw rate) and their median, next to the pooled ratio: on a
//! shared machine the references drift within a run, and the spread shows whether a verdict is
//! the server or the drift.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use chrono::Utc;
use clap::{Parser, ValueEnum};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use sigv4::Signer;
use tokio::net::TcpStream;
use tokio::time::Instant;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Per-request timeout: a hung server cannot keep the run from ending.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause before reconnecting after a connection error.
const RECONNECT_PAUSE: Duration = Duration::from_millis(50);
/// Error status recorded for transport failures (connect, I/O, timeout).
const TRANSPORT_ERROR: u16 = 0;

#[derive(Debug, Parser)]
#[command(name = "kms-bench", about = "Load generator for a local kms server")]
struct Args {
    /// Server endpoint (plain HTTP, loopback only).
    #[arg(long, env = "KMS_ENDPOINT", default_value = "http://127.0.0.1:4599")]
    endpoint: String,
    /// Access key id used to sign requests.
    #[arg(
        long,
        env = "AWS_ACCESS_KEY_ID",
        default_value = "AKIAIOSFODNN7EXAMPLE"
    )]
    access_key_id: String,
    /// Secret access key used to sign requests.
    #[arg(
        long,
        env = "AWS_SECRET_ACCESS_KEY",
        default_value = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        hide_default_value = true,
        hide_env_values = true
    )]
    secret_access_key: String,
    /// Region of the credential scope.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Number of connections (one request in flight each).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrency: u32,
    /// Measured seconds per scenario.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    duration: u64,
    /// Unmeasured warm-up seconds before each scenario's measurement.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=600))]
    warmup: u64,
    /// Interleaved rounds: every scenario (raw ones included) runs once per round for
    /// `--duration` seconds, and each scenario's rate and latencies are taken over all its
    /// rounds. A machine whose speed drifts (a shared VM) then slows every scenario alike,
    /// instead of whichever one happened to run during the slow minute.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// Plaintext bytes per Encrypt request.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=4096))]
    plaintext_size: u32,
    /// Scenarios to run after the baseline.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "encrypt,decrypt,generate-data-key"
    )]
    ops: Vec<Op>,
    /// Path of the server's no-work baseline route.
    #[arg(long, default_value = "/__baseline")]
    baseline_path: String,
    /// Also print the results as JSON.
    #[arg(long)]
    json: bool,
    /// Benchmark this existing key instead of creating one.
    #[arg(long)]
    key_id: Option<String>,
    /// Also create a key in this custom key store and run every op on it (`-cks` scenarios).
    #[arg(long)]
    custom_key_store: Option<String>,
    /// With `encrypt` among `--ops`: also run the work floor of each Encrypt scenario
    /// (`floor-encrypt`, `floor-encrypt-cks`): the baseline route with the `x-kms-bench-key`
    /// header, where the server does the HTTP work and the key's HSM encryption inline and
    /// nothing else. No server can do an Encrypt with less work on this machine. Also runs
    /// `handoff-encrypt` (`-cks`): the same on the HSM threads, as Encrypt does it.
    #[arg(long)]
    floor: bool,
    /// In-process PKCS#11 scenarios (no server): C_Encrypt on a session or token key object.
    #[arg(long, value_enum, value_delimiter = ',')]
    raw_pkcs11: Vec<RawObject>,
    /// PKCS#11 module of the raw scenarios.
    #[arg(long, default_value = "/usr/lib/softhsm/libsofthsm2.so")]
    pkcs11_module: std::path::PathBuf,
    /// Token label of the raw scenarios.
    #[arg(long, default_value = "kms-root")]
    pkcs11_token: String,
    /// HSM profile (built-in name or file) whose key attributes the raw scenarios copy (a
    /// session object is private only if the profile's `private_session_keys` says so, as in
    /// the server's PKCS#11 root).
    #[arg(long, default_value = "softhsm2")]
    pkcs11_profile: String,
    /// File whose first line is the token's user PIN (raw scenarios).
    #[arg(long)]
    pkcs11_pin_file: Option<std::path::PathBuf>,
    /// The server's process id (on this machine): its CPU time over each measured window is
    /// reported per request (`srv µs/req`). On a shared VM, whose speed drifts, this moves
    /// far less than the rates do, so it shows what a change to the server saves.
    #[arg(long)]
    server_pid: Option<u32>,
}

/// CPU time used so far by every thread of process `pid` (the first field of each
/// `/proc/<pid>/task/<tid>/schedstat`, in nanoseconds); `None` off Linux or if it is gone.
fn process_cpu(pid: u32) -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path().join("schedstat");
        // A thread that ended between the listing and the read no longer counts.
        if let Ok(text) = std::fs::read_to_string(path) {
            total += text.split_whitespace().next()?.parse::<u64>().ok()?;
        }
    }
    Some(Duration::from_nanos(total))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RawObject {
    /// A session object (the PKCS#11 root unwraps key versions as session objects).
    Session,
    /// A token object (a custom key store's backing keys are token objects).
    Token,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Op {
    Encrypt,
    Decrypt,
    GenerateDataKey,
}

/// Where and how to send requests.
struct Target {
    addrs: Vec<SocketAddr>,
    host_header: String,
    signer: Signer,
}

impl Target {
    fn request(
        &self,
        path: &str,
        operation: &str,
        body: &Bytes,
        bench_key: Option<&str>,
        bench_handoff: bool,
    ) -> Result<Request<Full<Bytes>>, BoxError> {
        let headers = self
            .signer
            .sign_kms_json(&self.host_header, operation, body, Utc::now())?;
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(http::header::HOST, self.host_header.as_str());
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        if let Some(key) = bench_key {
            builder = builder.header(kms::api::BENCH_KEY_HEADER, key);
            if bench_handoff {
                builder = builder.header(kms::api::BENCH_HANDOFF_HEADER, "1");
            }
        }
        Ok(builder.body(Full::new(body.clone()))?)
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, BoxError> {
        let mut last_error: Option<BoxError> = None;
        for addr in &self.addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    let (sender, connection) =
                        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                    tokio::spawn(async move {
                        // Errors surface on the sender side.
                        let _ = connection.await;
                    });
                    return Ok(sender);
                }
                Err(e) => last_error = Some(e.into()),
            }
        }
        Err(last_error.unwrap_or_else(|| "no address to connect to".into()))
    }
}

/// Sends one request and collects the response.
async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), BoxError> {
    let exchange = async {
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, BoxError>((status, body))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| BoxError::from("request timed out"))?
}

/// Parses the endpoint and resolves it, refusing anything that is not loopback.
async fn resolve_endpoint(endpoint: &str) -> Result<(Vec<SocketAddr>, String), BoxError> {
    let uri: Uri = endpoint.parse()?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("endpoint {endpoint}: only http:// is supported").into());
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("endpoint {endpoint}: no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("endpoint {endpoint}: user info is not supported").into());
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!("endpoint {endpoint}: must not have a path or query").into());
    }
    let host = authority.host();
    let port = authority.port_u16().unwrap_or(80);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = if let Ok(ip) = bare.parse::<IpAddr>() {
        vec![SocketAddr::new(ip, port)]
    } else if bare.eq_ignore_ascii_case("localhost") {
        tokio::net::lookup_host((bare, port)).await?.collect()
    } else {
        return Err(format!("endpoint {endpoint}: host must be a loopback address").into());
    };
    if addrs.is_empty() || addrs.iter().any(|addr| !addr.ip().is_loopback()) {
        return Err(format!(
            "endpoint {endpoint}: refusing non-loopback address(es) {addrs:?}; only \
             127.0.0.0/8, ::1 and localhost are allowed"
        )
        .into());
    }
    Ok((addrs, authority.as_str().to_owned()))
}

/// Log-linear latency histogram in microseconds (64 sub-buckets per power of two, so
/// quantiles are within about 1.6%).
#[derive(Clone)]
struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Histogram {
    const SUB_BITS: u32 = 6;
    const SUB: u64 = 1 << Self::SUB_BITS;
    const MAX_SHIFT: u32 = 34;

    fn new() -> Self {
        let buckets = (Self::SUB * (u64::from(Self::MAX_SHIFT) + 2)) as usize;
        Histogram {
            counts: vec![0; buckets],
            total: 0,
        }
    }

    fn index(micros: u64) -> usize {
        let max = (Self::SUB << (Self::MAX_SHIFT + 1)) - 1;
        let v = micros.min(max);
        if v < Self::SUB {
            return v as usize;
        }
        let msb = 63 - v.leading_zeros();
        let shift = msb - Self::SUB_BITS;
        let sub = (v >> shift) - Self::SUB;
        (Self::SUB * (u64::from(shift) + 1) + sub) as usize
    }

    /// Midpoint of a bucket, in microseconds.
    fn value(index: usize) -> f64 {
        let index = index as u64;
        if index < Self::SUB {
            return index as f64;
        }
        let shift = index / Self::SUB - 1;
        let sub = index % Self::SUB;
        let low = (Self::SUB + sub) << shift;
        let width = 1u64 << shift;
        low as f64 + (width as f64 - 1.0) / 2.0
    }

    fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        if let Some(count) = self.counts.get_mut(Self::index(micros)) {
            *count += 1;
            self.total += 1;
        }
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }

    /// Quantile `q` (0..=1) in milliseconds; 0 when empty.
    fn quantile_ms(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::value(index) / 1000.0;
            }
        }
        0.0
    }
}

/// What one connection task measured.
struct TaskStats {
    histogram: Histogram,
    errors: BTreeMap<u16, u64>,
    first_error: Option<String>,
    last_completion: Option<Instant>,
}

/// A scenario's fixed request.
#[derive(Clone)]
struct Scenario {
    name: String,
    path: String,
    operation: &'static str,
    body: Bytes,
    /// The key of a `floor-` scenario (sent as `x-kms-bench-key`).
    bench_key: Option<String>,
    /// Whether the floor's encryption runs on the HSM threads (`x-kms-bench-handoff`).
    bench_handoff: bool,
}

struct ScenarioResult {
    name: String,
    histogram: Histogram,
    /// Measured time (summed over rounds).
    window: Duration,
    requests: u64,
    errors: BTreeMap<u16, u64>,
    first_error: Option<String>,
    rps: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    /// The server's CPU time over the measured window(s), with `--server-pid`.
    server_cpu: Option<Duration>,
}

impl ScenarioResult {
    fn new(
        name: String,
        histogram: Histogram,
        window: Duration,
        errors: BTreeMap<u16, u64>,
        first_error: Option<String>,
    ) -> Self {
        let window = window.max(Duration::from_millis(1));
        ScenarioResult {
            name,
            requests: histogram.total,
            rps: histogram.total as f64 / window.as_secs_f64(),
            p50: histogram.quantile_ms(0.50),
            p99: histogram.quantile_ms(0.99),
            p999: histogram.quantile_ms(0.999),
            histogram,
            window,
            errors,
            first_error,
            server_cpu: None,
        }
    }

    /// The server's CPU microseconds per request of this scenario.
    fn server_us_per_request(&self) -> Option<f64> {
        let cpu = self.server_cpu?;
        (self.requests > 0).then(|| cpu.as_secs_f64() * 1e6 / self.requests as f64)
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Adds another round of the same scenario.
    fn absorb(self, other: ScenarioResult) -> ScenarioResult {
        let mut histogram = self.histogram;
        histogram.merge(&other.histogram);
        let mut errors = self.errors;
        for (code, n) in other.errors {
            *errors.entry(code).or_insert(0) += n;
        }
        let server_cpu = match (self.server_cpu, other.server_cpu) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        let mut merged = ScenarioResult::new(
            self.name,
            histogram,
            self.window + other.window,
            errors,
            self.first_error.or(other.first_error),
        );
        merged.server_cpu = server_cpu;
        merged
    }
}

async fn run_connection(
    target: Arc<Target>,
    scenario: Arc<Scenario>,
    measure_from: Instant,
    deadline: Instant,
) -> TaskStats {
    let mut stats = TaskStats {
        histogram: Histogram::new(),
        errors: BTreeMap::new(),
        first_error: None,
        last_completion: None,
    };
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    while Instant::now() < deadline {
        let mut current = match sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => match tokio::time::timeout(REQUEST_TIMEOUT, target.connect()).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    record_error(
                        &mut stats,
                        Instant::now() >= measure_from,
                        None,
                        &e.to_string(),
                    );
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    continue;
                }
                Err(_) => {
                    record_error(
                        &mut stats,
                        Instant::now() >= measure_from,
                        None,
                        "connect timed out",
                    );
                    continue;
                }
            },
        };
        let request = match target.request(
            &scenario.path,
            scenario.operation,
            &scenario.body,
            scenario.bench_key.as_deref(),
            scenario.bench_handoff,
        ) {
            Ok(r) => r,
            Err(e) => {
                record_error(&mut stats, true, None, &e.to_string());
                break;
            }
        };
        let started = Instant::now();
        let measured = started >= measure_from;
        match send(&mut current, request).await {
            Ok((status, body)) => {
                let done = Instant::now();
                if status == StatusCode::OK {
                    if measured {
                        stats.histogram.record(done - started);
                        stats.last_completion = Some(done);
                    }
                } else {
                    let text = String::from_utf8_lossy(&body);
                    record_error(&mut stats, measured, Some(status), &text);
                }
                sender = Some(current);
            }
            Err(e) => {
                record_error(&mut stats, measured, None, &e.to_string());
                tokio::time::sleep(RECONNECT_PAUSE).await;
            }
        }
    }
    stats
}

fn record_error(stats: &mut TaskStats, measured: bool, status: Option<StatusCode>, text: &str) {
    if !measured {
        return;
    }
    let code = status.map_or(TRANSPORT_ERROR, |s| s.as_u16());
    *stats.errors.entry(code).or_insert(0) += 1;
    if stats.first_error.is_none() {
        let label = status.map_or_else(|| "transport error".to_owned(), |s| s.to_string());
        let text: String = text.chars().take(2000).collect();
        stats.first_error = Some(format!("{label}: {text}"));
    }
}

async fn run_scenario(
    target: &Arc<Target>,
    scenario: Scenario,
    args: &Args,
) -> Result<ScenarioResult, BoxError> {
    let scenario = Arc::new(scenario);
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let deadline = measure_from + Duration::from_secs(args.duration);
    // The server's CPU time from the start to the end of the measured window.
    let cpu_probe = args.server_pid.map(|pid| {
        tokio::spawn(async move {
            tokio::time::sleep_until(measure_from).await;
            let before = process_cpu(pid)?;
            tokio::time::sleep_until(deadline).await;
            Some(process_cpu(pid)?.saturating_sub(before))
        })
    });
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|_| {
            tokio::spawn(run_connection(
                Arc::clone(target),
                Arc::clone(&scenario),
                measure_from,
                deadline,
            ))
        })
        .collect();
    let mut histogram = Histogram::new();
    let mut errors = BTreeMap::new();
    let mut first_error = None;
    let mut last_completion = measure_from;
    for task in tasks {
        let stats = task.await?;
        histogram.merge(&stats.histogram);
        for (code, n) in stats.errors {
            *errors.entry(code).or_insert(0) += n;
        }
        if first_error.is_none() {
            first_error = stats.first_error;
        }
        if let Some(t) = stats.last_completion {
            last_completion = last_completion.max(t);
        }
    }
    let window = last_completion.saturating_duration_since(measure_from);
    let mut result = ScenarioResult::new(
        scenario.name.clone(),
        histogram,
        window,
        errors,
        first_error,
    );
    if let Some(probe) = cpu_probe {
        result.server_cpu = probe.await?;
        if result.server_cpu.is_none() {
            return Err("--server-pid: cannot read the process's CPU time in /proc".into());
        }
    }
    Ok(result)
}

/// Sends one setup request and returns the parsed JSON of a 200 response.
async fn setup_call(
    target: &Target,
    sender: &mut SendRequest<Full<Bytes>>,
    operation: &str,
    body: serde_json::Value,
) -> Result<serde_json::Value, BoxError> {
    let body = Bytes::from(serde_json::to_vec(&body)?);
    let request = target.request("/", operation, &body, None, false)?;
    let (status, response) = send(sender, request).await?;
    if status != StatusCode::OK {
        return Err(format!(
            "{operation} failed with {status}: {}",
            String::from_utf8_lossy(&response)
        )
        .into());
    }
    Ok(serde_json::from_slice(&response)?)
}

fn string_field<'a>(value: &'a serde_json::Value, pointer: &str) -> Result<&'a str, BoxError> {
    value
        .pointer(pointer)
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| format!("response lacks {pointer}: {value}").into())
}

fn plaintext(size: u32) -> Vec<u8> {
    (0..size)
        .map(|i| (i.wrapping_mul(131) ^ 0x5a) as u8)
        .collect()
}

/// Creates the key(s) and ciphertexts, and builds every scenario's request.
async fn prepare(target: &Target, args: &Args) -> Result<Vec<Scenario>, BoxError> {
    let mut sender = target.connect().await?;
    let key_id = match &args.key_id {
        Some(k) => k.clone(),
        None => {
            let created =
                setup_call(target, &mut sender, "CreateKey", serde_json::json!({})).await?;
            string_field(&created, "/KeyMetadata/KeyId")?.to_owned()
        }
    };
    let encrypt_body = serde_json::json!({
        "KeyId": key_id,
        "Plaintext": base64::engine::general_purpose::STANDARD.encode(plaintext(args.plaintext_size)),
    });
    let mut scenarios = vec![Scenario {
        name: "baseline".to_owned(),
        path: args.baseline_path.clone(),
        operation: "Encrypt",
        body: Bytes::from(serde_json::to_vec(&encrypt_body)?),
        bench_key: None,
        bench_handoff: false,
    }];
    scenarios.extend(key_scenarios(target, &mut sender, args, &key_id, "").await?);
    eprintln!("kms-bench: using key {key_id}");
    if let Some(store) = &args.custom_key_store {
        let created = setup_call(
            target,
            &mut sender,
            "CreateKey",
            serde_json::json!({"Origin": "AWS_CLOUDHSM", "CustomKeyStoreId": store}),
        )
        .await?;
        let store_key = string_field(&created, "/KeyMetadata/KeyId")?.to_owned();
        scenarios.extend(key_scenarios(target, &mut sender, args, &store_key, "-cks").await?);
        eprintln!("kms-bench: using key {store_key} in custom key store {store}");
    }
    Ok(scenarios)
}

/// The `--ops` scenarios for one key (names end with `suffix`).
async fn key_scenarios(
    target: &Target,
    sender: &mut SendRequest<Full<Bytes>>,
    args: &Args,
    key_id: &str,
    suffix: &str,
) -> Result<Vec<Scenario>, BoxError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let encrypt_body = serde_json::json!({
        "KeyId": key_id,
        "Plaintext": b64.encode(plaintext(args.plaintext_size)),
    });
    let encrypted = setup_call(target, sender, "Encrypt", encrypt_body.clone()).await?;
    let ciphertext = string_field(&encrypted, "/CiphertextBlob")?.to_owned();
    let encrypt_body = Bytes::from(serde_json::to_vec(&encrypt_body)?);

    let mut scenarios = Vec::new();
    let mut ops: Vec<Op> = Vec::with_capacity(args.ops.len());
    for op in &args.ops {
        if !ops.contains(op) {
            ops.push(*op);
        }
    }
    for op in ops {
        if op == Op::Encrypt && args.floor {
            for (name, handoff) in [("floor", false), ("handoff", true)] {
                scenarios.push(Scenario {
                    name: format!("{name}-encrypt{suffix}"),
                    path: args.baseline_path.clone(),
                    operation: "Encrypt",
                    body: encrypt_body.clone(),
                    bench_key: Some(key_id.to_owned()),
                    bench_handoff: handoff,
                });
            }
        }
        scenarios.push(match op {
            Op::Encrypt => Scenario {
                name: format!("encrypt{suffix}"),
                path: "/".to_owned(),
                operation: "Encrypt",
                body: encrypt_body.clone(),
                bench_key: None,
                bench_handoff: false,
            },
            Op::Decrypt => Scenario {
                name: format!("decrypt{suffix}"),
                path: "/".to_owned(),
                operation: "Decrypt",
                body: Bytes::from(serde_json::to_vec(&serde_json::json!({
                    "KeyId": key_id,
                    "CiphertextBlob": ciphertext,
                }))?),
                bench_key: None,
                bench_handoff: false,
            },
            Op::GenerateDataKey => Scenario {
                name: format!("generate-data-key{suffix}"),
                path: "/".to_owned(),
                operation: "GenerateDataKey",
                body: Bytes::from(serde_json::to_vec(&serde_json::json!({
                    "KeyId": key_id,
                    "KeySpec": "AES_256",
                }))?),
                bench_key: None,
                bench_handoff: false,
            },
        });
    }
    Ok(scenarios)
}

/// What one raw PKCS#11 thread measured.
struct RawStats {
    histogram: Histogram,
    errors: u64,
    first_error: Option<String>,
    last_completion: Option<std::time::Instant>,
}

/// The in-process PKCS#11 scenario (see the module documentation): blocking, run on its own
/// threads with no server involved.
fn run_raw(args: &Args, kind: RawObject) -> Result<ScenarioResult, BoxError> {
    use cryptoki::error::{Error as CkError, RvError};
    use cryptoki::mechanism::aead::GcmParams;
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::Attribute;
    use cryptoki::session::UserType;
    use std::time::Instant as StdInstant;

    let pin_file = args
        .pkcs11_pin_file
        .as_ref()
        .ok_or("--raw-pkcs11 needs --pkcs11-pin-file")?;
    let pin = secrecy::SecretString::from(
        std::fs::read_to_string(pin_file)?
            .lines()
            .next()
            .unwrap_or("")
            .to_owned(),
    );
    let ctx = hsm::module::load(&args.pkcs11_module)?;
    let profile = hsm::VendorProfile::load(&args.pkcs11_profile)
        .map_err(|e| format!("--pkcs11-profile: {e}"))?;
    let slot = hsm::token::find_slot(&ctx, &args.pkcs11_token, &profile)?;
    // The setup session stays open (and logged in) until the end: session objects live as
    // long as the session that created them.
    let setup = ctx.open_rw_session(slot)?;
    match setup.login(UserType::User, Some(&pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => return Err(e.into()),
    }
    let label = format!("kms-bench-raw-{}", std::process::id());
    let key = setup.generate_key(
        &Mechanism::AesKeyGen,
        &[
            Attribute::Token(kind == RawObject::Token),
            // The same kind of object as the server's: token objects are always private.
            Attribute::Private(kind == RawObject::Token || profile.private_session_keys),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::ValueLen(32.into()),
            Attribute::Label(label.into_bytes()),
        ],
    )?;
    let data = plaintext(args.plaintext_size);
    // About the size of the server's AAD (encryption context and key ARN).
    let aad = [0x61u8; 96];
    let measure_from = StdInstant::now() + Duration::from_secs(args.warmup);
    let deadline = measure_from + Duration::from_secs(args.duration);
    let outcomes: Vec<Result<RawStats, String>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..args.concurrency)
            .map(|t| {
                let (ctx, data) = (&ctx, &data);
                scope.spawn(move || -> Result<RawStats, String> {
                    let session = ctx.open_rw_session(slot).map_err(|e| e.to_string())?;
                    let mut stats = RawStats {
                        histogram: Histogram::new(),
                        errors: 0,
                        first_error: None,
                        last_completion: None,
                    };
                    let mut counter = u64::from(t) << 40;
                    while StdInstant::now() < deadline {
                        counter += 1;
                        let mut iv = [0u8; 12];
                        iv[4..].copy_from_slice(&counter.to_be_bytes());
                        let started = StdInstant::now();
                        let result = GcmParams::new(&mut iv, &aad, 128.into())
                            .and_then(|p| session.encrypt(&Mechanism::AesGcm(p), key, data));
                        let done = StdInstant::now();
                        if started < measure_from {
                            continue;
                        }
                        match result {
                            Ok(_) => {
                                stats.histogram.record(done - started);
                                stats.last_completion = Some(done);
                            }
                            Err(e) => {
                                stats.errors += 1;
                                stats.first_error.get_or_insert_with(|| e.to_string());
                            }
                        }
                    }
                    Ok(stats)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err("a benchmark thread panicked".to_owned()))
            })
            .collect()
    });
    let destroyed = setup.destroy_object(key);
    let mut histogram = Histogram::new();
    let mut errors = 0;
    let mut first_error = None;
    let mut last_completion = measure_from;
    for outcome in outcomes {
        let stats = outcome?;
        histogram.merge(&stats.histogram);
        errors += stats.errors;
        first_error = first_error.or(stats.first_error);
        if let Some(t) = stats.last_completion {
            last_completion = last_completion.max(t);
        }
    }
    destroyed?;
    let window = last_completion.saturating_duration_since(measure_from);
    let name = match kind {
        RawObject::Session => "raw-session",
        RawObject::Token => "raw-token",
    };
    Ok(ScenarioResult::new(
        name.to_owned(),
        histogram,
        window,
        if errors > 0 {
            BTreeMap::from([(TRANSPORT_ERROR, errors)])
        } else {
            BTreeMap::new()
        },
        first_error,
    ))
}

/// Server scenarios compared with the lower of the baseline and the matching raw PKCS#11
/// rate: (scenario, raw scenario, ceiling rate, ratio).
fn targets(results: &[ScenarioResult]) -> Vec<(String, &'static str, f64, f64)> {
    let rate = |name: &str| {
        results
            .iter()
            .find(|r| r.name == name && r.rps > 0.0)
            .map(|r| r.rps)
    };
    let Some(baseline) = rate("baseline") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (server, raw) in [
        ("encrypt", "raw-session"),
        ("floor-encrypt", "raw-session"),
        ("handoff-encrypt", "raw-session"),
        ("encrypt-cks", "raw-token"),
        ("floor-encrypt-cks", "raw-token"),
        ("handoff-encrypt-cks", "raw-token"),
    ] {
        if let (Some(s), Some(r)) = (rate(server), rate(raw)) {
            let ceiling = baseline.min(r);
            out.push((server.to_owned(), raw, ceiling, s / ceiling));
        }
    }
    out
}

/// The median of a non-empty list (the mean of the middle two for an even length).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn print_table(results: &[ScenarioResult], round_ratios: &BTreeMap<String, Vec<f64>>) {
    let baseline = results
        .iter()
        .find(|r| r.name == "baseline")
        .map(|r| r.rps)
        .filter(|rps| *rps > 0.0);
    println!(
        "{:<18} {:>10} {:>8} {:>11} {:>9} {:>9} {:>9} {:>9} {:>11}",
        "scenario",
        "requests",
        "errors",
        "req/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "vs base",
        "srv µs/req"
    );
    for r in results {
        let ratio = baseline.map_or_else(|| "-".to_owned(), |b| format!("{:.3}", r.rps / b));
        let cpu = r
            .server_us_per_request()
            .map_or_else(|| "-".to_owned(), |us| format!("{us:.1}"));
        println!(
            "{:<18} {:>10} {:>8} {:>11.0} {:>9.3} {:>9.3} {:>9.3} {:>9} {:>11}",
            r.name,
            r.requests,
            r.error_count(),
            r.rps,
            r.p50,
            r.p99,
            r.p999,
            ratio,
            cpu
        );
    }
    for (server, raw, ceiling, ratio) in targets(results) {
        if let Some(rounds) = round_ratios.get(&server).filter(|r| r.len() > 1) {
            let each: Vec<String> = rounds.iter().map(|r| format!("{r:.3}")).collect();
            println!(
                "{server}: by round {} (median {:.3})",
                each.join(", "),
                median(rounds)
            );
        }
        if server.starts_with("floor-") {
            println!(
                "{server} = {ratio:.3} of min(baseline, {raw}) = {ceiling:.0} req/s \
                 (HTTP + HSM call inline on the async workers, no KMS work)"
            );
        } else if server.starts_with("handoff-") {
            println!(
                "{server} = {ratio:.3} of min(baseline, {raw}) = {ceiling:.0} req/s \
                 (HTTP + hand-off to the HSM threads + HSM call, no KMS work)"
            );
        } else {
            println!(
                "{server} = {ratio:.3} of min(baseline, {raw}) = {ceiling:.0} req/s (target >= 0.5: {})",
                if ratio >= 0.5 { "met" } else { "MISSED" }
            );
        }
    }
}

fn json_report(
    args: &Args,
    results: &[ScenarioResult],
    round_ratios: &BTreeMap<String, Vec<f64>>,
) -> serde_json::Value {
    let baseline = results
        .iter()
        .find(|r| r.name == "baseline")
        .map(|r| r.rps)
        .filter(|rps| *rps > 0.0);
    let scenarios: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let errors: serde_json::Map<String, serde_json::Value> = r
                .errors
                .iter()
                .map(|(code, n)| {
                    let key = if *code == TRANSPORT_ERROR {
                        "transport".to_owned()
                    } else {
                        code.to_string()
                    };
                    (key, serde_json::Value::from(*n))
                })
                .collect();
            serde_json::json!({
                "scenario": r.name,
                "requests": r.requests,
                "errors": r.error_count(),
                "errors_by_status": errors,
                "first_error": r.first_error,
                "requests_per_second": r.rps,
                "p50_ms": r.p50,
                "p99_ms": r.p99,
                "p999_ms": r.p999,
                "measured_secs": r.window.as_secs_f64(),
                "ratio_to_baseline": baseline.map(|b| r.rps / b),
                "server_cpu_us_per_request": r.server_us_per_request(),
            })
        })
        .collect();
    let targets: Vec<serde_json::Value> = targets(results)
        .into_iter()
        .map(|(server, raw, ceiling, ratio)| {
            serde_json::json!({
                "scenario": server,
                "raw_scenario": raw,
                "floor": server.starts_with("floor-"),
                "handoff": server.starts_with("handoff-"),
                "ceiling_requests_per_second": ceiling,
                "ratio": ratio,
                "round_ratios": round_ratios.get(&server),
                "round_median": round_ratios.get(&server).map(|r| median(r)),
            })
        })
        .collect();
    serde_json::json!({
        "endpoint": args.endpoint,
        "concurrency": args.concurrency,
        "duration_secs": args.duration,
        "warmup_secs": args.warmup,
        "rounds": args.rounds,
        "plaintext_size": args.plaintext_size,
        "scenarios": scenarios,
        "targets": targets,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let (addrs, host_header) = match resolve_endpoint(&args.endpoint).await {
        Ok(resolved) => resolved,
        Err(e) => {
            eprintln!("kms-bench: {e}");
            return ExitCode::from(2);
        }
    };
    if !args.baseline_path.starts_with('/') {
        eprintln!("kms-bench: --baseline-path must start with '/'");
        return ExitCode::from(2);
    }
    let target = Arc::new(Target {
        addrs,
        host_header,
        signer: Signer::new(
            args.access_key_id.as_str(),
            args.secret_access_key.as_str(),
            args.region.as_str(),
            "kms",
        ),
    });
    let scenarios = match prepare(&target, &args).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kms-bench: setup failed: {e}");
            return ExitCode::from(2);
        }
    };

    let mut raw_kinds = args.raw_pkcs11.clone();
    raw_kinds.dedup();
    let mut results: Vec<ScenarioResult> = Vec::new();
    // Each round's own ratios (the round's rates against the same round's baseline and raw
    // rate), to show how far a pooled ratio moves with the machine's drift.
    let mut round_ratios: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for round in 1..=args.rounds {
        let mut this_round = Vec::with_capacity(scenarios.len() + raw_kinds.len());
        for scenario in scenarios.iter().cloned() {
            eprintln!(
                "kms-bench: round {round}/{}: {} ({} connections, {}s warm-up + {}s)",
                args.rounds, scenario.name, args.concurrency, args.warmup, args.duration
            );
            match run_scenario(&target, scenario, &args).await {
                Ok(result) => this_round.push(result),
                Err(e) => {
                    eprintln!("kms-bench: scenario failed: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        for kind in &raw_kinds {
            eprintln!(
                "kms-bench: round {round}/{}: raw PKCS#11 C_Encrypt on a {kind:?} object in '{}' ({} threads, {}s warm-up + {}s)",
                args.rounds, args.pkcs11_token, args.concurrency, args.warmup, args.duration
            );
            #[allow(clippy::disallowed_methods)] // a benchmark tool: nothing else runs meanwhile
            match tokio::task::block_in_place(|| run_raw(&args, *kind)) {
                Ok(result) => this_round.push(result),
                Err(e) => {
                    eprintln!("kms-bench: raw PKCS#11 scenario failed: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        for (server, _, _, ratio) in targets(&this_round) {
            round_ratios.entry(server).or_default().push(ratio);
        }
        if args.rounds > 1 {
            let line: Vec<String> = this_round
                .iter()
                .map(|r| format!("{} {:.0}/s", r.name, r.rps))
                .collect();
            eprintln!("kms-bench: round {round}: {}", line.join(", "));
        }
        results = if results.is_empty() {
            this_round
        } else {
            results
                .into_iter()
                .zip(this_round)
                .map(|(all, one)| all.absorb(one))
                .collect()
        };
    }
    for result in &results {
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
                "kms-bench: {} errors ({}); first: {first}",
                result.name,
                by_status.join(", ")
            );
        }
    }

    print_table(&results, &round_ratios);
    if args.json {
        println!("{}", json_report(&args, &results, &round_ratios));
    }
    if results.iter().any(|r| r.error_count() > 0) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_lists() {
        assert_eq!(median(&[0.3, 0.1, 0.2]), 0.2);
        assert_eq!(median(&[0.4, 0.1, 0.3, 0.2]), 0.25);
        assert_eq!(median(&[0.5]), 0.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn histogram_quantiles_are_close() {
        let mut h = Histogram::new();
        for micros in 1..=100_000u64 {
            h.record(Duration::from_micros(micros));
        }
        for (q, expected_ms) in [(0.5, 50.0), (0.99, 99.0), (0.999, 99.9)] {
            let got = h.quantile_ms(q);
            assert!((got - expected_ms).abs() / expected_ms < 0.02, "{q}: {got}");
        }
        let mut small = Histogram::new();
        small.record(Duration::from_micros(7));
        assert!((small.quantile_ms(0.5) - 0.007).abs() < 1e-9);
        let mut huge = Histogram::new();
        huge.record(Duration::from_secs(1 << 40));
        assert_eq!(huge.total, 1);
    }

    #[tokio::test]
    async fn only_loopback_endpoints() {
        for ok in [
            "http://127.0.0.1:4599",
            "http://127.1.2.3:80/",
            "http://[::1]:4599",
            "http://localhost:4599",
        ] {
            let (addrs, _) = resolve_endpoint(ok).await.unwrap();
            assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:4599",
            "http://example.com",
            "https://127.0.0.1:4599",
            "http://[::ffff:7f00:1]:4599",
            "http://user@127.0.0.1:4599",
            "http://127.0.0.1:4599/prefix",
            "http://0.0.0.0:4599",
        ] {
            assert!(resolve_endpoint(bad).await.is_err(), "{bad}");
        }
    }
}
