//! SQLite metadata store: WAL journal, `synchronous=FULL` (every commit is fsynced before the
//! call returns), one writer connection and a small pool of reader connections so reads never
//! wait behind a commit's fsync. Migrations run in one `BEGIN IMMEDIATE` transaction (the
//! database's write lock), so two processes opening one file never both migrate.

use parking_lot::{Mutex, MutexGuard};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{params, Connection, Row};

use super::{
    Lease, LeaseName, MetadataStore, MigrateOnOpen, Migrated, SameGrant, StoreError, StoreResult,
};
use crate::model::{
    AliasRecord, ConnectionState, CustomKeyStoreRecord, CustomKeyStoreType, GrantConstraints,
    GrantRecord, KeyId, KeyRecord, KeySpec, KeyState, KeyUsage, MaterialRecord, Origin,
    RotationType, Tag, XksProxySettings,
};
use crate::model::{ExpirationModel, ImportInfo, ImportState};
use std::sync::Arc;

/// Versioned schema migrations for SQLite; applied in order, recorded in `schema_version`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE keys (
    key_id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    arn TEXT NOT NULL,
    description TEXT NOT NULL,
    key_spec TEXT NOT NULL,
    key_usage TEXT NOT NULL,
    origin TEXT NOT NULL,
    state TEXT NOT NULL,
    creation_ms INTEGER NOT NULL,
    deletion_ms INTEGER,
    pending_window_days INTEGER,
    policy TEXT NOT NULL,
    rotation_enabled INTEGER NOT NULL,
    rotation_period_days INTEGER,
    next_rotation_ms INTEGER,
    current_material INTEGER NOT NULL,
    row_version INTEGER NOT NULL
);
CREATE INDEX keys_by_account ON keys(account, region, key_id);
CREATE TABLE key_material (
    key_id TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    wrapped BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    rotation_type TEXT,
    PRIMARY KEY (key_id, version)
);
CREATE TABLE aliases (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    target_key_id TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
    creation_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (account, region, name)
);
CREATE INDEX aliases_by_key ON aliases(target_key_id);
CREATE TABLE tags (
    key_id TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
    tag_key TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (key_id, tag_key)
);
"#,
    r#"
ALTER TABLE keys ADD COLUMN custom_key_store_id TEXT;
CREATE INDEX keys_by_store ON keys(custom_key_store_id);
CREATE TABLE custom_key_stores (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    store_type TEXT NOT NULL,
    cluster_id TEXT,
    trust_anchor TEXT,
    password_encrypted BLOB NOT NULL,
    connection_state TEXT NOT NULL,
    connection_error TEXT,
    creation_ms INTEGER NOT NULL,
    row_version INTEGER NOT NULL,
    UNIQUE (account, region, name)
);
CREATE TABLE system_secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
"#,
    r#"
ALTER TABLE keys ADD COLUMN xks_key_id TEXT;
ALTER TABLE custom_key_stores ADD COLUMN xks_uri_endpoint TEXT;
ALTER TABLE custom_key_stores ADD COLUMN xks_uri_path TEXT;
ALTER TABLE custom_key_stores ADD COLUMN xks_connectivity TEXT;
ALTER TABLE custom_key_stores ADD COLUMN xks_vpc_service TEXT;
ALTER TABLE custom_key_stores ADD COLUMN xks_access_key_id TEXT;
"#,
    r#"
ALTER TABLE custom_key_stores ADD COLUMN xks_credential_ms INTEGER;
"#,
    r#"
CREATE TABLE grants (
    grant_id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
    issuing_account TEXT NOT NULL,
    name TEXT,
    grantee_principal TEXT NOT NULL,
    retiring_principal TEXT,
    operations TEXT NOT NULL,
    constraints TEXT,
    creation_ms INTEGER NOT NULL
);
CREATE INDEX grants_by_key ON grants(key_id, creation_ms);
CREATE INDEX grants_by_retiring ON grants(retiring_principal, grant_id);
"#,
    r#"
ALTER TABLE keys ADD COLUMN public_key BLOB;
"#,
    // Key material ids and imported key material (issue 15 parts 1-2): one id per material,
    // random for the material that existed before; per-material import state and expiry.
    r#"
ALTER TABLE key_material ADD COLUMN material_id TEXT;
ALTER TABLE key_material ADD COLUMN import_state TEXT;
ALTER TABLE key_material ADD COLUMN expiration_model TEXT;
ALTER TABLE key_material ADD COLUMN valid_to_ms INTEGER;
ALTER TABLE key_material ADD COLUMN material_description TEXT;
UPDATE key_material SET material_id = lower(hex(randomblob(32))) WHERE material_id IS NULL;
CREATE INDEX key_material_expiry ON key_material(valid_to_ms) WHERE valid_to_ms IS NOT NULL;
"#,
    // Multi-Region keys (issue 15 part 3): the primary's region on every key of a set.
    r#"
ALTER TABLE keys ADD COLUMN mrk_primary_region TEXT;
"#,
    // The key quota (issue 16): keys per account and region, kept by insert_key and
    // delete_key in their transactions, filled from the keys there are.
    r#"
CREATE TABLE key_counts (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    n INTEGER NOT NULL CHECK (n >= 0),
    PRIMARY KEY (account, region)
);
INSERT INTO key_counts (account, region, n)
    SELECT account, region, COUNT(*) FROM keys GROUP BY account, region;
"#,
    // One custom key store per cluster, across accounts and regions: a unique index decides
    // concurrent creates and updates. Stores that already shared a cluster are kept, not
    // refused: the oldest on each cluster holds it, the others are marked `cluster_shared` and
    // left out of the index until they move to another cluster; when the holder is deleted or
    // moves, the triggers hand the cluster to the oldest marked store left on it, so a cluster
    // in use always has a holder in the index (`docs/operations.md`).
    r#"
ALTER TABLE custom_key_stores ADD COLUMN cluster_shared INTEGER NOT NULL DEFAULT 0;
UPDATE custom_key_stores SET cluster_shared = 1
    WHERE cluster_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM custom_key_stores o
        WHERE o.cluster_id = custom_key_stores.cluster_id
          AND (o.creation_ms < custom_key_stores.creation_ms
               OR (o.creation_ms = custom_key_stores.creation_ms AND o.id < custom_key_stores.id)));
CREATE UNIQUE INDEX custom_key_stores_one_per_cluster ON custom_key_stores(cluster_id)
    WHERE cluster_id IS NOT NULL AND cluster_shared = 0;
CREATE TRIGGER custom_key_stores_hand_over_deleted AFTER DELETE ON custom_key_stores
    WHEN OLD.cluster_id IS NOT NULL AND OLD.cluster_shared = 0
BEGIN
    UPDATE custom_key_stores SET cluster_shared = 0 WHERE id = (
        SELECT id FROM custom_key_stores WHERE cluster_id = OLD.cluster_id AND cluster_shared = 1
        ORDER BY creation_ms, id LIMIT 1);
