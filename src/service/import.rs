//! Imported key material (Origin `EXTERNAL`): GetParametersForImport, ImportKeyMaterial,
//! DeleteImportedKeyMaterial, and the expiry of imported material by the maintenance pass.
//!
//! * **Wrapping key pairs** are made by the root per call (in the token on the PKCS#11 root)
//!   and travel only inside the import token: the private key wrapped under the root.
//! * **Import token** (`reference/import-and-multi-region.md` §1.7): AES-256-GCM under the
//!   service's system key (in the HSM on the PKCS#11 root), AAD = a label and the key ARN, over
//!   the wrapping algorithm and key spec, `ParametersValidTo`, a random token id and the
//!   wrapped private key. A token for another key, or changed in any byte, fails
//!   authentication (`InvalidImportTokenException`); one past `ParametersValidTo` is
//!   `ExpiredImportTokenException`. Tokens are stateless (any node opens them) and not
//!   single-use (AWS documents no such rule).
//! * **Material** is unwrapped, checked and re-wrapped under the root by the backend; the
//!   service sees only the wrapped form and a fingerprint. The `KeyMaterialId` of imported
//!   material is `hex(SHA-256("kms/kmid/v1" || key id || fingerprint))`, with the public key
//!   id (one for every key of a multi-Region set): the same material imported again into the
//!   same key, or into a replica, has the same id, which is how re-imports are checked.
//! * **Materials of a key**: versions `1..=current` are permanently associated (CURRENT and
//!   NON_CURRENT); a version above `current` is NEW material imported for an on-demand
//!   rotation (PENDING_ROTATION). Deleting or expiring an associated material empties its
//!   stored blob, marks it PENDING_IMPORT and puts the key in `PendingImport` until the same
//!   material is imported again.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{part, Call, KmsError, KmsResult};
use crate::backend::{ImportWrapping, MaterialId};
use crate::model::{
    hex, ExpirationModel, ImportInfo, ImportState, ImportType, KeyFamily, KeyRecord, KeySpec,
    KeyState, MaterialRecord, MaterialSummary, Origin, WrappingAlgorithm, WrappingKeySpec,
};

/// How long a wrapping key and import token pair is valid.
pub const PARAMETERS_VALID_HOURS: i64 = 24;
/// The latest `ValidTo` accepted: this many days after the request.
pub const MAX_VALID_TO_DAYS: i64 = 365;
const TOKEN_VERSION: u8 = 1;

/// GetParametersForImport result.
pub struct ImportParameters {
    pub key: KeyRecord,
    pub import_token: Vec<u8>,
    pub public_key: Vec<u8>,
    pub valid_to: DateTime<Utc>,
}

/// Validated ImportKeyMaterial input.
pub struct NewImport {
    pub import_token: Vec<u8>,
    pub encrypted_key_material: Vec<u8>,
    pub expiration_model: Option<ExpirationModel>,
    pub valid_to: Option<DateTime<Utc>>,
    pub import_type: Option<ImportType>,
    pub description: Option<String>,
    pub key_material_id: Option<String>,
}

/// What the import token carries (sealed; see the module docs).
#[derive(Serialize, Deserialize)]
struct TokenBody {
    v: u8,
    algorithm: String,
    spec: String,
    valid_to: i64,
    id: String,
    /// The wrapping private key wrapped under the root, base64.
    private: String,
}

/// The wrapping algorithms AWS offers for a key spec (outside the China Regions), in AWS's
/// order of preference (`reference/import-and-multi-region.md` §1.1).
pub fn offered_algorithms(spec: KeySpec) -> &'static [WrappingAlgorithm] {
    use WrappingAlgorithm::*;
    match spec.family() {
        KeyFamily::Symmetric | KeyFamily::Hmac => &[RsaesOaepSha256, RsaesOaepSha1],
        KeyFamily::Rsa => &[RsaAesKeyWrapSha256, RsaAesKeyWrapSha1],
        KeyFamily::Ecc => &[
            RsaAesKeyWrapSha256,
            RsaAesKeyWrapSha1,
            RsaesOaepSha256,
            RsaesOaepSha1,
        ],
        _ => &[],
    }
}

