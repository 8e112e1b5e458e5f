//! The task families (`celery_task_*{name,hostname,queue_name}`), rendered
//! per series, kept between scrapes and served without copying.
//!
//! A cluster of 1000 workers × 200 task names has 200,000 series of some 60
//! lines each: a page of over a gigabyte, of which little changes between
//! two scrapes. Series are kept in blocks of [`BLOCK`]; a block's text holds
//! its series' lines family by family, so one family's lines of a whole
//! block are one contiguous slice. A scrape hands out those slices (shared
//! `Bytes`, no copy) in family order, as the text format wants a family's
//! lines together; a block is rebuilt only when one of its series changed
//! (its [`Stamp`] differs), re-rendering the changed series and copying
//! the others' lines. Smaller
//! blocks copy less per change but hand out more slices; 16 keeps both
//! small (a 200,000-series page is ~140,000 slices).
//!
//! What is emitted follows celery-exporter (prometheus_client only creates
//! a labelled child when `.labels()` is called): `celery_task_sent_total`
//! only for series that saw a task-sent; the other counters and
//! `celery_task_failed_total{exception=""}` for every series (it
//! zero-initialises them on every event); a histogram from its first
//! observation.

use std::ops::Range;

use bytes::Bytes;

use crate::state::{Histogram, Stamp, TaskCounts, TaskSeries};

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
/// Series per block.
const BLOCK: usize = 16;

/// One series of a block: which version of which series its lines are,
/// and where they are in the block's text.
struct Series {
    stamp: Stamp,
    /// Family `f`'s lines of this series are `text[segments[f]]`.
    segments: [Range<u32>; FAMILIES],
}

#[derive(Default)]
struct Block {
    series: Vec<Series>,
    text: Bytes,
    /// Family `f`'s lines of every series of the block are `text[families[f]]`.
    families: [Range<usize>; FAMILIES],
}

/// The task families of `/metrics`, cached per block of series between
/// scrapes.
pub struct TaskPage {
    /// `# HELP`/`# TYPE` of each family.
    headers: [Bytes; FAMILIES],
    /// In the order of the series of the last render.
    blocks: Vec<Block>,
    render: Render,
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
    /// `runtime_bounds` are `--buckets`, `queue_wait_bounds`
    /// `--queue-wait-buckets`.
    pub fn new(runtime_bounds: &[f64], queue_wait_bounds: &[f64]) -> TaskPage {
        let families = COUNTERS
            .iter()
            .map(|f| (*f, "counter"))
            .chain([(FAILED, "counter")])
            .chain(HISTOGRAMS.iter().map(|f| (*f, "histogram")));
        let mut headers: [Bytes; FAMILIES] = Default::default();
        for (slot, (family, kind)) in headers.iter_mut().zip(families) {
            let mut h = String::new();
            header(&mut h, family, kind);
            *slot = Bytes::from(h);
        }
        TaskPage {
            headers,
            blocks: Vec::new(),
            render: Render {
                runtime_le: le_suffixes(runtime_bounds),
                wait_le: le_suffixes(queue_wait_bounds),
                labels: Default::default(),
                lines: String::new(),
            },
        }
    }

