//! The PKCS#11 root's non-symmetric keys on SoftHSMv2, in-process (no server): for every spec
//! it holds, generate -> load -> sign / decrypt / MAC / derive, each result checked
//! independently with the `openssl` CLI (signatures against the SPKI the root returned, OAEP
//! ciphertexts made by OpenSSL, ECDH against OpenSSL's derivation, HMAC against OpenSSL with
//! the key read back by the test). The token is inspected: no private, public or secret key
//! object survives a generation (only the domain key), every loaded private and HMAC key object
//! is private, sensitive and never extractable, and the wrapped blobs do not contain the key.
//!
//! One process per test (nextest): `cargo nextest run -p kms --test pkcs11_key_types`.
//! The raw token rates (`raw_token_rates`, ignored) are for `docs/key-types.md`:
//! `cargo nextest run -p kms --release --test pkcs11_key_types --run-ignored only --no-capture`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use kms::backend::pkcs11::root::Pkcs11Root;
use kms::backend::{BackendError, CryptoBackend, MaterialId, SignInput};
use kms::model::{
    EncryptionAlgorithm, HashAlg, KeyFamily, KeyId, KeySpec, KeyUsage, MacAlgorithm,
    SigningAlgorithm,
};
use secrecy::SecretString;

const DOMAIN_LABEL: &str = "kms-key-types-domain";

struct Fixture {
    root: Pkcs11Root,
    token: Arc<hsm::Token>,
    dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
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
    let root = Pkcs11Root::open(token.clone(), DOMAIN_LABEL, threads).unwrap();
    Fixture {
        root,
        token,
        dir: tempfile::tempdir().unwrap(),
    }
}

/// A session of the test's own on the token (the process is logged in through the root).
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

fn bool_attr(s: &Session, h: ObjectHandle, t: AttributeType) -> Option<bool> {
    s.get_attributes(h, &[t])
        .unwrap()
        .into_iter()
        .find_map(|a| match a {
            Attribute::Sensitive(v)
            | Attribute::Extractable(v)
            | Attribute::Private(v)
            | Attribute::Token(v)
            | Attribute::NeverExtractable(v) => Some(v),
            _ => None,
        })
}

fn material<'a>(id: &'a KeyId, spec: KeySpec) -> MaterialId<'a> {
    MaterialId {
        key_id: id,
        version: 1,
        label: "test",
        spec,
    }
}

/// Runs `openssl` in `dir`; the exit status is returned, stdout as bytes.
fn openssl(dir: &Path, args: &[&str]) -> (bool, Vec<u8>) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl must be installed");
    (out.status.success(), out.stdout)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn digest(h: HashAlg, data: &[u8]) -> Vec<u8> {
    let alg = match h {
        HashAlg::Sha256 => &ring::digest::SHA256,
        HashAlg::Sha384 => &ring::digest::SHA384,
        HashAlg::Sha512 => &ring::digest::SHA512,
        other => panic!("{other:?}"),
    };
    ring::digest::digest(alg, data).as_ref().to_vec()
}

fn hash_name(h: HashAlg) -> &'static str {
    match h {
        HashAlg::Sha1 => "sha1",
        HashAlg::Sha224 => "sha224",
        HashAlg::Sha256 => "sha256",
        HashAlg::Sha384 => "sha384",
        HashAlg::Sha512 => "sha512",
    }
}

/// Verifies a signature over a digest with OpenSSL against the SPKI.
fn openssl_verifies(dir: &Path, alg: SigningAlgorithm, h: &[u8], sig: &[u8]) -> bool {
    write(dir, "h.bin", h);
    write(dir, "sig.bin", sig);
    let md = format!("digest:{}", hash_name(alg.hash().unwrap()));
    let mut args = vec![
        "pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey", "pub.der", "-in", "h.bin",
        "-sigfile", "sig.bin", "-pkeyopt", &md,
    ];
    let mgf = format!("rsa_mgf1_md:{}", hash_name(alg.hash().unwrap()));
    if alg.as_str().starts_with("RSASSA_PSS") {
        args.extend([
            "-pkeyopt",
            "rsa_padding_mode:pss",
            "-pkeyopt",
            "rsa_pss_saltlen:digest",
            "-pkeyopt",
            &mgf,
        ]);
    }
    openssl(dir, &args).0
}

