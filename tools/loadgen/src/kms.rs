//! `loadgen kms`: the KMS server's scenarios.
//!
//! Setup: it creates a key (`CreateKey`, unless `--key-id` names one) and one ciphertext
//! (`Encrypt`, for Decrypt), and with `--custom-key-store` a key in that (connected,
//! CloudHSM-style) store, and with `--policy-file` / `--grants` the authorization key.
//!
//! Scenarios, in this order in every round:
//! - `baseline`: `POST /__baseline` with the same headers, signature and body as Encrypt; the
//!   server answers `{}` there without authentication or work (only with
//!   `server.baseline_route`), so it measures the HTTP stack and the load generator;
//! - per key (no suffix; `-cks` for the custom key store's key; `-authz` for the authorization
//!   key) the `--ops` among `encrypt`, `decrypt` and `generate-data-key` (AES_256), 256-byte
//!   plaintext by default, and `describe` (DescribeKey: the metadata read path, no
//!   cryptography);
//! - with `--floor`, before each Encrypt of the default and custom key store keys,
//!   `floor-encrypt` (`-cks`): the baseline request plus the `x-kms-bench-key` header, where the
//!   server also has the key's backend encrypt 256 bytes (same IV source, AAD shape, PKCS#11
//!   calls and hand-off to the HSM threads as Encrypt) and does nothing else: no SigV4, JSON,
//!   key checks, authorization or audit record. No server does an Encrypt with less work;
//! - the key-type operations among `--ops` (`sign-p256`, `sign-rsa2048`, `mac-hmac256`,
//!   `verify-p256`), each on a key of its own created at setup (`CreateKey` with `KeySpec`
//!   `ECC_NIST_P256` or `RSA_2048` and `KeyUsage` `SIGN_VERIFY`, or `HMAC_256` and
//!   `GENERATE_VERIFY_MAC`; only the default key store: custom key stores refuse them), with a
//!   RAW `--message-size` message (256 bytes by default): Sign `ECDSA_SHA_256`, Sign
//!   `RSASSA_PKCS1_V1_5_SHA_256`, GenerateMac `HMAC_SHA_256`, and Verify `ECDSA_SHA_256` of a
//!   signature made at setup;
//! - with `--raw-pkcs11` and `--raw-lib`, the raw ceilings (`raw.rs`, `rawlib.rs`).
//!
//! The authorization scenario: `--policy-file FILE` creates a key with that key policy and
//! `--grants N` adds N grants on it to `--grantee-principal` (CreateGrant with KeyId,
//! GranteePrincipal, Operations and a distinct Name each); the `-authz` scenarios then run on
//! that key beside the same operations on a key with the default policy, and `encrypt-authz`
//! is compared with `encrypt` (target: >= 0.9 of its rate). `hsm-config/bench-key-policy.json`
//! is a 10-statement policy with conditions that still allows the development user to
//! Encrypt.
//!
//! Comparisons: with a raw scenario of the right kind, `encrypt` against min(`baseline`,
//! `raw-session`) and `encrypt-cks` against min(`baseline`, `raw-token`), target >= 0.5 (the
//! floors beside them, for information); each key-type operation against min(`baseline`, its
//! raw ceiling): `raw-lib-…` (the software root's library, and Verify's on both roots) and
//! `raw-token-…` (the PKCS#11 root's token), whichever ran; target >= 0.5 for `sign-p256`,
//! the others for information.
//!
//! Dropped from `kms-bench`: the `handoff-encrypt` scenarios (`x-kms-bench-handoff`). Since the
//! service became async only the PKCS#11 call leaves the async workers, so the floor already
//! includes the hand-off and the server ignores that header: the scenario would measure the
//! floor twice.

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http::StatusCode;
use sigv4::Signer;

use crate::cli::{dedup, RawArgs, RunArgs};
use crate::raw::RawKind;
use crate::rawlib::LibKind;
use crate::report::{Check, BASELINE};
use crate::runner::{Plan, Scenario};
use crate::target::{send, Endpoint, Scheme, Sender, Template};
use crate::BoxError;

/// The benchmark floor's request header. A copy of `kms::api::BENCH_KEY_HEADER`
/// (`src/api/mod.rs`): the load generator does not depend on the server.
pub const BENCH_KEY_HEADER: &str = "x-kms-bench-key";

