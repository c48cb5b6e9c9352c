//! The key-state table and identifier resolution through the real `aws-sdk-kms` client:
//! what each operation does on Disabled and PendingDeletion keys, which identifier forms each
//! operation accepts, unknown keys and aliases, and keys of another account.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, KeyState, Tag};

const ACCOUNT: &str = "111122223333";
const OTHER_ACCOUNT: &str = "444455556666";

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().tag_key(k).tag_value(v).build().unwrap()
}

async fn encrypt(kms: &aws_sdk_kms::Client, key: &str) -> Vec<u8> {
    kms.encrypt()
        .key_id(key)
        .plaintext(Blob::new(b"state".to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap()
        .into_inner()
}

/// Every symmetric crypto operation on `key` (with `blob` made under it) fails with `expected`.
async fn crypto_fails(
    kms: &aws_sdk_kms::Client,
    key: &str,
    blob: &[u8],
    good_key: &str,
    expected: (&str, &str),
) {
    let want = (expected.0.to_string(), expected.1.to_string());
    let got = common::fail(
        kms.encrypt()
            .key_id(key)
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
            .await,
    );
    assert_eq!(got, want, "Encrypt");
    let got = common::fail(
        kms.decrypt()
            .ciphertext_blob(Blob::new(blob.to_vec()))
            .send()
            .await,
    );
    assert_eq!(got, want, "Decrypt without KeyId");
    let got = common::fail(
        kms.decrypt()
            .ciphertext_blob(Blob::new(blob.to_vec()))
            .key_id(key)
            .send()
            .await,
    );
    assert_eq!(got, want, "Decrypt with KeyId");
    let got = common::fail(
        kms.re_encrypt()
            .ciphertext_blob(Blob::new(blob.to_vec()))
            .destination_key_id(good_key)
            .send()
            .await,
    );
    assert_eq!(got, want, "ReEncrypt from");
    let good_blob = encrypt(kms, good_key).await;
    let got = common::fail(
        kms.re_encrypt()
            .ciphertext_blob(Blob::new(good_blob))
            .destination_key_id(key)
            .send()
            .await,
    );
    assert_eq!(got, want, "ReEncrypt to");
    let got = common::fail(
        kms.generate_data_key()
            .key_id(key)
            .key_spec(DataKeySpec::Aes256)
            .send()
            .await,
    );
    assert_eq!(got, want, "GenerateDataKey");
    let got = common::fail(
        kms.generate_data_key_without_plaintext()
            .key_id(key)
            .number_of_bytes(8)
            .send()
            .await,
    );
    assert_eq!(got, want, "GenerateDataKeyWithoutPlaintext");
    // DryRun does not get past the state check either.
    let got = common::fail(
        kms.encrypt()
            .key_id(key)
            .plaintext(Blob::new(b"x".to_vec()))
            .dry_run(true)
            .send()
            .await,
    );
    assert_eq!(got, want, "Encrypt DryRun");
}

#[tokio::test]
async fn disabled_key() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, arn) = common::new_key(&kms).await;
    let (good, _) = common::new_key(&kms).await;
    kms.create_alias()
        .alias_name("alias/off")
        .target_key_id(&id)
        .send()
        .await
        .unwrap();
    let blob = encrypt(&kms, &id).await;
    kms.disable_key().key_id(&id).send().await.unwrap();

    let disabled = format!("{arn} is disabled.");
    crypto_fails(&kms, &id, &blob, &good, ("DisabledException", &disabled)).await;
    // By alias too.
    crypto_fails(
        &kms,
        "alias/off",
        &blob,
        &good,
        ("DisabledException", &disabled),
    )
    .await;

    // Rotation settings cannot change while disabled.
    for (name, got) in [
        (
            "EnableKeyRotation",
            common::fail(kms.enable_key_rotation().key_id(&id).send().await),
        ),
        (
            "DisableKeyRotation",
            common::fail(kms.disable_key_rotation().key_id(&id).send().await),
        ),
        (
            "RotateKeyOnDemand",
            common::fail(kms.rotate_key_on_demand().key_id(&id).send().await),
        ),
    ] {
        assert_eq!(
            got,
            ("DisabledException".into(), disabled.clone()),
            "{name}"
        );
    }

    // Everything else works on a disabled key.
    kms.describe_key().key_id(&id).send().await.unwrap();
    kms.update_key_description()
        .key_id(&id)
        .description("off")
        .send()
        .await
        .unwrap();
    kms.tag_resource()
        .key_id(&id)
        .tags(tag("k", "v"))
        .send()
        .await
        .unwrap();
    kms.untag_resource()
        .key_id(&id)
        .tag_keys("k")
        .send()
        .await
        .unwrap();
    kms.list_resource_tags().key_id(&id).send().await.unwrap();
    kms.create_alias()
        .alias_name("alias/off-2")
        .target_key_id(&id)
        .send()
        .await
        .unwrap();
    kms.update_alias()
        .alias_name("alias/off-2")
        .target_key_id(&good)
        .send()
        .await
        .unwrap();
    kms.delete_alias()
        .alias_name("alias/off-2")
        .send()
        .await
        .unwrap();
    let policy = kms
        .get_key_policy()
        .key_id(&id)
        .policy_name("default")
        .send()
        .await
        .unwrap()
        .policy
        .unwrap();
    kms.put_key_policy()
        .key_id(&id)
        .policy_name("default")
        .policy(policy)
        .send()
        .await
        .unwrap();
    kms.list_key_policies().key_id(&id).send().await.unwrap();
    let status = kms
        .get_key_rotation_status()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert!(!status.key_rotation_enabled());

    // Enabling brings crypto back; the old ciphertext still decrypts.
    kms.enable_key().key_id(&id).send().await.unwrap();
    let out = kms
        .decrypt()
        .ciphertext_blob(Blob::new(blob))
        .send()
        .await
        .unwrap();
    assert_eq!(out.plaintext.unwrap().as_ref(), b"state");
}

