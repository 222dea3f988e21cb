//! Run-time fault knobs per instance, so gateway tests can make one upstream
//! slow, flaky, broken or "unhealthy" without restarting it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::ApiError;
use crate::ledger::lock;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultConfig {
    pub latency_ms: u64,
    /// Every Nth faultable request fails with `fail_status`; 0 turns it off.
    pub fail_every: u64,
    pub fail_status: u16,
    pub garbage: bool,
    pub force_status: Option<u16>,
    pub health_status: Option<u16>,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            fail_every: 0,
            fail_status: 500,
            garbage: false,
            force_status: None,
            health_status: None,
        }
    }
}

/// Body of `POST /_mock/faults`: a missing field leaves the knob unchanged,
/// an explicit `null` clears `force_status`/`health_status`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPatch {
    pub latency_ms: Option<u64>,
    pub fail_every: Option<u64>,
    pub fail_status: Option<u16>,
    pub garbage: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub force_status: Option<Option<u16>>,
    #[serde(default, deserialize_with = "present")]
    pub health_status: Option<Option<u16>>,
}

/// Tells "field absent" (outer None via `default`) from "field is null".
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u16>>, D::Error> {
    Option::<u16>::deserialize(d).map(Some)
}

/// Statuses a fault may produce: informational codes would confuse HTTP/1
/// framing, and anything past 599 is not a real status.
pub fn valid_status(code: u16) -> bool {
    (200..=599).contains(&code)
}

/// Accepts `200ms`, `2s` or a plain millisecond count such as `200`.
pub fn parse_latency(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000)
    } else {
        (s, 1)
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("invalid latency {s:?}: use e.g. 200ms, 2s or 200"))
}

#[derive(Debug, Default)]
pub struct Faults {
    config: Mutex<FaultConfig>,
    /// Counts faultable requests for `fail_every`; restarts whenever the knob is set.
    counter: AtomicU64,
}

enum Action {
    Pass,
    Status(u16, &'static str),
    Garbage,
}

impl Faults {
    pub fn new(config: FaultConfig) -> Self {
        Self {
            config: Mutex::new(config),
            counter: AtomicU64::new(0),
        }
    }

    pub fn snapshot(&self) -> FaultConfig {
        lock(&self.config).clone()
    }

    pub fn apply(&self, patch: FaultPatch) -> Result<FaultConfig, ApiError> {
        let statuses = [
            patch.fail_status,
            patch.force_status.flatten(),
            patch.health_status.flatten(),
        ];
        if let Some(bad) = statuses.into_iter().flatten().find(|s| !valid_status(*s)) {
            return Err(ApiError::bad_request(
                "invalid_fault",
                format!("status {bad} is outside 200..=599"),
            ));
        }
        let mut cfg = lock(&self.config);
        if let Some(v) = patch.latency_ms {
            cfg.latency_ms = v;
        }
        if let Some(v) = patch.fail_every {
            cfg.fail_every = v;
            self.counter.store(0, Ordering::SeqCst);
        }
        if let Some(v) = patch.fail_status {
            cfg.fail_status = v;
        }
        if let Some(v) = patch.garbage {
            cfg.garbage = v;
        }
        if let Some(v) = patch.force_status {
            cfg.force_status = v;
        }
        if let Some(v) = patch.health_status {
            cfg.health_status = v;
        }
        Ok(cfg.clone())
    }

    pub fn reset(&self) -> FaultConfig {
        let mut cfg = lock(&self.config);
        *cfg = FaultConfig::default();
        self.counter.store(0, Ordering::SeqCst);
        cfg.clone()
    }

