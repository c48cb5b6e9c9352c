//! STS on the KMS endpoint through the real `aws-sdk-sts` client: GetCallerIdentity for users,
//! root and role sessions; AssumeRole authorized by trust policies (same account, account
//! delegation, cross-account), its parameter rules and AWS's error codes and messages; and the
//! temporary credentials used with the real `aws-sdk-kms` client (key policies naming the role,
//! session policies and the AccessDenied texts that name them, wrong tokens, expiry on the
//! service clock); session tokens as sealed, self-contained credentials (they survive a
//! restart, and a changed byte, another session's access key id or another deployment is
//! refused; deleting the key's row ends them all);
//! session tags and source identity as condition keys; role chaining (transitive tags and the
//! source identity passed on, what a chained request may not change, the limits); the
//! `aws:TokenIssueTime` revocation recipe. Plus the raw wire (XML envelopes, unknown actions,
//! GET) and the audit records (a role session's `userIdentity.sessionContext`). Role sessions
//! are `common::sts::RoleSession`s.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use aws_credential_types::Credentials;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::assume_role::builders::AssumeRoleFluentBuilder;
use aws_sdk_sts::operation::RequestId;
use common::sts::RoleSession;
use kms::service::clock::Clock;
use serde_json::Value;

const A: &str = "111122223333";
const B: &str = "444455556666";
const DAVE: &str = "arn:aws:iam::111122223333:user/dave";
const CAROL: &str = "arn:aws:iam::111122223333:user/carol";
const APP: &str = "arn:aws:iam::111122223333:role/app";
const OTHER: &str = "arn:aws:iam::111122223333:role/other";
const DELEGATED: &str = "arn:aws:iam::111122223333:role/delegated";
const CHAIN: &str = "arn:aws:iam::111122223333:role/ops/chain";
const PARTNER: &str = "arn:aws:iam::111122223333:role/partner";
const CROSS: &str = "arn:aws:iam::444455556666:role/cross";
const LOCAL_B: &str = "arn:aws:iam::444455556666:role/local";
const FIRST: &str = "arn:aws:iam::111122223333:role/first";
const SECOND: &str = "arn:aws:iam::111122223333:role/second";
const THIRD: &str = "arn:aws:iam::111122223333:role/third";
const NOTAG: &str = "arn:aws:iam::111122223333:role/notag";
const WORKER: &str = "arn:aws:iam::111122223333:role/worker";

/// Session policies.
const ONLY_DECRYPT: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*"}]}"#;
const ALL_BUT_ENCRYPT_AND_LIST_KEYS: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"},{"Effect":"Deny","Action":["kms:Encrypt","kms:ListKeys"],"Resource":"*"}]}"#;

const DAVE_KEY: (&str, &str) = (
    "AKIADAVE000000000001",
    "daveSecretKey0000000000000000000000000001",
);
const CAROL_KEY: (&str, &str) = (
    "AKIACAROL00000000001",
    "carolSecretKey000000000000000000000000001",
);
const ROOT_KEY: (&str, &str) = (
    "AKIAROOTA00000000001",
    "rootSecretKey0000000000000000000000000001",
);

const DAVE_ID: &str = "AIDADAVEUSEREXAMPLE01";
const APP_ID: &str = "AROAAPPROLEEXAMPLE001";

/// Users, credentials, roles and guardrails of the tests (appended to the harness's config,
/// which has alice, an administrator of A, and bob, an administrator of B).
const IAM: &str = r#"
[[users]]
arn = 'arn:aws:iam::111122223333:user/dave'
unique_id = 'AIDADAVEUSEREXAMPLE01'

[[users]]
arn = 'arn:aws:iam::111122223333:user/carol'
policies = ['{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":["arn:aws:iam::111122223333:role/delegated","arn:aws:iam::444455556666:role/cross"]}]}']

[[credentials]]
access_key_id = 'AKIADAVE000000000001'
secret_access_key = 'daveSecretKey0000000000000000000000000001'
principal = 'arn:aws:iam::111122223333:user/dave'

[[credentials]]
access_key_id = 'AKIACAROL00000000001'
secret_access_key = 'carolSecretKey000000000000000000000000001'
principal = 'arn:aws:iam::111122223333:user/carol'

[[credentials]]
access_key_id = 'AKIAROOTA00000000001'
secret_access_key = 'rootSecretKey0000000000000000000000000001'
principal = 'arn:aws:iam::111122223333:root'

[[roles]]
arn = 'arn:aws:iam::111122223333:role/app'
unique_id = 'AROAAPPROLEEXAMPLE001'
max_session_duration_seconds = 7200
trust_policy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/dave"},"Action":"sts:AssumeRole"}]}'

[[roles]]
arn = 'arn:aws:iam::111122223333:role/worker'
trust_policy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/dave"},"Action":"sts:AssumeRole"}]}'
policies = ['{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}']

[[roles]]
arn = 'arn:aws:iam::111122223333:role/other'
trust_policy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/carol"},"Action":"sts:AssumeRole"}]}'

[[roles]]
arn = 'arn:aws:iam::111122223333:role/delegated'
trust_policy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"sts:AssumeRole"}]}'

[[roles]]
arn = 'arn:aws:iam::111122223333:role/ops/chain'
max_session_duration_seconds = 43200
trust_policy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/app"},"Action":"sts:AssumeRole"}]}'

[[roles]]
arn = 'arn:aws:iam::111122223333:role/first'
trust_policy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/dave"},"Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"]}]}'

[[roles]]
arn = 'arn:aws:iam::111122223333:role/second'
trust_policy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/first"},"Action":["sts:AssumeRole","sts:SetSourceIdentity"],"Condition":{"StringEquals":{"sts:SourceIdentity":"dave"}}},{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/first"},"Action":"sts:TagSession","Condition":{"StringEquals":{"aws:RequestTag/Project":"p1"},"ForAllValues:StringEquals":{"sts:TransitiveTagKeys":["Project"]},"ForAnyValue:StringEquals":{"sts:TransitiveTagKeys":["Project"]}}}]}'

[[roles]]
arn = 'arn:aws:iam::111122223333:role/third'
trust_policy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/second"},"Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"]}]}'

[[roles]]
arn = 'arn:aws:iam::111122223333:role/notag'
trust_policy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/first"},"Action":"sts:AssumeRole"}]}'

[[roles]]
arn = 'arn:aws:iam::111122223333:role/partner'
trust_policy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/dave"},"Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"],"Condition":{"StringEquals":{"sts:ExternalId":"ext-123"}}}]}'

[[roles]]
arn = 'arn:aws:iam::444455556666:role/cross'
trust_policy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:user/carol","arn:aws:iam::111122223333:user/dave"]},"Action":"sts:AssumeRole"}]}'

[[roles]]
arn = 'arn:aws:iam::444455556666:role/local'
trust_policy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:user/bob"},"Action":"sts:AssumeRole"}]}'

[[guardrails]]
account = '444455556666'
policies = ['{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}']
"#;

async fn server() -> common::TestServer {
    common::TestServer::start_with_config(IAM, common::backend_env()).await
}

fn sts(srv: &common::TestServer, key: (&str, &str)) -> aws_sdk_sts::Client {
    common::sts::client(&srv.endpoint, key)
}

/// AssumeRole of `role` as session `name` with the long-term `key`, at `endpoint`: must succeed.
async fn assume(endpoint: &str, key: (&str, &str), role: &str, name: &str) -> RoleSession {
    RoleSession::of(endpoint, key, role, name, |r| r).await
}

/// A session tag.
fn tag(key: &str, value: &str) -> aws_sdk_sts::types::Tag {
    aws_sdk_sts::types::Tag::builder()
        .key(key)
        .value(value)
        .build()
        .unwrap()
}

/// `PackedPolicySize` of a result (deprecated in the newest STS model in favour of
/// `SessionTokenUtilization`, still what reference §8.3 and this server return).
#[allow(deprecated)]
fn packed_policy_size(out: &aws_sdk_sts::operation::assume_role::AssumeRoleOutput) -> Option<i32> {
    out.packed_policy_size()
}

/// (code, message, HTTP status) of an STS call that must fail.
fn sts_fail<O: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(
    r: Result<O, SdkError<E, aws_sdk_sts::config::http::HttpResponse>>,
) -> (String, String, u16) {
    let e = r.expect_err("the call should have failed");
    let status = match &e {
        SdkError::ServiceError(s) => s.raw().status().as_u16(),
        other => panic!("not a service error: {other:?}"),
    };
    (
        e.code().unwrap_or("<none>").to_string(),
        e.message().unwrap_or("").to_string(),
        status,
    )
}

