//! Writing history off the ingest path.
//!
//! [`HistoryFeed`] is a change-feed subscriber: on the state owner's task,
//! between batches, it only notes ids in the backlog (and, for a task
//! evicted before its last state was written, renders that record while it
//! still can). [`run`] is the writer task: it takes a batch from the
//! backlog, reads the records under a short read lock, writes them in one
//! transaction, and retries with backoff while the store is down, holding
//! that one batch; everything newer waits, coalesced, in the backlog. The
//! same task trims what retention lets go, in small batches.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;

use super::backlog::Pending;
use super::store::{Store, StoreError, TaskWrite};
use super::History;
use crate::audit::Audit;
use crate::clock::now;
use crate::feed::{Changes, StateReader, Subscriber};
use crate::shutdown::Shutdown;
use crate::state::State;

/// Tasks per write transaction, at most.
pub const BATCH: usize = 5_000;
/// Batches written before the writer trims or writes workers.
const BATCHES_PER_STEP: usize = 8;
/// How often the writer looks at the backlog when nobody wakes it.
const IDLE: Duration = Duration::from_millis(500);
/// Waits between attempts while the store is down.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How often retention runs, and how much one statement deletes.
const TRIM_EVERY: Duration = Duration::from_secs(60);
const TRIM_BATCH: u64 = 5_000;
/// Workers are written at most this often.
const WORKERS_EVERY: Duration = Duration::from_secs(5);
/// How long the writer waits at shutdown for the owner's last feed tick.
const LAST_TICK: Duration = Duration::from_millis(100);
/// How long shutdown waits for the backlog to be written.
const FLUSH_ON_SHUTDOWN: Duration = Duration::from_secs(3);

/// The change-feed subscriber that fills the backlog.
pub struct HistoryFeed {
    pub history: Arc<History>,
    /// The state's eviction count when last told: on an overflow, what was
    /// evicted unseen is this far behind.
    pub evicted_seen: u64,
}

impl Subscriber for HistoryFeed {
    fn on_changes(&mut self, changes: &Changes, state: &StateReader<'_>, _now: f64) {
        let h = &self.history;
        if changes.workers {
            h.worker_changed();
        }
        let state = state.read();
        let evicted_now = state.evicted_tasks();
        let mut backlog = h.backlog.lock();
        let before = backlog.dropped();
        if changes.overflow {
            // The lists are gone: every retained task may have changed, and
            // whatever was evicted meanwhile is lost to history.
            let reported = changes.evicted.len() as u64;
            let lost = evicted_now
                .saturating_sub(self.evicted_seen)
                .saturating_sub(reported);
            h.metrics.dropped.inc_by(lost);
            for id in state.task_ids() {
                backlog.mark(&id);
            }
        }
        for id in &changes.tasks {
            backlog.mark(id);
        }
        for ev in &changes.evicted {
            if ev.changed || backlog.contains(&ev.id) {
                backlog.evicted(&ev.id, state.evicted_task(ev));
            }
        }
        self.evicted_seen = evicted_now;
        h.metrics.dropped.inc_by(backlog.dropped() - before);
        h.show_backlog(backlog.len());
        let waiting = !backlog.is_empty();
        drop(backlog);
        if waiting {
            h.wake.notify_one();
        }
    }
}

