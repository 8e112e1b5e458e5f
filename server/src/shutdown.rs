//! Stopping every long-running task together.

use tokio::sync::watch;

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
