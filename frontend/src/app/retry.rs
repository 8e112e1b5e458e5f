//! Re-running a finished task from its page (`POST /api/task/retry/{id}`):
//! a dry run first tells whether its arguments can be rebuilt, so the
//! button is offered or disabled with the server's reason; the links
//! between a task and its re-runs (`retry_of`, `reruns` in
//! `/api/task/info`) are shown either way.

use leptos::prelude::*;
use serde_json::Value;

use super::control::can_control;
use super::util::{enc, href};
use crate::model::control::{edit_text, rerun_body};

/// What the dry run said.
#[derive(Clone, PartialEq)]
enum Offer {
    Checking,
    /// The arguments the re-run would carry, as JSON text for the form.
    Ready {
        args: String,
        kwargs: String,
    },
    Blocked(String),
}

/// The server's `error` text, else the status.
fn error_of(status: u16, text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("the server answered {status}"))
}

async fn post_retry(uuid: &str, dry_run: bool) -> Result<Value, String> {
    post_retry_with(uuid, dry_run, None).await
}

/// With `edited`, the body replaces the original arguments.
async fn post_retry_with(
    uuid: &str,
    dry_run: bool,
    edited: Option<Value>,
) -> Result<Value, String> {
    let mut url = href(&format!("/api/task/retry/{}", enc(uuid)));
    if dry_run {
        url.push_str("?dry_run=true");
    }
    let request = super::util::post(&url);
    let sent = match edited {
        Some(body) => request.json(&body).map_err(|e| e.to_string())?.send().await,
        None => request.send().await,
    };
    let resp = sent.map_err(|e| e.to_string())?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| e.to_string())?;
    if !resp.ok() {
        return Err(error_of(status, &text));
    }
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

fn task_link(id: String) -> impl IntoView {
    view! { <a class="mono" href=href(&format!("/tasks/{id}"))>{id.clone()}</a> }
}

