//! The start of a connection, before its first request: the TLS handshake on TLS
//! listeners, and on `h2c` listeners a look at the first bytes for the HTTP/2
//! preface. Both run under the head deadline, holding a connection slot, so a
//! client that stalls here is cut like one that stalls in its headers.

use crate::edge::tls::{HandshakeError, ServerTls};
use crate::metrics::metrics;
use pingora::protocols::{Stream, ALPN};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// The client connection preface of HTTP/2 (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How a listener serves new connections, as the live configuration has it.
#[derive(Debug, Clone)]
pub struct ListenerMode {
    /// The address as configured (the `listener` label of metrics).
    pub name: Arc<str>,
    pub tls: Option<Arc<ServerTls>>,
    /// Cleartext HTTP/2 with prior knowledge is accepted (plain listeners only).
    pub h2c: bool,
}

/// Where a new connection finds its listener's mode, by the local address it
/// was accepted on; `None` for a plain HTTP/1 listener.
pub type ListenerSource = Arc<dyn Fn(SocketAddr) -> Option<ListenerMode> + Send + Sync>;

/// A connection ready for HTTP.
pub(super) struct Opened {
    pub stream: Stream,
    /// It speaks HTTP/2 (by ALPN, or the h2c preface).
    pub http2: bool,
    /// Bytes already read while looking for the preface, to be read again.
    pub prefix: Vec<u8>,
}

/// Runs what `mode` asks for before the first request; `None` when the
/// connection ends here (a failed or late handshake).
pub(super) async fn open(
    stream: Stream,
    mode: Option<ListenerMode>,
    deadline: Duration,
) -> Option<Opened> {
    let plain = |stream| Opened {
        stream,
        http2: false,
        prefix: Vec::new(),
    };
    let Some(mode) = mode else {
        return Some(plain(stream));
    };
    if let Some(tls) = &mode.tls {
        let (result, stream) = match tokio::time::timeout(deadline, tls.accept(stream)).await {
            Ok(Ok(s)) => ("ok", Some(s)),
            Ok(Err(e)) => {
                if let HandshakeError::Failed(e) = &e {
                    tracing::debug!(listener = %mode.name, error = %e, "TLS handshake failed");
                }
                (e.label(), None)
            }
            Err(_) => ("timeout", None),
        };
        metrics()
            .tls_handshakes_total
            .with_label_values(&[&mode.name, result])
            .inc();
        let stream = stream?;
        let http2 = matches!(stream.selected_alpn_proto(), Some(ALPN::H2));
        return Some(Opened {
            stream,
            http2,
            prefix: Vec::new(),
        });
    }
    if mode.h2c {
        let mut stream = stream;
        let prefix = tokio::time::timeout(deadline, read_preface(&mut stream))
            .await
            .ok()?
            .ok()?;
        return Some(Opened {
            stream,
            http2: prefix == H2_PREFACE,
            prefix,
        });
    }
    Some(plain(stream))
}

/// Reads until the bytes are the HTTP/2 preface or cannot be: an HTTP/1 request
/// differs within its first two bytes, so it is never waited on (even one shorter
/// than the preface).
async fn read_preface(stream: &mut Stream) -> std::io::Result<Vec<u8>> {
    let mut got = Vec::with_capacity(H2_PREFACE.len());
    let mut buf = [0u8; 24];
    while got.len() < H2_PREFACE.len() {
        let want = H2_PREFACE.len() - got.len();
        let n = stream.read(&mut buf[..want]).await?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if !H2_PREFACE.starts_with(&got) {
            break;
        }
    }
    Ok(got)
}

/// The local address a connection was accepted on.
pub(super) fn local_addr(stream: &Stream) -> Option<SocketAddr> {
    stream.get_socket_digest()?.local_addr()?.as_inet().copied()
}

/// Whether a listener bound to `listener` accepted a connection on `local`
/// (a wildcard address accepts on every address of its family, IPv6 also
/// mapped IPv4).
pub fn accepts_on(listener: SocketAddr, local: SocketAddr) -> bool {
    if listener == local {
        return true;
    }
    listener.port() == local.port()
        && listener.ip().is_unspecified()
        && (listener.is_ipv6() || local.is_ipv4())
}

#[cfg(test)]
mod tests {
    use super::accepts_on;

    #[test]
    fn wildcard_listeners_accept_on_every_address_of_their_port() {
        let a = |s: &str| s.parse().unwrap_or_else(|_| unreachable!());
        assert!(accepts_on(a("127.0.0.1:8443"), a("127.0.0.1:8443")));
        assert!(!accepts_on(a("127.0.0.1:8443"), a("127.0.0.2:8443")));
        assert!(accepts_on(a("0.0.0.0:8443"), a("127.0.0.2:8443")));
        assert!(!accepts_on(a("0.0.0.0:8443"), a("127.0.0.2:8080")));
        assert!(!accepts_on(a("0.0.0.0:8443"), a("[::1]:8443")));
        assert!(accepts_on(a("[::]:8443"), a("[::1]:8443")));
    }
}
