//! Multi-Region keys served by one deployment, through real `aws-sdk-kms` clients of two (and
//! three) regions against one server: CreateKey MultiRegion, ReplicateKey, UpdatePrimaryRegion,
//! MultiRegionConfiguration, cross-region decryption, shared material and rotation, independent
//! policies/aliases/tags/state, the deletion rules of a primary with replicas, and requests
//! for a region the server does not serve.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    KeySpec, KeyState, KeyUsageType, MacAlgorithmSpec, MultiRegionKeyType, SigningAlgorithmSpec,
    Tag,
};

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";
const EU: &str = "eu-west-1";
const DAY: i64 = 86_400;

/// A server serving `regions`.
async fn server(regions: &[&str]) -> common::TestServer {
    let list = regions
        .iter()
        .map(|r| format!("\"{r}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut env = common::backend_env();
    env.push(("KMS_SERVER__REGIONS".into(), format!("[{list}]")));
    common::TestServer::start_with(env).await
}

/// A client of the default user signing for `region`.
fn client(srv: &common::TestServer, region: &str) -> aws_sdk_kms::Client {
    common::sdk_client_in(
        &srv.endpoint,
        common::ACCESS_KEY,
        common::SECRET_KEY,
        region,
    )
}

async fn mrk(kms: &aws_sdk_kms::Client) -> String {
    let md = kms
        .create_key()
        .multi_region(true)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    md.key_id().to_string()
}

async fn replicate(kms: &aws_sdk_kms::Client, key: &str, region: &str) {
    kms.replicate_key()
        .key_id(key)
        .replica_region(region)
        .send()
        .await
        .unwrap();
}

async fn state(kms: &aws_sdk_kms::Client, key: &str) -> KeyState {
    kms.describe_key()
        .key_id(key)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_state
        .unwrap()
}

async fn encrypt(kms: &aws_sdk_kms::Client, key: &str, pt: &[u8]) -> Vec<u8> {
    kms.encrypt()
        .key_id(key)
        .plaintext(Blob::new(pt.to_vec()))
        .encryption_context("purpose", "mrk-test")
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap()
        .into_inner()
}

async fn decrypt(kms: &aws_sdk_kms::Client, key: Option<&str>, blob: &[u8]) -> Vec<u8> {
    kms.decrypt()
        .set_key_id(key.map(str::to_string))
        .ciphertext_blob(Blob::new(blob.to_vec()))
        .encryption_context("purpose", "mrk-test")
        .send()
        .await
        .unwrap()
        .plaintext
        .unwrap()
        .into_inner()
}

/// The key material version a blob was made with (docs/ciphertext-format.md).
fn material_version(blob: &[u8]) -> u32 {
    let n = blob[1] as usize;
    u32::from_be_bytes(blob[2 + n..6 + n].try_into().unwrap())
}

#[tokio::test]
async fn create_replicate_and_describe() {
    let srv = server(&[EAST, WEST, EU]).await;
    let (east, west) = (client(&srv, EAST), client(&srv, WEST));
    let md = east
        .create_key()
        .multi_region(true)
        .description("primary")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let id = md.key_id().to_string();
    assert!(id.starts_with("mrk-") && id.len() == 36, "{id}");
    assert_eq!(md.multi_region(), Some(true));
    assert_eq!(
        md.arn().unwrap(),
        format!("arn:aws:kms:us-east-1:111122223333:key/{id}")
    );
    let conf = md.multi_region_configuration().unwrap();
    assert_eq!(
        conf.multi_region_key_type(),
        Some(&MultiRegionKeyType::Primary)
    );
    assert_eq!(conf.primary_key().unwrap().region(), Some(EAST));
    assert!(conf.replica_keys().is_empty());

    let out = east
        .replicate_key()
        .key_id(&id)
        .replica_region(WEST)
        .description("replica")
        .tags(Tag::builder().tag_key("k").tag_value("v").build().unwrap())
        .send()
        .await
        .unwrap();
    let replica = out.replica_key_metadata().unwrap();
    assert_eq!(replica.key_id(), id);
    let west_arn = format!("arn:aws:kms:us-west-2:111122223333:key/{id}");
    assert_eq!(replica.arn(), Some(west_arn.as_str()));
    assert_eq!(replica.key_state(), Some(&KeyState::Creating));
    assert_eq!(replica.description(), Some("replica"));
    assert!(out.replica_policy().unwrap().contains("kms:*"));
    assert_eq!(out.replica_tags().len(), 1);

    // The replica in its region: enabled, REPLICA, the same configuration as the primary's.
    let md = west
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.key_state(), Some(&KeyState::Enabled));
    assert_eq!(md.arn(), Some(west_arn.as_str()));
    let conf = md.multi_region_configuration().unwrap();
    assert_eq!(
        conf.multi_region_key_type(),
        Some(&MultiRegionKeyType::Replica)
    );
    assert_eq!(conf.primary_key().unwrap().region(), Some(EAST));
    assert_eq!(conf.replica_keys().len(), 1);
    assert_eq!(conf.replica_keys()[0].arn(), Some(west_arn.as_str()));
    let conf = east
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .multi_region_configuration
        .unwrap();
    assert_eq!(conf.replica_keys().len(), 1);
    assert_eq!(conf.replica_keys()[0].region(), Some(WEST));

    // Each region lists its own key; a region without a replica has none.
    for (c, n) in [(&east, 1), (&west, 1), (&client(&srv, EU), 0)] {
        let keys = c.list_keys().send().await.unwrap().keys.unwrap_or_default();
        assert_eq!(
            keys.iter().filter(|k| k.key_id() == Some(&id)).count(),
            n,
            "{keys:?}"
        );
    }
    let (code, msg) = common::fail(client(&srv, EU).describe_key().key_id(&id).send().await);
    assert_eq!(code, "NotFoundException");
    assert_eq!(
        msg,
        format!("Key 'arn:aws:kms:eu-west-1:111122223333:key/{id}' does not exist")
    );

    // Replicating again, to the primary's region, from a replica, a single-Region key, or to a
    // region not served: refused.
    let (code, _) = common::fail(
        east.replicate_key()
            .key_id(&id)
            .replica_region(WEST)
            .send()
            .await,
    );
    assert_eq!(code, "AlreadyExistsException");
    let (code, _) = common::fail(
        east.replicate_key()
            .key_id(&id)
            .replica_region(EAST)
            .send()
            .await,
    );
    assert_eq!(code, "AlreadyExistsException");
    let (code, msg) = common::fail(
        west.replicate_key()
            .key_id(&id)
            .replica_region(EU)
            .send()
            .await,
    );
    assert_eq!(code, "UnsupportedOperationException");
    assert_eq!(
        msg,
        format!("{west_arn} is not a multi-region primary key.")
    );
    let single = east
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(single.multi_region(), Some(false));
    assert!(single.multi_region_configuration().is_none());
    let (code, msg) = common::fail(
        east.replicate_key()
            .key_id(single.key_id())
            .replica_region(WEST)
            .send()
            .await,
    );
    assert_eq!(code, "UnsupportedOperationException");
    assert!(msg.contains("is not a multi-region key."), "{msg}");
    let (code, _) = common::fail(
        east.replicate_key()
            .key_id(&id)
            .replica_region("ap-south-1")
            .send()
            .await,
    );
    assert_eq!(code, "UnsupportedOperationException");
    let (code, msg) = common::fail(
        east.replicate_key()
            .key_id(&id)
            .replica_region("nowhere")
            .send()
            .await,
    );
    assert_eq!(code, "ValidationException");
    assert!(msg.contains("replicaRegion"), "{msg}");
    // A disabled primary cannot be replicated.
    east.disable_key().key_id(&id).send().await.unwrap();
    let (code, _) = common::fail(
        east.replicate_key()
            .key_id(&id)
            .replica_region(EU)
            .send()
            .await,
    );
    assert_eq!(code, "DisabledException");

    // The audit records: ReplicateKey in the primary's region, CreateKey in the replica's.
    let records = srv.audit_records().await;
    let rec = |name: &str, region: &str| {
        records
            .iter()
            .any(|r| r["eventName"] == name && r["awsRegion"] == region && r["errorCode"].is_null())
    };
    assert!(rec("ReplicateKey", EAST));
    assert!(rec("CreateKey", WEST));
}

#[tokio::test]
async fn every_key_type_replicates_and_works_across_regions() {
    let srv = server(&[EAST, WEST]).await;
    let (east, west) = (client(&srv, EAST), client(&srv, WEST));
    // Signing: a signature made in one region verifies in the other; same public key.
    for (spec, alg) in [
        (KeySpec::Rsa2048, SigningAlgorithmSpec::RsassaPssSha256),
        (KeySpec::EccNistP256, SigningAlgorithmSpec::EcdsaSha256),
    ] {
        let id = east
            .create_key()
            .multi_region(true)
            .key_spec(spec.clone())
            .key_usage(KeyUsageType::SignVerify)
            .send()
            .await
            .unwrap()
            .key_metadata
            .unwrap()
            .key_id()
            .to_string();
        replicate(&east, &id, WEST).await;
        let pk = |c: aws_sdk_kms::Client| {
            let id = id.clone();
            async move {
                c.get_public_key()
                    .key_id(&id)
                    .send()
                    .await
                    .unwrap()
                    .public_key
                    .unwrap()
                    .into_inner()
            }
        };
        assert_eq!(pk(east.clone()).await, pk(west.clone()).await, "{spec:?}");
        let sig = west
            .sign()
            .key_id(&id)
            .message(Blob::new(b"message".to_vec()))
            .signing_algorithm(alg.clone())
            .send()
            .await
            .unwrap()
            .signature
            .unwrap();
        let ok = east
            .verify()
            .key_id(&id)
            .message(Blob::new(b"message".to_vec()))
            .signature(sig)
            .signing_algorithm(alg)
            .send()
            .await
            .unwrap();
        assert!(ok.signature_valid(), "{spec:?}");
    }
    // HMAC: a MAC made in one region verifies in the other.
    let id = east
        .create_key()
        .multi_region(true)
        .key_spec(KeySpec::Hmac256)
        .key_usage(KeyUsageType::GenerateVerifyMac)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id()
        .to_string();
    replicate(&east, &id, WEST).await;
    let mac = east
        .generate_mac()
        .key_id(&id)
        .message(Blob::new(b"m".to_vec()))
        .mac_algorithm(MacAlgorithmSpec::HmacSha256)
        .send()
        .await
        .unwrap()
        .mac
        .unwrap();
    let ok = west
        .verify_mac()
        .key_id(&id)
        .message(Blob::new(b"m".to_vec()))
        .mac(mac)
        .mac_algorithm(MacAlgorithmSpec::HmacSha256)
        .send()
        .await
        .unwrap();
    assert!(ok.mac_valid());
}

#[tokio::test]
async fn ciphertexts_decrypt_in_every_related_region() {
    let srv = server(&[EAST, WEST]).await;
    let (east, west) = (client(&srv, EAST), client(&srv, WEST));
    let id = mrk(&east).await;
    // Made before the replica existed.
    let before = encrypt(&east, &id, b"before").await;
    replicate(&east, &id, WEST).await;
    assert_eq!(decrypt(&west, None, &before).await, b"before");
    assert_eq!(decrypt(&west, Some(&id), &before).await, b"before");
    let west_arn = format!("arn:aws:kms:us-west-2:111122223333:key/{id}");
    assert_eq!(decrypt(&west, Some(&west_arn), &before).await, b"before");
    // And the other way round.
    let from_west = encrypt(&west, &id, b"from west").await;
    assert_eq!(decrypt(&east, None, &from_west).await, b"from west");
    // An ARN of another region is not a key of this one.
    let east_arn = format!("arn:aws:kms:us-east-1:111122223333:key/{id}");
    let (code, msg) = common::fail(
        west.decrypt()
            .key_id(&east_arn)
            .ciphertext_blob(Blob::new(before.clone()))
            .encryption_context("purpose", "mrk-test")
            .send()
            .await,
    );
    assert_eq!(
        (code.as_str(), msg.as_str()),
        ("NotFoundException", "Invalid arn us-east-1")
    );
    // A different multi-Region key is the wrong key for the blob.
    let other = mrk(&west).await;
    let (code, _) = common::fail(
        west.decrypt()
            .key_id(&other)
            .ciphertext_blob(Blob::new(before))
            .encryption_context("purpose", "mrk-test")
            .send()
            .await,
    );
    assert_eq!(code, "IncorrectKeyException");
}

#[tokio::test]
async fn rotation_is_shared_and_belongs_to_the_primary() {
    let srv = server(&[EAST, WEST]).await;
    let (east, west) = (client(&srv, EAST), client(&srv, WEST));
    let id = mrk(&east).await;
    east.rotate_key_on_demand()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    // The replica receives every version, the rotated one included.
    replicate(&east, &id, WEST).await;
    let rotations = |c: aws_sdk_kms::Client| {
        let id = id.clone();
        async move {
            c.list_key_rotations()
                .key_id(&id)
                .send()
                .await
                .unwrap()
                .rotations
                .unwrap_or_default()
                .len()
        }
    };
    assert_eq!(rotations(west.clone()).await, 1);
    let v2 = encrypt(&west, &id, b"v2").await;
    assert_eq!(material_version(&v2), 2);
    // A rotation of the primary reaches the replica.
    east.rotate_key_on_demand()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(rotations(west.clone()).await, 2);
    let v3 = encrypt(&east, &id, b"v3").await;
    assert_eq!(material_version(&v3), 3);
    assert_eq!(decrypt(&west, None, &v3).await, b"v3");
    assert_eq!(material_version(&encrypt(&west, &id, b"x").await), 3);
    assert_eq!(decrypt(&east, None, &v2).await, b"v2");
    // The replica cannot be rotated or have its rotation settings changed.
    let (code, msg) = common::fail(west.rotate_key_on_demand().key_id(&id).send().await);
    assert_eq!(code, "UnsupportedOperationException");
    assert!(msg.contains("replica"), "{msg}");
    let (code, _) = common::fail(west.enable_key_rotation().key_id(&id).send().await);
    assert_eq!(code, "UnsupportedOperationException");
    let (code, _) = common::fail(west.disable_key_rotation().key_id(&id).send().await);
    assert_eq!(code, "UnsupportedOperationException");
    // Automatic rotation set on the primary shows on the replica, and the scheduled rotation
    // gives both the new version.
    east.enable_key_rotation()
        .key_id(&id)
        .rotation_period_in_days(90)
        .send()
        .await
        .unwrap();
    let status = west
        .get_key_rotation_status()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert!(status.key_rotation_enabled());
    assert_eq!(status.rotation_period_in_days(), Some(90));
    srv.clock.advance(chrono::Duration::days(91));
    let report = srv.run_maintenance().await;
    assert_eq!(report.rotated, 1, "only the primary rotates on its own");
    assert_eq!(rotations(west.clone()).await, 3);
    let v4 = encrypt(&west, &id, b"v4").await;
    assert_eq!(material_version(&v4), 4);
    assert_eq!(decrypt(&east, None, &v4).await, b"v4");
}

#[tokio::test]
async fn policies_aliases_tags_and_state_are_per_region() {
    let srv = server(&[EAST, WEST]).await;
    let (east, west) = (client(&srv, EAST), client(&srv, WEST));
    let id = mrk(&east).await;
    replicate(&east, &id, WEST).await;
    // Aliases: the same name in each region, each on its own regional key; one region's alias
    // is unknown in the other.
    east.create_alias()
        .alias_name("alias/shared")
        .target_key_id(&id)
        .send()
        .await
        .unwrap();
    let (code, msg) = common::fail(west.describe_key().key_id("alias/shared").send().await);
    assert_eq!(code, "NotFoundException");
    assert!(msg.contains("arn:aws:kms:us-west-2:"), "{msg}");
    west.create_alias()
        .alias_name("alias/shared")
        .target_key_id(&id)
        .send()
        .await
        .unwrap();
    let arn_of = |c: aws_sdk_kms::Client| async move {
        c.describe_key()
            .key_id("alias/shared")
            .send()
            .await
            .unwrap()
            .key_metadata
            .unwrap()
            .arn
            .unwrap()
    };
    assert!(arn_of(east.clone()).await.contains(":us-east-1:"));
    assert!(arn_of(west.clone()).await.contains(":us-west-2:"));
    let aliases = west.list_aliases().send().await.unwrap();
    let shared: Vec<_> = aliases
        .aliases()
        .iter()
        .filter(|a| a.alias_name() == Some("alias/shared"))
        .collect();
    assert_eq!(shared.len(), 1);
    assert_eq!(
        shared[0].alias_arn(),
        Some("arn:aws:kms:us-west-2:111122223333:alias/shared")
    );
    assert_eq!(shared[0].target_key_id(), Some(id.as_str()));
    // Tags.
    west.tag_resource()
        .key_id(&id)
        .tags(
            Tag::builder()
                .tag_key("where")
                .tag_value("west")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let tags = east.list_resource_tags().key_id(&id).send().await.unwrap();
    assert!(tags.tags().is_empty());
    // Policies.
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Sid":"root","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},{"Sid":"west","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:ReEncryptFrom","Resource":"*"}]}"#;
    west.put_key_policy()
        .key_id(&id)
        .policy(policy)
        .send()
        .await
        .unwrap();
    let get = |c: aws_sdk_kms::Client| {
        let id = id.clone();
        async move {
            c.get_key_policy()
                .key_id(&id)
                .send()
                .await
                .unwrap()
                .policy
                .unwrap()
        }
    };
    assert!(get(west.clone()).await.contains("\"Sid\":\"west\""));
    assert!(!get(east.clone()).await.contains("\"Sid\":\"west\""));
    // State: disabling the replica leaves the primary usable.
    west.disable_key().key_id(&id).send().await.unwrap();
    assert_eq!(state(&west, &id).await, KeyState::Disabled);
    assert_eq!(state(&east, &id).await, KeyState::Enabled);
    let (code, _) = common::fail(
        west.encrypt()
            .key_id(&id)
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
            .await,
    );
    assert_eq!(code, "DisabledException");
    encrypt(&east, &id, b"x").await;
    // Descriptions.
    east.update_key_description()
        .key_id(&id)
        .description("east only")
        .send()
        .await
        .unwrap();
    let d = west
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(d.description(), Some(""));
}

