//! The plug-in seam: every per-route feature (auth, rate limits, caching, header
//! transforms) is a [`Filter`] built from its YAML options.
//!
//! A filter sees only headers (through [`HeaderEdit`]) and the per-request
//! [`RequestContext`], never Pingora types, so each filter is unit-tested without a
//! socket and survives Pingora's API changes. Adding a filter means adding one
//! module below and one variant to [`FilterFile`].

pub mod cache;
pub mod chain;
pub mod cors;
pub mod headers;
pub mod idempotency;
pub mod ip_filter;
pub mod jwt;
pub mod mtls;
pub mod rate_limit;
pub mod request_id;
pub mod validate;

#[cfg(test)]
mod test_resp;

use crate::context::RequestContext;
use crate::error::GatewayError;
pub use crate::error::LocalResponse;
use crate::store::Store;
use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use serde::Deserialize;
use std::fmt::Debug;
use std::sync::Arc;

/// A filter as written in YAML: the key names the filter, the value holds its options.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterFile {
    Headers(headers::HeadersOptions),
    Jwt(jwt::JwtOptions),
    RequestId(request_id::RequestIdOptions),
    RateLimit(rate_limit::RateLimitOptions),
    Cache(cache::CacheOptions),
    IpFilter(ip_filter::IpFilterOptions),
    Cors(cors::CorsOptions),
    Validate(validate::ValidateOptions),
    Mtls(mtls::MtlsOptions),
    Idempotency(idempotency::IdempotencyOptions),
}

/// A problem in a filter's options: the path below the filter's key and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionError {
    pub path: String,
    pub message: String,
}

impl OptionError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl FilterFile {
    /// The YAML key, also used in logs and `/admin/routes`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Headers(_) => "headers",
            Self::Jwt(_) => "jwt",
            Self::RequestId(_) => "request_id",
            Self::RateLimit(_) => "rate_limit",
            Self::Cache(_) => "cache",
            Self::IpFilter(_) => "ip_filter",
            Self::Cors(_) => "cors",
            Self::Validate(_) => "validate",
            Self::Mtls(_) => "mtls",
            Self::Idempotency(_) => "idempotency",
        }
    }

    /// Checks the options against the config (the `jwt` filter's keys, the folder
    /// `validate`'s schema files are read from); errors name the offending option.
    /// Filters that need no runtime parts are built here, once.
    pub fn check(&self, check: &FilterCheck<'_>) -> Result<CheckedFilter, Vec<OptionError>> {
        let auth = check.auth;
        Ok(match self {
            Self::Headers(o) => CheckedFilter::Ready(Arc::new(headers::HeadersFilter::new(o)?)),
            Self::RequestId(o) => {
                CheckedFilter::Ready(Arc::new(request_id::RequestIdFilter::new(o)?))
            }
            Self::Jwt(o) => CheckedFilter::Jwt(jwt::JwtConfig::check(o, auth)?),
            Self::RateLimit(o) => CheckedFilter::RateLimit(rate_limit::RateLimitConfig::check(o)?),
            Self::Cache(o) => CheckedFilter::Cache(cache::CacheConfig::check(o)?),
            Self::IpFilter(o) => CheckedFilter::Ready(Arc::new(ip_filter::IpFilter::new(o)?)),
            Self::Cors(o) => CheckedFilter::Cors(cors::CorsConfig::check(o)?),
            Self::Validate(o) => {
                CheckedFilter::Ready(Arc::new(validate::ValidateFilter::new(o, check)?))
            }
            Self::Mtls(mtls::MtlsOptions {}) => CheckedFilter::Mtls,
            Self::Idempotency(o) => {
                CheckedFilter::Idempotency(idempotency::IdempotencyConfig::check(o)?)
            }
        })
    }

    /// Checks and builds in one step (tests and benchmarks; files relative to the
    /// working directory).
    pub fn build(&self, deps: &FilterDeps) -> Result<Arc<dyn Filter>, Vec<OptionError>> {
        let check = FilterCheck {
            auth: &deps.auth,
            base_dir: std::path::Path::new("."),
        };
        Ok(self.check(&check)?.build(deps))
    }
}

/// What filter options are checked against: the config's `auth` section and the
/// folder of the config file (relative file names are read from there).
#[derive(Debug, Clone, Copy)]
pub struct FilterCheck<'a> {
    pub auth: &'a crate::auth::AuthConfig,
    pub base_dir: &'a std::path::Path,
}

/// A filter's options, checked by validation: the runtime builds the filter from
/// it with its store, cache and route, which cannot fail.
#[derive(Debug, Clone)]
pub enum CheckedFilter {
    /// Needs nothing from the runtime: built once, shared by every route.
    Ready(Arc<dyn Filter>),
    Jwt(jwt::JwtConfig),
    RateLimit(rate_limit::RateLimitConfig),
    Cache(cache::CacheConfig),
    Cors(cors::CorsConfig),
    /// Built with the consumers known by their client certificate.
    Mtls,
    /// Built with the store and the route's upstream timeouts.
    Idempotency(idempotency::IdempotencyConfig),
}

