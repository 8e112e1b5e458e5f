//! Queue metrics from the broker stats snapshot: celery-exporter's
//! `celery_queue_length`, `celery_active_consumer_count`,
//! `celery_active_worker_count`, `celery_active_process_count`, and
//! celeriac's queue and poller metrics.

use std::collections::BTreeMap;

use super::celery::{header, push_f64, push_label, push_u64};
use crate::broker::{Snapshot, Source, WorkerQueues};

fn gauge_line(out: &mut String, metric: &str, label: (&str, &str), value: u64) {
    out.push_str(metric);
    out.push('{');
    push_label(out, label.0, label.1);
    out.push_str("} ");
    push_u64(out, value);
    out.push('\n');
}

fn float_line(out: &mut String, metric: &str, label: (&str, &str), value: f64) {
    out.push_str(metric);
    out.push('{');
    push_label(out, label.0, label.1);
    out.push_str("} ");
    push_f64(out, value);
    out.push('\n');
}

/// Writes the queue families. `workers` are the queues of the workers
/// alive now (from inspect; empty until something fills it).
pub fn write_queues(out: &mut String, snap: &Snapshot, workers: &BTreeMap<String, WorkerQueues>) {
    const LENGTH: (&str, &str) = (
        "celery_queue_length",
        "The number of message in broker queue.",
    );
    header(out, LENGTH, "gauge");
    for q in &snap.queues {
        gauge_line(out, LENGTH.0, ("queue_name", &q.name), q.messages_ready);
    }

    const CONSUMERS: (&str, &str) = (
        "celery_active_consumer_count",
        "The number of active consumer in broker queue.",
    );
    // promtool's lint flags these celery-exporter names (`_count` on a
    // gauge); dashboards need them as they are, but an empty family is not
    // worth the finding.
    if snap.queues.iter().any(|q| q.consumers.is_some()) {
        header(out, CONSUMERS, "gauge");
    }
    for q in &snap.queues {
        if let Some(c) = q.consumers {
            gauge_line(out, CONSUMERS.0, ("queue_name", &q.name), c);
        }
    }

    // Workers and processes per queue, from what the workers consume.
    let mut per_queue: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for w in workers.values() {
        for q in &w.queues {
            let e = per_queue.entry(q.as_str()).or_default();
            e.0 += 1;
            e.1 += w.processes;
        }
    }
    const WORKERS: (&str, &str) = (
        "celery_active_worker_count",
        "The number of active workers in broker queue.",
    );
    if !per_queue.is_empty() {
        header(out, WORKERS, "gauge");
    }
    for (q, (n, _)) in &per_queue {
        gauge_line(out, WORKERS.0, ("queue_name", q), *n);
    }
    const PROCESSES: (&str, &str) = (
        "celery_active_process_count",
        "The number of active processes in broker queue.",
    );
    if !per_queue.is_empty() {
        header(out, PROCESSES, "gauge");
    }
    for (q, (_, p)) in &per_queue {
        gauge_line(out, PROCESSES.0, ("queue_name", q), *p);
    }

    const MESSAGES: (&str, &str) = (
        "celeriac_queue_messages",
        "Messages in the queue, ready plus unacknowledged (management API only).",
    );
    header(out, MESSAGES, "gauge");
    for q in &snap.queues {
        if let Some(m) = q.messages {
            gauge_line(out, MESSAGES.0, ("queue_name", &q.name), m);
        }
    }
    const UNACKED: (&str, &str) = (
        "celeriac_queue_messages_unacknowledged",
        "Messages delivered to consumers and not acknowledged yet, prefetch included (management API only).",
    );
    header(out, UNACKED, "gauge");
    for q in &snap.queues {
        if let Some(m) = q.messages_unacknowledged {
            gauge_line(out, UNACKED.0, ("queue_name", &q.name), m);
        }
    }
    const PUBLISH: (&str, &str) = (
        "celeriac_queue_publish_rate",
        "Messages published to the queue per second, as RabbitMQ samples it (management API only).",
    );
    header(out, PUBLISH, "gauge");
    for q in &snap.queues {
        if let Some(r) = q.publish_rate {
            float_line(out, PUBLISH.0, ("queue_name", &q.name), r);
        }
    }
    const DELIVER: (&str, &str) = (
        "celeriac_queue_deliver_rate",
        "Messages delivered or fetched from the queue per second (management API only).",
    );
    header(out, DELIVER, "gauge");
    for q in &snap.queues {
        if let Some(r) = q.deliver_rate {
            float_line(out, DELIVER.0, ("queue_name", &q.name), r);
        }
    }

    const SCHEDULED: (&str, &str) = (
        "celeriac_queue_scheduled_broker_side",
        "ETA and countdown messages in RabbitMQ's native delayed delivery cascade (quorum queues), due later and counted in no queue's length.",
    );
    if let Some(n) = snap.scheduled_broker_side {
        header(out, SCHEDULED, "gauge");
        out.push_str(SCHEDULED.0);
        out.push(' ');
        push_u64(out, n);
        out.push('\n');
    }

    const UP: (&str, &str) = (
        "celeriac_broker_stats_up",
        "1 if the last poll of queue statistics got its figures from this source.",
    );
    header(out, UP, "gauge");
    for (i, s) in Source::ALL.iter().enumerate() {
        gauge_line(out, UP.0, ("source", s.as_str()), u64::from(snap.up[i]));
    }
    const ERRORS: (&str, &str) = (
        "celeriac_broker_stats_errors_total",
        "Polls of queue statistics that failed, by source.",
    );
    header(out, ERRORS, "counter");
    for (i, s) in Source::ALL.iter().enumerate() {
        gauge_line(out, ERRORS.0, ("source", s.as_str()), snap.errors[i]);
    }
    const DURATION: (&str, &str) = (
        "celeriac_broker_stats_duration_seconds",
        "How long the last poll of queue statistics took.",
    );
    header(out, DURATION, "gauge");
    out.push_str(DURATION.0);
    out.push(' ');
    push_f64(out, snap.duration);
    out.push('\n');
}
