//! A test OTLP/HTTP collector: takes `POST /v1/traces`, decodes each
//! `ExportTraceServiceRequest` with `opentelemetry-proto` and keeps the spans.
//! It can hold its answers (a slow collector) or speak TLS with a test CA's
//! certificate; it stops on drop.

#![allow(dead_code)]

use crate::testca::CertFiles;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
pub use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Receiver {
    pub addr: SocketAddr,
    tls: bool,
    spans: Arc<Mutex<Vec<(String, Span)>>>,
    /// Service names of the resources received.
    stop: Arc<AtomicBool>,
}

impl Receiver {
    /// Answers every export at once.
    pub fn start() -> Receiver {
        Self::start_holding(Duration::ZERO)
    }

    /// Holds each answer for `hold` (or until dropped): a collector too slow.
    pub fn start_holding(hold: Duration) -> Receiver {
        Self::start_with(hold, None)
    }

    /// Serves HTTPS with `cert` (its endpoint is `https://`).
    pub fn start_tls(cert: &CertFiles) -> Receiver {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            CertificateDer::pem_file_iter(&cert.cert)
                .unwrap()
                .map(Result::unwrap)
                .collect(),
            PrivateKeyDer::from_pem_file(&cert.key).unwrap(),
        )
        .unwrap();
        Self::start_with(Duration::ZERO, Some(Arc::new(config)))
    }

    fn start_with(hold: Duration, tls: Option<Arc<rustls::ServerConfig>>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (spans.clone(), stop.clone());
        let secure = tls.is_some();
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (s, st, tls) = (s.clone(), st.clone(), tls.clone());
                        conn.set_nonblocking(false).unwrap();
                        conn.set_read_timeout(Some(Duration::from_millis(200)))
                            .unwrap();
                        std::thread::spawn(move || match tls {
                            Some(config) => {
                                let server = rustls::ServerConnection::new(config).unwrap();
                                serve(rustls::StreamOwned::new(server, conn), &s, &st, hold)
                            }
                            None => serve(conn, &s, &st, hold),
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Receiver {
            addr,
            tls: secure,
            spans,
            stop,
        }
    }

    pub fn endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/v1/traces", self.addr)
    }

    /// Every span received so far, with its resource's `service.name`.
    pub fn spans(&self) -> Vec<(String, Span)> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) until `pred` holds for the spans received.
    pub fn wait(
        &self,
        what: &str,
        pred: impl Fn(&[(String, Span)]) -> bool,
    ) -> Vec<(String, Span)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let spans = self.spans();
            if pred(&spans) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; got {} spans",
                spans.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One kept-alive connection (its reads time out, so `stop` is seen): requests
/// with a `Content-Length` body.
fn serve(
    mut conn: impl Read + Write,
    spans: &Mutex<Vec<(String, Span)>>,
    stop: &AtomicBool,
    hold: Duration,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        // A whole request in `buf`?
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + len {
                let body: Vec<u8> = buf[end + 4..end + 4 + len].to_vec();
                buf.drain(..end + 4 + len);
                assert!(head.starts_with("post /v1/traces "), "{head}");
                assert!(
                    head.contains("content-type: application/x-protobuf"),
                    "{head}"
                );
                let req = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
                let held = Instant::now();
                while held.elapsed() < hold && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let mut got = spans.lock().unwrap();
                for rs in req.resource_spans {
                    let service = rs
                        .resource
                        .as_ref()
                        .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                        .map(|a| text(a.value.as_ref().and_then(|v| v.value.as_ref())))
                        .unwrap_or_default();
                    for ss in rs.scope_spans {
                        got.extend(ss.spans.into_iter().map(|s| (service.clone(), s)));
                    }
                }
                drop(got);
                let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
                if conn.write_all(answer.as_bytes()).is_err() {
                    return;
                }
                continue;
            }
        }
        match conn.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) if stop.load(Ordering::Relaxed) => return,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        other => format!("{other:?}"),
    }
}

/// A span attribute as text (strings as they are, integers in decimal).
pub fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .map(|a| text(a.value.as_ref().and_then(|v| v.value.as_ref())))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
