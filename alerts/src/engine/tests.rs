//! Table-style tests of each kind and of the state machine, with a fake
//! clock (`Inputs::now`) and no broker.

use super::*;
use crate::inputs::{EventCounters, Hist, QueueInput, SeriesInput, StartedTask, WorkerInput};
use crate::rules::parse;

const HEAD: &str = "notifiers:\n  - name: ops\n    webhook: {url: \"http://127.0.0.1:9/\"}\n";

fn engine(rules: &str) -> Engine {
    let set = parse("t.yaml", &format!("{HEAD}rules:\n{rules}")).unwrap_or_else(|e| panic!("{e}"));
    Engine::new(set, 0.0, Some("http://celeriac/alerts".into()))
}

fn queues(now: f64, list: &[(&str, u64, Option<u64>)]) -> Inputs {
    Inputs {
        now,
        queues: Some(
            list.iter()
                .map(|&(n, ready, consumers)| QueueInput {
                    name: n.into(),
                    ready,
                    consumers,
                })
                .collect(),
        ),
        ..Inputs::default()
    }
}

/// (status, instance label value) of each notification, for compact asserts.
fn sent(out: &[Outgoing]) -> Vec<(AlertStatus, String)> {
    out.iter()
        .map(|o| {
            let n = &o.notification;
            let inst = ["queue", "task", "worker", "fingerprint"]
                .iter()
                .find_map(|k| n.labels.get(*k).cloned())
                .unwrap_or_default();
            (n.status, inst)
        })
        .collect()
}

const BACKLOG: &str = "  - name: Backlog\n    kind: queue_length\n    queue: \"celery*\"\n    above: 100\n    for: 10s\n    repeat: 60s\n    labels: {team: core}\n    annotations: {summary: \"{{ $labels.queue }} holds {{ $value }}\"}\n";

#[test]
fn pending_then_firing_after_for_then_repeat_then_resolve() {
    let mut e = engine(BACKLOG);
    use AlertStatus::*;
    // (time, ready) → notifications expected at that evaluation.
    let steps: &[(f64, u64, &[AlertStatus])] = &[
        (0.0, 50, &[]),
        (5.0, 150, &[]),        // pending
        (10.0, 160, &[]),       // 5 s pending < for 10 s
        (15.0, 170, &[Firing]), // pending 10 s: fires once
        (20.0, 180, &[]),
        (74.0, 180, &[]),       // 59 s since it was sent
        (75.0, 180, &[Firing]), // repeat after 60 s
        (80.0, 96, &[]),        // below 100 but above the 95 clear level: still firing
        (85.0, 94, &[Resolved]),
        (90.0, 10, &[]),
    ];
    for &(t, ready, want) in steps {
        let out = e.evaluate(&queues(
            t,
            &[("celery", ready, Some(1)), ("other", 10_000, Some(0))],
        ));
        let got: Vec<AlertStatus> = out.iter().map(|o| o.notification.status).collect();
        assert_eq!(got, want, "at t={t}");
        if t == 15.0 {
            let n = &out[0].notification;
            assert_eq!(out[0].notifier, "ops");
            assert_eq!(n.rule, "Backlog");
            assert_eq!(n.labels.get("queue").unwrap(), "celery");
            assert_eq!(n.labels.get("team").unwrap(), "core");
            assert_eq!(n.annotations["summary"], "celery holds 170");
            assert_eq!(
                (n.value, n.threshold, n.starts_at),
                (Some(170.0), Some(100.0), 15.0)
            );
            assert_eq!(n.generator_url.as_deref(), Some("http://celeriac/alerts"));
        }
        if t == 85.0 {
            let n = &out[0].notification;
            assert_eq!((n.starts_at, n.ends_at), (15.0, Some(85.0)));
        }
    }
}

#[test]
fn a_value_hovering_at_the_threshold_does_not_flap() {
    let mut e = engine("  - name: B\n    kind: queue_length\n    above: 100\n");
    let mut notes = 0;
    for (i, v) in [101, 99, 101, 98, 102, 97, 101].iter().enumerate() {
        notes += e.evaluate(&queues(i as f64, &[("q", *v, Some(1))])).len();
    }
    assert_eq!(
        notes, 1,
        "one firing, no resolve/refire while within the band"
    );
    assert_eq!(e.status()[0].state, AlertState::Firing);
}

#[test]
fn a_pending_alert_that_clears_sends_nothing() {
    let mut e = engine("  - name: B\n    kind: queue_length\n    above: 100\n    for: 1m\n");
    assert!(e.evaluate(&queues(0.0, &[("q", 500, None)])).is_empty());
    assert_eq!(e.status()[0].state, AlertState::Pending);
    assert!(e.evaluate(&queues(30.0, &[("q", 0, None)])).is_empty());
    assert_eq!(e.status()[0].state, AlertState::Inactive);
    assert!(e.status()[0].instances.is_empty());
}

