//! Responses the gateway makes itself: a filter's answer, an edge refusal, an
//! error; and the one reader of a whole request body for the gateway's own use.
//!
//! A filter's answer passes back through the response phase of the filters already
//! entered (itself included); an edge refusal comes before any filter.

use super::headers::{ReqView, RespView};
use super::Ctx;
use crate::edge::checks::Framing;
use crate::error::{ErrorCode, GatewayError, LocalResponse};
use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue, Method};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;
use std::future::Future;
use std::pin::Pin;

/// Runs the route's filter chain on the request; `Ok(true)` when a filter answered
/// (the answer is sent).
pub(super) async fn run_request_filters(session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
    let Some(route) = ctx.route.clone() else {
        return Ok(false);
    };
    let answer = {
        let mut view = ReqView(session.req_header_mut());
        route
            .filters
            .request(&mut view, &mut ctx.req, &mut ctx.entered)
            .await
    };
    match answer {
        Some(local) => respond(session, ctx, local).await.map(|()| true),
        None => Ok(false),
    }
}

/// Writes a gateway-made response, after the response phase of the filters the
/// request entered (last first). Every answer the gateway makes passes here.
///
/// Boxed: a future holds the state of everything it awaits inline, and Pingora's
/// hooks (`async_trait`) move each hook's whole future to the heap on every call.
/// Inline, this rare path (a response head and Pingora's write futures, ~1.2 KB)
/// made `request_filter`'s future ~1.7 KB, copied for every proxied request.
pub(super) fn respond<'a>(
    session: &'a mut Session,
    ctx: &'a mut Ctx,
    local: LocalResponse,
) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>> {
    Box::pin(write_local(session, ctx, local))
}

async fn write_local(session: &mut Session, ctx: &mut Ctx, local: LocalResponse) -> Result<()> {
    let mut head = ResponseHeader::build(local.status, Some(local.headers.len() + 2))?;
    for (name, value) in local.headers {
        head.append_header(name, value)?;
    }
    head.insert_header(header::CONTENT_LENGTH, local.body.len())?;
    // Every gateway-made answer names its request, whatever the filters are.
    if head.headers.get(X_REQUEST_ID).is_none() {
        if let Ok(id) = HeaderValue::from_str(&ctx.req.request_id) {
            head.insert_header(X_REQUEST_ID, id)?;
        }
    }
    if let Some(route) = &ctx.route {
        let mut view = RespView(&mut head);
        route.filters.response(&mut view, &mut ctx.req, ctx.entered);
    }
    ctx.local_status = local.status.as_u16();
    let head_only = session.req_header().method == Method::HEAD;
    session
        .write_response_header(Box::new(head), head_only)
        .await?;
    if !head_only {
        session.write_response_body(Some(local.body), true).await?;
    }
    // In a detached exchange's subrequest (`detach.rs`) the end of an answer is a
    // task of its own, which an error answer would otherwise never send.
    if session.subrequest_ctx.is_some() {
        session.downstream_session.finish_body().await?;
    }
    Ok(())
}

const X_REQUEST_ID: &str = "x-request-id";

/// Answers a refusal (through [`respond`]); a refusal marked `close` (framing can
/// no longer be trusted) also ends the connection.
pub(super) async fn reject(
    session: &mut Session,
    ctx: &mut Ctx,
    error: GatewayError,
) -> Result<()> {
    if error.close {
        session.set_keepalive(None);
    }
    let local = error.into_response(Some(&ctx.req.request_id));
    respond(session, ctx, local).await
}

/// 413 when the declared body is over the route's limit (or any body where none is allowed).
pub(super) fn body_refusal(framing: Framing, max_body: u64) -> Option<GatewayError> {
    let too_big = match framing.content_length {
        Some(n) => n > max_body,
        None => framing.chunked && max_body == 0,
    };
    too_big.then(|| {
        GatewayError::new(
            ErrorCode::PayloadTooLarge,
            format!("this route accepts request bodies up to {max_body} bytes"),
        )
        .closing()
    })
}

/// The whole request body, or `None` when it is larger than `limit` (judged from
/// `Content-Length` before reading, and while reading for chunked bodies).
pub(super) async fn read_body(session: &mut Session, limit: u64) -> Result<Option<Bytes>> {
    let declared = session
        .req_header()
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Ok(None);
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = session.read_request_body().await? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}