impl CheckedFilter {
    pub fn build(&self, deps: &FilterDeps) -> Arc<dyn Filter> {
        match self {
            Self::Ready(filter) => filter.clone(),
            Self::Jwt(c) => Arc::new(jwt::JwtFilter::build(c, deps)),
            Self::RateLimit(c) => Arc::new(rate_limit::RateLimitFilter::build(c, deps)),
            Self::Cache(c) => Arc::new(cache::CacheFilter::build(c, deps)),
            Self::Cors(c) => Arc::new(cors::CorsFilter::build(c, deps.route_methods.as_deref())),
            Self::Mtls => Arc::new(mtls::MtlsFilter::new(deps.client_certs.clone())),
            Self::Idempotency(c) => Arc::new(idempotency::IdempotencyFilter::build(c, deps)),
        }
    }
}

/// What a filter may hold on to besides its options: shared state and, per route,
/// the route it runs on.
#[derive(Debug, Clone)]
pub struct FilterDeps {
    pub store: Arc<dyn Store>,
    /// The route's name (None outside a route: standalone builds).
    pub route: Option<Arc<str>>,
    /// The response cache (process-wide, kept across reloads).
    pub cache: Arc<crate::cache::Cache>,
    /// Changes whenever the route's configuration does: cache entries are keyed by it.
    pub route_fingerprint: u64,
    /// `auth:` settings and keys (for the `jwt` filter).
    pub auth: Arc<crate::auth::AuthConfig>,
    /// The remote key sets of this runtime (for the `jwt` filter).
    pub remote_keys: Arc<crate::auth::remote::RemoteKeySets>,
    /// The route's methods (None: any), for `cors`'s default.
    pub route_methods: Option<Arc<[http::Method]>>,
    /// Consumers known by their client certificate (for the `mtls` filter).
    pub client_certs: Arc<mtls::ClientCertIndex>,
    /// The longest a request of the route waits for its upstream's answer to
    /// begin: every attempt's connect timeout plus the read timeout (None: no
    /// upstream). The `idempotency` filter holds a key this long, plus a margin.
    pub upstream_wait: Option<std::time::Duration>,
}

impl FilterDeps {
    /// Standalone parts that do no I/O (a memory store, a small cache, no keys),
    /// for building a filter outside a gateway: tests and benchmarks.
    pub fn standalone() -> Self {
        Self {
            store: Arc::new(crate::store::MemoryStore::default()),
            route: None,
            cache: standalone_cache(),
            route_fingerprint: 0,
            auth: Arc::default(),
            remote_keys: Arc::default(),
            route_methods: None,
            client_certs: Arc::default(),
            upstream_wait: None,
        }
    }
}

/// A tiny cache for standalone builds, made once.
fn standalone_cache() -> Arc<crate::cache::Cache> {
    static CACHE: std::sync::OnceLock<Arc<crate::cache::Cache>> = std::sync::OnceLock::new();
    CACHE
        .get_or_init(|| Arc::new(crate::cache::Cache::new(64 * 1024)))
        .clone()
}

/// Who is calling, as the authenticating filters (`jwt`, `mtls`) tell the upstream.
pub const CONSUMER_ID: &str = "x-consumer-id";
/// The caller's scopes, space-separated.
pub const CONSUMER_SCOPES: &str = "x-consumer-scopes";

/// Read and write access to a header block (request or response).
///
/// Implemented by the proxy for Pingora's header types (which must be edited
/// through their own methods) and by `http::HeaderMap` for tests.
pub trait HeaderEdit: Send {
    fn get(&self, name: &HeaderName) -> Option<&HeaderValue>;
    /// Every value of `name`, in order (a header may be repeated).
    fn get_all(&self, name: &HeaderName) -> http::header::GetAll<'_, HeaderValue>;
    /// Replaces every value of `name` with `value`.
    fn set(&mut self, name: HeaderName, value: HeaderValue);
    /// [`Self::set`] for a name written in the code, lowercase: Pingora's heads
    /// take it as it is, without first copying it out of a `HeaderName`.
    fn set_static(&mut self, name: &'static str, value: HeaderValue) {
        if let Ok(name) = HeaderName::from_lowercase(name.as_bytes()) {
            self.set(name, value);
        }
    }
    /// Adds a value, keeping existing ones.
    fn append(&mut self, name: HeaderName, value: HeaderValue);
    /// Removes every value of `name`; returns the first one removed.
    fn remove(&mut self, name: &HeaderName) -> Option<HeaderValue>;
    /// Every header, in order, repeated names included (for copying a block).
    fn entries(&self) -> Vec<(HeaderName, HeaderValue)>;
    /// The status of a response block; None for a request.
    fn status(&self) -> Option<StatusCode> {
        None
    }
    /// How many values `name` has (e.g. to refuse two `Authorization` headers).
    fn count(&self, name: &HeaderName) -> usize {
        usize::from(self.get(name).is_some())
    }
}

