//! PostgreSQL metadata store: several `kms` nodes share one database.
//!
//! A [`PgStore`] is a pool of connections (`deadpool-postgres` over `tokio-postgres`, TLS
//! through rustls) running the same statements as the SQLite store, with prepared statements
//! cached per connection. Every write is one transaction, committed (and so durable, with
//! PostgreSQL's default `synchronous_commit`) before the call returns. Uniqueness (aliases,
//! custom key store names, ids) is the database's constraints; optimistic concurrency is the
//! `row_version` column, as in SQLite.
//!
//! Cluster-wide concerns live here too: schema migrations under an advisory lock
//! ([`PgStore::migrate`]), leases for background work and custom key store connect claims
//! (session advisory locks held on a dedicated connection), the per-key and per-account quota
//! counts (transaction advisory locks) and the listener that keeps node caches coherent
//! (`listen.rs`).

mod listen;
mod schema;

pub(crate) use listen::spawn_listener;

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::{
    Lease, LeaseName, MetadataStore, MigrateOnOpen, Migrated, SameGrant, StoreError, StoreResult,
};
use crate::config::{PgTls, PostgresConfig};
use crate::model::{
    AliasRecord, ConnectionState, CustomKeyStoreRecord, CustomKeyStoreType, GrantRecord, KeyId,
    KeyRecord, KeySpec, KeyState, KeyUsage, MaterialRecord, Origin, RotationType, Tag,
    XksProxySettings,
};
use crate::model::{ExpirationModel, ImportInfo, ImportState};
use secrecy::ExposeSecret;

/// Advisory lock keys (one 64-bit space per database): arbitrary constants, "kms" in ASCII
/// followed by a purpose number.
const MIGRATION_LOCK: i64 = 0x6b6d_7300_0000_0001;
const MAINTENANCE_LOCK: i64 = 0x6b6d_7300_0000_0002;
const XKS_HEALTH_LOCK: i64 = 0x6b6d_7300_0000_0003;
/// First key of the two-key transaction advisory lock on a key's grants (the second is
/// `hashtext(key id)`; two-key locks never conflict with the one-key locks above): CreateGrant's
/// `Name` look-up, quota count and insert, one at a time per key from any node.
const GRANT_LOCK_CLASS: i32 = 0x6b6d_7301;
/// First key of the two-key transaction advisory lock on a key's aliases (the aliases-per-key
/// quota: count and write one at a time per target key, from any node).
const ALIAS_LOCK_CLASS: i32 = 0x6b6d_7302;
/// First key of the two-key transaction advisory lock on an account's custom key stores in a
/// region (the second is `hashtext(account:region)`): the quota count and the insert.
const STORE_QUOTA_LOCK_CLASS: i32 = 0x6b6d_7303;
/// First key of the two-key *session* advisory lock that claims a custom key store's connect
/// (the second is `hashtext(store id)`), held on a connection of its own.
const STORE_CONNECT_LOCK_CLASS: i32 = 0x6b6d_7304;

/// The PostgreSQL store (see the module docs).
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    config: Arc<PostgresConfig>,
}

/// The driver's connection settings and TLS connector for a configuration.
pub(crate) fn connector(
    config: &PostgresConfig,
) -> StoreResult<(
    tokio_postgres::Config,
    tokio_postgres_rustls::MakeRustlsConnect,
)> {
    let mut pg: tokio_postgres::Config = config
        .url
        .parse()
        .map_err(|e| StoreError::Database(format!("store.url: {e}")))?;
    if let Some(p) = &config.password {
        pg.password(p.expose_secret().as_bytes());
    }
    pg.connect_timeout(config.connect_timeout);
    pg.keepalives(true);
    pg.keepalives_idle(std::time::Duration::from_secs(10));
    if pg.get_application_name().is_none() {
        pg.application_name("kms");
    }
    pg.ssl_mode(match config.tls {
        PgTls::Disable => tokio_postgres::config::SslMode::Disable,
        // With rustls verifying the chain and the host name, "require" is verify-full.
        PgTls::VerifyFull => tokio_postgres::config::SslMode::Require,
    });
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = match &config.ca {
        Some(ca) => {
            roots_of(&ca.pem())?; // a bad file refuses the start, as before any connection
            Arc::new(CaVerifier {
                ca: ca.clone(),
                provider: provider.clone(),
            })
        }
        None => {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| StoreError::Database(format!("store TLS: {e}")))?
        }
    };
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Database(format!("store TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok((pg, tokio_postgres_rustls::MakeRustlsConnect::new(tls)))
}

/// The CA certificates of a PEM bundle (`store.tls_ca_file`).
fn roots_of(pem: &[u8]) -> StoreResult<rustls::RootCertStore> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| StoreError::Database(format!("store.tls_ca_file: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| StoreError::Database(format!("store.tls_ca_file: {e}")))?;
    }
    Ok(roots)
}

/// Verifies the server's certificate chain and name as rustls's WebPKI verifier does, against
/// the CAs of `store.tls_ca_file` in force at the handshake ([`crate::config::CaFile`]: a
/// reload on SIGHUP applies to the next connection without rebuilding the pool).
#[derive(Debug)]
struct CaVerifier {
    ca: crate::config::CaFile,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for CaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        intermediates: &[rustls_pki_types::CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let roots = roots_of(&self.ca.pem()).map_err(|e| rustls::Error::General(e.to_string()))?;
        rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(format!("store.tls_ca_file: {e}")))?
        .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// An error with its causes: the driver's own text is only the kind ("error performing TLS
/// handshake"); the cause says what went wrong ("invalid peer certificate: UnknownIssuer", or
/// the server's message). No cause carries the password.
fn describe(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.code() {
            Some(c) if c.code().starts_with("23") => StoreError::AlreadyExists,
            // Connection failures, server shutting down or starting, too many connections,
            // serialization failures and deadlocks: retryable.
            Some(c)
                if c.code().starts_with("08")
                    || c.code().starts_with("57P")
                    || *c == SqlState::TOO_MANY_CONNECTIONS
                    || *c == SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == SqlState::T_R_DEADLOCK_DETECTED =>
            {
                StoreError::Unavailable(describe(&e))
            }
            Some(_) => StoreError::Database(describe(&e)),
            None => StoreError::Unavailable(describe(&e)),
        }
    }
}

/// The unique index of one store per cluster (made by a migration in `schema.rs`).
const ONE_STORE_PER_CLUSTER: &str = "custom_key_stores_one_per_cluster";
/// The unique (account, region, name) of custom key stores (PostgreSQL's default name).
const STORE_NAME_UNIQUE: &str = "custom_key_stores_account_region_name_key";

/// A custom key store write refused by a unique index: which one (the name, the cluster), as
/// its typed error; any other failure as usual.
fn store_write_error(e: tokio_postgres::Error, r: &CustomKeyStoreRecord) -> StoreError {
    let violated = e
        .as_db_error()
        .filter(|d| *d.code() == SqlState::UNIQUE_VIOLATION)
        .and_then(|d| d.constraint());
    match violated {
        Some(ONE_STORE_PER_CLUSTER) => StoreError::ClusterInUse {
            cluster_id: r.cluster_id.clone().unwrap_or_default(),
        },
        Some(STORE_NAME_UNIQUE) => StoreError::CustomKeyStoreNameInUse {
            name: r.name.clone(),
        },
        _ => e.into(),
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(ms: i64) -> StoreResult<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {ms}")))
}

fn corrupt(what: &str, v: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} {v:?}"))
}

fn version_from(v: i64) -> StoreResult<u32> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("material version {v}")))
}

