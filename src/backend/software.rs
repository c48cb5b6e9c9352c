//! The development software root. **Development only**: the root key is a file on disk
//! (mode 0600), so key material is only as safe as that file. Every key material version is
//! generated here, wrapped with AES-256-GCM under the root key for the metadata store, and
//! unwrapped into an in-memory key object cached per (key id, version) in a bounded LRU map
//! (`[server] key_cache_entries`; an evicted version is loaded again on its next use, and a
//! request using it keeps its own reference until it ends):
//!
//! * `SYMMETRIC_DEFAULT`: 32 random bytes -> an AES-256-GCM key (AAD = context, key id, version;
//!   unchanged since the first release so stored blobs stay readable);
//! * `HMAC_*`: a random secret of the spec's size (28/32/48/64 bytes) -> an HMAC key;
//! * RSA, ECC, Ed25519, ML-DSA: the DER PKCS#8 private key from `crate::crypto` -> a parsed
//!   [`crate::crypto::PrivateKey`] (so requests never re-parse PKCS#8).
//!
//! For every spec but `SYMMETRIC_DEFAULT` the AAD also carries the spec, so a blob cannot be
//! moved to a key of another spec. RSA key generation, RSA key loading and RSA private-key
//! operations run on the blocking pool; everything else is short and runs inline.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use hashlink::LruCache;
use parking_lot::Mutex;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use super::{
    BackendError, BackendResult, CryptoBackend, Generated, ImportWrapping, Imported, MaterialId,
    Sealed, SignInput, WrappingKeyPair,
};
use crate::crypto::{self, CryptoError, HmacKey, PrivateKey};
use crate::model::{
    EncryptionAlgorithm, HashAlg, KeyFamily, KeyId, KeySpec, KeyUsage, MacAlgorithm,
    SigningAlgorithm, WrappingAlgorithm, WrappingKeySpec,
};
use hsm::iv::IvPool;

const TAG_LEN: usize = 16;
const WRAP_CONTEXT: &[u8] = b"kms-software-root-v1";
/// The id wrapping key pairs' private keys are wrapped under (never a customer key id:
/// those are random UUIDv4s).
const WRAPPING_KEY_ID: &str = "00000000-0000-0000-0000-000000000002";

/// Software root backend.
pub struct SoftwareRoot {
    root: LessSafeKey,
    rng: SystemRandom,
    ivs: IvPool,
    cache: Mutex<LruCache<(KeyId, u32), Arc<Material>>>,
}

fn material_cache(entries: usize) -> Mutex<LruCache<(KeyId, u32), Arc<Material>>> {
    Mutex::new(LruCache::new(entries.max(1)))
}

/// An unwrapped, parsed material version (one per cached version, behind an `Arc`, so the
/// variants' size difference costs nothing worth a box).
#[allow(clippy::large_enum_variant)]
enum Material {
    Aes(LessSafeKey),
    Hmac(HmacKey),
    Private(PrivateKey),
}

impl Material {
    fn aes(&self) -> BackendResult<&LessSafeKey> {
        match self {
            Material::Aes(k) => Ok(k),
            _ => Err(BackendError::Unsupported(
                "this key is not a symmetric encryption key".into(),
            )),
        }
    }

    fn private(&self) -> BackendResult<&PrivateKey> {
        match self {
            Material::Private(k) => Ok(k),
            _ => Err(BackendError::Unsupported(
                "this key has no private key".into(),
            )),
        }
    }
}

/// The HMAC algorithm and secret size of an HMAC spec.
fn hmac_params(spec: KeySpec) -> Option<(MacAlgorithm, usize)> {
    let alg = *spec.algorithms(KeyUsage::GenerateVerifyMac).mac.first()?;
    Some((alg, alg.hash().output_len()))
}

fn crypto_error(e: CryptoError) -> BackendError {
    match e {
        CryptoError::InvalidPrivateKey => BackendError::Unwrap,
        CryptoError::Decrypt => BackendError::InvalidCiphertext,
        CryptoError::Unsupported(s) => BackendError::Unsupported(s),
        CryptoError::InvalidPublicKey => BackendError::Internal("public key rejected"),
        CryptoError::Internal(s) => BackendError::Internal(s),
    }
}

/// Runs CPU-heavy work (RSA) on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> BackendResult<T> + Send + 'static,
) -> BackendResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| BackendError::Internal("a blocking task failed"))?
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
    /// Group or others may read or write the file.
    #[error(
        "root key file {path} has mode {mode:o}: group and others must have no access (chmod 600)"
    )]
    TooOpen { path: String, mode: u32 },
}

