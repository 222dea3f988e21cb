//! Shared set-up for the auth tests: a gateway with an HS256 signing key, two
//! partner keys (RS256, ES256, generated with the `openssl` CLI at test time),
//! consumers with known passwords, and an independent token forge.

use crate::harness::*;
use base64::Engine as _;
use serde_json::{json, Value};
use std::process::Command;
use std::sync::OnceLock;

pub const SECRET: &str = "integration-test-secret-0123456789abcdef";
pub const AUDIENCE: &str = "test-api";
pub const PASSWORD: &str = "correct horse battery staple";

/// One argon2id hash of [`PASSWORD`], made once (each costs ~30 ms).
pub fn password_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| fingate::auth::password::hash(PASSWORD).unwrap())
}

/// Partner key pair files in a temp dir that lives for the whole test run.
pub struct PartnerKeys {
    pub dir: std::path::PathBuf,
}

pub fn partner_keys() -> &'static PartnerKeys {
    static K: OnceLock<PartnerKeys> = OnceLock::new();
    K.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let run = |args: &[&str]| {
            let ok = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .unwrap();
            assert!(ok.status.success(), "openssl {args:?}: {ok:?}");
        };
        run(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "rsa.pem",
        ]);
        run(&["pkey", "-in", "rsa.pem", "-pubout", "-out", "rsa.pub.pem"]);
        run(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "ec.pem",
        ]);
        run(&["pkey", "-in", "ec.pem", "-pubout", "-out", "ec.pub.pem"]);
        PartnerKeys { dir }
    })
}

impl PartnerKeys {
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(name)).unwrap()
    }
}

/// The gateway config: `echo` (accounts:read), `write` (payments:write),
/// `partner` (partner keys only), `accounts` (the mock's accounts), `public`.
pub fn config(upstream: std::net::SocketAddr, lockout: &str) -> String {
    let k = partner_keys();
    let h = password_hash();
    format!(
        r#"listen: [{{ address: '{{LISTEN}}' }}]
admin: {{ address: '{{ADMIN}}', api_key: '{{ADMIN_KEY}}' }}
auth:
  issuer: fingate
  audience: {AUDIENCE}
  leeway: 5s
  keys:
    - {{ id: main, algorithm: HS256, secret: '{SECRET}', sign: true }}
    - {{ id: partner-rsa, algorithm: RS256, public_key_file: '{rsa}', accept: when_listed, issuer: partner-idp }}
    - {{ id: partner-ec, algorithm: ES256, public_key_file: '{ec}', accept: when_listed, issuer: partner-idp }}
  token_endpoint: {{ path: /auth/token, default_ttl: 15m, max_ttl: 1h, lockout: {lockout} }}
consumers:
  - {{ username: alice, password_hash: '{h}', scopes: [accounts:read] }}
  - {{ username: mobile-app, password_hash: '{h}', scopes: [accounts:read, payments:write] }}
  - {{ username: web-app, password_hash: '{h}', scopes: [accounts:read] }}
  - {{ username: bob, password_hash: '{h}', scopes: [accounts:read], disabled: true }}
upstreams:
  a: {{ targets: [{upstream}] }}
routes:
  - {{ name: echo, match: {{ prefix: /_mock/echo }}, upstream: a, filters: [ {{ jwt: {{ scopes: [accounts:read] }} }} ] }}
  - {{ name: write, match: {{ prefix: /write }}, upstream: a, rewrite: {{ path: /_mock/echo/write }}, filters: [ {{ jwt: {{ scopes: [payments:write] }} }} ] }}
  - {{ name: partner, match: {{ prefix: /partner }}, upstream: a, rewrite: {{ path: /_mock/echo/partner }}, filters: [ {{ jwt: {{ keys: [partner-rsa, partner-ec] }} }} ] }}
  - {{ name: accounts, match: {{ prefix: /accounts }}, upstream: a, filters: [ {{ jwt: {{ scopes: [accounts:read] }} }} ] }}
  - {{ name: public, match: {{ prefix: /public }}, upstream: a, rewrite: {{ path: /_mock/echo/public }} }}
"#,
        rsa = k.path("rsa.pub.pem"),
        ec = k.path("ec.pub.pem"),
    )
}

pub fn start(lockout: &str) -> (Mock, Gateway) {
    let m = Mock::one("accounts", "a", &[]);
    let gw = Gateway::start(&config(m.addr("a"), lockout));
    (m, gw)
}

pub const NO_LOCKOUT: &str = "{ username_failures: 1000, ip_failures: 1000, window: 1m }";

/// `POST /auth/token` with a JSON body.
pub fn login(gw: &Gateway, body: &str) -> Response {
    request(
        gw.addr,
        "POST",
        "/auth/token",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
}

/// A token from the endpoint for `user` (password [`PASSWORD`]).
pub fn token_for(gw: &Gateway, user: &str) -> String {
    let r = login(
        gw,
        &json!({"username": user, "password": PASSWORD}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    r.json()["token"].as_str().unwrap().to_owned()
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims the gateway accepts under `main`, to be spoiled one at a time.
pub fn good_claims() -> Value {
    json!({"iss": "fingate", "aud": AUDIENCE, "sub": "alice", "iat": now(), "exp": now() + 300, "scope": "accounts:read"})
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs `claims` with HS256 under `secret` and the given header fields.
pub fn hs256(header: Value, claims: &Value, secret: &[u8]) -> String {
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = header["kid"].as_str().map(str::to_owned);
    jsonwebtoken::encode(&h, claims, &jsonwebtoken::EncodingKey::from_secret(secret)).unwrap()
}

pub fn main_token(claims: &Value) -> String {
    hs256(json!({"kid": "main"}), claims, SECRET.as_bytes())
}

/// A token from raw header and payload JSON and a raw signature part.
pub fn raw_token(header: &str, payload: &str, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        b64(header.as_bytes()),
        b64(payload.as_bytes())
    )
}

pub fn bearer_get(gw: &Gateway, path: &str, token: &str) -> Response {
    request(
        gw.addr,
        "GET",
        path,
        &[("Authorization", &format!("Bearer {token}"))],
        b"",
    )
}

/// Partner-signed token (RS256 or ES256) with the partner's issuer.
pub fn partner_token(alg: jsonwebtoken::Algorithm, kid: &str) -> String {
    let k = partner_keys();
    let key = match alg {
        jsonwebtoken::Algorithm::RS256 => {
            jsonwebtoken::EncodingKey::from_rsa_pem(&k.read("rsa.pem")).unwrap()
        }
        _ => jsonwebtoken::EncodingKey::from_ec_pem(&k.read("ec.pem")).unwrap(),
    };
    let mut h = jsonwebtoken::Header::new(alg);
    h.kid = Some(kid.to_owned());
    let mut claims = good_claims();
    claims["iss"] = json!("partner-idp");
    claims["sub"] = json!("partner-bank");
    jsonwebtoken::encode(&h, &claims, &key).unwrap()
}
