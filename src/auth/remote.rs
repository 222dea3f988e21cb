//! Remote key sets: `auth.keys[]` entries with a `jwks_url`, an identity
//! provider's signing keys, fetched and kept current in the background.
//!
//! - Each set is fetched on the control runtime, never on a request: at start,
//!   then again when its server's `Cache-Control: max-age` (held within 1m–24h)
//!   or, without one, the source's `refresh` says.
//! - A token naming a `kid` the set lacks asks for a fetch now — at most one per
//!   [`UNKNOWN_KID_EVERY`] per source, whatever the number of such tokens; requests
//!   that asked wait for that fetch (a rotated-in key works on first use).
//! - A failed fetch keeps the last good set, for up to `max_stale` after it was
//!   fetched; then the source's tokens are refused until a fetch succeeds. Failed
//!   fetches are retried sooner than the refresh.
//! - The gateway starts, and serves everything else, while a set is unreachable.
//!
//! A set survives a reload that keeps its settings (the keys stay, no refetch).

pub mod fetch;
pub mod jwks;

use super::keys::{Accept, Key};
use crate::metrics::metrics;
use arc_swap::ArcSwapOption;
use jsonwebtoken::Algorithm;
use prometheus::IntGauge;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// A server's `max-age` is held within these bounds.
pub const MIN_FRESH: Duration = Duration::from_secs(60);
pub const MAX_FRESH: Duration = Duration::from_secs(24 * 3600);
/// Unknown `kid`s trigger at most one fetch this often, per source.
pub const UNKNOWN_KID_EVERY: Duration = Duration::from_secs(30);
/// Retries after a failed fetch: from the first wait to the last, doubling.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_LAST: Duration = Duration::from_secs(30);

/// One remote key source as configured (validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSource {
    pub id: String,
    /// `https://` (`http://` only to a loopback address).
    pub url: String,
    /// The `iss` its tokens carry (never the gateway's own).
    pub issuer: String,
    pub audience: String,
    /// Given: the only algorithm accepted, and the one of keys without `alg`.
    pub algorithm: Option<Algorithm>,
    pub accept: Accept,
    /// Between fetches when the server gives no `max-age`.
    pub refresh: Duration,
    /// How long the last good set stays in use while fetches fail.
    pub max_stale: Duration,
    pub leeway: Duration,
}

/// What a set says about a token's key.
#[derive(Debug)]
pub enum Lookup {
    Found(Arc<Key>),
    /// The set is current and has no such key.
    Unknown,
    /// No set fetched yet, or the last one is older than `max_stale`.
    Unavailable,
}

#[derive(Debug)]
struct Fetched {
    keys: Vec<Arc<Key>>,
    at: Instant,
}

/// Who asked for an early fetch, and which fetch answers them.
#[derive(Debug, Default)]
struct Asked {
    last: Option<Instant>,
    /// The count of finished fetches that includes the one asked for.
    answered_by: u64,
}

/// One remote key set at run time.
#[derive(Debug)]
pub struct RemoteKeys {
    pub source: Arc<RemoteSource>,
    current: ArcSwapOption<Fetched>,
    asked: Mutex<Asked>,
    fetching: AtomicBool,
    /// Fetches finished (either way); requests waiting for one watch it.
    finished: watch::Sender<u64>,
    /// Wakes the background loop: fetch now (or, once this set is dropped, end).
    wake: Arc<Notify>,
    keys_gauge: IntGauge,
}

impl RemoteKeys {
    /// Builds the set and starts fetching it on the control runtime.
    pub fn start(source: Arc<RemoteSource>) -> Arc<Self> {
        let wake = Arc::new(Notify::new());
        let keys = Arc::new(Self {
            keys_gauge: metrics().jwks_keys.with_label_values(&[&source.id]),
            source,
            current: ArcSwapOption::empty(),
            asked: Mutex::default(),
            fetching: AtomicBool::new(false),
            finished: watch::Sender::new(0),
            wake: wake.clone(),
        });
        keys.keys_gauge.set(0);
        crate::background::control_runtime().spawn(run(Arc::downgrade(&keys), wake));
        keys
    }

    /// The key for a token's `kid` (without one: the first key of its algorithm).
    pub fn find(&self, kid: Option<&str>, algorithm: Algorithm) -> Lookup {
        let current = self.current.load();
        let Some(set) = current
            .as_ref()
            .filter(|s| s.at.elapsed() <= self.source.max_stale)
        else {
            return Lookup::Unavailable;
        };
        let hit = match kid {
            Some(kid) => set.keys.iter().find(|k| k.id == kid),
            None => set.keys.iter().find(|k| k.algorithm == algorithm),
        };
        hit.map_or(Lookup::Unknown, |k| Lookup::Found(k.clone()))
    }

    /// A token named a key this set lacks: fetch now, unless a fetch was asked
    /// for within [`UNKNOWN_KID_EVERY`]; wait for the fetch that answers (the one
    /// asked for by this or an earlier request, if still running). False when no
    /// fetch was allowed or it did not finish in time.
    pub async fn refetch(&self) -> bool {
        let mut finished = self.finished.subscribe();
        let target = {
            let mut asked = self.asked.lock().unwrap_or_else(|p| p.into_inner());
            let done = *finished.borrow();
            if asked.answered_by > done {
                asked.answered_by
            } else if asked.last.is_some_and(|t| t.elapsed() < UNKNOWN_KID_EVERY) {
                return false;
            } else {
                asked.last = Some(Instant::now());
                // A fetch already running began before this request asked: the
                // next one answers.
                let running = u64::from(self.fetching.load(Ordering::Acquire));
                asked.answered_by = done + 1 + running;
                self.wake.notify_one();
                asked.answered_by
            }
        };
        let wait = fetch::TIMEOUT * 2 + Duration::from_secs(1);
        let answered = tokio::time::timeout(wait, finished.wait_for(|n| *n >= target))
            .await
            .is_ok_and(|r| r.is_ok());
        answered
    }