/// The raw secret behind a wrapped blob, unwrapped by the test as a readable object (for the
/// HMAC check and the "blob is not the key" check): HMAC value, EC scalar, RSA private exponent.
fn read_back(s: &Session, domain: ObjectHandle, spec: KeySpec, blob: &[u8]) -> Vec<u8> {
    let (class, kt, attr) = match spec.family() {
        KeyFamily::Hmac => (
            ObjectClass::SECRET_KEY,
            KeyType::GENERIC_SECRET,
            AttributeType::Value,
        ),
        KeyFamily::Rsa => (
            ObjectClass::PRIVATE_KEY,
            KeyType::RSA,
            AttributeType::PrivateExponent,
        ),
        _ => (ObjectClass::PRIVATE_KEY, KeyType::EC, AttributeType::Value),
    };
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

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

const SPECS: &[KeySpec] = &[
    KeySpec::Hmac224,
    KeySpec::Hmac256,
    KeySpec::Hmac384,
    KeySpec::Hmac512,
    KeySpec::Rsa2048,
    KeySpec::Rsa3072,
    KeySpec::Rsa4096,
    KeySpec::EccNistP256,
    KeySpec::EccNistP384,
    KeySpec::EccNistP521,
    KeySpec::EccSecgP256k1,
];

/// SPKI sizes from `reference/key-types.md` §1.2.
fn spki_len(spec: KeySpec) -> usize {
    match spec {
        KeySpec::Rsa2048 => 294,
        KeySpec::Rsa3072 => 422,
        KeySpec::Rsa4096 => 550,
        KeySpec::EccNistP256 => 91,
        KeySpec::EccSecgP256k1 => 88,
        KeySpec::EccNistP384 => 120,
        KeySpec::EccNistP521 => 158,
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn every_spec_generates_loads_and_works_in_the_token() {
    let f = fixture();
    let dir = f.dir.path();
    let s = session();
    let domain = find(
        &s,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(DOMAIN_LABEL.as_bytes().to_vec()),
        ],
    )[0];
    let secret_keys_before = find(&s, &[Attribute::Class(ObjectClass::SECRET_KEY)]).len();

    // Generate every spec: afterwards no key object of the generations is left on the token.
    let mut keys = Vec::new();
    for &spec in SPECS {
        let g = f.root.generate(material(&KeyId::generate(), spec)).await;
        let g = g.unwrap_or_else(|e| panic!("{spec}: {e}"));
        keys.push((KeyId::generate(), spec, g));
    }
    assert!(find(&s, &[Attribute::Class(ObjectClass::PRIVATE_KEY)]).is_empty());
    assert!(find(&s, &[Attribute::Class(ObjectClass::PUBLIC_KEY)]).is_empty());
    assert_eq!(
        find(&s, &[Attribute::Class(ObjectClass::SECRET_KEY)]).len(),
        secret_keys_before,
        "a generation left a secret key object behind"
    );
    let token_keys = find(&s, &[Attribute::Token(true)]);
    for h in &token_keys {
        assert_eq!(
            s.get_attributes(*h, &[AttributeType::Class]).unwrap(),
            vec![Attribute::Class(ObjectClass::SECRET_KEY)],
            "only secret keys (domain keys) are token objects"
        );
    }

    // The blobs are KWP-wrapped, not the key: the key (read back by the test through the
    // domain key) does not appear in them, and every blob is distinct.
    for (_, spec, g) in &keys {
        let secret = read_back(&s, domain, *spec, &g.wrapped);
        assert!(secret.len() >= 28, "{spec}");
        assert!(!contains(&g.wrapped, &secret), "{spec}: blob holds the key");
        assert_eq!(g.wrapped.len() % 8, 0, "{spec}: not a KWP output");
        match spec.family() {
            KeyFamily::Hmac => {
                assert!(g.public_key.is_none());
                assert_eq!(
                    g.wrapped.len(),
                    secret.len() + 8 + (8 - secret.len() % 8) % 8
                );
            }
            _ => {
                let spki = g.public_key.as_ref().unwrap();
                assert_eq!(spki.len(), spki_len(*spec), "{spec}");
                write(dir, "pub.der", spki);
                let (ok, text) = openssl(
                    dir,
                    &[
                        "pkey", "-pubin", "-inform", "DER", "-in", "pub.der", "-text", "-noout",
                    ],
                );
                assert!(ok, "{spec}: OpenSSL cannot read the SPKI");
                let text = String::from_utf8_lossy(&text).to_string();
                let expect = match spec {
                    KeySpec::Rsa2048 => "2048 bit",
                    KeySpec::Rsa3072 => "3072 bit",
                    KeySpec::Rsa4096 => "4096 bit",
                    KeySpec::EccNistP256 => "prime256v1",
                    KeySpec::EccNistP384 => "secp384r1",
                    KeySpec::EccNistP521 => "secp521r1",
                    _ => "secp256k1",
                };
                assert!(text.contains(expect), "{spec}: {text}");
            }
        }
    }

    // Before a load the root asks for the material.
    let (id0, spec0, _) = &keys[0];
    assert!(matches!(
        f.root
            .mac(material(id0, *spec0), MacAlgorithm::HmacSha224, b"x")
            .await,
        Err(BackendError::MaterialNeeded)
    ));

    for (id, spec, g) in &keys {
        f.root.load(material(id, *spec), &g.wrapped).await.unwrap();
    }

    let message = b"the quick brown fox".to_vec();
    for (id, spec, g) in &keys {
        let m = material(id, *spec);
        match spec.family() {
            KeyFamily::Hmac => {
                let alg = spec.algorithms(KeyUsage::GenerateVerifyMac).mac[0];
                let tag = f.root.mac(m, alg, &message).await.unwrap();
                assert_eq!(tag.len(), alg.hash().output_len());
                let key = read_back(&s, domain, *spec, &g.wrapped);
                write(dir, "msg.bin", &message);
                let hexkey = format!(
                    "hexkey:{}",
                    key.iter().map(|b| format!("{b:02x}")).collect::<String>()
                );
                let md = format!("-{}", hash_name(alg.hash()));
                let (ok, out) = openssl(
                    dir,
                    &[
                        "dgst", &md, "-mac", "HMAC", "-macopt", &hexkey, "-binary", "msg.bin",
                    ],
                );
                assert!(ok);
                assert_eq!(out, tag, "{spec}: HMAC differs from OpenSSL's");
            }
            KeyFamily::Rsa | KeyFamily::Ecc => {
                write(dir, "pub.der", g.public_key.as_ref().unwrap());
                for &alg in spec.algorithms(KeyUsage::SignVerify).signing {
                    let h = digest(alg.hash().unwrap(), &message);
                    let sig = f.root.sign(m, alg, SignInput::Digest(&h)).await.unwrap();
                    assert!(openssl_verifies(dir, alg, &h, &sig), "{spec} {alg}");
                    let mut bad = sig.clone();
                    let last = bad.len() - 1;
                    bad[last] ^= 1;
                    assert!(!openssl_verifies(dir, alg, &h, &bad), "{spec} {alg}");
                    if let Some(k) = spec.rsa_modulus_len() {
                        assert_eq!(sig.len(), k);
                    } else {
                        // DER SEQUENCE of two INTEGERs.
                        assert_eq!(sig[0], 0x30);
                        let (ok, _) =
                            openssl(dir, &["asn1parse", "-inform", "DER", "-in", "sig.bin"]);
                        assert!(ok);
                    }
                    // A wrong-length digest is refused, never signed.
                    assert!(f
                        .root
                        .sign(m, alg, SignInput::Digest(&h[1..]))
                        .await
                        .is_err());
                }
            }
            _ => unreachable!(),
        }
        if spec.family() == KeyFamily::Rsa {
            rsa_decryption(&f, m, *spec, dir).await;
        }
        if spec.allowed_usages().contains(&KeyUsage::KeyAgreement) {
            ecdh(&f, m, *spec, dir).await;
        }
    }

    // Every private and secret key object on the token now: the domain key and the loaded
    // versions, all private, sensitive and never extractable; the loaded ones are session
    // objects.
    let private_keys = find(&s, &[Attribute::Class(ObjectClass::PRIVATE_KEY)]);
    assert_eq!(private_keys.len(), 7, "one unwrapped object per RSA/EC key");
    let secret_keys = find(&s, &[Attribute::Class(ObjectClass::SECRET_KEY)]);
    assert_eq!(secret_keys.len(), secret_keys_before + 4);
    for h in private_keys.iter().chain(&secret_keys) {
        assert_eq!(bool_attr(&s, *h, AttributeType::Sensitive), Some(true));
        assert_eq!(bool_attr(&s, *h, AttributeType::Extractable), Some(false));
        assert_eq!(bool_attr(&s, *h, AttributeType::Private), Some(true));
        let value = s
            .get_attributes(*h, &[AttributeType::Value, AttributeType::PrivateExponent])
            .unwrap();
        assert!(value.is_empty(), "a key value was readable");
    }
    for h in &private_keys {
        assert_eq!(bool_attr(&s, *h, AttributeType::Token), Some(false));
        // An unwrapped private key can never be wrapped again.
        assert!(s.wrap_key(&Mechanism::AesKeyWrapPad, domain, *h).is_err());
    }

    // Forgetting a key destroys its objects.
    let (id, spec, _) = &keys[7];
    f.root.forget(id);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        find(&s, &[Attribute::Class(ObjectClass::PRIVATE_KEY)]).len(),
        6,
        "{spec}"
    );
    drop(f.token);
}

/// OAEP ciphertexts made by OpenSSL with the SPKI decrypt in the token; corrupted ones and
/// the wrong algorithm give InvalidCiphertext.
async fn rsa_decryption(f: &Fixture, m: MaterialId<'_>, spec: KeySpec, dir: &Path) {
    for alg in [
        EncryptionAlgorithm::RsaesOaepSha1,
        EncryptionAlgorithm::RsaesOaepSha256,
    ] {
        let h = hash_name(alg.oaep_hash().unwrap());
        let max = alg.max_plaintext(spec).unwrap();
        for pt in [vec![], b"attack at dawn".to_vec(), vec![0xa5; max]] {
            write(dir, "pt.bin", &pt);
            let (md, mgf) = (format!("rsa_oaep_md:{h}"), format!("rsa_mgf1_md:{h}"));
            let (ok, _) = openssl(
                dir,
                &[
                    "pkeyutl",
                    "-encrypt",
                    "-pubin",
                    "-keyform",
                    "DER",
                    "-inkey",
                    "pub.der",
                    "-in",
                    "pt.bin",
                    "-out",
                    "ct.bin",
                    "-pkeyopt",
                    "rsa_padding_mode:oaep",
                    "-pkeyopt",
                    &md,
                    "-pkeyopt",
                    &mgf,
                ],
            );
            assert!(ok, "{spec} {alg}");
            let ct = std::fs::read(dir.join("ct.bin")).unwrap();
            let out = f.root.decrypt_asymmetric(m, alg, &ct).await.unwrap();
            assert_eq!(out.as_slice(), pt.as_slice(), "{spec} {alg}");

            let other = if alg == EncryptionAlgorithm::RsaesOaepSha1 {
                EncryptionAlgorithm::RsaesOaepSha256
            } else {
                EncryptionAlgorithm::RsaesOaepSha1
            };
            let r = f.root.decrypt_asymmetric(m, other, &ct).await;
            assert!(
                matches!(r, Err(BackendError::InvalidCiphertext)),
                "{spec} {alg} as {other}: {:?}",
                r.err()
            );
            for i in [0, 1, ct.len() / 2, ct.len() - 1] {
                let mut bad = ct.clone();
                bad[i] ^= 0x80;
                let r = f.root.decrypt_asymmetric(m, alg, &bad).await;
                assert!(
                    matches!(r, Err(BackendError::InvalidCiphertext)),
                    "{spec} {alg} byte {i}: {:?}",
                    r.err()
                );
            }
            let r = f.root.decrypt_asymmetric(m, alg, &ct[1..]).await;
            assert!(matches!(r, Err(BackendError::InvalidCiphertext)));
            // 0xff.. is larger than the modulus.
            let r = f
                .root
                .decrypt_asymmetric(m, alg, &vec![0xff; ct.len()])
                .await;
            assert!(matches!(r, Err(BackendError::InvalidCiphertext)));
        }
    }
}

/// DeriveSharedSecret equals what OpenSSL derives from the peer's side.
async fn ecdh(f: &Fixture, m: MaterialId<'_>, spec: KeySpec, dir: &Path) {
    let (curve, field) = match spec {
        KeySpec::EccNistP256 => ("P-256", 32),
        KeySpec::EccNistP384 => ("P-384", 48),
        _ => ("P-521", 66),
    };
    let c = format!("ec_paramgen_curve:{curve}");
    assert!(
        openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                &c,
                "-out",
                "peer.pem"
            ]
        )
        .0
    );
    let (ok, peer_der) = openssl(
        dir,
        &["pkey", "-in", "peer.pem", "-pubout", "-outform", "DER"],
    );
    assert!(ok);
    let point = &peer_der[peer_der.len() - (1 + 2 * field)..];
    assert_eq!(point[0], 0x04);
    let z = f.root.derive_shared_secret(m, point).await.unwrap();
    let (ok, expected) = openssl(
        dir,
        &[
            "pkeyutl",
            "-derive",
            "-inkey",
            "peer.pem",
            "-peerkey",
            "pub.der",
            "-peerform",
            "DER",
        ],
    );
    assert!(ok);
    assert_eq!(z.len(), field);
    assert_eq!(z.as_slice(), expected.as_slice(), "{spec}");
    // The derived object is gone.
    let s = session();
    let secrets = find(&s, &[Attribute::Class(ObjectClass::SECRET_KEY)]);
    for h in secrets {
        assert_eq!(bool_attr(&s, h, AttributeType::Sensitive), Some(true));
    }
}

