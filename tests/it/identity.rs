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