/// AssumeRole of `role` as session `name` by `client`, completed by `with`, that must fail:
/// (code, message, HTTP status).
async fn assume_fails(
    client: &aws_sdk_sts::Client,
    role: &str,
    name: &str,
    with: impl FnOnce(AssumeRoleFluentBuilder) -> AssumeRoleFluentBuilder,
) -> (String, String, u16) {
    let request = client.assume_role().role_arn(role).role_session_name(name);
    sts_fail(with(request).send().await)
}

/// A KMS AccessDenied message: `kms:<action>` by `caller` on `resource`, then `why`.
fn kms_denied(caller: &str, action: &str, resource: &str, why: &str) -> String {
    format!(
        "User: {caller} is not authorized to perform: kms:{action} on resource: {resource} {why}"
    )
}

/// Why a role session is denied `kms:<action>` that its role allows.
fn no_session_policy_allows(action: &str) -> String {
    format!("because no session policy allows the kms:{action} action")
}

/// Why a role session is denied what its session policy denies.
const SESSION_POLICY_DENY: &str = "with an explicit deny in a session policy";

fn assume_denied(caller: &str, role: &str) -> String {
    format!("User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role}")
}

#[tokio::test]
async fn get_caller_identity_of_user_root_and_role_session() {
    let srv = server().await;
    let me = sts(&srv, DAVE_KEY)
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(me.arn(), Some(DAVE));
    assert_eq!(me.user_id(), Some(DAVE_ID));
    assert_eq!(me.account(), Some(A));

    let root = sts(&srv, ROOT_KEY)
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(root.arn(), Some("arn:aws:iam::111122223333:root"));
    assert_eq!(root.user_id(), Some(A));
    assert_eq!(root.account(), Some(A));

    // A user without a [[users]] entry gets a derived AIDA id.
    let alice = sts(&srv, (common::ACCESS_KEY, common::SECRET_KEY))
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(alice.arn(), Some("arn:aws:iam::111122223333:user/alice"));
    let id = alice.user_id().unwrap();
    assert!(id.starts_with("AIDA") && id.len() == 21, "{id}");

    let session = assume(&srv.endpoint, DAVE_KEY, APP, "sess-1")
        .await
        .sts()
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(
        session.arn(),
        Some("arn:aws:sts::111122223333:assumed-role/app/sess-1")
    );
    assert_eq!(session.user_id(), Some(format!("{APP_ID}:sess-1").as_str()));
    assert_eq!(session.account(), Some(A));

    // An explicit deny of everything (bob's account guardrail) does not block it.
    let bob = sts(&srv, (common::OTHER_ACCESS_KEY, common::OTHER_SECRET_KEY));
    let who = bob.get_caller_identity().send().await.unwrap();
    assert_eq!(who.arn(), Some("arn:aws:iam::444455556666:user/bob"));
    assert_eq!(who.account(), Some(B));
    // ... while AssumeRole, which needs permission, is denied by it.
    let (code, msg, status) = assume_fails(&bob, LOCAL_B, "b1", |r| r).await;
    assert_eq!((code.as_str(), status), ("AccessDenied", 403));
    assert_eq!(
        msg,
        assume_denied("arn:aws:iam::444455556666:user/bob", LOCAL_B)
    );
}

#[tokio::test]
async fn assume_role_allowed_by_a_trust_policy_naming_the_user() {
    let srv = server().await;
    let now = srv.clock.now();
    let out = sts(&srv, DAVE_KEY)
        .assume_role()
        .role_arn(APP)
        .role_session_name("build-42")
        .send()
        .await
        .unwrap();
    let c = out.credentials().unwrap();
    assert!(
        c.access_key_id().starts_with("ASIA"),
        "{}",
        c.access_key_id()
    );
    assert_eq!(c.access_key_id().len(), 20);
    assert_eq!(c.secret_access_key().len(), 40);
    assert!(c.session_token().len() >= 64);
    // Default duration: one hour on the service's clock (whole seconds).
    let expiration = c.expiration().secs();
    assert!(
        (expiration - (now.timestamp() + 3600)).abs() <= 1,
        "expiration {expiration}, now {}",
        now.timestamp()
    );
    let user = out.assumed_role_user().unwrap();
    assert_eq!(user.assumed_role_id(), format!("{APP_ID}:build-42"));
    assert_eq!(
        user.arn(),
        "arn:aws:sts::111122223333:assumed-role/app/build-42"
    );
    assert_eq!(packed_policy_size(&out), None);
    assert_eq!(out.source_identity(), None);

    // A trust policy naming someone else, and a role that does not exist: the same answer.
    for role in [OTHER, "arn:aws:iam::111122223333:role/no-such-role"] {
        let (code, msg, status) = assume_fails(&sts(&srv, DAVE_KEY), role, "s1", |r| r).await;
        assert_eq!((code.as_str(), status), ("AccessDenied", 403), "{role}");
        assert_eq!(msg, assume_denied(DAVE, role));
    }
    // carol is the one `other` trusts.
    assume(&srv.endpoint, CAROL_KEY, OTHER, "c1").await;
}

#[tokio::test]
async fn account_delegation_needs_an_identity_policy_allow() {
    let srv = server().await;
    // The trust policy names the account: dave has no identity policy allowing sts:AssumeRole.
    let (code, msg, status) = assume_fails(&sts(&srv, DAVE_KEY), DELEGATED, "d1", |r| r).await;
    assert_eq!((code.as_str(), status), ("AccessDenied", 403));
    assert_eq!(msg, assume_denied(DAVE, DELEGATED));
    // carol's identity policy allows it.
    let who = assume(&srv.endpoint, CAROL_KEY, DELEGATED, "c1")
        .await
        .sts()
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(
        who.arn(),
        Some("arn:aws:sts::111122223333:assumed-role/delegated/c1")
    );
}

#[tokio::test]
async fn cross_account_role_needs_both_sides() {
    let srv = server().await;
    // The role in B trusts carol and dave; only carol's own account allows her to assume it.
    let who = assume(&srv.endpoint, CAROL_KEY, CROSS, "x1")
        .await
        .sts()
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(
        who.arn(),
        Some("arn:aws:sts::444455556666:assumed-role/cross/x1")
    );
    assert_eq!(who.account(), Some(B));
    let (code, msg, status) = assume_fails(&sts(&srv, DAVE_KEY), CROSS, "x2", |r| r).await;
    assert_eq!((code.as_str(), status), ("AccessDenied", 403));
    assert_eq!(msg, assume_denied(DAVE, CROSS));
}

#[tokio::test]
async fn root_credentials_cannot_assume_roles() {
    let srv = server().await;
    let (code, msg, status) = assume_fails(&sts(&srv, ROOT_KEY), DELEGATED, "r1", |r| r).await;
    assert_eq!((code.as_str(), status), ("AccessDenied", 403));
    assert_eq!(msg, "Roles may not be assumed by root accounts.");
}

#[tokio::test]
async fn duration_rules() {
    let srv = server().await;
    let dave = sts(&srv, DAVE_KEY);
    let with = |d: i32| {
        dave.assume_role()
            .role_arn(APP)
            .role_session_name("d1")
            .duration_seconds(d)
            .send()
    };
    let (code, msg, status) = sts_fail(with(899).await);
    assert_eq!((code.as_str(), status), ("ValidationError", 400));
    assert_eq!(
        msg,
        "1 validation error detected: Value '899' at 'durationSeconds' failed to satisfy \
         constraint: Member must have value greater than or equal to 900"
    );
    let (_, msg, _) = sts_fail(with(43_201).await);
    assert_eq!(
        msg,
        "1 validation error detected: Value '43201' at 'durationSeconds' failed to satisfy \
         constraint: Member must have value less than or equal to 43200"
    );
    // The role allows up to 7200 seconds.
    let now = srv.clock.now().timestamp();
    let out = with(7200).await.unwrap();
    let expiration = out.credentials().unwrap().expiration().secs();
    assert!((expiration - (now + 7200)).abs() <= 1);
    let (code, msg, status) = sts_fail(with(7201).await);
    assert_eq!((code.as_str(), status), ("ValidationError", 400));
    assert_eq!(
        msg,
        "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
    );
    let out = with(900).await.unwrap();
    assert!((out.credentials().unwrap().expiration().secs() - (now + 900)).abs() <= 1);

    // Role chaining: a session of `app` may assume `ops/chain` (max 43200) for an hour at most.
    let app = assume(&srv.endpoint, DAVE_KEY, APP, "s1").await.sts();
    let (code, msg, status) = assume_fails(&app, CHAIN, "c1", |r| r.duration_seconds(3601)).await;
    assert_eq!((code.as_str(), status), ("ValidationError", 400));
    assert_eq!(
        msg,
        "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by \
         role chaining."
    );
    let out = app
        .assume_role()
        .role_arn(CHAIN)
        .role_session_name("c1")
        .duration_seconds(3600)
        .send()
        .await
        .unwrap();
    // The session ARN names the role without its path.
    assert_eq!(
        out.assumed_role_user().unwrap().arn(),
        "arn:aws:sts::111122223333:assumed-role/chain/c1"
    );
    // Nothing to inherit: no source identity, no tags.
    assert_eq!(out.source_identity(), None);
    assert_eq!(packed_policy_size(&out), None);
    // dave himself is not trusted by `ops/chain`, whatever the duration.
    let (code, _, _) = assume_fails(&dave, CHAIN, "c2", |r| r).await;
    assert_eq!(code, "AccessDenied");
}

