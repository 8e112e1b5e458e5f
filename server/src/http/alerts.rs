//! `GET /api/alerts` (rules, live state, notifiers) and
//! `POST /api/alerts/reload` (operators; the auth middleware refuses POSTs
//! from viewers and in read-only mode).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::errors::HttpError;
use crate::alerting::ReloadError;
use crate::shared::Shared;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/alerts", get(list))
        .route("/api/alerts/reload", post(reload))
}

async fn list(State(shared): State<Arc<Shared>>) -> Json<api::alerts::AlertsResponse> {
    Json(shared.alerting.response())
}

/// Re-reads the rule file; answers the new state, or 422 with the file's
/// error (the previous rules stay in force).
async fn reload(
    State(shared): State<Arc<Shared>>,
) -> Result<Json<api::alerts::AlertsResponse>, HttpError> {
    let s = shared.clone();
    let result = tokio::task::spawn_blocking(move || s.alerting.reload())
        .await
        .map_err(|e| HttpError::internal(format!("reload failed: {e}")))?;
    match result {
        Ok(_) => Ok(Json(shared.alerting.response())),
        Err(e @ ReloadError::Disabled) => Err(HttpError::new(StatusCode::CONFLICT, e.to_string())),
        Err(e @ ReloadError::Invalid(_)) => Err(HttpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.to_string(),
        )),
    }
}
