//! The request phase of one request as named steps, read top to bottom in
//! [`request_phase`]:
//!
//! 1. **admit** — the trace context, edge checks on the head, the normalised path,
//!    the client address;
//! 2. **route** — the matched route (404 / 405 otherwise) and the path to send
//!    upstream; a CORS preflight is answered here by the route it asks about;
//! 3. **filters** — the route's filter chain, which may answer; then the declared
//!    body size against the route's limit (413);
//! 4. **target** — a built-in endpoint (`serve:`) answers here; for an upstream,
//!    Pingora goes on to the upstream attempt (`upstream_peer`), the response
//!    phase and the log, in `proxy.rs`.
//!
//! A step refuses by returning a [`GatewayError`]; [`request_phase`] is the one
//! place that turns it into an answer.

use super::local::{body_refusal, read_body, reject, respond, run_request_filters};
use super::{builtin, detach, headers, Ctx};
use crate::edge::checks::{check_head, Framing};
use crate::edge::forwarded::{self, Owned};
use crate::edge::tls::client_certificate;
use crate::error::{ErrorCode, GatewayError, LocalResponse};
use crate::normalize::normalize_path;
use crate::routing::Lookup;
use crate::runtime::{Route, Runtime, Target};
use crate::trace::{RequestTrace, TRACESTATE};
use http::{header, HeaderValue, Method};
use pingora::proxy::Session;
use pingora::Result;
use std::sync::Arc;

/// `Ok(true)` when the gateway answered; `Ok(false)` to proxy the request.
pub(super) async fn request_phase(
    session: &mut Session,
    ctx: &mut Ctx,
    runtime: &Runtime,
) -> Result<bool> {
    let admitted = admit(session, ctx, runtime);
    let admitted = match admitted {
        Ok(admitted) => admitted,
        Err(refusal) => return reject(session, ctx, refusal).await.map(|()| true),
    };
    // A CORS preflight is answered by the route the real request would take.
    if let Some(answer) = preflight(session, ctx, runtime, &admitted.path) {
        return respond(session, ctx, answer).await.map(|()| true);
    }
    let framing = admitted.framing;
    let route = match route(session, ctx, runtime, admitted) {
        Ok(route) => route,
        Err(refusal) => return reject(session, ctx, refusal).await.map(|()| true),
    };
    // Boxed: a future holds what it awaits inline, and only routes with filters
    // should pay for the filter chain's state.
    if !route.filters.is_empty() && Box::pin(run_request_filters(session, ctx)).await? {
        return Ok(true);
    }
    // After the filters, so that their answer headers (CORS) are on this refusal too.
    if let Some(refusal) = body_refusal(framing, route.max_body) {
        return reject(session, ctx, refusal).await.map(|()| true);
    }
    // A filter that reads the body (`validate`, `idempotency`) sees it whole
    // before anything goes upstream; the body it saw is what is forwarded.
    if let (Some(limit), true) = (route.filters.body_limit(), ctx.req.has_body) {
        let limit = limit.min(route.max_body);
        match Box::pin(check_body(session, ctx, &route, limit)).await? {
            BodyVerdict::Pass => {}
            BodyVerdict::Refuse(refusal) => {
                return reject(session, ctx, refusal).await.map(|()| true)
            }
            BodyVerdict::Answer(answer) => {
                return respond(session, ctx, answer).await.map(|()| true)
            }
        }
    }
    match route.target {
        Target::Upstream(_) => {
            headers::make_room(session.req_header_mut());
            if ctx.req.detach {
                // A filter needs the upstream's whole answer even if the client leaves.
                Box::pin(detach::run(session, ctx)).await
            } else {
                Ok(false)
            }
        }
        Target::Serve(builtin) => {
            Box::pin(builtin::serve(session, ctx, &runtime.auth, builtin)).await?;
            Ok(true)
        }
    }
}

/// A CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
/// matched to the route of the method it asks about, answered by that route's
/// filters (`cors`) before any of them runs on the request. None when the request
/// is no preflight, or no filter of that route answers it (then it is an ordinary
/// `OPTIONS` request).
fn preflight(
    session: &Session,
    ctx: &mut Ctx,
    runtime: &Runtime,
    path: &str,
) -> Option<LocalResponse> {
    let req = session.req_header();
    if req.method != Method::OPTIONS || !req.headers.contains_key(header::ORIGIN) {
        return None;
    }
    let asked = req.headers.get(header::ACCESS_CONTROL_REQUEST_METHOD)?;
    let asked = Method::from_bytes(asked.as_bytes()).ok()?;
    let Lookup::Found { route: &index, .. } =
        runtime.table.find(ctx.req.host.as_deref(), &asked, path)
    else {
        return None;
    };
    let route = runtime.route(index)?;
    let answer = route.filters.preflight(&req.headers, &ctx.req)?;
    ctx.req.path = path.to_owned();
    ctx.req.route = Some(route.name.clone());
    Some(answer)
}

/// What the filters that read the body made of it.
enum BodyVerdict {
    Pass,
    Refuse(GatewayError),
    /// A filter answered (e.g. an idempotent replay).
    Answer(LocalResponse),
}

