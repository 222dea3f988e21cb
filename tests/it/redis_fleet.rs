//! Real distributed Redis for the fleet tests: a local Redis Cluster (primaries,
//! optionally a replica each, built with `redis-cli --cluster create`) and a
//! Sentinel set (one primary, one replica, three sentinels). Every process binds
//! loopback and dies with its value.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::harness::{free_port, wait_for};
use crate::redis::Redis;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a node may be unreachable before the cluster (or the sentinels) fail
/// it over: short, so failover tests take seconds.
const NODE_TIMEOUT_MS: &str = "1000";

pub struct Cluster {
    pub nodes: Vec<Redis>,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// `primaries` primaries with `replicas` replicas each; returns once every node
    /// says the cluster is ok and knows every other node.
    pub fn start(primaries: usize, replicas: usize) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let nodes: Vec<Redis> = (0..primaries * (1 + replicas))
            .map(|_| {
                let port = free_port();
                let conf = dir.path().join(format!("nodes-{port}.conf"));
                Redis::start_with(
                    port,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        conf.to_str().unwrap(),
                        "--cluster-node-timeout",
                        NODE_TIMEOUT_MS,
                        "--dir",
                        dir.path().to_str().unwrap(),
                    ],
                )
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
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
        let cluster = Cluster { nodes, dir };
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

    /// `redis+cluster://` naming every node as a seed.
    pub fn url(&self) -> String {
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
                    sentinel_cli(*p, &["SENTINEL", "CKQUORUM", MASTER_NAME])
                        .is_some_and(|o| o.starts_with("OK 3"))
                        && sentinel_cli(*p, &["SENTINEL", "REPLICAS", MASTER_NAME])
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
        let out = sentinel_cli(
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

fn sentinel_cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
