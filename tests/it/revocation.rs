//! Token revocation: `POST /admin/tokens/revoke` by `jti` or by `sub`, across two
//! gateways sharing one real Redis (the other gateway refuses within 1 s, with no
//! store call per request), resynchronised after a lost subscription; removing or
//! disabling a consumer revokes its tokens; the memory store revokes in-process.

use crate::authkit::*;
use crate::harness::*;
use crate::redis::Redis;
use base64::Engine as _;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn redis_config(mock: std::net::SocketAddr, redis: &Redis) -> String {
    format!(
        "{}store: {{ backend: redis, url: '{}', timeout: 500ms }}\n",
        config(mock, NO_LOCKOUT),
        redis.url()
    )
}

fn revoke(gw: &Gateway, body: &Value) -> Response {
    gw.admin_post("/admin/tokens/revoke", body)
}

/// A claim of a token fingate issued (no signature check: the test's own token).
fn claim(token: &str, name: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice::<Value>(&bytes).unwrap()[name].clone()
}

fn status(gw: &Gateway, token: &str) -> u16 {
    bearer_get(gw, "/_mock/echo", token).status
}

/// Waits until `gw` refuses `token` as revoked; how long that took.
fn refused_within(gw: &Gateway, token: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    let r = wait_for(limit, "the token to be refused", || {
        let r = bearer_get(gw, "/_mock/echo", token);
        (r.status == 401).then_some(r)
    });
    assert_eq!(r.json()["error"], "invalid_token");
    assert_eq!(r.json()["message"], "token revoked");
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("token revoked"),
        "{:?}",
        r.headers
    );
    started.elapsed()
}

#[test]
fn a_revocation_reaches_every_gateway_on_one_redis_within_a_second() {
    let redis = Redis::start();
    let m = crate::harness::Mock::one("accounts", "a", &[]);
    let a = Gateway::start(&redis_config(m.addr("a"), &redis));
    let b = Gateway::start(&redis_config(m.addr("a"), &redis));
    let one = token_for(&a, "mobile-app");
    let two = token_for(&a, "mobile-app");
    let alices = token_for(&b, "alice");
    for t in [&one, &two, &alices] {
        assert_eq!(status(&a, t), 200);
        assert_eq!(status(&b, t), 200);
    }

    // By jti, on gateway A: B refuses that token, and only that one.
    let r = revoke(&a, &json!({ "jti": claim(&one, "jti") }));
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.json()["result"], "revoked");
    let took = refused_within(&b, &one, Duration::from_secs(1));
    println!("jti revocation seen by the other gateway after {took:?}");
    assert_eq!(status(&a, &one), 401);
    assert_eq!(status(&b, &two), 200);

    // No store call per request: requests on B add no Redis commands.
    let before = redis.calls("evalsha") + redis.calls("hget") + redis.calls("hgetall");
    for _ in 0..20 {
        assert_eq!(status(&b, &two), 200);
        assert_eq!(status(&b, &one), 401);
    }
    let after = redis.calls("evalsha") + redis.calls("hget") + redis.calls("hgetall");
    assert_eq!(after, before, "the revocation check called Redis");

    // By sub, on gateway B: every mobile-app token issued until now, on A too.
    std::thread::sleep(Duration::from_millis(1100));
    let r = revoke(&b, &json!({ "sub": "mobile-app" }));
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.json()["consumer"], "mobile-app");
    let took = refused_within(&a, &two, Duration::from_secs(1));
    println!("sub revocation seen by the other gateway after {took:?}");
    assert_eq!(status(&a, &alices), 200, "another consumer is untouched");
    // A token issued after the revocation works (iat is whole seconds: the
    // revocation's second is refused too).
    std::thread::sleep(Duration::from_millis(1100));
    let fresh = token_for(&b, "mobile-app");
    assert_eq!(status(&a, &fresh), 200);
    assert_eq!(status(&b, &fresh), 200);
    let refused = a.metric("fingate_auth_failures_total{reason=\"revoked\",route=\"echo\"}");
    assert!(refused.unwrap_or(0.0) >= 1.0, "{refused:?}");

    // A gateway that lost its subscription resynchronises on reconnecting: a
    // revocation written while it was away (never published) still reaches it.
    let bobs = token_for(&b, "web-app");
    assert_eq!(status(&b, &bobs), 200);
    let now = now();
    let jti = claim(&bobs, "jti");
    redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    redis.cli(&[
        "HSET",
        "fingate:{revocations}:jti",
        jti.as_str().unwrap(),
        &(now + 600).to_string(),
    ]);
    refused_within(&b, &bobs, Duration::from_secs(5));
}

