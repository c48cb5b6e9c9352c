//! Key material rotation: automatic (a period of 90-2560 days, done by the maintenance task)
//! and on demand. Every rotation adds a material version; old versions stay for decryption.

use chrono::{DateTime, Duration, Utc};

use super::{part, Call, KmsError, KmsResult, StateRule};
use crate::backend::MaterialId;
use crate::model::{
    ImportInfo, ImportState, IncludeKeyMaterial, KeyMaterialState, KeyRecord, KeySpec, KeyState,
    MaterialRecord, Origin, RotationType,
};

pub const DEFAULT_ROTATION_DAYS: i64 = 365;
pub const MIN_ROTATION_DAYS: i64 = 90;
pub const MAX_ROTATION_DAYS: i64 = 2560;
/// On-demand rotations allowed per key (AWS quota: 25, not adjustable; older AWS pages say
/// 10; `reference/import-and-multi-region.md` §3.2).
pub const MAX_ON_DEMAND_ROTATIONS: usize = 25;

/// GetKeyRotationStatus result.
pub struct RotationStatus {
    pub key: KeyRecord,
    pub enabled: bool,
    pub period_days: Option<i64>,
    pub next_rotation: Option<DateTime<Utc>>,
}

/// One entry of ListKeyRotations: a key material.
pub struct RotationEntry {
    pub material_id: Option<String>,
    pub state: KeyMaterialState,
    /// Not for the first material nor for material pending rotation.
    pub rotation_date: Option<DateTime<Utc>>,
    pub rotation_type: Option<RotationType>,
    /// Imported material (EXTERNAL keys).
    pub import: Option<ImportInfo>,
}

part!(
    /// Enable/DisableKeyRotation, GetKeyRotationStatus, RotateKeyOnDemand, ListKeyRotations, and scheduled rotation.
    Rotation
);

impl Rotation {
    fn check_rotatable(&self, key: &KeyRecord) -> KmsResult<()> {
        if key.origin == Origin::External {
            return Err(KmsError::UnsupportedOperation(format!(
                "{} origin is EXTERNAL which is not valid for this operation.",
                key.arn
            )));
        }
        // HMAC and asymmetric keys: AWS answers without a message (recorded for
        // RotateKeyOnDemand; the same for Enable/DisableKeyRotation, reference key-types.md §3).
        if key.key_spec != KeySpec::SymmetricDefault {
            return Err(KmsError::UnsupportedOperation(String::new()));
        }
        // The other origins are custom key stores (key-state footnote [7]).
        if key.origin != Origin::AwsKms || key.custom_key_store_id.is_some() {
            return Err(super::in_custom_key_store(key));
        }
        Ok(())
    }

    pub async fn enable_key_rotation(
        &self,
        call: &mut Call,
        key_id: &str,
        period_days: i64,
    ) -> KmsResult<()> {
        let mut key = self.resolve(call, key_id, false).await?;
        self.authorize_key(call, "EnableKeyRotation", &key, None, |ctx| {
            ctx.set("kms:RotationPeriodInDays", period_days);
        })
        .await?;
        self.check_rotatable(&key)?;
        self.refuse_replica_rotation(&key)?;
        self.check_state(&key, StateRule::Rotation)?;
        key.rotation_enabled = true;
        key.rotation_period_days = Some(period_days);
        key.next_rotation_date = Some(self.clock.now() + Duration::days(period_days));
        let key = self.store.update_key(&key).await?;
        self.sync_rotation_settings(&key).await
    }

    pub async fn disable_key_rotation(&self, call: &mut Call, key_id: &str) -> KmsResult<()> {
        let mut key = self.resolve_authorized(call, key_id, false).await?;
        self.check_rotatable(&key)?;
        self.refuse_replica_rotation(&key)?;
        self.check_state(&key, StateRule::Rotation)?;
        key.rotation_enabled = false;
        key.rotation_period_days = None;
        key.next_rotation_date = None;
        let key = self.store.update_key(&key).await?;
        self.sync_rotation_settings(&key).await
    }

    pub async fn get_key_rotation_status(
        &self,
        call: &mut Call,
        key_id: &str,
    ) -> KmsResult<RotationStatus> {
        let key = self.resolve_authorized(call, key_id, false).await?;
        if key.origin == Origin::External || key.state == KeyState::PendingImport {
            return Err(KmsError::UnsupportedOperation(format!(
                "{} origin is EXTERNAL which is not valid for this operation.",
                key.arn
            )));
        }
        // Both of the reference's tables refuse it for a key in a custom key store, connected
        // or not (key-state footnote [7], the special-features table).
        if key.custom_key_store_id.is_some() {
            return Err(super::in_custom_key_store(&key));
        }
        // While pending deletion rotation is reported as disabled; the setting is kept and
        // comes back on CancelKeyDeletion.
        let enabled = key.rotation_enabled
            && !matches!(
                key.state,
                KeyState::PendingDeletion | KeyState::PendingReplicaDeletion
            );
        Ok(RotationStatus {
            enabled,
            period_days: if enabled {
                key.rotation_period_days
            } else {
                None
            },
            next_rotation: if enabled {
                key.next_rotation_date
            } else {
                None
            },
            key,
        })
    }

