//! `GET /api/task/stats` for the task types page: per task name the
//! runtime and wait quantiles from the server's sketches (1 % relative
//! error), polled every 5 s over the window the page picks.

use std::time::Duration;

use api::insight::{TaskStatsResponse, TaskTypeStats};
use leptos::prelude::*;

use super::util::{enc, href};

const POLL: Duration = Duration::from_secs(5);

async fn fetch(window: &str) -> Result<TaskStatsResponse, String> {
    let url = href(&format!("/api/task/stats?window={}", enc(window)));
    let resp = gloo_net::http::Request::get(&url)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.ok() {
        return Err(format!("/api/task/stats answered {}", resp.status()));
    }
    resp.json().await.map_err(|e| e.to_string())
}

/// The latest answer for the window in `window`, refreshed while the
/// calling component lives.
pub fn poll(window: RwSignal<String>) -> RwSignal<Option<Result<TaskStatsResponse, String>>> {
    let data: RwSignal<Option<Result<TaskStatsResponse, String>>> = RwSignal::new(None);
    let load = move || {
        let w = window.get_untracked();
        leptos::task::spawn_local(async move {
            let next = Some(fetch(&w).await);
            // The page may be gone by the time the answer arrives.
            if data.try_with_untracked(|d| *d != next) == Some(true) {
                let _ = data.try_set(next);
            }
        })
    };
    Effect::new(move |_| {
        window.track();
        load();
    });
    let handle = set_interval_with_handle(load, POLL).ok();
    on_cleanup(move || {
        if let Some(h) = handle {
            h.clear();
        }
    });
    data
}

/// The entry of `name` in an answer, if it has one.
pub fn of<'a>(
    data: &'a Option<Result<TaskStatsResponse, String>>,
    name: &str,
) -> Option<&'a TaskTypeStats> {
    match data {
        Some(Ok(r)) => r.tasks.iter().find(|t| t.name == name),
        _ => None,
    }
}