/// `Row::try_get` with the store's error.
fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, idx: usize) -> StoreResult<T> {
    row.try_get(idx)
        .map_err(|e| StoreError::Corrupt(format!("column {idx}: {e}")))
}

const KEY_COLUMNS: &str = "key_id, account, region, arn, description, key_spec, key_usage, \
    origin, state, creation_ms, deletion_ms, pending_window_days, policy, rotation_enabled, \
    rotation_period_days, next_rotation_ms, current_material, row_version, custom_key_store_id, \
    xks_key_id, public_key, mrk_primary_region";

const STORE_COLUMNS: &str = "id, account, region, name, store_type, cluster_id, trust_anchor, \
    password_encrypted, connection_state, connection_error, creation_ms, row_version, \
    xks_uri_endpoint, xks_uri_path, xks_connectivity, xks_vpc_service, xks_access_key_id, \
    xks_credential_ms";

const GRANT_COLUMNS: &str = "grant_id, key_id, issuing_account, name, grantee_principal, \
    retiring_principal, operations, constraints, creation_ms";

const MATERIAL_COLUMNS: &str = "key_id, version, wrapped, created_ms, rotation_type, \
    material_id, import_state, expiration_model, valid_to_ms, material_description";

const ALIAS_COLUMNS: &str = "account, region, name, target_key_id, creation_ms, updated_ms";

fn key_from_row(row: &Row) -> StoreResult<KeyRecord> {
    let key_id: String = get(row, 0)?;
    let key_spec: String = get(row, 5)?;
    let key_usage: String = get(row, 6)?;
    let origin: String = get(row, 7)?;
    let state: String = get(row, 8)?;
    Ok(KeyRecord {
        key_id: KeyId::from_storage(&key_id).ok_or_else(|| corrupt("key id", &key_id))?,
        account: get(row, 1)?,
        region: get(row, 2)?,
        arn: get(row, 3)?,
        description: get(row, 4)?,
        key_spec: KeySpec::parse(&key_spec).ok_or_else(|| corrupt("key spec", &key_spec))?,
        key_usage: KeyUsage::parse(&key_usage).ok_or_else(|| corrupt("key usage", &key_usage))?,
        origin: Origin::parse(&origin).ok_or_else(|| corrupt("origin", &origin))?,
        state: KeyState::parse(&state).ok_or_else(|| corrupt("state", &state))?,
        creation_date: from_ms(get(row, 9)?)?,
        deletion_date: get::<Option<i64>>(row, 10)?.map(from_ms).transpose()?,
        pending_window_days: get(row, 11)?,
        policy: get(row, 12)?,
        rotation_enabled: get(row, 13)?,
        rotation_period_days: get(row, 14)?,
        next_rotation_date: get::<Option<i64>>(row, 15)?.map(from_ms).transpose()?,
        current_material: version_from(get(row, 16)?)?,
        row_version: get(row, 17)?,
        custom_key_store_id: get(row, 18)?,
        xks_key_id: get(row, 19)?,
        public_key: get(row, 20)?,
        mrk_primary_region: get(row, 21)?,
        unavailable: false,
    })
}

fn material_from_row(row: &Row) -> StoreResult<MaterialRecord> {
    let key_id: String = get(row, 0)?;
    let rotation_type: Option<String> = get(row, 4)?;
    let import_state: Option<String> = get(row, 6)?;
    let import = match import_state {
        None => None,
        Some(state) => {
            let model: Option<String> = get(row, 7)?;
            let model = model.unwrap_or_default();
            Some(ImportInfo {
                state: ImportState::parse(&state).ok_or_else(|| corrupt("import state", &state))?,
                expiration_model: ExpirationModel::parse(&model)
                    .ok_or_else(|| corrupt("expiration model", &model))?,
                valid_to: get::<Option<i64>>(row, 8)?.map(from_ms).transpose()?,
                description: get(row, 9)?,
            })
        }
    };
    Ok(MaterialRecord {
        material_id: get(row, 5)?,
        import,
        key_id: KeyId::from_storage(&key_id).ok_or_else(|| corrupt("key id", &key_id))?,
        version: version_from(get(row, 1)?)?,
        wrapped: get(row, 2)?,
        created: from_ms(get(row, 3)?)?,
        rotation_type: match rotation_type {
            None => None,
            Some(t) => Some(RotationType::parse(&t).ok_or_else(|| corrupt("rotation", &t))?),
        },
    })
}

