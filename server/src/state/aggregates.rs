//! Pre-aggregated task counters for Prometheus (celery-exporter's
//! `celery_task_*_total{name,hostname,queue_name}`), updated per event so
//! rendering `/metrics` never scans tasks.

use hashbrown::HashMap;

use super::intern::{Interner, Live, Sym};

/// Default upper bounds of the runtime histogram, Prometheus'
/// `DEFAULT_BUCKETS` as celery-exporter's; `--buckets` replaces them.
pub const RUNTIME_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Default upper bounds of the queue wait and prefetch time histograms, as
/// celery-exporter's `celery_task_queue_wait_time` (seconds);
/// `--queue-wait-buckets` replaces them.
pub const QUEUE_WAIT_BUCKETS: [f64; 14] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

/// Exception class used when `exception` does not start with `Name(`.
pub const UNKNOWN_EXCEPTION: &str = "UnknownException";

/// A Prometheus-style histogram. Its bounds live with whoever observes
/// (the configured runtime or queue-wait buckets), so a series
/// does not carry them; `buckets` is sized on the first observation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// **Cumulative**: `buckets[i]` counts observations `<= bounds[i]`,
    /// as the exposition format wants them; `+Inf` is `count`. Empty until
    /// the first observation.
    pub buckets: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    /// Observes against the default [`RUNTIME_BUCKETS`] (tests; the state
    /// observes against `--buckets`).
    pub fn observe(&mut self, v: f64) {
        self.observe_in(v, &RUNTIME_BUCKETS)
    }

    /// Observes against `bounds`, which must be the same on every call for
    /// one histogram (the queue-wait buckets are fixed at start-up).
    pub fn observe_in(&mut self, v: f64, bounds: &[f64]) {
        if !v.is_finite() {
            return;
        }
        if self.buckets.len() != bounds.len() {
            // First observation (one allocation per series, not per event).
            self.buckets.resize(bounds.len(), 0);
        }
        // Bounds ascend: the first bound >= v and every later one count it.
        let first = bounds.partition_point(|&le| le < v);
        for b in &mut self.buckets[first..] {
            *b += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    /// Adds `other`'s observations (same bounds) to these.
    pub fn add(&mut self, other: &Histogram) {
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.sum += other.sum;
        self.count += other.count;
    }
}

/// Names of the counts [`TaskCounts::by_event`] returns, in its order.
pub const EVENT_COUNT_NAMES: [&str; 8] = [
    "sent",
    "received",
    "started",
    "succeeded",
    "failed",
    "retried",
    "revoked",
    "rejected",
];

/// Event counts of one (task name, hostname, queue) series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskCounts {
    pub sent: u64,
    pub received: u64,
    pub started: u64,
    pub succeeded: u64,
    pub rejected: u64,
    pub revoked: u64,
    pub retried: u64,
    /// Tasks declared LOST here: RECEIVED or STARTED on this worker when its
    /// heartbeats expired.
    pub lost: u64,
    /// Failures by exception class, in first-seen order. Few classes per
    /// series, so a linear scan beats a map.
    pub failed: Vec<(String, u64)>,
    /// Runtimes of `task-succeeded`.
    pub runtime: Histogram,
    /// sent → started, over the queue-wait buckets (ETA tasks excluded).
    pub queue_wait: Histogram,
    /// received → started (time in the worker's prefetch), over the
    /// queue-wait buckets.
    pub prefetch: Histogram,
    /// Flower's two prefetch gauges, as Flower moves them (`--flower-metrics`).
    pub flower: FlowerPrefetch,
}

/// Flower's `flower_worker_prefetched_tasks` and
/// `flower_task_prefetch_time_seconds` for one series, moved event by event
/// as `flower/events.py` (`PrometheusMetrics.observe_task`) moves them:
/// tasks with an ETA (countdown, retries with a delay) or never received
/// leave both alone; `task-received` adds a prefetched task, `task-started`
/// removes it and sets the time to started − received, a finished task sets
/// the time to 0, and a task revoked or rejected before it started is no
/// longer prefetched.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FlowerPrefetch {
    /// Received − started − dropped unstarted; `None` until an event moved it
    /// (Flower has no series until then).
    pub prefetched: Option<i64>,
    /// The value of the last update and the aggregates' clock at that update
    /// (the latest of a (worker, task)'s queues is Flower's value).
    pub time: Option<(u64, f64)>,
}

impl FlowerPrefetch {
    /// Another queue's (or folded name's) gauges into these: prefetched
    /// tasks add up, the latest time wins.
    pub fn add(&mut self, other: &FlowerPrefetch) {
        if let Some(n) = other.prefetched {
            self.prefetched = Some(self.prefetched.unwrap_or(0) + n);
        }
        if let Some((at, t)) = other.time {
            if self.time.is_none_or(|(mine, _)| at > mine) {
                self.time = Some((at, t));
            }
        }
    }
}

