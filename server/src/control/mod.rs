//! Remote control of workers: the pidbox client, the inspect
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
mod args;
pub mod bulk;
pub mod bulk_retry;
pub mod command;
pub mod form;
pub mod inspect;
pub mod judge;
pub mod onboard;
pub mod pause;
pub mod quorum;

use std::time::Duration;

pub use crate::mailbox::{
    ControlError, Mailbox, Matcher, Outcome, Request, Target, REPLY_EXCHANGE,
};
pub use args::{ControlArgs, DEFAULT_INSPECT_INTERVAL_SECS, DEFAULT_INSPECT_TIMEOUT_MS};
pub use inspect::InspectCache;

use std::sync::Arc;

use parking_lot::RwLock;

use crate::audit::Audit;
use crate::auth::Auth;
use crate::broker::BrokerStats;
use crate::state::State;

/// Everything remote control needs, built once from the configuration:
/// `pidbox` is the transport's mailbox.
pub struct Ops<M> {
    pub pidbox: M,
    pub inspect: InspectCache,
    pub auth: Auth,
    pub audit: std::sync::Arc<Audit>,
    /// Queues paused across the cluster.
    pub pauses: pause::Pauses,
    /// `--redact-keys`, for what handlers read beyond the events (results
    /// from the result backend).
    pub redactor: crate::redact::Redactor,
    /// Which workers were inspected since they came online.
    pub onboarding: onboard::Onboarding,
}

impl<M: Mailbox> Ops<M> {
    pub fn new(
        pidbox: M,
        auth: &crate::auth::AuthArgs,
        redactor: crate::redact::Redactor,
    ) -> Ops<M> {
        Ops {
            pidbox,
            inspect: InspectCache::new().masking(redactor.clone()),
            auth: Auth::from_args(auth),
            audit: std::sync::Arc::new(Audit::new().masking(redactor.clone())),
            pauses: pause::Pauses::new(),
            redactor,
            onboarding: onboard::Onboarding::default(),
        }
    }
}

/// How often the refresh task looks for workers that came online.
const ARRIVALS_EVERY: Duration = Duration::from_millis(500);

/// Inspects each worker as it comes online, and every worker every
/// `interval`, until shutdown.
pub async fn run_inspect_refresh<M: Mailbox>(
    ops: Arc<Ops<M>>,
    state: Arc<RwLock<State>>,
    broker: Arc<BrokerStats>,
    interval: Duration,
    mut shutdown: crate::shutdown::Shutdown,
) {
    ops.onboarding.enable();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick fires at once; new workers are asked as they arrive.
    ticker.tick().await;
    let mut look = tokio::time::interval(ARRIVALS_EVERY);
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut arrivals = onboard::Arrivals::default();
    loop {
        tokio::select! {
            _ = shutdown.fired() => return,
            _ = ticker.tick() => {
                if let Err(e) = inspect::refresh(&ops, &state, &broker, None).await {
                    tracing::debug!(error = %e, "periodic inspect refresh failed");
                }
            }
            _ = look.tick() => {
                let workers = state.read().workers(crate::clock::now());
                onboard::look(&ops, &broker, &mut arrivals, &workers).await;
            }
        }
    }
}
