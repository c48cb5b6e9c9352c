//! Symmetric cryptography through the real `aws-sdk-kms` client: Encrypt limits, Decrypt with
//! and without KeyId, encryption context binding, key separation, ReEncrypt, data keys,
//! GenerateRandom, DryRun, and tampered ciphertext.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, DryRunModifierType, EncryptionAlgorithmSpec};

const ACCOUNT: &str = "111122223333";
const DRY_RUN_MESSAGE: &str = "The request would have succeeded, but the DryRun option is set.";
const INCORRECT_KEY_MESSAGE: &str =
    "The key ID in the request does not identify a CMK that can perform this operation.";

async fn encrypt(
    kms: &aws_sdk_kms::Client,
    key: &str,
    plaintext: &[u8],
    context: &[(&str, &str)],
) -> Vec<u8> {
    let mut req = kms
        .encrypt()
        .key_id(key)
        .plaintext(Blob::new(plaintext.to_vec()));
    for (k, v) in context {
        req = req.encryption_context(*k, *v);
    }
    req.send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap()
        .into_inner()
}

/// Decrypts without KeyId; returns the plaintext or the error code.
async fn decrypt(
    kms: &aws_sdk_kms::Client,
    blob: &[u8],
    context: &[(&str, &str)],
) -> Result<Vec<u8>, String> {
    let mut req = kms.decrypt().ciphertext_blob(Blob::new(blob.to_vec()));
    for (k, v) in context {
        req = req.encryption_context(*k, *v);
    }
    match req.send().await {
        Ok(out) => Ok(out.plaintext.unwrap().into_inner()),
        Err(e) => Err(common::code(&e)),
    }
}

#[tokio::test]
async fn encrypt_accepts_up_to_4096_bytes() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, arn) = common::new_key(&kms).await;

    let big: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
    let out = kms
        .encrypt()
        .key_id(&id)
        .plaintext(Blob::new(big.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.key_id(), Some(arn.as_str()));
    assert_eq!(
        out.encryption_algorithm(),
        Some(&EncryptionAlgorithmSpec::SymmetricDefault)
    );
    let blob = out.ciphertext_blob.unwrap().into_inner();
    assert!(blob.len() > big.len());
    assert_eq!(decrypt(&kms, &blob, &[]).await.unwrap(), big);

    // One byte more is a ValidationException that never echoes the plaintext.
    let (c, m) = common::fail(
        kms.encrypt()
            .key_id(&id)
            .plaintext(Blob::new(vec![7u8; 4097]))
            .send()
            .await,
    );
    assert_eq!(c, "ValidationException");
    assert_eq!(
        m,
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: \
         Member must have length less than or equal to 4096"
    );

    // A single byte works, an empty plaintext does not.
    let one = encrypt(&kms, &id, b"x", &[]).await;
    assert_eq!(decrypt(&kms, &one, &[]).await.unwrap(), b"x");
    let (c, m) = common::fail(
        kms.encrypt()
            .key_id(&id)
            .plaintext(Blob::new(Vec::new()))
            .send()
            .await,
    );
    assert_eq!(c, "ValidationException");
    assert_eq!(
        m,
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: \
         Member must have length greater than or equal to 1"
    );

    // Unsupported algorithm for a symmetric key.
    let (c, _) = common::fail(
        kms.encrypt()
            .key_id(&id)
            .plaintext(Blob::new(b"x".to_vec()))
            .encryption_algorithm(EncryptionAlgorithmSpec::RsaesOaepSha256)
            .send()
            .await,
    );
    assert_eq!(c, "InvalidKeyUsageException");
}

#[tokio::test]
async fn each_encryption_is_fresh() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, _) = common::new_key(&kms).await;
    let a = encrypt(&kms, &id, b"same", &[]).await;
    let b = encrypt(&kms, &id, b"same", &[]).await;
    assert_ne!(a, b, "two encryptions of the same plaintext must differ");
    assert_eq!(decrypt(&kms, &a, &[]).await.unwrap(), b"same");
    assert_eq!(decrypt(&kms, &b, &[]).await.unwrap(), b"same");
}

