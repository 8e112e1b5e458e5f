//! What the events imply but never say: failures grouped by the bug behind
//! them (`fingerprint`, `failures`), how long tasks wait in each queue
//! (`latency`), per task name runtime and wait quantiles over sliding
//! windows (`stats`), and per queue the load against the processes serving
//! it with capacity and routing advice (`load`, `queueing`, `advice`). Kept
//! up to date by a change-feed subscriber, [`InsightFeed`]; read by HTTP,
//! `/metrics` and alert rules through [`Insight`]. No I/O.

pub mod advice;
pub mod events_off;
pub mod failures;
pub mod fingerprint;
pub mod latency;
pub mod load;
pub mod queueing;
pub mod stats;
pub mod stuck;

use std::sync::Arc;

use api::insight::{AdviceResponse, EventsDiagnosis, StuckTask, WorkerWithoutTaskEvents};
use api::TaskState;
use parking_lot::{Mutex, MutexGuard};

use crate::broker::BrokerStats;
use crate::feed::{Changes, StateReader, Subscriber};
use crate::state::TaskView;

use advice::WorkerCapacity;
use events_off::{Beat, EventsOff};
use failures::{Failure, FailureGroups};
use latency::{Latency, Seen};
use load::{Arrival, Busy, Load};
use stats::{Ended, Outcome, TaskStats, WaitFrom, Window};
use stuck::Running;

/// Failure groups held by default.
pub const DEFAULT_MAX_FAILURE_GROUPS: usize = 1000;
/// Failure groups with a series of their own in
/// `celeriac_failure_group_events_total` by default.
pub const DEFAULT_MAX_FAILURE_GROUP_SERIES: usize = 100;
/// Queues whose latency is tracked (and exported) by name by default.
pub const DEFAULT_MAX_LATENCY_QUEUES: usize = 100;
/// Task names with quantiles of their own in `/api/task/stats` by default.
/// Lower than `--max-task-names`: each keeps an hour of one-minute sketches.
pub const DEFAULT_MAX_STATS_TASK_NAMES: usize = 200;

#[derive(Debug, Clone, clap::Args)]
pub struct InsightArgs {
    /// Failure groups kept; beyond it the least recently seen goes
    /// (resolved ones first).
    #[arg(long, env = "CELERIAC_MAX_FAILURE_GROUPS", default_value_t = DEFAULT_MAX_FAILURE_GROUPS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..), value_name = "N")]
    pub max_failure_groups: usize,

    /// Failure groups with a series of their own in
    /// `celeriac_failure_group_events_total`; later groups are counted
    /// under `fingerprint="other"`.
    #[arg(long, env = "CELERIAC_MAX_FAILURE_GROUP_SERIES", default_value_t = DEFAULT_MAX_FAILURE_GROUP_SERIES,
          value_name = "N")]
    pub max_failure_group_series: usize,

    /// Queues whose latency is tracked by name (first seen first, `other`
    /// included); tasks of later queues are tracked together as
    /// `queue_name="other"`.
    #[arg(long, env = "CELERIAC_MAX_LATENCY_QUEUES", default_value_t = DEFAULT_MAX_LATENCY_QUEUES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(2..), value_name = "N")]
    pub max_latency_queues: usize,

    /// Task names with runtime and wait quantiles of their own in
    /// `/api/task/stats` (first seen first, `other` included); later names
    /// are counted together as `name="other"`.
    #[arg(long, env = "CELERIAC_MAX_STATS_TASK_NAMES", default_value_t = DEFAULT_MAX_STATS_TASK_NAMES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(2..), value_name = "N")]
    pub max_stats_task_names: usize,

    /// Seconds a task may stay STARTED before it is flagged as stuck, on
    /// workers that set no `task_time_limit` (their own limit is used
    /// where they do).
    #[arg(long, env = "CELERIAC_STUCK_AFTER", default_value_t = stuck::DEFAULT_STUCK_AFTER_SECS,
          value_parser = positive_seconds, value_name = "SECONDS")]
    pub stuck_after: f64,

    /// The p95 queue wait the capacity advice (`/api/advice`) sizes each
    /// queue's processes for, seconds: it asks for the fewest processes
    /// with which at most 5 % of tasks wait longer.
    #[arg(long, env = "CELERIAC_ADVICE_WAIT_TARGET", default_value_t = advice::DEFAULT_WAIT_TARGET_SECS,
          value_parser = non_negative_seconds, value_name = "SECONDS")]
    pub advice_wait_target: f64,
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

