//! Every way a task ends, run by a real Celery worker and seen through
//! celeriac's Flower API and metrics (docs/celery-protocol.md §2.4, §3).

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Celeriac, TestVhost, Worker, WorkerOpts};

const W1: &str = "w1@test";
const STATE_TIMEOUT: Duration = Duration::from_secs(30);

/// A vhost, celeriac consuming its events, and one worker (fields drop in
/// this order: the worker, celeriac, then the vhost).
struct Setup {
    _worker: Worker,
    celeriac: Celeriac,
    vhost: TestVhost,
}

fn setup(test: &str) -> Setup {
    let vhost = TestVhost::new(test);
    let celeriac = Celeriac::start(&vhost, &[]);
    // Events published before celeriac's queue exists are lost, so the
    // worker starts only once celeriac consumes.
    celeriac.wait_readyz(200, Duration::from_secs(30));
    let worker = Worker::start(&vhost, W1, WorkerOpts::default());
    Setup {
        _worker: worker,
        celeriac,
        vhost,
    }
}

fn f64_of(task: &Value, field: &str) -> f64 {
    task[field]
        .as_f64()
        .unwrap_or_else(|| panic!("`{field}` is not a number in {task:#}"))
}

/// Waits until counter `name` with `labels` reaches `want` (counters only
/// grow, so overshooting fails at once).
fn wait_counter(c: &Celeriac, name: &str, labels: &[(&str, &str)], want: f64) {
    support::eventually(
        &format!("{name}{labels:?} to reach {want}"),
        Duration::from_secs(15),
        || {
            let got = c.metric_or_zero(name, labels);
            assert!(got <= want, "{name}{labels:?} is {got}, above {want}");
            (got == want).then_some(())
        },
    );
}

fn task_labels(name: &str) -> [(&str, &str); 3] {
    [("name", name), ("hostname", W1), ("queue_name", "celery")]
}

#[test]
fn succeeded_task_has_result_runtime_worker_and_client() {
    let s = setup("success");
    let id = s.vhost.send("add", "[2, 3]", &[]);
    let task = s.celeriac.wait_task_state(&id, "SUCCESS", STATE_TIMEOUT);

    assert_eq!(task["uuid"], id.as_str());
    assert_eq!(task["name"], "tasks.add");
    assert_eq!(task["args"], "(2, 3)");
    assert_eq!(task["kwargs"], "{}");
    assert_eq!(task["result"], "5");
    assert_eq!(task["worker"], W1);
    assert_eq!(task["retries"], 0);
    let runtime = f64_of(&task, "runtime");
    assert!(runtime > 0.0 && runtime < 5.0, "runtime {runtime}");
    let (received, started, succeeded) = (
        f64_of(&task, "received"),
        f64_of(&task, "started"),
        f64_of(&task, "succeeded"),
    );
    assert!(received <= started && started <= succeeded, "{task:#}");
    assert!(task["failed"].is_null() && task["revoked"].is_null());

    // task-sent often arrives after task-received (§2.4): wait for it.
    let task = support::eventually("task-sent to set `client`", Duration::from_secs(10), || {
        let t = s.celeriac.task(&id)?;
        t["client"].is_string().then_some(t)
    });
    let client = task["client"].as_str().unwrap_or_default();
    assert!(client.starts_with("gen"), "client nodename {client:?}");
    assert!(task["sent"].is_f64(), "{task:#}");
    assert_eq!(
        task["state"], "SUCCESS",
        "a late task-sent must not regress the state"
    );

    wait_counter(
        &s.celeriac,
        "celery_task_succeeded_total",
        &task_labels("tasks.add"),
        1.0,
    );
    wait_counter(
        &s.celeriac,
        "celery_task_received_total",
        &task_labels("tasks.add"),
        1.0,
    );
    wait_counter(
        &s.celeriac,
        "celery_task_sent_total",
        &[("name", "tasks.add")],
        1.0,
    );
    assert_eq!(
        s.celeriac
            .metric_or_zero("celery_task_failed_total", &[("name", "tasks.add")]),
        0.0
    );
}

#[test]
fn failed_task_keeps_exception_and_traceback() {
    let s = setup("failure");
    let id = s.vhost.send("fail", "[\"boom\"]", &[]);
    let task = s.celeriac.wait_task_state(&id, "FAILURE", STATE_TIMEOUT);

    assert_eq!(task["name"], "tasks.fail");
    assert_eq!(task["exception"], "ValueError('boom')");
    let tb = task["traceback"].as_str().unwrap_or_default();
    assert!(
        tb.starts_with("Traceback (most recent call last):") && tb.contains("ValueError: boom"),
        "traceback {tb:?}"
    );
    assert!(task["failed"].is_f64() && task["succeeded"].is_null());
    assert_eq!(task["worker"], W1);

    let mut labels = task_labels("tasks.fail").to_vec();
    labels.push(("exception", "ValueError"));
    wait_counter(&s.celeriac, "celery_task_failed_total", &labels, 1.0);
    assert_eq!(
        s.celeriac
            .metric_or_zero("celery_task_succeeded_total", &[("name", "tasks.fail")]),
        0.0
    );
}

