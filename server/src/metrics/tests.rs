use std::time::Instant;

use super::testing;
use super::{write_task_series, write_workers};
use crate::events::{Event, EventKind};
use crate::shared::{Health, Shared};
use crate::state::{Histogram, Limits, State, TaskCounts, TaskSeries, RUNTIME_BUCKETS};

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
    }];
    let mut out = String::new();
    write_task_series(&mut out, &series);
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
        },
        TaskSeries {
            name: "b",
            hostname: "w2@vm",
            queue: "celery",
            counts: &b,
        },
    ];
    let mut out = String::new();
    write_task_series(&mut out, &series);
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
    assert_eq!(
        testing::find(&samples, "celery_task_sent_total", &[]).len(),
        2
    );
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

/// The design target (design §8 context): `/metrics` under 50 ms with 1000
/// workers × 200 task names. Run with
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
    let now = crate::shared::now();
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
    let shared = Shared {
        config: crate::config::Config::load_from(["celeriac"]).expect("config"),
        state: parking_lot::RwLock::new(state),
        metrics: super::SelfMetrics::new(),
        health: Health::default(),
    };
    let series = shared.state.read().task_series().count();
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let page = super::render_page(&shared, now);
        times.push(t.elapsed());
        bytes = page.as_ref().len();
    }
    times.sort();
    println!(
        "{workers} workers x {names} names: {series} series, {} MB, render min {:?} median {:?}",
        bytes / 1_000_000,
        times[0],
        times[times.len() / 2]
    );
}
