//! A minimal DER reader and the few fixed encodings host cryptography needs: the
//! SubjectPublicKeyInfo of a caller's key (algorithm OID, curve OID, key bits), the ML-DSA
//! PKCS#8 seed, and ML-DSA SPKIs. Everything else is encoded and decoded by `aws-lc-rs`.
//!
//! The reader accepts definite lengths in their minimal form only (DER) and never panics on
//! hostile input.

use super::{CryptoError, CryptoResult};

pub(crate) const TAG_INTEGER: u8 = 0x02;
pub(crate) const TAG_BIT_STRING: u8 = 0x03;
pub(crate) const TAG_OCTET_STRING: u8 = 0x04;
pub(crate) const TAG_NULL: u8 = 0x05;
pub(crate) const TAG_OID: u8 = 0x06;
pub(crate) const TAG_SEQUENCE: u8 = 0x30;
/// `[0] IMPLICIT` primitive (the ML-DSA private key's `seed` choice).
pub(crate) const TAG_CONTEXT_0: u8 = 0x80;

/// OID content bytes (without tag and length).
pub(crate) mod oid {
    /// rsaEncryption 1.2.840.113549.1.1.1
    pub const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    /// id-ecPublicKey 1.2.840.10045.2.1
    pub const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    /// prime256v1 1.2.840.10045.3.1.7
    pub const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    /// secp384r1 1.3.132.0.34
    pub const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
    /// secp521r1 1.3.132.0.35
    pub const P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
    /// secp256k1 1.3.132.0.10
    pub const SECP256K1: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x0a];
    /// id-ml-dsa-44/65/87 2.16.840.1.101.3.4.3.17/18/19
    pub const ML_DSA_44: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x11];
    pub const ML_DSA_65: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x12];
    pub const ML_DSA_87: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x13];
}

/// Reads one TLV from the front of `input`: `(tag, content, rest)`.
pub(crate) fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    // Multi-byte tags never occur in the structures read here.
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 3 || rest.len() < n {
            return None;
        }
        let (bytes, tail) = rest.split_at(n);
        rest = tail;
        if bytes[0] == 0 {
            return None; // not minimal
        }
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        if len < 0x80 {
            return None; // not minimal
        }
        len
    };
    if rest.len() < len {
        return None;
    }
    let (content, rest) = rest.split_at(len);
    Some((tag, content, rest))
}

/// Reads one TLV that must carry `tag`.
pub(crate) fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, content, rest) = read_tlv(input)?;
    (t == tag).then_some((content, rest))
}

/// A parsed SubjectPublicKeyInfo (borrowed).
pub(crate) struct Spki<'a> {
    /// Content of the algorithm OID.
    pub algorithm: &'a [u8],
    /// The whole parameters TLV, if any.
    pub parameters: Option<&'a [u8]>,
    /// The key bits (a BIT STRING with no unused bits).
    pub key: &'a [u8],
}

/// Parses a DER SubjectPublicKeyInfo; trailing bytes are refused.
pub(crate) fn parse_spki(der: &[u8]) -> CryptoResult<Spki<'_>> {
    let bad = || CryptoError::InvalidPublicKey;
    let (seq, rest) = expect(der, TAG_SEQUENCE).ok_or_else(bad)?;
    if !rest.is_empty() {
        return Err(bad());
    }
    let (alg_seq, after_alg) = expect(seq, TAG_SEQUENCE).ok_or_else(bad)?;
    let (algorithm, params) = expect(alg_seq, TAG_OID).ok_or_else(bad)?;
    let parameters = if params.is_empty() {
        None
    } else {
        let (_, _, tail) = read_tlv(params).ok_or_else(bad)?;
        if !tail.is_empty() {
            return Err(bad());
        }
        Some(params)
    };
    let (bits, tail) = expect(after_alg, TAG_BIT_STRING).ok_or_else(bad)?;
    if !tail.is_empty() {
        return Err(bad());
    }
    let (&unused, key) = bits.split_first().ok_or_else(bad)?;
    if unused != 0 {
        return Err(bad());
    }
    Ok(Spki {
        algorithm,
        parameters,
        key,
    })
}

/// Appends a DER length.
fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else if len < 0x10000 {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    } else {
        out.extend_from_slice(&[0x83, (len >> 16) as u8, (len >> 8) as u8, len as u8]);
    }
}