    /// Appends the task families of `series` to `out` as shared slices of
    /// the cached text, re-rendering only blocks where a series changed
    /// since the last call: [`TaskPage::stale`] then [`TaskPage::write_stale`].
    pub fn write(&mut self, out: &mut Vec<Bytes>, series: &[TaskSeries<'_>]) {
        let stale = self.stale(series);
        self.write_stale(out, stale);
    }

    /// Copies out of `series` what the page must re-render: the blocks
    /// where a series changed. The caller holds the state's read lock for
    /// this only, not for the rendering, which on the first scrape of a
    /// large cluster takes long enough to hold ingest up.
    pub fn stale(&self, series: &[TaskSeries<'_>]) -> Stale {
        let batches = series
            .chunks(BLOCK)
            .enumerate()
            .filter(|(b, batch)| !self.blocks.get(*b).is_some_and(|k| is_current(k, batch)))
            .map(|(b, batch)| (b, batch.iter().map(OwnedSeries::from).collect()))
            .collect();
        Stale {
            blocks: series.len().div_ceil(BLOCK),
            batches,
        }
    }

    /// Re-renders what [`TaskPage::stale`] found and appends the page's
    /// slices to `out`.
    pub fn write_stale(&mut self, out: &mut Vec<Bytes>, stale: Stale) {
        self.blocks.truncate(stale.blocks);
        self.blocks.resize_with(stale.blocks, Block::default);
        for (b, owned) in stale.batches {
            let batch: Vec<TaskSeries<'_>> = owned.iter().map(OwnedSeries::view).collect();
            rebuild(&mut self.blocks[b], &batch, &mut self.render);
        }
        for f in 0..FAMILIES {
            out.push(self.headers[f].clone());
            for block in &self.blocks {
                let range = block.families[f].clone();
                if !range.is_empty() {
                    out.push(block.text.slice(range));
                }
            }
        }
    }
}

/// The blocks a scrape must re-render, with their series copied.
pub struct Stale {
    /// Blocks the page has after this scrape.
    blocks: usize,
    batches: Vec<(usize, Vec<OwnedSeries>)>,
}

/// A [`TaskSeries`] copied out of the state.
struct OwnedSeries {
    name: Box<str>,
    hostname: Box<str>,
    queue: Box<str>,
    counts: TaskCounts,
    stamp: Stamp,
}

impl From<&TaskSeries<'_>> for OwnedSeries {
    fn from(s: &TaskSeries<'_>) -> OwnedSeries {
        OwnedSeries {
            name: s.name.into(),
            hostname: s.hostname.into(),
            queue: s.queue.into(),
            counts: s.counts.clone(),
            stamp: s.stamp,
        }
    }
}

impl OwnedSeries {
    fn view(&self) -> TaskSeries<'_> {
        TaskSeries {
            name: &self.name,
            hostname: &self.hostname,
            queue: &self.queue,
            counts: &self.counts,
            stamp: self.stamp,
        }
    }
}

