//! The Celery metrics, with celery-exporter's names and labels
//! (docs/celery-protocol.md §6.5), written straight into Prometheus' text format:
//! the worker families and the text-format helpers (the task families are
//! in `task_page`).
//!
//! Why not a `prometheus::core::Collector`: its `MetricFamily` model costs
//! two `String`s per label per sample plus a sort in `gather`, which with
//! thousands of series dominates the scrape; writing the text directly
//! allocates nothing per sample.
//! celeriac's own metrics still go through the prometheus registry.

use std::fmt::Write as _;

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

const TASKS_LOST: (&str, &str) = (
    "celeriac_tasks_lost_total",
    "Tasks RECEIVED or STARTED on a worker whose heartbeats expired (killed, OOM, host lost): no outcome will come.",
);

/// Writes `celeriac_tasks_lost_total` for the series that lost a task.
/// Only those: a zero line for every series would add one line per series
/// to every scrape for an event that is rare.
pub fn write_lost(out: &mut String, series: &[crate::state::TaskSeries<'_>]) {
    header(out, TASKS_LOST, "counter");
    for s in series.iter().filter(|s| s.counts.lost > 0) {
        out.push_str(TASKS_LOST.0);
        out.push('{');
        push_label(out, "name", s.name);
        out.push(',');
        push_label(out, "hostname", s.hostname);
        out.push(',');
        push_label(out, "queue_name", s.queue);
        out.push_str("} ");
        push_u64(out, s.counts.lost);
        out.push('\n');
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
