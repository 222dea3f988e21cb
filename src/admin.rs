//! The admin listener: metrics and probes for anyone who can reach the
//! private address; the admin API behind `Authorization: Bearer <admin.api_key>`.
//! Served only on `admin.address`, never on a public listener.

use crate::error::{ErrorCode, GatewayError};
use crate::logging::audit::{Action, AdminAction, Origin, Outcome};
use crate::metrics::metrics;
use crate::runtime::{Gateway, ReloadError, Runtime};
use async_trait::async_trait;
use http::{header, Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::{json, Value};

mod consumers;
pub mod tokens;
mod views;
use std::sync::Arc;
use views::upstreams_json;
pub use views::{routes_json, routes_table};

pub struct AdminApp {
    gateway: Arc<Gateway>,
}

impl AdminApp {
    pub fn new(gateway: Arc<Gateway>) -> Self {
        Self { gateway }
    }
}

fn respond(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let len = body.len();
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    if let Ok(v) = content_type.parse() {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CONTENT_LENGTH, len.into());
    h.insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

fn json_response(status: StatusCode, body: &Value) -> Response<Vec<u8>> {
    respond(status, "application/json", body.to_string().into_bytes())
}

/// The admin API's refusals: the gateway's JSON error shape, without a request id.
fn error(e: GatewayError) -> Response<Vec<u8>> {
    let mut r = respond(e.status, "application/json", e.body(None).to_vec());
    for (name, value) in e.headers {
        r.headers_mut().append(name, value);
    }
    r
}

/// Compares without an early exit, so response time does not reveal how much of a
/// guessed key was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `None` when the request carries the admin key; otherwise the refusal to send.
fn check_key(session: &ServerSession, runtime: &Runtime) -> Option<Response<Vec<u8>>> {
    let Some(key) = runtime.config.admin.api_key.as_deref() else {
        return Some(error(GatewayError::new(
            ErrorCode::AdminDisabled,
            "the admin API is disabled: set admin.api_key in the configuration",
        )));
    };
    let presented = session
        .req_header()
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match presented {
        Some(token) if constant_time_eq(token.as_bytes(), key.as_bytes()) => None,
        _ => {
            let mut r = error(GatewayError::new(
                ErrorCode::InvalidAdminKey,
                "send Authorization: Bearer <admin.api_key>",
            ));
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"fingate-admin\""),
            );
            Some(r)
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let response = self.answer(session).await;
        // Pipelined requests are answered in order (the shield frames them), and
        // the shield may count this request over: the answer is written in one go.
        session.set_pipelining_enabled(true);
        let idle = self.gateway.current().config.limits.idle_timeout;
        crate::edge::shield::between_requests(session.stream(), idle);
        response
    }
}

impl AdminApp {
    async fn answer(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        // Drain the body so the connection can be reused; only the consumers API
        // reads it (a small JSON object), so keep at most 16 KiB.
        let mut body = Vec::new();
        while let Ok(Some(chunk)) = session.read_request_body().await {
            if body.len() + chunk.len() <= 16 * 1024 {
                body.extend_from_slice(&chunk);
            }
        }
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_owned();
        let runtime = self.gateway.current();
        // For the audit log: who asked.
        let origin = Origin::admin_api(
            session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip()),
        );
        match (method, path.as_str()) {
            (Method::GET, "/metrics") => {
                runtime.cache.update_gauge();
                respond(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", metrics().render())
            }
            (Method::GET, "/healthz") => json_response(StatusCode::OK, &json!({ "status": "ok" })),
            (Method::GET, "/readyz") if !runtime.store.ready() => json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({ "status": "not_ready", "reason": "store unreachable", "config": runtime.config.source.hash })),
            (Method::GET, "/readyz") => json_response(StatusCode::OK, &json!({ "status": "ready", "config": runtime.config.source.hash })),
            (m, p) if p == "/admin" || p.starts_with("/admin/") => {
                if let Some(refusal) = check_key(session, &runtime) {
                    return refusal;
                }
                if p == "/admin/cache" {
                    return purge_cache(&m, session.req_header().uri.query(), &runtime, origin).await;
                }
                if p == "/admin/consumers" || p.starts_with("/admin/consumers/") {
                    return consumers::handle(&m, p, &body, &runtime.auth, origin).await;
                }
                if p == "/admin/tokens/revoke" {
                    if m != Method::POST {
                        return method_not_allowed("POST");
                    }
                    return outcome(tokens::revoke(&body, &runtime).await, origin);
                }
                self.admin_api(&m, p, &runtime, origin)
            }
            (_, "/metrics" | "/healthz" | "/readyz") => method_not_allowed("GET"),
            _ => error(GatewayError::new(ErrorCode::RouteNotFound, "admin endpoints: /metrics, /healthz, /readyz, /admin/routes, /admin/upstreams, /admin/reload")),
        }
    }
}

