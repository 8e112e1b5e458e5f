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

/// `/api/failures` once it lists `n` groups.
fn failure_groups(celeriac: &Celeriac, query: &str, n: usize) -> Vec<Value> {
    eventually(
        &format!("{n} failure groups in /api/failures{query}"),
        Duration::from_secs(30),
        || {
            let body = celeriac.get_json(&format!("/api/failures{query}"));
            let groups = body["groups"].as_array()?.clone();
            (groups.len() == n).then_some(groups)
        },
    )
}

fn group_of<'a>(groups: &'a [Value], task: &str) -> &'a Value {
    groups
        .iter()
        .find(|g| {
            g["tasks"]
                .as_array()
                .is_some_and(|t| t.iter().any(|n| n == task))
        })
        .unwrap_or_else(|| panic!("no group for {task}: {groups:#?}"))
}

#[test]
fn failures_of_one_bug_group_together_and_a_resolved_group_reopens() {
    let (vhost, celeriac) = start("failures", &[]);
    let _worker = Worker::start(&vhost, "w1@test", WorkerOpts::default());
    // One bug (`int(value)` in `_parse_amount`) from two call sites, with
    // different arguments; and another bug in another task.
    let direct = vhost.send("bill", r#"["abc", "direct"]"#, &[]);
    let via = vhost.send("bill", r#"["x1", "line"]"#, &[]);
    let other = vhost.send("validate", r#"["", "empty"]"#, &[]);
    for id in [&direct, &via, &other] {
        celeriac.wait_task_state(id, "FAILURE", Duration::from_secs(30));
    }
    let groups = eventually("the bill group to count 2", Duration::from_secs(30), || {
        let groups = failure_groups(&celeriac, "", 2);
        (group_of(&groups, "tasks.bill")["count"] == 2).then_some(groups)
    });
    let bill = group_of(&groups, "tasks.bill").clone();
    let validate = group_of(&groups, "tasks.validate").clone();
    assert_ne!(bill["fingerprint"], validate["fingerprint"]);
    assert_eq!(bill["exception"], "ValueError");
    assert_eq!(bill["workers"], serde_json::json!(["w1@test"]));
    assert_eq!(bill["state"], "open");
    assert!(
        bill["frames"][0]
            .as_str()
            .is_some_and(|f| f.contains("_parse_amount")),
        "{bill:#}"
    );
    assert!(bill["sample"]["traceback"]
        .as_str()
        .is_some_and(|t| t.contains("Traceback")));
    assert_eq!(validate["count"], 1);
    let fp = bill["fingerprint"].as_str().unwrap().to_owned();
    let fp_label = [("fingerprint", fp.as_str()), ("exception", "ValueError")];
    eventually("the group's counter at 2", Duration::from_secs(10), || {
        (celeriac.metric("celeriac_failure_group_events_total", &fp_label) == Some(2.0))
            .then_some(())
    });
    assert_eq!(celeriac.metric("celeriac_failure_groups", &[]), Some(2.0));

    // Filters, and bad parameters named.
    let only = celeriac.get_json("/api/failures?task=tasks.validate");
    assert_eq!(only["total"], 1);
    let (status, body) = celeriac.get("/api/failures?state=bogus");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"parameter\":\"state\""), "{body}");
    let (status, body) = celeriac.get("/api/failures?limit=0");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"parameter\":\"limit\""), "{body}");
    let one = celeriac.get_json("/api/failures?limit=1");
    assert_eq!(
        (one["groups"].as_array().map(Vec::len), &one["total"]),
        (Some(1), &serde_json::json!(2))
    );

    // Resolve: audited; listed as resolved.
    let (status, body) = celeriac.post(&format!("/api/failures/{fp}/resolve"), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "resolved");
    assert!(body["resolved"]["by"].is_string(), "{body:#}");
    let (status, _) = celeriac.post("/api/failures/0000000000000000/resolve", None);
    assert_eq!(status, 404);
    let resolved = failure_groups(&celeriac, "?state=resolved", 1);
    assert_eq!(resolved[0]["fingerprint"], fp.as_str());
    let open = failure_groups(&celeriac, "?state=open", 1);
    assert_eq!(open[0]["fingerprint"], validate["fingerprint"]);
    let audit = celeriac.get_json("/api/audit?limit=10");
    assert!(
        audit.to_string().contains("failure_resolve"),
        "the resolve is audited: {audit:#}"
    );

    // The same bug again: the group reopens, counted on.
    let again = vhost.send("bill", r#"["zz", "direct"]"#, &[]);
    celeriac.wait_task_state(&again, "FAILURE", Duration::from_secs(30));
    let reopened = eventually("the bill group to reopen", Duration::from_secs(30), || {
        let groups = failure_groups(&celeriac, "?state=open", 2);
        let g = group_of(&groups, "tasks.bill").clone();
        (g["count"] == 3).then_some(g)
    });
    assert_eq!(reopened["fingerprint"], fp.as_str());
    assert!(reopened["reopened_at"].is_f64(), "{reopened:#}");
    assert!(
        reopened["resolved"]["at"].is_f64(),
        "the last resolve is kept"
    );
}

