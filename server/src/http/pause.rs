//! Pausing a queue across the cluster: `POST /api/queue/pause/{queue}`,
//! `POST /api/queue/resume/{queue}` (operators, behind the auth middleware
//! like every control route) and `GET /api/queues/paused`. An adapter over
//! `control/pause.rs`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::json;

use super::errors::HttpError;
use crate::app::AppState;
use crate::auth::Principal;
use crate::clock;
use crate::control::action::Controller;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/queue/pause/{queue}", post(pause))
        .route("/api/queue/resume/{queue}", post(resume))
        .route("/api/queues/paused", get(paused))
}

fn controller<'a>(
    shared: &'a AppState,
    who: &'a Principal,
) -> Controller<'a, crate::transport::ClusterControl> {
    Controller {
        mailbox: &shared.ops.pidbox,
        audit: &shared.ops.audit,
        who,
        clock: clock::now,
    }
}

fn checked(queue: &str) -> Result<(), HttpError> {
    if queue.trim().is_empty() || queue.len() > 255 {
        return Err(HttpError::bad_param(
            "queue",
            "a queue name of 1 to 255 bytes",
        ));
    }
    Ok(())
}

fn answer(
    verdict: crate::control::judge::Verdict,
    body: api::control::ControlResponse,
) -> Response {
    let status =
        StatusCode::from_u16(verdict.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(body)).into_response()
}

/// `POST /api/queue/pause/{queue}`: `cancel_consumer` to every worker that
/// consumes the queue, each one's reply in `replies`.
async fn pause(
    State(shared): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    Path(queue): Path<String>,
) -> Result<Response, HttpError> {
    checked(&queue)?;
    let (verdict, body) = controller(&shared, &who)
        .pause(&shared.ops.pauses, &queue)
        .await;
    tracing::info!(%queue, user = %who.name, status = verdict.status(), "paused a queue");
    Ok(answer(verdict, body))
}

/// `POST /api/queue/resume/{queue}`: `add_consumer` to the workers the
/// pause cancelled it on; 404 when celeriac does not hold it paused.
async fn resume(
    State(shared): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    Path(queue): Path<String>,
) -> Result<Response, HttpError> {
    checked(&queue)?;
    let Some((verdict, body)) = controller(&shared, &who)
        .resume(&shared.ops.pauses, &queue)
        .await
    else {
        return Err(HttpError::not_found(format!(
            "Queue '{queue}' is not paused (POST /api/worker/queue/add-consumer/{{worker}} \
             adds a consumer to one worker)"
        )));
    };
    tracing::info!(%queue, user = %who.name, status = verdict.status(), "resumed a queue");
    Ok(answer(verdict, body))
}

/// `GET /api/queues/paused`: `{"queues": [{queue, by, since, workers}]}`.
async fn paused(State(shared): State<Arc<AppState>>) -> Response {
    Json(json!({"queues": shared.ops.pauses.list()})).into_response()
}
