//! The client address of a request that came through reverse proxies or load balancers.
//!
//! Behind a proxy the socket peer is the proxy. The proxy names the client in
//! `X-Forwarded-For`, appending the address it was connected from to what it received, so the
//! header's rightmost entry was written by the nearest proxy and everything left of it by
//! whoever sent the request before: a client can put any address there. [`TrustedProxies`]
//! believes the header only as far as its own proxies wrote it: when the peer is trusted, the
//! entries are read from the right and the first one that is not a trusted proxy is the client
//! (the rightmost untrusted hop). A peer that is not trusted is the client, whatever the
//! header says; so is the peer when nothing is trusted (the default).

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

/// An IP network (`10.0.0.0/8`, `::1/128`, or a bare address: a single host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// `address/prefix` or a bare address; `None` for anything else.
    pub fn parse(s: &str) -> Option<Network> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => {
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?))
            }
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Network { addr, prefix })
    }

    /// Whether `ip` lies in the network; an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is
    /// that IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 address as its IPv4 address; any other address unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The networks of the reverse proxies whose `X-Forwarded-For` is believed (empty: none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<Network>,
}

impl TrustedProxies {
    pub fn new(networks: Vec<Network>) -> Self {
        TrustedProxies { networks }
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(ip))
    }

    /// The client of a request from `peer` with these headers: the rightmost untrusted hop of
    /// `X-Forwarded-For` (every such header, in order, as one list) when the peer is trusted,
    /// else the peer. An entry that is not an address (or `address:port`) ends the walk: the
    /// hop that wrote it is the client as far as is known. When every hop is trusted, the
    /// leftmost is the client.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let mut hops = Vec::new();
        for value in headers.get_all("x-forwarded-for") {
            let Ok(value) = value.to_str() else {
                hops.push("");
                continue;
            };
            hops.extend(value.split(',').map(str::trim));
        }
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = hop_address(hop) else {
                return client;
            };
            client = canonical(ip);
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an address, `a.b.c.d:port` or `[v6]:port`.
fn hop_address(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| Network::parse(n).unwrap()).collect())
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn networks_parse_and_match() {
        assert!(Network::parse("10.0.0.0/8").is_some());
        assert!(Network::parse("::1/128").is_some());
        assert!(Network::parse("10.0.0.0/33").is_none());
        assert!(Network::parse("10.0.0.0/").is_none());
        assert!(Network::parse("10.0.0.0/+8").is_none());
        assert!(Network::parse("::/129").is_none());
        assert!(Network::parse("localhost").is_none());
        let ten = Network::parse("10.0.0.0/8").unwrap();
        assert!(ten.contains(ip("10.200.1.2")));
        assert!(!ten.contains(ip("11.0.0.1")));
        assert!(ten.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        assert!(Network::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(!Network::parse("0.0.0.0/0").unwrap().contains(ip("::1")));
        let host = Network::parse("127.0.0.2").unwrap();
        assert!(host.contains(ip("127.0.0.2")));
        assert!(!host.contains(ip("127.0.0.1")));
        assert!(Network::parse("2001:db8::/32")
            .unwrap()
            .contains(ip("2001:db8:ffff::1")));
    }

    #[test]
    fn nothing_trusted_means_the_peer_whatever_the_header_says() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_ip(ip("10.0.0.5"), &xff(&["203.0.113.7"])),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn an_untrusted_peer_is_the_client() {
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(
            t.client_ip(ip("198.51.100.9"), &xff(&["203.0.113.7"])),
            ip("198.51.100.9")
        );
    }

    #[test]
    fn a_trusted_peer_names_the_client() {
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(
            t.client_ip(ip("10.0.0.5"), &xff(&["203.0.113.7"])),
            ip("203.0.113.7")
        );
        // Without the header the proxy itself is the client.
        assert_eq!(
            t.client_ip(ip("10.0.0.5"), &HeaderMap::new()),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn a_spoofed_left_entry_is_ignored_rightmost_untrusted_wins() {
        let t = trusted(&["10.0.0.0/8"]);
        // The client sent "1.2.3.4" itself; the proxy appended the address it saw.
        assert_eq!(
            t.client_ip(ip("10.0.0.5"), &xff(&["1.2.3.4, 203.0.113.7"])),
            ip("203.0.113.7")
        );
        // Two trusted hops (a CDN's edge in 10/8, then the load balancer).
        assert_eq!(
            t.client_ip(ip("10.0.0.5"), &xff(&["1.2.3.4, 203.0.113.7, 10.9.9.9"])),
            ip("203.0.113.7")
        );
        // Several headers are one list, in order.
        assert_eq!(
            t.client_ip(ip("10.0.0.5"), &xff(&["1.2.3.4", "203.0.113.7, 10.1.1.1"])),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn all_trusted_means_the_leftmost() {
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(
            t.client_ip(ip("10.0.0.5"), &xff(&["10.3.3.3, 10.2.2.2"])),
            ip("10.3.3.3")
        );
    }

    #[test]
    fn garbage_stops_at_the_hop_that_wrote_it() {
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(
            t.client_ip(ip("10.0.0.5"), &xff(&["203.0.113.7, unknown"])),
            ip("10.0.0.5")
        );
        assert_eq!(
            t.client_ip(ip("10.0.0.5"), &xff(&["unknown, 10.2.2.2"])),
            ip("10.2.2.2")
        );
        assert_eq!(t.client_ip(ip("10.0.0.5"), &xff(&[""])), ip("10.0.0.5"));
    }

    #[test]
    fn ports_v6_and_mapped_addresses() {
        let t = trusted(&["10.0.0.0/8", "fd00::/8"]);
        assert_eq!(
            t.client_ip(ip("10.0.0.5"), &xff(&["203.0.113.7:4711"])),
            ip("203.0.113.7")
        );
        assert_eq!(
            t.client_ip(ip("fd00::1"), &xff(&["[2001:db8::7]:443"])),
            ip("2001:db8::7")
        );
        assert_eq!(
            t.client_ip(ip("::ffff:10.0.0.5"), &xff(&["2001:db8::7"])),
            ip("2001:db8::7")
        );
    }
}
