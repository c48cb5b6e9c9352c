//! Table-driven cases: the worked examples of reference §9 (and its "also test" lines), then the
//! policy examples of the seeds (004, creating a key policy; 003, the condition key chapter).
//! Each row: policies, caller, action, resource, condition keys, expected decision.

use kms_policy::{
    authorize, default_key_policy, lockout_check, AllowedBy, AuthorizationRequest, Decision,
    DenyReason, GrantCheck, IdentityPolicies, Policy, PolicyError, PolicyKind, RequestContext,
    ResourceArn,
};

use crate::common::{self, context, doc, run, Ctx, Row, KEY, KEY_USE1, ROOT_A};

const ALICE: &str = "arn:aws:iam::111122223333:user/alice";
const BOB_B: &str = "arn:aws:iam::444455556666:user/bob";
const CAROL: &str = "arn:aws:iam::111122223333:user/carol";
const DAVE: &str = "arn:aws:iam::111122223333:user/dave";
const ADMIN: &str = "arn:aws:iam::111122223333:user/admin";
const ROOT: &str = "arn:aws:iam::111122223333:root";
const ROOT_B: &str = "arn:aws:iam::444455556666:root";
const APP_S1: &str = "arn:aws:iam::111122223333:role/app#s1";
const EXAMPLE_ROLE: &str = "arn:aws:iam::111122223333:role/ExampleRole#s";
const APP_ROLE: &str = "arn:aws:iam::111122223333:role/RoleForExampleApp#s";
const ADMIN_ROLE: &str = "arn:aws:iam::111122223333:role/ExampleAdminRole#s";
const USER_ROLE: &str = "arn:aws:iam::111122223333:role/ExampleUserRole#s";

fn default_policy() -> Policy {
    common::parse(PolicyKind::Key, &default_key_policy(common::A))
}

fn with_default(mut row: Row) -> Row {
    row.key_policy = Some(default_policy());
    row
}

