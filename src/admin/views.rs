//! JSON and text views of the running config for the admin API and the CLI.

use crate::runtime::{Runtime, Target};
use serde_json::{json, Value};

/// The route table in resolution order, as `fingate routes` prints it.
pub fn routes_json(runtime: &Runtime) -> Value {
    let routes: Vec<Value> = runtime
        .routes_resolved()
        .map(|route| {
            let config = runtime.config.routes.iter().find(|r| *r.name == *route.name);
            json!({
                "name": &*route.name,
                "match": config.map(|c| match_json(&c.spec)),
                "upstream": route.upstream().map(|g| g.name()),
                "serve": match route.target { Target::Serve(b) => Some(b.name()), Target::Upstream(_) => None },
                "rewrite": config.and_then(|c| c.rewrite.as_ref()).map(describe_rewrite),
                "filters": config.map(|c| runtime.config.filters.iter().chain(&c.filters).map(|f| f.config.name()).collect::<Vec<_>>()),
            })
        })
        .collect();
    json!({ "config": runtime.config.source.hash, "routes": routes })
}

/// A route's `match` block as written.
fn match_json(spec: &crate::routing::RouteSpec) -> Value {
    let (kind, pattern) = match &spec.pattern {
        crate::routing::PathPattern::Exact(p) => ("path", p),
        crate::routing::PathPattern::Prefix(p) => ("prefix", p),
    };
    json!({
        kind: pattern,
        "methods": spec.methods.as_ref().map(|m| m.iter().map(|m| m.as_str()).collect::<Vec<_>>()),
        "host": spec.host,
    })
}

pub(super) fn upstreams_json(runtime: &Runtime) -> Value {
    let groups: serde_json::Map<String, Value> = runtime
        .upstreams
        .iter()
        .map(|(name, g)| {
            let targets: Vec<Value> = g
                .targets
                .iter()
                .map(|t| {
                    json!({
                        "address": t.label,
                        "weight": t.weight,
                        "healthy": t.healthy(),
                        "ejected": t.ejected(),
                        "available": t.available(),
                        "active_requests": t.active_requests(),
                    })
                })
                .collect();
            let tls = g.config.tls.as_ref().map(|t| {
                json!({
                    "sni": t.settings.sni,
                    "verify": t.settings.verify,
                    "client_certificate": t.client_cert.as_ref().map(|c| json!({
                        "subject": c.subject,
                        "not_after": c.not_after,
                    })),
                })
            });
            (name.clone(), json!({ "balance": format!("{:?}", g.config.balance), "health_check": g.config.health_check.is_some(), "tls": tls, "http2": g.config.http2, "targets": targets }))
        })
        .collect();
    json!({ "upstreams": groups })
}

/// The route table as text for `fingate routes`: one line per route, in the order
/// the gateway tries them.
pub fn routes_table(runtime: &Runtime) -> String {
    let mut rows = vec![[
        "#".to_owned(),
        "ROUTE".to_owned(),
        "HOST".to_owned(),
        "METHODS".to_owned(),
        "MATCH".to_owned(),
        "UPSTREAM".to_owned(),
        "REWRITE".to_owned(),
        "FILTERS".to_owned(),
    ]];
    for (i, route) in runtime.routes_resolved().enumerate() {
        let Some(c) = runtime
            .config
            .routes
            .iter()
            .find(|r| *r.name == *route.name)
        else {
            continue;
        };
        let pattern = match &c.spec.pattern {
            crate::routing::PathPattern::Exact(p) => format!("path {p}"),
            crate::routing::PathPattern::Prefix(p) => format!("prefix {p}"),
        };
        let methods = c.spec.methods.as_ref().map_or("*".to_owned(), |m| {
            m.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(",")
        });
        let filters: Vec<&str> = runtime
            .config
            .filters
            .iter()
            .chain(&c.filters)
            .map(|f| f.config.name())
            .collect();
        rows.push([
            (i + 1).to_string(),
            c.name.clone(),
            c.spec.host.clone().unwrap_or_else(|| "*".to_owned()),
            methods,
            pattern,
            c.target.to_string(),
            c.rewrite.as_ref().map_or("-".to_owned(), describe_rewrite),
            if filters.is_empty() {
                "-".to_owned()
            } else {
                filters.join(",")
            },
        ]);
    }
    let widths: Vec<usize> = (0..8)
        .map(|col| rows.iter().map(|r| r[col].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// A rewrite as it is written in YAML.
pub fn describe_rewrite(rewrite: &crate::routing::Rewrite) -> String {
    match rewrite {
        crate::routing::Rewrite::StripPrefix(p) => format!("strip_prefix {p}"),
        crate::routing::Rewrite::Template(t) => format!("path {t}"),
    }
}