/// `/api/queues/latency` entry of `queue`, once celeriac knows it.
fn latency_of(celeriac: &Celeriac, queue: &str) -> Option<Value> {
    let body = celeriac.get_json("/api/queues/latency");
    body["queues"]
        .as_array()?
        .iter()
        .find(|q| q["name"] == queue)
        .cloned()
}

#[test]
fn the_oldest_unconsumed_task_ages_until_a_worker_takes_it() {
    let (vhost, celeriac) = start("latency", &[]);
    // No worker consumes `slowq` yet; the test app sends task-sent events.
    let ids = vhost.send_many("add", "[1, 2]", 2, &["--queue", "slowq"]);
    let first = eventually(
        "two tasks waiting in slowq",
        Duration::from_secs(30),
        || {
            let q = latency_of(&celeriac, "slowq")?;
            (q["waiting"] == 2).then(|| q["oldest_task_age"].as_f64())?
        },
    );
    let grown = eventually("the oldest age to grow", Duration::from_secs(30), || {
        let q = latency_of(&celeriac, "slowq")?;
        q["oldest_task_age"].as_f64().filter(|a| *a >= first + 2.0)
    });
    eventually("the exported age to grow", Duration::from_secs(30), || {
        celeriac
            .metric(
                "celeriac_queue_oldest_task_age_seconds",
                &[("queue_name", "slowq")],
            )
            .filter(|a| *a >= grown)
    });
    assert_eq!(
        celeriac.metric("celeriac_queue_tasks_waiting", &[("queue_name", "slowq")]),
        Some(2.0)
    );

    let opts = WorkerOpts {
        queues: vec!["slowq".into()],
        ..WorkerOpts::default()
    };
    let _worker = Worker::start(&vhost, "w1@test", opts);
    for id in &ids {
        celeriac.wait_task_state(id, "SUCCESS", Duration::from_secs(30));
    }
    let q = eventually("slowq drained to age 0", Duration::from_secs(30), || {
        let q = latency_of(&celeriac, "slowq")?;
        (q["waiting"] == 0 && q["oldest_task_age"] == 0.0 && q["wait_samples"] == 2).then_some(q)
    });
    // Both waited at least as long as the age seen grew to (less the
    // moment between the two sends).
    let p50 = q["wait_p50"].as_f64().expect("a p50");
    let p95 = q["wait_p95"].as_f64().expect("a p95");
    assert!(p50 >= grown - 0.5 && p95 >= p50, "{q:#}");
    eventually(
        "the exported age back at 0",
        Duration::from_secs(30),
        || {
            (celeriac.metric(
                "celeriac_queue_oldest_task_age_seconds",
                &[("queue_name", "slowq")],
            ) == Some(0.0))
            .then_some(())
        },
    );
}

/// The `tasks.sleep` entry of `/api/task/stats?window=...` once `n` of them
/// succeeded in it.
fn sleep_stats(celeriac: &Celeriac, window: &str, n: u64) -> Value {
    eventually(
        &format!("{n} tasks.sleep in /api/task/stats?window={window}"),
        Duration::from_secs(60),
        || {
            let body = celeriac.get_json(&format!("/api/task/stats?window={window}"));
            assert_eq!(body["window"], window, "{body:#}");
            assert_eq!(body["relative_error"], 0.01);
            let t = body["tasks"]
                .as_array()?
                .iter()
                .find(|t| t["name"] == "tasks.sleep")?
                .clone();
            (t["counts"]["succeeded"] == n).then_some(t)
        },
    )
}

