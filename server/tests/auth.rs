//! Authentication, authorisation, CSRF and the audit log, against
//! the real binary. No worker is needed: `POST /api/control/enable_events` to every
//! worker is a control action that succeeds with no replies.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{Auth, Celeriac, TestVhost};

const OP_PASSWORD: &str = "op-Secret-7731";
const VIEW_PASSWORD: &str = "view-Secret-9917";
const TOKEN: &str = "tok-0123456789-abcdefghij";
const READ_TOKEN: &str = "rd-Tok-5566778899-qwerty";
const CONTROL_TOKEN: &str = "ctl-Tok-1122334455-asdfgh";
const FILE_TOKEN: &str = "file-Tok-9988776655-zxcvbn";

/// The audit name of a token: the first 8 hex digits of its SHA-256.
fn token_id(token: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(token.as_bytes());
    format!("token:{:02x}{:02x}{:02x}{:02x}", d[0], d[1], d[2], d[3])
}
const FILE_PASSWORD: &str = "file-Secret-4242";

const PING: &str = "/api/control/enable_events";
const PING_BODY: Option<&str> = Some(r#"{"timeout": 0.2}"#);

#[test]
fn roles_csrf_audit_and_no_secret_leaks() {
    let vhost = TestVhost::new("auth-roles");
    let users = vhost.log_dir.join("users");
    let hash = bcrypt::hash(FILE_PASSWORD, 4).unwrap();
    let digest: String = {
        use sha2::Digest;
        let d = sha2::Sha256::digest(FILE_TOKEN.as_bytes());
        d.iter().map(|b| format!("{b:02x}")).collect()
    };
    std::fs::write(
        &users,
        format!("# test users\nfile-op:{hash}:operator:sha256={digest}\n"),
    )
    .unwrap();
    let c = Celeriac::start(
        &vhost,
        &[
            "--basic-auth",
            &format!("ops:{OP_PASSWORD}"),
            "--viewer",
            &format!("view:{VIEW_PASSWORD}"),
            "--api-token",
            TOKEN,
            "--api-token",
            &format!("read:{READ_TOKEN}"),
            "--api-token",
            &format!("control:{CONTROL_TOKEN}"),
            "--users",
            users.to_str().unwrap(),
        ],
    );
    let op = Auth::Basic("ops", OP_PASSWORD);
    let viewer = Auth::Basic("view", VIEW_PASSWORD);
    let req = |method: &str, path: &str, auth: Auth, headers: &[(&str, &str)]| {
        let body = (method == "POST").then_some(PING_BODY).flatten();
        c.request(method, path, auth, headers, body)
    };
    let mut bodies = Vec::new();

    // Anonymous and wrong passwords: 401 with a Basic challenge.
    for path in ["/api/workers", "/api/tasks", "/metrics", "/"] {
        let (status, body) = req("GET", path, Auth::None, &[]);
        assert_eq!(status, 401, "GET {path}: {body}");
        bodies.push(body);
    }
    let (status, body) = req("POST", PING, Auth::None, &[]);
    assert_eq!(status, 401, "{body}");
    let (status, body) = req(
        "GET",
        "/api/workers",
        Auth::Basic("ops", "bad-Guess-5150"),
        &[],
    );
    assert_eq!(status, 401, "{body}");
    bodies.push(body);
    let (status, _) = req("GET", "/api/workers", Auth::Bearer("not-the-token"), &[]);
    assert_eq!(status, 401);
    // Health stays open.
    assert_eq!(req("GET", "/healthz", Auth::None, &[]).0, 200);
    assert_eq!(req("GET", "/healthcheck", Auth::None, &[]).0, 200);

    // A viewer reads but may not act.
    let (status, body) = req("GET", "/api/workers", viewer, &[]);
    assert_eq!(status, 200, "{body}");
    let (status, body) = req("POST", PING, viewer, &[]);
    assert_eq!(status, 403, "{body}");
    bodies.push(body);
    let (status, body) = req("POST", "/api/worker/shutdown/w@x", viewer, &[]);
    assert_eq!(status, 403, "{body}");
    let who: Value = serde_json::from_str(&req("GET", "/api/whoami", viewer, &[]).1).unwrap();
    assert_eq!(who["role"], "viewer");
    assert_eq!(who["may_control"], false);

    // A read-scoped token reads but may not act, whatever the route.
    let read = Auth::Bearer(READ_TOKEN);
    let (status, body) = req("GET", "/api/workers", read, &[]);
    assert_eq!(status, 200, "{body}");
    for path in [PING, "/api/worker/shutdown/w@x", "/api/task/retry/some-id"] {
        let (status, body) = req("POST", path, read, &[]);
        assert_eq!(status, 403, "POST {path}: {body}");
        let err: Value = serde_json::from_str(&body).unwrap();
        assert!(err["error"].is_string(), "{body}");
        bodies.push(body);
    }
    let (status, _) = req(
        "POST",
        PING,
        Auth::Bearer(&format!("read:{READ_TOKEN}")),
        &[],
    );
    assert_eq!(status, 401, "the scope prefix is not part of the token");

    // Operators act: Basic, a bare token (as before scopes), a control
    // token, and a users-file (bcrypt) user.
    for auth in [
        op,
        Auth::Bearer(TOKEN),
        Auth::Bearer(CONTROL_TOKEN),
        Auth::Basic("file-op", FILE_PASSWORD),
        Auth::Bearer(FILE_TOKEN),
    ] {
        let (status, body) = req("POST", PING, auth, &[]);
        assert_eq!(status, 200, "{auth:?}: {body}");
        bodies.push(body);
    }
    assert_eq!(
        req("POST", PING, Auth::Basic("file-op", "bad-Guess-5150"), &[]).0,
        401
    );

    // CSRF: another site's Origin, or Sec-Fetch-Site: cross-site, is refused
    // even for an operator; the same origin passes.
    let host = c.base.trim_start_matches("http://").to_string();
    let same = format!("http://{host}");
    let (status, body) = req("POST", PING, op, &[("origin", "https://evil.example")]);
    assert_eq!(status, 403, "{body}");
    let (status, body) = req("POST", PING, op, &[("sec-fetch-site", "cross-site")]);
    assert_eq!(status, 403, "{body}");
    let (status, body) = req(
        "POST",
        PING,
        op,
        &[("origin", same.as_str()), ("sec-fetch-site", "same-origin")],
    );
    assert_eq!(status, 200, "{body}");

    // The audit log names who did what; refused requests are not actions.
    let (status, body) = req("GET", "/api/audit", viewer, &[]);
    assert_eq!(status, 200, "{body}");
    let audit: Value = serde_json::from_str(&body).unwrap();
    let users: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["user"].as_str().unwrap())
        .collect();
    let (bare, control) = (token_id(TOKEN), token_id(CONTROL_TOKEN));
    let file_token = format!("file-op ({})", token_id(FILE_TOKEN));
    assert_eq!(
        users,
        [
            "ops",
            file_token.as_str(),
            "file-op",
            control.as_str(),
            bare.as_str(),
            "ops"
        ],
        "{audit}"
    );
    assert_eq!(audit["entries"][0]["command"], "enable_events");
    bodies.push(body);

    // No secret in any response or log line.
    std::thread::sleep(Duration::from_millis(200));
    let log = c.log();
    assert!(
        log.contains("authentication failed"),
        "failed logins are logged"
    );
    for secret in [
        OP_PASSWORD,
        VIEW_PASSWORD,
        TOKEN,
        READ_TOKEN,
        CONTROL_TOKEN,
        FILE_TOKEN,
        FILE_PASSWORD,
        "bad-Guess-5150",
    ] {
        assert!(!log.contains(secret), "the log contains {secret}");
        for body in &bodies {
            assert!(
                !body.contains(secret),
                "a response contains {secret}: {body}"
            );
        }
    }
}

