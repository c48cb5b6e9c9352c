//! CloudHSM-style custom key stores: create/connect/disconnect/update/delete/describe, keys
//! whose material lives in a cluster, the `Unavailable` state of keys while their store is not
//! connected, and the per-store request quota.
//!
//! A store names a cluster from the configuration (`[[clusters]]`). Connect runs in the
//! background (CONNECTING -> CONNECTED or FAILED with a ConnectionErrorCode), logs in as the
//! crypto user on every member and rotates its PIN; the new PIN is stored only encrypted under
//! the root. The connected clusters and external key store proxies live in memory
//! ([`Connections`]); the connection state is persisted. With several nodes on one database,
//! the other nodes attach to a store connected here, a connect holds the store's connect
//! claim from before CONNECTING is written until the outcome is, and a connect whose node died
//! is taken over by another node (`service::store_sync`).

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Instant;

use hsm::threads::BlockingPool;
use parking_lot::{Mutex, RwLock};
use secrecy::SecretString;

use super::{part, Call, Core, KmsError, KmsResult};
use crate::backend::cluster::{Cluster, ClusterBackend, ClusterConfig, ConnectError, PinBook};
use crate::backend::{BackendError, CryptoBackend};
use crate::model::{
    ConnectionState, CustomKeyStoreRecord, CustomKeyStoreType, KeyId, KeyRecord, KeySpec, KeyState,
    KeyUsage, MaterialRecord, Origin, Tag,
};
use crate::store::Lease;

/// Custom key stores per account and region (AWS quota).
pub const MAX_STORES: usize = 10;
/// Requests per second per CloudHSM key store (AWS quota, not adjustable there); the default
/// of a cluster's `requests_per_second` in the configuration.
pub const DEFAULT_STORE_RPS: u32 = 1800;
/// Active cluster members needed to create a key (AWS: two HSMs in different AZs).
pub const MIN_MEMBERS_FOR_CREATE: usize = 2;

/// The custom key store runtime: configured clusters, connected ones, external key store
/// proxies, and the per-store quotas.
pub struct Connections {
    clusters: Vec<ClusterConfig>,
    connected: RwLock<HashMap<String, Arc<ClusterBackend>>>,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
    /// Overrides every cluster's `requests_per_second` when set.
    rps: Option<f64>,
    /// External key stores: connected proxies.
    pub(crate) xks: super::xks::XksStores,
    /// The HSM threads cluster calls run on (present whenever clusters are configured).
    threads: Option<Arc<BlockingPool>>,
    /// Per store: the generation of its latest Connect or Disconnect, and the lock that lets
    /// one connect (or attach, or detach) at a time log in and rotate the crypto user's PIN.
    turns: Mutex<HashMap<String, ConnectTurn>>,
    /// Per store held here (cluster or proxy client): the fingerprint of the record it was
    /// made from, so an attachment from an older record is replaced (`store_sync`).
    sources: Mutex<HashMap<String, Fingerprint>>,
    /// Per store: the record fingerprint of the last failed attach, when, and whether a
    /// member refused the PIN book.
    attach_failures: Mutex<HashMap<String, (Fingerprint, Instant, bool)>>,
}

/// Whose turn it is to connect a store.
#[derive(Clone, Default)]
pub(super) struct ConnectTurn {
    generation: u64,
    pub(super) lock: Arc<tokio::sync::Mutex<()>>,
}

/// What of a store's record an attachment is made from (SHA-256 over the cluster, the sealed
/// PIN book or proxy credential, and the proxy settings).
pub type Fingerprint = [u8; 32];