#[tokio::test]
async fn session_name_and_role_arn_validation() {
    let srv = server().await;
    let dave = sts(&srv, DAVE_KEY);
    let named = |name: &str| {
        dave.assume_role()
            .role_arn(APP)
            .role_session_name(name)
            .send()
    };
    let cases = [
        (
            "a".to_string(),
            "1 validation error detected: Value 'a' at 'roleSessionName' failed to satisfy \
             constraint: Member must have length greater than or equal to 2"
                .to_string(),
        ),
        (
            "bad name".to_string(),
            "1 validation error detected: Value 'bad name' at 'roleSessionName' failed to \
             satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*"
                .to_string(),
        ),
        (
            "s".repeat(65),
            format!(
                "1 validation error detected: Value '{}' at 'roleSessionName' failed to satisfy \
                 constraint: Member must have length less than or equal to 64",
                "s".repeat(65)
            ),
        ),
        // Markup in an echoed value survives the XML round trip.
        (
            "a<b>&c".to_string(),
            "1 validation error detected: Value 'a<b>&c' at 'roleSessionName' failed to \
             satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*"
                .to_string(),
        ),
    ];
    for (name, expected) in cases {
        let (code, msg, status) = sts_fail(named(&name).await);
        assert_eq!((code.as_str(), status), ("ValidationError", 400), "{name}");
        assert_eq!(msg, expected);
    }
    assume(&srv.endpoint, DAVE_KEY, APP, "a_b+c=d,e.f@g-h").await;

    let (code, msg, _) = assume_fails(&dave, "not-an-arn-at-all-here", "s1", |r| r).await;
    assert_eq!(code, "ValidationError");
    assert_eq!(msg, "not-an-arn-at-all-here is invalid");
    let (code, msg, _) = assume_fails(&dave, "arn:aws:iam::1", "s1", |r| r).await;
    assert_eq!(code, "ValidationError");
    assert_eq!(
        msg,
        "1 validation error detected: Value 'arn:aws:iam::1' at 'roleArn' failed to satisfy \
         constraint: Member must have length greater than or equal to 20"
    );
}

#[tokio::test]
async fn session_policies_tags_external_id_and_source_identity() {
    let srv = server().await;
    let dave = sts(&srv, DAVE_KEY);
    let (code, msg, status) = assume_fails(&dave, APP, "p1", |r| r.policy("{not json")).await;
    assert_eq!((code.as_str(), status), ("MalformedPolicyDocument", 400));
    assert!(!msg.is_empty());
    // A policy must be an identity-style document: no Principal.
    let with_principal = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}]}"#;
    let (code, _, _) = assume_fails(&dave, APP, "p1", |r| r.policy(with_principal)).await;
    assert_eq!(code, "MalformedPolicyDocument");
    let long = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"{}","Effect":"Allow","Action":"kms:*","Resource":"*"}}]}}"#,
        "S".repeat(2000)
    );
    let (code, msg, _) = assume_fails(&dave, APP, "p1", |r| r.policy(&long)).await;
    assert_eq!(code, "ValidationError");
    assert!(
        msg.ends_with("at 'policy' failed to satisfy constraint: Member must have length less than or equal to 2048"),
        "{msg}"
    );
    let (code, msg, _) = assume_fails(&dave, APP, "p1", |r| {
        r.policy_arns(
            aws_sdk_sts::types::PolicyDescriptorType::builder()
                .arn("arn:aws:iam::aws:policy/ReadOnlyAccess")
                .build(),
        )
    })
    .await;
    assert_eq!(code, "InvalidParameterValue");
    assert!(msg.starts_with("PolicyArns are not supported"), "{msg}");

    // A session policy: PackedPolicySize in the result.
    let out = RoleSession::of(&srv.endpoint, DAVE_KEY, APP, "p1", |r| {
        r.policy(ONLY_DECRYPT)
    })
    .await;
    assert_eq!(packed_policy_size(&out.output), Some(5));

    // Session tags need sts:TagSession, which `app`'s trust policy does not grant.
    let (code, msg, status) = assume_fails(&dave, APP, "t1", |r| r.tags(tag("team", "kms"))).await;
    assert_eq!((code.as_str(), status), ("AccessDenied", 403));
    assert_eq!(
        msg,
        format!("User: {DAVE} is not authorized to perform: sts:TagSession on resource: {APP}")
    );
    // Too many tag bytes for the packed budget.
    let mut request = dave.assume_role().role_arn(APP).role_session_name("t1");
    for i in 0..6 {
        request = request.tags(tag(&format!("{i}{}", "k".repeat(99)), &"v".repeat(256)));
    }
    let (code, msg, _) = sts_fail(request.send().await);
    assert_eq!(code, "PackedPolicyTooLarge");
    assert_eq!(
        msg,
        "Packed policy consumes 105% of allotted space, please use smaller policy."
    );

    // `partner` requires the external id, and allows tags and a source identity.
    let partner = |external: Option<&str>| {
        dave.assume_role()
            .role_arn(PARTNER)
            .role_session_name("p1")
            .set_external_id(external.map(str::to_string))
            .source_identity("dave-laptop")
            .tags(tag("team", "kms"))
            .transitive_tag_keys("team")
    };
    for external in [None, Some("ext-999")] {
        let (code, msg, _) = sts_fail(partner(external).send().await);
        assert_eq!(code, "AccessDenied");
        assert_eq!(msg, assume_denied(DAVE, PARTNER));
    }
    let out = partner(Some("ext-123")).send().await.unwrap();
    assert_eq!(out.source_identity(), Some("dave-laptop"));
    assert_eq!(packed_policy_size(&out), Some(1));

    let (code, msg, _) = assume_fails(&dave, APP, "m1", |r| {
        r.serial_number("arn:aws:iam::111122223333:mfa/dave")
            .token_code("123456")
    })
    .await;
    assert_eq!(code, "AccessDenied");
    assert!(msg.starts_with("MultiFactorAuthentication failed"), "{msg}");
}

/// A key of alice's whose policy keeps the account's administrators and allows `principal`
/// to Encrypt and Decrypt.
async fn key_allowing(srv: &common::TestServer, principal: &str) -> String {
    key_allowing_with(&srv.client(), principal).await
}

async fn key_allowing_with(admin: &aws_sdk_kms::Client, principal: &str) -> String {
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Admins", "Effect": "Allow",
             "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "Use", "Effect": "Allow", "Principal": {"AWS": principal},
             "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*"}
        ]
    });
    key_with_policy(admin, policy).await
}

