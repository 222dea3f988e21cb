//! Cache keys: everything that can change the answer, written so that two
//! different requests can never produce the same key.
//!
//! Each part is length-prefixed (`<len>:<bytes>`), so no value — a query, a header,
//! a consumer name — can smuggle a separator and collide with another key.

use http::{HeaderName, HeaderValue, Method};
use std::fmt::Write;

/// The parts of a request that select a stored response.
#[derive(Debug, Clone, Copy)]
pub struct KeyParts<'a> {
    /// The route's configuration fingerprint: a changed route never sees old entries.
    pub fingerprint: u64,
    pub method: &'a Method,
    pub host: Option<&'a str>,
    /// The client-facing, normalised path (what purge prefixes match).
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The route's `vary` option: each header's value (None when absent).
    pub vary: &'a [(HeaderName, Option<HeaderValue>)],
    /// Set on routes that authenticate: one consumer never sees another's entry.
    pub consumer: Option<&'a str>,
}

fn part(out: &mut String, bytes: &[u8]) {
    let _ = write!(out, "{}:", bytes.len());
    // Every part is UTF-8 or visible ASCII in practice; anything else is escaped so
    // the key stays a `String` without losing information.
    match std::str::from_utf8(bytes) {
        Ok(s) => out.push_str(s),
        Err(_) => bytes.iter().for_each(|b| {
            let _ = write!(out, "\\x{b:02x}");
        }),
    }
}

/// The primary key: what selects a response before its `Vary` is known.
pub fn primary(p: &KeyParts<'_>) -> String {
    let mut out = String::with_capacity(64 + p.path.len() + p.query.map_or(0, str::len));
    let _ = write!(out, "{:016x}|", p.fingerprint);
    // HEAD is answered from the GET entry: the same response without its body.
    let method = if p.method == Method::HEAD {
        &Method::GET
    } else {
        p.method
    };
    part(&mut out, method.as_str().as_bytes());
    let host = p.host.map(str::to_ascii_lowercase).unwrap_or_default();
    part(&mut out, host.as_bytes());
    part(&mut out, p.path.as_bytes());
    part(&mut out, sorted_query(p.query.unwrap_or("")).as_bytes());
    for (name, value) in p.vary {
        part(&mut out, name.as_str().as_bytes());
        match value {
            Some(v) => part(&mut out, v.as_bytes()),
            None => out.push('-'),
        }
    }
    match p.consumer {
        Some(c) => {
            out.push('c');
            part(&mut out, c.as_bytes());
        }
        None => out.push('-'),
    }
    out
}

/// The key of one variant of a response that said `Vary: names`.
pub fn variant(
    primary: &str,
    names: &[HeaderName],
    value_of: impl Fn(&HeaderName) -> Option<HeaderValue>,
) -> String {
    let mut out = String::with_capacity(primary.len() + 32);
    out.push_str(primary);
    out.push_str("|v");
    for name in names {
        part(&mut out, name.as_str().as_bytes());
        match value_of(name) {
            Some(v) => part(&mut out, v.as_bytes()),
            None => out.push('-'),
        }
    }
    out
}

/// The query with its `&`-separated pairs sorted (and empty ones dropped), so
/// `?b=2&a=1` and `?a=1&b=2` share an entry. Pairs stay as sent (not decoded):
/// a service may tell `%20` from `+`, so the cache does too.
pub fn sorted_query(query: &str) -> String {
    let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    pairs.sort_unstable();
    pairs.join("&")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parts<'a>(consumer: Option<&'a str>, query: Option<&'a str>) -> KeyParts<'a> {
        KeyParts {
            fingerprint: 7,
            method: &Method::GET,
            host: Some("API.example.com"),
            path: "/api/accounts/ACC-1001/statement",
            query,
            vary: &[],
            consumer,
        }
    }

    #[test]
    fn consumers_never_share_a_key() {
        let a = primary(&parts(Some("mobile-app"), None));
        let b = primary(&parts(Some("web-app"), None));
        let anon = primary(&parts(None, None));
        assert_ne!(a, b);
        assert_ne!(a, anon);
        assert_ne!(b, anon);
        assert_eq!(a, primary(&parts(Some("mobile-app"), None)));
    }

    #[test]
    fn a_consumer_name_cannot_forge_another_key() {
        // Without length prefixes, "a" + separator + "b" could equal "a|b".
        let tricky = primary(&parts(Some("x-1:y"), None));
        let plain = primary(&parts(Some("x"), Some("1:y")));
        assert_ne!(tricky, plain);
    }

    #[test]
    fn query_order_does_not_matter_but_values_do() {
        let a = primary(&parts(None, Some("b=2&a=1")));
        let b = primary(&parts(None, Some("a=1&b=2&")));
        let c = primary(&parts(None, Some("a=1&b=3")));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(sorted_query("z&&a=%20&a=+"), "a=%20&a=+&z");
    }

    #[test]
    fn head_shares_the_get_entry_and_host_case_is_ignored() {
        let get = primary(&parts(None, None));
        let mut head = parts(None, None);
        head.method = &Method::HEAD;
        head.host = Some("api.example.com");
        assert_eq!(primary(&head), get);
        let mut post = parts(None, None);
        post.method = &Method::POST;
        assert_ne!(primary(&post), get);
    }

    #[test]
    fn vary_option_and_fingerprint_split_keys() {
        let tenant = HeaderName::from_static("x-tenant");
        let one = [(tenant.clone(), Some(HeaderValue::from_static("one")))];
        let two = [(tenant.clone(), Some(HeaderValue::from_static("two")))];
        let none = [(tenant, None)];
        let key = |vary| {
            primary(&KeyParts {
                vary,
                ..parts(None, None)
            })
        };
        assert_ne!(key(&one), key(&two));
        assert_ne!(key(&one), key(&none));
        let mut other_generation = parts(None, None);
        other_generation.fingerprint = 8;
        assert_ne!(primary(&other_generation), primary(&parts(None, None)));
    }

    #[test]
    fn variants_by_response_vary() {
        let base = primary(&parts(None, None));
        let names = [HeaderName::from_static("accept-language")];
        let en = variant(&base, &names, |_| Some(HeaderValue::from_static("en")));
        let de = variant(&base, &names, |_| Some(HeaderValue::from_static("de")));
        let absent = variant(&base, &names, |_| None);
        assert!(en.starts_with(&base));
        assert_ne!(en, de);
        assert_ne!(en, absent);
    }
}
