//! `xks-bench`: one command that measures, in the same run and on the same machine,
//!
//! 1. **raw**: the SoftHSM C_Encrypt rate in-process (AES-256-GCM, same key object kind as the
//!    proxy uses: a persistent, sensitive, non-extractable token key; same IV, AAD and
//!    plaintext sizes), with 1 and with `--raw-threads` threads;
//! 2. **baseline**: `POST /__baseline` of the proxy's own HTTP stack (same listener, same
//!    connection handling, same signed headers and body size as Encrypt; no authentication,
//!    parsing or HSM work);
//! 3. **floor**: `POST /__baseline/floor/<key>`: the bare route plus the key's AES-GCM
//!    encryption in the HSM inline, nothing else (no SigV4, JSON, checks or hand-off): the
//!    least work an Encrypt can cost, so no proxy can exceed its rate on this machine;
//! 4. **proxy**: Encrypt and Decrypt through the proxy, every request freshly SigV4-signed
//!    (`host;x-amz-date`, like KMS), over `--concurrency` HTTP/1.1 keep-alive connections, as
//!    fast as they go (closed loop);
//! 5. **fixed rate**: Encrypt and Decrypt at `--rate` requests/s (open loop: latency is
//!    measured from each request's scheduled send time, so a stall is not hidden).
//!
//! It creates its own SoftHSM token in a temporary directory, starts the proxy in-process on
//! 127.0.0.1:0 (its own runtime and threads), and stops by itself. Nothing leaves loopback.
//!
//! ```text
//! cargo run --release -p xks-proxy --bin xks-bench -- --duration 10
//! ```

#![forbid(unsafe_code)]
// A benchmark tool (to be replaced by tools/loadgen): it blocks on purpose.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;

/// mimalloc instead of glibc malloc (as in the `kms` binary): many small buffers per request.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::json;
use sigv4::{SignableRequest, Signer};
use xks_wire::{self, Operation};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "xks-bench";
const PIN: &str = "1234";
const SO_PIN: &str = "12345678";
const KEY_LABEL: &str = "xks-bench-key";
const AKID: &str = "AKIAXKSBENCHMARK2345";
const SECRET: &str = "eGtzLWJlbmNoLXNlY3JldC1mb3ItbG9vcGJhY2stb25seQ==";
const PREFIX: &str = "bench";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Parser)]
#[command(
    name = "xks-bench",
    about = "Benchmark xks-proxy against raw SoftHSM and its bare HTTP stack"
)]
struct Args {
    /// Measured seconds per closed-loop scenario and round.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    duration: u64,
    /// Interleaved rounds of the raw and closed-loop scenarios; each scenario's rate and
    /// latencies are taken over all its rounds, so a machine whose speed drifts (a shared VM)
    /// slows every scenario alike.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// Unmeasured warm-up seconds before each scenario.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=60))]
    warmup: u64,
    /// Keep-alive connections (one request in flight each).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    concurrency: u32,
    /// Fixed request rate (requests/s) of the open-loop scenarios; 0 skips them.
    #[arg(long, default_value_t = 1800)]
    rate: u32,
    /// Measured seconds of each fixed-rate scenario.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    rate_duration: u64,
    /// Plaintext bytes per Encrypt (KMS sends its own ciphertext: a few hundred bytes).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=4300))]
    plaintext_size: u32,
    /// AAD bytes per request.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(0..=8192))]
    aad_size: u32,
    /// Threads of the second raw C_Encrypt measurement (the first uses 1).
    #[arg(long, default_value_t = 2)]
    raw_threads: usize,
    /// PKCS#11 sessions of the proxy (and blocking threads). SoftHSM's symmetric calls on one
    /// token key do not scale beyond two.
    #[arg(long, default_value_t = 2)]
    sessions: usize,
    /// Blocking HSM threads of the proxy (`[pool] threads`; 0: the number of sessions).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// HSM calls admitted at once (`[pool] max_in_flight`; 0: 4 x threads).
    #[arg(long, default_value_t = 0)]
    max_in_flight: usize,
    /// Async worker threads of the proxy's runtime (`[server] async_threads`; 0: the binary's
    /// default, derived from the CPUs and HSM threads).
    #[arg(long, default_value_t = 0)]
    server_threads: usize,
    /// Async worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Also print the results as JSON.
    #[arg(long)]
    json: bool,
}

