//! Key lifecycle through the real `aws-sdk-kms` client: CreateKey defaults and validation,
//! DescribeKey by every identifier form, ListKeys paging, Enable/Disable, UpdateKeyDescription,
//! ScheduleKeyDeletion / CancelKeyDeletion, and background deletion at the end of the window.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::collections::BTreeSet;

#[allow(deprecated)]
use aws_sdk_kms::types::CustomerMasterKeySpec;
use aws_sdk_kms::types::{
    EncryptionAlgorithmSpec, KeyManagerType, KeySpec, KeyState, KeyUsageType, OriginType, Tag,
};

const ACCOUNT: &str = "111122223333";

fn now_secs(srv: &common::TestServer) -> f64 {
    use kms::service::clock::Clock;
    srv.clock.now().timestamp_millis() as f64 / 1000.0
}

fn key_arn(id: &str) -> String {
    format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/{id}")
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
        })
}

async fn state_of(kms: &aws_sdk_kms::Client, id: &str) -> KeyState {
    kms.describe_key()
        .key_id(id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_state()
        .unwrap()
        .clone()
}

#[tokio::test]
#[allow(deprecated)]
async fn create_key_defaults() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let before = now_secs(&srv);
    let md = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    assert!(is_uuid(md.key_id()), "key id {}", md.key_id());
    assert_eq!(md.arn(), Some(key_arn(md.key_id()).as_str()));
    assert_eq!(md.aws_account_id(), Some(ACCOUNT));
    assert!(md.enabled());
    assert_eq!(md.description(), Some(""));
    assert_eq!(md.key_usage(), Some(&KeyUsageType::EncryptDecrypt));
    assert_eq!(md.key_state(), Some(&KeyState::Enabled));
    assert_eq!(md.origin(), Some(&OriginType::AwsKms));
    assert_eq!(md.key_manager(), Some(&KeyManagerType::Customer));
    assert_eq!(md.key_spec(), Some(&KeySpec::SymmetricDefault));
    assert_eq!(
        md.customer_master_key_spec(),
        Some(&CustomerMasterKeySpec::SymmetricDefault)
    );
    assert_eq!(
        md.encryption_algorithms(),
        &[EncryptionAlgorithmSpec::SymmetricDefault]
    );
    assert_eq!(md.multi_region(), Some(false));
    assert!(md.deletion_date().is_none());
    assert!(md.pending_deletion_window_in_days().is_none());
    let created = md.creation_date().unwrap().as_secs_f64();
    assert!(
        (created - before).abs() < 5.0,
        "creation date {created} vs clock {before}"
    );

    // The same metadata comes back from DescribeKey.
    let d = kms
        .describe_key()
        .key_id(md.key_id())
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(d.arn(), md.arn());
    assert_eq!(d.creation_date(), md.creation_date());
    assert_eq!(d.key_state(), Some(&KeyState::Enabled));
}

#[tokio::test]
async fn create_key_with_description_and_explicit_symmetric_spec() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let md = kms
        .create_key()
        .description("payments key")
        .key_usage(KeyUsageType::EncryptDecrypt)
        .key_spec(KeySpec::SymmetricDefault)
        .origin(OriginType::AwsKms)
        .tags(
            Tag::builder()
                .tag_key("team")
                .tag_value("blue")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.description(), Some("payments key"));
    assert_eq!(md.key_spec(), Some(&KeySpec::SymmetricDefault));
    // Tags given at creation are on the key.
    let tags = kms
        .list_resource_tags()
        .key_id(md.key_id())
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags().len(), 1);
    assert_eq!(tags.tags()[0].tag_key(), "team");
    assert_eq!(tags.tags()[0].tag_value(), "blue");
}

