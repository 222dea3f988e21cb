//! Precedence, method handling, params and scale tests for `RouteTable`.
//! Validation errors are in `tests_errors.rs`, a brute-force differential
//! test in `tests_reference.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use http::Method;

use super::*;

pub(super) fn exact(p: &str) -> RouteSpec {
    RouteSpec {
        host: None,
        methods: None,
        pattern: PathPattern::Exact(p.into()),
    }
}

pub(super) fn prefix(p: &str) -> RouteSpec {
    RouteSpec {
        host: None,
        methods: None,
        pattern: PathPattern::Prefix(p.into()),
    }
}

pub(super) fn methods(list: &str) -> Vec<Method> {
    list.split(',')
        .filter(|m| !m.is_empty())
        .map(|m| Method::from_bytes(m.as_bytes()).unwrap())
        .collect()
}

impl RouteSpec {
    pub(super) fn on(mut self, host: &str) -> Self {
        self.host = Some(host.into());
        self
    }

    pub(super) fn only(mut self, list: &str) -> Self {
        self.methods = Some(methods(list));
        self
    }
}

/// The outcome as a string: the route name, `405 GET,HEAD` or `404`.
fn outcome(table: &RouteTable<&str>, host: Option<&str>, method: &str, path: &str) -> String {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    match table.find(host, &method, path) {
        Lookup::Found { route, .. } => route.to_string(),
        Lookup::MethodNotAllowed { allow } => {
            let allow: Vec<&str> = allow.iter().map(Method::as_str).collect();
            format!("405 {}", allow.join(","))
        }
        Lookup::NotFound => "404".into(),
    }
}

/// Deterministic permutations: identity, reversed, rotations, LCG shuffles.
fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    let mut out = vec![items.to_vec(), items.iter().rev().cloned().collect()];
    for r in 1..items.len().min(4) {
        let mut v = items.to_vec();
        v.rotate_left(r);
        out.push(v);
    }
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..6 {
        let mut v = items.to_vec();
        for i in (1..v.len()).rev() {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            v.swap(i, (seed >> 33) as usize % (i + 1));
        }
        out.push(v);
    }
    out
}

type Case<'a> = (Option<&'a str>, &'a str, &'a str, &'a str);

