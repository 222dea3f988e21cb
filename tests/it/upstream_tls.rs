//! TLS and HTTP/2 to upstreams: `services-mock --tls-cert` behind the gateway,
//! certificates from a test CA made in each test. Requests and health checks,
//! the right and a wrong CA, `sni`, `verify: false`, mutual TLS, h2 by ALPN and
//! h2c, connection pools kept apart by CA, reloads that read the files again.

use crate::harness::*;
use crate::testca::{client_config, CertFiles, TestCa, Validity};
use rustls::pki_types::ServerName;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// An accounts mock serving HTTPS with `server` (plus any `extra` arguments).
fn tls_mock(name: &str, server: &CertFiles, extra: &[&str]) -> Mock {
    let mut args = vec![
        "--tls-cert",
        path(&server.cert),
        "--tls-key",
        path(&server.key),
    ];
    args.extend_from_slice(extra);
    Mock::one("accounts", name, &args)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A gateway with one route per group: `/NAME/...` goes to group NAME as `/...`.
/// `groups` are (name, the group's YAML flow mapping).
fn gateway(groups: &[(&str, String)]) -> Gateway {
    Gateway::start(&config(groups))
}

fn config(groups: &[(&str, String)]) -> String {
    let mut yaml = String::from(
        "listen: [{ address: '{LISTEN}' }]\nadmin: { address: '{ADMIN}', api_key: '{ADMIN_KEY}' }\nupstreams:\n",
    );
    for (name, group) in groups {
        yaml.push_str(&format!("  {name}: {group}\n"));
    }
    yaml.push_str("routes:\n");
    for (name, _) in groups {
        yaml.push_str(&format!(
            "  - {{ name: {name}, match: {{ prefix: /{name} }}, upstream: {name}, rewrite: {{ strip_prefix: /{name} }} }}\n"
        ));
    }
    yaml
}

/// A direct HTTPS GET to a mock (trusting `ca`, presenting `client` if given).
fn tls_get(addr: SocketAddr, ca: &Path, client: Option<&CertFiles>, path: &str) -> Response {
    let name = ServerName::try_from(addr.ip().to_string()).unwrap();
    let conn = rustls::ClientConnection::new(client_config(ca, client), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(addr).unwrap());
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: mock\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    // A close without TLS's close_notify ends the read with an error; what came
    // before it is the answer.
    let _ = tls.read_to_end(&mut raw);
    parse_response(&raw, false).unwrap()
}

/// Business requests the mock instance counted (not `/health` or `/_mock/*`),
/// asked over HTTPS.
fn served(addr: SocketAddr, ca: &Path, client: Option<&CertFiles>) -> u64 {
    tls_get(addr, ca, client, "/_mock/stats").json()["requests"]
        .as_u64()
        .unwrap()
}

fn quoted(p: &Path) -> String {
    format!("'{}'", p.display())
}

#[test]
fn a_tls_target_with_its_ca_answers_and_one_with_a_wrong_ca_is_502() {
    let ca = TestCa::new("internal");
    let other = TestCa::new("other");
    let server = ca.server("mock", &["127.0.0.1"]);
    let m = tls_mock("a", &server, &[]);
    let addr = m.addr("a");
    // Without `sni`, the target's IP address is verified against the IP SAN.
    let gw = gateway(&[
        (
            "good",
            format!(
                "{{ targets: ['{addr}'], tls: {{ ca: {} }} }}",
                quoted(&ca.cert)
            ),
        ),
        (
            "bad",
            format!(
                "{{ targets: ['{addr}'], tls: {{ ca: {} }}, retries: 0 }}",
                quoted(&other.cert)
            ),
        ),
    ]);

    let r = gw.get("/good/_mock/echo/hello");
    assert_eq!(r.status, 200, "{}", r.body_text());
    let echo = r.json();
    assert_eq!(
        (echo["instance"].as_str(), echo["path"].as_str()),
        (Some("a"), Some("/_mock/echo/hello"))
    );
    assert_eq!(gw.get("/good/fx/EUR-USD").status, 200);
    assert_eq!(served(addr, &ca.cert, None), 1);

    let r = gw.get("/bad/fx/EUR-USD");
    assert_eq!(r.status, 502, "{}", r.body_text());
    let body = r.json();
    assert_eq!(body["error"], "upstream_unavailable");
    let id = body["request_id"].as_str().unwrap().to_owned();
    assert_eq!(r.header("x-request-id"), Some(id.as_str()));
    assert!(
        body["message"].as_str().unwrap().contains("\"bad\""),
        "{body}"
    );
    // Nothing reached the service, and the gateway says why.
    assert_eq!(served(addr, &ca.cert, None), 1);
    assert_eq!(
        gw.metric(&format!(
            "fingate_upstream_requests_total{{outcome=\"connect_error\",target=\"{addr}\",upstream=\"bad\"}}"
        )),
        Some(1.0)
    );
    let line = wait_for(Duration::from_secs(5), "the access log line", || {
        gw.log()
            .lines()
            .find(|l| l.contains(&id) && l.contains("\"status\":502"))
            .map(str::to_owned)
    });
    let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(entry["error"], "TLSHandshakeFailure", "{entry}");
}

#[test]
fn sni_names_the_certificate_to_verify() {
    let ca = TestCa::new("internal");
    let server = ca.server("ledger", &["ledger.internal"]);
    let m = tls_mock("ledger", &server, &[]);
    let addr = m.addr("ledger");
    let gw = gateway(&[
        (
            "named",
            format!(
                "{{ targets: ['{addr}'], tls: {{ ca: {}, sni: ledger.internal }} }}",
                quoted(&ca.cert)
            ),
        ),
        // The certificate has no IP SAN: verified against the address, it fails.
        (
            "by_address",
            format!(
                "{{ targets: ['{addr}'], tls: {{ ca: {} }} }}",
                quoted(&ca.cert)
            ),
        ),
    ]);
    let r = gw.get("/named/_mock/echo");
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.header("x-served-by"), Some("ledger"));
    let r = gw.get("/by_address/_mock/echo");
    assert_eq!(r.status, 502, "{}", r.body_text());
}

