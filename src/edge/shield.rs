//! Connection-level protection around Pingora's HTTP service: a cap on concurrent
//! client connections, a total deadline for receiving request headers, and a
//! minimum request-body rate.
//!
//! Pingora reads request headers before any proxy hook runs, and its read timeout
//! restarts on every byte, so a client sending one header byte per second keeps a
//! connection forever. [`Shield`] wraps each accepted stream in a [`Guarded`] stream
//! that watches the bytes go by: from the start of a request until the blank line
//! that ends its headers, reads fail once `header_timeout` has passed. After the
//! headers, a body must arrive at `min_body_rate` on average (after a grace period).
//! Between requests, a kept-alive connection idle for `idle_timeout` is ended.

use crate::config::Limits;
use crate::context::new_request_id;
use crate::error::{ErrorCode, GatewayError};
use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, Stream, UniqueID,
    UniqueIDType, ALPN,
};
use pingora::protocols::{SocketDigest, TimingDigest};
use pingora::server::ShutdownWatch;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// Body uploads slower than the minimum rate are tolerated this long, so a client's
/// TCP slow start or a short stall is not punished.
const BODY_RATE_GRACE: Duration = Duration::from_secs(5);

/// The refusal sent when the connection cap is reached.
fn too_many() -> Vec<u8> {
    GatewayError::new(
        ErrorCode::TooManyConnections,
        "the gateway is at its connection cap",
    )
    .retry_after(Duration::from_secs(1))
    .to_http1(Some(&new_request_id()))
}

/// Wraps a Pingora app (the HTTP proxy) with the connection guards.
pub struct Shield<A> {
    inner: Arc<A>,
    header_timeout: Duration,
    min_body_rate: u64,
    connections: Arc<Semaphore>,
}

impl<A> Shield<A> {
    pub fn new(inner: A, limits: &Limits) -> Self {
        Self {
            inner: Arc::new(inner),
            header_timeout: limits.header_timeout,
            min_body_rate: limits.min_body_rate,
            connections: Arc::new(Semaphore::new(limits.max_connections)),
        }
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
                let _ = stream.write_all(&too_many()).await;
                let _ = stream.flush().await;
                Shutdown::shutdown(&mut *stream).await;
                return None;
            };
            stream = Box::new(Guarded::new(
                stream,
                permit,
                self.header_timeout,
                self.min_body_rate,
            ));
        }
        self.inner.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

#[derive(Debug)]
enum Phase {
    /// Waiting for (the rest of) a request head.
    Head(HeadScanner),
    /// After the head: body bytes so far, since `started` (the first of them, so
    /// a request without a body never reads the clock here).
    Body {
        started: Option<Instant>,
        bytes: u64,
    },
}

/// A client connection under the shield's rules. Holds its connection-cap permit.
pub struct Guarded {
    inner: Stream,
    _permit: OwnedSemaphorePermit,
    phase: Phase,
    /// The current head's deadline, `header_timeout` after the first time a read
    /// inside it had to wait (for the first request that is right after accept:
    /// a connection that sends nothing is also slow). Most heads arrive in one
    /// read, so most requests never read the clock or make a timer (a timer per
    /// request showed in the load profile, benches/RESULTS.md).
    deadline: Option<Pin<Box<Sleep>>>,
    header_timeout: Duration,
    min_body_rate: u64,
    /// A response was written since the last head: the next bytes start a new request.
    responded: bool,
    /// Set when a request is over ([`between_requests`]); cleared by the next
    /// request's first byte.
    between: AtomicBool,
    /// `idle_timeout` in milliseconds, as of the last [`between_requests`].
    idle_limit_ms: AtomicU64,
    /// When the current idle wait began (the first read between requests that had to wait).
    idle_since: Option<Instant>,
    /// The connection's idle timer, kept across requests and moved only when it
    /// fires before the current deadline. Pingora's own keep-alive timeout made,
    /// registered and dropped a timer for every request.
    idle_timer: Option<Pin<Box<Sleep>>>,
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("inner", &self.inner)
            .field("phase", &self.phase)
            .finish()
    }
}

impl Guarded {
    fn new(
        inner: Stream,
        permit: OwnedSemaphorePermit,
        header_timeout: Duration,
        min_body_rate: u64,
    ) -> Self {
        Self {
            inner,
            _permit: permit,
            phase: Phase::Head(HeadScanner::default()),
            deadline: None,
            header_timeout,
            min_body_rate,
            responded: false,
            between: AtomicBool::new(false),
            idle_limit_ms: AtomicU64::new(0),
            idle_since: None,
            idle_timer: None,
        }
    }

    /// A read between requests has to wait: `Ready` once the connection has been
    /// idle for the limit (the caller then reports the end of the stream, which
    /// Pingora takes as a client closing a kept-alive connection).
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

