//! The raw PKCS#11 ceilings: no server at all, the load generator itself calling the token in
//! process, on threads of its own, exactly as the servers do per request. What a server adds
//! on top (HTTP, SigV4, JSON, the hand-off to its HSM threads) is then the difference.
//!
//! Encryption kinds (`session`, `token`): each call is [`hsm::gcm::encrypt`], the one AES-GCM
//! path both servers use: a pooled session of an [`hsm::Token`], C_EncryptInit + C_Encrypt
//! (cryptoki's length query), AES-256-GCM with a 96-bit IV from the host's CSPRNG (or the
//! token's, as the profile says), a 128-bit tag, the subcommand's plaintext and AAD sizes. The
//! key is generated for the run and destroyed afterwards, with the attributes of the servers'
//! own keys:
//! - a *session* object (as the KMS's PKCS#11 root unwraps key versions): sensitive,
//!   non-extractable, CKA_PRIVATE only when the profile's `private_session_keys` says so;
//! - a *token* object (a custom key store's keys, the XKS proxy's external keys): private,
//!   sensitive, non-extractable.
//!
//! Key-type kinds (`sign-p256`, `sign-rsa2048`, `hmac256`; scenarios `raw-token-…`): what the
//! KMS's PKCS#11 root does per Sign or GenerateMac of a RAW message (`src/backend/pkcs11/`):
//! the host's SHA-256 of the message (aws-lc-rs, as the service hashes), then C_SignInit +
//! C_Sign on a pooled session with a private, sensitive, non-extractable *session* object (as
//! the root unwraps them): `CKM_ECDSA` over the digest with the `r || s` result converted to
//! DER; `CKM_RSA_PKCS` over the SHA-256 DigestInfo and the digest (RSASSA_PKCS1_V1_5_SHA_256);
//! `CKM_SHA256_HMAC` over the message itself (no host hash). The keys are generated in the
//! token for the run (a P-256 or 2048-bit RSA pair, a 32-byte generic secret) and destroyed
//! afterwards.
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
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use secrecy::SecretString;

use crate::histogram::Histogram;
use crate::procstat::{self, Process};
use crate::report::{RawTag, ScenarioResult, TRANSPORT_ERROR};
use crate::BoxError;

/// The kind of key object and call a raw PKCS#11 scenario makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum RawKind {
    /// C_Encrypt (AES-GCM) on a session object (the KMS's PKCS#11 root unwraps key versions
    /// as session objects).
    Session,
    /// C_Encrypt (AES-GCM) on a token object (custom key store keys, the XKS proxy's external
    /// keys).
    Token,
    /// SHA-256 on the host + C_Sign `CKM_ECDSA` with a P-256 session key, DER output.
    SignP256,
    /// SHA-256 on the host + C_Sign `CKM_RSA_PKCS` over DigestInfo || hash, RSA-2048.
    SignRsa2048,
    /// C_Sign `CKM_SHA256_HMAC` with a 32-byte generic secret session key.
    Hmac256,
}

impl RawKind {
    /// The scenario group name (`raw-session`, `raw-token`, `raw-token-sign-p256`, ...).
    pub fn group(self) -> &'static str {
        match self {
            RawKind::Session => "raw-session",
            RawKind::Token => "raw-token",
            RawKind::SignP256 => "raw-token-sign-p256",
            RawKind::SignRsa2048 => "raw-token-sign-rsa2048",
            RawKind::Hmac256 => "raw-token-hmac256",
        }
    }

    /// What one call does, for progress messages.
    pub fn describe(self) -> &'static str {
        match self {
            RawKind::Session => "C_Encrypt on a session object",
            RawKind::Token => "C_Encrypt on a token object",
            RawKind::SignP256 => "SHA-256 + C_Sign CKM_ECDSA P-256",
            RawKind::SignRsa2048 => "SHA-256 + C_Sign CKM_RSA_PKCS RSA-2048",
            RawKind::Hmac256 => "C_Sign CKM_SHA256_HMAC",
        }
    }

    fn label(self) -> &'static str {
        match self {
            RawKind::Session => "session",
            RawKind::Token => "token",
            RawKind::SignP256 => "sign-p256",
            RawKind::SignRsa2048 => "sign-rsa2048",
            RawKind::Hmac256 => "hmac256",
        }
    }
}

