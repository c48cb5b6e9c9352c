//! Encryption operations: Encrypt, Decrypt, ReEncrypt, GenerateDataKey(WithoutPlaintext) and
//! GenerateRandom. A symmetric key's ciphertext is a [`super::ciphertext`] blob bound to its key
//! id, material version and encryption context. An RSA `ENCRYPT_DECRYPT` key's ciphertext is the
//! bare RSAES-OAEP output (no header, so Decrypt needs its `KeyId`): encryption runs on the host
//! with the stored public key ([`crate::crypto::rsa_oaep_encrypt`]), decryption in the key's
//! backend ([`CryptoBackend::decrypt_asymmetric`]). RSA keys take no encryption context.

use std::future::Future;

use zeroize::Zeroizing;

use super::ciphertext::{self, EncryptionContext};
use super::{part, Call, Core, InternalCause, KmsError, KmsResult, StateRule};
use crate::backend::{BackendError, BackendResult, CryptoBackend, MaterialId};
use crate::model::{EncryptionAlgorithm, KeyFamily, KeyRecord, KeySpec, KeyUsage};

/// Result of a decryption: the key that decrypted, the algorithm, and the plaintext.
pub struct Decrypted {
    pub key: KeyRecord,
    pub algorithm: EncryptionAlgorithm,
    pub plaintext: Zeroizing<Vec<u8>>,
}

/// Result of an encryption.
pub struct Encrypted {
    pub key: KeyRecord,
    pub algorithm: EncryptionAlgorithm,
    pub blob: Vec<u8>,
}

/// Result of a ReEncrypt: the source key and algorithm, and the new ciphertext.
pub struct ReEncrypted {
    pub source: KeyRecord,
    pub source_algorithm: EncryptionAlgorithm,
    pub destination: Encrypted,
}

/// How far a Decrypt or ReEncrypt goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecryptRun {
    /// The operation itself.
    Real,
    /// `DryRun`: every check, then DryRunOperationException instead of the cryptography.
    DryRun,
    /// `DryRun` with the `IGNORE_CIPHERTEXT` modifier: authorization and the key's checks
    /// only. The key is the one named (Decrypt's `KeyId`, ReEncrypt's `SourceKeyId`), else
    /// the one a ciphertext names; the ciphertext is neither required nor validated.
    DryRunIgnoringCiphertext,
}

impl DecryptRun {
    fn is_dry(self) -> bool {
        self != DecryptRun::Real
    }

    /// The parsed blob to find or check the key by: none when the ciphertext is ignored and
    /// a key is named.
    fn parse<'a>(self, blob: &'a [u8], named: Option<&str>) -> Option<ciphertext::ParsedBlob<'a>> {
        if self == DecryptRun::DryRunIgnoringCiphertext && named.is_some() {
            return None;
        }
        ciphertext::parse(blob)
    }
}

/// How a crypto operation is named in errors.
#[derive(Debug, Clone, Copy)]
pub enum CryptoOp {
    Encrypt,
    Decrypt,
    ReEncrypt,
    GenerateDataKey,
    GenerateDataKeyWithoutPlaintext,
    GenerateDataKeyPair,
    GenerateDataKeyPairWithoutPlaintext,
}

impl CryptoOp {
    fn name(self) -> &'static str {
        match self {
            CryptoOp::Encrypt => "Encrypt",
            CryptoOp::Decrypt => "Decrypt",
            CryptoOp::ReEncrypt => "ReEncrypt",
            CryptoOp::GenerateDataKey => "GenerateDataKey",
            CryptoOp::GenerateDataKeyWithoutPlaintext => "GenerateDataKeyWithoutPlaintext",
            CryptoOp::GenerateDataKeyPair => "GenerateDataKeyPair",
            CryptoOp::GenerateDataKeyPairWithoutPlaintext => "GenerateDataKeyPairWithoutPlaintext",
        }
    }
}

