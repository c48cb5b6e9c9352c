//! Several `kms` processes on one PostgreSQL database: what one node does is in force on the
//! others, names stay unique under concurrent creates, background work runs once, and a node
//! killed under load loses nothing it acknowledged. Both nodes share the root of trust
//! (`common::nodes`). Needs the cluster of `tests/pg/cluster.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    AlgorithmSpec, ExpirationModelType, KeyMetadata, KeyState, MultiRegionKeyType, OriginType,
    WrappingKeySpec,
};
use aws_sdk_kms::Client;
use common::nodes::{Cluster, Node};

async fn create_key(kms: &Client) -> String {
    kms.create_key()
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
        .plaintext(Blob::new(b"across nodes".to_vec()))
        .send()
        .await
        .map(|o| o.ciphertext_blob.unwrap())
        .map_err(|e| common::code(&e))
}

/// Polls `f` on a node until it returns `want`; returns how long that took (at most `limit`).
async fn time_until<F, Fut>(limit: Duration, want: &str, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Blob, String>>,
{
    let t0 = Instant::now();
    loop {
        match f().await {
            Err(code) if code == want => return t0.elapsed(),
            other => assert!(
                t0.elapsed() < limit,
                "still {:?} after {limit:?}, wanted {want}",
                other.map(|_| "success")
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_key_created_on_one_node_is_used_on_the_other() {
    let cluster = Cluster::new();
    let (a, b) = (cluster.node(), cluster.node());
    let key = create_key(&a.client).await;
    let ct = encrypt(&a.client, &key).await.unwrap();
    let pt = b.client.decrypt().ciphertext_blob(ct).send().await.unwrap();
    assert_eq!(pt.plaintext.unwrap().as_ref(), b"across nodes");
    // And the other way round, through an alias made on B.
    b.client
        .create_alias()
        .alias_name("alias/shared")
        .target_key_id(&key)
        .send()
        .await
        .unwrap();
    let ct = encrypt(&b.client, "alias/shared").await.unwrap();
    let pt = a.client.decrypt().ciphertext_blob(ct).send().await.unwrap();
    assert_eq!(pt.plaintext.unwrap().as_ref(), b"across nodes");
    let described = a
        .client
        .describe_key()
        .key_id("alias/shared")
        .send()
        .await
        .unwrap();
    assert_eq!(described.key_metadata.unwrap().key_id, key);
}

/// DisableKey, ScheduleKeyDeletion and PutKeyPolicy on A are in force on B (which had the key
/// cached) within one second; EnableKey and CancelKeyDeletion too.
#[tokio::test]
async fn a_change_on_one_node_is_in_force_on_the_other_within_a_second() {
    let cluster = Cluster::new();
    let (a, b) = (cluster.node(), cluster.node());
    let key = create_key(&a.client).await;
    let limit = Duration::from_secs(1);
    // B has the key row (and its compiled policy) cached.
    for _ in 0..3 {
        encrypt(&b.client, &key).await.unwrap();
    }

    a.client.disable_key().key_id(&key).send().await.unwrap();
    let took = time_until(limit, "DisabledException", || encrypt(&b.client, &key)).await;
    println!("DisableKey on A refused on B after {took:?}");
    // Never undone by a stale copy: B keeps refusing.
    for _ in 0..5 {
        assert_eq!(
            encrypt(&b.client, &key).await.unwrap_err(),
            "DisabledException"
        );
    }
    a.client.enable_key().key_id(&key).send().await.unwrap();
    let t0 = Instant::now();
    while encrypt(&b.client, &key).await.is_err() {
        assert!(t0.elapsed() < limit, "EnableKey on A not seen on B");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    a.client
        .schedule_key_deletion()
        .key_id(&key)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    time_until(limit, "KMSInvalidStateException", || {
        encrypt(&b.client, &key)
    })
    .await;
    a.client
        .cancel_key_deletion()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    a.client.enable_key().key_id(&key).send().await.unwrap();
    let t0 = Instant::now();
    while encrypt(&b.client, &key).await.is_err() {
        assert!(t0.elapsed() < limit, "CancelKeyDeletion on A not seen on B");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // A key policy that denies this caller Encrypt (and still lets the account manage it).
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Admin", "Effect": "Allow",
             "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "NoEncrypt", "Effect": "Deny",
             "Principal": {"AWS": kms::config::DEV_PRINCIPAL_ARN},
             "Action": "kms:Encrypt", "Resource": "*"}
        ]
    });
    a.client
        .put_key_policy()
        .key_id(&key)
        .policy(policy.to_string())
        .send()
        .await
        .unwrap();
    time_until(limit, "AccessDeniedException", || encrypt(&b.client, &key)).await;
}

/// Describes `key` on `kms` until `want` holds for its metadata; returns how long that took
/// (at most `limit`).
async fn describe_until(
    kms: &Client,
    key: &str,
    limit: Duration,
    what: &str,
    want: impl Fn(&KeyMetadata) -> bool,
) -> Duration {
    let t0 = Instant::now();
    loop {
        let md = kms
            .describe_key()
            .key_id(key)
            .send()
            .await
            .unwrap()
            .key_metadata
            .unwrap();
        if want(&md) {
            println!("{what}: shown after {:?}", t0.elapsed());
            return t0.elapsed();
        }
        assert!(t0.elapsed() < limit, "{what}: still {md:?} after {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The metadata of a key is cached on B with its material summary (and the rows of its
/// related keys); a rotation, an import, a DeleteImportedKeyMaterial, a ReplicateKey and an
/// UpdatePrimaryRegion made on A show in DescribeKey on B through the key rows' change
/// notifications, as they do for every other operation.
#[tokio::test]
async fn key_metadata_changes_on_one_node_show_in_describe_key_on_the_other() {
    const EAST: &str = "us-east-1";
    const WEST: &str = "us-west-2";
    let mut cluster = Cluster::new();
    cluster.env.push((
        "KMS_SERVER__REGIONS".into(),
        format!(r#"["{EAST}", "{WEST}"]"#),
    ));
    let (a, b) = (cluster.node(), cluster.node());
    let limit = Duration::from_secs(5);
    let describe = |kms: &Client, key: &str| {
        let (kms, key) = (kms.clone(), key.to_string());
        async move {
            kms.describe_key()
                .key_id(key)
                .send()
                .await
                .unwrap()
                .key_metadata
                .unwrap()
        }
    };

    // Rotation: B shows the new current material.
    let key = create_key(&a.client).await;
    let first = describe(&b.client, &key).await;
    for _ in 0..3 {
        assert_eq!(describe(&b.client, &key).await, first);
    }
    a.client
        .rotate_key_on_demand()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    let rotated = describe(&a.client, &key).await;
    let new_id = rotated.current_key_material_id().unwrap().to_string();
    assert_ne!(first.current_key_material_id(), Some(new_id.as_str()));
    describe_until(&b.client, &key, limit, "rotation", |md| {
        md.current_key_material_id() == Some(new_id.as_str())
    })
    .await;

    // Import and deletion of imported material.
    let dir = tempfile::tempdir().unwrap();
    let ext = a
        .client
        .create_key()
        .origin(OriginType::External)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id()
        .to_string();
    for _ in 0..3 {
        let md = describe(&b.client, &ext).await;
        assert_eq!(md.key_state(), Some(&KeyState::PendingImport));
        assert_eq!(md.current_key_material_id(), None);
    }
    let material = common::openssl_import::make_material(dir.path(), "SYMMETRIC_DEFAULT");
    let imported = common::openssl_import::import_with_sdk(
        &a.client,
        dir.path(),
        &ext,
        AlgorithmSpec::RsaesOaepSha1,
        WrappingKeySpec::Rsa2048,
        &material,
    )
    .await
    .unwrap();
    describe_until(&b.client, &ext, limit, "import", |md| {
        md.key_state() == Some(&KeyState::Enabled)
            && md.current_key_material_id() == Some(imported.as_str())
            && md.expiration_model() == Some(&ExpirationModelType::KeyMaterialDoesNotExpire)
    })
    .await;
    a.client
        .delete_imported_key_material()
        .key_id(&ext)
        .send()
        .await
        .unwrap();
    let deleted = describe(&a.client, &ext).await;
    assert_eq!(deleted.key_state(), Some(&KeyState::PendingImport));
    describe_until(
        &b.client,
        &ext,
        limit,
        "deletion of imported material",
        |md| *md == deleted,
    )
    .await;

    // ReplicateKey and UpdatePrimaryRegion: B shows the set as A made it.
    let mrk = a
        .client
        .create_key()
        .multi_region(true)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id()
        .to_string();
    for _ in 0..3 {
        let md = describe(&b.client, &mrk).await;
        let conf = md.multi_region_configuration().unwrap();
        assert!(conf.replica_keys().is_empty());
    }
    a.client
        .replicate_key()
        .key_id(&mrk)
        .replica_region(WEST)
        .send()
        .await
        .unwrap();
    describe_until(&b.client, &mrk, limit, "ReplicateKey", |md| {
        let conf = md.multi_region_configuration().unwrap();
        conf.replica_keys().len() == 1 && conf.replica_keys()[0].region() == Some(WEST)
    })
    .await;
    let west = common::sdk_client_in(
        &a.endpoint,
        kms::config::DEV_ACCESS_KEY_ID,
        kms::config::DEV_SECRET_ACCESS_KEY,
        WEST,
    );
    // The replica is enabled once its material is copied.
    describe_until(&west, &mrk, limit, "replica enabled", |md| {
        md.key_state() == Some(&KeyState::Enabled)
    })
    .await;
    a.client
        .update_primary_region()
        .key_id(&mrk)
        .primary_region(WEST)
        .send()
        .await
        .unwrap();
    describe_until(&b.client, &mrk, limit, "UpdatePrimaryRegion", |md| {
        let conf = md.multi_region_configuration().unwrap();
        conf.multi_region_key_type() == Some(&MultiRegionKeyType::Replica)
            && conf.primary_key().unwrap().region() == Some(WEST)
            && conf.replica_keys().len() == 1
            && conf.replica_keys()[0].region() == Some(EAST)
    })
    .await;
}

/// Both nodes create the same alias at once, many times: exactly one wins each time, the other
/// gets AlreadyExistsException.
#[tokio::test]
async fn concurrent_alias_creates_on_two_nodes_exactly_one_wins() {
    let cluster = Cluster::new();
    let (a, b) = (cluster.node(), cluster.node());
    let key = create_key(&a.client).await;
    for round in 0..20 {
        let name = format!("alias/race-{round}");
        let create = |c: &Client| {
            c.create_alias()
                .alias_name(name.clone())
                .target_key_id(key.clone())
                .send()
        };
        let (ra, rb) = tokio::join!(create(&a.client), create(&b.client));
        let codes: Vec<String> = [
            ra.map_err(|e| common::code(&e)),
            rb.map_err(|e| common::code(&e)),
        ]
        .into_iter()
        .map(|r| match r {
            Ok(_) => "ok".to_string(),
            Err(c) => c,
        })
        .collect();
        let mut sorted = codes.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            ["AlreadyExistsException", "ok"],
            "round {round}: {codes:?}"
        );
    }
    assert_eq!(
        common::pg::psql(&cluster.url, "SELECT count(*) FROM aliases"),
        "20"
    );
}

/// Both nodes create keys at once with room for 5 in the account: exactly 5 are made across
/// the two nodes (the count is the database's, raised conditionally in each insert), and
/// every other create gets AWS's LimitExceededException.
#[tokio::test]
async fn concurrent_creates_on_two_nodes_at_the_key_quota_make_exactly_the_limit() {
    let mut cluster = Cluster::new();
    cluster
        .env
        .push(("KMS_LIMITS__KEYS_PER_ACCOUNT".into(), "5".into()));
    let (a, b) = (cluster.node(), cluster.node());
    let create = |c: &Client| {
        let c = c.clone();
        async move { c.create_key().send().await.map_err(|e| common::code(&e)) }
    };
    let calls: Vec<_> = (0..30)
        .map(|i| create(if i % 2 == 0 { &a.client } else { &b.client }))
        .collect();
    let results = futures_util::future::join_all(calls).await;
    let made = results.iter().filter(|r| r.is_ok()).count();
    for r in &results {
        if let Err(code) = r {
            assert_eq!(code, "LimitExceededException");
        }
    }
    assert_eq!(made, 5, "{results:?}");
    assert_eq!(
        common::pg::psql(&cluster.url, "SELECT count(*) FROM keys"),
        "5"
    );
    assert_eq!(
        common::pg::psql(
            &cluster.url,
            "SELECT string_agg(n::text, ',') FROM key_counts"
        ),
        "5"
    );
}

/// Both nodes create the same named grant at once, many times: CreateGrant with a Name is
/// idempotent (AWS returns the existing grant's id to a retry with the same parameters), so
/// both answers carry one grant id and the key has one grant per name.
#[tokio::test]
async fn concurrent_named_grant_creates_on_two_nodes_make_one_grant() {
    use aws_sdk_kms::types::GrantOperation;
    let cluster = Cluster::new();
    let (a, b) = (cluster.node(), cluster.node());
    let key = create_key(&a.client).await;
    let rounds = 20;
    for round in 0..rounds {
        let name = format!("race-{round}");
        let create = |c: &Client| {
            c.create_grant()
                .key_id(key.clone())
                .name(name.clone())
                .grantee_principal("arn:aws:iam::111122223333:root")
                .operations(GrantOperation::Encrypt)
                .operations(GrantOperation::Decrypt)
                .send()
        };
        let (ra, rb) = tokio::join!(create(&a.client), create(&b.client));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(ra.grant_id, rb.grant_id, "round {round}");
        // Each answer has a grant token of its own.
        assert_ne!(ra.grant_token, rb.grant_token, "round {round}");
    }
    assert_eq!(
        common::pg::psql(&cluster.url, "SELECT count(*) FROM grants"),
        rounds.to_string()
    );
    // Other parameters under the same name make another grant (as AWS does).
    let other = a
        .client
        .create_grant()
        .key_id(key.clone())
        .name("race-0")
        .grantee_principal("arn:aws:iam::111122223333:root")
        .operations(GrantOperation::Encrypt)
        .send()
        .await
        .unwrap();
    let listed = b.client.list_grants().key_id(key).send().await.unwrap();
    let named: Vec<_> = listed
        .grants
        .unwrap()
        .into_iter()
        .filter(|g| g.name.as_deref() == Some("race-0"))
        .collect();
    assert_eq!(named.len(), 2);
    assert!(named.iter().any(|g| g.grant_id == other.grant_id));
}

/// Both nodes create grants on the same keys at once with room for 3 grants per key: each key
/// ends with exactly 3 (the store counts and inserts under a lock on the key, whichever node
/// asks), every other create gets AWS's LimitExceededException, and a retry of a named grant
/// the key already has still answers with that grant's id, even at the quota.
#[tokio::test]
async fn concurrent_grant_creates_on_two_nodes_at_the_grants_per_key_quota_make_exactly_the_limit()
{
    use aws_sdk_kms::types::GrantOperation;
    let mut cluster = Cluster::new();
    cluster
        .env
        .push(("KMS_LIMITS__GRANTS_PER_KEY".into(), "3".into()));
    let (a, b) = (cluster.node(), cluster.node());
    let grant = |c: &Client, key: &str, name: Option<&str>| {
        c.create_grant()
            .key_id(key)
            .set_name(name.map(str::to_string))
            .grantee_principal("arn:aws:iam::111122223333:root")
            .operations(GrantOperation::Encrypt)
            .send()
    };
    // Several keys: each is one race at the limit.
    for round in 0..4 {
        let key = create_key(&a.client).await;
        let keep = grant(&a.client, &key, Some("keep")).await.unwrap().grant_id;
        // Even calls retry the named grant, odd ones ask for a new grant: 2 of those fit.
        let calls: Vec<_> = (0..20)
            .map(|i| {
                let node = if i % 4 < 2 { &a.client } else { &b.client };
                grant(node, &key, (i % 2 == 0).then_some("keep"))
            })
            .collect();
        let results = futures_util::future::join_all(calls).await;
        let mut new = 0;
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Ok(g) if i % 2 == 0 => assert_eq!(g.grant_id, keep, "round {round}"),
                Ok(_) => new += 1,
                Err(e) => {
                    assert!(i % 2 == 1, "a retry of the named grant failed: {e:?}");
                    assert_eq!(common::code(&e), "LimitExceededException");
                    assert_eq!(
                        common::message(&e),
                        "Grant quota for this key is 3 but the current usage is 3."
                    );
                }
            }
        }
        assert_eq!(new, 2, "round {round}");
        assert_eq!(
            common::pg::psql(
                &cluster.url,
                &format!("SELECT count(*) FROM grants WHERE key_id = '{key}'")
            ),
            "3",
            "round {round}"
        );
    }
}

/// Both nodes create external key stores at once with room for 2 in the account: exactly 2
/// are made (the store counts and inserts under a lock on the account and region), every other
/// create gets AWS's LimitExceededException.
#[tokio::test]
async fn concurrent_custom_key_store_creates_on_two_nodes_at_the_quota_make_exactly_the_limit() {
    use aws_sdk_kms::types::{
        CustomKeyStoreType, XksProxyAuthenticationCredentialType, XksProxyConnectivityType,
    };
    use common::xks_test_proxy::{TestProxy, AKID, SECRET};
    let proxy = TestProxy::start().await;
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), &proxy.ca_pem).unwrap();
    let mut cluster = Cluster::new().with_config(&format!(
        "[xks]\nallowed_proxy_networks = ['127.0.0.1', '::1']\nca_file = '{}'\n\
         probes_per_minute = 600\ntimeout_ms = 20000\n",
        ca.path().display()
    ));
    cluster
        .env
        .push(("KMS_LIMITS__CUSTOM_KEY_STORES".into(), "2".into()));
    let (a, b) = (cluster.node(), cluster.node());
    let create = |c: &Client, i: usize| {
        c.create_custom_key_store()
            .custom_key_store_name(format!("external-{i}"))
            .custom_key_store_type(CustomKeyStoreType::ExternalKeyStore)
            .xks_proxy_uri_endpoint(proxy.endpoint())
            .xks_proxy_uri_path(format!("/p{i}/kms/xks/v1"))
            .xks_proxy_connectivity(XksProxyConnectivityType::PublicEndpoint)
            .xks_proxy_authentication_credential(
                XksProxyAuthenticationCredentialType::builder()
                    .access_key_id(AKID)
                    .raw_secret_access_key(SECRET)
                    .build()
                    .unwrap(),
            )
            .send()
    };
    let calls: Vec<_> = (0..8)
        .map(|i| create(if i % 2 == 0 { &a.client } else { &b.client }, i))
        .collect();
    let results = futures_util::future::join_all(calls).await;
    let made = results.iter().filter(|r| r.is_ok()).count();
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(common::code(e), "LimitExceededException");
        assert_eq!(
            common::message(e),
            "The request was rejected because the account already has 2 custom key stores."
        );
    }
    assert_eq!(made, 2);
    assert_eq!(
        common::pg::psql(&cluster.url, "SELECT count(*) FROM custom_key_stores"),
        "2"
    );
}

/// One cluster backs one custom key store, whichever node asks: many CreateCustomKeyStore on
/// one cluster at once across both nodes make one store (the database's unique index decides,
/// not the look-up before it), the rest get CloudHsmClusterInUseException; UpdateCustomKeyStore
/// moving stores onto one cluster at once moves one, and renaming them to one name at once
/// renames one (CustomKeyStoreNameInUseException, not an internal error).
#[tokio::test]
async fn concurrent_stores_on_one_cluster_on_two_nodes_make_exactly_one() {
    let hsm = common::softhsm::cluster(1);
    // Clusters related to `hsm` (the same trust anchor and members, as backups restored
    // into new clusters are): the update race moves stores from one each onto the last.
    let twins: Vec<String> = (0..9).map(|i| format!("cluster-twin{i:07}")).collect();
    let mut config = hsm.toml();
    for twin in &twins {
        config.push_str(
            &hsm.toml()
                .replace(&format!("id = '{}'", hsm.id), &format!("id = '{twin}'")),
        );
    }
    let mut cluster = Cluster::new().with_config(&config);
    cluster
        .env
        .push(("KMS_LIMITS__CUSTOM_KEY_STORES".into(), "50".into()));
    let (a, b) = (cluster.node(), cluster.node());
    let node = |i: usize| {
        if i.is_multiple_of(2) {
            &a.client
        } else {
            &b.client
        }
    };
    let create = |c: &Client, name: String, cluster_id: &str| {
        c.create_custom_key_store()
            .custom_key_store_name(name)
            .cloud_hsm_cluster_id(cluster_id)
            .trust_anchor_certificate(&hsm.trust_anchor_pem)
            .key_store_password(&hsm.pin)
            .send()
    };
    let stores_on = |cluster_id: String| {
        common::pg::psql(
            &cluster.url,
            &format!("SELECT count(*) FROM custom_key_stores WHERE cluster_id = '{cluster_id}'"),
        )
    };

    let calls: Vec<_> = (0..8)
        .map(|i| create(node(i), format!("on-one-cluster-{i}"), &hsm.id))
        .collect();
    let results = futures_util::future::join_all(calls).await;
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(common::code(e), "CloudHsmClusterInUseException");
        assert_eq!(
            common::message(e),
            format!(
                "Cluster {} is already associated with a custom key store",
                hsm.id
            )
        );
    }
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert_eq!(stores_on(hsm.id.clone()), "1");

    // Stores on twins 0..8, then all moved onto twin 8 at once (with a new password: sealing
    // it widens the window between the early look-up and the write).
    let (goal, from) = twins.split_last().unwrap();
    let mut ids = Vec::new();
    for (i, twin) in from.iter().enumerate() {
        let made = create(&a.client, format!("mover-{i}"), twin).await.unwrap();
        ids.push(made.custom_key_store_id.unwrap());
    }
    let calls: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            node(i)
                .update_custom_key_store()
                .custom_key_store_id(id)
                .cloud_hsm_cluster_id(goal)
                .key_store_password(&hsm.pin)
                .send()
        })
        .collect();
    let results = futures_util::future::join_all(calls).await;
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(common::code(e), "CloudHsmClusterInUseException");
    }
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert_eq!(stores_on(goal.clone()), "1");

    // And all renamed to one name at once.
    let calls: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            node(i)
                .update_custom_key_store()
                .custom_key_store_id(id)
                .new_custom_key_store_name("the-one-name")
                .send()
        })
        .collect();
    let results = futures_util::future::join_all(calls).await;
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(common::code(e), "CustomKeyStoreNameInUseException");
        assert_eq!(
            common::message(e),
            "Custom key store name 'the-one-name' is already in use"
        );
    }
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert_eq!(
        common::pg::psql(
            &cluster.url,
            "SELECT count(*) FROM custom_key_stores WHERE name = 'the-one-name'"
        ),
        "1"
    );
}

