//! Upstream groups: the targets of one service, how a request picks one, and their
//! health (active checks and passive ejection).
//!
//! A target's health lives in [`TargetState`], shared by `Arc` with the next
//! generation of the group when a reload keeps the target, so a reload never
//! forgets that a target is down.

pub mod attempt;
mod balance;
pub mod config;
pub mod health;
pub mod tls;

use crate::metrics::{metrics, UpstreamCounters};
use balance::Schedule;
use config::{Balance, UpstreamConfig};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Health and load of one target; survives reloads that keep the target.
#[derive(Debug)]
pub struct TargetState {
    /// Verdict of the active health checks (true until they say otherwise).
    healthy: AtomicBool,
    ok_streak: AtomicU32,
    fail_streak: AtomicU32,
    /// Passive ejection (groups without active checks): skip until this time (ms since epoch).
    ejected_until_ms: AtomicU64,
    /// Requests in flight to this target (for `least_conn`).
    active: AtomicUsize,
}

impl Default for TargetState {
    fn default() -> Self {
        Self {
            healthy: AtomicBool::new(true),
            ok_streak: AtomicU32::new(0),
            fail_streak: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
            active: AtomicUsize::new(0),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[derive(Debug)]
pub struct Target {
    pub address: SocketAddr,
    /// The address as a metric label, made once.
    pub label: String,
    pub weight: u32,
    pub state: Arc<TargetState>,
    /// `fingate_upstream_requests_total` children of this target, kept resolved.
    pub counters: UpstreamCounters,
    /// The name TLS connections to it ask for and verify (empty without TLS).
    pub server_name: String,
}

impl Target {
    pub fn healthy(&self) -> bool {
        self.state.healthy.load(Ordering::Relaxed)
    }

    pub fn ejected(&self) -> bool {
        // Zero (never ejected) is the common case: no clock read for it.
        let until = self.state.ejected_until_ms.load(Ordering::Relaxed);
        until != 0 && until > now_ms()
    }

    /// May receive requests now.
    pub fn available(&self) -> bool {
        self.healthy() && !self.ejected()
    }

    pub fn active_requests(&self) -> usize {
        self.state.active.load(Ordering::Relaxed)
    }
}

/// One upstream group as configured, with its targets' shared state.
#[derive(Debug)]
pub struct UpstreamGroup {
    pub config: UpstreamConfig,
    pub targets: Vec<Target>,
    schedule: Schedule,
    /// Set when a reload replaced this group, so its health-check tasks stop.
    retired: AtomicBool,
    /// Keeps pooled connections apart by TLS material and HTTP version, which
    /// Pingora's own pool key leaves out (zero for plain HTTP/1.1).
    pub connection_key: u64,
}

/// Keeps a target's in-flight count while a request uses it.
#[derive(Debug)]
pub struct ActiveGuard(Arc<TargetState>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl UpstreamGroup {
    /// Builds a group; targets also present in `previous` keep their state, unless
    /// the health checks or the TLS settings changed (a target a wrong CA failed is
    /// judged again with the new one).
    pub fn new(config: UpstreamConfig, previous: Option<&UpstreamGroup>) -> Self {
        let keep_health = previous.is_some_and(|p| {
            p.config.health_check == config.health_check && p.config.tls == config.tls
        });
        if config.tls.as_ref().is_some_and(|t| !t.settings.verify) {
            tracing::warn!(
                upstream = %config.name,
                "tls.verify is false: the targets' certificates are not checked, so anyone on the path can pose as them"
            );
        }
        let targets = config
            .targets
            .iter()
            .map(|t| {
                let state = previous
                    .filter(|_| keep_health)
                    .and_then(|p| p.targets.iter().find(|o| o.address == t.address))
                    .map_or_else(|| Arc::new(TargetState::default()), |o| o.state.clone());
                let label = t.address.to_string();
                Target {
                    address: t.address,
                    counters: UpstreamCounters::new(&config.name, &label),
                    label,
                    weight: t.weight,
                    state,
                    server_name: config
                        .tls
                        .as_ref()
                        .map_or_else(String::new, |tls| tls.server_name(t.address.ip())),
                }
            })
            .collect::<Vec<_>>();
        let weights: Vec<u32> = targets.iter().map(|t| t.weight).collect();
        Self {
            schedule: Schedule::new(&weights),
            targets,
            connection_key: connection_key(&config),
            config,
            retired: AtomicBool::new(false),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
    }

    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Relaxed)
    }

    /// Picks an available target not in `exclude` (targets already tried for this
    /// request). `hash_key` feeds `consistent_hash`; without one it falls back to
    /// round robin. `None` when every target is down or tried.
    pub fn select(&self, hash_key: Option<&[u8]>, exclude: &[usize]) -> Option<usize> {
        let ok = |i: usize| !exclude.contains(&i) && self.targets[i].available();
        match (&self.config.balance, hash_key) {
            (Balance::RoundRobin, _) | (Balance::ConsistentHash(_), None) => self.schedule.next(ok),
            (Balance::Random, _) => balance::weighted_random(&self.targets, ok),
            (Balance::LeastConn, _) => balance::least_conn(&self.targets, &self.schedule, ok),
            (Balance::ConsistentHash(_), Some(key)) => balance::rendezvous(&self.targets, key, ok),
        }
    }

    /// Marks target `index` as carrying one more request until the guard drops.
    pub fn begin_request(&self, index: usize) -> Option<ActiveGuard> {
        let state = &self.targets.get(index)?.state;
        state.active.fetch_add(1, Ordering::Relaxed);
        Some(ActiveGuard(state.clone()))
    }

    /// A connection to target `index` failed: take it out of rotation. With active
    /// checks it stays out until they pass `healthy` times in a row; without, for
    /// `eject_for`.
    pub fn report_connect_failure(&self, index: usize) {
        let Some(t) = self.targets.get(index) else {
            return;
        };
        if self.config.health_check.is_some() {
            t.state.ok_streak.store(0, Ordering::Relaxed);
            t.state.healthy.store(false, Ordering::Relaxed);
        } else {
            let until = now_ms() + self.config.eject_for.as_millis() as u64;
            t.state.ejected_until_ms.store(until, Ordering::Relaxed);
        }
        self.publish_health(index);
    }

    /// Records one active health-check result for target `index` (Err: why it
    /// failed).
    pub fn record_check(&self, index: usize, outcome: Result<(), &str>) {
        let (Some(t), Some(hc)) = (self.targets.get(index), &self.config.health_check) else {
            return;
        };
        let s = &t.state;
        if let Err(reason) = outcome {
            tracing::debug!(upstream = %self.name(), target = %t.label, reason, "health check failed");
        }
        if outcome.is_ok() {
            s.fail_streak.store(0, Ordering::Relaxed);
            let streak = s.ok_streak.fetch_add(1, Ordering::Relaxed) + 1;
            if !s.healthy.load(Ordering::Relaxed) && streak >= hc.healthy {
                s.healthy.store(true, Ordering::Relaxed);
                tracing::info!(upstream = %self.name(), target = %t.label, "target is healthy again");
            }
        } else {
            s.ok_streak.store(0, Ordering::Relaxed);
            let streak = s.fail_streak.fetch_add(1, Ordering::Relaxed) + 1;
            if s.healthy.load(Ordering::Relaxed) && streak >= hc.unhealthy {
                s.healthy.store(false, Ordering::Relaxed);
                let reason = outcome.err().unwrap_or_default();
                tracing::warn!(upstream = %self.name(), target = %t.label, reason, "target failed its health checks; taken out");
            }
        }
        self.publish_health(index);
    }

    /// Removes the health series of the targets `next` (the group that replaces
    /// this one in a reload; None: the group is gone) does not have, so a target
    /// taken out of the config while down stops showing as down.
    pub fn unpublish_removed(&self, next: Option<&UpstreamGroup>) {
        for t in &self.targets {
            let kept = next.is_some_and(|g| g.targets.iter().any(|n| n.label == t.label));
            if !kept {
                let _ = metrics()
                    .upstream_target_healthy
                    .remove_label_values(&[self.name(), &t.label]);
            }
        }
    }

    /// Sets `fingate_upstream_target_healthy` for target `index`.
    pub fn publish_health(&self, index: usize) {
        if let Some(t) = self.targets.get(index) {
            metrics()
                .upstream_target_healthy
                .with_label_values(&[self.name(), &t.label])
                .set(i64::from(t.available()));
        }
    }
}

/// See [`UpstreamGroup::connection_key`].
fn connection_key(config: &UpstreamConfig) -> u64 {
    use std::hash::{Hash, Hasher};
    if config.tls.is_none() && !config.http2 {
        return 0;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    config.tls.as_ref().map(|t| t.fingerprint).hash(&mut h);
    config.http2.hash(&mut h);
    h.finish()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::config::{HashOn, TargetConfig};
    use super::*;
    use std::time::Duration;

    pub(crate) fn group(balance: Balance, weights: &[u32]) -> UpstreamGroup {
        let targets = weights
            .iter()
            .enumerate()
            .map(|(i, w)| TargetConfig {
                address: SocketAddr::from(([127, 0, 0, 1], 10_000 + i as u16)),
                weight: *w,
            })
            .collect();
        UpstreamGroup::new(
            UpstreamConfig {
                name: "g".into(),
                targets,
                balance,
                health_check: None,
                connect_timeout: Duration::from_secs(1),
                read_timeout: Duration::from_secs(1),
                retries: 1,
                eject_for: Duration::from_secs(10),
                tls: None,
                http2: false,
            },
            None,
        )
    }

    fn counts(g: &UpstreamGroup, n: usize, key: impl Fn(usize) -> Option<Vec<u8>>) -> Vec<usize> {
        let mut c = vec![0; g.targets.len()];
        for i in 0..n {
            c[g.select(key(i).as_deref(), &[]).unwrap()] += 1;
        }
        c
    }

    #[test]
    fn round_robin_is_even_and_weighted_is_exact() {
        assert_eq!(
            counts(&group(Balance::RoundRobin, &[1, 1]), 100, |_| None),
            [50, 50]
        );
        assert_eq!(
            counts(&group(Balance::RoundRobin, &[1, 2]), 300, |_| None),
            [100, 200]
        );
    }

    #[test]
    fn random_follows_weights_roughly() {
        let c = counts(&group(Balance::Random, &[1, 3]), 4000, |_| None);
        assert!((800..1200).contains(&c[0]), "{c:?}");
    }

    #[test]
    fn consistent_hash_is_sticky_and_moves_little() {
        let g = group(Balance::ConsistentHash(HashOn::Ip), &[1, 1, 1]);
        let picks: Vec<usize> = (0..300)
            .map(|i| g.select(Some(format!("k{i}").as_bytes()), &[]).unwrap())
            .collect();
        let again: Vec<usize> = (0..300)
            .map(|i| g.select(Some(format!("k{i}").as_bytes()), &[]).unwrap())
            .collect();
        assert_eq!(picks, again);
        // Taking target 0 out moves only the keys that were on it.
        g.report_connect_failure(0);
        for (i, before) in picks.iter().enumerate() {
            let after = g.select(Some(format!("k{i}").as_bytes()), &[]).unwrap();
            if *before != 0 {
                assert_eq!(after, *before, "key k{i} moved without need");
            } else {
                assert_ne!(after, 0);
            }
        }
    }

    #[test]
    fn least_conn_prefers_the_idle_target() {
        let g = group(Balance::LeastConn, &[1, 1]);
        let _busy = g.begin_request(0).unwrap();
        assert_eq!(counts(&g, 10, |_| None), [0, 10]);
        drop(_busy);
        assert_eq!(g.targets[0].active_requests(), 0);
    }

    #[test]
    fn excluded_and_ejected_targets_are_skipped() {
        let g = group(Balance::RoundRobin, &[1, 1]);
        assert_eq!(counts(&g, 10, |_| None).iter().sum::<usize>(), 10);
        for _ in 0..10 {
            assert_eq!(g.select(None, &[0]), Some(1));
        }
        g.report_connect_failure(1);
        assert_eq!(g.select(None, &[0]), None);
        assert_eq!(g.select(None, &[]), Some(0));
    }

    #[test]
    fn reload_keeps_target_state() {
        let g = group(Balance::RoundRobin, &[1, 1]);
        g.report_connect_failure(1);
        let next = UpstreamGroup::new(g.config.clone(), Some(&g));
        assert!(!next.targets[1].available());
        assert!(next.targets[0].available());
    }
}
