//! The in-process store: sharded maps with expiry and a size cap, so a flood of
//! distinct keys cannot grow memory without bound.

use super::attempts::{self, Attempt};
use super::idempotency::{Claim, Record};
use super::limit::{self, Algorithm, Decision, Rule, Window};
use super::{now_us, Revocation, RevocationSet, Store, StoreError};
use crate::store::StoreBackend;
use async_trait::async_trait;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SHARDS: usize = 16;
/// Per shard; at the cap expired entries are dropped first, then arbitrary ones.
const SHARD_CAP: usize = 16_384;

#[derive(Debug, Clone)]
enum Value {
    Bytes(Vec<u8>),
    Gcra(i64),
    Window(Window),
    Attempts(u64),
}

#[derive(Debug, Clone)]
struct Entry {
    value: Value,
    /// µs since the epoch; `i64::MAX` for no expiry.
    expires: i64,
}

/// State held in this process only. Also the rate limiter's local fallback.
#[derive(Debug)]
pub struct MemoryStore {
    shards: Vec<Mutex<HashMap<String, Entry>>>,
    /// Maps live apart from the bounded shards: they hold records written by
    /// operators (never by clients), which the size cap must not evict.
    maps: Mutex<HashMap<String, BTreeMap<String, Vec<u8>>>>,
    /// Idempotency records live apart from the shards too: the shards' cap evicts
    /// arbitrary entries, and an evicted record would let a retry run twice. They
    /// have their own bounds instead ([`IDEMPOTENCY_MAX_RECORDS`],
    /// [`IDEMPOTENCY_MAX_BYTES`]): once reached (expired records dropped first), a
    /// new claim or a completion fails, and the filter's `on_store_error` decides.
    idempotency: Mutex<IdempotencyRecords>,
    /// Revocations: in this process, the set the `jwt` filter reads is the state.
    revocations: Arc<RevocationSet>,
}

/// Most idempotency records (in flight or done) held at once.
pub const IDEMPOTENCY_MAX_RECORDS: usize = 100_000;
/// Most bytes of stored answers held at once.
pub const IDEMPOTENCY_MAX_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Default)]
struct IdempotencyRecords {
    records: HashMap<String, Record>,
    /// Sum of the stored answers' lengths.
    bytes: usize,
}

impl IdempotencyRecords {
    /// The live record of `key`, dropping it when expired.
    fn live(&mut self, key: &str, now: i64) -> Option<&mut Record> {
        if self.records.get(key).is_some_and(|r| r.expires <= now) {
            self.remove(key);
        }
        self.records.get_mut(key)
    }

    fn remove(&mut self, key: &str) {
        if let Some(r) = self.records.remove(key) {
            self.bytes -= r.answer_len();
        }
    }

    fn drop_expired(&mut self, now: i64) {
        let mut freed = 0;
        self.records.retain(|_, r| {
            let keep = r.expires > now;
            if !keep {
                freed += r.answer_len();
            }
            keep
        });
        self.bytes -= freed;
    }
}

fn full(what: &str) -> StoreError {
    StoreError::Failed(format!(
        "the memory store holds its most idempotency {what}; they free up as they expire"
    ))
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            maps: Mutex::new(HashMap::new()),
            idempotency: Mutex::new(IdempotencyRecords::default()),
            revocations: RevocationSet::new(),
        }
    }
}

impl MemoryStore {
    fn with_shard<R>(&self, key: &str, f: impl FnOnce(&mut HashMap<String, Entry>) -> R) -> R {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let i = (h.finish() as usize) % self.shards.len();
        // A poisoned shard only means another thread panicked mid-update of plain data.
        let mut map = self.shards[i].lock().unwrap_or_else(|p| p.into_inner());
        f(&mut map)
    }

