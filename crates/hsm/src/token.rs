//! One token of one PKCS#11 module: the anchor session, the session pool, recovery, and the
//! start-up mechanism check.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, MutexGuard, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::MechanismType;
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use secrecy::{ExposeSecret, SecretString};

use crate::error::{classify, ErrorClass, Pkcs11Error};
use crate::{module, VendorProfile};

/// Consecutive device errors after which the connection to the token is rebuilt.
const DEVICE_ERRORS_BEFORE_RECONNECT: u32 = 3;
/// How often a connection left down by a failed reconnect is tried again.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// How to reach and log in to a token.
#[derive(Clone)]
pub struct TokenConfig {
    pub module: PathBuf,
    pub token_label: String,
    pub pin: SecretString,
    /// Log in as the security officer instead of the normal user.
    pub so: bool,
    pub max_sessions: usize,
    /// How long a caller waits for a free session before [`Pkcs11Error::Busy`].
    pub session_wait: Duration,
    pub profile: Arc<VendorProfile>,
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("pin", &"<redacted>")
            .field("max_sessions", &self.max_sessions)
            .field("profile", &self.profile.name)
            .finish()
    }
}

/// Static facts about the token, read at connect time.
#[derive(Debug, Clone, Default)]
pub struct TokenSummary {
    pub label: String,
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
}

struct Conn {
    slot: Slot,
    anchor: Session,
}

struct Pool {
    idle: Vec<(u64, Session)>,
    open: usize,
    /// Callers waiting for a session (a wake-up is a system call: only when someone waits).
    waiters: usize,
}

/// A connected, logged-in token.
pub struct Token {
    cfg: TokenConfig,
    pin: parking_lot::RwLock<SecretString>,
    ctx: Pkcs11,
    conn: Mutex<Option<Conn>>,
    pool: Mutex<Pool>,
    freed: Condvar,
    generation: AtomicU64,
    device_errors: AtomicU32,
    /// When a connection that was down was last tried again.
    last_reconnect: Mutex<Option<Instant>>,
    mechanisms: Vec<MechanismType>,
    summary: TokenSummary,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock()
}

/// Finds the slot whose initialized token has `label` (slot ids change when tokens are
/// initialized, so never by index).
pub fn find_slot(ctx: &Pkcs11, label: &str, profile: &VendorProfile) -> Result<Slot, Pkcs11Error> {
    let slots = ctx
        .get_slots_with_initialized_token()
        .map_err(|e| classify(&e, profile, false))?;
    for slot in slots {
        if let Ok(info) = ctx.get_token_info(slot) {
            if info.label().trim_end() == label {
                return Ok(slot);
            }
        }
    }
    Err(Pkcs11Error::TokenNotFound {
        label: label.to_string(),
    })
}

impl Token {
    /// Loads the module, finds the token, opens the anchor session, logs in and checks the
    /// profile's required mechanisms.
    pub fn open(cfg: TokenConfig) -> Result<Arc<Token>, Pkcs11Error> {
        let ctx = module::load(&cfg.module)?;
        let slot = find_slot(&ctx, &cfg.token_label, &cfg.profile)?;
        let info = ctx
            .get_token_info(slot)
            .map_err(|e| classify(&e, &cfg.profile, false))?;
        let summary = TokenSummary {
            label: info.label().trim_end().to_string(),
            manufacturer: info.manufacturer_id().trim_end().to_string(),
            model: info.model().trim_end().to_string(),
            serial: info.serial_number().trim_end().to_string(),
        };
        let mechanisms = ctx
            .get_mechanism_list(slot)
            .map_err(|e| classify(&e, &cfg.profile, false))?;
        for required in &cfg.profile.required_mechanisms {
            if !mechanisms.iter().any(|m| &m.to_string() == required) {
                return Err(Pkcs11Error::MissingMechanism(required.clone()));
            }
        }
        let anchor = Self::open_anchor(&ctx, slot, &cfg, &cfg.pin)?;
        Ok(Arc::new(Token {
            pin: parking_lot::RwLock::new(SecretString::from(cfg.pin.expose_secret().to_string())),
            conn: Mutex::new(Some(Conn { slot, anchor })),
            pool: Mutex::new(Pool {
                idle: Vec::new(),
                open: 0,
                waiters: 0,
            }),
            freed: Condvar::new(),
            generation: AtomicU64::new(1),
            device_errors: AtomicU32::new(0),
            last_reconnect: Mutex::new(None),
            mechanisms,
            summary,
            ctx,
            cfg,
        }))
    }

