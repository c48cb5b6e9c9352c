//! Unit tests of host-side cryptography: known answers, round trips for every spec and
//! algorithm, negative cases, encodings, and cross-checks with a second implementation
//! (`ring`, RustCrypto `ml-dsa` vs `aws-lc-rs`, the `openssl` CLI).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use super::*;
use crate::model::{HashAlg, KeyUsage, MacAlgorithm};

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// One generated pair per spec per test process (RSA generation is slow in debug builds).
fn pair(spec: KeySpec) -> Arc<KeyPair> {
    static PAIRS: OnceLock<Mutex<HashMap<KeySpec, Arc<KeyPair>>>> = OnceLock::new();
    let map = PAIRS.get_or_init(Default::default);
    if let Some(p) = map.lock().get(&spec) {
        return p.clone();
    }
    let p = Arc::new(generate_key_pair(spec).unwrap());
    map.lock().entry(spec).or_insert(p).clone()
}

const SIGNING_SPECS: &[KeySpec] = &[
    KeySpec::Rsa2048,
    KeySpec::Rsa3072,
    KeySpec::Rsa4096,
    KeySpec::EccNistP256,
    KeySpec::EccNistP384,
    KeySpec::EccNistP521,
    KeySpec::EccSecgP256k1,
    KeySpec::EccNistEdwards25519,
    KeySpec::MlDsa44,
    KeySpec::MlDsa65,
    KeySpec::MlDsa87,
];

#[test]
fn hmac_rfc4231_known_answers() {
    let cases: [(&[u8], &[u8], [&str; 4]); 2] = [
        (
            &[0x0b; 20],
            b"Hi There",
            [
                "896fb1128abbdf196832107cd49df33f47b4b1169912ba4f53684b22",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
                "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6",
                "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
            ],
        ),
        (
            b"Jefe",
            b"what do ya want for nothing?",
            [
                "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
                "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649",
                "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
            ],
        ),
    ];
    for (key, data, expected) in cases {
        for (alg, want) in MacAlgorithm::ALL.iter().zip(expected) {
            assert_eq!(hmac(*alg, key, data), unhex(want), "{alg}");
            assert_eq!(HmacKey::new(*alg, key).sign(data), unhex(want), "{alg}");
        }
    }
}

#[test]
fn hashes_have_their_sizes_and_known_values() {
    assert_eq!(
        hash(HashAlg::Sha256, b"abc"),
        unhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    );
    for h in [
        HashAlg::Sha1,
        HashAlg::Sha224,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
    ] {
        assert_eq!(hash(h, b"x").len(), h.output_len());
    }
}

