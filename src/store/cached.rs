//! A read-through cache of key rows and of each key's grants in front of another
//! [`MetadataStore`].
//!
//! Key rows are read on every request, and grants on every request that no policy allows;
//! caching them keeps the hot path off the database. Beside each key row the cache keeps the
//! row's [`MaterialSummary`] (the material fields of `KeyMetadata`) once it was read or written:
//! every material write bumps the row version in the same transaction, so a summary belongs to
//! one row version and goes with the row whenever the row is replaced or dropped. Every write
//! of a key or grant goes through this wrapper, which replaces or drops the cached entry, so a
//! single node always reads its own writes.
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
    AliasRecord, CustomKeyStoreRecord, GrantRecord, KeyId, KeyRecord, MaterialRecord,
    MaterialSummary, Tag,
};

/// Both maps are LRU maps of a fixed capacity (`[server] metadata_cache_entries`): at the
/// capacity, caching one more entry evicts the least recently used one. An eviction counts as
/// a drop for the reads in flight (below): otherwise a slow read could cache an older row in
/// the place of a newer one that was evicted meanwhile.
pub struct CachedStore<S> {
    inner: S,
    keys: Mutex<LruCache<KeyId, KeyEntry>>,
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
    /// Calls passed on to `inner` (metrics; tests count the reads of a request with it).
    store_calls: AtomicU64,
    /// False while changes made elsewhere may go unseen (a shared database whose change
    /// listener is down): nothing is answered from or put into the maps.
    coherent: AtomicBool,
    /// Custom key store changes told by the feed, for the node's store sync (shared stores
    /// only).
    store_changes: Option<tokio::sync::broadcast::Sender<StoreChange>>,
}

/// A cached key row and, once known, the material summary of that row version; or, for a
/// multi-Region key's id in a region, that no such row exists (the related keys of a
/// multi-Region key are looked up in every served region on each DescribeKey).
#[derive(Clone)]
struct KeyEntry {
    row: Option<Arc<KeyRecord>>,
    summary: Option<Arc<MaterialSummary>>,
}

impl KeyEntry {
    fn new(row: &KeyRecord, summary: Option<MaterialSummary>) -> Self {
        KeyEntry {
            row: Some(Arc::new(row.clone())),
            summary: summary.map(Arc::new),
        }
    }

    /// The version of the cached row (`None`: known absent).
    fn version(&self) -> Option<i64> {
        self.row.as_ref().map(|r| r.row_version)
    }
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
            store_calls: AtomicU64::new(0),
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

    /// The wrapped store, for one call passed on to it (counted).
    fn db(&self) -> &S {
        self.store_calls.fetch_add(1, Ordering::Relaxed);
        &self.inner
    }

    fn coherent(&self) -> bool {
        self.coherent.load(Ordering::Acquire)
    }

    /// Caches a row this wrapper just wrote, with its material summary when the write knows it
    /// (never over a newer version: of two concurrent writes, the later put may carry the older
    /// row).
    fn put(&self, key: &KeyRecord, summary: Option<MaterialSummary>) {
        if !self.coherent() {
            return;
        }
        let mut map = self.keys.lock();
        if map
            .peek(&key.key_id)
            .and_then(KeyEntry::version)
            .is_some_and(|cached| cached > key.row_version)
        {
            return;
        }
        self.insert_counting(
            &mut map,
            &self.key_drops,
            key.key_id.clone(),
            KeyEntry::new(key, summary),
        );
    }

    /// What the cache knows of a key id: its row, or (`Some(None)`) that it has none.
    fn lookup(&self, key_id: &KeyId) -> Option<Option<KeyRecord>> {
        if !self.coherent() {
            return None;
        }
        self.keys
            .lock()
            .get(key_id)
            .map(|e| e.row.as_deref().cloned())
    }

    #[cfg(test)]
    fn cached(&self, key_id: &KeyId) -> Option<KeyRecord> {
        self.lookup(key_id).flatten()
    }

    /// The cached summary of this version of the key's row.
    fn cached_summary(&self, key: &KeyRecord) -> Option<MaterialSummary> {
        if !self.coherent() {
            return None;
        }
        let map = self.keys.lock();
        let entry = map.peek(&key.key_id)?;
        if entry.version() != Some(key.row_version) {
            return None;
        }
        entry.summary.as_deref().cloned()
    }

