//! The only `impl ProxyHttp`: matches the route, runs its filters per phase, picks
//! the upstream target, and turns failures into the gateway's JSON errors.
//!
//! Pingora's types stop here; filters see [`HeaderEdit`] and [`RequestContext`].

mod auth;
mod failure;
mod headers;
mod local;
mod log;

use crate::config::HashOn;
use crate::context::RequestContext;
use crate::edge::checks::{check_head, Refusal};
use crate::edge::{forwarded, shield};
use crate::filter::LocalResponse;
use crate::metrics::{metrics, Outcome};
use crate::normalize::normalize_path;
use crate::routing::Lookup;
use crate::runtime::{Gateway, Route, Runtime};
use crate::upstream::ActiveGuard;
use async_trait::async_trait;
use bytes::Bytes;
use failure::{classify, status_code, Failure};
use headers::{ReqView, RespView};
use http::{header, HeaderValue, Method, StatusCode};
use local::{body_refusal, refuse, respond, run_request_filters};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpUpstreamRequestPolicy;
use pingora::{Error, ErrorType, Result};
use smallvec::SmallVec;
use std::sync::Arc;
use std::time::Duration;

/// How long an idle upstream connection stays in the keep-alive pool.
const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Proxy {
    gateway: Arc<Gateway>,
}

impl Proxy {
    pub fn new(gateway: Arc<Gateway>) -> Self {
        Self { gateway }
    }
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
    upstream_responded: bool,
    /// Status of a response the gateway made itself.
    local_status: u16,
    counted_inflight: bool,
    /// Request body bytes received so far, against the route's `max_body`.
    body_bytes: u64,
    /// The peer address (before trusted-proxy resolution), for forwarding headers.
    peer_ip: Option<std::net::IpAddr>,
    /// The request declares a body (from the edge checks).
    carries_body: bool,
}

#[async_trait]
impl ProxyHttp for Proxy {
    // Boxed: Pingora keeps the context by value in its per-request futures (about
    // three copies deep), and those futures are moved whole, twice per request.
    // A pointer there instead of 368 bytes saves ~2 KB of copying per request.
    type CTX = Box<Ctx>;