/// A key of `admin`'s with the key policy `policy`; returns its ARN.
async fn key_with_policy(admin: &aws_sdk_kms::Client, policy: serde_json::Value) -> String {
    admin
        .create_key()
        .policy(policy.to_string())
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .arn()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn temporary_credentials_with_kms() {
    let srv = server().await;
    let for_role = key_allowing(&srv, APP).await;
    let for_carol = key_allowing(&srv, CAROL).await;
    let session_arn = "arn:aws:sts::111122223333:assumed-role/app/s1";

    let s1 = assume(&srv.endpoint, DAVE_KEY, APP, "s1").await;
    let kms = s1.kms();
    let blob = encrypt(&kms, &for_role).await.unwrap();
    let plain = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(plain.plaintext().unwrap().as_ref(), PLAINTEXT.as_bytes());

    // A key policy that names only carol: the role's session gets nothing (the role has no
    // identity policy for the account statement to delegate to).
    let (code, msg) = encrypt(&kms, &for_carol).await.unwrap_err();
    assert_eq!(code, "AccessDeniedException");
    assert_eq!(
        msg,
        format!(
            "User: {session_arn} is not authorized to perform: kms:Encrypt on resource: \
             {for_carol} because no resource-based policy allows the kms:Encrypt action"
        )
    );

    // Session policies narrow a session even where the key policy names its role: what the
    // session policy does not allow, and what it denies, are named as AWS names them.
    let encrypt_denied = no_session_policy_allows("Encrypt");
    for (name, policy, why) in [
        ("narrow", ONLY_DECRYPT, encrypt_denied.as_str()),
        (
            "denying",
            ALL_BUT_ENCRYPT_AND_LIST_KEYS,
            SESSION_POLICY_DENY,
        ),
    ] {
        let session =
            RoleSession::of(&srv.endpoint, DAVE_KEY, APP, name, |r| r.policy(policy)).await;
        let (code, msg) = encrypt(&session.kms(), &for_role).await.unwrap_err();
        assert_eq!(code, "AccessDeniedException");
        assert_eq!(msg, kms_denied(session.arn(), "Encrypt", &for_role, why));
        let plain = session
            .kms()
            .decrypt()
            .ciphertext_blob(blob.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(plain.plaintext().unwrap().as_ref(), PLAINTEXT.as_bytes());
    }

    // A wrong session token.
    let wrong = s1.kms_at(&srv.endpoint, Some("bm90IHRoZSB0b2tlbg=="));
    let (code, msg) = common::fail(wrong.list_keys().send().await);
    assert_eq!(code, "UnrecognizedClientException");
    assert_eq!(
        msg,
        "The security token included in the request is invalid."
    );
    let (code, msg, status) = sts_fail(
        s1.sts_at(&srv.endpoint, Some("bm90IHRoZSB0b2tlbg=="))
            .get_caller_identity()
            .send()
            .await,
    );
    assert_eq!((code.as_str(), status), ("InvalidClientTokenId", 403));
    assert_eq!(
        msg,
        "The security token included in the request is invalid."
    );

    // Past Expiration on the service's clock.
    srv.clock.advance(chrono::Duration::seconds(3601));
    let (code, msg) = encrypt(&kms, &for_role).await.unwrap_err();
    assert_eq!(code, "ExpiredTokenException");
    assert_eq!(msg, "The security token included in the request is expired");
    let (code, msg, status) = sts_fail(s1.sts().get_caller_identity().send().await);
    assert_eq!((code.as_str(), status), ("ExpiredToken", 403));
    assert_eq!(msg, "The security token included in the request is expired");
}

/// AccessDenied names the session policy as AWS does, for a role whose identity policy allows
/// `kms:*` (the default key policy delegates to it): "because no session policy allows" when
/// the role allows and the session policy does not, "with an explicit deny in a session
/// policy" for its Deny; on a key and on `*` (CreateKey, ListKeys). What both allow works.
#[tokio::test]
async fn session_policy_denials_name_the_session_policy() {
    let srv = server().await;
    let admin = srv.client();
    let (_, key) = common::new_key(&admin).await;
    let blob = encrypt(&admin, &key).await.unwrap();
    let session = |name: &'static str, policy: &'static str| {
        RoleSession::of(&srv.endpoint, DAVE_KEY, WORKER, name, move |r| {
            r.policy(policy)
        })
    };

    // Decrypt only: Encrypt, CreateKey and ListKeys are the role's but not the session's.
    // Everything but Encrypt and ListKeys: their Deny is named.
    let narrow = session("narrow", ONLY_DECRYPT).await;
    let denying = session("denying", ALL_BUT_ENCRYPT_AND_LIST_KEYS).await;
    let (n, d) = (narrow.kms(), denying.kms());
    let not_allowed = |action| (action, no_session_policy_allows(action));
    let denied = |action| (action, SESSION_POLICY_DENY.to_string());
    let refused = [
        (
            &narrow,
            not_allowed("Encrypt"),
            key.as_str(),
            encrypt(&n, &key).await.unwrap_err(),
        ),
        (
            &narrow,
            not_allowed("CreateKey"),
            "*",
            common::fail(n.create_key().send().await),
        ),
        (
            &narrow,
            not_allowed("ListKeys"),
            "*",
            common::fail(n.list_keys().send().await),
        ),
        (
            &denying,
            denied("Encrypt"),
            key.as_str(),
            encrypt(&d, &key).await.unwrap_err(),
        ),
        (
            &denying,
            denied("ListKeys"),
            "*",
            common::fail(d.list_keys().send().await),
        ),
    ];
    for (session, (action, why), resource, (code, msg)) in refused {
        assert_eq!(code, "AccessDeniedException", "{action}");
        assert_eq!(msg, kms_denied(session.arn(), action, resource, &why));
    }
    // What both allow: Decrypt for the one, CreateKey (and the new key) for the other.
    let plain = n.decrypt().ciphertext_blob(blob).send().await.unwrap();
    assert_eq!(plain.plaintext().unwrap().as_ref(), PLAINTEXT.as_bytes());
    let (_, created) = common::new_key(&d).await;
    d.describe_key().key_id(&created).send().await.unwrap();

    // Without a session policy the role's own policy decides: the same calls work.
    let whole = assume(&srv.endpoint, DAVE_KEY, WORKER, "whole").await.kms();
    encrypt(&whole, &key).await.unwrap();
    whole.list_keys().send().await.unwrap();
}

/// The `sessionContext` CloudTrail writes for a role session: the role that issued it, an
/// empty `webIdFederationData`, `attributes` with the issue time (the Expiration less the
/// duration) and `mfaAuthenticated` "false", and the source identity when it has one.
fn session_context(s: &RoleSession, role: &str, seconds: i64, source: Option<&str>) -> Value {
    let role_id = s.output.assumed_role_user().unwrap().assumed_role_id();
    let issued = chrono::DateTime::from_timestamp(s.credentials().expiration().secs() - seconds, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut context = serde_json::json!({
        "sessionIssuer": {
            "type": "Role",
            "principalId": role_id.split(':').next().unwrap(),
            "arn": role,
            "accountId": A,
            "userName": role.rsplit('/').next().unwrap(),
        },
        "webIdFederationData": {},
        "attributes": {"creationDate": issued, "mfaAuthenticated": "false"},
    });
    if let Some(source) = source {
        context["sourceIdentity"] = source.into();
    }
    context
}

#[tokio::test]
async fn sts_calls_are_audited_without_secrets() {
    let srv = server().await;
    let dave = sts(&srv, DAVE_KEY);
    let audited = RoleSession::of(&srv.endpoint, DAVE_KEY, APP, "audited", |r| {
        r.duration_seconds(1800).external_id("ext-secret-1")
    })
    .await;
    let ok_rid = audited.output.request_id().unwrap().to_string();
    let creds = audited.credentials().clone();
    let denied = dave
        .assume_role()
        .role_arn(OTHER)
        .role_session_name("nope")
        .send()
        .await
        .unwrap_err();
    let denied_rid = denied.request_id().unwrap().to_string();
    let who = audited.sts().get_caller_identity().send().await.unwrap();
    let who_rid = who.request_id().unwrap().to_string();
    // A chained session, with a source identity passed down.
    srv.clock.advance(chrono::Duration::seconds(90));
    let first = RoleSession::of(&srv.endpoint, DAVE_KEY, FIRST, "one", |r| {
        r.source_identity("dave")
    })
    .await;
    let chained = first
        .chain(|r| r.role_arn(SECOND).role_session_name("two"))
        .await;
    let chained_who = chained.kms().list_keys().send().await.unwrap_err();
    let chained_rid = chained_who.request_id().unwrap().to_string();
    let bad = common::sts::client_in(
        &srv.endpoint,
        "us-east-1",
        Credentials::new(
            DAVE_KEY.0,
            "wrong-secret-wrong-secret-wrong-secret-00",
            None,
            None,
            "t",
        ),
    )
    .get_caller_identity()
    .send()
    .await
    .unwrap_err();
    let bad_rid = bad.request_id().unwrap().to_string();

    let records = srv.audit_records().await;
    let record = |rid: &str| -> Value {
        let found: Vec<&Value> = records.iter().filter(|r| r["requestID"] == rid).collect();
        assert_eq!(found.len(), 1, "one record for {rid}");
        found[0].clone()
    };
    let r = record(&ok_rid);
    assert_eq!(r["eventSource"], "sts.amazonaws.com");
    assert_eq!(r["eventName"], "AssumeRole");
    assert_eq!(r["userIdentity"]["arn"], DAVE);
    assert_eq!(r["userIdentity"]["type"], "IAMUser");
    assert_eq!(r["userIdentity"]["userName"], "dave");
    assert!(r["userIdentity"].get("sessionContext").is_none(), "{r}");
    assert_eq!(
        r["requestParameters"],
        serde_json::json!({"roleArn": APP, "roleSessionName": "audited", "durationSeconds": 1800})
    );
    assert_eq!(
        r["responseElements"],
        serde_json::json!({
            "credentials": {"accessKeyId": creds.access_key_id()},
            "assumedRoleUser": {
                "assumedRoleId": format!("{APP_ID}:audited"),
                "arn": "arn:aws:sts::111122223333:assumed-role/app/audited"
            }
        })
    );
    assert_eq!(r["resources"][0]["ARN"], APP);
    assert_eq!(r["resources"][0]["type"], "AWS::IAM::Role");
    assert!(r.get("errorCode").is_none());

    let r = record(&denied_rid);
    assert_eq!(r["eventSource"], "sts.amazonaws.com");
    assert_eq!(r["errorCode"], "AccessDenied");
    assert_eq!(r["errorMessage"], assume_denied(DAVE, OTHER));
    assert_eq!(r["requestParameters"]["roleArn"], OTHER);

    let r = record(&who_rid);
    assert_eq!(r["eventName"], "GetCallerIdentity");
    assert_eq!(r["userIdentity"]["type"], "AssumedRole");
    assert_eq!(
        r["userIdentity"]["arn"],
        "arn:aws:sts::111122223333:assumed-role/app/audited"
    );
    assert_eq!(r["userIdentity"]["accessKeyId"], creds.access_key_id());
    assert_eq!(
        r["userIdentity"]["principalId"],
        format!("{APP_ID}:audited")
    );
    assert_eq!(
        r["userIdentity"]["sessionContext"],
        session_context(&audited, APP, 1800, None)
    );

    let r = record(&chained_rid);
    assert_eq!(r["eventSource"], "kms.amazonaws.com");
    assert_eq!(r["eventName"], "ListKeys");
    assert_eq!(r["userIdentity"]["type"], "AssumedRole");
    assert_eq!(r["userIdentity"]["arn"], chained.arn());
    assert_eq!(
        r["userIdentity"]["sessionContext"],
        session_context(&chained, SECOND, 3600, Some("dave"))
    );

    let r = record(&bad_rid);
    assert_eq!(r["eventSource"], "sts.amazonaws.com");
    assert_eq!(r["eventName"], "GetCallerIdentity");
    assert_eq!(r["errorCode"], "SignatureDoesNotMatch");
    assert_eq!(r["userIdentity"]["accessKeyId"], DAVE_KEY.0);

    // No secret, token or external id anywhere in the log.
    let log = std::fs::read_to_string(srv.data_dir.path().join("audit.log")).unwrap();
    assert!(!log.contains(creds.secret_access_key()));
    assert!(!log.contains(creds.session_token()));
    assert!(!log.contains("ext-secret-1"));
    assert!(!log.contains(DAVE_KEY.1));
}

#[tokio::test]
async fn sts_scope_region_is_the_servers_or_us_east_1() {
    let srv = common::TestServer::start_with_config(IAM, {
        let mut env = common::backend_env();
        env.push(("KMS_SERVER__REGION".into(), "eu-west-1".into()));
        env
    })
    .await;
    let creds = || Credentials::new(DAVE_KEY.0, DAVE_KEY.1, None, None, "t");
    for region in ["us-east-1", "eu-west-1"] {
        let who = common::sts::client_in(&srv.endpoint, region, creds())
            .get_caller_identity()
            .send()
            .await
            .unwrap_or_else(|e| panic!("{region}: {e:?}"));
        assert_eq!(who.arn(), Some(DAVE));
    }
    let (code, msg, status) = sts_fail(
        common::sts::client_in(&srv.endpoint, "ap-south-1", creds())
            .get_caller_identity()
            .send()
            .await,
    );
    assert_eq!((code.as_str(), status), ("SignatureDoesNotMatch", 403));
    assert_eq!(msg, "Credential should be scoped to a valid region. ");
}

/// A raw POST of `body` to `/`: (status, content type, body).
async fn post(endpoint: &str, headers: Vec<(String, String)>, body: &str) -> (u16, String, String) {
    raw(endpoint, "POST", "/", headers, body).await
}

/// A raw request: (status, content type, body).
async fn raw(
    endpoint: &str,
    method: &str,
    path_and_query: &str,
    headers: Vec<(String, String)>,
    body: &str,
) -> (u16, String, String) {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (status, response_headers, bytes) =
        common::raw_exchange(endpoint, method, path_and_query, &headers, body.into()).await;
    let content_type = response_headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (
        status,
        content_type,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

/// Headers of a request signed by dave for STS, now.
fn signed(
    endpoint: &str,
    method: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Vec<(String, String)> {
    signed_at(endpoint, method, query, headers, body, chrono::Utc::now())
}

/// Headers of a request signed by dave for STS at `time`.
fn signed_at(
    endpoint: &str,
    method: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: &str,
    time: chrono::DateTime<chrono::Utc>,
) -> Vec<(String, String)> {
    let host = endpoint.trim_start_matches("http://");
    let signer = sigv4::Signer::new(DAVE_KEY.0, DAVE_KEY.1, "us-east-1", "sts");
    let signed = signer
        .sign(
            &sigv4::SignableRequest {
                method,
                host,
                path: "/",
                query,
                headers,
                body: body.as_bytes(),
            },
            time,
        )
        .unwrap();
    headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain(
            signed
                .headers()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .collect()
}

#[tokio::test]
async fn raw_wire_envelopes_get_and_unknown_actions() {
    let srv = server().await;
    let form = (
        "content-type",
        "application/x-www-form-urlencoded; charset=utf-8",
    );

    // POST with a form body: the XML success envelope.
    let body = "Action=GetCallerIdentity&Version=2011-06-15";
    let (status, ct, xml) = post(
        &srv.endpoint,
        signed(&srv.endpoint, "POST", "", &[form], body),
        body,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(ct, "text/xml");
    assert!(
        xml.starts_with(
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
         <GetCallerIdentityResult><Arn>arn:aws:iam::111122223333:user/dave</Arn>\
         <UserId>AIDADAVEUSEREXAMPLE01</UserId><Account>111122223333</Account>\
         </GetCallerIdentityResult><ResponseMetadata><RequestId>"
        ),
        "{xml}"
    );
    assert!(xml.ends_with("</RequestId></ResponseMetadata></GetCallerIdentityResponse>"));

    // GET with the same query string.
    let (status, _, xml) = raw(
        &srv.endpoint,
        "GET",
        &format!("/?{body}"),
        signed(&srv.endpoint, "GET", body, &[], ""),
        "",
    )
    .await;
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains("<Arn>arn:aws:iam::111122223333:user/dave</Arn>"));

    // Unknown action, and a wrong version.
    for (body, message) in [
        (
            "Action=GetSessionToken&Version=2011-06-15",
            "Could not find operation GetSessionToken for version 2011-06-15",
        ),
        (
            "Action=GetCallerIdentity&Version=2010-01-01",
            "Could not find operation GetCallerIdentity for version 2010-01-01",
        ),
    ] {
        let (status, ct, xml) = post(
            &srv.endpoint,
            signed(&srv.endpoint, "POST", "", &[form], body),
            body,
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(ct, "text/xml");
        assert!(
            xml.starts_with(&format!(
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>\
             <Type>Sender</Type><Code>InvalidAction</Code><Message>{message}</Message></Error>\
             <RequestId>"
            )),
            "{xml}"
        );
    }

    // No signature at all.
    let (status, _, xml) = post(&srv.endpoint, vec![(form.0.into(), form.1.into())], body).await;
    assert_eq!(status, 403);
    assert!(xml.contains("<Code>MissingAuthenticationToken</Code><Message>Request is missing Authentication Token</Message>"), "{xml}");

    // A request without X-Amz-Target that is not a form is still the KMS API's.
    let (status, ct, _) = post(
        &srv.endpoint,
        vec![("content-type".into(), "application/x-amz-json-1.1".into())],
        "{}",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(ct, "application/x-amz-json-1.1");
}

/// STS's clock-skew window is AWS STS's 15 minutes, not the KMS API's 5: a request signed 10
/// minutes off either way is answered, one signed 16 minutes off is `SignatureDoesNotMatch`
/// (403) with AWS's text naming the 15-minute window. (The KMS API's 5 minutes: `tests/wire.rs`.)
#[tokio::test]
async fn sts_clock_skew_window_is_15_minutes() {
    let srv = server().await;
    let form = ("content-type", "application/x-www-form-urlencoded");
    let body = "Action=GetCallerIdentity&Version=2011-06-15";
    let at = |offset: chrono::Duration| {
        signed_at(
            &srv.endpoint,
            "POST",
            "",
            &[form],
            body,
            chrono::Utc::now() + offset,
        )
    };
    for minutes in [-10, 10] {
        let (status, _, xml) =
            post(&srv.endpoint, at(chrono::Duration::minutes(minutes)), body).await;
        assert_eq!(status, 200, "signed {minutes} min off: {xml}");
        assert!(xml.contains(&format!("<Arn>{DAVE}</Arn>")), "{xml}");
    }
    // The message names the request's X-Amz-Date, the window's edge and the server's time,
    // which are 15 minutes apart.
    let parse = |t: &str| chrono::NaiveDateTime::parse_from_str(t, "%Y%m%dT%H%M%SZ").unwrap();
    for (minutes, words, sign) in [
        (-16, ("Signature expired: ", " is now earlier than "), '-'),
        (
            16,
            ("Signature not yet current: ", " is still later than "),
            '+',
        ),
    ] {
        let headers = at(chrono::Duration::minutes(minutes));
        let amz_date = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-date"))
            .map(|(_, v)| v.clone())
            .unwrap();
        let (status, ct, xml) = post(&srv.endpoint, headers, body).await;
        assert_eq!((status, ct.as_str()), (403, "text/xml"), "{xml}");
        let message = xml
            .split_once("<Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>")
            .and_then(|(_, rest)| rest.split_once("</Message>"))
            .map(|(m, _)| m)
            .unwrap_or_else(|| panic!("signed {minutes} min off: {xml}"));
        let rest = message
            .strip_prefix(&format!("{}{amz_date}{}", words.0, words.1))
            .unwrap_or_else(|| panic!("{message}"));
        let (edge, now) = rest
            .strip_suffix(&format!(" {sign} 15 min.)"))
            .and_then(|r| r.split_once(" ("))
            .unwrap_or_else(|| panic!("{message}"));
        let window = if sign == '-' {
            parse(now) - parse(edge)
        } else {
            parse(edge) - parse(now)
        };
        assert_eq!(window, chrono::Duration::minutes(15), "{message}");
    }
}

/// A `kms` process, killed when dropped (also when a test fails).
struct Node(std::process::Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `kms` process on `dir` with the root of `root_env` (`common::backend_env()`: on the PKCS#11
/// root each call names a new domain key, so a restart must reuse it) and the identities of
/// these tests (alice, the harness's administrator, included) from a configuration file;
/// returns it with its endpoint.
fn spawn_node(dir: &std::path::Path, root_env: &[(String, String)]) -> (Node, String) {
    let cfg = dir.join("iam.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[credentials]]\naccess_key_id = '{}'\nsecret_access_key = '{}'\n\
             principal = 'arn:aws:iam::111122223333:user/alice'\n{IAM}",
            common::ACCESS_KEY,
            common::SECRET_KEY
        ),
    )
    .unwrap();
    let mut env = root_env.to_vec();
    env.push(("KMS_LOG".into(), "warn".into()));
    env.push(("KMS_CONFIG".into(), cfg.display().to_string()));
    let (child, endpoint) = common::spawn_kms(dir, env, std::process::Stdio::null());
    (Node(child), endpoint)
}

/// `token` with one byte of its binary form changed.
fn tamper(token: &str, at: usize) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut raw = b64.decode(token).unwrap();
    let at = at % raw.len();
    raw[at] ^= 0x40;
    b64.encode(raw)
}

/// Session tokens are sealed, self-contained credentials: they survive a restart of the node
/// (same data directory: same root, same database, same session-token key), are refused with
/// one byte changed, with another session's access key id, and on another deployment.
#[tokio::test]
async fn session_tokens_survive_a_restart_and_are_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let root = common::backend_env();
    let (node, endpoint) = spawn_node(dir.path(), &root);
    let admin = common::sdk_client(&endpoint, common::ACCESS_KEY, common::SECRET_KEY);
    let key = key_allowing_with(&admin, APP).await;
    let x = assume(&endpoint, DAVE_KEY, APP, "sx").await;
    let y = assume(&endpoint, DAVE_KEY, APP, "sy").await;
    assert_ne!(
        x.credentials().access_key_id(),
        y.credentials().access_key_id()
    );
    let blob = encrypt(&x.kms(), &key).await.unwrap();
    drop(node);

    // The same credentials after a restart.
    let (node, endpoint) = spawn_node(dir.path(), &root);
    let kms = x.kms_at(&endpoint, None);
    let plain = kms.decrypt().ciphertext_blob(blob).send().await;
    let identity = x.sts_at(&endpoint, None).get_caller_identity().send().await;
    // One byte changed, anywhere (version, nonce, ciphertext, tag).
    let token = x.credentials().session_token();
    let token_len = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(token)
            .unwrap()
            .len()
    };
    let mut tampered = Vec::new();
    for at in [0, 1, 20, token_len / 2, token_len - 1] {
        let t = tamper(token, at);
        tampered.push(common::fail(
            x.kms_at(&endpoint, Some(&t)).list_keys().send().await,
        ));
    }
    // X's token with Y's access key id (and Y's secret: the signature is Y's), and the reverse.
    let swapped = common::fail(
        y.kms_at(&endpoint, Some(x.credentials().session_token()))
            .list_keys()
            .send()
            .await,
    );
    let swapped_back = common::fail(
        x.kms_at(&endpoint, Some(y.credentials().session_token()))
            .list_keys()
            .send()
            .await,
    );
    // No token at all with a temporary key.
    let no_token = common::fail(
        common::sdk_client(
            &endpoint,
            x.credentials().access_key_id(),
            x.credentials().secret_access_key(),
        )
        .list_keys()
        .send()
        .await,
    );
    drop(node);

    // Another deployment (its own root key or token objects' database, its own session key).
    let other_dir = tempfile::tempdir().unwrap();
    let (other, other_endpoint) = spawn_node(other_dir.path(), &common::backend_env());
    let foreign = common::fail(x.kms_at(&other_endpoint, None).list_keys().send().await);
    drop(other);

    assert_eq!(
        plain.unwrap().plaintext().unwrap().as_ref(),
        PLAINTEXT.as_bytes()
    );
    assert_eq!(
        identity.unwrap().arn(),
        Some("arn:aws:sts::111122223333:assumed-role/app/sx")
    );
    let invalid = (
        "UnrecognizedClientException".to_string(),
        "The security token included in the request is invalid.".to_string(),
    );
    for (i, refused) in tampered.iter().enumerate() {
        assert_eq!(refused, &invalid, "tampered token {i}");
    }
    assert_eq!(swapped, invalid);
    assert_eq!(swapped_back, invalid);
    assert_eq!(no_token.0, "UnrecognizedClientException");
    assert_eq!(foreign, invalid);
}

/// Session tags and the source identity travel in the token and are `aws:PrincipalTag/<key>`
/// and `aws:SourceIdentity` on later requests: a key policy allowing only sessions tagged
/// `team=kms` lets that session encrypt and refuses one tagged otherwise, and its Deny on one
/// source identity refuses that session.
#[tokio::test]
async fn session_tags_and_source_identity_are_condition_keys() {
    let srv = server().await;
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Admins", "Effect": "Allow",
             "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "Team", "Effect": "Allow", "Principal": {"AWS": PARTNER},
             "Action": "kms:Encrypt", "Resource": "*",
             "Condition": {"StringEquals": {"aws:PrincipalTag/team": "kms"}}},
            {"Sid": "NotThatLaptop", "Effect": "Deny", "Principal": {"AWS": PARTNER},
             "Action": "kms:Encrypt", "Resource": "*",
             "Condition": {"StringEquals": {"aws:SourceIdentity": "lost-laptop"}}}
        ]
    });
    let key = key_with_policy(&srv.client(), policy).await;
    let session = |team: &'static str, source: &'static str| {
        RoleSession::of(&srv.endpoint, DAVE_KEY, PARTNER, team, move |r| {
            r.external_id("ext-123")
                .source_identity(source)
                .tags(tag("team", team))
        })
    };
    let kms_team = session("kms", "dave-desk").await;
    let other_team = session("web", "dave-desk").await;
    let lost = session("kms", "lost-laptop").await;
    encrypt(&kms_team.kms(), &key).await.unwrap();
    let (code, msg) = encrypt(&other_team.kms(), &key).await.unwrap_err();
    assert_eq!(code, "AccessDeniedException");
    assert!(
        msg.starts_with(
            "User: arn:aws:sts::111122223333:assumed-role/partner/web is not authorized"
        ),
        "{msg}"
    );
    let (code, msg) = encrypt(&lost.kms(), &key).await.unwrap_err();
    assert_eq!(code, "AccessDeniedException");
    assert!(
        msg.ends_with("with an explicit deny in a resource-based policy"),
        "{msg}"
    );
}

/// The documented way to end every session early (`docs/authorization.md`, "Sessions"): delete
/// the session-token key's row and restart; the old credentials are refused, new ones work.
#[tokio::test]
async fn deleting_the_session_key_row_ends_every_session() {
    let dir = tempfile::tempdir().unwrap();
    let root = common::backend_env();
    let (node, endpoint) = spawn_node(dir.path(), &root);
    let old = assume(&endpoint, DAVE_KEY, APP, "before").await;
    let before = old.sts().get_caller_identity().send().await;
    drop(node);

    common::store_sql(
        dir.path(),
        "DELETE FROM system_secrets WHERE name = 'session-token-key-v1'",
    );

    let (node, endpoint) = spawn_node(dir.path(), &root);
    let after = sts_fail(
        old.sts_at(&endpoint, None)
            .get_caller_identity()
            .send()
            .await,
    );
    let fresh = assume(&endpoint, DAVE_KEY, APP, "after")
        .await
        .sts()
        .get_caller_identity()
        .send()
        .await;
    drop(node);

    assert!(before.is_ok(), "{before:?}");
    assert_eq!(
        after,
        (
            "InvalidClientTokenId".to_string(),
            "The security token included in the request is invalid.".to_string(),
            403
        )
    );
    assert_eq!(
        fresh.unwrap().arn(),
        Some("arn:aws:sts::111122223333:assumed-role/app/after")
    );
}

/// A key of alice's that `principal`'s sessions may Encrypt with, under `conditions` (a JSON
/// object for the statement's `Condition`), and never with a `team` tag.
async fn key_for_sessions(
    srv: &common::TestServer,
    principal: &str,
    conditions: serde_json::Value,
) -> String {
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Admins", "Effect": "Allow",
             "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "Use", "Effect": "Allow", "Principal": {"AWS": principal},
             "Action": "kms:Encrypt", "Resource": "*", "Condition": conditions},
            {"Sid": "NoTeam", "Effect": "Deny", "Principal": "*",
             "Action": "kms:Encrypt", "Resource": "*",
             "Condition": {"Null": {"aws:PrincipalTag/team": "false"}}}
        ]
    });
    key_with_policy(&srv.client(), policy).await
}

