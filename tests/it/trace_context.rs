//! Tracing end to end: the real gateway continues or starts W3C traces, sends
//! the upstream a `traceparent` under its client span, logs the `trace_id`, and
//! exports spans to a real OTLP/HTTP receiver (`otlp.rs`) that decodes them —
//! with sampling by ratio and by the caller's flag, a reload that changes it,
//! and a collector that is down or too slow, which requests never notice.

use crate::harness::*;
use crate::otlp::{attr, hex, Receiver, Span};
use crate::testca::TestCa;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// A route to the mock's echo (which answers with the headers it got) through a
/// group of `targets`, with `tracing`.
fn config(targets: &str, tracing: &str) -> String {
    format!(
        "listen: [{{ address: \"{{LISTEN}}\" }}]
admin: {{ address: \"{{ADMIN}}\", api_key: \"{{ADMIN_KEY}}\" }}
upstreams:
  svc: {{ targets: [{targets}], retries: 1, connect_timeout: 1s }}
routes:
  - {{ name: echo, match: {{ prefix: /_mock/echo }}, upstream: svc }}
{tracing}"
    )
}

fn tracing(endpoint: &str, ratio: &str) -> String {
    format!("tracing: {{ otlp_endpoint: '{endpoint}', sample_ratio: {ratio}, service_name: edge-gw }}\n")
}

fn echo(gw: &Gateway, headers: &[(&str, &str)]) -> serde_json::Value {
    let r = request(gw.addr, "GET", "/_mock/echo", headers, b"");
    assert_eq!(r.status, 200, "{}", r.body_text());
    r.json()
}

/// The `traceparent` the upstream received: (trace id, parent id, flags).
fn upstream_traceparent(echoed: &serde_json::Value) -> (String, String, String) {
    let tp = echoed["headers"]["traceparent"][0]
        .as_str()
        .unwrap_or_default();
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "traceparent {tp:?} in {echoed}");
    assert_eq!(parts[0], "00");
    (parts[1].into(), parts[2].into(), parts[3].into())
}

fn closed_port() -> SocketAddr {
    format!("127.0.0.1:{}", free_port()).parse().unwrap()
}

#[test]
fn a_callers_trace_is_continued_with_a_client_span_per_attempt() {
    let mock = Mock::one("accounts", "acc", &[]);
    let receiver = Receiver::start();
    // The first target refuses connections: a request that tries it first is
    // retried on the second, and makes two attempts.
    let targets = format!("\"{}\", \"{}\"", closed_port(), mock.addr("acc"));
    // Ratio 0: only the caller's sampled flag makes these requests sampled.
    let gw = Gateway::start(&config(&targets, &tracing(&receiver.endpoint(), "0")));
    let mut retried = None;
    for i in 0..4 {
        let parent = format!("{}{i:02x}", &PARENT[..14]);
        let tp = format!("00-{TRACE}-{parent}-01");
        let echoed = echo(
            &gw,
            &[("traceparent", &tp), ("tracestate", "vendor=opaque")],
        );
        let (trace, via, flags) = upstream_traceparent(&echoed);
        assert_eq!(
            (trace.as_str(), flags.as_str()),
            (TRACE, "01"),
            "the caller's trace goes on, sampled"
        );
        assert_ne!(
            via, parent,
            "the upstream's parent is the gateway's span, not the caller's"
        );
        assert_eq!(echoed["headers"]["tracestate"][0], "vendor=opaque");
        let spans = receiver.wait("the request's spans", |s| {
            s.iter().any(|(_, sp)| hex(&sp.parent_span_id) == parent)
        });
        let server: &Span = &spans
            .iter()
            .find(|(_, s)| hex(&s.parent_span_id) == parent)
            .unwrap()
            .1;
        let clients: Vec<Span> = receiver
            .wait("the client spans", |s| {
                s.iter()
                    .any(|(_, c)| c.parent_span_id == server.span_id && hex(&c.span_id) == via)
            })
            .into_iter()
            .filter(|(_, c)| c.parent_span_id == server.span_id)
            .map(|(_, c)| c)
            .collect();
        if clients.len() == 2 {
            retried = Some((server.clone(), clients, via));
            break;
        }
    }
    let (server, clients, via) = retried.expect("no request was retried on the second target");
    // The server span: the caller's trace and parent, HTTP conventions, fingate's facts.
    assert_eq!(hex(&server.trace_id), TRACE);
    assert_eq!(server.kind, SpanKind::Server as i32);
    assert_eq!(server.name, "GET /_mock/echo/*");
    assert_eq!(attr(&server, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(
        attr(&server, "http.route").as_deref(),
        Some("/_mock/echo/*")
    );
    assert_eq!(attr(&server, "url.path").as_deref(), Some("/_mock/echo"));
    assert_eq!(
        attr(&server, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(attr(&server, "fingate.route").as_deref(), Some("echo"));
    assert_eq!(
        attr(&server, "fingate.upstream.target"),
        Some(mock.addr("acc").to_string())
    );
    assert_eq!(server.trace_state, "vendor=opaque");
    assert!(server.end_time_unix_nano >= server.start_time_unix_nano);
    // Two attempts, in order: the refused one, then the retry that answered,
    // whose span is the parent the upstream was given.
    let (refused, answered) = (&clients[0], &clients[1]);
    assert!(refused.start_time_unix_nano <= answered.start_time_unix_nano);
    assert_eq!(refused.kind, SpanKind::Client as i32);
    assert_eq!(
        attr(refused, "error.type").as_deref(),
        Some("connect_error")
    );
    assert_eq!(
        attr(answered, "http.request.resend_count").as_deref(),
        Some("1")
    );
    assert_eq!(
        attr(answered, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attr(answered, "server.port"),
        Some(mock.addr("acc").port().to_string())
    );
    assert_eq!(hex(&answered.span_id), via);
    for c in &clients {
        assert_eq!(c.trace_id, server.trace_id);
        assert!(c.start_time_unix_nano >= server.start_time_unix_nano);
        assert!(c.end_time_unix_nano <= server.end_time_unix_nano);
    }
    assert!(receiver.spans().iter().all(|(svc, _)| svc == "edge-gw"));
    // The access log carries the trace id.
    let lines = gw.access_lines(1);
    assert!(lines.iter().all(|l| l["trace_id"] == TRACE), "{lines:?}");
}

#[test]
fn sampling_follows_the_ratio_and_the_callers_flag_and_a_reload() {
    let mock = Mock::one("accounts", "acc", &[]);
    let receiver = Receiver::start();
    let targets = format!("\"{}\"", mock.addr("acc"));
    let gw = Gateway::start(&config(&targets, &tracing(&receiver.endpoint(), "0")));
    // Ratio 0: a new trace and an unsampled caller are propagated, not exported.
    let fresh = echo(&gw, &[]);
    let (trace, _, flags) = upstream_traceparent(&fresh);
    assert_eq!(flags, "00");
    let unsampled = echo(&gw, &[("traceparent", &format!("00-{TRACE}-{PARENT}-00"))]);
    assert_eq!(upstream_traceparent(&unsampled).2, "00");
    // A sampled caller is exported at ratio 0: the flag is honoured.
    let sampled_trace = "0af7651916cd43dd8448eb211c80319c";
    echo(
        &gw,
        &[("traceparent", &format!("00-{sampled_trace}-{PARENT}-01"))],
    );
    let spans = receiver.wait("the sampled request", |s| !s.is_empty());
    // Let two export intervals pass: nothing else may come.
    std::thread::sleep(Duration::from_millis(2500));
    let spans = receiver.spans().len().max(spans.len());
    assert_eq!(
        spans,
        2,
        "one server and one client span: {:?}",
        receiver.spans()
    );
    assert!(receiver
        .spans()
        .iter()
        .all(|(_, s)| hex(&s.trace_id) == sampled_trace));
    let lines = gw.access_lines(3);
    assert_eq!(
        lines[0]["trace_id"],
        trace.as_str(),
        "the log has the new trace"
    );
    // Ratio 1 by a reload: every request is exported, an unsampled caller too.
    gw.write_config(&config(&targets, &tracing(&receiver.endpoint(), "1.0")));
    let r = gw.admin("POST", "/admin/reload");
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert!(r.body_text().contains("\"tracing\""), "{}", r.body_text());
    for _ in 0..5 {
        assert_eq!(upstream_traceparent(&echo(&gw, &[])).2, "01");
    }
    let resampled = echo(&gw, &[("traceparent", &format!("00-{TRACE}-{PARENT}-00"))]);
    assert_eq!(upstream_traceparent(&resampled).2, "01");
    receiver.wait("six more requests", |s| {
        s.iter()
            .filter(|(_, sp)| sp.kind == SpanKind::Server as i32)
            .count()
            == 7
    });
    // No `tracing:` at all: the gateway adds nothing, the caller's header passes.
    gw.write_config(&config(&targets, ""));
    assert_eq!(gw.admin("POST", "/admin/reload").status, 200);
    let tp = format!("00-{TRACE}-{PARENT}-01");
    let passed = echo(&gw, &[("traceparent", &tp)]);
    assert_eq!(passed["headers"]["traceparent"][0], tp.as_str());
    assert!(echo(&gw, &[])["headers"].get("traceparent").is_none());
    let last = gw.access_lines(11).pop().unwrap();
    assert!(last.get("trace_id").is_none(), "{last}");
}

/// Sends `n` requests from 4 threads; each must be answered within `within`
/// (far less than the collector holds its answers).
fn requests_unaffected(gw: &Gateway, n: usize, within: Duration) {
    let addr = gw.addr;
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..n / 4 {
                    let started = Instant::now();
                    let r = request(addr, "GET", "/_mock/echo", &[], b"");
                    assert_eq!(r.status, 200);
                    assert!(
                        started.elapsed() < within,
                        "a request waited {:?}",
                        started.elapsed()
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

fn dropped(gw: &Gateway, reason: &str) -> f64 {
    gw.metric(&format!(
        "fingate_trace_spans_dropped_total{{reason=\"{reason}\"}}"
    ))
    .unwrap_or(0.0)
}

#[test]
fn a_collector_down_or_too_slow_costs_requests_nothing_and_drops_are_counted() {
    let mock = Mock::one("accounts", "acc", &[]);
    let targets = format!("\"{}\"", mock.addr("acc"));
    // Down: nothing listens at the endpoint.
    let down = format!("http://{}/v1/traces", closed_port());
    let gw = Gateway::start(&config(&targets, &tracing(&down, "1")));
    requests_unaffected(&gw, 20, Duration::from_secs(5));
    wait_for(Duration::from_secs(10), "export failures counted", || {
        // 20 requests: a server and a client span each.
        (dropped(&gw, "export_failed") >= 40.0).then_some(())
    });
    // The log line is read from the process's output by another thread.
    wait_for(Duration::from_secs(5), "the export failure logged", || {
        gw.log().contains("span export failed").then_some(())
    });
    drop(gw);

    // Slow: the collector holds every answer for a minute. The exporter waits
    // on one batch while requests fill its queue, then drops what does not fit.
    let slow = Receiver::start_holding(Duration::from_secs(60));
    let yaml = config(
        &targets,
        &format!(
            "tracing: {{ otlp_endpoint: '{}', export_timeout: 30s }}\n",
            slow.endpoint()
        ),
    );
    let gw = Gateway::start(&yaml);
    requests_unaffected(&gw, 2800, Duration::from_secs(5));
    wait_for(Duration::from_secs(10), "queue overflow counted", || {
        (dropped(&gw, "queue_full") > 0.0).then_some(())
    });
    assert_eq!(
        gw.metric("fingate_trace_spans_exported_total")
            .unwrap_or(0.0),
        0.0
    );
}

#[test]
fn spans_reach_an_https_collector_the_gateway_trusts_and_no_other() {
    let mock = Mock::one("accounts", "acc", &[]);
    let targets = format!("\"{}\"", mock.addr("acc"));
    let ca = TestCa::new("collector");
    let receiver = Receiver::start_tls(&ca.server("collector", &["127.0.0.1"]));
    assert!(receiver.endpoint().starts_with("https://"));
    let yaml = config(&targets, &tracing(&receiver.endpoint(), "1"));
    let trusted = Gateway::start_with(&yaml, &[("SSL_CERT_FILE", ca.cert.to_str().unwrap())]);
    echo(&trusted, &[]);
    let spans = receiver.wait("the server span over https", |s| !s.is_empty());
    assert!(spans.iter().all(|(service, _)| service == "edge-gw"));
    assert_eq!(dropped(&trusted, "export_failed"), 0.0);
    drop(trusted);

    // Without the CA the collector's certificate is refused: nothing arrives,
    // the batch is counted as dropped, the request is unaffected.
    let before = receiver.spans().len();
    let untrusted = Gateway::start(&yaml);
    echo(&untrusted, &[]);
    wait_for(
        Duration::from_secs(10),
        "the refused export counted",
        || (dropped(&untrusted, "export_failed") > 0.0).then_some(()),
    );
    wait_for(
        Duration::from_secs(5),
        "the certificate error logged",
        || untrusted.log().contains("span export failed").then_some(()),
    );
    assert_eq!(receiver.spans().len(), before);
}
