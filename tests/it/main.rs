//! Integration tests: the real `fingate` binary in front of real `services-mock`
//! processes, over real sockets on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod curl;
mod harness;
mod otlp;
mod redis;
mod redis_fleet;
// Some helpers are for the listener's tests (`CertFiles::yaml`), not written yet.
#[allow(dead_code)]
mod testca;

mod abuse;
mod admin;
mod audit;
mod authkit;
mod cache;
mod cli;
mod consumers;
mod cors;
mod demo;
mod demo_secrets;
mod federation;
mod fleet;
mod hardening;
mod idempotency;
mod identity;
mod ip_filter;
mod jwt;
mod keepalive;
mod layers;
mod lifecycle;
mod lockout;
mod mtls;
mod oauth;
mod prometheus;
mod rate_limit;
mod redact;
mod revocation;
mod routing;
mod tls;
mod token_endpoint;
mod trace_context;
mod upstream_tls;
mod upstreams;
mod validate;
mod web_client;
