//! The key manager side: PKCS#11 instances ([`HsmInstance`], one per configured token, on the
//! shared driver `kms::backend::pkcs11`) and external keys ([`KeyEntry`]: external key id ->
//! token object, with the object handle and its attributes cached per connection generation).
//!
//! Everything here blocks; callers run it through [`crate::pool::HsmExecutor`], never on async
//! workers. Errors come out already mapped to the wire ([`XksError`]).
//!
//! Recovery: a stale object handle (the token was reconnected, or the login was lost and with
//! it the visibility of private objects) makes the key be looked up again once; before that
//! lookup the login is checked on the anchor session and re-established if it is gone, so a
//! key is never reported missing just because the session state was lost.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use cryptoki::error::Error as CkError;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState};
use kms::backend::iv::IvPool;
use kms::backend::pkcs11::{ErrorClass, Pkcs11Error, Token};
use kms::xks_wire::{ErrorName, TAG_LEN};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::config::HsmConfig;
use crate::error::XksError;

const TAG_BITS: u64 = (TAG_LEN as u64) * 8;
const HEALTH_KEY_LABEL: &str = "xks-proxy-health-check";

/// One PKCS#11 instance.
pub struct HsmInstance {
    pub name: String,
    token: Arc<Token>,
    health_key_label: Option<String>,
    health_key: Mutex<Option<(u64, ObjectHandle)>>,
    ivs: IvPool,
}

impl std::fmt::Debug for HsmInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HsmInstance")
            .field("name", &self.name)
            .field("token", &self.token.summary().label)
            .finish()
    }
}

impl HsmInstance {
    /// Connects to the token (loads the module, logs in, checks mechanisms).
    pub fn open(cfg: &HsmConfig) -> Result<Arc<HsmInstance>, Pkcs11Error> {
        let token = Token::open(cfg.token.clone())?;
        Ok(Arc::new(HsmInstance {
            name: cfg.name.clone(),
            token,
            health_key_label: cfg.health_key_label.clone(),
            health_key: Mutex::new(None),
            ivs: IvPool::new(),
        }))
    }

    pub fn token(&self) -> &Arc<Token> {
        &self.token
    }

    /// The model string for GetHealthStatus: manufacturer, model and serial of the token.
    pub fn model(&self) -> String {
        let s = self.token.summary();
        format!(
            "{} {} (token '{}', serial {}, profile {})",
            s.manufacturer,
            s.model,
            s.label,
            s.serial,
            self.token.profile().name
        )
    }

    /// The vendor of the key manager (from the profile, else the token's manufacturer).
    pub fn vendor(&self) -> String {
        let v = &self.token.profile().vendor;
        if v.is_empty() || v == "unknown" {
            self.token.summary().manufacturer.clone()
        } else {
            v.clone()
        }
    }

    /// Makes sure the application is logged in: if the anchor session is gone or no longer
    /// logged in (all sessions were closed, the token restarted), the connection is rebuilt.
    pub fn ensure_logged_in(&self) -> Result<(), Pkcs11Error> {
        let state = self
            .token
            .with_anchor(|s| s.get_session_info().map(|i| i.session_state()));
        match state {
            Ok(SessionState::RwUser | SessionState::RoUser) => Ok(()),
            Ok(_) | Err(_) => {
                tracing::warn!(hsm = %self.name, "HSM login lost: reconnecting");
                self.token.reconnect()
            }
        }
    }

    fn fill_iv(&self, iv: &mut [u8]) -> Result<(), XksError> {
        if self.token.profile().host_generated_iv {
            self.ivs
                .fill(iv)
                .map_err(|e| XksError::internal(e.to_string()))
        } else {
            // The token generates the IV and writes it into the parameter buffer.
            iv.fill(0);
            Ok(())
        }
    }

