//! The span exporter: a bounded queue that requests hand finished traces to, and
//! one task on the control runtime that sends them in batches as OTLP/HTTP
//! (protobuf) to `tracing.otlp_endpoint`.
//!
//! A request never waits for it: handing over takes a lock around a `Vec` push,
//! and when the queue is full (the collector is slow or down) the trace is
//! dropped and counted in `fingate_trace_spans_dropped_total{reason="queue_full"}`.
//! A batch the collector does not accept in time is dropped too
//! (`reason="export_failed"`): spans are diagnostics, not records, and retrying
//! would only grow the backlog.

use super::otlp;
use super::settings::Endpoint;
use super::span::FinishedTrace;
use crate::background::control_runtime;
use crate::metrics::metrics;
use crate::outbound;
use prost::Message;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::Notify;

/// Requests whose spans wait for export at most; beyond, new ones are dropped.
pub const MAX_QUEUE: usize = 2048;
/// Requests per export request (and the queue length that wakes the exporter early).
pub const MAX_BATCH: usize = 512;
/// Longest a finished span waits before it is sent.
pub const EXPORT_EVERY: Duration = Duration::from_secs(1);

/// Where and how spans are sent; replaced on reload.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSettings {
    pub endpoint: Endpoint,
    pub service_name: String,
    pub timeout: Duration,
}

struct Exporter {
    queue: Mutex<Vec<FinishedTrace>>,
    wake: Notify,
    settings: Mutex<Option<Arc<ExportSettings>>>,
}

static EXPORTER: OnceLock<Exporter> = OnceLock::new();

/// Applies a configuration's export settings (None: export nothing). The exporter
/// task starts with the first configuration that has an endpoint.
pub fn configure(settings: Option<ExportSettings>) {
    let exporter = match (EXPORTER.get(), &settings) {
        (Some(e), _) => e,
        (None, None) => return,
        (None, Some(_)) => {
            let mut started = false;
            let e = EXPORTER.get_or_init(|| {
                started = true;
                Exporter {
                    queue: Mutex::new(Vec::with_capacity(MAX_BATCH)),
                    wake: Notify::new(),
                    settings: Mutex::new(None),
                }
            });
            if started {
                control_runtime().spawn(run(e));
            }
            e
        }
    };
    *exporter.settings.lock().unwrap_or_else(|p| p.into_inner()) = settings.map(Arc::new);
}

/// Hands one finished request's spans to the exporter; never blocks on it.
pub fn submit(trace: FinishedTrace) {
    let Some(exporter) = EXPORTER.get() else {
        return;
    };
    let mut queue = exporter.queue.lock().unwrap_or_else(|p| p.into_inner());
    if queue.len() >= MAX_QUEUE {
        drop(queue);
        dropped("queue_full", trace.span_count());
        return;
    }
    queue.push(trace);
    // Wake the exporter only when a batch is full: a notify is a cross-thread wake.
    if queue.len() == MAX_BATCH {
        exporter.wake.notify_one();
    }
}

fn dropped(reason: &str, spans: u64) {
    metrics()
        .trace_spans_dropped_total
        .with_label_values(&[reason])
        .inc_by(spans);
}

async fn run(exporter: &'static Exporter) {
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EXPORT_EVERY) => {}
            _ = exporter.wake.notified() => {}
        }
        loop {
            let batch: Vec<FinishedTrace> = {
                let mut queue = exporter.queue.lock().unwrap_or_else(|p| p.into_inner());
                let n = queue.len().min(MAX_BATCH);
                queue.drain(..n).collect()
            };
            if batch.is_empty() {
                break;
            }
            let full = batch.len() == MAX_BATCH;
            let spans: u64 = batch.iter().map(FinishedTrace::span_count).sum();
            let settings = exporter
                .settings
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let Some(settings) = settings else {
                // Export was turned off by a reload after these were recorded.
                dropped("export_failed", spans);
                continue;
            };
            let body = otlp::encode(&batch, &settings.service_name).encode_to_vec();
            drop(batch);
            let sent = tokio::time::timeout(settings.timeout, send(&settings.endpoint, body))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {:?}", settings.timeout)));
            match sent {
                Ok(()) => {
                    metrics().trace_spans_exported_total.inc_by(spans);
                    if failing {
                        tracing::info!(endpoint = %settings.endpoint, "span export works again");
                        failing = false;
                    }
                }
                Err(error) => {
                    dropped("export_failed", spans);
                    // Once per failing streak: the counter tells how long it lasts.
                    if !failing {
                        tracing::warn!(endpoint = %settings.endpoint, %error, spans, "span export failed; spans are dropped until it works (fingate_trace_spans_dropped_total)");
                        failing = true;
                    }
                }
            }
            if !full {
                break;
            }
        }
    }
}

/// POSTs one batch (the caller bounds it in time); the outbound client keeps
/// the connection alive for the next one.
async fn send(endpoint: &Endpoint, body: Vec<u8>) -> Result<(), String> {
    let client = outbound::client().map_err(|e| format!("no HTTP client: {e}"))?;
    let response = client
        .post(endpoint.to_string())
        .header(http::header::CONTENT_TYPE, "application/x-protobuf")
        .body(body)
        .send()
        .await
        .map_err(|e| outbound::describe(&e))?;
    let status = response.status();
    // Read the (small) answer whole so the connection can carry the next batch.
    let _ = response.bytes().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the collector answered {status}"))
    }
}