fn alias_from_row(row: &Row) -> StoreResult<AliasRecord> {
    let target: String = get(row, 3)?;
    Ok(AliasRecord {
        account: get(row, 0)?,
        region: get(row, 1)?,
        name: get(row, 2)?,
        target_key_id: KeyId::from_storage(&target).ok_or_else(|| corrupt("key id", &target))?,
        creation_date: from_ms(get(row, 4)?)?,
        last_updated_date: from_ms(get(row, 5)?)?,
    })
}

fn store_from_row(row: &Row) -> StoreResult<CustomKeyStoreRecord> {
    let store_type: String = get(row, 4)?;
    let state: String = get(row, 8)?;
    Ok(CustomKeyStoreRecord {
        id: get(row, 0)?,
        account: get(row, 1)?,
        region: get(row, 2)?,
        name: get(row, 3)?,
        store_type: CustomKeyStoreType::parse(&store_type)
            .ok_or_else(|| corrupt("store type", &store_type))?,
        cluster_id: get(row, 5)?,
        trust_anchor: get(row, 6)?,
        password_encrypted: get(row, 7)?,
        connection_state: ConnectionState::parse(&state)
            .ok_or_else(|| corrupt("connection state", &state))?,
        connection_error: get(row, 9)?,
        creation_date: from_ms(get(row, 10)?)?,
        row_version: get(row, 11)?,
        xks: match get::<Option<String>>(row, 12)? {
            None => None,
            Some(uri_endpoint) => Some(XksProxySettings {
                uri_endpoint,
                uri_path: get::<Option<String>>(row, 13)?.unwrap_or_default(),
                connectivity: get::<Option<String>>(row, 14)?.unwrap_or_default(),
                vpc_endpoint_service_name: get(row, 15)?,
                access_key_id: get::<Option<String>>(row, 16)?.unwrap_or_default(),
                credential_date: get::<Option<i64>>(row, 17)?.map(from_ms).transpose()?,
            }),
        },
    })
}

fn grant_from_row(row: &Row) -> StoreResult<GrantRecord> {
    let key_id: String = get(row, 1)?;
    let operations: String = get(row, 6)?;
    Ok(GrantRecord {
        grant_id: get(row, 0)?,
        key_id: KeyId::from_storage(&key_id).ok_or_else(|| corrupt("grant key id", &key_id))?,
        issuing_account: get(row, 2)?,
        name: get(row, 3)?,
        grantee_principal: get(row, 4)?,
        retiring_principal: get(row, 5)?,
        operations: operations
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        constraints: super::sqlite::constraints_from_json(get(row, 7)?)?,
        creation_date: from_ms(get(row, 8)?)?,
    })
}

fn key_ids(rows: &[Row]) -> StoreResult<Vec<KeyId>> {
    rows.iter()
        .map(|r| {
            let id: String = get(r, 0)?;
            KeyId::from_storage(&id).ok_or_else(|| corrupt("key id", &id))
        })
        .collect()
}

/// Writes the mutable columns of a key if its row version matches; returns the new record.
async fn write_key(
    c: &impl deadpool_postgres::GenericClient,
    k: &KeyRecord,
) -> StoreResult<KeyRecord> {
    let stmt = c
        .prepare_cached(
            "UPDATE keys SET description = $2, state = $3, deletion_ms = $4, \
             pending_window_days = $5, policy = $6, rotation_enabled = $7, \
             rotation_period_days = $8, next_rotation_ms = $9, current_material = $10, \
             mrk_primary_region = $12, \
             row_version = row_version + 1 WHERE key_id = $1 AND row_version = $11",
        )
        .await?;
    let n = c
        .execute(
            &stmt,
            &[
                &k.key_id.as_str(),
                &k.description,
                &k.state.as_str(),
                &k.deletion_date.map(to_ms),
                &k.pending_window_days,
                &k.policy,
                &k.rotation_enabled,
                &k.rotation_period_days,
                &k.next_rotation_date.map(to_ms),
                &i64::from(k.current_material),
                &k.row_version,
                &k.mrk_primary_region,
            ],
        )
        .await?;
    if n != 1 {
        return Err(StoreError::Conflict);
    }
    let mut out = k.clone();
    out.row_version += 1;
    Ok(out)
}

async fn insert_material(
    c: &impl deadpool_postgres::GenericClient,
    m: &MaterialRecord,
) -> StoreResult<()> {
    write_material(c, m, "").await
}

/// Inserts one material row; with `upsert` = `ON CONFLICT ...` replaces it.
async fn write_material(
    c: &impl deadpool_postgres::GenericClient,
    m: &MaterialRecord,
    upsert: &str,
) -> StoreResult<()> {
    let stmt = c
        .prepare_cached(&format!(
            "INSERT INTO key_material ({MATERIAL_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10){upsert}"
        ))
        .await?;
    let import = m.import.as_ref();
    c.execute(
        &stmt,
        &[
            &m.key_id.as_str(),
            &i64::from(m.version),
            &m.wrapped,
            &to_ms(m.created),
            &m.rotation_type.map(|r| r.as_str()),
            &m.material_id,
            &import.map(|i| i.state.as_str()),
            &import.map(|i| i.expiration_model.as_str()),
            &import.and_then(|i| i.valid_to).map(to_ms),
            &import.and_then(|i| i.description.clone()),
        ],
    )
    .await?;
    Ok(())
}

const UPSERT_MATERIAL: &str = " ON CONFLICT (key_id, version) DO UPDATE SET \
    wrapped = EXCLUDED.wrapped, created_ms = EXCLUDED.created_ms, \
    rotation_type = EXCLUDED.rotation_type, material_id = EXCLUDED.material_id, \
    import_state = EXCLUDED.import_state, expiration_model = EXCLUDED.expiration_model, \
    valid_to_ms = EXCLUDED.valid_to_ms, material_description = EXCLUDED.material_description";

