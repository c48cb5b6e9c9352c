//! A read-through cache of key rows and of each key's grants in front of another
//! [`MetadataStore`].
//!
//! Key rows are read on every request, and grants on every request that no policy allows;
//! caching them keeps the hot path off the database. Every write of a key or grant goes through
//! this wrapper, which replaces or drops the cached entry, so a single node always reads its
//! own writes.
//!
//! Several nodes sharing one database ([`CachedStore::shared`]) also drop entries that other
//! nodes changed, told through [`Invalidate`] (the PostgreSQL listener); while that channel is
//! down the cache is *incoherent* and every read goes to the database. A stale entry can never
//! undo a change either way: key writes are conditional on the row version they read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hashlink::LruCache;
use parking_lot::Mutex;

use chrono::{DateTime, Utc};

use std::sync::atomic::AtomicBool;

use super::{Lease, LeaseName, MetadataStore, SameGrant, StoreChange, StoreResult};
use crate::model::{
    AliasRecord, CustomKeyStoreRecord, GrantRecord, KeyId, KeyRecord, MaterialRecord, Tag,
};

/// Both maps are LRU maps of a fixed capacity (`[server] metadata_cache_entries`): at the
/// capacity, caching one more entry evicts the least recently used one. An eviction counts as
/// a drop for the reads in flight (below): otherwise a slow read could cache an older row in
/// the place of a newer one that was evicted meanwhile.
pub struct CachedStore<S> {
    inner: S,
    keys: Mutex<LruCache<KeyId, Arc<KeyRecord>>>,
    grants: Mutex<LruCache<KeyId, Arc<[GrantRecord]>>>,
    /// Counts key rows dropped from the cache (bumped under the `keys` lock): a read that
    /// overlapped a drop (a deletion, a failed conditional update, an eviction) must not cache
    /// what it read.
    key_drops: AtomicU64,
    /// Counts grant writes and evictions (bumped under the `grants` lock with the entry
    /// dropped): a read that overlapped one must not cache what it read, or a revoked grant
    /// could keep working.
    grant_writes: AtomicU64,
    /// Entries evicted for room (both maps; metrics).
    evictions: AtomicU64,
    /// False while changes made elsewhere may go unseen (a shared database whose change
    /// listener is down): nothing is answered from or put into the maps.
    coherent: AtomicBool,
    /// Custom key store changes told by the feed, for the node's store sync (shared stores
    /// only).
    store_changes: Option<tokio::sync::broadcast::Sender<StoreChange>>,
}

/// Custom key store changes queued per subscriber before it counts as lagging (and
/// reconciles every store).
const STORE_CHANGES_QUEUED: usize = 256;

/// What a change feed tells a cache (implemented by [`CachedStore`]; called by the
/// PostgreSQL listener).
pub trait Invalidate: Send + Sync {
    /// A key row changed or went away.
    fn key_changed(&self, key_id: &KeyId);
    /// A grant of the key was added, changed or removed.
    fn grants_changed(&self, key_id: &KeyId);
    /// A custom key store's row changed or went away.
    fn custom_key_store_changed(&self, store_id: &str);
    /// Anything may have changed (a feed (re)started).
    fn invalidate_all(&self);
    /// Whether the feed is up: while it is not, the cache is bypassed.
    fn set_coherent(&self, coherent: bool);
}

impl<S: MetadataStore> CachedStore<S> {
    /// A cache for a store that only this node writes.
    pub fn new(inner: S) -> Self {
        Self::with_capacity(inner, crate::config::DEFAULT_METADATA_CACHE_ENTRIES)
    }

    /// A cache of at most `entries` key rows and `entries` grant lists.
    pub fn with_capacity(inner: S, entries: usize) -> Self {
        let entries = entries.max(1);
        CachedStore {
            inner,
            keys: Mutex::new(LruCache::new(entries)),
            grants: Mutex::new(LruCache::new(entries)),
            key_drops: AtomicU64::new(0),
            grant_writes: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            coherent: AtomicBool::new(true),
            store_changes: None,
        }
    }

