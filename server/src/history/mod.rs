//! Task history that survives restarts and outgrows memory.
//!
//! The store (`store`: embedded SQLite by default, PostgreSQL for replicas)
//! keeps each task's latest state, the audit log and workers last seen.
//! It is never on the ingest path: a change-feed subscriber (`writer`)
//! notes which tasks changed in a bounded backlog, and a writer task reads
//! their records under short read locks and writes them in batched
//! transactions. A slow or absent store only grows the backlog, then drops
//! (and counts) what overflows. At start-up the newest tasks are loaded
//! back into memory; queries beyond memory read the store (`reader`).

pub mod args;
pub mod backlog;
pub mod export;
pub mod plan;
pub mod reader;
pub mod record;
pub mod schema;
pub mod store;
pub mod target;
pub mod writer;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use api::control::AuditEntry;
use parking_lot::{Mutex, RwLock};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Registry};
use tokio::sync::Notify;

use crate::clock::now;
use crate::metrics::register;
use crate::state::State;

pub use args::HistoryArgs;
pub use backlog::Backlog;
pub use store::{Store, StoreError};
pub use target::Target;

/// Audit entries waiting to be written, at most (control actions are rare;
/// this only fills while the store is down).
const AUDIT_BACKLOG: usize = 10_000;
/// Tasks put back into memory per write lock at start-up.
const RESTORE_CHUNK: usize = 5_000;

/// The history store as everyone else sees it: its settings, the open
/// store (once it opened), what waits to be written and how writing goes.
pub struct History {
    pub target: Target,
    pub args: HistoryArgs,
    store: RwLock<Option<Store>>,
    pub(crate) backlog: Mutex<Backlog>,
    pub(crate) audit: Mutex<std::collections::VecDeque<AuditEntry>>,
    /// A worker changed since workers were last written.
    pub(crate) workers_changed: AtomicBool,
    pub(crate) wake: Notify,
    /// Tasks the writer took from the backlog and has not written yet.
    pub(crate) inflight: AtomicU64,
    /// The store held at least as many tasks as memory when loaded, so
    /// it may hold more.
    fuller: AtomicBool,
    status: Mutex<Status>,
    pub metrics: HistoryMetrics,
}

#[derive(Debug, Default, Clone)]
struct Status {
    up: bool,
    loaded: bool,
    last_write_at: Option<f64>,
    last_error: Option<String>,
    last_error_at: Option<f64>,
}

impl History {
    /// `None` for `--db none`.
    pub fn new(args: &HistoryArgs, registry: &Registry) -> Option<History> {
        let target = args.target()?;
        Some(History {
            target,
            args: args.clone(),
            store: RwLock::new(None),
            backlog: Mutex::new(Backlog::new(args.db_backlog)),
            audit: Mutex::new(Default::default()),
            workers_changed: AtomicBool::new(false),
            wake: Notify::new(),
            inflight: AtomicU64::new(0),
            fuller: AtomicBool::new(false),
            status: Mutex::new(Status::default()),
            metrics: HistoryMetrics::new(registry),
        })
    }

    /// The store, once it opened.
    pub fn store(&self) -> Option<Store> {
        self.store.read().clone()
    }

    /// Opens and migrates the store.
    pub async fn open(&self) -> Result<Store, StoreError> {
        match Store::open(&self.target).await {
            Ok(store) => {
                *self.store.write() = Some(store.clone());
                self.succeeded(None);
                Ok(store)
            }
            Err(e) => {
                self.failed(&e);
                Err(e)
            }
        }
    }

    /// Puts the newest `max_tasks` stored tasks back into memory, and the
    /// audit log's newest entries, with one progress line. Ready waits for
    /// this.
    pub async fn load(
        &self,
        store: &Store,
        state: &RwLock<State>,
        audit: &crate::audit::Audit,
    ) -> Result<usize, StoreError> {
        let started = Instant::now();
        let max = state.read().limits().max_tasks;
        tracing::info!(store = %self.target.describe(), "loading history (up to {max} tasks)");
        let tasks = store.recent(max).await?;
        let n = tasks.len();
        for chunk in tasks.chunks(RESTORE_CHUNK) {
            let mut s = state.write();
            for (t, _) in chunk {
                s.restore(t);
            }
        }
        if n >= max {
            self.fuller.store(true, Ordering::Relaxed);
        }
        let entries = store.audit(crate::audit::AUDIT_CAPACITY).await?;
        audit.restore(entries);
        self.status.lock().loaded = true;
        tracing::info!(
            tasks = n,
            seconds = started.elapsed().as_secs_f64(),
            "history loaded: {n} tasks back in memory"
        );
        Ok(n)
    }

