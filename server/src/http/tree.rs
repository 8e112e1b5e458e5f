//! `GET /api/task/{id}/tree`: the workflow a task belongs to, from memory.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};

use api::tree::WorkflowTree;

use super::errors::HttpError;
use super::params::{from_query, last, Params};
use crate::app::AppState;
use crate::query::tree::{workflow_tree, DEFAULT_LIMIT, MAX_LIMIT};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/task/{uuid}/tree", get(tree))
}

async fn tree(
    State(shared): State<Arc<AppState>>,
    Path(uuid): Path<String>,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Json<WorkflowTree>, HttpError> {
    let params = from_query(query)?;
    let limit = match last(&params, "limit") {
        None => DEFAULT_LIMIT,
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(HttpError::bad_param(
                    "limit",
                    format!("limit must be a whole number from 1 to {MAX_LIMIT}, got '{v}'"),
                ))
            }
        },
    };
    let state = shared.state.read();
    workflow_tree(&state, &uuid, limit)
        .map(Json)
        .ok_or_else(|| {
            HttpError::not_found(format!(
                "Unknown task '{uuid}' (the tree is built from the tasks in memory)"
            ))
        })
}
