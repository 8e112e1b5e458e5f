//! Per task name: how tasks ended, how long they ran and how long they
//! waited, over the last 5 minutes, the last hour and since start. Pure:
//! time enters as `now`.
//!
//! Quantiles come from DDSketch (`sketches-ddsketch`) with a relative error
//! of [`RELATIVE_ERROR`]: the value reported for a rank is within 1 % of
//! the true value of that rank, whatever the distribution, in a few
//! kilobytes per sketch (logarithmic bins between the smallest and largest
//! value seen). The Prometheus histogram can only say which bucket a
//! quantile falls in ("p95 ≤ 500 ms" for tasks of 0.29 s); this says
//! 0.29 s ± 1 %. Sketches merge exactly, so a window is a ring of
//! one-minute sketches merged when read.
//!
//! What is learnt is a task's *ending* (success, failure, retry, revoke,
//! reject, LOST), once per ending: a retried task ends once per attempt.

use std::collections::VecDeque;

use api::insight::{OutcomeCounts, Quantiles, TaskTypeStats};
use hashbrown::{HashMap, HashSet};
use sketches_ddsketch::{Config, DDSketch};

/// The sketches' relative error bound.
pub const RELATIVE_ERROR: f64 = 0.01;
/// Bins per sketch before the lowest collapse (which only ever touches the
/// smallest values, never p50 and above in practice): with 1 % bins, 2048
/// of them span 1 µs to beyond a year.
const MAX_BINS: u32 = 2048;
/// Values below this (seconds) are counted as zero.
const MIN_VALUE: f64 = 1e-6;
/// One slot of the ring per minute.
pub const SLOT_SECS: f64 = 60.0;
/// Minutes kept: the longest window.
pub const SLOTS: usize = 60;
/// Task endings remembered, so a task told again (a later change, a
/// resynchronisation) is not counted twice.
const RECORDED_CAPACITY: usize = 100_000;
/// Where names beyond the cap are counted together.
pub const OTHER: &str = "other";
/// Distinct folded names remembered for the count.
const FOLDED_CAPACITY: usize = 10_000;

/// The windows `GET /api/task/stats` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The current minute and the 4 before it.
    FiveMinutes,
    /// The current minute and the 59 before it.
    Hour,
    /// Since celeriac started.
    All,
}

impl Window {
    pub fn parse(s: &str) -> Option<Window> {
        match s {
            "5m" => Some(Window::FiveMinutes),
            "1h" => Some(Window::Hour),
            "all" => Some(Window::All),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Window::FiveMinutes => "5m",
            Window::Hour => "1h",
            Window::All => "all",
        }
    }

    /// Minutes covered, `None` for since start.
    pub fn minutes(self) -> Option<i64> {
        match self {
            Window::FiveMinutes => Some(5),
            Window::Hour => Some(SLOTS as i64),
            Window::All => None,
        }
    }
}

/// How a task (or one attempt of it) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Succeeded,
    Failed,
    Retried,
    Revoked,
    Rejected,
    Lost,
}

/// What the wait was measured from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFrom {
    /// `task-sent` (the producer's publish): the whole wait.
    Sent,
    /// `task-received` (no `task-sent` seen): only the time in the
    /// worker's prefetch.
    Received,
}

/// One ending, as the subscriber reads it off a task.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ended<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub outcome: Outcome,
    /// When the ending happened (the event's timestamp): with `outcome`, what
    /// tells a new ending from the same one told again.
    pub at: f64,
    /// Seconds, for succeeded and failed tasks.
    pub runtime: Option<f64>,
    pub wait: Option<(f64, WaitFrom)>,
}

#[derive(Clone)]
struct Slot {
    minute: i64,
    counts: OutcomeCounts,
    runtime: DDSketch,
    wait: DDSketch,
    from_sent: u64,
    from_received: u64,
}

