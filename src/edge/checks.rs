//! Checks on a request head, before routing. Pure functions over `http` types.

use super::limits::Limits;
use crate::edge::forwarded::{self, Owned};
use crate::error::{ErrorCode, GatewayError};
use http::{header, HeaderMap, HeaderValue, Method};

/// Methods the gateway proxies. Anything else (extension methods, TRACE, CONNECT)
/// is refused: no fintech API needs them and each widens the attack surface.
pub fn supported_method(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET
            | Method::HEAD
            | Method::POST
            | Method::PUT
            | Method::PATCH
            | Method::DELETE
            | Method::OPTIONS
    )
}

/// The framing of a head that passed the checks, so the proxy need not look again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Framing {
    /// The declared `Content-Length` (validated decimal).
    pub content_length: Option<u64>,
    /// `Transfer-Encoding: chunked`.
    pub chunked: bool,
}

impl Framing {
    /// Whether the request declares a body (chunked, or a non-zero length).
    pub fn carries_body(&self) -> bool {
        self.chunked || self.content_length.is_some_and(|n| n > 0)
    }
}

/// What the checks learned of a head that passed them, so the proxy need not look
/// again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head<'a> {
    pub framing: Framing,
    /// The one `Host` header's value, validated as host[:port].
    pub host: &'a str,
    /// The most any header of the head is the gateway's own ([`forwarded::owned`]):
    /// `No` for almost every request, which then needs no pass to remove them.
    pub owned: Owned,
}

/// The header fields the checks read, gathered in one pass over the fields (which
/// the size check walks anyway) instead of a hashed lookup per name; the same pass
/// notes headers only the gateway may send.
#[derive(Default)]
struct Fields<'a> {
    /// "Name: value\r\n" per field, as sent.
    bytes: usize,
    host: Option<&'a HeaderValue>,
    hosts: usize,
    transfer_encoding: Option<&'a HeaderValue>,
    transfer_encodings: usize,
    content_length: Option<&'a HeaderValue>,
    content_lengths_differ: bool,
    owned: Owned,
}

impl<'a> Fields<'a> {
    fn gather(headers: &'a HeaderMap) -> Self {
        let mut f = Fields::default();
        for (name, value) in headers {
            f.bytes += name.as_str().len() + value.len() + 4;
            if name == header::HOST {
                f.host = f.host.or(Some(value));
                f.hosts += 1;
            } else if name == header::CONTENT_LENGTH {
                match f.content_length {
                    None => f.content_length = Some(value),
                    Some(first) => f.content_lengths_differ |= first != value,
                }
            } else if name == header::TRANSFER_ENCODING {
                f.transfer_encoding = f.transfer_encoding.or(Some(value));
                f.transfer_encodings += 1;
            } else {
                f.owned = f.owned.max(forwarded::owned(name));
            }
        }
        f
    }
}

/// Checks size limits, framing, `Host` and method. `target_len` is the length of
/// the request target as received.
pub fn check_head<'a>(
    parts: &'a http::request::Parts,
    target_len: usize,
    limits: &Limits,
) -> Result<Head<'a>, GatewayError> {
    let fields = Fields::gather(&parts.headers);
    let framing = check_framing(&fields)?;
    if target_len > limits.max_uri_bytes {
        return Err(GatewayError::new(
            ErrorCode::UriTooLong,
            format!(
                "the request target is longer than {} bytes",
                limits.max_uri_bytes
            ),
        )
        .closing());
    }
    if parts.headers.len() > limits.max_headers {
        return Err(GatewayError::new(
            ErrorCode::RequestHeaderFieldsTooLarge,
            format!("more than {} header fields", limits.max_headers),
        )
        .closing());
    }
    // Request line + the fields, as sent.
    let head_bytes = parts.method.as_str().len() + target_len + 12 + fields.bytes;
    if head_bytes > limits.max_header_bytes {
        return Err(GatewayError::new(
            ErrorCode::RequestHeaderFieldsTooLarge,
            format!(
                "the request head is larger than {} bytes",
                limits.max_header_bytes
            ),
        )
        .closing());
    }
    let host = check_host(&fields, parts)?;
    if limits.reject_semicolon && parts.uri.path().contains(';') {
        return Err(GatewayError::new(
            ErrorCode::BadRequest,
            "`;` in the path is refused here (limits.semicolon_in_path: reject)",
        ));
    }
    if !supported_method(&parts.method) {
        return Err(GatewayError::new(
            ErrorCode::MethodNotAllowed,
            format!("method {} is not supported", parts.method),
        )
        .closing());
    }
    Ok(Head {
        framing,
        host,
        owned: fields.owned,
    })
}

fn bad_request<T>(message: &str) -> Result<T, GatewayError> {
    Err(GatewayError::new(ErrorCode::BadRequest, message).closing())
}

