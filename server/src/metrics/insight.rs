//! Failure groups (and queue latency) as Prometheus families.

use std::collections::BTreeMap;

use api::insight::{EventsDiagnosis, QueueLatency, StuckTask};

use crate::insight::failures::{FailureGroups, OTHER};

use super::celery::{header, push_f64, push_label, push_u64};

const GROUPS: (&str, &str) = (
    "celeriac_failure_groups",
    "Failure groups held (failures of one bug: exception type and the frames that locate it).",
);
const EVENTS: (&str, &str) = (
    "celeriac_failure_group_events_total",
    "Failures per failure group; groups beyond --max-failure-group-series are counted under fingerprint=\"other\".",
);
const FOLDED: (&str, &str) = (
    "celeriac_failure_groups_folded",
    "Distinct failure groups counted under fingerprint=\"other\".",
);

/// `celeriac_failure_groups`, `celeriac_failure_group_events_total` (one
/// series per group up to the cap, first seen first, then `other`) and
/// `celeriac_failure_groups_folded`.
pub fn write_failures(out: &mut String, groups: &FailureGroups) {
    header(out, GROUPS, "gauge");
    sample(out, GROUPS.0, &[], Value::Int(groups.len() as u64));
    let (series, other, folded) = groups.series();
    header(out, EVENTS, "counter");
    let others = (folded > 0).then_some((OTHER, OTHER, other));
    let all = series
        .iter()
        .map(|(f, e, n)| (f.as_str(), e.as_str(), *n))
        .chain(others);
    for (fingerprint, exception, n) in all {
        let labels = [("fingerprint", fingerprint), ("exception", exception)];
        sample(out, EVENTS.0, &labels, Value::Int(n));
    }
    header(out, FOLDED, "gauge");
    sample(out, FOLDED.0, &[], Value::Int(folded as u64));
}

const OLDEST: (&str, &str) = (
    "celeriac_queue_oldest_task_age_seconds",
    "Seconds the oldest task sent to the queue (task-sent) and not yet received by a worker has waited; 0 when none waits.",
);
const WAITING: (&str, &str) = (
    "celeriac_queue_tasks_waiting",
    "Tasks sent to the queue (task-sent) and not yet received by a worker.",
);
const WAIT: (&str, &str) = (
    "celeriac_queue_wait_seconds",
    "sent to started wait of the tasks that started in the last 5 minutes, exact (nearest-rank) quantiles.",
);
const QUEUES_FOLDED: (&str, &str) = (
    "celeriac_queue_latency_queues_folded",
    "Queue names beyond --max-latency-queues, tracked together as queue_name=\"other\".",
);

/// The queue latency families, one series per tracked queue.
pub fn write_latency(out: &mut String, queues: &[QueueLatency], folded: usize) {
    header(out, OLDEST, "gauge");
    for q in queues {
        let labels = [("queue_name", q.name.as_str())];
        sample(out, OLDEST.0, &labels, Value::Float(q.oldest_task_age));
    }
    header(out, WAITING, "gauge");
    for q in queues {
        let labels = [("queue_name", q.name.as_str())];
        sample(out, WAITING.0, &labels, Value::Int(q.waiting));
    }
    header(out, WAIT, "gauge");
    for q in queues {
        for (quantile, v) in [("0.5", q.wait_p50), ("0.95", q.wait_p95)] {
            let Some(v) = v else { continue };
            let labels = [("queue_name", q.name.as_str()), ("quantile", quantile)];
            sample(out, WAIT.0, &labels, Value::Float(v));
        }
    }
    header(out, QUEUES_FOLDED, "gauge");
    sample(out, QUEUES_FOLDED.0, &[], Value::Int(folded as u64));
}

const SILENT: (&str, &str) = (
    "celeriac_workers_without_task_events",
    "Live workers whose heartbeats count tasks that sent no task event (started without -E, or disable_events).",
);
const UNSENT: (&str, &str) = (
    "celeriac_queue_task_sent_events_missing",
    "1 when tasks consumed from the queue in the last 10 minutes came without task-sent (producers without task_send_sent_event): its wait and latency cannot be measured.",
);
const STUCK: (&str, &str) = (
    "celeriac_tasks_stuck",
    "Tasks STARTED longer than their worker's task_time_limit, else --stuck-after; names beyond --max-task-names are counted under name=\"other\".",
);

