//! The one error type of the crate: why a policy document was refused.
//!
//! Every variant's `Display` is the message a KMS-compatible server returns to the client. Where
//! AWS's text is known (the reference cites real responses) the message is that text, byte for
//! byte; where it is not, the message names the element and says what is wrong with it.

/// Why a policy document was refused, or (for [`PolicyError::WouldLockOut`]) why a key policy
/// change was refused by the lockout safety check.
///
/// [`PolicyError::TooLarge`] maps to `LimitExceededException`; every other variant maps to
/// `MalformedPolicyDocumentException` (see [`PolicyError::is_size_limit`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[allow(missing_docs)] // Fields name what they hold: the element `path`, the offending `value`.
pub enum PolicyError {
    /// The document is larger than the caller's limit (32,768 bytes for key policies).
    #[error("The policy document is {size} bytes; the maximum is {limit} bytes.")]
    TooLarge { size: usize, limit: usize },

    /// The text is not JSON (or repeats a member name, which JSON parsers disagree about).
    #[error("The policy document is not valid JSON: {detail}")]
    InvalidJson { detail: String },

    /// An element has the wrong JSON type.
    #[error("{path} must be {expected}, not {found}.")]
    WrongType {
        path: String,
        expected: &'static str,
        found: &'static str,
    },

    /// An element name that the policy grammar does not define (names are case-sensitive).
    #[error("{path} contains the unknown element \"{element}\".")]
    UnknownElement { path: String, element: String },

    /// A key policy without `Version`.
    #[error("The policy document has no Version element; a key policy must specify \"Version\": \"2012-10-17\".")]
    MissingVersion,