/// Encodes one TLV.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 5);
    out.push(tag);
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// An SPKI whose AlgorithmIdentifier is a bare OID (parameters absent), as RFC 8410 and the
/// ML-DSA profile (RFC 9881) require.
pub(crate) fn spki_without_parameters(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    let alg = tlv(TAG_SEQUENCE, &tlv(TAG_OID, algorithm));
    let mut bits = Vec::with_capacity(key.len() + 1);
    bits.push(0);
    bits.extend_from_slice(key);
    let mut body = alg;
    body.extend_from_slice(&tlv(TAG_BIT_STRING, &bits));
    tlv(TAG_SEQUENCE, &body)
}

/// Encodes a DER INTEGER from unsigned big-endian bytes (leading zeros stripped, a zero byte
/// added where the top bit is set).
pub(crate) fn unsigned_integer(be: &[u8]) -> Vec<u8> {
    let start = be.iter().position(|b| *b != 0).unwrap_or(be.len());
    let digits = &be[start..];
    let mut content = Vec::with_capacity(digits.len() + 1);
    if digits.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(digits);
    tlv(TAG_INTEGER, &content)
}

/// Reads a DER INTEGER that must be non-negative; returns its magnitude without leading zeros.
pub(crate) fn read_unsigned_integer(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (content, rest) = expect(input, TAG_INTEGER)?;
    let (&first, tail) = content.split_first()?;
    if first & 0x80 != 0 {
        return None; // negative
    }
    if first == 0 {
        match tail.first() {
            None => return Some((tail, rest)),       // zero
            Some(b) if b & 0x80 == 0 => return None, // not minimal
            Some(_) => return Some((tail, rest)),
        }
    }
    Some((content, rest))
}

/// Converts a DER ECDSA signature to PKCS#11's fixed `r || s` (each `n_len` bytes);
/// `None` when it does not parse or a component is too long.
pub fn ecdsa_der_to_fixed(der: &[u8], n_len: usize) -> Option<Vec<u8>> {
    let (seq, rest) = expect(der, TAG_SEQUENCE)?;
    if !rest.is_empty() {
        return None;
    }
    let (r, after_r) = read_unsigned_integer(seq)?;
    let (s, tail) = read_unsigned_integer(after_r)?;
    if !tail.is_empty() || r.len() > n_len || s.len() > n_len {
        return None;
    }
    let mut out = vec![0u8; 2 * n_len];
    out[n_len - r.len()..n_len].copy_from_slice(r);
    out[2 * n_len - s.len()..].copy_from_slice(s);
    Some(out)
}

/// Converts PKCS#11's `r || s` (two equal halves) to a DER ECDSA signature.
pub fn ecdsa_fixed_to_der(fixed: &[u8]) -> Option<Vec<u8>> {
    if fixed.is_empty() || !fixed.len().is_multiple_of(2) {
        return None;
    }
    let (r, s) = fixed.split_at(fixed.len() / 2);
    let mut body = unsigned_integer(r);
    body.extend_from_slice(&unsigned_integer(s));
    Some(tlv(TAG_SEQUENCE, &body))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn lengths_must_be_minimal_and_present() {
        assert!(read_tlv(&[0x04, 0x81, 0x05, 1, 2, 3, 4, 5]).is_none());
        assert!(read_tlv(&[0x04, 0x82, 0x00, 0x80]).is_none());
        assert!(read_tlv(&[0x04, 0x03, 1, 2]).is_none());
        let long = tlv(TAG_OCTET_STRING, &[7u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let (tag, content, rest) = read_tlv(&long).unwrap();
        assert_eq!((tag, content.len(), rest.len()), (TAG_OCTET_STRING, 300, 0));
    }

    #[test]
    fn ecdsa_fixed_and_der_round_trip() {
        let mut fixed = vec![0u8; 64];
        fixed[1] = 0x80; // r = 0x0080.. (leading zero byte, then top bit set)
        fixed[63] = 1; // s = 1
        let der = ecdsa_fixed_to_der(&fixed).unwrap();
        // r: 31 significant bytes with the top bit set -> 0x00 prefix; s: one byte.
        assert_eq!(der[..4], [0x30, 2 + 32 + 3, 0x02, 32]);
        assert_eq!(ecdsa_der_to_fixed(&der, 32).unwrap(), fixed);
        assert!(ecdsa_der_to_fixed(&der, 16).is_none());
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(ecdsa_der_to_fixed(&trailing, 32).is_none());
    }
}
