//! Registered clients ("consumers") and where they are kept.
//!
//! [`ConsumerStore`] is the seam: [`YamlConsumers`] serves the `consumers:` list of
//! the config (read-only: edit the file and reload); [`SharedConsumers`] keeps
//! run-time registrations in the shared store (Redis), and [`Layered`] puts the
//! YAML list in front of it.

mod shared;

pub use shared::{SharedConsumers, CONSUMERS_KEY};

pub use crate::edge::tls::client_cert::ClientCertMatch;
use crate::store::Store;
use crate::store::StoreBackend;
use async_trait::async_trait;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

/// One registered client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    pub username: String,
    /// argon2id PHC string; the password itself is never kept. None: the consumer
    /// cannot log in with a password (it is known by its client certificate).
    pub password_hash: Option<String>,
    /// The client certificate that identifies it (the `mtls` filter).
    pub client_cert: Option<ClientCertMatch>,
    pub scopes: Vec<String>,
    pub disabled: bool,
}

/// A consumer as the admin API and CLI show it: never the hash.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConsumerView {
    pub username: String,
    pub scopes: Vec<String>,
    pub disabled: bool,
    /// `yaml` (from the config file) or `store` (registered at run time).
    pub source: &'static str,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConsumerStoreError {
    /// This store cannot change at run time; the message says what to do instead.
    #[error("{0}")]
    ReadOnly(String),
    #[error("consumer {0:?} already exists")]
    Exists(String),
    #[error("the consumer store is unavailable: {0}")]
    Unavailable(String),
    /// A stored record cannot be read; the message names it.
    #[error("{0}")]
    Corrupt(String),
}

/// Where consumers are looked up at login and managed by the admin API / CLI.
#[async_trait]
pub trait ConsumerStore: Send + Sync + Debug {
    /// The consumer named `username`, if registered.
    async fn get(&self, username: &str) -> Result<Option<Arc<Consumer>>, ConsumerStoreError>;
    /// Every consumer, sorted by username.
    async fn list(&self) -> Result<Vec<ConsumerView>, ConsumerStoreError>;
    /// Registers a consumer at run time (`password_hash` already argon2id).
    async fn add(&self, consumer: Consumer) -> Result<(), ConsumerStoreError>;
    /// Removes a run-time consumer; `Ok(false)` when there was none.
    async fn remove(&self, username: &str) -> Result<bool, ConsumerStoreError>;
}

/// The revocation of every token `username` (a local consumer) holds now.
pub fn revoke_all_of(username: &str) -> crate::store::Revocation {
    let now = super::claims::now();
    crate::store::Revocation::Consumer {
        consumer: username.to_owned(),
        at: now,
        until: now + crate::store::revocation::HOLD.as_secs(),
    }
}

/// Consumers of the file whose tokens must stop working: disabled now (at start
/// too: a token issued before a restart is still alive), or enabled before and
/// now removed or disabled.
pub fn withdrawn<'a>(now: &'a [Consumer], before: Option<&'a [Consumer]>) -> Vec<&'a str> {
    let enabled_before = |name: &str| {
        before.map_or(true, |b| {
            b.iter().any(|c| c.username == name && !c.disabled)
        })
    };
    let mut out: Vec<&str> = now
        .iter()
        .filter(|c| c.disabled && enabled_before(&c.username))
        .map(|c| c.username.as_str())
        .collect();
    if let Some(before) = before {
        out.extend(
            before
                .iter()
                .filter(|b| !b.disabled && !now.iter().any(|c| c.username == b.username))
                .map(|b| b.username.as_str()),
        );
    }
    out
}

/// What run-time registration answers with the memory store.
pub const READ_ONLY_MESSAGE: &str = "run-time consumers need the shared store: set `store.backend: redis` (they then survive restarts), or add the consumer under `consumers:` in the configuration file and reload";

/// The consumers of the configuration file.
#[derive(Debug, Default)]
pub struct YamlConsumers {
    by_name: HashMap<String, Arc<Consumer>>,
}

impl YamlConsumers {
    pub fn new(consumers: &[Consumer]) -> Self {
        Self {
            by_name: consumers
                .iter()
                .map(|c| (c.username.clone(), Arc::new(c.clone())))
                .collect(),
        }
    }

    pub fn contains(&self, username: &str) -> bool {
        self.by_name.contains_key(username)
    }
}

fn view(c: &Consumer, source: &'static str) -> ConsumerView {
    ConsumerView {
        username: c.username.clone(),
        scopes: c.scopes.clone(),
        disabled: c.disabled,
        source,
    }
}

