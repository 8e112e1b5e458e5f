//! Data-driven tests of the model: fixtures in, rendered state out.

use super::*;
use crate::events::fixtures;
use crate::events::{Event, EventKind};

/// Every event of a scenario, flattened, in wire order.
fn scenario(name: &str) -> Vec<Event> {
    fixtures::scenario(name)
        .iter()
        .flat_map(|b| fixtures::decode(b))
        .collect()
}

fn state() -> State {
    State::new(Limits::default())
}

fn apply_all(s: &mut State, events: &[Event]) {
    for e in events {
        s.apply(e, e.timestamp + 0.001);
    }
}

/// One line per task, sorted by uuid: the state, which event the state's
/// timestamp came from, and the fields the merge rules decide.
fn render(s: &State) -> String {
    let mut tasks: Vec<TaskView<'_>> = s.tasks().collect();
    tasks.sort_by_key(|t| t.uuid);
    let lines: Vec<String> = tasks
        .iter()
        .map(|t| {
            let ts_from = [
                ("sent", t.sent),
                ("received", t.received),
                ("started", t.started),
                ("succeeded", t.succeeded),
                ("failed", t.failed),
                ("retried", t.retried),
                ("revoked", t.revoked),
                ("rejected", t.rejected),
            ]
            .iter()
            .filter(|(_, v)| v.is_some() && *v == t.timestamp)
            .map(|(k, _)| *k)
            .next()
            .unwrap_or("other");
            let mut line = format!("{} {} ts={ts_from}", &t.uuid[..8], t.state.as_str());
            let mut field = |k: &str, v: Option<String>| {
                if let Some(v) = v {
                    line.push_str(&format!(" {k}={v}"));
                }
            };
            field("name", t.name.map(str::to_owned));
            field("args", t.args.map(str::to_owned));
            field("retries", t.retries.map(|r| r.to_string()));
            field("worker", t.worker.map(str::to_owned));
            field("client", t.client.map(str::to_owned));
            field("queue", t.queue.map(str::to_owned));
            line
        })
        .collect();
    lines.join("\n")
}

fn check(events: &[Event], expect: &str) {
    let mut s = state();
    apply_all(&mut s, events);
    assert_eq!(render(&s), expect.trim(), "events: {:?}", kinds(events));
}

fn kinds(events: &[Event]) -> Vec<&EventKind> {
    events.iter().map(|e| &e.kind).collect()
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut all = Vec::new();
    for p in permutations(n - 1) {
        for i in 0..=p.len() {
            let mut q = p.clone();
            q.insert(i, n - 1);
            all.push(q);
        }
    }
    all
}

/// Celery's `Task.event` restated as the oracle: the final state and the
/// index of the event whose timestamp the state carries.
fn oracle(events: &[&Event]) -> (TaskState, Option<usize>) {
    fn prec(s: &TaskState) -> u8 {
        match s {
            TaskState::Success => 0,
            TaskState::Failure => 1,
            TaskState::Custom(_) => 2,
            TaskState::Revoked => 3,
            TaskState::Started => 4,
            TaskState::Received => 5,
            TaskState::Rejected => 6,
            TaskState::Retry => 7,
            TaskState::Pending => 8,
        }
    }
    let (mut state, mut at) = (TaskState::Pending, None);
    for (i, e) in events.iter().enumerate() {
        let new = match &e.kind {
            EventKind::TaskSent => TaskState::Pending,
            EventKind::TaskReceived => TaskState::Received,
            EventKind::TaskStarted => TaskState::Started,
            EventKind::TaskSucceeded => TaskState::Success,
            EventKind::TaskFailed => TaskState::Failure,
            EventKind::TaskRetried => TaskState::Retry,
            EventKind::TaskRevoked => TaskState::Revoked,
            EventKind::TaskRejected => TaskState::Rejected,
            EventKind::TaskCustom(x) => TaskState::parse(x),
            _ => continue,
        };
        let keep =
            new != TaskState::Retry && state != TaskState::Retry && prec(&new) > prec(&state);
        if !keep {
            state = new;
            at = Some(i);
        }
    }
    (state, at)
}