    fn open_anchor(
        ctx: &Pkcs11,
        slot: Slot,
        cfg: &TokenConfig,
        pin: &SecretString,
    ) -> Result<Session, Pkcs11Error> {
        let anchor = ctx
            .open_rw_session(slot)
            .map_err(|e| classify(&e, &cfg.profile, false))?;
        let user = if cfg.so { UserType::So } else { UserType::User };
        match anchor.login(user, Some(pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(anchor),
            Err(e) => Err(classify(&e, &cfg.profile, false)),
        }
    }

    pub fn profile(&self) -> &VendorProfile {
        &self.cfg.profile
    }

    pub fn config(&self) -> &TokenConfig {
        &self.cfg
    }

    pub fn summary(&self) -> &TokenSummary {
        &self.summary
    }

    /// Whether the token offers a mechanism (from `C_GetMechanismList` at connect time).
    pub fn supports(&self, m: MechanismType) -> bool {
        self.mechanisms.contains(&m)
    }

    /// Bumped whenever the connection is rebuilt: object handles (and session objects) of an
    /// older generation are invalid.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Sessions open now and the maximum (for metrics).
    pub fn session_use(&self) -> (usize, usize, usize) {
        let p = lock(&self.pool);
        (p.open - p.idle.len(), p.open, self.cfg.max_sessions)
    }

    fn take_session(&self) -> Result<(u64, Session), Pkcs11Error> {
        let deadline = Instant::now() + self.cfg.session_wait;
        let mut pool = lock(&self.pool);
        loop {
            let gen = self.generation();
            while let Some((g, s)) = pool.idle.pop() {
                if g == gen {
                    return Ok((g, s));
                }
                pool.open -= 1; // a session from before a reconnect: close it
                drop(s);
            }
            if pool.open < self.cfg.max_sessions {
                pool.open += 1;
                drop(pool);
                let slot = lock(&self.conn).as_ref().map(|c| c.slot);
                let slot = slot.or_else(|| self.reconnect_if_down());
                // A reconnect above starts a new generation.
                let gen = self.generation();
                let opened = match slot {
                    Some(slot) => self
                        .ctx
                        .open_rw_session(slot)
                        .map_err(|e| classify(&e, &self.cfg.profile, false)),
                    None => Err(Pkcs11Error::Other("token connection is down".into())),
                };
                return match opened {
                    Ok(s) => Ok((gen, s)),
                    Err(e) => {
                        let mut pool = lock(&self.pool);
                        pool.open -= 1;
                        if pool.waiters > 0 {
                            self.freed.notify_one();
                        }
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Pkcs11Error::Busy);
            }
            pool.waiters += 1;
            self.freed.wait_for(&mut pool, deadline - now);
            pool.waiters -= 1;
        }
    }

    /// Tries again (at most once per [`RECONNECT_EVERY`]) a connection that a failed reconnect
    /// left down, e.g. while the token was removed; returns its slot when it is up.
    fn reconnect_if_down(&self) -> Option<Slot> {
        if let Some(c) = lock(&self.conn).as_ref() {
            return Some(c.slot);
        }
        {
            let mut last = lock(&self.last_reconnect);
            if last.is_some_and(|t| t.elapsed() < RECONNECT_EVERY) {
                return None;
            }
            *last = Some(Instant::now());
        }
        match self.reconnect() {
            Ok(()) => lock(&self.conn).as_ref().map(|c| c.slot),
            Err(e) => {
                tracing::debug!(token = %self.summary.label, error = %e, "token still unreachable");
                None
            }
        }
    }

    fn give_back(&self, gen: u64, session: Session, healthy: bool) {
        let mut pool = lock(&self.pool);
        if healthy && gen == self.generation() {
            pool.idle.push((gen, session));
        } else {
            pool.open -= 1;
            drop(session);
        }
        let wake = pool.waiters > 0;
        drop(pool);
        if wake {
            self.freed.notify_one();
        }
    }

    /// Runs `f` on a pooled session, waiting at most the configured deadline for one.
    /// A lost session is replaced and a lost login redone, each retried once; repeated device
    /// errors rebuild the connection. `decrypting` marks AEAD decryption for error
    /// classification.
    pub fn with_session<T>(
        &self,
        decrypting: bool,
        mut f: impl FnMut(&Session) -> Result<T, CkError>,
    ) -> Result<T, Pkcs11Error> {
        let mut retried = false;
        loop {
            let (gen, session) = match self.take_session() {
                Ok(s) => s,
                Err(e) => {
                    // A token that cannot even open a session counts towards a reconnect too.
                    if matches!(e.class(), ErrorClass::Device | ErrorClass::TokenNotPresent) {
                        self.device_error();
                    }
                    return Err(e);
                }
            };
            match f(&session) {
                Ok(v) => {
                    self.device_errors.store(0, Ordering::Relaxed);
                    self.give_back(gen, session, true);
                    return Ok(v);
                }
                Err(e) => {
                    let err = classify(&e, &self.cfg.profile, decrypting);
                    match err.class() {
                        ErrorClass::SessionLost if !retried => {
                            self.give_back(gen, session, false);
                        }
                        ErrorClass::NotLoggedIn if !retried => {
                            self.give_back(gen, session, false);
                            self.reconnect()?;
                        }
                        ErrorClass::Device | ErrorClass::TokenNotPresent => {
                            self.give_back(gen, session, false);
                            self.device_error();
                            return Err(err);
                        }
                        ErrorClass::SessionLost | ErrorClass::NotLoggedIn => {
                            self.give_back(gen, session, false);
                            return Err(err);
                        }
                        _ => {
                            self.give_back(gen, session, true);
                            return Err(err);
                        }
                    }
                    retried = true;
                }
            }
        }
    }

    /// Counts a device error; repeated ones rebuild the connection.
    fn device_error(&self) {
        let n = self.device_errors.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= DEVICE_ERRORS_BEFORE_RECONNECT {
            self.device_errors.store(0, Ordering::Relaxed);
            tracing::warn!(token = %self.summary.label, "repeated device errors: reconnecting");
            let _ = self.reconnect();
        }
    }

    /// Runs `f`, which creates, generates, unwraps or destroys token objects, on a pooled
    /// session (as [`Token::with_session`]). For modules whose object store is not safe for
    /// concurrent use (profile `serialize_object_store`), it runs alone: no other write and no
    /// search in the process at the same time.
    pub fn with_object_write<T>(
        &self,
        f: impl FnMut(&Session) -> Result<T, CkError>,
    ) -> Result<T, Pkcs11Error> {
        let _exclusive = self.store_write();
        self.with_session(false, f)
    }

    fn store_write(&self) -> Option<RwLockWriteGuard<'static, ()>> {
        self.cfg
            .profile
            .serialize_object_store
            .then(|| module::object_store_lock().write())
    }

    fn store_read(&self) -> Option<RwLockReadGuard<'static, ()>> {
        self.cfg
            .profile
            .serialize_object_store
            .then(|| module::object_store_lock().read())
    }