#[tokio::test]
async fn decrypt_with_and_without_key_id() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, arn) = common::new_key(&kms).await;
    kms.create_alias()
        .alias_name("alias/crypto")
        .target_key_id(&id)
        .send()
        .await
        .unwrap();
    // Encrypt by alias name and alias ARN as well.
    let alias_arn = format!("arn:aws:kms:us-east-1:{ACCOUNT}:alias/crypto");
    for enc_by in [
        id.as_str(),
        arn.as_str(),
        "alias/crypto",
        alias_arn.as_str(),
    ] {
        let blob = encrypt(&kms, enc_by, b"secret", &[]).await;
        // No KeyId: the blob names its key.
        let out = kms
            .decrypt()
            .ciphertext_blob(Blob::new(blob.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(out.key_id(), Some(arn.as_str()));
        assert_eq!(out.plaintext.as_ref().unwrap().as_ref(), b"secret");
        assert_eq!(
            out.encryption_algorithm(),
            Some(&EncryptionAlgorithmSpec::SymmetricDefault)
        );
        // Every identifier form of the right key works as KeyId.
        for dec_by in [
            id.as_str(),
            arn.as_str(),
            "alias/crypto",
            alias_arn.as_str(),
        ] {
            let out = kms
                .decrypt()
                .ciphertext_blob(Blob::new(blob.clone()))
                .key_id(dec_by)
                .send()
                .await
                .unwrap();
            assert_eq!(out.key_id(), Some(arn.as_str()));
            assert_eq!(out.plaintext.unwrap().as_ref(), b"secret", "{dec_by}");
        }
    }
}

#[tokio::test]
async fn decrypt_naming_another_key_is_incorrect_key() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (a, _) = common::new_key(&kms).await;
    let (b, b_arn) = common::new_key(&kms).await;
    kms.create_alias()
        .alias_name("alias/b")
        .target_key_id(&b)
        .send()
        .await
        .unwrap();
    let blob = encrypt(&kms, &a, b"for a", &[]).await;
    for other in [b.as_str(), b_arn.as_str(), "alias/b"] {
        let (c, m) = common::fail(
            kms.decrypt()
                .ciphertext_blob(Blob::new(blob.clone()))
                .key_id(other)
                .send()
                .await,
        );
        assert_eq!(c, "IncorrectKeyException", "{other}");
        assert_eq!(m, INCORRECT_KEY_MESSAGE);
    }
    // A KeyId that does not exist is NotFound, not IncorrectKey.
    let (c, _) = common::fail(
        kms.decrypt()
            .ciphertext_blob(Blob::new(blob.clone()))
            .key_id("alias/nothing-here")
            .send()
            .await,
    );
    assert_eq!(c, "NotFoundException");
}

#[tokio::test]
async fn ciphertext_of_key_a_never_decrypts_under_key_b() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (a, _) = common::new_key(&kms).await;
    let (b, _) = common::new_key(&kms).await;
    let blob = encrypt(&kms, &a, b"only a", &[]).await;
    // Rewrite the key id the blob names (docs/ciphertext-format.md: byte 1 is its length, the
    // id follows) to B's: B's material cannot open it.
    let n = blob[1] as usize;
    assert_eq!(&blob[2..2 + n], a.as_bytes());
    let mut forged = blob.clone();
    forged[2..2 + n].copy_from_slice(b.as_bytes());
    assert_eq!(
        decrypt(&kms, &forged, &[]).await,
        Err("InvalidCiphertextException".into())
    );
    let (c, m) = common::fail(
        kms.decrypt()
            .ciphertext_blob(Blob::new(forged))
            .key_id(&b)
            .send()
            .await,
    );
    assert_eq!(c, "InvalidCiphertextException");
    assert_eq!(m, "");
    // ReEncrypt naming B as the source fails the same way as Decrypt.
    let (c, m) = common::fail(
        kms.re_encrypt()
            .ciphertext_blob(Blob::new(blob.clone()))
            .source_key_id(&b)
            .destination_key_id(&b)
            .send()
            .await,
    );
    assert_eq!(c, "IncorrectKeyException");
    assert_eq!(m, INCORRECT_KEY_MESSAGE);
    // The original still decrypts under A.
    assert_eq!(decrypt(&kms, &blob, &[]).await.unwrap(), b"only a");
}

