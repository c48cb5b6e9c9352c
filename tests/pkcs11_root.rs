//! The PKCS#11 root on SoftHSMv2: key material is generated and used in the token, the token
//! holds no extractable or non-sensitive KMS key material (checked in-process over PKCS#11 and
//! from outside with `pkcs11-tool`), and the metadata store holds only material wrapped under
//! the token's domain key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use aws_sdk_kms::primitives::Blob;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use cryptoki::session::UserType;

#[tokio::test]
async fn token_holds_no_extractable_material_and_store_only_wrapped() {
    let srv = common::TestServer::start_pkcs11().await;
    let kms = srv.client();
    let mut blobs = Vec::new();
    for i in 0..3u8 {
        let id = kms
            .create_key()
            .send()
            .await
            .unwrap()
            .key_metadata
            .unwrap()
            .key_id;
        let old = kms
            .encrypt()
            .key_id(&id)
            .plaintext(Blob::new(vec![i; 64]))
            .send()
            .await
            .unwrap();
        kms.rotate_key_on_demand().key_id(&id).send().await.unwrap();
        let ct = kms
            .encrypt()
            .key_id(&id)
            .plaintext(Blob::new(vec![i; 64]))
            .send()
            .await
            .unwrap();
        blobs.push((id.clone(), old.ciphertext_blob.unwrap()));
        blobs.push((id, ct.ciphertext_blob.unwrap()));
    }
    for (i, (id, blob)) in blobs.iter().enumerate() {
        let pt = kms
            .decrypt()
            .key_id(id)
            .ciphertext_blob(blob.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            pt.plaintext.unwrap().as_ref(),
            vec![(i / 2) as u8; 64].as_slice()
        );
    }

    let token = common::softhsm::test_token();
    let profile = hsm::VendorProfile::builtin("softhsm2").unwrap();
    let ctx = hsm::module::load(std::path::Path::new(&token.module)).unwrap();
    let slot = hsm::token::find_slot(&ctx, &token.label, &profile).unwrap();
    let session = ctx.open_ro_session(slot).unwrap();
    // The process is already logged in (the server's anchor session); a second login says so.
    let _ = session.login(UserType::User, Some(&token.pin.clone().into()));

    // Every secret key the process can see (token objects and the server's session objects).
    let shared = hsm::module::object_store_lock().read();
    let keys = session
        .find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY)])
        .unwrap();
    drop(shared);
    // 1 domain key + 3 keys x 2 material versions unwrapped for use (some tests may add more).
    assert!(keys.len() >= 7, "found {} secret keys", keys.len());
    let mut token_objects = 0;
    for k in keys {
        let attrs = session
            .get_attributes(
                k,
                &[
                    AttributeType::Extractable,
                    AttributeType::Sensitive,
                    AttributeType::Token,
                ],
            )
            .unwrap();
        let mut extractable = None;
        let mut sensitive = None;
        for a in attrs {
            match a {
                Attribute::Extractable(v) => extractable = Some(v),
                Attribute::Sensitive(v) => sensitive = Some(v),
                Attribute::Token(true) => token_objects += 1,
                _ => {}
            }
        }
        assert_eq!(
            extractable,
            Some(false),
            "an extractable secret key is on the token"
        );
        assert_eq!(
            sensitive,
            Some(true),
            "a non-sensitive secret key is on the token"
        );
        // The value of a sensitive key cannot be read.
        let value = session.get_attributes(k, &[AttributeType::Value]).unwrap();
        assert!(value.is_empty(), "a key value was readable");
    }
    assert!(token_objects >= 1);

    // From outside the process: pkcs11-tool sees only token objects, all sensitive and never
    // extractable.
    let out = std::process::Command::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", token.dir.join("softhsm2.conf"))
        .args([
            "--module",
            &token.module,
            "--token-label",
            &token.label,
            "--login",
            "--pin",
            &token.pin,
        ])
        .args(["--list-objects", "--type", "secrkey"])
        .output()
        .expect("pkcs11-tool (package opensc) must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    let objects: Vec<&str> = listing.split("Secret Key Object").skip(1).collect();
    assert!(!objects.is_empty(), "{listing}");
    for o in objects {
        let access = o
            .lines()
            .find(|l| l.trim_start().starts_with("Access:"))
            .unwrap_or("");
        assert!(access.contains("never extractable"), "{o}");
        assert!(access.contains("sensitive"), "{o}");
    }

    // The metadata store holds only KWP-wrapped material (40 bytes for a 32-byte key) that the
    // token's domain key unwraps.
    let db = rusqlite::Connection::open(srv.data_dir.path().join("kms.sqlite3")).unwrap();
    let wrapped: Vec<Vec<u8>> = db
        .prepare("SELECT wrapped FROM key_material")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(wrapped.len(), 6);
    let domain_label = srv_domain_label(&srv);
    let domain = session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(domain_label.into_bytes()),
        ])
        .unwrap()[0];
    let rw = ctx.open_rw_session(slot).unwrap();
    for w in wrapped {
        assert_eq!(w.len(), 40);
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
        ];
        let h = rw
            .unwrap_key(&Mechanism::AesKeyWrapPad, domain, &w, &template)
            .unwrap();
        rw.destroy_object(h).unwrap();
    }
}