impl HeaderEdit for http::HeaderMap {
    fn get(&self, name: &HeaderName) -> Option<&HeaderValue> {
        http::HeaderMap::get(self, name)
    }
    fn get_all(&self, name: &HeaderName) -> http::header::GetAll<'_, HeaderValue> {
        http::HeaderMap::get_all(self, name)
    }
    fn set(&mut self, name: HeaderName, value: HeaderValue) {
        self.insert(name, value);
    }
    fn append(&mut self, name: HeaderName, value: HeaderValue) {
        http::HeaderMap::append(self, name, value);
    }
    fn remove(&mut self, name: &HeaderName) -> Option<HeaderValue> {
        http::HeaderMap::remove(self, name)
    }
    fn entries(&self) -> Vec<(HeaderName, HeaderValue)> {
        self.iter().map(|(n, v)| (n.clone(), v.clone())).collect()
    }
    fn count(&self, name: &HeaderName) -> usize {
        self.get_all(name).iter().count()
    }
}

/// What a filter's request phase decided.
#[derive(Debug)]
pub enum Flow {
    /// Go on to the next filter, then the upstream.
    Continue,
    /// Answer the client now; later filters and the upstream are skipped.
    Respond(LocalResponse),
    /// Refuse the request; the gateway renders the error (as `Respond` otherwise).
    Reject(GatewayError),
}

impl Flow {
    /// The answer to send, rendered for the request `request_id` (None: go on).
    pub fn into_answer(self, request_id: &str) -> Option<LocalResponse> {
        match self {
            Flow::Continue => None,
            Flow::Respond(local) => Some(local),
            Flow::Reject(e) => Some(e.into_response(Some(request_id))),
        }
    }
}

/// A filter could not decide (e.g. its store is unreachable). Its own options say
/// whether that allows the request or refuses it; the proxy answers 500 otherwise.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(pub String);

/// One plug-in. Every phase has a default that does nothing, so a filter implements
/// only the phases it needs. Phases run in YAML order on the way in and in reverse
/// order on the way out.
#[async_trait]
pub trait Filter: Send + Sync + Debug {
    /// The request arrived and matched this filter's route. May answer directly.
    async fn request(
        &self,
        _req: &mut dyn HeaderEdit,
        _ctx: &mut RequestContext,
    ) -> Result<Flow, FilterError> {
        Ok(Flow::Continue)
    }

    /// The request is about to be sent upstream (after the path rewrite).
    fn upstream_request(&self, _req: &mut dyn HeaderEdit, _ctx: &RequestContext) {}

    /// A response is about to be sent to the client: from the upstream, or a local
    /// one made by this filter or a later one.
    fn response(&self, _resp: &mut dyn HeaderEdit, _ctx: &mut RequestContext) {}

    /// A piece of the upstream response body (`None` with `end_of_stream` at the end).
    /// Not called for local responses.
    fn response_body(
        &self,
        _body: &Option<Bytes>,
        _end_of_stream: bool,
        _ctx: &mut RequestContext,
    ) {
    }

    /// A CORS preflight for this filter's route: the answer, if this filter
    /// answers preflights. Asked before any request phase, and never forwarded.
    fn preflight(&self, _req: &dyn HeaderEdit, _ctx: &RequestContext) -> Option<LocalResponse> {
        None
    }

    /// The largest request body this filter must see whole before the request
    /// goes upstream (None: it reads no body).
    fn body_limit(&self) -> Option<u64> {
        None
    }

    /// The whole request body (for filters with a [`Filter::body_limit`]), read
    /// after every filter's request phase and before anything is sent upstream.
    /// May answer, as the request phase may (`idempotency` claims its key here).
    async fn request_body(
        &self,
        _body: &[u8],
        _ctx: &mut RequestContext,
    ) -> Result<Flow, FilterError> {
        Ok(Flow::Continue)
    }

    /// Whether this filter has a [`Filter::settle`] phase (asked once, when its
    /// chain is built, so other routes pay nothing for the phase).
    fn settles(&self) -> bool {
        false
    }

    /// Settles what the request phases left open (`idempotency` stores its answer
    /// or releases its key), once per request that entered the filter; may do
    /// I/O. It runs when the upstream's answer has been read to its end or the
    /// exchange failed: for a request the proxy runs detached from its client
    /// ([`RequestContext::detach`]), before the client gets the answer's last
    /// byte; otherwise at the end of the exchange, before [`Filter::logging`].
    async fn settle(&self, _ctx: &mut RequestContext) {}

    /// The exchange is over (also after errors). For accounting and deferred work.
    fn logging(&self, _ctx: &RequestContext, _status: u16) {}
}

/// Parses a header name from options, with a message that says where it came from.
pub(crate) fn header_name(path: &str, name: &str) -> Result<HeaderName, OptionError> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| OptionError::new(path, format!("invalid header name {name:?}")))
}

/// Parses a header value from options.
pub(crate) fn header_value(path: &str, value: &str) -> Result<HeaderValue, OptionError> {
    HeaderValue::from_str(value).map_err(|_| {
        OptionError::new(
            path,
            format!("invalid header value {value:?}: use visible ASCII characters"),
        )
    })
}
