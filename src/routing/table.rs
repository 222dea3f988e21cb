//! [`RouteTable`]: validation at build time, lookup at request time.

use std::collections::HashMap;
use std::fmt;
use std::iter;
use std::net::IpAddr;

use http::Method;

use super::fxhash::FxBuildHasher;
use super::params::Params;
use super::pattern::{self, HostKey, RequestHost, Segment, MAX_HOST};
use super::trie::{Builder, Entry, Node};
use super::{Lookup, PathPattern, RouteError, RouteSpec};

struct Route<T> {
    value: T,
    /// Names of the `{name}` segments, left to right; `Params` borrows them.
    param_names: Box<[Box<str>]>,
}

/// An immutable route table; see the [module docs](super) for the matching
/// rules and complexity. Build a new table to change routes (hot reload
/// swaps whole tables).
pub struct RouteTable<T> {
    /// In the order given to `build`; trie entries refer to them by index.
    routes: Vec<Route<T>>,
    any_host: Node,
    /// Host-specific tries: names (lowercased) and IP addresses apart, so a
    /// lookup can borrow the request's host without allocating a key.
    /// Fx-hashed like the trie: filled from config, only looked up after.
    names: HashMap<Box<str>, Node, FxBuildHasher>,
    ips: HashMap<IpAddr, Node, FxBuildHasher>,
    /// Route indexes in resolution order, for `iter_resolved`.
    resolved: Box<[usize]>,
}

