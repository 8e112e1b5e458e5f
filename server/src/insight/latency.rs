//! Queue latency: per queue, how long the oldest task sent but not yet
//! received by a worker has waited, and the sent → started wait of recent
//! tasks. Pure: time enters as `now`.
//!
//! Celery messages carry no publish time, so the only source is the
//! producers' `task-sent` event (`task_send_sent_event = True`): a task
//! sent without it is invisible here until a worker receives it. The age
//! is measured from the `task-sent` timestamp, the producer's clock, so a
//! producer whose clock is off shifts it by as much (clamped at zero).

use std::collections::{BTreeSet, VecDeque};

use api::insight::QueueLatency;
use hashbrown::{HashMap, HashSet};

/// Waits older than this leave the percentiles.
pub const WAIT_WINDOW_SECS: f64 = 300.0;
/// Waits kept per queue within the window (the newest).
const MAX_SAMPLES: usize = 4096;
/// Tasks remembered as measured, so a task changing again after it
/// started is not measured twice.
const MEASURED_CAPACITY: usize = 100_000;
/// Where queues beyond the cap are tracked together.
pub const OTHER: &str = "other";

/// What the tracker reads of a task.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seen<'a> {
    pub id: &'a str,
    pub queue: Option<&'a str>,
    /// Sent and neither received nor started, nor finished by any other
    /// means (revoked, ...): the task is still in the broker's queue.
    pub waiting: bool,
    pub sent: Option<f64>,
    pub started: Option<f64>,
    /// ETA and countdown tasks wait on purpose; their wait is not latency.
    pub has_eta: bool,
}

#[derive(Debug, Default)]
struct Queue {
    name: String,
    /// (sent as bits, task id): sent times are positive, so their bit
    /// patterns sort as the numbers do.
    waiting: BTreeSet<(u64, String)>,
    /// (when measured, wait), oldest first.
    samples: VecDeque<(f64, f64)>,
}

#[derive(Debug)]
pub struct Latency {
    max_queues: usize,
    queues: Vec<Queue>,
    index: HashMap<String, usize>,
    folded: HashSet<String>,
    /// Waiting task id → (queue index, sent bits).
    pending: HashMap<String, (usize, u64)>,
    measured: HashSet<String>,
    measured_order: VecDeque<String>,
}

impl Latency {
    /// Tracks at most `max_queues` queues by name, first seen first; tasks
    /// of later queues are tracked together as [`OTHER`].
    pub fn new(max_queues: usize) -> Latency {
        Latency {
            max_queues: max_queues.max(1),
            queues: Vec::new(),
            index: HashMap::new(),
            folded: HashSet::new(),
            pending: HashMap::new(),
            measured: HashSet::new(),
            measured_order: VecDeque::new(),
        }
    }

    fn queue(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let name = if self.queues.len() + 1 < self.max_queues || name == OTHER {
            name
        } else {
            if self.folded.len() < 10_000 {
                self.folded.insert(name.to_owned());
            }
            OTHER
        };
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        self.queues.push(Queue {
            name: name.to_owned(),
            ..Queue::default()
        });
        self.index.insert(name.to_owned(), self.queues.len() - 1);
        self.queues.len() - 1
    }

    /// Takes in a task's current state, seen at `now`.
    pub fn observe(&mut self, t: &Seen<'_>, now: f64) {
        let queue_name = t.queue.unwrap_or(crate::state::DEFAULT_QUEUE);
        let waiting_since = t.sent.filter(|s| t.waiting && s.is_finite() && *s > 0.0);
        match waiting_since {
            Some(sent) => {
                let q = self.queue(queue_name);
                let bits = sent.to_bits();
                if let Some((old_q, old_bits)) = self.pending.insert(t.id.to_owned(), (q, bits)) {
                    self.queues[old_q]
                        .waiting
                        .remove(&(old_bits, t.id.to_owned()));
                }
                self.queues[q].waiting.insert((bits, t.id.to_owned()));
            }
            None => self.forget(t.id),
        }
        if let (Some(sent), Some(started), false) = (t.sent, t.started, t.has_eta) {
            if !self.measured.contains(t.id) {
                self.measured.insert(t.id.to_owned());
                self.measured_order.push_back(t.id.to_owned());
                while self.measured_order.len() > MEASURED_CAPACITY {
                    if let Some(old) = self.measured_order.pop_front() {
                        self.measured.remove(&old);
                    }
                }
                let q = self.queue(queue_name);
                let samples = &mut self.queues[q].samples;
                samples.push_back((now, (started - sent).max(0.0)));
                while samples.len() > MAX_SAMPLES {
                    samples.pop_front();
                }
            }
        }
    }

    /// The task is gone (evicted, or no longer waiting).
    pub fn forget(&mut self, id: &str) {
        if let Some((q, bits)) = self.pending.remove(id) {
            self.queues[q].waiting.remove(&(bits, id.to_owned()));
        }
    }