    /// Runs `f` on the anchor session (objects created here live as long as the connection).
    pub fn with_anchor<T>(
        &self,
        f: impl FnOnce(&Session) -> Result<T, CkError>,
    ) -> Result<T, Pkcs11Error> {
        let conn = lock(&self.conn);
        let Some(c) = conn.as_ref() else {
            return Err(Pkcs11Error::Other("token connection is down".into()));
        };
        f(&c.anchor).map_err(|e| classify(&e, &self.cfg.profile, false))
    }

    /// Drops every session, finds the token again, opens a new anchor and logs in. Cached
    /// object handles of the old generation become invalid.
    pub fn reconnect(&self) -> Result<(), Pkcs11Error> {
        let mut conn = lock(&self.conn);
        self.generation.fetch_add(1, Ordering::AcqRel);
        {
            let mut pool = lock(&self.pool);
            let n = pool.idle.len();
            pool.idle.clear();
            pool.open -= n;
        }
        *conn = None;
        let slot = find_slot(&self.ctx, &self.cfg.token_label, &self.cfg.profile)?;
        let pin = SecretString::from(self.pin.read().expose_secret().to_string());
        let anchor = Self::open_anchor(&self.ctx, slot, &self.cfg, &pin)?;
        *conn = Some(Conn { slot, anchor });
        tracing::info!(token = %self.summary.label, generation = self.generation(), "token reconnected");
        Ok(())
    }

