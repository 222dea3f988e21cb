//! Issue 14, an attacker's findings, each reproduced against the real binary over
//! raw sockets (the shield's limits, the admin listener, pipelining).

use crate::harness::*;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// One route, `/` to mock `a` (which serves `/_mock/echo` and `/diag/stream`).
fn gateway(extra: &str) -> (Mock, Gateway) {
    let a = Mock::one("accounts", "a", &[]);
    let gw = Gateway::start(&format!(
        "listen: [{{ address: '{{LISTEN}}' }}]\nadmin: {{ address: '{{ADMIN}}', api_key: '{{ADMIN_KEY}}' }}\n{extra}upstreams:\n  a: {{ targets: [{}] }}\nroutes:\n  - {{ name: all, match: {{ prefix: / }}, upstream: a }}\n",
        a.addr("a")
    ));
    (a, gw)
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Reads until the peer closes; None if it stays open and silent for `quiet`.
fn read_until_closed(s: &mut TcpStream, quiet: Duration) -> Option<Vec<u8>> {
    s.set_read_timeout(Some(quiet)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if is_timeout(&e) => return None,
            Err(_) => return Some(out),
        }
    }
}

fn status_of(answer: &[u8]) -> Option<u16> {
    std::str::from_utf8(answer.get(9..12)?).ok()?.parse().ok()
}

fn body_of(answer: &[u8]) -> serde_json::Value {
    let start = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    serde_json::from_slice(&answer[start..])
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(answer)))
}

/// An unfinished head: the request line and a header that never ends.
fn unfinished_head(len: usize) -> Vec<u8> {
    let mut head = b"GET /_mock/echo HTTP/1.1\r\nHost: h\r\nX-Big: ".to_vec();
    head.resize(len, b'a');
    head
}

/// Head size: an unfinished head over `max_header_bytes` was held (and buffered)
/// until `header_timeout`, then answered 400; it is 431 as soon as it passes the limit.
#[test]
fn an_unfinished_head_over_max_header_bytes_is_refused_431_at_once() {
    let (_a, gw) = gateway("limits: { header_timeout: 10s }\n");
    for len in [40 * 1024, 110 * 1024] {
        let mut s = TcpStream::connect(gw.addr).unwrap();
        let started = Instant::now();
        // The gateway may close before taking every byte.
        let _ = s.write_all(&unfinished_head(len));
        let answer = read_until_closed(&mut s, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("{len}: no answer within 5 s"));
        let took = started.elapsed();
        assert_eq!(
            status_of(&answer),
            Some(431),
            "{len}: {}",
            String::from_utf8_lossy(&answer)
        );
        assert!(
            took < Duration::from_secs(3),
            "{len}: answered after {took:?}"
        );
        let body = body_of(&answer);
        assert_eq!(body["error"], "request_header_fields_too_large");
        assert!(
            body["message"].as_str().unwrap().contains("32768"),
            "{body}"
        );
        assert_eq!(body["request_id"].as_str().unwrap().len(), 36, "{body}");
    }
    // A head just within the limit still goes through.
    let filler = "v".repeat(32 * 1024 - 200);
    let r = request(gw.addr, "GET", "/_mock/echo", &[("X-Fill", &filler)], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["headers"]["x-fill"][0], filler.as_str());
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Head size, the memory side: 200 connections each sending 1 MiB of an unfinished
/// head made the gateway hold them all until the header deadline.
#[test]
fn unfinished_heads_cost_no_more_than_max_header_bytes() {
    let (_a, gw) = gateway("limits: { header_timeout: 30s }\n");
    let before = rss_kib(gw.pid());
    let head = unfinished_head(1024 * 1024);
    let mut held = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(gw.addr).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(&head);
        held.push(s);
    }
    // Give the gateway time to read whatever it is willing to buffer.
    std::thread::sleep(Duration::from_secs(1));
    let grown = rss_kib(gw.pid()).saturating_sub(before);
    assert!(
        grown < 40 * 1024,
        "the gateway grew by {} MiB holding 200 unfinished heads",
        grown / 1024
    );
    drop(held);
}

