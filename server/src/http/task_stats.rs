//! `GET /api/task/stats?window=5m|1h|all`: per task name, how tasks ended
//! and their runtime and wait quantiles (DDSketch, 1 % relative error)
//! over the window; `5m` when not given, the window of queue latency's
//! waits too.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};

use api::insight::TaskStatsResponse;

use super::errors::HttpError;
use super::params::{from_query, last, Params};
use crate::app::AppState;
use crate::clock;
use crate::insight::stats::{Window, RELATIVE_ERROR};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/task/stats", get(stats))
}

async fn stats(
    State(shared): State<Arc<AppState>>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Json<TaskStatsResponse>, HttpError> {
    let params = from_query(q)?;
    let window = match last(&params, "window") {
        None | Some("") => Window::FiveMinutes,
        Some(w) => Window::parse(w).ok_or_else(|| {
            HttpError::bad_param("window", format!("window must be 5m, 1h or all, not {w:?}"))
        })?,
    };
    let s = shared.insight.stats.lock();
    let (tasks, window_seconds) = s.snapshot(window, clock::now());
    Ok(Json(TaskStatsResponse {
        window: window.as_str().to_owned(),
        window_seconds,
        relative_error: RELATIVE_ERROR,
        tasks,
        names_folded: s.folded(),
    }))
}
