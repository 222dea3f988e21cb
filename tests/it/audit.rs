//! The audit log: every administrative action is one JSON line with
//! `"audit": true`, whichever way it was asked (admin API, SIGHUP, `--watch`),
//! with its target, result and source address — and never a secret.

use crate::authkit::{config, NO_LOCKOUT, SECRET};
use crate::harness::*;
use crate::redis::Redis;
use serde_json::{json, Value};
use std::time::Duration;

const NEW_PASSWORD: &str = "Audit-Secret-Pa55word-9";

fn audit_lines(gw: &Gateway) -> Vec<Value> {
    gw.log()
        .lines()
        .filter(|l| l.contains("\"audit\":true"))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Waits for the audit line of `action` on `target` (the `n`th such line).
fn audited(gw: &Gateway, action: &str, target: &str, n: usize) -> Value {
    wait_for(
        Duration::from_secs(5),
        &format!("audit line {action} {target}"),
        || {
            audit_lines(gw)
                .into_iter()
                .filter(|l| l["action"] == action && l["target"] == target)
                .nth(n)
        },
    )
}

fn assert_line(line: &Value, result: &str, via: &str, source: bool) {
    assert_eq!(line["audit"], true, "{line}");
    assert_eq!(line["result"], result, "{line}");
    assert_eq!(line["via"], via, "{line}");
    assert_eq!(line["level"], "INFO", "{line}");
    assert!(
        line["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{line}"
    );
    match source {
        true => assert_eq!(line["source"], "127.0.0.1", "{line}"),
        false => assert!(line.get("source").is_none(), "{line}"),
    }
}

#[test]
fn every_admin_action_is_one_audit_line_without_secrets() {
    let redis = Redis::start();
    let m = Mock::one("accounts", "a", &[]);
    let yaml = format!(
        "{}store: {{ backend: redis, url: '{}', timeout: 500ms }}\n",
        config(m.addr("a"), NO_LOCKOUT),
        redis.url()
    );
    // Operational logs quieted: the audit trail is still written.
    let gw = Gateway::start_full(&yaml, &[("FINGATE_LOG", "warn")], &["--watch"]);
    let config_file = gw.config.display().to_string();

    // Consumers added (and refused once) and removed, over the admin API.
    let new =
        json!({"username": "partner-app", "password": NEW_PASSWORD, "scopes": ["accounts:read"]});
    assert_eq!(gw.admin_post("/admin/consumers", &new).status, 201);
    assert_line(
        &audited(&gw, "consumer_added", "partner-app", 0),
        "ok",
        "admin_api",
        true,
    );
    assert_eq!(gw.admin_post("/admin/consumers", &new).status, 409);
    let refused = audited(&gw, "consumer_added", "partner-app", 1);
    assert_line(&refused, "error", "admin_api", true);
    assert_eq!(refused["reason"], "exists");
    assert_eq!(
        gw.admin("DELETE", "/admin/consumers/partner-app").status,
        200
    );
    assert_line(
        &audited(&gw, "consumer_removed", "partner-app", 0),
        "ok",
        "admin_api",
        true,
    );
    assert_eq!(gw.admin("DELETE", "/admin/consumers/nobody").status, 404);
    assert_eq!(
        audited(&gw, "consumer_removed", "nobody", 0)["reason"],
        "not_found"
    );

    // The cache purged, all of it and by prefix.
    assert_eq!(
        gw.admin("DELETE", "/admin/cache?prefix=/api/fx").status,
        200
    );
    let purge = audited(&gw, "cache_purged", "/api/fx", 0);
    assert_line(&purge, "ok", "admin_api", true);
    assert_eq!(purge["purged"], 0);
    assert_eq!(gw.admin("DELETE", "/admin/cache").status, 200);
    audited(&gw, "cache_purged", "*", 0);

    // Reloads: by the admin API, by SIGHUP (a file that is refused), by --watch.
    let r = gw.admin("POST", "/admin/reload");
    assert_eq!(r.status, 200, "{}", r.body_text());
    let api = audited(&gw, "reload", &config_file, 0);
    assert_line(&api, "ok", "admin_api", true);
    assert_eq!(
        api["hash"].as_str().map(str::len),
        Some(r.json()["summary"]["hash"].as_str().unwrap().len())
    );
    std::fs::write(&gw.config, "routes: [ { name: broken } ]\n").unwrap();
    gw.signal("HUP");
    // --watch sees the same broken file: whichever comes first, both are refused.
    let bad = wait_for(Duration::from_secs(5), "a refused reload", || {
        audit_lines(&gw)
            .into_iter()
            .find(|l| l["action"] == "reload" && l["result"] == "error")
    });
    assert_eq!(bad["reason"], "invalid_config");
    assert!(bad.get("source").is_none(), "{bad}");
    wait_for(Duration::from_secs(5), "the SIGHUP reload's line", || {
        audit_lines(&gw)
            .into_iter()
            .find(|l| l["action"] == "reload" && l["via"] == "sighup")
    });
    gw.write_config(&yaml.replace("default_ttl: 15m", "default_ttl: 10m"));
    let watched = wait_for(Duration::from_secs(10), "the --watch reload's line", || {
        audit_lines(&gw)
            .into_iter()
            .find(|l| l["action"] == "reload" && l["via"] == "watch" && l["result"] == "ok")
    });
    assert_line(&watched, "ok", "watch", false);

    // Nothing secret anywhere in the output: not the new password, not the
    // admin key, not the JWT secret.
    let log = gw.log();
    for secret in [NEW_PASSWORD, ADMIN_KEY, SECRET] {
        assert!(!log.contains(secret), "{secret} reached the log");
    }
    // One line per action; and nothing but audit lines came through FINGATE_LOG=warn at info.
    assert_eq!(
        audit_lines(&gw)
            .iter()
            .filter(|l| l["action"] == "consumer_added")
            .count(),
        2
    );
}
