//! Publishing tasks over HTTP, and their results.
//!
//! - `POST /api/task/retry/{id}` re-runs a known task (its arguments
//!   rebuilt from the events' reprs, or replaced by the body's);
//! - Flower's task API (docs/celery-protocol.md §6.2): `POST
//!   /api/task/async-apply/{name}`, `/send-task/{name}`, `/apply/{name}`
//!   (waits for the result), `/abort/{id}`, and `GET /api/task/result/{id}`,
//!   reading Celery's result backend (`--result-backend`).
//!
//! The POST routes sit behind the auth middleware, which has already
//! refused viewers, read-only mode and cross-site requests; each is
//! recorded in the audit log. An adapter: messages are built in `submit/`,
//! published through the transport's `Publisher`; results come from
//! `results/`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Map, Value};

use super::errors::HttpError;
use super::params::{bool_param, from_query, Params};
use crate::app::AppState;
use crate::auth::Principal;
use crate::clock;
use crate::control::bulk_retry::BulkRetry;
use crate::history::reader;
use crate::results::{meta, Backend, BackendError, Meta, Ordered};
use crate::submit::{
    Options, Original, PublishError, Publisher, Rerun, RerunError, Route, TaskMessage,
};

/// `apply` and `result?timeout=` wait at most this long when the caller
/// names no timeout, and never longer than `MAX_WAIT_SECS`.
const DEFAULT_APPLY_TIMEOUT_SECS: f64 = 60.0;
const MAX_WAIT_SECS: f64 = 600.0;
/// How often a wait reads the backend.
const POLL: std::time::Duration = std::time::Duration::from_millis(100);

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/task/retry/{id}", post(retry))
        .route("/api/tasks/retry", post(bulk_retry))
        .route("/api/task/async-apply/{name}", post(async_apply))
        .route("/api/task/send-task/{name}", post(send_task))
        .route("/api/task/apply/{name}", post(apply))
        .route("/api/task/result/{id}", get(result))
        .route("/api/task/abort/{id}", post(abort))
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
/// Answers `{"task-id": new, "retry_of": id, "published": {...}}`. With
/// `dry_run=true` (query string or body) it publishes nothing and records
/// nothing: `{"task-id": null, "dry_run": true, "published": {...}}`, or the
/// error the real run would give.
async fn retry(
    State(shared): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    query: Result<Query<Params>, QueryRejection>,
    body: Bytes,
) -> Result<Response, HttpError> {
    let mut params = from_query(query)?;
    let mut body = object_body(&body)?;
    match body.remove("dry_run") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => params.push(("dry_run".into(), b.to_string())),
        Some(Value::String(s)) => params.push(("dry_run".into(), s)),
        Some(_) => return Err(HttpError::bad_param("dry_run", "dry_run must be a boolean")),
    }
    let dry_run = bool_param(&params, "dry_run")?;
    let rerun = Rerun::from_body(&body).map_err(rerun_error)?;
    let task = reader::task(shared.history.as_deref(), &shared.state, &id)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "history unavailable; answering from memory");
            None
        })
        .ok_or_else(|| HttpError::not_found(format!("Unknown task '{id}'")))?;
    let submit = &shared.submit;
    let message = submit
        .rerun_message(&Original::of(&task), &rerun, utc(clock::now()))
        .map_err(rerun_error)?;
    let new_id = message.id.clone();
    let what = published(&message);
    if dry_run {
        let answer = json!({"task-id": null, "retry_of": id, "dry_run": true, "published": what});
        return Ok((StatusCode::OK, Json(answer)).into_response());
    }
    let outcome = submit.publish_rerun(&id, &message).await;
    let mut entry = who.audit_entry(
        clock::now(),
        "retry",
        json!({"task": id, "new_task": new_id, "edited": body}),
    );
    entry.target =
        json!({"exchange": message.route.exchange, "routing_key": message.route.routing_key});
    match outcome {
        Ok(()) => {
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

/// `POST /api/tasks/retry`: `/api/tasks`'s filters, `limit`, `dry_run`, as
/// query string or JSON body. The dry run answers `{count, ready: [ids],
/// blocked: [{id, reason}]}`; the real run `{count, retried: [{id,
/// task-id}], blocked, left}`, with `error` (and 503/502) when the broker
/// stopped taking messages part way.
async fn bulk_retry(
    State(shared): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    query: Result<Query<Params>, QueryRejection>,
    body: Bytes,
) -> Result<Response, HttpError> {
    let mut params = from_query(query)?;
    for (key, value) in object_body(&body)? {
        let text = match value {
            Value::Null => continue,
            Value::String(s) => s,
            Value::Bool(_) | Value::Number(_) => value.to_string(),
            _ => {
                return Err(HttpError::bad_param(
                    key.as_str(),
                    format!("{key} must be a string, number or boolean"),
                ))
            }
        };
        params.push((key, text));
    }
    let bulk = BulkRetry::parse(&params)?;
    let preflight = bulk.preflight(
        shared.state.read().tasks(),
        &shared.submit,
        utc(clock::now()),
    );
    let count = preflight.count();
    if bulk.dry_run {
        let ready: Vec<&str> = preflight.ready.iter().map(|(id, _)| id.as_str()).collect();
        let answer = json!({
            "dry_run": true,
            "count": count,
            "ready": ready,
            "blocked": preflight.blocked,
            "limit": bulk.limit,
        });
        return Ok(Json(answer).into_response());
    }
    let run = bulk.run(preflight.ready, &shared.submit).await;
    let status = match &run.failure {
        Some(e) => publish_error(e).status,
        None => StatusCode::OK,
    };
    let entry = bulk.audit_entry(
        &who,
        count,
        preflight.blocked.len(),
        &run,
        status.as_u16(),
        clock::now(),
    );
    shared.ops.audit.record(entry);
    tracing::info!(retried = run.retried.len(), blocked = preflight.blocked.len(),
                   user = %who.name, "bulk re-ran tasks");
    let mut answer = json!({
        "count": count,
        "retried": run.retried,
        "blocked": preflight.blocked,
        "left": run.left,
    });
    if let Some(e) = &run.failure {
        answer["error"] = json!(e.to_string());
    }
    Ok((status, Json(answer)).into_response())
}

// ---------------------------------------------------------------------------
// Flower's task API

/// Which of Flower's submit endpoints.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Submit {
    AsyncApply,
    SendTask,
    Apply,
}

impl Submit {
    fn command(self) -> &'static str {
        match self {
            Submit::AsyncApply => "async_apply",
            Submit::SendTask => "send_task",
            Submit::Apply => "apply",
        }
    }
}

