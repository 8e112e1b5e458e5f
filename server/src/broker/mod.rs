//! Queue statistics: what the cluster's queues hold and who consumes them,
//! as one [`Snapshot`] that readers (`/api/queues/length`, `/metrics`,
//! statsd, alerts) clone cheaply, and the [`Poller`] that refreshes it every
//! `--broker-stats-interval` from a transport's [`QueueSource`] (on RabbitMQ:
//! the management API, else a passive `queue.declare` per known queue; see
//! `transport/amqp/queue_stats.rs`). Like ingest, the poller only produces
//! inputs; it never touches readers.

mod args;
mod several;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use serde::Serialize;

use crate::shutdown::Shutdown;
use crate::state::State;

pub use args::{QueueStatsArgs, DEFAULT_POLL_INTERVAL_SECS};
pub use several::Several;

/// Where queue statistics came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The RabbitMQ management HTTP API.
    Management,
    /// Passive `queue.declare` over AMQP.
    Amqp,
    /// `LLEN` of each queue's lists on Redis.
    Redis,
}

/// One value per source, indexed as [`Source::ALL`].
pub type PerSource<T> = [T; Source::ALL.len()];

impl Source {
    pub const ALL: [Source; 3] = [Source::Management, Source::Amqp, Source::Redis];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Management => "management",
            Source::Amqp => "amqp",
            Source::Redis => "redis",
        }
    }
}

/// One queue, as Flower's `/api/queues/length` lists it. Fields a source
/// cannot tell are `None` (and left out of the JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueStat {
    pub name: String,
    /// Ready + unacknowledged. The AMQP fallback only knows ready messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<u64>,
    /// Waiting for delivery: `celery_queue_length`, from either source.
    pub messages_ready: u64,
    /// Delivered, not acked yet (includes worker prefetch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages_unacknowledged: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumers: Option<u64>,
    /// Messages published per second (management stats).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_rate: Option<f64>,
    /// Messages delivered (or got) per second (management stats).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliver_rate: Option<f64>,
    /// Present only while the queue is idle, as RabbitMQ formats it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_since: Option<String>,
    /// `classic`, `quorum` or `stream` (management API only).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub queue_type: Option<String>,
    /// The management API's other keys of the queue object (Flower answers
    /// the whole object), secrets masked; `None` from other sources.
    #[serde(skip)]
    pub management: Option<Arc<serde_json::Map<String, serde_json::Value>>>,
}

/// The latest poll.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The source of `queues`; `None` until a poll succeeded.
    pub source: Option<Source>,
    /// Sorted by name.
    pub queues: Vec<QueueStat>,
    /// Whether the last attempt of each source worked (`Source::ALL` order).
    pub up: PerSource<bool>,
    /// Failed polls per source.
    pub errors: PerSource<u64>,
    /// How long the last poll took, seconds.
    pub duration: f64,
    /// Why the last failing source failed.
    pub last_error: Option<String>,
    /// Wall-clock time (epoch seconds) of the last poll that got figures
    /// from some source, this one or an earlier one.
    pub last_success_at: Option<f64>,
    /// Wall-clock time of the last poll where a source failed.
    pub last_error_at: Option<f64>,
    /// Messages waiting in RabbitMQ's native delayed delivery cascade
    /// (`celery_delayed_0` … `_27`): ETA and countdown tasks of quorum
    /// queues, due later, in no application queue yet. `None` when the
    /// vhost has no cascade.
    pub scheduled_broker_side: Option<u64>,
}

/// What one worker consumes, for `celery_active_worker_count` and
/// `celery_active_process_count`, and its time limits, for stuck tasks and
/// the capacity advice. Events do not carry it: it comes from `inspect active_queues`,
/// `inspect stats` and `inspect conf` (the remote-control work fills it
/// through [`BrokerStats::set_worker_queues`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerQueues {
    pub queues: Vec<String>,
    /// Pool processes (`len(stats.pool.processes)`).
    pub processes: u64,
    /// `conf.task_time_limit`, seconds, when the worker sets one.
    pub task_time_limit: Option<f64>,
    /// `conf.task_soft_time_limit`, seconds, when the worker sets one.
    pub task_soft_time_limit: Option<f64>,
}

/// Shared between the poller (writer) and readers.
#[derive(Debug, Default)]
pub struct BrokerStats {
    snapshot: RwLock<Arc<Snapshot>>,
    workers: RwLock<std::collections::BTreeMap<String, WorkerQueues>>,
}

impl BrokerStats {
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.read().clone()
    }

    pub fn publish(&self, snapshot: Snapshot) {
        *self.snapshot.write() = Arc::new(snapshot);
    }

    /// Records the queues a worker consumes (from inspect).
    pub fn set_worker_queues(&self, hostname: &str, queues: WorkerQueues) {
        self.workers.write().insert(hostname.to_owned(), queues);
    }

    pub fn forget_worker(&self, hostname: &str) {
        self.workers.write().remove(hostname);
    }

    pub fn worker_queues(&self) -> std::collections::BTreeMap<String, WorkerQueues> {
        self.workers.read().clone()
    }
}

/// Celery's and celeriac's plumbing queues, left out unless `--queues`
/// names them: pidbox mailboxes and replies, other monitors' event queues.
pub fn is_internal(name: &str) -> bool {
    name.ends_with(".pidbox")
        || name.starts_with("celeryev.")
        || name.starts_with("celeriac.")
        || name.starts_with("amq.")
        || is_delayed_cascade(name)
}

/// The levels of kombu's native delayed delivery on RabbitMQ:
/// `celery_delayed_0` to `celery_delayed_27`, each holding messages for
/// 2^level seconds before passing them down (docs/celery-protocol.md §9).
pub fn is_delayed_cascade(name: &str) -> bool {
    name.strip_prefix("celery_delayed_")
        .and_then(|level| level.parse::<u8>().ok())
        .is_some_and(|level| level <= 27)
}

