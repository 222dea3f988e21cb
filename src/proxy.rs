//! The only `impl ProxyHttp`: matches the route, runs its filters per phase, picks
//! the upstream target, and turns failures into the gateway's JSON errors.
//!
//! Pingora's types stop here; filters see [`HeaderEdit`] and [`RequestContext`].

mod builtin;
mod detach;
mod failure;
mod headers;
mod local;
mod log;
mod peer;
mod pipeline;

use crate::context::RequestContext;
use crate::edge::{forwarded, shield};
use crate::metrics::{metrics, Outcome};
use crate::runtime::{Gateway, Route, Runtime};
use crate::trace::{RequestTrace, TRACEPARENT};
use crate::upstream::attempt::HashInput;
use crate::upstream::ActiveGuard;
use async_trait::async_trait;
use bytes::Bytes;
use failure::{classify, Failure};
use headers::{ReqView, RespView};
use http::{header, Method};
use local::reject;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorType, Result};
use smallvec::SmallVec;
use std::sync::Arc;
use std::time::Duration;

pub struct Proxy {
    gateway: Arc<Gateway>,
}

impl Proxy {
    pub fn new(gateway: Arc<Gateway>) -> Self {
        Self { gateway }
    }
}

/// A connection to the request's current target failed (or its TLS session was
/// refused): the target is taken out and counted, and the request leaves it.
/// Whether another target may be tried.
fn connect_failed(ctx: &mut Ctx) -> bool {
    let (Some(group), Some(index)) = (ctx.route.as_ref().and_then(|r| r.upstream()), ctx.target)
    else {
        return false;
    };
    if let Some(trace) = &mut ctx.trace {
        trace.attempt_failed("connect_error");
    }
    group.report_connect_failure(index);
    group.targets[index].counters.inc(Outcome::ConnectError);
    ctx.active = None;
    ctx.target = None;
    group.may_retry(&ctx.tried)
}

/// Per-request state across Pingora's phases.
pub struct Ctx {
    req: RequestContext,
    runtime: Option<Arc<Runtime>>,
    route: Option<Arc<Route>>,
    /// Path and query to send upstream, when the route rewrites.
    upstream_target: Option<String>,
    /// Target indexes tried so far for this request (retries avoid them); inline,
    /// so a request without retries allocates nothing for it.
    tried: SmallVec<[usize; 4]>,
    target: Option<usize>,
    active: Option<ActiveGuard>,
    failure: Option<Failure>,
    /// Status of a response the gateway made itself.
    local_status: u16,
    counted_inflight: bool,
    /// Request body bytes received so far, against the route's `max_body`.
    body_bytes: u64,
    /// The peer address (before trusted-proxy resolution), for forwarding headers.
    peer_ip: Option<std::net::IpAddr>,
    /// How many of the route's filters the request entered (see `FilterChain`).
    entered: usize,
    /// The request body, when the gateway read it whole (a filter checked it).
    body: Option<Bytes>,
    /// The filters' settle phase has run.
    settled: bool,
    /// In a detached exchange's subrequest: where the context goes back to the
    /// client's side when the exchange ends (`detach.rs`).
    handback: Option<tokio::sync::oneshot::Sender<Box<Ctx>>>,
    /// How a detached exchange failed, for the client side's record.
    detached_error: Option<ErrorType>,
    /// The request's trace (with a `tracing:` section).
    trace: Option<RequestTrace>,
}

impl Ctx {
    fn new() -> Box<Ctx> {
        Box::new(Self::blank())
    }

    fn blank() -> Ctx {
        Ctx {
            req: RequestContext::new(Method::GET, String::new()),
            runtime: None,
            route: None,
            upstream_target: None,
            tried: SmallVec::new(),
            target: None,
            active: None,
            failure: None,
            local_status: 0,
            counted_inflight: false,
            body_bytes: 0,
            peer_ip: None,
            entered: 0,
            body: None,
            settled: false,
            handback: None,
            detached_error: None,
            trace: None,
        }
    }

