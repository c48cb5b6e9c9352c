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
    /// `BypassPolicyLockoutSafetyCheck`, as sent.
    pub bypass_policy_lockout: Option<bool>,
    pub tags: Vec<Tag>,
    pub multi_region: bool,
}

/// Result of ScheduleKeyDeletion.
pub struct Scheduled {
    pub key: KeyRecord,
    /// `None` for a multi-Region primary waiting for its replicas.
    pub deletion_date: Option<DateTime<Utc>>,
    pub pending_window_days: i64,
}

/// The CreateKey rules of a spec and usage (reference key-types.md §1.1), checked before
/// authorization like any validation: `KeyUsage` is mandatory for every spec but
/// `SYMMETRIC_DEFAULT` (`usage` is `None` when the request has none), the usage must be one
/// the spec allows, and `SM2` exists only in the China Regions (`cn-*`); elsewhere AWS answers
/// UnsupportedOperationException `KeySpec SM2 is not supported in this Region`. Returns the
/// usage the key gets.
pub fn check_spec_usage(
    region: &str,
    spec: KeySpec,
    usage: Option<KeyUsage>,
) -> KmsResult<KeyUsage> {
    let usage = match usage {
        Some(u) => u,
        None if spec == KeySpec::SymmetricDefault => KeyUsage::EncryptDecrypt,
        None => {
            return Err(KmsError::Validation(
                "You must specify a KeyUsage value for all KMS keys except for symmetric \
                 encryption keys."
                    .into(),
            ))
        }
    };
    if !spec.allowed_usages().contains(&usage) {
        return Err(KmsError::Validation(format!(
            "KeyUsage {usage} is not compatible with KeySpec {spec}"
        )));
    }
    if spec == KeySpec::Sm2 && !region.starts_with("cn-") {
        return Err(KmsError::UnsupportedOperation(
            "KeySpec SM2 is not supported in this Region".into(),
        ));
    }
    Ok(usage)
}

/// Customer managed keys per account and region (AWS default quota; `[limits]
/// keys_per_account` changes it).
pub const MAX_KEYS_PER_ACCOUNT: usize = 100_000;

impl super::Core {
    /// The key quota of the calling account in this region, read before a key of any key
    /// store is made so that a refused request costs no key generation (HSM, proxy). It reads
    /// the store's kept count (one row), and counts the keys anew before it refuses; the limit
    /// itself is enforced by
    /// [`MetadataStore::insert_key`](crate::store::MetadataStore::insert_key), atomically, so
    /// concurrent creates that all pass this read still never exceed it. Every key counts,
    /// PendingDeletion included, until it is deleted (AWS: "any spec or state").
    pub(crate) async fn check_key_quota(&self, account: &str, region: &str) -> KmsResult<()> {
        let limit = self.limits.keys_for(account);
        let usage = self.store.count_keys(account, region).await?;
        if usage < limit {
            return Ok(());
        }
        // Refused by the kept count: counted anew first, so a count left too high by key rows
        // deleted outside kms heals instead of refusing below the quota.
        let usage = self.store.recount_keys(account, region).await?;
        if usage >= limit {
            return Err(key_quota_exceeded(limit, usage));
        }
        Ok(())
    }
}

/// LimitExceededException for the key quota, in AWS's words (a recorded response:
/// convox/rack#347, 2016).
pub(crate) fn key_quota_exceeded(limit: usize, usage: usize) -> KmsError {
    KmsError::LimitExceeded(format!(
        "Key quota for this account in this region is {limit} but the current usage is {usage}."
    ))
}

part!(
    /// CreateKey (default key store), DescribeKey, ListKeys, EnableKey, DisableKey, UpdateKeyDescription, ScheduleKeyDeletion, CancelKeyDeletion.
    Keys
);

