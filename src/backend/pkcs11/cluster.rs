//! CloudHSM-style clusters: one or more PKCS#11 tokens ("members") that the operator owns, used
//! by a custom key store through the crypto user (`kmsuser`, the token's user PIN).
//!
//! - Connect logs in on every reachable member and rotates the PIN to a value only the KMS
//!   knows (reverting members already rotated if one fails).
//! - Each KMS key is a persistent, non-extractable AES-256 token object labelled with the key
//!   ARN. When the vendor library does not replicate keys itself (profile
//!   `replicates_keys = false`), the driver does: the key is generated in one member as a
//!   transient session object, wrapped (CKM_AES_KEY_WRAP_PAD) under the *cluster key* — a
//!   non-extractable key with the same value on every member, provisioned by the operator
//!   (`softhsm/make-token.sh` for SoftHSM), never seen by this server — and unwrapped as a token
//!   object into every active member. The wrapped copy is kept in the metadata store so a member
//!   that was down gets the key when it returns, as long as another member still holds it.
//! - Requests are spread round-robin over healthy members; a member that fails with a device,
//!   session or token error is skipped for a while and the request is retried on the next one.
//!   A member that was unreachable during connect keeps the PIN it had: the KMS records each
//!   member's PIN ([`PinBook`]), logs in to each with its own, and rotates a returning member
//!   to the current PIN (the book is stored again after every change).
//! - Only the node that runs ConnectCustomKeyStore rotates. Every other node *attaches*
//!   ([`Cluster::attach`]): it logs in with the stored book and never changes a PIN, not even
//!   a returning member's (`docs/architecture.md`, "Custom key stores on several nodes").

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use std::time::{Duration, Instant};

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

pub use super::pin_book::PinBook;
use super::{sealed, IV_LEN};
use crate::backend::{BackendError, BackendResult, CryptoBackend, MaterialId, Sealed};
use crate::model::KeyId;
use hsm::error::{ErrorClass, Pkcs11Error};
use hsm::gcm::{self, IvPolicy};
use hsm::iv::IvPool;
use hsm::threads::BlockingPool;
use hsm::{Token, TokenConfig, VendorProfile};

/// How long a failed member is skipped before it is tried again.
const MEMBER_RETRY_AFTER: Duration = Duration::from_secs(5);

/// One member of a cluster in the configuration.
#[derive(Debug, Clone)]
pub struct MemberConfig {
    pub name: String,
    pub module: PathBuf,
    pub token_label: String,
}

/// A cluster in the configuration.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `CloudHsmClusterId` (e.g. `cluster-1a23b4cdefg`).
    pub id: String,
    /// The AWS account that owns the cluster (only it can create stores on it).
    pub account: String,
    pub profile: Arc<VendorProfile>,
    /// The cluster's trust anchor certificate (PEM); CreateCustomKeyStore must present it.
    pub trust_anchor_pem: String,
    /// Label of the cluster key every member holds.
    pub cluster_key_label: String,
    pub sessions: usize,
    pub session_wait: Duration,
    /// The request quota of a custom key store on this cluster (requests per second).
    pub requests_per_second: u32,
    pub members: Vec<MemberConfig>,
}

/// Why a connect failed, as AWS's `ConnectionErrorCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectError {
    InvalidCredentials,
    UserLockedOut,
    InsufficientHsms,
    NetworkErrors,
    InternalError,
}

impl ConnectError {
    pub fn code(self) -> &'static str {
        match self {
            ConnectError::InvalidCredentials => "INVALID_CREDENTIALS",
            ConnectError::UserLockedOut => "USER_LOCKED_OUT",
            ConnectError::InsufficientHsms => "INSUFFICIENT_CLOUDHSM_HSMS",
            ConnectError::NetworkErrors => "NETWORK_ERRORS",
            ConnectError::InternalError => "INTERNAL_ERROR",
        }
    }
}

