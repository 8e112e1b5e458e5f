//! Publishing tasks over HTTP: `POST /api/task/retry/{id}` re-runs a known
//! task (its arguments rebuilt from the events' reprs, or replaced by the
//! body's). Every route here is a POST, so the auth middleware has already
//! refused viewers, read-only mode and cross-site requests; each attempt is
//! recorded in the audit log.
//!
//! An adapter: the message is built in `submit/`, published through the
//! transport's `Publisher`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde_json::{json, Map, Value};

use super::errors::HttpError;
use crate::app::AppState;
use crate::auth::Principal;
use crate::clock;
use crate::history::reader;
use crate::submit::{Original, PublishError, Publisher, Rerun, RerunError, TaskMessage};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/task/retry/{id}", post(retry))
}

/// A JSON object body; an empty body is `{}`.
fn object_body(body: &Bytes) -> Result<Map<String, Value>, HttpError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object",
        )),
        Err(e) => Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON: {e}"),
        )),
    }
}

fn rerun_error(e: RerunError) -> HttpError {
    match e {
        RerunError::Body(m) => HttpError::new(StatusCode::BAD_REQUEST, m),
        RerunError::Arguments(ref r) => {
            let mut err = HttpError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string());
            err.body.parameter = Some(r.argument.clone());
            err
        }
        RerunError::Incomplete(m) => HttpError::new(StatusCode::UNPROCESSABLE_ENTITY, m),
    }
}

pub(super) fn publish_error(e: &PublishError) -> HttpError {
    let status = match e {
        PublishError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        PublishError::Unroutable { .. } | PublishError::Refused => StatusCode::BAD_GATEWAY,
    };
    HttpError::new(status, e.to_string())
}

/// `clock::now()` as a time for the message's `eta`/`expires`.
pub(super) fn utc(now: f64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_micros((now * 1e6) as i64).unwrap_or_default()
}

/// What was published, for answers and the audit log.
pub(super) fn published(m: &TaskMessage) -> Value {
    json!({
        "name": m.name,
        "args": m.args,
        "kwargs": m.kwargs,
        "exchange": m.route.exchange,
        "routing_key": m.route.routing_key,
        "eta": m.eta,
    })
}

/// `POST /api/task/retry/{id}`: body `{args?, kwargs?, queue?, countdown?}`.
/// Answers `{"task-id": new, "retry_of": id, "published": {...}}`.
async fn retry(
    State(shared): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, HttpError> {
    let body = object_body(&body)?;
    let rerun = Rerun::from_body(&body).map_err(rerun_error)?;
    let task = reader::task(shared.history.as_deref(), &shared.state, &id)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "history unavailable; answering from memory");
            None
        })
        .ok_or_else(|| HttpError::not_found(format!("Unknown task '{id}'")))?;
    let submit = &shared.submit;
    let new_id = uuid::Uuid::new_v4().to_string();
    let message = rerun
        .message(
            &Original::of(&task),
            new_id.clone(),
            submit.origin.clone(),
            submit.oid.clone(),
            &submit.default_queue,
            utc(clock::now()),
        )
        .map_err(rerun_error)?;
    let outcome = submit.publisher.publish(&message).await;
    let what = published(&message);
    let mut entry = who.audit_entry(
        clock::now(),
        "retry",
        json!({"task": id, "new_task": new_id, "edited": body}),
    );
    entry.target =
        json!({"exchange": message.route.exchange, "routing_key": message.route.routing_key});
    match outcome {
        Ok(()) => {
            submit.links.add(&id, &new_id);
            entry.status = 200;
            entry.replies = what.clone();
            shared.ops.audit.record(entry);
            tracing::info!(task = %id, new_task = %new_id, user = %who.name, "re-ran a task");
            let answer = json!({"task-id": new_id, "retry_of": id, "published": what});
            Ok((StatusCode::OK, Json(answer)).into_response())
        }
        Err(e) => {
            let err = publish_error(&e);
            entry.status = err.status.as_u16();
            entry.replies = json!({"error": e.to_string()});
            shared.ops.audit.record(entry);
            Err(err)
        }
    }
}
