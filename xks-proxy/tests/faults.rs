//! Overload and faults: pool throttling, HSM timeouts, and recovery after the HSM login or
//! sessions are lost or the token connection is rebuilt. Each test has a token of its own,
//! because PKCS#11 login state is shared by the whole process per token.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use xks_wire::{ErrorName, HealthStatus};

async fn proxy_on_own_token(name: &str, extra: &str, sessions: usize) -> TestProxy {
    let token = token(&unique(name));
    let label = unique("k");
    create_key(&token, &label);
    let mut opts = ProxyOptions::new(&token).key("foo", &label);
    opts.extra = extra.to_string();
    let toml = opts
        .toml()
        .replace("max_sessions = 4", &format!("max_sessions = {sessions}"));
    TestProxy::start_toml(toml, opts).await
}

/// Occupies every PKCS#11 session of the proxy's HSM for `hold`, from a plain thread.
fn hold_sessions(p: &TestProxy, hold: Duration) -> std::thread::JoinHandle<()> {
    let token = p.state().fleet[0].token().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        token
            .with_session(false, |_| {
                let _ = tx.send(());
                std::thread::sleep(hold);
                Ok(())
            })
            .unwrap();
    });
    rx.recv().unwrap();
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_work_than_the_pool_takes_is_throttled() {
    let p = proxy_on_own_token(
        "throttle",
        "[pool]\nmax_in_flight = 1\nqueue_timeout_ms = 20\nhsm_timeout_ms = 3000\n",
        1,
    )
    .await;
    let c = p.client();
    c.encrypt("foo", b"warm", None, false).await.assert_ok();
    let held = hold_sessions(&p, Duration::from_millis(800));
    // The first request takes the only worker and waits for the HSM; the next ones cannot get
    // a worker within 20 ms.
    let first = tokio::spawn({
        let c = c.clone();
        async move { c.encrypt("foo", b"first", None, false).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let r = c.encrypt("foo", b"second", None, false).await;
    r.assert_error(ErrorName::ThrottlingException);
    assert!(started.elapsed() < Duration::from_millis(500));
    c.metadata("foo")
        .await
        .assert_error(ErrorName::ThrottlingException);
    // Health does not go through the pool and still answers (from its cache).
    c.health().await.assert_ok();
    first.await.unwrap().assert_ok();
    held.join().unwrap();
    c.encrypt("foo", b"after", None, false).await.assert_ok();
    let m = p.metrics().await;
    assert!(
        m.contains("operation=\"Encrypt\",outcome=\"ThrottlingException\"} 1"),
        "{m}"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hsm_that_does_not_answer_in_time_is_a_dependency_timeout() {
    let p = proxy_on_own_token(
        "timeout",
        "[pool]\nmax_in_flight = 4\nqueue_timeout_ms = 50\nhsm_timeout_ms = 150\n",
        1,
    )
    .await;
    let c = p.client();
    c.encrypt("foo", b"warm", None, false).await.assert_ok();
    let held = hold_sessions(&p, Duration::from_millis(700));
    let started = Instant::now();
    let r = c.encrypt("foo", b"stuck", None, false).await;
    r.assert_error(ErrorName::DependencyTimeoutException);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(140) && took < Duration::from_millis(600),
        "{took:?}"
    );
    held.join().unwrap();
    // The HSM answers again: so does the proxy.
    tokio::time::sleep(Duration::from_millis(400)).await;
    c.encrypt("foo", b"ok", None, false).await.assert_ok();
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_after_the_hsm_login_and_sessions_are_lost() {
    let p = proxy_on_own_token("lost-login", "", 4).await;
    let c = p.client();
    let before = c.encrypt("foo", b"before", Some(b"a"), false).await;
    before.assert_ok();
    let hsm = p.state().fleet[0].clone();
    let generation = hsm.token().unwrap().generation();
    // Log the application out (what a token restart or the loss of every session does): the
    // cached key handle becomes unusable and private objects become invisible.
    hsm.token().unwrap().with_anchor(|s| s.logout()).unwrap();
    let after = c.encrypt("foo", b"after", Some(b"a"), false).await;
    after.assert_ok();
    assert!(
        hsm.token().unwrap().generation() > generation,
        "the connection was rebuilt"
    );
    let d = c.decrypt_response("foo", &before.body, Some(b"a")).await;
    d.assert_ok();
    assert_eq!(unb64(&d.body["plaintext"]), b"before");
    c.metadata("foo").await.assert_ok();
    // Again, with the loss noticed first by a decrypt and by the health probe.
    hsm.token().unwrap().with_anchor(|s| s.logout()).unwrap();
    c.decrypt_response("foo", &after.body, Some(b"a"))
        .await
        .assert_ok();
    hsm.token().unwrap().with_anchor(|s| s.logout()).unwrap();
    p.state().health.check_all().await;
    let h = c.health().await;
    assert_eq!(
        h.body["ekmFleetDetails"][0]["healthStatus"], "ACTIVE",
        "{}",
        h.body
    );
    c.encrypt("foo", b"x", None, false).await.assert_ok();
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_after_the_token_connection_is_rebuilt() {
    let p = proxy_on_own_token("reconnect", "", 2).await;
    let c = p.client();
    let e = c.encrypt("foo", b"data", None, true).await;
    e.assert_ok();
    let hsm = p.state().fleet[0].clone();
    for _ in 0..3 {
        // Every session and the anchor are replaced; all cached handles are of an old
        // generation.
        hsm.token().unwrap().reconnect().unwrap();
        c.decrypt_response("foo", &e.body, None).await.assert_ok();
        c.encrypt("foo", b"data", None, true).await.assert_ok();
    }
    // Concurrent requests during reconnects never fail.
    let mut tasks = Vec::new();
    for i in 0..4 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut failures = 0;
            for _ in 0..30 {
                let r = c
                    .encrypt("foo", format!("t{i}").as_bytes(), None, false)
                    .await;
                if r.status != 200 {
                    failures += 1;
                    eprintln!("failure: {}", r.body);
                }
            }
            failures
        }));
    }
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let h = hsm.clone();
        tokio::task::spawn_blocking(move || h.token().unwrap().reconnect().unwrap())
            .await
            .unwrap();
    }
    let mut failures = 0;
    for t in tasks {
        failures += t.await.unwrap();
    }
    assert_eq!(failures, 0);
    p.state().health.check_all().await;
    let snap = p.state().health.snapshot();
    assert_eq!(
        snap[0].1.status,
        HealthStatus::Active,
        "{}",
        snap[0].1.detail
    );
    p.stop().await;
}