impl Keys {
    /// Authorizes CreateKey (identity policies only, resource `*`) with its condition keys, and
    /// `kms:TagResource` too when the request has tags. Every key store's CreateKey asks this
    /// first.
    #[allow(clippy::too_many_arguments)]
    pub fn authorize_create(
        &self,
        call: &Call,
        spec: KeySpec,
        usage: KeyUsage,
        origin: Origin,
        multi_region: bool,
        bypass_policy_lockout: Option<bool>,
        tags: &[Tag],
    ) -> KmsResult<()> {
        let (spec, usage, origin) = (spec.to_string(), usage.to_string(), origin.to_string());
        let tag_keys = || super::authz::strings(tags.iter().map(|t| t.key.as_str()));
        let request_tags = |ctx: &mut kms_policy::RequestContext| {
            for t in tags {
                ctx.set(&format!("aws:RequestTag/{}", t.key), t.value.as_str());
            }
            if !tags.is_empty() {
                ctx.set_multi("aws:TagKeys", tag_keys());
            }
        };
        self.authorize_identity(call, "CreateKey", None, |ctx| {
            ctx.set("kms:KeySpec", spec.as_str())
                .set("kms:CustomerMasterKeySpec", spec.as_str())
                .set("kms:KeyUsage", usage.as_str())
                .set("kms:CustomerMasterKeyUsage", usage.as_str())
                .set("kms:KeyOrigin", origin.as_str())
                .set("kms:MultiRegion", multi_region);
            if let Some(b) = bypass_policy_lockout {
                ctx.set("kms:BypassPolicyLockoutSafetyCheck", b);
            }
            request_tags(ctx);
        })?;
        if !tags.is_empty() {
            self.authorize_identity(call, "TagResource", None, request_tags)
                .map_err(|e| match e {
                    KmsError::AccessDenied(_) => KmsError::AccessDenied(
                        kms_policy::messages::tag_resource_on_create_key(&call.principal.arn),
                    ),
                    other => other,
                })?;
        }
        Ok(())
    }

    pub async fn create_key(&self, call: &mut Call, req: NewKey) -> KmsResult<KeyRecord> {
        check_spec_usage(self.region_of(call), req.key_spec, Some(req.key_usage))?;
        if req.origin == Origin::External && !super::import::importable(req.key_spec) {
            return Err(KmsError::UnsupportedOperation(format!(
                "KeySpec {} does not support Origin EXTERNAL: key material of this spec cannot \
                 be imported.",
                req.key_spec
            )));
        }
        if !matches!(req.origin, Origin::AwsKms | Origin::External) {
            return Err(KmsError::UnsupportedOperation(format!(
                "Origin {} is not supported by this key store.",
                req.origin
            )));
        }
        let region = self.region_of(call).to_string();
        // A multi-Region key is created as the primary of its set, in the call's region.
        let key_id = if req.multi_region {
            KeyId::generate_multi_region().in_region(&region)
        } else {
            KeyId::generate()
        };
        self.create_key_with_id(call, key_id, req).await
    }

    /// CreateKey's work once the id is chosen (a fresh one, or a seed file's): policy, quota,
    /// material, the row. The key is made in the call's region for the call's account.
    pub(crate) async fn create_key_with_id(
        &self,
        call: &mut Call,
        key_id: KeyId,
        req: NewKey,
    ) -> KmsResult<KeyRecord> {
        let account = call.principal.account.clone();
        let region = self.region_of(call).to_string();
        let arn = crate::model::KeyArn::new(&self.partition, &region, &account, &key_id).0;
        let policy = self.new_key_policy(call, &arn, req.policy, req.bypass_policy_lockout)?;
        self.check_key_quota(&account, &region).await?;
        let now = self.clock.now();
        let external = req.origin == Origin::External;
        let (wrapped, public_key) = if external {
            // No material until ImportKeyMaterial: version 1 is a placeholder without an id.
            (Vec::new(), None)
        } else if req.key_spec == KeySpec::SymmetricDefault {
            let wrapped = self
                .root
                .generate_symmetric(MaterialId {
                    key_id: &key_id,
                    version: 1,
                    label: "",
                    spec: KeySpec::SymmetricDefault,
                })
                .await?;
            (wrapped, None)
        } else {
            // A spec the root cannot hold (ML-DSA on the PKCS#11 root) answers
            // `BackendError::Unsupported`: UnsupportedOperationException with its message.
            let generated = self
                .root
                .generate(MaterialId {
                    key_id: &key_id,
                    version: 1,
                    label: &arn,
                    spec: req.key_spec,
                })
                .await?;
            (generated.wrapped, generated.public_key)
        };
        let key = KeyRecord {
            key_id: key_id.clone(),
            account,
            region: region.clone(),
            arn,
            description: req.description,
            key_spec: req.key_spec,
            key_usage: req.key_usage,
            origin: req.origin,
            state: if external {
                KeyState::PendingImport
            } else {
                KeyState::Enabled
            },
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
            public_key,
            mrk_primary_region: req.multi_region.then_some(region),
            unavailable: false,
        };
        let material = MaterialRecord {
            key_id,
            version: 1,
            wrapped,
            created: now,
            rotation_type: None,
            material_id: (!external).then(crate::model::random_material_id),
            import: None,
        };
        let limit = self.limits.keys_for(&key.account);
        self.store
            .insert_key(&key, &material, &req.tags, limit)
            .await?;
        call.touch(&key);
        Ok(key)
    }