/// Whether a key of this spec can be created with Origin `EXTERNAL`.
pub fn importable(spec: KeySpec) -> bool {
    !offered_algorithms(spec).is_empty()
}

/// The `KeyMaterialId` of imported material.
pub fn imported_material_id(key_id: &str, fingerprint: &[u8]) -> String {
    let mut input = b"kms/kmid/v1".to_vec();
    input.extend_from_slice(key_id.as_bytes());
    input.extend_from_slice(fingerprint);
    hex(&crate::crypto::hash(crate::model::HashAlg::Sha256, &input))
}

fn token_aad(arn: &str) -> String {
    format!("kms/import-token/v1:{arn}")
}

fn invalid_token() -> KmsError {
    KmsError::InvalidImportToken(
        "The import token is invalid: it is malformed, was changed, or was issued for another \
         KMS key."
            .into(),
    )
}

/// The state of a material as ListKeyRotations reports it.
pub fn material_state(key: &KeyRecord, m: &MaterialRecord) -> crate::model::KeyMaterialState {
    use crate::model::KeyMaterialState::*;
    match m.version.cmp(&key.current_material) {
        std::cmp::Ordering::Less => NonCurrent,
        std::cmp::Ordering::Equal => Current,
        std::cmp::Ordering::Greater => PendingRotation,
    }
}

part!(
    /// GetParametersForImport, ImportKeyMaterial, DeleteImportedKeyMaterial, material expiry.
    Import
);

impl super::Core {
    /// The material fields of `key`'s metadata: from the metadata cache beside the key's row,
    /// else read from its material rows.
    pub async fn material_summary(&self, key: &KeyRecord) -> KmsResult<MaterialSummary> {
        Ok(self.store.material_summary(key).await?)
    }

    /// Seals an import token for `key`.
    async fn seal_token(&self, key: &KeyRecord, body: &TokenBody) -> KmsResult<Vec<u8>> {
        let json = serde_json::to_vec(body).map_err(|_| {
            KmsError::internal_because(super::InternalCause::Invariant("import token encoding"))
        })?;
        self.seal_bytes(&token_aad(&key.arn), &json).await
    }

    /// Opens and checks an import token for `key`.
    async fn open_token(&self, key: &KeyRecord, token: &[u8]) -> KmsResult<TokenBody> {
        let plain = self
            .open_bytes(&token_aad(&key.arn), token)
            .await?
            .ok_or_else(invalid_token)?;
        let body: TokenBody = serde_json::from_slice(&plain).map_err(|_| invalid_token())?;
        if body.v != TOKEN_VERSION {
            return Err(invalid_token());
        }
        Ok(body)
    }
}

impl Import {
    /// The checks every import operation makes after authorization: an `EXTERNAL` key (AWS's
    /// words for other origins), in a state that allows the operation. Deleting material is
    /// allowed on a key pending deletion too (key-state footnote [9]; AWS's DeleteImportedKeyMaterial
    /// leaves that state as it is), importing is not (footnote [8]).
    fn check_import_key(&self, key: &KeyRecord, deleting: bool) -> KmsResult<()> {
        if key.origin != Origin::External {
            return Err(KmsError::UnsupportedOperation(format!(
                "{} origin is {} which is not valid for this operation.",
                key.arn, key.origin
            )));
        }
        let arn = &key.arn;
        match key.state {
            KeyState::PendingDeletion | KeyState::PendingReplicaDeletion if deleting => Ok(()),
            KeyState::PendingDeletion | KeyState::PendingReplicaDeletion => Err(
                KmsError::KmsInvalidState(format!("{arn} is pending deletion.")),
            ),
            KeyState::Creating => Err(KmsError::KmsInvalidState(format!("{arn} is creating."))),
            KeyState::Updating => Err(KmsError::KmsInvalidState(format!("{arn} is updating."))),
            _ => Ok(()),
        }
    }

