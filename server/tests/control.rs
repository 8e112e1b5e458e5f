//! Remote control against real Celery workers: Flower's control
//! endpoints, the inspect fields of `/api/workers`, bulk revoke, the
//! generic pidbox endpoint, and the audit log. Auth is in `auth.rs`.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{eventually, metric_value, Celeriac, TestVhost, Worker, WorkerOpts};

const WAIT: Duration = Duration::from_secs(30);

fn wait_worker(c: &Celeriac, w: &str) {
    eventually(&format!("{w} in /api/workers"), WAIT, || {
        c.worker(w).filter(|v| v["status"] == true).map(drop)
    });
}

/// `/api/workers?refresh=1&workername=w` until `probe` accepts the worker.
fn inspect_until<T>(c: &Celeriac, w: &str, what: &str, probe: impl Fn(&Value) -> Option<T>) -> T {
    eventually(what, WAIT, || {
        let v = c.get_json(&format!("/api/workers?refresh=1&workername={w}"));
        probe(&v[w])
    })
}

/// The replies of `POST /api/control/{method}` to one worker.
fn control(c: &Celeriac, method: &str, w: &str, arguments: &str) -> Value {
    let body = format!(r#"{{"destination": ["{w}"], "arguments": {arguments}}}"#);
    let (status, v) = c.post(&format!("/api/control/{method}"), Some(&body));
    assert_eq!(status, 200, "{method}: {v}");
    v["replies"][w].clone()
}

#[test]
fn workers_are_inspected_and_controlled() {
    let vhost = TestVhost::new("control-workers");
    let w = "ctl1@test";
    let mut worker = Worker::start(&vhost, w, WorkerOpts::default());
    let c = Celeriac::start(&vhost, &[]);
    wait_worker(&c, w);

    // Inspect fields, with the broker password masked in `conf`.
    let info = inspect_until(&c, w, "inspect fields", |v| {
        v.get("stats").is_some().then(|| v.clone())
    });
    assert_eq!(
        info["stats"]["pool"]["processes"].as_array().unwrap().len(),
        2
    );
    let registered: Vec<&str> = info["registered"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(registered.contains(&"tasks.add"), "{registered:?}");
    assert_eq!(info["active_queues"][0]["name"], "celery");
    let conf = info["conf"].to_string();
    assert!(!conf.contains("guest:guest@"), "{conf}");
    for field in ["active", "reserved", "scheduled", "revoked"] {
        assert!(info[field].is_array(), "{field}: {info}");
    }
    // The event fields stay.
    assert_eq!(info["status"], true);
    // Inspect feeds celery-exporter's per-queue worker and process counts.
    let metrics = c.metrics();
    let queue = [("queue_name", "celery")];
    assert_eq!(
        metric_value(&metrics, "celery_active_worker_count", &queue),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(&metrics, "celery_active_process_count", &queue),
        Some(2.0)
    );

    // Rate limit, visible in `registered` with its attributes.
    let (status, v) = c.post(
        &format!("/api/task/rate-limit/tasks.add?workername={w}&ratelimit=10/m"),
        None,
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["message"], "new rate limit set successfully");
    assert_eq!(v["replies"][w]["ok"], "new rate limit set successfully");
    let reg = control(&c, "registered", w, r#"{"taskinfoitems": ["rate_limit"]}"#);
    assert!(
        reg.as_array()
            .unwrap()
            .iter()
            .any(|t| t == "tasks.add [rate_limit=10/m]"),
        "{reg}"
    );
    // A task no worker has: Flower's 404, before anything is sent.
    let (status, v) = c.post(
        &format!("/api/task/rate-limit/tasks.nope?workername={w}&ratelimit=1/s"),
        None,
    );
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["error"], "Unknown task 'tasks.nope'");

    // Grow the pool: the process count in `stats`.
    let (status, v) = c.post(&format!("/api/worker/pool/grow/{w}"), Some("n=1"));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["message"], format!("Growing '{w}' worker's pool by 1"));
    inspect_until(&c, w, "3 pool processes", |v| {
        (v["stats"]["pool"]["processes"].as_array()?.len() == 3).then_some(())
    });
    // Autoscale is off: Flower's 403 text.
    let (status, v) = c.post(&format!("/api/worker/pool/autoscale/{w}?min=1&max=3"), None);
    assert_eq!(status, 403, "{v}");
    assert!(v["error"]
        .as_str()
        .unwrap()
        .starts_with(&format!("Failed to autoscale '{w}' worker: ")));

    // Add then cancel a consumer: `active_queues` follows.
    let queues = |v: &Value| -> Vec<String> {
        v["active_queues"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|q| q["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (status, v) = c.post(
        &format!("/api/worker/queue/add-consumer/{w}"),
        Some("queue=extra"),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["message"], "add consumer extra");
    inspect_until(&c, w, "queue extra consumed", |v| {
        queues(v).contains(&"extra".to_string()).then_some(())
    });
    let (status, v) = c.post(
        &format!("/api/worker/queue/cancel-consumer/{w}?queue=extra"),
        None,
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["message"], "no longer consuming from extra");
    inspect_until(&c, w, "queue extra no longer consumed", |v| {
        (!queues(v).contains(&"extra".to_string()) && !queues(v).is_empty()).then_some(())
    });
    let (status, _) = c.post(&format!("/api/worker/queue/add-consumer/{w}"), None);
    assert_eq!(status, 400, "a missing queue is Flower's 400");

    // Unknown workers answer promptly: 404 on Flower's endpoints, "no
    // reply" on the generic one.
    let t = Instant::now();
    let (status, _) = c.post("/api/worker/pool/grow/nobody@nowhere", None);
    assert_eq!(status, 404);
    let (status, v) = c.post(
        "/api/control/ping",
        Some(r#"{"destination": ["nobody@nowhere"]}"#),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["no_reply"], serde_json::json!(["nobody@nowhere"]));
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "took {:?}",
        t.elapsed()
    );
    // A live worker answers at once, without waiting for the timeout.
    let t = Instant::now();
    assert_eq!(
        control(&c, "ping", w, "{}"),
        serde_json::json!({"ok": "pong"})
    );
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "took {:?}",
        t.elapsed()
    );
    // By pattern.
    let (status, v) = c.post(
        "/api/control/ping",
        Some(r#"{"pattern": "ctl1@*", "matcher": "glob", "timeout": 0.5}"#),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["replies"][w]["ok"], "pong");

    // The audit log has what was done, newest first.
    let audit = c.get_json("/api/audit");
    let commands: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["command"].as_str())
        .collect();
    for cmd in ["rate_limit", "pool_grow", "add_consumer", "cancel_consumer"] {
        assert!(commands.contains(&cmd), "{cmd} missing from {commands:?}");
    }
    let grow = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["command"] == "pool_grow")
        .unwrap();
    assert_eq!(grow["user"], "anonymous");
    assert_eq!(grow["target"], serde_json::json!([w]));
    assert_eq!(grow["replies"][w]["ok"], "pool will grow");

    // Shut the worker down: it exits and goes offline.
    let (status, v) = c.post(&format!("/api/worker/shutdown/{w}"), None);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["message"], "Shutting down!");
    eventually("the worker to go offline", WAIT, || {
        (c.worker(w)?["status"] == false).then_some(())
    });
    worker.stop();
}

#[test]
fn tasks_are_revoked_terminated_and_time_limited() {
    let vhost = TestVhost::new("control-tasks");
    let w = "ctl2@test";
    let _worker = Worker::start(&vhost, w, WorkerOpts::default());
    let c = Celeriac::start(&vhost, &[]);
    wait_worker(&c, w);

    // Terminate a running task.
    let id = vhost.send("sleep", "[30]", &[]);
    c.wait_task_state(&id, "STARTED", WAIT);
    let active = control(&c, "active", w, "{}");
    let pid = active[0]["worker_pid"]
        .as_i64()
        .expect("the task's pool process");
    assert_eq!(active[0]["id"], id.as_str());
    let (status, v) = c.post(
        &format!("/api/task/revoke/{id}"),
        Some("terminate=true&signal=SIGKILL"),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["message"], format!("Revoked '{id}'"));
    assert_eq!(v["replies"][w]["ok"], format!("terminate: {id}"));
    let task = c.wait_task_state(&id, "REVOKED", WAIT);
    assert!(task["succeeded"].is_null(), "{task}");
    // The pool process running it was killed (gone, or a zombie until the
    // pool reaps it).
    eventually("the pool process to be killed", WAIT, || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().unwrap_or("").trim_start();
        (stat.is_empty() || state.starts_with('Z')).then_some(())
    });

    // Revoke a task waiting on its countdown: it never runs.
    let id = vhost.send("add", "[1, 2]", &["--countdown", "2"]);
    c.wait_task_state(&id, "RECEIVED", WAIT);
    let (status, v) = c.post(&format!("/api/task/revoke/{id}"), None);
    assert_eq!(status, 200, "{v}");
    let task = c.wait_task_state(&id, "REVOKED", WAIT);
    assert!(task["started"].is_null(), "{task}");

    // Time limits reach the worker's task registry at once...
    let (status, v) = c.post(
        &format!("/api/task/timeout/tasks.sleep?workername={w}&hard=1&soft=0.5"),
        None,
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["message"], "time limits set successfully");
    assert!(
        v["note"].as_str().unwrap().contains("pool restarts"),
        "the answer says the limit is not applied yet: {v}"
    );
    let reg = control(
        &c,
        "registered",
        w,
        r#"{"taskinfoitems": ["time_limit", "soft_time_limit"]}"#,
    );
    assert!(
        reg.as_array()
            .unwrap()
            .iter()
            .any(|t| t == "tasks.sleep [time_limit=1.0 soft_time_limit=0.5]"),
        "{reg}"
    );
    // ...but Celery 5.7's prefork consumer keeps the limits its request
    // classes copied at start (`create_request_cls`): a task running past
    // both new limits still succeeds. If this starts failing, Celery
    // applies limits at once and TIME_LIMIT_NOTE must change.
    let id = vhost.send("sleep", "[2]", &[]);
    c.wait_task_state(&id, "SUCCESS", WAIT);
    // A pool restart rebuilds the strategies (`WorkController.reload` calls
    // `update_strategies`), so new tasks get the new hard limit; `apply`
    // asks for it (the test app sets `worker_pool_restarts`).
    let (status, v) = c.post(
        &format!("/api/task/timeout/tasks.sleep?workername={w}&hard=1&apply=true"),
        None,
    );
    assert_eq!(status, 200, "{v}");
    assert!(v["message"].as_str().unwrap().contains("applied"), "{v}");
    assert_eq!(
        v["pool_restart"]["replies"][w]["ok"], "reload started",
        "{v}"
    );
    assert!(v["note"].is_null(), "{v}");
    let audit = c.get_json("/api/audit?limit=2");
    assert_eq!(audit["entries"][0]["command"], "pool_restart", "{audit}");
    assert_eq!(audit["entries"][1]["command"], "time_limit", "{audit}");
    let id = vhost.send("sleep", "[5]", &[]);
    let task = c.wait_task_state(&id, "FAILURE", WAIT);
    // Celery 5.7 reports the exception as `ExceptionWithTraceback()`; the
    // traceback names it.
    assert!(
        task["traceback"]
            .as_str()
            .unwrap_or("")
            .contains("TimeLimitExceeded(1.0"),
        "{task}"
    );
    let ran = task["failed"].as_f64().unwrap() - task["started"].as_f64().unwrap();
    assert!(
        ran < 4.0,
        "killed at the 1 s limit, not after sleeping 5 s: {ran}"
    );

    // Bulk revoke: dry run first, then for real.
    let ids = vhost.send_many("add", "[3, 4]", 3, &["--countdown", "60"]);
    for id in &ids {
        c.wait_task_state(id, "RECEIVED", WAIT);
    }
    let (status, _) = c.post("/api/tasks/revoke", Some("dry_run=true"));
    assert_eq!(status, 400, "a bulk revoke needs a filter");
    let (status, v) = c.post(
        "/api/tasks/revoke",
        Some("taskname=tasks.add&state=RECEIVED&dry_run=true"),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["count"], 3, "{v}");
    let mut got: Vec<String> = serde_json::from_value(v["ids"].clone()).unwrap();
    let mut want = ids.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert!(
        !c.get_json("/api/audit").to_string().contains("bulk_revoke"),
        "a dry run is not an action"
    );
    let (status, v) = c.post(
        "/api/tasks/revoke",
        Some("taskname=tasks.add&state=RECEIVED"),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["count"], 3);
    assert!(v["replies"][w][0]["ok"]
        .as_str()
        .unwrap()
        .contains("flagged as revoked"));
    let revoked = control(&c, "revoked", w, "{}");
    for id in &ids {
        assert!(
            revoked.as_array().unwrap().iter().any(|r| r == id),
            "{id} not in {revoked}"
        );
    }
    let audit = c.get_json("/api/audit?limit=1");
    assert_eq!(audit["entries"][0]["command"], "bulk_revoke");
    assert_eq!(audit["entries"][0]["arguments"]["count"], 3);
}