/// The [`Fingerprint`] of a record.
pub(crate) fn fingerprint(r: &CustomKeyStoreRecord) -> Fingerprint {
    let mut d = ring::digest::Context::new(&ring::digest::SHA256);
    let mut field = |b: &[u8]| {
        d.update(&(b.len() as u64).to_be_bytes());
        d.update(b);
    };
    field(r.store_type.as_str().as_bytes());
    field(r.cluster_id.as_deref().unwrap_or("").as_bytes());
    field(&r.password_encrypted);
    if let Some(x) = &r.xks {
        field(x.uri_endpoint.as_bytes());
        field(x.uri_path.as_bytes());
        field(x.connectivity.as_bytes());
        field(
            x.vpc_endpoint_service_name
                .as_deref()
                .unwrap_or("")
                .as_bytes(),
        );
        field(x.access_key_id.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(d.finish().as_ref());
    out
}

impl Connections {
    pub fn new(clusters: Vec<ClusterConfig>, threads: Option<Arc<BlockingPool>>) -> Self {
        Connections {
            clusters,
            connected: Default::default(),
            buckets: Mutex::default(),
            rps: None,
            xks: super::xks::XksStores::new(None),
            threads,
            turns: Mutex::default(),
            sources: Mutex::default(),
            attach_failures: Mutex::default(),
        }
    }

    /// The store's current turn, unchanged (attach and detach take its lock).
    pub(super) fn current_turn(&self, store_id: &str) -> ConnectTurn {
        self.turns
            .lock()
            .entry(store_id.to_string())
            .or_default()
            .clone()
    }

    /// The generation of the store's latest Connect or Disconnect here.
    pub(super) fn generation(&self, store_id: &str) -> u64 {
        self.turns.lock().get(store_id).map_or(0, |t| t.generation)
    }

    /// The HSM threads cluster calls run on.
    pub(super) fn threads(&self) -> Option<Arc<BlockingPool>> {
        self.threads.clone()
    }

    /// Stores held here (clusters and proxy clients).
    pub(super) fn attached_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.connected.read().keys().cloned().collect();
        ids.extend(self.xks.connected.read().keys().cloned());
        ids
    }

    /// The fingerprint of the record the store's attachment here was made from.
    pub(super) fn attached_fingerprint(&self, store_id: &str) -> Option<Fingerprint> {
        if !self.is_connected(store_id) {
            return None;
        }
        self.sources.lock().get(store_id).copied()
    }

    /// Holds a cluster of the store (connected or attached here), made from a record with
    /// fingerprint `fp`; returns the one it replaces (to release, not log out).
    pub(super) fn attach_cluster(
        &self,
        store_id: &str,
        c: Arc<ClusterBackend>,
        fp: Fingerprint,
    ) -> Option<Arc<ClusterBackend>> {
        let old = self.connected.write().insert(store_id.to_string(), c);
        self.sources.lock().insert(store_id.to_string(), fp);
        old
    }

    /// Holds a proxy client of the store, made from a record with fingerprint `fp`.
    pub(super) fn attach_xks(
        &self,
        store_id: &str,
        c: Arc<crate::backend::xks::XksClient>,
        fp: Fingerprint,
    ) {
        self.xks.connected.write().insert(store_id.to_string(), c);
        self.sources.lock().insert(store_id.to_string(), fp);
    }

    /// Drops the store's cluster (logging out) or proxy client; whether there was one.
    pub(super) async fn detach(&self, store_id: &str) -> bool {
        self.sources.lock().remove(store_id);
        let cluster = self.connected.write().remove(store_id);
        let client = self.xks.connected.write().remove(store_id);
        let had = cluster.is_some() || client.is_some();
        if let Some(c) = cluster {
            c.disconnect().await;
        }
        had
    }

    /// Whether an attach of the record `fp` waits: a member refused this very PIN book less
    /// than [`super::store_sync::CREDENTIAL_RETRY_AFTER`] ago.
    pub(super) fn attach_on_hold(&self, store_id: &str, fp: &Fingerprint) -> bool {
        self.attach_failures
            .lock()
            .get(store_id)
            .is_some_and(|(failed, at, credentials)| {
                *credentials
                    && failed == fp
                    && at.elapsed() < super::store_sync::CREDENTIAL_RETRY_AFTER
            })
    }

    pub(super) fn note_attach_failure(&self, store_id: &str, fp: Fingerprint, credentials: bool) {
        self.attach_failures
            .lock()
            .insert(store_id.to_string(), (fp, Instant::now(), credentials));
    }

    pub(super) fn forget_attach_failure(&self, store_id: &str) {
        self.attach_failures.lock().remove(store_id);
    }

    /// Starts a new generation of a store's connection (Connect, Disconnect, a restart's
    /// reconnect): a connect of an older generation records nothing but the PINs it rotated.
    fn next_turn(&self, store_id: &str) -> ConnectTurn {
        let mut turns = self.turns.lock();
        let turn = turns.entry(store_id.to_string()).or_default();
        turn.generation += 1;
        turn.clone()
    }

    /// Whether `generation` is still the store's latest.
    pub(super) fn is_current(&self, store_id: &str, generation: u64) -> bool {
        self.turns
            .lock()
            .get(store_id)
            .is_some_and(|t| t.generation == generation)
    }

    /// Sets the XKS client runtime (TLS roots, client certificate, timeouts).
    pub fn with_xks(mut self, xks: super::xks::XksStores) -> Self {
        self.xks = xks;
        self
    }

    /// Overrides the per-store request quota of every cluster (normally each cluster's
    /// `requests_per_second` from the configuration applies).
    pub fn with_rps(mut self, rps: f64) -> Self {
        self.rps = Some(rps);
        self
    }

    /// True when HSM clusters are configured.
    pub fn has_clusters(&self) -> bool {
        !self.clusters.is_empty()
    }

    /// A configured cluster of `account`: clusters belong to one account each, and to every
    /// other account they do not exist (not even by their trust anchor).
    pub(super) fn cluster_config(&self, id: &str, account: &str) -> Option<&ClusterConfig> {
        self.clusters
            .iter()
            .find(|c| c.id == id && c.account == account)
    }

    /// The connected cluster of a store.
    pub fn cluster(&self, store_id: &str) -> Option<Arc<ClusterBackend>> {
        self.connected.read().get(store_id).cloned()
    }

    /// Whether a store (cluster or external) is connected.
    pub fn is_connected(&self, store_id: &str) -> bool {
        self.connected.read().contains_key(store_id) || self.xks.client(store_id).is_some()
    }

    /// Takes one request from the store's quota bucket: this node's even share of
    /// `cluster_rps` requests per second among `nodes` nodes (`[limits] cluster_nodes`), a
    /// burst of as many, unless [`Self::with_rps`] overrode the rate.
    fn admit(&self, store_id: &str, cluster_rps: u32, nodes: u32) -> bool {
        let rps = self.rps.unwrap_or(f64::from(cluster_rps)) / f64::from(nodes.max(1));
        let mut buckets = self.buckets.lock();
        let now = Instant::now();
        // Looked up by `&str` first: a store's id is allocated once, not per request.
        if !buckets.contains_key(store_id) {
            buckets.insert(store_id.to_string(), (rps, now));
        }
        let Some((tokens, last)) = buckets.get_mut(store_id) else {
            return false;
        };
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rps).min(rps);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn normalize_pem(s: &str) -> String {
    s.split_whitespace().collect()
}

/// LimitExceededException for the custom key stores quota.
pub(crate) fn store_quota_exceeded(limit: usize) -> KmsError {
    KmsError::LimitExceeded(format!(
        "The request was rejected because the account already has {limit} custom key stores."
    ))
}

/// CloudHsmClusterInUseException: another custom key store is on the cluster (the early check
/// here, or the store's unique index when a concurrent create or update got there first).
pub(crate) fn cluster_in_use(cluster_id: &str) -> KmsError {
    KmsError::CloudHsmClusterInUse(format!(
        "Cluster {cluster_id} is already associated with a custom key store"
    ))
}

/// CustomKeyStoreNameInUseException: the account has a store of that name in the region.
pub(crate) fn store_name_in_use(name: &str) -> KmsError {
    KmsError::CustomKeyStoreNameInUse(format!("Custom key store name '{name}' is already in use"))
}

fn not_found(id: &str) -> KmsError {
    KmsError::CustomKeyStoreNotFound(format!("Custom key store '{id}' does not exist"))
}

/// Input of CreateCustomKeyStore for a CloudHSM store.
pub struct NewStore {
    pub name: String,
    pub store_type: CustomKeyStoreType,
    pub cluster_id: Option<String>,
    pub trust_anchor: Option<String>,
    pub password: Option<SecretString>,
}

/// Input of UpdateCustomKeyStore.
pub struct StoreUpdate {
    pub new_name: Option<String>,
    pub password: Option<SecretString>,
    pub cluster_id: Option<String>,
    /// External key stores: proxy settings.
    pub xks: Option<super::xks::XksUpdate>,
}

impl Core {
    async fn store_of(&self, call: &Call, id: &str) -> KmsResult<CustomKeyStoreRecord> {
        match self.store.get_custom_key_store(id).await? {
            Some(s) if s.account == call.principal.account && s.region == self.region_of(call) => {
                Ok(s)
            }
            _ => Err(not_found(id)),
        }
    }

    /// The backend that holds a key's material, after the store's quota.
    pub(crate) fn backend_for(&self, key: &KeyRecord) -> KmsResult<Arc<dyn CryptoBackend>> {
        let c = &self.connections;
        match &key.custom_key_store_id {
            None => Ok(self.root.clone()),
            // External key stores: the KMS-side layer uses the root (the proxy adds the other).
            Some(id) if key.xks_key_id.is_some() => {
                if c.xks.client(id).is_none() {
                    return Err(KmsError::KmsInvalidState(format!(
                        "{} is unavailable.",
                        key.arn
                    )));
                }
                if !c.admit(
                    id,
                    c.xks.requests_per_second(),
                    self.limits.requests.cluster_nodes,
                ) {
                    return Err(KmsError::Throttling);
                }
                Ok(self.root.clone())
            }
            Some(id) => {
                let cluster = c.cluster(id).ok_or_else(|| {
                    KmsError::KmsInvalidState(format!("{} is unavailable.", key.arn))
                })?;
                if !c.admit(
                    id,
                    cluster.cluster().requests_per_second(),
                    self.limits.requests.cluster_nodes,
                ) {
                    return Err(KmsError::Throttling);
                }
                Ok(cluster)
            }
        }
    }

    /// Maps a backend failure for a key, with the custom-key-store wording where it applies.
    pub(crate) fn backend_error(&self, key: &KeyRecord, e: BackendError) -> KmsError {
        if key.custom_key_store_id.is_none() {
            return e.into();
        }
        match e {
            BackendError::Busy => KmsError::internal_message(
                "AWS KMS cannot complete the request because no PKCS#11 sessions are available in \
                 the CloudHSM cluster associated with the custom key store. Retry the request.",
            ),
            BackendError::KeyMaterialMissing => KmsError::KmsInvalidState(format!(
                "{} cannot be used: its key material is not in the CloudHSM cluster associated with \
                 its custom key store.",
                key.arn
            )),
            BackendError::Unavailable { .. } | BackendError::Timeout => KmsError::KmsInvalidState(
                "KMS cannot communicate with your CloudHSM cluster. This might be a transient \
                 network issue. If you see this error repeatedly, verify that the Network ACLs and \
                 the security group rules for the VPC of your AWS CloudHSM cluster are correct."
                    .into(),
            ),
            other => other.into(),
        }
    }

    /// The cluster id of a store (DescribeKey's CloudHsmClusterId); `None` for an external key
    /// store or one that is gone.
    pub(crate) async fn cloud_hsm_cluster_id_of_store(
        &self,
        store_id: &str,
    ) -> KmsResult<Option<String>> {
        Ok(self
            .store
            .get_custom_key_store(store_id)
            .await?
            .and_then(|s| s.cluster_id))
    }

    /// The cluster id of a key's store (DescribeKey's CloudHsmClusterId).
    pub async fn cloud_hsm_cluster_id(&self, key: &KeyRecord) -> KmsResult<Option<String>> {
        match key.custom_key_store_id.as_deref() {
            Some(store_id) => self.cloud_hsm_cluster_id_of_store(store_id).await,
            None => Ok(None),
        }
    }

    /// After deleting a custom-store key: best-effort deletion of its backing objects.
    pub(crate) async fn delete_backing_key(&self, key: &KeyRecord) -> Option<bool> {
        let store_id = key.custom_key_store_id.as_deref()?;
        Some(match self.connections.cluster(store_id) {
            Some(c) => c.delete_backing_key(&key.key_id, &key.arn).await,
            None => false,
        })
    }
}

part!(
    /// CreateCustomKeyStore, ConnectCustomKeyStore, DisconnectCustomKeyStore,
    /// UpdateCustomKeyStore, DeleteCustomKeyStore, DescribeCustomKeyStores, and CreateKey and
    /// GenerateRandom in custom key stores (external key stores: `service::xks`).
    CustomKeyStores
);

impl CustomKeyStores {
    pub async fn create_custom_key_store(
        &self,
        call: &mut Call,
        req: NewStore,
    ) -> KmsResult<String> {
        if req.store_type != CustomKeyStoreType::AwsCloudhsm {
            return Err(KmsError::UnsupportedOperation(
                "External key stores (EXTERNAL_KEY_STORE) are not supported by this server yet."
                    .into(),
            ));
        }
        let (Some(cluster_id), Some(trust_anchor), Some(password)) =
            (req.cluster_id, req.trust_anchor, req.password)
        else {
            return Err(KmsError::Validation(
                "CloudHsmClusterId, TrustAnchorCertificate and KeyStorePassword are required for \
                 an AWS_CLOUDHSM custom key store."
                    .into(),
            ));
        };
        let account = call.principal.account.clone();
        let existing = self
            .store
            .list_custom_key_stores(&account, self.region_of(call))
            .await?;
        if let Some(same) = existing.iter().find(|s| s.name == req.name) {
            // Idempotent: identical properties on a disconnected store return its id.
            let same_password = {
                use secrecy::ExposeSecret;
                self.open_secret(&same.id, &same.password_encrypted)
                    .await
                    .map(|p| p.expose_secret() == password.expose_secret())
                    .unwrap_or(false)
            };
            let identical = same.connection_state == ConnectionState::Disconnected
                && same.cluster_id.as_deref() == Some(cluster_id.as_str())
                && same.trust_anchor.as_deref().map(normalize_pem)
                    == Some(normalize_pem(&trust_anchor))
                && same_password;
            if identical {
                return Ok(same.id.clone());
            }
            return Err(store_name_in_use(&req.name));
        }
        let Some(cluster) = self.connections.cluster_config(&cluster_id, &account) else {
            return Err(KmsError::CloudHsmClusterNotFound(format!(
                "Cluster '{cluster_id}' does not exist"
            )));
        };
        if normalize_pem(&cluster.trust_anchor_pem) != normalize_pem(&trust_anchor) {
            return Err(KmsError::IncorrectTrustAnchor(format!(
                "The trust anchor certificate does not match the trust anchor certificate of \
                 cluster {cluster_id}"
            )));
        }
        // Refused early here; the store's insert decides (atomically, whichever node asks).
        let quota = self.limits.custom_key_stores_for(&account);
        if existing.len() >= quota {
            return Err(store_quota_exceeded(quota));
        }
        // Refused early too; the store's unique index decides (any node, any account).
        self.check_cluster_free(&cluster_id, None).await?;
        let id = new_store_id()?;
        let record = CustomKeyStoreRecord {
            id: id.clone(),
            account,
            region: self.region_of(call).to_string(),
            name: req.name,
            store_type: CustomKeyStoreType::AwsCloudhsm,
            cluster_id: Some(cluster_id),
            trust_anchor: Some(trust_anchor),
            password_encrypted: self.seal_secret(&id, &password).await?,
            connection_state: ConnectionState::Disconnected,
            connection_error: None,
            creation_date: self.clock.now(),
            row_version: 1,
            xks: None,
        };
        self.store.insert_custom_key_store(&record, quota).await?;
        Ok(id)
    }

    pub async fn connect_custom_key_store(&self, call: &mut Call, id: &str) -> KmsResult<()> {
        let mut store = self.store_of(call, id).await?;
        match store.connection_state {
            ConnectionState::Disconnected => {}
            ConnectionState::Connected => return Ok(()),
            other => {
                return Err(KmsError::CustomKeyStoreInvalidState(format!(
                    "Custom key store {id} is {other}: it must be DISCONNECTED to connect{}",
                    if other == ConnectionState::Failed {
                        " (disconnect it first)"
                    } else {
                        ""
                    }
                )))
            }
        }
        if store.store_type == CustomKeyStoreType::ExternalKeyStore {
            return self.connect_xks_store(call, store, None).await;
        }
        let cluster_id = store.cluster_id.clone().unwrap_or_default();
        if self
            .connections
            .cluster_config(&cluster_id, &store.account)
            .is_none()
        {
            store.connection_state = ConnectionState::Failed;
            store.connection_error = Some("CLUSTER_NOT_FOUND".into());
            self.store.update_custom_key_store(&store).await?;
            return Ok(());
        }
        // The claim on the store's connect, taken before CONNECTING is written and held until
        // the outcome is (`store_sync`: a CONNECTING store that nobody claims lost its
        // connecting node). Held elsewhere (a connect of an earlier Connect still running
        // there): the background half waits for it.
        let claim = self.store.claim_store_connect(id, false).await?;
        store.connection_state = ConnectionState::Connecting;
        store.connection_error = None;
        self.store.update_custom_key_store(&store).await?;
        // In the background, as AWS does: the caller polls DescribeCustomKeyStores. The
        // background half reads the password when its turn comes (a connect still running
        // may be rotating it).
        let turn = self.connections.next_turn(id);
        let core = self.core.clone();
        let store_id = id.to_string();
        tokio::spawn(async move { finish_connect(&core, &store_id, turn, claim).await });
        Ok(())
    }

    pub async fn disconnect_custom_key_store(&self, call: &mut Call, id: &str) -> KmsResult<()> {
        let mut store = self.store_of(call, id).await?;
        // A connect still logging in now belongs to an older generation.
        self.connections.next_turn(id);
        self.connections.detach(id).await;
        self.disconnect_xks_store(id);
        store.connection_state = ConnectionState::Disconnected;
        store.connection_error = None;
        self.store.update_custom_key_store(&store).await?;
        Ok(())
    }

    pub async fn update_custom_key_store(
        &self,
        call: &mut Call,
        id: &str,
        u: StoreUpdate,
    ) -> KmsResult<()> {
        let mut store = self.store_of(call, id).await?;
        if store.store_type == CustomKeyStoreType::ExternalKeyStore {
            // Name, credential and path may change in any state (they are probed first).
            if let Some(name) = u.new_name {
                self.check_name_free(&store, &name).await?;
                store.name = name;
            }
            if u.password.is_some() || u.cluster_id.is_some() {
                return Err(KmsError::Validation(
                    "KeyStorePassword and CloudHsmClusterId apply only to AWS_CLOUDHSM key stores."
                        .into(),
                ));
            }
            if let Some(x) = u.xks {
                self.update_xks_store(call, &mut store, x).await?;
            }
            self.store.update_custom_key_store(&store).await?;
            return Ok(());
        }
        if u.xks.is_some() {
            return Err(KmsError::Validation(
                "XKS proxy properties apply only to EXTERNAL_KEY_STORE custom key stores.".into(),
            ));
        }
        if store.connection_state != ConnectionState::Disconnected {
            return Err(KmsError::CustomKeyStoreInvalidState(format!(
                "Custom key store {id} must be DISCONNECTED to update its properties"
            )));
        }
        if let Some(name) = u.new_name {
            self.check_name_free(&store, &name).await?;
            store.name = name;
        }
        if let Some(cluster_id) = u.cluster_id {
            let Some(new) = self.connections.cluster_config(&cluster_id, &store.account) else {
                return Err(KmsError::CloudHsmClusterNotFound(format!(
                    "Cluster '{cluster_id}' does not exist"
                )));
            };
            // A related cluster shares the original's certificate (backup lineage).
            let related = store.trust_anchor.as_deref().map(normalize_pem)
                == Some(normalize_pem(&new.trust_anchor_pem));
            if !related {
                return Err(KmsError::CloudHsmClusterNotRelated(format!(
                    "Cluster {cluster_id} is not related to the cluster of custom key store {id}"
                )));
            }
            if store.cluster_id.as_deref() != Some(cluster_id.as_str()) {
                self.check_cluster_free(&cluster_id, Some(&store.id))
                    .await?;
            }
            store.cluster_id = Some(cluster_id);
        }
        if let Some(p) = u.password {
            store.password_encrypted = self.seal_secret(&store.id, &p).await?;
        }
        self.store.update_custom_key_store(&store).await?;
        Ok(())
    }

    /// A cluster backs at most one custom key store, across every account and region (two
    /// stores on one cluster would rotate each other's crypto user PIN). The fast path only:
    /// the store's insert and update decide ([`crate::store::StoreError::ClusterInUse`]).
    async fn check_cluster_free(&self, cluster_id: &str, except: Option<&str>) -> KmsResult<()> {
        let all = self.store.all_custom_key_stores().await?;
        let taken = all
            .iter()
            .any(|s| s.cluster_id.as_deref() == Some(cluster_id) && Some(s.id.as_str()) != except);
        if taken {
            return Err(cluster_in_use(cluster_id));
        }
        Ok(())
    }

    async fn check_name_free(&self, store: &CustomKeyStoreRecord, name: &str) -> KmsResult<()> {
        let others = self
            .store
            .list_custom_key_stores(&store.account, &store.region)
            .await?;
        if others.iter().any(|s| s.name == name && s.id != store.id) {
            return Err(store_name_in_use(name));
        }
        Ok(())
    }

    pub async fn delete_custom_key_store(&self, call: &mut Call, id: &str) -> KmsResult<()> {
        let store = self.store_of(call, id).await?;
        if store.connection_state != ConnectionState::Disconnected {
            return Err(KmsError::CustomKeyStoreInvalidState(format!(
                "Custom key store {id} must be DISCONNECTED to be deleted"
            )));
        }
        if self.store.count_keys_in_store(id).await? > 0 {
            return Err(KmsError::CustomKeyStoreHasCmks(format!(
                "Custom key store {id} still contains KMS keys"
            )));
        }
        self.store.delete_custom_key_store(id).await?;
        self.metrics.forget_xks_store(id);
        Ok(())
    }

    /// Stores of the caller's account, optionally filtered by id or name.
    pub async fn describe_custom_key_stores(
        &self,
        call: &mut Call,
        id: Option<&str>,
        name: Option<&str>,
    ) -> KmsResult<Vec<CustomKeyStoreRecord>> {
        let all = self
            .store
            .list_custom_key_stores(&call.principal.account, self.region_of(call))
            .await?;
        match (id, name) {
            (Some(id), _) => all
                .into_iter()
                .find(|s| s.id == id)
                .map(|s| vec![s])
                .ok_or_else(|| not_found(id)),
            (None, Some(n)) => {
                let found: Vec<_> = all.into_iter().filter(|s| s.name == n).collect();
                if found.is_empty() {
                    return Err(KmsError::CustomKeyStoreNotFound(format!(
                        "Custom key store name '{n}' does not exist"
                    )));
                }
                Ok(found)
            }
            (None, None) => Ok(all),
        }
    }

    /// CreateKey with Origin=AWS_CLOUDHSM: a backing key labelled with the key ARN on every
    /// active member.
    pub async fn create_cloudhsm_key(
        &self,
        call: &mut Call,
        store_id: &str,
        description: String,
        policy: Option<String>,
        bypass_policy_lockout: Option<bool>,
        tags: Vec<Tag>,
    ) -> KmsResult<KeyRecord> {
        let store = self.store_of(call, store_id).await?;
        let Some(cluster) = self.connections.cluster(store_id) else {
            return Err(KmsError::CustomKeyStoreInvalidState(format!(
                "Custom key store {store_id} is not connected"
            )));
        };
        let account = call.principal.account.clone();
        let key_id = KeyId::generate();
        let arn =
            crate::model::KeyArn::new(&self.partition, self.region_of(call), &account, &key_id).0;
        let policy = self.new_key_policy(call, &arn, policy, bypass_policy_lockout)?;
        self.check_key_quota(&account, self.region_of(call)).await?;
        let (wrapped, holders) = cluster
            .create_backing_key(&arn, MIN_MEMBERS_FOR_CREATE)
            .await
            .map_err(|e| match e {
                BackendError::Unsupported(m) => {
                    KmsError::CloudHsmClusterInvalidConfiguration(format!(
                        "The CloudHSM cluster {} of custom key store {store_id} is not configured \
                         to create keys: {m}",
                        store.cluster_id.as_deref().unwrap_or("")
                    ))
                }
                other => KmsError::from(other),
            })?;
        tracing::info!(key_arn = %arn, members = ?holders, "created backing key in the cluster");
        let now = self.clock.now();
        let key = KeyRecord {
            key_id: key_id.clone(),
            account,
            region: self.region_of(call).to_string(),
            arn,
            description,
            key_spec: KeySpec::SymmetricDefault,
            key_usage: KeyUsage::EncryptDecrypt,
            origin: Origin::AwsCloudhsm,
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
            custom_key_store_id: Some(store_id.to_string()),
            xks_key_id: None,
            public_key: None,
            mrk_primary_region: None,
            unavailable: false,
        };
        let material = MaterialRecord {
            key_id,
            version: 1,
            wrapped,
            created: now,
            rotation_type: None,
            material_id: None,
            import: None,
        };
        let limit = self.limits.keys_for(&key.account);
        if let Err(e) = self.store.insert_key(&key, &material, &tags, limit).await {
            // A create that lost the race to the key quota: its backing key has no row and
            // would never be deleted, so remove it now (best effort: logged when it fails).
            if matches!(e, crate::store::StoreError::KeyQuota { .. })
                && !cluster.delete_backing_key(&key.key_id, &key.arn).await
            {
                tracing::warn!(key_arn = %key.arn, "backing key of a refused CreateKey not deleted");
            }
            return Err(e.into());
        }
        call.touch(&key);
        Ok(key)
    }

    /// GenerateRandom from a custom key store's cluster.
    pub async fn generate_random_in_store(
        &self,
        call: &Call,
        store_id: &str,
        len: usize,
    ) -> KmsResult<zeroize::Zeroizing<Vec<u8>>> {
        self.store_of(call, store_id).await?;
        let Some(cluster) = self.connections.cluster(store_id) else {
            return Err(KmsError::CustomKeyStoreInvalidState(format!(
                "Custom key store {store_id} is not connected"
            )));
        };
        Ok(cluster.random(len).await?)
    }

    /// Logs each cluster that backs more than one store. Only a database from before the
    /// store's one-store-per-cluster index can hold such stores: the migration keeps them (the
    /// later ones marked `cluster_shared`) and the operator resolves them (`docs/operations.md`,
    /// "One custom key store per cluster").
    pub async fn warn_shared_clusters(&self) -> KmsResult<()> {
        let mut by_cluster: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for s in self.store.all_custom_key_stores().await? {
            if let Some(cluster) = s.cluster_id {
                by_cluster.entry(cluster).or_default().push(s.id);
            }
        }
        for (cluster, ids) in by_cluster.iter().filter(|(_, ids)| ids.len() > 1) {
            tracing::warn!(
                cluster_id = %cluster,
                custom_key_store_ids = ids.join(","),
                "custom key stores share a cluster (their connects rotate each other's crypto \
                 user PIN): delete all but one or move them to other clusters"
            );
        }
        Ok(())
    }

    /// Reconnects, after a restart, the stores that were connected (clusters: before this
    /// returns).
    pub async fn reconnect_stores(&self) -> KmsResult<()> {
        for mut s in self.store.all_custom_key_stores().await? {
            if !matches!(
                s.connection_state,
                ConnectionState::Connected | ConnectionState::Connecting
            ) {
                continue;
            }
            if s.store_type == CustomKeyStoreType::ExternalKeyStore {
                let mut call = Call::internal(&s.account, "KmsHealthCheck");
                call.region = s.region.clone();
                self.connect_xks_store(&call, s, None).await?;
                continue;
            }
            if s.cluster_id
                .as_deref()
                .and_then(|c| self.connections.cluster_config(c, &s.account))
                .is_none()
            {
                s.connection_state = ConnectionState::Failed;
                s.connection_error = Some("CLUSTER_NOT_FOUND".into());
                self.store.update_custom_key_store(&s).await?;
                continue;
            }
            let claim = self.store.claim_store_connect(&s.id, true).await?;
            s.connection_state = ConnectionState::Connecting;
            let s = self.store.update_custom_key_store(&s).await?;
            let turn = self.connections.next_turn(&s.id);
            finish_connect(&self.core, &s.id, turn, claim).await;
        }
        Ok(())
    }

    /// Takes over the connect of a store that a node which is gone left CONNECTING
    /// (`service::store_sync`): `claim` is this node's claim on the store's connect, taken
    /// while the row read CONNECTING. Read again under the claim, a store still CONNECTING is
    /// connected here as ConnectCustomKeyStore would (a cluster: logged in with the stored PIN
    /// book and rotated; XKS: the proxy probed), and CONNECTED or FAILED is recorded.
    pub(crate) async fn take_over_connect(&self, store_id: &str, claim: Lease) -> KmsResult<()> {
        let Some(store) = self.store.get_custom_key_store(store_id).await? else {
            return Ok(());
        };
        if store.connection_state != ConnectionState::Connecting {
            return Ok(()); // its connect finished after all
        }
        tracing::warn!(
            custom_key_store_id = store_id,
            "custom key store left CONNECTING by a node that is gone: connecting it here"
        );
        if store.store_type == CustomKeyStoreType::ExternalKeyStore {
            let mut call = Call::internal(&store.account, "KmsHealthCheck");
            call.region = store.region.clone();
            return self.connect_xks_store(&call, store, Some(claim)).await;
        }
        // Rewritten, still CONNECTING: a connect still running elsewhere (its node alive but
        // its claim lost with its database session) no longer rotates.
        self.store.update_custom_key_store(&store).await?;
        let turn = self.connections.next_turn(store_id);
        finish_connect(&self.core, store_id, turn, Some(claim)).await;
        Ok(())
    }
}

/// A new custom key store id: `cks-` and 17 hex digits.
pub(crate) fn new_store_id() -> KmsResult<String> {
    let mut raw = [0u8; 9];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw)
        .map_err(|_| KmsError::internal())?;
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("cks-{}", &hex[..17]))
}