/// `celeriac_workers_without_task_events` and, per queue,
/// `celeriac_queue_task_sent_events_missing`: 1 for the queues diagnosed,
/// 0 for the other queues the broker statistics know.
pub fn write_diagnosis(out: &mut String, d: &EventsDiagnosis, known_queues: &[&str]) {
    header(out, SILENT, "gauge");
    let silent = d.workers_without_task_events.len() as u64;
    sample(out, SILENT.0, &[], Value::Int(silent));
    header(out, UNSENT, "gauge");
    let missing = d
        .queues_without_sent_events
        .iter()
        .map(|q| (q.queue.as_str(), 1));
    let fine = known_queues
        .iter()
        .filter(|k| !d.queues_without_sent_events.iter().any(|q| q.queue == **k))
        .map(|k| (*k, 0));
    for (queue, v) in missing.chain(fine) {
        sample(out, UNSENT.0, &[("queue_name", queue)], Value::Int(v));
    }
}

/// `celeriac_tasks_stuck{name}`: names in sorted order up to `max_names`,
/// the rest under `other`.
pub fn write_stuck(out: &mut String, stuck: &[StuckTask], max_names: usize) {
    let mut by: BTreeMap<&str, u64> = BTreeMap::new();
    for t in stuck {
        *by.entry(t.name.as_deref().unwrap_or("unknown"))
            .or_default() += 1;
    }
    let mut other = 0;
    let mut kept: Vec<(&str, u64)> = Vec::new();
    for (name, n) in by {
        if kept.len() < max_names {
            kept.push((name, n));
        } else {
            other += n;
        }
    }
    if other > 0 {
        kept.push((OTHER, other));
    }
    header(out, STUCK, "gauge");
    for (name, n) in kept {
        sample(out, STUCK.0, &[("name", name)], Value::Int(n));
    }
}

/// A number as the text exposition format writes it.
enum Value {
    Int(u64),
    Float(f64),
}

/// One sample line: `name{k="v",…} value`, or `name value` without labels.
fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: Value) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_label(out, k, v);
        }
        out.push('}');
    }
    out.push(' ');
    match value {
        Value::Int(n) => push_u64(out, n),
        Value::Float(v) => push_f64(out, v),
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insight::failures::Failure;

    #[test]
    fn groups_beyond_the_cap_fold_into_other() {
        let mut g = FailureGroups::new(10, 1);
        for (i, line) in ["raise A", "raise B", "raise C", "raise B"]
            .iter()
            .enumerate()
        {
            g.record(
                &Failure {
                    id: format!("t{i}"),
                    name: Some("p.t".into()),
                    worker: None,
                    exception: Some("KeyError('k')".into()),
                    traceback: Some(format!(
                        "Traceback (most recent call last):\n  File \"/a/p/t.py\", line 1, in t\n    {line}\nKeyError: 'k'\n"
                    )),
                    failed_at: Some(1.0),
                },
                1.0,
            );
        }
        let mut out = String::new();
        write_failures(&mut out, &g);
        crate::metrics::testing::parse(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
        assert!(out.contains("celeriac_failure_groups 3\n"), "{out}");
        let (series, _, _) = g.series();
        let first = format!(
            "celeriac_failure_group_events_total{{fingerprint=\"{}\",exception=\"KeyError\"}} 1\n",
            series[0].0
        );
        assert!(out.contains(&first), "{out}");
        assert!(out.contains(
            "celeriac_failure_group_events_total{fingerprint=\"other\",exception=\"other\"} 3\n"
        ));
        assert!(out.contains("celeriac_failure_groups_folded 2\n"));
    }

    #[test]
    fn stuck_names_beyond_the_cap_fold_into_other() {
        let task = |name: &str| StuckTask {
            uuid: name.into(),
            name: Some(name.into()),
            worker: None,
            started: 1.0,
            running_for: 10.0,
            limit: 2.0,
            limit_from: "stuck_after".into(),
        };
        let stuck = [task("a"), task("b"), task("c"), task("b")];
        let mut out = String::new();
        write_stuck(&mut out, &stuck, 2);
        crate::metrics::testing::parse(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
        assert!(
            out.contains("celeriac_tasks_stuck{name=\"a\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("celeriac_tasks_stuck{name=\"b\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("celeriac_tasks_stuck{name=\"other\"} 1\n"),
            "{out}"
        );
    }

    #[test]
    fn queues_missing_sent_events_read_1_and_the_others_0() {
        let d = EventsDiagnosis {
            workers_without_task_events: vec![],
            queues_without_sent_events: vec![api::insight::QueueWithoutSentEvents {
                queue: "q1".into(),
                workers: vec!["w1@vm".into()],
                tasks_without_sent: 3,
                last_at: 1.0,
            }],
        };
        let mut out = String::new();
        write_diagnosis(&mut out, &d, &["q1", "q2"]);
        crate::metrics::testing::parse(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
        assert!(
            out.contains("celeriac_workers_without_task_events 0\n"),
            "{out}"
        );
        assert!(out.contains("celeriac_queue_task_sent_events_missing{queue_name=\"q1\"} 1\n"));
        assert!(out.contains("celeriac_queue_task_sent_events_missing{queue_name=\"q2\"} 0\n"));
    }
}
