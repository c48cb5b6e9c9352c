//! Decrypt of changed ciphertext blobs through the real router: the input is a list of edits
//! (truncate, extend, overwrite, xor at a position) applied to a fresh blob of each kind the
//! server makes (Encrypt, GenerateDataKey, a data key pair's private key). A changed blob must
//! never decrypt; an unchanged one must decrypt to its plaintext. Errors are AWS's.
#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kms_fuzz::{check_error_shape, Kms};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

struct Blob {
    ciphertext: Vec<u8>,
    plaintext: Vec<u8>,
    context: serde_json::Value,
}

fn blobs() -> &'static Vec<Blob> {
    static B: OnceLock<Vec<Blob>> = OnceLock::new();
    B.get_or_init(|| {
        let kms = Kms::get();
        let key = kms.ok("CreateKey", json!({}));
        let key_id = key["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
        let context = json!({"purpose": "fuzz", "n": "1"});
        let mut out = Vec::new();
        let pt = b"the plaintext of a fuzzed blob".to_vec();
        let enc = kms.ok(
            "Encrypt",
            json!({"KeyId": key_id, "Plaintext": B64.encode(&pt), "EncryptionContext": context}),
        );
        out.push(Blob {
            ciphertext: B64.decode(enc["CiphertextBlob"].as_str().unwrap()).unwrap(),
            plaintext: pt,
            context: context.clone(),
        });
        let dk = kms.ok(
            "GenerateDataKey",
            json!({"KeyId": key_id, "KeySpec": "AES_256"}),
        );
        out.push(Blob {
            ciphertext: B64.decode(dk["CiphertextBlob"].as_str().unwrap()).unwrap(),
            plaintext: B64.decode(dk["Plaintext"].as_str().unwrap()).unwrap(),
            context: json!({}),
        });
        let pair = kms.ok(
            "GenerateDataKeyPair",
            json!({"KeyId": key_id, "KeyPairSpec": "ECC_NIST_P256"}),
        );
        out.push(Blob {
            ciphertext: B64
                .decode(pair["PrivateKeyCiphertextBlob"].as_str().unwrap())
                .unwrap(),
            plaintext: B64
                .decode(pair["PrivateKeyPlaintext"].as_str().unwrap())
                .unwrap(),
            context: json!({}),
        });
        out
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, edits)) = data.split_first() else {
        return;
    };
    let all = blobs();
    let original = &all[pick as usize % all.len()];
    let mut blob = original.ciphertext.clone();
    for e in edits.chunks(3) {
        let [op, at, v] = [e[0], *e.get(1).unwrap_or(&0), *e.get(2).unwrap_or(&0)];
        let pos = (at as usize) % (blob.len() + 1);
        match op % 4 {
            0 => blob.truncate(pos),
            1 => blob.push(v),
            2 if pos < blob.len() => blob[pos] = v,
            3 if pos < blob.len() => blob[pos] ^= v,
            _ => {}
        }
    }
    let kms = Kms::get();
    let body = json!({"CiphertextBlob": B64.encode(&blob), "EncryptionContext": original.context})
        .to_string();
    let answer = kms.call("Decrypt", body.as_bytes());
    check_error_shape("Decrypt", body.as_bytes(), &answer);
    if blob == original.ciphertext {
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        let v = answer.json();
        assert_eq!(
            B64.decode(v["Plaintext"].as_str().unwrap()).unwrap(),
            original.plaintext
        );
    } else {
        assert_ne!(answer.status, 200, "a changed blob decrypted: {blob:02x?}");
        let ty = answer.json()["__type"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            ty == "InvalidCiphertextException" || ty == "ValidationException",
            "a changed blob gave {ty}"
        );
    }
});
