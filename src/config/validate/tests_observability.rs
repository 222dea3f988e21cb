//! `tracing:` and `logging:` as validation table cases.

use super::tests::{check, Case};

const CASES: &[Case] = &[
    ("tracing, all settings", "tracing: { otlp_endpoint: 'http://127.0.0.1:4318/v1/traces', sample_ratio: 0.1, service_name: gw, export_timeout: 2s }\n", &[]),
    ("tracing without an endpoint propagates only", "tracing: {}\n", &[]),
    ("tracing ratio out of range", "tracing:\n  sample_ratio: 2\n", &[
        "gateway.yaml:2:3: tracing.sample_ratio: 2 is out of range: use 0 (none) to 1 (all)",
    ]),
    ("tracing endpoint over https", "tracing:\n  otlp_endpoint: https://collector:4318/v1/traces\n", &[]),
    ("tracing endpoint over gRPC", "tracing:\n  otlp_endpoint: grpc://collector:4317\n", &[
        "gateway.yaml:2:3: tracing.otlp_endpoint: \"grpc://collector:4317\": expected an http:// or https:// URL, e.g. http://127.0.0.1:4318/v1/traces",
    ]),
    ("tracing unknown key", "tracing:\n  ratio: 0.5\n", &[
        "gateway.yaml:2:3: tracing.ratio: unknown field `ratio`, expected one of `otlp_endpoint`, `sample_ratio`, `service_name`, `export_timeout`",
    ]),
    ("redaction of route parameters and query parameters", "logging:\n  redact: { query: [card_number, iban], path_params: [id] }\nroutes:\n  - { name: p, match: { path: '/api/payments/{id}' }, upstream: svc }\n", &[]),
    ("redaction of a parameter no route has", "logging:\n  redact:\n    path_params: [id, acount]\nroutes:\n  - { name: p, match: { path: '/api/{account}/payments/{id}' }, upstream: svc }\n", &[
        "gateway.yaml:3:23: logging.redact.path_params[1]: no route has a {acount} path parameter (parameters of the routes: account, id)",
    ]),
    ("redaction of a query name that is none", "logging:\n  redact:\n    query: [card_number, 'iban=']\n", &[
        "gateway.yaml:3:26: logging.redact.query[1]: \"iban=\" is not a query parameter name (no spaces, &, =, ?, #)",
    ]),
    ("redaction key too short", "logging:\n  redact: { query: [iban], key: short }\n", &[
        "gateway.yaml:2:28: logging.redact.key: too short (5 characters): use at least 16 random characters, e.g. from ${FINGATE_LOG_KEY}",
    ]),
];

#[test]
fn observability() {
    check(CASES);
}
