//! The decision procedure of reference §3.2 as a pure function ([`authorize`]), the lockout
//! safety check of §4 ([`lockout_check`]) and the AccessDenied texts of §7.1 ([`messages`]).
//!
//! The procedure: an explicit deny in the resource policy, the identity policies, the session
//! policies or a guardrail policy wins (over grants too). A request on `"*"` is allowed by an
//! identity policy (the root user needs none). A request on a resource of the caller's account
//! is allowed by a resource policy statement that names the caller (user, session, role of the
//! session, `"*"`, root), or by one that names the account together with an identity policy, or
//! by a grant. A request on another account's resource needs an operation that works across
//! accounts and both a resource policy statement naming the caller or its account and an
//! identity policy, or a grant.
//!
//! A denial names one policy type, as AWS's messages do: the first explicit deny in the order
//! above; otherwise the type that failed to allow. A role session's session policies are named
//! only when they are what is missing (the role's side would have allowed); the rest is
//! "no identity-based policy" on `"*"` and "no resource-based policy" on a resource.

use crate::arn::ResourceArn;
use crate::context::{RequestContext, Resource};
use crate::error::PolicyError;
use crate::policy::{Policy, PolicyEvaluation};
use crate::principal::PrincipalMatch;

/// The identity-based policies of the caller.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdentityPolicies<'a> {
    /// A user's own policies and those of its groups; a role session's role policies.
    pub principal_policies: &'a [&'a Policy],
    /// A role session's session policies, if it was given any: its permissions are the
    /// intersection of the role's policies and these.
    pub session_policies: Option<&'a [&'a Policy]>,
}

/// What the identity-based policies say about one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdentityEvaluation {
    /// A `Deny` statement matched in a principal policy (the user's, or the session's role's).
    pub explicit_deny_in_principal_policy: bool,
    /// A `Deny` statement matched in a session policy.
    pub explicit_deny_in_session_policy: bool,
    /// The identity policies allow the request (for sessions with session policies: a role
    /// policy and a session policy both allow).
    pub allows: bool,
    /// A principal policy (the user's, or the session's role's) allows the request.
    pub principal_policies_allow: bool,
    /// No session policies, or one of them allows: a resource policy that names the session's
    /// role (or `"*"`) may allow.
    pub session_policies_allow: bool,
}

impl IdentityEvaluation {
    /// The root user: no identity policies, and not limited by any.
    const ROOT: IdentityEvaluation = IdentityEvaluation {
        explicit_deny_in_principal_policy: false,
        explicit_deny_in_session_policy: false,
        allows: true,
        principal_policies_allow: true,
        session_policies_allow: true,
    };

    /// The explicit deny among these policies, if any: a principal policy's is named before a
    /// session policy's.
    pub fn explicit_deny_reason(&self) -> Option<DenyReason> {
        if self.explicit_deny_in_principal_policy {
            Some(DenyReason::ExplicitDenyInIdentityPolicy)
        } else if self.explicit_deny_in_session_policy {
            Some(DenyReason::ExplicitDenyInSessionPolicy)
        } else {
            None
        }
    }

    /// Why these policies alone do not allow the request (a request on `"*"` or an alias
    /// ARN), or `None` when they allow: no principal policy allows, else no session policy.
    pub fn implicit_deny_reason(&self) -> Option<DenyReason> {
        if !self.principal_policies_allow {
            Some(DenyReason::NoIdentityPolicyAllows)
        } else if !self.session_policies_allow {
            Some(DenyReason::NoSessionPolicyAllows)
        } else {
            None
        }
    }
}

