//! From the typed file to the runtime [`Config`], collecting every problem.
//!
//! Sections and list items are deserialized one by one, so a type error in one route
//! does not hide a problem in the next: `fingate validate` lists them all at once.

use super::file::CacheFile;
use super::file::{
    BalanceFile, HealthCheckFile, ListenFile, RouteFile, StoreBackend, StoreFile, UpstreamFile,
    TOP_LEVEL_KEYS,
};
use super::*;
use crate::filter::cache::cache_before_auth;
use crate::filter::{FilterConfig, FilterDeps};
use crate::routing::{PathPattern, PathTemplate, RouteTable};
use serde::de::DeserializeOwned;
use serde_yaml::Value;
use std::collections::{BTreeSet, HashMap};

/// (path, message) pairs; the caller adds file positions.
pub(super) type Errors = Vec<(String, String)>;

const MAX_WEIGHT: u32 = 1000;
const MAX_RETRIES: u32 = 10;
const MIN_API_KEY_LEN: usize = 16;

fn push(errors: &mut Errors, path: impl Into<String>, message: impl Into<String>) {
    errors.push((path.into(), message.into()));
}

/// Deserializes one node, reporting the full path of any type error.
fn typed<T: DeserializeOwned>(value: Value, base: &str, errors: &mut Errors) -> Option<T> {
    match serde_path_to_error::deserialize(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let inner = e.path().to_string();
            let path = match (base.is_empty(), inner.as_str()) {
                (_, ".") => base.to_owned(),
                (true, _) => inner,
                (false, i) if i.starts_with('[') => format!("{base}{i}"),
                (false, i) => format!("{base}.{i}"),
            };
            push(errors, path, e.into_inner().to_string());
            None
        }
    }
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
        Value::Null => push(
            &mut errors,
            "",
            "the file is empty: it needs at least `listen`, `upstreams` and `routes`",
        ),
        _ => push(&mut errors, "", "expected a mapping of top-level keys"),
    }
    let mut take = |key: &str| sections.remove(key).unwrap_or(Value::Null);

    let listen = listeners(
        typed_list(take("listen"), "listen", &mut errors),
        &mut errors,
    );
    let admin = admin(take("admin"), &listen, &mut errors);
    let threads = threads(take("threads"), &mut errors);
    let store = store(take("store"), &mut errors);
    let (upstreams, declared) = upstreams(take("upstreams"), &mut errors);
    let base_dir = source.file.parent().unwrap_or(std::path::Path::new("."));
    let auth = crate::auth::settings::auth(take("auth"), base_dir, &mut errors);
    let consumers = crate::auth::settings::consumers(take("consumers"), &mut errors);
    // Filters are checked against the config's own keys (the `jwt` filter needs them).
    let deps = FilterDeps {
        auth: std::sync::Arc::new(auth.clone()),
        ..FilterDeps::for_validation()
    };
    let filters = typed_filter_list(take("filters"), "filters", &deps, &mut errors);
    let limits = limits(take("limits"), &mut errors);
    let trusted_proxies = trusted_proxies(take("trusted_proxies"), &mut errors);
    let shutdown_grace = shutdown_grace(take("shutdown"), &mut errors);
    let routes = routes(
        take("routes"),
        &declared,
        limits.max_body,
        &deps,
        &mut errors,
    );
    let cache = cache_settings(take("cache"), &mut errors);
    check_cache_after_auth(&filters, &routes, &mut errors);

    if errors.is_empty() {
        Ok(Config {
            source,
            listen,
            admin: admin.unwrap_or_else(default_admin),
            threads,
            store,
            upstreams,
            filters,
            routes,
            limits,
            trusted_proxies,
            shutdown_grace,
            cache,
            auth,
            consumers,
        })
    } else {
        Err(errors)
    }
}