#[test]
fn retried_task_counts_its_retry_and_ends_successful() {
    let s = setup("retry");
    let id = s.vhost.send("flaky", "[7]", &[]);
    let task = s.celeriac.wait_task_state(&id, "SUCCESS", STATE_TIMEOUT);

    assert_eq!(task["retries"], 1, "{task:#}");
    assert_eq!(task["result"], "'ok after 1 retries'");
    assert!(task["retried"].is_f64(), "{task:#}");
    // The re-sent message names the task as its own parent (§2.5 quirk);
    // Flower then lists it as its own child, and so does the API.
    assert_eq!(task["parent_id"], id.as_str(), "{task:#}");
    assert_eq!(task["children"], serde_json::json!([id]), "{task:#}");

    wait_counter(
        &s.celeriac,
        "celery_task_retried_total",
        &task_labels("tasks.flaky"),
        1.0,
    );
    wait_counter(
        &s.celeriac,
        "celery_task_succeeded_total",
        &task_labels("tasks.flaky"),
        1.0,
    );
}

#[test]
fn task_revoked_before_it_starts_is_revoked() {
    let s = setup("revoke-before-start");
    // The countdown leaves time to revoke while the worker holds it for its
    // ETA; the worker emits task-revoked when the ETA fires (§3.4 b).
    let id = s.vhost.send("add", "[1, 1]", &["--countdown", "6"]);
    s.celeriac.wait_task_state(&id, "RECEIVED", STATE_TIMEOUT);
    s.vhost.revoke(&id, false);
    let task = s.celeriac.wait_task_state(&id, "REVOKED", STATE_TIMEOUT);

    assert!(task["revoked"].is_f64(), "{task:#}");
    assert!(
        task["started"].is_null(),
        "a revoked task never started: {task:#}"
    );
    assert!(task["result"].is_null());
    assert_eq!(task["worker"], W1);
    wait_counter(
        &s.celeriac,
        "celery_task_revoked_total",
        &task_labels("tasks.add"),
        1.0,
    );
    assert_eq!(
        s.celeriac
            .metric_or_zero("celery_task_succeeded_total", &[("name", "tasks.add")]),
        0.0
    );
}

#[test]
fn running_task_terminated_by_revoke_is_revoked() {
    let s = setup("revoke-terminate");
    let id = s.vhost.send("sleep", "[30]", &[]);
    s.celeriac.wait_task_state(&id, "STARTED", STATE_TIMEOUT);
    s.vhost.revoke(&id, true);
    let task = s.celeriac.wait_task_state(&id, "REVOKED", STATE_TIMEOUT);

    assert!(
        task["started"].is_f64() && task["revoked"].is_f64(),
        "{task:#}"
    );
    assert!(task["succeeded"].is_null(), "{task:#}");
    // Only the worker that ran it sends task-revoked with terminated=true.
    assert_eq!(task["worker"], W1);
    wait_counter(
        &s.celeriac,
        "celery_task_revoked_total",
        &task_labels("tasks.sleep"),
        1.0,
    );
}

#[test]
fn expired_task_is_revoked() {
    let s = setup("expired");
    let id = s
        .vhost
        .send("add", "[5, 5]", &["--countdown", "3", "--expires", "1"]);
    let task = s.celeriac.wait_task_state(&id, "REVOKED", STATE_TIMEOUT);

    assert!(task["expires"].is_string(), "{task:#}");
    assert!(
        task["started"].is_null() && task["result"].is_null(),
        "{task:#}"
    );
    wait_counter(
        &s.celeriac,
        "celery_task_revoked_total",
        &task_labels("tasks.add"),
        1.0,
    );
}

#[test]
fn countdown_task_runs_after_its_eta() {
    let s = setup("countdown");
    let countdown = 2.0;
    let before_send = Instant::now();
    let id = s.vhost.send("add", "[10, 20]", &["--countdown", "2"]);
    let task = s.celeriac.wait_task_state(&id, "SUCCESS", STATE_TIMEOUT);
    let waited = before_send.elapsed().as_secs_f64();

    assert_eq!(task["result"], "30");
    assert!(
        waited >= countdown,
        "SUCCESS seen {waited:.2} s after sending"
    );
    let eta = task["eta"]
        .as_str()
        .unwrap_or_else(|| panic!("eta not set: {task:#}"));
    let eta = chrono::DateTime::parse_from_rfc3339(eta)
        .unwrap_or_else(|e| panic!("eta {eta:?} is not ISO-8601: {e}"));
    let eta = eta.timestamp_micros() as f64 / 1e6;
    let started = f64_of(&task, "started");
    let received = f64_of(&task, "received");
    assert!(started >= eta - 0.05, "started {started} before eta {eta}");
    assert!(received < eta, "received {received} is before the ETA wait");
}

#[test]
fn custom_progress_event_sets_a_custom_state_then_success() {
    let s = setup("progress");
    let id = s.vhost.send("progress", "[2, 1.5]", &[]);
    let task = s.celeriac.wait_task_state(&id, "PROGRESS", STATE_TIMEOUT);
    assert_eq!(task["name"], "tasks.progress");
    let task = s.celeriac.wait_task_state(&id, "SUCCESS", STATE_TIMEOUT);
    assert_eq!(task["result"], "2");
    wait_counter(
        &s.celeriac,
        "celery_task_succeeded_total",
        &task_labels("tasks.progress"),
        1.0,
    );
}
