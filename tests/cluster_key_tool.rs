//! `kms-cluster-key`, the operator's tool that provisions a cluster key on a member: the key
//! it creates is private, sensitive, non-extractable and can wrap/unwrap only (so the crypto
//! user cannot C_Decrypt key blobs wrapped under it), a second run leaves it alone, and a key
//! file of the wrong size is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::softhsm;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::UserType;

fn provision(token: &str, pin_file: &Path, key_file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kms-cluster-key"))
        .args(["--token-label", token, "--pin-file"])
        .arg(pin_file)
        .arg("--key-file")
        .arg(key_file)
        .output()
        .unwrap()
}

#[test]
fn provisions_a_wrap_only_non_extractable_cluster_key_once() {
    // Sets SOFTHSM2_CONF (inherited by the tool) and creates the pool tokens.
    softhsm::test_token();
    let dir = tempfile::tempdir().unwrap();
    let pin = dir.path().join("user.pin");
    std::fs::write(&pin, format!("{}\n", softhsm::POOL_PIN)).unwrap();
    let key = dir.path().join("cluster.key");
    std::fs::write(&key, [0x5au8; 32]).unwrap();

    let out = provision("pool-0", &pin, &key);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "cluster key provisioned on pool-0"
    );
    let again = provision("pool-0", &pin, &key);
    assert!(again.status.success());
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        "cluster key already present on pool-0"
    );
    let short = dir.path().join("short.key");
    std::fs::write(&short, [1u8; 16]).unwrap();
    let refused = provision("pool-1", &pin, &short);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("32 bytes"));

    // Inspect the token as an outsider would, over PKCS#11.
    let profile = hsm::VendorProfile::builtin("softhsm2").unwrap();
    let ctx = hsm::module::load(Path::new(softhsm::MODULE)).unwrap();
    let slot = hsm::token::find_slot(&ctx, "pool-0", &profile).unwrap();
    let s = ctx.open_ro_session(slot).unwrap();
    s.login(UserType::User, Some(&softhsm::POOL_PIN.to_string().into()))
        .unwrap();
    let found = s
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(b"kms-cluster-key".to_vec()),
        ])
        .unwrap();
    assert_eq!(found.len(), 1, "exactly one cluster key after two runs");
    let attrs = s
        .get_attributes(
            found[0],
            &[
                AttributeType::Token,
                AttributeType::Private,
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::Wrap,
                AttributeType::Unwrap,
                AttributeType::Encrypt,
                AttributeType::Decrypt,
                AttributeType::Sign,
            ],
        )
        .unwrap();
    for expected in [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Wrap(true),
        Attribute::Unwrap(true),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Sign(false),
    ] {
        assert!(attrs.contains(&expected), "{expected:?} not in {attrs:?}");
    }
    // The value cannot be read.
    let value = s.get_attributes(found[0], &[AttributeType::Value]);
    assert!(
        !matches!(value.as_deref(), Ok([Attribute::Value(_)])),
        "the cluster key's value was readable"
    );
    s.logout().unwrap();
}
