//! Policy documents: parse, validate and compile once ([`Policy::parse`]); evaluate per request
//! ([`Policy::evaluate`]).
//!
//! The compiled form keeps lowercased action patterns, pre-split ARN patterns, parsed numbers,
//! dates and CIDR blocks, so evaluating a statement is a handful of string comparisons. The
//! submitted text is kept unchanged ([`Policy::text`]) for `GetKeyPolicy`.

use std::fmt;

use crate::arn::ArnPattern;
use crate::condition::{Condition, Operator, Qualifier};
use crate::context::{RequestContext, Resource};
use crate::error::PolicyError;
use crate::glob::{fold, Glob};
use crate::json::{self, Json};
use crate::principal::{parse_principal_arn, PrincipalArn, PrincipalDirectory, PrincipalSet};
use crate::variables::{self, Part, Template};

use crate::principal::PrincipalMatch;

/// What a policy document is attached to; decides which elements it must and must not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PolicyKind {
    /// A KMS key policy: `Principal` required, `Resource` must be `"*"`, `Version` required,
    /// IAM-only condition keys refused.
    Key,
    /// An IAM identity policy (user, group, role) or a guardrail policy: no `Principal`.
    Identity,
    /// An IAM role trust policy (the resource policy of `sts:AssumeRole`): `Principal`
    /// required, no `Resource` (the resource is the role), no `NotPrincipal`.
    Trust,
    /// An inline session policy passed to `AssumeRole`: like an identity policy.
    Session,
}

impl PolicyKind {
    fn has_principals(self) -> bool {
        matches!(self, PolicyKind::Key | PolicyKind::Trust)
    }

    /// IAM's own rules (Sid characters, Sid uniqueness) apply to IAM documents, not key policies.
    fn is_iam_document(self) -> bool {
        !matches!(self, PolicyKind::Key)
    }
}

/// The policy language version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyVersion {
    /// `2012-10-17`: the current version; policy variables are expanded.
    V2012_10_17,
    /// `2008-10-17` (or no `Version` in an IAM document): `${…}` is plain text.
    V2008_10_17,
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// The statement allows what it matches.
    Allow,
    /// The statement denies what it matches; an explicit deny beats every allow.
    Deny,
}

#[derive(Debug, Clone, PartialEq)]
enum PrincipalSpec {
    /// Identity and session policies: the principal is the identity the policy is attached to.
    Implicit,
    Principal(PrincipalSet),
    NotPrincipal(PrincipalSet),
}

#[derive(Debug, Clone, PartialEq)]
enum ActionSpec {
    Action(Box<[Glob]>),
    NotAction(Box<[Glob]>),
}

#[derive(Debug, Clone, PartialEq)]
enum ResourcePattern {
    /// `"*"`.
    Any,
    Static(ArnPattern),
    Dynamic(Box<[Part]>),
}

#[derive(Debug, Clone, PartialEq)]
enum ResourceSpec {
    /// Key policies (`"*"`, this key) and trust policies (no element, the role).
    AttachedResource,
    /// A key policy statement without `Resource` or `NotResource`: accepted, but it applies to
    /// no key (AWS's key policy documentation; reference kms-api.md §6.1).
    Nothing,
    Resource(Box<[ResourcePattern]>),
    NotResource(Box<[ResourcePattern]>),
}

#[derive(Debug, Clone, PartialEq)]
struct Statement {
    sid: Option<Box<str>>,
    effect: Effect,
    principal: PrincipalSpec,
    actions: ActionSpec,
    resources: ResourceSpec,
    conditions: Box<[Condition]>,
}

/// A parsed, validated and compiled policy document.
#[derive(Clone, PartialEq)]
pub struct Policy {
    text: Box<str>,
    kind: PolicyKind,
    version: PolicyVersion,
    id: Option<Box<str>>,
    statements: Box<[Statement]>,
    /// Whether any statement has a condition or a resource with a policy variable: only then
    /// does evaluation read the request context's keys (see [`Policy::reads_context`]).
    reads_context: bool,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("kind", &self.kind)
            .field("version", &self.version)
            .field("id", &self.id)
            .field("statements", &self.statements.len())
            .finish()
    }
}

