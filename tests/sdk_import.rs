//! Imported key material (Origin EXTERNAL) through the real `aws-sdk-kms` client, with the
//! material made and wrapped by the OpenSSL command line as AWS's documentation shows
//! (`openssl pkeyutl` with OAEP, `openssl enc -id-aes256-wrap-pad` for RSA_AES_KEY_WRAP):
//! round trips for every key type and wrapping algorithm the root supports, expiry by the
//! maintenance pass, deletion and re-import, wrong material, token misuse, rotation of imported
//! keys, and the key material fields of DescribeKey and ListKeyRotations. Runs on the root
//! `KMS_TEST_BACKEND` names (software or pkcs11).
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::path::Path;

use aws_sdk_kms::primitives::{Blob, DateTime};
use aws_sdk_kms::types::{
    AlgorithmSpec, ExpirationModelType, ImportState, ImportType, IncludeKeyMaterial,
    KeyMaterialState, KeySpec, KeyState, KeyUsageType, MacAlgorithmSpec, MessageType, OriginType,
    RotationType, SigningAlgorithmSpec, WrappingKeySpec,
};

fn pkcs11() -> bool {
    common::backend() == "pkcs11"
}

fn now_secs(srv: &common::TestServer) -> i64 {
    use kms::service::clock::Clock;
    srv.clock.now().timestamp()
}

use common::openssl_import::sh;

fn make_material(dir: &Path, spec: &KeySpec) -> Vec<u8> {
    common::openssl_import::make_material(dir, spec.as_str())
}

fn public_of_material(dir: &Path) -> Vec<u8> {
    common::openssl_import::public_of_material(dir)
}

fn wrap(dir: &Path, public_key: &[u8], alg: &AlgorithmSpec, material: &[u8]) -> Vec<u8> {
    common::openssl_import::wrap(dir, public_key, alg.as_str(), material)
}

async fn external_key(kms: &aws_sdk_kms::Client, spec: KeySpec, usage: KeyUsageType) -> String {
    let md = kms
        .create_key()
        .origin(OriginType::External)
        .key_spec(spec)
        .key_usage(usage)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.key_state(), Some(&KeyState::PendingImport));
    assert!(!md.enabled());
    assert_eq!(md.origin(), Some(&OriginType::External));
    assert_eq!(md.current_key_material_id(), None);
    md.key_id().to_string()
}

/// GetParametersForImport then ImportKeyMaterial of `material`; returns the KeyMaterialId.
async fn import(
    kms: &aws_sdk_kms::Client,
    dir: &Path,
    key: &str,
    alg: AlgorithmSpec,
    wrapping: WrappingKeySpec,
    material: &[u8],
) -> Result<String, (String, String)> {
    common::openssl_import::import_with_sdk(kms, dir, key, alg, wrapping, material).await
}

async fn encrypt(kms: &aws_sdk_kms::Client, key: &str, pt: &[u8]) -> Vec<u8> {
    kms.encrypt()
        .key_id(key)
        .plaintext(Blob::new(pt.to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap()
        .into_inner()
}

async fn decrypt(kms: &aws_sdk_kms::Client, blob: &[u8]) -> Result<Vec<u8>, (String, String)> {
    kms.decrypt()
        .ciphertext_blob(Blob::new(blob.to_vec()))
        .send()
        .await
        .map(|o| o.plaintext.unwrap().into_inner())
        .map_err(|e| (common::code(&e), common::message(&e)))
}

async fn describe(kms: &aws_sdk_kms::Client, key: &str) -> aws_sdk_kms::types::KeyMetadata {
    kms.describe_key()
        .key_id(key)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
}

/// RotateKeyOnDemand of `key`; returns the new current key material id (checked well formed).
async fn rotate_now(kms: &aws_sdk_kms::Client, key: &str) -> String {
    kms.rotate_key_on_demand().key_id(key).send().await.unwrap();
    let id = describe(kms, key)
        .await
        .current_key_material_id()
        .unwrap()
        .to_string();
    assert!(is_material_id(&id));
    id
}

fn is_material_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Whether the root under test unwraps this algorithm in the token: the PKCS#11 root on
/// SoftHSM 2.6.1 has no OAEP with SHA-256 (docs/key-types.md).
fn supported(alg: &AlgorithmSpec) -> bool {
    !(pkcs11() && alg.as_str().ends_with("SHA_256"))
}

#[tokio::test]
async fn symmetric_import_round_trips_with_each_wrapping_algorithm() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let dir = tempfile::tempdir().unwrap();
    for (alg, wrapping) in [
        (AlgorithmSpec::RsaesOaepSha1, WrappingKeySpec::Rsa2048),
        (AlgorithmSpec::RsaesOaepSha1, WrappingKeySpec::Rsa4096),
        (AlgorithmSpec::RsaesOaepSha256, WrappingKeySpec::Rsa3072),
        (AlgorithmSpec::RsaesOaepSha256, WrappingKeySpec::Rsa2048),
    ] {
        let key = external_key(
            &kms,
            KeySpec::SymmetricDefault,
            KeyUsageType::EncryptDecrypt,
        )
        .await;
        // Still pending import: no crypto.
        let (code, _) = common::fail(
            kms.encrypt()
                .key_id(&key)
                .plaintext(Blob::new(b"x".to_vec()))
                .send()
                .await,
        );
        assert_eq!(code, "KMSInvalidStateException");
        let material = make_material(dir.path(), &KeySpec::SymmetricDefault);
        if !supported(&alg) {
            let (code, message) = import(&kms, dir.path(), &key, alg.clone(), wrapping, &material)
                .await
                .unwrap_err();
            assert_eq!(code, "UnsupportedOperationException", "{alg}");
            assert!(message.contains("SHA-256"), "{message}");
            continue;
        }
        let before = now_secs(&srv);
        let p = kms
            .get_parameters_for_import()
            .key_id(&key)
            .wrapping_algorithm(alg.clone())
            .wrapping_key_spec(wrapping.clone())
            .send()
            .await
            .unwrap();
        assert!(p.key_id().unwrap().ends_with(&format!(":key/{key}")));
        assert_eq!(
            p.parameters_valid_to().unwrap().secs(),
            before + 24 * 3600,
            "valid 24 hours"
        );
        let id = import(&kms, dir.path(), &key, alg.clone(), wrapping, &material)
            .await
            .unwrap();
        assert!(is_material_id(&id), "{id}");
        let md = describe(&kms, &key).await;
        assert_eq!(md.key_state(), Some(&KeyState::Enabled), "{alg}");
        assert_eq!(md.current_key_material_id(), Some(id.as_str()));
        assert_eq!(
            md.expiration_model(),
            Some(&ExpirationModelType::KeyMaterialDoesNotExpire)
        );
        assert_eq!(md.valid_to(), None);
        let blob = encrypt(&kms, &key, b"imported").await;
        assert_eq!(decrypt(&kms, &blob).await.unwrap(), b"imported");
    }
    // RSA_AES_KEY_WRAP is not offered for symmetric keys, nor RSAES_PKCS1_V1_5 for any.
    let key = external_key(
        &kms,
        KeySpec::SymmetricDefault,
        KeyUsageType::EncryptDecrypt,
    )
    .await;
    for alg in [
        AlgorithmSpec::RsaAesKeyWrapSha1,
        AlgorithmSpec::RsaesPkcs1V15,
    ] {
        let (code, _) = common::fail(
            kms.get_parameters_for_import()
                .key_id(&key)
                .wrapping_algorithm(alg)
                .wrapping_key_spec(WrappingKeySpec::Rsa2048)
                .send()
                .await,
        );
        assert_eq!(code, "UnsupportedOperationException");
    }
    // SM2 wrapping keys exist only in the China Regions.
    let (code, _) = common::fail(
        kms.get_parameters_for_import()
            .key_id(&key)
            .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha1)
            .wrapping_key_spec(WrappingKeySpec::Sm2)
            .send()
            .await,
    );
    assert_eq!(code, "UnsupportedOperationException");
    // A key of AWS_KMS origin takes no import, in AWS's words.
    let aws = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let (code, message) = common::fail(
        kms.get_parameters_for_import()
            .key_id(aws.key_id())
            .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha1)
            .wrapping_key_spec(WrappingKeySpec::Rsa2048)
            .send()
            .await,
    );
    assert_eq!(code, "UnsupportedOperationException");
    assert_eq!(
        message,
        format!(
            "{} origin is AWS_KMS which is not valid for this operation.",
            aws.arn().unwrap()
        )
    );
}

