//! Imported key material on the PKCS#11 root (SoftHSMv2, in-process, no server): material made
//! and wrapped by OpenSSL as a user would is unwrapped inside the token, and the token is
//! inspected. No object of an import survives it (wrapping key pair, ephemeral AES key,
//! unwrapped target); the stored blob is the material wrapped under the domain key (read back
//! by the test itself); loaded imported material exists only as private, sensitive,
//! non-extractable session objects; material that does not unwrap leaves nothing behind; and
//! OAEP with SHA-256 (absent from SoftHSM 2.6.1) is refused with the reason.
//!
//! One process per test (nextest): `cargo nextest run -p kms --test pkcs11_import`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use kms::backend::pkcs11::root::Pkcs11Root;
use kms::backend::{BackendError, CryptoBackend, ImportWrapping, MaterialId, SignInput};
use kms::model::{
    KeyId, KeySpec, MacAlgorithm, SigningAlgorithm, WrappingAlgorithm, WrappingKeySpec,
};
use secrecy::SecretString;

const DOMAIN_LABEL: &str = "kms-import-domain";

fn root() -> (Pkcs11Root, Arc<hsm::Token>) {
    let t = common::softhsm::test_token();
    let cfg = hsm::TokenConfig {
        module: PathBuf::from(&t.module),
        token_label: t.label.clone(),
        pin: SecretString::from(t.pin.clone()),
        so: false,
        max_sessions: 4,
        session_wait: Duration::from_secs(5),
        profile: Arc::new(hsm::VendorProfile::builtin("softhsm2").unwrap()),
    };
    let token = hsm::Token::open(cfg).unwrap();
    let threads = Arc::new(hsm::threads::BlockingPool::new("hsm", 2).unwrap());
    (
        Pkcs11Root::open(token.clone(), DOMAIN_LABEL, threads).unwrap(),
        token,
    )
}

fn session() -> Session {
    let t = common::softhsm::test_token();
    let profile = hsm::VendorProfile::builtin("softhsm2").unwrap();
    let ctx = hsm::module::load(Path::new(&t.module)).unwrap();
    let slot = hsm::token::find_slot(&ctx, &t.label, &profile).unwrap();
    ctx.open_rw_session(slot).unwrap()
}

fn find(s: &Session, template: &[Attribute]) -> Vec<ObjectHandle> {
    let _shared = hsm::module::object_store_lock().read();
    s.find_objects(template).unwrap()
}

/// (private, public, secret) key objects on the token.
fn census(s: &Session) -> (usize, usize, usize) {
    (
        find(s, &[Attribute::Class(ObjectClass::PRIVATE_KEY)]).len(),
        find(s, &[Attribute::Class(ObjectClass::PUBLIC_KEY)]).len(),
        find(s, &[Attribute::Class(ObjectClass::SECRET_KEY)]).len(),
    )
}

