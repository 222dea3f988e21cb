//! How a failed request becomes the gateway's JSON error: which status, which
//! error code, which message.

use crate::error::{ErrorCode, GatewayError};
use http::StatusCode;
use pingora::{Error, ErrorSource, ErrorType};

/// Why the gateway itself answered with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// Every target of the group is down or was already tried.
    NoTarget,
}

/// Maps a proxy failure to the gateway's answer; None when the client connection
/// is gone and nothing can be sent. `upstream` names the route's upstream group,
/// for the message.
pub(super) fn classify(
    e: &Error,
    failure: Option<Failure>,
    upstream: &str,
) -> Option<GatewayError> {
    use ErrorCode as C;
    use ErrorType::*;
    if failure == Some(Failure::NoTarget) {
        return Some(GatewayError::new(
            C::UpstreamUnavailable,
            format!("no healthy target in upstream {upstream:?}"),
        ));
    }
    let (code, message) = match (e.esource(), e.etype()) {
        (_, HTTPStatus(status)) => {
            let code = C::for_status(*status);
            let status_code = StatusCode::from_u16(*status).unwrap_or(code.status());
            return Some(
                GatewayError::new(code, format!("request failed with status {status}"))
                    .with_status(status_code),
            );
        }
        (ErrorSource::Upstream, ReadTimedout | WriteTimedout) => (
            C::UpstreamTimeout,
            format!("upstream {upstream:?} did not answer in time"),
        ),
        (
            ErrorSource::Upstream,
            ConnectTimedout | ConnectRefused | ConnectNoRoute | ConnectError | TLSHandshakeFailure
            | TLSHandshakeTimedout,
        ) => (
            C::UpstreamUnavailable,
            format!("could not connect to upstream {upstream:?}"),
        ),
        (ErrorSource::Upstream, _) => (
            C::UpstreamUnavailable,
            format!("upstream {upstream:?} sent an invalid or incomplete response"),
        ),
        (ErrorSource::Downstream, ReadError | WriteError | ConnectionClosed) => return None,
        (ErrorSource::Downstream, ReadTimedout) => (
            C::RequestTimeout,
            "the request was not received in time".into(),
        ),
        // Pingora's upstream request policy refuses, e.g., a `Connection` header
        // naming Host or X-Forwarded-For.
        (ErrorSource::Downstream, InvalidHTTPHeader) => {
            (C::BadRequest, "a request header is not acceptable".into())
        }
        (ErrorSource::Downstream, _) => (C::BadRequest, "the request could not be read".into()),
        _ => (
            C::InternalError,
            "the gateway failed to process the request".into(),
        ),
    };
    Some(GatewayError::new(code, message))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn status(etype: ErrorType, source: ErrorSource) -> (u16, &'static str) {
        let mut e = Error::new(etype);
        e.esource = source;
        classify(&e, None, "accounts").map_or((0, ""), |f| (f.status.as_u16(), f.code.as_str()))
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
        let f = classify(&e, Some(Failure::NoTarget), "accounts").unwrap();
        assert_eq!(
            (f.status.as_u16(), f.code),
            (502, ErrorCode::UpstreamUnavailable)
        );
        assert!(f.message.contains("\"accounts\""), "{}", f.message);
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
