//! `loadgen`: one load generator for both servers of the workspace.
//!
//! - `loadgen kms ...`: a running `kms` server (`kms.rs`);
//! - `loadgen xks ...`: a running `xks-proxy` (`xks.rs`);
//! - `loadgen compare ...`: an A/B table from the JSON reports of earlier runs (`compare.rs`).
//!
//! What both server subcommands share (`runner.rs`, `report.rs`): the closed loop over N
//! HTTP/1.1 keep-alive connections with one request in flight each; the open loop at a fixed
//! rate with latency counted from each request's scheduled time; interleaved rounds with each
//! compared scenario's ratio per round and the median; the latency histogram with p50, p99 and
//! p99.9; the baseline scenario, i.e. the server's bare HTTP route with the same headers and body
//! as the real request, measured in the same run; the raw in-process ceilings of the token
//! (`raw.rs`: PKCS#11 AES-GCM and signing) and of the crypto library (`rawlib.rs`: aws-lc-rs,
//! the software root's); the server's CPU µs and context switches per request (`--server-pid`)
//! and the load generator's own CPU per request; one table on stdout and a JSON report
//! (`--json`, `--report FILE`).
//!
//! Loopback only: endpoints must resolve to loopback addresses only (`target.rs`). The run
//! stops by itself (every request has a timeout) and starts no process.
//!
//! **Signing.** Every request carries a SigV4 signature made by [`sigv4::Signer`], i.e. by the
//! `aws-sigv4` crate. That signer costs ~8-12 µs per signature (the hand-written signer of the
//! tools this replaces: ~2-3 µs), and the load generator shares the machine's two cores with
//! the server: signing every request afresh at 40k requests/s would take ~40% of a core away
//! from the server and move the measured rates by that much. So each scenario's request is
//! signed once and the signature reused for up to one second ([`target::SIGNATURE_REUSE`]); a
//! signature stays valid within the servers' clock-skew window (5 minutes) and the servers
//! keep no per-signature state, so each request is still verified in full, as a real
//! client's. The reuse is the same for every scenario, the baseline included, so the load
//! generator's cost per request, and hence the ratios, stay comparable. Setup calls (CreateKey,
//! CreateGrant, ...) are signed afresh.
//!
//! Exit status: 0; 1 when a scenario had errors; 2 when the setup or a run failed; 3 with
//! `--strict` when a target was missed (and from `compare` when a check failed).

#![forbid(unsafe_code)]

mod cli;
mod compare;
mod histogram;
mod kms;
mod procstat;
mod raw;
mod rawlib;
mod report;
mod runner;
mod target;
mod xks;

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::cli::{RawArgs, RunArgs};
use crate::raw::{Pkcs11Options, RawBench, RawOptions};
use crate::rawlib::LibBench;
use crate::report::Report;
use crate::runner::{Plan, RawPlan, RawScenario};
use crate::target::Endpoint;

/// The load generator allocates a few buffers per request and shares the cores with the
/// server; mimalloc, as in both servers, keeps its share small.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Load generator for the kms server and the xks-proxy (loopback only)",
    // A later option wins: the benchmark scripts pass their defaults first and the caller's
    // arguments after them.
    args_override_self = true
)]
struct Cli {
    /// Async worker threads of the load generator (default: the CPU count).
    #[arg(long, global = true)]
    client_threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Benchmark a running kms server.
    Kms(Box<kms::KmsArgs>),
    /// Benchmark a running xks-proxy.
    Xks(Box<xks::XksArgs>),
    /// Compare the reports of alternating runs of two builds (A/B).
    Compare(compare::CompareArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Compare(args) = &cli.command {
        return match compare::run(args) {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("loadgen: {e}");
                ExitCode::from(2)
            }
        };
    }
    let threads = cli.client_threads.unwrap_or_else(hsm::cpus).max(1);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("loadgen")
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = runtime.block_on(async {
        match &cli.command {
            Command::Kms(args) => {
                let endpoint = match Endpoint::resolve_list(&args.endpoint).await {
                    Ok(e) => e,
                    Err(e) => return fail("kms", "endpoint", e),
                };
                let plan = kms::prepare(&endpoint, args).await;
                let raw = raw_options(
                    &args.raw,
                    kms::plaintext(args.plaintext_size),
                    kms::RAW_AAD.to_vec(),
                    kms::message(args.message_size),
                );
                execute("kms", endpoint, plan, raw, &args.run, &args.raw).await
            }
            Command::Xks(args) => {
                let endpoint = match Endpoint::resolve(&args.endpoint).await {
                    Ok(e) => e,
                    Err(e) => return fail("xks", "endpoint", e),
                };
                let plan = xks::prepare(&endpoint, args).await;
                let raw = xks::raw_aad(args.aad_size).and_then(|aad| {
                    let plaintext = xks::plaintext(args.plaintext_size);
                    raw_options(&args.raw, plaintext.clone(), aad, plaintext)
                });
                execute("xks", endpoint, plan, raw, &args.run, &args.raw).await
            }
            Command::Compare(_) => 2,
        }
    });
    drop(runtime);
    // C_Finalize while the process is intact (see hsm::module::finalize_all).
    hsm::module::finalize_all();
    ExitCode::from(code)
}