    /// Fetches once; the wait until the next fetch.
    async fn fetch_once(&self, failures: &mut u32) -> Duration {
        self.fetching.store(true, Ordering::Release);
        let result = match fetch::get(&self.source.url).await {
            Ok(doc) => jwks::parse(&doc.body, &self.source)
                .map(|keys| (keys, doc.max_age))
                .map_err(fetch::FetchError::Invalid),
            Err(e) => Err(e),
        };
        let id = self.source.id.as_str();
        let label = result.as_ref().map_or_else(|e| e.label(), |_| "ok");
        metrics()
            .jwks_refresh_total
            .with_label_values(&[id, label])
            .inc();
        let wait = match result {
            Ok((keys, max_age)) => {
                let kids =
                    |keys: &[Arc<Key>]| keys.iter().map(|k| k.id.clone()).collect::<Vec<_>>();
                let before = self.current.load().as_ref().map(|s| kids(&s.keys));
                let now_kids = kids(&keys);
                if *failures > 0 || before.as_ref() != Some(&now_kids) {
                    tracing::info!(key = id, kids = ?now_kids, "jwks: key set fetched");
                }
                self.keys_gauge
                    .set(i64::try_from(keys.len()).unwrap_or(i64::MAX));
                self.current.store(Some(Arc::new(Fetched {
                    keys,
                    at: Instant::now(),
                })));
                *failures = 0;
                max_age.map_or(self.source.refresh, |age| age.clamp(MIN_FRESH, MAX_FRESH))
            }
            Err(e) => {
                *failures = failures.saturating_add(1);
                let stale = self
                    .current
                    .load()
                    .as_ref()
                    .map_or(true, |s| s.at.elapsed() > self.source.max_stale);
                if stale {
                    self.keys_gauge.set(0);
                }
                if *failures == 1 || stale {
                    tracing::warn!(key = id, url = %self.source.url, error = %e, in_use = !stale, "jwks: fetching the key set failed; the last good set stays in use up to max_stale");
                }
                let doubling = RETRY_FIRST.saturating_mul(1 << (*failures - 1).min(10));
                doubling.min(RETRY_LAST).min(self.source.refresh)
            }
        };
        self.fetching.store(false, Ordering::Release);
        self.finished.send_modify(|n| *n += 1);
        wait
    }
}

impl Drop for RemoteKeys {
    fn drop(&mut self) {
        // The loop wakes, finds the set gone and ends.
        self.wake.notify_one();
    }
}

/// Fetches `keys` for as long as it lives.
async fn run(keys: Weak<RemoteKeys>, wake: Arc<Notify>) {
    let mut failures = 0;
    loop {
        let Some(set) = keys.upgrade() else { return };
        let wait = set.fetch_once(&mut failures).await;
        drop(set);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = wake.notified() => {}
        }
    }
}

/// The remote sets of one runtime generation.
#[derive(Debug, Default)]
pub struct RemoteKeySets {
    sets: Vec<Arc<RemoteKeys>>,
}

impl RemoteKeySets {
    /// The sets of `sources`; one `previous` already had with the same settings is
    /// kept as it is (keys, schedule), the others start fetching.
    pub fn build(sources: &[Arc<RemoteSource>], previous: Option<&RemoteKeySets>) -> Self {
        let sets: Vec<Arc<RemoteKeys>> = sources
            .iter()
            .map(|s| {
                previous
                    .and_then(|p| p.sets.iter().find(|k| *k.source == **s))
                    .cloned()
                    .unwrap_or_else(|| RemoteKeys::start(s.clone()))
            })
            .collect();
        if let Some(p) = previous {
            for gone in p
                .sets
                .iter()
                .filter(|k| !sources.iter().any(|s| s.id == k.source.id))
            {
                let _ = metrics().jwks_keys.remove_label_values(&[&gone.source.id]);
            }
        }
        Self { sets }
    }

    pub fn get(&self, id: &str) -> Option<&Arc<RemoteKeys>> {
        self.sets.iter().find(|k| k.source.id == id)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn source(url: &str) -> Arc<RemoteSource> {
        Arc::new(RemoteSource {
            id: "idp".into(),
            url: url.into(),
            issuer: "https://idp.example".into(),
            audience: "api".into(),
            algorithm: None,
            accept: Accept::WhenListed,
            refresh: Duration::from_secs(600),
            max_stale: Duration::from_secs(3600),
            leeway: Duration::from_secs(30),
        })
    }

    #[tokio::test]
    async fn an_unreachable_set_is_unavailable_and_unknown_kids_fetch_at_most_once_per_window() {
        // Nothing listens on port 1: every fetch fails fast.
        let keys = RemoteKeys::start(source("http://127.0.0.1:1/jwks"));
        assert!(matches!(
            keys.find(Some("k"), Algorithm::ES256),
            Lookup::Unavailable
        ));
        // What was asked for, not what finished: the background task retries the
        // failed fetch after 1 s, which may finish during the test.
        let asked = || keys.asked.lock().unwrap().answered_by;
        let first = keys.refetch().await;
        assert!(first, "the first unknown kid gets a fetch");
        let after = asked();
        assert!(!keys.refetch().await, "a second one within 30 s does not");
        assert!(!keys.refetch().await);
        assert_eq!(asked(), after, "no fetch was asked for");
    }
}
