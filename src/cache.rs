//! The response cache's storage: one process-wide, byte-bounded, in-memory store
//! shared by every route's `cache` filter, kept across reloads.
//!
//! Backed by `moka`: TinyLFU admission with LRU eviction (a one-off scan of
//! distinct keys cannot flush the entries that are actually hot), a weigher so
//! the bound is in bytes, per-entry expiry, and iteration for purges.
//! [`key`] builds keys, [`policy`] decides what is stored, [`lock`] coalesces
//! concurrent misses.

pub mod key;
pub mod lock;
pub mod policy;

use crate::metrics::metrics;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use moka::sync::Cache as Moka;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Default for the top-level `cache.max_size`.
pub const DEFAULT_MAX_SIZE: u64 = 256 * 1024 * 1024;

/// Bookkeeping bytes charged per entry besides its key, headers and body, so a
/// flood of tiny entries is bounded too.
const ENTRY_OVERHEAD: u64 = 160;

/// One stored item.
#[derive(Debug)]
pub struct Entry {
    /// The route configuration it was stored under (see [`Cache::retain`]).
    pub fingerprint: u64,
    /// The client-facing path, for purges by prefix.
    pub path: Box<str>,
    pub stored_at: Instant,
    pub ttl: Duration,
    pub kind: Kind,
}

#[derive(Debug)]
pub enum Kind {
    /// A complete response.
    Response(StoredResponse),
    /// The service answered with `Vary: names`: the responses are stored per
    /// variant, under [`key::variant`] keys.
    Vary(Vec<HeaderName>),
}

#[derive(Debug)]
pub struct StoredResponse {
    pub status: StatusCode,
    /// End-to-end headers as sent to the client, without framing (`Content-Length`
    /// is recomputed) and without `Age` / `X-Cache` (made per hit).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    /// The `Age` the response already had from a cache further up, in seconds.
    pub initial_age: u64,
}

impl Entry {
    fn weight(&self, key: &str) -> u32 {
        let own = match &self.kind {
            Kind::Response(r) => {
                let headers: usize = r
                    .headers
                    .iter()
                    .map(|(n, v)| n.as_str().len() + v.len())
                    .sum();
                r.body.len() + headers
            }
            Kind::Vary(names) => names.iter().map(|n| n.as_str().len()).sum(),
        };
        let total = ENTRY_OVERHEAD + (key.len() + self.path.len() + own) as u64;
        u32::try_from(total).unwrap_or(u32::MAX)
    }

    pub fn is_fresh(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.stored_at) < self.ttl
    }

    /// The `Age` to send: time in this cache plus what it had when stored.
    pub fn age(&self, now: Instant, initial: u64) -> u64 {
        now.saturating_duration_since(self.stored_at).as_secs() + initial
    }
}

/// Expiry per entry: its own ttl (the route's, shortened by the service).
struct PerEntryTtl;

impl moka::Expiry<String, Arc<Entry>> for PerEntryTtl {
    fn expire_after_create(&self, _: &String, e: &Arc<Entry>, _: Instant) -> Option<Duration> {
        Some(e.ttl)
    }
}

/// The store plus the locks of keys being filled.
pub struct Cache {
    store: Moka<String, Arc<Entry>>,
    locks: Arc<lock::LockTable>,
    max_size: u64,
}

/// Purges published by other gateways sharing the store land here.
impl crate::store::PurgeListener for Cache {
    fn purge(&self, prefix: Option<&str>) -> u64 {
        Cache::purge(self, prefix)
    }
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("max_size", &self.max_size)
            .field("entries", &self.store.entry_count())
            .finish()
    }
}

impl Cache {
    pub fn new(max_size: u64) -> Self {
        let store = Moka::builder()
            .max_capacity(max_size)
            .weigher(|k: &String, e: &Arc<Entry>| e.weight(k))
            .expire_after(PerEntryTtl)
            .build();
        Self {
            store,
            locks: Arc::default(),
            max_size,
        }
    }

    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    pub fn locks(&self) -> &Arc<lock::LockTable> {
        &self.locks
    }

    /// A fresh entry under `key`.
    pub fn get(&self, key: &str) -> Option<Arc<Entry>> {
        // moka expires on its own clock; checking here too keeps `ttl` exact.
        self.store.get(key).filter(|e| e.is_fresh(Instant::now()))
    }

    pub fn insert(&self, key: String, entry: Entry) {
        let weight = u64::from(entry.weight(&key));
        if weight > self.max_size {
            return;
        }
        self.store.insert(key, Arc::new(entry));
        // Eviction runs in batches; near the bound, run it now so the bound holds
        // at every moment rather than on average.
        if self.store.weighted_size() + weight > self.max_size {
            self.store.run_pending_tasks();
        }
        self.update_gauge();
    }

