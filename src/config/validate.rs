//! From the typed file to the runtime [`Config`], collecting every problem.
//!
//! Sections and list items are deserialized one by one, so a type error in one route
//! does not hide a problem in the next: `fingate validate` lists them all at once.

use super::file::CacheFile;
use super::file::{
    BalanceFile, HealthCheckFile, RouteFile, StoreFile, UpstreamFile, TOP_LEVEL_KEYS,
};
use super::*;
use crate::filter::cache::cache_before_auth;
use crate::filter::{FilterCheck, FilterFile};
use crate::routing::{PathPattern, PathTemplate, RouteTable};
use serde::de::DeserializeOwned;
use serde_yaml::Value;
use std::collections::{BTreeSet, HashMap};

mod listeners;
mod routes;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests_observability;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests_routes;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests_tls;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests_upstream_tls;
mod upstreams;

use listeners::{check_mtls, listeners};
use routes::{check_cache_after_auth, check_global_idempotency, routes, typed_filter_list};
use upstreams::upstreams;

pub(super) use crate::yaml::{plain_message, typed, Errors};

const MIN_API_KEY_LEN: usize = 16;

fn push(errors: &mut Errors, path: impl Into<String>, message: impl Into<String>) {
    errors.push((path.into(), message.into()));
}

/// Deserializes each item of a sequence separately.
fn typed_list<T: DeserializeOwned>(value: Value, base: &str, errors: &mut Errors) -> Vec<T> {
    match value {
        Value::Sequence(items) => items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| typed(item, &format!("{base}[{i}]"), errors))
            .collect(),
        Value::Null => Vec::new(),
        _ => {
            push(errors, base, "expected a list");
            Vec::new()
        }
    }
}

fn socket_addr(text: &str, path: &str, errors: &mut Errors) -> Option<SocketAddr> {
    text.parse()
        .map_err(|_| {
            push(
                errors,
                path,
                format!("invalid address {text:?}: expected IP:port, e.g. 127.0.0.1:9101 (host names are not resolved)"),
            )
        })
        .ok()
}

pub(super) fn validate(root: Value, source: Source) -> Result<Config, Errors> {
    let mut errors = Errors::new();
    let mut sections: HashMap<String, Value> = HashMap::new();
    match root {
        Value::Mapping(map) => {
            for (key, value) in map {
                let key = key.as_str().unwrap_or_default().to_owned();
                if TOP_LEVEL_KEYS.contains(&key.as_str()) {
                    sections.insert(key, value);
                } else {
                    push(
                        &mut errors,
                        key.clone(),
                        format!(
                            "unknown key {key:?} (expected one of: {})",
                            TOP_LEVEL_KEYS.join(", ")
                        ),
                    );
                }
            }
        }
        // Nothing else to check: every section would only be reported missing.
        Value::Null => {
            push(
                &mut errors,
                "",
                "the file is empty: it needs at least `listen`, `upstreams` and `routes`",
            );
            return Err(errors);
        }
        _ => {
            push(&mut errors, "", "expected a mapping of top-level keys");
            return Err(errors);
        }
    }
    let mut take = |key: &str| sections.remove(key).unwrap_or(Value::Null);

    let base_dir = source.file.parent().unwrap_or(std::path::Path::new("."));
    let listen = listeners(
        typed_list(take("listen"), "listen", &mut errors),
        base_dir,
        &mut errors,
    );
    let admin = admin(take("admin"), &listen, &mut errors);
    let threads = threads(take("threads"), &mut errors);
    let store = store(take("store"), &mut errors);
    let (upstreams, declared) = upstreams(take("upstreams"), base_dir, &mut errors);
    let auth = crate::auth::settings::auth(take("auth"), base_dir, &mut errors);
    let consumers = crate::auth::settings::consumers(take("consumers"), &mut errors);
    // Filters are checked against the config's own keys (the `jwt` filter needs them).
    let check = FilterCheck {
        auth: &auth,
        base_dir,
    };
    let filters = typed_filter_list(take("filters"), "filters", &check, &mut errors);
    let limits = limits(take("limits"), &mut errors);
    let trusted_proxies = trusted_proxies(take("trusted_proxies"), &mut errors);
    let shutdown_grace = shutdown_grace(take("shutdown"), &mut errors);
    let targets = routes::Targets {
        upstreams: &declared,
        auth: &auth,
        filters: check,
    };
    let (routes, table) = routes(take("routes"), &targets, limits.max_body, &mut errors);
    let cache = cache_settings(take("cache"), &mut errors);
    check_cache_after_auth(&filters, &routes, &mut errors);
    check_global_idempotency(&filters, &mut errors);
    check_mtls(&listen, &consumers, &filters, &routes, &mut errors);
    let tracing = crate::trace::tracing_settings(take("tracing"), &mut errors);
    let route_params = routes.iter().flat_map(|r| r.spec.pattern.param_names());
    let logging = crate::logging::redact::settings(take("logging"), route_params, &mut errors);

    match table {
        Some(table) if errors.is_empty() => Ok(Config {
            source,
            listen,
            admin: admin.unwrap_or_else(default_admin),
            threads,
            store,
            upstreams,
            filters,
            routes,
            table: std::sync::Arc::new(table),
            limits,
            trusted_proxies,
            shutdown_grace,
            cache,
            auth,
            consumers,
            secrets: Secrets::Production,
            demo_secrets: Vec::new(),
            logging,
            tracing,
        }),
        // Without a table (no valid route), `routes` was reported.
        _ => Err(errors),
    }
}

