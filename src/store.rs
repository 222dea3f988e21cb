//! The shared-state seam: rate-limit counters, run-time consumers, cache purges,
//! idempotency keys, token revocations.
//!
//! `memory` keeps state in this process (one gateway); `redis` shares it across a
//! fleet. Filters receive an `Arc<dyn Store>` when the runtime is built; the store
//! outlives reloads unless its own settings change. Callers namespace their keys
//! (`fingate:rl:...`, `fingate:login:...`) and put the part that must stay together
//! in a `{hash tag}` so the keys also work on Redis Cluster.

pub mod attempts;
pub mod idempotency;
pub mod limit;
mod memory;
pub mod purge;
mod redis;
pub mod revocation;
#[cfg(test)]
pub mod testing;

pub use attempts::Attempt;
pub use idempotency::Claim;
pub use limit::{Algorithm, Decision, Rule};
pub use memory::MemoryStore;
pub use purge::PurgeListener;
pub use redis::{topology::Topology, RedisStore};
pub use revocation::{Revocation, RevocationSet};

use async_trait::async_trait;
use serde::Deserialize;
use std::fmt::Debug;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Where shared state lives (`store.backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StoreBackend {
    /// In this process: one gateway.
    #[default]
    Memory,
    /// In Redis: shared by a fleet.
    Redis,
}

/// The `store:` settings, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    pub url: Option<String>,
    /// Per store operation.
    pub timeout: Duration,
}

/// Why a store operation gave no answer. The caller decides what that means
/// (the rate limiter: a local fallback or 503, per its `on_store_error`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// No connection yet, or the connection is being re-established.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// No answer within `store.timeout`.
    #[error("store operation timed out after {0:?}")]
    Timeout(Duration),
    /// The store answered with an error.
    #[error("store error: {0}")]
    Failed(String),
}

/// Shared state behind one interface; each operation has a memory and a redis
/// version with the same semantics. Every operation is bounded by `store.timeout`.
#[async_trait]
pub trait Store: Send + Sync + Debug {
    /// `memory` or `redis`, for logs and errors.
    fn backend(&self) -> StoreBackend;

    /// Whether the store answered its last health probe (always true in memory).
    fn ready(&self) -> bool {
        true
    }

    /// One atomic rate-limit decision for `key` under `rule`, counting `cost`
    /// requests (0: only ask whether one more would pass).
    async fn rate_limit(&self, key: &str, rule: &Rule, cost: u32) -> Result<Decision, StoreError>;

    /// Counts one attempt against `key`, allowed while at most `limit` were counted
    /// within `window` (see [`attempts`]: refused attempts count too).
    async fn take_attempt(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> Result<Attempt, StoreError>;

    /// Gives back one attempt counted by [`Store::take_attempt`].
    async fn give_back_attempt(&self, key: &str) -> Result<(), StoreError>;

    /// Claims the idempotency key `key` for a request with `fingerprint`, held by
    /// `token` for `hold` when free (see [`idempotency`]); otherwise says what
    /// holds it. One atomic step.
    async fn idempotency_claim(
        &self,
        key: &str,
        fingerprint: &str,
        token: &str,
        hold: Duration,
    ) -> Result<Claim, StoreError>;

    /// Stores `answer` for `ttl` under `key` if `token` still holds it; false when
    /// it no longer does (the hold expired, and maybe another request took it).
    async fn idempotency_complete(
        &self,
        key: &str,
        token: &str,
        answer: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Frees `key` if `token` still holds it; true when it did.
    async fn idempotency_release(&self, key: &str, token: &str) -> Result<bool, StoreError>;

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Stores `value`; with a `ttl` it expires by itself.
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError>;

    /// Removes `key`; true when it existed.
    async fn delete(&self, key: &str) -> Result<bool, StoreError>;

    /// One field of the map `map` (a Redis hash): records that must be listed
    /// together, such as run-time consumers. Maps never expire.
    async fn map_get(&self, map: &str, field: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Sets `field` only if it is absent, atomically; false when it already existed.
    async fn map_insert_new(
        &self,
        map: &str,
        field: &str,
        value: &[u8],
    ) -> Result<bool, StoreError>;

    /// Removes `field`; true when it existed.
    async fn map_remove(&self, map: &str, field: &str) -> Result<bool, StoreError>;

    /// Every field of `map`, in no particular order.
    async fn map_entries(&self, map: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Records `revocation` for every gateway sharing this store (with Redis, the
    /// fleet hears of it at once), and in this gateway's [`Store::revocations`].
    async fn revoke(&self, revocation: &Revocation) -> Result<(), StoreError>;

    /// This gateway's copy of the revocations, kept current by the store: what the
    /// `jwt` filter checks on every request, without a store call.
    fn revocations(&self) -> Arc<RevocationSet>;

    /// Tells the other gateways sharing this store to purge their response caches
    /// as this one just did ([`purge`]): `Ok(true)` once published, `Ok(false)`
    /// when no other gateway shares it (memory).
    async fn publish_cache_purge(&self, _prefix: Option<&str>) -> Result<bool, StoreError> {
        Ok(false)
    }

    /// Where purges published by other gateways go from now on.
    fn listen_for_purges(&self, _listener: Weak<dyn PurgeListener>) {}
}

/// Builds the store a config asks for. Never does I/O: a redis store connects
/// lazily and reconnects by itself, so start-up never depends on Redis.
pub fn open(config: &StoreConfig) -> Arc<dyn Store> {
    match (config.backend, &config.url) {
        (StoreBackend::Redis, Some(url)) => RedisStore::open(url, config.timeout),
        _ => Arc::new(MemoryStore::default()),
    }
}

/// Microseconds since the Unix epoch: the memory store's clock (Redis uses `TIME`).
pub(crate) fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
