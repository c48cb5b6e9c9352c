//! Evaluates a 10-statement key policy with conditions 100,000 times and prints the time per
//! evaluation. No assertion on the time (machines differ; debug builds are slow); run with
//! `cargo test -p kms-policy --release --test suite timing -- --nocapture` for a real number.

use std::hint::black_box;
use std::time::Instant;

use kms_policy::{authorize, AuthorizationRequest, IdentityPolicies};

use crate::common::{context, identity_policy, key_policy, Ctx, KEY, ROOT_A};

#[test]
fn ten_statement_policy_evaluation_time() {
    let statements = format!(
        r#"{ROOT_A},
        {{"Sid": "admins", "Effect": "Allow", "Principal": {{"AWS": "arn:aws:iam::111122223333:role/admin"}},
          "Action": ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*",
                     "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*"], "Resource": "*"}},
        {{"Sid": "users", "Effect": "Allow", "Principal": {{"AWS": ["arn:aws:iam::111122223333:role/app", "arn:aws:iam::111122223333:user/bob"]}},
          "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"], "Resource": "*",
          "Condition": {{"StringEquals": {{"kms:EncryptionContext:app": "billing"}}}}}},
        {{"Sid": "grants", "Effect": "Allow", "Principal": {{"AWS": "arn:aws:iam::111122223333:role/app"}},
          "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"], "Resource": "*",
          "Condition": {{"Bool": {{"kms:GrantIsForAWSResource": "true"}}}}}},
        {{"Sid": "ebs", "Effect": "Allow", "Principal": {{"AWS": "*"}}, "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*",
          "Condition": {{"StringEquals": {{"kms:CallerAccount": "111122223333", "kms:ViaService": "ec2.us-west-2.amazonaws.com"}}}}}},
        {{"Sid": "stages", "Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
          "Condition": {{"StringEquals": {{"kms:EncryptionContext:stage": ["restricted", "production"]}}}}}},
        {{"Sid": "tls", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
          "Condition": {{"Bool": {{"aws:SecureTransport": "false"}}}}}},
        {{"Sid": "network", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
          "Condition": {{"NotIpAddress": {{"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32"]}}, "Null": {{"kms:ViaService": "true"}}}}}},
        {{"Sid": "expiry", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
          "Condition": {{"DateGreaterThan": {{"aws:CurrentTime": "2099-01-01T00:00:00Z"}}}}}},
        {{"Sid": "keys", "Effect": "Allow", "Principal": {{"AWS": "111122223333"}}, "Action": "kms:GenerateDataKey*", "Resource": "*",
          "Condition": {{"ForAllValues:StringLike": {{"kms:EncryptionContextKeys": ["app", "stage", "tenant-*"]}}}}}}"#
    );
    let policy = key_policy(&statements);
    assert_eq!(policy.statement_count(), 10);
    let identity = identity_policy(
        r#"{"Effect": "Allow", "Action": "kms:*", "Resource": "arn:aws:kms:*:111122223333:key/*"}"#,
    );
    let identity = [&identity];
    let c = context(
        "arn:aws:iam::111122223333:user/bob",
        "kms:Decrypt",
        KEY,
        &[
            Ctx::Ec(&[("app", "billing"), ("stage", "test"), ("tenant-1", "x")]),
            Ctx::S("kms:CallerAccount", "111122223333"),
            Ctx::B("aws:SecureTransport", true),
            Ctx::Ip("aws:SourceIp", "10.20.30.40"),
            Ctx::D("aws:CurrentTime", 1_700_000_000),
        ],
    );
    // The case evaluated must do real work: allowed by the "users" statement after every deny
    // statement's conditions were checked.
    let evaluation = policy.evaluate(&c);
    assert!(evaluation.allows_directly() && !evaluation.explicit_deny);

    const N: u32 = 100_000;
    let start = Instant::now();
    for _ in 0..N {
        black_box(black_box(&policy).evaluate(black_box(&c)));
    }
    let per_policy = start.elapsed() / N;

    let start = Instant::now();
    for _ in 0..N {
        let request = AuthorizationRequest::new(black_box(&c))
            .resource_policy(&policy)
            .identity_policies(IdentityPolicies {
                principal_policies: &identity,
                session_policies: None,
            })
            .cross_account_capable(true);
        black_box(authorize(&request));
    }
    let per_decision = start.elapsed() / N;
    println!(
        "10-statement key policy: {per_policy:?} per Policy::evaluate, {per_decision:?} per authorize \
         (with one identity policy), {N} iterations ({} build)",
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
}
