//! The per-request record: metrics and one access-log line (spec §7, §8).

use super::Ctx;
use crate::logging::access;
use crate::metrics::metrics;
use pingora::proxy::Session;
use pingora::{Error, ErrorType};

/// Method label values: a fixed set, so a client inventing methods cannot create
/// unbounded series.
fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Status label values: three digits, from a table so no formatting per request.
fn status_label(status: u16, buf: &mut itoa::Buffer) -> &str {
    buf.format(status)
}

pub(super) fn record(session: &Session, e: Option<&Error>, ctx: &Ctx, status: u16) {
    let m = metrics();
    let elapsed = ctx.req.started.elapsed();
    let route = ctx.req.route_label();
    let mut buf = itoa::Buffer::new();
    m.requests_total
        .with_label_values(&[
            route,
            method_label(&ctx.req.method),
            status_label(status, &mut buf),
        ])
        .inc();
    match &ctx.route {
        Some(r) => r.duration.observe(elapsed.as_secs_f64()),
        None => m
            .request_duration_seconds
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64()),
    }
    let target = ctx
        .route
        .as_ref()
        .zip(ctx.target)
        .and_then(|(r, i)| r.upstream.targets.get(i).map(|t| (r, t)));
    if let Some((r, t)) = target {
        let outcome = match e.map(|e| e.etype()) {
            _ if ctx.upstream_responded => "ok",
            Some(ErrorType::ReadTimedout | ErrorType::WriteTimedout) => "timeout",
            _ => "error",
        };
        m.upstream_requests_total
            .with_label_values(&[r.upstream.name(), &t.label, outcome])
            .inc();
    }
    access::write(&access::Entry {
        request_id: &ctx.req.request_id,
        route,
        method: ctx.req.method.as_str(),
        path: session.req_header().uri.path(),
        client: ctx.req.client_ip,
        status,
        duration: elapsed,
        upstream: target.map(|(_, t)| t.label.as_str()),
        consumer: ctx.req.consumer.as_deref(),
        cache: ctx.req.cache,
        error: e.map(|e| e.etype().as_str()),
    });
}