#[test]
fn verify_false_accepts_any_certificate_with_a_warning() {
    let (ca, other) = (TestCa::new("internal"), TestCa::new("other"));
    let m = tls_mock("a", &ca.server("mock", &["127.0.0.1"]), &[]);
    let gw = gateway(&[(
        "lax",
        format!(
            "{{ targets: ['{}'], tls: {{ ca: {}, verify: false }} }}",
            m.addr("a"),
            quoted(&other.cert)
        ),
    )]);
    let r = gw.get("/lax/_mock/echo");
    assert_eq!(r.status, 200, "{}", r.body_text());
    let log = gw.log();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("tls.verify is false") && l.contains("lax")),
        "{log}"
    );
}

/// Two groups on one target, one trusting its CA and one not: a connection the
/// first pooled must not serve the second (Pingora's pool key leaves the CA out).
#[test]
fn pooled_connections_are_kept_apart_by_ca() {
    let ca = TestCa::new("internal");
    let other = TestCa::new("other");
    let m = tls_mock("a", &ca.server("mock", &["127.0.0.1"]), &[]);
    let addr = m.addr("a");
    let gw = gateway(&[
        (
            "good",
            format!(
                "{{ targets: ['{addr}'], tls: {{ ca: {} }} }}",
                quoted(&ca.cert)
            ),
        ),
        (
            "bad",
            format!(
                "{{ targets: ['{addr}'], tls: {{ ca: {} }} }}",
                quoted(&other.cert)
            ),
        ),
    ]);
    for _ in 0..3 {
        assert_eq!(gw.get("/good/fx/EUR-USD").status, 200);
        let r = gw.get("/bad/fx/EUR-USD");
        assert_eq!(r.status, 502, "{}", r.body_text());
    }
    assert_eq!(served(addr, &ca.cert, None), 3);
}

fn healthy(gw: &Gateway, group: &str, addr: SocketAddr) -> Option<f64> {
    gw.metric(&format!(
        "fingate_upstream_target_healthy{{target=\"{addr}\",upstream=\"{group}\"}}"
    ))
}

/// Checks every 200ms; two failures in a row take a target out.
const CHECKS: &str =
    "health_check: { path: /health, interval: 200ms, timeout: 200ms, healthy: 1, unhealthy: 2 }";

