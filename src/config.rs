//! Loading `gateway.yaml`: parse, substitute `${ENV}`, type-check, validate.
//!
//! Two layers: [`file`] mirrors the YAML; [`validate`] resolves names and ranges into
//! the runtime [`Config`] below and reports *every* problem with file:line:column and
//! the path of the offending key. Nothing here does I/O besides reading the file.

pub mod demo;
pub mod file;
pub mod interpolate;
pub mod positions;
mod validate;

use crate::filter::FilterConfig;
use crate::routing::{Rewrite, RouteSpec};
pub use crate::store::{StoreBackend, StoreConfig};
pub use demo::Secrets;
use http::HeaderName;
use positions::{Position, PositionIndex};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A validated configuration, ready to build the runtime from.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: Source,
    pub listen: Vec<Listener>,
    pub admin: Admin,
    pub threads: usize,
    pub store: StoreConfig,
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Global filters: run on every route, before the route's own.
    pub filters: Vec<FilterSpec>,
    pub routes: Vec<RouteConfig>,
    pub limits: Limits,
    /// Peers whose `X-Forwarded-For` / `Forwarded` are believed (and appended to).
    pub trusted_proxies: Vec<IpNet>,
    /// After SIGTERM/SIGINT: how long in-flight requests get to finish.
    pub shutdown_grace: Duration,
    pub cache: CacheSettings,
    /// `auth:`: token policy, keys (already loaded) and the token endpoint.
    pub auth: crate::auth::AuthConfig,
    /// `consumers:`: registered clients from the file.
    pub consumers: Vec<crate::auth::consumers::Consumer>,
    /// Whether demo secrets were allowed (`--demo`); reloads keep it.
    pub secrets: Secrets,
    /// The demo secrets in force (only with `Secrets::Demo`), for a warning.
    pub demo_secrets: Vec<ConfigError>,
}

/// The response cache shared by every route's `cache` filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// Bytes held at most (keys, headers and bodies); least valuable entries go first.
    pub max_size: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            max_size: crate::cache::DEFAULT_MAX_SIZE,
        }
    }
}

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

/// Where a config came from and a short hash of its text (for logs and metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub file: PathBuf,
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub address: SocketAddr,
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    pub address: SocketAddr,
    /// Required for `/admin/*`; without it the admin API answers 403.
    pub api_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    pub name: String,
    pub targets: Vec<TargetConfig>,
    pub balance: Balance,
    pub health_check: Option<HealthCheck>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Further targets tried after a connect failure.
    pub retries: u32,
    /// How long a target that refused a connection is skipped.
    pub eject_for: Duration,
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
pub struct HealthCheck {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy: u32,
    pub unhealthy: u32,
}

/// A filter's options as written (checked; built by the runtime).
#[derive(Debug, Clone, PartialEq)]
pub struct FilterSpec {
    pub config: FilterConfig,
}

/// An endpoint the gateway serves itself, as a route target (`serve:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Builtin {
    /// `POST` a username and password, get a token.
    TokenEndpoint,
    /// The public half of an asymmetric signing key, as a JWK set.
    Jwks,
}

impl Builtin {
    /// As written in YAML (`serve: token_endpoint`).
    pub fn name(self) -> &'static str {
        match self {
            Builtin::TokenEndpoint => "token_endpoint",
            Builtin::Jwks => "jwks",
        }
    }
}

/// Where a route's requests go.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RouteTarget {
    /// An upstream group, by name.
    Upstream(String),
    Serve(Builtin),
}

impl std::fmt::Display for RouteTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteTarget::Upstream(name) => f.write_str(name),
            RouteTarget::Serve(b) => write!(f, "serve: {}", b.name()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    pub name: String,
    pub spec: RouteSpec,
    pub target: RouteTarget,
    pub rewrite: Option<Rewrite>,
    /// Largest request body; `limits.max_body` unless the route sets it.
    pub max_body: u64,
    pub filters: Vec<FilterSpec>,
}

