//! Balancing, health checks, retries, timeouts, keep-alive — against real mock targets.

use crate::harness::*;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn config(targets: &str, extra: &str) -> String {
    format!(
        "listen: [{{ address: '{{LISTEN}}' }}]\nadmin: {{ address: '{{ADMIN}}', api_key: '{{ADMIN_KEY}}' }}\nupstreams:\n  svc:\n    targets: {targets}\n{extra}routes:\n  - {{ name: echo, match: {{ prefix: /_mock/echo }}, upstream: svc }}\n"
    )
}

fn tally(gw: &Gateway, n: usize, headers: &[(&str, &str)]) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for _ in 0..n {
        let r = request(gw.addr, "GET", "/_mock/echo", headers, b"");
        assert_eq!(r.status, 200, "{}", r.body_text());
        *seen
            .entry(r.header("x-served-by").unwrap().to_owned())
            .or_insert(0) += 1;
    }
    seen
}

#[test]
fn round_robin_spreads_evenly() {
    let (a, b) = (
        Mock::one("accounts", "a", &[]),
        Mock::one("accounts", "b", &[]),
    );
    let gw = Gateway::start(&config(
        &format!("[{}, {}]", a.addr("a"), b.addr("b")),
        "    balance: round_robin\n",
    ));
    let seen = tally(&gw, 100, &[]);
    let (x, y) = (seen["a"] as i64, seen["b"] as i64);
    assert!((x - y).abs() <= 1, "{seen:?}");
}

#[test]
fn weighted_follows_the_weights() {
    let (a, b) = (
        Mock::one("accounts", "a", &[]),
        Mock::one("accounts", "b", &[]),
    );
    let targets = format!(
        "[{{ address: '{}', weight: 1 }}, {{ address: '{}', weight: 2 }}]",
        a.addr("a"),
        b.addr("b")
    );
    let gw = Gateway::start(&config(&targets, "    balance: weighted\n"));
    let seen = tally(&gw, 300, &[]);
    let share_b = seen["b"] as f64 / 300.0;
    assert!((share_b - 2.0 / 3.0).abs() < 0.1, "{seen:?}");
}

#[test]
fn consistent_hash_keeps_a_key_on_one_target() {
    let (a, b) = (
        Mock::one("accounts", "a", &[]),
        Mock::one("accounts", "b", &[]),
    );
    let gw = Gateway::start(&config(
        &format!("[{}, {}]", a.addr("a"), b.addr("b")),
        "    balance: consistent_hash\n    hash_on: header:X-User\n",
    ));
    let mut owners = HashMap::new();
    for user in 0..20 {
        let u = format!("user-{user}");
        let seen = tally(&gw, 5, &[("X-User", &u)]);
        assert_eq!(seen.len(), 1, "{u} was spread: {seen:?}");
        owners.insert(u, seen.into_keys().next().unwrap());
    }
    // 20 keys on 2 targets: both get some (the chance of all on one is 2^-19).
    assert_eq!(
        owners
            .values()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        2,
        "{owners:?}"
    );
}

fn target_state(gw: &Gateway, addr: SocketAddr) -> serde_json::Value {
    let all = gw.admin("GET", "/admin/upstreams").json();
    all["upstreams"]["svc"]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["address"] == addr.to_string())
        .cloned()
        .unwrap()
}

#[test]
fn a_dying_target_costs_no_request_and_comes_back() {
    let a = Mock::one("accounts", "a", &[]);
    let mut b = Mock::one("accounts", "b", &[]);
    let b_addr = b.addr("b");
    let interval_ms = 200;
    let gw = Gateway::start(&config(
        &format!("[{}, {}]", a.addr("a"), b_addr),
        &format!("    retries: 1\n    health_check: {{ path: /health, interval: {interval_ms}ms, timeout: 100ms, healthy: 2, unhealthy: 2 }}\n"),
    ));
    assert_eq!(tally(&gw, 10, &[]).len(), 2);

    b.kill();
    // A stream of requests while b is gone: every one must succeed (retried on a).
    for _ in 0..50 {
        let r = gw.get("/_mock/echo");
        assert_eq!(r.status, 200, "{}", r.body_text());
        assert_eq!(r.header("x-served-by"), Some("a"));
    }
    wait_for(
        Duration::from_millis(3 * interval_ms + 2000),
        "b marked unhealthy",
        || (target_state(&gw, b_addr)["healthy"] == false).then_some(()),
    );
    // The state is visible in metrics too.
    let series = format!("fingate_upstream_target_healthy{{target=\"{b_addr}\",upstream=\"svc\"}}");
    assert_eq!(gw.metric(&series), Some(0.0));

    let _b_again = Mock::start(
        &["accounts", "--listen", &b_addr.to_string(), "--name", "b"],
        1,
    );
    wait_for(Duration::from_secs(10), "b healthy again", || {
        (target_state(&gw, b_addr)["available"] == true).then_some(())
    });
    assert_eq!(tally(&gw, 10, &[]).len(), 2, "b serves again");
}

