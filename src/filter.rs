//! The plug-in seam: every per-route feature (auth, rate limits, caching, header
//! transforms) is a [`Filter`] built from its YAML options.
//!
//! A filter sees only headers (through [`HeaderEdit`]) and the per-request
//! [`RequestContext`], never Pingora types, so each filter is unit-tested without a
//! socket and survives Pingora's API changes. Adding a filter means adding one
//! module below and one variant to [`FilterFile`].

pub mod cache;
pub mod chain;
pub mod headers;
pub mod jwt;
pub mod rate_limit;
pub mod request_id;

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
        }
    }

    /// Builds the runtime filter from its options and the shared parts it may use.
    /// Never does I/O; errors name the offending option.
    pub fn build(&self, deps: &FilterDeps) -> Result<Arc<dyn Filter>, Vec<OptionError>> {
        Ok(match self {
            Self::Headers(o) => Arc::new(headers::HeadersFilter::new(o)?),
            Self::Jwt(o) => Arc::new(jwt::JwtFilter::new(o, deps)?),
            Self::RequestId(o) => Arc::new(request_id::RequestIdFilter::new(o)?),
            Self::RateLimit(o) => Arc::new(rate_limit::RateLimitFilter::new(o, deps)?),
            Self::Cache(o) => Arc::new(cache::CacheFilter::new(o, deps)?),
        })
    }

    /// Checks the options (config validation): a build against throwaway parts.
    pub fn check(&self) -> Result<(), Vec<OptionError>> {
        self.build(&FilterDeps::for_validation()).map(|_| ())
    }

    /// Checks the options against validation parts that carry the config's keys.
    pub fn check_with(&self, deps: &FilterDeps) -> Result<(), Vec<OptionError>> {
        self.build(deps).map(|_| ())
    }
}

/// What a filter may hold on to besides its options: shared state and, per route,
/// the route it runs on.
#[derive(Debug, Clone)]
pub struct FilterDeps {
    pub store: Arc<dyn Store>,
    /// The route's name (None for validation of global filters).
    pub route: Option<Arc<str>>,
    /// The response cache (process-wide, kept across reloads).
    pub cache: Arc<crate::cache::Cache>,
    /// Changes whenever the route's configuration does: cache entries are keyed by it.
    pub route_fingerprint: u64,
    /// `auth:` settings and keys (for the `jwt` filter).
    pub auth: Arc<crate::auth::AuthConfig>,
}

impl FilterDeps {
    /// Parts that do no I/O, for checking options while validating a config.
    pub fn for_validation() -> Self {
        Self {
            store: Arc::new(crate::store::MemoryStore::default()),
            route: None,
            cache: validation_cache(),
            route_fingerprint: 0,
            auth: Arc::default(),
        }
    }
}

/// A tiny cache for validation builds, made once (nothing is ever stored in it).
fn validation_cache() -> Arc<crate::cache::Cache> {
    static CACHE: std::sync::OnceLock<Arc<crate::cache::Cache>> = std::sync::OnceLock::new();
    CACHE
        .get_or_init(|| Arc::new(crate::cache::Cache::new(64 * 1024)))
        .clone()
}

/// Read and write access to a header block (request or response).
///
/// Implemented by the proxy for Pingora's header types (which keep header-name case
/// and must be edited through their own methods) and by `http::HeaderMap` for tests.
pub trait HeaderEdit: Send {
    fn get(&self, name: &HeaderName) -> Option<&HeaderValue>;
    /// Every value of `name`, in order (a header may be repeated).
    fn get_all(&self, name: &HeaderName) -> http::header::GetAll<'_, HeaderValue>;
    /// Replaces every value of `name` with `value`.
    fn set(&mut self, name: HeaderName, value: HeaderValue);
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