#[tokio::test]
async fn pending_deletion_key() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, arn) = common::new_key(&kms).await;
    let (good, good_arn) = common::new_key(&kms).await;
    kms.create_alias()
        .alias_name("alias/going")
        .target_key_id(&id)
        .send()
        .await
        .unwrap();
    kms.create_alias()
        .alias_name("alias/going-2")
        .target_key_id(&id)
        .send()
        .await
        .unwrap();
    kms.create_alias()
        .alias_name("alias/stays")
        .target_key_id(&good)
        .send()
        .await
        .unwrap();
    kms.tag_resource()
        .key_id(&id)
        .tags(tag("k", "v"))
        .send()
        .await
        .unwrap();
    let blob = encrypt(&kms, &id).await;
    kms.schedule_key_deletion()
        .key_id(&id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();

    let pending = format!("{arn} is pending deletion.");
    let want = ("KMSInvalidStateException".to_string(), pending.clone());
    crypto_fails(
        &kms,
        &id,
        &blob,
        &good,
        ("KMSInvalidStateException", &pending),
    )
    .await;
    crypto_fails(
        &kms,
        "alias/going",
        &blob,
        &good,
        ("KMSInvalidStateException", &pending),
    )
    .await;

    // Management operations that change the key fail.
    assert_eq!(
        common::fail(kms.enable_key().key_id(&id).send().await),
        want,
        "EnableKey"
    );
    assert_eq!(
        common::fail(kms.disable_key().key_id(&id).send().await),
        want,
        "DisableKey"
    );
    assert_eq!(
        common::fail(
            kms.update_key_description()
                .key_id(&id)
                .description("x")
                .send()
                .await
        ),
        want,
        "UpdateKeyDescription"
    );
    assert_eq!(
        common::fail(
            kms.tag_resource()
                .key_id(&id)
                .tags(tag("a", "b"))
                .send()
                .await
        ),
        want,
        "TagResource"
    );
    assert_eq!(
        common::fail(kms.untag_resource().key_id(&id).tag_keys("k").send().await),
        want,
        "UntagResource"
    );
    assert_eq!(
        common::fail(
            kms.create_alias()
                .alias_name("alias/new")
                .target_key_id(&id)
                .send()
                .await
        ),
        want,
        "CreateAlias"
    );
    assert_eq!(
        common::fail(kms.enable_key_rotation().key_id(&id).send().await),
        want,
        "EnableKeyRotation"
    );
    assert_eq!(
        common::fail(kms.disable_key_rotation().key_id(&id).send().await),
        want,
        "DisableKeyRotation"
    );
    assert_eq!(
        common::fail(kms.rotate_key_on_demand().key_id(&id).send().await),
        want,
        "RotateKeyOnDemand"
    );
    // A second ScheduleKeyDeletion.
    assert_eq!(
        common::fail(
            kms.schedule_key_deletion()
                .key_id(&id)
                .pending_window_in_days(30)
                .send()
                .await
        ),
        want,
        "ScheduleKeyDeletion"
    );
    // UpdateAlias may not point an alias at a pending key ...
    assert_eq!(
        common::fail(
            kms.update_alias()
                .alias_name("alias/stays")
                .target_key_id(&id)
                .send()
                .await
        ),
        want,
        "UpdateAlias to"
    );

    // ... but may move one away from it; DeleteAlias works.
    kms.update_alias()
        .alias_name("alias/going")
        .target_key_id(&good_arn)
        .send()
        .await
        .unwrap();
    kms.delete_alias()
        .alias_name("alias/going-2")
        .send()
        .await
        .unwrap();
    let moved = kms
        .describe_key()
        .key_id("alias/going")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(moved.key_id(), good);

    // Reads work in every state.
    let md = kms
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.key_state(), Some(&KeyState::PendingDeletion));
    let policy = kms
        .get_key_policy()
        .key_id(&id)
        .policy_name("default")
        .send()
        .await
        .unwrap()
        .policy
        .unwrap();
    kms.put_key_policy()
        .key_id(&id)
        .policy_name("default")
        .policy(policy)
        .send()
        .await
        .unwrap();
    assert_eq!(
        kms.list_key_policies()
            .key_id(&id)
            .send()
            .await
            .unwrap()
            .policy_names(),
        &["default".to_string()]
    );
    let tags = kms.list_resource_tags().key_id(&id).send().await.unwrap();
    assert_eq!(tags.tags().len(), 1);
    kms.list_aliases().key_id(&id).send().await.unwrap();
    let status = kms
        .get_key_rotation_status()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert!(!status.key_rotation_enabled());
}

