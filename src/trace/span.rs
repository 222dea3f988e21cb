//! One request's trace: the gateway's server span, a client span per upstream
//! attempt, and what is handed to the exporter when the request ends.
//!
//! Ids are always made (the upstream gets a `traceparent`, the access log a
//! `trace_id`); times and attributes are kept only for a request that is sampled
//! and exported ([`Recording`]), so an unsampled request costs two random numbers
//! and a header.

use super::context::{self, TraceParent};
use super::Tracer;
use http::{HeaderMap, HeaderValue, Method};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// Nanoseconds since the Unix epoch, as OTLP wants times.
pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The trace state of one request.
#[derive(Debug)]
pub struct RequestTrace {
    pub trace_id: u128,
    /// The gateway's server span.
    pub span_id: u64,
    /// The caller's span, when the request continued a trace.
    pub parent_id: Option<u64>,
    pub sampled: bool,
    /// The client span of the current upstream attempt (0 before the first).
    attempt_id: u64,
    recording: Option<Box<Recording>>,
}

/// Times and facts of a sampled request whose spans are exported.
#[derive(Debug)]
struct Recording {
    start: u64,
    trace_state: Option<HeaderValue>,
    attempts: Vec<ClientSpan>,
}

/// One upstream attempt.
#[derive(Debug, Clone)]
pub struct ClientSpan {
    pub span_id: u64,
    pub start: u64,
    /// 0 while the attempt is open.
    pub end: u64,
    pub target: SocketAddr,
    /// 0 for the first attempt, 1 for the first retry, ...
    pub resend: u32,
    /// The upstream's status, when it answered.
    pub status: Option<u16>,
    /// Why the attempt failed (an error kind, e.g. `ConnectRefused`).
    pub error: Option<&'static str>,
}

/// What the proxy knows about the request when it ends.
#[derive(Debug)]
pub struct ServerFacts {
    pub route: Option<Arc<str>>,
    /// The route's match pattern (`http.route`), e.g. `/api/payments/{id}`.
    pub pattern: Option<Arc<str>>,
    pub method: Method,
    /// The path as logged (with redacted values hashed).
    pub path: String,
    pub scheme: &'static str,
    pub protocol: &'static str,
    pub host: Option<String>,
    pub client: Option<IpAddr>,
    pub status: u16,
    pub consumer: Option<String>,
    pub error: Option<&'static str>,
}

/// A finished request's spans, as the exporter takes them.
#[derive(Debug)]
pub struct FinishedTrace {
    pub trace_id: u128,
    pub span_id: u64,
    pub parent_id: Option<u64>,
    pub trace_state: Option<HeaderValue>,
    pub start: u64,
    pub end: u64,
    pub server: ServerFacts,
    pub attempts: Vec<ClientSpan>,
}

impl FinishedTrace {
    /// Spans in it: the server span and one per attempt.
    pub fn span_count(&self) -> u64 {
        1 + self.attempts.len() as u64
    }
}

impl RequestTrace {
    /// Continues the caller's trace or starts one. The second value is true when
    /// a `tracestate` must be removed: it belongs to a `traceparent` that could not
    /// be read, so it describes no trace this request is part of.
    pub fn begin(tracer: &Tracer, headers: &HeaderMap) -> (RequestTrace, bool) {
        let header = headers.get(TRACEPARENT);
        let parent: Option<TraceParent> = header.and_then(|v| context::parse(v.as_bytes()));
        let (trace_id, parent_id, sampled) = match parent {
            // A sampled caller is followed; otherwise the ratio decides.
            Some(p) => (
                p.trace_id,
                Some(p.parent_id),
                p.sampled || tracer.ratio_sampled(p.trace_id),
            ),
            None => {
                let id = context::new_trace_id();
                (id, None, tracer.ratio_sampled(id))
            }
        };
        let drop_state = parent.is_none() && headers.contains_key(TRACESTATE);
        let recording = (sampled && tracer.exports).then(|| {
            Box::new(Recording {
                start: unix_nanos(),
                trace_state: parent.and(headers.get(TRACESTATE).cloned()),
                attempts: Vec::new(),
            })
        });
        let trace = RequestTrace {
            trace_id,
            span_id: context::new_span_id(),
            parent_id,
            sampled,
            attempt_id: 0,
            recording,
        };
        (trace, drop_state)
    }

    /// An upstream attempt starts (a retry ends the one before).
    pub fn begin_attempt(&mut self, target: SocketAddr) {
        self.attempt_id = context::new_span_id();
        let Some(rec) = &mut self.recording else {
            return;
        };
        let now = unix_nanos();
        close_open(&mut rec.attempts, now, None);
        let resend = rec.attempts.len() as u32;
        rec.attempts.push(ClientSpan {
            span_id: self.attempt_id,
            start: now,
            end: 0,
            target,
            resend,
            status: None,
            error: None,
        });
    }

    /// The `traceparent` for the upstream: this trace, with the current attempt's
    /// client span as the parent of whatever the service records.
    pub fn upstream_traceparent(&self) -> HeaderValue {
        let parent = if self.attempt_id != 0 {
            self.attempt_id
        } else {
            self.span_id
        };
        context::traceparent(self.trace_id, parent, self.sampled)
    }

    /// The upstream answered the current attempt with `status`.
    pub fn attempt_answered(&mut self, status: u16) {
        if let Some(a) = self.current_attempt() {
            a.status = Some(status);
        }
    }

