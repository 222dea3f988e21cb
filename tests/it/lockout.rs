//! Login throttling under attack: a burst of concurrent wrong passwords
//! gets no more password checks than the lockout allows, and the right password
//! from another address still logs in while the attack goes on. With the memory
//! store and with two gateways sharing Redis.

use crate::authkit::*;
use crate::harness::*;
use crate::redis::Redis;
use serde_json::json;
use std::net::IpAddr;

const LOCKOUT: &str = "{ username_failures: 5, ip_failures: 20, window: 1m }";
const BURST: usize = 60;

fn attacker() -> IpAddr {
    "127.0.0.2".parse().unwrap()
}

fn owner() -> IpAddr {
    "127.0.0.3".parse().unwrap()
}

fn login_from(from: IpAddr, gw: &Gateway, password: &str) -> Response {
    let body = json!({"username": "mobile-app", "password": password}).to_string();
    request_from(
        from,
        gw.addr,
        "POST",
        "/auth/token",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
}

/// Fires [`BURST`] wrong passwords at once from the attacker's address, spread over
/// `gateways`, while the owner logs in with the right password from another
/// address. Returns the burst's statuses and the owner's answer.
fn attack(gateways: &[&Gateway]) -> (Vec<u16>, Response) {
    let barrier = std::sync::Barrier::new(BURST + 1);
    std::thread::scope(|s| {
        let guesses: Vec<_> = (0..BURST)
            .map(|i| {
                let gw = gateways[i % gateways.len()];
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    login_from(attacker(), gw, &format!("guess-{i}")).status
                })
            })
            .collect();
        let owner = s.spawn(|| {
            barrier.wait();
            login_from(owner(), gateways[gateways.len() - 1], PASSWORD)
        });
        let statuses = guesses.into_iter().map(|g| g.join().unwrap()).collect();
        (statuses, owner.join().unwrap())
    })
}

/// At most the lockout's 5 checks (fewer, even none, when the password checks
/// were saturated: a login that waited too long for one is refused unchecked, as
/// on a test machine running the whole suite on two cores).
fn assert_bounded(statuses: &[u16], owner: &Response) {
    let checked = statuses.iter().filter(|&&s| s == 401).count();
    let refused = statuses.iter().filter(|&&s| s == 429).count();
    assert!(
        checked <= 5,
        "password checks of the burst: {checked}: {statuses:?}"
    );
    assert_eq!(checked + refused, BURST, "{statuses:?}");
    assert_eq!(owner.status, 200, "the owner: {}", owner.body_text());
}

/// The test config, with room for the burst's checks and the owner's at once, so
/// a slow (debug, loaded) machine does not refuse logins as busy.
fn yaml(upstream: std::net::SocketAddr) -> String {
    config(upstream, LOCKOUT).replace("max_ttl: 1h,", "max_ttl: 1h, max_concurrent_logins: 8,")
}

#[test]
fn a_concurrent_burst_gets_only_the_lockout_s_checks_and_the_owner_still_logs_in() {
    let m = Mock::one("accounts", "a", &[]);
    let gw = Gateway::start(&yaml(m.addr("a")));
    let (statuses, answer) = attack(&[&gw]);
    assert_bounded(&statuses, &answer);
    // The attacker stays refused, even with the right password; the owner does not.
    assert_eq!(login_from(attacker(), &gw, PASSWORD).status, 429);
    assert_eq!(login_from(owner(), &gw, PASSWORD).status, 200);
}

#[test]
fn two_gateways_on_redis_count_the_burst_together() {
    let redis = Redis::start();
    let m = Mock::one("accounts", "a", &[]);
    // A generous store timeout: a gateway that gets no answer from Redis counts in
    // memory on its own, which a loaded test machine must not be mistaken for.
    let yaml = format!(
        "{}store: {{ backend: redis, url: '{}', timeout: 3s }}\n",
        yaml(m.addr("a")),
        redis.url()
    );
    let (a, b) = (Gateway::start(&yaml), Gateway::start(&yaml));
    let (statuses, answer) = attack(&[&a, &b]);
    assert_bounded(&statuses, &answer);
    assert_eq!(login_from(attacker(), &a, PASSWORD).status, 429);
    assert_eq!(login_from(owner(), &a, PASSWORD).status, 200);
}
