//! Grants, the pure part: which operations a grant may list for a key type, whether a grant
//! covers a request (grantee, operation, encryption context constraints), the rule for grants
//! created through a grant, and who may retire a grant.
//!
//! Storing grants, indexing them by key and grantee, tokens and quotas are the caller's.

use std::collections::BTreeMap;

use crate::arn::{is_account_id, split_arn};
use crate::decision::GrantCheck;
use crate::glob::eq_ignore_case;
use crate::principal::Caller;

/// An encryption context as the service keeps it.
pub type EncryptionContext = BTreeMap<String, String>;

/// The grant operations (the `GrantOperation` enumeration of the API model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum GrantOperation {
    /// `Decrypt`.
    Decrypt,
    /// `Encrypt`.
    Encrypt,
    /// `GenerateDataKey`.
    GenerateDataKey,
    /// `GenerateDataKeyWithoutPlaintext`.
    GenerateDataKeyWithoutPlaintext,
    /// `ReEncryptFrom`.
    ReEncryptFrom,
    /// `ReEncryptTo`.
    ReEncryptTo,
    /// `Sign`.
    Sign,
    /// `Verify`.
    Verify,
    /// `GetPublicKey`.
    GetPublicKey,
    /// `CreateGrant`.
    CreateGrant,
    /// `RetireGrant`.
    RetireGrant,
    /// `DescribeKey`.
    DescribeKey,
    /// `GenerateDataKeyPair`.
    GenerateDataKeyPair,
    /// `GenerateDataKeyPairWithoutPlaintext`.
    GenerateDataKeyPairWithoutPlaintext,
    /// `GenerateMac`.
    GenerateMac,
    /// `VerifyMac`.
    VerifyMac,
    /// `DeriveSharedSecret`.
    DeriveSharedSecret,
}

impl GrantOperation {
    /// All 17 grant operations, in the API model's order.
    pub const ALL: [GrantOperation; 17] = [
        GrantOperation::Decrypt,
        GrantOperation::Encrypt,
        GrantOperation::GenerateDataKey,
        GrantOperation::GenerateDataKeyWithoutPlaintext,
        GrantOperation::ReEncryptFrom,
        GrantOperation::ReEncryptTo,
        GrantOperation::Sign,
        GrantOperation::Verify,
        GrantOperation::GetPublicKey,
        GrantOperation::CreateGrant,
        GrantOperation::RetireGrant,
        GrantOperation::DescribeKey,
        GrantOperation::GenerateDataKeyPair,
        GrantOperation::GenerateDataKeyPairWithoutPlaintext,
        GrantOperation::GenerateMac,
        GrantOperation::VerifyMac,
        GrantOperation::DeriveSharedSecret,
    ];

    /// The wire name (`"ReEncryptFrom"`).
    pub fn as_str(self) -> &'static str {
        match self {
            GrantOperation::Decrypt => "Decrypt",
            GrantOperation::Encrypt => "Encrypt",
            GrantOperation::GenerateDataKey => "GenerateDataKey",
            GrantOperation::GenerateDataKeyWithoutPlaintext => "GenerateDataKeyWithoutPlaintext",
            GrantOperation::ReEncryptFrom => "ReEncryptFrom",
            GrantOperation::ReEncryptTo => "ReEncryptTo",
            GrantOperation::Sign => "Sign",
            GrantOperation::Verify => "Verify",
            GrantOperation::GetPublicKey => "GetPublicKey",
            GrantOperation::CreateGrant => "CreateGrant",
            GrantOperation::RetireGrant => "RetireGrant",
            GrantOperation::DescribeKey => "DescribeKey",
            GrantOperation::GenerateDataKeyPair => "GenerateDataKeyPair",
            GrantOperation::GenerateDataKeyPairWithoutPlaintext => {
                "GenerateDataKeyPairWithoutPlaintext"
            }
            GrantOperation::GenerateMac => "GenerateMac",
            GrantOperation::VerifyMac => "VerifyMac",
            GrantOperation::DeriveSharedSecret => "DeriveSharedSecret",
        }
    }

    /// Parses a wire name (exact spelling).
    pub fn parse(name: &str) -> Option<GrantOperation> {
        GrantOperation::ALL
            .into_iter()
            .find(|op| op.as_str() == name)
    }

    /// Operations that take an encryption context: the only ones grant constraints apply to.
    pub fn takes_encryption_context(self) -> bool {
        matches!(
            self,
            GrantOperation::Decrypt
                | GrantOperation::Encrypt
                | GrantOperation::GenerateDataKey
                | GrantOperation::GenerateDataKeyWithoutPlaintext
                | GrantOperation::ReEncryptFrom
                | GrantOperation::ReEncryptTo
                | GrantOperation::GenerateDataKeyPair
                | GrantOperation::GenerateDataKeyPairWithoutPlaintext
        )
    }
}

