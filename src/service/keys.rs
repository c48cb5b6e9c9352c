//! Key lifecycle: CreateKey, listing, Enable/Disable, descriptions, and scheduled deletion.

use chrono::{DateTime, Duration, Utc};

use super::{part, Call, KmsError, KmsResult, StateRule};
use crate::backend::MaterialId;
use crate::model::{KeyId, KeyRecord, KeySpec, KeyState, KeyUsage, MaterialRecord, Origin, Tag};

/// Validated CreateKey input.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub description: String,
    pub key_spec: KeySpec,
    pub key_usage: KeyUsage,
    pub origin: Origin,
    pub policy: Option<String>,
    pub tags: Vec<Tag>,
    pub multi_region: bool,
}

/// Result of ScheduleKeyDeletion.
pub struct Scheduled {
    pub key: KeyRecord,
    pub deletion_date: DateTime<Utc>,
    pub pending_window_days: i64,
}

/// Customer managed keys per account (AWS default quota).
pub const MAX_KEYS_PER_ACCOUNT: usize = 100_000;

part!(
    /// CreateKey (default key store), DescribeKey, ListKeys, EnableKey, DisableKey, UpdateKeyDescription, ScheduleKeyDeletion, CancelKeyDeletion.
    Keys
);

impl Keys {
    pub async fn create_key(&self, call: &mut Call, req: NewKey) -> KmsResult<KeyRecord> {
        if req.key_spec != KeySpec::SymmetricDefault {
            return Err(KmsError::UnsupportedOperation(format!(
                "KeySpec {} is not supported by this key store.",
                req.key_spec
            )));
        }
        if req.key_usage != KeyUsage::EncryptDecrypt {
            return Err(KmsError::Validation(format!(
                "KeyUsage {} is not compatible with KeySpec {}",
                req.key_usage, req.key_spec
            )));
        }
        if req.origin != Origin::AwsKms {
            return Err(KmsError::UnsupportedOperation(format!(
                "Origin {} is not supported by this key store.",
                req.origin
            )));
        }
        if req.multi_region {
            return Err(KmsError::UnsupportedOperation(
                "Multi-Region keys are not supported by this key store.".into(),
            ));
        }
        let account = call.principal.account.clone();
        let policy = match req.policy {
            Some(p) => p,
            None => super::policy::default_policy(&self.partition, &account),
        };
        let key_id = KeyId::generate();
        let arn = crate::model::KeyArn::new(&self.partition, &self.region, &account, &key_id).0;
        let now = self.clock.now();
        let wrapped = self
            .root
            .generate_symmetric(MaterialId {
                key_id: &key_id,
                version: 1,
                label: "",
            })
            .await?;
        let key = KeyRecord {
            key_id: key_id.clone(),
            account,
            region: self.region.clone(),
            arn,
            description: req.description,
            key_spec: req.key_spec,
            key_usage: req.key_usage,
            origin: req.origin,
            state: KeyState::Enabled,
            creation_date: now,
            deletion_date: None,
            pending_window_days: None,
            policy,
            rotation_enabled: false,
            rotation_period_days: None,
            next_rotation_date: None,
            current_material: 1,
            row_version: 1,
            custom_key_store_id: None,
            xks_key_id: None,
            unavailable: false,
        };
        let material = MaterialRecord {
            key_id,
            version: 1,
            wrapped,
            created: now,
            rotation_type: None,
        };
        self.store.insert_key(&key, &material, &req.tags).await?;
        call.touch(&key);
        Ok(key)
    }

    pub async fn describe_key(&self, call: &mut Call, key_id: &str) -> KmsResult<KeyRecord> {
        self.resolve(call, key_id, true).await
    }

    /// One page of the caller's keys; returns the page and whether more follow.
    pub async fn list_keys(
        &self,
        call: &Call,
        marker: Option<&str>,
        limit: usize,
    ) -> KmsResult<(Vec<KeyRecord>, bool)> {
        if let Some(m) = marker {
            if KeyId::parse(m).is_none() {
                return Err(KmsError::InvalidMarker("Invalid marker".into()));
            }
        }
        let mut keys = self
            .store
            .list_keys(&call.principal.account, &self.region, marker, limit + 1)
            .await?;
        let truncated = keys.len() > limit;
        keys.truncate(limit);
        Ok((keys, truncated))
    }

    pub async fn enable_key(&self, call: &mut Call, key_id: &str) -> KmsResult<()> {
        let mut key = self.resolve(call, key_id, false).await?;
        self.check_state(&key, StateRule::EnableDisable)?;
        if key.state == KeyState::Disabled {
            key.state = KeyState::Enabled;
            self.store.update_key(&key).await?;
        }
        Ok(())
    }

    pub async fn disable_key(&self, call: &mut Call, key_id: &str) -> KmsResult<()> {
        let mut key = self.resolve(call, key_id, false).await?;
        self.check_state(&key, StateRule::EnableDisable)?;
        if key.state == KeyState::Enabled {
            key.state = KeyState::Disabled;
            self.store.update_key(&key).await?;
        }
        Ok(())
    }

    pub async fn update_key_description(
        &self,
        call: &mut Call,
        key_id: &str,
        description: String,
    ) -> KmsResult<()> {
        let mut key = self.resolve(call, key_id, false).await?;
        self.check_state(&key, StateRule::NotPendingDeletion)?;
        key.description = description;
        self.store.update_key(&key).await?;
        Ok(())
    }

    pub async fn schedule_key_deletion(
        &self,
        call: &mut Call,
        key_id: &str,
        days: i64,
    ) -> KmsResult<Scheduled> {
        let mut key = self.resolve(call, key_id, false).await?;
        self.check_state(&key, StateRule::Schedule)?;
        let deletion_date = self.clock.now() + Duration::days(days);
        key.state = KeyState::PendingDeletion;
        key.deletion_date = Some(deletion_date);
        key.pending_window_days = Some(days);
        let key = self.store.update_key(&key).await?;
        Ok(Scheduled {
            key,
            deletion_date,
            pending_window_days: days,
        })
    }

    pub async fn cancel_key_deletion(&self, call: &mut Call, key_id: &str) -> KmsResult<KeyRecord> {
        let mut key = self.resolve(call, key_id, false).await?;
        self.check_state(&key, StateRule::Cancel)?;
        key.state = KeyState::Disabled;
        key.deletion_date = None;
        key.pending_window_days = None;
        Ok(self.store.update_key(&key).await?)
    }
}
