//! The PostgreSQL schema as versioned migrations, applied in order under an advisory lock and
//! recorded in `kms_schema_version`.
//!
//! Text columns that are compared or ordered (ids, names, tag keys) use the `"C"` collation:
//! pagination (`name > $after ORDER BY name`) then orders bytes as SQLite does, whatever the
//! database's locale. Timestamps are milliseconds since the epoch (BIGINT), as in SQLite.
//!
//! Triggers on `keys` and `grants` send `NOTIFY kms_changes` with `k:<key id>` or `g:<key id>`
//! in the writing transaction: the other nodes' caches drop the entry when it commits (see
//! `listen.rs` and `docs/architecture.md`, "Several nodes"). A trigger on `custom_key_stores`
//! sends `s:<store id>`: each node brings its attachment of the store in step.

/// The channel the triggers notify and the nodes listen on.
pub const CHANNEL: &str = "kms_changes";

/// Migration `i` takes the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE keys (
    key_id TEXT COLLATE "C" PRIMARY KEY,
    account TEXT COLLATE "C" NOT NULL,
    region TEXT COLLATE "C" NOT NULL,
    arn TEXT NOT NULL,
    description TEXT NOT NULL,
    key_spec TEXT NOT NULL,
    key_usage TEXT NOT NULL,
    origin TEXT NOT NULL,
    state TEXT NOT NULL,
    creation_ms BIGINT NOT NULL,
    deletion_ms BIGINT,
    pending_window_days BIGINT,
    policy TEXT NOT NULL,
    rotation_enabled BOOLEAN NOT NULL,
    rotation_period_days BIGINT,
    next_rotation_ms BIGINT,
    current_material BIGINT NOT NULL,
    row_version BIGINT NOT NULL,
    custom_key_store_id TEXT COLLATE "C",
    xks_key_id TEXT COLLATE "C",
    public_key BYTEA
);
CREATE INDEX keys_by_account ON keys(account, region, key_id);
CREATE INDEX keys_by_store ON keys(custom_key_store_id);
CREATE INDEX keys_pending_deletion ON keys(deletion_ms) WHERE state = 'PendingDeletion';
CREATE INDEX keys_rotation_due ON keys(next_rotation_ms) WHERE rotation_enabled;
CREATE TABLE key_material (
    key_id TEXT COLLATE "C" NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    wrapped BYTEA NOT NULL,
    created_ms BIGINT NOT NULL,
    rotation_type TEXT,
    PRIMARY KEY (key_id, version)
);
CREATE TABLE aliases (
    account TEXT COLLATE "C" NOT NULL,
    region TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    target_key_id TEXT COLLATE "C" NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
    creation_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (account, region, name)
);
CREATE INDEX aliases_by_key ON aliases(target_key_id);
CREATE TABLE tags (
    key_id TEXT COLLATE "C" NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
    tag_key TEXT COLLATE "C" NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (key_id, tag_key)
);
CREATE TABLE custom_key_stores (
    id TEXT COLLATE "C" PRIMARY KEY,
    account TEXT COLLATE "C" NOT NULL,
    region TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    store_type TEXT NOT NULL,
    cluster_id TEXT,
    trust_anchor TEXT,
    password_encrypted BYTEA NOT NULL,
    connection_state TEXT NOT NULL,
    connection_error TEXT,
    creation_ms BIGINT NOT NULL,
    row_version BIGINT NOT NULL,
    xks_uri_endpoint TEXT,
    xks_uri_path TEXT,
    xks_connectivity TEXT,
    xks_vpc_service TEXT,
    xks_access_key_id TEXT,
    xks_credential_ms BIGINT,
    UNIQUE (account, region, name)
);
CREATE TABLE system_secrets (
    name TEXT COLLATE "C" PRIMARY KEY,
    value BYTEA NOT NULL
);
CREATE TABLE grants (
    grant_id TEXT COLLATE "C" PRIMARY KEY,
    key_id TEXT COLLATE "C" NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
    issuing_account TEXT NOT NULL,
    name TEXT,
    grantee_principal TEXT NOT NULL,
    retiring_principal TEXT COLLATE "C",
    operations TEXT NOT NULL,
    constraints TEXT,
    creation_ms BIGINT NOT NULL
);
CREATE INDEX grants_by_key ON grants(key_id, creation_ms);
CREATE INDEX grants_by_retiring ON grants(retiring_principal, grant_id);