/// Request smuggling shapes: refuse what two parsers could read differently.
fn check_framing(f: &Fields<'_>) -> Result<Framing, GatewayError> {
    if f.transfer_encoding.is_some() && f.content_length.is_some() {
        return bad_request("Content-Length and Transfer-Encoding together are ambiguous");
    }
    match (f.transfer_encoding, f.transfer_encodings) {
        (None, _) => {}
        (Some(one), 1) if one.as_bytes() == b"chunked" => {}
        _ => return bad_request("the only accepted Transfer-Encoding is exactly \"chunked\""),
    }
    let mut content_length = None;
    if let Some(first) = f.content_length {
        if f.content_lengths_differ {
            return bad_request("differing Content-Length values");
        }
        // At most 19 digits: always within u64.
        let digits = first.as_bytes();
        let valid =
            !digits.is_empty() && digits.len() <= 19 && digits.iter().all(u8::is_ascii_digit);
        if !valid {
            return bad_request("Content-Length is not a decimal number");
        }
        content_length = Some(
            digits
                .iter()
                .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')),
        );
    }
    Ok(Framing {
        content_length,
        chunked: f.transfer_encoding.is_some(),
    })
}

/// HTTP/1.1 requires exactly one `Host`, a host name or IP literal with an optional
/// port. HTTP/2 carries it as `:authority` (in the URI); a `Host` beside it must
/// say the same (RFC 9113 §8.3.1).
fn check_host<'a>(
    f: &Fields<'a>,
    parts: &'a http::request::Parts,
) -> Result<&'a str, GatewayError> {
    if parts.version == http::Version::HTTP_2 {
        if let Some(authority) = parts.uri.authority() {
            let authority = authority.as_str();
            let same = f
                .host
                .map_or(true, |h| h.as_bytes() == authority.as_bytes());
            if f.hosts > 1 || !same {
                return bad_request("a Host header differing from :authority");
            }
            return if valid_host(authority) {
                Ok(authority)
            } else {
                bad_request(":authority is not a valid host[:port]")
            };
        }
    }
    let (Some(host), 1) = (f.host, f.hosts) else {
        return bad_request("exactly one Host header is required");
    };
    let Ok(host) = host.to_str() else {
        return bad_request("the Host header is not valid");
    };
    if valid_host(host) {
        Ok(host)
    } else {
        bad_request("the Host header is not a valid host[:port]")
    }
}

fn valid_host(host: &str) -> bool {
    if let Some(rest) = host.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(valid_port);
        return port_ok && v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    match host.rsplit_once(':') {
        Some((name, port)) => valid_name(name) && valid_port(port),
        None => valid_name(host),
    }
}

fn valid_port(port: &str) -> bool {
    !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok()
}

