//! The Redis store: one server, a Redis Cluster or a Sentinel-watched primary
//! ([`topology`]), reached through one multiplexed connection per thread that uses
//! it ([`connect`]), created lazily so start-up never waits for Redis; the
//! connections reconnect by themselves. Every operation is bounded by
//! `store.timeout`. Every key one operation touches shares a hash slot (callers
//! put a `{hash tag}` in their keys), so each Lua script runs on one cluster node.
//!
//! Health: a probe every half second (and every operation) keeps a `ready` flag for
//! `/readyz`; the first failure after success is logged once, and so is recovery,
//! while `fingate_store_errors_total{operation}` counts every failure.

use super::attempts::{Attempt, GIVE_BACK_LUA, TAKE_LUA};
use super::idempotency::{Claim, CLAIM_LUA, COMPLETE_LUA, RELEASE_LUA};
use super::limit::{Algorithm, Decision, Rule, GCRA_LUA, SLIDING_WINDOW_LUA};
use super::purge::{self, PurgeListener};
use super::revocation::{self, REVOKE_LUA, SYNC_LUA};
use super::{Revocation, RevocationSet, Store, StoreError};
use crate::metrics::metrics;
use crate::store::StoreBackend;
use async_trait::async_trait;
use connect::{Conn, Target};
use redis::aio::ConnectionManagerConfig;
use redis::{RedisResult, Script};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

mod connect;
mod feed;
pub mod topology;

const PROBE_EVERY: Duration = Duration::from_millis(500);
/// How long without a failed operation before the store counts as ready again.
const READY_AFTER_QUIET_MS: u64 = 1000;

pub struct RedisStore {
    /// None when the URL could not be used (then every operation fails).
    target: Option<Target>,
    config: ConnectionManagerConfig,
    /// Bumped when the connections are replaced (Sentinel named another primary):
    /// the fleet feed then subscribes again.
    generation: AtomicU64,
    /// One connection per thread that uses the store. A manager's I/O task runs on
    /// the runtime that first drives it; per thread, that is the Pingora worker's
    /// own runtime, so a decision costs no wake-ups of another thread (measured:
    /// a shared connection driven from the control runtime doubled the gateway's
    /// CPU per limited request).
    conns: Mutex<HashMap<ThreadId, Conn>>,
    timeout: Duration,
    ready: AtomicBool,
    /// Set while a failure has been logged and no success seen since.
    down_logged: AtomicBool,
    opened: Instant,
    /// When an operation last failed ([`RedisStore::now_ms`]; 0: never).
    last_failure: AtomicU64,
    gcra: Script,
    window: Script,
    take: Script,
    give_back: Script,
    claim: Script,
    complete: Script,
    release: Script,
    revoke: Script,
    sync_revocations: Script,
    /// Kept current by [`feed::follow`] (pub/sub and a resync on every
    /// connection).
    revocations: Arc<RevocationSet>,
    /// Where cache purges published by other gateways go (the response cache).
    purge_listener: Mutex<Option<Weak<dyn PurgeListener>>>,
    /// Names this gateway's purge messages, so it ignores its own.
    origin: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("timeout", &self.timeout)
            .field("ready", &self.ready.load(Ordering::Relaxed))
            .finish()
    }
}

