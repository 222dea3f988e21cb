//! Two real gateways as a federation: the issuer signs tokens with an ES256 key
//! and publishes its JWKS (`serve: jwks`); the verifier trusts it through
//! `jwks_url` over loopback `http://`. Key rotation with no restart, the issuer
//! down at the verifier's start, fetches bounded under unknown `kid`s, and a
//! partner `sub` equal to a local consumer's name never taking that consumer's
//! identity, cache entries, limits or idempotency keys.

use crate::authkit::{self, password_hash, PASSWORD, SECRET};
use crate::harness::*;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const AUDIENCE: &str = "test-api";

/// A fresh ES256 key pair in `dir`: `<name>.pem` (PKCS#8) and `<name>.pub.pem`.
fn es256(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    for args in [
        vec![
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ],
        vec!["pkey", "-pubout", "-in"],
    ] {
        let mut cmd = Command::new("openssl");
        cmd.args(&args);
        if args[0] == "genpkey" {
            cmd.arg(&private);
        } else {
            cmd.arg(&private).arg("-out").arg(&public);
        }
        assert!(cmd.status().unwrap().success(), "openssl {args:?}");
    }
    (private, public)
}

fn issuer_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// The issuer: its own issuer URL, `keys` (YAML list items), a token endpoint (and
/// so the JWKS and metadata routes), a consumer `mobile-app`.
fn issuer_config(addr: SocketAddr, keys: &str) -> String {
    format!(
        r#"listen: [{{ address: '{{LISTEN}}' }}]
admin: {{ address: '{{ADMIN}}', api_key: '{{ADMIN_KEY}}' }}
auth:
  issuer: '{issuer}'
  audience: {AUDIENCE}
  keys:
{keys}
  token_endpoint: {{ path: /auth/token, lockout: {lockout} }}
consumers:
  - {{ username: mobile-app, password_hash: '{h}', scopes: [accounts:read] }}
upstreams:
  none: {{ targets: [127.0.0.1:9] }}
routes:
  - {{ name: nothing, match: {{ prefix: /nothing }}, upstream: none }}
"#,
        issuer = issuer_url(addr),
        lockout = authkit::NO_LOCKOUT,
        h = password_hash(),
    )
}

fn signing(private: &Path, id: &str) -> String {
    format!(
        "    - {{ id: {id}, algorithm: ES256, private_key_file: '{}', sign: true }}",
        private.display()
    )
}

fn published(public: &Path, id: &str) -> String {
    format!(
        "    - {{ id: {id}, algorithm: ES256, public_key_file: '{}' }}",
        public.display()
    )
}

/// The verifier: its own HS256 key and consumer `mobile-app`, and the issuer's
/// key set; routes accepting both, with a cache, a limit, idempotency.
fn verifier_config(issuer: SocketAddr, upstream: SocketAddr) -> String {
    format!(
        r#"listen: [{{ address: '{{LISTEN}}' }}]
admin: {{ address: '{{ADMIN}}', api_key: '{{ADMIN_KEY}}' }}
auth:
  issuer: fingate
  audience: {AUDIENCE}
  keys:
    - {{ id: main, algorithm: HS256, secret: '{SECRET}', sign: true }}
    - {{ id: partner-idp, jwks_url: '{url}/.well-known/jwks.json', issuer: '{url}', refresh: 10m }}
  token_endpoint: {{ path: /auth/token, lockout: {lockout} }}
consumers:
  - {{ username: mobile-app, password_hash: '{h}', scopes: [accounts:read] }}
upstreams:
  a: {{ targets: [{upstream}] }}
routes:
  - {{ name: echo, match: {{ path: /_mock/echo }}, upstream: a, filters: [ {{ jwt: {{}} }} ] }}
  - {{ name: cached, match: {{ path: /cached }}, upstream: a, rewrite: {{ path: /_mock/echo/cached }}, filters: [ {{ jwt: {{}} }}, {{ cache: {{ ttl: 60s }} }} ] }}
  - {{ name: limited, match: {{ path: /limited }}, upstream: a, rewrite: {{ path: /_mock/echo/limited }}, filters: [ {{ jwt: {{}} }}, {{ rate_limit: {{ key: consumer, limit: 2, per: 1h }} }} ] }}
  - {{ name: pay, match: {{ path: /pay }}, upstream: a, rewrite: {{ path: /_mock/echo/pay }}, filters: [ {{ jwt: {{}} }}, {{ idempotency: {{ required: true }} }} ] }}
  - {{ name: public, match: {{ prefix: /public }}, upstream: a, rewrite: {{ path: /_mock/echo/public }} }}
"#,
        url = issuer_url(issuer),
        lockout = authkit::NO_LOCKOUT,
        h = password_hash(),
    )
}

/// A token of `mobile-app` from a gateway's token endpoint.
fn token(gw: &Gateway) -> String {
    authkit::token_for(gw, "mobile-app")
}

