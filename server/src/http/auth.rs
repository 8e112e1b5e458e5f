//! The authentication and authorisation middleware, in front of
//! every route:
//!
//! - With no users or tokens configured everything is served to everyone
//!   (celeriac warns loudly at start-up); control still obeys
//!   `--read-only` and the cross-site checks below.
//! - Otherwise a request without valid credentials (Basic, Bearer, or the
//!   session cookie of an OpenID Connect sign-in) gets 401 with
//!   `WWW-Authenticate: Basic`, except `/healthz`, `/readyz`,
//!   `/healthcheck`, `/metrics` with `--open-metrics`, and the sign-in
//!   routes. With sign-in configured, a browser asking for a page (GET,
//!   `Accept: text/html`) is sent to `/login` instead.
//! - A control request from a session must also carry the session's CSRF
//!   token in `X-CSRF-Token` (the `celeriac_csrf` cookie's value): a
//!   cookie is sent by the browser whoever made the page, a header only by
//!   celeriac's own script. Basic and token requests need no token. The
//!   websocket is refused to a session when it comes from another site.
//! - A control request (any method but GET, HEAD, OPTIONS) is refused with
//!   403 in read-only mode, for a viewer, and when it comes from another
//!   site: browsers cache Basic credentials, so a page elsewhere could
//!   otherwise make an operator's browser act (CSRF). "Another site" is an
//!   `Origin` whose host is not the request's `Host`, or
//!   `Sec-Fetch-Site: cross-site`. Scripts (curl) send neither and pass.
//!
//! Credentials are never logged; a failed login logs the user name only.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::errors::HttpError;
use crate::app::AppState;
use crate::auth::session::{cookie, SessionClaims, CSRF_HEADER, SESSION_COOKIE};
use crate::auth::{presented, Presented, Principal, Role};

/// Paths served without credentials (under the URL prefix).
const OPEN_PATHS: &[&str] = &["/healthz", "/readyz", "/healthcheck"];

pub async fn middleware(
    State(shared): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let auth = &shared.ops.auth;
    // Inside the prefix the router has already stripped it.
    let path = req.uri().path().to_string();
    let path = path.as_str();
    let callback = super::oidc::callback_route(&shared);
    // Signing in and out needs no credentials (sign-out checks its own).
    let sign_in_path = shared.oidc.is_some()
        && (path == "/login" || path == "/logout" || callback.as_deref() == Some(path));
    let open =
        OPEN_PATHS.contains(&path) || (path == "/metrics" && auth.open_metrics) || sign_in_path;
    let mut session: Option<SessionClaims> = None;

    let has_authorization = req.headers().contains_key(header::AUTHORIZATION);
    let session_cookie = req
        .headers()
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| cookie(c, SESSION_COOKIE))
        .map(str::to_string);

    let principal = if !auth.enabled() {
        Principal::anonymous()
    } else if let (false, Some(c), true) =
        (has_authorization, session_cookie, shared.oidc.is_some())
    {
        match shared.sessions.open(&c, crate::clock::now() as u64) {
            Ok(claims) => {
                let p = claims.principal();
                session = Some(claims);
                p
            }
            Err(e) => {
                tracing::info!(path, "session not accepted: {e}");
                if open {
                    return next.run(req).await;
                }
                return no_credentials(&shared, &req, &format!("Session not accepted: {e}"));
            }
        }
    } else {
        let header = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match presented(header) {
            Some(p) => match auth.authenticate(&p).await {
                Some(principal) => principal,
                None => {
                    if let Presented::Basic { user, .. } = &p {
                        tracing::info!(user = %user, path, "authentication failed");
                    } else {
                        tracing::info!(path, "authentication failed (bearer token)");
                    }
                    if open {
                        return next.run(req).await;
                    }
                    return unauthorized("Invalid credentials");
                }
            },
            None if open => return next.run(req).await,
            None => return no_credentials(&shared, &req, "Authentication required"),
        }
    };

    if let Some(claims) = &session {
        if let Some(refused) = session_checks(&shared, &req, claims, path, sign_in_path) {
            tracing::warn!(user = %principal.name, path, "refused a session request");
            return refused;
        }
    }
    if is_control(req.method()) && !sign_in_path {
        if let Some(why) = cross_site(req.headers()) {
            tracing::warn!(user = %principal.name, path, "refused a cross-site control request ({why})");
            return HttpError::new(
                StatusCode::FORBIDDEN,
                format!("Cross-site control request refused ({why})"),
            )
            .into_response();
        }
        if auth.read_only {
            return HttpError::new(StatusCode::FORBIDDEN, "Read only mode is enabled")
                .into_response();
        }
        if principal.role != Role::Operator {
            return HttpError::new(
                StatusCode::FORBIDDEN,
                format!("User '{}' may not control workers (viewer)", principal.name),
            )
            .into_response();
        }
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// What a session-authenticated request must pass beyond the role: the
/// websocket from this site only; control with the session's CSRF token.
fn session_checks(
    shared: &AppState,
    req: &Request,
    claims: &SessionClaims,
    path: &str,
    sign_in_path: bool,
) -> Option<Response> {
    let headers = req.headers();
    if path == "/ws" {
        if let Some(why) = cross_site(headers) {
            return Some(
                HttpError::new(
                    StatusCode::FORBIDDEN,
                    format!("Cross-site websocket refused ({why})"),
                )
                .into_response(),
            );
        }
    }
    if is_control(req.method()) && !sign_in_path {
        let token = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        let reason = match token {
            None => Some("missing"),
            Some(t) if !shared.sessions.csrf_ok(&claims.sid, t) => Some("wrong"),
            Some(_) => None,
        };
        if let Some(reason) = reason {
            return Some(
                HttpError::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "CSRF token {reason}: a control request from a signed-in browser needs the X-CSRF-Token header (the value of the celeriac_csrf cookie)"
                    ),
                )
                .into_response(),
            );
        }
    }
    None
}

