//! The demo flow through the gateway on the shipped `gateway.yaml` routes, with
//! `services-mock all` on ephemeral ports (one shared ledger, two accounts instances).

use crate::harness::*;
use std::collections::HashSet;

/// gateway.yaml with the services' fixed ports swapped for this test's ephemeral
/// ones, and its HTTPS listener on `https_port`.
pub fn demo_config(mock: &Mock, https_port: u16) -> String {
    let shipped = shipped_config("gateway.yaml");
    let mut yaml = shipped
        .replace("127.0.0.1:8080", "{LISTEN}")
        .replace("127.0.0.1:8443", &format!("127.0.0.1:{https_port}"))
        .replace("127.0.0.1:9901", "{ADMIN}");
    for (port, name) in [
        ("9101", "accounts-1"),
        ("9102", "accounts-2"),
        ("9201", "payments"),
        ("9301", "loans"),
    ] {
        yaml = yaml.replace(&format!("127.0.0.1:{port}"), &mock.addr(name).to_string());
    }
    yaml
}

/// `services-mock all` on ephemeral ports.
pub fn demo_services() -> Mock {
    demo_services_with(&[])
}

/// [`demo_services`] with more flags (e.g. TLS).
fn demo_services_with(extra: &[&str]) -> Mock {
    let mut args = vec![
        "all",
        "--accounts-1",
        "127.0.0.1:0",
        "--accounts-2",
        "127.0.0.1:0",
        "--payments",
        "127.0.0.1:0",
        "--loans",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    Mock::start(&args, 4)
}

fn start_demo() -> (Mock, Gateway) {
    start_demo_on(free_port())
}

/// The demo, its HTTPS listener on `https_port`.
fn start_demo_on(https_port: u16) -> (Mock, Gateway) {
    let mock = demo_services();
    // The demo command passes --demo: gateway.yaml holds the demo secrets.
    let gw = Gateway::start_with_args(&demo_config(&mock, https_port), &["--demo"]);
    (mock, gw)
}

/// Logs a demo consumer in with the password the README gives; returns the
/// `Authorization` value.
fn login(gw: &Gateway, username: &str, password: &str) -> String {
    let body = serde_json::json!({ "username": username, "password": password });
    let r = request(
        gw.addr,
        "POST",
        "/auth/token",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    format!("Bearer {}", r.json()["token"].as_str().unwrap())
}

fn statement_ids(gw: &Gateway, auth: &str, served: &mut HashSet<String>) -> Vec<String> {
    let r = request(
        gw.addr,
        "GET",
        "/api/accounts/ACC-1001/statement?limit=500",
        &[("Authorization", auth)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    served.insert(r.header("x-served-by").unwrap().to_owned());
    r.json()["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_transfer_shows_in_the_statement_from_either_accounts_instance() {
    let (_mock, gw) = start_demo();
    // Protected: no token, no statement.
    let r = gw.get("/api/accounts/ACC-1001/statement");
    assert_eq!(r.status, 401, "{}", r.body_text());
    let auth = login(&gw, "mobile-app", "mobile-demo-pass");
    let mut served = HashSet::new();
    let before = statement_ids(&gw, &auth, &mut served);

    let r = request(
        gw.addr,
        "POST",
        "/api/payments",
        &[
            ("Content-Type", "application/json"),
            ("Idempotency-Key", "it-demo-1"),
            ("Authorization", &auth),
        ],
        br#"{"from_account":"ACC-1001","to_account":"ACC-2001","amount":2500,"currency":"EUR"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body_text());
    // The client retries (it never saw the answer): the gateway answers with the
    // first answer, and the payment is made once (one statement line below).
    let retry = request(
        gw.addr,
        "POST",
        "/api/payments",
        &[
            ("Content-Type", "application/json"),
            ("Idempotency-Key", "it-demo-1"),
            ("Authorization", &auth),
        ],
        br#"{"from_account":"ACC-1001","to_account":"ACC-2001","amount":2500,"currency":"EUR"}"#,
    );
    assert_eq!(retry.status, 201, "{}", retry.body_text());
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.body, r.body);
    // An order without a key is refused: the client could not retry it safely.
    let r = request(
        gw.addr,
        "POST",
        "/api/payments",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
        br#"{"from_account":"ACC-1001","to_account":"ACC-2001","amount":2500,"currency":"EUR"}"#,
    );
    assert_eq!(r.status, 400, "{}", r.body_text());
    assert_eq!(r.json()["error"], "idempotency_key_missing");
    // The payment schema stops a malformed order at the gateway.
    let r = request(
        gw.addr,
        "POST",
        "/api/payments",
        &[
            ("Content-Type", "application/json"),
            ("Idempotency-Key", "it-demo-2"),
            ("Authorization", &auth),
        ],
        br#"{"from_account":"ACC-1001","to_account":"ACC-2001","amount":-5,"currency":"euro"}"#,
    );
    assert_eq!(r.status, 422, "{}", r.body_text());
    let pointers: Vec<String> = r.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        pointers.contains(&"/amount".to_owned()) && pointers.contains(&"/currency".to_owned()),
        "{pointers:?}"
    );
    // The web client's origin may log in and pay from the browser.
    let preflight = request(
        gw.addr,
        "OPTIONS",
        "/auth/token",
        &[
            ("Origin", "http://127.0.0.1:8090"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        b"",
    );
    assert_eq!(preflight.status, 204, "{}", preflight.body_text());

    // Round robin alternates the two instances: read until both have answered.
    let mut served_after = HashSet::new();
    while served_after.len() < 2 {
        let after = statement_ids(&gw, &auth, &mut served_after);
        assert_eq!(
            after.len(),
            before.len() + 1,
            "the payment is in the statement"
        );
        assert_eq!(after[..before.len()], before[..]);
    }
    assert_eq!(
        served_after,
        HashSet::from(["accounts-1".to_owned(), "accounts-2".to_owned()])
    );
}

#[test]
fn loan_quote_and_fx_through_the_gateway() {
    let (_mock, gw) = start_demo();
    let auth = login(&gw, "web-app", "web-demo-pass");
    let r = request(
        gw.addr,
        "POST",
        "/api/loans/quote",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
        br#"{"principal":1000000,"annual_rate_bps":650,"months":12}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body_text());
    let quote = r.json();
    let principal: i64 = quote["schedule"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["principal"].as_i64().unwrap())
        .sum();
    assert_eq!(principal, 1_000_000);
    let id = quote["id"].as_str().unwrap();
    // The loan-read route rewrites with a path template.
    let read = request(
        gw.addr,
        "GET",
        &format!("/api/loans/{id}"),
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(read.json()["id"], id);
    // web-app may not move money: its token lacks payments:write.
    let r = request(
        gw.addr,
        "POST",
        "/api/payments",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
        b"{}",
    );
    assert_eq!(r.status, 403, "{}", r.body_text());

    let fx = gw.get("/api/fx/EUR-USD");
    assert_eq!(fx.status, 200);
    assert_eq!(
        fx.header("x-content-type-options"),
        Some("nosniff"),
        "global headers filter"
    );
    assert!(
        fx.header("x-request-id").is_some(),
        "global request_id filter"
    );
}

#[test]
fn the_demo_serves_https_and_http2_with_its_development_certificate() {
    let https_port = free_port();
    let (_mock, gw) = start_demo_on(https_port);
    let ca = format!("{}/certs/dev/ca.pem", env!("CARGO_MANIFEST_DIR"));
    let auth = format!(
        "Authorization: {}",
        login(&gw, "mobile-app", "mobile-demo-pass")
    );
    // A JSON POST to the HTTPS listener, trusting the development CA.
    let post = |flag: &str, path: &str, body: &str, key: &str| {
        let url = format!("https://localhost:{https_port}{path}");
        crate::curl::curl(&[
            flag,
            "--cacert",
            &ca,
            "-H",
            "Content-Type: application/json",
            "-H",
            &auth,
            "-H",
            &format!("Idempotency-Key: {key}"),
            "-d",
            body,
            &url,
        ])
    };
    let quote = r#"{"principal":1000000,"annual_rate_bps":650,"months":12}"#;
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let r = post(flag, "/api/loans/quote", quote, "unused");
        assert_eq!(
            (r.exit, r.status),
            (0, 201),
            "{flag}: {} {}",
            r.body,
            r.stderr
        );
        assert_eq!(r.version, version);
        assert_eq!(r.json()["schedule"].as_array().map(Vec::len), Some(12));
    }
    // A body the route's schema checks, read and judged over HTTP/2 like HTTP/1.1.
    for (amount, status) in [(-5, 422), (5, 201)] {
        let body = format!(
            r#"{{"from_account":"ACC-1001","to_account":"ACC-2001","amount":{amount},"currency":"EUR"}}"#
        );
        let r = post("--http2", "/api/payments", &body, &format!("h2-{amount}"));
        assert_eq!((r.status, r.version.as_str()), (status, "2"), "{}", r.body);
    }
    // The order's retry over HTTP/2 is answered with the first answer.
    let body = r#"{"from_account":"ACC-1001","to_account":"ACC-2001","amount":5,"currency":"EUR"}"#;
    let r = post("--http2", "/api/payments", body, "h2-5");
    assert_eq!((r.status, r.version.as_str()), (201, "2"), "{}", r.body);
    assert_eq!(r.header("idempotent-replayed"), Some("true"));
}

/// examples/tls.yaml: HTTPS to the gateway, and TLS (HTTP/2 to loans) from the
/// gateway to `services-mock all` serving the development certificate.
#[test]
fn the_tls_example_speaks_tls_to_the_services_too() {
    dev_cert();
    let repo = env!("CARGO_MANIFEST_DIR");
    let (cert, key) = (
        format!("{repo}/certs/dev/localhost.pem"),
        format!("{repo}/certs/dev/localhost.key"),
    );
    let mock = demo_services_with(&["--tls-cert", &cert, "--tls-key", &key]);
    let mut yaml = shipped_config("examples/tls.yaml")
        .replace("127.0.0.1:8443", "{LISTEN}")
        .replace("127.0.0.1:9901", "{ADMIN}");
    for (port, name) in [
        ("9101", "accounts-1"),
        ("9102", "accounts-2"),
        ("9301", "loans"),
    ] {
        yaml = yaml.replace(&format!("127.0.0.1:{port}"), &mock.addr(name).to_string());
    }
    let gw = Gateway::start(&yaml);
    let ca = format!("{repo}/certs/dev/ca.pem");
    let url = |path: &str| format!("https://localhost:{}{path}", gw.addr.port());
    let r = crate::curl::curl(&["--http2", "--cacert", &ca, &url("/api/fx/EUR-USD")]);
    assert_eq!(
        (r.status, r.version.as_str()),
        (200, "2"),
        "{} {}",
        r.body,
        r.stderr
    );
    let r = crate::curl::curl(&["--http1.1", "--cacert", &ca, &url("/api/loans-echo")]);
    assert_eq!(r.status, 200, "{} {}", r.body, r.stderr);
    assert_eq!(
        r.json()["version"],
        "HTTP/2.0",
        "the loans service was spoken to in HTTP/2"
    );
    // The services answer only TLS: a plain request to one is refused.
    assert!(try_request(mock.addr("loans"), "GET", "/health", &[], b"")
        .map_or(true, |r| r.status != 200));
}
