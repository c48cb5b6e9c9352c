//! The AWS policy language as a pure library: key policies, IAM identity policies, role trust
//! policies and session policies; parsed and validated once, compiled, and evaluated per request.
//!
//! # What this crate owns
//!
//! * The document grammar and its validation errors ([`Policy::parse`], [`PolicyError`]), with
//!   AWS's own message texts where they are known.
//! * Principals and callers ([`Caller`], [`PrincipalDirectory`]), actions with wildcards,
//!   resources as ARN patterns, every condition operator with `IfExists` and the
//!   `ForAnyValue:`/`ForAllValues:` qualifiers, and policy variables.
//! * The request context a policy looks at ([`RequestContext`], [`ContextValue`]).
//! * Evaluation of one policy ([`Policy::evaluate`]) and the whole decision over key policy,
//!   identity policies, guardrails and grants ([`authorize`]), with the AccessDenied texts
//!   ([`messages`], [`Denial::message`]).
//! * The pure rules of grants ([`GrantView`], [`grant_allows`], [`GrantOperation`]), the lockout
//!   safety check ([`lockout_check`]) and the default key policy ([`default_key_policy`]).
//!
//! # What it refuses to do
//!
//! No I/O, no clock, no network, no logging, no global state. It does not look up principals,
//! keys, aliases or grants, and it does not know which condition keys an operation has: the
//! caller builds the [`RequestContext`] (including `aws:CurrentTime` and `aws:SourceIp`),
//! resolves keys and aliases (NotFound comes before authorisation), enforces document sizes and
//! character sets, stores policies and grants, and maps [`PolicyError`] and [`Decision`] to wire
//! errors. Evaluation never fails and never panics: whatever does not match is not allowed.
//!
//! # Example
//!
//! ```
//! use kms_policy::{
//!     authorize, default_key_policy, AnyPrincipalExists, AuthorizationRequest, Caller,
//!     IdentityPolicies, Policy, PolicyKind, RequestContext, Resource,
//! };
//!
//! let key_policy = Policy::parse(
//!     &default_key_policy("111122223333"),
//!     PolicyKind::Key,
//!     &AnyPrincipalExists,
//! )?;
//! let alice_policy = Policy::parse(
//!     r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow",
//!         "Action": "kms:Decrypt", "Resource": "arn:aws:kms:*:111122223333:key/*"}}"#,
//!     PolicyKind::Identity,
//!     &AnyPrincipalExists,
//! )?;
//! let alice = Caller::from_arn("arn:aws:iam::111122223333:user/alice")?;
//! let key = Resource::arn("arn:aws:kms:us-east-1:111122223333:key/1234abcd")?;
//! let context = RequestContext::new(alice, "kms:Decrypt", key);
//! let identity = [&alice_policy];
//! let decision = authorize(
//!     &AuthorizationRequest::new(&context)
//!         .resource_policy(&key_policy)
//!         .identity_policies(IdentityPolicies { principal_policies: &identity, session_policies: None }),
//! );
//! assert!(decision.is_allowed());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod arn;
mod condition;
mod context;
mod decision;
mod default_policy;
mod error;
mod glob;
pub mod grant;
mod json;
mod policy;
mod principal;
mod scalar;
mod variables;

pub use arn::{ArnError, ResourceArn};
pub use context::{ContextValue, RequestContext, Resource};
pub use decision::{
    authorize, lockout_check, messages, AllowedBy, AuthorizationRequest, Decision, Denial,
    DenyReason, GrantCheck, IdentityEvaluation, IdentityPolicies,
};
pub use default_policy::{default_key_policy, default_key_policy_in_partition};
pub use error::{check_key_policy_size, PolicyError, MAX_KEY_POLICY_BYTES};
pub use grant::{
    grant_allows, EncryptionContext, GrantConstraints, GrantKeyType, GrantOperation, GrantView,
};
pub use policy::{Effect, Policy, PolicyEvaluation, PolicyKind, PolicyVersion};
pub use principal::{AnyPrincipalExists, Caller, CallerKind, PrincipalDirectory, PrincipalMatch};