struct Member {
    cfg: MemberConfig,
    token: RwLock<Option<Arc<Token>>>,
    /// Held while (re)connecting the member, so that two requests never log in (or rotate the
    /// PIN) at once: a second login with a PIN just rotated away would count as a failure.
    /// Requests that find it held skip the member.
    opening: Mutex<()>,
    down_until: Mutex<Option<Instant>>,
    handles: RwLock<HashMap<KeyId, (u64, ObjectHandle)>>,
    cluster_key: RwLock<Option<(u64, ObjectHandle)>>,
}

/// Where a cluster reports a changed [`PinBook`] (in its secret form), for its owner to store.
pub type PinsChanged = tokio::sync::mpsc::UnboundedSender<SecretString>;

/// A connected cluster.
pub struct Cluster {
    cfg: ClusterConfig,
    members: Vec<Member>,
    /// The PIN the connect rotated every reachable member to; `None` on a cluster this node
    /// attached to ([`Cluster::attach`]), which never changes a PIN.
    rotate_to: Option<SecretString>,
    /// Each member's PIN (members unreachable at connect still have an older one).
    pins: Mutex<PinBook>,
    /// Called with the book after a returning member was rotated (to store it).
    pins_changed: Mutex<Option<PinsChanged>>,
    next: AtomicUsize,
    ivs: IvPool,
    /// Wrapped copies of backing keys handed over by the caller (from the metadata store), to
    /// replicate a key to a member that lacks it.
    wrapped: RwLock<HashMap<KeyId, Vec<u8>>>,
    /// Set once released or disconnected: no member is opened (or rotated) again by requests
    /// still in flight on this cluster.
    closed: std::sync::atomic::AtomicBool,
}

/// What the cluster key allows beyond wrap/unwrap (empty when it is as it should be, or when
/// its attributes cannot be read).
fn cluster_key_weaknesses(t: &Token, key: ObjectHandle) -> Vec<&'static str> {
    use cryptoki::object::AttributeType;
    let attrs = t.with_session(false, |s| {
        s.get_attributes(
            key,
            &[
                AttributeType::Encrypt,
                AttributeType::Decrypt,
                AttributeType::Extractable,
                AttributeType::Sensitive,
            ],
        )
    });
    let mut loose = Vec::new();
    for a in attrs.unwrap_or_default() {
        match a {
            Attribute::Encrypt(true) => loose.push("CKA_ENCRYPT"),
            Attribute::Decrypt(true) => loose.push("CKA_DECRYPT"),
            Attribute::Extractable(true) => loose.push("CKA_EXTRACTABLE"),
            Attribute::Sensitive(false) => loose.push("not CKA_SENSITIVE"),
            _ => {}
        }
    }
    loose
}

fn token_config(cfg: &ClusterConfig, m: &MemberConfig, pin: &SecretString) -> TokenConfig {
    TokenConfig {
        module: m.module.clone(),
        token_label: m.token_label.clone(),
        pin: SecretString::from(pin.expose_secret().to_string()),
        so: false,
        max_sessions: cfg.sessions,
        session_wait: cfg.session_wait,
        profile: cfg.profile.clone(),
    }
}

/// A random PIN of 32 letters and digits (CloudHSM's `kmsuser` password rules: 7-32
/// alphanumerics).
fn random_password(rng: &SystemRandom) -> Result<SecretString, Pkcs11Error> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = Zeroizing::new([0u8; 32]);
    rng.fill(bytes.as_mut())
        .map_err(|_| Pkcs11Error::Other("rng".into()))?;
    let s: String = bytes
        .iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect();
    Ok(SecretString::from(s))
}

/// Members logged in to by [`Cluster::log_in`], no PIN changed yet.
pub struct LoggedIn {
    cfg: ClusterConfig,
    opened: Vec<(MemberConfig, Arc<Token>)>,
    pins: PinBook,
}