impl std::fmt::Debug for Slot {
    // DDSketch has no Debug: its sample counts say enough.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("minute", &self.minute)
            .field("counts", &self.counts)
            .field("runtimes", &self.runtime.count())
            .field("waits", &self.wait.count())
            .finish()
    }
}

/// An empty sketch with the configuration every insight sketch shares (so
/// any two merge).
pub fn sketch() -> DDSketch {
    DDSketch::new(Config::new(RELATIVE_ERROR, MAX_BINS, MIN_VALUE))
}

impl Slot {
    fn new(minute: i64) -> Slot {
        Slot {
            minute,
            counts: OutcomeCounts::default(),
            runtime: sketch(),
            wait: sketch(),
            from_sent: 0,
            from_received: 0,
        }
    }

    fn add(&mut self, e: &Ended<'_>) {
        let c = &mut self.counts;
        match e.outcome {
            Outcome::Succeeded => c.succeeded += 1,
            Outcome::Failed => c.failed += 1,
            Outcome::Retried => c.retried += 1,
            Outcome::Revoked => c.revoked += 1,
            Outcome::Rejected => c.rejected += 1,
            Outcome::Lost => c.lost += 1,
        }
        if let Some(r) = e.runtime.filter(|r| r.is_finite() && *r >= 0.0) {
            self.runtime.add(r);
        }
        if let Some((w, from)) = e.wait.filter(|(w, _)| w.is_finite()) {
            self.wait.add(w.max(0.0));
            match from {
                WaitFrom::Sent => self.from_sent += 1,
                WaitFrom::Received => self.from_received += 1,
            }
        }
    }

    fn merge(&mut self, o: &Slot) {
        let (c, d) = (&mut self.counts, &o.counts);
        c.succeeded += d.succeeded;
        c.failed += d.failed;
        c.retried += d.retried;
        c.revoked += d.revoked;
        c.rejected += d.rejected;
        c.lost += d.lost;
        // Same configuration on both sides, so merging cannot fail.
        let _ = self.runtime.merge(&o.runtime);
        let _ = self.wait.merge(&o.wait);
        self.from_sent += o.from_sent;
        self.from_received += o.from_received;
    }

    fn ended(&self) -> u64 {
        let c = &self.counts;
        c.succeeded + c.failed + c.retried + c.revoked + c.rejected + c.lost
    }
}

#[derive(Debug)]
struct Name {
    name: String,
    all: Slot,
    /// Slot of minute `m` at `m % SLOTS`; a slot of an older minute is stale.
    ring: Vec<Option<Slot>>,
}

#[derive(Debug)]
pub struct TaskStats {
    max_names: usize,
    /// The first tick: `all`'s throughput counts from here.
    started_at: Option<f64>,
    names: Vec<Name>,
    index: HashMap<String, usize>,
    folded: HashSet<String>,
    /// Task id → the ending last counted (a hash of outcome and time).
    recorded: HashMap<String, u64>,
    recorded_order: VecDeque<String>,
}

/// The seconds `window` covers at `now` when counting began at
/// `started_at`: its slots' span, at most the time since start.
pub fn covered(window: Window, started_at: Option<f64>, now: f64) -> f64 {
    let since_start = started_at.map_or(0.0, |s| (now - s).max(0.0));
    match window.minutes() {
        None => since_start,
        Some(m) => {
            let first = (minute_of(now) - (m - 1)) as f64 * SLOT_SECS;
            (now - first).min(since_start)
        }
    }
}

/// The one-minute slot `t` falls in.
pub fn minute_of(t: f64) -> i64 {
    (t / SLOT_SECS).floor() as i64
}

fn signature(e: &Ended<'_>) -> u64 {
    use std::hash::{Hash, Hasher};
    // Fixed keys: the same ending must hash the same on every call.
    let mut h = std::hash::DefaultHasher::new();
    e.outcome.hash(&mut h);
    e.at.to_bits().hash(&mut h);
    h.finish()
}

