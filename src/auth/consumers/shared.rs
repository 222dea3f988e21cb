//! Run-time consumers in the shared store (`store.backend: redis`): one Redis hash,
//! `fingate:consumers`, field = username, value = a JSON record with the argon2id
//! hash, scopes and the disabled flag. A hash keeps registration atomic (`HSETNX`:
//! two admins adding the same name cannot both win) and listing one command, and
//! every gateway of a fleet sees a registration or removal at the next login.

use super::{Consumer, ConsumerStore, ConsumerStoreError, ConsumerView};
use crate::store::{Store, StoreError};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The Redis key holding every run-time consumer.
pub const CONSUMERS_KEY: &str = "fingate:consumers";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password_hash: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    disabled: bool,
}

/// Consumers registered at run time, kept in the shared store.
#[derive(Debug)]
pub struct SharedConsumers {
    store: Arc<dyn Store>,
}

impl SharedConsumers {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }
}

fn unavailable(e: StoreError) -> ConsumerStoreError {
    ConsumerStoreError::Unavailable(e.to_string())
}

/// A record someone wrote by hand (or an older format) is refused, never guessed at:
/// a login against it fails closed and the operator is told which entry is wrong.
fn decode(username: &str, bytes: &[u8]) -> Result<Consumer, ConsumerStoreError> {
    let r: Record = serde_json::from_slice(bytes).map_err(|e| {
        ConsumerStoreError::Corrupt(format!(
            "{CONSUMERS_KEY} field {username:?} is not a consumer record: {e}"
        ))
    })?;
    Ok(Consumer {
        username: username.to_owned(),
        password_hash: r.password_hash,
        client_cert: None,
        scopes: r.scopes,
        disabled: r.disabled,
    })
}

#[async_trait]
impl ConsumerStore for SharedConsumers {
    async fn get(&self, username: &str) -> Result<Option<Arc<Consumer>>, ConsumerStoreError> {
        match self.store.map_get(CONSUMERS_KEY, username).await {
            Ok(Some(bytes)) => Ok(Some(Arc::new(decode(username, &bytes)?))),
            Ok(None) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn list(&self) -> Result<Vec<ConsumerView>, ConsumerStoreError> {
        let entries = self
            .store
            .map_entries(CONSUMERS_KEY)
            .await
            .map_err(unavailable)?;
        let mut out = Vec::with_capacity(entries.len());
        for (name, bytes) in entries {
            let c = decode(&name, &bytes)?;
            out.push(super::view(&c, "store"));
        }
        out.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(out)
    }

    async fn add(&self, consumer: Consumer) -> Result<(), ConsumerStoreError> {
        let record = Record {
            password_hash: consumer.password_hash,
            scopes: consumer.scopes,
            disabled: consumer.disabled,
        };
        let bytes = serde_json::to_vec(&record)
            .map_err(|e| ConsumerStoreError::Corrupt(format!("cannot encode: {e}")))?;
        let inserted = self
            .store
            .map_insert_new(CONSUMERS_KEY, &consumer.username, &bytes)
            .await
            .map_err(unavailable)?;
        if inserted {
            Ok(())
        } else {
            Err(ConsumerStoreError::Exists(consumer.username))
        }
    }

    /// Removes the consumer and revokes its tokens: the revocation first, so a
    /// consumer is never gone while its tokens still work.
    async fn remove(&self, username: &str) -> Result<bool, ConsumerStoreError> {
        let exists = self
            .store
            .map_get(CONSUMERS_KEY, username)
            .await
            .map_err(unavailable)?
            .is_some();
        if !exists {
            return Ok(false);
        }
        self.store
            .revoke(&super::revoke_all_of(username))
            .await
            .map_err(unavailable)?;
        self.store
            .map_remove(CONSUMERS_KEY, username)
            .await
            .map_err(unavailable)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn consumer(name: &str) -> Consumer {
        Consumer {
            username: name.into(),
            password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
            client_cert: None,
            scopes: vec!["accounts:read".into()],
            disabled: false,
        }
    }

    #[tokio::test]
    async fn registers_finds_lists_and_removes() {
        let store = Arc::new(MemoryStore::default());
        let s = SharedConsumers::new(store);
        s.add(consumer("partner")).await.unwrap();
        assert_eq!(
            s.add(consumer("partner")).await,
            Err(ConsumerStoreError::Exists("partner".into()))
        );
        let got = s.get("partner").await.unwrap().unwrap();
        let revoked = |s: &SharedConsumers| {
            let now = crate::auth::claims::now();
            s.store
                .revocations()
                .is_revoked(None, "partner", Some(now - 1), now)
        };
        assert!(!revoked(&s));
        assert_eq!(*got, consumer("partner"));
        let list = s.list().await.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].source, "store");
        assert!(s.remove("partner").await.unwrap());
        assert!(!s.remove("partner").await.unwrap());
        assert!(s.get("partner").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_hand_written_record_fails_closed_with_its_name() {
        let store = Arc::new(MemoryStore::default());
        store
            .map_insert_new(CONSUMERS_KEY, "bad", b"{\"password\":\"x\"}")
            .await
            .unwrap();
        let s = SharedConsumers::new(store);
        let e = s.get("bad").await.unwrap_err();
        assert!(e.to_string().contains("\"bad\""), "{e}");
        assert!(s.list().await.is_err());
    }
}