/// Builds the routes in every permutation and checks every case.
fn check(routes: &[(RouteSpec, &'static str)], cases: &[Case]) {
    for perm in permutations(routes) {
        let order: Vec<&str> = perm.iter().map(|r| r.1).collect();
        let table = RouteTable::build(perm).unwrap();
        for &(host, method, path, want) in cases {
            let got = outcome(&table, host, method, path);
            assert_eq!(
                got, want,
                "{method} {path} (host {host:?}) with routes in order {order:?}"
            );
        }
    }
}

#[test]
fn path_precedence() {
    let routes = [
        (prefix("/api"), "api"),
        (prefix("/api/accounts/"), "accounts"),
        (exact("/api/accounts/{id}"), "account"),
        (exact("/api/accounts/me"), "me"),
        (exact("/a/b/c"), "abc"),
        (exact("/a/{x}/c"), "axc"),
        (exact("/a/{x}/{y}"), "axy"),
        (exact("/q/b/{y}"), "qby"),
        (exact("/q/{x}/c"), "qxc"),
        (exact("/"), "home"),
        (exact("/docs/"), "docs"),
    ];
    let g = |path, want| (None, "GET", path, want);
    check(
        &routes,
        &[
            // exact literal > param > prefix
            g("/api/accounts/me", "me"),
            g("/api/accounts/me/", "me"),
            g("/api/accounts/42", "account"),
            g("/api/accounts/42/", "account"),
            // longer prefix over shorter, at segment boundaries
            g("/api/accounts/42/tx", "accounts"),
            g("/api/accounts", "accounts"),
            g("/api/accounts/", "accounts"),
            g("/api/accountsX", "api"),
            g("/api/accountsX/1", "api"),
            g("/api", "api"),
            g("/api/", "api"),
            g("/apix", "404"),
            // trailing slash insignificant on both sides
            g("/", "home"),
            g("/docs", "docs"),
            g("/docs/", "docs"),
            g("/docs/x", "404"),
            // left-most literal wins
            g("/a/b/c", "abc"),
            g("/a/z/c", "axc"),
            g("/a/b/d", "axy"),
            g("/a/z/d", "axy"),
            g("/q/b/c", "qby"),
            g("/q/z/c", "qxc"),
            g("/q/b/d", "qby"),
            // a param never matches an empty or missing segment
            g("/a/b", "404"),
            g("/a/b/c/d", "404"),
            g("/q//c", "404"),
        ],
    );
}

#[test]
fn host_precedence_and_fallback() {
    let routes = [
        (exact("/users/{id}"), "any-users"),
        (
            exact("/users/{id}").on("X.example.com").only("GET"),
            "x-users",
        ),
        (prefix("/").on("x.example.com.").only("GET"), "x-root"),
        (exact("/health"), "any-health"),
        (exact("/users/{id}").on("[::1]"), "v6-users"),
        (exact("/users/{id}").on("10.0.0.1"), "v4-users"),
        (prefix("/orders"), "any-orders"),
    ];
    let x = Some("x.example.com");
    check(
        &routes,
        &[
            (x, "GET", "/users/1", "x-users"),
            (Some("X.EXAMPLE.COM:8443"), "GET", "/users/1", "x-users"),
            (Some("x.example.com."), "GET", "/users/1", "x-users"),
            (Some("y.example.com"), "GET", "/users/1", "any-users"),
            (None, "GET", "/users/1", "any-users"),
            (Some("[::1]:8080"), "GET", "/users/1", "v6-users"),
            (Some("[0:0::1]"), "GET", "/users/1", "v6-users"),
            (Some("10.0.0.1:80"), "GET", "/users/1", "v4-users"),
            // host-specific route without the method: fall back to any-host
            (x, "POST", "/users/1", "any-users"),
            // a host-specific prefix beats a more specific any-host exact
            (x, "GET", "/health", "x-root"),
            (x, "POST", "/health", "any-health"),
            (x, "GET", "/orders/5", "x-root"),
            (Some("other"), "GET", "/orders/5", "any-orders"),
            (x, "GET", "/nothing", "x-root"),
            (x, "POST", "/nothing", "405 GET,HEAD"),
            (None, "GET", "/nothing", "404"),
        ],
    );
}

#[test]
fn methods_405_and_fallthrough() {
    let routes = [
        (exact("/pay/{id}").only("POST"), "pay-post"),
        (exact("/pay/{id}/").only("DELETE"), "pay-delete"),
        (prefix("/pay").only("PUT"), "pay-prefix"),
        (prefix("/").only("GET"), "root"),
        (exact("/transfers").only("GET"), "transfers-get"),
        (
            exact("/transfers/").only("POST,PURGE,POST"),
            "transfers-post",
        ),
        (exact("/ping").only("HEAD"), "ping-head"),
        (exact("/ping").only("GET"), "ping-get"),
    ];
    check(
        &routes,
        &[
            (None, "POST", "/pay/7", "pay-post"),
            (None, "DELETE", "/pay/7/", "pay-delete"),
            // falls through to less specific routes accepting the method
            (None, "PUT", "/pay/7", "pay-prefix"),
            (None, "GET", "/pay/7", "root"),
            (None, "HEAD", "/pay/7", "root"),
            (None, "PATCH", "/pay/7", "405 DELETE,GET,HEAD,POST,PUT"),
            (None, "GET", "/transfers", "transfers-get"),
            (None, "HEAD", "/transfers", "transfers-get"),
            (None, "PURGE", "/transfers", "transfers-post"),
            (None, "DELETE", "/transfers", "405 GET,HEAD,POST,PURGE"),
            // an explicit HEAD route beats GET serving HEAD
            (None, "HEAD", "/ping", "ping-head"),
            (None, "GET", "/ping", "ping-get"),
            (None, "POST", "/ping", "405 GET,HEAD"),
        ],
    );
    let routes = [
        (exact("/only").only("POST"), "only"),
        (exact("/reads/{id}").only("GET"), "reads"),
        (prefix("/files").only("PUT,DELETE"), "files"),
    ];
    check(
        &routes,
        &[
            (None, "GET", "/nothing", "404"),
            (None, "GET", "/only", "405 POST"),
            (None, "POST", "/reads/1", "405 GET,HEAD"),
            (None, "GET", "/files/a/b", "405 DELETE,PUT"),
            (None, "GET", "/filesx", "404"),
        ],
    );
}

fn params_of(table: &RouteTable<&str>, path: &str) -> Vec<(String, String)> {
    match table.find(None, &Method::GET, path) {
        Lookup::Found { params, .. } => {
            assert_eq!(params.len(), params.iter().len());
            assert_eq!(params.is_empty(), params.iter().next().is_none());
            params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        }
        other => panic!("{path}: {other:?}"),
    }
}

#[test]
fn params_are_captured() {
    let table = RouteTable::build(vec![
        (exact("/accounts/{id}/tx/{tx_id}"), "tx"),
        (exact("/u/{a}").only("GET"), "u-get"),
        (exact("/u/{b}").only("POST"), "u-post"),
        (exact("/{p1}/{p2}/{p3}/{p4}/{p5}/{p6}"), "six"),
        (prefix("/static"), "static"),
    ])
    .unwrap();
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        params_of(&table, "/accounts/42/tx/t%201"),
        pairs(&[("id", "42"), ("tx_id", "t%201")])
    );
    // `{a}` and `{b}` share a trie node; names come from the winning route.
    assert_eq!(params_of(&table, "/u/x"), pairs(&[("a", "x")]));
    let Lookup::Found { params, .. } = table.find(None, &Method::POST, "/u/y") else {
        panic!()
    };
    assert_eq!((params.get("b"), params.get("a")), (Some("y"), None));
    // more than the inline capacity spills over correctly
    let six = params_of(&table, "/1/2/3/4/5/6/");
    assert_eq!(six.len(), 6);
    assert_eq!(six[5], ("p6".to_string(), "6".to_string()));
    assert!(params_of(&table, "/static/a/b").is_empty());
    // backtracking from a literal dead end drops the captures it pushed
    let table = RouteTable::build(vec![
        (exact("/x/{a}/lit/end"), "deep-param"),
        (exact("/x/{a}/{b}/other"), "two-params"),
    ])
    .unwrap();
    assert_eq!(
        params_of(&table, "/x/1/lit/other"),
        pairs(&[("a", "1"), ("b", "lit")])
    );
}

#[test]
fn iter_resolved_is_most_specific_first() {
    let table = RouteTable::build(vec![
        (prefix("/"), "root"),
        (prefix("/api"), "api"),
        (exact("/api/{id}"), "api-id"),
        (exact("/api/me"), "api-me"),
        (exact("/api/{id}").on("b.example"), "b-id"),
        (exact("/api/{id}").on("a.example"), "a-id"),
    ])
    .unwrap();
    let order: Vec<&str> = table.iter_resolved().copied().collect();
    assert_eq!(order, ["a-id", "b-id", "api-me", "api-id", "api", "root"]);
    assert_eq!(table.len(), 6);
    assert!(!table.is_empty());
    let empty = RouteTable::<()>::build(vec![]).unwrap();
    assert!(empty.is_empty());
    assert!(matches!(
        empty.find(None, &Method::GET, "/"),
        Lookup::NotFound
    ));
}

#[test]
fn ten_thousand_routes() {
    let mut routes = Vec::new();
    for i in 0..4000 {
        routes.push((
            exact(&format!("/api/svc{i}/items/{{id}}")),
            format!("item-{i}"),
        ));
        routes.push((
            exact(&format!("/api/svc{i}/items/{{id}}/history")).only("GET"),
            format!("history-{i}"),
        ));
    }
    for i in 0..2000 {
        routes.push((prefix(&format!("/api/svc{i}")), format!("prefix-{i}")));
    }
    let table = RouteTable::build(routes).unwrap();
    assert_eq!(table.len(), 10_000);
    let name = |method: &Method, path: &str| match table.find(None, method, path) {
        Lookup::Found { route, params } => format!("{route}:{}", params.get("id").unwrap_or("")),
        Lookup::MethodNotAllowed { allow } => format!("405:{}", allow.len()),
        Lookup::NotFound => "404".into(),
    };
    for i in (0..4000).step_by(7) {
        let get = &Method::GET;
        assert_eq!(
            name(get, &format!("/api/svc{i}/items/x{i}")),
            format!("item-{i}:x{i}")
        );
        assert_eq!(
            name(get, &format!("/api/svc{i}/items/7/history")),
            format!("history-{i}:7")
        );
        let (post_history, other) = if i < 2000 {
            (format!("prefix-{i}:"), format!("prefix-{i}:"))
        } else {
            ("405:2".to_string(), "404".to_string())
        };
        assert_eq!(
            name(&Method::POST, &format!("/api/svc{i}/items/7/history")),
            post_history
        );
        assert_eq!(name(get, &format!("/api/svc{i}/other/path")), other);
        assert_eq!(name(get, &format!("/api/svc{i}x/items/1")), "404");
    }
    assert_eq!(table.iter_resolved().count(), 10_000);
}