impl TaskStats {
    /// Tracks at most `max_names` names by name, first seen first ([`OTHER`]
    /// included); later names are counted together as [`OTHER`].
    pub fn new(max_names: usize) -> TaskStats {
        TaskStats {
            max_names: max_names.max(2),
            started_at: None,
            names: Vec::new(),
            index: HashMap::new(),
            folded: HashSet::new(),
            recorded: HashMap::new(),
            recorded_order: VecDeque::new(),
        }
    }

    fn slot_of(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let name = if self.names.len() + 1 < self.max_names || name == OTHER {
            name
        } else {
            if self.folded.len() < FOLDED_CAPACITY {
                self.folded.insert(name.to_owned());
            }
            OTHER
        };
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        self.names.push(Name {
            name: name.to_owned(),
            all: Slot::new(0),
            ring: vec![None; SLOTS],
        });
        self.index.insert(name.to_owned(), self.names.len() - 1);
        self.names.len() - 1
    }

    /// Counting starts at the first call (each feed tick makes one).
    pub fn tick(&mut self, now: f64) {
        self.started_at.get_or_insert(now);
    }

    /// Counts an ending seen at `now`, unless this very ending was
    /// counted; says whether it was new.
    pub fn record(&mut self, e: &Ended<'_>, now: f64) -> bool {
        self.tick(now);
        let sig = signature(e);
        match self.recorded.get_mut(e.id) {
            Some(old) if *old == sig => return false,
            Some(old) => *old = sig,
            None => {
                self.recorded.insert(e.id.to_owned(), sig);
                self.recorded_order.push_back(e.id.to_owned());
                while self.recorded_order.len() > RECORDED_CAPACITY {
                    if let Some(old) = self.recorded_order.pop_front() {
                        self.recorded.remove(&old);
                    }
                }
            }
        }
        let i = self.slot_of(e.name);
        let minute = minute_of(now);
        let n = &mut self.names[i];
        n.all.add(e);
        let cell = &mut n.ring[minute.rem_euclid(SLOTS as i64) as usize];
        match cell {
            Some(s) if s.minute == minute => s.add(e),
            _ => {
                let mut s = Slot::new(minute);
                s.add(e);
                *cell = Some(s);
            }
        }
        true
    }

    /// Every name with an ending in `window`, sorted by name, and the
    /// seconds the window covers at `now`.
    pub fn snapshot(&self, window: Window, now: f64) -> (Vec<TaskTypeStats>, f64) {
        let covered = covered(window, self.started_at, now);
        let mut out: Vec<TaskTypeStats> = self
            .names
            .iter()
            .filter_map(|n| {
                let merged = match window.minutes() {
                    None => n.all.clone(),
                    Some(m) => {
                        let cur = minute_of(now);
                        let mut acc = Slot::new(cur);
                        for s in n.ring.iter().flatten() {
                            if s.minute > cur - m && s.minute <= cur {
                                acc.merge(s);
                            }
                        }
                        acc
                    }
                };
                (merged.ended() > 0).then(|| stats_of(&n.name, &merged, covered))
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        (out, covered)
    }

    /// Distinct task names counted as [`OTHER`].
    pub fn folded(&self) -> usize {
        self.folded.len()
    }
}

fn quantiles(s: &DDSketch) -> Quantiles {
    let q = |p: f64| s.quantile(p).ok().flatten();
    Quantiles {
        p50: q(0.5),
        p95: q(0.95),
        p99: q(0.99),
        count: s.count() as u64,
    }
}

fn stats_of(name: &str, s: &Slot, covered: f64) -> TaskTypeStats {
    let c = s.counts;
    let done = c.succeeded + c.failed;
    TaskTypeStats {
        name: name.to_owned(),
        counts: c,
        failure_rate: (done > 0).then(|| c.failed as f64 / done as f64),
        // Over at least a minute: a window a few seconds old would turn
        // the first task into hundreds per second.
        throughput: s.ended() as f64 / covered.max(SLOT_SECS),
        runtime: quantiles(&s.runtime),
        wait: quantiles(&s.wait),
        wait_from_sent: s.from_sent,
        wait_from_received: s.from_received,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(id: &str, name: &'static str, runtime: f64) -> Ended<'static> {
        Ended {
            id: Box::leak(id.to_owned().into_boxed_str()),
            name,
            outcome: Outcome::Succeeded,
            at: 1.0,
            runtime: Some(runtime),
            wait: None,
        }
    }

    /// The value of rank floor(q (n - 1)) of ascending `sorted`: the rank
    /// DDSketch reports.
    fn exact(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() as f64 - 1.0)) as usize]
    }

    fn assert_within_1pct(what: &str, got: Option<f64>, want: f64) {
        let got = got.unwrap_or_else(|| panic!("{what}: no value"));
        let err = (got - want).abs() / want;
        assert!(
            err <= RELATIVE_ERROR,
            "{what}: {got} vs {want} ({:.3} %)",
            err * 100.0
        );
    }

    /// Deterministic draws in [0, 1).
    fn uniforms(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..n).map(|_| rng.f64()).collect()
    }