CREATE FUNCTION kms_notify_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('kms_changes', 'k:' || OLD.key_id);
    ELSE
        PERFORM pg_notify('kms_changes', 'k:' || NEW.key_id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER keys_notify AFTER INSERT OR UPDATE OR DELETE ON keys
    FOR EACH ROW EXECUTE FUNCTION kms_notify_key();
CREATE FUNCTION kms_notify_grant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('kms_changes', 'g:' || OLD.key_id);
    ELSE
        PERFORM pg_notify('kms_changes', 'g:' || NEW.key_id);
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.key_id <> NEW.key_id THEN
        PERFORM pg_notify('kms_changes', 'g:' || OLD.key_id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER grants_notify AFTER INSERT OR UPDATE OR DELETE ON grants
    FOR EACH ROW EXECUTE FUNCTION kms_notify_grant();
"#,
    // Key material ids and imported key material (issue 15 parts 1-2): one id per material,
    // random for the material that existed before; per-material import state and expiry.
    r#"
ALTER TABLE key_material ADD COLUMN material_id TEXT;
ALTER TABLE key_material ADD COLUMN import_state TEXT;
ALTER TABLE key_material ADD COLUMN expiration_model TEXT;
ALTER TABLE key_material ADD COLUMN valid_to_ms BIGINT;
ALTER TABLE key_material ADD COLUMN material_description TEXT;
UPDATE key_material SET material_id = md5(random()::text || key_id || version::text)
    || md5(version::text || random()::text || key_id) WHERE material_id IS NULL;
CREATE INDEX key_material_expiry ON key_material(valid_to_ms) WHERE valid_to_ms IS NOT NULL;
"#,
    // Multi-Region keys (issue 15 part 3): the primary's region on every key of a set.
    r#"
ALTER TABLE keys ADD COLUMN mrk_primary_region TEXT COLLATE "C";
"#,
    // Custom key stores on every node (issue 16): a change of a store's row notifies
    // `s:<store id>`, and each node attaches or detaches the store (`service::store_sync`).
    r#"
CREATE FUNCTION kms_notify_custom_key_store() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('kms_changes', 's:' || OLD.id);
    ELSE
        PERFORM pg_notify('kms_changes', 's:' || NEW.id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER custom_key_stores_notify AFTER INSERT OR UPDATE OR DELETE ON custom_key_stores
    FOR EACH ROW EXECUTE FUNCTION kms_notify_custom_key_store();
"#,
    // The key quota (issue 16): keys per account and region, kept by insert_key and
    // delete_key in their transactions, filled from the keys there are. Creates of one account
    // and region serialize on their row from the conditional update to the commit.
    r#"
CREATE TABLE key_counts (
    account TEXT COLLATE "C" NOT NULL,
    region TEXT COLLATE "C" NOT NULL,
    n BIGINT NOT NULL CHECK (n >= 0),
    PRIMARY KEY (account, region)
);
INSERT INTO key_counts (account, region, n)
    SELECT account, region, COUNT(*) FROM keys GROUP BY account, region;
"#,
    // One custom key store per cluster, across accounts and regions: a unique index decides
    // concurrent creates and updates, from any node. Stores that already shared a cluster are
    // kept, not refused: the oldest on each cluster holds it, the others are marked
    // `cluster_shared` and left out of the index until they move to another cluster; when the
    // holder is deleted or moves, the trigger hands the cluster to the oldest marked store left
    // on it, so a cluster in use always has a holder in the index (`docs/operations.md`). The
    // candidate is locked (`FOR UPDATE`): one that another transaction deletes or moves while
    // the hand-over waits for it is skipped for the next, instead of the hand-over updating
    // nothing and leaving the cluster without a holder.
    r#"
ALTER TABLE custom_key_stores ADD COLUMN cluster_shared BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE custom_key_stores s SET cluster_shared = TRUE
    WHERE cluster_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM custom_key_stores o
        WHERE o.cluster_id = s.cluster_id AND (o.creation_ms, o.id) < (s.creation_ms, s.id));
CREATE UNIQUE INDEX custom_key_stores_one_per_cluster ON custom_key_stores(cluster_id)
    WHERE cluster_id IS NOT NULL AND NOT cluster_shared;
CREATE FUNCTION kms_cluster_hand_over() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.cluster_id IS NOT NULL AND NOT OLD.cluster_shared
        AND (TG_OP = 'DELETE' OR NEW.cluster_id IS DISTINCT FROM OLD.cluster_id) THEN
        UPDATE custom_key_stores SET cluster_shared = FALSE WHERE id = (
            SELECT id FROM custom_key_stores WHERE cluster_id = OLD.cluster_id AND cluster_shared
            ORDER BY creation_ms, id LIMIT 1 FOR UPDATE);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER custom_key_stores_hand_over AFTER DELETE OR UPDATE OF cluster_id
    ON custom_key_stores FOR EACH ROW EXECUTE FUNCTION kms_cluster_hand_over();
"#,
];
