//! Starts real instances on 127.0.0.1:0 and talks raw HTTP/1.1 to them, so
//! the middleware stack is exercised exactly as the gateway will hit it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::faults::FaultConfig;
use crate::ledger::Ledger;
use crate::server;

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

async fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: mock\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// Starts the same set of instances as `services-mock all`, on ephemeral ports.
async fn start_all() -> Vec<(String, SocketAddr)> {
    let ledger = Ledger::seeded().shared();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let f = FaultConfig::default();
    let specs = vec![
        (
            "accounts-1".to_string(),
            any,
            server::accounts_instance("accounts-1", ledger.clone(), f.clone()),
        ),
        (
            "accounts-2".to_string(),
            any,
            server::accounts_instance("accounts-2", ledger.clone(), f.clone()),
        ),
        (
            "payments".to_string(),
            any,
            server::payments_instance(ledger, f.clone()),
        ),
        ("loans".to_string(), any, server::loans_instance(f)),
    ];
    let bound = server::bind_all(specs).await.unwrap();
    let addrs = bound.iter().map(|b| (b.name.clone(), b.addr)).collect();
    tokio::spawn(server::serve(bound, None, std::future::pending()));
    addrs
}

fn addr_of(addrs: &[(String, SocketAddr)], name: &str) -> SocketAddr {
    addrs.iter().find(|(n, _)| n == name).unwrap().1
}

#[tokio::test]
async fn shared_ledger_health_echo_and_routing() {
    let addrs = start_all().await;
    for (name, addr) in &addrs {
        assert_ne!(addr.port(), 0);
        let r = http(*addr, "GET", "/health", &[], "").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["status"], "ok");
        assert_eq!(r.header("x-served-by"), Some(name.as_str()));
    }
    let (a1, a2, pay, loans) = (
        addr_of(&addrs, "accounts-1"),
        addr_of(&addrs, "accounts-2"),
        addr_of(&addrs, "payments"),
        addr_of(&addrs, "loans"),
    );

    // A payment through payments shows on both accounts instances.
    let before = http(a1, "GET", "/accounts/ACC-1001", &[], "").await.json()["balance"]
        .as_i64()
        .unwrap();
    let body =
        r#"{"from_account":"ACC-1001","to_account":"ACC-1002","amount":1234,"currency":"EUR"}"#;
    let hdrs = [
        ("content-type", "application/json"),
        ("idempotency-key", "abc"),
    ];
    let r = http(pay, "POST", "/payments", &hdrs, body).await;
    assert_eq!(r.status, 201);
    let pay_id = r.json()["id"].as_str().unwrap().to_string();
    let replay = http(pay, "POST", "/payments", &hdrs, body).await;
    assert_eq!(
        (replay.status, replay.header("idempotent-replayed")),
        (201, Some("true"))
    );
    assert_eq!(replay.json(), r.json());
    let after = http(a2, "GET", "/accounts/ACC-1001", &[], "").await;
    assert_eq!(after.header("x-served-by"), Some("accounts-2"));
    assert_eq!(after.json()["balance"].as_i64().unwrap(), before - 1234);
    let st = http(a2, "GET", "/accounts/ACC-1001/statement?limit=500", &[], "")
        .await
        .json();
    let last = st["transactions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["amount"], -1234);
    assert!(last["description"].as_str().unwrap().contains(&pay_id));
    assert_eq!(st["next_cursor"], Value::Null);

    // Consumer isolation over HTTP, and JSON 4xx everywhere.
    let r = http(
        a1,
        "GET",
        "/accounts/ACC-1001",
        &[("x-consumer-id", "web-app")],
        "",
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (403, Some("forbidden"))
    );
    let r = http(
        a1,
        "GET",
        "/accounts/ACC-1001/statement?from=2026-02-30",
        &[],
        "",
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("invalid_date"))
    );
    let r = http(a1, "GET", "/nope", &[], "").await;
    assert_eq!(
        (
            r.status,
            r.json()["error"].as_str(),
            r.header("x-served-by")
        ),
        (404, Some("not_found"), Some("accounts-1"))
    );
    let r = http(a1, "DELETE", "/accounts/ACC-1001", &[], "").await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let r = http(pay, "POST", "/payments", &[], "{oops").await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("malformed_json"))
    );

    // FX is cacheable and served by accounts instances only.
    let r = http(a2, "GET", "/fx/EUR-USD", &[], "").await;
    assert_eq!(
        (r.status, r.header("cache-control")),
        (200, Some("public, max-age=30"))
    );
    assert_eq!(r.json()["rate"], "1.0842");
    assert_eq!(http(pay, "GET", "/fx/EUR-USD", &[], "").await.status, 404);

    // Loans round trip.
    let r = http(
        loans,
        "POST",
        "/loans/quote",
        &[],
        r#"{"principal":1000000,"annual_rate_bps":650,"months":12}"#,
    )
    .await;
    assert_eq!(r.status, 201);
    let q = r.json();
    assert_eq!(q["installment"], 86_296);
    let got = http(
        loans,
        "GET",
        &format!("/loans/{}", q["id"].as_str().unwrap()),
        &[],
        "",
    )
    .await;
    assert_eq!(got.json(), q);

    // Echo reports the raw request.
    let r = http(
        a1,
        "POST",
        "/_mock/echo/a%20b/c?x=1%2F2&y",
        &[("X-Foo", "one"), ("x-foo", "two")],
        "héllo",
    )
    .await;
    let e = r.json();
    assert_eq!(e["instance"], "accounts-1");
    assert_eq!(e["method"], "POST");
    assert_eq!(e["path"], "/_mock/echo/a%20b/c");
    assert_eq!(e["query"], "x=1%2F2&y");
    assert_eq!(e["headers"]["x-foo"], serde_json::json!(["one", "two"]));
    assert_eq!(e["body"], "héllo");
    assert_eq!(
        http(a1, "GET", "/_mock/echo", &[], "").await.json()["query"],
        Value::Null
    );
}

