//! Key rotation through the real `aws-sdk-kms` client: Enable/Disable/GetKeyRotationStatus with
//! rotation periods, RotateKeyOnDemand and its quota, ListKeyRotations, scheduled rotation by
//! the maintenance pass, and rotation status while a key is pending deletion.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeyState, RotationType};

const DAY: f64 = 86_400.0;

fn now_secs(srv: &common::TestServer) -> f64 {
    use kms::service::clock::Clock;
    srv.clock.now().timestamp_millis() as f64 / 1000.0
}

async fn encrypt(kms: &aws_sdk_kms::Client, key: &str, pt: &[u8]) -> Vec<u8> {
    kms.encrypt()
        .key_id(key)
        .plaintext(Blob::new(pt.to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap()
        .into_inner()
}

async fn decrypt(kms: &aws_sdk_kms::Client, blob: &[u8]) -> Vec<u8> {
    kms.decrypt()
        .ciphertext_blob(Blob::new(blob.to_vec()))
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

async fn rotations(kms: &aws_sdk_kms::Client, key: &str) -> Vec<(RotationType, f64)> {
    let out = kms.list_key_rotations().key_id(key).send().await.unwrap();
    assert!(!out.truncated());
    out.rotations()
        .iter()
        .map(|r| {
            (
                r.rotation_type().unwrap().clone(),
                r.rotation_date().unwrap().as_secs_f64(),
            )
        })
        .collect()
}

#[tokio::test]
async fn rotation_status_and_periods() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, arn) = common::new_key(&kms).await;

    // Disabled by default.
    let s = kms
        .get_key_rotation_status()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert!(!s.key_rotation_enabled());
    assert_eq!(s.key_id(), Some(arn.as_str()));
    assert!(s.rotation_period_in_days().is_none());
    assert!(s.next_rotation_date().is_none());

    // Default period: 365 days.
    let now = now_secs(&srv);
    kms.enable_key_rotation().key_id(&id).send().await.unwrap();
    let s = kms
        .get_key_rotation_status()
        .key_id(&arn)
        .send()
        .await
        .unwrap();
    assert!(s.key_rotation_enabled());
    assert_eq!(s.rotation_period_in_days(), Some(365));
    let next = s.next_rotation_date().unwrap().as_secs_f64();
    assert!((next - (now + 365.0 * DAY)).abs() < 5.0, "{next} vs {now}");

    // Both ends of 90..2560; re-enabling changes the period.
    for days in [90, 2560] {
        kms.enable_key_rotation()
            .key_id(&arn)
            .rotation_period_in_days(days)
            .send()
            .await
            .unwrap();
        let s = kms
            .get_key_rotation_status()
            .key_id(&id)
            .send()
            .await
            .unwrap();
        assert!(s.key_rotation_enabled());
        assert_eq!(s.rotation_period_in_days(), Some(days));
        let next = s.next_rotation_date().unwrap().as_secs_f64();
        assert!((next - (now + days as f64 * DAY)).abs() < 5.0);
    }

    // Out of range.
    let (c, m) = common::fail(
        kms.enable_key_rotation()
            .key_id(&id)
            .rotation_period_in_days(89)
            .send()
            .await,
    );
    assert_eq!(c, "ValidationException");
    assert_eq!(
        m,
        "1 validation error detected: Value '89' at 'rotationPeriodInDays' failed to satisfy \
         constraint: Member must have value greater than or equal to 90"
    );
    let (c, m) = common::fail(
        kms.enable_key_rotation()
            .key_id(&id)
            .rotation_period_in_days(2561)
            .send()
            .await,
    );
    assert_eq!(c, "ValidationException");
    assert_eq!(
        m,
        "1 validation error detected: Value '2561' at 'rotationPeriodInDays' failed to satisfy \
         constraint: Member must have value less than or equal to 2560"
    );
    // The failed calls changed nothing.
    let s = kms
        .get_key_rotation_status()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(s.rotation_period_in_days(), Some(2560));

    // Disable.
    kms.disable_key_rotation().key_id(&id).send().await.unwrap();
    let s = kms
        .get_key_rotation_status()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert!(!s.key_rotation_enabled());
    assert!(s.rotation_period_in_days().is_none());
    assert!(s.next_rotation_date().is_none());
    // Disabling again is fine.
    kms.disable_key_rotation()
        .key_id(&arn)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn rotate_on_demand_keeps_old_ciphertexts_working() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, arn) = common::new_key(&kms).await;
    let policy_before = kms
        .get_key_policy()
        .key_id(&id)
        .policy_name("default")
        .send()
        .await
        .unwrap()
        .policy
        .unwrap();
    let old = encrypt(&kms, &id, b"before").await;
    assert_eq!(material_version(&old), 1);
    assert!(rotations(&kms, &id).await.is_empty());

    let out = kms.rotate_key_on_demand().key_id(&id).send().await.unwrap();
    assert_eq!(out.key_id(), Some(arn.as_str()));

    let new = encrypt(&kms, &id, b"after").await;
    assert_eq!(
        material_version(&new),
        2,
        "new encryptions use the new material"
    );
    assert_eq!(decrypt(&kms, &old).await, b"before");
    assert_eq!(decrypt(&kms, &new).await, b"after");

    // Identity, state and policy are unchanged; rotation does not enable automatic rotation.
    let md = kms
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.arn(), Some(arn.as_str()));
    assert_eq!(md.key_state(), Some(&KeyState::Enabled));
    let policy_after = kms
        .get_key_policy()
        .key_id(&id)
        .policy_name("default")
        .send()
        .await
        .unwrap()
        .policy
        .unwrap();
    assert_eq!(policy_after, policy_before);
    let s = kms
        .get_key_rotation_status()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert!(!s.key_rotation_enabled());

    let list = kms.list_key_rotations().key_id(&arn).send().await.unwrap();
    assert_eq!(list.rotations().len(), 1);
    let r = &list.rotations()[0];
    assert_eq!(r.rotation_type(), Some(&RotationType::OnDemand));
    assert_eq!(r.key_id(), Some(id.as_str()));
    assert!((r.rotation_date().unwrap().as_secs_f64() - now_secs(&srv)).abs() < 5.0);

    // Each rotation is audited as a RotateKey service event.
    let records = srv.audit_records().await;
    let rotates: Vec<_> = records
        .iter()
        .filter(|r| r["eventName"] == "RotateKey")
        .collect();
    assert_eq!(rotates.len(), 1);
    assert_eq!(rotates[0]["eventType"], "AwsServiceEvent");
    assert_eq!(rotates[0]["resources"][0]["ARN"], arn.as_str());
    assert_eq!(rotates[0]["responseElements"]["keyId"], arn.as_str());
    assert_eq!(rotates[0]["serviceEventDetails"]["keyId"], id.as_str());
    assert_eq!(rotates[0]["userIdentity"]["invokedBy"], "AWS Internal");
}

