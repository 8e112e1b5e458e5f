//! statsd output (`--statsd HOST:PORT`): every second, the change of each
//! task name's counters since the last flush, the mean runtime and queue
//! wait of the tasks that finished or started meanwhile, and gauges for
//! queue depth, workers online and tasks active.
//!
//! cadence's queuing sink hands metrics to a thread that writes a
//! non-blocking UDP socket: a dead or slow statsd never slows ingest or
//! this loop, and what cannot be queued is dropped.
//!
//! Names (prefix `--statsd-prefix`, default `celery`):
//! - `task.<name>.<state>` counter (`sent`, `received`, `started`,
//!   `succeeded`, `failed`, `retried`, `revoked`, `rejected`);
//! - `task.<name>.runtime` and `task.<name>.queue_wait` timers (ms);
//! - `queue.<queue>.length`, `workers.online`, `tasks.active` gauges.
//!
//! With `--statsd-tags` the label moves to a DogStatsD tag instead:
//! `task.succeeded:3|c|#task:tasks.add`, `queue.length:7|g|#queue:backlog`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cadence::prelude::*;
use cadence::{QueuingMetricSink, StatsdClient, UdpMetricSink};

use parking_lot::RwLock;

use super::MetricsArgs;
use crate::broker::BrokerStats;
use crate::clock::now;
use crate::shutdown::Shutdown;
use crate::state::State;

const FLUSH: Duration = Duration::from_secs(1);
const QUEUE_CAPACITY: usize = 100_000;
/// The state names of the per-task counters, in `TaskCounts::by_event` order.
const STATES: [&str; 8] = crate::state::EVENT_COUNT_NAMES;

#[derive(Default, Clone, Copy, PartialEq)]
struct Totals {
    counts: [u64; 8],
    runtime: (f64, u64),
    wait: (f64, u64),
}

/// Keeps `.` (statsd's hierarchy) and replaces what the line protocol uses.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            ':' | '|' | '@' | '#' | ',' => '_',
            c if c.is_whitespace() => '_',
            c => c,
        })
        .collect()
}

/// The statsd task: what it reads and how it sends.
pub struct Statsd {
    pub state: Arc<RwLock<State>>,
    pub broker: Arc<BrokerStats>,
    pub args: MetricsArgs,
}

impl Statsd {
    /// Runs until shutdown; does nothing without `--statsd`.
    pub async fn run(self, mut shutdown: Shutdown) {
        let Some(addr) = self.args.statsd.clone() else {
            shutdown.fired().await;
            return;
        };
        let client = match client(&addr, &self.args.statsd_prefix) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("--statsd {addr}: {e}; statsd output is off");
                shutdown.fired().await;
                return;
            }
        };
        tracing::info!("sending statsd metrics to {addr}");
        let tags = self.args.statsd_tags;
        let mut last: HashMap<String, Totals> = HashMap::new();
        let mut ticker = tokio::time::interval(FLUSH);
        loop {
            tokio::select! {
                _ = shutdown.fired() => return,
                _ = ticker.tick() => {}
            }
            flush(&self.state, &self.broker, &client, tags, &mut last);
        }
    }
}

fn client(addr: &str, prefix: &str) -> Result<StatsdClient, String> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    socket.set_nonblocking(true).map_err(|e| e.to_string())?;
    let udp = UdpMetricSink::from(addr, socket).map_err(|e| e.to_string())?;
    let sink = QueuingMetricSink::with_capacity(udp, QUEUE_CAPACITY);
    Ok(StatsdClient::builder(prefix, sink)
        .with_error_handler(|e| tracing::debug!("statsd: {e}"))
        .build())
}

fn flush(
    state: &RwLock<State>,
    broker: &BrokerStats,
    client: &StatsdClient,
    tags: bool,
    last: &mut HashMap<String, Totals>,
) {
    let mut totals: HashMap<String, Totals> = HashMap::new();
    let (online, active) = {
        let state = state.read();
        for s in state.task_series() {
            let t = totals.entry(s.name.to_owned()).or_default();
            let c = s.counts;
            for (a, b) in t.counts.iter_mut().zip(c.by_event()) {
                *a += b;
            }
            t.runtime.0 += c.runtime.sum;
            t.runtime.1 += c.runtime.count;
            t.wait.0 += c.queue_wait.sum;
            t.wait.1 += c.queue_wait.count;
        }
        let workers = state.workers(now());
        let alive = workers.iter().filter(|w| w.status);
        let active: i64 = alive.clone().map(|w| w.active.unwrap_or(0).max(0)).sum();
        (alive.count(), active)
    };
    for (name, t) in &totals {
        let before = last.get(name).copied().unwrap_or_default();
        if *t == before {
            continue;
        }
        let task = clean(name);
        for (i, state) in STATES.iter().enumerate() {
            let d = t.counts[i].saturating_sub(before.counts[i]);
            if d == 0 {
                continue;
            }
            let _ = if tags {
                client
                    .count_with_tags(&format!("task.{state}"), d)
                    .with_tag("task", &task)
                    .try_send()
            } else {
                client
                    .count_with_tags(&format!("task.{task}.{state}"), d)
                    .try_send()
            };
        }
        for (metric, (sum, n), (sum0, n0)) in [
            ("runtime", t.runtime, before.runtime),
            ("queue_wait", t.wait, before.wait),
        ] {
            let dn = n.saturating_sub(n0);
            if dn == 0 {
                continue;
            }
            let ms = (((sum - sum0) / dn as f64) * 1000.0).max(0.0) as u64;
            let _ = if tags {
                client
                    .time_with_tags(&format!("task.{metric}"), ms)
                    .with_tag("task", &task)
                    .try_send()
            } else {
                client
                    .time_with_tags(&format!("task.{task}.{metric}"), ms)
                    .try_send()
            };
        }
    }
    *last = totals;
    let _ = client.gauge("workers.online", online as u64);
    let _ = client.gauge("tasks.active", active.max(0) as u64);
    for q in &broker.snapshot().queues {
        let queue = clean(&q.name);
        let _ = if tags {
            client
                .gauge_with_tags("queue.length", q.messages_ready)
                .with_tag("queue", &queue)
                .try_send()
        } else {
            client
                .gauge_with_tags(&format!("queue.{queue}.length"), q.messages_ready)
                .try_send()
        };
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_lose_the_line_protocols_characters() {
        assert_eq!(super::clean("w1@vm:a|b #c,d"), "w1_vm_a_b__c_d");
        assert_eq!(super::clean("tasks.add"), "tasks.add");
    }
}
