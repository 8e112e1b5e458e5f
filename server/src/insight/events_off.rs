//! "Why do I see no tasks?": workers that run tasks without sending task
//! events, and workers whose tasks come without `task-sent`. Pure: time
//! enters as `now`.
//!
//! A worker started without `-E` still sends `worker-online` and
//! `worker-heartbeat` (the `worker` event group is always on), and each
//! heartbeat carries `processed`, the tasks it has accepted since it
//! started (Celery's `all_total_count`, raised when a task is accepted, so
//! at `task-started` time). An idle worker's `processed` stands still,
//! so silence alone proves nothing; `processed` growing while no task event
//! from that worker arrives does. With events on, each increase comes with
//! the task's `task-received` and `task-started` (in the fixtures they
//! arrive before the heartbeat that counts them), so the rule is: starting
//! [`grace`] after the worker's last task event, note its `processed`; if a
//! later heartbeat reports more, and still no task event came for another
//! [`grace`], the worker's task events are off. Its next task event clears
//! it.
//!
//! Missing `task-sent` is seen on the tasks themselves: a task a worker
//! finished that never had a `task-sent` came from a producer without
//! `task_send_sent_event`, and its queue wait cannot be measured. Judged at
//! the task's end, since `task-sent` may arrive after `task-received` (two
//! connections). Counted per worker; the HTTP layer names the queues those
//! workers consume.

use api::insight::QueueWithoutSentEvents;
use hashbrown::HashMap;

/// The least time between a task event and the conclusion that a worker's
/// task events are off.
pub const MIN_GRACE_SECS: f64 = 10.0;
/// The queue named when a worker's queues are not known (yet).
pub const UNKNOWN_QUEUE: &str = "unknown";
/// Tasks without `task-sent` are reported for this long after the last one.
pub const UNSENT_WINDOW_SECS: f64 = 600.0;

/// The grace for a worker heartbeating every `freq` seconds: two
/// heartbeats, at least [`MIN_GRACE_SECS`].
pub fn grace(freq: f64) -> f64 {
    (2.0 * freq).max(MIN_GRACE_SECS)
}

/// A worker as a heartbeat left it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Beat<'a> {
    pub hostname: &'a str,
    pub alive: bool,
    pub processed: Option<i64>,
    pub freq: f64,
}

#[derive(Debug, Clone, Default)]
struct Watch {
    last_task_event: Option<f64>,
    /// `processed` noted once the last task event is `grace` old.
    baseline: Option<i64>,
    /// When `processed` was first seen above the baseline.
    grew_at: Option<f64>,
    /// `processed` at the latest heartbeat.
    processed: i64,
    /// Its heartbeat interval.
    freq: f64,
    /// Tasks finished without `task-sent`: how many since start, and the
    /// last one's time.
    unsent: u64,
    unsent_at: Option<f64>,
    /// Tasks finished with `task-sent`, since start.
    sent: u64,
}

/// A worker whose task events are off.
#[derive(Debug, Clone, PartialEq)]
pub struct Silent {
    pub hostname: String,
    /// Tasks it accepted (by its heartbeats) without a task event.
    pub tasks_unseen: i64,
    /// Since when (the first heartbeat that showed them).
    pub since: f64,
    /// Its last task event, if any was ever seen.
    pub last_task_event: Option<f64>,
}

/// A worker that finished tasks without `task-sent` lately.
#[derive(Debug, Clone, PartialEq)]
pub struct Unsent {
    pub hostname: String,
    /// Since start.
    pub tasks_without_sent: u64,
    pub tasks_with_sent: u64,
    pub last_at: f64,
}

#[derive(Debug, Default)]
pub struct EventsOff {
    workers: HashMap<String, Watch>,
    last_beats: Option<f64>,
}

impl EventsOff {
    pub fn new() -> EventsOff {
        EventsOff::default()
    }

    /// A task event from `hostname` (any state a worker reports, not an
    /// inferred LOST), told at `now`.
    pub fn task_event(&mut self, hostname: &str, now: f64) {
        let w = self.watch(hostname);
        w.last_task_event = Some(now);
        w.baseline = None;
        w.grew_at = None;
    }

    /// A task `hostname` finished (told once per task); `sent` whether its
    /// `task-sent` was seen.
    pub fn finished(&mut self, hostname: &str, sent: bool, now: f64) {
        let w = self.watch(hostname);
        if sent {
            w.sent += 1;
        } else {
            w.unsent += 1;
            w.unsent_at = Some(now);
        }
    }