END;
CREATE TRIGGER custom_key_stores_hand_over_moved AFTER UPDATE OF cluster_id ON custom_key_stores
    WHEN OLD.cluster_id IS NOT NULL AND OLD.cluster_shared = 0
        AND NEW.cluster_id IS NOT OLD.cluster_id
BEGIN
    UPDATE custom_key_stores SET cluster_shared = 0 WHERE id = (
        SELECT id FROM custom_key_stores WHERE cluster_id = OLD.cluster_id AND cluster_shared = 1
        ORDER BY creation_ms, id LIMIT 1);
END;
"#,
];

const READERS: usize = 4;

/// The embedded default store: a handle on the database whose every statement runs on tokio's
/// blocking pool (a commit waits for fsync; no statement runs on an async worker).
#[derive(Clone)]
pub struct SqliteStore {
    db: Arc<Db>,
}

/// The connections; its methods block.
struct Db {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(ms: i64) -> StoreResult<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {ms}")))
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A poisoned connection mutex only means another thread panicked while holding it; the
    // connection itself is still usable (SQLite rolls back unfinished transactions).
    m.lock()
}

/// What `kms backup` copied.
#[derive(Debug, Clone, Copy)]
pub struct BackupReport {
    /// Key rows in the copy.
    pub keys: usize,
    /// The copy's schema version.
    pub schema_version: i64,
}

/// A custom key store write refused by a unique index: which one (the name, the cluster), as
/// its typed error; any other failure as usual.
fn store_write_error(e: rusqlite::Error, r: &CustomKeyStoreRecord) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, Some(text)) = &e {
        if f.code == rusqlite::ErrorCode::ConstraintViolation {
            // SQLite names the columns of the violated index: "UNIQUE constraint failed:
            // custom_key_stores.cluster_id".
            if text.contains("custom_key_stores.cluster_id") {
                return StoreError::ClusterInUse {
                    cluster_id: r.cluster_id.clone().unwrap_or_default(),
                };
            }
            if text.contains("custom_key_stores.name") {
                return StoreError::CustomKeyStoreNameInUse {
                    name: r.name.clone(),
                };
            }
        }
    }
    e.into()
}

fn open(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

const GRANT_COLUMNS: &str = "grant_id, key_id, issuing_account, name, grantee_principal, \
    retiring_principal, operations, constraints, creation_ms";

/// Constraints as stored: `{"equals": {...}, "subset": {...}}`, or NULL when there are none.
pub(crate) fn constraints_to_json(c: &GrantConstraints) -> Option<String> {
    if c.is_empty() {
        return None;
    }
    let mut v = serde_json::Map::new();
    if let Some(e) = &c.encryption_context_equals {
        v.insert("equals".into(), serde_json::json!(e));
    }
    if let Some(e) = &c.encryption_context_subset {
        v.insert("subset".into(), serde_json::json!(e));
    }
    Some(serde_json::Value::Object(v).to_string())
}

pub(crate) fn constraints_from_json(text: Option<String>) -> StoreResult<GrantConstraints> {
    let Some(text) = text else {
        return Ok(GrantConstraints::default());
    };
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|_| StoreError::Corrupt("grant constraints".into()))?;
    let map = |name: &str| -> StoreResult<Option<std::collections::BTreeMap<String, String>>> {
        match v.get(name) {
            None => Ok(None),
            Some(m) => serde_json::from_value(m.clone())
                .map(Some)
                .map_err(|_| StoreError::Corrupt("grant constraints".into())),
        }
    };
    Ok(GrantConstraints {
        encryption_context_equals: map("equals")?,
        encryption_context_subset: map("subset")?,
    })
}

fn grant_from_row(row: &Row<'_>) -> StoreResult<GrantRecord> {
    let key_id: String = row.get(1)?;
    let operations: String = row.get(6)?;
    Ok(GrantRecord {
        grant_id: row.get(0)?,
        key_id: KeyId::from_storage(&key_id).ok_or_else(|| corrupt("grant key id", &key_id))?,
        issuing_account: row.get(2)?,
        name: row.get(3)?,
        grantee_principal: row.get(4)?,
        retiring_principal: row.get(5)?,
        operations: operations
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        constraints: constraints_from_json(row.get(7)?)?,
        creation_date: from_ms(row.get(8)?)?,
    })
}

const KEY_COLUMNS: &str = "key_id, account, region, arn, description, key_spec, key_usage, \
    origin, state, creation_ms, deletion_ms, pending_window_days, policy, rotation_enabled, \
    rotation_period_days, next_rotation_ms, current_material, row_version, custom_key_store_id, xks_key_id, public_key, \
    mrk_primary_region";

const STORE_COLUMNS: &str = "id, account, region, name, store_type, cluster_id, trust_anchor, \
    password_encrypted, connection_state, connection_error, creation_ms, row_version, xks_uri_endpoint, \
    xks_uri_path, xks_connectivity, xks_vpc_service, xks_access_key_id, xks_credential_ms";

fn store_from_row(row: &Row<'_>) -> StoreResult<CustomKeyStoreRecord> {
    let store_type: String = row.get(4)?;
    let state: String = row.get(8)?;
    Ok(CustomKeyStoreRecord {
        id: row.get(0)?,
        account: row.get(1)?,
        region: row.get(2)?,
        name: row.get(3)?,
        store_type: CustomKeyStoreType::parse(&store_type)
            .ok_or_else(|| corrupt("store type", &store_type))?,
        cluster_id: row.get(5)?,
        trust_anchor: row.get(6)?,
        password_encrypted: row.get(7)?,
        connection_state: ConnectionState::parse(&state)
            .ok_or_else(|| corrupt("connection state", &state))?,
        connection_error: row.get(9)?,
        creation_date: from_ms(row.get(10)?)?,
        row_version: row.get(11)?,
        xks: match row.get::<_, Option<String>>(12)? {
            None => None,
            Some(uri_endpoint) => Some(XksProxySettings {
                uri_endpoint,
                uri_path: row.get::<_, Option<String>>(13)?.unwrap_or_default(),
                connectivity: row.get::<_, Option<String>>(14)?.unwrap_or_default(),
                vpc_endpoint_service_name: row.get(15)?,
                access_key_id: row.get::<_, Option<String>>(16)?.unwrap_or_default(),
                credential_date: row.get::<_, Option<i64>>(17)?.map(from_ms).transpose()?,
            }),
        },
    })
}

fn corrupt(what: &str, v: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} {v:?}"))
}

