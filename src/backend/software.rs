//! The development software root. **Development only**: the root key is a file on disk
//! (mode 0600), so key material is only as safe as that file. Every key material version is
//! generated here, wrapped with AES-256-GCM under the root key (AAD = key id and version) for
//! the metadata store, and unwrapped into an in-memory AES key object cached per version.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use super::{BackendError, BackendResult, CryptoBackend, MaterialId, Sealed};
use crate::model::KeyId;
use hsm::iv::IvPool;

const TAG_LEN: usize = 16;
const WRAP_CONTEXT: &[u8] = b"kms-software-root-v1";

/// Software root backend.
pub struct SoftwareRoot {
    root: LessSafeKey,
    rng: SystemRandom,
    ivs: IvPool,
    cache: RwLock<HashMap<(KeyId, u32), Arc<LessSafeKey>>>,
}

/// Errors opening or creating the root key file.
#[derive(Debug, thiserror::Error)]
pub enum RootKeyError {
    #[error("root key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("root key file {path} must hold exactly 32 bytes")]
    BadLength { path: String },
}

fn wrap_aad(m: MaterialId<'_>) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAP_CONTEXT.len() + 41);
    aad.extend_from_slice(WRAP_CONTEXT);
    aad.extend_from_slice(m.key_id.as_str().as_bytes());
    aad.extend_from_slice(&m.version.to_be_bytes());
    aad
}

fn aes_key(bytes: &[u8]) -> BackendResult<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| BackendError::Internal("bad AES key length"))
}

impl SoftwareRoot {
    /// Opens the root key file, creating it (32 random bytes, mode 0600) when it is missing.
    /// Returns the backend and whether the file was created now.
    pub fn open_or_create(path: &Path) -> Result<(Self, bool), RootKeyError> {
        let io = |source| RootKeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut created = false;
        let bytes = match std::fs::read(path) {
            Ok(b) => Zeroizing::new(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut fresh = Zeroizing::new(vec![0u8; 32]);
                SystemRandom::new()
                    .fill(&mut fresh)
                    .map_err(|_| io(std::io::Error::other("no randomness")))?;
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut f = opts.open(path).map_err(io)?;
                f.write_all(&fresh).map_err(io)?;
                f.sync_all().map_err(io)?;
                created = true;
                fresh
            }
            Err(e) => return Err(io(e)),
        };
        if bytes.len() != 32 {
            return Err(RootKeyError::BadLength {
                path: path.display().to_string(),
            });
        }
        let root = aes_key(&bytes).map_err(|_| RootKeyError::BadLength {
            path: path.display().to_string(),
        })?;
        Ok((
            SoftwareRoot {
                root,
                rng: SystemRandom::new(),
                ivs: IvPool::new(),
                cache: RwLock::default(),
            },
            created,
        ))
    }

    /// A root held only in memory (tests).
    pub fn ephemeral() -> BackendResult<Self> {
        let rng = SystemRandom::new();
        let mut bytes = Zeroizing::new([0u8; 32]);
        rng.fill(bytes.as_mut())
            .map_err(|_| BackendError::Internal("the random number generator failed"))?;
        Ok(SoftwareRoot {
            root: aes_key(bytes.as_ref())?,
            rng,
            ivs: IvPool::new(),
            cache: RwLock::default(),
        })
    }

    fn iv(&self) -> BackendResult<[u8; 12]> {
        self.ivs
            .iv12()
            .map_err(|_| BackendError::Internal("the random number generator failed"))
    }

