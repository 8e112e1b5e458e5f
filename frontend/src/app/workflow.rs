//! The task page's workflow tree (`GET /api/task/{id}/tree`): every known
//! task of the workflow, indented under its parent, the branches holding a
//! failure marked so the broken path shows at a glance.

use std::time::Duration;

use api::tree::WorkflowTree;
use leptos::prelude::*;

use super::tasks::state_class;
use super::util::{enc, get_json, href, with_query};
use crate::model::duration;

async fn fetch_tree(uuid: &str) -> Option<WorkflowTree> {
    let url = href(&format!("/api/task/{}/tree", enc(uuid)));
    get_json(&url, "the tree").await.ok()
}

/// Polled while a task of the workflow is unfinished: other members change
/// without this page's task changing.
const POLL: Duration = Duration::from_secs(2);

/// Shows nothing for a task alone in its workflow.
#[component]
pub fn Workflow(uuid: String) -> impl IntoView {
    let tree: RwSignal<Option<WorkflowTree>> = RwSignal::new(None);
    let id = uuid.clone();
    let load = move |force: bool| {
        let running = tree
            .try_with_untracked(|t| {
                t.as_ref()
                    .is_some_and(|t| t.nodes.iter().any(|n| !n.state.is_ready()))
            })
            .unwrap_or(false);
        if !(force || running) {
            return;
        }
        let id = id.clone();
        leptos::task::spawn_local(async move {
            let next = fetch_tree(&id).await;
            // The page may have moved on (the task page re-renders as its
            // task changes) while the answer was on its way.
            if tree.try_with_untracked(|t| *t != next) == Some(true) {
                let _ = tree.try_set(next);
            }
        });
    };
    load(true);
    let poll = set_interval_with_handle(move || load(false), POLL).ok();
    on_cleanup(move || {
        if let Some(h) = poll {
            h.clear();
        }
    });
    move || {
        let t = tree.get().filter(|t| t.nodes.len() > 1)?;
        let this = uuid.clone();
        let all = with_query("/tasks", &[("root", t.root_id.clone())]);
        let failed = t
            .nodes
            .iter()
            .filter(|n| n.failed_below && n.depth == 0)
            .count()
            > 0;
        Some(view! {
            <section class="workflow" data-testid="workflow">
                <h2>"Workflow "
                    <span class="dim count">{format!("{} tasks", t.nodes.len())}</span>" "
                    <a href=href(&all) data-testid="workflow-tasks">"as a task list"</a>
                </h2>
                {(!t.root_known).then(|| view! {
                    <p class="dim">"The root task " <span class="mono">{t.root_id.clone()}</span>
                        " is not in memory; its known descendants are shown."</p>
                })}
                {t.truncated.then(|| view! {
                    <p class="dim">{format!("Only the first {} tasks of this workflow are shown.", t.limit)}</p>
                })}
                {failed.then(|| view! { <p class="bad">"A branch of this workflow failed (marked ✕)."</p> })}
                <ul class="tree">
                    {t.nodes.into_iter().map(|n| {
                        let here = n.uuid == this;
                        let class = match (here, n.failed_below) {
                            (true, true) => "node here failed",
                            (true, false) => "node here",
                            (false, true) => "node failed",
                            (false, false) => "node",
                        };
                        let indent = format!("padding-left: {}rem", 0.3 + 1.2 * f64::from(n.depth.min(40)));
                        let label = n.name.clone().unwrap_or_else(|| n.uuid.chars().take(8).collect());
                        view! {
                            <li class=class style=indent data-testid="tree-node" data-depth=n.depth.to_string()>
                                <span class="mark">{if n.failed_below { "✕" } else { "" }}</span>
                                <span class=state_class(&n.state)>{n.state.as_str().to_owned()}</span>" "
                                <a href=href(&format!("/tasks/{}", n.uuid))>{label}</a>" "
                                <span class="mono dim">{n.uuid.chars().take(8).collect::<String>()}</span>
                                {n.runtime.map(|r| view! { <span class="dim">{format!("  {}", duration(r))}</span> })}
                                {n.worker.clone().map(|w| view! { <span class="dim">{format!("  on {w}")}</span> })}
                            </li>
                        }
                    }).collect_view()}
                </ul>
            </section>
        })
    }
}
