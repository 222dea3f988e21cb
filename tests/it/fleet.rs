//! A fleet on a distributed store: gateways sharing a real local Redis Cluster or a
//! Sentinel-watched primary. Exact limits across three gateways; consumers,
//! idempotency keys and revocations across the cluster; a primary failing over
//! (cluster and Sentinel) under `on_store_error: allow` and `deny`; cache purges
//! reaching every gateway within a second, and a gateway that lost its
//! subscription dropping what it may have missed; `rediss://` checking the
//! server's certificate.

use crate::authkit::*;
use crate::harness::*;
use crate::redis::Redis;
use crate::redis_fleet::{Cluster, ClusterTls, Sentinels};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The auth test config plus routes for each shared feature, on `store_url`.
fn fleet_config(mock: SocketAddr, store_url: &str) -> String {
    format!(
        "{}  - {{ name: limited, match: {{ prefix: /limited }}, upstream: a, rewrite: {{ path: /_mock/echo/limited }}, filters: [ {{ rate_limit: {{ key: 'header:X-Client', limit: 20, per: 1m }} }} ] }}
  - {{ name: allow, match: {{ prefix: /allow }}, upstream: a, rewrite: {{ path: /_mock/echo/allow }}, filters: [ {{ rate_limit: {{ key: 'header:X-Client', limit: 100000, per: 1m, algorithm: sliding_window, on_store_error: allow }} }} ] }}
  - {{ name: deny, match: {{ prefix: /deny }}, upstream: a, rewrite: {{ path: /_mock/echo/deny }}, filters: [ {{ rate_limit: {{ key: 'header:X-Client', limit: 100000, per: 1m, algorithm: sliding_window, on_store_error: deny }} }} ] }}
  - {{ name: pay, match: {{ path: /pay, methods: [POST] }}, upstream: a, rewrite: {{ path: /_mock/echo/pay }}, filters: [ {{ idempotency: {{ required: true }} }} ] }}
  - {{ name: fx, match: {{ path: \"/api/fx/{{pair}}\", methods: [GET] }}, upstream: a, rewrite: {{ strip_prefix: /api }}, filters: [ {{ cache: {{ ttl: 5m }} }} ] }}
store: {{ backend: redis, url: '{store_url}', timeout: 1s }}
",
        config(mock, NO_LOCKOUT)
    )
}

fn hit(gw: &Gateway, path: &str, client: &str) -> Response {
    try_request(gw.addr, "GET", path, &[("X-Client", client)], b"")
        .unwrap_or_else(|e| panic!("GET {path}: {e}; gateway log:\n{}", gw.log()))
}

fn x_cache(r: &Response) -> String {
    r.header("x-cache").unwrap_or("(none)").to_owned()
}

fn ready(gw: &Gateway) {
    wait_for(Duration::from_secs(10), "readyz", || {
        (get(gw.admin, "/readyz").status == 200).then_some(())
    });
}

#[test]
fn three_gateways_on_a_cluster_share_limits_consumers_keys_revocations_and_purges() {
    let cluster = Cluster::start(3, 0);
    let m = Mock::one("accounts", "a", &[]);
    let yaml = fleet_config(m.addr("a"), &cluster.url());
    let gws = [
        Gateway::start(&yaml),
        Gateway::start(&yaml),
        Gateway::start(&yaml),
    ];
    for gw in &gws {
        ready(gw);
    }

    // 20 per client per minute: exactly 20 pass across the three, sent at once.
    let allowed = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for gw in &gws {
            let allowed = &allowed;
            s.spawn(move || {
                for _ in 0..15 {
                    match hit(gw, "/limited", "fleet-client").status {
                        200 => {
                            allowed.fetch_add(1, Ordering::Relaxed);
                        }
                        429 => {}
                        other => panic!("status {other}; log:\n{}", gw.log()),
                    }
                }
            });
        }
    });
    assert_eq!(allowed.into_inner(), 20);
    // The decisions ran as scripts in the cluster: every allowed request, and at
    // least the first refusal in each gateway (later ones are refused locally
    // until the time the store named).
    let scripts = cluster.calls("evalsha") + cluster.calls("eval");
    assert!(scripts >= 23, "{scripts} scripts");
    for gw in &gws {
        assert!(
            gw.metric("fingate_rate_limit_decisions_total{decision=\"allowed\",route=\"limited\"}")
                .unwrap_or(0.0)
                + gw.metric(
                    "fingate_rate_limit_decisions_total{decision=\"limited\",route=\"limited\"}"
                )
                .unwrap_or(0.0)
                == 15.0
        );
        assert_eq!(
            gw.metric("fingate_store_errors_total{operation=\"rate_limit\"}"),
            None
        );
    }

    // A consumer registered through one gateway logs in through another.
    let new = json!({"username": "cluster-app", "password": "a long enough password", "scopes": ["accounts:read"]});
    let r = gws[0].admin_post("/admin/consumers", &new);
    assert_eq!(r.status, 201, "{}", r.body_text());
    let login = login(
        &gws[2],
        &json!({"username": "cluster-app", "password": "a long enough password"}).to_string(),
    );
    assert_eq!(login.status, 200, "{}", login.body_text());
    let token = login.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(bearer_get(&gws[1], "/_mock/echo", &token).status, 200);

    // An idempotency key used through one gateway replays through another.
    let pay = |gw: &Gateway| {
        request(
            gw.addr,
            "POST",
            "/pay",
            &[
                ("Content-Type", "application/json"),
                ("Idempotency-Key", "cluster-pay-1"),
            ],
            br#"{"amount": 10}"#,
        )
    };
    let first = pay(&gws[0]);
    assert_eq!(first.status, 200, "{}", first.body_text());
    let before = Mock::requests(m.addr("a"));
    let again = pay(&gws[1]);
    assert_eq!(again.status, 200);
    assert_eq!(again.body, first.body);
    assert_eq!(
        again.header("idempotent-replayed"),
        Some("true"),
        "{:?}",
        again.headers
    );
    assert_eq!(
        Mock::requests(m.addr("a")),
        before,
        "the replay reached the service"
    );

    // A token revoked through one gateway is refused by the others within 1 s.
    let r = gws[1].admin_post("/admin/tokens/revoke", &json!({"sub": "cluster-app"}));
    assert_eq!(r.status, 200, "{}", r.body_text());
    let revoked = Instant::now();
    for gw in [&gws[0], &gws[2]] {
        wait_for(Duration::from_secs(1), "the revoked token refused", || {
            (bearer_get(gw, "/_mock/echo", &token).status == 401).then_some(())
        });
    }
    assert!(revoked.elapsed() <= Duration::from_secs(1));

    // A purge through one gateway empties the others' caches within 1 s.
    for gw in &gws {
        for pair in ["/api/fx/EUR-USD", "/api/fx/GBP-USD"] {
            gw.get(pair);
            assert_eq!(x_cache(&gw.get(pair)), "HIT");
        }
    }
    let r = gws[0].admin("DELETE", "/admin/cache?prefix=/api/fx/EUR");
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(
        (r.json()["purged"].as_u64(), r.json()["fleet"].as_bool()),
        (Some(1), Some(true))
    );
    let purged = Instant::now();
    for gw in &gws[1..] {
        wait_for(Duration::from_secs(1), "the purge heard", || {
            gw.log()
                .contains("cache purged by another gateway")
                .then_some(())
        });
        assert_eq!(x_cache(&gw.get("/api/fx/EUR-USD")), "MISS");
        assert_eq!(x_cache(&gw.get("/api/fx/GBP-USD")), "HIT");
    }
    assert!(
        purged.elapsed() <= Duration::from_secs(1),
        "{:?}",
        purged.elapsed()
    );
    assert!(
        !gws[0].log().contains("cache purged by another gateway"),
        "a gateway ignores its own purge message"
    );
}

/// Sends requests to `path` until `until`, returning every status seen in order.
fn steady(gw: &Gateway, path: &str, until: Instant) -> Vec<u16> {
    let mut statuses = Vec::new();
    while Instant::now() < until {
        statuses.push(hit(gw, path, "failover-client").status);
        std::thread::sleep(Duration::from_millis(20));
    }
    statuses
}

/// Through a failover: `allow` never answers 5xx; `deny` answers 503
/// `store_unavailable` while no primary holds the key, then 200 again and stays.
fn through_failover(gw: &Gateway, kill: impl FnOnce()) {
    assert_eq!(hit(gw, "/deny", "failover-client").status, 200);
    let until = Instant::now() + Duration::from_secs(12);
    let (allow, deny) = std::thread::scope(|s| {
        let allow = s.spawn(|| steady(gw, "/allow", until));
        let deny = s.spawn(|| steady(gw, "/deny", until));
        std::thread::sleep(Duration::from_millis(500));
        kill();
        (allow.join().unwrap(), deny.join().unwrap())
    });
    assert!(
        allow.iter().all(|s| *s == 200),
        "allow: {allow:?}\n{}",
        gw.log()
    );
    let refused = deny.iter().filter(|s| **s == 503).count();
    let last_refusal = deny.iter().rposition(|s| *s == 503);
    assert!(refused >= 1, "the outage was never seen: {deny:?}");
    assert!(
        deny.iter().all(|s| *s == 200 || *s == 503),
        "deny: {deny:?}"
    );
    // Recovered well before the end: the last second or more is all 200.
    let tail = &deny[last_refusal.unwrap() + 1..];
    assert!(
        tail.len() >= 25,
        "not recovered for long: {deny:?}\n{}",
        gw.log()
    );
    let r = hit(gw, "/deny", "failover-client");
    assert_eq!(r.status, 200);
}

#[test]
fn a_cluster_primary_failing_over_keeps_decisions_going() {
    let mut cluster = Cluster::start(3, 1);
    let m = Mock::one("accounts", "a", &[]);
    let gw = Gateway::start(&fleet_config(m.addr("a"), &cluster.url()));
    ready(&gw);
    assert_eq!(hit(&gw, "/deny", "failover-client").status, 200);
    let holder = cluster.primary_holding("fingate:rl:*");
    let port = cluster.nodes[holder].port;
    through_failover(&gw, || cluster.nodes[holder].kill());
    // The replica took over the key's slot.
    let promoted = cluster
        .nodes
        .iter()
        .filter(|n| n.alive() && n.port != port)
        .filter(|n| n.cli(&["ROLE"]).starts_with("master"))
        .count();
    assert_eq!(promoted, 3, "three primaries again after the failover");
}

#[test]
fn sentinel_failover_is_followed() {
    let mut s = Sentinels::start();
    let m = Mock::one("accounts", "a", &[]);
    let gw = Gateway::start(&fleet_config(m.addr("a"), &s.url()));
    ready(&gw);
    assert_eq!(hit(&gw, "/deny", "failover-client").status, 200);
    assert!(s.primary.calls("evalsha") + s.primary.calls("eval") >= 1);
    let old = s.primary.port;
    through_failover(&gw, || s.primary.kill());
    assert_eq!(
        s.primary_port(),
        Some(s.replica.port),
        "the sentinels promoted the replica"
    );
    assert_ne!(s.primary_port(), Some(old));
    assert!(s.replica.calls("evalsha") + s.replica.calls("eval") >= 1);
    // Named at start, then again after the failover.
    assert_eq!(
        gw.log()
            .matches("the sentinels name this redis primary")
            .count(),
        2,
        "{}",
        gw.log()
    );
}

#[test]
fn a_gateway_that_lost_its_subscription_drops_what_it_may_have_missed() {
    let mut redis = Redis::start();
    let port = redis.port;
    let m = Mock::one("accounts", "a", &[]);
    let yaml = fleet_config(m.addr("a"), &redis.url());
    let (a, b) = (Gateway::start(&yaml), Gateway::start(&yaml));
    ready(&a);
    ready(&b);
    for gw in [&a, &b] {
        gw.get("/api/fx/EUR-USD");
        assert_eq!(x_cache(&gw.get("/api/fx/EUR-USD")), "HIT");
    }
    redis.kill();
    // The purge is done on A, but the fleet could not be told: 503, safe to repeat.
    let r = a.admin("DELETE", "/admin/cache");
    assert_eq!(r.status, 503, "{}", r.body_text());
    assert_eq!(r.json()["error"], "store_unavailable");
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("purged 1 entries here"));
    assert_eq!(
        x_cache(&b.get("/api/fx/EUR-USD")),
        "HIT",
        "B still serves it meanwhile"
    );
    // Redis back: B subscribes again and drops everything it holds.
    let _redis = Redis::start_on(port);
    wait_for(Duration::from_secs(5), "B resubscribed", || {
        b.log()
            .contains("dropped every entry on subscribing")
            .then_some(())
    });
    assert_eq!(x_cache(&b.get("/api/fx/EUR-USD")), "MISS");
    assert_eq!(a.admin("DELETE", "/admin/cache").status, 200);
}

#[test]
fn rediss_checks_the_servers_certificate() {
    let ca = crate::testca::TestCa::new("redis");
    let server = ca.server("redis", &["localhost", "127.0.0.1"]);
    let tls_port = free_port();
    let redis = Redis::start_with(
        free_port(),
        &[
            "--tls-port",
            &tls_port.to_string(),
            "--tls-cert-file",
            server.cert.to_str().unwrap(),
            "--tls-key-file",
            server.key.to_str().unwrap(),
            "--tls-ca-cert-file",
            ca.cert.to_str().unwrap(),
            "--tls-auth-clients",
            "no",
        ],
    );
    let m = Mock::one("accounts", "a", &[]);
    let yaml = fleet_config(m.addr("a"), &format!("rediss://127.0.0.1:{tls_port}/0"));
    let trusted = Gateway::start_with(&yaml, &[("SSL_CERT_FILE", ca.cert.to_str().unwrap())]);
    ready(&trusted);
    assert_eq!(hit(&trusted, "/deny", "tls-client").status, 200);
    assert!(!redis
        .cli(&["--scan", "--pattern", "fingate:rl:*"])
        .is_empty());
    // Trusting only the system's roots, the test CA's certificate is refused.
    let untrusted = Gateway::start(&yaml);
    let r = hit(&untrusted, "/deny", "tls-client");
    assert_eq!(r.status, 503, "{}", r.body_text());
    assert_eq!(r.json()["error"], "store_unavailable");
    assert_eq!(get(untrusted.admin, "/readyz").status, 503);
}

#[test]
fn rediss_cluster_speaks_tls_to_every_node() {
    let ca = crate::testca::TestCa::new("redis");
    let server = ca.server("redis", &["localhost", "127.0.0.1"]);
    // Nodes authenticate each other on the cluster bus with client certificates.
    let node = ca.client("redis-node", "redis-node", &[]);
    let tls = ClusterTls {
        cert: server.cert.to_str().unwrap(),
        key: server.key.to_str().unwrap(),
        client_cert: node.cert.to_str().unwrap(),
        client_key: node.key.to_str().unwrap(),
        ca: ca.cert.to_str().unwrap(),
    };
    let cluster = Cluster::start_with(3, 0, Some(&tls));
    let m = Mock::one("accounts", "a", &[]);
    let yaml = fleet_config(m.addr("a"), &cluster.url());
    assert!(yaml.contains("rediss+cluster://"));
    let gw = Gateway::start_with(&yaml, &[("SSL_CERT_FILE", ca.cert.to_str().unwrap())]);
    ready(&gw);
    // Clients spread over the slots: every primary answers some, over TLS.
    for i in 0..30 {
        let r = hit(&gw, "/deny", &format!("tls-client-{i}"));
        assert_eq!(r.status, 200, "{}\n{}", r.body_text(), gw.log());
    }
    for node in &cluster.nodes {
        // The gateway knows only TLS ports (the seeds, and the nodes' answers to
        // a TLS client), so a key on every primary was written over TLS.
        assert!(
            !node
                .cli(&["--scan", "--pattern", "fingate:rl:*"])
                .is_empty(),
            "a primary holds no key"
        );
    }
}