    /// The current attempt failed (`error`: the kind of failure).
    pub fn attempt_failed(&mut self, error: &'static str) {
        if let Some(a) = self.current_attempt() {
            if a.end == 0 {
                a.error = Some(error);
                a.end = unix_nanos();
            }
        }
    }

    fn current_attempt(&mut self) -> Option<&mut ClientSpan> {
        self.recording.as_mut()?.attempts.last_mut()
    }

    /// The request ended: its spans, when they are recorded. An attempt still open
    /// ends now, failed with `error` if the upstream never answered.
    pub fn finish(self, facts: impl FnOnce() -> ServerFacts) -> Option<FinishedTrace> {
        let rec = self.recording?;
        let mut attempts = rec.attempts;
        let end = unix_nanos();
        let server = facts();
        close_open(&mut attempts, end, server.error);
        Some(FinishedTrace {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_id: self.parent_id,
            trace_state: rec.trace_state,
            start: rec.start,
            end,
            server,
            attempts,
        })
    }

    /// The access log's `trace_id`.
    pub fn trace_id_hex(&self) -> [u8; 32] {
        context::trace_id_hex(self.trace_id)
    }
}

fn close_open(attempts: &mut [ClientSpan], now: u64, error: Option<&'static str>) {
    if let Some(open) = attempts.last_mut().filter(|a| a.end == 0) {
        open.end = now;
        if open.status.is_none() {
            open.error = open.error.or(error).or(Some("no_response"));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tracer(ratio: f64, exports: bool) -> Tracer {
        Tracer::new(ratio, exports)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.insert(*n, v.parse().unwrap());
        }
        h
    }

    fn facts() -> ServerFacts {
        ServerFacts {
            route: None,
            pattern: None,
            method: Method::GET,
            path: "/".into(),
            scheme: "http",
            protocol: "1.1",
            host: None,
            client: None,
            status: 200,
            consumer: None,
            error: None,
        }
    }

    #[test]
    fn a_callers_trace_is_continued_and_the_upstream_hangs_under_the_attempt() {
        let h = headers(&[
            (
                TRACEPARENT,
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            (TRACESTATE, "vendor=x"),
        ]);
        let (mut t, drop_state) = RequestTrace::begin(&tracer(0.0, true), &h);
        assert!(
            !drop_state && t.sampled,
            "a sampled parent is followed at ratio 0"
        );
        assert_eq!(t.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(t.parent_id, Some(0x00f067aa0ba902b7));
        let before = context::parse(t.upstream_traceparent().as_bytes()).unwrap();
        assert_eq!(
            before.parent_id, t.span_id,
            "no attempt yet: the server span"
        );
        t.begin_attempt("127.0.0.1:1".parse().unwrap());
        t.attempt_failed("ConnectRefused");
        t.begin_attempt("127.0.0.1:2".parse().unwrap());
        let sent = context::parse(t.upstream_traceparent().as_bytes()).unwrap();
        t.attempt_answered(201);
        let (span_id, trace_id) = (t.span_id, t.trace_id);
        let done = t.finish(facts).unwrap();
        assert_eq!(done.trace_state.as_ref().unwrap(), "vendor=x");
        assert_eq!(done.attempts.len(), 2);
        let (first, second) = (&done.attempts[0], &done.attempts[1]);
        assert_eq!((first.error, first.resend), (Some("ConnectRefused"), 0));
        assert_eq!((second.status, second.resend), (Some(201), 1));
        assert!(second.end >= second.start && second.start >= first.end);
        assert_eq!(sent.parent_id, second.span_id);
        assert_eq!((sent.trace_id, sent.sampled), (trace_id, true));
        assert_ne!(second.span_id, span_id);
    }

    #[test]
    fn without_a_readable_parent_a_trace_starts_and_its_tracestate_goes() {
        let h = headers(&[(TRACEPARENT, "garbage"), (TRACESTATE, "vendor=x")]);
        let (t, drop_state) = RequestTrace::begin(&tracer(1.0, false), &h);
        assert!(drop_state && t.parent_id.is_none() && t.sampled);
        assert!(
            t.finish(facts).is_none(),
            "nothing recorded without an exporter"
        );
    }

    #[test]
    fn an_unsampled_parent_is_sampled_by_the_ratio() {
        let h = headers(&[(
            TRACEPARENT,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        )]);
        let (t, _) = RequestTrace::begin(&tracer(0.0, true), &h);
        assert!(!t.sampled);
        assert!(
            !context::parse(t.upstream_traceparent().as_bytes())
                .unwrap()
                .sampled
        );
        assert!(t.finish(facts).is_none());
        let (t, _) = RequestTrace::begin(&tracer(1.0, true), &h);
        assert!(t.sampled);
        let done = t.finish(facts).unwrap();
        assert_eq!(done.span_count(), 1);
    }

    #[test]
    fn an_attempt_left_open_ends_with_the_request() {
        let (mut t, _) = RequestTrace::begin(&tracer(1.0, true), &HeaderMap::new());
        t.begin_attempt("127.0.0.1:1".parse().unwrap());
        let done = t
            .finish(|| ServerFacts {
                error: Some("ReadTimedout"),
                status: 504,
                ..facts()
            })
            .unwrap();
        let a = &done.attempts[0];
        assert!(a.end >= a.start && a.end > 0);
        assert_eq!(a.error, Some("ReadTimedout"));
    }
}
