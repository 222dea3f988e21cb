//! Signals, draining and config-file watching.
//!
//! Pingora's own graceful shutdown sleeps the whole grace period even when nothing
//! is in flight, and treats SIGINT as "exit now". fingate treats SIGTERM and SIGINT
//! alike: stop accepting, let in-flight requests finish, exit 0 as soon as none are
//! left (or when the grace period ends). SIGQUIT hands the listening sockets to a
//! new process started with `fingate run --upgrade`, then drains the same way.

use crate::logging::audit::Origin;
use crate::metrics::metrics;
use crate::runtime::Gateway;
use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use pingora::services::background::BackgroundService;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};

/// How often the drain watcher looks at the in-flight count.
const DRAIN_POLL: Duration = Duration::from_millis(50);

/// Maps Unix signals to Pingora's shutdown kinds and starts the drain watcher.
pub struct Signals {
    pub grace: Duration,
    /// Pingora keeps listener sockets open this long after handing them over on
    /// upgrade, so the new process is serving before the old one stops accepting.
    pub upgrade_delay: Duration,
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::quit()),
        ) else {
            tracing::error!("cannot install signal handlers; shutting down");
            return ShutdownSignal::FastShutdown;
        };
        let (kind, delay) = tokio::select! {
            _ = term.recv() => ("SIGTERM", Duration::ZERO),
            _ = int.recv() => ("SIGINT", Duration::ZERO),
            _ = quit.recv() => ("SIGQUIT", self.upgrade_delay),
        };
        tracing::info!(
            signal = kind,
            grace_period_s = self.grace.as_secs(),
            "shutting down gracefully: no new connections, draining in-flight requests"
        );
        spawn_drain_watcher(self.grace + delay, delay);
        if kind == "SIGQUIT" {
            ShutdownSignal::GracefulUpgrade
        } else {
            ShutdownSignal::GracefulTerminate
        }
    }
}

/// Exits the process once nothing is in flight (after `not_before`), or when
/// `deadline` passes with requests still running (they are cut).
fn spawn_drain_watcher(deadline: Duration, not_before: Duration) {
    let started = Instant::now();
    let spawned = std::thread::Builder::new()
        .name("fingate-drain".into())
        .spawn(move || {
            let mut idle_polls = 0;
            loop {
                std::thread::sleep(DRAIN_POLL);
                let elapsed = started.elapsed();
                let inflight = metrics().inflight_requests.get();
                idle_polls = if inflight == 0 { idle_polls + 1 } else { 0 };
                // Two idle polls in a row: a request between accept and its first
                // filter is not counted yet, so give it one more look.
                if elapsed >= not_before && idle_polls >= 2 {
                    tracing::info!(after_ms = elapsed.as_millis() as u64, "drained: exiting");
                    crate::logging::access::flush();
                    std::process::exit(0);
                }
                if elapsed >= deadline {
                    tracing::warn!(
                        inflight,
                        "grace period over: exiting with requests still in flight"
                    );
                    crate::logging::access::flush();
                    std::process::exit(0);
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the drain watcher; Pingora's grace period applies");
    }
}

/// Reloads on SIGHUP.
pub struct ReloadOnSighup {
    pub gateway: Arc<Gateway>,
}

#[async_trait]
impl BackgroundService for ReloadOnSighup {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; use POST /admin/reload");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    tracing::info!("SIGHUP received: reloading the configuration");
                    reload_off_thread(&self.gateway, Origin::SIGHUP).await;
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Parsing and building run on a blocking thread, off the request threads.
async fn reload_off_thread(gateway: &Arc<Gateway>, origin: Origin) {
    let gateway = gateway.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || gateway.reload(origin)).await {
        tracing::error!(error = %e, "reload task failed");
    }
}

/// How often `--watch` looks at the file, and how long it must stay unchanged
/// before a reload (editors write in several steps: truncate, write, rename).
const WATCH_POLL: Duration = Duration::from_millis(200);
const WATCH_SETTLE: Duration = Duration::from_millis(300);

/// `fingate run --watch`: reloads when the config file changes, or one of the
/// files it names (certificates, keys, CA bundles: a renewal tool rewrites those
/// without touching the config).
///
/// Polls the file's metadata rather than using inotify: a poll sees the same path
/// whether the file was edited in place, replaced by rename, or deleted and
/// recreated, with no watch to re-arm — at the cost of up to 0.5 s of delay.
pub struct WatchConfig {
    pub gateway: Arc<Gateway>,
    pub path: PathBuf,
}

impl WatchConfig {
    /// The config file's version, then those of the files it names, in order.
    fn fingerprints(&self) -> Vec<Option<(std::time::SystemTime, u64, u64)>> {
        let named = self.gateway.current().config.named_files();
        std::iter::once(self.path.as_path())
            .chain(named.iter().map(PathBuf::as_path))
            .map(fingerprint)
            .collect()
    }
}

/// What identifies one version of the file on disk.
fn fingerprint(path: &Path) -> Option<(std::time::SystemTime, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

#[async_trait]
impl BackgroundService for WatchConfig {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        tracing::info!(file = %self.path.display(), "watching the configuration file for changes");
        let mut seen = self.fingerprints();
        // Compare once at start too: the files may have changed between loading
        // them and this service starting.
        let mut changed_at: Option<Instant> = Some(Instant::now());
        let mut named_file_changed = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(WATCH_POLL) => {}
                _ = shutdown.changed() => return,
            }
            let now = self.fingerprints();
            if now != seen {
                // Still being written (or just deleted): wait for it to settle.
                named_file_changed |= now.get(1..) != seen.get(1..);
                seen = now;
                changed_at = Some(Instant::now());
                continue;
            }
            let settled = changed_at.is_some_and(|t| t.elapsed() >= WATCH_SETTLE);
            if settled && seen.first().is_some_and(Option::is_some) {
                changed_at = None;
                // An edit that leaves the text identical (touch, re-save) is no
                // reload, unless a file it names changed.
                let unchanged = !named_file_changed
                    && std::fs::read_to_string(&self.path).is_ok_and(|text| {
                        crate::config::content_hash(&text)
                            == self.gateway.current().config.source.hash
                    });
                named_file_changed = false;
                if !unchanged {
                    tracing::info!(file = %self.path.display(), "configuration or a file it names changed");
                    reload_off_thread(&self.gateway, Origin::WATCH).await;
                    // The files named may be others now.
                    seen = self.fingerprints();
                }
            }
        }
    }
}
