//! `loadgen xks`: the XKS proxy's scenarios, against a running proxy (plain HTTP, its
//! `[server] baseline_route` on, one external key configured).
//!
//! Setup: one Encrypt through the proxy (its ciphertext is the Decrypt scenario's) and one
//! Decrypt of it, both must succeed.
//!
//! Scenarios, in this order in every round:
//! - `baseline`: `POST /__baseline` of the proxy's own listener and HTTP stack, with the same
//!   signed headers and body as Encrypt (no authentication, parsing or HSM work);
//! - with `--floor`, `floor-encrypt`: `POST /__baseline/floor/<key>`, the bare route plus the
//!   key's AES-GCM encryption in the HSM inline and nothing else (no SigV4, JSON, checks or
//!   hand-off): no proxy serves an Encrypt with less work on the machine;
//! - the `--ops` among `encrypt` and `decrypt` through the proxy's API, signed as AWS KMS
//!   signs towards a proxy (`host;x-amz-date`), 256-byte plaintext and 64-byte AAD by default;
//! - with `--raw-pkcs11 token`, the raw ceilings (`raw.rs`) with the AAD the proxy passes to
//!   the HSM for that request AAD (`xks_wire::gcm_aad` with its ciphertext metadata);
//! - with `--rate`, Encrypt and Decrypt once more in the open loop.
//!
//! Comparisons: with a raw scenario, each operation against min(`baseline`, `raw-token`),
//! target >= 0.5 (the first `--raw-threads` count is the reference, `xks-bench` used 1; the
//! best is shown beside it), the floor beside them for information; every open-loop scenario
//! must hold its rate with no errors and p99 under `--rate-max-p99-ms`.
//!
//! Unlike `xks-bench`, which started the proxy inside its own process, this runs against the
//! proxy binary (`softhsm/bench-xks-proxy.sh` sets it up): the load generator does not depend
//! on the proxy crate, and the proxy is measured as it is deployed. Its CPU and context
//! switches come from `--server-pid`.

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use serde_json::json;
use sigv4::Signer;
use xks_wire::Operation;

use crate::cli::{dedup, RawArgs, RunArgs};
use crate::report::{Check, BASELINE};
use crate::runner::{Plan, Scenario};
use crate::target::{send, Endpoint, Scheme, Template};
use crate::BoxError;

/// The proxy's `ciphertextMetadata` marker, which it authenticates as part of the AAD. A copy of
/// `xks_proxy::api::CIPHERTEXT_METADATA_V1` (`xks-proxy/src/api.rs`).
pub const CIPHERTEXT_METADATA_V1: &[u8] = b"xkp\x01";

/// Options of `loadgen xks`.
#[derive(Debug, clap::Args)]
pub struct XksArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// The proxy's endpoint (plain HTTP, loopback only).
    #[arg(long)]
    pub endpoint: String,
    /// Access key id of the proxy's keystore credential.
    #[arg(long, env = "XKS_ACCESS_KEY_ID")]
    pub access_key_id: String,
    /// Secret access key of the proxy's keystore credential.
    #[arg(long, env = "XKS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret_access_key: String,
    /// Region of the credential scope.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// The keystore's URI prefix (`[[keystores]] prefix`), without slashes.
    #[arg(long, default_value = "")]
    pub uri_prefix: String,
    /// The external key id (`[[keys]] id`).
    #[arg(long)]
    pub key_id: String,
    /// Plaintext bytes per Encrypt (KMS sends its own ciphertext: a few hundred bytes).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=4300))]
    pub plaintext_size: u32,
    /// AAD bytes per request.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(0..=8192))]
    pub aad_size: u32,
    /// Operations to run after the baseline.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "encrypt,decrypt"
    )]
    pub ops: Vec<XksOp>,
    /// Also run the work floor of Encrypt (`floor-encrypt`).
    #[arg(long)]
    pub floor: bool,
    #[command(flatten)]
    pub raw: RawArgs,
}

/// An XKS operation the benchmark runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum XksOp {
    Encrypt,
    Decrypt,
}

/// The request AAD of every Encrypt and Decrypt.
fn request_aad(size: u32) -> Vec<u8> {
    vec![7u8; size as usize]
}

/// What the proxy passes to the HSM as AAD for a request AAD of `size` bytes, for the raw
/// scenarios.
pub fn raw_aad(size: u32) -> Result<Vec<u8>, BoxError> {
    xks_wire::gcm_aad(&request_aad(size), CIPHERTEXT_METADATA_V1)
        .ok_or_else(|| "--aad-size: too long for the proxy".into())
}

/// The deterministic plaintext of every Encrypt (and the raw scenarios).
pub fn plaintext(size: u32) -> Vec<u8> {
    vec![0x42u8; size as usize]
}

