//! Failure groups: failures with one fingerprint (see `fingerprint`),
//! counted, dated, with a trend and an operator's resolve mark. Pure: time
//! enters as `now`, the time celeriac saw the failure, so a worker's skewed
//! clock cannot put a failure in the future or the past.

use std::collections::VecDeque;

use api::insight::{FailureGroup, FailureSample, GroupState, Mark, TrendPoint};
use hashbrown::{HashMap, HashSet};

use super::fingerprint::{fingerprint, Fingerprint};

/// Width of a trend bucket.
pub const TREND_BUCKET_SECS: f64 = 300.0;
/// Buckets kept: 24 hours.
pub const TREND_BUCKETS: usize = 288;
/// Task names and workers listed per group.
pub const MAX_LISTED: usize = 20;
/// Failures remembered as counted, so a task that changes again after its
/// failure (a late event) is not counted twice.
const SEEN_CAPACITY: usize = 100_000;
/// Name of the series groups beyond the metric cap are counted under.
pub const OTHER: &str = "other";

/// One failed task, as the feed saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub id: String,
    pub name: Option<String>,
    pub worker: Option<String>,
    pub exception: Option<String>,
    pub traceback: Option<String>,
    /// The `task-failed` timestamp: with the id, which failure this is.
    pub failed_at: Option<f64>,
}

#[derive(Debug, Clone)]
struct Group {
    print: Fingerprint,
    count: u64,
    first_seen: f64,
    last_seen: f64,
    tasks: Vec<String>,
    tasks_truncated: bool,
    workers: Vec<String>,
    workers_truncated: bool,
    sample: FailureSample,
    /// (bucket index, count), oldest first, within [`TREND_BUCKETS`].
    trend: VecDeque<(i64, u64)>,
    resolved: Option<Mark>,
    unresolved: Option<Mark>,
    /// Set while resolved.
    is_resolved: bool,
    reopened_at: Option<f64>,
}

/// Why a mark could not be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no failure group {0}")]
pub struct UnknownGroup(pub String);

/// Filters of a listing.
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    /// Groups that affected this task name.
    pub task: Option<&'a str>,
    pub state: Option<GroupState>,
    pub limit: Option<usize>,
}

/// What alert rules read of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    pub fingerprint: String,
    pub exception: String,
    pub tasks: Vec<String>,
    /// When it was first seen, or reopened.
    pub opened_at: f64,
    /// Failures since then.
    pub count_since: u64,
}

/// The groups, bounded by `max_groups`.
#[derive(Debug)]
pub struct FailureGroups {
    max_groups: usize,
    max_series: usize,
    groups: HashMap<String, Group>,
    evicted: u64,
    seen: HashSet<(String, u64)>,
    seen_order: VecDeque<(String, u64)>,
    /// Counts exported per (fingerprint, exception), first-seen order,
    /// at most `max_series`; never removed, so counters stay monotonic.
    series: Vec<(String, String, u64)>,
    series_index: HashMap<String, usize>,
    /// Failures of groups beyond the cap, and how many such groups.
    other: u64,
    folded: HashSet<String>,
    /// Failures counted per group since it opened, for `new_failure_group`.
    since_open: HashMap<String, u64>,
}

impl FailureGroups {
    pub fn new(max_groups: usize, max_series: usize) -> FailureGroups {
        FailureGroups {
            max_groups: max_groups.max(1),
            max_series,
            groups: HashMap::new(),
            evicted: 0,
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
            series: Vec::new(),
            series_index: HashMap::new(),
            other: 0,
            folded: HashSet::new(),
            since_open: HashMap::new(),
        }
    }

