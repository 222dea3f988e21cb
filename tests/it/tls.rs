//! TLS listeners with real clients: curl over HTTP/1.1 and HTTP/2, `openssl
//! s_client` for versions and SNI, a rustls client holding a connection open
//! across a certificate swap.

use crate::curl::{curl, curl_args, https, s_client};
use crate::harness::*;
use crate::testca::{client_config, CertFiles, TestCa};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Setup {
    ca: TestCa,
    api: CertFiles,
    _mock: Mock,
    gw: Gateway,
    h2c_port: u16,
}

/// A TLS listener with `certs` (and `extra_tls` lines in its `tls:`), an h2c
/// listener, and one route to the mock's echo.
fn yaml(certs: &[&CertFiles], mock: &Mock, h2c_port: u16, extra_tls: &str) -> String {
    let certs: Vec<String> = certs.iter().map(|c| c.yaml()).collect();
    format!(
        r#"listen:
  - address: '{{LISTEN}}'
    tls:
      certs: [{}]
{extra_tls}  - {{ address: '127.0.0.1:{h2c_port}', h2c: true }}
admin: {{ address: '{{ADMIN}}', api_key: '{{ADMIN_KEY}}' }}
upstreams:
  a: {{ targets: [{}] }}
routes:
  - name: echo
    match: {{ prefix: /_mock/echo }}
    upstream: a
"#,
        certs.join(", "),
        mock.addr("a")
    )
}

fn start() -> Setup {
    let ca = TestCa::new("edge");
    let api = ca.server("api", &["api.test"]);
    let partners = ca.server("partners", &["partners.test", "*.partners.test"]);
    let mock = Mock::one("accounts", "a", &[]);
    let h2c_port = free_port();
    let gw = Gateway::start(&yaml(&[&api, &partners], &mock, h2c_port, ""));
    Setup {
        ca,
        api,
        _mock: mock,
        gw,
        h2c_port,
    }
}

fn port(gw: &Gateway) -> u16 {
    gw.addr.port()
}

