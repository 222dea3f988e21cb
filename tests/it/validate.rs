//! `validate` through the real gateway: bodies checked against a JSON Schema before
//! the service sees them, and the checked bytes forwarded unchanged.

use crate::harness::*;

const SCHEMA: &str = r#"{
  "type": "object",
  "required": ["from_account", "amount", "currency"],
  "properties": {
    "from_account": { "type": "string", "pattern": "^ACC-[0-9]+$" },
    "amount": { "type": "integer", "minimum": 1 },
    "currency": { "enum": ["EUR", "USD"] }
  }
}"#;

fn start() -> (Mock, Gateway) {
    let m = Mock::one("accounts", "a", &[]);
    let yaml = format!(
        r#"listen: [{{ address: '{{LISTEN}}' }}]
admin: {{ address: '{{ADMIN}}' }}
upstreams:
  a: {{ targets: [{}] }}
routes:
  - name: payment-create
    match: {{ path: /pay }}
    upstream: a
    rewrite: {{ path: /_mock/echo/pay }}
    filters:
      - validate: {{ json_schema: payment.json, max_body: 1KiB }}
"#,
        m.addr("a")
    );
    let gw = Gateway::start_with_file(&yaml, "payment.json", SCHEMA);
    (m, gw)
}

fn post(gw: &Gateway, content_type: &str, body: &[u8]) -> Response {
    request(
        gw.addr,
        "POST",
        "/pay",
        &[("Content-Type", content_type)],
        body,
    )
}

#[test]
fn a_valid_body_reaches_the_service_byte_for_byte() {
    let (_m, gw) = start();
    let body =
        br#"{"from_account": "ACC-1001", "amount": 2500, "currency": "EUR", "note": "rent"}"#;
    let r = post(&gw, "application/json", body);
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.json()["body"].as_str().unwrap().as_bytes(), body);
    // A chunked body is read, checked and forwarded as well.
    let chunked = format!(
        "POST /pay HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        body.len(),
        String::from_utf8_lossy(body)
    );
    let mut s = std::net::TcpStream::connect(gw.addr).unwrap();
    std::io::Write::write_all(&mut s, chunked.as_bytes()).unwrap();
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut raw).unwrap();
    let r = parse_response(&raw, false).unwrap();
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.json()["body"].as_str().unwrap().as_bytes(), body);
}

#[test]
fn bad_bodies_never_reach_the_service() {
    let (m, gw) = start();
    let before = Mock::requests(m.addr("a"));
    let invalid = post(
        &gw,
        "application/json",
        br#"{"from_account": "X-1", "amount": 0, "currency": "GBP"}"#,
    );
    assert_eq!(invalid.status, 422, "{}", invalid.body_text());
    let body = invalid.json();
    assert_eq!(body["error"], "invalid_body");
    let mut pointers: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    pointers.sort_unstable();
    assert_eq!(pointers, ["/amount", "/currency", "/from_account"]);
    let not_json = post(&gw, "text/plain", b"amount=5");
    assert_eq!(not_json.status, 415);
    assert_eq!(not_json.json()["error"], "unsupported_media_type");
    let broken = post(&gw, "application/json", b"{\"amount\": ");
    assert_eq!(broken.status, 400);
    assert_eq!(broken.json()["error"], "bad_request");
    let empty = request(gw.addr, "POST", "/pay", &[], b"");
    assert_eq!(empty.status, 400, "{}", empty.body_text());
    let too_big = post(&gw, "application/json", &[b' '; 2048]);
    assert_eq!(too_big.status, 413);
    assert_eq!(
        Mock::requests(m.addr("a")),
        before,
        "a refused body reached the service"
    );
}

#[test]
fn a_schema_that_does_not_compile_is_a_validation_error_at_its_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.json"), r#"{"type": 12}"#).unwrap();
    let yaml = "listen: [{ address: 127.0.0.1:1 }]\nupstreams:\n  a: { targets: [127.0.0.1:2] }\nroutes:\n  - name: r\n    match: { prefix: /r }\n    upstream: a\n    filters:\n      - validate: { json_schema: bad.json }\n      - validate: { schema: { type: object }, json_schema: x.json }\n";
    std::fs::write(dir.path().join("gw.yaml"), yaml).unwrap();
    let (code, out, err) = fingate(&["validate", "-c", "gw.yaml"], dir.path());
    let text = format!("{out}{err}");
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(
            "gw.yaml:9:21: routes[0].filters[0].validate.json_schema: the schema does not compile"
        ),
        "{text}"
    );
    assert!(
        text.contains("routes[0].filters[1].validate: give exactly one of `json_schema`"),
        "{text}"
    );
}

/// Schemas, CORS lists and CIDRs are the config's: a reload applies changes to
/// them (the schema file is read again) for the next requests.
#[test]
fn a_reload_applies_new_schemas_origins_and_networks() {
    let m = Mock::one("accounts", "a", &[]);
    let yaml = |origin: &str, allow: &str| {
        format!(
            r#"listen: [{{ address: '{{LISTEN}}' }}]
admin: {{ address: '{{ADMIN}}', api_key: '{{ADMIN_KEY}}' }}
upstreams:
  a: {{ targets: [{}] }}
routes:
  - name: pay
    match: {{ path: /pay }}
    upstream: a
    rewrite: {{ path: /_mock/echo/pay }}
    filters:
      - validate: {{ json_schema: payment.json }}
      - cors: {{ origins: ['{origin}'] }}
      - ip_filter: {{ allow: ['{allow}'] }}
"#,
            m.addr("a")
        )
    };
    let gw = Gateway::start_with_file(
        &yaml("https://old.example", "127.0.0.0/8"),
        "payment.json",
        SCHEMA,
    );
    let order = br#"{"from_account": "ACC-1", "amount": 5, "currency": "EUR"}"#;
    let pay = |origin: &str| {
        request(
            gw.addr,
            "POST",
            "/pay",
            &[("Content-Type", "application/json"), ("Origin", origin)],
            order,
        )
    };
    assert_eq!(pay("https://old.example").status, 200);
    assert_eq!(pay("https://new.example").status, 403);

    // A stricter schema (a `reference` is now required), another origin, and a
    // network that excludes the test's own address.
    let stricter = SCHEMA.replace(
        r#""required": ["from_account", "amount", "currency"]"#,
        r#""required": ["from_account", "amount", "currency", "reference"]"#,
    );
    std::fs::write(gw.config.with_file_name("payment.json"), stricter).unwrap();
    gw.write_config(&yaml("https://new.example", "127.0.0.0/8"));
    assert_eq!(gw.admin("POST", "/admin/reload").status, 200);
    let r = pay("https://new.example");
    assert_eq!(r.status, 422, "{}", r.body_text());
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://new.example")
    );
    assert_eq!(pay("https://old.example").status, 403);

    gw.write_config(&yaml("https://new.example", "10.0.0.0/8"));
    assert_eq!(gw.admin("POST", "/admin/reload").status, 200);
    let r = pay("https://new.example");
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "ip_forbidden");
}