#[tokio::test]
async fn cancel_key_deletion_requires_pending_deletion() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, arn) = common::new_key(&kms).await;
    let not_pending = (
        "KMSInvalidStateException".to_string(),
        format!("{arn} is not pending deletion."),
    );
    // Enabled.
    assert_eq!(
        common::fail(kms.cancel_key_deletion().key_id(&id).send().await),
        not_pending
    );
    // Disabled.
    kms.disable_key().key_id(&id).send().await.unwrap();
    assert_eq!(
        common::fail(kms.cancel_key_deletion().key_id(&arn).send().await),
        not_pending
    );
    // After a cancel, a second cancel fails too.
    kms.schedule_key_deletion()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    kms.cancel_key_deletion().key_id(&id).send().await.unwrap();
    assert_eq!(
        common::fail(kms.cancel_key_deletion().key_id(&id).send().await),
        not_pending
    );
    // A disabled key can be scheduled for deletion.
    let out = kms
        .schedule_key_deletion()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(out.key_state(), Some(&KeyState::PendingDeletion));
}

#[tokio::test]
async fn management_operations_reject_alias_forms() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, _) = common::new_key(&kms).await;
    let (other, _) = common::new_key(&kms).await;
    kms.create_alias()
        .alias_name("alias/mgmt")
        .target_key_id(&id)
        .send()
        .await
        .unwrap();
    let alias_arn = format!("arn:aws:kms:us-east-1:{ACCOUNT}:alias/mgmt");
    for alias in ["alias/mgmt", alias_arn.as_str()] {
        // AWS's exception and words (recorded AWS responses, docs/errors.md).
        let want = (
            "InvalidArnException".to_string(),
            "Key Aliases are not supported for this operation.".to_string(),
        );
        assert_eq!(
            common::fail(kms.disable_key().key_id(alias).send().await),
            want,
            "DisableKey"
        );
        assert_eq!(
            common::fail(kms.enable_key().key_id(alias).send().await),
            want,
            "EnableKey"
        );
        assert_eq!(
            common::fail(kms.schedule_key_deletion().key_id(alias).send().await),
            want,
            "ScheduleKeyDeletion"
        );
        assert_eq!(
            common::fail(kms.cancel_key_deletion().key_id(alias).send().await),
            want,
            "CancelKeyDeletion"
        );
        assert_eq!(
            common::fail(
                kms.update_key_description()
                    .key_id(alias)
                    .description("d")
                    .send()
                    .await
            ),
            want,
            "UpdateKeyDescription"
        );
        assert_eq!(
            common::fail(kms.enable_key_rotation().key_id(alias).send().await),
            want,
            "EnableKeyRotation"
        );
        assert_eq!(
            common::fail(kms.disable_key_rotation().key_id(alias).send().await),
            want,
            "DisableKeyRotation"
        );
        assert_eq!(
            common::fail(kms.get_key_rotation_status().key_id(alias).send().await),
            want,
            "GetKeyRotationStatus"
        );
        assert_eq!(
            common::fail(kms.rotate_key_on_demand().key_id(alias).send().await),
            want,
            "RotateKeyOnDemand"
        );
        assert_eq!(
            common::fail(kms.list_key_rotations().key_id(alias).send().await),
            want,
            "ListKeyRotations"
        );
        assert_eq!(
            common::fail(
                kms.tag_resource()
                    .key_id(alias)
                    .tags(tag("a", "b"))
                    .send()
                    .await
            ),
            want,
            "TagResource"
        );
        assert_eq!(
            common::fail(
                kms.untag_resource()
                    .key_id(alias)
                    .tag_keys("a")
                    .send()
                    .await
            ),
            want,
            "UntagResource"
        );
        assert_eq!(
            common::fail(kms.list_resource_tags().key_id(alias).send().await),
            want,
            "ListResourceTags"
        );
        assert_eq!(
            common::fail(
                kms.get_key_policy()
                    .key_id(alias)
                    .policy_name("default")
                    .send()
                    .await
            ),
            want,
            "GetKeyPolicy"
        );
        assert_eq!(
            common::fail(kms.list_key_policies().key_id(alias).send().await),
            want,
            "ListKeyPolicies"
        );
        assert_eq!(
            common::fail(kms.list_aliases().key_id(alias).send().await),
            want,
            "ListAliases"
        );
        assert_eq!(
            common::fail(
                kms.create_alias()
                    .alias_name("alias/via-alias")
                    .target_key_id(alias)
                    .send()
                    .await
            ),
            want,
            "CreateAlias target"
        );
        assert_eq!(
            common::fail(
                kms.update_alias()
                    .alias_name("alias/mgmt")
                    .target_key_id(alias)
                    .send()
                    .await
            ),
            want,
            "UpdateAlias target"
        );
    }
    // None of that changed anything.
    let md = kms
        .describe_key()
        .key_id("alias/mgmt")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.key_id(), id);
    assert_eq!(md.key_state(), Some(&KeyState::Enabled));
    let _ = other;
}

