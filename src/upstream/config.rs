//! An upstream group's settings, validated (`upstreams.NAME` in the file).

use super::tls::UpstreamTls;
use http::HeaderName;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    pub name: String,
    pub targets: Vec<TargetConfig>,
    pub balance: Balance,
    pub health_check: Option<HealthCheckConfig>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Further targets tried after a connect failure.
    pub retries: u32,
    /// How long a target that refused a connection is skipped.
    pub eject_for: Duration,
    /// TLS to the targets, loaded at validation (None: plain TCP).
    pub tls: Option<Arc<UpstreamTls>>,
    /// HTTP/2 to the targets: offered by ALPN over TLS (HTTP/1.1 when a target
    /// does not take it), prior knowledge (h2c) without TLS.
    pub http2: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetConfig {
    pub address: SocketAddr,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Balance {
    /// Smooth weighted round robin (nginx's algorithm); `weighted` is the same.
    RoundRobin,
    LeastConn,
    /// Weighted random.
    Random,
    /// Weighted rendezvous hashing on the given key.
    ConsistentHash(HashOn),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOn {
    Consumer,
    Ip,
    Header(HeaderName),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckConfig {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy: u32,
    pub unhealthy: u32,
}