/// Keys whose deletion date has passed are deleted exactly once with two nodes running
/// maintenance every second: one DeleteKey service event per key across both audit logs.
#[tokio::test]
async fn the_deletion_task_runs_once_with_two_nodes() {
    let cluster = Cluster::new();
    let (a, b) = (cluster.node(), cluster.node());
    let mut keys = Vec::new();
    for _ in 0..6 {
        let key = create_key(&a.client).await;
        a.client
            .schedule_key_deletion()
            .key_id(&key)
            .pending_window_in_days(7)
            .send()
            .await
            .unwrap();
        keys.push(key);
    }
    // The waiting period ends now (the nodes run on the system clock).
    common::pg::psql(
        &cluster.url,
        "UPDATE keys SET deletion_ms = 0 WHERE state = 'PendingDeletion'",
    );
    let t0 = Instant::now();
    while common::pg::psql(&cluster.url, "SELECT count(*) FROM keys") != "0" {
        assert!(t0.elapsed() < Duration::from_secs(15), "keys not deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Two more maintenance periods: a second deletion would show up now.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut deleted: Vec<String> = [&a, &b]
        .iter()
        .flat_map(|n| n.audit())
        .filter(|r| r["eventName"] == "DeleteKey" && r["eventType"] == "AwsServiceEvent")
        .map(|r| {
            r["serviceEventDetails"]["keyId"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    deleted.sort();
    keys.sort();
    assert_eq!(deleted, keys);
    for key in &keys {
        let e = b
            .client
            .describe_key()
            .key_id(key)
            .send()
            .await
            .unwrap_err();
        assert_eq!(common::code(&e), "NotFoundException");
    }
}

/// `kill -9` of A while it creates keys: every CreateKey A acknowledged is there on B, and B
/// keeps serving (and decrypts what A encrypted).
#[tokio::test]
async fn a_node_killed_under_load_loses_nothing_acknowledged() {
    let cluster = Cluster::new();
    let (mut a, b) = (cluster.node(), cluster.node());
    let client = a.client.clone();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = done.clone();
    let load = tokio::spawn(async move {
        let mut acked = Vec::new();
        loop {
            let Ok(k) = client.create_key().send().await else {
                return acked;
            };
            let id = k.key_metadata.unwrap().key_id;
            let Ok(ct) = encrypt(&client, &id).await else {
                return acked;
            };
            acked.push((id, ct));
            counted.fetch_add(1, std::sync::atomic::Ordering::Release);
        }
    });
    // Kill once A has acknowledged a few keys and is in the middle of more (a fixed sleep found
    // none acknowledged once on a machine with load 10).
    let deadline = Instant::now() + Duration::from_secs(60);
    while done.load(std::sync::atomic::Ordering::Acquire) < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let acked = load.await.unwrap();
    assert!(!acked.is_empty(), "no request finished before the kill");
    for (id, ct) in &acked {
        let pt = b
            .client
            .decrypt()
            .key_id(id)
            .ciphertext_blob(ct.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(pt.plaintext.unwrap().as_ref(), b"across nodes");
    }
    let key = create_key(&b.client).await;
    encrypt(&b.client, &key).await.unwrap();
    println!(
        "{} keys acknowledged by A before kill -9, all usable on B",
        acked.len()
    );
}

/// PostgreSQL restarted under load: requests in the gap fail with a retryable
/// DependencyTimeoutException (503), the node recovers without a restart, and every key it
/// acknowledged is there afterwards.
#[tokio::test]
async fn a_node_recovers_from_a_database_restart_under_load() {
    let pg = common::pg::OwnCluster::start();
    let root = tempfile::tempdir().unwrap();
    let mut env = vec![(
        "KMS_ROOT__KEY_FILE".to_string(),
        root.path().join("root.key").display().to_string(),
    )];
    env.extend(common::pg::store_env(&pg.url));
    env.retain(|(k, _)| k != "KMS_TEST_PG_PASSWORD");
    env.push(("KMS_TEST_PG_PASSWORD".into(), pg.password.clone()));
    // Short enough to keep the gap's requests short; long enough for a SCRAM login by a debug
    // build on a busy machine.
    env.push(("KMS_STORE__POOL_WAIT_MS".into(), "3000".into()));
    env.push(("KMS_STORE__CONNECT_TIMEOUT_MS".into(), "3000".into()));
    env.push(("KMS_LOG".into(), "error".into()));
    let dir = tempfile::tempdir().unwrap();
    let (child, endpoint) = common::spawn_kms(dir.path(), env, Stdio::null());
    let node = Node {
        child,
        client: common::sdk_client(
            &endpoint,
            kms::config::DEV_ACCESS_KEY_ID,
            kms::config::DEV_SECRET_ACCESS_KEY,
        ),
        endpoint,
        dir,
    };
    let key = create_key(&node.client).await;

    let (client, load_key) = (node.client.clone(), key.clone());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = stop.clone();
    let load = tokio::spawn(async move {
        let (mut acked, mut errors, mut ok_after) = (Vec::new(), Vec::new(), 0usize);
        while !stopping.load(std::sync::atomic::Ordering::Acquire) {
            match client.create_key().send().await {
                Ok(k) => acked.push(k.key_metadata.unwrap().key_id),
                Err(e) => errors.push(common::code(&e)),
            }
            match encrypt(&client, &load_key).await {
                Ok(_) => ok_after += 1,
                Err(code) => {
                    errors.push(code);
                    ok_after = 0;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (acked, errors, ok_after)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::spawn_blocking({
        let (dir, script) = (pg.dir.clone(), common::pg::OwnCluster::script());
        move || {
            let status = std::process::Command::new("bash")
                .arg(script)
                .args(["restart", dir.to_str().unwrap()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "restart failed");
        }
    })
    .await
    .unwrap();
    // Serving again by itself within a few seconds of the restart.
    let t0 = Instant::now();
    loop {
        if node.client.create_key().send().await.is_ok()
            && encrypt(&node.client, &key).await.is_ok()
        {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "node did not recover"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Release);
    let (acked, errors, ok_after) = load.await.unwrap();
    println!(
        "{} keys acknowledged, {} failed requests in the gap: {:?}",
        acked.len(),
        errors.len(),
        errors.iter().collect::<std::collections::BTreeSet<_>>()
    );
    assert!(ok_after > 0, "the load did not succeed after the restart");
    for code in &errors {
        assert_eq!(code, "DependencyTimeoutException");
    }
    for id in &acked {
        node.client.describe_key().key_id(id).send().await.unwrap();
    }
}

/// The identities of the role-session test: the dev key (an administrator of the account) and
/// dave, whom the role `app` trusts; the role may Encrypt and is denied Decrypt.
const SESSION_IAM: &str = r#"
[[credentials]]
access_key_id = 'AKIAIOSFODNN7EXAMPLE'
secret_access_key = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'
principal = 'arn:aws:iam::111122223333:user/kms-dev'

[[users]]
arn = 'arn:aws:iam::111122223333:user/dave'

[[credentials]]
access_key_id = 'AKIADAVE000000000001'
secret_access_key = 'daveSecretKey0000000000000000000000000001'
principal = 'arn:aws:iam::111122223333:user/dave'

[[roles]]
arn = 'arn:aws:iam::111122223333:role/app'
trust_policy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/dave"},"Action":"sts:AssumeRole"}]}'
policies = ['{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*"},{"Effect":"Deny","Action":"kms:Decrypt","Resource":"*"}]}']
"#;

/// Temporary credentials from AssumeRole on node A work on node B (the session token is sealed
/// under a key every node shares through the database, not remembered by A), the role's policy
/// applies there (its Deny too), and they keep working after A is restarted.
#[tokio::test]
async fn role_sessions_work_on_every_node_and_survive_a_restart() {
    let conf = tempfile::tempdir().unwrap();
    let path = conf.path().join("iam.toml");
    std::fs::write(&path, SESSION_IAM).unwrap();
    let mut cluster = Cluster::new();
    cluster
        .env
        .push(("KMS_CONFIG".into(), path.display().to_string()));
    let (a, b) = (cluster.node(), cluster.node());
    let key = create_key(&a.client).await;

    let session = common::sts::RoleSession::assume(
        &a.endpoint,
        common::sts::client(
            &a.endpoint,
            (
                "AKIADAVE000000000001",
                "daveSecretKey0000000000000000000000000001",
            ),
        )
        .assume_role()
        .role_arn("arn:aws:iam::111122223333:role/app")
        .role_session_name("across"),
    )
    .await;

    // On B: Encrypt allowed by the role's policy, Decrypt denied by it.
    let on_b = session.kms_at(&b.endpoint, None);
    let ct = encrypt(&on_b, &key).await.unwrap();
    let denied = on_b.decrypt().ciphertext_blob(ct.clone()).send().await;
    let denied = denied.expect_err("the role's policy denies Decrypt");
    assert_eq!(common::code(&denied), "AccessDeniedException");
    assert!(
        common::message(&denied).contains(
            "arn:aws:sts::111122223333:assumed-role/app/across is not authorized to perform: \
             kms:Decrypt"
        ),
        "{}",
        common::message(&denied)
    );
    // The ciphertext B made with the session decrypts for the administrator on A.
    let pt = a.client.decrypt().ciphertext_blob(ct).send().await.unwrap();
    assert_eq!(pt.plaintext.unwrap().as_ref(), b"across nodes");

    // A restarted: the same credentials work on the new A and still on B.
    drop(a);
    let a = cluster.node();
    encrypt(&session.kms_at(&a.endpoint, None), &key)
        .await
        .unwrap();
    encrypt(&on_b, &key).await.unwrap();
}