#[tokio::test]
async fn hmac_rsa_and_ecc_material_imports_and_works() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let dir = tempfile::tempdir().unwrap();

    // HMAC: the MAC equals the one computed here with the same secret.
    let key = external_key(&kms, KeySpec::Hmac256, KeyUsageType::GenerateVerifyMac).await;
    let secret = make_material(dir.path(), &KeySpec::Hmac256);
    import(
        &kms,
        dir.path(),
        &key,
        AlgorithmSpec::RsaesOaepSha1,
        WrappingKeySpec::Rsa2048,
        &secret,
    )
    .await
    .unwrap();
    let mac = kms
        .generate_mac()
        .key_id(&key)
        .mac_algorithm(MacAlgorithmSpec::HmacSha256)
        .message(Blob::new(b"message".to_vec()))
        .send()
        .await
        .unwrap()
        .mac
        .unwrap()
        .into_inner();
    let expected = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret),
        b"message",
    );
    assert_eq!(mac, expected.as_ref());
    // HMAC material of the wrong length is not material of the spec.
    let key = external_key(&kms, KeySpec::Hmac384, KeyUsageType::GenerateVerifyMac).await;
    let short = make_material(dir.path(), &KeySpec::Hmac256);
    let (code, _) = import(
        &kms,
        dir.path(),
        &key,
        AlgorithmSpec::RsaesOaepSha1,
        WrappingKeySpec::Rsa2048,
        &short,
    )
    .await
    .unwrap_err();
    assert_eq!(code, "IncorrectKeyMaterialException");

    // RSA and ECC private keys (PKCS#8 from openssl): sign here, verify with openssl's key.
    for (spec, alg, signing) in [
        (
            KeySpec::Rsa2048,
            AlgorithmSpec::RsaAesKeyWrapSha1,
            SigningAlgorithmSpec::RsassaPssSha256,
        ),
        (
            KeySpec::EccNistP256,
            AlgorithmSpec::RsaAesKeyWrapSha1,
            SigningAlgorithmSpec::EcdsaSha256,
        ),
        (
            KeySpec::EccNistP384,
            AlgorithmSpec::RsaAesKeyWrapSha256,
            SigningAlgorithmSpec::EcdsaSha384,
        ),
        // The PKCS#11 root recovers the public point of every curve (ECDH with the base point).
        (
            KeySpec::EccNistP384,
            AlgorithmSpec::RsaAesKeyWrapSha1,
            SigningAlgorithmSpec::EcdsaSha384,
        ),
    ] {
        let key = external_key(&kms, spec.clone(), KeyUsageType::SignVerify).await;
        let material = make_material(dir.path(), &spec);
        let public = public_of_material(dir.path());
        let result = import(
            &kms,
            dir.path(),
            &key,
            alg.clone(),
            WrappingKeySpec::Rsa2048,
            &material,
        )
        .await;
        if !supported(&alg) {
            assert_eq!(result.unwrap_err().0, "UnsupportedOperationException");
            continue;
        }
        result.unwrap();
        assert_eq!(
            describe(&kms, &key).await.key_state(),
            Some(&KeyState::Enabled)
        );
        let got = kms.get_public_key().key_id(&key).send().await.unwrap();
        assert_eq!(got.public_key().unwrap().as_ref(), public, "{spec}");
        let signature = kms
            .sign()
            .key_id(&key)
            .message(Blob::new(b"signed".to_vec()))
            .message_type(MessageType::Raw)
            .signing_algorithm(signing.clone())
            .send()
            .await
            .unwrap()
            .signature
            .unwrap()
            .into_inner();
        std::fs::write(dir.path().join("msg"), b"signed").unwrap();
        std::fs::write(dir.path().join("sig"), &signature).unwrap();
        let pss = if spec == KeySpec::Rsa2048 {
            "-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:-1"
        } else {
            ""
        };
        let md = if signing == SigningAlgorithmSpec::EcdsaSha384 {
            "sha384"
        } else {
            "sha256"
        };
        sh(
            dir.path(),
            &format!("openssl dgst -{md} -verify P.der -keyform DER {pss} -signature sig msg"),
        );
        // Material of another curve or size does not fit the key.
        let other = match spec {
            KeySpec::Rsa2048 => KeySpec::Rsa3072,
            KeySpec::EccNistP256 => KeySpec::EccNistP384,
            _ => KeySpec::EccNistP256,
        };
        let key = external_key(&kms, spec.clone(), KeyUsageType::SignVerify).await;
        let wrong = make_material(dir.path(), &other);
        let (code, _) = import(
            &kms,
            dir.path(),
            &key,
            alg,
            WrappingKeySpec::Rsa2048,
            &wrong,
        )
        .await
        .unwrap_err();
        assert_eq!(code, "IncorrectKeyMaterialException", "{spec} <- {other}");
    }
}