fn non_negative_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds (0 or more)")),
    }
}

/// What the subscriber keeps and readers read, each behind its own short
/// lock.
#[derive(Debug)]
pub struct Insight {
    pub failures: Mutex<FailureGroups>,
    pub latency: Mutex<Latency>,
    pub stats: Mutex<TaskStats>,
    pub events_off: Mutex<EventsOff>,
    pub running: Mutex<Running>,
    pub load: Mutex<Load>,
    /// `--stuck-after`, seconds.
    pub stuck_after: f64,
    /// `--advice-wait-target`, seconds.
    pub wait_target: f64,
}

impl Insight {
    pub fn new(args: &InsightArgs) -> Insight {
        Insight {
            failures: Mutex::new(FailureGroups::new(
                args.max_failure_groups,
                args.max_failure_group_series,
            )),
            latency: Mutex::new(Latency::new(args.max_latency_queues)),
            stats: Mutex::new(TaskStats::new(args.max_stats_task_names)),
            events_off: Mutex::new(EventsOff::new()),
            running: Mutex::new(Running::default()),
            // Its queues as latency caps them, its (queue, name) pairs as
            // the task statistics cap names.
            load: Mutex::new(Load::new(
                args.max_latency_queues,
                args.max_stats_task_names,
            )),
            stuck_after: args.stuck_after,
            wait_target: args.advice_wait_target,
        }
    }

    /// Capacity and routing advice over `window` at `now`: the load kept
    /// here, the workers' queues, processes and limits from inspect
    /// (`broker`), their heartbeats, and the observed waits.
    pub fn advice(&self, broker: &BrokerStats, window: Window, now: f64) -> AdviceResponse {
        let (pairs, covered, beats) = {
            let load = self.load.lock();
            let (pairs, covered) = load.window(window, now);
            (pairs, covered, load.workers().clone())
        };
        let observed = self
            .latency
            .lock()
            .snapshot(now)
            .into_iter()
            .filter_map(|q| Some((q.name, q.wait_p95?)))
            .collect();
        let inspected = broker.worker_queues();
        // Every worker heartbeating or inspected; alive by heartbeat.
        let mut names: std::collections::BTreeSet<&str> =
            beats.keys().map(String::as_str).collect();
        names.extend(inspected.keys().map(String::as_str));
        let workers: Vec<WorkerCapacity> = names
            .into_iter()
            .map(|h| {
                let q = inspected.get(h);
                let b = beats.get(h);
                WorkerCapacity {
                    hostname: h.to_owned(),
                    queues: q.map(|q| q.queues.clone()),
                    processes: q.map_or(0, |q| q.processes),
                    soft_time_limit: q.and_then(|q| q.task_soft_time_limit),
                    time_limit: q.and_then(|q| q.task_time_limit),
                    alive: b.is_some_and(|b| b.alive),
                    active: b.and_then(|b| b.active),
                }
            })
            .collect();
        advice::advise(&advice::Inputs {
            window,
            covered,
            pairs: &pairs,
            workers: &workers,
            observed_wait_p95: &observed,
            wait_target: self.wait_target,
        })
    }

