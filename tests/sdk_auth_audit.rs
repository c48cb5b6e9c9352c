//! Authentication failures and audit records through the real `aws-sdk-kms` client: one
//! CloudTrail-shaped record per call (failures included) whose requestID is the response's,
//! with the caller, the resolved key ARN and the encryption context, and never plaintext,
//! ciphertext or data keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use aws_sdk_kms::operation::RequestId;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::Value;

const ACCOUNT: &str = "111122223333";
const ALICE: &str = "arn:aws:iam::111122223333:user/alice";
const BOB: &str = "arn:aws:iam::444455556666:user/bob";

fn record<'a>(records: &'a [Value], request_id: &str) -> &'a Value {
    let matching: Vec<&Value> = records
        .iter()
        .filter(|r| r["requestID"] == request_id)
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "exactly one audit record for request {request_id}"
    );
    matching[0]
}

fn resource_arns(r: &Value) -> Vec<String> {
    r["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["ARN"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn wrong_secret_is_invalid_signature() {
    let srv = common::TestServer::start().await;
    let bad = srv.client_with(
        common::ACCESS_KEY,
        "not-the-right-secret-at-all-000000000000",
    );
    let err = bad.list_keys().send().await.unwrap_err();
    assert_eq!(common::code(&err), "InvalidSignatureException");
    assert_eq!(
        common::message(&err),
        "The request signature we calculated does not match the signature you provided. \
         Check your AWS Secret Access Key and signing method. Consult the service \
         documentation for details."
    );
    let rid = err.request_id().expect("request id").to_string();

    // Nothing happened: a CreateKey with the wrong secret creates no key.
    let (c, _) = common::fail(bad.create_key().send().await);
    assert_eq!(c, "InvalidSignatureException");
    assert!(srv
        .client()
        .list_keys()
        .send()
        .await
        .unwrap()
        .keys()
        .is_empty());

    // The failure is audited with the claimed access key.
    let records = srv.audit_records().await;
    let r = record(&records, &rid);
    assert_eq!(r["eventName"], "ListKeys");
    assert_eq!(r["errorCode"], "InvalidSignatureException");
    assert_eq!(r["userIdentity"]["accessKeyId"], common::ACCESS_KEY);
}

#[tokio::test]
async fn unknown_access_key_is_unrecognized_client() {
    let srv = common::TestServer::start().await;
    let stranger = srv.client_with(
        "AKIANOBODYKNOWSTHIS1",
        "whatever-secret-0000000000000000000000",
    );
    let err = stranger
        .describe_key()
        .key_id("alias/x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(common::code(&err), "UnrecognizedClientException");
    assert_eq!(
        common::message(&err),
        "The security token included in the request is invalid."
    );
    let rid = err.request_id().expect("request id").to_string();
    let (c, m) = common::fail(stranger.generate_random().number_of_bytes(8).send().await);
    assert_eq!(c, "UnrecognizedClientException");
    assert_eq!(m, "The security token included in the request is invalid.");

    let records = srv.audit_records().await;
    let r = record(&records, &rid);
    assert_eq!(r["eventName"], "DescribeKey");
    assert_eq!(r["errorCode"], "UnrecognizedClientException");
    assert_eq!(
        r["errorMessage"],
        "The security token included in the request is invalid."
    );
    assert_eq!(r["userIdentity"]["accessKeyId"], "AKIANOBODYKNOWSTHIS1");
}

#[tokio::test]
async fn one_audit_record_per_call() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let other = srv.other_client();
    // (request id, event name, error code)
    let mut calls: Vec<(String, &str, Option<&str>)> = Vec::new();

    let out = kms
        .create_key()
        .description("audited")
        .send()
        .await
        .unwrap();
    calls.push((out.request_id().unwrap().into(), "CreateKey", None));
    let md = out.key_metadata.unwrap();
    let id = md.key_id().to_string();
    let arn = md.arn().unwrap().to_string();

    let out = kms
        .create_alias()
        .alias_name("alias/audited")
        .target_key_id(&id)
        .send()
        .await
        .unwrap();
    calls.push((out.request_id().unwrap().into(), "CreateAlias", None));

    let out = kms
        .encrypt()
        .key_id("alias/audited")
        .plaintext(Blob::new(b"hello".to_vec()))
        .encryption_context("Department", "Finance")
        .send()
        .await
        .unwrap();
    calls.push((out.request_id().unwrap().into(), "Encrypt", None));
    let blob = out.ciphertext_blob.unwrap();

    let out = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .encryption_context("Department", "Finance")
        .send()
        .await
        .unwrap();
    calls.push((out.request_id().unwrap().into(), "Decrypt", None));

    let err = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .send()
        .await
        .unwrap_err();
    calls.push((
        err.request_id().unwrap().into(),
        "Decrypt",
        Some("InvalidCiphertextException"),
    ));

    let err = kms.describe_key().key_id("foo").send().await.unwrap_err();
    calls.push((
        err.request_id().unwrap().into(),
        "DescribeKey",
        Some("NotFoundException"),
    ));

    let err = kms
        .encrypt()
        .key_id(&id)
        .plaintext(Blob::new(b"dry".to_vec()))
        .dry_run(true)
        .send()
        .await
        .unwrap_err();
    calls.push((
        err.request_id().unwrap().into(),
        "Encrypt",
        Some("DryRunOperationException"),
    ));

    let err = kms
        .encrypt()
        .key_id(&id)
        .plaintext(Blob::new(vec![0u8; 4097]))
        .send()
        .await
        .unwrap_err();
    calls.push((
        err.request_id().unwrap().into(),
        "Encrypt",
        Some("ValidationException"),
    ));

    let out = kms
        .generate_random()
        .number_of_bytes(16)
        .send()
        .await
        .unwrap();
    calls.push((out.request_id().unwrap().into(), "GenerateRandom", None));

    let out = kms
        .schedule_key_deletion()
        .key_id(&arn)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    calls.push((
        out.request_id().unwrap().into(),
        "ScheduleKeyDeletion",
        None,
    ));

    let err = other.describe_key().key_id(&arn).send().await.unwrap_err();
    calls.push((
        err.request_id().unwrap().into(),
        "DescribeKey",
        Some("AccessDeniedException"),
    ));

    let records = srv.audit_records().await;
    assert_eq!(
        records.len(),
        calls.len(),
        "one record per call: {records:#?}"
    );
    let mut event_ids = std::collections::BTreeSet::new();
    for (rid, name, error) in &calls {
        let r = record(&records, rid);
        assert_eq!(r["eventName"], *name, "{rid}");
        assert_eq!(r["eventSource"], "kms.amazonaws.com");
        assert_eq!(r["eventType"], "AwsApiCall");
        assert_eq!(r["awsRegion"], "us-east-1");
        assert_eq!(r["eventCategory"], "Management");
        assert_eq!(r["managementEvent"], true);
        assert!(r["eventTime"].as_str().unwrap().ends_with('Z'));
        event_ids.insert(r["eventID"].as_str().unwrap().to_string());
        match error {
            Some(code) => {
                assert_eq!(r["errorCode"], *code, "{name}");
                assert!(r.get("errorMessage").is_some() || *code == "InvalidCiphertextException");
            }
            None => {
                assert!(r.get("errorCode").is_none(), "{r}");
            }
        }
    }
    assert_eq!(event_ids.len(), calls.len(), "eventIDs are unique");

    // Caller identity.
    let create = record(&records, &calls[0].0);
    assert_eq!(create["userIdentity"]["arn"], ALICE);
    assert_eq!(create["userIdentity"]["accountId"], ACCOUNT);
    assert_eq!(create["userIdentity"]["accessKeyId"], common::ACCESS_KEY);
    assert_eq!(create["userIdentity"]["type"], "IAMUser");
    assert_eq!(create["recipientAccountId"], ACCOUNT);
    assert_eq!(create["readOnly"], false);
    assert_eq!(create["requestParameters"]["description"], "audited");
    assert_eq!(
        create["responseElements"]["keyMetadata"]["arn"],
        arn.as_str()
    );
    assert_eq!(resource_arns(create), vec![arn.clone()]);

    // CreateAlias names the alias and the key.
    let alias = record(&records, &calls[1].0);
    let arns = resource_arns(alias);
    assert!(arns.contains(&arn), "{arns:?}");
    assert!(
        arns.contains(&format!("arn:aws:kms:us-east-1:{ACCOUNT}:alias/audited")),
        "{arns:?}"
    );
    assert_eq!(alias["requestParameters"]["aliasName"], "alias/audited");

    // Encrypt by alias: keyId keeps the alias, resources hold the resolved key ARN.
    let enc = record(&records, &calls[2].0);
    assert_eq!(enc["readOnly"], true);
    assert_eq!(enc["requestParameters"]["keyId"], "alias/audited");
    assert_eq!(
        enc["requestParameters"]["encryptionContext"],
        serde_json::json!({"Department": "Finance"})
    );
    assert_eq!(
        enc["requestParameters"]["encryptionAlgorithm"],
        "SYMMETRIC_DEFAULT"
    );
    assert_eq!(resource_arns(enc), vec![arn.clone()]);
    assert!(enc["responseElements"].is_null());

    // Decrypt without KeyId still names the key, and logs the algorithm.
    let dec = record(&records, &calls[3].0);
    assert_eq!(
        dec["requestParameters"]["encryptionContext"],
        serde_json::json!({"Department": "Finance"})
    );
    assert_eq!(
        dec["requestParameters"]["encryptionAlgorithm"],
        "SYMMETRIC_DEFAULT"
    );
    assert_eq!(resource_arns(dec), vec![arn.clone()]);
    assert!(dec["responseElements"].is_null());

    // GenerateRandom: no parameters, no resources.
    let rnd = record(&records, &calls[8].0);
    assert!(rnd["requestParameters"].is_null());
    assert_eq!(rnd["resources"], serde_json::json!([]));

    // ScheduleKeyDeletion logs the window and the outcome.
    let sched = record(&records, &calls[9].0);
    assert_eq!(sched["requestParameters"]["pendingWindowInDays"], 7);
    assert_eq!(sched["responseElements"]["keyId"], arn.as_str());
    assert_eq!(sched["responseElements"]["keyState"], "PendingDeletion");

    // The denied cross-account call is in the caller's account.
    let denied = record(&records, &calls[10].0);
    assert_eq!(denied["userIdentity"]["arn"], BOB);
    assert_eq!(denied["recipientAccountId"], "444455556666");
}

#[tokio::test]
async fn re_encrypt_audit_lists_source_then_destination() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let a = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let b = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let blob = kms
        .encrypt()
        .key_id(a.key_id())
        .plaintext(Blob::new(b"x".to_vec()))
        .encryption_context("src", "1")
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    let out = kms
        .re_encrypt()
        .ciphertext_blob(blob)
        .source_encryption_context("src", "1")
        .destination_key_id(b.key_id())
        .destination_encryption_context("dst", "2")
        .send()
        .await
        .unwrap();
    let rid = out.request_id().unwrap().to_string();
    let records = srv.audit_records().await;
    let r = record(&records, &rid);
    assert_eq!(r["eventName"], "ReEncrypt");
    assert_eq!(
        resource_arns(r),
        vec![a.arn().unwrap().to_string(), b.arn().unwrap().to_string()]
    );
    assert_eq!(
        r["requestParameters"]["sourceEncryptionContext"],
        serde_json::json!({"src": "1"})
    );
    assert_eq!(
        r["requestParameters"]["destinationEncryptionContext"],
        serde_json::json!({"dst": "2"})
    );
    assert_eq!(r["requestParameters"]["destinationKeyId"], b.key_id());
}