    /// Before a full resynchronisation: nothing is known to wait.
    pub fn clear_waiting(&mut self) {
        self.pending.clear();
        for q in &mut self.queues {
            q.waiting.clear();
        }
    }

    /// Every queue seen, by name, at `now`; waits older than the window
    /// are dropped here.
    pub fn snapshot(&mut self, now: f64) -> Vec<QueueLatency> {
        let mut out: Vec<QueueLatency> = self
            .queues
            .iter_mut()
            .map(|q| {
                while q
                    .samples
                    .front()
                    .is_some_and(|(at, _)| *at < now - WAIT_WINDOW_SECS)
                {
                    q.samples.pop_front();
                }
                let oldest = q.waiting.first().map(|(bits, _)| f64::from_bits(*bits));
                let mut waits: Vec<f64> = q.samples.iter().map(|(_, w)| *w).collect();
                waits.sort_by(f64::total_cmp);
                QueueLatency {
                    name: q.name.clone(),
                    waiting: q.waiting.len() as u64,
                    oldest_sent: oldest,
                    oldest_task_age: oldest.map_or(0.0, |s| (now - s).max(0.0)),
                    wait_p50: percentile(&waits, 0.5),
                    wait_p95: percentile(&waits, 0.95),
                    wait_samples: waits.len() as u64,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Distinct queue names tracked as [`OTHER`].
    pub fn folded(&self) -> usize {
        self.folded.len()
    }
}

/// The nearest-rank percentile of ascending `sorted`: an observed value,
/// exact, no interpolation.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(id: &str, queue: &str, at: f64) -> Seen<'static> {
        Seen {
            id: Box::leak(id.to_owned().into_boxed_str()),
            queue: Some(Box::leak(queue.to_owned().into_boxed_str())),
            waiting: true,
            sent: Some(at),
            started: None,
            has_eta: false,
        }
    }

    #[test]
    fn the_oldest_waiting_task_ages_until_a_worker_takes_it() {
        let mut l = Latency::new(10);
        l.observe(&sent("a", "q1", 100.0), 100.0);
        l.observe(&sent("b", "q1", 105.0), 105.0);
        l.observe(&sent("c", "q2", 107.0), 107.0);
        let s = l.snapshot(110.0);
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].name.as_str(), s[0].waiting, s[0].oldest_task_age),
            ("q1", 2, 10.0)
        );
        assert_eq!(l.snapshot(120.0)[0].oldest_task_age, 20.0, "it grows");

        // `a` received: `b` is the oldest; then `b` starts after 10 s.
        l.observe(
            &Seen {
                waiting: false,
                ..sent("a", "q1", 100.0)
            },
            121.0,
        );
        assert_eq!(l.snapshot(121.0)[0].oldest_task_age, 16.0);
        let started = Seen {
            waiting: false,
            started: Some(115.0),
            ..sent("b", "q1", 105.0)
        };
        l.observe(&started, 122.0);
        l.observe(&started, 123.0);
        let q1 = &l.snapshot(123.0)[0];
        assert_eq!(
            (q1.waiting, q1.oldest_task_age, q1.oldest_sent),
            (0, 0.0, None)
        );
        assert_eq!(
            (q1.wait_samples, q1.wait_p50),
            (1, Some(10.0)),
            "measured once"
        );

        // Evicted while waiting: forgotten.
        l.forget("c");
        assert_eq!(l.snapshot(130.0)[1].waiting, 0);
        // Waits leave the window.
        assert_eq!(
            l.snapshot(123.0 + WAIT_WINDOW_SECS + 1.0)[0].wait_samples,
            0
        );
    }

    #[test]
    fn eta_tasks_and_tasks_without_task_sent_are_not_latency() {
        let mut l = Latency::new(10);
        let eta = Seen {
            waiting: false,
            started: Some(200.0),
            has_eta: true,
            ..sent("e", "q", 100.0)
        };
        l.observe(&eta, 200.0);
        let unsent = Seen {
            sent: None,
            ..sent("u", "q", 0.0)
        };
        l.observe(&unsent, 200.0);
        assert!(l
            .snapshot(200.0)
            .iter()
            .all(|q| q.waiting == 0 && q.wait_samples == 0));
    }

    #[test]
    fn queues_beyond_the_cap_are_tracked_as_other() {
        let mut l = Latency::new(3);
        for (i, q) in ["a", "b", "c", "d"].iter().enumerate() {
            l.observe(&sent(&format!("t{i}"), q, 100.0 + i as f64), 100.0);
        }
        let names: Vec<String> = l.snapshot(110.0).into_iter().map(|q| q.name).collect();
        assert_eq!(names, ["a", "b", "other"]);
        assert_eq!(l.folded(), 2);
        let other = l.snapshot(110.0).pop().unwrap();
        assert_eq!((other.waiting, other.oldest_task_age), (2, 8.0));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(10.0));
        assert_eq!(percentile(&v, 0.95), Some(19.0));
        assert_eq!(percentile(&v[..1], 0.95), Some(1.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
