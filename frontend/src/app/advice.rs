//! The Advice panel of the overview and queues pages, from
//! `GET /api/advice` (polled every 10 s): each finding with the numbers
//! behind it and the setting or command that acts on it; on the queues
//! page also each queue's load against its processes (M/M/c).

use std::time::Duration;

use api::insight::{AdviceResponse, Finding, QueueCapacity, Severity};
use leptos::prelude::*;

use super::util::{enc, href, poll_json};
use crate::model::duration;

const POLL: Duration = Duration::from_secs(10);

fn severity_class(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "pill bad",
        Severity::Warning => "pill warn",
        Severity::Info => "pill",
    }
}

/// The kind as a heading.
fn title(f: &Finding) -> &'static str {
    use api::insight::FindingKind::*;
    match f.kind {
        NoWorkers => "No worker consumes this queue",
        UnderCapacity => "Too few processes",
        NearTimeLimit => "Runtime near its time limit",
        RouteSlowTasks => "Slow tasks delay fast ones",
        RouteFastTasks => "Fast tasks wait behind slow ones",
    }
}

/// The findings (and, with `capacity`, the per-queue table) over the
/// window the panel's own selector picks.
#[component]
pub fn Advice(#[prop(optional)] capacity: bool) -> impl IntoView {
    let window = RwSignal::new(String::from("5m"));
    let data: RwSignal<Option<Result<AdviceResponse, String>>> = poll_json(
        move || href(&format!("/api/advice?window={}", enc(&window.get()))),
        POLL,
        "/api/advice",
    );
    view! {
        <section data-testid="advice">
            <h2>"Advice "
                <select aria-label="advice window" on:change=move |ev| window.set(event_target_value(&ev))>
                    <option value="5m" selected=true>"last 5 min"</option>
                    <option value="1h">"last hour"</option>
                </select>
            </h2>
            {move || match data.get() {
                None => view! { <p class="dim">"loading…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="bad">{e}</p> }.into_any(),
                Some(Ok(a)) => {
                    let target = duration(a.wait_target);
                    let min = a.min_completed;
                    let empty = a.findings.is_empty();
                    view! {
                        {empty.then(|| view! {
                            <p class="hint" data-testid="advice-none">{format!(
                                "Nothing to advise: no queue misses a p95 wait of {target} (judged once it has {MIN} completed tasks in the window), \
                                 no runtime is near its time limit, no queue mixes slow and fast task types.", MIN = min)}</p>
                        })}
                        {a.findings.into_iter().map(finding).collect_view()}
                        {capacity.then(|| table(a.queues, &target))}
                    }.into_any()
                }
            }}
        </section>
    }
}

fn finding(f: Finding) -> impl IntoView {
    let code = f.snippets.join("\n");
    let tasks = f.tasks.join(", ");
    let named = (!tasks.is_empty()).then(|| tasks.clone());
    view! {
        <div class="empty" data-testid="advice-finding" data-kind=f.kind.as_str() data-queue=f.queue.clone() data-tasks=tasks.clone()>
            <p>
                <span class=severity_class(f.severity)>{f.severity.as_str()}</span>" "
                <b>{title(&f)}</b>" · queue "<code>{f.queue.clone()}</code>
                {named.map(|t| view! { " · "<code>{t}</code> })}
            </p>
            <p>{spans(&f.summary)}</p>
            <p><b>"What to do: "</b>{spans(&f.action)}</p>
            {(!f.snippets.is_empty()).then(|| view! {
                <pre class="traceback" style="border-left-color:var(--accent)">{code}</pre>
            })}
        </div>
    }
}

/// Text with `backquoted` names set as code, as the server writes them.
fn spans(text: &str) -> Vec<AnyView> {
    text.split('`')
        .enumerate()
        .map(|(i, part)| {
            let part = part.to_owned();
            if i % 2 == 1 {
                view! { <code>{part}</code> }.into_any()
            } else {
                part.into_any()
            }
        })
        .collect()
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "–".into(), f)
}

fn table(queues: Vec<QueueCapacity>, target: &str) -> impl IntoView {
    let hint = format!(
        "Per queue over the window: arrivals λ, mean and p95 runtime, the live workers' processes (busy at their last heartbeat), \
         utilisation λ·mean / processes, and the processes M/M/c needs so that at most 5 % of tasks wait longer than {target}."
    );
    view! {
        <table data-testid="capacity">
            <thead><tr>
                <th>"queue"</th><th class="num">"arrivals / s"</th><th class="num">"done / s"</th>
                <th class="num">"mean"</th><th class="num">"p95"</th><th class="num">"busy / processes"</th>
                <th class="num">"utilisation"</th><th class="num">"needed"</th><th class="num">"observed wait p95"</th>
            </tr></thead>
            <tbody>
                {queues.into_iter().map(|q| {
                    let procs = format!("{} / {}", opt(q.busy, |b| b.to_string()), opt(q.processes, |p| p.to_string()));
                    view! {
                        <tr data-queue=q.name.clone()>
                            <td title=q.workers.join(", ")>{q.name.clone()}</td>
                            <td class="num">{format!("{:.2}", q.arrival_rate)}</td>
                            <td class="num">{format!("{:.2}", q.completion_rate)}</td>
                            <td class="num">{opt(q.runtime_mean, duration)}</td>
                            <td class="num">{opt(q.runtime_p95, duration)}</td>
                            <td class="num">{procs}</td>
                            <td class="num">{opt(q.utilisation, |u| format!("{:.0} %", u * 100.0))}</td>
                            <td class="num" data-testid="needed">{opt(q.processes_needed, |n| n.to_string())}</td>
                            <td class="num">{opt(q.observed_wait_p95, duration)}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
        <p class="hint">{hint}</p>
    }
}