    fn new_ctx(&self) -> Box<Ctx> {
        Box::new(Ctx {
            req: RequestContext::new(Method::GET, String::new()),
            runtime: None,
            route: None,
            upstream_target: None,
            tried: SmallVec::new(),
            target: None,
            active: None,
            failure: None,
            upstream_responded: false,
            local_status: 0,
            counted_inflight: false,
            body_bytes: 0,
            peer_ip: None,
            carries_body: false,
        })
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Box<Ctx>) -> Result<bool> {
        metrics().inflight_requests.inc();
        ctx.counted_inflight = true;
        let runtime = self.gateway.current();
        ctx.runtime = Some(runtime.clone());
        let limits = &runtime.config.limits;
        // Keep-alive without Pingora's timer: the shield ends idle connections
        // (limits.idle_timeout) with one timer per connection, not one per request.
        session.set_keepalive(Some(0));
        session.set_read_timeout(Some(limits.body_timeout));
        // Requests sent before the previous answer (pipelining) are answered in
        // order: Pingora keeps the bytes read past this request for the next one
        // instead of dropping the connection (the shield tells the requests apart
        // on the raw bytes).
        session.set_pipelining_enabled(true);

        let req = session.req_header();
        ctx.req.method = req.method.clone();
        ctx.peer_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        ctx.req.client_ip = ctx
            .peer_ip
            .map(|peer| forwarded::client_ip(peer, &req.headers, &runtime.config.trusted_proxies));
        let head = match check_head(req, req.raw_path().len(), limits) {
            Ok(head) => head,
            Err(refusal) => {
                refuse(session, ctx, refusal).await?;
                return Ok(true);
            }
        };
        ctx.req.host = Some(head.host.to_owned());
        let framing = head.framing;
        ctx.carries_body = framing.carries_body();
        let path = match normalize_path(req.uri.path()) {
            Ok(p) => p.into_owned(),
            Err(e) => {
                let refusal = Refusal {
                    status: StatusCode::BAD_REQUEST,
                    code: "bad_request",
                    message: e.to_string(),
                    close: true,
                };
                refuse(session, ctx, refusal).await?;
                return Ok(true);
            }
        };
        headers::strip_identity_headers(session.req_header_mut());
        // The token endpoint and JWKS are the gateway's own, served before routing.
        if auth::handles(&runtime, &path)
            && Box::pin(auth::serve(session, ctx, &runtime, &path)).await?
        {
            return Ok(true);
        }

        let req = session.req_header();
        let query = req.uri.query();
        let found = match runtime
            .table
            .find(ctx.req.host.as_deref(), &req.method, &path)
        {
            Lookup::Found { route, params } => {
                ctx.upstream_target = match &route.rewrite {
                    Some(rw) => Some(rw.apply(&path, &params, query)),
                    // Forward the normalised spelling, never the one that was routed around.
                    None if path != req.uri.path() => Some(match query {
                        Some(q) => format!("{path}?{q}"),
                        None => path.clone(),
                    }),
                    None => None,
                };
                route.clone()
            }
            Lookup::MethodNotAllowed { allow } => {
                ctx.req.path = path;
                let allow: Vec<&str> = allow.iter().map(Method::as_str).collect();
                let local = LocalResponse::error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    &format!(
                        "{} is not allowed here; allowed: {}",
                        ctx.req.method,
                        allow.join(", ")
                    ),
                    &ctx.req.request_id,
                );
                let local = match HeaderValue::from_str(&allow.join(", ")) {
                    Ok(v) => local.with_header(header::ALLOW, v),
                    Err(_) => local,
                };
                respond(session, ctx, local, &[]).await?;
                return Ok(true);
            }
            Lookup::NotFound => {
                ctx.req.path = path;
                let local = LocalResponse::error(
                    StatusCode::NOT_FOUND,
                    "route_not_found",
                    "no route matches this request",
                    &ctx.req.request_id,
                );
                respond(session, ctx, local, &[]).await?;
                return Ok(true);
            }
        };
        ctx.req.path = path;
        ctx.req.query = session.req_header().uri.query().map(str::to_owned);
        ctx.req.route = Some(found.name.clone());
        ctx.route = Some(found.clone());
        if let Some(refusal) = body_refusal(framing, found.max_body) {
            refuse(session, ctx, refusal).await?;
            return Ok(true);
        }
        if framing.chunked {
            // Chunk framing is where parsers disagree (e.g. a bare LF in a chunk
            // extension); after a chunked body nothing more is read from this
            // connection, so no second request can hide in it.
            session.set_keepalive(None);
        }
        if found.filters.is_empty() {
            return Ok(false);
        }
        // Boxed for the same reason as `respond`: only routes with filters pay for it.
        Box::pin(run_request_filters(session, ctx, &found.filters)).await
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
        let group = &route.upstream;
        let key = hash_key(&group.config.balance, &ctx.req, session.req_header());
        let Some(index) = group.select(key.as_deref(), &ctx.tried) else {
            ctx.failure = Some(Failure::NoTarget);
            return Err(Error::explain(
                ErrorType::HTTPStatus(502),
                format!("no available target in upstream {}", group.name()),
            ));
        };
        ctx.tried.push(index);
        ctx.target = Some(index);
        ctx.active = group.begin_request(index);
        let address = group.targets[index].address;
        let mut peer = HttpPeer::new(address, false, String::new());
        let o = &mut peer.options;
        o.connection_timeout = Some(group.config.connect_timeout);
        o.read_timeout = Some(group.config.read_timeout);
        // A head alone goes into an idle kept-alive socket's empty buffer at once,
        // and the read timeout covers the wait after it; only a body can stall a
        // write. (Each timeout Pingora wraps a call in reads the clock.)
        if ctx.carries_body {
            o.write_timeout = Some(group.config.read_timeout);
        }
        o.idle_timeout = Some(UPSTREAM_IDLE_TIMEOUT);
        // Pingora strips the request's hop-by-hop headers (the fixed ones and those
        // `Connection` names, refusing nominations of Host or X-Forwarded-*) before
        // `upstream_request_filter`; upgrades are not proxied, so `Upgrade` goes too.
        o.http_upstream_request_policy = HttpUpstreamRequestPolicy::deny_upgrades();
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Box<Ctx>,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let (Some(route), Some(index)) = (&ctx.route, ctx.target) else {
            return e;
        };
        let group = &route.upstream;
        group.report_connect_failure(index);
        group.targets[index].counters.inc(Outcome::ConnectError);
        ctx.active = None;
        ctx.target = None;
        let attempts = ctx.tried.len() as u32;
        let another = (0..group.targets.len())
            .any(|i| !ctx.tried.contains(&i) && group.targets[i].available());
        if attempts <= group.config.retries && another {
            e.set_retry(true);
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
            let mut view = ReqView(upstream);
            for f in &route.filters {
                f.upstream_request(&mut view, &ctx.req);
            }
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        ctx.upstream_responded = true;
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
            for f in route.filters.iter().rev() {
                f.response_body(body, end_of_stream, &mut ctx.req);
            }
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
            let mut view = RespView(resp);
            for f in route.filters.iter().rev() {
                f.response(&mut view, &mut ctx.req);
            }
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
        let upstream = ctx.route.as_ref().map_or("", |r| r.upstream.name());
        let (status, code, message) = classify(e, ctx.failure, upstream);
        if status != 0 && session.response_written().is_none() {
            let local =
                LocalResponse::error(status_code(status), code, &message, &ctx.req.request_id);
            let filters = ctx
                .route
                .as_ref()
                .map(|r| r.filters.clone())
                .unwrap_or_default();
            if let Err(write_error) = respond(session, ctx, local, &filters).await {
                tracing::debug!(error = %write_error, "could not send the error response");
            }
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Box<Ctx>) {
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
            for f in &route.filters {
                f.logging(&ctx.req, status);
            }
        }
        ctx.active = None;
    }
}

/// The consistent-hash key for this request, if the group hashes.
fn hash_key(
    balance: &crate::config::Balance,
    req: &RequestContext,
    head: &RequestHeader,
) -> Option<Vec<u8>> {
    let crate::config::Balance::ConsistentHash(on) = balance else {
        return None;
    };
    match on {
        HashOn::Consumer => req.consumer.as_ref().map(|c| c.as_bytes().to_vec()),
        HashOn::Ip => req.client_ip.map(|ip| ip.to_string().into_bytes()),
        HashOn::Header(name) => head.headers.get(name).map(|v| v.as_bytes().to_vec()),
    }
}
