//! `cors` through the real gateway: preflights answered before authentication and
//! never forwarded, the allowed origin on every answer (the gateway's own 401, 413
//! and 429 included), unlisted origins refused, the login route included.

use crate::authkit::*;
use crate::harness::*;
use serde_json::json;

const APP: &str = "https://app.example.com";

fn start() -> (Mock, Gateway) {
    let m = Mock::one("accounts", "a", &[]);
    // The login is a route of its own (no `path` shorthand), with cors too.
    let yaml = config(m.addr("a"), NO_LOCKOUT).replace("path: /auth/token, ", "")
        + r#"  - name: login
    match: { path: /auth/token, methods: [POST] }
    serve: token_endpoint
    filters: [ { cors: { origins: ['https://app.example.com'] } } ]
  - name: payments
    match: { path: /pay, methods: [POST] }
    upstream: a
    rewrite: { path: /_mock/echo/pay }
    max_body: 1KiB
    filters:
      - jwt: { scopes: [payments:write] }
      - rate_limit: { key: ip, limit: 2, per: 1m }
      - cors: { origins: ['https://app.example.com', 'https://*.partner.example'], headers: [Authorization, Content-Type, Idempotency-Key] }
"#;
    let gw = Gateway::start(&yaml);
    (m, gw)
}

fn preflight(gw: &Gateway, path: &str, origin: &str, method: &str, headers: &str) -> Response {
    request(
        gw.addr,
        "OPTIONS",
        path,
        &[
            ("Origin", origin),
            ("Access-Control-Request-Method", method),
            ("Access-Control-Request-Headers", headers),
        ],
        b"",
    )
}

#[test]
fn preflights_are_answered_by_the_gateway_before_authentication() {
    let (m, gw) = start();
    let before = Mock::requests(m.addr("a"));
    // The route takes only POST and needs a token: the preflight gets neither check.
    let ok = preflight(
        &gw,
        "/pay",
        APP,
        "POST",
        "authorization, content-type, idempotency-key",
    );
    assert_eq!(ok.status, 204, "{}", ok.body_text());
    assert_eq!(ok.header("access-control-allow-origin"), Some(APP));
    assert_eq!(ok.header("access-control-allow-methods"), Some("POST"));
    assert!(ok
        .header("access-control-allow-headers")
        .is_some_and(|h| h.to_ascii_lowercase().contains("idempotency-key")));
    assert_eq!(ok.header("vary"), Some("Origin"));
    let wildcard = preflight(
        &gw,
        "/pay",
        "https://eu.partner.example",
        "POST",
        "content-type",
    );
    assert_eq!(wildcard.status, 204);
    for (origin, method, headers) in [
        ("https://evil.test", "POST", "content-type"),
        ("https://partner.example.evil.test", "POST", "content-type"),
        (APP, "POST", "x-debug"),
    ] {
        let r = preflight(&gw, "/pay", origin, method, headers);
        assert_eq!(r.status, 403, "{origin} {method} {headers}");
        assert_eq!(r.json()["error"], "cors_rejected");
    }
    // A method the route does not take is not the route's: no cors answers it.
    assert_eq!(preflight(&gw, "/pay", APP, "DELETE", "").status, 405);
    // Not one preflight reached the service.
    assert_eq!(Mock::requests(m.addr("a")), before);
}

#[test]
fn the_allowed_origin_is_on_every_answer_and_other_origins_are_refused() {
    let (_m, gw) = start();
    let token = token_for(&gw, "mobile-app");
    let pay = |origin: Option<&str>, auth: Option<&str>, body: &[u8]| {
        let mut headers = vec![("Content-Type", "application/json")];
        headers.extend(origin.map(|o| ("Origin", o)));
        let bearer = auth.map(|t| format!("Bearer {t}"));
        headers.extend(bearer.as_deref().map(|b| ("Authorization", b)));
        request(gw.addr, "POST", "/pay", &headers, body)
    };
    let has_cors = |r: &Response| {
        r.header("access-control-allow-origin") == Some(APP)
            && r.header("access-control-expose-headers")
                .is_some_and(|h| h.contains("Retry-After"))
            && r.header("vary").is_some_and(|v| v.contains("Origin"))
    };
    // The service's answer, the gateway's 401, 413 and 429: all readable by the page.
    let ok = pay(Some(APP), Some(&token), b"{}");
    assert_eq!(ok.status, 200, "{}", ok.body_text());
    assert!(has_cors(&ok), "{:?}", ok.headers);
    let unauthenticated = pay(Some(APP), None, b"{}");
    assert_eq!(unauthenticated.status, 401);
    assert!(has_cors(&unauthenticated), "{:?}", unauthenticated.headers);
    let too_big = pay(Some(APP), Some(&token), &[b'x'; 2048]);
    assert_eq!(too_big.status, 413);
    assert!(has_cors(&too_big), "{:?}", too_big.headers);
    let limited = pay(Some(APP), Some(&token), b"{}");
    assert_eq!(limited.status, 429, "{}", limited.body_text());
    assert!(has_cors(&limited), "{:?}", limited.headers);
    // Another origin: refused, and told nothing it could read.
    let evil = pay(Some("https://evil.test"), Some(&token), b"{}");
    assert_eq!(evil.status, 403);
    assert_eq!(evil.json()["error"], "origin_not_allowed");
    assert_eq!(evil.header("access-control-allow-origin"), None);
    // No Origin: not a page; untouched.
    let plain = gw.get("/public/x");
    assert_eq!(plain.header("access-control-allow-origin"), None);
}

#[test]
fn the_login_route_answers_preflights_and_pages() {
    let (_m, gw) = start();
    let pre = preflight(&gw, "/auth/token", APP, "POST", "content-type");
    assert_eq!(pre.status, 204);
    let body = json!({"username": "alice", "password": PASSWORD}).to_string();
    let r = request(
        gw.addr,
        "POST",
        "/auth/token",
        &[("Origin", APP), ("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    let wrong = json!({"username": "alice", "password": "nope"}).to_string();
    let r = request(
        gw.addr,
        "POST",
        "/auth/token",
        &[("Origin", APP), ("Content-Type", "application/json")],
        wrong.as_bytes(),
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
}
