//! Small browser helpers: the URL prefix, links, times, theme, clipboard.

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use crate::model::{relative, Model};

/// `--url-prefix`, as the server wrote it into `index.html`.
pub fn prefix() -> String {
    document()
        .query_selector("meta[name=celeriac-prefix]")
        .ok()
        .flatten()
        .and_then(|m| m.get_attribute("content"))
        .unwrap_or_default()
}

/// An in-app link under the prefix.
pub fn href(path: &str) -> String {
    format!("{}{}", prefix(), path)
}

/// A POST that carries the session's CSRF token (`X-CSRF-Token`) when the
/// user signed in with OpenID Connect; every control request goes through
/// here. Basic and token users have no such cookie and need no header.
pub fn post(url: &str) -> gloo_net::http::RequestBuilder {
    let req = gloo_net::http::Request::post(url);
    match csrf_token() {
        Some(token) => req.header("X-CSRF-Token", &token),
        None => req,
    }
}

/// The answer of a `GET` of JSON at `url()`, asked at once, again every
/// `every` and whenever a signal `url` reads changes, for as long as the
/// calling component lives; `None` until the first answer. An answer equal
/// to the last one changes nothing, and one that arrives after the
/// component is gone is dropped.
pub fn poll_json<T>(
    url: impl Fn() -> String + Copy + Send + Sync + 'static,
    every: std::time::Duration,
    what: &'static str,
) -> RwSignal<Option<Result<T, String>>>
where
    T: serde::de::DeserializeOwned + PartialEq + Send + Sync + 'static,
{
    let data = RwSignal::new(None);
    let load = move |url: String| {
        leptos::task::spawn_local(async move {
            let next = Some(get_json::<T>(&url, what).await);
            if data.try_with_untracked(|d| *d != next) == Some(true) {
                let _ = data.try_set(next);
            }
        })
    };
    Effect::new(move |_| load(url()));
    let handle = set_interval_with_handle(move || load(untrack(url)), every).ok();
    on_cleanup(move || {
        if let Some(h) = handle {
            h.clear();
        }
    });
    data
}

/// A GET of JSON; a failed request, a non-2xx answer (`{what} answered
/// {status}`) or an unreadable body is the error.
pub async fn get_json<T: serde::de::DeserializeOwned>(url: &str, what: &str) -> Result<T, String> {
    let resp = gloo_net::http::Request::get(url)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.ok() {
        return Err(format!("{what} answered {}", resp.status()));
    }
    resp.json().await.map_err(|e| e.to_string())
}

/// Sends a control request that answers nothing worth reading; a non-2xx
/// answer is the error `{what} answered {status}: {body}`.
pub async fn send_ok(request: gloo_net::http::Request, what: &str) -> Result<(), String> {
    let resp = request.send().await.map_err(|e| e.to_string())?;
    if resp.ok() {
        Ok(())
    } else {
        let body = resp.text().await.unwrap_or_default();
        Err(format!("{what} answered {}: {body}", resp.status()))
    }
}

/// The session's CSRF token, from the `celeriac_csrf` cookie.
pub fn csrf_token() -> Option<String> {
    use wasm_bindgen::JsCast;
    let doc = web_sys::window()?
        .document()?
        .dyn_into::<web_sys::HtmlDocument>()
        .ok()?;
    crate::model::control::csrf_token(&doc.cookie().ok()?)
}

pub fn enc(s: &str) -> String {
    js_sys::encode_uri_component(s).into()
}

/// `path?k=v&...` with the values encoded; just `path` without pairs. A
/// page's filters live in its URL, so a view can be shared.
pub fn with_query(path: &str, pairs: &[(&str, String)]) -> String {
    let qs: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    if qs.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", qs.join("&"))
    }
}

/// The arrow a sortable column's header shows: `sort` is the page's sort
/// parameter (`key`, or `-key` for descending).
pub fn sort_mark(sort: &str, key: &str) -> &'static str {
    if sort == key {
        " ▲"
    } else if sort.strip_prefix('-') == Some(key) {
        " ▼"
    } else {
        ""
    }
}

/// Navigation that rewrites the current history entry and keeps the
/// scroll position: for filter and sort changes, not for moving between
/// pages.
pub fn in_place() -> leptos_router::NavigateOptions {
    leptos_router::NavigateOptions {
        replace: true,
        scroll: false,
        ..Default::default()
    }
}

/// Absolute local time for tooltips.
pub fn absolute(t: f64) -> String {
    let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(t * 1000.0));
    String::from(d.to_locale_string("sv-SE", &wasm_bindgen::JsValue::UNDEFINED))
}

/// A relative time with the absolute one on hover.
#[component]
pub fn Ago(t: Option<f64>) -> impl IntoView {
    let model = expect_context::<RwSignal<Model>>();
    match t {
        None => view! { <span class="dim">"–"</span> }.into_any(),
        Some(t) => view! {
            <time title=absolute(t)>{move || relative(model.with(|m| m.now) - t)}</time>
        }
        .into_any(),
    }
}

pub fn initial_theme() -> String {
    let stored = window()
        .local_storage()
        .ok()
        .flatten()
        .and_then(|s| s.get_item("celeriac-theme").ok().flatten());
    stored.unwrap_or_else(|| {
        let dark = window()
            .match_media("(prefers-color-scheme: dark)")
            .ok()
            .flatten()
            .is_some_and(|m| m.matches());
        if dark { "dark" } else { "light" }.to_owned()
    })
}

pub fn apply_theme(theme: &str) {
    if let Some(root) = document().document_element() {
        let _ = root.set_attribute("data-theme", theme);
    }
    if let Some(s) = window().local_storage().ok().flatten() {
        let _ = s.set_item("celeriac-theme", theme);
    }
}

pub fn copy(text: &str) {
    let _ = window().navigator().clipboard().write_text(text);
}

pub fn input_value(ev: &web_sys::Event) -> String {
    ev.target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
        .map(|i| i.value())
        .or_else(|| {
            ev.target()
                .and_then(|t| t.dyn_into::<web_sys::HtmlSelectElement>().ok())
                .map(|s| s.value())
        })
        .unwrap_or_default()
}