    /// Runs the settle phase of the route's filters, once.
    async fn settle(&mut self) {
        if self.settled {
            return;
        }
        self.settled = true;
        if let Some(route) = self.route.clone() {
            if route.filters.settles() {
                route.filters.settle(&mut self.req, self.entered).await;
            }
        }
    }
}

#[async_trait]
impl ProxyHttp for Proxy {
    // Boxed: Pingora keeps the context by value in its per-request futures (about
    // three copies deep), and those futures are moved whole, twice per request.
    // A pointer there instead of 368 bytes saves ~2 KB of copying per request.
    type CTX = Box<Ctx>;

    fn new_ctx(&self) -> Box<Ctx> {
        Ctx::new()
    }

    /// Only the client's requests may spawn one (a detached exchange, `detach.rs`).
    fn allow_spawning_subrequest(&self, session: &Session, _ctx: &Box<Ctx>) -> bool {
        session.subrequest_ctx.is_none()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Box<Ctx>) -> Result<bool> {
        // A detached exchange: the client's side did everything up to the upstream.
        if let Some(parent) = detach::adopt(session) {
            *ctx = parent;
            return Ok(false);
        }
        metrics().inflight_requests.inc();
        ctx.counted_inflight = true;
        let runtime = self.gateway.current();
        ctx.runtime = Some(runtime.clone());
        pipeline::request_phase(session, ctx, &runtime).await
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end: bool,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        let (Some(chunk), Some(route)) = (body.as_ref(), &ctx.route) else {
            return Ok(());
        };
        ctx.body_bytes += chunk.len() as u64;
        if ctx.body_bytes > route.max_body {
            return Err(Error::explain(
                ErrorType::HTTPStatus(413),
                format!("request body larger than {} bytes", route.max_body),
            ));
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut Box<Ctx>,
    ) -> Result<Box<HttpPeer>> {
        let route = ctx.route.clone().ok_or_else(|| {
            Error::explain(ErrorType::InternalError, "no route at upstream selection")
        })?;
        let Some(group) = route.upstream() else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "a built-in endpoint has no upstream",
            ));
        };
        let key = group.hash_key(HashInput {
            consumer: ctx.req.consumer.as_deref(),
            client_ip: ctx.req.client_ip,
            headers: &session.req_header().headers,
        });
        let Some(attempt) = group.attempt(key.as_deref(), &ctx.tried, ctx.req.has_body) else {
            ctx.failure = Some(Failure::NoTarget);
            return Err(Error::explain(
                ErrorType::HTTPStatus(502),
                format!("no available target in upstream {}", group.name()),
            ));
        };
        ctx.tried.push(attempt.index);
        ctx.target = Some(attempt.index);
        if let Some(trace) = &mut ctx.trace {
            trace.begin_attempt(attempt.address);
        }
        ctx.active = group.begin_request(attempt.index);
        Ok(Box::new(peer::peer(group, &attempt)))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Box<Ctx>,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if connect_failed(ctx) {
            e.set_retry(true);
        }
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Box<Ctx>,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        if let Some(trace) = &mut ctx.trace {
            trace.attempt_failed(e.etype().as_str());
        }
        if let Some(alert) = failure::late_tls_refusal(&e).filter(|_| !ctx.req.upstream_responded) {
            // Judged as the connect failure it is: the target is taken out, and
            // another one is tried (the request was never read) if the body
            // can still be sent again.
            let mut refused = Error::because(
                ErrorType::TLSHandshakeFailure,
                format!("the upstream refused the TLS session ({alert:?})"),
                e,
            );
            refused.as_up();
            let retry = connect_failed(ctx) && !session.as_ref().retry_buffer_truncated();
            refused.set_retry(retry);
            return refused;
        }
        // Pingora's own policy for every other failure.
        if !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated()
        {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        if let (Some(peer), Some(runtime)) = (ctx.peer_ip, &ctx.runtime) {
            let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
            let proto = if tls { "https" } else { "http" };
            let trusted = &runtime.config.trusted_proxies;
            for (name, value) in
                forwarded::forwarding_headers(&upstream.headers, peer, proto, trusted)
            {
                upstream.insert_header(name, value)?;
            }
        }
        if let Some(trace) = &ctx.trace {
            // The service's spans hang under this attempt's client span.
            upstream.insert_header(TRACEPARENT, trace.upstream_traceparent())?;
        }
        if let Some(target) = ctx.upstream_target.as_deref() {
            let uri = http::Uri::try_from(target).map_err(|e| {
                Error::because(
                    ErrorType::InternalError,
                    "rewritten path is not a valid URI",
                    e,
                )
            })?;
            upstream.set_uri(uri);
        }
        if let Some(route) = &ctx.route {
            route
                .filters
                .upstream_request(&mut ReqView(upstream), &ctx.req);
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        ctx.req.upstream_responded = true;
        headers::make_room_in_response(resp);
        if let Some(trace) = &mut ctx.trace {
            trace.attempt_answered(resp.status.as_u16());
        }
        for name in forwarded::response_hop_by_hop(&resp.headers) {
            resp.remove_header(&name);
        }
        // Pingora replaces `Connection` on final HTTP/1 responses only.
        if resp.status.is_informational() {
            resp.remove_header(&header::CONNECTION);
        }
        Ok(())
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Box<Ctx>,
    ) -> Result<Option<Duration>> {
        if let Some(route) = &ctx.route {
            route
                .filters
                .response_body(body, end_of_stream, &mut ctx.req, ctx.entered);
        }
        Ok(None)
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        if let Some(route) = &ctx.route {
            route
                .filters
                .response(&mut RespView(resp), &mut ctx.req, ctx.entered);
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Box<Ctx>,
    ) -> FailToProxy {
        if let Some(status) = shield::refusal_status(e.root_cause()) {
            // The shield has answered (or closed) the connection itself.
            ctx.local_status = status;
            return FailToProxy {
                error_code: status,
                can_reuse_downstream: false,
            };
        }
        let upstream = ctx
            .route
            .as_ref()
            .and_then(|r| r.upstream())
            .map_or("", |g| g.name());
        let failure = classify(e, ctx.failure, upstream);
        let status = failure.as_ref().map_or(0, |f| f.status.as_u16());
        if let (Some(failure), None) = (failure, session.response_written()) {
            if let Err(write_error) = reject(session, ctx, failure).await {
                tracing::debug!(error = %write_error, "could not send the error response");
            }
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Box<Ctx>) {
        if let Some(back) = ctx.handback.take() {
            // A detached exchange ends: settle before the client's side relays the
            // answer's last piece, then hand the request back for its record.
            ctx.settle().await;
            if let Some(written) = session.response_written() {
                ctx.local_status = written.status.as_u16();
            }
            ctx.detached_error = e.map(|e| e.etype().clone());
            ctx.active = None;
            let _ = back.send(std::mem::replace(ctx, Ctx::new()));
            return;
        }
        ctx.settle().await;
        let status = session
            .response_written()
            .map_or(ctx.local_status, |r| r.status.as_u16());
        if ctx.counted_inflight {
            metrics().inflight_requests.dec();
        }
        // Every request ends here, whichever way it went: from now until the next
        // request's first byte, the connection is idle.
        let idle = match &ctx.runtime {
            Some(runtime) => runtime.config.limits.idle_timeout,
            None => self.gateway.current().config.limits.idle_timeout,
        };
        shield::between_requests(session.stream(), idle);
        log::record(session, e, ctx, status);
        if let Some(route) = &ctx.route {
            route.filters.logging(&ctx.req, status, ctx.entered);
        }
        ctx.active = None;
    }
}
