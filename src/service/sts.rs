//! The STS rules (reference §8.3): who may assume which role, for how long, with which session
//! policy, and the temporary credentials a successful `AssumeRole` hands out.
//!
//! Authorization: the role's trust policy is the resource policy of `sts:AssumeRole` on the
//! role ARN, decided by `kms_policy::authorize` with the caller's identity (and session)
//! policies and the caller's account's guardrails. Within one account a trust policy that names
//! the caller (its user ARN, its session's role, its session ARN) suffices; one that names the
//! account needs an identity-policy Allow too; across accounts both are needed. Session tags
//! also need `sts:TagSession`, a source identity `sts:SetSourceIdentity` (as in IAM). Every
//! denial, and an unknown role, reads `User: <caller> is not authorized to perform:
//! sts:AssumeRole on resource: <role-arn>`: the answer does not reveal whether a role exists.
//!
//! Durations: 900..=43200 seconds (checked by the API layer), default 3600, at most the role's
//! configured maximum, and at most 3600 when the caller is itself a role session (role
//! chaining). Expiry follows the service's clock.
//!
//! Not here: the wire (query parameters, XML, parameter validation: `api::sts`), the token
//! format (`iam::sessions`) and the verification of temporary credentials on later requests
//! (`api::auth` with `iam::sessions`).
//!
//! Decisions where AWS's behaviour cannot be reproduced locally:
//! * There are no MFA devices: a request with `SerialNumber` or `TokenCode` is refused with
//!   AWS's MFA failure (AccessDenied), never accepted unverified.
//! * `PackedPolicySize` is this service's own measure (AWS's packed binary format is not
//!   public): the bytes of the session policy in compact JSON plus the bytes of every session
//!   tag key and value, as a percentage (rounded up) of [`PACKED_POLICY_BUDGET_BYTES`]; above
//!   100 the request fails with `PackedPolicyTooLarge`.
//! * Session tags, transitive tag keys and the source identity are validated, authorized,
//!   counted, audited and sealed into the session token. Session tags are the session's
//!   `aws:PrincipalTag/<key>`, the source identity its `aws:SourceIdentity` and the issue time
//!   its `aws:TokenIssueTime` on later requests.
//!
//! Role chaining (a role session calls AssumeRole), as AWS does it ([`Inherited`]): the
//! caller's transitive tags pass to the new session, as tags and again transitive, and its
//! source identity persists. The trust policy sees them as if the request had passed them
//! (`aws:RequestTag/<key>`, `aws:TagKeys`, `sts:TransitiveTagKeys`, `sts:SourceIdentity`), so
//! inherited tags need `sts:TagSession` and an inherited source identity
//! `sts:SetSourceIdentity` in the trust policy. A tag whose key is an inherited transitive key
//! (case-insensitively) is refused ([`TRANSITIVE_TAG_CONFLICT`]), and so is another source
//! identity ([`SOURCE_IDENTITY_ALREADY_SET`]). Inherited tags count towards the 50 tags and the
//! packed size. Non-transitive tags do not pass.
//!
//! Sessions are sealed tokens, not server state (`iam::sessions`); the session-token key is
//! loaded (or made) once at start-up by [`Sts::load_session_key`].

use std::sync::Arc;

use chrono::{Duration, SubsecRound};
use kms_policy::{
    authorize, messages, AuthorizationRequest, CallerKind, IdentityPolicies, Policy, PolicyKind,
    RequestContext, Resource,
};

use super::{part, Call, Kms};
use crate::audit::Resource as AuditResource;
use crate::iam::sessions::{NewSession, Session, SessionError, KEY_BYTES};
use crate::service::{InternalCause, KmsError, KmsResult};

/// `DurationSeconds` when the request gives none.
pub const DEFAULT_DURATION_SECONDS: u32 = 3600;
/// The longest session a role session may get by assuming another role.
pub const ROLE_CHAINING_MAX_SECONDS: u32 = 3600;
/// What `PackedPolicySize` is a percentage of (see the module docs).
pub const PACKED_POLICY_BUDGET_BYTES: usize = 2048;

/// AWS's answer to root credentials calling AssumeRole.
pub const ROOT_MAY_NOT_ASSUME: &str = "Roles may not be assumed by root accounts.";
/// AWS's answer when an MFA code cannot be validated.
pub const MFA_FAILED: &str = "MultiFactorAuthentication failed, unable to validate MFA code. \
     Please verify your MFA serial number is valid and associated with this user.";
/// `DurationSeconds` above the role's maximum.
pub const EXCEEDS_MAX_SESSION_DURATION: &str =
    "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.";