/// Waits until `group`'s checks take `addr` out, then sees that the `kept`
/// groups, checked as often, kept it.
fn taken_out_by_checks(gw: &Gateway, group: &str, addr: SocketAddr, kept: &[&str]) {
    wait_for(Duration::from_secs(5), "the target taken out", || {
        (healthy(gw, group, addr) == Some(0.0)).then_some(())
    });
    std::thread::sleep(Duration::from_millis(600));
    for k in kept {
        assert_eq!(healthy(gw, k, addr), Some(1.0), "{k}\n{}", gw.log());
    }
    // Taken out by its checks, the target is not even tried.
    let r = gw.get(&format!("/{group}/_mock/echo"));
    assert_eq!(
        r.json()["message"],
        format!("no healthy target in upstream \"{group}\"")
    );
}

#[test]
fn health_checks_speak_tls_with_the_groups_settings() {
    let ca = TestCa::new("internal");
    let other = TestCa::new("other");
    let m = tls_mock("a", &ca.server("mock", &["127.0.0.1"]), &[]);
    let addr = m.addr("a");
    let group = |tls: String| format!("{{ targets: ['{addr}'], tls: {tls}, {CHECKS} }}");
    let gw = gateway(&[
        ("good", group(format!("{{ ca: {} }}", quoted(&ca.cert)))),
        ("bad", group(format!("{{ ca: {} }}", quoted(&other.cert)))),
        (
            "lax",
            group(format!("{{ ca: {}, verify: false }}", quoted(&other.cert))),
        ),
    ]);
    taken_out_by_checks(&gw, "bad", addr, &["good", "lax"]);
    assert_eq!(gw.get("/good/_mock/echo").status, 200);
    let log = gw.log();
    assert!(
        log.lines()
            .any(|l| l.contains("target failed its health checks")
                && l.contains("\"upstream\":\"bad\"")
                && l.contains("UnknownIssuer")),
        "{log}"
    );
}

#[test]
fn health_checks_present_the_client_certificate() {
    let ca = TestCa::new("internal");
    let client = ca.client("gw", "fingate", &[]);
    let m = tls_mock(
        "strict",
        &ca.server("mock", &["127.0.0.1"]),
        &["--client-ca", path(&ca.cert)],
    );
    let addr = m.addr("strict");
    let group = |tls: String| format!("{{ targets: ['{addr}'], tls: {tls}, {CHECKS} }}");
    let ca_yaml = quoted(&ca.cert);
    let gw = gateway(&[
        (
            "mtls",
            group(format!(
                "{{ ca: {ca_yaml}, client_cert: {}, client_key: {} }}",
                quoted(&client.cert),
                quoted(&client.key)
            )),
        ),
        ("anonymous", group(format!("{{ ca: {ca_yaml} }}"))),
    ]);
    taken_out_by_checks(&gw, "anonymous", addr, &["mtls"]);
}

#[test]
fn a_target_failing_the_handshake_is_retried_elsewhere_and_ejected() {
    let ca = TestCa::new("internal");
    let impostor = TestCa::new("impostor");
    let good = tls_mock("good", &ca.server("good", &["127.0.0.1"]), &[]);
    let bad = tls_mock("bad", &impostor.server("bad", &["127.0.0.1"]), &[]);
    let gw = gateway(&[(
        "svc",
        format!(
            "{{ targets: ['{}', '{}'], tls: {{ ca: {} }}, retries: 1, eject_for: 1m }}",
            bad.addr("bad"),
            good.addr("good"),
            quoted(&ca.cert)
        ),
    )]);
    for _ in 0..6 {
        let r = gw.get("/svc/_mock/echo");
        assert_eq!(r.status, 200, "{}", r.body_text());
        assert_eq!(r.header("x-served-by"), Some("good"));
    }
    // One failed handshake took the impostor out: it was tried once only.
    assert_eq!(
        gw.metric(&format!(
            "fingate_upstream_requests_total{{outcome=\"connect_error\",target=\"{}\",upstream=\"svc\"}}",
            bad.addr("bad")
        )),
        Some(1.0)
    );
    assert_eq!(healthy(&gw, "svc", bad.addr("bad")), Some(0.0));
}