/// A request without credentials: browsers asking for a page go to
/// `/login` when sign-in is configured, everything else gets 401.
fn no_credentials(shared: &AppState, req: &Request, message: &str) -> Response {
    let wants_page = req.method() == Method::GET
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
    if shared.oidc.is_some() && wants_page {
        let prefix = shared.url_prefix.as_str();
        let path = req.uri().path();
        // The prefixed index is routed outside the nest, prefix and all.
        let path = path
            .strip_prefix(prefix)
            .filter(|p| !prefix.is_empty() && p.starts_with('/'))
            .unwrap_or(path);
        let back = match req.uri().query() {
            Some(q) => format!("{path}?{q}"),
            None => path.to_string(),
        };
        let next: String = url_encode(&back);
        let location = format!("{prefix}/login?next={next}");
        return (StatusCode::FOUND, [(header::LOCATION, location)]).into_response();
    }
    // With sign-in, a Basic challenge would make browsers prompt for a
    // password: not for a session that ended (the dashboard's requests
    // would pop a dialog), nor when nobody has a password.
    let had_session = req
        .headers()
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| cookie(c, SESSION_COOKIE).is_some());
    if shared.oidc.is_some() && (had_session || !shared.ops.auth.has_passwords()) {
        let mut resp = HttpError::new(StatusCode::UNAUTHORIZED, message).into_response();
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"celeriac\""),
        );
        return resp;
    }
    unauthorized(message)
}

fn url_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn is_control(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn unauthorized(message: &str) -> Response {
    let mut resp = HttpError::new(StatusCode::UNAUTHORIZED, message).into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"celeriac\", charset=\"UTF-8\""),
    );
    resp
}

