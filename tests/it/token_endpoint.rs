//! `POST /auth/token` through the real gateway.

use crate::authkit::*;
use crate::harness::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Decodes with jsonwebtoken directly (not fingate's code), checking the signature
/// with the shared secret.
fn verify_independently(token: &str) -> (jsonwebtoken::Header, Value) {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_audience(&[AUDIENCE]);
    v.set_issuer(&["fingate"]);
    let data = jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
        &v,
    )
    .unwrap();
    (data.header, data.claims)
}

#[test]
fn a_login_returns_a_token_with_every_claim() {
    let (_m, gw) = start(NO_LOCKOUT);
    let before = now();
    let r = login(
        &gw,
        &json!({"username": "mobile-app", "password": PASSWORD, "tokenexp": 600}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let body = r.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    let (header, claims) = verify_independently(body["token"].as_str().unwrap());
    assert_eq!(header.kid.as_deref(), Some("main"));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::HS256);
    assert_eq!(claims["iss"], "fingate");
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["sub"], "mobile-app");
    assert_eq!(claims["scope"], "accounts:read payments:write");
    let iat = claims["iat"].as_i64().unwrap();
    assert!((before..=now()).contains(&iat), "iat {iat}");
    assert_eq!(claims["exp"].as_i64().unwrap(), iat + 600);
    let jti = claims["jti"].as_str().unwrap();
    assert_eq!(jti.len(), 36, "a UUID: {jti}");
    // expires_at is exp in RFC 3339.
    let expires_at = body["expires_at"].as_str().unwrap();
    assert_eq!(expires_at, fingate::auth::claims::rfc3339(iat as u64 + 600));
    assert!(
        expires_at.ends_with('Z') && expires_at.contains('T'),
        "{expires_at}"
    );
    // Every token is unique.
    let again = login(
        &gw,
        &json!({"username": "mobile-app", "password": PASSWORD}).to_string(),
    );
    let (_, claims2) = verify_independently(again.json()["token"].as_str().unwrap());
    assert_ne!(claims2["jti"], claims["jti"]);
    assert_eq!(again.json()["expires_in"], 900, "default_ttl");
    // The token opens a protected route.
    let token = body["token"].as_str().unwrap();
    assert_eq!(bearer_get(&gw, "/_mock/echo", token).status, 200);
}

#[test]
fn tokenexp_is_capped_at_max_ttl_and_accepts_durations() {
    let (_m, gw) = start(NO_LOCKOUT);
    for (exp, want) in [
        (json!(86_400), 3600),
        (json!("2h"), 3600),
        (json!("90s"), 90),
    ] {
        let r = login(
            &gw,
            &json!({"username": "alice", "password": PASSWORD, "tokenexp": exp}).to_string(),
        );
        assert_eq!(r.status, 200, "{}", r.body_text());
        assert_eq!(r.json()["expires_in"], want, "tokenexp {exp}");
        let (_, claims) = verify_independently(r.json()["token"].as_str().unwrap());
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            want
        );
    }
}

/// The answer without its per-request id.
fn without_request_id(r: &Response) -> Value {
    let mut v = r.json();
    v.as_object_mut().unwrap().remove("request_id");
    v
}

#[test]
fn unknown_user_and_wrong_password_look_the_same() {
    let (_m, gw) = start(NO_LOCKOUT);
    let timed = |body: Value| {
        let t = Instant::now();
        let r = login(&gw, &body.to_string());
        (r, t.elapsed())
    };
    // Warm up (first argon2 use, connection set-up).
    let _ = timed(json!({"username": "alice", "password": "x"}));
    let (unknown, t_unknown) = timed(json!({"username": "nobody", "password": PASSWORD}));
    let (wrong, t_wrong) = timed(json!({"username": "alice", "password": "wrong"}));
    let (disabled, _) = timed(json!({"username": "bob", "password": PASSWORD}));
    for r in [&unknown, &wrong, &disabled] {
        assert_eq!(r.status, 401, "{}", r.body_text());
        assert_eq!(r.json()["error"], "invalid_credentials");
    }
    assert_eq!(without_request_id(&unknown), without_request_id(&wrong));
    assert_eq!(without_request_id(&disabled), without_request_id(&wrong));
    // Both ran an argon2 check: neither answers in a fraction of the other's time.
    let (a, b) = (t_unknown.as_secs_f64(), t_wrong.as_secs_f64());
    assert!(
        a > b / 3.0 && b > a / 3.0,
        "unknown {t_unknown:?} vs wrong {t_wrong:?}"
    );
    assert!(
        a > 0.005,
        "an unknown user must still cost a hash: {t_unknown:?}"
    );
}

