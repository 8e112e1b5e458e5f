//! HTTP: Flower-compatible API, health, /metrics.

mod advice;
mod alerts;
mod args;
mod assets;
mod auth;
mod control;
mod diagnosis;
mod errors;
mod export;
mod failures;
mod flower;
mod flower_pages;
mod health;
mod latency;
mod metrics;
mod oidc;
mod params;
mod pause;
mod queues;
mod series;
mod submit;
mod task_stats;
mod tree;
mod ws;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub use args::{HttpArgs, DEFAULT_PORT};
pub use errors::HttpError;
pub use oidc::check_callback;

use crate::app::AppState;

/// Every route, under `config.http.url_prefix` when it is set (paths outside the
/// prefix then answer 404, as Flower's `--url_prefix` does).
pub fn router(shared: Arc<AppState>) -> Router {
    let prefix = shared.url_prefix.clone();
    // Authentication in front of every route.
    let auth = axum::middleware::from_fn_with_state(shared.clone(), auth::middleware);
    let callback = oidc::callback_route(&shared);
    let routes = Router::new()
        .route("/", get(assets::index)) // the dashboard (or the status page)
        .route("/ws", get(ws::handler)) // the dashboard's live feed
        .route("/api/workers", get(flower::workers))
        .route("/api/tasks", get(flower::tasks))
        .route("/api/tasks/export", get(export::export))
        .route("/api/task/types", get(flower::task_types))
        .route("/api/task/info/{uuid}", get(flower::task_info))
        .route("/api/queues/length", get(queues::length))
        .route("/metrics", get(metrics::metrics))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/healthcheck", get(health::healthcheck))
        .merge(control::routes())
        .merge(pause::routes())
        .merge(submit::routes())
        .merge(alerts::routes())
        .merge(failures::routes())
        .merge(latency::routes())
        .merge(advice::routes())
        .merge(task_stats::routes())
        .merge(diagnosis::routes())
        .merge(flower_pages::routes())
        .merge(tree::routes())
        .merge(series::routes())
        .merge(oidc::routes(callback.as_deref()))
        .fallback(assets::fallback) // the dashboard's files, deep links, else not_found
        .layer(auth.clone())
        .with_state(shared.clone());
    if prefix.is_empty() {
        routes
    } else {
        // A nested `/` answers `/flower` only; `/flower/` is the address
        // people type and link to.
        Router::new()
            .route(&format!("{prefix}/"), get(assets::index))
            .route_layer(auth)
            .with_state(shared)
            .nest(&prefix, routes)
    }
}

/// JSON for API paths, whose clients parse bodies; plain text elsewhere.
/// The path is seen with the prefix already stripped.
async fn not_found(uri: Uri) -> Response {
    if uri.path() == "/api" || uri.path().starts_with("/api/") {
        HttpError::not_found(format!("Not found: {}", uri.path())).into_response()
    } else {
        (StatusCode::NOT_FOUND, "Not found").into_response()
    }
}

/// The status page a build without the dashboard serves at `/`: counts and
/// links.
async fn index(State(shared): State<Arc<AppState>>) -> Html<String> {
    let (tasks, workers) = {
        let state = shared.state.read();
        (state.task_count(), state.worker_count())
    };
    let consuming = shared.consuming();
    let p = html_escape(&shared.url_prefix);
    let link = |path: &str| format!("<li><a href=\"{p}{path}\">{path}</a></li>");
    let links: String = [
        "/api/workers",
        "/api/workers?status=true",
        "/api/tasks?limit=100",
        "/api/task/types",
        "/metrics",
        "/readyz",
    ]
    .iter()
    .map(|path| link(path))
    .collect();
    Html(format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>celeriac</title></head>\n\
         <body><h1>celeriac</h1>\n\
         <p>Consuming events: {consuming}. Tasks retained: {tasks}. Workers known: {workers}.</p>\n\
         <ul>{links}</ul>\n</body></html>\n"
    ))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests;
