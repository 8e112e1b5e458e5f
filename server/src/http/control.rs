//! Control endpoints (issue 5): Flower's (`/api/task/revoke`,
//! `/api/task/rate-limit`, `/api/task/timeout`, `/api/worker/...`;
//! celery-protocol §6.2) with Flower's parameters (query string or form
//! body), and celeriac's own: any allowed pidbox command with a target
//! (`POST /api/control/{method}`), bulk revoke with a dry run
//! (`POST /api/tasks/revoke`), `GET /api/audit` and `GET /api/whoami`.
//!
//! Every answer is JSON: Flower's `message` (or `error`), plus `replies`
//! (`{nodename: reply}`) and `no_reply` (addressed workers that did not
//! answer within the inspect timeout). A worker's `{"error": ...}` reply
//! answers 403 with Flower's text; no reply at all answers 504. Routes
//! here sit behind the auth middleware (`http/auth.rs`), which has already
//! refused viewers, read-only mode and cross-site requests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use api::control::{AuditResponse, BulkRevokeResponse, Command, ControlResponse};
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

use super::errors::HttpError;
use super::params::{self, Params};
use crate::audit::AuditEntry;
use crate::auth::Principal;
use crate::control::{Matcher, Outcome, Request, Target};
use crate::query::TaskQuery;
use crate::shared::{self, Shared};

/// Most tasks one bulk revoke may address.
pub const MAX_BULK_REVOKE: usize = 10_000;
/// Ids per `revoke` message in a bulk revoke.
const BULK_CHUNK: usize = 500;

/// The control routes, merged into the main router.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/task/revoke/{id}", post(revoke))
        .route("/api/task/rate-limit/{name}", post(rate_limit))
        .route("/api/task/timeout/{name}", post(timeout))
        .route("/api/worker/shutdown/{w}", post(shutdown))
        .route("/api/worker/pool/restart/{w}", post(pool_restart))
        .route("/api/worker/pool/grow/{w}", post(pool_grow))
        .route("/api/worker/pool/shrink/{w}", post(pool_shrink))
        .route("/api/worker/pool/autoscale/{w}", post(autoscale))
        .route("/api/worker/queue/add-consumer/{w}", post(add_consumer))
        .route(
            "/api/worker/queue/cancel-consumer/{w}",
            post(cancel_consumer),
        )
        .route("/api/control/{method}", post(generic))
        .route("/api/tasks/revoke", post(bulk_revoke))
        .route("/api/audit", get(audit))
        .route("/api/whoami", get(whoami))
        .route("/api/me", get(me))
}

/// Celery 5.7's `time_limit` command only updates the task registry
/// (`registered` shows it); prefork request classes copy the limits when the
/// consumer builds its strategies (`create_request_cls`), which happens at
/// start and on `pool_restart` (`WorkController.reload` calls
/// `update_strategies`). Tested in `tests/control.rs`.
const TIME_LIMIT_NOTE: &str = "Running prefork workers keep applying \
the old limits to new tasks until their pool restarts (apply=true here, or \
POST /api/worker/pool/restart/{worker}; both need worker_pool_restarts=True) \
or the worker restarts; `registered` shows the new limits at once.";

/// The parameters of a Flower control request: query string plus a
/// form-urlencoded body, as tornado's `get_argument` reads them (the
/// body's values come last, so they win).
struct FlowerForm(Params);

impl<S: Send + Sync> FromRequest<S> for FlowerForm {
    type Rejection = HttpError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, HttpError> {
        let query = req.uri().query().map(str::to_owned);
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| HttpError::new(e.status(), format!("Invalid body: {}", e.body_text())))?;
        form_params(query, &body).map(FlowerForm)
    }
}

fn form_params(query: Option<String>, body: &Bytes) -> Result<Params, HttpError> {
    let bad = |e: serde_urlencoded::de::Error| {
        HttpError::new(StatusCode::BAD_REQUEST, format!("Invalid parameters: {e}"))
    };
    let mut params: Params = match query {
        Some(q) => serde_urlencoded::from_str(&q).map_err(bad)?,
        None => Vec::new(),
    };
    let trimmed = body.iter().all(|b| b.is_ascii_whitespace());
    if !trimmed && !body.starts_with(b"{") {
        let more: Params = serde_urlencoded::from_bytes(body).map_err(bad)?;
        params.extend(more);
    }
    Ok(params)
}

fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, HttpError> {
    params::last(params, name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| HttpError::bad_param(name, format!("Missing argument {name}")))
}

fn number<T: std::str::FromStr>(params: &Params, name: &str) -> Result<Option<T>, HttpError> {
    match params::last(params, name).filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|_| {
            HttpError::bad_param(name, format!("Invalid argument '{v}' for '{name}'"))
        }),
    }
}

/// 404 unless the worker is known from events or inspect replies (Flower
/// checks its inspect cache).
fn known_worker(shared: &Shared, w: &str) -> Result<(), HttpError> {
    let known = shared.state.read().worker(w, shared::now()).is_some()
        || shared.ops.inspect.get(w).is_some();
    if known {
        Ok(())
    } else {
        Err(HttpError::not_found(format!("Unknown worker '{w}'")))
    }
}

fn alive_workers(shared: &Shared) -> Vec<String> {
    shared
        .state
        .read()
        .workers(shared::now())
        .into_iter()
        .filter(|w| w.status)
        .map(|w| w.hostname)
        .collect()
}

fn target_json(target: &Target) -> Value {
    match target {
        Target::All => json!("all"),
        Target::Workers(list) => json!(list),
        Target::Pattern { pattern, matcher } => {
            json!({"pattern": pattern, "matcher": matcher.as_str()})
        }
    }
}

/// Sends `request`, records it in the audit log with the status `judge`
/// picks, and answers.
async fn act(
    shared: &Arc<Shared>,
    who: &Principal,
    request: Request,
    judge: impl FnOnce(&Outcome) -> (StatusCode, Result<String, String>),
) -> Response {
    let (status, body) = act_body(shared, who, request, judge).await;
    (status, Json(body)).into_response()
}

/// [`act`] without the final serialisation, for handlers that send more
/// than one command.
async fn act_body(
    shared: &Arc<Shared>,
    who: &Principal,
    request: Request,
    judge: impl FnOnce(&Outcome) -> (StatusCode, Result<String, String>),
) -> (StatusCode, ControlResponse) {
    let result = shared.ops.pidbox.call(&request).await;
    let (status, body) = match result {
        Ok(outcome) => {
            let (status, text) = judge(&outcome);
            let (message, error) = match text {
                Ok(m) => (Some(m), None),
                Err(e) => (None, Some(e)),
            };
            (
                status,
                ControlResponse {
                    message,
                    error,
                    replies: outcome.replies,
                    no_reply: outcome.no_reply,
                    ..ControlResponse::default()
                },
            )
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            ControlResponse {
                error: Some(e.to_string()),
                ..ControlResponse::default()
            },
        ),
    };
    // Read-only commands are not actions, so not audited (their replies
    // can be large and hold task arguments).
    if !Command::parse(&request.method).is_some_and(Command::is_inspect) {
        audit_action(shared, who, &request, status, &body);
    }
    (status, body)
}

fn audit_action(
    shared: &Shared,
    who: &Principal,
    request: &Request,
    status: StatusCode,
    body: &ControlResponse,
) {
    shared.ops.audit.record(AuditEntry {
        id: 0,
        time: shared::now(),
        user: who.name.clone(),
        role: who.role.as_str().into(),
        command: request.method.clone(),
        arguments: Value::Object(request.arguments.clone()),
        target: target_json(&request.target),
        status: status.as_u16(),
        replies: json!(body.replies),
        no_reply: body.no_reply.clone(),
    });
}