/// One measured scenario.
#[derive(Debug, Clone, serde::Serialize)]
struct Outcome {
    name: String,
    requests: u64,
    errors: u64,
    seconds: f64,
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    /// Context switches of this process (all threads) per request, while measuring.
    ctx_switches_per_request: f64,
    /// CPU time of this process (all threads, user + system) per request, in microseconds.
    cpu_us_per_request: f64,
    /// CPU time of the proxy's threads per request (0 for the raw scenarios).
    server_cpu_us_per_request: f64,
}

/// Process counters at one instant: context switches, CPU microseconds of the whole process,
/// and CPU microseconds of the proxy's threads (named `xks-proxy`).
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    switches: u64,
    cpu_us: u64,
    server_cpu_us: u64,
}

/// utime + stime (in microseconds) from a `/proc/.../stat` line.
fn stat_cpu_us(stat: &str) -> u64 {
    // Fields after the command name (which may contain spaces) start after the last ')';
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) * 10_000
}

fn counters() -> Counters {
    let mut c = Counters {
        cpu_us: std::fs::read_to_string("/proc/self/stat")
            .map(|s| stat_cpu_us(&s))
            .unwrap_or(0),
        ..Counters::default()
    };
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return c;
    };
    for t in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("status")) {
            for line in s.lines() {
                if let Some(v) = line
                    .strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
                {
                    c.switches += v.trim().parse::<u64>().unwrap_or(0);
                }
            }
        }
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.starts_with("xks-proxy") || comm.starts_with("xks-hsm") {
            if let Ok(s) = std::fs::read_to_string(t.path().join("stat")) {
                c.server_cpu_us += stat_cpu_us(&s);
            }
        }
    }
    c
}

fn outcome(name: &str, mut lat_us: Vec<u32>, errors: u64, seconds: f64) -> Outcome {
    lat_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat_us.is_empty() {
            return 0.0;
        }
        let i = ((lat_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(lat_us[i.min(lat_us.len() - 1)]) / 1000.0
    };
    Outcome {
        name: name.to_string(),
        requests: lat_us.len() as u64,
        errors,
        seconds,
        rate: lat_us.len() as f64 / seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        p999_ms: pct(0.999),
        ctx_switches_per_request: 0.0,
        cpu_us_per_request: 0.0,
        server_cpu_us_per_request: 0.0,
    }
}

/// What was consumed since `start`.
fn outcome_counters(start: Counters) -> Counters {
    let now = counters();
    Counters {
        switches: now.switches.saturating_sub(start.switches),
        cpu_us: now.cpu_us.saturating_sub(start.cpu_us),
        server_cpu_us: now.server_cpu_us.saturating_sub(start.server_cpu_us),
    }
}

/// One scenario's raw measurements, merged over rounds.
struct Sample {
    name: String,
    lat_us: Vec<u32>,
    errors: u64,
    seconds: f64,
    used: Counters,
}

impl Sample {
    fn merge(&mut self, other: Sample) {
        self.lat_us.extend(other.lat_us);
        self.errors += other.errors;
        self.seconds += other.seconds;
        self.used.switches += other.used.switches;
        self.used.cpu_us += other.used.cpu_us;
        self.used.server_cpu_us += other.used.server_cpu_us;
    }

    fn outcome(self) -> Outcome {
        with_switches(
            outcome(&self.name, self.lat_us, self.errors, self.seconds),
            self.used,
        )
    }
}

fn with_switches(mut o: Outcome, used: Counters) -> Outcome {
    if o.requests > 0 {
        let n = o.requests as f64;
        o.ctx_switches_per_request = used.switches as f64 / n;
        o.cpu_us_per_request = used.cpu_us as f64 / n;
        o.server_cpu_us_per_request = used.server_cpu_us as f64 / n;
    }
    o
}

// ---------------------------------------------------------------------------------------------
// SoftHSM setup and the raw measurement
// ---------------------------------------------------------------------------------------------

fn setup_softhsm(dir: &Path) -> Result<(), BoxError> {
    if !Path::new(MODULE).exists() {
        return Err(
            format!("SoftHSMv2 is not installed ({MODULE}): run softhsm/install.sh").into(),
        );
    }
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens)?;
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        ),
    )?;
    // Read by C_Initialize: set before the module is loaded, while the process has one thread.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let profile = hsm::VendorProfile::builtin("softhsm2").ok_or("no softhsm2 profile")?;
    hsm::token::init_token(
        Path::new(MODULE),
        TOKEN,
        &SO_PIN.to_string().into(),
        &PIN.to_string().into(),
        &profile,
    )?;
    let ctx = hsm::module::load(Path::new(MODULE))?;
    let slot = hsm::token::find_slot(&ctx, TOKEN, &profile)?;
    let s = ctx.open_rw_session(slot)?;
    s.login(UserType::User, Some(&PIN.to_string().into()))?;
    // The same kind of object the proxy serves (see `xks-proxy create-key`).
    s.generate_key(
        &Mechanism::AesKeyGen,
        &[
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::ValueLen(32.into()),
            Attribute::Label(KEY_LABEL.as_bytes().to_vec()),
        ],
    )?;
    s.logout()?;
    Ok(())
}

