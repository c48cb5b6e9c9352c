//! The byte formats between PKCS#11 and the KMS wire for the PKCS#11 root's non-symmetric keys
//! (`reference/key-types.md` §4.3, §4.5): DER SubjectPublicKeyInfo from the token's public
//! attributes (RSA modulus and exponent, EC point), ECDSA `r || s` -> DER, the DigestInfo
//! prefixes CKM_RSA_PKCS signs, the curve parameters of each EC spec, and EME-OAEP decoding
//! (RFC 8017 §7.1.2) for tokens that decrypt OAEP-SHA-256 only as raw RSA.
//!
//! Pure functions of public data, except [`oaep_decode`], which handles a decrypted padded
//! message: it works without branches on secret data as far as practical and answers one
//! error for every failure cause.

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

use crate::model::{HashAlg, KeySpec};

/// DER of `OBJECT IDENTIFIER rsaEncryption` (1.2.840.113549.1.1.1).
const OID_RSA_ENCRYPTION: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
/// DER of `NULL`.
const DER_NULL: &[u8] = &[0x05, 0x00];
/// DER of `OBJECT IDENTIFIER id-ecPublicKey` (1.2.840.10045.2.1).
const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/// The curve of an ECC spec: its DER OID (CKA_EC_PARAMS, namedCurve) and the byte length of
/// its field elements and of its group order (nLen).
#[derive(Debug, Clone, Copy)]
pub struct Curve {
    pub params: &'static [u8],
    pub field_len: usize,
    pub order_len: usize,
    pub name: &'static str,
}

/// The curve of an ECC key spec (`None` for other specs).
pub fn curve(spec: KeySpec) -> Option<Curve> {
    Some(match spec {
        KeySpec::EccNistP256 => Curve {
            params: &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
            field_len: 32,
            order_len: 32,
            name: "P-256",
        },
        KeySpec::EccNistP384 => Curve {
            params: &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22],
            field_len: 48,
            order_len: 48,
            name: "P-384",
        },
        KeySpec::EccNistP521 => Curve {
            params: &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23],
            field_len: 66,
            order_len: 66,
            name: "P-521",
        },
        KeySpec::EccSecgP256k1 => Curve {
            params: &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a],
            field_len: 32,
            order_len: 32,
            name: "secp256k1",
        },
        _ => return None,
    })
}

/// The DigestInfo prefix (RFC 8017 §9.2 note 1) that precedes a hash signed with CKM_RSA_PKCS.
pub fn digest_info_prefix(hash: HashAlg) -> Option<&'static [u8]> {
    Some(match hash {
        HashAlg::Sha256 => &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
        HashAlg::Sha384 => &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
        HashAlg::Sha512 => &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
        HashAlg::Sha1 | HashAlg::Sha224 => return None,
    })
}

/// A DER length.
fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// A DER TLV.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// A DER INTEGER from an unsigned big-endian number: minimal (leading zero bytes dropped), with
/// a 0x00 in front when the high bit is set.
fn unsigned_integer(be: &[u8]) -> Vec<u8> {
    let skip = be.iter().take_while(|b| **b == 0).count();
    let digits = &be[skip..];
    let mut content = Vec::with_capacity(digits.len() + 1);
    if digits.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(digits);
    tlv(0x02, &content)
}

/// `SubjectPublicKeyInfo { algorithm, BIT STRING key }`.
fn spki(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    let mut bits = Vec::with_capacity(key.len() + 1);
    bits.push(0); // no unused bits
    bits.extend_from_slice(key);
    let mut body = tlv(0x30, algorithm);
    body.extend_from_slice(&tlv(0x03, &bits));
    tlv(0x30, &body)
}

/// The SPKI of an RSA public key (rsaEncryption, NULL parameters) from CKA_MODULUS and
/// CKA_PUBLIC_EXPONENT (unsigned big-endian).
pub fn rsa_spki(modulus: &[u8], exponent: &[u8]) -> Option<Vec<u8>> {
    if modulus.iter().all(|b| *b == 0) || exponent.iter().all(|b| *b == 0) {
        return None;
    }
    let mut key = unsigned_integer(modulus);
    key.extend_from_slice(&unsigned_integer(exponent));
    let rsa_public_key = tlv(0x30, &key);
    let mut algorithm = OID_RSA_ENCRYPTION.to_vec();
    algorithm.extend_from_slice(DER_NULL);
    Some(spki(&algorithm, &rsa_public_key))
}

/// The uncompressed point `04 || X || Y` of CKA_EC_POINT, which is a DER OCTET STRING around
/// the point on most tokens and the bare point on some; `None` when it is neither, or not a
/// point of `curve`'s size.
pub fn ec_point(ec_point_attr: &[u8], curve: &Curve) -> Option<Vec<u8>> {
    let point_len = 1 + 2 * curve.field_len;
    let is_point = |p: &[u8]| p.len() == point_len && p[0] == 0x04;
    if is_point(ec_point_attr) {
        return Some(ec_point_attr.to_vec());
    }
    // OCTET STRING, short or long-form length.
    let (&tag, rest) = ec_point_attr.split_first()?;
    if tag != 0x04 {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 2 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, b| (a << 8) | *b as usize);
        (len, &rest[n..])
    };
    (len == rest.len() && is_point(rest)).then(|| rest.to_vec())
}