/// Encrypt of [`PLAINTEXT`] under `key`: the ciphertext, or the error's (code, message).
async fn encrypt(kms: &aws_sdk_kms::Client, key: &str) -> Result<Blob, (String, String)> {
    match kms
        .encrypt()
        .key_id(key)
        .plaintext(Blob::new(PLAINTEXT))
        .send()
        .await
    {
        Ok(out) => Ok(out.ciphertext_blob().unwrap().clone()),
        Err(e) => Err((common::code(&e), common::message(&e))),
    }
}

const PLAINTEXT: &str = "attack at dawn";

/// Role chaining carries what AWS carries: the transitive tags (again transitive, as tags of
/// the new session) and the source identity, down a chain of three roles; the trust policies
/// see them as `aws:RequestTag/<key>`, `sts:TransitiveTagKeys` and `sts:SourceIdentity`; the
/// non-transitive tag stays behind.
#[tokio::test]
async fn transitive_tags_and_source_identity_pass_down_a_role_chain() {
    let srv = server().await;
    let first = RoleSession::of(&srv.endpoint, DAVE_KEY, FIRST, "one", |r| {
        r.source_identity("dave")
            .tags(tag("Project", "p1"))
            .tags(tag("team", "kms"))
            .transitive_tag_keys("Project")
    })
    .await;
    // Nothing passed: the trust policy of `second` still sees Project=p1 (transitive) and the
    // source identity, and the result shows both.
    let second = first
        .chain(|r| r.role_arn(SECOND).role_session_name("two"))
        .await;
    assert_eq!(second.output.source_identity(), Some("dave"));
    assert_eq!(packed_policy_size(&second.output), Some(1));
    assert_eq!(
        second.arn(),
        "arn:aws:sts::111122223333:assumed-role/second/two"
    );
    // And again from `second`: Project stayed transitive.
    let third = second
        .chain(|r| r.role_arn(THIRD).role_session_name("three"))
        .await;
    assert_eq!(third.output.source_identity(), Some("dave"));

    // The sessions' condition keys: Project and the source identity, never `team` (each key
    // denies sessions tagged `team`, which only the first session is).
    for (session, role) in [(&third, THIRD), (&second, SECOND)] {
        let inherited = serde_json::json!({"StringEquals": {
            "aws:PrincipalTag/Project": "p1", "aws:SourceIdentity": "dave"}});
        let key = key_for_sessions(&srv, role, inherited).await;
        encrypt(&session.kms(), &key).await.unwrap();
    }
    let first_key = key_for_sessions(
        &srv,
        FIRST,
        serde_json::json!({"StringEquals": {"aws:PrincipalTag/Project": "p1"}}),
    )
    .await;
    let (code, msg) = encrypt(&first.kms(), &first_key).await.unwrap_err();
    assert_eq!(code, "AccessDeniedException");
    assert!(
        msg.ends_with("with an explicit deny in a resource-based policy"),
        "the first session has `team`: {msg}"
    );

    // GetCallerIdentity of the last session.
    let who = third.sts().get_caller_identity().send().await.unwrap();
    assert_eq!(
        who.arn(),
        Some("arn:aws:sts::111122223333:assumed-role/third/three")
    );

    // The audit record of the chained call shows the incoming transitive tags and the
    // source identity, as CloudTrail does.
    let rid = second.output.request_id().unwrap().to_string();
    let records = srv.audit_records().await;
    let r = records
        .iter()
        .find(|r| r["requestID"] == rid.as_str())
        .unwrap();
    assert_eq!(
        r["requestParameters"]["incomingTransitiveTags"],
        serde_json::json!({"Project": "p1"})
    );
    assert_eq!(r["responseElements"]["sourceIdentity"], "dave");
}

