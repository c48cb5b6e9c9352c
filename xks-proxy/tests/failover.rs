//! One external key on several HSMs: requests fail over between the copies when an HSM fails
//! or its token disappears, a copy with different key material never serves, and an HSM that
//! is unreachable at start-up does not stop the proxy and is taken in when it answers.
//!
//! The proxy reaches the HSMs through the fault-injection module (softhsm/fault-module/),
//! which forwards to SoftHSM and fails per token label as marker files say.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::faults::{clear, fault_module, import_key, mark};
use common::*;
use serde_json::Value;
use xks_wire::ErrorName;

/// A proxy with HSMs a, b, c (tokens through the fault module): key `k` on a and b (same
/// material), key `odd` on a and c (different material under the same label).
async fn proxy() -> (TestProxy, [String; 3]) {
    proxy_with(|_| {}).await
}

/// [`proxy`], calling `before_start` with the tokens just before the proxy starts.
async fn proxy_with(before_start: impl FnOnce(&[String; 3])) -> (TestProxy, [String; 3]) {
    let module = fault_module();
    let tokens = [
        token(&unique("fo-a")),
        token(&unique("fo-b")),
        token(&unique("fo-c")),
    ];
    let same = [0x11u8; 32];
    import_key(&tokens[0], "k", &same);
    import_key(&tokens[1], "k", &same);
    import_key(&tokens[0], "odd", &[0x22u8; 32]);
    import_key(&tokens[2], "odd", &[0x33u8; 32]);
    let mut opts = ProxyOptions::new(&tokens[0]);
    opts.keys.clear();
    let mut toml = format!(
        "[server]\nlisten = '127.0.0.1:0'\nregion = '{REGION}'\n[metrics]\nlisten = '127.0.0.1:0'\n"
    );
    for (name, t) in ["a", "b", "c"].iter().zip(&tokens) {
        toml.push_str(&format!(
            "[[hsms]]\nname = '{name}'\nmodule = '{module}'\ntoken_label = '{t}'\npin = '{PIN}'\nmax_sessions = 2\n"
        ));
    }
    toml.push_str("[[keys]]\nid = 'k'\nhsms = ['a', 'b']\n");
    toml.push_str("[[keys]]\nid = 'odd'\nhsms = ['a', 'c']\n");
    toml.push_str(&format!(
        "[[keystores]]\nprefix = '{PREFIX}'\n[[keystores.credentials]]\naccess_key_id = '{AKID_1}'\nsecret_access_key = '{SECRET_1}'\n"
    ));
    before_start(&tokens);
    (TestProxy::start_toml(toml, opts).await, tokens)
}

/// Encrypts `n` times with `key` and decrypts every ciphertext in `old` and the new ones.
async fn round_trips(c: &Client, key: &str, old: &mut Vec<(Value, Vec<u8>)>, n: usize) {
    for i in 0..n {
        let plaintext = format!("round {i} of {}", old.len()).into_bytes();
        let e = c.encrypt(key, &plaintext, Some(b"ctx"), false).await;
        e.assert_ok();
        old.push((e.body, plaintext));
    }
    for (body, plaintext) in old.iter() {
        let d = c.decrypt_response(key, body, Some(b"ctx")).await;
        d.assert_ok();
        assert_eq!(&unb64(&d.body["plaintext"]), plaintext);
    }
}

/// The value of `metric` with labels key and hsm in the exposition text.
fn metric(text: &str, metric: &str, key: &str, hsm: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .find(|l| l.contains(&format!("key=\"{key}\"")) && l.contains(&format!("hsm=\"{hsm}\"")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_fail_over_between_the_copies_of_a_key() {
    let (p, tokens) = proxy().await;
    let c = p.client();
    let mut old = Vec::new();
    round_trips(&c, "k", &mut old, 6).await;

    // HSM a stops answering: b serves everything, old ciphertexts included.
    mark(&tokens[0], "fail");
    round_trips(&c, "k", &mut old, 6).await;
    c.metadata("k").await.assert_ok();
    let m = p.metrics().await;
    assert!(
        metric(&m, "xks_key_copy_failures_total", "k", "a").unwrap() >= 1.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "xks_key_copy_failures_total", "k", "b"),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "xks_key_copy_usable", "k", "b"),
        Some(1.0),
        "{m}"
    );

    // a is back and b's token is removed: a serves, without waiting for a's back-off.
    clear(&tokens[0]);
    mark(&tokens[1], "removed");
    round_trips(&c, "k", &mut old, 6).await;

    // Both gone: the key cannot be served.
    mark(&tokens[0], "fail");
    let e = c.encrypt("k", b"x", None, false).await;
    e.assert_error(ErrorName::InternalException);
    clear(&tokens[0]);
    clear(&tokens[1]);
    round_trips(&c, "k", &mut old, 2).await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_with_different_key_material_never_serves() {
    let (p, tokens) = proxy().await;
    let c = p.client();
    // Start-up checked c's copy of `odd` against a's and set it aside: every request is
    // served by a, so every ciphertext decrypts.
    let mut old = Vec::new();
    round_trips(&c, "odd", &mut old, 8).await;
    let m = p.metrics().await;
    assert_eq!(
        metric(&m, "xks_key_copy_usable", "odd", "a"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "xks_key_copy_usable", "odd", "c"),
        Some(0.0),
        "{m}"
    );
    // With a down, c is not used in its place.
    mark(&tokens[0], "fail");
    let e = c.encrypt("odd", b"x", None, false).await;
    assert_eq!(e.status, 500, "{}", e.body);
    let d = c.decrypt_response("odd", &old[0].0, Some(b"ctx")).await;
    assert_eq!(d.status, 500, "{}", d.body);
    clear(&tokens[0]);
    round_trips(&c, "odd", &mut old, 2).await;
    // `k` (same material on a and b) was unaffected by `odd`.
    round_trips(&c, "k", &mut Vec::new(), 2).await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hsm_unreachable_at_start_is_taken_in_when_it_answers() {
    let (p, tokens) = proxy_with(|t| mark(&t[1], "removed")).await;
    let c = p.client();
    let h = c.health().await;
    h.assert_ok();
    let fleet = h.body["ekmFleetDetails"].as_array().unwrap();
    let status = |id: &str| {
        fleet
            .iter()
            .find(|e| e["id"] == id)
            .map(|e| e["healthStatus"].clone())
    };
    assert_eq!(status("a"), Some(Value::from("ACTIVE")), "{}", h.body);
    assert_eq!(status("b"), Some(Value::from("UNAVAILABLE")), "{}", h.body);
    let mut old = Vec::new();
    round_trips(&c, "k", &mut old, 4).await;

    // b's token returns and a fails: b is opened on use and serves everything.
    clear(&tokens[1]);
    mark(&tokens[0], "fail");
    tokio::time::sleep(xks_proxy::hsm::REOPEN_EVERY).await;
    round_trips(&c, "k", &mut old, 4).await;
    clear(&tokens[0]);
    round_trips(&c, "k", &mut old, 2).await;
    p.stop().await;
}
