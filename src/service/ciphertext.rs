//! The symmetric ciphertext blob (layout in `docs/ciphertext-format.md`).
//!
//! ```text
//! offset  size  field
//! 0       1     format version = 0x01
//! 1       1     key id length n (36 for a UUID key id)
//! 2       n     key id, ASCII
//! 2+n     4     key material version, big-endian u32
//! 6+n     12    AES-GCM IV
//! 18+n    m     AES-256-GCM ciphertext (m = plaintext length)
//! 18+n+m  16    GCM tag
//! ```
//!
//! AES-GCM AAD = `"kms-ciphertext-v1" || blob[0 .. 6+n] || canonical(encryption context)`, so
//! the key id, the material version and the encryption context are all authenticated: a blob
//! made by key A never decrypts under key B, and flipping any byte fails.
//!
//! Canonical encryption context: `u32 count`, then for each pair sorted by key bytes
//! `u32 len(key) || key || u32 len(value) || value` (all big-endian, UTF-8). Length prefixes
//! make the encoding unambiguous.

use std::collections::BTreeMap;

use crate::model::KeyId;

pub const VERSION: u8 = 1;
/// Version 2: a key of an external key store (double encryption, see `service::xks`).
pub const VERSION_XKS: u8 = 2;
const AAD_CONTEXT: &[u8] = b"kms-ciphertext-v1";
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The parsed header of a blob, borrowing its body.
pub struct ParsedBlob<'a> {
    /// Format version (the first byte).
    pub version: u8,
    pub key_id: KeyId,
    pub material_version: u32,
    pub iv: [u8; IV_LEN],
    pub header: &'a [u8],
    pub ciphertext_and_tag: &'a [u8],
}

/// Encryption context as a sorted map (its iteration order is the canonical order).
pub type EncryptionContext = BTreeMap<String, String>;

/// The blob header for a key id and material version.
pub fn header(key_id: &KeyId, material_version: u32) -> Vec<u8> {
    header_v(VERSION, key_id, material_version)
}

/// The blob header of a given format version.
pub fn header_v(version: u8, key_id: &KeyId, material_version: u32) -> Vec<u8> {
    let id = key_id.public().as_bytes();
    let mut h = Vec::with_capacity(6 + id.len());
    h.push(version);
    h.push(id.len() as u8);
    h.extend_from_slice(id);
    h.extend_from_slice(&material_version.to_be_bytes());
    h
}

/// AAD for a header and encryption context.
pub fn aad(header: &[u8], context: &EncryptionContext) -> Vec<u8> {
    let mut out = Vec::with_capacity(AAD_CONTEXT.len() + header.len() + 4 + context.len() * 24);
    out.extend_from_slice(AAD_CONTEXT);
    out.extend_from_slice(header);
    out.extend_from_slice(&(context.len() as u32).to_be_bytes());
    for (k, v) in context {
        out.extend_from_slice(&(k.len() as u32).to_be_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

/// Assembles a blob.
pub fn assemble(header: &[u8], iv: &[u8; IV_LEN], ciphertext_and_tag: &[u8]) -> Vec<u8> {
    let mut blob = Vec::with_capacity(header.len() + IV_LEN + ciphertext_and_tag.len());
    blob.extend_from_slice(header);
    blob.extend_from_slice(iv);
    blob.extend_from_slice(ciphertext_and_tag);
    blob
}

/// Parses a blob; `None` when it is not a well-formed version-1 blob.
pub fn parse(blob: &[u8]) -> Option<ParsedBlob<'_>> {
    if blob.len() < 2 || !(blob[0] == VERSION || blob[0] == VERSION_XKS) {
        return None;
    }
    let n = blob[1] as usize;
    let header_len = 2 + n + 4;
    if blob.len() < header_len + IV_LEN + TAG_LEN {
        return None;
    }
    let id = std::str::from_utf8(&blob[2..2 + n]).ok()?;
    let key_id = KeyId::parse(id)?;
    // Only the canonical (lower-case) spelling is ever written; anything else is tampering.
    if key_id.as_str() != id {
        return None;
    }
    let mut v = [0u8; 4];
    v.copy_from_slice(&blob[2 + n..header_len]);
    let mut iv = [0u8; IV_LEN];
    iv.copy_from_slice(&blob[header_len..header_len + IV_LEN]);
    Some(ParsedBlob {
        version: blob[0],
        key_id,
        material_version: u32::from_be_bytes(v),
        iv,
        header: &blob[..header_len],
        ciphertext_and_tag: &blob[header_len + IV_LEN..],
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn canonical_context_is_unambiguous() {
        let mut a = EncryptionContext::new();
        a.insert("ab".into(), "c".into());
        let mut b = EncryptionContext::new();
        b.insert("a".into(), "bc".into());
        assert_ne!(aad(b"h", &a), aad(b"h", &b));
    }

    #[test]
    fn header_round_trip() {
        let id = KeyId::generate();
        let h = header(&id, 7);
        let blob = assemble(&h, &[9u8; 12], &[1u8; 20]);
        let p = parse(&blob).unwrap();
        assert_eq!(p.key_id, id);
        assert_eq!(p.material_version, 7);
        assert_eq!(p.header, &h[..]);
        assert_eq!(p.ciphertext_and_tag.len(), 20);
    }
}