/// The SPKI of an EC public key (id-ecPublicKey with the named curve) from its point.
pub fn ec_spki(point: &[u8], curve: &Curve) -> Vec<u8> {
    let mut algorithm = OID_EC_PUBLIC_KEY.to_vec();
    algorithm.extend_from_slice(curve.params);
    spki(&algorithm, point)
}

/// A PKCS#11 ECDSA signature (`r || s`, each `order_len` bytes) as DER
/// `SEQUENCE { INTEGER r, INTEGER s }`; `None` when the length is not `2 * order_len`.
pub fn ecdsa_der(raw: &[u8], order_len: usize) -> Option<Vec<u8>> {
    if raw.len() != 2 * order_len {
        return None;
    }
    let (r, s) = raw.split_at(order_len);
    let mut body = unsigned_integer(r);
    body.extend_from_slice(&unsigned_integer(s));
    Some(tlv(0x30, &body))
}

fn digest_alg(hash: HashAlg) -> Option<&'static ring::digest::Algorithm> {
    match hash {
        HashAlg::Sha1 => Some(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY),
        HashAlg::Sha256 => Some(&ring::digest::SHA256),
        HashAlg::Sha384 => Some(&ring::digest::SHA384),
        HashAlg::Sha512 => Some(&ring::digest::SHA512),
        HashAlg::Sha224 => None,
    }
}

/// `mask ^= MGF1(seed)` (RFC 8017 B.2.1) over the whole of `mask`.
fn mgf1_xor(alg: &'static ring::digest::Algorithm, seed: &[u8], mask: &mut [u8]) {
    for (counter, chunk) in mask.chunks_mut(alg.output_len()).enumerate() {
        let mut ctx = ring::digest::Context::new(alg);
        ctx.update(seed);
        ctx.update(&(counter as u32).to_be_bytes());
        let block = ctx.finish();
        for (m, b) in chunk.iter_mut().zip(block.as_ref()) {
            *m ^= b;
        }
    }
}

