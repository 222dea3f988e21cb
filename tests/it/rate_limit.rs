//! `rate_limit` against a real redis-server (and the memory store for comparison):
//! counts, headers, fleet exactness, several limits, Redis dying and coming back,
//! a Redis that stops answering.

use crate::harness::*;
use crate::redis::Redis;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One upstream, routes given as YAML lines (under `routes:`), a store block.
fn config(store: &str, upstream: &Mock, routes: &str) -> String {
    format!(
        "listen: [{{ address: '{{LISTEN}}' }}]\nadmin: {{ address: '{{ADMIN}}', api_key: '{{ADMIN_KEY}}' }}\nthreads: 1\nstore: {store}\nupstreams:\n  svc:\n    targets: [{}]\nroutes:\n{routes}",
        upstream.addr("a")
    )
}

fn redis_store(r: &Redis) -> String {
    format!("{{ backend: redis, url: '{}', timeout: 50ms }}", r.url())
}

fn route(name: &str, prefix: &str, filters: &[&str]) -> String {
    let mut s = format!(
        "  - name: {name}\n    match: {{ prefix: {prefix} }}\n    upstream: svc\n    filters:\n"
    );
    for f in filters {
        s.push_str(&format!("      - rate_limit: {f}\n"));
    }
    s
}

fn hit(gw: &Gateway, path: &str, client: &str) -> Response {
    try_request(gw.addr, "GET", path, &[("X-Client", client)], b"")
        .unwrap_or_else(|e| panic!("GET {path}: {e}; gateway log:\n{}", gw.log()))
}

fn num(r: &Response, name: &str) -> i64 {
    r.header(name)
        .unwrap_or_else(|| panic!("no {name} on {} {}", r.status, r.body_text()))
        .parse()
        .unwrap()
}

/// Redis server time in seconds (float).
fn redis_now(r: &Redis) -> f64 {
    let t = r.cli(&["TIME"]);
    let mut it = t.lines().map(|l| l.trim().parse::<f64>().unwrap());
    it.next().unwrap() + it.next().unwrap() / 1e6
}