/// What every ordering of a task's events must give, beyond the oracle's
/// state: per-event timestamps, name/args once received or sent arrived,
/// routing from task-sent, worker and client.
fn check_permutations(name: &str, events: &[Event], always: Option<TaskState>) {
    let uuid = events[0].uuid.clone().expect("task event");
    for order in permutations(events.len()) {
        let evs: Vec<&Event> = order.iter().map(|&i| &events[i]).collect();
        let mut s = state();
        for e in &evs {
            s.apply(e, e.timestamp + 0.001);
        }
        let t = s.task(&uuid).expect("task");
        let (want, at) = oracle(&evs);
        // Built only when an assertion fails.
        let ctx = || {
            format!(
                "{name}: {:?}",
                evs.iter().map(|e| &e.kind).collect::<Vec<_>>()
            )
        };
        assert_eq!(*t.state, want, "{}", ctx());
        if let Some(always) = &always {
            assert_eq!(t.state, always, "{}", ctx());
        }
        assert_eq!(t.timestamp, at.map(|i| evs[i].timestamp), "{}", ctx());
        assert_eq!(t.clock, at.and_then(|i| evs[i].clock), "{}", ctx());
        let last = |k: EventKind| evs.iter().rev().find(|e| e.kind == k).map(|e| e.timestamp);
        assert_eq!(t.sent, last(EventKind::TaskSent), "{}", ctx());
        assert_eq!(t.received, last(EventKind::TaskReceived), "{}", ctx());
        assert_eq!(t.started, last(EventKind::TaskStarted), "{}", ctx());
        assert_eq!(t.succeeded, last(EventKind::TaskSucceeded), "{}", ctx());
        assert_eq!(t.failed, last(EventKind::TaskFailed), "{}", ctx());
        assert_eq!(t.retried, last(EventKind::TaskRetried), "{}", ctx());
        assert_eq!(t.revoked, last(EventKind::TaskRevoked), "{}", ctx());
        assert_eq!(t.rejected, last(EventKind::TaskRejected), "{}", ctx());
        let describing = evs
            .iter()
            .filter(|e| matches!(e.kind, EventKind::TaskSent | EventKind::TaskReceived))
            .collect::<Vec<_>>();
        if let Some(first) = describing.first() {
            assert_eq!(t.name, first.name.as_deref(), "{}", ctx());
            assert_eq!(t.args, first.args.as_deref(), "{}", ctx());
            // Every describing event carries retries; the last one wins.
            assert_eq!(
                t.retries,
                describing.last().and_then(|e| e.retries),
                "{}",
                ctx()
            );
        }
        let sent = evs.iter().rev().find(|e| e.kind == EventKind::TaskSent);
        assert_eq!(t.queue, sent.and_then(|e| e.queue.as_deref()), "{}", ctx());
        assert_eq!(
            t.routing_key,
            sent.and_then(|e| e.routing_key.as_deref()),
            "{}",
            ctx()
        );
        assert_eq!(t.client, sent.map(|e| e.hostname.as_str()), "{}", ctx());
        let worker = evs.iter().rev().find(|e| e.kind != EventKind::TaskSent);
        assert_eq!(t.worker, worker.map(|e| e.hostname.as_str()), "{}", ctx());
        assert!(!t.children.contains(&t.uuid), "{}", ctx());
        assert_eq!(s.task_count(), 1);
        // No client nodename becomes a worker.
        assert!(s
            .workers(0.0)
            .iter()
            .all(|w| !w.hostname.starts_with("gen")));
    }
}

#[test]
fn every_ordering_of_every_scenario() {
    use TaskState::*;
    let cases: [(&str, Option<TaskState>); 8] = [
        ("success", Some(Success)),
        ("failure", Some(Failure)),
        ("revoke_terminate", Some(Revoked)),
        ("revoke_before_start", Some(Revoked)),
        ("expired", Some(Revoked)),
        ("countdown", Some(Success)),
        ("rejected", Some(Failure)),
        ("gevent", Some(Success)),
    ];
    for (name, always) in cases {
        check_permutations(name, &scenario(name), always);
    }
    // The retry scenario has 8 events: 40,320 orderings, state by the oracle.
    let retry = scenario("retry");
    assert_eq!(retry.len(), 8);
    check_permutations("retry", &retry, None);
    // The custom scenario is one `task-progress`; put it among the
    // built-in events of its task.
    let progress = scenario("custom").remove(0);
    let mut custom = vec![progress.clone()];
    for (kind, dt) in [
        (EventKind::TaskReceived, -0.3),
        (EventKind::TaskStarted, -0.2),
        (EventKind::TaskSucceeded, 0.5),
    ] {
        custom.push(Event {
            kind,
            timestamp: progress.timestamp + dt,
            name: Some("tasks.progress".into()),
            args: Some("()".into()),
            retries: Some(0),
            ..progress.clone()
        });
    }
    check_permutations("custom", &custom, Some(Success));
    check_permutations(
        "custom-no-success",
        &custom[..3],
        Some(Custom("PROGRESS".into())),
    );
}

#[test]
fn retried_last_ends_retry_as_celery_does() {
    let retry = scenario("retry");
    let retried = retry
        .iter()
        .position(|e| e.kind == EventKind::TaskRetried)
        .expect("retried");
    let mut order: Vec<Event> = retry.clone();
    let r = order.remove(retried);
    order.push(r);
    let mut s = state();
    apply_all(&mut s, &order);
    assert_eq!(
        *s.task(&retry[0].uuid.clone().expect("uuid"))
            .expect("task")
            .state,
        TaskState::Retry
    );
}

