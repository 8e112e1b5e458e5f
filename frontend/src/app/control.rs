//! Remote control in the browser: who is looking (`/api/me`), the no-auth
//! banner, and the confirmation dialog every action goes through, which
//! then shows each worker's reply. Requests are same-origin `fetch`es, so
//! the browser's cached Basic credentials go along and the server's
//! cross-site check passes.

use api::control::{ControlResponse, Me};
use leptos::html;
use leptos::prelude::*;

use super::util::{csrf_token, enc, href, post};
use crate::model::control::{worker_replies, Action, Body, Reply};

/// Who is looking; `None` until `/api/me` answered (controls stay hidden).
pub type MeSignal = RwSignal<Option<Me>>;

/// Bumped after every finished action, so pages showing worker state
/// (inspect tabs) reload it.
#[derive(Clone, Copy)]
pub struct Acted(pub RwSignal<u64>);

/// The dialog's state.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    Confirm,
    Sending,
    Done {
        ok: bool,
        message: String,
        replies: Vec<(String, Reply)>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub action: Action,
    pub stage: Stage,
}

#[derive(Clone, Copy)]
pub struct Dialog(pub RwSignal<Option<Pending>>);

/// Where focus was when the dialog opened; it goes back there on close.
#[derive(Clone, Copy)]
struct Opener(StoredValue<Option<web_sys::HtmlElement>, LocalStorage>);

/// Sets up the contexts and asks the server who we are.
pub fn provide() {
    let me: MeSignal = RwSignal::new(None);
    provide_context(me);
    provide_context(Acted(RwSignal::new(0)));
    provide_context(Dialog(RwSignal::new(None)));
    provide_context(Opener(StoredValue::new_local(None)));
    leptos::task::spawn_local(async move {
        let url = href("/api/me");
        match gloo_net::http::Request::get(&url).send().await {
            Ok(r) if r.ok() => match r.json::<Me>().await {
                Ok(m) => me.set(Some(m)),
                Err(e) => warn(&format!("celeriac: unreadable /api/me: {e}")),
            },
            Ok(r) => warn(&format!("celeriac: /api/me answered {}", r.status())),
            Err(e) => warn(&format!("celeriac: /api/me failed: {e}")),
        }
    });
}

fn warn(s: &str) {
    web_sys::console::warn_1(&s.into());
}

/// Whether this user may act now (false until known).
pub fn can_control() -> Signal<bool> {
    let me = expect_context::<MeSignal>();
    Signal::derive(move || me.with(|m| m.as_ref().is_some_and(|m| m.can_control)))
}

/// Opens the confirmation dialog for `action`.
pub fn ask(action: Action) {
    use wasm_bindgen::JsCast;
    let opener = document()
        .active_element()
        .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok());
    expect_context::<Opener>().0.set_value(opener);
    expect_context::<Dialog>().0.set(Some(Pending {
        action,
        stage: Stage::Confirm,
    }));
}

/// The persistent warning shown when nobody has to log in.
#[component]
pub fn NoAuthBanner() -> impl IntoView {
    let me = expect_context::<MeSignal>();
    move || {
        me.with(|m| match m {
            Some(m) if !m.auth_enabled => Some(view! {
                <div class="banner bad" role="alert" data-testid="noauth">
                    <b>"No authentication. "</b>
                    "Anyone who can reach this address can revoke tasks and shut down workers — start celeriac with "
                    <code>"--basic-auth user:password"</code>" (operators) and "<code>"--viewer user:password"</code>
                    " (read only), or "<code>"--read-only"</code>"."
                </div>
            }),
            _ => None,
        })
    }
}

/// The user and role in the header.
#[component]
pub fn WhoBadge() -> impl IntoView {
    let me = expect_context::<MeSignal>();
    move || {
        me.get().map(|m| {
            let role = match m.role {
                api::control::MeRole::Operator => "operator",
                api::control::MeRole::Viewer => "viewer",
                api::control::MeRole::Anonymous => "no login",
            };
            let text = if m.read_only {
                format!("{} · {role} · read-only", m.user)
            } else {
                format!("{} · {role}", m.user)
            };
            // Signed in with OpenID Connect: a plain form, so signing out
            // is a navigation to the server's "signed out" page.
            let sign_out = m.session.then(|| {
                view! {
                    <form class="signout" method="post" action=href("/logout")>
                        <input type="hidden" name="csrf_token" value=csrf_token().unwrap_or_default()/>
                        <button type="submit" data-testid="sign-out">"Sign out"</button>
                    </form>
                }
            });
            view! {
                <span class="badge" data-testid="me" data-role=role data-session=m.session.to_string()>
                    {text}
                </span>
                {sign_out}
            }
        })
    }
}