/// Whether `block` was rendered from exactly `batch`: the same series at
/// the same versions. Stamps, not names and counts, are compared: with
/// 200,000 series, reading both copies of every series' counts was most of
/// the cost of a scrape where little changed.
fn is_current(block: &Block, batch: &[TaskSeries<'_>]) -> bool {
    block.series.len() == batch.len()
        && block
            .series
            .iter()
            .zip(batch)
            .all(|(kept, s)| kept.stamp == s.stamp)
}

/// Re-renders the series of `block` that differ from `batch` (new, moved by
/// a purge, or changed counts) and lays the block's text out again family
/// by family, copying the unchanged series' lines from the old text.
fn rebuild(block: &mut Block, batch: &[TaskSeries<'_>], ctx: &mut Render) {
    let old = std::mem::take(&mut block.text);
    block.series.truncate(batch.len());
    let mut fresh = [false; BLOCK];
    let mut capacity = 0;
    for (i, s) in batch.iter().enumerate() {
        match block.series.get_mut(i) {
            Some(kept) if kept.stamp == s.stamp => {
                capacity += kept.segments.iter().map(|r| r.len()).sum::<usize>();
                continue;
            }
            Some(kept) => kept.stamp = s.stamp,
            None => block.series.push(Series {
                stamp: s.stamp,
                segments: Default::default(),
            }),
        }
        fresh[i] = true;
        capacity += ctx.labels(i, s);
    }

    // Sized up front: growing by doubling copies the block a few times,
    // which shows on the first scrape of a large cluster.
    let mut text = Vec::with_capacity(capacity);
    for f in 0..FAMILIES {
        let start = text.len();
        for (i, kept) in block.series.iter_mut().enumerate() {
            let at = text.len();
            if fresh[i] {
                text.extend_from_slice(ctx.family(f, i, batch[i].counts).as_bytes());
            } else {
                let r = &kept.segments[f];
                text.extend_from_slice(&old[r.start as usize..r.end as usize]);
            }
            kept.segments[f] = offset(at)..offset(text.len());
        }
        block.families[f] = start..text.len();
    }
    block.text = Bytes::from(text);
}

/// Offsets within a block: 16 series of a few kilobytes.
fn offset(n: usize) -> u32 {
    u32::try_from(n).expect("a block of 16 series is far below 4 GiB")
}

/// Renders the lines of a block's changed series, family by family.
struct Render {
    /// `,le="0.005"} ` per runtime bound, then `,le="+Inf"} `.
    runtime_le: Vec<String>,
    /// The same over the queue-wait bounds (queue wait and prefetch).
    wait_le: Vec<String>,
    /// Per slot of the block: `name="..",hostname="..",queue_name=".."`,
    /// escaped once for the sixty-odd lines of the series, and where
    /// `,queue_name` starts (the failed family puts `exception` before it).
    labels: [(String, usize); BLOCK],
    /// The lines of one family of one series.
    lines: String,
}

impl Render {
    /// Renders `s`'s label text for slot `i`; returns about how many bytes
    /// its lines will take.
    fn labels(&mut self, i: usize, s: &TaskSeries<'_>) -> usize {
        let (labels, name_host) = &mut self.labels[i];
        labels.clear();
        push_label(labels, "name", s.name);
        labels.push(',');
        push_label(labels, "hostname", s.hostname);
        *name_host = labels.len();
        labels.push(',');
        push_label(labels, "queue_name", s.queue);

        let k = s.counts;
        let histogram_lines = |h: &Histogram, le: &[String]| {
            if h.count == 0 {
                0
            } else {
                le.len() + 2
            }
        };
        let lines = 8
            + k.failed.len()
            + histogram_lines(&k.runtime, &self.runtime_le)
            + histogram_lines(&k.queue_wait, &self.wait_le)
            + histogram_lines(&k.prefetch, &self.wait_le);
        // Metric name, braces, `le`, value: under 80 bytes beside the labels.
        lines * (labels.len() + 80)
    }

    /// Family `f`'s lines of `counts`, the series in slot `i`.
    fn family(&mut self, f: usize, i: usize, k: &TaskCounts) -> &str {
        let (labels, name_host) = (&self.labels[i].0, self.labels[i].1);
        let out = &mut self.lines;
        out.clear();
        match f {
            0..7 => {
                let n = [
                    k.sent,
                    k.received,
                    k.started,
                    k.succeeded,
                    k.rejected,
                    k.revoked,
                    k.retried,
                ][f];
                // celery-exporter creates the sent series on task-sent only.
                if f > 0 || n > 0 {
                    sample(out, COUNTERS[f].0, "", labels, "} ", n);
                }
            }
            7 => {
                // celery-exporter's label order: name, hostname, exception,
                // queue_name; the empty-exception series is always there,
                // as its zero-initialised one.
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
            }
            _ => {
                let (h, le) = match f {
                    8 => (&k.runtime, &self.runtime_le),
                    9 => (&k.queue_wait, &self.wait_le),
                    _ => (&k.prefetch, &self.wait_le),
                };
                write_histogram(out, HISTOGRAMS[f - 8].0, labels, h, le);
            }
        }
        out
    }
}

/// Writes the task families of `series` into `out` without keeping
/// anything (tests).
pub fn write_task_series(
    out: &mut String,
    series: &[TaskSeries<'_>],
    runtime_bounds: &[f64],
    queue_wait_bounds: &[f64],
) {
    let mut chunks = Vec::new();
    TaskPage::new(runtime_bounds, queue_wait_bounds).write(&mut chunks, series);
    for c in chunks {
        // Only ever built from `String`s.
        out.push_str(std::str::from_utf8(&c).expect("metrics text is UTF-8"));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(succeeded: u64) -> TaskCounts {
        let mut c = TaskCounts {
            received: succeeded,
            started: succeeded,
            succeeded,
            ..TaskCounts::default()
        };
        for _ in 0..succeeded {
            c.runtime.observe(0.2);
        }
        c
    }

    fn page(p: &mut TaskPage, series: &[TaskSeries<'_>]) -> String {
        let mut chunks = Vec::new();
        p.write(&mut chunks, series);
        chunks
            .iter()
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect()
    }

    fn fresh(series: &[TaskSeries<'_>]) -> String {
        let mut out = String::new();
        write_task_series(&mut out, series, &[0.1, 1.0], &[1.0]);
        out
    }

    /// Kept blocks, rebuilt blocks and a purge that shifts series across
    /// block boundaries all give the page a fresh render gives.
    #[test]
    fn a_cached_page_equals_a_fresh_render_through_changes_and_purges() {
        let hosts: Vec<String> = (0..40).map(|i| format!("w{i}@vm")).collect();
        let mut all: Vec<(TaskCounts, Stamp)> = (0..40)
            .map(|i| {
                let stamp = Stamp {
                    id: i + 1,
                    changed: 1,
                };
                (counts(i + 1), stamp)
            })
            .collect();
        fn series<'a>(
            hosts: &'a [String],
            all: &'a [(TaskCounts, Stamp)],
            skip: usize,
        ) -> Vec<TaskSeries<'a>> {
            hosts
                .iter()
                .zip(all)
                .skip(skip)
                .map(|(h, (counts, stamp))| TaskSeries {
                    name: "tasks.add",
                    hostname: h,
                    queue: "celery",
                    counts,
                    stamp: *stamp,
                })
                .collect()
        }
        let mut p = TaskPage::new(&[0.1, 1.0], &[1.0]);
        let s = series(&hosts, &all, 0);
        assert_eq!(page(&mut p, &s), fresh(&s));
        assert_eq!(page(&mut p, &s), fresh(&s), "unchanged");

        all[3].0.succeeded += 5;
        all[3].0.runtime.observe(3.0);
        all[3].1.changed = 2;
        all[37].0.failed.push(("KeyError".into(), 2));
        all[37].1.changed = 3;
        let s = series(&hosts, &all, 0);
        let text = page(&mut p, &s);
        assert_eq!(text, fresh(&s));
        crate::metrics::testing::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(text.contains(
            "celery_task_failed_total{name=\"tasks.add\",hostname=\"w37@vm\",\
             exception=\"KeyError\",queue_name=\"celery\"} 2\n"
        ));
        assert!(text.contains(
            "celery_task_succeeded_total{name=\"tasks.add\",hostname=\"w3@vm\",queue_name=\"celery\"} 9\n"
        ));

        // A purge of the first five series moves every other one.
        let s = series(&hosts, &all, 5);
        let text = page(&mut p, &s);
        assert_eq!(text, fresh(&s));
        assert!(!text.contains("hostname=\"w4@vm\""));

        // Fewer series than before: the last block shrinks.
        let s = series(&hosts, &all[..20], 5);
        assert_eq!(page(&mut p, &s), fresh(&s));
        assert_eq!(page(&mut p, &[]), fresh(&[]));
    }

    /// Each family's lines come together, in family order, whatever the
    /// blocks.
    #[test]
    fn families_are_contiguous_across_blocks() {
        let hosts: Vec<String> = (0..3 * BLOCK).map(|i| format!("w{i}@vm")).collect();
        let c = counts(2);
        let s: Vec<_> = hosts
            .iter()
            .zip(1..)
            .map(|(h, id)| TaskSeries {
                name: "t",
                hostname: h,
                queue: "q",
                counts: &c,
                stamp: Stamp { id, changed: 1 },
            })
            .collect();
        let text = fresh(&s);
        let mut seen: Vec<&str> = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let family = line.split(['{', ' ']).next().unwrap();
            let family = family
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            if seen.last() != Some(&family) {
                assert!(!seen.contains(&family), "{family} split: {text}");
                seen.push(family);
            }
        }
        // No task-sent, queue wait or prefetch seen: no such lines.
        let mut expected: Vec<&str> = COUNTERS[1..].iter().map(|f| f.0).collect();
        expected.extend([FAILED.0, HISTOGRAMS[0].0]);
        assert_eq!(seen, expected);
    }
}
