//! The one wall-clock read of the process.

use std::time::{SystemTime, UNIX_EPOCH};

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
