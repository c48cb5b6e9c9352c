//! One store test suite that both metadata stores pass: SQLite (a file) and PostgreSQL (a
//! fresh database on the cluster of `tests/pg/cluster.sh`). It drives the `MetadataStore`
//! trait directly: durability of what was written, optimistic concurrency, uniqueness, ordering
//! and pagination, cascades, leases, and the schema version checks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use kms::config::{PgTls, PostgresConfig, StoreConfig};
use kms::model::{
    AliasRecord, ConnectionState, CustomKeyStoreRecord, CustomKeyStoreType, GrantConstraints,
    GrantRecord, KeyId, KeyRecord, KeySpec, KeyState, KeyUsage, MaterialRecord, Origin,
    RotationType, Tag, XksProxySettings,
};
use kms::model::{ExpirationModel, ImportInfo, ImportState};
use kms::store::{LeaseName, MetadataStore, MigrateOnOpen, PgStore, SqliteStore, StoreError};

const A: &str = "111122223333";
const R: &str = "us-east-1";
/// A key quota no test reaches (AWS's default).
const Q: usize = 100_000;

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).unwrap()
}

fn key(id: &KeyId, account: &str) -> KeyRecord {
    KeyRecord {
        key_id: id.clone(),
        account: account.into(),
        region: R.into(),
        arn: format!("arn:aws:kms:{R}:{account}:key/{}", id.as_str()),
        description: "d".into(),
        key_spec: KeySpec::SymmetricDefault,
        key_usage: KeyUsage::EncryptDecrypt,
        origin: Origin::AwsKms,
        state: KeyState::Enabled,
        creation_date: at(1_700_000_000_123),
        deletion_date: None,
        pending_window_days: None,
        policy: "{\"Version\":\"2012-10-17\"}".into(),
        rotation_enabled: false,
        rotation_period_days: None,
        next_rotation_date: None,
        current_material: 1,
        row_version: 1,
        custom_key_store_id: None,
        xks_key_id: None,
        public_key: None,
        mrk_primary_region: None,
        unavailable: false,
    }
}

fn material(id: &KeyId, version: u32) -> MaterialRecord {
    MaterialRecord {
        key_id: id.clone(),
        version,
        wrapped: vec![version as u8; 60],
        created: at(1_700_000_000_000 + i64::from(version)),
        rotation_type: (version > 1).then_some(RotationType::OnDemand),
        material_id: Some(format!("{version:064x}")),
        import: None,
    }
}

fn alias(name: &str, target: &KeyId) -> AliasRecord {
    AliasRecord {
        account: A.into(),
        region: R.into(),
        name: name.into(),
        target_key_id: target.clone(),
        creation_date: at(1_700_000_000_000),
        last_updated_date: at(1_700_000_000_000),
    }
}

fn grant(id: &str, key: &KeyId, retiring: Option<&str>, created: i64) -> GrantRecord {
    GrantRecord {
        grant_id: id.into(),
        key_id: key.clone(),
        issuing_account: A.into(),
        name: Some(format!("name-{id}")),
        grantee_principal: "arn:aws:iam::111122223333:user/carol".into(),
        retiring_principal: retiring.map(str::to_string),
        operations: vec!["Encrypt".into(), "Decrypt".into()],
        constraints: GrantConstraints {
            encryption_context_equals: None,
            encryption_context_subset: Some(BTreeMap::from([("a".into(), "1".into())])),
        },
        creation_date: at(created),
    }
}

fn custom_store(id: &str, name: &str) -> CustomKeyStoreRecord {
    CustomKeyStoreRecord {
        id: id.into(),
        account: A.into(),
        region: R.into(),
        name: name.into(),
        store_type: CustomKeyStoreType::ExternalKeyStore,
        cluster_id: None,
        trust_anchor: None,
        password_encrypted: vec![1, 2, 3],
        connection_state: ConnectionState::Disconnected,
        connection_error: None,
        creation_date: at(1_700_000_000_000),
        row_version: 1,
        xks: Some(XksProxySettings {
            uri_endpoint: "https://proxy.example".into(),
            uri_path: "/kms/xks/v1".into(),
            connectivity: "PUBLIC_ENDPOINT".into(),
            vpc_endpoint_service_name: None,
            access_key_id: "AKIAXKSPROXY00000001".into(),
            credential_date: Some(at(1_700_000_000_500)),
        }),
    }
}

/// A named grant's retry, for the store's `Name` look-up: the same name and grantee.
/// A CloudHSM-style store of `account` on `cluster` (named as its id).
fn cluster_store(id: &str, account: &str, cluster: &str) -> CustomKeyStoreRecord {
    CustomKeyStoreRecord {
        account: account.into(),
        store_type: CustomKeyStoreType::AwsCloudhsm,
        cluster_id: Some(cluster.into()),
        trust_anchor: Some("-----BEGIN CERTIFICATE-----".into()),
        xks: None,
        ..custom_store(id, id)
    }
}

/// The cluster the store refused, or a panic naming what it answered instead.
fn cluster_in_use<T: std::fmt::Debug>(r: Result<T, StoreError>) -> String {
    match r {
        Err(StoreError::ClusterInUse { cluster_id }) => cluster_id,
        other => panic!("expected ClusterInUse, got {other:?}"),
    }
}

fn same_grant(a: &GrantRecord, b: &GrantRecord) -> bool {
    a.name.is_some() && a.name == b.name && a.grantee_principal == b.grantee_principal
}

