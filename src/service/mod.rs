//! The KMS rules: key lifecycle and the key-state table, identifier and alias resolution,
//! encryption context binding and the ciphertext format, rotation and deletion, and audit
//! emission. No HTTP types here: the API layer hands in typed, validated values and renders
//! whatever comes back.

pub mod aliases;
pub mod ciphertext;
pub mod clock;
pub mod crypto;
pub mod custom_key_stores;
pub mod error;
pub mod keys;
pub mod maintenance;
pub mod policy;
pub mod rotation;
pub mod secrets;
pub mod tags;
pub mod xks;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use error::{KmsError, KmsResult};

use crate::audit::{AuditEvent, AuditSink, Resource, UserIdentity};
use crate::backend::CryptoBackend;
use crate::model::{KeyRecord, KeyRef, KeyRefError, KeyState, Principal};
use crate::store::MetadataStore;
use clock::Clock;

/// One API call in progress: who calls, and what the audit record should say about it.
#[derive(Debug, Clone)]
pub struct Call {
    pub principal: Principal,
    pub request_id: String,
    pub source_ip: String,
    pub user_agent: String,
    /// Keys (and aliases) the call touched, in order; becomes the audit `resources`.
    pub resources: Vec<Resource>,
    /// The AWS operation name (`Encrypt`), for messages that name the action.
    pub operation: &'static str,
    /// `additionalEventData` of the audit record (custom key store details).
    pub additional: Option<Value>,
}

impl Call {
    pub fn new(
        principal: Principal,
        request_id: String,
        source_ip: String,
        user_agent: String,
    ) -> Self {
        Call {
            principal,
            request_id,
            source_ip,
            user_agent,
            resources: Vec::new(),
            operation: "",
            additional: None,
        }
    }