/// C_EncryptInit + C_Encrypt (AES-256-GCM) in a loop on `threads` sessions of their own.
fn raw_encrypt(args: &Args, threads: usize) -> Result<Sample, BoxError> {
    let profile = hsm::VendorProfile::builtin("softhsm2").ok_or("no softhsm2 profile")?;
    let ctx = hsm::module::load(Path::new(MODULE))?;
    let slot = hsm::token::find_slot(&ctx, TOKEN, &profile)?;
    let anchor = ctx.open_rw_session(slot)?;
    match anchor.login(UserType::User, Some(&PIN.to_string().into())) {
        Ok(()) => {}
        Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => return Err(e.into()),
    }
    let key = *anchor
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(KEY_LABEL.as_bytes().to_vec()),
        ])?
        .first()
        .ok_or("bench key not found")?;
    let plaintext = vec![0x42u8; args.plaintext_size as usize];
    let aad =
        xks_wire::gcm_aad(&vec![7u8; args.aad_size as usize], b"xkp\x01").ok_or("AAD too long")?;
    let warmup = Duration::from_secs(args.warmup);
    let duration = Duration::from_secs(args.duration);
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for _ in 0..threads {
        let (ctx, plaintext, aad) = (ctx.clone(), plaintext.clone(), aad.clone());
        let (stop, measuring) = (stop.clone(), measuring.clone());
        handles.push(std::thread::spawn(
            move || -> Result<(Vec<u32>, u64), String> {
                let s = ctx.open_rw_session(slot).map_err(|e| e.to_string())?;
                let mut lat = Vec::with_capacity(1 << 20);
                let mut errors = 0u64;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let mut iv = [0u8; 12];
                    iv[..8].copy_from_slice(&n.to_be_bytes());
                    let t = Instant::now();
                    let r = GcmParams::new(&mut iv, &aad, 128.into())
                        .and_then(|p| s.encrypt(&Mechanism::AesGcm(p), key, &plaintext));
                    let us = u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX);
                    if measuring.load(Ordering::Relaxed) {
                        match r {
                            Ok(_) => lat.push(us),
                            Err(_) => errors += 1,
                        }
                    }
                }
                Ok((lat, errors))
            },
        ));
    }
    std::thread::sleep(warmup);
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let c0 = counters();
    std::thread::sleep(duration);
    measuring.store(false, Ordering::Relaxed);
    let done = outcome_counters(c0);
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for h in handles {
        let (lat, e) = h.join().map_err(|_| "raw thread failed")??;
        all.extend(lat);
        errors += e;
    }
    drop(anchor);
    let name = format!(
        "raw C_Encrypt, {threads} thread{}",
        if threads == 1 { "" } else { "s" }
    );
    Ok(Sample {
        name,
        lat_us: all,
        errors,
        seconds,
        used: done,
    })
}

// ---------------------------------------------------------------------------------------------
// The proxy and the load generator
// ---------------------------------------------------------------------------------------------

