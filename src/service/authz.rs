//! Authorization: every operation asks here before it acts. This module builds the request
//! context (caller, action, resource, condition keys), gathers the policies that apply (the
//! key policy, compiled once per change; the caller's identity, session and guardrail
//! policies; the key's grants) and asks `kms_policy` for the decision. A denial becomes
//! `AccessDeniedException` with AWS's wording. RetireGrant is the exception: the grant decides
//! (`service::grants`), and only the identity side (`identity_allows_on_key`) is asked here.
//!
//! Order within an operation: resolve the key (NotFound first), authorize, then check the key
//! state (reference §3.2), so a denied caller learns nothing about the key's state.

use std::collections::HashMap;
use std::sync::Arc;

use kms_policy::{
    authorize, AuthorizationRequest, Caller, ContextValue, Decision, DenyReason, GrantCheck,
    GrantConstraints as PolicyConstraints, GrantOperation, GrantView, IdentityPolicies, Policy,
    PolicyKind, RequestContext, Resource,
};
use parking_lot::Mutex;

use super::ciphertext::EncryptionContext;
use super::{Call, Core, InternalCause, KmsError, KmsResult};
use crate::model::{GrantRecord, KeyId, KeyRecord, Principal};

/// Actions whose permission works on another account's key (reference §3.3). Every other key
/// action on another account's key is denied whatever the key policy says.
pub fn cross_account_capable(action: &str) -> bool {
    matches!(
        action,
        "Encrypt"
            | "Decrypt"
            | "ReEncryptFrom"
            | "ReEncryptTo"
            | "GenerateDataKey"
            | "GenerateDataKeyWithoutPlaintext"
            | "GenerateDataKeyPair"
            | "GenerateDataKeyPairWithoutPlaintext"
            | "Sign"
            | "Verify"
            | "GenerateMac"
            | "VerifyMac"
            | "DeriveSharedSecret"
            | "DescribeKey"
            | "GetPublicKey"
            | "CreateGrant"
            | "ListGrants"
            | "RevokeGrant"
            | "RetireGrant"
            | "GetKeyRotationStatus"
    )
}

/// Compiled key policies, by key and row version (a policy change bumps the row version).
#[derive(Default)]
pub struct KeyPolicyCache {
    compiled: Mutex<HashMap<KeyId, (i64, Arc<Policy>)>>,
}

/// Bound on cached compiled policies; the cache is cleared when it is reached.
const MAX_CACHED_POLICIES: usize = 100_000;

impl KeyPolicyCache {
    fn get(&self, key: &KeyRecord) -> Option<Arc<Policy>> {
        match self.compiled.lock().get(&key.key_id) {
            Some((version, p)) if *version == key.row_version => Some(p.clone()),
            _ => None,
        }
    }

    fn put(&self, key: &KeyRecord, policy: Arc<Policy>) {
        let mut map = self.compiled.lock();
        if map.len() >= MAX_CACHED_POLICIES {
            map.clear();
        }
        map.insert(key.key_id.clone(), (key.row_version, policy));
    }
}

/// The identity, session and guardrail policies of a call, as the decision wants them.
struct CallerPolicies<'a> {
    principal: Vec<&'a Policy>,
    session: Option<Vec<&'a Policy>>,
    guardrails: Vec<&'a Policy>,
}

impl<'a> CallerPolicies<'a> {
    fn of(call: &'a Call) -> Self {
        let p = &call.principal;
        CallerPolicies {
            principal: p.policies.iter().map(|p| &**p).collect(),
            session: p
                .session_policies
                .as_ref()
                .map(|s| s.iter().map(|p| &**p).collect()),
            guardrails: p.guardrails.iter().map(|p| &**p).collect(),
        }
    }

    fn identity(&self) -> IdentityPolicies<'_> {
        IdentityPolicies {
            principal_policies: &self.principal,
            session_policies: self.session.as_deref(),
        }
    }

    /// Whether an identity, session or guardrail policy reads a condition key starting with
    /// `prefix` (expensive keys are computed only then).
    fn reads(&self, prefix: &str) -> bool {
        self.principal
            .iter()
            .chain(self.session.iter().flatten())
            .chain(self.guardrails.iter())
            .any(|p| p.references_condition_key(prefix))
    }

    /// Whether an identity, session or guardrail policy reads the request context at all.
    fn read_context(&self) -> bool {
        self.principal
            .iter()
            .chain(self.session.iter().flatten())
            .chain(self.guardrails.iter())
            .any(|p| p.reads_context())
    }
}

