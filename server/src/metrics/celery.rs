//! The Celery metrics, with celery-exporter's names and labels
//! (celery-protocol §6.5), written straight into Prometheus' text format
//! from the state's pre-aggregated counters.
//!
//! Why not a `prometheus::core::Collector`: its `MetricFamily` model costs
//! two `String`s per label per sample plus a sort in `gather`, which with
//! thousands of series dominates the scrape; writing the text directly
//! allocates nothing per sample.
//! celeriac's own metrics still go through the prometheus registry.

use std::fmt::Write as _;

use crate::state::{Histogram, TaskCounts, TaskSeries, QUEUE_WAIT_BUCKETS, RUNTIME_BUCKETS};

/// The counter families of a task series, in output order.
const COUNTERS: [(&str, &str); 7] = [
    ("celery_task_sent_total", "Sent when a task message is published."),
    (
        "celery_task_received_total",
        "Sent when the worker receives a task.",
    ),
    (
        "celery_task_started_total",
        "Sent just before the worker executes the task.",
    ),
    (
        "celery_task_succeeded_total",
        "Sent if the task executed successfully.",
    ),
    (
        "celery_task_rejected_total",
        "The task was rejected by the worker, possibly to be re-queued or moved to a dead letter queue.",
    ),
    ("celery_task_revoked_total", "Sent if the task has been revoked."),
    (
        "celery_task_retried_total",
        "Sent if the task failed, but will be retried in the future.",
    ),
];
const FAILED: (&str, &str) = (
    "celery_task_failed_total",
    "Sent if the execution of the task failed.",
);
const RUNTIME: (&str, &str) = (
    "celery_task_runtime",
    "Histogram of task runtime measurements.",
);
const QUEUE_WAIT: (&str, &str) = (
    "celery_task_queue_wait_time",
    "Histogram of task queue wait time measurements.",
);
const PREFETCH: (&str, &str) = (
    "celeriac_task_prefetch_time_seconds",
    "Histogram of the time tasks spent received by a worker before starting (received to started).",
);
const LOADAVG: (&str, &str) = (
    "celeriac_worker_loadavg",
    "The worker host's load average over 1, 5 and 15 minutes, from heartbeats.",
);
const WORKER_UP: (&str, &str) = (
    "celery_worker_up",
    "Indicates if a worker has recently sent a heartbeat.",
);
const WORKER_ACTIVE: (&str, &str) = (
    "celery_worker_tasks_active",
    "The number of tasks the worker is currently processing",
);

/// `le` label values, formatted as Python's client does (`1.0`, not `1`),
/// so selectors written against celery-exporter keep matching.
fn le_labels(bounds: &[f64; RUNTIME_BUCKETS.len()]) -> [String; RUNTIME_BUCKETS.len()] {
    bounds.map(|b| format!("{b:?}"))
}

pub(super) fn header(out: &mut String, (name, help): (&str, &str), kind: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    out.push_str(help);
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind);
    out.push('\n');
}

/// Escapes a label value per the text format: `\`, `"` and newline.
pub(super) fn push_label_value(out: &mut String, v: &str) {
    // A byte scan: `str::contains` with a char set is several times slower,
    // and this runs for every label of every sample.
    if !v.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        out.push_str(v);
        return;
    }
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

pub(super) fn push_label(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str("=\"");
    push_label_value(out, value);
    out.push('"');
}

pub(super) fn push_u64(out: &mut String, mut v: u64) {
    // `write!` goes through `fmt::Formatter`, which costs more than the
    // rest of a sample line; counts are the bulk of a scrape.
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    // Only ASCII digits were written, so this never falls back.
    out.push_str(std::str::from_utf8(&digits[i..]).unwrap_or("0"));
}

pub(super) fn push_f64(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        // Writing to a String cannot fail.
        let _ = write!(out, "{v}");
    }
}

/// `name="..",hostname=".."`: the labels every task family starts with.
fn push_name_host(out: &mut String, s: &TaskSeries<'_>) {
    push_label(out, "name", s.name);
    out.push(',');
    push_label(out, "hostname", s.hostname);
}

/// `metric{name,hostname,queue_name` without the closing brace.
fn open_sample(out: &mut String, metric: &str, suffix: &str, s: &TaskSeries<'_>) {
    out.push_str(metric);
    out.push_str(suffix);
    out.push('{');
    push_name_host(out, s);
    out.push(',');
    push_label(out, "queue_name", s.queue);
}