#[tokio::test]
async fn expiry_deletion_and_reimport_of_the_same_material_only() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let dir = tempfile::tempdir().unwrap();
    let key = external_key(
        &kms,
        KeySpec::SymmetricDefault,
        KeyUsageType::EncryptDecrypt,
    )
    .await;
    let material = make_material(dir.path(), &KeySpec::SymmetricDefault);
    let alg = AlgorithmSpec::RsaesOaepSha1;
    // Expiring material: ValidTo one day ahead.
    let valid_to = now_secs(&srv) + 86_400;
    let p = kms
        .get_parameters_for_import()
        .key_id(&key)
        .wrapping_algorithm(alg.clone())
        .wrapping_key_spec(WrappingKeySpec::Rsa2048)
        .send()
        .await
        .unwrap();
    let wrapped = wrap(
        dir.path(),
        p.public_key().unwrap().as_ref(),
        &alg,
        &material,
    );
    // KEY_MATERIAL_EXPIRES (the default) needs a ValidTo.
    let (code, _) = common::fail(
        kms.import_key_material()
            .key_id(&key)
            .import_token(p.import_token().unwrap().clone())
            .encrypted_key_material(Blob::new(wrapped.clone()))
            .send()
            .await,
    );
    assert_eq!(code, "ValidationException");
    let out = kms
        .import_key_material()
        .key_id(&key)
        .import_token(p.import_token().unwrap().clone())
        .encrypted_key_material(Blob::new(wrapped))
        .expiration_model(ExpirationModelType::KeyMaterialExpires)
        .valid_to(DateTime::from_secs(valid_to))
        .send()
        .await
        .unwrap();
    let id = out.key_material_id().unwrap().to_string();
    let md = describe(&kms, &key).await;
    assert_eq!(md.valid_to().map(|t| t.secs()), Some(valid_to));
    assert_eq!(
        md.expiration_model(),
        Some(&ExpirationModelType::KeyMaterialExpires)
    );
    let blob = encrypt(&kms, &key, b"before expiry").await;

    // ValidTo passes: the maintenance pass deletes the material; the key waits for it.
    srv.clock.advance(chrono::Duration::days(2));
    let report = srv.run_maintenance().await;
    assert_eq!(report.expired, 1);
    let md = describe(&kms, &key).await;
    assert_eq!(md.key_state(), Some(&KeyState::PendingImport));
    assert_eq!(md.valid_to(), None);
    let (code, _) = decrypt(&kms, &blob).await.unwrap_err();
    assert_eq!(code, "KMSInvalidStateException");
    assert_eq!(srv.run_maintenance().await.expired, 0);

    // Other material never fits this key.
    let other = make_material(dir.path(), &KeySpec::SymmetricDefault);
    let (code, _) = import(
        &kms,
        dir.path(),
        &key,
        alg.clone(),
        WrappingKeySpec::Rsa2048,
        &other,
    )
    .await
    .unwrap_err();
    assert_eq!(code, "IncorrectKeyMaterialException");

    // The same material again (another wrapping key spec is fine): same id, old data decrypts.
    let again = import(
        &kms,
        dir.path(),
        &key,
        alg.clone(),
        WrappingKeySpec::Rsa3072,
        &material,
    )
    .await
    .unwrap();
    assert_eq!(again, id);
    assert_eq!(
        describe(&kms, &key).await.key_state(),
        Some(&KeyState::Enabled)
    );
    assert_eq!(decrypt(&kms, &blob).await.unwrap(), b"before expiry");

    // DeleteImportedKeyMaterial: at once, same effect; a second delete changes nothing.
    let del = kms
        .delete_imported_key_material()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(del.key_material_id(), Some(id.as_str()));
    assert_eq!(
        describe(&kms, &key).await.key_state(),
        Some(&KeyState::PendingImport)
    );
    let (code, _) = decrypt(&kms, &blob).await.unwrap_err();
    assert_eq!(code, "KMSInvalidStateException");
    kms.delete_imported_key_material()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    import(
        &kms,
        dir.path(),
        &key,
        alg,
        WrappingKeySpec::Rsa3072,
        &material,
    )
    .await
    .unwrap();
    assert_eq!(decrypt(&kms, &blob).await.unwrap(), b"before expiry");

    // The same material in another key has its own id (ids derive from key id and material).
    let key2 = external_key(
        &kms,
        KeySpec::SymmetricDefault,
        KeyUsageType::EncryptDecrypt,
    )
    .await;
    let id2 = import(
        &kms,
        dir.path(),
        &key2,
        AlgorithmSpec::RsaesOaepSha1,
        WrappingKeySpec::Rsa2048,
        &material,
    )
    .await
    .unwrap();
    assert_ne!(id2, id);
    // ... and ciphertext of one never decrypts under the other, although the material is the
    // same (reference §15, requirement 13): naming the other key is IncorrectKey, and a blob
    // rewritten to name it (docs/ciphertext-format.md: byte 1 is the id's length, the id
    // follows) is invalid ciphertext.
    let (code, _) = common::fail(
        kms.decrypt()
            .ciphertext_blob(Blob::new(blob.clone()))
            .key_id(&key2)
            .send()
            .await,
    );
    assert_eq!(code, "IncorrectKeyException");
    let n = blob[1] as usize;
    assert_eq!(&blob[2..2 + n], key.as_bytes());
    let mut forged = blob.clone();
    forged[2..2 + n].copy_from_slice(key2.as_bytes());
    assert_eq!(
        decrypt(&kms, &forged).await.unwrap_err().0,
        "InvalidCiphertextException"
    );
    assert_eq!(decrypt(&kms, &blob).await.unwrap(), b"before expiry");
}

