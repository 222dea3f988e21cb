//! Run-time consumers in Redis: registered through the admin API
//! or the CLI, they log in, survive a gateway restart, are seen by every gateway
//! sharing the store, and stop logging in once removed.

use crate::authkit::*;
use crate::harness::*;
use crate::redis::Redis;
use serde_json::json;
use std::time::Duration;

const NEW_PASSWORD: &str = "Partner-Pa55word-7";

fn redis_config(mock: std::net::SocketAddr, redis: &Redis) -> String {
    redis_config_with_lockout(mock, redis, NO_LOCKOUT)
}

fn redis_config_with_lockout(mock: std::net::SocketAddr, redis: &Redis, lockout: &str) -> String {
    format!(
        "{}store: {{ backend: redis, url: '{}', timeout: 500ms }}\n",
        config(mock, lockout),
        redis.url()
    )
}

fn login_as(gw: &Gateway, user: &str, password: &str) -> Response {
    login(
        gw,
        &json!({"username": user, "password": password}).to_string(),
    )
}

/// The log once it holds at least `n` token-endpoint access lines.
fn logins_logged(gw: &Gateway, n: usize) -> String {
    wait_for(Duration::from_secs(5), "the login access lines", || {
        let log = gw.log();
        (log.matches("\"route\":\"token_endpoint\"").count() >= n).then_some(log)
    })
}

