//! `GET /api/alerts` (rules, live state, notifiers) and
//! `POST /api/alerts/reload` (operators; the auth middleware refuses POSTs
//! from viewers and in read-only mode). A reload is an operator's action,
//! so it goes to the audit log like a control command.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

use super::errors::HttpError;
use crate::alerting::ReloadError;
use crate::app::AppState;
use crate::audit::AuditEntry;
use crate::auth::Principal;
use crate::clock;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/alerts", get(list))
        .route("/api/alerts/reload", post(reload))
}

async fn list(State(shared): State<Arc<AppState>>) -> Json<api::alerts::AlertsResponse> {
    Json(shared.alerting.response())
}

/// Re-reads the rule file; answers the new state, or 422 with the file's
/// error (the previous rules stay in force).
async fn reload(
    State(shared): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
) -> Result<Json<api::alerts::AlertsResponse>, HttpError> {
    let s = shared.clone();
    let result = tokio::task::spawn_blocking(move || s.alerting.reload())
        .await
        .map_err(|e| HttpError::internal(format!("reload failed: {e}")))?;
    let (status, outcome) = match &result {
        Ok(rules) => (StatusCode::OK, json!({ "rules": rules })),
        Err(e @ ReloadError::Disabled) => (StatusCode::CONFLICT, json!({ "error": e.to_string() })),
        Err(e @ ReloadError::Invalid(_)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "error": e.to_string() }),
        ),
    };
    let file = shared.alerting.file().map(|f| f.display().to_string());
    shared.ops.audit.record(AuditEntry {
        target: Value::String("celeriac".to_owned()),
        status: status.as_u16(),
        replies: outcome,
        ..who.audit_entry(clock::now(), "alerts_reload", json!({ "file": file }))
    });
    match result {
        Ok(_) => Ok(Json(shared.alerting.response())),
        Err(e) => Err(HttpError::new(status, e.to_string())),
    }
}