/// The domain key label the server under test was configured with.
fn srv_domain_label(srv: &common::TestServer) -> String {
    srv.env
        .iter()
        .find(|(k, _)| k == "KMS_ROOT__DOMAIN_KEY_LABEL")
        .map(|(_, v)| v.clone())
        .unwrap()
}

/// Secret-key session objects (unwrapped material versions) this process holds in the token.
fn session_secret_keys() -> usize {
    let token = common::softhsm::test_token();
    let profile = hsm::VendorProfile::builtin("softhsm2").unwrap();
    let ctx = hsm::module::load(std::path::Path::new(&token.module)).unwrap();
    let slot = hsm::token::find_slot(&ctx, &token.label, &profile).unwrap();
    let session = ctx.open_ro_session(slot).unwrap();
    let _ = session.login(UserType::User, Some(&token.pin.clone().into()));
    let shared = hsm::module::object_store_lock().read();
    let keys = session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Token(false),
        ])
        .unwrap();
    drop(shared);
    keys.len()
}

/// With `[server] key_cache_entries = 2` and five keys used round-robin, every request works
/// and the token never holds more than two unwrapped versions: evicted session objects are
/// destroyed.
#[tokio::test]
async fn bounded_key_cache_destroys_evicted_session_objects() {
    let mut env = common::pkcs11_env();
    env.push(("KMS_SERVER__KEY_CACHE_ENTRIES".into(), "2".into()));
    let srv = common::TestServer::start_with(env).await;
    let kms = srv.client();
    let mut keys = Vec::new();
    for _ in 0..5 {
        keys.push(
            kms.create_key()
                .send()
                .await
                .unwrap()
                .key_metadata
                .unwrap()
                .key_id,
        );
    }
    let mut max_seen = 0;
    for round in 0..3u8 {
        for (i, id) in keys.iter().enumerate() {
            let ct = kms
                .encrypt()
                .key_id(id)
                .plaintext(Blob::new(vec![round, i as u8]))
                .send()
                .await
                .unwrap()
                .ciphertext_blob
                .unwrap();
            let pt = kms
                .decrypt()
                .ciphertext_blob(ct)
                .send()
                .await
                .unwrap()
                .plaintext
                .unwrap();
            assert_eq!(pt.as_ref(), &[round, i as u8]);
            let held = session_secret_keys();
            // The first two keys fill the cache; from then on it stays full.
            if round == 0 && i < 2 {
                assert_eq!(held, i + 1, "after key {i}");
            }
            max_seen = max_seen.max(held);
        }
    }
    assert_eq!(max_seen, 2, "session objects were not bounded");
}
