//! The seed file (`[server] seed_file`, docs/seeding.md): applied at two starts of the real
//! binary on the same store it gives the same keys (ids, ARNs, creation dates, aliases,
//! replicas), changes nothing the first start made or a client changed since, and ciphertexts
//! of the first start decrypt after the second. A seed that contradicts an existing key or
//! alias stops the start with an error naming it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use std::process::Stdio;

use aws_credential_types::Credentials;
use aws_sdk_kms::config::{BehaviorVersion, Region};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeyState, MultiRegionKeyType, SigningAlgorithmSpec};

const PLAIN: &str = "11111111-2222-3333-4444-555555555555";
const SIGNING: &str = "22222222-3333-4444-5555-666666666666";
const DISABLED: &str = "33333333-4444-5555-6666-777777777777";
const MRK: &str = "mrk-0123456789abcdef0123456789abcdef";

const SEED: &str = r#"
[[keys]]
id = "11111111-2222-3333-4444-555555555555"
description = "app data key"
aliases = ["alias/app", "alias/app-too"]
tags = { team = "payments", env = "test" }

[[keys]]
id = "22222222-3333-4444-5555-666666666666"
key_spec = "ECC_NIST_P256"
key_usage = "SIGN_VERIFY"
aliases = ["alias/signer"]

[[keys]]
id = "33333333-4444-5555-6666-777777777777"
enabled = false

[[keys]]
id = "mrk-0123456789abcdef0123456789abcdef"
region = "us-east-1"
description = "shared"
replica_regions = ["us-west-2"]
aliases = ["alias/shared"]
"#;

/// The environment of every start of one test: the same root (on PKCS#11, the same domain
/// key label), both regions, the seed file.
fn env(seed: &std::path::Path) -> Vec<(String, String)> {
    static BACKEND: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    let mut env = BACKEND.get_or_init(common::backend_env).clone();
    env.push(("KMS_LOG".into(), "warn".into()));
    env.push((
        "KMS_SERVER__REGIONS".into(),
        r#"["us-east-1", "us-west-2"]"#.into(),
    ));
    env.push(("KMS_SERVER__SEED_FILE".into(), seed.display().to_string()));
    env
}

fn client(endpoint: &str, region: &str) -> aws_sdk_kms::Client {
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            kms::config::DEV_ACCESS_KEY_ID,
            kms::config::DEV_SECRET_ACCESS_KEY,
            None,
            None,
            "test",
        ))
        .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_kms::Client::from_conf(conf)
}

/// Everything a start should reproduce: per key id (and region), its ARN, creation date,
/// spec, state and MultiRegionConfiguration; the aliases of each region; the key count.
async fn snapshot(endpoint: &str) -> Vec<String> {
    let mut out = Vec::new();
    for region in ["us-east-1", "us-west-2"] {
        let kms = client(endpoint, region);
        let ids: &[&str] = if region == "us-east-1" {
            &[PLAIN, SIGNING, DISABLED, MRK]
        } else {
            &[MRK]
        };
        for id in ids {
            let md = kms
                .describe_key()
                .key_id(*id)
                .send()
                .await
                .unwrap()
                .key_metadata
                .unwrap();
            out.push(format!(
                "{} {:?} {:?} {:?} {:?}",
                md.arn().unwrap(),
                md.creation_date(),
                md.key_spec(),
                md.key_state(),
                md.multi_region_configuration()
            ));
        }
        let keys = kms
            .list_keys()
            .send()
            .await
            .unwrap()
            .keys
            .unwrap_or_default();
        out.push(format!("{region} keys {}", keys.len()));
        let mut aliases: Vec<String> = kms
            .list_aliases()
            .send()
            .await
            .unwrap()
            .aliases
            .unwrap_or_default()
            .iter()
            .map(|a| format!("{:?}->{:?}", a.alias_arn(), a.target_key_id()))
            .collect();
        aliases.sort();
        out.extend(aliases);
    }
    out
}