    fn touch(&mut self, key: &KeyRecord) {
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

/// The KMS service: everything an operation needs, shared by all requests.
pub struct KmsService {
    pub(crate) store: Arc<dyn MetadataStore>,
    pub(crate) backend: Arc<dyn CryptoBackend>,
    pub(crate) audit: Arc<dyn AuditSink>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) region: String,
    pub(crate) partition: String,
    pub(crate) cks: custom_key_stores::CustomKeyStores,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// The threads that run crypto operations when an HSM is configured.
    pub(crate) hsm_pool: Option<Arc<hsm::threads::BlockingPool>>,
    /// A handle on ourselves for background work (custom key store connects).
    pub(crate) me: std::sync::Weak<KmsService>,
    /// The background threads (custom key store connects), joined when the service goes away
    /// (see [`hsm::threads::join_within`]: they call into the HSM library).
    pub(crate) background: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Drop for KmsService {
    fn drop(&mut self) {
        let threads = std::mem::take(self.background.get_mut().unwrap_or_else(|p| p.into_inner()));
        hsm::threads::join_within(threads, hsm::threads::JOIN_WAIT, "kms-background");
    }
}

/// Which row of the key-state table an operation follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateRule {
    /// Encrypt, Decrypt, ReEncrypt, GenerateDataKey*: Enabled and Updating only.
    Crypto,
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

impl KmsService {
    #[allow(clippy::too_many_arguments)] // one per shared component, built once by crate::app
    pub fn new(
        store: Arc<dyn MetadataStore>,
        backend: Arc<dyn CryptoBackend>,
        audit: Arc<dyn AuditSink>,
        clock: Arc<dyn Clock>,
        region: String,
        cks: custom_key_stores::CustomKeyStores,
        metrics: Arc<crate::metrics::Metrics>,
        hsm_pool: Option<Arc<hsm::threads::BlockingPool>>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| KmsService {
            store,
            backend,
            audit,
            clock,
            region,
            partition: "aws".into(),
            cks,
            metrics,
            hsm_pool,
            me: me.clone(),
            background: std::sync::Mutex::default(),
        })
    }

    /// The metrics registry (rendered by the metrics listener).
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// True when crypto calls may block on a device and must run on the blocking pool.
    pub fn crypto_blocks(&self) -> bool {
        self.hsm_pool.is_some() || self.crypto_blocks_without_hsm()
    }

    /// The HSM threads, when an HSM is configured (crypto operations run there).
    pub fn hsm_pool(&self) -> Option<&Arc<hsm::threads::BlockingPool>> {
        self.hsm_pool.as_ref()
    }

    fn crypto_blocks_without_hsm(&self) -> bool {
        self.backend.blocking() || self.cks.has_clusters() || self.cks.xks.any_connected()
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn key_not_found(&self, account: &str, key_id: &str) -> KmsError {
        KmsError::NotFound(format!(
            "Key 'arn:{}:kms:{}:{}:key/{}' does not exist",
            self.partition, self.region, account, key_id
        ))
    }

    /// Resolves a `KeyId` parameter to a key of the caller's account. `allow_alias` is false
    /// for management operations, which accept only a key id or key ARN.
    pub fn resolve(
        &self,
        call: &mut Call,
        key_id: &str,
        allow_alias: bool,
    ) -> KmsResult<KeyRecord> {
        let account = call.principal.account.clone();
        let key_ref = match KeyRef::parse(key_id) {
            Ok(r) => r,
            Err(KeyRefError::InvalidKeyId) => {
                return Err(KmsError::NotFound(format!("Invalid keyId '{key_id}'")))
            }
            Err(KeyRefError::InvalidArn) => {
                return Err(KmsError::NotFound(format!("Invalid arn {key_id}")))
            }
        };
        if key_ref.is_alias() && !allow_alias {
            return Err(KmsError::NotFound(format!("Invalid keyId '{key_id}'")));
        }
        let id = match key_ref {
            KeyRef::Id(id) => id,
            KeyRef::Arn {
                region,
                account: owner,
                key_id: id,
            } => {
                if region != self.region {
                    return Err(KmsError::NotFound(format!("Invalid arn {region}")));
                }
                if owner != account {
                    return Err(self.cross_account_denied(call, key_id));
                }
                id
            }
            KeyRef::AliasName(alias) => self.alias_target(&account, &alias.0)?,
            KeyRef::AliasArn {
                region,
                account: owner,
                alias,
            } => {
                if region != self.region {
                    return Err(KmsError::NotFound(format!("Invalid arn {region}")));
                }
                if owner != account {
                    return Err(self.cross_account_denied(call, key_id));
                }
                self.alias_target(&account, &alias.0)?
            }
        };
        let key = self.get_key_of(&account, &id)?;
        call.touch(&key);
        Ok(key)
    }

    /// Loads a key by id, as visible to `account`.
    pub(crate) fn get_key_of(
        &self,
        account: &str,
        id: &crate::model::KeyId,
    ) -> KmsResult<KeyRecord> {
        match self.store.get_key(id)? {
            Some(k) if k.account == account => Ok(self.annotate(k)),
            _ => Err(self.key_not_found(account, id.as_str())),
        }
    }

    fn alias_target(&self, account: &str, alias: &str) -> KmsResult<crate::model::KeyId> {
        match self.store.get_alias(account, &self.region, alias)? {
            Some(a) => Ok(a.target_key_id),
            None => Err(KmsError::NotFound(format!(
                "Alias '{}' is not found.",
                crate::model::AliasName(alias.to_string()).arn(
                    &self.partition,
                    &self.region,
                    account
                )
            ))),
        }
    }

    fn cross_account_denied(&self, call: &Call, resource: &str) -> KmsError {
        // Key policies are not evaluated yet, so no policy can grant another account access.
        let action = format!("kms:{}", call.operation);
        KmsError::AccessDenied(format!(
            "User: {} is not authorized to perform: {action} on resource: {resource} because no \
             resource-based policy allows the {action} action",
            call.principal.arn
        ))
    }

    /// Applies the key-state table for `rule` (messages verbatim from the reference).
    pub fn check_state(&self, key: &KeyRecord, rule: StateRule) -> KmsResult<()> {
        use KeyState::*;
        let arn = &key.arn;
        if rule == StateRule::Rotation && key.custom_key_store_id.is_some() {
            return Err(KmsError::UnsupportedOperation(format!(
                "{arn} is in a custom key store, which does not support this operation."
            )));
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
            (StateRule::Crypto, PendingDeletion | PendingReplicaDeletion) => {
                Err(pending_deletion())
            }
            (StateRule::Crypto, PendingImport) => Err(pending_import()),
            (StateRule::Crypto, Unavailable) => Err(unavailable()),
            (StateRule::Crypto, Creating) => Err(creating()),

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

            (StateRule::Schedule, PendingDeletion | PendingReplicaDeletion) => {
                Err(pending_deletion())
            }
            (StateRule::Schedule, Updating) => Err(updating()),
            (StateRule::Schedule, _) => Ok(()),

            (StateRule::Cancel, PendingDeletion | PendingReplicaDeletion) => Ok(()),
            (StateRule::Cancel, _) => Err(KmsError::KmsInvalidState(format!(
                "{arn} is not pending deletion."
            ))),

            (StateRule::Rotation, Enabled | Updating) => Ok(()),
            (StateRule::Rotation, Disabled) => Err(disabled()),
            (StateRule::Rotation, PendingDeletion | PendingReplicaDeletion) => {
                Err(pending_deletion())
            }
            (StateRule::Rotation, PendingImport) => Err(KmsError::UnsupportedOperation(format!(
                "{arn} origin is EXTERNAL which is not valid for this operation."
            ))),
            (StateRule::Rotation, Unavailable) => Err(KmsError::UnsupportedOperation(format!(
                "{arn} is in a custom key store, which does not support this operation."
            ))),
            (StateRule::Rotation, Creating) => Err(creating()),
        }
    }

    /// Emits the audit record of an API call (consumes the call: its strings move into the
    /// record).
    pub fn audit_call(
        &self,
        call: Call,
        event_name: &str,
        request_parameters: Value,
        response_elements: Value,
        error: Option<&KmsError>,
        read_only: bool,
    ) {
        let p = call.principal;
        let event = AuditEvent {
            event_version: "1.08",
            user_identity: UserIdentity {
                kind: Some(p.identity_type().into()),
                principal_id: Some(p.access_key_id.clone()),
                user_name: Some(p.name().to_string()),
                arn: Some(p.arn),
                account_id: p.account.clone(),
                access_key_id: Some(p.access_key_id),
                invoked_by: None,
            },
            event_time: self
                .clock
                .now()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            event_source: "kms.amazonaws.com",
            event_name: event_name.to_string(),
            aws_region: self.region.clone(),
            source_i_p_address: call.source_ip,
            user_agent: call.user_agent,
            error_code: error.map(|e| e.code().to_string()),
            error_message: error.and_then(|e| e.message()),
            request_parameters,
            response_elements,
            request_id: call.request_id,
            event_id: uuid::Uuid::new_v4().to_string(),
            read_only,
            resources: call.resources,
            event_type: "AwsApiCall",
            management_event: true,
            recipient_account_id: p.account,
            event_category: "Management",
            service_event_details: None,
            additional_event_data: call.additional,
        };
        self.audit.record(event);
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
            },
            event_time: self
                .clock
                .now()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            event_source: "kms.amazonaws.com",
            event_name: event_name.to_string(),
            aws_region: self.region.clone(),
            source_i_p_address: "AWS Internal".into(),
            user_agent: "AWS Internal".into(),
            error_code: None,
            error_message: None,
            request_parameters: Value::Null,
            // CloudTrail names the affected key here for DeleteKey and RotateKey.
            response_elements: serde_json::json!({ "keyId": key.arn }),
            request_id: uuid::Uuid::new_v4().to_string(),
            event_id: uuid::Uuid::new_v4().to_string(),
            read_only: false,
            resources: vec![Resource::key(&key.account, &key.arn)],
            event_type: "AwsServiceEvent",
            management_event: true,
            recipient_account_id: key.account.clone(),
            event_category: "Management",
            service_event_details: Some(serde_json::json!({ "keyId": key.key_id.as_str() })),
            additional_event_data: additional,
        };
        self.audit.record(event);
    }
}
