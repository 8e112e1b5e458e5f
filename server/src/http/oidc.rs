//! Signing in and out with OpenID Connect: `GET /login` sends the browser
//! to the provider, the callback (the path of `--oidc-redirect-url`) turns
//! a validated ID token into a session cookie, `POST /logout` ends it.
//!
//! Cookies, all `SameSite=Lax` under the URL prefix, `Secure` when the
//! browser uses https (`--oidc-redirect-url` is https, or
//! `--trust-proxy-headers` and `X-Forwarded-Proto: https`):
//! - `celeriac_login`: the sign-in's `state`, signed, ten minutes. The
//!   callback must come back to the browser that started it (login CSRF).
//! - `celeriac_session`: the session (`auth::session`), HttpOnly.
//! - `celeriac_csrf`: the session's CSRF token, readable by the dashboard,
//!   which echoes it in `X-CSRF-Token`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::app::AppState;
use crate::auth::session::{cookie, CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE};
use crate::oidc::{OidcError, PENDING_TTL};

pub const LOGIN_COOKIE: &str = "celeriac_login";

/// The sign-in routes (none without `--oidc-issuer`). `callback` is the
/// redirect URL's path inside the prefix.
pub fn routes(callback: Option<&str>) -> Router<Arc<AppState>> {
    match callback {
        None => Router::new(),
        Some(callback) => Router::new()
            .route("/login", get(login))
            .route(callback, get(finish))
            .route("/logout", post(logout)),
    }
}

/// Refuses a callback path (inside the prefix) that another route serves
/// or that the router would read as a pattern: the router cannot hold two
/// routes for one path.
pub fn check_callback(path: &str) -> Result<(), String> {
    const TAKEN: &[&str] = &[
        "/",
        "/ws",
        "/login",
        "/logout",
        "/metrics",
        "/healthz",
        "/readyz",
        "/healthcheck",
        "/broker",
    ];
    const TAKEN_UNDER: &[&str] = &["/api/", "/task/", "/worker/"];
    if TAKEN.contains(&path)
        || TAKEN_UNDER.iter().any(|p| path.starts_with(p))
        || path.contains(['{', '}', '*'])
    {
        return Err(format!(
            "--oidc-redirect-url: celeriac serves something else at {path}; use a path of its own, e.g. /login/callback"
        ));
    }
    Ok(())
}

/// The callback's path as the router sees it (the prefix stripped).
pub fn callback_route(app: &AppState) -> Option<String> {
    let oidc = app.oidc.as_ref()?;
    let path = oidc.callback_path();
    Some(
        path.strip_prefix(app.url_prefix.as_str())
            .filter(|p| p.starts_with('/'))
            .unwrap_or(path)
            .to_string(),
    )
}

/// Whether the browser reached celeriac over https.
pub fn secure(app: &AppState, headers: &HeaderMap) -> bool {
    let https_redirect = app.oidc.as_ref().is_some_and(|o| o.https());
    let forwarded = app.trust_proxy_headers
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    https_redirect || forwarded
}