#[test]
fn slow_target_times_out_with_504() {
    let a = Mock::one("accounts", "a", &[]);
    set_faults(a.addr("a"), r#"{"latency_ms": 3000}"#);
    let gw = Gateway::start(&config(
        &format!("[{}]", a.addr("a")),
        "    read_timeout: 300ms\n",
    ));
    let r = gw.get("/_mock/echo");
    assert_eq!(r.status, 504, "{}", r.body_text());
    assert_eq!(r.json()["error"], "upstream_timeout");
}

#[test]
fn all_targets_down_fails_fast_with_502() {
    // Ports with nothing listening: connections are refused.
    let dead = format!("[127.0.0.1:{}, 127.0.0.1:{}]", free_port(), free_port());
    let gw = Gateway::start(&config(&dead, "    connect_timeout: 1s\n    retries: 1\n"));
    for _ in 0..3 {
        let started = Instant::now();
        let r = gw.get("/_mock/echo");
        assert_eq!(r.status, 502, "{}", r.body_text());
        assert_eq!(r.json()["error"], "upstream_unavailable");
        // A hang would show here; the bound is loose on purpose (not a benchmark).
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn upstream_connections_are_reused() {
    let a = Mock::one("accounts", "a", &[]);
    let gw = Gateway::start(&config(&format!("[{}]", a.addr("a")), ""));
    for _ in 0..20 {
        assert_eq!(gw.get("/_mock/echo").status, 200);
    }
    let stats = get(a.addr("a"), "/_mock/stats").json();
    let connections = stats["connections"]
        .as_u64()
        .expect("the mock counts accepted connections");
    assert!(
        connections < 20,
        "20 requests opened {connections} upstream connections"
    );
}

#[test]
fn an_upstream_that_stops_reading_a_body_times_out() {
    // A target that accepts and never reads: once the socket buffers between it and
    // the gateway are full, only the upstream write timeout ends the attempt.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().take(2).collect();
        std::thread::sleep(Duration::from_secs(60));
        drop(held);
    });
    let gw = Gateway::start(&format!(
        "listen: [{{ address: '{{LISTEN}}' }}]\nadmin: {{ address: '{{ADMIN}}', api_key: '{{ADMIN_KEY}}' }}\nupstreams:\n  svc:\n    targets: [{target}]\n    read_timeout: 300ms\nroutes:\n  - {{ name: upload, match: {{ prefix: /upload }}, upstream: svc, max_body: 256MiB }}\n"
    ));
    const BODY: usize = 128 << 20;
    let client = std::net::TcpStream::connect(gw.addr).unwrap();
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: {}\r\nContent-Length: {BODY}\r\n\r\n",
        gw.addr
    );
    let mut writer = client.try_clone().unwrap();
    std::thread::spawn(move || {
        use std::io::Write;
        let chunk = vec![b'x'; 1 << 20];
        let _ = writer.write_all(head.as_bytes());
        for _ in 0..BODY / chunk.len() {
            if writer.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let series = format!(
        "fingate_upstream_requests_total{{outcome=\"timeout\",target=\"{target}\",upstream=\"svc\"}}"
    );
    wait_for(
        Duration::from_secs(15),
        "the upload's upstream attempt to time out",
        || gw.metric(&series).filter(|v| *v >= 1.0),
    );
    let _ = client.shutdown(std::net::Shutdown::Both);
}

#[test]
fn a_target_removed_by_a_reload_leaves_the_health_metric() {
    let a = Mock::one("accounts", "a", &[]);
    let mut b = Mock::one("accounts", "b", &[]);
    let b_addr = b.addr("b");
    let checks =
        "    health_check: { path: /health, interval: 200ms, timeout: 100ms, healthy: 1, unhealthy: 1 }\n";
    let gw = Gateway::start(&config(&format!("[{}, {b_addr}]", a.addr("a")), checks));
    b.kill();
    let series = format!("fingate_upstream_target_healthy{{target=\"{b_addr}\",upstream=\"svc\"}}");
    wait_for(Duration::from_secs(5), "b reported down", || {
        (gw.metric(&series) == Some(0.0)).then_some(())
    });
    // The operator takes the dead target out: it must not stay "down" (and page).
    gw.write_config(&config(&format!("[{}]", a.addr("a")), checks));
    assert_eq!(gw.admin("POST", "/admin/reload").status, 200);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        gw.metric(&series),
        None,
        "the removed target's series stays"
    );
    let kept = format!(
        "fingate_upstream_target_healthy{{target=\"{}\",upstream=\"svc\"}}",
        a.addr("a")
    );
    assert_eq!(gw.metric(&kept), Some(1.0));
}
