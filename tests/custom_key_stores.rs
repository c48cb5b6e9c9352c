//! CloudHSM-style custom key stores on a two-member SoftHSM cluster, through the real
//! `aws-sdk-kms` client: every state transition and error code of the lifecycle, keys in the
//! store, keys while disconnected, wrong passwords, and deletion of backing keys.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use std::time::Duration;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{ConnectionStateType, CustomKeyStoreType, KeyState, OriginType};
use common::{code, message, softhsm, TestServer};

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

/// Polls until the store leaves CONNECTING.
async fn settle(kms: &aws_sdk_kms::Client, id: &str) -> (ConnectionStateType, Option<String>) {
    for _ in 0..200 {
        let s = state(kms, id).await;
        if s.0 != ConnectionStateType::Connecting {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("store {id} stayed CONNECTING");
}

async fn start(cluster: &softhsm::TestCluster) -> TestServer {
    TestServer::start_with_config(&cluster.toml(), common::backend_env()).await
}

#[tokio::test]
async fn lifecycle_keys_and_unavailable_state() {
    let cluster = softhsm::cluster(2);
    let srv = start(&cluster).await;
    let kms = srv.client();

    // Creation errors.
    let e = kms
        .create_custom_key_store()
        .custom_key_store_name("s1")
        .cloud_hsm_cluster_id("cluster-doesnotexist")
        .trust_anchor_certificate(&cluster.trust_anchor_pem)
        .key_store_password(&cluster.pin)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CloudHsmClusterNotFoundException");
    let other_cert = rcgen::generate_simple_self_signed(vec!["x".into()])
        .unwrap()
        .cert
        .pem();
    let e = kms
        .create_custom_key_store()
        .custom_key_store_name("s1")
        .cloud_hsm_cluster_id(&cluster.id)
        .trust_anchor_certificate(other_cert)
        .key_store_password(&cluster.pin)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "IncorrectTrustAnchorException");
    let e = kms
        .create_custom_key_store()
        .custom_key_store_name("s1")
        .cloud_hsm_cluster_id(&cluster.id)
        .trust_anchor_certificate(&cluster.trust_anchor_pem)
        .key_store_password("short")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ValidationException");
    assert!(
        !message(&e).contains("short"),
        "the password was echoed: {}",
        message(&e)
    );

    let create = || {
        kms.create_custom_key_store()
            .custom_key_store_name("s1")
            .cloud_hsm_cluster_id(&cluster.id)
            .trust_anchor_certificate(&cluster.trust_anchor_pem)
            .key_store_password(&cluster.pin)
    };
    let id = create().send().await.unwrap().custom_key_store_id.unwrap();
    assert!(id.starts_with("cks-") && id.len() == 21, "{id}");
    // Identical properties on a disconnected store: the same id, no error.
    assert_eq!(
        create().send().await.unwrap().custom_key_store_id.unwrap(),
        id
    );
    let e = kms
        .create_custom_key_store()
        .custom_key_store_name("s1")
        .cloud_hsm_cluster_id(&cluster.id)
        .trust_anchor_certificate(&cluster.trust_anchor_pem)
        .key_store_password("differentpw1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CustomKeyStoreNameInUseException");
    let e = kms
        .create_custom_key_store()
        .custom_key_store_name("s2")
        .cloud_hsm_cluster_id(&cluster.id)
        .trust_anchor_certificate(&cluster.trust_anchor_pem)
        .key_store_password(&cluster.pin)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CloudHsmClusterInUseException");

    // Described without secrets.
    let d = kms
        .describe_custom_key_stores()
        .custom_key_store_name("s1")
        .send()
        .await
        .unwrap();
    let s = &d.custom_key_stores()[0];
    assert_eq!(s.custom_key_store_id(), Some(id.as_str()));
    assert_eq!(
        s.custom_key_store_type(),
        Some(&CustomKeyStoreType::AwsCloudhsm)
    );
    assert_eq!(s.cloud_hsm_cluster_id(), Some(cluster.id.as_str()));
    assert_eq!(
        s.connection_state(),
        Some(&ConnectionStateType::Disconnected)
    );
    assert!(s.connection_error_code().is_none());
    let audit = std::fs::read_to_string(srv.data_dir.path().join("audit.log")).unwrap_or_default();
    assert!(
        !audit.contains(&cluster.pin),
        "the password reached the audit log"
    );

    // No keys while disconnected.
    let e = kms
        .create_key()
        .origin(OriginType::AwsCloudhsm)
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CustomKeyStoreInvalidStateException");

    // Connect: CONNECTING -> CONNECTED.
    kms.connect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        settle(&kms, &id).await,
        (ConnectionStateType::Connected, None)
    );

    // Keys in the store.
    let key = kms
        .create_key()
        .origin(OriginType::AwsCloudhsm)
        .custom_key_store_id(&id)
        .description("in the cluster")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(key.origin(), Some(&OriginType::AwsCloudhsm));
    assert_eq!(key.custom_key_store_id(), Some(id.as_str()));
    assert_eq!(key.cloud_hsm_cluster_id(), Some(cluster.id.as_str()));
    assert_eq!(key.key_state(), Some(&KeyState::Enabled));
    let key_id = key.key_id().to_string();
    let arn = key.arn().unwrap().to_string();

    let ct = kms
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new(b"cluster data".to_vec()))
        .encryption_context("k", "v")
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    let pt = kms
        .decrypt()
        .ciphertext_blob(ct.clone())
        .encryption_context("k", "v")
        .send()
        .await
        .unwrap();
    assert_eq!(pt.plaintext.unwrap().as_ref(), b"cluster data");
    let e = kms
        .decrypt()
        .ciphertext_blob(ct.clone())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidCiphertextException");
    let dk = kms
        .generate_data_key()
        .key_id(&key_id)
        .number_of_bytes(32)
        .send()
        .await
        .unwrap();
    let back = kms
        .decrypt()
        .ciphertext_blob(dk.ciphertext_blob.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        back.plaintext.unwrap().as_ref(),
        dk.plaintext.unwrap().as_ref()
    );
    let default_key = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let re = kms
        .re_encrypt()
        .ciphertext_blob(ct.clone())
        .source_encryption_context("k", "v")
        .destination_key_id(&default_key)
        .send()
        .await
        .unwrap();
    let pt = kms
        .decrypt()
        .ciphertext_blob(re.ciphertext_blob.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(pt.plaintext.unwrap().as_ref(), b"cluster data");
    let r = kms
        .generate_random()
        .custom_key_store_id(&id)
        .number_of_bytes(16)
        .send()
        .await
        .unwrap();
    assert_eq!(r.plaintext.unwrap().as_ref().len(), 16);
    // Rotation is not for custom key stores (key-state footnote [7]), nor is import ([9]).
    let custom = format!("{arn} is in a custom key store, which does not support this operation.");
    let e = kms
        .enable_key_rotation()
        .key_id(&key_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "UnsupportedOperationException");
    assert_eq!(message(&e), custom);
    let e = kms
        .get_key_rotation_status()
        .key_id(&key_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (code(&e), message(&e)),
        ("UnsupportedOperationException".to_string(), custom.clone())
    );
    let e = kms
        .get_parameters_for_import()
        .key_id(&key_id)
        .wrapping_algorithm(aws_sdk_kms::types::AlgorithmSpec::RsaesOaepSha256)
        .wrapping_key_spec(aws_sdk_kms::types::WrappingKeySpec::Rsa2048)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "UnsupportedOperationException");

    // The backing key is on both members, labelled with the key ARN, non-extractable.
    let profile = hsm::VendorProfile::builtin("softhsm2").unwrap();
    let ctx = hsm::module::load(std::path::Path::new(softhsm::MODULE)).unwrap();
    for m in &cluster.members {
        let slot = hsm::token::find_slot(&ctx, m, &profile).unwrap();
        let s = ctx.open_ro_session(slot).unwrap();
        // Not beside a token-object write of another test (profile `serialize_object_store`).
        let _shared = hsm::module::object_store_lock().read();
        let found = s
            .find_objects(&[
                cryptoki::object::Attribute::Class(cryptoki::object::ObjectClass::SECRET_KEY),
                cryptoki::object::Attribute::Label(arn.as_bytes().to_vec()),
            ])
            .unwrap();
        assert_eq!(found.len(), 1, "member {m}");
        let attrs = s
            .get_attributes(
                found[0],
                &[
                    cryptoki::object::AttributeType::Extractable,
                    cryptoki::object::AttributeType::Token,
                ],
            )
            .unwrap();
        assert!(attrs.contains(&cryptoki::object::Attribute::Extractable(false)));
        assert!(attrs.contains(&cryptoki::object::Attribute::Token(true)));
    }

    // Updates and deletion need a disconnected store.
    let e = kms
        .update_custom_key_store()
        .custom_key_store_id(&id)
        .new_custom_key_store_name("s3")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CustomKeyStoreInvalidStateException");
    let e = kms
        .delete_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CustomKeyStoreInvalidStateException");

    // Disconnect: keys become Unavailable, crypto fails, management still works.
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(state(&kms, &id).await.0, ConnectionStateType::Disconnected);
    let d = kms
        .describe_key()
        .key_id(&key_id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(d.key_state(), Some(&KeyState::Unavailable));
    assert!(!d.enabled());
    assert_eq!(d.cloud_hsm_cluster_id(), Some(cluster.id.as_str()));
    assert_eq!(d.custom_key_store_id(), Some(id.as_str()));
    let e = kms
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "KMSInvalidStateException");
    assert_eq!(message(&e), format!("{arn} is unavailable."));
    let e = kms
        .decrypt()
        .ciphertext_blob(ct.clone())
        .encryption_context("k", "v")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "KMSInvalidStateException");
    // The rest of the Unavailable column (reference §3.3): the other cryptographic operations
    // fail as Encrypt does ([11]), rotation ([7]); grants, aliases, tags and policies work.
    let unavailable = (
        "KMSInvalidStateException".to_string(),
        format!("{arn} is unavailable."),
    );
    let e = kms
        .generate_data_key()
        .key_id(&key_id)
        .number_of_bytes(32)
        .send()
        .await
        .unwrap_err();
    assert_eq!((code(&e), message(&e)), unavailable, "GenerateDataKey");
    let e = kms
        .generate_data_key_without_plaintext()
        .key_id(&key_id)
        .number_of_bytes(32)
        .send()
        .await
        .unwrap_err();
    assert_eq!((code(&e), message(&e)), unavailable, "GDKWithoutPlaintext");
    let e = kms
        .re_encrypt()
        .ciphertext_blob(ct.clone())
        .source_encryption_context("k", "v")
        .destination_key_id(&default_key)
        .send()
        .await
        .unwrap_err();
    assert_eq!((code(&e), message(&e)), unavailable, "ReEncrypt");
    let e = kms
        .enable_key_rotation()
        .key_id(&key_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (code(&e), message(&e)),
        ("UnsupportedOperationException".into(), custom.clone())
    );
    let e = kms
        .get_key_rotation_status()
        .key_id(&key_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (code(&e), message(&e)),
        ("UnsupportedOperationException".into(), custom.clone())
    );
    kms.create_grant()
        .key_id(&key_id)
        .grantee_principal("arn:aws:iam::111122223333:root")
        .operations(aws_sdk_kms::types::GrantOperation::Decrypt)
        .send()
        .await
        .unwrap();
    kms.create_alias()
        .alias_name("alias/unavailable")
        .target_key_id(&key_id)
        .send()
        .await
        .unwrap();
    kms.tag_resource()
        .key_id(&key_id)
        .tags(
            aws_sdk_kms::types::Tag::builder()
                .tag_key("k")
                .tag_value("v")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    kms.untag_resource()
        .key_id(&key_id)
        .tag_keys("k")
        .send()
        .await
        .unwrap();
    kms.update_alias()
        .alias_name("alias/unavailable")
        .target_key_id(&default_key)
        .send()
        .await
        .unwrap();
    kms.update_alias()
        .alias_name("alias/unavailable")
        .target_key_id(&key_id)
        .send()
        .await
        .unwrap();
    kms.get_key_policy().key_id(&key_id).send().await.unwrap();
    // ScheduleKeyDeletion works while unavailable, and so does CancelKeyDeletion ([13]).
    kms.schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    kms.cancel_key_deletion()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    kms.disable_key().key_id(&key_id).send().await.unwrap();
    kms.update_key_description()
        .key_id(&key_id)
        .description("still manageable")
        .send()
        .await
        .unwrap();
    let e = kms
        .create_key()
        .origin(OriginType::AwsCloudhsm)
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CustomKeyStoreInvalidStateException");
    kms.update_custom_key_store()
        .custom_key_store_id(&id)
        .new_custom_key_store_name("renamed")
        .send()
        .await
        .unwrap();

    // Reconnect: the key comes back in its (new) previous state.
    kms.connect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(settle(&kms, &id).await.0, ConnectionStateType::Connected);
    let d = kms
        .describe_key()
        .key_id(&key_id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(d.key_state(), Some(&KeyState::Disabled));
    kms.enable_key().key_id(&key_id).send().await.unwrap();
    let pt = kms
        .decrypt()
        .ciphertext_blob(ct.clone())
        .encryption_context("k", "v")
        .send()
        .await
        .unwrap();
    assert_eq!(pt.plaintext.unwrap().as_ref(), b"cluster data");

    // Deleting the key removes its backing objects (best effort, audited).
    kms.schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    let e = kms
        .delete_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CustomKeyStoreHasCMKsException");
    // A pending-deletion key stays PendingDeletion while disconnected and can be cancelled.
    let d = kms
        .describe_key()
        .key_id(&key_id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(d.key_state(), Some(&KeyState::PendingDeletion));
    kms.connect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(settle(&kms, &id).await.0, ConnectionStateType::Connected);
    srv.clock.advance(chrono::Duration::days(8));
    assert_eq!(srv.run_maintenance().await.deleted, 1);
    for m in &cluster.members {
        let slot = hsm::token::find_slot(&ctx, m, &profile).unwrap();
        let s = ctx.open_ro_session(slot).unwrap();
        // Not beside a token-object write of another test (profile `serialize_object_store`).
        let _shared = hsm::module::object_store_lock().read();
        let found = s
            .find_objects(&[cryptoki::object::Attribute::Label(arn.as_bytes().to_vec())])
            .unwrap();
        assert!(found.is_empty(), "backing key left on {m}");
    }
    let records = srv.audit_records().await;
    let del = records
        .iter()
        .find(|r| r["eventName"] == "DeleteKey")
        .expect("DeleteKey event");
    assert_eq!(del["eventType"], "AwsServiceEvent");
    assert_eq!(del["additionalEventData"]["customKeyStoreId"], id.as_str());
    assert!(del["additionalEventData"]["backingKeysDeletionStatus"]
        .as_str()
        .unwrap()
        .contains("SUCCESS"));

    kms.disconnect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    kms.delete_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    let e = kms
        .describe_custom_key_stores()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CustomKeyStoreNotFoundException");
}

#[tokio::test]
async fn wrong_password_fails_with_invalid_credentials() {
    let cluster = softhsm::cluster(2);
    let srv = start(&cluster).await;
    let kms = srv.client();
    let id = kms
        .create_custom_key_store()
        .custom_key_store_name("wrong-pw")
        .cloud_hsm_cluster_id(&cluster.id)
        .trust_anchor_certificate(&cluster.trust_anchor_pem)
        .key_store_password("notThePassword1")
        .send()
        .await
        .unwrap()
        .custom_key_store_id
        .unwrap();
    kms.connect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        settle(&kms, &id).await,
        (
            ConnectionStateType::Failed,
            Some("INVALID_CREDENTIALS".to_string())
        )
    );
    // A FAILED store must be disconnected before it connects again.
    let e = kms
        .connect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CustomKeyStoreInvalidStateException");
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    kms.update_custom_key_store()
        .custom_key_store_id(&id)
        .key_store_password(&cluster.pin)
        .send()
        .await
        .unwrap();
    kms.connect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        settle(&kms, &id).await,
        (ConnectionStateType::Connected, None)
    );

    // Connect rotated the PIN: the operator's password no longer logs in.
    let profile = hsm::VendorProfile::builtin("softhsm2").unwrap();
    let ctx = hsm::module::load(std::path::Path::new(softhsm::MODULE)).unwrap();
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    let slot = hsm::token::find_slot(&ctx, &cluster.members[0], &profile).unwrap();
    let s = ctx.open_rw_session(slot).unwrap();
    let r = s.login(
        cryptoki::session::UserType::User,
        Some(&cluster.pin.clone().into()),
    );
    assert!(
        r.is_err(),
        "the original PIN still works after connect rotated it"
    );
    drop(s);
    // ... and the KMS still connects with the rotated PIN it stored.
    kms.connect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        settle(&kms, &id).await,
        (ConnectionStateType::Connected, None)
    );

    // An unknown store.
    let e = kms
        .connect_custom_key_store()
        .custom_key_store_id("cks-0000000000000000a")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CustomKeyStoreNotFoundException");
}

