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

/// An ECDSA_SHA_256 signature of the message `m` by `key`.
async fn sign_m(kms: &aws_sdk_kms::Client, key: &str) -> Blob {
    kms.sign()
        .key_id(key)
        .message(Blob::new(b"m".to_vec()))
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .unwrap()
        .signature
        .unwrap()
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
    let signature = sign_m(&east, SIGNING).await;
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
    // Material belongs to EXTERNAL keys only.
    std::fs::write(
        &seed,
        "[[keys]]\nid = '44444444-5555-6666-7777-888888888888'\nmaterial = 'base64:AAAA'\n",
    )
    .unwrap();
    let err = refused_start(dir.path(), &seed);
    assert!(err.contains("material needs origin"), "{err}");
}

const EXT_SYM: &str = "44444444-5555-6666-7777-888888888888";
const EXT_HMAC: &str = "55555555-6666-7777-8888-999999999999";
const EXT_PENDING: &str = "66666666-7777-8888-9999-aaaaaaaaaaaa";

/// EXTERNAL keys: symmetric material from a file beside the seed, HMAC material inline, and
/// one without material.
const EXTERNAL_SEED: &str = r#"
[[keys]]
id = "44444444-5555-6666-7777-888888888888"
origin = "EXTERNAL"
material = "file:sym.bin"
aliases = ["alias/imported"]

[[keys]]
id = "55555555-6666-7777-8888-999999999999"
key_spec = "HMAC_256"
key_usage = "GENERATE_VERIFY_MAC"
origin = "EXTERNAL"
material = "base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

[[keys]]
id = "66666666-7777-8888-9999-aaaaaaaaaaaa"
origin = "EXTERNAL"

[[keys]]
id = "77777777-8888-9999-aaaa-bbbbbbbbbbbb"
key_spec = "ECC_NIST_P256"
key_usage = "SIGN_VERIFY"
origin = "EXTERNAL"
material = "file:signer.der"
"#;

const EXT_ECC: &str = "77777777-8888-9999-aaaa-bbbbbbbbbbbb";