#[tokio::test]
#[allow(deprecated)]
async fn create_key_validation() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();

    let (c, m) = common::fail(kms.create_key().description("x".repeat(8193)).send().await);
    assert_eq!(c, "ValidationException");
    assert!(
        m.starts_with("1 validation error detected: Value '")
            && m.ends_with(
                "' at 'description' failed to satisfy constraint: Member must have length less \
                 than or equal to 8192"
            ),
        "{m}"
    );

    let (c, m) = common::fail(
        kms.create_key()
            .key_usage(KeyUsageType::from("ENCRYPT"))
            .send()
            .await,
    );
    assert_eq!(c, "ValidationException");
    assert_eq!(
        m,
        "1 validation error detected: Value 'ENCRYPT' at 'keyUsage' failed to satisfy \
         constraint: Member must satisfy enum value set: [SIGN_VERIFY, ENCRYPT_DECRYPT, \
         GENERATE_VERIFY_MAC, KEY_AGREEMENT]"
    );

    let (c, m) = common::fail(
        kms.create_key()
            .key_spec(KeySpec::SymmetricDefault)
            .customer_master_key_spec(CustomerMasterKeySpec::SymmetricDefault)
            .send()
            .await,
    );
    assert_eq!(c, "ValidationException");
    assert_eq!(
        m,
        "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. \
         CustomerMasterKeySpec is deprecated."
    );

    // A symmetric key cannot be a signing key.
    let (c, _) = common::fail(
        kms.create_key()
            .key_usage(KeyUsageType::SignVerify)
            .send()
            .await,
    );
    assert_eq!(c, "ValidationException");

    // Reserved tag prefix at creation.
    let (c, _) = common::fail(
        kms.create_key()
            .tags(
                Tag::builder()
                    .tag_key("aws:x")
                    .tag_value("y")
                    .build()
                    .unwrap(),
            )
            .send()
            .await,
    );
    assert_eq!(c, "TagException");

    // A malformed initial policy.
    let (c, _) = common::fail(kms.create_key().policy("not json").send().await);
    assert_eq!(c, "MalformedPolicyDocumentException");

    // None of the failures created a key.
    let keys = kms.list_keys().send().await.unwrap();
    assert!(keys.keys().is_empty(), "{:?}", keys.keys());
}

#[tokio::test]
async fn describe_key_by_every_identifier_form() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, arn) = common::new_key(&kms).await;
    kms.create_alias()
        .alias_name("alias/app")
        .target_key_id(&id)
        .send()
        .await
        .unwrap();
    let alias_arn = format!("arn:aws:kms:us-east-1:{ACCOUNT}:alias/app");
    for ident in [
        id.clone(),
        arn.clone(),
        "alias/app".to_string(),
        alias_arn.clone(),
    ] {
        let r = kms.describe_key().key_id(&ident).send().await;
        assert!(r.is_ok(), "DescribeKey {ident}: {r:?}");
        let md = r.unwrap().key_metadata.unwrap();
        assert_eq!(md.key_id(), id, "by {ident}");
        assert_eq!(md.arn(), Some(arn.as_str()), "by {ident}");
    }
    // A well-formed key id (either form) that names no key, and ids that are not well-formed
    // (recorded AWS responses, docs/errors.md).
    for missing in [
        "mrk-1234abcd12ab34cd56ef1234567890ab",
        "1234abcd-12ab-34cd-56ef-1234567890ab",
    ] {
        let (c, m) = common::fail(kms.describe_key().key_id(missing).send().await);
        assert_eq!(
            (c.as_str(), m),
            (
                "NotFoundException",
                format!("Key 'arn:aws:kms:us-east-1:{ACCOUNT}:key/{missing}' does not exist")
            )
        );
    }
    for bad in [
        "mrk-fake-key-id",
        "fake-key-id",
        "134f2428cec14b25a1ae9048164dba47",
    ] {
        let (c, m) = common::fail(kms.describe_key().key_id(bad).send().await);
        assert_eq!(
            (c.as_str(), m),
            ("NotFoundException", format!("Invalid keyId '{bad}'"))
        );
    }
    // Alias names are case-sensitive.
    let (c, m) = common::fail(kms.describe_key().key_id("alias/APP").send().await);
    assert_eq!(c, "NotFoundException");
    assert_eq!(
        m,
        format!("Alias arn:aws:kms:us-east-1:{ACCOUNT}:alias/APP is not found.")
    );
}

