//! `RouteTable::find` (and `Rewrite::apply`) on a fixed table, with an
//! arbitrary Host header, method and request path.
//!
//! Input layout (so that seeds stay readable): byte 0 picks the method; the
//! rest is `<host>\n<path>`, or just `<path>` without a newline (no Host);
//! an empty host also means none. Both must be UTF-8.
//!
//! - `find` on the raw path never panics (it must survive a caller that forgot
//!   to normalise);
//! - on the normalised path: captured parameters are non-empty, contain no
//!   `/` and are slices of the path; `MethodNotAllowed` lists at least one
//!   method, sorted and without duplicates, and never the request's method;
//! - a route's rewrite of a normalised path is itself normalised (the upstream
//!   sees a canonical path too).
#![no_main]

use fingate::normalize::normalize_path;
use fingate::routing::{Lookup, PathPattern, PathTemplate, Rewrite, RouteSpec, RouteTable};
use http::Method;
use libfuzzer_sys::fuzz_target;
use std::borrow::Cow;
use std::sync::OnceLock;

type Route = (usize, Option<Rewrite>);

fn table() -> &'static RouteTable<Route> {
    static TABLE: OnceLock<RouteTable<Route>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let exact = |p: &str| PathPattern::Exact(p.to_owned());
        let prefix = |p: &str| PathPattern::Prefix(p.to_owned());
        let strip = |p: &str| Some(Rewrite::StripPrefix(p.to_owned()));
        let template = |t: &str, params: &[&str]| {
            Some(Rewrite::Template(
                PathTemplate::parse(t, params).expect("fixed template parses"),
            ))
        };
        let routes: Vec<(
            Option<&str>,
            Option<Vec<Method>>,
            PathPattern,
            Option<Rewrite>,
        )> = vec![
            (
                None,
                Some(vec![Method::GET]),
                exact("/api/accounts/{id}/statement"),
                strip("/api"),
            ),
            (
                None,
                Some(vec![Method::GET]),
                prefix("/api/accounts"),
                strip("/api"),
            ),
            (
                None,
                Some(vec![Method::GET]),
                exact("/api/fx/{pair}"),
                strip("/api"),
            ),
            (
                None,
                Some(vec![Method::POST]),
                exact("/api/payments"),
                strip("/api"),
            ),
            (
                None,
                Some(vec![Method::GET]),
                exact("/api/payments/{id}"),
                strip("/api"),
            ),
            (
                None,
                Some(vec![Method::GET]),
                exact("/api/loans/{id}"),
                template("/loans/{id}", &["id"]),
            ),
            (
                None,
                Some(vec![Method::POST, Method::PUT]),
                exact("/api/loans/quote"),
                None,
            ),
            (None, None, prefix("/admin"), None),
            (
                None,
                Some(vec![Method::DELETE]),
                exact("/admin/users/{id}"),
                None,
            ),
            (
                None,
                None,
                exact("/a/{p1}/{p2}/{p3}/{p4}/{p5}/{p6}"),
                template(
                    "/z/{p6}/{p5}/{p4}/{p3}/{p2}/{p1}",
                    &["p1", "p2", "p3", "p4", "p5", "p6"],
                ),
            ),
            (None, None, exact("/caf%C3%A9/{x}"), None),
            (
                None,
                Some(vec![Method::HEAD]),
                exact("/api/accounts/{id}/statement"),
                None,
            ),
            (Some("admin.example.com"), None, prefix("/"), None),
            (
                Some("admin.example.com"),
                Some(vec![Method::GET]),
                exact("/api/payments/{id}"),
                None,
            ),
            (Some("127.0.0.1"), None, exact("/health"), None),
            (
                Some("[::1]"),
                Some(vec![Method::GET]),
                prefix("/v6"),
                strip("/v6"),
            ),
            (
                None,
                Some(vec![Method::GET, Method::HEAD]),
                prefix("/static"),
                None,
            ),
        ];
        let specs = routes
            .into_iter()
            .enumerate()
            .map(|(i, (host, methods, pattern, rewrite))| {
                let spec = RouteSpec {
                    host: host.map(str::to_owned),
                    methods,
                    pattern,
                };
                (spec, (i, rewrite))
            })
            .collect();
        RouteTable::build(specs).expect("fixed route table builds")
    })
}

fn method(selector: u8) -> Method {
    match selector % 9 {
        0 => Method::GET,
        1 => Method::HEAD,
        2 => Method::POST,
        3 => Method::PUT,
        4 => Method::DELETE,
        5 => Method::PATCH,
        6 => Method::OPTIONS,
        7 => Method::TRACE,
        _ => Method::from_bytes(b"PURGE").unwrap_or(Method::GET),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (host, path) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&rest[..0], rest),
    };
    let (Ok(host), Ok(path)) = (std::str::from_utf8(host), std::str::from_utf8(path)) else {
        return;
    };
    let host = (!host.is_empty()).then_some(host);
    let method = method(selector);
    let table = table();

    // Raw path: must not panic, whatever it is.
    let _ = table.find(host, &method, path);

    let Ok(normal) = normalize_path(path) else {
        return;
    };
    match table.find(host, &method, &normal) {
        Lookup::Found { route, params } => {
            for (name, value) in params.iter() {
                assert!(!name.is_empty());
                assert!(
                    !value.is_empty() && !value.contains('/'),
                    "{normal:?}: {name}={value:?}"
                );
                assert!(normal.contains(value), "{normal:?}: {name}={value:?}");
            }
            if let (_, Some(rewrite)) = route {
                let upstream = rewrite.apply(&normal, &params, None);
                let again = normalize_path(&upstream);
                assert!(
                    matches!(again, Ok(Cow::Borrowed(_))),
                    "{normal:?} rewritten to non-canonical {upstream:?}: {again:?}"
                );
                let with_query = rewrite.apply(&normal, &params, Some("a=1"));
                assert_eq!(with_query, format!("{upstream}?a=1"));
            }
        }
        Lookup::MethodNotAllowed { allow } => {
            assert!(!allow.is_empty());
            assert!(
                !allow.contains(&method),
                "{method} {normal:?}: allow {allow:?}"
            );
            assert!(
                allow.windows(2).all(|w| w[0].as_str() < w[1].as_str()),
                "{allow:?}"
            );
        }
        Lookup::NotFound => {}
    }
});