/// DNS-style labels (letters, digits, `-`, `_`), one trailing dot allowed; also
/// covers IPv4 literals. One pass over the bytes: every request's Host goes through it.
fn valid_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    let mut label = 0;
    for b in name.bytes() {
        if b == b'.' {
            if label == 0 {
                return false;
            }
            label = 0;
        } else if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            label += 1;
            if label > 63 {
                return false;
            }
        } else {
            return false;
        }
    }
    label > 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parts(method: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().method(method).uri("/x");
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn refused(method: &str, headers: &[(&str, &str)]) -> Option<u16> {
        check_head(&parts(method, headers), 2, &Limits::default())
            .err()
            .map(|r| r.status.as_u16())
    }

    #[test]
    fn framing() {
        let h = |extra: &[(&'static str, &'static str)]| {
            let mut v = vec![("host", "api.example.com")];
            v.extend_from_slice(extra);
            refused("POST", &v)
        };
        assert_eq!(h(&[("content-length", "3")]), None);
        assert_eq!(h(&[("transfer-encoding", "chunked")]), None);
        assert_eq!(
            h(&[("content-length", "3"), ("transfer-encoding", "chunked")]),
            Some(400)
        );
        assert_eq!(
            h(&[("content-length", "3"), ("content-length", "4")]),
            Some(400)
        );
        assert_eq!(h(&[("content-length", "3"), ("content-length", "3")]), None);
        assert_eq!(h(&[("content-length", "+3")]), Some(400));
        assert_eq!(h(&[("transfer-encoding", "chunked, identity")]), Some(400));
        assert_eq!(h(&[("transfer-encoding", "Chunked")]), Some(400));
        assert_eq!(
            h(&[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked")
            ]),
            Some(400)
        );
    }

    #[test]
    fn the_most_gateway_owned_header_is_noted() {
        let owned = |h: &[(&str, &str)]| {
            let mut v = vec![("host", "h")];
            v.extend_from_slice(h);
            check_head(&parts("GET", &v), 2, &Limits::default())
                .unwrap()
                .owned
        };
        assert_eq!(
            owned(&[("accept", "*/*"), ("x-forwarded-for", "1.2.3.4")]),
            Owned::No
        );
        assert_eq!(owned(&[("x-real-ip", "1.2.3.4")]), Owned::FromUntrusted);
        assert_eq!(
            owned(&[
                ("x-real-ip", "1.2.3.4"),
                ("X_Consumer_Id", "admin"),
                ("a", "b")
            ]),
            Owned::Always
        );
    }

    #[test]
    fn framing_facts_are_returned_for_the_proxy() {
        let framing = |h: &[(&str, &str)]| {
            check_head(&parts("POST", h), 2, &Limits::default())
                .unwrap()
                .framing
        };
        let plain = framing(&[("host", "h")]);
        assert_eq!(plain, Framing::default());
        assert!(!plain.carries_body());
        let sized = framing(&[("host", "h"), ("content-length", "1234567890123456789")]);
        assert_eq!(sized.content_length, Some(1_234_567_890_123_456_789));
        assert!(sized.carries_body());
        let empty = framing(&[("host", "h"), ("content-length", "0")]);
        assert!(!empty.carries_body());
        let chunked = framing(&[("host", "h"), ("transfer-encoding", "chunked")]);
        assert!(chunked.chunked && chunked.carries_body());
    }

    #[test]
    fn the_checked_host_is_returned_for_routing() {
        let p = parts(
            "GET",
            &[("accept", "*/*"), ("host", "api.example.com:8443")],
        );
        assert_eq!(
            check_head(&p, 2, &Limits::default()).unwrap().host,
            "api.example.com:8443"
        );
    }

    #[test]
    fn host() {
        for good in [
            "api.example.com",
            "localhost:8080",
            "127.0.0.1:80",
            "[::1]:8080",
            "[::1]",
            "a_b.example.",
        ] {
            assert_eq!(refused("GET", &[("host", good)]), None, "{good}");
        }
        for bad in [
            "",
            "a b",
            "exa mple.com",
            "x:99999",
            "x:",
            "[::1",
            "[zz]:1",
            "a..b",
            ".a",
            "a..",
            ".",
            "user@host",
            "h/x",
        ] {
            assert_eq!(refused("GET", &[("host", bad)]), Some(400), "{bad:?}");
        }
        let label = |n: usize| "a".repeat(n);
        let longest = format!("{}.{}", label(63), label(63));
        assert_eq!(
            refused("GET", &[("host", &longest)]),
            None,
            "63-byte labels"
        );
        let over = format!("{}.b", label(64));
        assert_eq!(
            refused("GET", &[("host", &over)]),
            Some(400),
            "64-byte label"
        );
        let long_name = vec![label(60); 5].join(".");
        assert_eq!(
            refused("GET", &[("host", &long_name)]),
            Some(400),
            "name over 253"
        );
        assert_eq!(refused("GET", &[]), Some(400), "no Host");
        assert_eq!(
            refused("GET", &[("host", "a"), ("host", "b")]),
            Some(400),
            "two Hosts"
        );
    }

    #[test]
    fn a_semicolon_in_the_path_is_refused_only_when_asked() {
        let mut p = parts("GET", &[("host", "h")]);
        p.uri = "/admin;jsessionid=1".parse().unwrap();
        let strict = Limits {
            reject_semicolon: true,
            ..Limits::default()
        };
        let e = check_head(&p, 20, &strict).unwrap_err();
        assert_eq!(e.status, http::StatusCode::BAD_REQUEST);
        assert!(check_head(&p, 20, &Limits::default()).is_ok());
        // Percent-encoded it is data, not a delimiter, for every server.
        p.uri = "/admin%3Bx".parse().unwrap();
        assert!(check_head(&p, 20, &strict).is_ok());
    }

    #[test]
    fn limits_and_methods() {
        let many: Vec<(String, String)> =
            (0..101).map(|i| (format!("x-h{i}"), "v".into())).collect();
        let mut headers: Vec<(&str, &str)> =
            many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        headers.push(("host", "h"));
        assert_eq!(refused("GET", &headers), Some(431));
        let big = "v".repeat(40 * 1024);
        assert_eq!(refused("GET", &[("host", "h"), ("x-big", &big)]), Some(431));
        let p = parts("GET", &[("host", "h")]);
        assert_eq!(
            check_head(&p, 9000, &Limits::default())
                .unwrap_err()
                .status
                .as_u16(),
            414
        );
        assert_eq!(refused("TRACE", &[("host", "h")]), Some(405));
        assert_eq!(refused("FOO", &[("host", "h")]), Some(405));
        assert_eq!(refused("DELETE", &[("host", "h")]), None);
    }
}
