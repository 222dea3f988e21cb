//! One store call for the requests that wait on the same key at the same time.
//!
//! While a decision for a key is on its way to Redis, more requests for that key
//! queue here instead of each sending its own script call. When the answer comes
//! back, the first of them sends one call for the whole queue with `cost = n`; the
//! store grants as many as fit, in arrival order, atomically — the same outcome as
//! `n` calls at that instant (`store::limit` tests that equivalence). So a hot key
//! (a route-wide limit, a busy partner) costs one round trip per batch instead of
//! one per request, and limits stay exact across the fleet: nothing is granted
//! locally. An idle key pays nothing extra: the first request goes out at once.
//!
//! A request whose future is dropped (a client gone) hands its role on, so no
//! request ever waits for a call nobody makes.

use crate::store::{Decision, Rule, Store, StoreError};
use foldhash::fast::RandomState;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::oneshot;

type Outcome = Result<Decision, StoreError>;

#[derive(Debug)]
enum Message {
    /// This request's part of a batch's answer.
    Share(Outcome),
    /// Send the next batch: this request plus the ones listed.
    Lead(Vec<oneshot::Sender<Message>>),
}

/// Keys with a call in flight, each with the requests queued behind it.
#[derive(Debug, Default)]
pub struct Coalescer {
    queued: Mutex<HashMap<String, Vec<oneshot::Sender<Message>>, RandomState>>,
}

impl Coalescer {
    /// The decision for one request on `key`.
    pub async fn decide(&self, store: &dyn Store, key: &str, rule: &Rule) -> Outcome {
        let queued_behind = {
            let mut queued = self.queued.lock().unwrap_or_else(|p| p.into_inner());
            match queued.get_mut(key) {
                Some(waiting) => {
                    let (tx, rx) = oneshot::channel();
                    waiting.push(tx);
                    Some(rx)
                }
                None => {
                    queued.insert(key.to_owned(), Vec::new());
                    None
                }
            }
        };
        let Some(rx) = queued_behind else {
            return self.lead(store, key, rule, Vec::new()).await;
        };
        match rx.await {
            Ok(Message::Share(outcome)) => outcome,
            Ok(Message::Lead(others)) => self.lead(store, key, rule, others).await,
            // Unreachable by construction (every queued sender gets a message);
            // deciding alone is still correct.
            Err(_) => store.rate_limit(key, rule, 1).await,
        }
    }

    /// Sends one call for this request (first) and `members`, answers everyone,
    /// then passes the lead to whoever queued meanwhile.
    async fn lead(
        &self,
        store: &dyn Store,
        key: &str,
        rule: &Rule,
        members: Vec<oneshot::Sender<Message>>,
    ) -> Outcome {
        let mut guard = Leading {
            coalescer: self,
            key,
            members,
        };
        let cost = u32::try_from(guard.members.len() + 1).unwrap_or(u32::MAX);
        let outcome = store.rate_limit(key, rule, cost).await;
        let members = std::mem::take(&mut guard.members);
        for (i, tx) in (1..).zip(members) {
            let _ = tx.send(Message::Share(share(&outcome, i)));
        }
        // `guard` drops here and hands the queue to its first request.
        share(&outcome, 0)
    }

    /// Gives the lead to the first request in `waiting` plus the key's queue; the
    /// key is free again when nobody is left.
    fn hand_off(&self, key: &str, mut waiting: Vec<oneshot::Sender<Message>>) {
        let mut queued = self.queued.lock().unwrap_or_else(|p| p.into_inner());
        waiting.extend(queued.remove(key).unwrap_or_default());
        while !waiting.is_empty() {
            let first = waiting.remove(0);
            match first.send(Message::Lead(waiting)) {
                Ok(()) => {
                    queued.insert(key.to_owned(), Vec::new());
                    return;
                }
                // That request is gone: the next one leads.
                Err(Message::Lead(rest)) => waiting = rest,
                Err(Message::Share(_)) => return,
            }
        }
    }
}

/// The leader's duty, done on drop so a cancelled leader hands on too: members it
/// did not answer (empty once answered) and the key's queue get a new leader.
struct Leading<'a> {
    coalescer: &'a Coalescer,
    key: &'a str,
    members: Vec<oneshot::Sender<Message>>,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        let members = std::mem::take(&mut self.members);
        self.coalescer.hand_off(self.key, members);
    }
}

