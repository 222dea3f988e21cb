//! Active HTTP health checks: `GET <path>` on every target each `interval`; a 2xx
//! or 3xx within `timeout` passes. Each group generation runs its own tasks, which
//! stop when a reload retires the group or it is dropped.
//!
//! A TLS group's checks handshake as its requests do (the same CA, verification,
//! server name and client certificate, see [`super::tls`]), so a target whose
//! certificate requests would refuse fails its checks too. Checks speak HTTP/1.1
//! (offered by ALPN), also for an `http2` group.

use super::UpstreamGroup;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// How often gauges are refreshed for groups without active checks, so a passive
/// ejection that has expired shows as healthy again.
const GAUGE_REFRESH: Duration = Duration::from_secs(1);

/// Starts the health-check tasks of `group` on `handle`.
pub fn spawn(group: &Arc<UpstreamGroup>, handle: &tokio::runtime::Handle) {
    for index in 0..group.targets.len() {
        group.publish_health(index);
        handle.spawn(check_loop(Arc::downgrade(group), index));
    }
}

/// Where and how one target is checked.
#[derive(Debug, Clone)]
pub struct Probe {
    pub address: SocketAddr,
    /// The `Host` header sent.
    pub host: String,
    pub tls: Option<ProbeTls>,
}

/// The handshake of a TLS group's checks.
#[derive(Debug, Clone)]
pub struct ProbeTls {
    pub config: Arc<ClientConfig>,
    /// The name verified (a DNS name, or the target's address as text).
    pub server_name: String,
}

impl UpstreamGroup {
    /// How target `index` is checked.
    pub fn probe(&self, index: usize) -> Option<Probe> {
        let target = self.targets.get(index)?;
        let tls = self.config.tls.as_ref();
        Some(Probe {
            address: target.address,
            host: tls
                .and_then(|t| t.settings.sni.clone())
                .unwrap_or_else(|| target.label.clone()),
            tls: tls.map(|t| ProbeTls {
                config: t.checks.clone(),
                server_name: target.server_name.clone(),
            }),
        })
    }
}

async fn check_loop(group: Weak<UpstreamGroup>, index: usize) {
    loop {
        let (hc, probe) = {
            let Some(g) = group.upgrade().filter(|g| !g.is_retired()) else {
                return;
            };
            let Some(probe) = g.probe(index) else {
                return;
            };
            (g.config.health_check.clone(), probe)
        };
        let Some(hc) = hc else {
            tokio::time::sleep(GAUGE_REFRESH).await;
            match group.upgrade().filter(|g| !g.is_retired()) {
                Some(g) => g.publish_health(index),
                None => return,
            }
            continue;
        };
        let outcome = check(&probe, &hc.path, hc.timeout).await;
        match group.upgrade().filter(|g| !g.is_retired()) {
            Some(g) => g.record_check(index, outcome.as_ref().map_err(String::as_str).copied()),
            None => return,
        }
        tokio::time::sleep(hc.interval).await;
    }
}

/// One check: connect (and handshake), send a minimal HTTP/1.1 GET, read the
/// status line. Err says why it failed.
pub async fn check(probe: &Probe, path: &str, timeout: Duration) -> Result<(), String> {
    tokio::time::timeout(timeout, run(probe, path))
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
}

async fn run(probe: &Probe, path: &str) -> Result<(), String> {
    let stream = TcpStream::connect(probe.address)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let Some(tls) = &probe.tls else {
        return exchange(stream, &probe.host, path).await;
    };
    let name = ServerName::try_from(tls.server_name.clone())
        .map_err(|e| format!("server name {:?}: {e}", tls.server_name))?;
    let stream = tokio_rustls::TlsConnector::from(tls.config.clone())
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    exchange(stream, &probe.host, path).await
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    host: &str,
    path: &str,
) -> Result<(), String> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: fingate-health-check\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = [0u8; 64];
    let mut len = 0;
    // "HTTP/1.1 200" is 12 bytes; read until we have them or the peer closes.
    while len < 12 {
        match stream.read(&mut buf[len..]).await {
            Ok(0) => return Err("closed before a status line".into()),
            // A server that refuses the client certificate after a TLS 1.3
            // handshake says so here, at the first read.
            Err(e) => return Err(format!("read: {e}")),
            Ok(n) => len += n,
        }
    }
    if status_passes(&buf[..len]) {
        Ok(())
    } else {
        let line = buf[..len].split(|b| *b == b'\r').next().unwrap_or_default();
        Err(format!("answered {:?}", String::from_utf8_lossy(line)))
    }
}

fn status_passes(head: &[u8]) -> bool {
    let Some(rest) = head.strip_prefix(b"HTTP/1.") else {
        return false;
    };
    rest.get(1) == Some(&b' ')
        && matches!(
            rest.get(2..5),
            Some([b'2'..=b'3', b'0'..=b'9', b'0'..=b'9'])
        )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn status_line() {
        assert!(status_passes(b"HTTP/1.1 200 OK\r\n"));
        assert!(status_passes(b"HTTP/1.0 302 Found"));
        assert!(!status_passes(b"HTTP/1.1 503 Service Unavailable"));
        assert!(!status_passes(b"HTTP/1.1 404 Not Found"));
        assert!(!status_passes(b"garbage and more bytes"));
    }

    fn plain(address: SocketAddr) -> Probe {
        Probe {
            address,
            host: address.to_string(),
            tls: None,
        }
    }

    #[tokio::test]
    async fn check_against_a_real_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for status in ["200 OK", "500 Oops"] {
                if let Ok((mut s, _)) = listener.accept().await {
                    let mut buf = [0u8; 512];
                    let _ = s.read(&mut buf).await;
                    let _ = s
                        .write_all(
                            format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
                        )
                        .await;
                }
            }
        });
        let probe = plain(addr);
        assert_eq!(
            check(&probe, "/health", Duration::from_secs(2)).await,
            Ok(())
        );
        assert_eq!(
            check(&probe, "/health", Duration::from_secs(2)).await,
            Err("answered \"HTTP/1.1 500 Oops\"".into())
        );
        // Nothing listens on port 1.
        let nobody = plain(SocketAddr::from(([127, 0, 0, 1], 1)));
        assert!(check(&nobody, "/", Duration::from_millis(500))
            .await
            .is_err());
    }
}
