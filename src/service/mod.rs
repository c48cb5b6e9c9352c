//! The KMS rules: key lifecycle and the key-state table, identifier and alias resolution,
//! encryption context binding and the ciphertext format, rotation and deletion, custom key
//! stores, and audit emission. No HTTP types here: the API layer hands in typed, validated
//! values and renders whatever comes back.
//!
//! The service is async. Only a blocking call itself leaves the async workers: a PKCS#11 call
//! goes to the HSM threads (inside the backend), a SQLite statement to the store's blocking
//! section, and a proxy call is awaited as network I/O.
//!
//! Shape: [`Kms`] is a set of focused parts (keys, crypto, aliases, tags, rotation, policies,
//! grants, custom key stores), each owning one concern's operations, over one [`Core`] of shared
//! dependencies (store, root backend, audit sink, clock, region, metrics, key store
//! connections) and the rules every part needs (key resolution, the key-state table, audit
//! records). Each part dereferences to the core.

pub mod agreement;
pub mod aliases;
pub mod authz;
pub mod ciphertext;
pub mod clock;
pub mod crypto;
pub mod custom_key_stores;
pub mod data_key_pairs;
pub mod error;
pub mod grants;
pub mod health;
pub mod import;
pub mod keys;
pub mod mac;
pub mod maintenance;
pub mod multi_region;
pub mod policy;
pub mod quotas;
pub mod root_check;
pub mod rotation;
pub mod secrets;
pub mod seed;
pub mod signing;
pub mod store_sync;
pub mod sts;
pub mod tags;
pub mod xks;

use std::ops::Deref;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use error::{InternalCause, KmsError, KmsResult};

use crate::audit::{
    AuditEvent, AuditSink, Resource, SessionAttributes, SessionContext, SessionIssuer, UserIdentity,
};
use crate::backend::CryptoBackend;
use crate::model::{KeyRecord, KeyRef, KeyRefError, KeyState, Principal};
use crate::store::MetadataStore;
use clock::Clock;
use custom_key_stores::Connections;

/// One API call in progress: who calls, and what the audit record should say about it.
#[derive(Debug, Clone)]
pub struct Call {
    /// Shared: a long-term key's principal is built once per identity snapshot.
    pub principal: Arc<Principal>,
    pub request_id: String,
    /// The client's address (`aws:SourceIp`, the audit `sourceIPAddress`): the TCP peer, or
    /// the client a trusted proxy names (`[server] trusted_proxies`).
    pub source_ip: String,
    pub user_agent: String,
    /// Keys (and aliases) the call touched, in order; becomes the audit `resources`.
    pub resources: Vec<Resource>,
    /// The AWS operation name (`Encrypt`), for messages that name the action.
    pub operation: &'static str,
    /// `additionalEventData` of the audit record (custom key store details).
    pub additional: Option<Value>,
    /// The request arrived over TLS (`aws:SecureTransport`).
    pub secure_transport: bool,
    /// The alias name the request named its key by (`kms:RequestAlias`), set by resolution.
    pub request_alias: Option<String>,
    /// The request's region (its SigV4 scope's, one the server serves); empty for calls that
    /// have none (the service's own, failed authentication): [`Core::region_of`] then answers
    /// the default region.
    pub region: String,
}

impl Call {
    pub fn new(
        principal: impl Into<Arc<Principal>>,
        request_id: String,
        source_ip: String,
        user_agent: String,
    ) -> Self {
        Call {
            principal: principal.into(),
            request_id,
            source_ip,
            user_agent,
            resources: Vec::new(),
            operation: "",
            additional: None,
            secure_transport: false,
            request_alias: None,
            region: String::new(),
        }
    }

    /// A call the service makes on its own behalf (maintenance, reconnects at start-up).
    pub fn internal(account: &str, operation: &'static str) -> Self {
        let mut call = Call::new(
            Principal::anonymous(account, ""),
            uuid::Uuid::new_v4().to_string(),
            "AWS Internal".into(),
            "AWS Internal".into(),
        );
        call.operation = operation;
        call
    }