#[tokio::test]
async fn encryption_context_is_bound_exactly() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, _) = common::new_key(&kms).await;
    let ctx = [
        ("Department", "Finance"),
        ("purpose", "payroll"),
        ("year", "2024"),
        ("a", "1"),
        ("b", "2"),
    ];
    let blob = encrypt(&kms, &id, b"bound", &ctx).await;

    // Exact match, in any order.
    assert_eq!(decrypt(&kms, &blob, &ctx).await.unwrap(), b"bound");
    let mut reversed = ctx;
    reversed.reverse();
    assert_eq!(decrypt(&kms, &blob, &reversed).await.unwrap(), b"bound");

    let invalid = Err("InvalidCiphertextException".to_string());
    // Missing entirely.
    assert_eq!(decrypt(&kms, &blob, &[]).await, invalid);
    // A subset.
    assert_eq!(decrypt(&kms, &blob, &ctx[..4]).await, invalid);
    // A superset.
    let mut more = ctx.to_vec();
    more.push(("extra", "x"));
    assert_eq!(decrypt(&kms, &blob, &more).await, invalid);
    // Different value.
    let mut changed = ctx;
    changed[2] = ("year", "2025");
    assert_eq!(decrypt(&kms, &blob, &changed).await, invalid);
    // Case differs in a key, then in a value.
    let mut key_case = ctx;
    key_case[0] = ("department", "Finance");
    assert_eq!(decrypt(&kms, &blob, &key_case).await, invalid);
    let mut value_case = ctx;
    value_case[0] = ("Department", "finance");
    assert_eq!(decrypt(&kms, &blob, &value_case).await, invalid);

    // A blob made without context does not decrypt with one.
    let plain = encrypt(&kms, &id, b"no context", &[]).await;
    assert_eq!(decrypt(&kms, &plain, &[("a", "1")]).await, invalid);
    assert_eq!(decrypt(&kms, &plain, &[]).await.unwrap(), b"no context");

    // The failure carries no message (AWS sends none).
    let (c, m) = common::fail(
        kms.decrypt()
            .ciphertext_blob(Blob::new(blob))
            .encryption_context("Department", "Finance")
            .send()
            .await,
    );
    assert_eq!(c, "InvalidCiphertextException");
    assert_eq!(m, "");
}