fn bool_attr(s: &Session, h: ObjectHandle, t: AttributeType) -> Option<bool> {
    s.get_attributes(h, &[t])
        .unwrap()
        .into_iter()
        .find_map(|a| match a {
            Attribute::Sensitive(v)
            | Attribute::Extractable(v)
            | Attribute::Private(v)
            | Attribute::Token(v) => Some(v),
            _ => None,
        })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The secret behind a stored blob, unwrapped by the test as a readable object: proves the
/// blob is the material wrapped under the domain key (and nothing else).
fn read_back(
    s: &Session,
    domain: ObjectHandle,
    class: ObjectClass,
    kt: KeyType,
    blob: &[u8],
) -> Vec<u8> {
    let template = [
        Attribute::Class(class),
        Attribute::KeyType(kt),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ];
    let h = s
        .unwrap_key(&Mechanism::AesKeyWrapPad, domain, blob, &template)
        .unwrap();
    let attr = if class == ObjectClass::SECRET_KEY {
        AttributeType::Value
    } else {
        AttributeType::PrivateExponent
    };
    let v = s
        .get_attributes(h, &[attr])
        .unwrap()
        .into_iter()
        .find_map(|a| match a {
            Attribute::Value(v) | Attribute::PrivateExponent(v) => Some(v),
            _ => None,
        })
        .unwrap();
    s.destroy_object(h).unwrap();
    v
}

#[tokio::test]
async fn imported_material_is_unwrapped_in_the_token_and_kept_only_wrapped() {
    let (root, token) = root();
    let s = session();
    let dir = tempfile::tempdir().unwrap();
    let domain = find(
        &s,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(DOMAIN_LABEL.as_bytes().to_vec()),
        ],
    )[0];
    let before = census(&s);

    // OAEP with SHA-256 is refused on this token, with the reason; SHA-1 is supported.
    for spec in [KeySpec::SymmetricDefault, KeySpec::Rsa2048] {
        let sha256 = if spec == KeySpec::SymmetricDefault {
            WrappingAlgorithm::RsaesOaepSha256
        } else {
            WrappingAlgorithm::RsaAesKeyWrapSha256
        };
        let why = root.import_support(spec, sha256).unwrap_err();
        assert!(why.contains("SHA-256"), "{why}");
    }
    assert!(root
        .import_support(KeySpec::SymmetricDefault, WrappingAlgorithm::RsaesOaepSha1)
        .is_ok());

    let cases = [
        (KeySpec::SymmetricDefault, WrappingAlgorithm::RsaesOaepSha1),
        (KeySpec::Hmac256, WrappingAlgorithm::RsaesOaepSha1),
        (KeySpec::Rsa2048, WrappingAlgorithm::RsaAesKeyWrapSha1),
        (KeySpec::EccNistP256, WrappingAlgorithm::RsaAesKeyWrapSha1),
    ];
    let mut loaded = Vec::new();
    for (spec, alg) in cases {
        let pair = root
            .create_wrapping_key(WrappingKeySpec::Rsa2048)
            .await
            .unwrap();
        // The pair's objects are gone; the private key is only a wrapped blob.
        assert_eq!(census(&s), before, "{spec}: wrapping key objects left");
        let material = common::openssl_import::make_material(dir.path(), spec.as_str());
        let wrapped =
            common::openssl_import::wrap(dir.path(), &pair.public_spki, alg.as_str(), &material);
        let id = KeyId::generate();
        let m = MaterialId {
            key_id: &id,
            version: 1,
            label: "test",
            spec,
        };
        let wrapping = ImportWrapping {
            spec: WrappingKeySpec::Rsa2048,
            algorithm: alg,
            wrapped_private: &pair.wrapped_private,
        };
        // A changed byte: does not unwrap, and leaves nothing behind.
        let mut bad = wrapped.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x01;
        assert!(
            matches!(
                root.import_material(m, wrapping, &bad).await,
                Err(BackendError::InvalidCiphertext)
            ),
            "{spec}"
        );
        assert_eq!(census(&s), before, "{spec}: a failed import left objects");

        let imported = root.import_material(m, wrapping, &wrapped).await.unwrap();
        assert_eq!(census(&s), before, "{spec}: an import left objects");
        // The blob is the material under the domain key, never the material in clear.
        assert!(!contains(
            &imported.wrapped,
            &material[material.len() - 16..]
        ));
        match spec {
            KeySpec::SymmetricDefault => {
                let back = read_back(
                    &s,
                    domain,
                    ObjectClass::SECRET_KEY,
                    KeyType::AES,
                    &imported.wrapped,
                );
                assert_eq!(back, material);
                assert!(imported.public_key.is_none());
                // The fingerprint is the key check value: AES-ECB of a zero block (as OpenSSL
                // computes it here, and the software root too).
                std::fs::write(dir.path().join("zero"), [0u8; 16]).unwrap();
                let hex: String = material.iter().map(|b| format!("{b:02x}")).collect();
                common::openssl_import::openssl(
                    dir.path(),
                    &[
                        "enc",
                        "-aes-256-ecb",
                        "-nopad",
                        "-K",
                        &hex,
                        "-in",
                        "zero",
                        "-out",
                        "kcv",
                    ],
                );
                assert_eq!(
                    imported.fingerprint,
                    std::fs::read(dir.path().join("kcv")).unwrap()
                );
            }
            KeySpec::Hmac256 => {
                let back = read_back(
                    &s,
                    domain,
                    ObjectClass::SECRET_KEY,
                    KeyType::GENERIC_SECRET,
                    &imported.wrapped,
                );
                assert_eq!(back, material);
            }
            KeySpec::Rsa2048 => {
                let d = read_back(
                    &s,
                    domain,
                    ObjectClass::PRIVATE_KEY,
                    KeyType::RSA,
                    &imported.wrapped,
                );
                assert!(
                    contains(&material, &d),
                    "the blob holds the imported RSA key"
                );
                assert!(!contains(&imported.wrapped, &d));
            }
            _ => {}
        }
        if matches!(spec, KeySpec::Rsa2048 | KeySpec::EccNistP256) {
            // The public key derived in the token is OpenSSL's.
            assert_eq!(
                imported.public_key.as_deref().unwrap(),
                common::openssl_import::public_of_material(dir.path()),
                "{spec}"
            );
        }
        loaded.push((id.clone(), spec, imported));
    }

    // Loaded imported material works, and exists only as private, sensitive, non-extractable
    // session objects.
    for (id, spec, imported) in &loaded {
        let m = MaterialId {
            key_id: id,
            version: 1,
            label: "test",
            spec: *spec,
        };
        root.load(m, &imported.wrapped).await.unwrap();
        match spec {
            KeySpec::SymmetricDefault => {
                let sealed = root.encrypt(m, b"hello", b"aad").await.unwrap();
                let opened = root
                    .decrypt(m, &sealed.iv, &sealed.ciphertext_and_tag, b"aad")
                    .await
                    .unwrap();
                assert_eq!(opened.as_slice(), b"hello");
            }
            KeySpec::Hmac256 => {
                let tag = root.mac(m, MacAlgorithm::HmacSha256, b"msg").await.unwrap();
                assert_eq!(tag.len(), 32);
            }
            _ => {
                let alg = if *spec == KeySpec::Rsa2048 {
                    SigningAlgorithm::RsassaPssSha256
                } else {
                    SigningAlgorithm::EcdsaSha256
                };
                let digest = ring::digest::digest(&ring::digest::SHA256, b"msg");
                let sig = root
                    .sign(m, alg, SignInput::Digest(digest.as_ref()))
                    .await
                    .unwrap();
                let spki = imported.public_key.as_deref().unwrap();
                assert!(
                    kms::crypto::verify(spki, alg, SignInput::Digest(digest.as_ref()), &sig)
                        .unwrap()
                );
            }
        }
    }
    let (private, _, secret) = census(&s);
    assert_eq!(private, before.0 + 2, "the RSA and EC keys");
    assert_eq!(secret, before.2 + 2, "the AES and HMAC keys");
    let objects: Vec<ObjectHandle> = find(&s, &[Attribute::Token(false)]);
    assert_eq!(objects.len(), 4);
    for h in objects {
        assert_eq!(bool_attr(&s, h, AttributeType::Sensitive), Some(true));
        assert_eq!(bool_attr(&s, h, AttributeType::Extractable), Some(false));
        // AES session keys are CKA_PRIVATE as the profile says (`private_session_keys`, false
        // for SoftHSM: as for generated material); the others always are.
        let aes = s.get_attributes(h, &[AttributeType::KeyType]).unwrap()
            == vec![Attribute::KeyType(KeyType::AES)];
        if !aes {
            assert_eq!(bool_attr(&s, h, AttributeType::Private), Some(true));
        }
        let value = s
            .get_attributes(h, &[AttributeType::Value, AttributeType::PrivateExponent])
            .unwrap();
        assert!(value.is_empty(), "a key value was readable");
        assert!(s.wrap_key(&Mechanism::AesKeyWrapPad, domain, h).is_err());
    }
    drop(token);
}
