//! The edge: path spellings, smuggling shapes, limits, slow clients, forwarding headers.
//! Raw sockets throughout: an HTTP client library would "fix" the attacks.

use crate::harness::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// `public` routes to mock a, `admin` (standing in for an authenticated route) to mock b.
fn two_routes(extra: &str) -> (Mock, Mock, Gateway) {
    let (a, b) = (
        Mock::one("accounts", "a", &[]),
        Mock::one("accounts", "b", &[]),
    );
    let yaml = format!(
        "listen: [{{ address: '{{LISTEN}}' }}]\nadmin: {{ address: '{{ADMIN}}' }}\n{extra}upstreams:\n  a: {{ targets: [{}] }}\n  b: {{ targets: [{}] }}\nroutes:\n  - {{ name: public, match: {{ prefix: /public }}, upstream: a, rewrite: {{ path: /_mock/echo/public }} }}\n  - {{ name: admin, match: {{ prefix: /admin }}, upstream: b, rewrite: {{ path: /_mock/echo/admin }} }}\n  - {{ name: echo, match: {{ prefix: /_mock/echo }}, upstream: a }}\n",
        a.addr("a"),
        b.addr("b")
    );
    let gw = Gateway::start(&yaml);
    (a, b, gw)
}

/// Sends raw bytes; returns the whole answer until the gateway closes (or 3 s pass).
fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(answer: &str) -> Option<u16> {
    answer.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

#[test]
fn path_spellings_route_on_the_normalised_path_or_are_refused() {
    let (_a, _b, gw) = two_routes("");
    // (spelling, Some(route reached) or None for 400)
    let cases: &[(&str, Option<&str>)] = &[
        ("/public/x", Some("public")),
        ("/admin", Some("admin")),
        ("/public/../admin", Some("admin")),
        ("/public/%2e%2e/admin", Some("admin")),
        ("/public/%2E%2E/admin", Some("admin")),
        ("/public/.%2e/admin", Some("admin")),
        ("/public/%2e./admin", Some("admin")),
        ("/public/./../admin", Some("admin")),
        ("//admin", Some("admin")),
        ("///admin//x", Some("admin")),
        ("/./admin", Some("admin")),
        ("/%61dmin", Some("admin")),
        ("/%61%64%6D%69%6E", Some("admin")),
        ("/admin/../public/x", Some("public")),
        ("/public/%2fadmin", None),
        ("/public/%2Fadmin", None),
        ("/public%2f..%2fadmin", None),
        ("/public/..%5cadmin", None),
        ("/public/..\\admin", None),
        ("/public/%5C../admin", None),
        ("/..;/admin", None),
        ("/public/..;/admin", None),
        ("/public/.;x/admin", None),
        ("/../admin", None),
        ("/public/../../admin", None),
        ("/%2e%2e/admin", None),
        ("/public/%00/admin", None),
        ("/public/%C0%AE%C0%AE/admin", None),
        ("/public/%C0%AF/admin", None),
        ("/public/%ED%A0%80", None),
        ("/public/%zz", None),
        ("/public/%252e%252e/admin", Some("public")),
        ("/public/a;x=1", Some("public")),
    ];
    for (spelling, want) in cases {
        let answer = raw(
            gw.addr,
            format!("GET {spelling} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        let status = status_of(&answer);
        match want {
            None => assert_eq!(status, Some(400), "{spelling} should be refused:\n{answer}"),
            Some(route) => {
                assert_eq!(status, Some(200), "{spelling}:\n{answer}");
                let served = answer
                    .lines()
                    .find_map(|l| l.strip_prefix("x-served-by: "))
                    .unwrap_or_default();
                let expected_by = if *route == "admin" { "b" } else { "a" };
                assert_eq!(
                    served, expected_by,
                    "{spelling} reached the wrong upstream:\n{answer}"
                );
                assert!(
                    answer.contains(&format!("\"path\":\"/_mock/echo/{route}\"")),
                    "{spelling}:\n{answer}"
                );
            }
        }
    }
    // Without a rewrite the upstream receives the normalised path, not the spelling.
    let seen = raw(
        gw.addr,
        b"GET /_mock/echo/x/../y//z?q=%2e HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert!(seen.contains("\"path\":\"/_mock/echo/y/z\""), "{seen}");
    assert!(seen.contains("\"query\":\"q=%2e\""), "{seen}");
}

#[test]
fn smuggling_shapes_are_refused_and_never_reach_the_upstream() {
    let a = Mock::one("accounts", "a", &[]);
    let yaml = format!(
        "listen: [{{ address: '{{LISTEN}}' }}]\nadmin: {{ address: '{{ADMIN}}' }}\nupstreams:\n  a: {{ targets: [{}] }}\nroutes:\n  - {{ name: all, match: {{ prefix: / }}, upstream: a }}\n",
        a.addr("a")
    );
    let gw = Gateway::start(&yaml);
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n";
    let big = "x".repeat(40 * 1024);
    let flood: String = (0..300).map(|i| format!("X-F{i}: v\r\n")).collect();
    let attacks: Vec<(&str, String)> = vec![
        ("CL+TE", format!("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}")),
        ("TE+CL", format!("POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n{smuggled}")),
        ("duplicate CL", format!("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Length: 40\r\n\r\n{smuggled}")),
        ("TE chunked, identity", format!("POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{smuggled}")),
        ("TE with space before colon", format!("POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n{smuggled}")),
        ("obs-fold", format!("GET /a HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n b\r\n\r\n{smuggled}")),
        ("oversized header", format!("GET /a HTTP/1.1\r\nHost: h\r\nX-Big: {big}\r\n\r\n{smuggled}")),
        ("header flood", format!("GET /a HTTP/1.1\r\nHost: h\r\n{flood}\r\n{smuggled}")),
        ("no Host", format!("GET /a HTTP/1.1\r\n\r\n{smuggled}")),
    ];
    for (name, attack) in &attacks {
        let answer = raw(gw.addr, attack.as_bytes());
        let status = status_of(&answer);
        assert!(
            status.is_some_and(|s| (400..500).contains(&s)),
            "{name}: not refused:\n{answer}"
        );
        assert_eq!(
            answer.matches("HTTP/1.1 ").count(),
            1,
            "{name}: a second answer on the connection:\n{answer}"
        );
        let upstream_saw = Mock::requests(a.addr("a"));
        assert_eq!(upstream_saw, 0, "{name}: reached the upstream:\n{answer}");
    }
    // A bare LF in a chunk extension: whatever Pingora makes of the body, nothing
    // after it is read from this connection.
    let answer = raw(gw.addr, format!("POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2;ext\nxx\r\n0\r\n\r\n{smuggled}").as_bytes());
    assert!(
        answer.matches("HTTP/1.1 ").count() <= 1,
        "bare LF: {answer}"
    );

    let stats = get(a.addr("a"), "/_mock/stats").json();
    assert!(
        stats["by_path"].get("/smuggled").is_none(),
        "a smuggled request reached the upstream: {stats}"
    );
    assert!(stats["requests"].as_u64().unwrap() <= 1, "{stats}");
    // The gateway still serves normal requests.
    assert_eq!(gw.get("/_mock/echo").status, 200);
}

#[test]
fn size_limits_answer_413_414_431() {
    let (_a, _b, gw) = two_routes("limits: { max_body: 1KiB, max_uri_bytes: 1KiB, max_header_bytes: 4KiB, max_headers: 20 }\n");
    let long_uri = format!("/_mock/echo/{}", "u".repeat(2000));
    assert_eq!(gw.get(&long_uri).status, 414);
    let big = "v".repeat(5000);
    assert_eq!(
        request(gw.addr, "GET", "/_mock/echo", &[("X-Big", &big)], b"").status,
        431
    );
    let many: Vec<(String, String)> = (0..25).map(|i| (format!("X-H{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert_eq!(
        request(gw.addr, "GET", "/_mock/echo", &many, b"").status,
        431
    );
    let r = request(gw.addr, "POST", "/_mock/echo", &[], &[b'x'; 2000]);
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"], "payload_too_large");
    assert_eq!(
        request(gw.addr, "POST", "/_mock/echo", &[], &[b'x'; 1000]).status,
        200
    );
    // A chunked body over the limit is cut off while streaming.
    let chunk = "x".repeat(600);
    let body = format!("258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n");
    let answer = raw(
        gw.addr,
        format!("POST /_mock/echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n{body}")
            .as_bytes(),
    );
    assert_eq!(status_of(&answer), Some(413), "{answer}");
    assert_eq!(request(gw.addr, "FOO", "/_mock/echo", &[], b"").status, 405);
}

#[test]
fn slow_header_clients_are_cut_off_and_do_not_starve_others() {
    let (_a, _b, gw) = two_routes("limits: { header_timeout: 2s }\n");
    // One client dribbling a header byte per second is disconnected at the deadline.
    let mut s = TcpStream::connect(gw.addr).unwrap();
    let started = Instant::now();
    let head = b"GET /_mock/echo HTTP/1.1\r\nHost: h\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed_after = None;
    for b in head.iter() {
        if s.write_all(&[*b]).is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        s.set_read_timeout(Some(Duration::from_millis(1000)))
            .unwrap();
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => {
                closed_after = Some(started.elapsed());
                break;
            }
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                closed_after = Some(started.elapsed());
                break;
            }
        }
    }
    let closed_after = closed_after.expect("the slow client was never disconnected");
    assert!(
        closed_after >= Duration::from_millis(1500),
        "cut too early: {closed_after:?}"
    );

    // 500 slow clients at once: normal requests are still served.
    let mut slow: Vec<TcpStream> = (0..500)
        .filter_map(|_| TcpStream::connect(gw.addr).ok())
        .collect();
    assert!(
        slow.len() >= 450,
        "could open only {} connections",
        slow.len()
    );
    for s in &mut slow {
        let _ = s.write_all(b"GET /_mock/echo HTTP/1.1\r\nHost: h\r\n");
    }
    for _ in 0..20 {
        assert_eq!(gw.get("/_mock/echo").status, 200);
    }
}

#[test]
fn connection_cap_refuses_cleanly() {
    let (_a, _b, gw) = two_routes("limits: { max_connections: 3 }\n");
    let held = hold_connections(gw.addr, 3, "three held connections");
    let answer = raw(gw.addr, b"GET /_mock/echo HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(status_of(&answer), Some(503), "{answer}");
    assert!(answer.contains("too_many_connections"), "{answer}");
    drop(held);
    wait_for_ok(gw.addr, "/_mock/echo", "a free connection slot");
}

#[test]
fn forwarding_headers_are_the_gateways_unless_the_peer_is_trusted() {
    let hop = [
        ("X-Forwarded-For", "6.6.6.6"),
        ("Forwarded", "for=6.6.6.6"),
        ("X-Forwarded-Proto", "https"),
        ("Connection", "X-Secret"),
        ("X-Secret", "s"),
        ("Keep-Alive", "timeout=5"),
    ];
    let (_a, _b, gw) = two_routes("");
    let seen = request(gw.addr, "GET", "/_mock/echo", &hop, b"").json();
    let h = &seen["headers"];
    assert_eq!(h["x-forwarded-for"][0], "127.0.0.1", "{h}");
    assert_eq!(h["forwarded"][0], "for=127.0.0.1;proto=http");
    assert_eq!(h["x-forwarded-proto"][0], "http");
    assert!(
        h.get("x-secret").is_none() && h.get("keep-alive").is_none(),
        "hop-by-hop leaked: {h}"
    );

    let (_a2, _b2, trusting) = two_routes("trusted_proxies: [127.0.0.1]\n");
    let seen = request(trusting.addr, "GET", "/_mock/echo", &hop, b"").json();
    let h = &seen["headers"];
    assert_eq!(h["x-forwarded-for"][0], "6.6.6.6, 127.0.0.1");
    assert_eq!(h["forwarded"][0], "for=6.6.6.6, for=127.0.0.1;proto=http");
    assert_eq!(h["x-forwarded-proto"][0], "https");
}

/// A client cannot use `Connection` to strip the gateway's own forwarding headers
/// on the way upstream: naming one is refused, not obeyed.
#[test]
fn a_connection_header_naming_a_forwarding_header_is_refused() {
    let (a, _b, gw) = two_routes("");
    for nominated in ["X-Forwarded-For", "x-forwarded-proto", "keep-alive, Host"] {
        let answer = raw(
            gw.addr,
            format!("GET /_mock/echo HTTP/1.1\r\nHost: h\r\nConnection: {nominated}\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(status_of(&answer), Some(400), "{nominated}: {answer}");
        assert!(answer.contains("bad_request"), "{answer}");
    }
    let stats = request(a.addr("a"), "GET", "/_mock/stats", &[], b"").json();
    assert_eq!(
        stats["connections"], 0,
        "a refused request reached the upstream: {stats}"
    );
}

/// Hop-by-hop headers of an upstream's response stop at the gateway: the fixed
/// ones, and those its `Connection` names. The client sees the gateway's own
/// `Connection`.
#[test]
fn hop_by_hop_headers_of_a_response_stop_at_the_gateway() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(4) {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Upstream-Secret, close\r\n\
                  X-Upstream-Secret: s\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\n\
                  Trailer: X-Sum\r\nX-Kept: k\r\n\r\nok",
            );
        }
    });
    let gw = Gateway::start(&format!(
        "listen: [{{ address: '{{LISTEN}}' }}]\nadmin: {{ address: '{{ADMIN}}' }}\nupstreams:\n  raw: {{ targets: [{target}] }}\nroutes:\n  - {{ name: raw, match: {{ prefix: / }}, upstream: raw }}\n"
    ));
    let answer = raw(
        gw.addr,
        b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&answer), Some(200), "{answer}");
    let head = answer.to_ascii_lowercase();
    assert!(head.contains("\r\nx-kept: k\r\n"), "{answer}");
    for gone in [
        "x-upstream-secret",
        "keep-alive",
        "proxy-authenticate",
        "trailer",
    ] {
        assert!(
            !head.contains(&format!("\r\n{gone}:")),
            "{gone} leaked: {answer}"
        );
    }
    let connection: Vec<_> = head
        .lines()
        .filter(|l| l.starts_with("connection:"))
        .collect();
    assert_eq!(connection, ["connection: close"], "{answer}");
}

