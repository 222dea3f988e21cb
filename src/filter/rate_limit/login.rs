//! Login protection for the token endpoint: counts failed logins per username and
//! per client IP in the store (so a fleet shares the count) and refuses further
//! attempts with 429 once either is over its allowance.
//!
//! GCRA with `burst: 0`: `max_failures` failures at once, then one more per
//! `per / max_failures`. When the store fails, a local limiter with the same
//! settings keeps counting, so guessing is still bounded.

use crate::store::{Algorithm, MemoryStore, Rule, Store};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
pub struct LoginThrottle {
    store: Arc<dyn Store>,
    rule: Rule,
    fallback: MemoryStore,
}

impl LoginThrottle {
    /// At most `max_failures` failed logins per `per` for one username, and the
    /// same for one IP. `max_failures` 0 is treated as 1.
    pub fn new(store: Arc<dyn Store>, max_failures: u32, per: Duration) -> Self {
        Self {
            store,
            rule: Rule {
                algorithm: Algorithm::Gcra,
                limit: max_failures.max(1),
                per,
                burst: 0,
            },
            fallback: MemoryStore::default(),
        }
    }

    fn keys(username: &str, ip: Option<IpAddr>) -> Vec<String> {
        // Usernames are client input: `{`/`}` would change the hash tag.
        let user: String = username
            .chars()
            .map(|c| if c == '{' || c == '}' { '_' } else { c })
            .collect();
        let mut keys = vec![format!("fingate:login:{{u:{user}}}")];
        if let Some(ip) = ip {
            keys.push(format!("fingate:login:{{ip:{ip}}}"));
        }
        keys
    }

    /// Call before checking the password. `Err(retry_after)` (answer 429 with
    /// `Retry-After`) when the username or the IP has failed too often. Counts nothing.
    pub async fn check(&self, username: &str, ip: Option<IpAddr>) -> Result<(), Duration> {
        let mut wait = Duration::ZERO;
        for key in Self::keys(username, ip) {
            let d = match self.store.rate_limit(&key, &self.rule, 0).await {
                Ok(d) => d,
                Err(_) => self.fallback.decide(&key, &self.rule, 0),
            };
            if !d.allowed {
                wait = wait.max(d.retry_after);
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait)
        }
    }

    /// Call after a failed login (unknown username or wrong password alike).
    pub async fn record_failure(&self, username: &str, ip: Option<IpAddr>) {
        for key in Self::keys(username, ip) {
            if self.store.rate_limit(&key, &self.rule, 1).await.is_err() {
                self.fallback.decide(&key, &self.rule, 1);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_after_max_failures_per_username_and_per_ip() {
        let t = LoginThrottle::new(Arc::new(MemoryStore::default()), 3, Duration::from_secs(60));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert!(t.check("alice", Some(ip)).await.is_ok());
            t.record_failure("alice", Some(ip)).await;
        }
        let wait = t.check("alice", None).await.unwrap_err();
        // 60 s / 3: one failure's allowance comes back after 20 s.
        assert!(
            wait > Duration::from_secs(19) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        // Another username from the same IP is refused too; another IP is not.
        assert!(t.check("bob", Some(ip)).await.is_err());
        assert!(t
            .check("bob", Some("10.0.0.2".parse().unwrap()))
            .await
            .is_ok());
    }
}
