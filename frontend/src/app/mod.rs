//! The Leptos UI (wasm32 only). Every page reads one `RwSignal<Model>` fed
//! by the websocket (`live`); the task detail page also fetches the full
//! task from `/api/task/info/{uuid}`.

mod advice; // capacity and routing advice (polled) for the overview and queues pages
mod alerts;
mod audit;
mod charts; // the server's kept series (polled) as sparklines
mod control;
mod diagnosis; // events-off and stuck-task banner (polled)
mod failures; // failure groups (polled), resolve / unresolve
mod live;
mod pages;
mod queues; // the Queues page (broker stats, polled)
mod retry; // the task page's Retry button and re-run links
mod task_stats; // runtime and wait quantiles (polled) for the task types page
mod tasks;
mod util;
mod worker;
mod workflow; // the task page's workflow tree

use leptos::prelude::*;
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;
use wasm_bindgen::prelude::*;

use crate::model::Model;
use live::Conn;
use util::{href, prefix};

/// Entry point called by `index.html`.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook_lite();
    leptos::mount::mount_to_body(App);
}

fn console_error_panic_hook_lite() {
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&info.to_string().into());
    }));
}

#[component]
fn App() -> impl IntoView {
    let model = RwSignal::new(Model::default());
    let conn = RwSignal::new(Conn::Connecting);
    provide_context(model);
    provide_context(conn);
    live::connect(model, conn);
    control::provide(); // who is looking, the confirmation dialog
    alerts::provide(); // polls /api/alerts for the badge and the page
    let theme = RwSignal::new(util::initial_theme());
    Effect::new(move |_| util::apply_theme(&theme.get()));

    view! {
        <Router base=prefix()>
            <header class="top">
                <a class="brand" href=href("/")>"celeriac"</a>
                <nav>
                    <a href=href("/")>"Overview"</a>
                    <a href=href("/workers")>"Workers"</a>
                    <a href=href("/tasks")>"Tasks"</a>
                    <a href=href("/types")>"Task types"</a>
                    <a href=href("/failures")>"Failures"</a>
                    <a href=href("/alerts")>"Alerts"</a>
                    <a href=href("/audit")>"Audit"</a>
                    <a href=href("/queues")>"Queues"</a>
                </nav>
                <span class="spacer"></span>
                <control::WhoBadge/>
                <live::ConnBadge/>
                <button
                    class="theme"
                    title="Switch between dark and light"
                    on:click=move |_| {
                        theme.update(|t| *t = if t == "dark" { "light".into() } else { "dark".into() })
                    }
                >
                    {move || if theme.get() == "dark" { "☀ light" } else { "☾ dark" }}
                </button>
            </header>
            <control::NoAuthBanner/>
            <control::ConfirmDialog/>
            <main>
                <Routes fallback=|| view! { <p class="empty">"No such page. "<a href=href("/")>"Back to the overview"</a></p> }>
                    <Route path=path!("/") view=pages::Overview/>
                    <Route path=path!("/workers") view=pages::Workers/>
                    <Route path=path!("/workers/:name") view=pages::WorkerDetail/>
                    <Route path=path!("/tasks") view=tasks::Tasks/>
                    <Route path=path!("/tasks/:uuid") view=tasks::TaskDetail/>
                    <Route path=path!("/types") view=pages::TaskTypes/>
                    <Route path=path!("/failures") view=failures::Failures/>
                    <Route path=path!("/alerts") view=alerts::Alerts/>
                    <Route path=path!("/audit") view=audit::Audit/>
                    <Route path=path!("/queues") view=queues::Queues/>
                </Routes>
            </main>
        </Router>
    }
}