/// docs/celery-protocol.md §2.5's outcomes table, row by row.
#[test]
fn outcomes_table() {
    let ok = scenario("success");
    let (sent, received, started, succeeded) = (&ok[1], &ok[0], &ok[2], &ok[3]);
    let rej = scenario("rejected");
    let (failed, rejected) = (&rej[3], &rej[4]);
    let retried = scenario("retry")
        .into_iter()
        .find(|e| e.kind == EventKind::TaskRetried)
        .expect("retried");
    let same = |e: &Event| Event {
        uuid: ok[0].uuid.clone(),
        ..e.clone()
    };
    let retried = same(&retried);
    let progress = same(&scenario("custom")[0]);
    let o = |evs: &[&Event]| evs.iter().map(|e| (*e).clone()).collect::<Vec<_>>();

    check(
        &o(&[sent, received, started, succeeded]),
        "c474f60e SUCCESS ts=succeeded name=tasks.add args=(2, 3) retries=0 worker=w1@vm client=gen16362@vm queue=celery",
    );
    // Celery also moves ts and clock to the late task-sent's; we keep the
    // state's own (see the module docs).
    check(
        &o(&[received, sent]),
        "c474f60e RECEIVED ts=received name=tasks.add args=(2, 3) retries=0 worker=w1@vm client=gen16362@vm queue=celery",
    );
    check(
        &o(&[started, received]),
        "c474f60e STARTED ts=started name=tasks.add args=(2, 3) retries=0 worker=w1@vm",
    );
    check(
        &o(&[succeeded, started]),
        "c474f60e SUCCESS ts=succeeded worker=w1@vm",
    );
    check(
        &o(&[succeeded, received]),
        "c474f60e SUCCESS ts=succeeded name=tasks.add args=(2, 3) retries=0 worker=w1@vm",
    );
    check(
        &o(&[succeeded, &retried]),
        "c474f60e RETRY ts=retried worker=w1@vm",
    );
    check(
        &o(&[&retried, sent]),
        "c474f60e PENDING ts=sent name=tasks.add args=(2, 3) retries=0 worker=w1@vm client=gen16362@vm queue=celery",
    );
    check(
        &o(&[failed, rejected]),
        "e89c51e4 FAILURE ts=failed worker=w1@vm",
    );
    check(
        &o(&[started, &progress]),
        "c474f60e PROGRESS ts=other worker=w4@vm",
    );
    check(
        &o(&[&progress, started]),
        "c474f60e PROGRESS ts=other worker=w1@vm",
    );
    check(
        &scenario("retry"),
        "0ef9ec74 SUCCESS ts=succeeded name=tasks.flaky args=(7,) retries=1 worker=w1@vm client=gen16251@vm queue=celery",
    );

    // The merged fields of those rows.
    let mut s = state();
    apply_all(&mut s, &o(&[failed, rejected]));
    let t = s
        .task("e89c51e4-f1f8-47c5-9206-3fbb36d54c7f")
        .expect("task");
    assert_eq!(t.rejected, Some(rejected.timestamp));
    assert_eq!(t.clock, failed.clock);
    assert!(t
        .exception
        .is_some_and(|e| e.starts_with("reject requeue=False")));
    let mut s = state();
    apply_all(&mut s, &o(&[started, received]));
    assert_eq!(
        s.task(ok[0].uuid.as_deref().expect("uuid"))
            .expect("task")
            .received,
        Some(received.timestamp)
    );
}

#[test]
fn unknown_task_from_revoke_has_no_name() {
    let revoked = scenario("revoke_before_start").pop().expect("revoked");
    check(&[revoked], "919ee25a REVOKED ts=revoked worker=w1@vm");
}

#[test]
fn task_sent_name_beats_received_name() {
    let ok = scenario("success");
    let sent = Event {
        name: Some("shadow.name".into()),
        ..ok[1].clone()
    };
    for order in [[&ok[0], &sent], [&sent, &ok[0]]] {
        let mut s = state();
        for e in order {
            s.apply(e, 0.0);
        }
        assert_eq!(
            s.task(ok[0].uuid.as_deref().expect("uuid"))
                .expect("task")
                .name,
            Some("shadow.name")
        );
    }
}

fn task_event(kind: EventKind, uuid: &str, host: &str, ts: f64) -> Event {
    Event {
        kind,
        hostname: host.into(),
        timestamp: ts,
        uuid: Some(uuid.into()),
        ..Event::default()
    }
}

#[test]
fn children_link_in_either_order_and_never_to_self() {
    let child_of = |uuid: &str, parent: &str| Event {
        parent_id: Some(parent.into()),
        root_id: Some(parent.into()),
        name: Some("tasks.child".into()),
        ..task_event(EventKind::TaskReceived, uuid, "w1@vm", 1.0)
    };
    let parent = task_event(EventKind::TaskStarted, "p", "w1@vm", 0.5);
    // Child first: resolved when the parent arrives.
    let mut s = state();
    s.apply(&child_of("c1", "p"), 1.0);
    assert_eq!(s.task("c1").expect("child").parent, None);
    s.apply(&parent, 1.0);
    s.apply(&child_of("c2", "p"), 1.0);
    s.apply(&child_of("c2", "p"), 1.0);
    let p = s.task("p").expect("parent");
    assert_eq!(p.children, ["c1", "c2"]);
    let c = s.task("c1").expect("child");
    assert_eq!(
        (c.parent, c.root, c.parent_id),
        (Some("p"), Some("p"), Some("p"))
    );
    assert_eq!(c.to_api().parent.as_deref(), Some("p"));

    // A retry's re-sent message names the task as its own parent.
    let mut s = state();
    s.apply(&child_of("r", "r"), 1.0);
    let r = s.task("r").expect("task");
    assert!(r.children.is_empty());
    assert_eq!(r.parent, Some("r"));
    // Flower (Celery's state) lists it among its own children; so does the
    // API, and nothing else.
    assert_eq!(r.to_api().children, ["r"]);

    // The real streams hold such retries and one real parent/child pair.
    let mut s = state();
    replay(&mut s, "stream-basic.jsonl");
    for t in s.tasks() {
        assert!(!t.children.contains(&t.uuid));
        for c in &t.children {
            assert_eq!(s.task(c).expect("child").parent_id, Some(t.uuid));
        }
    }
    assert!(s.tasks().any(|t| !t.children.is_empty()));
}

#[test]
fn eviction_is_oldest_created_first() {
    let mut s = State::new(Limits {
        max_tasks: 3,
        ..Limits::default()
    });
    for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
        s.apply(
            &task_event(EventKind::TaskReceived, id, "w1@vm", i as f64),
            0.0,
        );
    }
    // Updating "b" does not make it younger.
    s.apply(&task_event(EventKind::TaskStarted, "b", "w1@vm", 9.0), 0.0);
    s.apply(&task_event(EventKind::TaskStarted, "e", "w1@vm", 9.0), 0.0);
    let mut ids: Vec<&str> = s.tasks().map(|t| t.uuid).collect();
    ids.sort();
    assert_eq!(ids, ["c", "d", "e"]);
    assert_eq!((s.task_count(), s.evicted_tasks()), (3, 2));
    assert!(s.task("a").is_none());
    // Counters outlive evicted tasks.
    let received: u64 = s.task_series().map(|x| x.counts.received).sum();
    assert_eq!(received, 4);
}

