//! The configuration file as written: serde types that mirror `gateway.yaml` one to
//! one. Unknown keys are errors. Nothing here resolves names or checks
//! ranges; that is `validate.rs`.

use super::Builtin;
use crate::store::StoreBackend;
use crate::units::{DurationStr, SizeStr};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;

/// The top-level keys, in the order the reference documents them.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "listen",
    "admin",
    "threads",
    "store",
    "upstreams",
    "filters",
    "routes",
    "limits",
    "trusted_proxies",
    "shutdown",
    "cache",
    "auth",
    "consumers",
    "logging",
    "tracing",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenFile {
    pub address: String,
    #[serde(default)]
    pub tls: Option<TlsFile>,
    /// TLS listeners: offer HTTP/2 by ALPN (default true).
    #[serde(default)]
    pub http2: Option<bool>,
    /// Plain listeners: accept cleartext HTTP/2 with prior knowledge (default false).
    #[serde(default)]
    pub h2c: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// One or more certificates, chosen by SNI; the first is the default.
    #[serde(default)]
    pub certs: Option<Vec<CertPairFile>>,
    /// Shorthand for a single certificate.
    #[serde(default)]
    pub cert: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    /// `"1.2"` (default) or `"1.3"`; a bare YAML number is accepted too.
    #[serde(default)]
    pub min_version: Option<serde_yaml::Value>,
    #[serde(default)]
    pub client_auth: Option<ClientAuthFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertPairFile {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientAuthFile {
    pub ca: String,
    #[serde(default)]
    pub required: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    pub address: String,
    #[serde(default)]
    pub api_key: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StoreFile {
    #[serde(default)]
    pub backend: StoreBackend,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub timeout: Option<DurationStr>,
}

/// `cache:` — the response cache shared by every route's `cache` filter.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CacheFile {
    #[serde(default)]
    pub max_size: Option<SizeStr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BalanceFile {
    RoundRobin,
    Weighted,
    LeastConn,
    ConsistentHash,
    Random,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    pub targets: Vec<TargetFile>,
    #[serde(default)]
    pub balance: Option<BalanceFile>,
    #[serde(default)]
    pub hash_on: Option<String>,
    #[serde(default)]
    pub health_check: Option<HealthCheckFile>,
    #[serde(default)]
    pub connect_timeout: Option<DurationStr>,
    #[serde(default)]
    pub read_timeout: Option<DurationStr>,
    #[serde(default)]
    pub retries: Option<u32>,
    /// How long a target that refused a connection is skipped (passive ejection).
    #[serde(default)]
    pub eject_for: Option<DurationStr>,
    /// TLS to the targets (requests and health checks).
    #[serde(default)]
    pub tls: Option<UpstreamTlsFile>,
    /// Speak HTTP/2 to the targets.
    #[serde(default)]
    pub http2: Option<bool>,
}

/// `upstreams.NAME.tls`: file paths as written (relative to the config file).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsFile {
    #[serde(default)]
    pub sni: Option<String>,
    #[serde(default)]
    pub ca: Option<String>,
    #[serde(default)]
    pub verify: Option<bool>,
    #[serde(default)]
    pub client_cert: Option<String>,
    #[serde(default)]
    pub client_key: Option<String>,
}

/// A target: `127.0.0.1:9101` or `{ address: 127.0.0.1:9101, weight: 2 }`.
#[derive(Debug, Clone)]
pub struct TargetFile {
    pub address: String,
    pub weight: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetMap {
    address: String,
    #[serde(default)]
    weight: Option<u32>,
}

impl<'de> Deserialize<'de> for TargetFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TargetFile;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an address like 127.0.0.1:9101 or { address: ..., weight: N }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TargetFile, E> {
                Ok(TargetFile {
                    address: v.to_owned(),
                    weight: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TargetFile, A::Error> {
                let t = TargetMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(TargetFile {
                    address: t.address,
                    weight: t.weight,
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckFile {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub interval: Option<DurationStr>,
    #[serde(default)]
    pub timeout: Option<DurationStr>,
    /// Consecutive successes that bring a target back.
    #[serde(default)]
    pub healthy: Option<u32>,
    /// Consecutive failures that take a target out.
    #[serde(default)]
    pub unhealthy: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub name: String,
    #[serde(rename = "match")]
    pub matcher: MatchFile,
    /// Where requests go: an upstream group, or (`serve`) an endpoint of the gateway's own.
    #[serde(default)]
    pub upstream: Option<String>,
    #[serde(default)]
    pub serve: Option<Builtin>,
    #[serde(default)]
    pub rewrite: Option<RewriteFile>,
    /// Largest request body on this route (`0B` = no body); default `limits.max_body`.
    #[serde(default)]
    pub max_body: Option<SizeStr>,
    /// Typed one filter at a time by validation, so one bad filter hides nothing else.
    #[serde(default)]
    pub filters: serde_yaml::Value,
}

/// Edge limits (all optional; the defaults survive a slowloris run from one machine).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    #[serde(default)]
    pub max_header_bytes: Option<SizeStr>,
    #[serde(default)]
    pub max_headers: Option<usize>,
    #[serde(default)]
    pub max_uri_bytes: Option<SizeStr>,
    #[serde(default)]
    pub max_body: Option<SizeStr>,
    #[serde(default)]
    pub header_timeout: Option<DurationStr>,
    #[serde(default)]
    pub body_timeout: Option<DurationStr>,
    #[serde(default)]
    pub min_body_rate: Option<SizeStr>,
    #[serde(default)]
    pub idle_timeout: Option<DurationStr>,
    #[serde(default)]
    pub max_requests_per_connection: Option<u32>,
    #[serde(default)]
    pub max_connections: Option<usize>,
    #[serde(default)]
    pub write_timeout: Option<DurationStr>,
    #[serde(default)]
    pub max_chunks: Option<u64>,
    #[serde(default)]
    pub admin_max_connections: Option<usize>,
    /// `allow` (default) or `reject`.
    #[serde(default)]
    pub semicolon_in_path: Option<SemicolonInPath>,
}

/// What to do with a `;` in a request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SemicolonInPath {
    Allow,
    Reject,
}

/// Graceful shutdown (SIGTERM / SIGINT / upgrade hand-over).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ShutdownFile {
    /// Longest time in-flight requests get to finish.
    #[serde(default)]
    pub grace_period: Option<DurationStr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchFile {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    #[serde(default)]
    pub host: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewriteFile {
    #[serde(default)]
    pub strip_prefix: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
}