#[tokio::test]
async fn scheduled_rotation_by_maintenance() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, _) = common::new_key(&kms).await;
    let (idle, _) = common::new_key(&kms).await;
    let (off, _) = common::new_key(&kms).await;
    kms.enable_key_rotation().key_id(&id).send().await.unwrap();
    kms.enable_key_rotation().key_id(&off).send().await.unwrap();
    kms.disable_key().key_id(&off).send().await.unwrap();
    let v1 = encrypt(&kms, &id, b"year one").await;

    // Not due yet.
    srv.clock.advance(chrono::Duration::days(364));
    assert_eq!(srv.run_maintenance().await.rotated, 0);
    assert!(rotations(&kms, &id).await.is_empty());

    // Due: exactly one key rotates (not the one without rotation, nor the disabled one).
    srv.clock.advance(chrono::Duration::days(2));
    let report = srv.run_maintenance().await;
    assert_eq!(report.rotated, 1);
    assert_eq!(report.deleted, 0);
    let r = rotations(&kms, &id).await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, RotationType::Automatic);
    assert!((r[0].1 - now_secs(&srv)).abs() < 5.0);
    assert!(rotations(&kms, &idle).await.is_empty());
    assert!(rotations(&kms, &off).await.is_empty());

    // The next rotation is a period later; a second pass does nothing.
    let s = kms
        .get_key_rotation_status()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert!(s.key_rotation_enabled());
    let next = s.next_rotation_date().unwrap().as_secs_f64();
    assert!((next - (now_secs(&srv) + 365.0 * DAY)).abs() < 5.0);
    assert_eq!(srv.run_maintenance().await.rotated, 0);

    // The disabled key keeps its rotation setting, and rotates as soon as it is enabled
    // again, its date having passed.
    let s = kms
        .get_key_rotation_status()
        .key_id(&off)
        .send()
        .await
        .unwrap();
    assert!(s.key_rotation_enabled());
    assert_eq!(s.rotation_period_in_days(), Some(365));
    kms.enable_key().key_id(&off).send().await.unwrap();
    assert_eq!(srv.run_maintenance().await.rotated, 1);
    let r = rotations(&kms, &off).await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, RotationType::Automatic);

    // Old ciphertext decrypts; new encryptions use version 2.
    assert_eq!(decrypt(&kms, &v1).await, b"year one");
    let v2 = encrypt(&kms, &id, b"year two").await;
    assert_eq!(material_version(&v2), 2);
    assert_eq!(decrypt(&kms, &v2).await, b"year two");
}