impl Core {
    /// Runs a backend call on a material version. When the backend has no usable object for
    /// it ([`BackendError::MaterialNeeded`]), its wrapped material is read from the store,
    /// handed over ([`CryptoBackend::load`]) and the call is made once more. Backend errors
    /// become domain errors through `map`.
    pub(crate) async fn with_material<T, F, Fut>(
        &self,
        backend: &dyn CryptoBackend,
        m: MaterialId<'_>,
        map: impl Fn(BackendError) -> KmsError,
        op: F,
    ) -> KmsResult<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = BackendResult<T>>,
    {
        match op().await {
            Err(BackendError::MaterialNeeded) => {}
            other => return other.map_err(map),
        }
        let wrapped = match self.store.get_material(m.key_id, m.version).await? {
            Some(record) => record.wrapped,
            // A version the key never had: the blob's header lies.
            None => return Err(KmsError::InvalidCiphertext),
        };
        backend.load(m, &wrapped).await.map_err(&map)?;
        op().await.map_err(map)
    }

    /// Checks that a key can do symmetric encryption with `algorithm`.
    pub(crate) fn check_symmetric(
        &self,
        key: &KeyRecord,
        op: CryptoOp,
        algorithm: Option<EncryptionAlgorithm>,
    ) -> KmsResult<()> {
        if key.key_usage != KeyUsage::EncryptDecrypt {
            return Err(KmsError::InvalidKeyUsage(format!(
                "{} key usage is {} which is not valid for {}.",
                key.arn,
                key.key_usage,
                op.name()
            )));
        }
        if key.key_spec != KeySpec::SymmetricDefault {
            return Err(KmsError::InvalidKeyUsage(format!(
                "{} key spec is {} which is not valid for {}.",
                key.arn,
                key.key_spec,
                op.name()
            )));
        }
        match algorithm {
            None | Some(EncryptionAlgorithm::SymmetricDefault) => Ok(()),
            Some(other) => Err(KmsError::InvalidKeyUsage(format!(
                "Algorithm {other} is incompatible with key spec {}.",
                key.key_spec
            ))),
        }
    }

    /// Checks that a key can do Encrypt, Decrypt or ReEncrypt with the requested algorithm and
    /// returns the algorithm in effect: `SYMMETRIC_DEFAULT` (also when omitted) for symmetric
    /// keys, an `RSAES_OAEP_*` algorithm (required) for RSA keys.
    pub(crate) fn check_encryption(
        &self,
        key: &KeyRecord,
        op: CryptoOp,
        algorithm: Option<EncryptionAlgorithm>,
    ) -> KmsResult<EncryptionAlgorithm> {
        if key.key_usage != KeyUsage::EncryptDecrypt {
            return Err(KmsError::InvalidKeyUsage(format!(
                "{} key usage is {} which is not valid for {}.",
                key.arn,
                key.key_usage,
                op.name()
            )));
        }
        let requested = algorithm.unwrap_or(EncryptionAlgorithm::SymmetricDefault);
        let compatible = match key.key_spec.family() {
            KeyFamily::Symmetric => requested == EncryptionAlgorithm::SymmetricDefault,
            KeyFamily::Rsa => requested.oaep_hash().is_some(),
            _ => {
                return Err(KmsError::InvalidKeyUsage(format!(
                    "{} key spec is {} which is not valid for {}.",
                    key.arn,
                    key.key_spec,
                    op.name()
                )))
            }
        };
        if !compatible {
            return Err(KmsError::InvalidKeyUsage(format!(
                "Algorithm {requested} is incompatible with key spec {}.",
                key.key_spec
            )));
        }
        Ok(requested)
    }

    /// The request rules of an RSA key: no encryption context.
    fn check_asymmetric_context(context: &EncryptionContext) -> KmsResult<()> {
        if context.is_empty() {
            Ok(())
        } else {
            Err(KmsError::Validation(
                "EncryptionContext is not supported when encrypting/decrypting with asymmetric \
                 CMKs."
                    .into(),
            ))
        }
    }

    /// The OAEP plaintext limit of an RSA key and algorithm.
    fn check_rsa_plaintext(
        key: &KeyRecord,
        algorithm: EncryptionAlgorithm,
        len: usize,
    ) -> KmsResult<()> {
        match algorithm.max_plaintext(key.key_spec) {
            Some(max) if len <= max => Ok(()),
            Some(max) => Err(KmsError::Validation(format!(
                "Algorithm {algorithm} and key spec {} cannot encrypt data larger than {max} bytes.",
                key.key_spec
            ))),
            None => Err(KmsError::internal_because(InternalCause::Invariant(
                "an RSA algorithm without a plaintext limit",
            ))),
        }
    }