    /// Workers without task events, and queues whose tasks come without
    /// `task-sent` (named from the queues their workers consume), at `now`.
    pub fn diagnosis(&self, broker: &BrokerStats, now: f64) -> EventsDiagnosis {
        let (silent, unsent) = {
            let e = self.events_off.lock();
            (e.silent(now), e.unsent(now))
        };
        let worker_queues = if unsent.is_empty() {
            Default::default()
        } else {
            broker.worker_queues()
        };
        EventsDiagnosis {
            workers_without_task_events: silent
                .into_iter()
                .map(|s| WorkerWithoutTaskEvents {
                    hostname: s.hostname,
                    tasks_unseen: s.tasks_unseen,
                    since: s.since,
                    last_task_event: s.last_task_event,
                })
                .collect(),
            queues_without_sent_events: events_off::by_queue(&unsent, |w| {
                worker_queues.get(w).map(|q| q.queues.clone())
            }),
        }
    }

    /// Tasks STARTED longer than their worker's `task_time_limit`, else
    /// `--stuck-after`, at `now`.
    pub fn stuck(&self, broker: &BrokerStats, now: f64) -> Vec<StuckTask> {
        let limits = broker.worker_queues();
        self.running.lock().stuck(now, self.stuck_after, |w| {
            limits.get(w).and_then(|q| q.task_time_limit)
        })
    }
}

impl Default for Insight {
    fn default() -> Self {
        Insight::new(&InsightArgs {
            max_failure_groups: DEFAULT_MAX_FAILURE_GROUPS,
            max_failure_group_series: DEFAULT_MAX_FAILURE_GROUP_SERIES,
            max_latency_queues: DEFAULT_MAX_LATENCY_QUEUES,
            max_stats_task_names: DEFAULT_MAX_STATS_TASK_NAMES,
            stuck_after: stuck::DEFAULT_STUCK_AFTER_SECS,
            advice_wait_target: advice::DEFAULT_WAIT_TARGET_SECS,
        })
    }
}

/// The change-feed subscriber. Copies what it needs out of the changed
/// tasks under the read lock, then fingerprints after releasing it.
pub struct InsightFeed(pub Arc<Insight>);

/// How often the workers' heartbeats are looked at when no worker changed.
const BEATS_EVERY_SECS: f64 = 1.0;

impl Subscriber for InsightFeed {
    fn on_changes(&mut self, changes: &Changes, state: &StateReader<'_>, now: f64) {
        let mut failed = Vec::new();
        {
            let st = state.read();
            // Their own locks, after the state's (readers never take them
            // the other way round): a few map updates per changed task.
            let mut l = Learn {
                latency: self.0.latency.lock(),
                stats: self.0.stats.lock(),
                events_off: self.0.events_off.lock(),
                running: self.0.running.lock(),
                load: self.0.load.lock(),
                failed: &mut failed,
                now,
            };
            l.stats.tick(now);
            l.load.tick(now);
            if changes.overflow {
                // The marks were lost: look at every retained task; the
                // failures already counted are recognised and skipped.
                l.latency.clear_waiting();
                l.running.clear();
                for t in st.tasks() {
                    l.task(&t, Told::Resync);
                }
            } else {
                // Evicted first: a task re-created since is in `tasks`
                // and observed again below.
                for e in &changes.evicted {
                    l.latency.forget(e.id.as_str());
                    l.running.forget(e.id.as_str());
                    if e.changed {
                        let t = st.evicted_task(e);
                        l.task(&TaskView::of_api(&t), Told::Evicted);
                    }
                }
                for t in st.changed_tasks(changes) {
                    l.task(&t, Told::Changed);
                }
            }
            if changes.workers || changes.overflow || l.events_off.beats_due(now, BEATS_EVERY_SECS)
            {
                let workers = st.workers(now);
                l.load.beats(workers.iter().map(|w| {
                    let busy = Busy {
                        alive: w.status,
                        active: w.active.and_then(|a| u64::try_from(a).ok()),
                    };
                    (w.hostname.as_str(), busy)
                }));
                l.events_off.beats(
                    workers.iter().map(|w| Beat {
                        hostname: &w.hostname,
                        alive: w.status,
                        processed: w.processed,
                        // Celery's default interval when a worker never said.
                        freq: w.freq.unwrap_or(2.0),
                    }),
                    now,
                );
            }
        }
        if failed.is_empty() {
            return;
        }
        let mut groups = self.0.failures.lock();
        for f in &failed {
            groups.record(f, now);
        }
    }
}