impl IdentityPolicies<'_> {
    /// No identity policies (root, or a principal without any).
    pub const NONE: IdentityPolicies<'static> = IdentityPolicies {
        principal_policies: &[],
        session_policies: None,
    };

    /// Evaluates the identity policies for a request.
    pub fn evaluate(&self, context: &RequestContext) -> IdentityEvaluation {
        let fold = |policies: &[&Policy]| {
            policies.iter().fold(PolicyEvaluation::default(), |acc, p| {
                let e = p.evaluate(context);
                let mut out = acc;
                out.explicit_deny |= e.explicit_deny;
                out.allow = out.allow.max(e.allow);
                out
            })
        };
        let principal = fold(self.principal_policies);
        let session = self.session_policies.map(fold);
        let session_policies_allow = session.is_none_or(|s| s.allows());
        IdentityEvaluation {
            explicit_deny_in_principal_policy: principal.explicit_deny,
            explicit_deny_in_session_policy: session.is_some_and(|s| s.explicit_deny),
            allows: principal.allows() && session_policies_allow,
            principal_policies_allow: principal.allows(),
            session_policies_allow,
        }
    }
}

/// The caller's grant check for the request (see [`crate::grant`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GrantCheck {
    /// No active grant covers the request.
    #[default]
    NoGrant,
    /// A grant whose grantee is the caller (or the role of its session) covers the request.
    Allows,
    /// A grant whose grantee is the caller's account covers the request: it allows only if the
    /// account's identity policies also allow (delegation, as with key policies).
    AllowsIfIdentityAllows,
}

impl From<bool> for GrantCheck {
    fn from(allows: bool) -> GrantCheck {
        if allows {
            GrantCheck::Allows
        } else {
            GrantCheck::NoGrant
        }
    }
}

/// Everything [`authorize`] needs besides the request context.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct AuthorizationRequest<'a> {
    /// The request: caller, action, resource, condition keys.
    pub context: &'a RequestContext,
    /// The key policy (or the role trust policy for `sts:AssumeRole`). Ignored for requests
    /// on `"*"`.
    pub resource_policy: Option<&'a Policy>,
    /// The caller's identity policies. Ignored for the root user, which has none.
    pub identity_policies: IdentityPolicies<'a>,
    /// Deny-only policies that apply to every principal (an SCP stand-in). Their `Allow`
    /// statements are ignored.
    pub guardrail_policies: &'a [&'a Policy],
    /// The operation may act on another account's resource (reference §3.3).
    pub cross_account_capable: bool,
    /// The grant check.
    pub grant: GrantCheck,
}

impl<'a> AuthorizationRequest<'a> {
    /// A request with no policies, no guardrails, no grant, not cross-account capable.
    pub fn new(context: &'a RequestContext) -> AuthorizationRequest<'a> {
        AuthorizationRequest {
            context,
            resource_policy: None,
            identity_policies: IdentityPolicies::NONE,
            guardrail_policies: &[],
            cross_account_capable: false,
            grant: GrantCheck::NoGrant,
        }
    }

    /// Sets the key policy or trust policy.
    pub fn resource_policy(mut self, policy: &'a Policy) -> Self {
        self.resource_policy = Some(policy);
        self
    }

    /// Sets the caller's identity policies.
    pub fn identity_policies(mut self, policies: IdentityPolicies<'a>) -> Self {
        self.identity_policies = policies;
        self
    }

    /// Sets the guardrail policies.
    pub fn guardrail_policies(mut self, policies: &'a [&'a Policy]) -> Self {
        self.guardrail_policies = policies;
        self
    }

    /// Marks the operation as usable across accounts.
    pub fn cross_account_capable(mut self, capable: bool) -> Self {
        self.cross_account_capable = capable;
        self
    }

    /// Sets the grant check.
    pub fn grant(mut self, grant: impl Into<GrantCheck>) -> Self {
        self.grant = grant.into();
        self
    }
}

/// Why a request was allowed (for audit records and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AllowedBy {
    /// A resource policy statement names the caller, its session's role, or `"*"` (§3.2 4a).
    ResourcePolicy,
    /// A resource policy statement names the account and an identity policy allows (4b, 5b).
    ResourceAndIdentityPolicies,
    /// A grant (4c, 5c).
    Grant,
    /// An identity policy, for a request on `"*"`.
    IdentityPolicy,
    /// The root user, for a request on `"*"`.
    RootUser,
}

