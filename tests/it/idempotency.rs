//! `idempotency` end to end: the real gateway in front of the real payments mock,
//! with the memory store and a real redis-server.
//!
//! The payments mock deduplicates keys itself once a key reaches it, so its
//! answers prove nothing about the gateway: these tests count the requests that
//! reached the mock (`/_mock/stats`), and each must be 1 where the gateway
//! promises the service is called once.

use crate::authkit::{good_claims, main_token, AUDIENCE, SECRET};
use crate::harness::*;
use crate::redis::Redis;
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const ORDER: &[u8] =
    br#"{"from_account":"ACC-1001","to_account":"ACC-2001","amount":2500,"currency":"EUR"}"#;
const OTHER_ORDER: &[u8] =
    br#"{"from_account":"ACC-1001","to_account":"ACC-2001","amount":2600,"currency":"EUR"}"#;

/// Routes: `pay` (anonymous: keys scoped to the client address), `pay-auth`
/// (`jwt` first: keys scoped to the consumer), `big` (answers of `?size=N`
/// bytes from an accounts mock), `dead` (an upstream nobody listens on).
fn config(store: &str, payments: SocketAddr, big: SocketAddr, payments_upstream: &str) -> String {
    let dead = free_port();
    format!(
        r#"listen: [{{ address: '{{LISTEN}}' }}]
admin: {{ address: '{{ADMIN}}', api_key: '{{ADMIN_KEY}}' }}
store: {store}
auth:
  issuer: fingate
  audience: {AUDIENCE}
  keys: [{{ id: main, algorithm: HS256, secret: '{SECRET}' }}]
upstreams:
  payments: {{ targets: [{payments}], retries: 0{payments_upstream} }}
  big: {{ targets: [{big}] }}
  dead: {{ targets: [127.0.0.1:{dead}], retries: 0 }}
filters:
  - request_id: {{}}
routes:
  - name: pay
    match: {{ path: /api/payments, methods: [POST] }}
    upstream: payments
    rewrite: {{ strip_prefix: /api }}
    filters:
      - idempotency: {{ required: true }}
  - name: pay-auth
    match: {{ path: /auth/payments, methods: [POST] }}
    upstream: payments
    rewrite: {{ path: /payments }}
    filters:
      - jwt: {{ scopes: [payments:write] }}
      - idempotency: {{ required: true }}
  - name: big
    match: {{ path: /big, methods: [POST] }}
    upstream: big
    rewrite: {{ path: /diag/stream }}
    filters:
      - idempotency: {{}}
  - name: echo
    match: {{ path: /echo, methods: [POST] }}
    upstream: big
    rewrite: {{ path: /_mock/echo }}
    filters:
      - idempotency: {{}}
  - name: dead
    match: {{ path: /dead, methods: [POST] }}
    upstream: dead
    filters:
      - idempotency: {{}}
"#
    )
}

fn memory() -> String {
    "{ backend: memory }".into()
}

fn redis_store(r: &Redis) -> String {
    format!("{{ backend: redis, url: '{}', timeout: 1s }}", r.url())
}

struct Setup {
    payments: Mock,
    big: Mock,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            payments: Mock::start(&["payments", "--listen", "127.0.0.1:0"], 1),
            big: Mock::one("accounts", "big", &[]),
        }
    }
    fn pay_addr(&self) -> SocketAddr {
        self.payments.addr("payments")
    }
    fn config(&self, store: &str) -> String {
        config(store, self.pay_addr(), self.big.addr("big"), "")
    }
    /// Requests the payments service received.
    fn paid(&self) -> u64 {
        Mock::requests(self.pay_addr())
    }
}

fn pay(gw: &Gateway, key: Option<&str>, body: &[u8]) -> Response {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(k) = key {
        headers.push(("Idempotency-Key", k));
    }
    try_request(gw.addr, "POST", "/api/payments", &headers, body)
        .unwrap_or_else(|e| panic!("POST /api/payments: {e}; gateway log:\n{}", gw.log()))
}

