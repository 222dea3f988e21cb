//! `rate_limit`: `limit` requests per `per` (plus `burst`) for each value of `key`,
//! counted in the store so a fleet sharing Redis shares one allowance.
//!
//! Every answer on the route carries `RateLimit-Limit` / `-Remaining` / `-Reset`
//! (the tightest of the route's limits); a refusal is 429 `rate_limited` with
//! `Retry-After`. Keys already refused are answered from memory until they may pass
//! again ([`refused`]); when the store fails, `on_store_error` picks a local
//! limiter with the same settings (`allow`) or 503 `store_unavailable` (`deny`).

mod coalesce;
mod refused;

use super::{header_name, Filter, FilterDeps, FilterError, Flow, HeaderEdit, OptionError};
use crate::context::RequestContext;
use crate::error::{ErrorCode, GatewayError};
use crate::metrics::metrics;
use crate::store::StoreBackend;
use crate::store::{Algorithm, Decision, MemoryStore, Rule, Store};
use crate::units::DurationStr;
use async_trait::async_trait;
use coalesce::Coalescer;
use http::{HeaderName, HeaderValue};
use prometheus::IntCounter;
use refused::RefusedKeys;
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MIN_PER: Duration = Duration::from_millis(100);
const MAX_PER: Duration = Duration::from_secs(30 * 24 * 3600);
const MAX_LIMIT: u32 = 1_000_000_000;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitOptions {
    /// `consumer` | `ip` | `route` | `header:<Name>`, or a list of them combined.
    pub key: KeyOption,
    pub limit: u32,
    pub per: DurationStr,
    #[serde(default)]
    pub burst: u32,
    #[serde(default)]
    pub algorithm: Algorithm,
    #[serde(default)]
    pub on_store_error: OnStoreError,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum KeyOption {
    One(String),
    Combined(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnStoreError {
    /// Decide with a local in-process limiter (same settings, this instance only).
    #[default]
    Allow,
    /// Answer 503 `store_unavailable`.
    Deny,
}

#[derive(Debug, Clone, PartialEq)]
enum KeyPart {
    Consumer,
    Ip,
    Route,
    Header(HeaderName),
}

/// The tightest limit seen so far on this request, for the response headers.
#[derive(Debug, Clone, Copy)]
struct Reported {
    limit: i64,
    remaining: u64,
    reset: Duration,
}

#[derive(Debug)]
pub struct RateLimitFilter {
    rule: Rule,
    parts: Vec<KeyPart>,
    /// `fingate:rl:{<rule tag>` — the key's fixed start; the hash tag closes after the parts.
    prefix: String,
    on_store_error: OnStoreError,
    store: Arc<dyn Store>,
    fallback: MemoryStore,
    refused: RefusedKeys,
    /// With a shared store: concurrent requests on one key share a store call.
    /// (The memory store decides in place; there is no round trip to save.)
    coalescer: Option<Coalescer>,
    route: Option<Arc<str>>,
    /// allowed, limited — resolved once per route.
    counters: Option<(IntCounter, IntCounter)>,
}

fn parse_part(path: &str, raw: &str) -> Result<KeyPart, OptionError> {
    match raw {
        "consumer" => Ok(KeyPart::Consumer),
        "ip" => Ok(KeyPart::Ip),
        "route" => Ok(KeyPart::Route),
        _ => match raw.strip_prefix("header:") {
            Some(name) if !name.is_empty() => header_name(path, name).map(KeyPart::Header),
            _ => Err(OptionError::new(
                path,
                format!("unknown key {raw:?}: expected consumer, ip, route or header:<Name>"),
            )),
        },
    }
}

/// `rate_limit` options, checked: what the runtime builds from.
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    rule: Rule,
    parts: Vec<KeyPart>,
    on_store_error: OnStoreError,
}

impl RateLimitConfig {
    pub fn check(o: &RateLimitOptions) -> Result<Self, Vec<OptionError>> {
        let mut errors = Vec::new();
        let raw: Vec<(String, &String)> = match &o.key {
            KeyOption::One(k) => vec![("key".to_owned(), k)],
            KeyOption::Combined(ks) => ks
                .iter()
                .enumerate()
                .map(|(i, k)| (format!("key[{i}]"), k))
                .collect(),
        };
        if raw.is_empty() {
            errors.push(OptionError::new(
                "key",
                "an empty list: name at least one of consumer, ip, route, header:<Name>",
            ));
        }
        let mut parts = Vec::new();
        for (path, k) in raw {
            match parse_part(&path, k) {
                Ok(p) if parts.contains(&p) => {
                    errors.push(OptionError::new(path, format!("{k:?} is listed twice")))
                }
                Ok(p) => parts.push(p),
                Err(e) => errors.push(e),
            }
        }
        if o.limit == 0 || o.limit > MAX_LIMIT {
            errors.push(OptionError::new(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}, got {}", o.limit),
            ));
        }
        if o.per.0 < MIN_PER || o.per.0 > MAX_PER {
            errors.push(OptionError::new(
                "per",
                format!("must be between 100ms and 30 days, got {}", o.per),
            ));
        }
        if o.burst > MAX_LIMIT {
            errors.push(OptionError::new(
                "burst",
                format!("must be at most {MAX_LIMIT}, got {}", o.burst),
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            rule: Rule {
                algorithm: o.algorithm,
                limit: o.limit,
                per: o.per.0,
                burst: o.burst,
            },
            parts,
            on_store_error: o.on_store_error,
        })
    }
}

impl RateLimitFilter {
    /// Checks the options and builds the filter (tests; the gateway checks at
    /// validation and builds with [`RateLimitFilter::build`]).
    pub fn new(o: &RateLimitOptions, deps: &FilterDeps) -> Result<Self, Vec<OptionError>> {
        Ok(Self::build(&RateLimitConfig::check(o)?, deps))
    }

    pub fn build(config: &RateLimitConfig, deps: &FilterDeps) -> Self {
        let rule = config.rule;
        let counters = deps.route.as_deref().map(|r| {
            let c = &metrics().rate_limit_decisions_total;
            (
                c.with_label_values(&[r, "allowed"]),
                c.with_label_values(&[r, "limited"]),
            )
        });
        Self {
            prefix: format!("fingate:rl:{{{}", rule.tag()),
            rule,
            parts: config.parts.clone(),
            on_store_error: config.on_store_error,
            store: deps.store.clone(),
            fallback: MemoryStore::default(),
            refused: RefusedKeys::default(),
            coalescer: (deps.store.backend() == StoreBackend::Redis).then(Coalescer::default),
            route: deps.route.clone(),
            counters,
        }
    }

    /// `fingate:rl:{<rule>|<part>=<value>...}`: one hash tag per limiter key, so a
    /// key's state stays on one Redis Cluster slot. A missing value is `~`, the
    /// shared anonymous bucket.
    fn key(&self, req: &dyn HeaderEdit, ctx: &RequestContext) -> String {
        let mut key = String::with_capacity(self.prefix.len() + 48);
        key.push_str(&self.prefix);
        for part in &self.parts {
            key.push('|');
            let value: Option<std::borrow::Cow<'_, str>> = match part {
                KeyPart::Consumer => ctx.consumer.as_deref().map(Into::into),
                KeyPart::Ip => ctx.client_ip.map(|ip| ip.to_string().into()),
                KeyPart::Route => self
                    .route
                    .as_deref()
                    .or(ctx.route.as_deref())
                    .map(Into::into),
                KeyPart::Header(name) => {
                    req.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()))
                }
            };
            key.push_str(match part {
                KeyPart::Consumer => "c=",
                KeyPart::Ip => "i=",
                KeyPart::Route => "r=",
                KeyPart::Header(_) => "h=",
            });
            match value {
                Some(v) => escape_into(&mut key, &v),
                None => key.push('~'),
            }
        }
        key.push('}');
        key
    }

    /// The decision for `key`; None when the store failed and the policy is `deny`.
    async fn decide(&self, key: &str) -> Option<Decision> {
        let now = Instant::now();
        if let Some(d) = self.refused.check(key, now) {
            return Some(d);
        }
        let outcome = match &self.coalescer {
            Some(c) => c.decide(self.store.as_ref(), key, &self.rule).await,
            None => self.store.rate_limit(key, &self.rule, 1).await,
        };
        let d = match outcome {
            Ok(d) => d,
            Err(_) if self.on_store_error == OnStoreError::Allow => {
                self.fallback.decide(key, &self.rule, 1)
            }
            // The store has logged and counted the failure.
            Err(_) => return None,
        };
        self.refused.remember(key, &d, now);
        Some(d)
    }
}

