//! The shield's own answers. It refuses before Pingora has a request to answer (an
//! oversized or ambiguous head, the connection cap) or in the middle of a body (too
//! many chunks), so it writes the answer itself, in the gateway's JSON error shape.

use super::framing::Violation;
use crate::context::new_request_id;
use crate::error::{ErrorCode, GatewayError};

/// The error every later read and write of a refused connection fails with. The
/// proxy recognises it (see [`status_of`]) so it neither answers a second time nor
/// logs the request as a client that went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Refused {
    pub status: u16,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused by the connection shield with {}", self.status)
    }
}

impl std::error::Error for Refused {}

impl Refused {
    pub fn io_error(self) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::ConnectionAborted, self)
    }
}

/// The status a shield refusal answered, if `e` (or what caused it) is one.
pub fn status_of(e: &(dyn std::error::Error + 'static)) -> Option<u16> {
    let mut at = Some(e);
    while let Some(e) = at {
        if let Some(r) = e.downcast_ref::<Refused>() {
            return Some(r.status);
        }
        if let Some(r) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<Refused>())
        {
            return Some(r.status);
        }
        at = e.source();
    }
    None
}

/// What a violation is answered with.
pub(super) fn describe(v: Violation, max_header_bytes: usize, max_chunks: u64) -> GatewayError {
    match v {
        Violation::HeadTooLarge => GatewayError::new(
            ErrorCode::RequestHeaderFieldsTooLarge,
            format!("the request head is larger than {max_header_bytes} bytes"),
        ),
        Violation::AmbiguousFraming => GatewayError::new(
            ErrorCode::BadRequest,
            "Content-Length and Transfer-Encoding together are ambiguous",
        ),
        Violation::UnreadableLength => GatewayError::new(
            ErrorCode::BadRequest,
            "the Content-Length header is padded beyond recognition",
        ),
        Violation::TooManyChunks => GatewayError::new(
            ErrorCode::PayloadTooLarge,
            format!("the request body has more than {max_chunks} chunks"),
        ),
    }
    .closing()
}

/// A complete `Connection: close` response with the JSON error body and a fresh
/// request id (the shield answers before any request has one).
pub(super) fn answer(e: &GatewayError) -> Vec<u8> {
    e.to_http1(Some(&new_request_id()))
}

/// The refusal at the connection cap.
pub(super) fn too_many_connections() -> GatewayError {
    GatewayError::new(
        ErrorCode::TooManyConnections,
        "the gateway is at its connection cap",
    )
    .retry_after(std::time::Duration::from_secs(1))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_complete_json_responses() {
        let e = describe(Violation::HeadTooLarge, 100, 1);
        let a = answer(&e);
        let text = String::from_utf8(a).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"], "request_header_fields_too_large");
        assert_eq!(v["request_id"].as_str().unwrap().len(), 36);
    }

    #[test]
    fn a_refusal_is_found_behind_the_errors_that_carry_it() {
        let io = Refused { status: 413 }.io_error();
        assert_eq!(status_of(&io), Some(413));
        let other = std::io::Error::other("x");
        assert_eq!(status_of(&other), None);
        let wrapped = pingora::Error::because(pingora::ErrorType::ReadError, "reading", io);
        assert_eq!(status_of(wrapped.root_cause()), Some(413));
    }
}