#[test]
fn spki_sizes_oids_and_pkcs8_round_trip() {
    let sizes = [
        (KeySpec::Rsa2048, 294),
        (KeySpec::Rsa3072, 422),
        (KeySpec::Rsa4096, 550),
        (KeySpec::EccNistP256, 91),
        (KeySpec::EccSecgP256k1, 88),
        (KeySpec::EccNistP384, 120),
        (KeySpec::EccNistP521, 158),
        (KeySpec::EccNistEdwards25519, 44),
        (KeySpec::MlDsa44, 1334),
        (KeySpec::MlDsa65, 1974),
        (KeySpec::MlDsa87, 2614),
    ];
    for (spec, size) in sizes {
        let p = pair(spec);
        assert_eq!(p.public_spki.len(), size, "{spec}");
        assert_eq!(spec_of_spki(&p.public_spki), Some(spec), "{spec}");
        let private = PrivateKey::from_pkcs8(spec, &p.private_pkcs8).unwrap();
        assert_eq!(private.public_spki().unwrap(), p.public_spki, "{spec}");
        // PKCS#8 is a SEQUENCE starting with version 0 (v1) and names the algorithm.
        let (info, rest) = der::expect(&p.private_pkcs8, der::TAG_SEQUENCE).unwrap();
        assert!(rest.is_empty());
        let (version, _) = der::expect(info, der::TAG_INTEGER).unwrap();
        assert_eq!(version, [0], "{spec}");
    }
    // The algorithm identifiers of §2.2.
    let rsa_pair = pair(KeySpec::Rsa2048);
    let rsa = der::parse_spki(&rsa_pair.public_spki).unwrap();
    assert_eq!(rsa.algorithm, der::oid::RSA_ENCRYPTION);
    assert_eq!(rsa.parameters, Some(&[der::TAG_NULL, 0][..]));
    let ed_pair = pair(KeySpec::EccNistEdwards25519);
    let ed = der::parse_spki(&ed_pair.public_spki).unwrap();
    assert_eq!(
        (ed.algorithm, ed.parameters, ed.key.len()),
        (eddsa::OID_ED25519, None, 32)
    );
    for (spec, oid, raw) in [
        (KeySpec::MlDsa44, der::oid::ML_DSA_44, 1312),
        (KeySpec::MlDsa65, der::oid::ML_DSA_65, 1952),
        (KeySpec::MlDsa87, der::oid::ML_DSA_87, 2592),
    ] {
        let s = pair(spec).public_spki.clone();
        let parsed = der::parse_spki(&s).unwrap();
        assert_eq!(
            (parsed.algorithm, parsed.parameters, parsed.key.len()),
            (oid, None, raw)
        );
        // AWS's own recipe takes the raw key from offset 22 of the DER (17 + 5 header bytes).
        assert_eq!(&s[22..], parsed.key);
    }
    for (spec, curve_oid) in [
        (KeySpec::EccNistP256, der::oid::P256),
        (KeySpec::EccNistP384, der::oid::P384),
        (KeySpec::EccNistP521, der::oid::P521),
        (KeySpec::EccSecgP256k1, der::oid::SECP256K1),
    ] {
        let s = pair(spec).public_spki.clone();
        let parsed = der::parse_spki(&s).unwrap();
        assert_eq!(parsed.algorithm, der::oid::EC_PUBLIC_KEY);
        assert_eq!(
            parsed.parameters.unwrap(),
            der::tlv(der::TAG_OID, curve_oid)
        );
        assert_eq!(parsed.key[0], 0x04);
        // The PKCS#11 root's builder gives the same bytes from the point.
        assert_eq!(ec_spki(spec, parsed.key).unwrap(), s);
    }
}

#[test]
fn rsa_spki_from_components_matches_and_e_is_65537() {
    let spki = pair(KeySpec::Rsa2048).public_spki.clone();
    let parsed = der::parse_spki(&spki).unwrap();
    let (key, _) = der::expect(parsed.key, der::TAG_SEQUENCE).unwrap();
    let (n, rest) = der::read_unsigned_integer(key).unwrap();
    let (e, _) = der::read_unsigned_integer(rest).unwrap();
    assert_eq!(e, [1, 0, 1]);
    assert_eq!(n.len(), 256);
    assert_eq!(rsa_spki(n, e), spki);
    // Leading zeros in the token's attribute are stripped.
    let mut padded = vec![0u8, 0];
    padded.extend_from_slice(n);
    assert_eq!(rsa_spki(&padded, &[0, 1, 0, 1]), spki);
}

#[test]
fn pkcs8_of_another_spec_is_refused() {
    let p256 = pair(KeySpec::EccNistP256);
    for other in [
        KeySpec::EccNistP384,
        KeySpec::Rsa2048,
        KeySpec::MlDsa44,
        KeySpec::EccNistEdwards25519,
    ] {
        assert!(matches!(
            PrivateKey::from_pkcs8(other, &p256.private_pkcs8),
            Err(CryptoError::InvalidPrivateKey)
        ));
    }
    let ml44 = pair(KeySpec::MlDsa44);
    assert!(PrivateKey::from_pkcs8(KeySpec::MlDsa65, &ml44.private_pkcs8).is_err());
    assert!(
        PrivateKey::from_pkcs8(KeySpec::Rsa3072, &pair(KeySpec::Rsa2048).private_pkcs8).is_err()
    );
    assert!(PrivateKey::from_pkcs8(KeySpec::Rsa2048, b"garbage").is_err());
    assert!(matches!(
        generate_key_pair(KeySpec::Sm2),
        Err(CryptoError::Unsupported(_))
    ));
    assert!(matches!(
        generate_key_pair(KeySpec::Hmac256),
        Err(CryptoError::Unsupported(_))
    ));
}