fn key_from_row(row: &Row<'_>) -> StoreResult<KeyRecord> {
    let key_id: String = row.get(0)?;
    let key_spec: String = row.get(5)?;
    let key_usage: String = row.get(6)?;
    let origin: String = row.get(7)?;
    let state: String = row.get(8)?;
    Ok(KeyRecord {
        key_id: KeyId::from_storage(&key_id).ok_or_else(|| corrupt("key id", &key_id))?,
        account: row.get(1)?,
        region: row.get(2)?,
        arn: row.get(3)?,
        description: row.get(4)?,
        key_spec: KeySpec::parse(&key_spec).ok_or_else(|| corrupt("key spec", &key_spec))?,
        key_usage: KeyUsage::parse(&key_usage).ok_or_else(|| corrupt("key usage", &key_usage))?,
        origin: Origin::parse(&origin).ok_or_else(|| corrupt("origin", &origin))?,
        state: KeyState::parse(&state).ok_or_else(|| corrupt("state", &state))?,
        creation_date: from_ms(row.get(9)?)?,
        deletion_date: row.get::<_, Option<i64>>(10)?.map(from_ms).transpose()?,
        pending_window_days: row.get(11)?,
        policy: row.get(12)?,
        rotation_enabled: row.get(13)?,
        rotation_period_days: row.get(14)?,
        next_rotation_date: row.get::<_, Option<i64>>(15)?.map(from_ms).transpose()?,
        current_material: row.get(16)?,
        row_version: row.get(17)?,
        custom_key_store_id: row.get(18)?,
        xks_key_id: row.get(19)?,
        public_key: row.get(20)?,
        mrk_primary_region: row.get(21)?,
        unavailable: false,
    })
}

fn material_from_row(row: &Row<'_>) -> StoreResult<MaterialRecord> {
    let key_id: String = row.get(0)?;
    let rotation_type: Option<String> = row.get(4)?;
    let import_state: Option<String> = row.get(6)?;
    let import = match import_state {
        None => None,
        Some(state) => {
            let model: Option<String> = row.get(7)?;
            let model = model.unwrap_or_default();
            Some(ImportInfo {
                state: ImportState::parse(&state).ok_or_else(|| corrupt("import state", &state))?,
                expiration_model: ExpirationModel::parse(&model)
                    .ok_or_else(|| corrupt("expiration model", &model))?,
                valid_to: row.get::<_, Option<i64>>(8)?.map(from_ms).transpose()?,
                description: row.get(9)?,
            })
        }
    };
    Ok(MaterialRecord {
        material_id: row.get(5)?,
        import,
        key_id: KeyId::from_storage(&key_id).ok_or_else(|| corrupt("key id", &key_id))?,
        version: row.get(1)?,
        wrapped: row.get(2)?,
        created: from_ms(row.get(3)?)?,
        rotation_type: match rotation_type {
            None => None,
            Some(t) => Some(RotationType::parse(&t).ok_or_else(|| corrupt("rotation", &t))?),
        },
    })
}

fn alias_from_row(row: &Row<'_>) -> StoreResult<AliasRecord> {
    let target: String = row.get(3)?;
    Ok(AliasRecord {
        account: row.get(0)?,
        region: row.get(1)?,
        name: row.get(2)?,
        target_key_id: KeyId::from_storage(&target).ok_or_else(|| corrupt("key id", &target))?,
        creation_date: from_ms(row.get(4)?)?,
        last_updated_date: from_ms(row.get(5)?)?,
    })
}

const MATERIAL_COLUMNS: &str = "key_id, version, wrapped, created_ms, rotation_type, \
    material_id, import_state, expiration_model, valid_to_ms, material_description";

/// Raises the key count of (`account`, `region`) unless it has reached `limit`; `false` when
/// it has (nothing changed). One statement: the row is made at 1 or raised by 1.
fn count_key(conn: &Connection, account: &str, region: &str, limit: usize) -> StoreResult<bool> {
    if limit == 0 {
        return Ok(false);
    }
    let changed = conn
        .prepare_cached(
            "INSERT INTO key_counts (account, region, n) VALUES (?1, ?2, 1) \
             ON CONFLICT (account, region) DO UPDATE SET n = n + 1 WHERE n < ?3",
        )?
        .execute(params![
            account,
            region,
            i64::try_from(limit).unwrap_or(i64::MAX)
        ])?;
    Ok(changed == 1)
}