async fn send(action: &Action) -> Result<(u16, ControlResponse), String> {
    let url = href(&action.path());
    let req = match action.body() {
        Body::Form(pairs) => {
            let body = pairs
                .iter()
                .map(|(k, v)| format!("{k}={}", enc(v)))
                .collect::<Vec<_>>()
                .join("&");
            post(&url)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body)
        }
        Body::Json(v) => post(&url).json(&v),
    }
    .map_err(|e| e.to_string())?;
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| e.to_string())?;
    let body = serde_json::from_str::<ControlResponse>(&text).unwrap_or_else(|_| ControlResponse {
        error: Some(text.chars().take(300).collect()),
        ..ControlResponse::default()
    });
    Ok((status, body))
}

/// The confirmation dialog (one for the whole app): names the action and
/// its target, Enter confirms, Escape cancels, then shows every worker's
/// reply.
#[component]
pub fn ConfirmDialog() -> impl IntoView {
    let dialog = expect_context::<Dialog>().0;
    let acted = expect_context::<Acted>().0;
    let confirm_ref = NodeRef::<html::Button>::new();
    let close_ref = NodeRef::<html::Button>::new();
    let dialog_ref = NodeRef::<html::Div>::new();
    // Focus lands in the dialog: on the confirm button, then on "close"
    // (while sending, on the dialog itself so Tab stays trapped).
    Effect::new(move |_| {
        let stage = dialog.with(|d| d.as_ref().map(|p| p.stage.clone()));
        match stage {
            Some(Stage::Confirm) => {
                if let Some(b) = confirm_ref.get() {
                    let _ = b.focus();
                }
            }
            Some(Stage::Done { .. }) => {
                if let Some(b) = close_ref.get() {
                    let _ = b.focus();
                }
            }
            Some(Stage::Sending) => {
                if let Some(d) = dialog_ref.get() {
                    let _ = d.focus();
                }
            }
            None => {}
        }
    });
    let opener = expect_context::<Opener>().0;
    let close = move || {
        dialog.set(None);
        // Back to the button that opened it (if it is still on the page).
        if let Some(e) = opener.get_value() {
            if e.is_connected() {
                let _ = e.focus();
            }
        }
    };
    let confirm = move || {
        let Some(p) = dialog.get_untracked() else {
            return;
        };
        if p.stage != Stage::Confirm {
            return;
        }
        dialog.update(|d| {
            if let Some(d) = d {
                d.stage = Stage::Sending;
            }
        });
        leptos::task::spawn_local(async move {
            let stage = match send(&p.action).await {
                Ok((status, r)) => {
                    let ok = (200..300).contains(&status);
                    let message = r
                        .message
                        .clone()
                        .or(r.error.clone())
                        .unwrap_or_else(|| format!("answered {status}"));
                    let message = if ok {
                        // What the worker acknowledged but cannot fully do.
                        match &r.note {
                            Some(note) => format!("{message}. Note: {note}"),
                            None => message,
                        }
                    } else {
                        format!("{message} (HTTP {status})")
                    };
                    Stage::Done {
                        ok,
                        message,
                        replies: worker_replies(&r),
                    }
                }
                Err(e) => Stage::Done {
                    ok: false,
                    message: format!("the request failed: {e}"),
                    replies: Vec::new(),
                },
            };
            dialog.update(|d| {
                if let Some(d) = d {
                    d.stage = stage;
                }
            });
            acted.update(|n| *n += 1);
        });
    };
    let keydown = move |ev: web_sys::KeyboardEvent| match ev.key().as_str() {
        "Escape" => {
            ev.prevent_default();
            close();
        }
        "Enter" => {
            // Enter confirms; once done it closes.
            ev.prevent_default();
            match dialog.with_untracked(|d| d.as_ref().map(|p| p.stage.clone())) {
                Some(Stage::Confirm) => confirm(),
                Some(Stage::Done { .. }) => close(),
                _ => {}
            }
        }
        "Tab" => {
            if let Some(d) = dialog_ref.get_untracked() {
                trap_tab(&d, &ev);
            }
        }
        _ => {}
    };
    move || {
        dialog.get().map(|p| {
            let title = p.action.title();
            let target = p.action.target();
            let danger = p.action.destructive();
            let silent = p.action.silent();
            let body = match p.stage.clone() {
                Stage::Confirm => view! {
                    <p>"This is sent to the workers now and cannot be undone."</p>
                    <div class="actions">
                        <button type="button" on:click=move |_| close()>"Cancel"</button>
                        <button type="button" class=if danger { "primary danger" } else { "primary" }
                            data-testid="confirm" node_ref=confirm_ref on:click=move |_| confirm()>
                            {title.clone()}
                        </button>
                    </div>
                }
                .into_any(),
                Stage::Sending => view! { <p class="dim" data-testid="sending">"Sending… waiting for the workers' replies."</p> }.into_any(),
                Stage::Done { ok, message, replies } => {
                    let empty = replies.is_empty();
                    view! {
                        <p class=if ok { "ok" } else { "bad" } data-testid="outcome" data-ok=ok.to_string()>{message}</p>
                        {if empty {
                            view! { <p class="dim">{if silent { "This command asks for no reply." } else { "No worker replied." }}</p> }.into_any()
                        } else {
                            view! {
                                <table class="replies" data-testid="replies">
                                    <thead><tr><th>"worker"</th><th>"reply"</th></tr></thead>
                                    <tbody>
                                        {replies.into_iter().map(|(w, r)| {
                                            let (class, kind, text) = match r {
                                                Reply::Ok(t) => ("pill ok", "ok", t),
                                                Reply::Error(t) => ("pill bad", "error", t),
                                                Reply::NoReply => ("pill warn", "no reply", String::new()),
                                            };
                                            view! {
                                                <tr data-worker=w.clone() data-reply=kind>
                                                    <td>{w.clone()}</td>
                                                    <td><span class=class>{kind}</span>" "<span class="mono">{text}</span></td>
                                                </tr>
                                            }
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            }.into_any()
                        }}
                        <div class="actions">
                            <button type="button" node_ref=close_ref data-testid="close" on:click=move |_| close()>"Close"</button>
                        </div>
                    }
                    .into_any()
                }
            };
            view! {
                <div class="overlay" on:click=move |_| close()>
                    <div class="dialog" role="dialog" aria-modal="true" aria-labelledby="dialog-title"
                        tabindex="-1" node_ref=dialog_ref data-testid="dialog" on:click=|ev| ev.stop_propagation() on:keydown=keydown>
                        <h2 id="dialog-title">{p.action.title()}</h2>
                        <p class="target">"Target: "<b data-testid="target">{target}</b></p>
                        {body}
                    </div>
                </div>
            }
        })
    }
}

/// Keeps Tab and Shift-Tab inside the modal `dialog`: from its last
/// focusable control Tab wraps to the first, Shift-Tab from the first (or
/// from the dialog itself) to the last.
fn trap_tab(dialog: &web_sys::HtmlElement, ev: &web_sys::KeyboardEvent) {
    use wasm_bindgen::JsCast;
    const FOCUSABLE: &str =
        "button:not([disabled]), select:not([disabled]), input:not([disabled]), a[href]";
    let Ok(list) = dialog.query_selector_all(FOCUSABLE) else {
        return;
    };
    let items: Vec<web_sys::HtmlElement> = (0..list.length())
        .filter_map(|i| list.item(i))
        .filter_map(|n| n.dyn_into().ok())
        .collect();
    let (Some(first), Some(last)) = (items.first(), items.last()) else {
        // Nothing to move to (sending): focus stays on the dialog.
        ev.prevent_default();
        return;
    };
    let active = document().active_element();
    let is = |e: &web_sys::HtmlElement| active.as_ref().is_some_and(|a| a.is_same_node(Some(e)));
    let on_dialog = active
        .as_ref()
        .is_some_and(|a| a.is_same_node(Some(dialog)));
    if ev.shift_key() && (is(first) || on_dialog) {
        ev.prevent_default();
        let _ = last.focus();
    } else if !ev.shift_key() && is(last) {
        ev.prevent_default();
        let _ = first.focus();
    }
}

/// Revoke and terminate buttons for one task (task page); `signal` is
/// the page's, so a live re-render keeps the choice.
#[component]
pub fn TaskActions(uuid: String, signal: RwSignal<String>) -> impl IntoView {
    let allowed = can_control();
    let (u1, u2) = (uuid.clone(), uuid);
    view! {
        <Show when=move || allowed.get()>
            <div class="controls" data-testid="task-actions">
                <button type="button" data-testid="revoke" on:click={
                    let u = u1.clone();
                    move |_| ask(Action::Revoke { uuid: u.clone(), terminate: false, signal: "SIGTERM".into() })
                }>"Revoke"</button>
                <span class="group">
                    <button type="button" class="danger" data-testid="terminate" on:click={
                        let u = u2.clone();
                        move |_| ask(Action::Revoke { uuid: u.clone(), terminate: true, signal: signal.get_untracked() })
                    }>"Terminate"</button>
                    <SignalSelect signal=signal/>
                </span>
            </div>
        </Show>
    }
}

/// Which row's action menu is open in the tasks table: the task's uuid
/// and the menu's offset (px) in the scrolled rows.
pub type RowMenu = RwSignal<Option<(String, f64)>>;

/// The one action menu of the tasks table, shown under the row whose ⋯
/// button opened it. The rows carry only that plain button, so the
/// virtualised table stays cheap; this is rendered once.
#[component]
pub fn RowActions(open: RowMenu) -> impl IntoView {
    let signal = RwSignal::new("SIGTERM".to_string());
    let first = NodeRef::<html::Button>::new();
    // Keyboard users land on the first item.
    Effect::new(move |_| {
        if open.with(|o| o.is_some()) {
            if let Some(b) = first.get() {
                let _ = b.focus();
            }
        }
    });
    let pick = move |terminate: bool| {
        if let Some((uuid, _)) = open.get_untracked() {
            open.set(None);
            let signal = if terminate {
                signal.get_untracked()
            } else {
                "SIGTERM".into()
            };
            ask(Action::Revoke {
                uuid,
                terminate,
                signal,
            });
        }
    };
    let keydown = move |ev: web_sys::KeyboardEvent| {
        if ev.key() == "Escape" {
            ev.prevent_default();
            open.set(None);
        }
    };
    move || {
        open.get().map(|(uuid, top)| {
            view! {
                <div class="controls row-menu" role="menu" data-testid="row-menu" data-for=uuid.clone()
                    aria-label=format!("actions for task {uuid}")
                    style=format!("position:absolute;right:2.4rem;top:{top}px;z-index:2;margin:0;padding:.25rem .4rem;background:var(--card);border:1px solid var(--line);border-radius:4px")
                    on:keydown=keydown>
                    <button type="button" role="menuitem" node_ref=first data-testid="row-revoke"
                        on:click=move |_| pick(false)>"Revoke"</button>
                    <span class="group">
                        <button type="button" role="menuitem" class="danger" data-testid="row-terminate"
                            on:click=move |_| pick(true)>"Terminate"</button>
                        <SignalSelect signal=signal/>
                    </span>
                    <button type="button" aria-label="close menu" on:click=move |_| open.set(None)>"×"</button>
                </div>
            }
        })
    }
}

/// The signal for "terminate".
#[component]
pub fn SignalSelect(signal: RwSignal<String>) -> impl IntoView {
    view! {
        <select aria-label="signal" name="signal" prop:value=move || signal.get()
            on:change=move |e| signal.set(super::util::input_value(&e))>
            {crate::model::control::SIGNALS.iter().map(|s| view! { <option value=*s>{*s}</option> }).collect_view()}
        </select>
    }
}

/// "Revoke / terminate the unfinished tasks shown" (tasks table). The ids
/// are taken when clicked, so the dialog names exactly what is sent.
#[component]
pub fn RevokeShown(ids: Callback<(), Vec<String>>) -> impl IntoView {
    use crate::model::control::MAX_REVOKE_SHOWN;
    let allowed = can_control();
    let signal = RwSignal::new("SIGTERM".to_string());
    let error = RwSignal::new(None::<String>);
    let go = move |terminate: bool| {
        let ids = ids.run(());
        if ids.is_empty() {
            error.set(Some(
                "No unfinished task is shown: nothing to revoke.".into(),
            ));
            return;
        }
        if ids.len() > MAX_REVOKE_SHOWN {
            error.set(Some(format!(
                "{} unfinished tasks are shown; narrow the filters to at most {MAX_REVOKE_SHOWN}.",
                ids.len()
            )));
            return;
        }
        error.set(None);
        ask(Action::RevokeMany {
            ids,
            terminate,
            signal: if terminate {
                signal.get_untracked()
            } else {
                "SIGTERM".into()
            },
        });
    };
    view! {
        <Show when=move || allowed.get()>
            <div class="controls" data-testid="revoke-shown">
                <span class="dim">"Unfinished tasks shown:"</span>
                <button type="button" on:click=move |_| go(false) title="Revoke every unfinished task the table shows">"Revoke"</button>
                <span class="group">
                    <button type="button" class="danger" on:click=move |_| go(true) title="Revoke and kill the processes running them">"Terminate"</button>
                    <SignalSelect signal=signal/>
                </span>
                {move || error.get().map(|e| view! { <span class="bad" role="alert">{e}</span> })}
            </div>
        </Show>
    }
}

/// Rate and time limits of a task type, for one worker or all (task
/// types page).
#[component]
pub fn TypeLimits() -> impl IntoView {
    use crate::model::control::{parse_rate, time_limit};
    use crate::model::Model;
    let m = expect_context::<RwSignal<Model>>();
    let allowed = can_control();
    let task = RwSignal::new(String::new());
    let worker = RwSignal::new(String::new());
    let rate = RwSignal::new(String::new());
    let soft = RwSignal::new(String::new());
    let hard = RwSignal::new(String::new());
    let apply = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let input = super::util::input_value;
    let chosen = move || {
        let t = task.get_untracked();
        if t.is_empty() {
            Err("choose a task type".to_string())
        } else {
            let w = worker.get_untracked();
            Ok((t, (!w.is_empty()).then_some(w)))
        }
    };
    let set_rate = move |_| {
        let r = chosen().and_then(|(task, worker)| {
            Ok(Action::RateLimit {
                task,
                rate: parse_rate(&rate.get_untracked())?,
                worker,
            })
        });
        match r {
            Ok(a) => {
                error.set(None);
                ask(a)
            }
            Err(e) => error.set(Some(e)),
        }
    };
    let set_time = move |_| {
        let r = chosen().and_then(|(task, worker)| {
            time_limit(
                &task,
                &soft.get_untracked(),
                &hard.get_untracked(),
                worker,
                apply.get_untracked(),
            )
        });
        match r {
            Ok(a) => {
                error.set(None);
                ask(a)
            }
            Err(e) => error.set(Some(e)),
        }
    };
    view! {
        <Show when=move || allowed.get()>
            <h2>"Limits"</h2>
            <form class="controls" data-testid="limits" on:submit=|e| e.prevent_default()>
                <select aria-label="task type" name="task" prop:value=move || task.get() on:change=move |e| task.set(input(&e))>
                    <option value="">"task type…"</option>
                    {move || m.with(|m| m.types.iter().map(|t| t.name.clone()).collect::<Vec<_>>()).into_iter()
                        .map(|n| view! { <option value=n.clone()>{n.clone()}</option> }).collect_view()}
                </select>
                <select aria-label="worker" name="worker" prop:value=move || worker.get() on:change=move |e| worker.set(input(&e))>
                    <option value="">"every worker"</option>
                    {move || m.with(|m| m.workers.iter().filter(|w| w.status).map(|w| w.hostname.clone()).collect::<Vec<_>>()).into_iter()
                        .map(|n| view! { <option value=n.clone()>{n.clone()}</option> }).collect_view()}
                </select>
                <span class="group">
                    <input name="rate" size="8" placeholder="10/m" aria-label="rate limit" prop:value=move || rate.get() on:input=move |e| rate.set(input(&e))/>
                    <button type="button" data-testid="set-rate" on:click=set_rate>"Set rate limit"</button>
                </span>
                <span class="group">
                    <input name="soft" size="6" placeholder="soft s" aria-label="soft time limit (s)" prop:value=move || soft.get() on:input=move |e| soft.set(input(&e))/>
                    <input name="hard" size="6" placeholder="hard s" aria-label="hard time limit (s)" prop:value=move || hard.get() on:input=move |e| hard.set(input(&e))/>
                    <label title="Restart the worker pool after setting the limits, so new tasks get them">
                        <input type="checkbox" name="apply" prop:checked=move || apply.get()
                            on:change=move |e| apply.set(event_target_checked(&e))/>
                        " apply now (pool restart)"
                    </label>
                    <button type="button" data-testid="set-time" on:click=set_time>"Set time limits"</button>
                </span>
            </form>
            {move || error.get().map(|e| view! { <p class="bad" role="alert" data-testid="input-error">{e}</p> })}
            <p class="hint">"An empty rate limit removes it. "</p>
            <p class="hint warn" data-testid="time-limit-note">
                "A new time limit shows in the worker's registered tasks at once, but running prefork workers keep applying the old limits to new tasks until their pool restarts ("<b>"apply now"</b>" or the worker page's "<b>"Pool restart"</b>"; both need the worker's "<code>"worker_pool_restarts = True"</code>") or the worker restarts."
            </p>
        </Show>
    }
}