/// What one task event does to [`FlowerPrefetch`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum FlowerStep {
    Received,
    /// Started after this long in the prefetch.
    Started(f64),
    /// Succeeded or failed after it started.
    Finished,
    /// Revoked or rejected before it started.
    Dropped,
}

/// Flower's step for a task event, given the task after the event merged:
/// whether it has an ETA, and when it was received and started (NaN: not).
pub(crate) fn flower_step(
    kind: &crate::events::EventKind,
    eta: bool,
    received: f64,
    started: f64,
) -> Option<FlowerStep> {
    use crate::events::EventKind as K;
    // Python's truthiness of a timestamp: unset (NaN here) or 0 is false.
    let set = |t: f64| !t.is_nan() && t != 0.0;
    if eta || !set(received) {
        return None;
    }
    match kind {
        K::TaskReceived => Some(FlowerStep::Received),
        K::TaskStarted if set(started) => Some(FlowerStep::Started(started - received)),
        K::TaskSucceeded | K::TaskFailed if set(started) => Some(FlowerStep::Finished),
        K::TaskRevoked | K::TaskRejected if !set(started) => Some(FlowerStep::Dropped),
        _ => None,
    }
}

impl TaskCounts {
    /// Failures by exception class.
    pub fn failed(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.failed.iter().map(|(c, n)| (c.as_str(), *n))
    }

    pub fn failed_total(&self) -> u64 {
        self.failed.iter().map(|(_, n)| n).sum()
    }

    /// Every event count, in the order of [`EVENT_COUNT_NAMES`].
    pub fn by_event(&self) -> [u64; 8] {
        [
            self.sent,
            self.received,
            self.started,
            self.succeeded,
            self.failed_total(),
            self.retried,
            self.revoked,
            self.rejected,
        ]
    }

    pub(crate) fn add_failed(&mut self, class: &str) {
        match self.failed.iter_mut().find(|(c, _)| c == class) {
            Some((_, n)) => *n += 1,
            None => self.failed.push((class.to_owned(), 1)),
        }
    }
}

/// One series as readers see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskSeries<'a> {
    pub name: &'a str,
    /// The sender's full nodename (`w1@vm`; the client's for `task-sent`).
    pub hostname: &'a str,
    pub queue: &'a str,
    pub counts: &'a TaskCounts,
    /// Which series this is and when it last changed, so a reader that
    /// keeps something per series (the `/metrics` text) can tell what
    /// changed without comparing names and counts.
    pub stamp: Stamp,
}

/// A series' identity and version within one [`crate::state::State`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stamp {
    /// Never reused for another series of the same state.
    pub id: u64,
    /// Differs after every event counted into the series.
    pub changed: u64,
}

/// Which counter an event bumps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Count<'e> {
    Sent,
    Received,
    Started {
        queue_wait: Option<f64>,
        prefetch: Option<f64>,
    },
    Succeeded {
        runtime: Option<f64>,
    },
    Failed {
        exception: Option<&'e str>,
    },
    Rejected,
    Revoked,
    Retried,
    Lost,
}

type SeriesKey = (Sym, Sym, Sym);

#[derive(Debug)]
pub(crate) struct Aggregates {
    index: HashMap<SeriesKey, usize>,
    series: Vec<(SeriesKey, TaskCounts, Stamp)>,
    /// Events counted so far: the source of [`Stamp`]s.
    clock: u64,
    /// Bounds of `queue_wait` and `prefetch` (`--queue-wait-buckets`).
    queue_wait_bounds: std::sync::Arc<[f64]>,
    /// Bounds of `runtime` (`--buckets`).
    runtime_bounds: std::sync::Arc<[f64]>,
}

impl Aggregates {
    pub(crate) fn new(
        runtime_bounds: std::sync::Arc<[f64]>,
        queue_wait_bounds: std::sync::Arc<[f64]>,
    ) -> Aggregates {
        Aggregates {
            index: HashMap::new(),
            series: Vec::new(),
            clock: 0,
            queue_wait_bounds,
            runtime_bounds,
        }
    }

