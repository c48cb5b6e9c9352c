//! The raw PKCS#11 ceilings: no server at all, the load generator itself encrypting in
//! process, on threads of its own, exactly as the servers do per Encrypt. What a server adds
//! on top (HTTP, SigV4, JSON, the hand-off to its HSM threads) is then the difference.
//!
//! Each call is [`hsm::gcm::encrypt`], the one AES-GCM path both servers use: a pooled
//! session of an [`hsm::Token`], C_EncryptInit + C_Encrypt (cryptoki's length query),
//! AES-256-GCM with a 96-bit IV from the host's CSPRNG (or the token's, as the profile says),
//! a 128-bit tag, the subcommand's plaintext and AAD sizes. The key is generated for the run
//! and destroyed afterwards, with the attributes of the servers' own keys:
//! - a *session* object (as the KMS's PKCS#11 root unwraps key versions): sensitive,
//!   non-extractable, CKA_PRIVATE only when the profile's `private_session_keys` says so;
//! - a *token* object (a custom key store's keys, the XKS proxy's external keys): private,
//!   sensitive, non-extractable.
//!
//! The token pool has one session per thread. Every thread draws IVs from a pool of its own:
//! the servers share one pool between their two HSM threads, where it is hardly contended,
//! while at 32 raw threads on two cores a thread preempted inside the pool's lock (it holds it
//! for a `getrandom` every ~340 IVs) would stall the others and lower the ceiling for a reason
//! no server has.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectHandle};
use secrecy::SecretString;

use crate::histogram::Histogram;
use crate::procstat::{self, Process};
use crate::report::{RawTag, ScenarioResult, TRANSPORT_ERROR};
use crate::BoxError;

/// The kind of key object a raw scenario encrypts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum RawKind {
    /// A session object (the KMS's PKCS#11 root unwraps key versions as session objects).
    Session,
    /// A token object (custom key store keys, the XKS proxy's external keys).
    Token,
}

impl RawKind {
    /// The scenario group name (`raw-session`, `raw-token`).
    pub fn group(self) -> &'static str {
        match self {
            RawKind::Session => "raw-session",
            RawKind::Token => "raw-token",
        }
    }

    /// The object kind, for messages.
    pub fn object(self) -> &'static str {
        match self {
            RawKind::Session => "session",
            RawKind::Token => "token",
        }
    }
}

/// Where the raw scenarios run and what they encrypt.
#[derive(Debug, Clone)]
pub struct RawOptions {
    pub module: PathBuf,
    pub token_label: String,
    pub pin_file: PathBuf,
    /// Built-in profile name or file: the key attributes and IV policy of the servers.
    pub profile: String,
    pub plaintext: Vec<u8>,
    pub aad: Vec<u8>,
}

/// Blocks this thread until `t`: the raw scenarios run on plain threads (`spawn_blocking`),
/// whose only job meanwhile is to wait for the measured window's ends.
#[allow(clippy::disallowed_methods)]
fn sleep_until(t: Instant) {
    std::thread::sleep(t.saturating_duration_since(Instant::now()));
}

/// An open token with one key object per kind.
pub struct RawBench {
    token: Arc<hsm::Token>,
    keys: Vec<(RawKind, ObjectHandle)>,
    plaintext: Vec<u8>,
    aad: Vec<u8>,
}

impl RawBench {
    /// Logs in to the token and generates a key of each kind; `max_threads` sessions.
    pub fn open(
        options: &RawOptions,
        kinds: &[RawKind],
        max_threads: usize,
    ) -> Result<RawBench, BoxError> {
        let pin_text = std::fs::read_to_string(&options.pin_file)
            .map_err(|e| format!("{}: {e}", options.pin_file.display()))?;
        let pin = SecretString::from(pin_text.lines().next().unwrap_or("").to_owned());
        let profile = hsm::VendorProfile::load(&options.profile)
            .map_err(|e| format!("--pkcs11-profile: {e}"))?;
        let private_session_keys = profile.private_session_keys;
        let token = hsm::Token::open(hsm::TokenConfig {
            module: options.module.clone(),
            token_label: options.token_label.clone(),
            pin,
            so: false,
            max_sessions: max_threads.max(1),
            session_wait: Duration::from_secs(10),
            profile: Arc::new(profile),
        })?;
        let mut keys = Vec::new();
        for &kind in kinds {
            let label = format!("loadgen-raw-{}-{}", kind.object(), std::process::id());
            let attributes = [
                Attribute::Token(kind == RawKind::Token),
                // As the servers' keys: token objects are always private.
                Attribute::Private(kind == RawKind::Token || private_session_keys),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::ValueLen(32.into()),
                Attribute::Label(label.into_bytes()),
            ];
            // On the anchor session: a session object lives as long as its session.
            let key = token.with_anchor(|s| s.generate_key(&Mechanism::AesKeyGen, &attributes))?;
            keys.push((kind, key));
        }
        Ok(RawBench {
            token,
            keys,
            plaintext: options.plaintext.clone(),
            aad: options.aad.clone(),
        })
    }

