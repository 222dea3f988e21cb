//! Unit tests of the `cache` filter: the phases driven by hand, no sockets.

#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;
use crate::filter::test_resp::Resp;
use http::HeaderMap;

fn filter(yaml: &str) -> CacheFilter {
    let options: CacheOptions = serde_yaml::from_str(yaml).unwrap();
    let deps = FilterDeps {
        cache: Arc::new(Cache::new(1 << 20)),
        route: Some("unit-cache".into()),
        route_fingerprint: 1,
        ..FilterDeps::standalone()
    };
    CacheFilter::new(&options, &deps).unwrap()
}

fn ctx(method: Method, path: &str, consumer: Option<&str>) -> RequestContext {
    let mut c = RequestContext::new(method, path.into());
    c.host = Some("api.test".into());
    c.consumer = consumer.map(str::to_owned);
    c
}

/// One exchange; the upstream answers `headers` + `body` unless the cache does.
/// Returns (X-Cache, Age, body seen by the client).
async fn exchange(
    f: &CacheFilter,
    c: &mut RequestContext,
    req: &mut HeaderMap,
    headers: &[(&'static str, &'static str)],
    body: &'static str,
) -> (String, Option<String>, Bytes) {
    match f.request(req, c).await.unwrap() {
        Flow::Reject(e) => panic!("the cache refused: {e}"),
        Flow::Respond(local) => {
            let mut resp = Resp {
                status: local.status,
                headers: local.headers.into_iter().collect(),
            };
            f.response(&mut resp, c);
            f.logging(c, 200);
            let h = |n| {
                resp.headers
                    .get(n)
                    .map(|v: &HeaderValue| v.to_str().unwrap().to_owned())
            };
            (h("x-cache").unwrap(), h("age"), local.body)
        }
        Flow::Continue => {
            let mut resp = Resp {
                status: StatusCode::OK,
                headers: headers
                    .iter()
                    .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
                    .collect(),
            };
            f.response(&mut resp, c);
            f.response_body(&Some(Bytes::from_static(body.as_bytes())), false, c);
            f.response_body(&None, true, c);
            f.logging(c, 200);
            let x = resp
                .headers
                .get("x-cache")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            (x, None, Bytes::from_static(body.as_bytes()))
        }
    }
}

async fn get(
    f: &CacheFilter,
    path: &str,
    consumer: Option<&str>,
    body: &'static str,
) -> (String, Bytes) {
    let mut c = ctx(Method::GET, path, consumer);
    let (x, _, b) = exchange(f, &mut c, &mut HeaderMap::new(), &[], body).await;
    (x, b)
}

#[tokio::test]
async fn miss_then_hit_with_the_stored_body_and_age() {
    let f = filter("ttl: 30s");
    let mut c = ctx(Method::GET, "/fx", None);
    let first = exchange(
        &f,
        &mut c,
        &mut HeaderMap::new(),
        &[("content-type", "application/json")],
        "one",
    )
    .await;
    assert_eq!((first.0.as_str(), first.2.as_ref()), ("MISS", &b"one"[..]));
    assert_eq!(c.cache, Some("miss"));
    let mut c = ctx(Method::GET, "/fx", None);
    let second = exchange(&f, &mut c, &mut HeaderMap::new(), &[], "two").await;
    assert_eq!(second.0, "HIT");
    assert_eq!(second.1.as_deref(), Some("0"));
    assert_eq!(second.2, "one");
    assert_eq!(c.cache, Some("hit"));
    // HEAD is answered from the GET entry.
    let mut c = ctx(Method::HEAD, "/fx", None);
    assert_eq!(
        exchange(&f, &mut c, &mut HeaderMap::new(), &[], "x")
            .await
            .0,
        "HIT"
    );
}

#[tokio::test]
async fn authenticated_entries_are_per_consumer() {
    let f = filter("ttl: 30s");
    assert_eq!(get(&f, "/st", Some("mobile-app"), "mine").await.0, "MISS");
    let other = get(&f, "/st", Some("web-app"), "theirs").await;
    assert_eq!(other, ("MISS".into(), Bytes::from_static(b"theirs")));
    assert_eq!(get(&f, "/st", None, "anon").await.0, "MISS");
    assert_eq!(
        get(&f, "/st", Some("mobile-app"), "x").await,
        ("HIT".into(), Bytes::from_static(b"mine"))
    );
    assert_eq!(
        get(&f, "/st", Some("web-app"), "x").await,
        ("HIT".into(), Bytes::from_static(b"theirs"))
    );
}

#[tokio::test]
async fn private_is_stored_only_per_consumer() {
    let f = filter("ttl: 30s");
    let private = &[("cache-control", "private")];
    let mut c = ctx(Method::GET, "/p", None);
    exchange(&f, &mut c, &mut HeaderMap::new(), private, "a").await;
    assert_eq!(get(&f, "/p", None, "b").await.0, "MISS");
    let mut c = ctx(Method::GET, "/p", Some("mobile-app"));
    exchange(&f, &mut c, &mut HeaderMap::new(), private, "c").await;
    assert_eq!(
        get(&f, "/p", Some("mobile-app"), "d").await,
        ("HIT".into(), Bytes::from_static(b"c"))
    );
}

