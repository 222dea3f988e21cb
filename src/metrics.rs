//! Every metric fingate exports, defined in one place.
//!
//! One process-wide registry: metrics must survive config reloads, and a route's
//! series keep counting across them. Label values are bounded: route and upstream
//! names from the config, never raw paths.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::sync::OnceLock;

mod resolved;

pub use resolved::{count_request, Outcome, RequestCounters, UpstreamCounters};

pub struct Metrics {
    registry: Registry,
    pub requests_total: IntCounterVec,
    pub request_duration_seconds: HistogramVec,
    pub upstream_requests_total: IntCounterVec,
    pub upstream_target_healthy: IntGaugeVec,
    pub config_reloads_total: IntCounterVec,
    pub build_info: IntGaugeVec,
    pub config_info: IntGaugeVec,
    pub inflight_requests: IntGauge,
    pub rate_limit_decisions_total: IntCounterVec,
    pub idempotency_total: IntCounterVec,
    pub store_errors_total: IntCounterVec,
    pub cache_lookups_total: IntCounterVec,
    pub cache_bytes: IntGauge,
    pub auth_failures_total: IntCounterVec,
    pub access_log_dropped_total: IntCounter,
    pub tls_handshakes_total: IntCounterVec,
    pub tls_certificate_expiry_timestamp_seconds: IntGaugeVec,
    pub trace_spans_exported_total: IntCounter,
    pub trace_spans_dropped_total: IntCounterVec,
    pub jwks_refresh_total: IntCounterVec,
    pub jwks_keys: IntGaugeVec,
}

/// Request latency buckets: from a cache hit (sub-millisecond) to a slow upstream.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| unreachable_metric(name, e));
    register(r, Box::new(c.clone()), name);
    c
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| unreachable_metric(name, e));
    register(r, Box::new(g.clone()), name);
    g
}

fn register(r: &Registry, c: Box<dyn prometheus::core::Collector>, name: &str) {
    if let Err(e) = r.register(c) {
        tracing::error!(metric = name, error = %e, "metric registration failed");
    }
}

/// Metric definitions are constants; an invalid one is a programming error caught by
/// the unit test below, so this never runs in a release that passed its tests.
#[allow(clippy::panic)]
fn unreachable_metric(name: &str, e: prometheus::Error) -> ! {
    panic!("invalid metric definition {name}: {e}")
}

impl Metrics {
    fn new() -> Self {
        let r = Registry::new();
        let requests_total = counter(
            &r,
            "fingate_requests_total",
            "Requests answered, by route, method and status.",
            &["route", "method", "status"],
        );
        let hist = HistogramVec::new(
            HistogramOpts::new(
                "fingate_request_duration_seconds",
                "Time from request to the end of the response, by route.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["route"],
        )
        .unwrap_or_else(|e| unreachable_metric("fingate_request_duration_seconds", e));
        register(
            &r,
            Box::new(hist.clone()),
            "fingate_request_duration_seconds",
        );
        let upstream_requests_total = counter(
            &r,
            "fingate_upstream_requests_total",
            "Upstream attempts, by upstream group, target and outcome.",
            &["upstream", "target", "outcome"],
        );
        let upstream_target_healthy = gauge(
            &r,
            "fingate_upstream_target_healthy",
            "1 when the target passes health checks, else 0.",
            &["upstream", "target"],
        );
        let config_reloads_total = counter(
            &r,
            "fingate_config_reloads_total",
            "Configuration reloads, by result.",
            &["result"],
        );
        let build_info = gauge(
            &r,
            "fingate_build_info",
            "Always 1; the version label says which build runs.",
            &["version"],
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let config_info = gauge(
            &r,
            "fingate_config_info",
            "Always 1; the hash label identifies the active configuration.",
            &["hash"],
        );
        let inflight_requests =
            IntGauge::new("fingate_inflight_requests", "Requests being processed now.")
                .unwrap_or_else(|e| unreachable_metric("fingate_inflight_requests", e));
        register(
            &r,
            Box::new(inflight_requests.clone()),
            "fingate_inflight_requests",
        );
        let rate_limit_decisions_total = counter(
            &r,
            "fingate_rate_limit_decisions_total",
            "Rate-limit decisions, by route and decision (allowed | limited).",
            &["route", "decision"],
        );
        let idempotency_total = counter(
            &r,
            "fingate_idempotency_total",
            "Requests the idempotency filter judged, by route and result (new, replayed, in_flight, mismatch, missing, not_stored, store_error).",
            &["route", "result"],
        );
        let store_errors_total = counter(
            &r,
            "fingate_store_errors_total",
            "Store operations that failed or timed out, by operation.",
            &["operation"],
        );
        let cache_lookups_total = counter(
            &r,
            "fingate_cache_lookups_total",
            "Cache lookups, by route and result (hit, miss, bypass).",
            &["route", "result"],
        );
        let cache_bytes = IntGauge::new(
            "fingate_cache_bytes",
            "Bytes held by the response cache (bounded by cache.max_size).",
        )
        .unwrap_or_else(|e| unreachable_metric("fingate_cache_bytes", e));
        register(&r, Box::new(cache_bytes.clone()), "fingate_cache_bytes");
        let auth_failures_total = counter(
            &r,
            "fingate_auth_failures_total",
            "Requests refused by the jwt filter, by route and reason.",
            &["route", "reason"],
        );
        let access_log_dropped_total = IntCounter::new(
            "fingate_access_log_dropped_total",
            "Access-log lines dropped because stdout was not being read fast enough.",
        )
        .unwrap_or_else(|e| unreachable_metric("fingate_access_log_dropped_total", e));
        register(
            &r,
            Box::new(access_log_dropped_total.clone()),
            "fingate_access_log_dropped_total",
        );
        let tls_handshakes_total = counter(
            &r,
            "fingate_tls_handshakes_total",
            "TLS handshakes on the public listeners, by listener and result (ok, failed, timeout; closed: the client left without a word).",
            &["listener", "result"],
        );
        let tls_certificate_expiry_timestamp_seconds = gauge(
            &r,
            "fingate_tls_certificate_expiry_timestamp_seconds",
            "When each certificate in use expires (Unix time), by its first DNS name (else its subject).",
            &["name"],
        );
        let trace_spans_exported_total = IntCounter::new(
            "fingate_trace_spans_exported_total",
            "Spans the OTLP collector accepted.",
        )
        .unwrap_or_else(|e| unreachable_metric("fingate_trace_spans_exported_total", e));
        register(
            &r,
            Box::new(trace_spans_exported_total.clone()),
            "fingate_trace_spans_exported_total",
        );
        let trace_spans_dropped_total = counter(
            &r,
            "fingate_trace_spans_dropped_total",
            "Spans not exported, by reason (queue_full: the exporter fell behind; export_failed: the collector did not accept them in time).",
            &["reason"],
        );
        let jwks_refresh_total = counter(
            &r,
            "fingate_jwks_refresh_total",
            "Fetches of remote key sets, by key source and result (ok, unreachable, bad_status, invalid).",
            &["key", "result"],
        );
        let jwks_keys = gauge(
            &r,
            "fingate_jwks_keys",
            "Keys in use from each remote key set (0 before the first fetch and once older than max_stale).",
            &["key"],
        );
        Self {
            registry: r,
            requests_total,
            request_duration_seconds: hist,
            upstream_requests_total,
            upstream_target_healthy,
            config_reloads_total,
            build_info,
            config_info,
            inflight_requests,
            rate_limit_decisions_total,
            idempotency_total,
            store_errors_total,
            cache_lookups_total,
            cache_bytes,
            auth_failures_total,
            access_log_dropped_total,
            tls_handshakes_total,
            tls_certificate_expiry_timestamp_seconds,
            trace_spans_exported_total,
            trace_spans_dropped_total,
            jwks_refresh_total,
            jwks_keys,
        }
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }

    /// Publishes the expiry of the certificates in use (and of no other).
    pub fn set_certificates<'a>(&self, certs: impl IntoIterator<Item = (&'a str, i64)>) {
        let g = &self.tls_certificate_expiry_timestamp_seconds;
        g.reset();
        for (name, not_after) in certs {
            g.with_label_values(&[name]).set(not_after);
        }
    }