fn call(gw: &Gateway, method: &str, path: &str, token: &str, extra: &[(&str, &str)]) -> Response {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("Authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    let body: &[u8] = if method == "POST" { b"{}" } else { b"" };
    request(gw.addr, method, path, &headers, body)
}

/// What the service saw as the caller's identity headers.
fn identity(r: &Response) -> (Value, Value) {
    let h = &r.json()["headers"];
    (
        h["x-consumer-id"][0].clone(),
        h["x-consumer-issuer"][0].clone(),
    )
}

/// Fetches of the issuer's key set so far, as the issuer counted them.
fn jwks_fetches(issuer: &Gateway) -> u64 {
    issuer
        .metric("fingate_requests_total{method=\"GET\",route=\"jwks\",status=\"200\"}")
        .unwrap_or(0.0) as u64
}

/// A token with header `kid` signed by nothing the verifier knows.
fn unknown_kid_token(kid: &str) -> String {
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": kid}).to_string();
    let claims = json!({"sub": "x", "iss": "nobody", "aud": AUDIENCE, "exp": authkit::now() + 60});
    authkit::raw_token(&header, &claims.to_string(), "c2lnbmF0dXJl")
}

#[test]
fn a_partner_token_never_takes_a_local_consumers_identity_cache_limits_or_keys() {
    let keys = tempfile::tempdir().unwrap();
    let (k1, _) = es256(keys.path(), "k1");
    let issuer_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let issuer = Gateway::start_at(
        &issuer_config(issuer_addr, &signing(&k1, "k1")),
        issuer_addr,
    );
    let m = Mock::one("accounts", "a", &[]);
    let verifier = Gateway::start(&verifier_config(issuer_addr, m.addr("a")));
    let (local, partner) = (token(&verifier), token(&issuer));

    // Identity: the same sub, two consumers.
    let r = call(&verifier, "GET", "/_mock/echo", &local, &[]);
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(identity(&r), (json!("mobile-app"), Value::Null));
    let r = call(&verifier, "GET", "/_mock/echo", &partner, &[]);
    assert_eq!(r.status, 200, "{}", r.body_text());
    let qualified = format!("{}#mobile-app", issuer_url(issuer_addr));
    assert_eq!(
        identity(&r),
        (json!(qualified), json!(issuer_url(issuer_addr)))
    );

    // Cache: the local consumer's private answer is never the partner's.
    let r = call(&verifier, "GET", "/cached", &local, &[]);
    assert_eq!(r.header("x-cache"), Some("MISS"));
    assert_eq!(
        call(&verifier, "GET", "/cached", &local, &[]).header("x-cache"),
        Some("HIT")
    );
    let r = call(&verifier, "GET", "/cached", &partner, &[]);
    assert_eq!(
        r.header("x-cache"),
        Some("MISS"),
        "the partner got the local entry"
    );
    assert_eq!(identity(&r).0, json!(qualified));

    // Limits: the local consumer's allowance is its own.
    for _ in 0..2 {
        assert_eq!(call(&verifier, "GET", "/limited", &local, &[]).status, 200);
    }
    assert_eq!(call(&verifier, "GET", "/limited", &local, &[]).status, 429);
    assert_eq!(
        call(&verifier, "GET", "/limited", &partner, &[]).status,
        200
    );

    // Idempotency keys: the same key from each is two requests, not a replay.
    let key = [
        ("Idempotency-Key", "pay-1"),
        ("Content-Type", "application/json"),
    ];
    let first = call(&verifier, "POST", "/pay", &local, &key);
    assert_eq!(first.status, 200, "{}", first.body_text());
    let again = call(&verifier, "POST", "/pay", &local, &key);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let other = call(&verifier, "POST", "/pay", &partner, &key);
    assert_eq!(other.status, 200, "{}", other.body_text());
    assert_eq!(other.header("idempotent-replayed"), None);
    assert_eq!(identity(&other).0, json!(qualified));
}

#[test]
fn the_verifier_follows_the_issuers_key_rotation_without_a_restart() {
    let keys = tempfile::tempdir().unwrap();
    let (k1, k1_public) = es256(keys.path(), "k1");
    let (k2, _) = es256(keys.path(), "k2");
    let issuer_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let m = Mock::one("accounts", "a", &[]);

    let issuer = Gateway::start_at(
        &issuer_config(issuer_addr, &signing(&k1, "k1")),
        issuer_addr,
    );
    let verifier = Gateway::start(&verifier_config(issuer_addr, m.addr("a")));
    let series = "fingate_jwks_keys{key=\"partner-idp\"}";
    // The first fetch runs in the background at start.
    wait_for(
        Duration::from_secs(10),
        "the verifier's first fetch",
        || (verifier.metric(series) == Some(1.0)).then_some(()),
    );
    let old = token(&issuer);
    assert_eq!(call(&verifier, "GET", "/_mock/echo", &old, &[]).status, 200);

    // Rotation, step 1: a new signing key, the old one still published.
    issuer.write_config(&issuer_config(
        issuer_addr,
        &format!("{}\n{}", signing(&k2, "k2"), published(&k1_public, "k1")),
    ));
    assert_eq!(issuer.admin("POST", "/admin/reload").status, 200);
    let kids: Vec<String> = get(issuer_addr, "/.well-known/jwks.json").json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kids, ["k2", "k1"]);
    let new = token(&issuer);
    let fetches = jwks_fetches(&issuer);
    // The unknown kid k2 makes the verifier fetch at once; the request waits.
    assert_eq!(call(&verifier, "GET", "/_mock/echo", &new, &[]).status, 200);
    assert_eq!(jwks_fetches(&issuer), fetches + 1);
    assert_eq!(
        call(&verifier, "GET", "/_mock/echo", &old, &[]).status,
        200,
        "the old key still verifies"
    );
    assert_eq!(verifier.metric(series), Some(2.0));

    // 40 tokens with unknown kids within the next 30 s: no fetch at all (the
    // one above was the window's), each refused as an unknown key.
    let started = Instant::now();
    for i in 0..40 {
        let r = call(
            &verifier,
            "GET",
            "/_mock/echo",
            &unknown_kid_token(&format!("nope-{i}")),
            &[],
        );
        assert_eq!(r.status, 401);
        assert!(r.body_text().contains("key"), "{}", r.body_text());
    }
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the refusals waited on fetches"
    );
    assert_eq!(
        jwks_fetches(&issuer),
        fetches + 1,
        "unknown kids fetched again within 30 s"
    );

    // Step 2: the old key is withdrawn. The next unknown kid after the 30 s
    // window fetches once more; the old key's tokens stop working.
    issuer.write_config(&issuer_config(issuer_addr, &signing(&k2, "k2")));
    assert_eq!(issuer.admin("POST", "/admin/reload").status, 200);
    std::thread::sleep(Duration::from_secs(31).saturating_sub(started.elapsed()));
    for i in 0..40 {
        let r = call(
            &verifier,
            "GET",
            "/_mock/echo",
            &unknown_kid_token(&format!("later-{i}")),
            &[],
        );
        assert_eq!(r.status, 401);
    }
    assert_eq!(
        jwks_fetches(&issuer),
        fetches + 2,
        "40 unknown kids: one fetch"
    );
    let r = call(&verifier, "GET", "/_mock/echo", &old, &[]);
    assert_eq!(r.status, 401, "{}", r.body_text());
    assert_eq!(call(&verifier, "GET", "/_mock/echo", &new, &[]).status, 200);
    assert_eq!(verifier.metric(series), Some(1.0));
    assert_eq!(
        verifier.metric("fingate_jwks_refresh_total{key=\"partner-idp\",result=\"ok\"}"),
        Some(3.0)
    );
}