#[tokio::test]
async fn import_token_misuse_is_refused() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let dir = tempfile::tempdir().unwrap();
    let alg = AlgorithmSpec::RsaesOaepSha1;
    let key_a = external_key(
        &kms,
        KeySpec::SymmetricDefault,
        KeyUsageType::EncryptDecrypt,
    )
    .await;
    let key_b = external_key(
        &kms,
        KeySpec::SymmetricDefault,
        KeyUsageType::EncryptDecrypt,
    )
    .await;
    let material = make_material(dir.path(), &KeySpec::SymmetricDefault);
    let p = kms
        .get_parameters_for_import()
        .key_id(&key_a)
        .wrapping_algorithm(alg.clone())
        .wrapping_key_spec(WrappingKeySpec::Rsa2048)
        .send()
        .await
        .unwrap();
    let token = p.import_token().unwrap().as_ref().to_vec();
    let wrapped = wrap(
        dir.path(),
        p.public_key().unwrap().as_ref(),
        &alg,
        &material,
    );
    let send = |key: String, token: Vec<u8>, wrapped: Vec<u8>| {
        kms.import_key_material()
            .key_id(key)
            .import_token(Blob::new(token))
            .encrypted_key_material(Blob::new(wrapped))
            .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
            .send()
    };
    // Key A's token for key B.
    let (code, _) = common::fail(send(key_b.clone(), token.clone(), wrapped.clone()).await);
    assert_eq!(code, "InvalidImportTokenException");
    // A changed byte anywhere in the token.
    for at in [0, token.len() / 2, token.len() - 1] {
        let mut t = token.clone();
        t[at] ^= 0x01;
        let (code, _) = common::fail(send(key_a.clone(), t, wrapped.clone()).await);
        assert_eq!(code, "InvalidImportTokenException", "byte {at}");
    }
    // Material that does not unwrap under the pair's key.
    let mut bad = wrapped.clone();
    bad[10] ^= 0x80;
    let (code, _) = common::fail(send(key_a.clone(), token.clone(), bad).await);
    assert_eq!(code, "InvalidCiphertextException");
    // After 24 hours the pair is expired.
    srv.clock
        .advance(chrono::Duration::hours(24) + chrono::Duration::seconds(1));
    let (code, _) = common::fail(send(key_a.clone(), token.clone(), wrapped.clone()).await);
    assert_eq!(code, "ExpiredImportTokenException");
    // A fresh pair works.
    import(
        &kms,
        dir.path(),
        &key_a,
        alg,
        WrappingKeySpec::Rsa2048,
        &material,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn imported_symmetric_key_rotates_on_demand_with_new_material() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let dir = tempfile::tempdir().unwrap();
    let alg = AlgorithmSpec::RsaesOaepSha1;
    let key = external_key(
        &kms,
        KeySpec::SymmetricDefault,
        KeyUsageType::EncryptDecrypt,
    )
    .await;
    let m1 = make_material(dir.path(), &KeySpec::SymmetricDefault);
    let id1 = import(
        &kms,
        dir.path(),
        &key,
        alg.clone(),
        WrappingKeySpec::Rsa2048,
        &m1,
    )
    .await
    .unwrap();
    let b1 = encrypt(&kms, &key, b"one").await;
    // Nothing pending: no rotation, in the words AWS answers for imported keys.
    let (code, message) = common::fail(kms.rotate_key_on_demand().key_id(&key).send().await);
    assert_eq!(code, "UnsupportedOperationException");
    assert!(message.ends_with("origin is EXTERNAL which is not valid for this operation."));
    // Automatic rotation stays unsupported for imported keys.
    let (code, _) = common::fail(kms.enable_key_rotation().key_id(&key).send().await);
    assert_eq!(code, "UnsupportedOperationException");

    // New material, pending rotation.
    let m2 = make_material(dir.path(), &KeySpec::SymmetricDefault);
    let p = kms
        .get_parameters_for_import()
        .key_id(&key)
        .wrapping_algorithm(alg.clone())
        .wrapping_key_spec(WrappingKeySpec::Rsa2048)
        .send()
        .await
        .unwrap();
    let id2 = kms
        .import_key_material()
        .key_id(&key)
        .import_token(p.import_token().unwrap().clone())
        .encrypted_key_material(Blob::new(wrap(
            dir.path(),
            p.public_key().unwrap().as_ref(),
            &alg,
            &m2,
        )))
        .import_type(ImportType::NewKeyMaterial)
        .key_material_description("second material")
        .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
        .send()
        .await
        .unwrap()
        .key_material_id()
        .unwrap()
        .to_string();
    assert_ne!(id1, id2);
    // NEW material that the key already has is refused.
    let (code, _) = {
        let p = kms
            .get_parameters_for_import()
            .key_id(&key)
            .wrapping_algorithm(alg.clone())
            .wrapping_key_spec(WrappingKeySpec::Rsa2048)
            .send()
            .await
            .unwrap();
        common::fail(
            kms.import_key_material()
                .key_id(&key)
                .import_token(p.import_token().unwrap().clone())
                .encrypted_key_material(Blob::new(wrap(
                    dir.path(),
                    p.public_key().unwrap().as_ref(),
                    &alg,
                    &m1,
                )))
                .import_type(ImportType::NewKeyMaterial)
                .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
                .send()
                .await,
        )
    };
    assert!(
        code == "IncorrectKeyMaterialException" || code == "KMSInvalidStateException",
        "{code}"
    );
    assert_eq!(
        describe(&kms, &key).await.current_key_material_id(),
        Some(id1.as_str())
    );
    let all = kms
        .list_key_rotations()
        .key_id(&key)
        .include_key_material(IncludeKeyMaterial::AllKeyMaterial)
        .send()
        .await
        .unwrap();
    let r = all.rotations();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].key_material_id(), Some(id1.as_str()));
    assert_eq!(r[0].key_material_state(), Some(&KeyMaterialState::Current));
    assert_eq!(r[0].rotation_date(), None);
    assert_eq!(r[0].import_state(), Some(&ImportState::Imported));
    assert_eq!(
        r[0].expiration_model(),
        Some(&ExpirationModelType::KeyMaterialDoesNotExpire)
    );
    assert_eq!(r[1].key_material_id(), Some(id2.as_str()));
    assert_eq!(
        r[1].key_material_state(),
        Some(&KeyMaterialState::PendingRotation)
    );
    assert_eq!(r[1].key_material_description(), Some("second material"));
    // The default lists completed rotations only: none yet.
    let only = kms.list_key_rotations().key_id(&key).send().await.unwrap();
    assert!(only.rotations().is_empty());

    kms.rotate_key_on_demand()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        describe(&kms, &key).await.current_key_material_id(),
        Some(id2.as_str())
    );
    let b2 = encrypt(&kms, &key, b"two").await;
    assert_eq!(decrypt(&kms, &b1).await.unwrap(), b"one");
    assert_eq!(decrypt(&kms, &b2).await.unwrap(), b"two");
    let only = kms.list_key_rotations().key_id(&key).send().await.unwrap();
    let r = only.rotations();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].key_material_id(), Some(id2.as_str()));
    assert_eq!(r[0].key_material_state(), Some(&KeyMaterialState::Current));
    assert_eq!(r[0].rotation_type(), Some(&RotationType::OnDemand));
    assert!(r[0].rotation_date().is_some());
    let all = kms
        .list_key_rotations()
        .key_id(&key)
        .include_key_material(IncludeKeyMaterial::AllKeyMaterial)
        .send()
        .await
        .unwrap();
    assert_eq!(
        all.rotations()[0].key_material_state(),
        Some(&KeyMaterialState::NonCurrent)
    );

    // Deleting the old (non-current) material makes the key wait for it.
    kms.delete_imported_key_material()
        .key_id(&key)
        .key_material_id(&id1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        describe(&kms, &key).await.key_state(),
        Some(&KeyState::PendingImport)
    );
    let again = {
        let p = kms
            .get_parameters_for_import()
            .key_id(&key)
            .wrapping_algorithm(alg.clone())
            .wrapping_key_spec(WrappingKeySpec::Rsa2048)
            .send()
            .await
            .unwrap();
        kms.import_key_material()
            .key_id(&key)
            .import_token(p.import_token().unwrap().clone())
            .encrypted_key_material(Blob::new(wrap(
                dir.path(),
                p.public_key().unwrap().as_ref(),
                &alg,
                &m1,
            )))
            .import_type(ImportType::ExistingKeyMaterial)
            .key_material_id(&id1)
            .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
            .send()
            .await
            .unwrap()
    };
    assert_eq!(again.key_material_id(), Some(id1.as_str()));
    assert_eq!(decrypt(&kms, &b1).await.unwrap(), b"one");
    assert_eq!(decrypt(&kms, &b2).await.unwrap(), b"two");
}

