//! Run-time changes: credential rotation under load (add the new credential, move clients,
//! remove the old one) without failing a request, in-flight requests surviving the removal of
//! their credential, key disable/enable, invalid reloads, health states, graceful shutdown.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use xks_wire::{ErrorName, Operation};

fn opts_with_credentials(token: &str, label: &str, creds: &[(&str, &str)]) -> ProxyOptions {
    let mut o = ProxyOptions::new(token).key("foo", label);
    o.credentials = creds
        .iter()
        .map(|(a, s)| (a.to_string(), s.to_string()))
        .collect();
    o.extra = "[reload]\ninterval_secs = 1\n".into();
    o
}

struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// `workers` keep-alive connections sending Encrypt with `client` until stopped.
fn load(client: Client, workers: usize) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (c, stop, ok, failed) = (client.clone(), stop.clone(), ok.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = c.connect().await.unwrap();
            let body = serde_json::to_vec(&serde_json::json!({
                "requestMetadata": metadata("Encrypt"),
                "plaintext": b64(b"rotation"),
                "encryptionAlgorithm": "AES_GCM",
            }))
            .unwrap();
            while !stop.load(Ordering::Relaxed) {
                match c
                    .send_raw(
                        &mut conn,
                        "POST",
                        &c.path(Operation::Encrypt, "foo"),
                        body.clone(),
                        true,
                    )
                    .await
                {
                    Ok(r) if r.status == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        eprintln!("failed: {} {}", r.status, r.body);
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("transport: {e}");
                        failed.fetch_add(1, Ordering::Relaxed);
                        conn = c.connect().await.unwrap();
                    }
                }
            }
        }));
    }
    Load {
        stop,
        ok,
        failed,
        tasks,
    }
}

