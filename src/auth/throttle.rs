//! Bounding password guesses at the token endpoint, counted in the shared store so a
//! fleet counts together.
//!
//! Every login *takes* an attempt before its password is checked, so a burst of
//! concurrent guesses gets no more checks than the limit however it is timed; a
//! correct password gives its attempts back. Refusals are counted per
//! (username, client address) and per client address, never per username alone:
//! a stranger failing for `web-app` must not lock out every other address that
//! logs in as `web-app`. Failures for a username from everywhere only slow its
//! logins down (at most [`MAX_DELAY`]), which bounds how fast a spread-out attack
//! can guess without refusing anyone.
//!
//! When the store gives no answer, a local store with the same settings keeps
//! counting, so guessing stays bounded through an outage.

use crate::store::{Attempt, MemoryStore, Store};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// The longest a login waits because its username is failing elsewhere.
pub const MAX_DELAY: Duration = Duration::from_secs(1);

/// Limits: failures allowed per window before logins are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleLimits {
    /// Per (username, client address); over it from everywhere, logins are slowed.
    pub per_username: u32,
    /// Per client address, across usernames.
    pub per_ip: u32,
    pub window: Duration,
}

/// What a login may do: go on to the password check (after `delay`), holding the
/// attempts it took, or wait `retry_after`.
#[derive(Debug)]
pub enum Admission {
    Check(Ticket),
    Refused { retry_after: Duration },
}

/// The attempts one login took; hand it back to [`LoginThrottle::succeeded`] or
/// [`LoginThrottle::unchecked`].
#[derive(Debug)]
pub struct Ticket {
    /// The (username, address) key, when the address is known.
    pair: Option<String>,
    /// The address's and the username's keys.
    others: Vec<String>,
    /// How long to wait before checking the password.
    pub delay: Duration,
}

/// Failure counts for the token endpoint.
#[derive(Debug)]
pub struct LoginThrottle {
    store: Arc<dyn Store>,
    limits: ThrottleLimits,
    /// Used when the store gives no answer.
    fallback: MemoryStore,
}

/// Usernames are client input: `{`/`}` would move the key's hash tag.
fn tag_safe(name: &str) -> String {
    name.chars()
        .map(|c| if c == '{' || c == '}' { '_' } else { c })
        .collect()
}

impl LoginThrottle {
    pub fn new(store: Arc<dyn Store>, limits: ThrottleLimits) -> Self {
        Self {
            store,
            limits,
            fallback: MemoryStore::default(),
        }
    }

    /// The keys of one login: (username, address), address, username. The limits
    /// are part of each key, so changed limits start from a clean count.
    fn keys(&self, username: &str, ip: Option<IpAddr>) -> [Option<String>; 3] {
        let l = &self.limits;
        let w = l.window.as_millis();
        let name = tag_safe(username);
        [
            ip.map(|ip| format!("fingate:login:{{u:{name}}}:ip:{ip}:{}/{w}", l.per_username)),
            ip.map(|ip| format!("fingate:login:{{ip:{ip}}}:{}/{w}", l.per_ip)),
            Some(format!(
                "fingate:login:{{u:{name}}}:all:{}/{w}",
                l.per_username
            )),
        ]
    }

    async fn take(&self, key: &str, limit: u32) -> Attempt {
        match self
            .store
            .take_attempt(key, limit, self.limits.window)
            .await
        {
            Ok(a) => a,
            Err(_) => self.fallback.take(key, limit, self.limits.window),
        }
    }

    async fn give_back(&self, key: &str) {
        if self.store.give_back_attempt(key).await.is_err() {
            self.fallback.give_back(key);
        }
    }

    /// Takes one attempt for a login of `username` from `ip` (unknown without a
    /// peer address: then only the username's delay applies).
    pub async fn admit(&self, username: &str, ip: Option<IpAddr>) -> Admission {
        let [pair, addr, user] = self.keys(username, ip);
        let mut retry_after = Duration::ZERO;
        for (key, limit) in [
            (&pair, self.limits.per_username),
            (&addr, self.limits.per_ip),
        ] {
            let Some(key) = key else { continue };
            let a = self.take(key, limit).await;
            if !a.allowed {
                retry_after = retry_after.max(a.reset);
            }
        }
        if !retry_after.is_zero() {
            // Refused attempts stay counted: hammering a refusal keeps it refused.
            return Admission::Refused { retry_after };
        }
        let mut delay = Duration::ZERO;
        let mut others: Vec<String> = addr.into_iter().collect();
        if let Some(key) = user {
            if !self.take(&key, self.limits.per_username).await.allowed {
                delay = MAX_DELAY;
            }
            others.push(key);
        }
        Admission::Check(Ticket {
            pair,
            others,
            delay,
        })
    }

    /// The password was right: the attempts go back, and the failures of this
    /// username from this address are forgotten.
    pub async fn succeeded(&self, ticket: Ticket) {
        if let Some(key) = &ticket.pair {
            let _ = self.store.delete(key).await;
            let _ = self.fallback.delete(key).await;
        }
        for key in &ticket.others {
            self.give_back(key).await;
        }
    }