/// What one policy says about one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PolicyEvaluation {
    /// A `Deny` statement matched.
    pub explicit_deny: bool,
    /// The strongest way an `Allow` statement matched, if one did. Identity and session
    /// policies report [`PrincipalMatch::Caller`] (they apply to their own identity).
    pub allow: Option<PrincipalMatch>,
}

impl PolicyEvaluation {
    /// Some `Allow` statement matched (in any way).
    pub fn allows(&self) -> bool {
        self.allow.is_some()
    }

    /// An `Allow` statement names the caller itself, the role of its session, or `"*"`: it
    /// allows without identity policies (for sessions, within the session policies).
    pub fn allows_directly(&self) -> bool {
        matches!(
            self.allow,
            Some(PrincipalMatch::Caller | PrincipalMatch::Role)
        )
    }

    /// An `Allow` statement names only the caller's account: it delegates to identity policies.
    pub fn allows_via_account(&self) -> bool {
        self.allow == Some(PrincipalMatch::Account)
    }
}

impl Policy {
    /// Parses, validates and compiles a policy document of the given kind. Principals other
    /// than accounts, `"*"` and services must exist according to `directory`.
    ///
    /// Does not check size or character set; see
    /// [`check_key_policy_size`](crate::check_key_policy_size).
    pub fn parse(
        text: &str,
        kind: PolicyKind,
        directory: &dyn PrincipalDirectory,
    ) -> Result<Policy, PolicyError> {
        let document = json::parse(text).map_err(|detail| PolicyError::InvalidJson { detail })?;
        let Json::Object(members) = document else {
            return Err(wrong_type(
                "The policy document",
                "a JSON object",
                &document,
            ));
        };
        let mut version = None;
        let mut id = None;
        let mut statement = None;
        for (name, value) in &members {
            match name.as_str() {
                "Version" => version = Some(value),
                "Id" => id = Some(value),
                "Statement" => statement = Some(value),
                _ => {
                    return Err(PolicyError::UnknownElement {
                        path: "The policy document".into(),
                        element: name.clone(),
                    })
                }
            }
        }
        let version = match version {
            None if kind == PolicyKind::Key => return Err(PolicyError::MissingVersion),
            None => PolicyVersion::V2008_10_17,
            Some(Json::String(v)) if v == "2012-10-17" => PolicyVersion::V2012_10_17,
            Some(Json::String(v)) if v == "2008-10-17" => PolicyVersion::V2008_10_17,
            Some(Json::String(v)) => {
                return Err(PolicyError::UnsupportedVersion { version: v.clone() })
            }
            Some(other) => return Err(wrong_type("Version", "a string", other)),
        };
        let id = match id {
            None => None,
            Some(Json::String(s)) => Some(s.as_str().into()),
            Some(other) => return Err(wrong_type("Id", "a string", other)),
        };
        let statements: Vec<(String, &Json)> = match statement {
            None => return Err(PolicyError::NoStatements),
            Some(single @ Json::Object(_)) => vec![("Statement".to_owned(), single)],
            Some(Json::Array(items)) if items.is_empty() => return Err(PolicyError::NoStatements),
            Some(Json::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("Statement[{i}]"), s))
                .collect(),
            Some(other) => {
                return Err(wrong_type(
                    "Statement",
                    "an object or an array of objects",
                    other,
                ))
            }
        };
        let parser = Parser {
            kind,
            version,
            directory,
        };
        let mut compiled = Vec::with_capacity(statements.len());
        for (path, value) in &statements {
            compiled.push(parser.statement(path, value)?);
        }
        if kind.is_iam_document() {
            for (i, s) in compiled.iter().enumerate() {
                if let Some(sid) = &s.sid {
                    if compiled[..i].iter().any(|o| o.sid.as_deref() == Some(sid)) {
                        return Err(PolicyError::DuplicateSid {
                            sid: sid.to_string(),
                        });
                    }
                }
            }
        }
        let reads_context = compiled.iter().any(|s: &Statement| {
            let dynamic = |patterns: &[ResourcePattern]| {
                patterns
                    .iter()
                    .any(|p| matches!(p, ResourcePattern::Dynamic(_)))
            };
            !s.conditions.is_empty()
                || match &s.resources {
                    ResourceSpec::AttachedResource | ResourceSpec::Nothing => false,
                    ResourceSpec::Resource(p) | ResourceSpec::NotResource(p) => dynamic(p),
                }
        });
        Ok(Policy {
            text: text.into(),
            kind,
            version,
            id,
            statements: compiled.into(),
            reads_context,
        })
    }

    /// The document exactly as submitted.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The kind it was parsed as.
    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// The language version.
    pub fn version(&self) -> PolicyVersion {
        self.version
    }

    /// The `Id` element.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The number of statements.
    pub fn statement_count(&self) -> usize {
        self.statements.len()
    }

    /// Whether a condition of the policy reads a key whose name starts with `prefix`
    /// (case-insensitive), e.g. `aws:ResourceTag/`. Callers use it to skip computing
    /// expensive context values (a key's tags or aliases) that no policy looks at.
    pub fn references_condition_key(&self, prefix: &str) -> bool {
        let folded = crate::glob::fold(prefix);
        self.statements
            .iter()
            .flat_map(|s| s.conditions.iter())
            .any(|c| c.key_starts_with(&folded))
    }

    /// Whether evaluating this policy reads any condition key of the request context (it has
    /// a condition, or a `Resource` with a policy variable). When no applicable policy does,
    /// a caller may evaluate against a context that holds only caller, action and resource
    /// ([`crate::RequestContext::bare`]): the decision is the same and the keys cost nothing.
    pub fn reads_context(&self) -> bool {
        self.reads_context
    }

    /// The statements' `Sid`s in order (`None` for statements without one).
    pub fn sids(&self) -> impl Iterator<Item = Option<&str>> {
        self.statements.iter().map(|s| s.sid.as_deref())
    }

    /// Evaluates every statement against the request.
    pub fn evaluate(&self, context: &RequestContext) -> PolicyEvaluation {
        let mut result = PolicyEvaluation::default();
        for statement in self.statements.iter() {
            match statement.effect {
                Effect::Deny if !result.explicit_deny && statement.applies(context).is_some() => {
                    result.explicit_deny = true;
                }
                Effect::Allow if result.allow != Some(PrincipalMatch::Caller) => {
                    if let Some(matched) = statement.applies(context) {
                        result.allow = result.allow.max(Some(matched));
                    }
                }
                _ => {}
            }
            if result.explicit_deny && result.allow == Some(PrincipalMatch::Caller) {
                break;
            }
        }
        result
    }
}

