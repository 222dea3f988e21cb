//! `idempotency`: a request retried with the same `Idempotency-Key` reaches the
//! service at most once; every retry gets the first answer, replayed byte for byte.
//!
//! ## Where the key is decided
//!
//! The key is *claimed* in the store before anything is sent upstream: an atomic
//! step that takes a free key (in flight, with this request's fingerprint and a
//! random claim token) or says what holds it ([`crate::store::idempotency`]).
//! Claiming needs the fingerprint — method, path, query and a SHA-256 of the body
//! — so the filter declares a [`Filter::body_limit`]: the gateway reads the body
//! whole first (into Pingora's retry buffer, at most [`MAX_BODY`]), hashes it
//! once, claims, and only then forwards exactly the bytes it hashed. Hashing while
//! the body streams upstream would decide too late: a mismatching retry would
//! already be at the service, and an error from Pingora's `request_body_filter`
//! still lets the request go upstream with an empty body (Pingora #692). A request
//! without a body claims in the request phase (the hash of no bytes).
//!
//! ## What happens to a held key
//!
//! A new claim marks the request [`RequestContext::detach`]: the proxy runs the
//! upstream exchange as a Pingora subrequest the client connection cannot abort,
//! so the answer is read to its end even if the client leaves (Pingora 0.9.1 stops
//! reading the upstream when a client goes away: see `proxy/detach.rs`). The
//! response phases capture the answer (status, headers except hop-by-hop,
//! `Set-Cookie` and the gateway's per-request ones, body up to `max_response`);
//! [`Filter::settle`] then stores it for `ttl` when its status is below 500, or
//! releases the key (a 5xx, a gateway error, an incomplete or too large answer),
//! always through the claim token. The client gets the answer's last byte only
//! after that, so a retry sent as soon as the answer arrived finds it stored.
//!
//! A key is scoped to the route and the consumer (`jwt`, `mtls`), else the client
//! address: two clients never share a key. A hold expires after the route's
//! upstream wait ([`FilterDeps::upstream_wait`]) plus [`HOLD_MARGIN`], so a key
//! taken by a gateway that died is free again after that.