fn wrap_aad(m: MaterialId<'_>) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAP_CONTEXT.len() + 64);
    aad.extend_from_slice(WRAP_CONTEXT);
    // The public id: related multi-Region keys share their wrapped material.
    aad.extend_from_slice(m.key_id.public().as_bytes());
    aad.extend_from_slice(&m.version.to_be_bytes());
    // Symmetric blobs keep the original AAD (stored material stays readable); every other
    // spec binds its name too.
    if m.spec != KeySpec::SymmetricDefault {
        aad.push(b'/');
        aad.extend_from_slice(m.spec.as_str().as_bytes());
    }
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
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(RootKeyError::TooOpen {
                    path: path.display().to_string(),
                    mode,
                });
            }
        }
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
                cache: material_cache(crate::config::DEFAULT_KEY_CACHE_ENTRIES),
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
            cache: material_cache(crate::config::DEFAULT_KEY_CACHE_ENTRIES),
        })
    }

    /// Keeps at most `entries` unwrapped material versions (least recently used evicted).
    pub fn with_cache_entries(mut self, entries: usize) -> Self {
        self.cache = material_cache(entries);
        self
    }

    /// Material versions held now.
    pub fn cache_len(&self) -> usize {
        self.cache.lock().len()
    }

    fn iv(&self) -> BackendResult<[u8; 12]> {
        self.ivs
            .iv12()
            .map_err(|_| BackendError::Internal("the random number generator failed"))
    }

    /// Opens a wrapped blob (`iv || ciphertext || tag`) under the root.
    fn unwrap_bytes(&self, m: MaterialId<'_>, wrapped: &[u8]) -> BackendResult<Zeroizing<Vec<u8>>> {
        if wrapped.len() < 12 + TAG_LEN {
            return Err(BackendError::Unwrap);
        }
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&wrapped[..12]);
        let mut buf = Zeroizing::new(wrapped[12..].to_vec());
        let n = self
            .root
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(wrap_aad(m)),
                &mut buf,
            )
            .map_err(|_| BackendError::Unwrap)?
            .len();
        buf.truncate(n);
        Ok(buf)
    }

    /// Unwraps and parses a material version of any spec.
    async fn unwrap_material(&self, m: MaterialId<'_>, wrapped: &[u8]) -> BackendResult<Material> {
        match m.spec.family() {
            KeyFamily::Symmetric => {
                if wrapped.len() != 12 + 32 + TAG_LEN {
                    return Err(BackendError::Unwrap);
                }
                Ok(Material::Aes(aes_key(&self.unwrap_bytes(m, wrapped)?)?))
            }
            KeyFamily::Hmac => {
                let (alg, len) = hmac_params(m.spec).ok_or(BackendError::Unwrap)?;
                let secret = self.unwrap_bytes(m, wrapped)?;
                if secret.len() != len {
                    return Err(BackendError::Unwrap);
                }
                Ok(Material::Hmac(HmacKey::new(alg, &secret)))
            }
            KeyFamily::Rsa => {
                let pkcs8 = self.unwrap_bytes(m, wrapped)?;
                let spec = m.spec;
                // RSA key checks cost milliseconds: the blocking pool.
                let key =
                    blocking(move || PrivateKey::from_pkcs8(spec, &pkcs8).map_err(crypto_error))
                        .await?;
                Ok(Material::Private(key))
            }
            KeyFamily::Ecc | KeyFamily::Ed25519 | KeyFamily::MlDsa => {
                let pkcs8 = self.unwrap_bytes(m, wrapped)?;
                let key = PrivateKey::from_pkcs8(m.spec, &pkcs8).map_err(crypto_error)?;
                Ok(Material::Private(key))
            }
            KeyFamily::Sm2 => Err(unsupported_spec(m.spec)),
        }
    }

    fn cached(&self, m: MaterialId<'_>) -> BackendResult<Arc<Material>> {
        self.cache
            .lock()
            .get(&(m.key_id.clone(), m.version))
            .cloned()
            .ok_or(BackendError::MaterialNeeded)
    }

    fn seal(&self, m: MaterialId<'_>, plaintext: &[u8], aad: &[u8]) -> BackendResult<Sealed> {
        let material = self.cached(m)?;
        let key = material.aes()?;
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
        let material = self.cached(m)?;
        let key = material.aes()?;
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
        self.wrap_bytes(m, &material)
    }

    /// Wraps plaintext material under the root: `iv || ciphertext || tag`.
    fn wrap_bytes(&self, m: MaterialId<'_>, material: &[u8]) -> BackendResult<Vec<u8>> {
        let iv = self.iv()?;
        let mut out = Vec::with_capacity(12 + material.len() + TAG_LEN);
        out.extend_from_slice(&iv);
        out.extend_from_slice(material);
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

/// Unwraps `encrypted` with the wrapping private key (`reference/import-and-multi-region.md`
/// §2.1): RSAES-OAEP alone, or RSA-OAEP of an ephemeral AES key followed by AES-KWP.
fn unwrap_import(
    wrapping_key: &PrivateKey,
    modulus_len: usize,
    algorithm: WrappingAlgorithm,
    encrypted: &[u8],
) -> BackendResult<Zeroizing<Vec<u8>>> {
    let oaep = match algorithm.oaep_hash() {
        Some(HashAlg::Sha1) => EncryptionAlgorithm::RsaesOaepSha1,
        Some(HashAlg::Sha256) => EncryptionAlgorithm::RsaesOaepSha256,
        _ => return Err(BackendError::Internal("not an RSA wrapping algorithm")),
    };
    if !algorithm.is_hybrid() {
        if encrypted.len() != modulus_len {
            return Err(BackendError::InvalidCiphertext);
        }
        return wrapping_key
            .rsa_oaep_decrypt(oaep, encrypted)
            .map_err(|_| BackendError::InvalidCiphertext);
    }
    if encrypted.len() <= modulus_len {
        return Err(BackendError::InvalidCiphertext);
    }
    let (w1, w2) = encrypted.split_at(modulus_len);
    let aes = wrapping_key
        .rsa_oaep_decrypt(oaep, w1)
        .map_err(|_| BackendError::InvalidCiphertext)?;
    kwp_unwrap(&aes, w2)
}

/// RFC 5649 AES key wrap with padding, unwrap side (AES-128 or AES-256 key-encryption key).
fn kwp_unwrap(kek: &[u8], wrapped: &[u8]) -> BackendResult<Zeroizing<Vec<u8>>> {
    use aws_lc_rs::key_wrap::{KeyEncryptionKey, KeyWrapPadded, AES_128, AES_256};
    let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
    let n = match kek.len() {
        16 => KeyEncryptionKey::new(&AES_128, kek)
            .map_err(|_| BackendError::InvalidCiphertext)?
            .unwrap_with_padding(wrapped, &mut out)
            .map_err(|_| BackendError::InvalidCiphertext)?
            .len(),
        32 => KeyEncryptionKey::new(&AES_256, kek)
            .map_err(|_| BackendError::InvalidCiphertext)?
            .unwrap_with_padding(wrapped, &mut out)
            .map_err(|_| BackendError::InvalidCiphertext)?
            .len(),
        _ => return Err(BackendError::InvalidCiphertext),
    };
    out.truncate(n);
    Ok(out)
}

/// The fingerprint of AES material: AES-256-ECB of one zero block (a key check value; the
/// PKCS#11 root computes the same with CKM_AES_ECB in the token).
pub(crate) fn aes_fingerprint(key: &[u8]) -> BackendResult<Vec<u8>> {
    use aws_lc_rs::cipher::{EncryptingKey, UnboundCipherKey, AES_256};
    let key = UnboundCipherKey::new(&AES_256, key)
        .and_then(EncryptingKey::ecb)
        .map_err(|_| BackendError::Internal("AES-ECB key setup failed"))?;
    let mut block = [0u8; 16];
    key.encrypt(&mut block)
        .map_err(|_| BackendError::Internal("AES-ECB failed"))?;
    Ok(block.to_vec())
}

/// A signing input owned by a blocking task.
enum OwnedInput {
    Digest(Vec<u8>),
    Message(Vec<u8>),
    Mu(Vec<u8>),
}

impl OwnedInput {
    fn borrow(&self) -> SignInput<'_> {
        match self {
            OwnedInput::Digest(d) => SignInput::Digest(d),
            OwnedInput::Message(b) => SignInput::Message(b),
            OwnedInput::Mu(b) => SignInput::Mu(b),
        }
    }
}