    pub async fn describe_key(&self, call: &mut Call, key_id: &str) -> KmsResult<KeyRecord> {
        self.resolve_authorized(call, key_id, true).await
    }

    /// One page of the caller's keys; returns the page and whether more follow.
    pub async fn list_keys(
        &self,
        call: &Call,
        marker: Option<&str>,
        limit: usize,
    ) -> KmsResult<(Vec<KeyRecord>, bool)> {
        self.authorize_identity(call, "ListKeys", None, |_| {})?;
        if let Some(m) = marker {
            if KeyId::from_storage(m).is_none() {
                return Err(KmsError::InvalidMarker("Invalid marker".into()));
            }
        }
        let mut keys = self
            .store
            .list_keys(
                &call.principal.account,
                self.region_of(call),
                marker,
                limit + 1,
            )
            .await?;
        let truncated = keys.len() > limit;
        keys.truncate(limit);
        Ok((keys, truncated))
    }

    pub async fn enable_key(&self, call: &mut Call, key_id: &str) -> KmsResult<()> {
        let mut key = self.resolve_authorized(call, key_id, false).await?;
        self.check_state(&key, StateRule::EnableDisable)?;
        if key.state == KeyState::Disabled {
            key.state = KeyState::Enabled;
            self.store.update_key(&key).await?;
        }
        Ok(())
    }

    pub async fn disable_key(&self, call: &mut Call, key_id: &str) -> KmsResult<()> {
        let mut key = self.resolve_authorized(call, key_id, false).await?;
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
        let mut key = self.resolve_authorized(call, key_id, false).await?;
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
        self.authorize_key(call, "ScheduleKeyDeletion", &key, None, |ctx| {
            ctx.set("kms:ScheduleKeyDeletionPendingWindowInDays", days);
        })
        .await?;
        self.check_state(&key, StateRule::Schedule)?;
        // A multi-Region primary with replicas waits for them (PendingReplicaDeletion, no
        // date); its window starts when the last replica is deleted.
        let waits = key.mrk_primary_region.as_deref() == Some(key.region.as_str())
            && self.related_keys(&key).await?.len() > 1;
        let deletion_date = (!waits).then(|| self.clock.now() + Duration::days(days));
        key.state = if waits {
            KeyState::PendingReplicaDeletion
        } else {
            KeyState::PendingDeletion
        };
        key.deletion_date = deletion_date;
        key.pending_window_days = Some(days);
        let key = self.store.update_key(&key).await?;
        Ok(Scheduled {
            key,
            deletion_date,
            pending_window_days: days,
        })
    }

    pub async fn cancel_key_deletion(&self, call: &mut Call, key_id: &str) -> KmsResult<KeyRecord> {
        let mut key = self.resolve_authorized(call, key_id, false).await?;
        self.check_state(&key, StateRule::Cancel)?;
        // An imported key without material (never imported, or deleted or expired while
        // pending deletion) comes back PendingImport: enabling it would leave nothing to use.
        let without_material = key.origin == Origin::External
            && !self
                .store
                .get_material(&key.key_id, key.current_material)
                .await?
                .and_then(|m| m.import)
                .is_some_and(|i| i.state == crate::model::ImportState::Imported);
        key.state = if without_material {
            KeyState::PendingImport
        } else {
            KeyState::Disabled
        };
        key.deletion_date = None;
        key.pending_window_days = None;
        Ok(self.store.update_key(&key).await?)
    }
}
