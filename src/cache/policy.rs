//! What may be stored and for how long (a shared cache's rules, RFC 9111, cut
//! down to what a gateway in front of its own services needs).

use http::{header, HeaderName, HeaderValue, StatusCode};
use std::time::Duration;

/// The directives of one or more `Cache-Control` header values that matter here.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheControl {
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
}

impl CacheControl {
    /// Parses every value given (a header may be repeated). Unknown directives are
    /// ignored; a malformed `max-age` counts as 0 (RFC 9111 §4.2.1: treat as stale).
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> Self {
        let mut cc = Self::default();
        for value in values {
            let Ok(text) = value.to_str() else {
                continue;
            };
            for directive in text.split(',') {
                let (name, arg) = match directive.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (directive.trim(), None),
                };
                let seconds = || arg.and_then(|a| a.parse::<u64>().ok()).unwrap_or(0);
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => cc.no_store = true,
                    // `no-cache="Set-Cookie"` (with fields) is treated like plain no-cache.
                    "no-cache" => cc.no_cache = true,
                    "private" => cc.private = true,
                    "public" => cc.public = true,
                    "max-age" => cc.max_age = Some(seconds()),
                    "s-maxage" => cc.s_maxage = Some(seconds()),
                    _ => {}
                }
            }
        }
        cc
    }
}

/// What the filter knows about the request when the response arrives.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts {
    /// Keyed per consumer: the route authenticated the caller.
    pub authenticated: bool,
    /// The request carried `Authorization` (checked by the service, not the gateway).
    pub authorization: bool,
}

/// The route's cache options that decide storing.
#[derive(Debug, Clone)]
pub struct Rules {
    pub ttl: Duration,
    pub max_body: u64,
    pub statuses: Vec<u16>,
}

/// Why a response was not stored (for debug logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    Status,
    SetCookie,
    VaryStar,
    NoStore,
    NoCache,
    Private,
    Authorization,
    Expired,
    TooLarge,
}

/// Decides whether a response may be stored and for how long.
pub fn decide(
    status: StatusCode,
    headers: &[(HeaderName, HeaderValue)],
    facts: RequestFacts,
    rules: &Rules,
) -> Result<Duration, Skip> {
    if !rules.statuses.contains(&status.as_u16()) {
        return Err(Skip::Status);
    }
    let all = |name: &'static HeaderName| headers.iter().filter(move |(n, _)| n == name);
    // A cookie is one client's session: storing it would hand it to everyone.
    if all(&header::SET_COOKIE).next().is_some() {
        return Err(Skip::SetCookie);
    }
    if all(&header::VARY).any(|(_, v)| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|p| p.trim_ascii() == b"*")
    }) {
        return Err(Skip::VaryStar);
    }
    let cc = CacheControl::parse(all(&header::CACHE_CONTROL).map(|(_, v)| v));
    if cc.no_store {
        return Err(Skip::NoStore);
    }
    // no-cache means "revalidate before every use"; this cache does not revalidate.
    if cc.no_cache {
        return Err(Skip::NoCache);
    }
    // `private` is one user's data: fine when the key holds that user, never otherwise.
    if cc.private && !facts.authenticated {
        return Err(Skip::Private);
    }
    // A service that checked credentials itself answered for one caller; only an
    // explicit shared-cache permission makes that storable (RFC 9111 §3.5).
    if facts.authorization && !facts.authenticated && !cc.public && cc.s_maxage.is_none() {
        return Err(Skip::Authorization);
    }
    let declared = all(&header::CONTENT_LENGTH)
        .next()
        .and_then(|(_, v)| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > rules.max_body) {
        return Err(Skip::TooLarge);
    }
    let ttl = freshness(&cc, headers, rules.ttl);
    if ttl.is_zero() {
        return Err(Skip::Expired);
    }
    Ok(ttl)
}

/// The route's ttl, shortened (never lengthened) by the service's own lifetime:
/// `s-maxage` (meant for shared caches) over `max-age`, minus the `Age` the
/// response already has from a cache further up.
fn freshness(cc: &CacheControl, headers: &[(HeaderName, HeaderValue)], ttl: Duration) -> Duration {
    let Some(lifetime) = cc.s_maxage.or(cc.max_age) else {
        return ttl;
    };
    let age = upstream_age(headers);
    ttl.min(Duration::from_secs(lifetime.saturating_sub(age)))
}

/// The `Age` header of a response, in seconds (0 when absent or malformed).
pub fn upstream_age(headers: &[(HeaderName, HeaderValue)]) -> u64 {
    headers
        .iter()
        .find(|(n, _)| n == header::AGE)
        .and_then(|(_, v)| v.to_str().ok()?.trim().parse().ok())
        .unwrap_or(0)
}