/// What a chained AssumeRole may not do, with AWS's errors: pass a tag whose key is an
/// inherited transitive key (in any case), set another source identity; what the trust
/// policy refuses: inherited tags or source identity without `sts:TagSession` /
/// `sts:SetSourceIdentity`, inherited values its conditions do not allow.
#[tokio::test]
async fn chained_requests_cannot_override_what_they_inherit() {
    let srv = server().await;
    let first = |name: &'static str, project: &'static str| {
        RoleSession::of(&srv.endpoint, DAVE_KEY, FIRST, name, move |r| {
            r.source_identity("dave")
                .tags(tag("Project", project))
                .transitive_tag_keys("Project")
        })
    };
    let one = first("one", "p1").await;
    let chained = || {
        one.sts()
            .assume_role()
            .role_arn(SECOND)
            .role_session_name("two")
    };

    for key in ["Project", "project", "PROJECT"] {
        let (code, msg, status) = sts_fail(chained().tags(tag(key, "p1")).send().await);
        assert_eq!(
            (code.as_str(), status),
            ("InvalidParameterValue", 400),
            "{key}"
        );
        assert_eq!(
            msg,
            "One of the specified transitive tag keys can't be set because it conflicts with \
             a transitive tag key from the calling session."
        );
    }
    let (code, msg, status) = sts_fail(chained().source_identity("mallory").send().await);
    assert_eq!((code.as_str(), status), ("ValidationError", 400));
    assert_eq!(
        msg,
        "The source identity is already set for this assume role session"
    );
    // The same source identity again is no change.
    let same = RoleSession::assume(&srv.endpoint, chained().source_identity("dave")).await;
    assert_eq!(same.output.source_identity(), Some("dave"));

    // sts:TransitiveTagKeys holds the inherited key: `second` allows no other transitive key
    // (a new tag that is not transitive is fine).
    let (code, msg, _) = sts_fail(
        chained()
            .tags(tag("Stage", "s"))
            .transitive_tag_keys("Stage")
            .send()
            .await,
    );
    let session_arn = "arn:aws:sts::111122223333:assumed-role/first/one";
    assert_eq!(code, "AccessDenied");
    assert_eq!(
        msg,
        format!("User: {session_arn} is not authorized to perform: sts:TagSession on resource: {SECOND}")
    );
    let staged = RoleSession::assume(&srv.endpoint, chained().tags(tag("Stage", "s"))).await;
    assert_eq!(packed_policy_size(&staged.output), Some(1));

    // The inherited Project=p2 is `aws:RequestTag/Project` for `second`, which wants p1.
    let p2 = first("p2", "p2").await;
    let (code, msg, _) = assume_fails(&p2.sts(), SECOND, "two", |r| r).await;
    assert_eq!(code, "AccessDenied");
    assert!(msg.contains("sts:TagSession"), "{msg}");

    // `notag` grants neither sts:TagSession nor sts:SetSourceIdentity: inheriting needs them.
    let (code, msg, _) = assume_fails(&one.sts(), NOTAG, "nn", |r| r).await;
    assert_eq!(code, "AccessDenied");
    assert_eq!(
        msg,
        format!(
            "User: {session_arn} is not authorized to perform: sts:TagSession on resource: {NOTAG}"
        )
    );
    let only_source = RoleSession::of(&srv.endpoint, DAVE_KEY, FIRST, "src", |r| {
        r.source_identity("dave")
    })
    .await;
    let (code, msg, _) = assume_fails(&only_source.sts(), NOTAG, "nn", |r| r).await;
    assert_eq!(code, "AccessDenied");
    assert_eq!(
        msg,
        format!(
            "User: arn:aws:sts::111122223333:assumed-role/first/src is not authorized to \
             perform: sts:SetSourceIdentity on resource: {NOTAG}"
        )
    );
    // Tags that are not transitive do not pass: nothing is inherited, `notag` is enough.
    let untransitive = RoleSession::of(&srv.endpoint, DAVE_KEY, FIRST, "plain", |r| {
        r.tags(tag("team", "kms"))
    })
    .await;
    let plain = untransitive
        .chain(|r| r.role_arn(NOTAG).role_session_name("nn"))
        .await;
    assert_eq!(packed_policy_size(&plain.output), None);
    assert_eq!(plain.output.source_identity(), None);
}