#[tokio::test]
async fn list_keys_pages_with_limit_and_marker() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let mut created = BTreeSet::new();
    for _ in 0..5 {
        created.insert(common::new_key(&kms).await);
    }

    // Everything in one page by default.
    let all = kms.list_keys().send().await.unwrap();
    assert!(!all.truncated());
    assert!(all.next_marker().is_none());
    let listed: BTreeSet<(String, String)> = all
        .keys()
        .iter()
        .map(|k| {
            (
                k.key_id().unwrap().to_string(),
                k.key_arn().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(listed, created);

    // Pages of two: 2 + 2 + 1, no duplicates, the last page is not truncated.
    let mut marker: Option<String> = None;
    let mut paged = Vec::new();
    let mut pages = 0;
    loop {
        let page = kms
            .list_keys()
            .limit(2)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        assert!(page.keys().len() <= 2);
        paged.extend(page.keys().iter().map(|k| k.key_id().unwrap().to_string()));
        if page.truncated() {
            marker = Some(
                page.next_marker()
                    .expect("NextMarker when truncated")
                    .into(),
            );
        } else {
            assert!(page.next_marker().is_none());
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(paged.len(), 5);
    let unique: BTreeSet<_> = paged.iter().cloned().collect();
    assert_eq!(unique.len(), 5);
    assert_eq!(
        unique,
        created
            .iter()
            .map(|(id, _)| id.clone())
            .collect::<BTreeSet<_>>()
    );

    // Limit bounds.
    for bad in [0, 1001] {
        let (c, m) = common::fail(kms.list_keys().limit(bad).send().await);
        assert_eq!(c, "ValidationException");
        assert!(m.contains(&format!("Value '{bad}' at 'limit'")), "{m}");
    }
    // A marker the server never handed out.
    let (c, _) = common::fail(kms.list_keys().marker("garbage").send().await);
    assert_eq!(c, "InvalidMarkerException");

    // Another account sees none of these keys.
    let other = srv.other_client().list_keys().send().await.unwrap();
    assert!(other.keys().is_empty());
}

#[tokio::test]
async fn enable_and_disable_key() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, arn) = common::new_key(&kms).await;

    kms.disable_key().key_id(&id).send().await.unwrap();
    let md = kms
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.key_state(), Some(&KeyState::Disabled));
    assert!(!md.enabled());
    // Disabling twice is fine.
    kms.disable_key().key_id(&arn).send().await.unwrap();
    assert_eq!(state_of(&kms, &id).await, KeyState::Disabled);

    kms.enable_key().key_id(&arn).send().await.unwrap();
    let md = kms
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.key_state(), Some(&KeyState::Enabled));
    assert!(md.enabled());
    kms.enable_key().key_id(&id).send().await.unwrap();
    assert_eq!(state_of(&kms, &id).await, KeyState::Enabled);
}

#[tokio::test]
async fn update_key_description() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, arn) = common::new_key(&kms).await;
    kms.update_key_description()
        .key_id(&id)
        .description("new words")
        .send()
        .await
        .unwrap();
    let md = kms
        .describe_key()
        .key_id(&arn)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.description(), Some("new words"));
    // An empty description is allowed.
    kms.update_key_description()
        .key_id(&arn)
        .description("")
        .send()
        .await
        .unwrap();
    let md = kms
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.description(), Some(""));
    // Too long.
    let (c, m) = common::fail(
        kms.update_key_description()
            .key_id(&id)
            .description("d".repeat(8193))
            .send()
            .await,
    );
    assert_eq!(c, "ValidationException");
    assert!(
        m.ends_with("Member must have length less than or equal to 8192"),
        "{m}"
    );
}

#[tokio::test]
async fn schedule_key_deletion_window_default_and_bounds() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();

    // Default window: 30 days.
    let (id, arn) = common::new_key(&kms).await;
    let now = now_secs(&srv);
    let out = kms
        .schedule_key_deletion()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(out.key_id(), Some(arn.as_str()));
    assert_eq!(out.key_state(), Some(&KeyState::PendingDeletion));
    assert_eq!(out.pending_window_in_days(), Some(30));
    let when = out.deletion_date().unwrap().as_secs_f64();
    assert!(
        (when - (now + 30.0 * 86_400.0)).abs() < 5.0,
        "{when} vs {now}"
    );
    let md = kms
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.key_state(), Some(&KeyState::PendingDeletion));
    assert!(!md.enabled());
    assert_eq!(md.deletion_date(), out.deletion_date());
    assert_eq!(md.pending_deletion_window_in_days(), Some(30));

    // Both ends of the 7-30 range are accepted.
    for days in [7, 30] {
        let (id, _) = common::new_key(&kms).await;
        let out = kms
            .schedule_key_deletion()
            .key_id(&id)
            .pending_window_in_days(days)
            .send()
            .await
            .unwrap();
        assert_eq!(out.pending_window_in_days(), Some(days));
    }

    // Outside 7-30 but inside the model's 1-365: KMS's own words (a recorded AWS response,
    // docs/errors.md); outside the model's bounds: the validation form.
    let (id, _) = common::new_key(&kms).await;
    for days in [1, 6, 31, 365] {
        let (c, m) = common::fail(
            kms.schedule_key_deletion()
                .key_id(&id)
                .pending_window_in_days(days)
                .send()
                .await,
        );
        assert_eq!(
            (c.as_str(), m.as_str()),
            (
                "ValidationException",
                "PendingWindowInDays must be between 7 and 30"
            ),
            "{days}"
        );
    }
    let (c, m) = common::fail(
        kms.schedule_key_deletion()
            .key_id(&id)
            .pending_window_in_days(0)
            .send()
            .await,
    );
    assert_eq!(c, "ValidationException");
    assert_eq!(
        m,
        "1 validation error detected: Value '0' at 'pendingWindowInDays' failed to satisfy \
         constraint: Member must have value greater than or equal to 1"
    );
    let (c, m) = common::fail(
        kms.schedule_key_deletion()
            .key_id(&id)
            .pending_window_in_days(366)
            .send()
            .await,
    );
    assert_eq!(c, "ValidationException");
    assert_eq!(
        m,
        "1 validation error detected: Value '366' at 'pendingWindowInDays' failed to satisfy \
         constraint: Member must have value less than or equal to 365"
    );
    assert_eq!(state_of(&kms, &id).await, KeyState::Enabled);
}

