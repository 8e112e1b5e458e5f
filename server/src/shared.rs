//! What the tasks of the process share: the configuration, the state (one
//! writer: the state owner; readers take short read locks), self metrics,
//! health flags, and the shutdown signal.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::config::Config;
use crate::metrics::SelfMetrics;
use crate::state::State;

pub struct Shared {
    pub config: Config,
    /// Written only by the state owner task.
    pub state: RwLock<State>,
    pub metrics: SelfMetrics,
    pub health: Health,
    /// Dashboard: the /ws publisher (the state owner ticks it).
    pub dashboard: crate::ws::Hub,
    /// Remote control, inspect cache, auth and audit (issue 5).
    pub ops: crate::control::Ops,
    /// Queue statistics (broker stats poller writes, readers clone).
    pub broker: crate::broker::BrokerStats,
    /// The alert engine (issue 6); off without `--alerts`.
    pub alerting: crate::alerting::Alerting,
}

impl Shared {
    /// An empty state bounded by the configured limits.
    pub fn new(config: Config) -> Shared {
        let limits = config.state.limits(&config.metrics);
        Shared {
            state: RwLock::new(State::new(limits)),
            metrics: SelfMetrics::new(),
            health: Health::default(),
            dashboard: crate::ws::Hub::default(), // dashboard
            ops: crate::control::Ops::new(&transport(&config), &config.control, &config.auth), // control/auth (issue 5)
            broker: crate::broker::BrokerStats::default(),
            alerting: crate::alerting::Alerting::new(&config.alerting), // alerting (issue 6)
            config,
        }
    }
}

/// `start` refuses a bad broker URL before this runs.
fn transport(config: &Config) -> crate::transport::Transport {
    use crate::transport::Transport;
    Transport::from_url(&config.ingest.broker)
        .or_else(|_| Transport::from_url(crate::ingest::DEFAULT_BROKER))
        .expect("the default broker URL is valid")
}

/// Liveness of the event source, for `/readyz` and logs.
#[derive(Default)]
pub struct Health {
    /// True while a consumer is attached to the events queue.
    pub consuming: AtomicBool,
    /// Wall-clock time (f64 bits) of the last applied event; 0 = never.
    last_event_at: AtomicU64,
    /// Why the broker connection is down, when it is.
    pub last_error: Mutex<Option<String>>,
}

impl Health {
    pub fn set_last_event_at(&self, t: f64) {
        self.last_event_at.store(t.to_bits(), Ordering::Relaxed);
    }

    pub fn last_event_at(&self) -> Option<f64> {
        let t = f64::from_bits(self.last_event_at.load(Ordering::Relaxed));
        (t > 0.0).then_some(t)
    }

    pub fn is_consuming(&self) -> bool {
        self.consuming.load(Ordering::Relaxed)
    }

    pub fn set_consuming(&self, consuming: bool) {
        self.consuming.store(consuming, Ordering::Relaxed);
    }

    pub fn set_last_error(&self, error: Option<String>) {
        *self.last_error.lock() = error;
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }
}

/// Asks every long-running task to stop. Cloned [`Shutdown`]s all observe
/// one trigger; a dropped trigger counts as fired, so a task can never
/// outlive whoever was meant to stop it.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// The receiving side of [`ShutdownTrigger`].
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl ShutdownTrigger {
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger(tx), Shutdown(rx))
    }

    pub fn fire(&self) {
        self.0.send_replace(true);
    }

    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    pub fn is_fired(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown is requested (at once if it already was).
    pub async fn fired(&mut self) {
        // An error means the trigger is gone, which also means "stop".
        let _ = self.0.wait_for(|fired| *fired).await;
    }
}

/// Wall-clock now as UTC epoch seconds, the unit Celery's events use. The
/// only place the process reads the clock for the model; the state itself
/// takes time as an argument.
#[allow(clippy::disallowed_methods)] // this is the one read clippy.toml points everyone to
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_reaches_every_clone_and_a_dropped_trigger_counts() {
        let (trigger, mut a) = ShutdownTrigger::new();
        let mut b = a.clone();
        assert!(!a.is_fired());
        trigger.fire();
        a.fired().await;
        b.fired().await;
        assert!(b.is_fired());

        let (trigger, mut c) = ShutdownTrigger::new();
        drop(trigger);
        c.fired().await;
    }
}
