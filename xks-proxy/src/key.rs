//! External keys: an external key id maps to a token object, found by label, on one or more
//! HSM instances ([`KeyEntry`]). Each copy (`Replica`) caches its object handle and
//! attributes per connection generation.
//!
//! With several HSMs the copies must hold the same key material (replicated by the HSMs' own
//! means: cloning, backup and restore, or importing the same key under a wrapping key).
//! Requests go round-robin over the copies; one whose HSM fails (a device, session or token
//! error), has no free session, or lacks the key is skipped and the request is retried on the
//! next copy; an HSM that failed is tried last for [`DOWN_FOR`]. Deterministic failures (an
//! invalid ciphertext, a key that does not permit the operation) are answered at once.
//!
//! Before a copy serves for the first time (and again after its handle changed), it is checked
//! against the first copy that served: a random block encrypted by that one must decrypt on
//! this one. A copy with different key material never serves (its ciphertexts would be
//! unreadable elsewhere); the proxy logs an error naming both HSMs.
//!
//! Recovery: a stale object handle (the token was reconnected, or the login was lost and with
//! it the visibility of private objects) makes the key be looked up again once; before that
//! lookup the login is checked on the anchor session and re-established if it is gone, so a
//! key is never reported missing just because the session state was lost.
//!
//! Everything here blocks; callers run it through [`crate::pool::HsmExecutor`]. Errors come
//! out already mapped to the wire ([`XksError`]).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use std::time::{Duration, Instant};

use cryptoki::object::{ObjectClass, ObjectHandle};
use hsm::gcm;
use hsm::{ErrorClass, Pkcs11Error, Token};
use subtle::ConstantTimeEq;
use xks_wire::ErrorName;
use zeroize::Zeroizing;

use crate::error::XksError;
use crate::hsm::{HsmInstance, KeyInfo};

/// How long a copy whose HSM failed is tried only after the others.
pub const DOWN_FOR: Duration = Duration::from_secs(5);

/// AAD of the copies' key-material check.
const CHECK_AAD: &[u8] = b"xks-proxy replica check";

/// Whether a copy was found to hold the same key material as the reference copy, for one
/// (connection generation, object handle) of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Checked {
    generation: u64,
    handle: ObjectHandle,
    same: bool,
}

/// An external key: its id, the copies, and whether the operator enabled it.
pub struct KeyEntry {
    pub id: String,
    pub label: String,
    pub enabled: bool,
    replicas: Vec<Replica>,
    /// Per copy: the result of its key-material check.
    checked: Vec<Mutex<Option<Checked>>>,
    /// Per copy: until when it is tried last (its HSM failed).
    down_until: Vec<Mutex<Option<Instant>>>,
    /// Per copy: requests that failed on it and were tried on the other copies.
    failures: Vec<AtomicU64>,
    /// The copy the others are checked against (the first that served).
    reference: Mutex<Option<usize>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEntry")
            .field("id", &self.id)
            .field("label", &self.label)
            .field("enabled", &self.enabled)
            .field("hsms", &self.hsm_names())
            .finish()
    }
}

/// One copy of a key, for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyState {
    pub hsm: String,
    /// False once the copy was found to hold different key material.
    pub usable: bool,
    /// Requests that failed on this copy and were tried on the others.
    pub failures: u64,
}

/// Whether another copy may still serve a request that failed with `e` on one copy.
fn may_fail_over(e: &XksError) -> bool {
    matches!(
        e.name,
        ErrorName::InternalException
            | ErrorName::KeyNotFoundException
            | ErrorName::ThrottlingException
    )
}

impl KeyEntry {
    /// A key labelled `label` on each of `hsms` (at least one).
    pub fn new(id: &str, label: &str, enabled: bool, hsms: &[Arc<HsmInstance>]) -> KeyEntry {
        let replicas: Vec<Replica> = hsms
            .iter()
            .map(|h| Replica::new(id, label, h.clone()))
            .collect();
        Self::from_replicas(id, label, enabled, replicas)
    }

