//! Parsers for the typed values conditions compare: numbers, dates, booleans, CIDR blocks and
//! base64. Used both for policy values (once, at parse time) and for request values given as
//! strings (at evaluation time).

use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// A finite decimal number (`"10"`, `"1546257599.0"`, `"-2.5"`).
pub(crate) fn parse_number(s: &str) -> Option<f64> {
    // `f64::from_str` also takes "inf", "NaN" and "infinity"; policies mean none of them.
    if !s
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
    {
        return None;
    }
    s.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// `true`/`false` in any letter case.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Epoch seconds, optionally with a fraction (`"1546257599"`, `"1546257599.0"`).
fn parse_epoch(s: &str) -> Option<DateTime<Utc>> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty()
        || whole.len() > 12
        || fraction.len() > 9
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut secs: i64 = whole.parse().ok()?;
    let mut nanos: u32 = if fraction.is_empty() {
        0
    } else {
        let scale = 10u32.pow(9 - u32::try_from(fraction.len()).ok()?);
        fraction.parse::<u32>().ok()? * scale
    };
    if negative {
        secs = -secs;
        if nanos > 0 {
            secs -= 1;
            nanos = 1_000_000_000 - nanos;
        }
    }
    DateTime::from_timestamp(secs, nanos)
}

/// ISO 8601 (`2020-01-01T00:00:00Z`, with an offset or a fraction, without a zone meaning UTC,
/// date only meaning midnight UTC, the compact `20200101T000000Z`) or epoch seconds.
pub(crate) fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    if let Some(t) = parse_epoch(s) {
        return Some(t);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    const NAIVE: [&str; 4] = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%MZ",
        "%Y%m%dT%H%M%SZ",
    ];
    for format in NAIVE {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// An IPv4 or IPv6 CIDR block; a bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub(crate) fn parse(s: &str) -> Option<Cidr> {
        let (address, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network: IpAddr = address.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 3 => {
                p.parse::<u8>().ok().filter(|p| *p <= max)?
            }
            Some(_) => return None,
            None => max,
        };
        Some(Cidr { network, prefix })
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            // An IPv4-mapped IPv6 client address (::ffff:a.b.c.d) is that IPv4 address.
            (IpAddr::V4(_), IpAddr::V6(ip)) => ip
                .to_ipv4_mapped()
                .is_some_and(|v4| self.contains(IpAddr::V4(v4))),
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }
}

fn base64_digit(c: u8) -> Option<u32> {
    match c {
        b'A'..=b'Z' => Some(u32::from(c - b'A')),
        b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
        b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Standard base64 (RFC 4648 alphabet), padding optional.
pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let body = s.trim_end_matches('=');
    if s.len() - body.len() > 2 || body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 2);
    for chunk in body.as_bytes().chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | base64_digit(c)?;
        }
        // A short final chunk must not carry bits past its last byte (canonical encoding),
        // so that one byte string has one encoding.
        let spare_bits = match chunk.len() {
            2 => 4,
            3 => 2,
            _ => 0,
        };
        if acc & ((1 << spare_bits) - 1) != 0 {
            return None;
        }
        acc <<= 6 * (4 - chunk.len() as u32);
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_number("10"), Some(10.0));
        assert_eq!(parse_number("1546257599.0"), Some(1_546_257_599.0));
        assert_eq!(parse_number("-2.5"), Some(-2.5));
        assert_eq!(parse_number("1e3"), Some(1000.0));
        assert_eq!(parse_number("NaN"), None);
        assert_eq!(parse_number("inf"), None);
        assert_eq!(parse_number(""), None);
        assert_eq!(parse_number("ten"), None);
    }

    #[test]
    fn dates() {
        let t = |s: &str| parse_date(s).map(|d| (d.timestamp(), d.timestamp_subsec_nanos()));
        assert_eq!(t("2019-01-01T00:00:00Z"), Some((1_546_300_800, 0)));
        assert_eq!(t("2019-01-01T02:00:00+02:00"), Some((1_546_300_800, 0)));
        assert_eq!(t("2019-01-01T00:00:00"), Some((1_546_300_800, 0)));
        assert_eq!(
            t("2019-01-01T00:00:00.5Z"),
            Some((1_546_300_800, 500_000_000))
        );
        assert_eq!(t("2019-01-01"), Some((1_546_300_800, 0)));
        assert_eq!(t("20190101T000000Z"), Some((1_546_300_800, 0)));
        assert_eq!(t("1546257599"), Some((1_546_257_599, 0)));
        assert_eq!(t("1546257599.25"), Some((1_546_257_599, 250_000_000)));
        assert_eq!(t("-1.5"), Some((-2, 500_000_000)));
        assert_eq!(t("yesterday"), None);
        assert_eq!(t("2019-13-01"), None);
        assert_eq!(t(""), None);
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("203.0.113.0/24").unwrap();
        assert!(c.contains("203.0.113.7".parse().unwrap()));
        assert!(!c.contains("203.0.114.7".parse().unwrap()));
        assert!(c.contains("::ffff:203.0.113.9".parse().unwrap()));
        let host = Cidr::parse("10.1.2.3").unwrap();
        assert!(host.contains("10.1.2.3".parse().unwrap()));
        assert!(!host.contains("10.1.2.4".parse().unwrap()));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:1::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("10.0.0.0/").is_none());
        assert!(Cidr::parse("10.0.0/8").is_none());
        assert!(Cidr::parse("::/129").is_none());
    }

    #[test]
    fn base64() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("AAEC").unwrap(), [0, 1, 2]);
        assert!(base64_decode("a").is_none());
        assert!(base64_decode("a$==").is_none());
        assert!(base64_decode("aGVsbG8===").is_none());
        assert!(
            base64_decode("aGVsbG9=").is_none(),
            "non-canonical trailing bits"
        );
        assert_eq!(base64_decode("/w==").unwrap(), [255]);
    }
}