fn unsupported_spec(spec: KeySpec) -> BackendError {
    BackendError::Unsupported(format!(
        "KeySpec {spec} is not supported by this key store."
    ))
}

/// AES-GCM, HMAC, ECDSA, ECDH, Ed25519 and ML-DSA are short and run inline on the caller's
/// async worker; RSA private-key work and RSA generation run on the blocking pool.
#[async_trait::async_trait]
impl CryptoBackend for SoftwareRoot {
    fn name(&self) -> &'static str {
        "software"
    }

    async fn generate_symmetric(&self, m: MaterialId<'_>) -> BackendResult<Vec<u8>> {
        self.wrap_new(m)
    }

    async fn load(&self, m: MaterialId<'_>, wrapped: &[u8]) -> BackendResult<()> {
        let key = Arc::new(self.unwrap_material(m, wrapped).await?);
        self.cache.lock().insert((m.key_id.clone(), m.version), key);
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

    async fn generate(&self, m: MaterialId<'_>) -> BackendResult<Generated> {
        match m.spec.family() {
            KeyFamily::Symmetric => Ok(Generated {
                wrapped: self.wrap_new(m)?,
                public_key: None,
            }),
            KeyFamily::Hmac => {
                let (_, len) = hmac_params(m.spec).ok_or_else(|| unsupported_spec(m.spec))?;
                let mut secret = Zeroizing::new(vec![0u8; len]);
                self.rng
                    .fill(&mut secret)
                    .map_err(|_| BackendError::Internal("the random number generator failed"))?;
                Ok(Generated {
                    wrapped: self.wrap_bytes(m, &secret)?,
                    public_key: None,
                })
            }
            KeyFamily::Rsa | KeyFamily::Ecc | KeyFamily::Ed25519 | KeyFamily::MlDsa => {
                let spec = m.spec;
                // RSA generation takes up to seconds; the others are quick but share the path.
                let pair = if spec.family() == KeyFamily::Rsa {
                    blocking(move || crypto::generate_key_pair(spec).map_err(crypto_error)).await?
                } else {
                    crypto::generate_key_pair(spec).map_err(crypto_error)?
                };
                Ok(Generated {
                    wrapped: self.wrap_bytes(m, &pair.private_pkcs8)?,
                    public_key: Some(pair.public_spki),
                })
            }
            KeyFamily::Sm2 => Err(unsupported_spec(m.spec)),
        }
    }

    async fn sign(
        &self,
        m: MaterialId<'_>,
        algorithm: SigningAlgorithm,
        input: SignInput<'_>,
    ) -> BackendResult<Vec<u8>> {
        let material = self.cached(m)?;
        if m.spec.family() != KeyFamily::Rsa {
            return material
                .private()?
                .sign(algorithm, input)
                .map_err(crypto_error);
        }
        // RSA private-key operations cost around a millisecond (more for 3072/4096 bits).
        let owned = match input {
            SignInput::Digest(d) => OwnedInput::Digest(d.to_vec()),
            SignInput::Message(b) => OwnedInput::Message(b.to_vec()),
            SignInput::Mu(b) => OwnedInput::Mu(b.to_vec()),
        };
        blocking(move || {
            material
                .private()?
                .sign(algorithm, owned.borrow())
                .map_err(crypto_error)
        })
        .await
    }

    async fn decrypt_asymmetric(
        &self,
        m: MaterialId<'_>,
        algorithm: EncryptionAlgorithm,
        ciphertext: &[u8],
    ) -> BackendResult<Zeroizing<Vec<u8>>> {
        let material = self.cached(m)?;
        let ciphertext = ciphertext.to_vec();
        blocking(move || {
            material
                .private()?
                .rsa_oaep_decrypt(algorithm, &ciphertext)
                .map_err(crypto_error)
        })
        .await
    }

    async fn mac(
        &self,
        m: MaterialId<'_>,
        algorithm: MacAlgorithm,
        message: &[u8],
    ) -> BackendResult<Vec<u8>> {
        let material = self.cached(m)?;
        match &*material {
            Material::Hmac(k) if k.algorithm() == algorithm => Ok(k.sign(message)),
            Material::Hmac(_) => Err(BackendError::Unsupported(format!(
                "{algorithm} is not the algorithm of this key"
            ))),
            _ => Err(BackendError::Unsupported(
                "this key is not an HMAC key".into(),
            )),
        }
    }

    async fn derive_shared_secret(
        &self,
        m: MaterialId<'_>,
        peer_point: &[u8],
    ) -> BackendResult<Zeroizing<Vec<u8>>> {
        let material = self.cached(m)?;
        material.private()?.ecdh(peer_point).map_err(crypto_error)
    }

    fn import_support(&self, spec: KeySpec, algorithm: WrappingAlgorithm) -> Result<(), String> {
        match (spec.family(), algorithm.oaep_hash()) {
            (KeyFamily::Symmetric | KeyFamily::Hmac | KeyFamily::Rsa | KeyFamily::Ecc, Some(_)) => {
                Ok(())
            }
            _ => Err(format!(
                "this key store cannot import {spec} key material wrapped with {algorithm}"
            )),
        }
    }

    async fn create_wrapping_key(&self, spec: WrappingKeySpec) -> BackendResult<WrappingKeyPair> {
        let key_spec = spec.key_spec().ok_or_else(|| {
            BackendError::Unsupported(format!(
                "WrappingKeySpec {spec} is not supported by this key store."
            ))
        })?;
        let pair =
            blocking(move || crypto::generate_key_pair(key_spec).map_err(crypto_error)).await?;
        // Wrapped under the root like material (the import token carries it; its AAD names a
        // fixed wrapping-key id so it can never pass for a key's material).
        let id = KeyId::parse(WRAPPING_KEY_ID).ok_or(BackendError::Internal("wrapping key id"))?;
        let wrapped_private = self.wrap_bytes(
            MaterialId {
                key_id: &id,
                version: 0,
                label: "",
                spec: key_spec,
            },
            &pair.private_pkcs8,
        )?;
        Ok(WrappingKeyPair {
            public_spki: pair.public_spki,
            wrapped_private,
        })
    }

    async fn import_material(
        &self,
        m: MaterialId<'_>,
        wrapping: ImportWrapping<'_>,
        encrypted: &[u8],
    ) -> BackendResult<Imported> {
        let (Some(wrapping_spec), Some(k)) =
            (wrapping.spec.key_spec(), wrapping.spec.modulus_len())
        else {
            return Err(BackendError::Internal("not an RSA wrapping key spec"));
        };
        let id = KeyId::parse(WRAPPING_KEY_ID).ok_or(BackendError::Internal("wrapping key id"))?;
        let private = self.unwrap_bytes(
            MaterialId {
                key_id: &id,
                version: 0,
                label: "",
                spec: wrapping_spec,
            },
            wrapping.wrapped_private,
        )?;
        let (algorithm, encrypted) = (wrapping.algorithm, encrypted.to_vec());
        let material = blocking(move || {
            let key = PrivateKey::from_pkcs8(wrapping_spec, &private).map_err(crypto_error)?;
            unwrap_import(&key, k, algorithm, &encrypted)
        })
        .await?;
        let spec = m.spec;
        let incorrect = |what: &str| BackendError::IncorrectKeyMaterial(what.to_string());
        let (fingerprint, public_key) = match spec.family() {
            KeyFamily::Symmetric => {
                if material.len() != 32 {
                    return Err(incorrect(
                        "Symmetric key material must be exactly 32 bytes (256 bits).",
                    ));
                }
                (aes_fingerprint(&material)?, None)
            }
            KeyFamily::Hmac => {
                let (alg, len) = hmac_params(spec).ok_or_else(|| unsupported_spec(spec))?;
                if material.len() != len {
                    return Err(BackendError::IncorrectKeyMaterial(format!(
                        "{spec} key material must be exactly {len} bytes."
                    )));
                }
                (
                    crypto::hmac(alg, &material, super::HMAC_FINGERPRINT_LABEL),
                    None,
                )
            }
            KeyFamily::Rsa | KeyFamily::Ecc => {
                let pkcs8 = material.clone();
                let key = blocking(move || {
                    PrivateKey::from_pkcs8(spec, &pkcs8).map_err(|_| {
                        BackendError::IncorrectKeyMaterial(format!(
                            "The key material is not a PKCS#8 private key of key spec {spec}."
                        ))
                    })
                })
                .await?;
                let spki = key.public_spki().map_err(crypto_error)?;
                (crate::crypto::hash(HashAlg::Sha256, &spki), Some(spki))
            }
            _ => return Err(unsupported_spec(spec)),
        };
        Ok(Imported {
            wrapped: self.wrap_bytes(m, &material)?,
            public_key,
            fingerprint,
        })
    }

    async fn random(&self, len: usize) -> BackendResult<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(vec![0u8; len]);
        self.rng
            .fill(&mut out)
            .map_err(|_| BackendError::Internal("the random number generator failed"))?;
        Ok(out)
    }

    fn cached_versions(&self) -> Option<usize> {
        Some(self.cache_len())
    }

    fn forget(&self, key_id: &KeyId) {
        self.cache.lock().retain(|(k, _), _| k != key_id);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {

    #[test]
    fn a_root_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.key");
        let (_, created) = SoftwareRoot::open_or_create(&path).unwrap();
        assert!(created);
        assert!(SoftwareRoot::open_or_create(&path).is_ok());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        match SoftwareRoot::open_or_create(&path) {
            Err(e @ RootKeyError::TooOpen { mode: 0o644, .. }) => {
                assert!(e.to_string().contains("chmod 600"), "{e}")
            }
            other => panic!("{:?}", other.map(|(_, c)| c)),
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(SoftwareRoot::open_or_create(&path).is_err());
    }

    use super::*;
    use crate::model::HashAlg;

    fn mid(id: &KeyId, spec: KeySpec) -> MaterialId<'_> {
        MaterialId {
            key_id: id,
            version: 1,
            label: "",
            spec,
        }
    }

    /// Generates and loads a key of `spec`; returns its id and public key.
    async fn make(root: &SoftwareRoot, spec: KeySpec) -> (KeyId, Option<Vec<u8>>, Vec<u8>) {
        let id = KeyId::generate();
        let g = root.generate(mid(&id, spec)).await.unwrap();
        root.load(mid(&id, spec), &g.wrapped).await.unwrap();
        (id, g.public_key, g.wrapped)
    }

    #[tokio::test]
    async fn asymmetric_generate_load_sign_verify_every_spec() {
        let root = SoftwareRoot::ephemeral().unwrap();
        let msg = b"signed by the software root";
        for spec in [
            KeySpec::Rsa2048,
            KeySpec::EccNistP256,
            KeySpec::EccNistP384,
            KeySpec::EccNistP521,
            KeySpec::EccSecgP256k1,
            KeySpec::EccNistEdwards25519,
            KeySpec::MlDsa44,
            KeySpec::MlDsa65,
            KeySpec::MlDsa87,
        ] {
            let id = KeyId::generate();
            let m = mid(&id, spec);
            let g = root.generate(m).await.unwrap();
            let spki = g.public_key.expect("asymmetric keys have a public key");
            assert_eq!(crypto::spec_of_spki(&spki), Some(spec));
            // The blob is the wrapped PKCS#8, never the plaintext.
            let pkcs8 = root.unwrap_bytes(m, &g.wrapped).unwrap();
            assert!(!g
                .wrapped
                .windows(16)
                .any(|w| w == &pkcs8[pkcs8.len() - 16..]));
            assert_eq!(
                PrivateKey::from_pkcs8(spec, &pkcs8)
                    .unwrap()
                    .public_spki()
                    .unwrap(),
                spki
            );
            // Not loaded yet: the service is asked for the wrapped material.
            let first = spec.algorithms(KeyUsage::SignVerify).signing[0];
            let d0 = first
                .hash()
                .map(|h| crypto::hash(h, msg))
                .unwrap_or_default();
            let i0 = match first.hash() {
                Some(_) => SignInput::Digest(&d0),
                None => SignInput::Message(msg),
            };
            assert!(matches!(
                root.sign(m, first, i0).await,
                Err(BackendError::MaterialNeeded)
            ));
            root.load(m, &g.wrapped).await.unwrap();
            for &alg in spec.algorithms(KeyUsage::SignVerify).signing {
                let digest = alg.hash().map(|h| crypto::hash(h, msg)).unwrap_or_default();
                let input = match alg.hash() {
                    Some(_) => SignInput::Digest(&digest),
                    None => SignInput::Message(msg),
                };
                if alg == SigningAlgorithm::Ed25519PhSha512 {
                    assert!(matches!(
                        root.sign(m, alg, input).await,
                        Err(BackendError::Unsupported(_))
                    ));
                    continue;
                }
                let sig = root.sign(m, alg, input).await.unwrap();
                assert!(
                    crypto::verify(&spki, alg, input, &sig).unwrap(),
                    "{spec} {alg}"
                );
                let mut bad = sig.clone();
                bad[0] ^= 1;
                assert!(
                    !crypto::verify(&spki, alg, input, &bad).unwrap(),
                    "{spec} {alg}"
                );
            }
            // A signing key does no MAC, ECDH on secp256k1/RSA/Ed25519/ML-DSA is refused.
            assert!(matches!(
                root.mac(m, MacAlgorithm::HmacSha256, msg).await,
                Err(BackendError::Unsupported(_))
            ));
            assert!(matches!(
                root.encrypt(m, b"x", b"").await,
                Err(BackendError::Unsupported(_))
            ));
        }
        // ML-DSA EXTERNAL_MU through the backend gives the RAW signature (deterministic).
        let (id, spki, _) = make(&root, KeySpec::MlDsa65).await;
        let spki = spki.unwrap();
        let m = mid(&id, KeySpec::MlDsa65);
        let mu = crypto::external_mu(KeySpec::MlDsa65, &spki, msg).unwrap();
        let a = SigningAlgorithm::MlDsaShake256;
        assert_eq!(
            root.sign(m, a, SignInput::Mu(&mu)).await.unwrap(),
            root.sign(m, a, SignInput::Message(msg)).await.unwrap()
        );
    }

    #[tokio::test]
    async fn hmac_keys_have_the_spec_size_and_compute_rfc2104() {
        let root = SoftwareRoot::ephemeral().unwrap();
        for (spec, alg, len) in [
            (KeySpec::Hmac224, MacAlgorithm::HmacSha224, 28),
            (KeySpec::Hmac256, MacAlgorithm::HmacSha256, 32),
            (KeySpec::Hmac384, MacAlgorithm::HmacSha384, 48),
            (KeySpec::Hmac512, MacAlgorithm::HmacSha512, 64),
        ] {
            let (id, public, wrapped) = make(&root, spec).await;
            assert!(public.is_none());
            let m = mid(&id, spec);
            let secret = root.unwrap_bytes(m, &wrapped).unwrap();
            assert_eq!(secret.len(), len);
            let tag = root.mac(m, alg, b"message").await.unwrap();
            assert_eq!(tag, crypto::hmac(alg, &secret, b"message"));
            assert_eq!(tag.len(), alg.hash().output_len());
            // Another algorithm than the key's is refused; so is signing with an HMAC key.
            let other = if alg == MacAlgorithm::HmacSha256 {
                MacAlgorithm::HmacSha512
            } else {
                MacAlgorithm::HmacSha256
            };
            assert!(matches!(
                root.mac(m, other, b"message").await,
                Err(BackendError::Unsupported(_))
            ));
            assert!(matches!(
                root.sign(
                    m,
                    SigningAlgorithm::EcdsaSha256,
                    SignInput::Digest(&[0; 32])
                )
                .await,
                Err(BackendError::Unsupported(_))
            ));
            // Two keys of the same spec give different tags.
            let (id2, _, _) = make(&root, spec).await;
            assert_ne!(
                root.mac(mid(&id2, spec), alg, b"message").await.unwrap(),
                tag
            );
        }
        assert!(matches!(
            root.mac(
                mid(&KeyId::generate(), KeySpec::Hmac256),
                MacAlgorithm::HmacSha256,
                b"m"
            )
            .await,
            Err(BackendError::MaterialNeeded)
        ));
    }

    #[tokio::test]
    async fn blobs_are_bound_to_key_version_and_spec() {
        let root = SoftwareRoot::ephemeral().unwrap();
        let (id, _, wrapped) = make(&root, KeySpec::EccNistP256).await;
        for spec in [
            KeySpec::EccNistP384,
            KeySpec::EccSecgP256k1,
            KeySpec::Hmac256,
        ] {
            assert!(matches!(
                root.load(mid(&id, spec), &wrapped).await,
                Err(BackendError::Unwrap)
            ));
        }
        let other = KeyId::generate();
        assert!(matches!(
            root.load(mid(&other, KeySpec::EccNistP256), &wrapped).await,
            Err(BackendError::Unwrap)
        ));
        let v2 = MaterialId {
            version: 2,
            ..mid(&id, KeySpec::EccNistP256)
        };
        assert!(matches!(
            root.load(v2, &wrapped).await,
            Err(BackendError::Unwrap)
        ));
        let (hid, _, hwrapped) = make(&root, KeySpec::Hmac256).await;
        assert!(matches!(
            root.load(mid(&hid, KeySpec::Hmac384), &hwrapped).await,
            Err(BackendError::Unwrap)
        ));
        // A blob from another root does not load.
        let stranger = SoftwareRoot::ephemeral().unwrap();
        assert!(matches!(
            stranger
                .load(mid(&id, KeySpec::EccNistP256), &wrapped)
                .await,
            Err(BackendError::Unwrap)
        ));
        // SM2 is refused.
        assert!(matches!(
            root.generate(mid(&KeyId::generate(), KeySpec::Sm2)).await,
            Err(BackendError::Unsupported(_))
        ));
    }

    #[tokio::test]
    async fn symmetric_blobs_keep_the_original_aad() {
        // A blob wrapped as the first release did (AAD = context || key id || version) loads.
        let root = SoftwareRoot::ephemeral().unwrap();
        let id = KeyId::generate();
        let mut aad = WRAP_CONTEXT.to_vec();
        aad.extend_from_slice(id.as_str().as_bytes());
        aad.extend_from_slice(&1u32.to_be_bytes());
        let iv = [9u8; 12];
        let mut blob = iv.to_vec();
        blob.extend_from_slice(&[0x42u8; 32]);
        let tag = root
            .root
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(iv),
                Aad::from(aad),
                &mut blob[12..],
            )
            .unwrap();
        blob.extend_from_slice(tag.as_ref());
        let m = mid(&id, KeySpec::SymmetricDefault);
        root.load(m, &blob).await.unwrap();
        let sealed = root.encrypt(m, b"p", b"").await.unwrap();
        let expected = aes_key(&[0x42u8; 32]).unwrap();
        let mut buf = sealed.ciphertext_and_tag.clone();
        let plain = expected
            .open_in_place(
                Nonce::assume_unique_for_key(sealed.iv),
                Aad::from(b""),
                &mut buf,
            )
            .unwrap();
        assert_eq!(plain, b"p");
    }

    #[tokio::test]
    async fn rsa_decrypt_and_ecdh_through_the_backend() {
        let root = SoftwareRoot::ephemeral().unwrap();
        let (id, spki, _) = make(&root, KeySpec::Rsa2048).await;
        let spki = spki.unwrap();
        let m = mid(&id, KeySpec::Rsa2048);
        for alg in [
            EncryptionAlgorithm::RsaesOaepSha1,
            EncryptionAlgorithm::RsaesOaepSha256,
        ] {
            let ct = crypto::rsa_oaep_encrypt(&spki, alg, b"plaintext").unwrap();
            assert_eq!(
                root.decrypt_asymmetric(m, alg, &ct)
                    .await
                    .unwrap()
                    .as_slice(),
                b"plaintext"
            );
            let mut bad = ct.clone();
            bad[100] ^= 1;
            assert!(matches!(
                root.decrypt_asymmetric(m, alg, &bad).await,
                Err(BackendError::InvalidCiphertext)
            ));
        }
        assert!(matches!(
            root.decrypt_asymmetric(
                mid(&KeyId::generate(), KeySpec::Rsa2048),
                EncryptionAlgorithm::RsaesOaepSha256,
                &[0u8; 256]
            )
            .await,
            Err(BackendError::MaterialNeeded)
        ));
        // RSA PKCS#1 v1.5 through the backend (blocking pool) verifies.
        let d = crypto::hash(HashAlg::Sha256, b"m");
        let alg = SigningAlgorithm::RsassaPkcs1V15Sha256;
        let sig = root.sign(m, alg, SignInput::Digest(&d)).await.unwrap();
        assert!(crypto::verify(&spki, alg, SignInput::Digest(&d), &sig).unwrap());

        for spec in [
            KeySpec::EccNistP256,
            KeySpec::EccNistP384,
            KeySpec::EccNistP521,
        ] {
            let (a, a_spki, _) = make(&root, spec).await;
            let (b, b_spki, _) = make(&root, spec).await;
            let a_point = crypto::peer_point(spec, &a_spki.unwrap()).unwrap();
            let b_point = crypto::peer_point(spec, &b_spki.unwrap()).unwrap();
            let z1 = root
                .derive_shared_secret(mid(&a, spec), &b_point)
                .await
                .unwrap();
            let z2 = root
                .derive_shared_secret(mid(&b, spec), &a_point)
                .await
                .unwrap();
            assert_eq!(z1.as_slice(), z2.as_slice());
            assert!(matches!(
                root.derive_shared_secret(mid(&KeyId::generate(), spec), &a_point)
                    .await,
                Err(BackendError::MaterialNeeded)
            ));
        }
    }

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
