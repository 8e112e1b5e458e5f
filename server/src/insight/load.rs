//! Per queue and task name: the tasks that arrived, those that completed
//! and how long they ran, in one-minute slots over the last hour; and each
//! worker's busy processes from its heartbeats. What the capacity advice
//! reads. Pure: time enters as `now`.
//!
//! An arrival is a task (or a retried attempt of it) entering its queue:
//! counted when its `task-sent` is seen, which names the queue, or, for
//! producers without `task-sent`, once a worker started it (its receipt
//! alone is not waited on: `task-sent` often comes after `task-received`,
//! and would then move it to another queue). Completions are the endings
//! the task statistics count (each once), with the worker's runtime.

use std::collections::{BTreeMap, VecDeque};

use hashbrown::HashMap;
use sketches_ddsketch::DDSketch;

use super::stats::{self, minute_of, Window, SLOTS};

/// Where queues and (queue, name) pairs beyond their caps are counted.
pub const OTHER: &str = "other";
/// Attempts remembered as arrived, so a task told again is counted once.
const ARRIVED_CAPACITY: usize = 100_000;

/// A task entering its queue, as the subscriber reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arrival<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub queue: &'a str,
    /// `retries`: each attempt is an arrival of its own.
    pub attempt: i64,
}

#[derive(Clone)]
struct Slot {
    minute: i64,
    arrived: u64,
    completed: u64,
    runtime: DDSketch,
}

impl Slot {
    fn new(minute: i64) -> Slot {
        Slot {
            minute,
            arrived: 0,
            completed: 0,
            runtime: stats::sketch(),
        }
    }
}

impl std::fmt::Debug for Slot {
    // DDSketch has no Debug.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("minute", &self.minute)
            .field("arrived", &self.arrived)
            .field("completed", &self.completed)
            .finish()
    }
}

#[derive(Debug)]
struct Pair {
    queue: String,
    name: String,
    /// Slot of minute `m` at `m % SLOTS`; a slot of an older minute is stale.
    ring: Vec<Option<Slot>>,
}

/// One (queue, task name) over a window.
#[derive(Clone)]
pub struct PairLoad {
    pub queue: String,
    pub name: String,
    pub arrived: u64,
    pub completed: u64,
    /// Runtimes of the completed tasks (seconds).
    pub runtime: DDSketch,
}

impl std::fmt::Debug for PairLoad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairLoad")
            .field("queue", &self.queue)
            .field("name", &self.name)
            .field("arrived", &self.arrived)
            .field("completed", &self.completed)
            .field("runtimes", &self.runtime.count())
            .finish()
    }
}

/// A worker as its last heartbeat left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    pub alive: bool,
    /// Tasks it was running (`active`), when it said.
    pub active: Option<u64>,
}

#[derive(Debug)]
pub struct Load {
    max_queues: usize,
    max_pairs: usize,
    started_at: Option<f64>,
    pairs: Vec<Pair>,
    /// queue → name → index in `pairs`.
    index: HashMap<String, HashMap<String, usize>>,
    /// Task id → the last attempt counted as arrived.
    arrived: HashMap<String, i64>,
    arrived_order: VecDeque<String>,
    workers: BTreeMap<String, Busy>,
}

impl Load {
    /// Tracks at most `max_queues` queues by name (later ones as
    /// [`OTHER`]) and `max_pairs` (queue, name) pairs; a later name is
    /// counted as [`OTHER`] within its queue.
    pub fn new(max_queues: usize, max_pairs: usize) -> Load {
        Load {
            max_queues: max_queues.max(2),
            max_pairs: max_pairs.max(2),
            started_at: None,
            pairs: Vec::new(),
            index: HashMap::new(),
            arrived: HashMap::new(),
            arrived_order: VecDeque::new(),
            workers: BTreeMap::new(),
        }
    }

    /// Counting starts at the first call (each feed tick makes one).
    pub fn tick(&mut self, now: f64) {
        self.started_at.get_or_insert(now);
    }