#[test]
fn gcra_allows_limit_plus_burst_with_headers_and_retry_after() {
    let redis = Redis::start();
    let up = Mock::one("accounts", "a", &[]);
    let gw = Gateway::start(&config(
        &redis_store(&redis),
        &up,
        &route(
            "rl",
            "/_mock/echo",
            &["{ key: 'header:X-Client', limit: 5, per: 1m, burst: 2 }"],
        ),
    ));
    let mut statuses = Vec::new();
    for i in 0..10 {
        let r = hit(&gw, "/_mock/echo", "alice");
        assert_eq!(num(&r, "ratelimit-limit"), 7);
        if i < 7 {
            assert_eq!(r.status, 200, "{}", r.body_text());
            assert_eq!(num(&r, "ratelimit-remaining"), 6 - i);
        } else {
            assert_eq!(r.status, 429);
            assert_eq!(num(&r, "ratelimit-remaining"), 0);
            // One request's allowance comes back every 60 s / 5 = 12 s.
            assert_eq!(num(&r, "retry-after"), 12);
            assert_eq!(r.json()["error"], "rate_limited");
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 7);
    assert_eq!(
        hit(&gw, "/_mock/echo", "bob").status,
        200,
        "keys are isolated"
    );
    let series = |d: &str| {
        gw.metric(&format!(
            "fingate_rate_limit_decisions_total{{decision=\"{d}\",route=\"rl\"}}"
        ))
    };
    assert_eq!(series("allowed"), Some(8.0));
    assert_eq!(series("limited"), Some(3.0));
    assert!(redis
        .cli(&["KEYS", "fingate:rl:*"])
        .contains("fingate:rl:{g5/60000ms+2|h=alice}"));
}

#[test]
fn sliding_window_allows_limit_plus_burst_and_says_when_to_retry() {
    let redis = Redis::start();
    let up = Mock::one("accounts", "a", &[]);
    let gw = Gateway::start(&config(
        &redis_store(&redis),
        &up,
        &route("rl", "/_mock/echo", &["{ key: 'header:X-Client', limit: 4, per: 1h, burst: 1, algorithm: sliding_window }"]),
    ));
    let allowed = (0..8)
        .filter(|_| hit(&gw, "/_mock/echo", "c").status == 200)
        .count();
    assert_eq!(allowed, 5);
    let r = hit(&gw, "/_mock/echo", "c");
    assert_eq!(r.status, 429);
    assert_eq!(num(&r, "ratelimit-limit"), 5);
    // Full window: wait for the next one, then until 1/5 of this one slid out.
    let elapsed = redis_now(&redis) % 3600.0;
    let expected = (3600.0 - elapsed) + 3600.0 / 5.0;
    let got = num(&r, "retry-after") as f64;
    assert!(
        (got - expected).abs() <= 1.0,
        "Retry-After {got}, expected about {expected}"
    );
}

#[test]
fn memory_and_redis_stores_decide_the_same() {
    let redis = Redis::start();
    let up = Mock::one("accounts", "a", &[]);
    let routes = [
        route("g", "/_mock/echo/g", &["{ key: 'header:X-Client', limit: 5, per: 1m, burst: 2 }"]),
        route("w", "/_mock/echo/w", &["{ key: 'header:X-Client', limit: 4, per: 1h, burst: 1, algorithm: sliding_window }"]),
    ]
    .concat();
    let observe = |gw: &Gateway| -> Vec<(u16, i64, i64, Option<String>)> {
        let mut seen = Vec::new();
        for path in ["/_mock/echo/g", "/_mock/echo/w"] {
            for client in ["a", "b", "a", "a", "a", "a", "a", "a", "a", "b"] {
                let r = hit(gw, path, client);
                let retry = r.header("retry-after").map(str::to_owned);
                seen.push((
                    r.status,
                    num(&r, "ratelimit-limit"),
                    num(&r, "ratelimit-remaining"),
                    retry,
                ));
            }
        }
        seen
    };
    let mem = observe(&Gateway::start(&config(
        "{ backend: memory }",
        &up,
        &routes,
    )));
    let red = observe(&Gateway::start(&config(&redis_store(&redis), &up, &routes)));
    // The sliding window's Retry-After depends on the time within its window, which
    // moves between the two runs: equal to the second, give or take one.
    let strip = |v: &[(u16, i64, i64, Option<String>)]| -> Vec<(u16, i64, i64)> {
        v.iter().map(|s| (s.0, s.1, s.2)).collect()
    };
    assert_eq!(strip(&mem), strip(&red));
    let secs = |s: &Option<String>| s.as_deref().map(|v| v.parse::<i64>().unwrap());
    for (m, r) in mem.iter().zip(&red) {
        match (secs(&m.3), secs(&r.3)) {
            (Some(a), Some(b)) => assert!((a - b).abs() <= 1, "{mem:?}\n{red:?}"),
            (a, b) => assert_eq!(a, b),
        }
    }
    assert!(mem.iter().any(|s| s.0 == 429), "{mem:?}");
}

/// Hammers `path` through `gateways` from 4 threads until `until`; returns the 200s.
fn hammer(gateways: &[&Gateway], path: &str, until: Instant) -> (usize, usize) {
    let allowed = Arc::new(AtomicUsize::new(0));
    let other = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        for t in 0..4 {
            let (allowed, other) = (allowed.clone(), other.clone());
            let gw = gateways[t % gateways.len()];
            s.spawn(move || {
                while Instant::now() < until {
                    match hit(gw, path, "fleet").status {
                        200 => allowed.fetch_add(1, Ordering::SeqCst),
                        429 => 0,
                        _ => other.fetch_add(1, Ordering::SeqCst),
                    };
                }
            });
        }
    });
    (allowed.load(Ordering::SeqCst), other.load(Ordering::SeqCst))
}