fn inputs<'a>(alg: SigningAlgorithm, msg: &'a [u8], digest: &'a [u8]) -> SignInput<'a> {
    match alg.hash() {
        Some(_) => SignInput::Digest(digest),
        None => SignInput::Message(msg),
    }
}

#[test]
fn sign_verify_round_trip_every_spec_and_algorithm() {
    let msg = b"the quick brown fox jumps over the lazy dog";
    for &spec in SIGNING_SPECS {
        let p = pair(spec);
        let key = PrivateKey::from_pkcs8(spec, &p.private_pkcs8).unwrap();
        for &alg in spec.algorithms(KeyUsage::SignVerify).signing {
            if alg == SigningAlgorithm::Ed25519PhSha512 {
                // Not available on the host (docs/key-types.md).
                let d = hash(HashAlg::Sha512, msg);
                assert!(matches!(
                    key.sign(alg, SignInput::Digest(&d)),
                    Err(CryptoError::Unsupported(_))
                ));
                continue;
            }
            let digest = alg.hash().map(|h| hash(h, msg)).unwrap_or_default();
            let input = inputs(alg, msg, &digest);
            let sig = key.sign(alg, input).unwrap();
            let again = sign(spec, &p.private_pkcs8, alg, input).unwrap();
            assert!(
                verify(&p.public_spki, alg, input, &again).unwrap(),
                "{spec} {alg}"
            );
            match spec.family() {
                KeyFamily::Rsa => assert_eq!(Some(sig.len()), spec.rsa_modulus_len()),
                KeyFamily::Ecc => assert!(ecdsa_der_to_fixed(&sig, 66).is_some()),
                KeyFamily::Ed25519 => assert_eq!(sig.len(), 64),
                _ => {}
            }
            assert!(
                verify(&p.public_spki, alg, input, &sig).unwrap(),
                "{spec} {alg}"
            );
            // Tampering: a flipped bit anywhere fails, so does a truncated or empty signature.
            for i in [0, sig.len() / 2, sig.len() - 1] {
                let mut bad = sig.clone();
                bad[i] ^= 0x01;
                assert!(
                    !verify(&p.public_spki, alg, input, &bad).unwrap(),
                    "{spec} {alg} {i}"
                );
            }
            assert!(!verify(&p.public_spki, alg, input, &sig[..sig.len() - 1]).unwrap());
            assert!(!verify(&p.public_spki, alg, input, &[]).unwrap());
            // Another message fails.
            let other_digest = alg.hash().map(|h| hash(h, b"other")).unwrap_or_default();
            let other = inputs(alg, b"other", &other_digest);
            assert!(
                !verify(&p.public_spki, alg, other, &sig).unwrap(),
                "{spec} {alg}"
            );
            // Another key of the same spec fails.
            if spec.family() != KeyFamily::Rsa {
                let stranger = generate_key_pair(spec).unwrap();
                assert!(!verify(&stranger.public_spki, alg, input, &sig).unwrap());
            }
        }
    }
}

