//! Validation of `upstreams.NAME.tls` and `http2`, as a table (see `tests.rs`):
//! the certificate files are made in each run by a test CA, in the folder
//! `${KEYS}` names.

use super::tests::{check_in, config, Case};
use crate::config::demo::Secrets;
use crate::config::parse;
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::path::Path;

/// A folder with a CA (`ca.pem`), a client certificate and its key (`gw.pem`,
/// `gw.key`), a key of nobody's (`other.key`), a client certificate that expired
/// (`old.pem`, `old.key`, dated so its message is always the same), and files
/// that are not what they should be.
fn cert_files() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "internal CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca = params.self_signed(&ca_key).unwrap();
    write("ca.pem", ca.pem());
    let client = |stem: &str, from: (i32, u8, u8), to: (i32, u8, u8)| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![format!("{stem}.internal")]).unwrap();
        params.distinguished_name.push(DnType::CommonName, stem);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = date_time_ymd(from.0, from.1, from.2);
        params.not_after = date_time_ymd(to.0, to.1, to.2);
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        write(&format!("{stem}.pem"), cert.pem());
        write(&format!("{stem}.key"), key.serialize_pem());
    };
    client("gw", (2020, 1, 1), (4000, 1, 1));
    client("old", (2020, 1, 1), (2021, 1, 1));
    write("other.key", KeyPair::generate().unwrap().serialize_pem());
    write("garbage.pem", "not a certificate\n".into());
    write(
        "broken.pem",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
    );
    dir
}

const CASES: &[Case] = &[
    ("tls every option valid", "upstreams:\n  svc:\n    targets: [127.0.0.1:9443]\n    tls:\n      sni: ledger.internal\n      ca: ${KEYS}/ca.pem\n      verify: true\n      client_cert: ${KEYS}/gw.pem\n      client_key: ${KEYS}/gw.key\n    http2: true\n", &[]),
    ("tls with the defaults", "upstreams:\n  svc: { targets: [127.0.0.1:9443], tls: {} }\n", &[]),
    ("tls an IP address as sni", "upstreams:\n  svc: { targets: [127.0.0.1:9443], tls: { sni: '10.0.0.5', ca: '${KEYS}/ca.pem' } }\n", &[]),
    ("tls without verification", "upstreams:\n  svc: { targets: [127.0.0.1:9443], tls: { verify: false } }\n", &[]),
    ("http2 without tls", "upstreams:\n  svc: { targets: [127.0.0.1:9101], http2: true }\n", &[]),
    ("tls ca unreadable", "upstreams:\n  svc:\n    targets: [127.0.0.1:9443]\n    tls:\n      ca: ${KEYS}/missing.pem\n", &[
        "gateway.yaml:5:7: upstreams.svc.tls.ca: cannot read $KEYS/missing.pem: No such file or directory (os error 2)",
    ]),
    ("tls ca not a certificate", "upstreams:\n  svc:\n    targets: [127.0.0.1:9443]\n    tls:\n      ca: ${KEYS}/garbage.pem\n", &[
        "gateway.yaml:5:7: upstreams.svc.tls.ca: $KEYS/garbage.pem holds no certificate (expected a PEM `BEGIN CERTIFICATE` block)",
    ]),
    ("tls ca unusable", "upstreams:\n  svc:\n    targets: [127.0.0.1:9443]\n    tls:\n      ca: ${KEYS}/broken.pem\n", &[
        "gateway.yaml:5:7: upstreams.svc.tls.ca: certificate 1 in $KEYS/broken.pem is not a usable CA certificate: invalid peer certificate: BadEncoding",
    ]),
    ("tls client key of another certificate", "upstreams:\n  svc:\n    targets: [127.0.0.1:9443]\n    tls:\n      client_cert: ${KEYS}/gw.pem\n      client_key: ${KEYS}/other.key\n", &[
        "gateway.yaml:6:7: upstreams.svc.tls.client_key: $KEYS/other.key is not the private key of the certificate in $KEYS/gw.pem",
    ]),
    ("tls client certificate expired", "upstreams:\n  svc:\n    targets: [127.0.0.1:9443]\n    tls:\n      client_cert: ${KEYS}/old.pem\n      client_key: ${KEYS}/old.key\n", &[
        "gateway.yaml:5:7: upstreams.svc.tls.client_cert: the certificate in $KEYS/old.pem (old.internal) expired at Jan  1 00:00:00 2021 +00:00",
    ]),
    ("tls client key unreadable", "upstreams:\n  svc:\n    targets: [127.0.0.1:9443]\n    tls:\n      client_cert: ${KEYS}/gw.pem\n      client_key: ${KEYS}/gw.pem\n", &[
        "gateway.yaml:6:7: upstreams.svc.tls.client_key: $KEYS/gw.pem holds no readable private key (expected a PEM `PRIVATE KEY` block): no items found",
    ]),
    ("tls client_cert without client_key", "upstreams:\n  svc:\n    targets: [127.0.0.1:9443]\n    tls: { client_cert: '${KEYS}/gw.pem' }\n", &[
        "gateway.yaml:4:12: upstreams.svc.tls.client_cert: `client_cert` needs `client_key` (the certificate's private key)",
    ]),
    ("tls client_key without client_cert", "upstreams:\n  svc:\n    targets: [127.0.0.1:9443]\n    tls: { client_key: '${KEYS}/gw.key' }\n", &[
        "gateway.yaml:4:12: upstreams.svc.tls.client_key: `client_key` needs `client_cert` (the certificate it belongs to)",
    ]),
    ("tls every problem at once", "upstreams:\n  svc:\n    targets: [127.0.0.1:9443]\n    tls:\n      sni: 'ledger internal'\n      ca: ${KEYS}/missing.pem\n      client_cert: ${KEYS}/old.pem\n      client_key: ${KEYS}/old.key\n  b:\n    targets: [127.0.0.1:9444]\n    tls: { client_key: '${KEYS}/gw.key', ca: '${KEYS}/garbage.pem' }\n", &[
        "gateway.yaml:5:7: upstreams.svc.tls.sni: \"ledger internal\" is not a host name or IP address",
        "gateway.yaml:6:7: upstreams.svc.tls.ca: cannot read $KEYS/missing.pem: No such file or directory (os error 2)",
        "gateway.yaml:7:7: upstreams.svc.tls.client_cert: the certificate in $KEYS/old.pem (old.internal) expired at Jan  1 00:00:00 2021 +00:00",
        "gateway.yaml:11:12: upstreams.b.tls.client_key: `client_key` needs `client_cert` (the certificate it belongs to)",
        "gateway.yaml:11:42: upstreams.b.tls.ca: $KEYS/garbage.pem holds no certificate (expected a PEM `BEGIN CERTIFICATE` block)",
    ]),
    ("tls unknown key", "upstreams:\n  svc: { targets: [127.0.0.1:9443], tls: { cafile: ca.pem } }\n", &[
        "gateway.yaml:2:44: upstreams.svc.tls.cafile: unknown field `cafile`, expected one of `sni`, `ca`, `verify`, `client_cert`, `client_key`",
    ]),
    ("tls verify not a boolean", "upstreams:\n  svc: { targets: [127.0.0.1:9443], tls: { verify: 'no' } }\n", &[
        "gateway.yaml:2:44: upstreams.svc.tls.verify: invalid type: string \"no\", expected a boolean",
    ]),
    ("http2 not a boolean", "upstreams:\n  svc: { targets: [127.0.0.1:9443], http2: h2 }\n", &[
        "gateway.yaml:2:37: upstreams.svc.http2: invalid type: string \"h2\", expected a boolean",
    ]),
];

