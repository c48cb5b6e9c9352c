//! The KMS side of the XKS Proxy API: every response body a proxy may send (decoded as the
//! client decodes it), the error body and its name, and the Encrypt answer turned into a
//! version-2 envelope. An envelope that is made must read back to the same parts.
#![no_main]

use kms::service::xks::fuzzing;
use libfuzzer_sys::fuzz_target;
use xks_wire::{
    DecryptResponse, EncryptResponse, ErrorName, ErrorResponse, GetHealthStatusResponse,
    GetKeyMetadataResponse,
};

fuzz_target!(|data: &[u8]| {
    let Some((&len, body)) = data.split_first() else {
        return;
    };
    if let Ok(e) = serde_json::from_slice::<ErrorResponse>(body) {
        if let Some(name) = ErrorName::parse(&e.error_name) {
            assert_eq!(ErrorName::parse(name.as_str()), Some(name));
            let _ = (name.http_status(), name.retryable());
        }
        let clean = xks_wire::sanitize_error_message(&e.error_message.unwrap_or_default());
        assert!(clean.len() < xks_wire::MAX_ERROR_MESSAGE_LEN);
        assert!(
            clean.bytes().all(|b| (b' '..=b'~').contains(&b)),
            "{clean:?}"
        );
    }
    if let Ok(h) = serde_json::from_slice::<GetHealthStatusResponse>(body) {
        let _ = serde_json::to_vec(&h).unwrap();
    }
    if let Ok(m) = serde_json::from_slice::<GetKeyMetadataResponse>(body) {
        let _ = serde_json::to_vec(&m).unwrap();
    }
    if let Ok(d) = serde_json::from_slice::<DecryptResponse>(body) {
        let _ = d.plaintext.decode();
    }
    let inner_len = 16 + len as usize;
    if let Some(envelope) = fuzzing::encrypt_response_envelope(body, inner_len) {
        let out: EncryptResponse = serde_json::from_slice(body).unwrap();
        let fuzzing::OuterParts {
            iv,
            tag,
            metadata,
            ciphertext: ct,
        } = fuzzing::parse_outer(&envelope).expect("own envelope");
        assert_eq!(iv, out.initialization_vector.decode().unwrap().as_slice());
        assert_eq!(tag, out.authentication_tag.decode().unwrap().as_slice());
        assert_eq!(ct, out.ciphertext.decode().unwrap().as_slice());
        assert_eq!(ct.len(), inner_len);
        let cm = out
            .ciphertext_metadata
            .map(|m| m.decode().unwrap())
            .unwrap_or_default();
        assert_eq!(metadata, cm.as_slice());
    }
});
