//! Secrets kept out of sight, against a real Celery worker: a task sent with
//! `password=` shows the mask, never the value, in every answer that
//! carries task text (info, search, export, metrics) and the log; re-running
//! it from the masked record is refused; with `--hide-args` a viewer sees no
//! args or kwargs while an operator does.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{eventually, Auth, Celeriac, TestVhost, Worker, WorkerOpts};

const WAIT: Duration = Duration::from_secs(30);
const OP: Auth<'static> = Auth::Basic("ops", "Redact-ops-7731");
const VIEWER: Auth<'static> = Auth::Basic("view", "Redact-view-7731");
const SECRET: &str = "hunter2";
const MASKED: &str = "'password': '••••'";

fn get(c: &Celeriac, auth: Auth<'_>, path: &str) -> String {
    let (status, body) = c.request("GET", path, auth, &[], None);
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

#[test]
fn secrets_are_masked_everywhere_and_hidden_from_viewers() {
    let vhost = TestVhost::new("redact");
    let c = Celeriac::start(
        &vhost,
        &[
            "--basic-auth",
            "ops:Redact-ops-7731",
            "--viewer",
            "view:Redact-view-7731",
            "--hide-args",
        ],
    );
    c.wait_readyz(200, WAIT);
    let _worker = Worker::start(&vhost, "redact@test", WorkerOpts::default());
    // `fail_until` succeeds once its flag file exists and returns its
    // kwargs: the secret is in kwargs and in the dict-shaped result.
    let flag = vhost.log_dir.join("redact-flag");
    std::fs::write(&flag, "").unwrap();
    let args = serde_json::to_string(&[flag.to_str().unwrap()]).unwrap();
    let id = vhost.send(
        "fail_until",
        &args,
        &["--kwargs", r#"{"password": "hunter2", "user": "x"}"#],
    );

    let info_path = format!("/api/task/info/{id}");
    let task: Value = eventually("the task to succeed", WAIT, || {
        let (status, body) = c.request("GET", &info_path, OP, &[], None);
        let task: Value = (status == 200).then(|| serde_json::from_str(&body).ok())??;
        (task["state"] == "SUCCESS").then_some(task)
    });
    let kwargs = task["kwargs"].as_str().unwrap();
    assert!(
        kwargs.contains(MASKED) && kwargs.contains("'user': 'x'"),
        "{task}"
    );
    let result = task["result"].as_str().unwrap();
    assert!(result.contains(MASKED), "{task}");

    // No answer carries the secret: info, search, export, metrics.
    let mut bodies = vec![serde_json::to_string(&task).unwrap()];
    let found = get(&c, OP, "/api/tasks?search=hunter2");
    assert_eq!(
        serde_json::from_str::<Value>(&found).unwrap(),
        serde_json::json!({})
    );
    let listed = get(&c, OP, "/api/tasks?search=user");
    assert!(listed.contains(&id) && listed.contains("••••"), "{listed}");
    bodies.push(listed);
    for format in ["csv", "ndjson"] {
        // The export reads the history store, which the writer fills a
        // moment after memory.
        let path = format!("/api/tasks/export?format={format}");
        let export = eventually("the task in the export", WAIT, || {
            let export = get(&c, OP, &path);
            export.contains(&id).then_some(export)
        });
        assert!(export.contains("••••"), "{export}");
        bodies.push(export);
    }
    bodies.push(get(&c, OP, "/metrics"));
    bodies.push(c.log());
    for body in &bodies {
        assert!(!body.contains(SECRET), "the secret leaked: {body}");
    }

    // A running task's arguments, as the worker reports them to inspect
    // `active`, are masked too, and hidden from viewers.
    let held = vhost.send(
        "hold",
        "[60]",
        &["--kwargs", r#"{"password": "hunter2", "user": "y"}"#],
    );
    let held_path = format!("/api/task/info/{held}");
    eventually("the held task to start", WAIT, || {
        let (status, body) = c.request("GET", &held_path, OP, &[], None);
        (status == 200 && body.contains("STARTED")).then_some(())
    });
    let workers_path = "/api/workers?refresh=1&workername=redact@test";
    let active = eventually("the held task in inspect active", WAIT, || {
        let body = get(&c, OP, workers_path);
        body.contains(&held).then_some(body)
    });
    let workers: Value = serde_json::from_str(&active).unwrap();
    let listed = &workers["redact@test"]["active"][0];
    assert!(
        listed["kwargs"].as_str().unwrap().contains(MASKED),
        "{listed}"
    );
    bodies.push(active);
    // The same inspect asked directly (Flower's `/api/control/...` path).
    let (status, direct) = c.request(
        "POST",
        "/api/control/active",
        OP,
        &[("Content-Type", "application/json")],
        Some(r#"{"destination": ["redact@test"]}"#),
    );
    assert_eq!(status, 200, "{direct}");
    assert!(
        direct.contains(&held) && direct.contains("\"password\":\"••••\""),
        "{direct}"
    );
    bodies.push(direct);
    let workers: Value = serde_json::from_str(&get(&c, VIEWER, workers_path)).unwrap();
    let listed = &workers["redact@test"]["active"][0];
    assert_eq!(listed["id"], held.as_str(), "{workers}");
    assert!(
        listed["kwargs"].is_null() && listed["args"].is_null(),
        "{listed}"
    );
    for body in &bodies {
        assert!(!body.contains(SECRET), "the secret leaked: {body}");
    }

    // The real values are gone, so the record cannot be re-run as it was.
    let (status, body) = c.request("POST", &format!("/api/task/retry/{id}"), OP, &[], None);
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("masked by --redact-keys"), "{body}");
    // Passed explicitly, the arguments run; the audit log, which viewers
    // read, masks them too.
    let edited = r#"{"kwargs": {"password": "hunter2", "user": "z"}}"#;
    let (status, body) = c.request(
        "POST",
        &format!("/api/task/retry/{id}"),
        OP,
        &[],
        Some(edited),
    );
    assert_eq!(status, 200, "{body}");
    let rerun: Value = serde_json::from_str(&body).unwrap();
    let rerun = rerun["task-id"].as_str().unwrap().to_string();
    let rerun_path = format!("/api/task/info/{rerun}");
    let ran: Value = eventually("the re-run to succeed", WAIT, || {
        let (status, body) = c.request("GET", &rerun_path, OP, &[], None);
        let task: Value = (status == 200).then(|| serde_json::from_str(&body).ok())??;
        (task["state"] == "SUCCESS").then_some(task)
    });
    assert!(ran["kwargs"].as_str().unwrap().contains(MASKED), "{ran}");
    let audit = get(&c, VIEWER, "/api/audit");
    assert!(audit.contains(&rerun) && audit.contains("••••"), "{audit}");
    assert!(
        !audit.contains(SECRET) && !ran.to_string().contains(SECRET),
        "{audit}"
    );

    // --hide-args: a viewer sees no args or kwargs anywhere.
    let seen: Value = serde_json::from_str(&get(&c, VIEWER, &info_path)).unwrap();
    assert_eq!(seen["state"], "SUCCESS");
    assert!(seen["args"].is_null() && seen["kwargs"].is_null(), "{seen}");
    let listed: Value = serde_json::from_str(&get(&c, VIEWER, "/api/tasks")).unwrap();
    assert!(listed[&id]["kwargs"].is_null(), "{listed}");
    assert!(listed[&id]["name"].is_string(), "{listed}");
    let export = get(&c, VIEWER, "/api/tasks/export?format=ndjson");
    let row: Value = export
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|r| r["uuid"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} not exported: {export}"));
    assert!(row["args"].is_null() && row["kwargs"].is_null(), "{row}");
    // Nor can a viewer learn them by searching: which tasks match a term
    // would tell what the arguments hold.
    let searching = |path: &str, q: &str| {
        format!(
            "{path}?search={}",
            q.replace(':', "%3A").replace('=', "%3D")
        )
    };
    for search in ["kwargs:user=x", "args:hunter", "user"] {
        for path in ["/api/tasks", "/api/tasks/export"] {
            let (status, body) = c.request("GET", &searching(path, search), VIEWER, &[], None);
            assert_eq!(status, 403, "{path} search={search}: {body}");
            let e: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(e["parameter"], "search", "{body}");
        }
    }
    let (status, body) = c.request(
        "GET",
        &searching("/api/tasks", "state:SUCCESS"),
        VIEWER,
        &[],
        None,
    );
    assert_eq!(
        status, 200,
        "a search outside the arguments is allowed: {body}"
    );
    let (status, _) = c.request(
        "GET",
        &searching("/api/tasks", "kwargs:user=x"),
        OP,
        &[],
        None,
    );
    assert_eq!(status, 200, "an operator searches the arguments");
    // An operator still sees them.
    let listed: Value = serde_json::from_str(&get(&c, OP, "/api/tasks")).unwrap();
    assert!(
        listed[&id]["kwargs"].as_str().unwrap().contains(MASKED),
        "{listed}"
    );
}
