//! `--flower-metrics`: Flower's six metric names (docs/celery-protocol.md §6.4),
//! derived from the same aggregates, for dashboards built on Flower.
//!
//! Values as Flower 2.2 sets them: `flower_events_total` counts task events
//! (Flower's `observe_task`; worker events are not counted there either),
//! and the two prefetch gauges are moved event by event by the state
//! ([`crate::state::FlowerPrefetch`]): `flower_task_prefetch_time_seconds`
//! is the last started task's received → started time (0 once a task
//! finished), `flower_worker_prefetched_tasks` counts received tasks not yet
//! started, revoked or rejected, leaving ETA tasks out.

use std::collections::BTreeMap;

use super::celery::{header, push_f64, push_label, push_u64};
use crate::state::{FlowerPrefetch, Histogram, TaskSeries};

/// Flower's event type names, in `TaskCounts::by_event` order.
const EVENT_TYPES: [&str; 8] = [
    "task-sent",
    "task-received",
    "task-started",
    "task-succeeded",
    "task-failed",
    "task-retried",
    "task-revoked",
    "task-rejected",
];

#[derive(Default)]
struct PerTask {
    events: [u64; 8],
    runtime: Histogram,
    prefetch: FlowerPrefetch,
}

fn open(out: &mut String, metric: &str, worker: &str, task: &str) {
    out.push_str(metric);
    out.push('{');
    push_label(out, "worker", worker);
    out.push(',');
    push_label(out, "task", task);
}

/// `runtime_bounds` are `--buckets`, which the series' runtimes were
/// observed against.
pub fn write_flower(
    out: &mut String,
    series: &[TaskSeries<'_>],
    workers: &[api::Worker],
    runtime_bounds: &[f64],
) {
    // Flower has no queue label: sum the queues of a (worker, task).
    let mut by: BTreeMap<(&str, &str), PerTask> = BTreeMap::new();
    for s in series {
        let e = by.entry((s.hostname, s.name)).or_default();
        let c = s.counts;
        for (a, b) in e.events.iter_mut().zip(c.by_event()) {
            *a += b;
        }
        e.runtime.add(&c.runtime);
        e.prefetch.add(&c.flower);
    }

    header(out, ("flower_events_total", "Number of events"), "counter");
    for ((worker, task), p) in &by {
        for (kind, n) in EVENT_TYPES.iter().zip(p.events) {
            if n == 0 {
                continue;
            }
            open(out, "flower_events_total", worker, task);
            out.push(',');
            push_label(out, "type", kind);
            out.push_str("} ");
            push_u64(out, n);
            out.push('\n');
        }
    }

    let le: Vec<String> = runtime_bounds.iter().map(|b| format!("{b:?}")).collect();
    header(
        out,
        ("flower_task_runtime_seconds", "Task runtime"),
        "histogram",
    );
    for ((worker, task), p) in &by {
        let h = &p.runtime;
        if h.count == 0 {
            continue;
        }
        for (le, n) in le
            .iter()
            .map(String::as_str)
            .chain(["+Inf"])
            .zip(h.buckets.iter().copied().chain([h.count]))
        {
            open(out, "flower_task_runtime_seconds_bucket", worker, task);
            out.push_str(",le=\"");
            out.push_str(le);
            out.push_str("\"} ");
            push_u64(out, n);
            out.push('\n');
        }
        open(out, "flower_task_runtime_seconds_sum", worker, task);
        out.push_str("} ");
        push_f64(out, h.sum);
        out.push('\n');
        open(out, "flower_task_runtime_seconds_count", worker, task);
        out.push_str("} ");
        push_u64(out, h.count);
        out.push('\n');
    }

    header(
        out,
        (
            "flower_task_prefetch_time_seconds",
            "The time the task spent waiting at the worker to be executed",
        ),
        "gauge",
    );
    for ((worker, task), p) in &by {
        let Some((_, time)) = p.prefetch.time else {
            continue;
        };
        open(out, "flower_task_prefetch_time_seconds", worker, task);
        out.push_str("} ");
        push_f64(out, time);
        out.push('\n');
    }

    header(
        out,
        (
            "flower_worker_prefetched_tasks",
            "Number of tasks of given type prefetched at a worker",
        ),
        "gauge",
    );
    for ((worker, task), p) in &by {
        let Some(n) = p.prefetch.prefetched else {
            continue;
        };
        open(out, "flower_worker_prefetched_tasks", worker, task);
        out.push_str("} ");
        // A gauge Flower can move below 0 (events out of order); so can we.
        push_f64(out, n as f64);
        out.push('\n');
    }

    header(
        out,
        ("flower_worker_online", "Worker online status"),
        "gauge",
    );
    for w in workers {
        out.push_str("flower_worker_online{");
        push_label(out, "worker", &w.hostname);
        out.push_str(if w.status { "} 1\n" } else { "} 0\n" });
    }
    header(
        out,
        (
            "flower_worker_number_of_currently_executing_tasks",
            "Number of tasks currently executing at a worker",
        ),
        "gauge",
    );
    for w in workers {
        let Some(active) = w.active else { continue };
        out.push_str("flower_worker_number_of_currently_executing_tasks{");
        push_label(out, "worker", &w.hostname);
        out.push_str("} ");
        push_u64(out, active.max(0) as u64);
        out.push('\n');
    }
}
