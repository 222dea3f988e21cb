//! How a failed request becomes the gateway's JSON error: which status, which
//! error code, which message (spec §6).

use http::StatusCode;
use pingora::{Error, ErrorSource, ErrorType};

/// Why the gateway itself answered with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// Every target of the group is down or was already tried.
    NoTarget,
}

/// Maps a proxy failure to (status, error code, message); status 0 means the client
/// connection is gone and nothing can be sent.
/// `upstream` names the route's upstream group, for the message.
pub(super) fn classify(
    e: &Error,
    failure: Option<Failure>,
    upstream: &str,
) -> (u16, &'static str, String) {
    use ErrorType::*;
    if failure == Some(Failure::NoTarget) {
        return (
            502,
            "upstream_unavailable",
            format!("no healthy target in upstream {upstream:?}"),
        );
    }
    match (e.esource(), e.etype()) {
        (_, HTTPStatus(code)) => (
            *code,
            error_code(*code),
            format!("request failed with status {code}"),
        ),
        (ErrorSource::Upstream, ReadTimedout | WriteTimedout) => (
            504,
            "upstream_timeout",
            format!("upstream {upstream:?} did not answer in time"),
        ),
        (
            ErrorSource::Upstream,
            ConnectTimedout | ConnectRefused | ConnectNoRoute | ConnectError | TLSHandshakeFailure
            | TLSHandshakeTimedout,
        ) => (
            502,
            "upstream_unavailable",
            format!("could not connect to upstream {upstream:?}"),
        ),
        (ErrorSource::Upstream, _) => (
            502,
            "upstream_unavailable",
            format!("upstream {upstream:?} sent an invalid or incomplete response"),
        ),
        (ErrorSource::Downstream, ReadError | WriteError | ConnectionClosed) => {
            (0, "", String::new())
        }
        (ErrorSource::Downstream, ReadTimedout) => (
            408,
            "request_timeout",
            "the request was not received in time".into(),
        ),
        // Pingora's upstream request policy refuses, e.g., a `Connection` header
        // naming Host or X-Forwarded-For.
        (ErrorSource::Downstream, InvalidHTTPHeader) => (
            400,
            "bad_request",
            "a request header is not acceptable".into(),
        ),
        (ErrorSource::Downstream, _) => {
            (400, "bad_request", "the request could not be read".into())
        }
        _ => (
            500,
            "internal_error",
            "the gateway failed to process the request".into(),
        ),
    }
}

fn error_code(status: u16) -> &'static str {
    match status {
        400 => "bad_request",
        404 => "route_not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        413 => "payload_too_large",
        414 => "uri_too_long",
        429 => "rate_limited",
        431 => "request_header_fields_too_large",
        502 => "upstream_unavailable",
        503 => "store_unavailable",
        504 => "upstream_timeout",
        _ => "error",
    }
}

pub(super) fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(etype: ErrorType, source: ErrorSource) -> (u16, &'static str) {
        let mut e = Error::new(etype);
        e.esource = source;
        let (status, code, _) = classify(&e, None, "accounts");
        (status, code)
    }

    #[test]
    fn upstream_failures_are_502_or_504() {
        use ErrorSource::Upstream;
        assert_eq!(
            status(ErrorType::ReadTimedout, Upstream),
            (504, "upstream_timeout")
        );
        assert_eq!(
            status(ErrorType::ConnectRefused, Upstream),
            (502, "upstream_unavailable")
        );
        assert_eq!(
            status(ErrorType::InvalidHTTPHeader, Upstream),
            (502, "upstream_unavailable")
        );
        let e = Error::new(ErrorType::InternalError);
        let (status, code, message) = classify(&e, Some(Failure::NoTarget), "accounts");
        assert_eq!((status, code), (502, "upstream_unavailable"));
        assert!(message.contains("\"accounts\""), "{message}");
    }

    #[test]
    fn client_failures_are_4xx_or_nothing() {
        use ErrorSource::Downstream;
        assert_eq!(
            status(ErrorType::InvalidHTTPHeader, Downstream),
            (400, "bad_request")
        );
        assert_eq!(
            status(ErrorType::ReadTimedout, Downstream),
            (408, "request_timeout")
        );
        // The client is gone: nothing to send.
        assert_eq!(status(ErrorType::ConnectionClosed, Downstream).0, 0);
        assert_eq!(
            status(ErrorType::HTTPStatus(429), Downstream),
            (429, "rate_limited")
        );
    }

    #[test]
    fn internal_failures_are_500() {
        assert_eq!(
            status(ErrorType::InternalError, ErrorSource::Internal),
            (500, "internal_error")
        );
    }
}