fn metric(gw: &Gateway, route: &str, result: &str) -> f64 {
    gw.metric(&format!(
        "fingate_idempotency_total{{result=\"{result}\",route=\"{route}\"}}"
    ))
    .unwrap_or(0.0)
}

fn error_code(r: &Response) -> String {
    r.json()["error"].as_str().unwrap_or_default().to_owned()
}

/// Headers of `r` other than those made per request.
fn stored_headers(r: &Response) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .filter(|(n, _)| {
            !matches!(
                n.as_str(),
                "x-request-id" | "idempotent-replayed" | "connection" | "date"
            )
        })
        .collect();
    h.sort();
    h
}

/// The first answer is stored; a retry gets it back byte for byte, marked, and
/// the service is not called again.
fn replay_scenario(store: &str) {
    let s = Setup::new();
    let gw = Gateway::start(&s.config(store));
    let first = pay(&gw, Some("order-1"), ORDER);
    assert_eq!(first.status, 201, "{}", first.body_text());
    assert_eq!(first.header("idempotent-replayed"), None);
    let retry = pay(&gw, Some("order-1"), ORDER);
    assert_eq!(retry.status, 201, "{}", retry.body_text());
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.body, first.body, "the body, byte for byte");
    assert_eq!(stored_headers(&retry), stored_headers(&first));
    assert_ne!(
        retry.header("x-request-id"),
        first.header("x-request-id"),
        "a replay is a new request"
    );
    // The quoted spelling of the same key is the same key.
    let quoted = pay(&gw, Some("\"order-1\""), ORDER);
    assert_eq!(quoted.header("idempotent-replayed"), Some("true"));
    assert_eq!(s.paid(), 1, "the service was called once");
    assert_eq!(metric(&gw, "pay", "new"), 1.0);
    assert_eq!(metric(&gw, "pay", "replayed"), 2.0);
}

#[test]
fn a_retry_is_replayed_byte_for_byte_memory_store() {
    replay_scenario(&memory());
}

#[test]
fn a_retry_is_replayed_byte_for_byte_redis_store() {
    let redis = Redis::start();
    replay_scenario(&redis_store(&redis));
    let keys = redis.cli(&["KEYS", "fingate:idem:*"]);
    assert!(
        keys.lines().count() == 1 && keys.starts_with("fingate:idem:{") && keys.ends_with('}'),
        "one hash-tagged key: {keys}"
    );
}

/// The client has an answer's last byte only once the answer is stored: a retry
/// sent the moment the first answer is complete (on a connection opened before)
/// is replayed, never told the key is still in flight.
#[test]
fn an_answer_is_stored_before_its_last_byte_reaches_the_client() {
    let s = Setup::new();
    let gw = Gateway::start(&s.config(&memory()));
    let send = |c: &mut TcpStream, key: &str| {
        let head = format!(
            "POST /api/payments HTTP/1.1\r\nHost: pay\r\nConnection: close\r\nContent-Type: application/json\r\nIdempotency-Key: {key}\r\nContent-Length: {}\r\n\r\n",
            ORDER.len()
        );
        c.write_all(head.as_bytes()).unwrap();
        c.write_all(ORDER).unwrap();
    };
    for i in 0..30 {
        let key = format!("eager-{i}");
        let mut first = TcpStream::connect(gw.addr).unwrap();
        let mut retry = TcpStream::connect(gw.addr).unwrap();
        send(&mut first, &key);
        // Read exactly the answer (by its length), not until the connection ends.
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        let answer = loop {
            let n = first.read(&mut buf).unwrap();
            assert!(n > 0, "the connection ended early");
            raw.extend_from_slice(&buf[..n]);
            if let Ok(r) = parse_response(&raw, false) {
                let len: usize = r.header("content-length").unwrap().parse().unwrap();
                if r.body.len() >= len {
                    break r;
                }
            }
        };
        send(&mut retry, &key);
        let mut raw = Vec::new();
        retry.read_to_end(&mut raw).unwrap();
        let again = parse_response(&raw, false).unwrap();
        assert_eq!(answer.status, 201);
        assert_eq!(
            (again.status, again.header("idempotent-replayed")),
            (201, Some("true")),
            "retry {i}: {}",
            again.body_text()
        );
    }
    assert_eq!(s.paid(), 30);
}