#[test]
fn hundred_thousand_tasks() {
    let n = 100_000;
    let mut s = State::new(Limits {
        max_tasks: n,
        ..Limits::default()
    });
    let uuid = |i: usize| format!("{i:08x}-0000-4000-8000-000000000000");
    let mut ev = task_event(EventKind::TaskReceived, "", "w1@vm", 0.0);
    ev.name = Some("tasks.add".into());
    ev.args = Some("(2, 3)".into());
    for i in 0..n + 10 {
        ev.uuid = Some(uuid(i));
        ev.kind = EventKind::TaskReceived;
        s.apply(&ev, i as f64);
        ev.kind = EventKind::TaskSucceeded;
        ev.runtime = Some(0.01);
        s.apply(&ev, i as f64);
    }
    assert_eq!(s.task_count(), n);
    assert_eq!(s.evicted_tasks(), 10);
    assert!(s.task(&uuid(9)).is_none());
    let t = s.task(&uuid(n + 9)).expect("newest");
    assert_eq!(*t.state, TaskState::Success);
    let series: Vec<TaskSeries<'_>> = s.task_series().collect();
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].counts.succeeded, (n + 10) as u64);
    assert_eq!(series[0].counts.runtime.buckets[1], (n + 10) as u64);
    assert_eq!(series[0].counts.runtime.buckets[0], 0);
}

fn hb(kind: EventKind, host: &str, freq: Option<f64>) -> Event {
    Event {
        kind,
        hostname: host.into(),
        timestamp: 0.0,
        freq,
        ..Event::default()
    }
}

#[test]
fn worker_liveness_on_a_fake_clock() {
    let mut s = State::new(Limits {
        purge_offline_after: Some(10.0),
        ..Limits::default()
    });
    let online = &fixtures::decode(&fixtures::scenario("online")[0])[0];
    let w3 = online.hostname.as_str();
    s.apply(online, 100.0);
    let alive = |s: &State, now: f64| s.worker(w3, now).expect("worker").status;
    assert!(alive(&s, 100.0) && alive(&s, 103.9));
    assert!(!alive(&s, 104.1), "no heartbeat for 2 x freq");
    let w = s.worker(w3, 104.1).expect("worker");
    assert_eq!(
        (w.last_heartbeat, w.heartbeat_expires),
        (Some(100.0), Some(104.0))
    );

    // The wake-up reply says freq 5 and lacks active/processed/loadavg.
    let mut reply = fixtures::decode(&fixtures::scenario("heartbeat_req")[0]).remove(0);
    reply.hostname = w3.into();
    s.apply(&reply, 110.0);
    assert!(alive(&s, 110.0) && alive(&s, 119.9) && !alive(&s, 120.1));
    let w = s.worker(w3, 110.0).expect("worker");
    assert_eq!(
        (w.freq, w.active, w.processed),
        (Some(5.0), Some(0), Some(0))
    );
    assert_eq!(w.loadavg, online.loadavg);

    // worker-offline: at once, and the worker stays.
    s.apply(&hb(EventKind::WorkerOffline, w3, Some(2.0)), 111.0);
    assert!(!alive(&s, 111.0));
    assert_eq!(s.worker_count(), 1);
    // ... until purged after `purge_offline_after`.
    s.tick(120.0);
    assert_eq!(s.worker_count(), 1);
    s.tick(121.5);
    assert_eq!(s.worker_count(), 0);

    // An offline for an unknown worker creates nothing.
    s.apply(&hb(EventKind::WorkerOffline, "ghost@vm", Some(2.0)), 130.0);
    assert_eq!(s.worker_count(), 0);

    // Task events create and refresh workers (freq 60), never clients.
    s.apply(
        &task_event(EventKind::TaskSent, "t", "gen123@vm", 0.0),
        200.0,
    );
    assert_eq!(s.worker_count(), 0);
    s.apply(
        &task_event(EventKind::TaskStarted, "t", "w9@vm", 0.0),
        200.0,
    );
    assert!(s.worker("w9@vm", 319.0).expect("worker").status);
    assert!(!s.worker("w9@vm", 321.0).expect("worker").status);

    // A heartbeat after offline brings it back.
    s.apply(&hb(EventKind::WorkerOffline, "w9@vm", None), 201.0);
    assert!(!s.worker("w9@vm", 201.0).expect("worker").status);
    s.apply(&hb(EventKind::WorkerHeartbeat, "w9@vm", Some(2.0)), 202.0);
    assert!(s.worker("w9@vm", 205.0).expect("worker").status);
    // Expired (not offline) workers are purged too, counted from expiry.
    s.tick(202.0 + 4.0 + 10.5);
    assert_eq!(s.worker_count(), 0);
}

#[test]
fn workers_beyond_the_limit_evict_the_longest_silent() {
    let mut s = State::new(Limits {
        max_workers: 2,
        ..Limits::default()
    });
    s.apply(&hb(EventKind::WorkerOnline, "a@vm", Some(2.0)), 1.0);
    s.apply(&hb(EventKind::WorkerOnline, "b@vm", Some(2.0)), 2.0);
    s.apply(&hb(EventKind::WorkerHeartbeat, "a@vm", Some(2.0)), 3.0);
    s.apply(&hb(EventKind::WorkerOnline, "c@vm", Some(2.0)), 4.0);
    let names: Vec<String> = s.workers(4.0).into_iter().map(|w| w.hostname).collect();
    assert_eq!(names, ["a@vm", "c@vm"]);
}