    /// A cache for a store other nodes write too: bypassed until a change feed calls
    /// [`Invalidate::set_coherent`].
    pub fn shared(inner: S, entries: usize) -> Self {
        let mut c = Self::with_capacity(inner, entries);
        c.coherent.store(false, Ordering::Release);
        c.store_changes = Some(tokio::sync::broadcast::channel(STORE_CHANGES_QUEUED).0);
        c
    }

    /// Tells the store sync (if a node listens; nobody may).
    fn tell(&self, change: StoreChange) {
        if let Some(tx) = &self.store_changes {
            let _ = tx.send(change);
        }
    }

    /// Key rows and grant lists held now.
    pub fn len(&self) -> (usize, usize) {
        (self.keys.lock().len(), self.grants.lock().len())
    }

    /// Entries evicted for room since start.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Inserts into an LRU map; when that evicts an entry, bumps `counter` (under the map's
    /// lock, as a drop) so that reads in flight do not cache what they read.
    fn insert_counting<V>(
        &self,
        map: &mut LruCache<KeyId, V>,
        counter: &AtomicU64,
        id: KeyId,
        value: V,
    ) {
        if !map.contains_key(&id) && map.len() >= map.capacity() {
            counter.fetch_add(1, Ordering::AcqRel);
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
        map.insert(id, value);
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn coherent(&self) -> bool {
        self.coherent.load(Ordering::Acquire)
    }

    /// Caches a row this wrapper just wrote (never over a newer version: of two concurrent
    /// writes, the later put may carry the older row).
    fn put(&self, key: &KeyRecord) {
        if !self.coherent() {
            return;
        }
        let mut map = self.keys.lock();
        if map
            .peek(&key.key_id)
            .is_some_and(|cached| cached.row_version > key.row_version)
        {
            return;
        }
        self.insert_counting(
            &mut map,
            &self.key_drops,
            key.key_id.clone(),
            Arc::new(key.clone()),
        );
    }

    fn cached(&self, key_id: &KeyId) -> Option<KeyRecord> {
        if !self.coherent() {
            return None;
        }
        self.keys.lock().get(key_id).map(|k| KeyRecord::clone(k))
    }

    /// Caches a row read from the database, unless a drop happened since the read began
    /// (`drops_before`) or the cache already holds a newer version (a write through this
    /// wrapper that finished first): a slow read never brings back an older row.
    fn put_read(&self, key: &KeyRecord, drops_before: u64) {
        let mut map = self.keys.lock();
        if self.key_drops.load(Ordering::Acquire) != drops_before || !self.coherent() {
            return;
        }
        if map
            .peek(&key.key_id)
            .is_some_and(|cached| cached.row_version >= key.row_version)
        {
            return;
        }
        self.insert_counting(
            &mut map,
            &self.key_drops,
            key.key_id.clone(),
            Arc::new(key.clone()),
        );
    }

    fn drop_key(&self, id: &KeyId) {
        let mut map = self.keys.lock();
        self.key_drops.fetch_add(1, Ordering::AcqRel);
        map.remove(id);
        drop(map);
        self.drop_grants(id);
    }

    fn drop_grants(&self, id: &KeyId) {
        let mut map = self.grants.lock();
        self.grant_writes.fetch_add(1, Ordering::AcqRel);
        map.remove(id);
    }
}

impl<S: MetadataStore> Invalidate for CachedStore<S> {
    fn key_changed(&self, key_id: &KeyId) {
        self.drop_key(key_id);
    }

    fn grants_changed(&self, key_id: &KeyId) {
        self.drop_grants(key_id);
    }

    fn custom_key_store_changed(&self, store_id: &str) {
        self.tell(StoreChange::One(store_id.to_string()));
    }

    fn invalidate_all(&self) {
        self.tell(StoreChange::All);
        {
            let mut keys = self.keys.lock();
            self.key_drops.fetch_add(1, Ordering::AcqRel);
            keys.clear();
        }
        let mut grants = self.grants.lock();
        self.grant_writes.fetch_add(1, Ordering::AcqRel);
        grants.clear();
    }

    fn set_coherent(&self, coherent: bool) {
        // Flushed on both edges: entries from before a feed went down, and reads that began
        // while it was down, are never answered once it is back.
        self.coherent.store(coherent, Ordering::Release);
        self.invalidate_all();
    }
}

#[async_trait::async_trait]
impl<S: MetadataStore> MetadataStore for CachedStore<S> {
    async fn insert_key(
        &self,
        key: &KeyRecord,
        material: &MaterialRecord,
        tags: &[Tag],
        limit: usize,
    ) -> StoreResult<()> {
        self.inner.insert_key(key, material, tags, limit).await?;
        self.put(key);
        Ok(())
    }

    async fn get_key(&self, key_id: &KeyId) -> StoreResult<Option<KeyRecord>> {
        if let Some(k) = self.cached(key_id) {
            return Ok(Some(k));
        }
        let drops_before = self.key_drops.load(Ordering::Acquire);
        let found = self.inner.get_key(key_id).await?;
        if let Some(k) = &found {
            self.put_read(k, drops_before);
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

    async fn save_material(
        &self,
        key: &KeyRecord,
        material: &MaterialRecord,
    ) -> StoreResult<KeyRecord> {
        match self.inner.save_material(key, material).await {
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

    async fn remove_material(&self, key: &KeyRecord, version: u32) -> StoreResult<KeyRecord> {
        match self.inner.remove_material(key, version).await {
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

    async fn keys_with_expired_material(&self, now: DateTime<Utc>) -> StoreResult<Vec<KeyId>> {
        self.inner.keys_with_expired_material(now).await
    }

    async fn delete_key(&self, key_id: &KeyId, row_version: i64) -> StoreResult<bool> {
        let r = self.inner.delete_key(key_id, row_version).await;
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

    async fn create_alias(&self, alias: &AliasRecord, limit: usize) -> StoreResult<()> {
        self.inner.create_alias(alias, limit).await
    }

    async fn get_alias(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> StoreResult<Option<AliasRecord>> {
        self.inner.get_alias(account, region, name).await
    }

    async fn update_alias(&self, alias: &AliasRecord, limit: usize) -> StoreResult<()> {
        self.inner.update_alias(alias, limit).await
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

    async fn insert_custom_key_store(
        &self,
        store: &CustomKeyStoreRecord,
        limit: usize,
    ) -> StoreResult<()> {
        self.inner.insert_custom_key_store(store, limit).await
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

    async fn count_keys(&self, account: &str, region: &str) -> StoreResult<usize> {
        self.inner.count_keys(account, region).await
    }

    async fn recount_keys(&self, account: &str, region: &str) -> StoreResult<usize> {
        self.inner.recount_keys(account, region).await
    }

    fn custom_key_store_changes(&self) -> Option<tokio::sync::broadcast::Receiver<StoreChange>> {
        self.store_changes.as_ref().map(|tx| tx.subscribe())
    }

    fn cache_stats(&self) -> Option<super::CacheStats> {
        let (key_rows, grant_lists) = self.len();
        Some(super::CacheStats {
            key_rows,
            grant_lists,
            evictions: self.evictions(),
        })
    }

    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }

    async fn find_key_by_xks_id(
        &self,
        store_id: &str,
        xks_key_id: &str,
    ) -> StoreResult<Option<KeyId>> {
        self.inner.find_key_by_xks_id(store_id, xks_key_id).await
    }

    async fn insert_grant(
        &self,
        grant: &GrantRecord,
        limit: usize,
        same: SameGrant,
    ) -> StoreResult<(GrantRecord, bool)> {
        let r = self.inner.insert_grant(grant, limit, same).await;
        self.drop_grants(&grant.key_id);
        r
    }

    async fn list_grants(&self, key_id: &KeyId) -> StoreResult<Arc<[GrantRecord]>> {
        if !self.coherent() {
            return self.inner.list_grants(key_id).await;
        }
        if let Some(g) = self.grants.lock().get(key_id).cloned() {
            return Ok(g);
        }
        let writes_before = self.grant_writes.load(Ordering::Acquire);
        let found = self.inner.list_grants(key_id).await?;
        let mut map = self.grants.lock();
        // A grant write since the read began may not be in `found`: answer it, don't keep it.
        if self.grant_writes.load(Ordering::Acquire) == writes_before && self.coherent() {
            self.insert_counting(&mut map, &self.grant_writes, key_id.clone(), found.clone());
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

    async fn try_lease(&self, name: LeaseName) -> StoreResult<Option<Lease>> {
        self.inner.try_lease(name).await
    }

    async fn claim_store_connect(&self, store_id: &str, wait: bool) -> StoreResult<Option<Lease>> {
        self.inner.claim_store_connect(store_id, wait).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::{KeySpec, KeyState, KeyUsage, Origin};

    fn row(id: &KeyId, version: i64, state: KeyState) -> KeyRecord {
        KeyRecord {
            key_id: id.clone(),
            account: "111122223333".into(),
            region: "us-east-1".into(),
            arn: format!("arn:aws:kms:us-east-1:111122223333:key/{}", id.as_str()),
            description: String::new(),
            key_spec: KeySpec::SymmetricDefault,
            key_usage: KeyUsage::EncryptDecrypt,
            origin: Origin::AwsKms,
            state,
            creation_date: Utc::now(),
            deletion_date: None,
            pending_window_days: None,
            policy: String::new(),
            rotation_enabled: false,
            rotation_period_days: None,
            next_rotation_date: None,
            current_material: 1,
            row_version: version,
            custom_key_store_id: None,
            xks_key_id: None,
            public_key: None,
            mrk_primary_region: None,
            unavailable: false,
        }
    }

    #[test]
    fn a_slow_read_never_brings_back_an_older_or_deleted_row() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            CachedStore::new(super::super::SqliteStore::open(&dir.path().join("db")).unwrap());
        let id = KeyId::generate();
        // A write put version 3 (disabled) while a read of version 2 (enabled) was in flight.
        store.put(&row(&id, 3, KeyState::Disabled));
        let drops = store.key_drops.load(Ordering::Acquire);
        store.put_read(&row(&id, 2, KeyState::Enabled), drops);
        assert_eq!(store.cached(&id).unwrap().state, KeyState::Disabled);
        // Of two writes, the later put of the older row loses too.
        store.put(&row(&id, 2, KeyState::Enabled));
        assert_eq!(store.cached(&id).unwrap().row_version, 3);
        // A deletion while a read was in flight: the read's row is not cached.
        let drops = store.key_drops.load(Ordering::Acquire);
        store.drop_key(&id);
        store.put_read(&row(&id, 3, KeyState::Disabled), drops);
        assert!(store.cached(&id).is_none());
        // A read with nothing in between is cached.
        let drops = store.key_drops.load(Ordering::Acquire);
        store.put_read(&row(&id, 4, KeyState::Enabled), drops);
        assert_eq!(store.cached(&id).unwrap().row_version, 4);
    }

    #[test]
    fn bounded_lru_and_an_eviction_counts_as_a_drop() {
        let dir = tempfile::tempdir().unwrap();
        let store = CachedStore::with_capacity(
            super::super::SqliteStore::open(&dir.path().join("db")).unwrap(),
            2,
        );
        let ids: Vec<KeyId> = (0..5).map(|_| KeyId::generate()).collect();
        for (i, id) in ids.iter().enumerate() {
            store.put(&row(id, 1, KeyState::Enabled));
            // The first stays the most recently used.
            assert!(store.cached(&ids[0]).is_some(), "after {i}");
        }
        assert_eq!(store.len().0, 2);
        assert_eq!(store.evictions(), 3);
        assert!(store.cached(&ids[4]).is_some());
        assert!(store.cached(&ids[1]).is_none());
        // A write of version 2 is evicted while a read of version 1 is in flight: the read
        // must not bring version 1 back.
        let drops = store.key_drops.load(Ordering::Acquire);
        store.put(&row(&ids[1], 2, KeyState::Disabled));
        store.put(&row(&ids[2], 1, KeyState::Enabled));
        store.put(&row(&ids[3], 1, KeyState::Enabled));
        assert!(store.cached(&ids[1]).is_none());
        store.put_read(&row(&ids[1], 1, KeyState::Enabled), drops);
        assert!(store.cached(&ids[1]).is_none());
    }
}
