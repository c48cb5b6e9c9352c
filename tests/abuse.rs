//! Abuse of the KMS endpoint over loopback (numbers of the last run: `docs/abuse.md`):
//! - 10,000 idle or half-open connections do not stop a normal client from being served;
//! - a 1 MiB header (431), a 100 MiB body streamed without `Content-Length` and one announced
//!   by it (413 `RequestEntityTooLargeException`), deeply nested JSON (400
//!   `SerializationException`, also inside a key policy: `MalformedPolicyDocumentException`) and
//!   a slow-drip body (408 `RequestTimeoutException`) are refused quickly;
//! - every single-byte change (all 255 other values at every offset), truncation and extension
//!   of a ciphertext blob of each format (version 1 from Encrypt; version 2 of a key in an
//!   external key store) is rejected: `InvalidCiphertextException`, or for a version-2 change
//!   only the XKS proxy can see, the reference's `KMSInvalidStateException` "...corrupted...";
//!   a data key pair's private-key blob (version 1, longer) gets three changes per byte.
//!
//! Each test stops by itself; nothing leaves 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::TestServer;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use serde_json::{json, Value};
use sigv4::Signer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn addr(server: &TestServer) -> String {
    server.endpoint.split("://").nth(1).unwrap().to_string()
}

async fn http1(addr: &str) -> SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

/// A signed KMS call on a kept-alive connection: (status, JSON body).
async fn call(
    send: &mut SendRequest<Full<Bytes>>,
    server: &TestServer,
    op: &str,
    body: &[u8],
) -> (u16, Value) {
    // The SigV4 window is checked against the wall clock, not the server's manual clock.
    let host = addr(server);
    let headers = Signer::new(common::ACCESS_KEY, common::SECRET_KEY, "us-east-1", "kms")
        .sign_kms_json(&host, op, body, chrono::Utc::now())
        .unwrap();
    let mut req = hyper::Request::post("/").header("host", &host);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    send.ready().await.unwrap();
    let resp = send
        .send_request(req.body(Full::new(Bytes::copy_from_slice(body))).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Reads a raw HTTP/1.1 answer until the server closes or `limit` passes: (status, text).
async fn read_answer(stream: &mut TcpStream, limit: Duration) -> (u16, String) {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let _ = tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    // One complete answer is enough (its body is small JSON or empty).
                    let text = String::from_utf8_lossy(&got);
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            break;
                        }
                    }
                }
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// The soft limit on open files: the test needs ~14,200 (10,000 client sockets and 4,096 of
/// the server's). Raised to the hard limit with util-linux `prlimit` (no unsafe code here)
/// when it is lower; fails loudly when even the hard limit is too low.
fn ensure_open_files(needed: u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut nums = line.split_whitespace().filter_map(|w| {
        w.parse::<u64>()
            .ok()
            .or((w == "unlimited").then_some(u64::MAX))
    });
    let (soft, hard) = (nums.next().unwrap(), nums.next().unwrap());
    if soft >= needed {
        return;
    }
    assert!(
        hard >= needed,
        "this test needs {needed} open files; the hard limit is {hard} (raise it: ulimit -Hn)"
    );
    let ok = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={hard}:{hard}"),
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "could not raise the open-file limit from {soft} to {hard} with prlimit"
    );
}