#[test]
fn concurrent_requests_on_one_key_share_redis_calls_and_stay_exact() {
    let redis = Redis::start();
    let up = Mock::one("accounts", "a", &[]);
    let store = format!("{{ backend: redis, url: '{}', timeout: 2s }}", redis.url());
    let gw = Gateway::start(&config(
        &store,
        &up,
        &route(
            "hot",
            "/_mock/echo/hot",
            &["{ key: 'header:X-Client', limit: 150, per: 1h }"],
        ),
    ));
    let sent = AtomicUsize::new(0);
    let (allowed, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let remaining = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| {
                while sent.fetch_add(1, Ordering::SeqCst) < 200 {
                    let r = hit(&gw, "/_mock/echo/hot", "hot");
                    match r.status {
                        200 => {
                            allowed.fetch_add(1, Ordering::SeqCst);
                            let left = num(&r, "ratelimit-remaining");
                            remaining.lock().unwrap().push(left);
                        }
                        429 => {
                            refused.fetch_add(1, Ordering::SeqCst);
                        }
                        other => panic!("status {other}: {}", r.body_text()),
                    }
                }
            });
        }
    });
    assert_eq!(allowed.into_inner(), 150, "exactly the limit");
    assert_eq!(refused.into_inner(), 50);
    // Every granted request saw its own place in the allowance.
    let mut remaining = remaining.into_inner().unwrap();
    remaining.sort_unstable();
    assert_eq!(remaining, (0..150).collect::<Vec<i64>>());
    // Requests that arrived while a call for the key was in flight went in one
    // batch: fewer script calls than granted requests.
    let calls = redis.calls("evalsha");
    eprintln!("{calls} EVALSHA calls for 150 granted requests");
    assert!(
        calls < 150,
        "{calls} EVALSHA calls for 150 granted requests"
    );
}

#[test]
fn a_fleet_sharing_redis_gets_exactly_its_allowance() {
    let redis = Redis::start();
    let up = Mock::one("accounts", "a", &[]);
    let routes = [
        route(
            "fixed",
            "/_mock/echo/fixed",
            &["{ key: 'header:X-Client', limit: 30, per: 1h, burst: 10 }"],
        ),
        route(
            "flow",
            "/_mock/echo/flow",
            &["{ key: 'header:X-Client', limit: 20, per: 2s }"],
        ),
    ]
    .concat();
    // Exactness holds while Redis answers: a generous timeout keeps a loaded test
    // machine from sending decisions to the local fallback (checked below).
    let store = format!("{{ backend: redis, url: '{}', timeout: 2s }}", redis.url());
    let yaml = config(&store, &up, &routes);
    let (a, b) = (Gateway::start(&yaml), Gateway::start(&yaml));
    // No refill within the test: exactly limit + burst pass, through both gateways.
    let (ok, bad) = hammer(
        &[&a, &b],
        "/_mock/echo/fixed",
        Instant::now() + Duration::from_secs(2),
    );
    assert_eq!((ok, bad), (40, 0));
    // Two windows of 2 s: the bucket (20) plus one request per 100 ms of Redis time.
    // A bucket refills even while clients are slow, so what is left unused at the
    // end is drained (until the first 429) before reading Redis time again.
    let t0 = redis_now(&redis);
    let (ok, bad) = hammer(
        &[&a, &b],
        "/_mock/echo/flow",
        Instant::now() + Duration::from_secs(4),
    );
    let mut left = 0;
    let mut before_refusal = redis_now(&redis);
    while left < 100 && hit(&a, "/_mock/echo/flow", "fleet").status == 200 {
        left += 1;
        before_refusal = redis_now(&redis);
    }
    let t1 = redis_now(&redis);
    let most = 20 + ((t1 - t0) / 0.1).floor() as usize;
    let least = 20 + ((before_refusal - t0) / 0.1).floor() as usize;
    let total = ok + left;
    assert_eq!(bad, 0);
    // Never over what Redis time allows by the end. Under by at most one refill
    // besides: the bucket starts full at the first request, a little after t0
    // (reading Redis time starts a redis-cli process).
    assert!(
        total <= most && total + 1 >= least,
        "allowed {ok} + {left}, expected between {least} (-1) and {most}"
    );
    for gw in [&a, &b] {
        assert_eq!(
            gw.metric("fingate_store_errors_total{operation=\"rate_limit\"}"),
            None
        );
    }
    assert!(
        a.metric("fingate_rate_limit_decisions_total{decision=\"allowed\",route=\"flow\"}")
            .unwrap()
            > 0.0
    );
    assert!(
        b.metric("fingate_rate_limit_decisions_total{decision=\"allowed\",route=\"flow\"}")
            .unwrap()
            > 0.0
    );
}

