//! The dispatcher: one bounded queue and one tokio task per notifier, so a
//! slow or dead destination delays only its own notifications.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::alertmanager;
use super::error::NotifyError;
use super::format::now_unix;
use super::target::Target;
use super::{Notification, NotifierConfig, NotifierKind};

/// How notifications are queued, retried and timed out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DispatchOptions {
    /// Notifications waiting per notifier before new ones are dropped.
    pub queue_capacity: usize,
    /// Retries after the first attempt fails (so `max_retries + 1` attempts).
    pub max_retries: u32,
    /// Wait before the first retry; doubles each retry, with jitter.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Per-attempt timeout (a webhook's own `timeout` overrides it).
    pub timeout: Duration,
}

impl Default for DispatchOptions {
    fn default() -> Self {
        DispatchOptions {
            queue_capacity: 256,
            max_retries: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Delivery counters of one notifier.
#[derive(Debug, Default)]
struct Counters {
    sent: u64,
    failed: u64,
    dropped: u64,
    last_error: Option<String>,
    last_success_at: Option<f64>,
}

struct Handle {
    config: NotifierConfig,
    tx: mpsc::Sender<Notification>,
    counters: Arc<Mutex<Counters>>,
    /// Alertmanager only: the alerts it keeps alive, shared with its task so
    /// a reconfigured notifier can take them over.
    firing: Option<alertmanager::Firing>,
}

/// Routes notifications to the configured notifiers.
///
/// Dropping it closes the queues: each task then makes one more attempt at
/// what is still queued (no retries) and ends.
pub struct Dispatcher {
    notifiers: Vec<Handle>,
    options: DispatchOptions,
    client: reqwest::Client,
}

impl Dispatcher {
    /// Starts one task per notifier; must be called inside a tokio runtime.
    /// Names are expected to be unique (the rule file loader checks); for a
    /// repeated name only the first is used.
    pub fn new(configs: &[NotifierConfig], options: DispatchOptions) -> Dispatcher {
        let client = reqwest::Client::builder()
            .user_agent(concat!("celeriac/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        let mut d = Dispatcher {
            notifiers: Vec::new(),
            options,
            client,
        };
        d.reconfigure(configs);
        d
    }

    /// Applies a new notifier list (a rule file reload) without losing what
    /// is in flight: a notifier whose configuration is unchanged keeps its
    /// task, queue and counters; a changed one is restarted but keeps its
    /// counters (same kind) and the firing alerts it keeps alive in
    /// Alertmanager; a removed one finishes its queue and stops.
    pub fn reconfigure(&mut self, configs: &[NotifierConfig]) {
        let mut old = std::mem::take(&mut self.notifiers);
        for config in configs {
            if self.notifiers.iter().any(|h| h.config.name == config.name) {
                warn!(notifier = %config.name, "duplicate notifier name; only the first is used");
                continue;
            }
            let previous = old
                .iter()
                .position(|h| h.config.name == config.name)
                .map(|i| old.swap_remove(i));
            let handle = match previous {
                Some(h) if h.config == *config => h,
                previous => self.start(config, previous),
            };
            self.notifiers.push(handle);
        }
        // What is left in `old` is dropped here: those tasks drain and end.
    }

    /// Spawns the task for `config`, taking over from `previous` (same name).
    fn start(&self, config: &NotifierConfig, previous: Option<Handle>) -> Handle {
        let counters = previous
            .as_ref()
            .filter(|p| p.config.kind_name() == config.kind_name())
            .map(|p| p.counters.clone())
            .unwrap_or_default();
        // The same set, not a copy: a resolve still queued in the old task
        // must also stop the new task from refreshing that alert.
        let firing = matches!(config.kind, NotifierKind::Alertmanager(_)).then(|| {
            previous
                .as_ref()
                .and_then(|p| p.firing.clone())
                .unwrap_or_default()
        });
        let (tx, rx) = mpsc::channel(self.options.queue_capacity.max(1));
        let worker = Worker {
            name: config.name.clone(),
            target: Target::new(config, &self.options, firing.clone()),
            client: self.client.clone(),
            options: self.options.clone(),
            counters: counters.clone(),
        };
        tokio::spawn(worker.run(rx));
        Handle {
            config: config.clone(),
            tx,
            counters,
            firing,
        }
    }

    /// Queues `n` for the notifier named `notifier`; never blocks. A full
    /// queue drops `n` (counted as `dropped`); an unknown name is logged.
    pub fn send(&self, notifier: &str, n: Notification) {
        let Some(h) = self.notifiers.iter().find(|h| h.config.name == notifier) else {
            warn!(notifier, rule = %n.rule, "no notifier of this name; notification dropped");
            return;
        };
        if let Err(e) = h.tx.try_send(n) {
            let n = match e {
                mpsc::error::TrySendError::Full(n) | mpsc::error::TrySendError::Closed(n) => n,
            };
            let dropped = {
                let mut c = h.counters.lock();
                c.dropped += 1;
                c.dropped
            };
            warn!(notifier, rule = %n.rule, dropped, "notifier queue full; notification dropped");
        }
    }

    /// The configured notifier names, in configuration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.notifiers.iter().map(|h| h.config.name.as_str())
    }

    /// Delivery counters per notifier, in configuration order.
    pub fn stats(&self) -> Vec<api::alerts::NotifierStatus> {
        self.notifiers
            .iter()
            .map(|h| {
                let c = h.counters.lock();
                api::alerts::NotifierStatus {
                    name: h.config.name.clone(),
                    kind: h.config.kind_name().to_string(),
                    sent: c.sent,
                    failed: c.failed,
                    dropped: c.dropped,
                    last_error: c.last_error.clone(),
                    last_success_at: c.last_success_at,
                }
            })
            .collect()
    }
}

struct Worker {
    name: String,
    target: Target,
    client: reqwest::Client,
    options: DispatchOptions,
    counters: Arc<Mutex<Counters>>,
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::Receiver<Notification>) {
        let mut refresh = match self.target {
            Target::Alertmanager { refresh, .. } => Some(tokio::time::interval_at(
                tokio::time::Instant::now() + refresh,
                refresh,
            )),
            _ => None,
        };
        if let Some(i) = &mut refresh {
            // After a long retry, refresh once, not once per missed tick.
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            let n = tokio::select! {
                n = rx.recv() => match n {
                    Some(n) => n,
                    None => break,
                },
                _ = tick(&mut refresh) => {
                    if let Some(result) = self.target.refresh(&self.client).await {
                        self.note_refresh(result);
                    }
                    continue;
                }
            };
            self.target.record(&n);
            self.deliver_with_retries(&n, &rx).await;
        }
        debug!(notifier = %self.name, "notifier stopped");
    }

    /// Tries `n` up to `max_retries + 1` times with exponential backoff and
    /// jitter; stops retrying early once the dispatcher is gone.
    async fn deliver_with_retries(&self, n: &Notification, rx: &mpsc::Receiver<Notification>) {
        let timeout = self.target.timeout(&self.options);
        let mut attempt = 0u32;
        loop {
            // The outer timeout guards against a transport that ignores its
            // own (a server trickling bytes, a stuck TLS handshake).
            let result = tokio::time::timeout(
                timeout + Duration::from_secs(1),
                self.target.deliver(&self.client, n),
            )
            .await
            .unwrap_or_else(|_| {
                Err(NotifyError::Timeout {
                    to: self.target.destination().to_string(),
                    after: timeout,
                })
            });
            let err = match result {
                Ok(()) => {
                    let mut c = self.counters.lock();
                    c.sent += 1;
                    c.last_success_at = Some(now_unix());
                    debug!(notifier = %self.name, rule = %n.rule, status = n.status.as_str(), "notification sent");
                    return;
                }
                Err(e) => e,
            };
            self.counters.lock().last_error = Some(err.to_string());
            let give_up =
                !err.is_retryable() || attempt >= self.options.max_retries || rx.is_closed();
            if give_up {
                self.counters.lock().failed += 1;
                warn!(
                    notifier = %self.name, rule = %n.rule, attempts = attempt + 1,
                    error = %err, "notification failed; giving up"
                );
                return;
            }
            let delay = backoff(&self.options, attempt);
            debug!(notifier = %self.name, rule = %n.rule, error = %err, ?delay, "notification failed; will retry");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    fn note_refresh(&self, result: Result<(), NotifyError>) {
        let mut c = self.counters.lock();
        match result {
            Ok(()) => c.last_success_at = Some(now_unix()),
            Err(e) => {
                warn!(notifier = %self.name, error = %e, "refreshing firing alerts failed");
                c.last_error = Some(e.to_string());
            }
        }
    }
}

/// Waits for the next tick, or forever when there is no interval.
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The wait before retry `attempt + 1`: `initial * 2^attempt` capped at
/// `max`, then "equal jitter" (half fixed, half random) so notifiers that
/// failed together do not retry in lockstep.
fn backoff(options: &DispatchOptions, attempt: u32) -> Duration {
    let exp = options
        .initial_backoff
        .saturating_mul(2u32.saturating_pow(attempt.min(30)));
    let capped = exp.min(options.max_backoff);
    let half = capped / 2;
    half + half.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let o = DispatchOptions {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..Default::default()
        };
        for _ in 0..100 {
            let b0 = backoff(&o, 0);
            assert!(b0 >= Duration::from_millis(50) && b0 <= Duration::from_millis(100));
            let b2 = backoff(&o, 2);
            assert!(b2 >= Duration::from_millis(200) && b2 <= Duration::from_millis(400));
            let b9 = backoff(&o, 9);
            assert!(b9 >= Duration::from_millis(500) && b9 <= Duration::from_secs(1));
        }
        assert!(backoff(&o, u32::MAX) <= Duration::from_secs(1));
    }
}