/// Counts the keys of (`account`, `region`) there are, rows of `conn`'s own transaction
/// included, and sets the kept count to it: a count left too high by key rows deleted outside
/// kms (an operator's SQL, a partial restore) heals here. Run in a writing transaction (the one
/// writer: no insert or delete comes between the count and the write).
fn recount_keys(conn: &Connection, account: &str, region: &str) -> StoreResult<usize> {
    let n: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM keys WHERE account = ?1 AND region = ?2")?
        .query_row([account, region], |r| r.get(0))?;
    conn.prepare_cached(
        "INSERT INTO key_counts (account, region, n) VALUES (?1, ?2, ?3) \
         ON CONFLICT (account, region) DO UPDATE SET n = excluded.n",
    )?
    .execute(params![account, region, n])?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// [`StoreError::AliasQuota`] unless `key` has fewer than `limit` aliases (run in the writing
/// transaction: the one writer makes count and write atomic).
fn alias_room(conn: &Connection, key: &KeyId, limit: usize) -> StoreResult<()> {
    let n: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM aliases WHERE target_key_id = ?1")?
        .query_row([key.as_str()], |r| r.get(0))?;
    let usage = usize::try_from(n).unwrap_or(0);
    if usage >= limit {
        return Err(StoreError::AliasQuota { limit, usage });
    }
    Ok(())
}

/// The kept key count of (`account`, `region`).
fn key_count(conn: &Connection, account: &str, region: &str) -> StoreResult<usize> {
    let n: Option<i64> = conn
        .prepare_cached("SELECT n FROM key_counts WHERE account = ?1 AND region = ?2")?
        .query_row([account, region], |r| r.get(0))
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    Ok(usize::try_from(n.unwrap_or(0)).unwrap_or(0))
}

fn insert_material(conn: &Connection, m: &MaterialRecord) -> StoreResult<()> {
    write_material(conn, m, "INSERT")
}

/// Inserts (`INSERT`) or replaces (`INSERT OR REPLACE`) one material row.
fn write_material(conn: &Connection, m: &MaterialRecord, verb: &str) -> StoreResult<()> {
    let import = m.import.as_ref();
    conn.prepare_cached(&format!(
        "{verb} INTO key_material ({MATERIAL_COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    ))?
    .execute(params![
        m.key_id.as_str(),
        m.version,
        m.wrapped,
        to_ms(m.created),
        m.rotation_type.map(|r| r.as_str()),
        m.material_id,
        import.map(|i| i.state.as_str()),
        import.map(|i| i.expiration_model.as_str()),
        import.and_then(|i| i.valid_to).map(to_ms),
        import.and_then(|i| i.description.clone()),
    ])?;
    Ok(())
}

/// Writes the mutable columns of a key if its row version matches; returns the new record.
fn write_key(conn: &Connection, k: &KeyRecord) -> StoreResult<KeyRecord> {
    let n = conn
        .prepare_cached(
            "UPDATE keys SET description = ?2, state = ?3, deletion_ms = ?4, \
             pending_window_days = ?5, policy = ?6, rotation_enabled = ?7, \
             rotation_period_days = ?8, next_rotation_ms = ?9, current_material = ?10, \
             mrk_primary_region = ?12, \
             row_version = row_version + 1 WHERE key_id = ?1 AND row_version = ?11",
        )?
        .execute(params![
            k.key_id.as_str(),
            k.description,
            k.state.as_str(),
            k.deletion_date.map(to_ms),
            k.pending_window_days,
            k.policy,
            k.rotation_enabled,
            k.rotation_period_days,
            k.next_rotation_date.map(to_ms),
            k.current_material,
            k.row_version,
            k.mrk_primary_region,
        ])?;
    if n != 1 {
        return Err(StoreError::Conflict);
    }
    let mut out = k.clone();
    out.row_version += 1;
    Ok(out)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub fn open(path: &Path) -> StoreResult<Self> {
        Self::open_with(path, MigrateOnOpen::Apply)
    }

    /// Opens the database file, migrating its schema or refusing an old one (`mode`); a schema
    /// newer than this binary knows is always refused.
    pub fn open_with(path: &Path, mode: MigrateOnOpen) -> StoreResult<Self> {
        Ok(SqliteStore {
            db: Arc::new(Db::open(path, mode)?),
        })
    }

    /// Applies pending migrations to the database file (`kms migrate`).
    pub fn migrate_file(path: &Path) -> StoreResult<Migrated> {
        let mut conn = open(path)?;
        Db::migrate(&mut conn, MigrateOnOpen::Apply)
    }

    /// Copies the database file at `path` to a new file `dest` with SQLite's online backup
    /// API, while nodes keep writing: the copy is taken in one step inside one read
    /// transaction, so it is a consistent snapshot holding every transaction committed before
    /// the step began (in WAL mode writers are not blocked meanwhile). The copy is synced and
    /// checked (`PRAGMA integrity_check`) before this returns; `dest` must not exist.
    pub fn backup_file(path: &Path, dest: &Path) -> StoreResult<BackupReport> {
        if dest.exists() {
            return Err(StoreError::Database(format!(
                "{} exists; the backup is written to a new file",
                dest.display()
            )));
        }
        let src = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        src.busy_timeout(std::time::Duration::from_secs(10))?;
        let copied = (|| {
            let mut out = Connection::open(dest)?;
            {
                let backup = rusqlite::backup::Backup::new(&src, &mut out)?;
                // All pages in one step: one read transaction, one snapshot.
                backup.step(-1)?;
            }
            // A self-contained file (no -wal beside it), on disk before we say so.
            out.pragma_update(None, "journal_mode", "DELETE")?;
            let check: String = out.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
            if check != "ok" {
                return Err(StoreError::Corrupt(format!(
                    "integrity check of the copy: {check}"
                )));
            }
            let keys: i64 = out.query_row("SELECT COUNT(*) FROM keys", [], |r| r.get(0))?;
            let version: i64 =
                out.query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))?;
            drop(out);
            std::fs::File::open(dest)
                .and_then(|f| f.sync_all())
                .map_err(|e| StoreError::Database(format!("{}: {e}", dest.display())))?;
            Ok(BackupReport {
                keys: usize::try_from(keys).unwrap_or(0),
                schema_version: version,
            })
        })();
        if copied.is_err() {
            let _ = std::fs::remove_file(dest);
        }
        copied
    }

    /// Runs `f` on the database off the async workers.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Db) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StoreError::Database(format!("store task: {e}")))?
    }
}

impl Db {
    fn open(path: &Path, mode: MigrateOnOpen) -> StoreResult<Self> {
        let mut writer = open(path)?;
        Self::migrate(&mut writer, mode)?;
        let readers = (0..READERS)
            .map(|_| open(path).map(Mutex::new))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Db {
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
        })
    }

    fn migrate(conn: &mut Connection, mode: MigrateOnOpen) -> StoreResult<Migrated> {
        // IMMEDIATE: the write lock is taken before the version is read, so a second process
        // waits (busy timeout) and then finds nothing left to do.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
        let found: i64 = tx.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_version",
            [],
            |r| r.get(0),
        )?;
        let known = MIGRATIONS.len() as i64;
        for version in super::plan(found, known, mode)? {
            let sql = MIGRATIONS
                .get(version as usize)
                .ok_or_else(|| StoreError::Database(format!("no migration {version}")))?;
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES (?1)",
                [version + 1],
            )?;
        }
        tx.commit()?;
        Ok(Migrated {
            from: found,
            to: known,
        })
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        // Prefer an idle reader; fall back to waiting on the next one in turn.
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for i in 0..self.readers.len() {
            if let Some(guard) = self.readers[(start + i) % self.readers.len()].try_lock() {
                return guard;
            }
        }
        lock(&self.readers[start % self.readers.len()])
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        lock(&self.writer)
    }
}