fn stop(mut child: std::process::Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn a_seed_applied_twice_gives_the_same_keys() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.toml");
    std::fs::write(&seed, SEED).unwrap();
    let (child, endpoint) = common::spawn_kms(dir.path(), env(&seed), Stdio::null());
    let east = client(&endpoint, "us-east-1");
    let west = client(&endpoint, "us-west-2");

    // What the seed says, as a client sees it.
    let md = east
        .describe_key()
        .key_id("alias/app")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.key_id(), PLAIN);
    assert_eq!(md.description(), Some("app data key"));
    let tags = east
        .list_resource_tags()
        .key_id(PLAIN)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags().len(), 2);
    let signer = east
        .describe_key()
        .key_id("alias/signer")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(signer.key_id(), SIGNING);
    let md = east
        .describe_key()
        .key_id(DISABLED)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.key_state(), Some(&KeyState::Disabled));
    let md = west
        .describe_key()
        .key_id("alias/shared")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.key_id(), MRK);
    assert_eq!(
        md.multi_region_configuration()
            .unwrap()
            .multi_region_key_type(),
        Some(&MultiRegionKeyType::Replica)
    );

    // Ciphertexts and a signature of the first start; a change a client makes.
    let blob = east
        .encrypt()
        .key_id("alias/app")
        .plaintext(Blob::new(b"first start".to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    let mrk_blob = west
        .encrypt()
        .key_id(MRK)
        .plaintext(Blob::new(b"mrk".to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    let signature = east
        .sign()
        .key_id(SIGNING)
        .message(Blob::new(b"m".to_vec()))
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .unwrap()
        .signature
        .unwrap();
    east.update_key_description()
        .key_id(PLAIN)
        .description("changed by a client")
        .send()
        .await
        .unwrap();
    let first = snapshot(&endpoint).await;
    stop(child);

    // The second start on the same store: the same keys, nothing changed.
    let (child, endpoint) = common::spawn_kms(dir.path(), env(&seed), Stdio::null());
    let east = client(&endpoint, "us-east-1");
    assert_eq!(snapshot(&endpoint).await, first);
    let d = east
        .describe_key()
        .key_id(PLAIN)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(d.description(), Some("changed by a client"));
    let pt = east
        .decrypt()
        .ciphertext_blob(blob)
        .send()
        .await
        .unwrap()
        .plaintext
        .unwrap();
    assert_eq!(pt.as_ref(), b"first start");
    let pt = east
        .decrypt()
        .ciphertext_blob(mrk_blob)
        .send()
        .await
        .unwrap()
        .plaintext
        .unwrap();
    assert_eq!(pt.as_ref(), b"mrk");
    let ok = east
        .verify()
        .key_id("alias/signer")
        .message(Blob::new(b"m".to_vec()))
        .signature(signature)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .unwrap();
    assert!(ok.signature_valid());
    stop(child);
}

/// Starts the binary expecting it to refuse; returns its stderr.
fn refused_start(dir: &std::path::Path, seed: &std::path::Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kms"))
        .env("KMS_SERVER__LISTEN", "127.0.0.1:0")
        .env("KMS_SERVER__DATA_DIR", dir)
        .envs(common::with_store_env(dir, env(seed)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[tokio::test]
async fn a_seed_that_contradicts_the_store_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.toml");
    std::fs::write(&seed, SEED).unwrap();
    let (child, endpoint) = common::spawn_kms(dir.path(), env(&seed), Stdio::null());
    // A client points a seeded alias elsewhere.
    let east = client(&endpoint, "us-east-1");
    east.update_alias()
        .alias_name("alias/app-too")
        .target_key_id(DISABLED)
        .send()
        .await
        .unwrap();
    stop(child);
    let err = refused_start(dir.path(), &seed);
    assert!(
        err.contains(&format!("seed key {PLAIN}")) && err.contains("alias/app-too"),
        "{err}"
    );

    // Another spec for an existing id (the alias conflict left out of this seed).
    let other = SEED.replace(", \"alias/app-too\"", "").replace(
        "id = \"33333333-4444-5555-6666-777777777777\"",
        "id = \"33333333-4444-5555-6666-777777777777\"\nkey_spec = \"HMAC_256\"\nkey_usage = \"GENERATE_VERIFY_MAC\"",
    );
    std::fs::write(&seed, other).unwrap();
    let err = refused_start(dir.path(), &seed);
    assert!(
        err.contains(&format!("seed key {DISABLED}"))
            && err.contains("key_spec is SYMMETRIC_DEFAULT, the seed says HMAC_256"),
        "{err}"
    );

    // Not a seed at all: the file's problem, with its path.
    std::fs::write(&seed, "[[keys]]\nid = 'x'\nkeyspec = 'RSA_2048'\n").unwrap();
    let err = refused_start(dir.path(), &seed);
    assert!(err.contains("seed.toml"), "{err}");
    // EXTERNAL keys come with imported material, not yet.
    std::fs::write(
        &seed,
        "[[keys]]\nid = '44444444-5555-6666-7777-888888888888'\norigin = 'EXTERNAL'\n",
    )
    .unwrap();
    let err = refused_start(dir.path(), &seed);
    assert!(err.contains("imported key material"), "{err}");
}
