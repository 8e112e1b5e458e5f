//! Overview, workers, worker detail and task types.

use api::Worker;
use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use super::util::{enc, href, sort_mark, Ago};
use crate::model::{duration, Model};

fn model() -> RwSignal<Model> {
    expect_context::<RwSignal<Model>>()
}

/// What to say before anything arrived.
#[component]
pub fn NoEvents() -> impl IntoView {
    view! {
        <div class="empty">
            <p><b>"No events yet."</b>" Are the workers started with "<code>"-E"</code>
            " (or "<code>"worker_send_task_events = True"</code>")? celeriac also asks them to send events every few seconds."</p>
            <p>"Producers need "<code>"task_send_sent_event = True"</code>" for tasks to show up as soon as they are sent."</p>
        </div>
    }
}

#[component]
pub fn Overview() -> impl IntoView {
    let m = model();
    let slowest = super::task_stats::poll(RwSignal::new(String::from("1h")));
    let stats = move || {
        m.with(|m| {
            let online = m.workers_online();
            let offline = m.workers.len() - online;
            let (s, f) = m.totals();
            let rate = if s + f > 0 {
                format!("{:.1} %", 100.0 * f as f64 / (s + f) as f64)
            } else {
                "–".into()
            };
            let last: Vec<_> = m.rates.iter().rev().take(10).collect();
            let per_s = |pick: fn(&api::ws::RatePoint) -> u64| {
                if last.is_empty() {
                    0.0
                } else {
                    last.iter().map(|r| pick(r)).sum::<u64>() as f64 / last.len() as f64
                }
            };
            (
                online,
                offline,
                rate,
                per_s(|r| r.succeeded),
                per_s(|r| r.failed),
            )
        })
    };
    view! {
        <h1>"Overview " <super::alerts::AlertsBadge/></h1>
        <super::diagnosis::Diagnosis/>
        <Show when=move || m.with(|m| m.synced && !m.workers.is_empty() || m.task_count() > 0) fallback=|| view! { <NoEvents/> }>
            <section class="cards">
                <div class="card"><div class="big" data-testid="online">{move || stats().0}</div>"workers online"</div>
                <div class="card"><div class="big dim">{move || stats().1}</div>"offline"</div>
                <div class="card"><div class="big ok">{move || format!("{:.1}", stats().3)}</div>"succeeded / s"</div>
                <div class="card"><div class="big bad">{move || format!("{:.1}", stats().4)}</div>"failed / s"</div>
                <div class="card"><div class="big">{move || stats().2}</div>"failure rate (15 min)"</div>
                <div class="card"><div class="big">{move || m.with(|m| m.ingest.tasks_retained)}</div>"tasks retained"</div>
            </section>
            <h2>"Tasks finished per second, last 15 minutes"</h2>
            <Chart/>
            <div class="two">
                <section>
                    <h2>"Busiest queues"</h2>
                    <p class="hint">"Unfinished tasks seen per queue (broker depth appears with broker stats)."</p>
                    <table>
                        <thead><tr><th>"queue"</th><th class="num">"unfinished"</th></tr></thead>
                        <tbody>
                            {move || m.with(|m| m.queue_backlog()).into_iter().take(8).map(|(q, n)| view! {
                                <tr><td>{q}</td><td class="num">{n}</td></tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </section>
                <section>
                    <h2>"Slowest task types (p95, last hour)"</h2>
                    <table data-testid="slowest">
                        <thead><tr><th>"task"</th><th class="num">"p95"</th><th class="num">"p99"</th></tr></thead>
                        <tbody>
                            {move || {
                                // The server's sketches (1 % relative error), not the
                                // histogram's bucket bounds.
                                let mut t = slowest.with(|s| match s {
                                    Some(Ok(r)) => r.tasks.clone(),
                                    _ => Vec::new(),
                                });
                                t.retain(|t| t.runtime.p95.is_some());
                                t.sort_by(|a, b| b.runtime.p95.partial_cmp(&a.runtime.p95).unwrap_or(std::cmp::Ordering::Equal));
                                t.into_iter().take(8).map(|t| {
                                    let link = href(&format!("/tasks?name={}", enc(&t.name)));
                                    view! {
                                        <tr>
                                            <td><a href=link>{t.name.clone()}</a></td>
                                            <td class="num">{t.runtime.p95.map(duration)}</td>
                                            <td class="num">{t.runtime.p99.map(duration)}</td>
                                        </tr>
                                    }
                                }).collect_view()
                            }}
                        </tbody>
                    </table>
                </section>
            </div>
            <super::advice::Advice/>
        </Show>
    }
}

/// Succeeded (green) and failed (red) per second, hand-drawn SVG.
#[component]
fn Chart() -> impl IntoView {
    let m = model();
    let (w, h) = (900.0, 160.0);
    let paths = move || {
        m.with(|m| {
            let now = m.now.floor();
            let start = now - 900.0;
            let max = m
                .rates
                .iter()
                .map(|r| r.succeeded.max(r.failed))
                .max()
                .unwrap_or(0)
                .max(1) as f64;
            let line = |pick: fn(&api::ws::RatePoint) -> u64| {
                let mut d = String::new();
                for r in m.rates.iter().filter(|r| r.t >= start) {
                    let x = (r.t - start) / 900.0 * w;
                    let y = h - pick(r) as f64 / max * (h - 10.0);
                    d.push_str(&format!(
                        "{}{x:.1},{y:.1} ",
                        if d.is_empty() { "M" } else { "L" }
                    ));
                }
                d
            };
            (line(|r| r.succeeded), line(|r| r.failed), max)
        })
    };
    view! {
        <figure class="chart">
            <svg viewBox=format!("0 0 {w} {h}") preserveAspectRatio="none" role="img" aria-label="tasks per second">
                <line x1="0" y1=h x2=w y2=h class="axis"/>
                <path d=move || paths().0 class="ok-line"/>
                <path d=move || paths().1 class="bad-line"/>
            </svg>
            <figcaption>
                <span class="ok">"■ succeeded"</span>" "<span class="bad">"■ failed"</span>
                {move || format!("  · peak {} / s · 15 min ago → now", paths().2)}
            </figcaption>
        </figure>
    }
}

fn heartbeat_age(m: &Model, w: &Worker) -> Option<f64> {
    w.last_heartbeat.map(|t| m.now - t)
}

#[component]
pub fn Workers() -> impl IntoView {
    let m = model();
    let query = use_query_map();
    let sort = move || {
        query
            .with(|q| q.get("sort"))
            .unwrap_or_else(|| "hostname".into())
    };
    let rows = move || {
        let key = sort();
        let (desc, k) = match key.strip_prefix('-') {
            Some(k) => (true, k.to_owned()),
            None => (false, key.clone()),
        };
        m.with(|m| {
            let mut v: Vec<(Worker, Option<f64>)> = m
                .workers
                .iter()
                .map(|w| (w.clone(), heartbeat_age(m, w)))
                .collect();
            let f = |x: Option<f64>| x.unwrap_or(f64::NEG_INFINITY);
            v.sort_by(|(a, aa), (b, ba)| {
                let o = match k.as_str() {
                    "status" => b.status.cmp(&a.status),
                    "active" => a.active.cmp(&b.active),
                    "processed" => a.processed.cmp(&b.processed),
                    "load" => f(a.loadavg.map(|l| l[0])).total_cmp(&f(b.loadavg.map(|l| l[0]))),
                    "heartbeat" => f(*aa).total_cmp(&f(*ba)),
                    "version" => a.sw_ver.cmp(&b.sw_ver),
                    _ => a.hostname.cmp(&b.hostname),
                };
                if desc {
                    o.reverse()
                } else {
                    o
                }
            });
            v
        })
    };
    let th = move |key: &'static str, label: &'static str| {
        let link = move || {
            let cur = sort();
            let next = if cur == key {
                format!("-{key}")
            } else {
                key.to_owned()
            };
            href(&format!("/workers?sort={next}"))
        };
        let mark = move || sort_mark(&sort(), key);
        view! { <th><a href=link>{label}{mark}</a></th> }
    };
    view! {
        <h1>"Workers"</h1>
        <super::diagnosis::Diagnosis/>
        <Show when=move || m.with(|m| !m.workers.is_empty()) fallback=|| view! {
            <div class="empty"><p><b>"No workers seen yet."</b>" Start one, e.g. "<code>"celery -A proj worker -E"</code>
            ", on the broker celeriac watches. Workers appear with their first heartbeat."</p></div>
        }>
            <table class="workers">
                <thead><tr>
                    {th("hostname", "worker")}{th("status", "status")}{th("active", "active")}
                    {th("processed", "processed")}{th("load", "load")}{th("heartbeat", "heartbeat")}{th("version", "version")}
                </tr></thead>
                <tbody>
                    {move || rows().into_iter().map(|(w, age)| {
                        let link = href(&format!("/workers/{}", enc(&w.hostname)));
                        view! {
                            <tr class:offline=!w.status data-worker=w.hostname.clone()>
                                <td><a href=link>{w.hostname.clone()}</a></td>
                                <td>{if w.status { view! { <span class="pill ok">"online"</span> } } else { view! { <span class="pill dim">"offline"</span> } }}</td>
                                <td class="num">{w.active}</td>
                                <td class="num">{w.processed}</td>
                                <td class="num">{w.loadavg.map(|l| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2]))}</td>
                                <td title=w.last_heartbeat.map(super::util::absolute)>{age.map(|a| format!("{:.0} s ago", a.max(0.0)))}</td>
                                <td>{w.sw_ver.clone()}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </Show>
    }
}

#[component]
pub fn WorkerDetail() -> impl IntoView {
    let m = model();
    let params = use_params_map();
    let name = move || params.with(|p| p.get("name")).unwrap_or_default();
    // The inspect tabs and controls keep their state (tab, inputs) across
    // the live updates that re-render the fields above them: they are
    // mounted again only when the worker changes or first becomes known.
    let known = Memo::new(move |_| {
        let n = name();
        m.with(|m| m.worker(&n).is_some())
    });
    let fields = move || {
        let name = name();
        let Some(w) = m.with(|m| m.worker(&name).cloned()) else {
            return view! {
                <h1>{name.clone()}</h1>
                <div class="empty"><p>"celeriac has not heard from this worker (yet). "
                <a href=href("/workers")>"All workers"</a></p></div>
            }
            .into_any();
        };
        let field = |k: &'static str, v: Option<String>| view! { <tr><th>{k}</th><td>{v.unwrap_or_else(|| "–".into())}</td></tr> };
        let tasks_link = href(&format!("/tasks?worker={}", enc(&w.hostname)));
        view! {
            <h1>{w.hostname.clone()}" "
                {if w.status { view! { <span class="pill ok">"online"</span> } } else { view! { <span class="pill dim">"offline"</span> } }}
            </h1>
            <p><a href=tasks_link>"Tasks of this worker →"</a></p>
            <table class="fields">
                {field("active", w.active.map(|v| v.to_string()))}
                {field("processed", w.processed.map(|v| v.to_string()))}
                {field("load average", w.loadavg.map(|l| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2])))}
                {field("heartbeat every", w.freq.map(|f| format!("{f} s")))}
                <tr><th>"last heartbeat"</th><td><Ago t=w.last_heartbeat/></td></tr>
                <tr><th>"expires"</th><td><Ago t=w.heartbeat_expires/></td></tr>
                {field("software", w.sw_ident.clone().map(|i| format!("{i} {}", w.sw_ver.clone().unwrap_or_default())))}
                {field("system", w.sw_sys.clone())}
                {field("pid", w.pid.map(|v| v.to_string()))}
                {field("clock", w.clock.map(|v| v.to_string()))}
                {field("utc offset", w.utcoffset.map(|v| format!("{v} h")))}
            </table>
        }
        .into_any()
    };
    view! {
        {fields}
        <Show when=move || known.get()>
            {move || view! { <super::worker::WorkerOps name=name()/> }}
        </Show>
    }
}

#[component]
pub fn TaskTypes() -> impl IntoView {
    let m = model();
    let window = RwSignal::new(String::from("all"));
    let stats = super::task_stats::poll(window);
    let ok_series = super::charts::poll("task_succeeded_per_second");
    let failed_series = super::charts::poll("task_failed_per_second");
    view! {
        <h1>"Task types"</h1>
        <Show when=move || m.with(|m| !m.types.is_empty()) fallback=|| view! { <NoEvents/> }>
            <p>
                <label>"quantiles over "
                    <select data-testid="stats-window" on:change=move |ev| window.set(event_target_value(&ev))>
                        <option value="all" selected=true>"since start"</option>
                        <option value="1h">"the last hour"</option>
                        <option value="5m">"the last 5 minutes"</option>
                    </select>
                </label>
            </p>
            <table data-testid="task-types">
                <thead><tr>
                    <th>"task"</th><th class="num">"sent"</th><th class="num">"received"</th><th class="num">"started"</th>
                    <th class="num">"succeeded"</th><th class="num">"failed"</th><th class="num">"retried"</th><th class="num">"revoked"</th>
                    <th class="num">"failure rate"</th><th class="num">"p50"</th><th class="num">"p95"</th><th class="num">"p99"</th>
                    <th class="num">"wait p95"</th><th class="num">"per s (1 min)"</th><th>"last hour"</th>
                </tr></thead>
                <tbody>
                    {move || m.with(|m| m.types.clone()).into_iter().map(|t| {
                        let done = t.succeeded + t.failed;
                        let fr = if done > 0 { format!("{:.1} %", 100.0 * t.failed as f64 / done as f64) } else { "–".into() };
                        let link = href(&format!("/tasks?name={}", enc(&t.name)));
                        let name = t.name.clone();
                        let q = move |f: fn(&api::insight::TaskTypeStats) -> Option<f64>| {
                            stats.with(|s| super::task_stats::of(s, &name).and_then(f).map(duration))
                        };
                        let (p50, p95, p99, wait) = (q(|s| s.runtime.p50), q(|s| s.runtime.p95), q(|s| s.runtime.p99), q(|s| s.wait.p95));
                        view! {
                            <tr>
                                <td><a href=link>{t.name.clone()}</a></td>
                                <td class="num">{t.sent}</td><td class="num">{t.received}</td><td class="num">{t.started}</td>
                                <td class="num">{t.succeeded}</td><td class="num">{t.failed}</td><td class="num">{t.retried}</td><td class="num">{t.revoked}</td>
                                <td class="num">{fr}</td>
                                <td class="num" data-testid="p50">{p50}</td><td class="num" data-testid="p95">{p95}</td><td class="num" data-testid="p99">{p99}</td>
                                <td class="num">{wait}</td>
                                <td class="num">{format!("{:.2}", t.throughput)}</td>
                                <td>{
                                    let name = t.name.clone();
                                    move || {
                                        let ok = ok_series.with(|a| super::charts::of(a, &name));
                                        let failed = failed_series.with(|a| super::charts::of(a, &name));
                                        view! { <super::charts::RateSpark label=name.clone() ok=ok failed=failed/> }
                                    }
                                }</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
            <p class="hint" data-testid="counting-since">{move || {
                let since = m.with(|m| m.ingest.counting_since)
                    .map(|t| format!(" ({})", super::util::absolute(t)))
                    .unwrap_or_default();
                format!("Counts cover every task seen since celeriac started{since}; tasks loaded back from history are not counted again. \
                    p50, p95 and p99 are the runtimes of the tasks that succeeded or failed in the window chosen, each within 1 % of the true value (a DDSketch); \
                    wait is from the producer's task-sent (else the worker's task-received) to task-started. Task names beyond --max-stats-task-names are counted as \"other\".")
            }}</p>
            <super::control::TypeLimits/>
        </Show>
    }
}
