//! Kept-alive client connections: `limits.idle_timeout` ends a connection that waits
//! that long for its next request, and only then (the shield keeps one timer per
//! connection and moves it lazily; these tests pin its edges).

use crate::harness::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn gateway(idle: &str) -> (Mock, Gateway) {
    let a = Mock::one("accounts", "a", &[]);
    let gw = Gateway::start(&format!(
        "listen: [{{ address: '{{LISTEN}}' }}]\nadmin: {{ address: '{{ADMIN}}' }}\nlimits: {{ idle_timeout: {idle} }}\nupstreams:\n  a: {{ targets: [{}] }}\nroutes:\n  - {{ name: echo, match: {{ prefix: /_mock/echo }}, upstream: a }}\n",
        a.addr("a")
    ));
    (a, gw)
}

/// One request on a kept-alive connection; its status.
fn exchange(s: &mut TcpStream) -> u16 {
    s.write_all(b"GET /_mock/echo HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).unwrap();
        assert_eq!(n, 1, "closed inside a response head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).unwrap();
    head[9..12].parse().unwrap()
}

/// How long until the gateway closes `s` (at most `within`).
fn closed_after(s: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => Some(started.elapsed()),
        Ok(n) => panic!("unexpected bytes on an idle connection: {n}"),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            None
        }
        Err(_) => Some(started.elapsed()),
    }
}

#[test]
fn an_idle_connection_is_closed_at_idle_timeout() {
    let (_a, gw) = gateway("1s");
    let mut s = TcpStream::connect(gw.addr).unwrap();
    assert_eq!(exchange(&mut s), 200);
    let after = closed_after(&mut s, Duration::from_secs(5)).expect("still open after 5 s");
    assert!(
        after >= Duration::from_millis(900),
        "closed too early: {after:?}"
    );
    assert!(after < Duration::from_secs(3), "closed late: {after:?}");
}

#[test]
fn idle_time_is_counted_from_the_last_response_not_from_the_first() {
    // Requests every 400 ms for 2.4 s under a 1 s limit: each wait is short, so the
    // connection lives on; then it idles out 1 s after the last answer.
    let (_a, gw) = gateway("1s");
    let mut s = TcpStream::connect(gw.addr).unwrap();
    for i in 0..6 {
        assert_eq!(exchange(&mut s), 200, "request {i}");
        std::thread::sleep(Duration::from_millis(400));
    }
    assert_eq!(exchange(&mut s), 200, "after 2.4 s of short waits");
    let after = closed_after(&mut s, Duration::from_secs(5)).expect("still open after 5 s");
    assert!(
        after >= Duration::from_millis(900),
        "closed too early: {after:?}"
    );
}

#[test]
fn a_response_slower_than_idle_timeout_is_not_cut() {
    let (a, gw) = gateway("1s");
    set_faults(a.addr("a"), r#"{"latency_ms": 1500}"#);
    let mut s = TcpStream::connect(gw.addr).unwrap();
    assert_eq!(
        exchange(&mut s),
        200,
        "a 1.5 s answer under a 1 s idle limit"
    );
    assert_eq!(
        exchange(&mut s),
        200,
        "the connection is still usable after it"
    );
}