#[test]
fn a_vanished_instance_resolves() {
    let mut e = engine("  - name: B\n    kind: queue_length\n    above: 1\n");
    assert_eq!(
        sent(&e.evaluate(&queues(0.0, &[("q", 5, None)]))),
        vec![(AlertStatus::Firing, "q".into())]
    );
    assert_eq!(
        sent(&e.evaluate(&queues(5.0, &[]))),
        vec![(AlertStatus::Resolved, "q".into())]
    );
}

#[test]
fn queue_rules_wait_for_queue_statistics() {
    let mut e = engine("  - name: U\n    kind: queue_unconsumed\n");
    assert!(e
        .evaluate(&Inputs {
            now: 1.0,
            ..Inputs::default()
        })
        .is_empty());
    let out = e.evaluate(&queues(
        2.0,
        &[
            ("a", 3, Some(0)),
            ("b", 3, Some(2)),
            ("c", 0, Some(0)),
            ("d", 3, None),
        ],
    ));
    assert_eq!(sent(&out), vec![(AlertStatus::Firing, "a".into())]);
}

fn series(task: &str, succeeded: u64, failed: u64) -> SeriesInput {
    SeriesInput {
        task: task.into(),
        queue: "celery".into(),
        succeeded,
        failed,
        ..SeriesInput::default()
    }
}

#[test]
fn failure_rate_is_windowed_and_needs_min_tasks() {
    let mut e = engine("  - name: F\n    kind: task_failure_rate\n    task: \"proj.*\"\n    above: 20%\n    window: 1m\n    min_tasks: 5\n");
    let at = |now: f64, s: Vec<SeriesInput>| Inputs {
        now,
        series: s,
        ..Inputs::default()
    };
    // 1 of 2 failed: 50 %, but fewer than min_tasks.
    assert!(e
        .evaluate(&at(10.0, vec![series("proj.a", 1, 1)]))
        .is_empty());
    // 3 of 6 since start: fires. `other.b` does not match the glob.
    let out = e.evaluate(&at(
        20.0,
        vec![series("proj.a", 3, 3), series("other.b", 0, 50)],
    ));
    assert_eq!(sent(&out), vec![(AlertStatus::Firing, "proj.a".into())]);
    assert_eq!(out[0].notification.value, Some(0.5));
    // Still 3 of 8 since start: keeps firing, no second notification.
    assert!(e
        .evaluate(&at(50.0, vec![series("proj.a", 5, 3)]))
        .is_empty());
    // The window (base: the t=20 sample) now holds 22 successes, no failure.
    let out = e.evaluate(&at(90.0, vec![series("proj.a", 25, 3)]));
    assert_eq!(sent(&out), vec![(AlertStatus::Resolved, "proj.a".into())]);
    assert_eq!(out[0].notification.value, Some(0.0));
}

#[test]
fn runtime_and_queue_wait_p95_come_from_histogram_deltas() {
    let mut e = engine(
        "  - name: Slow\n    kind: task_runtime_p95\n    above: 1s\n  - name: Wait\n    kind: queue_wait_p95\n    above: 30s\n",
    );
    let mk = |now: f64, fast: u64, slow: u64| Inputs {
        now,
        runtime_bounds: vec![0.5, 2.0],
        queue_wait_bounds: vec![10.0, 60.0],
        series: vec![SeriesInput {
            task: "t".into(),
            queue: "q".into(),
            succeeded: fast + slow,
            runtime: Hist {
                cumulative: vec![fast, fast + slow],
                count: fast + slow,
            },
            queue_wait: Hist {
                cumulative: vec![fast, fast + slow],
                count: fast + slow,
            },
            ..SeriesInput::default()
        }],
        ..Inputs::default()
    };
    assert!(e.evaluate(&mk(1.0, 100, 0)).is_empty());
    let out = e.evaluate(&mk(2.0, 100, 100));
    assert_eq!(
        sent(&out),
        vec![
            (AlertStatus::Firing, "t".into()),
            (AlertStatus::Firing, "q".into())
        ]
    );
}

#[test]
fn stuck_started_tasks_count_per_name() {
    let mut e = engine(
        "  - name: Stuck\n    kind: task_stuck_started\n    older_than: 10m\n    above: 1\n",
    );
    let started = |n: &str, at: f64| StartedTask {
        name: n.into(),
        worker: "w@h".into(),
        started_at: at,
    };
    let i = Inputs {
        now: 1000.0,
        started: vec![
            started("a", 0.0),
            started("a", 100.0),
            started("b", 0.0),
            started("a", 900.0),
        ],
        ..Inputs::default()
    };
    let out = e.evaluate(&i);
    assert_eq!(sent(&out), vec![(AlertStatus::Firing, "a".into())]);
    assert_eq!(out[0].notification.value, Some(2.0));
}