/// Why a request was denied; decides the AccessDenied message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DenyReason {
    /// A `Deny` in the key policy (or trust policy).
    ExplicitDenyInResourcePolicy,
    /// A `Deny` in an identity policy (a user's, or a session's role's).
    ExplicitDenyInIdentityPolicy,
    /// A `Deny` in a role session's session policy.
    ExplicitDenyInSessionPolicy,
    /// A `Deny` in a guardrail policy.
    ExplicitDenyInGuardrailPolicy,
    /// Nothing allowed a request on a resource (implicit deny).
    NoResourcePolicyAllows,
    /// Nothing allowed a request on `"*"` (implicit deny).
    NoIdentityPolicyAllows,
    /// A role session's session policies allow nothing the rest would have allowed (implicit
    /// deny).
    NoSessionPolicyAllows,
}

impl DenyReason {
    /// Nothing allowed the request (no `Deny` matched): a grant may still allow it.
    pub fn is_implicit(&self) -> bool {
        matches!(
            self,
            DenyReason::NoResourcePolicyAllows
                | DenyReason::NoIdentityPolicyAllows
                | DenyReason::NoSessionPolicyAllows
        )
    }
}

/// A denial: the reason, and whether the resource belongs to another account (AWS then uses
/// one wording for every reason, so as not to reveal whether the resource exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denial {
    /// Why.
    pub reason: DenyReason,
    /// The resource is another account's.
    pub cross_account: bool,
}

impl Denial {
    /// The AccessDenied message for this denial of `context` (reference §7.1, §7.2).
    pub fn message(&self, context: &RequestContext) -> String {
        let caller = context.caller().arn();
        let action = context.action();
        let resource = context.resource().as_str();
        if self.cross_account {
            return messages::cross_account(caller, action);
        }
        match self.reason {
            DenyReason::ExplicitDenyInResourcePolicy => {
                messages::explicit_deny_in_resource_policy(caller, action, resource)
            }
            DenyReason::ExplicitDenyInIdentityPolicy => {
                messages::explicit_deny_in_identity_policy(caller, action, resource)
            }
            DenyReason::ExplicitDenyInSessionPolicy => {
                messages::explicit_deny_in_session_policy(caller, action, resource)
            }
            DenyReason::ExplicitDenyInGuardrailPolicy => {
                messages::explicit_deny_in_service_control_policy(caller, action, resource)
            }
            DenyReason::NoResourcePolicyAllows => {
                messages::no_resource_policy_allows(caller, action, resource)
            }
            DenyReason::NoIdentityPolicyAllows => {
                messages::no_identity_policy_allows(caller, action, resource)
            }
            DenyReason::NoSessionPolicyAllows => {
                messages::no_session_policy_allows(caller, action, resource)
            }
        }
    }
}

/// The outcome of [`authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, and by what.
    Allow(AllowedBy),
    /// Denied, and why.
    Deny(Denial),
}

impl Decision {
    /// True for [`Decision::Allow`].
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    /// The denial, if denied.
    pub fn denial(&self) -> Option<&Denial> {
        match self {
            Decision::Deny(d) => Some(d),
            Decision::Allow(_) => None,
        }
    }
}

fn deny(reason: DenyReason, cross_account: bool) -> Decision {
    Decision::Deny(Denial {
        reason,
        cross_account,
    })
}