/// The suite: every assertion holds on both stores.
async fn suite(s: &dyn MetadataStore) {
    // Keys: insert with material and tags, read back exactly.
    let mut ids: Vec<KeyId> = (0..5).map(|_| KeyId::generate()).collect();
    ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    for id in &ids {
        s.insert_key(
            &key(id, A),
            &material(id, 1),
            &[Tag {
                key: "team".into(),
                value: "blue".into(),
            }],
            Q,
        )
        .await
        .unwrap();
    }
    let k0 = s.get_key(&ids[0]).await.unwrap().unwrap();
    assert_eq!(k0, key(&ids[0], A));
    // The key quota's count: per account and region.
    s.ping().await.unwrap();
    assert_eq!(s.count_keys(A, R).await.unwrap(), 5);
    assert_eq!(s.count_keys(A, "eu-west-1").await.unwrap(), 0);
    assert_eq!(s.count_keys("444455556666", R).await.unwrap(), 0);
    assert!(s.get_key(&KeyId::generate()).await.unwrap().is_none());
    // A second insert of the same id is refused, and counts nothing.
    assert!(matches!(
        s.insert_key(&key(&ids[0], A), &material(&ids[0], 1), &[], Q)
            .await,
        Err(StoreError::AlreadyExists)
    ));
    assert_eq!(s.count_keys(A, R).await.unwrap(), 5);
    // At the limit the insert is refused with the usage, and writes nothing.
    let sixth = KeyId::generate();
    match s
        .insert_key(&key(&sixth, A), &material(&sixth, 1), &[], 5)
        .await
    {
        Err(StoreError::KeyQuota { limit: 5, usage: 5 }) => {}
        other => panic!("expected KeyQuota 5/5, got {:?}", other),
    }
    assert!(s.get_key(&sixth).await.unwrap().is_none());
    assert!(s.list_materials(&sixth).await.unwrap().is_empty());
    assert_eq!(s.count_keys(A, R).await.unwrap(), 5);
    // Another account's key is not listed with these, and has its own count and limit.
    let other = KeyId::generate();
    s.insert_key(&key(&other, "444455556666"), &material(&other, 1), &[], 1)
        .await
        .unwrap();
    assert_eq!(s.count_keys("444455556666", R).await.unwrap(), 1);
    let other2 = KeyId::generate();
    assert!(matches!(
        s.insert_key(&key(&other2, "444455556666"), &material(&other2, 1), &[], 1)
            .await,
        Err(StoreError::KeyQuota { limit: 1, usage: 1 })
    ));
    assert_eq!(s.count_keys(A, R).await.unwrap(), 5);

    // Listing: ordered by id, paginated with `after`.
    let page1 = s.list_keys(A, R, None, 3).await.unwrap();
    let page2 = s
        .list_keys(A, R, Some(page1[2].key_id.as_str()), 3)
        .await
        .unwrap();
    let listed: Vec<KeyId> = page1
        .iter()
        .chain(&page2)
        .map(|k| k.key_id.clone())
        .collect();
    assert_eq!(listed, ids);

    // Optimistic concurrency: an update names the version it read.
    let mut k = k0.clone();
    k.state = KeyState::Disabled;
    k.description = "changed".into();
    let k = s.update_key(&k).await.unwrap();
    assert_eq!(k.row_version, 2);
    assert_eq!(s.get_key(&ids[0]).await.unwrap().unwrap(), k);
    let mut stale = k0.clone();
    stale.state = KeyState::Enabled;
    assert!(matches!(
        s.update_key(&stale).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        s.get_key(&ids[0]).await.unwrap().unwrap().state,
        KeyState::Disabled
    );

    // Rotation: the row and a new material version in one transaction.
    let mut r = k.clone();
    r.current_material = 2;
    let r = s.rotate_key(&r, &material(&ids[0], 2)).await.unwrap();
    assert_eq!(r.row_version, 3);
    let versions: Vec<u32> = s
        .list_materials(&ids[0])
        .await
        .unwrap()
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(versions, [1, 2]);
    assert_eq!(
        s.get_material(&ids[0], 2).await.unwrap().unwrap(),
        material(&ids[0], 2)
    );
    assert!(s.get_material(&ids[0], 3).await.unwrap().is_none());
    // A stale rotation adds no material.
    let mut stale = k.clone();
    stale.current_material = 3;
    assert!(matches!(
        s.rotate_key(&stale, &material(&ids[0], 3)).await,
        Err(StoreError::Conflict)
    ));
    assert!(s.get_material(&ids[0], 3).await.unwrap().is_none());

    // Imported material: the row (with its public key) and a material upserted together;
    // a material removed; materials due for expiry.
    let mut imp = s.get_key(&ids[0]).await.unwrap().unwrap();
    imp.public_key = Some(vec![9; 20]);
    let mut m3 = material(&ids[0], 3);
    m3.import = Some(ImportInfo {
        state: ImportState::Imported,
        expiration_model: ExpirationModel::KeyMaterialExpires,
        valid_to: Some(at(5_000)),
        description: Some("third".into()),
    });
    let imp = s.save_material(&imp, &m3).await.unwrap();
    assert_eq!(imp.row_version, 4);
    assert_eq!(s.get_key(&ids[0]).await.unwrap().unwrap(), imp);
    assert_eq!(s.get_material(&ids[0], 3).await.unwrap().unwrap(), m3);
    assert_eq!(s.keys_with_expired_material(at(4_999)).await.unwrap(), []);
    assert_eq!(
        s.keys_with_expired_material(at(5_000)).await.unwrap(),
        [ids[0].clone()]
    );
    // Replacing it: deleted material, no longer due.
    let mut gone = m3.clone();
    gone.wrapped = Vec::new();
    gone.import.as_mut().unwrap().state = ImportState::PendingImport;
    let imp = s.save_material(&imp, &gone).await.unwrap();
    assert_eq!(s.get_material(&ids[0], 3).await.unwrap().unwrap(), gone);
    assert_eq!(s.keys_with_expired_material(at(9_000)).await.unwrap(), []);
    // A stale writer changes nothing.
    assert!(matches!(
        s.save_material(&k, &m3).await,
        Err(StoreError::Conflict)
    ));
    let imp = s.remove_material(&imp, 3).await.unwrap();
    assert!(s.get_material(&ids[0], 3).await.unwrap().is_none());
    assert_eq!(imp.row_version, 6);
    assert_eq!(s.get_key(&ids[0]).await.unwrap().unwrap(), imp);

    // Due deletions and rotations.
    let mut d = s.get_key(&ids[1]).await.unwrap().unwrap();
    d.state = KeyState::PendingDeletion;
    d.deletion_date = Some(at(2_000));
    d.pending_window_days = Some(7);
    let d = s.update_key(&d).await.unwrap();
    let mut rot = s.get_key(&ids[2]).await.unwrap().unwrap();
    rot.rotation_enabled = true;
    rot.rotation_period_days = Some(90);
    rot.next_rotation_date = Some(at(3_000));
    s.update_key(&rot).await.unwrap();
    assert!(s.keys_due_for_deletion(at(1_999)).await.unwrap().is_empty());
    assert_eq!(
        s.keys_due_for_deletion(at(2_000)).await.unwrap(),
        [ids[1].clone()]
    );
    assert!(s.keys_due_for_rotation(at(2_999)).await.unwrap().is_empty());
    assert_eq!(
        s.keys_due_for_rotation(at(5_000)).await.unwrap(),
        [ids[2].clone()]
    );

    // Aliases: unique per account and region, ordered by name, per key, counted.
    s.create_alias(&alias("alias/b", &ids[1]), Q).await.unwrap();
    s.create_alias(&alias("alias/a", &ids[1]), Q).await.unwrap();
    s.create_alias(&alias("alias/c", &ids[3]), Q).await.unwrap();
    s.create_alias(&alias("alias/Z", &ids[3]), 2).await.unwrap();
    assert!(matches!(
        s.create_alias(&alias("alias/a", &ids[3]), Q).await,
        Err(StoreError::AlreadyExists)
    ));
    // The aliases-per-key quota: a key with `limit` aliases takes no more, by create or move.
    assert!(matches!(
        s.create_alias(&alias("alias/full", &ids[3]), 2).await,
        Err(StoreError::AliasQuota { limit: 2, usage: 2 })
    ));
    assert!(s.get_alias(A, R, "alias/full").await.unwrap().is_none());
    assert!(matches!(
        s.update_alias(&alias("alias/b", &ids[3]), 2).await,
        Err(StoreError::AliasQuota { limit: 2, usage: 2 })
    ));
    assert_eq!(
        s.get_alias(A, R, "alias/b")
            .await
            .unwrap()
            .unwrap()
            .target_key_id,
        ids[1]
    );
    // An update that keeps the alias on its key needs no room.
    s.update_alias(&alias("alias/c", &ids[3]), 2).await.unwrap();
    let names = |v: Vec<AliasRecord>| v.into_iter().map(|a| a.name).collect::<Vec<_>>();
    // Byte order (uppercase first), whatever the database's locale.
    assert_eq!(
        names(s.list_aliases(A, R, None, None, 10).await.unwrap()),
        ["alias/Z", "alias/a", "alias/b", "alias/c"]
    );
    assert_eq!(
        names(
            s.list_aliases(A, R, None, Some("alias/a"), 2)
                .await
                .unwrap()
        ),
        ["alias/b", "alias/c"]
    );
    assert_eq!(
        names(s.list_aliases(A, R, Some(&ids[1]), None, 10).await.unwrap()),
        ["alias/a", "alias/b"]
    );
    assert_eq!(s.count_aliases(&ids[1]).await.unwrap(), 2);
    let mut moved = alias("alias/a", &ids[4]);
    moved.last_updated_date = at(1_700_000_009_000);
    s.update_alias(&moved, Q).await.unwrap();
    let got = s.get_alias(A, R, "alias/a").await.unwrap().unwrap();
    assert_eq!(got.target_key_id, ids[4]);
    assert_eq!(got.last_updated_date, at(1_700_000_009_000));
    assert_eq!(got.creation_date, at(1_700_000_000_000));
    assert!(s.delete_alias(A, R, "alias/Z").await.unwrap());
    assert!(!s.delete_alias(A, R, "alias/Z").await.unwrap());
    assert!(s.get_alias(A, R, "alias/Z").await.unwrap().is_none());

    // Tags: upsert, remove, ordered by key.
    s.put_tags(
        &ids[0],
        &[
            Tag {
                key: "team".into(),
                value: "red".into(),
            },
            Tag {
                key: "app".into(),
                value: "x".into(),
            },
        ],
    )
    .await
    .unwrap();
    let tags = s.list_tags(&ids[0]).await.unwrap();
    assert_eq!(
        tags.iter()
            .map(|t| (t.key.as_str(), t.value.as_str()))
            .collect::<Vec<_>>(),
        [("app", "x"), ("team", "red")]
    );
    s.remove_tags(&ids[0], &["team".into(), "absent".into()])
        .await
        .unwrap();
    assert_eq!(s.list_tags(&ids[0]).await.unwrap().len(), 1);

    // Custom key stores: unique names, the quota, conditional updates, counts and lookups.
    s.insert_custom_key_store(&custom_store("cks-b", "store-b"), Q)
        .await
        .unwrap();
    s.insert_custom_key_store(&custom_store("cks-a", "store-a"), 2)
        .await
        .unwrap();
    assert!(matches!(
        s.insert_custom_key_store(&custom_store("cks-c", "store-a"), Q)
            .await,
        Err(StoreError::CustomKeyStoreNameInUse { name }) if name == "store-a"
    ));
    // An account with `limit` stores in a region takes no more there; another region has room.
    assert!(matches!(
        s.insert_custom_key_store(&custom_store("cks-d", "store-d"), 2)
            .await,
        Err(StoreError::CustomKeyStoreQuota { limit: 2, usage: 2 })
    ));
    assert!(s.get_custom_key_store("cks-d").await.unwrap().is_none());
    let mut elsewhere = custom_store("cks-e", "store-e");
    elsewhere.region = "eu-west-1".into();
    s.insert_custom_key_store(&elsewhere, 1).await.unwrap();
    s.delete_custom_key_store("cks-e").await.unwrap();
    let cs = s.get_custom_key_store("cks-a").await.unwrap().unwrap();
    assert_eq!(cs, custom_store("cks-a", "store-a"));
    let mut connected = cs.clone();
    connected.connection_state = ConnectionState::Connected;
    let connected = s.update_custom_key_store(&connected).await.unwrap();
    assert_eq!(connected.row_version, 2);
    assert!(matches!(
        s.update_custom_key_store(&cs).await,
        Err(StoreError::Conflict)
    ));
    let listed: Vec<String> = s
        .list_custom_key_stores(A, R)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(listed, ["cks-a", "cks-b"]);
    assert_eq!(s.all_custom_key_stores().await.unwrap().len(), 2);
    let xk = KeyId::generate();
    let mut xkey = key(&xk, A);
    xkey.custom_key_store_id = Some("cks-a".into());
    xkey.xks_key_id = Some("ext-1".into());
    xkey.public_key = Some(vec![9; 91]);
    s.insert_key(&xkey, &material(&xk, 1), &[], Q)
        .await
        .unwrap();
    assert_eq!(s.get_key(&xk).await.unwrap().unwrap(), xkey);
    assert_eq!(s.count_keys_in_store("cks-a").await.unwrap(), 1);
    assert_eq!(
        s.find_key_by_xks_id("cks-a", "ext-1").await.unwrap(),
        Some(xk.clone())
    );
    assert_eq!(s.find_key_by_xks_id("cks-a", "ext-2").await.unwrap(), None);
    s.delete_custom_key_store("cks-b").await.unwrap();
    assert!(s.get_custom_key_store("cks-b").await.unwrap().is_none());

    // One store per cluster, across accounts and regions (stores without a cluster are many).
    s.insert_custom_key_store(&cluster_store("cks-h1", A, "cluster-1"), Q)
        .await
        .unwrap();
    let mut h2 = cluster_store("cks-h2", "444455556666", "cluster-1");
    h2.region = "eu-west-1".into();
    assert_eq!(
        cluster_in_use(s.insert_custom_key_store(&h2, Q).await),
        "cluster-1"
    );
    assert!(s.get_custom_key_store("cks-h2").await.unwrap().is_none());
    h2.cluster_id = Some("cluster-2".into());
    s.insert_custom_key_store(&h2, Q).await.unwrap();
    // An update onto a taken cluster, or to a taken name, is refused with its own error and
    // writes nothing.
    let mut onto_taken = h2.clone();
    onto_taken.cluster_id = Some("cluster-1".into());
    assert_eq!(
        cluster_in_use(s.update_custom_key_store(&onto_taken).await),
        "cluster-1"
    );
    let h1 = s.get_custom_key_store("cks-h1").await.unwrap().unwrap();
    let mut renamed = h1.clone();
    renamed.name = "store-a".into();
    assert!(matches!(
        s.update_custom_key_store(&renamed).await,
        Err(StoreError::CustomKeyStoreNameInUse { name }) if name == "store-a"
    ));
    assert_eq!(s.get_custom_key_store("cks-h2").await.unwrap().unwrap(), h2);
    assert_eq!(s.get_custom_key_store("cks-h1").await.unwrap().unwrap(), h1);
    // Writes that keep the cluster pass; the holder moving away frees its cluster, and a
    // deleted store's cluster is free.
    let mut h1 = h1;
    h1.connection_state = ConnectionState::Connected;
    let mut h1 = s.update_custom_key_store(&h1).await.unwrap();
    h1.cluster_id = Some("cluster-3".into());
    s.update_custom_key_store(&h1).await.unwrap();
    s.update_custom_key_store(&onto_taken).await.unwrap();
    s.delete_custom_key_store("cks-h2").await.unwrap();
    s.insert_custom_key_store(&cluster_store("cks-h4", A, "cluster-1"), Q)
        .await
        .unwrap();
    for id in ["cks-h1", "cks-h4"] {
        s.delete_custom_key_store(id).await.unwrap();
    }

    // Grants: oldest first per key, retirable by principal with pagination, deletion.
    for (g, key, created) in [("g2", &ids[3], 20), ("g1", &ids[3], 10), ("g3", &ids[4], 5)] {
        let made = grant(g, key, Some("p"), created);
        let (got, new) = s.insert_grant(&made, Q, same_grant).await.unwrap();
        assert_eq!((got, new), (made, true));
    }
    assert!(matches!(
        s.insert_grant(&grant("g1", &ids[4], None, 1), Q, same_grant)
            .await,
        Err(StoreError::AlreadyExists)
    ));
    // The grants-per-key quota: a key with `limit` grants takes no new one...
    assert!(matches!(
        s.insert_grant(&grant("g8", &ids[3], None, 40), 2, same_grant)
            .await,
        Err(StoreError::GrantQuota { limit: 2, usage: 2 })
    ));
    assert!(s.get_grant("g8").await.unwrap().is_none());
    // ...but a retry of a named grant it has is answered with that grant, even at the quota.
    let mut retry = grant("g9", &ids[3], None, 50);
    retry.name = Some("name-g1".into());
    let (got, new) = s.insert_grant(&retry, 2, same_grant).await.unwrap();
    assert_eq!((got, new), (grant("g1", &ids[3], Some("p"), 10), false));
    assert!(s.get_grant("g9").await.unwrap().is_none());
    // The same name with other parameters is another grant.
    let mut other = grant("g7", &ids[4], None, 6);
    other.name = Some("name-g3".into());
    other.grantee_principal = "arn:aws:iam::111122223333:user/dave".into();
    assert!(s.insert_grant(&other, Q, same_grant).await.unwrap().1);
    assert_eq!(s.list_grants(&ids[4]).await.unwrap().len(), 2);
    let on3: Vec<String> = s
        .list_grants(&ids[3])
        .await
        .unwrap()
        .iter()
        .map(|g| g.grant_id.clone())
        .collect();
    assert_eq!(on3, ["g1", "g2"]);
    assert_eq!(
        s.get_grant("g1").await.unwrap().unwrap(),
        grant("g1", &ids[3], Some("p"), 10)
    );
    let retirable: Vec<String> = s
        .list_retirable_grants("p", Some("g1"), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.grant_id)
        .collect();
    assert_eq!(retirable, ["g2", "g3"]);
    assert!(s.delete_grant("g2").await.unwrap());
    assert!(!s.delete_grant("g2").await.unwrap());
    assert_eq!(s.list_grants(&ids[3]).await.unwrap().len(), 1);

    // System secrets: the first value stays.
    assert!(s.get_system_secret("mac").await.unwrap().is_none());
    assert_eq!(
        s.put_system_secret_if_absent("mac", b"one").await.unwrap(),
        b"one"
    );
    assert_eq!(
        s.put_system_secret_if_absent("mac", b"two").await.unwrap(),
        b"one"
    );

    // Deletion is conditional on the row version and cascades.
    assert!(!s.delete_key(&ids[1], d.row_version - 1).await.unwrap());
    assert!(s.get_key(&ids[1]).await.unwrap().is_some());
    assert!(s.delete_key(&ids[1], d.row_version).await.unwrap());
    assert!(!s.delete_key(&ids[1], d.row_version).await.unwrap());
    assert!(s.get_key(&ids[1]).await.unwrap().is_none());
    assert!(s.list_materials(&ids[1]).await.unwrap().is_empty());
    assert_eq!(s.count_aliases(&ids[1]).await.unwrap(), 0);
    let v3 = s.get_key(&ids[3]).await.unwrap().unwrap().row_version;
    assert!(s.delete_key(&ids[3], v3).await.unwrap());
    assert!(s.get_grant("g1").await.unwrap().is_none());
    assert!(s.list_tags(&ids[3]).await.unwrap().is_empty());
    // The key count follows the deletions (not the refused one): room for one more at 4.
    let before = s.count_keys(A, R).await.unwrap();
    assert_eq!(before, 4); // 5 + the custom key store's key - 2 deleted
    let fifth = KeyId::generate();
    s.insert_key(&key(&fifth, A), &material(&fifth, 1), &[], 5)
        .await
        .unwrap();
    assert!(matches!(
        s.insert_key(&key(&sixth, A), &material(&sixth, 1), &[], 5)
            .await,
        Err(StoreError::KeyQuota { limit: 5, usage: 5 })
    ));
    let v = s.get_key(&fifth).await.unwrap().unwrap().row_version;
    assert!(s.delete_key(&fifth, v).await.unwrap());
    assert_eq!(s.count_keys(A, R).await.unwrap(), before);

    // The maintenance lease can be taken (and is free again once dropped).
    let lease = s.try_lease(LeaseName::Maintenance).await.unwrap();
    assert!(lease.is_some());
    drop(lease);
    assert!(s.try_lease(LeaseName::Maintenance).await.unwrap().is_some());

    multi_region_rows(s).await;
}

/// Related multi-Region keys: one row per region under the same public id, each with its own
/// material, tags and aliases; the primary region round-trips and updates.
async fn multi_region_rows(s: &dyn MetadataStore) {
    let public = KeyId::generate_multi_region();
    let (east, west) = (public.in_region(R), public.in_region("us-west-2"));
    let mut e = key(&east, A);
    e.mrk_primary_region = Some(R.into());
    let mut w = key(&west, A);
    w.region = "us-west-2".into();
    w.mrk_primary_region = Some(R.into());
    s.insert_key(&e, &material(&east, 1), &[], Q).await.unwrap();
    s.insert_key(
        &w,
        &material(&west, 1),
        &[Tag {
            key: "where".into(),
            value: "west".into(),
        }],
        // Counted in its own region: the east key does not use up the west's one.
        1,
    )
    .await
    .unwrap();
    let back = s.get_key(&west).await.unwrap().unwrap();
    assert_eq!(back, w);
    assert_eq!(back.key_id.public(), public.as_str());
    assert_eq!(s.get_key(&east).await.unwrap().unwrap(), e);
    // The public id alone names no row.
    assert!(s.get_key(&public).await.unwrap().is_none());
    assert!(s.list_tags(&east).await.unwrap().is_empty());
    assert_eq!(s.list_tags(&west).await.unwrap().len(), 1);
    // Listing per region finds each row once, in its region.
    let listed = s.list_keys(A, "us-west-2", None, 100).await.unwrap();
    assert_eq!(
        listed.iter().map(|k| &k.key_id).collect::<Vec<_>>(),
        vec![&west]
    );
    // The same alias name in two regions, on each region's key.
    let mut wa = alias("alias/shared", &west);
    wa.region = "us-west-2".into();
    s.create_alias(&alias("alias/shared", &east), Q)
        .await
        .unwrap();
    s.create_alias(&wa, Q).await.unwrap();
    let got = s
        .get_alias(A, "us-west-2", "alias/shared")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.target_key_id, west);
    // A rotation copied to the replica; UpdatePrimaryRegion's column write.
    let mut w2 = s.get_key(&west).await.unwrap().unwrap();
    w2.current_material = 2;
    w2.mrk_primary_region = Some("us-west-2".into());
    let w2 = s.rotate_key(&w2, &material(&west, 2)).await.unwrap();
    let back = s.get_key(&west).await.unwrap().unwrap();
    assert_eq!(back.mrk_primary_region.as_deref(), Some("us-west-2"));
    assert_eq!(back.current_material, 2);
    assert_eq!(s.list_materials(&west).await.unwrap().len(), 2);
    assert_eq!(s.list_materials(&east).await.unwrap().len(), 1);
    // Deleting one region's key leaves the other, and lowers that region's count only.
    assert_eq!(s.count_keys(A, "us-west-2").await.unwrap(), 1);
    assert!(s.delete_key(&west, w2.row_version).await.unwrap());
    assert_eq!(s.count_keys(A, "us-west-2").await.unwrap(), 0);
    assert!(s.get_key(&east).await.unwrap().is_some());
    assert!(s.get_alias(A, R, "alias/shared").await.unwrap().is_some());
    assert!(s
        .get_alias(A, "us-west-2", "alias/shared")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn sqlite_store_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("kms.sqlite3")).unwrap();
    suite(&store).await;
    // The same through the cache in front of it.
    let dir = tempfile::tempdir().unwrap();
    let cached =
        kms::store::CachedStore::new(SqliteStore::open(&dir.path().join("kms.sqlite3")).unwrap());
    suite(&cached).await;
}

