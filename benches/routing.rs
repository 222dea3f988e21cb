//! `find()` on tables of 10, 1,000 and 10,000 routes: exact hit, param hit,
//! prefix hit and miss. Run with `cargo bench --bench routing`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use fingate::routing::{Lookup, PathPattern, RouteSpec, RouteTable};
use http::Method;

/// `n` routes, four per service: a literal path, a param path, a prefix and a
/// deeper param path, so every table mixes all node kinds.
fn routes(n: usize) -> Vec<(RouteSpec, usize)> {
    (0..)
        .flat_map(|i| {
            [
                PathPattern::Exact(format!("/api/svc{i}/status")),
                PathPattern::Exact(format!("/api/svc{i}/items/{{id}}")),
                PathPattern::Prefix(format!("/api/svc{i}")),
                PathPattern::Exact(format!("/api/svc{i}/items/{{id}}/history")),
            ]
        })
        .take(n)
        .enumerate()
        .map(|(id, pattern)| {
            let spec = RouteSpec {
                host: None,
                methods: None,
                pattern,
            };
            (spec, id)
        })
        .collect()
}

fn table(n: usize) -> RouteTable<usize> {
    match RouteTable::build(routes(n)) {
        Ok(table) => table,
        Err(errors) => {
            eprintln!("bench routes are invalid: {errors:?}");
            std::process::exit(1)
        }
    }
}

fn bench_find(c: &mut Criterion) {
    let mut group = c.benchmark_group("find");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    for n in [10, 1_000, 10_000] {
        let table = table(n);
        // A service in the middle of the table, with all four routes present.
        let svc = n / 8;
        let cases = [
            ("exact_hit", format!("/api/svc{svc}/status"), true),
            ("param_hit", format!("/api/svc{svc}/items/12345"), true),
            ("prefix_hit", format!("/api/svc{svc}/other/thing"), true),
            ("miss", "/api/unknown/items/1".to_string(), false),
        ];
        for (name, path, hit) in cases {
            let found = matches!(table.find(None, &Method::GET, &path), Lookup::Found { .. });
            assert_eq!(found, hit, "{name} on {n} routes: {path}");
            group.bench_with_input(BenchmarkId::new(name, n), &path, |b, path| {
                b.iter(|| {
                    let lookup = table.find(black_box(None), &Method::GET, black_box(path));
                    black_box(matches!(lookup, Lookup::Found { .. }))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_find);
criterion_main!(benches);