/// Escapes the characters that structure the key (`{`, `}`, `|`, `%`, `~`).
fn escape_into(out: &mut String, value: &str) {
    for ch in value.chars() {
        match ch {
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            '|' => out.push_str("%7C"),
            '%' => out.push_str("%25"),
            '~' => out.push_str("%7E"),
            c => out.push(c),
        }
    }
}

/// Whole seconds, rounded up (a client waiting that long is sure to pass).
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn number(n: u64) -> HeaderValue {
    HeaderValue::from(n)
}

#[async_trait]
impl Filter for RateLimitFilter {
    async fn request(
        &self,
        req: &mut dyn HeaderEdit,
        ctx: &mut RequestContext,
    ) -> Result<Flow, FilterError> {
        let key = self.key(req, ctx);
        let Some(d) = self.decide(&key).await else {
            return Ok(Flow::Reject(GatewayError::new(
                ErrorCode::StoreUnavailable,
                "the rate-limit store is unavailable; try again shortly",
            )));
        };
        let mine = Reported {
            limit: self.rule.capacity(),
            remaining: d.remaining,
            reset: d.reset,
        };
        let tighter = match ctx.extensions.get::<Reported>() {
            Some(seen) => {
                mine.remaining < seen.remaining
                    || (mine.remaining == seen.remaining && mine.reset > seen.reset)
            }
            None => true,
        };
        if tighter {
            ctx.extensions.insert(mine);
        }
        if let Some((allowed, limited)) = &self.counters {
            if d.allowed {
                allowed.inc()
            } else {
                limited.inc()
            }
        }
        if d.allowed {
            return Ok(Flow::Continue);
        }
        let secs = ceil_secs(d.retry_after).max(1);
        let refusal = GatewayError::new(
            ErrorCode::RateLimited,
            format!("too many requests; retry after {secs} s"),
        )
        .with_header(http::header::RETRY_AFTER, number(secs));
        Ok(Flow::Reject(refusal))
    }

    fn response(&self, resp: &mut dyn HeaderEdit, ctx: &mut RequestContext) {
        // Every limiter on the route writes the same (tightest) values.
        if let Some(r) = ctx.extensions.get::<Reported>() {
            resp.set_static(
                "ratelimit-limit",
                number(u64::try_from(r.limit).unwrap_or(0)),
            );
            resp.set_static("ratelimit-remaining", number(r.remaining));
            resp.set_static("ratelimit-reset", number(ceil_secs(r.reset)));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
