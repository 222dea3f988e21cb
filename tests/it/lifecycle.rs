//! Live reconfiguration and graceful lifecycle: reload under load, --watch,
//! health carried over, SIGTERM draining, graceful upgrade.

use crate::harness::*;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn config(target: SocketAddr, extra: &str) -> String {
    format!(
        "listen: [{{ address: '{{LISTEN}}' }}]\nadmin: {{ address: '{{ADMIN}}', api_key: '{{ADMIN_KEY}}' }}\nupstreams:\n  a:\n    targets: [{target}]\n    health_check: {{ path: /health, interval: 1s, timeout: 500ms, healthy: 1, unhealthy: 1 }}\nroutes:\n  - {{ name: echo, match: {{ prefix: /_mock/echo }}, upstream: a }}\n{extra}"
    )
}

fn only(name: &str) -> String {
    format!("  - {{ name: only-{name}, match: {{ path: /_mock/echo/only/{name} }}, upstream: a, rewrite: {{ path: /_mock/echo }} }}\n")
}

/// Requests `path` in a loop on fresh connections until stopped; counts failures.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, path: &'static str, clients: usize) -> Load {
        let (stop, ok, failed) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let threads = (0..clients)
            .map(|_| {
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match try_request(addr, "GET", path, &[], b"") {
                            Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                            other => {
                                eprintln!("load: failed request: {other:?}");
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            threads,
        }
    }

    /// Stops the load; returns (ok, failed).
    fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

#[test]
fn fifty_reloads_under_load_drop_nothing() {
    let m = Mock::one("accounts", "a", &[]);
    let (a, b) = (
        config(m.addr("a"), &only("a")),
        config(m.addr("a"), &only("b")),
    );
    let gw = Gateway::start(&a);
    let load = Load::start(gw.addr, "/_mock/echo", 2);
    for i in 0..50 {
        let (yaml, live, gone) = if i % 2 == 0 {
            (&b, "b", "a")
        } else {
            (&a, "a", "b")
        };
        gw.write_config(yaml);
        let r = gw.admin("POST", "/admin/reload");
        assert_eq!(r.status, 200, "reload {i}: {}", r.body_text());
        assert_eq!(
            gw.get(&format!("/_mock/echo/only/{live}")).status,
            200,
            "reload {i}: only-{live} not live"
        );
        assert_eq!(
            gw.get(&format!("/_mock/echo/only/{gone}")).status,
            200,
            "only-{gone} falls back to the echo prefix"
        );
        assert_eq!(
            gw.get(&format!("/_mock/echo/only/{gone}")).json()["path"],
            format!("/_mock/echo/only/{gone}")
        );
    }
    let (ok, failed) = load.finish();
    assert_eq!(
        failed, 0,
        "{failed} requests failed during reloads ({ok} succeeded)"
    );
    assert!(ok > 50, "the load loop barely ran: {ok}");
    assert_eq!(
        gw.metric("fingate_config_reloads_total{result=\"ok\"}"),
        Some(50.0)
    );
}

#[test]
fn watch_applies_edits_renames_and_recreations() {
    let m = Mock::one("accounts", "a", &[]);
    let gw = Gateway::start_with_args(&config(m.addr("a"), ""), &["--watch"]);
    let live =
        |name: &str| gw.get(&format!("/_mock/echo/only/{name}")).json()["path"] == "/_mock/echo";

    // Edit in place.
    gw.write_config(&config(m.addr("a"), &only("a")));
    let t = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(2);
    while !live("a") {
        assert!(
            Instant::now() < deadline,
            "only-a not live 2 s after an in-place edit:\n{}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("in-place edit live after {:?}", t.elapsed());

    // Replace by rename, as editors do.
    let tmp = gw.dir.path().join("gateway.yaml.tmp");
    std::fs::write(&tmp, gw.fill(&config(m.addr("a"), &only("b")))).unwrap();
    std::fs::rename(&tmp, &gw.config).unwrap();
    wait_for(
        Duration::from_secs(2),
        "only-b live after rename-over",
        || live("b").then_some(()),
    );

    // Delete, then recreate.
    std::fs::remove_file(&gw.config).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert!(live("b"), "a deleted file keeps the running config");
    gw.write_config(&config(m.addr("a"), &only("c")));
    wait_for(
        Duration::from_secs(2),
        "only-c live after re-creation",
        || live("c").then_some(()),
    );
}

#[test]
fn health_state_survives_an_unrelated_reload() {
    let m = Mock::one("accounts", "a", &[]);
    let target = m.addr("a");
    let gw = Gateway::start(&config(target, ""));
    set_faults(target, r#"{"health_status": 503}"#);
    let healthy = || {
        gw.admin("GET", "/admin/upstreams").json()["upstreams"]["a"]["targets"][0]["healthy"]
            .as_bool()
            .unwrap()
    };
    wait_for(Duration::from_secs(5), "the target marked down", || {
        (!healthy()).then_some(())
    });

    gw.write_config(&config(target, &only("x")));
    assert_eq!(gw.admin("POST", "/admin/reload").status, 200);
    // A fresh group would start healthy and need a failed check (1 s) to fall again.
    assert!(!healthy(), "the reload forgot that the target is down");
    assert_eq!(gw.get("/_mock/echo").status, 502);
}

#[test]
fn sigterm_drains_in_flight_requests_and_refuses_new_connections() {
    let m = Mock::one("accounts", "a", &[]);
    let target = m.addr("a");
    set_faults(target, r#"{"latency_ms": 3000}"#);
    let mut gw = Gateway::start(&config(target, "shutdown: { grace_period: 10s }\n"));
    let addr = gw.addr;
    let slow: Vec<_> = (0..5)
        .map(|_| std::thread::spawn(move || try_request(addr, "GET", "/_mock/echo", &[], b"")))
        .collect();
    wait_for(Duration::from_secs(15), "5 requests in flight", || {
        (gw.metric("fingate_inflight_requests").unwrap_or(0.0) >= 5.0).then_some(())
    });
    let started = Instant::now();
    gw.signal("TERM");
    wait_for(Duration::from_secs(5), "new connections refused", || {
        let refused = match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Err(_) => true,
            // Accepted by the kernel backlog but never served: the next read fails or hangs.
            Ok(_) => try_request(addr, "GET", "/_mock/echo", &[], b"").is_err(),
        };
        refused.then_some(())
    });
    for h in slow {
        let r = h.join().unwrap().expect("an in-flight request was cut");
        assert_eq!(r.status, 200);
    }
    let status = gw.wait_exit(Duration::from_secs(10));
    assert_eq!(status, Some(0), "exit status");
    // Drained early: the 10 s grace period is a ceiling, not a wait.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    // The drained requests' access lines reached stdout before the exit (the
    // buffered access log is flushed on the way out).
    wait_for(Duration::from_secs(2), "5 access lines after exit", || {
        let done = gw
            .log()
            .lines()
            .filter(|l| l.contains("\"path\":\"/_mock/echo\"") && l.contains("\"status\":200"))
            .count();
        (done >= 5).then_some(())
    });
}

#[test]
fn graceful_upgrade_under_load_drops_nothing() {
    let m = Mock::one("accounts", "a", &[]);
    let mut old = Gateway::start(&config(m.addr("a"), ""));
    let load = Load::start(old.addr, "/_mock/echo", 2);
    wait_for(Duration::from_secs(5), "load running", || {
        (load.ok.load(Ordering::Relaxed) > 20).then_some(())
    });

    // The new process waits on the upgrade socket for the old one's listeners.
    let sock = std::env::temp_dir().join(format!("fingate-{}.upgrade.sock", old.addr.port()));
    let _ = std::fs::remove_file(&sock);
    let mut new: Child = Command::new(fingate_bin())
        .args(["run", "--upgrade", "-c"])
        .arg(&old.config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        Duration::from_secs(10),
        "the new process on the upgrade socket",
        || sock.exists().then_some(()),
    );
    old.signal("QUIT");
    let status = old.wait_exit(Duration::from_secs(20));
    assert_eq!(status, Some(0));
    // The new process now owns the sockets and serves alone.
    let before = load.ok.load(Ordering::Relaxed);
    wait_for(
        Duration::from_secs(5),
        "requests served by the new process",
        || (load.ok.load(Ordering::Relaxed) > before + 20).then_some(()),
    );
    let (ok, failed) = load.finish();
    let _ = new.kill();
    let _ = new.wait();
    assert_eq!(
        failed, 0,
        "{failed} requests failed across the hand-over ({ok} succeeded)"
    );
}

#[test]
fn reload_reports_what_changed_and_what_needs_a_restart() {
    let m = Mock::one("accounts", "a", &[]);
    let gw = Gateway::start(&config(m.addr("a"), &only("a")));
    // Swap only-a for only-b, change echo's max_body, and move the listener.
    let moved = format!("127.0.0.1:{}", free_port());
    let next = config(m.addr("a"), &only("b"))
        .replace(
            "prefix: /_mock/echo }, upstream: a }",
            "prefix: /_mock/echo }, upstream: a, max_body: 2KiB }",
        )
        .replace("{LISTEN}", &moved);
    gw.write_config(&next);
    let r = gw.admin("POST", "/admin/reload");
    assert_eq!(r.status, 200, "{}", r.body_text());
    let s = &r.json()["summary"];
    assert_eq!(s["routes_added"], serde_json::json!(["only-b"]));
    assert_eq!(s["routes_removed"], serde_json::json!(["only-a"]));
    assert_eq!(s["routes_changed"], serde_json::json!(["echo"]));
    assert_eq!(s["restart_needed"], serde_json::json!(["listen"]));
    assert_eq!(s["settings_changed"], serde_json::json!([]));
    // The rest applied: the old listener still serves the new routes.
    assert_eq!(gw.get("/_mock/echo/only/b").json()["path"], "/_mock/echo");
    assert!(
        gw.log().contains("restart_needed"),
        "the reload is logged with what changed"
    );
}
