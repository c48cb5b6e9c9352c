//! Options both server subcommands share: the load, the rounds, the open loop, the server's
//! PID, the output, and the raw ceilings (PKCS#11 and library).

use std::path::PathBuf;
use std::time::Duration;

use crate::raw::RawKind;
use crate::rawlib::LibKind;
use crate::runner::Settings;

/// The load and how the run is reported.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Connections (one request in flight each); also the raw scenarios' threads unless
    /// `--raw-threads` says otherwise.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub concurrency: u32,
    /// Measured seconds per scenario and round.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub duration: u64,
    /// Unmeasured warm-up seconds before each scenario's measurement.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub warmup: u64,
    /// Interleaved rounds: every closed-loop and raw scenario runs once per round, and each
    /// scenario's rate and latencies are taken over all its rounds; compared scenarios also
    /// get their ratio per round and the median. A machine whose speed drifts (a shared VM)
    /// then slows every scenario alike.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
    /// Open loop: also run each operation (not the baseline or floor) once at this fixed rate
    /// (requests/s) after the rounds; latency counts from each request's scheduled time. 0: no
    /// open-loop scenarios.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub rate: u32,
    /// Measured seconds of each open-loop scenario.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub rate_duration: u64,
    /// p99 limit (ms) of the open-loop verdict (the rate held, no errors, p99 under this).
    #[arg(long, default_value_t = 10.0)]
    pub rate_max_p99_ms: f64,
    /// The server's process id (on this machine): its CPU time and context switches over each
    /// measured window are reported per request. On a shared VM, whose speed drifts, the CPU
    /// per request moves far less than the rates do, so it is the number to compare builds by.
    /// Several (`--server-pid KMS,PROXY`, or repeated) are summed: the CPU of a whole stack.
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// Also print the report as one line of JSON, last on stdout.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report to this file (input of `loadgen compare`).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Exit with status 3 when a target is missed (by default targets are only reported).
    #[arg(long)]
    pub strict: bool,
}

impl RunArgs {
    pub fn settings(&self) -> Settings {
        Settings {
            concurrency: self.concurrency,
            warmup: Duration::from_secs(self.warmup),
            duration: Duration::from_secs(self.duration),
            rounds: self.rounds,
            rate: self.rate,
            rate_duration: Duration::from_secs(self.rate_duration),
            server_pids: self.server_pid.clone().into(),
        }
    }

    /// The settings as JSON fields of the report.
    pub fn json_fields(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("concurrency".into(), self.concurrency.into());
        m.insert("duration_secs".into(), self.duration.into());
        m.insert("warmup_secs".into(), self.warmup.into());
        m.insert("rounds".into(), self.rounds.into());
        m.insert("rate".into(), self.rate.into());
        m.insert("rate_duration_secs".into(), self.rate_duration.into());
        m.insert(
            "signature_reuse_secs".into(),
            crate::target::SIGNATURE_REUSE.as_secs_f64().into(),
        );
        m
    }
}

/// The raw ceilings (no server; see `raw.rs` and `rawlib.rs`).
#[derive(Debug, Clone, clap::Args)]
pub struct RawArgs {
    /// In-process PKCS#11 scenarios with no server: C_Encrypt on a session or a token key
    /// object (`raw-session`, `raw-token`); SHA-256 + C_Sign CKM_ECDSA P-256, CKM_RSA_PKCS
    /// RSA-2048, C_Sign CKM_SHA256_HMAC on session key objects (`raw-token-sign-p256`,
    /// `raw-token-sign-rsa2048`, `raw-token-hmac256`).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub raw_pkcs11: Vec<RawKind>,
    /// In-process library scenarios with no server (`raw-lib-…`): the software root's and the
    /// host's calls of `aws-lc-rs` for Sign P-256, Sign RSA-2048, GenerateMac HMAC-256 and
    /// Verify P-256, on the `--message-size` message.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub raw_lib: Vec<LibKind>,
    /// Thread counts of the raw scenarios (default: `--concurrency`). With more than one, the
    /// first is the reference of the ratios and the best is shown beside it.
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub raw_threads: Vec<u16>,
    /// PKCS#11 module of the raw scenarios.
    #[arg(long, default_value = "/usr/lib/softhsm/libsofthsm2.so")]
    pub pkcs11_module: PathBuf,
    /// Token label of the raw scenarios (the server's token, or one like it).
    #[arg(long, default_value = "kms-root")]
    pub pkcs11_token: String,
    /// File whose first line is the token's user PIN.
    #[arg(long)]
    pub pkcs11_pin_file: Option<PathBuf>,
    /// HSM profile (built-in name or file) whose key attributes and IV policy the raw scenarios
    /// copy (a session object is private only if its `private_session_keys` says so, as in
    /// the KMS's PKCS#11 root).
    #[arg(long, default_value = "softhsm2")]
    pub pkcs11_profile: String,
}

impl RawArgs {
    /// The PKCS#11 kinds, each once, in the order given.
    pub fn kinds(&self) -> Vec<RawKind> {
        dedup(&self.raw_pkcs11)
    }

    /// The library kinds, each once, in the order given.
    pub fn lib_kinds(&self) -> Vec<LibKind> {
        dedup(&self.raw_lib)
    }

    /// The thread counts, each once, in the order given (default: `concurrency`).
    pub fn threads(&self, concurrency: u32) -> Vec<usize> {
        let mut threads: Vec<usize> = Vec::new();
        for t in &self.raw_threads {
            if !threads.contains(&usize::from(*t)) {
                threads.push(usize::from(*t));
            }
        }
        if threads.is_empty() {
            threads.push(concurrency as usize);
        }
        threads
    }
}

/// Deduplicates a list of options, keeping the first occurrence's position.
pub fn dedup<T: PartialEq + Copy>(items: &[T]) -> Vec<T> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(item) {
            out.push(*item);
        }
    }
    out
}
