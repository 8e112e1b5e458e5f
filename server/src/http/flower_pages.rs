//! Flower's page addresses, sent on to the dashboard's own pages, so links
//! to Flower in old alerts, chat history and runbooks land on the same
//! thing here. `/tasks` and `/workers` are the dashboard's own paths; they
//! are routed here so that a binary built without the dashboard answers
//! them with its status page rather than a 404.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Redirect;
use axum::routing::get;
use axum::Router;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::app::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/task/{id}", get(task))
        .route("/worker/{name}", get(worker))
        .route("/broker", get(broker))
        .route("/tasks", get(super::assets::index))
        .route("/workers", get(super::assets::index))
}

/// Temporary: should celeriac ever serve these paths itself, no browser
/// keeps a stale permanent redirect.
fn to(shared: &AppState, path: &str) -> Redirect {
    Redirect::temporary(&format!("{}{path}", shared.url_prefix))
}

/// What a path segment may carry as it is: task ids and worker names
/// (`celery@host`) stay readable, anything else is escaped.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'@');

fn segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

async fn task(State(shared): State<Arc<AppState>>, Path(id): Path<String>) -> Redirect {
    to(&shared, &format!("/tasks/{}", segment(&id)))
}

async fn worker(State(shared): State<Arc<AppState>>, Path(name): Path<String>) -> Redirect {
    to(&shared, &format!("/workers/{}", segment(&name)))
}

async fn broker(State(shared): State<Arc<AppState>>) -> Redirect {
    to(&shared, "/queues")
}
