//! Authorization through the real `aws-sdk-kms` client, with several principals in two accounts
//! configured by TOML: key policies allowing directly, delegating to identity policies, denying
//! explicitly under conditions; `NotAction`; every condition operator family; encryption-context
//! conditions on Encrypt, Decrypt, GenerateDataKey and ReEncrypt; cross-account use by key ARN
//! and alias ARN; a bare key id from another account; identity-only operations; the lockout
//! safety check and its bypass; guardrails; ABAC on resource tags; `kms:RequestAlias`; policy
//! validation; audit records of denials; and identities reloaded without a restart.
//! Each rule is shown allowed and denied, with AWS's codes and messages.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::Tag;
use serde_json::{json, Value};

const A: &str = "111122223333";
const B: &str = "444455556666";
const REGION: &str = "us-east-1";

/// An encryption context as pairs.
type Context = Vec<(&'static str, &'static str)>;

/// Principals of the suite: (name, access key id, secret, principal ARN).
const CARL: (&str, &str) = (
    "AKIACARLNOPOLICIES01",
    "carl-secret-0000000000000000000000000000",
);
const DANA: (&str, &str) = (
    "AKIADANADECRYPTONLY1",
    "dana-secret-0000000000000000000000000000",
);
const ERIN: (&str, &str) = (
    "AKIAERINNOTACTION001",
    "erin-secret-0000000000000000000000000000",
);
const FRANK: (&str, &str) = (
    "AKIAFRANKACCOUNTB001",
    "frank-secret-000000000000000000000000000",
);
const GINA: (&str, &str) = (
    "AKIAGINAABACTAGS0001",
    "gina-secret-0000000000000000000000000000",
);
const ROOT: (&str, &str) = (
    "AKIAROOTACCOUNTA0001",
    "root-secret-0000000000000000000000000000",
);

fn arn_user(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:user/{name}")
}

/// The suite's identities: carl (A) has no identity policy; dana (A) may Decrypt and
/// DescribeKey keys of A; erin (A) may do everything but Decrypt (NotAction); frank (B) may
/// Encrypt, Decrypt and ReEncrypt keys of A; gina (A) may use keys tagged team=blue (ABAC);
/// the root user of A; and a guardrail of A that denies ScheduleKeyDeletion with a 7-day
/// window.
fn identities() -> String {
    let cred = |(akid, secret): (&str, &str), principal: &str| {
        format!(
            "[[credentials]]\naccess_key_id = '{akid}'\nsecret_access_key = '{secret}'\nprincipal = '{principal}'\n"
        )
    };
    let user = |account: &str, name: &str, policy: Option<Value>| {
        let policies = policy
            .map(|p| format!("policies = ['''{}''']\n", p))
            .unwrap_or_default();
        format!("[[users]]\narn = '{}'\n{policies}", arn_user(account, name))
    };
    let allow = |actions: Value, resource: &str| json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resource}]});
    let mut t = String::new();
    t += &user(A, "carl", None);
    t += &user(
        A,
        "dana",
        Some(allow(
            json!(["kms:Decrypt", "kms:DescribeKey"]),
            &format!("arn:aws:kms:{REGION}:{A}:key/*"),
        )),
    );
    t += &user(
        A,
        "erin",
        Some(json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "NotAction": ["kms:Decrypt", "kms:ReEncrypt*"], "Resource": "*"}]})),
    );
    t += &user(
        B,
        "frank",
        Some(allow(
            json!(["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*"]),
            &format!("arn:aws:kms:*:{A}:key/*"),
        )),
    );
    t += &user(
        A,
        "gina",
        Some(json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": ["kms:Encrypt", "kms:DescribeKey"], "Resource": "*",
            "Condition": {"StringEquals": {"aws:ResourceTag/team": "blue"}}}]})),
    );
    t += &cred(CARL, &arn_user(A, "carl"));
    t += &cred(DANA, &arn_user(A, "dana"));
    t += &cred(ERIN, &arn_user(A, "erin"));
    t += &cred(FRANK, &arn_user(B, "frank"));
    t += &cred(GINA, &arn_user(A, "gina"));
    t += &cred(ROOT, &format!("arn:aws:iam::{A}:root"));
    t += &format!(
        "[[guardrails]]\naccount = '{A}'\npolicies = ['''{}''']\n",
        json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Deny", "Action": "kms:ScheduleKeyDeletion", "Resource": "*",
            "Condition": {"NumericLessThan": {"kms:ScheduleKeyDeletionPendingWindowInDays": "10"}}}]})
    );
    t
}

struct Suite {
    srv: common::TestServer,
    /// alice: the implicit administrator of account A (a legacy credential).
    admin: aws_sdk_kms::Client,
}

