//! `fingate validate` and `fingate routes` as a user runs them.

use crate::harness::*;

const GOOD: &str = "\
listen:
  - address: 127.0.0.1:18080
upstreams:
  accounts:
    targets: [127.0.0.1:9101]
routes:
  - name: accounts
    match: { prefix: /api/accounts }
    upstream: accounts
  - name: statement
    match: { path: '/api/accounts/{id}/statement', methods: [GET] }
    upstream: accounts
    rewrite: { strip_prefix: /api }
";

#[test]
fn validate_accepts_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gateway.yaml"), GOOD).unwrap();
    let (code, out, err) = fingate(&["validate", "-c", "gateway.yaml"], dir.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok (2 routes, 1 upstreams)"), "{out}");
}

#[test]
fn validate_reports_every_error_with_line_and_column() {
    let bad = "\
listen:
  - address: 127.0.0.1:18080
upstreams:
  accounts:
    targets: [127.0.0.1:9101]
routes:
  - name: a
    match: { prefix: /a }
    upstream: acounts
  - name: b
    match: { prefix: /b }
    upstream: accounts
    colour: blue
  - name: c
    match: { prefix: /c }
    upstream: accounts
    filters:
      - rate_limiter: {}
";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.yaml"), bad).unwrap();
    let (code, _out, err) = fingate(&["validate", "-c", "bad.yaml"], dir.path());
    assert_eq!(code, 1, "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("bad.yaml:")).collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].starts_with(
            "bad.yaml:9:5: routes[0].upstream: unknown upstream \"acounts\" (known: accounts)"
        ),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("bad.yaml:13:5: routes[1].colour: unknown field `colour`"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("bad.yaml:18:9: routes[2].filters[0]"),
        "{}",
        lines[2]
    );
    assert!(lines[2].contains("rate_limiter"), "{}", lines[2]);
}

#[test]
fn validate_checks_the_spec_rules() {
    let cases: [(&str, &str); 6] = [
        ("duplicate route name", "routes:\n  - { name: a, match: { prefix: /a }, upstream: u }\n  - { name: a, match: { prefix: /b }, upstream: u }\n"),
        ("same host+method+path", "routes:\n  - { name: a, match: { path: /a, methods: [GET] }, upstream: u }\n  - { name: b, match: { path: /a, methods: [GET, POST] }, upstream: u }\n"),
        ("upstream without targets", "upstreams:\n  empty: { targets: [] }\nroutes:\n  - { name: a, match: { prefix: /a }, upstream: empty }\n"),
        ("filter that does not exist", "routes:\n  - { name: a, match: { prefix: /a }, upstream: u, filters: [ { nope: {} } ] }\n"),
        ("redis without url", "store: { backend: redis }\nroutes:\n  - { name: a, match: { prefix: /a }, upstream: u }\n"),
        ("unset env var", "admin: { address: 127.0.0.1:19901, api_key: '${FINGATE_TEST_UNSET_VAR}' }\nroutes:\n  - { name: a, match: { prefix: /a }, upstream: u }\n"),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (what, body) in cases {
        let mut yaml = String::from("listen: [{ address: 127.0.0.1:18080 }]\n");
        if !body.starts_with("upstreams") {
            yaml.push_str("upstreams:\n  u: { targets: [127.0.0.1:9101] }\n");
        }
        yaml.push_str(body);
        std::fs::write(dir.path().join("case.yaml"), &yaml).unwrap();
        let (code, _, err) = fingate(&["validate", "-c", "case.yaml"], dir.path());
        assert_eq!(code, 1, "{what} was accepted:\n{yaml}");
        assert!(
            err.lines()
                .next()
                .is_some_and(|l| l.starts_with("case.yaml:")),
            "{what}: {err}"
        );
    }
}

#[test]
fn routes_prints_the_resolved_table() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gateway.yaml"), GOOD).unwrap();
    let (code, out, err) = fingate(&["routes"], dir.path());
    assert_eq!(code, 0, "{err}");
    let rows: Vec<&str> = out.lines().skip(1).collect();
    // The exact statement route resolves before the prefix route listed first.
    assert!(
        rows[0].contains("statement") && rows[0].contains("strip_prefix /api"),
        "{out}"
    );
    assert!(
        rows[1].contains("accounts") && rows[1].contains("prefix /api/accounts"),
        "{out}"
    );
}

#[test]
fn hash_password_reads_stdin_and_token_mints_with_the_signing_key() {
    let dir = tempfile::tempdir().unwrap();
    let (code, hash, _) = fingate_with_stdin(&["hash-password"], dir.path(), "s3cret-pw\n");
    assert_eq!(code, 0);
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!hash.contains("s3cret-pw"));

    let dir = tempfile::tempdir().unwrap();
    let secret = "cli-test-secret-0123456789abcdef0123";
    std::fs::write(
        dir.path().join("g.yaml"),
        format!("listen: [{{ address: '127.0.0.1:1' }}]\nauth:\n  audience: cli\n  keys: [{{ id: k1, algorithm: HS256, secret: '{secret}', sign: true }}]\nupstreams:\n  a: {{ targets: ['127.0.0.1:2'] }}\nroutes:\n  - {{ name: r, match: {{ prefix: /r }}, upstream: a }}\n"),
    )
    .unwrap();
    let (code, token, err) = fingate(
        &[
            "token", "--sub", "ops", "--scope", "a:read", "--scope", "b:write", "--ttl", "5m",
            "-c", "g.yaml",
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_audience(&["cli"]);
    let data = jsonwebtoken::decode::<serde_json::Value>(
        token.trim(),
        &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        &v,
    )
    .unwrap();
    assert_eq!(data.header.kid.as_deref(), Some("k1"));
    assert_eq!(data.claims["sub"], "ops");
    assert_eq!(data.claims["scope"], "a:read b:write");
    assert_eq!(
        data.claims["exp"].as_i64().unwrap() - data.claims["iat"].as_i64().unwrap(),
        300
    );
    let (code, _, err) = fingate(&["consumers", "add", "x", "-c", "g.yaml"], dir.path());
    assert_eq!(code, 1);
    assert!(err.contains("store.backend: redis"), "{err}");
}

#[test]
fn validate_refuses_patterns_that_normalised_requests_never_match() {
    let dir = tempfile::tempdir().unwrap();
    for (pattern, hint) in [
        ("/%41dmin", "\"Admin\""),
        ("/caf\u{e9}", "\"caf%C3%A9\""),
        ("/a/../b", "never matches"),
    ] {
        let yaml = format!("listen: [{{ address: 127.0.0.1:18080 }}]\nupstreams:\n  u: {{ targets: [127.0.0.1:9101] }}\nroutes:\n  - {{ name: a, match: {{ prefix: '{pattern}' }}, upstream: u }}\n");
        std::fs::write(dir.path().join("p.yaml"), yaml).unwrap();
        let (code, _, err) = fingate(&["validate", "-c", "p.yaml"], dir.path());
        assert_eq!(code, 1, "{pattern} accepted");
        assert!(
            err.contains("routes[0].match.prefix") && err.contains(hint),
            "{pattern}: {err}"
        );
    }
}