    pub(crate) fn touch(&mut self, key: &KeyRecord) {
        let r = Resource::key(&key.account, &key.arn);
        if !self.resources.contains(&r) {
            self.resources.push(r);
        }
        // Keys of custom key stores: the audit record names the store (and the external key).
        if let Some(store) = &key.custom_key_store_id {
            if self.additional.is_none() {
                let mut extra = serde_json::json!({ "customKeyStoreId": store });
                if let Some(x) = &key.xks_key_id {
                    extra["xksKeyId"] = serde_json::Value::String(x.clone());
                }
                self.additional = Some(extra);
            }
        }
    }
}

/// Waits for a durable audit record (nothing to wait for otherwise): `Err` when it could not
/// be written, and the request must then fail.
pub async fn audited(ack: Option<crate::audit::AuditAck>) -> KmsResult<()> {
    match ack {
        None => Ok(()),
        Some(ack) => match ack.await {
            Ok(true) => Ok(()),
            _ => Err(KmsError::internal_because(InternalCause::Audit)),
        },
    }
}

/// The error part of an audit record.
#[derive(Debug, Clone, Copy)]
pub struct AuditError<'a> {
    pub code: &'static str,
    pub message: Option<&'a str>,
}

/// The shared dependencies of every part of the service, and the rules they all apply.
pub struct Core {
    pub(crate) store: Arc<dyn MetadataStore>,
    /// The root of the default key store (software or PKCS#11).
    pub(crate) root: Arc<dyn CryptoBackend>,
    pub(crate) audit: Arc<dyn AuditSink>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) region: String,
    /// Every region served, the default first.
    pub(crate) regions: Vec<String>,
    pub(crate) partition: String,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// Connected custom key stores (clusters and external key store proxies) and their quotas.
    pub(crate) connections: Connections,
    /// Identities: users, roles, sessions (for principals named in policies and grants).
    pub(crate) iam: Arc<crate::iam::Iam>,
    /// Key policies, compiled once per change.
    pub(crate) key_policies: authz::KeyPolicyCache,
    /// Resource quotas.
    pub(crate) limits: crate::config::Limits,
    /// Request quotas (token buckets per account, region and quota).
    pub(crate) quotas: quotas::RequestQuotas,
    /// Set on SIGTERM: the node is draining and not ready for new traffic.
    pub(crate) draining: std::sync::atomic::AtomicBool,
}

/// Implements `Deref<Target = Core>` for a part of the service.
macro_rules! part {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name {
            core: std::sync::Arc<$crate::service::Core>,
        }

        impl $name {
            pub(crate) fn new(core: std::sync::Arc<$crate::service::Core>) -> Self {
                $name { core }
            }
        }

        impl std::ops::Deref for $name {
            type Target = $crate::service::Core;
            fn deref(&self) -> &$crate::service::Core {
                &self.core
            }
        }
    };
}
pub(crate) use part;

/// The KMS service: its parts over one shared [`Core`].
pub struct Kms {
    pub keys: keys::Keys,
    pub crypto: crypto::Crypto,
    pub aliases: aliases::Aliases,
    pub tags: tags::Tags,
    pub rotation: rotation::Rotation,
    pub policies: policy::Policies,
    pub grants: grants::Grants,
    pub custom_key_stores: custom_key_stores::CustomKeyStores,
    pub agreement: agreement::Agreement,
    pub data_key_pairs: data_key_pairs::DataKeyPairs,
    pub signing: signing::Signing,
    pub mac: mac::Mac,
    pub import: import::Import,
    core: Arc<Core>,
}

impl Deref for Kms {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.core
    }
}