fn proxy_config(dir: &Path, args: &Args) -> Result<xks_proxy::Config, BoxError> {
    let toml = format!(
        "[server]\nlisten = '127.0.0.1:0'\nbaseline_route = true\n\
         [pool]\nthreads = {}\nmax_in_flight = {}\n\
         [[hsms]]\nname = 'softhsm'\nmodule = '{MODULE}'\ntoken_label = '{TOKEN}'\npin = '{PIN}'\nmax_sessions = {}\n\
         [[keys]]\nid = 'bench-key'\nlabel = '{KEY_LABEL}'\n\
         [[keystores]]\nprefix = '{PREFIX}'\n\
         [[keystores.credentials]]\naccess_key_id = '{AKID}'\nsecret_access_key = '{SECRET}'\n",
        args.threads, args.max_in_flight, args.sessions
    );
    xks_proxy::config::parse(&toml, dir, "xks-bench").map_err(|e| e.to_string().into())
}

#[derive(Clone)]
struct Target {
    addr: std::net::SocketAddr,
    host: String,
    signer: Signer,
}

impl Target {
    fn request(&self, path: &str, body: &Bytes) -> Result<http::Request<Full<Bytes>>, BoxError> {
        let s = self.signer.sign(
            &SignableRequest {
                method: "POST",
                host: &self.host,
                path,
                query: "",
                headers: &[],
                body,
            },
            chrono::Utc::now(),
        )?;
        let mut request = http::Request::post(path)
            .header("host", &self.host)
            .header("content-type", "application/json");
        for (name, value) in s.headers() {
            request = request.header(name, value);
        }
        Ok(request.body(Full::new(body.clone()))?)
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, BoxError> {
        let stream = tokio::net::TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(send)
    }
}

async fn send(
    conn: &mut SendRequest<Full<Bytes>>,
    req: http::Request<Full<Bytes>>,
) -> Result<(u16, Bytes), BoxError> {
    let exchange = async {
        conn.ready().await?;
        let resp = conn.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok::<_, BoxError>((status, body))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| BoxError::from("request timed out"))?
}

/// What to send.
#[derive(Clone)]
struct Scenario {
    name: String,
    path: String,
    body: Bytes,
}

/// Closed loop: `concurrency` connections, one request in flight each, as fast as possible.
async fn closed_loop(t: &Target, s: &Scenario, args: &Args) -> Result<Sample, BoxError> {
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let first_error: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (t, s) = (t.clone(), s.clone());
        let (measuring, stop, first_error) = (measuring.clone(), stop.clone(), first_error.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(1 << 16);
            let mut errors = 0u64;
            let mut conn = t.connect().await.ok();
            while !stop.load(Ordering::Relaxed) {
                let Some(c) = conn.as_mut() else {
                    errors += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    conn = t.connect().await.ok();
                    continue;
                };
                let started = Instant::now();
                let result = match t.request(&s.path, &s.body) {
                    Ok(req) => send(c, req).await,
                    Err(e) => Err(e),
                };
                let us = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
                let ok = matches!(&result, Ok((200, _)));
                if !ok {
                    {
                        let mut fe = first_error.lock().unwrap_or_else(|p| p.into_inner());
                        if fe.is_none() {
                            *fe = Some(match &result {
                                Ok((st, b)) => format!("{st} {}", String::from_utf8_lossy(b)),
                                Err(e) => e.to_string(),
                            });
                        }
                    }
                    if result.is_err() {
                        conn = t.connect().await.ok();
                    }
                }
                if measuring.load(Ordering::Relaxed) {
                    if ok {
                        lat.push(us);
                    } else {
                        errors += 1;
                    }
                }
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let c0 = counters();
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    measuring.store(false, Ordering::Relaxed);
    let done = outcome_counters(c0);
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (lat, e) = task.await?;
        all.extend(lat);
        errors += e;
    }
    if let Some(e) = first_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        eprintln!("{}: first error: {e}", s.name);
    }
    Ok(Sample {
        name: s.name.clone(),
        lat_us: all,
        errors,
        seconds,
        used: done,
    })
}

/// Open loop at a fixed rate: request k is due at `t0 + k/rate`; connection i sends requests
/// i, i+C, i+2C, ...; latency counts from the due time.
async fn fixed_rate(t: &Target, s: &Scenario, args: &Args) -> Result<Outcome, BoxError> {
    let rate = f64::from(args.rate);
    let conns = args.concurrency.max(1) as u64;
    let total = (rate * args.rate_duration as f64) as u64;
    let warm = (rate * args.warmup as f64) as u64;
    let t0 = tokio::time::Instant::now() + Duration::from_millis(100);
    let mut tasks = Vec::new();
    for i in 0..conns {
        let (t, s) = (t.clone(), s.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut conn = t.connect().await.ok();
            let mut k = i;
            while k < warm + total {
                let due = t0 + Duration::from_secs_f64(k as f64 / rate);
                tokio::time::sleep_until(due).await;
                let ok = match conn.as_mut() {
                    Some(c) => match t.request(&s.path, &s.body) {
                        Ok(req) => match send(c, req).await {
                            Ok((200, _)) => true,
                            Ok(_) => false,
                            Err(_) => {
                                conn = t.connect().await.ok();
                                false
                            }
                        },
                        Err(_) => false,
                    },
                    None => {
                        conn = t.connect().await.ok();
                        false
                    }
                };
                if k >= warm {
                    let us = u32::try_from(due.elapsed().as_micros()).unwrap_or(u32::MAX);
                    if ok {
                        lat.push(us);
                    } else {
                        errors += 1;
                    }
                }
                k += conns;
            }
            (lat, errors)
        }));
    }
    let started = t0 + Duration::from_secs_f64(warm as f64 / rate);
    tokio::time::sleep_until(started).await;
    let c0 = counters();
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (lat, e) = task.await?;
        all.extend(lat);
        errors += e;
    }
    let seconds = started.elapsed().as_secs_f64();
    let done = outcome_counters(c0);
    Ok(with_switches(outcome(&s.name, all, errors, seconds), done))
}