/// `DurationSeconds` above one hour for a role session assuming a role.
pub const EXCEEDS_ROLE_CHAINING_LIMIT: &str =
    "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role \
     chaining.";

/// A chained request that sets another source identity than the calling session's (AWS's
/// wording, observed as a `ValidationError`).
pub const SOURCE_IDENTITY_ALREADY_SET: &str =
    "The source identity is already set for this assume role session";
/// A chained request that passes a tag with the key of an inherited transitive tag (AWS's
/// wording, `InvalidParameterValue`).
pub const TRANSITIVE_TAG_CONFLICT: &str = "One of the specified transitive tag keys can't be set \
     because it conflicts with a transitive tag key from the calling session.";
/// Session tags a session may have, inherited ones included.
pub const MAX_SESSION_TAGS: usize = 50;
/// More than [`MAX_SESSION_TAGS`] once the inherited transitive tags are added (this service's
/// wording: AWS's is not documented).
pub const TOO_MANY_SESSION_TAGS: &str = "The session would have more than 50 session tags, \
     counting the transitive tags inherited from the calling session.";

/// Every error the STS rules can raise; the API layer maps each to its wire code and status.
/// Messages are AWS's wording and never carry a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StsError {
    /// `AccessDenied` (403).
    #[error("{0}")]
    AccessDenied(String),
    /// `ValidationError` (400).
    #[error("{0}")]
    Validation(String),
    /// `InvalidParameterValue` (400).
    #[error("{0}")]
    InvalidParameterValue(String),
    /// `MalformedPolicyDocument` (400): the session policy does not parse or validate.
    #[error("{0}")]
    MalformedPolicyDocument(String),
    /// `PackedPolicyTooLarge` (400), with the percentage used.
    #[error("Packed policy consumes {0}% of allotted space, please use smaller policy.")]
    PackedPolicyTooLarge(u64),
    /// `InternalFailure` (500); the cause is for the log only.
    #[error(
        "The request processing has failed because of an unknown error, exception or failure."
    )]
    Internal(&'static str),
}

/// One session tag of an AssumeRole request (carried in the session's token).
pub type SessionTag = crate::iam::sessions::Tag;

/// A validated AssumeRole request (the API layer has checked lengths and patterns).
#[derive(Debug, Clone, Default)]
pub struct AssumeRoleRequest {
    pub role_arn: String,
    pub role_session_name: String,
    pub duration_seconds: Option<u32>,
    /// The inline session policy, as given.
    pub policy: Option<String>,
    pub tags: Vec<SessionTag>,
    pub transitive_tag_keys: Vec<String>,
    pub external_id: Option<String>,
    pub source_identity: Option<String>,
    /// `SerialNumber` or `TokenCode` was given.
    pub mfa: bool,
}

/// A new role session.
pub struct AssumedRole {
    /// The temporary credentials (secret and token stay in their secret types).
    pub session: Session,
    /// `AROA...:<session name>`.
    pub assumed_role_id: String,
    /// `arn:aws:sts::<account>:assumed-role/<role name>/<session name>`.
    pub arn: String,
    /// With a session policy or session tags: the percentage of the packed budget used.
    pub packed_policy_size: Option<u64>,
    pub source_identity: Option<String>,
}

part!(
    /// STS: role sessions (`AssumeRole`).
    Sts
);

impl Kms {
    /// The STS part of the service.
    pub fn sts(&self) -> Sts {
        Sts::new(self.core().clone())
    }
}

/// What a calling role session passes on to the session it makes (role chaining): its
/// transitive tags (as tags that stay transitive) and its source identity. Empty for users.
#[derive(Debug, Default)]
pub struct Inherited {
    /// The caller's tags whose keys it marked transitive.
    pub tags: Vec<SessionTag>,
    /// The caller's transitive tag keys.
    pub transitive_tag_keys: Vec<String>,
    pub source_identity: Option<String>,
}

impl Inherited {
    /// What `caller` passes on (nothing unless it is a role session with transitive tags or a
    /// source identity).
    pub fn of(caller: &crate::model::Principal) -> Inherited {
        let keys = &caller.transitive_tag_keys;
        let tags = caller
            .principal_tags
            .iter()
            .filter(|(key, _)| keys.iter().any(|k| same_tag_key(k, key)))
            .map(|(key, value)| SessionTag {
                key: key.clone(),
                value: value.clone(),
            })
            .collect();
        Inherited {
            tags,
            transitive_tag_keys: keys.to_vec(),
            source_identity: caller.source_identity.clone(),
        }
    }

