//! Control endpoints: Flower's (`/api/task/revoke`,
//! `/api/task/rate-limit`, `/api/task/timeout`, `/api/worker/...`;
//! docs/celery-protocol.md §6.2) with Flower's parameters (query string or form
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
//!
//! This is an adapter: it reads parameters and bodies, takes what the
//! control logic needs out of `AppState` (the workers it knows, the pidbox
//! client, the audit log, the clock) and turns typed results into
//! statuses and JSON. Targets, parameter checks, judging replies, the audit
//! entry and bulk revoke live in `control/`, where they are tested without
//! HTTP or a broker.

use std::sync::Arc;

use api::control::{AuditResponse, ControlResponse};
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::json;

use super::errors::HttpError;
use super::params::Params;
use crate::app::AppState;
use crate::auth::Principal;
use crate::clock;
use crate::control::action::Controller;
use crate::control::bulk::BulkRevoke;
use crate::control::command::{self, Roster, WorkerEndpoint, WORKER_ENDPOINTS};
use crate::control::form;
use crate::control::inspect::{knows_task, masked_reply};
use crate::control::judge::Verdict;
use crate::transport::ClusterControl;

/// The control routes, merged into the main router.
pub fn routes() -> Router<Arc<AppState>> {
    let mut router = Router::new()
        .route("/api/task/revoke/{id}", post(revoke))
        .route("/api/task/rate-limit/{name}", post(rate_limit))
        .route("/api/task/timeout/{name}", post(timeout))
        .route("/api/control/{method}", post(generic))
        .route("/api/tasks/revoke", post(bulk_revoke))
        .route("/api/audit", get(audit))
        .route("/api/whoami", get(whoami))
        .route("/api/me", get(me));
    for endpoint in WORKER_ENDPOINTS {
        router = router.route(
            endpoint.path,
            post(
                move |State(shared): State<Arc<AppState>>,
                      Extension(who): Extension<Principal>,
                      Path(w): Path<String>,
                      req: axum::extract::Request| {
                    worker(endpoint, shared, who, w, req)
                },
            ),
        );
    }
    router
}

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

/// The workers known from events and inspect replies, and the live ones.
fn roster(shared: &AppState) -> Roster {
    Roster::of(&shared.state.read(), &shared.ops.inspect, clock::now())
}

fn controller<'a>(shared: &'a AppState, who: &'a Principal) -> Controller<'a, ClusterControl> {
    Controller {
        mailbox: &shared.ops.pidbox,
        audit: &shared.ops.audit,
        who,
        clock: clock::now,
    }
}