async fn upsert_tags(
    c: &impl deadpool_postgres::GenericClient,
    key_id: &KeyId,
    tags: &[Tag],
) -> StoreResult<()> {
    if tags.is_empty() {
        return Ok(());
    }
    let stmt = c
        .prepare_cached(
            "INSERT INTO tags (key_id, tag_key, tag_value) VALUES ($1, $2, $3) \
             ON CONFLICT (key_id, tag_key) DO UPDATE SET tag_value = EXCLUDED.tag_value",
        )
        .await?;
    for t in tags {
        c.execute(&stmt, &[&key_id.as_str(), &t.key, &t.value])
            .await?;
    }
    Ok(())
}

impl PgStore {
    /// A pool for the configured database (connections are made on first use).
    pub async fn connect(config: &PostgresConfig) -> StoreResult<Self> {
        let (pg, tls) = connector(config)?;
        let manager = Manager::from_config(
            pg,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(config.pool_wait))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|e| StoreError::Database(format!("connection pool: {e}")))?;
        Ok(PgStore {
            pool,
            config: Arc::new(config.clone()),
        })
    }

    async fn client(&self) -> StoreResult<Object> {
        Ok(self.pool.get().await?)
    }

    /// The schema version recorded in the database (0 when it has no schema yet).
    async fn schema_version(c: &tokio_postgres::Client) -> StoreResult<i64> {
        c.batch_execute(
            "CREATE TABLE IF NOT EXISTS kms_schema_version (version BIGINT PRIMARY KEY)",
        )
        .await?;
        let row = c
            .query_one(
                "SELECT COALESCE(MAX(version), 0)::BIGINT FROM kms_schema_version",
                &[],
            )
            .await?;
        get(&row, 0)
    }

    /// Applies pending migrations under the migration advisory lock (a second node starting
    /// at the same time waits, then finds nothing to do).
    pub async fn migrate(&self) -> StoreResult<Migrated> {
        self.migrate_with(MigrateOnOpen::Apply).await
    }

    /// Migrates or checks the schema before serving (see [`MigrateOnOpen`]).
    pub async fn prepare_schema(&self, mode: MigrateOnOpen) -> StoreResult<Migrated> {
        self.migrate_with(mode).await
    }

    async fn migrate_with(&self, mode: MigrateOnOpen) -> StoreResult<Migrated> {
        let mut c = self.client().await?;
        c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        let result = Self::migrate_locked(&mut c, mode).await;
        // Unlocked explicitly; should that fail, the session's end releases it.
        if c.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await
            .is_err()
        {
            drop(Object::take(c));
        }
        result
    }

    async fn migrate_locked(c: &mut Object, mode: MigrateOnOpen) -> StoreResult<Migrated> {
        let known = schema::MIGRATIONS.len() as i64;
        let found = Self::schema_version(c).await?;
        for version in super::plan(found, known, mode)? {
            let tx = c.transaction().await?;
            let sql = schema::MIGRATIONS
                .get(version as usize)
                .ok_or_else(|| StoreError::Database(format!("no migration {version}")))?;
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO kms_schema_version (version) VALUES ($1)",
                &[&(version + 1)],
            )
            .await?;
            tx.commit().await?;
            tracing::info!(version = version + 1, "PostgreSQL schema migrated");
        }
        Ok(Migrated {
            from: found,
            to: known,
        })
    }

    /// The configuration this store was opened with.
    pub fn config(&self) -> &PostgresConfig {
        &self.config
    }

    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Vec<Row>> {
        let c = self.client().await?;
        let stmt = c.prepare_cached(sql).await?;
        Ok(c.query(&stmt, params).await?)
    }

    async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Option<Row>> {
        let c = self.client().await?;
        let stmt = c.prepare_cached(sql).await?;
        Ok(c.query_opt(&stmt, params).await?)
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<u64> {
        let c = self.client().await?;
        let stmt = c.prepare_cached(sql).await?;
        Ok(c.execute(&stmt, params).await?)
    }
}