/// Key types as far as grants care (reference §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GrantKeyType {
    /// `SYMMETRIC_DEFAULT`, `ENCRYPT_DECRYPT`.
    SymmetricEncryption,
    /// RSA keys with `ENCRYPT_DECRYPT`.
    AsymmetricEncryptDecrypt,
    /// RSA, ECC and SM2 keys with `SIGN_VERIFY`.
    AsymmetricSignVerify,
    /// ECC keys with `KEY_AGREEMENT`.
    AsymmetricKeyAgreement,
    /// HMAC keys (`GENERATE_VERIFY_MAC`).
    Hmac,
}

impl GrantKeyType {
    /// The grant operations valid for this key type (`DescribeKey`, `CreateGrant` and
    /// `RetireGrant` are valid for all).
    pub fn operations(self) -> &'static [GrantOperation] {
        use GrantOperation as Op;
        match self {
            GrantKeyType::SymmetricEncryption => &[
                Op::Encrypt,
                Op::Decrypt,
                Op::ReEncryptFrom,
                Op::ReEncryptTo,
                Op::GenerateDataKey,
                Op::GenerateDataKeyWithoutPlaintext,
                Op::GenerateDataKeyPair,
                Op::GenerateDataKeyPairWithoutPlaintext,
                Op::DescribeKey,
                Op::CreateGrant,
                Op::RetireGrant,
            ],
            GrantKeyType::AsymmetricEncryptDecrypt => &[
                Op::Encrypt,
                Op::Decrypt,
                Op::ReEncryptFrom,
                Op::ReEncryptTo,
                Op::GetPublicKey,
                Op::DescribeKey,
                Op::CreateGrant,
                Op::RetireGrant,
            ],
            GrantKeyType::AsymmetricSignVerify => &[
                Op::Sign,
                Op::Verify,
                Op::GetPublicKey,
                Op::DescribeKey,
                Op::CreateGrant,
                Op::RetireGrant,
            ],
            GrantKeyType::AsymmetricKeyAgreement => &[
                Op::DeriveSharedSecret,
                Op::GetPublicKey,
                Op::DescribeKey,
                Op::CreateGrant,
                Op::RetireGrant,
            ],
            GrantKeyType::Hmac => &[
                Op::GenerateMac,
                Op::VerifyMac,
                Op::DescribeKey,
                Op::CreateGrant,
                Op::RetireGrant,
            ],
        }
    }

    /// Whether grants on keys of this type may carry constraints (symmetric encryption only).
    pub fn allows_constraints(self) -> bool {
        self == GrantKeyType::SymmetricEncryption
    }
}

/// The constraints of a grant. Keys compare case-insensitively, values case-sensitively.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GrantConstraints<'a> {
    /// The request's context must have exactly these pairs.
    pub encryption_context_equals: Option<&'a EncryptionContext>,
    /// The request's context must have at least these pairs.
    pub encryption_context_subset: Option<&'a EncryptionContext>,
}

/// A grant as the authorisation rules see it (borrowed from the caller's store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantView<'a> {
    /// The grantee: an account root, user, role or assumed-role ARN.
    pub grantee_principal: &'a str,
    /// The retiring principal, if any.
    pub retiring_principal: Option<&'a str>,
    /// The operations the grant allows.
    pub operations: &'a [GrantOperation],
    /// The constraints.
    pub constraints: GrantConstraints<'a>,
}

/// How a principal named by a grant matches the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GranteeMatch {
    /// Not the caller.
    No,
    /// The caller's ARN, the role of the caller's session, or (for the root user) its account.
    Caller,
    /// The caller's account root: applies only with identity-policy delegation.
    Account,
}

/// How `principal` (a grant's grantee or retiring principal) matches `caller`.
pub fn principal_match(principal: &str, caller: &Caller) -> GranteeMatch {
    if principal == caller.arn() || caller.role_arn() == Some(principal) {
        return GranteeMatch::Caller;
    }
    let account = if is_account_id(principal) {
        Some(principal)
    } else {
        split_arn(principal)
            .filter(|p| p.service == "iam" && p.resource == "root")
            .map(|p| p.account)
    };
    match account {
        Some(a) if a == caller.account() && caller.is_root() => GranteeMatch::Caller,
        Some(a) if a == caller.account() => GranteeMatch::Account,
        _ => GranteeMatch::No,
    }
}

fn has_pair(context: &EncryptionContext, key: &str, value: &str) -> bool {
    context
        .iter()
        .any(|(k, v)| v == value && eq_ignore_case(k, key))
}

/// Every pair of `required` is in `context`.
fn contains_all(context: &EncryptionContext, required: &EncryptionContext) -> bool {
    required.iter().all(|(k, v)| has_pair(context, k, v))
}

/// Same pairs both ways (keys case-insensitive).
fn same_pairs(a: &EncryptionContext, b: &EncryptionContext) -> bool {
    contains_all(a, b) && contains_all(b, a)
}

