//! The charts' series are kept by the server from the start, so a page
//! that opens later draws them full: depth of a queue, successes per
//! second of a task type, and a worker's activity, sampled every 10 s.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{eventually, Celeriac, TestVhost, Worker, WorkerOpts};

fn series(c: &Celeriac, query: &str) -> Value {
    c.get_json(&format!("/api/series?{query}"))
}

#[test]
fn queue_task_and_worker_series_fill_without_a_page_open() {
    let vhost = TestVhost::new("series");
    let c = Celeriac::start(&vhost, &["--broker-stats-interval", "1"]);
    c.wait_readyz(200, Duration::from_secs(30));
    let _w = Worker::start(&vhost, "w1@series", WorkerOpts::default());
    // Messages nobody consumes, and tasks that run.
    vhost.send_many("add", "[1, 1]", 4, &["--queue", "parked"]);
    for id in vhost.send_many("add", "[1, 2]", 6, &[]) {
        c.wait_task_state(&id, "SUCCESS", Duration::from_secs(60));
    }

    let depth = eventually("parked's depth sampled", Duration::from_secs(30), || {
        let s = series(&c, "metric=queue_depth&name=parked");
        let points = s["series"]["parked"].as_array()?.clone();
        points.iter().any(|p| p[1] == 4.0).then_some(s)
    });
    assert_eq!(depth["step"], 10.0, "{depth}");
    assert_eq!(depth["range"], "1h");
    assert_eq!(
        depth["series"].as_object().unwrap().len(),
        1,
        "only the named queue"
    );

    // Rates need two samples; more successes in between give a rate > 0.
    let ids = vhost.send_many("add", "[2, 2]", 5, &[]);
    for id in &ids {
        c.wait_task_state(id, "SUCCESS", Duration::from_secs(60));
    }
    eventually(
        "a success rate for tasks.add",
        Duration::from_secs(40),
        || {
            let s = series(&c, "metric=task_succeeded_per_second&range=24h");
            let points = s["series"]["tasks.add"].as_array()?.clone();
            points
                .iter()
                .any(|p| p[1].as_f64().is_some_and(|v| v > 0.0))
                .then_some(())
        },
    );
    let active = series(&c, "metric=worker_active");
    assert!(
        active["series"]["w1@series"]
            .as_array()
            .is_some_and(|p| !p.is_empty()),
        "{active}"
    );

    for (query, param) in [
        ("metric=nope", "metric"),
        ("", "metric"),
        ("metric=queue_depth&range=2h", "range"),
    ] {
        let (status, body) = c.get(&format!("/api/series?{query}"));
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(param), "{query}: {body}");
    }
}