/// `DELETE /admin/cache[?prefix=/api/...]`: drops every entry, or those whose
/// client-facing path starts with the prefix, here and (through a shared store) on
/// every other gateway of the fleet. When the fleet could not be told, the answer
/// is 503 `store_unavailable` (the purge here is done; repeating it is safe).
async fn purge_cache(
    method: &Method,
    query: Option<&str>,
    runtime: &Runtime,
    origin: Origin,
) -> Response<Vec<u8>> {
    if method != Method::DELETE {
        return method_not_allowed("DELETE");
    }
    let prefix = match query_param(query, "prefix") {
        Ok(p) => p,
        Err(message) => return error(GatewayError::new(ErrorCode::BadRequest, message)),
    };
    if prefix.as_deref().is_some_and(|p| !p.starts_with('/')) {
        return error(GatewayError::new(
            ErrorCode::BadRequest,
            "prefix must be a path starting with '/', e.g. ?prefix=/api/fx",
        ));
    }
    let purged = runtime.cache.purge(prefix.as_deref());
    let fleet = runtime.store.publish_cache_purge(prefix.as_deref()).await;
    tracing::info!(prefix = prefix.as_deref(), purged, fleet = ?fleet.as_ref().map_err(ToString::to_string), "cache purged");
    let told = matches!(fleet, Ok(true));
    let failure = fleet.err().map(|e| {
        GatewayError::new(
            ErrorCode::StoreUnavailable,
            format!("purged {purged} entries here, but the other gateways sharing the store were not told ({e}); repeat the purge"),
        )
    });
    AdminAction {
        action: Action::CachePurged,
        target: prefix.as_deref().unwrap_or("*"),
        outcome: failure
            .as_ref()
            .map_or(Outcome::Ok, |e| Outcome::Error(e.code.as_str())),
        origin,
        details: &[("purged", purged.into()), ("fleet", told.into())],
    }
    .record();
    match failure {
        Some(e) => error(e),
        None => json_response(
            StatusCode::OK,
            &json!({ "result": "ok", "prefix": prefix, "purged": purged, "fleet": told }),
        ),
    }
}

/// The percent-decoded value of `name` in a query string (`+` is kept as is).
fn query_param(query: Option<&str>, name: &str) -> Result<Option<String>, String> {
    let Some(raw) = query
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    else {
        return Ok(None);
    };
    let bad = || format!("{name}: invalid percent-encoding in {raw:?}");
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3).ok_or_else(bad)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map(Some).map_err(|_| bad())
}

/// Answers a token revocation and writes its audit line.
fn outcome(o: tokens::Outcome, origin: Origin) -> Response<Vec<u8>> {
    let code = o.result.as_ref().err().map(|e| e.code);
    AdminAction {
        action: Action::TokenRevoked,
        target: &o.target,
        outcome: code.map_or(Outcome::Ok, |c| Outcome::Error(c.as_str())),
        origin,
        details: &[],
    }
    .record();
    match o.result {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(e) => error(e),
    }
}

fn method_not_allowed(allow: &'static str) -> Response<Vec<u8>> {
    let mut r = error(GatewayError::new(
        ErrorCode::MethodNotAllowed,
        format!("use {allow}"),
    ));
    r.headers_mut()
        .insert(header::ALLOW, http::HeaderValue::from_static(allow));
    r
}

impl AdminApp {
    fn admin_api(
        &self,
        method: &Method,
        path: &str,
        runtime: &Runtime,
        origin: Origin,
    ) -> Response<Vec<u8>> {
        match (method, path) {
            (&Method::GET, "/admin/routes") => json_response(StatusCode::OK, &routes_json(runtime)),
            (&Method::GET, "/admin/upstreams") => {
                json_response(StatusCode::OK, &upstreams_json(runtime))
            }
            (&Method::POST, "/admin/reload") => match self.gateway.reload(origin) {
                Ok(summary) => json_response(
                    StatusCode::OK,
                    &json!({ "result": "ok", "summary": summary }),
                ),
                Err(ReloadError::Invalid(errors)) => error(
                    GatewayError::new(
                        ErrorCode::InvalidConfig,
                        "the new configuration was refused; the running one stays",
                    )
                    .with_detail(
                        "errors",
                        errors.0.iter().map(ToString::to_string).collect::<Vec<_>>().into(),
                    ),
                ),
                Err(e) => error(GatewayError::new(ErrorCode::ReloadFailed, e.to_string())),
            },
            (_, "/admin/routes" | "/admin/upstreams") => method_not_allowed("GET"),
            (_, "/admin/reload") => method_not_allowed("POST"),
            _ => error(GatewayError::new(ErrorCode::RouteNotFound, "admin API: GET /admin/routes, GET /admin/upstreams, POST /admin/reload, DELETE /admin/cache, GET|POST /admin/consumers, DELETE /admin/consumers/{username}, POST /admin/tokens/revoke")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{constant_time_eq, query_param};

    #[test]
    fn purge_prefix_is_percent_decoded() {
        assert_eq!(
            query_param(Some("prefix=%2Fapi%2Ffx"), "prefix"),
            Ok(Some("/api/fx".into()))
        );
        assert_eq!(
            query_param(Some("x=1&prefix=/a/b"), "prefix"),
            Ok(Some("/a/b".into()))
        );
        assert_eq!(query_param(Some("prefixes=/a"), "prefix"), Ok(None));
        assert_eq!(query_param(None, "prefix"), Ok(None));
        assert!(query_param(Some("prefix=%zz"), "prefix").is_err());
        assert!(query_param(Some("prefix=%2"), "prefix").is_err());
    }

    #[test]
    fn key_comparison() {
        assert!(constant_time_eq(b"abcdef", b"abcdef"));
        assert!(!constant_time_eq(b"abcdef", b"abcdeg"));
        assert!(!constant_time_eq(b"abc", b"abcdef"));
    }
}
