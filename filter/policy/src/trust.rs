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
        let network =
            parse_ip(addr).ok_or_else(|| format!("`{text}` is not an IP address or CIDR"))?;
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
    if let Some(ip) = parse_ip(address) {
        return Some(ip);
    }
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| parse_ip(ip));
    }
    address.rsplit_once(':').and_then(|(ip, _)| parse_ip(ip))
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

// === IP addresses ===
//
// What `str::parse::<IpAddr>` accepts, with the same result: four decimal octets (no leading
// zeros), or eight hexadecimal groups of 1-4 digits, one `::` standing for at least one group
// of zeros, the last two groups optionally written as an IPv4 address. Written here because
// the standard parser costs 4,300 bytes of .wasm, this one 2,000 fewer.

/// An IP address, exactly as `str::parse::<IpAddr>` reads it.
fn parse_ip(text: &str) -> Option<IpAddr> {
    let bytes = text.as_bytes();
    // An IPv4 address that leaves something unread is no address at all (never IPv6).
    if let Some((octets, used)) = ipv4(bytes) {
        return (used == bytes.len()).then_some(IpAddr::V4(octets.into()));
    }
    let mut groups = [0u16; 8];
    let (head, head_v4, used) = read_groups(bytes, &mut groups);
    if head == 8 {
        return (used == bytes.len()).then_some(IpAddr::V6(groups.into()));
    }
    // An IPv4 part only ends an address; `::` stands for at least one group.
    let rest = bytes
        .get(used..)?
        .strip_prefix(b"::")
        .filter(|_| !head_v4)?;
    let mut tail = [0u16; 7];
    let (tail_size, _, tail_used) = read_groups(rest, tail.get_mut(..7 - head)?);
    groups
        .get_mut(8 - tail_size..)?
        .copy_from_slice(tail.get(..tail_size)?);
    (tail_used == rest.len()).then_some(IpAddr::V6(groups.into()))
}

/// A number at the start of `bytes` of 1 to `max_digits` digits in `radix`, at most `limit`;
/// with `zero_prefix` false, "0" but not "01". Its value and length.
fn number(
    bytes: &[u8],
    radix: u32,
    max_digits: usize,
    limit: u32,
    zero_prefix: bool,
) -> Option<(u32, usize)> {
    let digits = bytes
        .iter()
        .take_while(|b| char::from(**b).is_digit(radix))
        .count();
    let leading_zero = !zero_prefix && digits > 1 && bytes.first() == Some(&b'0');
    if digits == 0 || digits > max_digits || leading_zero {
        return None;
    }
    let value = bytes
        .iter()
        .take(digits)
        .filter_map(|b| char::from(*b).to_digit(radix))
        .fold(0, |value, digit| value * radix + digit);
    (value <= limit).then_some((value, digits))
}

/// Four dotted octets at the start of `bytes`, and their length.
fn ipv4(bytes: &[u8]) -> Option<([u8; 4], usize)> {
    let mut octets = [0u8; 4];
    let mut used = 0;
    for (index, octet) in octets.iter_mut().enumerate() {
        if index > 0 {
            used += bytes.get(used..)?.starts_with(b".").then_some(1)?;
        }
        let (value, length) = number(bytes.get(used..)?, 10, 3, 255, false)?;
        *octet = u8::try_from(value).ok()?;
        used += length;
    }
    Some((octets, used))
}