    /// `Version` is neither `2012-10-17` nor `2008-10-17`.
    #[error(
        "The policy Version \"{version}\" is not supported; use \"2012-10-17\" or \"2008-10-17\"."
    )]
    UnsupportedVersion { version: String },

    /// No `Statement`, or an empty array of statements.
    #[error("The policy document must contain at least one statement.")]
    NoStatements,

    /// A statement without `Effect`.
    #[error("{path} has no Effect element; it must be \"Allow\" or \"Deny\".")]
    MissingEffect { path: String },

    /// `Effect` is not exactly `Allow` or `Deny`.
    #[error("{path}.Effect is \"{value}\"; it must be \"Allow\" or \"Deny\".")]
    InvalidEffect { path: String, value: String },

    /// A `Sid` with characters IAM does not allow (identity, session and trust policies only;
    /// key policy Sids may contain spaces and punctuation).
    #[error("Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the regular expression [0-9A-Za-z]*")]
    InvalidSid { sid: String },

    /// Two statements of an IAM policy (identity, session, trust) share a `Sid`.
    #[error("Statement IDs (SID) in a single policy must be unique.")]
    DuplicateSid { sid: String },

    /// A key or trust policy statement without `Principal` or `NotPrincipal`.
    #[error("Policy contains a statement with no principal.")]
    NoPrincipal,

    /// A principal that is malformed, of a kind that cannot be a principal (groups, partial
    /// wildcards), or that the [`PrincipalDirectory`](crate::PrincipalDirectory) does not know.
    #[error("Policy contains a statement with one or more invalid principals.")]
    InvalidPrincipals { principal: String },

    /// `Principal` or `NotPrincipal` in an identity or session policy.
    #[error("Policy document should not specify a principal.")]
    PrincipalNotAllowed,

    /// Both `Principal` and `NotPrincipal` in one statement.
    #[error(
        "{path} contains both Principal and NotPrincipal; a statement may have only one of them."
    )]
    PrincipalAndNotPrincipal { path: String },

    /// `NotPrincipal` where it is refused: in role trust policies, and with `Allow` in key policies.
    #[error("{path}: NotPrincipal is not supported {where_}.")]
    NotPrincipalNotSupported { path: String, where_: &'static str },

    /// A statement without `Action` or `NotAction` (or with an empty list).
    #[error("Policy statement must contain actions.")]
    NoAction,

    /// Both `Action` and `NotAction` in one statement.
    #[error("{path} contains both Action and NotAction; a statement may have only one of them.")]
    ActionAndNotAction { path: String },

    /// An action or condition key without a `service:` prefix.
    #[error("Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.")]
    MissingVendorPrefix { value: String },

    /// A statement without `Resource` or `NotResource` (or with an empty list).
    #[error("Policy statement must contain resources.")]
    NoResource,

    /// Both `Resource` and `NotResource` in one statement.
    #[error(
        "{path} contains both Resource and NotResource; a statement may have only one of them."
    )]
    ResourceAndNotResource { path: String },

    /// A key policy resource other than `"*"` (which means "this KMS key"), or `NotResource`.
    #[error(
        "{path} is \"{value}\"; in a key policy the only valid resource is \"*\" (this KMS key)."
    )]
    KeyPolicyResourceNotStar { path: String, value: String },

    /// An identity or session policy resource that is neither `"*"` nor an ARN.
    #[error("Resource {value} must be in ARN format or \"*\".")]
    InvalidResource { value: String },

    /// `Resource` or `NotResource` in a role trust policy (the resource is the role).
    #[error("{path}: a role trust policy must not contain Resource or NotResource; the resource is the role itself.")]
    ResourceNotAllowed { path: String },

    /// A condition key that only identity policies may use, in a key policy.
    #[error("These condition keys are not permitted in a key policy: aws:ResourceTag, kms:ResourceTag, kms:ResourceAliases")]
    ConditionKeyNotPermittedInKeyPolicy { key: String },

    /// `ForAllValues` with `kms:EncryptionContext:<key>` in a key policy.
    #[error("OverlyPermissiveCondition:EncryptionContext: Using the ForAllValues set operator with a single-valued condition key matches requests without the specified encryption context or with an unspecified encryption context. To fix, remove ForAllValues.")]
    OverlyPermissiveEncryptionContext { key: String },

    /// `ForAllValues` with `aws:RequestTag/<key>` in a key policy.
    #[error("OverlyPermissiveCondition:RequestTag: Using the ForAllValues set operator with a single-valued condition key matches requests without the specified tag or with an unspecified tag. To fix, remove ForAllValues.")]
    OverlyPermissiveRequestTag { key: String },

    /// A condition operator name that does not exist (names are case-sensitive), including
    /// `IfExists` or a set qualifier on `Null`.
    #[error("{path}: \"{operator}\" is not a condition operator.")]
    UnknownConditionOperator { path: String, operator: String },

    /// A condition value that the operator cannot use (a number that is not a number, a date
    /// that is not a date, a CIDR that is not a CIDR, ...).
    #[error("{path}: \"{value}\" is not {expected}.")]
    InvalidConditionValue {
        path: String,
        value: String,
        expected: &'static str,
    },

    /// A condition key with an empty list of values.
    #[error("{path} has no values; give at least one.")]
    EmptyConditionValues { path: String },

    /// The lockout safety check: the caller could not change the key policy under the new one.
    #[error("The new key policy will not allow you to update the key policy in the future.")]
    WouldLockOut,
}

impl PolicyError {
    /// True for [`PolicyError::TooLarge`], which AWS reports as `LimitExceededException`
    /// rather than `MalformedPolicyDocumentException`.
    pub fn is_size_limit(&self) -> bool {
        matches!(self, PolicyError::TooLarge { .. })
    }
}

/// Maximum size of a key policy document in bytes (not adjustable in AWS).
pub const MAX_KEY_POLICY_BYTES: usize = 32_768;

/// Checks a key policy's size against [`MAX_KEY_POLICY_BYTES`]. Parsing does not check sizes:
/// identity, trust and session policies have other limits, which are the caller's to enforce.
pub fn check_key_policy_size(text: &str) -> Result<(), PolicyError> {
    if text.len() > MAX_KEY_POLICY_BYTES {
        return Err(PolicyError::TooLarge {
            size: text.len(),
            limit: MAX_KEY_POLICY_BYTES,
        });
    }
    Ok(())
}
