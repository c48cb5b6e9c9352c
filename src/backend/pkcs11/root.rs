//! The HSM-backed root of the default key store.
//!
//! - A *domain key* lives on the token: AES-256, token object, private, sensitive,
//!   non-extractable, usable only to wrap and unwrap. It is created on first start and found by
//!   label once; its handle is cached.
//! - Each key material version is generated in the HSM as an (extractable, sensitive) session
//!   object, wrapped with CKM_AES_KEY_WRAP_PAD under the domain key for the metadata store, and
//!   destroyed; the plaintext never leaves the HSM.
//! - For use, a version is unwrapped into the HSM as a non-extractable, sensitive session object
//!   of the anchor session; its handle is cached per (key id, version, connection generation).
//! - Encrypt/Decrypt are one C_EncryptInit/C_Encrypt (AES-256-GCM) on a pooled session, with a
//!   96-bit IV from the host's CSPRNG when the profile allows caller IVs.

use std::collections::HashMap;
use std::sync::Arc;

use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use hsm::error::{ErrorClass, Pkcs11Error};
use hsm::iv::IvPool;
use hsm::threads::BlockingPool;
use hsm::Token;
use parking_lot::RwLock;
use zeroize::Zeroizing;

use crate::backend::{BackendError, BackendResult, CryptoBackend, MaterialId, Sealed};
use crate::model::KeyId;

const TAG_BITS: u64 = 128;

/// The PKCS#11 root backend: the token state, and the HSM threads every PKCS#11 call of it
/// runs on.
pub struct Pkcs11Root {
    inner: Arc<Inner>,
    threads: Arc<BlockingPool>,
}

/// The token side; its methods block (they run on the HSM threads).
struct Inner {
    token: Arc<Token>,
    domain_label: String,
    domain: RwLock<(u64, ObjectHandle)>,
    keys: RwLock<HashMap<(KeyId, u32), (u64, ObjectHandle)>>,
    ivs: IvPool,
}

impl From<Pkcs11Error> for BackendError {
    fn from(e: Pkcs11Error) -> Self {
        match e.class() {
            ErrorClass::InvalidCiphertext => BackendError::InvalidCiphertext,
            ErrorClass::Unsupported => BackendError::Unsupported(e.to_string()),
            ErrorClass::Device | ErrorClass::TokenNotPresent => {
                BackendError::Unavailable { retryable: true }
            }
            _ => match e {
                Pkcs11Error::Busy => BackendError::Busy,
                other => BackendError::Pkcs11(other),
            },
        }
    }
}

fn domain_key_template(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Wrap(true),
        Attribute::Unwrap(true),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Derive(false),
        Attribute::ValueLen(32.into()),
        Attribute::Label(label.as_bytes().to_vec()),
    ]
}

impl Pkcs11Root {
    /// Connects the root to a token, creating the domain key if the token has none. Blocks
    /// (call it at start-up, before serving).
    pub fn open(
        token: Arc<Token>,
        domain_label: &str,
        threads: Arc<BlockingPool>,
    ) -> Result<Self, Pkcs11Error> {
        let handle = Inner::find_or_create_domain_key(&token, domain_label)?;
        Ok(Pkcs11Root {
            inner: Arc::new(Inner {
                domain: RwLock::new((token.generation(), handle)),
                token,
                domain_label: domain_label.to_string(),
                keys: RwLock::default(),
                ivs: IvPool::new(),
            }),
            threads,
        })
    }

    pub fn token(&self) -> &Arc<Token> {
        &self.inner.token
    }

    /// Runs `f` on the HSM threads.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> BackendResult<T> + Send + 'static,
    ) -> BackendResult<T> {
        let inner = self.inner.clone();
        self.threads
            .run(move || f(&inner))
            .await
            .map_err(|_| BackendError::ThreadsGone)?
    }
}

impl Inner {
    fn find_or_create_domain_key(token: &Token, label: &str) -> Result<ObjectHandle, Pkcs11Error> {
        let found = token.find(ObjectClass::SECRET_KEY, label)?;
        if let Some(h) = found.first() {
            return Ok(*h);
        }
        tracing::info!(label, "creating the HSM domain key");
        let template = domain_key_template(label);
        token.with_object_write(|s| s.generate_key(&Mechanism::AesKeyGen, &template))
    }

    fn domain_key(&self) -> BackendResult<ObjectHandle> {
        let gen = self.token.generation();
        {
            let d = self.domain.read();
            if d.0 == gen {
                return Ok(d.1);
            }
        }
        let h = Self::find_or_create_domain_key(&self.token, &self.domain_label)?;
        *self.domain.write() = (gen, h);
        Ok(h)
    }

    /// The cached object of a material version, if it is of the token's current connection.
    fn cached(&self, key_id: &KeyId, version: u32) -> BackendResult<ObjectHandle> {
        let gen = self.token.generation();
        match self.keys.read().get(&(key_id.clone(), version)) {
            Some((g, h)) if *g == gen => Ok(*h),
            _ => Err(BackendError::MaterialNeeded),
        }
    }

