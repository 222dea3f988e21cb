//! The baseline for the load comparison (`benches/load/run`): the thinnest
//! pass-through proxy Pingora 0.9.1 allows. One fixed upstream, no filters, no
//! logging of its own, no metrics — the ceiling that fingate, built on the same
//! framework, can reach.
//!
//! Usage: `bare_pingora LISTEN UPSTREAM THREADS`, e.g.
//! `bare_pingora 127.0.0.1:18081 127.0.0.1:18080 1`.

use async_trait::async_trait;
use pingora::prelude::HttpPeer;
use pingora::proxy::{http_proxy_service, ProxyHttp, Session};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

/// The same allocator as fingate (src/main.rs), so the baseline stays comparable.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The same upstream keep-alive as fingate's (`UPSTREAM_IDLE_TIMEOUT` in src/proxy.rs).
const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

struct Bare {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora::Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream, false, String::new());
        peer.options.idle_timeout = Some(UPSTREAM_IDLE_TIMEOUT);
        Ok(Box::new(peer))
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args.as_slice() {
        [listen, upstream, threads] => upstream
            .parse::<SocketAddr>()
            .ok()
            .zip(threads.parse::<usize>().ok())
            .map(|(u, t)| (listen.clone(), u, t)),
        _ => None,
    };
    let Some((listen, upstream, threads)) = parsed else {
        eprintln!("usage: bare_pingora LISTEN_ADDR UPSTREAM_ADDR THREADS");
        return ExitCode::FAILURE;
    };

    let conf = ServerConf {
        threads,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    let mut proxy = http_proxy_service(&server.configuration, Bare { upstream });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.bootstrap();
    server.run_forever()
}
