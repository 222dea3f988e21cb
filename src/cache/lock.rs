//! Stampede protection: concurrent misses on one key make one upstream request.
//!
//! The first miss takes the key's [`FillLock`] and goes upstream; later misses get
//! a receiver and wait (bounded) until the lock is released — by storing the
//! response, by deciding it is not storable, or by the request ending any other way
//! (the lock releases itself when dropped, and the filter's logging phase releases
//! it explicitly). Waiters then look the key up again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

/// Keys being filled now, each with the id of its fill and a receiver to clone.
#[derive(Debug, Default)]
pub struct LockTable {
    fills: Mutex<HashMap<String, (u64, watch::Receiver<()>)>>,
    next_id: AtomicU64,
}

/// The outcome of asking for a key's lock.
#[derive(Debug)]
pub enum Acquire {
    /// This request fills the key; others wait for it.
    Leader(Arc<FillLock>),
    /// Another request is filling it: wait on this, then look again.
    Wait(watch::Receiver<()>),
}

/// Held by the request filling a key. Released once: explicitly or on drop.
#[derive(Debug)]
pub struct FillLock {
    table: Arc<LockTable>,
    key: String,
    id: u64,
    // Dropping the sender wakes every waiter; no value is ever sent.
    sender: Mutex<Option<watch::Sender<()>>>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the map half-updated.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LockTable {
    pub fn acquire(self: &Arc<Self>, key: &str) -> Acquire {
        let mut fills = locked(&self.fills);
        if let Some((_, rx)) = fills.get(key) {
            return Acquire::Wait(rx.clone());
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(());
        fills.insert(key.to_owned(), (id, rx));
        Acquire::Leader(Arc::new(FillLock {
            table: self.clone(),
            key: key.to_owned(),
            id,
            sender: Mutex::new(Some(tx)),
        }))
    }

    /// Keys being filled now (for tests and diagnostics).
    pub fn len(&self) -> usize {
        locked(&self.fills).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl FillLock {
    /// Wakes the waiters. Idempotent.
    pub fn release(&self) {
        let Some(sender) = locked(&self.sender).take() else {
            return;
        };
        {
            let mut fills = locked(&self.table.fills);
            // Only our own fill: after a release the key may already belong to another.
            if fills.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
                fills.remove(&self.key);
            }
        }
        drop(sender);
    }
}

impl Drop for FillLock {
    fn drop(&mut self) {
        self.release();
    }
}

/// Waits until the fill behind `rx` is released; false when `limit` passed first.
pub async fn wait(mut rx: watch::Receiver<()>, limit: Duration) -> bool {
    // `changed` fails exactly when the sender is gone, i.e. on release.
    tokio::time::timeout(limit, async { while rx.changed().await.is_ok() {} })
        .await
        .is_ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_leader_and_waiters_wake_on_release() {
        let table = Arc::new(LockTable::default());
        let Acquire::Leader(lock) = table.acquire("k") else {
            panic!("first acquire must lead");
        };
        let Acquire::Wait(rx) = table.acquire("k") else {
            panic!("second acquire must wait");
        };
        assert!(matches!(table.acquire("other"), Acquire::Leader(_)));
        let waiter = tokio::spawn(wait(rx, Duration::from_secs(5)));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        lock.release();
        assert!(waiter.await.unwrap());
        assert!(table.is_empty());
        lock.release();
        assert!(matches!(table.acquire("k"), Acquire::Leader(_)));
    }

    #[tokio::test]
    async fn dropping_the_lock_releases_it() {
        let table = Arc::new(LockTable::default());
        let lock = table.acquire("k");
        let Acquire::Wait(rx) = table.acquire("k") else {
            panic!("must wait");
        };
        drop(lock);
        assert!(wait(rx, Duration::from_millis(100)).await);
        assert!(table.is_empty());
    }

    #[tokio::test]
    async fn waiting_is_bounded() {
        let table = Arc::new(LockTable::default());
        let _lock = table.acquire("k");
        let Acquire::Wait(rx) = table.acquire("k") else {
            panic!("must wait");
        };
        assert!(!wait(rx, Duration::from_millis(30)).await);
    }

    #[tokio::test]
    async fn a_stale_release_does_not_free_a_newer_fill() {
        let table = Arc::new(LockTable::default());
        let Acquire::Leader(old) = table.acquire("k") else {
            panic!("lead");
        };
        old.release();
        let Acquire::Leader(_new) = table.acquire("k") else {
            panic!("lead again");
        };
        drop(old);
        assert!(matches!(table.acquire("k"), Acquire::Wait(_)));
    }
}