    fn from_replicas(id: &str, label: &str, enabled: bool, replicas: Vec<Replica>) -> KeyEntry {
        let n = replicas.len();
        KeyEntry {
            id: id.to_string(),
            label: label.to_string(),
            enabled,
            replicas,
            checked: (0..n).map(|_| Mutex::new(None)).collect(),
            down_until: (0..n).map(|_| Mutex::new(None)).collect(),
            failures: (0..n).map(|_| AtomicU64::new(0)).collect(),
            reference: Mutex::new(None),
            next: AtomicUsize::new(0),
        }
    }

    /// A copy with another enabled flag that shares nothing mutable (used by reloads; the
    /// cached handles are carried over).
    pub fn with_enabled(&self, enabled: bool) -> KeyEntry {
        let replicas = self.replicas.iter().map(Replica::carry_over).collect();
        Self::from_replicas(&self.id, &self.label, enabled, replicas)
    }

    /// Whether this entry is `label` on exactly `hsms` (in that order).
    pub fn is_placed(&self, label: &str, hsms: &[Arc<HsmInstance>]) -> bool {
        self.label == label
            && self.replicas.len() == hsms.len()
            && self
                .replicas
                .iter()
                .zip(hsms)
                .all(|(r, h)| Arc::ptr_eq(&r.hsm, h))
    }

    /// Each copy's state (metrics).
    pub fn copies(&self) -> Vec<CopyState> {
        self.replicas
            .iter()
            .enumerate()
            .map(|(i, r)| CopyState {
                hsm: r.hsm.name.clone(),
                usable: !self.checked[i].lock().is_some_and(|c| !c.same),
                failures: self.failures[i].load(Ordering::Relaxed),
            })
            .collect()
    }