/// A chunked body of `chunks` one-byte chunks, as one raw request.
fn chunked_post(path: &str, chunks: usize, extra_head: &str) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: h\r\n{extra_head}Transfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..chunks {
        req.extend_from_slice(b"1\r\nx\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    req
}

fn exchange_raw(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(bytes);
    read_until_closed(&mut s, Duration::from_secs(10)).expect("no answer within 10 s")
}

/// Chunks: a chunked body of very many tiny chunks was accepted whole (each
/// chunk costs a pass through the proxy); past `max_chunks` it is refused with 413.
#[test]
fn a_chunked_body_of_too_many_chunks_is_refused_413() {
    let (_a, gw) = gateway("limits: { max_chunks: 100 }\n");
    let within = exchange_raw(gw.addr, &chunked_post("/_mock/echo", 100, ""));
    assert_eq!(
        status_of(&within),
        Some(200),
        "{}",
        String::from_utf8_lossy(&within)
    );
    assert!(String::from_utf8_lossy(&within).contains(&format!("\"body\":\"{}\"", "x".repeat(100))));

    let over = exchange_raw(gw.addr, &chunked_post("/_mock/echo", 5000, ""));
    assert_eq!(
        status_of(&over),
        Some(413),
        "{}",
        String::from_utf8_lossy(&over)
    );
    let body = body_of(&over);
    assert_eq!(body["error"], "payload_too_large");
    assert_eq!(body["request_id"].as_str().unwrap().len(), 36, "{body}");
    assert_eq!(gw.get("/_mock/echo").status, 200);

    // The unauthenticated login reads its body itself: the same limit holds there.
    let m = Mock::one("accounts", "a", &[]);
    let yaml = crate::authkit::config(m.addr("a"), crate::authkit::NO_LOCKOUT)
        .replace("upstreams:\n", "limits: { max_chunks: 100 }\nupstreams:\n");
    let auth = Gateway::start(&yaml);
    let login = chunked_post("/auth/token", 5000, "Content-Type: application/json\r\n");
    let answer = exchange_raw(auth.addr, &login);
    assert_eq!(
        status_of(&answer),
        Some(413),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

fn in_flight(mock: std::net::SocketAddr) -> u64 {
    get(mock, "/_mock/stats").json()["in_flight"]
        .as_u64()
        .unwrap()
}

/// Slow readers: a client that asks for a large answer and stops reading held its
/// connection and an upstream connection indefinitely.
#[test]
fn a_client_that_stops_reading_is_cut_at_write_timeout_and_the_upstream_freed() {
    let (a, gw) = gateway("limits: { write_timeout: 1s }\n");
    let mock = a.addr("a");
    // A client that reads gets a large answer whole: the limit is on stalls, not size.
    let r = get(gw.addr, "/diag/stream?size=8388608");
    assert_eq!((r.status, r.body.len()), (200, 8_388_608));
    assert_eq!(in_flight(mock), 0);

    // 64 MiB asked for, nothing read: far more than every socket buffer between.
    let mut stalled = TcpStream::connect(gw.addr).unwrap();
    stalled
        .write_all(b"GET /diag/stream?size=67108864 HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    wait_for(Duration::from_secs(5), "the response in flight", || {
        (in_flight(mock) == 1).then_some(())
    });
    let started = Instant::now();
    wait_for(
        Duration::from_secs(8),
        "the upstream response to be abandoned",
        || (in_flight(mock) == 0).then_some(()),
    );
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "freed before the client ever stalled for write_timeout: {:?}",
        started.elapsed()
    );
    // The client's connection was closed too, long before 64 MiB reached it.
    let got = read_until_closed(&mut stalled, Duration::from_secs(3))
        .expect("the stalled client's connection is still open");
    assert!(got.len() < 64 * 1024 * 1024, "{} bytes", got.len());
    assert_eq!(gw.get("/_mock/echo").status, 200);
}

/// The admin listener had no head deadline (a head trickled one line
/// a second stayed open) and no connection cap.
#[test]
fn the_admin_listener_has_a_head_deadline_and_a_connection_cap() {
    let (_a, gw) = gateway("limits: { header_timeout: 1s, admin_max_connections: 3 }\n");
    let mut s = TcpStream::connect(gw.admin).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let started = Instant::now();
    s.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    let closed_after = loop {
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "a trickled admin head is still open after 6 s"
        );
        if s.write_all(b"X-Trickle: 1\r\n").is_err() {
            break started.elapsed();
        }
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Err(e) if is_timeout(&e) => {}
            _ => break started.elapsed(),
        }
    };
    assert!(
        closed_after >= Duration::from_millis(800),
        "cut too early: {closed_after:?}"
    );

    // Three held connections fill the admin cap.
    let held = hold_connections(gw.admin, 3, "three held admin connections");
    let mut fourth = TcpStream::connect(gw.admin).unwrap();
    let _ = fourth.write_all(b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n");
    let answer = read_until_closed(&mut fourth, Duration::from_secs(3)).unwrap();
    assert_eq!(
        status_of(&answer),
        Some(503),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(String::from_utf8_lossy(&answer).contains("too_many_connections"));
    // The public listener has its own cap.
    assert_eq!(gw.get("/_mock/echo").status, 200);
    drop(held);
    wait_for_ok(gw.admin, "/healthz", "a free admin slot");
}

/// The new limits are checked like the others: every problem, with its position.
#[test]
fn the_new_limits_are_validated_with_their_position() {
    let bad = "\
listen:
  - address: 127.0.0.1:18080
upstreams:
  u: { targets: [127.0.0.1:9101] }
routes:
  - { name: a, match: { prefix: /a }, upstream: u }
limits:
  write_timeout: 500ms
  max_chunks: 0
  admin_max_connections: 5000
";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.yaml"), bad).unwrap();
    let (code, _out, err) = fingate(&["validate", "-c", "bad.yaml"], dir.path());
    assert_eq!(code, 1, "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("bad.yaml:")).collect();
    assert_eq!(
        lines,
        [
            "bad.yaml:8:3: limits.write_timeout: use at least 1s",
            "bad.yaml:9:3: limits.max_chunks: 0 is out of range: use 1 to 16777216 chunks per request body",
            "bad.yaml:10:3: limits.admin_max_connections: 5000 is out of range: use 1 to 1024",
        ],
        "{err}"
    );
    let good = bad
        .replace("500ms", "2s")
        .replace("max_chunks: 0", "max_chunks: 100")
        .replace("5000", "8");
    std::fs::write(dir.path().join("good.yaml"), good).unwrap();
    let (code, out, err) = fingate(&["validate", "-c", "good.yaml"], dir.path());
    assert_eq!(code, 0, "{out}{err}");
}
/// Reads one response (head and Content-Length body) from a kept-alive connection.
fn read_response(s: &mut TcpStream) -> Response {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("the connection went quiet");
        assert_eq!(n, 1, "closed after {:?}", String::from_utf8_lossy(&raw));
        raw.push(byte[0]);
    }
    let head = parse_response(&raw, true).unwrap();
    let length: usize = head
        .header("content-length")
        .map_or(0, |v| v.parse().unwrap());
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).unwrap();
    Response { body, ..head }
}

