//! The queues page: broker depth, ready/unacked, consumers, publish and
//! deliver rates, a depth sparkline per queue, and a `paused` pill (who,
//! since when) on the queues celeriac holds paused.
//!
//! The websocket snapshot carries no broker statistics, so the page polls
//! `GET /api/queues/length` (the server's latest broker poll; no broker
//! request per call) every [`POLL_MS`]. Depth samples are kept in the
//! browser for [`HISTORY_SECS`], in a module-level store rather than the
//! component, so that leaving the page and coming back keeps the sparklines;
//! on opening, the store is filled from what the server sampled before
//! (`/api/series`), so the sparklines are full at once.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};
use serde::Deserialize;

use super::control::{ask, can_control};
use super::util::{absolute, enc, get_json, href, in_place, input_value, sort_mark, with_query};
use crate::model::control::Action;

/// How often the page asks the server; its own broker poll defaults to 5 s,
/// so polling faster would only repeat samples.
const POLL_MS: u64 = 5_000;
/// Sparkline span: the last 15 minutes.
const HISTORY_SECS: f64 = 900.0;
const SPARK_W: f64 = 120.0;
const SPARK_H: f64 = 24.0;

/// One queue as `/api/queues/length` reports it (server/src/broker/mod.rs
/// `QueueStat`); optional fields are absent with the AMQP fallback.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Queue {
    name: String,
    #[serde(default)]
    messages: Option<u64>,
    messages_ready: u64,
    #[serde(default)]
    messages_unacknowledged: Option<u64>,
    #[serde(default)]
    consumers: Option<u64>,
    #[serde(default)]
    publish_rate: Option<f64>,
    #[serde(default)]
    deliver_rate: Option<f64>,
    /// `classic`, `quorum` or `stream`, from the management API.
    #[serde(default, rename = "type")]
    queue_type: Option<String>,
}

impl Queue {
    /// Ready + unacked where known, else ready alone.
    fn depth(&self) -> u64 {
        self.messages.unwrap_or(self.messages_ready)
    }
}

#[derive(Debug, Clone, Deserialize)]
struct Length {
    active_queues: Vec<Queue>,
    /// `management`, `amqp`, `redis`, or `null` before the server's first poll.
    source: Option<String>,
    /// Tasks waiting in RabbitMQ's delayed delivery cascade (quorum queues).
    #[serde(default)]
    scheduled_broker_side: Option<u64>,
}

/// A queue celeriac holds paused (`GET /api/queues/paused`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Paused {
    queue: String,
    by: String,
    since: f64,
}

#[derive(Debug, Clone, Deserialize)]
struct PausedList {
    queues: Vec<Paused>,
}

/// The paused queues by name; none when the server cannot say.
async fn fetch_paused() -> BTreeMap<String, Paused> {
    let url = href("/api/queues/paused");
    let Ok(resp) = gloo_net::http::Request::get(&url).send().await else {
        return BTreeMap::new();
    };
    match resp.json::<PausedList>().await {
        Ok(l) if resp.ok() => l.queues.into_iter().map(|p| (p.queue.clone(), p)).collect(),
        _ => BTreeMap::new(),
    }
}

/// Depth samples per queue: (epoch seconds, depth), oldest first.
type History = BTreeMap<String, VecDeque<(f64, u64)>>;

thread_local! {
    // wasm32 is single-threaded: one store for the page's lifetime.
    static HISTORY: RefCell<History> = RefCell::new(BTreeMap::new());
}

fn record(now: f64, queues: &[Queue]) {
    HISTORY.with(|h| {
        let mut h = h.borrow_mut();
        for q in queues {
            h.entry(q.name.clone())
                .or_default()
                .push_back((now, q.depth()));
        }
        for samples in h.values_mut() {
            while samples.front().is_some_and(|(t, _)| now - t > HISTORY_SECS) {
                samples.pop_front();
            }
        }
        h.retain(|_, s| !s.is_empty());
    });
}