/// Reads the whole body (at most `limit` bytes) into Pingora's retry buffer,
/// which it forwards from, and hands it to the filters that read bodies. The
/// body stays in the context for a built-in endpoint and a detached exchange.
async fn check_body(
    session: &mut Session,
    ctx: &mut Ctx,
    route: &Route,
    limit: u64,
) -> Result<BodyVerdict> {
    session.enable_retry_buffering();
    let Some(body) = read_body(session, limit).await? else {
        return Ok(BodyVerdict::Refuse(
            GatewayError::new(
                ErrorCode::PayloadTooLarge,
                format!("this route reads request bodies of up to {limit} bytes"),
            )
            .closing(),
        ));
    };
    if let Some(answer) = route.filters.request_body(&body, &mut ctx.req).await {
        return Ok(BodyVerdict::Answer(answer));
    }
    ctx.body = Some(body);
    Ok(BodyVerdict::Pass)
}

/// What admission found out about the request.
struct Admitted {
    /// The normalised path: what routing and the upstream see.
    path: String,
    framing: Framing,
}

/// Step 1: edge checks, normalisation, client address; sets the connection's
/// timers and removes identity headers a client may not send.
fn admit(
    session: &mut Session,
    ctx: &mut Ctx,
    runtime: &Runtime,
) -> Result<Admitted, GatewayError> {
    let limits = &runtime.config.limits;
    // Keep-alive without Pingora's timer: the shield ends idle connections
    // (limits.idle_timeout) with one timer per connection, not one per request.
    session.set_keepalive(Some(0));
    session.set_read_timeout(Some(limits.body_timeout));
    // Requests sent before the previous answer (pipelining) are answered in order:
    // Pingora keeps the bytes read past this request for the next one instead of
    // dropping the connection (the shield tells the requests apart on the raw bytes).
    session.set_pipelining_enabled(true);
    if let Some(tracer) = &runtime.tracer {
        let (trace, drop_state) = RequestTrace::begin(tracer, &session.req_header().headers);
        if drop_state {
            session.req_header_mut().remove_header(TRACESTATE);
        }
        ctx.trace = Some(trace);
    }
    let req = session.req_header();
    ctx.req.method = req.method.clone();
    ctx.peer_ip = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    ctx.req.client_ip = ctx
        .peer_ip
        .map(|peer| forwarded::client_ip(peer, &req.headers, &runtime.config.trusted_proxies));
    // A client certificate the listener verified, for the `mtls` filter.
    if let Some(cert) = client_certificate(session.digest()) {
        ctx.req.extensions.insert(cert);
    }
    let head = check_head(req, req.raw_path().len(), limits)?;
    ctx.req.host = Some(head.host.to_owned());
    let framing = head.framing;
    let owned = head.owned;
    ctx.req.has_body = framing.carries_body();
    let path = normalize_path(req.uri.path())
        .map_err(|e| GatewayError::new(ErrorCode::BadRequest, e.to_string()).closing())?
        .into_owned();
    // Headers only the gateway may state, in any spelling (noted by the edge checks).
    if owned != Owned::No {
        let trusted = ctx
            .peer_ip
            .is_some_and(|p| forwarded::trusted(p, &runtime.config.trusted_proxies));
        if owned == Owned::Always || !trusted {
            headers::strip_client_headers(session.req_header_mut(), trusted);
        }
    }
    Ok(Admitted { path, framing })
}

/// Step 2: the route, the path to send upstream, and the body limit by the
/// declared length.
fn route(
    session: &mut Session,
    ctx: &mut Ctx,
    runtime: &Runtime,
    admitted: Admitted,
) -> Result<Arc<Route>, GatewayError> {
    let Admitted { path, framing } = admitted;
    let req = session.req_header();
    let query = req.uri.query();
    let found = match runtime
        .table
        .find(ctx.req.host.as_deref(), &req.method, &path)
    {
        Lookup::Found {
            route: &index,
            params,
        } => {
            let Some(route) = runtime.route(index) else {
                // The table and the routes come from one validation.
                return Err(GatewayError::new(
                    ErrorCode::InternalError,
                    "the route table names no route",
                ));
            };
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
            return Err(method_not_allowed(&ctx.req.method, &allow));
        }
        Lookup::NotFound => {
            ctx.req.path = path;
            return Err(GatewayError::new(
                ErrorCode::RouteNotFound,
                "no route matches this request",
            ));
        }
    };
    ctx.req.path = path;
    ctx.req.query = query.map(str::to_owned);
    ctx.req.route = Some(found.name.clone());
    ctx.route = Some(found.clone());
    if framing.chunked {
        // Chunk framing is where parsers disagree (e.g. a bare LF in a chunk
        // extension); after a chunked body nothing more is read from this
        // connection, so no second request can hide in it.
        session.set_keepalive(None);
    }
    Ok(found)
}

fn method_not_allowed(method: &Method, allow: &[Method]) -> GatewayError {
    let allow: Vec<&str> = allow.iter().map(Method::as_str).collect();
    let allow = allow.join(", ");
    let refusal = GatewayError::new(
        ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed here; allowed: {allow}"),
    );
    match HeaderValue::from_str(&allow) {
        Ok(v) => refusal.with_header(header::ALLOW, v),
        Err(_) => refusal,
    }
}
