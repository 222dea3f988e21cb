//! Builds the Pingora server from a validated config and runs it until a signal.
//!
//! Services: the public proxy (one per process, every `listen` address), the admin
//! listener, and a background service that reloads on SIGHUP.

use crate::admin::AdminApp;
use crate::config::Config;
use crate::edge::shield::Shield;
use crate::proxy::Proxy;
use crate::runtime::Gateway;
use async_trait::async_trait;
use pingora::apps::HttpServerOptions;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;
use std::sync::Arc;

/// Options of `fingate run` that are not in the YAML.
#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    /// Take over the listening sockets of a running instance (graceful upgrade).
    pub upgrade: bool,
}

/// Seconds in-flight requests get after SIGTERM before the process exits.
const GRACE_PERIOD_SECONDS: u64 = 2;
const SHUTDOWN_TIMEOUT_SECONDS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Build(#[from] crate::runtime::BuildError),
    #[error("cannot set up TLS listener {address}: {reason}")]
    Tls { address: String, reason: String },
}

/// Starts serving; returns only if start-up fails (then the process should exit 1).
pub fn run(config: Config, options: &RunOptions) -> Result<(), StartError> {
    let listen = config.listen.clone();
    let admin_address = config.admin.address;
    let threads = config.threads;
    let limits = config.limits.clone();
    let gateway = Gateway::new(config)?;

    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(GRACE_PERIOD_SECONDS),
        graceful_shutdown_timeout_seconds: Some(SHUTDOWN_TIMEOUT_SECONDS),
        // Per-address paths so several gateways on one machine (tests, a fleet on
        // one host) never collide.
        upgrade_sock: runtime_path(&format!(
            "fingate-{}.upgrade.sock",
            listen.first().map_or(0, |l| l.address.port())
        )),
        pid_file: runtime_path(&format!("fingate-{}.pid", admin_address.port())),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: options.upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);

    let mut http = pingora::proxy::http_proxy(&server.configuration, Proxy::new(gateway.clone()));
    let mut options = HttpServerOptions::default();
    options.keepalive_request_limit = Some(limits.max_requests_per_connection);
    http.server_options = Some(options);
    let mut proxy = Service::new("fingate proxy".to_owned(), Shield::new(http, &limits));
    for l in &listen {
        let address = l.address.to_string();
        match &l.tls {
            None => proxy.add_tcp(&address),
            Some(tls) => proxy
                .add_tls(
                    &address,
                    &tls.cert.display().to_string(),
                    &tls.key.display().to_string(),
                )
                .map_err(|e| StartError::Tls {
                    address: address.clone(),
                    reason: e.to_string(),
                })?,
        }
    }
    let mut admin = Service::new("fingate admin".to_owned(), AdminApp::new(gateway.clone()));
    admin.add_tcp(&admin_address.to_string());
    admin.threads = Some(1);

    server.add_service(proxy);
    server.add_service(admin);
    server.add_service(background_service(
        "reload on SIGHUP",
        ReloadOnSighup { gateway },
    ));
    server.bootstrap();
    tracing::info!(
        listen = ?listen.iter().map(|l| l.address.to_string()).collect::<Vec<_>>(),
        admin = %admin_address, threads, "fingate started"
    );
    server.run_forever()
}

fn runtime_path(name: &str) -> String {
    std::env::temp_dir().join(name).display().to_string()
}

struct ReloadOnSighup {
    gateway: Arc<Gateway>,
}

#[async_trait]
impl BackgroundService for ReloadOnSighup {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; use POST /admin/reload");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    tracing::info!("SIGHUP received: reloading the configuration");
                    // Reload parses and builds off the request threads' hot path.
                    let gateway = self.gateway.clone();
                    if let Err(e) = tokio::task::spawn_blocking(move || gateway.reload()).await {
                        tracing::error!(error = %e, "reload task failed");
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}