impl Load {
    async fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_rotation_under_load_fails_no_request() {
    let token = shared_token();
    let label = unique("rot");
    create_key(&token, &label);
    let p = TestProxy::start(opts_with_credentials(&token, &label, &[(AKID_1, SECRET_1)])).await;
    let old = p.client_with(AKID_1, SECRET_1);
    let new = p.client_with(AKID_3, SECRET_3);
    new.health()
        .await
        .assert_error(ErrorName::AuthenticationFailedException);

    // 1. Under load with the old credential, add the new one (picked up by the periodic
    //    re-read of the file, no signal, no restart).
    let load_old = load(old.clone(), 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let both = opts_with_credentials(&token, &label, &[(AKID_1, SECRET_1), (AKID_3, SECRET_3)]);
    std::fs::write(&p.config_path, both.toml()).unwrap();
    let mut picked_up = false;
    for _ in 0..50 {
        if new.health().await.status == 200 {
            picked_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(picked_up, "the new credential was not picked up");
    // 2. Clients move to the new credential while the old one still works.
    let load_new = load(new.clone(), 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok_old, failed_old) = load_old.finish().await;
    // 3. Remove the old credential (explicit reload this time) while the new one is in use.
    p.rewrite(&opts_with_credentials(&token, &label, &[(AKID_3, SECRET_3)]).toml());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok_new, failed_new) = load_new.finish().await;
    assert_eq!((failed_old, failed_new), (0, 0));
    assert!(ok_old > 20 && ok_new > 20, "{ok_old} {ok_new}");
    old.health()
        .await
        .assert_error(ErrorName::AuthenticationFailedException);
    new.encrypt("foo", b"x", None, false).await.assert_ok();
    let m = p.metrics().await;
    assert!(
        m.contains("xks_config_reloads_total{result=\"applied\"}"),
        "{m}"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_survives_the_removal_of_its_credential() {
    let token = token(&unique("inflight"));
    let label = unique("k");
    create_key(&token, &label);
    let mut opts = opts_with_credentials(&token, &label, &[(AKID_1, SECRET_1), (AKID_2, SECRET_2)]);
    opts.extra = "[reload]\ninterval_secs = 0\n[pool]\nhsm_timeout_ms = 3000\n".into();
    let p = TestProxy::start(opts.clone()).await;
    let c = p.client_with(AKID_1, SECRET_1);
    c.encrypt("foo", b"warm", None, false).await.assert_ok();
    // Make the HSM slow, start a request signed with AKID_1, remove AKID_1 meanwhile.
    let token_h = p.state().fleet[0].token().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let holders: Vec<_> = (0..4)
        .map(|_| {
            let (t, tx) = (token_h.clone(), tx.clone());
            std::thread::spawn(move || {
                t.with_session(false, |_| {
                    let _ = tx.send(());
                    std::thread::sleep(Duration::from_millis(600));
                    Ok(())
                })
                .unwrap()
            })
        })
        .collect();
    for _ in 0..4 {
        rx.recv().unwrap();
    }
    let in_flight = tokio::spawn({
        let c = c.clone();
        async move { c.encrypt("foo", b"slow", None, false).await }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut removed = opts.clone();
    removed.credentials = vec![(AKID_2.into(), SECRET_2.into())];
    p.rewrite(&removed.toml());
    let r = in_flight.await.unwrap();
    r.assert_ok();
    for h in holders {
        h.join().unwrap();
    }
    c.health()
        .await
        .assert_error(ErrorName::AuthenticationFailedException);
    p.client_with(AKID_2, SECRET_2).health().await.assert_ok();
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_disabled_and_enabled_without_a_restart() {
    let token = shared_token();
    let label = unique("toggle");
    create_key(&token, &label);
    let opts = opts_with_credentials(&token, &label, &[(AKID_1, SECRET_1)]);
    let p = TestProxy::start(opts.clone()).await;
    let c = p.client();
    let e = c.encrypt("foo", b"x", None, false).await;
    e.assert_ok();
    let disabled = opts.toml().replace("enabled = true", "enabled = false");
    p.rewrite(&disabled);
    assert_eq!(c.metadata("foo").await.body["keyStatus"], "DISABLED");
    c.encrypt("foo", b"x", None, false)
        .await
        .assert_error(ErrorName::InvalidStateException);
    c.decrypt_response("foo", &e.body, None)
        .await
        .assert_error(ErrorName::InvalidStateException);
    p.rewrite(&opts.toml());
    assert_eq!(c.metadata("foo").await.body["keyStatus"], "ENABLED");
    c.decrypt_response("foo", &e.body, None).await.assert_ok();
    // An invalid file is refused and the running configuration stays.
    std::fs::write(&p.config_path, "[server]\nlisten = 'nonsense'\n").unwrap();
    assert!(p.state().reload().is_err());
    c.encrypt("foo", b"x", None, false).await.assert_ok();
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_probes_report_degraded() {
    let token = shared_token();
    let label = unique("deg");
    create_key(&token, &label);
    let mut opts = ProxyOptions::new(&token).key("foo", &label);
    opts.extra = "[health]\ndegraded_latency_ms = 0\ninterval_secs = 1\n".into();
    let p = TestProxy::start(opts).await;
    let h = p.client().health().await;
    assert_eq!(
        h.body["ekmFleetDetails"][0]["healthStatus"], "DEGRADED",
        "{}",
        h.body
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_requests_in_flight() {
    let token = token(&unique("shutdown"));
    let label = unique("k");
    create_key(&token, &label);
    let mut opts = ProxyOptions::new(&token).key("foo", &label);
    opts.extra = "[pool]\nhsm_timeout_ms = 3000\n".into();
    let p = TestProxy::start(opts).await;
    let c = p.client();
    c.encrypt("foo", b"warm", None, false).await.assert_ok();
    let token_h = p.state().fleet[0].token().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let holders: Vec<_> = (0..4)
        .map(|_| {
            let (t, tx) = (token_h.clone(), tx.clone());
            std::thread::spawn(move || {
                t.with_session(false, |_| {
                    let _ = tx.send(());
                    std::thread::sleep(Duration::from_millis(500));
                    Ok(())
                })
                .unwrap()
            })
        })
        .collect();
    for _ in 0..4 {
        rx.recv().unwrap();
    }
    let in_flight = tokio::spawn({
        let c = c.clone();
        async move { c.encrypt("foo", b"slow", None, false).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let addr = p.addr();
    p.stop().await;
    in_flight.await.unwrap().assert_ok();
    for h in holders {
        h.join().unwrap();
    }
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
