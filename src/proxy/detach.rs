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
//! with a downstream that is an in-memory channel. The request's context, its
//! request head as the filters left it and the body the gateway read are handed
//! over whole ([`Handover`]), so the subrequest skips straight to the upstream
//! (`upstream_peer`, retries, forwarding headers, the response phases, gateway
//! errors). Beside it, in the same task, the relay writes what the subrequest
//! answers to the client. If the client goes away, the relay keeps draining the
//! channel, so the subrequest reads the upstream's answer to its end whatever the
//! client does. (Pingora awaits a request's `request_filter` to its end and reads
//! nothing from the client meanwhile: a client leaving only makes writes fail.)
//!
//! When the subrequest ends, its `logging` hook runs the filters' settle phase
//! (the idempotency filter stores the answer) and hands the context back. The
//! relay holds back the last piece it received until then: a client has the whole
//! answer only once it is stored, so a retry sent right after finds it.

use super::Ctx;
use http::header;
use pingora::http::RequestHeader;
use pingora::protocols::http::subrequest::server::SubrequestHandle;
use pingora::protocols::http::HttpTask;
use pingora::proxy::subrequest::{BodyMode, Ctx as SubrequestCtx};
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};
use tokio::sync::{mpsc, oneshot};

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
    let (prepared, handle) = spawner.create_subrequest(&session.downstream_session, sub);
    session.req_header_mut().set_version(version);
    let SubrequestHandle { tx, mut rx, .. } = handle;
    if let Some(body) = body {
        // The channel holds it until the subrequest reads it.
        let _ = tx.send(HttpTask::Body(Some(body), true)).await;
    }
    // The exchange and the relay side by side, in this request's task (no task of
    // their own to wake). `tx` stays open until both end: a subrequest whose input
    // closes before it finished treats that as its client leaving.
    let ((), relayed) = tokio::join!(prepared.run(), relay(session, &mut rx, returned));
    drop(tx);
    match relayed.back {
        Some(back) => *ctx = *back,
        None => tracing::error!("the detached upstream exchange kept the request's context"),
    }
    match relayed.ended {
        Ended::Whole => relayed.client_error.map_or(Ok(true), Err),
        Ended::Failed(e) => Err(e),
        Ended::Broken => Error::e_explain(
            ErrorType::ConnectionClosed,
            "the detached upstream exchange ended before its answer did",
        ),
    }
}

/// How the relayed answer ended.
enum Ended {
    Whole,
    Failed(Box<Error>),
    /// The subrequest ended without ending its answer.
    Broken,
}

struct Relayed {
    /// The request's context, back from the subrequest.
    back: Option<Box<Ctx>>,
    ended: Ended,
    /// The first write to the client that failed.
    client_error: Option<Box<Error>>,
}

/// Relays the subrequest's answer to the client. What has arrived is written in
/// one go, except the last piece: it and the end wait until the subrequest hands
/// the context back, which it does once settled (the answer stored).
async fn relay(
    session: &mut Session,
    rx: &mut mpsc::Receiver<HttpTask>,
    returned: oneshot::Receiver<Box<Ctx>>,
) -> Relayed {
    let mut held: Vec<HttpTask> = Vec::new();
    let mut end = None;
    let mut client_error = None;
    while let Some(task) = rx.recv().await {
        held.push(task);
        while let Ok(task) = rx.try_recv() {
            held.push(task);
        }
        if let Some(i) = held.iter().position(HttpTask::is_end) {
            end = held.drain(i..).next();
            break;
        }
        if held.len() > 1 {
            let last = held.pop();
            write(session, std::mem::take(&mut held), &mut client_error).await;
            held.extend(last);
        }
    }
    let back = returned.await.ok();
    let ended = match end {
        Some(HttpTask::Failed(e)) => Ended::Failed(e),
        Some(task) => {
            held.push(task);
            Ended::Whole
        }
        None => Ended::Broken,
    };
    write(session, held, &mut client_error).await;
    Relayed {
        back,
        ended,
        client_error,
    }
}

/// Writes tasks to the client (one write), until a write fails; after that, tasks
/// are dropped (the exchange goes on without the client).
async fn write(session: &mut Session, tasks: Vec<HttpTask>, client_error: &mut Option<Box<Error>>) {
    if client_error.is_some() || tasks.is_empty() {
        return;
    }
    if let Err(e) = session.write_response_tasks(tasks).await {
        tracing::debug!(error = %e, "client gone during a detached exchange; it runs to its end");
        *client_error = Some(e);
    }
}