#[async_trait::async_trait]
impl MetadataStore for PgStore {
    async fn insert_key(
        &self,
        k: &KeyRecord,
        material: &MaterialRecord,
        tags: &[Tag],
        limit: usize,
    ) -> StoreResult<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let stmt = tx
            .prepare_cached(&format!(
                "INSERT INTO keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
                 $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)"
            ))
            .await?;
        tx.execute(
            &stmt,
            &[
                &k.key_id.as_str(),
                &k.account,
                &k.region,
                &k.arn,
                &k.description,
                &k.key_spec.as_str(),
                &k.key_usage.as_str(),
                &k.origin.as_str(),
                &k.state.as_str(),
                &to_ms(k.creation_date),
                &k.deletion_date.map(to_ms),
                &k.pending_window_days,
                &k.policy,
                &k.rotation_enabled,
                &k.rotation_period_days,
                &k.next_rotation_date.map(to_ms),
                &i64::from(k.current_material),
                &k.row_version,
                &k.custom_key_store_id,
                &k.xks_key_id,
                &k.public_key,
                &k.mrk_primary_region,
            ],
        )
        .await?;
        insert_material(&tx, material).await?;
        upsert_tags(&tx, &k.key_id, tags).await?;
        // Last: the count's row lock is held only from here to the commit. At the limit, the
        // kept count is checked against the rows (this key's among them) before refusing; a
        // refusal rolls back (dropping `tx`).
        if !count_key(&tx, &k.account, &k.region, limit).await? {
            let with_this = recount_keys(&tx, &k.account, &k.region).await?;
            if with_this > limit {
                return Err(StoreError::KeyQuota {
                    limit,
                    usage: with_this - 1,
                });
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_key(&self, key_id: &KeyId) -> StoreResult<Option<KeyRecord>> {
        self.query_opt(
            &format!("SELECT {KEY_COLUMNS} FROM keys WHERE key_id = $1"),
            &[&key_id.as_str()],
        )
        .await?
        .as_ref()
        .map(key_from_row)
        .transpose()
    }

    async fn update_key(&self, key: &KeyRecord) -> StoreResult<KeyRecord> {
        let c = self.client().await?;
        write_key(&c, key).await
    }

    async fn rotate_key(
        &self,
        key: &KeyRecord,
        material: &MaterialRecord,
    ) -> StoreResult<KeyRecord> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let out = write_key(&tx, key).await?;
        insert_material(&tx, material).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn save_material(
        &self,
        key: &KeyRecord,
        material: &MaterialRecord,
    ) -> StoreResult<KeyRecord> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let out = write_key(&tx, key).await?;
        let stmt = tx
            .prepare_cached("UPDATE keys SET public_key = $2 WHERE key_id = $1")
            .await?;
        tx.execute(&stmt, &[&key.key_id.as_str(), &key.public_key])
            .await?;
        write_material(&tx, material, UPSERT_MATERIAL).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn remove_material(&self, key: &KeyRecord, version: u32) -> StoreResult<KeyRecord> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let out = write_key(&tx, key).await?;
        let stmt = tx
            .prepare_cached("DELETE FROM key_material WHERE key_id = $1 AND version = $2")
            .await?;
        tx.execute(&stmt, &[&key.key_id.as_str(), &i64::from(version)])
            .await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn keys_with_expired_material(&self, now: DateTime<Utc>) -> StoreResult<Vec<KeyId>> {
        key_ids(
            &self
                .query(
                    "SELECT DISTINCT key_id FROM key_material WHERE valid_to_ms IS NOT NULL \
                     AND valid_to_ms <= $1 AND import_state = 'IMPORTED'",
                    &[&to_ms(now)],
                )
                .await?,
        )
    }

    async fn delete_key(&self, key_id: &KeyId, row_version: i64) -> StoreResult<bool> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let stmt = tx
            .prepare_cached(
                "DELETE FROM keys WHERE key_id = $1 AND row_version = $2 \
                 RETURNING account, region",
            )
            .await?;
        let Some(row) = tx
            .query_opt(&stmt, &[&key_id.as_str(), &row_version])
            .await?
        else {
            return Ok(false);
        };
        let (account, region): (String, String) = (get(&row, 0)?, get(&row, 1)?);
        let stmt = tx
            .prepare_cached(
                "UPDATE key_counts SET n = n - 1 WHERE account = $1 AND region = $2 AND n > 0",
            )
            .await?;
        tx.execute(&stmt, &[&account, &region]).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn list_keys(
        &self,
        account: &str,
        region: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<KeyRecord>> {
        self.query(
            &format!(
                "SELECT {KEY_COLUMNS} FROM keys WHERE account = $1 AND region = $2 \
                 AND key_id > $3 ORDER BY key_id LIMIT $4"
            ),
            &[&account, &region, &after.unwrap_or(""), &(limit as i64)],
        )
        .await?
        .iter()
        .map(key_from_row)
        .collect()
    }

    async fn keys_due_for_deletion(&self, now: DateTime<Utc>) -> StoreResult<Vec<KeyId>> {
        key_ids(
            &self
                .query(
                    "SELECT key_id FROM keys WHERE state = 'PendingDeletion' AND deletion_ms <= $1",
                    &[&to_ms(now)],
                )
                .await?,
        )
    }

    async fn keys_due_for_rotation(&self, now: DateTime<Utc>) -> StoreResult<Vec<KeyId>> {
        key_ids(
            &self
                .query(
                    "SELECT key_id FROM keys WHERE rotation_enabled AND next_rotation_ms <= $1",
                    &[&to_ms(now)],
                )
                .await?,
        )
    }

    async fn get_material(
        &self,
        key_id: &KeyId,
        version: u32,
    ) -> StoreResult<Option<MaterialRecord>> {
        self.query_opt(
            &format!(
                "SELECT {MATERIAL_COLUMNS} FROM key_material WHERE key_id = $1 AND version = $2"
            ),
            &[&key_id.as_str(), &i64::from(version)],
        )
        .await?
        .as_ref()
        .map(material_from_row)
        .transpose()
    }

    async fn list_materials(&self, key_id: &KeyId) -> StoreResult<Vec<MaterialRecord>> {
        self.query(
            &format!(
                "SELECT {MATERIAL_COLUMNS} FROM key_material WHERE key_id = $1 ORDER BY version"
            ),
            &[&key_id.as_str()],
        )
        .await?
        .iter()
        .map(material_from_row)
        .collect()
    }

    async fn create_alias(&self, a: &AliasRecord, limit: usize) -> StoreResult<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        alias_room(&tx, &a.target_key_id, limit).await?;
        let stmt = tx
            .prepare_cached(&format!(
                "INSERT INTO aliases ({ALIAS_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
            ))
            .await?;
        tx.execute(
            &stmt,
            &[
                &a.account,
                &a.region,
                &a.name,
                &a.target_key_id.as_str(),
                &to_ms(a.creation_date),
                &to_ms(a.last_updated_date),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_alias(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> StoreResult<Option<AliasRecord>> {
        self.query_opt(
            &format!(
                "SELECT {ALIAS_COLUMNS} FROM aliases WHERE account = $1 AND region = $2 AND name = $3"
            ),
            &[&account, &region, &name],
        )
        .await?
        .as_ref()
        .map(alias_from_row)
        .transpose()
    }

    async fn update_alias(&self, a: &AliasRecord, limit: usize) -> StoreResult<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        // Only a move to another key needs room there.
        let stmt = tx
            .prepare_cached(
                "SELECT target_key_id <> $4 FROM aliases \
                 WHERE account = $1 AND region = $2 AND name = $3",
            )
            .await?;
        let moves = match tx
            .query_opt(
                &stmt,
                &[&a.account, &a.region, &a.name, &a.target_key_id.as_str()],
            )
            .await?
        {
            Some(r) => get::<bool>(&r, 0)?,
            None => false,
        };
        if moves {
            alias_room(&tx, &a.target_key_id, limit).await?;
        }
        let stmt = tx
            .prepare_cached(
                "UPDATE aliases SET target_key_id = $4, updated_ms = $5 \
                 WHERE account = $1 AND region = $2 AND name = $3",
            )
            .await?;
        tx.execute(
            &stmt,
            &[
                &a.account,
                &a.region,
                &a.name,
                &a.target_key_id.as_str(),
                &to_ms(a.last_updated_date),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_alias(&self, account: &str, region: &str, name: &str) -> StoreResult<bool> {
        let n = self
            .execute(
                "DELETE FROM aliases WHERE account = $1 AND region = $2 AND name = $3",
                &[&account, &region, &name],
            )
            .await?;
        Ok(n == 1)
    }

    async fn list_aliases(
        &self,
        account: &str,
        region: &str,
        key_id: Option<&KeyId>,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<AliasRecord>> {
        self.query(
            &format!(
                "SELECT {ALIAS_COLUMNS} FROM aliases WHERE account = $1 AND region = $2 \
                 AND ($3::TEXT IS NULL OR target_key_id = $3) AND name > $4 \
                 ORDER BY name LIMIT $5"
            ),
            &[
                &account,
                &region,
                &key_id.map(|k| k.as_str()),
                &after.unwrap_or(""),
                &(limit as i64),
            ],
        )
        .await?
        .iter()
        .map(alias_from_row)
        .collect()
    }

    async fn count_aliases(&self, key_id: &KeyId) -> StoreResult<usize> {
        let rows = self
            .query(
                "SELECT COUNT(*) FROM aliases WHERE target_key_id = $1",
                &[&key_id.as_str()],
            )
            .await?;
        count(&rows)
    }

    async fn put_tags(&self, key_id: &KeyId, tags: &[Tag]) -> StoreResult<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        upsert_tags(&tx, key_id, tags).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn remove_tags(&self, key_id: &KeyId, tag_keys: &[String]) -> StoreResult<()> {
        self.execute(
            "DELETE FROM tags WHERE key_id = $1 AND tag_key = ANY($2)",
            &[&key_id.as_str(), &tag_keys],
        )
        .await?;
        Ok(())
    }

    async fn list_tags(&self, key_id: &KeyId) -> StoreResult<Vec<Tag>> {
        self.query(
            "SELECT tag_key, tag_value FROM tags WHERE key_id = $1 ORDER BY tag_key",
            &[&key_id.as_str()],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(Tag {
                key: get(r, 0)?,
                value: get(r, 1)?,
            })
        })
        .collect()
    }

    async fn insert_custom_key_store(
        &self,
        r: &CustomKeyStoreRecord,
        limit: usize,
    ) -> StoreResult<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        // Held until commit: creates in one account and region, from any node, one at a time.
        let lock = tx
            .prepare_cached("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .await?;
        tx.execute(
            &lock,
            &[
                &STORE_QUOTA_LOCK_CLASS,
                &format!("{}:{}", r.account, r.region),
            ],
        )
        .await?;
        let stmt = tx
            .prepare_cached(
                "SELECT COUNT(*) FROM custom_key_stores WHERE account = $1 AND region = $2",
            )
            .await?;
        let usage = count(&tx.query(&stmt, &[&r.account, &r.region]).await?)?;
        if usage >= limit {
            return Err(StoreError::CustomKeyStoreQuota { limit, usage });
        }
        let xks = r.xks.as_ref();
        let stmt = tx
            .prepare_cached(&format!(
                "INSERT INTO custom_key_stores ({STORE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, \
                 $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
            ))
            .await?;
        tx.execute(
            &stmt,
            &[
                &r.id,
                &r.account,
                &r.region,
                &r.name,
                &r.store_type.as_str(),
                &r.cluster_id,
                &r.trust_anchor,
                &r.password_encrypted,
                &r.connection_state.as_str(),
                &r.connection_error,
                &to_ms(r.creation_date),
                &r.row_version,
                &xks.map(|x| x.uri_endpoint.as_str()),
                &xks.map(|x| x.uri_path.as_str()),
                &xks.map(|x| x.connectivity.as_str()),
                &xks.and_then(|x| x.vpc_endpoint_service_name.as_deref()),
                &xks.map(|x| x.access_key_id.as_str()),
                &xks.and_then(|x| x.credential_date).map(to_ms),
            ],
        )
        .await
        .map_err(|e| store_write_error(e, r))?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_custom_key_store(&self, id: &str) -> StoreResult<Option<CustomKeyStoreRecord>> {
        self.query_opt(
            &format!("SELECT {STORE_COLUMNS} FROM custom_key_stores WHERE id = $1"),
            &[&id],
        )
        .await?
        .as_ref()
        .map(store_from_row)
        .transpose()
    }

    async fn list_custom_key_stores(
        &self,
        account: &str,
        region: &str,
    ) -> StoreResult<Vec<CustomKeyStoreRecord>> {
        self.query(
            &format!(
                "SELECT {STORE_COLUMNS} FROM custom_key_stores WHERE account = $1 AND region = $2 \
                 ORDER BY id"
            ),
            &[&account, &region],
        )
        .await?
        .iter()
        .map(store_from_row)
        .collect()
    }

    async fn update_custom_key_store(
        &self,
        r: &CustomKeyStoreRecord,
    ) -> StoreResult<CustomKeyStoreRecord> {
        let xks = r.xks.as_ref();
        let c = self.client().await?;
        // A store that moves to another cluster leaves the shared ones (see the migration).
        let stmt = c
            .prepare_cached(
                "UPDATE custom_key_stores SET name = $2, cluster_id = $3, trust_anchor = $4, \
                 password_encrypted = $5, connection_state = $6, connection_error = $7, \
                 xks_uri_endpoint = $9, xks_uri_path = $10, xks_connectivity = $11, \
                 xks_vpc_service = $12, xks_access_key_id = $13, xks_credential_ms = $14, \
                 cluster_shared = cluster_shared AND cluster_id IS NOT DISTINCT FROM $3, \
                 row_version = row_version + 1 WHERE id = $1 AND row_version = $8",
            )
            .await?;
        let n = c
            .execute(
                &stmt,
                &[
                    &r.id,
                    &r.name,
                    &r.cluster_id,
                    &r.trust_anchor,
                    &r.password_encrypted,
                    &r.connection_state.as_str(),
                    &r.connection_error,
                    &r.row_version,
                    &xks.map(|x| x.uri_endpoint.as_str()),
                    &xks.map(|x| x.uri_path.as_str()),
                    &xks.map(|x| x.connectivity.as_str()),
                    &xks.and_then(|x| x.vpc_endpoint_service_name.as_deref()),
                    &xks.map(|x| x.access_key_id.as_str()),
                    &xks.and_then(|x| x.credential_date).map(to_ms),
                ],
            )
            .await
            .map_err(|e| store_write_error(e, r))?;
        if n != 1 {
            return Err(StoreError::Conflict);
        }
        let mut out = r.clone();
        out.row_version += 1;
        Ok(out)
    }

    async fn delete_custom_key_store(&self, id: &str) -> StoreResult<()> {
        self.execute("DELETE FROM custom_key_stores WHERE id = $1", &[&id])
            .await?;
        Ok(())
    }

    async fn all_custom_key_stores(&self) -> StoreResult<Vec<CustomKeyStoreRecord>> {
        self.query(
            &format!("SELECT {STORE_COLUMNS} FROM custom_key_stores ORDER BY id"),
            &[],
        )
        .await?
        .iter()
        .map(store_from_row)
        .collect()
    }

    async fn count_keys_in_store(&self, store_id: &str) -> StoreResult<usize> {
        let rows = self
            .query(
                "SELECT COUNT(*) FROM keys WHERE custom_key_store_id = $1",
                &[&store_id],
            )
            .await?;
        count(&rows)
    }

    async fn count_keys(&self, account: &str, region: &str) -> StoreResult<usize> {
        let rows = self
            .query(
                "SELECT n FROM key_counts WHERE account = $1 AND region = $2",
                &[&account, &region],
            )
            .await?;
        count(&rows)
    }

    async fn recount_keys(&self, account: &str, region: &str) -> StoreResult<usize> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let n = recount_keys(&tx, account, region).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn ping(&self) -> StoreResult<()> {
        self.query("SELECT 1", &[]).await.map(|_| ())
    }

    async fn find_key_by_xks_id(
        &self,
        store_id: &str,
        xks_key_id: &str,
    ) -> StoreResult<Option<KeyId>> {
        let rows = self
            .query(
                "SELECT key_id FROM keys WHERE custom_key_store_id = $1 AND xks_key_id = $2 \
                 LIMIT 1",
                &[&store_id, &xks_key_id],
            )
            .await?;
        Ok(key_ids(&rows)?.into_iter().next())
    }

    async fn insert_grant(
        &self,
        g: &GrantRecord,
        limit: usize,
        same: SameGrant,
    ) -> StoreResult<(GrantRecord, bool)> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        // Held until commit: creates of grants on one key, from any node, one at a time.
        let lock = tx
            .prepare_cached("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .await?;
        tx.execute(&lock, &[&GRANT_LOCK_CLASS, &g.key_id.as_str()])
            .await?;
        if g.name.is_some() {
            let stmt = tx
                .prepare_cached(&format!(
                    "SELECT {GRANT_COLUMNS} FROM grants WHERE key_id = $1 AND name = $2"
                ))
                .await?;
            for row in &tx.query(&stmt, &[&g.key_id.as_str(), &g.name]).await? {
                let existing = grant_from_row(row)?;
                if same(&existing, g) {
                    tx.commit().await?;
                    return Ok((existing, false));
                }
            }
        }
        let stmt = tx
            .prepare_cached("SELECT COUNT(*) FROM grants WHERE key_id = $1")
            .await?;
        let usage = count(&tx.query(&stmt, &[&g.key_id.as_str()]).await?)?;
        if usage >= limit {
            return Err(StoreError::GrantQuota { limit, usage });
        }
        let stmt = tx
            .prepare_cached(&format!(
                "INSERT INTO grants ({GRANT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ))
            .await?;
        tx.execute(
            &stmt,
            &[
                &g.grant_id,
                &g.key_id.as_str(),
                &g.issuing_account,
                &g.name,
                &g.grantee_principal,
                &g.retiring_principal,
                &g.operations.join(","),
                &super::sqlite::constraints_to_json(&g.constraints),
                &to_ms(g.creation_date),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok((g.clone(), true))
    }

    async fn list_grants(&self, key_id: &KeyId) -> StoreResult<Arc<[GrantRecord]>> {
        self.query(
            &format!(
                "SELECT {GRANT_COLUMNS} FROM grants WHERE key_id = $1 \
                 ORDER BY creation_ms, grant_id"
            ),
            &[&key_id.as_str()],
        )
        .await?
        .iter()
        .map(grant_from_row)
        .collect()
    }

    async fn get_grant(&self, grant_id: &str) -> StoreResult<Option<GrantRecord>> {
        self.query_opt(
            &format!("SELECT {GRANT_COLUMNS} FROM grants WHERE grant_id = $1"),
            &[&grant_id],
        )
        .await?
        .as_ref()
        .map(grant_from_row)
        .transpose()
    }

    async fn delete_grant(&self, grant_id: &str) -> StoreResult<bool> {
        let n = self
            .execute("DELETE FROM grants WHERE grant_id = $1", &[&grant_id])
            .await?;
        Ok(n > 0)
    }

    async fn list_retirable_grants(
        &self,
        principal: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<GrantRecord>> {
        self.query(
            &format!(
                "SELECT {GRANT_COLUMNS} FROM grants WHERE retiring_principal = $1 \
                 AND grant_id > $2 ORDER BY grant_id LIMIT $3"
            ),
            &[&principal, &after.unwrap_or(""), &(limit as i64)],
        )
        .await?
        .iter()
        .map(grant_from_row)
        .collect()
    }

    async fn get_system_secret(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        self.query_opt("SELECT value FROM system_secrets WHERE name = $1", &[&name])
            .await?
            .as_ref()
            .map(|r| get(r, 0))
            .transpose()
    }

    async fn put_system_secret_if_absent(&self, name: &str, value: &[u8]) -> StoreResult<Vec<u8>> {
        self.execute(
            "INSERT INTO system_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&name, &value],
        )
        .await?;
        match self
            .query_opt("SELECT value FROM system_secrets WHERE name = $1", &[&name])
            .await?
        {
            Some(r) => get(&r, 0),
            None => Err(StoreError::Database(format!(
                "system secret {name} vanished after insert"
            ))),
        }
    }

    async fn try_lease(&self, name: LeaseName) -> StoreResult<Option<Lease>> {
        let lock = match name {
            LeaseName::Maintenance => MAINTENANCE_LOCK,
            LeaseName::XksHealth => XKS_HEALTH_LOCK,
        };
        let c = self.client().await?;
        let row = c
            .query_one("SELECT pg_try_advisory_lock($1)", &[&lock])
            .await?;
        if !get::<bool>(&row, 0)? {
            return Ok(None);
        }
        Ok(Some(Lease::holding(SessionLock(Some(c)))))
    }

    async fn claim_store_connect(&self, store_id: &str, wait: bool) -> StoreResult<Option<Lease>> {
        // A connection of its own, never back in the pool once it holds the lock or may come
        // to (this future dropped while it waits): the claim lives exactly as long as the
        // connection.
        let mut hold = SessionLock(Some(self.client().await?));
        let Some(c) = hold.0.as_ref() else {
            return Ok(None);
        };
        let sql = if wait {
            "SELECT true FROM pg_advisory_lock($1, hashtext($2))"
        } else {
            "SELECT pg_try_advisory_lock($1, hashtext($2))"
        };
        let row = c
            .query_one(sql, &[&STORE_CONNECT_LOCK_CLASS, &store_id])
            .await?;
        if !get::<bool>(&row, 0)? {
            // Refused: the connection holds nothing and goes back to the pool (a reconcile
            // tries the claim of every CONNECTING store it reads).
            drop(hold.0.take());
            return Ok(None);
        }
        Ok(Some(Lease::holding(hold)))
    }
}

/// Raises the key count of (`account`, `region`) unless it has reached `limit`; `false` when
/// it has (nothing changed). One statement: the row is made at 1 or raised by 1; concurrent
/// transactions wait on its row lock and then see the committed count.
async fn count_key(
    c: &impl deadpool_postgres::GenericClient,
    account: &str,
    region: &str,
    limit: usize,
) -> StoreResult<bool> {
    if limit == 0 {
        return Ok(false);
    }
    let stmt = c
        .prepare_cached(
            "INSERT INTO key_counts (account, region, n) VALUES ($1, $2, 1) \
             ON CONFLICT (account, region) DO UPDATE SET n = key_counts.n + 1 \
             WHERE key_counts.n < $3",
        )
        .await?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    Ok(c.execute(&stmt, &[&account, &region, &limit]).await? == 1)
}

/// Counts the keys of (`account`, `region`) there are, rows of `c`'s own transaction included,
/// and sets the kept count to it: a count left too high by key rows deleted outside kms (an
/// operator's SQL, a partial restore) heals here. Safe with concurrent writers on any node: the
/// count's row is locked first (made if missing) and the keys are counted by a later statement,
/// so with READ COMMITTED the count sees every insert and delete committed before the lock;
/// one not yet committed has not yet changed the kept count either (insert_key and delete_key
/// change it last in their transactions, under this row lock), and changes it after this
/// transaction commits, from the corrected value.
async fn recount_keys(
    c: &impl deadpool_postgres::GenericClient,
    account: &str,
    region: &str,
) -> StoreResult<usize> {
    let lock = c
        .prepare_cached(
            "INSERT INTO key_counts (account, region, n) VALUES ($1, $2, 0) \
             ON CONFLICT (account, region) DO UPDATE SET n = key_counts.n",
        )
        .await?;
    c.execute(&lock, &[&account, &region]).await?;
    let stmt = c
        .prepare_cached("SELECT COUNT(*) FROM keys WHERE account = $1 AND region = $2")
        .await?;
    let n: i64 = get(&c.query_one(&stmt, &[&account, &region]).await?, 0)?;
    let stmt = c
        .prepare_cached("UPDATE key_counts SET n = $3 WHERE account = $1 AND region = $2")
        .await?;
    c.execute(&stmt, &[&account, &region, &n]).await?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// [`StoreError::AliasQuota`] unless `key` has fewer than `limit` aliases, under a transaction
/// advisory lock on the key held until the commit: alias writes to one key, from any node, are
/// counted and written one at a time.
async fn alias_room(
    c: &impl deadpool_postgres::GenericClient,
    key: &KeyId,
    limit: usize,
) -> StoreResult<()> {
    let lock = c
        .prepare_cached("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .await?;
    c.execute(&lock, &[&ALIAS_LOCK_CLASS, &key.as_str()])
        .await?;
    let stmt = c
        .prepare_cached("SELECT COUNT(*) FROM aliases WHERE target_key_id = $1")
        .await?;
    let usage = count(&c.query(&stmt, &[&key.as_str()]).await?)?;
    if usage >= limit {
        return Err(StoreError::AliasQuota { limit, usage });
    }
    Ok(())
}

fn count(rows: &[Row]) -> StoreResult<usize> {
    let n: i64 = match rows.first() {
        Some(r) => get(r, 0)?,
        None => 0,
    };
    Ok(usize::try_from(n).unwrap_or(0))
}

/// A connection holding a session advisory lock. Dropping it closes the connection (taken out
/// of the pool), which releases the lock on the server: no async unlock is needed in `Drop`.
struct SessionLock(Option<Object>);

impl super::LeaseHold for SessionLock {
    fn alive(&self) -> bool {
        self.0.as_ref().is_some_and(|c| !c.is_closed())
    }
}

impl Drop for SessionLock {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            drop(Object::take(c));
        }
    }
}
