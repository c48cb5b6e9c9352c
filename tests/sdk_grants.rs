//! Grants through the real `aws-sdk-kms` client: CreateGrant, ListGrants, ListRetirableGrants,
//! RetireGrant, RevokeGrant, grant tokens, and what a grant lets its grantee do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use std::collections::HashMap;

use aws_sdk_kms::error::SdkError;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{GrantConstraints, GrantListEntry, GrantOperation as Op};
use aws_sdk_kms::Client;
use common::TestServer;

const A: &str = "111122223333";
const B: &str = "444455556666";

const ALICE: &str = "arn:aws:iam::111122223333:user/alice";
const CAROL: &str = "arn:aws:iam::111122223333:user/carol";
const DAVE: &str = "arn:aws:iam::111122223333:user/dave";
const GINA: &str = "arn:aws:iam::111122223333:user/gina";
const FRANK: &str = "arn:aws:iam::444455556666:user/frank";

/// carol, dave and frank (account B) have no identity policy at all; gina's denies
/// kms:RetireGrant. alice and bob are the harness's implicit administrators.
const IDENTITIES: &str = r#"
[[users]]
arn = 'arn:aws:iam::111122223333:user/carol'
[[users]]
arn = 'arn:aws:iam::111122223333:user/dave'
[[users]]
arn = 'arn:aws:iam::111122223333:user/gina'
policies = ['{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"kms:RetireGrant","Resource":"*"}]}']
[[users]]
arn = 'arn:aws:iam::444455556666:user/frank'
[[credentials]]
access_key_id = 'AKIACAROL00000000001'
secret_access_key = 'carolSecretKey000000000000000000000000001'
principal = 'arn:aws:iam::111122223333:user/carol'
[[credentials]]
access_key_id = 'AKIADAVE000000000001'
secret_access_key = 'daveSecretKey0000000000000000000000000001'
principal = 'arn:aws:iam::111122223333:user/dave'
[[credentials]]
access_key_id = 'AKIAGINA000000000001'
secret_access_key = 'ginaSecretKey0000000000000000000000000001'
principal = 'arn:aws:iam::111122223333:user/gina'
[[credentials]]
access_key_id = 'AKIAFRANK00000000001'
secret_access_key = 'frankSecretKey000000000000000000000000001'
principal = 'arn:aws:iam::444455556666:user/frank'
"#;

struct Env {
    srv: TestServer,
    alice: Client,
    bob: Client,
    carol: Client,
    dave: Client,
    gina: Client,
    frank: Client,
}

async fn env() -> Env {
    let srv = TestServer::start_with_config(IDENTITIES, common::backend_env()).await;
    Env {
        alice: srv.client(),
        bob: srv.other_client(),
        carol: srv.client_with(
            "AKIACAROL00000000001",
            "carolSecretKey000000000000000000000000001",
        ),
        dave: srv.client_with(
            "AKIADAVE000000000001",
            "daveSecretKey0000000000000000000000000001",
        ),
        gina: srv.client_with(
            "AKIAGINA000000000001",
            "ginaSecretKey0000000000000000000000000001",
        ),
        frank: srv.client_with(
            "AKIAFRANK00000000001",
            "frankSecretKey000000000000000000000000001",
        ),
        srv,
    }
}

/// AWS's implicit-deny text for a key operation.
fn denied(user: &str, op: &str, key_arn: &str) -> (String, String) {
    (
        "AccessDeniedException".into(),
        format!(
            "User: {user} is not authorized to perform: kms:{op} on resource: {key_arn} because \
             no resource-based policy allows the kms:{op} action"
        ),
    )
}

/// AWS's one text for every denial on another account's key.
fn cross_denied(user: &str, op: &str) -> (String, String) {
    (
        "AccessDeniedException".into(),
        format!(
            "User: {user} is not authorized to perform: kms:{op} on this resource because the \
             resource does not exist in this Region, no resource-based policies allow access, or \
             a resource-based policy explicitly denies access"
        ),
    )
}