/// The judgement of a command sent to one worker, with Flower's texts: its
/// `ok` reply gives `ok(text)`, its `error` reply 403 `fail(error)`, and
/// silence 504.
fn one_worker(
    w: &str,
    ok: impl FnOnce(String) -> String,
    fail: impl FnOnce(String) -> String,
) -> impl FnOnce(&Outcome) -> (StatusCode, Result<String, String>) {
    let w = w.to_string();
    move |o: &Outcome| {
        if let Some(text) = o.ok_of(&w) {
            (StatusCode::OK, Ok(ok(text)))
        } else if let Some(e) = o.error_of(&w) {
            (StatusCode::FORBIDDEN, Err(fail(e)))
        } else if let Some(r) = o.replies.get(&w) {
            (StatusCode::FORBIDDEN, Err(fail(r.to_string())))
        } else {
            (
                StatusCode::GATEWAY_TIMEOUT,
                Err(format!("No reply from '{w}'")),
            )
        }
    }
}

/// `workername` when given (and known), else every worker.
fn worker_or_all(shared: &Shared, params: &Params) -> Result<(Target, Option<String>), HttpError> {
    match params::last(params, "workername").filter(|w| !w.is_empty()) {
        Some(w) => {
            known_worker(shared, w)?;
            Ok((Target::Workers(vec![w.to_string()]), Some(w.to_string())))
        }
        None => Ok((Target::All, None)),
    }
}

/// Judges a command sent to every worker: 200 when every reply is `ok`.
fn all_workers(
    ok: String,
    fail: impl FnOnce(String) -> String,
) -> impl FnOnce(&Outcome) -> (StatusCode, Result<String, String>) {
    move |o: &Outcome| {
        let errors: Vec<String> = o
            .replies
            .iter()
            .filter(|(_, r)| r.get("ok").is_none())
            .map(|(w, r)| format!("{w}: {}", r.get("error").unwrap_or(r)))
            .collect();
        if !errors.is_empty() {
            (StatusCode::FORBIDDEN, Err(fail(errors.join("; "))))
        } else if o.replies.is_empty() {
            (
                StatusCode::GATEWAY_TIMEOUT,
                Err("No worker replied".to_string()),
            )
        } else {
            (StatusCode::OK, Ok(ok))
        }
    }
}

/// How an [`Outcome`] becomes a status and a message or error.
type Judge = Box<dyn FnOnce(&Outcome) -> (StatusCode, Result<String, String>) + Send>;

fn single_or_all(
    worker: Option<String>,
    ok: impl FnOnce(String) -> String + Send + 'static,
    fail: impl FnOnce(String) -> String + Send + 'static,
    all_ok: String,
) -> Judge {
    match worker {
        Some(w) => Box::new(one_worker(&w, ok, fail)),
        None => Box::new(all_workers(all_ok, fail)),
    }
}

/// `POST /api/task/revoke/{id}`: `terminate` (bool), `signal` (SIGTERM).
/// Flower sends it without asking for replies; we ask, so the answer shows
/// each worker's.
async fn revoke(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    FlowerForm(params): FlowerForm,
) -> Result<Response, HttpError> {
    let terminate = params::bool_param(&params, "terminate")?;
    let signal = params::last(&params, "signal")
        .filter(|s| !s.is_empty())
        .unwrap_or("SIGTERM")
        .to_string();
    let request = Request::new(
        "revoke",
        json!({"task_id": id, "terminate": terminate, "signal": signal}),
        Target::All,
    )
    .expecting(alive_workers(&shared));
    let message = format!("Revoked '{id}'");
    Ok(act(&shared, &who, request, move |_| {
        (StatusCode::OK, Ok(message))
    })
    .await)
}

/// `POST /api/task/rate-limit/{name}`: `ratelimit` (required),
/// `workername` (Flower requires it; without it every worker is asked).
async fn rate_limit(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    FlowerForm(params): FlowerForm,
) -> Result<Response, HttpError> {
    let rate = required(&params, "ratelimit")?.to_string();
    let (target, worker) = worker_or_all(&shared, &params)?;
    let rate_value = match rate.parse::<f64>() {
        Ok(n) => json!(n),
        Err(_) => json!(rate),
    };
    let mut request = Request::new(
        "rate_limit",
        json!({"task_name": name, "rate_limit": rate_value}),
        target,
    );
    if worker.is_none() {
        request = request.expecting(alive_workers(&shared));
    }
    let judge = single_or_all(
        worker,
        |ok| ok,
        |e| format!("Failed to set rate limit: '{e}'"),
        "new rate limit set successfully".into(),
    );
    Ok(act(&shared, &who, request, judge).await)
}

