//! What does verifying a bearer token cost on the request path? For HS256, RS256
//! (2048) and ES256 tokens: `JwtFilter::verify_token` (header, key lookup,
//! signature, claims: a token's first request) and `JwtFilter::verify` with the
//! token already verified (bearer parsing and the verified-token cache: its next
//! requests). Run with `cargo bench --bench jwt` (needs the `openssl` CLI
//! to make the RSA and EC keys).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{criterion_group, criterion_main, Criterion};
use fingate::auth::keys::{self, Accept, Material, Policy};
use fingate::auth::token_endpoint::mint;
use fingate::auth::AuthConfig;
use fingate::filter::jwt::{JwtFilter, JwtOptions};
use fingate::filter::FilterDeps;
use http::{header, HeaderMap, HeaderValue};
use jsonwebtoken::Algorithm;
use std::hint::black_box;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let ok = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(ok.success(), "openssl {args:?}");
}

/// A filter accepting one signing key, and an `Authorization` header with its token.
fn setup(alg: Algorithm, material: Material<'_>) -> (JwtFilter, HeaderMap) {
    let policy = Policy {
        issuer: "fingate",
        audience: "api",
        leeway: Duration::from_secs(30),
    };
    let key = keys::build(
        "k",
        alg,
        material,
        true,
        Accept::Everywhere,
        "fingate",
        &policy,
    )
    .unwrap();
    let (token, _) = mint(
        &key,
        "fingate",
        "api",
        "mobile-app",
        "accounts:read payments:write",
        Duration::from_secs(3600),
    )
    .unwrap();
    let auth = AuthConfig {
        keys: Arc::new(keys::KeySet {
            keys: vec![Arc::new(key)],
        }),
        ..AuthConfig::default()
    };
    let deps = FilterDeps {
        auth: Arc::new(auth),
        ..FilterDeps::standalone()
    };
    let options = JwtOptions {
        scopes: vec!["accounts:read".into()],
        keys: None,
    };
    let filter = JwtFilter::new(&options, &deps).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    (filter, headers)
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    openssl(
        dir.path(),
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "rsa.pem",
        ],
    );
    openssl(
        dir.path(),
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "ec.pem",
        ],
    );
    let (rsa, ec) = (dir.path().join("rsa.pem"), dir.path().join("ec.pem"));
    let cases = [
        (
            "HS256",
            setup(
                Algorithm::HS256,
                Material::Secret("bench-secret-0123456789abcdef0123456789"),
            ),
        ),
        ("RS256", setup(Algorithm::RS256, Material::PrivatePem(&rsa))),
        ("ES256", setup(Algorithm::ES256, Material::PrivatePem(&ec))),
    ];
    // A token's first request: signature and claims checked.
    let mut group = c.benchmark_group("jwt_verify");
    for (name, (filter, headers)) in &cases {
        let token = fingate::filter::jwt::bearer(headers).unwrap();
        assert!(
            filter.verify_token(token).is_ok(),
            "{name} token must verify"
        );
        group.bench_function(*name, |b| {
            b.iter(|| black_box(filter.verify_token(black_box(token)).is_ok()))
        });
    }
    group.finish();
    // Its next requests: the same token, found in the filter's verified-token cache.
    let mut group = c.benchmark_group("jwt_verify_cached");
    for (name, (filter, headers)) in &cases {
        assert!(filter.verify(headers).is_ok(), "{name} token must verify");
        group.bench_function(*name, |b| {
            b.iter(|| black_box(filter.verify(black_box(headers)).is_ok()))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