#[test]
fn read_only_refuses_control_and_open_mode_serves_everything() {
    let vhost = TestVhost::new("auth-read-only");
    let c = Celeriac::start(
        &vhost,
        &[
            "--basic-auth",
            &format!("ops:{OP_PASSWORD}"),
            "--read-only",
            "--open-metrics",
        ],
    );
    let op = Auth::Basic("ops", OP_PASSWORD);
    let (status, body) = c.request("POST", PING, op, &[], PING_BODY);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Read only mode is enabled"), "{body}");
    assert_eq!(c.request("GET", "/metrics", Auth::None, &[], None).0, 200);
    assert_eq!(c.request("GET", "/api/workers", op, &[], None).0, 200);
    drop(c);

    // No users: everything is served to anyone, with a loud warning, but a
    // cross-site control request is still refused.
    let c = Celeriac::start(&vhost, &[]);
    let (status, body) = c.request("POST", PING, Auth::None, &[], PING_BODY);
    assert_eq!(status, 200, "{body}");
    let (status, _) = c.request(
        "POST",
        PING,
        Auth::None,
        &[("origin", "https://evil.example")],
        PING_BODY,
    );
    assert_eq!(status, 403);
    support::eventually("the no-auth warning", Duration::from_secs(5), || {
        c.log().contains("NO AUTHENTICATION").then_some(())
    });
}
