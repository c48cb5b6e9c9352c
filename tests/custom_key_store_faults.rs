//! CloudHSM-style custom key stores under failure, through the real `aws-sdk-kms` client: a
//! locked-out crypto user, connect failures (NETWORK_ERRORS, INSUFFICIENT_CLOUDHSM_HSMS), a
//! missing backing object, no free PKCS#11 session, the per-store request quota, and members
//! that fail or disappear and come back.
//!
//! SoftHSM cannot lock a user or fail on demand, so the server reaches the members through the
//! fault-injection module (softhsm/fault-module/, built by the harness), which forwards to
//! SoftHSM and fails per token label as marker files say.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]
mod common;

use std::time::{Duration, Instant};

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{ConnectionStateType, OriginType};
use common::{code, message, softhsm, TestServer};

/// A failed member is skipped for 5 s (`MEMBER_RETRY_AFTER` in cluster.rs) before it is tried
/// again; tests wait this long after a member returns.
const MEMBER_RETRY: Duration = Duration::from_millis(5_500);

async fn state(kms: &aws_sdk_kms::Client, id: &str) -> (ConnectionStateType, Option<String>) {
    let d = kms
        .describe_custom_key_stores()
        .custom_key_store_id(id)
        .send()
        .await
        .unwrap();
    let s = &d.custom_key_stores()[0];
    (
        s.connection_state().unwrap().clone(),
        s.connection_error_code().map(|c| c.as_str().to_string()),
    )
}