impl LoggedIn {
    /// Rotates the PIN of every member logged in to (reverting those already rotated if one
    /// fails). Returns the connected cluster and the new book (to be stored encrypted).
    pub fn rotate(self) -> Result<(Cluster, PinBook), ConnectError> {
        let LoggedIn { cfg, opened, pins } = self;
        let pins = &pins;
        let rng = SystemRandom::new();
        // Rotate the PIN to a value only the KMS knows; undo on partial failure.
        let new = random_password(&rng).map_err(|_| ConnectError::InternalError)?;
        let mut rotated: Vec<(&MemberConfig, &Arc<Token>)> = Vec::new();
        for (m, t) in &opened {
            match t.set_pin(pins.pin(&m.name), &new) {
                Ok(()) => rotated.push((m, t)),
                Err(e) => {
                    tracing::error!(cluster = %cfg.id, member = %m.name, error = %e, "PIN rotation failed; reverting");
                    for (rm, r) in rotated {
                        let _ = r.set_pin(&new, pins.pin(&rm.name));
                    }
                    return Err(ConnectError::InternalError);
                }
            }
        }
        let mut book = pins.clone();
        for (m, _) in &opened {
            book.set(&m.name, &new);
        }
        let cluster = Cluster::assemble(cfg, &opened, book.clone(), Some(new));
        Ok((cluster, book))
    }
}

impl Cluster {
    /// Logs in on every reachable member with its PIN from `pins` and checks the cluster key
    /// (the part of [`Self::connect`] and [`Self::attach`] that changes nothing).
    fn open_members(
        cfg: &ClusterConfig,
        pins: &PinBook,
    ) -> Result<Vec<(MemberConfig, Arc<Token>)>, ConnectError> {
        let mut opened: Vec<(MemberConfig, Arc<Token>)> = Vec::new();
        let mut worst: Option<ConnectError> = None;
        for m in &cfg.members {
            match Token::open(token_config(cfg, m, pins.pin(&m.name))) {
                Ok(t) => opened.push((m.clone(), t)),
                Err(e) => {
                    let code = match e.class() {
                        ErrorClass::PinIncorrect => ConnectError::InvalidCredentials,
                        ErrorClass::PinLocked => ConnectError::UserLockedOut,
                        ErrorClass::TokenNotPresent => ConnectError::InsufficientHsms,
                        _ if matches!(e, Pkcs11Error::Module { .. }) => ConnectError::NetworkErrors,
                        _ => ConnectError::NetworkErrors,
                    };
                    tracing::warn!(cluster = %cfg.id, member = %m.name, error = %e, "cluster member did not connect");
                    // Credentials are cluster-wide: a credential problem on any member fails the connect.
                    if matches!(
                        code,
                        ConnectError::InvalidCredentials | ConnectError::UserLockedOut
                    ) {
                        return Err(code);
                    }
                    worst.get_or_insert(code);
                }
            }
        }
        if opened.is_empty() {
            return Err(worst.unwrap_or(ConnectError::InsufficientHsms));
        }
        for (m, t) in &opened {
            let found = t
                .find(ObjectClass::SECRET_KEY, &cfg.cluster_key_label)
                .unwrap_or_default();
            let Some(&key) = found.first() else {
                tracing::error!(cluster = %cfg.id, member = %m.name, label = %cfg.cluster_key_label,
                    "the cluster key is missing on a member; provision it (see softhsm/make-token.sh)");
                return Err(ConnectError::InternalError);
            };
            let loose = cluster_key_weaknesses(t, key);
            if !loose.is_empty() {
                tracing::warn!(cluster = %cfg.id, member = %m.name, label = %cfg.cluster_key_label,
                    weaknesses = %loose.join(", "),
                    "the cluster key should be a sensitive, non-extractable wrap/unwrap-only key: \
                     with encrypt/decrypt allowed, the crypto user can decrypt wrapped key material \
                     (provision it with kms-cluster-key)");
            }
        }
        Ok(opened)
    }

