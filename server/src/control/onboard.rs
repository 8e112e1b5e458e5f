//! Inspecting workers as they come online, so `/api/workers` has their
//! `stats`, `registered`, `active_queues` and `conf` from its first answer
//! rather than after the next periodic refresh (a minute by default).
//!
//! Flower inspects every worker once at start and then only on
//! `?refresh=1`. celeriac asks each worker when it first sees it alive, when
//! it comes back after being offline and when its pid changes (a restart
//! under the same name): [`Arrivals`] tells those apart (pure), the refresh
//! task looks at the workers twice a second and [`onboard`]s the new ones.
//! A `/api/workers` request that lists a live worker nobody has asked yet
//! asks it itself, and one that lists a worker being asked waits for the
//! answer ([`ensure`]), so even a request racing the refresh task sees the
//! inspect fields. Each worker is asked once per arrival: one that never
//! answers (a solo pool busy with a long task) costs one wait, not one per
//! request.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::{inspect, Mailbox, Ops};
use crate::broker::BrokerStats;

/// How long a request waits for an inspection already under way. An
/// inspection of named workers ends once they all answered, so this only
/// bounds the wait for a worker that does not answer.
pub const WAIT_FOR_ANSWERS: Duration = Duration::from_secs(3);

/// What [`Arrivals`] remembers of a worker between two looks.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Seen {
    pid: Option<i64>,
    alive: bool,
}

/// The workers that came online between two looks at the state's workers.
#[derive(Debug, Default)]
pub struct Arrivals {
    seen: HashMap<String, Seen>,
}

/// A worker that came online, and whether it was known before (back after
/// being offline, or restarted with a new pid) so that what it answered
/// then is out of date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    pub worker: String,
    pub returning: bool,
}

impl Arrivals {
    /// The live workers of `workers` that were not alive at the last look,
    /// or whose pid changed. A worker first known from a task event has no
    /// pid until its first heartbeat; that is not a restart.
    pub fn update(&mut self, workers: &[api::Worker]) -> Vec<Arrival> {
        let mut came = Vec::new();
        let mut seen = HashMap::with_capacity(workers.len());
        for w in workers {
            let before = self.seen.get(&w.hostname).copied();
            let arrived = w.status
                && match before {
                    None => true,
                    Some(b) => !b.alive || (b.pid.is_some() && w.pid.is_some() && b.pid != w.pid),
                };
            if arrived {
                came.push(Arrival {
                    worker: w.hostname.clone(),
                    returning: before.is_some(),
                });
            }
            let pid = w.pid.or(before.and_then(|b| b.pid));
            seen.insert(
                w.hostname.clone(),
                Seen {
                    pid,
                    alive: w.status,
                },
            );
        }
        self.seen = seen;
        came
    }
}

/// Which workers have been asked since they came online, shared by the
/// refresh task and the HTTP handler.
#[derive(Debug)]
pub struct Onboarding {
    /// Worker → whether its inspection has ended (answered or not).
    asked: Mutex<HashMap<String, bool>>,
    /// Bumped whenever an inspection ends, to wake whoever waits for one.
    ended: watch::Sender<u64>,
    /// Off with `--inspect-interval 0`: then workers are only inspected on
    /// `?refresh=1`.
    enabled: std::sync::atomic::AtomicBool,
}

