//! Multi-Region keys served by one deployment: ReplicateKey, UpdatePrimaryRegion, the related
//! keys of a set (`MultiRegionConfiguration`), and the rules that keep a set's shared
//! properties (material versions, rotation settings, primary region) the same in every row.
//!
//! Storage: each regional key is its own row, keyed `mrk-<hex>/<region>`
//! ([`crate::model::KeyId::in_region`]); its independent properties (description, policy,
//! tags, aliases, grants, state, deletion schedule) live only there. Shared properties are copied into every
//! row: the material versions (the same wrapped bytes: both roots wrap under the public key id,
//! so a copy unwraps in every region), the rotation settings and `mrk_primary_region`. Writes
//! of a shared property go to the primary first and then to each replica; they are not one
//! transaction, so a crash between them leaves a replica behind until the next rotation
//! (a replica behind by a version cannot decrypt the newest ciphertexts; the docs say so).

use chrono::Duration;

use super::keys::Keys;
use super::{Call, KmsError, KmsResult, StateRule};
use crate::model::{ImportState, KeyArn, KeyRecord, KeyState, MaterialRecord, Origin, Tag};

/// What ReplicateKey made.
pub struct Replica {
    pub key: KeyRecord,
    pub policy: String,
    pub tags: Vec<Tag>,
}

/// Validated ReplicateKey input.
pub struct ReplicateRequest {
    pub key_id: String,
    pub replica_region: String,
    pub policy: Option<String>,
    pub bypass_policy_lockout: Option<bool>,
    pub description: Option<String>,
    pub tags: Vec<Tag>,
}

impl super::Core {
    /// Every key of a multi-Region key's set, in the order of the served regions (the key
    /// itself included); a single-Region key alone.
    pub async fn related_keys(&self, key: &KeyRecord) -> KmsResult<Vec<KeyRecord>> {
        if key.mrk_primary_region.is_none() {
            return Ok(vec![key.clone()]);
        }
        let mut out = Vec::new();
        for region in &self.regions {
            if *region == key.region {
                out.push(key.clone());
                continue;
            }
            if let Some(k) = self.store.get_key(&key.key_id.in_region(region)).await? {
                if k.account == key.account {
                    out.push(k);
                }
            }
        }
        Ok(out)
    }

    /// `UnsupportedOperationException` unless `key` is the primary of a multi-Region set.
    fn require_primary(&self, key: &KeyRecord) -> KmsResult<()> {
        match &key.mrk_primary_region {
            None => Err(KmsError::UnsupportedOperation(format!(
                "{} is not a multi-region key.",
                key.arn
            ))),
            Some(p) if *p != key.region => Err(KmsError::UnsupportedOperation(format!(
                "{} is not a multi-region primary key.",
                key.arn
            ))),
            Some(_) => Ok(()),
        }
    }

    /// Rotation settings and on-demand rotation belong to the primary; a replica refuses them
    /// (`UnsupportedOperationException`, wording ours: AWS's is not recorded).
    pub(crate) fn refuse_replica_rotation(&self, key: &KeyRecord) -> KmsResult<()> {
        match &key.mrk_primary_region {
            Some(p) if *p != key.region => Err(KmsError::UnsupportedOperation(format!(
                "{} is a multi-Region replica key. Manage rotation on its primary key in {p}.",
                key.arn
            ))),
            _ => Ok(()),
        }
    }

    fn check_served(&self, region: &str) -> KmsResult<()> {
        if self.regions.iter().any(|r| r == region) {
            Ok(())
        } else {
            Err(KmsError::UnsupportedOperation(format!(
                "Region {region} is not served by this key management service."
            )))
        }
    }

    /// Copies the primary's rotation settings to its replicas (EnableKeyRotation,
    /// DisableKeyRotation, UpdatePrimaryRegion).
    pub(crate) async fn sync_rotation_settings(&self, primary: &KeyRecord) -> KmsResult<()> {
        for mut k in self.related_keys(primary).await? {
            if k.region == primary.region {
                continue;
            }
            k.rotation_enabled = primary.rotation_enabled;
            k.rotation_period_days = primary.rotation_period_days;
            k.next_rotation_date = primary.next_rotation_date;
            self.store.update_key(&k).await?;
        }
        Ok(())
    }