use super::{Filter, FilterDeps, FilterError, Flow, HeaderEdit, LocalResponse, OptionError};
use crate::context::RequestContext;
use crate::error::{ErrorCode, GatewayError};
use crate::metrics::metrics;
use crate::store::{Claim, Store};
use crate::units::{DurationStr, SizeStr};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use http::{header, HeaderName, HeaderValue, Method, StatusCode};
use prometheus::IntCounter;
use ring::digest::{Context, SHA256};
use serde::Deserialize;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The largest request body an idempotent route takes (413 above, or the route's
/// `max_body` when smaller): the body is hashed whole before it goes upstream, and
/// Pingora forwards a body read ahead of time only up to this size.
pub const MAX_BODY: u64 = 64 * 1024;
/// Longest key, in characters.
pub const MAX_KEY_LEN: usize = 255;
const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
const MIN_TTL: Duration = Duration::from_secs(1);
const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
const DEFAULT_MAX_RESPONSE: u64 = 1024 * 1024;
/// Largest `max_response`: a stored answer is held whole in memory while it is
/// captured and stored as one value.
pub const MAX_MAX_RESPONSE: u64 = 16 * 1024 * 1024;
/// Added to the route's upstream wait for a key's hold: the store round trips
/// around the exchange and the time to settle it.
pub const HOLD_MARGIN: Duration = Duration::from_secs(2);
/// The hold of a filter built outside a route (tests).
const STANDALONE_WAIT: Duration = Duration::from_secs(10);
/// `Retry-After` of a 409: the request holding the key usually ends sooner than
/// its hold, so a client is told to come back soon rather than when it expires.
const IN_FLIGHT_RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct IdempotencyOptions {
    /// A request without a key: 400 `idempotency_key_missing` (false: passed through).
    #[serde(default)]
    pub required: bool,
    /// Methods the filter applies to. Default [POST, PATCH].
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// How long a completed answer is kept. Default 24h.
    #[serde(default)]
    pub ttl: Option<DurationStr>,
    /// Larger answers are not stored (the key is released). Default 1MiB.
    #[serde(default)]
    pub max_response: Option<SizeStr>,
    #[serde(default)]
    pub on_store_error: OnStoreError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnStoreError {
    /// Answer 503 `store_unavailable`: no request goes upstream unguarded.
    #[default]
    Deny,
    /// Pass the request through without idempotency (logged, counted).
    Allow,
}

/// `idempotency` options, checked: what the runtime builds from.
#[derive(Debug, Clone)]
pub struct IdempotencyConfig {
    required: bool,
    methods: Vec<Method>,
    ttl: Duration,
    max_response: u64,
    on_store_error: OnStoreError,
}

impl IdempotencyConfig {
    pub fn check(o: &IdempotencyOptions) -> Result<Self, Vec<OptionError>> {
        let mut errors = Vec::new();
        let mut methods = Vec::new();
        match &o.methods {
            None => methods = vec![Method::POST, Method::PATCH],
            Some(list) if list.is_empty() => errors.push(OptionError::new(
                "methods",
                "list at least one method, e.g. [POST]",
            )),
            Some(list) => {
                for (i, raw) in list.iter().enumerate() {
                    let path = format!("methods[{i}]");
                    match Method::from_bytes(raw.as_bytes()) {
                        Ok(m) if !raw.bytes().all(|b| b.is_ascii_uppercase()) => {
                            errors.push(OptionError::new(
                                path,
                                format!(
                                    "invalid method {raw:?}: write it in capitals, e.g. {}",
                                    m.as_str().to_ascii_uppercase()
                                ),
                            ));
                        }
                        Ok(m) if m.is_safe() || m == Method::CONNECT => {
                            errors.push(OptionError::new(
                                path,
                                format!("{raw} requests change nothing to repeat: idempotency keys apply to POST, PUT, PATCH, DELETE and other unsafe methods"),
                            ));
                        }
                        Ok(m) if methods.contains(&m) => {
                            errors.push(OptionError::new(path, format!("{raw} is listed twice")));
                        }
                        Ok(m) => methods.push(m),
                        Err(_) => {
                            errors.push(OptionError::new(path, format!("invalid method {raw:?}")))
                        }
                    }
                }
            }
        }
        let ttl = o.ttl.map_or(DEFAULT_TTL, |d| d.0);
        if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
            errors.push(OptionError::new(
                "ttl",
                format!("must be between 1s and 7d, got {}", DurationStr(ttl)),
            ));
        }
        let max_response = o.max_response.map_or(DEFAULT_MAX_RESPONSE, |s| s.0);
        if !(1..=MAX_MAX_RESPONSE).contains(&max_response) {
            errors.push(OptionError::new(
                "max_response",
                "use 1B to 16MiB: a stored answer is held whole in memory and in the store",
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            required: o.required,
            methods,
            ttl,
            max_response,
            on_store_error: o.on_store_error,
        })
    }

    /// The methods the filter applies to (validation checks the route accepts one).
    pub fn methods(&self) -> &[Method] {
        &self.methods
    }
}

/// Results counted in `fingate_idempotency_total`, in the order of the counters.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    New = 0,
    Replayed = 1,
    InFlight = 2,
    Mismatch = 3,
    Missing = 4,
    NotStored = 5,
    StoreError = 6,
}

const OUTCOMES: [&str; 7] = [
    "new",
    "replayed",
    "in_flight",
    "mismatch",
    "missing",
    "not_stored",
    "store_error",
];

pub struct IdempotencyFilter {
    config: IdempotencyConfig,
    store: Arc<dyn Store>,
    route: Arc<str>,
    hold: Duration,
    counters: Option<Vec<IntCounter>>,
}

impl std::fmt::Debug for IdempotencyFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyFilter")
            .field("config", &self.config)
            .field("route", &self.route)
            .field("hold", &self.hold)
            .finish()
    }
}

/// Per-request state, in `ctx.extensions`.
#[derive(Debug, Clone)]
enum State {
    /// A key was sent; claimed once the body is read.
    Pending { store_key: String },
    /// This request holds the key: its answer is being captured.
    Held(Box<Held>),
}

#[derive(Debug, Clone)]
struct Held {
    store_key: String,
    token: String,
    capture: Capture,
}