fn cache_settings(value: Value, errors: &mut Errors) -> CacheSettings {
    let mut out = CacheSettings::default();
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

/// A global cache that runs before a route's `jwt` (see [`cache_before_auth`]).
fn check_cache_after_auth(global: &[FilterSpec], routes: &[RouteConfig], errors: &mut Errors) {
    let names = |list: &[FilterSpec]| list.iter().map(|f| f.config.name()).collect::<Vec<_>>();
    let global_names = names(global);
    let early = routes.iter().find_map(|r| {
        let all = [global_names.clone(), names(&r.filters)].concat();
        cache_before_auth(&all).filter(|i| *i < global.len())
    });
    if let Some(i) = early.or_else(|| cache_before_auth(&global_names)) {
        push(errors, format!("filters[{i}].cache"), CACHE_BEFORE_JWT);
    }
}

/// The same rule within one route's own filters.
fn check_route_cache_order(filters: &[FilterSpec], base: &str, errors: &mut Errors) {
    let names: Vec<&str> = filters.iter().map(|f| f.config.name()).collect();
    if let Some(c) = cache_before_auth(&names) {
        push(
            errors,
            format!("{base}.filters[{c}].cache"),
            CACHE_BEFORE_JWT,
        );
    }
}

const CACHE_BEFORE_JWT: &str = "`cache` runs before `jwt` here, so a cached answer would be served before the token is checked: list `jwt` first";

/// Smallest `cache.max_size`: below it hardly any response fits.
const MIN_CACHE_SIZE: u64 = 64 * 1024;

fn default_admin() -> Admin {
    Admin {
        address: SocketAddr::from(([127, 0, 0, 1], 9901)),
        api_key: None,
    }
}

fn listeners(files: Vec<ListenFile>, errors: &mut Errors) -> Vec<Listener> {
    let mut out: Vec<Listener> = Vec::new();
    for (i, l) in files.into_iter().enumerate() {
        let path = format!("listen[{i}].address");
        let Some(address) = socket_addr(&l.address, &path, errors) else {
            continue;
        };
        if out.iter().any(|o| o.address == address) {
            push(errors, path, format!("{address} is listed twice"));
            continue;
        }
        let tls = l.tls.map(|t| TlsFiles {
            cert: t.cert.into(),
            key: t.key.into(),
        });
        out.push(Listener { address, tls });
    }
    if out.is_empty() && !errors.iter().any(|(p, _)| p.starts_with("listen")) {
        push(
            errors,
            "listen",
            "at least one listener is required, e.g. `listen: [{ address: 127.0.0.1:8080 }]`",
        );
    }
    out
}

fn admin(value: Value, listen: &[Listener], errors: &mut Errors) -> Option<Admin> {
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
    Some(Admin {
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

fn store(value: Value, errors: &mut Errors) -> Store {
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
        (StoreBackend::Redis, Some(url))
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) =>
        {
            push(
                errors,
                "store.url",
                format!("{url:?} is not a redis:// or rediss:// URL"),
            )
        }
        _ => {}
    }
    let timeout = file.timeout.map_or(Duration::from_millis(50), |d| d.0);
    if timeout.is_zero() {
        push(errors, "store.timeout", "must be greater than 0");
    }
    Store {
        backend: file.backend,
        url: file.url,
        timeout,
    }
}

/// The valid upstream groups, and the names of every group declared (valid or not),
/// so a route naming a broken group is not also told the group is unknown.
fn upstreams(value: Value, errors: &mut Errors) -> (BTreeMap<String, UpstreamConfig>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut declared = Vec::new();
    let map = match value {
        Value::Mapping(map) => map,
        Value::Null => {
            push(
                errors,
                "upstreams",
                "at least one upstream group is required",
            );
            return (out, declared);
        }
        _ => {
            push(
                errors,
                "upstreams",
                "expected a mapping of upstream names to groups",
            );
            return (out, declared);
        }
    };
    for (key, value) in map {
        let name = key.as_str().unwrap_or_default().to_owned();
        let base = format!("upstreams.{name}");
        declared.push(name.clone());
        if !valid_name(&name) {
            push(
                errors,
                &base,
                format!("invalid upstream name {name:?}: use letters, digits, '-', '_' and '.'"),
            );
        }
        if let Some(file) = typed::<UpstreamFile>(value, &base, errors) {
            if let Some(u) = upstream(name.clone(), file, &base, errors) {
                out.insert(name, u);
            }
        }
    }
    (out, declared)
}

fn upstream(
    name: String,
    file: UpstreamFile,
    base: &str,
    errors: &mut Errors,
) -> Option<UpstreamConfig> {
    let before = errors.len();
    if file.targets.is_empty() {
        push(
            errors,
            format!("{base}.targets"),
            "an upstream needs at least one target",
        );
    }
    let mut targets: Vec<TargetConfig> = Vec::new();
    for (i, t) in file.targets.iter().enumerate() {
        let path = format!("{base}.targets[{i}]");
        let Some(address) = socket_addr(&t.address, &path, errors) else {
            continue;
        };
        let weight = t.weight.unwrap_or(1);
        if !(1..=MAX_WEIGHT).contains(&weight) {
            push(
                errors,
                format!("{path}.weight"),
                format!("{weight} is out of range: use 1 to {MAX_WEIGHT}"),
            );
        }
        if targets.iter().any(|o| o.address == address) {
            push(errors, &path, format!("{address} is listed twice"));
        }
        targets.push(TargetConfig { address, weight });
    }
    let balance = match (file.balance, file.hash_on.as_deref()) {
        (Some(BalanceFile::ConsistentHash), hash_on) => {
            Balance::ConsistentHash(hash_on_key(hash_on.unwrap_or("ip"), base, errors))
        }
        (_, Some(_)) => {
            push(
                errors,
                format!("{base}.hash_on"),
                "`hash_on` is only used with balance: consistent_hash",
            );
            Balance::RoundRobin
        }
        (None | Some(BalanceFile::RoundRobin | BalanceFile::Weighted), None) => Balance::RoundRobin,
        (Some(BalanceFile::LeastConn), None) => Balance::LeastConn,
        (Some(BalanceFile::Random), None) => Balance::Random,
    };
    let health_check = file
        .health_check
        .and_then(|h| health_check(h, &format!("{base}.health_check"), errors));
    let positive =
        |d: Option<units::DurationStr>, default_ms: u64, key: &str, errors: &mut Errors| {
            let d = d.map_or(Duration::from_millis(default_ms), |d| d.0);
            if d.is_zero() {
                push(errors, format!("{base}.{key}"), "must be greater than 0");
            }
            d
        };
    let connect_timeout = positive(file.connect_timeout, 1_000, "connect_timeout", errors);
    let read_timeout = positive(file.read_timeout, 10_000, "read_timeout", errors);
    let eject_for = positive(file.eject_for, 10_000, "eject_for", errors);
    let retries = file.retries.unwrap_or(1);
    if retries > MAX_RETRIES {
        push(
            errors,
            format!("{base}.retries"),
            format!("{retries} is out of range: use 0 to {MAX_RETRIES}"),
        );
    }
    (errors.len() == before).then_some(UpstreamConfig {
        name,
        targets,
        balance,
        health_check,
        connect_timeout,
        read_timeout,
        retries,
        eject_for,
    })
}

fn hash_on_key(text: &str, base: &str, errors: &mut Errors) -> HashOn {
    match text {
        "consumer" => HashOn::Consumer,
        "ip" => HashOn::Ip,
        other => match other
            .strip_prefix("header:")
            .map(|h| HeaderName::from_bytes(h.trim().as_bytes()))
        {
            Some(Ok(name)) => HashOn::Header(name),
            _ => {
                push(
                    errors,
                    format!("{base}.hash_on"),
                    format!("{other:?}: expected consumer, ip or header:<Name>"),
                );
                HashOn::Ip
            }
        },
    }
}

fn health_check(file: HealthCheckFile, base: &str, errors: &mut Errors) -> Option<HealthCheck> {
    let before = errors.len();
    let path = file.path.unwrap_or_else(|| "/health".to_owned());
    if !path.starts_with('/') || path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        push(
            errors,
            format!("{base}.path"),
            format!("{path:?} is not a request path like /health"),
        );
    }
    let interval = file.interval.map_or(Duration::from_secs(5), |d| d.0);
    let timeout = file.timeout.map_or(Duration::from_secs(1), |d| d.0);
    if interval.is_zero() {
        push(errors, format!("{base}.interval"), "must be greater than 0");
    }
    if timeout.is_zero() || timeout > interval {
        push(
            errors,
            format!("{base}.timeout"),
            "must be greater than 0 and at most `interval`",
        );
    }
    let healthy = file.healthy.unwrap_or(2);
    let unhealthy = file.unhealthy.unwrap_or(3);
    for (key, v) in [("healthy", healthy), ("unhealthy", unhealthy)] {
        if !(1..=100).contains(&v) {
            push(
                errors,
                format!("{base}.{key}"),
                format!("{v} is out of range: use 1 to 100"),
            );
        }
    }
    (errors.len() == before).then_some(HealthCheck {
        path,
        interval,
        timeout,
        healthy,
        unhealthy,
    })
}

/// Deserializes and builds a list of filters, each at its own path.
fn typed_filter_list(
    value: Value,
    base: &str,
    deps: &FilterDeps,
    errors: &mut Errors,
) -> Vec<FilterSpec> {
    let items = match value {
        Value::Sequence(items) => items,
        Value::Null => return Vec::new(),
        _ => {
            push(
                errors,
                base,
                "expected a list of filters, e.g. `- request_id: {}`",
            );
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let path = format!("{base}[{i}]");
        let mut track = serde_path_to_error::Track::new();
        let de = serde_path_to_error::Deserializer::new(item, &mut track);
        let config: FilterConfig = match serde_yaml::with::singleton_map_recursive::deserialize(de)
        {
            Ok(c) => c,
            Err(e) => {
                let inner = track.path().to_string();
                let full = if inner == "." {
                    path
                } else {
                    format!("{path}.{inner}")
                };
                push(errors, full, e.to_string());
                continue;
            }
        };
        if let Some(spec) = build_filter(config, &path, deps, errors) {
            out.push(spec);
        }
    }
    out
}

fn build_filter(
    config: FilterConfig,
    path: &str,
    deps: &FilterDeps,
    errors: &mut Errors,
) -> Option<FilterSpec> {
    match config.check_with(deps) {
        Ok(()) => Some(FilterSpec { config }),
        Err(option_errors) => {
            for e in option_errors {
                push(
                    errors,
                    format!("{path}.{}.{}", config.name(), e.path),
                    e.message,
                );
            }
            None
        }
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
    let size = |v: Option<units::SizeStr>, default: usize| {
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
    limits
}

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

fn routes(
    value: Value,
    declared: &[String],
    default_max_body: u64,
    deps: &FilterDeps,
    errors: &mut Errors,
) -> Vec<RouteConfig> {
    let Value::Sequence(items) = value else {
        push(errors, "routes", "at least one route is required");
        return Vec::new();
    };
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<(usize, RouteConfig)> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let base = format!("routes[{i}]");
        let Some(file) = typed::<RouteFile>(item, &base, errors) else {
            continue;
        };
        if !valid_name(&file.name) {
            push(
                errors,
                format!("{base}.name"),
                format!(
                    "invalid route name {:?}: use 1-64 letters, digits, '-', '_' or '.'",
                    file.name
                ),
            );
        } else if let Some(first) = names.insert(file.name.clone(), i) {
            push(
                errors,
                format!("{base}.name"),
                format!(
                    "duplicate route name {:?} (also routes[{first}])",
                    file.name
                ),
            );
        }
        if !declared.contains(&file.upstream) {
            push(
                errors,
                format!("{base}.upstream"),
                format!(
                    "unknown upstream {:?} (known: {})",
                    file.upstream,
                    declared.join(", ")
                ),
            );
        }
        if let Some(route) = route(file, &base, default_max_body, deps, errors) {
            out.push((i, route));
        }
    }
    check_table(&out, errors);
    out.into_iter().map(|(_, r)| r).collect()
}

fn route(
    file: RouteFile,
    base: &str,
    default_max_body: u64,
    deps: &FilterDeps,
    errors: &mut Errors,
) -> Option<RouteConfig> {
    let before = errors.len();
    let m = file.matcher;
    let pattern = match (m.path, m.prefix) {
        (Some(p), None) => PathPattern::Exact(p),
        (None, Some(p)) => PathPattern::Prefix(p),
        _ => {
            push(
                errors,
                format!("{base}.match"),
                "give exactly one of `path` (exact, with {param} segments) or `prefix`",
            );
            return None;
        }
    };
    let methods = m.methods.map(|list| {
        let mut parsed = Vec::new();
        for (j, raw) in list.iter().enumerate() {
            match http::Method::from_bytes(raw.as_bytes()) {
                Ok(method) if raw.bytes().all(|b| b.is_ascii_uppercase()) => parsed.push(method),
                _ => push(
                    errors,
                    format!("{base}.match.methods[{j}]"),
                    format!("invalid method {raw:?}: write it in capitals, e.g. GET"),
                ),
            }
        }
        parsed
    });
    check_pattern_is_normalised(&pattern, base, errors);
    let spec = RouteSpec {
        host: m.host,
        methods,
        pattern,
    };
    let rewrite = file.rewrite.and_then(|r| match (r.strip_prefix, r.path) {
        (Some(prefix), None) if prefix.starts_with('/') => Some(Rewrite::StripPrefix(prefix)),
        (Some(prefix), None) => {
            push(
                errors,
                format!("{base}.rewrite.strip_prefix"),
                format!("{prefix:?} must start with '/'"),
            );
            None
        }
        (None, Some(template)) => PathTemplate::parse(&template, &spec.pattern.param_names())
            .map(Rewrite::Template)
            .map_err(|e| push(errors, format!("{base}.rewrite.path"), e))
            .ok(),
        _ => {
            push(
                errors,
                format!("{base}.rewrite"),
                "give exactly one of `strip_prefix` or `path`",
            );
            None
        }
    });
    let filters: Vec<FilterSpec> = file
        .filters
        .into_iter()
        .enumerate()
        .filter_map(|(j, config)| {
            build_filter(config, &format!("{base}.filters[{j}]"), deps, errors)
        })
        .collect();
    check_route_cache_order(&filters, base, errors);
    (errors.len() == before).then_some(RouteConfig {
        name: file.name,
        max_body: file.max_body.map_or(default_max_body, |s| s.0),
        spec,
        upstream: file.upstream,
        rewrite,
        filters,
    })
}

/// Builds the route table once to find conflicts and bad patterns.
fn check_table(routes: &[(usize, RouteConfig)], errors: &mut Errors) {
    let specs = routes.iter().map(|(_, r)| (r.spec.clone(), ())).collect();
    if let Err(table_errors) = RouteTable::build(specs) {
        let mut seen = BTreeSet::new();
        for e in table_errors {
            let Some((file_index, _)) = routes.get(e.index) else {
                continue;
            };
            let path = format!("routes[{file_index}].{}", e.field);
            if seen.insert((path.clone(), e.message.clone())) {
                // Table indexes count only valid routes; name routes by their file index.
                push(errors, path, renumber(&e.message, routes));
            }
        }
    }
}

/// Rewrites `routes[N]` references in a table message from table index to file index.
fn renumber(message: &str, routes: &[(usize, RouteConfig)]) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("route ") {
        out.push_str(&rest[..at + 6]);
        rest = &rest[at + 6..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if let Some((file_index, _)) = rest[..digits]
            .parse::<usize>()
            .ok()
            .and_then(|n| routes.get(n))
        {
            out.push_str(&file_index.to_string());
            rest = &rest[digits..];
        }
    }
    out.push_str(rest);
    out
}

/// Requests are routed on their normalised path, so a pattern literal that
/// normalisation would change (`/%41`, `/caf\u{e9}`, `/a/./b`) could never match:
/// refuse it and name the spelling that would.
fn check_pattern_is_normalised(pattern: &PathPattern, base: &str, errors: &mut Errors) {
    let (key, text) = match pattern {
        PathPattern::Exact(p) => ("path", p),
        PathPattern::Prefix(p) => ("prefix", p),
    };
    for segment in text
        .split('/')
        .filter(|s| !s.is_empty() && !s.starts_with('{'))
    {
        let as_path = format!("/{segment}");
        match crate::normalize::normalize_path(&as_path) {
            Ok(n) if n == as_path => {}
            Ok(n) => push(
                errors,
                format!("{base}.match.{key}"),
                format!("segment {segment:?} never matches: requests are normalised first; write it as {:?}", &n[1..]),
            ),
            Err(e) => push(errors, format!("{base}.match.{key}"), format!("segment {segment:?} never matches: {e}")),
        }
    }
}