impl Suite {
    async fn start() -> Suite {
        let srv = common::TestServer::start_with_config(&identities(), common::backend_env()).await;
        let admin = srv.client();
        Suite { srv, admin }
    }

    fn as_(&self, who: (&str, &str)) -> aws_sdk_kms::Client {
        self.srv.client_with(who.0, who.1)
    }

    /// A key of account A made by the administrator, with `policy` (bypassing the lockout
    /// check when the policy does not leave the administrator in charge).
    async fn key(&self, policy: Option<Value>) -> (String, String) {
        let mut req = self.admin.create_key();
        if let Some(p) = policy {
            req = req
                .policy(p.to_string())
                .bypass_policy_lockout_safety_check(true);
        }
        let md = req.send().await.unwrap().key_metadata.unwrap();
        (md.key_id().to_string(), md.arn().unwrap().to_string())
    }
}

/// A key policy: the administrator (alice) keeps full control, plus `statements`.
fn key_policy(statements: Vec<Value>) -> Value {
    let mut all = vec![json!({
        "Sid": "Administrator", "Effect": "Allow",
        "Principal": {"AWS": arn_user(A, "alice")}, "Action": "kms:*", "Resource": "*"})];
    all.extend(statements);
    json!({"Version": "2012-10-17", "Statement": all})
}

/// A statement allowing `who` the `actions` on the key, under `condition`.
fn allow(who: &str, actions: Value, condition: Option<Value>) -> Value {
    let mut s =
        json!({"Effect": "Allow", "Principal": {"AWS": who}, "Action": actions, "Resource": "*"});
    if let Some(c) = condition {
        s["Condition"] = c;
    }
    s
}

fn denied<O: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    r: Result<O, SdkError<E, R>>,
) -> String {
    let (code, message) = common::fail(r);
    assert_eq!(code, "AccessDeniedException", "{message}");
    message
}

fn no_resource_policy(user: &str, action: &str, key_arn: &str) -> String {
    format!(
        "User: {user} is not authorized to perform: kms:{action} on resource: {key_arn} because \
         no resource-based policy allows the kms:{action} action"
    )
}

async fn encrypt(
    kms: &aws_sdk_kms::Client,
    key: &str,
    context: &[(&str, &str)],
) -> Result<
    Vec<u8>,
    SdkError<
        aws_sdk_kms::operation::encrypt::EncryptError,
        aws_sdk_kms::config::http::HttpResponse,
    >,
> {
    let mut req = kms
        .encrypt()
        .key_id(key)
        .plaintext(Blob::new(b"payload".to_vec()));
    for (k, v) in context {
        req = req.encryption_context(*k, *v);
    }
    req.send()
        .await
        .map(|o| o.ciphertext_blob.unwrap().into_inner())
}

async fn decrypt(
    kms: &aws_sdk_kms::Client,
    blob: &[u8],
    context: &[(&str, &str)],
) -> Result<
    Vec<u8>,
    SdkError<
        aws_sdk_kms::operation::decrypt::DecryptError,
        aws_sdk_kms::config::http::HttpResponse,
    >,
> {
    let mut req = kms.decrypt().ciphertext_blob(Blob::new(blob.to_vec()));
    for (k, v) in context {
        req = req.encryption_context(*k, *v);
    }
    req.send().await.map(|o| o.plaintext.unwrap().into_inner())
}

#[tokio::test]
async fn default_policy_delegates_to_identity_policies() {
    let s = Suite::start().await;
    let (id, arn) = s.key(None).await;
    let blob = encrypt(&s.admin, &id, &[]).await.unwrap();
    // Reference §9 row 1: carl has no identity policy; the root statement only delegates.
    let carl = s.as_(CARL);
    assert_eq!(
        denied(decrypt(&carl, &blob, &[]).await),
        no_resource_policy(&arn_user(A, "carl"), "Decrypt", &arn)
    );
    // Row 2: dana's identity policy allows Decrypt on the account's keys.
    let dana = s.as_(DANA);
    assert_eq!(decrypt(&dana, &blob, &[]).await.unwrap(), b"payload");
    // ... and nothing else: Encrypt is not in it.
    assert_eq!(
        denied(encrypt(&dana, &id, &[]).await),
        no_resource_policy(&arn_user(A, "dana"), "Encrypt", &arn)
    );
    // The root user is allowed by the root statement itself.
    let root = s.as_(ROOT);
    assert_eq!(decrypt(&root, &blob, &[]).await.unwrap(), b"payload");
    // NotAction: erin may do everything but Decrypt and ReEncrypt.
    let erin = s.as_(ERIN);
    encrypt(&erin, &id, &[]).await.unwrap();
    erin.describe_key().key_id(&id).send().await.unwrap();
    assert_eq!(
        denied(decrypt(&erin, &blob, &[]).await),
        no_resource_policy(&arn_user(A, "erin"), "Decrypt", &arn)
    );
}

