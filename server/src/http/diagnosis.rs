//! `GET /api/diagnosis` (workers without task events, queues whose tasks
//! come without `task-sent`; the same detail is in `/readyz`) and
//! `GET /api/tasks/stuck` (tasks STARTED past their limit).

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use api::insight::{EventsDiagnosis, StuckTasks};

use crate::app::AppState;
use crate::clock;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/diagnosis", get(diagnosis))
        .route("/api/tasks/stuck", get(stuck))
}

async fn diagnosis(State(shared): State<Arc<AppState>>) -> Json<EventsDiagnosis> {
    Json(shared.insight.diagnosis(&shared.broker, clock::now()))
}

async fn stuck(State(shared): State<Arc<AppState>>) -> Json<StuckTasks> {
    Json(StuckTasks {
        tasks: shared.insight.stuck(&shared.broker, clock::now()),
        stuck_after: shared.insight.stuck_after,
    })
}
