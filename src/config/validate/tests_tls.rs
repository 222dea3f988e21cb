//! Validation cases for TLS listeners, client certificates and the `mtls` filter.
//! The certificates are made for the run in the `${KEYS}` folder (see
//! [`write_tls_files`]).

use super::tests::{check, Case};
use std::path::Path;
use time::{Duration, OffsetDateTime};

/// `ca.pem`; `api.pem`/`api.key` (for api.test, valid now); `other.key` (belongs to
/// no certificate); `expired.pem`/`expired.key`.
pub(super) fn write_tls_files(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let now = OffsetDateTime::now_utc();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let leaf = |stem: &str, from: OffsetDateTime, to: OffsetDateTime| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["api.test".to_owned()]).unwrap();
        p.not_before = from;
        p.not_after = to;
        let cert = p.signed_by(&key, &ca, &ca_key).unwrap();
        std::fs::write(dir.join(format!("{stem}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem()).unwrap();
    };
    leaf("api", now - Duration::days(1), now + Duration::days(30));
    leaf(
        "expired",
        OffsetDateTime::from_unix_timestamp(1_600_000_000).unwrap(),
        OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
    );
    let other = KeyPair::generate().unwrap();
    std::fs::write(dir.join("other.key"), other.serialize_pem()).unwrap();
}

const TLS: &[Case] = &[
    ("tls listener valid", "listen:\n  - address: 127.0.0.1:8443\n    tls:\n      certs:\n        - { cert: '${KEYS}/api.pem', key: '${KEYS}/api.key' }\n      min_version: '1.3'\n      client_auth: { ca: '${KEYS}/ca.pem', required: true }\n  - { address: 127.0.0.1:8080, h2c: true }\n", &[]),
    ("tls shorthand valid", "listen: [{ address: 127.0.0.1:8443, http2: false, tls: { cert: '${KEYS}/api.pem', key: '${KEYS}/api.key', min_version: 1.2 } }]\n", &[]),
    ("tls unreadable certificate", "listen:\n  - address: 127.0.0.1:8443\n    tls:\n      certs:\n        - { cert: '${KEYS}/api.pem', key: '${KEYS}/api.key' }\n        - { cert: '${KEYS}/missing.pem', key: '${KEYS}/api.key' }\n", &[
        "gateway.yaml:6:11: listen[0].tls.certs[1]: cannot read $KEYS/missing.pem: No such file or directory (os error 2)",
    ]),
    ("tls key of another certificate", "listen: [{ address: 127.0.0.1:8443, tls: { cert: '${KEYS}/api.pem', key: '${KEYS}/other.key' } }]\n", &[
        "gateway.yaml:1:44: listen[0].tls.cert: $KEYS/other.key is not the private key of the certificate in $KEYS/api.pem",
    ]),
    ("tls expired certificate", "listen: [{ address: 127.0.0.1:8443, tls: { certs: [{ cert: '${KEYS}/expired.pem', key: '${KEYS}/expired.key' }] } }]\n", &[
        "gateway.yaml:1:52: listen[0].tls.certs[0]: the certificate in $KEYS/expired.pem (api.test) expired at Nov 14 22:13:20 2023 +00:00",
    ]),
    ("tls not pem", "listen: [{ address: 127.0.0.1:8443, tls: { cert: '${KEYS}/garbage.pem', key: '${KEYS}/api.key' } }]\n", &[
        "gateway.yaml:1:44: listen[0].tls.cert: $KEYS/garbage.pem holds no certificate (expected a PEM `BEGIN CERTIFICATE` block)",
    ]),
    ("tls settings wrong", "listen:\n  - address: 127.0.0.1:8443\n    h2c: true\n    tls: { certs: [], cert: a.pem, min_version: '1.1' }\n  - { address: 127.0.0.1:8080, http2: true }\n", &[
        "gateway.yaml:3:5: listen[0].h2c: h2c is cleartext HTTP/2 for plain listeners; a TLS listener offers HTTP/2 by ALPN (`http2`, on by default)",
        "gateway.yaml:4:5: listen[0].tls: give either `certs:` (a list of {cert, key}) or the `cert:`/`key:` shorthand, not both",
        "gateway.yaml:4:36: listen[0].tls.min_version: expected \"1.2\" or \"1.3\" (TLS below 1.2 is never offered)",
        "gateway.yaml:5:32: listen[1].http2: http2 is negotiated by ALPN on TLS listeners; for cleartext HTTP/2 on this listener use `h2c: true`",
    ]),
    ("tls client ca unreadable", "listen: [{ address: 127.0.0.1:8443, tls: { cert: '${KEYS}/api.pem', key: '${KEYS}/api.key', client_auth: { ca: '${KEYS}/garbage.pem' } } }]\n", &[
        "gateway.yaml:1:108: listen[0].tls.client_auth.ca: $KEYS/garbage.pem holds no certificate (expected a PEM `BEGIN CERTIFICATE` block)",
    ]),
    ("tls no certificate", "listen: [{ address: 127.0.0.1:8443, tls: { min_version: '1.3' } }]\n", &[
        "gateway.yaml:1:37: listen[0].tls: a TLS listener needs a certificate: `certs: [{ cert: FILE, key: FILE }]`",
    ]),
];

const MTLS: &[Case] = &[
    ("mtls valid", "listen: [{ address: 127.0.0.1:8443, tls: { cert: '${KEYS}/api.pem', key: '${KEYS}/api.key', client_auth: { ca: '${KEYS}/ca.pem' } } }]\nconsumers:\n  - { username: partner-bank, client_cert: { subject: 'CN=partner-bank, O=Bank' } }\n  - { username: sync, client_cert: { san: sync.partner.example }, password_hash: '${FG_HASH}' }\nroutes:\n  - { name: r, match: { prefix: /r }, upstream: svc, filters: [mtls: {}] }\n", &[]),
    ("mtls without a listener asking or a consumer", "routes:\n  - { name: r, match: { prefix: /r }, upstream: svc, filters: [mtls: {}] }\n", &[
        "gateway.yaml:2:64: routes[0].filters[0].mtls: no listener asks for client certificates: add `tls.client_auth: { ca: FILE }` to a TLS listener",
        "gateway.yaml:2:64: routes[0].filters[0].mtls: no consumer has a `client_cert`: add `client_cert: { subject: \"CN=...\" }` (or `san:`) to the consumers this route serves",
    ]),
    ("mtls options and client certs wrong", "consumers:\n  - { username: a, client_cert: { subject: 'partner' } }\n  - { username: b, client_cert: { subject: 'CN=x', san: x.example } }\n  - { username: c, client_cert: { san: x.example } }\n  - { username: d, client_cert: { san: x.example } }\nfilters: [mtls: { strict: true }]\n", &[
        "gateway.yaml:2:35: consumers[0].client_cert.subject: \"partner\" is not ATTRIBUTE=value (e.g. \"CN=partner-bank, O=Bank\")",
        "gateway.yaml:3:20: consumers[1].client_cert: give exactly one of `subject` (e.g. \"CN=partner-bank\") or `san` (e.g. partner.example)",
        "gateway.yaml:5:20: consumers[3].client_cert: the same certificate already identifies \"c\"",
        "gateway.yaml:6:19: filters[0].mtls.strict: unknown field `strict`, there are no fields",
    ]),
];

#[test]
fn tls_listeners() {
    check(TLS);
}

#[test]
fn mtls() {
    check(MTLS);
}
