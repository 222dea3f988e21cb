//! `auth.keys[]` entries with `jwks_url`: an identity provider's key set, checked
//! here and fetched at run time (`auth/remote.rs`).

use super::{algorithm, issuer_problem, KeyFile};
use crate::auth::keys::{self, Policy};
use crate::auth::remote::{RemoteSource, MAX_FRESH, MIN_FRESH};
use crate::yaml::Errors;
use std::net::IpAddr;
use std::time::Duration;

const DEFAULT_REFRESH: Duration = Duration::from_secs(600);
const DEFAULT_MAX_STALE: Duration = Duration::from_secs(24 * 3600);
const MAX_MAX_STALE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Checks a `jwks_url` entry; None (with errors pushed) when it is not usable.
pub(super) fn source(
    k: KeyFile,
    base: &str,
    policy: &Policy<'_>,
    errors: &mut Errors,
) -> Option<RemoteSource> {
    let before = errors.len();
    for (given, field) in [
        (k.secret.is_some(), "secret"),
        (k.public_key_file.is_some(), "public_key_file"),
        (k.private_key_file.is_some(), "private_key_file"),
    ] {
        if given {
            errors.push((
                format!("{base}.{field}"),
                "a key set from `jwks_url` brings its own keys: remove this, or make it a separate key".into(),
            ));
        }
    }
    if k.sign {
        errors.push((
            format!("{base}.sign"),
            "a fetched key set has only public keys and cannot sign".into(),
        ));
    }
    let url = k.jwks_url.unwrap_or_default();
    if let Some(problem) = url_problem(&url) {
        errors.push((format!("{base}.jwks_url"), problem));
    }
    let algorithm = match k.algorithm.as_deref() {
        Some(name) => match algorithm(name, base, errors) {
            Some(a) if keys::is_hmac(a) => {
                errors.push((format!("{base}.algorithm"), format!("{name} keys are shared secrets, never published in a key set: use RS*, PS*, ES* or EdDSA")));
                None
            }
            a => a,
        },
        None => None,
    };
    let issuer = match k.issuer {
        None => {
            errors.push((
                base.to_owned(),
                "a key set from `jwks_url` needs `issuer`: the `iss` of its tokens, e.g. https://idp.example.com/".into(),
            ));
            String::new()
        }
        Some(i) if i == policy.issuer => {
            errors.push((format!("{base}.issuer"), format!("{i:?} is this gateway's own issuer (auth.issuer): a fetched key set must not mint tokens of local consumers")));
            i
        }
        Some(i) => {
            if let Some(problem) = issuer_problem(&i, policy.issuer) {
                errors.push((format!("{base}.issuer"), problem));
            }
            i
        }
    };
    let refresh = k.refresh.map_or(DEFAULT_REFRESH, |d| d.0);
    if !(MIN_FRESH..=MAX_FRESH).contains(&refresh) {
        errors.push((format!("{base}.refresh"), "use 1m to 24h".into()));
    }
    let max_stale = k.max_stale.map_or(DEFAULT_MAX_STALE, |d| d.0);
    if max_stale < refresh || max_stale > MAX_MAX_STALE {
        errors.push((
            format!("{base}.max_stale"),
            "use at least `refresh` and at most 30d".into(),
        ));
    }
    (errors.len() == before).then(|| RemoteSource {
        id: k.id,
        url,
        issuer,
        audience: k.audience.unwrap_or_else(|| policy.audience.to_owned()),
        algorithm,
        accept: k.accept,
        refresh,
        max_stale,
        leeway: policy.leeway,
    })
}

/// `https://`, or `http://` to a loopback address (an identity provider beside
/// the gateway, or a test): keys fetched in the clear elsewhere could be swapped.
fn url_problem(url: &str) -> Option<String> {
    let parsed = match reqwest::Url::parse(url) {
        Ok(u) => u,
        Err(e) => return Some(format!("{url:?} is not a URL: {e}")),
    };
    if parsed.fragment().is_some() {
        return Some(format!("{url:?}: remove the fragment"));
    }
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => return Some(format!("{url:?} has no host")),
    };
    match parsed.scheme() {
        "https" => None,
        "http" if loopback => None,
        "http" => Some(format!(
            "{url:?}: use https:// (plain http:// only to a loopback address such as 127.0.0.1)"
        )),
        other => Some(format!(
            "{url:?}: the scheme {other}:// is not fetched; use https://"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::url_problem;

    #[test]
    fn only_https_or_loopback_http_urls_are_fetched() {
        for ok in [
            "https://idp.example/.well-known/jwks.json",
            "http://127.0.0.1:8080/jwks",
            "http://127.8.0.1/jwks",
            "http://[::1]:9000/jwks",
            "http://localhost/jwks",
        ] {
            assert_eq!(url_problem(ok), None, "{ok}");
        }
        for (bad, says) in [
            ("http://idp.example/jwks", "use https://"),
            ("http://10.0.0.1/jwks", "use https://"),
            ("ftp://idp.example/jwks", "ftp://"),
            ("idp.example/jwks", "not a URL"),
            ("https://idp.example/jwks#x", "fragment"),
        ] {
            let problem = url_problem(bad).unwrap_or_default();
            assert!(problem.contains(says), "{bad}: {problem}");
        }
    }
}