    pub async fn rotate_key_on_demand(
        &self,
        call: &mut Call,
        key_id: &str,
    ) -> KmsResult<KeyRecord> {
        let key = self.resolve_authorized(call, key_id, false).await?;
        self.refuse_replica_rotation(&key)?;
        let external = key.origin == Origin::External && key.key_spec == KeySpec::SymmetricDefault;
        if external {
            if key.custom_key_store_id.is_none() && key.state == KeyState::PendingImport {
                return Err(KmsError::KmsInvalidState(format!(
                    "{} is pending import.",
                    key.arn
                )));
            }
            self.check_state(&key, StateRule::Rotation)?;
        } else {
            self.check_rotatable(&key)?;
            self.check_state(&key, StateRule::Rotation)?;
        }
        let materials = self.store.list_materials(&key.key_id).await?;
        let on_demand = materials
            .iter()
            .filter(|m| {
                m.version <= key.current_material && m.rotation_type == Some(RotationType::OnDemand)
            })
            .count();
        if on_demand >= MAX_ON_DEMAND_ROTATIONS {
            // AWS's words (recorded AWS response, docs/errors.md).
            return Err(KmsError::LimitExceeded(format!(
                "The on-demand rotations limit has been reached for the given keyId. No more \
                 on-demand rotations can be performed for this key: {}",
                key.arn
            )));
        }
        if !external {
            return self.rotate(key, RotationType::OnDemand).await;
        }
        // Imported material: the NEW material imported for this rotation becomes current.
        let pending = materials.into_iter().find(|m| {
            m.version > key.current_material
                && m.import
                    .as_ref()
                    .is_some_and(|i| i.state == ImportState::Imported)
        });
        let Some(mut material) = pending else {
            // Without material pending rotation AWS answers as for any imported key (recorded
            // AWS response, docs/errors.md).
            return Err(KmsError::UnsupportedOperation(format!(
                "{} origin is EXTERNAL which is not valid for this operation.",
                key.arn
            )));
        };
        let mut updated = key;
        updated.current_material = material.version;
        material.created = self.clock.now();
        material.rotation_type = Some(RotationType::OnDemand);
        let key = self.store.save_material(&updated, &material).await?;
        self.audit_service_event("RotateKey", &key, None);
        Ok(key)
    }

    /// Adds a new material version and makes it current; a multi-Region primary's replicas
    /// get the same version.
    pub(crate) async fn rotate(
        &self,
        mut key: KeyRecord,
        kind: RotationType,
    ) -> KmsResult<KeyRecord> {
        let version = key.current_material + 1;
        let now = self.clock.now();
        let wrapped = self
            .root
            .generate_symmetric(MaterialId {
                key_id: &key.key_id,
                version,
                label: &key.arn,
                spec: key.key_spec,
            })
            .await?;
        key.current_material = version;
        if kind == RotationType::Automatic {
            if let Some(days) = key.rotation_period_days {
                key.next_rotation_date = Some(now + Duration::days(days));
            }
        }
        let material = MaterialRecord {
            key_id: key.key_id.clone(),
            version,
            wrapped,
            created: now,
            rotation_type: Some(kind),
            material_id: Some(crate::model::random_material_id()),
            import: None,
        };
        let key = self.store.rotate_key(&key, &material).await?;
        self.audit_service_event("RotateKey", &key, None);
        self.sync_new_material(&key, &material).await?;
        Ok(key)
    }

    /// The key materials of a key, oldest first: completed rotations only, or with
    /// `ALL_KEY_MATERIAL` the first material and material pending rotation too; returns the
    /// page and whether more follow.
    pub async fn list_key_rotations(
        &self,
        call: &mut Call,
        key_id: &str,
        include: IncludeKeyMaterial,
        marker: Option<&str>,
        limit: usize,
    ) -> KmsResult<(KeyRecord, Vec<RotationEntry>, bool)> {
        let key = self.resolve_authorized(call, key_id, false).await?;
        if !(key.origin == Origin::External && key.key_spec == KeySpec::SymmetricDefault) {
            self.check_rotatable(&key)?;
        }
        let start: usize = match marker {
            None => 0,
            Some(m) => m
                .parse()
                .map_err(|_| KmsError::InvalidMarker("Invalid marker".into()))?,
        };
        let all: Vec<RotationEntry> = self
            .store
            .list_materials(&key.key_id)
            .await?
            .into_iter()
            .filter(|m| m.material_id.is_some())
            .filter(|m| {
                include == IncludeKeyMaterial::AllKeyMaterial
                    || (m.rotation_type.is_some() && m.version <= key.current_material)
            })
            .map(|m| {
                let state = super::import::material_state(&key, &m);
                let rotated = m.version <= key.current_material;
                RotationEntry {
                    rotation_date: m.rotation_type.filter(|_| rotated).map(|_| m.created),
                    rotation_type: m.rotation_type.filter(|_| rotated),
                    material_id: m.material_id,
                    state,
                    import: m.import,
                }
            })
            .collect();
        let truncated = all.len() > start.saturating_add(limit);
        let page = all.into_iter().skip(start).take(limit).collect();
        Ok((key, page, truncated))
    }
}