/// How a task came to the subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Told {
    /// Changed in this tick.
    Changed,
    /// Evicted in this tick, with changes not told before.
    Evicted,
    /// Every retained task after an overflow: mostly known already.
    Resync,
}

/// The subscriber's structures for one tick, locked.
struct Learn<'g> {
    latency: MutexGuard<'g, Latency>,
    stats: MutexGuard<'g, TaskStats>,
    events_off: MutexGuard<'g, EventsOff>,
    running: MutexGuard<'g, Running>,
    load: MutexGuard<'g, Load>,
    failed: &'g mut Vec<Failure>,
    now: f64,
}

impl Learn<'_> {
    fn task(&mut self, t: &TaskView<'_>, told: Told) {
        let now = self.now;
        if told != Told::Evicted {
            self.latency.observe(&seen(t), now);
            self.running.observe(stuck::Seen {
                id: t.uuid,
                name: t.name,
                worker: t.worker,
                running: t.started.filter(|_| *t.state == TaskState::Started),
            });
        }
        self.failed.extend(failure(t));
        if let Some((a, at)) = arrival(t) {
            // After an overflow, as for endings below: old arrivals are not
            // new.
            if told != Told::Resync || at >= now - RESYNC_RECENT_SECS {
                self.load.arrived(&a, now);
            }
        }
        // A change of a task a worker handled is that worker's task event;
        // LOST is celeriac's inference, not an event.
        if let (Told::Changed, Some(w)) = (told, t.worker) {
            if !is_lost(t.state) {
                self.events_off.task_event(w, now);
            }
        }
        let Some(e) = ended(t) else { return };
        // After an overflow, endings not counted yet are counted only when
        // recent: tasks loaded from history at start-up are not new.
        if told == Told::Resync && e.at < now - RESYNC_RECENT_SECS {
            return;
        }
        if self.stats.record(&e, now) && matches!(e.outcome, Outcome::Succeeded | Outcome::Failed) {
            if let Some(w) = t.worker {
                self.events_off.finished(w, t.sent.is_some(), now);
            }
            self.load.completed(queue_of(t), e.name, e.runtime, now);
        }
    }
}

fn is_lost(state: &TaskState) -> bool {
    matches!(state, TaskState::Custom(s) if s == crate::state::LOST)
}

/// The queue a task was sent to; without `task-sent`, Celery's default
/// queue, as the metrics count it.
fn queue_of<'a>(t: &TaskView<'a>) -> &'a str {
    t.queue.unwrap_or(crate::state::DEFAULT_QUEUE)
}

/// The task's arrival in its queue and when it happened, once it can be
/// told: at `task-sent` (which names the queue), else once a worker
/// started it or it ended (by then a late `task-sent` would have come).
fn arrival<'a>(t: &TaskView<'a>) -> Option<(Arrival<'a>, f64)> {
    let name = t.name?;
    let at = match t.sent {
        Some(sent) => sent,
        None => {
            if matches!(t.state, TaskState::Pending | TaskState::Received) {
                return None;
            }
            t.received.or(t.started).or(t.timestamp)?
        }
    };
    let a = Arrival {
        id: t.uuid,
        name,
        queue: queue_of(t),
        attempt: t.retries.unwrap_or(0),
    };
    Some((a, at))
}

fn seen<'a>(t: &TaskView<'a>) -> Seen<'a> {
    Seen {
        id: t.uuid,
        queue: t.queue,
        waiting: *t.state == TaskState::Pending && t.received.is_none() && t.started.is_none(),
        sent: t.sent,
        started: t.started,
        has_eta: t.eta.is_some(),
    }
}

/// After an overflow, an ending older than this (by its event's time) is
/// taken as already known, not as new.
const RESYNC_RECENT_SECS: f64 = 60.0;