#[derive(Debug, Clone)]
enum Capture {
    /// No final answer yet.
    Waiting,
    /// The head of an answer that may be stored; the body collects here.
    Body(Box<Answer>),
    /// Read to its end.
    Complete(Box<Answer>),
    /// Not storable: a 5xx (or a gateway error), or larger than `max_response`.
    Skip { too_large: bool },
}

/// An answer as stored and replayed.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: BytesMut,
}

impl IdempotencyFilter {
    /// Checks the options and builds the filter (tests; the gateway checks at
    /// validation and builds with [`IdempotencyFilter::build`]).
    pub fn new(o: &IdempotencyOptions, deps: &FilterDeps) -> Result<Self, Vec<OptionError>> {
        Ok(Self::build(&IdempotencyConfig::check(o)?, deps))
    }

    pub fn build(config: &IdempotencyConfig, deps: &FilterDeps) -> Self {
        let counters = deps.route.as_deref().map(|route| {
            OUTCOMES
                .iter()
                .map(|r| metrics().idempotency_total.with_label_values(&[route, r]))
                .collect()
        });
        Self {
            config: config.clone(),
            store: deps.store.clone(),
            route: deps.route.clone().unwrap_or_else(|| Arc::from("")),
            hold: deps.upstream_wait.unwrap_or(STANDALONE_WAIT) + HOLD_MARGIN,
            counters,
        }
    }

    fn count(&self, outcome: Outcome) {
        if let Some(c) = self.counters.as_ref().and_then(|c| c.get(outcome as usize)) {
            c.inc();
        }
    }

    /// The store key of `key` for this route and this client: a hash, so keys of
    /// any spelling make one fixed-size name, inside a `{hash tag}`.
    fn store_key(&self, key: &str, ctx: &RequestContext) -> String {
        let mut h = Context::new(&SHA256);
        h.update(self.route.as_bytes());
        h.update(&[0]);
        match (&ctx.consumer, ctx.client_ip) {
            (Some(consumer), _) => {
                h.update(b"consumer:");
                h.update(consumer.as_bytes());
            }
            (None, Some(ip)) => {
                h.update(b"ip:");
                h.update(ip.to_string().as_bytes());
            }
            (None, None) => h.update(b"-"),
        }
        h.update(&[0]);
        h.update(key.as_bytes());
        format!("fingate:idem:{{{}}}", hex(h.finish().as_ref()))
    }

    /// Claims the key for a request with this body; the flow that follows.
    async fn claim(&self, store_key: String, body: &[u8], ctx: &mut RequestContext) -> Flow {
        let fingerprint = fingerprint(&ctx.method, &ctx.path, ctx.query.as_deref(), body);
        let token = format!("{:032x}", rand::random::<u128>());
        let claim = self
            .store
            .idempotency_claim(&store_key, &fingerprint, &token, self.hold)
            .await;
        match claim {
            Ok(Claim::New) => {
                self.count(Outcome::New);
                ctx.detach = true;
                ctx.extensions.insert(State::Held(Box::new(Held {
                    store_key,
                    token,
                    capture: Capture::Waiting,
                })));
                Flow::Continue
            }
            Ok(Claim::Done(stored)) => match decode(&stored) {
                Some(answer) => {
                    self.count(Outcome::Replayed);
                    Flow::Respond(replay(answer))
                }
                // Never forwarded instead: the request it answers already ran.
                None => {
                    tracing::error!(route = %self.route, "idempotency: a stored answer cannot be read");
                    Flow::Reject(GatewayError::new(
                        ErrorCode::InternalError,
                        "the stored answer for this Idempotency-Key cannot be read",
                    ))
                }
            },
            Ok(Claim::InFlight { expires_in }) => {
                self.count(Outcome::InFlight);
                Flow::Reject(
                    GatewayError::new(
                        ErrorCode::IdempotencyKeyInUse,
                        "a request with this Idempotency-Key is still being processed; retry later",
                    )
                    .retry_after(expires_in.min(IN_FLIGHT_RETRY)),
                )
            }
            Ok(Claim::Mismatch) => {
                self.count(Outcome::Mismatch);
                Flow::Reject(GatewayError::new(
                    ErrorCode::IdempotencyKeyReused,
                    "this Idempotency-Key was already used for a different request (method, path, query or body)",
                ))
            }
            Err(e) => {
                tracing::warn!(route = %self.route, error = %e, on_store_error = ?self.config.on_store_error, "idempotency: the store gave no answer");
                self.store_failed()
            }
        }
    }

