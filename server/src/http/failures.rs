//! `GET /api/failures` (failure groups, newest first) and
//! `POST /api/failures/{fingerprint}/resolve` / `unresolve` (operators; the
//! auth middleware refuses POSTs from viewers and in read-only mode). A mark
//! is an operator's action, so it goes to the audit log like a control
//! command.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

use api::insight::{FailureGroup, FailuresResponse, GroupState};

use super::errors::HttpError;
use super::params::{from_query, last, Params};
use crate::app::AppState;
use crate::audit::AuditEntry;
use crate::auth::Principal;
use crate::clock;
use crate::insight::failures::Filter;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/failures", get(list))
        .route("/api/failures/{fingerprint}/resolve", post(resolve))
        .route("/api/failures/{fingerprint}/unresolve", post(unresolve))
}

async fn list(
    State(shared): State<Arc<AppState>>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Json<FailuresResponse>, HttpError> {
    let params = from_query(q)?;
    let state = match last(&params, "state") {
        None | Some("") => None,
        Some(s) if s.eq_ignore_ascii_case("open") => Some(GroupState::Open),
        Some(s) if s.eq_ignore_ascii_case("resolved") => Some(GroupState::Resolved),
        Some(s) => {
            return Err(HttpError::bad_param(
                "state",
                format!("state must be open or resolved, not {s:?}"),
            ))
        }
    };
    let limit = match last(&params, "limit") {
        None | Some("") => None,
        Some(s) => Some(s.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
            HttpError::bad_param(
                "limit",
                format!("limit must be a positive integer, not {s:?}"),
            )
        })?),
    };
    let filter = Filter {
        task: last(&params, "task").filter(|t| !t.is_empty()),
        state,
        limit,
    };
    let groups = shared.insight.failures.lock();
    let (list, total) = groups.list(&filter);
    Ok(Json(FailuresResponse {
        groups: list,
        total,
        evicted: groups.evicted(),
    }))
}

async fn resolve(
    State(shared): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    Path(fingerprint): Path<String>,
) -> Result<Json<FailureGroup>, HttpError> {
    mark(&shared, &who, &fingerprint, true)
}

async fn unresolve(
    State(shared): State<Arc<AppState>>,
    Extension(who): Extension<Principal>,
    Path(fingerprint): Path<String>,
) -> Result<Json<FailureGroup>, HttpError> {
    mark(&shared, &who, &fingerprint, false)
}

fn mark(
    shared: &AppState,
    who: &Principal,
    fingerprint: &str,
    resolved: bool,
) -> Result<Json<FailureGroup>, HttpError> {
    let now = clock::now();
    let result = {
        let mut groups = shared.insight.failures.lock();
        if resolved {
            groups.resolve(fingerprint, &who.name, now)
        } else {
            groups.unresolve(fingerprint, &who.name, now)
        }
    };
    let command = if resolved {
        "failure_resolve"
    } else {
        "failure_unresolve"
    };
    let (status, replies) = match &result {
        Ok(g) => (StatusCode::OK, json!({ "state": g.state.as_str() })),
        Err(e) => (StatusCode::NOT_FOUND, json!({ "error": e.to_string() })),
    };
    shared.ops.audit.record(AuditEntry {
        target: Value::String("celeriac".to_owned()),
        status: status.as_u16(),
        replies,
        ..who.audit_entry(now, command, json!({ "fingerprint": fingerprint }))
    });
    result
        .map(Json)
        .map_err(|e| HttpError::not_found(e.to_string()))
}