#[tokio::test]
async fn update_primary_region_moves_the_primary() {
    let srv = server(&[EAST, WEST, EU]).await;
    let (east, west) = (client(&srv, EAST), client(&srv, WEST));
    let id = mrk(&east).await;
    // No replica there yet: NotFound; not served: refused.
    let (code, msg) = common::fail(
        east.update_primary_region()
            .key_id(&id)
            .primary_region(WEST)
            .send()
            .await,
    );
    assert_eq!(code, "NotFoundException");
    assert!(msg.contains(&format!("arn:aws:kms:us-west-2:111122223333:key/{id}")));
    let (code, _) = common::fail(
        east.update_primary_region()
            .key_id(&id)
            .primary_region("ap-south-1")
            .send()
            .await,
    );
    assert_eq!(code, "UnsupportedOperationException");
    replicate(&east, &id, WEST).await;
    replicate(&east, &id, EU).await;
    // Only the current primary can move it.
    let (code, _) = common::fail(
        west.update_primary_region()
            .key_id(&id)
            .primary_region(WEST)
            .send()
            .await,
    );
    assert_eq!(code, "UnsupportedOperationException");
    // Both keys must be enabled.
    west.disable_key().key_id(&id).send().await.unwrap();
    let (code, _) = common::fail(
        east.update_primary_region()
            .key_id(&id)
            .primary_region(WEST)
            .send()
            .await,
    );
    assert_eq!(code, "DisabledException");
    west.enable_key().key_id(&id).send().await.unwrap();
    east.update_primary_region()
        .key_id(&id)
        .primary_region(WEST)
        .send()
        .await
        .unwrap();
    for (c, kind) in [
        (&east, MultiRegionKeyType::Replica),
        (&west, MultiRegionKeyType::Primary),
        (&client(&srv, EU), MultiRegionKeyType::Replica),
    ] {
        let conf = c
            .describe_key()
            .key_id(&id)
            .send()
            .await
            .unwrap()
            .key_metadata
            .unwrap()
            .multi_region_configuration
            .unwrap();
        assert_eq!(conf.multi_region_key_type(), Some(&kind));
        assert_eq!(conf.primary_key().unwrap().region(), Some(WEST));
        let mut replicas: Vec<_> = conf
            .replica_keys()
            .iter()
            .map(|r| r.region().unwrap().to_string())
            .collect();
        replicas.sort();
        assert_eq!(replicas, vec![EU.to_string(), EAST.to_string()]);
    }
    // The new primary rotates (and its replicas follow); the old one no longer can.
    let (code, _) = common::fail(east.rotate_key_on_demand().key_id(&id).send().await);
    assert_eq!(code, "UnsupportedOperationException");
    west.rotate_key_on_demand()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    let blob = encrypt(&west, &id, b"after move").await;
    assert_eq!(material_version(&blob), 2);
    assert_eq!(decrypt(&east, None, &blob).await, b"after move");
    assert_eq!(decrypt(&client(&srv, EU), None, &blob).await, b"after move");
}