/// The header names of a response's `Vary` (lowercase, deduplicated, sorted).
pub fn vary_names(headers: &[(HeaderName, HeaderValue)]) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = headers
        .iter()
        .filter(|(n, _)| n == header::VARY)
        .filter_map(|(_, v)| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    names
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> Vec<(HeaderName, HeaderValue)> {
        pairs
            .iter()
            .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
            .collect()
    }

    fn rules() -> Rules {
        Rules {
            ttl: Duration::from_secs(30),
            max_body: 1024,
            statuses: vec![200],
        }
    }

    const ANON: RequestFacts = RequestFacts {
        authenticated: false,
        authorization: false,
    };
    const USER: RequestFacts = RequestFacts {
        authenticated: true,
        authorization: true,
    };

    fn decide_ok(
        headers: &[(&'static str, &'static str)],
        facts: RequestFacts,
    ) -> Result<Duration, Skip> {
        decide(StatusCode::OK, &h(headers), facts, &rules())
    }

    #[test]
    fn parses_directives_across_values_and_case() {
        let values = [
            HeaderValue::from_static("Public, MAX-AGE=\"10\""),
            HeaderValue::from_static("s-maxage=5, no-cache"),
        ];
        let cc = CacheControl::parse(&values);
        assert!(cc.public && cc.no_cache && !cc.no_store && !cc.private);
        assert_eq!((cc.max_age, cc.s_maxage), (Some(10), Some(5)));
        assert_eq!(
            CacheControl::parse(&[HeaderValue::from_static("max-age=soon")]).max_age,
            Some(0)
        );
    }

    #[test]
    fn plain_response_is_stored_for_the_route_ttl() {
        assert_eq!(decide_ok(&[], ANON), Ok(Duration::from_secs(30)));
    }

    #[test]
    fn refusals() {
        assert_eq!(
            decide(StatusCode::NOT_FOUND, &[], ANON, &rules()),
            Err(Skip::Status)
        );
        assert_eq!(
            decide_ok(&[("cache-control", "no-store")], USER),
            Err(Skip::NoStore)
        );
        assert_eq!(
            decide_ok(&[("cache-control", "no-cache")], ANON),
            Err(Skip::NoCache)
        );
        assert_eq!(
            decide_ok(&[("set-cookie", "a=b")], USER),
            Err(Skip::SetCookie)
        );
        assert_eq!(
            decide_ok(&[("vary", "Accept, *")], ANON),
            Err(Skip::VaryStar)
        );
        assert_eq!(
            decide_ok(&[("content-length", "1025")], ANON),
            Err(Skip::TooLarge)
        );
        assert_eq!(
            decide_ok(&[("cache-control", "max-age=0")], ANON),
            Err(Skip::Expired)
        );
    }

    #[test]
    fn private_only_when_keyed_per_consumer() {
        assert_eq!(
            decide_ok(&[("cache-control", "private")], ANON),
            Err(Skip::Private)
        );
        assert!(decide_ok(&[("cache-control", "private, max-age=60")], USER).is_ok());
    }

    #[test]
    fn service_checked_credentials_need_explicit_permission() {
        let facts = RequestFacts {
            authenticated: false,
            authorization: true,
        };
        assert_eq!(decide_ok(&[], facts), Err(Skip::Authorization));
        assert!(decide_ok(&[("cache-control", "public")], facts).is_ok());
        assert!(decide_ok(&[("cache-control", "s-maxage=5")], facts).is_ok());
    }

    #[test]
    fn service_lifetime_shortens_but_never_lengthens() {
        let secs = |s| Ok(Duration::from_secs(s));
        assert_eq!(decide_ok(&[("cache-control", "max-age=5")], ANON), secs(5));
        assert_eq!(
            decide_ok(&[("cache-control", "max-age=600")], ANON),
            secs(30)
        );
        assert_eq!(
            decide_ok(&[("cache-control", "max-age=600, s-maxage=7")], ANON),
            secs(7)
        );
        assert_eq!(
            decide_ok(&[("cache-control", "max-age=10"), ("age", "4")], ANON),
            secs(6)
        );
        assert_eq!(
            decide_ok(&[("cache-control", "max-age=10"), ("age", "12")], ANON),
            Err(Skip::Expired)
        );
    }

    #[test]
    fn vary_names_are_normalised() {
        let names = vary_names(&h(&[
            ("vary", "Accept-Language, accept"),
            ("vary", "Accept"),
        ]));
        assert_eq!(
            names,
            [
                HeaderName::from_static("accept"),
                HeaderName::from_static("accept-language")
            ]
        );
    }
}
