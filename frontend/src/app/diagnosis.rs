//! The diagnosis banner of the overview and workers pages, from
//! `GET /api/diagnosis` and `GET /api/tasks/stuck` (polled every 5 s):
//! workers that run tasks without sending task events (with, for
//! operators, a one-click `enable_events`), queues whose tasks come without
//! `task-sent`, and tasks stuck past their time limit.

use std::time::Duration;

use api::insight::{EventsDiagnosis, StuckTasks};
use leptos::prelude::*;
use serde::de::DeserializeOwned;

use super::control::can_control;
use super::util::{get_json, href, post, send_ok};
use crate::model::duration;

const POLL: Duration = Duration::from_secs(5);

async fn get<T: DeserializeOwned>(path: &str) -> Option<T> {
    get_json(&href(path), path).await.ok()
}

/// `enable_events` to `workers`; the answer's text on failure.
async fn enable_events(workers: Vec<String>) -> Result<(), String> {
    let body = serde_json::json!({ "destination": workers });
    let request = post(&href("/api/control/enable_events"))
        .json(&body)
        .map_err(|e| e.to_string())?;
    send_ok(request, "enable_events").await
}

#[component]
pub fn Diagnosis() -> impl IntoView {
    let diagnosis: RwSignal<Option<EventsDiagnosis>> = RwSignal::new(None);
    let stuck: RwSignal<Option<StuckTasks>> = RwSignal::new(None);
    let note: RwSignal<Option<Result<String, String>>> = RwSignal::new(None);
    let operator = can_control();
    let load = move || {
        leptos::task::spawn_local(async move {
            let d = get::<EventsDiagnosis>("/api/diagnosis").await;
            // The page may be gone by the time an answer arrives.
            if diagnosis.try_with_untracked(|x| *x != d) == Some(true) {
                let _ = diagnosis.try_set(d);
            }
            let s = get::<StuckTasks>("/api/tasks/stuck").await;
            if stuck.try_with_untracked(|x| *x != s) == Some(true) {
                let _ = stuck.try_set(s);
            }
        })
    };
    load();
    let handle = set_interval_with_handle(load, POLL).ok();
    on_cleanup(move || {
        if let Some(h) = handle {
            h.clear();
        }
    });
    let enable = move |workers: Vec<String>| {
        leptos::task::spawn_local(async move {
            let n = workers.len();
            let _ = note.try_set(Some(
                enable_events(workers)
                    .await
                    .map(|()| format!("enable_events sent to {n} worker(s); the warning clears at their next task event.")),
            ));
        })
    };
    let silent = move || {
        diagnosis.with(|d| {
            d.as_ref()
                .map(|d| d.workers_without_task_events.clone())
                .unwrap_or_default()
        })
    };
    let unsent = move || {
        diagnosis.with(|d| {
            d.as_ref()
                .map(|d| d.queues_without_sent_events.clone())
                .unwrap_or_default()
        })
    };
    let stuck_tasks =
        move || stuck.with(|s| s.as_ref().map(|s| s.tasks.clone()).unwrap_or_default());
    view! {
        <Show when=move || !silent().is_empty()>
            <div class="empty" role="alert" data-testid="events-off">
                <p><b>"Workers run tasks without sending task events: "</b>
                    {move || silent().iter().map(|w| format!("{} ({} tasks unseen)", w.hostname, w.tasks_unseen)).collect::<Vec<_>>().join(", ")}
                </p>
                <p>"Their heartbeats count tasks, but no task event came from them: they were started without "<code>"-E"</code>
                    " (or sent "<code>"disable_events"</code>"). Their tasks do not show here."</p>
                <Show when=move || operator.get()>
                    <p>
                        <button data-testid="enable-events" on:click=move |_| enable(silent().into_iter().map(|w| w.hostname).collect())>
                            "Enable events on these workers"
                        </button>
                        " "<span class="hint">"Lost when a worker restarts: start workers with "<code>"-E"</code>
                        " or set "<code>"worker_send_task_events = True"</code>" to keep it."</span>
                    </p>
                </Show>
                {move || note.get().map(|n| match n {
                    Ok(t) => view! { <p class="ok">{t}</p> }.into_any(),
                    Err(e) => view! { <p class="bad" role="alert">{e}</p> }.into_any(),
                })}
            </div>
        </Show>
        <Show when=move || !unsent().is_empty()>
            <div class="empty" data-testid="sent-missing">
                <p><b>"Tasks arrive without task-sent on: "</b>
                    {move || unsent().iter().map(|q| format!("{} ({} tasks, workers {})", q.queue, q.tasks_without_sent, q.workers.join(", "))).collect::<Vec<_>>().join("; ")}
                </p>
                <p>"Their producers do not set "<code>"task_send_sent_event = True"</code>
                    ": how long tasks wait in these queues cannot be measured, and tasks show up only once a worker receives them."</p>
            </div>
        </Show>
        <Show when=move || !stuck_tasks().is_empty()>
            <div class="empty" role="alert" data-testid="stuck">
                <p><b>{move || format!("{} task(s) stuck", stuck_tasks().len())}</b>" (STARTED past their time limit): "
                    {move || stuck_tasks().into_iter().take(10).map(|t| {
                        let link = href(&format!("/tasks/{}", t.uuid));
                        let label = format!("{} on {} for {}", t.name.clone().unwrap_or_else(|| t.uuid.clone()), t.worker.clone().unwrap_or_default(), duration(t.running_for));
                        view! { <a class="pill warn" href=link>{label}</a>" " }
                    }).collect_view()}
                </p>
            </div>
        </Show>
    }
}