/// `POST /api/task/timeout/{name}`: `soft`, `hard` (seconds), `workername`;
/// beyond Flower, `apply=true` follows up with a `pool_restart` of the same
/// workers, the only control path that makes Celery 5.7 prefork workers use
/// the new limits for new tasks (see [`TIME_LIMIT_NOTE`]).
async fn timeout(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    FlowerForm(params): FlowerForm,
) -> Result<Response, HttpError> {
    let soft: Option<f64> = number(&params, "soft")?;
    let hard: Option<f64> = number(&params, "hard")?;
    let apply = params::bool_param(&params, "apply")?;
    let (target, worker) = worker_or_all(&shared, &params)?;
    let expect = |r: Request| match worker {
        Some(_) => r,
        None => r.expecting(alive_workers(&shared)),
    };
    let restart = apply.then(|| {
        expect(Request::new(
            "pool_restart",
            json!({"reload": false}),
            target.clone(),
        ))
    });
    let request = expect(Request::new(
        "time_limit",
        json!({"task_name": name, "hard": hard, "soft": soft}),
        target,
    ));
    let judge = single_or_all(
        worker.clone(),
        |ok| ok,
        |e| format!("Failed to set timeouts: '{e}'"),
        "time limits set successfully".into(),
    );
    let (mut status, mut body) = act_body(&shared, &who, request, judge).await;
    if status.is_success() {
        match restart {
            None => body.note = Some(TIME_LIMIT_NOTE.into()),
            Some(restart) => {
                let judge = single_or_all(worker, |ok| ok, |e| e, "reload started".into());
                let (s, r) = act_body(&shared, &who, restart, judge).await;
                if s.is_success() {
                    body.message = Some(
                        "time limits set successfully and applied: the pool restarts, \
                         new tasks get the new limits"
                            .into(),
                    );
                } else {
                    status = s;
                    body.message = None;
                    body.error = Some(format!(
                        "time limits set, but not applied: the pool restart failed: {}",
                        r.error.as_deref().unwrap_or("no reply")
                    ));
                    body.note = Some(TIME_LIMIT_NOTE.into());
                }
                body.pool_restart = Some(Box::new(r));
            }
        }
    }
    Ok((status, Json(body)).into_response())
}

/// `POST /api/worker/shutdown/{w}`: `shutdown` never replies.
async fn shutdown(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    Path(w): Path<String>,
) -> Result<Response, HttpError> {
    known_worker(&shared, &w)?;
    let request = Request::new("shutdown", json!({}), Target::Workers(vec![w])).without_reply();
    Ok(act(&shared, &who, request, |_| {
        (StatusCode::OK, Ok("Shutting down!".to_string()))
    })
    .await)
}

async fn worker_command(
    shared: Arc<Shared>,
    who: Principal,
    w: String,
    method: &str,
    arguments: Value,
    ok: impl FnOnce(String) -> String,
    fail: impl FnOnce(String) -> String,
) -> Result<Response, HttpError> {
    known_worker(&shared, &w)?;
    let request = Request::new(method, arguments, Target::Workers(vec![w.clone()]));
    Ok(act(&shared, &who, request, one_worker(&w, ok, fail)).await)
}

async fn pool_restart(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    Path(w): Path<String>,
) -> Result<Response, HttpError> {
    let (a, b) = (w.clone(), w.clone());
    worker_command(
        shared,
        who,
        w,
        "pool_restart",
        json!({"reload": false}),
        move |_| format!("Restarting '{a}' worker's pool"),
        move |e| format!("Failed to restart the '{b}' pool: {e}"),
    )
    .await
}