    pub async fn get_parameters_for_import(
        &self,
        call: &mut Call,
        key_id: &str,
        algorithm: WrappingAlgorithm,
        spec: WrappingKeySpec,
    ) -> KmsResult<ImportParameters> {
        let key = self.resolve(call, key_id, false).await?;
        self.authorize_key(call, "GetParametersForImport", &key, None, |ctx| {
            ctx.set("kms:WrappingAlgorithm", algorithm.as_str())
                .set("kms:WrappingKeySpec", spec.as_str());
        })
        .await?;
        self.check_import_key(&key, false)?;
        let china = self.region.starts_with("cn-");
        if spec == WrappingKeySpec::Sm2 && !china {
            return Err(KmsError::UnsupportedOperation(
                "WrappingKeySpec SM2 is not supported in this Region".into(),
            ));
        }
        if algorithm == WrappingAlgorithm::Sm2Pke && !china {
            return Err(KmsError::UnsupportedOperation(
                "WrappingAlgorithm SM2PKE is not supported in this Region".into(),
            ));
        }
        if algorithm == WrappingAlgorithm::RsaesPkcs1V15 {
            return Err(KmsError::UnsupportedOperation(
                "WrappingAlgorithm RSAES_PKCS1_V1_5 is no longer supported. Use \
                 RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, RSA_AES_KEY_WRAP_SHA_1 or \
                 RSA_AES_KEY_WRAP_SHA_256."
                    .into(),
            ));
        }
        if !offered_algorithms(key.key_spec).contains(&algorithm) {
            return Err(KmsError::UnsupportedOperation(format!(
                "WrappingAlgorithm {algorithm} is not supported for key spec {}.",
                key.key_spec
            )));
        }
        // A P-521 PKCS#8 key does not fit RSAES-OAEP under RSA-2048.
        if key.key_spec == KeySpec::EccNistP521
            && spec == WrappingKeySpec::Rsa2048
            && !algorithm.is_hybrid()
        {
            return Err(KmsError::UnsupportedOperation(format!(
                "WrappingAlgorithm {algorithm} with WrappingKeySpec RSA_2048 is not supported \
                 for key spec ECC_NIST_P521."
            )));
        }
        self.root
            .import_support(key.key_spec, algorithm)
            .map_err(|why| {
                KmsError::UnsupportedOperation(format!(
                    "WrappingAlgorithm {algorithm} is not supported by this key store: {why}."
                ))
            })?;
        let pair = self.root.create_wrapping_key(spec).await?;
        let valid_to = self.clock.now() + Duration::hours(PARAMETERS_VALID_HOURS);
        let id = self.root.random(16).await?;
        use base64::Engine as _;
        let body = TokenBody {
            v: TOKEN_VERSION,
            algorithm: algorithm.as_str().into(),
            spec: spec.as_str().into(),
            valid_to: valid_to.timestamp(),
            id: hex(&id),
            private: base64::engine::general_purpose::STANDARD.encode(&pair.wrapped_private),
        };
        let import_token = self.seal_token(&key, &body).await?;
        Ok(ImportParameters {
            key,
            import_token,
            public_key: pair.public_spki,
            valid_to: DateTime::from_timestamp(valid_to.timestamp(), 0).unwrap_or(valid_to),
        })
    }

