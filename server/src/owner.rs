//! The state owner: the one task that writes `State`.
//!
//! Why a write lock and one owner task, rather than a task that owns the
//! state outright and answers queries over a channel: readers (HTTP
//! handlers, the `/metrics` collector) need consistent views of the model
//! cheaply and often, and a read lock gives them one in place, with no
//! copying and no round trip through a queue that ingest would compete for.
//! The owner takes the write lock once per batch (hundreds of events), so
//! readers wait at most one batch's application, and the lock is never held
//! across an await or an I/O operation. It also ticks the change feed
//! (`feed`): the marks are taken under the write lock, and the subscribers
//! then run on this task under read locks, so the state cannot change under
//! them.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use crate::events::Event;
use crate::feed::Feed;
use crate::ingest::BatchReceiver;
use clap::builder::TypedValueParser;

use crate::clock::now;
use crate::metrics::SelfMetrics;
use crate::redact::Redactor;
use crate::shutdown::Shutdown;
use crate::state::{Limits, State, DEFAULT_MAX_TASKS, DEFAULT_MAX_WORKERS};
use crate::telemetry::LastEvent;

/// How often liveness and eviction run when no event arrives (workers go
/// offline by the passage of time alone).
pub const TICK_INTERVAL: Duration = Duration::from_secs(1);

/// What the state retains; with the metrics' buckets this makes
/// [`crate::state::Limits`].
#[derive(Debug, Clone, clap::Args)]
pub struct StateArgs {
    /// Tasks kept in memory; the oldest are evicted beyond this.
    #[arg(long, env = "CELERIAC_MAX_TASKS", default_value_t = DEFAULT_MAX_TASKS, value_parser = clap::value_parser!(u64).range(1..).map(|v| v as usize))]
    pub max_tasks: usize,

    /// Workers kept in memory; the longest-silent are evicted beyond this.
    #[arg(long, env = "CELERIAC_MAX_WORKERS", default_value_t = DEFAULT_MAX_WORKERS, value_parser = clap::value_parser!(u64).range(1..).map(|v| v as usize))]
    pub max_workers: usize,

    /// Forget workers offline for longer than this many seconds.
    #[arg(long, env = "CELERIAC_PURGE_OFFLINE_WORKERS", value_name = "SECONDS")]
    pub purge_offline_workers: Option<u64>,
}

impl StateArgs {
    /// The state's bounds, with the histogram buckets the metrics chose.
    pub fn limits(&self, metrics: &crate::metrics::MetricsArgs) -> Limits {
        Limits {
            max_tasks: self.max_tasks,
            max_workers: self.max_workers,
            purge_offline_after: self.purge_offline_workers.map(|s| s as f64),
            max_task_names: metrics.max_task_names,
            runtime_buckets: metrics.runtime_buckets.bounds().clone(),
            queue_wait_buckets: metrics.queue_wait_buckets.bounds().clone(),
        }
    }
}

/// What the state owner writes and who it tells.
pub struct Owner {
    pub state: Arc<RwLock<State>>,
    pub metrics: Arc<SelfMetrics>,
    pub last_event: Arc<LastEvent>,
    /// Everyone told what changed, once per feed tick.
    pub feed: Feed,
    /// `--redact-keys`, applied to each batch before it is applied, so
    /// every reader (and the history store) only ever sees masked text.
    pub redactor: Redactor,
}