/// `Expect: 100-continue`: the interim 100 is not the end of the request. The body
/// that follows it must not be read as the next request's head: here it looks like
/// one, with both framing headers, and arrives after a pause.
#[test]
fn a_body_after_100_continue_is_not_taken_for_a_new_head() {
    let (_a, _b, gw) = two_routes("limits: { header_timeout: 1s }\n");
    let body = b"X-Fake: 1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\nend.";
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let head = format!(
        "POST /_mock/echo/upload HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    let interim = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    // Longer than header_timeout: a body is not a head.
    std::thread::sleep(Duration::from_millis(1_500));
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    while !out.windows(4).any(|w| w == b"end.") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    let answer = String::from_utf8_lossy(&out);
    assert_eq!(status_of(&answer), Some(200), "{answer}");
    assert!(answer.contains("Transfer-Encoding: chunked"), "{answer}");
}

#[test]
fn semicolons_in_paths_can_be_refused() {
    let (_a, _b, strict) = two_routes("limits: { semicolon_in_path: reject }\n");
    for path in ["/admin;x", "/public/a;b", "/;/admin"] {
        let r = strict.get(path);
        assert_eq!(r.status, 400, "{path}: {}", r.body_text());
        assert_eq!(r.json()["error"], "bad_request");
    }
    assert_eq!(strict.get("/public/a%3Bb").status, 200);
    assert_eq!(strict.get("/public/x").status, 200);
    // The default keeps `;` as an ordinary path character.
    let (_c, _d, default) = two_routes("");
    assert_eq!(default.get("/public/a;b").status, 200);
}

/// A body trickling in far below `min_body_rate` is cut once the grace period is
/// over (and not before), though each piece arrives well within `body_timeout`.
#[test]
fn a_body_slower_than_min_body_rate_is_cut_after_the_grace() {
    let (_a, _b, gw) = two_routes("limits: { min_body_rate: 1KiB, body_timeout: 30s }\n");
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.write_all(b"POST /_mock/echo/upload HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 1024];
    let ended = loop {
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "a 33 B/s body was never cut"
        );
        // About 33 bytes per second: far below the 512 B/s enforced.
        if s.write_all(b"0123456789").is_err() {
            break started.elapsed();
        }
        match s.read(&mut buf) {
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            // Closed, reset, or an error answer: the gateway ended the request.
            _ => break started.elapsed(),
        }
    };
    assert!(
        ended >= Duration::from_millis(4_500),
        "cut before the grace period: {ended:?}"
    );
}
