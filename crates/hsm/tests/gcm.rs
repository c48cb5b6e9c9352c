//! `hsm::gcm` against SoftHSMv2: both IV policies, tampering, and a token that generates IVs.
//!
//! SoftHSM takes caller IVs only, so a token that generates them is emulated by the
//! fault-injection module (softhsm/fault-module/, marker `<label>.token-iv`): it refuses a
//! caller IV, writes its own into the parameter buffer, and logs each IV it made to
//! `<label>.token-ivs`. Run under nextest (one process per test: C_Initialize is process-global
//! and `SOFTHSM2_CONF` is read once).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

#[path = "../../../tests/common/fault_module.rs"]
mod fault_module;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectHandle};
use hsm::gcm::{self, GcmError, IvPolicy};
use hsm::iv::IvPool;
use hsm::{ErrorClass, Pkcs11Error, Token, TokenConfig, VendorProfile};
use secrecy::SecretString;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const LABEL: &str = "hsm-gcm";
const PIN: &str = "1234";

/// This process's SoftHSM directory with one initialized token; `KMS_FAULT_DIR` points at its
/// `faults/` (both set before any module is loaded).
fn softhsm_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        assert!(
            Path::new(MODULE).exists(),
            "SoftHSMv2 is not installed ({MODULE} missing): run softhsm/install.sh"
        );
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("hsm-gcm-softhsm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tokens")).unwrap();
        std::fs::create_dir_all(dir.join("faults")).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                dir.join("tokens").display()
            ),
        )
        .unwrap();
        std::env::set_var("SOFTHSM2_CONF", &conf);
        std::env::set_var("KMS_FAULT_DIR", dir.join("faults"));
        hsm::token::init_token(
            Path::new(MODULE),
            LABEL,
            &SecretString::from("12345678"),
            &SecretString::from(PIN),
            &softhsm_profile(true),
        )
        .unwrap();
        dir
    })
}

/// The fault module, built once per process.
fn fault_module() -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("hsm-fault-module")
        .join("libkmsfault.so");
    fault_module::build(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."), &out);
    out
}

fn softhsm_profile(host_generated_iv: bool) -> VendorProfile {
    let mut p = VendorProfile::builtin("softhsm2").unwrap();
    p.host_generated_iv = host_generated_iv;
    p
}

/// The test token through `module`, with an AES-256 session key of its anchor session.
fn open(module: &Path, host_generated_iv: bool) -> (Arc<Token>, ObjectHandle) {
    softhsm_dir();
    let token = Token::open(TokenConfig {
        module: module.to_path_buf(),
        token_label: LABEL.into(),
        pin: SecretString::from(PIN),
        so: false,
        max_sessions: 2,
        session_wait: Duration::from_secs(5),
        profile: Arc::new(softhsm_profile(host_generated_iv)),
    })
    .unwrap();
    let key = token
        .with_anchor(|s| {
            s.generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Token(false),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                    Attribute::ValueLen(32.into()),
                ],
            )
        })
        .unwrap();
    (token, key)
}

fn marker(kind: &str) -> PathBuf {
    softhsm_dir().join("faults").join(format!("{LABEL}.{kind}"))
}