#[tokio::test]
async fn a_primary_waits_for_its_replicas_to_be_deleted() {
    let srv = server(&[EAST, WEST]).await;
    let (east, west) = (client(&srv, EAST), client(&srv, WEST));
    let id = mrk(&east).await;
    replicate(&east, &id, WEST).await;
    let out = east
        .schedule_key_deletion()
        .key_id(&id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    assert_eq!(out.key_state(), Some(&KeyState::PendingReplicaDeletion));
    assert!(out.deletion_date().is_none());
    assert_eq!(out.pending_window_in_days(), Some(7));
    let md = east
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.key_state(), Some(&KeyState::PendingReplicaDeletion));
    assert!(md.deletion_date().is_none());
    let (code, _) = common::fail(
        east.encrypt()
            .key_id(&id)
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
            .await,
    );
    assert_eq!(code, "KMSInvalidStateException");
    // The PendingDeletion column of the key-state table covers PendingReplicaDeletion too
    // (footnotes [3], [4]): what changes the key fails, reads work, CancelKeyDeletion is below.
    let pending = (
        "KMSInvalidStateException".to_string(),
        format!("arn:aws:kms:{EAST}:111122223333:key/{id} is pending deletion."),
    );
    let tag = Tag::builder().tag_key("k").tag_value("v").build().unwrap();
    for (name, got) in [
        (
            "EnableKey",
            common::fail(east.enable_key().key_id(&id).send().await),
        ),
        (
            "DisableKey",
            common::fail(east.disable_key().key_id(&id).send().await),
        ),
        (
            "ScheduleKeyDeletion",
            common::fail(east.schedule_key_deletion().key_id(&id).send().await),
        ),
        (
            "UpdateKeyDescription",
            common::fail(
                east.update_key_description()
                    .key_id(&id)
                    .description("d")
                    .send()
                    .await,
            ),
        ),
        (
            "TagResource",
            common::fail(east.tag_resource().key_id(&id).tags(tag).send().await),
        ),
        (
            "CreateAlias",
            common::fail(
                east.create_alias()
                    .alias_name("alias/waiting")
                    .target_key_id(&id)
                    .send()
                    .await,
            ),
        ),
        (
            "EnableKeyRotation",
            common::fail(east.enable_key_rotation().key_id(&id).send().await),
        ),
        (
            "UpdatePrimaryRegion",
            common::fail(
                east.update_primary_region()
                    .key_id(&id)
                    .primary_region(WEST)
                    .send()
                    .await,
            ),
        ),
        (
            "GenerateDataKey",
            common::fail(
                east.generate_data_key()
                    .key_id(&id)
                    .number_of_bytes(16)
                    .send()
                    .await,
            ),
        ),
    ] {
        assert_eq!(got, pending, "{name}");
    }
    // UpdateAlias may not point an alias at it ([10]).
    let other = mrk(&east).await;
    east.create_alias()
        .alias_name("alias/elsewhere")
        .target_key_id(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(
        common::fail(
            east.update_alias()
                .alias_name("alias/elsewhere")
                .target_key_id(&id)
                .send()
                .await
        ),
        pending,
        "UpdateAlias"
    );
    east.get_key_policy().key_id(&id).send().await.unwrap();
    east.list_resource_tags().key_id(&id).send().await.unwrap();
    let status = east
        .get_key_rotation_status()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert!(!status.key_rotation_enabled());
    // Time passes: nothing happens to a primary waiting for its replicas.
    srv.clock.advance(chrono::Duration::days(30));
    assert_eq!(srv.run_maintenance().await.deleted, 0);
    assert_eq!(state(&east, &id).await, KeyState::PendingReplicaDeletion);
    // The replica goes like any key; then the primary's own window starts.
    let r = west
        .schedule_key_deletion()
        .key_id(&id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    assert_eq!(r.key_state(), Some(&KeyState::PendingDeletion));
    srv.clock.advance(chrono::Duration::days(8));
    assert_eq!(srv.run_maintenance().await.deleted, 1);
    let (code, _) = common::fail(west.describe_key().key_id(&id).send().await);
    assert_eq!(code, "NotFoundException");
    let md = east
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.key_state(), Some(&KeyState::PendingDeletion));
    assert!(md
        .multi_region_configuration()
        .unwrap()
        .replica_keys()
        .is_empty());
    let now = {
        use kms::service::clock::Clock;
        srv.clock.now().timestamp()
    };
    assert_eq!(md.deletion_date().unwrap().secs(), now + 7 * DAY);
    srv.clock.advance(chrono::Duration::days(8));
    assert_eq!(srv.run_maintenance().await.deleted, 1);
    let (code, _) = common::fail(east.describe_key().key_id(&id).send().await);
    assert_eq!(code, "NotFoundException");

    // ReplicateKey of a primary pending deletion: refused ([3]).
    let lonely = mrk(&east).await;
    east.schedule_key_deletion()
        .key_id(&lonely)
        .send()
        .await
        .unwrap();
    assert_eq!(
        common::fail(
            east.replicate_key()
                .key_id(&lonely)
                .replica_region(WEST)
                .send()
                .await
        ),
        (
            "KMSInvalidStateException".to_string(),
            format!("arn:aws:kms:{EAST}:111122223333:key/{lonely} is pending deletion.")
        )
    );

    // CancelKeyDeletion brings a waiting primary back as Disabled.
    let id = mrk(&east).await;
    replicate(&east, &id, WEST).await;
    east.schedule_key_deletion()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    east.cancel_key_deletion().key_id(&id).send().await.unwrap();
    assert_eq!(state(&east, &id).await, KeyState::Disabled);
}

#[tokio::test]
async fn a_region_not_served_is_refused() {
    let srv = server(&[EAST, WEST]).await;
    let (code, msg) = common::fail(client(&srv, "eu-central-1").list_keys().send().await);
    assert_eq!(code, "InvalidSignatureException", "{msg}");
    // A served region works; an ARN naming an unserved region is NotFound.
    let east = client(&srv, EAST);
    let id = mrk(&east).await;
    let arn = format!("arn:aws:kms:eu-central-1:111122223333:key/{id}");
    let (code, msg) = common::fail(east.describe_key().key_id(&arn).send().await);
    assert_eq!(
        (code.as_str(), msg.as_str()),
        ("NotFoundException", "Invalid arn eu-central-1")
    );
    // A single-Region key of one region is not found in another.
    let single = east
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let (code, _) = common::fail(
        client(&srv, WEST)
            .describe_key()
            .key_id(single.key_id())
            .send()
            .await,
    );
    assert_eq!(code, "NotFoundException");
    // A well-formed mrk id that names no key.
    let (code, msg) = common::fail(
        east.describe_key()
            .key_id("mrk-0123456789abcdef0123456789abcdef")
            .send()
            .await,
    );
    assert_eq!(code, "NotFoundException");
    assert_eq!(
        msg,
        "Key 'arn:aws:kms:us-east-1:111122223333:key/mrk-0123456789abcdef0123456789abcdef' does not exist"
    );
}

#[tokio::test]
async fn replicate_and_update_primary_are_authorized_on_each_key() {
    let srv = server(&[EAST, WEST, EU]).await;
    let (east, west) = (client(&srv, EAST), client(&srv, WEST));
    let deny = |action: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"root","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::111122223333:root"}},"Action":"kms:*","Resource":"*"}},{{"Sid":"deny","Effect":"Deny","Principal":{{"AWS":"arn:aws:iam::111122223333:user/alice"}},"Action":"{action}","Resource":"*","Condition":{{"StringEquals":{{"kms:ReplicaRegion":"eu-west-1"}}}}}}]}}"#
        )
    };
    let id = mrk(&east).await;
    // kms:ReplicateKey on the primary, with kms:ReplicaRegion.
    east.put_key_policy()
        .key_id(&id)
        .policy(deny("kms:ReplicateKey"))
        .bypass_policy_lockout_safety_check(true)
        .send()
        .await
        .unwrap();
    let (code, msg) = common::fail(
        east.replicate_key()
            .key_id(&id)
            .replica_region(EU)
            .send()
            .await,
    );
    assert_eq!(code, "AccessDeniedException");
    assert!(msg.contains("kms:ReplicateKey"), "{msg}");
    replicate(&east, &id, WEST).await;
    // kms:UpdatePrimaryRegion on the key that becomes primary too.
    let deny_update = deny("kms:UpdatePrimaryRegion").replace(
        r#","Condition":{"StringEquals":{"kms:ReplicaRegion":"eu-west-1"}}"#,
        "",
    );
    west.put_key_policy()
        .key_id(&id)
        .policy(deny_update)
        .bypass_policy_lockout_safety_check(true)
        .send()
        .await
        .unwrap();
    let (code, msg) = common::fail(
        east.update_primary_region()
            .key_id(&id)
            .primary_region(WEST)
            .send()
            .await,
    );
    assert_eq!(code, "AccessDeniedException");
    assert!(msg.contains("kms:UpdatePrimaryRegion"), "{msg}");
    let conf = west
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .multi_region_configuration
        .unwrap();
    assert_eq!(conf.primary_key().unwrap().region(), Some(EAST));
}

