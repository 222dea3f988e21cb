//! `cache`: answers repeated reads from memory without touching the service.
//!
//! Request phase: GET/HEAD without a body only; builds the key, serves a fresh
//! entry as a local response (`X-Cache: HIT`, `Age`), or — on a miss — takes the
//! key's fill lock so concurrent misses wait for one upstream request. Response
//! phase: decides whether the answer may be stored ([`policy`]); the body phase
//! collects it and stores it at the end of the stream. Logging (always called)
//! releases the lock of a fill that never completed, so waiters are never stranded.
//!
//! Storage, keys and rules live in [`crate::cache`]; this file is the wiring.

use super::{
    header_name, Filter, FilterDeps, FilterError, Flow, HeaderEdit, LocalResponse, OptionError,
};
use crate::cache::key::{self, KeyParts};
use crate::cache::lock::{self, Acquire, FillLock};
use crate::cache::policy::{self, CacheControl, RequestFacts, Rules};
use crate::cache::{Cache, Entry, Kind, StoredResponse};
use crate::context::RequestContext;
use crate::metrics::metrics;
use crate::units::{DurationStr, SizeStr};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use http::{header, HeaderName, HeaderValue, Method, StatusCode};
use prometheus::IntCounter;
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheOptions {
    /// How long an answer is served from the cache (the service may shorten it).
    pub ttl: DurationStr,
    /// Larger bodies are passed through, not stored. Default 1MiB.
    #[serde(default)]
    pub max_body: Option<SizeStr>,
    /// Request headers whose values are part of the key.
    #[serde(default)]
    pub vary: Vec<String>,
    /// Statuses that may be stored. Default [200].
    #[serde(default)]
    pub statuses: Option<Vec<u16>>,
    /// How long concurrent misses wait for the one filling the key. Default 5s.
    #[serde(default)]
    pub lock_timeout: Option<DurationStr>,
}

const DEFAULT_MAX_BODY: u64 = 1024 * 1024;
const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

pub static X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// Response headers never stored: framing (recomputed on a hit) and the ones
/// made per answer.
fn stored_header(name: &HeaderName) -> bool {
    !(name == header::CONTENT_LENGTH
        || name == header::TRANSFER_ENCODING
        || name == header::CONNECTION
        || name == header::AGE
        || name == X_CACHE)
}

pub struct CacheFilter {
    cache: Arc<Cache>,
    fingerprint: u64,
    rules: Rules,
    vary: Vec<HeaderName>,
    lock_timeout: Duration,
    /// hit, miss, bypass — resolved once per route (None when validating).
    counters: Option<[IntCounter; 3]>,
}

impl std::fmt::Debug for CacheFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheFilter")
            .field("rules", &self.rules)
            .field("vary", &self.vary)
            .field("lock_timeout", &self.lock_timeout)
            .finish()
    }
}

#[derive(Debug, Clone, Copy)]
enum Lookup {
    Hit = 0,
    Miss = 1,
    Bypass = 2,
}

/// Per-request state, in `ctx.extensions`.
#[derive(Debug, Clone)]
enum State {
    Hit,
    Bypass,
    Miss(Box<Fill>),
}

/// A miss on its way to (maybe) being stored.
#[derive(Debug, Clone)]
struct Fill {
    primary: String,
    /// HEAD misses are passed through: they carry no body to store.
    storable: bool,
    /// The request's headers, for the variant key when the response says `Vary`.
    request_headers: Vec<(HeaderName, HeaderValue)>,
    facts: RequestFacts,
    /// Held while this request fills the key; others wait on it.
    lock: Option<Arc<FillLock>>,
    /// Set once the response head is storable; the body collects here.
    pending: Option<Pending>,
}

#[derive(Debug, Clone)]
struct Pending {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    ttl: Duration,
    initial_age: u64,
    vary: Vec<HeaderName>,
    body: BytesMut,
}