    /// Handles of objects of `class` whose label is `label`. A search reads every object on
    /// some tokens: call it at start-up or on a cache miss, never per request.
    ///
    /// Private objects are invisible without a login, so an empty result from a session that
    /// is no longer logged in (the login was lost: a C_Logout elsewhere in the process, a token
    /// that was reset) is not believed: the token is logged in again and searched once more.
    /// Otherwise a caller would take a missing domain key for a new token and create another.
    pub fn find(&self, class: ObjectClass, label: &str) -> Result<Vec<ObjectHandle>, Pkcs11Error> {
        let template = [
            Attribute::Class(class),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        let mut logged_in_again = false;
        loop {
            let shared = self.store_read();
            let (found, believable) = self.with_session(false, |s| {
                let found = s.find_objects(&template)?;
                let believable = !found.is_empty() || is_logged_in(s)?;
                Ok((found, believable))
            })?;
            drop(shared);
            if believable {
                return Ok(found);
            }
            if logged_in_again {
                let e = CkError::Pkcs11(
                    cryptoki::error::RvError::UserNotLoggedIn,
                    cryptoki::context::Function::FindObjectsInit,
                );
                return Err(classify(&e, &self.cfg.profile, false));
            }
            tracing::warn!(token = %self.summary.label, "the token's login is gone: logging in again");
            self.reconnect()?;
            logged_in_again = true;
        }
    }

    /// Changes the logged-in user's PIN (C_SetPIN) and remembers the new one for reconnects.
    pub fn set_pin(&self, old: &SecretString, new: &SecretString) -> Result<(), Pkcs11Error> {
        self.with_anchor(|s| s.set_pin(old, new))?;
        *self.pin.write() = SecretString::from(new.expose_secret().to_string());
        Ok(())
    }

    /// A real probe: the token is present, a session works, and it produces random bytes.
    pub fn probe(&self) -> Result<(), Pkcs11Error> {
        self.with_session(false, |s| {
            s.get_session_info()?;
            let mut buf = [0u8; 16];
            s.generate_random_slice(&mut buf)
        })
    }
}

/// True when the session's application is logged in (user or security officer).
fn is_logged_in(s: &Session) -> Result<bool, CkError> {
    use cryptoki::session::SessionState;
    Ok(matches!(
        s.get_session_info()?.session_state(),
        SessionState::RoUser | SessionState::RwUser | SessionState::RwSecurityOfficer
    ))
}

/// Initializes a fresh token in the first free slot (as `softhsm2-util --init-token --free`
/// does) and sets its user PIN. For development and tests: production tokens are initialized
/// with the vendor's tools. Calls within a process run one at a time, so two threads never
/// pick the same free slot.
pub fn init_token(
    module_path: &std::path::Path,
    label: &str,
    so_pin: &SecretString,
    user_pin: &SecretString,
    profile: &VendorProfile,
) -> Result<(), Pkcs11Error> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _alone = lock(&ONE_AT_A_TIME);
    let ctx = module::load(module_path)?;
    if find_slot(&ctx, label, profile).is_ok() {
        return Ok(());
    }
    let c = |e: CkError| classify(&e, profile, false);
    let free = ctx
        .get_slots_with_token()
        .map_err(c)?
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .map(|i| !i.token_initialized())
                .unwrap_or(false)
        })
        .ok_or_else(|| Pkcs11Error::Other("no free slot to initialize a token in".into()))?;
    ctx.init_token(free, so_pin, label).map_err(c)?;
    let slot = find_slot(&ctx, label, profile)?;
    let session = ctx.open_rw_session(slot).map_err(c)?;
    session.login(UserType::So, Some(so_pin)).map_err(c)?;
    session.init_pin(user_pin).map_err(c)?;
    session.logout().map_err(c)?;
    Ok(())
}