fn pg_config(url: &str) -> PostgresConfig {
    PostgresConfig {
        url: url.into(),
        password: Some(common::pg::password().into()),
        tls: PgTls::Disable,
        ca: None,
        pool_size: 4,
        connect_timeout: std::time::Duration::from_secs(5),
        pool_wait: std::time::Duration::from_secs(5),
        auto_migrate: true,
    }
}

#[tokio::test]
async fn postgres_store_passes_the_suite() {
    let url = common::pg::fresh_database();
    let store = PgStore::connect(&pg_config(&url)).await.unwrap();
    let m = store.migrate().await.unwrap();
    assert_eq!(m.from, 0);
    assert!(m.to >= 1);
    suite(&store).await;
}

/// On PostgreSQL the lease is cluster-wide: while one holder has it, nobody else gets it; a
/// holder whose session ends (a node that died) frees it.
#[tokio::test]
async fn postgres_lease_is_exclusive_and_freed_with_its_session() {
    let url = common::pg::fresh_database();
    let a = PgStore::connect(&pg_config(&url)).await.unwrap();
    a.migrate().await.unwrap();
    let b = PgStore::connect(&pg_config(&url)).await.unwrap();
    let held = a.try_lease(LeaseName::Maintenance).await.unwrap().unwrap();
    assert!(b.try_lease(LeaseName::Maintenance).await.unwrap().is_none());
    assert!(a.try_lease(LeaseName::Maintenance).await.unwrap().is_none());
    drop(held);
    // The holder's connection closes asynchronously; the lease is free soon after.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if b.try_lease(LeaseName::Maintenance).await.unwrap().is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "lease never freed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // A holder killed without a goodbye: its backend is terminated, the lease goes with it.
    // The lock is looked up in this test's own database: other tests share the cluster.
    let held = b.try_lease(LeaseName::Maintenance).await.unwrap().unwrap();
    let pid = common::pg::psql(
        &url,
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = \
         (SELECT oid FROM pg_database WHERE datname = current_database()) LIMIT 1",
    );
    common::pg::psql(&url, &format!("SELECT pg_terminate_backend({pid})"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if a.try_lease(LeaseName::Maintenance).await.unwrap().is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "lease never freed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    drop(held);
}

/// A custom key store's connect claim: on PostgreSQL one holder per store at a time (another
/// try gets `None`, a waiting claim is granted when the holder lets go), freed when dropped or
/// when its session ends (a node that died); on SQLite (one node) always granted.
#[tokio::test]
async fn store_connect_claims_are_exclusive_on_postgres_and_freed_with_their_session() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("kms.sqlite3")).unwrap();
    let first = sqlite.claim_store_connect("cks-1", false).await.unwrap();
    assert!(first.is_some());
    assert!(sqlite
        .claim_store_connect("cks-1", false)
        .await
        .unwrap()
        .is_some());

    let url = common::pg::fresh_database();
    let a = PgStore::connect(&pg_config(&url)).await.unwrap();
    a.migrate().await.unwrap();
    let b = PgStore::connect(&pg_config(&url)).await.unwrap();
    let held = a
        .claim_store_connect("cks-1", false)
        .await
        .unwrap()
        .unwrap();
    assert!(b
        .claim_store_connect("cks-1", false)
        .await
        .unwrap()
        .is_none());
    assert!(a
        .claim_store_connect("cks-1", false)
        .await
        .unwrap()
        .is_none());
    let other = b.claim_store_connect("cks-2", false).await.unwrap();
    assert!(other.is_some(), "another store's claim is free");
    // A waiting claim is granted once the holder lets go.
    let waiter = b.clone();
    let waiting = tokio::spawn(async move { waiter.claim_store_connect("cks-1", true).await });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "granted while held");
    drop(held);
    let got = tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
        .await
        .expect("the waiting claim was never granted")
        .unwrap()
        .unwrap();
    assert!(got.is_some());
    assert!(a
        .claim_store_connect("cks-1", false)
        .await
        .unwrap()
        .is_none());
    // Its holder's session terminated (a node killed): the claim is free again. The lock is
    // looked up by its class key (the claims' first key) in this test's own database.
    let pid = common::pg::psql(
        &url,
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2 \
         AND classid = 1802334980 AND objid = hashtext('cks-1')::oid AND database = \
         (SELECT oid FROM pg_database WHERE datname = current_database())",
    );
    common::pg::psql(&url, &format!("SELECT pg_terminate_backend({pid})"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let retaken = loop {
        if let Some(claim) = a.claim_store_connect("cks-1", false).await.unwrap() {
            break claim;
        }
        assert!(std::time::Instant::now() < deadline, "claim never freed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    drop((got, retaken, other));
}

/// Migrations: applied once (two concurrent runs do not race), recorded, and a schema newer
/// than the binary knows is refused, by both stores; an old schema is refused when migrating
/// at start-up is off.
#[tokio::test]
async fn migrations_are_versioned_and_a_newer_schema_is_refused() {
    // PostgreSQL: two nodes migrating at once.
    let url = common::pg::fresh_database();
    let a = PgStore::connect(&pg_config(&url)).await.unwrap();
    let b = PgStore::connect(&pg_config(&url)).await.unwrap();
    let (ma, mb) = tokio::join!(a.migrate(), b.migrate());
    let (ma, mb) = (ma.unwrap(), mb.unwrap());
    let known = ma.to;
    assert_eq!(mb.to, known);
    // Exactly one of them did the work.
    assert_eq!([ma.from, mb.from].iter().filter(|&&f| f == 0).count(), 1);
    assert_eq!(
        common::pg::psql(&url, "SELECT count(*) FROM kms_schema_version"),
        known.to_string()
    );
    let again = a.migrate().await.unwrap();
    assert_eq!((again.from, again.to), (known, known));
    common::pg::psql(
        &url,
        &format!("INSERT INTO kms_schema_version VALUES ({})", known + 1),
    );
    match a.prepare_schema(MigrateOnOpen::Apply).await {
        Err(StoreError::SchemaTooNew { found, known: k }) => {
            assert_eq!((found, k), (known + 1, known))
        }
        other => panic!("expected SchemaTooNew, got {:?}", other.map(|_| ())),
    }
    // And through the configuration, as `kms` opens it.
    let err = kms::store::open(&StoreConfig::Postgres(pg_config(&url)))
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("newer than this kms binary knows"),
        "{err}"
    );
    // An empty database with auto_migrate off is refused with the command to run.
    let fresh = common::pg::fresh_database();
    let mut cfg = pg_config(&fresh);
    cfg.auto_migrate = false;
    let err = kms::store::open(&StoreConfig::Postgres(cfg.clone()))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("kms migrate"), "{err}");
    kms::store::migrate(&StoreConfig::Postgres(cfg.clone()))
        .await
        .unwrap();
    kms::store::open(&StoreConfig::Postgres(cfg)).await.unwrap();

    // SQLite: the same rules.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kms.sqlite3");
    let err = SqliteStore::open_with(&path, MigrateOnOpen::Refuse)
        .err()
        .unwrap();
    assert!(
        matches!(err, StoreError::SchemaBehind { found: 0, .. }),
        "{err}"
    );
    let m = SqliteStore::migrate_file(&path).unwrap();
    assert_eq!(m.from, 0);
    SqliteStore::open_with(&path, MigrateOnOpen::Refuse).unwrap();
    let db = record_schema_version(&path, m.to + 1);
    assert!(db.is_ok());
    let err = SqliteStore::open(&path).err().unwrap();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found, known: k } if found == m.to + 1 && k == m.to),
        "{err}"
    );
}