/// The IVs the fault module generated (hex), in order.
fn token_ivs() -> Vec<String> {
    std::fs::read_to_string(marker("token-ivs"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn host_ivs_round_trip_and_a_bad_tag_is_an_invalid_ciphertext() {
    let (token, key) = open(Path::new(MODULE), true);
    let pool = IvPool::new();
    let ivs = IvPolicy::of(token.profile(), &pool);
    assert!(matches!(ivs, IvPolicy::Host(_)));
    let mut seen = HashSet::new();
    for iv_len in [12, 12, 16, 1] {
        let plaintext = vec![iv_len as u8; 40];
        let sealed = gcm::encrypt(&token, key, ivs, iv_len, &plaintext, b"aad").unwrap();
        assert_eq!(sealed.iv.len(), iv_len);
        assert_eq!(sealed.ciphertext_and_tag.len(), 40 + gcm::TAG_LEN);
        assert_ne!(&sealed.ciphertext_and_tag[..40], plaintext.as_slice());
        assert!(seen.insert(sealed.iv.clone()), "an IV repeated");
        let opened =
            gcm::decrypt(&token, key, &sealed.iv, &sealed.ciphertext_and_tag, b"aad").unwrap();
        assert_eq!(opened.as_slice(), plaintext.as_slice());
    }

    let sealed = gcm::encrypt(&token, key, ivs, 12, b"secret", b"aad").unwrap();
    // A flipped tag bit: SoftHSM 2.6.1 answers CKR_GENERAL_ERROR, which its profile lists as a
    // GCM authentication failure.
    let mut tampered = sealed.ciphertext_and_tag.clone();
    *tampered.last_mut().unwrap() ^= 1;
    let e = gcm::decrypt(&token, key, &sealed.iv, &tampered, b"aad").unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidCiphertext, "{e}");
    assert_eq!(e.rv(), Some(RvError::GeneralError));
    // Another AAD, another IV, a flipped ciphertext bit, a ciphertext shorter than a tag.
    let e = gcm::decrypt(&token, key, &sealed.iv, &sealed.ciphertext_and_tag, b"AAD").unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidCiphertext, "{e}");
    let mut other_iv = sealed.iv.clone();
    other_iv[0] ^= 0x80;
    let e = gcm::decrypt(&token, key, &other_iv, &sealed.ciphertext_and_tag, b"aad").unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidCiphertext, "{e}");
    let mut flipped = sealed.ciphertext_and_tag.clone();
    flipped[0] ^= 1;
    let e = gcm::decrypt(&token, key, &sealed.iv, &flipped, b"aad").unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidCiphertext, "{e}");
    let e = gcm::decrypt(
        &token,
        key,
        &sealed.iv,
        &sealed.ciphertext_and_tag[..15],
        b"aad",
    )
    .unwrap_err();
    assert!(matches!(e, Pkcs11Error::Gcm(GcmError::Truncated)), "{e}");
    assert_eq!(e.class(), ErrorClass::InvalidCiphertext);
    // IV lengths outside PKCS#11's range never reach the token.
    let e = gcm::encrypt(&token, key, ivs, 0, b"x", b"").unwrap_err();
    assert!(matches!(e, Pkcs11Error::Gcm(GcmError::IvLength(0))), "{e}");
    let e = gcm::encrypt(&token, key, ivs, 257, b"x", b"").unwrap_err();
    assert!(
        matches!(e, Pkcs11Error::Gcm(GcmError::IvLength(257))),
        "{e}"
    );

    // The failures left the sessions usable.
    let again = gcm::decrypt(&token, key, &sealed.iv, &sealed.ciphertext_and_tag, b"aad").unwrap();
    assert_eq!(again.as_slice(), b"secret");
}

#[test]
fn token_iv_policy_on_a_token_that_takes_caller_ivs_is_refused() {
    // SoftHSM uses whatever IV it is given: asked for a token IV, it encrypts under the zeroed
    // buffer. That must never become a ciphertext.
    let (token, key) = open(Path::new(MODULE), false);
    let pool = IvPool::new();
    let ivs = IvPolicy::of(token.profile(), &pool);
    assert!(matches!(ivs, IvPolicy::Token));
    let e = gcm::encrypt(&token, key, ivs, 12, b"secret", b"aad").unwrap_err();
    assert!(
        matches!(e, Pkcs11Error::Gcm(GcmError::TokenIvMissing)),
        "{e}"
    );
    assert!(e.to_string().contains("host_generated_iv"), "{e}");
}

#[test]
fn token_generated_ivs_are_the_tokens_and_host_ivs_are_refused_there() {
    std::fs::write(marker("token-iv"), b"").unwrap();
    let (token, key) = open(&fault_module(), false);
    let pool = IvPool::new();
    let ivs = IvPolicy::of(token.profile(), &pool);
    let mut used = Vec::new();
    for (i, iv_len) in [12, 12, 12, 16].into_iter().enumerate() {
        let plaintext = format!("message {i}").into_bytes();
        let sealed = gcm::encrypt(&token, key, ivs, iv_len, &plaintext, b"aad").unwrap();
        assert_eq!(sealed.iv.len(), iv_len);
        assert!(sealed.iv.iter().any(|b| *b != 0));
        let opened =
            gcm::decrypt(&token, key, &sealed.iv, &sealed.ciphertext_and_tag, b"aad").unwrap();
        assert_eq!(opened.as_slice(), plaintext.as_slice());
        used.push(hex(&sealed.iv));
    }
    // Exactly the IVs the token generated, in order (so all distinct and none from the host).
    assert_eq!(token_ivs(), used);
    assert_eq!(used.iter().collect::<HashSet<_>>().len(), used.len());

    // A host IV on this token: C_EncryptInit refuses it, as a CloudHSM does.
    let e = gcm::encrypt(&token, key, IvPolicy::Host(&pool), 12, b"secret", b"aad").unwrap_err();
    assert_eq!(e.rv(), Some(RvError::MechanismParamInvalid), "{e}");
    assert_eq!(e.class(), ErrorClass::Unsupported);
    assert_eq!(token_ivs().len(), used.len());
}