#[tokio::test]
async fn generated_material_has_ids_in_metadata_and_rotations() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let md = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let key = md.key_id().to_string();
    let first = md.current_key_material_id().unwrap().to_string();
    assert!(is_material_id(&first));
    assert_eq!(md.expiration_model(), None);
    let second = rotate_now(&kms, &key).await;
    assert_ne!(first, second);
    let all = kms
        .list_key_rotations()
        .key_id(&key)
        .include_key_material(IncludeKeyMaterial::AllKeyMaterial)
        .send()
        .await
        .unwrap();
    let r = all.rotations();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].key_material_id(), Some(first.as_str()));
    assert_eq!(
        r[0].key_material_state(),
        Some(&KeyMaterialState::NonCurrent)
    );
    assert_eq!(r[0].rotation_type(), None);
    assert_eq!(r[0].import_state(), None);
    assert_eq!(r[1].key_material_id(), Some(second.as_str()));
    assert_eq!(r[1].key_material_state(), Some(&KeyMaterialState::Current));
    assert_eq!(r[1].rotation_type(), Some(&RotationType::OnDemand));
    let only = kms.list_key_rotations().key_id(&key).send().await.unwrap();
    assert_eq!(only.rotations().len(), 1);
    assert_eq!(only.rotations()[0].key_material_id(), Some(second.as_str()));
    // Asymmetric keys have no CurrentKeyMaterialId.
    let rsa = kms
        .create_key()
        .key_spec(KeySpec::Rsa2048)
        .key_usage(KeyUsageType::SignVerify)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(rsa.current_key_material_id(), None);
}

#[tokio::test]
async fn import_condition_keys_reach_the_key_policy() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let dir = tempfile::tempdir().unwrap();
    let policy = r#"{"Version": "2012-10-17", "Statement": [
      {"Sid": "root", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
       "Action": "kms:*", "Resource": "*"},
      {"Sid": "no-sha1", "Effect": "Deny", "Principal": {"AWS": "*"},
       "Action": "kms:GetParametersForImport", "Resource": "*",
       "Condition": {"StringEquals": {"kms:WrappingAlgorithm": "RSAES_OAEP_SHA_1",
                                      "kms:WrappingKeySpec": "RSA_2048"}}},
      {"Sid": "must-expire", "Effect": "Deny", "Principal": {"AWS": "*"},
       "Action": "kms:ImportKeyMaterial", "Resource": "*",
       "Condition": {"StringEquals": {"kms:ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}}}
    ]}"#;
    let key = kms
        .create_key()
        .origin(OriginType::External)
        .policy(policy)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id()
        .to_string();
    let (code, _) = common::fail(
        kms.get_parameters_for_import()
            .key_id(&key)
            .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha1)
            .wrapping_key_spec(WrappingKeySpec::Rsa2048)
            .send()
            .await,
    );
    assert_eq!(code, "AccessDeniedException");
    let material = make_material(dir.path(), &KeySpec::SymmetricDefault);
    // Another wrapping key spec is allowed; a material that does not expire is not.
    let (code, _) = import(
        &kms,
        dir.path(),
        &key,
        AlgorithmSpec::RsaesOaepSha1,
        WrappingKeySpec::Rsa3072,
        &material,
    )
    .await
    .unwrap_err();
    assert_eq!(code, "AccessDeniedException");
    let p = kms
        .get_parameters_for_import()
        .key_id(&key)
        .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha1)
        .wrapping_key_spec(WrappingKeySpec::Rsa3072)
        .send()
        .await
        .unwrap();
    let alg = AlgorithmSpec::RsaesOaepSha1;
    kms.import_key_material()
        .key_id(&key)
        .import_token(p.import_token().unwrap().clone())
        .encrypted_key_material(Blob::new(wrap(
            dir.path(),
            p.public_key().unwrap().as_ref(),
            &alg,
            &material,
        )))
        .expiration_model(ExpirationModelType::KeyMaterialExpires)
        .valid_to(DateTime::from_secs(now_secs(&srv) + 3600))
        .send()
        .await
        .unwrap();
    assert_eq!(
        describe(&kms, &key).await.key_state(),
        Some(&KeyState::Enabled)
    );
}