    /// Logs in on every reachable member with its PIN from `pins` and never changes a PIN: how
    /// a node that did not run ConnectCustomKeyStore uses a store another node connected. A
    /// member that is down now is logged in to when it returns, with its PIN from the book (for
    /// one that missed a rotation, the older PIN it still has); when the connecting node rotates
    /// it and stores the book, the changed record replaces this attachment.
    pub fn attach(cfg: ClusterConfig, pins: &PinBook) -> Result<Cluster, ConnectError> {
        let opened = Self::open_members(&cfg, pins)?;
        Ok(Self::assemble(cfg, &opened, pins.clone(), None))
    }

    /// Logs in on every reachable member with its PIN from `pins`, checks the cluster key, and
    /// rotates the PIN of every member it reached. Returns the connected cluster and the new
    /// book (to be stored encrypted).
    pub fn connect(cfg: ClusterConfig, pins: &PinBook) -> Result<(Cluster, PinBook), ConnectError> {
        Self::log_in(cfg, pins)?.rotate()
    }

    /// The first half of [`Self::connect`]: logs in on every reachable member and checks the
    /// cluster key, changing nothing (dropping the result logs out), so the caller can check
    /// that the connect is still its own before [`LoggedIn::rotate`].
    pub fn log_in(cfg: ClusterConfig, pins: &PinBook) -> Result<LoggedIn, ConnectError> {
        let opened = Self::open_members(&cfg, pins)?;
        Ok(LoggedIn {
            cfg,
            opened,
            pins: pins.clone(),
        })
    }

