//! services-mock: example fintech microservices (accounts, payments, loans,
//! fx) that sit behind the fingate gateway in demos and integration tests.

mod accounts;
mod date;
mod diag;
mod error;
mod faults;
mod fx;
mod identity;
mod ledger;
mod loans;
mod payments;
mod respond;
mod server;
mod service;
mod stream;
mod tls;
mod web;

#[cfg(test)]
mod http_tests;
#[cfg(test)]
mod tls_tests;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};

use faults::{parse_latency, valid_status, FaultConfig};
use ledger::Ledger;

#[derive(Parser)]
#[command(
    name = "services-mock",
    version,
    about = "Mock fintech services for fingate demos and tests"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Two accounts instances, payments and loans in one process, sharing one ledger.
    All {
        #[arg(long = "accounts-1", default_value = "127.0.0.1:9101")]
        accounts_1: String,
        #[arg(long = "accounts-2", default_value = "127.0.0.1:9102")]
        accounts_2: String,
        #[arg(long, default_value = "127.0.0.1:9201")]
        payments: String,
        #[arg(long, default_value = "127.0.0.1:9301")]
        loans: String,
        #[command(flatten)]
        faults: FaultArgs,
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// One accounts (and fx) instance with its own ledger.
    Accounts {
        #[arg(long)]
        listen: String,
        /// Instance name reported in X-Served-By and the LISTENING line.
        #[arg(long, default_value = "accounts")]
        name: String,
        #[command(flatten)]
        faults: FaultArgs,
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// The payments service with its own ledger.
    Payments {
        #[arg(long)]
        listen: String,
        #[command(flatten)]
        faults: FaultArgs,
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// The loans service.
    Loans {
        #[arg(long)]
        listen: String,
        #[command(flatten)]
        faults: FaultArgs,
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// The example web client (examples/web-client), on its own origin.
    Web {
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: String,
        /// The folder holding the client's index.html.
        #[arg(long, default_value = "examples/web-client")]
        dir: std::path::PathBuf,
        /// The gateway the page calls.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        gateway: String,
        /// Token lifetime asked for at login (`tokenexp`), e.g. 15m.
        #[arg(long, default_value = "15m")]
        session: String,
    },
}

impl Cmd {
    /// The services' TLS options (the web client is served over HTTP).
    fn tls(&self) -> Option<&TlsArgs> {
        match self {
            Cmd::All { tls, .. }
            | Cmd::Accounts { tls, .. }
            | Cmd::Payments { tls, .. }
            | Cmd::Loans { tls, .. } => Some(tls),
            Cmd::Web { .. } => None,
        }
    }
}

/// HTTPS instead of HTTP, on the same addresses (HTTP/2 or HTTP/1.1 by ALPN).
#[derive(Args)]
struct TlsArgs {
    /// Serve HTTPS with this certificate chain (PEM).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require a client certificate signed by this CA (PEM); needs --tls-cert.
    #[arg(long, requires = "tls_cert")]
    client_ca: Option<PathBuf>,
}

impl TlsArgs {
    fn files(&self) -> Option<tls::TlsFiles> {
        Some(tls::TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            client_ca: self.client_ca.clone(),
        })
    }
}

fn status_arg(s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .ok()
        .filter(|c| valid_status(*c))
        .ok_or_else(|| format!("invalid status {s:?}: expected 200..=599"))
}

/// Start-up fault knobs; the same ones can be changed later via /_mock/faults.
#[derive(Args)]
struct FaultArgs {
    /// Delay before answering, e.g. 200ms, 2s or 200 (milliseconds).
    #[arg(long, env = "MOCK_LATENCY_MS", value_parser = parse_latency)]
    latency: Option<u64>,
    /// Fail every Nth request (0 = off).
    #[arg(long, env = "MOCK_FAIL_EVERY")]
    fail_every: Option<u64>,
    /// Status used by --fail-every (default 500).
    #[arg(long, env = "MOCK_FAIL_STATUS", value_parser = status_arg)]
    fail_status: Option<u16>,
    /// Answer 200 with a non-JSON body labelled application/json.
    #[arg(long, env = "MOCK_GARBAGE", value_parser = BoolishValueParser::new())]
    garbage: bool,
    /// Answer every business request with this status.
    #[arg(long, env = "MOCK_FORCE_STATUS", value_parser = status_arg)]
    force_status: Option<u16>,
    /// Status /health answers with (default 200).
    #[arg(long, env = "MOCK_HEALTH_STATUS", value_parser = status_arg)]
    health_status: Option<u16>,
}

impl FaultArgs {
    fn config(&self) -> FaultConfig {
        let d = FaultConfig::default();
        FaultConfig {
            latency_ms: self.latency.unwrap_or(d.latency_ms),
            fail_every: self.fail_every.unwrap_or(d.fail_every),
            fail_status: self.fail_status.unwrap_or(d.fail_status),
            garbage: self.garbage,
            force_status: self.force_status,
            health_status: self.health_status,
        }
    }
}

type Specs = Vec<(String, std::net::SocketAddr, axum::Router)>;

/// Exit code 2 (like a usage error) for a refused address.
fn build(cmd: Cmd) -> Result<Specs, String> {
    let addr = |s: &str| server::loopback_addr(s);
    Ok(match cmd {
        Cmd::All {
            accounts_1,
            accounts_2,
            payments,
            loans,
            faults,
            ..
        } => {
            let f = faults.config();
            let ledger = Ledger::seeded().shared();
            vec![
                (
                    "accounts-1".into(),
                    addr(&accounts_1)?,
                    server::accounts_instance("accounts-1", ledger.clone(), f.clone()),
                ),
                (
                    "accounts-2".into(),
                    addr(&accounts_2)?,
                    server::accounts_instance("accounts-2", ledger.clone(), f.clone()),
                ),
                (
                    "payments".into(),
                    addr(&payments)?,
                    server::payments_instance(ledger, f.clone()),
                ),
                ("loans".into(), addr(&loans)?, server::loans_instance(f)),
            ]
        }
        Cmd::Accounts {
            listen,
            name,
            faults,
            ..
        } => {
            let router =
                server::accounts_instance(&name, Ledger::seeded().shared(), faults.config());
            vec![(name, addr(&listen)?, router)]
        }
        Cmd::Payments { listen, faults, .. } => {
            let router = server::payments_instance(Ledger::seeded().shared(), faults.config());
            vec![("payments".into(), addr(&listen)?, router)]
        }
        Cmd::Loans { listen, faults, .. } => {
            vec![(
                "loans".into(),
                addr(&listen)?,
                server::loans_instance(faults.config()),
            )]
        }
        Cmd::Web {
            listen,
            dir,
            gateway,
            session,
        } => {
            if !dir.join("index.html").is_file() {
                return Err(format!("{} has no index.html", dir.display()));
            }
            let config = web::WebConfig {
                dir,
                gateway,
                session,
            };
            vec![("web".into(), addr(&listen)?, web::router(config))]
        }
    })
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. Handlers are installed before the
/// LISTENING lines go out, so a test may signal as soon as it has read them.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // A certificate that cannot be used is a usage error, found before binding.
    let tls = match cli
        .cmd
        .tls()
        .and_then(TlsArgs::files)
        .map(|f| tls::server_config(&f))
        .transpose()
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("services-mock: {e}");
            return ExitCode::from(2);
        }
    };
    let specs = match build(cli.cmd) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("services-mock: {e}");
            return ExitCode::from(2);
        }
    };
    let shutdown = match shutdown_signal() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("services-mock: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bound = match server::bind_all(specs).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("services-mock: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = server::announce(&bound) {
        eprintln!("services-mock: cannot write to stdout: {e}");
        return ExitCode::FAILURE;
    }
    server::serve(bound, tls, shutdown).await;
    ExitCode::SUCCESS
}
