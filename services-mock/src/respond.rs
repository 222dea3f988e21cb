//! `GET|POST /diag/respond`: an answer shaped by its query string, for gateway
//! caching tests that need headers the business endpoints never send.
//!
//! Query: `status` (default 200), `cache_control`, `vary`, `vary_also` (a second
//! `Vary` header line), `set_cookie=1`,
//! `size` (pad the body to at least this many bytes). The JSON body carries a
//! serial number (so a test tells a cached answer from a fresh one) and the
//! request headers. Not under `/_mock/`, so `/_mock/stats` counts it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Query, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use serde::Deserialize;
use serde_json::json;

/// Largest `size` honoured, so a typo cannot make the mock allocate gigabytes.
const MAX_SIZE: usize = 8 * 1024 * 1024;

static SERIAL: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Default, Deserialize)]
pub struct Shape {
    status: Option<u16>,
    cache_control: Option<String>,
    vary: Option<String>,
    vary_also: Option<String>,
    set_cookie: Option<u8>,
    size: Option<usize>,
}

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/diag/respond", any(respond))
}

async fn respond(Query(shape): Query<Shape>, req: Request) -> Response {
    let serial = SERIAL.fetch_add(1, Ordering::SeqCst) + 1;
    let headers: BTreeMap<&str, String> = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let status = shape
        .status
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut body = json!({ "serial": serial, "method": req.method().as_str(), "headers": headers })
        .to_string();
    let size = shape.size.unwrap_or(0).min(MAX_SIZE);
    if body.len() < size {
        // Padding inside the JSON keeps the body valid.
        body.pop();
        body.push_str(",\"pad\":\"");
        let pad = size.saturating_sub(body.len() + 2);
        body.push_str(&"x".repeat(pad));
        body.push_str("\"}");
    }
    let mut resp = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    let h = resp.headers_mut();
    let mut set = |name, value: Option<&str>| {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            h.insert(name, v);
        }
    };
    set(header::CACHE_CONTROL, shape.cache_control.as_deref());
    set(header::VARY, shape.vary.as_deref());
    if shape.set_cookie == Some(1) {
        set(header::SET_COOKIE, Some("session=abc; Path=/; HttpOnly"));
    }
    if let Some(v) = shape.vary_also.and_then(|v| HeaderValue::from_str(&v).ok()) {
        h.append(header::VARY, v);
    }
    resp
}