#[tokio::test]
async fn cancel_key_deletion_leaves_the_key_disabled() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, arn) = common::new_key(&kms).await;
    kms.schedule_key_deletion()
        .key_id(&id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    let out = kms.cancel_key_deletion().key_id(&arn).send().await.unwrap();
    assert_eq!(out.key_id(), Some(arn.as_str()));
    let md = kms
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.key_state(), Some(&KeyState::Disabled));
    assert!(!md.enabled());
    assert!(md.deletion_date().is_none());
    assert!(md.pending_deletion_window_in_days().is_none());

    // A cancelled key is not deleted when the old window passes.
    srv.clock.advance(chrono::Duration::days(8));
    assert_eq!(srv.run_maintenance().await.deleted, 0);
    assert_eq!(state_of(&kms, &id).await, KeyState::Disabled);
    // And it can be re-enabled.
    kms.enable_key().key_id(&id).send().await.unwrap();
    assert_eq!(state_of(&kms, &id).await, KeyState::Enabled);
}

#[tokio::test]
async fn key_is_deleted_with_its_aliases_after_the_window() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, arn) = common::new_key(&kms).await;
    let (keep_id, _) = common::new_key(&kms).await;
    for name in ["alias/doomed-1", "alias/doomed-2"] {
        kms.create_alias()
            .alias_name(name)
            .target_key_id(&id)
            .send()
            .await
            .unwrap();
    }
    kms.create_alias()
        .alias_name("alias/keeper")
        .target_key_id(&keep_id)
        .send()
        .await
        .unwrap();
    kms.schedule_key_deletion()
        .key_id(&id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();

    // Not yet: six days in, nothing happens.
    srv.clock.advance(chrono::Duration::days(6));
    assert_eq!(srv.run_maintenance().await.deleted, 0);
    assert_eq!(state_of(&kms, &id).await, KeyState::PendingDeletion);

    // Past the window the key goes, and so do its aliases.
    srv.clock
        .advance(chrono::Duration::days(1) + chrono::Duration::minutes(1));
    assert_eq!(srv.run_maintenance().await.deleted, 1);
    let (c, m) = common::fail(kms.describe_key().key_id(&id).send().await);
    assert_eq!(c, "NotFoundException");
    assert_eq!(m, format!("Key '{arn}' does not exist"));
    let (c, m) = common::fail(kms.describe_key().key_id("alias/doomed-1").send().await);
    assert_eq!(c, "NotFoundException");
    assert_eq!(
        m,
        format!("Alias arn:aws:kms:us-east-1:{ACCOUNT}:alias/doomed-1 is not found.")
    );
    let aliases = kms.list_aliases().send().await.unwrap();
    let names: Vec<&str> = aliases
        .aliases()
        .iter()
        .map(|a| a.alias_name().unwrap())
        .collect();
    assert_eq!(names, vec!["alias/keeper"]);
    let keys = kms.list_keys().send().await.unwrap();
    let ids: Vec<&str> = keys.keys().iter().map(|k| k.key_id().unwrap()).collect();
    assert_eq!(ids, vec![keep_id.as_str()]);
    // The alias names are free again.
    kms.create_alias()
        .alias_name("alias/doomed-1")
        .target_key_id(&keep_id)
        .send()
        .await
        .unwrap();
    // A second pass has nothing to do.
    assert_eq!(srv.run_maintenance().await.deleted, 0);

    // The deletion is audited as a service event.
    let records = srv.audit_records().await;
    let deletes: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["eventName"] == "DeleteKey")
        .collect();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    let d = deletes[0];
    assert_eq!(d["eventType"], "AwsServiceEvent");
    assert_eq!(d["eventSource"], "kms.amazonaws.com");
    assert_eq!(d["userIdentity"]["accountId"], ACCOUNT);
    assert_eq!(d["userIdentity"]["invokedBy"], "AWS Internal");
    assert_eq!(d["resources"][0]["ARN"], arn.as_str());
    assert_eq!(d["resources"][0]["type"], "AWS::KMS::Key");
    assert_eq!(d["serviceEventDetails"]["keyId"], id.as_str());
    assert_eq!(d["responseElements"]["keyId"], arn.as_str());
    assert!(d["requestParameters"].is_null());
    assert_eq!(d["recipientAccountId"], ACCOUNT);
}