#[test]
fn rsa_digest_of_wrong_length_and_wrong_input_kind_are_refused() {
    let p = pair(KeySpec::Rsa2048);
    let key = PrivateKey::from_pkcs8(KeySpec::Rsa2048, &p.private_pkcs8).unwrap();
    let alg = SigningAlgorithm::RsassaPssSha256;
    assert!(matches!(
        key.sign(alg, SignInput::Digest(&[0u8; 31])),
        Err(CryptoError::Unsupported(_))
    ));
    assert!(matches!(
        key.sign(alg, SignInput::Message(b"m")),
        Err(CryptoError::Unsupported(_))
    ));
    assert!(verify(
        &p.public_spki,
        alg,
        SignInput::Digest(&[0u8; 33]),
        &[0u8; 256]
    )
    .is_err());
    assert!(matches!(
        key.sign(SigningAlgorithm::EcdsaSha256, SignInput::Digest(&[0u8; 32])),
        Err(CryptoError::Unsupported(_))
    ));
    let ec = PrivateKey::from_pkcs8(
        KeySpec::EccNistP384,
        &pair(KeySpec::EccNistP384).private_pkcs8,
    )
    .unwrap();
    assert!(ec
        .sign(SigningAlgorithm::EcdsaSha256, SignInput::Digest(&[0u8; 32]))
        .is_err());
    // A public key that is not one.
    assert!(matches!(
        verify(
            b"\x30\x03\x02\x01\x00",
            alg,
            SignInput::Digest(&[0u8; 32]),
            &[0u8; 256]
        ),
        Err(CryptoError::InvalidPublicKey)
    ));
}

/// Cross-check with a second implementation: `ring` verifies RSA (PKCS#1 v1.5 and PSS),
/// ECDSA P-256/P-384 and Ed25519 signatures made with aws-lc-rs.
#[test]
fn ring_verifies_our_signatures() {
    use ring::signature as rs;
    let msg = b"cross-checked with ring";
    let cases: &[(
        KeySpec,
        SigningAlgorithm,
        &'static dyn rs::VerificationAlgorithm,
    )] = &[
        (
            KeySpec::Rsa2048,
            SigningAlgorithm::RsassaPkcs1V15Sha256,
            &rs::RSA_PKCS1_2048_8192_SHA256,
        ),
        (
            KeySpec::Rsa2048,
            SigningAlgorithm::RsassaPkcs1V15Sha384,
            &rs::RSA_PKCS1_2048_8192_SHA384,
        ),
        (
            KeySpec::Rsa3072,
            SigningAlgorithm::RsassaPkcs1V15Sha512,
            &rs::RSA_PKCS1_2048_8192_SHA512,
        ),
        (
            KeySpec::Rsa2048,
            SigningAlgorithm::RsassaPssSha256,
            &rs::RSA_PSS_2048_8192_SHA256,
        ),
        (
            KeySpec::Rsa4096,
            SigningAlgorithm::RsassaPssSha384,
            &rs::RSA_PSS_2048_8192_SHA384,
        ),
        (
            KeySpec::Rsa3072,
            SigningAlgorithm::RsassaPssSha512,
            &rs::RSA_PSS_2048_8192_SHA512,
        ),
        (
            KeySpec::EccNistP256,
            SigningAlgorithm::EcdsaSha256,
            &rs::ECDSA_P256_SHA256_ASN1,
        ),
        (
            KeySpec::EccNistP384,
            SigningAlgorithm::EcdsaSha384,
            &rs::ECDSA_P384_SHA384_ASN1,
        ),
        (
            KeySpec::EccNistEdwards25519,
            SigningAlgorithm::Ed25519Sha512,
            &rs::ED25519,
        ),
    ];
    for (spec, alg, ring_alg) in cases {
        let p = pair(*spec);
        let digest = alg.hash().map(|h| hash(h, msg)).unwrap_or_default();
        let sig = sign(*spec, &p.private_pkcs8, *alg, inputs(*alg, msg, &digest)).unwrap();
        // ring takes the RSAPublicKey / the point / the raw key: the SPKI's key bits.
        let key_bits = der::parse_spki(&p.public_spki).unwrap().key.to_vec();
        rs::UnparsedPublicKey::new(*ring_alg, &key_bits)
            .verify(msg, &sig)
            .unwrap_or_else(|_| panic!("ring rejects {spec} {alg}"));
    }
}