    /// Marks `hash` as the active configuration (and no other).
    pub fn set_config_hash(&self, hash: &str) {
        self.config_info.reset();
        self.config_info.with_label_values(&[hash]).set(1);
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exported_with_its_spec_name() {
        let m = metrics();
        m.requests_total
            .with_label_values(&["r", "GET", "200"])
            .inc();
        m.request_duration_seconds
            .with_label_values(&["r"])
            .observe(0.01);
        m.upstream_requests_total
            .with_label_values(&["u", "127.0.0.1:1", "ok"])
            .inc();
        m.upstream_target_healthy
            .with_label_values(&["u", "127.0.0.1:1"])
            .set(1);
        m.config_reloads_total.with_label_values(&["ok"]).inc();
        m.auth_failures_total
            .with_label_values(&["r", "expired"])
            .inc();
        m.set_config_hash("abc");
        m.tls_handshakes_total
            .with_label_values(&["127.0.0.1:8443", "ok"])
            .inc();
        m.set_certificates([("api.example.com", 1_900_000_000)]);
        m.rate_limit_decisions_total
            .with_label_values(&["r", "allowed"])
            .inc();
        m.idempotency_total
            .with_label_values(&["r", "replayed"])
            .inc();
        m.store_errors_total.with_label_values(&["get"]).inc();
        m.cache_lookups_total.with_label_values(&["r", "hit"]).inc();
        m.trace_spans_dropped_total
            .with_label_values(&["queue_full"])
            .inc();
        m.jwks_refresh_total.with_label_values(&["idp", "ok"]).inc();
        m.jwks_keys.with_label_values(&["idp"]).set(2);
        let text = String::from_utf8(m.render()).unwrap_or_default();
        for name in [
            "fingate_requests_total{",
            "fingate_request_duration_seconds_bucket{",
            "fingate_upstream_requests_total{",
            "fingate_upstream_target_healthy{",
            "fingate_config_reloads_total{",
            "fingate_build_info{",
            "fingate_config_info{hash=\"abc\"} 1",
            "fingate_inflight_requests ",
            "fingate_rate_limit_decisions_total{",
            "fingate_idempotency_total{result=\"replayed\",route=\"r\"} 1",
            "fingate_store_errors_total{",
            "fingate_cache_lookups_total{result=\"hit\",route=\"r\"} 1",
            "fingate_cache_bytes ",
            "fingate_auth_failures_total{",
            "fingate_access_log_dropped_total ",
            "fingate_tls_handshakes_total{listener=\"127.0.0.1:8443\",result=\"ok\"} 1",
            "fingate_tls_certificate_expiry_timestamp_seconds{name=\"api.example.com\"} 1900000000",
            "fingate_trace_spans_exported_total ",
            "fingate_trace_spans_dropped_total{reason=\"queue_full\"} 1",
            "fingate_jwks_refresh_total{key=\"idp\",result=\"ok\"} 1",
            "fingate_jwks_keys{key=\"idp\"} 2",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }
}