async fn pool_grow(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    Path(w): Path<String>,
    FlowerForm(params): FlowerForm,
) -> Result<Response, HttpError> {
    let n: u32 = number(&params, "n")?.unwrap_or(1);
    let (a, b) = (w.clone(), w.clone());
    worker_command(
        shared,
        who,
        w,
        "pool_grow",
        json!({"n": n}),
        move |_| format!("Growing '{a}' worker's pool by {n}"),
        move |e| format!("Failed to grow '{b}' worker's pool: {e}"),
    )
    .await
}

async fn pool_shrink(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    Path(w): Path<String>,
    FlowerForm(params): FlowerForm,
) -> Result<Response, HttpError> {
    let n: u32 = number(&params, "n")?.unwrap_or(1);
    let (a, b) = (w.clone(), w.clone());
    worker_command(
        shared,
        who,
        w,
        "pool_shrink",
        json!({"n": n}),
        move |_| format!("Shrinking '{a}' worker's pool by {n}"),
        move |e| format!("Failed to shrink '{b}' worker's pool: {e}"),
    )
    .await
}

async fn autoscale(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    Path(w): Path<String>,
    FlowerForm(params): FlowerForm,
) -> Result<Response, HttpError> {
    let min: u32 = number(&params, "min")?
        .ok_or_else(|| HttpError::bad_param("min", "Missing argument min"))?;
    let max: u32 = number(&params, "max")?
        .ok_or_else(|| HttpError::bad_param("max", "Missing argument max"))?;
    let (a, b) = (w.clone(), w.clone());
    worker_command(
        shared,
        who,
        w,
        "autoscale",
        json!({"min": min, "max": max}),
        move |_| format!("Autoscaling '{a}' worker (min={min}, max={max})"),
        move |e| format!("Failed to autoscale '{b}' worker: {e}"),
    )
    .await
}

async fn add_consumer(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    Path(w): Path<String>,
    FlowerForm(params): FlowerForm,
) -> Result<Response, HttpError> {
    let queue = required(&params, "queue")?.to_string();
    let (b, q) = (w.clone(), queue.clone());
    worker_command(
        shared,
        who,
        w,
        "add_consumer",
        json!({"queue": queue}),
        |ok| ok,
        move |e| format!("Failed to add '{q}' consumer to '{b}' worker: {e}"),
    )
    .await
}

async fn cancel_consumer(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    Path(w): Path<String>,
    FlowerForm(params): FlowerForm,
) -> Result<Response, HttpError> {
    let queue = required(&params, "queue")?.to_string();
    let (b, q) = (w.clone(), queue.clone());
    worker_command(
        shared,
        who,
        w,
        "cancel_consumer",
        json!({"queue": queue}),
        |ok| ok,
        move |e| format!("Failed to cancel '{q}' consumer from '{b}' worker: {e}"),
    )
    .await
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GenericBody {
    #[serde(default)]
    arguments: serde_json::Map<String, Value>,
    destination: Option<Vec<String>>,
    pattern: Option<String>,
    matcher: Option<String>,
    /// Idle timeout in seconds (default `--inspect-timeout`, at most 30).
    timeout: Option<f64>,
    /// Ask for replies (default true; `shutdown` never replies).
    reply: Option<bool>,
}

/// `POST /api/control/{method}` with a JSON body `{arguments, destination |
/// pattern + matcher, timeout, reply}`: any [`Command`]
/// to every worker, a list, or a pattern. Always 200 with the replies
/// (unless the broker is unreachable): judging them is the caller's job.
async fn generic(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    Path(method): Path<String>,
    body: Bytes,
) -> Result<Response, HttpError> {
    if Command::parse(&method).is_none() {
        return Err(HttpError::not_found(format!(
            "Unknown or disallowed command '{method}'"
        )));
    }
    let b: GenericBody = if body.iter().all(|c| c.is_ascii_whitespace()) {
        GenericBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            HttpError::new(StatusCode::BAD_REQUEST, format!("Invalid JSON body: {e}"))
        })?
    };
    let target = match (b.destination, b.pattern) {
        (Some(_), Some(_)) => {
            return Err(HttpError::bad_param(
                "destination",
                "give destination or pattern, not both",
            ))
        }
        (Some(list), None) if list.is_empty() => {
            return Err(HttpError::bad_param("destination", "empty destination"))
        }
        (Some(list), None) => Target::Workers(list),
        (None, Some(pattern)) => {
            let matcher = match b.matcher.as_deref().unwrap_or("glob") {
                "glob" => Matcher::Glob,
                "pcre" => Matcher::Pcre,
                other => {
                    return Err(HttpError::bad_param(
                        "matcher",
                        format!("unknown matcher '{other}' (glob or pcre)"),
                    ))
                }
            };
            Target::Pattern { pattern, matcher }
        }
        (None, None) => Target::All,
    };
    let mut request = Request::new(&method, Value::Object(b.arguments), target.clone());
    if method == "shutdown" || b.reply == Some(false) {
        request = request.without_reply();
    }
    if let Some(t) = b.timeout {
        if !(t > 0.0 && t <= 30.0) {
            return Err(HttpError::bad_param(
                "timeout",
                "timeout must be in (0, 30] seconds",
            ));
        }
        request = request.timeout(Duration::from_secs_f64(t));
    }
    if target == Target::All {
        request = request.expecting(alive_workers(&shared));
    }
    Ok(act(&shared, &who, request, |_| {
        (StatusCode::OK, Ok("sent".to_string()))
    })
    .await)
}

