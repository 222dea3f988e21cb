//! A store for the unit tests of its callers: the memory store underneath, each
//! rate-limit call's cost recorded, an optional delay per decision (a slow Redis),
//! and a switch that makes every decision fail (a dead one).

use super::{
    Attempt, Claim, Decision, MemoryStore, Revocation, RevocationSet, Rule, Store, StoreError,
};
use crate::store::StoreBackend;
use async_trait::async_trait;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Default)]
pub struct TestStore {
    pub inner: MemoryStore,
    pub costs: Mutex<Vec<u32>>,
    pub delay: Duration,
    pub broken: bool,
}

impl TestStore {
    /// Rate-limit calls so far.
    pub fn calls(&self) -> usize {
        self.costs.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[async_trait]
impl Store for TestStore {
    fn backend(&self) -> StoreBackend {
        // Callers that only batch for a shared store must treat this one as shared.
        StoreBackend::Redis
    }
    async fn rate_limit(&self, key: &str, rule: &Rule, cost: u32) -> Result<Decision, StoreError> {
        self.costs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(cost);
        if self.broken {
            return Err(StoreError::Unavailable("test store is broken".into()));
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.inner.rate_limit(key, rule, cost).await
    }
    async fn take_attempt(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> Result<Attempt, StoreError> {
        if self.broken {
            return Err(StoreError::Unavailable("test store is broken".into()));
        }
        self.inner.take_attempt(key, limit, window).await
    }
    async fn give_back_attempt(&self, key: &str) -> Result<(), StoreError> {
        self.inner.give_back_attempt(key).await
    }
    async fn idempotency_claim(
        &self,
        key: &str,
        fingerprint: &str,
        token: &str,
        hold: Duration,
    ) -> Result<Claim, StoreError> {
        if self.broken {
            return Err(StoreError::Unavailable("test store is broken".into()));
        }
        self.inner
            .idempotency_claim(key, fingerprint, token, hold)
            .await
    }
    async fn idempotency_complete(
        &self,
        key: &str,
        token: &str,
        answer: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        if self.broken {
            return Err(StoreError::Unavailable("test store is broken".into()));
        }
        self.inner
            .idempotency_complete(key, token, answer, ttl)
            .await
    }
    async fn idempotency_release(&self, key: &str, token: &str) -> Result<bool, StoreError> {
        if self.broken {
            return Err(StoreError::Unavailable("test store is broken".into()));
        }
        self.inner.idempotency_release(key, token).await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key).await
    }
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        self.inner.set(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        self.inner.delete(key).await
    }
    async fn map_get(&self, map: &str, field: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.map_get(map, field).await
    }
    async fn map_insert_new(
        &self,
        map: &str,
        field: &str,
        value: &[u8],
    ) -> Result<bool, StoreError> {
        self.inner.map_insert_new(map, field, value).await
    }
    async fn map_remove(&self, map: &str, field: &str) -> Result<bool, StoreError> {
        self.inner.map_remove(map, field).await
    }
    async fn map_entries(&self, map: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner.map_entries(map).await
    }
    async fn revoke(&self, revocation: &Revocation) -> Result<(), StoreError> {
        self.inner.revoke(revocation).await
    }
    fn revocations(&self) -> Arc<RevocationSet> {
        self.inner.revocations()
    }
}