#[test]
fn malformed_bodies_are_400_naming_the_problem() {
    let (_m, gw) = start(NO_LOCKOUT);
    for (body, says) in [
        ("not json", "not valid JSON"),
        (r#"{"username":"alice"}"#, "`password` is missing"),
        (
            r#"{"username":42,"password":"p"}"#,
            "`username` must be a string",
        ),
        (
            r#"{"username":"alice","password":"p","tokenexp":"forever"}"#,
            "tokenexp",
        ),
        (
            r#"{"username":"alice","password":"p","tokenexp":[1]}"#,
            "tokenexp",
        ),
        ("[]", "JSON object"),
    ] {
        let r = login(&gw, body);
        assert_eq!(r.status, 400, "{body}: {}", r.body_text());
        assert_eq!(r.json()["error"], "bad_request");
        let msg = r.json()["message"].as_str().unwrap().to_owned();
        assert!(msg.contains(says), "{body}: {msg}");
    }
    let r = request(
        gw.addr,
        "POST",
        "/auth/token",
        &[("Content-Type", "text/plain")],
        br#"{"username":"alice","password":"p"}"#,
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("application/json"));
    let huge = format!(
        r#"{{"username":"alice","password":"{}"}}"#,
        "x".repeat(20 * 1024)
    );
    let r = login(&gw, &huge);
    assert_eq!(r.status, 413, "{}", r.body_text());
    assert_eq!(r.json()["error"], "payload_too_large");
    let r = request(gw.addr, "GET", "/auth/token", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
}

#[test]
fn repeated_failures_for_a_username_are_429_and_passwords_are_never_logged() {
    let (_m, gw) = start("{ username_failures: 3, ip_failures: 1000, window: 1m }");
    let secret_attempt = "Sup3r-Secret-Guess!";
    for _ in 0..3 {
        let r = login(
            &gw,
            &json!({"username": "alice", "password": secret_attempt}).to_string(),
        );
        assert_eq!(r.status, 401);
    }
    let r = login(
        &gw,
        &json!({"username": "alice", "password": PASSWORD}).to_string(),
    );
    assert_eq!(r.status, 429, "{}", r.body_text());
    assert_eq!(r.json()["error"], "rate_limited");
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    // Another username is unaffected.
    assert_eq!(
        login(
            &gw,
            &json!({"username": "web-app", "password": PASSWORD}).to_string()
        )
        .status,
        200
    );
    // All five logins (3 refused, 1 throttled, 1 accepted) reach the access log
    // (it is written every 100 ms), so the absence checks below look at them.
    let log = wait_for(Duration::from_secs(5), "five login lines", || {
        let log = gw.log();
        (log.matches("\"route\":\"token_endpoint\"").count() >= 5).then_some(log)
    });
    for pw in [secret_attempt, PASSWORD] {
        assert!(!log.contains(pw), "a password reached the log:\n{log}");
    }
}

#[test]
fn repeated_failures_from_one_address_are_429() {
    let (_m, gw) = start("{ username_failures: 100, ip_failures: 4, window: 1m }");
    for i in 0..4 {
        let r = login(
            &gw,
            &json!({"username": format!("guess{i}"), "password": "x"}).to_string(),
        );
        assert_eq!(r.status, 401);
    }
    let r = login(
        &gw,
        &json!({"username": "alice", "password": PASSWORD}).to_string(),
    );
    assert_eq!(r.status, 429, "{}", r.body_text());
}

#[test]
fn run_time_registration_with_the_memory_store_is_409_saying_why() {
    let (_m, gw) = start(NO_LOCKOUT);
    let list = gw.admin("GET", "/admin/consumers");
    assert_eq!(list.status, 200);
    let names: Vec<_> = list.json()["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["username"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["alice", "bob", "mobile-app", "web-app"]);
    assert!(
        !list.body_text().contains("argon2"),
        "hashes are never shown"
    );
    let add = request(
        gw.admin,
        "POST",
        "/admin/consumers",
        &[("Authorization", &format!("Bearer {ADMIN_KEY}"))],
        br#"{"username":"new-app","password":"pw","scopes":["accounts:read"]}"#,
    );
    assert_eq!(add.status, 409, "{}", add.body_text());
    assert!(add.json()["message"]
        .as_str()
        .unwrap()
        .contains("store.backend: redis"));
    let del = gw.admin("DELETE", "/admin/consumers/alice");
    assert_eq!(del.status, 409, "{}", del.body_text());
}

#[test]
fn a_reload_says_when_auth_or_consumers_changed() {
    let (m, gw) = start(NO_LOCKOUT);
    let reload = |yaml: &str| {
        gw.write_config(yaml);
        let r = gw.admin("POST", "/admin/reload");
        assert_eq!(r.status, 200, "{}", r.body_text());
        r.json()["summary"]["settings_changed"].clone()
    };
    let same = config(m.addr("a"), NO_LOCKOUT);
    assert_eq!(reload(&same), json!([]));
    // A new secret is a new key even though every other setting stays.
    let rotated = same.replace(SECRET, "another-integration-secret-0123456789");
    assert_eq!(reload(&rotated), json!(["auth"]));
    let fewer = rotated.replace("  - { username: bob, ", "  - { username: bobby, ");
    assert_eq!(reload(&fewer), json!(["consumers"]));
}

#[test]
fn the_login_is_a_route_with_filters_metrics_and_logs_under_its_own_name() {
    let m = Mock::one("accounts", "a", &[]);
    // No `path` shorthand: the endpoint is served only where a route says so.
    let yaml = config(m.addr("a"), NO_LOCKOUT).replace("path: /auth/token, ", "")
        + "  - name: login\n    match: { path: /login, methods: [POST] }\n    serve: token_endpoint\n    filters:\n      - rate_limit: { key: ip, limit: 3, per: 1m }\n";
    let gw = Gateway::start(&yaml);
    let body = json!({"username": "alice", "password": PASSWORD}).to_string();
    let post = |path: &str| {
        request(
            gw.addr,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
    };
    let statuses: Vec<u16> = (0..4).map(|_| post("/login").status).collect();
    assert_eq!(statuses, [200, 200, 200, 429]);
    // The rate limit's headers are on the answers it let through, too.
    assert_eq!(post("/login").header("ratelimit-limit"), Some("3"));
    // The shorthand's route is gone with its `path`.
    assert_eq!(post("/auth/token").status, 404);
    let ok = gw
        .metric("fingate_requests_total{method=\"POST\",route=\"login\",status=\"200\"}")
        .unwrap_or(0.0);
    assert_eq!(ok, 3.0);
    let log = wait_for(Duration::from_secs(5), "login log lines", || {
        let log = gw.log();
        (log.matches("\"route\":\"login\"").count() >= 5).then_some(log)
    });
    assert!(!log.contains("\"route\":\"token_endpoint\""), "{log}");
}