    /// Gives every replica of `primary` the material version the primary just got (rotation).
    pub(crate) async fn sync_new_material(
        &self,
        primary: &KeyRecord,
        material: &MaterialRecord,
    ) -> KmsResult<()> {
        for mut k in self.related_keys(primary).await? {
            if k.region == primary.region || k.current_material >= material.version {
                continue;
            }
            k.current_material = material.version;
            k.rotation_enabled = primary.rotation_enabled;
            k.rotation_period_days = primary.rotation_period_days;
            k.next_rotation_date = primary.next_rotation_date;
            let copy = MaterialRecord {
                key_id: k.key_id.clone(),
                ..material.clone()
            };
            let k = self.store.rotate_key(&k, &copy).await?;
            self.audit_service_event("SynchronizeMultiRegionKey", &k, None);
        }
        Ok(())
    }

    /// After a replica is deleted: a primary waiting in `PendingReplicaDeletion` whose last
    /// replica is gone starts its own waiting period (`PendingDeletion` + `DeletionDate`).
    pub(crate) async fn replica_deleted(&self, replica: &KeyRecord) -> KmsResult<()> {
        let Some(primary_region) = &replica.mrk_primary_region else {
            return Ok(());
        };
        if *primary_region == replica.region {
            return Ok(());
        }
        let id = replica.key_id.in_region(primary_region);
        let Some(mut primary) = self.store.get_key(&id).await? else {
            return Ok(());
        };
        if primary.state != KeyState::PendingReplicaDeletion {
            return Ok(());
        }
        if self.related_keys(&primary).await?.len() > 1 {
            return Ok(());
        }
        let days = primary.pending_window_days.unwrap_or(30);
        primary.state = KeyState::PendingDeletion;
        primary.deletion_date = Some(self.clock.now() + Duration::days(days));
        self.store.update_key(&primary).await?;
        Ok(())
    }
}

impl Keys {
    /// ReplicateKey: a replica of the primary `key_id` in `replica_region`, with the primary's
    /// shared properties and every material version, and its own policy, description and tags.
    pub async fn replicate_key(
        &self,
        call: &mut Call,
        req: ReplicateRequest,
    ) -> KmsResult<Replica> {
        let primary = self.resolve(call, &req.key_id, false).await?;
        self.authorize_key(call, "ReplicateKey", &primary, None, |ctx| {
            ctx.set("kms:ReplicaRegion", req.replica_region.as_str());
        })
        .await?;
        self.require_primary(&primary)?;
        self.check_state(&primary, StateRule::Crypto)?;
        self.check_served(&req.replica_region)?;
        let replica_id = primary.key_id.in_region(&req.replica_region);
        let replica_arn = KeyArn::new(
            &self.partition,
            &req.replica_region,
            &primary.account,
            &replica_id,
        )
        .0;
        if req.replica_region == primary.region || self.store.get_key(&replica_id).await?.is_some()
        {
            return Err(KmsError::AlreadyExists(format!(
                "Replica key {replica_arn} already exists."
            )));
        }
        // The replica region's CreateKey (and TagResource for tags) in the caller's identity
        // policies, as AWS asks there.
        let mut there = call.clone();
        there.region = req.replica_region.clone();
        self.authorize_create(
            &there,
            primary.key_spec,
            primary.key_usage,
            primary.origin,
            true,
            req.bypass_policy_lockout,
            &req.tags,
        )?;
        let policy =
            self.new_key_policy(&there, &replica_arn, req.policy, req.bypass_policy_lockout)?;
        self.check_key_quota(&primary.account, &req.replica_region)
            .await?;
        let created = self
            .make_replica(
                &primary,
                &req.replica_region,
                policy.clone(),
                req.description.unwrap_or_default(),
                &req.tags,
            )
            .await?;
        // The replica region's record of the CreateKey AWS makes there.
        let mut record = there;
        record.resources.clear();
        record.touch(&created);
        let _ = self.audit_call(
            record,
            "CreateKey",
            serde_json::json!({ "multiRegion": true, "keySpec": created.key_spec.as_str() }),
            serde_json::json!({ "keyMetadata": { "keyId": created.key_id.public(), "arn": created.arn } }),
            None,
            false,
        );
        Ok(Replica {
            key: created,
            policy,
            tags: req.tags,
        })
    }