    /// The password was never checked (the checks were saturated, the consumer
    /// store failed): the attempts go back.
    pub async fn unchecked(&self, ticket: Ticket) {
        for key in ticket.pair.iter().chain(&ticket.others) {
            self.give_back(key).await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::store::RedisStore;

    fn throttle(store: Arc<dyn Store>) -> LoginThrottle {
        let limits = ThrottleLimits {
            per_username: 3,
            per_ip: 5,
            window: Duration::from_secs(60),
        };
        LoginThrottle::new(store, limits)
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    async fn fail(t: &LoginThrottle, user: &str, from: Option<IpAddr>) -> bool {
        matches!(t.admit(user, from).await, Admission::Check(_))
    }

    #[tokio::test]
    async fn a_username_and_address_get_their_limit_of_checks_then_a_refusal() {
        let t = throttle(Arc::new(MemoryStore::default()));
        for _ in 0..3 {
            assert!(fail(&t, "a", ip("10.0.0.1")).await);
        }
        match t.admit("a", ip("10.0.0.1")).await {
            Admission::Refused { retry_after } => assert!(
                retry_after > Duration::from_secs(59) && retry_after <= Duration::from_secs(60),
                "{retry_after:?}"
            ),
            Admission::Check(_) => panic!("a fourth check"),
        }
    }

    #[tokio::test]
    async fn concurrent_attempts_get_no_more_checks_than_the_limit() {
        let t = Arc::new(throttle(Arc::new(MemoryStore::default())));
        let tasks: Vec<_> = (0..40)
            .map(|_| {
                let t = t.clone();
                tokio::spawn(async move { fail(&t, "a", ip("10.0.0.1")).await })
            })
            .collect();
        let mut checked = 0;
        for task in tasks {
            checked += usize::from(task.await.unwrap());
        }
        assert_eq!(checked, 3);
    }

    #[tokio::test]
    async fn failures_from_elsewhere_slow_a_username_down_but_never_refuse_it() {
        let t = throttle(Arc::new(MemoryStore::default()));
        for _ in 0..3 {
            assert!(fail(&t, "web-app", ip("10.0.0.1")).await);
        }
        match t.admit("web-app", ip("10.0.0.2")).await {
            Admission::Check(ticket) => assert_eq!(ticket.delay, MAX_DELAY),
            Admission::Refused { .. } => panic!("refused from an address that never failed"),
        }
    }

    #[tokio::test]
    async fn an_address_is_refused_after_its_limit_across_usernames() {
        let t = throttle(Arc::new(MemoryStore::default()));
        for i in 0..5 {
            assert!(fail(&t, &format!("u{i}"), ip("10.0.0.1")).await);
        }
        assert!(!fail(&t, "fresh", ip("10.0.0.1")).await);
        assert!(fail(&t, "fresh", ip("10.0.0.2")).await);
    }

    #[tokio::test]
    async fn success_gives_the_attempts_back_and_clears_the_pair() {
        let t = throttle(Arc::new(MemoryStore::default()));
        for _ in 0..2 {
            assert!(fail(&t, "a", ip("10.0.0.1")).await);
        }
        let Admission::Check(ticket) = t.admit("a", ip("10.0.0.1")).await else {
            panic!("refused");
        };
        t.succeeded(ticket).await;
        for _ in 0..3 {
            assert!(fail(&t, "a", ip("10.0.0.1")).await, "the pair starts again");
        }
        assert!(!fail(&t, "a", ip("10.0.0.1")).await);
    }

    #[tokio::test]
    async fn unchecked_attempts_are_given_back() {
        let t = throttle(Arc::new(MemoryStore::default()));
        for _ in 0..10 {
            let Admission::Check(ticket) = t.admit("a", ip("10.0.0.1")).await else {
                panic!("refused although nothing was checked");
            };
            t.unchecked(ticket).await;
        }
    }

    #[tokio::test]
    async fn braces_in_a_username_cannot_move_the_hash_tag() {
        let t = throttle(Arc::new(MemoryStore::default()));
        let [pair, _, user] = t.keys("x}:{ip:10.0.0.1", ip("10.0.0.9"));
        assert!(pair
            .unwrap()
            .starts_with("fingate:login:{u:x_:_ip:10.0.0.1}"));
        assert!(user
            .unwrap()
            .starts_with("fingate:login:{u:x_:_ip:10.0.0.1}"));
    }

    #[tokio::test]
    async fn failures_are_still_counted_while_the_store_is_down() {
        // Nothing listens on port 1: every store call fails at once.
        let down = RedisStore::open("redis://127.0.0.1:1/", Duration::from_millis(50));
        let t = throttle(down);
        for _ in 0..3 {
            assert!(fail(&t, "a", ip("10.0.0.1")).await);
        }
        assert!(!fail(&t, "a", ip("10.0.0.1")).await);
    }
}