/// The PendingImport column of the key-state table (reference §3.3), cell by cell, on a key
/// whose material was deleted (so a ciphertext and a grant of it exist); then material and
/// deletion: importing into a key pending deletion is refused (footnote [8]), deleting its
/// material is not (footnote [9]; the state stays PendingDeletion), and CancelKeyDeletion of a
/// key without material brings it back PendingImport (Disabled would let EnableKey make a key
/// with nothing to use).
#[tokio::test]
async fn pending_import_follows_the_key_state_table() {
    use aws_sdk_kms::types::{DataKeyPairSpec, DataKeySpec, GrantOperation, Tag};
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let dir = tempfile::tempdir().unwrap();
    let alg = AlgorithmSpec::RsaesOaepSha1;
    let key = external_key(
        &kms,
        KeySpec::SymmetricDefault,
        KeyUsageType::EncryptDecrypt,
    )
    .await;
    let arn = describe(&kms, &key).await.arn().unwrap().to_string();
    let material = make_material(dir.path(), &KeySpec::SymmetricDefault);
    import(
        &kms,
        dir.path(),
        &key,
        alg.clone(),
        WrappingKeySpec::Rsa2048,
        &material,
    )
    .await
    .unwrap();
    let blob = encrypt(&kms, &key, b"pending import").await;
    let good = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let good = good.key_id().to_string();
    let good_blob = encrypt(&kms, &good, b"good").await;
    let grant = kms
        .create_grant()
        .key_id(&key)
        .grantee_principal("arn:aws:iam::111122223333:root")
        .operations(GrantOperation::Decrypt)
        .send()
        .await
        .unwrap()
        .grant_id
        .unwrap();
    kms.create_alias()
        .alias_name("alias/pi")
        .target_key_id(&key)
        .send()
        .await
        .unwrap();
    kms.delete_imported_key_material()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        describe(&kms, &key).await.key_state(),
        Some(&KeyState::PendingImport)
    );

    // ✗[5]: cryptographic operations (by id and by alias), CreateGrant, EnableKey, DisableKey.
    let pending = (
        "KMSInvalidStateException".to_string(),
        format!("{arn} is pending import."),
    );
    for k in [key.as_str(), "alias/pi"] {
        let got = common::fail(
            kms.encrypt()
                .key_id(k)
                .plaintext(Blob::new(b"x".to_vec()))
                .send()
                .await,
        );
        assert_eq!(got, pending, "Encrypt {k}");
        let got = common::fail(
            kms.generate_data_key()
                .key_id(k)
                .key_spec(DataKeySpec::Aes256)
                .send()
                .await,
        );
        assert_eq!(got, pending, "GenerateDataKey {k}");
    }
    let got = common::fail(
        kms.decrypt()
            .ciphertext_blob(Blob::new(blob.clone()))
            .send()
            .await,
    );
    assert_eq!(got, pending, "Decrypt");
    let got = common::fail(
        kms.decrypt()
            .ciphertext_blob(Blob::new(blob.clone()))
            .key_id(&arn)
            .send()
            .await,
    );
    assert_eq!(got, pending, "Decrypt with KeyId");
    let got = common::fail(
        kms.re_encrypt()
            .ciphertext_blob(Blob::new(blob.clone()))
            .destination_key_id(&good)
            .send()
            .await,
    );
    assert_eq!(got, pending, "ReEncrypt from");
    let got = common::fail(
        kms.re_encrypt()
            .ciphertext_blob(Blob::new(good_blob))
            .destination_key_id(&key)
            .send()
            .await,
    );
    assert_eq!(got, pending, "ReEncrypt to");
    let got = common::fail(
        kms.generate_data_key_without_plaintext()
            .key_id(&key)
            .number_of_bytes(16)
            .send()
            .await,
    );
    assert_eq!(got, pending, "GenerateDataKeyWithoutPlaintext");
    let got = common::fail(
        kms.generate_data_key_pair()
            .key_id(&key)
            .key_pair_spec(DataKeyPairSpec::EccNistP256)
            .send()
            .await,
    );
    assert_eq!(got, pending, "GenerateDataKeyPair");
    let got = common::fail(
        kms.generate_data_key_pair_without_plaintext()
            .key_id(&key)
            .key_pair_spec(DataKeyPairSpec::EccNistP256)
            .send()
            .await,
    );
    assert_eq!(got, pending, "GenerateDataKeyPairWithoutPlaintext");
    let got = common::fail(
        kms.create_grant()
            .key_id(&key)
            .grantee_principal("arn:aws:iam::111122223333:root")
            .operations(GrantOperation::Encrypt)
            .send()
            .await,
    );
    assert_eq!(got, pending, "CreateGrant");
    assert_eq!(
        common::fail(kms.enable_key().key_id(&key).send().await),
        pending,
        "EnableKey"
    );
    assert_eq!(
        common::fail(kms.disable_key().key_id(&key).send().await),
        pending,
        "DisableKey"
    );

    // ✗[6]: rotation settings and status.
    let external = (
        "UnsupportedOperationException".to_string(),
        format!("{arn} origin is EXTERNAL which is not valid for this operation."),
    );
    assert_eq!(
        common::fail(kms.enable_key_rotation().key_id(&key).send().await),
        external,
        "EnableKeyRotation"
    );
    assert_eq!(
        common::fail(kms.disable_key_rotation().key_id(&key).send().await),
        external,
        "DisableKeyRotation"
    );
    assert_eq!(
        common::fail(kms.get_key_rotation_status().key_id(&key).send().await),
        external,
        "GetKeyRotationStatus"
    );
    // ✗[4].
    assert_eq!(
        common::fail(kms.cancel_key_deletion().key_id(&key).send().await),
        (
            "KMSInvalidStateException".to_string(),
            format!("{arn} is not pending deletion.")
        ),
        "CancelKeyDeletion"
    );

    // ✓: everything else, and none of it changes the state.
    kms.create_alias()
        .alias_name("alias/pi-2")
        .target_key_id(&key)
        .send()
        .await
        .unwrap();
    kms.update_alias()
        .alias_name("alias/pi-2")
        .target_key_id(&key)
        .send()
        .await
        .unwrap();
    kms.delete_alias()
        .alias_name("alias/pi-2")
        .send()
        .await
        .unwrap();
    kms.update_key_description()
        .key_id(&key)
        .description("waiting for material")
        .send()
        .await
        .unwrap();
    kms.tag_resource()
        .key_id(&key)
        .tags(Tag::builder().tag_key("k").tag_value("v").build().unwrap())
        .send()
        .await
        .unwrap();
    kms.untag_resource()
        .key_id(&key)
        .tag_keys("k")
        .send()
        .await
        .unwrap();
    kms.list_resource_tags().key_id(&key).send().await.unwrap();
    let policy = kms
        .get_key_policy()
        .key_id(&key)
        .send()
        .await
        .unwrap()
        .policy
        .unwrap();
    kms.put_key_policy()
        .key_id(&key)
        .policy_name("default")
        .policy(policy)
        .send()
        .await
        .unwrap();
    kms.list_key_policies().key_id(&key).send().await.unwrap();
    kms.list_aliases().key_id(&key).send().await.unwrap();
    let grants = kms.list_grants().key_id(&key).send().await.unwrap();
    assert_eq!(grants.grants().len(), 1);
    kms.revoke_grant()
        .key_id(&key)
        .grant_id(&grant)
        .send()
        .await
        .unwrap();
    // DeleteImportedKeyMaterial without material: no effect.
    kms.delete_imported_key_material()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    let md = describe(&kms, &key).await;
    assert_eq!(md.key_state(), Some(&KeyState::PendingImport));
    assert_eq!(md.description(), Some("waiting for material"));
    // ScheduleKeyDeletion works too; cancelling gives back a key still waiting for material.
    kms.schedule_key_deletion()
        .key_id(&key)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    kms.cancel_key_deletion().key_id(&key).send().await.unwrap();
    assert_eq!(
        describe(&kms, &key).await.key_state(),
        Some(&KeyState::PendingImport)
    );

    // GetParametersForImport and ImportKeyMaterial work (the same material: old data decrypts).
    import(
        &kms,
        dir.path(),
        &key,
        alg.clone(),
        WrappingKeySpec::Rsa2048,
        &material,
    )
    .await
    .unwrap();
    assert_eq!(decrypt(&kms, &blob).await.unwrap(), b"pending import");

    // Pending deletion with material: no import (footnote [8]) ...
    let p = kms
        .get_parameters_for_import()
        .key_id(&key)
        .wrapping_algorithm(alg.clone())
        .wrapping_key_spec(WrappingKeySpec::Rsa2048)
        .send()
        .await
        .unwrap();
    let wrapped = wrap(
        dir.path(),
        p.public_key().unwrap().as_ref(),
        &alg,
        &material,
    );
    kms.schedule_key_deletion()
        .key_id(&key)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    let deleting = (
        "KMSInvalidStateException".to_string(),
        format!("{arn} is pending deletion."),
    );
    assert_eq!(
        common::fail(
            kms.get_parameters_for_import()
                .key_id(&key)
                .wrapping_algorithm(alg.clone())
                .wrapping_key_spec(WrappingKeySpec::Rsa2048)
                .send()
                .await
        ),
        deleting,
        "GetParametersForImport"
    );
    assert_eq!(
        common::fail(
            kms.import_key_material()
                .key_id(&key)
                .import_token(p.import_token().unwrap().clone())
                .encrypted_key_material(Blob::new(wrapped))
                .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
                .send()
                .await
        ),
        deleting,
        "ImportKeyMaterial"
    );
    // ... but deleting the material works and leaves the key pending deletion ...
    kms.delete_imported_key_material()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        describe(&kms, &key).await.key_state(),
        Some(&KeyState::PendingDeletion)
    );
    // ... and cancelling then gives a key waiting for material, which EnableKey cannot enable.
    kms.cancel_key_deletion().key_id(&key).send().await.unwrap();
    assert_eq!(
        describe(&kms, &key).await.key_state(),
        Some(&KeyState::PendingImport)
    );
    assert_eq!(
        common::fail(kms.enable_key().key_id(&key).send().await),
        pending,
        "EnableKey after cancel"
    );
    import(
        &kms,
        dir.path(),
        &key,
        alg.clone(),
        WrappingKeySpec::Rsa2048,
        &material,
    )
    .await
    .unwrap();
    assert_eq!(
        describe(&kms, &key).await.key_state(),
        Some(&KeyState::Enabled)
    );
    assert_eq!(decrypt(&kms, &blob).await.unwrap(), b"pending import");

    // Disabled with material (footnote [9]): the import operations work (re-importing the
    // same material); deleting the material makes the key PendingImport.
    kms.disable_key().key_id(&key).send().await.unwrap();
    import(
        &kms,
        dir.path(),
        &key,
        alg,
        WrappingKeySpec::Rsa2048,
        &material,
    )
    .await
    .unwrap();
    kms.delete_imported_key_material()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        describe(&kms, &key).await.key_state(),
        Some(&KeyState::PendingImport)
    );
}