#[test]
fn task_stats_report_the_runtime_quantiles_of_real_tasks_within_a_few_percent() {
    let (vhost, celeriac) = start("task_stats", &[]);
    let opts = WorkerOpts {
        concurrency: 4,
        ..WorkerOpts::default()
    };
    let _worker = Worker::start(&vhost, "w1@test", opts);
    let n = 20;
    let ids = vhost.send_many("sleep", "[0.29]", n, &[]);
    for id in &ids {
        celeriac.wait_task_state(id, "SUCCESS", Duration::from_secs(60));
    }
    // The worker's runtime of `time.sleep(0.29)` is 0.29 s plus a few ms of
    // its own; the Prometheus histogram would say "≤ 0.5 s".
    for window in ["5m", "1h", "all"] {
        let t = sleep_stats(&celeriac, window, n as u64);
        let runtime = &t["runtime"];
        assert_eq!(runtime["count"], n as u64, "{t:#}");
        for q in ["p50", "p95", "p99"] {
            let v = runtime[q].as_f64().unwrap_or_else(|| panic!("{q}: {t:#}"));
            assert!(
                (0.29 * 0.99..=0.29 * 1.06).contains(&v),
                "{window} runtime {q} = {v}, not within a few % of 0.29 s: {t:#}"
            );
        }
        assert_eq!(t["failure_rate"], 0.0);
        assert!(t["throughput"].as_f64().is_some_and(|x| x > 0.0), "{t:#}");
        // The test app sends task-sent, so every wait is from the publish.
        assert_eq!(t["wait"]["count"], n as u64, "{t:#}");
        assert_eq!(t["wait_from_sent"], n as u64, "{t:#}");
        let wait = t["wait"]["p50"].as_f64().expect("a wait p50");
        assert!((0.0..60.0).contains(&wait), "{t:#}");
    }

    // A worker with -E and producers with task-sent: nothing to diagnose.
    let d = celeriac.get_json("/api/diagnosis");
    assert_eq!(
        d,
        serde_json::json!({"workers_without_task_events": [], "queues_without_sent_events": []})
    );

    // The default window is 5m; a bad one is a 400 naming the parameter.
    let default = celeriac.get_json("/api/task/stats");
    assert_eq!(default["window"], "5m");
    let (status, body) = celeriac.get("/api/task/stats?window=1d");
    assert_eq!(status, 400, "{body}");
    let body: Value = serde_json::from_str(&body).expect("a JSON error");
    assert_eq!(body["parameter"], "window", "{body:#}");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("1d")),
        "{body:#}"
    );
}

/// `/api/diagnosis` once `probe` accepts it.
fn diagnosis<T>(celeriac: &Celeriac, what: &str, mut probe: impl FnMut(&Value) -> Option<T>) -> T {
    eventually(what, Duration::from_secs(60), || {
        probe(&celeriac.get_json("/api/diagnosis"))
    })
}