/// Decides a request (reference §3.2). Resolving the key and the NotFound rules come first and
/// are the caller's.
pub fn authorize(request: &AuthorizationRequest<'_>) -> Decision {
    let context = request.context;
    let caller = context.caller();
    let resource_account = context.resource().account();
    let cross_account = resource_account.is_some_and(|a| a != caller.account());

    let resource = match (context.resource(), request.resource_policy) {
        (Resource::Arn(_), Some(policy)) => policy.evaluate(context),
        _ => PolicyEvaluation::default(),
    };
    // The root user has no identity policies and is not limited by any.
    let identity = if caller.is_root() {
        IdentityEvaluation::ROOT
    } else {
        request.identity_policies.evaluate(context)
    };

    // 2. Explicit deny anywhere wins.
    if resource.explicit_deny {
        return deny(DenyReason::ExplicitDenyInResourcePolicy, cross_account);
    }
    if let Some(reason) = identity.explicit_deny_reason() {
        return deny(reason, cross_account);
    }
    if request
        .guardrail_policies
        .iter()
        .any(|g| g.evaluate(context).explicit_deny)
    {
        return deny(DenyReason::ExplicitDenyInGuardrailPolicy, cross_account);
    }

    // 3. Requests on "*": identity policies only.
    if resource_account.is_none() {
        return if caller.is_root() {
            Decision::Allow(AllowedBy::RootUser)
        } else {
            match identity.implicit_deny_reason() {
                None => Decision::Allow(AllowedBy::IdentityPolicy),
                Some(reason) => deny(reason, false),
            }
        };
    }

    // 5a. Operations that never work across accounts.
    if cross_account && !request.cross_account_capable {
        return deny(DenyReason::NoResourcePolicyAllows, true);
    }

    let direct = match resource.allow {
        Some(PrincipalMatch::Caller) => true,
        Some(PrincipalMatch::Role) => identity.session_policies_allow,
        _ => false,
    };
    if cross_account {
        // 5b. Both sides must allow: the key policy names the caller or its account, and the
        // caller's own account allows through its identity policies.
        if resource.allow.is_some() && identity.allows {
            return Decision::Allow(if direct {
                AllowedBy::ResourcePolicy
            } else {
                AllowedBy::ResourceAndIdentityPolicies
            });
        }
    } else {
        // 4a, 4b.
        if direct {
            return Decision::Allow(AllowedBy::ResourcePolicy);
        }
        if resource.allow.is_some() && identity.allows {
            return Decision::Allow(AllowedBy::ResourceAndIdentityPolicies);
        }
    }
    // 4c, 5c.
    match request.grant {
        GrantCheck::Allows => Decision::Allow(AllowedBy::Grant),
        GrantCheck::AllowsIfIdentityAllows if identity.allows => Decision::Allow(AllowedBy::Grant),
        _ => {
            // The session policies are what is missing when the key policy names the
            // session's role (or "*"), or names the account and the role's policies allow.
            let role_side_allows = match resource.allow {
                Some(PrincipalMatch::Role) => true,
                Some(_) => identity.principal_policies_allow,
                None => false,
            };
            let reason = if role_side_allows && !identity.session_policies_allow {
                DenyReason::NoSessionPolicyAllows
            } else {
                DenyReason::NoResourcePolicyAllows
            };
            deny(reason, cross_account)
        }
    }
}

/// The lockout safety check (reference §4): would `kms:PutKeyPolicy` by the same caller on
/// `key` still be allowed with `new_key_policy` in place? Identity policies, guardrails and
/// explicit denies count; grants cannot help (PutKeyPolicy is not a grant operation).
///
/// `request` is the context of the call being checked (CreateKey, PutKeyPolicy, ReplicateKey):
/// its caller and condition keys are reused for the hypothetical PutKeyPolicy. Run this only
/// when `BypassPolicyLockoutSafetyCheck` is not true, after authorising the call itself.
pub fn lockout_check(
    request: &RequestContext,
    key: &ResourceArn,
    new_key_policy: &Policy,
    identity_policies: IdentityPolicies<'_>,
    guardrail_policies: &[&Policy],
) -> Result<(), PolicyError> {
    let context = request
        .with_action("kms:PutKeyPolicy")
        .with_resource(Resource::Arn(key.clone()));
    let decision = authorize(
        &AuthorizationRequest::new(&context)
            .resource_policy(new_key_policy)
            .identity_policies(identity_policies)
            .guardrail_policies(guardrail_policies),
    );
    if decision.is_allowed() {
        Ok(())
    } else {
        Err(PolicyError::WouldLockOut)
    }
}

