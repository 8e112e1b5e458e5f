//! What the events imply but never say: failures grouped by the bug behind
//! them (`fingerprint`, `failures`) and how long tasks wait in each queue
//! (`latency`). Kept up to date by a change-feed subscriber, [`InsightFeed`];
//! read by HTTP, `/metrics` and alert rules through [`Insight`]. No I/O.

pub mod failures;
pub mod fingerprint;
pub mod latency;

use std::sync::Arc;

use api::TaskState;
use parking_lot::Mutex;

use crate::feed::{Changes, StateReader, Subscriber};
use crate::state::TaskView;

use failures::{Failure, FailureGroups};
use latency::{Latency, Seen};

/// Failure groups held by default.
pub const DEFAULT_MAX_FAILURE_GROUPS: usize = 1000;
/// Failure groups with a series of their own in
/// `celeriac_failure_group_events_total` by default.
pub const DEFAULT_MAX_FAILURE_GROUP_SERIES: usize = 100;
/// Queues whose latency is tracked (and exported) by name by default.
pub const DEFAULT_MAX_LATENCY_QUEUES: usize = 100;

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
}

/// What the subscriber keeps and readers read, each behind its own short
/// lock.
#[derive(Debug)]
pub struct Insight {
    pub failures: Mutex<FailureGroups>,
    pub latency: Mutex<Latency>,
}

impl Insight {
    pub fn new(args: &InsightArgs) -> Insight {
        Insight {
            failures: Mutex::new(FailureGroups::new(
                args.max_failure_groups,
                args.max_failure_group_series,
            )),
            latency: Mutex::new(Latency::new(args.max_latency_queues)),
        }
    }
}

impl Default for Insight {
    fn default() -> Self {
        Insight::new(&InsightArgs {
            max_failure_groups: DEFAULT_MAX_FAILURE_GROUPS,
            max_failure_group_series: DEFAULT_MAX_FAILURE_GROUP_SERIES,
            max_latency_queues: DEFAULT_MAX_LATENCY_QUEUES,
        })
    }
}

/// The change-feed subscriber. Copies what it needs out of the changed
/// tasks under the read lock, then fingerprints after releasing it.
pub struct InsightFeed(pub Arc<Insight>);

impl Subscriber for InsightFeed {
    fn on_changes(&mut self, changes: &Changes, state: &StateReader<'_>, now: f64) {
        let mut failed = Vec::new();
        {
            let st = state.read();
            // Its own lock, after the state's (readers never take them the
            // other way round): a few map updates per changed task.
            let mut latency = self.0.latency.lock();
            if changes.overflow {
                // The marks were lost: look at every retained task; the
                // failures already counted are recognised and skipped.
                latency.clear_waiting();
                for t in st.tasks() {
                    latency.observe(&seen(&t), now);
                    failed.extend(failure(&t));
                }
            } else {
                // Evicted first: a task re-created since is in `tasks`
                // and observed again below.
                for e in &changes.evicted {
                    latency.forget(e.id.as_str());
                    if e.changed {
                        let t = st.evicted_task(e);
                        failed.extend(failure(&TaskView::of_api(&t)));
                    }
                }
                for t in st.changed_tasks(changes) {
                    latency.observe(&seen(&t), now);
                    failed.extend(failure(&t));
                }
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