    fn decide(&self) -> (u64, Action) {
        let cfg = self.snapshot();
        let action = if let Some(code) = cfg.force_status {
            Action::Status(code, "forced_status")
        } else if cfg.fail_every > 0
            && (self.counter.fetch_add(1, Ordering::SeqCst) + 1) % cfg.fail_every == 0
        {
            Action::Status(cfg.fail_status, "injected_failure")
        } else if cfg.garbage {
            Action::Garbage
        } else {
            Action::Pass
        };
        (cfg.latency_ms, action)
    }
}

/// Diagnostics must stay reachable while faults are on, otherwise a test
/// could not switch them off again; /health has its own knob.
fn faultable(path: &str) -> bool {
    !(path == "/health" || path.starts_with("/_mock/faults") || path.starts_with("/_mock/stats"))
}

/// Middleware: sleeps, then either short-circuits with a fault or lets the
/// request through. Faulted requests never reach the handler, so e.g. a
/// failed payment attempt moves no money.
pub async fn middleware(State(faults): State<Arc<Faults>>, req: Request, next: Next) -> Response {
    if !faultable(req.uri().path()) {
        return next.run(req).await;
    }
    let (latency_ms, action) = faults.decide();
    if latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(latency_ms)).await;
    }
    match action {
        Action::Pass => next.run(req).await,
        Action::Status(code, kind) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            ApiError::new(status, kind, format!("fault injection answered {code}")).into_response()
        }
        Action::Garbage => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            Body::from(&b"\x00\xff<<not json>> {{{\xfe\x01"[..]),
        )
            .into_response(),
    }
}

pub async fn get(State(faults): State<Arc<Faults>>) -> Json<FaultConfig> {
    Json(faults.snapshot())
}

pub async fn set(
    State(faults): State<Arc<Faults>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<FaultConfig>, ApiError> {
    let body = body?;
    let patch: FaultPatch = if body.iter().all(u8::is_ascii_whitespace) {
        FaultPatch::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("invalid_fault", e.to_string()))?
    };
    faults.apply(patch).map(Json)
}

pub async fn reset(State(faults): State<Arc<Faults>>) -> Json<FaultConfig> {
    Json(faults.reset())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn latency_formats() {
        assert_eq!(parse_latency("200ms"), Ok(200));
        assert_eq!(parse_latency("2s"), Ok(2000));
        assert_eq!(parse_latency("150"), Ok(150));
        assert!(parse_latency("fast").is_err());
        assert!(parse_latency("-5ms").is_err());
        assert!(parse_latency("").is_err());
    }

    #[test]
    fn patch_missing_vs_null() {
        let f = Faults::new(FaultConfig {
            force_status: Some(503),
            health_status: Some(500),
            ..FaultConfig::default()
        });
        let p: FaultPatch = serde_json::from_str(r#"{"latency_ms": 5}"#).unwrap();
        let cfg = f.apply(p).unwrap();
        assert_eq!(
            (cfg.latency_ms, cfg.force_status, cfg.health_status),
            (5, Some(503), Some(500))
        );
        let p: FaultPatch = serde_json::from_str(r#"{"force_status": null}"#).unwrap();
        let cfg = f.apply(p).unwrap();
        assert_eq!((cfg.force_status, cfg.health_status), (None, Some(500)));
        assert!(serde_json::from_str::<FaultPatch>(r#"{"latency": 5}"#).is_err());
        let p: FaultPatch = serde_json::from_str(r#"{"fail_status": 99}"#).unwrap();
        assert!(f.apply(p).is_err());
    }

    #[test]
    fn fail_every_counts_from_when_set() {
        let f = Faults::default();
        let p: FaultPatch =
            serde_json::from_str(r#"{"fail_every": 3, "fail_status": 503}"#).unwrap();
        f.apply(p).unwrap();
        let failed: Vec<bool> = (0..7)
            .map(|_| matches!(f.decide().1, Action::Status(503, _)))
            .collect();
        assert_eq!(failed, [false, false, true, false, false, true, false]);
    }

    #[test]
    fn diagnostics_are_not_faultable() {
        assert!(!faultable("/health"));
        assert!(!faultable("/_mock/faults"));
        assert!(!faultable("/_mock/stats/reset"));
        assert!(faultable("/_mock/echo"));
        assert!(faultable("/accounts/ACC-1001"));
    }
}