/// A `Set-Cookie` value. `max_age` 0 deletes the cookie.
fn set_cookie(
    app: &AppState,
    headers: &HeaderMap,
    name: &str,
    value: &str,
    max_age: u64,
    http_only: bool,
) -> HeaderValue {
    let path = if app.url_prefix.is_empty() {
        "/"
    } else {
        app.url_prefix.as_str()
    };
    let mut c = format!("{name}={value}; Path={path}; Max-Age={max_age}; SameSite=Lax");
    if http_only {
        c.push_str("; HttpOnly");
    }
    if secure(app, headers) {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A relative path inside celeriac to return to after signing in; anything
/// else (another site, `//host`) returns to the dashboard.
pub fn safe_return(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

/// A small HTML page (sign-in errors, refusals, signed out).
fn page(app: &AppState, status: StatusCode, title: &str, text: &str, testid: &str) -> Response {
    let login = format!("{}/login", super::html_escape(&app.url_prefix));
    let body = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>celeriac: {t}</title></head>\n\
         <body><h1>{t}</h1>\n<p data-testid=\"{testid}\">{x}</p>\n\
         <p><a href=\"{login}\">Sign in</a></p>\n</body></html>\n",
        t = super::html_escape(title),
        x = super::html_escape(text),
    );
    (status, Html(body)).into_response()
}

#[derive(serde::Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

/// `GET /login`: to the provider.
async fn login(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let Some(oidc) = app.oidc.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match oidc.begin(safe_return(q.next.as_deref())).await {
        Ok(start) => {
            let signed = app.sessions.sign("login", &start.state);
            let mut resp = (StatusCode::FOUND, [(header::LOCATION, start.url)]).into_response();
            resp.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(
                    &app,
                    &headers,
                    LOGIN_COOKIE,
                    &signed,
                    PENDING_TTL.as_secs(),
                    true,
                ),
            );
            resp
        }
        Err(e) => {
            tracing::warn!("sign-in unavailable: {e}");
            page(
                &app,
                StatusCode::BAD_GATEWAY,
                "Sign-in unavailable",
                &e.to_string(),
                "signin-error",
            )
        }
    }
}

#[derive(serde::Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    /// RFC 9207: the issuer that answers, against mix-ups between
    /// providers.
    iss: Option<String>,
}

/// The callback: validates, maps the role, opens the session.
async fn finish(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Some(oidc) = app.oidc.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let fail = |status, e: &str| page(&app, status, "Sign-in failed", e, "signin-error");
    if let Some(error) = &q.error {
        let detail = q.error_description.as_deref().unwrap_or_default();
        let e = OidcError::Provider(format!("{error} {detail}").trim().to_string());
        tracing::info!("sign-in failed: {e}");
        return fail(StatusCode::UNAUTHORIZED, &e.to_string());
    }
    if let Some(iss) = &q.iss {
        let expected = oidc.settings.issuer.as_str();
        if iss.trim_end_matches('/') != expected.trim_end_matches('/') {
            tracing::warn!(iss = %iss, "sign-in failed: the answer names another issuer");
            return fail(
                StatusCode::BAD_REQUEST,
                &format!("the answer comes from issuer {iss}, not {expected}"),
            );
        }
    }
    let (Some(code), Some(state)) = (q.code.as_deref(), q.state.as_deref()) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "the callback needs the `code` and `state` parameters",
        );
    };
    // The state must be the one this browser was given at /login.
    let cookies = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let started_here = cookie(cookies, LOGIN_COOKIE)
        .and_then(|c| app.sessions.verify("login", c))
        .is_some_and(|s| s == state);
    if !started_here {
        tracing::info!("sign-in failed: the callback's state was not issued to this browser");
        return fail(
            StatusCode::BAD_REQUEST,
            "this sign-in did not start in this browser (or took over ten minutes)",
        );
    }
    let (identity, return_to) = match oidc.finish(state, code).await {
        Ok(ok) => ok,
        Err(e) => {
            tracing::warn!("sign-in failed: {e}");
            return fail(StatusCode::UNAUTHORIZED, &e.to_string());
        }
    };
    let name = identity.display_name();
    let Some(role) = oidc.role(&identity) else {
        tracing::info!(user = %name, sub = %identity.subject, groups = ?identity.groups,
            "signed in but not allowed (not in --oidc-operators or --oidc-viewers)");
        let mut resp = page(
            &app,
            StatusCode::FORBIDDEN,
            "Not allowed",
            &format!("Signed in as {name}, but not allowed to use celeriac."),
            "not-allowed",
        );
        let clear = set_cookie(&app, &headers, LOGIN_COOKIE, "", 0, true);
        resp.headers_mut().append(header::SET_COOKIE, clear);
        return resp;
    };
    let now = crate::clock::now() as u64;
    let claims = app.sessions.claims(
        identity.subject.clone(),
        identity.email.clone(),
        name.clone(),
        role,
        now,
    );
    tracing::info!(user = %name, sub = %identity.subject, role = role.as_str(), "signed in");
    let ttl = app.sessions.ttl.as_secs();
    let location = format!("{}{}", app.url_prefix, return_to);
    let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
    let h = resp.headers_mut();
    let session = app.sessions.seal(&claims);
    let csrf = app.sessions.csrf_token(&claims.sid);
    h.append(
        header::SET_COOKIE,
        set_cookie(&app, &headers, SESSION_COOKIE, &session, ttl, true),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(&app, &headers, CSRF_COOKIE, &csrf, ttl, false),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(&app, &headers, LOGIN_COOKIE, "", 0, true),
    );
    resp
}