    pub(crate) fn count(&mut self, name: Sym, hostname: Sym, queue: Sym, what: Count<'_>) {
        let key = (name, hostname, queue);
        self.clock += 1;
        let i = match self.index.get(&key) {
            Some(&i) => i,
            None => {
                let id = self.clock;
                self.series
                    .push((key, TaskCounts::default(), Stamp { id, changed: 0 }));
                self.index.insert(key, self.series.len() - 1);
                self.series.len() - 1
            }
        };
        let (_, c, stamp) = &mut self.series[i];
        stamp.changed = self.clock;
        match what {
            Count::Sent => c.sent += 1,
            Count::Received => c.received += 1,
            Count::Started {
                queue_wait,
                prefetch,
            } => {
                c.started += 1;
                if let Some(w) = queue_wait {
                    c.queue_wait.observe_in(w, &self.queue_wait_bounds);
                }
                if let Some(p) = prefetch {
                    c.prefetch.observe_in(p, &self.queue_wait_bounds);
                }
            }
            Count::Succeeded { runtime } => {
                c.succeeded += 1;
                if let Some(r) = runtime {
                    c.runtime.observe_in(r, &self.runtime_bounds);
                }
            }
            Count::Failed { exception } => {
                c.add_failed(exception_class(exception.unwrap_or("")));
            }
            Count::Rejected => c.rejected += 1,
            Count::Revoked => c.revoked += 1,
            Count::Retried => c.retried += 1,
            Count::Lost => c.lost += 1,
        }
    }

    /// Moves Flower's prefetch gauges of a series [`Aggregates::count`]
    /// has just counted the same event into.
    pub(crate) fn flower(&mut self, name: Sym, hostname: Sym, queue: Sym, step: FlowerStep) {
        let Some(&i) = self.index.get(&(name, hostname, queue)) else {
            return;
        };
        let f = &mut self.series[i].1.flower;
        let (by, time) = match step {
            FlowerStep::Received => (1, None),
            FlowerStep::Started(wait) => (-1, Some(wait)),
            FlowerStep::Finished => (0, Some(0.0)),
            FlowerStep::Dropped => (-1, None),
        };
        if by != 0 {
            f.prefetched = Some(f.prefetched.unwrap_or(0) + by);
        }
        if let Some(t) = time {
            f.time = Some((self.clock, t));
        }
    }

    /// Drops every series of these hostnames (purged offline workers).
    pub(crate) fn remove_hosts(&mut self, hosts: &[Sym]) {
        if hosts.is_empty() {
            return;
        }
        self.series.retain(|((_, h, _), _, _)| !hosts.contains(h));
        self.index = self
            .series
            .iter()
            .enumerate()
            .map(|(i, (k, _, _))| (*k, i))
            .collect();
    }

    /// Marks the names, hostnames and queues of every series.
    pub(crate) fn mark(&self, live: &mut Live) {
        for &((n, h, q), _, _) in &self.series {
            live.mark(n);
            live.mark(h);
            live.mark(q);
        }
    }

    pub(crate) fn iter<'a>(
        &'a self,
        strings: &'a Interner,
    ) -> impl Iterator<Item = TaskSeries<'a>> + 'a {
        self.series
            .iter()
            .map(move |((n, h, q), counts, stamp)| TaskSeries {
                name: strings.resolve(*n),
                hostname: strings.resolve(*h),
                queue: strings.resolve(*q),
                counts,
                stamp: *stamp,
            })
    }
}

/// celery-exporter's `^(\w+)\(` on the exception repr, else
/// [`UNKNOWN_EXCEPTION`]. `\w` is Python's Unicode word class.
pub fn exception_class(exception: &str) -> &str {
    let end = exception
        .char_indices()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '_'))
        .map_or(exception.len(), |(i, _)| i);
    if end > 0 && exception[end..].starts_with('(') {
        &exception[..end]
    } else {
        UNKNOWN_EXCEPTION
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::intern::Interner;

    /// What the `/metrics` cache relies on: a series' stamp changes with
    /// every event counted into it and with nothing else, and a series made
    /// again after a purge is not taken for the old one.
    #[test]
    fn stamps_change_with_each_count_and_ids_are_never_reused() {
        let mut strings = Interner::default();
        let (name, w1, w2, q) = (
            strings.intern("t.add"),
            strings.intern("w1@vm"),
            strings.intern("w2@vm"),
            strings.intern("celery"),
        );
        let mut a = Aggregates::new(RUNTIME_BUCKETS.into(), QUEUE_WAIT_BUCKETS.into());
        let stamps = |a: &Aggregates| -> Vec<Stamp> { a.iter(&strings).map(|s| s.stamp).collect() };
        a.count(name, w1, q, Count::Received);
        a.count(name, w2, q, Count::Received);
        let before = stamps(&a);
        assert_ne!(before[0].id, before[1].id);

        a.count(name, w1, q, Count::Succeeded { runtime: Some(0.1) });
        let after = stamps(&a);
        assert_eq!(after[0].id, before[0].id);
        assert_ne!(after[0].changed, before[0].changed);
        assert_eq!(after[1], before[1], "w2's series did not change");

        a.remove_hosts(&[w1]);
        a.count(name, w1, q, Count::Received);
        let again = stamps(&a);
        assert_eq!(again[0], before[1]);
        assert!(again[1].id != before[0].id && again[1].id != before[1].id);
    }
}