/// Stores a cluster's changed PIN book (a member that missed a rotation was rotated); returns
/// the record written.
async fn save_pins(
    core: &Core,
    store_id: &str,
    pins: &SecretString,
) -> Option<CustomKeyStoreRecord> {
    let saved: KmsResult<Option<CustomKeyStoreRecord>> = async {
        match core.store.get_custom_key_store(store_id).await? {
            Some(mut store) => {
                store.password_encrypted = core.seal_secret(store_id, pins).await?;
                Ok(Some(core.store.update_custom_key_store(&store).await?))
            }
            None => Ok(None),
        }
    }
    .await;
    match saved {
        Ok(written) => written,
        Err(e) => {
            // The member has the new PIN now; without the record, the next connect fails with
            // INVALID_CREDENTIALS until the operator resets it (UpdateCustomKeyStore).
            tracing::error!(
                custom_key_store_id = store_id,
                error = e.code(),
                "storing a cluster member's rotated PIN failed"
            );
            None
        }
    }
}

/// Stores every PIN book a connected cluster reports, until the cluster goes away.
fn spawn_pin_keeper(
    core: Weak<Core>,
    store_id: String,
    mut books: tokio::sync::mpsc::UnboundedReceiver<SecretString>,
) {
    tokio::spawn(async move {
        while let Some(pins) = books.recv().await {
            let Some(core) = core.upgrade() else { break };
            // Under the store's turn: the record changes by this node's own save, and this
            // node's reconcile must not take that for another node's connect.
            let turn = core.connections.current_turn(&store_id);
            let _one_at_a_time = turn.lock.lock().await;
            let Some(written) = save_pins(&core, &store_id, &pins).await else {
                continue;
            };
            let c = &core.connections;
            if c.cluster(&store_id)
                .is_some_and(|b| b.cluster().rotates_pins())
            {
                c.sources
                    .lock()
                    .insert(store_id.clone(), fingerprint(&written));
            }
        }
    });
}

