//! Keys known to be over their limit, with the instant they may pass again.
//!
//! A refused request does not change limiter state (GCRA and the window counter
//! both leave it untouched), and other instances can only use more of the
//! allowance, never give it back; so answering 429 from here until `until` is the
//! answer the store would give, without the round trip. Bounded: sharded maps
//! with a per-shard cap, expired entries dropped first.

use crate::store::Decision;
use foldhash::fast::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SHARDS: usize = 16;
const SHARD_CAP: usize = 4_096;

#[derive(Debug, Clone, Copy)]
struct Refusal {
    until: Instant,
    reset_at: Instant,
}

#[derive(Debug)]
pub struct RefusedKeys {
    // Every request on the route looks its key up here: a fast hasher, randomly
    // seeded (std's SipHash was a visible share of the rate-limit filter's cost).
    // The shard is chosen with a seed of its own: with the maps' seed, every key
    // of a shard would share the low bits the map places it by.
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<String, Refusal, RandomState>>>,
}

impl Default for RefusedKeys {
    fn default() -> Self {
        Self {
            hasher: RandomState::default(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl RefusedKeys {
    fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, HashMap<String, Refusal, RandomState>> {
        let i = (self.hasher.hash_one(key) as usize) % self.shards.len();
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The refusal to repeat for `key`, if it is still over its limit.
    pub fn check(&self, key: &str, now: Instant) -> Option<Decision> {
        let mut map = self.shard(key);
        let r = *map.get(key)?;
        if r.until <= now {
            map.remove(key);
            return None;
        }
        Some(Decision {
            allowed: false,
            granted: 0,
            remaining: 0,
            reset: r.reset_at.saturating_duration_since(now),
            retry_after: r.until - now,
        })
    }

    /// Remembers a refusal from the store.
    pub fn remember(&self, key: &str, decision: &Decision, now: Instant) {
        if decision.allowed || decision.retry_after.is_zero() {
            return;
        }
        let mut map = self.shard(key);
        if map.len() >= SHARD_CAP && !map.contains_key(key) {
            map.retain(|_, r| r.until > now);
            if map.len() >= SHARD_CAP {
                // Full of live refusals: forgetting one only costs a store round trip.
                return;
            }
        }
        map.insert(
            key.to_owned(),
            Refusal {
                until: now + decision.retry_after,
                reset_at: now + decision.reset.max(Duration::ZERO),
            },
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn refused(retry_ms: u64) -> Decision {
        Decision {
            allowed: false,
            granted: 0,
            remaining: 0,
            reset: Duration::from_millis(retry_ms * 2),
            retry_after: Duration::from_millis(retry_ms),
        }
    }

    #[test]
    fn remembers_until_the_retry_instant() {
        let keys = RefusedKeys::default();
        let now = Instant::now();
        keys.remember("a", &refused(100), now);
        let d = keys.check("a", now + Duration::from_millis(40)).unwrap();
        assert_eq!(d.retry_after, Duration::from_millis(60));
        assert!(keys.check("a", now + Duration::from_millis(100)).is_none());
        assert!(keys.check("b", now).is_none());
    }

    #[test]
    fn stays_bounded() {
        let keys = RefusedKeys::default();
        let now = Instant::now();
        for i in 0..(SHARDS * SHARD_CAP * 2) {
            keys.remember(&format!("k{i}"), &refused(10_000), now);
        }
        let total: usize = keys.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(total <= SHARDS * SHARD_CAP);
    }
}