    /// A write of response bytes starting with `first` finished as `r`: once a
    /// final (not 1xx) response has started, the next bytes read begin a new request.
    fn note_write(&mut self, r: &Poll<std::io::Result<usize>>, first: &[u8]) {
        if matches!(r, Poll::Ready(Ok(n)) if *n > 0) && !is_interim(first) {
            self.responded = true;
        }
    }

    /// Advances the phase over bytes just read; an error ends the connection.
    fn observe(&mut self, data: &[u8]) -> std::io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        if self.responded {
            self.responded = false;
            self.phase = Phase::Head(HeadScanner::default());
            self.deadline = None;
        }
        *self.between.get_mut() = false;
        self.idle_since = None;
        match &mut self.phase {
            Phase::Head(scanner) => {
                if let Some(end) = scanner.feed(data) {
                    if scanner.content_length && scanner.transfer_encoding {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            AMBIGUOUS_FRAMING,
                        ));
                    }
                    self.deadline = None;
                    let bytes = (data.len() - end) as u64;
                    self.phase = Phase::Body {
                        started: (bytes > 0).then(Instant::now),
                        bytes,
                    };
                }
            }
            Phase::Body { started, bytes } => {
                *bytes += data.len() as u64;
                let elapsed = started.get_or_insert_with(Instant::now).elapsed();
                if elapsed > BODY_RATE_GRACE
                    && (*bytes as f64) < self.min_body_rate as f64 * elapsed.as_secs_f64() / 2.0
                {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "request body slower than limits.min_body_rate",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// An interim (1xx) response head, e.g. the `100 Continue` sent before a client
/// uploads its body: the request is still going on, and the bytes that follow are
/// its body, not a new head. Pingora writes a head in one piece.
fn is_interim(written: &[u8]) -> bool {
    (written.starts_with(b"HTTP/1.1 1") || written.starts_with(b"HTTP/1.0 1"))
        && written
            .get(10..12)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
}

/// Why a connection is cut when a head carries both framing headers.
const AMBIGUOUS_FRAMING: &str = "Content-Length and Transfer-Encoding in one request";

/// The answer sent before cutting such a connection.
const AMBIGUOUS_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 98\r\nConnection: close\r\n\r\n{\"error\":\"bad_request\",\"message\":\"Content-Length and Transfer-Encoding together are ambiguous\"}";

/// Follows a request head as it arrives: finds the blank line that ends it and
/// notes the framing headers it carries.
///
/// Pingora resolves `Content-Length` + `Transfer-Encoding` itself (it drops the
/// length, per RFC 9112) before any proxy hook can see that both were sent; the raw
/// bytes are the only place left to refuse the request, as a smuggling attempt.
#[derive(Debug, Default)]
struct HeadScanner {
    /// Progress through the terminator: 0 nothing, 1 after `\n`, 2 after `\n\r`.
    matched: u8,
    /// The start of the current line, lowercased (enough for "transfer-encoding:").
    line: [u8; 18],
    line_len: u8,
    content_length: bool,
    transfer_encoding: bool,
}

impl HeadScanner {
    /// Returns the offset just past the blank line (`\r\n\r\n`, or `\n\n`, which
    /// HTTP parsers also accept) when it is in `data`.
    ///
    /// Line by line with `memchr` rather than byte by byte: real heads are several
    /// hundred bytes (cookies, user agents) and every one passes through here.
    fn feed(&mut self, data: &[u8]) -> Option<usize> {
        let mut pos = 0;
        while let Some(k) = memchr::memchr(b'\n', &data[pos..]) {
            let part = &data[pos..pos + k];
            // The line that just ended was empty (or only `\r`): the head is over.
            let blank = match self.matched {
                1 => part.is_empty() || part == b"\r",
                2 => part.is_empty(),
                _ => false,
            };
            if blank {
                return Some(pos + k + 1);
            }
            self.keep_line_start(part);
            self.classify_line();
            self.line_len = 0;
            self.matched = 1;
            pos += k + 1;
        }
        let rest = &data[pos..];
        if !rest.is_empty() {
            self.keep_line_start(rest);
            self.matched = u8::from(self.matched == 1 && rest == b"\r") * 2;
        }
        None
    }

    /// Keeps the first bytes of the current line, lowercased, for `classify_line`.
    fn keep_line_start(&mut self, part: &[u8]) {
        let have = usize::from(self.line_len);
        let take = part.len().min(self.line.len() - have);
        for (slot, b) in self.line[have..have + take].iter_mut().zip(part) {
            *slot = b.to_ascii_lowercase();
        }
        self.line_len += take as u8;
    }

    fn classify_line(&mut self) {
        let line = &self.line[..usize::from(self.line_len)];
        let names = |name: &[u8]| {
            line.strip_prefix(name)
                .and_then(|rest| rest.first())
                .is_some_and(|c| matches!(c, b':' | b' ' | b'\t'))
        };
        self.content_length |= names(b"content-length");
        self.transfer_encoding |= names(b"transfer-encoding");
    }
}

/// A request on `stream` is over (its response complete): the connection may now
/// wait for its next request for at most `idle`, then it is ended. Called at the
/// end of every request (the proxy's logging phase), so the limit follows reloads.
pub fn between_requests(stream: Option<&Stream>, idle: Duration) {
    let Some(guarded) = stream.and_then(|s| s.as_any().downcast_ref::<Guarded>()) else {
        return;
    };
    let ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
    guarded.idle_limit_ms.store(ms, Ordering::Relaxed);
    guarded.between.store(true, Ordering::Relaxed);
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let verdict = this.observe(&buf.filled()[before..]);
                if verdict
                    .as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::InvalidData)
                {
                    // Best effort: a fresh socket takes this small answer at once.
                    let _ = Pin::new(&mut this.inner).poll_write(cx, AMBIGUOUS_ANSWER);
                    let _ = Pin::new(&mut this.inner).poll_flush(cx);
                }
                Poll::Ready(verdict)
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending if *this.between.get_mut() => match this.poll_idle(cx) {
                Poll::Ready(()) => Poll::Ready(Ok(())),
                Poll::Pending => Poll::Pending,
            },
            Poll::Pending => {
                // Waiting inside a request head: the deadline decides.
                let waiting_in_head = matches!(this.phase, Phase::Head(_)) && !this.responded;
                let timeout = this.header_timeout;
                let expired = waiting_in_head
                    && this
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
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_write(cx, data);
        this.note_write(&r, data);
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        this.note_write(&r, first);
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

// Everything else is the inner stream's.
#[async_trait]
impl Shutdown for Guarded {
    async fn shutdown(&mut self) {
        Shutdown::shutdown(&mut *self.inner).await;
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
    fn selected_alpn_proto(&self) -> Option<ALPN> {
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
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::HeadScanner;

    fn scan(chunks: &[&[u8]]) -> (Option<(usize, usize)>, bool, bool) {
        let mut h = HeadScanner::default();
        let end = chunks
            .iter()
            .enumerate()
            .find_map(|(i, c)| h.feed(c).map(|off| (i, off)));
        (end, h.content_length, h.transfer_encoding)
    }

    #[test]
    fn finds_the_blank_line_across_reads() {
        assert_eq!(
            scan(&[b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY"]).0,
            Some((0, 27))
        );
        assert_eq!(
            scan(&[b"GET / HTTP/1.1\r\nHost: a\r", b"\n", b"\r", b"\nrest"]).0,
            Some((3, 1))
        );
        assert_eq!(scan(&[b"GET / HTTP/1.1\nHost: a\n\n"]).0, Some((0, 24)));
        assert_eq!(scan(&[b"GET / HTTP/1.1\r\nHost: a\r\n"]).0, None);
        assert_eq!(scan(&[b"a\r\rb\r\n"]).0, None);
    }

    /// The byte-at-a-time scanner this one replaced: the reference.
    fn reference(chunks: &[&[u8]]) -> Option<(usize, usize)> {
        let mut matched = 0u8;
        for (c, chunk) in chunks.iter().enumerate() {
            for (i, &b) in chunk.iter().enumerate() {
                matched = match (matched, b) {
                    (1 | 2, b'\n') => return Some((c, i + 1)),
                    (1, b'\r') => 2,
                    (_, b'\n') => 1,
                    _ => 0,
                };
            }
        }
        None
    }

    #[test]
    fn agrees_with_the_byte_by_byte_reference_on_random_splits() {
        // A small xorshift so the cases are the same on every run.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"\r\nab: ";
        for _ in 0..20_000 {
            let len = (next() % 24) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let n = 1 + (next() as usize % rest.len());
                chunks.push(&rest[..n]);
                rest = &rest[n..];
            }
            assert_eq!(scan(&chunks).0, reference(&chunks), "{chunks:?}");
        }
    }

    #[test]
    fn only_1xx_heads_are_interim() {
        assert!(super::is_interim(b"HTTP/1.1 100 Continue\r\n\r\n"));
        assert!(super::is_interim(b"HTTP/1.1 103 Early Hints\r\n"));
        assert!(!super::is_interim(b"HTTP/1.1 200 OK\r\n"));
        assert!(!super::is_interim(b"HTTP/1.1 1"));
        assert!(!super::is_interim(b"{\"a\":1}"));
    }

    #[test]
    fn notes_both_framing_headers_in_any_spelling() {
        let (_, cl, te) =
            scan(&[b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"]);
        assert!(cl && te);
        let (_, cl, te) = scan(&[
            b"POST / HTTP/1.1\r\ncontent-LENGTH:4\r\nTransfer-Enc",
            b"oding : chunked\r\n\r\n",
        ]);
        assert!(cl && te);
        let (_, cl, te) = scan(&[
            b"POST / HTTP/1.1\r\nContent-Lengthy: 4\r\nX-Transfer-Encoding: chunked\r\n\r\n",
        ]);
        assert!(!cl && !te);
    }
}