#[tokio::test]
async fn fault_knobs_and_stats() {
    let addrs = start_all().await;
    let a = addr_of(&addrs, "accounts-2");
    let other = addr_of(&addrs, "accounts-1");
    let set = |body: &'static str| async move { http(a, "POST", "/_mock/faults", &[], body).await };

    // Stats: business requests count, /health and /_mock/* do not.
    assert_eq!(
        http(a, "POST", "/_mock/stats/reset", &[], "").await.json()["requests"],
        0
    );
    for _ in 0..3 {
        http(a, "GET", "/accounts/ACC-2001", &[], "").await;
    }
    http(a, "GET", "/health", &[], "").await;
    http(a, "GET", "/_mock/echo", &[], "").await;
    let s = http(a, "GET", "/_mock/stats", &[], "").await.json();
    assert_eq!(
        (s["instance"].as_str(), s["requests"].as_u64()),
        (Some("accounts-2"), Some(3))
    );
    assert_eq!(s["by_path"]["/accounts/ACC-2001"], 3);

    // force_status hits business routes and echo, not health or diagnostics.
    let cfg = set(r#"{"force_status": 503}"#).await;
    assert_eq!(cfg.json()["force_status"], 503);
    let r = http(a, "GET", "/accounts/ACC-2001", &[], "").await;
    assert_eq!(
        (r.status, r.header("x-served-by")),
        (503, Some("accounts-2"))
    );
    assert_eq!(r.json()["error"], "forced_status");
    assert_eq!(http(a, "GET", "/_mock/echo", &[], "").await.status, 503);
    assert_eq!(http(a, "GET", "/health", &[], "").await.status, 200);
    assert_eq!(http(a, "GET", "/_mock/faults", &[], "").await.status, 200);
    // Knobs are per instance.
    assert_eq!(
        http(other, "GET", "/accounts/ACC-2001", &[], "")
            .await
            .status,
        200
    );

    // health_status only changes /health.
    set(r#"{"force_status": null, "health_status": 503}"#).await;
    assert_eq!(http(a, "GET", "/health", &[], "").await.status, 503);
    assert_eq!(
        http(a, "GET", "/accounts/ACC-2001", &[], "").await.status,
        200
    );

    // garbage: 200, claims JSON, is not JSON.
    set(r#"{"garbage": true, "health_status": null}"#).await;
    let r = http(a, "GET", "/accounts/ACC-2001", &[], "").await;
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("application/json"))
    );
    assert!(serde_json::from_slice::<Value>(&r.body).is_err());

    // fail_every N: exactly every Nth request fails.
    set(r#"{"garbage": false, "fail_every": 3, "fail_status": 502}"#).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(http(a, "GET", "/fx/EUR-USD", &[], "").await.status);
    }
    assert_eq!(statuses, [200, 200, 502, 200, 200, 502]);

    // latency applies before answering.
    set(r#"{"fail_every": 0, "latency_ms": 150}"#).await;
    let t = Instant::now();
    assert_eq!(http(a, "GET", "/fx/EUR-USD", &[], "").await.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(150));
    let t = Instant::now();
    http(a, "GET", "/health", &[], "").await;
    assert!(t.elapsed() < Duration::from_millis(150));

    // Bad knob values are rejected with JSON; reset clears everything.
    let r = set(r#"{"fail_status": 42}"#).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("invalid_fault"))
    );
    let r = http(a, "POST", "/_mock/faults/reset", &[], "").await.json();
    assert_eq!(
        (r["latency_ms"].as_u64(), r["fail_status"].as_u64()),
        (Some(0), Some(500))
    );
}

/// `/diag/stream` sends exactly `size` bytes, made as the connection takes them;
/// a reader that stops leaves the response in flight until its connection closes.
#[tokio::test]
async fn streamed_bodies_and_the_in_flight_count() {
    let addrs = start_all().await;
    let a = addr_of(&addrs, "accounts-1");
    let r = http(a, "GET", "/diag/stream?size=200000", &[], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("200000"));
    assert_eq!(r.body.len(), 200_000);
    assert!(r.body.iter().all(|b| *b == b'x'));
    // POST too (an idempotent route's large answer); the body is ignored.
    let r = http(a, "POST", "/diag/stream?size=5000", &[], "{}").await;
    assert_eq!((r.status, r.body.len()), (200, 5000));
    let in_flight =
        || async { http(a, "GET", "/_mock/stats", &[], "").await.json()["in_flight"].as_u64() };
    assert_eq!(in_flight().await, Some(0));

    // A client that asks for 64 MiB and reads nothing.
    let mut stalled = TcpStream::connect(a).await.unwrap();
    stalled
        .write_all(b"GET /diag/stream?size=67108864 HTTP/1.1\r\nHost: mock\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    while in_flight().await != Some(1) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never in flight"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        in_flight().await,
        Some(1),
        "a stalled response stays in flight"
    );
    drop(stalled);
    let closed = Instant::now();
    while in_flight().await != Some(0) {
        assert!(
            closed.elapsed() < Duration::from_secs(5),
            "still in flight after the client left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
