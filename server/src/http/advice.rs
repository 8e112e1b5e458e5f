//! `GET /api/advice?window=5m|1h`: per queue the load against the
//! processes serving it, the processes M/M/c says keep the p95 wait under
//! `--advice-wait-target`, and the findings with what to do (over
//! `Insight::advice`; a bad `window` is a 400 naming it).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};

use api::insight::AdviceResponse;

use super::errors::HttpError;
use super::params::{from_query, last, Params};
use crate::app::AppState;
use crate::clock;
use crate::insight::stats::Window;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/advice", get(advice))
}

async fn advice(
    State(shared): State<Arc<AppState>>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Json<AdviceResponse>, HttpError> {
    let params = from_query(q)?;
    // No since-start window: a rate averaged since start says nothing
    // about the processes needed now.
    let window = match last(&params, "window") {
        None | Some("") => Window::FiveMinutes,
        Some(w) => Window::parse(w)
            .filter(|w| *w != Window::All)
            .ok_or_else(|| {
                HttpError::bad_param("window", format!("window must be 5m or 1h, not {w:?}"))
            })?,
    };
    Ok(Json(shared.insight.advice(
        &shared.broker,
        window,
        clock::now(),
    )))
}