    /// Unwraps a material version into the anchor session (so that the object outlives pooled
    /// sessions) as a sensitive, non-extractable session object, and caches its handle.
    fn load(&self, key_id: KeyId, version: u32, wrapped: &[u8]) -> BackendResult<()> {
        let gen = self.token.generation();
        let domain = self.domain_key()?;
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Private(self.token.profile().private_session_keys),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
        ];
        let h = self
            .token
            .with_anchor(|s| s.unwrap_key(&Mechanism::AesKeyWrapPad, domain, wrapped, &template))
            .map_err(|e| match e.class() {
                ErrorClass::Invalid | ErrorClass::InvalidCiphertext => BackendError::Unwrap,
                _ => BackendError::from(e),
            })?;
        self.keys.write().insert((key_id, version), (gen, h));
        Ok(())
    }

    /// Runs a crypto call on a cached handle; a stale one is dropped from the cache and
    /// reported as [`BackendError::MaterialNeeded`] (the caller loads it again).
    fn with_key<T>(
        &self,
        key_id: &KeyId,
        version: u32,
        f: impl FnOnce(ObjectHandle) -> Result<T, Pkcs11Error>,
    ) -> BackendResult<T> {
        let h = self.cached(key_id, version)?;
        match f(h) {
            Err(e) if e.class() == ErrorClass::StaleHandle => {
                self.keys.write().remove(&(key_id.clone(), version));
                Err(BackendError::MaterialNeeded)
            }
            other => Ok(other?),
        }
    }

    fn seal(&self, h: ObjectHandle, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, Pkcs11Error> {
        let iv = self
            .ivs
            .iv12()
            .map_err(|e| Pkcs11Error::Other(e.to_string()))?;
        let ciphertext_and_tag = self.token.with_session(false, |s| {
            let mut iv_buf = iv;
            let params = GcmParams::new(&mut iv_buf, aad, TAG_BITS.into())?;
            s.encrypt(&Mechanism::AesGcm(params), h, plaintext)
        })?;
        Ok(Sealed {
            iv,
            ciphertext_and_tag,
        })
    }

    fn open(
        &self,
        h: ObjectHandle,
        iv: &[u8; 12],
        ciphertext_and_tag: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, Pkcs11Error> {
        self.token.with_session(true, |s| {
            let mut iv_buf = *iv;
            let params = GcmParams::new(&mut iv_buf, aad, TAG_BITS.into())?;
            s.decrypt(&Mechanism::AesGcm(params), h, ciphertext_and_tag)
        })
    }

    fn generate(&self) -> BackendResult<Vec<u8>> {
        let domain = self.domain_key()?;
        let template = [
            Attribute::Token(false),
            Attribute::Sensitive(true),
            Attribute::Extractable(true),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::ValueLen(32.into()),
        ];
        let wrapped = self.token.with_session(false, |s| {
            let k = s.generate_key(&Mechanism::AesKeyGen, &template)?;
            let wrapped = s.wrap_key(&Mechanism::AesKeyWrapPad, domain, k);
            let destroyed = s.destroy_object(k);
            let wrapped = wrapped?;
            destroyed?;
            Ok(wrapped)
        })?;
        Ok(wrapped)
    }
}

#[async_trait::async_trait]
impl CryptoBackend for Pkcs11Root {
    fn name(&self) -> &'static str {
        "pkcs11"
    }

    async fn generate_symmetric(&self, _m: MaterialId<'_>) -> BackendResult<Vec<u8>> {
        self.run(|inner| inner.generate()).await
    }

    async fn load(&self, m: MaterialId<'_>, wrapped: &[u8]) -> BackendResult<()> {
        let (key_id, version, wrapped) = (m.key_id.clone(), m.version, wrapped.to_vec());
        self.run(move |inner| inner.load(key_id, version, &wrapped))
            .await
    }

    async fn encrypt(
        &self,
        m: MaterialId<'_>,
        plaintext: &[u8],
        aad: &[u8],
    ) -> BackendResult<Sealed> {
        // Not loaded: the caller fetches the wrapped material without a trip to the threads.
        self.inner.cached(m.key_id, m.version)?;
        let (key_id, version) = (m.key_id.clone(), m.version);
        let (plaintext, aad) = (Zeroizing::new(plaintext.to_vec()), aad.to_vec());
        self.run(move |inner| inner.with_key(&key_id, version, |h| inner.seal(h, &plaintext, &aad)))
            .await
    }

    async fn decrypt(
        &self,
        m: MaterialId<'_>,
        iv: &[u8; 12],
        ciphertext_and_tag: &[u8],
        aad: &[u8],
    ) -> BackendResult<Zeroizing<Vec<u8>>> {
        if ciphertext_and_tag.len() < 16 {
            return Err(BackendError::InvalidCiphertext);
        }
        self.inner.cached(m.key_id, m.version)?;
        let (key_id, version, iv) = (m.key_id.clone(), m.version, *iv);
        let (ciphertext_and_tag, aad) = (ciphertext_and_tag.to_vec(), aad.to_vec());
        self.run(move |inner| {
            inner
                .with_key(&key_id, version, |h| {
                    inner.open(h, &iv, &ciphertext_and_tag, &aad)
                })
                .map(Zeroizing::new)
        })
        .await
    }

    async fn random(&self, len: usize) -> BackendResult<Zeroizing<Vec<u8>>> {
        self.run(move |inner| {
            let mut out = Zeroizing::new(vec![0u8; len]);
            inner
                .token
                .with_session(false, |s| s.generate_random_slice(&mut out))?;
            Ok(out)
        })
        .await
    }

    fn forget(&self, key_id: &KeyId) {
        let gen = self.inner.token.generation();
        let stale: Vec<ObjectHandle> = {
            let mut keys = self.inner.keys.write();
            let handles = keys
                .iter()
                .filter(|((k, _), (g, _))| k == key_id && *g == gen)
                .map(|(_, (_, h))| *h)
                .collect();
            keys.retain(|(k, _), _| k != key_id);
            handles
        };
        if stale.is_empty() {
            return;
        }
        // Destroying the session objects is a PKCS#11 call: on the HSM threads, not awaited.
        let inner = self.inner.clone();
        drop(self.threads.run(move || {
            for h in stale {
                let _ = inner.token.with_anchor(|s| s.destroy_object(h));
            }
        }));
    }
}
