//! Liveness and readiness, for orchestrators and for Flower's `/healthcheck`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;

use crate::shared::Shared;

/// The process is up and serving; says nothing about the broker, so a
/// broker outage never gets celeriac restarted in a loop.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Flower's health endpoint, kept so existing probes keep working.
pub async fn healthcheck() -> &'static str {
    "OK"
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    consuming: bool,
    last_event_at: Option<f64>,
    last_error: Option<String>,
}

/// Ready while events are being consumed: a monitor that hears nothing
/// serves stale data, and load balancers should prefer a replica that hears.
pub async fn readyz(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let health = &shared.health;
    let consuming = health.is_consuming();
    let body = Readiness {
        ready: consuming,
        consuming,
        last_event_at: health.last_event_at(),
        last_error: health.last_error.lock().clone(),
    };
    let status = if consuming {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
