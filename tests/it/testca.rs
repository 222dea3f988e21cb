//! A certificate authority made for one test: server and client certificates
//! (ECDSA P-256) written as PEM files in the CA's own temporary directory, so a
//! config can name them by absolute path.

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// A certificate and its key, as files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertFiles {
    /// `cert` and `key` as a YAML flow mapping, e.g. for `tls.certs[]`.
    pub fn yaml(&self) -> String {
        format!(
            "{{ cert: {}, key: {} }}",
            self.cert.display(),
            self.key.display()
        )
    }
}

pub struct TestCa {
    pub dir: tempfile::TempDir,
    /// The CA certificate (what clients trust, or what a listener checks clients against).
    pub cert: PathBuf,
    ca: Certificate,
    key: KeyPair,
}

/// When a certificate is valid.
#[derive(Debug, Clone, Copy)]
pub enum Validity {
    /// From yesterday for 30 days.
    Current,
    /// Ended yesterday.
    Expired,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        set_validity(&mut params, Validity::Current);
        let ca = params.self_signed(&key).unwrap();
        let cert = dir.path().join(format!("{name}-ca.pem"));
        std::fs::write(&cert, ca.pem()).unwrap();
        TestCa { dir, cert, ca, key }
    }

    /// A server certificate for `names` (DNS names or IP addresses), valid now.
    pub fn server(&self, stem: &str, names: &[&str]) -> CertFiles {
        self.server_with(stem, names, Validity::Current)
    }

    pub fn server_with(&self, stem: &str, names: &[&str], validity: Validity) -> CertFiles {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        set_validity(&mut params, validity);
        self.issue(stem, params)
    }

    /// A client certificate with subject `CN=<common_name>` and the given DNS SANs.
    pub fn client(&self, stem: &str, common_name: &str, dns_sans: &[&str]) -> CertFiles {
        self.client_cert(stem, &[(DnType::CommonName, common_name)], dns_sans)
    }

    /// A client certificate with subject `O=<organization>, CN=<common_name>`.
    pub fn client_with_org(&self, stem: &str, common_name: &str, organization: &str) -> CertFiles {
        self.client_cert(
            stem,
            &[
                (DnType::OrganizationName, organization),
                (DnType::CommonName, common_name),
            ],
            &[],
        )
    }

    fn client_cert(&self, stem: &str, subject: &[(DnType, &str)], dns_sans: &[&str]) -> CertFiles {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        for (kind, value) in subject {
            params.distinguished_name.push(kind.clone(), *value);
        }
        params.subject_alt_names = dns_sans
            .iter()
            .map(|n| SanType::DnsName((*n).try_into().unwrap()))
            .collect();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        set_validity(&mut params, Validity::Current);
        self.issue(stem, params)
    }

    fn issue(&self, stem: &str, params: CertificateParams) -> CertFiles {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.key).unwrap();
        let files = CertFiles {
            cert: self.dir.path().join(format!("{stem}.pem")),
            key: self.dir.path().join(format!("{stem}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }
}

/// A rustls client trusting the CA certificates in `ca`, presenting `client`
/// if given: how the tests talk TLS without a command-line client.
pub fn client_config(ca: &Path, client: Option<&CertFiles>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match client {
        Some(c) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(&c.cert).unwrap()],
                PrivateKeyDer::from_pem_file(&c.key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

fn set_validity(params: &mut CertificateParams, validity: Validity) {
    let now = OffsetDateTime::now_utc();
    let (from, to) = match validity {
        Validity::Current => (now - Duration::days(1), now + Duration::days(30)),
        Validity::Expired => (now - Duration::days(30), now - Duration::days(1)),
    };
    params.not_before = from;
    params.not_after = to;
}

#[test]
fn openssl_accepts_what_the_test_ca_issues() {
    let ca = TestCa::new("check");
    let server = ca.server("server", &["localhost", "127.0.0.1"]);
    let expired = ca.server_with("old", &["localhost"], Validity::Expired);
    let verify = |files: &CertFiles| {
        std::process::Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(&ca.cert)
            .arg(&files.cert)
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(verify(&server));
    assert!(verify(&ca.client(
        "client",
        "partner-bank",
        &["partner.example"]
    )));
    assert!(!verify(&expired), "an expired certificate must not verify");
}