#[tokio::test]
async fn bad_and_unknown_identifiers() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, _) = common::new_key(&kms).await;

    // Not an identifier at all.
    let invalid = (
        "NotFoundException".to_string(),
        "Invalid keyId 'foo'".to_string(),
    );
    assert_eq!(
        common::fail(kms.describe_key().key_id("foo").send().await),
        invalid
    );
    assert_eq!(
        common::fail(kms.disable_key().key_id("foo").send().await),
        invalid
    );
    assert_eq!(
        common::fail(
            kms.encrypt()
                .key_id("foo")
                .plaintext(Blob::new(b"x".to_vec()))
                .send()
                .await
        ),
        invalid
    );
    assert_eq!(
        common::fail(
            kms.generate_data_key()
                .key_id("foo")
                .number_of_bytes(8)
                .send()
                .await
        ),
        invalid
    );
    let (c, m) = common::fail(kms.describe_key().key_id("alias/").send().await);
    assert_eq!(c, "NotFoundException");
    assert_eq!(m, "Invalid keyId 'alias/'");

    // Well-formed but unknown key id / ARN.
    let ghost = "0b5c1e9a-3f3a-4b8e-9a51-3c3a5f6b7d21";
    let ghost_arn = format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/{ghost}");
    let missing = (
        "NotFoundException".to_string(),
        format!("Key '{ghost_arn}' does not exist"),
    );
    assert_eq!(
        common::fail(kms.describe_key().key_id(ghost).send().await),
        missing
    );
    assert_eq!(
        common::fail(kms.describe_key().key_id(&ghost_arn).send().await),
        missing
    );
    assert_eq!(
        common::fail(kms.enable_key().key_id(ghost).send().await),
        missing
    );
    assert_eq!(
        common::fail(kms.schedule_key_deletion().key_id(ghost).send().await),
        missing
    );
    assert_eq!(
        common::fail(
            kms.encrypt()
                .key_id(&ghost_arn)
                .plaintext(Blob::new(b"x".to_vec()))
                .send()
                .await
        ),
        missing
    );
    assert_eq!(
        common::fail(
            kms.create_alias()
                .alias_name("alias/ghost")
                .target_key_id(ghost)
                .send()
                .await
        ),
        missing
    );

    // Unknown alias, by name and by ARN.
    let alias_missing = (
        "NotFoundException".to_string(),
        format!("Alias arn:aws:kms:us-east-1:{ACCOUNT}:alias/nope is not found."),
    );
    assert_eq!(
        common::fail(kms.describe_key().key_id("alias/nope").send().await),
        alias_missing
    );
    assert_eq!(
        common::fail(
            kms.describe_key()
                .key_id(format!("arn:aws:kms:us-east-1:{ACCOUNT}:alias/nope"))
                .send()
                .await
        ),
        alias_missing
    );
    assert_eq!(
        common::fail(
            kms.encrypt()
                .key_id("alias/nope")
                .plaintext(Blob::new(b"x".to_vec()))
                .send()
                .await
        ),
        alias_missing
    );
    assert_eq!(
        common::fail(kms.delete_alias().alias_name("alias/nope").send().await),
        alias_missing
    );
    assert_eq!(
        common::fail(
            kms.update_alias()
                .alias_name("alias/nope")
                .target_key_id(&id)
                .send()
                .await
        ),
        alias_missing
    );

    // A key ARN of another Region.
    let (c, _) = common::fail(
        kms.describe_key()
            .key_id(format!("arn:aws:kms:eu-west-1:{ACCOUNT}:key/{id}"))
            .send()
            .await,
    );
    assert_eq!(c, "NotFoundException");

    // A required KeyId that is missing.
    let (c, m) = common::fail(kms.describe_key().send().await);
    assert_eq!(c, "ValidationException");
    assert_eq!(
        m,
        "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: \
         Member must not be null"
    );
}

