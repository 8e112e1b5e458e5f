//! The dashboard's live feed: `/ws` sends a snapshot on connect, then the
//! deltas the [`Hub`] publishes at most every [`PUBLISH_INTERVAL`].
//!
//! The hub subscribes to the change feed ([`crate::feed`]): the state owner
//! takes the change marks once per tick and hands them to it ([`Dashboard`]),
//! and the hub builds each delta under a read lock, serialises it once and
//! broadcasts it to every client. A client that cannot keep up lags behind
//! the bounded broadcast channel and is sent a fresh snapshot instead of the
//! deltas it missed: memory per client is bounded.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use api::ws::{clip, Ingest, RatePoint, TaskRow, TypeStats, WsMessage};
use axum::extract::ws::Utf8Bytes;
use hashbrown::HashMap;
use parking_lot::Mutex;
use tokio::sync::broadcast;

use crate::clock::now;
use crate::feed::{Changes, StateReader, Subscriber};
use crate::state::{Histogram, State, TaskView};
use crate::telemetry::{
    any_consuming, first_error, DashboardEvent, DashboardTelemetry, SourceStatus,
};

/// Deltas are sent at most this often: once per tick of the change feed.
pub const PUBLISH_INTERVAL: Duration = crate::feed::INTERVAL;
/// Most tasks in a snapshot (the most recently created).
pub const SNAPSHOT_TASKS: usize = 10_000;
/// Deltas a client may fall behind before it is resynchronised.
const CLIENT_BACKLOG: usize = 32;
/// Seconds of per-second rates kept for the overview chart (15 minutes).
const RATE_HISTORY: usize = 900;
/// Seconds over which a task type's throughput is averaged.
const THROUGHPUT_WINDOW: f64 = 60.0;

/// The publisher's memory between ticks, and the broadcast to clients.
pub struct Hub {
    tx: broadcast::Sender<Utf8Bytes>,
    inner: Mutex<Publisher>,
    /// What the dashboard shows of the event sources.
    sources: Arc<[Arc<SourceStatus>]>,
    telemetry: DashboardTelemetry,
    /// When the state's counters started.
    started: f64,
    /// `--hide-args`: one feed serves everyone, viewers included, so it
    /// carries no args or kwargs; operators read them from the task's page.
    hide_args: bool,
}

#[derive(Default)]
struct Publisher {
    /// Whole second of the last rate sample, and the totals then.
    last_second: Option<(f64, u64, u64)>,
    rates: VecDeque<RatePoint>,
    /// Finished totals per task name, one sample per second.
    finished: VecDeque<(f64, HashMap<String, u64>)>,
    /// Every type as of the last fold, sorted by name.
    types: Vec<TypeStats>,
    /// What that fold changed, for the next delta.
    types_changed: Vec<TypeStats>,
    types_gone: Vec<String>,
    last_workers_sent: f64,
    last_ingest: Option<Ingest>,
}

/// The hub as a subscriber of the change feed.
pub struct Dashboard(pub Arc<Hub>);

impl Subscriber for Dashboard {
    fn on_changes(&mut self, changes: &Changes, state: &StateReader<'_>, now: f64) {
        self.0.publish_changes(changes, state, now);
    }
}

impl Hub {
    pub fn new(sources: Arc<[Arc<SourceStatus>]>, telemetry: DashboardTelemetry) -> Hub {
        Hub {
            tx: broadcast::channel(CLIENT_BACKLOG).0,
            inner: Mutex::new(Publisher::default()),
            sources,
            telemetry,
            started: now(),
            hide_args: false,
        }
    }

    /// Leaves task args and kwargs out of every message.
    pub fn hiding_args(mut self, hide: bool) -> Hub {
        self.hide_args = hide;
        self
    }

    /// A tick with the hub as the only subscriber, for tests: takes the
    /// change marks itself, which a running feed does instead.
    #[cfg(test)]
    pub fn publish(&self, state: &parking_lot::RwLock<State>) {
        let changes = crate::feed::take(state);
        let state = StateReader::new(state);
        self.publish_changes(&changes, &state, now());
    }