/// The AccessDenied message texts of reference §7.1 and §7.2, exactly. `action` is the full
/// action name (`kms:Decrypt`); `caller_arn` is the session ARN for role sessions.
pub mod messages {
    /// A request on a key that nothing allowed.
    pub fn no_resource_policy_allows(caller_arn: &str, action: &str, resource: &str) -> String {
        format!(
            "User: {caller_arn} is not authorized to perform: {action} on resource: {resource} \
             because no resource-based policy allows the {action} action"
        )
    }

    /// A `Deny` in the key policy.
    pub fn explicit_deny_in_resource_policy(
        caller_arn: &str,
        action: &str,
        resource: &str,
    ) -> String {
        format!(
            "User: {caller_arn} is not authorized to perform: {action} on resource: {resource} \
             with an explicit deny in a resource-based policy"
        )
    }

    /// A `Deny` in an identity policy; `resource` is the ARN or `*`.
    pub fn explicit_deny_in_identity_policy(
        caller_arn: &str,
        action: &str,
        resource: &str,
    ) -> String {
        format!(
            "User: {caller_arn} is not authorized to perform: {action} on resource: {resource} \
             with an explicit deny in an identity-based policy"
        )
    }

    /// A `Deny` in a role session's session policy; `resource` is the ARN or `*`.
    pub fn explicit_deny_in_session_policy(
        caller_arn: &str,
        action: &str,
        resource: &str,
    ) -> String {
        format!(
            "User: {caller_arn} is not authorized to perform: {action} on resource: {resource} \
             with an explicit deny in a session policy"
        )
    }

    /// A request of a role session that its role's policies (or the key policy) allow and its
    /// session policies do not; `resource` is the ARN or `*`.
    pub fn no_session_policy_allows(caller_arn: &str, action: &str, resource: &str) -> String {
        format!(
            "User: {caller_arn} is not authorized to perform: {action} on resource: {resource} \
             because no session policy allows the {action} action"
        )
    }

    /// A `Deny` in a guardrail policy (AWS's wording for service control policies).
    pub fn explicit_deny_in_service_control_policy(
        caller_arn: &str,
        action: &str,
        resource: &str,
    ) -> String {
        format!(
            "User: {caller_arn} is not authorized to perform: {action} on resource: {resource} \
             with an explicit deny in a service control policy"
        )
    }

    /// A request on `*` (CreateKey, ListKeys, ...) that no identity policy allowed.
    pub fn no_identity_policy_allows(caller_arn: &str, action: &str, resource: &str) -> String {
        format!(
            "User: {caller_arn} is not authorized to perform: {action} on resource: {resource} \
             because no identity-based policy allows the {action} action"
        )
    }

    /// CreateKey with `Tags` when no identity policy allows `kms:TagResource` (no resource part).
    pub fn tag_resource_on_create_key(caller_arn: &str) -> String {
        format!(
            "User: {caller_arn} is not authorized to perform: kms:TagResource because no \
             identity-based policy allows the kms:TagResource action"
        )
    }

    /// Any denial on another account's key, and a key ARN of another account that does not
    /// exist: one wording that does not reveal which.
    pub fn cross_account(caller_arn: &str, action: &str) -> String {
        format!(
            "User: {caller_arn} is not authorized to perform: {action} on this resource because \
             the resource does not exist in this Region, no resource-based policies allow access, \
             or a resource-based policy explicitly denies access"
        )
    }

    /// Decrypt of a ciphertext whose key is unknown or unusable.
    pub const CIPHERTEXT_KEY_UNUSABLE: &str =
        "The ciphertext refers to a customer master key that \
         does not exist, does not exist in this region, or you are not allowed to access.";

    /// `sts:AssumeRole` denied (reference §8.3).
    pub fn assume_role_denied(caller_arn: &str, role_arn: &str) -> String {
        format!(
            "User: {caller_arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
        )
    }
}
