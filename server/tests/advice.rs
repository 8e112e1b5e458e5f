//! Capacity and routing advice from real workers: a skewed mix of many fast
//! tasks and a few slow ones in one queue served by one small worker.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{eventually, Celeriac, TestVhost, Worker, WorkerOpts};

/// The findings of `kind` in `/api/advice`.
fn findings<'a>(advice: &'a Value, kind: &str) -> Vec<&'a Value> {
    advice["findings"]
        .as_array()
        .map(|f| f.iter().filter(|f| f["kind"] == kind).collect())
        .unwrap_or_default()
}

fn names(finding: &Value) -> Vec<&str> {
    finding["tasks"]
        .as_array()
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn the_advice_names_the_slow_type_to_route_away_and_its_time_limit() {
    let vhost = TestVhost::new("advice");
    // Inspect every second, so the worker's queues, pool and limits are
    // known soon.
    let celeriac = Celeriac::start(&vhost, &["--inspect-interval", "1"]);
    celeriac.wait_readyz(200, Duration::from_secs(30));
    // Every task of the worker may run 2 s before SoftTimeLimitExceeded.
    vhost.set_celery_env("CELERY_TASK_SOFT_TIME_LIMIT", "2");
    let _worker = Worker::start(
        &vhost,
        "w1@test",
        WorkerOpts {
            concurrency: 2,
            ..WorkerOpts::default()
        },
    );
    let fast = 150;
    let slow = 6;
    // The slow ones first, so the fast ones queue behind them.
    let mut ids = vhost.send_many("sleep", "[1.85]", slow, &[]);
    ids.extend(vhost.send_many("add", "[1, 2]", fast, &[]));
    for id in &ids {
        let t = celeriac.wait_task_state(id, "SUCCESS", Duration::from_secs(60));
        assert_eq!(t["worker"], "w1@test");
    }

    // The insight subscriber sees the last endings at its next feed tick,
    // and the worker's pool at the next inspect refresh.
    let advice = eventually(
        "/api/advice to count every task, with the worker's pool known",
        Duration::from_secs(30),
        || {
            let a = celeriac.get_json("/api/advice");
            let done = a["queues"][0]["completed"] == (fast + slow) as u64;
            let known = a["queues"][0]["processes"] == 2;
            (done && known).then_some(a)
        },
    );
    let routes = findings(&advice, "route_slow_tasks");
    assert_eq!(routes.len(), 1, "{advice:#}");
    let route = routes[0];
    assert_eq!(route["queue"], "celery", "{route:#}");
    assert_eq!(
        names(route),
        ["tasks.sleep"],
        "only the slow type: {route:#}"
    );
    let summary = route["summary"].as_str().unwrap_or_default();
    assert!(summary.contains("`tasks.sleep` (p95 1.8"), "{summary}");
    let snippets: Vec<&str> = route["snippets"]
        .as_array()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(
        snippets[0],
        "app.conf.task_routes = {'tasks.sleep': {'queue': 'celery.slow'}}"
    );
    assert!(
        snippets[1].starts_with("celery -A <app> worker -Q celery.slow -c "),
        "{snippets:?}"
    );
    // The slow type takes nearly all of the processing time: a warning.
    assert_eq!(route["severity"], "warning", "{route:#}");

    // The queue's figures, from events and inspect.
    let q = &advice["queues"][0];
    assert_eq!(q["name"], "celery", "{advice:#}");
    assert_eq!(q["workers"], serde_json::json!(["w1@test"]));
    assert_eq!(q["arrived"], (fast + slow) as u64, "{q:#}");
    assert_eq!(q["completed"], (fast + slow) as u64, "{q:#}");
    let types = q["task_types"].as_array().expect("task types");
    let sleep = types
        .iter()
        .find(|t| t["name"] == "tasks.sleep")
        .expect("tasks.sleep");
    let p95 = sleep["runtime_p95"].as_f64().expect("a p95");
    assert!((1.85 * 0.99..2.0 * 1.01).contains(&p95), "{sleep:#}");
    assert!(
        sleep["work_share"].as_f64().is_some_and(|s| s > 0.5),
        "{sleep:#}"
    );
    assert_eq!(
        sleep["soft_time_limit"], 2.0,
        "from inspect conf: {sleep:#}"
    );
    // A light load on 2 processes: no capacity finding.
    assert!(findings(&advice, "under_capacity").is_empty(), "{advice:#}");
    assert!(
        q["processes_needed"].as_u64().is_some_and(|n| n <= 2),
        "{q:#}"
    );

    // 1.85 s of a 2 s soft limit: within 10 %.
    let near = findings(&advice, "near_time_limit");
    assert_eq!(near.len(), 1, "{advice:#}");
    assert_eq!(names(near[0]), ["tasks.sleep"]);
    assert!(
        near[0]["summary"]
            .as_str()
            .is_some_and(|s| s.contains("task_soft_time_limit")),
        "{:#}",
        near[0]
    );

    // Findings come most severe first.
    let order: Vec<u8> = advice["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| match f["severity"].as_str() {
            Some("critical") => 0,
            Some("warning") => 1,
            _ => 2,
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] <= w[1]), "{advice:#}");

    let hour = celeriac.get_json("/api/advice?window=1h");
    assert_eq!(hour["window"], "1h");
    assert_eq!(findings(&hour, "route_slow_tasks").len(), 1, "{hour:#}");
    let (status, body) = celeriac.get("/api/advice?window=all");
    assert_eq!(status, 400, "{body}");
    let body: Value = serde_json::from_str(&body).expect("a JSON error");
    assert_eq!(body["parameter"], "window", "{body:#}");
}