fn sources(gw: &Gateway) -> Vec<(String, String)> {
    let r = gw.admin("GET", "/admin/consumers");
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert!(!r.body_text().contains("argon2"), "hashes are never shown");
    r.json()["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["username"].as_str().unwrap().to_owned(),
                c["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn registered_through_the_admin_api_a_consumer_survives_a_restart_until_removed() {
    let redis = Redis::start();
    let m = Mock::one("accounts", "a", &[]);
    let yaml = redis_config(m.addr("a"), &redis);
    let gw = Gateway::start(&yaml);

    let new =
        json!({"username": "partner-app", "password": NEW_PASSWORD, "scopes": ["accounts:read"]});
    let r = gw.admin_post("/admin/consumers", &new);
    assert_eq!(r.status, 201, "{}", r.body_text());
    let again = gw.admin_post("/admin/consumers", &new);
    assert_eq!(again.status, 409, "{}", again.body_text());
    assert_eq!(again.json()["error"], "exists");
    // A file consumer cannot be shadowed by a run-time one.
    let shadow = gw.admin_post(
        "/admin/consumers",
        &json!({"username": "alice", "password": "x"}),
    );
    assert_eq!(shadow.status, 409, "{}", shadow.body_text());
    let listed = sources(&gw);
    assert!(listed.contains(&("partner-app".into(), "store".into())));
    assert!(listed.contains(&("alice".into(), "yaml".into())));

    // Only the argon2id hash is stored.
    let stored = redis.cli(&["HGET", "fingate:consumers", "partner-app"]);
    assert!(stored.contains("$argon2id$"), "{stored}");
    assert!(!stored.contains(NEW_PASSWORD));

    let r = login_as(&gw, "partner-app", NEW_PASSWORD);
    assert_eq!(r.status, 200, "{}", r.body_text());
    let token = r.json()["token"].as_str().unwrap().to_owned();
    let echo = bearer_get(&gw, "/_mock/echo/me", &token);
    assert_eq!(echo.status, 200, "{}", echo.body_text());
    assert_eq!(echo.json()["headers"]["x-consumer-id"][0], "partner-app");
    assert_eq!(login_as(&gw, "partner-app", "wrong").status, 401);
    // Wait for the logins' access lines (written every 100 ms) before stopping.
    let first_log = logins_logged(&gw, 2);
    drop(gw);

    // A new gateway process on the same Redis still knows the consumer.
    let gw = Gateway::start(&yaml);
    assert_eq!(login_as(&gw, "partner-app", NEW_PASSWORD).status, 200);

    let del = gw.admin("DELETE", "/admin/consumers/partner-app");
    assert_eq!(del.status, 200, "{}", del.body_text());
    let r = login_as(&gw, "partner-app", NEW_PASSWORD);
    assert_eq!(r.status, 401, "{}", r.body_text());
    assert_eq!(r.json()["error"], "invalid_credentials");
    assert_eq!(
        gw.admin("DELETE", "/admin/consumers/partner-app").status,
        404
    );
    assert_eq!(gw.admin("DELETE", "/admin/consumers/alice").status, 409);
    // File consumers still log in.
    assert_eq!(login_as(&gw, "alice", PASSWORD).status, 200);
    for log in [first_log, logins_logged(&gw, 3)] {
        assert!(!log.contains(NEW_PASSWORD), "a password reached the log");
    }
}

#[test]
fn registration_refuses_bad_bodies_with_a_reason() {
    let redis = Redis::start();
    let m = Mock::one("accounts", "a", &[]);
    let gw = Gateway::start(&redis_config(m.addr("a"), &redis));
    for (body, needle) in [
        (json!({"username": "x"}), "password"),
        (json!({"username": "", "password": "p"}), "username"),
        (
            json!({"username": "x", "password": "p", "scopes": ["bad scope"]}),
            "scope",
        ),
        (json!({"username": "x", "password": ""}), "password"),
        (
            json!({"username": "x", "password": "p", "role": "admin"}),
            "role",
        ),
    ] {
        let r = gw.admin_post("/admin/consumers", &body);
        assert_eq!(r.status, 400, "{body}: {}", r.body_text());
        let message = r.json()["message"].as_str().unwrap().to_owned();
        assert!(message.contains(needle), "{body}: {message}");
    }
    assert_eq!(redis.cli(&["HLEN", "fingate:consumers"]), "0");
}

/// `fingate consumers <args> -c <the gateway's config>` with `stdin` piped in.
fn consumers_cli(gw: &Gateway, args: &[&str], stdin: &str) -> (i32, String, String) {
    let config = gw.config.display().to_string();
    let mut all = vec!["consumers"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-c", &config]);
    fingate_with_stdin(&all, gw.dir.path(), stdin)
}

#[test]
fn the_cli_registers_in_redis_and_every_gateway_sharing_it_sees_the_change() {
    let redis = Redis::start();
    let m = Mock::one("accounts", "a", &[]);
    let yaml = redis_config(m.addr("a"), &redis);
    let (gw1, gw2) = (Gateway::start(&yaml), Gateway::start(&yaml));

    let (code, out, err) = consumers_cli(
        &gw1,
        &["add", "ops-bot", "--scope", "accounts:read"],
        &format!("{NEW_PASSWORD}\n"),
    );
    assert_eq!(code, 0, "{out}{err}");
    for gw in [&gw1, &gw2] {
        assert_eq!(login_as(gw, "ops-bot", NEW_PASSWORD).status, 200);
    }
    let (code, out, _) = consumers_cli(&gw1, &["list"], "");
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l.starts_with("ops-bot\tstore\taccounts:read")),
        "{out}"
    );
    assert!(out.lines().any(|l| l.starts_with("alice\tyaml")), "{out}");

    let (code, _, err) = consumers_cli(&gw1, &["add", "ops-bot"], "other\n");
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = consumers_cli(&gw1, &["add", "empty"], "\n");
    assert_eq!(code, 1);
    assert!(err.contains("no password"), "{err}");

    let (code, _, err) = consumers_cli(&gw1, &["remove", "ops-bot"], "");
    assert_eq!(code, 0, "{err}");
    for gw in [&gw1, &gw2] {
        assert_eq!(login_as(gw, "ops-bot", NEW_PASSWORD).status, 401);
    }
    let (code, _, err) = consumers_cli(&gw1, &["remove", "ops-bot"], "");
    assert_eq!(code, 1);
    assert!(err.contains("no run-time consumer"), "{err}");
}

#[test]
fn with_redis_down_file_consumers_still_log_in_and_others_get_503() {
    let mut redis = Redis::start();
    let m = Mock::one("accounts", "a", &[]);
    let gw = Gateway::start(&redis_config(m.addr("a"), &redis));
    redis.kill();
    assert_eq!(login_as(&gw, "alice", PASSWORD).status, 200);
    let r = login_as(&gw, "someone-else", "pw");
    assert_eq!(r.status, 503, "{}", r.body_text());
    assert_eq!(r.json()["error"], "store_unavailable");
    let r = gw.admin_post(
        "/admin/consumers",
        &json!({"username": "late", "password": "pw"}),
    );
    assert_eq!(r.status, 503, "{}", r.body_text());
}

#[test]
fn failed_logins_are_counted_across_gateways_sharing_redis() {
    let redis = Redis::start();
    let m = Mock::one("accounts", "a", &[]);
    let yaml = redis_config_with_lockout(
        m.addr("a"),
        &redis,
        "{ username_failures: 4, ip_failures: 1000, window: 1m }",
    );
    let (gw1, gw2) = (Gateway::start(&yaml), Gateway::start(&yaml));
    for gw in [&gw1, &gw2, &gw1, &gw2] {
        assert_eq!(login_as(gw, "alice", "guess").status, 401);
    }
    for gw in [&gw1, &gw2] {
        let r = login_as(gw, "alice", PASSWORD);
        assert_eq!(r.status, 429, "{}", r.body_text());
        // A refused attempt counts and starts the 1-minute window again.
        let after: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((55..=60).contains(&after), "{after}");
    }
    assert_eq!(login_as(&gw2, "web-app", PASSWORD).status, 200);
}