impl Statement {
    /// How the statement applies to the request, or `None`. Deny statements also apply to the
    /// principals of an account they name.
    fn applies(&self, context: &RequestContext) -> Option<PrincipalMatch> {
        let action = context.action_folded();
        let action_listed = |globs: &[Glob]| globs.iter().any(|g| g.matches(action));
        let action_ok = match &self.actions {
            ActionSpec::Action(globs) => action_listed(globs),
            ActionSpec::NotAction(globs) => !action_listed(globs),
        };
        if !action_ok {
            return None;
        }
        let caller = context.caller();
        let matched = match &self.principal {
            PrincipalSpec::Implicit => PrincipalMatch::Caller,
            PrincipalSpec::Principal(set) => set.best_match(caller)?,
            PrincipalSpec::NotPrincipal(set) => {
                if set.excludes(caller) {
                    return None;
                }
                PrincipalMatch::Caller
            }
        };
        let resource = context.resource();
        let listed = |patterns: &[ResourcePattern]| {
            patterns
                .iter()
                .any(|p| resource_matches(p, resource, context))
        };
        let resource_ok = match &self.resources {
            ResourceSpec::AttachedResource => true,
            ResourceSpec::Nothing => false,
            ResourceSpec::Resource(patterns) => listed(patterns),
            ResourceSpec::NotResource(patterns) => !listed(patterns),
        };
        if !resource_ok || !self.conditions.iter().all(|c| c.holds(context)) {
            return None;
        }
        Some(matched)
    }
}

