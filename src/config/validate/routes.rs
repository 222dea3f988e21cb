//! Routes and their filters: patterns, rewrites, per-route limits, the order of
//! `jwt` and `cache`, and conflicts across the whole table.

use super::*;
use crate::filter::{CheckedFilter, FilterCheck};

/// A global cache that runs before a route's `jwt` (see [`cache_before_auth`]).
pub(super) fn check_cache_after_auth(
    global: &[FilterConfig],
    routes: &[RouteConfig],
    errors: &mut Errors,
) {
    let names = |list: &[FilterConfig]| list.iter().map(|f| f.config.name()).collect::<Vec<_>>();
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
fn check_route_cache_order(filters: &[FilterConfig], base: &str, errors: &mut Errors) {
    let names: Vec<&str> = filters.iter().map(|f| f.config.name()).collect();
    if let Some(c) = cache_before_auth(&names) {
        push(
            errors,
            format!("{base}.filters[{c}].cache"),
            CACHE_BEFORE_JWT,
        );
    }
}

/// `idempotency` belongs to routes: refused among the global filters.
pub(super) fn check_global_idempotency(global: &[FilterConfig], errors: &mut Errors) {
    for (i, f) in global.iter().enumerate() {
        if matches!(f.config, FilterFile::Idempotency(_)) {
            push(
                errors,
                format!("filters[{i}].idempotency"),
                "list `idempotency` under the routes it guards: keys are scoped to a route, and only routes with an `upstream` forward requests",
            );
        }
    }
}

/// An `idempotency` filter on a route: an upstream route, reached by at least one
/// of the filter's methods, with `jwt` and `mtls` before it (they establish the
/// consumer that scopes the key).
fn check_route_idempotency(
    filters: &[FilterConfig],
    methods: Option<&[http::Method]>,
    target: &RouteTarget,
    base: &str,
    errors: &mut Errors,
) {
    for (i, f) in filters.iter().enumerate() {
        let (FilterFile::Idempotency(options), CheckedFilter::Idempotency(checked)) =
            (&f.config, &f.checked)
        else {
            continue;
        };
        let at = format!("{base}.filters[{i}].idempotency");
        if matches!(target, RouteTarget::Serve(_)) {
            push(
                errors,
                &at,
                "`idempotency` guards requests forwarded to an upstream; a `serve:` route answers itself",
            );
        }
        if let Some(accepted) = methods {
            if !checked.methods().iter().any(|m| accepted.contains(m)) {
                let list = |ms: &[http::Method]| {
                    ms.iter()
                        .map(http::Method::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let path = if options.methods.is_some() {
                    format!("{at}.methods")
                } else {
                    at.clone()
                };
                push(
                    errors,
                    path,
                    format!(
                        "never applies: the route accepts {} and the filter guards {}",
                        list(accepted),
                        list(checked.methods())
                    ),
                );
            }
        }
        if let Some(auth) = filters[i..]
            .iter()
            .map(|f| f.config.name())
            .find(|n| matches!(*n, "jwt" | "mtls"))
        {
            push(
                errors,
                &at,
                format!("runs before `{auth}` here, so keys would be scoped to the client address instead of the consumer: list `{auth}` first"),
            );
        }
    }
}

const CACHE_BEFORE_JWT: &str = "`cache` runs before `jwt` here, so a cached answer would be served before the token is checked: list `jwt` first";

/// Deserializes and builds a list of filters, each at its own path.
pub(super) fn typed_filter_list(
    value: Value,
    base: &str,
    check: &FilterCheck<'_>,
    errors: &mut Errors,
) -> Vec<FilterConfig> {
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
        // serde's words for these shapes are "unit variant" and "map with a single key".
        match &item {
            Value::String(name) => {
                push(
                    errors,
                    path,
                    format!("a filter is written with its options: `- {name}: {{}}`"),
                );
                continue;
            }
            Value::Mapping(map) if map.len() > 1 => {
                push(
                    errors,
                    path,
                    "one filter per list item: write each as `- name: { options }`",
                );
                continue;
            }
            _ => {}
        }
        let mut track = serde_path_to_error::Track::new();
        let de = serde_path_to_error::Deserializer::new(item, &mut track);
        let config: FilterFile = match serde_yaml::with::singleton_map_recursive::deserialize(de) {
            Ok(c) => c,
            Err(e) => {
                let inner = track.path().to_string();
                let full = if inner == "." {
                    path
                } else {
                    format!("{path}.{inner}")
                };
                push(errors, full, plain_message(e.to_string()));
                continue;
            }
        };
        if let Some(spec) = check_filter(config, &path, check, errors) {
            out.push(spec);
        }
    }
    out
}

fn check_filter(
    config: FilterFile,
    path: &str,
    check: &FilterCheck<'_>,
    errors: &mut Errors,
) -> Option<FilterConfig> {
    match config.check(check) {
        Ok(checked) => Some(FilterConfig { config, checked }),
        Err(option_errors) => {
            for e in option_errors {
                // An empty option path is about the filter as a whole.
                let at = match e.path.as_str() {
                    "" => format!("{path}.{}", config.name()),
                    option => format!("{path}.{}.{option}", config.name()),
                };
                push(errors, at, e.message);
            }
            None
        }
    }
}

/// `unmatched` labels requests no route serves; `token_endpoint`, `jwks` and
/// `oauth_metadata` name the routes `auth.token_endpoint.path` adds. A route of the
/// same name would mix its numbers with theirs.
const RESERVED_ROUTE_NAMES: &[&str] = &["unmatched", "token_endpoint", "jwks", "oauth_metadata"];

/// Where a route was written: in `routes`, or added by a shorthand setting.
#[derive(Debug, Clone, Copy)]
enum Origin {
    File(usize),
    Shorthand(&'static str),
}

/// What routes may point at: the declared upstream groups and the auth settings
/// (which built-in endpoints can be served).
pub(super) struct Targets<'a> {
    pub upstreams: &'a [String],
    pub auth: &'a crate::auth::AuthConfig,
    /// What filters are checked against.
    pub filters: FilterCheck<'a>,
}

pub(super) fn routes(
    value: Value,
    targets: &Targets<'_>,
    default_max_body: u64,
    errors: &mut Errors,
) -> (Vec<RouteConfig>, Option<RouteTable<usize>>) {
    let items = match value {
        Value::Sequence(items) if !items.is_empty() => items,
        Value::Null | Value::Sequence(_) => {
            push(errors, "routes", "at least one route is required");
            return (Vec::new(), None);
        }
        _ => {
            push(errors, "routes", "expected a list of routes");
            return (Vec::new(), None);
        }
    };
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<(Origin, RouteConfig)> = Vec::new();
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
        } else if RESERVED_ROUTE_NAMES.contains(&file.name.as_str()) {
            push(
                errors,
                format!("{base}.name"),
                format!(
                    "route name {:?} is reserved: `unmatched` labels requests no route serves; `token_endpoint`, `jwks` and `oauth_metadata` name the routes `auth.token_endpoint.path` adds (write your own with `serve:` under another name)",
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
        let Some(target) = target(&file, &base, targets, errors) else {
            continue;
        };
        if let Some(route) = route(
            file,
            target,
            &base,
            default_max_body,
            &targets.filters,
            errors,
        ) {
            out.push((Origin::File(i), route));
        }
    }
    out.extend(shorthand_routes(targets.auth, default_max_body));
    let table = check_table(&out, errors);
    (out.into_iter().map(|(_, r)| r).collect(), table)
}

/// The route's `upstream` or `serve`: exactly one, and something that exists.
fn target(
    file: &RouteFile,
    base: &str,
    targets: &Targets<'_>,
    errors: &mut Errors,
) -> Option<RouteTarget> {
    let declared = targets.upstreams;
    match (&file.upstream, file.serve) {
        (Some(name), None) => {
            // With no group declared, `upstreams` itself was already reported.
            if !declared.is_empty() && !declared.contains(name) {
                push(
                    errors,
                    format!("{base}.upstream"),
                    format!("unknown upstream {name:?} (known: {})", declared.join(", ")),
                );
            }
            Some(RouteTarget::Upstream(name.clone()))
        }
        (None, Some(builtin)) => {
            let missing = match builtin {
                Builtin::TokenEndpoint if targets.auth.token_endpoint.is_none() => {
                    Some("needs `auth.token_endpoint` (and a key with `sign: true`)")
                }
                Builtin::Jwks if !publishes_jwks(targets.auth) => Some(
                    "needs an asymmetric signing key (`private_key_file` with `sign: true`): an HMAC secret has no public half to publish",
                ),
                Builtin::OauthMetadata if targets.auth.token_endpoint.is_none() => Some(
                    "describes the token endpoint: it needs `auth.token_endpoint` (and a key with `sign: true`)",
                ),
                _ => None,
            };
            if let Some(why) = missing {
                push(
                    errors,
                    format!("{base}.serve"),
                    format!("`{}` {why}", builtin.name()),
                );
            }
            if file.rewrite.is_some() {
                push(
                    errors,
                    format!("{base}.rewrite"),
                    "a route with `serve` answers itself: `rewrite` applies to `upstream` routes only",
                );
            }
            Some(RouteTarget::Serve(builtin))
        }
        _ => {
            push(
                errors,
                base,
                "give exactly one of `upstream` (a group from `upstreams`) or `serve` (token_endpoint | jwks | oauth_metadata)",
            );
            None
        }
    }
}

fn publishes_jwks(auth: &crate::auth::AuthConfig) -> bool {
    auth.keys.signing().is_some_and(|k| k.jwk.is_some())
}

/// The routes `auth.token_endpoint.path` adds: the token endpoint there, the
/// OAuth 2.0 metadata and (when the signing key is asymmetric) the JWKS at their
/// well-known paths.
fn shorthand_routes(
    auth: &crate::auth::AuthConfig,
    default_max_body: u64,
) -> Vec<(Origin, RouteConfig)> {
    let Some(path) = auth.token_endpoint.as_ref().and_then(|te| te.path.clone()) else {
        return Vec::new();
    };
    let route = |name: &str, path: String, builtin| RouteConfig {
        name: name.to_owned(),
        spec: RouteSpec {
            host: None,
            methods: None,
            pattern: PathPattern::Exact(path),
        },
        target: RouteTarget::Serve(builtin),
        rewrite: None,
        max_body: default_max_body,
        filters: Vec::new(),
    };
    let origin = Origin::Shorthand("auth.token_endpoint.path");
    let mut out = vec![(
        origin,
        route("token_endpoint", path, Builtin::TokenEndpoint),
    )];
    if publishes_jwks(auth) {
        let jwks = route("jwks", crate::auth::JWKS_PATH.to_owned(), Builtin::Jwks);
        out.push((origin, jwks));
    }
    let metadata = crate::auth::metadata::PATH.to_owned();
    out.push((
        origin,
        route("oauth_metadata", metadata, Builtin::OauthMetadata),
    ));
    out
}

fn route(
    file: RouteFile,
    target: RouteTarget,
    base: &str,
    default_max_body: u64,
    check: &FilterCheck<'_>,
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
    let filters = typed_filter_list(file.filters, &format!("{base}.filters"), check, errors);
    check_route_cache_order(&filters, base, errors);
    check_route_idempotency(&filters, spec.methods.as_deref(), &target, base, errors);
    (errors.len() == before).then_some(RouteConfig {
        name: file.name,
        max_body: file.max_body.map_or(default_max_body, |s| s.0),
        spec,
        target,
        rewrite,
        filters,
    })
}

/// Builds the route table, whose values are indexes into `routes`; on conflicts
/// and bad patterns, reports them and returns None. The runtime serves with this
/// table as built here.
fn check_table(routes: &[(Origin, RouteConfig)], errors: &mut Errors) -> Option<RouteTable<usize>> {
    let specs = routes
        .iter()
        .enumerate()
        .map(|(i, (_, r))| (r.spec.clone(), i))
        .collect();
    let table_errors = match RouteTable::build(specs) {
        Ok(table) => return Some(table),
        Err(table_errors) => table_errors,
    };
    {
        let mut seen = BTreeSet::new();
        for e in table_errors {
            let Some((origin, _)) = routes.get(e.index) else {
                continue;
            };
            let path = match origin {
                Origin::File(i) => format!("routes[{i}].{}", e.field),
                Origin::Shorthand(setting) => (*setting).to_owned(),
            };
            if seen.insert((path.clone(), e.message.clone())) {
                // Table indexes count only valid routes; name routes by their file index.
                push(errors, path, renumber(&e.message, routes));
            }
        }
    }
    None
}

/// Rewrites `route N` references in a table message from table index to file
/// index (or, for a route a setting added, to its name).
fn renumber(message: &str, routes: &[(Origin, RouteConfig)]) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("route ") {
        out.push_str(&rest[..at + 6]);
        rest = &rest[at + 6..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if let Some((origin, route)) = rest[..digits]
            .parse::<usize>()
            .ok()
            .and_then(|n| routes.get(n))
        {
            match origin {
                Origin::File(i) => out.push_str(&i.to_string()),
                Origin::Shorthand(setting) => {
                    out.push_str(&format!("{} (added by {setting})", route.name));
                }
            }
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
    // Braces, `?` and `#` are left to the route table, whose messages say what was meant.
    for segment in text
        .split('/')
        .filter(|s| !s.is_empty() && !s.contains(['{', '}', '?', '#']))
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
