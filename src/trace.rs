//! Distributed tracing: W3C Trace Context in and out, spans exported over
//! OTLP/HTTP.
//!
//! With a `tracing:` section, every request continues the caller's trace (an
//! incoming `traceparent`) or starts one; the upstream gets a `traceparent` whose
//! parent is the gateway's client span for that attempt, and the access log a
//! `trace_id`. With `otlp_endpoint`, sampled requests are exported: a server span
//! per request and a client span per upstream attempt ([`otlp`]), batched by a
//! task on the control runtime ([`export`]). Without the section nothing here
//! runs.
//!
//! Named `trace` so it does not shadow the `tracing` crate (the gateway's own logs).

mod context;
mod export;
mod otlp;
mod settings;
mod span;

pub use export::{configure as configure_export, submit};
pub use settings::{tracing as tracing_settings, TracingConfig};
pub use span::{RequestTrace, ServerFacts, TRACEPARENT, TRACESTATE};

/// The sampling decision of one configuration generation.
#[derive(Debug, Clone)]
pub struct Tracer {
    bound: u64,
    /// Whether sampled requests are recorded for export.
    exports: bool,
}

impl Tracer {
    pub fn new(sample_ratio: f64, exports: bool) -> Self {
        Self {
            bound: context::ratio_bound(sample_ratio),
            exports,
        }
    }

    pub fn from_config(config: &TracingConfig) -> Self {
        Self::new(config.sample_ratio, config.endpoint.is_some())
    }

    fn ratio_sampled(&self, trace_id: u128) -> bool {
        context::ratio_sampled(trace_id, self.bound)
    }
}