/// The token of the raw PKCS#11 scenarios.
#[derive(Debug, Clone)]
pub struct Pkcs11Options {
    pub module: PathBuf,
    pub token_label: String,
    pub pin_file: PathBuf,
    /// Built-in profile name or file: the key attributes and IV policy of the servers.
    pub profile: String,
}

/// Where the raw scenarios run and what they encrypt or sign.
#[derive(Debug, Clone)]
pub struct RawOptions {
    /// The token (`None` when only library scenarios run).
    pub pkcs11: Option<Pkcs11Options>,
    pub plaintext: Vec<u8>,
    pub aad: Vec<u8>,
    /// The message of the signing and MAC kinds.
    pub message: Vec<u8>,
}

/// Blocks this thread until `t`: the raw scenarios run on plain threads (`spawn_blocking`),
/// whose only job meanwhile is to wait for the measured window's ends.
#[allow(clippy::disallowed_methods)]
fn sleep_until(t: Instant) {
    std::thread::sleep(t.saturating_duration_since(Instant::now()));
}

/// Runs `threads` threads, each calling the work `make` gives it (built on that thread) for
/// `warmup` + `duration`; the calls started in the measured window count. The result is named
/// and tagged `group`; the load generator's CPU over the window is its client CPU (the work's
/// own cost).
pub fn measure<F, W>(
    group: &str,
    threads: usize,
    warmup: Duration,
    duration: Duration,
    make: F,
) -> Result<ScenarioResult, BoxError>
where
    F: Fn() -> W + Sync,
    W: FnMut() -> Result<(), BoxError>,
{
    let measure_from = Instant::now() + warmup;
    let deadline = measure_from + duration;
    struct ThreadStats {
        histogram: Histogram,
        errors: u64,
        first_error: Option<String>,
        last: Option<Instant>,
    }
    // The threads run until the counters were read at the deadline: a thread that has exited
    // no longer shows in /proc, and its CPU time would be missed.
    let stop = AtomicBool::new(false);
    let (outcomes, usage) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut work = make();
                    let mut stats = ThreadStats {
                        histogram: Histogram::new(),
                        errors: 0,
                        first_error: None,
                        last: None,
                    };
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        let result = work();
                        let done = Instant::now();
                        if started < measure_from || started >= deadline {
                            continue;
                        }
                        match result {
                            Ok(()) => {
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
        let stats = outcome.ok_or("a raw scenario's thread failed")?;
        histogram.merge(&stats.histogram);
        errors += stats.errors;
        first_error = first_error.or(stats.first_error);
        if let Some(t) = stats.last {
            last = last.max(t);
        }
    }
    let mut result = ScenarioResult::new(
        group,
        histogram,
        last.saturating_duration_since(measure_from),
    );
    result.raw = Some(RawTag {
        group: group.to_owned(),
        threads,
    });
    if errors > 0 {
        result.errors.insert(TRANSPORT_ERROR, errors);
        result.first_error = first_error;
    }
    result.client = usage;
    Ok(result)
}

/// The DER encoding of the P-256 curve's OID (CKA_EC_PARAMS).
const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// The DigestInfo prefix of SHA-256 (RFC 8017 §9.2, note 1).
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// A DER INTEGER of an unsigned big-endian value.
fn der_integer(out: &mut Vec<u8>, value: &[u8]) {
    let start = value.iter().position(|b| *b != 0).unwrap_or(value.len());
    let value = &value[start..];
    let pad = value.first().is_none_or(|b| b & 0x80 != 0);
    out.push(0x02);
    out.push((value.len() + usize::from(pad)) as u8);
    if pad {
        out.push(0);
    }
    out.extend_from_slice(value);
}

/// An ECDSA signature `r || s` (PKCS#11) as DER `SEQUENCE { r, s }` (what the PKCS#11 root
/// returns); `None` for an odd or oversized input.
pub fn ecdsa_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) || raw.len() > 2 * 60 {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let mut body = Vec::with_capacity(raw.len() + 6);
    der_integer(&mut body, r);
    der_integer(&mut body, s);
    let mut out = Vec::with_capacity(body.len() + 2);
    out.push(0x30);
    out.push(body.len() as u8);
    out.extend_from_slice(&body);
    Some(out)
}

