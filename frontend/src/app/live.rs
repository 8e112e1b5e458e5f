//! The websocket: connects, applies messages to the model, shows its state,
//! and reconnects with capped exponential backoff (a snapshot on every
//! connect resynchronises the page).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use api::ws::WsMessage;
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

use crate::model::Model;

#[derive(Debug, Clone, PartialEq)]
pub enum Conn {
    Connecting,
    Live,
    /// Lost; the next attempt is in this many milliseconds.
    Down(u32),
}

fn url() -> String {
    let loc = window().location();
    let proto = if loc.protocol().unwrap_or_default() == "https:" {
        "wss:"
    } else {
        "ws:"
    };
    let host = loc.host().unwrap_or_default();
    format!("{proto}//{host}{}/ws", super::util::prefix())
}

pub fn connect(model: RwSignal<Model>, conn: RwSignal<Conn>) {
    open(model, conn, Rc::new(Cell::new(0)));
}

fn open(model: RwSignal<Model>, conn: RwSignal<Conn>, failures: Rc<Cell<u32>>) {
    conn.set(Conn::Connecting);
    let retry = {
        let failures = failures.clone();
        move || {
            let n = failures.get() + 1;
            failures.set(n);
            let delay = (250u32 << n.min(5)).min(5_000);
            conn.set(Conn::Down(delay));
            let failures = failures.clone();
            set_timeout(
                move || open(model, conn, failures),
                Duration::from_millis(delay as u64),
            );
        }
    };
    let ws = match WebSocket::new(&url()) {
        Ok(ws) => ws,
        Err(_) => return retry(),
    };
    let f = failures.clone();
    let onopen = Closure::<dyn FnMut()>::new(move || {
        f.set(0);
        conn.set(Conn::Live);
    });
    let onmessage = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
        let Some(text) = e.data().as_string() else {
            return;
        };
        match serde_json::from_str::<WsMessage>(&text) {
            Ok(msg) => model.update(|m| m.apply(msg)),
            Err(err) => web_sys::console::warn_1(&format!("celeriac: bad message: {err}").into()),
        }
    });
    let mut retry = Some(retry);
    let onclose = Closure::<dyn FnMut(CloseEvent)>::new(move |_: CloseEvent| {
        if let Some(r) = retry.take() {
            r();
        }
    });
    ws.set_onopen(Some(onopen.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    ws.set_onclose(Some(onclose.as_ref().unchecked_ref()));
    onopen.forget();
    onmessage.forget();
    onclose.forget();
}

#[component]
pub fn ConnBadge() -> impl IntoView {
    let conn = expect_context::<RwSignal<Conn>>();
    let model = expect_context::<RwSignal<Model>>();
    move || {
        let consuming = model.with(|m| m.ingest.consuming);
        let synced = model.with(|m| m.synced);
        match conn.get() {
            Conn::Live if synced && !consuming => view! {
                <span class="badge warn" data-conn="live" title=move || model.with(|m| m.ingest.last_error.clone().unwrap_or_default())>
                    "live · broker down"
                </span>
            }
            .into_any(),
            Conn::Live => view! { <span class="badge ok" data-conn="live">"● live"</span> }.into_any(),
            Conn::Connecting => view! { <span class="badge" data-conn="connecting">"connecting…"</span> }.into_any(),
            Conn::Down(ms) => view! {
                <span class="badge bad" data-conn="down">
                    {format!("disconnected · retrying in {:.1} s", ms as f64 / 1000.0)}
                </span>
            }
            .into_any(),
        }
    }
}
