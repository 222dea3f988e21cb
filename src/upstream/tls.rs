//! TLS to an upstream group's targets (`upstreams.NAME.tls`): the settings, and
//! what they load into when the configuration is validated. Loading there makes an
//! unreadable file, a key that does not match its certificate or an expired client
//! certificate a validation error at its place in the file, and every reload reads
//! the files again.
//!
//! Requests go through Pingora's connector, which gets this material in each peer
//! (`proxy/peer.rs`); health checks handshake with tokio-rustls and the
//! [`UpstreamTls::checks`] settings. Both verify the same way: against `ca` (or
//! the system's roots), for the name in `sni`, or without `sni` for the target's
//! IP address (its certificate needs that address as an IP SAN; rustls sends no
//! SNI for an address).
//!
//! A peer is never given an empty SNI: Pingora's rustls connector cannot make a
//! server name of it and fails to connect (and its choice of checks would skip
//! them all for one). Without `sni` a peer carries the target's address as text.
//!
//! Pingora keys its pool of idle connections by address, SNI, verify flags and
//! the client certificate's serial, not by CA: [`UpstreamTls::fingerprint`] is
//! what keeps connections made under different settings or files apart.

use crate::edge::tls::certs::{self, CertInfo, PairFile};
use pingora::protocols::tls::CaType;
use pingora::utils::tls::{parse_x509, CertKey, WrappedX509};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::version::{TLS12, TLS13};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

/// `upstreams.NAME.tls`, validated: paths resolved against the config file's folder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpstreamTlsSettings {
    /// The name asked for (SNI) and verified; None: each target's IP address.
    pub sni: Option<String>,
    /// CA certificates the targets' certificates are checked against; None: the
    /// system's roots.
    pub ca: Option<PathBuf>,
    /// Whether the targets' certificates are checked at all.
    pub verify: bool,
    /// Certificate and key the gateway presents (mutual TLS).
    pub client: Option<(PathBuf, PathBuf)>,
}

/// Which setting a loading problem is about (validation points at its key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsEntry {
    Ca,
    ClientCert,
    ClientKey,
}

/// A group's TLS, loaded: what requests and health checks connect with.
pub struct UpstreamTls {
    pub settings: UpstreamTlsSettings,
    /// The `ca` certificates as Pingora's per-peer CA list (None: system roots).
    pub ca: Option<Arc<CaType>>,
    /// The client certificate and key as Pingora takes them.
    pub client_key: Option<Arc<CertKey>>,
    /// What the client certificate says (names, expiry), for the admin API and an
    /// expiry metric.
    pub client_cert: Option<CertInfo>,
    /// The rustls settings of the health checks (HTTP/1.1 by ALPN).
    pub checks: Arc<ClientConfig>,
    /// Identifies the material read (CA and client certificates) and the
    /// settings, so pooled connections made with other ones are never reused.
    pub fingerprint: u64,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("settings", &self.settings)
            .field("client_cert", &self.client_cert)
            .finish_non_exhaustive()
    }
}

/// Two loads are the same when their settings and the files' contents are.
impl PartialEq for UpstreamTls {
    fn eq(&self, other: &Self) -> bool {
        self.settings == other.settings && self.fingerprint == other.fingerprint
    }
}

impl Eq for UpstreamTls {}

