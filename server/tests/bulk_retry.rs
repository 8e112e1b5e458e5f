//! Bulk retry by filter (`POST /api/tasks/retry`) against a real Celery
//! worker: a dry run lists what would be re-run and what cannot be (a
//! truncated argument repr) without publishing; the real run re-runs every
//! ready failure, which then succeeds, in one audit entry. Viewers are
//! refused, a bad `limit` is a 400 naming it.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};
use support::{eventually, Auth, Celeriac, TestVhost, Worker, WorkerOpts};

/// Generous: 40 tasks on a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(60);
const OP: Auth<'static> = Auth::Basic("ops", "Bulk-ops-8812");
const VIEWER: Auth<'static> = Auth::Basic("view", "Bulk-view-8812");
const FAILURES: usize = 20;

fn post(c: &Celeriac, auth: Auth<'_>, path: &str, body: Option<&str>) -> (u16, Value) {
    let (status, text) = c.request("POST", path, auth, &[], body);
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("POST {path}: not JSON ({e}): {text}"));
    (status, json)
}

fn state_of(c: &Celeriac, id: &str) -> Option<String> {
    let (status, text) = c.request("GET", &format!("/api/task/info/{id}"), OP, &[], None);
    let t: Value = serde_json::from_str(&text).ok()?;
    (status == 200).then(|| t["state"].as_str().unwrap_or_default().to_string())
}

fn ids(list: &Value, key: Option<&str>) -> BTreeSet<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|v| match key {
            Some(k) => v[k].as_str().unwrap().to_string(),
            None => v.as_str().unwrap().to_string(),
        })
        .collect()
}

#[test]
fn failures_selected_by_filter_are_previewed_then_re_run() {
    let vhost = TestVhost::new("bulk-retry");
    let _worker = Worker::start(&vhost, "br1@test", WorkerOpts::default());
    let c = Celeriac::start(
        &vhost,
        &[
            "--basic-auth",
            "ops:Bulk-ops-8812",
            "--viewer",
            "view:Bulk-view-8812",
        ],
    );
    c.wait_readyz(200, WAIT);
    let flag = vhost.log_dir.join("flag");
    let _ = std::fs::remove_file(&flag);
    let flag = flag.to_str().unwrap().to_string();

    let failed = vhost.send_many("fail_until", &json!([flag, 1]).to_string(), FAILURES, &[]);
    // Celery cuts this argument's repr: it cannot be rebuilt.
    let cut = vhost.send(
        "fail_until",
        &json!([flag, "x".repeat(3000)]).to_string(),
        &[],
    );
    for id in failed.iter().chain([&cut]) {
        eventually(&format!("task {id} to fail"), WAIT, || {
            (state_of(&c, id).as_deref() == Some("FAILURE")).then_some(())
        });
    }

    let filter = r#"{"taskname": "tasks.fail_until", "state": "FAILURE", "dry_run": true}"#;
    let (status, body) = post(&c, VIEWER, "/api/tasks/retry", Some(filter));
    assert_eq!(status, 403, "{body}");
    let (status, body) = post(
        &c,
        OP,
        "/api/tasks/retry?taskname=tasks.fail_until&limit=1001",
        None,
    );
    assert_eq!(
        (status, body["parameter"].as_str()),
        (400, Some("limit")),
        "{body}"
    );

    // The preflight (a JSON body) publishes nothing.
    let (status, dry) = post(&c, OP, "/api/tasks/retry", Some(filter));
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["count"], FAILURES + 1, "{dry}");
    assert_eq!(ids(&dry["ready"], None), failed.iter().cloned().collect());
    assert_eq!(
        ids(&dry["blocked"], Some("id")),
        BTreeSet::from([cut.clone()])
    );
    let reason = dry["blocked"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("args[1]") && reason.contains("xxx"),
        "{reason}"
    );
    assert!(
        !c.request("GET", "/api/audit", OP, &[], None)
            .1
            .contains("bulk_retry"),
        "a dry run is not an action"
    );

    // Fix the cause, then re-run them all (filters in the query string).
    std::fs::write(&flag, "ok").unwrap();
    let (status, run) = post(
        &c,
        OP,
        "/api/tasks/retry?taskname=tasks.fail_until&state=FAILURE",
        None,
    );
    assert_eq!(status, 200, "{run}");
    assert_eq!(
        ids(&run["retried"], Some("id")),
        failed.iter().cloned().collect()
    );
    assert_eq!(
        ids(&run["blocked"], Some("id")),
        BTreeSet::from([cut.clone()])
    );
    let new: BTreeSet<String> = ids(&run["retried"], Some("task-id"));
    assert_eq!(new.len(), FAILURES);
    for id in &new {
        eventually(&format!("re-run {id} to succeed"), WAIT, || {
            (state_of(&c, id).as_deref() == Some("SUCCESS")).then_some(())
        });
    }

    let (_, text) = c.request("GET", "/api/audit?limit=100", OP, &[], None);
    let audit: Value = serde_json::from_str(&text).unwrap();
    let bulk: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["command"] == "bulk_retry")
        .collect();
    assert_eq!(bulk.len(), 1, "one entry for the bulk action: {audit:#}");
    assert_eq!(bulk[0]["user"], "ops");
    assert_eq!(bulk[0]["arguments"]["retried"], FAILURES);
    assert_eq!(bulk[0]["arguments"]["blocked"], 1);
}
