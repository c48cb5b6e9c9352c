//! The key manager side: PKCS#11 instances ([`HsmInstance`], one per configured token, on the
//! shared driver `hsm`): connection, login checks, IVs, the deep health check,
//! and the attributes of a key object ([`KeyInfo`]). External keys are in [`crate::key`].
//!
//! Everything here blocks; callers run it through [`crate::pool::HsmExecutor`], never on async
//! workers.

use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use std::time::{Duration, Instant};

use cryptoki::error::Error as CkError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState};
use hsm::gcm::{self, IvPolicy};
use hsm::iv::IvPool;
use hsm::{ErrorClass, Pkcs11Error, Token};

use crate::config::HsmConfig;
use crate::error::XksError;

const HEALTH_KEY_LABEL: &str = "xks-proxy-health-check";
const HEALTH_AAD: &[u8] = b"xks-health";

/// One PKCS#11 instance.
///
/// An HSM that cannot be reached when the proxy starts (token missing or not present, device
/// error) does not stop the start: the instance starts *down* and its token is opened on use,
/// at most once per [`REOPEN_EVERY`], so keys with copies on other HSMs keep working and
/// GetHealthStatus reports it UNAVAILABLE until it answers. Configuration errors (a wrong PIN,
/// a module that does not load, a missing mechanism) still stop the start.
pub struct HsmInstance {
    pub name: String,
    cfg: HsmConfig,
    token: RwLock<Option<Arc<Token>>>,
    /// When opening a down instance was last tried.
    last_open: Mutex<Option<Instant>>,
    health_key_label: Option<String>,
    health_key: Mutex<Option<(u64, ObjectHandle)>>,
    ivs: IvPool,
}

/// How often a down instance is tried again (on use). Once opened, the token stays: its own
/// recovery (`hsm::Token`) handles later outages, and its handle generations
/// stay meaningful.
pub const REOPEN_EVERY: Duration = Duration::from_secs(1);

impl std::fmt::Debug for HsmInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HsmInstance")
            .field("name", &self.name)
            .field("token", &self.cfg.token.token_label)
            .finish()
    }
}

/// Whether a failure to open a token means "not reachable now" rather than "misconfigured".
fn unreachable(e: &Pkcs11Error) -> bool {
    matches!(e, Pkcs11Error::TokenNotFound { .. })
        || matches!(
            e.class(),
            ErrorClass::TokenNotPresent | ErrorClass::Device | ErrorClass::SessionLost
        )
}

impl HsmInstance {
    /// Connects to the token (loads the module, logs in, checks mechanisms); an unreachable
    /// token gives a down instance (see the type's documentation).
    pub fn open(cfg: &HsmConfig) -> Result<Arc<HsmInstance>, Pkcs11Error> {
        let token = match Token::open(cfg.token.clone()) {
            Ok(t) => Some(t),
            Err(e) if unreachable(&e) => {
                tracing::warn!(hsm = %cfg.name, token = %cfg.token.token_label, error = %e,
                    "HSM not reachable at start: starting without it, trying again on use");
                None
            }
            Err(e) => return Err(e),
        };
        Ok(Arc::new(HsmInstance {
            name: cfg.name.clone(),
            cfg: cfg.clone(),
            last_open: Mutex::new(token.is_none().then(Instant::now)),
            token: RwLock::new(token),
            health_key_label: cfg.health_key_label.clone(),
            health_key: Mutex::new(None),
            ivs: IvPool::new(),
        }))
    }

    /// The connected token; a down instance is opened again (at most once per
    /// [`REOPEN_EVERY`]).
    pub fn token(&self) -> Result<Arc<Token>, Pkcs11Error> {
        if let Some(t) = self.token.read().as_ref() {
            return Ok(t.clone());
        }
        let not_connected = || Pkcs11Error::Other(format!("HSM {} is not connected", self.name));
        // One caller reopens; the others fail at once (and fail over to other copies) rather
        // than wait behind an HSM that may be slow to answer.
        let mut last = match self.last_open.try_lock() {
            Some(l) => l,
            None => return Err(not_connected()),
        };
        if let Some(t) = self.token.read().as_ref() {
            return Ok(t.clone()); // opened meanwhile
        }
        if last.is_some_and(|t| t.elapsed() < REOPEN_EVERY) {
            return Err(not_connected());
        }
        *last = Some(Instant::now());
        let t = Token::open(self.cfg.token.clone())?;
        tracing::info!(hsm = %self.name, model = %self.model_of(&t), "HSM connected");
        *self.token.write() = Some(t.clone());
        Ok(t)
    }

