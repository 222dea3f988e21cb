//! The admin listener: metrics, probes, the keyed admin API, reload.

use crate::harness::*;
use std::process::Command;
use std::time::Duration;

fn yaml(mock: std::net::SocketAddr, extra_routes: &str) -> String {
    format!(
        "listen: [{{ address: '{{LISTEN}}' }}]\nadmin: {{ address: '{{ADMIN}}', api_key: '{{ADMIN_KEY}}' }}\nupstreams:\n  a: {{ targets: [{mock}] }}\nfilters:\n  - request_id: {{}}\nroutes:\n  - {{ name: echo, match: {{ prefix: /_mock/echo }}, upstream: a }}\n{extra_routes}"
    )
}

#[test]
fn metrics_count_requests_by_route_and_pass_promtool() {
    let m = Mock::one("accounts", "a", &[]);
    let gw = Gateway::start(&yaml(m.addr("a"), ""));
    for _ in 0..3 {
        assert_eq!(gw.get("/_mock/echo").status, 200);
    }
    assert_eq!(gw.get("/not/routed").status, 404);
    assert_eq!(
        gw.metric("fingate_requests_total{method=\"GET\",route=\"echo\",status=\"200\"}"),
        Some(3.0)
    );
    assert_eq!(
        gw.metric("fingate_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}"),
        Some(1.0)
    );
    assert_eq!(
        gw.metric("fingate_request_duration_seconds_count{route=\"echo\"}"),
        Some(3.0)
    );
    let target = format!(
        "fingate_upstream_requests_total{{outcome=\"ok\",target=\"{}\",upstream=\"a\"}}",
        m.addr("a")
    );
    assert_eq!(gw.metric(&target), Some(3.0));
    assert!(gw
        .metric(&format!(
            "fingate_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        ))
        .is_some());

    let text = get(gw.admin, "/metrics").body;
    match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&text).unwrap();
            let out = child.wait_with_output().unwrap();
            let report = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success() && report.trim().is_empty(),
                "promtool: {report}"
            );
        }
        // .ci/run installs promtool, so CI never takes this branch.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIPPED promtool check: promtool not installed")
        }
        Err(e) => panic!("promtool: {e}"),
    }
}

#[test]
fn admin_api_needs_the_key_and_is_not_public() {
    let m = Mock::one("accounts", "a", &[]);
    let gw = Gateway::start(&yaml(m.addr("a"), ""));
    assert_eq!(get(gw.admin, "/admin/routes").status, 401);
    let wrong = request(
        gw.admin,
        "GET",
        "/admin/routes",
        &[("Authorization", "Bearer not-the-key-at-all")],
        b"",
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["error"], "invalid_admin_key");
    let ok = gw.admin("GET", "/admin/routes");
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["routes"][0]["name"], "echo");
    assert_eq!(
        gw.admin("GET", "/admin/upstreams").json()["upstreams"]["a"]["targets"][0]["healthy"],
        true
    );
    // Probes need no key.
    assert_eq!(get(gw.admin, "/healthz").status, 200);
    assert_eq!(get(gw.admin, "/readyz").status, 200);
    // None of it is served on the public listener.
    for path in ["/admin/routes", "/metrics", "/healthz"] {
        let r = request(
            gw.addr,
            "GET",
            path,
            &[("Authorization", &format!("Bearer {ADMIN_KEY}"))],
            b"",
        );
        assert_eq!(r.status, 404, "{path} on the public listener");
    }
}

#[test]
fn sighup_and_admin_reload_apply_a_new_route_and_refuse_a_broken_file() {
    let m = Mock::one("accounts", "a", &[]);
    let gw = Gateway::start(&yaml(m.addr("a"), ""));
    assert_eq!(gw.get("/_mock/stats").status, 404);

    gw.write_config(&yaml(
        m.addr("a"),
        "  - { name: stats, match: { path: /_mock/stats }, upstream: a }\n",
    ));
    gw.signal("HUP");
    wait_for(Duration::from_secs(5), "the new route after SIGHUP", || {
        (gw.get("/_mock/stats").status == 200).then_some(())
    });
    assert_eq!(
        gw.metric("fingate_config_reloads_total{result=\"ok\"}"),
        Some(1.0)
    );

    // A broken edit is refused with its position; the running routes stay.
    gw.write_config(&yaml(
        m.addr("a"),
        "  - { name: stats, match: { path: /_mock/stats }, upstream: nowhere }\n",
    ));
    let r = gw.admin("POST", "/admin/reload");
    assert_eq!(r.status, 400, "{}", r.body_text());
    let errors = r.json()["errors"].to_string();
    assert!(
        errors.contains(":9:") && errors.contains("unknown upstream \\\"nowhere\\\""),
        "{errors}"
    );
    assert_eq!(gw.get("/_mock/stats").status, 200);
    assert_eq!(
        gw.metric("fingate_config_reloads_total{result=\"error\"}"),
        Some(1.0)
    );
}

#[test]
fn access_log_has_one_json_line_per_request() {
    let m = Mock::one("accounts", "a", &[]);
    let gw = Gateway::start(&yaml(m.addr("a"), ""));
    let r = request(
        gw.addr,
        "GET",
        "/_mock/echo/abc",
        &[("X-Request-Id", "trace-me-123")],
        b"",
    );
    assert_eq!(r.header("x-request-id"), Some("trace-me-123"));
    let line = wait_for(Duration::from_secs(5), "the access log line", || {
        gw.log()
            .lines()
            .find(|l| l.contains("trace-me-123"))
            .map(str::to_owned)
    });
    let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(entry["route"], "echo");
    assert_eq!(entry["method"], "GET");
    assert_eq!(entry["path"], "/_mock/echo/abc");
    assert_eq!(entry["status"], 200);
    assert_eq!(entry["upstream"], m.addr("a").to_string());
    assert!(
        entry["duration_ms"].as_f64().is_some() && entry["timestamp"].is_string(),
        "{entry}"
    );
}
