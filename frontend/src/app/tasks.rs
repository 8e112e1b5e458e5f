//! The live tasks table (filters in the URL, virtualised rows) and the task
//! detail page.

use api::ws::TaskRow;
use api::TaskState;
use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_params_map, use_query_map};

use super::pages::NoEvents;
use super::util::{absolute, copy, enc, href, in_place, input_value, with_query, Ago};
use crate::model::{created, duration, Column, Filter, Model, Sort, STATES};

/// Row height in px: rows are positioned, not laid out, so only the visible
/// ones exist in the DOM.
const ROW_H: f64 = 30.0;
const OVERSCAN: usize = 10;

pub(super) fn state_class(s: &TaskState) -> &'static str {
    match s {
        TaskState::Success => "pill ok",
        TaskState::Failure | TaskState::Rejected => "pill bad",
        TaskState::Revoked | TaskState::Retry => "pill warn",
        TaskState::Started => "pill run",
        // Inferred by the server when the worker's heartbeats expired.
        TaskState::Custom(s) if s == "LOST" => "pill bad lost",
        _ => "pill",
    }
}

#[component]
pub fn Tasks() -> impl IntoView {
    let m = expect_context::<RwSignal<Model>>();
    let query = use_query_map();
    let navigate = use_navigate();
    let filter = Memo::new(move |_| {
        query.with(|q| {
            let keys = ["state", "name", "worker", "q", "from", "to", "root"];
            let owned: Vec<(&str, String)> = keys
                .iter()
                .filter_map(|k| q.get(k).map(|v| (*k, v)))
                .collect();
            Filter::from_pairs(owned.iter().map(|(k, v)| (*k, v.as_str())))
        })
    });
    let sort = Memo::new(move |_| Sort::parse(&query.with(|q| q.get("sort")).unwrap_or_default()));
    let go = move |f: Filter, s: Sort| {
        let mut pairs = f.to_pairs();
        if s != Sort::default() {
            pairs.push(("sort", s.to_param()));
        }
        navigate(&with_query("/tasks", &pairs), in_place());
    };
    let list = Memo::new(move |_| {
        let (f, s) = (filter.get(), sort.get());
        m.with(|m| m.query_indices(&f, &s))
    });
    let allowed = super::control::can_control();
    let menu: super::control::RowMenu = RwSignal::new(None);
    let scroll = RwSignal::new(0.0f64);
    let height = RwSignal::new(600.0f64);
    let visible = move || {
        let idx = list.get();
        let first = ((scroll.get() / ROW_H) as usize).saturating_sub(OVERSCAN);
        let count = (height.get() / ROW_H) as usize + 2 * OVERSCAN;
        let end = (first + count).min(idx.len());
        let first = first.min(end);
        let rows: Vec<(usize, TaskRow)> = m.with(|m| {
            idx[first..end]
                .iter()
                .enumerate()
                .filter_map(|(k, &i)| m.tasks().get(i as usize).map(|t| (first + k, t.clone())))
                .collect()
        });
        rows
    };
    let names = move || {
        let mut v: Vec<String> = m.with(|m| m.types.iter().map(|t| t.name.clone()).collect());
        v.dedup();
        v
    };
    let workers = move || {
        m.with(|m| {
            m.workers
                .iter()
                .map(|w| w.hostname.clone())
                .collect::<Vec<_>>()
        })
    };

    let set = {
        let go = go.clone();
        move |edit: Box<dyn Fn(&mut Filter, String)>, ev: web_sys::Event| {
            let mut f = filter.get_untracked();
            edit(&mut f, input_value(&ev));
            go(f, sort.get_untracked());
        }
    };
    let (s1, s2, s3, s4, s5) = (set.clone(), set.clone(), set.clone(), set.clone(), set);
    let opt = |v: String| (!v.is_empty()).then_some(v);
    let header = {
        let go = go.clone();
        move |c: Column, label: &'static str| {
            let go = go.clone();
            let mark = move || {
                let s = sort.get();
                if s.column != c {
                    ""
                } else if s.desc {
                    " ▼"
                } else {
                    " ▲"
                }
            };
            view! {
                <button class="th" on:click=move |_| go(filter.get_untracked(), sort.get_untracked().toggled(c))>
                    {label}{mark}
                </button>
            }
        }
    };
    let reset = go.clone();
    let unroot = go.clone();
    view! {
        <h1>"Tasks " <span class="dim count" data-testid="count">{move || format!("{} shown", list.with(|l| l.len()))}</span></h1>
        <form class="filters" on:submit=|e| e.prevent_default()>
            <input type="search" placeholder="search uuid, args, kwargs, result, exception" aria-label="search"
                name="q" prop:value=move || filter.with(|f| f.search.clone())
                on:input=move |e| s1(Box::new(|f, v| f.search = v), e)/>
            <select aria-label="state" name="state" prop:value=move || filter.with(|f| f.state.clone().unwrap_or_default())
                on:change=move |e| s2(Box::new(move |f, v| f.state = opt(v)), e)>
                <option value="">"any state"</option>
                {STATES.iter().map(|s| view! { <option value=s.as_str().to_owned()>{s.as_str().to_owned()}</option> }).collect_view()}
            </select>
            <select aria-label="task name" name="name" prop:value=move || filter.with(|f| f.name.clone().unwrap_or_default())
                on:change=move |e| s3(Box::new(move |f, v| f.name = opt(v)), e)>
                <option value="">"any task"</option>
                {move || names().into_iter().map(|n| view! { <option value=n.clone()>{n.clone()}</option> }).collect_view()}
            </select>
            <select aria-label="worker" name="worker" prop:value=move || filter.with(|f| f.worker.clone().unwrap_or_default())
                on:change=move |e| s4(Box::new(move |f, v| f.worker = opt(v)), e)>
                <option value="">"any worker"</option>
                {move || workers().into_iter().map(|n| view! { <option value=n.clone()>{n.clone()}</option> }).collect_view()}
            </select>
            <select aria-label="time range" name="range"
                on:change=move |e| s5(Box::new(move |f, v| {
                    let now = m.with_untracked(|m| m.now);
                    f.to = None;
                    f.from = v.parse::<f64>().ok().map(|secs| (now - secs).floor());
                }), e)>
                <option value="">"any time"</option>
                <option value="300">"last 5 min"</option>
                <option value="900">"last 15 min"</option>
                <option value="3600">"last hour"</option>
                <option value="86400">"last day"</option>
            </select>
            <button type="button" on:click=move |_| reset(Filter::default(), Sort::default())>"clear"</button>
            {move || filter.with(|f| f.root.clone()).map(|root| {
                let unroot = unroot.clone();
                view! {
                    <span class="chip" data-testid="root-filter">"workflow of "
                        <a class="mono" href=href(&format!("/tasks/{root}"))>{root.chars().take(8).collect::<String>()}</a>
                        <button type="button" aria-label="show every workflow" on:click=move |_| {
                            let mut f = filter.get_untracked();
                            f.root = None;
                            unroot(f, sort.get_untracked());
                        }>"×"</button>
                    </span>
                }
            })}
        </form>
        <super::control::RevokeShown ids=Callback::new(move |()| unfinished_shown(m, &list.get_untracked()))/>
        <Show when=move || m.with(|m| m.synced && (m.task_count() > 0 || !m.workers.is_empty())) fallback=|| view! { <NoEvents/> }>
            <div class="grid head">
                {header(Column::Name, "task")}{header(Column::Uuid, "uuid")}{header(Column::State, "state")}
                {header(Column::Worker, "worker")}{header(Column::Created, "created")}{header(Column::Started, "started")}
                {header(Column::Updated, "updated")}{header(Column::Runtime, "runtime")}<span>"args"</span>
            </div>
            <Show when=move || list.with(|l| !l.is_empty()) fallback=|| view! {
                <div class="empty"><p>"No task matches these filters. Loosen them, or "<a href=href("/tasks")>"show all tasks"</a>"."</p></div>
            }>
                <div class="scroller" data-testid="tasks"
                    on:scroll=move |e| {
                        let el = event_target::<web_sys::HtmlElement>(&e);
                        scroll.set(el.scroll_top() as f64);
                        height.set(el.client_height() as f64);
                    }>
                    <div class="spacer-rows" style=move || format!("height:{}px", list.with(|l| l.len()) as f64 * ROW_H)>
                        {move || visible().into_iter().map(|(pos, t)| {
                            let link = href(&format!("/tasks/{}", t.uuid));
                            let top = pos as f64 * ROW_H;
                            // A plain button beside the row link (a button
                            // inside a link is not valid HTML); the menu it
                            // opens is rendered once below.
                            let act = (allowed.get() && !t.state.is_ready()).then(|| {
                                let uuid = t.uuid.clone();
                                let label = format!("actions for task {uuid}");
                                let open = { let u = uuid.clone(); move || menu.with(|o| o.as_ref().is_some_and(|(m, _)| *m == u)) };
                                view! {
                                    <button type="button" class="row-act" data-row-menu=uuid.clone() aria-label=label
                                        aria-haspopup="menu" aria-expanded=move || open().to_string() title="Revoke or terminate"
                                        style=format!("position:absolute;right:.3rem;top:{}px;height:24px;padding:0 .5rem;line-height:1", top + 3.0)
                                        on:click=move |_| menu.update(|o| {
                                            *o = match o.take() {
                                                Some((m, _)) if m == uuid => None,
                                                _ => Some((uuid.clone(), top + ROW_H)),
                                            }
                                        })>"⋯"</button>
                                }
                            });
                            view! {
                                <a class="grid row" href=link data-uuid=t.uuid.clone() data-state=t.state.as_str().to_owned()
                                   style=format!("top:{top}px")>
                                    <span>{t.name.clone().unwrap_or_else(|| "?".into())}</span>
                                    <span class="mono">{t.uuid.chars().take(8).collect::<String>()}</span>
                                    <span><span class=state_class(&t.state)>{t.state.as_str().to_owned()}</span></span>
                                    <span>{t.worker.clone()}</span>
                                    <span><Ago t=created(&t)/></span>
                                    <span><Ago t=t.started/></span>
                                    <span><Ago t=t.timestamp/></span>
                                    <span class="num">{t.runtime.map(duration)}</span>
                                    <span class="mono clip">{t.args.clone()}</span>
                                </a>
                                {act}
                            }
                        }).collect_view()}
                        <super::control::RowActions open=menu/>
                    </div>
                </div>
            </Show>
            <p class="hint">{move || m.with(|m| format!(
                "{} tasks in this browser (most recent; the server retains {}).",
                m.task_count(), m.ingest.tasks_retained))}</p>
        </Show>
        <History filter=filter/>
    }
}