    fn unwrap_material(&self, m: MaterialId<'_>, wrapped: &[u8]) -> BackendResult<LessSafeKey> {
        if wrapped.len() != 12 + 32 + TAG_LEN {
            return Err(BackendError::Unwrap);
        }
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&wrapped[..12]);
        let mut buf = Zeroizing::new(wrapped[12..].to_vec());
        let plain = self
            .root
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(wrap_aad(m)),
                &mut buf,
            )
            .map_err(|_| BackendError::Unwrap)?;
        aes_key(plain)
    }

    fn cached(&self, m: MaterialId<'_>) -> BackendResult<Arc<LessSafeKey>> {
        self.cache
            .read()
            .get(&(m.key_id.clone(), m.version))
            .cloned()
            .ok_or(BackendError::MaterialNeeded)
    }

    fn seal(&self, m: MaterialId<'_>, plaintext: &[u8], aad: &[u8]) -> BackendResult<Sealed> {
        let key = self.cached(m)?;
        let iv = self.iv()?;
        let mut buf = Vec::with_capacity(plaintext.len() + TAG_LEN);
        buf.extend_from_slice(plaintext);
        let tag = key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(iv), Aad::from(aad), &mut buf)
            .map_err(|_| BackendError::Internal("sealing failed"))?;
        buf.extend_from_slice(tag.as_ref());
        Ok(Sealed {
            iv,
            ciphertext_and_tag: buf,
        })
    }

    fn open(
        &self,
        m: MaterialId<'_>,
        iv: &[u8; 12],
        ciphertext_and_tag: &[u8],
        aad: &[u8],
    ) -> BackendResult<Zeroizing<Vec<u8>>> {
        if ciphertext_and_tag.len() < TAG_LEN {
            return Err(BackendError::InvalidCiphertext);
        }
        let key = self.cached(m)?;
        let mut buf = Zeroizing::new(ciphertext_and_tag.to_vec());
        let n = key
            .open_in_place(Nonce::assume_unique_for_key(*iv), Aad::from(aad), &mut buf)
            .map_err(|_| BackendError::InvalidCiphertext)?
            .len();
        buf.truncate(n);
        Ok(buf)
    }

    fn wrap_new(&self, m: MaterialId<'_>) -> BackendResult<Vec<u8>> {
        let mut material = Zeroizing::new(vec![0u8; 32]);
        self.rng
            .fill(&mut material)
            .map_err(|_| BackendError::Internal("the random number generator failed"))?;
        let iv = self.iv()?;
        let mut out = Vec::with_capacity(12 + 32 + TAG_LEN);
        out.extend_from_slice(&iv);
        out.extend_from_slice(&material);
        let tag = self
            .root
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(iv),
                Aad::from(wrap_aad(m)),
                &mut out[12..],
            )
            .map_err(|_| BackendError::Internal("wrapping failed"))?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }
}

/// Everything here is memory-bound (AES-GCM on at most a few KiB): it runs inline on the
/// caller's async worker.
#[async_trait::async_trait]
impl CryptoBackend for SoftwareRoot {
    fn name(&self) -> &'static str {
        "software"
    }

    async fn generate_symmetric(&self, m: MaterialId<'_>) -> BackendResult<Vec<u8>> {
        self.wrap_new(m)
    }

    async fn load(&self, m: MaterialId<'_>, wrapped: &[u8]) -> BackendResult<()> {
        let key = Arc::new(self.unwrap_material(m, wrapped)?);
        self.cache
            .write()
            .insert((m.key_id.clone(), m.version), key);
        Ok(())
    }

    async fn encrypt(
        &self,
        m: MaterialId<'_>,
        plaintext: &[u8],
        aad: &[u8],
    ) -> BackendResult<Sealed> {
        self.seal(m, plaintext, aad)
    }

    async fn decrypt(
        &self,
        m: MaterialId<'_>,
        iv: &[u8; 12],
        ciphertext_and_tag: &[u8],
        aad: &[u8],
    ) -> BackendResult<Zeroizing<Vec<u8>>> {
        self.open(m, iv, ciphertext_and_tag, aad)
    }

    async fn random(&self, len: usize) -> BackendResult<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(vec![0u8; len]);
        self.rng
            .fill(&mut out)
            .map_err(|_| BackendError::Internal("the random number generator failed"))?;
        Ok(out)
    }

    fn forget(&self, key_id: &KeyId) {
        self.cache.write().retain(|(k, _), _| k != key_id);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wrap_round_trip_and_binding() {
        let root = SoftwareRoot::ephemeral().unwrap();
        let id = KeyId::generate();
        let m = MaterialId {
            key_id: &id,
            version: 1,
            label: "",
            spec: crate::model::KeySpec::SymmetricDefault,
        };
        let wrapped = root.generate_symmetric(m).await.unwrap();
        // Not loaded yet: the caller is asked for the wrapped material.
        assert!(matches!(
            root.encrypt(m, b"hello", b"aad").await,
            Err(BackendError::MaterialNeeded)
        ));
        root.load(m, &wrapped).await.unwrap();
        let sealed = root.encrypt(m, b"hello", b"aad").await.unwrap();
        let plain = root
            .decrypt(m, &sealed.iv, &sealed.ciphertext_and_tag, b"aad")
            .await
            .unwrap();
        assert_eq!(&plain[..], b"hello");
        assert!(matches!(
            root.decrypt(m, &sealed.iv, &sealed.ciphertext_and_tag, b"other")
                .await,
            Err(BackendError::InvalidCiphertext)
        ));
        // The wrapped material is bound to its key id and version.
        let other = KeyId::generate();
        let m2 = MaterialId {
            key_id: &other,
            version: 1,
            label: "",
            spec: crate::model::KeySpec::SymmetricDefault,
        };
        assert!(matches!(
            root.load(m2, &wrapped).await,
            Err(BackendError::Unwrap)
        ));
    }
}
