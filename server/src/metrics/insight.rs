//! Failure groups (and queue latency) as Prometheus families.

use api::insight::QueueLatency;

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
    out.push_str(GROUPS.0);
    out.push(' ');
    push_u64(out, groups.len() as u64);
    out.push('\n');
    let (series, other, folded) = groups.series();
    header(out, EVENTS, "counter");
    let others = (folded > 0).then_some((OTHER, OTHER, other));
    let all = series
        .iter()
        .map(|(f, e, n)| (f.as_str(), e.as_str(), *n))
        .chain(others);
    for (fingerprint, exception, n) in all {
        out.push_str(EVENTS.0);
        out.push('{');
        push_label(out, "fingerprint", fingerprint);
        out.push(',');
        push_label(out, "exception", exception);
        out.push_str("} ");
        push_u64(out, n);
        out.push('\n');
    }
    header(out, FOLDED, "gauge");
    out.push_str(FOLDED.0);
    out.push(' ');
    push_u64(out, folded as u64);
    out.push('\n');
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
        out.push_str(OLDEST.0);
        out.push('{');
        push_label(out, "queue_name", &q.name);
        out.push_str("} ");
        push_f64(out, q.oldest_task_age);
        out.push('\n');
    }
    header(out, WAITING, "gauge");
    for q in queues {
        out.push_str(WAITING.0);
        out.push('{');
        push_label(out, "queue_name", &q.name);
        out.push_str("} ");
        push_u64(out, q.waiting);
        out.push('\n');
    }
    header(out, WAIT, "gauge");
    for q in queues {
        for (quantile, v) in [("0.5", q.wait_p50), ("0.95", q.wait_p95)] {
            let Some(v) = v else { continue };
            out.push_str(WAIT.0);
            out.push('{');
            push_label(out, "queue_name", &q.name);
            out.push(',');
            push_label(out, "quantile", quantile);
            out.push_str("} ");
            push_f64(out, v);
            out.push('\n');
        }
    }
    header(out, QUEUES_FOLDED, "gauge");
    out.push_str(QUEUES_FOLDED.0);
    out.push(' ');
    push_u64(out, folded as u64);
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
}
