//! Real distributed Redis for the fleet tests: a local Redis Cluster (primaries,
//! optionally a replica each, built with `redis-cli --cluster create`) and a
//! Sentinel set (one primary, one replica, three sentinels). Every process binds
//! loopback and dies with its value.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::harness::{free_port, wait_for};
use crate::redis::{redis_cli, Redis};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a node may be unreachable before the cluster (or the sentinels) fail
/// it over: short, so failover tests take seconds.
const NODE_TIMEOUT_MS: &str = "1000";

pub struct Cluster {
    pub nodes: Vec<Redis>,
    /// Each node's TLS port, when the cluster speaks TLS (beside its plain port,
    /// which the test's redis-cli uses).
    tls_ports: Vec<u16>,
    dir: tempfile::TempDir,
}

/// A TLS cluster's files: the nodes' server certificate and key, the client
/// certificate and key they present to each other on the cluster bus, the CA.
pub struct ClusterTls<'a> {
    pub cert: &'a str,
    pub key: &'a str,
    pub client_cert: &'a str,
    pub client_key: &'a str,
    pub ca: &'a str,
}

impl Cluster {
    /// `primaries` primaries with `replicas` replicas each; returns once every node
    /// says the cluster is ok and knows every other node.
    pub fn start(primaries: usize, replicas: usize) -> Cluster {
        Self::start_with(primaries, replicas, None)
    }

