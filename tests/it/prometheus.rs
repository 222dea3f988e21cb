//! A real Prometheus server (Debian's `prometheus`) scrapes the admin listener
//! every second and answers PromQL over its HTTP API on `fingate_requests_total`.
//!
//! Without the `prometheus` binary the test says it is skipped (on stderr); with
//! `FINGATE_REQUIRE_PROMETHEUS=1` (set by `scripts/test`, which installs it) its
//! absence fails it instead.

use crate::harness::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PROMETHEUS: &str = "/usr/bin/prometheus";

fn prometheus_available() -> bool {
    let present = Path::new(PROMETHEUS).exists();
    if !present {
        assert!(
            std::env::var_os("FINGATE_REQUIRE_PROMETHEUS").is_none(),
            "FINGATE_REQUIRE_PROMETHEUS is set but {PROMETHEUS} is missing"
        );
        eprintln!(
            "SKIPPED prometheus: {PROMETHEUS} is not installed (apt-get install prometheus); \
             the scrape test did not run"
        );
    }
    present
}

/// The server, killed when dropped (its storage is in the test's temp dir).
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET /api/v1/query?query=...` on Prometheus: the result vector.
fn query(prometheus: std::net::SocketAddr, promql: &str) -> Vec<serde_json::Value> {
    let encoded: String = promql
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let r = match try_request(
        prometheus,
        "GET",
        &format!("/api/v1/query?query={encoded}"),
        &[],
        b"",
    ) {
        Ok(r) if r.status == 200 => r,
        _ => return Vec::new(),
    };
    let body = r.json();
    assert_eq!(body["status"], "success", "{body}");
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_real_prometheus_scrapes_the_admin_listener_and_answers_promql() {
    if !prometheus_available() {
        return;
    }
    let m = Mock::one("accounts", "a", &[]);
    let gw = Gateway::start(&format!(
        "listen: [{{ address: \"{{LISTEN}}\" }}]
admin: {{ address: \"{{ADMIN}}\" }}
upstreams:
  svc: {{ targets: [\"{}\"] }}
routes:
  - {{ name: echo, match: {{ prefix: /_mock/echo }}, upstream: svc }}
",
        m.addr("a")
    ));
    for _ in 0..3 {
        assert_eq!(gw.get("/_mock/echo/x").status, 200);
    }
    assert_eq!(gw.get("/nothing").status, 404);

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}
scrape_configs:
  - job_name: fingate
    static_configs: [{{ targets: ['{}'] }}]
",
            gw.admin
        ),
    )
    .unwrap();
    let child = Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn prometheus");
    let _prometheus = Prometheus(child);
    let server: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    // Scraped: the target is up, and the series carry the gateway's counts.
    wait_for(
        Duration::from_secs(30),
        "Prometheus to scrape fingate",
        || {
            let up = query(server, "up{job=\"fingate\"}");
            (up.first()?["value"][1] == "1").then_some(())
        },
    );
    let ok = wait_for(Duration::from_secs(10), "the echo route's series", || {
        query(
            server,
            "sum(fingate_requests_total{route=\"echo\",status=\"200\"})",
        )
        .first()
        .map(|r| r["value"][1].as_str().unwrap().to_owned())
    });
    assert_eq!(ok, "3");
    let unmatched = query(server, "fingate_requests_total{route=\"unmatched\"}");
    assert_eq!(unmatched.len(), 1, "{unmatched:?}");
    assert_eq!(unmatched[0]["metric"]["status"], "404");
    assert_eq!(unmatched[0]["metric"]["instance"], gw.admin.to_string());
    // More traffic shows up at the next scrape.
    assert_eq!(gw.get("/_mock/echo/y").status, 200);
    wait_for(Duration::from_secs(10), "the next scrape", || {
        let r = query(server, "sum(fingate_requests_total{route=\"echo\"})");
        (r.first()?["value"][1] == "4").then_some(())
    });
}