/// A cluster belongs to one account (`[[clusters]] account`): another account that has the
/// cluster's trust anchor cannot put a store on it (and so cannot lock out its crypto user with
/// failed connects); to that account the cluster does not exist.
#[tokio::test]
async fn a_cluster_serves_only_the_account_that_owns_it() {
    let mine = softhsm::cluster(1);
    let mut theirs = softhsm::cluster(1);
    theirs.account = "444455556666".into();
    let srv =
        TestServer::start_with_config(&(mine.toml() + &theirs.toml()), common::backend_env()).await;
    let (alice, bob) = (srv.client(), srv.other_client());
    let create = |kms: aws_sdk_kms::Client, cluster: &softhsm::TestCluster, name: &str| {
        let (id, anchor, pin, name) = (
            cluster.id.clone(),
            cluster.trust_anchor_pem.clone(),
            cluster.pin.clone(),
            name.to_string(),
        );
        async move {
            kms.create_custom_key_store()
                .custom_key_store_name(name)
                .cloud_hsm_cluster_id(id)
                .trust_anchor_certificate(anchor)
                .key_store_password(pin)
                .send()
                .await
        }
    };
    // Bob has the trust anchor of Alice's cluster, and it is still not his.
    let e = create(bob.clone(), &mine, "bobs-on-alices")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CloudHsmClusterNotFoundException");
    let e = create(alice.clone(), &theirs, "alices-on-bobs")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CloudHsmClusterNotFoundException");
    // Each owner can.
    let a = create(alice.clone(), &mine, "alices").await.unwrap();
    let b = create(bob.clone(), &theirs, "bobs").await.unwrap();
    assert!(a.custom_key_store_id.is_some() && b.custom_key_store_id.is_some());
    // One store per cluster.
    let e = create(alice.clone(), &mine, "alices-second")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CloudHsmClusterInUseException");
    // Nothing of Alice's cluster was touched by Bob's attempt.
    let id = a.custom_key_store_id.unwrap();
    alice
        .connect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        settle(&alice, &id).await,
        (ConnectionStateType::Connected, None)
    );
}