    /// ImportKeyMaterial; returns the key and the material id.
    pub async fn import_key_material(
        &self,
        call: &mut Call,
        key_id: &str,
        req: NewImport,
    ) -> KmsResult<(KeyRecord, String)> {
        let key = self.resolve(call, key_id, false).await?;
        let model = req
            .expiration_model
            .unwrap_or(ExpirationModel::KeyMaterialExpires);
        self.authorize_key(call, "ImportKeyMaterial", &key, None, |ctx| {
            ctx.set("kms:ExpirationModel", model.as_str());
            if let Some(v) = req.valid_to {
                ctx.set("kms:ValidTo", v.timestamp());
            }
        })
        .await?;
        self.check_import_key(&key, false)?;
        let now = self.clock.now();
        match (model, req.valid_to) {
            (ExpirationModel::KeyMaterialExpires, None) => {
                return Err(KmsError::Validation(
                    "A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES"
                        .into(),
                ))
            }
            (ExpirationModel::KeyMaterialDoesNotExpire, Some(_)) => {
                return Err(KmsError::Validation(
                    "A validTo date must not be set if the ExpirationModel is \
                     KEY_MATERIAL_DOES_NOT_EXPIRE"
                        .into(),
                ))
            }
            (_, Some(v)) if v <= now => {
                return Err(KmsError::Validation(
                    "The validTo date must be in the future.".into(),
                ))
            }
            (_, Some(v)) if v > now + Duration::days(MAX_VALID_TO_DAYS) => {
                return Err(KmsError::Validation(format!(
                    "The validTo date must be at most {MAX_VALID_TO_DAYS} days in the future."
                )))
            }
            _ => {}
        }
        let symmetric = key.key_spec == KeySpec::SymmetricDefault;
        if !symmetric {
            for (present, name) in [
                (req.import_type.is_some(), "ImportType"),
                (req.description.is_some(), "KeyMaterialDescription"),
                (req.key_material_id.is_some(), "KeyMaterialId"),
            ] {
                if present {
                    return Err(KmsError::UnsupportedOperation(format!(
                        "{name} is supported only for symmetric encryption keys; {} has key \
                         spec {}.",
                        key.arn, key.key_spec
                    )));
                }
            }
        }
        let token = self.open_token(&key, &req.import_token).await?;
        if now.timestamp() > token.valid_to {
            return Err(KmsError::ExpiredImportToken(
                "The import token has expired. Call GetParametersForImport for a new wrapping \
                 key and import token."
                    .into(),
            ));
        }
        let (Some(algorithm), Some(spec)) = (
            WrappingAlgorithm::parse(&token.algorithm),
            WrappingKeySpec::parse(&token.spec),
        ) else {
            return Err(invalid_token());
        };
        use base64::Engine as _;
        let wrapped_private = base64::engine::general_purpose::STANDARD
            .decode(token.private.as_bytes())
            .map_err(|_| invalid_token())?;

        let materials = self.store.list_materials(&key.key_id).await?;
        let ever_imported = materials.iter().any(|m| m.material_id.is_some());
        let import_type = req.import_type.unwrap_or(if ever_imported {
            ImportType::ExistingKeyMaterial
        } else {
            ImportType::NewKeyMaterial
        });
        if import_type == ImportType::NewKeyMaterial && req.key_material_id.is_some() {
            return Err(KmsError::Validation(
                "KeyMaterialId must not be set with ImportType NEW_KEY_MATERIAL.".into(),
            ));
        }
        if import_type == ImportType::ExistingKeyMaterial && !ever_imported {
            return Err(KmsError::IncorrectKeyMaterial(format!(
                "{} has no key material to import again: import NEW_KEY_MATERIAL first.",
                key.arn
            )));
        }
        if import_type == ImportType::NewKeyMaterial && ever_imported {
            if !symmetric {
                return Err(KmsError::UnsupportedOperation(format!(
                    "{} already has its key material; only symmetric encryption keys take new \
                     key material.",
                    key.arn
                )));
            }
            if materials.iter().any(|m| m.version > key.current_material) {
                return Err(KmsError::KmsInvalidState(format!(
                    "{} already has key material pending rotation. Rotate the key or delete \
                     that key material first.",
                    key.arn
                )));
            }
        }

        // Versions are fixed before the backend runs: the material is wrapped for it.
        let target_version = match import_type {
            ImportType::NewKeyMaterial if !ever_imported => key.current_material,
            ImportType::NewKeyMaterial => {
                materials.iter().map(|m| m.version).max().unwrap_or(0) + 1
            }
            // Unknown until the id is known; wrapped again below if it differs.
            ImportType::ExistingKeyMaterial => key.current_material,
        };
        let wrapping = ImportWrapping {
            spec,
            algorithm,
            wrapped_private: &wrapped_private,
        };
        let mut imported = self
            .root
            .import_material(
                MaterialId {
                    key_id: &key.key_id,
                    version: target_version,
                    label: &key.arn,
                    spec: key.key_spec,
                },
                wrapping,
                &req.encrypted_key_material,
            )
            .await?;
        let material_id = imported_material_id(key.key_id.public(), &imported.fingerprint);
        if let Some(given) = &req.key_material_id {
            if *given != material_id {
                return Err(KmsError::IncorrectKeyMaterial(format!(
                    "The imported key material does not match KeyMaterialId {given}."
                )));
            }
        }
        let existing = materials
            .iter()
            .find(|m| m.material_id.as_deref() == Some(material_id.as_str()));
        let version = match import_type {
            ImportType::NewKeyMaterial => {
                if existing.is_some() {
                    return Err(KmsError::IncorrectKeyMaterial(format!(
                        "This key material is already associated with {}. Import it with \
                         ImportType EXISTING_KEY_MATERIAL.",
                        key.arn
                    )));
                }
                target_version
            }
            ImportType::ExistingKeyMaterial => match existing {
                Some(m) => m.version,
                None => {
                    return Err(KmsError::IncorrectKeyMaterial(format!(
                        "The key material does not match the key material previously imported \
                         into {}.",
                        key.arn
                    )))
                }
            },
        };
        if version != target_version {
            // Re-import of an older (or pending) version: wrap the material for that version.
            imported = self
                .root
                .import_material(
                    MaterialId {
                        key_id: &key.key_id,
                        version,
                        label: &key.arn,
                        spec: key.key_spec,
                    },
                    wrapping,
                    &req.encrypted_key_material,
                )
                .await?;
        }
        let previous = materials.iter().find(|m| m.version == version);
        let description = req.description.or_else(|| {
            previous
                .and_then(|m| m.import.as_ref())
                .and_then(|i| i.description.clone())
        });
        let material = MaterialRecord {
            key_id: key.key_id.clone(),
            version,
            wrapped: imported.wrapped,
            created: previous.map_or(now, |m| m.created),
            rotation_type: previous.and_then(|m| m.rotation_type),
            material_id: Some(material_id.clone()),
            import: Some(ImportInfo {
                state: ImportState::Imported,
                expiration_model: model,
                valid_to: req.valid_to,
                description,
            }),
        };
        let mut updated = key.clone();
        if updated.public_key.is_none() {
            updated.public_key = imported.public_key;
        }
        // The key becomes usable when every permanently associated material is imported.
        let all_imported = materials
            .iter()
            .filter(|m| m.version <= key.current_material && m.version != version)
            .all(|m| {
                m.import
                    .as_ref()
                    .is_some_and(|i| i.state == ImportState::Imported)
            });
        if key.state == KeyState::PendingImport && all_imported && version <= key.current_material {
            updated.state = KeyState::Enabled;
        }
        let updated = self.store.save_material(&updated, &material).await?;
        Ok((updated, material_id))
    }

