//! The failures page: `GET /api/failures` (groups of failures with one
//! fingerprint, newest first), polled every 5 s while the page is open;
//! operators resolve and reopen groups from here.

use std::time::Duration;

use api::insight::{FailureGroup, FailuresResponse, GroupState};
use leptos::prelude::*;

use super::control::{can_control, Acted};
use super::util::{absolute, enc, get_json, href, send_ok, Ago};

const POLL: Duration = Duration::from_secs(5);

async fn fetch_failures(state: &str) -> Result<FailuresResponse, String> {
    let url = if state.is_empty() {
        href("/api/failures?limit=200")
    } else {
        href(&format!("/api/failures?limit=200&state={}", enc(state)))
    };
    get_json(&url, "/api/failures").await
}

async fn mark(fingerprint: &str, resolve: bool) -> Result<(), String> {
    let verb = if resolve { "resolve" } else { "unresolve" };
    let url = href(&format!("/api/failures/{}/{verb}", enc(fingerprint)));
    let request = super::util::post(&url).build().map_err(|e| e.to_string())?;
    send_ok(request, verb).await
}

#[component]
pub fn Failures() -> impl IntoView {
    let data: RwSignal<Option<Result<FailuresResponse, String>>> = RwSignal::new(None);
    let state = RwSignal::new(String::from("open"));
    let error: RwSignal<Option<String>> = RwSignal::new(None);
    let acted = expect_context::<Acted>().0;
    let operator = can_control();
    let load = move || {
        let s = state.get_untracked();
        leptos::task::spawn_local(async move {
            let next = Some(fetch_failures(&s).await);
            if data.with_untracked(|d| *d != next) {
                data.set(next);
            }
        })
    };
    Effect::new(move |_| {
        state.track();
        acted.track();
        load();
    });
    let poll = set_interval_with_handle(load, POLL).ok();
    on_cleanup(move || {
        if let Some(h) = poll {
            h.clear();
        }
    });
    let act = move |fingerprint: String, resolve: bool| {
        leptos::task::spawn_local(async move {
            match mark(&fingerprint, resolve).await {
                Ok(()) => {
                    error.set(None);
                    acted.update(|n| *n += 1);
                }
                Err(e) => error.set(Some(e)),
            }
        })
    };
    view! {
        <h1>"Failures"</h1>
        <p class="hint">"Failures grouped by the bug behind them: the exception type and the frames that locate it (where it was raised, and the application line that called into a library). Call sites, line numbers, messages and arguments do not split a group. A resolved group reopens when it fails again."</p>
        <p>
            <label>"show "
                <select data-testid="failures-state" on:change=move |ev| state.set(event_target_value(&ev))>
                    <option value="open" selected=true>"open"</option>
                    <option value="resolved">"resolved"</option>
                    <option value="">"all"</option>
                </select>
            </label>
        </p>
        {move || error.get().map(|e| view! { <p class="bad" role="alert">{e}</p> })}
        {move || match data.get() {
            None => view! { <p class="dim">"loading…"</p> }.into_any(),
            Some(Err(e)) => view! { <div class="empty"><p>{e}</p></div> }.into_any(),
            Some(Ok(r)) if r.groups.is_empty() => view! {
                <div class="empty" data-testid="failures-empty"><p>"No failure groups here."</p></div>
            }.into_any(),
            Some(Ok(r)) => view! {
                <table data-testid="failures">
                    <thead><tr><th>"state"</th><th>"exception and where"</th><th class="num">"count"</th><th>"trend (5 min)"</th><th>"tasks"</th><th>"workers"</th><th>"first seen"</th><th>"last seen"</th><th></th></tr></thead>
                    <tbody>
                        {r.groups.into_iter().map(|g| row(g, operator, act)).collect::<Vec<_>>()}
                    </tbody>
                </table>
            }.into_any(),
        }}
    }
}

fn row(
    g: FailureGroup,
    operator: Signal<bool>,
    act: impl Fn(String, bool) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let resolved = g.state == GroupState::Resolved;
    let pill = if resolved { "pill ok" } else { "pill bad" };
    let fp = g.fingerprint.clone();
    let trend = g
        .trend
        .iter()
        .rev()
        .take(12)
        .map(|p| p.count.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let marked = g
        .resolved
        .as_ref()
        .filter(|_| resolved)
        .map(|m| format!("resolved by {} at {}", m.by, absolute(m.at)));
    let reopened = g.reopened_at.filter(|_| !resolved).map(absolute);
    let mut tasks = g.tasks.join(", ");
    if g.tasks_truncated {
        tasks.push_str(", …");
    }
    let mut workers = g.workers.join(", ");
    if g.workers_truncated {
        workers.push_str(", …");
    }
    let sample = g.sample.traceback.clone().unwrap_or_default();
    view! {
        <tr data-fingerprint=g.fingerprint.clone() data-state=g.state.as_str() data-count=g.count.to_string()>
            <td><span class=pill title=marked.clone().unwrap_or_default()>{g.state.as_str()}</span>
                {reopened.map(|t| view! { <div class="dim" title=t.clone()>"reopened"</div> })}</td>
            <td>
                <b>{g.exception.clone()}</b>
                <div class="mono wrap">{g.frames.join(" → ")}</div>
                <details><summary class="dim">{format!("sample: {}", g.sample.exception.clone().unwrap_or_default())}</summary><pre class="mono wrap">{sample}</pre></details>
            </td>
            <td class="num">{g.count}</td>
            <td class="mono dim" title="failures per 5 minutes, newest first">{trend}</td>
            <td>{tasks}</td>
            <td>{workers}</td>
            <td><Ago t=Some(g.first_seen)/></td>
            <td><Ago t=Some(g.last_seen)/></td>
            <td>{move || operator.get().then(|| {
                let fp = fp.clone();
                view! {
                    <button type="button" class="small" data-testid="failure-mark"
                        on:click=move |_| act(fp.clone(), !resolved)>
                        {if resolved { "reopen" } else { "resolve" }}
                    </button>
                }
            })}</td>
        </tr>
    }
}
