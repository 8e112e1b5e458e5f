//! Dashboard: the embedded WASM app (see `build.rs`), served precompressed
//! with cache headers, with the SPA fallback for deep links.
//!
//! Hashed files (`app-<hash>.js`) never change under their name and are
//! cached for a year; `index.html` is revalidated every time and names the
//! current hashes. Paths are seen with `--url-prefix` already stripped; the
//! page learns the prefix from the `<base>` element injected here.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;

/// One embedded file, with its precompressed variants when smaller.
pub struct Asset {
    pub path: &'static str,
    pub body: &'static [u8],
    pub gzip: Option<&'static [u8]>,
    pub brotli: Option<&'static [u8]>,
}

include!(concat!(env!("OUT_DIR"), "/dashboard_assets.rs"));

/// Where `index.html` carries the prefix-dependent `<base>`.
const HEAD_MARK: &str = "<!--celeriac-head-->";

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// `/`: the dashboard, or the plain status page when it was not built.
pub async fn index(State(shared): State<Arc<AppState>>) -> Response {
    match app_page(&shared) {
        Some(page) => page,
        None => super::index(State(shared)).await.into_response(),
    }
}

/// Everything no route matched: an embedded file, else the app's page for
/// deep links (`/tasks/<uuid>`), else 404 (JSON under `/api/`).
pub async fn fallback(
    State(shared): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path().trim_start_matches('/');
    let is_api = path == "api" || path.starts_with("api/");
    if !is_api {
        if let Some(asset) = find(path).filter(|a| a.path != "index.html") {
            return serve(asset, &headers);
        }
        if !looks_like_a_file(path) {
            if let Some(page) = app_page(&shared) {
                return page;
            }
        }
    }
    super::not_found(uri).await
}

/// Deep links are page paths; a missing `.js`/`.wasm`/... is a real 404
/// (worker names such as `w1@host.example` contain dots, so only known
/// asset extensions count).
fn looks_like_a_file(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or("");
    [
        ".js", ".wasm", ".css", ".map", ".ico", ".png", ".svg", ".json", ".txt",
    ]
    .iter()
    .any(|ext| last.ends_with(ext))
}

fn app_page(shared: &AppState) -> Option<Response> {
    let index = find("index.html")?;
    let html = std::str::from_utf8(index.body).unwrap_or_default();
    let prefix = super::html_escape(&shared.url_prefix);
    let head =
        format!("<base href=\"{prefix}/\"><meta name=\"celeriac-prefix\" content=\"{prefix}\">");
    let html = html.replacen(HEAD_MARK, &head, 1);
    Some(
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            html,
        )
            .into_response(),
    )
}

fn serve(asset: &'static Asset, headers: &HeaderMap) -> Response {
    let accepts = |enc: &str| {
        headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|v| v.split(';').next().unwrap_or("").trim() == enc)
    };
    let (body, encoding) = match (asset.brotli, asset.gzip) {
        (Some(br), _) if accepts("br") => (br, Some("br")),
        (_, Some(gz)) if accepts("gzip") => (gz, Some("gzip")),
        _ => (asset.body, None),
    };
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(mime(asset.path)),
    );
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    let cache = if is_hashed(asset.path) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Some(e) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(e));
    }
    response
}

/// `name-<16 hex digits>.ext`, as `cargo xtask` names built files.
fn is_hashed(path: &str) -> bool {
    let stem = path.split('.').next().unwrap_or("");
    stem.rsplit_once('-')
        .is_some_and(|(_, h)| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn mime(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_names_are_recognised() {
        assert!(is_hashed("app-0123456789abcdef.js"));
        assert!(is_hashed("app_bg-0123456789abcdef.wasm"));
        assert!(!is_hashed("index.html"));
        assert!(!is_hashed("app-123.js"));
    }

    #[test]
    fn deep_links_with_dots_are_pages() {
        assert!(!looks_like_a_file("workers/w1@host.example"));
        assert!(looks_like_a_file("app-0.js"));
        assert!(!looks_like_a_file("tasks/0f4c-uuid"));
    }
}
