//! `GET /api/task/stats` for the task types page: per task name the
//! runtime and wait quantiles from the server's sketches (1 % relative
//! error), polled every 5 s over the window the page picks.

use std::time::Duration;

use api::insight::{TaskStatsResponse, TaskTypeStats};
use leptos::prelude::*;

use super::util::{enc, href, poll_json};

const POLL: Duration = Duration::from_secs(5);

/// The latest answer for the window in `window`, refreshed while the
/// calling component lives.
pub fn poll(window: RwSignal<String>) -> RwSignal<Option<Result<TaskStatsResponse, String>>> {
    poll_json(
        move || href(&format!("/api/task/stats?window={}", enc(&window.get()))),
        POLL,
        "/api/task/stats",
    )
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