#[async_trait]
impl ConsumerStore for YamlConsumers {
    async fn get(&self, username: &str) -> Result<Option<Arc<Consumer>>, ConsumerStoreError> {
        Ok(self.by_name.get(username).cloned())
    }
    async fn list(&self) -> Result<Vec<ConsumerView>, ConsumerStoreError> {
        let mut out: Vec<_> = self.by_name.values().map(|c| view(c, "yaml")).collect();
        out.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(out)
    }
    async fn add(&self, _consumer: Consumer) -> Result<(), ConsumerStoreError> {
        Err(ConsumerStoreError::ReadOnly(READ_ONLY_MESSAGE.into()))
    }
    async fn remove(&self, _username: &str) -> Result<bool, ConsumerStoreError> {
        Err(ConsumerStoreError::ReadOnly(READ_ONLY_MESSAGE.into()))
    }
}

/// The consumers the gateway sees over `store`: the file's, and with the shared
/// store also the run-time ones behind them. Run-time registration needs state
/// that outlives the process, so with the memory store the file's list is all
/// there is (and changes answer 409). The gateway and the CLI both use this.
pub fn over_store(consumers: &[Consumer], store: &Arc<dyn Store>) -> Arc<dyn ConsumerStore> {
    let yaml = Arc::new(YamlConsumers::new(consumers));
    match store.backend() {
        StoreBackend::Redis => Arc::new(Layered {
            yaml,
            runtime: Arc::new(SharedConsumers::new(store.clone())),
        }),
        StoreBackend::Memory => yaml,
    }
}

/// The YAML consumers first, then a run-time store: a file entry always wins, and
/// a run-time registration cannot shadow or remove it.
#[derive(Debug)]
pub struct Layered {
    pub yaml: Arc<YamlConsumers>,
    pub runtime: Arc<dyn ConsumerStore>,
}

#[async_trait]
impl ConsumerStore for Layered {
    async fn get(&self, username: &str) -> Result<Option<Arc<Consumer>>, ConsumerStoreError> {
        match self.yaml.get(username).await? {
            Some(c) => Ok(Some(c)),
            None => self.runtime.get(username).await,
        }
    }
    async fn list(&self) -> Result<Vec<ConsumerView>, ConsumerStoreError> {
        let mut out = self.yaml.list().await?;
        out.extend(
            self.runtime
                .list()
                .await?
                .into_iter()
                .filter(|c| !self.yaml.contains(&c.username)),
        );
        out.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(out)
    }
    async fn add(&self, consumer: Consumer) -> Result<(), ConsumerStoreError> {
        if self.yaml.contains(&consumer.username) {
            return Err(ConsumerStoreError::Exists(consumer.username));
        }
        self.runtime.add(consumer).await
    }
    async fn remove(&self, username: &str) -> Result<bool, ConsumerStoreError> {
        if self.yaml.contains(username) {
            return Err(ConsumerStoreError::ReadOnly(format!(
                "{username:?} comes from the configuration file: remove it there and reload"
            )));
        }
        self.runtime.remove(username).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn consumer(name: &str) -> Consumer {
        Consumer {
            username: name.into(),
            password_hash: Some("$argon2id$secret".into()),
            client_cert: None,
            scopes: vec!["a:read".into()],
            disabled: false,
        }
    }

    #[tokio::test]
    async fn yaml_consumers_are_found_listed_without_hashes_and_read_only() {
        let s = YamlConsumers::new(&[consumer("web"), consumer("app")]);
        assert_eq!(s.get("web").await.unwrap().unwrap().username, "web");
        assert!(s.get("nobody").await.unwrap().is_none());
        let list = s.list().await.unwrap();
        assert_eq!(list[0].username, "app");
        assert!(!serde_json::to_string(&list).unwrap().contains("argon2"));
        let e = s.add(consumer("new")).await.unwrap_err();
        assert!(e.to_string().contains("store.backend: redis"), "{e}");
        assert!(s.remove("web").await.is_err());
    }

    #[test]
    fn withdrawn_consumers_are_the_newly_disabled_and_removed() {
        let disabled = |name: &str| Consumer {
            disabled: true,
            ..consumer(name)
        };
        let before = [consumer("a"), consumer("b"), disabled("c"), consumer("d")];
        let now = [consumer("a"), disabled("b"), disabled("c"), disabled("new")];
        assert_eq!(withdrawn(&now, Some(&before)), vec!["b", "d"]);
        assert_eq!(withdrawn(&now, None), vec!["b", "c", "new"], "at start");
    }

    #[tokio::test]
    async fn layered_puts_the_file_first() {
        let l = Layered {
            yaml: Arc::new(YamlConsumers::new(&[consumer("web")])),
            runtime: Arc::new(YamlConsumers::new(&[consumer("extra")])),
        };
        assert!(l.get("extra").await.unwrap().is_some());
        assert_eq!(
            l.add(consumer("web")).await,
            Err(ConsumerStoreError::Exists("web".into()))
        );
        assert!(l
            .remove("web")
            .await
            .unwrap_err()
            .to_string()
            .contains("configuration file"));
        assert_eq!(l.list().await.unwrap().len(), 2);
    }
}