#[test]
fn removing_or_disabling_a_consumer_revokes_its_tokens() {
    let redis = Redis::start();
    let m = crate::harness::Mock::one("accounts", "a", &[]);
    let yaml = redis_config(m.addr("a"), &redis);
    let a = Gateway::start(&yaml);
    let b = Gateway::start(&yaml);

    // A run-time consumer, removed through A's admin API: B refuses its token.
    let r = request(
        a.admin,
        "POST",
        "/admin/consumers",
        &[
            ("Authorization", &format!("Bearer {ADMIN_KEY}")),
            ("Content-Type", "application/json"),
        ],
        json!({"username": "partner", "password": PASSWORD, "scopes": ["accounts:read"]})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.body_text());
    let partner = token_for(&a, "partner");
    assert_eq!(status(&b, &partner), 200);
    assert_eq!(a.admin("DELETE", "/admin/consumers/partner").status, 200);
    refused_within(&b, &partner, Duration::from_secs(1));

    // A file consumer disabled by a reload of A: refused on B too (B has not
    // reloaded), through the store.
    let web = token_for(&a, "web-app");
    assert_eq!(status(&b, &web), 200);
    a.write_config(&yaml.replace(
        "username: web-app, password_hash",
        "username: web-app, disabled: true, password_hash",
    ));
    assert_eq!(a.admin("POST", "/admin/reload").status, 200);
    refused_within(&a, &web, Duration::from_secs(1));
    refused_within(&b, &web, Duration::from_secs(1));
}

#[test]
fn with_the_memory_store_a_revocation_applies_in_this_gateway_and_bad_bodies_say_why() {
    let (_m, gw) = start(NO_LOCKOUT);
    let t = token_for(&gw, "mobile-app");
    let r = revoke(
        &gw,
        &json!({ "jti": claim(&t, "jti"), "exp": claim(&t, "exp") }),
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(status(&gw, &t), 401);
    let other = token_for(&gw, "mobile-app");
    assert_eq!(status(&gw, &other), 200);
    for (body, says) in [
        (json!({}), "exactly one"),
        (json!({"jti": "a", "sub": "b"}), "exactly one"),
        (json!({"sub": "a", "exp": 5}), "`exp` goes with `jti`"),
        (json!({"user": "a"}), "unknown field"),
    ] {
        let r = revoke(&gw, &body);
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.json()["error"], "bad_request");
        assert!(
            r.json()["message"].as_str().unwrap().contains(says),
            "{}",
            r.body_text()
        );
    }
    let r = gw.admin("GET", "/admin/tokens/revoke");
    assert_eq!(r.status, 405);
    let r = request(gw.admin, "POST", "/admin/tokens/revoke", &[], b"{}");
    assert_eq!(r.status, 401, "the admin key is required");
    // Each action has its audit line, with its target and result.
    let jti = format!("jti:{}", claim(&t, "jti").as_str().unwrap());
    let log = wait_for(Duration::from_secs(5), "the audit lines", || {
        let log = gw.log();
        log.contains("\"action\":\"token_revoked\"").then_some(log)
    });
    let line = log
        .lines()
        .find(|l| l.contains("\"audit\":true") && l.contains(&jti))
        .unwrap_or_else(|| panic!("no audit line for {jti}:\n{log}"));
    assert!(line.contains("\"result\":\"ok\""), "{line}");
}