/// The development credential's principal, the default grantee of `--grants`. A copy of
/// `kms::config::DEV_PRINCIPAL_ARN` (`src/config/mod.rs`).
pub const DEV_PRINCIPAL_ARN: &str = "arn:aws:iam::111122223333:user/kms-dev";

/// The authorization scenario's target: at least this share of the default-policy key's
/// Encrypt rate.
const AUTHZ_TARGET: f64 = 0.9;

/// Options of `loadgen kms`.
#[derive(Debug, clap::Args)]
pub struct KmsArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// The server's endpoint (plain HTTP, loopback only); several, comma-separated, are used
    /// round-robin per connection (nodes behind a load balancer on one database).
    #[arg(long, env = "KMS_ENDPOINT", default_value = "http://127.0.0.1:4599")]
    pub endpoint: String,
    /// Access key id to sign with (default: the server's development credential).
    #[arg(
        long,
        env = "AWS_ACCESS_KEY_ID",
        default_value = "AKIAIOSFODNN7EXAMPLE"
    )]
    pub access_key_id: String,
    /// Secret access key to sign with.
    #[arg(
        long,
        env = "AWS_SECRET_ACCESS_KEY",
        default_value = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        hide_default_value = true,
        hide_env_values = true
    )]
    pub secret_access_key: String,
    /// Session token of temporary credentials (from `sts:AssumeRole`), sent as
    /// `X-Amz-Security-Token` and signed; with it the access key id is the session's `ASIA...`.
    #[arg(long, env = "AWS_SESSION_TOKEN", hide_env_values = true)]
    pub session_token: Option<String>,
    /// Region of the credential scope.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Plaintext bytes per Encrypt request.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub plaintext_size: u32,
    /// Message bytes of Sign, Verify and GenerateMac (RAW messages; also the raw ceilings').
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub message_size: u32,
    /// Operations to run after the baseline, per key.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "encrypt,decrypt,generate-data-key"
    )]
    pub ops: Vec<Op>,
    /// Path of the server's no-work baseline route.
    #[arg(long, default_value = "/__baseline")]
    pub baseline_path: String,
    /// Benchmark this existing key instead of creating one.
    #[arg(long)]
    pub key_id: Option<String>,
    /// Also create a key in this custom key store and run every operation on it (`-cks`).
    #[arg(long)]
    pub custom_key_store: Option<String>,
    /// With `encrypt` among `--ops`: also run the work floor of each Encrypt scenario
    /// (`floor-encrypt`, `floor-encrypt-cks`).
    #[arg(long)]
    pub floor: bool,
    /// Authorization scenario: create a key with this key policy (JSON file) and run every
    /// operation on it too (`-authz`), compared with the default-policy key.
    #[arg(long, value_name = "FILE")]
    pub policy_file: Option<PathBuf>,
    /// Authorization scenario: make N grants on the `-authz` key to `--grantee-principal`
    /// before the run (needs a server with CreateGrant).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub grants: u32,
    /// The grantee of `--grants`: the benchmarking principal (the one the credential maps to).
    #[arg(long, default_value = DEV_PRINCIPAL_ARN)]
    pub grantee_principal: String,
    /// The operations each grant allows.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "Encrypt,Decrypt,GenerateDataKey"
    )]
    pub grant_operations: Vec<String>,
    #[command(flatten)]
    pub raw: RawArgs,
}

