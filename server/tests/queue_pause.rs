//! Pausing a queue across the cluster (`POST /api/queue/pause/{queue}`,
//! `/resume/{queue}`) against two real Celery workers consuming it: while
//! paused, tasks sent to it stay in the queue and none runs, a worker
//! restarted meanwhile is paused again by celeriac, and resume drains the
//! queue. Viewers are refused; every action is in the audit log.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{eventually, Auth, Celeriac, TestVhost, Worker, WorkerOpts};

/// Generous: a loaded machine runs workers, pollers and the keeper late.
const WAIT: Duration = Duration::from_secs(60);
const OP: Auth<'static> = Auth::Basic("ops", "Pause-ops-5521");
const VIEWER: Auth<'static> = Auth::Basic("view", "Pause-view-5521");
const QUEUE: &str = "held";
const SENT: usize = 5;

fn post(c: &Celeriac, auth: Auth<'_>, path: &str) -> (u16, Value) {
    let (status, text) = c.request("POST", path, auth, &[], None);
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("POST {path}: not JSON ({e}): {text}"));
    (status, json)
}

fn get(c: &Celeriac, path: &str) -> Value {
    let (status, text) = c.request("GET", path, OP, &[], None);
    assert_eq!(status, 200, "GET {path}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {text}"))
}

fn depth(c: &Celeriac) -> Option<u64> {
    get(c, "/api/queues/length")["active_queues"]
        .as_array()?
        .iter()
        .find(|q| q["name"] == QUEUE)?["messages_ready"]
        .as_u64()
}

fn worker(vhost: &TestVhost, name: &str) -> Worker {
    Worker::start(
        vhost,
        name,
        WorkerOpts {
            queues: vec![QUEUE.into()],
            ..WorkerOpts::default()
        },
    )
}

fn audit(c: &Celeriac) -> Vec<Value> {
    get(c, "/api/audit?limit=100")["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_paused_queue_holds_its_tasks_across_a_worker_restart_until_resumed() {
    let vhost = TestVhost::new("queue-pause");
    let _w1 = worker(&vhost, "pa1@test");
    let mut w2 = worker(&vhost, "pa2@test");
    let c = Celeriac::start(
        &vhost,
        &[
            "--basic-auth",
            "ops:Pause-ops-5521",
            "--viewer",
            "view:Pause-view-5521",
            "--broker-stats-interval",
            "1",
            "--open-metrics",
        ],
    );
    c.wait_readyz(200, WAIT);

    let (status, body) = post(&c, VIEWER, &format!("/api/queue/pause/{QUEUE}"));
    assert_eq!(status, 403, "{body}");
    assert!(get(&c, "/api/queues/paused")["queues"]
        .as_array()
        .unwrap()
        .is_empty());

    // Every worker consuming the queue is asked and stops; one too slow to
    // answer the first broadcast is caught by celeriac's next round.
    let (status, body) = post(&c, OP, &format!("/api/queue/pause/{QUEUE}"));
    assert_eq!(status, 200, "{body}");
    let replies = body["replies"].as_object().unwrap();
    assert!(!replies.is_empty(), "{body}");
    for (w, reply) in replies {
        let ok = reply["ok"].as_str().unwrap_or_default();
        assert!(ok.contains("no longer consuming"), "{w}: {body}");
    }
    let both = serde_json::json!(["pa1@test", "pa2@test"]);
    let paused = eventually("both workers paused", WAIT, || {
        let paused = get(&c, "/api/queues/paused");
        (paused["queues"][0]["workers"] == both).then_some(paused)
    });
    let p = &paused["queues"][0];
    assert_eq!(
        (p["queue"].as_str(), p["by"].as_str()),
        (Some(QUEUE), Some("ops")),
        "{paused}"
    );
    assert_eq!(
        c.metric("celeriac_queue_paused", &[("queue_name", QUEUE)]),
        Some(1.0)
    );

    // A restarted worker consumes its queues again; celeriac cancels the
    // paused one on its new process.
    let reapplied = |c: &Celeriac| {
        audit(c)
            .into_iter()
            .filter(|e| {
                e["user"] == "celeriac"
                    && e["command"] == "cancel_consumer"
                    && e["target"] == serde_json::json!(["pa2@test"])
                    && e["status"] == 200
            })
            .count()
    };
    let before = reapplied(&c);
    w2.stop();
    let _w2 = worker(&vhost, "pa2@test");
    eventually(
        "celeriac to pause the queue on the restarted worker",
        WAIT,
        || (reapplied(&c) > before).then_some(()),
    );

    // Tasks sent while paused wait in the queue; none runs.
    let ids = vhost.send_many("add", "[2, 3]", SENT, &["--queue", QUEUE]);
    eventually(&format!("{SENT} tasks waiting in {QUEUE}"), WAIT, || {
        (depth(&c) == Some(SENT as u64)).then_some(())
    });
    // Longer than a keeper round and a stats refresh: still nothing taken.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(depth(&c), Some(SENT as u64));
    for id in &ids {
        let t = c.request("GET", &format!("/api/task/info/{id}"), OP, &[], None);
        let state = serde_json::from_str::<Value>(&t.1).unwrap_or(Value::Null)["state"].clone();
        assert!(
            state != "SUCCESS" && state != "STARTED" && state != "RECEIVED",
            "task {id} ran while {QUEUE} was paused: {state}"
        );
    }

    // Resume: both workers (the restarted one too) consume again.
    let (status, body) = post(&c, VIEWER, &format!("/api/queue/resume/{QUEUE}"));
    assert_eq!(status, 403, "{body}");
    let (status, body) = post(&c, OP, &format!("/api/queue/resume/{QUEUE}"));
    assert_eq!(status, 200, "{body}");
    let asked =
        body["replies"].as_object().unwrap().len() + body["no_reply"].as_array().unwrap().len();
    assert_eq!(asked, 2, "both workers the pause reached are asked: {body}");
    for (w, reply) in body["replies"].as_object().unwrap() {
        assert!(reply["ok"].is_string(), "{w}: {body}");
    }
    for id in &ids {
        eventually(&format!("task {id} to succeed after resume"), WAIT, || {
            let (status, text) = c.request("GET", &format!("/api/task/info/{id}"), OP, &[], None);
            let t: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            (status == 200 && t["state"] == "SUCCESS").then_some(())
        });
    }
    eventually(&format!("{QUEUE} to drain"), WAIT, || {
        (depth(&c) == Some(0)).then_some(())
    });
    assert!(get(&c, "/api/queues/paused")["queues"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(
        c.metric("celeriac_queue_paused", &[("queue_name", QUEUE)]),
        None
    );
    let (status, body) = post(&c, OP, &format!("/api/queue/resume/{QUEUE}"));
    assert_eq!(status, 404, "{body}");

    let entries = audit(&c);
    let by = |user: &str, command: &str| {
        entries.iter().any(|e| {
            e["user"] == user && e["command"] == command && e["arguments"]["queue"] == QUEUE
        })
    };
    assert!(by("ops", "cancel_consumer"), "{entries:#?}");
    assert!(by("ops", "add_consumer"), "{entries:#?}");
    assert!(by("celeriac", "cancel_consumer"), "{entries:#?}");
    assert!(!entries.iter().any(|e| e["user"] == "view"), "{entries:#?}");
}