/// Reference §15 requirements 27 and 28, the rules checked before any material is opened:
/// the wrapping algorithms offered per key type (no RSAES-OAEP for an RSA private key, none
/// for P-521 under RSA_2048) and the ValidTo rules of ImportKeyMaterial.
#[tokio::test]
async fn wrapping_algorithm_and_valid_to_rules() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let params = |key: &str, alg: AlgorithmSpec, spec: WrappingKeySpec| {
        kms.get_parameters_for_import()
            .key_id(key)
            .wrapping_algorithm(alg)
            .wrapping_key_spec(spec)
            .send()
    };
    let rsa = external_key(&kms, KeySpec::Rsa2048, KeyUsageType::SignVerify).await;
    for alg in [AlgorithmSpec::RsaesOaepSha1, AlgorithmSpec::RsaesOaepSha256] {
        assert_eq!(
            common::fail(params(&rsa, alg.clone(), WrappingKeySpec::Rsa4096).await),
            (
                "UnsupportedOperationException".to_string(),
                format!("WrappingAlgorithm {alg} is not supported for key spec RSA_2048.")
            )
        );
    }
    let p521 = external_key(&kms, KeySpec::EccNistP521, KeyUsageType::SignVerify).await;
    let (code, message) = common::fail(
        params(
            &p521,
            AlgorithmSpec::RsaesOaepSha1,
            WrappingKeySpec::Rsa2048,
        )
        .await,
    );
    assert_eq!(code, "UnsupportedOperationException");
    assert!(message.contains("ECC_NIST_P521"), "{message}");
    // The hybrid algorithm under RSA_2048 takes it (the rule is OAEP's size limit).
    params(
        &p521,
        AlgorithmSpec::RsaAesKeyWrapSha1,
        WrappingKeySpec::Rsa2048,
    )
    .await
    .unwrap();

    // ValidTo: forbidden without expiry, in the future, at most 365 days ahead. These are
    // checked before the material is unwrapped, so any bytes do.
    let key = external_key(
        &kms,
        KeySpec::SymmetricDefault,
        KeyUsageType::EncryptDecrypt,
    )
    .await;
    let p = params(&key, AlgorithmSpec::RsaesOaepSha1, WrappingKeySpec::Rsa2048)
        .await
        .unwrap();
    let now = now_secs(&srv);
    for (model, valid_to, message) in [
        (
            ExpirationModelType::KeyMaterialDoesNotExpire,
            Some(now + 3600),
            "A validTo date must not be set if the ExpirationModel is \
             KEY_MATERIAL_DOES_NOT_EXPIRE",
        ),
        (
            ExpirationModelType::KeyMaterialExpires,
            Some(now - 60),
            "The validTo date must be in the future.",
        ),
        (
            ExpirationModelType::KeyMaterialExpires,
            Some(now + 366 * 86_400),
            "The validTo date must be at most 365 days in the future.",
        ),
        (
            ExpirationModelType::KeyMaterialExpires,
            None,
            "A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES",
        ),
    ] {
        let got = common::fail(
            kms.import_key_material()
                .key_id(&key)
                .import_token(p.import_token().unwrap().clone())
                .encrypted_key_material(Blob::new(vec![7u8; 256]))
                .expiration_model(model.clone())
                .set_valid_to(valid_to.map(DateTime::from_secs))
                .send()
                .await,
        );
        assert_eq!(
            got,
            ("ValidationException".to_string(), message.to_string()),
            "{model:?} {valid_to:?}"
        );
    }
    assert_eq!(
        describe(&kms, &key).await.key_state(),
        Some(&KeyState::PendingImport)
    );
}