/// Keeps the queues `--queues` asks for, or all non-internal ones.
pub fn wanted(name: &str, only: &[String]) -> bool {
    if only.is_empty() {
        !is_internal(name)
    } else {
        only.iter().any(|q| q == name)
    }
}

/// One poll of queue statistics: the figures of the source that answered,
/// and how each source fared (indexed as [`Source::ALL`]).
#[derive(Debug, Default)]
pub struct QueuePoll {
    pub result: Option<(Source, Vec<QueueStat>)>,
    pub up: PerSource<bool>,
    pub failed: PerSource<bool>,
    pub last_error: Option<String>,
    /// See [`Snapshot::scheduled_broker_side`].
    pub scheduled_broker_side: Option<u64>,
}

/// Where queue statistics come from: a transport's poller.
pub trait QueueSource: Send {
    /// One poll. `known_queues` names the queues to probe when the source
    /// cannot list them itself; it is only called then.
    fn poll(
        &mut self,
        known_queues: impl FnOnce() -> Vec<String> + Send,
    ) -> impl std::future::Future<Output = QueuePoll> + Send;

    fn close(self) -> impl std::future::Future<Output = ()> + Send;
}

/// The queue statistics task: polls the transport every `interval` and
/// publishes each result in `stats`.
pub struct Poller {
    /// Read for the queues the cluster is known to use.
    pub state: Arc<RwLock<State>>,
    pub stats: Arc<BrokerStats>,
    pub interval: Duration,
    /// `--queues`: only these.
    pub only: Vec<String>,
}

impl Poller {
    /// Polls until shutdown.
    pub async fn run(self, mut client: impl QueueSource, mut shutdown: Shutdown) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut previous: Option<Source> = None;
        let mut errors: PerSource<u64> = Default::default();
        let mut last_names: BTreeSet<String> = BTreeSet::new();
        loop {
            tokio::select! {
                _ = shutdown.fired() => break,
                _ = ticker.tick() => {}
            }
            let started = Instant::now();
            let poll = tokio::select! {
                _ = shutdown.fired() => break,
                p = client.poll(|| self.known_queues(&last_names)) => p,
            };
            for (n, failed) in errors.iter_mut().zip(poll.failed) {
                *n += u64::from(failed);
            }
            let scheduled_broker_side = poll.scheduled_broker_side;
            let (result, up, last_error) = (poll.result, poll.up, poll.last_error);
            let source = result.as_ref().map(|(s, _)| *s);
            if source != previous {
                match (source, &last_error) {
                    (Some(s), Some(e)) => {
                        tracing::warn!("queue statistics now from {} ({e})", s.as_str())
                    }
                    (Some(s), None) => tracing::info!("queue statistics from {}", s.as_str()),
                    (None, e) => tracing::warn!(
                        "queue statistics unavailable: {}",
                        e.as_deref().unwrap_or("no source")
                    ),
                }
                previous = source;
            }
            // For `/readyz`: when the figures were last fresh and when a source
            // last failed, carried across polls.
            let prev = self.stats.snapshot();
            let now = crate::clock::now();
            let mut snapshot = Snapshot {
                source,
                up,
                errors,
                duration: started.elapsed().as_secs_f64(),
                last_success_at: if source.is_some() {
                    Some(now)
                } else {
                    prev.last_success_at
                },
                last_error_at: if last_error.is_some() {
                    Some(now)
                } else {
                    prev.last_error_at
                },
                last_error: last_error.or_else(|| prev.last_error.clone()),
                queues: Vec::new(),
                scheduled_broker_side: if source.is_some() {
                    scheduled_broker_side
                } else {
                    prev.scheduled_broker_side
                },
            };
            match result {
                Some((_, mut queues)) => {
                    queues.sort_by(|a, b| a.name.cmp(&b.name));
                    last_names = queues.iter().map(|q| q.name.clone()).collect();
                    snapshot.queues = queues;
                }
                // Nothing answered: keep the last figures rather than report
                // empty queues; `celeriac_broker_stats_up` says they are stale.
                None => snapshot.queues = self.stats.snapshot().queues.clone(),
            }
            self.stats.publish(snapshot);
        }
        client.close().await;
    }

    /// The queues the AMQP fallback probes: `--queues` if given, else every
    /// queue the cluster is known to use (task-sent `queue`, workers' queues)
    /// and every queue the last listing had.
    fn known_queues(&self, last: &BTreeSet<String>) -> Vec<String> {
        if !self.only.is_empty() {
            return self.only.clone();
        }
        let mut names: BTreeSet<String> = last.clone();
        {
            let state = self.state.read();
            for s in state.task_series() {
                if names.len() > 10_000 {
                    break;
                }
                if !names.contains(s.queue) {
                    names.insert(s.queue.to_owned());
                }
            }
        }
        for w in self.stats.worker_queues().into_values() {
            names.extend(w.queues);
        }
        names.into_iter().filter(|n| !is_internal(n)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_queues_are_left_out_unless_named() {
        assert!(!wanted("w1@vm.celery.pidbox", &[]));
        assert!(!wanted("celeryev.123", &[]));
        assert!(!wanted("celeriac.abc", &[]));
        assert!(wanted("celery", &[]));
        assert!(!wanted("celery_delayed_0", &[]) && !wanted("celery_delayed_27", &[]));
        assert!(wanted("celery_delayed_28", &[]) && wanted("celery_delayed_x", &[]));
        let only = vec!["celeriac.abc".to_string()];
        assert!(wanted("celeriac.abc", &only));
        assert!(!wanted("celery", &only));
    }
}