    fn store_failed(&self) -> Flow {
        self.count(Outcome::StoreError);
        match self.config.on_store_error {
            OnStoreError::Deny => Flow::Reject(
                GatewayError::new(
                    ErrorCode::StoreUnavailable,
                    "idempotency keys cannot be checked right now; retry later",
                )
                .retry_after(IN_FLIGHT_RETRY),
            ),
            OnStoreError::Allow => Flow::Continue,
        }
    }

    /// Stores a complete answer, or releases the key: what the claim started.
    async fn finish(&self, held: Held) {
        let Held {
            store_key,
            token,
            capture,
        } = held;
        let answer = match capture {
            Capture::Complete(answer) => answer,
            Capture::Skip { too_large } => {
                if too_large {
                    self.count(Outcome::NotStored);
                }
                self.release(&store_key, &token).await;
                return;
            }
            Capture::Waiting | Capture::Body(_) => {
                self.release(&store_key, &token).await;
                return;
            }
        };
        let stored = self
            .store
            .idempotency_complete(&store_key, &token, &encode(&answer), self.config.ttl)
            .await;
        match stored {
            Ok(true) => {}
            Ok(false) => {
                self.count(Outcome::NotStored);
                tracing::warn!(route = %self.route, hold = ?self.hold, "idempotency: the key's hold ended before its answer was stored (the exchange took longer than the hold)");
            }
            Err(e) => {
                self.count(Outcome::NotStored);
                tracing::warn!(route = %self.route, error = %e, "idempotency: the answer could not be stored; the key is released");
                self.release(&store_key, &token).await;
            }
        }
    }

    async fn release(&self, store_key: &str, token: &str) {
        if let Err(e) = self.store.idempotency_release(store_key, token).await {
            tracing::warn!(route = %self.route, error = %e, hold = ?self.hold, "idempotency: the key could not be released; it frees itself when its hold ends");
        }
    }

    /// On an answer's head: keep what may be stored.
    fn capture_head(&self, held: &mut Held, resp: &dyn HeaderEdit) {
        if !matches!(held.capture, Capture::Waiting) {
            return;
        }
        let Some(status) = resp.status() else {
            return;
        };
        if status.is_informational() {
            return;
        }
        if status.is_server_error() {
            held.capture = Capture::Skip { too_large: false };
            return;
        }
        let mut headers = resp.entries();
        let declared = resp
            .get(&header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.config.max_response) {
            held.capture = Capture::Skip { too_large: true };
            return;
        }
        headers.retain(|(n, _)| stored_header(n));
        let answer = Box::new(Answer {
            status,
            headers,
            body: BytesMut::new(),
        });
        // An answer that carries no body is whole with its head.
        let bodiless = matches!(status.as_u16(), 204 | 304) || declared == Some(0);
        held.capture = if bodiless {
            Capture::Complete(answer)
        } else {
            Capture::Body(answer)
        };
    }
}

/// The store key's hash as text.
fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// What identifies a request for its key: method, path (as routed), query and the
/// body's SHA-256, hashed once more so the store keeps 64 characters.
pub fn fingerprint(method: &Method, path: &str, query: Option<&str>, body: &[u8]) -> String {
    let body_hash = ring::digest::digest(&SHA256, body);
    let mut h = Context::new(&SHA256);
    h.update(method.as_str().as_bytes());
    h.update(&[0]);
    h.update(path.as_bytes());
    match query {
        Some(q) => {
            h.update(b"\x00?");
            h.update(q.as_bytes());
        }
        None => h.update(b"\x00"),
    }
    h.update(&[0]);
    h.update(body_hash.as_ref());
    hex(h.finish().as_ref())
}

/// Why a key is not usable, for the 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    Missing,
    Malformed(&'static str),
}