    /// One tick: folds the aggregates once a second, and broadcasts one
    /// delta when anything changed (a snapshot when `changes` overflowed).
    pub fn publish_changes(&self, changes: &Changes, state: &StateReader<'_>, now: f64) {
        let mut p = self.inner.lock();
        let listening = self.tx.receiver_count() > 0;
        let second = now.floor();
        let new_second = p.last_second.is_none_or(|(s, _, _)| second > s);

        let mut rows = Vec::new();
        let mut workers = None;
        {
            let state = state.read();
            if new_second {
                p.fold_aggregates(&state, second);
            }
            if listening {
                if !changes.overflow {
                    rows = state
                        .changed_tasks(changes)
                        .map(|t| row(&t, self.hide_args))
                        .collect();
                }
                // Liveness changes with time alone: resend once a second.
                if changes.workers || now - p.last_workers_sent >= 1.0 {
                    workers = Some(state.workers(now));
                    p.last_workers_sent = now;
                }
            }
        }
        if !listening {
            return;
        }
        if changes.overflow {
            drop(p);
            if let Ok(clients) = self.tx.send(self.snapshot(state)) {
                self.telemetry.emit(DashboardEvent::Resynced {
                    clients,
                    why: "too many changes",
                });
            }
            return;
        }
        let ingest = self.ingest(state);
        let ingest = (p.last_ingest.as_ref() != Some(&ingest)).then(|| {
            p.last_ingest = Some(ingest.clone());
            ingest
        });
        let (types, types_gone, rates) = if new_second {
            (
                std::mem::take(&mut p.types_changed),
                std::mem::take(&mut p.types_gone),
                p.rates.back().copied().into_iter().collect(),
            )
        } else {
            (Vec::new(), Vec::new(), Vec::new())
        };
        if rows.is_empty()
            && workers.is_none()
            && types.is_empty()
            && types_gone.is_empty()
            && rates.is_empty()
            && ingest.is_none()
        {
            return;
        }
        let msg = WsMessage::Delta {
            now,
            workers,
            tasks: rows,
            types,
            types_gone,
            rates,
            ingest,
        };
        let _ = self.tx.send(encode(&msg));
    }

