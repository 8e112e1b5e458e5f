//! Server-side time series for the dashboard's charts: queue depth (ready +
//! unacknowledged where the source knows it) and
//! oldest waiting task per queue, successes and failures per second per
//! task name, tasks processed per second and active per worker. A sampler
//! task reads them every 10 s from what readers already read (the broker
//! snapshot, queue latency, the state's aggregates and workers) and keeps
//! the last hour at 10 s and the last day at 1 min, so a chart is full the
//! moment a page opens instead of filling while it stays open. Memory only:
//! a restart starts the charts empty.

mod ring;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

pub use ring::{Range, Ring, STEP};

use crate::broker::BrokerStats;
use crate::insight::Insight;
use crate::shutdown::Shutdown;
use crate::state::State;

/// Series kept at most (each holds up to ~29 KB); beyond it, new ones are
/// not kept and are counted.
pub const MAX_SERIES: usize = 2_000;

/// A series not sampled for a day is forgotten (a queue deleted, a worker
/// gone).
const FORGET_AFTER: f64 = 86_400.0;

/// What a chart can show. Counters (`*_per_second`) are kept as the rate
/// between two samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    QueueDepth,
    QueueOldestAge,
    TaskSucceeded,
    TaskFailed,
    WorkerProcessed,
    WorkerActive,
}

impl Metric {
    pub const ALL: [Metric; 6] = [
        Metric::QueueDepth,
        Metric::QueueOldestAge,
        Metric::TaskSucceeded,
        Metric::TaskFailed,
        Metric::WorkerProcessed,
        Metric::WorkerActive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::QueueDepth => "queue_depth",
            Metric::QueueOldestAge => "queue_oldest_age_seconds",
            Metric::TaskSucceeded => "task_succeeded_per_second",
            Metric::TaskFailed => "task_failed_per_second",
            Metric::WorkerProcessed => "worker_processed_per_second",
            Metric::WorkerActive => "worker_active",
        }
    }

    pub fn parse(text: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.as_str() == text)
    }

    fn is_counter(self) -> bool {
        matches!(
            self,
            Metric::TaskSucceeded | Metric::TaskFailed | Metric::WorkerProcessed
        )
    }
}

/// Every series, behind one short lock.
#[derive(Debug, Default)]
pub struct Series {
    store: Mutex<Store>,
}

#[derive(Debug, Default)]
struct Store {
    rings: HashMap<(Metric, String), Ring>,
    /// A counter's last sample, to turn the next into a rate.
    last: HashMap<(Metric, String), (f64, f64)>,
    /// Series not kept because [`MAX_SERIES`] were.
    dropped: u64,
}

impl Series {
    /// Adds one sampling round taken at `now`.
    pub fn record(&self, now: f64, samples: Vec<(Metric, String, f64)>) {
        self.store.lock().record(now, samples);
    }

    /// Every series of `metric` (or the one named), over `range`.
    pub fn read(
        &self,
        metric: Metric,
        name: Option<&str>,
        range: Range,
        now: f64,
    ) -> (BTreeMap<String, Vec<(f64, f64)>>, u64) {
        let store = self.store.lock();
        let found = store
            .rings
            .iter()
            .filter(|((m, n), _)| *m == metric && name.is_none_or(|want| want == n))
            .map(|((_, n), ring)| (n.clone(), ring.points(range, now)))
            .collect();
        (found, store.dropped)
    }
}

impl Store {
    fn record(&mut self, now: f64, samples: Vec<(Metric, String, f64)>) {
        for (metric, name, value) in samples {
            let key = (metric, name);
            let value = if metric.is_counter() {
                let previous = self.last.insert(key.clone(), (now, value));
                match previous {
                    // A counter that went down restarted (a worker restart
                    // resets `processed`): its rate is unknown this once.
                    Some((t, v)) if now > t && value >= v => (value - v) / (now - t),
                    _ => continue,
                }
            } else {
                value
            };
            if !self.rings.contains_key(&key) && self.rings.len() >= MAX_SERIES {
                self.dropped += 1;
                self.last.remove(&key);
                continue;
            }
            self.rings.entry(key).or_default().push(now, value);
        }
        let rings = &mut self.rings;
        rings.retain(|_, r| r.last_at().is_some_and(|t| now - t < FORGET_AFTER));
        self.last
            .retain(|k, (t, _)| now - *t < FORGET_AFTER || rings.contains_key(k));
    }
}