impl Fill {
    fn release(&mut self) {
        if let Some(lock) = self.lock.take() {
            lock.release();
        }
    }
}

/// `cache` options, checked: what the runtime builds from.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    rules: Rules,
    vary: Vec<HeaderName>,
    lock_timeout: Duration,
}

impl CacheConfig {
    pub fn check(o: &CacheOptions) -> Result<Self, Vec<OptionError>> {
        let mut errors = Vec::new();
        if o.ttl.0.is_zero() {
            errors.push(OptionError::new("ttl", "must be greater than 0, e.g. 30s"));
        }
        let max_body = o.max_body.map_or(DEFAULT_MAX_BODY, |s| s.0);
        if max_body == 0 {
            errors.push(OptionError::new("max_body", "must be greater than 0"));
        }
        let statuses = o.statuses.clone().unwrap_or_else(|| vec![200]);
        if statuses.is_empty() {
            errors.push(OptionError::new(
                "statuses",
                "list at least one status, e.g. [200]",
            ));
        }
        for (i, s) in statuses.iter().enumerate() {
            // Partial and not-modified answers depend on the request's own headers.
            if !(200..=599).contains(s) || *s == 206 || *s == 304 {
                errors.push(OptionError::new(
                    format!("statuses[{i}]"),
                    format!(
                        "{s} cannot be cached: use final statuses 200-599 other than 206 and 304"
                    ),
                ));
            }
        }
        let vary: Vec<HeaderName> = o
            .vary
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                header_name(&format!("vary[{i}]"), n)
                    .map_err(|e| errors.push(e))
                    .ok()
            })
            .collect();
        let lock_timeout = o.lock_timeout.map_or(DEFAULT_LOCK_TIMEOUT, |d| d.0);
        if lock_timeout > MAX_LOCK_TIMEOUT {
            errors.push(OptionError::new("lock_timeout", "at most 60s"));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            rules: Rules {
                ttl: o.ttl.0,
                max_body,
                statuses,
            },
            vary,
            lock_timeout,
        })
    }
}

impl CacheFilter {
    /// Checks the options and builds the filter (tests; the gateway checks at
    /// validation and builds with [`CacheFilter::build`]).
    pub fn new(o: &CacheOptions, deps: &FilterDeps) -> Result<Self, Vec<OptionError>> {
        Ok(Self::build(&CacheConfig::check(o)?, deps))
    }

    pub fn build(config: &CacheConfig, deps: &FilterDeps) -> Self {
        let counters = deps.route.as_deref().map(|route| {
            let c = |result| {
                metrics()
                    .cache_lookups_total
                    .with_label_values(&[route, result])
            };
            [c("hit"), c("miss"), c("bypass")]
        });
        Self {
            cache: deps.cache.clone(),
            fingerprint: deps.route_fingerprint,
            rules: config.rules.clone(),
            vary: config.vary.clone(),
            lock_timeout: config.lock_timeout,
            counters,
        }
    }

    fn record(&self, ctx: &mut RequestContext, lookup: Lookup) {
        if let Some(c) = &self.counters {
            c[lookup as usize].inc();
        }
        ctx.cache = Some(match lookup {
            Lookup::Hit => "hit",
            Lookup::Miss => "miss",
            Lookup::Bypass => "bypass",
        });
    }

    /// A fresh stored response for this request: the primary entry, or the
    /// variant its `Vary` index points to.
    fn lookup(&self, primary: &str, req: &dyn HeaderEdit) -> Option<Arc<Entry>> {
        let entry = self.cache.get(primary)?;
        match &entry.kind {
            Kind::Response(_) => Some(entry),
            Kind::Vary(names) => {
                let k = key::variant(primary, names, &request_values(req));
                self.cache
                    .get(&k)
                    .filter(|e| matches!(e.kind, Kind::Response(_)))
            }
        }
    }

