//! The edge's settings, validated: size and time limits on requests and
//! connections, and IP networks (for `trusted_proxies`).

use std::time::Duration;

/// Edge limits: request size, slow clients, connection counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Request line plus headers (431 above).
    pub max_header_bytes: usize,
    /// Header fields (431 above).
    pub max_headers: usize,
    /// Request target (414 above).
    pub max_uri_bytes: usize,
    /// Request body unless the route says otherwise (413 above).
    pub max_body: u64,
    /// Total time to receive a request's headers, from the first time a read
    /// inside them waits (from the connection's start for its first request).
    pub header_timeout: Duration,
    /// Longest wait for the next piece of a request body.
    pub body_timeout: Duration,
    /// Slowest accepted body upload, bytes per second (after a grace period).
    pub min_body_rate: u64,
    /// Keep-alive: how long an idle client connection stays open.
    pub idle_timeout: Duration,
    pub max_requests_per_connection: u32,
    /// Concurrent client connections per process; above it new ones get 503.
    pub max_connections: usize,
    /// Longest a client may take no response bytes before it is disconnected (and
    /// the upstream connection feeding it freed).
    pub write_timeout: Duration,
    /// Chunks of one chunked request body (413 above): each costs a pass through
    /// the proxy, however small.
    pub max_chunks: u64,
    /// Concurrent connections to the admin listener; above it new ones get 503.
    pub admin_max_connections: usize,
    /// Refuse a `;` in the path (400). Some upstream servers cut a path at `;`
    /// (Tomcat's path parameters): `/admin;x` reaches a catch-all route here but is
    /// `/admin` there. Off by default: `;` is a legal path character.
    pub reject_semicolon: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 32 * 1024,
            max_headers: 100,
            max_uri_bytes: 8 * 1024,
            max_body: 1024 * 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            min_body_rate: 1024,
            idle_timeout: Duration::from_secs(60),
            max_requests_per_connection: 1000,
            max_connections: 10_000,
            write_timeout: Duration::from_secs(30),
            max_chunks: 65_536,
            admin_max_connections: 64,
            reject_semicolon: false,
        }
    }
}

/// An IP network (`10.0.0.0/8`, `2001:db8::/32`, or a single address), for
/// `trusted_proxies` and the `ip_filter` filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet(ipnet::IpNet);

impl IpNet {
    /// A network in CIDR notation, or one address (a /32 or /128). The host bits
    /// of a network must be zero, so `10.0.0.1/8` (a typo for a host or for
    /// `10.0.0.0/8`) is refused rather than silently widened.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not an IP address or network like 10.0.0.0/8");
        let net = match text.parse::<ipnet::IpNet>() {
            Ok(net) => net,
            Err(_) => text
                .parse::<std::net::IpAddr>()
                .map(ipnet::IpNet::from)
                .map_err(|_| bad())?,
        };
        if net.trunc() != net {
            return Err(format!(
                "{text:?} has bits set after the prefix: write {}",
                net.trunc()
            ));
        }
        Ok(Self(net))
    }

    /// Whether `ip` is in the network; an IPv4-mapped IPv6 address
    /// (`::ffff:10.1.2.3`, as a dual-stack socket reports IPv4 peers) counts as
    /// its IPv4 address.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

/// Networks for fast lookup: each family's networks as sorted, merged address
/// ranges (IPv4 widened to `u128`), searched by bisection, so a list of thousands
/// costs a few comparisons.
#[derive(Debug, Clone, Default)]
pub struct IpSet {
    v4: Vec<(u128, u128)>,
    v6: Vec<(u128, u128)>,
}

/// Sorts and merges overlapping or adjacent ranges.
fn merged(mut ranges: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    ranges.sort_unstable();
    let mut out: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match out.last_mut() {
            Some(last) if start <= last.1.saturating_add(1) => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

/// The last range starting at or before `ip` contains it, or none does.
fn in_ranges(ranges: &[(u128, u128)], ip: u128) -> bool {
    let after = ranges.partition_point(|&(start, _)| start <= ip);
    after > 0 && ranges[after - 1].1 >= ip
}

impl IpSet {
    pub fn new(nets: &[IpNet]) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for IpNet(net) in nets {
            match net {
                ipnet::IpNet::V4(n) => v4.push((
                    u128::from(u32::from(n.network())),
                    u128::from(u32::from(n.broadcast())),
                )),
                ipnet::IpNet::V6(n) => {
                    v6.push((u128::from(n.network()), u128::from(n.broadcast())))
                }
            }
        }
        Self {
            v4: merged(v4),
            v6: merged(v6),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Whether `ip` is in one of the networks (IPv4-mapped IPv6 as IPv4).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        match ip.to_canonical() {
            std::net::IpAddr::V4(v4) => in_ranges(&self.v4, u128::from(u32::from(v4))),
            std::net::IpAddr::V6(v6) => in_ranges(&self.v6, u128::from(v6)),
        }
    }
}

impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::IpNet;

    fn ip(s: &str) -> std::net::IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_and_single_addresses() {
        let net = IpNet::parse("10.0.0.0/8").unwrap();
        assert!(net.contains(ip("10.200.1.1")));
        assert!(!net.contains(ip("11.0.0.1")));
        let one = IpNet::parse("203.0.113.7").unwrap();
        assert!(one.contains(ip("203.0.113.7")));
        assert!(!one.contains(ip("203.0.113.8")));
        let v6 = IpNet::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
    }

    #[test]
    fn ipv4_mapped_ipv6_peers_match_ipv4_networks_only() {
        let net = IpNet::parse("10.0.0.0/8").unwrap();
        assert!(net.contains(ip("::ffff:10.1.2.3")));
        assert!(!IpNet::parse("::/0")
            .unwrap()
            .contains(ip("::ffff:10.1.2.3")));
    }

    #[test]
    fn a_set_agrees_with_its_networks_one_by_one() {
        let nets: Vec<IpNet> = [
            "10.0.0.0/8",
            "10.1.0.0/16",
            "192.0.2.0/25",
            "192.0.2.128/25",
            "198.51.100.7",
            "2001:db8::/32",
            "::1",
        ]
        .iter()
        .map(|n| IpNet::parse(n).unwrap())
        .collect();
        let set = super::IpSet::new(&nets);
        for probe in [
            "10.2.3.4",
            "9.255.255.255",
            "11.0.0.0",
            "192.0.2.0",
            "192.0.2.255",
            "192.0.3.0",
            "198.51.100.7",
            "198.51.100.8",
            "2001:db8:ffff::1",
            "2001:db9::",
            "::1",
            "::2",
            "::ffff:10.9.9.9",
            "0.0.0.0",
            "255.255.255.255",
        ] {
            let one_by_one = nets.iter().any(|n| n.contains(ip(probe)));
            assert_eq!(set.contains(ip(probe)), one_by_one, "{probe}");
        }
        assert!(super::IpSet::new(&[]).is_empty());
    }

    #[test]
    fn bad_text_and_host_bits_are_refused() {
        for bad in ["10.0.0.0/33", "ten", "10.0.0.0/", "::1/129"] {
            assert!(IpNet::parse(bad).is_err(), "{bad}");
        }
        let e = IpNet::parse("10.0.0.1/8").unwrap_err();
        assert!(e.contains("write 10.0.0.0/8"), "{e}");
    }
}