/// The background half of ConnectCustomKeyStore. One connect at a time per store, across
/// nodes: it holds the store's connect claim (`claim`, or waits for it: a connect elsewhere may
/// be rotating the PIN) and then its turn here, reads the stored PIN book afresh, logs in on
/// the members (on the HSM threads, detached from them: a slow device must not hold an HSM
/// thread), and records the outcome only if no Disconnect or Connect came since; otherwise it
/// logs out again and keeps only the PINs it rotated. The claim goes when the outcome is
/// written.
async fn finish_connect(core: &Arc<Core>, store_id: &str, turn: ConnectTurn, claim: Option<Lease>) {
    // The claim before the turn lock: a holder of the turn lock never waits for a claim.
    let claim = match claim {
        Some(c) => Ok(Some(c)),
        None => core.store.claim_store_connect(store_id, true).await,
    };
    let claim = match claim {
        Ok(Some(c)) => c,
        Ok(None) | Err(_) => {
            // Left CONNECTING and unclaimed: a node's reconcile takes the connect over.
            tracing::error!(
                custom_key_store_id = store_id,
                "claiming the custom key store's connect failed"
            );
            return;
        }
    };
    let _one_at_a_time = turn.lock.lock().await;
    let result = connect_turn(core, store_id, turn.generation, &claim).await;
    if let Err(e) = result {
        tracing::error!(
            custom_key_store_id = store_id,
            error = e.code(),
            "recording the connect result failed"
        );
    }
}