fn scenario_bodies(args: &Args) -> (Bytes, serde_json::Value) {
    let plaintext = vec![0x42u8; args.plaintext_size as usize];
    let aad = vec![7u8; args.aad_size as usize];
    let md = json!({
        "awsPrincipalArn": "arn:aws:iam::123456789012:role/bench",
        "kmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/0b7c4c0e-1111-2222-3333-444455556666",
        "kmsOperation": "Encrypt",
        "kmsRequestId": "5112f4d6-db54-4af4-ae30-c55a22a8dfae",
    });
    let mut enc = json!({
        "requestMetadata": md,
        "plaintext": xks_wire::Base64::encode(&plaintext).0,
        "encryptionAlgorithm": "AES_GCM",
    });
    if !aad.is_empty() {
        enc["additionalAuthenticatedData"] = json!(xks_wire::Base64::encode(&aad).0);
    }
    (Bytes::from(enc.to_string()), enc)
}

/// The load generator's target and the closed-loop scenarios (baseline, Encrypt, Decrypt).
async fn prepare(
    addr: std::net::SocketAddr,
    args: &Args,
) -> Result<(Target, Vec<Scenario>), BoxError> {
    let t = Target {
        addr,
        host: addr.to_string(),
        signer: Signer::new(AKID, SECRET, "us-east-1", xks_wire::SIGV4_SERVICE),
    };
    let enc_path = xks_wire::uri_path(PREFIX, Operation::Encrypt, "bench-key");
    let dec_path = xks_wire::uri_path(PREFIX, Operation::Decrypt, "bench-key");
    let (enc_body, enc_json) = scenario_bodies(args);
    // One ciphertext for the Decrypt scenarios.
    let mut c = t.connect().await?;
    let (status, body) = send(&mut c, t.request(&enc_path, &enc_body)?).await?;
    if status != 200 {
        return Err(format!(
            "setup Encrypt failed: {status} {}",
            String::from_utf8_lossy(&body)
        )
        .into());
    }
    let e: serde_json::Value = serde_json::from_slice(&body)?;
    let mut dec = json!({
        "requestMetadata": enc_json["requestMetadata"],
        "ciphertext": e["ciphertext"],
        "ciphertextMetadata": e["ciphertextMetadata"],
        "initializationVector": e["initializationVector"],
        "authenticationTag": e["authenticationTag"],
        "encryptionAlgorithm": "AES_GCM",
    });
    dec["requestMetadata"]["kmsOperation"] = json!("Decrypt");
    if let Some(aad) = enc_json.get("additionalAuthenticatedData") {
        dec["additionalAuthenticatedData"] = aad.clone();
    }
    let dec_body = Bytes::from(dec.to_string());
    let (status, _) = send(&mut c, t.request(&dec_path, &dec_body)?).await?;
    if status != 200 {
        return Err(format!("setup Decrypt failed: {status}").into());
    }
    let baseline = Scenario {
        name: "baseline (bare route)".into(),
        path: "/__baseline".into(),
        body: enc_body.clone(),
    };
    // The work floor: the bare route plus the key's HSM encryption inline (see the proxy's
    // `/__baseline/floor/` route); no proxy serves Encrypt with less work on this machine.
    let floor = Scenario {
        name: "floor (bare route + HSM encrypt)".into(),
        path: "/__baseline/floor/bench-key".into(),
        body: enc_body.clone(),
    };
    let encrypt = Scenario {
        name: "proxy Encrypt".into(),
        path: enc_path,
        body: enc_body,
    };
    let decrypt = Scenario {
        name: "proxy Decrypt".into(),
        path: dec_path,
        body: dec_body,
    };
    let _ = args;
    Ok((t, vec![baseline, floor, encrypt, decrypt]))
}