/// Colon-separated groups at the start of `bytes` into `groups`, the last two possibly written
/// as an IPv4 address: how many were read, whether the last were IPv4, and the length read.
fn read_groups(bytes: &[u8], groups: &mut [u16]) -> (usize, bool, usize) {
    let limit = groups.len();
    let mut used = 0;
    for index in 0..limit {
        let separator = usize::from(index > 0);
        let Some(rest) = bytes
            .get(used..)
            .filter(|rest| separator == 0 || rest.starts_with(b":"))
            .and_then(|rest| rest.get(separator..))
        else {
            return (index, false, used);
        };
        if index + 1 < limit {
            if let Some(([a, b, c, d], length)) = ipv4(rest) {
                if let Some(pair) = groups.get_mut(index..index + 2) {
                    pair.copy_from_slice(&[u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d])]);
                }
                return (index + 2, true, used + separator + length);
            }
        }
        let group = number(rest, 16, 4, 0xffff, true);
        match (group, groups.get_mut(index)) {
            (Some((value, length)), Some(slot)) => {
                *slot = u16::try_from(value).unwrap_or(0);
                used += separator + length;
            }
            _ => return (index, false, used),
        }
    }
    (limit, false, used)
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

    /// A small deterministic generator (xorshift), so the cases are the same on every run.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    fn same_as_std(text: &str) {
        assert_eq!(parse_ip(text), text.parse::<IpAddr>().ok(), "{text:?}");
    }

    #[test]
    fn ip_addresses_parse_as_the_standard_library_parses_them() {
        let rows = [
            "",
            "1.2.3.4",
            "255.255.255.255",
            "256.0.0.1",
            "01.2.3.4",
            "0.0.0.0",
            "1.2.3",
            "1.2.3.4.",
            "1.2.3.4.5",
            "1.2.3.04",
            "1..3.4",
            " 1.2.3.4",
            "1.2.3.4 ",
            "1234.1.1.1",
            "+1.2.3.4",
            "::",
            "::1",
            "1::",
            "1::2",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "1::3:4:5:6:7:8",
            "1:2:3:4:5:6:7:8::",
            "::1:2:3:4:5:6:7:8",
            ":::",
            "1:::2",
            "1::2::3",
            ":1::",
            "1:",
            ":1",
            "12345::",
            "00001::",
            "0001::",
            "ABCD:ef01::",
            "g::",
            "::ffff:1.2.3.4",
            "::1.2.3.4",
            "1:2:3:4:5:6:1.2.3.4",
            "1:2:3:4:5:6:7:1.2.3.4",
            "1.2.3.4::",
            "::1.2.3.4:5",
            "1::1.2.3.4",
            "1:2:3:4:5:6::1.2.3.4",
            "::ffff:1.2.3",
            "::ffff:01.2.3.4",
            "[::1]",
            "::1%eth0",
            "é",
            "1.2.3.4é",
        ];
        for text in rows {
            same_as_std(text);
        }
        let mut state = 0x51f1_5eed_0bad_cafe;
        let alphabet = b"0123456789abcdefABCDEF.:::..1fffx";
        for _ in 0..20_000 {
            let length = usize::try_from(next(&mut state) % 24).unwrap();
            let text: String = (0..length)
                .map(|_| {
                    let pick = next(&mut state) % u64::try_from(alphabet.len()).unwrap();
                    let pick = usize::try_from(pick).unwrap();
                    char::from(alphabet[pick])
                })
                .collect();
            same_as_std(&text);
        }
        // Near-valid addresses: groups of 0-5 digits, `::` anywhere, IPv4 tails, octets with
        // leading zeros and past 255.
        for _ in 0..20_000 {
            let mut text = String::new();
            let groups = next(&mut state) % 10;
            let gap = next(&mut state) % 12;
            for index in 0..groups {
                if index == gap {
                    text.push_str("::");
                } else if index > 0 {
                    text.push(':');
                }
                let digits = next(&mut state) % 6;
                for _ in 0..digits {
                    text.push_str(&format!("{:x}", next(&mut state) % 16));
                }
            }
            if gap == groups {
                text.push_str("::");
            }
            if next(&mut state).is_multiple_of(3) {
                let octets: Vec<String> = (0..3 + next(&mut state) % 2)
                    .map(|_| match next(&mut state) % 4 {
                        0 => format!("0{}", next(&mut state) % 10),
                        1 => format!("{}", 250 + next(&mut state) % 10),
                        _ => format!("{}", next(&mut state) % 256),
                    })
                    .collect();
                if !text.is_empty() && !text.ends_with(':') {
                    text.push(':');
                }
                text.push_str(&octets.join("."));
            }
            same_as_std(&text);
        }
    }
}