/// An evicted worker's metric series go with it, as a purged one's do:
/// workers that come and go under new names must not grow `/metrics`
/// without bound.
#[test]
fn an_evicted_workers_series_go_with_it() {
    let mut s = State::new(Limits {
        max_workers: 2,
        ..Limits::default()
    });
    s.apply(&task_event(EventKind::TaskReceived, "t1", "a@vm", 1.0), 1.0);
    s.apply(&task_event(EventKind::TaskReceived, "t2", "b@vm", 2.0), 2.0);
    s.apply(&task_event(EventKind::TaskReceived, "t3", "a@vm", 3.0), 3.0);
    let hosts = |s: &State| -> Vec<String> {
        let mut h: Vec<String> = s.task_series().map(|x| x.hostname.to_owned()).collect();
        h.sort();
        h
    };
    assert_eq!(hosts(&s), ["a@vm", "b@vm"]);
    s.apply(&task_event(EventKind::TaskReceived, "t4", "c@vm", 4.0), 4.0);
    assert_eq!(hosts(&s), ["a@vm", "c@vm"], "b@vm was the longest silent");
    let a = s.task_series().find(|x| x.hostname == "a@vm").unwrap();
    assert_eq!(a.counts.received, 2, "the others keep their counts");
}

fn replay(s: &mut State, file: &str) -> Vec<Event> {
    let mut all = Vec::new();
    for (recv, body) in fixtures::stream(file) {
        for e in fixtures::decode(&body) {
            s.apply(&e, recv);
            all.push(e);
        }
    }
    all
}

#[test]
fn whole_streams_give_sensible_counts() {
    for file in ["stream-basic.jsonl", "stream-mixed.jsonl"] {
        let mut s = state();
        let events = replay(&mut s, file);
        let uuids_of = |k: EventKind| {
            let mut v: Vec<&str> = events
                .iter()
                .filter(|e| e.kind == k)
                .filter_map(|e| e.uuid.as_deref())
                .collect();
            v.sort();
            v.dedup();
            v
        };
        let in_state = |st: TaskState| {
            let mut v: Vec<&str> = s
                .tasks()
                .filter(|t| *t.state == st)
                .map(|t| t.uuid)
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            in_state(TaskState::Success),
            uuids_of(EventKind::TaskSucceeded),
            "{file}"
        );
        assert_eq!(
            in_state(TaskState::Failure),
            uuids_of(EventKind::TaskFailed),
            "{file}"
        );
        let all = events
            .iter()
            .filter_map(|e| e.uuid.as_deref())
            .collect::<hashbrown::HashSet<_>>();
        assert_eq!(s.task_count(), all.len(), "{file}");

        // Every counted event is in exactly one series.
        let count = |k: EventKind| events.iter().filter(|e| e.kind == k).count() as u64;
        let sum = |f: fn(&TaskCounts) -> u64| s.task_series().map(|x| f(x.counts)).sum::<u64>();
        assert_eq!(sum(|c| c.sent), count(EventKind::TaskSent), "{file}");
        assert_eq!(
            sum(|c| c.received),
            count(EventKind::TaskReceived),
            "{file}"
        );
        assert_eq!(sum(|c| c.started), count(EventKind::TaskStarted), "{file}");
        assert_eq!(
            sum(|c| c.succeeded),
            count(EventKind::TaskSucceeded),
            "{file}"
        );
        assert_eq!(
            sum(|c| c.runtime.count),
            count(EventKind::TaskSucceeded),
            "{file}"
        );
        assert_eq!(
            sum(TaskCounts::failed_total),
            count(EventKind::TaskFailed),
            "{file}"
        );
        assert_eq!(sum(|c| c.retried), count(EventKind::TaskRetried), "{file}");
        assert_eq!(sum(|c| c.revoked), count(EventKind::TaskRevoked), "{file}");
        assert_eq!(
            sum(|c| c.rejected),
            count(EventKind::TaskRejected),
            "{file}"
        );
        for x in s.task_series() {
            assert!(!x.hostname.is_empty() && x.hostname.contains('@'), "{file}");
        }

        // Workers: every non-client sender, none of the clients.
        let mut hosts: Vec<&str> = events
            .iter()
            .filter(|e| e.kind != EventKind::TaskSent)
            .map(|e| e.hostname.as_str())
            .collect();
        hosts.sort();
        hosts.dedup();
        let workers: Vec<String> = s.workers(0.0).into_iter().map(|w| w.hostname).collect();
        assert_eq!(workers, hosts, "{file}");
        let mut types = s.task_types();
        assert!(types.contains(&"tasks.add".to_owned()), "{file}");
        types.dedup();
        assert_eq!(types.len(), s.task_types().len());

        // Every task renders in Flower's shape.
        for t in s.tasks() {
            let api = t.to_api();
            assert_eq!(api.uuid, t.uuid);
            assert_eq!(
                api.children.contains(&api.uuid),
                t.parent_id == Some(t.uuid),
                "{}",
                api.uuid
            );
        }
    }
}

#[test]
fn mixed_stream_details() {
    let mut s = state();
    let events = replay(&mut s, "stream-mixed.jsonl");
    let last = events.iter().map(|e| e.timestamp).fold(0.0, f64::max);
    // w55's tasks went to queue q55; custom states show up.
    assert!(s
        .task_series()
        .any(|x| x.queue == "q55" && x.name.starts_with("tasks55.")));
    assert!(
        s.tasks()
            .any(|t| matches!(t.state, TaskState::Custom(c) if c == "PROGRESS"))
            || s.tasks().any(|t| t.name == Some("tasks.progress"))
    );
    let offline: Vec<String> = s
        .workers(last)
        .into_iter()
        .filter(|w| !w.status)
        .map(|w| w.hostname)
        .collect();
    assert!(!offline.is_empty());
}