/// Why a request comes from another site, if it does.
pub fn cross_site(headers: &HeaderMap) -> Option<&'static str> {
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    if fetch_site.is_some_and(|s| s.eq_ignore_ascii_case("cross-site")) {
        return Some("Sec-Fetch-Site: cross-site");
    }
    let origin = headers.get(header::ORIGIN)?;
    let Ok(origin) = origin.to_str() else {
        return Some("unreadable Origin");
    };
    let origin = origin.trim();
    if origin.eq_ignore_ascii_case("null") {
        return Some("Origin: null");
    }
    let authority = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'))
        .unwrap_or("");
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match host {
        Some(h) if !authority.is_empty() && h.trim().eq_ignore_ascii_case(authority) => None,
        _ => Some("Origin is another site"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    fn make_app(args: &[&str]) -> axum::Router {
        super::super::router(Arc::new(crate::test_app(args)))
    }

    async fn status(app: &axum::Router, method: &str, path: &str, headers: &[(&str, &str)]) -> u16 {
        let mut req = axum::http::Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        if resp.status() == StatusCode::UNAUTHORIZED {
            assert!(resp.headers().contains_key(header::WWW_AUTHENTICATE));
        }
        resp.status().as_u16()
    }

    #[tokio::test]
    async fn roles_and_open_paths() {
        use base64::Engine;
        let b64 = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        let (op, viewer, bad) = (b64("ann:pw-ann"), b64("vic:pw-vic"), b64("ann:nope"));
        let app = make_app(&["--basic-auth", "ann:pw-ann", "--viewer", "vic:pw-vic"]);
        assert_eq!(status(&app, "GET", "/api/workers", &[]).await, 401);
        assert_eq!(
            status(&app, "GET", "/api/workers", &[("authorization", &bad)]).await,
            401
        );
        assert_eq!(status(&app, "GET", "/healthz", &[]).await, 200);
        assert_eq!(status(&app, "GET", "/metrics", &[]).await, 401);
        assert_eq!(
            status(&app, "GET", "/api/workers", &[("authorization", &viewer)]).await,
            200
        );
        // Control: an unknown command answers 404 only once auth let it through.
        let ctl = "/api/control/no_such_command";
        assert_eq!(
            status(&app, "POST", ctl, &[("authorization", &viewer)]).await,
            403
        );
        assert_eq!(
            status(&app, "POST", ctl, &[("authorization", &op)]).await,
            404
        );
        let evil = [
            ("authorization", op.as_str()),
            ("origin", "https://evil.example"),
        ];
        assert_eq!(status(&app, "POST", ctl, &evil).await, 403);

        let open = make_app(&[
            "--basic-auth",
            "ann:pw-ann",
            "--open-metrics",
            "--read-only",
        ]);
        assert_eq!(status(&open, "GET", "/metrics", &[]).await, 200);
        assert_eq!(
            status(&open, "POST", ctl, &[("authorization", &op)]).await,
            403
        );

        // No users: anonymous everything, still no cross-site control.
        let anon = make_app(&[]);
        assert_eq!(status(&anon, "GET", "/api/workers", &[]).await, 200);
        assert_eq!(status(&anon, "POST", ctl, &[]).await, 404);
        assert_eq!(
            status(&anon, "POST", ctl, &[("sec-fetch-site", "cross-site")]).await,
            403
        );
    }

    #[tokio::test]
    async fn the_prefixed_index_is_protected_too() {
        let app = make_app(&["--basic-auth", "ann:pw-ann", "--url-prefix", "/flower"]);
        assert_eq!(status(&app, "GET", "/flower/", &[]).await, 401);
        assert_eq!(status(&app, "GET", "/flower/api/workers", &[]).await, 401);
        assert_eq!(status(&app, "GET", "/flower/healthz", &[]).await, 200);
    }

    async fn me(app: &axum::Router, authorization: Option<&str>) -> api::control::Me {
        let mut req = axum::http::Request::builder().uri("/api/me");
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        let resp = app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    #[tokio::test]
    async fn me_tells_the_dashboard_who_may_act() {
        use api::control::{Me, MeRole};
        use base64::Engine;
        let b64 = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        let me_as = |user: &str, role, auth_enabled, read_only, can_control| Me {
            user: user.into(),
            role,
            auth_enabled,
            read_only,
            can_control,
            session: false,
            email: None,
        };
        let app = make_app(&["--basic-auth", "ann:pw-ann", "--viewer", "vic:pw-vic"]);
        assert_eq!(
            me(&app, Some(&b64("ann:pw-ann"))).await,
            me_as("ann", MeRole::Operator, true, false, true)
        );
        assert_eq!(
            me(&app, Some(&b64("vic:pw-vic"))).await,
            me_as("vic", MeRole::Viewer, true, false, false)
        );
        // Anonymous with auth configured never gets this far.
        assert_eq!(status(&app, "GET", "/api/me", &[]).await, 401);

        let ro = make_app(&["--basic-auth", "ann:pw-ann", "--read-only"]);
        assert_eq!(
            me(&ro, Some(&b64("ann:pw-ann"))).await,
            me_as("ann", MeRole::Operator, true, true, false)
        );

        let open = make_app(&[]);
        assert_eq!(
            me(&open, None).await,
            me_as("anonymous", MeRole::Anonymous, false, false, true)
        );
        let open_ro = make_app(&["--read-only"]);
        assert!(!me(&open_ro, None).await.can_control);
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn cross_site_rules() {
        assert_eq!(cross_site(&headers(&[("host", "127.0.0.1:5555")])), None);
        assert_eq!(
            cross_site(&headers(&[
                ("host", "127.0.0.1:5555"),
                ("origin", "http://127.0.0.1:5555")
            ])),
            None
        );
        assert!(cross_site(&headers(&[
            ("host", "127.0.0.1:5555"),
            ("origin", "https://evil.example")
        ]))
        .is_some());
        assert!(cross_site(&headers(&[("host", "a"), ("origin", "null")])).is_some());
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")])).is_some());
        assert_eq!(
            cross_site(&headers(&[("sec-fetch-site", "same-origin")])),
            None
        );
    }
}