/// The writer task: until shutdown, then one last bounded flush.
pub async fn run(
    history: Arc<History>,
    state: Arc<RwLock<State>>,
    audit: Arc<Audit>,
    mut shutdown: Shutdown,
) {
    let mut writer = Writer {
        history,
        state,
        audit,
        inflight: Vec::new(),
        backoff: BACKOFF_MIN,
        last_trim: Instant::now(),
        last_workers: Instant::now(),
    };
    let mut failing = false;
    loop {
        let wait = if failing {
            writer.backoff
        } else if writer.has_work() {
            Duration::ZERO
        } else {
            IDLE
        };
        tokio::select! {
            _ = shutdown.fired() => break,
            _ = writer.history.wake.notified(), if !failing => {}
            _ = tokio::time::sleep(wait) => {}
        }
        match writer.step().await {
            Ok(()) => {
                failing = false;
                writer.backoff = BACKOFF_MIN;
            }
            Err(e) => {
                failing = true;
                writer.history.metrics.write_errors.inc();
                writer.history.failed(&e);
                writer.backoff = (writer.backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
    let flush = async {
        // The owner tells its last changes on the way out; let it.
        tokio::time::sleep(LAST_TICK).await;
        while writer.has_work() {
            if writer.step().await.is_err() {
                break;
            }
        }
    };
    if tokio::time::timeout(FLUSH_ON_SHUTDOWN, flush)
        .await
        .is_err()
    {
        tracing::warn!("history: shutting down with changes not yet written");
    }
}

struct Writer {
    history: Arc<History>,
    state: Arc<RwLock<State>>,
    audit: Arc<Audit>,
    /// A batch taken from the backlog and not written yet (the store was
    /// down): written before anything newer.
    inflight: Vec<TaskWrite>,
    backoff: Duration,
    last_trim: Instant,
    last_workers: Instant,
}

impl Writer {
    fn has_work(&self) -> bool {
        !self.inflight.is_empty()
            || !self.history.backlog.lock().is_empty()
            || !self.history.audit.lock().is_empty()
    }

    /// Opens the store if need be, then writes until the backlog is empty;
    /// trims and writes workers when their time has come.
    async fn step(&mut self) -> Result<(), StoreError> {
        let store = match self.history.store() {
            Some(s) => s,
            None => self.open().await?,
        };
        self.write_audit(&store).await?;
        // A few batches, then trimming and the workers get their turn.
        for _ in 0..BATCHES_PER_STEP {
            if self.inflight.is_empty() {
                self.inflight = self.take();
            }
            if self.inflight.is_empty() {
                break;
            }
            let h = &self.history;
            h.inflight
                .store(self.inflight.len() as u64, Ordering::Relaxed);
            let started = Instant::now();
            store.upsert(&self.inflight).await?;
            let h = &self.history;
            h.metrics
                .write_seconds
                .observe(started.elapsed().as_secs_f64());
            h.metrics.written.inc_by(self.inflight.len() as u64);
            h.succeeded(Some(now()));
            self.inflight.clear();
            h.inflight.store(0, Ordering::Relaxed);
            h.show_backlog(h.backlog.lock().len());
        }
        if self.history.workers_changed.load(Ordering::Relaxed)
            && self.last_workers.elapsed() >= WORKERS_EVERY
        {
            self.history.workers_changed.store(false, Ordering::Relaxed);
            self.last_workers = Instant::now();
            let workers = self.state.read().workers(now());
            store.upsert_workers(&workers).await?;
        }
        if self.last_trim.elapsed() >= TRIM_EVERY {
            self.last_trim = Instant::now();
            self.trim(&store).await?;
        }
        Ok(())
    }

    /// A store that was down at start-up: open it, and load it into memory
    /// as start-up would have.
    async fn open(&mut self) -> Result<Store, StoreError> {
        let store = self.history.open().await?;
        if !self.history.loaded() {
            self.history.load(&store, &self.state, &self.audit).await?;
        }
        Ok(store)
    }

    /// The next batch, read under one read lock; the backlog is taken
    /// under that lock too, so a task cannot be evicted between leaving
    /// the backlog and being read (its eviction would then find it neither
    /// pending nor changed, and history would miss its last state).
    fn take(&self) -> Vec<TaskWrite> {
        let state = self.state.read();
        let mut backlog = self.history.backlog.lock();
        let taken = backlog.take(BATCH);
        self.history
            .inflight
            .store(taken.len() as u64, Ordering::Relaxed);
        self.history.show_backlog(backlog.len());
        drop(backlog);
        let seen = now();
        taken
            .into_iter()
            .filter_map(|(id, pending)| {
                let task = match pending {
                    Pending::Evicted(t) => *t,
                    Pending::InState => state.task(id.as_str())?.to_api(),
                };
                Some(TaskWrite { task, seen })
            })
            .collect()
    }

    async fn write_audit(&self, store: &Store) -> Result<(), StoreError> {
        loop {
            let Some(entry) = self.history.audit.lock().front().cloned() else {
                return Ok(());
            };
            store.record_audit(&entry).await?;
            self.history.audit.lock().pop_front();
        }
    }

    /// Deletes what retention lets go, a batch at a time, yielding between
    /// batches so writes are never held up for long.
    async fn trim(&self, store: &Store) -> Result<(), StoreError> {
        let args = &self.history.args;
        let t = now();
        loop {
            let gone = store
                .trim_expired(
                    t - args.history_retention,
                    t - args.history_failed_retention,
                    TRIM_BATCH,
                )
                .await?;
            self.history.metrics.trimmed.inc_by(gone);
            if gone < TRIM_BATCH {
                break;
            }
            tokio::task::yield_now().await;
        }
        if let Some(max) = args.history_max_tasks {
            let mut excess = store.count().await?.saturating_sub(max);
            while excess > 0 {
                let gone = store.trim_oldest(excess.min(TRIM_BATCH)).await?;
                self.history.metrics.trimmed.inc_by(gone);
                if gone == 0 {
                    break;
                }
                excess = excess.saturating_sub(gone);
                tokio::task::yield_now().await;
            }
        }
        Ok(())
    }
}
