//! The `cache` filter end to end: the real gateway in front of services-mock.
//! Upstream request counts come from the service's own `/_mock/stats`.

use crate::harness::*;
use std::collections::BTreeSet;
use std::time::Duration;

/// fx (3s ttl, the service says max-age=30), diag (shaped answers; `vary: [X-Tenant]`),
/// small (max_body 4KiB), a global request_id and header filters around the cache.
fn config(upstream: std::net::SocketAddr, max_size: &str, diag_ttl: &str) -> String {
    format!(
        r#"listen: [{{ address: '{{LISTEN}}' }}]
admin: {{ address: '{{ADMIN}}', api_key: '{{ADMIN_KEY}}' }}
cache: {{ max_size: {max_size} }}
upstreams:
  a: {{ targets: [{upstream}] }}
filters:
  - request_id: {{}}
routes:
  - name: fx
    match: {{ path: "/api/fx/{{pair}}", methods: [GET] }}
    upstream: a
    rewrite: {{ strip_prefix: /api }}
    filters:
      - headers: {{ response: {{ set: {{ X-Before: seen }} }} }}
      - cache: {{ ttl: 3s }}
      - headers: {{ response: {{ set: {{ X-After: stored }} }} }}
  - name: diag
    match: {{ path: /api/diag/respond, methods: [GET, POST] }}
    upstream: a
    rewrite: {{ strip_prefix: /api }}
    filters: [{{ cache: {{ ttl: {diag_ttl}, vary: [X-Tenant] }} }}]
  - name: small
    match: {{ path: /small/diag/respond, methods: [GET] }}
    upstream: a
    rewrite: {{ strip_prefix: /small }}
    filters: [{{ cache: {{ ttl: 30s, max_body: 4KiB }} }}]
"#
    )
}

fn setup() -> (Mock, Gateway) {
    let m = Mock::one("accounts", "a", &[]);
    let gw = Gateway::start(&config(m.addr("a"), "1MiB", "30s"));
    (m, gw)
}

/// Requests the service counted for one of its paths.
fn served(m: &Mock, path: &str) -> u64 {
    get(m.addr("a"), "/_mock/stats").json()["by_path"][path]
        .as_u64()
        .unwrap_or(0)
}

fn x_cache(r: &Response) -> &str {
    r.header("x-cache").unwrap_or("(none)")
}

fn serial(r: &Response) -> u64 {
    r.json()["serial"].as_u64().unwrap()
}

