//! A read-through cache of key rows and of each key's grants in front of another
//! [`MetadataStore`].
//!
//! Key rows are read on every request, and grants on every request that no policy allows;
//! caching them keeps the hot path off the database. Every write of a key or grant goes through
//! this wrapper, which replaces or drops the cached entry, so a single node always reads its
//! own writes. (Several nodes sharing one database need
//! a bounded staleness instead; see `docs/architecture.md`.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use chrono::{DateTime, Utc};

use super::{MetadataStore, StoreResult};
use crate::model::{
    AliasRecord, CustomKeyStoreRecord, GrantRecord, KeyId, KeyRecord, MaterialRecord, Tag,
};

/// Bound on cached rows; the cache is cleared when it is reached.
const MAX_CACHED_KEYS: usize = 100_000;

pub struct CachedStore<S> {
    inner: S,
    keys: RwLock<HashMap<KeyId, Arc<KeyRecord>>>,
    grants: RwLock<HashMap<KeyId, Arc<[GrantRecord]>>>,
    /// Counts grant writes (bumped under the `grants` lock with the entry dropped): a read that
    /// overlapped a write must not cache what it read, or a revoked grant could keep working.
    grant_writes: AtomicU64,
}

impl<S: MetadataStore> CachedStore<S> {
    pub fn new(inner: S) -> Self {
        CachedStore {
            inner,
            keys: RwLock::default(),
            grants: RwLock::default(),
            grant_writes: AtomicU64::new(0),
        }
    }

    fn put(&self, key: &KeyRecord) {
        let mut map = self.keys.write();
        if map.len() >= MAX_CACHED_KEYS {
            map.clear();
        }
        map.insert(key.key_id.clone(), Arc::new(key.clone()));
    }

    fn cached(&self, key_id: &KeyId) -> Option<KeyRecord> {
        self.keys.read().get(key_id).map(|k| KeyRecord::clone(k))
    }

    fn drop_key(&self, id: &KeyId) {
        self.keys.write().remove(id);
        self.drop_grants(id);
    }

    fn drop_grants(&self, id: &KeyId) {
        let mut map = self.grants.write();
        self.grant_writes.fetch_add(1, Ordering::AcqRel);
        map.remove(id);
    }
}

#[async_trait::async_trait]
impl<S: MetadataStore> MetadataStore for CachedStore<S> {
    async fn insert_key(
        &self,
        key: &KeyRecord,
        material: &MaterialRecord,
        tags: &[Tag],
    ) -> StoreResult<()> {
        self.inner.insert_key(key, material, tags).await?;
        self.put(key);
        Ok(())
    }

    async fn get_key(&self, key_id: &KeyId) -> StoreResult<Option<KeyRecord>> {
        if let Some(k) = self.cached(key_id) {
            return Ok(Some(k));
        }
        let found = self.inner.get_key(key_id).await?;
        if let Some(k) = &found {
            self.put(k);
        }
        Ok(found)
    }

    async fn update_key(&self, key: &KeyRecord) -> StoreResult<KeyRecord> {
        match self.inner.update_key(key).await {
            Ok(k) => {
                self.put(&k);
                Ok(k)
            }
            Err(e) => {
                // A conflict means our copy is stale.
                self.drop_key(&key.key_id);
                Err(e)
            }
        }
    }

    async fn rotate_key(
        &self,
        key: &KeyRecord,
        material: &MaterialRecord,
    ) -> StoreResult<KeyRecord> {
        match self.inner.rotate_key(key, material).await {
            Ok(k) => {
                self.put(&k);
                Ok(k)
            }
            Err(e) => {
                self.drop_key(&key.key_id);
                Err(e)
            }
        }
    }

    async fn delete_key(&self, key_id: &KeyId) -> StoreResult<()> {
        let r = self.inner.delete_key(key_id).await;
        self.drop_key(key_id);
        r
    }