/// A KMS operation the benchmark runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Op {
    Encrypt,
    Decrypt,
    GenerateDataKey,
    /// Sign, `ECC_NIST_P256` key, `ECDSA_SHA_256`, RAW message.
    SignP256,
    /// Sign, `RSA_2048` key, `RSASSA_PKCS1_V1_5_SHA_256`, RAW message.
    SignRsa2048,
    /// GenerateMac, `HMAC_256` key, `HMAC_SHA_256`.
    MacHmac256,
    /// Verify, `ECC_NIST_P256` key, `ECDSA_SHA_256`, RAW message, a signature made at setup.
    VerifyP256,
    /// CreateKey (symmetric, default policy): a write of the metadata store per request.
    CreateKey,
    /// DescribeKey of the scenario's key: the metadata read path.
    Describe,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Encrypt => "encrypt",
            Op::Decrypt => "decrypt",
            Op::GenerateDataKey => "generate-data-key",
            Op::SignP256 => "sign-p256",
            Op::SignRsa2048 => "sign-rsa2048",
            Op::MacHmac256 => "mac-hmac256",
            Op::VerifyP256 => "verify-p256",
            Op::CreateKey => "create-key",
            Op::Describe => "describe",
        }
    }

    /// A key-type operation: its key's `KeySpec` and `KeyUsage`, the operation, its
    /// algorithm field and value, and its raw ceilings' groups (library, token).
    fn key_type(self) -> Option<KeyTypeOp> {
        let (spec, usage, operation, field, algorithm, lib, token) = match self {
            Op::Encrypt | Op::Decrypt | Op::GenerateDataKey | Op::CreateKey | Op::Describe => {
                return None
            }
            Op::SignP256 => (
                "ECC_NIST_P256",
                "SIGN_VERIFY",
                "Sign",
                "SigningAlgorithm",
                "ECDSA_SHA_256",
                LibKind::SignP256,
                Some(RawKind::SignP256),
            ),
            Op::SignRsa2048 => (
                "RSA_2048",
                "SIGN_VERIFY",
                "Sign",
                "SigningAlgorithm",
                "RSASSA_PKCS1_V1_5_SHA_256",
                LibKind::SignRsa2048,
                Some(RawKind::SignRsa2048),
            ),
            Op::MacHmac256 => (
                "HMAC_256",
                "GENERATE_VERIFY_MAC",
                "GenerateMac",
                "MacAlgorithm",
                "HMAC_SHA_256",
                LibKind::Hmac256,
                Some(RawKind::Hmac256),
            ),
            // Verify runs on the host on both roots: its ceiling is the library's.
            Op::VerifyP256 => (
                "ECC_NIST_P256",
                "SIGN_VERIFY",
                "Verify",
                "SigningAlgorithm",
                "ECDSA_SHA_256",
                LibKind::VerifyP256,
                None,
            ),
        };
        Some(KeyTypeOp {
            spec,
            usage,
            operation,
            field,
            algorithm,
            lib,
            token,
        })
    }
}

/// What a key-type operation needs (see [`Op::key_type`]).
struct KeyTypeOp {
    spec: &'static str,
    usage: &'static str,
    operation: &'static str,
    field: &'static str,
    algorithm: &'static str,
    lib: LibKind,
    token: Option<RawKind>,
}

/// The key-type operation whose Ceiling check has a target: P-256 Sign >= 50% of min(bare
/// route, raw rate) on each root (issue "Every key type").
const KEY_TYPE_TARGET: (Op, f64) = (Op::SignP256, 0.5);

/// The deterministic RAW message of Sign, Verify and GenerateMac (and their raw ceilings).
pub fn message(size: u32) -> Vec<u8> {
    (0..size)
        .map(|i| (i.wrapping_mul(197) ^ 0xa5) as u8)
        .collect()
}

/// The deterministic plaintext of every Encrypt (and the raw scenarios).
pub fn plaintext(size: u32) -> Vec<u8> {
    (0..size)
        .map(|i| (i.wrapping_mul(131) ^ 0x5a) as u8)
        .collect()
}

/// About the size of the KMS's AAD for a key (the key ARN, version and an empty encryption
/// context), for the raw scenarios.
pub const RAW_AAD: [u8; 96] = [0x61; 96];

/// The signer of `args`.
pub fn signer(args: &KmsArgs) -> Signer {
    let signer = Signer::new(
        args.access_key_id.as_str(),
        args.secret_access_key.as_str(),
        args.region.as_str(),
        "kms",
    );
    match &args.session_token {
        Some(token) => signer.with_session_token(token.as_str()),
        None => signer,
    }
}

/// A setup call on its own connection: signed now, 200 expected.
struct Setup<'a> {
    endpoint: &'a Endpoint,
    signer: &'a Signer,
    sender: Sender,
}