fn get_with(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> Response {
    request(gw.addr, "GET", path, headers, b"")
}

/// Header names and values, without the ones that differ per answer by design.
fn stable_headers(r: &Response) -> BTreeSet<(String, String)> {
    r.headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .filter(|(n, _)| !matches!(n.as_str(), "x-cache" | "age" | "x-request-id"))
        .collect()
}

#[test]
fn miss_then_hits_that_never_reach_the_service_until_the_ttl_ends() {
    let (m, gw) = setup();
    let miss = gw.get("/api/fx/EUR-USD");
    assert_eq!((miss.status, x_cache(&miss)), (200, "MISS"));
    let hit = gw.get("/api/fx/EUR-USD");
    assert_eq!(x_cache(&hit), "HIT");
    assert_eq!(
        hit.body, miss.body,
        "as_of changes per answer: same body means cached"
    );
    assert_eq!(stable_headers(&hit), stable_headers(&miss));
    assert_eq!(hit.header("age"), Some("0"));
    assert_ne!(hit.header("x-request-id"), miss.header("x-request-id"));
    assert_eq!(
        hit.header("x-before"),
        Some("seen"),
        "filters before the cache run on hits"
    );
    assert_eq!(
        hit.header("x-after"),
        Some("stored"),
        "filters after it were stored"
    );
    std::thread::sleep(Duration::from_millis(1100));
    let later = gw.get("/api/fx/EUR-USD");
    assert_eq!(x_cache(&later), "HIT");
    assert!(later.header("age").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(
        served(&m, "/fx/EUR-USD"),
        1,
        "hits never reached the service"
    );

    std::thread::sleep(Duration::from_millis(2000));
    let expired = gw.get("/api/fx/EUR-USD");
    assert_eq!(x_cache(&expired), "MISS");
    assert_ne!(expired.body, miss.body);
    assert_eq!(served(&m, "/fx/EUR-USD"), 2);

    let head = request(gw.addr, "HEAD", "/api/fx/EUR-USD", &[], b"");
    assert_eq!(x_cache(&head), "HIT");
    assert_eq!(
        head.header("content-length"),
        Some(expired.body.len().to_string().as_str())
    );

    let lookups = |result| {
        gw.metric(&format!(
            "fingate_cache_lookups_total{{result=\"{result}\",route=\"fx\"}}"
        ))
    };
    assert_eq!((lookups("hit"), lookups("miss")), (Some(3.0), Some(2.0)));
    wait_for(Duration::from_secs(2), "access log line of a hit", || {
        gw.log().contains("\"cache\":\"hit\"").then_some(())
    });
}

#[test]
fn entries_are_keyed_by_the_vary_option() {
    // Stands in for per-consumer keying until `jwt` is merged: the consumer is one
    // more key part, unit-tested in cache::key and filter::cache.
    let (m, gw) = setup();
    let path = "/api/diag/respond";
    let a1 = get_with(&gw, path, &[("X-Tenant", "a")]);
    let b1 = get_with(&gw, path, &[("X-Tenant", "b")]);
    let none = gw.get(path);
    assert_eq!(
        (x_cache(&a1), x_cache(&b1), x_cache(&none)),
        ("MISS", "MISS", "MISS")
    );
    let a2 = get_with(&gw, path, &[("X-Tenant", "a")]);
    let b2 = get_with(&gw, path, &[("X-Tenant", "b")]);
    assert_eq!((x_cache(&a2), x_cache(&b2)), ("HIT", "HIT"));
    assert_eq!((serial(&a2), serial(&b2)), (serial(&a1), serial(&b1)));
    assert_eq!(a2.json()["headers"]["x-tenant"], "a");
    assert_eq!(served(&m, "/diag/respond"), 3);
}

#[test]
fn the_response_vary_is_honoured() {
    let (m, gw) = setup();
    let path = "/api/diag/respond?vary=Accept-Language";
    let en = get_with(&gw, path, &[("Accept-Language", "en")]);
    let de = get_with(&gw, path, &[("Accept-Language", "de")]);
    let en2 = get_with(&gw, path, &[("Accept-Language", "en")]);
    let de2 = get_with(&gw, path, &[("Accept-Language", "de")]);
    assert_eq!(
        [x_cache(&en), x_cache(&de), x_cache(&en2), x_cache(&de2)],
        ["MISS", "MISS", "HIT", "HIT"]
    );
    assert_eq!((serial(&en2), serial(&de2)), (serial(&en), serial(&de)));
    assert_eq!(served(&m, "/diag/respond"), 2);
}

#[test]
fn uncacheable_answers_are_never_stored() {
    let (m, gw) = setup();
    let mut sent = 0;
    let twice = |path: &str, headers: &[(&str, &str)], sent: &mut u64| {
        let first = get_with(&gw, path, headers);
        let second = get_with(&gw, path, headers);
        *sent += 2;
        assert_eq!(
            (x_cache(&first), x_cache(&second)),
            ("MISS", "MISS"),
            "{path}"
        );
        assert_ne!(serial(&first), serial(&second), "{path}");
    };
    for query in [
        "cache_control=no-store",
        "cache_control=private,max-age=60",
        "cache_control=no-cache",
        "set_cookie=1",
        "status=404",
        "status=500",
        "vary=*",
        "cache_control=max-age=0",
    ] {
        twice(&format!("/api/diag/respond?{query}"), &[], &mut sent);
    }
    // The service checked this credential itself: only `public` would make it shareable.
    twice(
        "/api/diag/respond?auth",
        &[("Authorization", "Basic dTpw")],
        &mut sent,
    );
    twice("/small/diag/respond?size=5000", &[], &mut sent);

    let post = request(gw.addr, "POST", "/api/diag/respond?p", &[], b"{}");
    assert_eq!(x_cache(&post), "BYPASS");
    let after_post = gw.get("/api/diag/respond?p");
    assert_eq!(
        x_cache(&after_post),
        "MISS",
        "a POST answer is never stored"
    );
    sent += 2;
    assert_eq!(
        served(&m, "/diag/respond") + served(&m, "/diag/respond"),
        2 * sent
    );
    assert_eq!(
        gw.metric("fingate_cache_lookups_total{result=\"bypass\",route=\"diag\"}"),
        Some(1.0)
    );
    // Control: the same route does store an ordinary answer.
    let ok = gw.get("/api/diag/respond?plain");
    assert_eq!(x_cache(&gw.get("/api/diag/respond?plain")), "HIT");
    assert_eq!(x_cache(&ok), "MISS");
}

#[test]
fn a_shorter_service_max_age_wins_and_client_no_cache_refreshes() {
    let (m, gw) = setup();
    let path = "/api/diag/respond?cache_control=max-age=1";
    assert_eq!(x_cache(&gw.get(path)), "MISS");
    assert_eq!(x_cache(&gw.get(path)), "HIT");
    std::thread::sleep(Duration::from_millis(1200));
    let refetched = gw.get(path);
    assert_eq!(
        x_cache(&refetched),
        "MISS",
        "max-age=1 beats the route's 30s"
    );
    assert_eq!(served(&m, "/diag/respond"), 2);

    let fresh = get_with(&gw, path, &[("Cache-Control", "no-cache")]);
    assert_eq!(x_cache(&fresh), "MISS");
    assert!(serial(&fresh) > serial(&refetched));
    let again = gw.get(path);
    assert_eq!((x_cache(&again), serial(&again)), ("HIT", serial(&fresh)));
}

#[test]
fn fifty_concurrent_misses_make_one_upstream_request() {
    let (m, gw) = setup();
    set_faults(m.addr("a"), r#"{"latency_ms": 300}"#);
    let addr = gw.addr;
    let answers: Vec<Response> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|_| s.spawn(move || get(addr, "/api/fx/GBP-USD")))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(served(&m, "/fx/GBP-USD"), 1);
    assert!(answers
        .iter()
        .all(|r| r.status == 200 && r.body == answers[0].body));
    let misses = answers.iter().filter(|r| x_cache(r) == "MISS").count();
    assert_eq!(
        misses, 1,
        "one request filled the key; the others waited for it"
    );
}

#[test]
fn purge_all_and_by_prefix() {
    let (m, gw) = setup();
    for p in ["/api/fx/EUR-USD", "/api/fx/GBP-USD", "/api/diag/respond"] {
        assert_eq!(x_cache(&gw.get(p)), "MISS");
        assert_eq!(x_cache(&gw.get(p)), "HIT");
    }
    let anonymous = request(gw.admin, "DELETE", "/admin/cache", &[], b"");
    assert_eq!(anonymous.status, 401);
    assert_eq!(gw.admin("DELETE", "/admin/cache?prefix=api").status, 400);
    assert_eq!(gw.admin("GET", "/admin/cache").status, 405);

    let r = gw.admin("DELETE", "/admin/cache?prefix=/api/fx/EUR");
    assert_eq!((r.status, r.json()["purged"].as_u64()), (200, Some(1)));
    assert_eq!(x_cache(&gw.get("/api/fx/EUR-USD")), "MISS");
    assert_eq!(x_cache(&gw.get("/api/fx/GBP-USD")), "HIT");
    assert_eq!(x_cache(&gw.get("/api/diag/respond")), "HIT");

    let r = gw.admin("DELETE", "/admin/cache");
    assert_eq!(r.json()["purged"].as_u64(), Some(3));
    for p in ["/api/fx/EUR-USD", "/api/fx/GBP-USD", "/api/diag/respond"] {
        assert_eq!(x_cache(&gw.get(p)), "MISS", "{p}");
    }
    assert_eq!(served(&m, "/fx/EUR-USD"), 3);
}

#[test]
fn memory_stays_bounded_under_a_flood_of_distinct_keys() {
    let m = Mock::one("accounts", "a", &[]);
    let gw = Gateway::start(&config(m.addr("a"), "64KiB", "30s"));
    for i in 0..150 {
        let r = gw.get(&format!("/api/diag/respond?size=2000&n={i}"));
        assert_eq!((r.status, x_cache(&r)), (200, "MISS"));
    }
    let bytes = gw.metric("fingate_cache_bytes").unwrap();
    assert!(
        bytes > 0.0 && bytes <= 65536.0,
        "fingate_cache_bytes = {bytes}"
    );
    // Still caching after the flood: once full, TinyLFU admits a key that is asked
    // for again (one-off keys cannot push out entries that are used).
    let hit_after =
        (0..5).position(|_| x_cache(&gw.get("/api/diag/respond?size=2000&again")) == "HIT");
    assert!(
        hit_after.is_some(),
        "a repeated key is cached again after the flood"
    );
}

#[test]
fn reload_keeps_entries_of_unchanged_routes_only() {
    let (m, gw) = setup();
    for p in ["/api/fx/EUR-USD", "/api/diag/respond"] {
        gw.get(p);
        assert_eq!(x_cache(&gw.get(p)), "HIT");
    }
    gw.write_config(&config(m.addr("a"), "1MiB", "20s"));
    let r = gw.admin("POST", "/admin/reload");
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(
        r.json()["summary"]["routes_changed"],
        serde_json::json!(["diag"])
    );
    assert_eq!(
        x_cache(&gw.get("/api/fx/EUR-USD")),
        "HIT",
        "unchanged route keeps its entries"
    );
    assert_eq!(
        x_cache(&gw.get("/api/diag/respond")),
        "MISS",
        "changed route starts afresh"
    );
}

/// Authenticated data is keyed per consumer: two real tokens, one cached route.
#[test]
fn each_consumer_gets_its_own_cached_data() {
    use crate::authkit;
    let m = Mock::one("accounts", "a", &[]);
    let yaml = authkit::config(m.addr("a"), authkit::NO_LOCKOUT)
        + "  - { name: my-accounts, match: { path: /my/accounts }, upstream: a, rewrite: { path: /accounts }, filters: [ { jwt: { scopes: [accounts:read] } }, { cache: { ttl: 30s } } ] }\n";
    let gw = Gateway::start(&yaml);
    let (mobile, web) = (
        authkit::token_for(&gw, "mobile-app"),
        authkit::token_for(&gw, "web-app"),
    );

    let first_mobile = authkit::bearer_get(&gw, "/my/accounts", &mobile);
    assert_eq!(first_mobile.status, 200, "{}", first_mobile.body_text());
    assert_eq!(first_mobile.header("x-cache"), Some("MISS"));
    assert!(
        first_mobile.body_text().contains("ACC-1001")
            && !first_mobile.body_text().contains("ACC-2001")
    );

    let first_web = authkit::bearer_get(&gw, "/my/accounts", &web);
    assert_eq!(
        first_web.header("x-cache"),
        Some("MISS"),
        "web-app must not get mobile-app's entry"
    );
    assert!(
        first_web.body_text().contains("ACC-2001") && !first_web.body_text().contains("ACC-1001")
    );

    for (token, first) in [(&mobile, &first_mobile), (&web, &first_web)] {
        let again = authkit::bearer_get(&gw, "/my/accounts", token);
        assert_eq!(again.header("x-cache"), Some("HIT"));
        assert_eq!(again.body, first.body);
    }
    let anonymous = gw.get("/my/accounts");
    assert_eq!(anonymous.status, 401);
    assert_ne!(anonymous.header("x-cache"), Some("HIT"));
    let stats = get(m.addr("a"), "/_mock/stats").json();
    assert_eq!(stats["by_path"]["/accounts"], 2, "{stats}");
}

/// Issue 14: `?acct=1&acct=2` reads as the list [1, 2] upstream; answering
/// `?acct=2&acct=1` from its entry would serve a different request's answer.
#[test]
fn repeated_query_parameters_keep_their_order_in_the_key() {
    let (m, gw) = setup();
    let one_two = gw.get("/api/diag/respond?acct=1&acct=2");
    assert_eq!(x_cache(&one_two), "MISS");
    let two_one = gw.get("/api/diag/respond?acct=2&acct=1");
    assert_eq!(
        x_cache(&two_one),
        "MISS",
        "?acct=2&acct=1 was answered from ?acct=1&acct=2's entry"
    );
    assert_ne!(serial(&two_one), serial(&one_two));
    // Different names still share an entry whatever their order.
    let first = gw.get("/api/diag/respond?x=9&acct=1&acct=2");
    assert_eq!(x_cache(&first), "MISS");
    let moved = gw.get("/api/diag/respond?acct=1&x=9&acct=2");
    assert_eq!((x_cache(&moved), serial(&moved)), ("HIT", serial(&first)));
    assert_eq!(served(&m, "/diag/respond"), 3);
}

/// Issue 14: a GET with a body is forwarded with it; its answer must neither
/// come from nor go into the entry of the plain GET.
#[test]
fn a_get_or_head_with_a_body_is_never_cached() {
    let (m, gw) = setup();
    let path = "/api/diag/respond?body";
    let with_length = request(gw.addr, "GET", path, &[], b"{\"poison\":1}");
    assert_eq!((with_length.status, x_cache(&with_length)), (200, "BYPASS"));
    let head = request(gw.addr, "HEAD", path, &[], b"x");
    assert_eq!(
        (head.status, x_cache(&head)),
        (200, "BYPASS"),
        "HEAD with a body"
    );
    // Chunked: the body is declared by Transfer-Encoding, not a length.
    let chunked = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        gw.addr
    );
    let mut s = std::net::TcpStream::connect(gw.addr).unwrap();
    std::io::Write::write_all(&mut s, chunked.as_bytes()).unwrap();
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut raw).unwrap();
    let chunked = parse_response(&raw, false).unwrap();
    assert_eq!((chunked.status, x_cache(&chunked)), (200, "BYPASS"));

    let plain = gw.get(path);
    assert_eq!(x_cache(&plain), "MISS", "an answer to a body was stored");
    assert_eq!(x_cache(&gw.get(path)), "HIT");
    // A plain GET's entry is not served to a GET with a body either.
    let again = request(gw.addr, "GET", path, &[], b"{}");
    assert_eq!(x_cache(&again), "BYPASS");
    assert_ne!(serial(&again), serial(&plain));
    assert_eq!(
        gw.metric("fingate_cache_lookups_total{result=\"bypass\",route=\"diag\"}"),
        Some(4.0)
    );
    assert_eq!(served(&m, "/diag/respond"), 5);
}