    fn health_key(&self) -> Result<ObjectHandle, Pkcs11Error> {
        let gen = self.token.generation();
        let mut cached = self.health_key.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((g, h)) = *cached {
            if g == gen {
                return Ok(h);
            }
        }
        let h = match &self.health_key_label {
            Some(label) => *self
                .token
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
                self.token
                    .with_anchor(|s| s.generate_key(&Mechanism::AesKeyGen, &template))?
            }
        };
        *cached = Some((gen, h));
        Ok(h)
    }

    fn forget_health_key(&self) {
        *self.health_key.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn health_round_trip(&self) -> Result<(), Pkcs11Error> {
        self.token.probe()?;
        let key = self.health_key()?;
        let iv = self
            .ivs
            .iv12()
            .map_err(|e| Pkcs11Error::Other(e.to_string()))?;
        let data = [0x5au8; 32];
        let sealed = self.token.with_session(false, |s| {
            let mut iv_buf = iv;
            let params = GcmParams::new(&mut iv_buf, b"xks-health", TAG_BITS.into())?;
            s.encrypt(&Mechanism::AesGcm(params), key, &data)
        })?;
        let opened = self.token.with_session(true, |s| {
            let mut iv_buf = iv;
            let params = GcmParams::new(&mut iv_buf, b"xks-health", TAG_BITS.into())?;
            s.decrypt(&Mechanism::AesGcm(params), key, &sealed)
        })?;
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
    fn read(session: &Session, h: ObjectHandle) -> Result<KeyInfo, CkError> {
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

#[derive(Debug, Clone, Copy)]
struct Resolved {
    generation: u64,
    handle: ObjectHandle,
    info: KeyInfo,
}

/// An external key: its id, where it lives, whether the operator enabled it, and the cached
/// handle.
pub struct KeyEntry {
    pub id: String,
    pub label: String,
    pub enabled: bool,
    pub hsm: Arc<HsmInstance>,
    cache: RwLock<Option<Resolved>>,
    /// When the last search found nothing (connection generation, time): searches read every
    /// object on some tokens, so a missing key is not searched again for a few seconds.
    missing: Mutex<Option<(u64, Instant)>>,
}

/// How long "no such object" is remembered.
const MISSING_TTL: Duration = Duration::from_secs(5);

impl std::fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEntry")
            .field("id", &self.id)
            .field("label", &self.label)
            .field("enabled", &self.enabled)
            .field("hsm", &self.hsm.name)
            .finish()
    }
}

/// The result of an encryption.
pub struct Sealed {
    pub iv: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub tag: Vec<u8>,
    /// SHA-256 ciphertext data integrity value, when requested.
    pub cdiv: Option<[u8; 32]>,
}

impl KeyEntry {
    pub fn new(id: &str, label: &str, enabled: bool, hsm: Arc<HsmInstance>) -> KeyEntry {
        KeyEntry {
            id: id.to_string(),
            label: label.to_string(),
            enabled,
            hsm,
            cache: RwLock::new(None),
            missing: Mutex::new(None),
        }
    }

    /// A copy with another enabled flag that shares nothing mutable (used by reloads; the
    /// cached handle is carried over).
    pub fn with_enabled(&self, enabled: bool) -> KeyEntry {
        let cached = *self.cache.read().unwrap_or_else(|p| p.into_inner());
        KeyEntry {
            id: self.id.clone(),
            label: self.label.clone(),
            enabled,
            hsm: self.hsm.clone(),
            cache: RwLock::new(cached),
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

    fn find(&self) -> Result<ObjectHandle, XksError> {
        let token = self.hsm.token();
        let generation = token.generation();
        if let Some((g, at)) = *self.missing.lock().unwrap_or_else(|p| p.into_inner()) {
            if g == generation && at.elapsed() < MISSING_TTL {
                return Err(self.not_found());
            }
        }
        let result = self.search();
        let mut missing = self.missing.lock().unwrap_or_else(|p| p.into_inner());
        *missing = match &result {
            Err(e) if e.name == ErrorName::KeyNotFoundException => {
                Some((token.generation(), Instant::now()))
            }
            _ => None,
        };
        result
    }

    fn search(&self) -> Result<ObjectHandle, XksError> {
        let token = self.hsm.token();
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
        let token = self.hsm.token();
        let generation = token.generation();
        if !refresh {
            if let Some(r) = *self.cache.read().unwrap_or_else(|p| p.into_inner()) {
                if r.generation == generation {
                    return Ok(r);
                }
            }
        }
        let handle = self.find()?;
        let info = token
            .with_session(false, |s| KeyInfo::read(s, handle))
            .map_err(|e| self.map(&e, false))?;
        let r = Resolved {
            generation,
            handle,
            info,
        };
        *self.cache.write().unwrap_or_else(|p| p.into_inner()) = Some(r);
        Ok(r)
    }

    /// Runs `f` with the key's handle; a stale handle (or a lost login) is recovered once.
    fn with_handle<T>(
        &self,
        decrypting: bool,
        f: impl Fn(&Token, ObjectHandle, &KeyInfo) -> Result<T, Pkcs11Error>,
    ) -> Result<T, XksError> {
        let r = self.resolve(false)?;
        match f(self.hsm.token(), r.handle, &r.info) {
            Ok(v) => Ok(v),
            Err(e) if matches!(e.class(), ErrorClass::StaleHandle | ErrorClass::NotLoggedIn) => {
                tracing::info!(key = %self.id, hsm = %self.hsm.name, error = %e, "key handle is stale: looking the key up again");
                self.hsm
                    .ensure_logged_in()
                    .map_err(|e| self.map(&e, decrypting))?;
                let r = self.resolve(true)?;
                f(self.hsm.token(), r.handle, &r.info).map_err(|e| self.map(&e, decrypting))
            }
            Err(e) => Err(self.map(&e, decrypting)),
        }
    }

    /// Reads the key's current attributes from the HSM (not from the cache).
    pub fn metadata(&self) -> Result<KeyInfo, XksError> {
        let info = self.with_handle(false, |token, h, _| {
            token.with_session(false, |s| KeyInfo::read(s, h))
        })?;
        if let Some(r) = self
            .cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
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
    pub fn encrypt(
        &self,
        iv_len: usize,
        plaintext: &[u8],
        aad: &[u8],
        cdiv_input: Option<(&[u8], &[u8])>,
        verify: bool,
    ) -> Result<Sealed, XksError> {
        let r = self.resolve(false)?;
        self.check_usage(&r.info, true, verify)?;
        let mut iv = vec![0u8; iv_len];
        self.hsm.fill_iv(&mut iv)?;
        let (iv, out) = self.with_handle(false, |token, h, _| {
            token.with_session(false, |s| {
                let mut iv_buf = iv.clone();
                let out = {
                    let params = GcmParams::new(&mut iv_buf, aad, TAG_BITS.into())?;
                    s.encrypt(&Mechanism::AesGcm(params), h, plaintext)?
                };
                Ok((iv_buf, out))
            })
        })?;
        if out.len() != plaintext.len() + TAG_LEN {
            return Err(XksError::internal(format!(
                "the HSM returned {} bytes for {} bytes of plaintext",
                out.len(),
                plaintext.len()
            )));
        }
        let (ct, tag) = out.split_at(plaintext.len());
        let cdiv = cdiv_input.map(|(a, m)| kms::xks_wire::cdiv_sha256(a, m, &iv, ct, tag));
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
    pub fn decrypt(
        &self,
        iv: &[u8],
        ciphertext_and_tag: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, XksError> {
        let r = self.resolve(false)?;
        self.check_usage(&r.info, false, true)?;
        let plain = self.with_handle(true, |token, h, _| {
            token.with_session(true, |s| {
                let mut iv_buf = iv.to_vec();
                let params = GcmParams::new(&mut iv_buf, aad, TAG_BITS.into())?;
                s.decrypt(&Mechanism::AesGcm(params), h, ciphertext_and_tag)
                    .map(Zeroizing::new)
            })
        })?;
        Ok(plain)
    }

    /// Looks the key up now (start-up warm-up); errors are returned, not cached.
    pub fn warm_up(&self) -> Result<KeyInfo, XksError> {
        self.resolve(false).map(|r| r.info)
    }
}
