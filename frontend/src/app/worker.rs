//! The worker page's inspect tabs (from `/api/workers?workername=X`, with
//! `refresh=1` to ask the worker afresh) and its controls.

use leptos::prelude::*;
use serde_json::Value;

use super::control::{ask, can_control, Acted};
use super::util::{enc, href, input_value};
use crate::model::control::{parse_count, tab_content, Action, TabContent, INSPECT_TABS};

async fn fetch_inspect(name: String, refresh: bool) -> Result<Value, String> {
    let url = href(&format!(
        "/api/workers?workername={}{}",
        enc(&name),
        if refresh { "&refresh=1" } else { "" }
    ));
    let resp = gloo_net::http::Request::get(&url)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.ok() {
        let text = resp.text().await.unwrap_or_default();
        return Err(format!("the server answered {}: {text}", resp.status()));
    }
    let all: Value = resp.json().await.map_err(|e| e.to_string())?;
    all.get(&name)
        .cloned()
        .ok_or_else(|| format!("the server knows no worker '{name}'"))
}

#[component]
pub fn WorkerOps(name: String) -> impl IntoView {
    let data: RwSignal<Option<Result<Value, String>>> = RwSignal::new(None);
    let loading = RwSignal::new(false);
    let tab = RwSignal::new("stats");
    let acted = expect_context::<Acted>().0;
    let load = {
        let name = name.clone();
        move |refresh: bool| {
            let name = name.clone();
            loading.set(true);
            leptos::task::spawn_local(async move {
                let r = fetch_inspect(name, refresh).await;
                data.set(Some(r));
                loading.set(false);
            });
        }
    };
    // Ask the worker when the page opens and after every action; again a
    // moment after an action, because Celery applies some (add/cancel
    // consumer, pool changes) asynchronously after replying "ok".
    {
        let load = load.clone();
        Effect::new(move |first: Option<()>| {
            acted.track();
            load(true);
            if first.is_some() {
                let again = load.clone();
                set_timeout(move || again(true), std::time::Duration::from_millis(1500));
            }
        });
    }
    let refresh = load.clone();
    view! {
        <h2>"Inspect "
            <button type="button" class="small" data-testid="refresh" disabled=move || loading.get()
                on:click=move |_| refresh(true)>
                {move || if loading.get() { "asking…" } else { "refresh" }}
            </button>
        </h2>
        <div class="tabs" role="tablist">
            {INSPECT_TABS.iter().map(|(key, label)| {
                let key: &'static str = key;
                view! {
                    <button type="button" role="tab" data-tab=key aria-selected=move || (tab.get() == key).to_string()
                        class:active=move || tab.get() == key on:click=move |_| tab.set(key)>{*label}</button>
                }
            }).collect_view()}
        </div>
        <div class="tabpanel" role="tabpanel" data-testid="tabpanel">
            {move || match data.get() {
                None => view! { <p class="dim">"asking the worker…"</p> }.into_any(),
                Some(Err(e)) => view! { <div class="empty"><p>{e}</p></div> }.into_any(),
                Some(Ok(w)) => match tab_content(tab.get(), &w) {
                    TabContent::Missing => view! {
                        <p class="dim">"No answer from the worker for this (is it online? inspect replies time out after --inspect-timeout)."</p>
                    }.into_any(),
                    TabContent::Empty => view! { <p class="dim">"none"</p> }.into_any(),
                    TabContent::Table { head, rows } => view! {
                        <table class="inspect">
                            {head.iter().any(|h| !h.is_empty()).then(|| view! {
                                <thead><tr>{head.iter().map(|h| view! { <th>{*h}</th> }).collect_view()}</tr></thead>
                            })}
                            <tbody>
                                {rows.into_iter().map(|r| view! {
                                    <tr>{r.into_iter().map(|c| view! { <td class="mono wrap">{c}</td> }).collect_view()}</tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                },
            }}
        </div>
        <WorkerControls name=name/>
    }
}

/// Pool, consumer and shutdown controls (operators only).
#[component]
fn WorkerControls(name: String) -> impl IntoView {
    let allowed = can_control();
    let n = RwSignal::new("1".to_string());
    let max = RwSignal::new(String::new());
    let min = RwSignal::new(String::new());
    let queue = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let w = name;
    // Checks the fields, then asks for confirmation.
    let go = move |make: Box<dyn Fn() -> Result<Action, String>>| match make() {
        Ok(a) => {
            error.set(None);
            ask(a);
        }
        Err(e) => error.set(Some(e)),
    };
    let field = |s: RwSignal<String>,
                 label: &'static str,
                 name: &'static str,
                 size: &'static str| {
        view! {
            <input aria-label=label placeholder=label name=name size=size prop:value=move || s.get()
                on:input=move |e| s.set(input_value(&e))/>
        }
    };
    let button = move |label: &'static str,
                       testid: &'static str,
                       danger: bool,
                       make: Box<dyn Fn() -> Result<Action, String>>| {
        let make = std::rc::Rc::new(make);
        view! {
            <button type="button" class:danger=danger data-testid=testid
                on:click=move |_| { let m = make.clone(); go(Box::new(move || m())) }>{label}</button>
        }
    };
    let (w1, w2, w3, w4, w5, w6, w7) = (
        w.clone(),
        w.clone(),
        w.clone(),
        w.clone(),
        w.clone(),
        w.clone(),
        w,
    );
    view! {
        <Show when=move || allowed.get()>
            <h2>"Control"</h2>
            <div class="controls" data-testid="worker-controls">
                <span class="group">
                    {field(n, "processes", "n", "3")}
                    {button("Grow pool", "pool-grow", false, Box::new({ let w = w1.clone(); move || Ok(Action::PoolGrow { worker: w.clone(), n: parse_count("processes", &n.get_untracked())? }) }))}
                    {button("Shrink pool", "pool-shrink", false, Box::new({ let w = w2.clone(); move || Ok(Action::PoolShrink { worker: w.clone(), n: parse_count("processes", &n.get_untracked())? }) }))}
                </span>
                <span class="group">
                    {field(max, "max", "max", "3")}{field(min, "min", "min", "3")}
                    {button("Autoscale", "autoscale", false, Box::new({ let w = w3.clone(); move || {
                        let (mx, mn) = (parse_count("max", &max.get_untracked())?, parse_count("min", &min.get_untracked())?);
                        if mn > mx { return Err(format!("min ({mn}) is above max ({mx})")); }
                        Ok(Action::Autoscale { worker: w.clone(), max: mx, min: mn })
                    } }))}
                </span>
                <span class="group">
                    {field(queue, "queue", "queue", "12")}
                    {button("Add consumer", "add-consumer", false, Box::new({ let w = w4.clone(); move || {
                        let q = queue.get_untracked().trim().to_string();
                        if q.is_empty() { return Err("name the queue to consume from".into()); }
                        Ok(Action::AddConsumer { worker: w.clone(), queue: q })
                    } }))}
                    {button("Cancel consumer", "cancel-consumer", false, Box::new({ let w = w5.clone(); move || {
                        let q = queue.get_untracked().trim().to_string();
                        if q.is_empty() { return Err("name the queue to stop consuming from".into()); }
                        Ok(Action::CancelConsumer { worker: w.clone(), queue: q })
                    } }))}
                </span>
                <span class="group">
                    {button("Restart pool", "pool-restart", false, Box::new({ let w = w6.clone(); move || Ok(Action::PoolRestart { worker: w.clone() }) }))}
                    {button("Shut down", "shutdown", true, Box::new({ let w = w7.clone(); move || Ok(Action::Shutdown { worker: w.clone() }) }))}
                </span>
            </div>
            {move || error.get().map(|e| view! { <p class="bad" role="alert" data-testid="input-error">{e}</p> })}
            <p class="hint">"Pool restart needs the worker's "<code>"worker_pool_restarts = True"</code>"; autoscale needs "<code>"--autoscale"</code>"."</p>
        </Show>
    }
}