#[tokio::test]
async fn re_encrypt_between_keys_with_contexts() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (a, a_arn) = common::new_key(&kms).await;
    let (b, b_arn) = common::new_key(&kms).await;
    kms.create_alias()
        .alias_name("alias/dest")
        .target_key_id(&b)
        .send()
        .await
        .unwrap();
    let blob = encrypt(&kms, &a, b"moving", &[("from", "a")]).await;

    let out = kms
        .re_encrypt()
        .ciphertext_blob(Blob::new(blob.clone()))
        .source_encryption_context("from", "a")
        .destination_key_id("alias/dest")
        .destination_encryption_context("to", "b")
        .send()
        .await
        .unwrap();
    assert_eq!(out.source_key_id(), Some(a_arn.as_str()));
    assert_eq!(out.key_id(), Some(b_arn.as_str()));
    assert_eq!(
        out.source_encryption_algorithm(),
        Some(&EncryptionAlgorithmSpec::SymmetricDefault)
    );
    assert_eq!(
        out.destination_encryption_algorithm(),
        Some(&EncryptionAlgorithmSpec::SymmetricDefault)
    );
    let moved = out.ciphertext_blob.unwrap().into_inner();
    // The new blob is B's, bound to the destination context only.
    let dec = kms
        .decrypt()
        .ciphertext_blob(Blob::new(moved.clone()))
        .encryption_context("to", "b")
        .send()
        .await
        .unwrap();
    assert_eq!(dec.key_id(), Some(b_arn.as_str()));
    assert_eq!(dec.plaintext.unwrap().as_ref(), b"moving");
    assert_eq!(
        decrypt(&kms, &moved, &[("from", "a")]).await,
        Err("InvalidCiphertextException".into())
    );
    let (c, _) = common::fail(
        kms.decrypt()
            .ciphertext_blob(Blob::new(moved))
            .key_id(&a)
            .encryption_context("to", "b")
            .send()
            .await,
    );
    assert_eq!(c, "IncorrectKeyException");

    // With an explicit SourceKeyId, to the same key, changing only the context.
    let out = kms
        .re_encrypt()
        .ciphertext_blob(Blob::new(blob.clone()))
        .source_key_id(&a_arn)
        .source_encryption_context("from", "a")
        .destination_key_id(&a)
        .send()
        .await
        .unwrap();
    assert_eq!(out.source_key_id(), Some(a_arn.as_str()));
    assert_eq!(out.key_id(), Some(a_arn.as_str()));
    let again = out.ciphertext_blob.unwrap().into_inner();
    assert_eq!(decrypt(&kms, &again, &[]).await.unwrap(), b"moving");

    // A wrong source context fails like Decrypt.
    let (c, _) = common::fail(
        kms.re_encrypt()
            .ciphertext_blob(Blob::new(blob))
            .source_encryption_context("from", "b")
            .destination_key_id(&b)
            .send()
            .await,
    );
    assert_eq!(c, "InvalidCiphertextException");
}

#[tokio::test]
async fn generate_data_key_specs_and_lengths() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, arn) = common::new_key(&kms).await;

    for (spec, len) in [(DataKeySpec::Aes256, 32), (DataKeySpec::Aes128, 16)] {
        let out = kms
            .generate_data_key()
            .key_id(&id)
            .key_spec(spec.clone())
            .encryption_context("use", "dek")
            .send()
            .await
            .unwrap();
        assert_eq!(out.key_id(), Some(arn.as_str()));
        let pt = out.plaintext.unwrap().into_inner();
        assert_eq!(pt.len(), len, "{spec:?}");
        let blob = out.ciphertext_blob.unwrap().into_inner();
        assert_eq!(decrypt(&kms, &blob, &[("use", "dek")]).await.unwrap(), pt);
        assert_eq!(
            decrypt(&kms, &blob, &[]).await,
            Err("InvalidCiphertextException".into())
        );
    }

    for n in [1, 64, 1024] {
        let out = kms
            .generate_data_key()
            .key_id(&id)
            .number_of_bytes(n)
            .send()
            .await
            .unwrap();
        let pt = out.plaintext.unwrap().into_inner();
        assert_eq!(pt.len(), n as usize);
        let blob = out.ciphertext_blob.unwrap().into_inner();
        assert_eq!(decrypt(&kms, &blob, &[]).await.unwrap(), pt);
    }

    // Two data keys differ.
    let k1 = kms
        .generate_data_key()
        .key_id(&id)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .unwrap()
        .plaintext
        .unwrap();
    let k2 = kms
        .generate_data_key()
        .key_id(&id)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .unwrap()
        .plaintext
        .unwrap();
    assert_ne!(k1, k2);
}

