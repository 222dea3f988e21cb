//! What do the browser and partner policies cost per request? The `cors` decision
//! (a real request's origin, and a whole preflight answer), `ip_filter` against an
//! allow list of 1,000 networks, and `validate` on a payment body against the
//! shipped payment schema. Run with `cargo bench --bench policies`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{criterion_group, criterion_main, Criterion};
use fingate::auth::AuthConfig;
use fingate::context::RequestContext;
use fingate::filter::cors::{CorsConfig, CorsFilter, CorsOptions};
use fingate::filter::ip_filter::{IpFilter, IpFilterOptions};
use fingate::filter::validate::{ValidateFilter, ValidateOptions};
use fingate::filter::FilterCheck;
use http::{header, HeaderMap, HeaderValue, Method};
use std::hint::black_box;
use std::time::Duration;

fn cors(c: &mut Criterion) {
    let options: CorsOptions = serde_yaml::from_str(
        "{ origins: [https://app.example.com, 'https://*.partner.example', https://admin.example.com], headers: [Authorization, Content-Type, Idempotency-Key] }",
    )
    .unwrap();
    let filter = CorsFilter::build(&CorsConfig::check(&options).unwrap(), Some(&[Method::POST]));
    let exact = HeaderValue::from_static("https://app.example.com");
    let label = HeaderValue::from_static("https://eu.partner.example");
    let refused = HeaderValue::from_static("https://evil.test");
    let mut group = c.benchmark_group("cors");
    for (name, origin) in [
        ("exact", &exact),
        ("wildcard_label", &label),
        ("refused", &refused),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| black_box(filter.allow_origin(black_box(origin))))
        });
    }
    let mut preflight = HeaderMap::new();
    preflight.insert(header::ORIGIN, exact.clone());
    preflight.insert(
        header::ACCESS_CONTROL_REQUEST_METHOD,
        HeaderValue::from_static("POST"),
    );
    preflight.insert(
        header::ACCESS_CONTROL_REQUEST_HEADERS,
        HeaderValue::from_static("authorization, content-type, idempotency-key"),
    );
    let ctx = RequestContext::new(Method::OPTIONS, "/api/payments".into());
    assert_eq!(filter.preflight(&preflight, &ctx).unwrap().status, 204);
    group.bench_function("preflight_answer", |b| {
        b.iter(|| black_box(filter.preflight(black_box(&preflight), &ctx)))
    });
    group.finish();
}

fn ip_filter(c: &mut Criterion) {
    // 1,000 /25 networks with gaps between them (so none merge), the address
    // asked about in the last.
    let allow: Vec<String> = (0..1000)
        .map(|i| format!("10.{}.{}.0/25", i / 250, i % 250))
        .collect();
    let filter = IpFilter::new(&IpFilterOptions {
        allow,
        deny: vec!["192.0.2.1".into()],
    })
    .unwrap();
    let last = "10.3.249.7".parse().unwrap();
    let outside = "198.51.100.7".parse().unwrap();
    let mapped = "::ffff:10.3.249.7".parse().unwrap();
    assert!(filter.admits(Some(last)) && !filter.admits(Some(outside)));
    let mut group = c.benchmark_group("ip_filter_1000");
    for (name, ip) in [
        ("last_entry", last),
        ("no_match", outside),
        ("ipv4_mapped", mapped),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| black_box(filter.admits(black_box(Some(ip)))))
        });
    }
    group.finish();
}

fn validate(c: &mut Criterion) {
    let auth = AuthConfig::default();
    let check = FilterCheck {
        auth: &auth,
        base_dir: std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
    };
    let options = ValidateOptions {
        json_schema: Some("examples/schemas/payment.json".into()),
        ..Default::default()
    };
    let filter = ValidateFilter::new(&options, &check).unwrap();
    let good = br#"{"from_account":"ACC-1001","to_account":"ACC-2001","amount":2500,"currency":"EUR","reference":"rent"}"#;
    let bad = br#"{"from_account":"ACC-1001","to_account":"x","amount":-5,"currency":"euro"}"#;
    assert!(filter.judge(good).is_none());
    assert!(filter.judge(bad).is_some());
    let mut group = c.benchmark_group("validate_payment");
    group.bench_function("valid", |b| {
        b.iter(|| black_box(filter.judge(black_box(good))))
    });
    group.bench_function("three_errors", |b| {
        b.iter(|| black_box(filter.judge(black_box(bad))))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = cors, ip_filter, validate
}
criterion_main!(benches);
