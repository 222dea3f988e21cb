//! Differential test: random tables checked against a brute-force reading of
//! the spec that scans every route, for every short path over a small
//! alphabet. Also checks that `find` returns the first matching route of
//! `iter_resolved`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use http::Method;

use super::*;

struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as usize % n
    }
}

const METHODS: [Method; 4] = [Method::GET, Method::HEAD, Method::POST, Method::PUT];

fn random_spec(rng: &mut Lcg) -> RouteSpec {
    let is_prefix = rng.below(10) < 3;
    let mut path = String::new();
    for i in 0..rng.below(4) {
        match rng.below(3) {
            0 if !is_prefix => path.push_str(&format!("/{{p{i}}}")),
            n => path.push_str(["/a", "/b"][n % 2]),
        }
    }
    if path.is_empty() || rng.below(4) == 0 {
        path.push('/');
    }
    let host = match rng.below(10) {
        0..=5 => None,
        6..=8 => Some("x.com"),
        _ => Some("X.COM"),
    };
    let methods = (rng.below(3) != 0).then(|| {
        let mut list: Vec<Method> = METHODS
            .iter()
            .filter(|_| rng.below(3) == 0)
            .cloned()
            .collect();
        if list.is_empty() {
            list.push(METHODS[rng.below(4)].clone());
        }
        list
    });
    RouteSpec {
        host: host.map(String::from),
        methods,
        pattern: if is_prefix {
            PathPattern::Prefix(path)
        } else {
            PathPattern::Exact(path)
        },
    }
}

fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// How strongly `spec` matches, `None` if it does not; larger wins.
/// (host-specific, exact, literal flags left to right, prefix length,
/// method listed explicitly rather than `HEAD` via `GET`)
type Rank = (bool, bool, Vec<bool>, usize, bool);

fn rank(spec: &RouteSpec, host: Option<&str>, method: &Method, path: &str) -> Option<Rank> {
    let host_specific = spec.host.is_some();
    if let Some(h) = &spec.host {
        let req = host?.split(':').next()?;
        if !h.eq_ignore_ascii_case(req) {
            return None;
        }
    }
    let explicit = match &spec.methods {
        None => true,
        Some(list) if list.contains(method) => true,
        Some(list) if *method == Method::HEAD && list.contains(&Method::GET) => false,
        Some(_) => return None,
    };
    let req = segments(path);
    match &spec.pattern {
        PathPattern::Exact(p) => {
            let pat = segments(p);
            let fits = pat.len() == req.len()
                && pat
                    .iter()
                    .zip(&req)
                    .all(|(p, r)| p.starts_with('{') || p == r);
            let flags = pat.iter().map(|p| !p.starts_with('{')).collect();
            fits.then_some((host_specific, true, flags, 0, explicit))
        }
        PathPattern::Prefix(p) => {
            let pat = segments(p);
            let fits = req.len() >= pat.len() && pat.iter().zip(&req).all(|(p, r)| p == r);
            fits.then_some((host_specific, false, Vec::new(), pat.len(), explicit))
        }
    }
}

fn reference(specs: &[RouteSpec], host: Option<&str>, method: &Method, path: &str) -> String {
    let best = (0..specs.len())
        .filter_map(|i| Some((rank(&specs[i], host, method, path)?, i)))
        .max_by(|a, b| a.0.cmp(&b.0));
    if let Some((_, i)) = best {
        return i.to_string();
    }
    // 405: union of the methods of routes matching host and path.
    let mut allow = BTreeSet::new();
    for spec in specs {
        for m in spec.methods.iter().flatten() {
            if rank(spec, host, m, path).is_some() {
                allow.insert(m.as_str());
                if *m == Method::GET {
                    allow.insert("HEAD");
                }
            }
        }
    }
    if allow.is_empty() {
        "404".into()
    } else {
        format!("405 {}", allow.into_iter().collect::<Vec<_>>().join(","))
    }
}

fn actual(table: &RouteTable<usize>, host: Option<&str>, method: &Method, path: &str) -> String {
    match table.find(host, method, path) {
        Lookup::Found { route, .. } => route.to_string(),
        Lookup::MethodNotAllowed { allow } => {
            let names: Vec<&str> = allow.iter().map(Method::as_str).collect();
            format!("405 {}", names.join(","))
        }
        Lookup::NotFound => "404".into(),
    }
}

/// Random specs with conflicting ones removed (as reported by `build`).
fn random_table(rng: &mut Lcg, n: usize) -> Vec<RouteSpec> {
    let mut specs: Vec<RouteSpec> = (0..n).map(|_| random_spec(rng)).collect();
    loop {
        let with_ids = specs
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, s)| (s, i))
            .collect();
        let Err(errors) = RouteTable::build(with_ids) else {
            return specs;
        };
        let bad: BTreeSet<usize> = errors.iter().map(|e| e.index).collect();
        assert!(
            errors.iter().all(|e| e.message.contains("conflicts")),
            "{errors:?}"
        );
        specs = specs
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !bad.contains(i))
            .map(|(_, s)| s)
            .collect();
    }
}

#[test]
fn matches_brute_force_reference() {
    let mut paths = vec!["/".to_string()];
    for depth in 1..=4 {
        let mut next = Vec::new();
        for p in paths.iter().filter(|p| segments(p).len() == depth - 1) {
            for seg in ["a", "b", "c"] {
                next.push(format!("{}/{seg}", p.trim_end_matches('/')));
            }
        }
        paths.extend(next);
    }
    paths.push("/a/b/".into());
    let hosts = [None, Some("x.com"), Some("X.Com:8080"), Some("y.com")];
    let mut rng = Lcg(7);
    for round in 0..150 {
        let specs = random_table(&mut rng, 5 + round % 30);
        let table = RouteTable::build(
            specs
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, s)| (s, i))
                .collect(),
        )
        .unwrap();
        let resolved: Vec<usize> = table.iter_resolved().copied().collect();
        for path in &paths {
            for host in hosts {
                for method in &METHODS {
                    let got = actual(&table, host, method, path);
                    let want = reference(&specs, host, method, path);
                    assert_eq!(
                        got, want,
                        "{method} {path} host {host:?}\nroutes: {specs:#?}"
                    );
                    let first = resolved
                        .iter()
                        .find(|&&i| rank(&specs[i], host, method, path).is_some());
                    if let Some(first) = first {
                        assert_eq!(got, first.to_string(), "iter_resolved order for {path}");
                    }
                }
            }
        }
    }
}