#[tokio::test]
async fn generate_data_key_validation() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, _) = common::new_key(&kms).await;
    let either = "Please specify either number of bytes or key spec.";

    let (c, m) = common::fail(
        kms.generate_data_key()
            .key_id(&id)
            .key_spec(DataKeySpec::Aes256)
            .number_of_bytes(32)
            .send()
            .await,
    );
    assert_eq!((c.as_str(), m.as_str()), ("ValidationException", either));
    let (c, m) = common::fail(kms.generate_data_key().key_id(&id).send().await);
    assert_eq!((c.as_str(), m.as_str()), ("ValidationException", either));
    let (c, m) = common::fail(
        kms.generate_data_key_without_plaintext()
            .key_id(&id)
            .key_spec(DataKeySpec::Aes128)
            .number_of_bytes(16)
            .send()
            .await,
    );
    assert_eq!((c.as_str(), m.as_str()), ("ValidationException", either));
    let (c, m) = common::fail(
        kms.generate_data_key_without_plaintext()
            .key_id(&id)
            .send()
            .await,
    );
    assert_eq!((c.as_str(), m.as_str()), ("ValidationException", either));

    let (c, m) = common::fail(
        kms.generate_data_key()
            .key_id(&id)
            .number_of_bytes(0)
            .send()
            .await,
    );
    assert_eq!(c, "ValidationException");
    assert_eq!(
        m,
        "1 validation error detected: Value '0' at 'numberOfBytes' failed to satisfy \
         constraint: Member must have value greater than or equal to 1"
    );
    let (c, m) = common::fail(
        kms.generate_data_key()
            .key_id(&id)
            .number_of_bytes(1025)
            .send()
            .await,
    );
    assert_eq!(c, "ValidationException");
    assert_eq!(
        m,
        "1 validation error detected: Value '1025' at 'numberOfBytes' failed to satisfy \
         constraint: Member must have value less than or equal to 1024"
    );
    let (c, m) = common::fail(
        kms.generate_data_key()
            .key_id(&id)
            .key_spec(DataKeySpec::from("AES_512"))
            .send()
            .await,
    );
    assert_eq!(c, "ValidationException");
    assert_eq!(
        m,
        "1 validation error detected: Value 'AES_512' at 'keySpec' failed to satisfy \
         constraint: Member must satisfy enum value set: [AES_256, AES_128]"
    );
}

#[tokio::test]
async fn generate_data_key_without_plaintext() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, arn) = common::new_key(&kms).await;
    kms.create_alias()
        .alias_name("alias/dek")
        .target_key_id(&id)
        .send()
        .await
        .unwrap();
    let out = kms
        .generate_data_key_without_plaintext()
        .key_id("alias/dek")
        .key_spec(DataKeySpec::Aes256)
        .encryption_context("k", "v")
        .send()
        .await
        .unwrap();
    assert_eq!(out.key_id(), Some(arn.as_str()));
    let blob = out.ciphertext_blob.unwrap().into_inner();
    let pt = decrypt(&kms, &blob, &[("k", "v")]).await.unwrap();
    assert_eq!(pt.len(), 32);

    let out = kms
        .generate_data_key_without_plaintext()
        .key_id(&id)
        .number_of_bytes(1024)
        .send()
        .await
        .unwrap();
    let blob = out.ciphertext_blob.unwrap().into_inner();
    assert_eq!(decrypt(&kms, &blob, &[]).await.unwrap().len(), 1024);
}

#[tokio::test]
async fn generate_random_lengths() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    for n in [1, 32, 1024] {
        let out = kms
            .generate_random()
            .number_of_bytes(n)
            .send()
            .await
            .unwrap();
        assert_eq!(out.plaintext.unwrap().as_ref().len(), n as usize);
    }
    let a = kms
        .generate_random()
        .number_of_bytes(32)
        .send()
        .await
        .unwrap();
    let b = kms
        .generate_random()
        .number_of_bytes(32)
        .send()
        .await
        .unwrap();
    assert_ne!(a.plaintext, b.plaintext);

    let (c, m) = common::fail(kms.generate_random().number_of_bytes(0).send().await);
    assert_eq!(c, "ValidationException");
    assert_eq!(
        m,
        "1 validation error detected: Value '0' at 'numberOfBytes' failed to satisfy \
         constraint: Member must have value greater than or equal to 1"
    );
    let (c, m) = common::fail(kms.generate_random().number_of_bytes(1025).send().await);
    assert_eq!(c, "ValidationException");
    assert_eq!(
        m,
        "1 validation error detected: Value '1025' at 'numberOfBytes' failed to satisfy \
         constraint: Member must have value less than or equal to 1024"
    );
}

