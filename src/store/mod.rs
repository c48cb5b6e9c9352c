//! Metadata persistence: keys, wrapped key material versions, aliases and tags.
//!
//! The service talks to a [`MetadataStore`] trait object only. This module owns durability
//! (a successful write is on disk before it returns) and optimistic concurrency (every key row
//! carries a `row_version`; an update names the version it read and fails with
//! [`StoreError::Conflict`] when another writer got there first). It never sees plaintext key
//! material: material arrives here already wrapped by the root backend.
//!
//! Two implementations: [`SqliteStore`] (the embedded default, one node) and [`PgStore`]
//! (PostgreSQL, several nodes on one database). Both carry versioned schema migrations, applied
//! under a database lock ([`migrate`], `kms migrate`, and at start-up unless disabled), and
//! refuse a schema newer than this binary knows. [`open`] puts the chosen one behind a
//! [`CachedStore`]; on PostgreSQL a listener keeps that cache coherent with the other nodes.

mod cached;
mod postgres;
mod sqlite;

pub use cached::{CachedStore, Invalidate};
pub use postgres::PgStore;
pub use sqlite::{BackupReport, SqliteStore};

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::config::StoreConfig;

use crate::model::{
    AliasRecord, CustomKeyStoreRecord, GrantRecord, KeyId, KeyRecord, MaterialRecord,
    MaterialSummary, SummaryInput, Tag,
};

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row changed since it was read (optimistic concurrency).
    #[error("concurrent modification")]
    Conflict,
    /// A uniqueness constraint (alias name) was violated.
    #[error("already exists")]
    AlreadyExists,
    /// A custom key store write refused by the unique (account, region, name): another store
    /// of the account in the region has the name.
    #[error("custom key store name in use")]
    CustomKeyStoreNameInUse { name: String },
    /// A custom key store write refused by the unique cluster: another store, of any account
    /// or region, is on the cluster (one store per cluster: two would rotate each other's
    /// crypto user PIN).
    #[error("cluster {cluster_id} in use")]
    ClusterInUse { cluster_id: String },
    /// [`MetadataStore::insert_key`] refused the key: the account already has `limit` keys
    /// (`usage`, read in the refusing transaction) in the key's region.
    #[error("key quota {limit} reached (usage {usage})")]
    KeyQuota { limit: usize, usage: usize },
    /// [`MetadataStore::create_alias`] or [`MetadataStore::update_alias`] refused: the target
    /// key already has `limit` aliases (`usage`, counted in the refusing transaction).
    #[error("alias quota {limit} reached (usage {usage})")]
    AliasQuota { limit: usize, usage: usize },
    /// [`MetadataStore::insert_grant`] refused: the key already has `limit` grants (`usage`,
    /// counted in the refusing transaction).
    #[error("grant quota {limit} reached (usage {usage})")]
    GrantQuota { limit: usize, usage: usize },
    /// [`MetadataStore::insert_custom_key_store`] refused: the account already has `limit`
    /// custom key stores in the region (`usage`, counted in the refusing transaction).
    #[error("custom key store quota {limit} reached (usage {usage})")]
    CustomKeyStoreQuota { limit: usize, usage: usize },
    /// The database failed.
    #[error("database error: {0}")]
    Database(String),
    /// A stored row could not be decoded.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database cannot be reached right now (connection refused or lost, pool wait
    /// timed out, server shutting down); the request can be retried.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database's schema is newer than this binary knows: an upgraded node migrated it.
    #[error(
        "the database schema is at version {found}, newer than this kms binary knows \
         ({known}); run a kms version that knows it"
    )]
    SchemaTooNew { found: i64, known: i64 },
    /// The database's schema is older than this binary needs and migrating at start-up is off.
    #[error(
        "the database schema is at version {found}, this kms binary needs {known}: run \
         `kms migrate` (or set store.auto_migrate = true)"
    )]
    SchemaBehind { found: i64, known: i64 },
}

/// What a migration run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// Schema version found.
    pub from: i64,
    /// Schema version left (the latest this binary knows).
    pub to: i64,
}

/// Whether opening a store may migrate its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrateOnOpen {
    /// Apply pending migrations (under the database lock).
    Apply,
    /// Refuse to open a schema older than this binary needs.
    Refuse,
}