/// Pipelining: two requests in one packet got one answer and a close without
/// `Connection: close`. Both are answered, in order.
#[test]
fn pipelined_requests_are_answered_in_order() {
    let (a, gw) = gateway("");
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        b"GET /_mock/echo/one HTTP/1.1\r\nHost: h\r\n\r\nGET /_mock/echo/two HTTP/1.1\r\nHost: h\r\n\r\n",
    )
    .unwrap();
    for path in ["/_mock/echo/one", "/_mock/echo/two"] {
        let r = read_response(&mut s);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.json()["path"], path);
        assert_ne!(r.header("connection"), Some("close"), "{path}");
    }

    // A body, then a request, in one packet; and a request sent while the one
    // before is still waiting for its upstream.
    let body = "{\"a\":1}";
    s.write_all(
        format!(
            "POST /_mock/echo/three HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n{body}GET /_mock/echo/four HTTP/1.1\r\nHost: h\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let three = read_response(&mut s);
    assert_eq!(
        (three.json()["path"].as_str(), three.json()["body"].as_str()),
        (Some("/_mock/echo/three"), Some(body))
    );
    assert_eq!(read_response(&mut s).json()["path"], "/_mock/echo/four");
    set_faults(a.addr("a"), r#"{"latency_ms": 400}"#);
    s.write_all(b"GET /_mock/echo/five HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    s.write_all(b"GET /_mock/echo/six HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s).json()["path"], "/_mock/echo/five");
    let six = read_response(&mut s);
    assert_eq!(six.json()["path"], "/_mock/echo/six");
    assert_eq!(six.header("connection"), Some("close"));

    // The admin listener too.
    let mut admin = TcpStream::connect(gw.admin).unwrap();
    admin
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    admin
        .write_all(
            b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\nGET /readyz HTTP/1.1\r\nHost: h\r\n\r\n",
        )
        .unwrap();
    assert_eq!(read_response(&mut admin).json()["status"], "ok");
    assert_eq!(read_response(&mut admin).json()["status"], "ready");
}

/// A smuggling shape pipelined behind a request is seen by the shield too: the
/// connection is closed and nothing reaches the upstream; sent after the first
/// answer, it is answered 400 like any other.
#[test]
fn a_smuggling_head_pipelined_behind_a_request_closes_the_connection() {
    let (a, gw) = gateway("");
    let smuggle = "POST /smuggled HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.write_all(format!("GET /_mock/echo/first HTTP/1.1\r\nHost: h\r\n\r\n{smuggle}").as_bytes())
        .unwrap();
    // Read together with the request before it: neither is answered.
    let answer = read_until_closed(&mut s, Duration::from_secs(5)).expect("left open");
    assert_eq!(String::from_utf8_lossy(&answer), "");

    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /_mock/echo/first HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s).status, 200);
    s.write_all(smuggle.as_bytes()).unwrap();
    let answer = read_until_closed(&mut s, Duration::from_secs(5)).expect("left open");
    assert_eq!(
        status_of(&answer),
        Some(400),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(body_of(&answer)["error"], "bad_request");
    let stats = get(a.addr("a"), "/_mock/stats").json();
    assert_eq!(stats["requests"], 0, "{stats}");
}
