//! The `auth:` and `consumers:` sections: file types and their validation.
//!
//! Kept beside the auth code rather than in `config/` so the feature stays in one
//! place; `config/validate.rs` only calls [`auth`] and [`consumers`]. Key files are
//! read here (the one piece of I/O validation does): a key that cannot load must
//! fail `fingate validate`, not the first request.

use super::consumers::{ClientCertMatch, Consumer};
use super::keys::{self, Accept, KeySet, Material, Policy};
use super::password;
use super::throttle::ThrottleLimits;
use crate::edge::tls::client_cert::DistinguishedName;
use crate::units::DurationStr;
use serde::Deserialize;
use serde_yaml::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::yaml::{typed, Errors};

mod remote;

/// Validated `auth:` settings. The default (no section) has no keys.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub issuer: String,
    pub audience: String,
    pub leeway: Duration,
    pub keys: Arc<KeySet>,
    pub token_endpoint: Option<TokenEndpointConfig>,
}

impl AuthConfig {
    /// Whether `other` verifies and issues tokens exactly as this does (a reload
    /// summary reports `auth` when not). Keys compare by their material.
    pub fn same_as(&self, other: &AuthConfig) -> bool {
        let keys =
            |a: &AuthConfig| -> Vec<u64> { a.keys.keys.iter().map(|k| k.fingerprint).collect() };
        (
            &self.issuer,
            &self.audience,
            self.leeway,
            &self.token_endpoint,
        ) == (
            &other.issuer,
            &other.audience,
            other.leeway,
            &other.token_endpoint,
        ) && keys(self) == keys(other)
            && self.keys.remote == other.keys.remote
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: "fingate".into(),
            audience: "fingate".into(),
            leeway: Duration::from_secs(30),
            keys: Arc::default(),
            token_endpoint: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEndpointConfig {
    /// Given: a route `token_endpoint` at this path is added (the shorthand).
    pub path: Option<String>,
    pub default_ttl: Duration,
    pub max_ttl: Duration,
    /// Password checks running at once (each ≈ 30 ms of one core).
    pub max_concurrent_logins: usize,
    pub lockout: ThrottleLimits,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    audience: Option<String>,
    #[serde(default)]
    leeway: Option<DurationStr>,
    #[serde(default)]
    keys: Vec<Value>,
    #[serde(default)]
    token_endpoint: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    id: String,
    /// Required for keys from the file; for `jwks_url`, pins one algorithm.
    #[serde(default)]
    algorithm: Option<String>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    public_key_file: Option<String>,
    #[serde(default)]
    private_key_file: Option<String>,
    #[serde(default)]
    sign: bool,
    #[serde(default)]
    accept: Accept,
    /// Issuer of tokens under this key (a partner's IdP); default `auth.issuer`.
    #[serde(default)]
    issuer: Option<String>,
    /// Audience its tokens must carry; default `auth.audience`.
    #[serde(default)]
    audience: Option<String>,
    /// An identity provider's JWK set, fetched and kept current.
    #[serde(default)]
    jwks_url: Option<String>,
    #[serde(default)]
    refresh: Option<DurationStr>,
    #[serde(default)]
    max_stale: Option<DurationStr>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TokenEndpointFile {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    default_ttl: Option<DurationStr>,
    #[serde(default)]
    max_ttl: Option<DurationStr>,
    #[serde(default)]
    max_concurrent_logins: Option<usize>,
    #[serde(default)]
    lockout: Option<LockoutFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockoutFile {
    #[serde(default)]
    username_failures: Option<u32>,
    #[serde(default)]
    ip_failures: Option<u32>,
    #[serde(default)]
    window: Option<DurationStr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsumerFile {
    username: String,
    #[serde(default)]
    password_hash: Option<String>,
    #[serde(default)]
    client_cert: Option<ClientCertFile>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    disabled: bool,
}

/// `client_cert: { subject: "CN=partner-bank" }` or `{ san: partner.example }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientCertFile {
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    san: Option<String>,
}

fn client_cert(c: ClientCertFile, path: &str, errors: &mut Errors) -> Option<ClientCertMatch> {
    match (c.subject, c.san) {
        (Some(subject), None) => DistinguishedName::parse(&subject)
            .map_err(|e| errors.push((format!("{path}.subject"), e)))
            .ok()
            .map(ClientCertMatch::Subject),
        (None, Some(san)) if !san.trim().is_empty() => {
            Some(ClientCertMatch::San(san.trim().to_owned()))
        }
        _ => {
            errors.push((
                path.to_owned(),
                "give exactly one of `subject` (e.g. \"CN=partner-bank\") or `san` (e.g. partner.example)".to_owned(),
            ));
            None
        }
    }
}

fn valid_id(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
}

/// Validates `auth:`; relative key file paths are resolved against `base_dir` (the
/// configuration file's folder), so a config works from any working directory.
pub fn auth(value: Value, base_dir: &Path, errors: &mut Errors) -> AuthConfig {
    let mut out = AuthConfig::default();
    if value.is_null() {
        return out;
    }
    let Some(file) = typed::<AuthFile>(value, "auth", errors) else {
        return out;
    };
    if let Some(i) = file.issuer {
        out.issuer = i;
    }
    if let Some(a) = file.audience {
        out.audience = a;
    }
    if let Some(l) = file.leeway {
        out.leeway = l.0;
    }
    if out.leeway > Duration::from_secs(300) {
        errors.push((
            "auth.leeway".into(),
            "use at most 5m: leeway extends every token's life".into(),
        ));
    }
    let policy = Policy {
        issuer: &out.issuer,
        audience: &out.audience,
        leeway: out.leeway,
    };
    let mut set = KeySet::default();
    for (i, raw) in file.keys.into_iter().enumerate() {
        let base = format!("auth.keys[{i}]");
        let Some(k) = typed::<KeyFile>(raw, &base, errors) else {
            continue;
        };
        if !valid_id(&k.id) {
            errors.push((
                format!("{base}.id"),
                format!(
                    "invalid key id {:?}: use 1-64 letters, digits, '-', '_', '.'",
                    k.id
                ),
            ));
            continue;
        }
        if set.contains(&k.id) {
            errors.push((format!("{base}.id"), format!("duplicate key id {:?}", k.id)));
            continue;
        }
        if k.jwks_url.is_some() {
            if let Some(source) = remote::source(k, &base, &policy, errors) {
                set.remote.push(Arc::new(source));
            }
        } else if let Some(key) = key(k, &base, base_dir, &policy, errors) {
            set.keys.push(Arc::new(key));
        }
    }
    let signers = set.keys.iter().filter(|k| k.encoding.is_some()).count();
    if signers > 1 {
        errors.push((
            "auth.keys".into(),
            format!("{signers} keys have `sign: true`; mark exactly one"),
        ));
    }
    if let Some(raw) = file.token_endpoint {
        let te = if raw.is_null() {
            Some(TokenEndpointFile::default())
        } else {
            typed::<TokenEndpointFile>(raw, "auth.token_endpoint", errors)
        };
        if let Some(te) = te {
            if signers == 0 {
                errors.push(("auth.token_endpoint".into(), "the token endpoint needs a signing key: mark one of auth.keys with `sign: true`".into()));
            }
            out.token_endpoint = Some(token_endpoint(te, errors));
        }
    }
    out.keys = Arc::new(set);
    out
}

fn key(
    k: KeyFile,
    base: &str,
    base_dir: &Path,
    policy: &Policy<'_>,
    errors: &mut Errors,
) -> Option<keys::Key> {
    for (given, field) in [
        (k.refresh.is_some(), "refresh"),
        (k.max_stale.is_some(), "max_stale"),
    ] {
        if given {
            errors.push((
                format!("{base}.{field}"),
                "only a key set fetched from `jwks_url` is refreshed".into(),
            ));
        }
    }
    let Some(name) = k.algorithm.as_deref() else {
        errors.push((
            base.to_owned(),
            "missing field `algorithm` (e.g. HS256, RS256, ES256, EdDSA)".into(),
        ));
        return None;
    };
    let algorithm = algorithm(name, base, errors)?;
    let resolve = |p: &String| base_dir.join(p);
    let (public, private) = (
        k.public_key_file.as_ref().map(resolve),
        k.private_key_file.as_ref().map(resolve),
    );
    let (material, field) = match (&k.secret, &public, &private) {
        (Some(s), None, None) => (Material::Secret(s), "secret"),
        (None, Some(p), None) => (Material::PublicPem(p), "public_key_file"),
        (None, None, Some(p)) => (Material::PrivatePem(p), "private_key_file"),
        _ => {
            errors.push((base.to_owned(), "give exactly one of `secret` (HMAC), `public_key_file` (verify only) or `private_key_file` (sign)".into()));
            return None;
        }
    };
    if matches!(material, Material::PrivatePem(_)) && !k.sign {
        errors.push((format!("{base}.private_key_file"), "only the signing key (`sign: true`) is loaded from a private key; verification keys use `public_key_file`".into()));
        return None;
    }
    let issuer = k.issuer.as_deref().unwrap_or(policy.issuer);
    if let Some(problem) = issuer_problem(issuer, policy.issuer) {
        errors.push((format!("{base}.issuer"), problem));
        return None;
    }
    let policy = Policy {
        audience: k.audience.as_deref().unwrap_or(policy.audience),
        ..policy.clone()
    };
    keys::build(
        &k.id, algorithm, material, k.sign, k.accept, issuer, &policy,
    )
    .map_err(|e| errors.push((format!("{base}.{field}"), e)))
    .ok()
}

/// The algorithm named `name`, or an error at `{base}.algorithm`.
fn algorithm(name: &str, base: &str, errors: &mut Errors) -> Option<jsonwebtoken::Algorithm> {
    let parsed = keys::parse_algorithm(name);
    if parsed.is_none() {
        errors.push((format!("{base}.algorithm"), format!("unknown algorithm {name:?}: expected one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA")));
    }
    parsed
}

/// A token's consumer is `<issuer>#<sub>` for issuers other than the gateway's
/// own: an issuer with `#` could make two identities look alike.
fn issuer_problem(issuer: &str, own: &str) -> Option<String> {
    if issuer.is_empty() {
        return Some("the issuer is empty".into());
    }
    (issuer != own && issuer.contains('#'))
        .then(|| format!("{issuer:?} contains '#': an issuer identifier has no fragment"))
}

fn token_endpoint(te: TokenEndpointFile, errors: &mut Errors) -> TokenEndpointConfig {
    let base = "auth.token_endpoint";
    let plain =
        |p: &String| p.starts_with('/') && !p.contains(['?', '#', ' ', '%']) && !p.contains("//");
    let path = match te.path {
        Some(path) if !plain(&path) => {
            errors.push((
                format!("{base}.path"),
                format!("{path:?} is not a plain request path like /auth/token"),
            ));
            // Reported here; the route it would add would only repeat it.
            None
        }
        path => path,
    };
    let default_ttl = te.default_ttl.map_or(Duration::from_secs(900), |d| d.0);
    let max_ttl = te.max_ttl.map_or(Duration::from_secs(3600), |d| d.0);
    if default_ttl.is_zero() || default_ttl > max_ttl {
        errors.push((
            format!("{base}.default_ttl"),
            "must be greater than 0 and at most `max_ttl`".into(),
        ));
    }
    if max_ttl < Duration::from_secs(1) {
        errors.push((format!("{base}.max_ttl"), "use at least 1s".into()));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let max_concurrent_logins = te.max_concurrent_logins.unwrap_or((cores / 2).max(1));
    if !(1..=256).contains(&max_concurrent_logins) {
        errors.push((
            format!("{base}.max_concurrent_logins"),
            "use 1 to 256".into(),
        ));
    }
    let l = te.lockout.unwrap_or(LockoutFile {
        username_failures: None,
        ip_failures: None,
        window: None,
    });
    let lockout = ThrottleLimits {
        per_username: l.username_failures.unwrap_or(5),
        per_ip: l.ip_failures.unwrap_or(20),
        window: l.window.map_or(Duration::from_secs(300), |d| d.0),
    };
    if lockout.per_username == 0 || lockout.per_ip == 0 || lockout.window.is_zero() {
        errors.push((
            format!("{base}.lockout"),
            "failure counts and window must be greater than 0".into(),
        ));
    }
    TokenEndpointConfig {
        path,
        default_ttl,
        max_ttl,
        max_concurrent_logins,
        lockout,
    }
}

/// Validates `consumers:`.
pub fn consumers(value: Value, errors: &mut Errors) -> Vec<Consumer> {
    let items = match value {
        Value::Sequence(items) => items,
        Value::Null => return Vec::new(),
        _ => {
            errors.push((
                "consumers".into(),
                "expected a list of { username, password_hash, client_cert, scopes }".into(),
            ));
            return Vec::new();
        }
    };
    let mut out: Vec<Consumer> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let base = format!("consumers[{i}]");
        let Some(c) = typed::<ConsumerFile>(item, &base, errors) else {
            continue;
        };
        let before = errors.len();
        if let Some(msg) = username_problem(&c.username) {
            errors.push((format!("{base}.username"), msg));
        } else if out.iter().any(|o| o.username == c.username) {
            errors.push((
                format!("{base}.username"),
                format!("duplicate username {:?}", c.username),
            ));
        }
        if let Some(Err(e)) = c.password_hash.as_deref().map(password::check_phc) {
            errors.push((format!("{base}.password_hash"), e));
        }
        if c.password_hash.is_none() && c.client_cert.is_none() {
            errors.push((
                base.clone(),
                "a consumer needs a `password_hash` (to log in), a `client_cert` (for mutual TLS), or both".to_owned(),
            ));
        }
        let cert = c
            .client_cert
            .and_then(|cc| client_cert(cc, &format!("{base}.client_cert"), errors));
        if let Some(m) = &cert {
            if let Some(other) = out.iter().find(|o| o.client_cert.as_ref() == Some(m)) {
                errors.push((
                    format!("{base}.client_cert"),
                    format!(
                        "the same certificate already identifies {:?}",
                        other.username
                    ),
                ));
            }
        }
        for (j, s) in c.scopes.iter().enumerate() {
            if let Some(msg) = scope_problem(s) {
                errors.push((format!("{base}.scopes[{j}]"), msg));
            }
        }
        if errors.len() == before {
            out.push(Consumer {
                username: c.username,
                password_hash: c.password_hash,
                client_cert: cert,
                scopes: c.scopes,
                disabled: c.disabled,
            });
        }
    }
    out
}

/// Usernames become the token's `sub` and the upstream's `X-Consumer-Id`.
pub fn username_problem(name: &str) -> Option<String> {
    (!valid_id(name))
        .then(|| format!("invalid username {name:?}: use 1-64 letters, digits, '-', '_', '.', '@'"))
}

/// Scopes are space-separated in the token: no spaces or controls inside one.
pub fn scope_problem(scope: &str) -> Option<String> {
    let ok = !scope.is_empty()
        && scope.len() <= 128
        && scope
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
    (!ok).then(|| {
        format!("invalid scope {scope:?}: use visible ASCII characters without spaces or quotes")
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::config::parse;
    use std::path::Path;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn errors(auth: &str, filters: &str) -> Vec<String> {
        let yaml = format!("listen: [{{ address: '127.0.0.1:8080' }}]\n{auth}upstreams:\n  a: {{ targets: ['127.0.0.1:1'] }}\nroutes:\n  - {{ name: r, match: {{ prefix: /r }}, upstream: a, filters: [{filters}] }}\n");
        match parse(&yaml, Path::new("t.yaml"), &|_| None, Default::default()) {
            Ok(_) => Vec::new(),
            Err(e) => {
                e.0.iter()
                    .map(|e| format!("{}: {}", e.path, e.message))
                    .collect()
            }
        }
    }

    #[test]
    fn jwt_without_keys_is_an_error() {
        let e = errors("", "{ jwt: { scopes: [a] } }");
        assert!(
            e.iter()
                .any(|e| e.starts_with("routes[0].filters[0].jwt") && e.contains("auth.keys")),
            "{e:?}"
        );
    }

    #[test]
    fn a_valid_auth_section_passes() {
        let auth = format!("auth:\n  keys: [{{ id: main, algorithm: HS256, secret: '{SECRET}', sign: true }}]\n  token_endpoint: {{}}\n");
        assert_eq!(
            errors(&auth, "{ jwt: { scopes: [a] } }"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn signing_key_rules() {
        let none = format!("auth:\n  keys: [{{ id: main, algorithm: HS256, secret: '{SECRET}' }}]\n  token_endpoint: {{ path: /login }}\n");
        assert!(errors(&none, "")
            .iter()
            .any(|e| e.contains("needs a signing key")));
        let two = format!("auth:\n  keys: [{{ id: a, algorithm: HS256, secret: '{SECRET}', sign: true }}, {{ id: b, algorithm: HS512, secret: '{SECRET}', sign: true }}]\n");
        assert!(errors(&two, "").iter().any(|e| e.contains("exactly one")));
        let short = "auth:\n  keys: [{ id: a, algorithm: HS256, secret: short, sign: true }]\n";
        assert!(errors(short, "")
            .iter()
            .any(|e| e.starts_with("auth.keys[0].secret") && e.contains("at least 32")));
        let unknown =
            format!("auth:\n  keys: [{{ id: a, algorithm: HS256, secret: '{SECRET}' }}]\n");
        assert!(errors(&unknown, "{ jwt: { keys: [b] } }")
            .iter()
            .any(|e| e.contains("unknown key \"b\"")));
    }

    #[test]
    fn consumers_need_argon2id_hashes_and_unique_names() {
        let c = "consumers:\n  - { username: a, password_hash: plain }\n  - { username: 'b c', password_hash: plain }\n";
        let e = errors(c, "");
        assert!(
            e.iter()
                .any(|e| e.starts_with("consumers[0].password_hash")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|e| e.starts_with("consumers[1].username")),
            "{e:?}"
        );
    }
}
