//! Refusing logins for a username or a client address that keeps failing, counted
//! with the rate-limit machinery in the shared store so a fleet counts together.
//!
//! Each subject has a GCRA limit with no burst: `username_failures` (or
//! `ip_failures`) failed logins at once, then one more per `window / failures`. A
//! correct password clears the username's count. When the store fails, a local
//! limiter with the same settings keeps counting, so guessing stays bounded.

use crate::store::{Algorithm, MemoryStore, Rule, Store};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Who is failing: a username (known or not) or a client address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Username(String),
    Ip(IpAddr),
}

/// Limits: failures allowed per window before logins are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleLimits {
    pub per_username: u32,
    pub per_ip: u32,
    pub window: Duration,
}

/// Failure counts for the token endpoint.
#[derive(Debug)]
pub struct LoginThrottle {
    store: Arc<dyn Store>,
    per_username: Rule,
    per_ip: Rule,
    /// Used when the store gives no answer.
    fallback: MemoryStore,
}

fn rule(failures: u32, window: Duration) -> Rule {
    Rule {
        algorithm: Algorithm::Gcra,
        limit: failures.max(1),
        per: window,
        burst: 0,
    }
}

impl LoginThrottle {
    pub fn new(store: Arc<dyn Store>, limits: ThrottleLimits) -> Self {
        Self {
            store,
            per_username: rule(limits.per_username, limits.window),
            per_ip: rule(limits.per_ip, limits.window),
            fallback: MemoryStore::default(),
        }
    }

    /// The subject's store key and rule. The rule's tag is part of the key, so
    /// changed limits start from a clean count instead of misreading old state.
    fn key(&self, subject: &Subject) -> (String, &Rule) {
        match subject {
            Subject::Username(name) => {
                // Usernames are client input: `{`/`}` would move the hash tag.
                let name: String = name
                    .chars()
                    .map(|c| if c == '{' || c == '}' { '_' } else { c })
                    .collect();
                let r = &self.per_username;
                (format!("fingate:login:{{u:{name}}}:{}", r.tag()), r)
            }
            Subject::Ip(ip) => {
                let r = &self.per_ip;
                (format!("fingate:login:{{ip:{ip}}}:{}", r.tag()), r)
            }
        }
    }

    /// `Some(retry_after)` when any of `subjects` has failed too often. Counts nothing.
    pub async fn blocked(&self, subjects: &[Subject]) -> Option<Duration> {
        let mut wait = Duration::ZERO;
        for s in subjects {
            let (key, rule) = self.key(s);
            let d = match self.store.rate_limit(&key, rule, 0).await {
                Ok(d) => d,
                Err(_) => self.fallback.decide(&key, rule, 0),
            };
            if !d.allowed {
                wait = wait.max(d.retry_after);
            }
        }
        (!wait.is_zero()).then_some(wait)
    }

    /// Counts one failure against each subject (unknown username or wrong password alike).
    pub async fn failed(&self, subjects: &[Subject]) {
        for s in subjects {
            let (key, rule) = self.key(s);
            if self.store.rate_limit(&key, rule, 1).await.is_err() {
                self.fallback.decide(&key, rule, 1);
            }
        }
    }

    /// A correct password clears the username's count (not the address's).
    pub async fn succeeded(&self, username: &str) {
        let (key, _) = self.key(&Subject::Username(username.to_owned()));
        let _ = self.store.delete(&key).await;
        let _ = self.fallback.delete(&key).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
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

    fn user(name: &str) -> Subject {
        Subject::Username(name.into())
    }

    #[tokio::test]
    async fn a_username_is_blocked_after_its_limit_and_one_failure_returns_per_interval() {
        let t = throttle(Arc::new(MemoryStore::default()));
        for _ in 0..3 {
            assert!(t.blocked(&[user("a")]).await.is_none());
            t.failed(&[user("a")]).await;
        }
        let wait = t.blocked(&[user("a")]).await.unwrap();
        // 60 s / 3 failures: one failure's allowance comes back after 20 s.
        assert!(
            wait > Duration::from_secs(19) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(t.blocked(&[user("b")]).await.is_none());
    }

    #[tokio::test]
    async fn an_address_counts_failures_across_usernames() {
        let t = throttle(Arc::new(MemoryStore::default()));
        let ip = Subject::Ip("10.0.0.1".parse().unwrap());
        for i in 0..5 {
            t.failed(&[user(&format!("u{i}")), ip.clone()]).await;
        }
        assert!(t.blocked(&[user("fresh"), ip]).await.is_some());
        let other = Subject::Ip("10.0.0.2".parse().unwrap());
        assert!(t.blocked(&[user("fresh"), other]).await.is_none());
    }

    #[tokio::test]
    async fn success_clears_the_username() {
        let t = throttle(Arc::new(MemoryStore::default()));
        for _ in 0..3 {
            t.failed(&[user("a")]).await;
        }
        assert!(t.blocked(&[user("a")]).await.is_some());
        t.succeeded("a").await;
        assert!(t.blocked(&[user("a")]).await.is_none());
    }

    #[tokio::test]
    async fn braces_in_a_username_cannot_move_the_hash_tag() {
        let t = throttle(Arc::new(MemoryStore::default()));
        let (key, _) = t.key(&user("x}:{ip:10.0.0.1"));
        assert!(
            key.starts_with("fingate:login:{u:x_:_ip:10.0.0.1}"),
            "{key}"
        );
    }

    #[tokio::test]
    async fn failures_are_still_counted_while_the_store_is_down() {
        // Nothing listens on port 1: every store call fails at once.
        let down = RedisStore::open("redis://127.0.0.1:1/", Duration::from_millis(50));
        let t = throttle(down);
        for _ in 0..3 {
            t.failed(&[user("a")]).await;
        }
        assert!(t.blocked(&[user("a")]).await.is_some());
    }
}
