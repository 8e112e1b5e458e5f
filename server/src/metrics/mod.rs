//! Prometheus: celeriac's self metrics and the Celery metrics folded from state.
mod args;
mod broker;
mod buckets;
mod celery;
mod flower;
mod insight;
mod self_metrics;
pub mod statsd;
mod task_page;

pub use args::{MetricsArgs, DEFAULT_MAX_TASK_NAMES};
pub use broker::write_queues;
pub use buckets::{parse_buckets, Buckets};

pub use celery::write_workers;
pub use self_metrics::{register, SelfMetrics, LAG_BUCKETS};
pub use task_page::{write_task_series, TaskPage};

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use prometheus::TextEncoder;

use parking_lot::RwLock;

use crate::broker::BrokerStats;
use crate::insight::Insight;
use crate::state::State;
use crate::state::TaskSeries;

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a scrape reads.
#[derive(Clone, Copy)]
pub struct Scrape<'a> {
    pub state: &'a RwLock<State>,
    pub broker: &'a BrokerStats,
    pub metrics: &'a SelfMetrics,
    /// Failure groups and queue latency.
    pub insight: &'a Insight,
    /// How to render: buckets, name cardinality, Flower's names.
    pub exporter: &'a MetricsArgs,
}

/// The whole `/metrics` page as one string (tests, and callers that want
/// text rather than a response body).
pub fn render(shared: Scrape<'_>, now: f64) -> String {
    render_page(shared, now).to_string()
}

/// The whole `/metrics` page: the Celery families from the state's
/// counters (one read lock, no scan over tasks), then celeriac's own. The
/// task families are shared slices of the text cached in [`TaskPage`]:
/// a scrape copies none of it, which is most of a large page.
pub fn render_page(shared: Scrape<'_>, now: f64) -> Page {
    let mut chunks = Vec::with_capacity(LAST_CHUNKS.load(Ordering::Relaxed) + 1);
    // Everything after the task families: a few lines per worker and queue.
    let mut out = String::with_capacity(LAST_TAIL.load(Ordering::Relaxed) / 8 * 9 + 4096);
    let out = &mut out;
    // The page's lock before the state's, held across both phases so that
    // two scrapes never interleave their updates of the kept text.
    let mut page = shared.metrics.task_page.lock();
    let page = page.get_or_insert_with(|| {
        TaskPage::new(
            shared.exporter.runtime_buckets.bounds(),
            shared.exporter.queue_wait_buckets.bounds(),
        )
    });
    let stale = {
        let state = shared.state.read();
        // Bounded by the state: names beyond --max-task-names are already
        // counted under `other` there.
        let series: Vec<TaskSeries<'_>> = state.task_series().collect();
        // Under the read lock only what changed is copied; it is rendered
        // once the lock is released, so ingest never waits on rendering.
        let stale = page.stale(&series);
        write_names(out, state.task_names_folded(), state.interned_strings());
        celery::write_lost(out, &series);
        let workers = state.workers(now);
        if shared.exporter.flower_metrics {
            let bounds = shared.exporter.runtime_buckets.bounds();
            flower::write_flower(out, &series, &workers, bounds);
        }
        drop(series);
        let (tasks, workers_n, evicted) = (
            state.task_count(),
            state.worker_count(),
            state.evicted_tasks(),
        );
        drop(state);
        write_workers(out, &workers);
        let mut worker_queues = shared.broker.worker_queues();
        worker_queues.retain(|host, _| workers.iter().any(|w| w.status && &w.hostname == host));
        write_queues(out, &shared.broker.snapshot(), &worker_queues);
        let m = &shared.metrics;
        m.tasks_retained.set(saturating_i64(tasks));
        m.workers_retained.set(saturating_i64(workers_n));
        m.tasks_evicted.set(saturating_i64(evicted));
        stale
    };
    page.write_stale(&mut chunks, stale);
    insight::write_failures(out, &shared.insight.failures.lock());
    let (latency, folded) = {
        let mut l = shared.insight.latency.lock();
        (l.snapshot(now), l.folded())
    };
    insight::write_latency(out, &latency, folded);
    let diagnosis = shared.insight.diagnosis(shared.broker, now);
    let snapshot = shared.broker.snapshot();
    let known: Vec<&str> = snapshot.queues.iter().map(|q| q.name.as_str()).collect();
    insight::write_diagnosis(out, &diagnosis, &known);
    insight::write_stuck(
        out,
        &shared.insight.stuck(shared.broker, now),
        shared.exporter.max_task_names,
    );
    // The task families come first; what was written meanwhile follows.
    let families = shared.metrics.registry.gather();
    if let Err(e) = TextEncoder::new().encode_utf8(&families, out) {
        // Only reachable with a malformed self metric, a bug; the Celery
        // families above are still worth serving.
        tracing::error!("encoding self metrics: {e}");
    }
    LAST_CHUNKS.store(chunks.len(), Ordering::Relaxed);
    LAST_TAIL.store(out.len(), Ordering::Relaxed);
    chunks.push(Bytes::from(std::mem::take(out)));
    Page::new(chunks)
}

/// Sizes of the last page, to size the next one: growing a multi-megabyte
/// buffer by doubling copies it several times over.
static LAST_CHUNKS: AtomicUsize = AtomicUsize::new(0);
static LAST_TAIL: AtomicUsize = AtomicUsize::new(0);

/// A rendered page: slices of the cached task text and the rest, in order.
pub struct Page {
    chunks: Vec<Bytes>,
    len: usize,
}

impl Page {
    fn new(chunks: Vec<Bytes>) -> Page {
        let len = chunks.iter().map(Bytes::len).sum();
        Page { chunks, len }
    }

    /// Bytes in the whole page.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The page's pieces, in order.
    pub fn into_chunks(self) -> Vec<Bytes> {
        self.chunks
    }
}

impl std::fmt::Display for Page {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in &self.chunks {
            // Every chunk was made from a `String`.
            f.write_str(std::str::from_utf8(c).map_err(|_| std::fmt::Error)?)?;
        }
        Ok(())
    }
}

/// What the state's bounds on names did: names folded into `other`, and
/// the interned strings held.
fn write_names(out: &mut String, folded: u64, interned: usize) {
    celery::header(
        out,
        (
            "celeriac_task_names_folded_total",
            "Task names met beyond --max-task-names, counted under name=\"other\" (metrics, task types, dashboard).",
        ),
        "counter",
    );
    out.push_str("celeriac_task_names_folded_total ");
    celery::push_u64(out, folded);
    out.push('\n');
    celery::header(
        out,
        (
            "celeriac_interned_strings",
            "Distinct task names, hostnames and queues held; those nothing retained holds are freed once they doubled.",
        ),
        "gauge",
    );
    out.push_str("celeriac_interned_strings ");
    celery::push_u64(out, interned as u64);
    out.push('\n');
}

fn saturating_i64(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests;