/// Fills the sparklines with what the server kept (`/api/series`) from
/// before the page's own first sample, so they are full at once.
fn seed(now: f64, kept: BTreeMap<String, Vec<(f64, f64)>>) {
    HISTORY.with(|h| {
        let mut h = h.borrow_mut();
        for (name, points) in kept {
            let samples = h.entry(name).or_default();
            let first = samples.front().map_or(f64::INFINITY, |s| s.0);
            let older = points
                .into_iter()
                .filter(|(t, _)| now - t <= HISTORY_SECS && *t < first)
                .map(|(t, v)| (t, v.max(0.0) as u64));
            for (i, p) in older.enumerate() {
                samples.insert(i, p);
            }
        }
    });
}

async fn fetch_series() -> Option<BTreeMap<String, Vec<(f64, f64)>>> {
    let url = href("/api/series?metric=queue_depth&range=1h");
    get_json::<api::series::SeriesAnswer>(&url, "/api/series")
        .await
        .ok()
        .map(|a| a.series)
}

fn samples(name: &str) -> Vec<(f64, u64)> {
    HISTORY.with(|h| {
        h.borrow()
            .get(name)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    })
}

async fn fetch() -> Result<Length, String> {
    let url = href("/api/queues/length");
    let resp = gloo_net::http::Request::get(&url)
        .send()
        .await
        .map_err(|e| format!("could not reach celeriac: {e}"))?;
    if !resp.ok() {
        return Err(format!("{url} answered {}", resp.status()));
    }
    resp.json::<Length>()
        .await
        .map_err(|e| format!("{url} sent an unexpected answer: {e}"))
}

/// The column keys of `?sort=` (a leading `-` is descending).
fn sort_key(key: &str, a: &Queue, b: &Queue) -> std::cmp::Ordering {
    let f = |x: Option<f64>| x.unwrap_or(f64::NEG_INFINITY);
    match key {
        "depth" => a.depth().cmp(&b.depth()),
        "ready" => a.messages_ready.cmp(&b.messages_ready),
        "unacked" => a.messages_unacknowledged.cmp(&b.messages_unacknowledged),
        "consumers" => a.consumers.cmp(&b.consumers),
        "publish" => f(a.publish_rate).total_cmp(&f(b.publish_rate)),
        "deliver" => f(a.deliver_rate).total_cmp(&f(b.deliver_rate)),
        _ => a.name.cmp(&b.name),
    }
}

/// The sparkline path, scaled to its own maximum (a flat zero line when the
/// queue stayed empty).
fn spark_path(points: &[(f64, u64)], now: f64) -> String {
    let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1) as f64;
    let start = now - HISTORY_SECS;
    let mut d = String::new();
    for (t, v) in points {
        let x = ((t - start) / HISTORY_SECS * SPARK_W).clamp(0.0, SPARK_W);
        let y = SPARK_H - 1.0 - *v as f64 / max * (SPARK_H - 2.0);
        d.push_str(&format!(
            "{}{x:.1},{y:.1} ",
            if d.is_empty() { "M" } else { "L" }
        ));
    }
    d
}

fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "–".to_owned(), |r| format!("{r:.1}"))
}

fn count(c: Option<u64>) -> String {
    c.map_or_else(|| "–".to_owned(), |c| c.to_string())
}