/// The raw scenarios' options, when any are asked for (`message`: of the signing and MAC
/// scenarios).
fn raw_options(
    args: &RawArgs,
    plaintext: Vec<u8>,
    aad: Vec<u8>,
    message: Vec<u8>,
) -> Result<Option<RawOptions>, BoxError> {
    if args.raw_pkcs11.is_empty() && args.raw_lib.is_empty() {
        return Ok(None);
    }
    if args.raw_pkcs11.is_empty() {
        // Library scenarios only: no token to open.
        return Ok(Some(RawOptions {
            pkcs11: None,
            plaintext,
            aad,
            message,
        }));
    }
    let pin_file = args
        .pkcs11_pin_file
        .clone()
        .ok_or("--raw-pkcs11 needs --pkcs11-pin-file")?;
    Ok(Some(RawOptions {
        pkcs11: Some(Pkcs11Options {
            module: args.pkcs11_module.clone(),
            token_label: args.pkcs11_token.clone(),
            pin_file,
            profile: args.pkcs11_profile.clone(),
        }),
        plaintext,
        aad,
        message,
    }))
}

/// Destroys the raw PKCS#11 scenarios' keys.
async fn close_raw(subcommand: &str, bench: Option<Arc<RawBench>>) {
    let Some(bench) = bench else { return };
    let closed = tokio::task::spawn_blocking(move || bench.close()).await;
    if let Ok(Err(e)) | Err(e) = closed.map_err(BoxError::from) {
        eprintln!("loadgen {subcommand}: could not destroy the raw scenarios' keys: {e}");
    }
}

/// Reports a failure of the setup or the run; the exit status.
fn fail(subcommand: &str, what: &str, e: BoxError) -> u8 {
    eprintln!("loadgen {subcommand}: {what}: {e}");
    2
}

/// Runs a prepared plan and reports; the exit status.
async fn execute(
    subcommand: &'static str,
    endpoint: Endpoint,
    plan: Result<Plan, BoxError>,
    raw: Result<Option<RawOptions>, BoxError>,
    run: &RunArgs,
    raw_args: &RawArgs,
) -> u8 {
    let fail = |what: &str, e: BoxError| fail(subcommand, what, e);
    let plan = match plan {
        Ok(p) => p,
        Err(e) => return fail("setup failed", e),
    };
    let raw = match raw {
        Ok(r) => r,
        Err(e) => return fail("raw PKCS#11", e),
    };
    let raw_plan = match raw {
        None => None,
        Some(options) => {
            let kinds = raw_args.kinds();
            let lib_kinds = raw_args.lib_kinds();
            let threads = raw_args.threads(run.concurrency);
            let max = threads.iter().copied().max().unwrap_or(1);
            let pkcs11 = if kinds.is_empty() {
                None
            } else {
                let (options, kinds) = (options.clone(), kinds.clone());
                match tokio::task::spawn_blocking(move || RawBench::open(&options, &kinds, max))
                    .await
                    .map_err(BoxError::from)
                    .and_then(|r| r)
                {
                    Ok(bench) => Some(Arc::new(bench)),
                    Err(e) => return fail("raw PKCS#11 setup failed", e),
                }
            };
            let lib = if lib_kinds.is_empty() {
                None
            } else {
                let (message, lib_kinds) = (options.message.clone(), lib_kinds.clone());
                match tokio::task::spawn_blocking(move || LibBench::open(&lib_kinds, message))
                    .await
                    .map_err(BoxError::from)
                    .and_then(|r| r)
                {
                    Ok(bench) => Some(Arc::new(bench)),
                    Err(e) => {
                        close_raw(subcommand, pkcs11).await;
                        return fail("raw library setup failed", e);
                    }
                }
            };
            let mut scenarios: Vec<RawScenario> =
                kinds.into_iter().map(RawScenario::Pkcs11).collect();
            scenarios.extend(lib_kinds.into_iter().map(RawScenario::Lib));
            Some(RawPlan {
                pkcs11,
                lib,
                scenarios,
                threads,
            })
        }
    };
    let mut report = Report {
        subcommand,
        settings: run.json_fields(),
        checks: plan.checks,
        ..Report::default()
    };
    report
        .settings
        .insert("endpoint".into(), endpoint.url.clone().into());
    let endpoint = Arc::new(endpoint);
    let outcome = runner::run(
        &endpoint,
        &plan.scenarios,
        raw_plan.as_ref(),
        &run.settings(),
        &mut report,
    )
    .await;
    if let Some(plan) = raw_plan {
        close_raw(subcommand, plan.pkcs11).await;
    }
    if let Err(e) = outcome {
        return fail("run failed", e);
    }
    print!("{}", report.render());
    let json = report.json();
    if run.json {
        println!("{json}");
    }
    if let Some(path) = &run.report {
        if let Err(e) = std::fs::write(path, format!("{json}\n")) {
            return fail(&format!("--report {}", path.display()), e.into());
        }
    }
    if report.had_errors() {
        1
    } else if run.strict && report.missed_a_target() {
        3
    } else {
        0
    }
}