fn backend_error(e: &BackendError) -> HttpError {
    let status = match e {
        BackendError::NotConfigured => StatusCode::SERVICE_UNAVAILABLE,
        BackendError::Unsupported(_) => StatusCode::NOT_IMPLEMENTED,
        BackendError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        BackendError::Meta(_) => StatusCode::BAD_GATEWAY,
    };
    HttpError::new(status, e.to_string())
}

/// A backend that can answer, or the error Flower's `backend_configured`
/// check (and celeriac's supported schemes) give.
fn usable(backend: &Backend) -> Result<(), HttpError> {
    match backend {
        Backend::None => Err(backend_error(&BackendError::NotConfigured)),
        Backend::Unsupported(s) => Err(backend_error(&BackendError::Unsupported(s.clone()))),
        Backend::Redis(_) | Backend::Database(_) => Ok(()),
    }
}

/// Whether the workers have `name`: seen in events or in an inspect
/// `registered` reply (Flower checks its own app's registry).
fn registered(shared: &AppState, name: &str) -> bool {
    if shared.state.read().knows_task_name(name) {
        return true;
    }
    let inspect = &shared.ops.inspect;
    inspect.names().iter().any(|w| {
        inspect
            .get(w)
            .and_then(|m| m.get("registered").cloned())
            .and_then(|r| r.as_array().cloned())
            .is_some_and(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .any(|t| t.split_whitespace().next() == Some(name))
            })
    })
}

fn seconds_param(name: &str, v: Option<&Value>) -> Result<Option<f64>, HttpError> {
    let n = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n.is_finite() && n >= 0.0 => Ok(Some(n.min(MAX_WAIT_SECS))),
        _ => Err(HttpError::bad_param(
            name,
            format!("Invalid argument '{name}': a number of seconds"),
        )),
    }
}