    /// DeleteImportedKeyMaterial; returns the key and the id of the material deleted.
    pub async fn delete_imported_key_material(
        &self,
        call: &mut Call,
        key_id: &str,
        key_material_id: Option<&str>,
    ) -> KmsResult<(KeyRecord, Option<String>)> {
        let key = self.resolve_authorized(call, key_id, false).await?;
        self.check_import_key(&key, true)?;
        let materials = self.store.list_materials(&key.key_id).await?;
        let target = match key_material_id {
            Some(id) => materials
                .iter()
                .find(|m| m.material_id.as_deref() == Some(id))
                .ok_or_else(|| {
                    KmsError::NotFound(format!(
                        "Key material {id} is not associated with {}.",
                        key.arn
                    ))
                })?,
            None => match materials.iter().find(|m| m.version == key.current_material) {
                Some(m) => m,
                None => return Ok((key, None)),
            },
        };
        let id = target.material_id.clone();
        let imported = target
            .import
            .as_ref()
            .is_some_and(|i| i.state == ImportState::Imported);
        if target.version > key.current_material {
            // Pending rotation: not permanently associated, so it goes entirely.
            let key = self.store.remove_material(&key, target.version).await?;
            return Ok((key, id));
        }
        if !imported {
            // Already deleted (or never imported): no effect.
            return Ok((key, id));
        }
        let key = self.drop_material(key, target.clone()).await?;
        Ok((key, id))
    }