    /// RSAES-OAEP encryption on the host with the key's stored public key (the plaintext
    /// limit already checked).
    fn rsa_encrypt(
        &self,
        key: &KeyRecord,
        algorithm: EncryptionAlgorithm,
        plaintext: &[u8],
    ) -> KmsResult<Vec<u8>> {
        let spki = key.public_key.as_deref().ok_or_else(|| {
            KmsError::internal_because(InternalCause::Invariant("an RSA key has no public key"))
        })?;
        crate::crypto::rsa_oaep_encrypt(spki, algorithm, plaintext).map_err(|e| {
            tracing::error!(key = %key.arn, error = %e, "RSA encryption failed");
            KmsError::internal_because(InternalCause::Invariant("RSA encryption failed"))
        })
    }

    /// RSAES-OAEP decryption in the key's backend. Any failure to decode (wrong key or
    /// algorithm, a blob that is not a k-byte OAEP ciphertext) is an invalid ciphertext.
    async fn rsa_decrypt(
        &self,
        key: &KeyRecord,
        algorithm: EncryptionAlgorithm,
        blob: &[u8],
    ) -> KmsResult<Zeroizing<Vec<u8>>> {
        // RFC 8017 §7.1.2: the ciphertext is exactly k bytes.
        if key.key_spec.rsa_modulus_len() != Some(blob.len()) {
            return Err(KmsError::InvalidCiphertext);
        }
        let m = MaterialId {
            key_id: &key.key_id,
            version: key.current_material,
            label: &key.arn,
            spec: key.key_spec,
        };
        let backend = self.backend_for(key)?;
        let b = backend.as_ref();
        self.with_material(
            b,
            m,
            |e| self.backend_error(key, e),
            || b.decrypt_asymmetric(m, algorithm, blob),
        )
        .await
    }