#[test]
fn worker_offline_and_workers_online() {
    let mut e = engine(
        "  - name: Off\n    kind: worker_offline\n    worker: \"w*\"\n    above: 30s\n  - name: Few\n    kind: workers_online\n    below: 2\n",
    );
    let w = |h: &str, off: Option<f64>| WorkerInput {
        hostname: h.into(),
        offline_since: off,
    };
    let at = |now: f64, ws: Vec<WorkerInput>| Inputs {
        now,
        workers: ws,
        ..Inputs::default()
    };
    assert!(e
        .evaluate(&at(
            100.0,
            vec![w("w1", None), w("w2", None), w("x", Some(0.0))]
        ))
        .is_empty());
    // w2 offline 20 s: not yet; Few fires (1 online < 2).
    let out = e.evaluate(&at(120.0, vec![w("w1", None), w("w2", Some(100.0))]));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].notification.rule, "Few");
    let out = e.evaluate(&at(140.0, vec![w("w1", None), w("w2", Some(100.0))]));
    assert_eq!(sent(&out), vec![(AlertStatus::Firing, "w2".into())]);
    // w2 back: Off resolves; Few needs ≥ 2.1 (5 % band) to clear → 2 online is enough? No: 2 < 2.1.
    let out = e.evaluate(&at(150.0, vec![w("w1", None), w("w2", None)]));
    assert_eq!(sent(&out), vec![(AlertStatus::Resolved, "w2".into())]);
    let out = e.evaluate(&at(
        160.0,
        vec![w("w1", None), w("w2", None), w("w3", None)],
    ));
    assert_eq!(out.len(), 1);
    assert_eq!(
        (
            out[0].notification.rule.as_str(),
            out[0].notification.status
        ),
        ("Few", AlertStatus::Resolved)
    );
}

#[test]
fn no_events_counts_from_start_then_from_the_last_event() {
    let mut e = engine("  - name: Blind\n    kind: no_events\n    above: 2m\n");
    let at = |now: f64, last: Option<f64>| Inputs {
        now,
        last_event_at: last,
        ..Inputs::default()
    };
    assert!(e.evaluate(&at(100.0, None)).is_empty());
    assert_eq!(e.evaluate(&at(121.0, None)).len(), 1);
    assert_eq!(
        e.evaluate(&at(130.0, Some(129.0)))[0].notification.status,
        AlertStatus::Resolved
    );
}

#[test]
fn malformed_rate_and_events_lost_are_windowed() {
    let mut e = engine(
        "  - name: Bad\n    kind: malformed_rate\n    above: 1%\n    min_events: 100\n    window: 1m\n  - name: Lost\n    kind: events_lost\n    window: 1m\n",
    );
    let at = |now: f64, ingested, malformed, dropped| Inputs {
        now,
        events: EventCounters {
            ingested,
            malformed,
            dropped,
        },
        ..Inputs::default()
    };
    assert!(
        e.evaluate(&at(10.0, 50, 5, 0)).is_empty(),
        "too few messages"
    );
    let out = e.evaluate(&at(20.0, 1000, 20, 3));
    let rules: Vec<&str> = out.iter().map(|o| o.notification.rule.as_str()).collect();
    assert_eq!(rules, ["Bad", "Lost"]);
    // Nothing new for over a minute: both clear.
    assert!(e.evaluate(&at(70.0, 1000, 20, 3)).is_empty());
    assert_eq!(e.evaluate(&at(85.0, 2000, 20, 3)).len(), 2);
}

#[test]
fn state_survives_a_reload_for_rules_that_keep_their_name() {
    let mut e = engine(BACKLOG);
    e.evaluate(&queues(0.0, &[("celery", 500, None)]));
    assert_eq!(e.evaluate(&queues(10.0, &[("celery", 500, None)])).len(), 1);
    // Reload: Backlog kept (new threshold), a rule added.
    let set = parse(
        "t.yaml",
        &format!(
            "{HEAD}rules:\n{}  - name: Other\n    kind: queue_length\n    above: 1000\n",
            BACKLOG.replace("above: 100", "above: 200")
        ),
    )
    .unwrap();
    assert!(e.replace_rules(set, 15.0).is_empty());
    // Still firing: no second firing notification, not pending again.
    assert!(e
        .evaluate(&queues(20.0, &[("celery", 500, None)]))
        .is_empty());
    let st = e.status();
    assert_eq!(st[0].state, AlertState::Firing);
    assert_eq!(st[0].instances[0].firing_since, Some(10.0));
    assert_eq!(st[1].state, AlertState::Inactive);
    // A rule removed by reload resolves its firing alerts at once.
    let out = e.replace_rules(
        parse("t.yaml", &format!("{HEAD}rules: []\n")).unwrap(),
        25.0,
    );
    assert_eq!(sent(&out), vec![(AlertStatus::Resolved, "celery".into())]);
    assert_eq!(out[0].notification.ends_at, Some(25.0));
    assert!(e.status().is_empty());
    assert!(e
        .evaluate(&queues(30.0, &[("celery", 500, None)]))
        .is_empty());
}

