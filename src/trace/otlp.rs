//! Finished requests as an OTLP `ExportTraceServiceRequest`, following the
//! OpenTelemetry HTTP semantic conventions: a SERVER span per request named
//! `{method} {http.route}`, a CLIENT span per upstream attempt named `{method}`.
//!
//! Runs in the exporter's task, never on a request: the request path hands over
//! plain values and the strings and protobuf are made here.

use super::span::{ClientSpan, FinishedTrace, ServerFacts};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

/// Span flags: sampled, and the "is the parent remote" bit known (OTLP 1.x).
const SAMPLED: u32 = 0x01;
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn text(key: &str, value: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

fn int(key: &str, value: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(value))
}

/// One export request for a batch of finished requests.
pub fn encode(batch: &[FinishedTrace], service_name: &str) -> ExportTraceServiceRequest {
    let spans = batch.iter().flat_map(spans).collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    text("service.name", service_name),
                    text("service.version", env!("CARGO_PKG_VERSION")),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "fingate".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn spans(t: &FinishedTrace) -> impl Iterator<Item = Span> + '_ {
    std::iter::once(server_span(t)).chain(t.attempts.iter().map(|a| client_span(t, a)))
}

fn id_bytes(id: u64) -> Vec<u8> {
    id.to_be_bytes().to_vec()
}

/// The method as the conventions want it: known methods as they are, others
/// as `_OTHER` (the original goes in `http.request.method_original`).
fn method_attributes(method: &http::Method, out: &mut Vec<KeyValue>) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    match KNOWN.iter().find(|&&m| m == method.as_str()) {
        Some(known) => {
            out.push(text("http.request.method", *known));
            known
        }
        None => {
            out.push(text("http.request.method", "_OTHER"));
            out.push(text("http.request.method_original", method.as_str()));
            "HTTP"
        }
    }
}

fn server_span(t: &FinishedTrace) -> Span {
    let s: &ServerFacts = &t.server;
    let mut attributes = Vec::with_capacity(12);
    let method = method_attributes(&s.method, &mut attributes);
    attributes.push(text("url.path", s.path.clone()));
    attributes.push(text("url.scheme", s.scheme));
    attributes.push(text("network.protocol.version", s.protocol));
    attributes.push(int("http.response.status_code", i64::from(s.status)));
    if let Some(pattern) = &s.pattern {
        attributes.push(text("http.route", pattern.as_ref()));
    }
    if let Some(host) = &s.host {
        attributes.push(text("server.address", host.clone()));
    }
    if let Some(client) = s.client {
        attributes.push(text("client.address", client.to_string()));
    }
    if let Some(route) = &s.route {
        attributes.push(text("fingate.route", route.as_ref()));
    }
    if let Some(consumer) = &s.consumer {
        attributes.push(text("fingate.consumer", consumer.clone()));
    }
    if let Some(last) = t.attempts.last() {
        attributes.push(text("fingate.upstream.target", last.target.to_string()));
    }
    // Server spans are errors on 5xx only: a 4xx is the client's doing.
    let failed = s.status >= 500;
    if failed {
        let kind = s.error.map_or_else(|| s.status.to_string(), str::to_owned);
        attributes.push(text("error.type", kind));
    }
    let name = match &s.pattern {
        Some(pattern) => format!("{method} {pattern}"),
        None => method.to_owned(),
    };
    let remote = if t.parent_id.is_some() { IS_REMOTE } else { 0 };
    Span {
        trace_id: t.trace_id.to_be_bytes().to_vec(),
        span_id: id_bytes(t.span_id),
        trace_state: t
            .trace_state
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        parent_span_id: t.parent_id.map(id_bytes).unwrap_or_default(),
        flags: SAMPLED | HAS_IS_REMOTE | remote,
        name,
        kind: SpanKind::Server as i32,
        start_time_unix_nano: t.start,
        end_time_unix_nano: t.end,
        attributes,
        status: failed.then(|| Status {
            message: String::new(),
            code: StatusCode::Error as i32,
        }),
        ..Default::default()
    }
}