    fn hit(&self, ctx: &mut RequestContext, entry: &Entry) -> Option<Flow> {
        let Kind::Response(r) = &entry.kind else {
            return None;
        };
        self.record(ctx, Lookup::Hit);
        ctx.extensions.insert(State::Hit);
        let mut headers = Vec::with_capacity(r.headers.len() + 2);
        headers.extend(r.headers.iter().cloned());
        headers.push((X_CACHE.clone(), HeaderValue::from_static("HIT")));
        let age = entry.age(Instant::now(), r.initial_age);
        headers.push((header::AGE, HeaderValue::from(age)));
        Some(Flow::Respond(LocalResponse {
            status: r.status,
            headers,
            body: r.body.clone(),
        }))
    }

    /// On the response head of a miss: keep what may be stored, or let waiters go.
    fn prepare(&self, fill: &mut Fill, resp: &dyn HeaderEdit) {
        if !fill.storable {
            return;
        }
        let Some(status) = resp.status() else {
            fill.release();
            return;
        };
        let mut headers = resp.entries();
        match policy::decide(status, &headers, fill.facts, &self.rules) {
            Ok(ttl) => {
                let vary = policy::vary_names(&headers);
                let initial_age = policy::upstream_age(&headers);
                headers.retain(|(n, _)| stored_header(n));
                // Values parsed from the upstream share its whole read buffer; copy
                // them so an entry holds only what its weight says.
                for (_, v) in &mut headers {
                    *v = HeaderValue::from_bytes(v.as_bytes()).unwrap_or_else(|_| v.clone());
                }
                fill.pending = Some(Pending {
                    status,
                    headers,
                    ttl,
                    initial_age,
                    vary,
                    body: BytesMut::new(),
                });
            }
            Err(reason) => {
                tracing::debug!(?reason, status = status.as_u16(), "response not stored");
                fill.release();
            }
        }
    }

    fn store(&self, fill: &Fill, p: Pending, path: &str) {
        let now = Instant::now();
        let entry = |ttl, kind| Entry {
            fingerprint: self.fingerprint,
            path: path.into(),
            stored_at: now,
            ttl,
            kind,
        };
        let response = Kind::Response(StoredResponse {
            status: p.status,
            headers: p.headers,
            // Exact-size copy: a grown buffer may hold twice its length.
            body: Bytes::copy_from_slice(&p.body),
            initial_age: p.initial_age,
        });
        if p.vary.is_empty() {
            self.cache
                .insert(fill.primary.clone(), entry(p.ttl, response));
            return;
        }
        let values = |n: &HeaderName, f: &mut dyn FnMut(&HeaderValue)| {
            let named = fill.request_headers.iter().filter(|(h, _)| h == n);
            named.for_each(|(_, v)| f(v));
        };
        let variant = key::variant(&fill.primary, &p.vary, &values);
        // The variant first, so a reader that finds the index finds the variant too.
        self.cache.insert(variant, entry(p.ttl, response));
        self.cache.insert(
            fill.primary.clone(),
            entry(self.rules.ttl, Kind::Vary(p.vary)),
        );
    }
}

/// Every value of a request header, as cache keys read them.
fn request_values(req: &dyn HeaderEdit) -> impl Fn(&HeaderName, &mut dyn FnMut(&HeaderValue)) + '_ {
    move |name, f| req.get_all(name).iter().for_each(&mut *f)
}

/// In a filter chain (global, then the route's own), the position of a `cache`
/// that runs before `jwt`: its hits would be answered before the token is checked
/// and keyed without the consumer. Validation refuses that order.
pub fn cache_before_auth(names: &[&str]) -> Option<usize> {
    let cache = names.iter().position(|n| *n == "cache")?;
    names[cache..].contains(&"jwt").then_some(cache)
}