/// SHA-256 of `message` as the service computes it for a RAW message.
fn sha256(message: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, message)
        .as_ref()
        .to_vec()
}

/// A generated key: the handle used and every handle to destroy.
struct RawKey {
    kind: RawKind,
    handle: ObjectHandle,
    objects: Vec<ObjectHandle>,
}

/// An open token with one key object per kind.
pub struct RawBench {
    token: Arc<hsm::Token>,
    keys: Vec<RawKey>,
    plaintext: Vec<u8>,
    aad: Vec<u8>,
    message: Vec<u8>,
}

impl RawBench {
    /// Logs in to the token and generates a key of each kind; `max_threads` sessions.
    pub fn open(
        options: &RawOptions,
        kinds: &[RawKind],
        max_threads: usize,
    ) -> Result<RawBench, BoxError> {
        let token_options = options
            .pkcs11
            .as_ref()
            .ok_or("the raw PKCS#11 scenarios need a token")?;
        let pin_text = std::fs::read_to_string(&token_options.pin_file)
            .map_err(|e| format!("{}: {e}", token_options.pin_file.display()))?;
        let pin = SecretString::from(pin_text.lines().next().unwrap_or("").to_owned());
        let profile = hsm::VendorProfile::load(&token_options.profile)
            .map_err(|e| format!("--pkcs11-profile: {e}"))?;
        let private_session_keys = profile.private_session_keys;
        let token = hsm::Token::open(hsm::TokenConfig {
            module: token_options.module.clone(),
            token_label: token_options.token_label.clone(),
            pin,
            so: false,
            max_sessions: max_threads.max(1),
            session_wait: Duration::from_secs(10),
            profile: Arc::new(profile),
        })?;
        let mut bench = RawBench {
            token,
            keys: Vec::new(),
            plaintext: options.plaintext.clone(),
            aad: options.aad.clone(),
            message: options.message.clone(),
        };
        for &kind in kinds {
            let key = bench.generate(kind, private_session_keys);
            match key {
                Ok(key) => bench.keys.push(key),
                Err(e) => {
                    // Token objects made so far would otherwise stay on the token.
                    let _ = bench.close();
                    return Err(e);
                }
            }
        }
        Ok(bench)
    }