#[test]
fn several_limits_all_apply_and_report_the_tightest() {
    let redis = Redis::start();
    let up = Mock::one("accounts", "a", &[]);
    let routes = [
        route(
            "two",
            "/_mock/echo/two",
            &[
                "{ key: 'header:X-Client', limit: 3, per: 1m }",
                "{ key: route, limit: 5, per: 1m }",
            ],
        ),
        route(
            "combined",
            "/_mock/echo/comb",
            &["{ key: ['header:X-Client', 'header:X-Tenant'], limit: 1, per: 1m }"],
        ),
    ]
    .concat();
    let gw = Gateway::start(&config(&redis_store(&redis), &up, &routes));
    let r = hit(&gw, "/_mock/echo/two", "a");
    assert_eq!(
        (
            r.status,
            num(&r, "ratelimit-limit"),
            num(&r, "ratelimit-remaining")
        ),
        (200, 3, 2)
    );
    assert_eq!(hit(&gw, "/_mock/echo/two", "a").status, 200);
    assert_eq!(hit(&gw, "/_mock/echo/two", "a").status, 200);
    assert_eq!(hit(&gw, "/_mock/echo/two", "a").status, 429, "client limit");
    // The route limit (5) has 2 left (the refused request did not reach it).
    let r = hit(&gw, "/_mock/echo/two", "b");
    assert_eq!(
        (
            r.status,
            num(&r, "ratelimit-limit"),
            num(&r, "ratelimit-remaining")
        ),
        (200, 5, 1)
    );
    assert_eq!(hit(&gw, "/_mock/echo/two", "b").status, 200);
    let r = hit(&gw, "/_mock/echo/two", "c");
    assert_eq!(
        (r.status, num(&r, "ratelimit-limit")),
        (429, 5),
        "route limit"
    );
    let comb = |c: &str, t: &str| {
        request(
            gw.addr,
            "GET",
            "/_mock/echo/comb",
            &[("X-Client", c), ("X-Tenant", t)],
            b"",
        )
        .status
    };
    assert_eq!(comb("a", "t1"), 200);
    assert_eq!(comb("a", "t1"), 429);
    assert_eq!(comb("a", "t2"), 200);
    assert_eq!(comb("b", "t1"), 200);
    // Without the headers: one shared anonymous bucket.
    assert_eq!(get(gw.addr, "/_mock/echo/comb").status, 200);
    assert_eq!(get(gw.addr, "/_mock/echo/comb").status, 429);
}

fn outage_routes() -> String {
    [
        route(
            "allow",
            "/_mock/echo/allow",
            &["{ key: 'header:X-Client', limit: 5, per: 1m }"],
        ),
        route(
            "deny",
            "/_mock/echo/deny",
            &["{ key: 'header:X-Client', limit: 1000, per: 1m, on_store_error: deny }"],
        ),
    ]
    .concat()
}

