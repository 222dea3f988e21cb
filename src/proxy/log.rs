//! The per-request record: metrics, one access-log line, and the request's spans.

use super::Ctx;
use crate::edge::tls::version_label;
use crate::logging::access;
use crate::metrics::{count_request, metrics, Outcome};
use crate::trace::ServerFacts;
use pingora::proxy::Session;
use pingora::{Error, ErrorType};
use std::borrow::Cow;

pub(super) fn record(session: &Session, e: Option<&Error>, ctx: &mut Ctx, status: u16) {
    let m = metrics();
    let elapsed = ctx.req.started.elapsed();
    let route = ctx.req.route_label();
    match &ctx.route {
        Some(r) => {
            r.requests.inc(&ctx.req.method, status);
            r.duration.observe(elapsed.as_secs_f64());
        }
        None => {
            count_request(route, &ctx.req.method, status);
            m.request_duration_seconds
                .with_label_values(&[route])
                .observe(elapsed.as_secs_f64());
        }
    }
    let target = ctx
        .route
        .as_ref()
        .zip(ctx.target)
        .and_then(|(r, i)| r.upstream()?.targets.get(i));
    // A detached exchange failed (or not) in its own subrequest.
    let etype = e.map(|e| e.etype()).or(ctx.detached_error.as_ref());
    if let Some(t) = target {
        let outcome = match etype {
            _ if ctx.req.upstream_responded => Outcome::Ok,
            Some(ErrorType::ReadTimedout | ErrorType::WriteTimedout) => Outcome::Timeout,
            _ => Outcome::Error,
        };
        t.counters.inc(outcome);
    }
    let http = match session.req_header().version {
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_10 => "1.0",
        _ => "1.1",
    };
    let tls = session.digest().and_then(|d| d.ssl_digest.as_deref());
    let (path, query) = logged_target(session, ctx);
    let trace_id = ctx.trace.as_ref().map(|t| t.trace_id_hex());
    access::write(&access::Entry {
        request_id: &ctx.req.request_id,
        route,
        method: ctx.req.method.as_str(),
        path: &path,
        query: query.as_deref(),
        client: ctx.req.client_ip,
        http,
        tls: tls.map(|t| version_label(&t.version)),
        status,
        duration: elapsed,
        upstream: target.map(|t| t.label.as_str()),
        consumer: ctx.req.consumer.as_deref(),
        cache: ctx.req.cache,
        error: etype.map(ErrorType::as_str),
        trace_id: trace_id.as_ref().and_then(|t| std::str::from_utf8(t).ok()),
    });
    let Some(trace) = ctx.trace.take() else {
        return;
    };
    let spans = trace.finish(|| ServerFacts {
        route: ctx.req.route.clone(),
        pattern: ctx.route.as_ref().map(|r| r.pattern.clone()),
        method: ctx.req.method.clone(),
        path: path.into_owned(),
        scheme: if tls.is_some() { "https" } else { "http" },
        protocol: http,
        host: ctx.req.host.clone(),
        client: ctx.req.client_ip,
        status,
        consumer: ctx.req.consumer.clone(),
        error: etype.map(ErrorType::as_str),
    });
    if let Some(spans) = spans {
        crate::trace::submit(spans);
    }
}

/// The path and query as logged: as the client sent them, except for the
/// values `logging.redact` lists, which are hashed. A route with redacted path
/// parameters logs the path as routed (normalised), so no other spelling of the
/// value can slip through.
fn logged_target<'a>(session: &'a Session, ctx: &Ctx) -> (Cow<'a, str>, Option<Cow<'a, str>>) {
    let uri = &session.req_header().uri;
    let Some(redact) = ctx
        .runtime
        .as_ref()
        .map(|r| &r.config.logging.redact)
        .filter(|r| !r.is_empty())
    else {
        return (Cow::Borrowed(uri.path()), uri.query().map(Cow::Borrowed));
    };
    let path = match &ctx.route {
        Some(route) if !route.redacted_segments.is_empty() => {
            Cow::Owned(redact.path(&ctx.req.path, &route.redacted_segments))
        }
        _ => Cow::Borrowed(uri.path()),
    };
    let query = uri.query().map(|q| match redact.query(q) {
        Cow::Borrowed(_) => Cow::Borrowed(q),
        Cow::Owned(o) => Cow::Owned(o),
    });
    (path, query)
}