fn ctx(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn subset(pairs: &[(&str, &str)]) -> GrantConstraints {
    GrantConstraints::builder()
        .set_encryption_context_subset(Some(ctx(pairs)))
        .build()
}

fn equals(pairs: &[(&str, &str)]) -> GrantConstraints {
    GrantConstraints::builder()
        .set_encryption_context_equals(Some(ctx(pairs)))
        .build()
}

/// CreateGrant; returns (grant id, grant token).
async fn grant(
    kms: &Client,
    key: &str,
    grantee: &str,
    ops: &[Op],
    constraints: Option<GrantConstraints>,
    retiring: Option<&str>,
) -> (String, String) {
    let out = kms
        .create_grant()
        .key_id(key)
        .grantee_principal(grantee)
        .set_operations(Some(ops.to_vec()))
        .set_constraints(constraints)
        .set_retiring_principal(retiring.map(str::to_string))
        .send()
        .await
        .unwrap();
    (
        out.grant_id().unwrap().to_string(),
        out.grant_token().unwrap().to_string(),
    )
}

async fn encrypt(
    kms: &Client,
    key: &str,
    context: &[(&str, &str)],
) -> Result<Blob, (String, String)> {
    kms.encrypt()
        .key_id(key)
        .plaintext(Blob::new(b"grant me".to_vec()))
        .set_encryption_context((!context.is_empty()).then(|| ctx(context)))
        .send()
        .await
        .map(|o| o.ciphertext_blob.unwrap())
        .map_err(|e| (common::code(&e), common::message(&e)))
}

/// `token` with one base64 character changed (still base64, no longer ours).
fn tamper(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

/// Every grant of a key (following markers).
async fn all_grants(kms: &Client, key: &str) -> Vec<GrantListEntry> {
    let mut out = Vec::new();
    let mut marker = None;
    loop {
        let page = kms
            .list_grants()
            .key_id(key)
            .set_marker(marker)
            .send()
            .await
            .unwrap();
        out.extend(page.grants().iter().cloned());
        if !page.truncated() {
            assert!(page.next_marker().is_none());
            return out;
        }
        marker = page.next_marker().map(str::to_string);
    }
}

fn grant_ids(entries: &[GrantListEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|g| g.grant_id().unwrap().to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// What a grant allows

#[tokio::test]
async fn grantee_gets_exactly_the_granted_operations() {
    let e = env().await;
    let (key, arn) = common::new_key(&e.alice).await;
    let (_, other_arn) = common::new_key(&e.alice).await;

    // No policy lets carol use the key.
    assert_eq!(
        encrypt(&e.carol, &key, &[]).await.unwrap_err(),
        denied(CAROL, "Encrypt", &arn)
    );

    let ops = [
        Op::Encrypt,
        Op::Decrypt,
        Op::GenerateDataKey,
        Op::ReEncryptFrom,
        Op::ReEncryptTo,
        Op::DescribeKey,
    ];
    let (grant_id, token) = grant(&e.alice, &key, CAROL, &ops, None, None).await;
    assert_eq!(grant_id.len(), 64);
    assert!(grant_id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(!token.is_empty());

    // Each granted operation works at once (no token needed).
    let blob = encrypt(&e.carol, &key, &[]).await.unwrap();
    let plain = e
        .carol
        .decrypt()
        .ciphertext_blob(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(plain.plaintext().unwrap().as_ref(), b"grant me");
    e.carol
        .generate_data_key()
        .key_id(&arn)
        .number_of_bytes(32)
        .send()
        .await
        .unwrap();
    let re = e
        .carol
        .re_encrypt()
        .ciphertext_blob(blob)
        .destination_key_id(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(re.key_id(), Some(arn.as_str()));
    let md = e.carol.describe_key().key_id(&key).send().await.unwrap();
    assert_eq!(md.key_metadata().unwrap().arn(), Some(arn.as_str()));

    // Everything else is denied, with AWS's wording.
    assert_eq!(
        common::fail(
            e.carol
                .generate_data_key_without_plaintext()
                .key_id(&key)
                .number_of_bytes(32)
                .send()
                .await
        ),
        denied(CAROL, "GenerateDataKeyWithoutPlaintext", &arn)
    );
    assert_eq!(
        common::fail(e.carol.disable_key().key_id(&key).send().await),
        denied(CAROL, "DisableKey", &arn)
    );
    assert_eq!(
        common::fail(e.carol.list_grants().key_id(&key).send().await),
        denied(CAROL, "ListGrants", &arn)
    );
    assert_eq!(
        common::fail(
            e.carol
                .create_grant()
                .key_id(&key)
                .grantee_principal(DAVE)
                .operations(Op::Encrypt)
                .send()
                .await
        ),
        denied(CAROL, "CreateGrant", &arn)
    );
    assert_eq!(
        common::fail(
            e.carol
                .revoke_grant()
                .key_id(&key)
                .grant_id(&grant_id)
                .send()
                .await
        ),
        denied(CAROL, "RevokeGrant", &arn)
    );
    // A grant is for one key only.
    assert_eq!(
        encrypt(&e.carol, &other_arn, &[]).await.unwrap_err(),
        denied(CAROL, "Encrypt", &other_arn)
    );
    // ReEncrypt into a key carol has no grant on: the destination half is denied.
    let blob = encrypt(&e.carol, &key, &[]).await.unwrap();
    assert_eq!(
        common::fail(
            e.carol
                .re_encrypt()
                .ciphertext_blob(blob)
                .destination_key_id(&other_arn)
                .send()
                .await
        ),
        denied(CAROL, "ReEncryptTo", &other_arn)
    );
}

#[tokio::test]
async fn constraints_subset_and_equals() {
    let e = env().await;
    let (key, arn) = common::new_key(&e.alice).await;
    grant(
        &e.alice,
        &key,
        CAROL,
        &[Op::Encrypt, Op::Decrypt, Op::DescribeKey],
        Some(subset(&[("Dept", "IT")])),
        None,
    )
    .await;
    // Subset: keys compare case-insensitively, values exactly; more pairs are fine.
    let blob = encrypt(&e.carol, &key, &[("dept", "IT"), ("x", "1")])
        .await
        .unwrap();
    e.carol
        .decrypt()
        .ciphertext_blob(blob)
        .set_encryption_context(Some(ctx(&[("dept", "IT"), ("x", "1")])))
        .send()
        .await
        .unwrap();
    for bad in [&[("Dept", "it")][..], &[][..], &[("Team", "IT")][..]] {
        assert_eq!(
            encrypt(&e.carol, &key, bad).await.unwrap_err(),
            denied(CAROL, "Encrypt", &arn),
            "{bad:?}"
        );
    }
    // Constraints do not apply to DescribeKey.
    e.carol.describe_key().key_id(&key).send().await.unwrap();

    let (key2, arn2) = common::new_key(&e.alice).await;
    grant(
        &e.alice,
        &key2,
        CAROL,
        &[Op::Encrypt],
        Some(equals(&[("Dept", "IT"), ("Stage", "prod")])),
        None,
    )
    .await;
    // Equals: exactly these pairs (keys case-insensitive), in any order.
    encrypt(&e.carol, &key2, &[("stage", "prod"), ("DEPT", "IT")])
        .await
        .unwrap();
    for bad in [
        &[("Dept", "IT")][..],
        &[("Dept", "IT"), ("Stage", "prod"), ("x", "1")][..],
        &[("Dept", "IT"), ("Stage", "Prod")][..],
        &[][..],
    ] {
        assert_eq!(
            encrypt(&e.carol, &key2, bad).await.unwrap_err(),
            denied(CAROL, "Encrypt", &arn2),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn grant_to_another_accounts_principal() {
    let e = env().await;
    let (key, arn) = common::new_key(&e.alice).await;
    assert_eq!(
        encrypt(&e.frank, &arn, &[]).await.unwrap_err(),
        cross_denied(FRANK, "Encrypt")
    );
    grant(
        &e.alice,
        &key,
        FRANK,
        &[Op::Encrypt, Op::Decrypt, Op::DescribeKey],
        None,
        Some(FRANK),
    )
    .await;
    // frank, who has no identity policy, uses the key by its ARN.
    let blob = encrypt(&e.frank, &arn, &[]).await.unwrap();
    let plain = e
        .frank
        .decrypt()
        .ciphertext_blob(blob)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.key_id(), Some(arn.as_str()));
    e.frank.describe_key().key_id(&arn).send().await.unwrap();
    // A bare key id resolves in frank's own account.
    assert_eq!(
        encrypt(&e.frank, &key, &[]).await.unwrap_err(),
        (
            "NotFoundException".into(),
            format!("Key 'arn:aws:kms:us-east-1:{B}:key/{key}' does not exist")
        )
    );
    // Nothing beyond the grant.
    assert_eq!(
        common::fail(e.frank.disable_key().key_id(&arn).send().await),
        cross_denied(FRANK, "DisableKey")
    );
    // bob, an administrator of account B, cannot create grants on A's key: A's key policy
    // does not trust account B.
    assert_eq!(
        common::fail(
            e.bob
                .create_grant()
                .key_id(&arn)
                .grantee_principal(FRANK)
                .operations(Op::Encrypt)
                .send()
                .await
        ),
        cross_denied("arn:aws:iam::444455556666:user/bob", "CreateGrant")
    );
    // Account B lists what frank may retire (on A's key); frank retires it by key ARN.
    let listed = e
        .bob
        .list_retirable_grants()
        .retiring_principal(FRANK)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.grants().len(), 1);
    let entry = &listed.grants()[0];
    assert_eq!(entry.key_id(), Some(arn.as_str()));
    assert_eq!(
        entry.issuing_account(),
        Some(format!("arn:aws:iam::{A}:root").as_str())
    );
    e.frank
        .retire_grant()
        .key_id(&arn)
        .grant_id(entry.grant_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        encrypt(&e.frank, &arn, &[]).await.unwrap_err(),
        cross_denied(FRANK, "Encrypt")
    );
}

#[tokio::test]
async fn grants_across_accounts_by_key_policy() {
    let e = env().await;
    let (key, arn) = common::new_key(&e.alice).await;
    // A's key policy trusts account B with CreateGrant (and keeps A's own statement).
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
        {{"Sid":"A","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{A}:root"}},"Action":"kms:*","Resource":"*"}},
        {{"Sid":"B","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{B}:root"}},"Action":["kms:CreateGrant","kms:ListGrants"],"Resource":"*",
          "Condition":{{"ForAllValues:StringEquals":{{"kms:GrantOperations":["Encrypt","Decrypt"]}},"Bool":{{"kms:GrantIsForAWSResource":"false"}}}}}}]}}"#
    );
    e.alice
        .put_key_policy()
        .key_id(&key)
        .policy(policy)
        .send()
        .await
        .unwrap();
    // bob (an administrator of B) grants frank Encrypt on A's key, by its ARN.
    grant(&e.bob, &arn, FRANK, &[Op::Encrypt], None, None).await;
    encrypt(&e.frank, &arn, &[]).await.unwrap();
    // The condition on kms:GrantOperations holds the line.
    assert_eq!(
        common::fail(
            e.bob
                .create_grant()
                .key_id(&arn)
                .grantee_principal(FRANK)
                .operations(Op::Encrypt)
                .operations(Op::GenerateDataKey)
                .send()
                .await
        ),
        cross_denied("arn:aws:iam::444455556666:user/bob", "CreateGrant")
    );
    // The grant's issuing account is B's.
    let grants = e
        .bob
        .list_grants()
        .key_id(&arn)
        .send()
        .await
        .unwrap()
        .grants()
        .to_vec();
    assert_eq!(grants.len(), 1);
    assert_eq!(
        grants[0].issuing_account(),
        Some(format!("arn:aws:iam::{B}:root").as_str())
    );
    // A bare key id is looked up in bob's own account.
    assert_eq!(
        common::fail(e.bob.list_grants().key_id(&key).send().await),
        (
            "NotFoundException".into(),
            format!("Key 'arn:aws:kms:us-east-1:{B}:key/{key}' does not exist")
        )
    );
}