#[tokio::test]
async fn other_methods_bypass_and_are_not_stored() {
    let f = filter("ttl: 30s");
    let mut c = ctx(Method::POST, "/x", None);
    let (x, _, _) = exchange(&f, &mut c, &mut HeaderMap::new(), &[], "posted").await;
    assert_eq!((x.as_str(), c.cache), ("BYPASS", Some("bypass")));
    assert_eq!(get(&f, "/x", None, "got").await.0, "MISS");
}

#[tokio::test]
async fn a_get_or_head_with_a_body_bypasses() {
    let f = filter("ttl: 30s");
    assert_eq!(get(&f, "/b", None, "plain").await.0, "MISS");
    for method in [Method::GET, Method::HEAD] {
        let mut c = ctx(method.clone(), "/b", None);
        c.has_body = true;
        let (x, _, b) = exchange(&f, &mut c, &mut HeaderMap::new(), &[], "by body").await;
        assert_eq!(
            (x.as_str(), c.cache),
            ("BYPASS", Some("bypass")),
            "{method}"
        );
        assert_eq!(b, "by body", "{method}: not answered from the entry");
    }
    // Nor was the answer to the body stored.
    assert_eq!(get(&f, "/b", None, "-").await.1, "plain");
}

#[tokio::test]
async fn client_no_cache_refreshes_the_entry() {
    let f = filter("ttl: 30s");
    get(&f, "/r", None, "old").await;
    let mut req: HeaderMap = [(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))]
        .into_iter()
        .collect();
    let mut c = ctx(Method::GET, "/r", None);
    assert_eq!(exchange(&f, &mut c, &mut req, &[], "new").await.0, "MISS");
    assert_eq!(get(&f, "/r", None, "x").await.1, "new");
}

#[tokio::test]
async fn bodies_over_max_body_pass_through() {
    let f = filter("{ ttl: 30s, max_body: 4B }");
    assert_eq!(get(&f, "/big", None, "12345").await.0, "MISS");
    assert_eq!(get(&f, "/big", None, "12345").await.0, "MISS");
    assert_eq!(get(&f, "/small", None, "1234").await.0, "MISS");
    assert_eq!(get(&f, "/small", None, "x").await.0, "HIT");
    assert!(f.cache.locks().is_empty());
}

#[tokio::test]
async fn vary_option_splits_entries() {
    let f = filter("{ ttl: 30s, vary: [X-Tenant] }");
    let tenant = |v: &'static str| -> HeaderMap {
        [(
            HeaderName::from_static("x-tenant"),
            HeaderValue::from_static(v),
        )]
        .into_iter()
        .collect()
    };
    for (t, body, expect) in [
        ("a", "A", "MISS"),
        ("b", "B", "MISS"),
        ("a", "-", "HIT"),
        ("b", "-", "HIT"),
    ] {
        let mut c = ctx(Method::GET, "/v", None);
        let (x, _, b) = exchange(&f, &mut c, &mut tenant(t), &[], body).await;
        assert_eq!(x, expect, "tenant {t}");
        if expect == "HIT" {
            assert_eq!(b, t.to_uppercase());
        }
    }
}

