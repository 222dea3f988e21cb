//! Wraps a service's business routes with what every instance shares:
//! /health, the /_mock diagnostics, JSON 404/405 and the middleware stack.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::diag::{self, Stats};
use crate::error;
use crate::faults::{self, FaultConfig, Faults};

#[derive(Clone)]
pub struct Instance {
    pub name: Arc<str>,
    pub faults: Arc<Faults>,
    pub stats: Arc<Stats>,
}

impl FromRef<Instance> for Arc<str> {
    fn from_ref(i: &Instance) -> Self {
        i.name.clone()
    }
}

impl FromRef<Instance> for Arc<Faults> {
    fn from_ref(i: &Instance) -> Self {
        i.faults.clone()
    }
}

impl FromRef<Instance> for Arc<Stats> {
    fn from_ref(i: &Instance) -> Self {
        i.stats.clone()
    }
}

/// `health_status` lets a test fail active health checks while the instance
/// keeps accepting connections and serving business traffic.
async fn health(State(faults): State<Arc<Faults>>) -> (StatusCode, Json<serde_json::Value>) {
    match faults.snapshot().health_status {
        Some(code) if code != 200 => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            Json(json!({ "status": "unhealthy" })),
        ),
        _ => (StatusCode::OK, Json(json!({ "status": "ok" }))),
    }
}

async fn stats(State(i): State<Instance>) -> Json<serde_json::Value> {
    Json(i.stats.snapshot(&i.name))
}

async fn reset_stats(State(i): State<Instance>) -> Json<serde_json::Value> {
    i.stats.reset();
    Json(i.stats.snapshot(&i.name))
}

/// Builds the full router of one named instance around `business`.
pub fn instance_router(name: &str, faults: FaultConfig, business: Router) -> Router {
    let inst = Instance {
        name: Arc::from(name),
        faults: Arc::new(Faults::new(faults)),
        stats: Arc::new(Stats::default()),
    };
    let common = Router::new()
        .route("/health", get(health))
        .route("/_mock/echo", any(diag::echo))
        .route("/_mock/echo/{*rest}", any(diag::echo))
        .route("/_mock/stats", get(stats))
        .route("/_mock/stats/reset", post(reset_stats))
        .route("/_mock/faults", get(faults::get).post(faults::set))
        .route("/_mock/faults/reset", post(faults::reset))
        .with_state(inst.clone());
    // Layers wrap outward: served_by sees every response, stats count before
    // faults so failed requests are still counted.
    business
        .merge(common)
        .fallback(error::route_not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(from_fn_with_state(inst.faults.clone(), faults::middleware))
        .layer(from_fn_with_state(inst.stats.clone(), diag::count))
        .layer(from_fn_with_state(inst.name.clone(), diag::served_by))
}