/// The task's re-run links, read from `/api/task/info` (beyond Flower's
/// fields, so not in `api::Task`), again whenever `refresh` changes.
#[component]
pub fn RetryLinks(uuid: String, refresh: RwSignal<u32>) -> impl IntoView {
    let links: RwSignal<(Option<String>, Vec<String>)> = RwSignal::new((None, Vec::new()));
    Effect::new(move |_| {
        refresh.track();
        let url = href(&format!("/api/task/info/{}", enc(&uuid)));
        leptos::task::spawn_local(async move {
            let Ok(resp) = gloo_net::http::Request::get(&url).send().await else {
                return;
            };
            let Ok(v) = resp.json::<Value>().await else {
                return;
            };
            let retry_of = v["retry_of"].as_str().map(str::to_owned);
            let reruns = v["reruns"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            // The task page re-renders as its task changes; this one may be
            // gone by the time the answer arrives.
            let _ = links.try_set((retry_of, reruns));
        });
    });
    move || {
        let (retry_of, reruns) = links.get();
        view! {
            {retry_of.map(|id| view! { <p data-testid="retry-of">"Re-run of " {task_link(id)}</p> })}
            {(!reruns.is_empty()).then(|| view! {
                <p data-testid="reruns">"Re-run as "
                    {reruns.into_iter().map(|id| view! { {task_link(id)} " " }).collect_view()}
                </p>
            })}
        }
    }
}

/// The Retry button of a finished task, for those who may act; a re-run
/// bumps `refresh` so the links show it.
#[component]
pub fn RetryAction(uuid: String, refresh: RwSignal<u32>) -> impl IntoView {
    let allowed = can_control();
    let offer = RwSignal::new(Offer::Checking);
    let done: RwSignal<Option<Result<String, String>>> = RwSignal::new(None);
    let busy = RwSignal::new(false);
    // Ask once the user is known to be allowed: viewers get a 403 anyway.
    let checked = StoredValue::new(false);
    let u = uuid.clone();
    Effect::new(move |_| {
        if !allowed.get() || checked.get_value() {
            return;
        }
        checked.set_value(true);
        let u = u.clone();
        leptos::task::spawn_local(async move {
            let _ = offer.try_set(match post_retry(&u, true).await {
                Ok(v) => Offer::Ready {
                    args: edit_text(&v["published"]["args"]),
                    kwargs: edit_text(&v["published"]["kwargs"]),
                },
                Err(e) => Offer::Blocked(e),
            });
        });
    });
    let editing = RwSignal::new(false);
    let args_text = RwSignal::new(String::new());
    let kwargs_text = RwSignal::new(String::new());
    let form_error: RwSignal<Option<String>> = RwSignal::new(None);
    let run = move |edited: Option<Value>| {
        let question = if edited.is_some() {
            format!("Run task {uuid} again, with the arguments as edited, as a new task?")
        } else {
            format!("Run task {uuid} again, with the same arguments, as a new task?")
        };
        let yes = window().confirm_with_message(&question).unwrap_or(false);
        if !yes {
            return;
        }
        busy.set(true);
        let u = uuid.clone();
        leptos::task::spawn_local(async move {
            let r = post_retry_with(&u, false, edited).await.and_then(|v| {
                v["task-id"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| "the answer has no task-id".to_string())
            });
            if r.is_ok() {
                let _ = refresh.try_update(|n| *n += 1);
            }
            let _ = done.try_set(Some(r));
            let _ = busy.try_set(false);
        });
    };
    view! {
        <Show when=move || allowed.get()>
            <div class="controls" data-testid="retry-action">
                <button type="button" data-testid="retry"
                    disabled=move || busy.get() || !matches!(offer.get(), Offer::Ready { .. })
                    title=move || match offer.get() {
                        Offer::Blocked(why) => why,
                        _ => "Publish this task again with its name, arguments and route".into(),
                    }
                    on:click={
                        let run = run.clone();
                        move |_| run(None)
                    }>"Retry"</button>
                <button type="button" data-testid="edit-rerun"
                    disabled=move || busy.get() || !matches!(offer.get(), Offer::Ready { .. })
                    on:click=move |_| {
                        if let Offer::Ready { args, kwargs } = offer.get_untracked() {
                            args_text.set(args);
                            kwargs_text.set(kwargs);
                        }
                        form_error.set(None);
                        editing.update(|e| *e = !*e);
                    }>"Edit arguments and re-run"</button>
                {move || match offer.get() {
                    Offer::Blocked(why) => Some(view! {
                        <span class="dim" data-testid="retry-blocked">"Cannot retry: " {why}</span>
                    }),
                    _ => None,
                }}
                {let run = run.clone();
                move || editing.get().then(|| {
                    let run = run.clone();
                    view! {
                        <form class="rerun-form" data-testid="rerun-form" on:submit=move |e| {
                            e.prevent_default();
                            match rerun_body(&args_text.get_untracked(), &kwargs_text.get_untracked()) {
                                Ok(body) => {
                                    form_error.set(None);
                                    run(Some(body));
                                }
                                Err(why) => form_error.set(Some(why)),
                            }
                        }>
                            <label>"args (JSON array)"
                                <textarea name="args" rows="3" prop:value=move || args_text.get()
                                    on:input=move |e| args_text.set(event_target_value(&e))></textarea></label>
                            <label>"kwargs (JSON object)"
                                <textarea name="kwargs" rows="3" prop:value=move || kwargs_text.get()
                                    on:input=move |e| kwargs_text.set(event_target_value(&e))></textarea></label>
                            <button type="submit" class="primary" data-testid="rerun-submit"
                                disabled=move || busy.get()>"Re-run with these arguments"</button>
                            {move || form_error.get().map(|e| view! { <span class="error" data-testid="rerun-form-error">{e}</span> })}
                        </form>
                    }
                })}
                {move || done.get().map(|r| match r {
                    Ok(id) => view! { <span data-testid="retry-done">"Re-ran as " {task_link(id)}</span> }.into_any(),
                    Err(e) => view! { <span class="error" data-testid="retry-error">{e}</span> }.into_any(),
                })}
            </div>
        </Show>
    }
}
