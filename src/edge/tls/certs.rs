//! Reading certificates, keys and CA bundles from PEM files, with the checks an
//! operator needs at validation time (not at the first handshake): the file can be
//! read and holds what it should, the key belongs to the certificate, and the
//! certificate is valid now.

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// What the gateway shows and checks of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The DNS names it is valid for (its SANs; the subject's CN when it has none),
    /// lower case. Wildcards keep their `*.`.
    pub names: Vec<String>,
    /// The subject, e.g. `CN=api.example.com, O=Bank`.
    pub subject: String,
    /// Seconds since the epoch at which it expires (`notAfter`).
    pub not_after: i64,
    /// Seconds since the epoch from which it is valid (`notBefore`).
    pub not_before: i64,
    /// SHA-256 of the certificate (DER), hex: tells a renewed certificate from
    /// the one it replaces even when names and dates are the same.
    pub sha256: String,
}

impl CertInfo {
    /// A name for metrics and logs: its first DNS name, else its subject.
    pub fn label(&self) -> &str {
        self.names.first().map_or(&self.subject, String::as_str)
    }
}

/// A certificate chain with its key, ready for a TLS server or client.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    pub key: Arc<CertifiedKey>,
    pub info: CertInfo,
}

/// The crypto provider every TLS object of the gateway is built with (ring, as
/// Pingora's).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads the certificate chain at `cert` and its private key at `key`, and checks
/// that they belong together and that the certificate is valid at `now`.
pub fn load_pair(cert: &Path, key: &Path, now: SystemTime) -> Result<LoadedCert, String> {
    read_pair(cert, key, now)
        .map(|pair| pair.loaded)
        .map_err(|(_, e)| e)
}

/// Which file of a certificate and key pair a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairFile {
    Cert,
    Key,
}

/// A pair as [`load_pair`] checks it, with the key's DER kept: a TLS client that
/// takes a raw key (Pingora's upstream connector) needs it.
#[derive(Debug)]
pub struct LoadedPair {
    pub loaded: LoadedCert,
    pub key_der: PrivateKeyDer<'static>,
}

/// [`load_pair`], also saying which of the two files a problem is about, so
/// validation can point at the key of the file that is wrong.
pub fn read_pair(
    cert: &Path,
    key: &Path,
    now: SystemTime,
) -> Result<LoadedPair, (PairFile, String)> {
    let chain = read_chain(cert).map_err(|e| (PairFile::Cert, e))?;
    let private = read_key(key).map_err(|e| (PairFile::Key, e))?;
    let info = inspect(&chain[0], cert).map_err(|e| (PairFile::Cert, e))?;
    check_validity(&info, cert, now).map_err(|e| (PairFile::Cert, e))?;
    let certified =
        CertifiedKey::from_der(chain, private.clone_key(), &provider()).map_err(|e| {
            let message = match e {
                rustls::Error::InconsistentKeys(_) => format!(
                    "{} is not the private key of the certificate in {}",
                    key.display(),
                    cert.display()
                ),
                e => format!("{} cannot be used: {e}", key.display()),
            };
            (PairFile::Key, message)
        })?;
    Ok(LoadedPair {
        loaded: LoadedCert {
            key: Arc::new(certified),
            info,
        },
        key_der: private,
    })
}

/// Reads the CA certificates in `path` (a PEM bundle): what peers' certificates
/// are checked against.
pub fn load_ca(path: &Path) -> Result<RootCertStore, String> {
    read_ca(path).map(|(roots, _)| roots)
}

/// [`load_ca`], keeping the certificates' DER too (Pingora's per-peer CA list is
/// made of them).
pub fn read_ca(path: &Path) -> Result<(RootCertStore, Vec<CertificateDer<'static>>), String> {
    let certs = read_chain(path)?;
    let mut roots = RootCertStore::empty();
    for (i, c) in certs.iter().enumerate() {
        roots.add(c.clone()).map_err(|e| {
            format!(
                "certificate {} in {} is not a usable CA certificate: {e}",
                i + 1,
                path.display()
            )
        })?;
    }
    Ok((roots, certs))
}

/// The certificates of a PEM file, in order (at least one).
pub fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not a readable PEM file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no certificate (expected a PEM `BEGIN CERTIFICATE` block)",
            path.display()
        ));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        format!(
            "{} holds no readable private key (expected a PEM `PRIVATE KEY` block): {e}",
            path.display()
        )
    })
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The names, subject and validity of a DER certificate read from `path`.
pub fn inspect(der: &CertificateDer<'_>, path: &Path) -> Result<CertInfo, String> {
    let (_, cert) = X509Certificate::from_der(der.as_ref()).map_err(|e| {
        format!(
            "the certificate in {} cannot be parsed: {e}",
            path.display()
        )
    })?;
    let mut names = alt_names(&cert, |n| match n {
        GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
        GeneralName::IPAddress(ip) => ip_text(ip),
        _ => None,
    });
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_ascii_lowercase),
        );
    }
    let sha256 = ring::digest::digest(&ring::digest::SHA256, der.as_ref())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(CertInfo {
        sha256,
        names,
        subject: cert.subject().to_string(),
        not_after: cert.validity().not_after.timestamp(),
        not_before: cert.validity().not_before.timestamp(),
    })
}

/// The subject alternative names of `cert` that `pick` keeps, as text.
pub(super) fn alt_names(
    cert: &X509Certificate<'_>,
    pick: impl Fn(&GeneralName<'_>) -> Option<String>,
) -> Vec<String> {
    cert.subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| san.value.general_names.iter().filter_map(pick).collect())
        .unwrap_or_default()
}

pub(super) fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv4Addr::from(b).to_string()),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv6Addr::from(b).to_string()),
        _ => None,
    }
}

fn check_validity(info: &CertInfo, path: &Path, now: SystemTime) -> Result<(), String> {
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    if info.not_after < now {
        return Err(format!(
            "the certificate in {} ({}) expired at {}",
            path.display(),
            info.label(),
            rfc3339(info.not_after)
        ));
    }
    if info.not_before > now {
        return Err(format!(
            "the certificate in {} ({}) is not valid before {}",
            path.display(),
            info.label(),
            rfc3339(info.not_before)
        ));
    }
    Ok(())
}

fn rfc3339(unix: i64) -> String {
    x509_parser::time::ASN1Time::from_timestamp(unix)
        .map_or_else(|_| unix.to_string(), |t| t.to_string())
}