    pub(crate) async fn seal(
        &self,
        call: &Call,
        key: &KeyRecord,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> KmsResult<Vec<u8>> {
        if key.xks_key_id.is_some() {
            return self.xks_seal(call, key, plaintext, context).await;
        }
        self.seal_material(key, plaintext, context).await
    }

    /// Encrypts under the key's current material in its backend (default store or custom
    /// key store) and assembles the blob.
    async fn seal_material(
        &self,
        key: &KeyRecord,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> KmsResult<Vec<u8>> {
        let version = key.current_material;
        let header = ciphertext::header(&key.key_id, version);
        let aad = ciphertext::aad(&header, context);
        let m = MaterialId {
            key_id: &key.key_id,
            version,
            label: &key.arn,
            spec: key.key_spec,
        };
        let backend = self.backend_for(key)?;
        let b = backend.as_ref();
        let sealed = self
            .with_material(
                b,
                m,
                |e| self.backend_error(key, e),
                || b.encrypt(m, plaintext, &aad),
            )
            .await?;
        Ok(ciphertext::assemble(
            &header,
            &sealed.iv,
            &sealed.ciphertext_and_tag,
        ))
    }
}

part!(
    /// Encrypt, Decrypt, ReEncrypt, GenerateDataKey(WithoutPlaintext) and GenerateRandom.
    Crypto
);

impl Crypto {
    /// The benchmark floor (`POST /__baseline` with `x-kms-bench-key`, only with
    /// `server.baseline_route`): the key's backend encrypts `plaintext` exactly as Encrypt's
    /// does (same IV source, AAD shape and PKCS#11 calls, the same hand-off to the HSM
    /// threads), with none of the KMS work around it (no authentication, checks, JSON or
    /// audit). No result leaves: the benchmark only needs the work done.
    pub async fn bench_seal(&self, key_id: &str, plaintext: &[u8]) -> KmsResult<()> {
        let id = crate::model::KeyId::parse(key_id)
            .ok_or_else(|| KmsError::NotFound(format!("Invalid keyId '{key_id}'")))?;
        let key = self
            .store
            .get_key(&id)
            .await?
            .ok_or_else(|| KmsError::NotFound(format!("Invalid keyId '{key_id}'")))?;
        if key.xks_key_id.is_some() {
            return Err(KmsError::UnsupportedOperation(
                "the benchmark floor does not cover external key stores".into(),
            ));
        }
        self.seal_material(&key, plaintext, &EncryptionContext::default())
            .await
            .map(drop)
    }

    /// Authorizes a symmetric crypto action on a key with its condition keys.
    async fn authorize_crypto(
        &self,
        call: &Call,
        action: &str,
        key: &KeyRecord,
        context: &EncryptionContext,
        algorithm: Option<EncryptionAlgorithm>,
        same_key: Option<bool>,
    ) -> KmsResult<()> {
        let algorithm = algorithm
            .unwrap_or(EncryptionAlgorithm::SymmetricDefault)
            .to_string();
        self.authorize_key(call, action, key, Some(context), |ctx| {
            ctx.set("kms:EncryptionAlgorithm", algorithm.as_str());
            if let Some(same) = same_key {
                ctx.set("kms:ReEncryptOnSameKey", same);
            }
        })
        .await
    }

    /// Resolves, authorizes, checks and encrypts; `dry_run` stops just before the
    /// cryptography.
    #[allow(clippy::too_many_arguments)]
    pub async fn encrypt(
        &self,
        call: &mut Call,
        key_id: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
        algorithm: Option<EncryptionAlgorithm>,
        op: CryptoOp,
        dry_run: bool,
    ) -> KmsResult<Encrypted> {
        let key = self.resolve(call, key_id, true).await?;
        self.authorize_crypto(call, op.name(), &key, context, algorithm, None)
            .await?;
        let algorithm = self.check_encryption(&key, op, algorithm)?;
        let symmetric = algorithm == EncryptionAlgorithm::SymmetricDefault;
        if !symmetric {
            Core::check_asymmetric_context(context)?;
            Core::check_rsa_plaintext(&key, algorithm, plaintext.len())?;
        }
        self.admit_crypto(call, &key)?;
        if dry_run {
            return Err(KmsError::DryRunOperation);
        }
        let blob = if symmetric {
            self.seal(call, &key, plaintext, context).await?
        } else {
            self.rsa_encrypt(&key, algorithm, plaintext)?
        };
        Ok(Encrypted {
            key,
            algorithm,
            blob,
        })
    }

    /// The key a Decrypt (or the source half of a ReEncrypt) uses: the one `key_id` names,
    /// which must be the one that made the blob, or else the one the blob names (in any
    /// account: authorization decides).
    async fn decryption_key(
        &self,
        call: &mut Call,
        parsed: Option<&ciphertext::ParsedBlob<'_>>,
        key_id: Option<&str>,
    ) -> KmsResult<KeyRecord> {
        if let Some(requested) = key_id {
            let key = self.resolve(call, requested, true).await?;
            if let Some(p) = parsed {
                // A multi-Region blob names the public id: any related key decrypts it.
                if p.key_id.public() != key.key_id.public() {
                    return Err(KmsError::IncorrectKey);
                }
            }
            return Ok(key);
        }
        // Without a KeyId only a symmetric blob can be decrypted (an RSA ciphertext names no
        // key; a blob naming an asymmetric key was not made here).
        let Some(p) = parsed else {
            return Err(KmsError::InvalidCiphertext);
        };
        // A multi-Region key's blob decrypts under the related key of the call's region.
        let here = self.region_of(call).to_string();
        match self.store.get_key(&p.key_id.in_region(&here)).await? {
            Some(k) if k.region == here && k.key_spec == KeySpec::SymmetricDefault => {
                call.touch(&k);
                Ok(self.annotate(k))
            }
            // A blob naming a key that never existed: a tampered blob is an invalid ciphertext
            // whatever byte changed.
            _ => Err(KmsError::InvalidCiphertext),
        }
    }

    /// Decrypts a blob under an authorized, checked key.
    async fn open(
        &self,
        call: &Call,
        key: &KeyRecord,
        parsed: &ciphertext::ParsedBlob<'_>,
        context: &EncryptionContext,
    ) -> KmsResult<Zeroizing<Vec<u8>>> {
        if parsed.material_version == 0 || parsed.material_version > key.current_material {
            return Err(KmsError::InvalidCiphertext);
        }
        // An external-key-store blob only for an external-key-store key, and vice versa.
        if (parsed.version == ciphertext::VERSION_XKS) != key.xks_key_id.is_some() {
            return Err(KmsError::InvalidCiphertext);
        }
        if key.xks_key_id.is_some() {
            return self.xks_open(call, key, parsed, context).await;
        }
        let aad = ciphertext::aad(parsed.header, context);
        let m = MaterialId {
            key_id: &key.key_id,
            version: parsed.material_version,
            label: &key.arn,
            spec: key.key_spec,
        };
        let backend = self.backend_for(key)?;
        let b = backend.as_ref();
        let (iv, body) = (parsed.iv, parsed.ciphertext_and_tag);
        self.with_material(
            b,
            m,
            |e| self.backend_error(key, e),
            || b.decrypt(m, &iv, body, &aad),
        )
        .await
    }

    /// Decrypts a blob. `key_id`, when given, must name the key that made the blob; it is
    /// required for an RSA ciphertext, which names no key.
    #[allow(clippy::too_many_arguments)]
    pub async fn decrypt(
        &self,
        call: &mut Call,
        blob: &[u8],
        key_id: Option<&str>,
        context: &EncryptionContext,
        algorithm: Option<EncryptionAlgorithm>,
        op: CryptoOp,
        run: DecryptRun,
    ) -> KmsResult<Decrypted> {
        let parsed = run.parse(blob, key_id);
        let key = self.decryption_key(call, parsed.as_ref(), key_id).await?;
        self.authorize_crypto(call, op.name(), &key, context, algorithm, None)
            .await
            .map_err(|e| unusable_unless_named(e, key_id, &key, call))?;
        let algorithm = self.check_encryption(&key, op, algorithm)?;
        if algorithm != EncryptionAlgorithm::SymmetricDefault {
            Core::check_asymmetric_context(context)?;
            self.admit_crypto(call, &key)?;
            if run.is_dry() {
                return Err(KmsError::DryRunOperation);
            }
            let plaintext = self.rsa_decrypt(&key, algorithm, blob).await?;
            return Ok(Decrypted {
                key,
                algorithm,
                plaintext,
            });
        }
        self.admit_crypto(call, &key)?;
        if run == DecryptRun::DryRunIgnoringCiphertext {
            return Err(KmsError::DryRunOperation);
        }
        let Some(parsed) = parsed else {
            return Err(KmsError::InvalidCiphertext);
        };
        if run.is_dry() {
            return Err(KmsError::DryRunOperation);
        }
        let plaintext = self.open(call, &key, &parsed, context).await?;
        Ok(Decrypted {
            key,
            algorithm,
            plaintext,
        })
    }

    /// Decrypts under the source and encrypts under the destination, server-side.
    /// Authorized as `kms:ReEncryptFrom` on the source key and `kms:ReEncryptTo` on the
    /// destination key.
    #[allow(clippy::too_many_arguments)]
    pub async fn re_encrypt(
        &self,
        call: &mut Call,
        blob: &[u8],
        source_key_id: Option<&str>,
        source_context: &EncryptionContext,
        source_algorithm: Option<EncryptionAlgorithm>,
        destination_key_id: &str,
        destination_context: &EncryptionContext,
        destination_algorithm: Option<EncryptionAlgorithm>,
        run: DecryptRun,
    ) -> KmsResult<ReEncrypted> {
        // The destination first, so that a dry run validates both sides; it gets its own
        // `kms:RequestAlias`. The audit resources list the source, then the destination.
        let mut dest_call = call.clone();
        dest_call.resources.clear();
        let dest = self.resolve(&mut dest_call, destination_key_id, true).await;
        let parsed = run.parse(blob, source_key_id);
        let source = self
            .decryption_key(call, parsed.as_ref(), source_key_id)
            .await;
        for r in std::mem::take(&mut dest_call.resources) {
            if !call.resources.contains(&r) {
                call.resources.push(r);
            }
        }
        let dest = dest?;
        let source = source?;
        let same_key = Some(source.key_id == dest.key_id);
        self.authorize_crypto(
            call,
            "ReEncryptFrom",
            &source,
            source_context,
            source_algorithm,
            same_key,
        )
        .await
        .map_err(|e| unusable_unless_named(e, source_key_id, &source, call))?;
        self.authorize_crypto(
            &dest_call,
            "ReEncryptTo",
            &dest,
            destination_context,
            destination_algorithm,
            same_key,
        )
        .await?;
        let dest_alg = self.check_encryption(&dest, CryptoOp::ReEncrypt, destination_algorithm)?;
        if dest_alg != EncryptionAlgorithm::SymmetricDefault {
            Core::check_asymmetric_context(destination_context)?;
        }
        self.admit_crypto(call, &dest)?;
        let source_alg = self.check_encryption(&source, CryptoOp::ReEncrypt, source_algorithm)?;
        if source_alg != EncryptionAlgorithm::SymmetricDefault {
            Core::check_asymmetric_context(source_context)?;
        }
        self.check_state(&source, StateRule::Crypto)?;
        if run == DecryptRun::DryRunIgnoringCiphertext {
            return Err(KmsError::DryRunOperation);
        }
        let parsed = match (source_alg, parsed) {
            (EncryptionAlgorithm::SymmetricDefault, None) => {
                return Err(KmsError::InvalidCiphertext)
            }
            (EncryptionAlgorithm::SymmetricDefault, Some(p)) => Some(p),
            _ => None,
        };
        if run.is_dry() {
            return Err(KmsError::DryRunOperation);
        }
        let plaintext = match &parsed {
            Some(p) => self.open(call, &source, p, source_context).await?,
            None => self.rsa_decrypt(&source, source_alg, blob).await?,
        };
        let out = if dest_alg == EncryptionAlgorithm::SymmetricDefault {
            self.seal(call, &dest, &plaintext, destination_context)
                .await?
        } else {
            Core::check_rsa_plaintext(&dest, dest_alg, plaintext.len())?;
            self.rsa_encrypt(&dest, dest_alg, &plaintext)?
        };
        Ok(ReEncrypted {
            source,
            source_algorithm: source_alg,
            destination: Encrypted {
                key: dest,
                algorithm: dest_alg,
                blob: out,
            },
        })
    }

    /// GenerateDataKey(WithoutPlaintext): random bytes from the backend, encrypted under the key.
    pub async fn generate_data_key(
        &self,
        call: &mut Call,
        key_id: &str,
        len: usize,
        context: &EncryptionContext,
        op: CryptoOp,
        dry_run: bool,
    ) -> KmsResult<(Encrypted, Zeroizing<Vec<u8>>)> {
        let key = self.resolve(call, key_id, true).await?;
        self.authorize_crypto(call, op.name(), &key, context, None, None)
            .await?;
        self.check_symmetric(&key, op, None)?;
        self.admit_crypto(call, &key)?;
        if dry_run {
            return Err(KmsError::DryRunOperation);
        }
        // External key stores: the data key comes from the root; the quota is taken in `seal`.
        let data_key = if key.xks_key_id.is_some() {
            self.root.random(len).await?
        } else {
            self.backend_for(&key)?
                .random(len)
                .await
                .map_err(|e| self.backend_error(&key, e))?
        };
        let blob = self.seal(call, &key, &data_key, context).await?;
        Ok((
            Encrypted {
                key,
                algorithm: EncryptionAlgorithm::SymmetricDefault,
                blob,
            },
            data_key,
        ))
    }

    pub async fn generate_random(&self, call: &Call, len: usize) -> KmsResult<Zeroizing<Vec<u8>>> {
        self.authorize_identity(call, "GenerateRandom", None, |_| {})?;
        Ok(self.root.random(len).await?)
    }
}

/// A denial on another account's key that the caller did not name (Decrypt found it in the
/// ciphertext) gets AWS's ciphertext wording, which does not say whether the key exists.
fn unusable_unless_named(
    e: KmsError,
    named: Option<&str>,
    key: &KeyRecord,
    call: &Call,
) -> KmsError {
    match e {
        KmsError::AccessDenied(_) if named.is_none() && key.account != call.principal.account => {
            KmsError::AccessDenied(kms_policy::messages::CIPHERTEXT_KEY_UNUSABLE.into())
        }
        other => other,
    }
}