    /// Removes an associated material's blob: PENDING_IMPORT, and the key `PendingImport`
    /// (a key pending deletion keeps its state).
    async fn drop_material(
        &self,
        mut key: KeyRecord,
        mut material: MaterialRecord,
    ) -> KmsResult<KeyRecord> {
        material.wrapped = Vec::new();
        if let Some(i) = material.import.as_mut() {
            i.state = ImportState::PendingImport;
        }
        if material.version <= key.current_material
            && !matches!(
                key.state,
                KeyState::PendingDeletion | KeyState::PendingReplicaDeletion
            )
        {
            key.state = KeyState::PendingImport;
        }
        let key = self.store.save_material(&key, &material).await?;
        self.root.forget(&key.key_id);
        Ok(key)
    }

    /// Expires the imported materials of `key_id` whose `ValidTo` has passed; returns how
    /// many. Audit: `DeleteExpiredKeyMaterial`.
    pub(crate) async fn expire(
        &self,
        key_id: &crate::model::KeyId,
        now: DateTime<Utc>,
    ) -> KmsResult<usize> {
        let mut count = 0;
        for m in self.store.list_materials(key_id).await? {
            let due = m.import.as_ref().is_some_and(|i| {
                i.state == ImportState::Imported && i.valid_to.is_some_and(|v| v <= now)
            });
            if !due {
                continue;
            }
            let Some(key) = self.store.get_key(key_id).await? else {
                return Ok(count);
            };
            let key = self.drop_material(key, m).await?;
            self.audit_service_event("DeleteExpiredKeyMaterial", &key, None);
            tracing::info!(key_arn = %key.arn, "imported key material expired");
            count += 1;
        }
        Ok(count)
    }
}

/// What [`Import::seed_material`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedMaterial {
    /// The key had this material already: nothing changed.
    Unchanged,
    /// The material was imported (first import, or re-import after a deletion or expiry).
    Imported,
    /// The key has (or had) other material: nothing changed.
    Differs,
}