    /// The connected token, without trying to open a down one (metrics, descriptions).
    fn token_if_up(&self) -> Option<Arc<Token>> {
        self.token.read().clone()
    }

    /// Sessions in use, open and the maximum (zeros but the maximum while down).
    pub fn session_use(&self) -> (usize, usize, usize) {
        self.token_if_up()
            .map_or((0, 0, self.cfg.token.max_sessions), |t| t.session_use())
    }

    fn model_of(&self, t: &Token) -> String {
        let s = t.summary();
        format!(
            "{} {} (token '{}', serial {}, profile {})",
            s.manufacturer,
            s.model,
            s.label,
            s.serial,
            t.profile().name
        )
    }

    /// The model string for GetHealthStatus: manufacturer, model and serial of the token.
    pub fn model(&self) -> String {
        match self.token_if_up() {
            Some(t) => self.model_of(&t),
            None => format!(
                "token '{}' (not connected, profile {})",
                self.cfg.token.token_label, self.cfg.token.profile.name
            ),
        }
    }

    /// The vendor of the key manager (from the profile, else the token's manufacturer).
    pub fn vendor(&self) -> String {
        let v = &self.cfg.token.profile.vendor;
        if !v.is_empty() && v != "unknown" {
            return v.clone();
        }
        self.token_if_up()
            .map_or_else(|| "unknown".into(), |t| t.summary().manufacturer.clone())
    }

    /// Makes sure the application is logged in: if the anchor session is gone or no longer
    /// logged in (all sessions were closed, the token restarted), the connection is rebuilt.
    pub fn ensure_logged_in(&self) -> Result<(), Pkcs11Error> {
        let token = self.token()?;
        let state = token.with_anchor(|s| s.get_session_info().map(|i| i.session_state()));
        match state {
            Ok(SessionState::RwUser | SessionState::RoUser) => Ok(()),
            Ok(_) | Err(_) => {
                tracing::warn!(hsm = %self.name, "HSM login lost: reconnecting");
                token.reconnect()
            }
        }
    }

    /// Where this HSM's GCM IVs come from (its profile's `host_generated_iv`).
    pub(crate) fn iv_policy(&self) -> IvPolicy<'_> {
        IvPolicy::of(&self.cfg.token.profile, &self.ivs)
    }

    /// Fills `buf` with random bytes from the host's CSPRNG.
    pub(crate) fn fill_random(&self, buf: &mut [u8]) -> Result<(), XksError> {
        self.ivs
            .fill(buf)
            .map_err(|e| XksError::internal(e.to_string()))
    }

    fn health_key(&self, token: &Token) -> Result<ObjectHandle, Pkcs11Error> {
        let gen = token.generation();
        let mut cached = self.health_key.lock();
        if let Some((g, h)) = *cached {
            if g == gen {
                return Ok(h);
            }
        }
        let h = match &self.health_key_label {
            Some(label) => *token
                .find(ObjectClass::SECRET_KEY, label)?
                .first()
                .ok_or_else(|| Pkcs11Error::ObjectNotFound(label.clone()))?,
            None => {
                // A test key of our own, as a session object of the anchor session: it lives
                // as long as the connection and never touches customer keys.
                let template = [
                    Attribute::Token(false),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                    Attribute::ValueLen(32.into()),
                    Attribute::Label(HEALTH_KEY_LABEL.as_bytes().to_vec()),
                ];
                token.with_anchor(|s| s.generate_key(&Mechanism::AesKeyGen, &template))?
            }
        };
        *cached = Some((gen, h));
        Ok(h)
    }

    fn forget_health_key(&self) {
        *self.health_key.lock() = None;
    }

    fn health_round_trip(&self) -> Result<(), Pkcs11Error> {
        let token = self.token()?;
        token.probe()?;
        let key = self.health_key(&token)?;
        let data = [0x5au8; 32];
        let sealed = gcm::encrypt(&token, key, self.iv_policy(), 12, &data, HEALTH_AAD)?;
        let opened = gcm::decrypt(
            &token,
            key,
            &sealed.iv,
            &sealed.ciphertext_and_tag,
            HEALTH_AAD,
        )?;
        if opened.as_slice() != data {
            return Err(Pkcs11Error::Other(
                "the health check round trip returned different data".into(),
            ));
        }
        Ok(())
    }

    /// The deep health check: token present, a session usable, an AES-GCM round trip with a
    /// test key. A failure is retried once after re-establishing the login.
    pub fn health_check(&self) -> Result<Duration, Pkcs11Error> {
        let started = Instant::now();
        match self.health_round_trip() {
            Ok(()) => Ok(started.elapsed()),
            Err(first) => {
                tracing::debug!(hsm = %self.name, error = %first, "health check failed; retrying after a login check");
                self.forget_health_key();
                self.ensure_logged_in()?;
                self.health_round_trip()?;
                Ok(started.elapsed())
            }
        }
    }
}