fn listed(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v[key].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_worker_without_dash_e_and_a_producer_without_task_sent_are_diagnosed() {
    // celeriac's own periodic enable_events would hide the problem.
    let (vhost, celeriac) = start(
        "events_off",
        &["--enable-events", "false", "--inspect-interval", "2"],
    );
    vhost.set_celery_env("CELERY_TASK_SEND_SENT_EVENT", "0");
    let opts = WorkerOpts {
        events: false,
        heartbeat_interval: Some(1.0),
        ..WorkerOpts::default()
    };
    let _worker = Worker::start(&vhost, "w1@test", opts);
    eventually("w1 online", Duration::from_secs(30), || {
        celeriac.worker("w1@test").filter(|w| w["status"] == true)
    });
    // Idle: heartbeats and no task events is no diagnosis.
    std::thread::sleep(Duration::from_secs(3));
    let d = celeriac.get_json("/api/diagnosis");
    assert_eq!(
        d["workers_without_task_events"],
        serde_json::json!([]),
        "{d:#}"
    );

    let ids = vhost.send_many("add", "[1, 2]", 3, &[]);
    let silent = diagnosis(&celeriac, "w1 diagnosed without task events", |d| {
        let w = d["workers_without_task_events"]
            .as_array()?
            .first()?
            .clone();
        (w["tasks_unseen"].as_i64()? >= 3).then_some(w)
    });
    assert_eq!(silent["hostname"], "w1@test", "{silent:#}");
    for id in &ids {
        assert!(
            celeriac.task(id).is_none(),
            "no event told celeriac of {id}"
        );
    }
    let ready = celeriac.get_json("/readyz");
    assert_eq!(
        listed(
            &ready["diagnosis"]["workers_without_task_events"],
            "hostname"
        ),
        ["w1@test"],
        "{ready:#}"
    );
    assert_eq!(
        celeriac.metric("celeriac_workers_without_task_events", &[]),
        Some(1.0)
    );

    // The one-click fix: enable_events to that worker.
    let (status, reply) = celeriac.post(
        "/api/control/enable_events",
        Some(r#"{"destination": ["w1@test"]}"#),
    );
    assert_eq!(status, 200, "{reply:#}");
    let id = vhost.send("add", "[2, 3]", &[]);
    let task = celeriac.wait_task_state(&id, "SUCCESS", Duration::from_secs(30));
    // The producer sent no task-sent: the task was first seen received.
    assert!(task["sent"].is_null(), "{task:#}");
    diagnosis(&celeriac, "the diagnosis to clear", |d| {
        (d["workers_without_task_events"] == serde_json::json!([])).then_some(())
    });
    eventually("the gauge back at 0", Duration::from_secs(10), || {
        (celeriac.metric("celeriac_workers_without_task_events", &[]) == Some(0.0)).then_some(())
    });

    // Its queue is named from the worker's active_queues.
    let q = diagnosis(&celeriac, "celery diagnosed without task-sent", |d| {
        let q = d["queues_without_sent_events"].as_array()?.first()?.clone();
        (q["queue"] == "celery").then_some(q)
    });
    assert_eq!(q["workers"], serde_json::json!(["w1@test"]), "{q:#}");
    assert_eq!(q["tasks_without_sent"], 1, "{q:#}");
    eventually("the queue gauge at 1", Duration::from_secs(10), || {
        (celeriac.metric(
            "celeriac_queue_task_sent_events_missing",
            &[("queue_name", "celery")],
        ) == Some(1.0))
        .then_some(())
    });
}

#[test]
fn a_task_started_longer_than_its_limit_is_stuck_until_it_ends() {
    let (vhost, celeriac) = start("stuck", &["--stuck-after", "2"]);
    let _worker = Worker::start(&vhost, "w1@test", WorkerOpts::default());
    let short = vhost.send("sleep", "[0.2]", &[]);
    let id = vhost.send("sleep", "[120]", &[]);
    celeriac.wait_task_state(&short, "SUCCESS", Duration::from_secs(30));
    celeriac.wait_task_state(&id, "STARTED", Duration::from_secs(30));
    let stuck = eventually("the long task to be stuck", Duration::from_secs(30), || {
        let body = celeriac.get_json("/api/tasks/stuck");
        assert_eq!(body["stuck_after"], 2.0);
        let t = body["tasks"].as_array()?.first()?.clone();
        Some(t)
    });
    assert_eq!(stuck["uuid"], id.as_str(), "{stuck:#}");
    assert_eq!(stuck["name"], "tasks.sleep");
    assert_eq!(stuck["worker"], "w1@test");
    assert_eq!(
        (stuck["limit"].as_f64(), stuck["limit_from"].as_str()),
        (Some(2.0), Some("stuck_after"))
    );
    assert!(
        stuck["running_for"].as_f64().is_some_and(|r| r > 2.0),
        "{stuck:#}"
    );
    assert_eq!(
        celeriac.metric("celeriac_tasks_stuck", &[("name", "tasks.sleep")]),
        Some(1.0)
    );

    vhost.revoke(&id, true);
    celeriac.wait_task_state(&id, "REVOKED", Duration::from_secs(30));
    eventually("no stuck task left", Duration::from_secs(10), || {
        let body = celeriac.get_json("/api/tasks/stuck");
        (body["tasks"] == serde_json::json!([])).then_some(())
    });
    assert_eq!(
        celeriac.metric_or_zero("celeriac_tasks_stuck", &[("name", "tasks.sleep")]),
        0.0
    );
}

#[test]
fn a_worker_time_limit_overrides_stuck_after() {
    let (vhost, celeriac) = start(
        "stuck_limit",
        &["--stuck-after", "2", "--inspect-interval", "1"],
    );
    vhost.set_celery_env("CELERY_TASK_TIME_LIMIT", "3600");
    let _worker = Worker::start(&vhost, "w1@test", WorkerOpts::default());
    // The limit is read from the worker's `conf` reply.
    eventually(
        "the worker's conf in the inspect cache",
        Duration::from_secs(30),
        || {
            let w = celeriac.get_json("/api/workers");
            (w["w1@test"]["conf"]["task_time_limit"].as_f64() == Some(3600.0)).then_some(())
        },
    );
    let id = vhost.send("sleep", "[30]", &[]);
    celeriac.wait_task_state(&id, "STARTED", Duration::from_secs(30));
    // Past --stuck-after, well within the worker's own hour: not stuck.
    std::thread::sleep(Duration::from_secs(5));
    let body = celeriac.get_json("/api/tasks/stuck");
    assert_eq!(body["tasks"], serde_json::json!([]), "{body:#}");
    assert_eq!(
        celeriac.metric_or_zero("celeriac_tasks_stuck", &[("name", "tasks.sleep")]),
        0.0
    );
    vhost.revoke(&id, true);
}