/// Issue 14: a request header the answer varies on may be sent on several lines;
/// the service reads them all (here the last wins), so all of them are keyed.
#[test]
fn every_value_of_a_repeated_varying_header_counts() {
    let (m, gw) = setup();
    // The response's own Vary, and the route's `vary` option (X-Tenant).
    for (path, name) in [
        ("/api/diag/respond?vary=Accept-Language", "accept-language"),
        ("/api/diag/respond?by=tenant", "x-tenant"),
    ] {
        let poisoned = get_with(&gw, path, &[(name, "en"), (name, "evil")]);
        assert_eq!(x_cache(&poisoned), "MISS");
        assert_eq!(poisoned.json()["headers"][name], "evil", "{path}");
        let plain = get_with(&gw, path, &[(name, "en")]);
        assert_eq!(
            x_cache(&plain),
            "MISS",
            "{path}: a plain {name}: en got the entry of en + evil"
        );
        assert_eq!(plain.json()["headers"][name], "en");
        let again = get_with(&gw, path, &[(name, "en"), (name, "evil")]);
        assert_eq!(
            (x_cache(&again), serial(&again)),
            ("HIT", serial(&poisoned))
        );
        assert_eq!(x_cache(&get_with(&gw, path, &[(name, "en")])), "HIT");
    }
    // Names from every Vary line of the response count.
    let path = "/api/diag/respond?vary=Accept-Language&vary_also=X-Region";
    let a = get_with(&gw, path, &[("Accept-Language", "en"), ("X-Region", "a")]);
    let b = get_with(&gw, path, &[("Accept-Language", "en"), ("X-Region", "b")]);
    assert_eq!((x_cache(&a), x_cache(&b)), ("MISS", "MISS"));
    let a2 = get_with(&gw, path, &[("Accept-Language", "en"), ("X-Region", "a")]);
    assert_eq!((x_cache(&a2), serial(&a2)), ("HIT", serial(&a)));
    assert_eq!(served(&m, "/diag/respond"), 6);
}
