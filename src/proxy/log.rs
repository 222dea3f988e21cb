//! The per-request record: metrics and one access-log line.

use super::Ctx;
use crate::edge::tls::version_label;
use crate::logging::access;
use crate::metrics::{count_request, metrics, Outcome};
use pingora::proxy::Session;
use pingora::{Error, ErrorType};

pub(super) fn record(session: &Session, e: Option<&Error>, ctx: &Ctx, status: u16) {
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
    let tls = session
        .digest()
        .and_then(|d| d.ssl_digest.as_deref())
        .map(|t| version_label(&t.version));
    access::write(&access::Entry {
        request_id: &ctx.req.request_id,
        route,
        method: ctx.req.method.as_str(),
        path: session.req_header().uri.path(),
        client: ctx.req.client_ip,
        http,
        tls,
        status,
        duration: elapsed,
        upstream: target.map(|t| t.label.as_str()),
        consumer: ctx.req.consumer.as_deref(),
        cache: ctx.req.cache,
        error: etype.map(ErrorType::as_str),
    });
}
