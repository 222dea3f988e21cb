//! How the Redis store reaches each [`Topology`]: one connection per thread that
//! uses the store, of the kind the topology needs, and for Sentinel the primary's
//! address, kept current by the probe.
//!
//! - one server: a `ConnectionManager` (it reconnects by itself);
//! - a cluster: the redis crate's cluster connection (it discovers the nodes from
//!   the seeds, routes each command to its slot's primary, follows `MOVED` and
//!   `ASK`, and rereads the slot map after a failover);
//! - Sentinel: a `ConnectionManager` to the primary the sentinels name. Every probe
//!   asks the sentinels again; when they name another node (a failover), every
//!   thread's connection is replaced.

use super::topology::Topology;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Cmd, IntoConnectionInfo as _, Pipeline, RedisFuture, TlsMode, Value};
use std::sync::Mutex;
use std::time::Duration;

/// One thread's connection to the store.
#[derive(Clone)]
pub(super) enum Conn {
    Manager(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Manager(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Manager(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Manager(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Where the store connects, built from its URL without I/O.
pub(super) enum Target {
    Single(redis::Client),
    Cluster {
        client: ClusterClient,
        config: ClusterConfig,
        /// Each seed on its own: the fleet feed subscribes through one of them
        /// (a cluster delivers what is published on any node to every node).
        seeds: Vec<redis::Client>,
    },
    Sentinel {
        /// Asked by the probe only, one question at a time.
        sentinels: tokio::sync::Mutex<SentinelClient>,
        /// The primary the sentinels named last (None until they first answer).
        primary: Mutex<Option<redis::Client>>,
    },
}

impl Target {
    pub(super) fn open(url: &str, timeout: Duration) -> Result<Target, String> {
        let connect_timeout = timeout.max(Duration::from_millis(500));
        Ok(match Topology::parse(url)? {
            Topology::Single(url) => {
                Target::Single(redis::Client::open(url.as_str()).map_err(|e| e.to_string())?)
            }
            Topology::Cluster { nodes } => {
                let seeds = nodes
                    .iter()
                    .map(|n| redis::Client::open(n.as_str()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string())?;
                let client = ClusterClientBuilder::new(nodes)
                    // Few, short retries, as with one server: the operation is
                    // bounded by store.timeout anyway, and the next one retries.
                    .retries(1)
                    .min_retry_wait(50)
                    .max_retry_wait(200)
                    .build()
                    .map_err(|e| e.to_string())?;
                let config = ClusterConfig::new()
                    .set_connection_timeout(connect_timeout)
                    .set_response_timeout(timeout);
                Target::Cluster {
                    client,
                    config,
                    seeds,
                }
            }
            Topology::Sentinel {
                sentinels,
                master,
                primary,
                tls,
            } => {
                let settings = primary
                    .as_str()
                    .into_connection_info()
                    .map_err(|e| e.to_string())?
                    .redis_settings()
                    .clone();
                let mut node =
                    SentinelNodeConnectionInfo::default().set_redis_connection_info(settings);
                if tls {
                    node = node.set_tls_mode(TlsMode::Secure);
                }
                let client = SentinelClient::build(
                    sentinels,
                    master,
                    Some(node),
                    SentinelServerType::Master,
                )
                .map_err(|e| e.to_string())?;
                Target::Sentinel {
                    sentinels: tokio::sync::Mutex::new(client),
                    primary: Mutex::new(None),
                }
            }
        })
    }

    /// A new connection for the calling thread, made without I/O. Called from
    /// async code: a Tokio runtime is current for the connection's own tasks.
    pub(super) fn connect(&self, manager: &ConnectionManagerConfig) -> Result<Conn, String> {
        let single = |client: redis::Client| {
            ConnectionManager::new_lazy_with_config(client, manager.clone())
                .map(Conn::Manager)
                .map_err(|e| e.to_string())
        };
        match self {
            Target::Single(client) => single(client.clone()),
            Target::Cluster { client, config, .. } => Ok(Conn::Cluster(
                client.get_pending_async_connection_with_config(config.clone()),
            )),
            Target::Sentinel { primary, .. } => {
                let known = primary.lock().unwrap_or_else(|p| p.into_inner()).clone();
                single(known.ok_or("the sentinels have not named a primary yet")?)
            }
        }
    }

    /// The servers the fleet feed may subscribe through, in the order to try them.
    pub(super) fn subscribe_candidates(&self) -> Vec<redis::Client> {
        match self {
            Target::Single(client) => vec![client.clone()],
            Target::Cluster { seeds, .. } => seeds.clone(),
            Target::Sentinel { primary, .. } => primary
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .into_iter()
                .collect(),
        }
    }

    /// For Sentinel: asks the sentinels which node is the primary (they answer,
    /// and that node confirms its role). `Ok(true)` when it is another node than
    /// before, which the caller must then connect to instead.
    pub(super) async fn follow_primary(&self, limit: Duration) -> Result<bool, String> {
        let Target::Sentinel { sentinels, primary } = self else {
            return Ok(false);
        };
        let named = {
            let mut sentinels = sentinels.lock().await;
            tokio::time::timeout(limit, sentinels.async_get_client())
                .await
                .map_err(|_| format!("the sentinels gave no primary within {limit:?}"))?
                .map_err(|e| format!("the sentinels gave no primary: {e}"))?
        };
        let mut known = primary.lock().unwrap_or_else(|p| p.into_inner());
        let moved = !known
            .as_ref()
            .is_some_and(|k| k.get_connection_info().addr() == named.get_connection_info().addr());
        if moved {
            tracing::info!(primary = %named.get_connection_info().addr(), "store: the sentinels name this redis primary; connecting to it");
            *known = Some(named);
        }
        Ok(moved)
    }
}