    /// UpdatePrimaryRegion: the replica in `primary_region` becomes the primary of the set.
    pub async fn update_primary_region(
        &self,
        call: &mut Call,
        key_id: &str,
        primary_region: &str,
    ) -> KmsResult<()> {
        let key = self.resolve(call, key_id, false).await?;
        self.authorize_key(call, "UpdatePrimaryRegion", &key, None, |ctx| {
            ctx.set("kms:PrimaryRegion", primary_region);
        })
        .await?;
        self.require_primary(&key)?;
        self.check_served(primary_region)?;
        let target_id = key.key_id.in_region(primary_region);
        let target = match self.store.get_key(&target_id).await? {
            Some(k) if k.account == key.account => self.annotate(k),
            _ => {
                return Err(KmsError::NotFound(format!(
                    "Key '{}' does not exist",
                    KeyArn::new(&self.partition, primary_region, &key.account, &target_id)
                )))
            }
        };
        if target.region == key.region {
            return Ok(());
        }
        // The new primary's policy must allow it too.
        let mut there = call.clone();
        there.region = primary_region.to_string();
        self.authorize_key(&there, "UpdatePrimaryRegion", &target, None, |ctx| {
            ctx.set("kms:PrimaryRegion", primary_region);
        })
        .await?;
        call.touch(&target);
        for k in [&key, &target] {
            if k.effective_state() != KeyState::Enabled {
                self.check_state(k, StateRule::Crypto)?;
                return Err(KmsError::KmsInvalidState(format!(
                    "{} is not enabled.",
                    k.arn
                )));
            }
        }
        for mut k in self.related_keys(&key).await? {
            k.mrk_primary_region = Some(primary_region.to_string());
            self.store.update_key(&k).await?;
        }
        Ok(())
    }
    /// Writes a replica of `primary` in `region`: its row (`Creating` while the material
    /// versions are copied, then `Enabled`) with every material version of the primary up to
    /// its current one. A replica of an imported (`EXTERNAL`) key gets the versions' ids but not
    /// their material, and ends `PendingImport`: as in AWS, the same material must be imported
    /// into each replica (the re-import check against the copied material ids enforces
    /// "the same"). No checks and no authorization: ReplicateKey and the seed file do those.
    /// Returns the key as it was while being created.
    pub(crate) async fn make_replica(
        &self,
        primary: &KeyRecord,
        region: &str,
        policy: String,
        description: String,
        tags: &[Tag],
    ) -> KmsResult<KeyRecord> {
        let replica_id = primary.key_id.in_region(region);
        let replica_arn = KeyArn::new(&self.partition, region, &primary.account, &replica_id).0;
        let mut materials = self.store.list_materials(&primary.key_id).await?;
        // Material imported for a pending rotation stays with the primary.
        materials.retain(|m| m.version <= primary.current_material);
        let Some((first, rest)) = materials.split_first() else {
            return Err(KmsError::internal_because(super::InternalCause::Invariant(
                "a multi-Region primary has no material",
            )));
        };
        let now = self.clock.now();
        let mut replica = KeyRecord {
            key_id: replica_id.clone(),
            region: region.to_string(),
            arn: replica_arn,
            description,
            state: KeyState::Creating,
            creation_date: now,
            deletion_date: None,
            pending_window_days: None,
            policy,
            current_material: first.version,
            row_version: 1,
            unavailable: false,
            ..primary.clone()
        };
        let imported = primary.origin == Origin::External;
        let copy = |m: &MaterialRecord| {
            let mut c = MaterialRecord {
                key_id: replica_id.clone(),
                ..m.clone()
            };
            if imported {
                c.wrapped = Vec::new();
                if let Some(i) = c.import.as_mut() {
                    i.state = ImportState::PendingImport;
                }
            }
            c
        };
        let limit = self.limits.keys_for(&replica.account);
        match self
            .store
            .insert_key(&replica, &copy(first), tags, limit)
            .await
        {
            Err(crate::store::StoreError::AlreadyExists) => {
                return Err(KmsError::AlreadyExists(format!(
                    "Replica key {} already exists.",
                    replica.arn
                )))
            }
            other => other?,
        }
        // Every older version, then the replica is usable: Creating -> Enabled.
        for m in rest {
            replica.current_material = m.version;
            replica = self.store.rotate_key(&replica, &copy(m)).await?;
        }
        let created = replica.clone();
        replica.state = if imported {
            KeyState::PendingImport
        } else {
            KeyState::Enabled
        };
        self.store.update_key(&replica).await?;
        Ok(created)
    }
}