/// Inherited tags count towards the 50 session tags and the packed size.
#[tokio::test]
async fn inherited_tags_count_towards_the_limits() {
    let srv = server().await;
    let dave = sts(&srv, DAVE_KEY);
    let mut fifty = dave
        .assume_role()
        .role_arn(FIRST)
        .role_session_name("fifty");
    for i in 0..50 {
        fifty = fifty
            .tags(tag(&format!("k{i}"), "v"))
            .transitive_tag_keys(format!("k{i}"));
    }
    let fifty = RoleSession::assume(&srv.endpoint, fifty).await;
    let (code, msg, status) =
        assume_fails(&fifty.sts(), NOTAG, "nn", |r| r.tags(tag("one", "more"))).await;
    assert_eq!((code.as_str(), status), ("InvalidParameterValue", 400));
    assert_eq!(
        msg,
        "The session would have more than 50 session tags, counting the transitive tags \
         inherited from the calling session."
    );

    // 1920 bytes of transitive tags (94%): a chained session with 200 more bytes is too big.
    let mut big = dave.assume_role().role_arn(FIRST).role_session_name("big");
    for i in 0..5 {
        let key = format!("{i}{}", "k".repeat(127));
        big = big
            .tags(tag(&key, &"v".repeat(256)))
            .transitive_tag_keys(key);
    }
    let big = RoleSession::assume(&srv.endpoint, big).await;
    assert_eq!(packed_policy_size(&big.output), Some(94));
    let (code, msg, _) = assume_fails(&big.sts(), NOTAG, "nn", |r| {
        r.tags(tag(&"x".repeat(100), &"y".repeat(100)))
    })
    .await;
    assert_eq!(code, "PackedPolicyTooLarge");
    assert_eq!(
        msg,
        "Packed policy consumes 104% of allotted space, please use smaller policy."
    );
}

