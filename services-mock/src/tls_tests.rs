//! HTTPS instances on 127.0.0.1:0 with certificates made in each test: HTTP/1.1
//! and the ALPN offer, the request's version in the echo, the client's address
//! (connection counts) over TLS, and client certificates required by --client-ca.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::faults::FaultConfig;
use crate::ledger::Ledger;
use crate::server;
use crate::tls::{server_config, TlsFiles};

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as files.
fn files(dir: &Path) {
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "mock CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca = params.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    for (stem, usage) in [
        ("server", ExtendedKeyUsagePurpose::ServerAuth),
        ("client", ExtendedKeyUsagePurpose::ClientAuth),
    ] {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, stem);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        std::fs::write(dir.join(format!("{stem}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem()).unwrap();
    }
}

/// One accounts instance serving HTTPS (requiring client certificates with `mtls`).
async fn start(dir: &Path, mtls: bool) -> SocketAddr {
    let config = server_config(&TlsFiles {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        client_ca: mtls.then(|| dir.join("ca.pem")),
    })
    .unwrap();
    let router = server::accounts_instance("a", Ledger::seeded().shared(), FaultConfig::default());
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let bound = server::bind_all(vec![("a".into(), any, router)])
        .await
        .unwrap();
    let addr = bound[0].addr;
    tokio::spawn(server::serve(bound, Some(config), std::future::pending()));
    addr
}

fn client(dir: &Path, alpn: &[&[u8]], with_cert: bool) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.join("ca.pem")).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = if with_cert {
        let chain = vec![CertificateDer::from_pem_file(dir.join("client.pem")).unwrap()];
        let key = PrivateKeyDer::from_pem_file(dir.join("client.key")).unwrap();
        builder.with_client_auth_cert(chain, key).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// One HTTP/1.1 GET over TLS; the status and JSON body, or the error.
async fn get(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    path: &str,
) -> Result<(u16, Value), String> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: mock\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    tls.read_to_end(&mut raw).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or(format!("no head: {text:?}"))?;
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

#[tokio::test]
async fn https_answers_http1_offers_h2_and_knows_the_client() {
    let dir = tempfile::tempdir().unwrap();
    files(dir.path());
    let addr = start(dir.path(), false).await;
    let (status, echo) = get(
        addr,
        client(dir.path(), &[b"http/1.1"], false),
        "/_mock/echo",
    )
    .await
    .unwrap();
    assert_eq!((status, echo["version"].as_str()), (200, Some("HTTP/1.1")));
    // The client's address reaches the handlers over TLS too: one connection counted.
    let (_, stats) = get(addr, client(dir.path(), &[], false), "/_mock/stats")
        .await
        .unwrap();
    assert_eq!(stats["connections"], 1, "{stats}");

    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(client(dir.path(), &[b"h2", b"http/1.1"], false))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
}

#[tokio::test]
async fn client_ca_requires_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    files(dir.path());
    let addr = start(dir.path(), true).await;
    let refused = get(addr, client(dir.path(), &[], false), "/health").await;
    assert!(refused.is_err(), "{refused:?}");
    let (status, _) = get(addr, client(dir.path(), &[], true), "/health")
        .await
        .unwrap();
    assert_eq!(status, 200);
}