async fn connect_turn(
    core: &Arc<Core>,
    store_id: &str,
    generation: u64,
    claim: &Lease,
) -> KmsResult<()> {
    let connections = &core.connections;
    if !connections.is_current(store_id, generation) {
        // Superseded before it began: nothing was sent to the members.
        return Ok(());
    }
    let Some(mut store) = core.store.get_custom_key_store(store_id).await? else {
        return Ok(());
    };
    if store.connection_state != ConnectionState::Connecting {
        return Ok(());
    }
    // The row this connect acts on: a write since (see below) supersedes it.
    let read_version = store.row_version;
    let cfg = store
        .cluster_id
        .as_deref()
        .and_then(|c| connections.cluster_config(c, &store.account))
        .cloned();
    let Some(cfg) = cfg else {
        store.connection_state = ConnectionState::Failed;
        store.connection_error = Some("CLUSTER_NOT_FOUND".into());
        core.store.update_custom_key_store(&store).await?;
        return Ok(());
    };
    let Some(threads) = connections.threads.clone() else {
        tracing::error!(
            custom_key_store_id = store_id,
            "no HSM threads for clusters"
        );
        return Ok(());
    };
    // An attachment of an earlier connection (another node's) goes first: one login per token
    // and process.
    connections.detach(store_id).await;
    // The stored secret, read now: the customer's password, or each member's PIN after an
    // earlier connect (including one that finished while this one waited for its turn).
    let password = core
        .open_secret(&store.id, &store.password_encrypted)
        .await?;
    let logged_in = match PinBook::from_secret(&password) {
        Ok(pins) => threads
            .run(move || hsm::threads::detach(|| Cluster::log_in(cfg, &pins)))
            .await
            .unwrap_or(Err(ConnectError::InternalError)),
        Err(_) => {
            tracing::error!(
                custom_key_store_id = store_id,
                "the stored crypto user password is unreadable"
            );
            Err(ConnectError::InternalError)
        }
    };
    let outcome = match logged_in {
        Ok(members) => {
            // Rotate only while the connect is still this one: its claim held (a node whose
            // database session ended while it logged in has lost it, and another node may be
            // taking the connect over), the row as read above (a node that took the connect
            // over rewrote it; a Disconnect changed it) and no newer turn here. Otherwise log
            // out again, having changed nothing: the store stays CONNECTING for the node that
            // takes the connect over (this one's own reconcile included).
            let now = core.store.get_custom_key_store(store_id).await?;
            let claimed = claim.alive();
            let ours = claimed
                && connections.is_current(store_id, generation)
                && now.is_some_and(|r| r.row_version == read_version);
            if !ours {
                if !claimed {
                    tracing::warn!(
                        custom_key_store_id = store_id,
                        "the custom key store's connect claim ended (database session lost) \
                         while logging in: no PIN rotated, the connect is left to a takeover"
                    );
                }
                let _ = threads.run(move || drop(members)).await;
                return Ok(());
            }
            threads
                .run(move || hsm::threads::detach(|| members.rotate()))
                .await
                .unwrap_or(Err(ConnectError::InternalError))
        }
        Err(code) => Err(code),
    };
    // Recorded on the row as it is now; a concurrent Disconnect/Connect write is re-read. Any
    // write since the row was read above (a Disconnect, a Connect, a takeover by another node)
    // supersedes this connect: it then records no state.
    for _ in 0..8 {
        let Some(mut store) = core.store.get_custom_key_store(store_id).await? else {
            if let Ok((cluster, _)) = outcome {
                ClusterBackend::new(cluster, threads).disconnect().await;
            }
            return Ok(());
        };
        let superseded = !connections.is_current(store_id, generation)
            || store.connection_state != ConnectionState::Connecting
            || store.row_version != read_version;
        match &outcome {
            Ok((_, new)) => {
                store.password_encrypted = core.seal_secret(store_id, &new.to_secret()).await?;
                if !superseded {
                    store.connection_state = ConnectionState::Connected;
                    store.connection_error = None;
                }
            }
            Err(_) if superseded => return Ok(()),
            Err(code) => {
                store.connection_state = ConnectionState::Failed;
                store.connection_error = Some(code.code().to_string());
            }
        }
        let written = match core.store.update_custom_key_store(&store).await {
            Err(crate::store::StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
            Ok(w) => w,
        };
        match outcome {
            Ok((cluster, _)) if superseded => {
                // Disconnected (or connected again) meanwhile: the rotated PINs are stored, the
                // connection is dropped.
                ClusterBackend::new(cluster, threads).disconnect().await;
            }
            Ok((cluster, _)) => {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                cluster.on_pins_changed(tx);
                spawn_pin_keeper(Arc::downgrade(core), store_id.to_string(), rx);
                // Nothing to replace: the connect detached what was here before it logged in.
                let _ = connections.attach_cluster(
                    store_id,
                    Arc::new(ClusterBackend::new(cluster, threads)),
                    fingerprint(&written),
                );
                tracing::info!(custom_key_store_id = store_id, "custom key store connected");
            }
            Err(code) => {
                tracing::warn!(
                    custom_key_store_id = store_id,
                    code = code.code(),
                    "custom key store connect failed"
                );
            }
        }
        return Ok(());
    }
    // Still conflicting: keep the members' PINs known by dropping nothing silently.
    if let Ok((cluster, new)) = outcome {
        save_pins(core, store_id, &new.to_secret()).await;
        ClusterBackend::new(cluster, threads).disconnect().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_node_admits_its_even_share_of_the_store_quota() {
        let c = Connections::new(Vec::new(), None);
        let admitted =
            |store: &str, nodes: u32| (0..100).take_while(|_| c.admit(store, 60, nodes)).count();
        // A burst of the rate on one node; of a third of it on each of three.
        assert_eq!(admitted("cks-one", 1), 60);
        assert_eq!(admitted("cks-three", 3), 20);
    }
}