    async fn list_keys(
        &self,
        account: &str,
        region: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<KeyRecord>> {
        self.inner.list_keys(account, region, after, limit).await
    }

    async fn keys_due_for_deletion(&self, now: DateTime<Utc>) -> StoreResult<Vec<KeyId>> {
        self.inner.keys_due_for_deletion(now).await
    }

    async fn keys_due_for_rotation(&self, now: DateTime<Utc>) -> StoreResult<Vec<KeyId>> {
        self.inner.keys_due_for_rotation(now).await
    }

    async fn get_material(
        &self,
        key_id: &KeyId,
        version: u32,
    ) -> StoreResult<Option<MaterialRecord>> {
        self.inner.get_material(key_id, version).await
    }

    async fn list_materials(&self, key_id: &KeyId) -> StoreResult<Vec<MaterialRecord>> {
        self.inner.list_materials(key_id).await
    }

    async fn create_alias(&self, alias: &AliasRecord) -> StoreResult<()> {
        self.inner.create_alias(alias).await
    }

    async fn get_alias(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> StoreResult<Option<AliasRecord>> {
        self.inner.get_alias(account, region, name).await
    }

    async fn update_alias(&self, alias: &AliasRecord) -> StoreResult<()> {
        self.inner.update_alias(alias).await
    }

    async fn delete_alias(&self, account: &str, region: &str, name: &str) -> StoreResult<bool> {
        self.inner.delete_alias(account, region, name).await
    }

    async fn list_aliases(
        &self,
        account: &str,
        region: &str,
        key_id: Option<&KeyId>,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<AliasRecord>> {
        self.inner
            .list_aliases(account, region, key_id, after, limit)
            .await
    }

    async fn count_aliases(&self, key_id: &KeyId) -> StoreResult<usize> {
        self.inner.count_aliases(key_id).await
    }

    async fn put_tags(&self, key_id: &KeyId, tags: &[Tag]) -> StoreResult<()> {
        self.inner.put_tags(key_id, tags).await
    }

    async fn remove_tags(&self, key_id: &KeyId, tag_keys: &[String]) -> StoreResult<()> {
        self.inner.remove_tags(key_id, tag_keys).await
    }

    async fn list_tags(&self, key_id: &KeyId) -> StoreResult<Vec<Tag>> {
        self.inner.list_tags(key_id).await
    }

    async fn insert_custom_key_store(&self, store: &CustomKeyStoreRecord) -> StoreResult<()> {
        self.inner.insert_custom_key_store(store).await
    }

    async fn get_custom_key_store(&self, id: &str) -> StoreResult<Option<CustomKeyStoreRecord>> {
        self.inner.get_custom_key_store(id).await
    }

    async fn list_custom_key_stores(
        &self,
        account: &str,
        region: &str,
    ) -> StoreResult<Vec<CustomKeyStoreRecord>> {
        self.inner.list_custom_key_stores(account, region).await
    }

    async fn update_custom_key_store(
        &self,
        store: &CustomKeyStoreRecord,
    ) -> StoreResult<CustomKeyStoreRecord> {
        self.inner.update_custom_key_store(store).await
    }

    async fn delete_custom_key_store(&self, id: &str) -> StoreResult<()> {
        self.inner.delete_custom_key_store(id).await
    }

    async fn all_custom_key_stores(&self) -> StoreResult<Vec<CustomKeyStoreRecord>> {
        self.inner.all_custom_key_stores().await
    }

    async fn count_keys_in_store(&self, store_id: &str) -> StoreResult<usize> {
        self.inner.count_keys_in_store(store_id).await
    }

    async fn find_key_by_xks_id(
        &self,
        store_id: &str,
        xks_key_id: &str,
    ) -> StoreResult<Option<KeyId>> {
        self.inner.find_key_by_xks_id(store_id, xks_key_id).await
    }

    async fn insert_grant(&self, grant: &GrantRecord) -> StoreResult<()> {
        let r = self.inner.insert_grant(grant).await;
        self.drop_grants(&grant.key_id);
        r
    }

    async fn list_grants(&self, key_id: &KeyId) -> StoreResult<Arc<[GrantRecord]>> {
        if let Some(g) = self.grants.read().get(key_id) {
            return Ok(g.clone());
        }
        let writes_before = self.grant_writes.load(Ordering::Acquire);
        let found = self.inner.list_grants(key_id).await?;
        let mut map = self.grants.write();
        // A grant write since the read began may not be in `found`: answer it, don't keep it.
        if self.grant_writes.load(Ordering::Acquire) == writes_before {
            if map.len() >= MAX_CACHED_KEYS {
                map.clear();
            }
            map.insert(key_id.clone(), found.clone());
        }
        Ok(found)
    }

    async fn get_grant(&self, grant_id: &str) -> StoreResult<Option<GrantRecord>> {
        self.inner.get_grant(grant_id).await
    }

    async fn delete_grant(&self, grant_id: &str) -> StoreResult<bool> {
        let grant = self.inner.get_grant(grant_id).await?;
        let r = self.inner.delete_grant(grant_id).await;
        if let Some(g) = grant {
            self.drop_grants(&g.key_id);
        }
        r
    }

    async fn list_retirable_grants(
        &self,
        principal: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<GrantRecord>> {
        self.inner
            .list_retirable_grants(principal, after, limit)
            .await
    }

    async fn get_system_secret(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        self.inner.get_system_secret(name).await
    }

    async fn put_system_secret_if_absent(&self, name: &str, value: &[u8]) -> StoreResult<Vec<u8>> {
        self.inner.put_system_secret_if_absent(name, value).await
    }
}
