//! Settings of remote control and the inspect cache.

use std::time::Duration;

/// Flower's `--inspect_timeout` default (1000 ms).
pub const DEFAULT_INSPECT_TIMEOUT_MS: u64 = 1000;
/// Seconds between two inspect refreshes of every worker (0: only on
/// `?refresh=1`).
pub const DEFAULT_INSPECT_INTERVAL_SECS: u64 = 60;

#[derive(Debug, Clone, clap::Args)]
pub struct ControlArgs {
    /// Milliseconds to wait for the next worker reply to a control or
    /// inspect command (an idle timeout, as Flower's `--inspect_timeout`).
    #[arg(long, env = "CELERIAC_INSPECT_TIMEOUT", default_value_t = DEFAULT_INSPECT_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(1..=60_000), value_name = "MS")]
    pub inspect_timeout: u64,

    /// Seconds between two inspect refreshes of every worker for
    /// `/api/workers` (0: only on `?refresh=1`).
    #[arg(long, env = "CELERIAC_INSPECT_INTERVAL", default_value_t = DEFAULT_INSPECT_INTERVAL_SECS,
          value_name = "SECONDS")]
    pub inspect_interval: u64,
}

impl ControlArgs {
    pub fn inspect_timeout(&self) -> Duration {
        Duration::from_millis(self.inspect_timeout)
    }
}