/// Records a schema version in a SQLite file behind the store's back.
fn record_schema_version(path: &std::path::Path, version: i64) -> Result<(), String> {
    let conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
    conn.execute(
        "INSERT INTO schema_version (version) VALUES (?1)",
        [version],
    )
    .map_err(|e| e.to_string())?;
    Ok(())
}

/// 24 concurrent key inserts into `account`, alternating between two store handles, under the
/// key quota `limit`: how many were made and how many refused with the quota error.
async fn race_inserts(
    a: &std::sync::Arc<dyn MetadataStore>,
    b: &std::sync::Arc<dyn MetadataStore>,
    account: &'static str,
    limit: usize,
) -> (usize, usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..24 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.spawn(async move {
            let id = KeyId::generate();
            s.insert_key(&key(&id, account), &material(&id, 1), &[], limit)
                .await
        });
    }
    let (mut made, mut refused) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok(()) => made += 1,
            Err(StoreError::KeyQuota { limit: l, usage: u }) if l == limit && u == limit => {
                refused += 1
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    (made, refused)
}

/// Concurrent inserts at the key quota (and alias creates at the aliases-per-key quota) make
/// exactly `limit`; the others are refused with the quota and write nothing. `a` and `b` are
/// handles on one database (two nodes' pools on PostgreSQL).
async fn concurrent_inserts_stop_at_the_limit(
    a: std::sync::Arc<dyn MetadataStore>,
    b: std::sync::Arc<dyn MetadataStore>,
) {
    const LIMIT: usize = 5;
    const ACCOUNT: &str = "555566667777";
    let (made, refused) = race_inserts(&a, &b, ACCOUNT, LIMIT).await;
    assert_eq!((made, refused), (LIMIT, 24 - LIMIT));
    assert_eq!(a.count_keys(ACCOUNT, R).await.unwrap(), LIMIT);
    let keys = b.list_keys(ACCOUNT, R, None, 100).await.unwrap();
    assert_eq!(keys.len(), LIMIT);

    // The aliases-per-key quota the same way: concurrent creates of aliases to one key.
    let target = keys[0].key_id.clone();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..24 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let mut al = alias(&format!("alias/race-{i}"), &target);
        al.account = ACCOUNT.into();
        tasks.spawn(async move { s.create_alias(&al, LIMIT).await });
    }
    let (mut made, mut refused) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok(()) => made += 1,
            Err(StoreError::AliasQuota {
                limit: LIMIT,
                usage: LIMIT,
            }) => refused += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((made, refused), (LIMIT, 24 - LIMIT));
    assert_eq!(a.count_aliases(&target).await.unwrap(), LIMIT);

    // The grants-per-key quota: concurrent creates of grants on one key.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..24 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let mut g = grant(&format!("race-{i}"), &target, None, i);
        g.name = None;
        tasks.spawn(async move { s.insert_grant(&g, LIMIT, same_grant).await });
    }
    let (mut made, mut refused) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok((_, true)) => made += 1,
            Err(StoreError::GrantQuota {
                limit: LIMIT,
                usage: LIMIT,
            }) => refused += 1,
            other => panic!("unexpected {:?}", other.map(|(g, new)| (g.grant_id, new))),
        }
    }
    assert_eq!((made, refused), (LIMIT, 24 - LIMIT));
    assert_eq!(b.list_grants(&target).await.unwrap().len(), LIMIT);

    // The custom key stores quota: concurrent creates in one account and region.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..24 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let mut cs = custom_store(&format!("cks-race-{i}"), &format!("race-{i}"));
        cs.account = ACCOUNT.into();
        tasks.spawn(async move { s.insert_custom_key_store(&cs, LIMIT).await });
    }
    let (mut made, mut refused) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok(()) => made += 1,
            Err(StoreError::CustomKeyStoreQuota {
                limit: LIMIT,
                usage: LIMIT,
            }) => refused += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((made, refused), (LIMIT, 24 - LIMIT));
    assert_eq!(
        a.list_custom_key_stores(ACCOUNT, R).await.unwrap().len(),
        LIMIT
    );

    // One store per cluster: concurrent creates on one cluster, from accounts with room,
    // make one store; then concurrent updates moving stores onto one free cluster move one.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..24 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let cs = cluster_store(
            &format!("cks-on-cluster-{i}"),
            &format!("{}", 800_000_000_000u64 + i),
            "raced",
        );
        tasks.spawn(async move { s.insert_custom_key_store(&cs, LIMIT).await });
    }
    let mut made = 0;
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok(()) => made += 1,
            refused => assert_eq!(cluster_in_use(refused), "raced"),
        }
    }
    assert_eq!(made, 1);
    let mut movers = Vec::new();
    for i in 0..24 {
        let cs = cluster_store(&format!("cks-mover-{i}"), A, &format!("own-{i}"));
        a.insert_custom_key_store(&cs, Q).await.unwrap();
        movers.push(cs);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, mut cs) in movers.into_iter().enumerate() {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        cs.cluster_id = Some("goal".into());
        tasks.spawn(async move { s.update_custom_key_store(&cs).await });
    }
    let mut moved = 0;
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok(_) => moved += 1,
            refused => assert_eq!(cluster_in_use(refused), "goal"),
        }
    }
    assert_eq!(moved, 1);
    let on = |cluster: &'static str| {
        let b = b.clone();
        async move {
            b.all_custom_key_stores()
                .await
                .unwrap()
                .iter()
                .filter(|s| s.cluster_id.as_deref() == Some(cluster))
                .count()
        }
    };
    assert_eq!((on("raced").await, on("goal").await), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_inserts_stop_at_the_key_quota() {
    let dir = tempfile::tempdir().unwrap();
    let s: std::sync::Arc<dyn MetadataStore> =
        std::sync::Arc::new(SqliteStore::open(&dir.path().join("kms.sqlite3")).unwrap());
    concurrent_inserts_stop_at_the_limit(s.clone(), s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_inserts_on_two_pools_stop_at_the_key_quota() {
    let url = common::pg::fresh_database();
    let a = PgStore::connect(&pg_config(&url)).await.unwrap();
    a.migrate().await.unwrap();
    let b = PgStore::connect(&pg_config(&url)).await.unwrap();
    concurrent_inserts_stop_at_the_limit(std::sync::Arc::new(a), std::sync::Arc::new(b)).await;
}

/// Counts left too high by rows deleted outside kms (an operator's SQL, a partial restore;
/// `sql` runs it on the database of `a` and `b`) heal: the kept key count is recounted, under
/// concurrent inserts from both handles (two nodes' pools on PostgreSQL), so inserts make keys
/// up to exactly the quota and never past it. Aliases, grants and custom key stores are counted
/// from their rows at every write (no kept count): their quotas free at once.
async fn counts_heal_after_rows_deleted_by_hand(
    a: std::sync::Arc<dyn MetadataStore>,
    b: std::sync::Arc<dyn MetadataStore>,
    sql: &dyn Fn(&str),
) {
    const LIMIT: usize = 5;
    const ACCOUNT: &str = "555566668888";
    let mut ids = Vec::new();
    for _ in 0..LIMIT {
        let id = KeyId::generate();
        a.insert_key(&key(&id, ACCOUNT), &material(&id, 1), &[], LIMIT)
            .await
            .unwrap();
        ids.push(id);
    }
    let in_list = |ids: &[KeyId]| {
        ids.iter()
            .map(|i| format!("'{}'", i.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    sql(&format!(
        "DELETE FROM keys WHERE key_id IN ({})",
        in_list(&ids[..3])
    ));
    // The kept count did not see it.
    assert_eq!(a.count_keys(ACCOUNT, R).await.unwrap(), LIMIT);

    // Concurrent inserts from both handles make the three keys there is room for.
    let (made, refused) = race_inserts(&a, &b, ACCOUNT, LIMIT).await;
    assert_eq!((made, refused), (3, 24 - 3));
    assert_eq!(a.count_keys(ACCOUNT, R).await.unwrap(), LIMIT);
    let keys = b.list_keys(ACCOUNT, R, None, 100).await.unwrap();
    assert_eq!(keys.len(), LIMIT);

    // recount_keys (the service's check before it refuses) corrects the kept count.
    sql(&format!(
        "DELETE FROM keys WHERE key_id IN ({})",
        in_list(&[keys[0].key_id.clone(), keys[1].key_id.clone()])
    ));
    assert_eq!(b.count_keys(ACCOUNT, R).await.unwrap(), LIMIT);
    assert_eq!(b.recount_keys(ACCOUNT, R).await.unwrap(), LIMIT - 2);
    assert_eq!(a.count_keys(ACCOUNT, R).await.unwrap(), LIMIT - 2);
    // And a count too low (a restore that brought rows back without their count) is raised.
    sql("UPDATE key_counts SET n = 0 WHERE account = '555566668888'");
    assert_eq!(a.recount_keys(ACCOUNT, R).await.unwrap(), LIMIT - 2);
    assert_eq!(b.count_keys(ACCOUNT, R).await.unwrap(), LIMIT - 2);

    // Aliases, grants, custom key stores: at the quota, rows deleted by hand free it at once.
    let target = keys[2].key_id.clone();
    for i in 0..LIMIT {
        let mut al = alias(&format!("alias/hand-{i}"), &target);
        al.account = ACCOUNT.into();
        a.create_alias(&al, LIMIT).await.unwrap();
        let mut g = grant(&format!("hand-{i}"), &target, None, i as i64);
        g.name = None;
        a.insert_grant(&g, LIMIT, same_grant).await.unwrap();
        let mut cs = custom_store(&format!("cks-hand-{i}"), &format!("hand-{i}"));
        cs.account = ACCOUNT.into();
        a.insert_custom_key_store(&cs, LIMIT).await.unwrap();
    }
    sql(
        "DELETE FROM aliases WHERE name IN ('alias/hand-0', 'alias/hand-1'); \
         DELETE FROM grants WHERE grant_id IN ('hand-0', 'hand-1'); \
         DELETE FROM custom_key_stores WHERE id IN ('cks-hand-0', 'cks-hand-1');",
    );
    for i in LIMIT..LIMIT + 3 {
        let mut al = alias(&format!("alias/hand-{i}"), &target);
        al.account = ACCOUNT.into();
        let mut g = grant(&format!("hand-{i}"), &target, None, i as i64);
        g.name = None;
        let mut cs = custom_store(&format!("cks-hand-{i}"), &format!("hand-{i}"));
        cs.account = ACCOUNT.into();
        let (al, g, cs) = (
            b.create_alias(&al, LIMIT).await,
            b.insert_grant(&g, LIMIT, same_grant).await.map(|_| ()),
            b.insert_custom_key_store(&cs, LIMIT).await,
        );
        if i < LIMIT + 2 {
            al.unwrap();
            g.unwrap();
            cs.unwrap();
        } else {
            assert!(matches!(
                al,
                Err(StoreError::AliasQuota {
                    limit: LIMIT,
                    usage: LIMIT
                })
            ));
            assert!(matches!(
                g,
                Err(StoreError::GrantQuota {
                    limit: LIMIT,
                    usage: LIMIT
                })
            ));
            assert!(matches!(
                cs,
                Err(StoreError::CustomKeyStoreQuota {
                    limit: LIMIT,
                    usage: LIMIT
                })
            ));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_counts_heal_after_rows_deleted_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kms.sqlite3");
    let s: std::sync::Arc<dyn MetadataStore> =
        std::sync::Arc::new(SqliteStore::open(&path).unwrap());
    let sql = |q: &str| common::sqlite_sql(&path, q);
    counts_heal_after_rows_deleted_by_hand(s.clone(), s, &sql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_counts_heal_after_rows_deleted_by_hand_on_two_pools() {
    let url = common::pg::fresh_database();
    let a = PgStore::connect(&pg_config(&url)).await.unwrap();
    a.migrate().await.unwrap();
    let b = PgStore::connect(&pg_config(&url)).await.unwrap();
    let sql = |q: &str| {
        common::pg::psql(&url, q);
    };
    counts_heal_after_rows_deleted_by_hand(std::sync::Arc::new(a), std::sync::Arc::new(b), &sql)
        .await;
}

/// Inserts keys in two regions, for the migration tests below.
async fn three_and_two_keys(s: &dyn MetadataStore) {
    for region in [R, R, R, "eu-west-1", "eu-west-1"] {
        let id = KeyId::generate();
        let mut k = key(&id, A);
        k.region = region.into();
        s.insert_key(&k, &material(&id, 1), &[], Q).await.unwrap();
    }
}

/// The key count's migration fills the count from the keys there are. The schema is put back
/// to before it (the table dropped, and the one-store-per-cluster migration after it undone,
/// their versions removed) and the store opened again.
#[tokio::test]
async fn key_count_migration_counts_existing_keys() {
    // SQLite.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kms.sqlite3");
    three_and_two_keys(&SqliteStore::open(&path).unwrap()).await;
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "{SQLITE_UNDO_CLUSTER_INDEX} DROP TABLE key_counts; \
             DELETE FROM schema_version WHERE version > (SELECT MAX(version) - 2 FROM schema_version)"
        ))
        .unwrap();
    }
    let m = SqliteStore::migrate_file(&path).unwrap();
    assert_eq!(m.from + 2, m.to);
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.count_keys(A, R).await.unwrap(), 3);
    assert_eq!(s.count_keys(A, "eu-west-1").await.unwrap(), 2);

    // PostgreSQL.
    let url = common::pg::fresh_database();
    let s = PgStore::connect(&pg_config(&url)).await.unwrap();
    s.migrate().await.unwrap();
    three_and_two_keys(&s).await;
    common::pg::psql(
        &url,
        &format!(
            "{PG_UNDO_CLUSTER_INDEX} DROP TABLE key_counts; DELETE FROM kms_schema_version \
             WHERE version > (SELECT MAX(version) - 2 FROM kms_schema_version)"
        ),
    );
    let m = s.migrate().await.unwrap();
    assert_eq!(m.from + 2, m.to);
    assert_eq!(s.count_keys(A, R).await.unwrap(), 3);
    assert_eq!(s.count_keys(A, "eu-west-1").await.unwrap(), 2);
    // And the limit holds on the filled count.
    let id = KeyId::generate();
    assert!(matches!(
        s.insert_key(&key(&id, A), &material(&id, 1), &[], 3).await,
        Err(StoreError::KeyQuota { limit: 3, usage: 3 })
    ));
}

/// Undoes the last migration, the one-store-per-cluster index, on SQLite.
const SQLITE_UNDO_CLUSTER_INDEX: &str = "DROP TRIGGER custom_key_stores_hand_over_deleted; \
    DROP TRIGGER custom_key_stores_hand_over_moved; \
    DROP INDEX custom_key_stores_one_per_cluster; \
    ALTER TABLE custom_key_stores DROP COLUMN cluster_shared;";
/// The same on PostgreSQL.
const PG_UNDO_CLUSTER_INDEX: &str =
    "DROP TRIGGER custom_key_stores_hand_over ON custom_key_stores; \
    DROP FUNCTION kms_cluster_hand_over(); \
    DROP INDEX custom_key_stores_one_per_cluster; \
    ALTER TABLE custom_key_stores DROP COLUMN cluster_shared;";

/// Three stores on one cluster, as a database from before the one-store-per-cluster index may
/// hold: `cks-z-old`, `cks-a-new`, `cks-b-newest` in that order of creation (ids ordered
/// otherwise, so the creation time decides), and `cks-m-alone` on a cluster of its own.
async fn three_stores_on_one_cluster(s: &dyn MetadataStore) {
    let mut stores = Vec::new();
    for (i, (id, account)) in [
        ("cks-z-old", A),
        ("cks-a-new", "444455556666"),
        ("cks-b-newest", A),
    ]
    .into_iter()
    .enumerate()
    {
        let mut cs = cluster_store(id, account, "shared");
        cs.creation_date = at(1_700_000_000_000 + 100_000 * i as i64);
        stores.push(cs);
    }
    stores.push(cluster_store("cks-m-alone", A, "alone"));
    for cs in stores {
        s.insert_custom_key_store(&cs, Q).await.unwrap();
    }
}

/// After the migration: every store on the shared cluster is kept as it was, the oldest holds
/// the cluster (`shared(id)`: the store's `cluster_shared` column read from the database), no
/// further store gets on it, the later ones' writes pass, the holder's deletion or move hands
/// the cluster to the oldest marked store left, and a marked store moved to a free cluster is
/// an ordinary store there.
async fn after_the_cluster_migration(s: &dyn MetadataStore, shared: impl Fn(&str) -> bool) {
    let get = |id: &'static str| async move { s.get_custom_key_store(id).await.unwrap().unwrap() };
    for id in ["cks-z-old", "cks-a-new", "cks-b-newest"] {
        assert_eq!(get(id).await.cluster_id.as_deref(), Some("shared"), "{id}");
    }
    let marks = || ["cks-z-old", "cks-a-new", "cks-b-newest", "cks-m-alone"].map(&shared);
    assert_eq!(marks(), [false, true, true, false]);
    let third = cluster_store("cks-third", A, "shared");
    assert_eq!(
        cluster_in_use(s.insert_custom_key_store(&third, Q).await),
        "shared"
    );
    // A marked store's writes that keep its cluster keep its mark; it moves only to a free one.
    let mut new = get("cks-a-new").await;
    new.connection_state = ConnectionState::Connected;
    let mut new = s.update_custom_key_store(&new).await.unwrap();
    assert!(shared("cks-a-new"));
    new.cluster_id = Some("alone".into());
    assert_eq!(
        cluster_in_use(s.update_custom_key_store(&new).await),
        "alone"
    );
    // The holder moves away: the oldest marked store left holds the cluster.
    let mut old = get("cks-z-old").await;
    old.cluster_id = Some("elsewhere".into());
    s.update_custom_key_store(&old).await.unwrap();
    assert_eq!(marks(), [false, false, true, false]);
    assert_eq!(
        cluster_in_use(s.insert_custom_key_store(&third, Q).await),
        "shared"
    );
    // The holder is deleted: the next one holds it.
    s.delete_custom_key_store("cks-a-new").await.unwrap();
    assert!(!shared("cks-b-newest"));
    assert_eq!(
        cluster_in_use(s.insert_custom_key_store(&third, Q).await),
        "shared"
    );
    // The last one moves to a free cluster (it is checked there), and the cluster is free.
    let mut newest = get("cks-b-newest").await;
    newest.cluster_id = Some("elsewhere".into());
    assert_eq!(
        cluster_in_use(s.update_custom_key_store(&newest).await),
        "elsewhere"
    );
    newest.cluster_id = Some("free".into());
    s.update_custom_key_store(&newest).await.unwrap();
    s.insert_custom_key_store(&third, Q).await.unwrap();
}

/// A database from before the one-store-per-cluster index that already has several stores on
/// one cluster still opens: the migration keeps them all (the later ones left out of the index)
/// rather than failing the start-up.
#[tokio::test]
async fn the_cluster_index_migration_keeps_stores_that_already_share_a_cluster() {
    // SQLite: the schema put back to before the migration while a store is open on it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kms.sqlite3");
    {
        let s = SqliteStore::open(&path).unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "{SQLITE_UNDO_CLUSTER_INDEX} DELETE FROM schema_version \
             WHERE version = (SELECT MAX(version) FROM schema_version)"
        ))
        .unwrap();
        three_stores_on_one_cluster(&s).await;
    }
    let m = SqliteStore::migrate_file(&path).unwrap();
    assert_eq!(m.from + 1, m.to);
    let s = SqliteStore::open(&path).unwrap();
    after_the_cluster_migration(&s, |id| {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.query_row(
            "SELECT cluster_shared FROM custom_key_stores WHERE id = ?1",
            [id],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
            == 1
    })
    .await;

    // PostgreSQL.
    let (url, s, m) = pg_with_three_stores_on_one_cluster().await;
    assert_eq!(m.from + 1, m.to);
    after_the_cluster_migration(&s, |id| {
        common::pg::psql(
            &url,
            &format!("SELECT cluster_shared FROM custom_key_stores WHERE id = '{id}'"),
        ) == "t"
    })
    .await;
}

/// A fresh PostgreSQL database taken back to the schema before the one-store-per-cluster
/// migration, given three stores on one cluster, then migrated again: its URL, the store and
/// what the second migration did.
async fn pg_with_three_stores_on_one_cluster() -> (String, PgStore, kms::store::Migrated) {
    let url = common::pg::fresh_database();
    let s = PgStore::connect(&pg_config(&url)).await.unwrap();
    s.migrate().await.unwrap();
    common::pg::psql(
        &url,
        &format!(
            "{PG_UNDO_CLUSTER_INDEX} DELETE FROM kms_schema_version \
             WHERE version = (SELECT MAX(version) FROM kms_schema_version)"
        ),
    );
    three_stores_on_one_cluster(&s).await;
    let s = PgStore::connect(&pg_config(&url)).await.unwrap();
    let m = s.migrate().await.unwrap();
    (url, s, m)
}

/// PostgreSQL, two nodes at once: the holder of a cluster that two older stores still share is
/// deleted while another session deletes the oldest marked store, or moves it to another
/// cluster (uncommitted when the hand-over reaches it). The hand-over must skip that store and
/// give the cluster to the next marked one, so that the cluster keeps a holder and no further
/// store gets on it.
#[tokio::test]
async fn postgres_hand_over_skips_a_marked_store_deleted_or_moved_concurrently() {
    hand_over_racing("DELETE FROM custom_key_stores WHERE id = 'cks-a-new'").await;
    hand_over_racing(
        "UPDATE custom_key_stores SET cluster_id = 'elsewhere', cluster_shared = FALSE \
         WHERE id = 'cks-a-new'",
    )
    .await;
}

/// [`postgres_hand_over_skips_a_marked_store_deleted_or_moved_concurrently`] with `other_sql`,
/// the other node's statement on `cks-a-new`.
async fn hand_over_racing(other_sql: &str) {
    let (url, s, _) = pg_with_three_stores_on_one_cluster().await;
    let shared = |id: &str| {
        common::pg::psql(
            &url,
            &format!("SELECT cluster_shared FROM custom_key_stores WHERE id = '{id}'"),
        ) == "t"
    };
    assert_eq!(
        ["cks-z-old", "cks-a-new", "cks-b-newest"].map(shared),
        [false, true, true]
    );

    // The other node: deletes or moves the oldest marked store and holds its transaction open
    // until told to commit (a line on its stdin).
    use std::io::Write;
    let mut other = std::process::Command::new("psql")
        .env("PGPASSWORD", common::pg::password())
        .args([url.as_str(), "-v", "ON_ERROR_STOP=1", "-qAt"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("psql (postgresql-client) must be installed");
    let mut stdin = other.stdin.take().unwrap();
    writeln!(
        stdin,
        "SET application_name = 'other_node'; BEGIN; {other_sql};"
    )
    .unwrap();
    let holds_the_row = || {
        common::pg::psql(
            &url,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'other_node' \
             AND state = 'idle in transaction' AND datname = current_database()",
        ) == "1"
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !holds_the_row() {
        assert!(
            std::time::Instant::now() < deadline,
            "the other session never began"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // This node deletes the holder; its hand-over waits for the other session's row.
    let deleting = {
        let s = s.clone();
        tokio::spawn(async move { s.delete_custom_key_store("cks-z-old").await })
    };
    let waits = || {
        common::pg::psql(
            &url,
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
             AND datname = current_database()",
        ) == "1"
    };
    while !waits() {
        assert!(
            std::time::Instant::now() < deadline,
            "the hand-over never waited for the other session"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    writeln!(stdin, "COMMIT;").unwrap();
    drop(stdin);
    assert!(other.wait().unwrap().success());
    deleting.await.unwrap().unwrap();

    let left = s.get_custom_key_store("cks-a-new").await.unwrap();
    assert!(left.is_none_or(|l| l.cluster_id.as_deref() == Some("elsewhere")));
    assert!(
        !shared("cks-b-newest"),
        "{other_sql}: the cluster was left without a holder"
    );
    let third = cluster_store("cks-third", A, "shared");
    assert_eq!(
        cluster_in_use(s.insert_custom_key_store(&third, Q).await),
        "shared"
    );
}
