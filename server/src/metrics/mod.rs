//! Prometheus: celeriac's self metrics and the Celery metrics folded from state.
mod celery;
mod self_metrics;

pub use celery::{write_task_series, write_workers};
pub use self_metrics::{SelfMetrics, LAG_BUCKETS};

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
        let series: Vec<TaskSeries<'_>> = state.task_series().collect();
        write_task_series(out, &series);
        drop(series);
        let workers = state.workers(now);
        let (tasks, workers_n, evicted) = (
            state.task_count(),
            state.worker_count(),
            state.evicted_tasks(),
        );
        drop(state);
        write_workers(out, &workers);
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

fn saturating_i64(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests;