#[tokio::test]
async fn specs_the_token_cannot_hold_are_refused_with_the_reason() {
    let f = fixture();
    let id = KeyId::generate();
    for (spec, says) in [
        (KeySpec::MlDsa44, "ML-DSA"),
        (KeySpec::MlDsa65, "ML-DSA"),
        (KeySpec::MlDsa87, "ML-DSA"),
        (KeySpec::EccNistEdwards25519, "EdDSA"),
        (KeySpec::Sm2, "SM2"),
    ] {
        match f.root.generate(material(&id, spec)).await {
            Err(BackendError::Unsupported(msg)) => {
                assert!(msg.contains(says), "{spec}: {msg}");
                assert!(msg.contains(spec.as_str()), "{spec}: {msg}");
            }
            other => panic!("{spec}: {:?}", other.err()),
        }
    }
    // Nothing was left behind.
    let s = session();
    assert!(find(&s, &[Attribute::Class(ObjectClass::PRIVATE_KEY)]).is_empty());
    assert!(find(&s, &[Attribute::Class(ObjectClass::PUBLIC_KEY)]).is_empty());
    // A wrapped blob that is not a key of the spec does not load.
    let g = f
        .root
        .generate(material(&id, KeySpec::Hmac256))
        .await
        .unwrap();
    assert!(f
        .root
        .load(material(&id, KeySpec::EccNistP256), &g.wrapped)
        .await
        .is_err());
    let mut bad = g.wrapped.clone();
    bad[3] ^= 1;
    let r = f.root.load(material(&id, KeySpec::Hmac256), &bad).await;
    assert!(matches!(r, Err(BackendError::Unwrap)), "{:?}", r.err());
}

