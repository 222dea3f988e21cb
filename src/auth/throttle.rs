//! Refusing logins for a username or a client address that keeps failing.
//!
//! [`LoginThrottle`] is the seam: [`MemoryThrottle`] counts in this process; a
//! shared-store version (e.g. the rate-limit store's fixed window in Redis) can
//! replace it so a fleet counts together.

use async_trait::async_trait;
use std::collections::HashMap;
use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Who is failing: a username (known or not) or a client address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Username(String),
    Ip(IpAddr),
}

/// Counts failed logins per subject in a fixed window.
#[async_trait]
pub trait LoginThrottle: Send + Sync + Debug {
    /// `Some(retry_after)` when any of `subjects` is over its limit now.
    async fn blocked(&self, subjects: &[Subject]) -> Option<Duration>;
    /// Counts one failure against each subject.
    async fn failed(&self, subjects: &[Subject]);
    /// A correct password clears the username's count (not the address's).
    async fn succeeded(&self, username: &str);
}

/// Limits: failures allowed per window before logins are refused until it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleLimits {
    pub per_username: u32,
    pub per_ip: u32,
    pub window: Duration,
}

/// Above this many tracked subjects, expired entries are swept; a flood of
/// invented usernames cannot grow memory without bound.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug)]
struct Window {
    failures: u32,
    started: Instant,
}

/// Failure counts in this process.
#[derive(Debug)]
pub struct MemoryThrottle {
    limits: ThrottleLimits,
    windows: Mutex<HashMap<Subject, Window>>,
}

impl MemoryThrottle {
    pub fn new(limits: ThrottleLimits) -> Self {
        Self {
            limits,
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn limit(&self, s: &Subject) -> u32 {
        match s {
            Subject::Username(_) => self.limits.per_username,
            Subject::Ip(_) => self.limits.per_ip,
        }
    }

    fn blocked_at(&self, subjects: &[Subject], now: Instant) -> Option<Duration> {
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        subjects
            .iter()
            .filter_map(|s| {
                let w = windows.get(s)?;
                let left = self.limits.window.checked_sub(now - w.started)?;
                (w.failures >= self.limit(s) && !left.is_zero()).then_some(left)
            })
            .max()
    }

    fn failed_at(&self, subjects: &[Subject], now: Instant) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() >= MAX_ENTRIES {
            let window = self.limits.window;
            windows.retain(|_, w| now - w.started < window);
        }
        for s in subjects {
            if windows.len() >= MAX_ENTRIES && !windows.contains_key(s) {
                continue;
            }
            let w = windows.entry(s.clone()).or_insert(Window {
                failures: 0,
                started: now,
            });
            if now - w.started >= self.limits.window {
                *w = Window {
                    failures: 0,
                    started: now,
                };
            }
            w.failures = w.failures.saturating_add(1);
        }
    }
}

#[async_trait]
impl LoginThrottle for MemoryThrottle {
    async fn blocked(&self, subjects: &[Subject]) -> Option<Duration> {
        self.blocked_at(subjects, Instant::now())
    }
    async fn failed(&self, subjects: &[Subject]) {
        self.failed_at(subjects, Instant::now());
    }
    async fn succeeded(&self, username: &str) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        windows.remove(&Subject::Username(username.to_owned()));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn throttle() -> MemoryThrottle {
        MemoryThrottle::new(ThrottleLimits {
            per_username: 3,
            per_ip: 5,
            window: Duration::from_secs(60),
        })
    }

    #[test]
    fn a_username_is_blocked_after_its_limit_until_the_window_ends() {
        let t = throttle();
        let now = Instant::now();
        let who = [Subject::Username("a".into())];
        for _ in 0..3 {
            assert!(t.blocked_at(&who, now).is_none());
            t.failed_at(&who, now);
        }
        let left = t.blocked_at(&who, now + Duration::from_secs(10)).unwrap();
        assert_eq!(left, Duration::from_secs(50));
        assert!(t.blocked_at(&who, now + Duration::from_secs(60)).is_none());
        assert!(t
            .blocked_at(&[Subject::Username("b".into())], now)
            .is_none());
    }

    #[test]
    fn an_address_counts_failures_across_usernames() {
        let t = throttle();
        let now = Instant::now();
        let ip = Subject::Ip("10.0.0.1".parse().unwrap());
        for i in 0..5 {
            t.failed_at(&[Subject::Username(format!("u{i}")), ip.clone()], now);
        }
        assert!(t
            .blocked_at(&[Subject::Username("fresh".into()), ip], now)
            .is_some());
    }

    #[tokio::test]
    async fn success_clears_the_username() {
        let t = throttle();
        let who = [Subject::Username("a".into())];
        for _ in 0..3 {
            t.failed(&who).await;
        }
        assert!(t.blocked(&who).await.is_some());
        t.succeeded("a").await;
        assert!(t.blocked(&who).await.is_none());
    }
}