/// Checks the proxy answers Encrypt and Decrypt, and builds the scenarios and comparisons.
pub async fn prepare(endpoint: &Endpoint, args: &XksArgs) -> Result<Plan, BoxError> {
    let signer = Signer::new(
        args.access_key_id.as_str(),
        args.secret_access_key.as_str(),
        args.region.as_str(),
        xks_wire::SIGV4_SERVICE,
    );
    let encrypt_path = xks_wire::uri_path(&args.uri_prefix, Operation::Encrypt, &args.key_id);
    let decrypt_path = xks_wire::uri_path(&args.uri_prefix, Operation::Decrypt, &args.key_id);
    let metadata = json!({
        "awsPrincipalArn": "arn:aws:iam::123456789012:role/bench",
        "kmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/0b7c4c0e-1111-2222-3333-444455556666",
        "kmsOperation": "Encrypt",
        "kmsRequestId": "5112f4d6-db54-4af4-ae30-c55a22a8dfae",
    });
    let mut encrypt = json!({
        "requestMetadata": metadata,
        "plaintext": xks_wire::Base64::encode(&plaintext(args.plaintext_size)).0,
        "encryptionAlgorithm": xks_wire::AES_GCM,
    });
    let aad = request_aad(args.aad_size);
    if !aad.is_empty() {
        encrypt["additionalAuthenticatedData"] = json!(xks_wire::Base64::encode(&aad).0);
    }
    let encrypt_body = Bytes::from(encrypt.to_string());

    let mut sender = endpoint.connect().await?;
    let template =
        |path: &str, body: Bytes| Template::new(endpoint, &signer, Scheme::Xks, path, body);
    let (status, body) = send(
        &mut sender,
        template(&encrypt_path, encrypt_body.clone()).fresh_request()?,
    )
    .await?;
    if status != StatusCode::OK {
        return Err(format!(
            "setup Encrypt failed with {status}: {}",
            String::from_utf8_lossy(&body)
        )
        .into());
    }
    let sealed: serde_json::Value = serde_json::from_slice(&body)?;
    let mut decrypt = json!({
        "requestMetadata": encrypt["requestMetadata"],
        "ciphertext": sealed["ciphertext"],
        "ciphertextMetadata": sealed["ciphertextMetadata"],
        "initializationVector": sealed["initializationVector"],
        "authenticationTag": sealed["authenticationTag"],
        "encryptionAlgorithm": xks_wire::AES_GCM,
    });
    decrypt["requestMetadata"]["kmsOperation"] = json!("Decrypt");
    if let Some(aad) = encrypt.get("additionalAuthenticatedData") {
        decrypt["additionalAuthenticatedData"] = aad.clone();
    }
    let decrypt_body = Bytes::from(decrypt.to_string());
    let (status, body) = send(
        &mut sender,
        template(&decrypt_path, decrypt_body.clone()).fresh_request()?,
    )
    .await?;
    if status != StatusCode::OK {
        return Err(format!(
            "setup Decrypt failed with {status}: {}",
            String::from_utf8_lossy(&body)
        )
        .into());
    }

    let mut scenarios = vec![Scenario {
        name: BASELINE.to_owned(),
        template: Arc::new(template("/__baseline", encrypt_body.clone())),
        open_loop: false,
    }];
    if args.floor {
        // The floor route's path segment is the key id as configured; ids are plain tokens.
        scenarios.push(Scenario {
            name: "floor-encrypt".to_owned(),
            template: Arc::new(template(
                &format!("/__baseline/floor/{}", args.key_id),
                encrypt_body.clone(),
            )),
            open_loop: false,
        });
    }
    for op in dedup(&args.ops) {
        let (name, path, body) = match op {
            XksOp::Encrypt => ("encrypt", &encrypt_path, &encrypt_body),
            XksOp::Decrypt => ("decrypt", &decrypt_path, &decrypt_body),
        };
        scenarios.push(Scenario {
            name: name.to_owned(),
            template: Arc::new(template(path, body.clone())),
            open_loop: true,
        });
    }
    let mut checks = vec![Check::Ceiling {
        scenario: "floor-encrypt".into(),
        raw: "raw-token".into(),
        target: None,
        note: "HTTP + the HSM call only, no proxy reaches more here",
    }];
    for name in ["encrypt", "decrypt"] {
        checks.push(Check::Ceiling {
            scenario: name.into(),
            raw: "raw-token".into(),
            target: Some(0.5),
            note: "",
        });
    }
    if args.run.rate > 0 {
        for s in scenarios.iter().filter(|s| s.open_loop) {
            checks.push(Check::Sustained {
                scenario: format!("{}@{}", s.name, args.run.rate),
                max_p99_ms: args.run.rate_max_p99_ms,
            });
        }
    }
    Ok(Plan { scenarios, checks })
}