#[tokio::test]
async fn create_grant_through_a_grant() {
    let e = env().await;
    let (key, arn) = common::new_key(&e.alice).await;
    grant(
        &e.alice,
        &key,
        CAROL,
        &[Op::Encrypt, Op::Decrypt, Op::CreateGrant],
        Some(subset(&[("app", "web")])),
        None,
    )
    .await;
    // A subset of the operations, constraints as strict or stricter: allowed.
    grant(
        &e.carol,
        &key,
        DAVE,
        &[Op::Encrypt],
        Some(subset(&[("app", "web"), ("tier", "1")])),
        None,
    )
    .await;
    encrypt(&e.dave, &key, &[("app", "web"), ("tier", "1")])
        .await
        .unwrap();
    assert_eq!(
        encrypt(&e.dave, &key, &[("app", "web")]).await.unwrap_err(),
        denied(DAVE, "Encrypt", &arn)
    );
    // Subset -> Equals is stricter too.
    grant(
        &e.carol,
        &key,
        DAVE,
        &[Op::Decrypt],
        Some(equals(&[("app", "web")])),
        None,
    )
    .await;
    let refused = [
        // More operations than the parent grant has.
        (
            vec![Op::Encrypt, Op::GenerateDataKey],
            Some(subset(&[("app", "web")])),
        ),
        // No constraints: looser than the parent.
        (vec![Op::Encrypt], None),
        // A different pair.
        (vec![Op::Encrypt], Some(subset(&[("app", "api")]))),
    ];
    for (ops, constraints) in refused {
        assert_eq!(
            common::fail(
                e.carol
                    .create_grant()
                    .key_id(&key)
                    .grantee_principal(DAVE)
                    .set_operations(Some(ops.clone()))
                    .set_constraints(constraints)
                    .send()
                    .await
            ),
            denied(CAROL, "CreateGrant", &arn),
            "{ops:?}"
        );
    }
    // dave got no CreateGrant, so he cannot pass anything on.
    assert_eq!(
        common::fail(
            e.dave
                .create_grant()
                .key_id(&key)
                .grantee_principal(CAROL)
                .operations(Op::Encrypt)
                .constraints(subset(&[("app", "web"), ("tier", "1")]))
                .send()
                .await
        ),
        denied(DAVE, "CreateGrant", &arn)
    );
    assert_eq!(all_grants(&e.alice, &key).await.len(), 3);
}

// ---------------------------------------------------------------------------------------------
// Retiring and revoking

#[tokio::test]
async fn who_may_retire() {
    let e = env().await;
    let (key, arn) = common::new_key(&e.alice).await;

    // The retiring principal, by key ARN and grant id.
    let (g1, _) = grant(&e.alice, &key, CAROL, &[Op::Encrypt], None, Some(DAVE)).await;
    // Not the grantee without RetireGrant, not a stranger.
    assert_eq!(
        common::fail(
            e.carol
                .retire_grant()
                .key_id(&arn)
                .grant_id(&g1)
                .send()
                .await
        ),
        denied(CAROL, "RetireGrant", &arn)
    );
    assert_eq!(
        common::fail(
            e.gina
                .retire_grant()
                .key_id(&arn)
                .grant_id(&g1)
                .send()
                .await
        ),
        (
            "AccessDeniedException".into(),
            format!(
                "User: {GINA} is not authorized to perform: kms:RetireGrant on resource: {arn} \
                 with an explicit deny in an identity-based policy"
            )
        )
    );
    e.dave
        .retire_grant()
        .key_id(&arn)
        .grant_id(&g1)
        .send()
        .await
        .unwrap();
    assert!(all_grants(&e.alice, &key).await.is_empty());
    assert_eq!(
        common::fail(
            e.dave
                .retire_grant()
                .key_id(&arn)
                .grant_id(&g1)
                .send()
                .await
        ),
        (
            "NotFoundException".into(),
            format!("Grant ID {g1} does not exist")
        )
    );

    // The grantee, when the grant lists RetireGrant; by token.
    let (g2, t2) = grant(
        &e.alice,
        &key,
        CAROL,
        &[Op::Encrypt, Op::RetireGrant],
        None,
        None,
    )
    .await;
    e.carol
        .retire_grant()
        .grant_token(&t2)
        .send()
        .await
        .unwrap();
    assert!(!grant_ids(&all_grants(&e.alice, &key).await).contains(&g2));

    // The issuing account (alice's identity policy allows kms:RetireGrant).
    let (g3, _) = grant(&e.alice, &key, CAROL, &[Op::Encrypt], None, None).await;
    e.alice
        .retire_grant()
        .key_id(&arn)
        .grant_id(&g3)
        .send()
        .await
        .unwrap();

    // kms:RetireGrant in a key policy has no effect.
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
        {{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{A}:root"}},"Action":"kms:*","Resource":"*"}},
        {{"Effect":"Allow","Principal":{{"AWS":"{DAVE}"}},"Action":"kms:RetireGrant","Resource":"*"}}]}}"#
    );
    e.alice
        .put_key_policy()
        .key_id(&key)
        .policy(policy)
        .send()
        .await
        .unwrap();
    let (g4, t4) = grant(&e.alice, &key, CAROL, &[Op::Encrypt], None, None).await;
    assert_eq!(
        common::fail(e.dave.retire_grant().grant_token(&t4).send().await),
        denied(DAVE, "RetireGrant", &arn)
    );
    // An identity Deny blocks even the retiring principal.
    let (g5, t5) = grant(&e.alice, &key, CAROL, &[Op::Encrypt], None, Some(GINA)).await;
    assert_eq!(
        common::fail(e.gina.retire_grant().grant_token(&t5).send().await).0,
        "AccessDeniedException"
    );
    let mut left = grant_ids(&all_grants(&e.alice, &key).await);
    left.sort();
    let mut expected = vec![g4, g5];
    expected.sort();
    assert_eq!(left, expected);
}