/// EME-OAEP decoding (RFC 8017 §7.1.2 step 3) of `em`, the `k`-byte result of a raw RSA
/// decryption (`k` = modulus length), with an empty label and MGF1 over the same hash.
/// `None` for every kind of failure alike; the checks run without early returns.
pub fn oaep_decode(em: &[u8], k: usize, hash: HashAlg) -> Option<Zeroizing<Vec<u8>>> {
    let alg = digest_alg(hash)?;
    let h_len = alg.output_len();
    // Public facts: the sizes.
    if k < 2 * h_len + 2 || em.len() > k {
        return None;
    }
    // A raw decryption may drop leading zero bytes: put them back.
    let mut buf = Zeroizing::new(vec![0u8; k]);
    buf[k - em.len()..].copy_from_slice(em);
    let (y, rest) = buf.split_at_mut(1);
    let (masked_seed, masked_db) = rest.split_at_mut(h_len);
    mgf1_xor(alg, masked_db, masked_seed); // now the seed
    mgf1_xor(alg, masked_seed, masked_db); // now DB = lHash' || PS || 0x01 || M
    let l_hash = ring::digest::digest(alg, b"");
    let mut good: Choice = y[0].ct_eq(&0) & masked_db[..h_len].ct_eq(l_hash.as_ref());
    // Find the 0x01 after the zero padding, looking at every byte.
    let mut looking = Choice::from(1);
    let mut index: u32 = 0;
    for (i, b) in masked_db.iter().enumerate().skip(h_len) {
        let is_one = b.ct_eq(&1);
        let is_zero = b.ct_eq(&0);
        let found_here = looking & is_one;
        index.conditional_assign(&(i as u32), found_here);
        // A byte other than 0x00 before the 0x01 is a failure.
        good &= !(looking & !is_one & !is_zero);
        looking &= !is_one;
    }
    good &= !looking;
    if !bool::from(good) {
        return None;
    }
    Some(Zeroizing::new(masked_db[index as usize + 1..].to_vec()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_minimal_and_positive() {
        assert_eq!(unsigned_integer(&[0, 0, 0x12]), vec![0x02, 0x01, 0x12]);
        assert_eq!(unsigned_integer(&[0, 0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(unsigned_integer(&[0, 0]), vec![0x02, 0x01, 0x00]);
        assert_eq!(
            unsigned_integer(&[0x7f, 0xff]),
            vec![0x02, 0x02, 0x7f, 0xff]
        );
    }

    #[test]
    fn ecdsa_der_lengths() {
        // P-256 with both high bits set: 2 + (2 + 33) * 2 = 72 bytes.
        let raw = [0xffu8; 64];
        let der = ecdsa_der(&raw, 32).unwrap();
        assert_eq!(der.len(), 72);
        assert_eq!(&der[..4], &[0x30, 70, 0x02, 33]);
        // P-521 at full size: long-form SEQUENCE length (0x81), 139 bytes.
        let mut raw = vec![0x01u8; 132];
        raw[0] = 0x01;
        raw[66] = 0x01;
        let der = ecdsa_der(&raw, 66).unwrap();
        assert_eq!(der.len(), 139);
        assert_eq!(&der[..3], &[0x30, 0x81, 136]);
        // Leading zeros are dropped.
        let mut raw = vec![0u8; 64];
        raw[31] = 5;
        raw[63] = 7;
        assert_eq!(
            ecdsa_der(&raw, 32).unwrap(),
            vec![0x30, 6, 0x02, 1, 5, 0x02, 1, 7]
        );
        assert!(ecdsa_der(&raw, 48).is_none());
    }

    #[test]
    fn ec_points_bare_or_wrapped() {
        let c = curve(KeySpec::EccNistP256).unwrap();
        let mut point = vec![0x04];
        point.extend_from_slice(&[0xab; 64]);
        let mut wrapped = vec![0x04, 0x41];
        wrapped.extend_from_slice(&point);
        assert_eq!(ec_point(&wrapped, &c).unwrap(), point);
        assert_eq!(ec_point(&point, &c).unwrap(), point);
        assert!(ec_point(&wrapped[..66], &c).is_none());
        // P-521: long-form length.
        let c = curve(KeySpec::EccNistP521).unwrap();
        let mut point = vec![0x04];
        point.extend_from_slice(&[0x01; 132]);
        let mut wrapped = vec![0x04, 0x81, 0x85];
        wrapped.extend_from_slice(&point);
        assert_eq!(ec_point(&wrapped, &c).unwrap(), point);
        assert_eq!(ec_spki(&point, &c).len(), 158);
    }

    #[test]
    fn spki_sizes_match_the_reference() {
        for (spec, size) in [
            (KeySpec::EccNistP256, 91),
            (KeySpec::EccSecgP256k1, 88),
            (KeySpec::EccNistP384, 120),
        ] {
            let c = curve(spec).unwrap();
            let mut point = vec![0x04];
            point.extend(std::iter::repeat_n(0x11, 2 * c.field_len));
            assert_eq!(ec_spki(&point, &c).len(), size, "{spec}");
        }
        for (bytes, size) in [(256, 294), (384, 422), (512, 550)] {
            let mut n = vec![0xc5u8; bytes];
            n[bytes - 1] = 0x01;
            assert_eq!(rsa_spki(&n, &[1, 0, 1]).unwrap().len(), size);
        }
    }

    /// EME-OAEP encoding (RFC 8017 §7.1.1 step 2), to test the decoder.
    fn oaep_encode(m: &[u8], k: usize, hash: HashAlg, seed: &[u8]) -> Vec<u8> {
        let alg = digest_alg(hash).unwrap();
        let h_len = alg.output_len();
        let mut db = ring::digest::digest(alg, b"").as_ref().to_vec();
        db.extend(std::iter::repeat_n(0, k - m.len() - 2 * h_len - 2));
        db.push(1);
        db.extend_from_slice(m);
        let mut masked_db = db.clone();
        mgf1_xor(alg, seed, &mut masked_db);
        let mut masked_seed = seed.to_vec();
        mgf1_xor(alg, &masked_db, &mut masked_seed);
        let mut em = vec![0u8];
        em.extend_from_slice(&masked_seed);
        em.extend_from_slice(&masked_db);
        em
    }

    #[test]
    fn oaep_round_trip_and_every_failure_is_none() {
        for hash in [HashAlg::Sha1, HashAlg::Sha256] {
            let h_len = hash.output_len();
            let k = 256;
            for m in [&b""[..], b"hello", &[0x01; 190][..]] {
                if m.len() > k - 2 * h_len - 2 {
                    continue;
                }
                let em = oaep_encode(m, k, hash, &vec![0x5a; h_len]);
                assert_eq!(oaep_decode(&em, k, hash).unwrap().as_slice(), m);
                // Leading zero dropped by the raw decryption: still decodes.
                assert_eq!(oaep_decode(&em[1..], k, hash).unwrap().as_slice(), m);
                // Y != 0.
                let mut bad = em.clone();
                bad[0] = 1;
                assert!(oaep_decode(&bad, k, hash).is_none());
                // Any flipped byte of the masked seed or DB.
                for i in [1, h_len, h_len + 1, k / 2, k - 1] {
                    let mut bad = em.clone();
                    bad[i] ^= 0x40;
                    assert!(oaep_decode(&bad, k, hash).is_none(), "{i}");
                }
                // The other hash.
                let other = if hash == HashAlg::Sha1 {
                    HashAlg::Sha256
                } else {
                    HashAlg::Sha1
                };
                assert!(oaep_decode(&em, k, other).is_none());
            }
        }
        assert!(oaep_decode(&[0; 300], 256, HashAlg::Sha256).is_none());
        assert!(oaep_decode(&[0; 256], 256, HashAlg::Sha256).is_none());
    }
}
