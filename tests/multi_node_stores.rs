//! Custom key stores on several `kms` processes sharing one PostgreSQL database (issue 16): a
//! store connected on one node is usable on every node within [`LIMIT`], a disconnect is in
//! force everywhere within it, only the connecting node rotates the crypto user's PIN,
//! and a node started later attaches too. Every node reaches the same SoftHSM cluster tokens
//! and the same XKS test proxy. Needs the cluster of `tests/pg/cluster.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use std::time::{Duration, Instant};

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    ConnectionStateType, CustomKeyStoreType, OriginType, XksProxyAuthenticationCredentialType,
    XksProxyConnectivityType,
};
use aws_sdk_kms::Client;
use common::nodes::Cluster;
use common::xks_test_proxy::{TestProxy, AKID, SECRET};

/// How soon a store change on one node must be in force on the others. The change arrives by
/// NOTIFY within milliseconds on an idle machine (the tests print the time taken); the limit
/// leaves room for a loaded CI machine and stays under the 5 s backstop reconcile, so a missing
/// notification still fails most runs.
const LIMIT: Duration = Duration::from_secs(3);

async fn state(kms: &Client, id: &str) -> ConnectionStateType {
    let d = kms
        .describe_custom_key_stores()
        .custom_key_store_id(id)
        .send()
        .await
        .unwrap();
    d.custom_key_stores()[0].connection_state().unwrap().clone()
}

/// Connects a store on `kms` and waits until it is CONNECTED there.
async fn connect(kms: &Client, id: &str) {
    kms.connect_custom_key_store()
        .custom_key_store_id(id)
        .send()
        .await
        .unwrap();
    until_connected(
        kms,
        id,
        Duration::from_secs(20),
        "after ConnectCustomKeyStore",
        || {},
    )
    .await;
}

