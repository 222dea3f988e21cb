//! Identity headers are the gateway's to set: what a client sends is dropped.

use crate::harness::*;

#[test]
fn client_sent_consumer_headers_never_reach_the_service() {
    let m = Mock::one("accounts", "a", &[]);
    let yaml = format!(
        "listen: [{{ address: '{{LISTEN}}' }}]\nadmin: {{ address: '{{ADMIN}}' }}\nupstreams:\n  a: {{ targets: [{}] }}\nroutes:\n  - {{ name: echo, match: {{ prefix: /_mock/echo }}, upstream: a }}\n",
        m.addr("a")
    );
    let gw = Gateway::start(&yaml);
    let r = request(
        gw.addr,
        "GET",
        "/_mock/echo",
        &[
            ("X-Consumer-Id", "mobile-app"),
            ("x-consumer-scopes", "admin"),
            ("X-CONSUMER-ID", "again"),
            ("X-Other", "kept"),
        ],
        b"",
    );
    assert_eq!(r.status, 200);
    let seen = r.json();
    let headers = seen["headers"].as_object().unwrap();
    assert!(
        !headers.keys().any(|k| k.starts_with("x-consumer-")),
        "leaked: {headers:?}"
    );
    assert_eq!(headers["x-other"][0], "kept");
}

fn echo_config(m: &Mock, trusted: &str) -> String {
    format!(
        "listen: [{{ address: '{{LISTEN}}' }}]\nadmin: {{ address: '{{ADMIN}}' }}\n{trusted}upstreams:\n  a: {{ targets: [{}] }}\nroutes:\n  - {{ name: echo, match: {{ prefix: /_mock/echo }}, upstream: a }}\n",
        m.addr("a")
    )
}

/// What the service saw of `headers` sent through the gateway (lowercase names).
fn seen(gw: &Gateway, headers: &[(&str, &str)]) -> serde_json::Map<String, serde_json::Value> {
    let r = request(gw.addr, "GET", "/_mock/echo", headers, b"");
    assert_eq!(r.status, 200, "{}", r.body_text());
    r.json()["headers"].as_object().unwrap().clone()
}

/// Issue 14: CGI, WSGI and Rack servers read `X_Consumer_Id` as HTTP_X_CONSUMER_ID,
/// the variable the gateway's `X-Consumer-Id` becomes; a client-sent `X-Real-IP` or
/// `X-Forwarded-Host` is a claim about the client only a trusted proxy may make.
#[test]
fn every_spelling_of_gateway_headers_is_stripped_from_untrusted_clients() {
    let m = Mock::one("accounts", "a", &[]);
    let gw = Gateway::start(&echo_config(&m, ""));
    let headers = seen(
        &gw,
        &[
            ("X_Consumer_Id", "mobile-app"),
            ("X_Consumer_Scopes", "payments:write"),
            ("x-consumer_id", "mixed"),
            ("X_CONSUMER-SCOPES", "mixed"),
            ("X_Forwarded_For", "6.6.6.6"),
            ("X_Forwarded_Proto", "https"),
            ("X_Forwarded_Host", "bank.example"),
            ("X_Real_IP", "6.6.6.6"),
            ("X-Real-IP", "6.6.6.6"),
            ("X-Forwarded-Host", "bank.example"),
            ("X_Other", "kept"),
        ],
    );
    let normalised = |k: &str| k.replace('_', "-");
    for leaked in headers.keys().map(|k| normalised(k)) {
        assert!(
            !(leaked.starts_with("x-consumer-")
                || leaked == "x-real-ip"
                || leaked == "x-forwarded-host"),
            "{leaked} reached the service: {headers:?}"
        );
    }
    assert!(!headers.contains_key("x_forwarded_for"), "{headers:?}");
    assert!(!headers.contains_key("x_forwarded_proto"), "{headers:?}");
    // The gateway's own forwarding headers are there, and only in one spelling.
    assert_eq!(headers["x-forwarded-for"][0], "127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"][0], "http");
    assert_eq!(headers["x_other"][0], "kept");
}

#[test]
fn a_trusted_proxy_keeps_its_real_ip_and_forwarded_host_but_not_other_spellings() {
    let m = Mock::one("accounts", "a", &[]);
    let gw = Gateway::start(&echo_config(&m, "trusted_proxies: [127.0.0.1]\n"));
    let headers = seen(
        &gw,
        &[
            ("X-Real-IP", "198.51.100.7"),
            ("X-Forwarded-Host", "bank.example"),
            ("X_Real_IP", "6.6.6.6"),
            ("X_Forwarded_For", "6.6.6.6"),
            ("X_Consumer_Id", "mobile-app"),
        ],
    );
    assert_eq!(headers["x-real-ip"][0], "198.51.100.7");
    assert_eq!(headers["x-forwarded-host"][0], "bank.example");
    for gone in ["x_real_ip", "x_forwarded_for", "x_consumer_id"] {
        assert!(!headers.contains_key(gone), "{gone}: {headers:?}");
    }
}