    /// Keeps a summary read from the database beside the cached row it was read for, if that
    /// row version is still the one cached. The read began after the row was read, so it saw
    /// that version's materials or newer ones; newer ones mean a change this node has not
    /// applied yet, and applying it (the write's own put, or the change feed's drop) replaces
    /// the entry, summary and all.
    fn put_summary(&self, key: &KeyRecord, summary: &MaterialSummary) {
        let mut map = self.keys.lock();
        if !self.coherent() {
            return;
        }
        if let Some(entry) = map.peek_mut(&key.key_id) {
            if entry.version() == Some(key.row_version) {
                entry.summary = Some(Arc::new(summary.clone()));
            }
        }
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
            .and_then(KeyEntry::version)
            .is_some_and(|cached| cached >= key.row_version)
        {
            return;
        }
        self.insert_counting(
            &mut map,
            &self.key_drops,
            key.key_id.clone(),
            KeyEntry::new(key, None),
        );
    }

    /// Remembers that a multi-Region key has no row with this id (its region has no replica),
    /// unless a drop happened since the read began: a replica made meanwhile (its insert is
    /// put here, or told by the change feed as a drop) is never hidden.
    fn put_absent(&self, key_id: &KeyId, drops_before: u64) {
        let mut map = self.keys.lock();
        if self.key_drops.load(Ordering::Acquire) != drops_before
            || !self.coherent()
            || map.contains_key(key_id)
        {
            return;
        }
        let absent = KeyEntry {
            row: None,
            summary: None,
        };
        self.insert_counting(&mut map, &self.key_drops, key_id.clone(), absent);
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
        self.db().insert_key(key, material, tags, limit).await?;
        self.put(key, Some(MaterialSummary::of(key, [material])));
        Ok(())
    }

    async fn get_key(&self, key_id: &KeyId) -> StoreResult<Option<KeyRecord>> {
        if let Some(known) = self.lookup(key_id) {
            return Ok(known);
        }
        let drops_before = self.key_drops.load(Ordering::Acquire);
        let found = self.db().get_key(key_id).await?;
        match &found {
            Some(k) => self.put_read(k, drops_before),
            // Only multi-Region ids, for the related-key lookups of a set: remembering every
            // id a caller makes up would let a stream of them evict the rows in use.
            None if key_id.is_multi_region() => self.put_absent(key_id, drops_before),
            None => {}
        }
        Ok(found)
    }