/// One round of the closed-loop scenarios.
async fn closed_round(
    t: &Target,
    scenarios: &[Scenario],
    args: &Args,
) -> Result<Vec<Sample>, BoxError> {
    let mut out = Vec::new();
    for s in scenarios {
        eprintln!("running {} ...", s.name);
        out.push(closed_loop(t, s, args).await?);
    }
    Ok(out)
}

/// The open-loop scenarios (Encrypt and Decrypt at `--rate`), once.
async fn fixed_rates(
    t: &Target,
    scenarios: &[Scenario],
    args: &Args,
) -> Result<Vec<Outcome>, BoxError> {
    let mut out = Vec::new();
    if args.rate > 0 {
        for s in scenarios
            .iter()
            .filter(|s| !s.path.starts_with("/__baseline"))
        {
            let mut fixed = s.clone();
            fixed.name = format!("{} @ {} req/s", s.name, args.rate);
            eprintln!("running {} ...", fixed.name);
            out.push(fixed_rate(t, &fixed, args).await?);
        }
    }
    Ok(out)
}

fn print_table(all: &[Outcome]) {
    println!(
        "| scenario | requests | errors | req/s | p50 ms | p99 ms | p99.9 ms | CPU µs/req (proxy) | ctx sw/req |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for o in all {
        println!(
            "| {} | {} | {} | {:.0} | {:.3} | {:.3} | {:.3} | {:.1} ({:.1}) | {:.2} |",
            o.name,
            o.requests,
            o.errors,
            o.rate,
            o.p50_ms,
            o.p99_ms,
            o.p999_ms,
            o.cpu_us_per_request,
            o.server_cpu_us_per_request,
            o.ctx_switches_per_request
        );
    }
}