/// The ending a task has reached, if any, with its runtime and wait.
fn ended<'a>(t: &TaskView<'a>) -> Option<Ended<'a>> {
    let (outcome, at) = match t.state {
        TaskState::Success => (Outcome::Succeeded, t.succeeded),
        TaskState::Failure => (Outcome::Failed, t.failed),
        TaskState::Retry => (Outcome::Retried, t.retried),
        TaskState::Revoked => (Outcome::Revoked, t.revoked),
        TaskState::Rejected => (Outcome::Rejected, t.rejected),
        s if is_lost(s) => (Outcome::Lost, t.timestamp),
        _ => return None,
    };
    // A task without a name (its task-received was never seen) cannot be
    // attributed; it is left out rather than guessed.
    let name = t.name?;
    // `task-failed` carries no runtime: the worker's own clock from
    // started to failed stands in.
    let runtime = match outcome {
        Outcome::Succeeded => t.runtime,
        Outcome::Failed => t.runtime.or(match (t.started, t.failed) {
            (Some(s), Some(f)) if f >= s => Some(f - s),
            _ => None,
        }),
        _ => None,
    };
    // `sent` is the first attempt's publish: a retried attempt (retries > 0)
    // is measured from its own receipt. ETA and countdown tasks wait on
    // purpose, so their wait is not counted.
    let from = if t.retries.unwrap_or(0) == 0 {
        t.sent.map(|s| (s, WaitFrom::Sent))
    } else {
        None
    };
    let wait = match (
        t.started,
        from.or(t.received.map(|r| (r, WaitFrom::Received))),
    ) {
        (Some(started), Some((basis, from))) if t.eta.is_none() => Some((started - basis, from)),
        _ => None,
    };
    Some(Ended {
        id: t.uuid,
        name,
        outcome,
        at: at.or(t.timestamp).unwrap_or(0.0),
        runtime,
        wait,
    })
}

fn failure(t: &TaskView<'_>) -> Option<Failure> {
    if *t.state != TaskState::Failure {
        return None;
    }
    Some(Failure {
        id: t.uuid.to_owned(),
        name: t.name.map(str::to_owned),
        worker: t.worker.map(str::to_owned),
        exception: t.exception.map(str::to_owned),
        traceback: t.traceback.map(str::to_owned),
        failed_at: t.failed,
    })
}

#[cfg(test)]
mod tests {
    use parking_lot::RwLock;

    use super::*;
    use crate::events::fixtures;
    use crate::feed::Feed;
    use crate::state::{Limits, State};
    use stats::Window;

    /// Plays messages (receive time, body) through the state and the
    /// subscriber, one feed tick per message.
    fn play(messages: impl IntoIterator<Item = (f64, String)>) -> (Arc<Insight>, f64) {
        let insight = Arc::new(Insight::default());
        let state = RwLock::new(State::new(Limits::default()));
        let mut feed = Feed::default();
        feed.subscribe(InsightFeed(insight.clone()));
        let mut last = 0.0;
        for (now, body) in messages {
            for ev in fixtures::decode(&body) {
                state.write().apply(&ev, now);
            }
            feed.publish(&state, now);
            last = now;
        }
        (insight, last)
    }

    fn scenarios(names: &[&str]) -> Vec<(f64, String)> {
        names
            .iter()
            .flat_map(|n| fixtures::scenario(n))
            .enumerate()
            .map(|(i, b)| (1_795_424_300.0 + i as f64 * 0.1, b))
            .collect()
    }

    fn stats_of(insight: &Insight, name: &str, now: f64) -> api::insight::TaskTypeStats {
        let (all, _) = insight.stats.lock().snapshot(Window::All, now);
        all.into_iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
    }

    #[test]
    fn endings_of_the_fixture_scenarios() {
        let (insight, now) = play(scenarios(&["success", "failure", "retry", "countdown"]));
        // `success` and `countdown` are both tasks.add; the countdown
        // waited on purpose, so only the other's wait counts.
        let add = stats_of(&insight, "tasks.add", now);
        assert_eq!((add.counts.succeeded, add.runtime.count), (2, 2));
        assert_eq!(
            (add.wait.count, add.wait_from_sent),
            (1, 1),
            "sent → started"
        );
        // task-failed carries no runtime: failed − started stands in.
        let fail = stats_of(&insight, "tasks.fail", now);
        assert_eq!((fail.counts.failed, fail.runtime.count), (1, 1));
        assert_eq!(fail.failure_rate, Some(1.0));
        // One retry, then success: two endings; both attempts carry the
        // retry's countdown (an ETA), so no wait is counted.
        let flaky = stats_of(&insight, "tasks.flaky", now);
        assert_eq!((flaky.counts.retried, flaky.counts.succeeded), (1, 1));
        assert_eq!(flaky.wait.count, 0);
    }