    /// Everything a client starts from, serialised.
    pub fn snapshot(&self, state: &StateReader<'_>) -> Utf8Bytes {
        let now = now();
        let (types, rates) = {
            let p = self.inner.lock();
            (p.types.clone(), p.rates.iter().copied().collect())
        };
        let (workers, tasks) = {
            let state = state.read();
            let tasks = state
                .recent_tasks(SNAPSHOT_TASKS)
                .map(|t| row(&t, self.hide_args))
                .collect();
            (state.workers(now), tasks)
        };
        encode(&WsMessage::Snapshot {
            now,
            workers,
            tasks,
            types,
            rates,
            ingest: self.ingest(state),
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Utf8Bytes> {
        self.tx.subscribe()
    }

    /// A client fell behind the broadcast and gets a snapshot instead.
    pub fn client_lagged(&self) {
        self.telemetry.emit(DashboardEvent::Resynced {
            clients: 1,
            why: "client lagged",
        });
    }

    fn ingest(&self, state: &StateReader<'_>) -> Ingest {
        let state = state.read();
        Ingest {
            consuming: any_consuming(&self.sources),
            last_error: first_error(&self.sources),
            tasks_retained: state.task_count() as u64,
            tasks_evicted: state.evicted_tasks(),
            counting_since: Some(self.started),
        }
    }
}

impl Publisher {
    /// Once a second: the completions of the second that ended, and the
    /// per-name statistics, from the state's aggregates.
    fn fold_aggregates(&mut self, state: &State, second: f64) {
        let mut by_name: HashMap<&str, (TypeStats, Histogram)> = HashMap::new();
        let bounds = &state.limits().runtime_buckets;
        for s in state.task_series() {
            let (t, h) = by_name.entry(s.name).or_insert_with(|| {
                (
                    TypeStats {
                        name: s.name.to_owned(),
                        ..TypeStats::default()
                    },
                    Histogram::default(),
                )
            });
            let c = s.counts;
            t.sent += c.sent;
            t.received += c.received;
            t.started += c.started;
            t.succeeded += c.succeeded;
            t.failed += c.failed_total();
            t.retried += c.retried;
            t.revoked += c.revoked;
            t.rejected += c.rejected;
            h.add(&c.runtime);
        }
        let (succeeded, failed) = by_name
            .values()
            .fold((0, 0), |(s, f), (t, _)| (s + t.succeeded, f + t.failed));
        if let Some((prev, ps, pf)) = self.last_second {
            self.rates.push_back(RatePoint {
                t: prev,
                succeeded: succeeded.saturating_sub(ps),
                failed: failed.saturating_sub(pf),
            });
            while self.rates.len() > RATE_HISTORY {
                self.rates.pop_front();
            }
        }
        self.last_second = Some((second, succeeded, failed));

        let finished: HashMap<String, u64> = by_name
            .values()
            .map(|(t, _)| (t.name.clone(), t.succeeded + t.failed))
            .collect();
        while self
            .finished
            .front()
            .is_some_and(|(t, _)| second - t > THROUGHPUT_WINDOW)
        {
            self.finished.pop_front();
        }
        let oldest = self.finished.front();
        let mut types: Vec<TypeStats> = by_name
            .into_values()
            .map(|(mut t, h)| {
                t.p50 = quantile(&h, 0.50, bounds);
                t.p95 = quantile(&h, 0.95, bounds);
                t.p99 = quantile(&h, 0.99, bounds);
                if let Some((t0, old)) = oldest.filter(|(t0, _)| second > *t0) {
                    let before = old.get(&t.name).copied().unwrap_or(0);
                    let done = (t.succeeded + t.failed).saturating_sub(before);
                    t.throughput = done as f64 / (second - t0);
                }
                t
            })
            .collect();
        types.sort_by(|a, b| a.name.cmp(&b.name));
        (self.types_changed, self.types_gone) = diff_types(&self.types, &types);
        self.types = types;
        self.finished.push_back((second, finished));
    }
}

/// The types of `new` that differ from or are missing in `old`, and the
/// names of `old` missing in `new`; both sorted by name.
fn diff_types(old: &[TypeStats], new: &[TypeStats]) -> (Vec<TypeStats>, Vec<String>) {
    let (mut changed, mut gone) = (Vec::new(), Vec::new());
    let (mut o, mut n) = (old.iter().peekable(), new.iter().peekable());
    loop {
        match (o.peek(), n.peek()) {
            (None, None) => break,
            (Some(a), Some(b)) if a.name == b.name => {
                if a != b {
                    changed.push((*b).clone());
                }
                o.next();
                n.next();
            }
            (Some(a), Some(b)) if a.name < b.name => {
                gone.push(a.name.clone());
                o.next();
            }
            (Some(a), None) => {
                gone.push(a.name.clone());
                o.next();
            }
            (_, Some(b)) => {
                changed.push((*b).clone());
                n.next();
            }
        }
    }
    (changed, gone)
}

/// The upper bound of the bucket holding quantile `q` (`+Inf` reported as
/// the last finite bound).
fn quantile(h: &Histogram, q: f64, bounds: &[f64]) -> Option<f64> {
    if h.count == 0 {
        return None;
    }
    let rank = (q * h.count as f64).ceil() as u64;
    let i = h.buckets.iter().position(|&n| n >= rank);
    i.or(bounds.len().checked_sub(1)).map(|i| bounds[i])
}

fn row(t: &TaskView<'_>, hide_args: bool) -> TaskRow {
    let s = |x: Option<&str>| x.map(str::to_owned);
    TaskRow {
        uuid: t.uuid.to_owned(),
        name: s(t.name),
        state: t.state.clone(),
        worker: s(t.worker),
        queue: s(t.queue),
        sent: t.sent,
        received: t.received,
        started: t.started,
        timestamp: t.timestamp,
        runtime: t.runtime,
        args: t.args.filter(|_| !hide_args).map(clip),
        kwargs: t.kwargs.filter(|_| !hide_args).map(clip),
        result: t.result.map(clip),
        exception: t.exception.map(clip),
        parent_id: s(t.parent_id),
        root_id: s(t.root_id),
        retries: t.retries,
    }
}

fn encode(msg: &WsMessage) -> Utf8Bytes {
    // Our own types always serialise.
    serde_json::to_string(msg).unwrap_or_default().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::AppState;
    use crate::events::decode_body;
    use crate::state::RUNTIME_BUCKETS;

    fn shared() -> AppState {
        crate::test_app(&[])
    }

    fn apply(s: &AppState, uuid: &str, kind: &str) {
        let body = format!(
            r#"[{{"hostname": "w1@vm", "utcoffset": 0.0, "pid": 1, "clock": 1, "uuid": "{uuid}", "name": "tasks.add", "timestamp": {}, "type": "{kind}"}}]"#,
            now()
        );
        let (mut events, mut errors) = (Vec::new(), Vec::new());
        decode_body(body.as_bytes(), &mut events, &mut errors);
        let mut state = s.state.write();
        for e in &events {
            state.apply(e, now());
        }
    }

    fn next(rx: &mut broadcast::Receiver<Utf8Bytes>) -> Option<WsMessage> {
        rx.try_recv()
            .ok()
            .map(|t| serde_json::from_str(t.as_str()).unwrap())
    }

    #[test]
    fn deltas_carry_only_what_changed_and_snapshots_everything() {
        let s = shared();
        apply(&s, "a", "task-received");
        let mut rx = s.dashboard.subscribe();
        match serde_json::from_str(s.dashboard.snapshot(&StateReader::new(&s.state)).as_str())
            .unwrap()
        {
            WsMessage::Snapshot { tasks, .. } => assert_eq!(tasks[0].uuid, "a"),
            m => panic!("{m:?}"),
        }
        s.dashboard.publish(&s.state);
        // The first publish sends the marks taken so far (task a).
        let Some(WsMessage::Delta { tasks, .. }) = next(&mut rx) else {
            panic!("no delta")
        };
        assert_eq!(tasks.len(), 1);
        apply(&s, "b", "task-started");
        s.dashboard.publish(&s.state);
        let Some(WsMessage::Delta { tasks, .. }) = next(&mut rx) else {
            panic!("no delta")
        };
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].uuid, "b");
        assert_eq!(tasks[0].state, api::TaskState::Started);
        // Nothing changed: no message at all (workers were sent < 1 s ago).
        s.dashboard.publish(&s.state);
        assert!(next(&mut rx).is_none());
    }

    /// Only taking the marks needs the write lock: the delta is built
    /// while another reader holds the state.
    #[test]
    fn the_delta_is_built_under_a_read_lock() {
        let s = Arc::new(shared());
        apply(&s, "a", "task-received");
        let mut rx = s.dashboard.subscribe();
        let changes = crate::feed::take(&s.state);
        let held = s.state.read();
        let (done, published) = std::sync::mpsc::channel();
        let hub = s.clone();
        std::thread::spawn(move || {
            let state = StateReader::new(&hub.state);
            hub.dashboard.publish_changes(&changes, &state, now());
            let _ = done.send(());
        });
        published
            .recv_timeout(Duration::from_secs(10))
            .expect("the hub published while the state was read-locked");
        drop(held);
        let Some(WsMessage::Delta { tasks, .. }) = next(&mut rx) else {
            panic!("no delta")
        };
        assert_eq!(tasks[0].uuid, "a");
    }

    /// Too many changes in one tick: every client gets a snapshot, and
    /// each counts as a resync.
    #[test]
    fn an_overflow_resynchronises_every_client_and_is_counted() {
        let s = crate::test_app(&["--max-tasks", "2"]);
        let (mut rx1, mut rx2) = (s.dashboard.subscribe(), s.dashboard.subscribe());
        for id in ["a", "b", "c"] {
            apply(&s, id, "task-received");
        }
        s.dashboard.publish(&s.state);
        for rx in [&mut rx1, &mut rx2] {
            let Some(WsMessage::Snapshot { tasks, .. }) = next(rx) else {
                panic!("no snapshot")
            };
            assert_eq!(tasks.len(), 2);
        }
        assert_eq!(s.metrics.ws_resyncs.get(), 2);
    }

    fn apply_named(s: &AppState, uuid: &str, name: &str, at: f64) {
        let ev = crate::events::Event {
            kind: crate::events::EventKind::TaskReceived,
            hostname: "w1@vm".into(),
            timestamp: at,
            uuid: Some(uuid.into()),
            name: Some(name.into()),
            ..Default::default()
        };
        s.state.write().apply(&ev, at);
    }

    fn tick(s: &AppState, at: f64) -> Option<WsMessage> {
        let changes = crate::feed::take(&s.state);
        let mut rx = s.dashboard.subscribe();
        s.dashboard
            .publish_changes(&changes, &StateReader::new(&s.state), at);
        next(&mut rx)
    }

    /// With many task types, a client is sent each type when it changes,
    /// not every type every second.
    #[test]
    fn a_delta_carries_only_the_task_types_that_changed() {
        let s = shared();
        apply_named(&s, "a", "t.add", 100.0);
        apply_named(&s, "b", "t.mul", 100.0);
        let Some(WsMessage::Delta { types, .. }) = tick(&s, 100.0) else {
            panic!("no delta")
        };
        let names: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["t.add", "t.mul"]);

        apply_named(&s, "c", "t.mul", 101.0);
        let Some(WsMessage::Delta {
            types, types_gone, ..
        }) = tick(&s, 101.0)
        else {
            panic!("no delta")
        };
        assert_eq!(types.len(), 1);
        assert_eq!((types[0].name.as_str(), types[0].received), ("t.mul", 2));
        assert!(types_gone.is_empty());

        // A snapshot still carries every type.
        let snapshot = s.dashboard.snapshot(&StateReader::new(&s.state));
        let Ok(WsMessage::Snapshot { types, .. }) = serde_json::from_str(snapshot.as_str()) else {
            panic!("no snapshot")
        };
        assert_eq!(types.len(), 2);
    }