impl Import {
    /// Imports a seed file's material into an `EXTERNAL` key, `KEY_MATERIAL_DOES_NOT_EXPIRE`
    /// (`docs/seeding.md`). The operator's plaintext is wrapped here, host-side, with the
    /// public half of a wrapping key pair the root makes (in the token on the PKCS#11 root),
    /// and then goes through the root's ordinary import path: unwrapped inside the root,
    /// checked against the key spec, re-wrapped under the root. Idempotent: material the key
    /// has (imported) changes nothing; material it had (deleted or expired) is imported again;
    /// any other material is [`SeedMaterial::Differs`]. Material that is not material of the
    /// key spec is [`KmsError::IncorrectKeyMaterial`], as in ImportKeyMaterial.
    pub async fn seed_material(&self, key: &KeyRecord, plain: &[u8]) -> KmsResult<SeedMaterial> {
        if key.origin != Origin::External {
            return Err(KmsError::UnsupportedOperation(format!(
                "{} origin is {} which is not valid for this operation.",
                key.arn, key.origin
            )));
        }
        let spec = WrappingKeySpec::Rsa2048;
        // Modulus 256 bytes: RSAES-OAEP fits 256 - 2 - 2 * hash length bytes.
        let fits = |a: WrappingAlgorithm| {
            a.is_hybrid()
                || a.oaep_hash()
                    .is_some_and(|h| plain.len() + 2 + 2 * h.output_len() <= 256)
        };
        let algorithm = offered_algorithms(key.key_spec)
            .iter()
            .copied()
            .find(|&a| fits(a) && self.root.import_support(key.key_spec, a).is_ok())
            .ok_or_else(|| {
                KmsError::UnsupportedOperation(format!(
                    "This key store cannot import {} key material.",
                    key.key_spec
                ))
            })?;
        let pair = self.root.create_wrapping_key(spec).await?;
        let encrypted = self
            .wrap_for_import(&pair.public_spki, algorithm, plain)
            .await?;
        let wrapping = ImportWrapping {
            spec,
            algorithm,
            wrapped_private: &pair.wrapped_private,
        };
        let materials = self.store.list_materials(&key.key_id).await?;
        let import = |version| {
            self.root.import_material(
                MaterialId {
                    key_id: &key.key_id,
                    version,
                    label: &key.arn,
                    spec: key.key_spec,
                },
                wrapping,
                &encrypted,
            )
        };
        let mut imported = import(key.current_material).await?;
        let material_id = imported_material_id(key.key_id.public(), &imported.fingerprint);
        let ever_imported = materials.iter().any(|m| m.material_id.is_some());
        let previous = materials
            .iter()
            .find(|m| m.material_id.as_deref() == Some(material_id.as_str()));
        let version = match previous {
            Some(m) if m.import.as_ref().map(|i| i.state) == Some(ImportState::Imported) => {
                return Ok(SeedMaterial::Unchanged)
            }
            Some(m) => m.version,
            None if !ever_imported => key.current_material,
            None => return Ok(SeedMaterial::Differs),
        };
        if version != key.current_material {
            imported = import(version).await?;
        }
        let previous = materials.iter().find(|m| m.version == version);
        let material = MaterialRecord {
            key_id: key.key_id.clone(),
            version,
            wrapped: imported.wrapped,
            created: previous.map_or(self.clock.now(), |m| m.created),
            rotation_type: previous.and_then(|m| m.rotation_type),
            material_id: Some(material_id),
            import: Some(ImportInfo {
                state: ImportState::Imported,
                expiration_model: ExpirationModel::KeyMaterialDoesNotExpire,
                valid_to: None,
                description: previous
                    .and_then(|m| m.import.as_ref())
                    .and_then(|i| i.description.clone()),
            }),
        };
        let mut updated = key.clone();
        if updated.public_key.is_none() {
            updated.public_key = imported.public_key;
        }
        let all_imported = materials
            .iter()
            .filter(|m| m.version <= key.current_material && m.version != version)
            .all(|m| {
                m.import
                    .as_ref()
                    .is_some_and(|i| i.state == ImportState::Imported)
            });
        if key.state == KeyState::PendingImport && all_imported && version <= key.current_material {
            updated.state = KeyState::Enabled;
        }
        self.store.save_material(&updated, &material).await?;
        Ok(SeedMaterial::Imported)
    }

    /// Wraps `plain` as a user would for ImportKeyMaterial: RSAES-OAEP under the wrapping
    /// public key, or (hybrid algorithms) RSAES-OAEP of a fresh AES-256 key followed by
    /// RFC 5649 AES key wrap with padding of `plain`.
    async fn wrap_for_import(
        &self,
        public_spki: &[u8],
        algorithm: WrappingAlgorithm,
        plain: &[u8],
    ) -> KmsResult<Vec<u8>> {
        use crate::model::{EncryptionAlgorithm, HashAlg};
        let oaep = match algorithm.oaep_hash() {
            Some(HashAlg::Sha1) => EncryptionAlgorithm::RsaesOaepSha1,
            _ => EncryptionAlgorithm::RsaesOaepSha256,
        };
        let failed = || KmsError::internal_because(super::InternalCause::Invariant("seed wrap"));
        if !algorithm.is_hybrid() {
            return crate::crypto::rsa_oaep_encrypt(public_spki, oaep, plain).map_err(|_| failed());
        }
        use aws_lc_rs::key_wrap::{KeyEncryptionKey, KeyWrapPadded, AES_256};
        let kek = self.root.random(32).await?;
        let mut out =
            crate::crypto::rsa_oaep_encrypt(public_spki, oaep, &kek).map_err(|_| failed())?;
        let mut wrapped = vec![0u8; plain.len() + 16];
        let n = KeyEncryptionKey::new(&AES_256, &kek)
            .map_err(|_| failed())?
            .wrap_with_padding(plain, &mut wrapped)
            .map_err(|_| failed())?
            .len();
        out.extend_from_slice(&wrapped[..n]);
        Ok(out)
    }
}
