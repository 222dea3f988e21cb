//! What the gateway knows about one request, shared by the proxy, the filters and
//! the access log.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// Per-request facts. Filters read it and add to it (the `jwt` filter sets the
/// consumer, the cache filter its result); the access log writes it out.
#[derive(Debug)]
pub struct RequestContext {
    /// From `X-Request-Id` (with the `request_id` filter) or made by the gateway.
    pub request_id: String,
    /// The matched route's name; `None` while unmatched.
    pub route: Option<Arc<str>>,
    pub method: http::Method,
    /// The request path as routed (before any rewrite).
    pub path: String,
    /// The query string as sent (without `?`), on matched routes.
    pub query: Option<String>,
    pub host: Option<String>,
    pub client_ip: Option<IpAddr>,
    /// The request declares a body (a non-zero `Content-Length`, or chunked), as
    /// the edge checks read its framing.
    pub has_body: bool,
    /// The authenticated caller (the token's `sub`), when a filter established one.
    pub consumer: Option<String>,
    /// `hit` / `miss` / `bypass` when a cache filter ran.
    pub cache: Option<&'static str>,
    /// The upstream answered (the response phase sees its answer, not one the
    /// gateway made).
    pub upstream_responded: bool,
    /// A filter needs the upstream's whole answer even if the client leaves
    /// (`idempotency`, once it holds a key): the proxy then runs the upstream
    /// exchange apart from the client connection (`proxy/detach.rs`).
    pub detach: bool,
    pub started: Instant,
    /// Per-request state of filters, by type (e.g. a cache entry being filled).
    pub extensions: http::Extensions,
}

impl RequestContext {
    pub fn new(method: http::Method, path: String) -> Self {
        Self {
            request_id: new_request_id(),
            route: None,
            method,
            path,
            query: None,
            host: None,
            client_ip: None,
            has_body: false,
            consumer: None,
            cache: None,
            upstream_responded: false,
            detach: false,
            started: Instant::now(),
            extensions: http::Extensions::new(),
        }
    }

    /// The route label for metrics and logs: bounded, never a raw path.
    pub fn route_label(&self) -> &str {
        self.route.as_deref().unwrap_or("unmatched")
    }
}

/// A fresh request id: a random (v4) UUID, hyphenated.
///
/// The bytes come from the thread-local RNG (seeded once from the OS) rather than
/// `Uuid::new_v4`, which makes a `getrandom` system call for every request.
pub fn new_request_id() -> String {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    // Encoding into a buffer skips `Display`'s formatting machinery.
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    id.hyphenated().encode_lower(&mut text).to_owned()
}

#[cfg(test)]
mod tests {
    use super::new_request_id;

    #[test]
    fn request_ids_are_distinct_v4_uuids() {
        let (a, b) = (new_request_id(), new_request_id());
        assert_ne!(a, b);
        let parsed = uuid::Uuid::parse_str(&a).unwrap_or_default();
        assert_eq!(parsed.get_version_num(), 4, "{a}");
        assert_eq!(a.len(), 36);
    }
}
