//! The HTTP client for the gateway's own outbound calls: remote key sets
//! (`jwks_url`) and span export (`tracing.otlp_endpoint`).
//!
//! One client per process, so connections to a provider or a collector are kept
//! alive between calls. rustls with the ring provider (as every TLS object of the
//! gateway), the system's trusted certificates (or the bundle `SSL_CERT_FILE` /
//! `SSL_CERT_DIR` name instead), no redirects (one could leave `https://`). Each
//! caller bounds its own requests in time.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Longest opening a connection (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The process's client; an error when the system's trusted certificates
/// cannot be read.
pub fn client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT.get_or_init(build).as_ref().map_err(Clone::clone)
}

fn build() -> Result<reqwest::Client, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
        .map_err(|e| format!("the system's trusted certificates: {e}"))?;
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("fingate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())
}

/// A reqwest error with its causes (reqwest's own text names only the outermost).
pub fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}