/// One round of samples from what readers already read.
pub fn sample(
    state: &RwLock<State>,
    broker: &BrokerStats,
    insight: &Insight,
    now: f64,
) -> Vec<(Metric, String, f64)> {
    let mut out = Vec::new();
    for q in &broker.snapshot().queues {
        // Ready + unacknowledged where known, as the queues page shows it.
        let depth = q.messages.unwrap_or(q.messages_ready);
        out.push((Metric::QueueDepth, q.name.clone(), depth as f64));
    }
    for q in insight.latency.lock().snapshot(now) {
        out.push((Metric::QueueOldestAge, q.name, q.oldest_task_age));
    }
    let state = state.read();
    let mut per_name: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for s in state.task_series() {
        let e = per_name.entry(s.name).or_default();
        e.0 += s.counts.succeeded;
        e.1 += s.counts.failed.iter().map(|(_, n)| n).sum::<u64>();
    }
    for (name, (ok, failed)) in per_name {
        out.push((Metric::TaskSucceeded, name.to_owned(), ok as f64));
        out.push((Metric::TaskFailed, name.to_owned(), failed as f64));
    }
    for w in state.workers(now).into_iter().filter(|w| w.status) {
        if let Some(p) = w.processed {
            out.push((Metric::WorkerProcessed, w.hostname.clone(), p as f64));
        }
        out.push((
            Metric::WorkerActive,
            w.hostname,
            w.active.unwrap_or(0) as f64,
        ));
    }
    out
}

/// Samples every [`STEP`] seconds until shutdown.
pub async fn run(
    series: Arc<Series>,
    state: Arc<RwLock<State>>,
    broker: Arc<BrokerStats>,
    insight: Arc<Insight>,
    mut shutdown: Shutdown,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(STEP));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.fired() => break,
            _ = ticker.tick() => {}
        }
        let now = crate::clock::now();
        let samples = sample(&state, &broker, &insight, now);
        series.record(now, samples);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_become_rates_and_gauges_stay_values() {
        let s = Series::default();
        let round = |depth: f64, ok: f64| {
            vec![
                (Metric::QueueDepth, "celery".to_string(), depth),
                (Metric::TaskSucceeded, "tasks.add".to_string(), ok),
            ]
        };
        s.record(100.0, round(5.0, 10.0));
        s.record(110.0, round(7.0, 30.0));
        // A restarted counter gives no rate for that round.
        s.record(120.0, round(0.0, 4.0));
        s.record(130.0, round(1.0, 9.0));
        let (depth, _) = s.read(Metric::QueueDepth, None, Range::Hour, 130.0);
        assert_eq!(
            depth["celery"],
            vec![(100.0, 5.0), (110.0, 7.0), (120.0, 0.0), (130.0, 1.0)]
        );
        let (ok, _) = s.read(Metric::TaskSucceeded, Some("tasks.add"), Range::Hour, 130.0);
        assert_eq!(ok["tasks.add"], vec![(110.0, 2.0), (130.0, 0.5)]);
        let (none, _) = s.read(Metric::TaskSucceeded, Some("other"), Range::Hour, 130.0);
        assert!(none.is_empty());
    }

    #[test]
    fn series_are_bounded_and_forgotten_after_a_day() {
        let s = Series::default();
        let many: Vec<_> = (0..MAX_SERIES + 3)
            .map(|i| (Metric::QueueDepth, format!("q{i}"), 1.0))
            .collect();
        s.record(0.0, many);
        let (kept, dropped) = s.read(Metric::QueueDepth, None, Range::Day, 0.0);
        assert_eq!((kept.len(), dropped), (MAX_SERIES, 3));
        s.record(
            FORGET_AFTER + 1.0,
            vec![(Metric::WorkerActive, "w".into(), 1.0)],
        );
        let (kept, _) = s.read(Metric::QueueDepth, None, Range::Day, FORGET_AFTER + 1.0);
        assert!(kept.is_empty());
        assert_eq!(Metric::parse("worker_active"), Some(Metric::WorkerActive));
        assert_eq!(Metric::parse("nope"), None);
    }
}
