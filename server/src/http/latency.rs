//! `GET /api/queues/latency`: per queue, the oldest task sent and not yet
//! received, and recent sent → started waits (from `task-sent` events).

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use api::insight::QueuesLatency;

use crate::app::AppState;
use crate::clock;
use crate::insight::latency::WAIT_WINDOW_SECS;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/queues/latency", get(latency))
}

async fn latency(State(shared): State<Arc<AppState>>) -> Json<QueuesLatency> {
    let mut l = shared.insight.latency.lock();
    Json(QueuesLatency {
        queues: l.snapshot(clock::now()),
        wait_window: WAIT_WINDOW_SECS,
        queues_folded: l.folded(),
    })
}