/// `POST /api/tasks/revoke`: revokes every unfinished task matching
/// `/api/tasks`'s filters (`taskname`, `state`, `workername`,
/// `received_start`, `received_end`, `search`). `dry_run=true` answers the
/// count and ids without sending anything. At least one filter, or
/// `all=true`, is required; at most [`MAX_BULK_REVOKE`] tasks.
async fn bulk_revoke(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    FlowerForm(params): FlowerForm,
) -> Result<Response, HttpError> {
    let dry_run = params::bool_param(&params, "dry_run")?;
    let terminate = params::bool_param(&params, "terminate")?;
    let all = params::bool_param(&params, "all")?;
    let signal = params::last(&params, "signal")
        .filter(|s| !s.is_empty())
        .unwrap_or("SIGTERM")
        .to_string();
    let filters: Params = params
        .iter()
        .filter(|(k, _)| {
            matches!(
                k.as_str(),
                "taskname" | "state" | "workername" | "received_start" | "received_end" | "search"
            )
        })
        .cloned()
        .collect();
    let q = TaskQuery::from_params(&filters)?;
    let filtered = q.taskname.is_some()
        || q.state.is_some()
        || q.workername.is_some()
        || q.received_start.is_some()
        || q.received_end.is_some()
        || q.search.is_some();
    if !filtered && !all {
        return Err(HttpError::bad_param(
            "taskname",
            "give at least one filter (taskname, state, workername, received_start, \
             received_end, search), or all=true",
        ));
    }
    let ids: Vec<String> = {
        let state = shared.state.read();
        q.run(state.tasks())
            .into_iter()
            .filter(|t| !t.state.is_ready())
            .map(|t| t.uuid.to_string())
            .collect()
    };
    if ids.len() > MAX_BULK_REVOKE {
        return Err(HttpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "{} tasks match; at most {MAX_BULK_REVOKE} may be revoked at once: narrow the filter",
                ids.len()
            ),
        ));
    }
    if dry_run {
        return Ok(Json(BulkRevokeResponse {
            dry_run: true,
            count: ids.len() as u64,
            ids,
            message: None,
            replies: None,
            no_reply: None,
        })
        .into_response());
    }
    let alive = alive_workers(&shared);
    let mut replies: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut no_reply: Vec<String> = Vec::new();
    let mut failure = None;
    for chunk in ids.chunks(BULK_CHUNK) {
        let request = Request::new(
            "revoke",
            json!({"task_id": chunk, "terminate": terminate, "signal": signal}),
            Target::All,
        )
        .expecting(alive.clone());
        match shared.ops.pidbox.call(&request).await {
            Ok(o) => {
                for (w, r) in o.replies {
                    replies.entry(w).or_default().push(r);
                }
                for w in o.no_reply {
                    if !no_reply.contains(&w) {
                        no_reply.push(w);
                    }
                }
            }
            Err(e) => {
                failure = Some(e.to_string());
                break;
            }
        }
    }
    let status = if failure.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    shared.ops.audit.record(AuditEntry {
        id: 0,
        time: shared::now(),
        user: who.name.clone(),
        role: who.role.as_str().into(),
        command: "bulk_revoke".into(),
        arguments: json!({
            "filters": filters.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "terminate": terminate,
            "signal": signal,
            "count": ids.len(),
            "task_ids": ids,
        }),
        target: json!("all"),
        status: status.as_u16(),
        replies: json!(replies),
        no_reply: no_reply.clone(),
    });
    let count = ids.len();
    Ok((
        status,
        Json(BulkRevokeResponse {
            dry_run: false,
            count: count as u64,
            ids,
            message: Some(match failure {
                Some(e) => format!("revoke failed: {e}"),
                None => format!("Revoked {count} tasks"),
            }),
            replies: Some(replies),
            no_reply: Some(no_reply),
        }),
    )
        .into_response())
}

