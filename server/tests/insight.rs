//! Insight beyond what events say outright, with real workers: tasks lost
//! with a killed worker, failures grouped by fingerprint, and queue latency.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{eventually, Celeriac, TestVhost, Worker, WorkerOpts};

fn start(test: &str, extra: &[&str]) -> (TestVhost, Celeriac) {
    let vhost = TestVhost::new(test);
    let celeriac = Celeriac::start(&vhost, extra);
    celeriac.wait_readyz(200, Duration::from_secs(30));
    (vhost, celeriac)
}

fn ids(list: &Value) -> Vec<String> {
    list.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn a_task_running_on_a_killed_worker_becomes_lost_after_expiry() {
    let (vhost, celeriac) = start("lost", &[]);
    let mut worker = Worker::start(&vhost, "w1@test", WorkerOpts::default());
    eventually("w1 online", Duration::from_secs(30), || {
        celeriac.worker("w1@test").filter(|w| w["status"] == true)
    });
    let id = vhost.send("sleep", "[300]", &[]);
    celeriac.wait_task_state(&id, "STARTED", Duration::from_secs(30));
    let labels = [
        ("name", "tasks.sleep"),
        ("hostname", "w1@test"),
        ("queue_name", "celery"),
    ];
    assert_eq!(
        celeriac.metric_or_zero("celeriac_tasks_lost_total", &labels),
        0.0
    );

    worker.kill();
    // Expiry is the last heartbeat + 2 × 2 s; the liveness tick runs every
    // second. Generous: the machine may be loaded.
    let task = celeriac.wait_task_state(&id, "LOST", Duration::from_secs(45));
    assert_eq!(task["worker"], "w1@test", "{task:#}");
    assert_eq!(task["name"], "tasks.sleep");
    let w = celeriac
        .worker("w1@test")
        .expect("the worker is still listed");
    assert_eq!(w["status"], false);

    let listed = celeriac.get_json("/api/tasks?state=LOST");
    assert_eq!(ids(&listed), vec![id.clone()], "{listed:#}");
    let lower = celeriac.get_json("/api/tasks?state=lost");
    assert_eq!(ids(&lower), vec![id.clone()]);
    let started = celeriac.get_json("/api/tasks?state=STARTED");
    assert!(ids(&started).is_empty(), "{started:#}");

    eventually(
        "celeriac_tasks_lost_total to be 1",
        Duration::from_secs(10),
        || (celeriac.metric("celeriac_tasks_lost_total", &labels) == Some(1.0)).then_some(()),
    );
}