#[test]
fn redis_dying_mid_load_falls_back_or_denies_and_recovers_by_itself() {
    let mut redis = Redis::start();
    let port = redis.port;
    let up = Mock::one("accounts", "a", &[]);
    let gw = Gateway::start(&config(&redis_store(&redis), &up, &outage_routes()));
    wait_for(Duration::from_secs(5), "ready", || {
        (get(gw.admin, "/readyz").status == 200).then_some(())
    });
    assert_eq!(hit(&gw, "/_mock/echo/deny", "x").status, 200);
    redis.kill();
    // allow: never a 5xx, and the local limiter still holds the client to 5.
    let statuses: Vec<u16> = (0..40)
        .map(|_| hit(&gw, "/_mock/echo/allow", "y").status)
        .collect();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    // deny: 503 JSON.
    let r = hit(&gw, "/_mock/echo/deny", "x");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "store_unavailable");
    assert!(
        gw.metric("fingate_store_errors_total{operation=\"rate_limit\"}")
            .unwrap()
            >= 1.0
    );
    wait_for(Duration::from_secs(3), "readyz 503", || {
        (get(gw.admin, "/readyz").status == 503).then_some(())
    });
    assert_eq!(
        gw.log().matches("redis unreachable").count(),
        1,
        "logged once per outage:\n{}",
        gw.log()
    );
    // Back on the same port: decisions go to Redis again, no restart.
    let redis = Redis::start_on(port);
    let back = Instant::now();
    wait_for(Duration::from_secs(2), "deny route served again", || {
        (hit(&gw, "/_mock/echo/deny", "x").status == 200).then_some(())
    });
    assert!(back.elapsed() <= Duration::from_secs(2));
    let calls = redis.calls("evalsha") + redis.calls("eval");
    assert!(calls >= 1, "{}", redis.cli(&["INFO", "commandstats"]));
    wait_for(Duration::from_secs(2), "readyz 200", || {
        (get(gw.admin, "/readyz").status == 200).then_some(())
    });
    assert!(gw.log().contains("redis answers again"));
}

#[test]
fn a_redis_that_stops_answering_costs_one_timeout_not_a_hang() {
    let redis = Redis::start();
    let up = Mock::one("accounts", "a", &[]);
    let gw = Gateway::start(&config(&redis_store(&redis), &up, &outage_routes()));
    assert_eq!(hit(&gw, "/_mock/echo/deny", "x").status, 200);
    redis.signal("STOP");
    for (path, want) in [("/_mock/echo/allow", 200), ("/_mock/echo/deny", 503)] {
        let started = Instant::now();
        let r = hit(&gw, path, "z");
        assert_eq!(r.status, want, "{}", r.body_text());
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{path} took {:?}",
            started.elapsed()
        );
    }
    assert!(
        gw.metric("fingate_store_errors_total{operation=\"rate_limit\"}")
            .unwrap()
            >= 2.0
    );
    redis.signal("CONT");
    wait_for(Duration::from_secs(2), "redis used again", || {
        (hit(&gw, "/_mock/echo/deny", "x").status == 200).then_some(())
    });
}

#[test]
fn start_up_does_not_need_redis() {
    let port = free_port();
    let up = Mock::one("accounts", "a", &[]);
    let store = format!("{{ backend: redis, url: 'redis://127.0.0.1:{port}/0', timeout: 50ms }}");
    let gw = Gateway::start(&config(&store, &up, &outage_routes()));
    assert_eq!(get(gw.admin, "/readyz").status, 503);
    assert_eq!(hit(&gw, "/_mock/echo/allow", "a").status, 200);
    let _redis = Redis::start_on(port);
    wait_for(Duration::from_secs(2), "connected", || {
        (hit(&gw, "/_mock/echo/deny", "a").status == 200).then_some(())
    });
    wait_for(Duration::from_secs(2), "readyz 200", || {
        (get(gw.admin, "/readyz").status == 200).then_some(())
    });
}