    /// The HSMs holding the key, comma-separated (for logs).
    pub fn hsm_names(&self) -> String {
        self.replicas
            .iter()
            .map(|r| r.hsm.name.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Reads the key's current attributes from an HSM (not from the cache).
    pub fn metadata(&self) -> Result<KeyInfo, XksError> {
        self.on_replica(Replica::metadata)
    }

    /// AES-256-GCM encryption with a fresh IV of `iv_len` bytes (see `Replica::encrypt`).
    pub fn encrypt(
        &self,
        iv_len: usize,
        plaintext: &[u8],
        aad: &[u8],
        cdiv_input: Option<(&[u8], &[u8])>,
        verify: bool,
    ) -> Result<Sealed, XksError> {
        self.on_replica(|r| r.encrypt(iv_len, plaintext, aad, cdiv_input, verify))
    }

    /// AES-256-GCM decryption of `ciphertext ‖ tag`.
    pub fn decrypt(
        &self,
        iv: &[u8],
        ciphertext_and_tag: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, XksError> {
        self.on_replica(|r| r.decrypt(iv, ciphertext_and_tag, aad))
    }

    /// Looks the key up on every HSM now and checks the copies against each other (start-up);
    /// problems are logged. Returns the attributes of the first copy found.
    pub fn warm_up(&self) -> Result<KeyInfo, XksError> {
        let mut first: Option<Result<KeyInfo, XksError>> = None;
        for (i, r) in self.replicas.iter().enumerate() {
            let found = r.warm_up().and_then(|info| match self.admit(i) {
                Ok(true) => Ok(info),
                Ok(false) => Err(XksError::internal(format!(
                    "the copy of external key {} on HSM {} holds different key material",
                    self.id, r.hsm.name
                ))),
                Err(e) => Err(e),
            });
            if let Err(e) = &found {
                if self.replicas.len() > 1 {
                    tracing::warn!(key = %self.id, hsm = %r.hsm.name, label = %self.label, error = %e, "copy of an external key not usable");
                }
            }
            match (&first, found) {
                (None, f) | (Some(Err(_)), f @ Ok(_)) => first = Some(f),
                _ => {}
            }
        }
        first.unwrap_or_else(|| Err(XksError::internal("the key has no HSM")))
    }

    fn is_down(&self, i: usize, now: Instant) -> bool {
        self.down_until[i].lock().is_some_and(|t| now < t)
    }

    fn mark_down(&self, i: usize) {
        *self.down_until[i].lock() = Some(Instant::now() + DOWN_FOR);
    }

    /// Runs `op` on a copy, failing over to the others (see the module documentation).
    fn on_replica<T>(&self, op: impl Fn(&Replica) -> Result<T, XksError>) -> Result<T, XksError> {
        let n = self.replicas.len();
        if n == 1 {
            return op(&self.replicas[0]);
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut failure: Option<XksError> = None;
        let mut not_found: Option<XksError> = None;
        // Copies that did not fail lately first, then the others.
        for want_down in [false, true] {
            for k in 0..n {
                let i = (start + k) % n;
                if self.is_down(i, now) != want_down {
                    continue;
                }
                let result = match self.admit(i) {
                    Ok(true) => op(&self.replicas[i]),
                    Ok(false) => continue,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(v) => return Ok(v),
                    Err(e) if may_fail_over(&e) => {
                        self.failures[i].fetch_add(1, Ordering::Relaxed);
                        let hsm = &self.replicas[i].hsm.name;
                        if e.name == ErrorName::InternalException {
                            tracing::warn!(key = %self.id, %hsm, error = %e, "HSM failed; trying the key's other HSMs");
                            self.mark_down(i);
                        }
                        if e.name == ErrorName::KeyNotFoundException {
                            not_found.get_or_insert(e);
                        } else {
                            failure.get_or_insert(e);
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        // The key exists somewhere unless every HSM that answered said it does not.
        Err(failure
            .or(not_found)
            .unwrap_or_else(|| XksError::internal("no copy of the key may serve")))
    }

    /// Whether copy `i` may serve: it holds the same key material as the reference copy (see
    /// the module documentation). Errors are the copy's own lookup failures.
    fn admit(&self, i: usize) -> Result<bool, XksError> {
        if self.replicas.len() == 1 {
            return Ok(true);
        }
        let r = self.replicas[i].resolve(false)?;
        let mut checked = self.checked[i].lock();
        if let Some(c) = *checked {
            if (c.generation, c.handle) == (r.generation, r.handle) {
                return Ok(c.same);
            }
        }
        let reference = {
            let mut reference = self.reference.lock();
            *reference.get_or_insert(i)
        };
        let same = if reference == i {
            true
        } else if self.is_down(reference, Instant::now()) {
            // Nothing to compare with now: serve, and check when the reference is back.
            return Ok(true);
        } else {
            match self.same_material(reference, i) {
                Ok(same) => same,
                // The reference cannot answer now: serve, and check later.
                Err(_) => return Ok(true),
            }
        };
        if !same {
            tracing::error!(
                key = %self.id, label = %self.label,
                hsm = %self.replicas[i].hsm.name, reference = %self.replicas[reference].hsm.name,
                "the key's copy on this HSM holds different key material than on the reference HSM: it will not be used"
            );
        }
        *checked = Some(Checked {
            generation: r.generation,
            handle: r.handle,
            same,
        });
        Ok(same)
    }

    /// Encrypts a random block with copy `a` and decrypts it with copy `b`.
    fn same_material(&self, a: usize, b: usize) -> Result<bool, XksError> {
        let mut block = Zeroizing::new([0u8; 32]);
        self.replicas[a].hsm.fill_random(block.as_mut())?;
        let sealed = self.replicas[a].encrypt(12, block.as_ref(), CHECK_AAD, None, false)?;
        let mut both = sealed.ciphertext;
        both.extend_from_slice(&sealed.tag);
        match self.replicas[b].decrypt(&sealed.iv, &both, CHECK_AAD) {
            Ok(p) => Ok(bool::from(p.as_slice().ct_eq(block.as_ref()))),
            Err(e) if e.name == ErrorName::InvalidCiphertextException => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Resolved {
    generation: u64,
    handle: ObjectHandle,
    info: KeyInfo,
}

/// One copy of an external key: the token object labelled `label` on one HSM, with its
/// handle and attributes cached per connection generation.
struct Replica {
    id: String,
    label: String,
    hsm: Arc<HsmInstance>,
    cache: RwLock<Option<Resolved>>,
    /// When the last search found nothing (connection generation, time): searches read every
    /// object on some tokens, so a missing key is not searched again for a few seconds.
    missing: Mutex<Option<(u64, Instant)>>,
}

/// How long "no such object" is remembered.
const MISSING_TTL: Duration = Duration::from_secs(5);

/// The result of an encryption.
pub struct Sealed {
    pub iv: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub tag: Vec<u8>,
    /// SHA-256 ciphertext data integrity value, when requested.
    pub cdiv: Option<[u8; 32]>,
}

impl Replica {
    fn new(id: &str, label: &str, hsm: Arc<HsmInstance>) -> Replica {
        Replica {
            id: id.to_string(),
            label: label.to_string(),
            hsm,
            cache: RwLock::new(None),
            missing: Mutex::new(None),
        }
    }

    /// A copy sharing nothing mutable, with the cached handle carried over (reloads).
    fn carry_over(&self) -> Replica {
        Replica {
            id: self.id.clone(),
            label: self.label.clone(),
            hsm: self.hsm.clone(),
            cache: RwLock::new(*self.cache.read()),
            missing: Mutex::new(None),
        }
    }

    fn not_found(&self) -> XksError {
        XksError::new(
            ErrorName::KeyNotFoundException,
            format!(
                "external key {} (label '{}') was not found on HSM {}",
                self.id, self.label, self.hsm.name
            ),
        )
    }

    fn map(&self, e: &Pkcs11Error, decrypting: bool) -> XksError {
        match e {
            Pkcs11Error::ObjectNotFound(_) => self.not_found(),
            other => XksError::from_pkcs11(other, &self.id, decrypting),
        }
    }

    /// The HSM's token (a down HSM is tried again; see [`HsmInstance::token`]).
    fn token(&self) -> Result<Arc<Token>, XksError> {
        self.hsm.token().map_err(|e| self.map(&e, false))
    }

    fn find(&self, token: &Token) -> Result<ObjectHandle, XksError> {
        let generation = token.generation();
        if let Some((g, at)) = *self.missing.lock() {
            if g == generation && at.elapsed() < MISSING_TTL {
                return Err(self.not_found());
            }
        }
        let result = self.search(token);
        let mut missing = self.missing.lock();
        *missing = match &result {
            Err(e) if e.name == ErrorName::KeyNotFoundException => {
                Some((token.generation(), Instant::now()))
            }
            _ => None,
        };
        result
    }

    fn search(&self, token: &Token) -> Result<ObjectHandle, XksError> {
        let mut found = token
            .find(ObjectClass::SECRET_KEY, &self.label)
            .map_err(|e| self.map(&e, false))?;
        if found.is_empty() {
            // Private objects are invisible without a login: rule that out before saying
            // the key does not exist.
            self.hsm
                .ensure_logged_in()
                .map_err(|e| self.map(&e, false))?;
            found = token
                .find(ObjectClass::SECRET_KEY, &self.label)
                .map_err(|e| self.map(&e, false))?;
        }
        match found.as_slice() {
            [] => Err(self.not_found()),
            [h] => Ok(*h),
            many => Err(XksError::internal(format!(
                "external key {} is ambiguous: {} secret keys are labelled '{}' on HSM {}",
                self.id,
                many.len(),
                self.label,
                self.hsm.name
            ))),
        }
    }

    fn resolve(&self, refresh: bool) -> Result<Resolved, XksError> {
        let token = self.token()?;
        self.resolve_on(&token, refresh)
    }

    fn resolve_on(&self, token: &Token, refresh: bool) -> Result<Resolved, XksError> {
        let generation = token.generation();
        if !refresh {
            if let Some(r) = *self.cache.read() {
                if r.generation == generation {
                    return Ok(r);
                }
            }
        }
        let handle = self.find(token)?;
        let info = token
            .with_session(false, |s| KeyInfo::read(s, handle))
            .map_err(|e| self.map(&e, false))?;
        let r = Resolved {
            generation,
            handle,
            info,
        };
        *self.cache.write() = Some(r);
        Ok(r)
    }

    /// Runs `f` with the key's handle; a stale handle (or a lost login) is recovered once.
    fn with_handle<T>(
        &self,
        decrypting: bool,
        f: impl Fn(&Token, ObjectHandle, &KeyInfo) -> Result<T, Pkcs11Error>,
    ) -> Result<T, XksError> {
        let token = self.token()?;
        let r = self.resolve_on(&token, false)?;
        match f(&token, r.handle, &r.info) {
            Ok(v) => Ok(v),
            Err(e) if matches!(e.class(), ErrorClass::StaleHandle | ErrorClass::NotLoggedIn) => {
                tracing::info!(key = %self.id, hsm = %self.hsm.name, error = %e, "key handle is stale: looking the key up again");
                self.hsm
                    .ensure_logged_in()
                    .map_err(|e| self.map(&e, decrypting))?;
                let r = self.resolve_on(&token, true)?;
                f(&token, r.handle, &r.info).map_err(|e| self.map(&e, decrypting))
            }
            Err(e) => Err(self.map(&e, decrypting)),
        }
    }

    /// Reads the key's current attributes from the HSM (not from the cache).
    fn metadata(&self) -> Result<KeyInfo, XksError> {
        let info = self.with_handle(false, |token, h, _| {
            token.with_session(false, |s| KeyInfo::read(s, h))
        })?;
        if let Some(r) = self.cache.write().as_mut() {
            r.info = info;
        }
        Ok(info)
    }

    /// Checks the cached attributes for an operation.
    fn check_usage(&self, info: &KeyInfo, encrypt: bool, decrypt: bool) -> Result<(), XksError> {
        if !info.is_aes_256() {
            return Err(XksError::key_usage(format!(
                "external key {} is a {} key, not AES_256",
                self.id,
                info.key_spec()
            )));
        }
        if encrypt && !info.encrypt {
            return Err(XksError::key_usage(format!(
                "external key {} does not allow ENCRYPT",
                self.id
            )));
        }
        if decrypt && !info.decrypt {
            return Err(XksError::key_usage(format!(
                "external key {} does not allow DECRYPT",
                self.id
            )));
        }
        Ok(())
    }

    /// AES-256-GCM encryption in the HSM with a fresh IV of `iv_len` bytes.
    ///
    /// With `cdiv_input = Some((aad, metadata))` the ciphertext data integrity value is
    /// computed right after the encryption, over the HSM's output; with `verify` that same
    /// output is then decrypted in the HSM and compared with the input (spec Appendix C
    /// order: encrypt, CDIV, check).
    fn encrypt(
        &self,
        iv_len: usize,
        plaintext: &[u8],
        aad: &[u8],
        cdiv_input: Option<(&[u8], &[u8])>,
        verify: bool,
    ) -> Result<Sealed, XksError> {
        let r = self.resolve(false)?;
        self.check_usage(&r.info, true, verify)?;
        let ivs = self.hsm.iv_policy();
        let gcm::Sealed {
            iv,
            ciphertext_and_tag: out,
        } = self.with_handle(false, |token, h, _| {
            gcm::encrypt(token, h, ivs, iv_len, plaintext, aad)
        })?;
        let (ct, tag) = out.split_at(plaintext.len());
        let cdiv = cdiv_input.map(|(a, m)| xks_wire::cdiv_sha256(a, m, &iv, ct, tag));
        if verify {
            let back = self.decrypt(&iv, &out, aad)?;
            if !bool::from(back.as_slice().ct_eq(plaintext)) {
                return Err(XksError::internal(
                    "the HSM's ciphertext did not decrypt to the plaintext",
                ));
            }
        }
        let mut ciphertext = out;
        let tag = ciphertext.split_off(plaintext.len());
        Ok(Sealed {
            iv,
            ciphertext,
            tag,
            cdiv,
        })
    }

    /// AES-256-GCM decryption in the HSM of `ciphertext ‖ tag`.
    fn decrypt(
        &self,
        iv: &[u8],
        ciphertext_and_tag: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, XksError> {
        let r = self.resolve(false)?;
        self.check_usage(&r.info, false, true)?;
        self.with_handle(true, |token, h, _| {
            gcm::decrypt(token, h, iv, ciphertext_and_tag, aad)
        })
    }

    /// Looks the key up now (start-up warm-up); errors are returned, not cached.
    fn warm_up(&self) -> Result<KeyInfo, XksError> {
        self.resolve(false).map(|r| r.info)
    }
}
