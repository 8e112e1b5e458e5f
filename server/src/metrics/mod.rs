//! Prometheus: celeriac's self metrics and the Celery metrics folded from state.
mod broker;
mod buckets;
mod celery;
mod flower;
mod fold;
mod self_metrics;
pub mod statsd;
mod task_page;

pub use broker::write_queues;
pub use buckets::{parse_buckets, Buckets};

/// Distinct task names exported per metric by default (`--max-task-names`).
pub const DEFAULT_MAX_TASK_NAMES: usize = 500;

pub use celery::write_workers;
pub use self_metrics::{SelfMetrics, LAG_BUCKETS};
pub use task_page::{write_task_series, TaskPage};

use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use prometheus::TextEncoder;

use crate::shared::Shared;
use crate::state::TaskSeries;

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The whole `/metrics` page: the Celery families from the state's
/// counters (one read lock, no scan over tasks), then celeriac's own.
pub fn render(shared: &Shared, now: f64) -> String {
    let mut out = String::new();
    render_into(shared, now, &mut out);
    out
}

/// [`render`] into a buffer kept from the previous scrape. A page of
/// thousands of series is tens of megabytes, and faulting in that much
/// fresh memory on every scrape costs more than formatting it.
pub fn render_page(shared: &Shared, now: f64) -> Page {
    let mut out = SPARE.lock().take().unwrap_or_default();
    render_into(shared, now, &mut out);
    Page(out)
}

/// A rendered page; its buffer goes back for the next scrape once the
/// response has been sent.
pub struct Page(String);

impl AsRef<[u8]> for Page {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        // Keep what the next page will need, not the peak of a burst of
        // series that has since been purged.
        if buf.capacity() > 2 * buf.len() + (1 << 20) {
            return;
        }
        buf.clear();
        *SPARE.lock() = Some(buf);
    }
}

static SPARE: Mutex<Option<String>> = Mutex::new(None);

/// Length of the last page rendered, to size the next one: growing a
/// multi-megabyte buffer by doubling copies it several times over.
static LAST_LEN: AtomicUsize = AtomicUsize::new(0);

fn render_into(shared: &Shared, now: f64, out: &mut String) {
    out.clear();
    out.reserve(LAST_LEN.load(Ordering::Relaxed) / 8 * 9 + 4096);
    {
        let state = shared.state.read();
        let mut series: Vec<TaskSeries<'_>> = state.task_series().collect();
        let folded = fold::fold(&mut series, shared.config.max_task_names);
        series.extend(folded.series());
        {
            let mut page = shared.metrics.task_page.lock();
            page.get_or_insert_with(|| TaskPage::new(shared.config.queue_wait_buckets.bounds()))
                .write(out, &series);
        }
        write_names_folded(out, folded.names_folded);
        let workers = state.workers(now);
        if shared.config.flower_metrics {
            flower::write_flower(out, &series, &workers);
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
    }
    let families = shared.metrics.registry.gather();
    if let Err(e) = TextEncoder::new().encode_utf8(&families, out) {
        // Only reachable with a malformed self metric, a bug; the Celery
        // families above are still worth serving.
        tracing::error!("encoding self metrics: {e}");
    }
    LAST_LEN.store(out.len(), Ordering::Relaxed);
}

fn write_names_folded(out: &mut String, n: usize) {
    celery::header(
        out,
        (
            "celeriac_metrics_task_names_folded",
            "Distinct task names beyond --max-task-names, exported as name=\"other\".",
        ),
        "gauge",
    );
    out.push_str("celeriac_metrics_task_names_folded ");
    celery::push_u64(out, n as u64);
    out.push('\n');
}

fn saturating_i64(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests;
