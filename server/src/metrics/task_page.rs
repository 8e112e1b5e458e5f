//! The task families (`celery_task_*{name,hostname,queue_name}`), rendered
//! per series and kept between scrapes.
//!
//! A cluster of 1000 workers × 200 task names has 200,000 series of some 60
//! lines each, and between two scrapes most of them did not change. Each
//! series' lines are rendered once into a chunk (one segment per family)
//! and re-rendered only when its counts differ from the copy the chunk was
//! made from; a scrape then copies segments family by family, since a
//! family's lines must be contiguous. The price is memory: the chunks hold
//! about as much text as the page.
//!
//! What is emitted follows celery-exporter (prometheus_client only creates
//! a labelled child when `.labels()` is called): `celery_task_sent_total`
//! only for series that saw a task-sent; the other counters and
//! `celery_task_failed_total{exception=""}` for every series (it
//! zero-initialises them on every event); a histogram from its first
//! observation.

use crate::state::{Histogram, TaskCounts, TaskSeries, RUNTIME_BUCKETS};

use super::celery::{header, push_f64, push_label, push_u64};

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
const HISTOGRAMS: [(&str, &str); 3] = [
    (
        "celery_task_runtime",
        "Histogram of task runtime measurements.",
    ),
    (
        "celery_task_queue_wait_time",
        "Histogram of task queue wait time measurements.",
    ),
    (
        "celeriac_task_prefetch_time_seconds",
        "Histogram of the time tasks spent received by a worker before starting (received to started).",
    ),
];
/// 7 counters, failed, 3 histograms.
const FAMILIES: usize = 11;

/// One series' rendered lines and what they were rendered from.
struct Chunk {
    name: Box<str>,
    hostname: Box<str>,
    queue: Box<str>,
    counts: TaskCounts,
    text: String,
    /// `text[ends[f - 1]..ends[f]]` are family `f`'s lines (from 0 for f = 0).
    ends: [usize; FAMILIES],
}

impl Chunk {
    fn segment(&self, family: usize) -> &str {
        let start = if family == 0 {
            0
        } else {
            self.ends[family - 1]
        };
        &self.text[start..self.ends[family]]
    }

    fn is_of(&self, s: &TaskSeries<'_>) -> bool {
        *self.name == *s.name && *self.hostname == *s.hostname && *self.queue == *s.queue
    }
}

/// The task families of `/metrics`, cached per series between scrapes.
pub struct TaskPage {
    /// `,le="0.005"} ` per runtime bound, then `,le="+Inf"} `.
    runtime_le: Vec<String>,
    /// The same over the queue-wait bounds (queue wait and prefetch).
    wait_le: Vec<String>,
    /// In the order of the series of the last render.
    chunks: Vec<Chunk>,
    /// Reused for the label text of the series being rendered.
    labels: String,
}

/// `le` suffixes formatted as Python's client does (`1.0`, not `1`), so
/// selectors written against celery-exporter keep matching.
fn le_suffixes(bounds: &[f64]) -> Vec<String> {
    bounds
        .iter()
        .map(|b| format!(",le=\"{b:?}\"}} "))
        .chain([",le=\"+Inf\"} ".to_owned()])
        .collect()
}

impl TaskPage {
    /// `queue_wait_bounds` are `--queue-wait-buckets`; runtime uses
    /// [`RUNTIME_BUCKETS`].
    pub fn new(queue_wait_bounds: &[f64]) -> TaskPage {
        TaskPage {
            runtime_le: le_suffixes(&RUNTIME_BUCKETS),
            wait_le: le_suffixes(queue_wait_bounds),
            chunks: Vec::new(),
            labels: String::new(),
        }
    }