/// The key of a request: one `Idempotency-Key` header, 1–255 visible ASCII
/// characters, bare or as a structured-field string (`"..."`, with `\"` and `\\`
/// escapes); both spellings of the same characters are the same key.
pub fn parse_key(req: &dyn HeaderEdit) -> Result<String, KeyError> {
    let mut values = req.get_all(&IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Err(KeyError::Missing);
    };
    if values.next().is_some() {
        return Err(KeyError::Malformed(
            "send one Idempotency-Key header, not several",
        ));
    }
    let raw = value.as_bytes();
    let key = match raw.strip_prefix(b"\"") {
        Some(quoted) => unquote(quoted)?,
        None => raw.to_vec(),
    };
    if key.is_empty() {
        return Err(KeyError::Malformed("the Idempotency-Key is empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(KeyError::Malformed(
            "the Idempotency-Key is longer than 255 characters",
        ));
    }
    if !key.iter().all(u8::is_ascii_graphic) {
        return Err(KeyError::Malformed(
            "the Idempotency-Key may hold only visible ASCII characters (no spaces or control characters)",
        ));
    }
    // Visible ASCII: valid UTF-8.
    Ok(String::from_utf8(key).unwrap_or_default())
}

/// The inside of a structured-field string, after its opening quote.
fn unquote(rest: &[u8]) -> Result<Vec<u8>, KeyError> {
    const BAD: KeyError = KeyError::Malformed(
        "a quoted Idempotency-Key must be one \"string\" (escape only \\\" and \\\\)",
    );
    let mut out = Vec::with_capacity(rest.len());
    let mut bytes = rest.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\\' => match bytes.next() {
                Some(&e @ (b'"' | b'\\')) => out.push(e),
                _ => return Err(BAD),
            },
            b'"' => {
                return if bytes.next().is_none() {
                    Ok(out)
                } else {
                    Err(BAD)
                }
            }
            _ => out.push(b),
        }
    }
    Err(BAD)
}

/// Response headers never stored: framing, hop-by-hop, cookies (a replay must not
/// hand out a session), and the ones the gateway makes per request.
fn stored_header(name: &HeaderName) -> bool {
    const PER_REQUEST: [&str; 9] = [
        "keep-alive",
        "proxy-connection",
        "x-request-id",
        "idempotent-replayed",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "x-cache",
        "age",
    ];
    !(name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::TE
        || name == header::TRAILER
        || name == header::UPGRADE
        || name == header::CONTENT_LENGTH
        || name == header::SET_COOKIE
        || name.as_str().starts_with("access-control-")
        || PER_REQUEST.contains(&name.as_str()))
}

/// The replay of a stored answer: its status, stored headers and body, marked.
fn replay(answer: Answer) -> LocalResponse {
    let mut headers = answer.headers;
    headers.push((
        IDEMPOTENT_REPLAYED.clone(),
        HeaderValue::from_static("true"),
    ));
    LocalResponse {
        status: answer.status,
        headers,
        body: answer.body.freeze(),
    }
}

const RECORD_VERSION: &[u8; 4] = b"FGI1";