    /// A cluster over the members logged in to (the others are tried again on use).
    fn assemble(
        cfg: ClusterConfig,
        opened: &[(MemberConfig, Arc<Token>)],
        book: PinBook,
        rotate_to: Option<SecretString>,
    ) -> Cluster {
        let members = cfg
            .members
            .iter()
            .map(|m| Member {
                token: RwLock::new(
                    opened
                        .iter()
                        .find(|(o, _)| o.name == m.name)
                        .map(|(_, t)| t.clone()),
                ),
                cfg: m.clone(),
                opening: Mutex::new(()),
                down_until: Mutex::new(None),
                handles: RwLock::default(),
                cluster_key: RwLock::new(None),
            })
            .collect();
        Cluster {
            rotate_to,
            pins: Mutex::new(book),
            pins_changed: Mutex::new(None),
            cfg,
            members,
            next: AtomicUsize::new(0),
            ivs: IvPool::new(),
            wrapped: RwLock::default(),
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether this node connected the cluster (and may rotate PINs), rather than attached to
    /// it ([`Self::attach`]).
    pub fn rotates_pins(&self) -> bool {
        self.rotate_to.is_some()
    }

    /// Sets where the PIN book goes when a returning member's PIN was rotated.
    pub fn on_pins_changed(&self, f: PinsChanged) {
        *self.pins_changed.lock() = Some(f);
    }

    pub fn id(&self) -> &str {
        &self.cfg.id
    }

    /// The request quota of a custom key store on this cluster.
    pub fn requests_per_second(&self) -> u32 {
        self.cfg.requests_per_second
    }

    /// Logs out of every member (the anchor sessions close when the tokens drop).
    pub fn disconnect(&self) {
        self.closed.store(true, Ordering::Release);
        for m in &self.members {
            if let Some(t) = m.token.write().take() {
                let _ = t.with_anchor(|s| s.logout());
            }
        }
    }

    /// Drops this cluster's member sessions without logging out: the cluster that replaces it
    /// (the same crypto user, a newer PIN book) holds sessions of its own, and in PKCS#11 the
    /// login belongs to the process, so a logout here would log the replacement out too.
    pub fn release(&self) {
        self.closed.store(true, Ordering::Release);
        for m in &self.members {
            drop(m.token.write().take());
        }
    }

    /// The token of a member if it is usable now; a member that is not connected is tried
    /// again after [`MEMBER_RETRY_AFTER`].
    fn token(&self, m: &Member) -> Option<Arc<Token>> {
        {
            let down = m.down_until.lock();
            if down.is_some_and(|t| Instant::now() < t) {
                return None;
            }
        }
        if let Some(t) = m.token.read().as_ref() {
            return Some(t.clone());
        }
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        // One request reconnects a member; the others skip it (and fail over) rather than
        // wait behind a member that may be slow to answer.
        let _opening = m.opening.try_lock()?;
        if let Some(t) = m.token.read().as_ref() {
            return Some(t.clone()); // another request reconnected it meanwhile
        }
        match self.open_member(m) {
            Ok(t) => {
                tracing::info!(cluster = %self.cfg.id, member = %m.cfg.name, "cluster member (re)connected");
                *m.token.write() = Some(t.clone());
                Some(t)
            }
            Err(e) => {
                tracing::debug!(cluster = %self.cfg.id, member = %m.cfg.name, error = %e, "cluster member still unavailable");
                self.mark_down(m);
                None
            }
        }
    }

    /// Logs in to a member with the PIN it has; on the connecting node, a member that missed PIN
    /// rotations (it was unreachable during a connect) is rotated to the current PIN and the
    /// book is stored. An attached cluster only logs in.
    fn open_member(&self, m: &Member) -> Result<Arc<Token>, Pkcs11Error> {
        let pin = SecretString::from(self.pins.lock().pin(&m.cfg.name).expose_secret());
        let t = Token::open(token_config(&self.cfg, &m.cfg, &pin))?;
        let Some(current) = &self.rotate_to else {
            return Ok(t);
        };
        if pin.expose_secret() != current.expose_secret() {
            t.set_pin(&pin, current)?;
            let stored = {
                let mut book = self.pins.lock();
                book.set(&m.cfg.name, current);
                book.to_secret()
            };
            if let Some(save) = self.pins_changed.lock().as_ref() {
                let _ = save.send(stored);
            }
            tracing::info!(cluster = %self.cfg.id, member = %m.cfg.name, "cluster member missed the PIN rotation; rotated it now");
        }
        Ok(t)
    }

    fn mark_down(&self, m: &Member) {
        *m.down_until.lock() = Some(Instant::now() + MEMBER_RETRY_AFTER);
    }

    /// Members that answer a probe now.
    pub fn active_members(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| self.token(m).is_some_and(|t| t.probe().is_ok()))
            .map(|m| m.cfg.name.clone())
            .collect()
    }

    fn cluster_key(&self, m: &Member, t: &Token) -> Result<ObjectHandle, Pkcs11Error> {
        let gen = t.generation();
        if let Some((g, h)) = *m.cluster_key.read() {
            if g == gen {
                return Ok(h);
            }
        }
        let h = *t
            .find(ObjectClass::SECRET_KEY, &self.cfg.cluster_key_label)?
            .first()
            .ok_or_else(|| Pkcs11Error::ObjectNotFound(self.cfg.cluster_key_label.clone()))?;
        *m.cluster_key.write() = Some((gen, h));
        Ok(h)
    }

    fn backing_template(label: &str) -> Vec<Attribute> {
        vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Label(label.as_bytes().to_vec()),
        ]
    }