#[test]
fn upstream_tls() {
    let files = cert_files();
    check_in(CASES, config, files.path());
}

#[test]
fn relative_paths_are_read_from_the_config_files_folder() {
    let files = cert_files();
    let yaml = config(
        "upstreams:\n  svc:\n    targets: [127.0.0.1:9443]\n    tls: { ca: ca.pem, client_cert: gw.pem, client_key: gw.key }\n",
    );
    let file = files.path().join("gateway.yaml");
    let c = parse(&yaml, &file, &|_| None, Secrets::Production).unwrap();
    let tls = c.upstreams["svc"].tls.as_ref().unwrap();
    assert_eq!(
        tls.settings.ca.as_deref(),
        Some(&*files.path().join("ca.pem"))
    );
    assert_eq!(tls.client_cert.as_ref().unwrap().names, ["gw.internal"]);
    assert!(tls.ca.is_some() && tls.client_key.is_some());
    // The same file elsewhere: its files are not found.
    let errors = parse(
        &yaml,
        Path::new("gateway.yaml"),
        &|_| None,
        Secrets::Production,
    )
    .unwrap_err()
    .to_string();
    assert!(
        errors.contains("upstreams.svc.tls.ca: cannot read ca.pem"),
        "{errors}"
    );
}

#[test]
fn the_loaded_material_tells_configurations_apart() {
    let files = cert_files();
    let load = |snippet: &str| {
        let file = files.path().join("gateway.yaml");
        parse(&config(snippet), &file, &|_| None, Secrets::Production)
            .unwrap()
            .upstreams
            .remove("svc")
            .unwrap()
    };
    let with_ca = "upstreams:\n  svc: { targets: [127.0.0.1:9443], tls: { ca: ca.pem } }\n";
    let a = load(with_ca);
    assert_eq!(a, load(with_ca));
    // The same settings, a CA file with other contents: not the same.
    std::fs::copy(files.path().join("gw.pem"), files.path().join("ca.pem")).unwrap();
    assert_ne!(a, load(with_ca));
    assert_ne!(
        load("upstreams:\n  svc: { targets: [127.0.0.1:9443], tls: { verify: false } }\n"),
        load("upstreams:\n  svc: { targets: [127.0.0.1:9443], tls: { verify: true } }\n"),
    );
}