fn resource_matches(
    pattern: &ResourcePattern,
    resource: &Resource,
    context: &RequestContext,
) -> bool {
    let Resource::Arn(arn) = resource else {
        // A request on "*" is matched only by "*".
        return *pattern == ResourcePattern::Any;
    };
    match pattern {
        ResourcePattern::Any => true,
        ResourcePattern::Static(p) => p.matches(arn.as_str()),
        ResourcePattern::Dynamic(parts) => variables::resolve(parts, context)
            .is_some_and(|tokens| ArnPattern::from_tokens(tokens).matches(arn.as_str())),
    }
}

fn wrong_type(path: &str, expected: &'static str, found: &Json) -> PolicyError {
    PolicyError::WrongType {
        path: path.to_owned(),
        expected,
        found: found.kind(),
    }
}

/// A string or a non-empty array of strings. `Ok(None)` for an empty array.
fn string_list<'a>(
    value: &'a Json,
    path: &str,
    expected: &'static str,
) -> Result<Option<Vec<&'a str>>, PolicyError> {
    match value {
        Json::String(s) => Ok(Some(vec![s.as_str()])),
        Json::Array(items) if items.is_empty() => Ok(None),
        Json::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Json::String(s) => Ok(s.as_str()),
                other => Err(wrong_type(&format!("{path}[{i}]"), "a string", other)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        other => Err(wrong_type(path, expected, other)),
    }
}

/// `service:pattern` with a non-empty service of letters, digits and dashes.
fn has_vendor_prefix(s: &str) -> bool {
    s.split_once(':').is_some_and(|(vendor, _)| {
        !vendor.is_empty()
            && vendor
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}

/// The condition keys only identity policies may use.
fn iam_only_condition_key(folded: &str) -> bool {
    folded.starts_with("aws:resourcetag")
        || folded.starts_with("kms:resourcetag")
        || folded == "kms:resourcealiases"
}

struct Parser<'a> {
    kind: PolicyKind,
    version: PolicyVersion,
    directory: &'a dyn PrincipalDirectory,
}

#[derive(Default)]
struct Elements<'a> {
    sid: Option<&'a Json>,
    effect: Option<&'a Json>,
    principal: Option<&'a Json>,
    not_principal: Option<&'a Json>,
    action: Option<&'a Json>,
    not_action: Option<&'a Json>,
    resource: Option<&'a Json>,
    not_resource: Option<&'a Json>,
    condition: Option<&'a Json>,
}