impl UpstreamTls {
    /// Reads every file of `settings` and checks it at `now`; every problem found.
    pub fn load(
        settings: UpstreamTlsSettings,
        now: SystemTime,
    ) -> Result<Self, Vec<(TlsEntry, String)>> {
        let mut problems = Vec::new();
        let mut fingerprint = std::collections::hash_map::DefaultHasher::new();
        settings.hash(&mut fingerprint);
        let (roots, ca) = match &settings.ca {
            Some(path) => match read_ca(path) {
                Ok(bundle) => {
                    bundle.ders.hash(&mut fingerprint);
                    (Arc::new(bundle.roots), Some(bundle.pingora))
                }
                Err(e) => {
                    problems.push((TlsEntry::Ca, e));
                    (Arc::new(RootCertStore::empty()), None)
                }
            },
            // Without verification no root is ever consulted.
            None if !settings.verify => (Arc::new(RootCertStore::empty()), None),
            None => (system_roots(), None),
        };
        let client = match &settings.client {
            Some((cert, key)) => client_pair(cert, key, now)
                .map_err(|e| problems.push(e))
                .ok(),
            None => None,
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        let provider = certs::provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&TLS13, &TLS12])
            .map_err(|e| vec![(TlsEntry::Ca, format!("TLS settings refused: {e}"))])?;
        let builder = if settings.verify {
            builder.with_root_certificates(roots)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        };
        let mut checks = match &client {
            Some(c) => {
                c.chain.hash(&mut fingerprint);
                builder
                    .with_client_auth_cert(c.chain.clone(), c.key.clone_key())
                    .map_err(|e| vec![(TlsEntry::ClientKey, format!("client key refused: {e}"))])?
            }
            None => builder.with_no_client_auth(),
        };
        checks.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            ca,
            client_key: client.as_ref().map(|c| c.pingora.clone()),
            client_cert: client.map(|c| c.info),
            checks: Arc::new(checks),
            fingerprint: fingerprint.finish(),
            settings,
        })
    }

    /// The name a connection to `ip` asks for and verifies: `sni`, or the address.
    pub fn server_name(&self, ip: IpAddr) -> String {
        self.settings.sni.clone().unwrap_or_else(|| ip.to_string())
    }
}

/// Whether `name` can be verified as a server's name: a DNS name or an IP address.
pub fn valid_server_name(name: &str) -> bool {
    ServerName::try_from(name).is_ok()
}

/// A CA bundle for rustls, as read, and as Pingora's list.
struct CaBundle {
    roots: RootCertStore,
    ders: Vec<CertificateDer<'static>>,
    pingora: Arc<CaType>,
}

fn read_ca(path: &Path) -> Result<CaBundle, String> {
    let (roots, ders) = certs::read_ca(path)?;
    let pingora = pingora_certs(&ders, path)?.into();
    Ok(CaBundle {
        roots,
        ders,
        pingora,
    })
}

/// A client certificate and key, read and checked, in both libraries' forms.
struct ClientPair {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    pingora: Arc<CertKey>,
    info: CertInfo,
}

fn client_pair(cert: &Path, key: &Path, now: SystemTime) -> Result<ClientPair, (TlsEntry, String)> {
    let pair = certs::read_pair(cert, key, now).map_err(|(file, e)| match file {
        PairFile::Cert => (TlsEntry::ClientCert, e),
        PairFile::Key => (TlsEntry::ClientKey, e),
    })?;
    let chain = pair.loaded.key.cert.clone();
    // Pingora parses these again when it connects and panics on what it cannot
    // parse: everything it will see is parsed here first.
    let ders = pingora_certs(&chain, cert).map_err(|e| (TlsEntry::ClientCert, e))?;
    let raw_key = pair.key_der.secret_der().to_vec();
    if PrivateKeyDer::try_from(raw_key.clone()).is_err() {
        return Err((
            TlsEntry::ClientKey,
            format!(
                "the key in {} is in an encoding the upstream connector cannot use",
                key.display()
            ),
        ));
    }
    let raw_chain = ders.iter().map(|c| c.borrow_raw_cert().clone()).collect();
    Ok(ClientPair {
        chain,
        key: pair.key_der,
        pingora: Arc::new(CertKey::new(raw_chain, raw_key)),
        info: pair.loaded.info,
    })
}

/// Certificates as Pingora's wrapper, each parsed by the same parser it uses.
fn pingora_certs(ders: &[CertificateDer<'_>], path: &Path) -> Result<Vec<WrappedX509>, String> {
    ders.iter()
        .map(|der| {
            certs::inspect(der, path)?;
            Ok(WrappedX509::new(der.to_vec(), parse_x509))
        })
        .collect()
}

/// The system's trusted roots, read once per process (as Pingora's connector does).
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            match pingora::tls::load_native_certs() {
                Ok(found) => {
                    roots.add_parsable_certificates(found);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the system's CA certificates: upstream TLS without `ca` will not verify")
                }
            }
            Arc::new(roots)
        })
        .clone()
}

/// `verify: false` for health checks: any certificate is accepted, but the
/// handshake's signatures are still checked (as Pingora does for requests).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