/// Raw in-process token rates (one thread, a cached unwrapped session object, C_SignInit +
/// C_Sign per operation), next to the same through the root (HSM thread hop included).
#[tokio::test]
#[ignore = "benchmark: run in release with --run-ignored only --no-capture"]
async fn raw_token_rates() {
    let f = fixture();
    let secs: f64 = std::env::var("KT_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let cases = [
        (KeySpec::EccNistP256, "P-256 ECDSA (CKM_ECDSA, prehashed)"),
        (
            KeySpec::Rsa2048,
            "RSA-2048 PKCS#1 v1.5 (CKM_RSA_PKCS + DigestInfo)",
        ),
        (KeySpec::Hmac256, "HMAC-SHA-256 32 B (CKM_SHA256_HMAC)"),
    ];
    let s = session();
    for (spec, name) in cases {
        let id = KeyId::generate();
        let g = f.root.generate(material(&id, spec)).await.unwrap();
        f.root.load(material(&id, spec), &g.wrapped).await.unwrap();
        let h32 = digest(HashAlg::Sha256, b"message");
        let (mech, data, alg): (Mechanism, Vec<u8>, Option<SigningAlgorithm>) = match spec {
            KeySpec::EccNistP256 => (
                Mechanism::Ecdsa,
                h32.clone(),
                Some(SigningAlgorithm::EcdsaSha256),
            ),
            KeySpec::Rsa2048 => {
                let mut d = vec![
                    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
                    0x02, 0x01, 0x05, 0x00, 0x04, 0x20,
                ];
                d.extend_from_slice(&h32);
                (
                    Mechanism::RsaPkcs,
                    d,
                    Some(SigningAlgorithm::RsassaPkcs1V15Sha256),
                )
            }
            _ => (Mechanism::Sha256Hmac, h32.clone(), None),
        };
        // The object the root unwrapped: the newest private (or HMAC secret) key.
        let class = if spec == KeySpec::Hmac256 {
            ObjectClass::SECRET_KEY
        } else {
            ObjectClass::PRIVATE_KEY
        };
        let obj = *find(&s, &[Attribute::Class(class), Attribute::Token(false)])
            .last()
            .unwrap();
        for private in [true, false] {
            // The same key unwrapped with CKA_PRIVATE as given (for the profile decision).
            let domain = find(
                &s,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::Label(DOMAIN_LABEL.as_bytes().to_vec()),
                ],
            )[0];
            let mut t = vec![
                Attribute::Class(class),
                Attribute::KeyType(match spec.family() {
                    KeyFamily::Rsa => KeyType::RSA,
                    KeyFamily::Ecc => KeyType::EC,
                    _ => KeyType::GENERIC_SECRET,
                }),
                Attribute::Token(false),
                Attribute::Private(private),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
            ];
            if spec == KeySpec::Hmac256 {
                t.push(Attribute::Verify(false));
            }
            let k = s
                .unwrap_key(&Mechanism::AesKeyWrapPad, domain, &g.wrapped, &t)
                .unwrap();
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed().as_secs_f64() < secs {
                s.sign(&mech, k, &data).unwrap();
                n += 1;
            }
            let rate = n as f64 / start.elapsed().as_secs_f64();
            println!("raw token  {name:<52} CKA_PRIVATE={private:<5} {rate:>10.0} ops/s");
            s.destroy_object(k).unwrap();
        }
        let _ = obj;
        // Through the root: one job on the HSM threads per operation, awaited.
        let m = material(&id, spec);
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed().as_secs_f64() < secs {
            match alg {
                Some(alg) => {
                    f.root.sign(m, alg, SignInput::Digest(&h32)).await.unwrap();
                }
                None => {
                    f.root.mac(m, MacAlgorithm::HmacSha256, &h32).await.unwrap();
                }
            }
            n += 1;
        }
        let rate = n as f64 / start.elapsed().as_secs_f64();
        println!("via root   {name:<52} (CKA_PRIVATE=true) {rate:>10.0} ops/s");
    }
}