#[tokio::test]
async fn keys_of_another_account() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let other = srv.other_client();
    let (id, arn) = common::new_key(&kms).await;
    kms.create_alias()
        .alias_name("alias/mine")
        .target_key_id(&id)
        .send()
        .await
        .unwrap();
    let blob = encrypt(&kms, &id).await;

    // By key ARN or alias ARN: access denied (no key policy grants the other account).
    for ident in [
        arn.clone(),
        format!("arn:aws:kms:us-east-1:{ACCOUNT}:alias/mine"),
    ] {
        let (c, m) = common::fail(other.describe_key().key_id(&ident).send().await);
        assert_eq!(c, "AccessDeniedException", "{ident}");
        // Another account's key: one wording whether it exists or not (reference §7.2).
        assert_eq!(
            m,
            format!(
                "User: arn:aws:iam::{OTHER_ACCOUNT}:user/bob is not authorized to perform: \
                 kms:DescribeKey on this resource because the resource does not exist in this \
                 Region, no resource-based policies allow access, or a resource-based policy \
                 explicitly denies access"
            ),
            "{ident}"
        );
        let (c, _) = common::fail(
            other
                .encrypt()
                .key_id(&ident)
                .plaintext(Blob::new(b"x".to_vec()))
                .send()
                .await,
        );
        assert_eq!(c, "AccessDeniedException", "{ident}");
    }
    let (c, _) = common::fail(other.disable_key().key_id(&arn).send().await);
    assert_eq!(c, "AccessDeniedException");
    let (c, _) = common::fail(
        other
            .create_alias()
            .alias_name("alias/stolen")
            .target_key_id(&arn)
            .send()
            .await,
    );
    assert_eq!(c, "AccessDeniedException");
    let (c, _) = common::fail(
        other
            .tag_resource()
            .key_id(&arn)
            .tags(tag("a", "b"))
            .send()
            .await,
    );
    assert_eq!(c, "AccessDeniedException");
    let (c, _) = common::fail(other.get_key_rotation_status().key_id(&arn).send().await);
    assert_eq!(c, "AccessDeniedException");

    // A bare key id or alias name means the caller's own account: not found there.
    let (c, m) = common::fail(other.describe_key().key_id(&id).send().await);
    assert_eq!(c, "NotFoundException");
    assert_eq!(
        m,
        format!("Key 'arn:aws:kms:us-east-1:{OTHER_ACCOUNT}:key/{id}' does not exist")
    );
    let (c, _) = common::fail(other.schedule_key_deletion().key_id(&id).send().await);
    assert_eq!(c, "NotFoundException");
    let (c, m) = common::fail(other.describe_key().key_id("alias/mine").send().await);
    assert_eq!(c, "NotFoundException");
    assert_eq!(
        m,
        format!("Alias arn:aws:kms:us-east-1:{OTHER_ACCOUNT}:alias/mine is not found.")
    );

    // The ciphertext names a key the other account cannot use.
    let (c, m) = common::fail(
        other
            .decrypt()
            .ciphertext_blob(Blob::new(blob.clone()))
            .send()
            .await,
    );
    assert_eq!(c, "AccessDeniedException");
    assert_eq!(
        m,
        "The ciphertext refers to a customer master key that does not exist, does not exist \
         in this region, or you are not allowed to access."
    );
    // ... and another account's key that does not exist is denied in the same words as one
    // that does (no probing for keys).
    let (c, m) = common::fail(
        other
            .describe_key()
            .key_id(format!(
                "arn:aws:kms:us-east-1:{ACCOUNT}:key/00000000-1111-4222-8333-444444444444"
            ))
            .send()
            .await,
    );
    assert_eq!(c, "AccessDeniedException");
    assert!(
        m.contains("on this resource because the resource does not exist"),
        "{m}"
    );

    // Alias names are per account: the other account may use the same name for its own key.
    let (their_id, _) = common::new_key(&other).await;
    other
        .create_alias()
        .alias_name("alias/mine")
        .target_key_id(&their_id)
        .send()
        .await
        .unwrap();
    let theirs = other
        .describe_key()
        .key_id("alias/mine")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(theirs.key_id(), their_id);
    assert_eq!(theirs.aws_account_id(), Some(OTHER_ACCOUNT));
    let mine = kms
        .describe_key()
        .key_id("alias/mine")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(mine.key_id(), id);

    // Nothing the other account did touched the key.
    let md = kms
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.key_state(), Some(&KeyState::Enabled));
}