impl RedisStore {
    /// Parses the URL and prepares the connection without connecting.
    pub fn open(url: &str, timeout: Duration) -> Arc<dyn Store> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(500))))
            .set_response_timeout(Some(timeout))
            // Few, short retries: a reconnect cycle ends quickly and the next
            // operation or probe starts another, so recovery takes < 1 s.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_millis(400));
        let target = Target::open(url, timeout)
            .map_err(|e| tracing::error!(error = %e, "store.url: cannot use this redis URL; store operations will fail"))
            .ok();
        let store = Arc::new(Self {
            target,
            config,
            generation: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
            timeout,
            ready: AtomicBool::new(false),
            down_logged: AtomicBool::new(false),
            opened: Instant::now(),
            last_failure: AtomicU64::new(0),
            gcra: Script::new(GCRA_LUA),
            window: Script::new(SLIDING_WINDOW_LUA),
            take: Script::new(TAKE_LUA),
            give_back: Script::new(GIVE_BACK_LUA),
            claim: Script::new(CLAIM_LUA),
            complete: Script::new(COMPLETE_LUA),
            release: Script::new(RELEASE_LUA),
            revoke: Script::new(REVOKE_LUA),
            sync_revocations: Script::new(SYNC_LUA),
            revocations: RevocationSet::new(),
            purge_listener: Mutex::new(None),
            origin: purge::new_origin(),
        });
        let weak = Arc::downgrade(&store);
        crate::background::control_runtime().spawn(probe(weak.clone()));
        crate::background::control_runtime().spawn(feed::follow(weak));
        store
    }

    /// This thread's connection, made (without I/O) on first use. Called only from
    /// async code, so a Tokio runtime is current for the connection's own tasks.
    fn conn(&self) -> Result<Conn, StoreError> {
        let target = self
            .target
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("invalid store.url".into()))?;
        let id = std::thread::current().id();
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = conns.get(&id) {
            return Ok(c.clone());
        }
        let c = target
            .connect(&self.config)
            .map_err(StoreError::Unavailable)?;
        conns.insert(id, c.clone());
        Ok(c)
    }

    /// Drops every thread's connection: the next operation on each thread connects
    /// to the primary Sentinel names now, and the fleet feed subscribes there.
    fn reconnect_all(&self) {
        self.conns.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    async fn run<T, F>(
        &self,
        operation: &'static str,
        call: impl FnOnce(Conn) -> F,
    ) -> Result<T, StoreError>
    where
        F: Future<Output = RedisResult<T>>,
    {
        let conn = match self.conn() {
            Ok(c) => c,
            Err(error) => return Err(self.failed(operation, error)),
        };
        match tokio::time::timeout(self.timeout, call(conn)).await {
            Ok(Ok(v)) => {
                self.succeeded();
                Ok(v)
            }
            Ok(Err(e)) => {
                let error =
                    if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
                        StoreError::Unavailable(e.to_string())
                    } else {
                        StoreError::Failed(e.to_string())
                    };
                Err(self.failed(operation, error))
            }
            Err(_) => Err(self.failed(operation, StoreError::Timeout(self.timeout))),
        }
    }

    /// Every revocation in force, read from the store (and ended ones dropped there).
    async fn read_revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        let lines = self
            .run("revocations_sync", |mut c| async move {
                self.sync_revocations
                    .key(revocation::TOKENS_KEY)
                    .key(revocation::CONSUMERS_KEY)
                    .invoke_async::<Vec<String>>(&mut c)
                    .await
            })
            .await?;
        Ok(lines.iter().filter_map(|l| Revocation::decode(l)).collect())
    }

    /// Hands a purge heard from the fleet to this gateway's cache; how many
    /// entries it dropped.
    fn purge(&self, prefix: Option<&str>) -> u64 {
        let listener = self
            .purge_listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        listener
            .and_then(|l| l.upgrade())
            .map_or(0, |l| l.purge(prefix))
    }

    /// Milliseconds since the store was opened (never 0: 0 means "never").
    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn succeeded(&self) {
        // Every store operation ends here: while all is well, no clock read.
        if self.ready.load(Ordering::Relaxed) && !self.down_logged.load(Ordering::Relaxed) {
            return;
        }
        // Ready again only after a quiet spell: on a cluster with one primary down,
        // the keys of other slots still answer, and the store must not flap
        // between ready and not (nor the log between "unreachable" and "back").
        let last = self.last_failure.load(Ordering::Relaxed);
        if last != 0 && self.now_ms().saturating_sub(last) < READY_AFTER_QUIET_MS {
            return;
        }
        self.ready.store(true, Ordering::Relaxed);
        if self.down_logged.swap(false, Ordering::Relaxed) {
            tracing::info!("store: redis answers again; shared state is back in use");
        }
    }

    fn failed(&self, operation: &'static str, error: StoreError) -> StoreError {
        metrics()
            .store_errors_total
            .with_label_values(&[operation])
            .inc();
        self.ready.store(false, Ordering::Relaxed);
        self.last_failure.store(self.now_ms(), Ordering::Relaxed);
        // Once per outage, not once per request: a dead Redis under load would
        // otherwise flood the log.
        if !self.down_logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(operation, error = %error, "store: redis unreachable; filters use their on_store_error policy until it answers (logged once per outage)");
        }
        error
    }
}