#[tokio::test]
async fn list_key_rotations_lists_both_kinds_and_pages() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, _) = common::new_key(&kms).await;
    kms.enable_key_rotation()
        .key_id(&id)
        .rotation_period_in_days(90)
        .send()
        .await
        .unwrap();
    kms.rotate_key_on_demand().key_id(&id).send().await.unwrap();
    srv.clock.advance(chrono::Duration::days(91));
    assert_eq!(srv.run_maintenance().await.rotated, 1);
    srv.clock.advance(chrono::Duration::days(1));
    kms.rotate_key_on_demand().key_id(&id).send().await.unwrap();

    let r = rotations(&kms, &id).await;
    let kinds: Vec<RotationType> = r.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(
        kinds,
        vec![
            RotationType::OnDemand,
            RotationType::Automatic,
            RotationType::OnDemand
        ]
    );
    assert!(r[0].1 < r[1].1 && r[1].1 < r[2].1, "oldest first: {r:?}");

    // One per page.
    let mut marker: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let page = kms
            .list_key_rotations()
            .key_id(&id)
            .limit(1)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(page.rotations().len(), 1);
        seen.push(page.rotations()[0].rotation_type().unwrap().clone());
        if !page.truncated() {
            assert!(page.next_marker().is_none());
            break;
        }
        marker = Some(page.next_marker().unwrap().to_string());
    }
    assert_eq!(seen, kinds);

    let (c, _) = common::fail(kms.list_key_rotations().key_id(&id).limit(0).send().await);
    assert_eq!(c, "ValidationException");
    let (c, _) = common::fail(
        kms.list_key_rotations()
            .key_id(&id)
            .marker("not-a-marker")
            .send()
            .await,
    );
    assert_eq!(c, "InvalidMarkerException");
}

#[tokio::test]
async fn rotation_status_while_pending_deletion() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, arn) = common::new_key(&kms).await;
    kms.enable_key_rotation()
        .key_id(&id)
        .rotation_period_in_days(180)
        .send()
        .await
        .unwrap();
    kms.schedule_key_deletion()
        .key_id(&id)
        .pending_window_in_days(30)
        .send()
        .await
        .unwrap();

    let s = kms
        .get_key_rotation_status()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert!(
        !s.key_rotation_enabled(),
        "reported false while pending deletion"
    );
    assert!(s.rotation_period_in_days().is_none());
    let pending = (
        "KMSInvalidStateException".to_string(),
        format!("{arn} is pending deletion."),
    );
    assert_eq!(
        common::fail(kms.enable_key_rotation().key_id(&id).send().await),
        pending
    );
    assert_eq!(
        common::fail(kms.disable_key_rotation().key_id(&id).send().await),
        pending
    );

    kms.cancel_key_deletion().key_id(&id).send().await.unwrap();
    let s = kms
        .get_key_rotation_status()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert!(s.key_rotation_enabled(), "restored after CancelKeyDeletion");
    assert_eq!(s.rotation_period_in_days(), Some(180));

    // A key pending deletion is not rotated when its rotation date passes; after the
    // deletion is cancelled and the key enabled, the overdue rotation happens.
    kms.enable_key().key_id(&id).send().await.unwrap();
    srv.clock.advance(chrono::Duration::days(170));
    kms.schedule_key_deletion()
        .key_id(&id)
        .pending_window_in_days(30)
        .send()
        .await
        .unwrap();
    srv.clock.advance(chrono::Duration::days(20));
    assert_eq!(srv.run_maintenance().await, Default::default());
    kms.cancel_key_deletion().key_id(&id).send().await.unwrap();
    assert_eq!(srv.run_maintenance().await.rotated, 0, "still disabled");
    kms.enable_key().key_id(&id).send().await.unwrap();
    assert_eq!(srv.run_maintenance().await.rotated, 1);
    let r = rotations(&kms, &id).await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, RotationType::Automatic);

    // A key whose deletion window ends is deleted, never rotated.
    let (doomed, _) = common::new_key(&kms).await;
    kms.enable_key_rotation()
        .key_id(&doomed)
        .rotation_period_in_days(90)
        .send()
        .await
        .unwrap();
    kms.schedule_key_deletion()
        .key_id(&doomed)
        .pending_window_in_days(30)
        .send()
        .await
        .unwrap();
    srv.clock.advance(chrono::Duration::days(91));
    let report = srv.run_maintenance().await;
    assert_eq!(report.deleted, 1);
    assert_eq!(report.rotated, 0);
}