/// The refusal of an operation a key in a custom key store does not support (key-state
/// footnote [7]; the words are ours).
pub(crate) fn in_custom_key_store(key: &KeyRecord) -> KmsError {
    KmsError::UnsupportedOperation(format!(
        "{} is in a custom key store, which does not support this operation.",
        key.arn
    ))
}

/// Applies the key-state table (reference kms-api.md §3.3) for `rule`: the outcome of an
/// operation of that row on `key` in its (effective) state, messages verbatim from the
/// reference's footnotes.
pub fn check_key_state(key: &KeyRecord, rule: StateRule) -> KmsResult<()> {
    use KeyState::*;
    let arn = &key.arn;
    if rule == StateRule::Rotation && key.custom_key_store_id.is_some() {
        return Err(in_custom_key_store(key));
    }
    let pending_deletion = || KmsError::KmsInvalidState(format!("{arn} is pending deletion."));
    let pending_import = || KmsError::KmsInvalidState(format!("{arn} is pending import."));
    let disabled = || KmsError::Disabled(format!("{arn} is disabled."));
    let unavailable = || KmsError::KmsInvalidState(format!("{arn} is unavailable."));
    let creating = || KmsError::KmsInvalidState(format!("{arn} is creating."));
    let updating = || KmsError::KmsInvalidState(format!("{arn} is updating."));
    match (rule, key.effective_state()) {
        (StateRule::Any, _) => Ok(()),
        (StateRule::Crypto, Enabled | Updating) => Ok(()),
        (StateRule::Crypto, Disabled) => Err(disabled()),
        (StateRule::Crypto, PendingDeletion | PendingReplicaDeletion) => Err(pending_deletion()),
        (StateRule::Crypto, PendingImport) => Err(pending_import()),
        (StateRule::Crypto, Unavailable) => Err(unavailable()),
        (StateRule::Crypto, Creating) => Err(creating()),

        (StateRule::CreateGrant, Unavailable) => Ok(()),
        (StateRule::CreateGrant, _) => check_key_state(key, StateRule::Crypto),

        (StateRule::EnableDisable, Enabled | Disabled | Unavailable) => Ok(()),
        (StateRule::EnableDisable, PendingDeletion | PendingReplicaDeletion) => {
            Err(pending_deletion())
        }
        (StateRule::EnableDisable, PendingImport) => Err(pending_import()),
        (StateRule::EnableDisable, Creating) => Err(creating()),
        (StateRule::EnableDisable, Updating) => Err(updating()),

        (StateRule::NotPendingDeletion, PendingDeletion | PendingReplicaDeletion) => {
            Err(pending_deletion())
        }
        (StateRule::NotPendingDeletion, _) => Ok(()),

        (StateRule::Schedule, PendingDeletion | PendingReplicaDeletion) => Err(pending_deletion()),
        (StateRule::Schedule, Updating) => Err(updating()),
        (StateRule::Schedule, _) => Ok(()),

        (StateRule::Cancel, PendingDeletion | PendingReplicaDeletion) => Ok(()),
        (StateRule::Cancel, _) => Err(KmsError::KmsInvalidState(format!(
            "{arn} is not pending deletion."
        ))),

        (StateRule::Rotation, Enabled | Updating) => Ok(()),
        (StateRule::Rotation, Disabled) => Err(disabled()),
        (StateRule::Rotation, PendingDeletion | PendingReplicaDeletion) => Err(pending_deletion()),
        (StateRule::Rotation, PendingImport) => Err(KmsError::UnsupportedOperation(format!(
            "{arn} origin is EXTERNAL which is not valid for this operation."
        ))),
        (StateRule::Rotation, Unavailable) => Err(in_custom_key_store(key)),
        (StateRule::Rotation, Creating) => Err(creating()),
    }
}