    /// Like [`Cluster::start`]; with `tls`, clients and the cluster bus also
    /// speak TLS (each node answers TLS clients with its nodes' TLS ports).
    pub fn start_with(primaries: usize, replicas: usize, tls: Option<&ClusterTls>) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut tls_ports = Vec::new();
        let nodes: Vec<Redis> = (0..primaries * (1 + replicas))
            .map(|_| {
                let port = free_port();
                let conf = dir.path().join(format!("nodes-{port}.conf"));
                // The bus port is chosen too: Redis's default (port + 10000) may be
                // one another test holds.
                let bus_port = free_port().to_string();
                let mut args: Vec<String> = [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus_port,
                    "--cluster-config-file",
                    conf.to_str().unwrap(),
                    "--cluster-node-timeout",
                    NODE_TIMEOUT_MS,
                    "--dir",
                    dir.path().to_str().unwrap(),
                ]
                .map(String::from)
                .to_vec();
                if let Some(t) = tls {
                    let tls_port = free_port();
                    tls_ports.push(tls_port);
                    args.extend(
                        [
                            "--tls-port",
                            &tls_port.to_string(),
                            "--tls-cluster",
                            "yes",
                            "--tls-replication",
                            "yes",
                            "--tls-cert-file",
                            t.cert,
                            "--tls-key-file",
                            t.key,
                            "--tls-client-cert-file",
                            t.client_cert,
                            "--tls-client-key-file",
                            t.client_key,
                            "--tls-ca-cert-file",
                            t.ca,
                            "--tls-auth-clients",
                            "no",
                        ]
                        .map(String::from),
                    );
                }
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                Redis::start_with(port, &args)
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        // Bounded: redis-cli waits for the nodes to join for as long as it takes.
        let out = Command::new("timeout")
            .args(["60", "redis-cli", "--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Cluster {
            nodes,
            tls_ports,
            dir,
        };
        cluster.wait_ok(cluster.nodes.len());
        // A replica that never finished its first sync cannot be promoted.
        wait_for(Duration::from_secs(20), "replicas in sync", || {
            cluster
                .nodes
                .iter()
                .filter(|n| n.cli(&["ROLE"]).starts_with("slave"))
                .all(|n| {
                    n.cli(&["INFO", "replication"])
                        .contains("master_link_status:up")
                })
                .then_some(())
        });
        cluster
    }

    /// Waits until every live node reports `cluster_state:ok` and sees `known` nodes.
    pub fn wait_ok(&self, known: usize) {
        wait_for(Duration::from_secs(20), "cluster state ok", || {
            self.live()
                .all(|n| {
                    let info = n.cli(&["CLUSTER", "INFO"]);
                    info.contains("cluster_state:ok")
                        && info.contains(&format!("cluster_known_nodes:{known}"))
                })
                .then_some(())
        });
    }

    fn live(&self) -> impl Iterator<Item = &Redis> {
        self.nodes.iter().filter(|n| n.alive())
    }

    /// `redis+cluster://` naming every node as a seed (`rediss+cluster://` and the
    /// TLS ports for a TLS cluster).
    pub fn url(&self) -> String {
        if !self.tls_ports.is_empty() {
            let seeds: Vec<String> = self
                .tls_ports
                .iter()
                .map(|p| format!("127.0.0.1:{p}"))
                .collect();
            return format!("rediss+cluster://{}", seeds.join(","));
        }
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// The primary that holds a key matching `pattern` (e.g. `fingate:rl:*`).
    pub fn primary_holding(&self, pattern: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| {
                n.alive()
                    && n.cli(&["ROLE"]).starts_with("master")
                    && !n.cli(&["--scan", "--pattern", pattern]).is_empty()
            })
            .unwrap_or_else(|| panic!("no primary holds {pattern}"))
    }

    /// Sum of `command` calls over the live nodes.
    pub fn calls(&self, command: &str) -> u64 {
        self.live().map(|n| n.calls(command)).sum()
    }
}

/// One primary, one replica, three sentinels watching them as `mymaster`.
pub struct Sentinels {
    pub primary: Redis,
    pub replica: Redis,
    sentinels: Vec<Child>,
    pub ports: Vec<u16>,
    dir: tempfile::TempDir,
}

pub const MASTER_NAME: &str = "mymaster";

impl Sentinels {
    pub fn start() -> Sentinels {
        let dir = tempfile::tempdir().unwrap();
        let primary = Redis::start();
        // A replica writes the primary's snapshot into its directory.
        let replica = Redis::start_with(
            free_port(),
            &[
                "--replicaof",
                "127.0.0.1",
                &primary.port.to_string(),
                "--dir",
                dir.path().to_str().unwrap(),
            ],
        );
        wait_for(Duration::from_secs(10), "replica in sync", || {
            replica
                .cli(&["INFO", "replication"])
                .contains("master_link_status:up")
                .then_some(())
        });
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let sentinels = ports
            .iter()
            .map(|port| {
                let conf = dir.path().join(format!("sentinel-{port}.conf"));
                std::fs::write(
                    &conf,
                    format!(
                        "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor {MASTER_NAME} 127.0.0.1 {} 2\n\
                         sentinel down-after-milliseconds {MASTER_NAME} {NODE_TIMEOUT_MS}\n\
                         sentinel failover-timeout {MASTER_NAME} 10000\n",
                        dir.path().display(),
                        primary.port
                    ),
                )
                .unwrap();
                Command::new("redis-server")
                    .arg(&conf)
                    .arg("--sentinel")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn redis-server --sentinel")
            })
            .collect();
        let s = Sentinels {
            primary,
            replica,
            sentinels,
            ports,
            dir,
        };
        // Every sentinel knows the other two and the replica: a failover can start.
        wait_for(Duration::from_secs(20), "sentinels ready", || {
            s.ports
                .iter()
                .all(|p| {
                    redis_cli(*p, &["SENTINEL", "CKQUORUM", MASTER_NAME])
                        .is_some_and(|o| o.starts_with("OK 3"))
                        && redis_cli(*p, &["SENTINEL", "REPLICAS", MASTER_NAME])
                            .is_some_and(|o| o.contains(&s.replica.port.to_string()))
                })
                .then_some(())
        });
        s
    }

    /// `redis+sentinel://` naming the three sentinels.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+sentinel://{}/{MASTER_NAME}", hosts.join(","))
    }

    /// The port the sentinels name as the primary now.
    pub fn primary_port(&self) -> Option<u16> {
        let out = redis_cli(
            self.ports[0],
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME],
        )?;
        out.lines().nth(1)?.trim().parse().ok()
    }
}

impl Drop for Sentinels {
    fn drop(&mut self) {
        for c in &mut self.sentinels {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