/// A change of custom key stores told by a shared store's change feed
/// ([`MetadataStore::custom_key_store_changes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChange {
    /// This store's row changed or went away.
    One(String),
    /// Any store may have changed (the feed (re)started).
    All,
}

/// Cluster-wide background work that at most one node does at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseName {
    /// The maintenance pass (deletions, rotations, proxy health checks).
    Maintenance,
    /// The XKS proxy health checks: kept across maintenance passes by one node, the checker,
    /// so each proxy is checked once per interval however many nodes run passes.
    XksHealth,
}

/// What a lease holds: nothing (one node), or the database session that holds the lock.
pub(crate) trait LeaseHold: Send + Sync {
    /// False once the hold is lost (its database session closed).
    fn alive(&self) -> bool {
        true
    }
}

impl LeaseHold for () {}

/// Held while this node does the leased work; dropping it lets another node take it. A node
/// that dies loses its lease with its database session.
pub struct Lease {
    hold: Box<dyn LeaseHold>,
}

impl Lease {
    /// A lease that holds nothing (a store only one node uses).
    pub fn local() -> Self {
        Lease { hold: Box::new(()) }
    }

    pub(crate) fn holding(hold: impl LeaseHold + 'static) -> Self {
        Lease {
            hold: Box::new(hold),
        }
    }

    /// Whether the lease still holds (a lease kept across passes checks this first).
    pub fn alive(&self) -> bool {
        self.hold.alive()
    }
}

/// What the metadata cache holds ([`MetadataStore::cache_stats`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct CacheStats {
    /// Key rows held (with the ids of multi-Region keys known to have no row in a region).
    pub key_rows: usize,
    pub grant_lists: usize,
    /// Entries evicted for room since start.
    pub evictions: u64,
    /// Calls passed on to the wrapped store since start: every read the cache did not answer,
    /// and every write.
    pub store_calls: u64,
}

/// Decides whether an existing grant is the one a named CreateGrant would make again
/// ([`MetadataStore::insert_grant`]).
pub type SameGrant = fn(&GrantRecord, &GrantRecord) -> bool;

/// Opens the configured store behind a [`CachedStore`], migrating or checking its schema.
/// On PostgreSQL, also starts the listener that keeps the cache coherent with other nodes
/// (it runs on the current tokio runtime until the store is dropped).
pub async fn open(config: &StoreConfig) -> StoreResult<Arc<dyn MetadataStore>> {
    open_with_cache(config, crate::config::DEFAULT_METADATA_CACHE_ENTRIES).await
}

/// [`open`] with a metadata cache of `cache_entries` key rows (and grant lists).
pub async fn open_with_cache(
    config: &StoreConfig,
    cache_entries: usize,
) -> StoreResult<Arc<dyn MetadataStore>> {
    match config {
        StoreConfig::Sqlite { path, auto_migrate } => {
            let (path, mode) = (path.clone(), migrate_mode(*auto_migrate));
            let store = tokio::task::spawn_blocking(move || SqliteStore::open_with(&path, mode))
                .await
                .map_err(|e| StoreError::Database(format!("store task: {e}")))??;
            Ok(Arc::new(CachedStore::with_capacity(store, cache_entries)))
        }
        StoreConfig::Postgres(pg) => {
            let store = PgStore::connect(pg).await?;
            store.prepare_schema(migrate_mode(pg.auto_migrate)).await?;
            let cached = Arc::new(CachedStore::shared(store, cache_entries));
            let weak: std::sync::Weak<dyn Invalidate> =
                Arc::downgrade(&cached) as std::sync::Weak<dyn Invalidate>;
            postgres::spawn_listener(pg.clone(), weak);
            Ok(cached)
        }
    }
}

/// Applies pending migrations to the configured store (`kms migrate`).
pub async fn migrate(config: &StoreConfig) -> StoreResult<Migrated> {
    match config {
        StoreConfig::Sqlite { path, .. } => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || SqliteStore::migrate_file(&path))
                .await
                .map_err(|e| StoreError::Database(format!("store task: {e}")))?
        }
        StoreConfig::Postgres(pg) => PgStore::connect(pg).await?.migrate().await,
    }
}