/// Request `i`'s part (0 = first in the batch) of a decision for the whole batch.
fn share(outcome: &Outcome, i: u32) -> Outcome {
    outcome.clone().map(|d| {
        if i < d.granted {
            Decision {
                allowed: true,
                granted: 1,
                // The ones granted after this request still count as used.
                remaining: d.remaining + u64::from(d.granted - 1 - i),
                reset: d.reset,
                retry_after: Duration::ZERO,
            }
        } else {
            Decision {
                allowed: false,
                granted: 0,
                remaining: 0,
                reset: d.reset,
                retry_after: d.retry_after.max(Duration::from_micros(1)),
            }
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::store::testing::TestStore;
    use crate::store::Algorithm;
    use std::sync::Arc;

    /// A store that takes 20 ms per decision, like a Redis round trip under load.
    fn slow_store() -> TestStore {
        TestStore {
            delay: Duration::from_millis(20),
            ..TestStore::default()
        }
    }

    fn rule(limit: u32) -> Rule {
        Rule {
            algorithm: Algorithm::Gcra,
            limit,
            per: Duration::from_secs(3600),
            burst: 0,
        }
    }

    async fn burst(
        c: &Arc<Coalescer>,
        store: &Arc<TestStore>,
        n: usize,
        limit: u32,
    ) -> Vec<Decision> {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (c, store) = (c.clone(), store.clone());
                tokio::spawn(
                    async move { c.decide(store.as_ref(), "k", &rule(limit)).await.unwrap() },
                )
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            let waited = tokio::time::timeout(Duration::from_secs(5), t).await;
            out.push(waited.expect("a request was left waiting").unwrap());
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_share_calls_and_the_limit_stays_exact() {
        let (c, store) = (Arc::new(Coalescer::default()), Arc::new(slow_store()));
        let decisions = burst(&c, &store, 50, 30).await;
        let allowed = decisions.iter().filter(|d| d.allowed).count();
        assert_eq!(allowed, 30, "exactly the limit");
        let costs = store.costs.lock().unwrap().clone();
        assert_eq!(costs.iter().sum::<u32>(), 50, "every request counted once");
        assert!(costs.len() <= 5, "50 requests in {} calls", costs.len());
        // Remaining counts down across the granted ones, without repeats.
        let mut remaining: Vec<u64> = decisions
            .iter()
            .filter(|d| d.allowed)
            .map(|d| d.remaining)
            .collect();
        remaining.sort_unstable();
        assert_eq!(remaining, (0..30).collect::<Vec<u64>>());
        for d in decisions.iter().filter(|d| !d.allowed) {
            assert!(!d.retry_after.is_zero());
        }
        assert!(c.queued.lock().unwrap().is_empty(), "the key is released");
    }

    fn spawn_one(c: &Arc<Coalescer>, store: &Arc<TestStore>) -> tokio::task::JoinHandle<Outcome> {
        let (c, store) = (c.clone(), store.clone());
        tokio::spawn(async move { c.decide(store.as_ref(), "k", &rule(100)).await })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_leader_hands_its_queue_on() {
        let (c, store) = (Arc::new(Coalescer::default()), Arc::new(slow_store()));
        let ms = |n| tokio::time::sleep(Duration::from_millis(n));
        // a leads alone (0-20 ms); b, then d and e queue behind it.
        let a = spawn_one(&c, &store);
        ms(5).await;
        let b = spawn_one(&c, &store);
        ms(3).await;
        let rest: Vec<_> = (0..2).map(|_| spawn_one(&c, &store)).collect();
        // At ~30 ms b leads the batch {b, d, e} and is cancelled mid-call.
        ms(22).await;
        b.abort();
        assert!(a.await.unwrap().unwrap().allowed);
        for r in rest {
            let d = tokio::time::timeout(Duration::from_secs(2), r)
                .await
                .expect("a request was left waiting")
                .unwrap()
                .unwrap();
            assert!(d.allowed);
        }
        assert!(c.queued.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_idle_key_goes_out_at_once_alone() {
        let (c, store) = (Coalescer::default(), slow_store());
        for _ in 0..3 {
            assert!(c.decide(&store, "k", &rule(10)).await.unwrap().allowed);
        }
        assert_eq!(*store.costs.lock().unwrap(), [1, 1, 1]);
    }
}