    /// Runs `threads` threads encrypting with the `kind` key for `warmup` + `duration`; the
    /// calls started in the measured window count.
    pub fn run(
        &self,
        kind: RawKind,
        threads: usize,
        warmup: Duration,
        duration: Duration,
    ) -> Result<ScenarioResult, BoxError> {
        let key = self
            .keys
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, h)| *h)
            .ok_or_else(|| format!("no {} key was generated", kind.object()))?;
        let ivs_policy_host = self.token.profile().host_generated_iv;
        let measure_from = Instant::now() + warmup;
        let deadline = measure_from + duration;
        struct ThreadStats {
            histogram: Histogram,
            errors: u64,
            first_error: Option<String>,
            last: Option<Instant>,
        }
        // The threads run until the counters were read at the deadline: a thread that has
        // exited no longer shows in /proc, and its CPU time would be missed.
        let stop = AtomicBool::new(false);
        let (outcomes, usage) = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads.max(1))
                .map(|_| {
                    scope.spawn(|| {
                        let pool = hsm::iv::IvPool::new();
                        let ivs = if ivs_policy_host {
                            hsm::gcm::IvPolicy::Host(&pool)
                        } else {
                            hsm::gcm::IvPolicy::Token
                        };
                        let mut stats = ThreadStats {
                            histogram: Histogram::new(),
                            errors: 0,
                            first_error: None,
                            last: None,
                        };
                        while !stop.load(Ordering::Relaxed) {
                            let started = Instant::now();
                            let result = hsm::gcm::encrypt(
                                &self.token,
                                key,
                                ivs,
                                12,
                                &self.plaintext,
                                &self.aad,
                            );
                            let done = Instant::now();
                            if started < measure_from || started >= deadline {
                                continue;
                            }
                            match result {
                                Ok(_) => {
                                    stats.histogram.record(done - started);
                                    stats.last = Some(done);
                                }
                                Err(e) => {
                                    stats.errors += 1;
                                    stats.first_error.get_or_insert_with(|| e.to_string());
                                }
                            }
                        }
                        stats
                    })
                })
                .collect();
            // The load generator's CPU over the measured window is the raw calls' CPU.
            sleep_until(measure_from);
            let before = procstat::read(Process::This);
            sleep_until(deadline);
            let after = procstat::read(Process::This);
            stop.store(true, Ordering::Relaxed);
            let usage = before.zip(after).map(|(a, b)| b.since(a));
            let outcomes: Vec<Option<ThreadStats>> =
                handles.into_iter().map(|h| h.join().ok()).collect();
            (outcomes, usage)
        });
        let mut histogram = Histogram::new();
        let mut errors = 0;
        let mut first_error = None;
        let mut last = measure_from;
        for outcome in outcomes {
            let stats = outcome.ok_or("a raw PKCS#11 thread failed")?;
            histogram.merge(&stats.histogram);
            errors += stats.errors;
            first_error = first_error.or(stats.first_error);
            if let Some(t) = stats.last {
                last = last.max(t);
            }
        }
        let mut result = ScenarioResult::new(
            kind.group(),
            histogram,
            last.saturating_duration_since(measure_from),
        );
        result.raw = Some(RawTag {
            group: kind.group().to_owned(),
            threads,
        });
        if errors > 0 {
            result.errors.insert(TRANSPORT_ERROR, errors);
            result.first_error = first_error;
        }
        result.client = usage;
        Ok(result)
    }

    /// Destroys the generated keys (token objects would otherwise stay on the token).
    pub fn close(&self) -> Result<(), BoxError> {
        for (_, key) in &self.keys {
            self.token.with_anchor(|s| s.destroy_object(*key))?;
        }
        Ok(())
    }
}