fn status(verdict: Verdict) -> StatusCode {
    StatusCode::from_u16(verdict.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn answer((verdict, body): (Verdict, ControlResponse)) -> Response {
    (status(verdict), Json(body)).into_response()
}

/// `POST /api/task/revoke/{id}`.
async fn revoke(
    State(shared): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    FlowerForm(params): FlowerForm,
) -> Result<Response, HttpError> {
    let prepared = command::revoke(&id, &params, &roster(&shared))?;
    Ok(answer(controller(&shared, &who).act(prepared).await))
}

/// Whether a worker has task `name` (events, inspect `registered`). A
/// worker that came online a moment ago may not have answered `registered`
/// yet: its answers are awaited before a name is called unknown.
async fn task_known(shared: &AppState, name: &str) -> bool {
    if knows_task(&shared.state, &shared.ops.inspect, name) {
        return true;
    }
    let workers = shared.state.read().workers(clock::now());
    crate::control::onboard::ensure(&shared.ops, &shared.broker, &workers).await;
    knows_task(&shared.state, &shared.ops.inspect, name)
}

/// `POST /api/task/rate-limit/{name}`.
async fn rate_limit(
    State(shared): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    FlowerForm(params): FlowerForm,
) -> Result<Response, HttpError> {
    let known = task_known(&shared, &name).await;
    let prepared = command::rate_limit(&name, &params, &roster(&shared), known)?;
    Ok(answer(controller(&shared, &who).act(prepared).await))
}

/// `POST /api/task/timeout/{name}`.
async fn timeout(
    State(shared): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    FlowerForm(params): FlowerForm,
) -> Result<Response, HttpError> {
    let known = task_known(&shared, &name).await;
    let limits = command::time_limit(&name, &params, &roster(&shared), known)?;
    Ok(answer(controller(&shared, &who).time_limit(limits).await))
}

/// Every endpoint of [`WORKER_ENDPOINTS`]: the one command to the worker
/// the path names. Endpoints without parameters never read the body.
async fn worker(
    endpoint: &'static WorkerEndpoint,
    shared: Arc<AppState>,
    who: Principal,
    w: String,
    req: axum::extract::Request,
) -> Result<Response, HttpError> {
    let params = if endpoint.takes.reads_parameters() {
        FlowerForm::from_request(req, &()).await?.0
    } else {
        Params::new()
    };
    let prepared = endpoint.prepare(&w, &params, &roster(&shared))?;
    let (verdict, mut body) = controller(&shared, &who).act(prepared).await;
    if verdict.is_ok() {
        let quorum = crate::control::quorum::blunted_by(
            endpoint.command,
            &w,
            &shared.broker.worker_queues(),
            &shared.broker.snapshot(),
        );
        if !quorum.is_empty() {
            body.note = Some(crate::control::quorum::note(&quorum));
        }
    }
    Ok(answer((verdict, body)))
}

/// `POST /api/control/{method}`: always 200 with the replies (unless the
/// broker is unreachable).
async fn generic(
    State(shared): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    Path(method): Path<String>,
    body: Bytes,
) -> Result<Response, HttpError> {
    let prepared = command::generic(&method, &body, &roster(&shared))?;
    let (verdict, mut body) = controller(&shared, &who).act(prepared).await;
    // Inspect replies carry what the cache masks too: task arguments, conf.
    for reply in body.replies.values_mut() {
        *reply = masked_reply(&shared.ops.redactor, &method, std::mem::take(reply));
    }
    Ok(answer((verdict, body)))
}

/// `POST /api/tasks/revoke`: every unfinished task matching `/api/tasks`'s
/// filters; `dry_run=true` answers the count and ids without sending.
async fn bulk_revoke(
    State(shared): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    FlowerForm(params): FlowerForm,
) -> Result<Response, HttpError> {
    let bulk = BulkRevoke::parse(&params)?;
    let ids = bulk.select(shared.state.read().tasks())?;
    if bulk.dry_run {
        return Ok(Json(BulkRevoke::dry_run_answer(ids)).into_response());
    }
    let (verdict, body) = controller(&shared, &who)
        .bulk_revoke(&bulk, ids, &roster(&shared))
        .await;
    Ok((status(verdict), Json(body)).into_response())
}

/// `GET /api/audit?limit=N`: the newest control actions first.
async fn audit(
    State(shared): State<Arc<AppState>>,
    axum::extract::Query(params): axum::extract::Query<Params>,
) -> Result<Response, HttpError> {
    let limit: usize = form::number(&params, "limit")?.unwrap_or(100);
    let entries = shared.ops.audit.recent(limit);
    Ok(Json(AuditResponse { entries }).into_response())
}

/// `GET /api/whoami`: who the request is, and what it may do (the
/// dashboard hides controls with it).
async fn whoami(
    State(shared): State<Arc<AppState>>,
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
async fn me(State(shared): State<Arc<AppState>>, Extension(who): Extension<Principal>) -> Response {
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
        session: who.session.is_some(),
        email: who.session.as_ref().and_then(|s| s.email.clone()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::auth::{Principal, Role};
    use crate::control::judge::{audit_entry, Verdict};
    use crate::control::{Request, Target};

    /// The dashboard reads the audit log with the shared wire type.
    #[test]
    fn audit_entries_read_as_the_shared_wire_type() {
        let who = Principal::new("ann", Role::Operator);
        let request = Request::new(
            "revoke",
            json!({"task_id": "abc", "terminate": true, "signal": "SIGKILL"}),
            Target::All,
        );
        let body = api::control::ControlResponse {
            replies: [(
                "w1@h".to_string(),
                json!({"ok": "tasks abc flagged as revoked"}),
            )]
            .into(),
            no_reply: vec!["w2@h".into()],
            ..Default::default()
        };
        let mut entry = audit_entry(&who, &request, Verdict::Ok, &body, 1_700_000_000.5);
        entry.id = 3;
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