fn run(args: &Args, dir: &Path) -> Result<bool, BoxError> {
    setup_softhsm(dir)?;

    // The proxy on a runtime of its own, built like the binary builds it.
    let config = proxy_config(dir, args)?;
    let mut server_rt = xks_proxy::runtime_builder(&config);
    if args.server_threads > 0 {
        server_rt.worker_threads(args.server_threads);
    }
    let server_rt = server_rt.build()?;
    let proxy = server_rt.block_on(xks_proxy::start(config))?;
    let addr = proxy.addr;
    // The load generator on another.
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .thread_name("xks-bench-client")
        .enable_all()
        .build()?;
    let measured = client_rt.block_on(async {
        let (t, scenarios) = prepare(addr, args).await?;
        // Interleaved rounds: raw 1 thread, raw n threads, baseline, floor, Encrypt, Decrypt.
        let mut samples: Vec<Sample> = Vec::new();
        for round in 1..=args.rounds {
            eprintln!(
                "round {round}/{}: running raw C_Encrypt, 1 thread ...",
                args.rounds
            );
            let mut this = vec![tokio::task::block_in_place(|| raw_encrypt(args, 1))?];
            eprintln!(
                "round {round}/{}: running raw C_Encrypt, {} threads ...",
                args.rounds, args.raw_threads
            );
            this.push(tokio::task::block_in_place(|| {
                raw_encrypt(args, args.raw_threads.max(1))
            })?);
            this.extend(closed_round(&t, &scenarios, args).await?);
            let line: Vec<String> = this
                .iter()
                .map(|s| format!("{} {:.0}/s", s.name, s.lat_us.len() as f64 / s.seconds))
                .collect();
            eprintln!("round {round}: {}", line.join(", "));
            if samples.is_empty() {
                samples = this;
            } else {
                for (all, one) in samples.iter_mut().zip(this) {
                    all.merge(one);
                }
            }
        }
        let fixed = fixed_rates(&t, &scenarios, args).await?;
        Ok::<_, BoxError>((samples, fixed))
    });
    server_rt.block_on(proxy.shutdown());
    let (samples, fixed) = measured?;
    let mut outcomes: Vec<Outcome> = samples.into_iter().map(Sample::outcome).collect();
    let load = outcomes.split_off(2);
    let (raw1, raw_n) = (outcomes[0].clone(), outcomes[1].clone());
    let mut load = load;
    load.extend(fixed);

    let mut all = vec![raw1.clone(), raw_n.clone()];
    all.extend(load.iter().cloned());
    print_table(&all);

    // (a): the raw rate of one caller (one thread, one session: the per-call path the proxy
    // drives), and, for information, the better of 1 and `--raw-threads` threads.
    let raw_one = raw1.rate;
    let raw_best = raw1.rate.max(raw_n.rate);
    let base = load.first().map_or(0.0, |o| o.rate);
    let reference = raw_one.min(base);
    let reference_best = raw_best.min(base);
    let mut pass = true;
    println!();
    println!(
        "reference: min(raw C_Encrypt 1 thread {:.0}/s, bare route {:.0}/s) = {:.0}/s (50% = {:.0}/s); \
         with the best raw rate ({:.0}/s): {:.0}/s",
        raw_one, base, reference, reference / 2.0, raw_best, reference_best
    );
    for o in load.iter().skip(1) {
        if o.name.starts_with("floor") {
            println!(
                "{}: {:.0} req/s = {:.0}% of the reference ({:.0}% against the best raw rate): \
                 HTTP + the HSM call only, no proxy reaches more here",
                o.name,
                o.rate,
                if reference > 0.0 {
                    o.rate / reference * 100.0
                } else {
                    0.0
                },
                if reference_best > 0.0 {
                    o.rate / reference_best * 100.0
                } else {
                    0.0
                }
            );
        } else if o.name.contains(" @ ") {
            let ok = o.errors == 0 && o.p99_ms < 10.0 && o.rate >= 0.98 * f64::from(args.rate);
            pass &= ok;
            println!(
                "{}: {:.0} req/s sustained, p99 {:.3} ms, {} errors -> {}",
                o.name,
                o.rate,
                o.p99_ms,
                o.errors,
                if ok { "PASS (p99 < 10 ms)" } else { "FAIL" }
            );
        } else {
            let ratio = if reference > 0.0 {
                o.rate / reference
            } else {
                0.0
            };
            let ratio_best = if reference_best > 0.0 {
                o.rate / reference_best
            } else {
                0.0
            };
            let ok = o.errors == 0 && ratio >= 0.5;
            pass &= ok;
            println!(
                "{}: top rate {:.0} req/s = {:.0}% of the reference -> {} ({:.0}% against the best raw rate)",
                o.name,
                o.rate,
                ratio * 100.0,
                if ok { "PASS (>= 50%)" } else { "FAIL" },
                ratio_best * 100.0
            );
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    }
    Ok(pass)
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("XKS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,cryptoki=off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let dir: PathBuf = std::env::temp_dir().join(format!("xks-bench-{}", std::process::id()));
    let result = run(&args, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(3),
        Err(e) => {
            eprintln!("xks-bench: {e}");
            ExitCode::from(2)
        }
    }
}