/// Polls the store's state on `kms` until CONNECTED (CONNECTING meanwhile, anything else
/// fails), calling `each` before every poll; fails after `limit`, naming `what` it waited after.
/// Returns how long it took.
async fn until_connected(
    kms: &Client,
    id: &str,
    limit: Duration,
    what: &str,
    mut each: impl FnMut(),
) -> Duration {
    let t0 = Instant::now();
    loop {
        each();
        match state(kms, id).await {
            ConnectionStateType::Connected => return t0.elapsed(),
            ConnectionStateType::Connecting => {}
            other => panic!("store {id} is {other:?}"),
        }
        assert!(
            t0.elapsed() < limit,
            "still CONNECTING {:?} {what}",
            t0.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Creates a key in the CloudHSM-style store `id` on `kms`; returns its id.
async fn store_key(kms: &Client, id: &str) -> String {
    kms.create_key()
        .origin(OriginType::AwsCloudhsm)
        .custom_key_store_id(id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id
}

async fn encrypt(kms: &Client, key: &str) -> Result<Blob, String> {
    kms.encrypt()
        .key_id(key)
        .plaintext(Blob::new(b"from every node".to_vec()))
        .send()
        .await
        .map(|o| o.ciphertext_blob.unwrap())
        .map_err(|e| common::code(&e))
}

async fn decrypt(kms: &Client, ct: Blob) -> Vec<u8> {
    kms.decrypt()
        .ciphertext_blob(ct)
        .send()
        .await
        .unwrap()
        .plaintext
        .unwrap()
        .into_inner()
}

/// Polls Encrypt on a node until it succeeds (`want = None`) or fails with `want`; returns
/// how long that took, failing the test after [`LIMIT`].
async fn time_until(kms: &Client, key: &str, want: Option<&str>) -> Duration {
    let t0 = Instant::now();
    loop {
        let got = encrypt(kms, key).await;
        let done = match (&got, want) {
            (Ok(_), None) => true,
            (Err(code), Some(w)) => code == w,
            _ => false,
        };
        if done {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < LIMIT,
            "still {:?} after {LIMIT:?}, wanted {want:?}",
            got.map(|_| "success")
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The sealed PIN book of a store and its row version, read from the database.
fn stored_password(url: &str, id: &str) -> String {
    common::pg::psql(
        url,
        &format!(
            "SELECT encode(password_encrypted, 'hex') || ' v' || row_version \
             FROM custom_key_stores WHERE id = '{id}'"
        ),
    )
}

#[tokio::test]
async fn a_cloudhsm_store_connected_on_one_node_works_on_every_node() {
    // Members reached through the fault module, which keeps the crypto user's PIN where
    // every node sees it (SoftHSM alone would keep, per process, the PIN it first saw).
    let hsm = common::softhsm::fault_cluster(2);
    hsm.share_pins();
    let nodes = Cluster::new().with_config(&hsm.toml());
    let (a, b) = (nodes.node(), nodes.node());

    let id = hsm.create_store(&a.client, "shared", &hsm.pin).await;
    // B sees the store, DISCONNECTED, and refuses to create keys in it.
    assert_eq!(
        state(&b.client, &id).await,
        ConnectionStateType::Disconnected
    );

    connect(&a.client, &id).await;
    let connected_at = Instant::now();
    let key = store_key(&a.client, &id).await;
    let created = connected_at.elapsed();
    // Within LIMIT of its creation on A, the key works on B (time_until asserts it).
    let took = time_until(&b.client, &key, None).await;
    println!(
        "ConnectCustomKeyStore on A: a key created on A ({created:?} after A reported \
         CONNECTED) encrypts on B {took:?} later"
    );
    // What the connect stored; B's attachment writes nothing and changes no PIN.
    let sealed = stored_password(&nodes.url, &id);
    let pins = (hsm.shared_pin_hash(0), hsm.shared_pin_hash(1));
    assert!(pins.0.is_some() && pins.1.is_some(), "A rotated both PINs");

    // Both ways, and CreateKey in the store on B.
    let ct = encrypt(&b.client, &key).await.unwrap();
    assert_eq!(decrypt(&a.client, ct).await, b"from every node");
    let ct = encrypt(&a.client, &key).await.unwrap();
    assert_eq!(decrypt(&b.client, ct).await, b"from every node");
    let on_b = store_key(&b.client, &id).await;
    let ct = encrypt(&b.client, &on_b).await.unwrap();
    assert_eq!(decrypt(&a.client, ct).await, b"from every node");
    assert_eq!(stored_password(&nodes.url, &id), sealed);
    assert_eq!((hsm.shared_pin_hash(0), hsm.shared_pin_hash(1)), pins);
    // No failed login on any member: B never tried an outdated PIN.
    assert_eq!((hsm.failed_logins(0), hsm.failed_logins(1)), (0, 0));

    // Disconnect on A: refused on B within LIMIT, and it stays refused.
    a.client
        .disconnect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    let took = time_until(&b.client, &key, Some("KMSInvalidStateException")).await;
    println!("DisconnectCustomKeyStore on A: refused on B after {took:?}");
    for _ in 0..5 {
        assert_eq!(
            encrypt(&b.client, &key).await.unwrap_err(),
            "KMSInvalidStateException"
        );
    }
    let e = b
        .client
        .create_key()
        .origin(OriginType::AwsCloudhsm)
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(common::code(&e), "CustomKeyStoreInvalidStateException");

    // Connect again on A (a new PIN): B works again within LIMIT.
    connect(&a.client, &id).await;
    let reconnected_at = Instant::now();
    time_until(&b.client, &key, None).await;
    let took = reconnected_at.elapsed();
    println!("ConnectCustomKeyStore again on A: usable on B after {took:?}");
    assert!(took < LIMIT, "{took:?}");
    let rotated = stored_password(&nodes.url, &id);
    assert_ne!(rotated, sealed, "the second connect rotated the PIN");
    let pins = (hsm.shared_pin_hash(0), hsm.shared_pin_hash(1));

    // A third node started now attaches at start, with the stored PIN book, writing nothing.
    let c = nodes.node();
    let ct = encrypt(&c.client, &on_b).await.unwrap();
    assert_eq!(decrypt(&b.client, ct).await, b"from every node");
    let ct = encrypt(&a.client, &key).await.unwrap();
    assert_eq!(decrypt(&c.client, ct).await, b"from every node");
    // A node without the cluster in its configuration cannot attach: its requests for the
    // store's keys are refused, and it never marks the store FAILED for everyone.
    let d = nodes.node_with_config(Some(""));
    assert_eq!(
        encrypt(&d.client, &key).await.unwrap_err(),
        "KMSInvalidStateException"
    );

    // Past one backstop reconcile period of every node: still nothing written.
    tokio::time::sleep(Duration::from_millis(5500)).await;
    encrypt(&b.client, &key).await.unwrap();
    encrypt(&c.client, &key).await.unwrap();
    assert_eq!(
        encrypt(&d.client, &key).await.unwrap_err(),
        "KMSInvalidStateException"
    );
    assert_eq!(state(&d.client, &id).await, ConnectionStateType::Connected);
    assert_eq!(stored_password(&nodes.url, &id), rotated);
    assert_eq!((hsm.shared_pin_hash(0), hsm.shared_pin_hash(1)), pins);
    assert_eq!((hsm.failed_logins(0), hsm.failed_logins(1)), (0, 0));
    assert_eq!(state(&c.client, &id).await, ConnectionStateType::Connected);
}

#[tokio::test]
async fn an_xks_store_connected_on_one_node_works_on_every_node() {
    let proxy = TestProxy::start().await;
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), &proxy.ca_pem).unwrap();
    let nodes = Cluster::new().with_config(&format!(
        "[xks]\nallowed_proxy_networks = ['127.0.0.1', '::1']\nca_file = '{}'\n",
        ca.path().display()
    ));
    let (a, b) = (nodes.node(), nodes.node());
    let id = a
        .client
        .create_custom_key_store()
        .custom_key_store_name("external")
        .custom_key_store_type(CustomKeyStoreType::ExternalKeyStore)
        .xks_proxy_uri_endpoint(proxy.endpoint())
        .xks_proxy_uri_path("/kms/xks/v1")
        .xks_proxy_connectivity(XksProxyConnectivityType::PublicEndpoint)
        .xks_proxy_authentication_credential(
            XksProxyAuthenticationCredentialType::builder()
                .access_key_id(AKID)
                .raw_secret_access_key(SECRET)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .custom_key_store_id
        .unwrap();
    connect(&a.client, &id).await;
    let connected_at = Instant::now();
    let key = a
        .client
        .create_key()
        .origin(OriginType::ExternalKeyStore)
        .custom_key_store_id(&id)
        .xks_key_id("k1")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let created = connected_at.elapsed();
    let took = time_until(&b.client, &key, None).await;
    println!(
        "ConnectCustomKeyStore (XKS) on A: a key created on A ({created:?} after A reported \
         CONNECTED) encrypts on B {took:?} later"
    );
    let ct = encrypt(&b.client, &key).await.unwrap();
    assert_eq!(decrypt(&a.client, ct).await, b"from every node");
    let on_b = b
        .client
        .create_key()
        .origin(OriginType::ExternalKeyStore)
        .custom_key_store_id(&id)
        .xks_key_id("k2")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let ct = encrypt(&b.client, &on_b).await.unwrap();
    assert_eq!(decrypt(&a.client, ct).await, b"from every node");

    // Health checks: one node checks (both have the store attached and run a maintenance pass
    // every second), so about one check a second, not one per node.
    let health = || {
        proxy
            .state
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(path, _)| path.ends_with("/health"))
            .count()
    };
    let before = health();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let checks = health() - before;
    println!("{checks} proxy health checks in 3 s from two nodes with 1 s maintenance passes");
    // At most one node checks (about 3 in 3 s; two checking nodes would make about 6). A loaded
    // machine only delays passes, so the lower bound is "a check comes", within a deadline.
    assert!(checks <= 4, "{checks} health checks in 3 s");
    let deadline = Instant::now() + Duration::from_secs(30);
    while health() == before {
        assert!(Instant::now() < deadline, "no health check in 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    a.client
        .disconnect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    let took = time_until(&b.client, &key, Some("KMSInvalidStateException")).await;
    println!("DisconnectCustomKeyStore (XKS) on A: refused on B after {took:?}");
    for _ in 0..5 {
        assert_eq!(
            encrypt(&b.client, &key).await.unwrap_err(),
            "KMSInvalidStateException"
        );
    }

    // Connect again on A: B works again within LIMIT of A reporting CONNECTED.
    connect(&a.client, &id).await;
    let took = time_until(&b.client, &key, None).await;
    println!("ConnectCustomKeyStore (XKS) again on A: usable on B after {took:?}");
}

/// A member that was down during the connect keeps its older PIN: a node that attached logs in
/// to it with that PIN and never rotates it; the connecting node rotates it when it returns,
/// stores the book, and the other node picks the new book up.
#[tokio::test]
async fn a_member_that_missed_the_rotation_is_rotated_by_the_connecting_node_only() {
    let hsm = common::softhsm::fault_cluster(2);
    hsm.share_pins();
    let nodes = Cluster::new().with_config(&hsm.toml());
    let (a, b) = (nodes.node(), nodes.node());
    let id = hsm
        .create_store(&a.client, "one-member-down", &hsm.pin)
        .await;
    hsm.remove_member(1);
    connect(&a.client, &id).await;
    assert!(
        hsm.shared_pin_hash(0).is_some(),
        "A rotated the member it reached"
    );
    assert_eq!(
        hsm.shared_pin_hash(1),
        None,
        "the removed member kept its PIN"
    );
    let book = stored_password(&nodes.url, &id);
    hsm.restore_member(1);

    // B creates a key (both members needed): it logs in to the returned member with the PIN
    // it has, and rotates nothing.
    let t0 = Instant::now();
    let key = loop {
        match b
            .client
            .create_key()
            .origin(OriginType::AwsCloudhsm)
            .custom_key_store_id(&id)
            .send()
            .await
        {
            Ok(k) => break k.key_metadata.unwrap().key_id,
            Err(e) => assert!(t0.elapsed() < LIMIT, "CreateKey on B: {}", common::code(&e)),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for _ in 0..4 {
        encrypt(&b.client, &key).await.unwrap();
    }
    assert_eq!(hsm.shared_pin_hash(1), None, "B rotated a PIN");
    assert_eq!(stored_password(&nodes.url, &id), book);

    // A creates a key: it reaches the returned member and rotates it to the current PIN.
    a.client
        .create_key()
        .origin(OriginType::AwsCloudhsm)
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(hsm.shared_pin_hash(1), hsm.shared_pin_hash(0));
    let t0 = Instant::now();
    while stored_password(&nodes.url, &id) == book {
        assert!(t0.elapsed() < LIMIT, "A did not store the new PIN book");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // B keeps serving, on the new book, and never tried an outdated PIN.
    for _ in 0..4 {
        let ct = encrypt(&b.client, &key).await.unwrap();
        assert_eq!(decrypt(&a.client, ct).await, b"from every node");
    }
    assert_eq!((hsm.failed_logins(0), hsm.failed_logins(1)), (0, 0));
}

/// The node running a connect is killed (SIGKILL) while it logs in to the members, leaving the
/// store CONNECTING: its claim on the connect ended with its database session, so the other
/// node takes the connect over on its next reconcile and brings the store to CONNECTED (the
/// dead node had rotated nothing, so the stored password still logs in), with no failed login
/// on any member; the store then serves on the survivor.
#[tokio::test]
async fn a_store_left_connecting_by_a_killed_node_is_connected_by_another() {
    let hsm = common::softhsm::fault_cluster(2);
    hsm.share_pins();
    let nodes = Cluster::new().with_config(&hsm.toml());
    let (mut a, b) = (nodes.node(), nodes.node());
    let id = hsm.create_store(&a.client, "orphaned", &hsm.pin).await;
    // A's logins take 30 s: A is still logging in when it is killed.
    hsm.delay_logins(0, 30_000);
    a.client
        .connect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(state(&b.client, &id).await, ConnectionStateType::Connecting);
    // Until A dies, B leaves A's connect alone (A holds the claim).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(state(&b.client, &id).await, ConnectionStateType::Connecting);
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    hsm.delay_logins(0, 0);
    let killed_at = Instant::now();
    // B's backstop reconcile (every 5 s) finds the store unclaimed and connects it.
    let what = "after the connecting node died";
    until_connected(&b.client, &id, Duration::from_secs(30), what, || {}).await;
    println!(
        "store left CONNECTING by a killed node: CONNECTED by the other {:?} after the kill",
        killed_at.elapsed()
    );
    // B ran the connect: it rotated both PINs and serves the store's keys.
    assert!(hsm.shared_pin_hash(0).is_some() && hsm.shared_pin_hash(1).is_some());
    let key = store_key(&b.client, &id).await;
    let ct = encrypt(&b.client, &key).await.unwrap();
    assert_eq!(decrypt(&b.client, ct).await, b"from every node");
    assert_eq!((hsm.failed_logins(0), hsm.failed_logins(1)), (0, 0));
}

/// A node that loses its connect claim while it logs in (its database session ended: here the
/// test terminates it, as a database restart or a dropped connection would) rotates no PIN:
/// the other node takes the connect over (its reconcile is told at once) and logs in with the
/// stored password. Every login on member 0 is slow, so A finishes its logins while B's
/// takeover is still logging in: had A rotated then, B's login would be refused (a failed
/// login on the member, the store not CONNECTED by B's takeover).
#[tokio::test]
async fn a_node_that_lost_its_connect_claim_rotates_no_pin() {
    let hsm = common::softhsm::fault_cluster(2);
    hsm.share_pins();
    let nodes = Cluster::new().with_config(&hsm.toml());
    let (a, b) = (nodes.node(), nodes.node());
    let id = hsm.create_store(&a.client, "claim-lost", &hsm.pin).await;
    let book = stored_password(&nodes.url, &id);
    hsm.delay_logins(0, 2000);
    a.client
        .connect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    // A's claim: the session advisory lock of the connect claims (STORE_CONNECT_LOCK_CLASS).
    let holder = "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
                  AND classid = 1802334980 AND objsubid = 2 \
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";
    let t0 = Instant::now();
    let pid = loop {
        let pid = common::pg::psql(&nodes.url, holder);
        if !pid.is_empty() {
            break pid;
        }
        assert!(t0.elapsed() < LIMIT, "A never held the connect claim");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    common::pg::psql(
        &nodes.url,
        &format!("SELECT pg_terminate_backend({pid}); SELECT pg_notify('kms_changes', 's:{id}')"),
    );
    // Until the store is CONNECTED: no member ever refuses a login (the counter would be reset
    // by a later good login, so it is watched throughout).
    let no_refused_login = || {
        assert_eq!(
            (hsm.failed_logins(0), hsm.failed_logins(1)),
            (0, 0),
            "a login with the stored PIN was refused: a node rotated without its claim"
        )
    };
    let what = "after A lost its claim";
    let took = until_connected(
        &b.client,
        &id,
        Duration::from_secs(15),
        what,
        no_refused_login,
    )
    .await;
    hsm.delay_logins(0, 0);
    println!("claim of A ended during its logins: CONNECTED by B's takeover {took:?} later");
    // One rotation, B's: the stored book logs in on both nodes and the PINs stay put.
    let rotated = stored_password(&nodes.url, &id);
    assert_ne!(rotated, book);
    let pins = (hsm.shared_pin_hash(0), hsm.shared_pin_hash(1));
    assert!(pins.0.is_some() && pins.1.is_some(), "B rotated both PINs");
    let key = store_key(&b.client, &id).await;
    time_until(&a.client, &key, None).await;
    let ct = encrypt(&a.client, &key).await.unwrap();
    assert_eq!(decrypt(&b.client, ct).await, b"from every node");
    assert_eq!((hsm.shared_pin_hash(0), hsm.shared_pin_hash(1)), pins);
    assert_eq!(stored_password(&nodes.url, &id), rotated);
    assert_eq!((hsm.failed_logins(0), hsm.failed_logins(1)), (0, 0));
}