/// The store seam used directly (as consumers and cache purges will): key/value
/// operations, maps, rate-limit decisions equal to the memory store's, the login
/// throttle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_store_seam_works_like_the_memory_one() {
    use fingate::auth::throttle::{Admission, LoginThrottle, ThrottleLimits};
    use fingate::store::{Algorithm, MemoryStore, RedisStore, Rule};
    let redis = Redis::start();
    let store = RedisStore::open(&redis.url(), Duration::from_secs(1));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !store.ready() {
        assert!(Instant::now() < deadline, "redis store never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    store.set("fingate:t:{a}", b"1", None).await.unwrap();
    store
        .set("fingate:t:{b}", b"2", Some(Duration::from_millis(100)))
        .await
        .unwrap();
    assert_eq!(
        store.get("fingate:t:{a}").await.unwrap(),
        Some(b"1".to_vec())
    );
    assert_eq!(
        store.get("fingate:t:{b}").await.unwrap(),
        Some(b"2".to_vec())
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(store.get("fingate:t:{b}").await.unwrap(), None);
    assert!(store.delete("fingate:t:{a}").await.unwrap());
    assert!(!store.delete("fingate:t:{a}").await.unwrap());

    let memory = MemoryStore::default();
    for algorithm in [Algorithm::Gcra, Algorithm::SlidingWindow] {
        let rule = Rule {
            algorithm,
            limit: 3,
            per: Duration::from_secs(3600),
            burst: 1,
        };
        // Single requests, peeks (0) and coalesced batches (> 1).
        for cost in [1, 1, 0, 1, 1, 1, 0, 3, 0, 2, 5] {
            let r = store
                .rate_limit("fingate:t:{rl}", &rule, cost)
                .await
                .unwrap();
            let m = memory.decide("fingate:t:{rl}", &rule, cost);
            assert_eq!(
                (r.allowed, r.granted, r.remaining),
                (m.allowed, m.granted, m.remaining),
                "{algorithm:?} cost {cost}"
            );
        }
        redis.cli(&["DEL", "fingate:t:{rl}"]);
    }

    // Maps (run-time consumers): HSETNX semantics, listed whole.
    assert!(store
        .map_insert_new("fingate:t:m", "a", b"1")
        .await
        .unwrap());
    assert!(!store
        .map_insert_new("fingate:t:m", "a", b"2")
        .await
        .unwrap());
    assert_eq!(
        store.map_get("fingate:t:m", "a").await.unwrap(),
        Some(b"1".to_vec())
    );
    assert_eq!(
        store.map_entries("fingate:t:m").await.unwrap(),
        vec![("a".to_owned(), b"1".to_vec())]
    );
    assert!(store.map_remove("fingate:t:m", "a").await.unwrap());
    assert!(!store.map_remove("fingate:t:m", "a").await.unwrap());
    assert_eq!(store.map_get("fingate:t:m", "a").await.unwrap(), None);

    // Attempt counting: the script and the memory store count alike, a refused
    // attempt restarts the window, and giving back counts down to nothing.
    let window = Duration::from_secs(60);
    for step in 0..4 {
        let r = store
            .take_attempt("fingate:t:{at}", 2, window)
            .await
            .unwrap();
        let m = memory.take("fingate:t:{at}", 2, window);
        assert_eq!((r.count, r.allowed), (m.count, m.allowed), "attempt {step}");
        assert!(
            r.reset > Duration::from_secs(58) && r.reset <= window,
            "{r:?}"
        );
    }
    for _ in 0..4 {
        store.give_back_attempt("fingate:t:{at}").await.unwrap();
    }
    assert_eq!(redis.cli(&["EXISTS", "fingate:t:{at}"]), "0");

    let limits = ThrottleLimits {
        per_username: 2,
        per_ip: 100,
        window: Duration::from_secs(60),
    };
    let throttle = LoginThrottle::new(store.clone(), limits);
    let ip = Some("198.51.100.4".parse().unwrap());
    for _ in 0..2 {
        assert!(matches!(
            throttle.admit("mallory", ip).await,
            Admission::Check(_)
        ));
    }
    let Admission::Refused { retry_after } = throttle.admit("mallory", ip).await else {
        panic!("a third check for mallory");
    };
    assert!(
        retry_after > Duration::from_secs(59) && retry_after <= Duration::from_secs(60),
        "{retry_after:?}"
    );
    assert!(redis
        .cli(&["KEYS", "fingate:login:*"])
        .contains("fingate:login:{u:mallory}:ip:198.51.100.4"));
}
