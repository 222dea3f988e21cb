//! Keeps a gateway's [`RevocationSet`](crate::store::RevocationSet) current from
//! Redis: subscribe to the revocation channel, then read every revocation in force
//! (so one published between the two is not missed: it is in the read, or heard
//! after it), then apply each message as it arrives. A dropped connection, or a
//! ping unanswered, starts over: reconnect, subscribe, read everything again.
//!
//! Runs on the control runtime for as long as its store lives (a reload with other
//! store settings drops the store; the feed notices at its next ping).

use super::RedisStore;
use crate::store::revocation::CHANNEL;
use crate::store::Revocation;
use futures_util::StreamExt as _;
use std::sync::Weak;
use std::time::Duration;

/// How often a quiet subscription is checked with a ping.
const PING_EVERY: Duration = Duration::from_secs(2);
/// Waits between reconnection attempts: from the first to the last, doubling.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_LAST: Duration = Duration::from_secs(2);

/// Follows the revocation channel until the store is dropped.
pub(super) async fn follow(store: Weak<RedisStore>) {
    let mut wait = RETRY_FIRST;
    let mut failing = false;
    loop {
        match session(&store, &mut failing).await {
            Ended::StoreDropped => return,
            Ended::Failed(error) => {
                if !failing {
                    tracing::warn!(error = %error, "revocations: lost the redis subscription; revocations made meanwhile apply when it is back (logged once per outage)");
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
    Failed(String),
}

/// One connection's life: subscribe, resynchronise, apply messages.
async fn session(store: &Weak<RedisStore>, failing: &mut bool) -> Ended {
    let Some(s) = store.upgrade() else {
        return Ended::StoreDropped;
    };
    let Some(client) = s.client.clone() else {
        // An unusable URL: every operation reports it; nothing to follow.
        return Ended::StoreDropped;
    };
    let limit = s.timeout.max(Duration::from_millis(500));
    drop(s);
    let bounded = |what: &'static str, e: String| format!("{what}: {e}");
    let pubsub = match tokio::time::timeout(limit, client.get_async_pubsub()).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return Ended::Failed(bounded("connect", e.to_string())),
        Err(_) => return Ended::Failed(format!("connect: no answer within {limit:?}")),
    };
    let (mut sink, mut messages) = pubsub.split();
    match tokio::time::timeout(limit, sink.subscribe(CHANNEL)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Ended::Failed(bounded("subscribe", e.to_string())),
        Err(_) => return Ended::Failed(format!("subscribe: no answer within {limit:?}")),
    }
    let Some(s) = store.upgrade() else {
        return Ended::StoreDropped;
    };
    let set = s.revocations.clone();
    match s.read_revocations().await {
        Ok(all) => set.replace(all),
        Err(e) => return Ended::Failed(bounded("resynchronise", e.to_string())),
    }
    drop(s);
    if std::mem::take(failing) {
        tracing::info!("revocations: subscribed to redis again and resynchronised");
    }
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else {
                    return Ended::Failed("the subscription connection closed".into());
                };
                match message.get_payload::<String>().ok().as_deref().and_then(Revocation::decode) {
                    Some(r) => set.apply(r),
                    None => tracing::warn!(channel = CHANNEL, "revocations: ignored a message that is not a revocation"),
                }
            }
            () = tokio::time::sleep(PING_EVERY) => {
                if store.strong_count() == 0 {
                    return Ended::StoreDropped;
                }
                match tokio::time::timeout(limit, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Ended::Failed(bounded("ping", e.to_string())),
                    Err(_) => return Ended::Failed(format!("ping: no answer within {limit:?}")),
                }
            }
        }
    }
}