impl Default for Onboarding {
    fn default() -> Self {
        Onboarding {
            asked: Mutex::new(HashMap::new()),
            ended: watch::channel(0).0,
            enabled: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl Onboarding {
    pub fn enable(&self) {
        self.enabled
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn enabled(&self) -> bool {
        self.enabled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Marks those of `workers` nobody has asked as asked, and returns them.
    fn claim(&self, workers: &[String]) -> Vec<String> {
        let mut asked = self.asked.lock();
        let mut mine = Vec::new();
        for w in workers {
            if !asked.contains_key(w) {
                asked.insert(w.clone(), false);
                mine.push(w.clone());
            }
        }
        mine
    }

    /// The inspection of `workers` ended; a failed one (the broker
    /// unreachable) is forgotten so the next request asks again.
    fn end(&self, workers: &[String], ok: bool) {
        {
            let mut asked = self.asked.lock();
            for w in workers {
                if ok {
                    asked.insert(w.clone(), true);
                } else {
                    asked.remove(w);
                }
            }
        }
        self.ended.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// `worker` is to be asked again (it came back or restarted).
    fn forget(&self, worker: &str) {
        self.asked.lock().remove(worker);
    }

    /// Keeps only the workers the state still knows.
    fn retain(&self, known: &HashSet<&str>) {
        self.asked.lock().retain(|w, _| known.contains(w.as_str()));
    }

    /// Those of `workers` whose inspection is under way.
    fn pending(&self, workers: &[String]) -> Vec<String> {
        let asked = self.asked.lock();
        workers
            .iter()
            .filter(|w| asked.get(*w) == Some(&false))
            .cloned()
            .collect()
    }
}

/// Inspects those of `workers` nobody has asked yet (Flower's four
/// methods, addressed to them by name).
pub async fn onboard<M: Mailbox>(ops: &Ops<M>, broker: &BrokerStats, workers: &[String]) {
    let mine = ops.onboarding.claim(workers);
    if mine.is_empty() {
        return;
    }
    let result = inspect::refresh_workers(ops, broker, &mine).await;
    if let Err(e) = &result {
        tracing::debug!(error = %e, workers = ?mine, "inspecting new workers failed");
    }
    ops.onboarding.end(&mine, result.is_ok());
}

/// One look of the refresh task: inspects the workers that came online
/// since the last one.
pub async fn look<M: Mailbox>(
    ops: &Ops<M>,
    broker: &BrokerStats,
    arrivals: &mut Arrivals,
    workers: &[api::Worker],
) {
    let came = arrivals.update(workers);
    let known: HashSet<&str> = workers.iter().map(|w| w.hostname.as_str()).collect();
    ops.onboarding.retain(&known);
    if came.is_empty() {
        return;
    }
    for a in came.iter().filter(|a| a.returning) {
        ops.onboarding.forget(&a.worker);
    }
    let names: Vec<String> = came.into_iter().map(|a| a.worker).collect();
    onboard(ops, broker, &names).await;
}

/// Before `/api/workers` answers: the live workers of `workers` without
/// inspect fields are asked now, or waited for when an inspection of them
/// is under way (at most [`WAIT_FOR_ANSWERS`]).
pub async fn ensure<M: Mailbox>(ops: &Ops<M>, broker: &BrokerStats, workers: &[api::Worker]) {
    if !ops.onboarding.enabled() {
        return;
    }
    let missing: Vec<String> = workers
        .iter()
        .filter(|w| w.status && !ops.inspect.has(&w.hostname))
        .map(|w| w.hostname.clone())
        .collect();
    if missing.is_empty() {
        return;
    }
    let mut ended = ops.onboarding.ended.subscribe();
    onboard(ops, broker, &missing).await;
    let wait = async {
        while !ops.onboarding.pending(&missing).is_empty() {
            if ended.changed().await.is_err() {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(WAIT_FOR_ANSWERS, wait).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(name: &str, pid: Option<i64>, alive: bool) -> api::Worker {
        api::Worker {
            hostname: name.into(),
            status: alive,
            active: None,
            processed: None,
            loadavg: None,
            freq: None,
            sw_ident: None,
            sw_ver: None,
            sw_sys: None,
            pid,
            clock: None,
            utcoffset: None,
            timestamp: None,
            last_heartbeat: None,
            heartbeat_expires: None,
        }
    }

    fn names(v: Vec<Arrival>) -> Vec<(String, bool)> {
        v.into_iter().map(|a| (a.worker, a.returning)).collect()
    }

    #[test]
    fn workers_arrive_when_first_alive_back_online_or_restarted() {
        let mut a = Arrivals::default();
        assert!(a.update(&[]).is_empty());
        // Known from a task event only (no pid yet), then heartbeats: one arrival.
        let came = a.update(&[worker("a@h", None, true), worker("b@h", Some(7), false)]);
        assert_eq!(names(came), [("a@h".into(), false)]);
        assert!(a.update(&[worker("a@h", Some(10), true)]).is_empty());
        assert!(a.update(&[worker("a@h", Some(10), true)]).is_empty());
        // A restart under the same name: a new pid.
        let came = a.update(&[worker("a@h", Some(11), true)]);
        assert_eq!(names(came), [("a@h".into(), true)]);
        // Offline, then back.
        assert!(a.update(&[worker("a@h", Some(11), false)]).is_empty());
        let came = a.update(&[worker("a@h", Some(11), true)]);
        assert_eq!(names(came), [("a@h".into(), true)]);
        // A worker seen dead first arrives when it comes alive.
        let came = a.update(&[worker("a@h", Some(11), true), worker("b@h", Some(7), true)]);
        assert_eq!(names(came), [("b@h".into(), false)]);
    }

    #[test]
    fn a_worker_is_claimed_once_until_forgotten_or_failed() {
        let o = Onboarding::default();
        let ab = ["a@h".to_string(), "b@h".to_string()];
        assert_eq!(o.claim(&ab), ab);
        assert!(o.claim(&ab).is_empty());
        assert_eq!(o.pending(&ab), ab);
        o.end(&ab[..1], true);
        o.end(&ab[1..], false);
        assert!(o.pending(&ab).is_empty());
        // The failed one is asked again; the answered one only once forgotten.
        assert_eq!(o.claim(&ab), ["b@h".to_string()]);
        o.forget("a@h");
        assert_eq!(o.claim(&ab), ["a@h".to_string()]);
        o.retain(&HashSet::from(["b@h"]));
        assert_eq!(o.claim(&ab), ["a@h".to_string()]);
    }
}