impl Parser<'_> {
    fn statement(&self, path: &str, value: &Json) -> Result<Statement, PolicyError> {
        let Json::Object(members) = value else {
            return Err(wrong_type(path, "an object", value));
        };
        let mut e = Elements::default();
        for (name, value) in members {
            let slot = match name.as_str() {
                "Sid" => &mut e.sid,
                "Effect" => &mut e.effect,
                "Principal" => &mut e.principal,
                "NotPrincipal" => &mut e.not_principal,
                "Action" => &mut e.action,
                "NotAction" => &mut e.not_action,
                "Resource" => &mut e.resource,
                "NotResource" => &mut e.not_resource,
                "Condition" => &mut e.condition,
                _ => {
                    return Err(PolicyError::UnknownElement {
                        path: path.to_owned(),
                        element: name.clone(),
                    })
                }
            };
            *slot = Some(value);
        }
        let sid = self.sid(path, e.sid)?;
        let effect = match e.effect {
            None => {
                return Err(PolicyError::MissingEffect {
                    path: path.to_owned(),
                })
            }
            Some(Json::String(s)) if s == "Allow" => Effect::Allow,
            Some(Json::String(s)) if s == "Deny" => Effect::Deny,
            Some(Json::String(s)) => {
                return Err(PolicyError::InvalidEffect {
                    path: path.to_owned(),
                    value: s.clone(),
                })
            }
            Some(other) => return Err(wrong_type(&format!("{path}.Effect"), "a string", other)),
        };
        let principal = self.principal(path, effect, e.principal, e.not_principal)?;
        let actions = self.actions(path, e.action, e.not_action)?;
        let resources = self.resources(path, e.resource, e.not_resource)?;
        let conditions = match e.condition {
            None => Box::default(),
            Some(c) => self.conditions(&format!("{path}.Condition"), c)?,
        };
        Ok(Statement {
            sid,
            effect,
            principal,
            actions,
            resources,
            conditions,
        })
    }

    fn sid(&self, path: &str, sid: Option<&Json>) -> Result<Option<Box<str>>, PolicyError> {
        match sid {
            None => Ok(None),
            Some(Json::String(s)) => {
                if self.kind.is_iam_document() && !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(PolicyError::InvalidSid { sid: s.clone() });
                }
                Ok(Some(s.as_str().into()))
            }
            Some(other) => Err(wrong_type(&format!("{path}.Sid"), "a string", other)),
        }
    }

    fn principal(
        &self,
        path: &str,
        effect: Effect,
        principal: Option<&Json>,
        not_principal: Option<&Json>,
    ) -> Result<PrincipalSpec, PolicyError> {
        if !self.kind.has_principals() {
            if principal.is_some() || not_principal.is_some() {
                return Err(PolicyError::PrincipalNotAllowed);
            }
            return Ok(PrincipalSpec::Implicit);
        }
        match (principal, not_principal) {
            (None, None) => Err(PolicyError::NoPrincipal),
            (Some(_), Some(_)) => Err(PolicyError::PrincipalAndNotPrincipal {
                path: path.to_owned(),
            }),
            (Some(p), None) => Ok(PrincipalSpec::Principal(self.principal_set(p)?)),
            (None, Some(p)) => {
                if self.kind == PolicyKind::Trust {
                    return Err(PolicyError::NotPrincipalNotSupported {
                        path: path.to_owned(),
                        where_: "in a role trust policy",
                    });
                }
                if effect == Effect::Allow {
                    return Err(PolicyError::NotPrincipalNotSupported {
                        path: path.to_owned(),
                        where_:
                            "with \"Effect\": \"Allow\" in a key policy; use it only with \"Deny\"",
                    });
                }
                Ok(PrincipalSpec::NotPrincipal(self.principal_set(p)?))
            }
        }
    }

    fn principal_set(&self, value: &Json) -> Result<PrincipalSet, PolicyError> {
        let invalid = |p: &str| PolicyError::InvalidPrincipals {
            principal: p.to_owned(),
        };
        let mut set = PrincipalSet::default();
        let members = match value {
            Json::String(s) if s == "*" => {
                set.any = true;
                return Ok(set);
            }
            Json::Object(members) if !members.is_empty() => members,
            Json::String(s) => return Err(invalid(s)),
            _ => return Err(invalid(value.kind())),
        };
        for (name, value) in members {
            let values = match value {
                Json::String(s) => vec![s.as_str()],
                Json::Array(items) if !items.is_empty() => items
                    .iter()
                    .map(|i| match i {
                        Json::String(s) => Ok(s.as_str()),
                        other => Err(invalid(other.kind())),
                    })
                    .collect::<Result<_, _>>()?,
                other => return Err(invalid(other.kind())),
            };
            match name.as_str() {
                "AWS" => {
                    for v in values {
                        self.aws_principal(v, &mut set).ok_or_else(|| invalid(v))?;
                    }
                }
                // Service principals (and, in trust policies, identity providers) are valid but
                // never match a caller of a local deployment.
                "Service" => {
                    if let Some(v) = values
                        .iter()
                        .find(|v| v.is_empty() || v.chars().any(char::is_whitespace))
                    {
                        return Err(invalid(v));
                    }
                }
                "Federated" if self.kind == PolicyKind::Trust => {
                    if let Some(v) = values.iter().find(|v| v.is_empty()) {
                        return Err(invalid(v));
                    }
                }
                other => return Err(invalid(other)),
            }
        }
        Ok(set)
    }

    fn aws_principal(&self, value: &str, set: &mut PrincipalSet) -> Option<()> {
        if value == "*" {
            set.any = true;
            return Some(());
        }
        if crate::arn::is_account_id(value) {
            set.accounts.push(value.into());
            return Some(());
        }
        let (principal, _) = parse_principal_arn(value)?;
        match principal {
            PrincipalArn::Root { account } => set.accounts.push(account.into()),
            PrincipalArn::User | PrincipalArn::Session { .. } => {
                self.directory.principal_exists(value).then_some(())?;
                set.exact.push(value.into());
            }
            PrincipalArn::Role => {
                self.directory.principal_exists(value).then_some(())?;
                set.roles.push(value.into());
            }
        }
        Some(())
    }

    fn actions(
        &self,
        path: &str,
        action: Option<&Json>,
        not_action: Option<&Json>,
    ) -> Result<ActionSpec, PolicyError> {
        let (value, name, negated) = match (action, not_action) {
            (None, None) => return Err(PolicyError::NoAction),
            (Some(_), Some(_)) => {
                return Err(PolicyError::ActionAndNotAction {
                    path: path.to_owned(),
                })
            }
            (Some(a), None) => (a, "Action", false),
            (None, Some(a)) => (a, "NotAction", true),
        };
        let path = format!("{path}.{name}");
        let list = string_list(value, &path, "a string or an array of strings")?
            .ok_or(PolicyError::NoAction)?;
        let mut globs = Vec::with_capacity(list.len());
        for action in list {
            if action != "*" && !has_vendor_prefix(action) {
                return Err(PolicyError::MissingVendorPrefix {
                    value: action.to_owned(),
                });
            }
            globs.push(Glob::new(&fold(action)));
        }
        let globs = globs.into_boxed_slice();
        Ok(if negated {
            ActionSpec::NotAction(globs)
        } else {
            ActionSpec::Action(globs)
        })
    }

    fn resources(
        &self,
        path: &str,
        resource: Option<&Json>,
        not_resource: Option<&Json>,
    ) -> Result<ResourceSpec, PolicyError> {
        if self.kind == PolicyKind::Trust {
            return match (resource, not_resource) {
                (None, None) => Ok(ResourceSpec::AttachedResource),
                _ => Err(PolicyError::ResourceNotAllowed {
                    path: path.to_owned(),
                }),
            };
        }
        let (value, name, negated) = match (resource, not_resource) {
            (None, None) if self.kind == PolicyKind::Key => return Ok(ResourceSpec::Nothing),
            (None, None) => return Err(PolicyError::NoResource),
            (Some(_), Some(_)) => {
                return Err(PolicyError::ResourceAndNotResource {
                    path: path.to_owned(),
                })
            }
            (Some(r), None) => (r, "Resource", false),
            (None, Some(r)) => (r, "NotResource", true),
        };
        let path = format!("{path}.{name}");
        let list = string_list(value, &path, "a string or an array of strings")?
            .ok_or(PolicyError::NoResource)?;
        if self.kind == PolicyKind::Key {
            if let Some(bad) = list.iter().find(|r| **r != "*" || negated) {
                return Err(PolicyError::KeyPolicyResourceNotStar {
                    path,
                    value: (*bad).to_owned(),
                });
            }
            return Ok(ResourceSpec::AttachedResource);
        }
        let variables = self.version == PolicyVersion::V2012_10_17;
        let mut patterns = Vec::with_capacity(list.len());
        for r in list {
            if r == "*" {
                patterns.push(ResourcePattern::Any);
                continue;
            }
            if !r.starts_with("arn:") || r.splitn(6, ':').count() < 6 {
                return Err(PolicyError::InvalidResource {
                    value: r.to_owned(),
                });
            }
            patterns.push(match variables::compile(r, true, variables) {
                Template::Static(tokens) => {
                    ResourcePattern::Static(ArnPattern::from_tokens(tokens))
                }
                Template::Dynamic(parts) => ResourcePattern::Dynamic(parts),
            });
        }
        let patterns = patterns.into_boxed_slice();
        Ok(if negated {
            ResourceSpec::NotResource(patterns)
        } else {
            ResourceSpec::Resource(patterns)
        })
    }

    fn conditions(&self, path: &str, value: &Json) -> Result<Box<[Condition]>, PolicyError> {
        let Json::Object(operators) = value else {
            return Err(wrong_type(path, "an object of condition operators", value));
        };
        let mut conditions = Vec::new();
        for (operator_name, keys) in operators {
            let op_path = format!("{path}.{operator_name}");
            let operator = Operator::parse(operator_name).ok_or_else(|| {
                PolicyError::UnknownConditionOperator {
                    path: path.to_owned(),
                    operator: operator_name.clone(),
                }
            })?;
            let Json::Object(keys) = keys else {
                return Err(wrong_type(&op_path, "an object of condition keys", keys));
            };
            for (key, values) in keys {
                let key_path = format!("{op_path}[\"{key}\"]");
                conditions.push(self.condition(operator, key, &key_path, values)?);
            }
        }
        Ok(conditions.into())
    }

    fn condition(
        &self,
        operator: Operator,
        key: &str,
        path: &str,
        values: &Json,
    ) -> Result<Condition, PolicyError> {
        if !has_vendor_prefix(key) {
            return Err(PolicyError::MissingVendorPrefix {
                value: key.to_owned(),
            });
        }
        let folded = fold(key);
        let encryption_context_key = folded.starts_with("kms:encryptioncontext:");
        if self.kind == PolicyKind::Key {
            if iam_only_condition_key(&folded) {
                return Err(PolicyError::ConditionKeyNotPermittedInKeyPolicy {
                    key: key.to_owned(),
                });
            }
            if operator.qualifier() == Qualifier::ForAllValues {
                if encryption_context_key {
                    return Err(PolicyError::OverlyPermissiveEncryptionContext {
                        key: key.to_owned(),
                    });
                }
                if folded.starts_with("aws:requesttag/") {
                    return Err(PolicyError::OverlyPermissiveRequestTag {
                        key: key.to_owned(),
                    });
                }
            }
        }
        let raw = condition_values(values, path)?;
        // Key policies expand variables only in encryption context values (reference §5).
        let variables = self.version == PolicyVersion::V2012_10_17
            && operator.takes_variables()
            && (self.kind != PolicyKind::Key || encryption_context_key);
        Condition::compile(operator, key, &raw, variables).map_err(|bad| {
            PolicyError::InvalidConditionValue {
                path: path.to_owned(),
                value: bad.value,
                expected: bad.expected,
            }
        })
    }
}

/// A condition key's values as text: a string, number or boolean, or a non-empty array of them.
fn condition_values(value: &Json, path: &str) -> Result<Vec<String>, PolicyError> {
    const EXPECTED: &str = "a string, number or boolean, or an array of them";
    let scalar = |v: &Json, path: &str| match v {
        Json::String(s) => Ok(s.clone()),
        Json::Number(n) => Ok(n.to_string()),
        Json::Bool(b) => Ok(b.to_string()),
        other => Err(wrong_type(path, EXPECTED, other)),
    };
    match value {
        Json::Array(items) if items.is_empty() => Err(PolicyError::EmptyConditionValues {
            path: path.to_owned(),
        }),
        Json::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| scalar(v, &format!("{path}[{i}]")))
            .collect(),
        other => Ok(vec![scalar(other, path)?]),
    }
}
