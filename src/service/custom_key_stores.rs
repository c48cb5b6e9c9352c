//! CloudHSM-style custom key stores: create/connect/disconnect/update/delete/describe, keys
//! whose material lives in a cluster, the `Unavailable` state of keys while their store is not
//! connected, and the per-store request quota.
//!
//! A store names a cluster from the configuration (`[[clusters]]`). Connect runs in the
//! background (CONNECTING -> CONNECTED or FAILED with a ConnectionErrorCode), logs in as the
//! crypto user on every member and rotates its PIN; the new PIN is stored only encrypted under
//! the root. The connected clusters live in memory here; the connection state is persisted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use secrecy::SecretString;

use super::{Call, KmsError, KmsResult, KmsService};
use crate::backend::cluster::{Cluster, ClusterConfig, ConnectError, PinBook};
use crate::backend::{BackendError, CryptoBackend};
use crate::model::{
    ConnectionState, CustomKeyStoreRecord, CustomKeyStoreType, KeyId, KeyRecord, KeySpec, KeyState,
    KeyUsage, MaterialRecord, Origin, Tag,
};

/// Custom key stores per account and region (AWS quota).
pub const MAX_STORES: usize = 10;
/// Requests per second per CloudHSM key store (AWS quota, not adjustable there); the default
/// of a cluster's `requests_per_second` in the configuration.
pub const DEFAULT_STORE_RPS: u32 = 1800;
/// Active cluster members needed to create a key (AWS: two HSMs in different AZs).
pub const MIN_MEMBERS_FOR_CREATE: usize = 2;

/// The custom key store runtime: configured clusters, connected ones, and quotas.
pub struct CustomKeyStores {
    clusters: Vec<ClusterConfig>,
    connected: std::sync::RwLock<HashMap<String, Arc<Cluster>>>,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
    /// Overrides every cluster's `requests_per_second` when set.
    rps: Option<f64>,
    /// External key stores: connected proxies.
    pub(crate) xks: super::xks::XksStores,
}