/// `POST /logout`: ends the session (it stays refused until it would
/// have expired) and clears the cookies. The CSRF token comes in
/// `X-CSRF-Token` or as the form field `csrf_token`, so both a script and
/// a plain form can sign out.
async fn logout(State(app): State<Arc<AppState>>, headers: HeaderMap, body: String) -> Response {
    let now = crate::clock::now() as u64;
    let cookies = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if let Some(Ok(claims)) = cookie(cookies, SESSION_COOKIE).map(|c| app.sessions.open(c, now)) {
        let form: HashMap<String, String> = serde_urlencoded::from_str(&body).unwrap_or_default();
        let token = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .or(form.get("csrf_token").map(String::as_str))
            .unwrap_or_default();
        if !app.sessions.csrf_ok(&claims.sid, token) {
            return super::HttpError::new(
                StatusCode::FORBIDDEN,
                "Sign-out refused: the CSRF token (X-CSRF-Token or csrf_token) is missing or wrong",
            )
            .into_response();
        }
        if !app.sessions.revoke(&claims, now) {
            return super::HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-out failed: too many sessions signed out recently; try again later",
            )
            .into_response();
        }
        tracing::info!(user = %claims.name, sub = %claims.sub, "signed out");
    }
    let mut resp = page(
        &app,
        StatusCode::OK,
        "Signed out",
        "You are signed out of celeriac.",
        "signed-out",
    );
    let h = resp.headers_mut();
    for (name, http_only) in [(SESSION_COOKIE, true), (CSRF_COOKIE, false)] {
        h.append(
            header::SET_COOKIE,
            set_cookie(&app, &headers, name, "", 0, http_only),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callback_needs_a_path_of_its_own() {
        assert!(check_callback("/login/callback").is_ok());
        assert!(check_callback("/oauth2/callback").is_ok());
        for taken in ["/login", "/api/workers", "/", "/task/x", "/cb/{x}"] {
            assert!(check_callback(taken).is_err(), "{taken}");
        }
    }

    #[test]
    fn only_local_paths_are_returned_to() {
        assert_eq!(
            safe_return(Some("/tasks?state=FAILURE")),
            "/tasks?state=FAILURE"
        );
        assert_eq!(safe_return(Some("//evil.example/x")), "/");
        assert_eq!(safe_return(Some("https://evil.example/")), "/");
        assert_eq!(safe_return(Some("/\\evil.example")), "/");
        assert_eq!(safe_return(None), "/");
    }

    #[test]
    fn cookies_are_secure_behind_a_trusted_https_proxy() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let plain = crate::test_app(&[]);
        assert!(!secure(&plain, &headers));
        let c = set_cookie(&plain, &headers, "n", "v", 60, true);
        assert_eq!(c, "n=v; Path=/; Max-Age=60; SameSite=Lax; HttpOnly");
        let trusted = crate::test_app(&["--trust-proxy-headers", "--url-prefix", "/flower"]);
        assert!(secure(&trusted, &headers));
        assert!(!secure(&trusted, &HeaderMap::new()));
        let c = set_cookie(&trusted, &headers, "n", "v", 60, false);
        assert_eq!(c, "n=v; Path=/flower; Max-Age=60; SameSite=Lax; Secure");
    }
}