fn close_sample(out: &mut String, value: u64) {
    out.push_str("} ");
    push_u64(out, value);
    out.push('\n');
}

/// Writes the task families, one pass over `series` per family: a family's
/// lines must be contiguous, and writing straight into `out` avoids
/// per-family buffers and the copy that joins them.
pub fn write_task_series(out: &mut String, series: &[TaskSeries<'_>]) {
    type Get = fn(&TaskCounts) -> u64;
    let getters: [Get; 7] = [
        |c| c.sent,
        |c| c.received,
        |c| c.started,
        |c| c.succeeded,
        |c| c.rejected,
        |c| c.revoked,
        |c| c.retried,
    ];
    for ((metric, help), get) in COUNTERS.into_iter().zip(getters) {
        header(out, (metric, help), "counter");
        for s in series {
            open_sample(out, metric, "", s);
            close_sample(out, get(s.counts));
        }
    }

    header(out, FAILED, "counter");
    for s in series {
        // Like celery-exporter, which zero-initialises `exception=""` on
        // every other event, the series always has an empty-exception line.
        let failed = s.counts.failed.iter().map(|(e, n)| (e.as_str(), *n));
        for (class, n) in std::iter::once(("", 0)).chain(failed) {
            // celery-exporter's label order: name, hostname, exception, queue_name.
            out.push_str(FAILED.0);
            out.push('{');
            push_name_host(out, s);
            out.push(',');
            push_label(out, "exception", class);
            out.push(',');
            push_label(out, "queue_name", s.queue);
            close_sample(out, n);
        }
    }

    let runtime = le_labels(&RUNTIME_BUCKETS);
    write_histogram(out, RUNTIME, series, &runtime, |c| &c.runtime);
    let wait = le_labels(&QUEUE_WAIT_BUCKETS);
    write_histogram(out, QUEUE_WAIT, series, &wait, |c| &c.queue_wait);
    write_histogram(out, PREFETCH, series, &wait, |c| &c.prefetch);
}

/// One histogram family over `series`; like celery-exporter, a series
/// appears with its first observation.
fn write_histogram(
    out: &mut String,
    family: (&str, &str),
    series: &[TaskSeries<'_>],
    le: &[String],
    get: fn(&TaskCounts) -> &Histogram,
) {
    header(out, family, "histogram");
    for s in series {
        let h = get(s.counts);
        if h.count == 0 {
            continue;
        }
        for (le, n) in le
            .iter()
            .map(String::as_str)
            .chain(["+Inf"])
            .zip(h.buckets.into_iter().chain([h.count]))
        {
            open_sample(out, family.0, "_bucket", s);
            out.push_str(",le=\"");
            out.push_str(le);
            out.push('"');
            close_sample(out, n);
        }
        open_sample(out, family.0, "_sum", s);
        out.push_str("} ");
        push_f64(out, h.sum);
        out.push('\n');
        open_sample(out, family.0, "_count", s);
        close_sample(out, h.count);
    }
}

/// Writes `celery_worker_up` and `celery_worker_tasks_active`. `hostname` is
/// the full nodename (`w1@vm`), not celery-exporter's part after `@`, which
/// merges every worker of a host into one series.
pub fn write_workers(out: &mut String, workers: &[api::Worker]) {
    header(out, WORKER_UP, "gauge");
    for w in workers {
        out.push_str(WORKER_UP.0);
        out.push('{');
        push_label(out, "hostname", &w.hostname);
        out.push_str(if w.status { "} 1\n" } else { "} 0\n" });
    }
    header(out, WORKER_ACTIVE, "gauge");
    for w in workers {
        // A worker that is gone runs nothing, whatever its last heartbeat said.
        let active = if w.status {
            w.active.unwrap_or(0).max(0)
        } else {
            0
        };
        out.push_str(WORKER_ACTIVE.0);
        out.push('{');
        push_label(out, "hostname", &w.hostname);
        out.push_str("} ");
        push_u64(out, active as u64);
        out.push('\n');
    }
    header(out, LOADAVG, "gauge");
    for w in workers {
        let Some(load) = w.loadavg.filter(|_| w.status) else {
            continue;
        };
        for (period, v) in ["1m", "5m", "15m"].into_iter().zip(load) {
            out.push_str(LOADAVG.0);
            out.push('{');
            push_label(out, "hostname", &w.hostname);
            out.push(',');
            push_label(out, "period", period);
            out.push_str("} ");
            push_f64(out, v);
            out.push('\n');
        }
    }
}