/// Reference §9, rows 1-5 and 7 (row 6 is in `grants`, row 8 below), and the "also test" lines.
#[test]
fn reference_section_9() {
    let key_4 = format!(
        r#"{ROOT_A}, {{"Effect": "Allow", "Principal": {{"AWS": "arn:aws:iam::444455556666:root"}},
        "Action": ["kms:Decrypt", "kms:DescribeKey"], "Resource": "*"}}"#
    );
    let bob_identity =
        format!(r#"{{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "{KEY}"}}"#);
    let deny_restricted = format!(
        r#"{ROOT_A}, {{"Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
        "Condition": {{"StringEquals": {{"kms:EncryptionContext:stage": "restricted"}}}}}}"#
    );
    let dave_grants = r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/dave"},
        "Action": "kms:CreateGrant", "Resource": "*",
        "Condition": {"ForAllValues:StringEquals": {"kms:GrantOperations": ["Encrypt", "ReEncryptTo"]}}}"#;
    let app_encrypt = r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/app"},
        "Action": "kms:Encrypt", "Resource": "*"}"#;
    let alice_decrypt = r#"{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "arn:aws:kms:us-east-1:111122223333:key/*"}"#;
    let rows = vec![
        with_default(Row::new("1 default policy, no identity policy", ALICE, "kms:Decrypt"))
            .on(KEY_USE1),
        with_default(Row::new("2 default policy + identity allow", ALICE, "kms:Decrypt"))
            .on(KEY_USE1)
            .identity(alice_decrypt)
            .allow(AllowedBy::ResourceAndIdentityPolicies),
        with_default(Row::new("2' identity allow for another region's keys", ALICE, "kms:Decrypt"))
            .identity(alice_decrypt),
        Row::new("3 role ARN covers its sessions", APP_S1, "kms:Encrypt")
            .key(app_encrypt)
            .allow(AllowedBy::ResourcePolicy),
        Row::new("3 Decrypt not in the key policy", APP_S1, "kms:Decrypt").key(app_encrypt),
        Row::new("3 identity allow without delegation is useless", APP_S1, "kms:Decrypt")
            .key(app_encrypt)
            .identity(r#"{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#),
        Row::new("4 cross-account Decrypt, both sides allow", BOB_B, "kms:Decrypt")
            .key(&key_4)
            .identity(&bob_identity)
            .allow(AllowedBy::ResourceAndIdentityPolicies),
        Row::new("4 cross-account DescribeKey, B's identity policy lacks it", BOB_B, "kms:DescribeKey")
            .key(&key_4)
            .identity(&bob_identity)
            .deny_cross_account(),
        Row::new("4 ScheduleKeyDeletion is not cross-account", BOB_B, "kms:ScheduleKeyDeletion")
            .key(&format!(r#"{ROOT_A}, {{"Effect": "Allow", "Principal": {{"AWS": "444455556666"}}, "Action": "kms:*", "Resource": "*"}}"#))
            .identity(r#"{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#)
            .deny_cross_account(),
        Row::new("4 cross-account without identity policy", BOB_B, "kms:Decrypt")
            .key(&key_4)
            .deny_cross_account(),
        Row::new("4 root of B needs no identity policy", ROOT_B, "kms:Decrypt")
            .key(&key_4)
            .allow(AllowedBy::ResourcePolicy),
        with_default(Row::new("5 explicit deny in key policy beats identity kms:*", CAROL, "kms:Decrypt"))
            .key(&deny_restricted)
            .identity(r#"{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#)
            .with(&[Ctx::Ec(&[("Stage", "restricted")])])
            .deny(DenyReason::ExplicitDenyInResourcePolicy),
        Row::new("5 value case matters", CAROL, "kms:Decrypt")
            .key(&deny_restricted)
            .identity(r#"{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#)
            .with(&[Ctx::Ec(&[("Stage", "Restricted")])])
            .allow(AllowedBy::ResourceAndIdentityPolicies),
        Row::new("5 explicit deny beats a grant too", CAROL, "kms:Decrypt")
            .key(&deny_restricted)
            .with(&[Ctx::Ec(&[("STAGE", "restricted")])])
            .grant(GrantCheck::Allows)
            .deny(DenyReason::ExplicitDenyInResourcePolicy),
        Row::new("7 CreateGrant with an operation outside the set", DAVE, "kms:CreateGrant")
            .key(dave_grants)
            .with(&[Ctx::M("kms:GrantOperations", &["Encrypt", "Decrypt"])]),
        Row::new("7 CreateGrant within the set", DAVE, "kms:CreateGrant")
            .key(dave_grants)
            .with(&[Ctx::M("kms:GrantOperations", &["Encrypt"])])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("7 operation names are case-sensitive", DAVE, "kms:CreateGrant")
            .key(dave_grants)
            .with(&[Ctx::M("kms:GrantOperations", &["encrypt"])]),
        Row::new("also: ListKeys with an identity allow scoped to a key", ALICE, "kms:ListKeys")
            .on("*")
            .identity(&format!(r#"{{"Effect": "Allow", "Action": "kms:ListKeys", "Resource": "{KEY}"}}"#))
            .deny(DenyReason::NoIdentityPolicyAllows),
        Row::new("also: ListKeys with an identity allow on *", ALICE, "kms:ListKeys")
            .on("*")
            .identity(r#"{"Effect": "Allow", "Action": "kms:List*", "Resource": "*"}"#)
            .allow(AllowedBy::IdentityPolicy),
        Row::new("also: root may ListKeys without policies", ROOT, "kms:ListKeys")
            .on("*")
            .allow(AllowedBy::RootUser),
        Row::new("also: root is still subject to a guardrail deny", ROOT, "kms:CreateKey")
            .on("*")
            .guardrail(r#"{"Effect": "Deny", "Action": "kms:CreateKey", "Resource": "*"}"#)
            .deny(DenyReason::ExplicitDenyInGuardrailPolicy),
        Row::new("also: RequestAlias matches the alias name", ALICE, "kms:Decrypt")
            .key(r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"},
                "Action": "kms:Decrypt", "Resource": "*",
                "Condition": {"StringEquals": {"kms:RequestAlias": "alias/finance"}}}"#)
            .with(&[Ctx::S("kms:RequestAlias", "alias/finance")])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("also: RequestAlias absent when the key was named by ID", ALICE, "kms:Decrypt")
            .key(r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"},
                "Action": "kms:Decrypt", "Resource": "*",
                "Condition": {"StringEquals": {"kms:RequestAlias": "alias/finance"}}}"#),
        with_default(Row::new("root of the key's account by the root statement", ROOT, "kms:ScheduleKeyDeletion"))
            .allow(AllowedBy::ResourcePolicy),
        Row::new("root is locked out by a policy that does not name it", ROOT, "kms:PutKeyPolicy")
            .key(app_encrypt),
        with_default(Row::new("identity deny without delegation still denies", ALICE, "kms:Decrypt"))
            .identity(r#"{"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"}"#)
            .grant(GrantCheck::Allows)
            .deny(DenyReason::ExplicitDenyInIdentityPolicy),
        Row::new("delegation is capped by the root statement's actions", ALICE, "kms:Decrypt")
            .key(r#"{"Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "kms:Encrypt", "Resource": "*"}"#)
            .identity(r#"{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#),
        Row::new("account ID principal equals the root ARN", ALICE, "kms:Encrypt")
            .key(r#"{"Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "kms:Encrypt", "Resource": "*"}"#)
            .identity(r#"{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#)
            .allow(AllowedBy::ResourceAndIdentityPolicies),
        Row::new("grant for a caller with no policy", ALICE, "kms:Decrypt")
            .key(ROOT_A)
            .grant(GrantCheck::Allows)
            .allow(AllowedBy::Grant),
        Row::new("account grant needs identity delegation (absent)", ALICE, "kms:Decrypt")
            .key(ROOT_A)
            .grant(GrantCheck::AllowsIfIdentityAllows),
        Row::new("account grant with identity delegation", ALICE, "kms:Decrypt")
            .key(r#"{"Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "kms:Encrypt", "Resource": "*"}"#)
            .identity(r#"{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}"#)
            .grant(GrantCheck::AllowsIfIdentityAllows)
            .allow(AllowedBy::Grant),
        Row::new("cross-account grant", BOB_B, "kms:Decrypt")
            .key(ROOT_A)
            .grant(GrantCheck::Allows)
            .allow(AllowedBy::Grant),
        Row::new("cross-account grant cannot reach a non-cross-account operation", BOB_B, "kms:DisableKey")
            .key(ROOT_A)
            .grant(GrantCheck::Allows)
            .deny_cross_account(),
        Row::new("session policy bounds a role-ARN key policy allow", APP_S1, "kms:Encrypt")
            .key(app_encrypt)
            .session(r#"{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}"#)
            .deny(DenyReason::NoSessionPolicyAllows),
        Row::new("session policy that allows keeps the role-ARN allow", APP_S1, "kms:Encrypt")
            .key(app_encrypt)
            .session(r#"{"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}"#)
            .allow(AllowedBy::ResourcePolicy),
        Row::new("a session ARN in the key policy is not bounded by session policies", APP_S1, "kms:Encrypt")
            .key(r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:sts::111122223333:assumed-role/app/s1"},
                "Action": "kms:Encrypt", "Resource": "*"}"#)
            .session(r#"{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}"#)
            .allow(AllowedBy::ResourcePolicy),
        Row::new("session ARN names only that session", "arn:aws:iam::111122223333:role/app#s2", "kms:Encrypt")
            .key(r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:sts::111122223333:assumed-role/app/s1"},
                "Action": "kms:Encrypt", "Resource": "*"}"#),
        Row::new("role identity policy intersected with session policy", APP_S1, "kms:Decrypt")
            .key(ROOT_A)
            .identity(r#"{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#)
            .session(r#"{"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}"#)
            .deny(DenyReason::NoSessionPolicyAllows),
        Row::new("role policies that allow nothing are named before the session policy", APP_S1, "kms:Decrypt")
            .key(ROOT_A)
            .identity(r#"{"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}"#)
            .session(r#"{"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}"#)
            .deny(DenyReason::NoResourcePolicyAllows),
        Row::new("a session policy that allows cannot stand in for the role's policies", APP_S1, "kms:Decrypt")
            .key(ROOT_A)
            .session(r#"{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#)
            .deny(DenyReason::NoResourcePolicyAllows),
        Row::new("a key policy that allows nothing is named before the session policy", APP_S1, "kms:Decrypt")
            .key(app_encrypt)
            .session(r#"{"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}"#)
            .deny(DenyReason::NoResourcePolicyAllows),
        Row::new("a grant to the role allows what the session policy does not", APP_S1, "kms:Decrypt")
            .key(ROOT_A)
            .session(r#"{"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}"#)
            .grant(GrantCheck::Allows)
            .allow(AllowedBy::Grant),
        Row::new("session policy deny", APP_S1, "kms:Encrypt")
            .key(app_encrypt)
            .session(r#"{"Effect": "Deny", "Action": "kms:*", "Resource": "*"}"#)
            .deny(DenyReason::ExplicitDenyInSessionPolicy),
        Row::new("a role policy deny is named before a session policy deny", APP_S1, "kms:Encrypt")
            .key(app_encrypt)
            .identity(r#"{"Effect": "Deny", "Action": "kms:Encrypt", "Resource": "*"}"#)
            .session(r#"{"Effect": "Deny", "Action": "kms:*", "Resource": "*"}"#)
            .deny(DenyReason::ExplicitDenyInIdentityPolicy),
        Row::new("a key policy deny is named before a session policy deny", APP_S1, "kms:Encrypt")
            .key(&format!(r#"{app_encrypt}, {{"Effect": "Deny", "Principal": "*", "Action": "kms:Encrypt", "Resource": "*"}}"#))
            .session(r#"{"Effect": "Deny", "Action": "kms:*", "Resource": "*"}"#)
            .deny(DenyReason::ExplicitDenyInResourcePolicy),
        Row::new("a session policy deny beats a session ARN in the key policy", APP_S1, "kms:Encrypt")
            .key(r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:sts::111122223333:assumed-role/app/s1"},
                "Action": "kms:Encrypt", "Resource": "*"}"#)
            .session(r#"{"Effect": "Deny", "Action": "kms:Encrypt", "Resource": "*"}"#)
            .deny(DenyReason::ExplicitDenyInSessionPolicy),
        Row::new("a session policy deny beats a grant", APP_S1, "kms:Decrypt")
            .key(ROOT_A)
            .session(r#"{"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"}"#)
            .grant(GrantCheck::Allows)
            .deny(DenyReason::ExplicitDenyInSessionPolicy),
        Row::new("CreateKey: the role allows, the session policy does not", APP_S1, "kms:CreateKey")
            .on("*")
            .identity(r#"{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#)
            .session(r#"{"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}"#)
            .deny(DenyReason::NoSessionPolicyAllows),
        Row::new("CreateKey: the role allows nothing", APP_S1, "kms:CreateKey")
            .on("*")
            .identity(r#"{"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}"#)
            .session(r#"{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#)
            .deny(DenyReason::NoIdentityPolicyAllows),
        Row::new("ListKeys: a session policy deny", APP_S1, "kms:ListKeys")
            .on("*")
            .identity(r#"{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#)
            .session(r#"{"Effect": "Deny", "Action": "kms:List*", "Resource": "*"}"#)
            .deny(DenyReason::ExplicitDenyInSessionPolicy),
        Row::new("ListKeys: role and session policy allow", APP_S1, "kms:ListKeys")
            .on("*")
            .identity(r#"{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#)
            .session(r#"{"Effect": "Allow", "Action": "kms:List*", "Resource": "*"}"#)
            .allow(AllowedBy::IdentityPolicy),
        Row::new("NotPrincipal deny leaves the listed user out", ALICE, "kms:Decrypt")
            .key(&format!(r#"{ROOT_A}, {{"Effect": "Deny", "NotPrincipal": {{"AWS": ["{ALICE}", "111122223333"]}},
                "Action": "kms:Decrypt", "Resource": "*"}}"#))
            .identity(r#"{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#)
            .allow(AllowedBy::ResourceAndIdentityPolicies),
        Row::new("NotPrincipal deny applies to everyone else", CAROL, "kms:Decrypt")
            .key(&format!(r#"{ROOT_A}, {{"Effect": "Deny", "NotPrincipal": {{"AWS": ["{ALICE}", "111122223333"]}},
                "Action": "kms:Decrypt", "Resource": "*"}}"#))
            .identity(r#"{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#)
            .deny(DenyReason::ExplicitDenyInResourcePolicy),
        Row::new("NotPrincipal without the account does not exclude the user", ALICE, "kms:Decrypt")
            .key(&format!(r#"{ROOT_A}, {{"Effect": "Deny", "NotPrincipal": {{"AWS": "{ALICE}"}},
                "Action": "kms:Decrypt", "Resource": "*"}}"#))
            .identity(r#"{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#)
            .deny(DenyReason::ExplicitDenyInResourcePolicy),
        Row::new("NotPrincipal must list session, role and account", APP_S1, "kms:Decrypt")
            .key(&format!(r#"{ROOT_A}, {{"Effect": "Deny", "NotPrincipal": {{"AWS": [
                "arn:aws:sts::111122223333:assumed-role/app/s1", "arn:aws:iam::111122223333:role/app"]}},
                "Action": "kms:Decrypt", "Resource": "*"}}"#))
            .identity(r#"{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#)
            .deny(DenyReason::ExplicitDenyInResourcePolicy),
        Row::new("NotPrincipal listing session, role and account", APP_S1, "kms:Decrypt")
            .key(&format!(r#"{ROOT_A}, {{"Effect": "Deny", "NotPrincipal": {{"AWS": [
                "arn:aws:sts::111122223333:assumed-role/app/s1", "arn:aws:iam::111122223333:role/app",
                "arn:aws:iam::111122223333:root"]}}, "Action": "kms:Decrypt", "Resource": "*"}}"#))
            .identity(r#"{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#)
            .allow(AllowedBy::ResourceAndIdentityPolicies),
        Row::new("a deny naming the account covers its users", ALICE, "kms:Decrypt")
            .key(&format!(r#"{ROOT_A}, {{"Effect": "Deny", "Principal": {{"AWS": "111122223333"}},
                "Action": "kms:Decrypt", "Resource": "*"}}"#))
            .identity(r#"{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#)
            .deny(DenyReason::ExplicitDenyInResourcePolicy),
        Row::new("service principals never match a local caller", ALICE, "kms:Decrypt")
            .key(r#"{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "kms:*", "Resource": "*"}"#),
        Row::new("\"*\" principal allows same-account callers directly", ALICE, "kms:Decrypt")
            .key(r#"{"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"}"#)
            .allow(AllowedBy::ResourcePolicy),
        Row::new("\"*\" principal still needs B's identity policy cross-account", BOB_B, "kms:Decrypt")
            .key(r#"{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*"}"#)
            .deny_cross_account(),
        Row::new("identity policy NotAction", ALICE, "kms:Decrypt")
            .key(ROOT_A)
            .identity(r#"{"Effect": "Allow", "NotAction": "kms:Schedule*", "Resource": "*"}"#)
            .allow(AllowedBy::ResourceAndIdentityPolicies),
        Row::new("identity policy NotAction excludes", ALICE, "kms:ScheduleKeyDeletion")
            .key(ROOT_A)
            .identity(r#"{"Effect": "Allow", "NotAction": "kms:Schedule*", "Resource": "*"}"#),
        Row::new("identity policy NotResource", ALICE, "kms:Decrypt")
            .key(ROOT_A)
            .identity(r#"{"Effect": "Allow", "Action": "kms:Decrypt", "NotResource": "arn:aws:kms:*:111122223333:key/1234abcd-*"}"#),
        Row::new("actions are case-insensitive", ALICE, "KMS:decrypt")
            .key(ROOT_A)
            .identity(r#"{"Effect": "Allow", "Action": "kms:DECRYPT", "Resource": "*"}"#)
            .allow(AllowedBy::ResourceAndIdentityPolicies),
        Row::new("resource variables: ${aws:PrincipalAccount}", ALICE, "kms:Decrypt")
            .key(ROOT_A)
            .identity(r#"{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "arn:aws:kms:*:${aws:PrincipalAccount}:key/*"}"#)
            .allow(AllowedBy::ResourceAndIdentityPolicies),
    ];
    run(&rows);
}

/// Reference §9 row 8 and §4: the lockout check, the bypass, and the condition key that
/// polices the bypass.
#[test]
fn reference_row_8_lockout() {
    let key = ResourceArn::parse(KEY).unwrap();
    let admin_all =
        common::identity_policy(r#"{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#);
    let identity = [&admin_all];
    let admin_identity = IdentityPolicies {
        principal_policies: &identity,
        session_policies: None,
    };
    let only_bob = common::key_policy(
        r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/bob"},
            "Action": "kms:*", "Resource": "*"}"#,
    );
    let put = context(ADMIN, "kms:PutKeyPolicy", KEY, &[]);
    let err = lockout_check(&put, &key, &only_bob, admin_identity, &[]).unwrap_err();
    assert_eq!(err, PolicyError::WouldLockOut);
    assert_eq!(
        err.to_string(),
        "The new key policy will not allow you to update the key policy in the future."
    );

    // The default policy (delegation to the account) passes because admin's identity policy
    // allows kms:PutKeyPolicy ...
    let default = default_policy();
    lockout_check(&put, &key, &default, admin_identity, &[]).unwrap();
    // ... and fails for a caller whose identity policy does not (the common trap).
    let encrypt_only =
        common::identity_policy(r#"{"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}"#);
    let encrypt_only = [&encrypt_only];
    let weak = IdentityPolicies {
        principal_policies: &encrypt_only,
        session_policies: None,
    };
    assert_eq!(
        lockout_check(&put, &key, &default, weak, &[]),
        Err(PolicyError::WouldLockOut)
    );
    // An explicit deny in the new policy counts.
    let self_deny = common::key_policy(&format!(
        r#"{ROOT_A}, {{"Effect": "Deny", "Principal": "*", "Action": "kms:Put*", "Resource": "*"}}"#
    ));
    assert_eq!(
        lockout_check(&put, &key, &self_deny, admin_identity, &[]),
        Err(PolicyError::WouldLockOut)
    );

    // With the bypass the call itself is authorised against the current policy ...
    let bypass = context(
        ADMIN,
        "kms:PutKeyPolicy",
        KEY,
        &[Ctx::B("kms:BypassPolicyLockoutSafetyCheck", true)],
    );
    let decision = authorize(
        &AuthorizationRequest::new(&bypass)
            .resource_policy(&default)
            .identity_policies(admin_identity),
    );
    assert_eq!(
        decision,
        Decision::Allow(AllowedBy::ResourceAndIdentityPolicies)
    );
    // ... unless a deny on kms:BypassPolicyLockoutSafetyCheck applies (seed 003 example).
    let no_bypass = common::identity_policy(
        r#"{"Effect": "Deny", "Action": ["kms:CreateKey", "kms:PutKeyPolicy"], "Resource": "*",
            "Condition": {"Bool": {"kms:BypassPolicyLockoutSafetyCheck": true}}}"#,
    );
    let with_deny = [&admin_all, &no_bypass];
    let denied = authorize(
        &AuthorizationRequest::new(&bypass)
            .resource_policy(&default)
            .identity_policies(IdentityPolicies {
                principal_policies: &with_deny,
                session_policies: None,
            }),
    );
    assert_eq!(
        denied.denial().map(|d| d.reason),
        Some(DenyReason::ExplicitDenyInIdentityPolicy)
    );
    assert_eq!(
        denied.denial().unwrap().message(&bypass),
        format!("User: {ADMIN} is not authorized to perform: kms:PutKeyPolicy on resource: {KEY} with an explicit deny in an identity-based policy")
    );
    // Afterwards (only_bob in place) admin has lost access.
    let after = authorize(
        &AuthorizationRequest::new(&put)
            .resource_policy(&only_bob)
            .identity_policies(admin_identity),
    );
    assert!(!after.is_allowed());
}

/// The exact AccessDenied texts for the reference rows (§7.1).
#[test]
fn reference_messages() {
    let default = default_policy();
    let c = context(ALICE, "kms:Decrypt", KEY_USE1, &[]);
    let d = authorize(&AuthorizationRequest::new(&c).resource_policy(&default));
    assert_eq!(
        d.denial().unwrap().message(&c),
        "User: arn:aws:iam::111122223333:user/alice is not authorized to perform: kms:Decrypt on resource: \
         arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab because no \
         resource-based policy allows the kms:Decrypt action"
    );

    let c = context(ALICE, "kms:CreateKey", "*", &[]);
    let d = authorize(&AuthorizationRequest::new(&c));
    assert_eq!(
        d.denial().unwrap().message(&c),
        "User: arn:aws:iam::111122223333:user/alice is not authorized to perform: kms:CreateKey on resource: * \
         because no identity-based policy allows the kms:CreateKey action"
    );

    let deny = common::key_policy(&format!(
        r#"{ROOT_A}, {{"Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"}}"#
    ));
    let s = context(APP_S1, "kms:Decrypt", KEY, &[]);
    let d = authorize(&AuthorizationRequest::new(&s).resource_policy(&deny));
    assert_eq!(
        d.denial().unwrap().message(&s),
        format!(
            "User: arn:aws:sts::111122223333:assumed-role/app/s1 is not authorized to perform: kms:Decrypt \
             on resource: {KEY} with an explicit deny in a resource-based policy"
        )
    );

    // A session policy that allows nothing the key policy allows, then one that denies.
    let app = common::key_policy(
        r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/app"},
            "Action": "kms:*", "Resource": "*"}"#,
    );
    let only_decrypt = common::parse(
        PolicyKind::Session,
        &doc(r#"{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}"#),
    );
    let deny_encrypt = common::parse(
        PolicyKind::Session,
        &doc(r#"{"Effect": "Deny", "Action": "kms:Encrypt", "Resource": "*"}"#),
    );
    let s = context(APP_S1, "kms:Encrypt", KEY, &[]);
    for (session, wording) in [
        (
            &only_decrypt,
            "because no session policy allows the kms:Encrypt action",
        ),
        (&deny_encrypt, "with an explicit deny in a session policy"),
    ] {
        let d = authorize(
            &AuthorizationRequest::new(&s)
                .resource_policy(&app)
                .identity_policies(IdentityPolicies {
                    principal_policies: &[],
                    session_policies: Some(&[session]),
                }),
        );
        assert_eq!(
            d.denial().unwrap().message(&s),
            format!(
                "User: arn:aws:sts::111122223333:assumed-role/app/s1 is not authorized to perform: \
                 kms:Encrypt on resource: {KEY} {wording}"
            )
        );
    }
    let role_all =
        common::identity_policy(r#"{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#);
    let s = context(APP_S1, "kms:CreateKey", "*", &[]);
    let d = authorize(
        &AuthorizationRequest::new(&s).identity_policies(IdentityPolicies {
            principal_policies: &[&role_all],
            session_policies: Some(&[&only_decrypt]),
        }),
    );
    assert_eq!(
        d.denial().unwrap().message(&s),
        "User: arn:aws:sts::111122223333:assumed-role/app/s1 is not authorized to perform: kms:CreateKey \
         on resource: * because no session policy allows the kms:CreateKey action"
    );

    let b = context(BOB_B, "kms:ScheduleKeyDeletion", KEY, &[]);
    let d = authorize(&AuthorizationRequest::new(&b).resource_policy(&default));
    assert_eq!(
        d.denial().unwrap().message(&b),
        "User: arn:aws:iam::444455556666:user/bob is not authorized to perform: kms:ScheduleKeyDeletion on \
         this resource because the resource does not exist in this Region, no resource-based policies allow \
         access, or a resource-based policy explicitly denies access"
    );

    assert_eq!(
        kms_policy::messages::tag_resource_on_create_key(ALICE),
        "User: arn:aws:iam::111122223333:user/alice is not authorized to perform: kms:TagResource because \
         no identity-based policy allows the kms:TagResource action"
    );
    assert_eq!(
        kms_policy::messages::CIPHERTEXT_KEY_UNUSABLE,
        "The ciphertext refers to a customer master key that does not exist, does not exist in this \
         region, or you are not allowed to access."
    );
    assert_eq!(
        kms_policy::messages::assume_role_denied(ALICE, "arn:aws:iam::111122223333:role/app"),
        "User: arn:aws:iam::111122223333:user/alice is not authorized to perform: sts:AssumeRole on \
         resource: arn:aws:iam::111122223333:role/app"
    );
}

/// Seed 004 (creating a key policy): the one-statement example and the full console policy.
#[test]
fn seed_004_key_policies() {
    let console = r#"{ "Id": "key-consolepolicy", "Version": "2012-10-17", "Statement": [ { "Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": { "AWS": "arn:aws:iam::111122223333:root" }, "Action": "kms:*", "Resource": "*" }, { "Sid": "Allow access for Key Administrators", "Effect": "Allow", "Principal": { "AWS": "arn:aws:iam::111122223333:role/ExampleAdminRole" }, "Action": [ "kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*", "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion", "kms:RotateKeyOnDemand" ], "Resource": "*" }, { "Sid": "Allow use of the key", "Effect": "Allow", "Principal": { "AWS": "arn:aws:iam::111122223333:role/ExampleUserRole" }, "Action": [ "kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey" ], "Resource": "*" }, { "Sid": "Allow attachment of persistent resources", "Effect": "Allow", "Principal": { "AWS": "arn:aws:iam::111122223333:role/ExampleUserRole" }, "Action": [ "kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant" ], "Resource": "*", "Condition": { "Bool": { "kms:GrantIsForAWSResource": "true" } } } ] }"#;
    let console_policy = common::parse(PolicyKind::Key, console);
    assert_eq!(console_policy.id(), Some("key-consolepolicy"));
    assert_eq!(console_policy.statement_count(), 4);
    let seeded = |name, caller, action| {
        let mut r = Row::new(name, caller, action);
        r.key_policy = Some(console_policy.clone());
        r
    };
    let describe = r#"{ "Sid": "Describe the policy statement", "Effect": "Allow", "Principal": { "AWS": "arn:aws:iam::111122223333:user/Alice" }, "Action": "kms:DescribeKey", "Resource": "*", "Condition": { "StringEquals": { "kms:KeySpec": "SYMMETRIC_DEFAULT" } } }"#;
    const ALICE_CAP: &str = "arn:aws:iam::111122223333:user/Alice";
    let rows = vec![
        Row::new("004 DescribeKey on a symmetric key", ALICE_CAP, "kms:DescribeKey")
            .key(describe)
            .with(&[Ctx::S("kms:KeySpec", "SYMMETRIC_DEFAULT")])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("004 DescribeKey on an RSA key", ALICE_CAP, "kms:DescribeKey")
            .key(describe)
            .with(&[Ctx::S("kms:KeySpec", "RSA_2048")]),
        Row::new("004 principal ARNs are case-sensitive", ALICE, "kms:DescribeKey")
            .key(describe)
            .with(&[Ctx::S("kms:KeySpec", "SYMMETRIC_DEFAULT")]),
        seeded("004 admin PutKeyPolicy (kms:Put*)", ADMIN_ROLE, "kms:PutKeyPolicy").allow(AllowedBy::ResourcePolicy),
        seeded("004 admin CreateGrant (kms:Create*)", ADMIN_ROLE, "kms:CreateGrant").allow(AllowedBy::ResourcePolicy),
        seeded("004 admin GetPublicKey (kms:Get*)", ADMIN_ROLE, "kms:GetPublicKey").allow(AllowedBy::ResourcePolicy),
        seeded("004 admin GetKeyRotationStatus (kms:Get*)", ADMIN_ROLE, "kms:GetKeyRotationStatus").allow(AllowedBy::ResourcePolicy),
        seeded("004 admin ScheduleKeyDeletion (listed)", ADMIN_ROLE, "kms:ScheduleKeyDeletion").allow(AllowedBy::ResourcePolicy),
        seeded("004 admin cannot Encrypt", ADMIN_ROLE, "kms:Encrypt"),
        seeded("004 user Encrypt", USER_ROLE, "kms:Encrypt").allow(AllowedBy::ResourcePolicy),
        seeded("004 user ReEncryptFrom (kms:ReEncrypt*)", USER_ROLE, "kms:ReEncryptFrom").allow(AllowedBy::ResourcePolicy),
        seeded("004 user GenerateDataKeyPairWithoutPlaintext", USER_ROLE, "kms:GenerateDataKeyPairWithoutPlaintext").allow(AllowedBy::ResourcePolicy),
        seeded("004 user cannot PutKeyPolicy", USER_ROLE, "kms:PutKeyPolicy"),
        seeded("004 user CreateGrant for an AWS resource", USER_ROLE, "kms:CreateGrant")
            .with(&[Ctx::B("kms:GrantIsForAWSResource", true)])
            .allow(AllowedBy::ResourcePolicy),
        seeded("004 user CreateGrant directly", USER_ROLE, "kms:CreateGrant")
            .with(&[Ctx::B("kms:GrantIsForAWSResource", false)]),
        seeded("004 user CreateGrant, key absent", USER_ROLE, "kms:CreateGrant"),
        Row::new("003 kms:Delete* does not cover ScheduleKeyDeletion", ADMIN_ROLE, "kms:ScheduleKeyDeletion")
            .key(r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/ExampleAdminRole"}, "Action": "kms:Delete*", "Resource": "*"}"#),
        Row::new("003 kms:Delete* covers DeleteImportedKeyMaterial", ADMIN_ROLE, "kms:DeleteImportedKeyMaterial")
            .key(r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/ExampleAdminRole"}, "Action": "kms:Delete*", "Resource": "*"}"#)
            .allow(AllowedBy::ResourcePolicy),
    ];
    run(&rows);
}

/// Seed 003, the condition-key chapter (lines 11531-13500), statement by statement.
#[test]
fn seed_003_condition_keys() {
    let ebs = r#"{"Sid": "Allow access through EBS for all principals in the account that are authorized to use EBS",
        "Effect": "Allow", "Principal": {"AWS": "*"},
        "Condition": {"StringEquals": {"kms:CallerAccount": "111122223333", "kms:ViaService": "ec2.us-west-2.amazonaws.com"}},
        "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:DescribeKey"],
        "Resource": "*"}"#;
    let data_key_pair = r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/ExampleRole"},
        "Action": ["kms:GenerateDataKeyPair", "kms:GenerateDataKeyPairWithoutPlaintext"], "Resource": "*",
        "Condition": {"StringLike": {"kms:DataKeyPairSpec": "RSA*"}}}"#;
    let one_algorithm = r#"{"Sid": "Allow only one encryption algorithm with this asymmetric KMS key", "Effect": "Deny",
        "Principal": {"AWS": "arn:aws:iam::111122223333:role/ExampleRole"},
        "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*"], "Resource": "*",
        "Condition": {"StringNotEquals": {"kms:EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}}},
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/ExampleRole"}, "Action": "kms:*", "Resource": "*"}"#;
    let symmetric_only = r#"{"Sid": "AllowOnlySymmetricAlgorithm", "Effect": "Deny",
        "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"],
        "Resource": "arn:aws:kms:us-west-2:111122223333:key/*",
        "Condition": {"StringNotEquals": {"kms:EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}}},
        {"Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#;
    let project_alpha = r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/RoleForExampleApp"},
        "Action": "kms:GenerateDataKey", "Resource": "*",
        "Condition": {"StringEquals": {"kms:EncryptionContext:Project": "Alpha"}}}"#;
    let exactly_two = r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/RoleForExampleApp"},
        "Action": "kms:GenerateDataKey", "Resource": "*",
        "Condition": {"StringEquals": {"kms:EncryptionContext:Department": "IT", "kms:EncryptionContext:Project": "Alpha"},
                      "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["Department", "Project"]}}}"#;
    let deny_stages = r#"{"Effect": "Deny", "Principal": {"AWS": "arn:aws:iam::111122223333:role/RoleForExampleApp"},
        "Action": "kms:GenerateDataKey", "Resource": "*",
        "Condition": {"StringEquals": {"kms:EncryptionContext:Stage": ["Restricted", "Production"]}}},
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/RoleForExampleApp"}, "Action": "kms:*", "Resource": "*"}"#;
    let appname = r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/RoleForExampleApp"},
        "Action": "kms:Decrypt", "Resource": "*",
        "Condition": {"StringEquals": {"kms:EncryptionContext:Appname": "ExampleApp"}}}"#;
    let any_appname = r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/RoleForExampleApp"},
        "Action": ["kms:Encrypt", "kms:GenerateDataKey*"], "Resource": "*",
        "Condition": {"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "AppName"}}}"#;
    let appname_both = r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/RoleForExampleApp"},
        "Action": "kms:GenerateDataKey", "Resource": "*",
        "Condition": {"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "AppName"},
                      "StringEquals": {"kms:EncryptionContext:AppName": "ExampleApp"}}}"#;
    let user_variable = r#"{"Effect": "Allow",
        "Principal": {"AWS": ["arn:aws:iam::111122223333:user/bob", "arn:aws:iam::111122223333:user/alice", "arn:aws:iam::111122223333:role/TestTeam"]},
        "Action": ["kms:Decrypt", "kms:Encrypt"], "Resource": "*",
        "Condition": {"StringEquals": {"kms:EncryptionContext:user": "${aws:username}"}}}"#;
    let require_context = r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/RoleForExampleApp"},
        "Action": ["kms:Encrypt", "kms:GenerateDataKey*"], "Resource": "*",
        "Condition": {"Null": {"kms:EncryptionContextKeys": false}}}"#;
    let expiration = r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/RoleForExampleApp"},
        "Action": "kms:ImportKeyMaterial", "Resource": "*",
        "Condition": {"StringEquals": {"kms:ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}}}"#;
    let expiration_null = r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/RoleForExampleApp"},
        "Action": "kms:ImportKeyMaterial", "Resource": "*",
        "Condition": {"Null": {"kms:ExpirationModel": true}}}"#;
    let constraint_type = r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/RoleForExampleApp"},
        "Action": "kms:CreateGrant", "Resource": "*",
        "Condition": {"StringEquals": {"kms:GrantConstraintType": "EncryptionContextEquals"}}}"#;
    let for_aws_resource = r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/ExampleRole"},
        "Action": "kms:CreateGrant", "Resource": "*",
        "Condition": {"Bool": {"kms:GrantIsForAWSResource": true}}}"#;
    let grant_ops_any = r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/ExampleRole"},
        "Action": "kms:CreateGrant", "Resource": "*",
        "Condition": {"ForAnyValue:StringEquals": {"kms:GrantOperations": ["Encrypt", "ReEncryptTo"]}}}"#;
    let grantee = r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/ExampleRole"},
        "Action": "kms:CreateGrant", "Resource": "*",
        "Condition": {"StringEquals": {"kms:GranteePrincipal": "arn:aws:iam::111122223333:role/LimitedAdminRole"}}}"#;
    let retiring = r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/ExampleRole"},
        "Action": "kms:CreateGrant", "Resource": "*",
        "Condition": {"StringEquals": {"kms:RetiringPrincipal": "arn:aws:iam::111122223333:role/LimitedAdminRole"}}}"#;
    let mac_two_statements = r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/testers"},
        "Action": ["kms:GenerateMac", "kms:VerifyMac"], "Resource": "*",
        "Condition": {"StringEquals": {"kms:MacAlgorithm": "HMAC_SHA_384"}}},
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/testers"},
        "Action": ["kms:GenerateMac", "kms:VerifyMac"], "Resource": "*",
        "Condition": {"StringEquals": {"kms:MacAlgorithm": "HMAC_SHA_512"}}}"#;
    let raw_only = r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/ExampleRole"},
        "Action": "kms:Sign", "Resource": "*", "Condition": {"StringEquals": {"kms:MessageType": "RAW"}}}"#;
    let primary_regions = r#"{"Effect": "Allow", "Action": "kms:UpdatePrimaryRegion",
        "Principal": {"AWS": "arn:aws:iam::111122223333:role/Developer"}, "Resource": "*",
        "Condition": {"StringEquals": {"kms:PrimaryRegion": ["us-east-1", "us-west-2", "eu-west-3", "ap-southeast-2"]}}}"#;
    let same_key = r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/ExampleRole"},
        "Action": "kms:ReEncrypt*", "Resource": "*", "Condition": {"Bool": {"kms:ReEncryptOnSameKey": true}}}"#;
    let request_alias = r#"{"Sid": "Key policy using a request alias condition", "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::111122223333:role/developer"}, "Action": "kms:GenerateDataKey",
        "Resource": "*", "Condition": {"StringEquals": {"kms:RequestAlias": "alias/finance-key"}}}"#;
    let replica_regions = r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/Administrator"},
        "Action": "kms:ReplicateKey", "Resource": "*",
        "Condition": {"StringEquals": {"kms:ReplicaRegion": ["us-east-1", "eu-west-3", "ap-southeast-2"]}}}"#;
    let short_window = format!(
        r#"{ROOT_A}, {{"Effect": "Deny", "Action": "kms:ScheduleKeyDeletion", "Principal": "*", "Resource": "*",
        "Condition": {{"NumericLessThanEquals": {{"kms:ScheduleKeyDeletionPendingWindowInDays": "21"}}}}}}"#
    );
    let pss = r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/testers"},
        "Action": "kms:Sign", "Resource": "*", "Condition": {"StringLike": {"kms:SigningAlgorithm": "RSASSA_PSS*"}}}"#;
    let valid_to = r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/ExampleRole"},
        "Action": "kms:ImportKeyMaterial", "Resource": "*",
        "Condition": {"NumericLessThanEquals": {"kms:ValidTo": "1546257599.0"}}}"#;
    let via_service = r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/ExampleRole"},
        "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:ListGrants", "kms:DescribeKey"],
        "Resource": "*", "Condition": {"StringEquals": {"kms:ViaService": ["ec2.us-west-2.amazonaws.com", "rds.us-west-2.amazonaws.com"]}}},
        {"Effect": "Deny", "Principal": {"AWS": "arn:aws:iam::111122223333:role/ExampleRole"}, "Action": ["kms:Encrypt"],
        "Resource": "*", "Condition": {"StringEquals": {"kms:ViaService": ["lambda.us-west-2.amazonaws.com"]}}}"#;
    let wrapping = r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/ExampleRole"},
        "Action": "kms:GetParametersForImport", "Resource": "*",
        "Condition": {"StringNotEquals": {"kms:WrappingAlgorithm": "RSAES_OAEP_SHA_1"}}}"#;
    let wrapping_spec = r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/ExampleRole"},
        "Action": "kms:GetParametersForImport", "Resource": "*",
        "Condition": {"StringEquals": {"kms:WrappingKeySpec": "RSA_4096"}}}"#;
    // The seed prints "kms: BypassPolicyLockoutSafetyCheck" with a stray space (a translation
    // artefact); the key is written without it here.
    let bypass_null = format!(
        r#"{ROOT_A}, {{"Effect": "Allow", "Principal": {{"AWS": "arn:aws:iam::111122223333:role/ExampleRole"}},
        "Action": "kms:PutKeyPolicy", "Resource": "*",
        "Condition": {{"Null": {{"kms:BypassPolicyLockoutSafetyCheck": true}}}}}}"#
    );
    let user_variable_admins = r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/TestTeam"},
        "Action": ["kms:Decrypt", "kms:Encrypt"], "Resource": "*",
        "Condition": {"StringEquals": {"kms:EncryptionContext:user": "${aws:username}"}}}"#;

    const BOB: &str = "arn:aws:iam::111122223333:user/bob";
    const TEST_TEAM: &str = "arn:aws:iam::111122223333:role/TestTeam#bob";
    const TESTERS: &str = "arn:aws:iam::111122223333:role/testers#t";
    const DEVELOPER: &str = "arn:aws:iam::111122223333:role/developer#d";
    const ADMINISTRATOR: &str = "arn:aws:iam::111122223333:role/Administrator#a";
    const DEV_ROLE: &str = "arn:aws:iam::111122223333:role/Developer#d";
    let rows = vec![
        Row::new("CallerAccount+ViaService: via EC2 in the account", ALICE, "kms:Decrypt")
            .key(ebs)
            .with(&[Ctx::S("kms:CallerAccount", "111122223333"), Ctx::S("kms:ViaService", "ec2.us-west-2.amazonaws.com")])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("CallerAccount+ViaService: direct call", ALICE, "kms:Decrypt")
            .key(ebs)
            .with(&[Ctx::S("kms:CallerAccount", "111122223333")]),
        Row::new("CallerAccount+ViaService: another account", BOB_B, "kms:Decrypt")
            .key(ebs)
            .identity(r#"{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#)
            .with(&[Ctx::S("kms:CallerAccount", "444455556666"), Ctx::S("kms:ViaService", "ec2.us-west-2.amazonaws.com")])
            .deny_cross_account(),
        Row::new("DataKeyPairSpec RSA*", EXAMPLE_ROLE, "kms:GenerateDataKeyPair")
            .key(data_key_pair)
            .with(&[Ctx::S("kms:DataKeyPairSpec", "RSA_3072")])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("DataKeyPairSpec ECC", EXAMPLE_ROLE, "kms:GenerateDataKeyPairWithoutPlaintext")
            .key(data_key_pair)
            .with(&[Ctx::S("kms:DataKeyPairSpec", "ECC_NIST_P256")]),
        Row::new("EncryptionAlgorithm: the one allowed", EXAMPLE_ROLE, "kms:Encrypt")
            .key(one_algorithm)
            .with(&[Ctx::S("kms:EncryptionAlgorithm", "RSAES_OAEP_SHA_256")])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("EncryptionAlgorithm: another one is denied", EXAMPLE_ROLE, "kms:Decrypt")
            .key(one_algorithm)
            .with(&[Ctx::S("kms:EncryptionAlgorithm", "RSAES_OAEP_SHA_1")])
            .deny(DenyReason::ExplicitDenyInResourcePolicy),
        Row::new("EncryptionAlgorithm identity deny: SYMMETRIC_DEFAULT", ALICE, "kms:GenerateDataKeyWithoutPlaintext")
            .key(ROOT_A)
            .identity(symmetric_only)
            .with(&[Ctx::S("kms:EncryptionAlgorithm", "SYMMETRIC_DEFAULT")])
            .allow(AllowedBy::ResourceAndIdentityPolicies),
        Row::new("EncryptionAlgorithm identity deny: RSA", ALICE, "kms:Encrypt")
            .key(ROOT_A)
            .identity(symmetric_only)
            .with(&[Ctx::S("kms:EncryptionAlgorithm", "RSAES_OAEP_SHA_256")])
            .deny(DenyReason::ExplicitDenyInIdentityPolicy),
        Row::new("EncryptionAlgorithm identity deny: other region not covered", ALICE, "kms:Encrypt")
            .on(KEY_USE1)
            .key(ROOT_A)
            .identity(symmetric_only)
            .with(&[Ctx::S("kms:EncryptionAlgorithm", "RSAES_OAEP_SHA_256")])
            .allow(AllowedBy::ResourceAndIdentityPolicies),
        Row::new("EC Project=Alpha", APP_ROLE, "kms:GenerateDataKey")
            .key(project_alpha)
            .with(&[Ctx::Ec(&[("Project", "Alpha"), ("Other", "x")])])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("EC key name case-insensitive", APP_ROLE, "kms:GenerateDataKey")
            .key(project_alpha)
            .with(&[Ctx::Ec(&[("PROJECT", "Alpha")])])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("EC value case-sensitive", APP_ROLE, "kms:GenerateDataKey")
            .key(project_alpha)
            .with(&[Ctx::Ec(&[("Project", "alpha")])]),
        Row::new("EC absent", APP_ROLE, "kms:GenerateDataKey").key(project_alpha),
        Row::new("EC exactly Department and Project", APP_ROLE, "kms:GenerateDataKey")
            .key(exactly_two)
            .with(&[Ctx::Ec(&[("Department", "IT"), ("Project", "Alpha")])])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("EC with an extra pair", APP_ROLE, "kms:GenerateDataKey")
            .key(exactly_two)
            .with(&[Ctx::Ec(&[("Department", "IT"), ("Project", "Alpha"), ("Extra", "1")])]),
        Row::new("EC none at all (ForAllValues alone would allow)", APP_ROLE, "kms:GenerateDataKey")
            .key(exactly_two),
        Row::new("EC Stage=Production denied", APP_ROLE, "kms:GenerateDataKey")
            .key(deny_stages)
            .with(&[Ctx::Ec(&[("Stage", "Production")])])
            .deny(DenyReason::ExplicitDenyInResourcePolicy),
        Row::new("EC Stage=Test allowed", APP_ROLE, "kms:GenerateDataKey")
            .key(deny_stages)
            .with(&[Ctx::Ec(&[("Stage", "Test")])])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("EC no Stage: the deny does not apply", APP_ROLE, "kms:GenerateDataKey")
            .key(deny_stages)
            .allow(AllowedBy::ResourcePolicy),
        Row::new("Appname any key case", APP_ROLE, "kms:Decrypt")
            .key(appname)
            .with(&[Ctx::Ec(&[("appNAME", "ExampleApp")])])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("Appname value case", APP_ROLE, "kms:Decrypt")
            .key(appname)
            .with(&[Ctx::Ec(&[("Appname", "exampleapp")])]),
        Row::new("ForAnyValue EncryptionContextKeys: AppName among others", APP_ROLE, "kms:GenerateDataKey")
            .key(any_appname)
            .with(&[Ctx::Ec(&[("AppName", "Helper"), ("Project", "Alpha")])])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("ForAnyValue EncryptionContextKeys: only Project", APP_ROLE, "kms:GenerateDataKey")
            .key(any_appname)
            .with(&[Ctx::Ec(&[("Project", "Alpha")])]),
        Row::new("ForAnyValue EncryptionContextKeys: no EC", APP_ROLE, "kms:Encrypt").key(any_appname),
        Row::new("ForAnyValue EncryptionContextKeys: key case matters (values)", APP_ROLE, "kms:Encrypt")
            .key(any_appname)
            .with(&[Ctx::Ec(&[("appname", "Helper")])]),
        Row::new("keys and values both case-sensitive", APP_ROLE, "kms:GenerateDataKey")
            .key(appname_both)
            .with(&[Ctx::Ec(&[("AppName", "ExampleApp")])])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("keys and values: key case differs", APP_ROLE, "kms:GenerateDataKey")
            .key(appname_both)
            .with(&[Ctx::Ec(&[("appname", "ExampleApp")])]),
        Row::new("${aws:username}: bob's own context", BOB, "kms:Decrypt")
            .key(user_variable)
            .with(&[Ctx::Ec(&[("user", "bob")])])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("${aws:username}: bob with alice's context", BOB, "kms:Decrypt")
            .key(user_variable)
            .with(&[Ctx::Ec(&[("user", "alice")])]),
        Row::new("${aws:username}: alice's own context", ALICE, "kms:Encrypt")
            .key(user_variable)
            .with(&[Ctx::Ec(&[("user", "alice")])])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("${aws:username}: role sessions have no username", TEST_TEAM, "kms:Encrypt")
            .key(user_variable_admins)
            .with(&[Ctx::Ec(&[("user", "bob")])]),
        Row::new("${aws:username}: the literal text does not match", TEST_TEAM, "kms:Encrypt")
            .key(user_variable_admins)
            .with(&[Ctx::Ec(&[("user", "${aws:username}")])]),
        Row::new("Null EncryptionContextKeys false: with EC", APP_ROLE, "kms:Encrypt")
            .key(require_context)
            .with(&[Ctx::Ec(&[("any", "thing")])])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("Null EncryptionContextKeys false: without EC", APP_ROLE, "kms:Encrypt").key(require_context),
        Row::new("ExpirationModel does not expire", APP_ROLE, "kms:ImportKeyMaterial")
            .key(expiration)
            .with(&[Ctx::S("kms:ExpirationModel", "KEY_MATERIAL_DOES_NOT_EXPIRE")])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("ExpirationModel expires", APP_ROLE, "kms:ImportKeyMaterial")
            .key(expiration)
            .with(&[Ctx::S("kms:ExpirationModel", "KEY_MATERIAL_EXPIRES")]),
        Row::new("Null ExpirationModel true: absent", APP_ROLE, "kms:ImportKeyMaterial")
            .key(expiration_null)
            .allow(AllowedBy::ResourcePolicy),
        Row::new("Null ExpirationModel true: present", APP_ROLE, "kms:ImportKeyMaterial")
            .key(expiration_null)
            .with(&[Ctx::S("kms:ExpirationModel", "KEY_MATERIAL_EXPIRES")]),
        Row::new("GrantConstraintType Equals", APP_ROLE, "kms:CreateGrant")
            .key(constraint_type)
            .with(&[Ctx::S("kms:GrantConstraintType", "EncryptionContextEquals")])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("GrantConstraintType Subset", APP_ROLE, "kms:CreateGrant")
            .key(constraint_type)
            .with(&[Ctx::S("kms:GrantConstraintType", "EncryptionContextSubset")]),
        Row::new("GrantConstraintType absent", APP_ROLE, "kms:CreateGrant").key(constraint_type),
        Row::new("GrantIsForAWSResource true (JSON boolean)", EXAMPLE_ROLE, "kms:CreateGrant")
            .key(for_aws_resource)
            .with(&[Ctx::B("kms:GrantIsForAWSResource", true)])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("GrantIsForAWSResource false locally", EXAMPLE_ROLE, "kms:CreateGrant")
            .key(for_aws_resource)
            .with(&[Ctx::B("kms:GrantIsForAWSResource", false)]),
        Row::new("ForAnyValue GrantOperations allows others too", EXAMPLE_ROLE, "kms:CreateGrant")
            .key(grant_ops_any)
            .with(&[Ctx::M("kms:GrantOperations", &["Encrypt", "Decrypt"])])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("ForAnyValue GrantOperations needs one of them", EXAMPLE_ROLE, "kms:CreateGrant")
            .key(grant_ops_any)
            .with(&[Ctx::M("kms:GrantOperations", &["Decrypt", "ReEncryptFrom"])]),
        Row::new("GranteePrincipal", EXAMPLE_ROLE, "kms:CreateGrant")
            .key(grantee)
            .with(&[Ctx::S("kms:GranteePrincipal", "arn:aws:iam::111122223333:role/LimitedAdminRole")])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("GranteePrincipal other", EXAMPLE_ROLE, "kms:CreateGrant")
            .key(grantee)
            .with(&[Ctx::S("kms:GranteePrincipal", "arn:aws:iam::111122223333:role/Other")]),
        Row::new("RetiringPrincipal", EXAMPLE_ROLE, "kms:CreateGrant")
            .key(retiring)
            .with(&[Ctx::S("kms:RetiringPrincipal", "arn:aws:iam::111122223333:role/LimitedAdminRole")])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("RetiringPrincipal absent", EXAMPLE_ROLE, "kms:CreateGrant").key(retiring),
        Row::new("MacAlgorithm 384 (first statement)", TESTERS, "kms:GenerateMac")
            .key(mac_two_statements)
            .with(&[Ctx::S("kms:MacAlgorithm", "HMAC_SHA_384")])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("MacAlgorithm 512 (second statement)", TESTERS, "kms:VerifyMac")
            .key(mac_two_statements)
            .with(&[Ctx::S("kms:MacAlgorithm", "HMAC_SHA_512")])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("MacAlgorithm 256", TESTERS, "kms:GenerateMac")
            .key(mac_two_statements)
            .with(&[Ctx::S("kms:MacAlgorithm", "HMAC_SHA_256")]),
        Row::new("MessageType RAW", EXAMPLE_ROLE, "kms:Sign")
            .key(raw_only)
            .with(&[Ctx::S("kms:MessageType", "RAW")])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("MessageType DIGEST", EXAMPLE_ROLE, "kms:Sign")
            .key(raw_only)
            .with(&[Ctx::S("kms:MessageType", "DIGEST")]),
        Row::new("PrimaryRegion listed", DEV_ROLE, "kms:UpdatePrimaryRegion")
            .key(primary_regions)
            .with(&[Ctx::S("kms:PrimaryRegion", "eu-west-3")])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("PrimaryRegion not listed", DEV_ROLE, "kms:UpdatePrimaryRegion")
            .key(primary_regions)
            .with(&[Ctx::S("kms:PrimaryRegion", "eu-central-1")]),
        Row::new("ReEncryptOnSameKey true", EXAMPLE_ROLE, "kms:ReEncryptFrom")
            .key(same_key)
            .with(&[Ctx::B("kms:ReEncryptOnSameKey", true)])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("ReEncryptOnSameKey false", EXAMPLE_ROLE, "kms:ReEncryptTo")
            .key(same_key)
            .with(&[Ctx::B("kms:ReEncryptOnSameKey", false)]),
        Row::new("RequestAlias alias/finance-key", DEVELOPER, "kms:GenerateDataKey")
            .key(request_alias)
            .with(&[Ctx::S("kms:RequestAlias", "alias/finance-key")])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("RequestAlias by key ID", DEVELOPER, "kms:GenerateDataKey").key(request_alias),
        Row::new("RequestAlias another alias", DEVELOPER, "kms:GenerateDataKey")
            .key(request_alias)
            .with(&[Ctx::S("kms:RequestAlias", "alias/finance-key-2")]),
        Row::new("ReplicaRegion listed", ADMINISTRATOR, "kms:ReplicateKey")
            .key(replica_regions)
            .with(&[Ctx::S("kms:ReplicaRegion", "ap-southeast-2")])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("ReplicaRegion not listed", ADMINISTRATOR, "kms:ReplicateKey")
            .key(replica_regions)
            .with(&[Ctx::S("kms:ReplicaRegion", "us-west-2")]),
        Row::new("PendingWindowInDays 7 denied", ALICE, "kms:ScheduleKeyDeletion")
            .key(&short_window)
            .identity(r#"{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#)
            .with(&[Ctx::N("kms:ScheduleKeyDeletionPendingWindowInDays", 7.0)])
            .deny(DenyReason::ExplicitDenyInResourcePolicy),
        Row::new("PendingWindowInDays 21 denied (equals)", ALICE, "kms:ScheduleKeyDeletion")
            .key(&short_window)
            .identity(r#"{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#)
            .with(&[Ctx::N("kms:ScheduleKeyDeletionPendingWindowInDays", 21.0)])
            .deny(DenyReason::ExplicitDenyInResourcePolicy),
        Row::new("PendingWindowInDays 30 allowed", ALICE, "kms:ScheduleKeyDeletion")
            .key(&short_window)
            .identity(r#"{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#)
            .with(&[Ctx::N("kms:ScheduleKeyDeletionPendingWindowInDays", 30.0)])
            .allow(AllowedBy::ResourceAndIdentityPolicies),
        Row::new("SigningAlgorithm RSASSA_PSS*", TESTERS, "kms:Sign")
            .key(pss)
            .with(&[Ctx::S("kms:SigningAlgorithm", "RSASSA_PSS_SHA_512")])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("SigningAlgorithm PKCS1", TESTERS, "kms:Sign")
            .key(pss)
            .with(&[Ctx::S("kms:SigningAlgorithm", "RSASSA_PKCS1_V1_5_SHA_256")]),
        Row::new("ValidTo at the limit (a date compared numerically)", EXAMPLE_ROLE, "kms:ImportKeyMaterial")
            .key(valid_to)
            .with(&[Ctx::D("kms:ValidTo", 1_546_257_599)])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("ValidTo one second later", EXAMPLE_ROLE, "kms:ImportKeyMaterial")
            .key(valid_to)
            .with(&[Ctx::D("kms:ValidTo", 1_546_257_600)]),
        Row::new("ValidTo as epoch number", EXAMPLE_ROLE, "kms:ImportKeyMaterial")
            .key(valid_to)
            .with(&[Ctx::N("kms:ValidTo", 1_500_000_000.0)])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("ViaService RDS", EXAMPLE_ROLE, "kms:CreateGrant")
            .key(via_service)
            .with(&[Ctx::S("kms:ViaService", "rds.us-west-2.amazonaws.com")])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("ViaService direct call", EXAMPLE_ROLE, "kms:Decrypt").key(via_service),
        Row::new("ViaService lambda denied", EXAMPLE_ROLE, "kms:Encrypt")
            .key(via_service)
            .with(&[Ctx::S("kms:ViaService", "lambda.us-west-2.amazonaws.com")])
            .deny(DenyReason::ExplicitDenyInResourcePolicy),
        Row::new("WrappingAlgorithm SHA_256", EXAMPLE_ROLE, "kms:GetParametersForImport")
            .key(wrapping)
            .with(&[Ctx::S("kms:WrappingAlgorithm", "RSAES_OAEP_SHA_256")])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("WrappingAlgorithm SHA_1", EXAMPLE_ROLE, "kms:GetParametersForImport")
            .key(wrapping)
            .with(&[Ctx::S("kms:WrappingAlgorithm", "RSAES_OAEP_SHA_1")]),
        Row::new("WrappingKeySpec RSA_4096", EXAMPLE_ROLE, "kms:GetParametersForImport")
            .key(wrapping_spec)
            .with(&[Ctx::S("kms:WrappingKeySpec", "RSA_4096")])
            .allow(AllowedBy::ResourcePolicy),
        Row::new("WrappingKeySpec RSA_2048", EXAMPLE_ROLE, "kms:GetParametersForImport")
            .key(wrapping_spec)
            .with(&[Ctx::S("kms:WrappingKeySpec", "RSA_2048")]),
        Row::new("Null BypassPolicyLockoutSafetyCheck: omitted", EXAMPLE_ROLE, "kms:PutKeyPolicy")
            .key(&bypass_null)
            .allow(AllowedBy::ResourcePolicy),
        Row::new("Null BypassPolicyLockoutSafetyCheck: given (even false)", EXAMPLE_ROLE, "kms:PutKeyPolicy")
            .key(&bypass_null)
            .with(&[Ctx::B("kms:BypassPolicyLockoutSafetyCheck", false)]),
        Row::new("identity Deny bypass on CreateKey", ALICE, "kms:CreateKey")
            .on("*")
            .identity(r#"{"Effect": "Allow", "Action": "kms:CreateKey", "Resource": "*"}"#)
            .identity(r#"{"Effect": "Deny", "Action": ["kms:CreateKey", "kms:PutKeyPolicy"], "Resource": "*",
                "Condition": {"Bool": {"kms:BypassPolicyLockoutSafetyCheck": true}}}"#)
            .with(&[Ctx::B("kms:BypassPolicyLockoutSafetyCheck", true)])
            .deny(DenyReason::ExplicitDenyInIdentityPolicy),
        Row::new("identity KeyOrigin AWS_KMS on CreateKey", ALICE, "kms:CreateKey")
            .on("*")
            .identity(r#"{"Effect": "Allow", "Action": "kms:CreateKey", "Resource": "*", "Condition": {"StringEquals": {"kms:KeyOrigin": "AWS_KMS"}}}"#)
            .with(&[Ctx::S("kms:KeyOrigin", "AWS_KMS")])
            .allow(AllowedBy::IdentityPolicy),
        Row::new("identity KeySpec RSA_* on CreateKey, default spec", ALICE, "kms:CreateKey")
            .on("*")
            .identity(r#"{"Effect": "Allow", "Action": "kms:CreateKey", "Resource": "*", "Condition": {"StringLike": {"kms:KeySpec": "RSA_*"}}}"#)
            .with(&[Ctx::S("kms:KeySpec", "SYMMETRIC_DEFAULT")])
            .deny(DenyReason::NoIdentityPolicyAllows),
        Row::new("identity KeyUsage ENCRYPT_DECRYPT on CreateKey", ALICE, "kms:CreateKey")
            .on("*")
            .identity(r#"{"Effect": "Allow", "Action": "kms:CreateKey", "Resource": "*", "Condition": {"StringEquals": {"kms:KeyUsage": "ENCRYPT_DECRYPT"}}}"#)
            .with(&[Ctx::S("kms:KeyUsage", "ENCRYPT_DECRYPT")])
            .allow(AllowedBy::IdentityPolicy),
        Row::new("identity MultiRegion false on CreateKey", ALICE, "kms:CreateKey")
            .on("*")
            .identity(r#"{"Effect": "Allow", "Action": "kms:CreateKey", "Resource": "*", "Condition": {"Bool": {"kms:MultiRegion": false}}}"#)
            .with(&[Ctx::B("kms:MultiRegion", true)])
            .deny(DenyReason::NoIdentityPolicyAllows),
        Row::new("key-property key on ListKeys never matches", ALICE, "kms:ListKeys")
            .on("*")
            .identity(r#"{"Effect": "Allow", "Action": "kms:ListKeys", "Resource": "*", "Condition": {"StringEquals": {"kms:KeySpec": "SYMMETRIC_DEFAULT"}}}"#)
            .deny(DenyReason::NoIdentityPolicyAllows),
        Row::new("identity KeyOrigin AWS_CLOUDHSM on key ops", ALICE, "kms:Decrypt")
            .key(ROOT_A)
            .identity(r#"{"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*"], "Resource": "arn:aws:kms:us-west-2:111122223333:key/*", "Condition": {"StringEquals": {"kms:KeyOrigin": "AWS_CLOUDHSM"}}}"#)
            .with(&[Ctx::S("kms:KeyOrigin", "AWS_KMS")]),
        Row::new("identity MultiRegionKeyType REPLICA", ALICE, "kms:CancelKeyDeletion")
            .key(ROOT_A)
            .identity(r#"{"Effect": "Allow", "Action": ["kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion"], "Resource": "arn:aws:kms:*:111122223333:key/*", "Condition": {"StringEquals": {"kms:MultiRegionKeyType": "REPLICA"}}}"#)
            .with(&[Ctx::S("kms:MultiRegionKeyType", "REPLICA")])
            .allow(AllowedBy::ResourceAndIdentityPolicies),
        Row::new("identity ResourceAliases ForAnyValue", ALICE, "kms:GenerateDataKey")
            .key(ROOT_A)
            .identity(r#"{"Sid": "AliasBasedIAMPolicy", "Effect": "Allow", "Action": "kms:GenerateDataKey",
                "Resource": ["arn:aws:kms:*:111122223333:key/*", "arn:aws:kms:*:444455556666:key/*"],
                "Condition": {"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/finance-key"}}}"#)
            .with(&[Ctx::M("kms:ResourceAliases", &["alias/other", "alias/finance-key"])])
            .allow(AllowedBy::ResourceAndIdentityPolicies),
        Row::new("identity ResourceAliases ForAnyValue: key without aliases", ALICE, "kms:GenerateDataKey")
            .key(ROOT_A)
            .identity(r#"{"Effect": "Allow", "Action": "kms:GenerateDataKey", "Resource": "*",
                "Condition": {"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/finance-key"}}}"#),
        Row::new("identity ResourceAliases all *Test*", ALICE, "kms:EnableKey")
            .key(ROOT_A)
            .identity(r#"{"Sid": "AliasBasedIAMPolicy", "Effect": "Allow", "Action": ["kms:EnableKey", "kms:DisableKey"],
                "Resource": "arn:aws:kms:*:111122223333:key/*",
                "Condition": {"ForAllValues:StringLike": {"kms:ResourceAliases": ["alias/*Test*"]},
                              "ForAnyValue:StringLike": {"kms:ResourceAliases": ["alias/*Test*"]}}}"#)
            .with(&[Ctx::M("kms:ResourceAliases", &["alias/Test1", "alias/myTestKey"])])
            .allow(AllowedBy::ResourceAndIdentityPolicies),
        Row::new("identity ResourceAliases one not *Test*", ALICE, "kms:DisableKey")
            .key(ROOT_A)
            .identity(r#"{"Sid": "AliasBasedIAMPolicy", "Effect": "Allow", "Action": ["kms:EnableKey", "kms:DisableKey"],
                "Resource": "arn:aws:kms:*:111122223333:key/*",
                "Condition": {"ForAllValues:StringLike": {"kms:ResourceAliases": ["alias/*Test*"]},
                              "ForAnyValue:StringLike": {"kms:ResourceAliases": ["alias/*Test*"]}}}"#)
            .with(&[Ctx::M("kms:ResourceAliases", &["alias/Test1", "alias/prod"])]),
        Row::new("identity ResourceAliases none: ForAnyValue fails", ALICE, "kms:DisableKey")
            .key(ROOT_A)
            .identity(r#"{"Sid": "AliasBasedIAMPolicy", "Effect": "Allow", "Action": ["kms:EnableKey", "kms:DisableKey"],
                "Resource": "arn:aws:kms:*:111122223333:key/*",
                "Condition": {"ForAllValues:StringLike": {"kms:ResourceAliases": ["alias/*Test*"]},
                              "ForAnyValue:StringLike": {"kms:ResourceAliases": ["alias/*Test*"]}}}"#),
    ];
    run(&rows);
}

/// The default policy text parses as a key policy and round-trips unchanged.
#[test]
fn default_policy_round_trip() {
    let text = default_key_policy("111122223333");
    let p = common::parse(PolicyKind::Key, &text);
    assert_eq!(p.text(), text);
    assert_eq!(p.id(), Some("key-default-1"));
    assert_eq!(
        p.sids().collect::<Vec<_>>(),
        vec![Some("Enable IAM User Permissions")]
    );
    let cn = kms_policy::default_key_policy_in_partition("aws-cn", "111122223333");
    assert!(cn.contains("\"AWS\" : \"arn:aws-cn:iam::111122223333:root\""));
    // Whitespace and order of the stored text are the caller's: any valid document is kept as is.
    let odd = doc(&format!("{ROOT_A}\n\n"));
    assert_eq!(common::parse(PolicyKind::Key, &odd).text(), odd);
    let _: &RequestContext = &context(ALICE, "kms:Decrypt", KEY, &[]);
}

/// Role trust policies: the resource policy of `sts:AssumeRole` (reference §8.3).
#[test]
fn trust_policies() {
    const ROLE: &str = "arn:aws:iam::111122223333:role/app";
    let names_alice = r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"}, "Action": "sts:AssumeRole"}"#;
    let names_b = r#"{"Effect": "Allow", "Principal": {"AWS": "444455556666"}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"sts:ExternalId": "secret-42"}}}"#;
    let names_a = r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}"#;
    let rows = vec![
        Row::new("trust names the user: no identity policy needed", ALICE, "sts:AssumeRole")
            .on(ROLE)
            .trust(names_alice)
            .allow(AllowedBy::ResourcePolicy),
        Row::new("trust names the account: identity policy needed", CAROL, "sts:AssumeRole")
            .on(ROLE)
            .trust(names_a),
        Row::new("trust names the account, identity allows", CAROL, "sts:AssumeRole")
            .on(ROLE)
            .trust(names_a)
            .identity(&format!(r#"{{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "{ROLE}"}}"#))
            .allow(AllowedBy::ResourceAndIdentityPolicies),
        Row::new("cross-account: both sides and the external ID", BOB_B, "sts:AssumeRole")
            .on(ROLE)
            .trust(names_b)
            .identity(r#"{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "arn:aws:iam::*:role/*"}"#)
            .with(&[Ctx::S("sts:ExternalId", "secret-42")])
            .allow(AllowedBy::ResourceAndIdentityPolicies),
        Row::new("cross-account: wrong external ID", BOB_B, "sts:AssumeRole")
            .on(ROLE)
            .trust(names_b)
            .identity(r#"{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}"#)
            .with(&[Ctx::S("sts:ExternalId", "guess")])
            .deny_cross_account(),
        Row::new("trust allows AssumeRole only", ALICE, "sts:TagSession")
            .on(ROLE)
            .trust(names_alice),
    ];
    run(&rows);
    assert_eq!(
        kms_policy::messages::assume_role_denied(CAROL, ROLE),
        "User: arn:aws:iam::111122223333:user/carol is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::111122223333:role/app"
    );
}