impl Setup<'_> {
    /// Sends `operation` and returns the status and the parsed body.
    async fn call_raw(
        &mut self,
        operation: &str,
        body: &serde_json::Value,
    ) -> Result<(StatusCode, serde_json::Value), BoxError> {
        let template = Template::new(
            self.endpoint,
            self.signer,
            Scheme::KmsJson {
                operation: operation.to_owned(),
            },
            "/",
            Bytes::from(serde_json::to_vec(body)?),
        );
        if self.sender.is_closed() {
            self.sender = self.endpoint.connect().await?;
        }
        let (status, response) = send(&mut self.sender, template.fresh_request()?).await?;
        let parsed = serde_json::from_slice(&response).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&response).into_owned())
        });
        Ok((status, parsed))
    }

    async fn call(
        &mut self,
        operation: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, BoxError> {
        let (status, response) = self.call_raw(operation, &body).await?;
        if status != StatusCode::OK {
            return Err(format!("{operation} failed with {status}: {response}").into());
        }
        Ok(response)
    }

    async fn create_key(&mut self, body: serde_json::Value) -> Result<String, BoxError> {
        let created = self.call("CreateKey", body).await?;
        Ok(string_field(&created, "/KeyMetadata/KeyId")?.to_owned())
    }
}

fn string_field<'a>(value: &'a serde_json::Value, pointer: &str) -> Result<&'a str, BoxError> {
    value
        .pointer(pointer)
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| format!("response lacks {pointer}: {value}").into())
}

