//! The audit page: `GET /api/audit`, newest first, reloaded after every
//! action taken from this page's session.

use api::control::AuditResponse;
use leptos::prelude::*;

use super::control::Acted;
use super::util::{absolute, href};
use crate::model::control::{audit_cells, Reply};

async fn fetch_audit() -> Result<AuditResponse, String> {
    let resp = gloo_net::http::Request::get(&href("/api/audit?limit=500"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.ok() {
        return Err(format!("/api/audit answered {}", resp.status()));
    }
    resp.json().await.map_err(|e| e.to_string())
}

#[component]
pub fn Audit() -> impl IntoView {
    let data: RwSignal<Option<Result<AuditResponse, String>>> = RwSignal::new(None);
    let acted = expect_context::<Acted>().0;
    let load = move || {
        leptos::task::spawn_local(async move {
            data.set(Some(fetch_audit().await));
        })
    };
    Effect::new(move |_| {
        acted.track();
        load();
    });
    view! {
        <h1>"Audit log " <button type="button" class="small" on:click=move |_| load()>"reload"</button></h1>
        <p class="hint">"Every control action since celeriac started (the newest 1,000; all are also in its log, target "<code>"celeriac::audit"</code>"). Inspections are not actions."</p>
        {move || match data.get() {
            None => view! { <p class="dim">"loading…"</p> }.into_any(),
            Some(Err(e)) => view! { <div class="empty"><p>{e}</p></div> }.into_any(),
            Some(Ok(r)) if r.entries.is_empty() => view! {
                <div class="empty" data-testid="audit-empty"><p>"No control actions yet."</p></div>
            }.into_any(),
            Some(Ok(r)) => view! {
                <table data-testid="audit">
                    <thead><tr><th>"when"</th><th>"who"</th><th>"command"</th><th>"arguments"</th><th>"target"</th><th class="num">"status"</th><th>"replies"</th></tr></thead>
                    <tbody>
                        {r.entries.into_iter().map(|e| {
                            let (target, args, replies) = audit_cells(&e);
                            let ok = (200..300).contains(&e.status);
                            view! {
                                <tr data-command=e.command.clone() data-id=e.id.to_string()>
                                    <td><time title=absolute(e.time)>{absolute(e.time)}</time></td>
                                    <td>{e.user.clone()}<span class="dim">{format!(" ({})", e.role)}</span></td>
                                    <td class="mono">{e.command.clone()}</td>
                                    <td class="mono wrap">{args}</td>
                                    <td>{target}</td>
                                    <td class="num"><span class=if ok { "ok" } else { "bad" }>{e.status}</span></td>
                                    <td>
                                        {if replies.is_empty() { Some(view! { <span class="dim">"none"</span> }) } else { None }}
                                        {replies.into_iter().map(|(w, r)| {
                                            let (class, text) = match r {
                                                Reply::Ok(t) => ("ok", t),
                                                Reply::Error(t) => ("bad", t),
                                                Reply::NoReply => ("dim", "no reply".to_string()),
                                            };
                                            view! { <div><b>{w}</b>": "<span class=class>{text}</span></div> }
                                        }).collect_view()}
                                    </td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            }.into_any(),
        }}
    }
}
