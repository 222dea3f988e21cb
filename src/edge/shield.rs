//! Connection-level protection around Pingora's HTTP services (the public proxy and
//! the admin listener): a cap on concurrent connections, a total deadline for
//! receiving each request head, a limit on a head's size while it arrives, a
//! minimum request-body rate, a limit on the chunks of a chunked body, a deadline
//! for a client to take response bytes, and the idle limit between requests.
//!
//! Pingora reads request headers before any proxy hook runs, its read timeout
//! restarts on every byte, and it buffers a head up to 1 MiB before judging it; its
//! writes wait as long as a client does. [`Shield`] wraps each accepted stream in a
//! [`Guarded`] stream that follows the requests on the raw bytes ([`framing`]):
//! reads fail once a head takes longer than `header_timeout` or grows past
//! `max_header_bytes`, or a chunked body passes `max_chunks`; writes fail once the
//! client has taken nothing for `write_timeout`. After a head, a body must arrive
//! at `min_body_rate` on average (after a grace period). Between requests, a
//! kept-alive connection idle for `idle_timeout` is ended.

mod framing;
mod opening;
mod refusal;

pub use opening::{accepts_on, ListenerMode, ListenerSource};
pub use refusal::status_of as refusal_status;

use super::limits::Limits;
use async_trait::async_trait;
use framing::{FrameLimits, Position, Tracker, Violation};
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, Stream, UniqueID,
    UniqueIDType, ALPN,
};
use pingora::protocols::{SocketDigest, TimingDigest};
use pingora::server::ShutdownWatch;
use refusal::Refused;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// Body uploads slower than the minimum rate are tolerated this long, so a client's
/// TCP slow start or a short stall is not punished.
const BODY_RATE_GRACE: Duration = Duration::from_secs(5);

/// Where a new connection reads the limits in force (the live configuration's,
/// so they follow reloads); given by the server, so the shield needs no runtime.
pub type LimitsSource = Arc<dyn Fn() -> Limits + Send + Sync>;

/// Wraps a Pingora app (the HTTP proxy, the admin app) with the connection guards.
pub struct Shield<A> {
    inner: Arc<A>,
    /// Each new connection takes the limits in force when it is accepted, so they
    /// follow reloads.
    limits: LimitsSource,
    connections: Arc<Semaphore>,
    /// TLS and h2c by listener; `None`: every connection is plain HTTP/1.
    listeners: Option<ListenerSource>,
}

impl<A> Shield<A> {
    /// `max_connections` caps this listener's concurrent connections (fixed for
    /// the life of the process: the semaphore is sized once).
    pub fn new(inner: A, limits: LimitsSource, max_connections: usize) -> Self {
        Self {
            inner: Arc::new(inner),
            limits,
            connections: Arc::new(Semaphore::new(max_connections)),
            listeners: None,
        }
    }

