//! The ciphertext blob parsers, every version: the header of versions 1 and 2
//! (`service::ciphertext::parse`) and the outer envelope of version 2 (`service::xks`). Whatever
//! parses must be exactly what the writers would have produced: re-assembling the parts gives
//! the input back (so no two inputs parse to the same blob).
#![no_main]

use kms::service::ciphertext;
use kms::service::xks::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(p) = ciphertext::parse(data) {
        assert!(p.version == ciphertext::VERSION || p.version == ciphertext::VERSION_XKS);
        let header = ciphertext::header_v(p.version, &p.key_id, p.material_version);
        assert_eq!(header.as_slice(), p.header);
        let rebuilt = ciphertext::assemble(&header, &p.iv, p.ciphertext_and_tag);
        assert_eq!(rebuilt, data);
        assert!(p.ciphertext_and_tag.len() >= 16);
        if p.version == ciphertext::VERSION_XKS {
            outer(p.ciphertext_and_tag);
        }
    }
    outer(data);
});

fn outer(body: &[u8]) {
    if let Some(fuzzing::OuterParts {
        iv,
        tag,
        metadata,
        ciphertext: ct,
    }) = fuzzing::parse_outer(body)
    {
        assert!(iv.len() == 12 || iv.len() == 16);
        assert_eq!(tag.len(), 16);
        assert!(metadata.len() <= xks_wire::MAX_CIPHERTEXT_METADATA);
        assert!(ct.len() >= 16);
        let mut rebuilt = vec![iv.len() as u8];
        rebuilt.extend_from_slice(iv);
        rebuilt.extend_from_slice(tag);
        rebuilt.push(metadata.len() as u8);
        rebuilt.extend_from_slice(metadata);
        rebuilt.extend_from_slice(ct);
        assert_eq!(rebuilt, body);
    }
}