/// DescribeKey of a key whose row and material summary are cached reads nothing from the
/// store, for generated and for imported material, and a rotation, an import or a deletion of
/// imported material shows at once (the writes replace the cached entry; the coherence across
/// nodes is `tests/multi_node.rs`).
#[tokio::test]
async fn describe_key_of_a_cached_key_makes_no_store_call() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let before = common::store_calls(&srv);
    let created = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    assert!(common::store_calls(&srv) > before, "CreateKey is a write");
    let key = created.key_id().to_string();
    let first = created.current_key_material_id().unwrap().to_string();
    if common::store() == "sqlite" {
        // CreateKey cached the row with its summary: the first DescribeKey reads nothing.
        let (md, calls) = common::describe_counting(&srv, &kms, &key).await;
        assert_eq!(calls, 0);
        assert_eq!(md.current_key_material_id(), Some(first.as_str()));
    }
    let md = common::describe_from_cache(&srv, &kms, &key).await;
    assert_eq!(md.current_key_material_id(), Some(first.as_str()));

    let second = rotate_now(&kms, &key).await;
    assert_ne!(second, first);
    let md = common::describe_from_cache(&srv, &kms, &key).await;
    assert_eq!(md.current_key_material_id(), Some(second.as_str()));

    // Imported material: the summary reads every material row; cached the same way.
    let dir = tempfile::tempdir().unwrap();
    let ext = external_key(
        &kms,
        KeySpec::SymmetricDefault,
        KeyUsageType::EncryptDecrypt,
    )
    .await;
    let md = common::describe_from_cache(&srv, &kms, &ext).await;
    assert_eq!(md.current_key_material_id(), None);
    assert_eq!(md.expiration_model(), None);
    let material = make_material(dir.path(), &KeySpec::SymmetricDefault);
    let id = import(
        &kms,
        dir.path(),
        &ext,
        AlgorithmSpec::RsaesOaepSha1,
        WrappingKeySpec::Rsa2048,
        &material,
    )
    .await
    .unwrap();
    let md = describe(&kms, &ext).await;
    assert_eq!(md.key_state(), Some(&KeyState::Enabled));
    assert_eq!(md.current_key_material_id(), Some(id.as_str()));
    assert_eq!(
        md.expiration_model(),
        Some(&ExpirationModelType::KeyMaterialDoesNotExpire)
    );
    assert_eq!(common::describe_from_cache(&srv, &kms, &ext).await, md);
    kms.delete_imported_key_material()
        .key_id(&ext)
        .send()
        .await
        .unwrap();
    let md = common::describe_from_cache(&srv, &kms, &ext).await;
    assert_eq!(md.key_state(), Some(&KeyState::PendingImport));
}

/// A store failure while reading the key material fails DescribeKey with
/// `KMSInternalException` (500) instead of answering metadata without `CurrentKeyMaterialId`;
/// the failure is made by renaming the material table under the running server.
#[tokio::test]
async fn describe_key_fails_when_the_key_material_cannot_be_read() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let key = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id()
        .to_string();
    // A rotation leaves the new row version without a cached summary.
    kms.rotate_key_on_demand()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    let rename = |from: &str, to: &str| {
        let sql = format!("ALTER TABLE {from} RENAME TO {to}");
        match common::pg::url_of(&srv.env) {
            Some(url) => {
                common::pg::psql(&url, &sql);
            }
            None => {
                let db = rusqlite::Connection::open(srv.data_dir.path().join("kms.sqlite3"));
                db.unwrap().execute_batch(&sql).unwrap();
            }
        }
    };
    rename("key_material", "key_material_away");
    let e = kms.describe_key().key_id(&key).send().await.unwrap_err();
    rename("key_material_away", "key_material");
    assert_eq!(common::code(&e), "KMSInternalException");
    assert_eq!(e.raw_response().expect("a response").status().as_u16(), 500);
    let md = describe(&kms, &key).await;
    assert!(is_material_id(md.current_key_material_id().unwrap()));
}