    /// A live entry's value, or None (dropping it when expired).
    fn live(map: &mut HashMap<String, Entry>, key: &str, now: i64) -> Option<Value> {
        match map.get(key) {
            Some(e) if e.expires > now => Some(e.value.clone()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    fn insert(map: &mut HashMap<String, Entry>, key: &str, entry: Entry, now: i64) {
        if map.len() >= SHARD_CAP && !map.contains_key(key) {
            map.retain(|_, e| e.expires > now);
            if map.len() >= SHARD_CAP {
                if let Some(victim) = map.keys().next().cloned() {
                    map.remove(&victim);
                }
            }
        }
        map.insert(key.to_owned(), entry);
    }

    /// [`Store::take_attempt`], synchronously: also the login throttle's fallback.
    pub fn take(&self, key: &str, limit: u32, window: Duration) -> Attempt {
        let now = now_us();
        self.with_shard(key, |map| {
            let state = match map.get(key) {
                Some(Entry {
                    value: Value::Attempts(n),
                    expires,
                }) if *expires > now => Some((*n, *expires)),
                _ => None,
            };
            let (attempt, (count, expires)) = attempts::take(state, now, limit, window);
            let entry = Entry {
                value: Value::Attempts(count),
                expires,
            };
            Self::insert(map, key, entry, now);
            attempt
        })
    }

    /// [`Store::give_back_attempt`], synchronously.
    pub fn give_back(&self, key: &str) {
        self.with_shard(key, |map| match map.get_mut(key) {
            Some(Entry {
                value: Value::Attempts(n),
                ..
            }) if *n > 1 => *n -= 1,
            Some(Entry {
                value: Value::Attempts(_),
                ..
            }) => {
                map.remove(key);
            }
            _ => {}
        });
    }

    fn idempotency_records(&self) -> std::sync::MutexGuard<'_, IdempotencyRecords> {
        self.idempotency.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// [`Store::idempotency_claim`], synchronously.
    pub fn claim(
        &self,
        key: &str,
        fingerprint: &str,
        token: &str,
        hold: Duration,
    ) -> Result<Claim, StoreError> {
        let now = now_us();
        let mut all = self.idempotency_records();
        let (claim, new) = Record::claim(
            all.live(key, now).map(|r| &*r),
            now,
            fingerprint,
            token,
            hold,
        );
        if let Some(record) = new {
            if all.records.len() >= IDEMPOTENCY_MAX_RECORDS {
                all.drop_expired(now);
                if all.records.len() >= IDEMPOTENCY_MAX_RECORDS {
                    return Err(full("records"));
                }
            }
            all.records.insert(key.to_owned(), record);
        }
        Ok(claim)
    }

    /// [`Store::idempotency_complete`], synchronously.
    pub fn complete(
        &self,
        key: &str,
        token: &str,
        answer: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = now_us();
        let mut all = self.idempotency_records();
        if !all.live(key, now).is_some_and(|r| r.held_by(token)) {
            return Ok(false);
        }
        if all.bytes + answer.len() > IDEMPOTENCY_MAX_BYTES {
            all.drop_expired(now);
            if all.bytes + answer.len() > IDEMPOTENCY_MAX_BYTES {
                return Err(full("answer bytes"));
            }
        }
        let stored = all
            .live(key, now)
            .is_some_and(|r| r.complete(now, token, answer, ttl));
        if stored {
            all.bytes += answer.len();
        }
        Ok(stored)
    }

    /// [`Store::idempotency_release`], synchronously.
    pub fn release(&self, key: &str, token: &str) -> bool {
        let now = now_us();
        let mut all = self.idempotency_records();
        let held = all.live(key, now).is_some_and(|r| r.held_by(token));
        if held {
            all.remove(key);
        }
        held
    }

    /// The decision, synchronously (the trait method wraps it).
    pub fn decide(&self, key: &str, rule: &Rule, cost: u32) -> Decision {
        let now = now_us();
        self.with_shard(key, |map| {
            let state = Self::live(map, key, now);
            match rule.algorithm {
                Algorithm::Gcra => {
                    let tat = match state {
                        Some(Value::Gcra(t)) => Some(t),
                        _ => None,
                    };
                    let (d, write) = limit::gcra(tat, now, rule, cost);
                    if let Some(t) = write {
                        let entry = Entry {
                            value: Value::Gcra(t),
                            expires: t + 1_000,
                        };
                        Self::insert(map, key, entry, now);
                    }
                    d
                }
                Algorithm::SlidingWindow => {
                    let w = match state {
                        Some(Value::Window(w)) => Some(w),
                        _ => None,
                    };
                    let (d, write) = limit::sliding_window(w, now, rule, cost);
                    if let Some((w, ttl)) = write {
                        let entry = Entry {
                            value: Value::Window(w),
                            expires: now + ttl + 1_000,
                        };
                        Self::insert(map, key, entry, now);
                    }
                    d
                }
            }
        })
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn backend(&self) -> StoreBackend {
        StoreBackend::Memory
    }

    async fn rate_limit(&self, key: &str, rule: &Rule, cost: u32) -> Result<Decision, StoreError> {
        Ok(self.decide(key, rule, cost))
    }

    async fn take_attempt(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> Result<Attempt, StoreError> {
        Ok(self.take(key, limit, window))
    }

    async fn give_back_attempt(&self, key: &str) -> Result<(), StoreError> {
        self.give_back(key);
        Ok(())
    }

    async fn idempotency_claim(
        &self,
        key: &str,
        fingerprint: &str,
        token: &str,
        hold: Duration,
    ) -> Result<Claim, StoreError> {
        self.claim(key, fingerprint, token, hold)
    }

    async fn idempotency_complete(
        &self,
        key: &str,
        token: &str,
        answer: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.complete(key, token, answer, ttl)
    }

    async fn idempotency_release(&self, key: &str, token: &str) -> Result<bool, StoreError> {
        Ok(self.release(key, token))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let now = now_us();
        Ok(self.with_shard(key, |map| match Self::live(map, key, now) {
            Some(Value::Bytes(b)) => Some(b),
            _ => None,
        }))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        let now = now_us();
        let expires = ttl.map_or(i64::MAX, |t| {
            now.saturating_add(i64::try_from(t.as_micros()).unwrap_or(i64::MAX))
        });
        let entry = Entry {
            value: Value::Bytes(value.to_vec()),
            expires,
        };
        self.with_shard(key, |map| Self::insert(map, key, entry, now));
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let now = now_us();
        Ok(self.with_shard(key, |map| {
            let existed = Self::live(map, key, now).is_some();
            map.remove(key);
            existed
        }))
    }

    async fn map_get(&self, map: &str, field: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        Ok(maps.get(map).and_then(|m| m.get(field)).cloned())
    }

    async fn map_insert_new(
        &self,
        map: &str,
        field: &str,
        value: &[u8],
    ) -> Result<bool, StoreError> {
        let mut maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        let m = maps.entry(map.to_owned()).or_default();
        if m.contains_key(field) {
            return Ok(false);
        }
        m.insert(field.to_owned(), value.to_vec());
        Ok(true)
    }

    async fn map_remove(&self, map: &str, field: &str) -> Result<bool, StoreError> {
        let mut maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        Ok(maps.get_mut(map).is_some_and(|m| m.remove(field).is_some()))
    }

    async fn map_entries(&self, map: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        Ok(maps
            .get(map)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }

    async fn revoke(&self, revocation: &Revocation) -> Result<(), StoreError> {
        self.revocations.apply(revocation.clone());
        Ok(())
    }

    fn revocations(&self) -> Arc<RevocationSet> {
        self.revocations.clone()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn get_set_delete_and_expiry() {
        let s = MemoryStore::default();
        s.set("a", b"1", None).await.unwrap();
        s.set("b", b"2", Some(Duration::from_millis(20)))
            .await
            .unwrap();
        assert_eq!(s.get("a").await.unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.get("b").await.unwrap(), Some(b"2".to_vec()));
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(s.get("b").await.unwrap(), None);
        assert!(s.delete("a").await.unwrap());
        assert!(!s.delete("a").await.unwrap());
    }

    #[tokio::test]
    async fn maps_insert_only_new_fields_and_list_them() {
        let s = MemoryStore::default();
        assert!(s.map_insert_new("m", "a", b"1").await.unwrap());
        assert!(!s.map_insert_new("m", "a", b"2").await.unwrap());
        assert!(s.map_insert_new("m", "b", b"3").await.unwrap());
        assert_eq!(s.map_get("m", "a").await.unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.map_get("other", "a").await.unwrap(), None);
        assert_eq!(s.map_entries("m").await.unwrap().len(), 2);
        assert!(s.map_remove("m", "a").await.unwrap());
        assert!(!s.map_remove("m", "a").await.unwrap());
        assert_eq!(
            s.map_entries("m").await.unwrap(),
            vec![("b".to_owned(), b"3".to_vec())]
        );
    }

    #[test]
    fn idempotency_records_claim_complete_release_and_expire() {
        let s = MemoryStore::default();
        let hold = Duration::from_millis(30);
        let day = Duration::from_secs(86_400);
        assert_eq!(s.claim("k", "fp", "t1", hold).unwrap(), Claim::New);
        assert!(matches!(
            s.claim("k", "fp", "t2", hold).unwrap(),
            Claim::InFlight { expires_in } if expires_in <= hold
        ));
        assert_eq!(s.claim("k", "fp2", "t2", hold).unwrap(), Claim::Mismatch);
        assert!(!s.complete("k", "t2", b"x", day).unwrap(), "not the holder");
        assert!(s.complete("k", "t1", b"answer", day).unwrap());
        assert_eq!(s.idempotency_records().bytes, 6);
        assert_eq!(
            s.claim("k", "fp", "t3", hold).unwrap(),
            Claim::Done(b"answer".to_vec())
        );
        assert!(!s.release("k", "t1"), "a done key stays");
        // A hold expires by itself: the key is free again, and the old holder
        // can neither complete nor release what a new claim took.
        assert_eq!(s.claim("j", "fp", "t1", hold).unwrap(), Claim::New);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(s.claim("j", "fp", "t2", hold).unwrap(), Claim::New);
        assert!(!s.complete("j", "t1", b"late", day).unwrap());
        assert!(!s.release("j", "t1"));
        assert!(s.release("j", "t2"));
        assert_eq!(s.claim("j", "other", "t3", hold).unwrap(), Claim::New);
    }

    #[test]
    fn idempotency_records_are_bounded_without_evicting_live_ones() {
        let s = MemoryStore::default();
        let hold = Duration::from_secs(60);
        for i in 0..IDEMPOTENCY_MAX_RECORDS {
            assert_eq!(
                s.claim(&format!("k{i}"), "fp", "t", hold).unwrap(),
                Claim::New
            );
        }
        assert!(s.claim("one-more", "fp", "t", hold).is_err());
        assert!(
            matches!(
                s.claim("k0", "fp", "t2", hold).unwrap(),
                Claim::InFlight { .. }
            ),
            "the first record is still there"
        );
        assert!(s.release("k0", "t"));
        assert_eq!(s.claim("one-more", "fp", "t", hold).unwrap(), Claim::New);
        let big = vec![0u8; IDEMPOTENCY_MAX_BYTES / 2 + 1];
        assert!(s.complete("k1", "t", &big, hold).unwrap());
        assert!(
            s.complete("k2", "t", &big, hold).is_err(),
            "over the byte budget"
        );
        assert!(matches!(
            s.claim("k2", "fp", "t2", hold).unwrap(),
            Claim::InFlight { .. }
        ));
    }

    #[test]
    fn the_map_stays_bounded() {
        let s = MemoryStore::default();
        let r = Rule {
            algorithm: Algorithm::Gcra,
            limit: 1,
            per: Duration::from_secs(3600),
            burst: 0,
        };
        for i in 0..(SHARDS * SHARD_CAP + 5_000) {
            s.decide(&format!("k{i}"), &r, 1);
        }
        let total: usize = s.shards.iter().map(|m| m.lock().unwrap().len()).sum();
        assert!(total <= SHARDS * SHARD_CAP, "{total}");
    }
}
