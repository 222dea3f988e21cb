//! Tokens already verified: a client sends the same bearer token with every request
//! until it expires, so the signature and claims are checked on its first request
//! and looked up by the whole token afterwards (Envoy's `jwt_authn` keeps such a
//! cache too).
//!
//! What makes this safe:
//! - the key is the whole token, compared byte for byte: a token that differs in
//!   any byte (another signature, claim or header) is verified from scratch;
//! - an entry never outlives the token's `exp` (verification would accept a token
//!   up to `leeway` later; the cache does not), whatever the capacity;
//! - only tokens that passed verification are stored, so a client cannot fill it
//!   with made-up tokens; and it is bounded: a full shard first drops its expired
//!   entries, then an arbitrary one;
//! - the cache belongs to the filter built from one config: a reload (new keys,
//!   issuers, audiences) starts an empty one. Checks that are not about the token
//!   itself (revocation, scopes of the route) run on every request, hit or miss.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;

/// Shards, so that worker threads rarely wait on each other's lookups.
const SHARDS: usize = 8;

/// A bounded map from token to what its verification found.
#[derive(Debug)]
pub struct VerifiedTokens<T> {
    shards: Box<[Mutex<Shard<T>>]>,
    hasher: foldhash::fast::RandomState,
    per_shard: usize,
}

#[derive(Debug)]
struct Shard<T> {
    entries: HashMap<Box<str>, Entry<T>, foldhash::fast::RandomState>,
}

#[derive(Debug)]
struct Entry<T> {
    value: T,
    /// Unix seconds: the entry is used while `now < until`.
    until: u64,
}

impl<T: Clone> VerifiedTokens<T> {
    /// A cache of about `capacity` tokens (at least one per shard).
    pub fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    entries: HashMap::with_hasher(foldhash::fast::RandomState::default()),
                })
            })
            .collect();
        Self {
            shards,
            hasher: foldhash::fast::RandomState::default(),
            per_shard,
        }
    }

    fn shard(&self, token: &str) -> &Mutex<Shard<T>> {
        let i = (self.hasher.hash_one(token) as usize) % self.shards.len();
        &self.shards[i]
    }

    /// What verifying `token` found, if it is here and still valid at `now`.
    pub fn get(&self, token: &str, now: u64) -> Option<T> {
        let mut shard = self.shard(token).lock().ok()?;
        match shard.entries.get(token) {
            Some(e) if now < e.until => Some(e.value.clone()),
            Some(_) => {
                shard.entries.remove(token);
                None
            }
            None => None,
        }
    }

    /// Keeps what verifying `token` found until `until` (its `exp`).
    pub fn insert(&self, token: &str, value: T, until: u64, now: u64) {
        if now >= until {
            return;
        }
        let Ok(mut shard) = self.shard(token).lock() else {
            return;
        };
        if shard.entries.len() >= self.per_shard && !shard.entries.contains_key(token) {
            shard.entries.retain(|_, e| now < e.until);
            if shard.entries.len() >= self.per_shard {
                let victim = shard.entries.keys().next().cloned();
                if let Some(victim) = victim {
                    shard.entries.remove(&victim);
                }
            }
        }
        shard
            .entries
            .insert(Box::from(token), Entry { value, until });
    }

    /// Tokens held (tests and metrics).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .filter_map(|s| s.lock().ok().map(|s| s.entries.len()))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_found_until_its_expiry_and_not_after() {
        let c = VerifiedTokens::new(100);
        c.insert("a.b.c", 7, 1_000, 900);
        assert_eq!(c.get("a.b.c", 900), Some(7));
        assert_eq!(c.get("a.b.c", 999), Some(7));
        assert_eq!(c.get("a.b.c", 1_000), None, "not at exp");
        assert_eq!(c.get("a.b.c", 999), None, "an expired entry is dropped");
        assert!(c.is_empty());
    }

    #[test]
    fn only_the_same_token_byte_for_byte_hits() {
        let c = VerifiedTokens::new(100);
        c.insert("header.claims.signature", 1, 1_000, 0);
        assert_eq!(c.get("header.claims.signaturE", 1), None);
        assert_eq!(c.get("header.claims.signatur", 1), None);
        assert_eq!(c.get("header.claims.signature", 1), Some(1));
    }

    #[test]
    fn an_expired_token_is_not_stored() {
        let c = VerifiedTokens::new(100);
        c.insert("t", 1, 1_000, 1_000);
        assert!(c.is_empty());
    }

    #[test]
    fn it_stays_within_its_capacity_dropping_expired_entries_first() {
        let c = VerifiedTokens::new(SHARDS * 4);
        for i in 0..1_000 {
            c.insert(&format!("t{i}"), i, 2_000, 0);
        }
        assert!(c.len() <= SHARDS * 4, "{} entries", c.len());
        // A shard full of entries expiring at 10 takes new ones at 10 by dropping them.
        let c = VerifiedTokens::new(SHARDS);
        for i in 0..100 {
            c.insert(&format!("old{i}"), i, 10, 0);
        }
        c.insert("new", 1, 2_000, 10);
        assert_eq!(c.get("new", 10), Some(1));
        assert!(c.len() <= SHARDS);
    }
}