    /// Names beyond `--max-task-names` reach the dashboard as one `other`
    /// type, however many there are.
    #[test]
    fn task_types_beyond_the_cap_arrive_as_other() {
        let s = crate::test_app(&["--max-task-names", "3"]);
        for i in 0..50 {
            apply_named(&s, &format!("id{i}"), &format!("t.n{i}"), 100.0);
        }
        let Some(WsMessage::Delta { types, .. }) = tick(&s, 100.0) else {
            panic!("no delta")
        };
        let names: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["other", "t.n0", "t.n1", "t.n2"]);
        let other = types.iter().find(|t| t.name == "other").map(|t| t.received);
        assert_eq!(other, Some(47));
    }

    #[test]
    fn type_diffs_upsert_changes_and_name_the_gone() {
        let t = |name: &str, sent| TypeStats {
            name: name.into(),
            sent,
            ..TypeStats::default()
        };
        let old = [t("a", 1), t("b", 1), t("d", 1)];
        let new = [t("b", 2), t("c", 1), t("d", 1), t("e", 1)];
        let (changed, gone) = diff_types(&old, &new);
        let names: Vec<&str> = changed.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["b", "c", "e"]);
        assert_eq!(gone, ["a"]);
        assert_eq!(diff_types(&new, &new), (vec![], vec![]));
    }

    #[test]
    fn quantiles_are_bucket_upper_bounds() {
        let b = &RUNTIME_BUCKETS;
        let mut h = Histogram::default();
        assert_eq!(quantile(&h, 0.5, b), None);
        for _ in 0..99 {
            h.observe(0.004);
        }
        h.observe(3.0);
        assert_eq!(quantile(&h, 0.5, b), Some(0.005));
        assert_eq!(quantile(&h, 0.99, b), Some(0.005));
        assert_eq!(quantile(&h, 1.0, b), Some(5.0));
        h.observe(100.0);
        assert_eq!(quantile(&h, 1.0, b), Some(10.0));
    }

    /// `--buckets` decides the dashboard's quantiles: with bounds 1 and 10
    /// a 5 s runtime is "under 10 s", not a default bound.
    #[test]
    fn quantiles_follow_the_configured_buckets() {
        let s = crate::test_app(&["--buckets", "1,10"]);
        {
            let mut state = s.state.write();
            let ev = |kind, ts| crate::events::Event {
                kind,
                hostname: "w1@vm".into(),
                timestamp: ts,
                uuid: Some("a".into()),
                name: Some("t.slow".into()),
                runtime: Some(5.0),
                ..Default::default()
            };
            state.apply(&ev(crate::events::EventKind::TaskReceived, 1.0), 1.0);
            state.apply(&ev(crate::events::EventKind::TaskSucceeded, 6.0), 6.0);
        }
        let mut p = Publisher::default();
        p.fold_aggregates(&s.state.read(), 7.0);
        let t = p.types.iter().find(|t| t.name == "t.slow").unwrap();
        assert_eq!((t.p50, t.p95), (Some(10.0), Some(10.0)));
    }
}