/// With TLS 1.3 the gateway's side of the handshake ends before the server has
/// judged its certificate: a refusal arrives at the first read, and still counts
/// as a failure to connect (target out, another one tried).
#[test]
fn mutual_tls_presents_the_client_certificate() {
    let ca = TestCa::new("internal");
    let client = ca.client("gw", "fingate", &["gw.internal"]);
    let server = ca.server("mock", &["127.0.0.1"]);
    let strict = tls_mock("strict", &server, &["--client-ca", path(&ca.cert)]);
    let open = tls_mock("open", &server, &[]);
    let (strict_addr, open_addr) = (strict.addr("strict"), open.addr("open"));
    let ca_yaml = quoted(&ca.cert);
    let gw = gateway(&[
        (
            "anonymous",
            format!("{{ targets: ['{strict_addr}'], tls: {{ ca: {ca_yaml} }}, retries: 0 }}"),
        ),
        (
            "mtls",
            format!(
                "{{ targets: ['{strict_addr}'], tls: {{ ca: {ca_yaml}, client_cert: {}, client_key: {} }} }}",
                quoted(&client.cert),
                quoted(&client.key)
            ),
        ),
        (
            "either",
            format!("{{ targets: ['{strict_addr}', '{open_addr}'], tls: {{ ca: {ca_yaml} }}, retries: 1, eject_for: 1m }}"),
        ),
    ]);
    let r = gw.get("/anonymous/_mock/echo");
    assert_eq!(r.status, 502, "{}", r.body_text());
    assert_eq!(
        r.json()["message"],
        "could not connect to upstream \"anonymous\""
    );
    let connect_errors = |group: &str| {
        gw.metric(&format!(
            "fingate_upstream_requests_total{{outcome=\"connect_error\",target=\"{strict_addr}\",upstream=\"{group}\"}}"
        ))
    };
    assert_eq!(connect_errors("anonymous"), Some(1.0));

    let r = gw.get("/mtls/fx/EUR-USD");
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(served(strict_addr, &ca.cert, Some(&client)), 1);

    for _ in 0..4 {
        let r = gw.get("/either/_mock/echo");
        assert_eq!(r.status, 200, "{}", r.body_text());
        assert_eq!(r.header("x-served-by"), Some("open"));
    }
    assert_eq!(connect_errors("either"), Some(1.0));

    // The admin API shows the client certificate a group presents.
    let groups = gw.admin("GET", "/admin/upstreams").json();
    let cert = &groups["upstreams"]["mtls"]["tls"]["client_certificate"];
    assert_eq!(cert["subject"], "CN=fingate", "{groups}");
    let not_after = cert["not_after"].as_i64().unwrap();
    assert!(not_after > 0, "{groups}");
    // Its expiry is published with the listeners' certificates, for alerting.
    let expiry =
        gw.metric("fingate_tls_certificate_expiry_timestamp_seconds{name=\"gw.internal\"}");
    assert_eq!(expiry, Some(not_after as f64));
}

#[test]
fn watch_reloads_when_a_ca_file_changes() {
    let ca = TestCa::new("internal");
    let other = TestCa::new("other");
    let m = tls_mock("a", &ca.server("mock", &["127.0.0.1"]), &[]);
    let addr = m.addr("a");
    let groups = [(
        "svc",
        format!("{{ targets: ['{addr}'], tls: {{ ca: trusted.pem }} }}"),
    )];
    let yaml = config(&groups);
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&ca.cert, dir.path().join("trusted.pem")).unwrap();
    let yaml = yaml.replace(
        "ca: trusted.pem",
        &format!("ca: {}", quoted(&dir.path().join("trusted.pem"))),
    );
    let gw = Gateway::start_with_args(&yaml, &["--watch"]);
    assert_eq!(gw.get("/svc/_mock/echo").status, 200);
    // Only the CA file changes, not the config: --watch reloads all the same.
    std::fs::copy(&other.cert, dir.path().join("trusted.pem")).unwrap();
    wait_for(
        Duration::from_secs(10),
        "the reload with the other CA",
        || (gw.get("/svc/_mock/echo").status == 502).then_some(()),
    );
}

#[test]
fn http2_to_upstreams_by_alpn_and_by_prior_knowledge() {
    let ca = TestCa::new("internal");
    let tls = tls_mock("tls", &ca.server("mock", &["127.0.0.1"]), &[]);
    let plain = Mock::one("accounts", "plain", &[]);
    let group = |addr: SocketAddr, extra: &str| {
        format!(
            "{{ targets: ['{addr}'], tls: {{ ca: {} }}{extra} }}",
            quoted(&ca.cert)
        )
    };
    let gw = gateway(&[
        ("h2", group(tls.addr("tls"), ", http2: true")),
        ("h1", group(tls.addr("tls"), "")),
        (
            "h2c",
            format!("{{ targets: ['{}'], http2: true }}", plain.addr("plain")),
        ),
        (
            "plain",
            format!("{{ targets: ['{}'] }}", plain.addr("plain")),
        ),
    ]);
    let version = |route: &str| {
        let r = gw.get(&format!("/{route}/_mock/echo"));
        assert_eq!(r.status, 200, "{route}: {}", r.body_text());
        r.json()["version"].as_str().unwrap().to_owned()
    };
    for _ in 0..2 {
        assert_eq!(version("h2"), "HTTP/2.0");
        assert_eq!(version("h1"), "HTTP/1.1");
        assert_eq!(version("h2c"), "HTTP/2.0");
        assert_eq!(version("plain"), "HTTP/1.1");
    }
}