/// `GET /api/audit?limit=N`: the newest control actions first.
async fn audit(
    State(shared): State<Arc<Shared>>,
    axum::extract::Query(params): axum::extract::Query<Params>,
) -> Result<Response, HttpError> {
    let limit: usize = number(&params, "limit")?.unwrap_or(100);
    let entries = shared.ops.audit.recent(limit);
    Ok(Json(AuditResponse { entries }).into_response())
}

/// `GET /api/whoami`: who the request is, and what it may do (the
/// dashboard hides controls with it).
async fn whoami(
    State(shared): State<Arc<Shared>>,
    Extension(who): Extension<Principal>,
) -> Response {
    let auth = &shared.ops.auth;
    Json(json!({
        "user": who.name,
        "role": who.role,
        "auth_enabled": auth.enabled(),
        "read_only": auth.read_only,
        "may_control": !auth.read_only && who.role == crate::auth::Role::Operator,
    }))
    .into_response()
}

/// `GET /api/me`: [`api::control::Me`], what the dashboard needs to show or
/// hide its controls and the no-auth warning.
async fn me(State(shared): State<Arc<Shared>>, Extension(who): Extension<Principal>) -> Response {
    Json(me_of(&shared.ops.auth, &who)).into_response()
}

fn me_of(auth: &crate::auth::Auth, who: &Principal) -> api::control::Me {
    use crate::auth::Role;
    use api::control::MeRole;
    // Without users every request is the anonymous operator: say
    // "anonymous" so the dashboard can warn that nobody logs in.
    let role = match (auth.enabled(), who.role) {
        (false, _) => MeRole::Anonymous,
        (true, Role::Operator) => MeRole::Operator,
        (true, Role::Viewer) => MeRole::Viewer,
    };
    api::control::Me {
        user: who.name.clone(),
        role,
        auth_enabled: auth.enabled(),
        read_only: auth.read_only,
        can_control: !auth.read_only && who.role == Role::Operator,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dashboard reads the audit log with the shared wire type.
    #[test]
    fn audit_entries_read_as_the_shared_wire_type() {
        let entry = AuditEntry {
            id: 3,
            time: 1_700_000_000.5,
            user: "ann".into(),
            role: crate::auth::Role::Operator.as_str().into(),
            command: "revoke".into(),
            arguments: json!({"task_id": "abc", "terminate": true, "signal": "SIGKILL"}),
            target: json!("all"),
            status: 200,
            replies: json!({"w1@h": {"ok": "tasks abc flagged as revoked"}}),
            no_reply: vec!["w2@h".into()],
        };
        let wire = serde_json::to_value(json!({"entries": [entry]})).unwrap();
        let read: api::control::AuditResponse = serde_json::from_value(wire).unwrap();
        let e = &read.entries[0];
        assert_eq!(
            (e.id, e.role.as_str(), e.command.as_str()),
            (3, "operator", "revoke")
        );
        assert_eq!(e.no_reply, ["w2@h"]);
        assert_eq!(e.replies["w1@h"]["ok"], "tasks abc flagged as revoked");
    }
}