/// What the HSM says about a key (read with C_GetAttributeValue into typed attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyInfo {
    pub key_type: Option<KeyType>,
    pub value_len: Option<u64>,
    pub encrypt: bool,
    pub decrypt: bool,
    pub wrap: bool,
    pub unwrap: bool,
    pub sign: bool,
    pub verify: bool,
    pub derive: bool,
}

impl KeyInfo {
    pub(crate) fn read(session: &Session, h: ObjectHandle) -> Result<KeyInfo, CkError> {
        let attrs = session.get_attributes(
            h,
            &[
                AttributeType::KeyType,
                AttributeType::ValueLen,
                AttributeType::Encrypt,
                AttributeType::Decrypt,
                AttributeType::Wrap,
                AttributeType::Unwrap,
                AttributeType::Sign,
                AttributeType::Verify,
                AttributeType::Derive,
            ],
        )?;
        let mut info = KeyInfo {
            key_type: None,
            value_len: None,
            encrypt: false,
            decrypt: false,
            wrap: false,
            unwrap: false,
            sign: false,
            verify: false,
            derive: false,
        };
        for a in attrs {
            match a {
                Attribute::KeyType(t) => info.key_type = Some(t),
                Attribute::ValueLen(l) => info.value_len = Some(u64::from(l)),
                Attribute::Encrypt(b) => info.encrypt = b,
                Attribute::Decrypt(b) => info.decrypt = b,
                Attribute::Wrap(b) => info.wrap = b,
                Attribute::Unwrap(b) => info.unwrap = b,
                Attribute::Sign(b) => info.sign = b,
                Attribute::Verify(b) => info.verify = b,
                Attribute::Derive(b) => info.derive = b,
                _ => {}
            }
        }
        Ok(info)
    }

    /// Whether this is a 256-bit AES key.
    pub fn is_aes_256(&self) -> bool {
        self.key_type == Some(KeyType::AES) && self.value_len == Some(32)
    }

    /// The keySpec: `AES_256` for a 256-bit AES key, else a descriptive name.
    pub fn key_spec(&self) -> String {
        match (self.key_type, self.value_len) {
            (Some(t), Some(len)) if t == KeyType::AES => format!("AES_{}", len * 8),
            (Some(t), Some(len)) if t == KeyType::GENERIC_SECRET => {
                format!("GENERIC_SECRET_{}", len * 8)
            }
            (Some(t), _) => t.to_string().trim_start_matches("CKK_").to_string(),
            (None, _) => "UNKNOWN".into(),
        }
    }

    /// The keyUsage values, in a stable order (at most 7, below the spec's limit of 10).
    pub fn key_usage(&self) -> Vec<String> {
        [
            (self.encrypt, "ENCRYPT"),
            (self.decrypt, "DECRYPT"),
            (self.wrap, "WRAP"),
            (self.unwrap, "UNWRAP"),
            (self.sign, "SIGN"),
            (self.verify, "VERIFY"),
            (self.derive, "DERIVE"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| name.to_string())
        .collect()
    }
}
