//! Active HTTP health checks: `GET <path>` on every target each `interval`; a 2xx
//! or 3xx within `timeout` passes. Each group generation runs its own tasks, which
//! stop when a reload retires the group or it is dropped.

use super::UpstreamGroup;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

async fn check_loop(group: Weak<UpstreamGroup>, index: usize) {
    loop {
        let (hc, address) = {
            let Some(g) = group.upgrade().filter(|g| !g.is_retired()) else {
                return;
            };
            let Some(target) = g.targets.get(index) else {
                return;
            };
            (g.config.health_check.clone(), target.address)
        };
        let Some(hc) = hc else {
            tokio::time::sleep(GAUGE_REFRESH).await;
            match group.upgrade().filter(|g| !g.is_retired()) {
                Some(g) => g.publish_health(index),
                None => return,
            }
            continue;
        };
        let passed = check(address, &hc.path, hc.timeout).await;
        match group.upgrade().filter(|g| !g.is_retired()) {
            Some(g) => g.record_check(index, passed),
            None => return,
        }
        tokio::time::sleep(hc.interval).await;
    }
}

/// One check: connect, send a minimal HTTP/1.1 GET, read the status line.
pub async fn check(address: SocketAddr, path: &str, timeout: Duration) -> bool {
    tokio::time::timeout(timeout, probe(address, path))
        .await
        .unwrap_or(false)
}

async fn probe(address: SocketAddr, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(address).await else {
        return false;
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: fingate-health-check\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let mut len = 0;
    // "HTTP/1.1 200" is 12 bytes; read until we have them or the peer closes.
    while len < 12 {
        match stream.read(&mut buf[len..]).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => len += n,
        }
    }
    status_passes(&buf[..len])
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
        assert!(check(addr, "/health", Duration::from_secs(2)).await);
        assert!(!check(addr, "/health", Duration::from_secs(2)).await);
        // Nothing listens on port 1.
        assert!(
            !check(
                SocketAddr::from(([127, 0, 0, 1], 1)),
                "/",
                Duration::from_millis(500)
            )
            .await
        );
    }
}