/// ML-DSA: signed with RustCrypto `ml-dsa`, verified with aws-lc-rs (RAW) and `ml-dsa` (μ);
/// RAW and EXTERNAL_MU give the same deterministic signature; either verifies as the other.
#[test]
fn ml_dsa_raw_and_external_mu_agree_and_cross_verify() {
    use aws_lc_rs::signature::{KeyPair as _, PqdsaKeyPair};
    let msg = b"post-quantum message";
    for (spec, alg, sig_len) in [
        (
            KeySpec::MlDsa44,
            &aws_lc_rs::signature::ML_DSA_44_SIGNING,
            2420,
        ),
        (
            KeySpec::MlDsa65,
            &aws_lc_rs::signature::ML_DSA_65_SIGNING,
            3309,
        ),
        (
            KeySpec::MlDsa87,
            &aws_lc_rs::signature::ML_DSA_87_SIGNING,
            4627,
        ),
    ] {
        let p = pair(spec);
        // Both libraries derive the same public key from the PKCS#8 seed.
        let lc = PqdsaKeyPair::from_pkcs8(alg, &p.private_pkcs8).unwrap();
        let raw = der::parse_spki(&p.public_spki).unwrap().key.to_vec();
        assert_eq!(lc.public_key().as_ref(), raw.as_slice());
        let key = PrivateKey::from_pkcs8(spec, &p.private_pkcs8).unwrap();
        let a = SigningAlgorithm::MlDsaShake256;
        let sig_raw = key.sign(a, SignInput::Message(msg)).unwrap();
        assert_eq!(sig_raw.len(), sig_len);
        let mu = external_mu(spec, &p.public_spki, msg).unwrap();
        assert_eq!(mu.len(), 64);
        let sig_mu = key.sign(a, SignInput::Mu(&mu)).unwrap();
        assert_eq!(
            sig_raw, sig_mu,
            "{spec}: deterministic RAW and EXTERNAL_MU signatures differ"
        );
        assert!(verify(&p.public_spki, a, SignInput::Message(msg), &sig_mu).unwrap());
        assert!(verify(&p.public_spki, a, SignInput::Mu(&mu), &sig_raw).unwrap());
        // aws-lc-rs's own (hedged) signature verifies with our μ path too.
        let mut lc_sig = vec![0u8; sig_len];
        lc.sign(msg, &mut lc_sig).unwrap();
        assert!(verify(&p.public_spki, a, SignInput::Mu(&mu), &lc_sig).unwrap());
        // μ of another message, and a μ of the wrong length, fail.
        let other = external_mu(spec, &p.public_spki, b"other").unwrap();
        assert!(!verify(&p.public_spki, a, SignInput::Mu(&other), &sig_raw).unwrap());
        assert!(!verify(&p.public_spki, a, SignInput::Mu(&mu[..63]), &sig_raw).unwrap());
        assert!(key.sign(a, SignInput::Mu(&mu[..63])).is_err());
        assert!(key.sign(a, SignInput::Digest(&mu)).is_err());
    }
}

