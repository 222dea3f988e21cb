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

/// An upstream that refused the TLS session after the gateway's side of the
/// handshake had ended: with a client certificate asked for, a TLS 1.3 client
/// finishes first, and the server's verdict on the certificate (or on its
/// absence) arrives as a fatal alert at the first read. The server never read the
/// request, so this is a failure to connect, not to proxy. The alert, if so.
pub(super) fn late_tls_refusal(e: &Error) -> Option<rustls::AlertDescription> {
    use rustls::AlertDescription as A;
    let io = e.root_cause().downcast_ref::<std::io::Error>()?;
    let rustls::Error::AlertReceived(alert) = io.get_ref()?.downcast_ref::<rustls::Error>()? else {
        return None;
    };
    matches!(
        alert,
        A::CertificateRequired
            | A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::AccessDenied
            | A::HandshakeFailure
    )
    .then_some(*alert)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_alert_at_the_first_read_is_a_late_tls_refusal() {
        let alert = |a| {
            let io = std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::AlertReceived(a),
            );
            Error::because(ErrorType::ReadError, "while reading response headers", io)
                .more_context("Peer: 127.0.0.1:9443")
        };
        assert_eq!(
            late_tls_refusal(&alert(rustls::AlertDescription::CertificateRequired)),
            Some(rustls::AlertDescription::CertificateRequired)
        );
        assert_eq!(
            late_tls_refusal(&alert(rustls::AlertDescription::InternalError)),
            None
        );
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(
            late_tls_refusal(&Error::because(ErrorType::ReadError, "reading", reset)),
            None
        );
    }

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
