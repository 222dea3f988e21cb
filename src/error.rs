//! The gateway's own answers: every error code in one list ([`ErrorCode`]) and one
//! error value ([`GatewayError`]) rendered in one place, whoever refuses — a filter,
//! the edge checks, the connection shield, the token endpoint or the admin API.
//!
//! A leaf: depends on nothing else in the crate.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use serde_json::{Map, Value};

macro_rules! error_codes {
    ($($variant:ident = $status:literal $code:literal,)*) => {
        /// Every error code the gateway answers with; each is spelled only here.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order of the list.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as written in the `error` field.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            /// The status this code is answered with.
            pub fn status(self) -> StatusCode {
                let status: u16 = match self {
                    $(ErrorCode::$variant => $status,)*
                };
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    };
}

error_codes! {
    // The request itself.
    BadRequest = 400 "bad_request",
    IdempotencyKeyMissing = 400 "idempotency_key_missing",
    RouteNotFound = 404 "route_not_found",
    MethodNotAllowed = 405 "method_not_allowed",
    RequestTimeout = 408 "request_timeout",
    IdempotencyKeyInUse = 409 "idempotency_key_in_use",
    PayloadTooLarge = 413 "payload_too_large",
    UriTooLong = 414 "uri_too_long",
    UnsupportedMediaType = 415 "unsupported_media_type",
    InvalidBody = 422 "invalid_body",
    IdempotencyKeyReused = 422 "idempotency_key_reused",
    RequestHeaderFieldsTooLarge = 431 "request_header_fields_too_large",
    // Who is asking.
    InvalidToken = 401 "invalid_token",
    InvalidCredentials = 401 "invalid_credentials",
    InsufficientScope = 403 "insufficient_scope",
    CorsRejected = 403 "cors_rejected",
    OriginNotAllowed = 403 "origin_not_allowed",
    IpForbidden = 403 "ip_forbidden",
    ClientCertificateRequired = 403 "client_certificate_required",
    UnknownClientCertificate = 403 "unknown_client_certificate",
    RateLimited = 429 "rate_limited",
    // The gateway and what is behind it.
    InternalError = 500 "internal_error",
    UpstreamUnavailable = 502 "upstream_unavailable",
    StoreUnavailable = 503 "store_unavailable",
    TooManyConnections = 503 "too_many_connections",
    UpstreamTimeout = 504 "upstream_timeout",
    // OAuth 2.0 token requests (RFC 6749 §5.2).
    InvalidRequest = 400 "invalid_request",
    InvalidClient = 401 "invalid_client",
    UnsupportedGrantType = 400 "unsupported_grant_type",
    InvalidScope = 400 "invalid_scope",
    // The admin API.
    InvalidAdminKey = 401 "invalid_admin_key",
    AdminDisabled = 403 "admin_disabled",
    NotFound = 404 "not_found",
    Exists = 409 "exists",
    ReadOnly = 409 "read_only",
    InvalidConfig = 400 "invalid_config",
    ReloadFailed = 500 "reload_failed",
}

impl ErrorCode {
    /// The code for a bare status (Pingora reports some failures only as one).
    pub fn for_status(status: u16) -> ErrorCode {
        match status {
            404 => ErrorCode::RouteNotFound,
            405 => ErrorCode::MethodNotAllowed,
            408 => ErrorCode::RequestTimeout,
            413 => ErrorCode::PayloadTooLarge,
            414 => ErrorCode::UriTooLong,
            415 => ErrorCode::UnsupportedMediaType,
            429 => ErrorCode::RateLimited,
            431 => ErrorCode::RequestHeaderFieldsTooLarge,
            502 => ErrorCode::UpstreamUnavailable,
            503 => ErrorCode::StoreUnavailable,
            504 => ErrorCode::UpstreamTimeout,
            400..=499 => ErrorCode::BadRequest,
            _ => ErrorCode::InternalError,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal or failure the gateway answers itself.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayError {
    pub code: ErrorCode,
    /// Usually `code.status()`; a bare status from Pingora may differ.
    pub status: StatusCode,
    pub message: String,
    /// Extra headers of this answer (`Allow`, `Retry-After`, `WWW-Authenticate`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Extra fields of the JSON body (e.g. `errors` of a refused config or body).
    pub details: Map<String, Value>,
    /// Close the connection after the answer (framing can no longer be trusted).
    pub close: bool,
}

/// A gateway-made answer, ready to write: status, headers and body.
#[derive(Debug, Clone)]
pub struct LocalResponse {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl GatewayError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            status: code.status(),
            message: message.into(),
            headers: Vec::new(),
            details: Map::new(),
            close: false,
        }
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// `Retry-After` in whole seconds, at least 1.
    pub fn retry_after(self, wait: std::time::Duration) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        self.with_header(http::header::RETRY_AFTER, HeaderValue::from(secs.max(1)))
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn with_detail(mut self, name: &str, value: Value) -> Self {
        self.details.insert(name.to_owned(), value);
        self
    }

    pub fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    /// The JSON body: `{"error", "message", "request_id", ...details}` (no
    /// `request_id` where there is none, as on the admin listener).
    pub fn body(&self, request_id: Option<&str>) -> Bytes {
        let mut body = Map::with_capacity(3 + self.details.len());
        body.insert("error".into(), Value::from(self.code.as_str()));
        body.insert("message".into(), Value::from(self.message.as_str()));
        if let Some(id) = request_id {
            body.insert("request_id".into(), Value::from(id));
        }
        body.extend(self.details.iter().map(|(k, v)| (k.clone(), v.clone())));
        Bytes::from(Value::Object(body).to_string())
    }

    /// The answer: the JSON body with `Content-Type`, and this error's headers.
    pub fn into_response(self, request_id: Option<&str>) -> LocalResponse {
        let body = self.body(request_id);
        let mut headers = Vec::with_capacity(self.headers.len() + 1);
        headers.push((
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ));
        headers.extend(self.headers);
        LocalResponse {
            status: self.status,
            headers,
            body,
        }
    }

    /// A whole HTTP/1.1 answer that closes the connection, for the connection
    /// shield, which answers on the raw socket before any request is parsed.
    pub fn to_http1(&self, request_id: Option<&str>) -> Vec<u8> {
        let body = self.body(request_id);
        let reason = self.status.canonical_reason().unwrap_or("");
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status.as_u16(),
            body.len()
        )
        .into_bytes();
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if let Some(id) = request_id {
            out.extend_from_slice(b"X-Request-Id: ");
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&body);
        out
    }
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for GatewayError {}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_code_is_spelled_once_in_snake_case_with_an_error_status() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
            assert!(code.status().is_client_error() || code.status().is_server_error());
        }
    }

    #[test]
    fn the_body_carries_code_message_request_id_and_details() {
        let e = GatewayError::new(ErrorCode::InvalidBody, "the body does not match")
            .with_detail("errors", serde_json::json!([{"pointer": "/amount"}]));
        let v: Value = serde_json::from_slice(&e.body(Some("r-1"))).unwrap();
        assert_eq!(v["error"], "invalid_body");
        assert_eq!(v["message"], "the body does not match");
        assert_eq!(v["request_id"], "r-1");
        assert_eq!(v["errors"][0]["pointer"], "/amount");
        let v: Value = serde_json::from_slice(&e.body(None)).unwrap();
        assert!(v.get("request_id").is_none());
    }

    #[test]
    fn the_raw_answer_is_a_complete_closing_http1_response() {
        let e = GatewayError::new(ErrorCode::TooManyConnections, "at the cap")
            .retry_after(std::time::Duration::from_millis(1));
        let raw = String::from_utf8(e.to_http1(Some("abc"))).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nConnection: close"), "{head}");
        assert!(head.contains("\r\nretry-after: 1"), "{head}");
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"], "too_many_connections");
        assert_eq!(v["request_id"], "abc");
    }

    #[test]
    fn bare_statuses_map_to_codes() {
        assert_eq!(ErrorCode::for_status(413), ErrorCode::PayloadTooLarge);
        assert_eq!(ErrorCode::for_status(418), ErrorCode::BadRequest);
        assert_eq!(ErrorCode::for_status(599), ErrorCode::InternalError);
    }
}