#[tokio::test]
async fn retire_grant_errors_and_dry_run() {
    let e = env().await;
    let (key, arn) = common::new_key(&e.alice).await;
    let (g, t) = grant(&e.alice, &key, CAROL, &[Op::Encrypt], None, Some(DAVE)).await;

    // DryRun: would have succeeded; nothing changes.
    assert_eq!(
        common::fail(
            e.dave
                .retire_grant()
                .grant_token(&t)
                .dry_run(true)
                .send()
                .await
        ),
        (
            "DryRunOperationException".into(),
            "The request would have succeeded, but the DryRun option is set.".into()
        )
    );
    // A DryRun by someone not allowed is AccessDenied.
    assert_eq!(
        common::fail(
            e.carol
                .retire_grant()
                .grant_token(&t)
                .dry_run(true)
                .send()
                .await
        ),
        denied(CAROL, "RetireGrant", &arn)
    );
    assert_eq!(
        grant_ids(&all_grants(&e.alice, &key).await),
        vec![g.clone()]
    );

    // By id, the key must be named by its ARN.
    assert_eq!(
        common::fail(e.dave.retire_grant().key_id(&key).grant_id(&g).send().await),
        ("InvalidArnException".into(), format!("Invalid arn {key}"))
    );
    assert_eq!(
        common::fail(e.dave.retire_grant().grant_id(&g).send().await).0,
        "ValidationException"
    );
    assert_eq!(
        common::fail(e.dave.retire_grant().send().await).0,
        "ValidationException"
    );
    assert_eq!(
        common::fail(
            e.dave
                .retire_grant()
                .key_id(&arn)
                .grant_id("not-a-grant-id")
                .send()
                .await
        ),
        (
            "InvalidGrantIdException".into(),
            "Invalid grantId 'not-a-grant-id'".into()
        )
    );
    // A grant id of another key.
    let (_, other_arn) = common::new_key(&e.alice).await;
    assert_eq!(
        common::fail(
            e.dave
                .retire_grant()
                .key_id(&other_arn)
                .grant_id(&g)
                .send()
                .await
        ),
        (
            "NotFoundException".into(),
            format!("Grant ID {g} does not exist")
        )
    );
    // Garbage and tampered tokens.
    for bad in ["garbage".to_string(), "AAAA".to_string(), tamper(&t)] {
        assert_eq!(
            common::fail(e.dave.retire_grant().grant_token(&bad).send().await),
            (
                "InvalidGrantTokenException".into(),
                "Invalid grant token".into()
            ),
            "{bad}"
        );
    }
    e.dave.retire_grant().grant_token(&t).send().await.unwrap();
    // The token of a retired grant still parses; the grant is gone.
    assert_eq!(
        common::fail(e.dave.retire_grant().grant_token(&t).send().await),
        (
            "NotFoundException".into(),
            format!("Grant ID {g} does not exist")
        )
    );
}