#[test]
fn series_labels_and_exception_classes() {
    let mut s = state();
    for name in ["success", "failure", "rejected"] {
        apply_all(&mut s, &scenario(name));
    }
    let mut rows: Vec<String> = s
        .task_series()
        .map(|x| {
            let c = x.counts;
            let failed: Vec<String> = c.failed().map(|(k, n)| format!("{k}:{n}")).collect();
            format!(
                "{} {} {} sent={} rcvd={} start={} ok={} rej={} failed=[{}] rt={}",
                x.name,
                x.hostname,
                x.queue,
                c.sent,
                c.received,
                c.started,
                c.succeeded,
                c.rejected,
                failed.join(","),
                c.runtime.count
            )
        })
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            "tasks.add gen16362@vm celery sent=1 rcvd=0 start=0 ok=0 rej=0 failed=[] rt=0",
            "tasks.add w1@vm celery sent=0 rcvd=1 start=1 ok=1 rej=0 failed=[] rt=1",
            "tasks.fail gen16362@vm celery sent=1 rcvd=0 start=0 ok=0 rej=0 failed=[] rt=0",
            "tasks.fail w1@vm celery sent=0 rcvd=1 start=1 ok=0 rej=0 failed=[ValueError:1] rt=0",
            "tasks.rejecter gen16362@vm celery sent=1 rcvd=0 start=0 ok=0 rej=0 failed=[] rt=0",
            "tasks.rejecter w1@vm celery sent=0 rcvd=1 start=1 ok=0 rej=1 failed=[UnknownException:1] rt=0",
        ]
    );
    assert_eq!(exception_class("ValueError('boom')"), "ValueError");
    assert_eq!(exception_class("NotRegistered('tasks.x')"), "NotRegistered");
    assert_eq!(
        exception_class("celery.exceptions.Foo()"),
        UNKNOWN_EXCEPTION
    );
    assert_eq!(exception_class("None"), UNKNOWN_EXCEPTION);
    assert_eq!(exception_class(""), UNKNOWN_EXCEPTION);
    assert_eq!(exception_class("Ünïcode_1(x)"), "Ünïcode_1");

    // A task first seen without a name counts under "unknown".
    let mut s = state();
    s.apply(&task_event(EventKind::TaskRevoked, "x", "w1@vm", 1.0), 1.0);
    let x = s.task_series().next().expect("series");
    assert_eq!(
        (x.name, x.queue, x.counts.revoked),
        (UNKNOWN_NAME, DEFAULT_QUEUE, 1)
    );
}

#[test]
fn histogram_is_cumulative() {
    let mut h = Histogram::default();
    for v in [0.001, 0.02, 0.3, 20.0, f64::NAN] {
        h.observe(v);
    }
    assert_eq!(h.count, 4);
    assert_eq!(h.buckets[0], 1);
    assert_eq!(h.buckets[2], 2); // <= 0.025
    assert_eq!(h.buckets[13], 3); // <= 10
    assert!((h.sum - 20.321).abs() < 1e-9);
}

/// Slots are reused after eviction, so marks must leave as ids, and a marked
/// task evicted before the take must come out as an eviction, never as the
/// id of whatever took its slot.
#[test]
fn changes_name_tasks_by_id_and_report_what_was_evicted() {
    let mut s = State::new(Limits {
        max_tasks: 2,
        ..Limits::default()
    });
    let uuid = "c474f60e-2f1d-47da-9595-5084041a0790";
    let mut received = task_event(EventKind::TaskReceived, uuid, "w1@vm", 1.0);
    received.name = Some("tasks.add".into());
    s.apply(&received, 1.0);
    s.apply(&task_event(EventKind::TaskStarted, uuid, "w1@vm", 2.0), 2.0);
    s.apply(&task_event(EventKind::TaskSent, "b", "c@vm", 2.0), 2.0);
    let c = s.take_changes();
    let mut ids: Vec<&str> = c.tasks.iter().map(TaskId::as_str).collect();
    ids.sort();
    assert_eq!(ids, ["b", uuid]);
    assert!(c.workers && !c.overflow && c.evicted.is_empty());
    assert_eq!(s.take_changes(), Changes::default());

    // The uuid is marked again, then evicted by "c", whose slot it was.
    s.apply(
        &task_event(EventKind::TaskSucceeded, uuid, "w1@vm", 3.0),
        3.0,
    );
    s.apply(&task_event(EventKind::TaskSent, "c", "c@vm", 4.0), 4.0);
    let c = s.take_changes();
    assert_eq!(c.tasks, ["c"]);
    assert_eq!(c.evicted.len(), 1);
    assert_eq!(c.evicted[0].id, uuid);
    let gone = s.evicted_task(&c.evicted[0]);
    assert_eq!(gone.uuid, uuid);
    assert_eq!(gone.state, TaskState::Success);
    assert_eq!(gone.name.as_deref(), Some("tasks.add"));
    assert_eq!(gone.worker.as_deref(), Some("w1@vm"));
    assert_eq!(s.evicted_tasks(), 1);
}