    fn pair(&mut self, queue: &str, name: &str) -> usize {
        if let Some(&i) = self.index.get(queue).and_then(|n| n.get(name)) {
            return i;
        }
        let queue = if self.index.contains_key(queue)
            || self.index.len() + 1 < self.max_queues
            || queue == OTHER
        {
            queue
        } else {
            OTHER
        };
        // Past the cap, a new name joins its queue's `other`, which each
        // queue may hold beyond it: at most `max_pairs + max_queues` pairs.
        let name = if self.pairs.len() < self.max_pairs {
            name
        } else {
            OTHER
        };
        if let Some(&i) = self.index.get(queue).and_then(|n| n.get(name)) {
            return i;
        }
        self.pairs.push(Pair {
            queue: queue.to_owned(),
            name: name.to_owned(),
            ring: vec![None; SLOTS],
        });
        let i = self.pairs.len() - 1;
        self.index
            .entry(queue.to_owned())
            .or_default()
            .insert(name.to_owned(), i);
        i
    }

    fn slot(&mut self, queue: &str, name: &str, now: f64) -> &mut Slot {
        let i = self.pair(queue, name);
        let minute = minute_of(now);
        let cell = &mut self.pairs[i].ring[minute.rem_euclid(SLOTS as i64) as usize];
        if cell.as_ref().is_none_or(|s| s.minute != minute) {
            *cell = Some(Slot::new(minute));
        }
        cell.as_mut().expect("filled above")
    }

    /// Counts an arrival seen at `now`, unless this attempt was counted;
    /// says whether it was new.
    pub fn arrived(&mut self, a: &Arrival<'_>, now: f64) -> bool {
        self.tick(now);
        match self.arrived.get_mut(a.id) {
            Some(last) if *last >= a.attempt => return false,
            Some(last) => *last = a.attempt,
            None => {
                self.arrived.insert(a.id.to_owned(), a.attempt);
                self.arrived_order.push_back(a.id.to_owned());
                while self.arrived_order.len() > ARRIVED_CAPACITY {
                    if let Some(old) = self.arrived_order.pop_front() {
                        self.arrived.remove(&old);
                    }
                }
            }
        }
        self.slot(a.queue, a.name, now).arrived += 1;
        true
    }

    /// Counts a task that succeeded or failed after `runtime` seconds (told
    /// once per ending, by the task statistics).
    pub fn completed(&mut self, queue: &str, name: &str, runtime: Option<f64>, now: f64) {
        self.tick(now);
        let s = self.slot(queue, name, now);
        s.completed += 1;
        if let Some(r) = runtime.filter(|r| r.is_finite() && *r >= 0.0) {
            s.runtime.add(r);
        }
    }