    /// Creates the backing key of a KMS key (label = key ARN) on every active member; needs at
    /// least `min_members` of them. Returns the wrapped copy to keep in the metadata store.
    pub fn create_backing_key(
        &self,
        label: &str,
        min_members: usize,
    ) -> Result<(Vec<u8>, Vec<String>), BackendError> {
        let active: Vec<(&Member, Arc<Token>)> = self
            .members
            .iter()
            .filter_map(|m| self.token(m).filter(|t| t.probe().is_ok()).map(|t| (m, t)))
            .collect();
        if active.len() < min_members {
            return Err(BackendError::Unsupported(format!(
                "the cluster has {} active HSMs; creating keys needs at least {min_members}",
                active.len()
            )));
        }
        let (first, first_token) = &active[0];
        let wrap_key = self.cluster_key(first, first_token)?;
        let transient = [
            Attribute::Token(false),
            Attribute::Sensitive(true),
            Attribute::Extractable(true),
            Attribute::ValueLen(32.into()),
        ];
        let wrapped = first_token.with_session(false, |s| {
            let k = s.generate_key(&Mechanism::AesKeyGen, &transient)?;
            let w = s.wrap_key(&Mechanism::AesKeyWrapPad, wrap_key, k);
            let d = s.destroy_object(k);
            let w = w?;
            d?;
            Ok(w)
        })?;
        let mut holders = Vec::new();
        for (m, t) in &active {
            match self.unwrap_into(m, t, label, &wrapped) {
                Ok(_) => holders.push(m.cfg.name.clone()),
                Err(e) => {
                    tracing::warn!(member = %m.cfg.name, error = %e, "backing key not created on a member")
                }
            }
        }
        if holders.len() < min_members {
            return Err(BackendError::Unavailable { retryable: true });
        }
        Ok((wrapped, holders))
    }

    fn unwrap_into(
        &self,
        m: &Member,
        t: &Token,
        label: &str,
        wrapped: &[u8],
    ) -> Result<ObjectHandle, Pkcs11Error> {
        let wrap_key = self.cluster_key(m, t)?;
        let template = Self::backing_template(label);
        t.with_object_write(|s| {
            s.unwrap_key(&Mechanism::AesKeyWrapPad, wrap_key, wrapped, &template)
        })
    }

    /// Finds (or, when another member still holds it, replicates) the backing key on a member.
    fn handle(
        &self,
        m: &Member,
        t: &Token,
        id: MaterialId<'_>,
    ) -> Result<ObjectHandle, BackendError> {
        let gen = t.generation();
        if let Some((g, h)) = m.handles.read().get(id.key_id) {
            if *g == gen {
                return Ok(*h);
            }
        }
        let found = t.find(ObjectClass::SECRET_KEY, id.label)?;
        let h = match found.first() {
            Some(h) => *h,
            None => {
                // Replicate only while some other member still holds the key: a key deleted
                // from the whole cluster stays deleted.
                let elsewhere = self
                    .members
                    .iter()
                    .filter(|o| o.cfg.name != m.cfg.name)
                    .any(|o| {
                        self.token(o).is_some_and(|ot| {
                            ot.find(ObjectClass::SECRET_KEY, id.label)
                                .is_ok_and(|v| !v.is_empty())
                        })
                    });
                if !elsewhere {
                    return Err(BackendError::KeyMaterialMissing);
                }
                // The wrapped copy comes from the metadata store, through the caller.
                let wrapped = self
                    .wrapped
                    .read()
                    .get(id.key_id)
                    .cloned()
                    .ok_or(BackendError::MaterialNeeded)?;
                tracing::info!(member = %m.cfg.name, key = %id.label, "replicating backing key to a member");
                self.unwrap_into(m, t, id.label, &wrapped)?
            }
        };
        m.handles.write().insert(id.key_id.clone(), (gen, h));
        Ok(h)
    }

