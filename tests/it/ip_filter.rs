//! `ip_filter` through the real gateway, from several real client addresses
//! (127.0.0.x) and through a trusted proxy.

use crate::harness::*;
use std::net::IpAddr;

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn start() -> (Mock, Gateway) {
    let m = Mock::one("accounts", "a", &[]);
    let yaml = format!(
        r#"listen: [{{ address: '{{LISTEN}}' }}]
admin: {{ address: '{{ADMIN}}' }}
trusted_proxies: [127.0.0.9]
upstreams:
  a: {{ targets: [{}] }}
routes:
  - name: partner
    match: {{ prefix: /_mock/echo/partner }}
    upstream: a
    filters:
      - ip_filter: {{ allow: [127.0.0.2, 198.51.100.0/24, "2001:db8::/32"], deny: [198.51.100.66] }}
  - name: open
    match: {{ prefix: /_mock/echo/open }}
    upstream: a
    filters:
      - ip_filter: {{ deny: [127.0.0.3] }}
"#,
        m.addr("a")
    );
    let gw = Gateway::start(&yaml);
    (m, gw)
}

fn get_from(gw: &Gateway, from: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    request_from(addr(from), gw.addr, "GET", path, headers, b"")
}

#[test]
fn only_allowed_networks_reach_a_partner_route_and_deny_wins() {
    let (_m, gw) = start();
    assert_eq!(
        get_from(&gw, "127.0.0.2", "/_mock/echo/partner", &[]).status,
        200
    );
    let refused = get_from(&gw, "127.0.0.3", "/_mock/echo/partner", &[]);
    assert_eq!(refused.status, 403, "{}", refused.body_text());
    let body = refused.json();
    assert_eq!(body["error"], "ip_forbidden");
    assert_eq!(refused.header("x-request-id"), body["request_id"].as_str());
    // A route with only `deny` lets everyone else through.
    assert_eq!(
        get_from(&gw, "127.0.0.2", "/_mock/echo/open", &[]).status,
        200
    );
    assert_eq!(
        get_from(&gw, "127.0.0.3", "/_mock/echo/open", &[]).status,
        403
    );
    // Refusals are counted under the route like any answer.
    let refused =
        gw.metric("fingate_requests_total{method=\"GET\",route=\"partner\",status=\"403\"}");
    assert_eq!(refused, Some(1.0));
}

#[test]
fn the_client_address_is_the_one_after_trusted_proxies() {
    let (_m, gw) = start();
    let via = |xff: &str, from: &str| {
        get_from(
            &gw,
            from,
            "/_mock/echo/partner",
            &[("X-Forwarded-For", xff)],
        )
        .status
    };
    // Through the trusted proxy, the forwarded address is judged.
    assert_eq!(via("198.51.100.10", "127.0.0.9"), 200);
    assert_eq!(
        via("198.51.100.66", "127.0.0.9"),
        403,
        "denied inside an allowed network"
    );
    assert_eq!(via("192.0.2.1", "127.0.0.9"), 403);
    // From anyone else the header is not believed: the peer itself is judged.
    assert_eq!(via("198.51.100.10", "127.0.0.3"), 403);
    assert_eq!(via("192.0.2.1", "127.0.0.2"), 200);
}
