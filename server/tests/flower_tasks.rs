//! Flower's task API against real Celery workers with a Redis result
//! backend and with Celery's database backend on PostgreSQL: `async-apply`,
//! `send-task`, `apply`, `result`, `abort`, with Flower's answers; refused
//! for viewers; 503 without a backend and 501 for a scheme celeriac does
//! not read.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::postgres::TestDb;
use support::{eventually, Auth, Celeriac, RedisDb, TestVhost, Worker, WorkerOpts};

const WAIT: Duration = Duration::from_secs(30);
const OP: Auth<'static> = Auth::Basic("ops", "Flower-ops-4412");
const VIEWER: Auth<'static> = Auth::Basic("view", "Flower-view-4412");
fn auth_flags() -> Vec<&'static str> {
    vec![
        "--basic-auth",
        "ops:Flower-ops-4412",
        "--viewer",
        "view:Flower-view-4412",
    ]
}

fn call(
    c: &Celeriac,
    method: &str,
    auth: Auth<'_>,
    path: &str,
    body: Option<&str>,
) -> (u16, Value, String) {
    let (status, text) = c.request(method, path, auth, &[], body);
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, json, text)
}

/// The object's keys in the order the answer's text has them (Flower's
/// dicts keep insertion order).
fn keys(text: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let mut keys: Vec<(usize, String)> = v
        .as_object()
        .map(|m| {
            m.keys()
                .map(|k| {
                    (
                        text.find(&format!("\"{k}\":")).unwrap_or(usize::MAX),
                        k.clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    keys.sort();
    keys.into_iter().map(|(_, k)| k).collect()
}

#[test]
fn tasks_are_submitted_and_their_results_read_as_flower_does() {
    let redis = RedisDb::claim("flower-tasks");
    let vhost = TestVhost::new("flower-tasks");
    let w = "ft1@test";
    let _worker = Worker::start(
        &vhost,
        w,
        WorkerOpts {
            result_backend: Some(redis.url()),
            ..WorkerOpts::default()
        },
    );
    let mut flags = auth_flags();
    let backend = redis.url();
    flags.extend(["--result-backend", backend.as_str()]);
    let c = Celeriac::start(&vhost, &flags);
    c.wait_readyz(200, WAIT);
    // async-apply and apply want the task registered on a worker.
    eventually("the worker's registered tasks", WAIT, || {
        let (_, v, _) = call(
            &c,
            "GET",
            OP,
            &format!("/api/workers?refresh=1&workername={w}"),
            None,
        );
        v[w]["registered"]
            .as_array()
            .is_some_and(|r| {
                r.iter()
                    .any(|t| t.as_str().is_some_and(|t| t.starts_with("tasks.add")))
            })
            .then_some(())
    });

    // async-apply: the id and, with a backend, the state.
    let (status, v, text) = call(
        &c,
        "POST",
        OP,
        "/api/task/async-apply/tasks.add",
        Some(r#"{"args": [2, 3]}"#),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(keys(&text), ["task-id", "state"], "{v}");
    let id = v["task-id"].as_str().unwrap().to_string();
    let (status, v, text) = call(
        &c,
        "GET",
        VIEWER,
        &format!("/api/task/result/{id}?timeout=30"),
        None,
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(v, json!({"task-id": id, "state": "SUCCESS", "result": 5}));
    assert_eq!(keys(&text), ["task-id", "state", "result"]);

    // send-task with kwargs and options.
    let body =
        json!({"kwargs": {"x": 1, "y": 2}, "queue": "celery", "countdown": 1, "priority": 3});
    let (status, v, _) = call(
        &c,
        "POST",
        OP,
        "/api/task/send-task/tasks.add",
        Some(&body.to_string()),
    );
    assert_eq!(status, 200, "{v}");
    let id = v["task-id"].as_str().unwrap().to_string();
    let v = eventually("the send-task result", WAIT, || {
        let (_, v, _) = call(&c, "GET", OP, &format!("/api/task/result/{id}"), None);
        (v["state"] == "SUCCESS").then_some(v)
    });
    assert_eq!(v["result"], 3);
    // The events show the arguments as Celery would have written them.
    let info = eventually("the task in /api/task/info", WAIT, || {
        let (s, v, _) = call(&c, "GET", OP, &format!("/api/task/info/{id}"), None);
        (s == 200 && v["state"] == "SUCCESS").then_some(v)
    });
    assert_eq!(info["kwargs"], "{'x': 1, 'y': 2}");

    // A result the backend holds as the task returned it is masked by
    // --redact-keys, in apply's answer and in the result API.
    let flag = vhost.log_dir.join("flower-flag");
    std::fs::write(&flag, "").unwrap();
    let body =
        json!({"args": [flag.to_str().unwrap()], "kwargs": {"password": "hunter2", "user": "x"}});
    let (status, v, text) = call(
        &c,
        "POST",
        OP,
        "/api/task/apply/tasks.fail_until",
        Some(&body.to_string()),
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        v["result"]["kwargs"],
        json!({"password": "••••", "user": "x"}),
        "{text}"
    );
    let id = v["task-id"].as_str().unwrap().to_string();
    let (status, v, text) = call(&c, "GET", VIEWER, &format!("/api/task/result/{id}"), None);
    assert_eq!(status, 200, "{text}");
    assert_eq!(v["result"]["kwargs"]["password"], "••••", "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert_eq!(info["args"], "()");

    // apply waits: a failure comes back with its traceback.
    let (status, v, text) = call(
        &c,
        "POST",
        OP,
        "/api/task/apply/tasks.fail",
        Some(r#"{"args": ["boom"], "timeout": 30}"#),
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        keys(&text),
        ["task-id", "result", "traceback", "state"],
        "{v}"
    );
    assert_eq!(v["state"], "FAILURE");
    assert_eq!(v["result"], "ValueError('boom')");
    assert!(
        v["traceback"]
            .as_str()
            .unwrap()
            .contains("ValueError: boom"),
        "{v}"
    );

    // abort: an AbortableTask sees ABORTED and stops.
    let (_, v, _) = call(
        &c,
        "POST",
        OP,
        "/api/task/async-apply/tasks.abortable",
        Some(r#"{"args": [60]}"#),
    );
    let id = v["task-id"].as_str().unwrap().to_string();
    eventually("the abortable task started", WAIT, || {
        let (s, v, _) = call(&c, "GET", OP, &format!("/api/task/info/{id}"), None);
        (s == 200 && v["state"] == "STARTED").then_some(())
    });
    assert_eq!(
        call(&c, "POST", VIEWER, &format!("/api/task/abort/{id}"), None).0,
        403
    );
    let (status, v, _) = call(&c, "POST", OP, &format!("/api/task/abort/{id}"), None);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({"message": format!("Aborted '{id}'")}));
    let (_, v, _) = call(
        &c,
        "GET",
        OP,
        &format!("/api/task/result/{id}?timeout=30"),
        None,
    );
    assert_eq!(v["result"], "aborted", "{v}");

    // Errors: a bad timeout, unknown task, bad option, viewers, an
    // unroutable queue.
    let (status, v, _) = call(
        &c,
        "GET",
        OP,
        &format!("/api/task/result/{id}?timeout=soon"),
        None,
    );
    assert_eq!(
        (status, v["parameter"].as_str()),
        (400, Some("timeout")),
        "{v}"
    );
    let (status, v, _) = call(
        &c,
        "POST",
        OP,
        "/api/task/async-apply/tasks.nope",
        Some("{}"),
    );
    assert_eq!(
        (status, v["error"].as_str()),
        (404, Some("Unknown task 'tasks.nope'"))
    );
    let (status, v, _) = call(
        &c,
        "POST",
        OP,
        "/api/task/async-apply/tasks.add",
        Some(r#"{"eta": "tomorrow"}"#),
    );
    assert_eq!((status, v["parameter"].as_str()), (400, Some("eta")), "{v}");
    let (status, v, _) = call(
        &c,
        "POST",
        OP,
        "/api/task/async-apply/tasks.add",
        Some(r#"{"args": 1}"#),
    );
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("args must be an array"))
    );
    assert_eq!(
        call(
            &c,
            "POST",
            VIEWER,
            "/api/task/send-task/tasks.add",
            Some("{}")
        )
        .0,
        403
    );
    assert_eq!(
        call(
            &c,
            "POST",
            Auth::None,
            "/api/task/send-task/tasks.add",
            Some("{}")
        )
        .0,
        401
    );
    let (status, v, _) = call(
        &c,
        "POST",
        OP,
        "/api/task/send-task/tasks.add",
        Some(r#"{"queue": "nowhere"}"#),
    );
    assert_eq!(status, 502, "{v}");
    assert!(v["error"].as_str().unwrap().contains("nowhere"), "{v}");

    // Every submission is audited.
    let (_, audit, _) = call(&c, "GET", OP, "/api/audit", None);
    let commands: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["command"].as_str())
        .collect();
    for cmd in ["async_apply", "send_task", "apply", "abort"] {
        assert!(commands.contains(&cmd), "{cmd} in {commands:?}");
    }
}

#[test]
fn without_a_usable_backend_results_are_refused_clearly() {
    let vhost = TestVhost::new("flower-nobackend");
    let c = Celeriac::start(&vhost, &auth_flags());
    // Celery declares the queue when it publishes; celeriac does not, and
    // refuses to publish into nothing (see the unroutable case above).
    vhost.send("add", "[1, 1]", &[]);
    // Publishing needs no backend; the answer then has no state, as Flower's.
    let (status, v, text) = call(
        &c,
        "POST",
        OP,
        "/api/task/send-task/tasks.add",
        Some(r#"{"args": [1, 2]}"#),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(keys(&text), ["task-id"]);
    let id = v["task-id"].as_str().unwrap();
    let (status, v, _) = call(&c, "GET", OP, &format!("/api/task/result/{id}"), None);
    assert_eq!(status, 503, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("--result-backend"),
        "{v}"
    );
    assert_eq!(
        call(&c, "POST", OP, &format!("/api/task/abort/{id}"), None).0,
        503
    );
    drop(c);

    let mut flags = auth_flags();
    flags.extend(["--result-backend", "db+mysql://root@127.0.0.1/celery"]);
    let c = Celeriac::start(&vhost, &flags);
    let (status, v, _) = call(&c, "GET", OP, &format!("/api/task/result/{id}"), None);
    assert_eq!(status, 501, "{v}");
    assert!(v["error"].as_str().unwrap().contains("db+mysql"), "{v}");
}

/// celeriac and a worker sharing `backend`, once the worker's tasks are
/// registered.
fn cluster(vhost: &TestVhost, backend: &str, w: &str) -> (Worker, Celeriac) {
    let worker = Worker::start(
        vhost,
        w,
        WorkerOpts {
            result_backend: Some(backend.to_string()),
            ..WorkerOpts::default()
        },
    );
    let mut flags = auth_flags();
    flags.extend(["--result-backend", backend]);
    let c = Celeriac::start(vhost, &flags);
    c.wait_readyz(200, WAIT);
    eventually("the worker's registered tasks", WAIT, || {
        let (_, v, _) = call(
            &c,
            "GET",
            OP,
            &format!("/api/workers?refresh=1&workername={w}"),
            None,
        );
        v[w]["registered"]
            .as_array()
            .is_some_and(|r| {
                r.iter()
                    .any(|t| t.as_str().is_some_and(|t| t.starts_with("tasks.add")))
            })
            .then_some(())
    });
    (worker, c)
}

#[test]
fn results_come_from_celerys_database_backend_on_postgresql() {
    let db = TestDb::new("flower_results");
    // SQLAlchemy's spelling, as Celery's `result_backend` takes it.
    let backend = format!("db+{}", db.url.replacen("postgres://", "postgresql://", 1));
    let vhost = TestVhost::new("flower-db");
    let (_worker, c) = cluster(&vhost, &backend, "fdb1@test");

    let (status, v, _) = call(
        &c,
        "POST",
        OP,
        "/api/task/async-apply/tasks.add",
        Some(r#"{"args": [20, 22]}"#),
    );
    assert_eq!(status, 200, "{v}");
    let id = v["task-id"].as_str().unwrap().to_string();
    let (_, v, _) = call(
        &c,
        "GET",
        OP,
        &format!("/api/task/result/{id}?timeout=30"),
        None,
    );
    assert_eq!(v, json!({"task-id": id, "state": "SUCCESS", "result": 42}));
    // The row Celery wrote is where celeriac read it.
    assert_eq!(
        db.query(&format!(
            "SELECT status FROM celery_taskmeta WHERE task_id = '{id}'"
        ))
        .trim(),
        "SUCCESS"
    );

    let (status, v, text) = call(
        &c,
        "POST",
        OP,
        "/api/task/apply/tasks.fail",
        Some(r#"{"args": ["db boom"], "timeout": 30}"#),
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        (v["state"].as_str(), v["result"].as_str()),
        (Some("FAILURE"), Some("ValueError('db boom')"))
    );

    // abort updates a running task's row, and creates one for a task the
    // backend has not seen yet; a SUCCESS stays.
    let (_, v, _) = call(
        &c,
        "POST",
        OP,
        "/api/task/async-apply/tasks.abortable",
        Some(r#"{"args": [60]}"#),
    );
    let running = v["task-id"].as_str().unwrap().to_string();
    eventually("the abortable task started", WAIT, || {
        let (s, v, _) = call(&c, "GET", OP, &format!("/api/task/info/{running}"), None);
        (s == 200 && v["state"] == "STARTED").then_some(())
    });
    assert_eq!(
        call(&c, "POST", OP, &format!("/api/task/abort/{running}"), None).0,
        200
    );
    let (_, v, _) = call(
        &c,
        "GET",
        OP,
        &format!("/api/task/result/{running}?timeout=30"),
        None,
    );
    assert_eq!(v["result"], "aborted", "{v}");
    let unseen = "00000000-0000-4000-8000-000000000001";
    assert_eq!(
        call(&c, "POST", OP, &format!("/api/task/abort/{unseen}"), None).0,
        200
    );
    let (_, v, _) = call(&c, "GET", OP, &format!("/api/task/result/{unseen}"), None);
    assert_eq!(v, json!({"task-id": unseen, "state": "ABORTED"}));
    assert_eq!(
        call(&c, "POST", OP, &format!("/api/task/abort/{id}"), None).0,
        200
    );
    let (_, v, _) = call(&c, "GET", OP, &format!("/api/task/result/{id}"), None);
    assert_eq!(v["state"], "SUCCESS", "a stored SUCCESS is not aborted");
}