    /// Generates the key of `kind` on the anchor session (a session object lives as long as
    /// its session).
    fn generate(&self, kind: RawKind, private_session_keys: bool) -> Result<RawKey, BoxError> {
        let label = format!("loadgen-raw-{}-{}", kind.label(), std::process::id()).into_bytes();
        // As the PKCS#11 root unwraps key pairs and HMAC keys: private, sensitive,
        // non-extractable session objects.
        let private_template = |class: ObjectClass, key_type: KeyType| {
            vec![
                Attribute::Class(class),
                Attribute::KeyType(key_type),
                Attribute::Token(false),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
                Attribute::Label(label.clone()),
            ]
        };
        let public_template = |extra: Vec<Attribute>| {
            let mut t = vec![
                Attribute::Token(false),
                Attribute::Private(false),
                Attribute::Verify(true),
                Attribute::Label(label.clone()),
            ];
            t.extend(extra);
            t
        };
        let pair = |mechanism: Mechanism<'_>, public: Vec<Attribute>, private: Vec<Attribute>| {
            let (public, private) = self
                .token
                .with_anchor(|s| s.generate_key_pair(&mechanism, &public, &private))?;
            Ok::<_, BoxError>(RawKey {
                kind,
                handle: private,
                objects: vec![private, public],
            })
        };
        match kind {
            RawKind::Session | RawKind::Token => {
                let attributes = [
                    Attribute::Token(kind == RawKind::Token),
                    // As the servers' keys: token objects are always private.
                    Attribute::Private(kind == RawKind::Token || private_session_keys),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                    Attribute::ValueLen(32.into()),
                    Attribute::Label(label.clone()),
                ];
                let key = self
                    .token
                    .with_anchor(|s| s.generate_key(&Mechanism::AesKeyGen, &attributes))?;
                Ok(RawKey {
                    kind,
                    handle: key,
                    objects: vec![key],
                })
            }
            RawKind::SignP256 => pair(
                Mechanism::EccKeyPairGen,
                public_template(vec![Attribute::EcParams(P256_PARAMS.to_vec())]),
                private_template(ObjectClass::PRIVATE_KEY, KeyType::EC),
            ),
            RawKind::SignRsa2048 => pair(
                Mechanism::RsaPkcsKeyPairGen,
                public_template(vec![
                    Attribute::ModulusBits(2048.into()),
                    Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
                ]),
                private_template(ObjectClass::PRIVATE_KEY, KeyType::RSA),
            ),
            RawKind::Hmac256 => {
                let mut attributes =
                    private_template(ObjectClass::SECRET_KEY, KeyType::GENERIC_SECRET);
                attributes.push(Attribute::ValueLen(32.into()));
                let key = self.token.with_anchor(|s| {
                    s.generate_key(&Mechanism::GenericSecretKeyGen, &attributes)
                })?;
                Ok(RawKey {
                    kind,
                    handle: key,
                    objects: vec![key],
                })
            }
        }
    }

    /// Runs `threads` threads making the `kind` call for `warmup` + `duration`; the calls
    /// started in the measured window count.
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
            .find(|k| k.kind == kind)
            .map(|k| k.handle)
            .ok_or_else(|| format!("no {} key was generated", kind.label()))?;
        let token = &self.token;
        let message = self.message.as_slice();
        match kind {
            RawKind::Session | RawKind::Token => {
                let host_ivs = token.profile().host_generated_iv;
                measure(kind.group(), threads, warmup, duration, || {
                    let pool = hsm::iv::IvPool::new();
                    move || {
                        let ivs = if host_ivs {
                            hsm::gcm::IvPolicy::Host(&pool)
                        } else {
                            hsm::gcm::IvPolicy::Token
                        };
                        hsm::gcm::encrypt(token, key, ivs, 12, &self.plaintext, &self.aad)?;
                        Ok(())
                    }
                })
            }
            RawKind::SignP256 => measure(kind.group(), threads, warmup, duration, || {
                move || {
                    let digest = sha256(message);
                    let raw =
                        token.with_session(false, |s| s.sign(&Mechanism::Ecdsa, key, &digest))?;
                    ecdsa_der(&raw).ok_or("the token returned an ECDSA signature of odd size")?;
                    Ok(())
                }
            }),
            RawKind::SignRsa2048 => measure(kind.group(), threads, warmup, duration, || {
                move || {
                    let mut data = SHA256_DIGEST_INFO.to_vec();
                    data.extend_from_slice(&sha256(message));
                    token.with_session(false, |s| s.sign(&Mechanism::RsaPkcs, key, &data))?;
                    Ok(())
                }
            }),
            RawKind::Hmac256 => measure(kind.group(), threads, warmup, duration, || {
                move || {
                    token.with_session(false, |s| s.sign(&Mechanism::Sha256Hmac, key, message))?;
                    Ok(())
                }
            }),
        }
    }

    /// Destroys the generated keys (token objects would otherwise stay on the token).
    pub fn close(&self) -> Result<(), BoxError> {
        for key in &self.keys {
            for object in &key.objects {
                self.token.with_anchor(|s| s.destroy_object(*object))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_signatures_become_der() {
        // High bit set in r: a zero byte is prepended; leading zeros of s are dropped.
        let mut raw = vec![0x80; 32];
        raw.extend(std::iter::repeat_n(0, 31));
        raw.push(0x7f);
        let der = ecdsa_der(&raw).unwrap();
        let mut expected = vec![0x30, 2 + 33 + 3, 0x02, 33, 0x00];
        expected.extend([0x80; 32]);
        expected.extend([0x02, 1, 0x7f]);
        assert_eq!(der, expected);
        assert!(ecdsa_der(&[1, 2, 3]).is_none());
        assert!(ecdsa_der(&[]).is_none());
    }

    #[test]
    fn the_sha256_digest_info_prefix_announces_32_bytes() {
        assert_eq!(SHA256_DIGEST_INFO.len() + 32, 51);
        assert_eq!(usize::from(SHA256_DIGEST_INFO[1]), 51 - 2);
        assert_eq!(SHA256_DIGEST_INFO[18], 32);
    }
}
