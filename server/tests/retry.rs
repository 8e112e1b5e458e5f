//! Re-running tasks (`POST /api/task/retry/{id}`) against real Celery
//! workers: the re-run is a real task message the worker runs with the
//! original (or edited) arguments, refused for viewers and anonymous
//! callers, audited, linked both ways in `/api/task/info`; arguments that
//! cannot be rebuilt are refused with the argument named. The message
//! celeriac publishes is compared with the one Celery published.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{eventually, settings, Auth, Celeriac, TestVhost, Worker, WorkerOpts};

const WAIT: Duration = Duration::from_secs(30);
const OP: Auth<'static> = Auth::Basic("ops", "Retry-ops-7731");
const VIEWER: Auth<'static> = Auth::Basic("view", "Retry-view-7731");

/// celeriac, consuming events: a task-sent published before its events
/// queue is bound would be lost.
fn start(vhost: &TestVhost) -> Celeriac {
    let c = Celeriac::start(
        vhost,
        &[
            "--basic-auth",
            "ops:Retry-ops-7731",
            "--viewer",
            "view:Retry-view-7731",
        ],
    );
    c.wait_readyz(200, WAIT);
    c
}

fn post(c: &Celeriac, auth: Auth<'_>, path: &str, body: Option<&str>) -> (u16, Value) {
    let (status, text) = c.request("POST", path, auth, &[], body);
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("POST {path}: not JSON ({e}): {text}"));
    (status, json)
}

