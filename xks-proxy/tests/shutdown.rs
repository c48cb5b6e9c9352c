//! A clean stop of the `xks-proxy` binary: SIGTERM after HSM work ends it with status 0, having
//! closed its sessions and finalized the PKCS#11 module (`C_Finalize`) itself, rather than
//! leaving SoftHSM to its static destructors at exit.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_after_hsm_work_finalizes_the_module_and_exits_0() {
    let token = token(&unique("finalize"));
    let label = unique("k");
    create_key(&token, &label);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("xks-proxy.toml");
    std::fs::write(&config, ProxyOptions::new(&token).key("foo", &label).toml()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xks-proxy"))
        .arg("--config")
        .arg(&config)
        .env("XKS_LOG", "info,cryptoki=off")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drained on a thread, so that the proxy never blocks on a full pipe.
    let mut stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: std::net::SocketAddr = line
        .trim()
        .rsplit("http://")
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no endpoint in {line:?}"));
    let client = Client::new(addr, AKID_1, SECRET_1);
    // Concurrent requests, so that the HSM threads have called into the module.
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..16u8 {
        let c = client.clone();
        calls.spawn(async move { c.encrypt("foo", &[i; 64], None, false).await });
    }
    while let Some(done) = calls.join_next().await {
        done.unwrap().assert_ok();
    }

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the proxy did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = log.join().unwrap();
    assert!(status.success(), "exit status {status:?}; log:\n{log}");
    assert!(log.contains("xks-proxy stopped"), "{log}");
    assert!(
        log.contains("PKCS#11 modules finalized") && log.contains("modules=1"),
        "{log}"
    );
    assert!(!log.contains("not finalized"), "{log}");
}