impl GrantConstraints<'_> {
    /// Whether a request's encryption context (absent = empty) satisfies the constraints.
    pub fn hold_for(&self, context: Option<&EncryptionContext>) -> bool {
        let empty = EncryptionContext::new();
        let context = context.unwrap_or(&empty);
        self.encryption_context_equals
            .is_none_or(|equals| same_pairs(context, equals))
            && self
                .encryption_context_subset
                .is_none_or(|subset| contains_all(context, subset))
    }

    /// Whether every context these constraints accept is accepted by `parent` too.
    pub fn at_least_as_strict_as(&self, parent: &GrantConstraints<'_>) -> bool {
        let equals_ok = parent.encryption_context_equals.is_none_or(|pe| {
            self.encryption_context_equals
                .is_some_and(|ce| same_pairs(ce, pe))
        });
        let subset_ok = parent.encryption_context_subset.is_none_or(|ps| {
            ps.is_empty()
                || self
                    .encryption_context_equals
                    .is_some_and(|ce| contains_all(ce, ps))
                || self
                    .encryption_context_subset
                    .is_some_and(|cs| contains_all(cs, ps))
        });
        equals_ok && subset_ok
    }
}

impl GrantView<'_> {
    /// Whether the grant lists `operation` and its constraints hold for `encryption_context`
    /// (constraints apply only to operations that take an encryption context; `CreateGrant`
    /// through a grant is checked by [`GrantView::allows_child_grant`]).
    pub fn covers(
        &self,
        operation: GrantOperation,
        encryption_context: Option<&EncryptionContext>,
    ) -> bool {
        self.operations.contains(&operation)
            && (!operation.takes_encryption_context()
                || self.constraints.hold_for(encryption_context))
    }

    /// The grant check for a request by `caller` (feed it to
    /// [`AuthorizationRequest::grant`](crate::AuthorizationRequest::grant)).
    pub fn check(
        &self,
        caller: &Caller,
        operation: GrantOperation,
        encryption_context: Option<&EncryptionContext>,
    ) -> GrantCheck {
        if !self.covers(operation, encryption_context) {
            return GrantCheck::NoGrant;
        }
        match principal_match(self.grantee_principal, caller) {
            GranteeMatch::Caller => GrantCheck::Allows,
            GranteeMatch::Account => GrantCheck::AllowsIfIdentityAllows,
            GranteeMatch::No => GrantCheck::NoGrant,
        }
    }

    /// Whether a grant with `operations` and `constraints`, created by the grantee through this
    /// grant, is allowed: this grant includes `CreateGrant`, the child lists a subset of this
    /// grant's operations, and its constraints are at least as strict (a Subset may gain pairs
    /// or become an Equals; an Equals stays the same Equals).
    pub fn allows_child_grant(
        &self,
        operations: &[GrantOperation],
        constraints: &GrantConstraints<'_>,
    ) -> bool {
        self.operations.contains(&GrantOperation::CreateGrant)
            && operations.iter().all(|op| self.operations.contains(op))
            && constraints.at_least_as_strict_as(&self.constraints)
    }
}

/// `grant_allows` of the design: does `grant` allow `caller` to perform `operation` with
/// `encryption_context`? `account_delegation` says whether the caller's identity policies
/// allow the operation on the key; it matters only when the grantee is the caller's account.
pub fn grant_allows(
    grant: &GrantView<'_>,
    caller: &Caller,
    operation: GrantOperation,
    encryption_context: Option<&EncryptionContext>,
    account_delegation: bool,
) -> bool {
    match grant.check(caller, operation, encryption_context) {
        GrantCheck::Allows => true,
        GrantCheck::AllowsIfIdentityAllows => account_delegation,
        GrantCheck::NoGrant => false,
    }
}

/// Who may retire a grant (reference §6.5): its retiring principal; its grantee when the grant
/// lists `RetireGrant`; and the account that created the grant (`issuing_account`). For
/// principals named through their account (root ARNs), and for the issuing account's principals
/// other than root, `identity_allows_retire` (an identity policy allows `kms:RetireGrant`) must
/// hold too.
pub fn retire_allowed(
    grant: &GrantView<'_>,
    caller: &Caller,
    issuing_account: &str,
    identity_allows_retire: bool,
) -> bool {
    let ok = |m: GranteeMatch| match m {
        GranteeMatch::Caller => true,
        GranteeMatch::Account => identity_allows_retire,
        GranteeMatch::No => false,
    };
    if grant
        .retiring_principal
        .is_some_and(|p| ok(principal_match(p, caller)))
    {
        return true;
    }
    if grant.operations.contains(&GrantOperation::RetireGrant)
        && ok(principal_match(grant.grantee_principal, caller))
    {
        return true;
    }
    caller.account() == issuing_account && (caller.is_root() || identity_allows_retire)
}