impl Owner {
    /// Applies batches until ingest hangs up or shutdown is requested, and
    /// ticks the state about once a second either way.
    pub async fn run(mut self, mut batches: BatchReceiver, mut shutdown: Shutdown) {
        let mut ticker = tokio::time::interval(TICK_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut feed_ticker = tokio::time::interval(crate::feed::INTERVAL);
        feed_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.fired() => {
                    // The last changes still reach the subscribers (history
                    // writes them on its way out).
                    self.feed.publish(&self.state, now());
                    return;
                }
                batch = batches.recv() => match batch {
                    Some(mut batch) => {
                        self.mask_batch(&mut batch);
                        self.apply_batch(&batch);
                        batches.recycle(batch);
                    }
                    None => return,
                },
                _ = ticker.tick() => self.state.write().tick(now()),
                _ = feed_ticker.tick() => self.feed.publish(&self.state, now()),
            }
        }
    }

    /// Masks the values of `--redact-keys` in task args, kwargs and
    /// results, outside the lock.
    pub fn mask_batch(&self, events: &mut [Event]) {
        if self.redactor.is_empty() {
            return;
        }
        for e in events {
            self.redactor.mask_field(&mut e.args);
            self.redactor.mask_field(&mut e.kwargs);
            self.redactor.mask_field(&mut e.result);
        }
    }

    /// Applies one batch under one write lock with one clock read, then
    /// updates the self metrics outside the lock. Returns the `now` it used.
    pub fn apply_batch(&self, events: &[Event]) -> f64 {
        let now = now();
        {
            let mut state = self.state.write();
            for event in events {
                state.apply(event, now);
            }
        }
        if events.is_empty() {
            return now;
        }
        // A local histogram buffers the observations and flushes them in one
        // go, instead of a few atomic operations per event.
        let lag = self.metrics.ingest_lag.local();
        for event in events {
            lag.observe((now - event.timestamp).max(0.0));
        }
        lag.flush();
        self.metrics.events_ingested.inc_by(events.len() as u64);
        self.last_event.set(now);
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::decode_body;
    use crate::ingest::batch_channel;
    use crate::shutdown::ShutdownTrigger;

    fn owner() -> Owner {
        let app = crate::test_app(&[]);
        Owner {
            state: app.state.clone(),
            metrics: app.metrics.clone(),
            last_event: app.last_event.clone(),
            feed: Feed::default(),
            redactor: Redactor::new(crate::redact::DEFAULT_REDACT_KEYS),
        }
    }

    #[test]
    fn secrets_are_masked_before_the_state_sees_them() {
        let s = owner();
        let body = r#"{"type": "task-received", "hostname": "w", "timestamp": 1, "uuid": "u1",
            "name": "t", "args": "({'token': 'abc'},)",
            "kwargs": "{'password': 'hunter2', 'user': 'x'}"}"#;
        let mut batch = events(&[body.to_string()]);
        s.mask_batch(&mut batch);
        s.apply_batch(&batch);
        let state = s.state.read();
        let text = format!("{:?}", state.task("u1").map(|t| (t.args, t.kwargs)));
        assert!(text.contains("'password': '••••', 'user': 'x'"), "{text}");
        assert!(
            text.contains("'token': '••••'") && !text.contains("hunter2"),
            "{text}"
        );
    }

    fn events(bodies: &[String]) -> Vec<Event> {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for b in bodies {
            decode_body(b.as_bytes(), &mut out, &mut errors);
        }
        assert!(errors.is_empty(), "{errors:?}");
        out
    }

    fn task(uuid: &str, kind: &str, timestamp: f64) -> String {
        format!(
            r#"[{{"hostname": "w1@vm", "utcoffset": 0.0, "pid": 1, "clock": 1, "uuid": "{uuid}", "name": "tasks.add", "timestamp": {timestamp}, "type": "{kind}"}}]"#
        )
    }

    #[test]
    fn a_batch_is_applied_counted_and_its_lag_observed_clamped() {
        let s = owner();
        let past = now() - 2.0;
        let future = now() + 1000.0;
        let batch = events(&[
            task("a", "task-received", past),
            task("b", "task-received", future),
        ]);
        let applied_at = s.apply_batch(&batch);
        assert_eq!(s.state.read().task_count(), 2);
        assert_eq!(s.metrics.events_ingested.get(), 2);
        assert_eq!(s.last_event.get(), Some(applied_at));
        let lag = &s.metrics.ingest_lag;
        assert_eq!(lag.get_sample_count(), 2);
        // Only the past event contributes; a clock-skewed future one is 0.
        let sum = lag.get_sample_sum();
        assert!((1.9..10.0).contains(&sum), "{sum}");
    }

    #[tokio::test]
    async fn the_owner_applies_what_arrives_and_stops_when_ingest_hangs_up() {
        let s = owner();
        let state = s.state.clone();
        let (_trigger, shutdown) = ShutdownTrigger::new();
        let (tx, rx) = batch_channel(2);
        let owner = tokio::spawn(s.run(rx, shutdown));
        tx.send(events(&[task("a", "task-started", now())]))
            .await
            .unwrap();
        drop(tx);
        tokio::time::timeout(Duration::from_secs(5), owner)
            .await
            .expect("owner ends when ingest hangs up")
            .unwrap();
        assert_eq!(state.read().task_count(), 1);
    }
}