/// `CiphertextBlob` is optional in AWS's model: a dry run with `IGNORE_CIPHERTEXT` checks the
/// authorization and the key without one (docs/errors.md).
#[tokio::test]
async fn dry_run_ignoring_the_ciphertext() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, _) = common::new_key(&kms).await;
    let (other, _) = common::new_key(&kms).await;
    let ignore = DryRunModifierType::IgnoreCiphertext;

    // No ciphertext, or one that is not a ciphertext at all: only the key is checked.
    for blob in [None, Some(vec![7u8; 40])] {
        let (c, m) = common::fail(
            kms.decrypt()
                .set_ciphertext_blob(blob.clone().map(Blob::new))
                .key_id(&id)
                .dry_run(true)
                .dry_run_modifiers(ignore.clone())
                .send()
                .await,
        );
        assert_eq!(
            (c.as_str(), m.as_str()),
            ("DryRunOperationException", DRY_RUN_MESSAGE)
        );
        let (c, m) = common::fail(
            kms.re_encrypt()
                .set_ciphertext_blob(blob.map(Blob::new))
                .source_key_id(&id)
                .destination_key_id(&other)
                .dry_run(true)
                .dry_run_modifiers(ignore.clone())
                .send()
                .await,
        );
        assert_eq!(
            (c.as_str(), m.as_str()),
            ("DryRunOperationException", DRY_RUN_MESSAGE)
        );
    }
    // The key is still checked: a disabled key would not have worked.
    kms.disable_key().key_id(&other).send().await.unwrap();
    let (c, _) = common::fail(
        kms.decrypt()
            .key_id(&other)
            .dry_run(true)
            .dry_run_modifiers(ignore.clone())
            .send()
            .await,
    );
    assert_eq!(c, "DisabledException");
    let (c, _) = common::fail(
        kms.re_encrypt()
            .source_key_id(&id)
            .destination_key_id(&other)
            .dry_run(true)
            .dry_run_modifiers(ignore.clone())
            .send()
            .await,
    );
    assert_eq!(c, "DisabledException");
    // Without DryRun the modifier does nothing: the ciphertext is required.
    let (c, m) = common::fail(
        kms.decrypt()
            .key_id(&id)
            .dry_run_modifiers(ignore.clone())
            .send()
            .await,
    );
    assert_eq!(
        (c.as_str(), m.as_str()),
        (
            "ValidationException",
            "1 validation error detected: Value null at 'ciphertextBlob' failed to satisfy \
             constraint: Member must not be null"
        )
    );
    // Neither a key nor a ciphertext: nothing to check.
    let (c, _) = common::fail(
        kms.decrypt()
            .dry_run(true)
            .dry_run_modifiers(ignore)
            .send()
            .await,
    );
    assert_eq!(c, "ValidationException");
    let (c, m) = common::fail(
        kms.decrypt()
            .ciphertext_blob(Blob::new(vec![7u8; 40]))
            .key_id(&id)
            .dry_run(true)
            .dry_run_modifiers(DryRunModifierType::from("IGNORE_EVERYTHING"))
            .send()
            .await,
    );
    assert_eq!(
        (c.as_str(), m.as_str()),
        (
            "ValidationException",
            "1 validation error detected: Value '[IGNORE_EVERYTHING]' at 'dryRunModifiers' \
             failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy \
             enum value set: [IGNORE_CIPHERTEXT]]"
        )
    );
}