#[tokio::test]
async fn revoke_grant() {
    let e = env().await;
    let (key, arn) = common::new_key(&e.alice).await;
    let (g, _) = grant(&e.alice, &key, CAROL, &[Op::Encrypt], None, None).await;
    encrypt(&e.carol, &key, &[]).await.unwrap();

    assert_eq!(
        common::fail(e.dave.revoke_grant().key_id(&key).grant_id(&g).send().await),
        denied(DAVE, "RevokeGrant", &arn)
    );
    assert_eq!(
        common::fail(
            e.alice
                .revoke_grant()
                .key_id(&key)
                .grant_id(&g)
                .dry_run(true)
                .send()
                .await
        )
        .0,
        "DryRunOperationException"
    );
    encrypt(&e.carol, &key, &[]).await.unwrap();
    assert_eq!(
        common::fail(
            e.alice
                .revoke_grant()
                .key_id(&key)
                .grant_id("0123")
                .send()
                .await
        ),
        (
            "InvalidGrantIdException".into(),
            "Invalid grantId '0123'".into()
        )
    );
    let unknown = "ab".repeat(32);
    assert_eq!(
        common::fail(
            e.alice
                .revoke_grant()
                .key_id(&key)
                .grant_id(&unknown)
                .send()
                .await
        ),
        (
            "NotFoundException".into(),
            format!("Grant ID {unknown} does not exist")
        )
    );
    e.alice
        .revoke_grant()
        .key_id(&arn)
        .grant_id(&g)
        .send()
        .await
        .unwrap();
    assert_eq!(
        encrypt(&e.carol, &key, &[]).await.unwrap_err(),
        denied(CAROL, "Encrypt", &arn)
    );
    assert!(all_grants(&e.alice, &key).await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Listing

#[tokio::test]
async fn list_grants_entries_paging_and_filters() {
    let e = env().await;
    let (key, arn) = common::new_key(&e.alice).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let grantee = if i % 2 == 0 { CAROL } else { DAVE };
        let mut req = e
            .alice
            .create_grant()
            .key_id(&key)
            .grantee_principal(grantee)
            .operations(Op::Decrypt)
            .operations(Op::Encrypt);
        if i == 0 {
            req = req
                .name("first-grant")
                .retiring_principal(DAVE)
                .constraints(subset(&[("k", "v")]));
        }
        ids.push(req.send().await.unwrap().grant_id().unwrap().to_string());
        // Distinct creation times.
        e.srv.clock.advance(chrono::Duration::milliseconds(5));
    }

    let all = all_grants(&e.alice, &key).await;
    assert_eq!(grant_ids(&all), ids, "creation order");
    let first = &all[0];
    assert_eq!(first.key_id(), Some(arn.as_str()));
    assert_eq!(first.name(), Some("first-grant"));
    assert_eq!(first.grantee_principal(), Some(CAROL));
    assert_eq!(first.retiring_principal(), Some(DAVE));
    assert_eq!(
        first.issuing_account(),
        Some(format!("arn:aws:iam::{A}:root").as_str())
    );
    assert_eq!(first.operations(), &[Op::Decrypt, Op::Encrypt]);
    assert!(first.creation_date().is_some());
    let c = first.constraints().unwrap();
    assert_eq!(c.encryption_context_subset(), Some(&ctx(&[("k", "v")])));
    assert_eq!(c.encryption_context_equals(), None);
    // Optional members are absent, not empty.
    assert_eq!(all[1].name(), None);
    assert_eq!(all[1].retiring_principal(), None);
    assert!(all[1].constraints().is_none());

    // Pages of two: 2 + 2 + 1.
    let p1 = e
        .alice
        .list_grants()
        .key_id(&key)
        .limit(2)
        .send()
        .await
        .unwrap();
    assert!(p1.truncated());
    assert_eq!(grant_ids(p1.grants()), ids[..2]);
    let p2 = e
        .alice
        .list_grants()
        .key_id(&key)
        .limit(2)
        .marker(p1.next_marker().unwrap())
        .send()
        .await
        .unwrap();
    assert!(p2.truncated());
    assert_eq!(grant_ids(p2.grants()), ids[2..4]);
    let p3 = e
        .alice
        .list_grants()
        .key_id(&key)
        .limit(2)
        .marker(p2.next_marker().unwrap())
        .send()
        .await
        .unwrap();
    assert!(!p3.truncated());
    assert!(p3.next_marker().is_none());
    assert_eq!(grant_ids(p3.grants()), ids[4..]);
    // A marker stays valid when the grant it names goes away.
    e.alice
        .revoke_grant()
        .key_id(&key)
        .grant_id(&ids[1])
        .send()
        .await
        .unwrap();
    let again = e
        .alice
        .list_grants()
        .key_id(&key)
        .limit(2)
        .marker(p1.next_marker().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(grant_ids(again.grants()), ids[2..4]);

    // Filters.
    let by_grantee = e
        .alice
        .list_grants()
        .key_id(&key)
        .grantee_principal(DAVE)
        .send()
        .await
        .unwrap();
    assert_eq!(grant_ids(by_grantee.grants()), vec![ids[3].clone()]);
    let by_id = e
        .alice
        .list_grants()
        .key_id(&arn)
        .grant_id(&ids[2])
        .send()
        .await
        .unwrap();
    assert_eq!(grant_ids(by_id.grants()), vec![ids[2].clone()]);
    let none = e
        .alice
        .list_grants()
        .key_id(&key)
        .grant_id("cd".repeat(32))
        .send()
        .await
        .unwrap();
    assert!(none.grants().is_empty() && !none.truncated());

    // Errors.
    assert_eq!(
        common::fail(
            e.alice
                .list_grants()
                .key_id(&key)
                .grant_id("xyz")
                .send()
                .await
        ),
        (
            "InvalidGrantIdException".into(),
            "Invalid grantId 'xyz'".into()
        )
    );
    assert_eq!(
        common::fail(
            e.alice
                .list_grants()
                .key_id(&key)
                .marker("bogus")
                .send()
                .await
        ),
        ("InvalidMarkerException".into(), "Invalid marker".into())
    );
    assert_eq!(
        common::fail(e.alice.list_grants().key_id(&key).limit(101).send().await),
        (
            "ValidationException".into(),
            "1 validation error detected: Value '101' at 'limit' failed to satisfy constraint: \
             Member must have value less than or equal to 100"
                .into()
        )
    );
    assert_eq!(
        common::fail(e.alice.list_grants().key_id("alias/x").send().await),
        (
            "InvalidArnException".into(),
            "Key Aliases are not supported for this operation.".into()
        )
    );
}

#[tokio::test]
async fn list_retirable_grants() {
    let e = env().await;
    let (k1, _) = common::new_key(&e.alice).await;
    let (k2, arn2) = common::new_key(&e.alice).await;
    let (a, _) = grant(&e.alice, &k1, CAROL, &[Op::Encrypt], None, Some(DAVE)).await;
    let (b, _) = grant(&e.alice, &k2, CAROL, &[Op::Decrypt], None, Some(DAVE)).await;
    grant(&e.alice, &k2, DAVE, &[Op::Decrypt], None, Some(CAROL)).await;
    let mut expected = vec![a, b];
    expected.sort();

    // Identity-only authorization: alice (administrator) may list dave's.
    let mut seen = Vec::new();
    let mut marker = None;
    loop {
        let page = e
            .alice
            .list_retirable_grants()
            .retiring_principal(DAVE)
            .limit(1)
            .set_marker(marker)
            .send()
            .await
            .unwrap();
        assert_eq!(page.grants().len(), 1);
        seen.extend(grant_ids(page.grants()));
        if !page.truncated() {
            break;
        }
        marker = page.next_marker().map(str::to_string);
    }
    assert_eq!(seen, expected, "ordered by grant id");
    let one = e
        .alice
        .list_retirable_grants()
        .retiring_principal(DAVE)
        .send()
        .await
        .unwrap();
    assert!(one
        .grants()
        .iter()
        .any(|g| g.key_id() == Some(arn2.as_str())));

    // dave has no identity policy: denied on "*".
    assert_eq!(
        common::fail(
            e.dave
                .list_retirable_grants()
                .retiring_principal(DAVE)
                .send()
                .await
        ),
        (
            "AccessDeniedException".into(),
            format!(
                "User: {DAVE} is not authorized to perform: kms:ListRetirableGrants on \
                 resource: * because no identity-based policy allows the \
                 kms:ListRetirableGrants action"
            )
        )
    );
    // Only principals of the caller's account.
    assert_eq!(
        common::fail(
            e.alice
                .list_retirable_grants()
                .retiring_principal(FRANK)
                .send()
                .await
        ),
        cross_denied(ALICE, "ListRetirableGrants")
    );
    assert_eq!(
        common::fail(
            e.alice
                .list_retirable_grants()
                .retiring_principal("ec2.amazonaws.com")
                .send()
                .await
        ),
        (
            "InvalidArnException".into(),
            "ARN does not refer to a valid principal: ec2.amazonaws.com".into()
        )
    );
    assert_eq!(
        common::fail(
            e.alice
                .list_retirable_grants()
                .retiring_principal(DAVE)
                .marker("nope")
                .send()
                .await
        ),
        ("InvalidMarkerException".into(), "Invalid marker".into())
    );
}

// ---------------------------------------------------------------------------------------------
// CreateGrant rules

#[tokio::test]
async fn name_makes_create_grant_idempotent() {
    let e = env().await;
    let (key, _) = common::new_key(&e.alice).await;
    let create = |name: Option<&str>, ops: Vec<Op>| {
        e.alice
            .create_grant()
            .key_id(&key)
            .grantee_principal(CAROL)
            .set_operations(Some(ops))
            .constraints(subset(&[("a", "1")]))
            .set_name(name.map(str::to_string))
            .send()
    };
    let first = create(Some("app-1"), vec![Op::Encrypt, Op::Decrypt])
        .await
        .unwrap();
    // The same request (operations in another order): the same grant, a fresh token.
    let retry = create(Some("app-1"), vec![Op::Decrypt, Op::Encrypt])
        .await
        .unwrap();
    assert_eq!(retry.grant_id(), first.grant_id());
    assert_ne!(retry.grant_token(), first.grant_token());
    assert_eq!(all_grants(&e.alice, &key).await.len(), 1);
    // Both tokens work.
    e.carol
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"x".to_vec()))
        .encryption_context("a", "1")
        .grant_tokens(first.grant_token().unwrap())
        .grant_tokens(retry.grant_token().unwrap())
        .send()
        .await
        .unwrap();
    // Different properties under the same name, or no name: new grants.
    let other = create(Some("app-1"), vec![Op::Encrypt]).await.unwrap();
    assert_ne!(other.grant_id(), first.grant_id());
    let unnamed1 = create(None, vec![Op::Encrypt]).await.unwrap();
    let unnamed2 = create(None, vec![Op::Encrypt]).await.unwrap();
    assert_ne!(unnamed1.grant_id(), unnamed2.grant_id());
    assert_eq!(all_grants(&e.alice, &key).await.len(), 4);
}