fn get(c: &Celeriac, path: &str) -> (u16, Value) {
    let (status, text) = c.request("GET", path, OP, &[], None);
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn task_in_state(c: &Celeriac, id: &str, state: &str) -> Value {
    eventually(&format!("task {id} in {state}"), WAIT, || {
        let (status, t) = get(c, &format!("/api/task/info/{id}"));
        (status == 200 && t["state"] == state).then_some(t)
    })
}

#[test]
fn a_failed_task_runs_again_with_its_arguments_or_edited_ones() {
    let vhost = TestVhost::new("retry-rerun");
    let _worker = Worker::start(&vhost, "rr1@test", WorkerOpts::default());
    let c = start(&vhost);
    let flag = vhost.log_dir.join("flag");
    let _ = std::fs::remove_file(&flag);
    let flag = flag.to_str().unwrap().to_string();

    // Quotes, a backslash, nesting and a big int survive the trip through
    // the events' reprs.
    let args = json!([flag, "it's a \\ path", [1, {"k": null}], 18446744073709551615u64]);
    let kwargs = json!({"mode": "full", "ratio": 0.5});
    let id = vhost.send(
        "fail_until",
        &args.to_string(),
        &["--kwargs", &kwargs.to_string()],
    );
    let failed = task_in_state(&c, &id, "FAILURE");
    assert!(
        failed["exception"]
            .as_str()
            .unwrap_or("")
            .contains("missing"),
        "{failed}"
    );

    // Refused without credentials and for viewers.
    let path = format!("/api/task/retry/{id}");
    assert_eq!(post(&c, Auth::None, &path, None).0, 401);
    assert_eq!(post(&c, VIEWER, &path, None).0, 403);
    assert_eq!(
        post(&c, OP, "/api/task/retry/no-such-task", None).0,
        404,
        "unknown task"
    );

    // A dry run shows what would be published, and publishes nothing.
    let (status, dry) = post(&c, OP, &format!("{path}?dry_run=true"), None);
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["task-id"], Value::Null);
    assert_eq!(dry["published"]["args"], args);
    assert_eq!(dry["published"]["name"], "tasks.fail_until");

    // The cause is fixed; the re-run succeeds with the same arguments.
    std::fs::write(&flag, "ok").unwrap();
    let (status, answer) = post(&c, OP, &path, None);
    assert_eq!(status, 200, "{answer}");
    let new_id = answer["task-id"].as_str().expect("task-id").to_string();
    assert_ne!(new_id, id);
    assert_eq!(answer["retry_of"], id.as_str());
    assert_eq!(answer["published"]["args"], args);
    assert_eq!(answer["published"]["kwargs"], kwargs);
    let done = task_in_state(&c, &new_id, "SUCCESS");
    assert_eq!(done["args"], failed["args"], "the same argsrepr");
    assert_eq!(done["kwargs"], failed["kwargs"]);
    let result = done["result"].as_str().unwrap_or_default();
    assert!(
        result.contains("18446744073709551615") && result.contains("'it\\'s a \\ path'"),
        "{result}"
    );
    assert!(result.contains("'ratio': 0.5"), "{result}");
    assert_eq!(done["retry_of"], id.as_str());
    assert_eq!(
        get(&c, &format!("/api/task/info/{id}")).1["reruns"],
        json!([new_id])
    );

    // Edited arguments replace the originals.
    let body = json!({"args": [flag, 7], "kwargs": {"edited": true}}).to_string();
    let (status, answer) = post(&c, OP, &path, Some(&body));
    assert_eq!(status, 200, "{answer}");
    let edited = answer["task-id"].as_str().unwrap().to_string();
    let done = task_in_state(&c, &edited, "SUCCESS");
    let result = done["result"].as_str().unwrap_or_default();
    assert!(
        result.contains("7]") && result.contains("'edited': True"),
        "{result}"
    );
    assert_eq!(done["kwargs"], "{'edited': True}");
    let reruns = get(&c, &format!("/api/task/info/{id}")).1["reruns"].clone();
    assert_eq!(reruns, json!([new_id, edited]));

    // Both re-runs are in the audit log, with who asked.
    let audit = get(&c, "/api/audit").1;
    let retries: Vec<&Value> = audit["entries"]
        .as_array()
        .or_else(|| audit.as_array())
        .expect("audit entries")
        .iter()
        .filter(|e| e["command"] == "retry")
        .collect();
    assert_eq!(retries.len(), 2, "{audit}");
    assert!(retries
        .iter()
        .all(|e| e["user"] == "ops" && e["status"] == 200));

    // A bad body is a 400 naming what is wrong.
    let (status, answer) = post(&c, OP, &path, Some(r#"{"args": "x"}"#));
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("args"),
        "{answer}"
    );
}

#[test]
fn arguments_that_cannot_be_rebuilt_are_refused_naming_them() {
    let vhost = TestVhost::new("retry-refused");
    let c = start(&vhost);
    // No worker: the tasks stay PENDING, known from task-sent.
    let long = "x".repeat(3000);
    let cut = vhost.send("add", &json!([1, long]).to_string(), &[]);
    eventually("the cut task known", WAIT, || {
        (get(&c, &format!("/api/task/info/{cut}")).0 == 200).then_some(())
    });
    let (status, answer) = post(&c, OP, &format!("/api/task/retry/{cut}"), None);
    assert_eq!(status, 422, "{answer}");
    let dry = r#"{"dry_run": true}"#;
    let (status, same) = post(&c, OP, &format!("/api/task/retry/{cut}"), Some(dry));
    assert_eq!(
        (status, &same),
        (422, &answer),
        "a dry run gives the same answer"
    );
    assert_eq!(answer["parameter"], "args[1]", "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains("cut") && error.contains("xxx"), "{error}");

    // Edited arguments get around it.
    let (status, answer) = post(
        &c,
        OP,
        &format!("/api/task/retry/{cut}"),
        Some(r#"{"args": [1, 2]}"#),
    );
    assert_eq!(status, 200, "{answer}");

    // Containers nested past saferepr's 3 levels are not shown.
    let nested = vhost.send("add", &json!([[[[["deep"]]]], 1]).to_string(), &[]);
    eventually("nested task known", WAIT, || {
        (get(&c, &format!("/api/task/info/{nested}")).0 == 200).then_some(())
    });
    let (status, answer) = post(&c, OP, &format!("/api/task/retry/{nested}"), None);
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["parameter"], "args[0][0][0]", "{answer}");
}

/// The message celeriac publishes has the shape of the one Celery
/// published for the same task: properties, header names, types and
/// values, and body.
#[test]
fn the_published_message_matches_celerys() {
    let vhost = TestVhost::new("retry-shape");
    let c = start(&vhost);
    // Celery declares `capture` when it publishes; nobody consumes it.
    let id = vhost.send(
        "fail_until",
        r#"["/nonexistent", 2.5, [1, null]]"#,
        &["--queue", "capture", "--kwargs", r#"{"z": "it's"}"#],
    );
    eventually("task known", WAIT, || {
        (get(&c, &format!("/api/task/info/{id}")).0 == 200).then_some(())
    });
    let (status, answer) = post(&c, OP, &format!("/api/task/retry/{id}"), None);
    assert_eq!(status, 200, "{answer}");
    let new_id = answer["task-id"].as_str().unwrap().to_string();

    let mgmt = &settings().mgmt;
    let mut messages = Vec::new();
    eventually("both messages in `capture`", WAIT, || {
        messages.extend(mgmt.get_messages(&vhost.name, "capture", 2));
        (messages.len() >= 2).then_some(())
    });
    let by_id = |want: &str| {
        messages
            .iter()
            .find(|m| m["properties"]["correlation_id"] == want)
            .unwrap_or_else(|| panic!("message {want} in {messages:#?}"))
            .clone()
    };
    let (celery, ours) = (by_id(&id), by_id(&new_id));
    same_shape(&celery, &ours, &new_id, &[]);

    // Flower's send-task on the default route, with `expires`, against
    // `add.apply_async((2, 3), expires=60)`.
    let id = vhost.send("add", "[2, 3]", &["--expires", "60"]);
    let body = r#"{"args": [2, 3], "expires": 60}"#;
    let (status, answer) = post(&c, OP, "/api/task/send-task/tasks.add", Some(body));
    assert_eq!(status, 200, "{answer}");
    let new_id = answer["task-id"].as_str().unwrap().to_string();
    let mut messages = Vec::new();
    eventually("both messages in `celery`", WAIT, || {
        messages.extend(mgmt.get_messages(&vhost.name, "celery", 2));
        (messages.len() >= 2).then_some(())
    });
    let by_id = |want: &str| {
        messages
            .iter()
            .find(|m| m["properties"]["correlation_id"] == want)
            .unwrap_or_else(|| panic!("message {want} in {messages:#?}"))
            .clone()
    };
    let (celery, ours) = (by_id(&id), by_id(&new_id));
    same_shape(&celery, &ours, &new_id, &["expires"]);
    assert_eq!(
        ours["properties"]["priority"],
        celery["properties"]["priority"]
    );
    assert_eq!(ours["properties"]["expiration"], "60000");
    assert_eq!(celery["properties"]["expiration"], "60000");
    for m in [&celery, &ours] {
        let expires = m["properties"]["headers"]["expires"].as_str().unwrap();
        assert!(expires.ends_with("+00:00"), "{expires}");
    }
}

/// `ours` has the routing, properties, headers (names and values but the
/// ids, origin and `timed` ones) and body of `celery`.
fn same_shape(celery: &Value, ours: &Value, new_id: &str, timed: &[&str]) {
    assert_eq!(ours["routing_key"], celery["routing_key"]);
    assert_eq!(ours["exchange"], celery["exchange"]);

    let (cp, op) = (&celery["properties"], &ours["properties"]);
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(op), keys(cp), "properties");
    for p in ["content_type", "content_encoding", "delivery_mode"] {
        assert_eq!(op[p], cp[p], "{p}");
    }
    let (ch, oh) = (&cp["headers"], &op["headers"]);
    assert_eq!(keys(oh), keys(ch), "header names");
    for h in [
        "lang",
        "task",
        "shadow",
        "eta",
        "expires",
        "group",
        "group_index",
        "retries",
        "timelimit",
        "parent_id",
        "argsrepr",
        "kwargsrepr",
        "ignore_result",
        "replaced_task_nesting",
        "stamped_headers",
        "stamps",
    ] {
        if !timed.contains(&h) {
            assert_eq!(oh[h], ch[h], "header {h}");
        }
    }
    assert_eq!(oh["id"], new_id);
    assert_eq!(oh["root_id"], new_id);
    assert!(oh["origin"].as_str().unwrap().starts_with("celeriac@"));
    let body =
        |m: &Value| -> Value { serde_json::from_str(m["payload"].as_str().unwrap()).unwrap() };
    assert_eq!(body(ours), body(celery));
}