fn cache_settings(value: Value, errors: &mut Errors) -> CacheConfig {
    let mut out = CacheConfig::default();
    if value.is_null() {
        return out;
    }
    let Some(file) = typed::<CacheFile>(value, "cache", errors) else {
        return out;
    };
    if let Some(size) = file.max_size {
        if size.0 < MIN_CACHE_SIZE {
            push(
                errors,
                "cache.max_size",
                format!("{} bytes is too small: use at least 64KiB", size.0),
            );
        }
        out.max_size = size.0;
    }
    out
}

/// Smallest `cache.max_size`: below it hardly any response fits.
const MIN_CACHE_SIZE: u64 = 64 * 1024;

fn default_admin() -> AdminConfig {
    AdminConfig {
        address: SocketAddr::from(([127, 0, 0, 1], 9901)),
        api_key: None,
    }
}

fn admin(value: Value, listen: &[ListenConfig], errors: &mut Errors) -> Option<AdminConfig> {
    if value.is_null() {
        return None;
    }
    let file: super::file::AdminFile = typed(value, "admin", errors)?;
    let address = socket_addr(&file.address, "admin.address", errors)?;
    if listen.iter().any(|l| l.address == address) {
        push(
            errors,
            "admin.address",
            format!(
                "{address} is also a public listener; the admin API must never be served publicly"
            ),
        );
    }
    if let Some(key) = &file.api_key {
        if key.len() < MIN_API_KEY_LEN {
            push(
                errors,
                "admin.api_key",
                format!(
                    "too short ({} characters): use at least {MIN_API_KEY_LEN} random characters",
                    key.len()
                ),
            );
        }
    }
    Some(AdminConfig {
        address,
        api_key: file.api_key,
    })
}

fn threads(value: Value, errors: &mut Errors) -> usize {
    let default = std::thread::available_parallelism().map_or(1, |n| n.get());
    if value.is_null() {
        return default;
    }
    match typed::<usize>(value, "threads", errors) {
        Some(n) if (1..=1024).contains(&n) => n,
        Some(n) => {
            push(
                errors,
                "threads",
                format!("{n} is out of range: use 1 to 1024"),
            );
            default
        }
        None => default,
    }
}

fn store(value: Value, errors: &mut Errors) -> StoreConfig {
    let file: StoreFile = if value.is_null() {
        StoreFile::default()
    } else {
        typed(value, "store", errors).unwrap_or_default()
    };
    match (&file.backend, &file.url) {
        (StoreBackend::Redis, None) => push(
            errors,
            "store",
            "backend: redis needs `url`, e.g. redis://127.0.0.1:6379/0",
        ),
        (StoreBackend::Memory, Some(_)) => push(
            errors,
            "store.url",
            "`url` is only used with backend: redis",
        ),
        (StoreBackend::Redis, Some(url)) => {
            if let Err(e) = crate::store::Topology::parse(url) {
                push(errors, "store.url", e);
            }
        }
        _ => {}
    }
    let timeout = file.timeout.map_or(Duration::from_millis(50), |d| d.0);
    if timeout.is_zero() {
        push(errors, "store.timeout", "must be greater than 0");
    }
    StoreConfig {
        backend: file.backend,
        url: file.url,
        timeout,
    }
}