#[tokio::test]
async fn create_grant_validation() {
    let e = env().await;
    let (key, arn) = common::new_key(&e.alice).await;
    let try_create = |grantee: &str, ops: Vec<Op>| {
        e.alice
            .create_grant()
            .key_id(&key)
            .grantee_principal(grantee)
            .set_operations(Some(ops))
            .send()
    };
    // Operations a symmetric key does not have.
    for op in [Op::Sign, Op::GetPublicKey, Op::GenerateMac] {
        let name = op.as_str().to_string();
        assert_eq!(
            common::fail(try_create(CAROL, vec![Op::Encrypt, op]).await),
            (
                "ValidationException".into(),
                format!(
                    "The grant operation {name} is not valid for {arn}, whose key spec is \
                     SYMMETRIC_DEFAULT and key usage ENCRYPT_DECRYPT."
                )
            )
        );
    }
    let (code, message) = common::fail(try_create(CAROL, vec![Op::from("Fly")]).await);
    assert_eq!(code, "ValidationException");
    assert!(
        message.starts_with(
            "1 validation error detected: Value '[Fly]' at 'operations' failed to satisfy \
             constraint: Member must satisfy constraint: [Member must satisfy enum value set: \
             [Decrypt, Encrypt,"
        ),
        "{message}"
    );
    assert_eq!(
        common::fail(try_create(CAROL, vec![]).await),
        (
            "ValidationException".into(),
            "1 validation error detected: Value '[]' at 'operations' failed to satisfy \
             constraint: Member must have length greater than or equal to 1"
                .into()
        )
    );
    assert_eq!(
        common::fail(try_create(CAROL, vec![Op::CreateGrant]).await),
        (
            "ValidationException".into(),
            "Grants must not contain only the CreateGrant operation.".into()
        )
    );
    // Principals: well-formed ARNs of principals that exist.
    for bad in [
        "ec2.amazonaws.com",
        "111122223333",
        "arn:aws:iam::111122223333:user/nobody",
        "arn:aws:iam::111122223333:group/admins",
        "arn:aws:iam::111122223333:role/none",
    ] {
        assert_eq!(
            common::fail(try_create(bad, vec![Op::Encrypt]).await),
            (
                "InvalidArnException".into(),
                format!("ARN does not refer to a valid principal: {bad}")
            ),
            "{bad}"
        );
    }
    assert_eq!(
        common::fail(try_create("bad principal", vec![Op::Encrypt]).await),
        (
            "ValidationException".into(),
            "1 validation error detected: Value 'bad principal' at 'granteePrincipal' failed to \
             satisfy constraint: Member must satisfy regular expression pattern: \
             ^[\\w+=,.@:/-]+$"
                .into()
        )
    );
    // An account root of any account is a valid grantee.
    grant(
        &e.alice,
        &key,
        "arn:aws:iam::999988887777:root",
        &[Op::Encrypt],
        None,
        None,
    )
    .await;
    assert_eq!(
        common::fail(
            e.alice
                .create_grant()
                .key_id(&key)
                .grantee_principal(CAROL)
                .operations(Op::Encrypt)
                .retiring_principal("arn:aws:iam::111122223333:user/ghost")
                .send()
                .await
        ),
        (
            "InvalidArnException".into(),
            "ARN does not refer to a valid principal: arn:aws:iam::111122223333:user/ghost".into()
        )
    );
    assert_eq!(
        common::fail(
            e.alice
                .create_grant()
                .key_id(&key)
                .grantee_principal(CAROL)
                .operations(Op::Encrypt)
                .name("has space")
                .send()
                .await
        ),
        (
            "ValidationException".into(),
            "1 validation error detected: Value 'has space' at 'name' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$"
                .into()
        )
    );
    let nine: Vec<(String, String)> = (0..9).map(|i| (format!("k{i}"), "v".into())).collect();
    let nine: Vec<(&str, &str)> = nine.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        common::fail(
            e.alice
                .create_grant()
                .key_id(&key)
                .grantee_principal(CAROL)
                .operations(Op::Encrypt)
                .constraints(subset(&nine))
                .send()
                .await
        ),
        (
            "ValidationException".into(),
            "1 validation error detected: Value at 'constraints.encryptionContextSubset' failed \
             to satisfy constraint: Member must have length less than or equal to 8"
                .into()
        )
    );
    // Newer API members this server cannot honour are refused, not ignored.
    assert_eq!(
        common::fail(
            e.alice
                .create_grant()
                .key_id(&key)
                .grantee_principal(CAROL)
                .operations(Op::Encrypt)
                .constraints(
                    GrantConstraints::builder()
                        .source_arn("arn:aws:s3:::bucket")
                        .build()
                )
                .send()
                .await
        )
        .0,
        "UnsupportedOperationException"
    );
    assert_eq!(
        common::fail(
            e.alice
                .create_grant()
                .key_id(&key)
                .grantee_service_principal("ec2.amazonaws.com")
                .operations(Op::Encrypt)
                .send()
                .await
        )
        .0,
        "UnsupportedOperationException"
    );
    // Keys by id or ARN only.
    e.alice
        .create_alias()
        .alias_name("alias/granted")
        .target_key_id(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        common::fail(try_create_on(&e.alice, "alias/granted").await),
        (
            "InvalidArnException".into(),
            "Key Aliases are not supported for this operation.".into()
        )
    );
}