    fn watch(&mut self, hostname: &str) -> &mut Watch {
        // `entry_ref` would allocate only for new workers; hostnames are
        // few, so the lookup first.
        if !self.workers.contains_key(hostname) {
            self.workers.insert(hostname.to_owned(), Watch::default());
        }
        self.workers.get_mut(hostname).expect("inserted above")
    }

    /// Whether [`beats`](Self::beats) was last told `every` seconds ago
    /// or more (or never).
    pub fn beats_due(&self, now: f64, every: f64) -> bool {
        self.last_beats.is_none_or(|t| now - t >= every)
    }

    /// The workers as their heartbeats left them, at `now`; workers no
    /// longer known are forgotten.
    pub fn beats<'a>(&mut self, beats: impl IntoIterator<Item = Beat<'a>>, now: f64) {
        self.last_beats = Some(now);
        let mut known: hashbrown::HashSet<&str> = hashbrown::HashSet::new();
        for b in beats {
            known.insert(b.hostname);
            let w = self.watch(b.hostname);
            let Some(p) = b.processed.filter(|_| b.alive) else {
                // Offline (or no heartbeat yet): start over when it is back.
                w.baseline = None;
                w.grew_at = None;
                continue;
            };
            w.processed = p;
            w.freq = b.freq;
            let grace = grace(b.freq);
            if w.last_task_event.is_some_and(|t| now - t < grace) {
                continue;
            }
            match w.baseline {
                None => w.baseline = Some(p),
                // Restarted: `processed` counts from 0 again.
                Some(base) if p < base => {
                    w.baseline = Some(p);
                    w.grew_at = None;
                }
                Some(base) if p > base => {
                    w.grew_at.get_or_insert(now);
                }
                Some(_) => {}
            }
        }
        self.workers.retain(|h, _| known.contains(h.as_str()));
    }

    /// The workers whose task events are off at `now`, by hostname.
    pub fn silent(&self, now: f64) -> Vec<Silent> {
        let mut out: Vec<Silent> = self
            .workers
            .iter()
            .filter_map(|(h, w)| {
                let since = w.grew_at?;
                let base = w.baseline?;
                (now - since >= grace(w.freq)).then(|| Silent {
                    hostname: h.clone(),
                    tasks_unseen: w.processed - base,
                    since,
                    last_task_event: w.last_task_event,
                })
            })
            .collect();
        out.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        out
    }

    /// The workers that finished a task without `task-sent` in the last
    /// [`UNSENT_WINDOW_SECS`], by hostname.
    pub fn unsent(&self, now: f64) -> Vec<Unsent> {
        let mut out: Vec<Unsent> = self
            .workers
            .iter()
            .filter_map(|(h, w)| {
                let at = w.unsent_at.filter(|t| now - t < UNSENT_WINDOW_SECS)?;
                Some(Unsent {
                    hostname: h.clone(),
                    tasks_without_sent: w.unsent,
                    tasks_with_sent: w.sent,
                    last_at: at,
                })
            })
            .collect();
        out.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        out
    }
}

