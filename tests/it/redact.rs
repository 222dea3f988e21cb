//! `logging.redact`: listed query and path parameters never reach the access log
//! (nor the spans) as they were sent; each is a keyed hash, the same for the
//! same value on every line.

use crate::harness::*;
use crate::otlp::{attr, Receiver};

const CARD: &str = "4111111111111111";
const IBAN: &str = "DE89370400440532013000";
const PAYMENT: &str = "PAY-SECRET-8841";
const OTHER: &str = "PAY-SECRET-0007";

fn is_hash(s: &str) -> bool {
    s.len() == 17 && s.starts_with('~') && s[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[test]
fn redacted_values_never_reach_the_log_and_one_value_hashes_the_same() {
    let m = Mock::one("accounts", "p", &[]);
    let receiver = Receiver::start();
    let yaml = format!(
        "listen: [{{ address: \"{{LISTEN}}\" }}]
admin: {{ address: \"{{ADMIN}}\" }}
logging:
  redact: {{ query: [card_number, iban], path_params: [id] }}
tracing: {{ otlp_endpoint: '{}' }}
upstreams:
  svc: {{ targets: [\"{}\"] }}
routes:
  - {{ name: payment, match: {{ path: '/api/payments/{{id}}' }}, upstream: svc, rewrite: {{ path: '/_mock/echo/{{id}}' }} }}
  - {{ name: echo, match: {{ prefix: /_mock/echo }}, upstream: svc }}
",
        receiver.endpoint(),
        m.addr("p")
    );
    let gw = Gateway::start(&yaml);
    let query = format!("card_number={CARD}&iban={IBAN}&page=2");
    for path in [
        format!("/api/payments/{PAYMENT}?{query}"),
        // The same value in another spelling (percent-encoded) hashes the same.
        format!("/api/payments/PAY%2DSECRET-8841?iban={IBAN}&Card_Number={CARD}"),
        format!("/api/payments/{OTHER}"),
        // A route without the parameter: only the query is redacted.
        format!("/_mock/echo/x?card_number={CARD}&page=3"),
    ] {
        let r = gw.get(&path);
        assert_eq!(r.status, 200, "{path}: {}", r.body_text());
    }
    let lines = gw.access_lines(4);
    let paths: Vec<&str> = lines.iter().map(|l| l["path"].as_str().unwrap()).collect();
    let queries: Vec<&str> = lines
        .iter()
        .map(|l| l["query"].as_str().unwrap_or(""))
        .collect();
    let id = |p: &str| p.strip_prefix("/api/payments/").unwrap().to_owned();
    assert!(is_hash(&id(paths[0])), "{paths:?}");
    assert_eq!(id(paths[0]), id(paths[1]), "one value, one hash");
    assert_ne!(id(paths[0]), id(paths[2]), "another value, another hash");
    assert_eq!(paths[3], "/_mock/echo/x");
    let param = |q: &str, name: &str| {
        q.split('&')
            .find_map(|kv| {
                kv.split_once('=')
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            })
            .map(|(_, v)| v.to_owned())
            .unwrap()
    };
    assert!(is_hash(&param(queries[0], "card_number")), "{queries:?}");
    assert_eq!(
        param(queries[0], "card_number"),
        param(queries[1], "card_number")
    );
    assert_eq!(
        param(queries[0], "card_number"),
        param(queries[3], "card_number")
    );
    assert_eq!(param(queries[0], "iban"), param(queries[1], "iban"));
    assert_ne!(param(queries[0], "iban"), param(queries[0], "card_number"));
    assert_eq!(param(queries[0], "page"), "2", "unlisted parameters stay");
    // The spans say the same as the log.
    let spans = receiver.wait("the spans", |s| s.len() >= 8);
    let server_paths: Vec<String> = spans
        .iter()
        .filter_map(|(_, s)| attr(s, "url.path"))
        .collect();
    assert!(
        server_paths.contains(&paths[0].to_owned()),
        "{server_paths:?}"
    );
    assert!(spans
        .iter()
        .any(|(_, s)| attr(s, "http.route").as_deref() == Some("/api/payments/{id}")));
    // Nothing in the whole output holds a redacted value in any spelling.
    let log = gw.log();
    let exported = format!("{spans:?}");
    for secret in [CARD, IBAN, PAYMENT, OTHER, "PAY%2DSECRET"] {
        assert!(!log.contains(secret), "{secret} reached the log");
        assert!(!exported.contains(secret), "{secret} reached a span");
    }
    // The service itself still got the real values.
    let r = gw.get(&format!("/api/payments/{PAYMENT}?{query}"));
    assert_eq!(r.json()["path"], format!("/_mock/echo/{PAYMENT}"));
}
