//! Diagnostics every instance serves: echo (what reached the upstream),
//! request counters (for load-balancing tests) and the served-by header.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::{to_bytes, Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::ledger::lock;

pub const SERVED_BY: &str = "x-served-by";

/// Largest echoed body; bigger ones get a JSON 413 rather than a huge echo.
const ECHO_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// Distinct paths remembered; beyond that only the total grows, so a path
/// scanner cannot grow memory without bound.
const MAX_TRACKED_PATHS: usize = 10_000;

#[derive(Debug, Default)]
pub struct Stats {
    requests: AtomicU64,
    by_path: Mutex<HashMap<String, u64>>,
    /// Client addresses (ip:port) that sent business or echo requests: one per
    /// connection, so a gateway test can tell whether it reuses upstream connections.
    peers: Mutex<HashSet<SocketAddr>>,
    /// Counted requests whose response is not yet fully handed to the connection
    /// (or dropped with it): a gateway test sees whether a stalled response still
    /// holds its upstream connection.
    in_flight: Arc<AtomicU64>,
}

impl Stats {
    fn record(&self, path: &str) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let mut map = lock(&self.by_path);
        if let Some(n) = map.get_mut(path) {
            *n += 1;
        } else if map.len() < MAX_TRACKED_PATHS {
            map.insert(path.to_string(), 1);
        }
    }

    pub fn snapshot(&self, instance: &str) -> Value {
        let by_path: BTreeMap<String, u64> = lock(&self.by_path)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        json!({
            "instance": instance,
            "requests": self.requests.load(Ordering::SeqCst),
            "connections": lock(&self.peers).len(),
            "in_flight": self.in_flight.load(Ordering::SeqCst),
            "by_path": by_path,
        })
    }

    pub fn reset(&self) {
        let mut map = lock(&self.by_path);
        map.clear();
        lock(&self.peers).clear();
        self.requests.store(0, Ordering::SeqCst);
    }
}

/// Health checks and diagnostics are not counted, so a gateway's active
/// health checking does not disturb load-balancing counts.
/// Echo traffic counts as connections (gateway tests proxy to it); probes and the
/// stats/faults controls do not.
fn connection_counted(path: &str) -> bool {
    path != "/health" && !path.starts_with("/_mock/stats") && !path.starts_with("/_mock/faults")
}

fn counted(path: &str) -> bool {
    path != "/health" && path != "/_mock" && !path.starts_with("/_mock/")
}

pub async fn count(State(stats): State<Arc<Stats>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if counted(path) {
        stats.record(path);
    }
    if !connection_counted(path) {
        return next.run(req).await;
    }
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
        let mut peers = lock(&stats.peers);
        if peers.len() < MAX_TRACKED_PATHS {
            peers.insert(*peer);
        }
    }
    let guard = InFlight::enter(&stats.in_flight);
    let (parts, body) = next.run(req).await.into_parts();
    Response::from_parts(
        parts,
        Body::new(Tracked {
            inner: body,
            _guard: guard,
        }),
    )
}

/// One request in flight; leaving it (drop) counts it out.
struct InFlight(Arc<AtomicU64>);

impl InFlight {
    fn enter(count: &Arc<AtomicU64>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that keeps its request counted in flight until the server has
/// taken its last frame or dropped it (the connection closed).
struct Tracked {
    inner: Body,
    _guard: InFlight,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Outermost layer, so even fault and 404 answers say who produced them.
pub async fn served_by(State(name): State<Arc<str>>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&name) {
        resp.headers_mut()
            .insert(HeaderName::from_static(SERVED_BY), v);
    }
    resp
}

/// Reports the request exactly as received: the HTTP version, raw (still
/// percent-encoded) path and query, every header value, and the body.
pub async fn echo(State(instance): State<Arc<str>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match to_bytes(body, ECHO_BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("echo accepts at most {ECHO_BODY_LIMIT} bytes"),
            )
            .into_response()
        }
    };
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &parts.headers {
        headers
            .entry(name.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    Json(json!({
        "instance": &*instance,
        "version": format!("{:?}", parts.version),
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_count_and_reset() {
        let s = Stats::default();
        for p in ["/accounts/ACC-1001", "/accounts/ACC-1001", "/fx/EUR-USD"] {
            s.record(p);
        }
        let v = s.snapshot("accounts-1");
        assert_eq!(v["requests"], 3);
        assert_eq!(v["by_path"]["/accounts/ACC-1001"], 2);
        assert_eq!(v["instance"], "accounts-1");
        s.reset();
        assert_eq!(s.snapshot("x")["requests"], 0);
        let guard = InFlight::enter(&s.in_flight);
        assert_eq!(s.snapshot("x")["in_flight"], 1);
        drop(guard);
        assert_eq!(s.snapshot("x")["in_flight"], 0);
        assert!(!counted("/health"));
        assert!(!counted("/_mock/echo"));
        assert!(counted("/_mockery"));
        assert!(counted("/payments"));
    }
}