/// Creates the keys (and grants) and builds every scenario and comparison.
pub async fn prepare(endpoint: &Endpoint, args: &KmsArgs) -> Result<Plan, BoxError> {
    if !args.baseline_path.starts_with('/') {
        return Err("--baseline-path must start with '/'".into());
    }
    if args.grants > 0 && args.policy_file.is_none() {
        return Err("--grants needs --policy-file (the grants go on the authorization key)".into());
    }
    let signer = signer(args);
    let mut setup = Setup {
        endpoint,
        signer: &signer,
        sender: endpoint.connect().await?,
    };
    let ops = dedup(&args.ops);
    let key_id = match &args.key_id {
        Some(k) => k.clone(),
        None => setup.create_key(serde_json::json!({})).await?,
    };
    eprintln!("loadgen: key {key_id}");
    let b64 = base64::engine::general_purpose::STANDARD;
    let encrypt_body = serde_json::json!({
        "KeyId": key_id,
        "Plaintext": b64.encode(plaintext(args.plaintext_size)),
    });
    let mut scenarios = vec![Scenario {
        name: BASELINE.to_owned(),
        template: Arc::new(Template::new(
            endpoint,
            &signer,
            Scheme::KmsJson {
                operation: "Encrypt".into(),
            },
            args.baseline_path.clone(),
            Bytes::from(serde_json::to_vec(&encrypt_body)?),
        )),
        open_loop: false,
    }];
    let mut checks = Vec::new();

    let mut per_key = vec![(key_id.clone(), "", args.floor)];
    if let Some(store) = &args.custom_key_store {
        let store_key = setup
            .create_key(serde_json::json!({"Origin": "AWS_CLOUDHSM", "CustomKeyStoreId": store}))
            .await?;
        eprintln!("loadgen: key {store_key} in custom key store {store}");
        per_key.push((store_key, "-cks", args.floor));
    }
    if let Some(path) = &args.policy_file {
        let policy = std::fs::read_to_string(path)
            .map_err(|e| format!("--policy-file {}: {e}", path.display()))?;
        let authz_key = setup
            .create_key(serde_json::json!({
                "Policy": policy,
                "Description": "loadgen authorization benchmark",
            }))
            .await
            .map_err(|e| format!("--policy-file {}: {e}", path.display()))?;
        eprintln!(
            "loadgen: key {authz_key} with the key policy in {}",
            path.display()
        );
        make_grants(&mut setup, args, &authz_key).await?;
        // No floor: it skips authorization, which is what this key is about.
        per_key.push((authz_key, "-authz", false));
    }

    // Scenarios op by op, the keys of one op side by side, so that the compared scenarios run
    // next to each other in every round.
    let mut ciphertexts = Vec::new();
    for (key, _, _) in &per_key {
        let body = serde_json::json!({
            "KeyId": key,
            "Plaintext": b64.encode(plaintext(args.plaintext_size)),
        });
        let encrypted = setup.call("Encrypt", body).await?;
        ciphertexts.push(string_field(&encrypted, "/CiphertextBlob")?.to_owned());
    }
    if ops.contains(&Op::CreateKey) {
        // One scenario, not one per key: it names no key.
        let body = serde_json::json!({"Description": "loadgen create-key"});
        scenarios.push(Scenario {
            name: Op::CreateKey.name().to_owned(),
            template: Arc::new(Template::new(
                endpoint,
                &signer,
                Scheme::KmsJson {
                    operation: "CreateKey".to_owned(),
                },
                "/",
                Bytes::from(serde_json::to_vec(&body)?),
            )),
            open_loop: true,
        });
    }
    let keyed = |op: &&Op| op.key_type().is_none() && **op != Op::CreateKey;
    for op in ops.iter().filter(keyed) {
        for ((key, suffix, floor), ciphertext) in per_key.iter().zip(&ciphertexts) {
            let (operation, body) = match op {
                Op::Encrypt => (
                    "Encrypt",
                    serde_json::json!({
                        "KeyId": key,
                        "Plaintext": b64.encode(plaintext(args.plaintext_size)),
                    }),
                ),
                Op::Decrypt => (
                    "Decrypt",
                    serde_json::json!({"KeyId": key, "CiphertextBlob": ciphertext}),
                ),
                Op::GenerateDataKey => (
                    "GenerateDataKey",
                    serde_json::json!({"KeyId": key, "KeySpec": "AES_256"}),
                ),
                Op::Describe => ("DescribeKey", serde_json::json!({"KeyId": key})),
                Op::SignP256
                | Op::SignRsa2048
                | Op::MacHmac256
                | Op::VerifyP256
                | Op::CreateKey => continue,
            };
            let body = Bytes::from(serde_json::to_vec(&body)?);
            let scheme = Scheme::KmsJson {
                operation: operation.to_owned(),
            };
            if *op == Op::Encrypt && *floor {
                scenarios.push(Scenario {
                    name: format!("floor-encrypt{suffix}"),
                    template: Arc::new(
                        Template::new(
                            endpoint,
                            &signer,
                            scheme.clone(),
                            args.baseline_path.clone(),
                            body.clone(),
                        )
                        .with_header(BENCH_KEY_HEADER, key)?,
                    ),
                    open_loop: false,
                });
            }
            scenarios.push(Scenario {
                name: format!("{}{suffix}", op.name()),
                template: Arc::new(Template::new(endpoint, &signer, scheme, "/", body)),
                open_loop: true,
            });
        }
    }

    key_type_scenarios(&mut setup, endpoint, &signer, args, &ops, &mut scenarios).await?;

    for (suffix, raw) in [("", "raw-session"), ("-cks", "raw-token")] {
        checks.push(Check::Ceiling {
            scenario: format!("floor-encrypt{suffix}"),
            raw: raw.into(),
            target: None,
            note: "HTTP + the HSM call, no KMS work",
        });
        checks.push(Check::Ceiling {
            scenario: format!("encrypt{suffix}"),
            raw: raw.into(),
            target: Some(0.5),
            note: "",
        });
    }
    for op in &ops {
        let Some(kt) = op.key_type() else { continue };
        let target = (*op == KEY_TYPE_TARGET.0).then_some(KEY_TYPE_TARGET.1);
        // A check whose raw scenario did not run is left out of the report.
        for raw in [Some(kt.lib.group()), kt.token.map(RawKind::group)]
            .into_iter()
            .flatten()
        {
            checks.push(Check::Ceiling {
                scenario: op.name().to_owned(),
                raw: raw.to_owned(),
                target,
                note: "",
            });
        }
    }
    for op in ops.iter().filter(keyed) {
        checks.push(Check::Relative {
            scenario: format!("{}-authz", op.name()),
            reference: op.name().to_owned(),
            target: (*op == Op::Encrypt).then_some(AUTHZ_TARGET),
            note: "the --policy-file key (and its grants) against a default-policy key",
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

/// The key-type operations among `ops`: creates their keys (one per key spec, shared by Sign
/// and Verify P-256), a signature for Verify, and one scenario each.
async fn key_type_scenarios(
    setup: &mut Setup<'_>,
    endpoint: &Endpoint,
    signer: &Signer,
    args: &KmsArgs,
    ops: &[Op],
    scenarios: &mut Vec<Scenario>,
) -> Result<(), BoxError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let message = b64.encode(message(args.message_size));
    let mut keys: Vec<(&'static str, String)> = Vec::new();
    for op in ops {
        let Some(kt) = op.key_type() else { continue };
        let key = match keys.iter().find(|(spec, _)| *spec == kt.spec) {
            Some((_, key)) => key.clone(),
            None => {
                let key = setup
                    .create_key(serde_json::json!({
                        "KeySpec": kt.spec,
                        "KeyUsage": kt.usage,
                        "Description": "loadgen key-type benchmark",
                    }))
                    .await
                    .map_err(|e| format!("{}: {e}", op.name()))?;
                eprintln!("loadgen: key {key} ({}, {})", kt.spec, kt.usage);
                keys.push((kt.spec, key.clone()));
                key
            }
        };
        let mut body = serde_json::json!({
            "KeyId": key,
            "Message": message,
            kt.field: kt.algorithm,
        });
        if kt.operation != "GenerateMac" {
            body["MessageType"] = "RAW".into();
        }
        if kt.operation == "Verify" {
            let signed = setup.call("Sign", body.clone()).await?;
            body["Signature"] = string_field(&signed, "/Signature")?.into();
        }
        // The request must succeed once before it is measured: a server without the
        // operation fails at setup with its answer, not as a column of errors.
        setup
            .call(kt.operation, body.clone())
            .await
            .map_err(|e| format!("{}: {e}", op.name()))?;
        scenarios.push(Scenario {
            name: op.name().to_owned(),
            template: Arc::new(Template::new(
                endpoint,
                signer,
                Scheme::KmsJson {
                    operation: kt.operation.to_owned(),
                },
                "/",
                Bytes::from(serde_json::to_vec(&body)?),
            )),
            open_loop: true,
        });
    }
    Ok(())
}

/// `--grants N` CreateGrant calls on `key_id`; a server without CreateGrant fails clearly.
async fn make_grants(setup: &mut Setup<'_>, args: &KmsArgs, key_id: &str) -> Result<(), BoxError> {
    for i in 0..args.grants {
        let body = serde_json::json!({
            "KeyId": key_id,
            "GranteePrincipal": args.grantee_principal,
            "Operations": args.grant_operations,
            // Distinct names: a grant request repeated with the same name may return the
            // existing grant instead of a new one.
            "Name": format!("loadgen-{i}"),
        });
        let (status, response) = setup.call_raw("CreateGrant", &body).await?;
        if status == StatusCode::OK {
            continue;
        }
        let kind = response
            .get("__type")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        if kind.ends_with("UnknownOperationException") {
            return Err(format!(
                "--grants: this server does not implement CreateGrant ({kind}); the grant \
                 operations are not in this build"
            )
            .into());
        }
        return Err(format!(
            "--grants: CreateGrant #{} failed with {status}: {response}",
            i + 1
        )
        .into());
    }
    if args.grants > 0 {
        eprintln!(
            "loadgen: {} grants on {key_id} to {} ({})",
            args.grants,
            args.grantee_principal,
            args.grant_operations.join(",")
        );
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// `hsm-config/bench-key-policy.json`: a valid key policy of ten statements, each with
    /// conditions (what the authorization scenario promises).
    #[test]
    fn the_example_key_policy_is_valid() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../hsm-config/bench-key-policy.json");
        let text = std::fs::read_to_string(path).unwrap();
        kms_policy::Policy::parse(
            &text,
            kms_policy::PolicyKind::Key,
            &kms_policy::AnyPrincipalExists,
        )
        .unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let statements = doc["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 10);
        assert!(statements.iter().all(|s| s.get("Condition").is_some()));
        assert!(text.contains(DEV_PRINCIPAL_ARN));
    }

    #[test]
    fn plaintexts_are_deterministic() {
        assert_eq!(plaintext(4), plaintext(4));
        assert_eq!(plaintext(256).len(), 256);
    }
}
