//! Remote control of workers (issue 5): the pidbox client, the inspect
//! cache behind `/api/workers`, what the HTTP layer needs to run a control
//! action (authentication, the audit log), and the control logic itself,
//! free of HTTP: `http/control.rs` only reads requests and writes answers.
//!
//! ```text
//! http/control.rs ─▶ Ops ─┬─ pidbox: celery.pidbox ─▶ workers ─▶ reply.celery.pidbox ─▶ <oid>.reply queue
//!                         ├─ inspect: cached stats/registered/active_queues/conf per worker
//!                         ├─ auth: users, roles, tokens (http/auth.rs is the middleware)
//!                         └─ audit: every control action, in memory and in the log
//!
//! parameters ─▶ form ─▶ command (Prepared: request + judge) ─▶ action::Controller ─┬─ Mailbox (pidbox)
//!                       bulk (select, chunk)                                        ├─ judge: verdict, answer
//!                                                                                   └─ audit entry
//! ```

pub mod action;
pub mod bulk;
pub mod command;
pub mod form;
pub mod inspect;
pub mod judge;
pub mod pidbox;

use std::time::Duration;

pub use inspect::InspectCache;
pub use pidbox::{ControlError, Matcher, Outcome, Pidbox, Request, Target};

use crate::audit::Audit;
use crate::auth::Auth;
use crate::config::Config;

/// Flower's `--inspect_timeout` default (1000 ms).
pub const DEFAULT_INSPECT_TIMEOUT_MS: u64 = 1000;
/// Seconds between two inspect refreshes of every worker (0: only on
/// `?refresh=1`).
pub const DEFAULT_INSPECT_INTERVAL_SECS: u64 = 60;

/// Everything remote control needs, built once from the configuration.
pub struct Ops {
    pub pidbox: Pidbox,
    pub inspect: InspectCache,
    pub auth: Auth,
    pub audit: Audit,
}

impl Ops {
    pub fn new(config: &Config) -> Ops {
        // `start` refuses a bad broker URL before this runs.
        let uri = crate::ingest::parse_broker_url(&config.broker).unwrap_or_default();
        Ops {
            pidbox: Pidbox::new(uri, Duration::from_millis(config.inspect_timeout)),
            inspect: InspectCache::new(),
            auth: Auth::from_config(config),
            audit: Audit::new(),
        }
    }
}

/// Refreshes the inspect cache of every worker every `interval` until
/// shutdown.
pub async fn run_inspect_refresh(
    shared: std::sync::Arc<crate::shared::Shared>,
    interval: Duration,
    mut shutdown: crate::shared::Shutdown,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick fires at once; give ingest time to learn the workers.
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.fired() => return,
            _ = ticker.tick() => {}
        }
        if let Err(e) = inspect::refresh(&shared, None).await {
            tracing::debug!(error = %e, "periodic inspect refresh failed");
        }
    }
}