    #[test]
    fn arrivals_count_each_attempt_and_completions_each_ending() {
        let (insight, now) = play(scenarios(&["success", "failure", "retry"]));
        let (pairs, _) = insight.load.lock().window(Window::FiveMinutes, now);
        let got: Vec<_> = pairs
            .iter()
            .map(|p| {
                (
                    p.queue.as_str(),
                    p.name.as_str(),
                    p.arrived,
                    p.completed,
                    p.runtime.count(),
                )
            })
            .collect();
        // The retry is sent again (a second arrival) and ends twice, once
        // retried (no completion) and once succeeded; task-failed carries no
        // runtime, failed − started stands in.
        assert_eq!(
            got,
            [
                ("celery", "tasks.add", 1, 1, 1),
                ("celery", "tasks.fail", 1, 1, 1),
                ("celery", "tasks.flaky", 2, 1, 1),
            ]
        );
    }

    #[test]
    fn advice_reads_the_workers_heartbeats_and_inspect() {
        let (insight, now) = play(scenarios(&["online", "success"]));
        let broker = BrokerStats::default();
        let a = insight.advice(&broker, Window::FiveMinutes, now);
        // Queues not known from inspect yet: the tasks' queue is listed
        // without workers, and nothing is said about consumers.
        assert_eq!(a.queues.len(), 1, "{a:#?}");
        assert!(
            a.queues[0].workers.is_empty() && a.findings.is_empty(),
            "{a:#?}"
        );
        let beats = insight.load.lock().workers().clone();
        let alive: Vec<String> = beats
            .iter()
            .filter(|(_, b)| b.alive)
            .map(|(h, _)| h.clone())
            .collect();
        assert!(!alive.is_empty(), "{beats:?}");
        for h in beats.keys() {
            broker.set_worker_queues(
                h,
                crate::broker::WorkerQueues {
                    queues: vec!["celery".into()],
                    processes: 4,
                    task_time_limit: Some(30.0),
                    task_soft_time_limit: None,
                },
            );
        }
        let a = insight.advice(&broker, Window::FiveMinutes, now);
        let q = &a.queues[0];
        // Only the live ones serve it.
        assert_eq!(q.name, "celery");
        assert_eq!(q.workers, alive);
        assert_eq!(q.processes, Some(4 * alive.len() as u64));
        assert_eq!(q.task_types[0].time_limit, Some(30.0));
        assert_eq!(a.wait_target, advice::DEFAULT_WAIT_TARGET_SECS);
    }

    #[test]
    fn a_worker_with_dash_e_in_real_traffic_is_never_diagnosed() {
        // Every message of both captured streams (workers with -E, clients
        // with task-sent), asked at each tick.
        for file in ["stream-basic.jsonl", "stream-mixed.jsonl"] {
            let stream = fixtures::stream(file);
            let insight = Arc::new(Insight::default());
            let state = RwLock::new(State::new(Limits::default()));
            let mut feed = Feed::default();
            feed.subscribe(InsightFeed(insight.clone()));
            for (now, body) in stream {
                for ev in fixtures::decode(&body) {
                    state.write().apply(&ev, now);
                }
                feed.publish(&state, now);
                let d = insight.diagnosis(&BrokerStats::default(), now);
                assert!(
                    d.workers_without_task_events.is_empty(),
                    "{file} at {now}: {d:?}"
                );
                assert!(
                    d.queues_without_sent_events.is_empty(),
                    "{file} at {now}: {d:?}"
                );
            }
        }
    }
}