/// More changes than tasks retained collapse into `overflow`; the marks
/// start afresh after the take.
#[test]
fn changes_collapse_into_overflow_beyond_max_tasks() {
    let mut s = State::new(Limits {
        max_tasks: 3,
        ..Limits::default()
    });
    for (i, id) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        s.apply(&task_event(EventKind::TaskSent, id, "c@vm", i as f64), 0.0);
    }
    let c = s.take_changes();
    assert!(c.overflow);
    assert!(c.tasks.is_empty() && c.evicted.is_empty());
    s.apply(&task_event(EventKind::TaskSent, "f", "c@vm", 9.0), 0.0);
    let c = s.take_changes();
    assert!(!c.overflow);
    assert_eq!(c.tasks, ["f"]);
    assert_eq!(c.evicted.len(), 1);
    assert_eq!(c.evicted[0].id, "c");
}

#[test]
fn unfinished_tasks_of_an_expired_worker_are_lost_until_an_event_says_otherwise() {
    let mut s = state();
    let named = |kind, uuid: &str, host: &str| Event {
        name: Some("tasks.sleep".into()),
        queue: Some("q1".into()),
        ..task_event(kind, uuid, host, 100.0)
    };
    s.apply(&hb(EventKind::WorkerOnline, "w1@vm", Some(2.0)), 100.0);
    s.apply(&hb(EventKind::WorkerOnline, "w2@vm", Some(2.0)), 100.0);
    s.apply(&named(EventKind::TaskSent, "started", "client@vm"), 100.0);
    s.apply(&named(EventKind::TaskReceived, "started", "w1@vm"), 100.0);
    s.apply(&named(EventKind::TaskStarted, "started", "w1@vm"), 100.0);
    s.apply(&named(EventKind::TaskReceived, "received", "w1@vm"), 100.0);
    s.apply(&named(EventKind::TaskReceived, "done", "w1@vm"), 100.0);
    s.apply(&named(EventKind::TaskSucceeded, "done", "w1@vm"), 100.0);
    s.apply(&named(EventKind::TaskStarted, "elsewhere", "w2@vm"), 100.0);
    s.take_changes();
    // w2 keeps beating; w1 falls silent at 100 and expires at 104.
    s.apply(&hb(EventKind::WorkerHeartbeat, "w2@vm", Some(2.0)), 103.0);
    s.tick(103.9);
    assert_eq!(s.task("started").unwrap().state.as_str(), "STARTED");
    s.tick(104.5);
    let state_of = |s: &State, id: &str| s.task(id).unwrap().state.as_str().to_owned();
    assert_eq!(state_of(&s, "started"), LOST);
    assert_eq!(state_of(&s, "received"), LOST);
    assert_eq!(state_of(&s, "done"), "SUCCESS");
    assert_eq!(state_of(&s, "elsewhere"), "STARTED");
    let t = s.task("started").unwrap();
    assert_eq!((t.worker, t.timestamp), (Some("w1@vm"), Some(104.0)));
    let changes = s.take_changes();
    let mut changed: Vec<&str> = changes.tasks.iter().map(|t| t.as_str()).collect();
    changed.sort_unstable();
    assert_eq!(
        changed,
        ["received", "started"],
        "the lost tasks are changes"
    );
    let lost: u64 = s
        .task_series()
        .filter(|x| x.hostname == "w1@vm" && x.name == "tasks.sleep" && x.queue == "q1")
        .map(|x| x.counts.lost)
        .sum();
    assert_eq!(lost, 2);
    assert_eq!(s.lost_total(), 2);

    // Declared once per expiry: later ticks count nothing more.
    s.apply(&hb(EventKind::WorkerHeartbeat, "w2@vm", Some(2.0)), 109.0);
    s.tick(110.0);
    assert_eq!(s.lost_total(), 2);

    // The real outcome wins whenever it comes, and the counter stays.
    s.apply(&named(EventKind::TaskFailed, "started", "w1@vm"), 111.0);
    assert_eq!(state_of(&s, "started"), "FAILURE");
    // Redelivered to another worker: its task-received wins over LOST.
    s.apply(&named(EventKind::TaskReceived, "received", "w2@vm"), 111.0);
    assert_eq!(state_of(&s, "received"), "RECEIVED");
    assert_eq!(s.lost_total(), 2);

    // A worker heard from again can lose tasks again at its next expiry.
    s.apply(&named(EventKind::TaskStarted, "again", "w1@vm"), 120.0);
    s.apply(&hb(EventKind::WorkerHeartbeat, "w2@vm", Some(2.0)), 124.0);
    s.tick(125.0);
    assert_eq!(state_of(&s, "again"), LOST);
    assert_eq!(state_of(&s, "elsewhere"), "STARTED", "w2 still beats");
    assert_eq!(s.lost_total(), 3);
}

#[test]
fn a_worker_that_says_goodbye_loses_nothing() {
    let mut s = state();
    s.apply(&hb(EventKind::WorkerOnline, "w1@vm", Some(2.0)), 100.0);
    s.apply(
        &task_event(EventKind::TaskReceived, "r", "w1@vm", 100.0),
        100.0,
    );
    s.apply(&hb(EventKind::WorkerOffline, "w1@vm", None), 101.0);
    s.tick(200.0);
    assert_eq!(s.task("r").unwrap().state.as_str(), "RECEIVED");
    assert_eq!(s.lost_total(), 0);
}

#[test]
fn a_restored_lost_task_is_lost_again() {
    let mut before = state();
    before.apply(&task_event(EventKind::TaskStarted, "x", "w1@vm", 1.0), 1.0);
    before.tick(1000.0);
    let t = before.task("x").unwrap().to_api();
    assert_eq!(t.state, TaskState::Custom(LOST.into()));
    let mut s = state();
    s.restore(&t);
    assert_eq!(s.task("x").unwrap().state.as_str(), LOST);
    s.apply(&task_event(EventKind::TaskStarted, "x", "w1@vm", 5.0), 5.0);
    assert_eq!(s.task("x").unwrap().state.as_str(), "STARTED");
}

