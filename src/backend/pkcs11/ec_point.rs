//! Public-point arithmetic for EC keys imported into the PKCS#11 root: the curve's base point
//! (to derive the x-coordinate of a private key's public point with CKM_ECDH1_DERIVE) and the
//! two points with a given x-coordinate. Only public values pass through here; the scalar
//! stays in the token.
//!
//! Every curve of the ECC key specs has `p ≡ 3 (mod 4)`, so a square root is one modular
//! power: `y = (x³ + a·x + b)^((p+1)/4) mod p`. `b` is taken from the base point, which
//! `aws-lc-rs` computes (the public key of the scalar 1), so no curve constant but `p` and `a`
//! is written here.

use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _};
use num_bigint::BigUint;

use super::encoding;
use crate::model::KeySpec;

/// The prime of the curve's field and whether `a = -3` (NIST curves) or `a = 0` (secp256k1).
fn field(spec: KeySpec) -> Option<(BigUint, bool)> {
    let two = BigUint::from(2u32);
    let pow = |e: u32| two.pow(e);
    Some(match spec {
        KeySpec::EccNistP256 => (pow(256) - pow(224) + pow(192) + pow(96) - 1u32, true),
        KeySpec::EccNistP384 => (pow(384) - pow(128) - pow(96) + pow(32) - 1u32, true),
        KeySpec::EccNistP521 => (pow(521) - 1u32, true),
        KeySpec::EccSecgP256k1 => (pow(256) - pow(32) - 977u32, false),
        _ => return None,
    })
}

/// The curve's base point, uncompressed (`04 || X || Y`).
pub fn base_point(spec: KeySpec) -> Option<Vec<u8>> {
    let c = encoding::curve(spec)?;
    let alg = crate::crypto::ecdsa_signing_algorithm(spec)?;
    // RFC 5915 ECPrivateKey { version 1, privateKey = 1, [0] parameters }.
    let mut scalar = vec![0u8; c.order_len];
    *scalar.last_mut()? = 1;
    let mut inner = vec![0x02, 0x01, 0x01, 0x04, scalar.len() as u8];
    inner.extend_from_slice(&scalar);
    inner.extend_from_slice(&[0xa0, c.params.len() as u8]);
    inner.extend_from_slice(c.params);
    let mut der = vec![0x30, inner.len() as u8];
    der.extend_from_slice(&inner);
    let pair = EcdsaKeyPair::from_private_key_der(alg, &der).ok()?;
    let point = pair.public_key().as_ref().to_vec();
    (point.len() == 1 + 2 * c.field_len && point[0] == 0x04).then_some(point)
}

fn padded(n: &BigUint, len: usize) -> Option<Vec<u8>> {
    let bytes = n.to_bytes_be();
    if bytes.len() > len {
        return None;
    }
    let mut out = vec![0u8; len - bytes.len()];
    out.extend_from_slice(&bytes);
    Some(out)
}

/// The (at most two) uncompressed points of the curve with x-coordinate `x`; empty when `x`
/// is not the x-coordinate of a point.
pub fn candidates(spec: KeySpec, x: &[u8]) -> Vec<Vec<u8>> {
    let (Some(c), Some((p, a_is_minus_3)), Some(g)) =
        (encoding::curve(spec), field(spec), base_point(spec))
    else {
        return Vec::new();
    };
    let n = c.field_len;
    if x.len() != n {
        return Vec::new();
    }
    let a = if a_is_minus_3 {
        &p - 3u32
    } else {
        BigUint::from(0u32)
    };
    let rhs = |x: &BigUint| (x * x * x + &a * x) % &p;
    let gx = BigUint::from_bytes_be(&g[1..1 + n]);
    let gy = BigUint::from_bytes_be(&g[1 + n..]);
    // b = gy² - (gx³ + a·gx) mod p.
    let b = ((&gy * &gy) % &p + &p - rhs(&gx)) % &p;
    let x = BigUint::from_bytes_be(x);
    if x >= p {
        return Vec::new();
    }
    let y2 = (rhs(&x) + &b) % &p;
    let y = y2.modpow(&((&p + 1u32) >> 2), &p);
    if (&y * &y) % &p != y2 {
        return Vec::new();
    }
    let other = (&p - &y) % &p;
    [y, other]
        .iter()
        .filter_map(|y| {
            let mut point = vec![0x04];
            point.extend(padded(&x, n)?);
            point.extend(padded(y, n)?);
            Some(point)
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_public_point_of_a_key_is_among_the_candidates_of_its_x() {
        for spec in [
            KeySpec::EccNistP256,
            KeySpec::EccNistP384,
            KeySpec::EccNistP521,
            KeySpec::EccSecgP256k1,
        ] {
            let c = encoding::curve(spec).unwrap();
            let g = base_point(spec).unwrap();
            assert_eq!(candidates(spec, &g[1..1 + c.field_len]).len(), 2, "{spec}");
            assert!(
                candidates(spec, &g[1..1 + c.field_len]).contains(&g),
                "{spec}"
            );
            let pair = crate::crypto::generate_key_pair(spec).unwrap();
            let spki = pair.public_spki;
            let point = &spki[spki.len() - (1 + 2 * c.field_len)..];
            let found = candidates(spec, &point[1..1 + c.field_len]);
            assert!(found.iter().any(|p| p == point), "{spec}");
        }
    }
}
