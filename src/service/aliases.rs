//! Aliases: independent resources of an account and region that point at one key each.

use super::{part, Call, KmsError, KmsResult, StateRule};
use crate::audit::Resource;
use crate::model::{AliasName, AliasRecord, KeyFamily, KeyId, KeyRecord, KeySpec};
use crate::store::StoreError;

/// Aliases per key (AWS default quota).
pub const MAX_ALIASES_PER_KEY: usize = 50;

part!(
    /// CreateAlias, UpdateAlias, DeleteAlias, ListAliases.
    Aliases
);

impl Aliases {
    /// Validates an alias name the way CreateAlias does (pattern and length are checked by the
    /// API layer; this checks the KMS rules).
    fn check_alias_name(&self, name: &str) -> KmsResult<()> {
        if !name.starts_with("alias/") || name.len() == "alias/".len() {
            return Err(KmsError::Validation(
                "Alias must start with the prefix \"alias/\". Please see \
                 https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html"
                    .into(),
            ));
        }
        if name.starts_with("alias/aws/") {
            return Err(KmsError::InvalidAliasName(
                "Alias names that begin with alias/aws/ are reserved for AWS managed keys.".into(),
            ));
        }
        Ok(())
    }

    fn alias_arn(&self, region: &str, account: &str, name: &str) -> String {
        AliasName(name.to_string()).arn(&self.partition, region, account)
    }

    /// Resolves a `TargetKeyId` (key id or key ARN only) and authorizes the call's operation on
    /// the key (the key-policy half of an alias write).
    async fn target_key(&self, call: &mut Call, target: &str) -> KmsResult<KeyRecord> {
        self.resolve_authorized(call, target, false).await
    }

    /// The identity-policy half of an alias write: the action on the alias ARN.
    fn authorize_alias(&self, call: &Call, name: &str) -> KmsResult<()> {
        let arn = self.alias_arn(self.region_of(call), &call.principal.account, name);
        self.authorize_identity(call, call.operation, Some(&arn), |_| {})
    }

    pub async fn create_alias(&self, call: &mut Call, name: &str, target: &str) -> KmsResult<()> {
        self.check_alias_name(name)?;
        self.authorize_alias(call, name)?;
        let key = self.target_key(call, target).await?;
        self.check_state(&key, StateRule::NotPendingDeletion)?;
        let account = call.principal.account.clone();
        call.resources.insert(
            0,
            alias_resource(
                &account,
                &self.alias_arn(self.region_of(call), &account, name),
            ),
        );
        if self
            .store
            .get_alias(&account, self.region_of(call), name)
            .await?
            .is_some()
        {
            return Err(self.alias_exists(self.region_of(call), &account, name));
        }
        let now = self.clock.now();
        let record = AliasRecord {
            account: account.clone(),
            region: self.region_of(call).to_string(),
            name: name.to_string(),
            target_key_id: key.key_id.clone(),
            creation_date: now,
            last_updated_date: now,
        };
        // The aliases-per-key quota is counted in the store's insert transaction.
        let limit = self.limits.aliases_for(&key.account);
        match self.store.create_alias(&record, limit).await {
            Err(StoreError::AlreadyExists) => {
                Err(self.alias_exists(self.region_of(call), &account, name))
            }
            other => Ok(other?),
        }
    }

    fn alias_exists(&self, region: &str, account: &str, name: &str) -> KmsError {
        KmsError::AlreadyExists(format!(
            "An alias with the name {} already exists",
            self.alias_arn(region, account, name)
        ))
    }

    async fn existing_alias(
        &self,
        region: &str,
        account: &str,
        name: &str,
    ) -> KmsResult<AliasRecord> {
        self.store
            .get_alias(account, region, name)
            .await?
            .ok_or_else(|| {
                KmsError::NotFound(format!(
                    "Alias {} is not found.",
                    self.alias_arn(region, account, name)
                ))
            })
    }