#[test]
fn fingerprints_are_stable_and_distinct() {
    let l = |q: &str| Labels::from([("queue".to_string(), q.to_string())]);
    assert_eq!(fingerprint("A", &l("x")), fingerprint("A", &l("x")));
    assert_ne!(fingerprint("A", &l("x")), fingerprint("A", &l("y")));
    assert_ne!(fingerprint("A", &l("x")), fingerprint("B", &l("x")));
    assert_eq!(fingerprint("A", &l("x")).len(), 16);
}

#[test]
fn lost_tasks_fire_per_task_name_and_clear_once_out_of_the_window() {
    let mut e = engine("  - name: Lost\n    kind: task_lost\n    window: 1m\n");
    let at = |now: f64, lost: u64| Inputs {
        now,
        series: vec![
            SeriesInput {
                lost,
                ..series("proj.long", 0, 0)
            },
            series("proj.fast", 9, 0),
        ],
        ..Inputs::default()
    };
    assert!(e.evaluate(&at(10.0, 0)).is_empty());
    let out = e.evaluate(&at(20.0, 2));
    assert_eq!(sent(&out), vec![(AlertStatus::Firing, "proj.long".into())]);
    assert_eq!(out[0].notification.value, Some(2.0));
    // No new loss: once the window no longer holds the two, it clears.
    assert!(e.evaluate(&at(50.0, 2)).is_empty());
    let out = e.evaluate(&at(90.0, 2));
    assert_eq!(
        sent(&out),
        vec![(AlertStatus::Resolved, "proj.long".into())]
    );
}

#[test]
fn a_new_failure_group_fires_while_it_is_new() {
    use crate::inputs::FailureGroupInput;
    let mut e = engine(
        "  - name: New\n    kind: new_failure_group\n    task: \"proj.*\"\n    window: 1m\n",
    );
    let at = |now: f64, groups: Vec<FailureGroupInput>| Inputs {
        now,
        failure_groups: groups,
        ..Inputs::default()
    };
    let group = |fp: &str, task: &str, opened_at: f64, count: u64| FailureGroupInput {
        fingerprint: fp.into(),
        exception: "KeyError".into(),
        tasks: vec![task.into()],
        opened_at,
        count,
    };
    let out = e.evaluate(&at(
        100.0,
        vec![
            group("aa", "proj.a", 90.0, 1),
            group("bb", "other.b", 95.0, 3),
        ],
    ));
    assert_eq!(sent(&out), vec![(AlertStatus::Firing, "aa".into())]);
    assert_eq!(
        out[0]
            .notification
            .labels
            .get("fingerprint")
            .map(String::as_str),
        Some("aa")
    );
    // A minute later it is no longer new: it clears.
    let out = e.evaluate(&at(151.0, vec![group("aa", "proj.a", 90.0, 4)]));
    assert_eq!(sent(&out), vec![(AlertStatus::Resolved, "aa".into())]);
    // Reopened (opened_at moves): new again.
    let out = e.evaluate(&at(200.0, vec![group("aa", "proj.a", 199.0, 1)]));
    assert_eq!(sent(&out), vec![(AlertStatus::Firing, "aa".into())]);
}

#[test]
fn queue_latency_is_the_oldest_age_per_queue() {
    use crate::inputs::QueueLatencyInput;
    let mut e =
        engine("  - name: Late\n    kind: queue_latency\n    queue: \"q*\"\n    above: 1m\n");
    let at = |now: f64, ages: &[(&str, f64)]| Inputs {
        now,
        queue_latency: ages
            .iter()
            .map(|(n, a)| QueueLatencyInput {
                name: (*n).into(),
                oldest_age: *a,
            })
            .collect(),
        ..Inputs::default()
    };
    assert!(e
        .evaluate(&at(1.0, &[("q1", 30.0), ("x", 500.0)]))
        .is_empty());
    let out = e.evaluate(&at(2.0, &[("q1", 61.0), ("x", 500.0)]));
    assert_eq!(sent(&out), vec![(AlertStatus::Firing, "q1".into())]);
    let out = e.evaluate(&at(3.0, &[("q1", 0.0)]));
    assert_eq!(sent(&out), vec![(AlertStatus::Resolved, "q1".into())]);
}