/// The key quota (`[limits]`): counted per account, PendingDeletion keys included, freed by
/// the deletion itself; the 4th key of a quota of 3 fails with AWS's LimitExceededException.
#[tokio::test]
async fn key_quota_per_account_counts_pending_deletion_until_deleted() {
    let srv = common::TestServer::start_with_config(
        "[limits]\nkeys_per_account = 3\n[limits.accounts.444455556666]\nkeys_per_account = 1\n",
        common::backend_env(),
    )
    .await;
    let kms = srv.client();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(common::new_key(&kms).await.0);
    }
    let (code, msg) = common::fail(kms.create_key().send().await);
    assert_eq!(code, "LimitExceededException");
    assert_eq!(
        msg,
        "Key quota for this account in this region is 3 but the current usage is 3."
    );

    // Another account has its own count and its own quota.
    let other = srv.other_client();
    common::new_key(&other).await;
    let (code, msg) = common::fail(other.create_key().send().await);
    assert_eq!(code, "LimitExceededException");
    assert_eq!(
        msg,
        "Key quota for this account in this region is 1 but the current usage is 1."
    );

    // A key pending deletion still counts.
    kms.schedule_key_deletion()
        .key_id(&ids[0])
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    let (code, _) = common::fail(kms.create_key().send().await);
    assert_eq!(code, "LimitExceededException");

    // Deleted at the end of the window, it frees its place.
    srv.clock.advance(chrono::Duration::days(8));
    assert_eq!(srv.run_maintenance().await.deleted, 1);
    common::new_key(&kms).await;
    let (code, msg) = common::fail(kms.create_key().send().await);
    assert_eq!(code, "LimitExceededException");
    assert!(msg.ends_with("current usage is 3."), "{msg}");
}

/// The kept key count heals when key rows are deleted outside kms (an operator's SQL, a partial
/// restore): CreateKey is not refused below the quota, makes keys up to exactly the quota, and
/// the next one is refused with the usage there really is.
#[tokio::test]
async fn key_quota_heals_after_key_rows_are_deleted_by_hand() {
    let srv = common::TestServer::start_with_config(
        "[limits]\nkeys_per_account = 4\n",
        common::backend_env(),
    )
    .await;
    let kms = srv.client();
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(common::new_key(&kms).await.0);
    }
    let (code, _) = common::fail(kms.create_key().send().await);
    assert_eq!(code, "LimitExceededException");

    common::store_sql(
        srv.data_dir.path(),
        &format!(
            "DELETE FROM keys WHERE key_id IN ('{}', '{}', '{}')",
            ids[0], ids[1], ids[2]
        ),
    );
    for _ in 0..3 {
        common::new_key(&kms).await;
    }
    let (code, msg) = common::fail(kms.create_key().send().await);
    assert_eq!(code, "LimitExceededException");
    assert_eq!(
        msg,
        "Key quota for this account in this region is 4 but the current usage is 4."
    );
    let listed = kms.list_keys().limit(100).send().await.unwrap();
    assert_eq!(listed.keys().len(), 4);
}

/// Concurrent CreateKey at the key quota on one node: many calls at once with room for 5 keys
/// make exactly 5 (the store's conditional count, not a count read before the insert); every
/// other call gets AWS's LimitExceededException with the usage at the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_at_the_key_quota_never_exceed_it() {
    const LIMIT: usize = 5;
    const CALLS: usize = 40;
    let srv = common::TestServer::start_with_config(
        &format!("[limits]\nkeys_per_account = {LIMIT}\n"),
        common::backend_env(),
    )
    .await;
    let kms = srv.client();
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..CALLS {
        let kms = kms.clone();
        calls.spawn(async move { kms.create_key().send().await });
    }
    let mut made = 0;
    while let Some(r) = calls.join_next().await {
        match r.unwrap() {
            Ok(_) => made += 1,
            Err(e) => {
                let (code, msg) = common::fail::<(), _, _>(Err(e));
                assert_eq!(code, "LimitExceededException");
                assert_eq!(
                    msg,
                    "Key quota for this account in this region is 5 but the current usage is 5."
                );
            }
        }
    }
    assert_eq!(made, LIMIT);
    let listed = kms.list_keys().limit(100).send().await.unwrap();
    assert_eq!(listed.keys().len(), LIMIT);
}
