//! The alerts page and the overview badge, from `GET /api/alerts`, polled
//! every 5 s for the whole app (and at once when the page opens).

use std::time::Duration;

use leptos::prelude::*;

use super::util::{href, Ago};
use crate::model::alerts::{state_name, value, AlertsView};

const POLL: Duration = Duration::from_secs(5);

/// Polls `/api/alerts` into a context signal.
pub fn provide() {
    let view: RwSignal<AlertsView> = RwSignal::new(AlertsView::Loading);
    provide_context(view);
    fetch(view);
    // Without alerting nothing changes until celeriac restarts (which
    // reloads the page's data when the alerts page opens), so stop asking.
    set_interval(
        move || {
            if view.with_untracked(|v| *v != AlertsView::NotConfigured) {
                fetch(view)
            }
        },
        POLL,
    );
}

fn fetch(view: RwSignal<AlertsView>) {
    leptos::task::spawn_local(async move {
        let next = match gloo_net::http::Request::get(&href("/api/alerts"))
            .send()
            .await
        {
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                AlertsView::from_answer(status, &body)
            }
            Err(e) => AlertsView::Failed(format!("/api/alerts: {e}")),
        };
        if view.with_untracked(|v| *v != next) {
            view.set(next);
        }
    });
}

/// A link to the alerts page with the count of firing alerts.
#[component]
pub fn AlertsBadge() -> impl IntoView {
    let view = expect_context::<RwSignal<AlertsView>>();
    move || {
        let (firing, pending) = view.with(|v| (v.firing(), v.pending()));
        let class = if firing > 0 {
            "badge bad"
        } else if pending > 0 {
            "badge warn"
        } else {
            "badge"
        };
        let (ready, off) = view.with(|v| {
            (
                matches!(v, AlertsView::Ready(_)),
                *v == AlertsView::NotConfigured,
            )
        });
        let text = match ready {
            false if off => "alerting off".to_string(),
            false => "alerts".to_string(),
            true if firing > 0 => format!("{firing} firing"),
            true if pending > 0 => format!("{pending} pending"),
            true => "no alerts firing".to_string(),
        };
        view! { <a class=class href=href("/alerts") data-testid="alerts-badge" data-firing=firing.to_string()>{text}</a> }
    }
}

#[component]
pub fn Alerts() -> impl IntoView {
    let view = expect_context::<RwSignal<AlertsView>>();
    fetch(view);
    view! {
        <h1>"Alerts"</h1>
        {move || match view.get() {
            AlertsView::Loading => view! { <p class="dim">"loading…"</p> }.into_any(),
            AlertsView::NotConfigured => view! {
                <div class="empty" data-testid="alerts-off"><p><b>"Alerting is not configured."</b>
                " Start celeriac with "<code>"--alerts FILE"</code>" (a YAML file of rules) to watch queue lengths, failure rates, runtimes and workers, and notify by webhook, Slack, Alertmanager or e-mail."</p></div>
            }.into_any(),
            AlertsView::Failed(e) => view! { <div class="empty"><p>{e}</p></div> }.into_any(),
            AlertsView::Ready(r) => {
                let reload_error = r.reload_error.clone();
                view! {
                    <p class="hint">
                        {r.file.clone().map(|f| format!("Rules from {f}; "))}
                        {format!("evaluated every {} s", r.eval_interval_secs)}
                        {r.evaluated_at.map(|t| view! { ", last "<Ago t=Some(t)/> })}
                    </p>
                    {reload_error.map(|e| view! { <p class="bad" role="alert">"The last reload failed (the previous rules stay in force): "{e}</p> })}
                    <table data-testid="rules">
                        <thead><tr><th>"rule"</th><th>"state"</th><th>"condition"</th><th>"instance"</th><th class="num">"value"</th><th>"since"</th><th>"severity"</th><th>"notify"</th></tr></thead>
                        <tbody>
                            {r.rules.into_iter().map(|rule| {
                                let rows = if rule.instances.is_empty() { vec![None] } else { rule.instances.iter().cloned().map(Some).collect() };
                                rows.into_iter().map(|inst| {
                                    let state = inst.as_ref().map_or(rule.state, |i| i.state);
                                    let pill = match state_name(state) {
                                        "firing" => "pill bad", "pending" => "pill warn", _ => "pill",
                                    };
                                    let labels = inst.as_ref().map(|i| i.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")).unwrap_or_default();
                                    let since = inst.as_ref().map(|i| i.firing_since.unwrap_or(i.active_since));
                                    view! {
                                        <tr data-rule=rule.name.clone() data-state=state_name(state)>
                                            <td><b>{rule.name.clone()}</b><div class="dim">{rule.kind.clone()}</div></td>
                                            <td><span class=pill>{state_name(state)}</span></td>
                                            <td class="mono">{rule.condition.clone()}</td>
                                            <td class="mono">{labels}</td>
                                            <td class="num">{value(inst.as_ref().and_then(|i| i.value))}</td>
                                            <td><Ago t=since/></td>
                                            <td>{rule.severity.clone()}</td>
                                            <td>{rule.notify.join(", ")}</td>
                                        </tr>
                                    }
                                }).collect_view()
                            }).collect_view()}
                        </tbody>
                    </table>
                    <h2>"Notifiers"</h2>
                    {if r.notifiers.is_empty() {
                        view! { <p class="dim">"No notifiers configured: alerts show here only."</p> }.into_any()
                    } else {
                        view! {
                            <table data-testid="notifiers">
                                <thead><tr><th>"notifier"</th><th>"kind"</th><th class="num">"sent"</th><th class="num">"failed"</th><th class="num">"dropped"</th><th>"last success"</th><th>"last error"</th></tr></thead>
                                <tbody>
                                    {r.notifiers.into_iter().map(|n| view! {
                                        <tr>
                                            <td>{n.name.clone()}</td><td>{n.kind.clone()}</td>
                                            <td class="num">{n.sent}</td>
                                            <td class="num"><span class:bad={n.failed > 0}>{n.failed}</span></td>
                                            <td class="num"><span class:bad={n.dropped > 0}>{n.dropped}</span></td>
                                            <td><Ago t=n.last_success_at/></td>
                                            <td class="bad">{n.last_error.clone()}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any()
                    }}
                }.into_any()
            }
        }}
    }
}
