//! Requests that must run to the end even if their client leaves: a filter set
//! [`RequestContext::detach`] (`idempotency`, once it holds a key).
//!
//! ## Why
//!
//! Pingora 0.9.1 proxies with the client and the upstream in one loop
//! (`proxy_h1.rs`, `proxy_handle_downstream`): when the client closes its
//! connection while the upstream works (`read_body_or_idle` sees the FIN, with the
//! default `abort_on_close`) or a write to the client fails, the loop returns the
//! error and the upstream half is dropped with it. The rest of the upstream's
//! answer is never read and the body filters never see its end. Only a cache fill
//! keeps reading after the client left. For an idempotency key that would mean a
//! payment made upstream whose answer is never stored: the key is released (or
//! expires) and the client's retry pays again.
//!
//! ## How
//!
//! The upstream exchange runs as a Pingora subrequest (`SubrequestSpawner`,
//! Pingora's own mechanism for background fetches): the same `ProxyHttp` hooks
//! with a downstream that is an in-memory channel, in a task of its own. The
//! request's context, its request head as the filters left it and the body the
//! gateway read are handed over whole ([`Handover`]), so the subrequest skips
//! straight to the upstream (`upstream_peer`, retries, forwarding headers, the
//! response phases, gateway errors). This side relays what the subrequest writes
//! to the client. If the client goes away, this side keeps draining the channel,
//! so the subrequest reads the upstream's answer to its end whatever the client
//! does.
//!
//! When the subrequest ends, its `logging` hook runs the filters' settle phase
//! (the idempotency filter stores the answer) and hands the context back. The
//! relay holds back the last piece it received until then: a client has the whole
//! answer only once it is stored, so a retry sent right after finds it.

use super::Ctx;
use http::header;
use pingora::http::RequestHeader;
use pingora::protocols::http::HttpTask;
use pingora::proxy::subrequest::{BodyMode, Ctx as SubrequestCtx};
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};
use tokio::sync::oneshot;

/// What the subrequest takes over: the whole context, the request head to send,
/// and where to give the context back.
pub(super) struct Handover(Option<Parcel>);

struct Parcel {
    ctx: Box<Ctx>,
    head: RequestHeader,
    back: oneshot::Sender<Box<Ctx>>,
}

/// In a subrequest this gateway spawned: the parent's context (to replace the
/// fresh one), with the request head the parent's filters left.
pub(super) fn adopt(session: &mut Session) -> Option<Box<Ctx>> {
    let handover = session
        .subrequest_ctx
        .as_mut()?
        .user_ctx_mut()?
        .downcast_mut::<Handover>()?;
    let Parcel {
        mut ctx,
        head,
        back,
    } = handover.0.take()?;
    *session.req_header_mut() = head;
    ctx.handback = Some(back);
    Some(ctx)
}

/// Runs the request's upstream exchange apart from the client and relays its
/// answer. `Ok(false)` when no subrequest can be made: the request is then proxied
/// in place, as any other. An error when the client went away (the exchange still
/// ran to its end) or the answer broke off.
pub(super) async fn run(session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
    let body = ctx.body.clone();
    // The subrequest reads the request head from the client's session: over
    // HTTP/2 that is this head, whose body length must be explicit there.
    if let Some(body) = &body {
        let req = session.req_header_mut();
        if !req.headers.contains_key(header::TRANSFER_ENCODING) {
            req.insert_header(header::CONTENT_LENGTH, body.len())?;
        }
    }
    let head = session.req_header().clone();
    // ... and parses it as HTTP/1.1, which has no `HTTP/2` request line: the head
    // it reads only has to parse; the one it sends is `head`, as it was.
    let version = head.version;
    session.req_header_mut().set_version(http::Version::HTTP_11);
    let Some(spawner) = session.subrequest_spawner.as_ref() else {
        session.req_header_mut().set_version(version);
        return Ok(false);
    };
    let (back, returned) = oneshot::channel();
    let parcel = Parcel {
        ctx: Box::new(std::mem::replace(ctx, Ctx::blank())),
        head,
        back,
    };
    let mode = if body.is_some() {
        BodyMode::ExpectBody
    } else {
        BodyMode::NoBody
    };
    let sub = SubrequestCtx::builder()
        .body_mode(mode)
        .user_ctx(Box::new(Handover(Some(parcel))))
        .build();
    let (prepared, mut handle) = spawner.create_subrequest(&session.downstream_session, sub);
    session.req_header_mut().set_version(version);
    let exchange = tokio::spawn(prepared.run());
    if let Some(body) = body {
        // The subrequest reads it before going upstream; it cannot be gone yet.
        let _ = handle.tx.send(HttpTask::Body(Some(body), true)).await;
    }

    // Relay, one task behind: the last piece of the answer and its end wait until
    // the exchange has settled.
    let mut held: Option<HttpTask> = None;
    let mut end: Option<HttpTask> = None;
    let mut client_error: Option<Box<Error>> = None;
    while let Some(task) = handle.rx.recv().await {
        if task.is_end() {
            end = Some(task);
            break;
        }
        if let Some(previous) = held.replace(task) {
            relay(session, previous, &mut client_error).await;
        }
    }
    // Keeps `handle` (its sender) alive: a subrequest whose input closes before it
    // finished treats that as its client leaving.
    if exchange.await.is_err() {
        tracing::error!("the detached upstream exchange panicked");
    }
    drop(handle);
    match returned.await {
        Ok(back) => *ctx = *back,
        Err(_) => tracing::error!("the detached upstream exchange kept the request's context"),
    }
    if let Some(last) = held {
        relay(session, last, &mut client_error).await;
    }
    match end {
        Some(HttpTask::Failed(e)) => return Err(e),
        Some(end) => relay(session, end, &mut client_error).await,
        None => {
            return Error::e_explain(
                ErrorType::ConnectionClosed,
                "the detached upstream exchange ended before its answer did",
            )
        }
    }
    match client_error {
        Some(e) => Err(e),
        None => Ok(true),
    }
}

/// Writes one task to the client, until a write fails; after that, tasks are
/// dropped (the exchange goes on without the client).
async fn relay(session: &mut Session, task: HttpTask, client_error: &mut Option<Box<Error>>) {
    if client_error.is_some() {
        return;
    }
    if let Err(e) = session.write_response_tasks(vec![task]).await {
        tracing::debug!(error = %e, "client gone during a detached exchange; it runs to its end");
        *client_error = Some(e);
    }
}