    /// Connections start as their listener's mode says (TLS, h2c).
    #[must_use]
    pub fn with_listeners(mut self, listeners: ListenerSource) -> Self {
        self.listeners = Some(listeners);
        self
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Shield<A> {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // Pingora serves a connection's kept-alive requests inside one call; a stream
        // that is already guarded would only come from an app passing it on.
        if !stream.as_any().is::<Guarded>() {
            let Ok(permit) = self.connections.clone().try_acquire_owned() else {
                tracing::warn!("connection cap reached: refusing a new client connection");
                let answer = refusal::answer(&refusal::too_many_connections());
                let _ = stream.write_all(&answer).await;
                let _ = stream.flush().await;
                Shutdown::shutdown(&mut *stream).await;
                return None;
            };
            let limits = ConnLimits::from(&(self.limits)());
            let mode = self
                .listeners
                .as_ref()
                .and_then(|l| opening::local_addr(&stream).and_then(|a| l(a)));
            let opened = opening::open(stream, mode, limits.header_timeout).await?;
            stream = Box::new(Guarded::new(opened, permit, limits));
        }
        self.inner.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

/// The limits one connection is held to, as configured when it was accepted.
#[derive(Debug, Clone, Copy)]
struct ConnLimits {
    header_timeout: Duration,
    write_timeout: Duration,
    min_body_rate: u64,
    frame: FrameLimits,
}

impl From<&Limits> for ConnLimits {
    fn from(l: &Limits) -> Self {
        Self {
            header_timeout: l.header_timeout,
            write_timeout: l.write_timeout,
            min_body_rate: l.min_body_rate,
            frame: FrameLimits {
                max_header_bytes: l.max_header_bytes,
                max_chunks: l.max_chunks,
            },
        }
    }
}

/// Why bytes just read end the connection.
enum Cut {
    Refuse(Violation),
    SlowBody,
}

/// A client connection under the shield's rules. Holds its connection-cap permit.
pub struct Guarded {
    inner: Stream,
    _permit: OwnedSemaphorePermit,
    limits: ConnLimits,
    /// An HTTP/2 connection: its frames are not HTTP/1 framing, so reads are not
    /// followed (the HTTP/2 layer bounds headers and streams itself).
    http2: bool,
    /// Bytes read before the connection was handed over (while looking for the
    /// h2c preface), read again first; and how many of them have been.
    prefix: Vec<u8>,
    prefix_read: usize,
    /// An HTTP/2 connection has sent its first bytes.
    http2_started: bool,
    tracker: Tracker,
    /// The current head's deadline, `header_timeout` after the first time a read
    /// inside it had to wait (for the first request that is right after accept:
    /// a connection that sends nothing is also slow). Most heads arrive in one
    /// read, so most requests never read the clock or make a timer.
    deadline: Option<Pin<Box<Sleep>>>,
    /// The current body's first byte and its bytes since, for `min_body_rate`.
    body_rate: Option<(Instant, u64)>,
    /// Requests over (their response complete), counted by [`between_requests`].
    finished: AtomicU64,
    /// The request (1-based) whose response the last write belonged to.
    responding: u64,
    /// `idle_timeout` in milliseconds, as of the last [`between_requests`].
    idle_limit_ms: AtomicU64,
    /// When the current idle wait began (the first read between requests that had to wait).
    idle_since: Option<Instant>,
    /// The connection's idle timer, kept across requests and moved only when it
    /// fires before the current deadline. Pingora's own keep-alive timeout made,
    /// registered and dropped a timer for every request.
    idle_timer: Option<Pin<Box<Sleep>>>,
    /// A write is waiting for the client to take bytes; `write_timer` runs.
    write_waiting: bool,
    /// Kept across writes and moved when a new wait begins.
    write_timer: Option<Pin<Box<Sleep>>>,
    /// The shield answered a refusal itself: every later read and write fails with
    /// it (so no second answer follows), and closing skips the graceful shutdown.
    refused: Option<Refused>,
    /// The client stopped taking response bytes: closing skips the graceful
    /// shutdown, whose flush would wait on that client again.
    stalled: bool,
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("inner", &self.inner)
            .field("tracker", &self.tracker)
            .finish()
    }
}

/// A request on `stream` is over (its response complete, or about to be written in
/// full by an app that answers in one piece): the connection may now wait for its
/// next request for at most `idle`, then it is ended. Called at the end of every
/// request (the proxy's logging phase, the admin app's answer), so the limit
/// follows reloads.
pub fn between_requests(stream: Option<&Stream>, idle: Duration) {
    let Some(guarded) = stream.and_then(|s| s.as_any().downcast_ref::<Guarded>()) else {
        return;
    };
    let ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
    guarded.idle_limit_ms.store(ms, Ordering::Relaxed);
    guarded.finished.fetch_add(1, Ordering::Relaxed);
}

impl Guarded {
    fn new(opened: opening::Opened, permit: OwnedSemaphorePermit, limits: ConnLimits) -> Self {
        Self {
            inner: opened.stream,
            _permit: permit,
            limits,
            http2: opened.http2,
            prefix: opened.prefix,
            prefix_read: 0,
            http2_started: false,
            tracker: Tracker::default(),
            deadline: None,
            body_rate: None,
            finished: AtomicU64::new(0),
            responding: 0,
            idle_limit_ms: AtomicU64::new(0),
            idle_since: None,
            idle_timer: None,
            write_waiting: false,
            write_timer: None,
            refused: None,
            stalled: false,
        }
    }

    /// Advances over bytes just read.
    fn observe(&mut self, data: &[u8]) -> Result<(), Cut> {
        if data.is_empty() {
            return Ok(());
        }
        self.idle_since = None;
        let heads = self.tracker.heads();
        let body = self
            .tracker
            .feed(data, self.limits.frame)
            .map_err(Cut::Refuse)?;
        if self.tracker.heads() != heads {
            // A new request: its head deadline and body clock start afresh.
            self.deadline = None;
            self.body_rate = None;
        }
        if body > 0 && self.tracker.position() == Position::Body {
            let (started, bytes) = self.body_rate.get_or_insert_with(|| (Instant::now(), 0));
            *bytes += body;
            let elapsed = started.elapsed();
            if elapsed > BODY_RATE_GRACE
                && (*bytes as f64) < self.limits.min_body_rate as f64 * elapsed.as_secs_f64() / 2.0
            {
                return Err(Cut::SlowBody);
            }
        }
        Ok(())
    }

    /// Whether the shield may answer a refusal itself: only when no response of
    /// an earlier request (or, mid-body, of this one) is under way, so the answer
    /// can never land inside another response.
    fn may_answer(&self, v: Violation) -> bool {
        let finished = self.finished.load(Ordering::Relaxed);
        let heads = self.tracker.heads();
        match v {
            // The refused head is not counted yet: every counted one must be over.
            Violation::HeadTooLarge | Violation::AmbiguousFraming | Violation::UnreadableLength => {
                finished >= heads
            }
            // The body is the last counted head's.
            Violation::TooManyChunks => finished + 1 == heads && self.responding != heads,
        }
    }

    /// Ends the connection for `v`: answers when that is safe (best effort: the
    /// answer is small and the socket's buffer usually empty), then fails.
    fn refuse(&mut self, cx: &mut Context<'_>, v: Violation) -> std::io::Error {
        let frame = self.limits.frame;
        let refusal = refusal::describe(v, frame.max_header_bytes, frame.max_chunks);
        let status = refusal.status.as_u16();
        tracing::debug!(
            status,
            message = refusal.message,
            "connection refused by the shield"
        );
        if self.may_answer(v) {
            let answer = refusal::answer(&refusal);
            let _ = Pin::new(&mut self.inner).poll_write(cx, &answer);
            let _ = Pin::new(&mut self.inner).poll_flush(cx);
        }
        let refused = Refused { status };
        self.refused = Some(refused);
        refused.io_error()
    }

    /// A read has to wait: what the wait means depends on where the connection is.
    fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let heads = self.tracker.heads();
        match self.tracker.position() {
            Position::Head => self.poll_head_deadline(cx),
            // The first request's head is due from accept.
            Position::Boundary if heads == 0 => self.poll_head_deadline(cx),
            // Every request so far is over: the connection is idle. Reporting the
            // end of the stream reads to Pingora as a client closing its connection.
            Position::Boundary if *self.finished.get_mut() >= heads => match self.poll_idle(cx) {
                Poll::Ready(()) => Poll::Ready(Ok(())),
                Poll::Pending => Poll::Pending,
            },
            // A response is under way, or a body is awaited (Pingora's read
            // timeout and the body rate cover that).
            Position::Boundary | Position::Body => Poll::Pending,
        }
    }

    fn poll_head_deadline(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let timeout = self.limits.header_timeout;
        let expired = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)))
            .as_mut()
            .poll(cx)
            .is_ready();
        if expired {
            Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "request headers not received within limits.header_timeout",
            )))
        } else {
            Poll::Pending
        }
    }

    /// A read between requests has to wait: `Ready` once the connection has been
    /// idle for the limit.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let limit = Duration::from_millis(*self.idle_limit_ms.get_mut());
        let since = *self.idle_since.get_or_insert_with(Instant::now);
        let deadline = tokio::time::Instant::from_std(since + limit);
        let timer = self
            .idle_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() > deadline {
            // The limit was shortened by a reload.
            timer.as_mut().reset(deadline);
        }
        loop {
            match timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if timer.deadline() >= deadline => return Poll::Ready(()),
                // An earlier wait's deadline: this wait began later.
                Poll::Ready(()) => timer.as_mut().reset(deadline),
            }
        }
    }

    /// A write (or flush) of response bytes finished as `r`; `first` is the start
    /// of what was written (empty for a flush). A write the client takes nothing of
    /// for `write_timeout` fails: Pingora then drops the request, and with it the
    /// upstream connection that was feeding it.
    fn after_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<std::io::Result<T>>,
        progress: impl FnOnce(&T) -> bool,
        first: &[u8],
    ) -> Poll<std::io::Result<T>> {
        match &r {
            Poll::Pending => {
                if self.poll_write_stall(cx).is_ready() {
                    self.stalled = true;
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the client took no response bytes within limits.write_timeout",
                    )));
                }
            }
            Poll::Ready(Ok(v)) if progress(v) => {
                self.write_waiting = false;
                // A final (not 1xx) response has started: it belongs to the oldest
                // request not yet over.
                if !first.is_empty() && !is_interim(first) {
                    self.responding = *self.finished.get_mut() + 1;
                }
            }
            Poll::Ready(_) => {}
        }
        r
    }

    fn poll_write_stall(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.write_waiting {
            self.write_waiting = true;
            let at = tokio::time::Instant::now() + self.limits.write_timeout;
            match &mut self.write_timer {
                Some(timer) => timer.as_mut().reset(at),
                None => self.write_timer = Some(Box::pin(tokio::time::sleep_until(at))),
            }
        }
        match &mut self.write_timer {
            Some(timer) => timer.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

/// An interim (1xx) response head, e.g. the `100 Continue` sent before a client
/// uploads its body: the request is still going on. Pingora writes a head in one
/// piece.
fn is_interim(written: &[u8]) -> bool {
    (written.starts_with(b"HTTP/1.1 1") || written.starts_with(b"HTTP/1.0 1"))
        && written
            .get(10..12)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if let Some(refused) = this.refused {
            return Poll::Ready(Err(refused.io_error()));
        }
        let before = buf.filled().len();
        let replayed = this.prefix.get(this.prefix_read..).unwrap_or_default();
        if !replayed.is_empty() {
            let n = replayed.len().min(buf.remaining());
            buf.put_slice(&replayed[..n]);
            this.prefix_read += n;
            if this.prefix_read == this.prefix.len() {
                this.prefix = Vec::new();
                this.prefix_read = 0;
            }
            if this.http2 {
                this.http2_started = true;
                return Poll::Ready(Ok(()));
            }
            return match this.observe(&buf.filled()[before..]) {
                Ok(()) => Poll::Ready(Ok(())),
                Err(Cut::Refuse(v)) => Poll::Ready(Err(this.refuse(cx, v))),
                Err(Cut::SlowBody) => Poll::Ready(Err(slow_body())),
            };
        }
        if this.http2 {
            return match Pin::new(&mut this.inner).poll_read(cx, buf) {
                // Until its first bytes (the preface), an HTTP/2 connection is
                // held to the head deadline; then HTTP/2's idle timeout applies.
                Poll::Pending if !this.http2_started => this.poll_head_deadline(cx),
                r => {
                    this.http2_started |= buf.filled().len() > before;
                    this.deadline = None;
                    r
                }
            };
        }
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => match this.observe(&buf.filled()[before..]) {
                Ok(()) => Poll::Ready(Ok(())),
                Err(Cut::Refuse(v)) => Poll::Ready(Err(this.refuse(cx, v))),
                Err(Cut::SlowBody) => Poll::Ready(Err(slow_body())),
            },
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_wait(cx),
        }
    }
}

