use std::sync::Arc;
use std::time::Instant;

use super::testing;
use super::{write_task_series, write_workers};
use crate::events::{Event, EventKind};
use crate::state::{
    Histogram, Limits, Stamp, State, TaskCounts, TaskSeries, QUEUE_WAIT_BUCKETS, RUNTIME_BUCKETS,
};

fn counts() -> TaskCounts {
    let mut runtime = Histogram::default();
    runtime.observe(0.3);
    runtime.observe(20.0);
    TaskCounts {
        sent: 0,
        received: 5,
        started: 4,
        succeeded: 2,
        rejected: 1,
        revoked: 1,
        retried: 3,
        failed: vec![("ValueError".into(), 2), ("Odd\"Class\\\n".into(), 1)],
        runtime,
        ..TaskCounts::default()
    }
}

#[test]
fn label_values_are_escaped_and_parse_back() {
    let c = counts();
    let series = [TaskSeries {
        name: "tasks.\"quoted\"\\back\nline",
        hostname: "w1@vm",
        queue: "q,{x}=y",
        counts: &c,
        stamp: Stamp::default(),
    }];
    let mut out = String::new();
    write_task_series(&mut out, &series, &RUNTIME_BUCKETS, &QUEUE_WAIT_BUCKETS);
    let samples = testing::parse(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    let labels = [
        ("name", "tasks.\"quoted\"\\back\nline"),
        ("hostname", "w1@vm"),
        ("queue_name", "q,{x}=y"),
    ];
    let one = |name: &str, extra: &[(&str, &str)]| {
        let mut l = labels.to_vec();
        l.extend_from_slice(extra);
        let found = testing::find(&samples, name, &l);
        assert_eq!(found.len(), 1, "{name} {extra:?}\n{out}");
        found[0].value
    };
    assert_eq!(one("celery_task_received_total", &[]), 5.0);
    assert_eq!(one("celery_task_retried_total", &[]), 3.0);
    assert_eq!(
        one("celery_task_failed_total", &[("exception", "ValueError")]),
        2.0
    );
    assert_eq!(
        one(
            "celery_task_failed_total",
            &[("exception", "Odd\"Class\\\n")]
        ),
        1.0
    );
    assert_eq!(one("celery_task_failed_total", &[("exception", "")]), 0.0);
    assert_eq!(one("celery_task_runtime_bucket", &[("le", "0.25")]), 0.0);
    assert_eq!(one("celery_task_runtime_bucket", &[("le", "0.5")]), 1.0);
    assert_eq!(one("celery_task_runtime_bucket", &[("le", "10.0")]), 1.0);
    assert_eq!(one("celery_task_runtime_bucket", &[("le", "+Inf")]), 2.0);
    assert_eq!(one("celery_task_runtime_sum", &[]), 20.3);
    assert_eq!(one("celery_task_runtime_count", &[]), 2.0);
    assert_eq!(
        testing::find(&samples, "celery_task_runtime_bucket", &labels).len(),
        RUNTIME_BUCKETS.len() + 1
    );
    if let Some(check) = testing::promtool_check(&out) {
        check.unwrap_or_else(|e| panic!("promtool: {e}\n{out}"));
    }
}

#[test]
fn each_family_is_declared_once_and_contiguous() {
    let (a, b) = (counts(), TaskCounts::default());
    let series = [
        TaskSeries {
            name: "a",
            hostname: "w1@vm",
            queue: "celery",
            counts: &a,
            stamp: Stamp::default(),
        },
        TaskSeries {
            name: "b",
            hostname: "w2@vm",
            queue: "celery",
            counts: &b,
            stamp: Stamp::default(),
        },
    ];
    let mut out = String::new();
    write_task_series(&mut out, &series, &RUNTIME_BUCKETS, &QUEUE_WAIT_BUCKETS);
    let workers = [
        worker("w1@vm", true, Some(3)),
        worker("w2@vm", false, Some(3)),
    ];
    write_workers(&mut out, &workers);
    // The parser rejects repeated HELP/TYPE and interleaved families.
    let samples = testing::parse(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    for family in ["celery_task_sent_total", "celery_worker_up"] {
        assert_eq!(out.matches(&format!("# TYPE {family} ")).count(), 1);
    }
    // Like celery-exporter: every series has the worker counters, but
    // only a series that saw a task-sent has `celery_task_sent_total`.
    assert_eq!(
        testing::find(&samples, "celery_task_received_total", &[]).len(),
        2
    );
    assert!(testing::find(&samples, "celery_task_sent_total", &[]).is_empty());
    // A series without observations has no histogram.
    assert!(testing::find(&samples, "celery_task_runtime_count", &[("name", "b")]).is_empty());
    let active =
        |h| testing::find(&samples, "celery_worker_tasks_active", &[("hostname", h)])[0].value;
    assert_eq!(active("w1@vm"), 3.0);
    // An offline worker runs nothing, whatever its last heartbeat said.
    assert_eq!(active("w2@vm"), 0.0);
}

fn worker(hostname: &str, status: bool, active: Option<i64>) -> api::Worker {
    api::Worker {
        hostname: hostname.into(),
        status,
        active,
        processed: None,
        loadavg: None,
        freq: Some(2.0),
        sw_ident: None,
        sw_ver: None,
        sw_sys: None,
        pid: None,
        clock: None,
        utcoffset: None,
        timestamp: None,
        last_heartbeat: None,
        heartbeat_expires: None,
    }
}

fn event(kind: EventKind, hostname: &str, uuid: &str, name: Option<&str>, now: f64) -> Event {
    Event {
        kind,
        hostname: hostname.into(),
        timestamp: now,
        uuid: Some(uuid.into()),
        name: name.map(Into::into),
        ..Event::default()
    }
}

/// A quick look at render time (received/succeeded only). The reported
/// figure comes from `cargo xtask bench -- --scenario metrics`, whose state
/// has every histogram. Run with
/// `cargo test --release -p celeriac --lib render_large_cluster -- --ignored --nocapture`.
#[test]
#[ignore]
fn render_large_cluster() {
    let workers: usize = std::env::var("WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let names: usize = std::env::var("NAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    // Every worker runs every name: the worst case for series count.
    let now = crate::clock::now();
    let mut state = State::new(Limits {
        max_tasks: 10_000,
        ..Limits::default()
    });
    let mut n = 0u64;
    for w in 0..workers {
        let host = format!("w{w}@host{}", w % 50);
        let mut hb = event(EventKind::WorkerHeartbeat, &host, "", None, now);
        hb.uuid = None;
        hb.freq = Some(2.0);
        hb.active = Some(1);
        state.apply(&hb, now);
        for t in 0..names {
            n += 1;
            let uuid = format!("{n:032x}");
            let name = format!("app.tasks.task_{t}");
            state.apply(
                &event(EventKind::TaskReceived, &host, &uuid, Some(&name), now),
                now,
            );
            let mut done = event(EventKind::TaskSucceeded, &host, &uuid, None, now);
            done.runtime = Some((t as f64) / 50.0);
            state.apply(&done, now);
        }
    }
    // Built as `start` builds it, so fields added to AppState need no
    // change here.
    let mut shared = crate::test_app(&[]);
    shared.state = Arc::new(parking_lot::RwLock::new(state));
    let series = shared.state.read().task_series().count();
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let page = super::render_page(shared.scrape(), now);
        times.push(t.elapsed());
        bytes = page.len();
    }
    times.sort();
    println!(
        "{workers} workers x {names} names: {series} series, {} MB, render min {:?} median {:?}",
        bytes / 1_000_000,
        times[0],
        times[times.len() / 2]
    );
}

/// sent → started and received → started are observed on task-started;
/// ETA tasks are left out; the whole page, with the queue and Flower
/// families, parses (and passes `promtool check metrics` when installed).
/// Task `a` of `t.add`: sent to `q1` at `t0`, received by `w1@vm` 1 s later,
/// started 3 s after sending (3 s of queue wait, 2 s of prefetch).
fn sent_received_started(state: &mut State, t0: f64) {
    let mut sent = event(EventKind::TaskSent, "client@vm", "a", Some("t.add"), t0);
    sent.queue = Some("q1".into());
    state.apply(&sent, t0);
    let received = event(
        EventKind::TaskReceived,
        "w1@vm",
        "a",
        Some("t.add"),
        t0 + 1.0,
    );
    state.apply(&received, t0);
    state.apply(
        &event(EventKind::TaskStarted, "w1@vm", "a", None, t0 + 3.0),
        t0,
    );
}

/// Flower's prefetch gauges as `flower/events.py` moves them, event by
/// event: the last task's wait, 0 once it finished; received tasks not yet
/// started, revoked or rejected, ETA tasks left out.
#[test]
fn flower_prefetch_gauges_move_as_flower_moves_them() {
    let mut shared = crate::test_app(&["--flower-metrics"]);
    let mut state = State::new(Limits::default());
    let t0 = 1_000.0;
    let ev = |kind, uuid: &str, name: Option<&str>, at: f64| event(kind, "w1@vm", uuid, name, at);
    let mut apply = |e: Event| state.apply(&e, t0);
    // One finished task, then one still running after a 0.5 s wait.
    apply(ev(EventKind::TaskReceived, "a", Some("t.add"), t0));
    apply(ev(EventKind::TaskStarted, "a", None, t0 + 2.0));
    apply(ev(EventKind::TaskSucceeded, "a", None, t0 + 3.0));
    apply(ev(EventKind::TaskReceived, "b", Some("t.add"), t0 + 4.0));
    apply(ev(EventKind::TaskStarted, "b", None, t0 + 4.5));
    // Prefetched, then revoked before it started.
    apply(ev(EventKind::TaskReceived, "c", Some("t.add"), t0 + 5.0));
    apply(ev(EventKind::TaskRevoked, "c", None, t0 + 6.0));
    // Waiting in the prefetch.
    apply(ev(EventKind::TaskReceived, "d", Some("t.add"), t0 + 7.0));
    // A countdown task, revoked: never prefetched as Flower counts.
    let mut eta = ev(EventKind::TaskReceived, "e", Some("t.add"), t0 + 8.0);
    eta.eta = Some("2030-01-01T00:00:00+00:00".into());
    apply(eta);
    apply(ev(EventKind::TaskRevoked, "e", None, t0 + 9.0));
    // A task that failed: the wait goes back to 0.
    apply(ev(EventKind::TaskReceived, "f", Some("t.fail"), t0));
    apply(ev(EventKind::TaskStarted, "f", None, t0 + 1.0));
    apply(ev(EventKind::TaskFailed, "f", None, t0 + 2.0));
    shared.state = Arc::new(parking_lot::RwLock::new(state));

    let out = super::render(shared.scrape(), t0);
    let samples = testing::parse(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    let one = |name: &str, task: &str| {
        let v = testing::find(&samples, name, &[("worker", "w1@vm"), ("task", task)]);
        assert_eq!(v.len(), 1, "{name} {task}\n{out}");
        v[0].value
    };
    assert_eq!(one("flower_task_prefetch_time_seconds", "t.add"), 0.5);
    assert_eq!(one("flower_worker_prefetched_tasks", "t.add"), 1.0);
    assert_eq!(one("flower_task_prefetch_time_seconds", "t.fail"), 0.0);
    assert_eq!(one("flower_worker_prefetched_tasks", "t.fail"), 0.0);
}

#[test]
fn queue_wait_prefetch_queues_and_flower_families_render() {
    let mut shared = crate::test_app(&["--flower-metrics", "--max-task-names", "1"]);
    let mut state = State::new(Limits {
        max_task_names: 1,
        ..Limits::default()
    });
    let t0 = 1_000.0;
    sent_received_started(&mut state, t0);
    let mut eta = event(EventKind::TaskReceived, "w1@vm", "b", Some("t.add"), t0);
    eta.eta = Some("2030-01-01T00:00:00+00:00".into());
    state.apply(&eta, t0);
    state.apply(
        &event(EventKind::TaskStarted, "w1@vm", "b", None, t0 + 50.0),
        t0,
    );
    // A second name folds into `other` with --max-task-names 1.
    state.apply(
        &event(EventKind::TaskReceived, "w1@vm", "c", Some("t.mul"), t0),
        t0,
    );
    shared.state = Arc::new(parking_lot::RwLock::new(state));
    shared.broker.publish(crate::broker::Snapshot {
        source: Some(crate::broker::Source::Management),
        queues: vec![crate::broker::QueueStat {
            name: "q1".into(),
            messages: Some(4),
            messages_ready: 3,
            messages_unacknowledged: Some(1),
            consumers: Some(2),
            publish_rate: Some(0.5),
            deliver_rate: Some(0.0),
            idle_since: None,
            queue_type: None,
            management: None,
        }],
        up: [true, false, false],
        ..Default::default()
    });
    shared.broker.set_worker_queues(
        "w1@vm",
        crate::broker::WorkerQueues {
            queues: vec!["q1".into()],
            processes: 4,
            task_time_limit: None,
            task_soft_time_limit: None,
        },
    );

    let out = super::render(shared.scrape(), t0);
    let samples = testing::parse(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    let one = |name: &str, labels: &[(&str, &str)]| {
        let v = testing::find(&samples, name, labels);
        assert_eq!(v.len(), 1, "{name} {labels:?}\n{out}");
        v[0].value
    };
    let w = [("name", "t.add"), ("hostname", "w1@vm")];
    assert_eq!(one("celery_task_queue_wait_time_count", &w), 1.0);
    assert_eq!(one("celery_task_queue_wait_time_sum", &w), 3.0);
    assert_eq!(one("celeriac_task_prefetch_time_seconds_sum", &w), 2.0);
    assert_eq!(one("celery_task_received_total", &[("name", "other")]), 1.0);
    assert_eq!(one("celeriac_task_names_folded_total", &[]), 1.0);
    assert_eq!(one("celery_queue_length", &[("queue_name", "q1")]), 3.0);
    assert_eq!(
        one("celery_active_consumer_count", &[("queue_name", "q1")]),
        2.0
    );
    assert_eq!(
        one("celeriac_broker_stats_up", &[("source", "management")]),
        1.0
    );
    // w1@vm is alive (task events refresh liveness) and consumes q1.
    assert_eq!(
        one("celery_active_worker_count", &[("queue_name", "q1")]),
        1.0
    );
    assert_eq!(
        one("celery_active_process_count", &[("queue_name", "q1")]),
        4.0
    );
    assert_eq!(
        one(
            "flower_events_total",
            &[
                ("worker", "w1@vm"),
                ("task", "t.add"),
                ("type", "task-started")
            ]
        ),
        2.0
    );
    // Flower's gauges: `a` waited 2 s in the prefetch and is running;
    // `b` has an ETA and moves neither; `c` (folded) waits.
    let flower = |name: &str, task: &str| one(name, &[("worker", "w1@vm"), ("task", task)]);
    assert_eq!(flower("flower_task_prefetch_time_seconds", "t.add"), 2.0);
    assert_eq!(flower("flower_worker_prefetched_tasks", "t.add"), 0.0);
    assert_eq!(flower("flower_worker_prefetched_tasks", "other"), 1.0);
    if let Some(Err(report)) = testing::promtool_check(&out) {
        // celery-exporter's queue gauges end in `_count`, which promtool's
        // lint flags; dashboards and alerts need those exact names. Any
        // other finding is ours.
        let allowed = [
            "celery_active_consumer_count ",
            "celery_active_worker_count ",
            "celery_active_process_count ",
        ];
        for line in report.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                allowed.iter().any(|a| line.starts_with(a)),
                "promtool: {report}\n{out}"
            );
        }
    }
}

/// `--purge-offline-workers`: a purged worker's task series leave
/// `/metrics` with it; other workers' stay.
#[test]
fn purged_workers_take_their_series_with_them() {
    let mut state = State::new(Limits {
        purge_offline_after: Some(10.0),
        ..Limits::default()
    });
    let t0 = 1_000.0;
    for host in ["w1@vm", "w2@vm"] {
        let mut online = event(EventKind::WorkerOnline, host, "", None, t0);
        online.uuid = None;
        online.freq = Some(2.0);
        state.apply(&online, t0);
        state.apply(
            &event(EventKind::TaskReceived, host, host, Some("t.add"), t0),
            t0,
        );
    }
    let mut offline = event(EventKind::WorkerOffline, "w1@vm", "", None, t0 + 1.0);
    offline.uuid = None;
    state.apply(&offline, t0 + 1.0);
    let mut hb = event(EventKind::WorkerHeartbeat, "w2@vm", "", None, t0 + 20.0);
    hb.uuid = None;
    hb.freq = Some(2.0);
    state.apply(&hb, t0 + 20.0);
    state.tick(t0 + 20.0);
    let hosts: Vec<&str> = state.task_series().map(|s| s.hostname).collect();
    assert_eq!(hosts, ["w2@vm"]);
}

/// `--queue-wait-buckets` sets the `le` bounds of the queue wait and
/// prefetch histograms, and observations land in them.
#[test]
fn buckets_are_configurable() {
    let mut shared = crate::test_app(&[
        "--queue-wait-buckets",
        "0.5,2,30",
        "--buckets",
        "0.1,1,10",
        "--flower-metrics",
    ]);
    let mut state = State::new(shared.state.read().limits().clone());
    let t0 = 1_000.0;
    sent_received_started(&mut state, t0);
    let mut done = event(EventKind::TaskSucceeded, "w1@vm", "a", None, t0 + 5.0);
    done.runtime = Some(2.0);
    state.apply(&done, t0 + 5.0);
    shared.state = Arc::new(parking_lot::RwLock::new(state));
    let out = super::render(shared.scrape(), t0);
    let samples = testing::parse(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    let les = |metric: &str| -> Vec<(String, f64)> {
        let mut v: Vec<(String, f64)> = samples
            .iter()
            .filter(|s| s.name == metric)
            .map(|s| (s.label("le").unwrap_or_default().to_owned(), s.value))
            .collect();
        v.dedup();
        v
    };
    let want = |bounds: [&str; 3], v: [f64; 4]| -> Vec<(String, f64)> {
        bounds
            .iter()
            .chain(&["+Inf"])
            .map(|l| l.to_string())
            .zip(v)
            .collect()
    };
    // Waited 3 s in the queue, 2 s prefetched, ran 2 s.
    let (wait, runtime) = (["0.5", "2.0", "30.0"], ["0.1", "1.0", "10.0"]);
    for (metric, bounds, counts) in [
        (
            "celery_task_queue_wait_time_bucket",
            wait,
            [0.0, 0.0, 1.0, 1.0],
        ),
        (
            "celeriac_task_prefetch_time_seconds_bucket",
            wait,
            [0.0, 1.0, 1.0, 1.0],
        ),
        ("celery_task_runtime_bucket", runtime, [0.0, 0.0, 1.0, 1.0]),
        (
            "flower_task_runtime_seconds_bucket",
            runtime,
            [0.0, 0.0, 1.0, 1.0],
        ),
    ] {
        assert_eq!(les(metric), want(bounds, counts), "{metric}");
    }
}

#[test]
fn a_bad_bucket_list_names_the_flag() {
    for flag in ["--queue-wait-buckets", "--buckets"] {
        let Err(e) = crate::test_args::try_parse::<super::MetricsArgs>(&[flag, "1,0.5"]) else {
            panic!("descending {flag} are refused");
        };
        let msg = e.to_string();
        assert!(msg.contains(flag) && msg.contains("ascend"), "{msg}");
    }
}