#[test]
fn a_reload_reads_the_certificates_again() {
    let ca = TestCa::new("internal");
    let other = TestCa::new("other");
    let m = tls_mock("a", &ca.server("mock", &["127.0.0.1"]), &[]);
    let addr = m.addr("a");
    // The CA file the config names, beside it (a relative path).
    let groups = [(
        "svc",
        format!("{{ targets: ['{addr}'], tls: {{ ca: trusted.pem }} }}"),
    )];
    let yaml = config(&groups);
    let gw = Gateway::start_with_file(
        &yaml,
        "trusted.pem",
        &std::fs::read_to_string(&ca.cert).unwrap(),
    );
    assert_eq!(gw.get("/svc/_mock/echo").status, 200);

    // Another CA in the same file: after a reload the target no longer verifies,
    // also on the connection the gateway kept alive.
    let trusted = gw.dir.path().join("trusted.pem");
    std::fs::copy(&other.cert, &trusted).unwrap();
    let r = gw.admin("POST", "/admin/reload");
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(gw.get("/svc/_mock/echo").status, 502);

    // The right CA again: the target the wrong one took out is judged afresh.
    std::fs::copy(&ca.cert, &trusted).unwrap();
    assert_eq!(gw.admin("POST", "/admin/reload").status, 200);
    assert_eq!(gw.get("/svc/_mock/echo").status, 200);

    // A file that cannot be read refuses the reload; the running config stays.
    std::fs::remove_file(&trusted).unwrap();
    let r = gw.admin("POST", "/admin/reload");
    assert_eq!(r.status, 400, "{}", r.body_text());
    let errors = r.json()["errors"].to_string();
    assert!(
        errors.contains("upstreams.svc.tls.ca: cannot read") && errors.contains("trusted.pem"),
        "{errors}"
    );
    assert_eq!(gw.get("/svc/_mock/echo").status, 200);
}

#[test]
fn validate_names_each_bad_certificate_file_at_its_place() {
    let ca = TestCa::new("internal");
    let client = ca.client("gw", "fingate", &[]);
    let stranger = ca.client("stranger", "someone", &[]);
    // Expired: validity is what is checked, whatever the certificate was issued for.
    let old = ca.server_with("old", &["old.internal"], Validity::Expired);
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "listen: [{{ address: 127.0.0.1:18080 }}]
upstreams:
  unreadable:
    targets: [127.0.0.1:9443]
    tls:
      ca: missing-ca.pem
  mismatched:
    targets: [127.0.0.1:9444]
    tls:
      client_cert: {}
      client_key: {}
  expired:
    targets: [127.0.0.1:9445]
    tls: {{ client_cert: {}, client_key: {} }}
routes:
  - {{ name: r, match: {{ prefix: /r }}, upstream: unreadable }}
",
        quoted(&client.cert),
        quoted(&stranger.key),
        quoted(&old.cert),
        quoted(&old.key),
    );
    std::fs::write(dir.path().join("gateway.yaml"), yaml).unwrap();
    let (code, out, err) = fingate(&["validate", "-c", "gateway.yaml"], dir.path());
    assert_eq!(code, 1, "{out}{err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("gateway.yaml:"))
        .collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].starts_with("gateway.yaml:6:7: upstreams.unreadable.tls.ca: cannot read ")
            && lines[0].contains("missing-ca.pem"),
        "{err}"
    );
    assert!(
        lines[1].starts_with("gateway.yaml:11:7: upstreams.mismatched.tls.client_key: ")
            && lines[1].contains("is not the private key of the certificate"),
        "{err}"
    );
    assert!(
        lines[2].starts_with("gateway.yaml:14:12: upstreams.expired.tls.client_cert: ")
            && lines[2].contains("expired at"),
        "{err}"
    );
}
