//! Request quotas (`[limits] request_rates`) and resource quotas (`aliases_per_key`,
//! `grants_per_key`) through the real `aws-sdk-kms` client: a burst against a low configured
//! rate is admitted at that rate (measured counts, no timing asserts), the excess gets AWS's
//! `ThrottlingException` exactly, accounts have their own buckets and rates, and the resource
//! quotas answer AWS's `LimitExceededException` at the configured values.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::GrantOperation;
use common::{code, message, TestServer};

const RATE: f64 = 20.0;

async fn server(limits: &str) -> TestServer {
    let mut env = common::backend_env();
    env.push(("KMS_LIMITS__REQUEST_QUOTAS".into(), "true".into()));
    TestServer::start_with_config(limits, env).await
}

#[tokio::test]
async fn crypto_quota_throttles_at_the_configured_rate() {
    let srv = server(&format!(
        "[limits]\nrequest_rates = {{ cryptographic_symmetric = {RATE}, CreateKey = 0.1 }}\n\
         [limits.accounts.444455556666]\n\
         request_rates = {{ cryptographic_symmetric = 1000 }}\n"
    ))
    .await;
    let kms = srv.client();
    let key = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;

    // CreateKey at 0.1/s: one request of burst, the next one within 10 s is throttled, with
    // AWS's exact answer.
    let e = kms.create_key().send().await.unwrap_err();
    assert_eq!(code(&e), "ThrottlingException");
    assert_eq!(
        message(&e),
        "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls."
    );
    let raw = e.raw_response().expect("a response");
    assert_eq!(raw.status().as_u16(), 400);
    let body: serde_json::Value =
        serde_json::from_slice(raw.body().bytes().expect("a body")).unwrap();
    assert_eq!(body["__type"], "ThrottlingException");

    // A burst of Encrypt from 16 workers for about 1.5 s.
    let ok = Arc::new(AtomicUsize::new(0));
    let throttled = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let window = Duration::from_millis(1500);
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (kms, key, ok, throttled) = (kms.clone(), key.clone(), ok.clone(), throttled.clone());
        workers.push(tokio::spawn(async move {
            while started.elapsed() < window {
                match kms
                    .encrypt()
                    .key_id(&key)
                    .plaintext(Blob::new(b"x".to_vec()))
                    .send()
                    .await
                {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        assert_eq!(code(&e), "ThrottlingException", "{e:?}");
                        throttled.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (ok, throttled) = (
        ok.load(Ordering::Relaxed),
        throttled.load(Ordering::Relaxed),
    );
    eprintln!(
        "accepted {ok} ({:.1}/s), throttled {throttled} in {elapsed:.2} s at {RATE}/s",
        ok as f64 / elapsed
    );
    // A bucket holds one second of the rate: at most that burst plus the rate over the window.
    assert!(
        (ok as f64) <= RATE + RATE * elapsed + 1.0,
        "accepted {ok} in {elapsed:.2} s"
    );
    // The burst at least, and the excess refused.
    assert!(ok as f64 >= RATE, "accepted only {ok}");
    assert!(throttled > 0, "nothing throttled ({ok} accepted)");

    // GenerateRandom shares the symmetric quota: 10 s of the rate at once right after the
    // burst cannot all pass (the bucket holds at most one second of it; all passing would need
    // the requests to spread over 9 s, which even a loaded machine does not take).
    let randoms: Vec<_> = (0..(10 * RATE as usize))
        .map(|_| {
            let kms = kms.clone();
            tokio::spawn(async move { kms.generate_random().number_of_bytes(8).send().await })
        })
        .collect();
    let mut refused = 0;
    for r in randoms {
        if let Err(e) = r.await.unwrap() {
            assert_eq!(code(&e), "ThrottlingException");
            refused += 1;
        }
    }
    assert!(refused > 0, "GenerateRandom is not counted");

    // A DryRun is counted like the call it stands for (reference §15, requirement 37).
    let dry: Vec<_> = (0..(10 * RATE as usize))
        .map(|_| {
            let (kms, key) = (kms.clone(), key.clone());
            tokio::spawn(async move {
                kms.encrypt()
                    .key_id(&key)
                    .plaintext(Blob::new(b"x".to_vec()))
                    .dry_run(true)
                    .send()
                    .await
            })
        })
        .collect();
    let mut refused = 0;
    for r in dry {
        let e = r.await.unwrap().unwrap_err();
        if code(&e) == "ThrottlingException" {
            refused += 1;
        } else {
            assert_eq!(code(&e), "DryRunOperationException", "{e:?}");
        }
    }
    assert!(refused > 0, "DryRun is not counted");

    // Another account has its own bucket and its own rate (1000/s): 100 at once pass.
    let other = srv.other_client();
    let theirs = other
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    for _ in 0..100 {
        other
            .encrypt()
            .key_id(&theirs)
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
            .await
            .unwrap();
    }
}

/// Aliases per key and grants per key at configured values, with AWS's messages; another
/// account has its own values.
#[tokio::test]
async fn alias_and_grant_quotas_are_configurable() {
    let srv = server(
        "[limits]\naliases_per_key = 2\ngrants_per_key = 1\n\
         [limits.accounts.444455556666]\naliases_per_key = 1\n",
    )
    .await;
    let kms = srv.client();
    let key = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    for name in ["alias/q1", "alias/q2"] {
        kms.create_alias()
            .alias_name(name)
            .target_key_id(&key)
            .send()
            .await
            .unwrap();
    }
    let e = kms
        .create_alias()
        .alias_name("alias/q3")
        .target_key_id(&key)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (code(&e).as_str(), message(&e).as_str()),
        (
            "LimitExceededException",
            "Aliases per key quota for this account in this region is 2, current usage is 2."
        )
    );

    let other = srv.other_client();
    let theirs = other
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    other
        .create_alias()
        .alias_name("alias/t1")
        .target_key_id(&theirs)
        .send()
        .await
        .unwrap();
    let e = other
        .create_alias()
        .alias_name("alias/t2")
        .target_key_id(&theirs)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        message(&e),
        "Aliases per key quota for this account in this region is 1, current usage is 1."
    );

    let grant = |name: &'static str| {
        kms.create_grant()
            .key_id(&key)
            .grantee_principal("arn:aws:iam::444455556666:user/bob")
            .operations(GrantOperation::Encrypt)
            .name(name)
            .send()
    };
    grant("g1").await.unwrap();
    let e = grant("g2").await.unwrap_err();
    assert_eq!(
        (code(&e).as_str(), message(&e).as_str()),
        (
            "LimitExceededException",
            "Grant quota for this key is 1 but the current usage is 1."
        )
    );
}

/// Requests that do not authenticate count against no account's quota (there is no verified
/// account to charge; charging the claimed one would let anyone spend another account's
/// rate): a burst of badly signed CreateKey calls leaves the account's one-request burst
/// intact. They are counted by code in `kms_authentication_failures_total`.
#[tokio::test]
async fn requests_that_fail_authentication_spend_no_quota() {
    let srv = server("[limits]\nrequest_rates = { CreateKey = 0.1 }\n").await;
    let forged = srv.client_with(
        kms::config::DEV_ACCESS_KEY_ID,
        "not-the-secret-access-key-of-the-dev-user",
    );
    for _ in 0..20 {
        let e = forged.create_key().send().await.unwrap_err();
        assert_eq!(code(&e), "InvalidSignatureException", "{e:?}");
    }
    let failures = srv
        .state
        .service
        .metrics()
        .authentication_failures
        .with_label_values(&["InvalidSignatureException"])
        .get();
    assert_eq!(failures, 20);
    // The account's burst of one CreateKey is still there; the next one is throttled.
    let kms = srv.client();
    kms.create_key().send().await.unwrap();
    let e = kms.create_key().send().await.unwrap_err();
    assert_eq!(code(&e), "ThrottlingException");
}

/// A cross-account call spends the caller's request quota, not the key owner's (reference
/// §11.2, §15 requirement 32): account B (1 request/s) is throttled on A's key while A (1000/s)
/// is not.
#[tokio::test]
async fn cross_account_calls_spend_the_callers_quota() {
    let srv = server(
        "[limits]\nrequest_rates = { cryptographic_symmetric = 1000 }\n\
         [limits.accounts.444455556666]\n\
         request_rates = { cryptographic_symmetric = 1 }\n",
    )
    .await;
    let (mine, theirs) = (srv.client(), srv.other_client());
    let md = mine
        .create_key()
        .policy(
            r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "kms:Encrypt", "Resource": "*"}]}"#,
        )
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let arn = md.arn().unwrap().to_string();
    let burst = |kms: aws_sdk_kms::Client| {
        let arn = arn.clone();
        async move {
            let calls: Vec<_> = (0..10)
                .map(|_| {
                    let (kms, arn) = (kms.clone(), arn.clone());
                    tokio::spawn(async move {
                        kms.encrypt()
                            .key_id(&arn)
                            .plaintext(Blob::new(b"x".to_vec()))
                            .send()
                            .await
                    })
                })
                .collect();
            let mut throttled = 0;
            for c in calls {
                if let Err(e) = c.await.unwrap() {
                    assert_eq!(code(&e), "ThrottlingException", "{e:?}");
                    throttled += 1;
                }
            }
            throttled
        }
    };
    // B's bucket holds one request (and refills one a second).
    let throttled = burst(theirs).await;
    assert!(throttled >= 8, "B throttled only {throttled} of 10");
    // A's bucket is untouched by B's calls on A's key.
    assert_eq!(burst(mine).await, 0);
}