    pub async fn update_alias(&self, call: &mut Call, name: &str, target: &str) -> KmsResult<()> {
        let account = call.principal.account.clone();
        call.resources.push(alias_resource(
            &account,
            &self.alias_arn(self.region_of(call), &account, name),
        ));
        self.authorize_alias(call, name)?;
        let mut alias = self
            .existing_alias(self.region_of(call), &account, name)
            .await?;
        let new_key = self.target_key(call, target).await?;
        let old_key = self
            .get_key_of(&alias.region, &account, &alias.target_key_id)
            .await?;
        call.touch(&old_key);
        // Both keys' policies must allow it (reference §3.3).
        self.authorize_key(call, "UpdateAlias", &old_key, None, |_| {})
            .await?;
        self.check_state(&new_key, StateRule::NotPendingDeletion)?;
        // The same key type (symmetric, asymmetric or HMAC; not the same spec) and the same
        // key usage [003:L1652-1656].
        if key_type(old_key.key_spec) != key_type(new_key.key_spec)
            || old_key.key_usage != new_key.key_usage
        {
            return Err(KmsError::Validation(format!(
                "{} and {} are not the same key type and key usage. An alias can point only to \
                 keys of the same type and usage.",
                old_key.arn, new_key.arn
            )));
        }
        alias.target_key_id = new_key.key_id.clone();
        alias.last_updated_date = self.clock.now();
        // A move to another key needs room there: counted in the store's update transaction.
        let limit = self.limits.aliases_for(&new_key.account);
        self.store.update_alias(&alias, limit).await?;
        Ok(())
    }

    pub async fn delete_alias(&self, call: &mut Call, name: &str) -> KmsResult<()> {
        let account = call.principal.account.clone();
        call.resources.push(alias_resource(
            &account,
            &self.alias_arn(self.region_of(call), &account, name),
        ));
        self.authorize_alias(call, name)?;
        let alias = self
            .existing_alias(self.region_of(call), &account, name)
            .await?;
        if let Ok(key) = self
            .get_key_of(&alias.region, &account, &alias.target_key_id)
            .await
        {
            call.touch(&key);
            self.authorize_key(call, "DeleteAlias", &key, None, |_| {})
                .await?;
        }
        self.store
            .delete_alias(&account, self.region_of(call), name)
            .await?;
        Ok(())
    }

    /// One page of aliases, optionally of one key (key id or key ARN).
    pub async fn list_aliases(
        &self,
        call: &mut Call,
        key_id: Option<&str>,
        marker: Option<&str>,
        limit: usize,
    ) -> KmsResult<(Vec<AliasRecord>, bool)> {
        self.authorize_identity(call, "ListAliases", None, |_| {})?;
        let account = call.principal.account.clone();
        let key: Option<KeyId> = match key_id {
            Some(k) => {
                let key = self.resolve(call, k, false).await?;
                // ListAliases sees only the caller's account.
                if key.account != account {
                    return Err(self.not_here(call));
                }
                Some(key.key_id)
            }
            None => None,
        };
        if let Some(m) = marker {
            if !m.starts_with("alias/") {
                return Err(KmsError::InvalidMarker("Invalid marker".into()));
            }
        }
        let mut page = self
            .store
            .list_aliases(
                &account,
                self.region_of(call),
                key.as_ref(),
                marker,
                limit + 1,
            )
            .await?;
        let truncated = page.len() > limit;
        page.truncate(limit);
        Ok((page, truncated))
    }

    pub fn alias_arn_of(&self, record: &AliasRecord) -> String {
        self.alias_arn(&record.region, &record.account, &record.name)
    }
}

fn alias_resource(account: &str, arn: &str) -> Resource {
    Resource {
        account_id: account.into(),
        kind: "AWS::KMS::Alias".into(),
        arn: arn.into(),
    }
}

/// The key type UpdateAlias compares (not the key spec).
#[derive(PartialEq, Eq)]
enum KeyType {
    Symmetric,
    Hmac,
    Asymmetric,
}

fn key_type(spec: KeySpec) -> KeyType {
    match spec.family() {
        KeyFamily::Symmetric => KeyType::Symmetric,
        KeyFamily::Hmac => KeyType::Hmac,
        _ => KeyType::Asymmetric,
    }
}

/// LimitExceededException for the aliases-per-key quota, in AWS's words (recorded AWS response,
/// docs/errors.md).
pub(crate) fn alias_quota_exceeded(limit: usize, usage: usize) -> KmsError {
    KmsError::LimitExceeded(format!(
        "Aliases per key quota for this account in this region is {limit}, current usage is \
         {usage}."
    ))
}