/// Rows of a history page.
const HISTORY_PAGE: usize = 50;

async fn fetch_history(pairs: Vec<(&'static str, String)>) -> Result<Vec<api::Task>, String> {
    let url = with_query(&href("/api/tasks"), &pairs);
    let resp = gloo_net::http::Request::get(&url)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body = resp.text().await.map_err(|e| e.to_string())?;
    if !resp.ok() {
        let reason = serde_json::from_str::<api::ApiError>(&body)
            .map(|e| e.error)
            .unwrap_or(body);
        return Err(format!("the server answered {}: {reason}", resp.status()));
    }
    crate::model::parse_listing(&body)
}

/// The server's history for the page's filters, a page at a time: every
/// stored task they match, including those this browser never saw or the
/// server no longer holds in memory. Rows this browser does not hold are
/// marked.
#[component]
fn History(filter: Memo<Filter>) -> impl IntoView {
    let m = expect_context::<RwSignal<Model>>();
    let offset = RwSignal::new(0usize);
    let result: RwSignal<Option<Result<Vec<api::Task>, String>>> = RwSignal::new(None);
    let busy = RwSignal::new(false);
    // New filters make the old results stale.
    Effect::new(move |_| {
        filter.track();
        offset.set(0);
        result.set(None);
    });
    let load = move |from: usize| match filter.get_untracked().history_params(from, HISTORY_PAGE) {
        Err(e) => result.set(Some(Err(e))),
        Ok(pairs) => {
            offset.set(from);
            busy.set(true);
            leptos::task::spawn_local(async move {
                let r = fetch_history(pairs).await;
                result.set(Some(r));
                busy.set(false);
            });
        }
    };
    let rows = move || {
        match result.get() {
        None => ().into_any(),
        Some(Err(e)) => view! { <p class="dim" data-testid="history-error">{e}</p> }.into_any(),
        Some(Ok(tasks)) if tasks.is_empty() => {
            view! { <p class="dim" data-testid="history-empty">"No stored task matches these filters."</p> }.into_any()
        }
        Some(Ok(tasks)) => {
            let (n, full) = (tasks.len(), tasks.len() == HISTORY_PAGE);
            let from = offset.get_untracked();
            view! {
                <table data-testid="history-rows">
                    <thead><tr><th>"task"</th><th>"uuid"</th><th>"state"</th><th>"worker"</th><th>"updated"</th><th>"args"</th><th></th></tr></thead>
                    <tbody>
                        {tasks.into_iter().map(|t| {
                            let live = m.with_untracked(|m| m.task(&t.uuid).is_some());
                            let source = if live { "live" } else { "history" };
                            view! {
                                <tr data-uuid=t.uuid.clone() data-state=t.state.as_str().to_owned() data-source=source>
                                    <td>{t.name.clone().unwrap_or_else(|| "?".into())}</td>
                                    <td class="mono"><a href=href(&format!("/tasks/{}", t.uuid))>{t.uuid.chars().take(8).collect::<String>()}</a></td>
                                    <td><span class=state_class(&t.state)>{t.state.as_str().to_owned()}</span></td>
                                    <td>{t.worker.clone()}</td>
                                    <td><Ago t=t.timestamp/></td>
                                    <td class="mono clip">{t.args.clone()}</td>
                                    <td>{(!live).then(|| view! { <span class="badge" title="Not in this browser's live table: read from the server's history">"history"</span> })}</td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
                <p>
                    {(from > 0).then(|| view! { <button type="button" on:click=move |_| load(from.saturating_sub(HISTORY_PAGE))>"← newer"</button> })}
                     " " {format!("{}–{}", from + 1, from + n)} " "
                    {full.then(|| view! { <button type="button" data-testid="history-older" on:click=move |_| load(from + HISTORY_PAGE)>"older →"</button> })}
                </p>
            }
            .into_any()
        }
    }
    };
    view! {
        <section class="history" data-testid="history">
            <h2>"History"</h2>
            <p class="hint">"Every stored task these filters match, newest first, including those no longer live here (restarts and evictions included). "
                <a href=move || with_query(&href("/api/tasks/export"), &filter.get().history_params(0, usize::MAX).unwrap_or_default()
                    .into_iter().filter(|(k, _)| *k != "limit" && *k != "offset").collect::<Vec<_>>())
                   download="tasks.ndjson">"Export as NDJSON"</a>"."</p>
            <button type="button" data-testid="history-search" disabled=move || busy.get() on:click=move |_| load(0)>
                {move || if busy.get() { "searching…" } else { "Search history" }}</button>
            {rows}
        </section>
    }
}

/// Ids of the unfinished tasks among `list` (positions in the model).
fn unfinished_shown(m: RwSignal<Model>, list: &[u32]) -> Vec<String> {
    m.with_untracked(|m| {
        list.iter()
            .filter_map(|&i| m.tasks().get(i as usize))
            .filter(|t| !t.state.is_ready())
            .map(|t| t.uuid.clone())
            .collect()
    })
}

async fn fetch_task(uuid: String) -> Result<api::Task, String> {
    let url = href(&format!("/api/task/info/{}", enc(&uuid)));
    let resp = gloo_net::http::Request::get(&url)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if resp.status() == 404 {
        return Err("celeriac does not know this task (yet): it may have been evicted, or its events have not arrived.".into());
    }
    if !resp.ok() {
        return Err(format!("the server answered {}", resp.status()));
    }
    resp.json::<api::Task>().await.map_err(|e| e.to_string())
}

#[component]
pub fn TaskDetail() -> impl IntoView {
    let m = expect_context::<RwSignal<Model>>();
    let params = use_params_map();
    let uuid = move || params.with(|p| p.get("uuid")).unwrap_or_default();
    let data: RwSignal<Option<Result<api::Task, String>>> = RwSignal::new(None);
    let signal = RwSignal::new("SIGTERM".to_string());
    // Refetch whenever the live row of this task changes.
    Effect::new(move |_| {
        let id = uuid();
        let _version = m.with(|m| {
            m.task(&id)
                .map(|t| (t.state.clone(), t.timestamp, t.runtime))
        });
        leptos::task::spawn_local(async move {
            let r = fetch_task(id).await;
            // The page re-renders only when the task did: a form opened on
            // it (edit and re-run) survives the cluster's other changes.
            let next = Some(r);
            if data.try_with_untracked(|d| *d != next) == Some(true) {
                let _ = data.try_set(next);
            }
        });
    });
    move || match data.get() {
        None => view! { <p class="dim">"loading…"</p> }.into_any(),
        Some(Err(e)) => {
            view! { <h1>"Task " {uuid()}</h1><div class="empty"><p>{e}</p></div> }.into_any()
        }
        Some(Ok(t)) => detail(m, t, signal).into_any(),
    }
}

/// `signal` (the terminate signal chosen) outlives the re-renders that
/// every change of the task causes.
fn detail(m: RwSignal<Model>, t: api::Task, signal: RwSignal<String>) -> impl IntoView {
    let task_link = |id: &str| {
        let id = id.to_owned();
        view! { <a class="mono" href=href(&format!("/tasks/{id}"))>{id.clone()}</a> }
    };
    let mut timeline: Vec<(&'static str, f64)> = [
        ("sent", t.sent),
        ("received", t.received),
        ("started", t.started),
        ("retried", t.retried),
        ("succeeded", t.succeeded),
        ("failed", t.failed),
        ("revoked", t.revoked),
        ("rejected", t.rejected),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    timeline.sort_by(|a, b| a.1.total_cmp(&b.1));
    let first = timeline.first().map(|x| x.1);
    let queued = t.sent.zip(t.received).map(|(s, r)| r - s);
    let prefetched = t.received.zip(t.started).map(|(r, s)| s - r);
    let children = m.with_untracked(|m| {
        m.children(&t.uuid)
            .iter()
            .map(|c| c.uuid.clone())
            .collect::<Vec<_>>()
    });
    let mut kids = t.children.clone();
    for c in children {
        if !kids.contains(&c) {
            kids.push(c);
        }
    }
    let field = |k: &'static str, v: Option<String>| {
        v.map(|v| view! { <tr><th>{k}</th><td class="mono wrap">{v}</td></tr> })
    };
    let tb = t.traceback.clone();
    let rerun = RwSignal::new(0u32);
    let worker_link = t
        .worker
        .clone()
        .map(|w| view! { <a href=href(&format!("/workers/{}", enc(&w)))>{w.clone()}</a> });
    view! {
        <h1>{t.name.clone().unwrap_or_else(|| "task".into())} " "
            <span class=state_class(&t.state) data-testid="state">{t.state.as_str().to_owned()}</span></h1>
        <p class="mono dim">{t.uuid.clone()}</p>
        {(!t.state.is_ready()).then(|| view! { <super::control::TaskActions uuid=t.uuid.clone() signal=signal/> })}
        {t.state.is_ready().then(|| view! { <super::retry::RetryAction uuid=t.uuid.clone() refresh=rerun/> })}
        <super::retry::RetryLinks uuid=t.uuid.clone() refresh=rerun/>
        <div class="two">
            <section>
                <h2>"Timeline"</h2>
                <ol class="timeline">
                    {timeline.iter().map(|(k, v)| view! {
                        <li><b>{*k}</b>" "<time title=absolute(*v)>{absolute(*v)}</time>
                        <span class="dim">{first.map(|f| format!("  +{}", duration(v - f)))}</span></li>
                    }).collect_view()}
                </ol>
                <table class="fields">
                    {queued.map(|d| view! { <tr><th>"queued (sent → received)"</th><td>{duration(d)}</td></tr> })}
                    {prefetched.map(|d| view! { <tr><th>"prefetched (received → started)"</th><td>{duration(d)}</td></tr> })}
                    {t.runtime.map(|d| view! { <tr><th>"runtime"</th><td>{duration(d)}</td></tr> })}
                </table>
            </section>
            <section>
                <h2>"Relations"</h2>
                <table class="fields">
                    <tr><th>"worker"</th><td>{worker_link}</td></tr>
                    {t.parent_id.clone().map(|p| view! { <tr><th>"parent"</th><td data-testid="parent">{task_link(&p)}</td></tr> })}
                    {t.root_id.clone().filter(|r| *r != t.uuid).map(|r| view! { <tr><th>"root"</th><td>{task_link(&r)}</td></tr> })}
                    <tr><th>"children"</th><td>
                        {if kids.is_empty() { view! { <span class="dim">"none"</span> }.into_any() }
                         else { kids.iter().map(|k| view! { <div>{task_link(k)}</div> }).collect_view().into_any() }}
                    </td></tr>
                </table>
            </section>
        </div>
        <super::workflow::Workflow uuid=t.uuid.clone()/>
        <h2>"Fields"</h2>
        <table class="fields">
            {field("args", t.args.clone())}
            {field("kwargs", t.kwargs.clone())}
            {field("result", t.result.clone())}
            {field("exception", t.exception.clone())}
            {field("retries", t.retries.map(|v| v.to_string()))}
            {field("eta", t.eta.clone())}
            {field("expires", t.expires.clone())}
            {field("queue", t.queue.clone())}
            {field("exchange", t.exchange.clone())}
            {field("routing key", t.routing_key.clone())}
            {field("client", t.client.clone())}
            {field("clock", t.clock.map(|v| v.to_string()))}
        </table>
        {tb.map(|tb| {
            let copied = RwSignal::new(false);
            let text = tb.clone();
            view! {
                <h2>"Traceback " <button class="copy" on:click=move |_| { copy(&text); copied.set(true); }>
                    {move || if copied.get() { "copied ✓" } else { "copy" }}</button></h2>
                <pre class="traceback" data-testid="traceback">{tb}</pre>
            }
        })}
    }
}