#[tokio::test]
async fn every_line_of_a_varying_header_counts() {
    let lines = |values: &[&'static str]| -> HeaderMap {
        let mut m = HeaderMap::new();
        for v in values {
            m.append("x-tenant", HeaderValue::from_static(v));
        }
        m
    };
    // The route's `vary` option, and a response's own `Vary`.
    for (options, response_vary) in [
        ("{ ttl: 30s, vary: [X-Tenant] }", None),
        ("ttl: 30s", Some("X-Tenant")),
    ] {
        let f = filter(options);
        let vary: Vec<(&'static str, &'static str)> =
            response_vary.map(|v| ("vary", v)).into_iter().collect();
        let go = |values: &[&'static str], body: &'static str| {
            let mut req = lines(values);
            let vary = vary.clone();
            let f = &f;
            async move {
                let mut c = ctx(Method::GET, "/v", None);
                let (x, _, b) = exchange(f, &mut c, &mut req, &vary, body).await;
                (x, b)
            }
        };
        let (x, _) = go(&["a", "evil"], "for a+evil").await;
        assert_eq!(x, "MISS");
        let (x, b) = go(&["a"], "for a").await;
        assert_eq!((x.as_str(), &b[..]), ("MISS", &b"for a"[..]), "{options}");
        assert_eq!(go(&["a", "evil"], "-").await.1, "for a+evil", "{options}");
        assert_eq!(go(&["a"], "-").await.1, "for a", "{options}");
        assert_eq!(go(&["evil", "a"], "other order").await.0, "MISS");
    }
}

#[tokio::test]
async fn concurrent_misses_wait_for_the_leader() {
    let f = Arc::new(filter("ttl: 30s"));
    let mut leader = ctx(Method::GET, "/s", None);
    assert!(matches!(
        f.request(&mut HeaderMap::new(), &mut leader).await.unwrap(),
        Flow::Continue
    ));
    let follower = {
        let f = f.clone();
        tokio::spawn(async move {
            let mut c = ctx(Method::GET, "/s", None);
            let flow = f.request(&mut HeaderMap::new(), &mut c).await.unwrap();
            (matches!(flow, Flow::Respond(_)), c.cache)
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !follower.is_finished(),
        "the follower must wait for the fill"
    );
    let mut resp = Resp {
        status: StatusCode::OK,
        headers: HeaderMap::new(),
    };
    f.response(&mut resp, &mut leader);
    f.response_body(&Some(Bytes::from_static(b"filled")), true, &mut leader);
    assert_eq!(follower.await.unwrap(), (true, Some("hit")));
}

#[tokio::test]
async fn an_abandoned_fill_releases_the_waiters() {
    let f = Arc::new(filter("ttl: 30s"));
    let mut leader = ctx(Method::GET, "/s", None);
    f.request(&mut HeaderMap::new(), &mut leader).await.unwrap();
    let follower = {
        let f = f.clone();
        tokio::spawn(async move {
            let mut c = ctx(Method::GET, "/s", None);
            f.request(&mut HeaderMap::new(), &mut c).await.unwrap();
            c.cache
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The upstream failed: only the logging phase runs.
    f.logging(&leader, 502);
    let waited = tokio::time::timeout(Duration::from_secs(1), follower).await;
    assert_eq!(waited.unwrap().unwrap(), Some("miss"));
}

#[tokio::test]
async fn waiting_is_bounded_by_lock_timeout() {
    let f = Arc::new(filter("{ ttl: 30s, lock_timeout: 100ms }"));
    let mut leader = ctx(Method::GET, "/s", None);
    f.request(&mut HeaderMap::new(), &mut leader).await.unwrap();
    let started = Instant::now();
    let mut c = ctx(Method::GET, "/s", None);
    f.request(&mut HeaderMap::new(), &mut c).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(c.cache, Some("miss"));
}

#[test]
fn reports_bad_options() {
    let options: CacheOptions = serde_yaml::from_str(
        "{ ttl: 0s, statuses: [200, 206, 99], vary: ['bad name'], lock_timeout: 2m }",
    )
    .unwrap();
    let errs = CacheFilter::new(&options, &FilterDeps::standalone()).unwrap_err();
    let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "ttl",
            "statuses[1]",
            "statuses[2]",
            "vary[0]",
            "lock_timeout"
        ]
    );
    assert!(serde_yaml::from_str::<CacheOptions>("{ ttl: 30s, colour: red }").is_err());
}

#[test]
fn cache_must_run_after_jwt() {
    assert_eq!(cache_before_auth(&["request_id", "cache", "jwt"]), Some(1));
    assert_eq!(cache_before_auth(&["jwt", "rate_limit", "cache"]), None);
    assert_eq!(cache_before_auth(&["cache", "headers"]), None);
}

fn validate(extra: &str) -> Result<crate::config::Config, String> {
    let text = format!(
        "listen: [{{ address: 127.0.0.1:18080 }}]\nupstreams:\n  u: {{ targets: [127.0.0.1:9101] }}\n{extra}"
    );
    crate::config::parse(
        &text,
        std::path::Path::new("g.yaml"),
        &|_| None,
        crate::config::Secrets::Production,
    )
    .map_err(|e| e.to_string())
}

#[test]
fn config_sizes_and_options_are_validated_with_positions() {
    let route = "routes:\n  - { name: a, match: { prefix: /a }, upstream: u, filters: [ { cache: { ttl: 30s } } ] }\n";
    let ok = validate(route).unwrap();
    assert_eq!(ok.cache.max_size, 256 * 1024 * 1024);
    assert_eq!(
        validate(&format!("cache: {{ max_size: 8MiB }}\n{route}"))
            .unwrap()
            .cache
            .max_size,
        8 << 20
    );
    let small = validate(&format!("cache: {{ max_size: 1KiB }}\n{route}")).unwrap_err();
    assert!(
        small.starts_with("g.yaml:4:10: cache.max_size: 1024 bytes is too small"),
        "{small}"
    );
    let unknown = validate(&format!("cache: {{ size: 1MiB }}\n{route}")).unwrap_err();
    assert!(
        unknown.contains("g.yaml:4:10: cache.size: unknown field `size`"),
        "{unknown}"
    );
    let bad = validate("routes:\n  - { name: a, match: { prefix: /a }, upstream: u, filters: [ { cache: { ttl: 0s } } ] }\n").unwrap_err();
    assert!(
        bad.contains("routes[0].filters[0].cache.ttl: must be greater than 0"),
        "{bad}"
    );
    let missing = validate("routes:\n  - { name: a, match: { prefix: /a }, upstream: u, filters: [ { cache: {} } ] }\n").unwrap_err();
    assert!(missing.contains("missing field `ttl`"), "{missing}");
}