/// The key-state table's rows for Sign, Verify, GetPublicKey, GenerateMac, VerifyMac and
/// GenerateDataKeyPair(WithoutPlaintext) in the Disabled and PendingDeletion columns
/// (footnotes [1] and [3]); the same calls work again once the key is back.
#[tokio::test]
async fn signing_mac_and_data_key_pair_operations_follow_the_key_state_table() {
    use aws_sdk_kms::types::{
        DataKeyPairSpec, KeySpec, KeyUsageType, MacAlgorithmSpec, SigningAlgorithmSpec,
    };
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (signer, signer_arn) =
        common::new_key_of(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let (hmac, hmac_arn) =
        common::new_key_of(&kms, KeySpec::Hmac256, KeyUsageType::GenerateVerifyMac).await;
    let (sym, sym_arn) = common::new_key(&kms).await;
    let alg = SigningAlgorithmSpec::EcdsaSha256;
    let message = Blob::new(b"state table".to_vec());
    let signature = kms
        .sign()
        .key_id(&signer)
        .message(message.clone())
        .signing_algorithm(alg.clone())
        .send()
        .await
        .unwrap()
        .signature
        .unwrap();
    let mac = kms
        .generate_mac()
        .key_id(&hmac)
        .message(message.clone())
        .mac_algorithm(MacAlgorithmSpec::HmacSha256)
        .send()
        .await
        .unwrap()
        .mac
        .unwrap();

    // Every call of the rows: (name, key ARN, outcome).
    let (kms, signer, hmac, sym) = (&kms, &signer, &hmac, &sym);
    let (signer_arn, hmac_arn, sym_arn) = (&signer_arn, &hmac_arn, &sym_arn);
    let (message, signature, mac, alg) = (&message, &signature, &mac, &alg);
    let calls = move || async move {
        vec![
            (
                "Sign",
                signer_arn,
                kms.sign()
                    .key_id(signer)
                    .message(message.clone())
                    .signing_algorithm(alg.clone())
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| (common::code(&e), common::message(&e))),
            ),
            (
                "Verify",
                signer_arn,
                kms.verify()
                    .key_id(signer)
                    .message(message.clone())
                    .signature(signature.clone())
                    .signing_algorithm(alg.clone())
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| (common::code(&e), common::message(&e))),
            ),
            (
                "GetPublicKey",
                signer_arn,
                kms.get_public_key()
                    .key_id(signer)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| (common::code(&e), common::message(&e))),
            ),
            (
                "GenerateMac",
                hmac_arn,
                kms.generate_mac()
                    .key_id(hmac)
                    .message(message.clone())
                    .mac_algorithm(MacAlgorithmSpec::HmacSha256)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| (common::code(&e), common::message(&e))),
            ),
            (
                "VerifyMac",
                hmac_arn,
                kms.verify_mac()
                    .key_id(hmac)
                    .message(message.clone())
                    .mac(mac.clone())
                    .mac_algorithm(MacAlgorithmSpec::HmacSha256)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| (common::code(&e), common::message(&e))),
            ),
            (
                "GenerateDataKeyPair",
                sym_arn,
                kms.generate_data_key_pair()
                    .key_id(sym)
                    .key_pair_spec(DataKeyPairSpec::EccNistP256)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| (common::code(&e), common::message(&e))),
            ),
            (
                "GenerateDataKeyPairWithoutPlaintext",
                sym_arn,
                kms.generate_data_key_pair_without_plaintext()
                    .key_id(sym)
                    .key_pair_spec(DataKeyPairSpec::EccNistP256)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| (common::code(&e), common::message(&e))),
            ),
        ]
    };
    let keys = [signer.as_str(), hmac.as_str(), sym.as_str()];

    for k in keys {
        kms.disable_key().key_id(k).send().await.unwrap();
    }
    for (name, arn, got) in calls().await {
        assert_eq!(
            got,
            Err(("DisabledException".into(), format!("{arn} is disabled."))),
            "{name} on a disabled key"
        );
    }
    for k in keys {
        kms.schedule_key_deletion()
            .key_id(k)
            .pending_window_in_days(7)
            .send()
            .await
            .unwrap();
    }
    for (name, arn, got) in calls().await {
        assert_eq!(
            got,
            Err((
                "KMSInvalidStateException".into(),
                format!("{arn} is pending deletion.")
            )),
            "{name} on a key pending deletion"
        );
    }
    for k in keys {
        kms.cancel_key_deletion().key_id(k).send().await.unwrap();
        kms.enable_key().key_id(k).send().await.unwrap();
    }
    for (name, _, got) in calls().await {
        assert_eq!(got, Ok(()), "{name} once enabled again");
    }
}
