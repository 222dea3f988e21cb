//! What does verifying a bearer token cost on the request path? For HS256, RS256
//! (2048) and ES256 tokens: `JwtFilter::verify_token` (header, key lookup,
//! signature, claims: a token's first request) and `JwtFilter::verify` with the
//! token already verified (the verified-token cache and the revocation check: its
//! next requests); the same ES256 key configured locally vs
//! fetched from a JWKS (`jwks_url`, served here on loopback); and the revocation
//! check alone, empty and with 1,000 revoked tokens and 1,000 revoked consumers.
//! Run with `cargo bench --bench jwt` (needs the `openssl` CLI to make the keys).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{criterion_group, criterion_main, Criterion};
use fingate::auth::keys::{self, Accept, Material, Policy};
use fingate::auth::remote::{Lookup, RemoteKeySets, RemoteSource};
use fingate::auth::token_endpoint::mint;
use fingate::auth::AuthConfig;
use fingate::filter::jwt::bearer_unchecked;
use fingate::filter::jwt::{JwtFilter, JwtOptions};
use fingate::filter::FilterDeps;
use fingate::store::{Revocation, RevocationSet};
use futures_util::FutureExt as _;
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
    setup_with(alg, material, false)
}

/// Serves `body` as `GET` answers on a loopback port for the life of the process.
fn serve(body: String) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = write!(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: max-age=3600\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    addr
}

/// `remote`: the key is not configured but fetched from a JWKS served on loopback.
fn setup_with(alg: Algorithm, material: Material<'_>, remote: bool) -> (JwtFilter, HeaderMap) {
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
    let issuer = if remote {
        "https://idp.example"
    } else {
        "fingate"
    };
    let (token, _) = mint(
        &key,
        issuer,
        "api",
        "mobile-app",
        "accounts:read payments:write",
        Duration::from_secs(3600),
    )
    .unwrap();
    let mut set = keys::KeySet::default();
    if remote {
        let jwks = serde_json::json!({ "keys": [key.jwk.clone().unwrap()] }).to_string();
        let addr = serve(jwks);
        set.remote.push(Arc::new(RemoteSource {
            id: "idp".into(),
            url: format!("http://{addr}/jwks"),
            issuer: issuer.into(),
            audience: "api".into(),
            algorithm: None,
            accept: Accept::Everywhere,
            refresh: Duration::from_secs(600),
            max_stale: Duration::from_secs(86400),
            leeway: Duration::from_secs(30),
        }));
    } else {
        set.keys.push(Arc::new(key));
    }
    let auth = AuthConfig {
        keys: Arc::new(set),
        ..AuthConfig::default()
    };
    let remote_keys = Arc::new(RemoteKeySets::build(&auth.keys.remote, None));
    if let Some(fetched) = remote_keys.get("idp") {
        let started = std::time::Instant::now();
        while !matches!(fetched.find(Some("k"), alg), Lookup::Found(_)) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "JWKS not fetched"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let deps = FilterDeps {
        auth: Arc::new(auth),
        remote_keys,
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
    // The key is found without awaiting: one poll completes the check. A token's
    // first request (signature and claims checked) ...
    let verify = |filter: &JwtFilter, headers: &HeaderMap| -> bool {
        let token = bearer_unchecked(headers).unwrap();
        matches!(filter.verify_token(token).now_or_never(), Some(Ok(_)))
    };
    let mut group = c.benchmark_group("jwt_verify");
    for (name, (filter, headers)) in &cases {
        assert!(verify(filter, headers), "{name} token must verify");
        group.bench_function(*name, |b| {
            b.iter(|| black_box(verify(filter, black_box(headers))))
        });
    }
    group.finish();
    // ... and its next ones: found in the filter's verified-token cache, then the
    // revocation check.
    let cached = |filter: &JwtFilter, headers: &HeaderMap| -> bool {
        let token = bearer_unchecked(headers).unwrap();
        matches!(filter.verify(token).now_or_never(), Some(Ok(_)))
    };
    let mut group = c.benchmark_group("jwt_verify_cached");
    for (name, (filter, headers)) in &cases {
        assert!(cached(filter, headers), "{name} token must verify");
        group.bench_function(*name, |b| {
            b.iter(|| black_box(cached(filter, black_box(headers))))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("jwt_keys");
    for (name, remote) in [("ES256 local key", false), ("ES256 remote key set", true)] {
        let (filter, headers) = setup_with(Algorithm::ES256, Material::PrivatePem(&ec), remote);
        assert!(verify(&filter, &headers), "{name} token must verify");
        group.bench_function(name, |b| {
            b.iter(|| black_box(verify(&filter, black_box(&headers))))
        });
    }
    group.finish();

    revocation(c);
}

/// The per-request revocation check alone.
fn revocation(c: &mut Criterion) {
    let now = fingate::auth::claims::now();
    let empty = RevocationSet::default();
    let full = RevocationSet::default();
    let mut all = Vec::new();
    for i in 0..1000 {
        all.push(Revocation::Token {
            jti: uuid::Uuid::new_v4().to_string(),
            until: now + 3600,
        });
        all.push(Revocation::Consumer {
            consumer: format!("consumer-{i}"),
            at: now,
            until: now + 3600,
        });
    }
    full.replace(all);
    let revoked_jti = uuid::Uuid::new_v4().to_string();
    full.apply(Revocation::Token {
        jti: revoked_jti.clone(),
        until: now + 3600,
    });
    let jti = uuid::Uuid::new_v4().to_string();
    let mut group = c.benchmark_group("revocation_check");
    group.bench_function("nothing revoked", |b| {
        b.iter(|| black_box(empty.is_revoked(Some(black_box(&jti)), "mobile-app", Some(now), now)))
    });
    group.bench_function("2,000 revoked, token passes", |b| {
        b.iter(|| black_box(full.is_revoked(Some(black_box(&jti)), "mobile-app", Some(now), now)))
    });
    group.bench_function("2,000 revoked, token revoked", |b| {
        b.iter(|| {
            black_box(full.is_revoked(Some(black_box(&revoked_jti)), "mobile-app", Some(now), now))
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