fn slow_body() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "request body slower than limits.min_body_rate",
    )
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if let Some(refused) = this.refused {
            return Poll::Ready(Err(refused.io_error()));
        }
        let r = Pin::new(&mut this.inner).poll_write(cx, data);
        this.after_write(cx, r, |n| *n > 0, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if let Some(refused) = this.refused {
            return Poll::Ready(Err(refused.io_error()));
        }
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.after_write(cx, r, |()| true, &[])
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.refused.is_some() || this.stalled {
            return Poll::Ready(Ok(()));
        }
        let r = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.after_write(cx, r, |()| true, &[])
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if let Some(refused) = this.refused {
            return Poll::Ready(Err(refused.io_error()));
        }
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        this.after_write(cx, r, |n| *n > 0, first)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

// Everything else is the inner stream's.
#[async_trait]
impl Shutdown for Guarded {
    async fn shutdown(&mut self) {
        if self.refused.is_some() || self.stalled {
            // The flush inside a graceful shutdown would wait on the client again.
            return;
        }
        // A client that stops reading now cannot hold the close either.
        let limit = self.limits.write_timeout;
        let _ = tokio::time::timeout(limit, Shutdown::shutdown(&mut *self.inner)).await;
    }
}
impl UniqueID for Guarded {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}
impl Ssl for Guarded {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }
    /// HTTP/2 found by the h2c preface reads to Pingora as HTTP/2 chosen by ALPN.
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        if self.http2 {
            return Some(ALPN::H2);
        }
        self.inner.selected_alpn_proto()
    }
}
impl GetTimingDigest for Guarded {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}
impl GetProxyDigest for Guarded {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}
impl GetSocketDigest for Guarded {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}
#[async_trait]
impl Peek for Guarded {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        if !self.prefix.is_empty() {
            // Bytes were already taken off the stream: it cannot be peeked.
            return Ok(false);
        }
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_1xx_heads_are_interim() {
        assert!(super::is_interim(b"HTTP/1.1 100 Continue\r\n\r\n"));
        assert!(super::is_interim(b"HTTP/1.1 103 Early Hints\r\n"));
        assert!(!super::is_interim(b"HTTP/1.1 200 OK\r\n"));
        assert!(!super::is_interim(b"HTTP/1.1 1"));
        assert!(!super::is_interim(b"{\"a\":1}"));
    }
}