impl Db {
    fn insert_key(
        &self,
        k: &KeyRecord,
        m: &MaterialRecord,
        tags: &[Tag],
        limit: usize,
    ) -> StoreResult<()> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        tx.prepare_cached(&format!(
            "INSERT INTO keys ({KEY_COLUMNS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)"
        ))?
        .execute(params![
            k.key_id.as_str(),
            k.account,
            k.region,
            k.arn,
            k.description,
            k.key_spec.as_str(),
            k.key_usage.as_str(),
            k.origin.as_str(),
            k.state.as_str(),
            to_ms(k.creation_date),
            k.deletion_date.map(to_ms),
            k.pending_window_days,
            k.policy,
            k.rotation_enabled,
            k.rotation_period_days,
            k.next_rotation_date.map(to_ms),
            k.current_material,
            k.row_version,
            k.custom_key_store_id,
            k.xks_key_id,
            k.public_key,
            k.mrk_primary_region,
        ])?;
        insert_material(&tx, m)?;
        for t in tags {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO tags (key_id, tag_key, tag_value) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![k.key_id.as_str(), t.key, t.value])?;
        }
        // Last, so a refusal costs nothing but the rollback (dropping `tx`). At the limit, the
        // kept count is checked against the rows (this key's among them) before refusing.
        if !count_key(&tx, &k.account, &k.region, limit)? {
            let with_this = recount_keys(&tx, &k.account, &k.region)?;
            if with_this > limit {
                return Err(StoreError::KeyQuota {
                    limit,
                    usage: with_this - 1,
                });
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn get_key(&self, key_id: &KeyId) -> StoreResult<Option<KeyRecord>> {
        let conn = self.reader();
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM keys WHERE key_id = ?1"))?;
        let mut rows = stmt.query([key_id.as_str()])?;
        match rows.next()? {
            Some(row) => Ok(Some(key_from_row(row)?)),
            None => Ok(None),
        }
    }

    fn update_key(&self, key: &KeyRecord) -> StoreResult<KeyRecord> {
        let conn = self.writer();
        write_key(&conn, key)
    }

    fn rotate_key(&self, key: &KeyRecord, material: &MaterialRecord) -> StoreResult<KeyRecord> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let out = write_key(&tx, key)?;
        insert_material(&tx, material)?;
        tx.commit()?;
        Ok(out)
    }

    fn save_material(&self, key: &KeyRecord, material: &MaterialRecord) -> StoreResult<KeyRecord> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let out = write_key(&tx, key)?;
        tx.prepare_cached("UPDATE keys SET public_key = ?2 WHERE key_id = ?1")?
            .execute(params![key.key_id.as_str(), key.public_key])?;
        write_material(&tx, material, "INSERT OR REPLACE")?;
        tx.commit()?;
        Ok(out)
    }

    fn remove_material(&self, key: &KeyRecord, version: u32) -> StoreResult<KeyRecord> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let out = write_key(&tx, key)?;
        tx.prepare_cached("DELETE FROM key_material WHERE key_id = ?1 AND version = ?2")?
            .execute(params![key.key_id.as_str(), version])?;
        tx.commit()?;
        Ok(out)
    }

    fn keys_with_expired_material(&self, now: DateTime<Utc>) -> StoreResult<Vec<KeyId>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT DISTINCT key_id FROM key_material WHERE valid_to_ms IS NOT NULL \
             AND valid_to_ms <= ?1 AND import_state = 'IMPORTED'",
        )?;
        let ids = stmt.query_map([to_ms(now)], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for id in ids {
            let id = id?;
            out.push(KeyId::parse(&id).ok_or_else(|| corrupt("key id", &id))?);
        }
        Ok(out)
    }

    fn delete_key(&self, key_id: &KeyId, row_version: i64) -> StoreResult<bool> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let deleted: Option<(String, String)> = {
            let mut stmt = tx.prepare_cached(
                "DELETE FROM keys WHERE key_id = ?1 AND row_version = ?2 \
                 RETURNING account, region",
            )?;
            let mut rows = stmt.query(params![key_id.as_str(), row_version])?;
            match rows.next()? {
                Some(r) => Some((r.get(0)?, r.get(1)?)),
                None => None,
            }
        };
        let Some((account, region)) = deleted else {
            return Ok(false);
        };
        tx.prepare_cached(
            "UPDATE key_counts SET n = n - 1 WHERE account = ?1 AND region = ?2 AND n > 0",
        )?
        .execute([&account, &region])?;
        tx.commit()?;
        Ok(true)
    }

    fn list_keys(
        &self,
        account: &str,
        region: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<KeyRecord>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {KEY_COLUMNS} FROM keys WHERE account = ?1 AND region = ?2 AND key_id > ?3 \
             ORDER BY key_id LIMIT ?4"
        ))?;
        let mut rows = stmt.query(params![account, region, after.unwrap_or(""), limit as i64])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(key_from_row(row)?);
        }
        Ok(out)
    }

    fn keys_due_for_deletion(&self, now: DateTime<Utc>) -> StoreResult<Vec<KeyId>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT key_id FROM keys WHERE state = 'PendingDeletion' AND deletion_ms <= ?1",
        )?;
        let ids = stmt.query_map([to_ms(now)], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for id in ids {
            let id = id?;
            out.push(KeyId::from_storage(&id).ok_or_else(|| corrupt("key id", &id))?);
        }
        Ok(out)
    }

    fn keys_due_for_rotation(&self, now: DateTime<Utc>) -> StoreResult<Vec<KeyId>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT key_id FROM keys WHERE rotation_enabled = 1 AND next_rotation_ms <= ?1",
        )?;
        let ids = stmt.query_map([to_ms(now)], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for id in ids {
            let id = id?;
            out.push(KeyId::from_storage(&id).ok_or_else(|| corrupt("key id", &id))?);
        }
        Ok(out)
    }

    fn get_material(&self, key_id: &KeyId, version: u32) -> StoreResult<Option<MaterialRecord>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {MATERIAL_COLUMNS} FROM key_material WHERE key_id = ?1 AND version = ?2"
        ))?;
        let mut rows = stmt.query(params![key_id.as_str(), version])?;
        match rows.next()? {
            Some(row) => Ok(Some(material_from_row(row)?)),
            None => Ok(None),
        }
    }

    fn list_materials(&self, key_id: &KeyId) -> StoreResult<Vec<MaterialRecord>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {MATERIAL_COLUMNS} FROM key_material WHERE key_id = ?1 ORDER BY version"
        ))?;
        let mut rows = stmt.query([key_id.as_str()])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(material_from_row(row)?);
        }
        Ok(out)
    }

    fn create_alias(&self, a: &AliasRecord, limit: usize) -> StoreResult<()> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        alias_room(&tx, &a.target_key_id, limit)?;
        tx.prepare_cached(
            "INSERT INTO aliases (account, region, name, target_key_id, creation_ms, updated_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            a.account,
            a.region,
            a.name,
            a.target_key_id.as_str(),
            to_ms(a.creation_date),
            to_ms(a.last_updated_date)
        ])?;
        tx.commit()?;
        Ok(())
    }

    fn get_alias(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> StoreResult<Option<AliasRecord>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT account, region, name, target_key_id, creation_ms, updated_ms FROM aliases \
             WHERE account = ?1 AND region = ?2 AND name = ?3",
        )?;
        let mut rows = stmt.query(params![account, region, name])?;
        match rows.next()? {
            Some(row) => Ok(Some(alias_from_row(row)?)),
            None => Ok(None),
        }
    }

    fn update_alias(&self, a: &AliasRecord, limit: usize) -> StoreResult<()> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        // Only a move to another key needs room there.
        let moves: bool = tx
            .prepare_cached(
                "SELECT target_key_id <> ?4 FROM aliases \
                 WHERE account = ?1 AND region = ?2 AND name = ?3",
            )?
            .query_row(
                params![a.account, a.region, a.name, a.target_key_id.as_str()],
                |r| r.get(0),
            )
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(false),
                e => Err(e),
            })?;
        if moves {
            alias_room(&tx, &a.target_key_id, limit)?;
        }
        tx.prepare_cached(
            "UPDATE aliases SET target_key_id = ?4, updated_ms = ?5 \
             WHERE account = ?1 AND region = ?2 AND name = ?3",
        )?
        .execute(params![
            a.account,
            a.region,
            a.name,
            a.target_key_id.as_str(),
            to_ms(a.last_updated_date)
        ])?;
        tx.commit()?;
        Ok(())
    }

    fn delete_alias(&self, account: &str, region: &str, name: &str) -> StoreResult<bool> {
        let conn = self.writer();
        let n = conn
            .prepare_cached("DELETE FROM aliases WHERE account = ?1 AND region = ?2 AND name = ?3")?
            .execute(params![account, region, name])?;
        Ok(n == 1)
    }

    fn list_aliases(
        &self,
        account: &str,
        region: &str,
        key_id: Option<&KeyId>,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<AliasRecord>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT account, region, name, target_key_id, creation_ms, updated_ms FROM aliases \
             WHERE account = ?1 AND region = ?2 AND (?3 IS NULL OR target_key_id = ?3) \
             AND name > ?4 ORDER BY name LIMIT ?5",
        )?;
        let mut rows = stmt.query(params![
            account,
            region,
            key_id.map(|k| k.as_str()),
            after.unwrap_or(""),
            limit as i64
        ])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(alias_from_row(row)?);
        }
        Ok(out)
    }

    fn count_aliases(&self, key_id: &KeyId) -> StoreResult<usize> {
        let conn = self.reader();
        let n: i64 = conn
            .prepare_cached("SELECT COUNT(*) FROM aliases WHERE target_key_id = ?1")?
            .query_row([key_id.as_str()], |r| r.get(0))?;
        Ok(n as usize)
    }

    fn put_tags(&self, key_id: &KeyId, tags: &[Tag]) -> StoreResult<()> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        for t in tags {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO tags (key_id, tag_key, tag_value) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![key_id.as_str(), t.key, t.value])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn remove_tags(&self, key_id: &KeyId, tag_keys: &[String]) -> StoreResult<()> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        for k in tag_keys {
            tx.prepare_cached("DELETE FROM tags WHERE key_id = ?1 AND tag_key = ?2")?
                .execute(params![key_id.as_str(), k])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn list_tags(&self, key_id: &KeyId) -> StoreResult<Vec<Tag>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT tag_key, tag_value FROM tags WHERE key_id = ?1 ORDER BY tag_key",
        )?;
        let rows = stmt.query_map([key_id.as_str()], |r| {
            Ok(Tag {
                key: r.get(0)?,
                value: r.get(1)?,
            })
        })?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r?);
        }
        Ok(out)
    }

    fn insert_custom_key_store(&self, r: &CustomKeyStoreRecord, limit: usize) -> StoreResult<()> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let n: i64 = tx
            .prepare_cached(
                "SELECT COUNT(*) FROM custom_key_stores WHERE account = ?1 AND region = ?2",
            )?
            .query_row([&r.account, &r.region], |row| row.get(0))?;
        let usage = usize::try_from(n).unwrap_or(0);
        if usage >= limit {
            return Err(StoreError::CustomKeyStoreQuota { limit, usage });
        }
        tx.prepare_cached(&format!(
            "INSERT INTO custom_key_stores ({STORE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
        ))?
        .execute(params![
            r.id,
            r.account,
            r.region,
            r.name,
            r.store_type.as_str(),
            r.cluster_id,
            r.trust_anchor,
            r.password_encrypted,
            r.connection_state.as_str(),
            r.connection_error,
            to_ms(r.creation_date),
            r.row_version,
            r.xks.as_ref().map(|x| x.uri_endpoint.clone()),
            r.xks.as_ref().map(|x| x.uri_path.clone()),
            r.xks.as_ref().map(|x| x.connectivity.clone()),
            r.xks.as_ref().and_then(|x| x.vpc_endpoint_service_name.clone()),
            r.xks.as_ref().map(|x| x.access_key_id.clone()),
            r.xks.as_ref().and_then(|x| x.credential_date).map(to_ms),
        ])
        .map_err(|e| store_write_error(e, r))?;
        tx.commit()?;
        Ok(())
    }

    fn get_custom_key_store(&self, id: &str) -> StoreResult<Option<CustomKeyStoreRecord>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {STORE_COLUMNS} FROM custom_key_stores WHERE id = ?1"
        ))?;
        let mut rows = stmt.query([id])?;
        match rows.next()? {
            Some(row) => Ok(Some(store_from_row(row)?)),
            None => Ok(None),
        }
    }

    fn list_custom_key_stores(
        &self,
        account: &str,
        region: &str,
    ) -> StoreResult<Vec<CustomKeyStoreRecord>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {STORE_COLUMNS} FROM custom_key_stores WHERE account = ?1 AND region = ?2 ORDER BY id"
        ))?;
        let mut rows = stmt.query(params![account, region])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(store_from_row(row)?);
        }
        Ok(out)
    }

    fn update_custom_key_store(
        &self,
        r: &CustomKeyStoreRecord,
    ) -> StoreResult<CustomKeyStoreRecord> {
        let conn = self.writer();
        // A store that moves to another cluster leaves the shared ones (see the migration).
        let n = conn
            .prepare_cached(
                "UPDATE custom_key_stores SET name = ?2, cluster_id = ?3, trust_anchor = ?4, \
                 password_encrypted = ?5, connection_state = ?6, connection_error = ?7, \
                 xks_uri_endpoint = ?9, xks_uri_path = ?10, xks_connectivity = ?11, \
                 xks_vpc_service = ?12, xks_access_key_id = ?13, xks_credential_ms = ?14, \
                 cluster_shared = cluster_shared AND cluster_id IS ?3, \
                 row_version = row_version + 1 WHERE id = ?1 AND row_version = ?8",
            )?
            .execute(params![
                r.id,
                r.name,
                r.cluster_id,
                r.trust_anchor,
                r.password_encrypted,
                r.connection_state.as_str(),
                r.connection_error,
                r.row_version,
                r.xks.as_ref().map(|x| x.uri_endpoint.clone()),
                r.xks.as_ref().map(|x| x.uri_path.clone()),
                r.xks.as_ref().map(|x| x.connectivity.clone()),
                r.xks
                    .as_ref()
                    .and_then(|x| x.vpc_endpoint_service_name.clone()),
                r.xks.as_ref().map(|x| x.access_key_id.clone()),
                r.xks.as_ref().and_then(|x| x.credential_date).map(to_ms),
            ])
            .map_err(|e| store_write_error(e, r))?;
        if n != 1 {
            return Err(StoreError::Conflict);
        }
        let mut out = r.clone();
        out.row_version += 1;
        Ok(out)
    }

    fn delete_custom_key_store(&self, id: &str) -> StoreResult<()> {
        let conn = self.writer();
        conn.prepare_cached("DELETE FROM custom_key_stores WHERE id = ?1")?
            .execute([id])?;
        Ok(())
    }

    fn find_key_by_xks_id(&self, store_id: &str, xks_key_id: &str) -> StoreResult<Option<KeyId>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT key_id FROM keys WHERE custom_key_store_id = ?1 AND xks_key_id = ?2",
        )?;
        let mut rows = stmt.query(params![store_id, xks_key_id])?;
        match rows.next()? {
            Some(row) => {
                let id: String = row.get(0)?;
                Ok(Some(
                    KeyId::from_storage(&id).ok_or_else(|| corrupt("key id", &id))?,
                ))
            }
            None => Ok(None),
        }
    }

    fn count_keys_in_store(&self, store_id: &str) -> StoreResult<usize> {
        let conn = self.reader();
        let n: i64 = conn
            .prepare_cached("SELECT COUNT(*) FROM keys WHERE custom_key_store_id = ?1")?
            .query_row([store_id], |r| r.get(0))?;
        Ok(n as usize)
    }

    fn count_keys(&self, account: &str, region: &str) -> StoreResult<usize> {
        key_count(&self.reader(), account, region)
    }

    fn recount_keys(&self, account: &str, region: &str) -> StoreResult<usize> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let n = recount_keys(&tx, account, region)?;
        tx.commit()?;
        Ok(n)
    }

    fn ping(&self) -> StoreResult<()> {
        let conn = self.reader();
        conn.prepare_cached("SELECT 1")?
            .query_row([], |r| r.get::<_, i64>(0))?;
        Ok(())
    }

    fn get_system_secret(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached("SELECT value FROM system_secrets WHERE name = ?1")?;
        let mut rows = stmt.query([name])?;
        match rows.next()? {
            Some(row) => Ok(Some(row.get(0)?)),
            None => Ok(None),
        }
    }

    fn put_system_secret_if_absent(&self, name: &str, value: &[u8]) -> StoreResult<Vec<u8>> {
        let conn = self.writer();
        conn.prepare_cached("INSERT OR IGNORE INTO system_secrets (name, value) VALUES (?1, ?2)")?
            .execute(params![name, value])?;
        let v: Vec<u8> = conn
            .prepare_cached("SELECT value FROM system_secrets WHERE name = ?1")?
            .query_row([name], |r| r.get(0))?;
        Ok(v)
    }

    fn insert_grant(
        &self,
        g: &GrantRecord,
        limit: usize,
        same: SameGrant,
    ) -> StoreResult<(GrantRecord, bool)> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        if g.name.is_some() {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {GRANT_COLUMNS} FROM grants WHERE key_id = ?1 AND name = ?2"
            ))?;
            let mut rows = stmt.query(params![g.key_id.as_str(), g.name])?;
            while let Some(row) = rows.next()? {
                let existing = grant_from_row(row)?;
                if same(&existing, g) {
                    return Ok((existing, false));
                }
            }
        }
        let n: i64 = tx
            .prepare_cached("SELECT COUNT(*) FROM grants WHERE key_id = ?1")?
            .query_row([g.key_id.as_str()], |r| r.get(0))?;
        let usage = usize::try_from(n).unwrap_or(0);
        if usage >= limit {
            return Err(StoreError::GrantQuota { limit, usage });
        }
        tx.prepare_cached(&format!(
            "INSERT INTO grants ({GRANT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        ))?
        .execute(params![
            g.grant_id,
            g.key_id.as_str(),
            g.issuing_account,
            g.name,
            g.grantee_principal,
            g.retiring_principal,
            g.operations.join(","),
            constraints_to_json(&g.constraints),
            to_ms(g.creation_date),
        ])?;
        tx.commit()?;
        Ok((g.clone(), true))
    }

    fn list_grants(&self, key_id: &KeyId) -> StoreResult<Vec<GrantRecord>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE key_id = ?1 ORDER BY creation_ms, grant_id"
        ))?;
        let mut rows = stmt.query([key_id.as_str()])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(grant_from_row(row)?);
        }
        Ok(out)
    }

    fn get_grant(&self, grant_id: &str) -> StoreResult<Option<GrantRecord>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE grant_id = ?1"
        ))?;
        let mut rows = stmt.query([grant_id])?;
        match rows.next()? {
            Some(row) => Ok(Some(grant_from_row(row)?)),
            None => Ok(None),
        }
    }

    fn delete_grant(&self, grant_id: &str) -> StoreResult<bool> {
        let conn = self.writer();
        let n = conn
            .prepare_cached("DELETE FROM grants WHERE grant_id = ?1")?
            .execute([grant_id])?;
        Ok(n > 0)
    }

    fn list_retirable_grants(
        &self,
        principal: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<GrantRecord>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE retiring_principal = ?1 AND grant_id > ?2 \
             ORDER BY grant_id LIMIT ?3"
        ))?;
        let mut rows = stmt.query(params![principal, after.unwrap_or(""), limit as i64])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(grant_from_row(row)?);
        }
        Ok(out)
    }

    fn all_custom_key_stores(&self) -> StoreResult<Vec<CustomKeyStoreRecord>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {STORE_COLUMNS} FROM custom_key_stores ORDER BY id"
        ))?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(store_from_row(row)?);
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl MetadataStore for SqliteStore {
    async fn insert_key(
        &self,
        key: &KeyRecord,
        material: &MaterialRecord,
        tags: &[Tag],
        limit: usize,
    ) -> StoreResult<()> {
        let (key, material, tags) = (key.clone(), material.clone(), tags.to_vec());
        self.run(move |db| db.insert_key(&key, &material, &tags, limit))
            .await
    }

    async fn get_key(&self, key_id: &KeyId) -> StoreResult<Option<KeyRecord>> {
        let key_id = key_id.clone();
        self.run(move |db| db.get_key(&key_id)).await
    }

    async fn update_key(&self, key: &KeyRecord) -> StoreResult<KeyRecord> {
        let key = key.clone();
        self.run(move |db| db.update_key(&key)).await
    }

    async fn rotate_key(
        &self,
        key: &KeyRecord,
        material: &MaterialRecord,
    ) -> StoreResult<KeyRecord> {
        let (key, material) = (key.clone(), material.clone());
        self.run(move |db| db.rotate_key(&key, &material)).await
    }

    async fn delete_key(&self, key_id: &KeyId, row_version: i64) -> StoreResult<bool> {
        let key_id = key_id.clone();
        self.run(move |db| db.delete_key(&key_id, row_version))
            .await
    }

    async fn save_material(
        &self,
        key: &KeyRecord,
        material: &MaterialRecord,
    ) -> StoreResult<KeyRecord> {
        let (key, material) = (key.clone(), material.clone());
        self.run(move |db| db.save_material(&key, &material)).await
    }

    async fn remove_material(&self, key: &KeyRecord, version: u32) -> StoreResult<KeyRecord> {
        let key = key.clone();
        self.run(move |db| db.remove_material(&key, version)).await
    }

    async fn keys_with_expired_material(&self, now: DateTime<Utc>) -> StoreResult<Vec<KeyId>> {
        self.run(move |db| db.keys_with_expired_material(now)).await
    }

    async fn list_keys(
        &self,
        account: &str,
        region: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<KeyRecord>> {
        let (account, region, after) = (
            account.to_string(),
            region.to_string(),
            after.map(str::to_string),
        );
        self.run(move |db| db.list_keys(&account, &region, after.as_deref(), limit))
            .await
    }

    async fn keys_due_for_deletion(&self, now: DateTime<Utc>) -> StoreResult<Vec<KeyId>> {
        self.run(move |db| db.keys_due_for_deletion(now)).await
    }

    async fn keys_due_for_rotation(&self, now: DateTime<Utc>) -> StoreResult<Vec<KeyId>> {
        self.run(move |db| db.keys_due_for_rotation(now)).await
    }

    async fn get_material(
        &self,
        key_id: &KeyId,
        version: u32,
    ) -> StoreResult<Option<MaterialRecord>> {
        let key_id = key_id.clone();
        self.run(move |db| db.get_material(&key_id, version)).await
    }

    async fn list_materials(&self, key_id: &KeyId) -> StoreResult<Vec<MaterialRecord>> {
        let key_id = key_id.clone();
        self.run(move |db| db.list_materials(&key_id)).await
    }

    async fn create_alias(&self, alias: &AliasRecord, limit: usize) -> StoreResult<()> {
        let alias = alias.clone();
        self.run(move |db| db.create_alias(&alias, limit)).await
    }

    async fn get_alias(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> StoreResult<Option<AliasRecord>> {
        let (account, region, name) = (account.to_string(), region.to_string(), name.to_string());
        self.run(move |db| db.get_alias(&account, &region, &name))
            .await
    }

    async fn update_alias(&self, alias: &AliasRecord, limit: usize) -> StoreResult<()> {
        let alias = alias.clone();
        self.run(move |db| db.update_alias(&alias, limit)).await
    }

    async fn delete_alias(&self, account: &str, region: &str, name: &str) -> StoreResult<bool> {
        let (account, region, name) = (account.to_string(), region.to_string(), name.to_string());
        self.run(move |db| db.delete_alias(&account, &region, &name))
            .await
    }

    async fn list_aliases(
        &self,
        account: &str,
        region: &str,
        key_id: Option<&KeyId>,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<AliasRecord>> {
        let (account, region, key_id, after) = (
            account.to_string(),
            region.to_string(),
            key_id.cloned(),
            after.map(str::to_string),
        );
        self.run(move |db| {
            db.list_aliases(&account, &region, key_id.as_ref(), after.as_deref(), limit)
        })
        .await
    }

    async fn count_aliases(&self, key_id: &KeyId) -> StoreResult<usize> {
        let key_id = key_id.clone();
        self.run(move |db| db.count_aliases(&key_id)).await
    }

    async fn put_tags(&self, key_id: &KeyId, tags: &[Tag]) -> StoreResult<()> {
        let (key_id, tags) = (key_id.clone(), tags.to_vec());
        self.run(move |db| db.put_tags(&key_id, &tags)).await
    }

    async fn remove_tags(&self, key_id: &KeyId, tag_keys: &[String]) -> StoreResult<()> {
        let (key_id, tag_keys) = (key_id.clone(), tag_keys.to_vec());
        self.run(move |db| db.remove_tags(&key_id, &tag_keys)).await
    }

    async fn list_tags(&self, key_id: &KeyId) -> StoreResult<Vec<Tag>> {
        let key_id = key_id.clone();
        self.run(move |db| db.list_tags(&key_id)).await
    }

    async fn insert_custom_key_store(
        &self,
        store: &CustomKeyStoreRecord,
        limit: usize,
    ) -> StoreResult<()> {
        let store = store.clone();
        self.run(move |db| db.insert_custom_key_store(&store, limit))
            .await
    }

    async fn get_custom_key_store(&self, id: &str) -> StoreResult<Option<CustomKeyStoreRecord>> {
        let id = id.to_string();
        self.run(move |db| db.get_custom_key_store(&id)).await
    }

    async fn list_custom_key_stores(
        &self,
        account: &str,
        region: &str,
    ) -> StoreResult<Vec<CustomKeyStoreRecord>> {
        let (account, region) = (account.to_string(), region.to_string());
        self.run(move |db| db.list_custom_key_stores(&account, &region))
            .await
    }

    async fn update_custom_key_store(
        &self,
        store: &CustomKeyStoreRecord,
    ) -> StoreResult<CustomKeyStoreRecord> {
        let store = store.clone();
        self.run(move |db| db.update_custom_key_store(&store)).await
    }

    async fn delete_custom_key_store(&self, id: &str) -> StoreResult<()> {
        let id = id.to_string();
        self.run(move |db| db.delete_custom_key_store(&id)).await
    }

    async fn all_custom_key_stores(&self) -> StoreResult<Vec<CustomKeyStoreRecord>> {
        self.run(move |db| db.all_custom_key_stores()).await
    }

    async fn count_keys_in_store(&self, store_id: &str) -> StoreResult<usize> {
        let store_id = store_id.to_string();
        self.run(move |db| db.count_keys_in_store(&store_id)).await
    }

    async fn count_keys(&self, account: &str, region: &str) -> StoreResult<usize> {
        let (account, region) = (account.to_string(), region.to_string());
        self.run(move |db| db.count_keys(&account, &region)).await
    }

    async fn recount_keys(&self, account: &str, region: &str) -> StoreResult<usize> {
        let (account, region) = (account.to_string(), region.to_string());
        self.run(move |db| db.recount_keys(&account, &region)).await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.run(|db| db.ping()).await
    }

    async fn find_key_by_xks_id(
        &self,
        store_id: &str,
        xks_key_id: &str,
    ) -> StoreResult<Option<KeyId>> {
        let (store_id, xks_key_id) = (store_id.to_string(), xks_key_id.to_string());
        self.run(move |db| db.find_key_by_xks_id(&store_id, &xks_key_id))
            .await
    }

    async fn insert_grant(
        &self,
        grant: &GrantRecord,
        limit: usize,
        same: SameGrant,
    ) -> StoreResult<(GrantRecord, bool)> {
        let grant = grant.clone();
        self.run(move |db| db.insert_grant(&grant, limit, same))
            .await
    }

    async fn list_grants(&self, key_id: &KeyId) -> StoreResult<Arc<[GrantRecord]>> {
        let key_id = key_id.clone();
        self.run(move |db| db.list_grants(&key_id).map(Arc::from))
            .await
    }

    async fn get_grant(&self, grant_id: &str) -> StoreResult<Option<GrantRecord>> {
        let grant_id = grant_id.to_string();
        self.run(move |db| db.get_grant(&grant_id)).await
    }

    async fn delete_grant(&self, grant_id: &str) -> StoreResult<bool> {
        let grant_id = grant_id.to_string();
        self.run(move |db| db.delete_grant(&grant_id)).await
    }

    async fn list_retirable_grants(
        &self,
        principal: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<GrantRecord>> {
        let (principal, after) = (principal.to_string(), after.map(str::to_string));
        self.run(move |db| db.list_retirable_grants(&principal, after.as_deref(), limit))
            .await
    }

    async fn get_system_secret(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        let name = name.to_string();
        self.run(move |db| db.get_system_secret(&name)).await
    }

    async fn put_system_secret_if_absent(&self, name: &str, value: &[u8]) -> StoreResult<Vec<u8>> {
        let (name, value) = (name.to_string(), value.to_vec());
        self.run(move |db| db.put_system_secret_if_absent(&name, &value))
            .await
    }

    /// One node per SQLite file: the lease is always free.
    async fn try_lease(&self, _name: LeaseName) -> StoreResult<Option<Lease>> {
        Ok(Some(Lease::local()))
    }

    /// One node per SQLite file: no other node connects its stores.
    async fn claim_store_connect(
        &self,
        _store_id: &str,
        _wait: bool,
    ) -> StoreResult<Option<Lease>> {
        Ok(Some(Lease::local()))
    }
}
