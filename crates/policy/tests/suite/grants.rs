//! Grants: the operation list and key-type table, constraint matching, grantee matching, the
//! decision with a grant (reference §9 row 6), grants created through grants, retiring.

use std::collections::BTreeSet;

use kms_policy::grant::{principal_match, retire_allowed, GranteeMatch};
use kms_policy::{
    authorize, grant_allows, AllowedBy, AuthorizationRequest, DenyReason, EncryptionContext,
    GrantCheck, GrantConstraints, GrantKeyType, GrantOperation, GrantView,
};

use crate::common::{self, caller, context, Ctx, KEY};

use GrantOperation as Op;

fn ec(pairs: &[(&str, &str)]) -> EncryptionContext {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const WORKER_ROLE: &str = "arn:aws:iam::111122223333:role/worker";
const WORKER: &str = "arn:aws:iam::111122223333:role/worker#job-7";
const ALICE: &str = "arn:aws:iam::111122223333:user/alice";

#[test]
fn seventeen_operations() {
    let all: BTreeSet<_> = Op::ALL.iter().collect();
    assert_eq!(all.len(), 17);
    for op in Op::ALL {
        assert_eq!(Op::parse(op.as_str()), Some(op));
    }
    assert_eq!(Op::parse("decrypt"), None);
    assert_eq!(Op::parse("ReEncrypt"), None);
    assert_eq!(Op::parse("ScheduleKeyDeletion"), None);
    let with_context: Vec<_> = Op::ALL
        .into_iter()
        .filter(|op| op.takes_encryption_context())
        .map(Op::as_str)
        .collect();
    assert_eq!(
        with_context,
        [
            "Decrypt",
            "Encrypt",
            "GenerateDataKey",
            "GenerateDataKeyWithoutPlaintext",
            "ReEncryptFrom",
            "ReEncryptTo",
            "GenerateDataKeyPair",
            "GenerateDataKeyPairWithoutPlaintext"
        ]
    );
}

#[test]
fn operations_by_key_type() {
    let names =
        |t: GrantKeyType| -> BTreeSet<&str> { t.operations().iter().map(|o| o.as_str()).collect() };
    let set = |v: &[&'static str]| -> BTreeSet<&'static str> { v.iter().copied().collect() };
    let common_ops = ["DescribeKey", "CreateGrant", "RetireGrant"];
    let with_common = |v: &[&'static str]| {
        let mut s = set(v);
        s.extend(common_ops);
        s
    };
    assert_eq!(
        names(GrantKeyType::SymmetricEncryption),
        with_common(&[
            "Encrypt",
            "Decrypt",
            "ReEncryptFrom",
            "ReEncryptTo",
            "GenerateDataKey",
            "GenerateDataKeyWithoutPlaintext",
            "GenerateDataKeyPair",
            "GenerateDataKeyPairWithoutPlaintext"
        ])
    );
    assert_eq!(
        names(GrantKeyType::AsymmetricEncryptDecrypt),
        with_common(&[
            "Encrypt",
            "Decrypt",
            "ReEncryptFrom",
            "ReEncryptTo",
            "GetPublicKey"
        ])
    );
    assert_eq!(
        names(GrantKeyType::AsymmetricSignVerify),
        with_common(&["Sign", "Verify", "GetPublicKey"])
    );
    assert_eq!(
        names(GrantKeyType::AsymmetricKeyAgreement),
        with_common(&["DeriveSharedSecret", "GetPublicKey"])
    );
    assert_eq!(
        names(GrantKeyType::Hmac),
        with_common(&["GenerateMac", "VerifyMac"])
    );
    // Every grant operation is valid for some key type.
    let types = [
        GrantKeyType::SymmetricEncryption,
        GrantKeyType::AsymmetricEncryptDecrypt,
        GrantKeyType::AsymmetricSignVerify,
        GrantKeyType::AsymmetricKeyAgreement,
        GrantKeyType::Hmac,
    ];
    for op in Op::ALL {
        assert!(types.iter().any(|t| t.operations().contains(&op)), "{op:?}");
    }
    assert!(GrantKeyType::SymmetricEncryption.allows_constraints());
    assert!(!GrantKeyType::Hmac.allows_constraints());
    assert!(!GrantKeyType::AsymmetricSignVerify.allows_constraints());
}

#[test]
fn constraints() {
    let it = ec(&[("Dept", "IT")]);
    let two = ec(&[("Dept", "IT"), ("Project", "Alpha")]);
    let empty = ec(&[]);
    let subset = GrantConstraints {
        encryption_context_subset: Some(&it),
        ..Default::default()
    };
    let equals = GrantConstraints {
        encryption_context_equals: Some(&two),
        ..Default::default()
    };
    let both = GrantConstraints {
        encryption_context_equals: Some(&two),
        encryption_context_subset: Some(&it),
    };
    let cases: Vec<(&str, GrantConstraints, Option<EncryptionContext>, bool)> = vec![
        ("subset: exact", subset, Some(ec(&[("Dept", "IT")])), true),
        (
            "subset: key case-insensitive, extra pairs",
            subset,
            Some(ec(&[("dept", "IT"), ("x", "1")])),
            true,
        ),
        (
            "subset: value case-sensitive",
            subset,
            Some(ec(&[("Dept", "it")])),
            false,
        ),
        (
            "subset: missing",
            subset,
            Some(ec(&[("Other", "IT")])),
            false,
        ),
        ("subset: no context", subset, None, false),
        (
            "equals: same pairs, any order, key case",
            equals,
            Some(ec(&[("PROJECT", "Alpha"), ("dept", "IT")])),
            true,
        ),
        (
            "equals: an extra pair",
            equals,
            Some(ec(&[("Dept", "IT"), ("Project", "Alpha"), ("x", "1")])),
            false,
        ),
        (
            "equals: a missing pair",
            equals,
            Some(ec(&[("Dept", "IT")])),
            false,
        ),
        (
            "equals: value case",
            equals,
            Some(ec(&[("Dept", "IT"), ("Project", "alpha")])),
            false,
        ),
        ("both", both, Some(two.clone()), true),
        (
            "both: only the subset",
            both,
            Some(ec(&[("Dept", "IT")])),
            false,
        ),
        ("none", GrantConstraints::default(), None, true),
        (
            "equals {} means no context",
            GrantConstraints {
                encryption_context_equals: Some(&empty),
                ..Default::default()
            },
            None,
            true,
        ),
        (
            "equals {} refuses a context",
            GrantConstraints {
                encryption_context_equals: Some(&empty),
                ..Default::default()
            },
            Some(ec(&[("a", "b")])),
            false,
        ),
    ];
    for (name, c, context, want) in cases {
        assert_eq!(c.hold_for(context.as_ref()), want, "{name}");
    }
}

#[test]
fn covers_and_grantees() {
    let it = ec(&[("Dept", "IT")]);
    let ops = [Op::Decrypt, Op::DescribeKey, Op::ReEncryptFrom];
    let grant = GrantView {
        grantee_principal: WORKER_ROLE,
        retiring_principal: None,
        operations: &ops,
        constraints: GrantConstraints {
            encryption_context_subset: Some(&it),
            ..Default::default()
        },
    };
    // Constraints apply to operations with a context, not to DescribeKey.
    assert!(grant.covers(Op::Decrypt, Some(&it)));
    assert!(!grant.covers(Op::Decrypt, None));
    assert!(grant.covers(Op::DescribeKey, None));
    assert!(grant.covers(Op::ReEncryptFrom, Some(&it)));
    assert!(
        !grant.covers(Op::ReEncryptTo, Some(&it)),
        "the other half of ReEncrypt"
    );
    assert!(!grant.covers(Op::Encrypt, Some(&it)));

    let worker = caller(WORKER);
    assert_eq!(
        grant.check(&worker, Op::DescribeKey, None),
        GrantCheck::Allows
    );
    assert_eq!(
        grant.check(&caller(ALICE), Op::DescribeKey, None),
        GrantCheck::NoGrant
    );

    let m = |p: &str, c: &str| principal_match(p, &caller(c));
    assert_eq!(m(ALICE, ALICE), GranteeMatch::Caller);
    assert_eq!(
        m("arn:aws:iam::111122223333:user/bob", ALICE),
        GranteeMatch::No
    );
    assert_eq!(
        m(WORKER_ROLE, WORKER),
        GranteeMatch::Caller,
        "a session of the grantee role"
    );
    assert_eq!(
        m(
            "arn:aws:sts::111122223333:assumed-role/worker/job-7",
            WORKER
        ),
        GranteeMatch::Caller,
        "the session ARN itself"
    );
    assert_eq!(
        m(
            "arn:aws:sts::111122223333:assumed-role/worker/job-8",
            WORKER
        ),
        GranteeMatch::No
    );
    assert_eq!(
        m("arn:aws:iam::111122223333:root", ALICE),
        GranteeMatch::Account
    );
    assert_eq!(m("111122223333", WORKER), GranteeMatch::Account);
    assert_eq!(
        m(
            "arn:aws:iam::111122223333:root",
            "arn:aws:iam::111122223333:root"
        ),
        GranteeMatch::Caller
    );
    assert_eq!(m("arn:aws:iam::444455556666:root", ALICE), GranteeMatch::No);
    assert_eq!(
        m(
            "arn:aws:iam::111122223333:user/alice",
            "arn:aws:iam::444455556666:user/alice"
        ),
        GranteeMatch::No
    );

    let account_grant = GrantView {
        grantee_principal: "arn:aws:iam::111122223333:root",
        retiring_principal: None,
        operations: &ops,
        constraints: GrantConstraints::default(),
    };
    let alice = caller(ALICE);
    assert_eq!(
        account_grant.check(&alice, Op::Decrypt, None),
        GrantCheck::AllowsIfIdentityAllows
    );
    assert!(!grant_allows(
        &account_grant,
        &alice,
        Op::Decrypt,
        None,
        false
    ));
    assert!(grant_allows(
        &account_grant,
        &alice,
        Op::Decrypt,
        None,
        true
    ));
    assert!(!grant_allows(
        &account_grant,
        &alice,
        Op::Encrypt,
        None,
        true
    ));
    assert!(grant_allows(&grant, &worker, Op::Decrypt, Some(&it), false));
}

/// Reference §9 row 6: a grant to role/worker with a Subset constraint, a key policy that gives
/// the worker nothing.
#[test]
fn reference_row_6() {
    let dept = ec(&[("Dept", "IT")]);
    let ops = [Op::Decrypt];
    let grant = GrantView {
        grantee_principal: WORKER_ROLE,
        retiring_principal: None,
        operations: &ops,
        constraints: GrantConstraints {
            encryption_context_subset: Some(&dept),
            ..Default::default()
        },
    };
    let key_policy = common::key_policy(common::ROOT_A);
    let decide = |pairs: &'static [(&'static str, &'static str)]| {
        let request_ec = ec(pairs);
        let c = context(WORKER, "kms:Decrypt", KEY, &[Ctx::Ec(pairs)]);
        let check = grant.check(c.caller(), Op::Decrypt, Some(&request_ec));
        authorize(
            &AuthorizationRequest::new(&c)
                .resource_policy(&key_policy)
                .cross_account_capable(true)
                .grant(check),
        )
    };
    assert_eq!(
        decide(&[("dept", "IT"), ("x", "1")]),
        kms_policy::Decision::Allow(AllowedBy::Grant)
    );
    let denied = decide(&[("Dept", "it")]);
    assert_eq!(
        denied.denial().map(|d| d.reason),
        Some(DenyReason::NoResourcePolicyAllows)
    );
}

#[test]
fn grants_created_through_a_grant() {
    let a = ec(&[("a", "1")]);
    let a_upper = ec(&[("A", "1")]);
    let ab = ec(&[("a", "1"), ("b", "2")]);
    let empty = ec(&[]);
    let parent_ops = [Op::Encrypt, Op::Decrypt, Op::CreateGrant];
    let parent = |constraints| GrantView {
        grantee_principal: ALICE,
        retiring_principal: None,
        operations: &parent_ops,
        constraints,
    };
    let none = GrantConstraints::default();
    let subset = |e| GrantConstraints {
        encryption_context_subset: Some(e),
        ..Default::default()
    };
    let equals = |e| GrantConstraints {
        encryption_context_equals: Some(e),
        ..Default::default()
    };

    // Operations: a subset of the parent's, and the parent must include CreateGrant.
    assert!(parent(none).allows_child_grant(&[Op::Decrypt], &none));
    assert!(parent(none).allows_child_grant(&[Op::Decrypt, Op::CreateGrant], &none));
    assert!(!parent(none).allows_child_grant(&[Op::Decrypt, Op::ReEncryptTo], &none));
    let no_create = [Op::Decrypt];
    let plain = GrantView {
        operations: &no_create,
        ..parent(none)
    };
    assert!(!plain.allows_child_grant(&[Op::Decrypt], &none));

    // Constraints at least as strict.
    let table: Vec<(&str, GrantConstraints, GrantConstraints, bool)> = vec![
        ("no parent constraint", none, subset(&ab), true),
        ("subset may gain pairs", subset(&a), subset(&ab), true),
        (
            "subset may stay the same (key case aside)",
            subset(&a),
            subset(&a_upper),
            true,
        ),
        ("subset may become equals", subset(&a), equals(&ab), true),
        ("subset may not be dropped", subset(&a), none, false),
        ("subset may not lose pairs", subset(&ab), subset(&a), false),
        ("subset {} allows anything", subset(&empty), none, true),
        (
            "equals stays the same equals",
            equals(&a),
            equals(&a_upper),
            true,
        ),
        (
            "equals may not become subset",
            equals(&a),
            subset(&a),
            false,
        ),
        ("equals may not change", equals(&a), equals(&ab), false),
        ("equals may not be dropped", equals(&a), none, false),
    ];
    for (name, parent_constraints, child, want) in table {
        assert_eq!(
            parent(parent_constraints).allows_child_grant(&[Op::Decrypt], &child),
            want,
            "{name}"
        );
    }
}

#[test]
fn retiring() {
    let with_retire = [Op::Decrypt, Op::RetireGrant];
    let without = [Op::Decrypt];
    let grant = |ops, retiring| GrantView {
        grantee_principal: WORKER_ROLE,
        retiring_principal: retiring,
        operations: ops,
        constraints: GrantConstraints::default(),
    };
    let alice = caller(ALICE);
    let worker = caller(WORKER);
    let bob_b = caller("arn:aws:iam::444455556666:user/bob");
    let root_a = caller("arn:aws:iam::111122223333:root");
    // The retiring principal, in any account.
    assert!(retire_allowed(
        &grant(&without, Some("arn:aws:iam::444455556666:user/bob")),
        &bob_b,
        "111122223333",
        false
    ));
    // The grantee only if the grant lists RetireGrant.
    assert!(retire_allowed(
        &grant(&with_retire, None),
        &worker,
        "999999999999",
        false
    ));
    assert!(!retire_allowed(
        &grant(&without, None),
        &worker,
        "999999999999",
        false
    ));
    // The issuing account: its root, or its principals with an identity allow.
    assert!(retire_allowed(
        &grant(&without, None),
        &root_a,
        "111122223333",
        false
    ));
    assert!(!retire_allowed(
        &grant(&without, None),
        &alice,
        "111122223333",
        false
    ));
    assert!(retire_allowed(
        &grant(&without, None),
        &alice,
        "111122223333",
        true
    ));
    // A retiring account principal delegates to identity policies.
    assert!(!retire_allowed(
        &grant(&without, Some("444455556666")),
        &bob_b,
        "111122223333",
        false
    ));
    assert!(retire_allowed(
        &grant(&without, Some("444455556666")),
        &bob_b,
        "111122223333",
        true
    ));
    assert!(!retire_allowed(
        &grant(&without, None),
        &bob_b,
        "111122223333",
        true
    ));
}