/// A stored answer as bytes: version, status, headers (count, then each name and
/// value with its length), then the body.
pub fn encode(a: &Answer) -> Vec<u8> {
    let head: usize = a
        .headers
        .iter()
        .map(|(n, v)| 6 + n.as_str().len() + v.len())
        .sum();
    let mut out = Vec::with_capacity(8 + head + a.body.len());
    out.extend_from_slice(RECORD_VERSION);
    out.extend_from_slice(&a.status.as_u16().to_be_bytes());
    let count = u16::try_from(a.headers.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&count.to_be_bytes());
    for (name, value) in a.headers.iter().take(usize::from(count)) {
        let name = name.as_str().as_bytes();
        // Header names are short; values up to 4 GiB.
        out.extend_from_slice(&u16::try_from(name.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(&u32::try_from(value.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out.extend_from_slice(&a.body);
    out
}

/// [`encode`] undone; None for bytes it did not make.
pub fn decode(bytes: &[u8]) -> Option<Answer> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (b.get(..n)?, b.get(n..)?);
        *b = rest;
        Some(head)
    }
    let mut b = bytes;
    if take(&mut b, 4)? != RECORD_VERSION {
        return None;
    }
    let status = u16::from_be_bytes(take(&mut b, 2)?.try_into().ok()?);
    let status = StatusCode::from_u16(status).ok()?;
    let count = u16::from_be_bytes(take(&mut b, 2)?.try_into().ok()?);
    let mut headers = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let n = u16::from_be_bytes(take(&mut b, 2)?.try_into().ok()?);
        let name = HeaderName::from_bytes(take(&mut b, usize::from(n))?).ok()?;
        let n = u32::from_be_bytes(take(&mut b, 4)?.try_into().ok()?);
        let value = HeaderValue::from_bytes(take(&mut b, usize::try_from(n).ok()?)?).ok()?;
        headers.push((name, value));
    }
    Some(Answer {
        status,
        headers,
        body: BytesMut::from(b),
    })
}

#[async_trait]
impl Filter for IdempotencyFilter {
    async fn request(
        &self,
        req: &mut dyn HeaderEdit,
        ctx: &mut RequestContext,
    ) -> Result<Flow, FilterError> {
        if !self.config.methods.contains(&ctx.method) {
            return Ok(Flow::Continue);
        }
        let key = match parse_key(req) {
            Ok(key) => key,
            Err(KeyError::Missing) if !self.config.required => {
                self.count(Outcome::Missing);
                return Ok(Flow::Continue);
            }
            Err(KeyError::Missing) => {
                self.count(Outcome::Missing);
                return Ok(Flow::Reject(GatewayError::new(
                    ErrorCode::IdempotencyKeyMissing,
                    format!(
                        "{} requests on this route need an Idempotency-Key header (1-255 visible ASCII characters, unique per operation)",
                        ctx.method
                    ),
                )));
            }
            Err(KeyError::Malformed(why)) => {
                self.count(Outcome::Missing);
                return Ok(Flow::Reject(GatewayError::new(ErrorCode::BadRequest, why)));
            }
        };
        let store_key = self.store_key(&key, ctx);
        if ctx.has_body {
            ctx.extensions.insert(State::Pending { store_key });
            return Ok(Flow::Continue);
        }
        Ok(self.claim(store_key, b"", ctx).await)
    }

    fn body_limit(&self) -> Option<u64> {
        Some(MAX_BODY)
    }

    async fn request_body(
        &self,
        body: &[u8],
        ctx: &mut RequestContext,
    ) -> Result<Flow, FilterError> {
        let Some(State::Pending { store_key }) = ctx.extensions.remove::<State>() else {
            return Ok(Flow::Continue);
        };
        Ok(self.claim(store_key, body, ctx).await)
    }

    fn response(&self, resp: &mut dyn HeaderEdit, ctx: &mut RequestContext) {
        // Only the service's answers are stored: one the gateway made (a later
        // filter's refusal, an upstream error) leaves the key to be released.
        if !ctx.upstream_responded {
            return;
        }
        if let Some(State::Held(held)) = ctx.extensions.get_mut::<State>() {
            self.capture_head(held, resp);
        }
    }

    fn response_body(&self, body: &Option<Bytes>, end_of_stream: bool, ctx: &mut RequestContext) {
        let Some(State::Held(held)) = ctx.extensions.get_mut::<State>() else {
            return;
        };
        let Capture::Body(answer) = &mut held.capture else {
            return;
        };
        if let Some(chunk) = body {
            if (answer.body.len() + chunk.len()) as u64 > self.config.max_response {
                held.capture = Capture::Skip { too_large: true };
                return;
            }
            answer.body.extend_from_slice(chunk);
        }
        if end_of_stream {
            let Capture::Body(answer) =
                std::mem::replace(&mut held.capture, Capture::Skip { too_large: false })
            else {
                return;
            };
            held.capture = Capture::Complete(answer);
        }
    }

    fn settles(&self) -> bool {
        true
    }

    async fn settle(&self, ctx: &mut RequestContext) {
        if let Some(State::Held(held)) = ctx.extensions.remove::<State>() {
            self.finish(*held).await;
        }
    }
}

#[cfg(test)]
#[path = "idempotency_tests.rs"]
mod tests;