    /// Removes every entry (`prefix` None) or those whose path starts with
    /// `prefix`; returns how many were removed.
    pub fn purge(&self, prefix: Option<&str>) -> u64 {
        let purged = self.remove_where(|e| prefix.map_or(true, |p| e.path.starts_with(p)));
        self.update_gauge();
        purged
    }

    /// Drops the entries of route configurations that are gone (after a reload);
    /// unchanged routes keep theirs.
    pub fn retain(&self, live: &HashSet<u64>) {
        let dropped = self.remove_where(|e| !live.contains(&e.fingerprint));
        if dropped > 0 {
            tracing::info!(
                dropped,
                "cache entries of changed or removed routes dropped"
            );
        }
        self.update_gauge();
    }

    fn remove_where(&self, doomed: impl Fn(&Entry) -> bool) -> u64 {
        let keys: Vec<Arc<String>> = self
            .store
            .iter()
            .filter(|(_, e)| doomed(e))
            .map(|(k, _)| k)
            .collect();
        for k in &keys {
            self.store.invalidate(k.as_str());
        }
        self.store.run_pending_tasks();
        keys.len() as u64
    }

    /// Bytes held now (after pending evictions ran).
    pub fn bytes(&self) -> u64 {
        self.store.run_pending_tasks();
        self.store.weighted_size()
    }

    /// Entries held now (after pending evictions ran).
    pub fn entries(&self) -> u64 {
        self.store.run_pending_tasks();
        self.store.entry_count()
    }

    /// Brings `fingate_cache_bytes` up to date (also called before a scrape).
    pub fn update_gauge(&self) {
        let bytes = i64::try_from(self.store.weighted_size()).unwrap_or(i64::MAX);
        metrics().cache_bytes.set(bytes);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn response(path: &str, fingerprint: u64, body: usize, ttl: Duration) -> Entry {
        Entry {
            fingerprint,
            path: path.into(),
            stored_at: Instant::now(),
            ttl,
            kind: Kind::Response(StoredResponse {
                status: StatusCode::OK,
                headers: vec![(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain"),
                )],
                body: Bytes::from(vec![b'x'; body]),
                initial_age: 0,
            }),
        }
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn stores_and_expires_by_entry_ttl() {
        let c = Cache::new(1 << 20);
        c.insert("a".into(), response("/a", 1, 10, MIN));
        c.insert("b".into(), response("/b", 1, 10, Duration::from_millis(30)));
        assert!(c.get("a").is_some());
        assert!(c.get("b").is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(c.get("b").is_none());
        assert!(c.get("a").is_some());
    }

    #[test]
    fn byte_bound_holds_under_a_flood_of_distinct_keys() {
        let max = 64 * 1024;
        let c = Cache::new(max);
        for i in 0..2_000 {
            c.insert(format!("k{i}"), response(&format!("/p/{i}"), 1, 1000, MIN));
            assert!(c.store.weighted_size() <= max + 2 * 1200, "at {i}");
        }
        assert!(c.bytes() <= max, "{} > {max}", c.bytes());
        assert!(c.entries() > 10);
    }

    #[test]
    fn an_entry_larger_than_the_whole_cache_is_not_stored() {
        let c = Cache::new(1000);
        c.insert("big".into(), response("/big", 1, 2000, MIN));
        assert!(c.get("big").is_none());
    }

    #[test]
    fn purge_by_prefix_and_all() {
        let c = Cache::new(1 << 20);
        for p in ["/api/fx/EUR-USD", "/api/fx/GBP-USD", "/api/accounts/1"] {
            c.insert(p.into(), response(p, 1, 10, MIN));
        }
        assert_eq!(c.purge(Some("/api/fx/EUR")), 1);
        assert!(c.get("/api/fx/EUR-USD").is_none());
        assert!(c.get("/api/fx/GBP-USD").is_some());
        assert_eq!(c.purge(Some("/api/fx")), 1);
        assert!(c.get("/api/accounts/1").is_some());
        assert_eq!(c.purge(None), 1);
        assert_eq!(c.entries(), 0);
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn retain_keeps_only_live_route_generations() {
        let c = Cache::new(1 << 20);
        c.insert("old".into(), response("/a", 1, 10, MIN));
        c.insert("kept".into(), response("/b", 2, 10, MIN));
        c.retain(&HashSet::from([2]));
        assert!(c.get("old").is_none());
        assert!(c.get("kept").is_some());
    }

    #[test]
    fn age_counts_time_held_plus_initial_age() {
        let mut e = response("/a", 1, 1, MIN);
        e.stored_at = Instant::now() - Duration::from_millis(2500);
        assert_eq!(e.age(Instant::now(), 3), 5);
    }
}
