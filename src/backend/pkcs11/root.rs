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
use std::sync::{Arc, RwLock};

use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use zeroize::Zeroizing;

use hsm::error::{ErrorClass, Pkcs11Error};
use hsm::Token;
use hsm::iv::IvPool;
use crate::backend::{BackendError, BackendResult, CryptoBackend, LoadWrapped, MaterialId, Sealed};
use crate::model::KeyId;

const TAG_BITS: u64 = 128;

/// The PKCS#11 root backend.
pub struct Pkcs11Root {
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
            _ => match e {
                Pkcs11Error::Busy => BackendError::Busy,
                Pkcs11Error::TokenNotFound { .. } => BackendError::Unavailable { retryable: true },
                other if other.class() == ErrorClass::Device => {
                    BackendError::Unavailable { retryable: true }
                }
                other => BackendError::Internal(other.to_string()),
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
    /// Connects the root to a token, creating the domain key if the token has none.
    pub fn open(token: Arc<Token>, domain_label: &str) -> Result<Self, Pkcs11Error> {
        let handle = Self::find_or_create_domain_key(&token, domain_label)?;
        Ok(Pkcs11Root {
            domain: RwLock::new((token.generation(), handle)),
            token,
            domain_label: domain_label.to_string(),
            keys: RwLock::default(),
            ivs: IvPool::new(),
        })
    }

    fn find_or_create_domain_key(token: &Token, label: &str) -> Result<ObjectHandle, Pkcs11Error> {
        let found = token.find(ObjectClass::SECRET_KEY, label)?;
        if let Some(h) = found.first() {
            return Ok(*h);
        }
        tracing::info!(label, "creating the HSM domain key");
        let template = domain_key_template(label);
        token.with_object_write(|s| s.generate_key(&Mechanism::AesKeyGen, &template))
    }

    pub fn token(&self) -> &Arc<Token> {
        &self.token
    }

    fn domain_key(&self) -> BackendResult<ObjectHandle> {
        let gen = self.token.generation();
        {
            let d = self.domain.read().unwrap_or_else(|p| p.into_inner());
            if d.0 == gen {
                return Ok(d.1);
            }
        }
        let h = Self::find_or_create_domain_key(&self.token, &self.domain_label)?;
        *self.domain.write().unwrap_or_else(|p| p.into_inner()) = (gen, h);
        Ok(h)
    }

    fn key_handle(&self, m: MaterialId<'_>, load: LoadWrapped<'_>) -> BackendResult<ObjectHandle> {
        let gen = self.token.generation();
        let cache_key = (m.key_id.clone(), m.version);
        if let Some((g, h)) = self
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&cache_key)
        {
            if *g == gen {
                return Ok(*h);
            }
        }
        let wrapped = load()?;
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
        // Unwrapped into the anchor session so that the object outlives pooled sessions.
        let h = self
            .token
            .with_anchor(|s| s.unwrap_key(&Mechanism::AesKeyWrapPad, domain, &wrapped, &template))
            .map_err(|e| match e.class() {
                ErrorClass::Invalid | ErrorClass::InvalidCiphertext => BackendError::Unwrap,
                _ => BackendError::from(e),
            })?;
        self.keys
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(cache_key, (gen, h));
        Ok(h)
    }

    /// Runs a crypto call with the key's handle; a stale handle is reloaded once.
    fn with_key<T>(
        &self,
        m: MaterialId<'_>,
        load: LoadWrapped<'_>,
        f: impl Fn(ObjectHandle) -> Result<T, Pkcs11Error>,
    ) -> BackendResult<T> {
        let h = self.key_handle(m, load)?;
        match f(h) {
            Err(e) if e.class() == ErrorClass::StaleHandle => {
                self.keys
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&(m.key_id.clone(), m.version));
                let h = self.key_handle(m, load)?;
                Ok(f(h)?)
            }
            other => Ok(other?),
        }
    }
}

impl CryptoBackend for Pkcs11Root {
    fn name(&self) -> &'static str {
        "pkcs11"
    }

    fn blocking(&self) -> bool {
        true
    }

    fn generate_symmetric(&self, _m: MaterialId<'_>) -> BackendResult<Vec<u8>> {
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

    fn encrypt(
        &self,
        m: MaterialId<'_>,
        load: LoadWrapped<'_>,
        plaintext: &[u8],
        aad: &[u8],
    ) -> BackendResult<Sealed> {
        let iv = self
            .ivs
            .iv12()
            .map_err(|e| BackendError::Internal(e.to_string()))?;
        let ciphertext_and_tag = self.with_key(m, load, |h| {
            self.token.with_session(false, |s| {
                let mut iv_buf = iv;
                let params = GcmParams::new(&mut iv_buf, aad, TAG_BITS.into())?;
                s.encrypt(&Mechanism::AesGcm(params), h, plaintext)
            })
        })?;
        Ok(Sealed {
            iv,
            ciphertext_and_tag,
        })
    }

    fn decrypt(
        &self,
        m: MaterialId<'_>,
        load: LoadWrapped<'_>,
        iv: &[u8; 12],
        ciphertext_and_tag: &[u8],
        aad: &[u8],
    ) -> BackendResult<Zeroizing<Vec<u8>>> {
        if ciphertext_and_tag.len() < 16 {
            return Err(BackendError::InvalidCiphertext);
        }
        let plain = self.with_key(m, load, |h| {
            self.token.with_session(true, |s| {
                let mut iv_buf = *iv;
                let params = GcmParams::new(&mut iv_buf, aad, TAG_BITS.into())?;
                s.decrypt(&Mechanism::AesGcm(params), h, ciphertext_and_tag)
            })
        })?;
        Ok(Zeroizing::new(plain))
    }

    fn random(&self, len: usize) -> BackendResult<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(vec![0u8; len]);
        self.token
            .with_session(false, |s| s.generate_random_slice(&mut out))?;
        Ok(out)
    }

    fn forget(&self, key_id: &KeyId) {
        let gen = self.token.generation();
        let stale: Vec<ObjectHandle> = {
            let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
            let handles = keys
                .iter()
                .filter(|((k, _), (g, _))| k == key_id && *g == gen)
                .map(|(_, (_, h))| *h)
                .collect();
            keys.retain(|(k, _), _| k != key_id);
            handles
        };
        for h in stale {
            let _ = self.token.with_anchor(|s| s.destroy_object(h));
        }
    }
}
