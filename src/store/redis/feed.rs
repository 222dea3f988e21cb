//! What a gateway hears from its fleet through Redis pub/sub: token revocations
//! (kept in its [`RevocationSet`](crate::store::RevocationSet)) and response-cache
//! purges (handed to its [`PurgeListener`](crate::store::PurgeListener)).
//!
//! A session subscribes to both channels, then reads every revocation in force (so
//! one published between the two is not missed: it is in the read, or heard after
//! it) and drops the whole response cache (purges published while unsubscribed
//! cannot be read back), then applies each message as it arrives. A dropped
//! connection, an unanswered ping, or the store moving to another primary starts
//! over. On a cluster the session subscribes through any node that answers: a
//! cluster delivers what is published on one node to every node.
//!
//! Runs on the control runtime for as long as its store lives (a reload with other
//! store settings drops the store; the feed notices at its next ping).

use super::RedisStore;
use crate::store::purge;
use crate::store::revocation::CHANNEL as REVOCATIONS;
use crate::store::Revocation;
use futures_util::StreamExt as _;
use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;

/// How often a quiet subscription is checked with a ping.
const PING_EVERY: Duration = Duration::from_secs(1);
/// Waits between reconnection attempts: from the first to the last, doubling.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_LAST: Duration = Duration::from_secs(2);

/// Follows the fleet's channels until the store is dropped.
pub(super) async fn follow(store: Weak<RedisStore>) {
    let mut wait = RETRY_FIRST;
    let mut failing = false;
    loop {
        match session(&store, &mut failing).await {
            Ended::StoreDropped => return,
            Ended::Moved => {
                wait = RETRY_FIRST;
                continue;
            }
            Ended::Failed(error) => {
                if !failing {
                    tracing::warn!(error = %error, "store: lost the redis subscription; revocations and cache purges made meanwhile apply when it is back (logged once per outage)");
                    failing = true;
                    wait = RETRY_FIRST;
                }
            }
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RETRY_LAST);
    }
}

enum Ended {
    StoreDropped,
    /// The store moved to another primary: subscribe there at once.
    Moved,
    Failed(String),
}

/// Subscribes through the first candidate server that answers.
async fn subscribe(
    candidates: Vec<redis::Client>,
    limit: Duration,
) -> Result<redis::aio::PubSub, String> {
    let mut last =
        "no server to subscribe through (the sentinels have not named a primary yet)".to_owned();
    for client in candidates {
        let attempt = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&[REVOCATIONS, purge::CHANNEL]).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(limit, attempt).await {
            Ok(Ok(p)) => return Ok(p),
            Ok(Err(e)) => last = format!("subscribe: {e}"),
            Err(_) => last = format!("subscribe: no answer within {limit:?}"),
        }
    }
    Err(last)
}

/// One connection's life: subscribe, resynchronise, apply messages.
async fn session(store: &Weak<RedisStore>, failing: &mut bool) -> Ended {
    let Some(s) = store.upgrade() else {
        return Ended::StoreDropped;
    };
    let Some(target) = &s.target else {
        // An unusable URL: every operation reports it; nothing to follow.
        return Ended::StoreDropped;
    };
    let candidates = target.subscribe_candidates();
    let generation = s.generation.load(Ordering::Relaxed);
    let limit = s.timeout.max(Duration::from_millis(500));
    drop(s);
    let pubsub = match subscribe(candidates, limit).await {
        Ok(p) => p,
        Err(e) => return Ended::Failed(e),
    };
    let (mut sink, mut messages) = pubsub.split();
    let Some(s) = store.upgrade() else {
        return Ended::StoreDropped;
    };
    let set = s.revocations.clone();
    match s.read_revocations().await {
        Ok(all) => set.replace(all),
        Err(e) => return Ended::Failed(format!("resynchronise: {e}")),
    }
    let dropped = s.purge(None);
    if dropped > 0 {
        tracing::info!(dropped, "cache: dropped every entry on subscribing to the fleet's purges (any published before could not be heard)");
    }
    drop(s);
    if std::mem::take(failing) {
        tracing::info!("store: subscribed to redis again; revocations resynchronised");
    }
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else {
                    return Ended::Failed("the subscription connection closed".into());
                };
                let Some(s) = store.upgrade() else {
                    return Ended::StoreDropped;
                };
                let payload = message.get_payload::<String>().unwrap_or_default();
                if message.get_channel_name() == purge::CHANNEL {
                    match purge::decode(&payload) {
                        Some((origin, _)) if origin == s.origin => {}
                        Some((_, prefix)) => {
                            let purged = s.purge(prefix);
                            tracing::info!(prefix, purged, "cache purged by another gateway of the fleet");
                        }
                        None => tracing::warn!(channel = purge::CHANNEL, "store: ignored a message that is not a cache purge"),
                    }
                } else {
                    match Revocation::decode(&payload) {
                        Some(r) => set.apply(r),
                        None => tracing::warn!(channel = REVOCATIONS, "store: ignored a message that is not a revocation"),
                    }
                }
            }
            () = tokio::time::sleep(PING_EVERY) => {
                let Some(s) = store.upgrade() else {
                    return Ended::StoreDropped;
                };
                if s.generation.load(Ordering::Relaxed) != generation {
                    return Ended::Moved;
                }
                drop(s);
                match tokio::time::timeout(limit, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Ended::Failed(format!("ping: {e}")),
                    Err(_) => return Ended::Failed(format!("ping: no answer within {limit:?}")),
                }
            }
        }
    }
}
