//! `logging.redact`: query parameters and path parameters whose values the access
//! log (and the spans) write as a short keyed hash, e.g. `~5f0c2a9e41d7b3c8`.
//!
//! The hash is HMAC-SHA-256 under a key, cut to 64 bits: one value gives the same
//! hash on every line, so a card number can be followed through the log without
//! being readable, and without the key nobody can test guesses against it (a
//! plain hash of a 16-digit card number is reversed by trying them all). The key
//! is `logging.redact.key` when set — the same on every gateway of a fleet and
//! across restarts — else one made at random when the process starts (hashes then
//! match within one process's log only).

use crate::yaml::{typed, Errors};
use ring::hmac;
use serde::Deserialize;
use serde_yaml::Value;
use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LoggingFile {
    #[serde(default)]
    redact: Option<RedactFile>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RedactFile {
    #[serde(default)]
    query: Vec<String>,
    #[serde(default)]
    path_params: Vec<String>,
    #[serde(default)]
    key: Option<String>,
}

/// Validated `logging:` settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoggingConfig {
    pub redact: Redact,
}

/// What to redact, and the key to hash with.
#[derive(Clone, Default)]
pub struct Redact {
    /// Query parameter names, lowercase (matched without regard to case).
    pub query: Vec<String>,
    /// Path parameter names, as in the routes' `{name}` segments.
    pub path_params: Vec<String>,
    /// The configured key (None: the per-process key).
    key: Option<Arc<(String, hmac::Key)>>,
}

impl PartialEq for Redact {
    fn eq(&self, other: &Self) -> bool {
        let key = |r: &Redact| r.key.as_ref().map(|k| k.0.clone());
        (&self.query, &self.path_params, key(self))
            == (&other.query, &other.path_params, key(other))
    }
}

impl fmt::Debug for Redact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("Redact")
            .field("query", &self.query)
            .field("path_params", &self.path_params)
            .field("key", &self.key.as_ref().map(|_| "<configured>"))
            .finish()
    }
}

/// Shortest `logging.redact.key`.
const MIN_KEY_LEN: usize = 16;

fn process_key() -> &'static hmac::Key {
    static KEY: OnceLock<hmac::Key> = OnceLock::new();
    KEY.get_or_init(|| {
        let bytes: [u8; 32] = rand::random();
        hmac::Key::new(hmac::HMAC_SHA256, &bytes)
    })
}

impl Redact {
    pub fn is_empty(&self) -> bool {
        self.query.is_empty() && self.path_params.is_empty()
    }

    /// `~` and 16 hex digits: the keyed hash of `value`.
    pub fn hash(&self, value: &[u8], out: &mut String) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let key: &hmac::Key = match &self.key {
            Some(k) => &k.1,
            None => process_key(),
        };
        let tag = hmac::sign(key, value);
        out.push('~');
        for &b in &tag.as_ref()[..8] {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }

    /// The query with the values of the listed parameters hashed (borrowed when
    /// none is there). Names and values are compared and hashed percent-decoded
    /// (`+` as a space), so every spelling of one value hashes the same.
    pub fn query<'a>(&self, query: &'a str) -> Cow<'a, str> {
        if self.query.is_empty() {
            return Cow::Borrowed(query);
        }
        let listed = |name: &str| {
            let name = decode(name);
            self.query.iter().any(|q| q.eq_ignore_ascii_case(&name))
        };
        if !query
            .split('&')
            .any(|pair| listed(pair.split_once('=').map_or(pair, |(n, _)| n)))
        {
            return Cow::Borrowed(query);
        }
        let mut out = String::with_capacity(query.len());
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((name, value)) if listed(name) => {
                    out.push_str(name);
                    out.push('=');
                    self.hash(decode(value).as_bytes(), &mut out);
                }
                _ => out.push_str(pair),
            }
        }
        Cow::Owned(out)
    }

    /// Indexes (in `path.split('/')`) of the segments of a route's path pattern
    /// that are listed parameters; empty when the route has none.
    pub fn segments(&self, pattern: &str) -> Box<[usize]> {
        pattern
            .split('/')
            .enumerate()
            .filter(|(_, seg)| {
                seg.strip_prefix('{')
                    .and_then(|s| s.strip_suffix('}'))
                    .is_some_and(|name| self.path_params.iter().any(|p| p == name))
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The routed path with the segments at `segments` hashed.
    pub fn path(&self, path: &str, segments: &[usize]) -> String {
        let mut out = String::with_capacity(path.len() + 8 * segments.len());
        for (i, seg) in path.split('/').enumerate() {
            if i > 0 {
                out.push('/');
            }
            if segments.contains(&i) && !seg.is_empty() {
                self.hash(decode(seg).as_bytes(), &mut out);
            } else {
                out.push_str(seg);
            }
        }
        out
    }
}

/// Percent-decoding with `+` as a space; malformed escapes stay as they are.
fn decode(text: &str) -> Cow<'_, str> {
    if !text.contains(['%', '+']) {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Reads `logging:`; `route_params` are the `{name}`s of every route's path.
pub fn settings<'a>(
    value: Value,
    route_params: impl Iterator<Item = &'a str> + Clone,
    errors: &mut Errors,
) -> LoggingConfig {
    if value.is_null() {
        return LoggingConfig::default();
    }
    let file: LoggingFile = typed(value, "logging", errors).unwrap_or_default();
    let Some(r) = file.redact else {
        return LoggingConfig::default();
    };
    for (i, name) in r.query.iter().enumerate() {
        if name.is_empty()
            || name.contains(['&', '=', '#', '?'])
            || name.contains(char::is_whitespace)
        {
            errors.push((
                format!("logging.redact.query[{i}]"),
                format!("{name:?} is not a query parameter name (no spaces, &, =, ?, #)"),
            ));
        }
    }
    for (i, name) in r.path_params.iter().enumerate() {
        if !route_params.clone().any(|p| p == name) {
            let mut known: Vec<&str> = route_params.clone().collect();
            known.sort_unstable();
            known.dedup();
            let known = if known.is_empty() {
                "no route path has a {name} segment".to_owned()
            } else {
                format!("parameters of the routes: {}", known.join(", "))
            };
            errors.push((
                format!("logging.redact.path_params[{i}]"),
                format!("no route has a {{{name}}} path parameter ({known})"),
            ));
        }
    }
    let key = match r.key {
        Some(k) if k.len() < MIN_KEY_LEN => {
            errors.push((
                "logging.redact.key".into(),
                format!("too short ({} characters): use at least {MIN_KEY_LEN} random characters, e.g. from ${{FINGATE_LOG_KEY}}", k.len()),
            ));
            None
        }
        Some(k) => {
            let key = hmac::Key::new(hmac::HMAC_SHA256, k.as_bytes());
            Some(Arc::new((k, key)))
        }
        None => None,
    };
    LoggingConfig {
        redact: Redact {
            query: r.query.iter().map(|q| q.to_ascii_lowercase()).collect(),
            path_params: r.path_params,
            key,
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn redact(yaml: &str) -> (LoggingConfig, Errors) {
        let mut errors = Errors::new();
        let value: Value = serde_yaml::from_str(yaml).unwrap();
        let c = settings(value, ["id", "account"].into_iter(), &mut errors);
        (c, errors)
    }

    #[test]
    fn listed_query_values_are_hashed_and_the_rest_kept() {
        let (c, e) = redact("{ redact: { query: [card_number, IBAN] } }");
        assert!(e.is_empty(), "{e:?}");
        let r = &c.redact;
        let q = r.query("a=1&card_number=4111111111111111&iban=DE89+3704&x");
        assert!(!q.contains("4111") && !q.contains("DE89"), "{q}");
        assert!(
            q.starts_with("a=1&card_number=~") && q.ends_with("&x"),
            "{q}"
        );
        // Every spelling of one value hashes the same; another value does not.
        let same = r.query("Card_Number=4111%20111");
        let plus = r.query("card_number=4111+111");
        assert_eq!(same.split('=').nth(1), plus.split('=').nth(1));
        assert_ne!(r.query("card_number=1"), r.query("card_number=2"));
        assert!(matches!(r.query("a=1&b=2"), Cow::Borrowed(_)));
        assert_eq!(
            q.split('&').nth(1).unwrap().len(),
            "card_number=~".len() + 16
        );
    }

    #[test]
    fn listed_path_parameters_are_hashed_where_the_pattern_has_them() {
        let (c, _) = redact("{ redact: { path_params: [id], key: 0123456789abcdef } }");
        let r = &c.redact;
        let segments = r.segments("/api/payments/{id}/items/{n}");
        assert_eq!(&*segments, &[3]);
        let p = r.path("/api/payments/PAY-42/items/7", &segments);
        assert!(
            p.starts_with("/api/payments/~") && p.ends_with("/items/7"),
            "{p}"
        );
        assert!(!p.contains("PAY-42"));
        assert_eq!(p, r.path("/api/payments/PAY%2D42/items/7", &segments));
        // The configured key gives the same hash in every process.
        let mut out = String::new();
        r.hash(b"PAY-42", &mut out);
        let (again, _) = redact("{ redact: { path_params: [id], key: 0123456789abcdef } }");
        let mut out2 = String::new();
        again.redact.hash(b"PAY-42", &mut out2);
        assert_eq!(out, out2);
        assert_eq!(c, again);
    }

    #[test]
    fn bad_names_and_keys_are_reported() {
        let (_, e) =
            redact("{ redact: { query: ['card number', ''], path_params: [idd], key: short } }");
        let paths: Vec<&str> = e.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "logging.redact.query[0]",
                "logging.redact.query[1]",
                "logging.redact.path_params[0]",
                "logging.redact.key"
            ]
        );
        assert!(e[2].1.contains("account, id"), "{}", e[2].1);
        let (_, e) = redact("{ redact: { queries: [a] } }");
        assert_eq!(e[0].0, "logging.redact.queries");
    }
}