    #[test]
    fn quantiles_are_within_one_percent_on_known_distributions() {
        let n = 20_000;
        let u = uniforms(n, 7);
        let distributions: Vec<(&str, Vec<f64>)> = vec![
            // Uniform 10 ms .. 2 s.
            ("uniform", u.iter().map(|x| 0.01 + x * 1.99).collect()),
            // Exponential, mean 0.3 s (long tail).
            (
                "exponential",
                u.iter().map(|x| -0.3 * (1.0 - x).ln() + 1e-4).collect(),
            ),
            // Pareto, heavy tail from 50 ms.
            (
                "pareto",
                u.iter().map(|x| 0.05 / (1.0 - x).powf(1.0 / 1.5)).collect(),
            ),
            // Bimodal: fast tasks at ~5 ms and slow ones at ~29 s.
            (
                "bimodal",
                u.iter()
                    .enumerate()
                    .map(|(i, x)| {
                        if i % 10 == 0 {
                            29.0 + x
                        } else {
                            0.005 + x * 0.001
                        }
                    })
                    .collect(),
            ),
        ];
        for (what, values) in distributions {
            let mut s = TaskStats::new(10);
            for (i, v) in values.iter().enumerate() {
                s.record(&ok(&format!("{what}{i}"), "t", *v), 30.0);
            }
            let (stats, _) = s.snapshot(Window::All, 40.0);
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let r = &stats[0].runtime;
            assert_eq!(r.count, n as u64);
            assert_within_1pct(&format!("{what} p50"), r.p50, exact(&sorted, 0.5));
            assert_within_1pct(&format!("{what} p95"), r.p95, exact(&sorted, 0.95));
            assert_within_1pct(&format!("{what} p99"), r.p99, exact(&sorted, 0.99));
        }
    }

    #[test]
    fn a_constant_runtime_is_reported_as_itself_not_a_bucket_bound() {
        let mut s = TaskStats::new(10);
        for i in 0..50 {
            s.record(&ok(&format!("t{i}"), "tasks.sleep", 0.29), 10.0);
        }
        let (stats, _) = s.snapshot(Window::FiveMinutes, 10.0);
        assert_within_1pct("p95", stats[0].runtime.p95, 0.29);
    }