async fn try_create_on(
    kms: &Client,
    key: &str,
) -> Result<
    aws_sdk_kms::operation::create_grant::CreateGrantOutput,
    SdkError<
        aws_sdk_kms::operation::create_grant::CreateGrantError,
        aws_sdk_kms::config::http::HttpResponse,
    >,
> {
    kms.create_grant()
        .key_id(key)
        .grantee_principal(CAROL)
        .operations(Op::Encrypt)
        .send()
        .await
}

/// 50,000 grants per key, then LimitExceededException. The rows are written straight into the
/// database (before anything has read the key's grants, so nothing is cached yet).
#[tokio::test]
async fn fifty_thousand_grants_per_key() {
    let e = env().await;
    let (key, _) = common::new_key(&e.alice).await;
    if let Some(url) = common::pg::url_of(&e.srv.env) {
        common::pg::psql(
            &url,
            &format!(
                "INSERT INTO grants (grant_id, key_id, issuing_account, name, \
                 grantee_principal, retiring_principal, operations, constraints, creation_ms) \
                 SELECT lpad(to_hex(i), 64, '0'), '{key}', '{A}', NULL, '{CAROL}', NULL, \
                 'Encrypt', NULL, i FROM generate_series(0, 49998) AS i"
            ),
        );
    } else {
        let mut db = rusqlite::Connection::open(e.srv.data_dir.path().join("kms.sqlite3")).unwrap();
        db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
        let tx = db.transaction().unwrap();
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO grants (grant_id, key_id, issuing_account, name, \
                     grantee_principal, retiring_principal, operations, constraints, \
                     creation_ms) VALUES (?1, ?2, ?3, NULL, ?4, NULL, 'Encrypt', NULL, ?5)",
                )
                .unwrap();
            for i in 0..49_999u64 {
                insert
                    .execute(rusqlite::params![
                        format!("{i:064x}"),
                        key,
                        A,
                        CAROL,
                        i as i64
                    ])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    // The 50,000th is fine, the next is not.
    grant(&e.alice, &key, DAVE, &[Op::Encrypt], None, None).await;
    assert_eq!(
        common::fail(try_create_on(&e.alice, &key).await),
        (
            "LimitExceededException".into(),
            "Grant quota for this key is 50000 but the current usage is 50000.".into()
        )
    );
    // The quota is per key.
    let (other, _) = common::new_key(&e.alice).await;
    try_create_on(&e.alice, &other).await.unwrap();
}

#[tokio::test]
async fn create_grant_dry_run_and_key_states() {
    let e = env().await;
    let (key, arn) = common::new_key(&e.alice).await;
    let dry = |kms: &Client, ops: Vec<Op>| {
        kms.create_grant()
            .key_id(&key)
            .grantee_principal(CAROL)
            .set_operations(Some(ops))
            .dry_run(true)
            .send()
    };
    let dry_ok = dry(&e.alice, vec![Op::Encrypt]);
    assert_eq!(
        common::fail(dry_ok.await),
        (
            "DryRunOperationException".into(),
            "The request would have succeeded, but the DryRun option is set.".into()
        )
    );
    assert_eq!(
        common::fail(dry(&e.carol, vec![Op::Encrypt]).await),
        denied(CAROL, "CreateGrant", &arn)
    );
    assert_eq!(
        common::fail(dry(&e.alice, vec![Op::Sign]).await).0,
        "ValidationException"
    );
    assert!(all_grants(&e.alice, &key).await.is_empty());

    // Key states: CreateGrant follows the table; listing and deleting grants work in every
    // state.
    let (g, _) = grant(&e.alice, &key, CAROL, &[Op::Encrypt], None, Some(DAVE)).await;
    e.alice.disable_key().key_id(&key).send().await.unwrap();
    assert_eq!(
        common::fail(try_create_on(&e.alice, &key).await),
        ("DisabledException".into(), format!("{arn} is disabled."))
    );
    assert_eq!(all_grants(&e.alice, &key).await.len(), 1);
    e.alice
        .schedule_key_deletion()
        .key_id(&key)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    assert_eq!(
        common::fail(try_create_on(&e.alice, &key).await),
        (
            "KMSInvalidStateException".into(),
            format!("{arn} is pending deletion.")
        )
    );
    assert_eq!(all_grants(&e.alice, &key).await.len(), 1);
    e.dave
        .retire_grant()
        .key_id(&arn)
        .grant_id(&g)
        .send()
        .await
        .unwrap();
    let (g2, _) = {
        e.alice
            .cancel_key_deletion()
            .key_id(&key)
            .send()
            .await
            .unwrap();
        e.alice.enable_key().key_id(&key).send().await.unwrap();
        grant(&e.alice, &key, CAROL, &[Op::Encrypt], None, None).await
    };
    e.alice.disable_key().key_id(&key).send().await.unwrap();
    e.alice
        .revoke_grant()
        .key_id(&key)
        .grant_id(&g2)
        .send()
        .await
        .unwrap();
    assert!(all_grants(&e.alice, &key).await.is_empty());
}

#[tokio::test]
async fn grants_go_with_their_key() {
    let e = env().await;
    let (key, arn) = common::new_key(&e.alice).await;
    let (g, t) = grant(&e.alice, &key, CAROL, &[Op::Encrypt], None, Some(DAVE)).await;
    e.alice
        .schedule_key_deletion()
        .key_id(&key)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    e.srv.clock.advance(chrono::Duration::days(8));
    assert_eq!(e.srv.run_maintenance().await.deleted, 1);

    let retirable = e
        .alice
        .list_retirable_grants()
        .retiring_principal(DAVE)
        .send()
        .await
        .unwrap();
    assert!(retirable.grants().is_empty());
    assert_eq!(
        common::fail(e.dave.retire_grant().grant_token(&t).send().await),
        (
            "NotFoundException".into(),
            format!("Grant ID {g} does not exist")
        )
    );
    assert_eq!(
        common::fail(e.alice.list_grants().key_id(&key).send().await),
        (
            "NotFoundException".into(),
            format!("Key '{arn}' does not exist")
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Grant tokens

#[tokio::test]
async fn grant_tokens_are_accepted_and_checked_everywhere() {
    let e = env().await;
    let (key, _) = common::new_key(&e.alice).await;
    let (g, token) = grant(
        &e.alice,
        &key,
        CAROL,
        &[
            Op::Encrypt,
            Op::Decrypt,
            Op::ReEncryptFrom,
            Op::ReEncryptTo,
            Op::GenerateDataKey,
            Op::GenerateDataKeyWithoutPlaintext,
            Op::DescribeKey,
            Op::CreateGrant,
        ],
        None,
        None,
    )
    .await;
    let blob = encrypt(&e.carol, &key, &[]).await.unwrap();

    // Every operation that takes GrantTokens, with a good token, then with garbage.
    for tokens in [
        vec![token.clone()],
        vec![token.clone(), "bm90IGEgdG9rZW4=".into()],
    ] {
        let good = tokens.len() == 1;
        let check = |r: Result<(), (String, String)>, what: &str| {
            if good {
                r.unwrap_or_else(|e| panic!("{what}: {e:?}"));
            } else {
                assert_eq!(
                    r.unwrap_err(),
                    (
                        "InvalidGrantTokenException".to_string(),
                        "Invalid grant token".to_string()
                    ),
                    "{what}"
                );
            }
        };
        let t = Some(tokens.clone());
        check(
            e.carol
                .encrypt()
                .key_id(&key)
                .plaintext(Blob::new(b"x".to_vec()))
                .set_grant_tokens(t.clone())
                .send()
                .await
                .map(drop)
                .map_err(|e| (common::code(&e), common::message(&e))),
            "Encrypt",
        );
        check(
            e.carol
                .decrypt()
                .ciphertext_blob(blob.clone())
                .set_grant_tokens(t.clone())
                .send()
                .await
                .map(drop)
                .map_err(|e| (common::code(&e), common::message(&e))),
            "Decrypt",
        );
        check(
            e.carol
                .re_encrypt()
                .ciphertext_blob(blob.clone())
                .destination_key_id(&key)
                .set_grant_tokens(t.clone())
                .send()
                .await
                .map(drop)
                .map_err(|e| (common::code(&e), common::message(&e))),
            "ReEncrypt",
        );
        check(
            e.carol
                .generate_data_key()
                .key_id(&key)
                .number_of_bytes(16)
                .set_grant_tokens(t.clone())
                .send()
                .await
                .map(drop)
                .map_err(|e| (common::code(&e), common::message(&e))),
            "GenerateDataKey",
        );
        check(
            e.carol
                .generate_data_key_without_plaintext()
                .key_id(&key)
                .number_of_bytes(16)
                .set_grant_tokens(t.clone())
                .send()
                .await
                .map(drop)
                .map_err(|e| (common::code(&e), common::message(&e))),
            "GenerateDataKeyWithoutPlaintext",
        );
        check(
            e.carol
                .describe_key()
                .key_id(&key)
                .set_grant_tokens(t.clone())
                .send()
                .await
                .map(drop)
                .map_err(|e| (common::code(&e), common::message(&e))),
            "DescribeKey",
        );
        check(
            e.carol
                .create_grant()
                .key_id(&key)
                .grantee_principal(DAVE)
                .operations(Op::Encrypt)
                .set_grant_tokens(t.clone())
                .send()
                .await
                .map(drop)
                .map_err(|e| (common::code(&e), common::message(&e))),
            "CreateGrant",
        );
    }

    // A token of a grant retired since is still a token (tokens only bridge propagation).
    e.alice
        .revoke_grant()
        .key_id(&key)
        .grant_id(&g)
        .send()
        .await
        .unwrap();
    e.alice
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"x".to_vec()))
        .grant_tokens(&token)
        .send()
        .await
        .unwrap();
    // ... and it gives nothing: carol's grant is gone.
    assert_eq!(
        common::fail(
            e.carol
                .encrypt()
                .key_id(&key)
                .plaintext(Blob::new(b"x".to_vec()))
                .grant_tokens(&token)
                .send()
                .await
        )
        .0,
        "AccessDeniedException"
    );
}

#[tokio::test]
async fn audit_records_name_the_grant_never_the_token() {
    let e = env().await;
    let (key, arn) = common::new_key(&e.alice).await;
    let (g, token) = grant(
        &e.alice,
        &key,
        CAROL,
        &[Op::Encrypt, Op::RetireGrant],
        Some(subset(&[("Dept", "IT")])),
        Some(DAVE),
    )
    .await;
    e.carol
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"x".to_vec()))
        .encryption_context("Dept", "IT")
        .grant_tokens(&token)
        .send()
        .await
        .unwrap();
    e.carol
        .retire_grant()
        .grant_token(&token)
        .send()
        .await
        .unwrap();

    let records = e.srv.audit_records().await;
    let raw = std::fs::read_to_string(e.srv.data_dir.path().join("audit.log")).unwrap();
    assert!(!raw.contains(&token), "a grant token reached the audit log");

    let create = records
        .iter()
        .find(|r| r["eventName"] == "CreateGrant")
        .unwrap();
    let p = &create["requestParameters"];
    assert_eq!(p["keyId"], key.as_str());
    assert_eq!(p["granteePrincipal"], CAROL);
    assert_eq!(p["retiringPrincipal"], DAVE);
    assert_eq!(
        p["operations"],
        serde_json::json!(["Encrypt", "RetireGrant"])
    );
    assert_eq!(
        p["constraints"]["encryptionContextSubset"],
        serde_json::json!({"Dept": "IT"})
    );
    assert!(p.get("grantTokens").is_none());
    assert_eq!(create["responseElements"]["grantId"], g.as_str());
    assert_eq!(create["responseElements"]["keyId"], arn.as_str());
    assert_eq!(create["readOnly"], false);

    let retire = records
        .iter()
        .find(|r| r["eventName"] == "RetireGrant")
        .unwrap();
    assert_eq!(retire["requestParameters"], serde_json::Value::Null);
    assert_eq!(retire["additionalEventData"]["grantId"], g.as_str());
    assert_eq!(retire["resources"][0]["ARN"], arn.as_str());
    assert_eq!(retire["userIdentity"]["arn"], CAROL);
}