/// Unsent tasks per queue: each worker's count under every queue
/// `queues_of` says it consumes (`unknown` when it cannot say), sorted by
/// queue.
pub fn by_queue(
    unsent: &[Unsent],
    queues_of: impl Fn(&str) -> Option<Vec<String>>,
) -> Vec<QueueWithoutSentEvents> {
    let mut by: std::collections::BTreeMap<String, QueueWithoutSentEvents> = Default::default();
    for u in unsent {
        let queues = queues_of(&u.hostname)
            .filter(|q| !q.is_empty())
            .unwrap_or_else(|| vec![UNKNOWN_QUEUE.to_owned()]);
        for q in queues {
            let e = by
                .entry(q.clone())
                .or_insert_with(|| QueueWithoutSentEvents {
                    queue: q,
                    workers: Vec::new(),
                    tasks_without_sent: 0,
                    last_at: u.last_at,
                });
            e.workers.push(u.hostname.clone());
            e.tasks_without_sent += u.tasks_without_sent;
            e.last_at = e.last_at.max(u.last_at);
        }
    }
    by.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(processed: i64) -> Beat<'static> {
        Beat {
            hostname: "w1@vm",
            alive: true,
            processed: Some(processed),
            freq: 2.0,
        }
    }

    fn silent(e: &EventsOff, now: f64) -> Vec<(String, i64)> {
        e.silent(now)
            .into_iter()
            .map(|s| (s.hostname, s.tasks_unseen))
            .collect()
    }

    #[test]
    fn an_idle_worker_is_not_silent() {
        let mut e = EventsOff::new();
        for t in 0..60 {
            e.beats([beat(13)], f64::from(t) * 2.0);
        }
        assert!(silent(&e, 120.0).is_empty());
    }

    #[test]
    fn processed_growing_without_task_events_is_silent_until_one_comes() {
        let mut e = EventsOff::new();
        e.beats([beat(0)], 0.0);
        e.beats([beat(0)], 2.0);
        // Tasks run, no task event arrives.
        e.beats([beat(3)], 4.0);
        assert!(silent(&e, 4.0).is_empty(), "not before the grace");
        e.beats([beat(5)], 14.0);
        assert_eq!(silent(&e, 14.0), [("w1@vm".to_owned(), 5)]);
        // enable_events took effect: the next task's events arrive.
        e.task_event("w1@vm", 15.0);
        e.beats([beat(6)], 16.0);
        assert!(silent(&e, 16.0).is_empty());
    }

    #[test]
    fn a_worker_with_events_on_is_never_silent_even_when_heartbeats_lead() {
        // Shaped on the fixture stream: task events, then the heartbeat
        // that counts their tasks; the last task's heartbeat comes after
        // its events, and then the worker idles.
        let mut e = EventsOff::new();
        e.beats([beat(0)], 221.8);
        e.beats([beat(0)], 223.8);
        e.task_event("w1@vm", 224.0);
        e.task_event("w1@vm", 225.0);
        e.beats([beat(2)], 225.8);
        e.task_event("w1@vm", 226.0);
        e.beats([beat(4)], 227.8);
        e.task_event("w1@vm", 228.0);
        // The heartbeat reporting the task of 228.0 comes 1.8 s later.
        e.beats([beat(5)], 229.8);
        for t in 0..30 {
            let now = 231.8 + f64::from(t) * 2.0;
            e.beats([beat(5)], now);
            assert!(silent(&e, now).is_empty(), "at {now}");
        }
        // A heartbeat that runs ahead of its task's events (buffered task
        // events) is forgiven for the grace.
        e.beats([beat(6)], 300.0);
        e.task_event("w1@vm", 301.0);
        e.beats([beat(6)], 302.0);
        assert!(silent(&e, 302.0).is_empty());
    }

    #[test]
    fn a_restart_or_an_offline_worker_starts_over() {
        let mut e = EventsOff::new();
        e.beats([beat(100)], 0.0);
        e.beats([beat(0)], 2.0);
        e.beats([beat(0)], 20.0);
        assert!(silent(&e, 20.0).is_empty(), "processed fell: a restart");
        let offline = Beat {
            alive: false,
            ..beat(5)
        };
        e.beats([offline], 22.0);
        assert!(silent(&e, 40.0).is_empty());
        // Gone from the state: forgotten.
        e.beats([], 50.0);
        assert!(e.workers.is_empty());
    }

    #[test]
    fn tasks_finished_without_task_sent_are_reported_for_a_while() {
        let mut e = EventsOff::new();
        e.finished("w1@vm", true, 10.0);
        assert!(e.unsent(10.0).is_empty());
        e.finished("w1@vm", false, 20.0);
        e.finished("w2@vm", true, 20.0);
        let u = e.unsent(30.0);
        assert_eq!(u.len(), 1);
        assert_eq!(
            (
                u[0].hostname.as_str(),
                u[0].tasks_without_sent,
                u[0].tasks_with_sent
            ),
            ("w1@vm", 1, 1)
        );
        assert!(e.unsent(20.0 + UNSENT_WINDOW_SECS).is_empty());

        e.finished("w3@vm", false, 25.0);
        let queues = by_queue(&e.unsent(30.0), |w| {
            (w == "w1@vm").then(|| vec!["q1".to_owned(), "q2".to_owned()])
        });
        let named: Vec<(&str, Vec<String>)> = queues
            .iter()
            .map(|q| (q.queue.as_str(), q.workers.clone()))
            .collect();
        assert_eq!(
            named,
            [
                ("q1", vec!["w1@vm".to_owned()]),
                ("q2", vec!["w1@vm".to_owned()]),
                ("unknown", vec!["w3@vm".to_owned()]),
            ]
        );
    }
}
