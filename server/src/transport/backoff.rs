//! The reconnect delays every transport's event source uses.

use std::time::Duration;

/// Reconnect delays: 0.5 s doubling to 30 s, each shortened by up to 20% at
/// random so that many monitors restarted together do not reconnect in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    pub const INITIAL: Duration = Duration::from_millis(500);
    pub const MAX: Duration = Duration::from_secs(30);
    const JITTER: f64 = 0.2;
    /// A session that lasted this long was healthy: the next failure starts
    /// the backoff again from its shortest delay. Shorter sessions keep
    /// growing it, so a broker that accepts and then drops us is not
    /// hammered.
    pub const HEALTHY_SESSION: Duration = Duration::from_secs(30);

    pub fn new() -> Backoff {
        Backoff { attempt: 0 }
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The un-jittered delay of the next attempt.
    pub fn nominal(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(16)).unwrap_or(u32::MAX);
        Self::INITIAL.saturating_mul(factor).min(Self::MAX)
    }

    /// The next delay, given a uniform sample in `[0, 1)`.
    pub fn next_with(&mut self, unit: f64) -> Duration {
        let nominal = self.nominal();
        self.attempt = self.attempt.saturating_add(1);
        nominal.mul_f64(1.0 - Self::JITTER * unit.clamp(0.0, 1.0))
    }

    pub fn next_delay(&mut self) -> Duration {
        self.next_with(fastrand::f64())
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_half_a_second_to_thirty() {
        let mut b = Backoff::new();
        let nominal: Vec<f64> = (0..10).map(|_| b.next_with(0.0).as_secs_f64()).collect();
        assert_eq!(
            nominal,
            [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
        );
        b.reset();
        assert_eq!(b.nominal(), Backoff::INITIAL);
    }

    #[test]
    fn jitter_only_shortens_and_by_at_most_a_fifth() {
        let mut b = Backoff::new();
        for _ in 0..200 {
            let nominal = b.nominal();
            let d = b.next_delay();
            assert!(
                d <= nominal && d >= nominal.mul_f64(0.8),
                "{d:?} vs {nominal:?}"
            );
            assert!(d <= Backoff::MAX);
        }
        let mut b = Backoff::new();
        assert_eq!(b.next_with(0.5), Duration::from_millis(450));
    }
}
