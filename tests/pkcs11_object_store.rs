//! The PKCS#11 driver under concurrent token-object writes on SoftHSMv2. SoftHSM 2.6's file
//! object store fails C_GenerateKey with CKR_GENERAL_ERROR when another thread of the process
//! creates or searches token objects at that moment (this failed a CI run while test servers
//! created their domain keys side by side), and a search running beside a write can miss
//! objects that exist. The softhsm2 profile says
//! `serialize_object_store`, and the driver then runs writes alone and searches together.
//! Token initialization (`init_token`, for development and tests) is one at a time too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use hsm::{Token, TokenConfig, VendorProfile};

const WRITERS: usize = 8;
const KEYS_PER_WRITER: usize = 40;

fn token_key(label: &str, encrypt: bool) -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Encrypt(encrypt),
        Attribute::Decrypt(encrypt),
        Attribute::Wrap(!encrypt),
        Attribute::Unwrap(!encrypt),
        Attribute::ValueLen(32.into()),
        Attribute::Label(label.as_bytes().to_vec()),
    ]
}

#[test]
fn concurrent_token_key_writes_searches_and_use_all_succeed() {
    let t = common::softhsm::test_token();
    let mut profile = VendorProfile::builtin("softhsm2").unwrap();
    assert!(profile.serialize_object_store);
    // `KMS_TEST_UNSERIALIZED=1` runs the same test with the flag off: it then fails (writes
    // fail, and searches miss keys that exist).
    if std::env::var_os("KMS_TEST_UNSERIALIZED").is_some() {
        profile.serialize_object_store = false;
    }
    let token = Token::open(TokenConfig {
        module: t.module.clone().into(),
        token_label: t.label.clone(),
        pin: t.pin.clone().into(),
        so: false,
        max_sessions: 16,
        session_wait: Duration::from_secs(5),
        profile: Arc::new(profile),
    })
    .unwrap();
    let run = uuid::Uuid::new_v4();
    let in_use = token
        .with_object_write(|s| {
            s.generate_key(
                &Mechanism::AesKeyGen,
                &token_key(&format!("{run}-in-use"), true),
            )
        })
        .unwrap();

    let failures = AtomicUsize::new(0);
    let encrypts = AtomicUsize::new(0);
    let writers_done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // Requests keep using an existing token key meanwhile.
        for _ in 0..2 {
            scope.spawn(|| {
                while !writers_done.load(Ordering::Relaxed) {
                    let mut iv = [7u8; 12];
                    let out = token.with_session(false, |s| {
                        let params = GcmParams::new(&mut iv, b"aad", 128.into())?;
                        s.encrypt(&Mechanism::AesGcm(params), in_use, &[1u8; 32])
                    });
                    match out {
                        Ok(ct) => {
                            assert_eq!(ct.len(), 48);
                            encrypts.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            eprintln!("encrypt: {e}");
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (token, failures) = (&token, &failures);
                scope.spawn(move || {
                    for i in 0..KEYS_PER_WRITER {
                        let label = format!("{run}-{w}-{i}");
                        let created = token.with_object_write(|s| {
                            s.generate_key(&Mechanism::AesKeyGen, &token_key(&label, false))
                        });
                        if let Err(e) = created {
                            eprintln!("generate {label}: {e}");
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                        match token.find(ObjectClass::SECRET_KEY, &label) {
                            Ok(found) if found.len() == 1 => {}
                            Ok(found) => {
                                eprintln!("{label}: {} objects", found.len());
                                failures.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                eprintln!("find {label}: {e}");
                                failures.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        // Every other key is destroyed again (a deletion is a write too).
                        if i % 2 == 1 {
                            let found = token.find(ObjectClass::SECRET_KEY, &label);
                            for h in found.unwrap_or_default() {
                                if let Err(e) = token.with_object_write(|s| s.destroy_object(h)) {
                                    eprintln!("destroy {label}: {e}");
                                    failures.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        let panicked = writers
            .into_iter()
            .map(|w| w.join())
            .filter(Result::is_err)
            .count();
        writers_done.store(true, Ordering::Relaxed);
        assert_eq!(panicked, 0);
    });

    assert_eq!(failures.load(Ordering::Relaxed), 0, "see the lines above");
    assert!(encrypts.load(Ordering::Relaxed) > 0);
    // Exactly the keys that were kept are on the token, once each.
    for w in 0..WRITERS {
        for i in 0..KEYS_PER_WRITER {
            let found = token
                .find(ObjectClass::SECRET_KEY, &format!("{run}-{w}-{i}"))
                .unwrap();
            assert_eq!(found.len(), usize::from(i % 2 == 0), "{w}-{i}");
        }
    }
}

#[test]
fn concurrent_token_initializations_get_a_slot_each() {
    let t = common::softhsm::test_token();
    let profile = VendorProfile::builtin("softhsm2").unwrap();
    let labels: Vec<String> = (0..4)
        .map(|i| {
            format!(
                "init-{}-{i}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            )
        })
        .collect();
    std::thread::scope(|scope| {
        for label in &labels {
            let (profile, module) = (&profile, &t.module);
            scope.spawn(move || {
                hsm::token::init_token(
                    std::path::Path::new(module),
                    label,
                    &"so-pin-1234".to_string().into(),
                    &"user-pin-1234".to_string().into(),
                    profile,
                )
                .unwrap();
            });
        }
    });
    let ctx = hsm::module::load(std::path::Path::new(&t.module)).unwrap();
    let mut slots = Vec::new();
    for label in &labels {
        let slot = hsm::token::find_slot(&ctx, label, &profile).unwrap();
        // Each token took its own slot and its user PIN works.
        let s = ctx.open_ro_session(slot).unwrap();
        s.login(
            cryptoki::session::UserType::User,
            Some(&"user-pin-1234".to_string().into()),
        )
        .unwrap();
        s.logout().unwrap();
        slots.push(slot.id());
    }
    slots.sort_unstable();
    slots.dedup();
    assert_eq!(slots.len(), labels.len());
}