#[tokio::test]
async fn dry_run_never_performs_the_operation() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, _) = common::new_key(&kms).await;
    let (other, _) = common::new_key(&kms).await;
    let blob = encrypt(&kms, &id, b"dry", &[]).await;

    let (c, m) = common::fail(
        kms.encrypt()
            .key_id(&id)
            .plaintext(Blob::new(b"dry".to_vec()))
            .dry_run(true)
            .send()
            .await,
    );
    assert_eq!(
        (c.as_str(), m.as_str()),
        ("DryRunOperationException", DRY_RUN_MESSAGE)
    );

    let (c, m) = common::fail(
        kms.decrypt()
            .ciphertext_blob(Blob::new(blob.clone()))
            .dry_run(true)
            .send()
            .await,
    );
    assert_eq!(
        (c.as_str(), m.as_str()),
        ("DryRunOperationException", DRY_RUN_MESSAGE)
    );

    let (c, m) = common::fail(
        kms.re_encrypt()
            .ciphertext_blob(Blob::new(blob.clone()))
            .destination_key_id(&other)
            .dry_run(true)
            .send()
            .await,
    );
    assert_eq!(
        (c.as_str(), m.as_str()),
        ("DryRunOperationException", DRY_RUN_MESSAGE)
    );

    let (c, m) = common::fail(
        kms.generate_data_key()
            .key_id(&id)
            .key_spec(DataKeySpec::Aes256)
            .dry_run(true)
            .send()
            .await,
    );
    assert_eq!(
        (c.as_str(), m.as_str()),
        ("DryRunOperationException", DRY_RUN_MESSAGE)
    );

    let (c, m) = common::fail(
        kms.generate_data_key_without_plaintext()
            .key_id(&id)
            .number_of_bytes(16)
            .dry_run(true)
            .send()
            .await,
    );
    assert_eq!(
        (c.as_str(), m.as_str()),
        ("DryRunOperationException", DRY_RUN_MESSAGE)
    );

    // A DryRun with bad parameters is a ValidationException, not a DryRunOperationException.
    let (c, _) = common::fail(
        kms.encrypt()
            .key_id(&id)
            .plaintext(Blob::new(vec![0u8; 4097]))
            .dry_run(true)
            .send()
            .await,
    );
    assert_eq!(c, "ValidationException");
    let (c, _) = common::fail(
        kms.generate_data_key()
            .key_id(&id)
            .dry_run(true)
            .send()
            .await,
    );
    assert_eq!(c, "ValidationException");
    // A DryRun decrypt with the wrong key would not have succeeded.
    let (c, _) = common::fail(
        kms.decrypt()
            .ciphertext_blob(Blob::new(blob.clone()))
            .key_id(&other)
            .dry_run(true)
            .send()
            .await,
    );
    assert_eq!(c, "IncorrectKeyException");

    // DryRun false behaves normally.
    let out = kms
        .decrypt()
        .ciphertext_blob(Blob::new(blob))
        .dry_run(false)
        .send()
        .await
        .unwrap();
    assert_eq!(out.plaintext.unwrap().as_ref(), b"dry");
}