#[component]
pub fn Queues() -> impl IntoView {
    let data = RwSignal::new(None::<Result<Length, String>>);
    // Bumped on every answer so sparklines re-read the store.
    let tick = RwSignal::new(0u64);
    let paused = RwSignal::new(BTreeMap::<String, Paused>::new());
    let operator = can_control();
    let poll = move || {
        leptos::task::spawn_local(async move {
            let p = fetch_paused().await;
            let _ = paused.try_set(p);
            let r = fetch().await;
            if let Ok(l) = &r {
                record(js_sys::Date::now() / 1000.0, &l.active_queues);
            }
            // The page may be gone by the time the answer arrives.
            if data.try_set(Some(r)).is_none() {
                let _ = tick.try_update(|t| *t += 1);
            }
        });
    };
    leptos::task::spawn_local(async move {
        if let Some(kept) = fetch_series().await {
            seed(js_sys::Date::now() / 1000.0, kept);
            let _ = tick.try_update(|t| *t += 1);
        }
    });
    poll();
    if let Ok(handle) = set_interval_with_handle(poll, Duration::from_millis(POLL_MS)) {
        on_cleanup(move || handle.clear());
    }

    let query = use_query_map();
    let navigate = use_navigate();
    let sort = move || {
        query
            .with(|q| q.get("sort"))
            .unwrap_or_else(|| "-depth".into())
    };
    let filter = move || query.with(|q| q.get("q")).unwrap_or_default();
    let go = move |sort: String, q: String| {
        let mut pairs = Vec::new();
        if sort != "-depth" {
            pairs.push(("sort", sort));
        }
        if !q.is_empty() {
            pairs.push(("q", q));
        }
        navigate(&with_query("/queues", &pairs), in_place());
    };

    let rows = move || {
        let key = sort();
        let (desc, k) = match key.strip_prefix('-') {
            Some(k) => (true, k.to_owned()),
            None => (false, key.clone()),
        };
        let needle = filter().to_lowercase();
        data.with(|d| {
            let mut v: Vec<Queue> = match d {
                Some(Ok(l)) => l
                    .active_queues
                    .iter()
                    .filter(|q| needle.is_empty() || q.name.to_lowercase().contains(&needle))
                    .cloned()
                    .collect(),
                _ => Vec::new(),
            };
            v.sort_by(|a, b| {
                let o = sort_key(&k, a, b).then_with(|| a.name.cmp(&b.name));
                if desc {
                    o.reverse()
                } else {
                    o
                }
            });
            v
        })
    };

    // Sort links, as on the workers page: numbers sort largest first on
    // the first click, names A to Z; the filter is kept.
    let th = move |key: &'static str, label: &'static str, num: bool| {
        let link = move || {
            let cur = sort();
            let next = if cur == format!("-{key}") {
                key.to_owned()
            } else if cur == key || num {
                format!("-{key}")
            } else {
                key.to_owned()
            };
            let q = filter();
            let q = if q.is_empty() {
                String::new()
            } else {
                format!("&q={}", enc(&q))
            };
            href(&format!("/queues?sort={}{q}", enc(&next)))
        };
        let mark = move || sort_mark(&sort(), key);
        view! { <th class:num=num><a href=link>{label}{mark}</a></th> }
    };
    let search = go;

    view! {
        <h1>"Queues"</h1>
        <form class="filters" on:submit=|e| e.prevent_default()>
            <input type="search" name="q" placeholder="filter by queue name" aria-label="filter queues"
                prop:value=filter
                on:input=move |e| search(sort(), input_value(&e))/>
        </form>
        {move || match data.get() {
            None => view! { <p class="dim">"loading…"</p> }.into_any(),
            Some(Err(e)) => view! {
                <div class="empty" data-testid="queues-error"><p><b>"Queue statistics are unavailable. "</b>{e}
                " The page retries every few seconds."</p></div>
            }.into_any(),
            Some(Ok(l)) if l.source.is_none() => view! {
                <div class="empty"><p><b>"No broker statistics yet."</b>" celeriac polls RabbitMQ's management API "
                "(" <code>"--broker-api"</code> ", default: the broker host on port 15672) every few seconds, "
                "falling back to passive declares over AMQP; the first poll has not succeeded yet."</p></div>
            }.into_any(),
            Some(Ok(l)) if l.active_queues.is_empty() => view! {
                <div class="empty"><p><b>"No queues to show."</b>" The vhost has no application queues yet "
                "(Celery's and celeriac's own are hidden), or " <code>"--queues"</code> " names none that exist."</p></div>
            }.into_any(),
            Some(Ok(l)) => {
                let source = l.source.clone().unwrap_or_default();
                view! {
                    <table class="queues" data-testid="queues">
                        <thead><tr>
                            {th("name", "queue", false)}{th("depth", "depth", true)}{th("ready", "ready", true)}
                            {th("unacked", "unacked", true)}{th("consumers", "consumers", true)}
                            {th("publish", "published / s", true)}{th("deliver", "delivered / s", true)}
                            <th>"depth, last 15 min"</th>
                            {move || operator.get().then(|| view! { <th></th> })}
                        </tr></thead>
                        <tbody>
                            {move || {
                                tick.get();
                                let now = js_sys::Date::now() / 1000.0;
                                rows().into_iter().map(|q| {
                                    let points = samples(&q.name);
                                    let peak = points.iter().map(|p| p.1).max().unwrap_or(0);
                                    view! {
                                        <tr data-queue=q.name.clone() data-depth=q.depth().to_string()>
                                            <td>{q.name.clone()}{paused.with(|p| p.get(&q.name).cloned()).map(|p| view! {
                                                " " <span class="pill warn" data-testid="queue-paused"
                                                    title=format!("paused by {} since {}", p.by, absolute(p.since))>"paused"</span>
                                            })}{q.queue_type.clone().filter(|t| t != "classic").map(|t| view! {
                                                " " <span class="dim" data-testid="queue-type">{t}</span>
                                            })}</td>
                                            <td class="num" data-testid="depth">{q.depth()}</td>
                                            <td class="num">{q.messages_ready}</td>
                                            <td class="num">{count(q.messages_unacknowledged)}</td>
                                            <td class="num">{count(q.consumers)}</td>
                                            <td class="num">{rate(q.publish_rate)}</td>
                                            <td class="num">{rate(q.deliver_rate)}</td>
                                            <td title=format!("peak {peak} over {} samples", points.len())>
                                                <svg width=SPARK_W height=SPARK_H viewBox=format!("0 0 {SPARK_W} {SPARK_H}")
                                                    role="img" aria-label=format!("depth of {} over the last 15 minutes", q.name)>
                                                    <line x1="0" y1=SPARK_H - 1.0 x2=SPARK_W y2=SPARK_H - 1.0
                                                        style="stroke:var(--line)"/>
                                                    <path d=spark_path(&points, now)
                                                        style="fill:none;stroke:var(--accent);stroke-width:1.5"/>
                                                </svg>
                                            </td>
                                            {operator.get().then(|| {
                                                let queue = q.name.clone();
                                                let is_paused = paused.with(|p| p.contains_key(&queue));
                                                let (label, action) = if is_paused {
                                                    ("resume", Action::ResumeQueue { queue })
                                                } else {
                                                    ("pause", Action::PauseQueue { queue })
                                                };
                                                view! { <td><button type="button" data-testid="queue-pause-toggle"
                                                    on:click=move |_| ask(action.clone())>{label}</button></td> }
                                            })}
                                        </tr>
                                    }
                                }).collect_view()
                            }}
                        </tbody>
                    </table>
                    {l.scheduled_broker_side.map(|n| view! {
                        <p class="hint" data-testid="scheduled-broker-side">{format!(
                            "Scheduled on the broker's side: {n} ETA or countdown tasks wait in RabbitMQ's delayed delivery \
                             (celery_delayed_*), counted in no queue until due.")}</p>
                    })}
                    <p class="hint">{format!(
                        "From the broker via {source}; refreshed every {} s. Depth is ready + unacked where the management API is available. \
                         Sparklines use samples taken while this page was open.",
                        POLL_MS / 1000)}</p>
                }.into_any()
            }
        }}
        <super::advice::Advice capacity=true/>
    }
}