/// secp256k1: a high-S signature (s' = n − s) verifies, as with OpenSSL and AWS.
#[test]
fn secp256k1_accepts_high_s() {
    const N: &str = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141";
    let n = unhex(N);
    let p = pair(KeySpec::EccSecgP256k1);
    let digest = hash(HashAlg::Sha256, b"bitcoin");
    let alg = SigningAlgorithm::EcdsaSha256;
    let sig = sign(
        KeySpec::EccSecgP256k1,
        &p.private_pkcs8,
        alg,
        SignInput::Digest(&digest),
    )
    .unwrap();
    let fixed = ecdsa_der_to_fixed(&sig, 32).unwrap();
    let (r, s) = fixed.split_at(32);
    // s' = n - s (big-endian subtraction).
    let mut flipped = vec![0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(n[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        flipped[i] = d as u8;
    }
    assert_eq!(borrow, 0);
    let mut other = r.to_vec();
    other.extend_from_slice(&flipped);
    let high_s = ecdsa_fixed_to_der(&other).unwrap();
    assert_ne!(high_s, sig);
    let input = SignInput::Digest(&digest);
    assert!(verify(&p.public_spki, alg, input, &sig).unwrap());
    assert!(verify(&p.public_spki, alg, input, &high_s).unwrap());
    // The DER <-> fixed conversions round-trip real signatures.
    assert_eq!(ecdsa_fixed_to_der(&fixed).unwrap(), sig);
}

#[test]
fn oaep_round_trip_at_the_limit_and_refusals() {
    for spec in [KeySpec::Rsa2048, KeySpec::Rsa3072, KeySpec::Rsa4096] {
        let p = pair(spec);
        let key = PrivateKey::from_pkcs8(spec, &p.private_pkcs8).unwrap();
        for alg in [
            EncryptionAlgorithm::RsaesOaepSha1,
            EncryptionAlgorithm::RsaesOaepSha256,
        ] {
            let limit = alg.max_plaintext(spec).unwrap();
            for len in [0, 1, limit] {
                let pt = vec![0xa5u8; len];
                let ct = rsa_oaep_encrypt(&p.public_spki, alg, &pt).unwrap();
                assert_eq!(Some(ct.len()), spec.rsa_modulus_len());
                assert_eq!(
                    key.rsa_oaep_decrypt(alg, &ct).unwrap().as_slice(),
                    pt.as_slice()
                );
            }
            // limit + 1: refused by the encryptor (the service answers the ValidationException
            // before it gets here).
            let over = vec![0u8; limit + 1];
            assert!(matches!(
                rsa_oaep_encrypt(&p.public_spki, alg, &over),
                Err(CryptoError::Unsupported(_))
            ));
            let ct = rsa_oaep_encrypt(&p.public_spki, alg, b"secret").unwrap();
            // The other OAEP hash, a flipped bit, a short or long blob: Decrypt errors.
            let other = if alg == EncryptionAlgorithm::RsaesOaepSha1 {
                EncryptionAlgorithm::RsaesOaepSha256
            } else {
                EncryptionAlgorithm::RsaesOaepSha1
            };
            assert!(matches!(
                key.rsa_oaep_decrypt(other, &ct),
                Err(CryptoError::Decrypt)
            ));
            let mut bad = ct.clone();
            bad[10] ^= 1;
            assert!(matches!(
                key.rsa_oaep_decrypt(alg, &bad),
                Err(CryptoError::Decrypt)
            ));
            assert!(matches!(
                key.rsa_oaep_decrypt(alg, &ct[1..]),
                Err(CryptoError::Decrypt)
            ));
            let mut long = ct.clone();
            long.push(0);
            assert!(matches!(
                key.rsa_oaep_decrypt(alg, &long),
                Err(CryptoError::Decrypt)
            ));
            assert!(matches!(
                key.rsa_oaep_decrypt(alg, &[]),
                Err(CryptoError::Decrypt)
            ));
        }
    }
}

#[test]
fn ecdh_agrees_and_checks_the_peer() {
    for (spec, z_len) in [
        (KeySpec::EccNistP256, 32),
        (KeySpec::EccNistP384, 48),
        (KeySpec::EccNistP521, 66),
    ] {
        let a = pair(spec);
        let b = generate_key_pair(spec).unwrap();
        let a_point = peer_point(spec, &a.public_spki).unwrap();
        let b_point = peer_point(spec, &b.public_spki).unwrap();
        assert_eq!(a_point[0], 0x04);
        let z_ab = ecdh(spec, &a.private_pkcs8, &b_point).unwrap();
        let z_ba = PrivateKey::from_pkcs8(spec, &b.private_pkcs8)
            .unwrap()
            .ecdh(&a_point)
            .unwrap();
        assert_eq!(z_ab.len(), z_len);
        assert_eq!(z_ab.as_slice(), z_ba.as_slice());
        let c = generate_key_pair(spec).unwrap();
        let z_ac = ecdh(
            spec,
            &a.private_pkcs8,
            &peer_point(spec, &c.public_spki).unwrap(),
        )
        .unwrap();
        assert_ne!(z_ab.as_slice(), z_ac.as_slice());
    }
    // Wrong curve, secp256k1, RSA, Ed25519, ML-DSA peers: refused.
    for peer in [
        KeySpec::EccNistP384,
        KeySpec::EccSecgP256k1,
        KeySpec::Rsa2048,
        KeySpec::EccNistEdwards25519,
        KeySpec::MlDsa44,
    ] {
        assert!(
            matches!(
                peer_point(KeySpec::EccNistP256, &pair(peer).public_spki),
                Err(CryptoError::InvalidPublicKey)
            ),
            "{peer}"
        );
    }
    let good = pair(KeySpec::EccNistP256).public_spki.clone();
    // Trailing bytes, garbage, truncation.
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(peer_point(KeySpec::EccNistP256, &trailing).is_err());
    assert!(peer_point(KeySpec::EccNistP256, b"not der").is_err());
    assert!(peer_point(KeySpec::EccNistP256, &good[..good.len() - 1]).is_err());
    // A point off the curve.
    let mut off = good.clone();
    let last = off.len() - 1;
    off[last] ^= 1;
    assert!(peer_point(KeySpec::EccNistP256, &off).is_err());
    // A compressed point (02/03 || X) is refused (documented).
    let point = peer_point(KeySpec::EccNistP256, &good).unwrap();
    let mut compressed = vec![0x02 | (point[64] & 1)];
    compressed.extend_from_slice(&point[1..33]);
    let mut alg = der::tlv(der::TAG_OID, der::oid::EC_PUBLIC_KEY);
    alg.extend_from_slice(&der::tlv(der::TAG_OID, der::oid::P256));
    let mut body = der::tlv(der::TAG_SEQUENCE, &alg);
    let mut bits = vec![0u8];
    bits.extend_from_slice(&compressed);
    body.extend_from_slice(&der::tlv(der::TAG_BIT_STRING, &bits));
    let compressed_spki = der::tlv(der::TAG_SEQUENCE, &body);
    assert!(matches!(
        peer_point(KeySpec::EccNistP256, &compressed_spki),
        Err(CryptoError::InvalidPublicKey)
    ));
    // No key agreement on secp256k1 or RSA keys.
    assert!(peer_point(
        KeySpec::EccSecgP256k1,
        &pair(KeySpec::EccSecgP256k1).public_spki
    )
    .is_err());
    let k1 = PrivateKey::from_pkcs8(
        KeySpec::EccSecgP256k1,
        &pair(KeySpec::EccSecgP256k1).private_pkcs8,
    )
    .unwrap();
    assert!(matches!(k1.ecdh(&point), Err(CryptoError::Unsupported(_))));
}

/// Interop with the `openssl` CLI (present wherever `.ci/run` runs): OpenSSL verifies our
/// P-521 and secp256k1 signatures and decrypts nothing of ours but makes OAEP ciphertext we
/// decrypt; a PSS signature with the maximum salt length (made by OpenSSL) fails our verify,
/// while one with salt = hash length verifies.
mod openssl {
    use super::*;
    use std::process::Command;

    fn run(args: &[&str]) -> bool {
        Command::new("openssl")
            .args(args)
            .output()
            .expect("the openssl CLI is required for the interop tests")
            .status
            .success()
    }

    fn write(dir: &std::path::Path, name: &str, data: &[u8]) -> String {
        let path = dir.join(name);
        std::fs::write(&path, data).unwrap();
        path.to_str().unwrap().to_string()
    }

    #[test]
    fn openssl_verifies_p521_and_secp256k1() {
        let dir = tempfile::tempdir().unwrap();
        for (spec, alg) in [
            (KeySpec::EccNistP521, SigningAlgorithm::EcdsaSha512),
            (KeySpec::EccSecgP256k1, SigningAlgorithm::EcdsaSha256),
            (KeySpec::EccNistP384, SigningAlgorithm::EcdsaSha384),
        ] {
            let p = pair(spec);
            let h = hash(alg.hash().unwrap(), b"interop");
            let sig = sign(spec, &p.private_pkcs8, alg, SignInput::Digest(&h)).unwrap();
            let pubf = write(dir.path(), "pub.der", &p.public_spki);
            let hf = write(dir.path(), "h.bin", &h);
            let sigf = write(dir.path(), "sig.bin", &sig);
            let ok = |s: &str| {
                run(&[
                    "pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey", &pubf, "-in", &hf,
                    "-sigfile", s,
                ])
            };
            assert!(ok(&sigf), "openssl rejects {spec}");
            let mut bad = sig.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            let badf = write(dir.path(), "bad.bin", &bad);
            assert!(!ok(&badf));
            // OpenSSL reads our PKCS#8.
            let privf = write(dir.path(), "priv.der", &p.private_pkcs8);
            assert!(
                run(&["pkey", "-inform", "DER", "-in", &privf, "-check", "-noout"]),
                "{spec}"
            );
        }
    }

    #[test]
    fn pss_salt_length_must_be_the_hash_length() {
        let dir = tempfile::tempdir().unwrap();
        let p = pair(KeySpec::Rsa2048);
        let h = hash(HashAlg::Sha256, b"pss");
        let privf = write(dir.path(), "priv.der", &p.private_pkcs8);
        let hf = write(dir.path(), "h.bin", &h);
        let alg = SigningAlgorithm::RsassaPssSha256;
        for (salt, expect) in [("digest", true), ("max", false), ("0", false)] {
            let sigf = dir.path().join(format!("sig-{salt}.bin"));
            let opt = format!("rsa_pss_saltlen:{salt}");
            assert!(run(&[
                "pkeyutl",
                "-sign",
                "-keyform",
                "DER",
                "-inkey",
                &privf,
                "-in",
                &hf,
                "-out",
                sigf.to_str().unwrap(),
                "-pkeyopt",
                "digest:sha256",
                "-pkeyopt",
                "rsa_padding_mode:pss",
                "-pkeyopt",
                &opt,
                "-pkeyopt",
                "rsa_mgf1_md:sha256",
            ]));
            let sig = std::fs::read(&sigf).unwrap();
            assert_eq!(
                verify(&p.public_spki, alg, SignInput::Digest(&h), &sig).unwrap(),
                expect,
                "salt {salt}"
            );
        }
    }

    #[test]
    fn we_decrypt_openssl_oaep() {
        let dir = tempfile::tempdir().unwrap();
        let p = pair(KeySpec::Rsa2048);
        let pubf = write(dir.path(), "pub.der", &p.public_spki);
        let pt = vec![7u8; 190];
        let ptf = write(dir.path(), "pt.bin", &pt);
        for (md, alg) in [
            ("sha256", EncryptionAlgorithm::RsaesOaepSha256),
            ("sha1", EncryptionAlgorithm::RsaesOaepSha1),
        ] {
            let ctf = dir.path().join("ct.bin");
            assert!(run(&[
                "pkeyutl",
                "-encrypt",
                "-pubin",
                "-keyform",
                "DER",
                "-inkey",
                &pubf,
                "-in",
                &ptf,
                "-out",
                ctf.to_str().unwrap(),
                "-pkeyopt",
                "rsa_padding_mode:oaep",
                "-pkeyopt",
                &format!("rsa_oaep_md:{md}"),
                "-pkeyopt",
                &format!("rsa_mgf1_md:{md}"),
            ]));
            let ct = std::fs::read(&ctf).unwrap();
            let got = rsa_oaep_decrypt(KeySpec::Rsa2048, &p.private_pkcs8, alg, &ct).unwrap();
            assert_eq!(got.as_slice(), pt.as_slice());
        }
    }
}