#[tokio::test]
async fn audit_log_never_holds_plaintext_ciphertext_or_data_keys() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let id = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id()
        .to_string();
    let other = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id()
        .to_string();
    let plaintext = b"ZEBRA-QUOKKA-7731-plaintext-that-must-never-be-logged".to_vec();
    let mut secrets: Vec<Vec<u8>> = vec![plaintext.clone()];

    let ct = kms
        .encrypt()
        .key_id(&id)
        .plaintext(Blob::new(plaintext.clone()))
        .encryption_context("ctx", "visible")
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap()
        .into_inner();
    secrets.push(ct.clone());
    let dec = kms
        .decrypt()
        .ciphertext_blob(Blob::new(ct.clone()))
        .encryption_context("ctx", "visible")
        .send()
        .await
        .unwrap();
    assert_eq!(dec.plaintext.unwrap().as_ref(), plaintext.as_slice());
    // A failed encrypt (too large) carrying the plaintext too.
    let mut big = plaintext.clone();
    big.resize(4097, b'!');
    let (c, m) = common::fail(
        kms.encrypt()
            .key_id(&id)
            .plaintext(Blob::new(big))
            .send()
            .await,
    );
    assert_eq!(c, "ValidationException");
    assert!(!m.contains("ZEBRA"), "{m}");
    // A DryRun carrying it.
    let (c, _) = common::fail(
        kms.encrypt()
            .key_id(&id)
            .plaintext(Blob::new(plaintext.clone()))
            .dry_run(true)
            .send()
            .await,
    );
    assert_eq!(c, "DryRunOperationException");

    let re = kms
        .re_encrypt()
        .ciphertext_blob(Blob::new(ct.clone()))
        .source_encryption_context("ctx", "visible")
        .destination_key_id(&other)
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap()
        .into_inner();
    secrets.push(re);

    let dk = kms
        .generate_data_key()
        .key_id(&id)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    secrets.push(dk.plaintext.unwrap().into_inner());
    secrets.push(dk.ciphertext_blob.unwrap().into_inner());
    let dkw = kms
        .generate_data_key_without_plaintext()
        .key_id(&id)
        .number_of_bytes(48)
        .send()
        .await
        .unwrap();
    secrets.push(dkw.ciphertext_blob.unwrap().into_inner());
    let rnd = kms
        .generate_random()
        .number_of_bytes(48)
        .send()
        .await
        .unwrap();
    secrets.push(rnd.plaintext.unwrap().into_inner());
    // GetKeyPolicy's output is not logged either (reference §12): a policy with a marker Sid.
    let policy = format!(
        "{{\"Version\": \"2012-10-17\", \"Statement\": [{{\"Sid\": \"PELICAN-MARKER\", \
         \"Effect\": \"Allow\", \"Principal\": {{\"AWS\": \"arn:aws:iam::{ACCOUNT}:root\"}}, \
         \"Action\": \"kms:*\", \"Resource\": \"*\"}}]}}"
    );
    let got = kms
        .get_key_policy()
        .key_id(&other)
        .send()
        .await
        .unwrap()
        .policy
        .unwrap();
    assert!(got.contains("key-default-1"), "{got}");
    kms.put_key_policy()
        .key_id(&other)
        .policy_name("default")
        .policy(&policy)
        .send()
        .await
        .unwrap();
    let got = kms
        .get_key_policy()
        .key_id(&other)
        .send()
        .await
        .unwrap()
        .policy
        .unwrap();
    assert_eq!(got, policy);

    let records = srv.audit_records().await;
    assert_eq!(records.len(), 13, "{records:#?}");
    assert!(
        !records
            .iter()
            .filter(|r| r["eventName"] == "GetKeyPolicy")
            .any(|r| r.to_string().contains("PELICAN-MARKER")
                || r.to_string().contains("key-default-1")),
        "GetKeyPolicy output in the audit log"
    );
    let text = std::fs::read_to_string(srv.data_dir.path().join("audit.log")).unwrap();
    assert!(text.contains("visible"), "the encryption context is logged");
    assert!(
        !text.contains("ZEBRA-QUOKKA"),
        "raw plaintext in the audit log"
    );
    for s in &secrets {
        let b64 = B64.encode(s);
        // Any 24-character window of the base64 text (18 bytes at one alignment).
        let needle = &b64[4..28];
        assert!(
            !text.contains(needle),
            "secret bytes in the audit log: {needle}"
        );
        assert!(!text.contains(&b64));
        let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        assert!(!text.contains(&url_safe[4..28]));
        let hex: String = s.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!text.contains(&hex[..32]));
    }
    // Plaintext base64 at every alignment.
    for skip in 0..3 {
        let b64 = B64.encode(&plaintext[skip..]);
        assert!(
            !text.contains(&b64[..32]),
            "plaintext base64 (offset {skip})"
        );
    }
}