/// ReplicateKey needs `kms:CreateKey` in the caller's identity policies for the replica
/// region (`aws:RequestedRegion` is the replica's there).
#[tokio::test]
async fn replicate_key_needs_create_key_in_the_replica_region() {
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"StringEquals":{"aws:RequestedRegion":["us-east-1","eu-west-1"]}}}]}"#;
    let extra = format!(
        "[[users]]\narn = 'arn:aws:iam::111122223333:user/rita'\npolicies = ['''{policy}''']\n\
         [[credentials]]\naccess_key_id = 'AKIARITAREGIONS00001'\n\
         secret_access_key = 'rita-secret-00000000000000000000000000'\n\
         principal = 'arn:aws:iam::111122223333:user/rita'\n"
    );
    let mut env = common::backend_env();
    env.push((
        "KMS_SERVER__REGIONS".into(),
        format!(r#"["{EAST}", "{WEST}", "{EU}"]"#),
    ));
    let srv = common::TestServer::start_with_config(&extra, env).await;
    let rita = |region: &str| {
        common::sdk_client_in(
            &srv.endpoint,
            "AKIARITAREGIONS00001",
            "rita-secret-00000000000000000000000000",
            region,
        )
    };
    let east = rita(EAST);
    let id = mrk(&east).await;
    let (code, msg) = common::fail(
        east.replicate_key()
            .key_id(&id)
            .replica_region(WEST)
            .send()
            .await,
    );
    assert_eq!(code, "AccessDeniedException");
    assert!(msg.contains("kms:CreateKey"), "{msg}");
    replicate(&east, &id, EU).await;
    assert_eq!(state(&rita(EU), &id).await, KeyState::Enabled);
}