/// A duration as Redis milliseconds (at least 1: PEXPIRE 0 would delete the key).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Probes the store until it is dropped (a reload with other store settings);
/// with Sentinel, first asks the sentinels which node is the primary.
async fn probe(store: Weak<RedisStore>) {
    let mut sentinels_failing = false;
    loop {
        let Some(s) = store.upgrade() else { return };
        if let Some(target) = &s.target {
            match target
                .follow_primary(s.timeout.max(Duration::from_millis(500)))
                .await
            {
                Ok(moved) => {
                    sentinels_failing = false;
                    if moved {
                        s.reconnect_all();
                    }
                }
                Err(e) if !std::mem::replace(&mut sentinels_failing, true) => {
                    tracing::warn!(error = %e, "store: no answer from the sentinels; staying with the primary they named last (logged once per outage)");
                }
                Err(_) => {}
            }
        }
        let _ = s
            .run("ping", |mut c| async move {
                redis::cmd("PING").query_async::<String>(&mut c).await
            })
            .await;
        drop(s);
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

#[async_trait]
impl Store for RedisStore {
    fn backend(&self) -> StoreBackend {
        StoreBackend::Redis
    }

    fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    async fn rate_limit(&self, key: &str, rule: &Rule, cost: u32) -> Result<Decision, StoreError> {
        let (script, first) = match rule.algorithm {
            Algorithm::Gcra => (&self.gcra, rule.interval_us()),
            Algorithm::SlidingWindow => (&self.window, rule.per_us()),
        };
        let cap = rule.capacity();
        let (a, r, reset, retry) = self
            .run("rate_limit", |mut c| async move {
                // EVALSHA; on NOSCRIPT (a restarted Redis) the crate loads and retries.
                script
                    .key(key)
                    .arg(first)
                    .arg(cap)
                    .arg(cost)
                    .invoke_async::<(i64, i64, i64, i64)>(&mut c)
                    .await
            })
            .await?;
        Ok(Decision::from_parts(a, r, reset, retry, cost))
    }

    async fn take_attempt(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> Result<Attempt, StoreError> {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let (count, left_ms) = self
            .run("take_attempt", |mut c| async move {
                self.take
                    .key(key)
                    .arg(limit)
                    .arg(window_ms)
                    .invoke_async::<(i64, i64)>(&mut c)
                    .await
            })
            .await?;
        let count = u64::try_from(count).unwrap_or(0);
        Ok(Attempt {
            count,
            allowed: count <= u64::from(limit),
            reset: Duration::from_millis(u64::try_from(left_ms).unwrap_or(0)),
        })
    }

    async fn give_back_attempt(&self, key: &str) -> Result<(), StoreError> {
        self.run("give_back_attempt", |mut c| async move {
            self.give_back.key(key).invoke_async::<i64>(&mut c).await
        })
        .await
        .map(|_| ())
    }

    async fn idempotency_claim(
        &self,
        key: &str,
        fingerprint: &str,
        token: &str,
        hold: Duration,
    ) -> Result<Claim, StoreError> {
        let (code, left_ms, answer) = self
            .run("idempotency_claim", |mut c| async move {
                self.claim
                    .key(key)
                    .arg(fingerprint)
                    .arg(token)
                    .arg(millis(hold))
                    .invoke_async::<(i64, i64, Vec<u8>)>(&mut c)
                    .await
            })
            .await?;
        Ok(match code {
            0 => Claim::New,
            1 => Claim::InFlight {
                expires_in: Duration::from_millis(u64::try_from(left_ms).unwrap_or(0)),
            },
            2 => Claim::Done(answer),
            _ => Claim::Mismatch,
        })
    }

    async fn idempotency_complete(
        &self,
        key: &str,
        token: &str,
        answer: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.run("idempotency_complete", |mut c| async move {
            self.complete
                .key(key)
                .arg(token)
                .arg(answer)
                .arg(millis(ttl))
                .invoke_async::<i64>(&mut c)
                .await
        })
        .await
        .map(|n| n == 1)
    }

    async fn idempotency_release(&self, key: &str, token: &str) -> Result<bool, StoreError> {
        self.run("idempotency_release", |mut c| async move {
            self.release
                .key(key)
                .arg(token)
                .invoke_async::<i64>(&mut c)
                .await
        })
        .await
        .map(|n| n == 1)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.run("get", |mut c| async move {
            redis::cmd("GET")
                .arg(key)
                .query_async::<Option<Vec<u8>>>(&mut c)
                .await
        })
        .await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        self.run("set", |mut c| async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(value);
            if let Some(ttl) = ttl {
                cmd.arg("PX")
                    .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
            }
            cmd.query_async::<()>(&mut c).await
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        self.run("delete", |mut c| async move {
            redis::cmd("DEL").arg(key).query_async::<i64>(&mut c).await
        })
        .await
        .map(|n| n > 0)
    }

    async fn map_get(&self, map: &str, field: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.run("map_get", |mut c| async move {
            redis::cmd("HGET")
                .arg(map)
                .arg(field)
                .query_async::<Option<Vec<u8>>>(&mut c)
                .await
        })
        .await
    }

    async fn map_insert_new(
        &self,
        map: &str,
        field: &str,
        value: &[u8],
    ) -> Result<bool, StoreError> {
        self.run("map_insert", |mut c| async move {
            redis::cmd("HSETNX")
                .arg(map)
                .arg(field)
                .arg(value)
                .query_async::<i64>(&mut c)
                .await
        })
        .await
        .map(|n| n == 1)
    }

    async fn map_remove(&self, map: &str, field: &str) -> Result<bool, StoreError> {
        self.run("map_remove", |mut c| async move {
            redis::cmd("HDEL")
                .arg(map)
                .arg(field)
                .query_async::<i64>(&mut c)
                .await
        })
        .await
        .map(|n| n > 0)
    }

    async fn map_entries(&self, map: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.run("map_entries", |mut c| async move {
            redis::cmd("HGETALL")
                .arg(map)
                .query_async::<Vec<(String, Vec<u8>)>>(&mut c)
                .await
        })
        .await
    }

    async fn revoke(&self, revocation: &Revocation) -> Result<(), StoreError> {
        let (kind, name, at, until) = match revocation {
            Revocation::Token { jti, until } => ("j", jti, 0, *until),
            Revocation::Consumer {
                consumer,
                at,
                until,
            } => ("s", consumer, *at, *until),
        };
        let published = self
            .run("revoke", |mut c| async move {
                self.revoke
                    .key(revocation::TOKENS_KEY)
                    .key(revocation::CONSUMERS_KEY)
                    .arg(kind)
                    .arg(name)
                    .arg(at)
                    .arg(until)
                    .arg(revocation::CHANNEL)
                    .invoke_async::<String>(&mut c)
                    .await
            })
            .await?;
        // Applied here at once; the same message comes back through the feed.
        if let Some(r) = Revocation::decode(&published) {
            self.revocations.apply(r);
        }
        Ok(())
    }

    fn revocations(&self) -> Arc<RevocationSet> {
        self.revocations.clone()
    }

    async fn publish_cache_purge(&self, prefix: Option<&str>) -> Result<bool, StoreError> {
        self.run("cache_purge", |mut c| async move {
            redis::cmd("PUBLISH")
                .arg(purge::CHANNEL)
                .arg(purge::encode(&self.origin, prefix))
                .query_async::<i64>(&mut c)
                .await
        })
        .await
        .map(|_| true)
    }

    fn listen_for_purges(&self, listener: Weak<dyn PurgeListener>) {
        *self
            .purge_listener
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(listener);
    }
}
