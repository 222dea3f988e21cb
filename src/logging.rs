//! Log output: JSON lines on stdout by default (one per request from the access
//! log, plus operational events), or human-readable text. Pingora's own `log`
//! records are bridged into the same stream. The access log has its own buffered
//! writer ([`access`]); the level filter decides whether it is on.

pub mod access;
pub mod audit;
pub mod redact;

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Json,
    Text,
}

/// rustls warns about what clients send (an IP address as SNI, a duplicate
/// name): one line per handshake that anyone can trigger. Failed handshakes are
/// counted in `fingate_tls_handshakes_total` instead.
const DEFAULT_FILTER: &str = "info,rustls=error";

/// Installs the global subscriber. `FINGATE_LOG` (or `RUST_LOG`) overrides the
/// level filter, e.g. `FINGATE_LOG=warn,fingate::access=off`.
pub fn init(format: LogFormat) {
    let filter = std::env::var("FINGATE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .map(EnvFilter::new)
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // A second init (tests calling twice) keeps the first subscriber.
    let _ = tracing_log::LogTracer::init();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // LogTracer lets every `log` record through to `tracing` (max level Trace),
    // so each of Pingora's `debug!`/`trace!` calls on the request path paid for a
    // filter check (benches/RESULTS.md). Let `log` drop what
    // the filter would drop anyway, at its static level check.
    log::set_max_level(match tracing::level_filters::LevelFilter::current() {
        tracing::level_filters::LevelFilter::OFF => log::LevelFilter::Off,
        tracing::level_filters::LevelFilter::ERROR => log::LevelFilter::Error,
        tracing::level_filters::LevelFilter::WARN => log::LevelFilter::Warn,
        tracing::level_filters::LevelFilter::INFO => log::LevelFilter::Info,
        tracing::level_filters::LevelFilter::DEBUG => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    });
    // The filter is read once: `fingate::access=off` (or a level above info)
    // turns the access log off for the life of the process.
    access::init(
        format,
        tracing::enabled!(target: "fingate::access", tracing::Level::INFO),
    );
}