/// Copies the configured SQLite database to the new file `dest` while nodes run (`kms
/// backup`); PostgreSQL is backed up with `pg_dump` (`docs/operations.md`).
pub async fn backup(config: &StoreConfig, dest: &std::path::Path) -> StoreResult<BackupReport> {
    match config {
        StoreConfig::Sqlite { path, .. } => {
            let (path, dest) = (path.clone(), dest.to_path_buf());
            tokio::task::spawn_blocking(move || SqliteStore::backup_file(&path, &dest))
                .await
                .map_err(|e| StoreError::Database(format!("store task: {e}")))?
        }
        StoreConfig::Postgres(_) => Err(StoreError::Database(
            "kms backup copies SQLite stores; back up PostgreSQL with pg_dump \
             (docs/operations.md)"
                .into(),
        )),
    }
}

fn migrate_mode(auto: bool) -> MigrateOnOpen {
    if auto {
        MigrateOnOpen::Apply
    } else {
        MigrateOnOpen::Refuse
    }
}

/// The migration decision shared by both stores: which migrations to apply, or why not.
pub(crate) fn plan(
    found: i64,
    known: i64,
    mode: MigrateOnOpen,
) -> StoreResult<std::ops::Range<i64>> {
    if found > known {
        return Err(StoreError::SchemaTooNew { found, known });
    }
    if found < known && mode == MigrateOnOpen::Refuse {
        return Err(StoreError::SchemaBehind { found, known });
    }
    Ok(found..known)
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                StoreError::AlreadyExists
            }
            other => StoreError::Database(other.to_string()),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Durable key metadata. Async: an implementation keeps its blocking work (SQLite statements,
/// fsync) off the async workers itself, so the service awaits it like any other I/O.
#[async_trait::async_trait]
pub trait MetadataStore: Send + Sync {
    /// Inserts a new key with its first material version and tags, atomically, unless its
    /// account already has `limit` keys in its region: then nothing is written and the answer
    /// is [`StoreError::KeyQuota`]. The per-(account, region) key count is kept in the store
    /// and raised in the inserting transaction by a conditional update (`n < limit`), so
    /// concurrent inserts, on one node or several, never pass the limit together. When the
    /// kept count is at the limit, the keys are counted anew in the same transaction
    /// ([`MetadataStore::recount_keys`]) and the key is refused only if the rows there are
    /// reach the limit.
    async fn insert_key(
        &self,
        key: &KeyRecord,
        material: &MaterialRecord,
        tags: &[Tag],
        limit: usize,
    ) -> StoreResult<()>;
    /// Looks a key up by id (key ids are unique across accounts).
    async fn get_key(&self, key_id: &KeyId) -> StoreResult<Option<KeyRecord>>;
    /// Replaces a key row if its `row_version` still equals `key.row_version`; bumps it.
    async fn update_key(&self, key: &KeyRecord) -> StoreResult<KeyRecord>;
    /// Replaces a key row and adds a material version in one transaction (rotation).
    async fn rotate_key(
        &self,
        key: &KeyRecord,
        material: &MaterialRecord,
    ) -> StoreResult<KeyRecord>;
    /// Replaces a key row (and its public key) and inserts or replaces one material version in
    /// one transaction (import, deletion and expiry of imported material).
    async fn save_material(
        &self,
        key: &KeyRecord,
        material: &MaterialRecord,
    ) -> StoreResult<KeyRecord>;
    /// Replaces a key row and removes one material version in one transaction (deletion of
    /// imported material that is only pending rotation).
    async fn remove_material(&self, key: &KeyRecord, version: u32) -> StoreResult<KeyRecord>;
    /// Keys with imported material whose `ValidTo` has passed (still marked imported).
    async fn keys_with_expired_material(&self, now: DateTime<Utc>) -> StoreResult<Vec<KeyId>>;
    /// Deletes a key with its material, aliases, tags and grants if its `row_version` still
    /// equals `row_version`, and lowers its account's key count in the same transaction;
    /// `false` when the row changed or is gone (another node or request got there first).
    async fn delete_key(&self, key_id: &KeyId, row_version: i64) -> StoreResult<bool>;
    /// Key ids of an account and region, ordered, starting after `after`.
    async fn list_keys(
        &self,
        account: &str,
        region: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<KeyRecord>>;
    /// Keys in PendingDeletion whose deletion date has passed.
    async fn keys_due_for_deletion(&self, now: DateTime<Utc>) -> StoreResult<Vec<KeyId>>;
    /// Keys with rotation enabled whose next rotation date has passed.
    async fn keys_due_for_rotation(&self, now: DateTime<Utc>) -> StoreResult<Vec<KeyId>>;

    /// One material version of a key.
    async fn get_material(
        &self,
        key_id: &KeyId,
        version: u32,
    ) -> StoreResult<Option<MaterialRecord>>;
    /// All material versions of a key, oldest first.
    async fn list_materials(&self, key_id: &KeyId) -> StoreResult<Vec<MaterialRecord>>;
    /// The material fields of `key`'s metadata, read from its material rows. Every write of a
    /// key's materials also bumps its row version in the same transaction, so the summary of
    /// a row version never changes ([`CachedStore`] keeps it beside the cached row).
    async fn material_summary(&self, key: &KeyRecord) -> StoreResult<MaterialSummary> {
        let rows = match MaterialSummary::input(key) {
            SummaryInput::Nothing => Vec::new(),
            SummaryInput::Current => self
                .get_material(&key.key_id, key.current_material)
                .await?
                .into_iter()
                .collect(),
            SummaryInput::All => self.list_materials(&key.key_id).await?,
        };
        Ok(MaterialSummary::of(key, &rows))
    }

    /// Creates an alias; [`StoreError::AlreadyExists`] when the name is taken,
    /// [`StoreError::AliasQuota`] when its target key already has `limit` aliases. The count
    /// and the insert are one transaction, serialized per target key (SQLite: the one writer;
    /// PostgreSQL: a transaction advisory lock on the key), so concurrent creates never pass
    /// the limit.
    async fn create_alias(&self, alias: &AliasRecord, limit: usize) -> StoreResult<()>;
    async fn get_alias(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> StoreResult<Option<AliasRecord>>;
    /// Points an existing alias at another key, unless that key already has `limit` aliases
    /// ([`StoreError::AliasQuota`], counted and written as in [`MetadataStore::create_alias`]).
    async fn update_alias(&self, alias: &AliasRecord, limit: usize) -> StoreResult<()>;
    async fn delete_alias(&self, account: &str, region: &str, name: &str) -> StoreResult<bool>;
    /// Aliases of an account and region (optionally of one key), ordered by name, after `after`.
    async fn list_aliases(
        &self,
        account: &str,
        region: &str,
        key_id: Option<&KeyId>,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<AliasRecord>>;
    async fn count_aliases(&self, key_id: &KeyId) -> StoreResult<usize>;

    /// Upserts tags on a key.
    async fn put_tags(&self, key_id: &KeyId, tags: &[Tag]) -> StoreResult<()>;
    async fn remove_tags(&self, key_id: &KeyId, tag_keys: &[String]) -> StoreResult<()>;
    /// Tags of a key ordered by tag key.
    async fn list_tags(&self, key_id: &KeyId) -> StoreResult<Vec<Tag>>;

    /// Inserts a custom key store unless its account already has `limit` stores in its region
    /// ([`StoreError::CustomKeyStoreQuota`]); [`StoreError::CustomKeyStoreNameInUse`] when the
    /// name is taken, [`StoreError::ClusterInUse`] when another store (any account, any region)
    /// is on its cluster. The count and the insert are one transaction, serialized per
    /// (account, region) (SQLite: the one writer; PostgreSQL: a transaction advisory lock), so
    /// concurrent creates on one node or several never pass the limit; the name and the cluster
    /// are unique indexes, so the database decides those races too.
    async fn insert_custom_key_store(
        &self,
        store: &CustomKeyStoreRecord,
        limit: usize,
    ) -> StoreResult<()>;
    async fn get_custom_key_store(&self, id: &str) -> StoreResult<Option<CustomKeyStoreRecord>>;
    /// Stores of an account and region, ordered by id.
    async fn list_custom_key_stores(
        &self,
        account: &str,
        region: &str,
    ) -> StoreResult<Vec<CustomKeyStoreRecord>>;
    /// Replaces a store row if its `row_version` still matches; bumps it. A new name or cluster
    /// is checked by the same unique indexes as [`MetadataStore::insert_custom_key_store`]
    /// ([`StoreError::CustomKeyStoreNameInUse`], [`StoreError::ClusterInUse`]).
    async fn update_custom_key_store(
        &self,
        store: &CustomKeyStoreRecord,
    ) -> StoreResult<CustomKeyStoreRecord>;
    async fn delete_custom_key_store(&self, id: &str) -> StoreResult<()>;
    /// Every store of every account (start-up reconnects).
    async fn all_custom_key_stores(&self) -> StoreResult<Vec<CustomKeyStoreRecord>>;
    async fn count_keys_in_store(&self, store_id: &str) -> StoreResult<usize>;
    /// Keys of an account and region in every state, PendingDeletion included (what AWS
    /// counts against the key quota), in every key store: the kept count (one row read, not a
    /// scan of the keys).
    async fn count_keys(&self, account: &str, region: &str) -> StoreResult<usize>;
    /// Counts the keys of an account and region anew and sets the kept count to it, in one
    /// transaction that is safe with concurrent inserts and deletes on any node; the count. A
    /// count left too high by key rows deleted outside kms (an operator's SQL, a partial
    /// restore) would refuse CreateKey below the quota: [`MetadataStore::insert_key`] recounts
    /// the same way, in its own transaction, before it refuses a key for the quota.
    async fn recount_keys(&self, account: &str, region: &str) -> StoreResult<usize>;
    /// A trivial query that succeeds when the database answers (readiness).
    async fn ping(&self) -> StoreResult<()>;
    /// Changes of custom key stores made by any node, for a store other nodes share (`None`:
    /// only this node writes it, nothing to follow).
    fn custom_key_store_changes(&self) -> Option<tokio::sync::broadcast::Receiver<StoreChange>> {
        None
    }
    /// The metadata cache's size and evictions, for a store behind one (metrics).
    fn cache_stats(&self) -> Option<CacheStats> {
        None
    }
    /// The key of an external key store that uses an external key, if any.
    async fn find_key_by_xks_id(
        &self,
        store_id: &str,
        xks_key_id: &str,
    ) -> StoreResult<Option<KeyId>>;

    /// CreateGrant's write: a named grant (`Name`) that the key already has, as `same` judges
    /// it (a retry), is answered with that grant and `false`; otherwise the grant is inserted
    /// (`true`) unless the key already has `limit` grants ([`StoreError::GrantQuota`]; a retry
    /// is answered even then). [`StoreError::AlreadyExists`] when the id is taken. Look-up,
    /// count and insert are one transaction, serialized per key (SQLite: the one writer;
    /// PostgreSQL: a transaction advisory lock on the key), so concurrent creates on one node
    /// or several make one grant per name and never pass the limit.
    async fn insert_grant(
        &self,
        grant: &GrantRecord,
        limit: usize,
        same: SameGrant,
    ) -> StoreResult<(GrantRecord, bool)>;
    /// The grants of a key, oldest first (shared: authorization reads them on every request
    /// that no policy allows).
    async fn list_grants(&self, key_id: &KeyId) -> StoreResult<std::sync::Arc<[GrantRecord]>>;
    /// One grant by id.
    async fn get_grant(&self, grant_id: &str) -> StoreResult<Option<GrantRecord>>;
    /// Deletes a grant; `false` when there was none.
    async fn delete_grant(&self, grant_id: &str) -> StoreResult<bool>;
    /// Grants whose retiring principal is `principal`, ordered by id, after `after`.
    async fn list_retirable_grants(
        &self,
        principal: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<GrantRecord>>;

    /// Service secrets (wrapped material of the key that protects stored passwords).
    async fn get_system_secret(&self, name: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Stores `value` unless the name exists; returns the stored value either way.
    async fn put_system_secret_if_absent(&self, name: &str, value: &[u8]) -> StoreResult<Vec<u8>>;

    /// Takes the cluster-wide lease for `name` if no node holds it; `None` when one does.
    async fn try_lease(&self, name: LeaseName) -> StoreResult<Option<Lease>>;
    /// Claims the connect of custom key store `store_id` for this node, held until the
    /// [`Lease`] is dropped or this node's database session ends (a node that dies loses its
    /// claims). `wait`: wait for a claim another holder has; otherwise `None` when there is
    /// one. One node per SQLite file: always granted at once. See `service::store_sync` for
    /// what the claim decides.
    async fn claim_store_connect(&self, store_id: &str, wait: bool) -> StoreResult<Option<Lease>>;
}