    /// Counts `f` into its group at `now`, once per failure; returns its
    /// fingerprint when it was counted.
    pub fn record(&mut self, f: &Failure, now: f64) -> Option<String> {
        let key = (f.id.clone(), f.failed_at.unwrap_or(f64::NAN).to_bits());
        if !self.seen.insert(key.clone()) {
            return None;
        }
        self.seen_order.push_back(key);
        while self.seen_order.len() > SEEN_CAPACITY {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        let name = f.name.as_deref().unwrap_or(crate::state::UNKNOWN_NAME);
        let print = fingerprint(name, f.exception.as_deref(), f.traceback.as_deref());
        let id = print.id.clone();
        self.count_series(&print);
        if !self.groups.contains_key(&id) {
            if self.groups.len() >= self.max_groups {
                self.evict_one();
            }
            self.groups.insert(
                id.clone(),
                Group {
                    print,
                    count: 0,
                    first_seen: now,
                    last_seen: now,
                    tasks: Vec::new(),
                    tasks_truncated: false,
                    workers: Vec::new(),
                    workers_truncated: false,
                    sample: FailureSample {
                        task_id: f.id.clone(),
                        task_name: f.name.clone(),
                        worker: f.worker.clone(),
                        exception: f.exception.clone(),
                        traceback: f.traceback.clone(),
                    },
                    trend: VecDeque::new(),
                    resolved: None,
                    unresolved: None,
                    is_resolved: false,
                    reopened_at: None,
                },
            );
            self.since_open.insert(id.clone(), 0);
        }
        let g = self.groups.get_mut(&id)?;
        if g.is_resolved {
            g.is_resolved = false;
            g.reopened_at = Some(now);
            self.since_open.insert(id.clone(), 0);
        }
        *self.since_open.entry(id.clone()).or_default() += 1;
        g.count += 1;
        g.last_seen = g.last_seen.max(now);
        if let Some(n) = &f.name {
            add_listed(&mut g.tasks, &mut g.tasks_truncated, n);
        }
        if let Some(w) = &f.worker {
            add_listed(&mut g.workers, &mut g.workers_truncated, w);
        }
        let bucket = (now / TREND_BUCKET_SECS).floor() as i64;
        match g.trend.back_mut() {
            Some((b, n)) if *b == bucket => *n += 1,
            // A clock step back lands in the newest bucket rather than
            // reordering the trend.
            Some((b, n)) if *b > bucket => *n += 1,
            _ => g.trend.push_back((bucket, 1)),
        }
        while g
            .trend
            .front()
            .is_some_and(|(b, _)| *b <= bucket - TREND_BUCKETS as i64)
        {
            g.trend.pop_front();
        }
        Some(id)
    }

    fn count_series(&mut self, print: &Fingerprint) {
        if let Some(&i) = self.series_index.get(&print.id) {
            self.series[i].2 += 1;
        } else if self.series.len() < self.max_series {
            self.series_index
                .insert(print.id.clone(), self.series.len());
            self.series
                .push((print.id.clone(), print.exception.clone(), 1));
        } else {
            self.other += 1;
            if self.folded.len() < self.max_groups {
                self.folded.insert(print.id.clone());
            }
        }
    }

    /// The least recently seen group goes, resolved ones first.
    fn evict_one(&mut self) {
        let victim = self
            .groups
            .iter()
            .min_by(|(_, a), (_, b)| {
                (!a.is_resolved, a.last_seen)
                    .partial_cmp(&(!b.is_resolved, b.last_seen))
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .map(|(k, _)| k.clone());
        if let Some(k) = victim {
            self.groups.remove(&k);
            self.since_open.remove(&k);
            self.evicted += 1;
        }
    }

    /// Marks the group resolved by `by` at `now`; the next failure reopens it.
    pub fn resolve(
        &mut self,
        fingerprint: &str,
        by: &str,
        now: f64,
    ) -> Result<FailureGroup, UnknownGroup> {
        self.mark(
            fingerprint,
            true,
            Mark {
                by: by.to_owned(),
                at: now,
            },
        )
    }

    /// Opens a resolved group again, by hand.
    pub fn unresolve(
        &mut self,
        fingerprint: &str,
        by: &str,
        now: f64,
    ) -> Result<FailureGroup, UnknownGroup> {
        self.mark(
            fingerprint,
            false,
            Mark {
                by: by.to_owned(),
                at: now,
            },
        )
    }

    fn mark(
        &mut self,
        fingerprint: &str,
        resolved: bool,
        mark: Mark,
    ) -> Result<FailureGroup, UnknownGroup> {
        let g = self
            .groups
            .get_mut(fingerprint)
            .ok_or_else(|| UnknownGroup(fingerprint.to_owned()))?;
        g.is_resolved = resolved;
        let slot = if resolved {
            &mut g.resolved
        } else {
            &mut g.unresolved
        };
        *slot = Some(mark);
        Ok(render(g))
    }

    /// Groups matching `filter`, newest `last_seen` first, and how many
    /// matched before `limit`.
    pub fn list(&self, filter: &Filter<'_>) -> (Vec<FailureGroup>, usize) {
        let mut matched: Vec<&Group> = self
            .groups
            .values()
            .filter(|g| filter.task.is_none_or(|t| g.tasks.iter().any(|n| n == t)))
            .filter(|g| filter.state.is_none_or(|s| state_of(g) == s))
            .collect();
        matched.sort_by(|a, b| {
            b.last_seen
                .total_cmp(&a.last_seen)
                .then_with(|| a.print.id.cmp(&b.print.id))
        });
        let total = matched.len();
        let limit = filter.limit.unwrap_or(usize::MAX);
        (matched.into_iter().take(limit).map(render).collect(), total)
    }

    pub fn get(&self, fingerprint: &str) -> Option<FailureGroup> {
        self.groups.get(fingerprint).map(render)
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Open groups with when they opened, for `new_failure_group` rules.
    pub fn opened(&self) -> Vec<Opened> {
        self.groups
            .values()
            .filter(|g| !g.is_resolved)
            .map(|g| Opened {
                fingerprint: g.print.id.clone(),
                exception: g.print.exception.clone(),
                tasks: g.tasks.clone(),
                opened_at: g.reopened_at.unwrap_or(g.first_seen),
                count_since: self.since_open.get(&g.print.id).copied().unwrap_or(0),
            })
            .collect()
    }

    /// Failures per (fingerprint, exception) for the first `max_series`
    /// groups, then the count of all others and how many groups those were.
    pub fn series(&self) -> (&[(String, String, u64)], u64, usize) {
        (&self.series, self.other, self.folded.len())
    }
}

fn state_of(g: &Group) -> GroupState {
    if g.is_resolved {
        GroupState::Resolved
    } else {
        GroupState::Open
    }
}

fn add_listed(list: &mut Vec<String>, truncated: &mut bool, v: &str) {
    if list.iter().any(|x| x == v) {
        return;
    }
    if list.len() < MAX_LISTED {
        list.push(v.to_owned());
    } else {
        *truncated = true;
    }
}

fn render(g: &Group) -> FailureGroup {
    FailureGroup {
        fingerprint: g.print.id.clone(),
        exception: g.print.exception.clone(),
        frames: g.print.frames.iter().map(|f| f.label()).collect(),
        count: g.count,
        first_seen: g.first_seen,
        last_seen: g.last_seen,
        tasks: g.tasks.clone(),
        tasks_truncated: g.tasks_truncated,
        workers: g.workers.clone(),
        workers_truncated: g.workers_truncated,
        sample: g.sample.clone(),
        trend: g
            .trend
            .iter()
            .map(|&(b, count)| TrendPoint {
                at: b as f64 * TREND_BUCKET_SECS,
                count,
            })
            .collect(),
        state: state_of(g),
        resolved: g.resolved.clone(),
        unresolved: g.unresolved.clone(),
        reopened_at: g.reopened_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(id: &str, name: &str, worker: &str, line: &str) -> Failure {
        Failure {
            id: id.into(),
            name: Some(name.into()),
            worker: Some(worker.into()),
            exception: Some("ValueError('x')".into()),
            traceback: Some(format!(
                "Traceback (most recent call last):\n  File \"/app/proj/tasks.py\", line 3, in run\n    {line}\nValueError: x\n"
            )),
            failed_at: Some(1.0),
        }
    }

    #[test]
    fn failures_group_count_once_and_trend_by_five_minutes() {
        let mut g = FailureGroups::new(10, 10);
        let a = g
            .record(&failure("t1", "proj.a", "w1", "raise A"), 1000.0)
            .unwrap();
        assert_eq!(
            g.record(&failure("t1", "proj.a", "w1", "raise A"), 1001.0),
            None,
            "once per failure"
        );
        let again = g
            .record(&failure("t2", "proj.b", "w2", "raise A"), 1400.0)
            .unwrap();
        assert_eq!(a, again);
        let other = g
            .record(&failure("t3", "proj.a", "w1", "raise B"), 1500.0)
            .unwrap();
        assert_ne!(a, other);

        let (list, total) = g.list(&Filter::default());
        assert_eq!(total, 2);
        assert_eq!(list[0].fingerprint, other, "newest last_seen first");
        let grp = g.get(&a).unwrap();
        assert_eq!(grp.count, 2);
        assert_eq!((grp.first_seen, grp.last_seen), (1000.0, 1400.0));
        assert_eq!(grp.tasks, ["proj.a", "proj.b"]);
        assert_eq!(grp.workers, ["w1", "w2"]);
        assert_eq!(grp.sample.task_id, "t1");
        let trend: Vec<(f64, u64)> = grp.trend.iter().map(|p| (p.at, p.count)).collect();
        assert_eq!(trend, [(900.0, 1), (1200.0, 1)]);

        let (by_task, _) = g.list(&Filter {
            task: Some("proj.b"),
            ..Filter::default()
        });
        assert_eq!(by_task.len(), 1);
        let (one, total) = g.list(&Filter {
            limit: Some(1),
            ..Filter::default()
        });
        assert_eq!((one.len(), total), (1, 2));
    }

    #[test]
    fn a_resolved_group_reopens_on_its_next_failure() {
        let mut g = FailureGroups::new(10, 10);
        let fp = g
            .record(&failure("t1", "proj.a", "w1", "raise A"), 100.0)
            .unwrap();
        assert_eq!(
            g.resolve("nope", "ann", 101.0),
            Err(UnknownGroup("nope".into()))
        );
        let r = g.resolve(&fp, "ann", 110.0).unwrap();
        assert_eq!(r.state, GroupState::Resolved);
        assert_eq!(
            r.resolved,
            Some(Mark {
                by: "ann".into(),
                at: 110.0
            })
        );
        let (resolved, _) = g.list(&Filter {
            state: Some(GroupState::Resolved),
            ..Filter::default()
        });
        assert_eq!(resolved.len(), 1);
        assert!(g.opened().is_empty());

        g.record(&failure("t2", "proj.a", "w1", "raise A"), 200.0);
        let grp = g.get(&fp).unwrap();
        assert_eq!(grp.state, GroupState::Open);
        assert_eq!(grp.reopened_at, Some(200.0));
        assert_eq!(grp.count, 2);
        assert_eq!(grp.resolved.as_ref().map(|m| m.by.as_str()), Some("ann"));
        let opened = g.opened();
        assert_eq!((opened[0].opened_at, opened[0].count_since), (200.0, 1));

        g.resolve(&fp, "ann", 210.0).unwrap();
        let u = g.unresolve(&fp, "bob", 220.0).unwrap();
        assert_eq!(u.state, GroupState::Open);
        assert_eq!(
            u.unresolved,
            Some(Mark {
                by: "bob".into(),
                at: 220.0
            })
        );
    }

    #[test]
    fn groups_and_series_stay_bounded() {
        let mut g = FailureGroups::new(3, 2);
        for i in 0..5 {
            let line = format!("raise E{}", ["a", "b", "c", "d", "e"][i]);
            g.record(&failure(&format!("t{i}"), "proj.a", "w1", &line), i as f64);
        }
        assert_eq!(g.len(), 3);
        assert_eq!(g.evicted(), 2);
        let (series, other, folded) = g.series();
        assert_eq!(series.len(), 2);
        assert_eq!((other, folded), (3, 3));
        // The oldest went: the newest three remain.
        let (list, _) = g.list(&Filter::default());
        let seen: Vec<f64> = list.iter().map(|x| x.last_seen).collect();
        assert_eq!(seen, [4.0, 3.0, 2.0]);
    }

    #[test]
    fn the_trend_keeps_the_last_day() {
        let mut g = FailureGroups::new(3, 2);
        let fp = g.record(&failure("t0", "p", "w", "raise A"), 0.0).unwrap();
        let day = TREND_BUCKET_SECS * TREND_BUCKETS as f64;
        g.record(
            &Failure {
                failed_at: Some(2.0),
                ..failure("t1", "p", "w", "raise A")
            },
            day + 1.0,
        );
        let grp = g.get(&fp).unwrap();
        assert_eq!(grp.trend.len(), 1);
        assert_eq!(grp.trend[0].at, day);
    }
}