fn denied(message: String) -> KmsError {
    KmsError::AccessDenied(message)
}

/// The condition keys a role session carries: `aws:PrincipalTag/<key>` of its tags,
/// `aws:SourceIdentity` and `aws:TokenIssueTime` (long-term credentials have none of them, so
/// `DateLessThan` on `aws:TokenIssueTime` is false for them and a revocation Deny spares them).
pub(crate) fn set_session_keys(ctx: &mut RequestContext, principal: &Principal) {
    for (key, value) in principal.principal_tags.iter() {
        ctx.set(&format!("aws:PrincipalTag/{key}"), value.as_str());
    }
    if let Some(id) = &principal.source_identity {
        ctx.set("aws:SourceIdentity", id.as_str());
    }
    if let Some(issued) = principal.token_issue_time {
        ctx.set("aws:TokenIssueTime", issued);
    }
}

impl Core {
    fn caller<'a>(&self, call: &'a Call, action: &str) -> KmsResult<&'a Caller> {
        call.principal.caller.as_ref().ok_or_else(|| {
            denied(format!(
                "User: anonymous is not authorized to perform: kms:{action}"
            ))
        })
    }

    /// The condition keys every request has.
    fn base_context(
        &self,
        call: &Call,
        caller: &Caller,
        action: &str,
        resource: Resource,
    ) -> RequestContext {
        let mut ctx = RequestContext::new(caller.clone(), &format!("kms:{action}"), resource);
        let now = self.clock.now();
        ctx.set("kms:CallerAccount", call.principal.account.as_str())
            .set("aws:SecureTransport", call.secure_transport)
            .set("aws:CurrentTime", now)
            .set("aws:EpochTime", now.timestamp())
            .set("aws:RequestedRegion", self.region_of(call));
        if let Ok(ip) = call.source_ip.parse::<std::net::IpAddr>() {
            ctx.set("aws:SourceIp", ip);
        }
        set_session_keys(&mut ctx, &call.principal);
        ctx
    }

    /// The compiled policy of a key (parsed once per policy change).
    fn key_policy(&self, key: &KeyRecord) -> KmsResult<Arc<Policy>> {
        if let Some(p) = self.key_policies.get(key) {
            return Ok(p);
        }
        // Stored policies were validated when written; principals are not checked again (one
        // deleted since must not make the key unusable).
        let policy = Policy::parse(
            &key.policy,
            PolicyKind::Key,
            &kms_policy::AnyPrincipalExists,
        )
        .map_err(|_| {
            KmsError::internal_because(InternalCause::Invariant("a stored key policy is invalid"))
        })?;
        let policy = Arc::new(policy);
        self.key_policies.put(key, policy.clone());
        Ok(policy)
    }

    /// Authorizes `action` (`Encrypt`, `ReEncryptFrom`, ...) on `key`. `context` is the
    /// request's encryption context (grant constraints and `kms:EncryptionContext:` keys);
    /// `extra` sets the operation's own condition keys.
    pub(crate) async fn authorize_key(
        &self,
        call: &Call,
        action: &str,
        key: &KeyRecord,
        context: Option<&EncryptionContext>,
        extra: impl FnOnce(&mut RequestContext),
    ) -> KmsResult<()> {
        self.authorize_key_under(call, action, key, context, GrantRule::Covers, extra)
            .await
    }

    /// [`Self::authorize_key`] with a rule for which grants may allow the request (CreateGrant
    /// through a grant).
    pub(crate) async fn authorize_key_under(
        &self,
        call: &Call,
        action: &str,
        key: &KeyRecord,
        context: Option<&EncryptionContext>,
        rule: GrantRule<'_>,
        extra: impl FnOnce(&mut RequestContext),
    ) -> KmsResult<()> {
        let caller = self.caller(call, action)?;
        let policies = CallerPolicies::of(call);
        let key_policy = self.key_policy(key)?;
        let full = key_policy.reads_context() || policies.read_context();
        let ctx = self
            .key_context(call, caller, &policies, full, action, key, context, extra)
            .await?;
        let request = AuthorizationRequest::new(&ctx)
            .resource_policy(&key_policy)
            .identity_policies(policies.identity())
            .guardrail_policies(&policies.guardrails)
            .cross_account_capable(cross_account_capable(action));
        let denial = match authorize(&request) {
            Decision::Allow(_) => return Ok(()),
            Decision::Deny(d) => d,
        };
        // Grants can allow what no policy does, never what a policy denies.
        if denial.reason.is_implicit() {
            if let Some(op) = GrantOperation::parse(action) {
                let check = self
                    .grant_check(caller, &key.key_id, op, context, rule)
                    .await?;
                if check != GrantCheck::NoGrant && authorize(&request.grant(check)).is_allowed() {
                    return Ok(());
                }
            }
        }
        Err(denied(denial.message(&ctx)))
    }

    /// The request context of `action` on `key`: the common keys, the key's properties, the
    /// request alias, the encryption context, the operation's own keys (`extra`), and the
    /// identity-policy-only keys that cost a store read when a policy reads them. With `full`
    /// false (no applicable policy reads the context) only caller, action and resource: the
    /// decision is the same and the ~20 keys are not built on every request (measured: about
    /// 4 µs of a 60 µs software-root Encrypt, docs/benchmarks.md).
    #[allow(clippy::too_many_arguments)]
    async fn key_context(
        &self,
        call: &Call,
        caller: &Caller,
        policies: &CallerPolicies<'_>,
        full: bool,
        action: &str,
        key: &KeyRecord,
        context: Option<&EncryptionContext>,
        extra: impl FnOnce(&mut RequestContext),
    ) -> KmsResult<RequestContext> {
        let resource = Resource::arn(&key.arn).map_err(|_| {
            KmsError::internal_because(InternalCause::Invariant("a stored key ARN is invalid"))
        })?;
        if !full {
            return Ok(RequestContext::bare(
                caller.clone(),
                &format!("kms:{action}"),
                resource,
            ));
        }
        let mut ctx = self.base_context(call, caller, action, resource);
        let (spec, usage) = (key.key_spec.as_str(), key.key_usage.as_str());
        ctx.set("kms:KeySpec", spec)
            .set("kms:CustomerMasterKeySpec", spec)
            .set("kms:KeyUsage", usage)
            .set("kms:CustomerMasterKeyUsage", usage)
            .set("kms:KeyOrigin", key.origin.as_str())
            .set("kms:MultiRegion", key.mrk_primary_region.is_some());
        if let Some(primary) = &key.mrk_primary_region {
            let kind = if *primary == key.region {
                "PRIMARY"
            } else {
                "REPLICA"
            };
            ctx.set("kms:MultiRegionKeyType", kind);
        }
        if let Some(alias) = &call.request_alias {
            ctx.set("kms:RequestAlias", alias.as_str());
        }
        if let Some(ec) = context {
            ctx.set_encryption_context(ec.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        extra(&mut ctx);
        // Identity-policy-only keys that cost a store read: only when a policy reads them.
        if policies.reads("aws:ResourceTag/") || policies.reads("kms:ResourceTag/") {
            for tag in self.store.list_tags(&key.key_id).await? {
                ctx.set(&format!("aws:ResourceTag/{}", tag.key), tag.value.as_str());
            }
        }
        if policies.reads("kms:ResourceAliases") {
            let aliases = self
                .store
                .list_aliases(&key.account, &key.region, Some(&key.key_id), None, 51)
                .await?;
            // Above 50 aliases the key is not usable through this condition key (reference §5).
            if aliases.len() <= 50 {
                ctx.set_multi(
                    "kms:ResourceAliases",
                    aliases.iter().map(|a| a.name.as_str()),
                );
            }
        }
        Ok(ctx)
    }

    /// The caller's identity-side say on `action` on `key`, for RetireGrant, where the grant
    /// decides and the key policy has no effect (reference §6.5): an explicit deny in an
    /// identity, session or guardrail policy is an error; otherwise whether an identity policy
    /// allows (always for the root user, which has none).
    pub(crate) async fn identity_allows_on_key(
        &self,
        call: &Call,
        action: &str,
        key: &KeyRecord,
    ) -> KmsResult<bool> {
        let caller = self.caller(call, action)?;
        let policies = CallerPolicies::of(call);
        let ctx = self
            .key_context(call, caller, &policies, true, action, key, None, |_| {})
            .await?;
        let cross_account = key.account != caller.account();
        let deny = |reason| {
            denied(
                kms_policy::Denial {
                    reason,
                    cross_account,
                }
                .message(&ctx),
            )
        };
        let identity = policies.identity().evaluate(&ctx);
        if let Some(reason) = identity
            .explicit_deny_reason()
            .filter(|_| !caller.is_root())
        {
            return Err(deny(reason));
        }
        if policies
            .guardrails
            .iter()
            .any(|g| g.evaluate(&ctx).explicit_deny)
        {
            return Err(deny(DenyReason::ExplicitDenyInGuardrailPolicy));
        }
        Ok(caller.is_root() || identity.allows)
    }

    /// The AccessDenied of `action` on `key` that nothing allowed (the cross-account wording
    /// for another account's key).
    pub(crate) fn not_allowed_on_key(
        &self,
        call: &Call,
        action: &str,
        key: &KeyRecord,
    ) -> KmsError {
        let action = format!("kms:{action}");
        let caller = &call.principal.arn;
        denied(if key.account != call.principal.account {
            kms_policy::messages::cross_account(caller, &action)
        } else {
            kms_policy::messages::no_resource_policy_allows(caller, &action, &key.arn)
        })
    }

    /// Resolves a `KeyId` and authorizes the call's operation on the key, with no condition
    /// keys beyond the common ones.
    pub(crate) async fn resolve_authorized(
        &self,
        call: &mut Call,
        key_id: &str,
        allow_alias: bool,
    ) -> KmsResult<KeyRecord> {
        let key = self.resolve(call, key_id, allow_alias).await?;
        self.authorize_key(call, call.operation, &key, None, |_| {})
            .await?;
        Ok(key)
    }

    /// Parses a key policy for writing (CreateKey, PutKeyPolicy): its grammar, and principals
    /// that exist (AWS refuses unknown ones).
    pub(crate) fn parse_key_policy(&self, text: &str) -> KmsResult<Policy> {
        let directory = self.iam.directory();
        Policy::parse(text, PolicyKind::Key, &*directory)
            .map_err(|e| KmsError::MalformedPolicyDocument(e.to_string()))
    }

    /// The key policy of a new key: the default policy when none is given; otherwise the
    /// given one, validated, and (unless `bypass` is true) checked not to lock the caller out.
    pub(crate) fn new_key_policy(
        &self,
        call: &Call,
        key_arn: &str,
        policy: Option<String>,
        bypass: Option<bool>,
    ) -> KmsResult<String> {
        let Some(text) = policy else {
            return Ok(kms_policy::default_key_policy_in_partition(
                &self.partition,
                &call.principal.account,
            ));
        };
        let parsed = self.parse_key_policy(&text)?;
        if bypass != Some(true) {
            self.lockout_check(call, key_arn, &parsed, bypass)?;
        }
        Ok(text)
    }

    /// The best grant check among the key's grants for `op` by `caller`.
    async fn grant_check(
        &self,
        caller: &Caller,
        key_id: &KeyId,
        op: GrantOperation,
        context: Option<&EncryptionContext>,
        rule: GrantRule<'_>,
    ) -> KmsResult<GrantCheck> {
        let grants = self.store.list_grants(key_id).await?;
        let mut best = GrantCheck::NoGrant;
        for g in grants.iter() {
            match grant_view_check(g, caller, op, context, rule) {
                GrantCheck::Allows => return Ok(GrantCheck::Allows),
                GrantCheck::AllowsIfIdentityAllows => best = GrantCheck::AllowsIfIdentityAllows,
                GrantCheck::NoGrant => {}
            }
        }
        Ok(best)
    }

    /// Authorizes an action that is not on a key: `resource` is `None` for `"*"` (CreateKey,
    /// ListKeys, ...) or an alias ARN (the identity half of alias writes).
    pub(crate) fn authorize_identity(
        &self,
        call: &Call,
        action: &str,
        resource: Option<&str>,
        extra: impl FnOnce(&mut RequestContext),
    ) -> KmsResult<()> {
        let caller = self.caller(call, action)?;
        let resource = match resource {
            None => Resource::Any,
            Some(arn) => Resource::arn(arn).map_err(|_| {
                KmsError::internal_because(InternalCause::Invariant("an alias ARN is invalid"))
            })?,
        };
        let mut ctx = self.base_context(call, caller, action, resource);
        extra(&mut ctx);
        let policies = CallerPolicies::of(call);
        // Identity policies only (there is no resource policy for "*" or an alias): an explicit
        // deny anywhere wins; the root user needs no allow.
        let identity = if caller.is_root() {
            None
        } else {
            Some(policies.identity().evaluate(&ctx))
        };
        let guardrail_denies = || {
            policies
                .guardrails
                .iter()
                .any(|g| g.evaluate(&ctx).explicit_deny)
                .then_some(DenyReason::ExplicitDenyInGuardrailPolicy)
        };
        let reason = identity
            .and_then(|i| i.explicit_deny_reason())
            .or_else(guardrail_denies)
            .or_else(|| identity.and_then(|i| i.implicit_deny_reason()));
        match reason {
            Some(reason) => Err(denied(
                kms_policy::Denial {
                    reason,
                    cross_account: false,
                }
                .message(&ctx),
            )),
            None => Ok(()),
        }
    }

    /// The lockout safety check for a new key policy (reference §4): would the caller still be
    /// allowed `kms:PutKeyPolicy` on the key under it? Run unless the request bypasses it.
    pub(crate) fn lockout_check(
        &self,
        call: &Call,
        key_arn: &str,
        new_policy: &Policy,
        bypass: Option<bool>,
    ) -> KmsResult<()> {
        let caller = self.caller(call, "PutKeyPolicy")?;
        let mut ctx = self.base_context(call, caller, "PutKeyPolicy", Resource::Any);
        if let Some(b) = bypass {
            ctx.set("kms:BypassPolicyLockoutSafetyCheck", b);
        }
        let key = kms_policy::ResourceArn::parse(key_arn).map_err(|_| {
            KmsError::internal_because(InternalCause::Invariant("a key ARN is invalid"))
        })?;
        let policies = CallerPolicies::of(call);
        kms_policy::lockout_check(
            &ctx,
            &key,
            new_policy,
            policies.identity(),
            &policies.guardrails,
        )
        .map_err(|e| KmsError::MalformedPolicyDocument(e.to_string()))
    }
}

/// Which of a key's grants may allow a request, beyond covering its grantee, operation and
/// encryption context.
#[derive(Debug, Clone, Copy)]
pub(crate) enum GrantRule<'a> {
    /// Any grant that covers the request.
    Covers,
    /// CreateGrant through a grant: the parent grant must also allow the child grant (a subset
    /// of its operations, constraints at least as strict; `GrantView::allows_child_grant`).
    ChildGrant {
        operations: &'a [GrantOperation],
        constraints: PolicyConstraints<'a>,
    },
}

