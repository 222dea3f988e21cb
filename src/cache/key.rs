//! Cache keys: everything that can change the answer, written so that two
//! different requests can never produce the same key.
//!
//! Each part is length-prefixed (`<len>:<bytes>`), so no value — a query, a header,
//! a consumer name — can smuggle a separator and collide with another key.

use http::{HeaderName, HeaderValue, Method};
use std::fmt::Write;

/// Where keys read request headers: `values(name, f)` calls `f` with every value of
/// `name`, in order. A header may be repeated, and a service may read every line
/// (joined into one list), so every line is part of the key, not just the first.
pub type Values<'a> = &'a dyn Fn(&HeaderName, &mut dyn FnMut(&HeaderValue));

/// The parts of a request that select a stored response.
#[derive(Clone, Copy)]
pub struct KeyParts<'a> {
    /// The route's configuration fingerprint: a changed route never sees old entries.
    pub fingerprint: u64,
    pub method: &'a Method,
    pub host: Option<&'a str>,
    /// The client-facing, normalised path (what purge prefixes match).
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The route's `vary` option: headers whose values (read with `values`) are
    /// part of the key.
    pub vary: &'a [HeaderName],
    pub values: Values<'a>,
    /// Set on routes that authenticate: one consumer never sees another's entry.
    pub consumer: Option<&'a str>,
}

impl std::fmt::Debug for KeyParts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyParts")
            .field("method", self.method)
            .field("host", &self.host)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("vary", &self.vary)
            .field("consumer", &self.consumer)
            .finish_non_exhaustive()
    }
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
    for name in p.vary {
        header_values(&mut out, name, p.values);
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

/// A header's name, then each of its values (`+` and the value), then `.`: an
/// absent header, one empty value and two values all write differently, and no
/// value can fake the end of the list (each is length-prefixed).
fn header_values(out: &mut String, name: &HeaderName, values: Values<'_>) {
    part(out, name.as_str().as_bytes());
    values(name, &mut |v| {
        out.push('+');
        part(out, v.as_bytes());
    });
    out.push('.');
}

/// The key of one variant of a response that said `Vary: names`: every value of
/// each named request header counts.
pub fn variant(primary: &str, names: &[HeaderName], values: Values<'_>) -> String {
    let mut out = String::with_capacity(primary.len() + 32);
    out.push_str(primary);
    out.push_str("|v");
    for name in names {
        header_values(&mut out, name, values);
    }
    out
}

/// The query with its `&`-separated pairs ordered by name (and empty ones
/// dropped), so `?b=2&a=1` and `?a=1&b=2` share an entry. The sort is stable and
/// compares names only: the values of a repeated name keep the order they were
/// sent in, because services read `?acct=1&acct=2` as the list [1, 2] (first
/// value wins, or the list is used in order), which is not `?acct=2&acct=1`.
/// Pairs stay as sent (not decoded): a service may tell `%20` from `+`, so the
/// cache does too.
pub fn sorted_query(query: &str) -> String {
    let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    pairs.sort_by(|a, b| param_name(a).cmp(param_name(b)));
    pairs.join("&")
}

fn param_name(pair: &str) -> &str {
    pair.split_once('=').map_or(pair, |(name, _)| name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn no_headers(_: &HeaderName, _: &mut dyn FnMut(&HeaderValue)) {}

    fn parts<'a>(consumer: Option<&'a str>, query: Option<&'a str>) -> KeyParts<'a> {
        KeyParts {
            fingerprint: 7,
            method: &Method::GET,
            host: Some("API.example.com"),
            path: "/api/accounts/ACC-1001/statement",
            query,
            vary: &[],
            values: &no_headers,
            consumer,
        }
    }

    /// A header block as the filter reads one (every line of a name, in order).
    fn block(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in pairs {
            m.append(*n, HeaderValue::from_static(v));
        }
        m
    }

    fn values_of(m: &HeaderMap) -> impl Fn(&HeaderName, &mut dyn FnMut(&HeaderValue)) + '_ {
        move |name, f| m.get_all(name).iter().for_each(&mut *f)
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
        assert_eq!(sorted_query("z&&a=+&a=%20"), "a=+&a=%20&z");
    }

    #[test]
    fn repeated_parameters_keep_their_order() {
        // `?acct=1&acct=2` reads as [1, 2] upstream: a different request from
        // `?acct=2&acct=1`, so never the same entry.
        let one_two = primary(&parts(None, Some("acct=1&acct=2")));
        let two_one = primary(&parts(None, Some("acct=2&acct=1")));
        assert_ne!(one_two, two_one);
        // Other names still move around them; a bare name sorts with its kin.
        assert_eq!(sorted_query("b=1&a=2&b=0&a=1&a"), "a=2&a=1&a&b=1&b=0");
        assert_eq!(sorted_query("ab=1&a=2&a-b=3"), "a=2&a-b=3&ab=1");
        assert_eq!(
            primary(&parts(None, Some("x=9&acct=1&acct=2"))),
            primary(&parts(None, Some("acct=1&x=9&acct=2")))
        );
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
        let tenant = [HeaderName::from_static("x-tenant")];
        let key = |headers: &[(&'static str, &'static str)]| {
            let m = block(headers);
            let values = values_of(&m);
            primary(&KeyParts {
                vary: &tenant,
                values: &values,
                ..parts(None, None)
            })
        };
        let one = key(&[("x-tenant", "one")]);
        assert_ne!(one, key(&[("x-tenant", "two")]));
        assert_ne!(one, key(&[]));
        assert_ne!(key(&[]), key(&[("x-tenant", "")]));
        assert_eq!(one, key(&[("x-other", "z"), ("x-tenant", "one")]));
        // Every line of a repeated header counts, in order.
        let repeated = key(&[("x-tenant", "one"), ("x-tenant", "two")]);
        assert_ne!(repeated, one);
        assert_ne!(repeated, key(&[("x-tenant", "two"), ("x-tenant", "one")]));
        assert_ne!(repeated, key(&[("x-tenant", "one, two")]));
        let mut other_generation = parts(None, None);
        other_generation.fingerprint = 8;
        assert_ne!(primary(&other_generation), primary(&parts(None, None)));
    }

    #[test]
    fn variants_by_response_vary() {
        let base = primary(&parts(None, None));
        let names = [HeaderName::from_static("accept-language")];
        let key = |headers: &[(&'static str, &'static str)]| {
            let m = block(headers);
            let values = values_of(&m);
            variant(&base, &names, &values)
        };
        let en = key(&[("accept-language", "en")]);
        let de = key(&[("accept-language", "de")]);
        let absent = key(&[]);
        assert!(en.starts_with(&base));
        assert_ne!(en, de);
        assert_ne!(en, absent);
        // A second line is a different request: the service may read it (or the
        // joined list) and answer differently, so it must not share `en`'s entry.
        let en_and_more = key(&[("accept-language", "en"), ("accept-language", "xx")]);
        assert_ne!(en_and_more, en);
    }
}