#[test]
fn missing_malformed_reused_and_in_flight_keys_are_refused() {
    let s = Setup::new();
    let gw = Gateway::start(&s.config(&memory()));
    let r = pay(&gw, None, ORDER);
    assert_eq!(
        (r.status, error_code(&r)),
        (400, "idempotency_key_missing".into())
    );
    for bad in ["two words", "\"unclosed", &"k".repeat(256)] {
        let r = pay(&gw, Some(bad), ORDER);
        assert_eq!(
            (r.status, error_code(&r)),
            (400, "bad_request".into()),
            "{bad}"
        );
        assert!(r.json()["message"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key"));
    }
    assert_eq!(s.paid(), 0);

    // In flight: a second request with the key while the first is at the service.
    set_faults(s.pay_addr(), r#"{"latency_ms": 1500}"#);
    let addr = gw.addr;
    let first = std::thread::spawn(move || {
        request(
            addr,
            "POST",
            "/api/payments",
            &[
                ("Content-Type", "application/json"),
                ("Idempotency-Key", "k-1"),
            ],
            ORDER,
        )
    });
    wait_for(Duration::from_secs(5), "the first request upstream", || {
        (s.paid() == 1).then_some(())
    });
    let busy = pay(&gw, Some("k-1"), ORDER);
    assert_eq!(
        (busy.status, error_code(&busy)),
        (409, "idempotency_key_in_use".into())
    );
    assert_eq!(busy.header("retry-after"), Some("1"));
    // Another request under the same key, in flight or done: refused.
    let other = pay(&gw, Some("k-1"), OTHER_ORDER);
    assert_eq!(
        (other.status, error_code(&other)),
        (422, "idempotency_key_reused".into())
    );
    let first = first.join().unwrap();
    assert_eq!(first.status, 201, "{}", first.body_text());
    set_faults(s.pay_addr(), r#"{"latency_ms": 0}"#);
    let other = pay(&gw, Some("k-1"), OTHER_ORDER);
    assert_eq!(
        (other.status, error_code(&other)),
        (422, "idempotency_key_reused".into())
    );
    let again = pay(&gw, Some("k-1"), ORDER);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    assert_eq!(s.paid(), 1, "refused requests never reach the service");
    for (result, n) in [
        ("missing", 4.0),
        ("in_flight", 1.0),
        ("mismatch", 2.0),
        ("new", 1.0),
    ] {
        assert_eq!(metric(&gw, "pay", result), n, "{result}");
    }
}

#[test]
fn server_errors_and_gateway_errors_release_the_key() {
    let s = Setup::new();
    let gw = Gateway::start(&s.config(&memory()));
    set_faults(s.pay_addr(), r#"{"force_status": 503}"#);
    let r = pay(&gw, Some("k"), ORDER);
    assert_eq!(r.status, 503);
    set_faults(s.pay_addr(), r#"{"force_status": null}"#);
    let r = pay(&gw, Some("k"), ORDER);
    assert_eq!(r.status, 201, "released after a 5xx: {}", r.body_text());
    assert_eq!(r.header("idempotent-replayed"), None);
    assert_eq!(s.paid(), 2);
    // No upstream at all: 502 each time, never 409 or a replay of the 502.
    for _ in 0..2 {
        let r = request(gw.addr, "POST", "/dead", &[("Idempotency-Key", "k")], b"{}");
        assert_eq!(
            (r.status, error_code(&r)),
            (502, "upstream_unavailable".into())
        );
    }
    assert_eq!(metric(&gw, "dead", "new"), 2.0);
}

/// A client that leaves while the service works: the answer is still read to its
/// end and stored, and the retry replays it without a second call.
#[test]
fn a_client_that_leaves_mid_request_gets_the_answer_on_retry() {
    let s = Setup::new();
    let gw = Gateway::start(&s.config(&memory()));
    set_faults(s.pay_addr(), r#"{"latency_ms": 1000}"#);
    let mut c = TcpStream::connect(gw.addr).unwrap();
    let head = format!(
        "POST /api/payments HTTP/1.1\r\nHost: pay\r\nContent-Type: application/json\r\nIdempotency-Key: leave-1\r\nContent-Length: {}\r\n\r\n",
        ORDER.len()
    );
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(ORDER).unwrap();
    wait_for(Duration::from_secs(5), "the request upstream", || {
        (s.paid() == 1).then_some(())
    });
    c.shutdown(std::net::Shutdown::Both).unwrap();
    drop(c);
    // The service answers after its latency; the retry finds the answer stored
    // (or, while the exchange still runs, the key in flight).
    let retry = wait_for(Duration::from_secs(10), "the stored answer", || {
        let r = pay(&gw, Some("leave-1"), ORDER);
        (r.status != 409).then_some(r)
    });
    assert_eq!(retry.status, 201, "{}", retry.body_text());
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(s.paid(), 1, "the service was called once:\n{}", gw.log());
    assert!(retry.json()["id"].as_str().unwrap().starts_with("PAY-"));
}

/// The same over HTTP/2: a client that gives up on its stream (curl's
/// `--max-time`) while the service works; its retry is replayed.
#[test]
fn an_http2_client_that_gives_up_gets_the_answer_on_retry() {
    dev_cert();
    let s = Setup::new();
    let repo = env!("CARGO_MANIFEST_DIR");
    let tls_port = free_port();
    let yaml = s.config(&memory()).replace(
        "listen: [{ address: '{LISTEN}' }]",
        &format!(
            "listen:\n  - {{ address: '{{LISTEN}}' }}\n  - {{ address: '127.0.0.1:{tls_port}', tls: {{ certs: [{{ cert: '{repo}/certs/dev/localhost.pem', key: '{repo}/certs/dev/localhost.key' }}] }} }}"
        ),
    );
    let gw = Gateway::start(&yaml);
    set_faults(s.pay_addr(), r#"{"latency_ms": 1000}"#);
    let url = format!("https://localhost:{tls_port}/api/payments");
    let ca = format!("{repo}/certs/dev/ca.pem");
    let body = std::str::from_utf8(ORDER).unwrap();
    let post = |extra: &[&str]| {
        let mut args = vec![
            "--http2",
            "--cacert",
            &ca,
            "-H",
            "Content-Type: application/json",
            "-H",
            "Idempotency-Key: h2-leave",
            "-d",
            body,
        ];
        args.extend_from_slice(extra);
        args.push(&url);
        crate::curl::curl(&args)
    };
    let gave_up = post(&["--max-time", "0.5"]);
    assert_eq!(gave_up.exit, 28, "curl timed out: {}", gave_up.stderr);
    assert_eq!(s.paid(), 1, "the order reached the service");
    let retry = wait_for(Duration::from_secs(10), "the stored answer", || {
        let r = post(&[]);
        (r.status != 409).then_some(r)
    });
    assert_eq!(
        (retry.status, retry.version.as_str()),
        (201, "2"),
        "{}",
        retry.body
    );
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(s.paid(), 1, "the service was called once:\n{}", gw.log());
}

/// Two gateways share one Redis: a burst of requests with one key, spread over
/// both, reaches the service once; the others are told it is in flight or get
/// the stored answer.
#[test]
fn two_gateways_on_one_redis_call_the_service_once() {
    let redis = Redis::start();
    let s = Setup::new();
    let a = Gateway::start(&s.config(&redis_store(&redis)));
    let b = Gateway::start(&s.config(&redis_store(&redis)));
    set_faults(s.pay_addr(), r#"{"latency_ms": 300}"#);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let addr = if i % 2 == 0 { a.addr } else { b.addr };
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                request(
                    addr,
                    "POST",
                    "/api/payments",
                    &[
                        ("Content-Type", "application/json"),
                        ("Idempotency-Key", "race"),
                    ],
                    ORDER,
                )
            })
        })
        .collect();
    let answers: Vec<Response> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let created: Vec<&Response> = answers
        .iter()
        .filter(|r| r.status == 201 && r.header("idempotent-replayed").is_none())
        .collect();
    assert_eq!(
        created.len(),
        1,
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for r in &answers {
        match r.status {
            201 => assert_eq!(r.body, created[0].body),
            409 => assert_eq!(error_code(r), "idempotency_key_in_use"),
            other => panic!("unexpected {other}: {}", r.body_text()),
        }
    }
    assert_eq!(s.paid(), 1);
    // Afterwards, either gateway replays it.
    for gw in [&a, &b] {
        let r = pay(gw, Some("race"), ORDER);
        assert_eq!(r.header("idempotent-replayed"), Some("true"));
        assert_eq!(r.body, created[0].body);
    }
    assert_eq!(s.paid(), 1);
}

/// A gateway killed mid-request cannot complete or release its key: the key
/// frees itself when its hold ends (the route's connect and read timeouts plus
/// 2s), and another gateway then forwards the retry.
#[test]
fn a_key_held_by_a_killed_gateway_is_free_after_its_hold() {
    let redis = Redis::start();
    let s = Setup::new();
    let yaml = config(
        &redis_store(&redis),
        s.pay_addr(),
        s.big.addr("big"),
        ", connect_timeout: 500ms, read_timeout: 1s",
    );
    let mut doomed = Gateway::start(&yaml);
    let other = Gateway::start(&yaml);
    set_faults(s.pay_addr(), r#"{"latency_ms": 800}"#);
    let addr = doomed.addr;
    let client = std::thread::spawn(move || {
        try_request(
            addr,
            "POST",
            "/api/payments",
            &[
                ("Content-Type", "application/json"),
                ("Idempotency-Key", "orphan"),
            ],
            ORDER,
        )
    });
    wait_for(Duration::from_secs(5), "the request upstream", || {
        (s.paid() == 1).then_some(())
    });
    let claimed = Instant::now();
    doomed.signal("KILL");
    assert!(
        client.join().unwrap().is_err(),
        "the client lost its gateway"
    );
    doomed.wait_exit(Duration::from_secs(5));
    let busy = pay(&other, Some("orphan"), ORDER);
    assert_eq!(
        busy.status,
        409,
        "held by the dead gateway: {}",
        busy.body_text()
    );
    set_faults(s.pay_addr(), r#"{"latency_ms": 0}"#);
    let hold = Duration::from_millis(500 + 1000 + 2000);
    let freed = wait_for(Duration::from_secs(10), "the key to be free", || {
        let r = pay(&other, Some("orphan"), ORDER);
        (r.status != 409).then_some(r)
    });
    let waited = claimed.elapsed();
    assert_eq!(freed.status, 201, "{}", freed.body_text());
    assert_eq!(
        freed.header("idempotent-replayed"),
        None,
        "forwarded, not replayed"
    );
    assert!(
        waited >= hold - Duration::from_millis(600) && waited <= hold + Duration::from_secs(2),
        "freed after {waited:?} (hold {hold:?})"
    );
    assert_eq!(s.paid(), 2);
}

/// Answers over `max_response` (1MiB) are passed on whole but not stored: the
/// key is released and a retry goes to the service again.
#[test]
fn a_large_answer_is_passed_on_but_not_stored() {
    let s = Setup::new();
    let gw = Gateway::start(&s.config(&memory()));
    let size = 10 * 1024 * 1024;
    let path = format!("/big?size={size}");
    for _ in 0..2 {
        let r = request(
            gw.addr,
            "POST",
            &path,
            &[("Idempotency-Key", "big-1")],
            b"{}",
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), size, "{}", gw.log());
        assert_eq!(r.header("idempotent-replayed"), None);
    }
    assert_eq!(
        Mock::requests(s.big.addr("big")),
        2,
        "each went to the service"
    );
    assert_eq!(metric(&gw, "big", "not_stored"), 2.0);
    assert_eq!(metric(&gw, "big", "new"), 2.0);
    // Within the limit, an answer of many pieces is stored whole.
    let path = format!("/big?size={}", 1024 * 1024);
    let first = request(
        gw.addr,
        "POST",
        &path,
        &[("Idempotency-Key", "big-2")],
        b"{}",
    );
    let again = request(
        gw.addr,
        "POST",
        &path,
        &[("Idempotency-Key", "big-2")],
        b"{}",
    );
    assert_eq!((first.status, first.body.len()), (200, 1024 * 1024));
    assert_eq!(
        again.header("idempotent-replayed"),
        Some("true"),
        "{}",
        gw.log()
    );
    assert_eq!(again.body, first.body);
    assert_eq!(Mock::requests(s.big.addr("big")), 3);
}

/// Two consumers using the same key (and the same order) are two operations.
#[test]
fn keys_of_two_consumers_never_collide() {
    let s = Setup::new();
    let gw = Gateway::start(&s.config(&memory()));
    let token = |sub: &str| {
        let mut claims = good_claims();
        claims["sub"] = json!(sub);
        claims["scope"] = json!("payments:write");
        format!("Bearer {}", main_token(&claims))
    };
    let post = |auth: &str| {
        request(
            gw.addr,
            "POST",
            "/auth/payments",
            &[
                ("Authorization", auth),
                ("Content-Type", "application/json"),
                ("Idempotency-Key", "shared-key"),
            ],
            ORDER,
        )
    };
    // The mock checks ownership by X-Consumer-Id: pay from an account of each.
    let (alice, bob) = (token("mobile-app"), token("mobile-app-2"));
    let a = post(&alice);
    assert_eq!(a.status, 201, "{}", a.body_text());
    let b = post(&bob);
    assert_ne!(
        b.header("idempotent-replayed"),
        Some("true"),
        "not alice's answer"
    );
    assert_ne!(b.body, a.body);
    assert_eq!(s.paid(), 2, "two operations");
    assert_eq!(post(&alice).body, a.body);
    assert_eq!(post(&bob).body, b.body);
    assert_eq!(s.paid(), 2);
    // Anonymous clients are told apart by address.
    let from = |ip: &str| {
        request_from(
            ip.parse().unwrap(),
            gw.addr,
            "POST",
            "/api/payments",
            &[
                ("Content-Type", "application/json"),
                ("Idempotency-Key", "shared-key"),
            ],
            ORDER,
        )
    };
    // (The mock knows no consumer here, so it answers the second from its own
    // idempotency record: what counts is that both reached it.)
    let one = from("127.0.0.2");
    assert_eq!(s.paid(), 3);
    let two = from("127.0.0.3");
    assert_eq!((one.status, two.status), (201, 201));
    assert_eq!(
        s.paid(),
        4,
        "another client's key of the same name is its own"
    );
    let again = from("127.0.0.2");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, one.body);
    assert_eq!(s.paid(), 4);
}

/// What reaches the service is what the client sent, key included; a chunked body
/// and the same body with a length are the same request.
#[test]
fn the_service_gets_the_body_and_key_and_chunked_bodies_count_alike() {
    let s = Setup::new();
    let gw = Gateway::start(&s.config(&memory()));
    let mut c = TcpStream::connect(gw.addr).unwrap();
    c.write_all(
        b"POST /echo HTTP/1.1\r\nHost: e\r\nConnection: close\r\nIdempotency-Key: chunky\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .unwrap();
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).unwrap();
    let first = parse_response(&raw, false).unwrap();
    assert_eq!(first.status, 200, "{}", first.body_text());
    let echo = first.json();
    assert_eq!(echo["body"], "hello world");
    assert_eq!(echo["headers"]["idempotency-key"][0], "chunky");
    let again = request(
        gw.addr,
        "POST",
        "/echo",
        &[("Idempotency-Key", "chunky")],
        b"hello world",
    );
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    // (The mock does not count its echo; the gateway does.)
    assert_eq!(
        (metric(&gw, "echo", "new"), metric(&gw, "echo", "replayed")),
        (1.0, 1.0)
    );
}

/// The store is down: `deny` refuses (503), `allow` forwards without a key check.
#[test]
fn a_dead_store_denies_or_lets_through_as_configured() {
    let mut redis = Redis::start();
    let s = Setup::new();
    let deny = Gateway::start(&s.config(&redis_store(&redis)));
    let allow_yaml = s.config(&redis_store(&redis)).replace(
        "idempotency: { required: true }",
        "idempotency: { required: true, on_store_error: allow }",
    );
    let allow = Gateway::start(&allow_yaml);
    assert_eq!(pay(&deny, Some("k"), ORDER).status, 201);
    redis.kill();
    let r = pay(&deny, Some("k2"), ORDER);
    assert_eq!(
        (r.status, error_code(&r)),
        (503, "store_unavailable".into())
    );
    let r = pay(&allow, Some("k2"), ORDER);
    assert_eq!(r.status, 201, "{}", r.body_text());
    assert_eq!(metric(&deny, "pay", "store_error"), 1.0);
    assert_eq!(metric(&allow, "pay", "store_error"), 1.0);
    assert_eq!(s.paid(), 2);
}

/// The store seam used directly: claims, completions and releases behave alike in
/// memory and in Redis, where they are hash-tagged keys with an expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idempotency_store_operations_agree_in_memory_and_redis() {
    use fingate::store::{Claim, MemoryStore, RedisStore, Store};
    let redis = Redis::start();
    let shared = RedisStore::open(&redis.url(), Duration::from_secs(1));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !shared.ready() {
        assert!(Instant::now() < deadline, "redis store never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let local: std::sync::Arc<dyn Store> = std::sync::Arc::new(MemoryStore::default());
    let hold = Duration::from_millis(300);
    let day = Duration::from_secs(86_400);
    for store in [local, shared] {
        let k = "fingate:idem:{t1}";
        assert_eq!(
            store.idempotency_claim(k, "fp", "t1", hold).await.unwrap(),
            Claim::New
        );
        match store.idempotency_claim(k, "fp", "t2", hold).await.unwrap() {
            Claim::InFlight { expires_in } => assert!(expires_in <= hold, "{expires_in:?}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            store
                .idempotency_claim(k, "other", "t2", hold)
                .await
                .unwrap(),
            Claim::Mismatch
        );
        assert!(!store
            .idempotency_complete(k, "t2", b"no", day)
            .await
            .unwrap());
        assert!(!store.idempotency_release(k, "t2").await.unwrap());
        assert!(store
            .idempotency_complete(k, "t1", b"\x00answer\xff", day)
            .await
            .unwrap());
        assert_eq!(
            store.idempotency_claim(k, "fp", "t3", hold).await.unwrap(),
            Claim::Done(b"\x00answer\xff".to_vec())
        );
        assert!(
            !store.idempotency_release(k, "t1").await.unwrap(),
            "done stays"
        );
        assert!(!store
            .idempotency_complete(k, "t1", b"again", day)
            .await
            .unwrap());
        // A hold ends by itself; the old holder can then neither complete nor
        // release what a new claim took.
        let j = "fingate:idem:{t2}";
        assert_eq!(
            store.idempotency_claim(j, "fp", "t1", hold).await.unwrap(),
            Claim::New
        );
        tokio::time::sleep(hold + Duration::from_millis(100)).await;
        assert_eq!(
            store.idempotency_claim(j, "fp", "t2", hold).await.unwrap(),
            Claim::New
        );
        assert!(!store
            .idempotency_complete(j, "t1", b"late", day)
            .await
            .unwrap());
        assert!(!store.idempotency_release(j, "t1").await.unwrap());
        assert!(store.idempotency_release(j, "t2").await.unwrap());
        assert_eq!(
            store.idempotency_claim(j, "fp", "t3", hold).await.unwrap(),
            Claim::New
        );
    }
    let ttl: i64 = redis.cli(&["PTTL", "fingate:idem:{t1}"]).parse().unwrap();
    assert!(ttl > 86_000_000, "done keeps the ttl: {ttl}");
    let held: i64 = redis.cli(&["PTTL", "fingate:idem:{t2}"]).parse().unwrap();
    assert!(held > 0 && held <= 300, "in flight keeps the hold: {held}");
}