    async fn update_key(&self, key: &KeyRecord) -> StoreResult<KeyRecord> {
        match self.db().update_key(key).await {
            Ok(k) => {
                self.put(&k, None);
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
        match self.db().rotate_key(key, material).await {
            Ok(k) => {
                self.put(&k, None);
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
        match self.db().save_material(key, material).await {
            Ok(k) => {
                self.put(&k, None);
                Ok(k)
            }
            Err(e) => {
                self.drop_key(&key.key_id);
                Err(e)
            }
        }
    }

    async fn remove_material(&self, key: &KeyRecord, version: u32) -> StoreResult<KeyRecord> {
        match self.db().remove_material(key, version).await {
            Ok(k) => {
                self.put(&k, None);
                Ok(k)
            }
            Err(e) => {
                self.drop_key(&key.key_id);
                Err(e)
            }
        }
    }

    async fn keys_with_expired_material(&self, now: DateTime<Utc>) -> StoreResult<Vec<KeyId>> {
        self.db().keys_with_expired_material(now).await
    }

    async fn delete_key(&self, key_id: &KeyId, row_version: i64) -> StoreResult<bool> {
        let r = self.db().delete_key(key_id, row_version).await;
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
        self.db().list_keys(account, region, after, limit).await
    }

    async fn keys_due_for_deletion(&self, now: DateTime<Utc>) -> StoreResult<Vec<KeyId>> {
        self.db().keys_due_for_deletion(now).await
    }

    async fn keys_due_for_rotation(&self, now: DateTime<Utc>) -> StoreResult<Vec<KeyId>> {
        self.db().keys_due_for_rotation(now).await
    }

    async fn get_material(
        &self,
        key_id: &KeyId,
        version: u32,
    ) -> StoreResult<Option<MaterialRecord>> {
        self.db().get_material(key_id, version).await
    }

    async fn list_materials(&self, key_id: &KeyId) -> StoreResult<Vec<MaterialRecord>> {
        self.db().list_materials(key_id).await
    }

    async fn material_summary(&self, key: &KeyRecord) -> StoreResult<MaterialSummary> {
        if let Some(s) = self.cached_summary(key) {
            return Ok(s);
        }
        let summary = self.db().material_summary(key).await?;
        self.put_summary(key, &summary);
        Ok(summary)
    }

    async fn create_alias(&self, alias: &AliasRecord, limit: usize) -> StoreResult<()> {
        self.db().create_alias(alias, limit).await
    }

    async fn get_alias(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> StoreResult<Option<AliasRecord>> {
        self.db().get_alias(account, region, name).await
    }

    async fn update_alias(&self, alias: &AliasRecord, limit: usize) -> StoreResult<()> {
        self.db().update_alias(alias, limit).await
    }

    async fn delete_alias(&self, account: &str, region: &str, name: &str) -> StoreResult<bool> {
        self.db().delete_alias(account, region, name).await
    }

    async fn list_aliases(
        &self,
        account: &str,
        region: &str,
        key_id: Option<&KeyId>,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<AliasRecord>> {
        self.db()
            .list_aliases(account, region, key_id, after, limit)
            .await
    }

    async fn count_aliases(&self, key_id: &KeyId) -> StoreResult<usize> {
        self.db().count_aliases(key_id).await
    }

    async fn put_tags(&self, key_id: &KeyId, tags: &[Tag]) -> StoreResult<()> {
        self.db().put_tags(key_id, tags).await
    }

    async fn remove_tags(&self, key_id: &KeyId, tag_keys: &[String]) -> StoreResult<()> {
        self.db().remove_tags(key_id, tag_keys).await
    }

    async fn list_tags(&self, key_id: &KeyId) -> StoreResult<Vec<Tag>> {
        self.db().list_tags(key_id).await
    }

    async fn insert_custom_key_store(
        &self,
        store: &CustomKeyStoreRecord,
        limit: usize,
    ) -> StoreResult<()> {
        self.db().insert_custom_key_store(store, limit).await
    }

    async fn get_custom_key_store(&self, id: &str) -> StoreResult<Option<CustomKeyStoreRecord>> {
        self.db().get_custom_key_store(id).await
    }

    async fn list_custom_key_stores(
        &self,
        account: &str,
        region: &str,
    ) -> StoreResult<Vec<CustomKeyStoreRecord>> {
        self.db().list_custom_key_stores(account, region).await
    }

    async fn update_custom_key_store(
        &self,
        store: &CustomKeyStoreRecord,
    ) -> StoreResult<CustomKeyStoreRecord> {
        self.db().update_custom_key_store(store).await
    }

    async fn delete_custom_key_store(&self, id: &str) -> StoreResult<()> {
        self.db().delete_custom_key_store(id).await
    }

    async fn all_custom_key_stores(&self) -> StoreResult<Vec<CustomKeyStoreRecord>> {
        self.db().all_custom_key_stores().await
    }

    async fn count_keys_in_store(&self, store_id: &str) -> StoreResult<usize> {
        self.db().count_keys_in_store(store_id).await
    }

    async fn count_keys(&self, account: &str, region: &str) -> StoreResult<usize> {
        self.db().count_keys(account, region).await
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
            store_calls: self.store_calls.load(Ordering::Relaxed),
        })
    }

    async fn ping(&self) -> StoreResult<()> {
        self.db().ping().await
    }

    async fn find_key_by_xks_id(
        &self,
        store_id: &str,
        xks_key_id: &str,
    ) -> StoreResult<Option<KeyId>> {
        self.db().find_key_by_xks_id(store_id, xks_key_id).await
    }

    async fn insert_grant(
        &self,
        grant: &GrantRecord,
        limit: usize,
        same: SameGrant,
    ) -> StoreResult<(GrantRecord, bool)> {
        let r = self.db().insert_grant(grant, limit, same).await;
        self.drop_grants(&grant.key_id);
        r
    }

    async fn list_grants(&self, key_id: &KeyId) -> StoreResult<Arc<[GrantRecord]>> {
        if !self.coherent() {
            return self.db().list_grants(key_id).await;
        }
        if let Some(g) = self.grants.lock().get(key_id).cloned() {
            return Ok(g);
        }
        let writes_before = self.grant_writes.load(Ordering::Acquire);
        let found = self.db().list_grants(key_id).await?;
        let mut map = self.grants.lock();
        // A grant write since the read began may not be in `found`: answer it, don't keep it.
        if self.grant_writes.load(Ordering::Acquire) == writes_before && self.coherent() {
            self.insert_counting(&mut map, &self.grant_writes, key_id.clone(), found.clone());
        }
        Ok(found)
    }

    async fn get_grant(&self, grant_id: &str) -> StoreResult<Option<GrantRecord>> {
        self.db().get_grant(grant_id).await
    }

    async fn delete_grant(&self, grant_id: &str) -> StoreResult<bool> {
        let grant = self.db().get_grant(grant_id).await?;
        let r = self.db().delete_grant(grant_id).await;
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
        self.db()
            .list_retirable_grants(principal, after, limit)
            .await
    }

    async fn get_system_secret(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        self.db().get_system_secret(name).await
    }

    async fn put_system_secret_if_absent(&self, name: &str, value: &[u8]) -> StoreResult<Vec<u8>> {
        self.db().put_system_secret_if_absent(name, value).await
    }

    async fn try_lease(&self, name: LeaseName) -> StoreResult<Option<Lease>> {
        self.db().try_lease(name).await
    }

    async fn claim_store_connect(&self, store_id: &str, wait: bool) -> StoreResult<Option<Lease>> {
        self.db().claim_store_connect(store_id, wait).await
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
        store.put(&row(&id, 3, KeyState::Disabled), None);
        let drops = store.key_drops.load(Ordering::Acquire);
        store.put_read(&row(&id, 2, KeyState::Enabled), drops);
        assert_eq!(store.cached(&id).unwrap().state, KeyState::Disabled);
        // Of two writes, the later put of the older row loses too.
        store.put(&row(&id, 2, KeyState::Enabled), None);
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

    #[tokio::test]
    async fn a_material_summary_is_kept_for_its_row_version_only() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            CachedStore::new(super::super::SqliteStore::open(&dir.path().join("db")).unwrap());
        let id = KeyId::generate();
        let summary = |m: &str| MaterialSummary {
            current_material_id: Some(m.into()),
            ..MaterialSummary::default()
        };
        let v1 = row(&id, 1, KeyState::Enabled);
        store.put(&v1, Some(summary("one")));
        let calls = store.store_calls.load(Ordering::Relaxed);
        assert_eq!(store.material_summary(&v1).await.unwrap(), summary("one"));
        assert_eq!(store.store_calls.load(Ordering::Relaxed), calls);
        // A new row version (a write through this wrapper) comes without one ...
        let v2 = row(&id, 2, KeyState::Enabled);
        store.put(&v2, None);
        assert!(store.cached_summary(&v2).is_none());
        assert!(store.cached_summary(&v1).is_none());
        // ... and a summary read for the older version is not kept beside the newer row.
        store.put_summary(&v1, &summary("one"));
        assert!(store.cached_summary(&v2).is_none());
        store.put_summary(&v2, &summary("two"));
        assert_eq!(store.cached_summary(&v2).unwrap(), summary("two"));
        // A drop (a change told by the feed) takes the summary with the row.
        store.key_changed(&id);
        assert!(store.cached_summary(&v2).is_none());
        store.put_summary(&v2, &summary("two"));
        assert!(store.cached_summary(&v2).is_none());
        // While incoherent, nothing is answered from the cache.
        store.put(&v2, Some(summary("two")));
        store.set_coherent(false);
        assert!(store.cached_summary(&v2).is_none());
    }

    #[tokio::test]
    async fn a_missing_multi_region_row_is_remembered_until_a_write_or_a_drop() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            CachedStore::new(super::super::SqliteStore::open(&dir.path().join("db")).unwrap());
        let calls = || store.store_calls.load(Ordering::Relaxed);
        let mrk = KeyId::from_storage("mrk-0123456789abcdef0123456789abcdef/us-west-2").unwrap();
        assert!(store.get_key(&mrk).await.unwrap().is_none());
        let before = calls();
        assert!(store.get_key(&mrk).await.unwrap().is_none());
        assert_eq!(calls(), before, "the absence is cached");
        // A replica written through this wrapper replaces the absence ...
        store.put(&row(&mrk, 1, KeyState::Enabled), None);
        assert_eq!(store.get_key(&mrk).await.unwrap().unwrap().row_version, 1);
        // ... and one told by the change feed drops it.
        store.drop_key(&mrk);
        assert!(store.get_key(&mrk).await.unwrap().is_none());
        store.key_changed(&mrk);
        let before = calls();
        assert!(store.get_key(&mrk).await.unwrap().is_none());
        assert_eq!(calls(), before + 1);
        // A read that overlapped a drop does not remember the absence.
        store.key_changed(&mrk);
        let drops = store.key_drops.load(Ordering::Acquire);
        store.drop_key(&KeyId::generate());
        store.put_absent(&mrk, drops);
        assert!(store.lookup(&mrk).is_none());
        // Single-Region ids that do not exist are not remembered.
        let id = KeyId::generate();
        assert!(store.get_key(&id).await.unwrap().is_none());
        assert!(store.lookup(&id).is_none());
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
            store.put(&row(id, 1, KeyState::Enabled), None);
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
        store.put(&row(&ids[1], 2, KeyState::Disabled), None);
        store.put(&row(&ids[2], 1, KeyState::Enabled), None);
        store.put(&row(&ids[3], 1, KeyState::Enabled), None);
        assert!(store.cached(&ids[1]).is_none());
        store.put_read(&row(&ids[1], 1, KeyState::Enabled), drops);
        assert!(store.cached(&ids[1]).is_none());
    }
}