impl CustomKeyStores {
    pub fn new(clusters: Vec<ClusterConfig>) -> Self {
        CustomKeyStores {
            clusters,
            connected: Default::default(),
            buckets: Mutex::default(),
            rps: None,
            xks: super::xks::XksStores::new(None),
        }
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

    /// True when HSM clusters are configured (their calls block: crypto then runs on the HSM
    /// threads).
    pub fn has_clusters(&self) -> bool {
        !self.clusters.is_empty()
    }

    fn cluster_config(&self, id: &str) -> Option<&ClusterConfig> {
        self.clusters.iter().find(|c| c.id == id)
    }

    pub fn connected(&self, store_id: &str) -> Option<Arc<Cluster>> {
        self.connected
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(store_id)
            .cloned()
    }

    /// Takes one request from the store's quota bucket (`cluster_rps` requests per second, a
    /// burst of as many, unless [`Self::with_rps`] overrode it).
    fn admit(&self, store_id: &str, cluster_rps: u32) -> bool {
        let rps = self.rps.unwrap_or(f64::from(cluster_rps));
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
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

impl KmsService {
    fn store_of(&self, call: &Call, id: &str) -> KmsResult<CustomKeyStoreRecord> {
        match self.store.get_custom_key_store(id)? {
            Some(s) if s.account == call.principal.account && s.region == self.region => Ok(s),
            _ => Err(not_found(id)),
        }
    }

    /// Marks a key `unavailable` when its custom key store is not connected.
    pub(crate) fn annotate(&self, mut key: KeyRecord) -> KeyRecord {
        if let Some(id) = &key.custom_key_store_id {
            key.unavailable = self.cks.connected(id).is_none() && self.cks.xks.client(id).is_none();
        }
        key
    }

    /// The backend that holds a key's material, after the store's quota.
    pub(crate) fn backend_for(&self, key: &KeyRecord) -> KmsResult<Arc<dyn CryptoBackend>> {
        match &key.custom_key_store_id {
            None => Ok(self.backend.clone()),
            // External key stores: the KMS-side layer uses the root (the proxy adds the other).
            Some(id) if key.xks_key_id.is_some() => {
                if self.cks.xks.client(id).is_none() {
                    return Err(KmsError::KmsInvalidState(format!(
                        "{} is unavailable.",
                        key.arn
                    )));
                }
                if !self.cks.admit(id, self.cks.xks.requests_per_second()) {
                    return Err(KmsError::Throttling);
                }
                Ok(self.backend.clone())
            }
            Some(id) => {
                let cluster = self.cks.connected(id).ok_or_else(|| {
                    KmsError::KmsInvalidState(format!("{} is unavailable.", key.arn))
                })?;
                if !self.cks.admit(id, cluster.requests_per_second()) {
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
            BackendError::Busy => KmsError::KmsInternal(
                "AWS KMS cannot complete the request because no PKCS#11 sessions are available in \
                 the CloudHSM cluster associated with the custom key store. Retry the request."
                    .into(),
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

    pub fn create_custom_key_store(&self, call: &mut Call, req: NewStore) -> KmsResult<String> {
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
        let existing = self.store.list_custom_key_stores(&account, &self.region)?;
        if let Some(same) = existing.iter().find(|s| s.name == req.name) {
            // Idempotent: identical properties on a disconnected store return its id.
            let identical = same.connection_state == ConnectionState::Disconnected
                && same.cluster_id.as_deref() == Some(cluster_id.as_str())
                && same.trust_anchor.as_deref().map(normalize_pem)
                    == Some(normalize_pem(&trust_anchor))
                && {
                    use secrecy::ExposeSecret;
                    self.open_secret(&same.id, &same.password_encrypted)
                        .map(|p| p.expose_secret() == password.expose_secret())
                        .unwrap_or(false)
                };
            if identical {
                return Ok(same.id.clone());
            }
            return Err(KmsError::CustomKeyStoreNameInUse(format!(
                "Custom key store name '{}' is already in use",
                req.name
            )));
        }
        let Some(cluster) = self.cks.cluster_config(&cluster_id) else {
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
        if existing.len() >= MAX_STORES {
            return Err(KmsError::LimitExceeded(format!(
                "The request was rejected because the account already has {MAX_STORES} custom key stores."
            )));
        }
        if existing
            .iter()
            .any(|s| s.cluster_id.as_deref() == Some(cluster_id.as_str()))
        {
            return Err(KmsError::CloudHsmClusterInUse(format!(
                "Cluster {cluster_id} is already associated with a custom key store"
            )));
        }
        let mut raw = [0u8; 9];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw)
            .map_err(|_| KmsError::internal())?;
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let id = format!("cks-{}", &hex[..17]);
        let record = CustomKeyStoreRecord {
            id: id.clone(),
            account,
            region: self.region.clone(),
            name: req.name,
            store_type: CustomKeyStoreType::AwsCloudhsm,
            cluster_id: Some(cluster_id),
            trust_anchor: Some(trust_anchor),
            password_encrypted: self.seal_secret(&id, &password)?,
            connection_state: ConnectionState::Disconnected,
            connection_error: None,
            creation_date: self.clock.now(),
            row_version: 1,
            xks: None,
        };
        match self.store.insert_custom_key_store(&record) {
            Err(crate::store::StoreError::AlreadyExists) => Err(KmsError::CustomKeyStoreNameInUse(
                format!("Custom key store name '{}' is already in use", record.name),
            )),
            other => Ok(other.map(|_| id)?),
        }
    }

    pub fn connect_custom_key_store(&self, call: &mut Call, id: &str) -> KmsResult<()> {
        let mut store = self.store_of(call, id)?;
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
            return self.connect_xks_store(call, store);
        }
        let cluster_id = store.cluster_id.clone().unwrap_or_default();
        let Some(cfg) = self.cks.cluster_config(&cluster_id).cloned() else {
            store.connection_state = ConnectionState::Failed;
            store.connection_error = Some("CLUSTER_NOT_FOUND".into());
            self.store.update_custom_key_store(&store)?;
            return Ok(());
        };
        let password = self.open_secret(&store.id, &store.password_encrypted)?;
        store.connection_state = ConnectionState::Connecting;
        store.connection_error = None;
        self.store.update_custom_key_store(&store)?;
        let Some(me) = self.me.upgrade() else {
            return Err(KmsError::internal());
        };
        let store_id = id.to_string();
        let thread = std::thread::Builder::new()
            .name(format!("connect-{store_id}"))
            .spawn(move || me.finish_connect(&store_id, cfg, password))
            .map_err(|_| KmsError::internal())?;
        let mut background = self.background.lock().unwrap_or_else(|p| p.into_inner());
        background.retain(|t| !t.is_finished());
        background.push(thread);
        Ok(())
    }

    /// Stores a cluster's changed PIN book (a member that missed a rotation was rotated).
    fn save_pins(&self, store_id: &str, pins: &SecretString) {
        let saved: KmsResult<()> = (|| {
            if let Some(mut store) = self.store.get_custom_key_store(store_id)? {
                store.password_encrypted = self.seal_secret(store_id, pins)?;
                self.store.update_custom_key_store(&store)?;
            }
            Ok(())
        })();
        if let Err(e) = saved {
            // The member has the new PIN now; without the record, the next connect fails with
            // INVALID_CREDENTIALS until the operator resets it (UpdateCustomKeyStore).
            tracing::error!(
                custom_key_store_id = store_id,
                error = e.code(),
                "storing a cluster member's rotated PIN failed"
            );
        }
    }

    /// The background half of ConnectCustomKeyStore.
    fn finish_connect(&self, store_id: &str, cfg: ClusterConfig, password: SecretString) {
        // The stored secret: the customer's password, or each member's PIN after a connect.
        let outcome = match PinBook::from_secret(&password) {
            Ok(pins) => Cluster::connect(cfg, &pins),
            Err(_) => {
                tracing::error!(
                    custom_key_store_id = store_id,
                    "the stored crypto user password is unreadable"
                );
                Err(ConnectError::InternalError)
            }
        };
        let result: KmsResult<()> = (|| {
            let Some(mut store) = self.store.get_custom_key_store(store_id)? else {
                return Ok(());
            };
            if store.connection_state != ConnectionState::Connecting {
                // Disconnected (or deleted) while connecting: drop the connection.
                if let Ok((cluster, new)) = outcome {
                    cluster.disconnect();
                    // Keep the rotated PINs so a later connect can log in.
                    store.password_encrypted = self.seal_secret(store_id, &new.to_secret())?;
                    self.store.update_custom_key_store(&store)?;
                }
                return Ok(());
            }
            match outcome {
                Ok((cluster, new)) => {
                    store.password_encrypted = self.seal_secret(store_id, &new.to_secret())?;
                    let me = self.me.clone();
                    let id = store_id.to_string();
                    cluster.on_pins_changed(Box::new(move |pins| {
                        if let Some(svc) = me.upgrade() {
                            svc.save_pins(&id, pins);
                        }
                    }));
                    store.connection_state = ConnectionState::Connected;
                    store.connection_error = None;
                    self.store.update_custom_key_store(&store)?;
                    self.cks
                        .connected
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(store_id.to_string(), Arc::new(cluster));
                    tracing::info!(custom_key_store_id = store_id, "custom key store connected");
                }
                Err(code) => {
                    store.connection_state = ConnectionState::Failed;
                    store.connection_error = Some(code.code().to_string());
                    self.store.update_custom_key_store(&store)?;
                    tracing::warn!(
                        custom_key_store_id = store_id,
                        code = code.code(),
                        "custom key store connect failed"
                    );
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            tracing::error!(
                custom_key_store_id = store_id,
                error = e.code(),
                "recording the connect result failed"
            );
        }
    }

    pub fn disconnect_custom_key_store(&self, call: &mut Call, id: &str) -> KmsResult<()> {
        let mut store = self.store_of(call, id)?;
        if let Some(c) = self
            .cks
            .connected
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
        {
            c.disconnect();
        }
        self.disconnect_xks_store(id);
        store.connection_state = ConnectionState::Disconnected;
        store.connection_error = None;
        self.store.update_custom_key_store(&store)?;
        Ok(())
    }

    pub fn update_custom_key_store(
        &self,
        call: &mut Call,
        id: &str,
        u: StoreUpdate,
    ) -> KmsResult<()> {
        let mut store = self.store_of(call, id)?;
        if store.store_type == CustomKeyStoreType::ExternalKeyStore {
            // Name, credential and path may change in any state (they are probed first).
            if let Some(name) = u.new_name {
                let others = self
                    .store
                    .list_custom_key_stores(&store.account, &self.region)?;
                if others.iter().any(|s| s.name == name && s.id != store.id) {
                    return Err(KmsError::CustomKeyStoreNameInUse(format!(
                        "Custom key store name '{name}' is already in use"
                    )));
                }
                store.name = name;
            }
            if u.password.is_some() || u.cluster_id.is_some() {
                return Err(KmsError::Validation(
                    "KeyStorePassword and CloudHsmClusterId apply only to AWS_CLOUDHSM key stores."
                        .into(),
                ));
            }
            if let Some(x) = u.xks {
                self.update_xks_store(call, &mut store, x)?;
            }
            self.store.update_custom_key_store(&store)?;
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
            let others = self
                .store
                .list_custom_key_stores(&store.account, &self.region)?;
            if others.iter().any(|s| s.name == name && s.id != store.id) {
                return Err(KmsError::CustomKeyStoreNameInUse(format!(
                    "Custom key store name '{name}' is already in use"
                )));
            }
            store.name = name;
        }
        if let Some(cluster_id) = u.cluster_id {
            let Some(new) = self.cks.cluster_config(&cluster_id) else {
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
            store.cluster_id = Some(cluster_id);
        }
        if let Some(p) = u.password {
            store.password_encrypted = self.seal_secret(&store.id, &p)?;
        }
        self.store.update_custom_key_store(&store)?;
        Ok(())
    }

    pub fn delete_custom_key_store(&self, call: &mut Call, id: &str) -> KmsResult<()> {
        let store = self.store_of(call, id)?;
        if store.connection_state != ConnectionState::Disconnected {
            return Err(KmsError::CustomKeyStoreInvalidState(format!(
                "Custom key store {id} must be DISCONNECTED to be deleted"
            )));
        }
        if self.store.count_keys_in_store(id)? > 0 {
            return Err(KmsError::CustomKeyStoreHasCmks(format!(
                "Custom key store {id} still contains KMS keys"
            )));
        }
        self.store.delete_custom_key_store(id)?;
        Ok(())
    }

    /// Stores of the caller's account, optionally filtered by id or name.
    pub fn describe_custom_key_stores(
        &self,
        call: &mut Call,
        id: Option<&str>,
        name: Option<&str>,
    ) -> KmsResult<Vec<CustomKeyStoreRecord>> {
        let all = self
            .store
            .list_custom_key_stores(&call.principal.account, &self.region)?;
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
    pub fn create_cloudhsm_key(
        &self,
        call: &mut Call,
        store_id: &str,
        description: String,
        policy: String,
        tags: Vec<Tag>,
    ) -> KmsResult<KeyRecord> {
        let store = self.store_of(call, store_id)?;
        let Some(cluster) = self.cks.connected(store_id) else {
            return Err(KmsError::CustomKeyStoreInvalidState(format!(
                "Custom key store {store_id} is not connected"
            )));
        };
        let account = call.principal.account.clone();
        let key_id = KeyId::generate();
        let arn = crate::model::KeyArn::new(&self.partition, &self.region, &account, &key_id).0;
        let (wrapped, holders) = cluster.create_backing_key(&arn, MIN_MEMBERS_FOR_CREATE).map_err(|e| match e {
            BackendError::Unsupported(m) => KmsError::CloudHsmClusterInvalidConfiguration(format!(
                "The CloudHSM cluster {} of custom key store {store_id} is not configured to create keys: {m}",
                store.cluster_id.as_deref().unwrap_or("")
            )),
            other => KmsError::from(other),
        })?;
        tracing::info!(key_arn = %arn, members = ?holders, "created backing key in the cluster");
        let now = self.clock.now();
        let key = KeyRecord {
            key_id: key_id.clone(),
            account,
            region: self.region.clone(),
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
            unavailable: false,
        };
        let material = MaterialRecord {
            key_id,
            version: 1,
            wrapped,
            created: now,
            rotation_type: None,
        };
        self.store.insert_key(&key, &material, &tags)?;
        call.touch(&key);
        Ok(key)
    }

    /// GenerateRandom from a custom key store's cluster.
    pub fn generate_random_in_store(
        &self,
        call: &Call,
        store_id: &str,
        len: usize,
    ) -> KmsResult<zeroize::Zeroizing<Vec<u8>>> {
        self.store_of(call, store_id)?;
        let Some(cluster) = self.cks.connected(store_id) else {
            return Err(KmsError::CustomKeyStoreInvalidState(format!(
                "Custom key store {store_id} is not connected"
            )));
        };
        Ok(cluster.random(len)?)
    }

    /// The cluster id of a key's store (DescribeKey's CloudHsmClusterId).
    pub fn cloud_hsm_cluster_id(&self, key: &KeyRecord) -> Option<String> {
        self.cloud_hsm_cluster_id_of_store(key.custom_key_store_id.as_deref()?)
    }

    pub(crate) fn cloud_hsm_cluster_id_of_store(&self, store_id: &str) -> Option<String> {
        self.store
            .get_custom_key_store(store_id)
            .ok()
            .flatten()
            .and_then(|s| s.cluster_id)
    }

    /// After deleting a custom-store key: best-effort deletion of its backing objects.
    pub(crate) fn delete_backing_key(&self, key: &KeyRecord) -> Option<bool> {
        let store_id = key.custom_key_store_id.as_deref()?;
        Some(match self.cks.connected(store_id) {
            Some(c) => c.delete_backing_key(&key.key_id, &key.arn),
            None => false,
        })
    }

    /// Reconnects, after a restart, the stores that were connected.
    pub fn reconnect_stores(&self) -> KmsResult<()> {
        for mut s in self.store.all_custom_key_stores()? {
            if !matches!(
                s.connection_state,
                ConnectionState::Connected | ConnectionState::Connecting
            ) {
                continue;
            }
            if s.store_type == CustomKeyStoreType::ExternalKeyStore {
                let call = Call::new(
                    crate::model::Principal {
                        account: s.account.clone(),
                        arn: String::new(),
                        access_key_id: String::new(),
                    },
                    uuid::Uuid::new_v4().to_string(),
                    "AWS Internal".into(),
                    "AWS Internal".into(),
                );
                let mut call = call;
                call.operation = "KmsHealthCheck";
                self.connect_xks_store(&call, s)?;
                continue;
            }
            let Some(cfg) = s
                .cluster_id
                .as_deref()
                .and_then(|c| self.cks.cluster_config(c))
                .cloned()
            else {
                s.connection_state = ConnectionState::Failed;
                s.connection_error = Some("CLUSTER_NOT_FOUND".into());
                self.store.update_custom_key_store(&s)?;
                continue;
            };
            let password = self.open_secret(&s.id, &s.password_encrypted)?;
            s.connection_state = ConnectionState::Connecting;
            let s = self.store.update_custom_key_store(&s)?;
            self.finish_connect(&s.id, cfg, password);
        }
        Ok(())
    }
}