#[tokio::test]
async fn on_demand_rotation_limit_of_twenty_five() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, arn) = common::new_key(&kms).await;
    let mut blobs = vec![encrypt(&kms, &id, b"v1").await];
    for i in 0..25 {
        kms.rotate_key_on_demand().key_id(&id).send().await.unwrap();
        blobs.push(encrypt(&kms, &id, format!("v{}", i + 2).as_bytes()).await);
    }
    let (c, m) = common::fail(kms.rotate_key_on_demand().key_id(&id).send().await);
    assert_eq!(c, "LimitExceededException");
    // AWS's words (recorded AWS response, docs/errors.md).
    assert_eq!(
        m,
        format!(
            "The on-demand rotations limit has been reached for the given keyId. No more \
             on-demand rotations can be performed for this key: {arn}"
        )
    );

    // Every version still decrypts, each blob with its own material.
    for (i, blob) in blobs.iter().enumerate() {
        assert_eq!(material_version(blob), i as u32 + 1);
        assert_eq!(decrypt(&kms, blob).await, format!("v{}", i + 1).as_bytes());
    }
    let r = rotations(&kms, &id).await;
    assert_eq!(r.len(), 25);
    assert!(r.iter().all(|(k, _)| *k == RotationType::OnDemand));

    // Automatic rotation still works past the on-demand quota.
    kms.enable_key_rotation()
        .key_id(&id)
        .rotation_period_in_days(90)
        .send()
        .await
        .unwrap();
    srv.clock.advance(chrono::Duration::days(91));
    assert_eq!(srv.run_maintenance().await.rotated, 1);
    assert_eq!(rotations(&kms, &id).await.len(), 26);
    let latest = encrypt(&kms, &id, b"v27").await;
    assert_eq!(material_version(&latest), 27);
}

#[tokio::test]
async fn on_demand_rotation_keeps_the_automatic_schedule() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, _) = common::new_key(&kms).await;
    kms.enable_key_rotation()
        .key_id(&id)
        .rotation_period_in_days(100)
        .send()
        .await
        .unwrap();
    let before = kms
        .get_key_rotation_status()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    srv.clock.advance(chrono::Duration::days(10));
    kms.rotate_key_on_demand().key_id(&id).send().await.unwrap();
    let after = kms
        .get_key_rotation_status()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert!(after.key_rotation_enabled());
    assert_eq!(after.rotation_period_in_days(), Some(100));
    assert_eq!(after.next_rotation_date(), before.next_rotation_date());
    // The automatic rotation still comes on its original date.
    srv.clock.advance(chrono::Duration::days(89));
    assert_eq!(srv.run_maintenance().await.rotated, 0);
    srv.clock.advance(chrono::Duration::days(2));
    assert_eq!(srv.run_maintenance().await.rotated, 1);
    let kinds: Vec<RotationType> = rotations(&kms, &id)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(kinds, vec![RotationType::OnDemand, RotationType::Automatic]);
}