/// Route names become metric labels and log fields: keep them plain.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn limits(value: Value, errors: &mut Errors) -> Limits {
    let d = Limits::default();
    if value.is_null() {
        return d;
    }
    let Some(f) = typed::<super::file::LimitsFile>(value, "limits", errors) else {
        return d;
    };
    let size = |v: Option<crate::units::SizeStr>, default: usize| {
        v.map_or(default, |s| usize::try_from(s.0).unwrap_or(usize::MAX))
    };
    let limits = Limits {
        max_header_bytes: size(f.max_header_bytes, d.max_header_bytes),
        max_headers: f.max_headers.unwrap_or(d.max_headers),
        max_uri_bytes: size(f.max_uri_bytes, d.max_uri_bytes),
        max_body: f.max_body.map_or(d.max_body, |s| s.0),
        header_timeout: f.header_timeout.map_or(d.header_timeout, |t| t.0),
        body_timeout: f.body_timeout.map_or(d.body_timeout, |t| t.0),
        min_body_rate: f.min_body_rate.map_or(d.min_body_rate, |s| s.0),
        idle_timeout: f.idle_timeout.map_or(d.idle_timeout, |t| t.0),
        max_requests_per_connection: f
            .max_requests_per_connection
            .unwrap_or(d.max_requests_per_connection),
        max_connections: f.max_connections.unwrap_or(d.max_connections),
        write_timeout: f.write_timeout.map_or(d.write_timeout, |t| t.0),
        max_chunks: f.max_chunks.unwrap_or(d.max_chunks),
        admin_max_connections: f.admin_max_connections.unwrap_or(d.admin_max_connections),
        reject_semicolon: f.semicolon_in_path == Some(super::file::SemicolonInPath::Reject),
    };
    // Pingora refuses request heads over 1 MiB itself; above that a limit would be a lie.
    if !(1024..=1024 * 1024).contains(&limits.max_header_bytes) {
        push(errors, "limits.max_header_bytes", "use 1KiB to 1MiB");
    }
    if !(1..=256).contains(&limits.max_headers) {
        push(errors, "limits.max_headers", "use 1 to 256");
    }
    if limits.max_uri_bytes < 64 {
        push(errors, "limits.max_uri_bytes", "use at least 64B");
    }
    for (key, d) in [
        ("header_timeout", limits.header_timeout),
        ("body_timeout", limits.body_timeout),
        ("idle_timeout", limits.idle_timeout),
        ("write_timeout", limits.write_timeout),
    ] {
        if d < Duration::from_secs(1) {
            push(errors, format!("limits.{key}"), "use at least 1s");
        }
    }
    if limits.max_requests_per_connection == 0 {
        push(
            errors,
            "limits.max_requests_per_connection",
            "must be at least 1",
        );
    }
    if limits.max_connections == 0 {
        push(errors, "limits.max_connections", "must be at least 1");
    }
    if !(1..=MAX_CHUNKS_CEILING).contains(&limits.max_chunks) {
        push(
            errors,
            "limits.max_chunks",
            format!(
                "{} is out of range: use 1 to {MAX_CHUNKS_CEILING} chunks per request body",
                limits.max_chunks
            ),
        );
    }
    if !(1..=ADMIN_CONNECTIONS_CEILING).contains(&limits.admin_max_connections) {
        push(
            errors,
            "limits.admin_max_connections",
            format!(
                "{} is out of range: use 1 to {ADMIN_CONNECTIONS_CEILING}",
                limits.admin_max_connections
            ),
        );
    }
    limits
}

/// Highest `limits.max_chunks`: a body of more chunks than this is a flood, not an
/// upload (a 1 GiB body in 64-byte chunks is exactly this many).
const MAX_CHUNKS_CEILING: u64 = 16 * 1024 * 1024;

/// Highest `limits.admin_max_connections`: the admin listener serves operators and
/// scrapers, never the public.
const ADMIN_CONNECTIONS_CEILING: usize = 1024;

fn shutdown_grace(value: Value, errors: &mut Errors) -> Duration {
    let default = Duration::from_secs(30);
    if value.is_null() {
        return default;
    }
    let grace = typed::<super::file::ShutdownFile>(value, "shutdown", errors)
        .and_then(|f| f.grace_period)
        .map_or(default, |d| d.0);
    if grace > Duration::from_secs(3600) {
        push(errors, "shutdown.grace_period", "use at most 1h");
    }
    grace
}

fn trusted_proxies(value: Value, errors: &mut Errors) -> Vec<IpNet> {
    typed_list::<String>(value, "trusted_proxies", errors)
        .iter()
        .enumerate()
        .filter_map(|(i, text)| {
            IpNet::parse(text)
                .map_err(|e| push(errors, format!("trusted_proxies[{i}]"), e))
                .ok()
        })
        .collect()
}
