//! Which addresses the KMS connects to for a tenant's external key store proxy.
//!
//! `XksProxyUriEndpoint` is tenant input: without a check, a store's create-time probe would
//! reach the KMS host itself (loopback), the cloud metadata service (169.254.169.254), or any
//! internal port, and its answers would tell which ports are open. So the client resolves the
//! host name, checks *every* address it resolves to, and connects only to an address it
//! checked (no second lookup between check and connect). Refused by default: unspecified,
//! loopback, link-local, multicast, broadcast and the well-known metadata addresses; private
//! ranges too when the operator says so (`[xks] refuse_private_networks`). Networks on the
//! operator's allow-list (`[xks] allowed_proxy_networks`, for on-premises proxies and tests)
//! are accepted whatever their kind.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

// IPv4-mapped IPv6 addresses are checked as the IPv4 address they carry.
use serve::forwarded::canonical;

/// An IP network (`address/prefix`) of the operator's allow-list (the listener's type, shared
/// with the proxies' trusted networks).
pub use serve::Network;

/// Why an address is refused (for the error message and the log; never sent anywhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Unspecified,
    Loopback,
    LinkLocal,
    Metadata,
    Multicast,
    Private,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Unspecified => "an unspecified address",
            Refused::Loopback => "a loopback address",
            Refused::LinkLocal => "a link-local address",
            Refused::Metadata => "a cloud metadata address",
            Refused::Multicast => "a multicast or broadcast address",
            Refused::Private => "a private address",
        }
    }
}

/// The operator's rules for proxy addresses.
#[derive(Debug, Clone, Default)]
pub struct EndpointPolicy {
    /// Accepted whatever their kind.
    pub allowed: Vec<Network>,
    /// Also refuse private ranges (RFC 1918, shared address space, unique local IPv6).
    pub refuse_private: bool,
}

/// Metadata services reachable from cloud instances (AWS IMDS over IPv4 and IPv6, Alibaba).
const METADATA: [IpAddr; 3] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
];

impl EndpointPolicy {
    /// `Ok` when the KMS may connect to `ip` for a proxy.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        let ip = canonical(ip);
        if self.allowed.iter().any(|n| n.contains(ip)) {
            return Ok(());
        }
        if METADATA.contains(&ip) {
            return Err(Refused::Metadata);
        }
        match ip {
            IpAddr::V4(a) => {
                let o = a.octets();
                if a.is_unspecified() || o[0] == 0 {
                    Err(Refused::Unspecified)
                } else if a.is_loopback() {
                    Err(Refused::Loopback)
                } else if a.is_link_local() {
                    Err(Refused::LinkLocal)
                } else if a.is_multicast() || a.is_broadcast() || o[0] >= 240 {
                    Err(Refused::Multicast)
                } else if self.refuse_private
                    && (a.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64))
                {
                    Err(Refused::Private)
                } else {
                    Ok(())
                }
            }
            IpAddr::V6(a) => {
                let s = a.segments();
                if a.is_unspecified() {
                    Err(Refused::Unspecified)
                } else if a.is_loopback() {
                    Err(Refused::Loopback)
                } else if (s[0] & 0xffc0) == 0xfe80 {
                    Err(Refused::LinkLocal)
                } else if a.is_multicast() {
                    Err(Refused::Multicast)
                } else if self.refuse_private && (s[0] & 0xfe00) == 0xfc00 {
                    Err(Refused::Private)
                } else {
                    Ok(())
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn refuses_the_hosts_own_and_metadata_addresses_by_default() {
        let p = EndpointPolicy::default();
        for (a, why) in [
            ("0.0.0.0", Refused::Unspecified),
            ("::", Refused::Unspecified),
            ("127.0.0.1", Refused::Loopback),
            ("127.9.9.9", Refused::Loopback),
            ("::1", Refused::Loopback),
            ("::ffff:127.0.0.1", Refused::Loopback),
            ("169.254.169.254", Refused::Metadata),
            ("::ffff:169.254.169.254", Refused::Metadata),
            ("fd00:ec2::254", Refused::Metadata),
            ("169.254.10.1", Refused::LinkLocal),
            ("fe80::1", Refused::LinkLocal),
            ("224.0.0.1", Refused::Multicast),
            ("255.255.255.255", Refused::Multicast),
            ("ff02::1", Refused::Multicast),
        ] {
            assert_eq!(p.check(ip(a)), Err(why), "{a}");
        }
        for a in ["10.1.2.3", "192.168.1.1", "203.0.113.7", "2001:db8::1"] {
            assert_eq!(p.check(ip(a)), Ok(()), "{a}");
        }
    }

    #[test]
    fn private_ranges_only_when_the_operator_says_so_and_the_allow_list_wins() {
        let p = EndpointPolicy {
            allowed: vec![
                Network::parse("10.20.0.0/16").unwrap(),
                Network::parse("127.0.0.1").unwrap(),
            ],
            refuse_private: true,
        };
        for a in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "fd12::1",
        ] {
            assert_eq!(p.check(ip(a)), Err(Refused::Private), "{a}");
        }
        assert_eq!(p.check(ip("10.20.3.4")), Ok(()));
        assert_eq!(p.check(ip("127.0.0.1")), Ok(()));
        assert_eq!(p.check(ip("127.0.0.2")), Err(Refused::Loopback));
        assert_eq!(p.check(ip("203.0.113.7")), Ok(()));
    }
}