    /// Runs `f` on the first healthy member that holds the key, failing over on member errors.
    fn on_member<T>(
        &self,
        id: MaterialId<'_>,
        f: impl Fn(&Token, ObjectHandle) -> Result<T, Pkcs11Error>,
    ) -> BackendResult<T> {
        let n = self.members.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = BackendError::Unavailable { retryable: true };
        let mut missing = 0;
        'members: for i in 0..n {
            let m = &self.members[(start + i) % n];
            let Some(t) = self.token(m) else { continue };
            // A stale cached handle (object destroyed, token reconnected) is looked up once
            // more on the same member, so a backing object that is gone counts as missing.
            for attempt in 0..2 {
                let h = match self.handle(m, &t, id) {
                    Ok(h) => h,
                    Err(BackendError::MaterialNeeded) => return Err(BackendError::MaterialNeeded),
                    Err(BackendError::KeyMaterialMissing) => {
                        missing += 1;
                        continue 'members;
                    }
                    Err(e) => {
                        // No free session is overload, not a failed member.
                        if !matches!(e, BackendError::Busy) {
                            self.mark_down(m);
                        }
                        last = e;
                        continue 'members;
                    }
                };
                match f(&t, h) {
                    Ok(v) => return Ok(v),
                    Err(e) => match e.class() {
                        ErrorClass::InvalidCiphertext
                        | ErrorClass::Invalid
                        | ErrorClass::Unsupported => {
                            return Err(e.into());
                        }
                        ErrorClass::StaleHandle => {
                            m.handles.write().remove(id.key_id);
                            last = BackendError::Unavailable { retryable: true };
                            if attempt == 0 {
                                continue;
                            }
                        }
                        _ => {
                            if !matches!(e, Pkcs11Error::Busy) {
                                tracing::warn!(member = %m.cfg.name, error = %e, "cluster member failed; failing over");
                                self.mark_down(m);
                            }
                            last = e.into();
                        }
                    },
                }
                continue 'members;
            }
        }
        if missing > 0
            && missing
                == self
                    .members
                    .iter()
                    .filter(|m| self.token(m).is_some())
                    .count()
        {
            return Err(BackendError::KeyMaterialMissing);
        }
        Err(last)
    }

    /// Best-effort deletion of a key's backing objects on every member. Returns whether every
    /// reachable member deleted (or never had) the object and none was unreachable.
    pub fn delete_backing_key(&self, key_id: &KeyId, label: &str) -> bool {
        let mut ok = true;
        for m in &self.members {
            m.handles.write().remove(key_id);
            let Some(t) = self.token(m) else {
                ok = false;
                continue;
            };
            match t.find(ObjectClass::SECRET_KEY, label) {
                Ok(handles) => {
                    for h in handles {
                        if t.with_object_write(|s| s.destroy_object(h)).is_err() {
                            ok = false;
                        }
                    }
                }
                Err(_) => ok = false,
            }
        }
        ok
    }
}

impl Cluster {
    fn seal(&self, id: MaterialId<'_>, plaintext: &[u8], aad: &[u8]) -> BackendResult<Sealed> {
        let out = self.on_member(id, |t, h| {
            let ivs = IvPolicy::of(t.profile(), &self.ivs);
            gcm::encrypt(t, h, ivs, IV_LEN, plaintext, aad)
        })?;
        sealed(out)
    }

    fn open(
        &self,
        id: MaterialId<'_>,
        iv: &[u8; 12],
        ciphertext_and_tag: &[u8],
        aad: &[u8],
    ) -> BackendResult<Zeroizing<Vec<u8>>> {
        self.on_member(id, |t, h| gcm::decrypt(t, h, iv, ciphertext_and_tag, aad))
    }

    /// Random bytes from the first member that answers.
    pub fn random(&self, len: usize) -> BackendResult<Zeroizing<Vec<u8>>> {
        for m in &self.members {
            if let Some(t) = self.token(m) {
                let mut out = Zeroizing::new(vec![0u8; len]);
                if t.with_session(false, |s| s.generate_random_slice(&mut out))
                    .is_ok()
                {
                    return Ok(out);
                }
                self.mark_down(m);
            }
        }
        Err(BackendError::Unavailable { retryable: true })
    }

    fn forget(&self, key_id: &KeyId) {
        for m in &self.members {
            m.handles.write().remove(key_id);
        }
        self.wrapped.write().remove(key_id);
    }
}

/// A connected cluster as a crypto backend: every call that reaches the members runs on the
/// HSM threads (a call with fail-over is one job: the PKCS#11 calls of one request, nothing
/// else).
pub struct ClusterBackend {
    cluster: Arc<Cluster>,
    threads: Arc<BlockingPool>,
}