#[tokio::test]
async fn a_key_policy_that_names_the_user_allows_without_identity_policy() {
    let s = Suite::start().await;
    // Row 3 shape: no root statement, so nothing delegates to identity policies.
    let (id, arn) = s
        .key(Some(key_policy(vec![allow(
            &arn_user(A, "carl"),
            json!("kms:Encrypt"),
            None,
        )])))
        .await;
    let carl = s.as_(CARL);
    let blob = encrypt(&carl, &id, &[]).await.unwrap();
    assert_eq!(
        denied(decrypt(&carl, &blob, &[]).await),
        no_resource_policy(&arn_user(A, "carl"), "Decrypt", &arn)
    );
    // dana's identity Allow for Decrypt does not help: the key policy delegates nothing.
    assert_eq!(
        denied(decrypt(&s.as_(DANA), &blob, &[]).await),
        no_resource_policy(&arn_user(A, "dana"), "Decrypt", &arn)
    );
    // Not even the root user: the key policy does not name the account.
    denied(decrypt(&s.as_(ROOT), &blob, &[]).await);
}

#[tokio::test]
async fn explicit_deny_with_a_condition_wins_over_every_allow() {
    let s = Suite::start().await;
    // Row 5: the administrator (kms:* in the key policy) is denied Decrypt of restricted data.
    let (id, arn) = s
        .key(Some(key_policy(vec![json!({
            "Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
            "Condition": {"StringEquals": {"kms:EncryptionContext:stage": "restricted"}}})])))
        .await;
    let restricted = encrypt(&s.admin, &id, &[("Stage", "restricted")])
        .await
        .unwrap();
    assert_eq!(
        denied(decrypt(&s.admin, &restricted, &[("Stage", "restricted")]).await),
        format!(
            "User: {} is not authorized to perform: kms:Decrypt on resource: {arn} with an \
             explicit deny in a resource-based policy",
            arn_user(A, "alice")
        )
    );
    // The key name matches case-insensitively, the value exactly.
    let other = encrypt(&s.admin, &id, &[("stage", "Restricted")])
        .await
        .unwrap();
    assert_eq!(
        decrypt(&s.admin, &other, &[("stage", "Restricted")])
            .await
            .unwrap(),
        b"payload"
    );
}

#[tokio::test]
async fn encryption_context_conditions_on_every_crypto_operation() {
    let s = Suite::start().await;
    let purpose = json!({"StringEquals": {"kms:EncryptionContext:purpose": "billing"}});
    let (id, arn) = s
        .key(Some(key_policy(vec![allow(
            &arn_user(A, "carl"),
            json!([
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:GenerateDataKey",
                "kms:ReEncrypt*"
            ]),
            Some(purpose),
        )])))
        .await;
    let carl = s.as_(CARL);
    let user = arn_user(A, "carl");
    let good = [("purpose", "billing")];
    let bad = [("purpose", "marketing")];
    // Encrypt
    let blob = encrypt(&carl, &id, &good).await.unwrap();
    assert_eq!(
        denied(encrypt(&carl, &id, &bad).await),
        no_resource_policy(&user, "Encrypt", &arn)
    );
    assert_eq!(
        denied(encrypt(&carl, &id, &[]).await),
        no_resource_policy(&user, "Encrypt", &arn)
    );
    // Decrypt
    assert_eq!(decrypt(&carl, &blob, &good).await.unwrap(), b"payload");
    let other = encrypt(&s.admin, &id, &bad).await.unwrap();
    assert_eq!(
        denied(decrypt(&carl, &other, &bad).await),
        no_resource_policy(&user, "Decrypt", &arn)
    );
    // GenerateDataKey
    carl.generate_data_key()
        .key_id(&id)
        .number_of_bytes(32)
        .encryption_context("purpose", "billing")
        .send()
        .await
        .unwrap();
    assert_eq!(
        denied(
            carl.generate_data_key()
                .key_id(&id)
                .number_of_bytes(32)
                .encryption_context("purpose", "marketing")
                .send()
                .await
        ),
        no_resource_policy(&user, "GenerateDataKey", &arn)
    );
    // ReEncrypt: ReEncryptFrom with the source context, ReEncryptTo with the destination's.
    carl.re_encrypt()
        .ciphertext_blob(Blob::new(blob.clone()))
        .source_encryption_context("purpose", "billing")
        .destination_key_id(&id)
        .destination_encryption_context("purpose", "billing")
        .send()
        .await
        .unwrap();
    assert_eq!(
        denied(
            carl.re_encrypt()
                .ciphertext_blob(Blob::new(blob.clone()))
                .source_encryption_context("purpose", "billing")
                .destination_key_id(&id)
                .destination_encryption_context("purpose", "marketing")
                .send()
                .await
        ),
        no_resource_policy(&user, "ReEncryptTo", &arn)
    );
}