fn metric(server: &TestServer, sample: &str) -> f64 {
    let text = server.state.service.metrics().render();
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_or_half_open_connections_do_not_lock_out_a_client() {
    const ATTACKERS: usize = 10_000;
    ensure_open_files(ATTACKERS as u64 + 4_096 + 200);
    let server = TestServer::start().await;
    let addr = addr(&server);
    let started = Instant::now();
    let mut held = Vec::with_capacity(ATTACKERS);
    for i in 0..ATTACKERS {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        // Half of them start a request and never finish its headers; the rest say nothing.
        if i % 2 == 0 {
            let _ = s
                .write_all(b"POST / HTTP/1.1\r\nhost: localhost\r\nx-amz-target: TrentSer")
                .await;
        }
        held.push(s);
    }
    let opened_in = started.elapsed();
    // Every one of them is still held by the client while a normal client works.
    let client = server.client();
    let served = Instant::now();
    let key = client.create_key().send().await.unwrap();
    let key_id = key.key_metadata.unwrap().key_id;
    let mut slowest = Duration::ZERO;
    for i in 0..20u8 {
        let one = Instant::now();
        let enc = client
            .encrypt()
            .key_id(&key_id)
            .plaintext(aws_sdk_kms::primitives::Blob::new(vec![i; 32]))
            .send()
            .await
            .unwrap();
        let dec = client
            .decrypt()
            .ciphertext_blob(enc.ciphertext_blob.unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(dec.plaintext.unwrap().into_inner(), vec![i; 32]);
        slowest = slowest.max(one.elapsed());
    }
    let total = served.elapsed();
    let evicted = metric(
        &server,
        "kms_connections_rejected_total{reason=\"idle_evicted\"}",
    );
    let refused = metric(
        &server,
        "kms_connections_rejected_total{reason=\"over_capacity\"}",
    );
    eprintln!(
        "{ATTACKERS} idle/half-open connections opened in {opened_in:?}; CreateKey + 20 \
         Encrypt/Decrypt pairs served in {total:?} (slowest pair {slowest:?}); \
         idle_evicted {evicted}, over_capacity {refused}, open {}",
        metric(&server, "kms_open_connections")
    );
    assert!(
        total < Duration::from_secs(20),
        "the normal client took {total:?}"
    );
    assert_eq!(
        refused, 0.0,
        "idle connections made the server refuse others"
    );
    assert!(
        evicted >= (ATTACKERS - 4_096) as f64,
        "evicted only {evicted}"
    );
    drop(held);
}

#[tokio::test]
async fn a_one_mebibyte_header_is_refused_at_once() {
    let server = TestServer::start().await;
    let mut s = TcpStream::connect(addr(&server)).await.unwrap();
    let started = Instant::now();
    let big = "a".repeat(1 << 20);
    let head = format!(
        "POST / HTTP/1.1\r\nhost: localhost\r\nx-amz-target: TrentService.ListKeys\r\nx-junk: {big}\r\ncontent-length: 2\r\n\r\n{{}}"
    );
    // The server may stop reading (and close) before all of it is written.
    let _ = s.write_all(head.as_bytes()).await;
    let (status, text) = read_answer(&mut s, Duration::from_secs(5)).await;
    let took = started.elapsed();
    eprintln!("1 MiB header: HTTP {status} after {took:?}");
    assert_eq!(status, 431, "{}", &text[..text.len().min(300)]);
    assert!(took < Duration::from_secs(2), "took {took:?}");
    // The server still works.
    let (status, _) = call(&mut http1(&addr(&server)).await, &server, "ListKeys", b"{}").await;
    assert_eq!(status, 200);
}

/// Streams `total` bytes of body (chunked, or with `Content-Length`) while reading the answer;
/// returns (status, answer, bytes written before the answer, time to the answer).
async fn stream_body(
    server: &TestServer,
    total: u64,
    chunked: bool,
) -> (u16, String, u64, Duration) {
    let s = TcpStream::connect(addr(server)).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let started = Instant::now();
    let head = if chunked {
        "POST / HTTP/1.1\r\nhost: localhost\r\nx-amz-target: TrentService.Encrypt\r\ntransfer-encoding: chunked\r\n\r\n".to_string()
    } else {
        format!("POST / HTTP/1.1\r\nhost: localhost\r\nx-amz-target: TrentService.Encrypt\r\ncontent-length: {total}\r\n\r\n")
    };
    wr.write_all(head.as_bytes()).await.unwrap();
    let writer = tokio::spawn(async move {
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0u64;
        while sent < total {
            let r = if chunked {
                let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
                framed.extend_from_slice(&chunk);
                framed.extend_from_slice(b"\r\n");
                wr.write_all(&framed).await
            } else {
                wr.write_all(&chunk).await
            };
            if r.is_err() {
                break;
            }
            sent += chunk.len() as u64;
        }
        sent
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let answer = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    if String::from_utf8_lossy(&got).contains("}") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let took = started.elapsed();
    assert!(answer.is_ok(), "no answer within 20 s");
    writer.abort();
    let sent = writer.await.unwrap_or(0);
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text, sent, took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_mebibyte_body_is_refused_without_reading_it() {
    let server = TestServer::start().await;
    for chunked in [true, false] {
        let (status, text, sent, took) = stream_body(&server, 100 << 20, chunked).await;
        eprintln!(
            "100 MiB body ({}): HTTP {status} after {took:?}, {} KiB written by then",
            if chunked { "chunked" } else { "content-length" },
            sent / 1024
        );
        assert_eq!(status, 413, "{text}");
        assert!(text.contains("RequestEntityTooLargeException"), "{text}");
        assert!(took < Duration::from_secs(5), "took {took:?}");
        assert!(sent < 100 << 20, "the whole body was read");
    }
}

#[tokio::test]
async fn deeply_nested_json_is_a_serialization_error() {
    let server = TestServer::start().await;
    let mut send = http1(&addr(&server)).await;
    // 100,000 levels: 200 KB, under the 256 KiB body limit.
    let depth = 100_000;
    for body in [
        format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
        format!("{{\"KeyId\":{}1{}}}", "[".repeat(depth), "]".repeat(depth)),
        "{\"a\":".repeat(depth / 5),
    ] {
        let started = Instant::now();
        let (status, v) = call(&mut send, &server, "DescribeKey", body.as_bytes()).await;
        let took = started.elapsed();
        assert_eq!(
            (status, v["__type"].as_str()),
            (400, Some("SerializationException")),
            "{v}"
        );
        assert!(took < Duration::from_secs(2), "took {took:?}");
    }
    // Nesting inside a key policy (a JSON string in the JSON body), at the policy size limit.
    let key = call(&mut send, &server, "CreateKey", b"{}").await.1;
    let key_id = key["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
    let levels = 32_000 / 2;
    let policy = format!("{}{}", "[".repeat(levels), "]".repeat(levels));
    let body = json!({"KeyId": key_id, "PolicyName": "default", "Policy": policy}).to_string();
    let started = Instant::now();
    let (status, v) = call(&mut send, &server, "PutKeyPolicy", body.as_bytes()).await;
    let took = started.elapsed();
    eprintln!(
        "nested JSON policy: HTTP {status} {} after {took:?}",
        v["__type"]
    );
    assert_eq!(
        (status, v["__type"].as_str()),
        (400, Some("MalformedPolicyDocumentException")),
        "{v}"
    );
    assert!(took < Duration::from_secs(2));
}

#[tokio::test]
async fn a_slow_drip_body_times_out_with_408() {
    let server = TestServer::start_with(
        [(
            "KMS_SERVER__BODY_READ_TIMEOUT_MS".to_string(),
            "500".to_string(),
        )]
        .into_iter()
        .chain(common::backend_env())
        .collect(),
    )
    .await;
    let mut s = TcpStream::connect(addr(&server)).await.unwrap();
    let started = Instant::now();
    s.write_all(b"POST / HTTP/1.1\r\nhost: localhost\r\nx-amz-target: TrentService.ListKeys\r\ncontent-length: 1000\r\n\r\n{")
        .await
        .unwrap();
    let (mut rd, mut wr) = s.into_split();
    let drip = tokio::spawn(async move {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if wr.write_all(b" ").await.is_err() {
                break;
            }
        }
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(n) = rd.read(&mut buf).await {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if got.ends_with(b"}") {
                break;
            }
        }
    })
    .await;
    let took = started.elapsed();
    drip.abort();
    let text = String::from_utf8_lossy(&got);
    eprintln!("slow-drip body (1 byte / 100 ms, 500 ms timeout): answered after {took:?}");
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("RequestTimeoutException"), "{text}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

/// Encrypts `abc` under `key_id` with the context `{"k": "v"}`: the blob and the context.
async fn encrypt_abc(
    send: &mut SendRequest<Full<Bytes>>,
    server: &TestServer,
    key_id: &str,
) -> (Vec<u8>, Value) {
    let context = json!({"k": "v"});
    let enc = call(
        send,
        server,
        "Encrypt",
        json!({"KeyId": key_id, "Plaintext": B64.encode(b"abc"), "EncryptionContext": context})
            .to_string()
            .as_bytes(),
    )
    .await
    .1;
    (
        B64.decode(enc["CiphertextBlob"].as_str().unwrap()).unwrap(),
        context,
    )
}

/// Decrypts every single-byte change of `blob` (all 255 other values at each offset; with
/// `every_value` false, the three changes `^0x01`, `^0x80`, `^0xff`), every truncation and a one-byte extension; each must be InvalidCiphertextException, or, for a
/// version-2 blob whose change only the XKS proxy can see (its IV, tag, metadata or
/// ciphertext), the reference's KMSInvalidStateException "...ciphertext or additional
/// authenticated data is corrupted..." (custom-key-stores.md, the proxy's
/// InvalidCiphertextException). Retries a ThrottlingException. Returns the count per answer.
/// Every other value of every byte on the software root; three values per byte on the PKCS#11
/// root. The blob's header is parsed, and its key and context checked, before any root sees it,
/// so the exhaustive run covers that code once; what differs on the PKCS#11 root is the token's
/// AES-GCM, which rejects every change of IV, ciphertext or tag alike. (Exhaustive on both
/// roots cost ~100 s of CI time per root.)
fn every_value() -> bool {
    common::backend() == "software"
}

async fn every_change_is_rejected(
    server: &TestServer,
    blob: &[u8],
    context: &Value,
    plaintext: &[u8],
    every_value: bool,
) -> std::collections::BTreeMap<String, usize> {
    let mut send = http1(&addr(server)).await;
    let decrypt = |b: &[u8]| {
        json!({"CiphertextBlob": B64.encode(b), "EncryptionContext": context})
            .to_string()
            .into_bytes()
    };
    let (status, v) = call(&mut send, server, "Decrypt", &decrypt(blob)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        B64.decode(v["Plaintext"].as_str().unwrap()).unwrap(),
        plaintext
    );
    let mut variants: Vec<Vec<u8>> = Vec::new();
    for i in 0..blob.len() {
        for value in 0..=255u8 {
            let sampled = [blob[i] ^ 0x01, blob[i] ^ 0x80, blob[i] ^ 0xff].contains(&value);
            if value != blob[i] && (every_value || sampled) {
                let mut t = blob.to_vec();
                t[i] = value;
                variants.push(t);
            }
        }
    }
    for len in 1..blob.len() {
        variants.push(blob[..len].to_vec());
    }
    let mut longer = blob.to_vec();
    longer.push(0);
    variants.push(longer);
    let mut answers = std::collections::BTreeMap::new();
    for t in &variants {
        loop {
            let (status, v) = call(&mut send, server, "Decrypt", &decrypt(t)).await;
            let ty = v["__type"].as_str().unwrap_or("").to_string();
            if ty == "ThrottlingException" {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            let by_proxy = blob[0] == 2
                && ty == "KMSInvalidStateException"
                && v["message"].as_str().is_some_and(|m| {
                    m.contains("ciphertext or additional authenticated data is corrupted")
                });
            assert!(
                status == 400 && (ty == "InvalidCiphertextException" || by_proxy),
                "changed blob {t:02x?}: HTTP {status} {v}"
            );
            *answers.entry(ty).or_insert(0) += 1;
            break;
        }
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_single_byte_change_of_a_version_1_blob_is_rejected() {
    let server = TestServer::start().await;
    let mut send = http1(&addr(&server)).await;
    let key = call(&mut send, &server, "CreateKey", b"{}").await.1;
    let key_id = key["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
    let (blob, context) = encrypt_abc(&mut send, &server, &key_id).await;
    assert_eq!(blob[0], 1);
    let started = Instant::now();
    let n = every_change_is_rejected(&server, &blob, &context, b"abc", every_value()).await;
    eprintln!(
        "version 1 (Encrypt, {} bytes): changed blobs rejected {n:?} in {:?}",
        blob.len(),
        started.elapsed()
    );
    // The first connection sat idle past the header timeout meanwhile.
    let mut send = http1(&addr(&server)).await;

    // A data key pair's private key: the same format over a longer plaintext (~210 bytes), so
    // three changes per byte are enough here (every value would take 54,000 calls).
    let pair = call(
        &mut send,
        &server,
        "GenerateDataKeyPair",
        json!({"KeyId": key_id, "KeyPairSpec": "ECC_NIST_P256"})
            .to_string()
            .as_bytes(),
    )
    .await
    .1;
    let blob = B64
        .decode(pair["PrivateKeyCiphertextBlob"].as_str().unwrap())
        .unwrap();
    let private = B64
        .decode(pair["PrivateKeyPlaintext"].as_str().unwrap())
        .unwrap();
    assert_eq!(blob[0], 1);
    let started = Instant::now();
    let n = every_change_is_rejected(&server, &blob, &json!({}), &private, false).await;
    eprintln!(
        "version 1 (data key pair private key, {} bytes): changed blobs rejected {n:?} in {:?}",
        blob.len(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_single_byte_change_of_a_version_2_blob_is_rejected() {
    use common::xks_test_proxy::{TestProxy, AKID, SECRET};
    let proxy = TestProxy::start().await;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("abuse-xks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &proxy.ca_pem).unwrap();
    let server = TestServer::start_with_config(
        &format!(
            "[xks]\nallowed_proxy_networks = ['127.0.0.1', '::1']\nca_file = '{}'\nrequests_per_second = 1000000\n",
            ca.display()
        ),
        common::backend_env(),
    )
    .await;
    let mut send = http1(&addr(&server)).await;
    let store = call(
        &mut send,
        &server,
        "CreateCustomKeyStore",
        json!({
            "CustomKeyStoreName": "abuse-xks",
            "CustomKeyStoreType": "EXTERNAL_KEY_STORE",
            "XksProxyUriEndpoint": proxy.endpoint(),
            "XksProxyUriPath": "/kms/xks/v1",
            "XksProxyConnectivity": "PUBLIC_ENDPOINT",
            "XksProxyAuthenticationCredential": {"AccessKeyId": AKID, "RawSecretAccessKey": SECRET},
        })
        .to_string()
        .as_bytes(),
    )
    .await;
    assert_eq!(store.0, 200, "{}", store.1);
    let store_id = store.1["CustomKeyStoreId"].as_str().unwrap().to_string();
    let (status, v) = call(
        &mut send,
        &server,
        "ConnectCustomKeyStore",
        json!({"CustomKeyStoreId": store_id}).to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let key_id = loop {
        let (status, v) = call(
            &mut send,
            &server,
            "CreateKey",
            json!({"Origin": "EXTERNAL_KEY_STORE", "CustomKeyStoreId": store_id, "XksKeyId": "k1"})
                .to_string()
                .as_bytes(),
        )
        .await;
        if status == 200 {
            break v["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no key in the external store: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (blob, context) = encrypt_abc(&mut send, &server, &key_id).await;
    assert_eq!(blob[0], 2);
    let started = Instant::now();
    let n = every_change_is_rejected(&server, &blob, &context, b"abc", every_value()).await;
    eprintln!(
        "version 2 (external key store, {} bytes): changed blobs rejected {n:?} in {:?}",
        blob.len(),
        started.elapsed()
    );
}
