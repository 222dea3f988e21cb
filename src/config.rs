//! Loading `gateway.yaml`: parse, substitute `${ENV}`, type-check, validate.
//!
//! Two layers: [`file`] mirrors the YAML; [`validate`] resolves names and ranges into
//! the runtime [`Config`] below and reports *every* problem with file:line:column and
//! the path of the offending key. Nothing here does I/O besides reading the file.
//!
//! One naming scheme per tier: `XFile` mirrors the YAML (a filter's options are its
//! `XOptions`, inside [`FilterFile`]); `XConfig` is validated; `X` is what the
//! runtime builds from it (`UpstreamConfig` → `UpstreamGroup`, `RouteConfig` →
//! `Route`, `FilterConfig` → a `Filter`). Validation returns what it built where the
//! runtime can use it as is (the route table).

pub mod demo;
pub mod file;
pub mod interpolate;
pub mod positions;
mod validate;

pub use crate::edge::limits::{IpNet, Limits};
use crate::edge::tls::ServerTls;
use crate::filter::{CheckedFilter, FilterFile};
use crate::routing::{Rewrite, RouteSpec, RouteTable};
pub use crate::store::{StoreBackend, StoreConfig};
pub use crate::upstream::config::{
    Balance, HashOn, HealthCheckConfig, TargetConfig, UpstreamConfig,
};
pub use demo::Secrets;
use http::HeaderName;
use positions::{Position, PositionIndex};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A validated configuration, ready to build the runtime from.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: Source,
    pub listen: Vec<ListenConfig>,
    pub admin: AdminConfig,
    pub threads: usize,
    pub store: StoreConfig,
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Global filters: run on every route, before the route's own.
    pub filters: Vec<FilterConfig>,
    pub routes: Vec<RouteConfig>,
    /// The route table as validation built it; its values index `routes`.
    pub table: Arc<RouteTable<usize>>,
    pub limits: Limits,
    /// Peers whose `X-Forwarded-For` / `Forwarded` are believed (and appended to).
    pub trusted_proxies: Vec<IpNet>,
    /// After SIGTERM/SIGINT: how long in-flight requests get to finish.
    pub shutdown_grace: Duration,
    pub cache: CacheConfig,
    /// `auth:`: token policy, keys (already loaded) and the token endpoint.
    pub auth: crate::auth::AuthConfig,
    /// `consumers:`: registered clients from the file.
    pub consumers: Vec<crate::auth::consumers::Consumer>,
    /// Whether demo secrets were allowed (`--demo`); reloads keep it.
    pub secrets: Secrets,
    /// The demo secrets in force (only with `Secrets::Demo`), for a warning.
    pub demo_secrets: Vec<ConfigError>,
    /// `logging:`: what the access log redacts.
    pub logging: crate::logging::redact::LoggingConfig,
    /// `tracing:`; None: no trace context, no spans.
    pub tracing: Option<crate::trace::TracingConfig>,
}

/// The response cache shared by every route's `cache` filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Bytes held at most (keys, headers and bodies); least valuable entries go first.
    pub max_size: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_size: crate::cache::DEFAULT_MAX_SIZE,
        }
    }
}

/// Where a config came from and a short hash of its text (for logs and metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub file: PathBuf,
    pub hash: String,
}

/// A public listener. Everything but its address follows reloads: each new
/// connection takes the settings in force when it is accepted.
#[derive(Debug, Clone)]
pub struct ListenConfig {
    pub address: SocketAddr,
    /// The address as written, for metric labels and logs.
    pub name: Arc<str>,
    pub tls: Option<Arc<ServerTls>>,
    /// Plain listeners: cleartext HTTP/2 with prior knowledge.
    pub h2c: bool,
}

impl Config {
    /// Files the configuration reads besides itself that may change on their
    /// own (certificates, keys, CA bundles), for `--watch`.
    pub fn named_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for tls in self.listen.iter().filter_map(|l| l.tls.as_deref()) {
            for (cert, key) in &tls.settings.certs {
                files.extend([cert.clone(), key.clone()]);
            }
            files.extend(tls.settings.client_auth.iter().map(|c| c.ca.clone()));
        }
        for tls in self.upstreams.values().filter_map(|u| u.tls.as_deref()) {
            files.extend(tls.settings.ca.iter().cloned());
            if let Some((cert, key)) = &tls.settings.client {
                files.extend([cert.clone(), key.clone()]);
            }
        }
        files
    }
}

impl PartialEq for ListenConfig {
    /// Equal settings and the same certificates (by name and validity).
    fn eq(&self, other: &Self) -> bool {
        let tls =
            |t: &Option<Arc<ServerTls>>| t.as_ref().map(|t| (t.settings.clone(), t.certs.clone()));
        self.address == other.address && self.h2c == other.h2c && tls(&self.tls) == tls(&other.tls)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    pub address: SocketAddr,
    /// Required for `/admin/*`; without it the admin API answers 403.
    pub api_key: Option<String>,
}

/// A filter, validated: its options as written, and as checked (what the runtime
/// builds the filter from).
#[derive(Clone)]
pub struct FilterConfig {
    pub config: FilterFile,
    pub checked: CheckedFilter,
}

/// Compared and shown by the options as written: that is what identifies a
/// filter's configuration across reloads (and in route fingerprints).
impl PartialEq for FilterConfig {
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config
    }
}

impl fmt::Debug for FilterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.config.fmt(f)
    }
}

/// An endpoint the gateway serves itself, as a route target (`serve:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Builtin {
    /// `POST` a username and password, get a token.
    TokenEndpoint,
    /// The public halves of the gateway's asymmetric keys, as a JWK set.
    Jwks,
    /// OAuth 2.0 authorization server metadata (RFC 8414).
    OauthMetadata,
}

impl Builtin {
    /// As written in YAML (`serve: token_endpoint`).
    pub fn name(self) -> &'static str {
        match self {
            Builtin::TokenEndpoint => "token_endpoint",
            Builtin::Jwks => "jwks",
            Builtin::OauthMetadata => "oauth_metadata",
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
    pub filters: Vec<FilterConfig>,
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

/// FNV-1a of the file text, as 16 hex digits: stable across builds and platforms.
pub fn content_hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}
