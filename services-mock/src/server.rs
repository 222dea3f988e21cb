//! Binding, the LISTENING handshake and graceful shutdown for one or more
//! named instances running in this process.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use axum::Router;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::faults::FaultConfig;
use crate::ledger::SharedLedger;
use crate::tls::TlsListener;
use crate::{accounts, fx, loans, payments, respond, service, stream};

/// In-flight requests get this long to finish after a shutdown signal; a
/// request parked in injected latency must not keep the process alive.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

pub fn accounts_instance(name: &str, ledger: SharedLedger, faults: FaultConfig) -> Router {
    let business = accounts::router(ledger)
        .merge(fx::router())
        .merge(respond::router())
        .merge(stream::router());
    service::instance_router(name, faults, business)
}

pub fn payments_instance(ledger: SharedLedger, faults: FaultConfig) -> Router {
    service::instance_router("payments", faults, payments::router(ledger))
}

pub fn loans_instance(faults: FaultConfig) -> Router {
    service::instance_router("loans", faults, loans::router())
}

/// Parses a listen address and refuses anything but loopback: the mock has
/// no authentication of its own and must never be reachable from outside.
pub fn loopback_addr(s: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = match s.strip_prefix("localhost:") {
        Some(port) => format!("127.0.0.1:{port}").parse(),
        None => s.parse(),
    }
    .map_err(|_| format!("invalid listen address {s:?}: expected e.g. 127.0.0.1:9101"))?;
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(format!(
            "refusing to listen on non-loopback address {addr}: use 127.0.0.1"
        ))
    }
}

pub struct Bound {
    pub name: String,
    pub addr: SocketAddr,
    listener: TcpListener,
    router: Router,
}

/// Binds every instance first so a port clash fails before anything is
/// announced as listening.
pub async fn bind_all(specs: Vec<(String, SocketAddr, Router)>) -> Result<Vec<Bound>, String> {
    let mut bound = Vec::with_capacity(specs.len());
    for (name, addr, router) in specs {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot bind {name} on {addr}: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot read bound address of {name}: {e}"))?;
        bound.push(Bound {
            name,
            addr,
            listener,
            router,
        });
    }
    Ok(bound)
}

/// The handshake integration tests parse to learn ephemeral ports.
pub fn announce(bound: &[Bound]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for b in bound {
        writeln!(out, "LISTENING {} {}", b.name, b.addr)?;
    }
    out.flush()
}

/// Serves until `shutdown` completes, then drains for at most DRAIN_TIMEOUT.
/// With `tls`, every instance serves HTTPS instead of HTTP.
pub async fn serve(
    bound: Vec<Bound>,
    tls: Option<Arc<ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let (tx, rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for b in bound {
        let mut rx = rx.clone();
        let stop = async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let app = b.router.into_make_service_with_connect_info::<SocketAddr>();
        let tls = tls.clone();
        tasks.push(tokio::spawn(async move {
            let served = match tls {
                None => {
                    axum::serve(b.listener, app)
                        .with_graceful_shutdown(stop)
                        .await
                }
                // Tapped only so axum hands the handlers the client's address
                // (it does that for a plain TCP listener or a tapped one).
                Some(config) => {
                    let listener = TlsListener::new(b.listener, b.addr, config).tap_io(|_| {});
                    axum::serve(listener, app)
                        .with_graceful_shutdown(stop)
                        .await
                }
            };
            if let Err(e) = served {
                eprintln!("services-mock: {} stopped with error: {e}", b.name);
            }
        }));
    }
    shutdown.await;
    let _ = tx.send(true);
    let drain = async {
        for t in tasks {
            let _ = t.await;
        }
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        eprintln!("services-mock: drain timed out, exiting anyway");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_accepted() {
        assert!(loopback_addr("127.0.0.1:0").is_ok());
        assert!(loopback_addr("127.0.0.2:9101").is_ok());
        assert!(loopback_addr("[::1]:9101").is_ok());
        assert_eq!(
            loopback_addr("localhost:9101").ok(),
            "127.0.0.1:9101".parse().ok()
        );
        assert!(loopback_addr("0.0.0.0:9101").is_err());
        assert!(loopback_addr("10.1.2.3:9101").is_err());
        assert!(loopback_addr("[::]:9101").is_err());
        assert!(loopback_addr("example.com:80").is_err());
        assert!(loopback_addr("9101").is_err());
    }
}
