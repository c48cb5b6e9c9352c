#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use aws_sdk_kms::primitives::Blob;

#[tokio::test]
async fn create_encrypt_decrypt_round_trip() {
    let srv = common::TestServer::start().await;
    let kms = srv.client();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let ct = kms
        .encrypt()
        .key_id(key.key_id())
        .plaintext(Blob::new(b"hello".to_vec()))
        .encryption_context("purpose", "test")
        .send()
        .await
        .unwrap();
    let pt = kms
        .decrypt()
        .ciphertext_blob(ct.ciphertext_blob.unwrap())
        .encryption_context("purpose", "test")
        .send()
        .await
        .unwrap();
    assert_eq!(pt.plaintext.unwrap().as_ref(), b"hello");
    assert_eq!(pt.key_id.unwrap(), key.arn.unwrap());
}
