//! The shared-state seam: rate-limit counters, run-time consumers, cache purges.
//!
//! `memory` keeps state in this process (one gateway); `redis` shares it across a
//! fleet. Filters receive an `Arc<dyn Store>` when the runtime is built; the store
//! outlives reloads unless its own settings change.

use crate::config::{Store as StoreConfig, StoreBackend};
use std::fmt::Debug;
use std::sync::Arc;

/// Shared state behind one interface. Operations are added by the features that
/// need them (rate limiting, consumers), each with a memory and a redis version.
pub trait Store: Send + Sync + Debug {
    /// `memory` or `redis`, for logs and errors.
    fn backend(&self) -> StoreBackend;
}

/// State held in this process only.
#[derive(Debug, Default)]
pub struct MemoryStore {}

impl Store for MemoryStore {
    fn backend(&self) -> StoreBackend {
        StoreBackend::Memory
    }
}

/// Builds the store a config asks for. Never does I/O: a redis store connects
/// lazily and reconnects by itself, so start-up never depends on Redis.
pub fn open(config: &StoreConfig) -> Arc<dyn Store> {
    match config.backend {
        StoreBackend::Memory => Arc::new(MemoryStore::default()),
        // The redis implementation arrives with rate limiting; until then a redis
        // config behaves like memory (and says so at start-up).
        StoreBackend::Redis => {
            tracing::warn!("store.backend: redis is not implemented yet; using the memory store");
            Arc::new(MemoryStore::default())
        }
    }
}