#[async_trait]
impl Filter for CacheFilter {
    async fn request(
        &self,
        req: &mut dyn HeaderEdit,
        ctx: &mut RequestContext,
    ) -> Result<Flow, FilterError> {
        let cc = CacheControl::parse(req.get(&header::CACHE_CONTROL));
        let readable = ctx.method == Method::GET || ctx.method == Method::HEAD;
        // A GET or HEAD with a body is forwarded with it, and a service may answer
        // by the body; the key has no body in it, so storing that answer would
        // hand it to every plain GET of the same URL (and a hit would answer the
        // body with someone else's response).
        if !readable || cc.no_store || ctx.has_body {
            self.record(ctx, Lookup::Bypass);
            ctx.extensions.insert(State::Bypass);
            return Ok(Flow::Continue);
        }
        let primary = key::primary(&KeyParts {
            fingerprint: self.fingerprint,
            method: &ctx.method,
            host: ctx.host.as_deref(),
            path: &ctx.path,
            query: ctx.query.as_deref(),
            vary: &self.vary,
            values: &request_values(req),
            consumer: ctx.consumer.as_deref(),
        });
        // `no-cache` from the client: fetch anew and refresh the entry.
        let revalidate = cc.no_cache;
        if !revalidate {
            if let Some(flow) = self.lookup(&primary, req).and_then(|e| self.hit(ctx, &e)) {
                return Ok(flow);
            }
        }
        let storable = ctx.method == Method::GET;
        let mut lock = None;
        if storable && !revalidate {
            match self.cache.locks().acquire(&primary) {
                Acquire::Leader(l) => lock = Some(l),
                Acquire::Wait(rx) => {
                    // Released (stored, not storable, failed) or timed out: look
                    // again, and on a miss go upstream without waiting twice.
                    lock::wait(rx, self.lock_timeout).await;
                    if let Some(flow) = self.lookup(&primary, req).and_then(|e| self.hit(ctx, &e)) {
                        return Ok(flow);
                    }
                }
            }
        }
        self.record(ctx, Lookup::Miss);
        let fill = Fill {
            primary,
            storable,
            request_headers: if storable { req.entries() } else { Vec::new() },
            facts: RequestFacts {
                authenticated: ctx.consumer.is_some(),
                authorization: req.get(&header::AUTHORIZATION).is_some(),
            },
            lock,
            pending: None,
        };
        ctx.extensions.insert(State::Miss(Box::new(fill)));
        Ok(Flow::Continue)
    }

    fn response(&self, resp: &mut dyn HeaderEdit, ctx: &mut RequestContext) {
        let label = match ctx.extensions.get_mut::<State>() {
            None | Some(State::Hit) => return,
            Some(State::Bypass) => "BYPASS",
            Some(State::Miss(fill)) => {
                self.prepare(fill, resp);
                "MISS"
            }
        };
        resp.set(X_CACHE.clone(), HeaderValue::from_static(label));
    }

    fn response_body(&self, body: &Option<Bytes>, end_of_stream: bool, ctx: &mut RequestContext) {
        let Some(State::Miss(fill)) = ctx.extensions.get_mut::<State>() else {
            return;
        };
        let Some(p) = fill.pending.as_mut() else {
            return;
        };
        if let Some(chunk) = body {
            if (p.body.len() + chunk.len()) as u64 > self.rules.max_body {
                tracing::debug!(
                    max_body = self.rules.max_body,
                    "response body too large to store"
                );
                fill.pending = None;
                fill.release();
                return;
            }
            p.body.extend_from_slice(chunk);
        }
        if end_of_stream {
            if let Some(p) = fill.pending.take() {
                self.store(fill, p, &ctx.path);
            }
            fill.release();
        }
    }

    fn logging(&self, ctx: &RequestContext, _status: u16) {
        // A fill that did not complete (error, aborted client, local answer).
        if let Some(State::Miss(fill)) = ctx.extensions.get::<State>() {
            if let Some(lock) = &fill.lock {
                lock.release();
            }
        }
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