/// Connects the store and waits until it leaves CONNECTING.
async fn connect(kms: &aws_sdk_kms::Client, id: &str) -> (ConnectionStateType, Option<String>) {
    kms.connect_custom_key_store()
        .custom_key_store_id(id)
        .send()
        .await
        .unwrap();
    for _ in 0..200 {
        let s = state(kms, id).await;
        if s.0 != ConnectionStateType::Connecting {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("store {id} stayed CONNECTING");
}

async fn disconnect(kms: &aws_sdk_kms::Client, id: &str) {
    kms.disconnect_custom_key_store()
        .custom_key_store_id(id)
        .send()
        .await
        .unwrap();
}

fn connected() -> (ConnectionStateType, Option<String>) {
    (ConnectionStateType::Connected, None)
}

fn failed(code: &str) -> (ConnectionStateType, Option<String>) {
    (ConnectionStateType::Failed, Some(code.to_string()))
}

async fn start(cluster: &softhsm::TestCluster) -> TestServer {
    TestServer::start_with_config(&cluster.toml(), common::backend_env()).await
}

/// Creates a store on the cluster with `password`.
async fn create_store(
    kms: &aws_sdk_kms::Client,
    cluster: &softhsm::TestCluster,
    password: &str,
) -> String {
    cluster
        .create_store(kms, &format!("store-{}", cluster.id), password)
        .await
}

/// A connected store with the cluster's password.
async fn connected_store(kms: &aws_sdk_kms::Client, cluster: &softhsm::TestCluster) -> String {
    let id = create_store(kms, cluster, &cluster.pin).await;
    assert_eq!(connect(kms, &id).await, connected());
    id
}

async fn create_key(kms: &aws_sdk_kms::Client, store: &str) -> (String, String) {
    let k = kms
        .create_key()
        .origin(OriginType::AwsCloudhsm)
        .custom_key_store_id(store)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    (k.key_id().to_string(), k.arn().unwrap().to_string())
}

async fn encrypt(kms: &aws_sdk_kms::Client, key: &str, data: &[u8]) -> Blob {
    kms.encrypt()
        .key_id(key)
        .plaintext(Blob::new(data.to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap()
}

async fn decrypt(kms: &aws_sdk_kms::Client, ct: &Blob) -> Vec<u8> {
    kms.decrypt()
        .ciphertext_blob(ct.clone())
        .send()
        .await
        .unwrap()
        .plaintext
        .unwrap()
        .into_inner()
}

/// Encrypts and decrypts with each key `rounds` times; every call must succeed.
async fn serve(kms: &aws_sdk_kms::Client, keys: &[&str], old: &[(Blob, Vec<u8>)], rounds: usize) {
    for i in 0..rounds {
        for key in keys {
            let data = format!("round {i} with {key}").into_bytes();
            let ct = encrypt(kms, key, &data).await;
            assert_eq!(decrypt(kms, &ct).await, data);
        }
        for (ct, data) in old {
            assert_eq!(&decrypt(kms, ct).await, data);
        }
    }
}

/// Handles of the objects labelled `label` on a member token, seen through SoftHSM itself
/// (not through the fault module). The server keeps the members logged in, and SoftHSM's login
/// state is per process, so private objects are visible.
fn objects(member: &str, label: &str) -> Vec<cryptoki::object::ObjectHandle> {
    let _shared = hsm::module::object_store_lock().read();
    member_session(member, false)
        .find_objects(&[
            cryptoki::object::Attribute::Class(cryptoki::object::ObjectClass::SECRET_KEY),
            cryptoki::object::Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap()
}

fn destroy_objects(member: &str, label: &str) {
    let s = member_session(member, true);
    for h in objects(member, label) {
        // SoftHSM's object store is not safe for concurrent writes (profile
        // `serialize_object_store`): take the driver's lock, as the server does.
        let _exclusive = hsm::module::object_store_lock().write();
        s.destroy_object(h).unwrap();
    }
}

/// A session on a member token through SoftHSM itself.
fn member_session(member: &str, rw: bool) -> cryptoki::session::Session {
    let profile = hsm::VendorProfile::builtin("softhsm2").unwrap();
    let ctx = hsm::module::load(std::path::Path::new(softhsm::MODULE)).unwrap();
    let slot = hsm::token::find_slot(&ctx, member, &profile).unwrap();
    if rw {
        ctx.open_rw_session(slot).unwrap()
    } else {
        ctx.open_ro_session(slot).unwrap()
    }
}

#[tokio::test]
async fn locked_user_fails_with_user_locked_out() {
    let cluster = softhsm::fault_cluster(2);
    let srv = start(&cluster).await;
    let kms = srv.client();
    let id = create_store(&kms, &cluster, "notThePassword1").await;
    // CloudHSM locks a crypto user after 5 wrong passwords; each connect tries once.
    for attempt in 1..=5 {
        assert_eq!(
            connect(&kms, &id).await,
            failed("INVALID_CREDENTIALS"),
            "attempt {attempt}"
        );
        assert_eq!(cluster.failed_logins(0), attempt);
        disconnect(&kms, &id).await;
    }
    assert_eq!(connect(&kms, &id).await, failed("USER_LOCKED_OUT"));
    disconnect(&kms, &id).await;
    // Locked even with the right password now.
    kms.update_custom_key_store()
        .custom_key_store_id(&id)
        .key_store_password(&cluster.pin)
        .send()
        .await
        .unwrap();
    assert_eq!(connect(&kms, &id).await, failed("USER_LOCKED_OUT"));
    disconnect(&kms, &id).await;
    // The cluster administrator unlocks the user; the store connects and works.
    cluster.unlock_member(0);
    assert_eq!(connect(&kms, &id).await, connected());
    let (key, _) = create_key(&kms, &id).await;
    serve(&kms, &[&key], &[], 1).await;
    assert_eq!(cluster.failed_logins(0), 0);
}

#[tokio::test]
async fn connect_fails_with_network_errors_and_insufficient_hsms() {
    let cluster = softhsm::fault_cluster(2);
    let srv = start(&cluster).await;
    let kms = srv.client();
    let id = create_store(&kms, &cluster, &cluster.pin).await;

    // Every HSM is there but does not answer.
    cluster.fail_member(0);
    cluster.fail_member(1);
    assert_eq!(connect(&kms, &id).await, failed("NETWORK_ERRORS"));
    disconnect(&kms, &id).await;

    // The cluster has no HSM.
    for m in 0..2 {
        cluster.restore_member(m);
        cluster.remove_member(m);
    }
    assert_eq!(
        connect(&kms, &id).await,
        failed("INSUFFICIENT_CLOUDHSM_HSMS")
    );
    // While FAILED, keys cannot be created.
    let e = kms
        .create_key()
        .origin(OriginType::AwsCloudhsm)
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CustomKeyStoreInvalidStateException");
    disconnect(&kms, &id).await;

    // One HSM is enough to connect, not to create keys (AWS wants two).
    cluster.restore_member(0);
    assert_eq!(connect(&kms, &id).await, connected());
    let e = kms
        .create_key()
        .origin(OriginType::AwsCloudhsm)
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CloudHsmClusterInvalidConfigurationException");

    // The second HSM returns: it missed the connect's PIN rotation and is brought in line.
    cluster.restore_member(1);
    tokio::time::sleep(MEMBER_RETRY).await;
    let (key, arn) = create_key(&kms, &id).await;
    for m in &cluster.members {
        assert_eq!(objects(m, &arn).len(), 1, "backing key on {m}");
    }
    serve(&kms, &[&key], &[], 4).await;
    // ... and serves alone.
    cluster.fail_member(0);
    serve(&kms, &[&key], &[], 4).await;
    cluster.restore_member(0);
}

#[tokio::test]
async fn missing_backing_object_is_kms_invalid_state() {
    let cluster = softhsm::fault_cluster(2);
    let srv = start(&cluster).await;
    let kms = srv.client();
    let id = connected_store(&kms, &cluster).await;
    let (key, arn) = create_key(&kms, &id).await;
    let (other, _) = create_key(&kms, &id).await;
    let ct = encrypt(&kms, &key, b"before").await;
    serve(&kms, &[&key, &other], &[], 2).await; // handles cached on both members

    // Deleted from one member: the other still serves, and the key is copied back.
    destroy_objects(&cluster.members[0], &arn);
    serve(&kms, &[&key], &[(ct.clone(), b"before".to_vec())], 3).await;
    assert_eq!(objects(&cluster.members[0], &arn).len(), 1);

    // Deleted from every member (outside the KMS).
    for m in &cluster.members {
        destroy_objects(m, &arn);
    }
    let e = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "KMSInvalidStateException", "{}", message(&e));
    assert!(message(&e).contains("key material"), "{}", message(&e));
    let e = kms
        .decrypt()
        .ciphertext_blob(ct.clone())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "KMSInvalidStateException", "{}", message(&e));
    let e = kms
        .generate_data_key()
        .key_id(&key)
        .number_of_bytes(32)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "KMSInvalidStateException", "{}", message(&e));
    // Not copied back from the metadata store: a key deleted from the cluster stays deleted.
    for m in &cluster.members {
        assert!(objects(m, &arn).is_empty());
    }
    // Other keys of the store are unaffected.
    serve(&kms, &[&other], &[], 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_free_session_is_kms_internal() {
    let mut cluster = softhsm::fault_cluster(2);
    // A slow network HSM: calls are not `in_process` (they run on the blocking pool), one
    // session per member, and a caller waits at most 1 ms for it.
    let profile = softhsm::test_token().dir.join("slow-network-hsm.toml");
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("hsm-config/profiles/softhsm2.toml"),
    )
    .unwrap()
    .replace("in_process = true", "in_process = false");
    assert!(text.contains("in_process = false"));
    std::fs::write(&profile, text).unwrap();
    cluster.settings = format!(
        "profile = '{}'\nsessions = 1\nsession_wait_ms = 1",
        profile.display()
    );
    let srv = start(&cluster).await;
    let kms = srv.client();
    let id = connected_store(&kms, &cluster).await;
    let (key, _) = create_key(&kms, &id).await;
    serve(&kms, &[&key], &[], 2).await;

    // Each HSM has one session, and each encryption holds it for 400 ms.
    cluster.delay_member(0, 400);
    cluster.delay_member(1, 400);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12 {
        let kms = kms.clone();
        let key = key.clone();
        tasks.spawn(async move {
            kms.encrypt()
                .key_id(key)
                .plaintext(Blob::new(format!("request {i}").into_bytes()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| (code(&e), message(&e)))
        });
    }
    let (mut ok, mut busy) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok(()) => ok += 1,
            Err((code, message)) => {
                assert_eq!(code, "KMSInternalException", "{message}");
                assert!(message.contains("no PKCS#11 sessions"), "{message}");
                busy += 1;
            }
        }
    }
    // Two sessions, each held 400 ms: (about) two requests get one, the others give up.
    assert!(
        ok >= 1 && busy >= 6,
        "{ok} succeeded, {busy} found no session"
    );
    assert_eq!(ok + busy, 12);
    // Overload is not a failure: both members keep serving once sessions are free.
    cluster.delay_member(0, 0);
    cluster.delay_member(1, 0);
    serve(&kms, &[&key], &[], 4).await;
}

#[tokio::test]
async fn store_request_quota_throttles() {
    let mut cluster = softhsm::cluster(2);
    cluster.settings = "session_wait_ms = 200\nrequests_per_second = 5".into();
    let srv = start(&cluster).await;
    let kms = srv.client();
    let id = connected_store(&kms, &cluster).await;
    let (key, _) = create_key(&kms, &id).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await; // a full bucket
    let started = Instant::now();
    let (mut ok, mut throttled) = (0u32, 0u32);
    for _ in 0..30 {
        match kms
            .encrypt()
            .key_id(&key)
            .plaintext(Blob::new(b"q".to_vec()))
            .send()
            .await
        {
            Ok(_) => ok += 1,
            Err(e) => {
                assert_eq!(code(&e), "ThrottlingException", "{}", message(&e));
                throttled += 1;
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // A burst of 5, then 5 per second.
    assert!(ok >= 5, "{ok} admitted");
    assert!(
        f64::from(ok) <= 5.0 + 5.0 * elapsed + 1.0,
        "{ok} admitted in {elapsed:.2}s"
    );
    assert!(throttled > 0);
    // The quota is per store: keys of the default key store are not affected.
    let default_key = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    serve(&kms, &[&default_key], &[], 10).await;
    // The bucket refills.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    encrypt(&kms, &key, b"again").await;
}

/// Issue 3: a two-member cluster keeps serving existing keys while one member fails, and keys
/// created after it returns are on both members.
#[tokio::test]
async fn two_members_serve_while_one_fails() {
    let cluster = softhsm::fault_cluster(2);
    let srv = start(&cluster).await;
    let kms = srv.client();
    let id = connected_store(&kms, &cluster).await;
    let (k1, _) = create_key(&kms, &id).await;
    let (k2, _) = create_key(&kms, &id).await;
    let old = vec![
        (encrypt(&kms, &k1, b"one").await, b"one".to_vec()),
        (encrypt(&kms, &k2, b"two").await, b"two".to_vec()),
    ];

    // Member 1's module fails: every Encrypt/Decrypt still succeeds (on member 0).
    cluster.fail_member(1);
    serve(&kms, &[&k1, &k2], &old, 25).await;
    // With one active HSM no key can be created (AWS needs two).
    let e = kms
        .create_key()
        .origin(OriginType::AwsCloudhsm)
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CloudHsmClusterInvalidConfigurationException");

    // Member 1 returns; a new key is created on both members.
    cluster.restore_member(1);
    tokio::time::sleep(MEMBER_RETRY).await;
    let (k3, arn3) = create_key(&kms, &id).await;
    for m in &cluster.members {
        assert_eq!(objects(m, &arn3).len(), 1, "backing key on {m}");
    }
    // Member 1 serves every key alone.
    cluster.fail_member(0);
    serve(&kms, &[&k1, &k2, &k3], &old, 10).await;
    cluster.restore_member(0);
}

/// Issue 3: a key created while a member's token is removed reaches that member when it
/// returns (from the wrapped copy), and the member then serves it alone.
#[tokio::test]
async fn key_created_while_a_member_is_removed_replicates_when_it_returns() {
    let cluster = softhsm::fault_cluster(3);
    let srv = start(&cluster).await;
    let kms = srv.client();
    let id = connected_store(&kms, &cluster).await;
    let (k1, _) = create_key(&kms, &id).await;
    let old = vec![(encrypt(&kms, &k1, b"one").await, b"one".to_vec())];

    cluster.remove_member(1);
    serve(&kms, &[&k1], &old, 25).await;
    // Two active HSMs: keys can be created; the removed member does not get it now.
    let (k2, arn2) = create_key(&kms, &id).await;
    assert_eq!(objects(&cluster.members[0], &arn2).len(), 1);
    assert!(objects(&cluster.members[1], &arn2).is_empty());
    assert_eq!(objects(&cluster.members[2], &arn2).len(), 1);
    let old2 = vec![
        old[0].clone(),
        (encrypt(&kms, &k2, b"two").await, b"two".to_vec()),
    ];
    serve(&kms, &[&k1, &k2], &old2, 10).await;

    // The token returns; requests spread over the members copy the key to it.
    cluster.restore_member(1);
    tokio::time::sleep(MEMBER_RETRY).await;
    serve(&kms, &[&k2], &[], 6).await;
    assert_eq!(objects(&cluster.members[1], &arn2).len(), 1);

    // The returned member serves every key alone.
    cluster.fail_member(0);
    cluster.fail_member(2);
    serve(&kms, &[&k1, &k2], &old2, 10).await;
    let e = kms
        .create_key()
        .origin(OriginType::AwsCloudhsm)
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CloudHsmClusterInvalidConfigurationException");
    cluster.restore_member(0);
    cluster.restore_member(2);
}

/// The driver under a failing module, without a server: repeated device errors rebuild the
/// connection; while the module still fails the connection stays down, and it comes back on
/// use once the module answers again.
#[test]
fn a_token_left_down_reconnects_when_its_module_returns() {
    use hsm::{ErrorClass, Token, TokenConfig, VendorProfile};
    let cluster = softhsm::fault_cluster(1);
    let token = Token::open(TokenConfig {
        module: softhsm::fault_module().into(),
        token_label: cluster.members[0].clone(),
        pin: cluster.pin.clone().into(),
        so: false,
        max_sessions: 2,
        session_wait: Duration::from_millis(100),
        profile: std::sync::Arc::new(VendorProfile::builtin("softhsm2").unwrap()),
    })
    .unwrap();
    token.probe().unwrap();
    let generation = token.generation();
    cluster.fail_member(0);
    for _ in 0..3 {
        assert_eq!(token.probe().unwrap_err().class(), ErrorClass::Device);
    }
    // The third device error rebuilt the connection, which failed: it is down now.
    assert!(token.generation() > generation);
    assert!(token.probe().is_err());
    cluster.restore_member(0);
    std::thread::sleep(Duration::from_millis(1_100));
    token.probe().unwrap();
    assert!(token.session_use().1 >= 1);
}

/// Logs this process out of a member token. SoftHSM's login state is per process (as
/// PKCS#11 says, per application), so this is the server's login too.
fn logout(member: &str) {
    member_session(member, false).logout().unwrap();
}

#[tokio::test]
async fn a_lost_login_is_redone_without_duplicating_keys() {
    let cluster = softhsm::cluster(2);
    let srv = start(&cluster).await;
    let kms = srv.client();
    let id = connected_store(&kms, &cluster).await;
    let (key, arn) = create_key(&kms, &id).await;
    serve(&kms, &[&key], &[], 2).await;
    for m in &cluster.members {
        assert_eq!(objects(m, &arn).len(), 1);
    }
    logout(&cluster.members[0]);
    assert!(
        objects(&cluster.members[0], &arn).is_empty(),
        "private objects are invisible without the login"
    );
    // Requests go round-robin: member 0 serves some of them and must log in again.
    serve(&kms, &[&key], &[], 6).await;
    for m in &cluster.members {
        assert_eq!(
            objects(m, &arn).len(),
            1,
            "member {m} must hold exactly one backing key"
        );
    }
}

/// Members that miss PIN rotations (unreachable during one or more connects) keep working:
/// the KMS records each member's PIN and logs in to each with its own, so a later connect or a
/// returning member never fails with INVALID_CREDENTIALS and no wrong PIN is ever tried.
#[tokio::test]
async fn members_that_missed_pin_rotations_rejoin() {
    let cluster = softhsm::fault_cluster(2);
    let srv = start(&cluster).await;
    let kms = srv.client();
    let id = create_store(&kms, &cluster, &cluster.pin).await;

    // Member 1 misses the first rotation, and is back for the next connect.
    cluster.remove_member(1);
    assert_eq!(connect(&kms, &id).await, connected());
    disconnect(&kms, &id).await;
    cluster.restore_member(1);
    assert_eq!(connect(&kms, &id).await, connected());
    // Both members are in: a key lands on both.
    let (k1, arn1) = create_key(&kms, &id).await;
    for m in &cluster.members {
        assert_eq!(objects(m, &arn1).len(), 1, "backing key on {m}");
    }

    // Member 1 misses two connects in a row, then returns while the store is connected.
    cluster.remove_member(1);
    disconnect(&kms, &id).await;
    assert_eq!(connect(&kms, &id).await, connected());
    disconnect(&kms, &id).await;
    assert_eq!(connect(&kms, &id).await, connected());
    cluster.restore_member(1);
    tokio::time::sleep(MEMBER_RETRY).await;
    let (k2, arn2) = create_key(&kms, &id).await;
    for m in &cluster.members {
        assert_eq!(objects(m, &arn2).len(), 1, "backing key on {m}");
    }
    // It serves alone.
    cluster.fail_member(0);
    serve(&kms, &[&k1, &k2], &[], 4).await;
    cluster.restore_member(0);

    // The rotation of the returning member was stored: the next connect logs in everywhere.
    disconnect(&kms, &id).await;
    assert_eq!(connect(&kms, &id).await, connected());
    let (_, arn3) = create_key(&kms, &id).await;
    for m in &cluster.members {
        assert_eq!(objects(m, &arn3).len(), 1, "backing key on {m}");
    }
    assert_eq!((cluster.failed_logins(0), cluster.failed_logins(1)), (0, 0));
}

/// Disconnect while a connect is still logging in, then Connect again: the second connect must
/// not log in with the password the first one is rotating away (on a real HSM each such login
/// is a failed attempt towards locking the crypto user out). The members' logins are slowed
/// down by the fault module so the first connect is deterministically mid-login when the
/// Disconnect and the second Connect arrive.
#[tokio::test]
async fn disconnect_during_connecting_then_connect_uses_the_rotated_pin() {
    let cluster = softhsm::fault_cluster(2);
    let srv = start(&cluster).await;
    let kms = srv.client();
    let id = create_store(&kms, &cluster, &cluster.pin).await;
    for m in 0..2 {
        cluster.delay_logins(m, 1_500);
    }
    kms.connect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    // The first connect is now waiting in C_Login (1.5 s) with the customer's password.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(state(&kms, &id).await.0, ConnectionStateType::Connecting);
    disconnect(&kms, &id).await;
    assert_eq!(
        connect(&kms, &id).await,
        connected(),
        "the second connect must use the PIN the first one rotated to"
    );
    for m in 0..2 {
        cluster.delay_logins(m, 0);
        assert_eq!(cluster.failed_logins(m), 0, "member {m}");
    }
    let (key, _) = create_key(&kms, &id).await;
    let ct = encrypt(&kms, &key, b"after the race").await;
    assert_eq!(decrypt(&kms, &ct).await, b"after the race");
    // The stored PIN book matches the members: another round trip connects.
    disconnect(&kms, &id).await;
    assert_eq!(connect(&kms, &id).await, connected());
    assert_eq!(decrypt(&kms, &ct).await, b"after the race");
}
