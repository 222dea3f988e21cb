//! Fetching a key set over HTTP(S) with the gateway's outbound client
//! ([`crate::outbound`]: the system's trusted roots, no redirects), bounded in
//! time and size.

use crate::outbound;
use std::time::Duration;

/// A key set larger than this is refused (a real one is a few KiB).
pub const MAX_BODY: usize = 1024 * 1024;
/// The whole exchange.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Why a fetch gave no key set: the `result` label of `fingate_jwks_refresh_total`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// No connection, a TLS failure, or no answer in time.
    Unreachable(String),
    /// An answer other than 200.
    BadStatus(u16),
    /// A 200 whose body is not a usable key set.
    Invalid(String),
}

impl FetchError {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Unreachable(_) => "unreachable",
            Self::BadStatus(_) => "bad_status",
            Self::Invalid(_) => "invalid",
        }
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable(e) => write!(f, "unreachable: {e}"),
            Self::BadStatus(s) => write!(f, "answered {s}, expected 200"),
            Self::Invalid(e) => write!(f, "not a usable key set: {e}"),
        }
    }
}

/// A fetched document and how long its server says it stays fresh.
#[derive(Debug)]
pub struct Document {
    pub body: Vec<u8>,
    /// `Cache-Control: max-age`, when given (and not `no-cache`/`no-store`).
    pub max_age: Option<Duration>,
}

/// GETs `url`: its body (at most [`MAX_BODY`]) and freshness.
pub async fn get(url: &str) -> Result<Document, FetchError> {
    let unreachable = |e: reqwest::Error| FetchError::Unreachable(outbound::describe(&e));
    let client =
        outbound::client().map_err(|e| FetchError::Unreachable(format!("no HTTP client: {e}")))?;
    let mut response = client
        .get(url)
        .timeout(TIMEOUT)
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(unreachable)?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(FetchError::BadStatus(response.status().as_u16()));
    }
    let max_age = response
        .headers()
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(max_age)
        .reduce(|a, b| match (a, b) {
            (Freshness::Never, _) | (_, Freshness::Never) => Freshness::Never,
            (Freshness::For(d), _) | (_, Freshness::For(d)) => Freshness::For(d),
            _ => Freshness::Unsaid,
        });
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(FetchError::Invalid(format!(
                "larger than {} KiB",
                MAX_BODY / 1024
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Document {
        body,
        max_age: match max_age {
            Some(Freshness::For(d)) => Some(d),
            Some(Freshness::Never) => Some(Duration::ZERO),
            _ => None,
        },
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Freshness {
    Unsaid,
    /// `no-cache` or `no-store`: fetch again as soon as allowed.
    Never,
    For(Duration),
}

/// Reads one `Cache-Control` value.
fn max_age(value: &str) -> Freshness {
    let mut out = Freshness::Unsaid;
    for directive in value.split(',').map(str::trim) {
        let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
        if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
            return Freshness::Never;
        }
        if name.eq_ignore_ascii_case("max-age") {
            if let Ok(secs) = arg.trim_matches('"').parse::<u64>() {
                out = Freshness::For(Duration::from_secs(secs));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_is_read_for_max_age() {
        assert_eq!(
            max_age("public, max-age=300"),
            Freshness::For(Duration::from_secs(300))
        );
        assert_eq!(
            max_age("MAX-AGE=\"60\""),
            Freshness::For(Duration::from_secs(60))
        );
        assert_eq!(max_age("public"), Freshness::Unsaid);
        assert_eq!(max_age("max-age=soon"), Freshness::Unsaid);
        assert_eq!(max_age("max-age=300, no-store"), Freshness::Never);
    }
}