/// A replica of an imported (`EXTERNAL`) multi-Region key starts without material
/// (`PendingImport`), as in AWS: the same material must be imported into it, other material is
/// refused, and then the primary's ciphertexts decrypt in the replica's region.
#[tokio::test]
async fn a_replica_of_an_imported_key_needs_the_same_material() {
    use aws_sdk_kms::types::{AlgorithmSpec, KeyState, OriginType, WrappingKeySpec};
    use common::openssl_import::make_material;
    let srv = server(&[EAST, WEST]).await;
    let (east, west) = (client(&srv, EAST), client(&srv, WEST));
    let dir = tempfile::tempdir().unwrap();
    async fn import(
        kms: &aws_sdk_kms::Client,
        dir: &std::path::Path,
        key: &str,
        material: &[u8],
    ) -> Result<String, (String, String)> {
        common::openssl_import::import_with_sdk(
            kms,
            dir,
            key,
            AlgorithmSpec::RsaesOaepSha1,
            WrappingKeySpec::Rsa2048,
            material,
        )
        .await
    }
    let key = east
        .create_key()
        .multi_region(true)
        .origin(OriginType::External)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id()
        .to_string();
    let material = make_material(dir.path(), "SYMMETRIC_DEFAULT");
    import(&east, dir.path(), &key, &material).await.unwrap();
    let blob = east
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"imported".to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    replicate(&east, &key, WEST).await;
    let md = west.describe_key().key_id(&key).send().await.unwrap();
    let md = md.key_metadata.unwrap();
    assert_eq!(md.key_state(), Some(&KeyState::PendingImport));
    assert_eq!(md.origin(), Some(&OriginType::External));
    let (code, _) = common::fail(west.decrypt().ciphertext_blob(blob.clone()).send().await);
    assert_eq!(code, "KMSInvalidStateException");
    // Other material is refused; the primary's material makes the replica usable.
    let other = make_material(dir.path(), "SYMMETRIC_DEFAULT");
    assert_ne!(other, material);
    let (code, _) = import(&west, dir.path(), &key, &other).await.unwrap_err();
    assert_eq!(code, "IncorrectKeyMaterialException");
    import(&west, dir.path(), &key, &material).await.unwrap();
    let md = west.describe_key().key_id(&key).send().await.unwrap();
    assert_eq!(
        md.key_metadata.unwrap().key_state(),
        Some(&KeyState::Enabled)
    );
    let pt = west.decrypt().ciphertext_blob(blob).send().await.unwrap();
    assert_eq!(pt.plaintext.unwrap().into_inner(), b"imported");
}