    /// Whether `key` is (case-insensitively) one of the inherited transitive tag keys.
    pub fn is_transitive_key(&self, key: &str) -> bool {
        self.transitive_tag_keys
            .iter()
            .any(|k| same_tag_key(k, key))
    }
}

/// Tag keys are case-insensitive (in any script, as the API layer compares them).
fn same_tag_key(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// `PackedPolicySize`: the percentage of [`PACKED_POLICY_BUDGET_BYTES`] taken by the session
/// policy in compact JSON and the session tags (`None` when neither is given).
pub fn packed_policy_size(policy: Option<&str>, tags: &[SessionTag]) -> Option<u64> {
    if policy.is_none() && tags.is_empty() {
        return None;
    }
    let policy_bytes = policy.map_or(0, |text| {
        serde_json::from_str::<serde_json::Value>(text)
            .map(|v| v.to_string().len())
            .unwrap_or(text.len())
    });
    let tag_bytes: usize = tags.iter().map(|t| t.key.len() + t.value.len()).sum();
    let used = (policy_bytes + tag_bytes) as u64;
    let budget = PACKED_POLICY_BUDGET_BYTES as u64;
    Some((used * 100).div_ceil(budget))
}

/// The `system_secrets` row of the session-token key (deleting it and restarting every node
/// ends every session: see `docs/authorization.md`).
pub const SESSION_KEY_SECRET: &str = "session-token-key-v1";
/// The purpose (AAD) the session-token key is sealed under.
const SESSION_KEY_PURPOSE: &str = "sts-session-token-key";

impl Sts {
    /// The session-token key: the stored one, or 32 new bytes from the root's randomness,
    /// sealed under the root and stored once (when nodes start together, every node uses the
    /// one stored first).
    pub async fn session_token_key(&self) -> KmsResult<zeroize::Zeroizing<[u8; KEY_BYTES]>> {
        let sealed = match self.store.get_system_secret(SESSION_KEY_SECRET).await? {
            Some(sealed) => sealed,
            None => {
                let raw = self.root.random(KEY_BYTES).await?;
                let fresh = self.seal_bytes(SESSION_KEY_PURPOSE, &raw).await?;
                self.store
                    .put_system_secret_if_absent(SESSION_KEY_SECRET, &fresh)
                    .await?
            }
        };
        let corrupt = || {
            KmsError::internal_because(InternalCause::Invariant(
                "the stored session-token key is corrupt",
            ))
        };
        let opened = self.open_bytes(SESSION_KEY_PURPOSE, &sealed).await;
        // Needed once per start: the system key does not stay in the root's cache for it.
        self.forget_system_key();
        let opened = opened?.ok_or_else(corrupt)?;
        let mut key = zeroize::Zeroizing::new([0u8; KEY_BYTES]);
        if opened.len() != KEY_BYTES {
            return Err(corrupt());
        }
        key.copy_from_slice(&opened);
        Ok(key)
    }

    /// Loads the session-token key into `iam::sessions` unless it is there (at start-up, and
    /// by AssumeRole should that have failed).
    pub async fn load_session_key(&self) -> KmsResult<()> {
        if !self.iam.sessions().has_key() {
            let key = self.session_token_key().await?;
            self.iam.sessions().install_key(&key);
        }
        Ok(())
    }

    /// `AssumeRole`: authorizes the caller against the role's trust policy and makes a session.
    pub async fn assume_role(
        &self,
        call: &mut Call,
        request: AssumeRoleRequest,
    ) -> Result<AssumedRole, StsError> {
        let caller = call.principal.caller.clone().ok_or_else(|| {
            StsError::AccessDenied(messages::assume_role_denied("anonymous", &request.role_arn))
        })?;
        if caller.is_root() {
            return Err(StsError::AccessDenied(ROOT_MAY_NOT_ASSUME.into()));
        }
        if request.mfa {
            return Err(StsError::AccessDenied(MFA_FAILED.into()));
        }
        let session_policy = match &request.policy {
            Some(text) => Some(Arc::new(
                Policy::parse(text, PolicyKind::Session, &kms_policy::AnyPrincipalExists)
                    .map_err(|e| StsError::MalformedPolicyDocument(e.to_string()))?,
            )),
            None => None,
        };
        // Role chaining: what the calling session passes on (empty for users).
        let inherited = Inherited::of(&call.principal);
        if let (Some(set), Some(asked)) = (&inherited.source_identity, &request.source_identity) {
            if set != asked {
                return Err(StsError::Validation(SOURCE_IDENTITY_ALREADY_SET.into()));
            }
        }
        if request
            .tags
            .iter()
            .any(|t| inherited.is_transitive_key(&t.key))
        {
            return Err(StsError::InvalidParameterValue(
                TRANSITIVE_TAG_CONFLICT.into(),
            ));
        }
        // The new session's tags: the inherited transitive ones, then the request's.
        let tags: Vec<SessionTag> = inherited
            .tags
            .iter()
            .chain(request.tags.iter())
            .cloned()
            .collect();
        if tags.len() > MAX_SESSION_TAGS {
            return Err(StsError::InvalidParameterValue(
                TOO_MANY_SESSION_TAGS.into(),
            ));
        }
        let transitive_tag_keys: Vec<String> = inherited
            .transitive_tag_keys
            .iter()
            .chain(request.transitive_tag_keys.iter())
            .cloned()
            .collect();
        let source_identity = request
            .source_identity
            .clone()
            .or(inherited.source_identity);
        let packed = packed_policy_size(request.policy.as_deref(), &tags);
        if let Some(size) = packed.filter(|s| *s > 100) {
            return Err(StsError::PackedPolicyTooLarge(size));
        }

        let denied = || {
            StsError::AccessDenied(messages::assume_role_denied(
                caller.arn(),
                &request.role_arn,
            ))
        };
        let directory = self.iam.directory();
        let role = directory.role(&request.role_arn).ok_or_else(denied)?;
        let resource = Resource::arn(&role.arn).map_err(|_| denied())?;
        let now = self.clock.now();
        let mut context = RequestContext::new(caller.clone(), "sts:AssumeRole", resource);
        context
            .set("aws:SecureTransport", call.secure_transport)
            .set("aws:CurrentTime", now)
            .set("aws:EpochTime", now.timestamp())
            .set("sts:RoleSessionName", request.role_session_name.as_str());
        if let Ok(ip) = call.source_ip.parse::<std::net::IpAddr>() {
            context.set("aws:SourceIp", ip);
        }
        super::authz::set_session_keys(&mut context, &call.principal);
        if let Some(id) = &request.external_id {
            context.set("sts:ExternalId", id.as_str());
        }
        // Inherited tags and source identity are evaluated as if the request passed them.
        if let Some(id) = &source_identity {
            context.set("sts:SourceIdentity", id.as_str());
        }
        if !tags.is_empty() {
            for tag in &tags {
                context.set(&format!("aws:RequestTag/{}", tag.key), tag.value.as_str());
            }
            context.set_multi("aws:TagKeys", tags.iter().map(|t| t.key.as_str()));
            if !transitive_tag_keys.is_empty() {
                context.set_multi(
                    "sts:TransitiveTagKeys",
                    transitive_tag_keys.iter().map(String::as_str),
                );
            }
        }

        if !trust_allows(call, &context, &role.trust_policy) {
            return Err(denied());
        }
        // Session tags and a source identity are permissions of their own in the trust policy.
        let extra = [
            (!tags.is_empty(), "sts:TagSession"),
            (source_identity.is_some(), "sts:SetSourceIdentity"),
        ];
        for (_, action) in extra.iter().filter(|(needed, _)| *needed) {
            if !trust_allows(call, &context.with_action(action), &role.trust_policy) {
                return Err(StsError::AccessDenied(format!(
                    "User: {} is not authorized to perform: {action} on resource: {}",
                    caller.arn(),
                    request.role_arn
                )));
            }
        }

        let chained = matches!(caller.kind(), CallerKind::AssumedRole { .. });
        let duration = request.duration_seconds.unwrap_or(DEFAULT_DURATION_SECONDS);
        if chained
            && request
                .duration_seconds
                .is_some_and(|d| d > ROLE_CHAINING_MAX_SECONDS)
        {
            return Err(StsError::Validation(EXCEEDS_ROLE_CHAINING_LIMIT.into()));
        }
        if u64::from(duration) > role.max_session_seconds {
            return Err(StsError::Validation(EXCEEDS_MAX_SESSION_DURATION.into()));
        }

        let session_caller =
            kms_policy::Caller::assumed_role(&role.arn, &request.role_session_name)
                .map_err(|_| StsError::Internal("a validated role session name was refused"))?;
        // Whole seconds: the Expiration on the wire is the expiry enforced.
        let expiration = (now + Duration::seconds(i64::from(duration))).trunc_subsecs(0);
        self.load_session_key()
            .await
            .map_err(|_| StsError::Internal("the session-token key could not be loaded"))?;
        let session = self
            .iam
            .sessions()
            .create(&NewSession {
                role_arn: &role.arn,
                session_name: &request.role_session_name,
                expiration,
                session_policy: request.policy.as_deref().zip(session_policy),
                tags: &tags,
                transitive_tag_keys: &transitive_tag_keys,
                source_identity: source_identity.as_deref(),
                issued: now,
            })
            .map_err(|e| match e {
                SessionError::Random => StsError::Internal("the random number generator failed"),
                SessionError::NoKey => StsError::Internal("the session-token key is not loaded"),
                SessionError::Encode => StsError::Internal("the session could not be sealed"),
            })?;
        call.resources.push(AuditResource {
            account_id: role.account.clone(),
            kind: "AWS::IAM::Role".into(),
            arn: role.arn.clone(),
        });
        Ok(AssumedRole {
            session,
            assumed_role_id: format!("{}:{}", role.unique_id, request.role_session_name),
            arn: session_caller.arn().to_string(),
            packed_policy_size: packed,
            source_identity,
        })
    }
}

/// Whether the trust policy, the caller's identity (and session) policies and the caller's
/// guardrails allow the request in `context`.
fn trust_allows(call: &Call, context: &RequestContext, trust_policy: &Policy) -> bool {
    let p = &call.principal;
    let principal: Vec<&Policy> = p.policies.iter().map(|p| &**p).collect();
    let session: Option<Vec<&Policy>> = p
        .session_policies
        .as_ref()
        .map(|s| s.iter().map(|p| &**p).collect());
    let guardrails: Vec<&Policy> = p.guardrails.iter().map(|p| &**p).collect();
    let request = AuthorizationRequest::new(context)
        .resource_policy(trust_policy)
        .identity_policies(IdentityPolicies {
            principal_policies: &principal,
            session_policies: session.as_deref(),
        })
        .guardrail_policies(&guardrails)
        // A role may trust other accounts: both sides must then allow (reference §8.3).
        .cross_account_capable(true);
    authorize(&request).is_allowed()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn packed_policy_size_counts_compact_policy_and_tags() {
        assert_eq!(packed_policy_size(None, &[]), None);
        // 2048 bytes of compact policy is 100%; whitespace does not count.
        let policy = r#"{ "Version" : "2012-10-17",
            "Statement" : [] }"#;
        let compact = r#"{"Statement":[],"Version":"2012-10-17"}"#.len() as u64;
        assert_eq!(
            packed_policy_size(Some(policy), &[]),
            Some((compact * 100).div_ceil(2048))
        );
        let tag = SessionTag {
            key: "k".repeat(128),
            value: "v".repeat(256),
        };
        // 384 bytes per tag: five tags are 1920 bytes (94%), six 2304 (113%).
        assert_eq!(packed_policy_size(None, &vec![tag.clone(); 5]), Some(94));
        assert_eq!(packed_policy_size(None, &vec![tag; 6]), Some(113));
    }

    #[test]
    fn a_calling_session_passes_on_its_transitive_tags_and_source_identity() {
        let mut caller = crate::model::Principal::anonymous("111122223333", "ASIA");
        assert!(Inherited::of(&caller).tags.is_empty());
        caller.principal_tags = vec![
            ("Project".to_string(), "p1".to_string()),
            ("team".to_string(), "kms".to_string()),
            ("Ärger".to_string(), "x".to_string()),
        ]
        .into();
        caller.transitive_tag_keys = vec!["project".to_string(), "ÄRGER".to_string()].into();
        caller.source_identity = Some("dave".into());
        let inherited = Inherited::of(&caller);
        // Keys compare case-insensitively (in any script); values and the keys' case are kept.
        assert_eq!(
            inherited.tags,
            vec![
                SessionTag {
                    key: "Project".into(),
                    value: "p1".into()
                },
                SessionTag {
                    key: "Ärger".into(),
                    value: "x".into()
                }
            ]
        );
        assert_eq!(inherited.transitive_tag_keys, vec!["project", "ÄRGER"]);
        assert_eq!(inherited.source_identity.as_deref(), Some("dave"));
        assert!(inherited.is_transitive_key("PROJECT"));
        assert!(inherited.is_transitive_key("ärger"));
        assert!(!inherited.is_transitive_key("team"));
    }

    #[test]
    fn packed_policy_too_large_has_aws_wording() {
        assert_eq!(
            StsError::PackedPolicyTooLarge(113).to_string(),
            "Packed policy consumes 113% of allotted space, please use smaller policy."
        );
    }
}
