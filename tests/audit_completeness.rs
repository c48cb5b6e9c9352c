//! Every request that reaches the KMS leaves an audit record, including the ones refused
//! before authentication (wrong method or path, no operation, a body too large), each with the
//! client's address; and in durable mode (`[audit] durable = true`) a response is sent only
//! after its record is on disk, so a request whose record cannot be written fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

/// Sends one raw HTTP/1.1 request and returns (status, x-amzn-requestid).
async fn send(
    endpoint: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, String) {
    let mut with_agent = vec![("user-agent", "audit-test")];
    with_agent.extend_from_slice(headers);
    let (status, id, _) = common::raw_request(endpoint, method, path, &with_agent, body).await;
    (status, id.unwrap_or_default())
}

#[tokio::test]
async fn requests_refused_before_authentication_are_audited_with_their_source() {
    let srv = common::TestServer::start().await;
    let target = [("x-amz-target", "TrentService.Encrypt")];
    let json = [
        ("x-amz-target", "TrentService.Encrypt"),
        ("content-type", "application/x-amz-json-1.1"),
    ];
    let cases = [
        (
            "GET",
            "/",
            &target[..],
            Vec::new(),
            "UnknownOperationException",
            "Unknown",
        ),
        (
            "POST",
            "/elsewhere",
            &target[..],
            Vec::new(),
            "UnknownOperationException",
            "Unknown",
        ),
        (
            "POST",
            "/",
            &[][..],
            b"{}".to_vec(),
            "UnknownOperationException",
            "Unknown",
        ),
        (
            "POST",
            "/",
            &json[..],
            vec![b'a'; 300 * 1024],
            "RequestEntityTooLargeException",
            "Encrypt",
        ),
    ];
    let mut sent = Vec::new();
    for (method, path, headers, body, code, event) in cases {
        let (status, id) = send(&srv.endpoint, method, path, headers, body).await;
        assert!(status >= 400, "{method} {path}: {status}");
        assert!(!id.is_empty());
        sent.push((id, code, event));
    }
    let records = srv.audit_records().await;
    for (id, code, event) in sent {
        let r = records
            .iter()
            .find(|r| r["requestID"] == id.as_str())
            .unwrap_or_else(|| panic!("no audit record for {code} ({id}): {records:#?}"));
        assert_eq!(r["errorCode"], code, "{r}");
        assert_eq!(r["sourceIPAddress"], "127.0.0.1", "{r}");
        assert_eq!(r["userAgent"], "audit-test", "{r}");
        assert_eq!(r["eventName"], event, "{r}");
    }
}

#[tokio::test]
async fn durable_audit_fails_a_request_whose_record_cannot_be_written() {
    // Every write to /dev/full fails (ENOSPC): the record of this request cannot be stored.
    let srv = common::TestServer::start_with_config(
        "[audit]\npath = '/dev/full'\ndurable = true\n",
        common::backend_env(),
    )
    .await;
    let e = srv
        .client()
        .create_key()
        .send()
        .await
        .expect_err("a request without its audit record must fail");
    assert_eq!(common::code(&e), "KMSInternalException");
}

#[tokio::test]
async fn durable_audit_has_the_record_on_disk_before_the_response() {
    let srv =
        common::TestServer::start_with_config("[audit]\ndurable = true\n", common::backend_env())
            .await;
    let kms = srv.client();
    for _ in 0..5 {
        let out = kms.create_key().send().await.unwrap();
        let id = aws_sdk_kms::operation::RequestId::request_id(&out)
            .unwrap()
            .to_string();
        // Read at once: no waiting for the writer thread.
        let text = std::fs::read_to_string(srv.data_dir.path().join("audit.log")).unwrap();
        assert!(
            text.lines().any(|l| l.contains(&id)),
            "record {id} not on disk when the response arrived"
        );
    }
}