/// The revocation recipe of AWS (docs/authorization.md, "Revoking role sessions"): a Deny with
/// `DateLessThan` on `aws:TokenIssueTime` refuses the sessions issued before its time, in an
/// identity policy of the role (also for role chaining) or in a key policy, and lets newer
/// sessions through; long-term credentials do not have the key (`DateLessThan` is false for
/// them, `...IfExists` true, `Null` true).
#[tokio::test]
async fn token_issue_time_revokes_older_sessions() {
    // Half an hour after the server's clock starts.
    let cutoff = (chrono::Utc::now() + chrono::Duration::minutes(30))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let revocable = format!(
        r#"
[[roles]]
arn = 'arn:aws:iam::111122223333:role/revocable'
max_session_duration_seconds = 7200
trust_policy = '{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{DAVE}"}},"Action":"sts:AssumeRole"}}]}}'
policies = ['{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"kms:*","Resource":"*"}},{{"Sid":"AWSRevokeOlderSessions","Effect":"Deny","Action":"*","Resource":"*","Condition":{{"DateLessThan":{{"aws:TokenIssueTime":"{cutoff}"}}}}}}]}}']

[[roles]]
arn = 'arn:aws:iam::111122223333:role/next'
trust_policy = '{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::111122223333:role/revocable"}},"Action":"sts:AssumeRole"}}]}}'
"#
    );
    let srv =
        common::TestServer::start_with_config(&format!("{IAM}{revocable}"), common::backend_env())
            .await;
    let two_hours = |role: &'static str, name: &'static str| {
        RoleSession::of(&srv.endpoint, DAVE_KEY, role, name, |r| {
            r.duration_seconds(7200)
        })
    };
    let revocable = "arn:aws:iam::111122223333:role/revocable";
    let next = "arn:aws:iam::111122223333:role/next";
    let old = two_hours(revocable, "old").await;
    let app_old = two_hours(APP, "old").await;
    srv.clock.advance(chrono::Duration::minutes(60));
    let new = two_hours(revocable, "new").await;
    let app_new = two_hours(APP, "new").await;

    // The role's identity policy: the old session is refused, for KMS and for chaining.
    let (_, key) = common::new_key(&srv.client()).await;
    encrypt(&new.kms(), &key).await.unwrap();
    let (code, msg) = encrypt(&old.kms(), &key).await.unwrap_err();
    assert_eq!(code, "AccessDeniedException");
    assert!(
        msg.ends_with("with an explicit deny in an identity-based policy"),
        "{msg}"
    );
    let (code, msg, _) = assume_fails(&old.sts(), next, "nn", |r| r).await;
    assert_eq!(code, "AccessDenied");
    assert_eq!(msg, assume_denied(old.arn(), next));
    new.chain(|r| r.role_arn(next).role_session_name("nn"))
        .await;

    // A key policy: the same Deny for every principal, with the three ways of treating a
    // request without the key (alice's long-term credentials).
    let key_policy = |condition: serde_json::Value| {
        serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "Admins", "Effect": "Allow",
                 "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                 "Action": "kms:*", "Resource": "*"},
                {"Sid": "App", "Effect": "Allow", "Principal": {"AWS": APP},
                 "Action": "kms:Encrypt", "Resource": "*"},
                {"Sid": "Revoke", "Effect": "Deny", "Principal": "*",
                 "Action": "kms:Encrypt", "Resource": "*", "Condition": condition}
            ]
        })
    };
    let admin = srv.client();
    let condition = serde_json::json!({"DateLessThan": {"aws:TokenIssueTime": cutoff}});
    let key = key_with_policy(&admin, key_policy(condition)).await;
    // (alice, app's old session, app's new session) refused?
    let refused = || async {
        (
            encrypt(&admin, &key).await.is_err(),
            encrypt(&app_old.kms(), &key).await.is_err(),
            encrypt(&app_new.kms(), &key).await.is_err(),
        )
    };
    assert_eq!(refused().await, (false, true, false), "DateLessThan");
    let (_, msg) = encrypt(&app_old.kms(), &key).await.unwrap_err();
    assert!(
        msg.ends_with("with an explicit deny in a resource-based policy"),
        "{msg}"
    );
    for (condition, expected) in [
        (
            serde_json::json!({"DateLessThanIfExists": {"aws:TokenIssueTime": cutoff}}),
            (true, true, false),
        ),
        (
            serde_json::json!({"Null": {"aws:TokenIssueTime": "true"}}),
            (true, false, false),
        ),
    ] {
        admin
            .put_key_policy()
            .key_id(&key)
            .policy(key_policy(condition.clone()).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(refused().await, expected, "{condition}");
    }
}