/// A seed directory with `EXTERNAL_SEED` and its symmetric material file.
fn external_seed(material: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.toml");
    std::fs::write(&seed, EXTERNAL_SEED).unwrap();
    std::fs::write(dir.path().join("sym.bin"), material).unwrap();
    // A P-256 private key as PKCS#8 DER, made by OpenSSL as an operator would (genpkey's
    // PEM is PKCS#8; its DER output of an EC key is SEC1, hence the second step).
    let pem = dir.path().join("signer.pem");
    let der = dir.path().join("signer.der");
    for args in [
        vec![
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ],
        vec!["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"],
    ] {
        let mut cmd = std::process::Command::new("openssl");
        cmd.args(&args).arg(&pem);
        if args[0] == "pkcs8" {
            cmd.arg("-out").arg(&der);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    (dir, seed)
}

async fn describe(kms: &aws_sdk_kms::Client, id: &str) -> aws_sdk_kms::types::KeyMetadata {
    kms.describe_key()
        .key_id(id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
}

async fn mac(kms: &aws_sdk_kms::Client) -> Vec<u8> {
    kms.generate_mac()
        .key_id(EXT_HMAC)
        .mac_algorithm(aws_sdk_kms::types::MacAlgorithmSpec::HmacSha256)
        .message(Blob::new(b"fixed".to_vec()))
        .send()
        .await
        .unwrap()
        .mac
        .unwrap()
        .into_inner()
}

/// The point of fixed material: two FRESH stores seeded from the same file have the same
/// keys, so a ciphertext or MAC of one start is good at the other.
#[tokio::test]
async fn seeded_material_is_the_same_on_fresh_stores() {
    use aws_sdk_kms::types::{ExpirationModelType, OriginType};
    let (_seed_dir, seed) = external_seed(&[7u8; 32]);
    let first_dir = tempfile::tempdir().unwrap();
    let (child, endpoint) = common::spawn_kms(first_dir.path(), env(&seed), Stdio::null());
    let kms = client(&endpoint, "us-east-1");
    let md = describe(&kms, "alias/imported").await;
    assert_eq!(md.key_id(), EXT_SYM);
    assert_eq!(md.origin(), Some(&OriginType::External));
    assert_eq!(md.key_state(), Some(&KeyState::Enabled));
    assert_eq!(
        md.expiration_model(),
        Some(&ExpirationModelType::KeyMaterialDoesNotExpire)
    );
    assert!(md.valid_to().is_none());
    let material_id = md.current_key_material_id().unwrap().to_string();
    assert_eq!(
        describe(&kms, EXT_HMAC).await.key_state(),
        Some(&KeyState::Enabled)
    );
    // Without material: waiting for an import.
    assert_eq!(
        describe(&kms, EXT_PENDING).await.key_state(),
        Some(&KeyState::PendingImport)
    );
    let blob = kms
        .encrypt()
        .key_id(EXT_SYM)
        .plaintext(Blob::new(b"fixed material".to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    let first_mac = mac(&kms).await;
    let public_key = kms
        .get_public_key()
        .key_id(EXT_ECC)
        .send()
        .await
        .unwrap()
        .public_key
        .unwrap();
    let signature = sign_m(&kms, EXT_ECC).await;
    stop(child);

    let second_dir = tempfile::tempdir().unwrap();
    let (child, endpoint) = common::spawn_kms(second_dir.path(), env(&seed), Stdio::null());
    let kms = client(&endpoint, "us-east-1");
    let md = describe(&kms, EXT_SYM).await;
    assert_eq!(md.current_key_material_id(), Some(material_id.as_str()));
    let pt = kms
        .decrypt()
        .ciphertext_blob(blob)
        .send()
        .await
        .unwrap()
        .plaintext
        .unwrap();
    assert_eq!(pt.as_ref(), b"fixed material");
    assert_eq!(mac(&kms).await, first_mac);
    let again = kms
        .get_public_key()
        .key_id(EXT_ECC)
        .send()
        .await
        .unwrap()
        .public_key
        .unwrap();
    assert_eq!(again, public_key);
    let ok = kms
        .verify()
        .key_id(EXT_ECC)
        .message(Blob::new(b"m".to_vec()))
        .signature(signature)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .unwrap();
    assert!(ok.signature_valid());
    stop(child);
}

/// On one store: a second start changes nothing, material a client deleted is imported
/// again, and other material for the same id stops the start.
#[tokio::test]
async fn seeded_material_is_idempotent_and_reimported() {
    let (seed_dir, seed) = external_seed(&[9u8; 32]);
    let dir = tempfile::tempdir().unwrap();
    let (child, endpoint) = common::spawn_kms(dir.path(), env(&seed), Stdio::null());
    let kms = client(&endpoint, "us-east-1");
    let before = describe(&kms, EXT_SYM).await;
    let blob = kms
        .encrypt()
        .key_id(EXT_SYM)
        .plaintext(Blob::new(b"kept".to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    stop(child);

    // Same store, same seed: nothing changes.
    let (child, endpoint) = common::spawn_kms(dir.path(), env(&seed), Stdio::null());
    let kms = client(&endpoint, "us-east-1");
    assert_eq!(describe(&kms, EXT_SYM).await, before);
    // A client deletes the material.
    kms.delete_imported_key_material()
        .key_id(EXT_SYM)
        .send()
        .await
        .unwrap();
    assert_eq!(
        describe(&kms, EXT_SYM).await.key_state(),
        Some(&KeyState::PendingImport)
    );
    stop(child);

    // The next start imports the same material again.
    let (child, endpoint) = common::spawn_kms(dir.path(), env(&seed), Stdio::null());
    let kms = client(&endpoint, "us-east-1");
    let after = describe(&kms, EXT_SYM).await;
    assert_eq!(after.key_state(), Some(&KeyState::Enabled));
    assert_eq!(
        after.current_key_material_id(),
        before.current_key_material_id()
    );
    let pt = kms
        .decrypt()
        .ciphertext_blob(blob)
        .send()
        .await
        .unwrap()
        .plaintext
        .unwrap();
    assert_eq!(pt.as_ref(), b"kept");
    stop(child);

    // Other material for the same id: a start-up error naming the key.
    std::fs::write(seed_dir.path().join("sym.bin"), [1u8; 32]).unwrap();
    let err = refused_start(dir.path(), &seed);
    assert!(
        err.contains(&format!("seed key {EXT_SYM}")) && err.contains("other key material"),
        "{err}"
    );
    // Material that is not material of the spec.
    std::fs::write(seed_dir.path().join("sym.bin"), [1u8; 31]).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let err = refused_start(fresh.path(), &seed);
    assert!(
        err.contains(&format!("seed key {EXT_SYM}")) && err.contains("IncorrectKeyMaterial"),
        "{err}"
    );
}
