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

/// An IP network (`10.0.0.0/8`, `::1/128`, or a single address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not an IP address or network like 10.0.0.0/8");
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (text, None),
        };
        let addr: std::net::IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { addr, prefix })
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        let ip = match ip {
            V6(v6) => v6.to_ipv4_mapped().map_or(V6(v6), V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (V4(net), V4(ip)) => mask_eq(&net.octets(), &ip.octets(), self.prefix),
            (V6(net), V6(ip)) => mask_eq(&net.octets(), &ip.octets(), self.prefix),
            _ => false,
        }
    }
}

fn mask_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    a[..full] == b[..full] && (rest == 0 || (a[full] ^ b[full]) >> (8 - rest) == 0)
}