impl ClusterBackend {
    pub fn new(cluster: Cluster, threads: Arc<BlockingPool>) -> Self {
        ClusterBackend {
            cluster: Arc::new(cluster),
            threads,
        }
    }

    /// The cluster (its blocking methods are for the HSM threads only).
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Runs `f` on the HSM threads.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Cluster) -> BackendResult<T> + Send + 'static,
    ) -> BackendResult<T> {
        let cluster = self.cluster.clone();
        self.threads
            .run(move || f(&cluster))
            .await
            .map_err(|_| BackendError::ThreadsGone)?
    }

    /// [`Cluster::create_backing_key`] on the HSM threads.
    pub async fn create_backing_key(
        &self,
        label: &str,
        min_members: usize,
    ) -> BackendResult<(Vec<u8>, Vec<String>)> {
        let label = label.to_string();
        self.run(move |c| c.create_backing_key(&label, min_members))
            .await
    }

    /// [`Cluster::delete_backing_key`] on the HSM threads.
    pub async fn delete_backing_key(&self, key_id: &KeyId, label: &str) -> bool {
        let (key_id, label) = (key_id.clone(), label.to_string());
        self.run(move |c| Ok(c.delete_backing_key(&key_id, &label)))
            .await
            .unwrap_or(false)
    }

    /// [`Cluster::release`] on the HSM threads.
    pub async fn release(&self) {
        let _ = self
            .run(|c| {
                c.release();
                Ok(())
            })
            .await;
    }

    /// [`Cluster::disconnect`] on the HSM threads.
    pub async fn disconnect(&self) {
        let _ = self
            .run(|c| {
                c.disconnect();
                Ok(())
            })
            .await;
    }
}

#[async_trait::async_trait]
impl CryptoBackend for ClusterBackend {
    fn name(&self) -> &'static str {
        "cloudhsm-cluster"
    }

    async fn generate_symmetric(&self, _m: MaterialId<'_>) -> BackendResult<Vec<u8>> {
        Err(BackendError::Unsupported(
            "keys of a cluster are created with create_backing_key".into(),
        ))
    }

    async fn load(&self, m: MaterialId<'_>, wrapped: &[u8]) -> BackendResult<()> {
        self.cluster
            .wrapped
            .write()
            .insert(m.key_id.clone(), wrapped.to_vec());
        Ok(())
    }

    async fn encrypt(
        &self,
        m: MaterialId<'_>,
        plaintext: &[u8],
        aad: &[u8],
    ) -> BackendResult<Sealed> {
        let (key_id, version, label) = (m.key_id.clone(), m.version, m.label.to_string());
        let (plaintext, aad) = (Zeroizing::new(plaintext.to_vec()), aad.to_vec());
        self.run(move |c| {
            let m = MaterialId {
                key_id: &key_id,
                version,
                label: &label,
                spec: crate::model::KeySpec::SymmetricDefault,
            };
            c.seal(m, &plaintext, &aad)
        })
        .await
    }

    async fn decrypt(
        &self,
        m: MaterialId<'_>,
        iv: &[u8; 12],
        ciphertext_and_tag: &[u8],
        aad: &[u8],
    ) -> BackendResult<Zeroizing<Vec<u8>>> {
        let (key_id, version, label, iv) = (m.key_id.clone(), m.version, m.label.to_string(), *iv);
        let (ciphertext_and_tag, aad) = (ciphertext_and_tag.to_vec(), aad.to_vec());
        self.run(move |c| {
            let m = MaterialId {
                key_id: &key_id,
                version,
                label: &label,
                spec: crate::model::KeySpec::SymmetricDefault,
            };
            c.open(m, &iv, &ciphertext_and_tag, &aad)
        })
        .await
    }

    async fn random(&self, len: usize) -> BackendResult<Zeroizing<Vec<u8>>> {
        self.run(move |c| c.random(len)).await
    }

    fn forget(&self, key_id: &KeyId) {
        self.cluster.forget(key_id);
    }
}