/// Which row of the key-state table an operation follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateRule {
    /// Encrypt, Decrypt, ReEncrypt, GenerateDataKey*: Enabled and Updating only.
    Crypto,
    /// CreateGrant: as [`StateRule::Crypto`], but an Unavailable key takes grants.
    CreateGrant,
    /// EnableKey, DisableKey.
    EnableDisable,
    /// UpdateKeyDescription, TagResource, UntagResource, CreateAlias (target).
    NotPendingDeletion,
    /// ScheduleKeyDeletion.
    Schedule,
    /// CancelKeyDeletion.
    Cancel,
    /// Enable/DisableKeyRotation, RotateKeyOnDemand.
    Rotation,
    /// DescribeKey, policies, listing: every state.
    Any,
}

impl Kms {
    #[allow(clippy::too_many_arguments)] // one per shared component, built once by crate::app
    pub fn new(
        store: Arc<dyn MetadataStore>,
        root: Arc<dyn CryptoBackend>,
        audit: Arc<dyn AuditSink>,
        clock: Arc<dyn Clock>,
        regions: Vec<String>,
        connections: Connections,
        metrics: Arc<crate::metrics::Metrics>,
        iam: Arc<crate::iam::Iam>,
        limits: crate::config::Limits,
    ) -> Arc<Self> {
        let quotas = quotas::RequestQuotas::new(limits.requests.clone());
        let core = Arc::new(Core {
            store,
            root,
            audit,
            clock,
            region: regions
                .first()
                .cloned()
                .unwrap_or_else(|| "us-east-1".into()),
            regions,
            partition: "aws".into(),
            metrics,
            connections,
            iam,
            key_policies: authz::KeyPolicyCache::default(),
            quotas,
            limits,
            draining: std::sync::atomic::AtomicBool::new(false),
        });
        Arc::new(Kms {
            keys: keys::Keys::new(core.clone()),
            crypto: crypto::Crypto::new(core.clone()),
            aliases: aliases::Aliases::new(core.clone()),
            tags: tags::Tags::new(core.clone()),
            rotation: rotation::Rotation::new(core.clone()),
            policies: policy::Policies::new(core.clone()),
            grants: grants::Grants::new(core.clone()),
            custom_key_stores: custom_key_stores::CustomKeyStores::new(core.clone()),
            agreement: agreement::Agreement::new(core.clone()),
            data_key_pairs: data_key_pairs::DataKeyPairs::new(core.clone()),
            signing: signing::Signing::new(core.clone()),
            mac: mac::Mac::new(core.clone()),
            import: import::Import::new(core.clone()),
            core,
        })
    }

    /// The shared core.
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }
}