/// The grant operations a stored grant lists (names it does not know are dropped).
pub(crate) fn grant_operations(g: &GrantRecord) -> Vec<GrantOperation> {
    g.operations
        .iter()
        .filter_map(|o| GrantOperation::parse(o))
        .collect()
}

/// A stored grant as the policy crate's grant rules see it.
pub(crate) fn grant_view<'a>(
    g: &'a GrantRecord,
    operations: &'a [GrantOperation],
) -> GrantView<'a> {
    GrantView {
        grantee_principal: &g.grantee_principal,
        retiring_principal: g.retiring_principal.as_deref(),
        operations,
        constraints: PolicyConstraints {
            encryption_context_equals: g.constraints.encryption_context_equals.as_ref(),
            encryption_context_subset: g.constraints.encryption_context_subset.as_ref(),
        },
    }
}

/// A stored grant through the policy crate's grant rules.
fn grant_view_check(
    g: &GrantRecord,
    caller: &Caller,
    op: GrantOperation,
    context: Option<&EncryptionContext>,
    rule: GrantRule<'_>,
) -> GrantCheck {
    let ops = grant_operations(g);
    let view = grant_view(g, &ops);
    let check = view.check(caller, op, context);
    match rule {
        GrantRule::Covers => check,
        GrantRule::ChildGrant {
            operations,
            constraints,
        } if view.allows_child_grant(operations, &constraints) => check,
        GrantRule::ChildGrant { .. } => GrantCheck::NoGrant,
    }
}

/// Condition values of a string list (`aws:TagKeys`, `kms:GrantOperations`).
pub(crate) fn strings<'a>(items: impl IntoIterator<Item = &'a str>) -> Vec<ContextValue> {
    items.into_iter().map(ContextValue::from).collect()
}