#[tokio::test]
async fn management_audit_records_name_the_affected_key() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let md = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let (id, arn) = (md.key_id().to_string(), md.arn().unwrap().to_string());
    let md2 = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let (id2, arn2) = (md2.key_id().to_string(), md2.arn().unwrap().to_string());

    let mut expect: Vec<(String, &str, String)> = Vec::new();
    let r = kms.disable_key().key_id(&id).send().await.unwrap();
    expect.push((r.request_id().unwrap().into(), "DisableKey", arn.clone()));
    let r = kms.enable_key().key_id(&id).send().await.unwrap();
    expect.push((r.request_id().unwrap().into(), "EnableKey", arn.clone()));
    let r = kms.enable_key_rotation().key_id(&id).send().await.unwrap();
    expect.push((
        r.request_id().unwrap().into(),
        "EnableKeyRotation",
        arn.clone(),
    ));
    let r = kms
        .create_alias()
        .alias_name("alias/named")
        .target_key_id(&id)
        .send()
        .await
        .unwrap();
    expect.push((r.request_id().unwrap().into(), "CreateAlias", arn.clone()));
    let r = kms
        .update_alias()
        .alias_name("alias/named")
        .target_key_id(&id2)
        .send()
        .await
        .unwrap();
    expect.push((r.request_id().unwrap().into(), "UpdateAlias", arn2.clone()));
    let r = kms
        .delete_alias()
        .alias_name("alias/named")
        .send()
        .await
        .unwrap();
    expect.push((r.request_id().unwrap().into(), "DeleteAlias", arn2.clone()));
    let r = kms
        .tag_resource()
        .key_id(&id)
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
    expect.push((r.request_id().unwrap().into(), "TagResource", arn.clone()));
    let r = kms
        .untag_resource()
        .key_id(&id)
        .tag_keys("k")
        .send()
        .await
        .unwrap();
    expect.push((r.request_id().unwrap().into(), "UntagResource", arn.clone()));
    let r = kms.cancel_key_deletion().key_id(&id).send().await;
    assert!(r.is_err());

    let records = srv.audit_records().await;
    for (rid, name, key_arn) in &expect {
        let r = record(&records, rid);
        assert_eq!(r["eventName"], *name);
        assert_eq!(
            r["responseElements"],
            serde_json::json!({ "keyId": key_arn }),
            "{name}"
        );
        assert!(resource_arns(r).contains(key_arn), "{name}");
    }
    // A failed call has no response elements.
    let failed: Vec<&Value> = records
        .iter()
        .filter(|r| r["eventName"] == "CancelKeyDeletion")
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["responseElements"].is_null());
    assert_eq!(failed[0]["errorCode"], "KMSInvalidStateException");
}