    /// The workers as their heartbeats left them (hostname, alive,
    /// `active`); workers no longer known are forgotten.
    pub fn beats<'a>(&mut self, workers: impl IntoIterator<Item = (&'a str, Busy)>) {
        let mut seen = BTreeMap::new();
        for (h, b) in workers {
            seen.insert(h.to_owned(), b);
        }
        self.workers = seen;
    }

    /// The workers by hostname, as their last heartbeats left them.
    pub fn workers(&self) -> &BTreeMap<String, Busy> {
        &self.workers
    }

    /// Every pair with an arrival or a completion in `window`, by queue and
    /// name, and the seconds the window covers at `now`. `Window::All` is
    /// read as the hour: no since-start totals are kept.
    pub fn window(&self, window: Window, now: f64) -> (Vec<PairLoad>, f64) {
        let window = match window {
            Window::All => Window::Hour,
            w => w,
        };
        let m = window.minutes().unwrap_or(SLOTS as i64);
        let cur = minute_of(now);
        let mut out: Vec<PairLoad> = self
            .pairs
            .iter()
            .filter_map(|p| {
                let mut acc = PairLoad {
                    queue: p.queue.clone(),
                    name: p.name.clone(),
                    arrived: 0,
                    completed: 0,
                    runtime: stats::sketch(),
                };
                for s in p.ring.iter().flatten() {
                    if s.minute > cur - m && s.minute <= cur {
                        acc.arrived += s.arrived;
                        acc.completed += s.completed;
                        // Same configuration on both sides: cannot fail.
                        let _ = acc.runtime.merge(&s.runtime);
                    }
                }
                (acc.arrived + acc.completed > 0).then_some(acc)
            })
            .collect();
        out.sort_by(|a, b| (&a.queue, &a.name).cmp(&(&b.queue, &b.name)));
        (out, stats::covered(window, self.started_at, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival<'a>(id: &'a str, name: &'a str, queue: &'a str, attempt: i64) -> Arrival<'a> {
        Arrival {
            id,
            name,
            queue,
            attempt,
        }
    }

    #[test]
    fn arrivals_count_once_per_attempt_and_completions_carry_runtimes() {
        let mut l = Load::new(10, 10);
        assert!(l.arrived(&arrival("a", "t.add", "q", 0), 10.0));
        assert!(
            !l.arrived(&arrival("a", "t.add", "q", 0), 11.0),
            "told again"
        );
        assert!(l.arrived(&arrival("a", "t.add", "q", 1), 12.0), "a retry");
        assert!(
            !l.arrived(&arrival("a", "t.add", "q", 0), 13.0),
            "an old attempt"
        );
        l.arrived(&arrival("b", "t.slow", "q", 0), 14.0);
        l.completed("q", "t.add", Some(0.5), 15.0);
        l.completed("q", "t.add", Some(1.5), 16.0);
        l.completed("q", "t.slow", None, 16.0);
        let (pairs, covered) = l.window(Window::FiveMinutes, 20.0);
        assert_eq!(covered, 10.0, "since the first tick");
        let got: Vec<_> = pairs
            .iter()
            .map(|p| (p.name.as_str(), p.arrived, p.completed, p.runtime.count()))
            .collect();
        assert_eq!(got, [("t.add", 2, 2, 2), ("t.slow", 1, 1, 0)]);
        assert_eq!(pairs[0].runtime.sum(), Some(2.0));
    }

    #[test]
    fn windows_keep_their_minutes() {
        let mut l = Load::new(10, 10);
        l.tick(0.0);
        l.arrived(&arrival("a", "t", "q", 0), 30.0);
        l.arrived(&arrival("b", "t", "q", 0), 630.0);
        let five = l.window(Window::FiveMinutes, 650.0).0;
        assert_eq!(five[0].arrived, 1);
        let hour = l.window(Window::Hour, 650.0).0;
        assert_eq!(hour[0].arrived, 2);
        assert!(l.window(Window::FiveMinutes, 900.0).0.is_empty());
        // A reused slot starts empty: minute 60 takes minute 0's place.
        l.arrived(&arrival("c", "t", "q", 0), 3630.0);
        assert_eq!(l.window(Window::Hour, 3630.0).0[0].arrived, 2);
    }

    #[test]
    fn queues_and_pairs_beyond_their_caps_are_counted_as_other() {
        let mut l = Load::new(3, 3);
        for (i, (q, n)) in [
            ("q1", "a"),
            ("q1", "b"),
            ("q2", "a"),
            ("q3", "a"),
            ("q1", "c"),
        ]
        .iter()
        .enumerate()
        {
            l.arrived(&arrival(&format!("t{i}"), n, q, 0), 1.0);
        }
        let got: Vec<_> = l
            .window(Window::Hour, 2.0)
            .0
            .into_iter()
            .map(|p| (p.queue, p.name, p.arrived))
            .collect();
        assert_eq!(
            got,
            [
                ("other".into(), "other".into(), 1),
                ("q1".into(), "a".into(), 1),
                ("q1".into(), "b".into(), 1),
                ("q1".into(), "other".into(), 1),
                ("q2".into(), "a".into(), 1),
            ]
        );
    }

    #[test]
    fn heartbeats_replace_the_workers_known() {
        let mut l = Load::new(10, 10);
        let busy = |active| Busy {
            alive: true,
            active: Some(active),
        };
        l.beats([("w1", busy(2)), ("w2", busy(0))]);
        assert_eq!(l.workers().get("w1"), Some(&busy(2)));
        l.beats([("w2", busy(1))]);
        assert_eq!(l.workers().get("w1"), None);
        assert_eq!(l.workers().get("w2"), Some(&busy(1)));
    }
}
