//! Builds the engine's [`Inputs`] from celeriac's live state: one short read
//! lock on the state, then the broker snapshot, health and self metrics.

use alerts::inputs::{
    EventCounters, FailureGroupInput, Hist, QueueInput, QueueLatencyInput, SeriesInput,
    StartedTask, WorkerInput,
};
use alerts::Inputs;
use api::TaskState;
use prometheus::core::Collector;

use std::sync::Arc;

use parking_lot::RwLock;

use crate::broker::BrokerStats;
use crate::insight::Insight;
use crate::metrics::{MetricsArgs, SelfMetrics};
use crate::state::{Histogram, State};
use crate::telemetry::LastEvent;

/// What alert rules watch: the state, queue statistics, celeriac's own
/// metrics and when an event last arrived.
#[derive(Clone)]
pub struct Watched {
    pub state: Arc<RwLock<State>>,
    pub broker: Arc<BrokerStats>,
    pub metrics: Arc<SelfMetrics>,
    pub last_event: Arc<LastEvent>,
    /// Failure groups and queue latency.
    pub insight: Arc<Insight>,
    /// The histograms' bounds (`--buckets`, `--queue-wait-buckets`).
    pub exporter: MetricsArgs,
}

fn hist(h: &Histogram) -> Hist {
    Hist {
        cumulative: h.buckets.to_vec(),
        count: h.count,
    }
}

/// What the rules need; `with_started` scans the retained tasks for ones in
/// STARTED, which only `task_stuck_started` rules need.
pub fn gather(shared: &Watched, now: f64, started_at: f64, with_started: bool) -> Inputs {
    let (series, started, workers) = {
        let state = shared.state.read();
        let series: Vec<SeriesInput> = state
            .task_series()
            // Series of `task-sent` (the client's hostname) carry nothing
            // the rules read; skip them. Running tasks' series carry
            // queue wait before any success or failure.
            .filter(|s| {
                let c = s.counts;
                c.succeeded > 0 || !c.failed.is_empty() || c.queue_wait.count > 0 || c.lost > 0
            })
            .map(|s| SeriesInput {
                task: s.name.to_owned(),
                queue: s.queue.to_owned(),
                succeeded: s.counts.succeeded,
                failed: s.counts.failed_total(),
                lost: s.counts.lost,
                runtime: hist(&s.counts.runtime),
                queue_wait: hist(&s.counts.queue_wait),
            })
            .collect();
        let started: Vec<StartedTask> = if with_started {
            state
                .tasks()
                .filter(|t| *t.state == TaskState::Started)
                .filter_map(|t| {
                    Some(StartedTask {
                        name: t.name?.to_owned(),
                        worker: t.worker.unwrap_or_default().to_owned(),
                        started_at: t.started?,
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        let workers: Vec<WorkerInput> = state
            .workers(now)
            .into_iter()
            .map(|w| WorkerInput {
                offline_since: (!w.status).then(|| {
                    // Missed heartbeats: offline since they expired; a
                    // `worker-offline` event: since its last heartbeat.
                    w.heartbeat_expires
                        .or(w.last_heartbeat)
                        .unwrap_or(now)
                        .min(now)
                }),
                hostname: w.hostname,
            })
            .collect();
        (series, started, workers)
    };
    let snapshot = shared.broker.snapshot();
    let queues = snapshot.source.map(|_| {
        snapshot
            .queues
            .iter()
            .map(|q| QueueInput {
                name: q.name.clone(),
                ready: q.messages_ready,
                consumers: q.consumers,
            })
            .collect()
    });
    // A few hundred groups at most (`--max-failure-groups`), copied under
    // their own lock, never the state's.
    let failure_groups = shared
        .insight
        .failures
        .lock()
        .opened()
        .into_iter()
        .map(|g| FailureGroupInput {
            fingerprint: g.fingerprint,
            exception: g.exception,
            tasks: g.tasks,
            opened_at: g.opened_at,
            count: g.count_since,
        })
        .collect();
    let queue_latency = shared
        .insight
        .latency
        .lock()
        .snapshot(now)
        .into_iter()
        .map(|q| QueueLatencyInput {
            name: q.name,
            oldest_age: q.oldest_task_age,
        })
        .collect();
    let m = &shared.metrics;
    Inputs {
        now,
        started_at,
        queues,
        series,
        // `--buckets` and `--queue-wait-buckets` may replace the defaults.
        runtime_bounds: shared.exporter.runtime_buckets.bounds().to_vec(),
        queue_wait_bounds: shared.exporter.queue_wait_buckets.bounds().to_vec(),
        started,
        workers,
        last_event_at: shared.last_event.get(),
        events: EventCounters {
            ingested: m.events_ingested.get(),
            malformed: sum(&m.events_malformed),
            dropped: sum(&m.events_dropped),
        },
        failure_groups,
        queue_latency,
    }
}

/// The total of a labelled counter over all its label values.
fn sum(c: &prometheus::IntCounterVec) -> u64 {
    c.collect()
        .iter()
        .flat_map(|f| f.get_metric())
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}