/// DescribeKey of a multi-Region key reads nothing from the store once its rows are cached:
/// its replicas' rows, and for the regions without one, that they have none; a ReplicateKey
/// shows at once (on PostgreSQL the cache is in force once the change listener is up: polled).
#[tokio::test]
async fn describe_key_of_a_cached_multi_region_key_makes_no_store_call() {
    let srv = server(&[EAST, WEST, EU]).await;
    let (east, west) = (client(&srv, EAST), client(&srv, WEST));
    let id = mrk(&east).await;
    let md = common::describe_from_cache(&srv, &east, &id).await;
    let conf = md.multi_region_configuration().unwrap();
    assert_eq!(conf.primary_key().unwrap().region(), Some(EAST));
    assert!(conf.replica_keys().is_empty());
    replicate(&east, &id, WEST).await;
    let (md, _) = common::describe_counting(&srv, &east, &id).await;
    let conf = md.multi_region_configuration().unwrap();
    assert_eq!(conf.replica_keys().len(), 1);
    assert_eq!(conf.replica_keys()[0].region(), Some(WEST));
    for kms in [&east, &west] {
        let md = common::describe_from_cache(&srv, kms, &id).await;
        let conf = md.multi_region_configuration().unwrap();
        assert_eq!(conf.primary_key().unwrap().region(), Some(EAST));
        assert_eq!(conf.replica_keys().len(), 1);
    }
}