/// The token MAC key is made once and kept (sealed under the root) across restarts: a token
/// issued before a restart is still accepted after it.
#[tokio::test]
async fn grant_tokens_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = common::backend_env();
    env.push(("KMS_LOG".into(), "warn".into()));
    let dev = "arn:aws:iam::111122223333:user/kms-dev";

    let (mut child, endpoint) =
        common::spawn_kms(dir.path(), env.clone(), std::process::Stdio::null());
    let kms = common::sdk_client(&endpoint, common::ACCESS_KEY, common::SECRET_KEY);
    let (key, _) = common::new_key(&kms).await;
    let (_, token) = grant(&kms, &key, dev, &[Op::Encrypt], None, None).await;
    child.kill().unwrap();
    child.wait().unwrap();

    let (mut child, endpoint) = common::spawn_kms(dir.path(), env, std::process::Stdio::null());
    let kms = common::sdk_client(&endpoint, common::ACCESS_KEY, common::SECRET_KEY);
    let result = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"x".to_vec()))
        .grant_tokens(&token)
        .send()
        .await;
    let garbage = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"x".to_vec()))
        .grant_tokens(tamper(&token))
        .send()
        .await;
    child.kill().unwrap();
    child.wait().unwrap();
    result.unwrap();
    assert_eq!(common::fail(garbage).0, "InvalidGrantTokenException");
}