#[test]
fn the_verifier_starts_and_serves_while_the_issuer_is_down() {
    let keys = tempfile::tempdir().unwrap();
    let (k1, _) = es256(keys.path(), "k1");
    let issuer_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let m = Mock::one("accounts", "a", &[]);
    let verifier = Gateway::start(&verifier_config(issuer_addr, m.addr("a")));
    // Every other route, and the verifier's own tokens, work meanwhile.
    assert_eq!(verifier.get("/public").status, 200);
    assert_eq!(
        call(&verifier, "GET", "/_mock/echo", &token(&verifier), &[]).status,
        200
    );
    wait_for(Duration::from_secs(10), "a failed fetch counted", || {
        verifier
            .metric("fingate_jwks_refresh_total{key=\"partner-idp\",result=\"unreachable\"}")
            .filter(|n| *n >= 1.0)
    });
    assert_eq!(
        verifier.metric("fingate_jwks_keys{key=\"partner-idp\"}"),
        Some(0.0)
    );
    // A token of the issuer cannot be checked yet: 401, saying why.
    let forged = unknown_kid_token("k1");
    let r = call(&verifier, "GET", "/_mock/echo", &forged, &[]);
    assert_eq!(r.status, 401);
    assert!(
        r.body_text().contains("cannot be fetched"),
        "{}",
        r.body_text()
    );
    assert_eq!(
        verifier.metric("fingate_auth_failures_total{reason=\"keys_unavailable\",route=\"echo\"}"),
        Some(1.0)
    );
    // The issuer comes up: its tokens work without touching the verifier.
    let issuer = Gateway::start_at(
        &issuer_config(issuer_addr, &signing(&k1, "k1")),
        issuer_addr,
    );
    let t = token(&issuer);
    let r = wait_for(Duration::from_secs(40), "the issuer's keys", || {
        let r = call(&verifier, "GET", "/_mock/echo", &t, &[]);
        (r.status == 200).then_some(r)
    });
    assert_eq!(identity(&r).1, json!(issuer_url(issuer_addr)));
    let _ = PASSWORD;
}