#[tokio::test]
async fn condition_operator_families() {
    let s = Suite::start().await;
    let carl_arn = arn_user(A, "carl");
    let carl = s.as_(CARL);
    // One key per family: the statement allows carl to Encrypt only under the condition.
    let cases: Vec<(&str, Value, Context, Context)> = vec![
        (
            "String (Like)",
            json!({"StringLike": {"kms:EncryptionContext:app": "web-*"}}),
            vec![("app", "web-frontend")],
            vec![("app", "api")],
        ),
        (
            "String (NotEqualsIgnoreCase)",
            json!({"StringNotEqualsIgnoreCase": {"kms:EncryptionContext:env": "PROD"}}),
            vec![("env", "test")],
            vec![("env", "prod")],
        ),
        (
            "IfExists",
            json!({"StringEqualsIfExists": {"kms:EncryptionContext:env": "test"}}),
            vec![],
            vec![("env", "prod")],
        ),
        (
            "Null",
            json!({"Null": {"kms:EncryptionContext:tenant": "false"}}),
            vec![("tenant", "t1")],
            vec![],
        ),
        (
            "ForAnyValue",
            json!({"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": ["tenant", "user"]}}),
            vec![("user", "u1"), ("x", "y")],
            vec![("x", "y")],
        ),
        (
            "ForAllValues",
            json!({"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["tenant", "user"]}}),
            vec![("user", "u1")],
            vec![("user", "u1"), ("x", "y")],
        ),
        (
            // An omitted EncryptionAlgorithm meets the condition as its default (reference
            // §6.4); a symmetric key takes no other algorithm, so there is no denied half.
            "Default of an omitted parameter",
            json!({"StringEquals": {"kms:EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}}),
            vec![],
            vec![],
        ),
        (
            "Arn",
            json!({"ArnLike": {"aws:PrincipalArn": format!("arn:aws:iam::{A}:user/car*")}}),
            vec![],
            // Never denied by this one; the denied half is checked with dana below.
            vec![],
        ),
    ];
    for (family, condition, allowed, refused) in cases {
        let (id, arn) = s
            .key(Some(key_policy(vec![allow(
                &carl_arn,
                json!("kms:Encrypt"),
                Some(condition),
            )])))
            .await;
        encrypt(&carl, &id, &allowed)
            .await
            .unwrap_or_else(|e| panic!("{family}: {e:?}"));
        if family != "Arn" && !family.starts_with("Default") {
            assert_eq!(
                denied(encrypt(&carl, &id, &refused).await),
                no_resource_policy(&carl_arn, "Encrypt", &arn),
                "{family}"
            );
        }
    }

    // Arn, IpAddress, Bool and Numeric on keys that allow the whole account (delegation):
    // dana's and carl's identity policies do not allow Encrypt, erin's does.
    let (id, arn) = s
        .key(Some(key_policy(vec![
            allow(&format!("arn:aws:iam::{A}:root"), json!("kms:*"), None),
            json!({"Effect": "Deny", "Principal": "*", "Action": "kms:Encrypt", "Resource": "*",
                "Condition": {"ArnNotLike": {"aws:PrincipalArn": [
                    format!("arn:aws:iam::{A}:user/e*"), format!("arn:aws:iam::{A}:user/alice")]}}}),
        ])))
        .await;
    let erin = s.as_(ERIN);
    encrypt(&erin, &id, &[]).await.unwrap();
    assert_eq!(
        denied(encrypt(&s.as_(GINA), &id, &[]).await),
        format!(
            "User: {} is not authorized to perform: kms:Encrypt on resource: {arn} with an \
             explicit deny in a resource-based policy",
            arn_user(A, "gina")
        )
    );

    // IpAddress / NotIpAddress on aws:SourceIp (tests connect from 127.0.0.1).
    for (condition, allowed) in [
        (json!({"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}), true),
        (
            json!({"NotIpAddress": {"aws:SourceIp": "127.0.0.0/8"}}),
            false,
        ),
        (
            json!({"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "::1/128"]}}),
            false,
        ),
    ] {
        let (id, _) = s
            .key(Some(key_policy(vec![allow(
                &carl_arn,
                json!("kms:Encrypt"),
                Some(condition.clone()),
            )])))
            .await;
        assert_eq!(
            encrypt(&carl, &id, &[]).await.is_ok(),
            allowed,
            "{condition}"
        );
    }
    // Bool on aws:SecureTransport: these tests use plain HTTP.
    for (value, allowed) in [("false", true), ("true", false)] {
        let (id, _) = s
            .key(Some(key_policy(vec![allow(
                &carl_arn,
                json!("kms:Encrypt"),
                Some(json!({"Bool": {"aws:SecureTransport": value}})),
            )])))
            .await;
        assert_eq!(encrypt(&carl, &id, &[]).await.is_ok(), allowed, "{value}");
    }
    // Date on aws:CurrentTime, moved by the server's clock.
    let until = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let (id, arn) = s
        .key(Some(key_policy(vec![allow(
            &carl_arn,
            json!("kms:Encrypt"),
            Some(json!({"DateLessThan": {"aws:CurrentTime": until}})),
        )])))
        .await;
    encrypt(&carl, &id, &[]).await.unwrap();
    s.srv.clock.advance(chrono::Duration::days(2));
    assert_eq!(
        denied(encrypt(&carl, &id, &[]).await),
        no_resource_policy(&carl_arn, "Encrypt", &arn)
    );
    // Numeric on kms:ScheduleKeyDeletionPendingWindowInDays (15 days: the account's guardrail,
    // which denies fewer than 10, stays out of it).
    let (id, arn) = s
        .key(Some(key_policy(vec![allow(
            &carl_arn,
            json!("kms:ScheduleKeyDeletion"),
            Some(json!({"NumericGreaterThanEquals": {"kms:ScheduleKeyDeletionPendingWindowInDays": 20}})),
        )])))
        .await;
    assert_eq!(
        denied(
            carl.schedule_key_deletion()
                .key_id(&id)
                .pending_window_in_days(15)
                .send()
                .await
        ),
        no_resource_policy(&carl_arn, "ScheduleKeyDeletion", &arn)
    );
    carl.schedule_key_deletion()
        .key_id(&id)
        .pending_window_in_days(25)
        .send()
        .await
        .unwrap();
    s.admin
        .cancel_key_deletion()
        .key_id(&id)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn cross_account_use_by_arn_and_what_stays_local() {
    let s = Suite::start().await;
    // Row 4: A's key allows account B Decrypt and DescribeKey (and Encrypt, for the alias).
    let (id, arn) = s
        .key(Some(key_policy(vec![
            allow(&format!("arn:aws:iam::{A}:root"), json!("kms:*"), None),
            allow(
                &format!("arn:aws:iam::{B}:root"),
                json!([
                    "kms:Decrypt",
                    "kms:DescribeKey",
                    "kms:Encrypt",
                    "kms:ScheduleKeyDeletion"
                ]),
                None,
            ),
        ])))
        .await;
    s.admin
        .create_alias()
        .alias_name("alias/shared")
        .target_key_id(&id)
        .send()
        .await
        .unwrap();
    let blob = encrypt(&s.admin, &id, &[]).await.unwrap();
    let frank = s.as_(FRANK);
    let frank_arn = arn_user(B, "frank");
    let merged = |action: &str| {
        format!(
            "User: {frank_arn} is not authorized to perform: kms:{action} on this resource \
             because the resource does not exist in this Region, no resource-based policies \
             allow access, or a resource-based policy explicitly denies access"
        )
    };
    // Decrypt with the key ARN: the key policy allows B, frank's identity policy allows it.
    let plain = frank
        .decrypt()
        .key_id(&arn)
        .ciphertext_blob(Blob::new(blob.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.plaintext.unwrap().into_inner(), b"payload");
    // Decrypt without a key id: the ciphertext names A's key; allowed as well.
    assert_eq!(decrypt(&frank, &blob, &[]).await.unwrap(), b"payload");
    // Encrypt by alias ARN.
    encrypt(
        &frank,
        &format!("arn:aws:kms:{REGION}:{A}:alias/shared"),
        &[],
    )
    .await
    .unwrap();
    // DescribeKey: the key policy allows it, frank's identity policy does not.
    assert_eq!(
        denied(frank.describe_key().key_id(&arn).send().await),
        merged("DescribeKey")
    );
    // ScheduleKeyDeletion never works across accounts, whatever the key policy says.
    assert_eq!(
        denied(
            frank
                .schedule_key_deletion()
                .key_id(&arn)
                .pending_window_in_days(7)
                .send()
                .await
        ),
        merged("ScheduleKeyDeletion")
    );
    // A bare key id or alias name resolves in frank's own account: not found.
    let (code, message) = common::fail(frank.describe_key().key_id(&id).send().await);
    assert_eq!(code, "NotFoundException");
    assert_eq!(
        message,
        format!("Key 'arn:aws:kms:{REGION}:{B}:key/{id}' does not exist")
    );
    let (code, _) = common::fail(encrypt(&frank, "alias/shared", &[]).await);
    assert_eq!(code, "NotFoundException");
    // ListKeys and ListAliases show only the caller's account.
    let bob = s.srv.other_client();
    let keys = bob.list_keys().send().await.unwrap();
    assert!(keys.keys().iter().all(|k| k.key_id() != Some(id.as_str())));
    let aliases = bob.list_aliases().send().await.unwrap();
    assert!(aliases
        .aliases()
        .iter()
        .all(|a| a.alias_name() != Some("alias/shared")));
    // A key of A that allows nothing to B: denied in the same words as a missing key.
    let (_, private_arn) = s.key(None).await;
    assert_eq!(
        denied(
            frank
                .encrypt()
                .key_id(&private_arn)
                .plaintext(Blob::new(b"x".to_vec()))
                .send()
                .await
        ),
        merged("Encrypt")
    );
}

#[tokio::test]
async fn identity_only_operations() {
    let s = Suite::start().await;
    let carl = s.as_(CARL);
    let carl_arn = arn_user(A, "carl");
    assert_eq!(
        denied(carl.list_keys().send().await),
        format!(
            "User: {carl_arn} is not authorized to perform: kms:ListKeys on resource: * because \
             no identity-based policy allows the kms:ListKeys action"
        )
    );
    assert_eq!(
        denied(carl.create_key().send().await),
        format!(
            "User: {carl_arn} is not authorized to perform: kms:CreateKey on resource: * because \
             no identity-based policy allows the kms:CreateKey action"
        )
    );
    denied(carl.generate_random().number_of_bytes(8).send().await);
    // CreateKey with tags needs kms:TagResource too: dana has neither; erin has both (NotAction).
    let erin = s.as_(ERIN);
    erin.create_key()
        .tags(
            Tag::builder()
                .tag_key("team")
                .tag_value("blue")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    erin.list_keys().send().await.unwrap();
}

#[tokio::test]
async fn create_key_with_tags_needs_tag_resource() {
    let extra = format!(
        "{}[[users]]\narn = '{}'\npolicies = ['''{}''']\n[[credentials]]\naccess_key_id = 'AKIAHANKCREATEONLY01'\nsecret_access_key = 'hank-secret-000000000000000000000000000'\nprincipal = '{}'\n",
        identities(),
        arn_user(A, "hank"),
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:CreateKey", "Resource": "*"}]}),
        arn_user(A, "hank"),
    );
    let srv = common::TestServer::start_with_config(&extra, common::backend_env()).await;
    let hank = srv.client_with(
        "AKIAHANKCREATEONLY01",
        "hank-secret-000000000000000000000000000",
    );
    hank.create_key().send().await.unwrap();
    assert_eq!(
        denied(
            hank.create_key()
                .tags(Tag::builder().tag_key("a").tag_value("b").build().unwrap())
                .send()
                .await
        ),
        format!(
            "User: {} is not authorized to perform: kms:TagResource because no identity-based \
             policy allows the kms:TagResource action",
            arn_user(A, "hank")
        )
    );
}

#[tokio::test]
async fn lockout_safety_check_and_its_bypass() {
    let s = Suite::start().await;
    let (id, _) = s.key(None).await;
    // Row 8: a policy that lets only dana use the key would lock alice out of it.
    let only_dana = json!({"Version": "2012-10-17", "Statement": [
        allow(&arn_user(A, "dana"), json!("kms:*"), None)]})
    .to_string();
    let (code, message) = common::fail(
        s.admin
            .put_key_policy()
            .key_id(&id)
            .policy_name("default")
            .policy(&only_dana)
            .send()
            .await,
    );
    assert_eq!(code, "MalformedPolicyDocumentException");
    assert_eq!(
        message,
        "The new key policy will not allow you to update the key policy in the future."
    );
    // The same for CreateKey.
    let (code, _) = common::fail(s.admin.create_key().policy(&only_dana).send().await);
    assert_eq!(code, "MalformedPolicyDocumentException");
    // With the bypass it succeeds, and alice has lost the key.
    s.admin
        .put_key_policy()
        .key_id(&id)
        .policy_name("default")
        .policy(&only_dana)
        .bypass_policy_lockout_safety_check(true)
        .send()
        .await
        .unwrap();
    denied(
        s.admin
            .put_key_policy()
            .key_id(&id)
            .policy_name("default")
            .policy(&only_dana)
            .send()
            .await,
    );
    // dana now manages it.
    s.as_(DANA)
        .get_key_policy()
        .key_id(&id)
        .policy_name("default")
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn policy_documents_are_validated() {
    let s = Suite::start().await;
    let (id, arn) = s.key(None).await;
    let put = |policy: String| {
        s.admin
            .put_key_policy()
            .key_id(&id)
            .policy_name("default")
            .policy(policy)
            .send()
    };
    let no_principal = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]});
    let (code, message) = common::fail(put(no_principal.to_string()).await);
    assert_eq!(code, "MalformedPolicyDocumentException");
    assert_eq!(message, "Policy contains a statement with no principal.");
    let unknown = json!({"Version": "2012-10-17", "Statement": [
        allow(&format!("arn:aws:iam::{A}:root"), json!("kms:*"), None),
        allow(&arn_user(A, "nobody"), json!("kms:Encrypt"), None)]});
    let (code, message) = common::fail(put(unknown.to_string()).await);
    assert_eq!(code, "MalformedPolicyDocumentException");
    assert_eq!(
        message,
        "Policy contains a statement with one or more invalid principals."
    );
    let tag_key = json!({"Version": "2012-10-17", "Statement": [
        allow(&format!("arn:aws:iam::{A}:root"), json!("kms:*"),
            Some(json!({"StringEquals": {"aws:ResourceTag/team": "x"}})))]});
    let (code, message) = common::fail(put(tag_key.to_string()).await);
    assert_eq!(code, "MalformedPolicyDocumentException");
    assert!(
        message.starts_with("These condition keys are not permitted in a key policy"),
        "{message}"
    );
    let (code, _) = common::fail(put("{not json".into()).await);
    assert_eq!(code, "MalformedPolicyDocumentException");
    // ForAllValues with a single-valued kms:EncryptionContext:<key> (reference §6.4).
    let overly = key_policy(vec![allow(
        &arn_user(A, "carl"),
        json!("kms:Encrypt"),
        Some(json!({"ForAllValues:StringEquals": {"kms:EncryptionContext:app": "web"}})),
    )]);
    assert_eq!(
        common::fail(put(overly.to_string()).await),
        (
            "MalformedPolicyDocumentException".to_string(),
            "OverlyPermissiveCondition:EncryptionContext: Using the ForAllValues set operator \
             with a single-valued condition key matches requests without the specified \
             encryption context or with an unspecified encryption context. To fix, remove \
             ForAllValues."
                .to_string()
        )
    );
    // The document comes back exactly as submitted.
    let fine = key_policy(vec![]).to_string();
    put(fine.clone()).await.unwrap();
    let got = s
        .admin
        .get_key_policy()
        .key_id(&id)
        .policy_name("default")
        .send()
        .await
        .unwrap();
    assert_eq!(got.policy(), Some(fine.as_str()));

    // A statement without Resource is accepted but grants nothing (reference §6.1, §15
    // requirement 30): carl, named only there, stays denied; with Resource he is allowed.
    let carl = s.as_(CARL);
    let mut no_resource = allow(&arn_user(A, "carl"), json!("kms:Encrypt"), None);
    no_resource.as_object_mut().unwrap().remove("Resource");
    put(key_policy(vec![no_resource]).to_string())
        .await
        .unwrap();
    assert_eq!(
        denied(encrypt(&carl, &arn, &[]).await),
        no_resource_policy(&arn_user(A, "carl"), "Encrypt", &arn)
    );
    put(key_policy(vec![allow(
        &arn_user(A, "carl"),
        json!("kms:Encrypt"),
        None,
    )])
    .to_string())
    .await
    .unwrap();
    encrypt(&carl, &arn, &[]).await.unwrap();
}

#[tokio::test]
async fn guardrails_deny_for_the_whole_account() {
    let s = Suite::start().await;
    let (id, arn) = s.key(None).await;
    assert_eq!(
        denied(
            s.admin
                .schedule_key_deletion()
                .key_id(&id)
                .pending_window_in_days(7)
                .send()
                .await
        ),
        format!(
            "User: {} is not authorized to perform: kms:ScheduleKeyDeletion on resource: {arn} \
             with an explicit deny in a service control policy",
            arn_user(A, "alice")
        )
    );
    // Outside the guardrail's condition it is allowed.
    s.admin
        .schedule_key_deletion()
        .key_id(&id)
        .pending_window_in_days(15)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn abac_on_resource_tags_and_request_alias() {
    let s = Suite::start().await;
    let (blue, _) = s.key(None).await;
    s.admin
        .tag_resource()
        .key_id(&blue)
        .tags(
            Tag::builder()
                .tag_key("team")
                .tag_value("blue")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let (red, red_arn) = s.key(None).await;
    let gina = s.as_(GINA);
    encrypt(&gina, &blue, &[]).await.unwrap();
    assert_eq!(
        denied(encrypt(&gina, &red, &[]).await),
        no_resource_policy(&arn_user(A, "gina"), "Encrypt", &red_arn)
    );
    // Retagging moves access with the tag.
    s.admin
        .tag_resource()
        .key_id(&red)
        .tags(
            Tag::builder()
                .tag_key("team")
                .tag_value("blue")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    encrypt(&gina, &red, &[]).await.unwrap();

    // kms:RequestAlias: the alias name when the request names the key by it, absent otherwise.
    let (id, arn) = s
        .key(Some(key_policy(vec![allow(
            &arn_user(A, "carl"),
            json!("kms:Encrypt"),
            Some(json!({"StringEquals": {"kms:RequestAlias": "alias/finance"}})),
        )])))
        .await;
    s.admin
        .create_alias()
        .alias_name("alias/finance")
        .target_key_id(&id)
        .send()
        .await
        .unwrap();
    let carl = s.as_(CARL);
    encrypt(&carl, "alias/finance", &[]).await.unwrap();
    assert_eq!(
        denied(encrypt(&carl, &id, &[]).await),
        no_resource_policy(&arn_user(A, "carl"), "Encrypt", &arn)
    );
}

#[tokio::test]
async fn denials_are_audited_with_the_principal_and_the_key() {
    let s = Suite::start().await;
    let (id, arn) = s.key(None).await;
    let carl = s.as_(CARL);
    let err = carl.describe_key().key_id(&id).send().await.unwrap_err();
    let request_id = aws_sdk_kms::operation::RequestId::request_id(&err)
        .unwrap()
        .to_string();
    let records = s.srv.audit_records().await;
    let r = records
        .iter()
        .find(|r| r["requestID"] == request_id)
        .expect("an audit record of the denied call");
    assert_eq!(r["errorCode"], "AccessDeniedException");
    assert_eq!(r["eventName"], "DescribeKey");
    assert_eq!(r["userIdentity"]["arn"], arn_user(A, "carl"));
    assert_eq!(r["userIdentity"]["type"], "IAMUser");
    assert_eq!(r["userIdentity"]["userName"], "carl");
    assert_eq!(r["userIdentity"]["accessKeyId"], CARL.0);
    let principal_id = r["userIdentity"]["principalId"].as_str().unwrap();
    assert!(
        principal_id.starts_with("AIDA") && principal_id.len() == 21,
        "{principal_id}"
    );
    assert_eq!(r["resources"][0]["ARN"], arn);
    assert!(r["errorMessage"]
        .as_str()
        .unwrap()
        .contains("is not authorized to perform: kms:DescribeKey"));
}

#[tokio::test]
async fn identities_reload_without_a_restart() {
    let s = Suite::start().await;
    let (id, _) = s.key(None).await;
    let new_user = (
        "AKIAIVANNEWUSER00001",
        "ivan-secret-0000000000000000000000000000",
    );
    let ivan = s.as_(new_user);
    let (code, _) = common::fail(ivan.describe_key().key_id(&id).send().await);
    assert_eq!(code, "UnrecognizedClientException");

    // The operator adds ivan to the configuration file; the next reload takes him in.
    let path = s.srv.data_dir.path().join("kms.toml");
    let original = std::fs::read_to_string(&path).unwrap();
    let with_ivan = format!(
        "{original}\n[[users]]\narn = '{}'\npolicies = ['''{}''']\n[[credentials]]\naccess_key_id = '{}'\nsecret_access_key = '{}'\nprincipal = '{}'\n",
        arn_user(A, "ivan"),
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:DescribeKey", "Resource": "*"}]}),
        new_user.0,
        new_user.1,
        arn_user(A, "ivan"),
    );
    std::fs::write(&path, &with_ivan).unwrap();
    let iam = s.srv.state.auth.iam().clone();
    assert!(matches!(
        iam.reload(),
        Ok(kms::iam::ReloadOutcome::Reloaded { .. })
    ));
    ivan.describe_key().key_id(&id).send().await.unwrap();

    // A broken file is refused and the identities in force stay.
    std::fs::write(
        &path,
        format!("{with_ivan}\n[[users]]\narn = 'not-an-arn'\n"),
    )
    .unwrap();
    let problems = iam.reload().unwrap_err();
    assert!(
        problems.0.iter().any(|p| p.contains("not-an-arn")),
        "{problems}"
    );
    ivan.describe_key().key_id(&id).send().await.unwrap();
}