    #[test]
    fn windows_keep_the_last_minutes_and_all_keeps_everything() {
        let mut s = TaskStats::new(10);
        s.tick(0.0);
        // 10 tasks of 1 s at minute 0, 10 of 3 s at minute 10.
        for i in 0..10 {
            s.record(&ok(&format!("a{i}"), "t", 1.0), 30.0);
            s.record(&ok(&format!("b{i}"), "t", 3.0), 630.0);
        }
        let at = 650.0;
        let five = &s.snapshot(Window::FiveMinutes, at).0[0];
        assert_eq!((five.counts.succeeded, five.runtime.count), (10, 10));
        assert_within_1pct("5m p50", five.runtime.p50, 3.0);
        let hour = &s.snapshot(Window::Hour, at).0[0];
        assert_eq!(hour.counts.succeeded, 20);
        let all = &s.snapshot(Window::All, at).0[0];
        assert_eq!(all.counts.succeeded, 20);
        assert!((all.throughput - 20.0 / 650.0).abs() < 1e-9);

        // Minute 10 leaves the 5-minute window at minute 15.
        assert!(s.snapshot(Window::FiveMinutes, 14.0 * 60.0 + 59.0).0.len() == 1);
        assert!(s.snapshot(Window::FiveMinutes, 15.0 * 60.0).0.is_empty());
        // Minute 0 leaves the hour at minute 60; minute 10 is still in.
        let hour = &s.snapshot(Window::Hour, 60.0 * 60.0).0[0];
        assert_eq!(hour.counts.succeeded, 10);
        assert_within_1pct("1h p50", hour.runtime.p50, 3.0);
        // A slot reused by a later minute starts empty.
        s.record(&ok("c", "t", 5.0), 70.0 * 60.0);
        let hour = &s.snapshot(Window::Hour, 70.0 * 60.0).0[0];
        assert_eq!(hour.counts.succeeded, 1, "minute 10's slot was reused");
        assert_eq!(
            s.snapshot(Window::All, 70.0 * 60.0).0[0].counts.succeeded,
            21
        );
    }

    #[test]
    fn an_ending_told_twice_counts_once_and_each_attempt_counts() {
        let mut s = TaskStats::new(10);
        let retried = Ended {
            outcome: Outcome::Retried,
            runtime: None,
            at: 5.0,
            wait: Some((0.5, WaitFrom::Sent)),
            ..ok("x", "t", 0.0)
        };
        assert!(s.record(&retried, 10.0));
        assert!(!s.record(&retried, 11.0), "the same ending told again");
        let done = Ended {
            at: 9.0,
            wait: Some((0.2, WaitFrom::Received)),
            ..ok("x", "t", 2.0)
        };
        s.record(&done, 12.0);
        s.record(&done, 13.0);
        let t = &s.snapshot(Window::All, 20.0).0[0];
        assert_eq!((t.counts.retried, t.counts.succeeded), (1, 1));
        assert_eq!(
            (t.wait.count, t.wait_from_sent, t.wait_from_received),
            (2, 1, 1)
        );
        assert_eq!(t.runtime.count, 1);
        assert_eq!(t.failure_rate, Some(0.0));
    }

    #[test]
    fn names_beyond_the_cap_are_counted_as_other() {
        let mut s = TaskStats::new(3);
        for (i, n) in ["a", "b", "c", "d", "c"].iter().enumerate() {
            s.record(&ok(&format!("t{i}"), n, 1.0), 1.0);
        }
        let names: Vec<(String, u64)> = s
            .snapshot(Window::All, 2.0)
            .0
            .into_iter()
            .map(|t| (t.name, t.counts.succeeded))
            .collect();
        assert_eq!(
            names,
            [("a".into(), 1), ("b".into(), 1), ("other".into(), 3)]
        );
        assert_eq!(s.folded(), 2);
    }

    #[test]
    fn failure_rate_and_lost() {
        let mut s = TaskStats::new(10);
        s.record(&ok("a", "t", 1.0), 1.0);
        let failed = Ended {
            outcome: Outcome::Failed,
            ..ok("b", "t", 1.0)
        };
        s.record(&failed, 1.0);
        let lost = Ended {
            outcome: Outcome::Lost,
            runtime: None,
            ..ok("c", "t", 0.0)
        };
        s.record(&lost, 1.0);
        let t = &s.snapshot(Window::FiveMinutes, 2.0).0[0];
        assert_eq!(t.failure_rate, Some(0.5));
        assert_eq!(t.counts.lost, 1);
        assert_eq!(t.runtime.count, 2);
        assert_eq!(Window::parse("1h"), Some(Window::Hour));
        assert_eq!(Window::parse("1d"), None);
    }
}