    /// Queues an audit entry for the store (the audit log's sink).
    pub fn record_audit(&self, entry: &AuditEntry) {
        let mut q = self.audit.lock();
        if q.len() >= AUDIT_BACKLOG {
            q.pop_front();
            self.metrics.dropped.inc();
        }
        q.push_back(entry.clone());
        drop(q);
        self.wake.notify_one();
    }

    pub(crate) fn succeeded(&self, wrote_at: Option<f64>) {
        let mut s = self.status.lock();
        s.up = true;
        if wrote_at.is_some() {
            s.last_write_at = wrote_at;
        }
        self.metrics.up.set(1);
    }

    pub(crate) fn failed(&self, e: &StoreError) {
        let mut s = self.status.lock();
        if s.up || s.last_error.is_none() {
            tracing::warn!(store = %self.target.describe(), error = %e, "history store unavailable; writes wait in the backlog");
        }
        s.up = false;
        s.last_error = Some(e.to_string());
        s.last_error_at = Some(now());
        self.metrics.up.set(0);
    }

    pub(crate) fn store_fuller_than_memory(&self) -> bool {
        self.fuller.load(Ordering::Relaxed)
    }

    pub fn loaded(&self) -> bool {
        self.status.lock().loaded
    }

    /// What `/readyz` says about the store.
    pub fn detail(&self) -> api::health::HistoryDetail {
        let s = self.status.lock().clone();
        let (backlog, dropped) = {
            let b = self.backlog.lock();
            (b.len() as u64, b.dropped())
        };
        let backlog =
            backlog + self.inflight.load(Ordering::Relaxed) + self.audit.lock().len() as u64;
        api::health::HistoryDetail {
            backend: self.target.backend().into(),
            location: self.target.describe(),
            up: s.up,
            loaded: s.loaded,
            backlog,
            dropped,
            last_write_at: s.last_write_at,
            last_error: s.last_error,
            last_error_at: s.last_error_at,
        }
    }

    /// Sets the backlog gauge: waiting plus taken but not written.
    pub(crate) fn show_backlog(&self, waiting: usize) {
        let total = waiting as u64 + self.inflight.load(Ordering::Relaxed);
        self.metrics.backlog.set(total.min(i64::MAX as u64) as i64);
    }

    /// Marks that a worker changed (written with the next batch).
    pub(crate) fn worker_changed(&self) {
        self.workers_changed.store(true, Ordering::Relaxed);
    }
}

/// The store's own health, exported with celeriac's self metrics.
pub struct HistoryMetrics {
    pub backlog: IntGauge,
    pub written: IntCounter,
    pub write_errors: IntCounter,
    pub dropped: IntCounter,
    pub write_seconds: Histogram,
    pub trimmed: IntCounter,
    pub up: IntGauge,
}

impl HistoryMetrics {
    fn new(registry: &Registry) -> HistoryMetrics {
        let counter = |name: &str, help: &str| {
            register(registry, IntCounter::new(name, help).expect("valid metric"))
        };
        let gauge = |name: &str, help: &str| {
            register(registry, IntGauge::new(name, help).expect("valid metric"))
        };
        let buckets = vec![
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let write_seconds = HistogramOpts::new(
            "celeriac_history_write_seconds",
            "Time to write one batch of tasks to the history store",
        )
        .buckets(buckets);
        let write_seconds = register(
            registry,
            Histogram::with_opts(write_seconds).expect("valid metric"),
        );
        HistoryMetrics {
            backlog: gauge(
                "celeriac_history_backlog",
                "Changed tasks waiting to be written to the history store",
            ),
            written: counter(
                "celeriac_history_written_total",
                "Task records written to the history store",
            ),
            write_errors: counter(
                "celeriac_history_write_errors_total",
                "Failed attempts to write to (or open) the history store",
            ),
            dropped: counter(
                "celeriac_history_dropped_total",
                "Changes not written because the backlog was full (or, on a change-feed \
                 overflow, tasks evicted unseen)",
            ),
            write_seconds,
            trimmed: counter(
                "celeriac_history_trimmed_total",
                "Tasks deleted from the history store by retention",
            ),
            up: gauge(
                "celeriac_history_up",
                "1 when the last attempt to reach the history store worked",
            ),
        }
    }
}