    /// Writes the task families of `series` into `out`, re-rendering only
    /// series that changed since the last call.
    pub fn write(&mut self, out: &mut String, series: &[TaskSeries<'_>]) {
        self.chunks.truncate(series.len());
        for (i, s) in series.iter().enumerate() {
            match self.chunks.get_mut(i) {
                Some(c) if c.is_of(s) => {
                    if c.counts != *s.counts {
                        c.counts.clone_from(s.counts);
                        render(c, &mut self.labels, &self.runtime_le, &self.wait_le);
                    }
                }
                slot => {
                    // A new series, or the series moved (a purge removed
                    // some before it): render it from scratch.
                    let mut c = Chunk {
                        name: s.name.into(),
                        hostname: s.hostname.into(),
                        queue: s.queue.into(),
                        counts: s.counts.clone(),
                        text: String::new(),
                        ends: [0; FAMILIES],
                    };
                    render(&mut c, &mut self.labels, &self.runtime_le, &self.wait_le);
                    match slot {
                        Some(old) => *old = c,
                        None => self.chunks.push(c),
                    }
                }
            }
        }
        let families = COUNTERS
            .iter()
            .map(|f| (*f, "counter"))
            .chain([(FAILED, "counter")])
            .chain(HISTOGRAMS.iter().map(|f| (*f, "histogram")));
        for (f, (family, kind)) in families.enumerate() {
            header(out, family, kind);
            for c in &self.chunks {
                out.push_str(c.segment(f));
            }
        }
    }
}

/// Writes the task families of `series` without keeping anything (tests).
pub fn write_task_series(out: &mut String, series: &[TaskSeries<'_>], queue_wait_bounds: &[f64]) {
    TaskPage::new(queue_wait_bounds).write(out, series);
}

/// Renders every family's lines of one series into `c.text`.
fn render(c: &mut Chunk, labels: &mut String, runtime_le: &[String], wait_le: &[String]) {
    // `name="..",hostname="..",queue_name=".."`, escaped once for the
    // sixty-odd lines of the series.
    labels.clear();
    push_label(labels, "name", &c.name);
    labels.push(',');
    push_label(labels, "hostname", &c.hostname);
    let name_host = labels.len();
    labels.push(',');
    push_label(labels, "queue_name", &c.queue);
    let labels = labels.as_str();

    let out = &mut c.text;
    out.clear();
    let k = &c.counts;
    // Sized up front: growing by doubling copies each chunk a few times,
    // which shows on the first scrape of a large cluster.
    let histogram_lines = |h: &Histogram, le: &[String]| {
        if h.count == 0 {
            0
        } else {
            le.len() + 2
        }
    };
    let lines = 8
        + k.failed.len()
        + histogram_lines(&k.runtime, runtime_le)
        + histogram_lines(&k.queue_wait, wait_le)
        + histogram_lines(&k.prefetch, wait_le);
    // Metric name, braces, `le`, value: under 80 bytes beside the labels.
    out.reserve(lines * (labels.len() + 80));
    let counters = [
        k.sent,
        k.received,
        k.started,
        k.succeeded,
        k.rejected,
        k.revoked,
        k.retried,
    ];
    for (f, ((metric, _), n)) in COUNTERS.iter().zip(counters).enumerate() {
        // celery-exporter creates the sent series on task-sent only.
        if f > 0 || n > 0 {
            sample(out, metric, "", labels, "} ", n);
        }
        c.ends[f] = out.len();
    }

    // celery-exporter's label order: name, hostname, exception, queue_name;
    // the empty-exception series is always there, as its zero-initialised one.
    let failed = k.failed.iter().map(|(e, n)| (e.as_str(), *n));
    for (class, n) in std::iter::once(("", 0)).chain(failed) {
        out.push_str(FAILED.0);
        out.push('{');
        out.push_str(&labels[..name_host]);
        out.push(',');
        push_label(out, "exception", class);
        out.push_str(&labels[name_host..]);
        out.push_str("} ");
        push_u64(out, n);
        out.push('\n');
    }
    c.ends[7] = out.len();

    for (i, ((metric, _), (h, le))) in HISTOGRAMS
        .iter()
        .zip([
            (&k.runtime, runtime_le),
            (&k.queue_wait, wait_le),
            (&k.prefetch, wait_le),
        ])
        .enumerate()
    {
        write_histogram(out, metric, labels, h, le);
        c.ends[8 + i] = out.len();
    }
}

fn sample(out: &mut String, metric: &str, suffix: &str, labels: &str, close: &str, n: u64) {
    out.push_str(metric);
    out.push_str(suffix);
    out.push('{');
    out.push_str(labels);
    out.push_str(close);
    push_u64(out, n);
    out.push('\n');
}

/// One series of a histogram family; nothing before its first observation.
fn write_histogram(out: &mut String, metric: &str, labels: &str, h: &Histogram, le: &[String]) {
    if h.count == 0 {
        return;
    }
    // `le` has one suffix per bound plus `+Inf`, whose count is `count`.
    let counts = h.buckets.iter().copied().chain([h.count]);
    for (le, n) in le.iter().zip(counts) {
        sample(out, metric, "_bucket", labels, le, n);
    }
    out.push_str(metric);
    out.push_str("_sum{");
    out.push_str(labels);
    out.push_str("} ");
    push_f64(out, h.sum);
    out.push('\n');
    sample(out, metric, "_count", labels, "} ", h.count);
}