#[test]
fn curl_gets_http2_and_http1_over_tls_and_sni_picks_the_certificate() {
    let s = start();
    let p = port(&s.gw);
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let mut args = vec![flag.to_owned()];
        args.extend(https("api.test", p, "/_mock/echo/x", &s.ca.cert));
        let r = curl_args(&args);
        assert_eq!((r.exit, r.status), (0, 200), "{flag}: {}", r.stderr);
        assert_eq!(r.version, version);
        let echo = r.json();
        assert_eq!(echo["path"], "/_mock/echo/x");
        assert_eq!(echo["headers"]["x-forwarded-proto"][0], "https");
    }
    // Verification by name proves the certificate: partners.test and a name under
    // its wildcard get the partners certificate, which api.test's would fail.
    for name in ["partners.test", "web.partners.test"] {
        let r = curl_args(&https(name, p, "/_mock/echo", &s.ca.cert));
        assert_eq!((r.exit, r.status), (0, 200), "{name}: {}", r.stderr);
    }
    let partners = s_client(p, &["-servername", "partners.test"]);
    assert_eq!(partners.subject.as_deref(), Some("CN = partners.test"));
    // No SNI, or a name no certificate has: the first certificate.
    let default = s_client(p, &["-noservername"]);
    assert!(default.ok, "{}", default.output);
    assert_eq!(default.subject.as_deref(), Some("CN = api.test"));
    let unknown = s_client(p, &["-servername", "other.test"]);
    assert_eq!(unknown.subject.as_deref(), Some("CN = api.test"));
    // An IP address as SNI (some clients send one) gets the default too, and
    // rustls's warning about it is not a log line per handshake.
    let ip = s_client(p, &["-servername", "127.0.0.1"]);
    assert_eq!(ip.subject.as_deref(), Some("CN = api.test"));

    let log = s.gw.log();
    assert!(!log.contains("Illegal SNI"), "{log}");
    assert!(log.contains(r#""http":"2","tls":"1.3""#), "{log}");
    assert!(log.contains(r#""http":"1.1","tls":"1.3""#), "{log}");
    let ok =
        s.gw.metric(&format!(
            "fingate_tls_handshakes_total{{listener=\"{}\",result=\"ok\"}}",
            s.gw.addr
        ))
        .unwrap();
    assert!(ok >= 5.0, "{ok}");
    let expiry =
        s.gw.metric("fingate_tls_certificate_expiry_timestamp_seconds{name=\"partners.test\"}")
            .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(expiry > now + 20.0 * 86400.0 && expiry < now + 31.0 * 86400.0);
}

#[test]
fn no_tls_below_1_2_and_min_version_1_3_refuses_1_2() {
    let ca = TestCa::new("floor");
    let api = ca.server("api", &["api.test"]);
    let mock = Mock::one("accounts", "a", &[]);
    let h2c_port = free_port();
    let gw = Gateway::start(&yaml(&[&api], &mock, h2c_port, ""));
    let p = port(&gw);
    for (flag, ok) in [
        ("-tls1_3", true),
        ("-tls1_2", true),
        ("-tls1_1", false),
        ("-tls1", false),
    ] {
        let h = s_client(p, &[flag, "-servername", "api.test"]);
        assert_eq!(h.ok, ok, "{flag}: {}", h.output);
    }
    let h = s_client(
        p,
        &["-tls1_2", "-cipher", "AES128-SHA:AES256-SHA:DES-CBC3-SHA"],
    );
    assert!(!h.ok, "a static-RSA / CBC suite was accepted: {}", h.output);
    let failed = format!(
        "fingate_tls_handshakes_total{{listener=\"{}\",result=\"failed\"}}",
        gw.addr
    );
    assert_eq!(gw.metric(&failed), Some(3.0));

    // The floor follows a reload: new handshakes get it.
    gw.write_config(&yaml(
        &[&api],
        &mock,
        h2c_port,
        "      min_version: '1.3'\n",
    ));
    let r = gw.admin("POST", "/admin/reload");
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert!(!s_client(p, &["-tls1_2"]).ok);
    let h = s_client(p, &["-tls1_3"]);
    assert_eq!(h.protocol.as_deref(), Some("TLSv1.3"), "{}", h.output);
}

#[test]
fn h2c_with_prior_knowledge_where_enabled_and_http1_beside_it() {
    let s = start();
    let h2c = format!("http://127.0.0.1:{}/_mock/echo/c", s.h2c_port);
    let r = curl(&["--http2-prior-knowledge", &h2c]);
    assert_eq!(
        (r.exit, r.status, r.version.as_str()),
        (0, 200, "2"),
        "{}",
        r.stderr
    );
    assert_eq!(r.json()["headers"]["x-forwarded-proto"][0], "http");
    let r = curl(&[&h2c]);
    assert_eq!((r.status, r.version.as_str()), (200, "1.1"));
    // A request shorter than the preface is not held waiting for more bytes.
    let mut raw = TcpStream::connect(("127.0.0.1", s.h2c_port)).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut got = [0u8; 12];
    raw.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"HTTP/1.1 400", "no Host: refused at once");
    // The TLS listener does not take cleartext HTTP/2.
    let tls_port = port(&s.gw);
    let r = curl(&[
        "--http2-prior-knowledge",
        &format!("http://127.0.0.1:{tls_port}/_mock/echo"),
    ]);
    assert_ne!(r.exit, 0);
}

#[test]
fn errors_and_metrics_are_the_same_over_http2_and_http1() {
    let s = start();
    let p = port(&s.gw);
    let mut bodies = Vec::new();
    for flag in ["--http2", "--http1.1"] {
        let mut args = vec![flag.to_owned()];
        args.extend(https("api.test", p, "/nowhere", &s.ca.cert));
        let r = curl_args(&args);
        assert_eq!(r.status, 404);
        let body = r.json();
        assert_eq!(body["error"], "route_not_found");
        assert_eq!(r.header("x-request-id"), body["request_id"].as_str());
        assert_eq!(r.header("content-type"), Some("application/json"));
        bodies.push(body["message"].clone());
    }
    assert_eq!(bodies[0], bodies[1]);
    // A refusal of the edge checks: a header block over the limit.
    let big = format!("x-big: {}", "a".repeat(70_000));
    for flag in ["--http2", "--http1.1"] {
        let mut args = vec![flag.to_owned(), "-H".to_owned(), big.clone()];
        args.extend(https("api.test", p, "/_mock/echo", &s.ca.cert));
        let r = curl_args(&args);
        assert!(
            r.status == 431 || r.exit != 0,
            "{flag}: an oversized head was served: {} {}",
            r.status,
            r.stderr
        );
    }
    let counted =
        s.gw.metric("fingate_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}")
            .unwrap();
    assert_eq!(counted, 2.0);
}

/// A TLS client that keeps its connection: sends HTTP/1.1 requests one by one.
struct Held {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl Held {
    fn connect(port: u16, name: &str, ca: &std::path::Path) -> std::io::Result<Held> {
        let conn = rustls::ClientConnection::new(
            client_config(ca, None),
            ServerName::try_from(name.to_owned()).unwrap(),
        )
        .unwrap();
        let sock = TcpStream::connect(("127.0.0.1", port))?;
        sock.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut tls = rustls::StreamOwned::new(conn, sock);
        // Complete the handshake now, so a failure shows here.
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        Ok(Held { tls })
    }

    /// GET `path`; the status, once the whole answer (Content-Length) is read.
    fn get(&mut self, path: &str) -> std::io::Result<u16> {
        write!(self.tls, "GET {path} HTTP/1.1\r\nHost: api.test\r\n\r\n")?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            self.tls.read_exact(&mut byte)?;
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        let mut body = vec![0u8; length];
        self.tls.read_exact(&mut body)?;
        Ok(head[9..12].parse().unwrap())
    }

    /// The DER of the certificate this connection was given.
    fn peer(&self) -> Vec<u8> {
        self.tls.conn.peer_certificates().unwrap()[0].to_vec()
    }
}

fn der(file: &std::path::Path) -> Vec<u8> {
    CertificateDer::from_pem_file(file).unwrap().to_vec()
}

#[test]
fn a_certificate_swap_under_load_fails_no_request_and_leaves_open_connections_alone() {
    let s = start();
    let p = port(&s.gw);
    let pid = s.gw.pid();
    let old = der(&s.api.cert);
    let mut held = Held::connect(p, "api.test", &s.ca.cert).unwrap();
    assert_eq!(held.get("/_mock/echo").unwrap(), 200);
    assert_eq!(held.peer(), old);

    // Load: new connections (a handshake each) and kept-alive ones, until stopped.
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let (stop, done, failed) = (stop.clone(), done.clone(), failed.clone());
            let ca = s.ca.cert.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let ok = Held::connect(p, "api.test", &ca).and_then(|mut c| {
                        for _ in 0..(1 + i) {
                            if c.get("/_mock/echo")? != 200 {
                                return Err(std::io::Error::other("status"));
                            }
                        }
                        Ok(())
                    });
                    match ok {
                        Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));

    // Renew: a new key and certificate for the same name, written over the files.
    let renewed = s.ca.server("renewed", &["api.test"]);
    std::fs::copy(&renewed.cert, &s.api.cert).unwrap();
    std::fs::copy(&renewed.key, &s.api.key).unwrap();
    let r = s.gw.admin("POST", "/admin/reload");
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(
        r.json()["summary"]["settings_changed"],
        serde_json::json!(["listen"])
    );
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during the swap"
    );
    assert!(done.load(Ordering::Relaxed) > 20);

    let fresh = Held::connect(p, "api.test", &s.ca.cert).unwrap();
    assert_eq!(
        fresh.peer(),
        der(&renewed.cert),
        "new handshakes get the new one"
    );
    assert_eq!(
        held.get("/_mock/echo").unwrap(),
        200,
        "the open connection goes on"
    );
    assert_eq!(held.peer(), old);
    assert_eq!(s.gw.pid(), pid);
}

#[test]
fn a_bad_certificate_on_reload_is_refused_and_the_running_one_stays() {
    let s = start();
    let p = port(&s.gw);
    let old = der(&s.api.cert);
    std::fs::write(&s.api.cert, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    let r = s.gw.admin("POST", "/admin/reload");
    assert_eq!(r.status, 400, "{}", r.body_text());
    let text = r.body_text();
    assert!(text.contains("listen[0].tls.certs[0]"), "{text}");
    assert!(text.contains("gateway.yaml:4:"), "{text}");
    let held = Held::connect(p, "api.test", &s.ca.cert).unwrap();
    assert_eq!(held.peer(), old);

    // A certificate that expired, or a key of another certificate: the same.
    let expired =
        s.ca.server_with("expired", &["api.test"], crate::testca::Validity::Expired);
    std::fs::copy(&expired.cert, &s.api.cert).unwrap();
    let r = s.gw.admin("POST", "/admin/reload");
    assert_eq!(r.status, 400);
    assert!(r.body_text().contains("expired at"), "{}", r.body_text());
    let other = s.ca.server("other", &["api.test"]);
    std::fs::copy(&other.cert, &s.api.cert).unwrap();
    let r = s.gw.admin("POST", "/admin/reload");
    assert!(
        r.body_text()
            .contains("is not the private key of the certificate"),
        "{}",
        r.body_text()
    );
    assert_eq!(
        Held::connect(p, "api.test", &s.ca.cert).unwrap().peer(),
        old
    );
}

#[test]
fn watch_reloads_when_a_certificate_file_changes() {
    let ca = TestCa::new("watch");
    let api = ca.server("api", &["api.test"]);
    let mock = Mock::one("accounts", "a", &[]);
    let gw = Gateway::start_with_args(&yaml(&[&api], &mock, free_port(), ""), &["--watch"]);
    let p = port(&gw);
    let renewed = ca.server("renewed", &["api.test"]);
    // The key first: until the certificate follows, the pair does not match and
    // the reload is refused (the running certificate stays).
    std::fs::copy(&renewed.key, &api.key).unwrap();
    std::fs::copy(&renewed.cert, &api.cert).unwrap();
    let want = der(&renewed.cert);
    wait_for(Duration::from_secs(10), "the renewed certificate", || {
        let c = Held::connect(p, "api.test", &ca.cert).ok()?;
        (c.peer() == want).then_some(())
    });
}

#[test]
fn http2_carries_100_concurrent_streams_on_one_connection_and_cancelled_ones_end() {
    let ca = TestCa::new("h2");
    let api = ca.server("api", &["api.test"]);
    let mock = Mock::one("accounts", "a", &[]);
    let slow = Mock::one("accounts", "slow", &["--latency", "3s"]);
    let yaml = yaml(&[&api], &mock, free_port(), "").replace(
        "routes:\n",
        &format!(
            "  slow: {{ targets: [{}] }}\nroutes:\n  - {{ name: slow, match: {{ prefix: /_mock/echo/slow }}, upstream: slow }}\n",
            slow.addr("slow")
        ),
    );
    let gw = Gateway::start(&yaml);
    let p = port(&gw);
    let url = format!("https://127.0.0.1:{p}/_mock/echo/fast");
    let out = std::process::Command::new("h2load")
        .args(["-n", "2000", "-c", "1", "-m", "100", &url])
        .output()
        .expect("run h2load (scripts/test installs nghttp2-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("2000 succeeded, 0 failed, 0 errored")
            && text.contains("status codes: 2000 2xx"),
        "{text}"
    );
    assert!(text.contains("Application protocol: h2"), "{text}");

    // 50 requests multiplexed on one connection to a slow upstream, given up
    // after half a second: each is reset (RST_STREAM) while in flight.
    let mut args = vec![
        "--http2".to_owned(),
        "-Z".to_owned(),
        "--parallel-max".to_owned(),
        "100".to_owned(),
        "--max-time".to_owned(),
        "0.5".to_owned(),
        "--cacert".to_owned(),
        ca.cert.display().to_string(),
        "--resolve".to_owned(),
        format!("api.test:{p}:127.0.0.1"),
    ];
    for i in 0..50 {
        args.push(format!("https://api.test:{p}/_mock/echo/slow/{i}"));
    }
    let started = Instant::now();
    let r = curl_args(&args);
    assert_ne!(r.exit, 0, "the slow requests were expected to time out");
    assert!(started.elapsed() < Duration::from_secs(3));
    wait_for(
        Duration::from_secs(5),
        "in-flight requests back to 0",
        || (gw.metric("fingate_inflight_requests") == Some(0.0)).then_some(()),
    );
    // The gateway is fine after it.
    let r = curl_args(&https("api.test", p, "/_mock/echo/after", &ca.cert));
    assert_eq!(r.status, 200);
}