/// Waits until the backend holds a ready result for `id`, or `timeout`
/// passed; the last meta read either way.
async fn wait_ready(backend: &Backend, id: &str, timeout: f64) -> Result<Option<Meta>, HttpError> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs_f64(timeout);
    loop {
        let meta = backend.get(id).await.map_err(|e| backend_error(&e))?;
        if meta.as_ref().is_some_and(Meta::ready) || tokio::time::Instant::now() >= deadline {
            return Ok(meta);
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn async_apply(
    State(shared): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, HttpError> {
    submit(Submit::AsyncApply, shared, who, name, body).await
}

async fn send_task(
    State(shared): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, HttpError> {
    submit(Submit::SendTask, shared, who, name, body).await
}

async fn apply(
    State(shared): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, HttpError> {
    submit(Submit::Apply, shared, who, name, body).await
}

/// Flower's `get_task_args` and `normalize_options`, then publish.
async fn submit(
    kind: Submit,
    shared: Arc<AppState>,
    who: Principal,
    name: String,
    body: Bytes,
) -> Result<Response, HttpError> {
    let body = object_body(&body)?;
    let args = match body.get("args") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => {
            return Err(HttpError::new(
                StatusCode::BAD_REQUEST,
                "args must be an array",
            ))
        }
    };
    let kwargs = match body.get("kwargs") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(k)) => k.clone(),
        Some(_) => {
            return Err(HttpError::new(
                StatusCode::BAD_REQUEST,
                "kwargs must be an object",
            ))
        }
    };
    if kind != Submit::SendTask && !registered(&shared, &name) {
        return Err(HttpError::not_found(format!("Unknown task '{name}'")));
    }
    let options = Options::from_body(&body).map_err(|e| {
        let mut err = HttpError::new(StatusCode::BAD_REQUEST, e.to_string());
        err.body.parameter = Some(e.option.clone());
        err
    })?;
    let timeout = seconds_param("timeout", body.get("timeout"))?;
    if kind == Submit::Apply {
        // Waiting needs a backend; refuse before publishing anything.
        usable(&shared.results)?;
    }
    let submit = &shared.submit;
    let id = uuid::Uuid::new_v4().to_string();
    let mut message = TaskMessage::new(
        id.clone(),
        name.clone(),
        args,
        kwargs,
        Route::queue(&submit.default_queue),
        submit.origin.clone(),
        submit.oid.clone(),
    );
    options.apply(&mut message, utc(clock::now()), &submit.default_queue);
    let outcome = submit.publisher.publish(&message).await;
    let mut entry = who.audit_entry(
        clock::now(),
        kind.command(),
        json!({"task": name, "new_task": id}),
    );
    entry.target =
        json!({"exchange": message.route.exchange, "routing_key": message.route.routing_key});
    entry.replies = published(&message);
    if let Err(e) = outcome {
        let err = publish_error(&e);
        entry.status = err.status.as_u16();
        entry.replies = json!({"error": e.to_string()});
        shared.ops.audit.record(entry);
        return Err(err);
    }
    entry.status = 200;
    shared.ops.audit.record(entry);
    let mut answer = Ordered::default();
    answer.push("task-id", id.as_str());
    let backend = &shared.results;
    if kind == Submit::Apply {
        let timeout = timeout.unwrap_or(DEFAULT_APPLY_TIMEOUT_SECS);
        let meta = wait_ready(backend, &id, timeout).await?;
        let Some(mut meta) = meta.filter(Meta::ready) else {
            return Err(HttpError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!("task '{id}' was sent but gave no result within {timeout} s"),
            ));
        };
        shared.ops.redactor.mask_json(&mut meta.result);
        meta::add_result(&mut answer, &meta);
        answer.push("state", meta.status.as_str());
    } else if backend.configured() {
        // Flower adds the state whenever a backend is configured.
        match backend.get(&id).await {
            Ok(meta) => answer.push("state", meta.map_or("PENDING".into(), |m| m.status)),
            Err(e) => tracing::warn!(error = %e, task = %id, "reading the new task's state"),
        }
    }
    Ok((StatusCode::OK, Json(answer)).into_response())
}

/// `GET /api/task/result/{id}?timeout=`: the stored state, and the result
/// once ready; with `timeout`, waits for it that long first.
async fn result(
    State(shared): State<Arc<AppState>>,
    Path(id): Path<String>,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Response, HttpError> {
    let query = from_query(query)?;
    let backend = &shared.results;
    usable(backend)?;
    let timeout = query
        .iter()
        .rev()
        .find(|(k, _)| k == "timeout")
        .map(|(_, v)| Value::String(v.clone()));
    let timeout = seconds_param("timeout", timeout.as_ref())?;
    let mut meta = match timeout {
        Some(t) if t > 0.0 => wait_ready(backend, &id, t).await?,
        _ => backend.get(&id).await.map_err(|e| backend_error(&e))?,
    };
    // The backend holds the result as the task returned it.
    if let Some(m) = meta.as_mut() {
        shared.ops.redactor.mask_json(&mut m.result);
    }
    Ok((
        StatusCode::OK,
        Json(meta::result_answer(&id, meta.as_ref())),
    )
        .into_response())
}

/// `POST /api/task/abort/{id}`: the ABORTED state an `AbortableTask`
/// polls for.
async fn abort(
    State(shared): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    let backend = &shared.results;
    usable(backend)?;
    let outcome = backend.abort(&id).await;
    let mut entry = who.audit_entry(clock::now(), "abort", json!({"task": id}));
    match outcome {
        Ok(()) => {
            entry.status = 200;
            shared.ops.audit.record(entry);
            Ok((
                StatusCode::OK,
                Json(json!({"message": format!("Aborted '{id}'")})),
            )
                .into_response())
        }
        Err(e) => {
            let err = backend_error(&e);
            entry.status = err.status.as_u16();
            entry.replies = json!({"error": e.to_string()});
            shared.ops.audit.record(entry);
            Err(err)
        }
    }
}
