//! Which peers' request hints ballast believes.
//!
//! Why: priority classes, deadlines and retry marks arrive as request headers. A client on the
//! internet must not be able to declare itself `critical` or claim an hour-long deadline, while a
//! service inside the mesh should be believed. Envoy makes the same distinction for its own
//! `x-envoy-*` headers (internal vs external peers). A peer is trusted when its source address is
//! in one of `source_cidrs` or its mTLS principal (e.g. a SPIFFE ID) matches one of `principals`.

use crate::routing::{RequestView, StringMatch};
use std::net::IpAddr;

/// An IP network such as `10.0.0.0/8` or `fc00::/7`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `x::y/n`, or a bare address (a /32 or /128).
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address or CIDR"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix {
            None => max,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|len| *len <= max)
                .ok_or_else(|| format!("`{text}`: prefix length must be 0..={max}"))?,
        };
        let cidr = Cidr {
            network,
            prefix_len,
        };
        if cidr.masked(network) != network {
            return Err(format!("`{text}` has host bits set beyond /{prefix_len}"));
        }
        Ok(cidr)
    }

    fn masked(&self, addr: IpAddr) -> IpAddr {
        match addr {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                IpAddr::V4((bits & mask).into())
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                IpAddr::V6((bits & mask).into())
            }
        }
    }

    /// Is `addr` inside this network? (IPv4-mapped IPv6 addresses count as IPv4.)
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
            v4 => v4,
        };
        addr.is_ipv4() == self.network.is_ipv4() && self.masked(addr) == self.network
    }
}

/// Loopback only: the default trust set. Private ranges are not trusted by default: every pod
/// of a mesh is in them (10.0.0.0/8 in most clusters), so trusting them would let any pod mark
/// itself critical or claim a long deadline. Trust a mesh by SPIFFE principal instead (README,
/// "Trusted peers").
pub const DEFAULT_TRUSTED_CIDRS: &[&str] = &["127.0.0.0/8", "::1/128"];

/// The compiled `trusted_peers` rules.
#[derive(Debug, Clone, Default)]
pub struct TrustedPeers {
    /// Source networks whose peers are trusted.
    pub source_cidrs: Vec<Cidr>,
    /// Principals (peer certificate URI SAN) that are trusted.
    pub principals: Vec<StringMatch>,
}

impl TrustedPeers {
    /// Whether the peer is trusted. `source_address` is Envoy's `source.address` property
    /// (`ip:port`, `[v6]:port` or a bare IP); `principal` the peer's URI SAN, if any.
    pub fn is_trusted(&self, source_address: Option<&str>, principal: Option<&str>) -> bool {
        let by_address = source_address
            .and_then(parse_peer_ip)
            .is_some_and(|ip| self.source_cidrs.iter().any(|cidr| cidr.contains(ip)));
        by_address
            || principal.is_some_and(|p| self.principals.iter().any(|matcher| matcher.matches(p)))
    }

    /// Whether deciding trust needs the peer principal at all (saves a host call when not).
    pub fn needs_principal(&self) -> bool {
        !self.principals.is_empty()
    }
}

fn parse_peer_ip(address: &str) -> Option<IpAddr> {
    if let Ok(ip) = address.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok());
    }
    address.rsplit_once(':').and_then(|(ip, _)| ip.parse().ok())
}

/// Whether the request's peer is one whose hints (priority, deadline, retry marks) are
/// believed; its principal is looked up only when `trusted` names principals.
pub fn peer_is_trusted(trusted: &TrustedPeers, request: &mut dyn RequestView) -> bool {
    let address = request.source_address().map(str::to_owned);
    let principal = if trusted.needs_principal() {
        request.peer_principal().map(str::to_owned)
    } else {
        None
    };
    trusted.is_trusted(address.as_deref(), principal.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::StringMatcher;
    use crate::test_support::test;

    fn defaults() -> TrustedPeers {
        TrustedPeers {
            source_cidrs: DEFAULT_TRUSTED_CIDRS
                .iter()
                .chain(&["10.0.0.0/8", "192.168.0.0/16"])
                .map(|c| Cidr::parse(c).unwrap())
                .collect(),
            principals: vec![StringMatch {
                matcher: StringMatcher::Prefix("spiffe://cluster.local/ns/prod/".into()),
                ignore_case: false,
            }],
        }
    }

    #[test]
    fn cidr_parsing() {
        assert!(Cidr::parse("10.0.0.0/8").is_ok());
        assert!(Cidr::parse("10.1.2.3").is_ok());
        assert!(Cidr::parse("::/0").is_ok());
        assert!(Cidr::parse("10.0.0.1/8").unwrap_err().contains("host bits"));
        assert!(Cidr::parse("10.0.0.0/33").unwrap_err().contains("0..=32"));
        assert!(Cidr::parse("banana").unwrap_err().contains("not an IP"));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn trust_by_address_and_principal() {
        let peers = defaults();
        let rows: &[(Option<&str>, Option<&str>, bool)] = &[
            (Some("127.0.0.1:5555"), None, true),
            (Some("10.2.3.4:80"), None, true),
            (Some("172.32.0.1:80"), None, false),
            (Some("[::1]:443"), None, true),
            (Some("[::ffff:192.168.1.1]:443"), None, true),
            (Some("203.0.113.9:1234"), None, false),
            (Some("203.0.113.9"), None, false),
            (Some("garbage"), None, false),
            (None, None, false),
            (
                Some("203.0.113.9:1"),
                Some("spiffe://cluster.local/ns/prod/sa/x"),
                true,
            ),
            (
                Some("203.0.113.9:1"),
                Some("spiffe://cluster.local/ns/dev/sa/x"),
                false,
            ),
        ];
        for (address, principal, expected) in rows {
            assert_eq!(
                peers.is_trusted(*address, *principal),
                *expected,
                "{address:?} {principal:?}"
            );
        }
    }

    #[test]
    fn the_default_trusts_loopback_only() {
        let peers = TrustedPeers {
            source_cidrs: DEFAULT_TRUSTED_CIDRS
                .iter()
                .map(|c| Cidr::parse(c).unwrap())
                .collect(),
            principals: Vec::new(),
        };
        for (address, expected) in [
            ("127.0.0.1:5555", true),
            ("[::1]:443", true),
            ("[::ffff:127.0.0.1]:443", true),
            ("10.2.3.4:80", false),
            ("192.168.1.1:80", false),
            ("[fd00::1]:80", false),
        ] {
            assert_eq!(peers.is_trusted(Some(address), None), expected, "{address}");
        }
    }
}