impl Core {
    /// The metrics registry (rendered by the metrics listener).
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// Reads the bounded caches' sizes into the metrics (before a render).
    pub fn refresh_cache_metrics(&self) {
        let m = &self.metrics;
        if let Some(n) = self.root.cached_versions() {
            m.cache_entries
                .with_label_values(&["root_key_versions"])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        if let Some(c) = self.store.cache_stats() {
            let gauge = |name: &str, n: usize| {
                m.cache_entries
                    .with_label_values(&[name])
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            };
            gauge("key_rows", c.key_rows);
            gauge("grant_lists", c.grant_lists);
            let evictions = &m.metadata_cache_evictions;
            evictions.inc_by(c.evictions.saturating_sub(evictions.get()));
            let calls = &m.metadata_store_calls;
            calls.inc_by(c.store_calls.saturating_sub(calls.get()));
        }
    }

    /// What the metadata cache holds and how many calls it passed on to the store (`None`
    /// without a cache).
    pub fn cache_stats(&self) -> Option<crate::store::CacheStats> {
        self.store.cache_stats()
    }

    /// The default region (the first served).
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The region a call works in: its own, or the default region.
    pub fn region_of<'a>(&'a self, call: &'a Call) -> &'a str {
        if call.region.is_empty() {
            &self.region
        } else {
            &call.region
        }
    }

    /// Every region this deployment serves (the default first).
    pub fn regions(&self) -> &[String] {
        &self.regions
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn key_not_found(&self, region: &str, account: &str, key_id: &crate::model::KeyId) -> KmsError {
        KmsError::NotFound(format!(
            "Key 'arn:{}:kms:{}:{}:key/{}' does not exist",
            self.partition, region, account, key_id
        ))
    }

    /// Resolves a `KeyId` parameter in the call's region. A key id or alias name resolves in
    /// the caller's account (NotFound otherwise); a key ARN or alias ARN may name another
    /// account's key, which authorization then decides on (a missing one is AccessDenied, so
    /// as not to reveal what exists). An ARN of another region (served or not) is NotFound, as
    /// AWS answers. A multi-Region key id names the related key of the call's region.
    /// `allow_alias` is false for operations that take only a key id or key ARN.
    pub async fn resolve(
        &self,
        call: &mut Call,
        key_id: &str,
        allow_alias: bool,
    ) -> KmsResult<KeyRecord> {
        let account = call.principal.account.clone();
        let here = self.region_of(call).to_string();
        let key_ref = match KeyRef::parse(key_id) {
            Ok(r) => r,
            Err(KeyRefError::InvalidKeyId) => {
                return Err(KmsError::NotFound(format!("Invalid keyId '{key_id}'")))
            }
            Err(KeyRefError::InvalidArn) => {
                return Err(KmsError::NotFound(format!("Invalid arn {key_id}")))
            }
        };
        // AWS's exception and words for an alias where only a key id or key ARN is valid
        // (recorded AWS responses, docs/errors.md).
        if key_ref.is_alias() && !allow_alias {
            return Err(KmsError::InvalidArn(
                "Key Aliases are not supported for this operation.".into(),
            ));
        }
        let (id, owner) = match key_ref {
            KeyRef::Id(id) => (id.in_region(&here), account.clone()),
            KeyRef::Arn {
                region,
                account: owner,
                key_id: id,
            } => {
                if region != here {
                    return Err(KmsError::NotFound(format!("Invalid arn {region}")));
                }
                (id.in_region(&here), owner)
            }
            KeyRef::AliasName(alias) => {
                call.request_alias = Some(alias.0.clone());
                (
                    self.alias_target(&here, &account, &alias.0).await?,
                    account.clone(),
                )
            }
            KeyRef::AliasArn {
                region,
                account: owner,
                alias,
            } => {
                if region != here {
                    return Err(KmsError::NotFound(format!("Invalid arn {region}")));
                }
                call.request_alias = Some(alias.0.clone());
                if owner == account {
                    (self.alias_target(&here, &account, &alias.0).await?, owner)
                } else {
                    match self.store.get_alias(&owner, &here, &alias.0).await? {
                        Some(a) => (a.target_key_id, owner),
                        None => return Err(self.not_here(call)),
                    }
                }
            }
        };
        if owner != account {
            return match self.store.get_key(&id).await? {
                Some(k) if k.account == owner && k.region == here => {
                    let key = self.annotate(k);
                    call.touch(&key);
                    Ok(key)
                }
                _ => Err(self.not_here(call)),
            };
        }
        let key = self.get_key_of(&here, &account, &id).await?;
        call.touch(&key);
        Ok(key)
    }

    /// The AccessDenied of another account's key that does not exist (the same words as a
    /// denial, so callers cannot probe for keys).
    pub(crate) fn not_here(&self, call: &Call) -> KmsError {
        KmsError::AccessDenied(kms_policy::messages::cross_account(
            &call.principal.arn,
            &format!("kms:{}", call.operation),
        ))
    }

    /// Loads a key by (stored) id, as visible to `account` in `region`.
    pub(crate) async fn get_key_of(
        &self,
        region: &str,
        account: &str,
        id: &crate::model::KeyId,
    ) -> KmsResult<KeyRecord> {
        match self.store.get_key(id).await? {
            Some(k) if k.account == account && k.region == region => Ok(self.annotate(k)),
            _ => Err(self.key_not_found(region, account, id)),
        }
    }

    async fn alias_target(
        &self,
        region: &str,
        account: &str,
        alias: &str,
    ) -> KmsResult<crate::model::KeyId> {
        match self.store.get_alias(account, region, alias).await? {
            Some(a) => Ok(a.target_key_id),
            // AWS's words, no quotes (recorded AWS responses, docs/errors.md).
            None => Err(KmsError::NotFound(format!(
                "Alias {} is not found.",
                crate::model::AliasName(alias.to_string()).arn(&self.partition, region, account)
            ))),
        }
    }

    /// Marks a key `unavailable` when its custom key store is not connected.
    pub(crate) fn annotate(&self, mut key: KeyRecord) -> KeyRecord {
        if let Some(id) = &key.custom_key_store_id {
            key.unavailable = !self.connections.is_connected(id);
        }
        key
    }

    /// The per-operation request quota of the caller's account (at the API edge, before the
    /// operation runs; the cryptographic operations are counted by [`Self::admit_crypto`]).
    pub fn admit_operation(&self, call: &Call) -> KmsResult<()> {
        if self.quotas.admit_operation(
            &call.principal.account,
            self.region_of(call),
            call.operation,
        ) {
            Ok(())
        } else {
            Err(KmsError::Throttling)
        }
    }

    /// A cryptographic operation on `key`: the caller's account's shared quota of the key's
    /// type (AWS counts cross-account requests against the caller), then the key-state table.
    pub fn admit_crypto(&self, call: &Call, key: &KeyRecord) -> KmsResult<()> {
        self.admit_quota(call, quotas::Quota::of_key(key.key_spec))?;
        self.check_state(key, StateRule::Crypto)
    }

    /// Takes one request from the caller's account's `quota`.
    pub fn admit_quota(&self, call: &Call, quota: quotas::Quota) -> KmsResult<()> {
        if self
            .quotas
            .admit(&call.principal.account, self.region_of(call), quota)
        {
            Ok(())
        } else {
            Err(KmsError::Throttling)
        }
    }

    /// Applies the key-state table for `rule` ([`check_key_state`]).
    pub fn check_state(&self, key: &KeyRecord, rule: StateRule) -> KmsResult<()> {
        check_key_state(key, rule)
    }

    /// Emits the audit record of a KMS API call (consumes the call: its strings move into the
    /// record). In durable mode, returns what to await before responding ([`audited`]).
    pub fn audit_call(
        &self,
        call: Call,
        event_name: &str,
        request_parameters: Value,
        response_elements: Value,
        error: Option<AuditError<'_>>,
        read_only: bool,
    ) -> Option<crate::audit::AuditAck> {
        self.audit_call_from(
            "kms.amazonaws.com",
            call,
            event_name,
            request_parameters,
            response_elements,
            error,
            read_only,
        )
    }

    /// Emits the audit record of an API call of `event_source` (`kms.amazonaws.com`,
    /// `sts.amazonaws.com`).
    #[allow(clippy::too_many_arguments)] // the parts of one record, as audit_call
    pub fn audit_call_from(
        &self,
        event_source: &'static str,
        call: Call,
        event_name: &str,
        request_parameters: Value,
        response_elements: Value,
        error: Option<AuditError<'_>>,
        read_only: bool,
    ) -> Option<crate::audit::AuditAck> {
        let aws_region = self.region_of(&call).to_string();
        let p = call.principal;
        let event = AuditEvent {
            event_version: "1.08",
            user_identity: user_identity(&p),
            event_time: self
                .clock
                .now()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            event_source,
            event_name: event_name.to_string(),
            aws_region,
            source_i_p_address: call.source_ip,
            user_agent: call.user_agent,
            error_code: error.map(|e| e.code.to_string()),
            error_message: error.and_then(|e| e.message.map(str::to_string)),
            request_parameters,
            response_elements,
            request_id: call.request_id,
            event_id: String::new(),
            read_only,
            resources: call.resources,
            event_type: "AwsApiCall",
            management_event: true,
            recipient_account_id: p.account.clone(),
            event_category: "Management",
            service_event_details: None,
            additional_event_data: call.additional,
        };
        if self.audit.durable() {
            return Some(self.audit.record_durable(event));
        }
        self.audit.record(event);
        None
    }

    /// Waits until every audit record emitted so far is written (graceful shutdown).
    pub fn flush_audit(&self) {
        self.audit.flush();
    }

    /// Emits the audit record of a service-internal event (`DeleteKey`, `RotateKey`).
    pub(crate) fn audit_service_event(
        &self,
        event_name: &str,
        key: &KeyRecord,
        additional: Option<Value>,
    ) {
        let event = AuditEvent {
            event_version: "1.08",
            user_identity: UserIdentity {
                kind: None,
                principal_id: None,
                arn: None,
                account_id: key.account.clone(),
                access_key_id: None,
                user_name: None,
                invoked_by: Some("AWS Internal".into()),
                session_context: None,
            },
            event_time: self
                .clock
                .now()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            event_source: "kms.amazonaws.com",
            event_name: event_name.to_string(),
            aws_region: key.region.clone(),
            source_i_p_address: "AWS Internal".into(),
            user_agent: "AWS Internal".into(),
            error_code: None,
            error_message: None,
            request_parameters: Value::Null,
            // CloudTrail names the affected key here for DeleteKey and RotateKey.
            response_elements: serde_json::json!({ "keyId": key.arn }),
            request_id: uuid::Uuid::new_v4().to_string(),
            event_id: String::new(),
            read_only: false,
            resources: vec![Resource::key(&key.account, &key.arn)],
            event_type: "AwsServiceEvent",
            management_event: true,
            recipient_account_id: key.account.clone(),
            event_category: "Management",
            service_event_details: Some(serde_json::json!({ "keyId": key.key_id.public() })),
            additional_event_data: additional,
        };
        self.audit.record(event);
    }
}

/// `userIdentity` of an audit record, as CloudTrail writes it for IAM users, the root user and
/// role sessions (`principalId` is the unique id; a session's record names its role).
fn user_identity(p: &Principal) -> UserIdentity {
    use kms_policy::CallerKind;
    let kind = p.identity_type();
    let principal_id = p
        .unique_id()
        .map(str::to_string)
        .or_else(|| (!p.access_key_id.is_empty()).then(|| p.access_key_id.clone()));
    let (user_name, session_context) = match p.caller.as_ref().map(kms_policy::Caller::kind) {
        Some(CallerKind::User) => (Some(p.name().to_string()), None),
        Some(CallerKind::AssumedRole { role_arn, .. }) => {
            let role_name = role_arn.rsplit('/').next().unwrap_or_default();
            let role_id = principal_id
                .as_deref()
                .and_then(|id| id.split(':').next())
                .unwrap_or_default();
            let session_issuer = SessionIssuer {
                kind: "Role",
                principal_id: role_id.to_string(),
                arn: role_arn.to_string(),
                account_id: p.account.clone(),
                user_name: role_name.to_string(),
            };
            let attributes = SessionAttributes {
                // Every session carries its issue time (`aws:TokenIssueTime`).
                creation_date: p
                    .token_issue_time
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default(),
                // There are no MFA devices here: AssumeRole with an MFA code is refused.
                mfa_authenticated: "false",
            };
            let context = SessionContext {
                session_issuer,
                web_id_federation_data: serde_json::Map::new(),
                attributes,
                source_identity: p.source_identity.clone(),
            };
            (None, Some(context))
        }
        _ => (None, None),
    };
    UserIdentity {
        kind: Some(kind.into()),
        principal_id,
        arn: (!p.arn.is_empty()).then(|| p.arn.clone()),
        account_id: p.account.clone(),
        access_key_id: (!p.access_key_id.is_empty()).then(|| p.access_key_id.clone()),
        user_name,
        invoked_by: None,
        session_context,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::{KeyId, KeySpec, KeyUsage, Origin};

    const ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    fn key(state: KeyState, unavailable: bool) -> KeyRecord {
        KeyRecord {
            key_id: KeyId::parse("1234abcd-12ab-34cd-56ef-1234567890ab").unwrap(),
            account: "111122223333".into(),
            region: "us-east-1".into(),
            arn: ARN.into(),
            description: String::new(),
            key_spec: KeySpec::SymmetricDefault,
            key_usage: KeyUsage::EncryptDecrypt,
            origin: Origin::AwsKms,
            state,
            creation_date: chrono::Utc::now(),
            deletion_date: None,
            pending_window_days: None,
            policy: String::new(),
            rotation_enabled: false,
            rotation_period_days: None,
            next_rotation_date: None,
            current_material: 1,
            row_version: 1,
            custom_key_store_id: unavailable.then(|| "cks-1234567890abcdef0".into()),
            xks_key_id: None,
            public_key: None,
            mrk_primary_region: None,
            unavailable,
        }
    }

    /// Every cell of the reference's key-state table (§3.3) that `check_key_state` decides,
    /// including Creating and Updating, which no API test can observe (this server holds them
    /// only inside the request that makes the change). "ok", or the exception and the text
    /// after the key ARN.
    #[test]
    fn every_rule_in_every_state() {
        use KeyState::*;
        let states = [
            ("En", Enabled, false),
            ("Dis", Disabled, false),
            ("PD", PendingDeletion, false),
            ("PRD", PendingReplicaDeletion, false),
            ("PI", PendingImport, false),
            ("Un", Enabled, true),
            ("Cr", Creating, false),
            ("Up", Updating, false),
        ];
        let ok = "ok";
        let dis = "DisabledException is disabled.";
        let pd = "KMSInvalidStateException is pending deletion.";
        let not_pd = "KMSInvalidStateException is not pending deletion.";
        let pi = "KMSInvalidStateException is pending import.";
        let un = "KMSInvalidStateException is unavailable.";
        let cr = "KMSInvalidStateException is creating.";
        let up = "KMSInvalidStateException is updating.";
        let ext = "UnsupportedOperationException origin is EXTERNAL which is not valid for this \
                   operation.";
        let cks = "UnsupportedOperationException is in a custom key store, which does not \
                   support this operation.";
        // Columns: En, Dis, PD, PRD, PI, Un, Cr, Up.
        let table: [(StateRule, [&str; 8]); 8] = [
            (StateRule::Crypto, [ok, dis, pd, pd, pi, un, cr, ok]),
            (StateRule::CreateGrant, [ok, dis, pd, pd, pi, ok, cr, ok]),
            (StateRule::EnableDisable, [ok, ok, pd, pd, pi, ok, cr, up]),
            (
                StateRule::NotPendingDeletion,
                [ok, ok, pd, pd, ok, ok, ok, ok],
            ),
            (StateRule::Schedule, [ok, ok, pd, pd, ok, ok, ok, up]),
            (
                StateRule::Cancel,
                [not_pd, not_pd, ok, ok, not_pd, not_pd, not_pd, not_pd],
            ),
            (StateRule::Rotation, [ok, dis, pd, pd, ext, cks, cr, ok]),
            (StateRule::Any, [ok; 8]),
        ];
        for (rule, row) in table {
            for ((name, state, unavailable), want) in states.iter().zip(row) {
                let got = match check_key_state(&key(*state, *unavailable), rule) {
                    Ok(()) => ok.to_string(),
                    Err(e) => {
                        let message = e.message().unwrap_or_default();
                        let rest = message.strip_prefix(ARN).unwrap_or(&message).trim_start();
                        format!("{} {rest}", e.code())
                    }
                };
                assert_eq!(got, want, "{rule:?} in {name}");
            }
        }
    }
}