impl<T> RouteTable<T> {
    /// Builds the table. On failure returns every problem found (not just the
    /// first), each naming the index of the offending route; for a conflict
    /// the error is on the later route and its message names the earlier.
    pub fn build(routes: Vec<(RouteSpec, T)>) -> Result<Self, Vec<RouteError>> {
        let mut errors = Vec::new();
        let mut any_host = Builder::default();
        let mut hosts: HashMap<HostKey, Builder> = HashMap::new();
        let mut valid = Vec::with_capacity(routes.len());

        for (index, (spec, value)) in routes.into_iter().enumerate() {
            let mut error = |field, message| {
                errors.push(RouteError {
                    index,
                    field,
                    message,
                })
            };
            let host = match spec.host.as_deref().map(pattern::parse_host) {
                None => Some(None),
                Some(Ok(host)) => Some(Some(host)),
                Some(Err(message)) => {
                    error("match.host", message);
                    None
                }
            };
            let methods = match spec.methods {
                None => Some(None),
                Some(list) if list.is_empty() => {
                    error(
                        "match.methods",
                        "must list at least one method; omit `methods` to allow all".into(),
                    );
                    None
                }
                Some(list) => Some(Some(dedup(list))),
            };
            let (field, text, is_prefix) = match &spec.pattern {
                PathPattern::Exact(p) => ("match.path", p, false),
                PathPattern::Prefix(p) => ("match.prefix", p, true),
            };
            let segments = match pattern::parse_path(text, !is_prefix) {
                Ok(segments) => Some(segments),
                Err(message) => {
                    error(field, message);
                    None
                }
            };
            let (Some(host), Some(methods), Some(segments)) = (host, methods, segments) else {
                continue;
            };

            let trie = match host {
                None => &mut any_host,
                Some(host) => hosts.entry(host).or_default(),
            };
            let slot = trie.slot(&segments, is_prefix);
            let conflict = slot
                .iter()
                .find_map(|e| Some((e.id, overlap(&e.methods, &methods)?)));
            if let Some((other, shared)) = conflict {
                error(
                    field,
                    format!(
                        "`{text}` conflicts with route {other}: same host and pattern, both accept {shared}"
                    ),
                );
                continue;
            }
            slot.push(Entry { id: index, methods });
            valid.push(Route {
                value,
                param_names: segments
                    .into_iter()
                    .filter_map(|s| match s {
                        Segment::Param(name) => Some(name),
                        Segment::Literal(_) => None,
                    })
                    .collect(),
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }

        let mut names = HashMap::default();
        let mut ips = HashMap::default();
        let mut host_order: Vec<(HostKey, Node)> =
            hosts.into_iter().map(|(k, b)| (k, b.freeze())).collect();
        // Deterministic order for `iter_resolved`: names, then IPs, sorted.
        host_order.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut resolved = Vec::with_capacity(valid.len());
        for (key, node) in host_order {
            node.resolution_order(&mut resolved);
            match key {
                HostKey::Name(name) => names.insert(name, node),
                HostKey::Ip(ip) => ips.insert(ip, node),
            };
        }
        let any_host = any_host.freeze();
        any_host.resolution_order(&mut resolved);

        Ok(RouteTable {
            routes: valid,
            any_host,
            names,
            ips,
            resolved: resolved.into_boxed_slice(),
        })
    }

    /// Finds the route for a request. `host` is the `Host` header value
    /// (compared case-insensitively, `:port` ignored); `path` is already
    /// normalised by the caller (starts with '/', no query, no `//`, no dot
    /// segments). Does not allocate in the common case.
    pub fn find<'t, 'p>(
        &'t self,
        host: Option<&str>,
        method: &Method,
        path: &'p str,
    ) -> Lookup<'t, 'p, T> {
        let rest = path.strip_prefix('/').unwrap_or(path);
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let count = if rest.is_empty() {
            0
        } else {
            rest.bytes().filter(|&b| b == b'/').count() + 1
        };
        let host_trie = host.and_then(|h| self.host_trie(h));
        let tries = || host_trie.into_iter().chain(iter::once(&self.any_host));

        let mut path_matched = false;
        for trie in tries() {
            if let Some((id, caps)) = trie.find(rest, count, method, &mut path_matched) {
                return match self.routes.get(id) {
                    Some(r) => Lookup::Found {
                        route: &r.value,
                        params: Params::new(&r.param_names, caps),
                    },
                    None => Lookup::NotFound, // ids come from `build`; not reached
                };
            }
        }
        if !path_matched {
            return Lookup::NotFound;
        }
        let mut allow = Vec::new();
        for trie in tries() {
            trie.collect_allow(rest, count, &mut allow);
        }
        if allow.contains(&Method::GET) {
            allow.push(Method::HEAD);
        }
        allow.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        allow.dedup();
        Lookup::MethodNotAllowed { allow }
    }

    fn host_trie(&self, raw: &str) -> Option<&Node> {
        if self.names.is_empty() && self.ips.is_empty() {
            return None; // skip parsing the header when no route has a host
        }
        let mut buf = [0u8; MAX_HOST];
        match pattern::request_host(raw, &mut buf)? {
            RequestHost::Name(name) => self.names.get(name),
            RequestHost::Ip(ip) => self.ips.get(&ip),
        }
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Every route in resolution order, most specific first: host-specific
    /// routes (hosts sorted, names before IPs) before any-host routes; within
    /// a host, exact patterns (literal-first, depth-first) before prefixes
    /// (longer before shorter). For any request, `find` returns the first
    /// route in this order that matches host, path and method.
    pub fn iter_resolved(&self) -> impl Iterator<Item = &T> + '_ {
        self.resolved
            .iter()
            .filter_map(|&i| self.routes.get(i))
            .map(|r| &r.value)
    }
}

impl<T: fmt::Debug> fmt::Debug for RouteTable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter_resolved()).finish()
    }
}

fn dedup(list: Vec<Method>) -> Box<[Method]> {
    let mut out: Vec<Method> = Vec::with_capacity(list.len());
    for m in list {
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out.into_boxed_slice()
}

/// `Some(description)` of the methods two routes share, `None` if disjoint.
/// `GET` and `HEAD` do not overlap: an explicit `HEAD` route takes `HEAD`.
fn overlap(a: &Option<Box<[Method]>>, b: &Option<Box<[Method]>>) -> Option<String> {
    match (a, b) {
        (None, None) => Some("all methods".into()),
        (Some(list), None) | (None, Some(list)) => Some(join(list)),
        (Some(a), Some(b)) => {
            let shared: Vec<Method> = a.iter().filter(|m| b.contains(m)).cloned().collect();
            (!shared.is_empty()).then(|| join(&shared))
        }
    }
}

fn join(methods: &[Method]) -> String {
    methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}