fn client_span(t: &FinishedTrace, a: &ClientSpan) -> Span {
    let mut attributes = Vec::with_capacity(8);
    let method = method_attributes(&t.server.method, &mut attributes);
    attributes.push(text("server.address", a.target.ip().to_string()));
    attributes.push(int("server.port", i64::from(a.target.port())));
    attributes.push(text("network.peer.address", a.target.ip().to_string()));
    attributes.push(int("network.peer.port", i64::from(a.target.port())));
    if let Some(route) = &t.server.route {
        attributes.push(text("fingate.route", route.as_ref()));
    }
    if let Some(status) = a.status {
        attributes.push(int("http.response.status_code", i64::from(status)));
    }
    if a.resend > 0 {
        attributes.push(int("http.request.resend_count", i64::from(a.resend)));
    }
    // Client spans are errors on a failure or any 4xx/5xx answer.
    let error = match (a.error, a.status) {
        (Some(kind), _) => Some(kind.to_owned()),
        (None, Some(status)) if status >= 400 => Some(status.to_string()),
        _ => None,
    };
    let failed = error.is_some();
    if let Some(kind) = error {
        attributes.push(text("error.type", kind));
    }
    Span {
        trace_id: t.trace_id.to_be_bytes().to_vec(),
        span_id: id_bytes(a.span_id),
        parent_span_id: id_bytes(t.span_id),
        flags: SAMPLED | HAS_IS_REMOTE,
        name: method.to_owned(),
        kind: SpanKind::Client as i32,
        start_time_unix_nano: a.start,
        end_time_unix_nano: a.end.max(a.start),
        attributes,
        status: failed.then(|| Status {
            message: String::new(),
            code: StatusCode::Error as i32,
        }),
        ..Default::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::Method;
    use std::sync::Arc;

    fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a any_value::Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    #[test]
    fn a_request_becomes_a_server_span_and_its_attempts_client_spans() {
        let t = FinishedTrace {
            trace_id: 7,
            span_id: 8,
            parent_id: Some(9),
            trace_state: None,
            start: 100,
            end: 200,
            server: ServerFacts {
                route: Some(Arc::from("payment")),
                pattern: Some(Arc::from("/api/payments/{id}")),
                method: Method::from_bytes(b"PURGE").unwrap(),
                path: "/api/payments/~abc".into(),
                scheme: "http",
                protocol: "1.1",
                host: Some("api.example.com".into()),
                client: "192.0.2.1".parse().ok(),
                status: 502,
                consumer: Some("mobile-app".into()),
                error: None,
            },
            attempts: vec![ClientSpan {
                span_id: 10,
                start: 110,
                end: 150,
                target: "127.0.0.1:9101".parse().unwrap(),
                resend: 0,
                status: None,
                error: Some("ConnectRefused"),
            }],
        };
        let req = encode(std::slice::from_ref(&t), "gw");
        let spans = &req.resource_spans[0].scope_spans[0].spans;
        let (server, client) = (&spans[0], &spans[1]);
        assert_eq!(server.name, "HTTP /api/payments/{id}");
        assert_eq!(server.kind, SpanKind::Server as i32);
        assert_eq!(server.parent_span_id, 9u64.to_be_bytes());
        assert_eq!(server.flags, SAMPLED | HAS_IS_REMOTE | IS_REMOTE);
        assert_eq!(
            attr(server, "http.request.method_original"),
            Some(&any_value::Value::StringValue("PURGE".into()))
        );
        assert_eq!(
            attr(server, "error.type"),
            Some(&any_value::Value::StringValue("502".into()))
        );
        assert_eq!(client.parent_span_id, 8u64.to_be_bytes());
        assert_eq!(client.kind, SpanKind::Client as i32);
        assert_eq!(
            attr(client, "server.port"),
            Some(&any_value::Value::IntValue(9101))
        );
        assert_eq!(
            client.status.as_ref().unwrap().code,
            StatusCode::Error as i32
        );
        let resource = req.resource_spans[0].resource.as_ref().unwrap();
        assert_eq!(resource.attributes[0].key, "service.name");
    }
}
