//! Builds the Pingora server from a validated config and runs it until a signal.
//!
//! Services: the public proxy (one per process, every `listen` address, behind the
//! edge shield), the admin listener, and background services that reload on SIGHUP
//! and (with `--watch`) when the file changes. Signals: see [`lifecycle`].

mod lifecycle;

use crate::admin::AdminApp;
use crate::config::Config;
use crate::edge::shield::{accepts_on, LimitsSource, ListenerMode, ListenerSource, Shield};
use crate::proxy::Proxy;
use crate::runtime::Gateway;
use lifecycle::{ReloadOnSighup, Signals, WatchConfig};
use pingora::apps::HttpServerOptions;
use pingora::listeners::ListenerConfig;
use pingora::protocols::l4::stream::L4BufferSettings;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server};
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use std::time::Duration;

/// Options of `fingate run` that are not in the YAML.
#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    /// Take over the listening sockets of a running instance (graceful upgrade).
    pub upgrade: bool,
    /// Reload when the config file changes.
    pub watch: bool,
}

/// After a socket hand-over Pingora keeps the old listeners open this long
/// (its `CLOSE_TIMEOUT`), so both processes accept while the new one starts.
const UPGRADE_OVERLAP: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Build(#[from] crate::runtime::BuildError),
}

/// Starts serving; returns only if start-up fails (then the process should exit 1).
pub fn run(config: Config, options: &RunOptions) -> Result<(), StartError> {
    let listen = config.listen.clone();
    let admin_address = config.admin.address;
    let threads = config.threads;
    let limits = config.limits.clone();
    let grace = config.shutdown_grace;
    let config_path = config.source.file.clone();
    let gateway = Gateway::new(config)?;

    let conf = ServerConf {
        threads,
        // The drain watcher (lifecycle.rs) exits as soon as nothing is in flight;
        // Pingora's own grace period is only the backstop behind it.
        grace_period_seconds: Some(grace.as_secs() + 1),
        graceful_shutdown_timeout_seconds: Some(1),
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
    let mut http_options = HttpServerOptions::default();
    http_options.keepalive_request_limit = Some(limits.max_requests_per_connection);
    // h2c is detected per listener by the shield, which then reports HTTP/2 as if
    // chosen by ALPN; Pingora's own h2c switch would apply to every listener.
    http_options.h2_idle_timeout = Some(limits.idle_timeout);
    http.server_options = Some(http_options);
    let mut h2 = pingora::protocols::http::v2::server::default_h2_options();
    h2.max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    http.h2_options = Some(h2);
    let live = gateway.clone();
    let live_limits: LimitsSource =
        std::sync::Arc::new(move || live.current().config.limits.clone());
    let live = gateway.clone();
    let listeners: ListenerSource = std::sync::Arc::new(move |local| {
        let current = live.current();
        let l = current
            .config
            .listen
            .iter()
            .find(|l| accepts_on(l.address, local))?;
        (l.tls.is_some() || l.h2c).then(|| ListenerMode {
            name: l.name.clone(),
            tls: l.tls.clone(),
            h2c: l.h2c,
        })
    });
    let mut proxy = Service::new(
        "fingate proxy".to_owned(),
        Shield::new(http, live_limits.clone(), limits.max_connections).with_listeners(listeners),
    );
    // Every listener is plain TCP to Pingora: the shield runs the TLS handshake
    // with the settings in force when a connection arrives.
    for l in &listen {
        proxy.add_listener(client_listener(&l.address.to_string()));
    }
    // The admin listener gets the same guards (head deadline and size, body and
    // write limits) with its own, smaller connection cap.
    let mut admin = Service::new(
        "fingate admin".to_owned(),
        Shield::new(
            AdminApp::new(gateway.clone()),
            live_limits,
            limits.admin_max_connections,
        ),
    );
    admin.add_listener(client_listener(&admin_address.to_string()));
    admin.threads = Some(1);

    server.add_service(proxy);
    server.add_service(admin);
    if options.watch {
        server.add_service(background_service(
            "watch the config file",
            WatchConfig {
                gateway: gateway.clone(),
                path: config_path,
            },
        ));
    }
    server.add_service(background_service(
        "reload on SIGHUP",
        ReloadOnSighup { gateway },
    ));
    server.bootstrap();
    tracing::info!(
        listen = ?listen.iter().map(|l| l.address.to_string()).collect::<Vec<_>>(),
        admin = %admin_address, threads, "fingate started"
    );
    server.run(RunArgs {
        shutdown_signal: Box::new(Signals {
            grace,
            upgrade_delay: UPGRADE_OVERLAP,
        }),
    });
    Ok(())
}

fn runtime_path(name: &str) -> String {
    std::env::temp_dir().join(name).display().to_string()
}

/// A listener whose connections read straight from the socket. Pingora puts a
/// 64 KiB read buffer in front of every accepted connection; HTTP/1 reads its head
/// into a buffer of its own and rustls into its record buffer, so that one only
/// copies, and a kept-alive idle client holds it all the time it is connected
/// (measured per connection and per request in benches/RESULTS.md).
fn client_listener(address: &str) -> ListenerConfig {
    ListenerConfig::tcp(address).l4_buffer(L4BufferSettings::default().read(0))
}
