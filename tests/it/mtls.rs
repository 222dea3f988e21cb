//! Mutual TLS at the edge with curl's client certificates: a listener asking for
//! them (`client_auth`), the `mtls` filter, and consumers known by their
//! certificate.

use crate::curl::{curl_args, https};
use crate::harness::*;
use crate::testca::{CertFiles, TestCa};
use std::time::Duration;

struct Setup {
    edge: TestCa,
    partners: TestCa,
    _mock: Mock,
    gw: Gateway,
    required_port: u16,
}

fn start() -> Setup {
    let edge = TestCa::new("edge");
    let api = edge.server("api", &["api.test"]);
    let partners = TestCa::new("partners");
    let mock = Mock::one("accounts", "a", &[]);
    let required_port = free_port();
    let yaml = format!(
        r#"listen:
  - address: '{{LISTEN}}'
    tls:
      certs: [{api}]
      client_auth: {{ ca: '{ca}' }}
  - address: '127.0.0.1:{required_port}'
    tls:
      certs: [{api}]
      client_auth: {{ ca: '{ca}', required: true }}
admin: {{ address: '{{ADMIN}}', api_key: '{{ADMIN_KEY}}' }}
consumers:
  - {{ username: partner-bank, client_cert: {{ subject: "O=Partner Bank, CN=partner-bank" }}, scopes: [payments:write] }}
  - {{ username: ledger-sync, client_cert: {{ san: sync.partner.example }} }}
upstreams:
  a: {{ targets: [{mock}] }}
routes:
  - name: partner
    match: {{ prefix: /_mock/echo/partner }}
    upstream: a
    filters: [mtls: {{}}]
  - name: open
    match: {{ prefix: /_mock/echo/open }}
    upstream: a
"#,
        api = api.yaml(),
        ca = partners.cert.display(),
        mock = mock.addr("a"),
    );
    let gw = Gateway::start(&yaml);
    Setup {
        edge,
        partners,
        _mock: mock,
        gw,
        required_port,
    }
}

/// curl to `path` on `port`, with the client certificate `cert` if any.
fn call(
    s: &Setup,
    port: u16,
    path: &str,
    cert: Option<&CertFiles>,
    extra: &[&str],
) -> crate::curl::Curl {
    let mut args: Vec<String> = extra.iter().map(|a| (*a).to_owned()).collect();
    if let Some(c) = cert {
        args.extend([
            "--cert".to_owned(),
            c.cert.display().to_string(),
            "--key".to_owned(),
            c.key.display().to_string(),
        ]);
    }
    args.extend(https("api.test", port, path, &s.edge.cert));
    curl_args(&args)
}

#[test]
fn a_known_certificate_is_its_consumer_upstream_over_http1_and_http2() {
    let s = start();
    let p = s.gw.addr.port();
    let bank = s
        .partners
        .client_with_org("bank", "partner-bank", "Partner Bank");
    for flag in ["--http1.1", "--http2"] {
        let r = call(
            &s,
            p,
            "/_mock/echo/partner",
            Some(&bank),
            &[flag, "-H", "X-Consumer-Id: forged"],
        );
        assert_eq!(r.status, 200, "{flag}: {} {}", r.body, r.stderr);
        let echo = r.json();
        assert_eq!(
            echo["headers"]["x-consumer-id"],
            serde_json::json!(["partner-bank"])
        );
        assert_eq!(echo["headers"]["x-consumer-scopes"][0], "payments:write");
    }
    let sync = s
        .partners
        .client("sync", "sync-agent", &["sync.partner.example"]);
    let r = call(&s, p, "/_mock/echo/partner", Some(&sync), &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["headers"]["x-consumer-id"][0], "ledger-sync");
    wait_for(Duration::from_secs(2), "the access line", || {
        s.gw.log()
            .contains(r#""consumer":"ledger-sync""#)
            .then_some(())
    });
}

#[test]
fn no_certificate_and_an_unknown_one_are_refused_with_their_codes() {
    let s = start();
    let p = s.gw.addr.port();
    let r = call(&s, p, "/_mock/echo/partner", None, &[]);
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "client_certificate_required");
    // `required: false`: routes without `mtls` serve clients without one.
    assert_eq!(call(&s, p, "/_mock/echo/open", None, &[]).status, 200);

    let stranger = s.partners.client("stranger", "stranger", &["x.example"]);
    let r = call(&s, p, "/_mock/echo/partner", Some(&stranger), &["--http2"]);
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "unknown_client_certificate");
    assert_eq!(r.header("x-request-id"), r.json()["request_id"].as_str());

    // A certificate from a CA the listener does not trust ends the handshake.
    let rogue_ca = TestCa::new("rogue");
    let rogue = rogue_ca.client_with_org("bank", "partner-bank", "Partner Bank");
    let r = call(&s, p, "/_mock/echo/open", Some(&rogue), &[]);
    assert_ne!(r.exit, 0, "a certificate of an unknown CA was accepted");
    assert_eq!(r.status, 0);
    let failed = s.gw.metric(&format!(
        "fingate_tls_handshakes_total{{listener=\"{}\",result=\"failed\"}}",
        s.gw.addr
    ));
    assert_eq!(failed, Some(1.0));
}

#[test]
fn a_listener_that_requires_a_certificate_refuses_the_handshake_without_one() {
    let s = start();
    let r = call(&s, s.required_port, "/_mock/echo/open", None, &[]);
    assert_ne!(r.exit, 0, "served without a client certificate: {}", r.body);
    let sync = s
        .partners
        .client("sync", "sync-agent", &["sync.partner.example"]);
    let r = call(&s, s.required_port, "/_mock/echo/partner", Some(&sync), &[]);
    assert_eq!(r.status, 200, "{}", r.stderr);
}
