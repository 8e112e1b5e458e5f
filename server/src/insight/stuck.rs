//! Stuck tasks: STARTED for longer than they may run. Pure: time enters as
//! `now`.
//!
//! A task past its hard time limit should have been killed by its worker
//! (the pool process is terminated and `task-failed` sent); one still
//! STARTED after it is stuck: a limit that cannot fire (a thread pool, a C
//! extension that holds the GIL, a worker whose pool is wedged) or a lost
//! `task-failed`. The limit is the worker's `task_time_limit` from
//! `inspect conf` when it sets one, else `--stuck-after`. (Per-task limits
//! are not used: `registered` is asked without `taskinfoitems`, as Flower
//! asks it.)

use api::insight::StuckTask;
use hashbrown::HashMap;

/// `--stuck-after` by default, seconds.
pub const DEFAULT_STUCK_AFTER_SECS: f64 = 3600.0;

/// Where a task's limit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitSource {
    /// The worker's `task_time_limit` (`inspect conf`).
    Worker,
    /// `--stuck-after`.
    Default,
}

impl LimitSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitSource::Worker => "task_time_limit",
            LimitSource::Default => "stuck_after",
        }
    }
}

/// The limit of a task on a worker whose hard limit is `worker_limit`.
pub fn limit(worker_limit: Option<f64>, stuck_after: f64) -> (f64, LimitSource) {
    match worker_limit.filter(|l| l.is_finite() && *l > 0.0) {
        Some(l) => (l, LimitSource::Worker),
        None => (stuck_after, LimitSource::Default),
    }
}

/// The rule: started `started`, limited to `limit` seconds, stuck at `now`.
pub fn is_stuck(started: f64, limit: f64, now: f64) -> bool {
    now - started > limit
}

/// What [`Running`] reads of a task.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seen<'a> {
    pub id: &'a str,
    pub name: Option<&'a str>,
    pub worker: Option<&'a str>,
    pub running: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
struct Started {
    name: Option<String>,
    worker: Option<String>,
    started: f64,
}

/// The tasks now STARTED, kept from the change feed (bounded by the
/// state's retention: evicted tasks are forgotten).
#[derive(Debug, Default)]
pub struct Running {
    tasks: HashMap<String, Started>,
}

impl Running {
    /// Takes in a task's current state: `running` is its `task-started`
    /// time while it is STARTED, else `None`.
    pub fn observe(&mut self, t: Seen<'_>) {
        match t.running.filter(|s| s.is_finite()) {
            Some(started) => {
                if self.tasks.get(t.id).is_none_or(|s| s.started != started) {
                    self.tasks.insert(
                        t.id.to_owned(),
                        Started {
                            name: t.name.map(str::to_owned),
                            worker: t.worker.map(str::to_owned),
                            started,
                        },
                    );
                }
            }
            None => self.forget(t.id),
        }
    }

    pub fn forget(&mut self, id: &str) {
        self.tasks.remove(id);
    }

    /// Before a full resynchronisation.
    pub fn clear(&mut self) {
        self.tasks.clear();
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The stuck ones at `now`, longest running first; `worker_limit`
    /// gives a worker's hard limit when known.
    pub fn stuck(
        &self,
        now: f64,
        stuck_after: f64,
        worker_limit: impl Fn(&str) -> Option<f64>,
    ) -> Vec<StuckTask> {
        let mut out: Vec<StuckTask> = self
            .tasks
            .iter()
            .filter_map(|(id, s)| {
                let (limit, source) =
                    limit(s.worker.as_deref().and_then(&worker_limit), stuck_after);
                is_stuck(s.started, limit, now).then(|| StuckTask {
                    uuid: id.clone(),
                    name: s.name.clone(),
                    worker: s.worker.clone(),
                    started: s.started,
                    running_for: now - s.started,
                    limit,
                    limit_from: source.as_str().to_owned(),
                })
            })
            .collect();
        out.sort_by(|a, b| {
            a.started
                .total_cmp(&b.started)
                .then_with(|| a.uuid.cmp(&b.uuid))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, running: Option<f64>) -> Seen<'_> {
        Seen {
            id,
            name: Some("tasks.sleep"),
            worker: Some("w1@vm"),
            running,
        }
    }

    #[test]
    fn the_rule_is_strictly_past_the_limit() {
        assert!(!is_stuck(100.0, 10.0, 110.0));
        assert!(is_stuck(100.0, 10.0, 110.5));
        assert_eq!(limit(Some(30.0), 3600.0), (30.0, LimitSource::Worker));
        assert_eq!(limit(None, 3600.0), (3600.0, LimitSource::Default));
        assert_eq!(limit(Some(0.0), 5.0), (5.0, LimitSource::Default));
    }

    #[test]
    fn started_tasks_past_their_limit_are_stuck_until_they_end() {
        let mut r = Running::default();
        r.observe(task("a", Some(100.0)));
        r.observe(task("b", Some(150.0)));
        r.observe(task("c", None));
        assert_eq!(r.len(), 2);
        let none = |_: &str| None;
        assert!(r.stuck(140.0, 60.0, none).is_empty());
        let s = r.stuck(161.0, 60.0, none);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].uuid.as_str(), s[0].running_for), ("a", 61.0));
        assert_eq!(s[0].limit_from, "stuck_after");
        // The worker's own limit wins over --stuck-after.
        let s = r.stuck(161.0, 3600.0, |_| Some(30.0));
        assert_eq!(s.iter().map(|s| s.uuid.as_str()).collect::<Vec<_>>(), ["a"]);
        assert_eq!(s[0].limit_from, "task_time_limit");
        let s = r.stuck(200.0, 3600.0, |_| Some(30.0));
        assert_eq!(
            s.iter().map(|s| s.uuid.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        // Ended: no longer stuck.
        r.observe(task("a", None));
        assert_eq!(r.stuck(1000.0, 60.0, none).len(), 1);
        r.forget("b");
        assert!(r.is_empty());
    }
}