/// One configuration problem, located in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub position: Option<Position>,
    /// Path of the offending key, e.g. `routes[2].upstream`; empty for the whole file.
    pub path: String,
    pub message: String,
}

impl ConfigError {
    /// `file:line:col` (or just the file when the position is unknown).
    pub fn file_position(&self) -> String {
        match self.position {
            Some(p) => format!("{}:{}:{}", self.file, p.line, p.col),
            None => self.file.clone(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file_position())?;
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in one file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Reads and validates a configuration file, with `${ENV}` from the process
/// environment. `secrets` says whether the repository's demo secrets are allowed.
pub fn load(path: &Path, secrets: Secrets) -> Result<Config, ConfigErrors> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: name.clone(),
            position: None,
            path: String::new(),
            message: format!("cannot read the configuration file: {e}"),
        }])
    })?;
    parse(&text, path, &|var| std::env::var(var).ok(), secrets)
}

/// Validates configuration text; `file` names it in errors, `env` resolves `${NAME}`.
pub fn parse(
    text: &str,
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    secrets: Secrets,
) -> Result<Config, ConfigErrors> {
    let name = file.display().to_string();
    let at = |position: Option<Position>, path: String, message: String| ConfigError {
        file: name.clone(),
        position,
        path,
        message,
    };
    let positions = PositionIndex::build(text)
        .map_err(|e| ConfigErrors(vec![at(Some(e.position), e.path, e.message)]))?;
    let mut value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
        let position = e.location().map(|l| Position {
            line: l.line(),
            col: l.column(),
        });
        ConfigErrors(vec![at(position, String::new(), e.to_string())])
    })?;
    let locate = |path: String, message: String| at(positions.find(&path), path, message);

    let written = demo::secret_fields(&value);
    let env_errors = interpolate::interpolate(&mut value, env);
    if !env_errors.is_empty() {
        return Err(ConfigErrors(
            env_errors
                .into_iter()
                .map(|e| locate(e.path, e.message))
                .collect(),
        ));
    }
    let source = Source {
        file: file.to_path_buf(),
        hash: content_hash(text),
    };
    let published = demo::published(&written, &demo::secret_fields(&value));
    let located = |errors: Vec<(String, String)>| -> Vec<ConfigError> {
        let mut errors: Vec<ConfigError> = errors
            .into_iter()
            .map(|(path, message)| locate(path, message))
            .collect();
        // Sections are checked in dependency order; report in file order (stable:
        // errors at one position keep the order they were found in).
        errors.sort_by_key(|e| e.position.map(|p| (p.line, p.col)));
        errors
    };
    match (validate::validate(value, source), secrets) {
        (Ok(mut config), Secrets::Demo) => {
            config.secrets = Secrets::Demo;
            config.demo_secrets = located(published);
            Ok(config)
        }
        (Ok(config), Secrets::Production) if published.is_empty() => Ok(config),
        (Ok(_), Secrets::Production) => Err(ConfigErrors(located(published))),
        (Err(errors), Secrets::Demo) => Err(ConfigErrors(located(errors))),
        (Err(mut errors), Secrets::Production) => {
            errors.extend(published);
            Err(ConfigErrors(located(errors)))
        }
    }
}

/// serde names Rust types in its messages (`invalid type: string "many", expected
/// u32`); say what to write instead.
pub(crate) fn plain_message(message: String) -> String {
    let wanted = [
        ("u8", format!("from 0 to {}", u8::MAX)),
        ("u16", format!("from 0 to {}", u16::MAX)),
        ("u32", format!("from 0 to {}", u32::MAX)),
        ("u64", "0 or more".to_owned()),
        ("usize", "0 or more".to_owned()),
    ];
    for (rust_type, range) in wanted {
        if let Some(head) = message.strip_suffix(&format!(", expected {rust_type}")) {
            return format!("{head}, expected a whole number {range}");
        }
    }
    message
}

/// FNV-1a of the file text, as 16 hex digits: stable across builds and platforms.
pub fn content_hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}