fn named(kind: EventKind, uuid: &str, name: &str, ts: f64) -> Event {
    Event {
        name: Some(name.into()),
        queue: Some("celery".into()),
        ..task_event(kind, uuid, "w1@vm", ts)
    }
}

/// Beyond `max_task_names` distinct names, aggregates count later names
/// under `other` (counted once each), the task-types list stays at the
/// cap, and every task keeps its own name.
#[test]
fn names_beyond_the_cap_fold_into_other_but_tasks_keep_theirs() {
    let mut s = State::new(Limits {
        max_task_names: 3,
        ..Limits::default()
    });
    for i in 0..10 {
        let id = format!("id{i}");
        let name = format!("t.n{i}");
        s.apply(&named(EventKind::TaskReceived, &id, &name, 1.0), 1.0);
        s.apply(&named(EventKind::TaskSucceeded, &id, &name, 2.0), 2.0);
    }
    // One more event of a folded name is not a new name.
    s.apply(&named(EventKind::TaskReceived, "again", "t.n9", 3.0), 3.0);
    let mut series: Vec<(&str, u64, u64)> = s
        .task_series()
        .map(|x| (x.name, x.counts.received, x.counts.succeeded))
        .collect();
    series.sort();
    assert_eq!(
        series,
        [
            ("other", 8, 7),
            ("t.n0", 1, 1),
            ("t.n1", 1, 1),
            ("t.n2", 1, 1)
        ]
    );
    assert_eq!(s.task_types(), ["t.n0", "t.n1", "t.n2"]);
    assert_eq!(s.task_names_folded(), 7);
    assert_eq!(s.task("id7").and_then(|t| t.name), Some("t.n7"));
    assert!(s.knows_task_name("t.n7"), "a retained task has it");
    assert!(s.knows_task_name("t.n0"));
    assert!(!s.knows_task_name("t.n77"));
}

/// A stream of distinct names (each task its own) with few tasks retained:
/// the interned strings stay within a bound, sweeps free the names of
/// evicted tasks, and what is retained still reads and filters by its
/// own names afterwards (a freed slot reused by another name must not
/// show through).
#[test]
fn interned_names_of_evicted_tasks_are_freed() {
    let mut s = State::new(Limits {
        max_tasks: 100,
        max_task_names: 10,
        ..Limits::default()
    });
    let mut most = 0;
    for i in 0..30_000 {
        let id = format!("id{i}");
        s.apply(
            &named(EventKind::TaskReceived, &id, &format!("dyn.t{i}"), i as f64),
            i as f64,
        );
        if i % 50 == 0 {
            s.take_changes();
        }
        most = most.max(s.interned_strings());
    }
    assert!(most <= 2 * super::SWEEP_FLOOR + 200, "held at most {most}");
    assert!(
        s.interned_strings_freed() >= 20_000,
        "{}",
        s.interned_strings_freed()
    );
    // Records evicted since the last take hold their names until taken.
    s.take_changes();
    s.sweep_now();
    // The retained names, the 10 kept ones, the hostname, the queue, and
    // `unknown`, `celery`, `other`.
    assert_eq!(
        s.interned_strings(),
        100 + 10 + 1 + 3,
        "{:?}",
        s.task_types()
    );
    for i in 29_900..30_000 {
        let id = format!("id{i}");
        let name = format!("dyn.t{i}");
        assert_eq!(s.task(&id).and_then(|t| t.name), Some(name.as_str()));
        let by_name: Vec<&str> = s
            .newest_first(Some(IndexKey::Name(s.strings.get(&name).unwrap())), None)
            .filter_map(|c| s.indexed(c).map(|t| t.uuid))
            .collect();
        assert_eq!(by_name, [id.as_str()]);
    }
    let kept: Vec<String> = (0..10).map(|i| format!("dyn.t{i}")).collect();
    let mut types = s.task_types();
    types.sort();
    let mut kept_sorted = kept.clone();
    kept_sorted.sort();
    assert_eq!(types, kept_sorted);
    // The kept names' series still carry their names.
    assert!(s.task_series().any(|x| x.name == "dyn.t3"));
    // A new name after the sweep gets a reused slot and resolves as itself.
    s.apply(
        &named(EventKind::TaskReceived, "late", "dyn.late", 1e6),
        1e6,
    );
    assert_eq!(s.task("late").and_then(|t| t.name), Some("dyn.late"));
    assert_eq!(s.task("id29999").and_then(|t| t.name), Some("dyn.t29999"));
}

/// A sweep keeps what evicted records not yet reported hold: the change
/// feed renders them after the sweep.
#[test]
fn evicted_records_keep_their_names_through_a_sweep() {
    let mut s = State::new(Limits {
        max_tasks: 2,
        max_task_names: 1,
        ..Limits::default()
    });
    let apply = |s: &mut State, i: usize| {
        s.apply(
            &named(
                EventKind::TaskReceived,
                &format!("id{i}"),
                &format!("t{i}"),
                1.0,
            ),
            1.0,
        );
    };
    apply(&mut s, 0);
    apply(&mut s, 1);
    s.take_changes();
    apply(&mut s, 2);
    apply(&mut s, 3);
    s.sweep_now();
    let c = s.take_changes();
    let names: Vec<Option<String>> = c.evicted.iter().map(|e| s.evicted_task(e).name).collect();
    assert_eq!(names, [Some("t0".into()), Some("t1".into())]);
}