#[tokio::test]
async fn tampered_ciphertext_is_invalid() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let (id, _) = common::new_key(&kms).await;
    let blob = encrypt(&kms, &id, b"do not touch", &[("c", "d")]).await;
    let invalid = Err("InvalidCiphertextException".to_string());

    // Flip the last byte (GCM tag), a body byte, and the material version.
    let n = blob[1] as usize;
    for pos in [blob.len() - 1, blob.len() - 20, 2 + n + 3] {
        let mut t = blob.clone();
        t[pos] ^= 0x01;
        assert_eq!(
            decrypt(&kms, &t, &[("c", "d")]).await,
            invalid,
            "byte {pos}"
        );
        let (c, m) = common::fail(
            kms.decrypt()
                .ciphertext_blob(Blob::new(t))
                .key_id(&id)
                .encryption_context("c", "d")
                .send()
                .await,
        );
        assert_eq!(c, "InvalidCiphertextException", "byte {pos}");
        assert_eq!(m, "");
    }
    // Truncated, extended, and garbage blobs.
    assert_eq!(
        decrypt(&kms, &blob[..blob.len() - 1], &[("c", "d")]).await,
        invalid
    );
    let mut longer = blob.clone();
    longer.push(0);
    assert_eq!(decrypt(&kms, &longer, &[("c", "d")]).await, invalid);
    assert_eq!(decrypt(&kms, &[1, 2, 3, 4], &[]).await, invalid);
    assert_eq!(decrypt(&kms, &[0u8; 200], &[]).await, invalid);
    let (c, _) = common::fail(
        kms.decrypt()
            .ciphertext_blob(Blob::new(vec![0u8; 200]))
            .key_id(&id)
            .send()
            .await,
    );
    assert_eq!(c, "InvalidCiphertextException");
    // Tampered input to ReEncrypt too.
    let mut t = blob.clone();
    let last = t.len() - 1;
    t[last] ^= 0x80;
    let (c, _) = common::fail(
        kms.re_encrypt()
            .ciphertext_blob(Blob::new(t))
            .source_encryption_context("c", "d")
            .destination_key_id(&id)
            .send()
            .await,
    );
    assert_eq!(c, "InvalidCiphertextException");
    // The untouched blob is fine.
    assert_eq!(
        decrypt(&kms, &blob, &[("c", "d")]).await.unwrap(),
        b"do not touch"
    );
}

/// A root key cache of two versions (`[server] key_cache_entries`) with five keys used
/// round-robin: evicted versions are loaded again and every request works (both roots; the
/// PKCS#11 root's object count is checked in `pkcs11_root.rs`).
#[tokio::test]
async fn a_tiny_key_cache_still_serves_every_key() {
    let mut env = common::backend_env();
    env.push(("KMS_SERVER__KEY_CACHE_ENTRIES".into(), "2".into()));
    env.push(("KMS_SERVER__METADATA_CACHE_ENTRIES".into(), "2".into()));
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
                .key_id
                .to_string(),
        );
    }
    for round in 0..3u8 {
        for (i, id) in keys.iter().enumerate() {
            let ct = kms
                .encrypt()
                .key_id(id)
                .plaintext(aws_sdk_kms::primitives::Blob::new(vec![round, i as u8]))
                .send()
                .await
                .unwrap()
                .ciphertext_blob
                .unwrap();
            let out = kms.decrypt().ciphertext_blob(ct).send().await.unwrap();
            assert_eq!(
                out.key_id.as_deref().map(|a| a.ends_with(id.as_str())),
                Some(true)
            );
            assert_eq!(out.plaintext.unwrap().as_ref(), &[round, i as u8]);
        }
        // A change made through the small metadata cache is in force at once.
        kms.disable_key()
            .key_id(&keys[round as usize])
            .send()
            .await
            .unwrap();
        let e = kms
            .encrypt()
            .key_id(&keys[round as usize])
            .plaintext(aws_sdk_kms::primitives::Blob::new(vec![1]))
            .send()
            .await
            .unwrap_err();
        assert_eq!(common::code(&e), "DisabledException");
        kms.enable_key()
            .key_id(&keys[round as usize])
            .send()
            .await
            .unwrap();
    }
    // The metrics show the bounds held and the evictions.
    let svc = &srv.state.service;
    svc.refresh_cache_metrics();
    let text = svc.metrics().render();
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .expect("the metric is rendered")
    };
    assert_eq!(value("kms_cache_entries{cache=\"root_key_versions\"}"), 2.0);
    assert!(value("kms_cache_entries{cache=\"key_rows\"}") <= 2.0);
    assert!(value("kms_metadata_cache_evictions_total") > 0.0);
}
