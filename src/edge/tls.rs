//! TLS on the public listeners: certificates chosen by SNI, the protocol floor,
//! HTTP/2 by ALPN and optional client certificates (mutual TLS).
//!
//! The gateway builds the rustls settings itself and runs the handshake in the
//! connection shield ([`super::shield`]), not in Pingora's listener: Pingora's
//! settings fix the protocol versions, panic on an unreadable file and cannot be
//! replaced while running. Here a listener's [`ServerTls`] is built when the
//! configuration is validated (so a bad certificate is a validation error and the
//! running ones stay), and every new connection takes the one in force: a reload
//! changes what new handshakes get and leaves open connections alone.

pub mod certs;
pub mod client_cert;
mod sni;
mod transport;

use async_trait::async_trait;
use certs::{CertInfo, LoadedCert};
use client_cert::ClientCertificate;
use pingora::listeners::tls::{Acceptor, TlsSettings};
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::{TlsRef, TlsStream};
use pingora::protocols::Stream;
use rustls::server::WebPkiClientVerifier;
use rustls::version::{TLS12, TLS13};
use rustls::{ServerConfig, SupportedProtocolVersion};
use std::any::Any;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;
use transport::Transport;

/// The lowest TLS version a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MinVersion {
    #[default]
    Tls12,
    Tls13,
}

/// A listener's TLS settings as configured (file paths, not yet read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsSettings {
    /// Certificate and key files; the first pair is the default certificate.
    pub certs: Vec<(PathBuf, PathBuf)>,
    pub min_version: MinVersion,
    pub client_auth: Option<ClientAuth>,
    /// Offer HTTP/2 by ALPN.
    pub http2: bool,
}

/// Client certificates checked against `ca`; without one, a client is refused
/// at the handshake when `required`, else it connects without an identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    pub ca: PathBuf,
    pub required: bool,
}

/// Which setting a loading error is about (so validation can point at it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Cert(usize),
    ClientCa,
}

/// A listener's TLS, loaded and ready for handshakes.
pub struct ServerTls {
    acceptor: Acceptor,
    /// The certificates in order, as loaded.
    pub certs: Vec<CertInfo>,
    pub settings: ServerTlsSettings,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("certs", &self.certs)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads every file of `settings` and checks it at `now`.
    pub fn load(settings: &ServerTlsSettings, now: SystemTime) -> Result<Self, (Entry, String)> {
        let loaded: Vec<LoadedCert> = settings
            .certs
            .iter()
            .enumerate()
            .map(|(i, (cert, key))| {
                certs::load_pair(cert, key, now).map_err(|e| (Entry::Cert(i), e))
            })
            .collect::<Result<_, _>>()?;
        let versions: &[&'static SupportedProtocolVersion] = match settings.min_version {
            MinVersion::Tls12 => &[&TLS13, &TLS12],
            MinVersion::Tls13 => &[&TLS13],
        };
        // rustls offers only AEAD suites with ephemeral key exchange, and has no
        // compression and no renegotiation: nothing to switch off.
        let builder = ServerConfig::builder_with_provider(certs::provider())
            .with_protocol_versions(versions)
            .map_err(|e| (Entry::Cert(0), format!("TLS settings refused: {e}")))?;
        let builder = match &settings.client_auth {
            None => builder.with_no_client_auth(),
            Some(auth) => {
                let roots = certs::load_ca(&auth.ca).map_err(|e| (Entry::ClientCa, e))?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), certs::provider());
                let verifier = if auth.required {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| (Entry::ClientCa, format!("{}: {e}", auth.ca.display())))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(Arc::new(sni::SniResolver::new(&loaded)));
        config.ignore_client_order = true;
        config.alpn_protocols = if settings.http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        Ok(Self {
            acceptor: acceptor(config).map_err(|e| (Entry::Cert(0), e))?,
            certs: loaded.into_iter().map(|c| c.info).collect(),
            settings: settings.clone(),
        })
    }

    /// Runs the server side of a handshake on `stream`.
    pub async fn accept(&self, stream: Stream) -> Result<Stream, HandshakeError> {
        let (transport, heard) = Transport::new(stream);
        match self.acceptor.tls_handshake(transport).await {
            Ok(tls) => {
                let tls: TlsStream<Transport> = tls;
                Ok(Box::new(tls))
            }
            Err(_) if !heard.load(Ordering::Relaxed) => Err(HandshakeError::Silent),
            Err(e) => Err(HandshakeError::Failed(e)),
        }
    }
}

/// Why a handshake did not complete.
#[derive(Debug)]
pub enum HandshakeError {
    /// The client closed without sending anything (a port probe).
    Silent,
    Failed(Box<pingora::Error>),
}

impl HandshakeError {
    /// The `result` label of `fingate_tls_handshakes_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Silent => "closed",
            Self::Failed(_) => "failed",
        }
    }
}

/// Pingora's acceptor around our rustls settings: it carries the callback that
/// hands a client certificate's identity to the HTTP layer.
fn acceptor(config: ServerConfig) -> Result<Acceptor, String> {
    let mut settings =
        TlsSettings::with_callbacks(Box::new(ReadClientCertificate)).map_err(|e| e.to_string())?;
    // `build` needs certificates or a resolver; ours replaces its whole config.
    let placeholder: Arc<dyn rustls::server::ResolvesServerCert> = config.cert_resolver.clone();
    settings.set_cert_resolver(placeholder);
    let mut acceptor = settings.build();
    acceptor.acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    Ok(acceptor)
}

/// After a handshake with a client certificate (which the verifier accepted):
/// its identity, as the extension of the connection's TLS digest.
struct ReadClientCertificate;

#[async_trait]
impl TlsAccept for ReadClientCertificate {
    async fn handshake_complete_callback(
        &self,
        tls: &TlsRef,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        let der = tls.peer_certificate_der()?;
        let identity = ClientCertificate::from_der(der)?;
        // Stored as an Arc of its own, so each request takes it without a copy.
        Some(Arc::new(Arc::new(identity)))
    }
}

/// The identity of the client certificate verified on a connection, if any.
pub fn client_certificate(
    digest: Option<&pingora::protocols::Digest>,
) -> Option<Arc<ClientCertificate>> {
    digest?
        .ssl_digest
        .as_ref()?
        .extension
        .get::<Arc<ClientCertificate>>()
        .cloned()
}

/// `TLSv1_3` as written in access logs: `1.3`.
pub fn version_label(version: &str) -> &str {
    version.strip_prefix("TLSv").map_or(version, |v| match v {
        "1_3" | "1.3" => "1.3",
        "1_2" | "1.2" => "1.2",
        other => other,
    })
}
