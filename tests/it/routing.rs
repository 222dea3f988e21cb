//! Route selection through the gateway: precedence, 404/405, rewrites.

use crate::harness::*;

/// Four upstream groups, one mock instance each, so `X-Served-By` names the route taken.
fn four_upstreams() -> (Vec<Mock>, String) {
    let mocks: Vec<Mock> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| Mock::one("accounts", n, &[]))
        .collect();
    let mut yaml = String::from("upstreams:\n");
    for (m, n) in mocks.iter().zip(["a", "b", "c", "d"]) {
        yaml.push_str(&format!("  {n}: {{ targets: [{}] }}\n", m.addr(n)));
    }
    (mocks, yaml)
}

fn served_by(gw: &Gateway, path: &str, host: Option<&str>) -> String {
    let headers: Vec<(&str, &str)> = host.map(|h| vec![("Host", h)]).unwrap_or_default();
    let r = request(gw.addr, "GET", path, &headers, b"");
    assert_eq!(r.status, 200, "{path}: {}", r.body_text());
    r.header("x-served-by").unwrap().to_owned()
}

const ROUTES: [&str; 6] = [
    "  - { name: exact, match: { path: /_mock/echo/x/y }, upstream: a }\n",
    "  - { name: param, match: { path: '/_mock/echo/{p}/y' }, upstream: b }\n",
    "  - { name: long-prefix, match: { prefix: /_mock/echo/x }, upstream: c }\n",
    "  - { name: short-prefix, match: { prefix: /_mock }, upstream: d }\n",
    "  - { name: host-prefix, match: { prefix: /_mock/echo/h, host: api.example.com }, upstream: a }\n",
    "  - { name: any-host, match: { prefix: /_mock/echo/h }, upstream: b }\n",
];

#[test]
fn most_specific_route_wins_whatever_the_file_order() {
    let (_mocks, upstreams) = four_upstreams();
    // The same routes in file order and reversed must resolve the same way.
    for order in [ROUTES.to_vec(), ROUTES.iter().rev().copied().collect()] {
        let yaml = format!("listen: [{{ address: '{{LISTEN}}' }}]\nadmin: {{ address: '{{ADMIN}}' }}\n{upstreams}routes:\n{}", order.concat());
        let gw = Gateway::start(&yaml);
        let cases = [
            ("/_mock/echo/x/y", None, "a"), // exact beats param and prefixes
            ("/_mock/echo/z/y", None, "b"), // param beats prefixes
            ("/_mock/echo/x/q", None, "c"), // longer prefix beats shorter
            ("/_mock/echo/xy", None, "d"),  // prefixes match whole segments only
            ("/_mock/echo/h/1", Some("api.example.com"), "a"), // host-specific first
            ("/_mock/echo/h/1", Some("API.example.com:8080"), "a"), // case and port ignored
            ("/_mock/echo/h/1", Some("other.example.com"), "b"), // other hosts fall back
        ];
        for (path, host, want) in cases {
            assert_eq!(served_by(&gw, path, host), want, "{path} host={host:?}");
        }
    }
}

#[test]
fn unmatched_paths_get_404_and_wrong_methods_405_with_allow() {
    let m = Mock::one("accounts", "a", &[]);
    let yaml = format!(
        "listen: [{{ address: '{{LISTEN}}' }}]\nadmin: {{ address: '{{ADMIN}}' }}\nupstreams:\n  a: {{ targets: [{}] }}\nroutes:\n  - {{ name: read, match: {{ path: '/_mock/echo/{{id}}', methods: [GET] }}, upstream: a }}\n  - {{ name: write, match: {{ path: '/_mock/echo/{{id}}', methods: [PUT, DELETE] }}, upstream: a }}\n",
        m.addr("a")
    );
    let gw = Gateway::start(&yaml);
    let r = gw.get("/nothing/here");
    assert_eq!(r.status, 404);
    let body = r.json();
    assert_eq!(body["error"], "route_not_found");
    assert!(
        body["request_id"].as_str().is_some_and(|s| !s.is_empty()),
        "{body}"
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    // Every answer the gateway makes names its request in a header too, even
    // without a `request_id` filter, and an edge refusal as well as a routing one.
    assert_eq!(r.header("x-request-id"), body["request_id"].as_str());
    let bad_host = request(gw.addr, "GET", "/_mock/echo/1", &[("Host", "a b")], b"");
    assert_eq!(bad_host.status, 400);
    assert_eq!(
        bad_host.header("x-request-id"),
        bad_host.json()["request_id"].as_str()
    );

    let r = request(gw.addr, "POST", "/_mock/echo/1", &[], b"{}");
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["error"], "method_not_allowed");
    assert_eq!(r.header("allow"), Some("DELETE, GET, HEAD, PUT"));
    assert_eq!(
        request(gw.addr, "DELETE", "/_mock/echo/1", &[], b"").status,
        200
    );
}

#[test]
fn rewrites_reach_the_service_as_configured() {
    let m = Mock::one("accounts", "a", &[]);
    let yaml = format!(
        "listen: [{{ address: '{{LISTEN}}' }}]\nadmin: {{ address: '{{ADMIN}}' }}\nupstreams:\n  a: {{ targets: [{}] }}\nroutes:\n  - {{ name: strip, match: {{ prefix: /api/_mock }}, upstream: a, rewrite: {{ strip_prefix: /api }} }}\n  - {{ name: template, match: {{ path: '/v2/things/{{kind}}/{{id}}' }}, upstream: a, rewrite: {{ path: '/_mock/echo/v1/{{id}}/of/{{kind}}' }} }}\n",
        m.addr("a")
    );
    let gw = Gateway::start(&yaml);
    let seen = gw
        .get("/api/_mock/echo/accounts/7?from=2026-01-01&limit=5")
        .json();
    assert_eq!(seen["path"], "/_mock/echo/accounts/7");
    assert_eq!(seen["query"], "from=2026-01-01&limit=5");
    let seen = gw.get("/v2/things/loan/42?x=1").json();
    assert_eq!(seen["path"], "/_mock/echo/v1/42/of/loan");
    assert_eq!(seen["query"], "x=1");
}
