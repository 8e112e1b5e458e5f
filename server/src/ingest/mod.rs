//! AMQP event source: connect, declare, consume, decode, hand batches to the
//! state owner, and reconnect with capped backoff when anything breaks.
//!
//! ```text
//! connection::run ── session ──┬─ consumer: celeryev ─▶ events queue ─▶ decode ─▶ batch ─▶ owner
//!   (backoff loop)             ├─ dlx: celeriac.dlx ─▶ dropped queue ─▶ events_dropped{reason}
//!                              └─ pidbox: wake-up `heartbeat`, periodic `enable_events`
//! ```
//!
//! Architecture Invariant: ingest never drops an event on its own. A full
//! batch channel stops consumption (prefetch bounds what is in flight) and the
//! broker buffers; a delivery is acked only after its events were handed over.
//! What the broker itself drops (TTL, max-length) is dead-lettered to us and
//! counted.

mod args;
mod batch;
mod connection;
mod consumer;
mod dlx;
mod pidbox;
mod topology;

pub use args::{
    IngestArgs, DEFAULT_BROKER, DEFAULT_ENABLE_EVENTS_INTERVAL_SECS, DEFAULT_EVENTS_MAX_LENGTH,
    DEFAULT_EVENTS_TTL_SECS, DEFAULT_MAX_EVENT_BYTES, DEFAULT_PREFETCH,
};
pub use batch::{
    batch_channel, BatchReceiver, BatchSender, BATCH_CHANNEL_CAPACITY, MAX_BATCH_EVENTS,
};
pub use connection::{parse_broker_url, run, Backoff};
pub use topology::{DLX_EXCHANGE, EVENT_EXCHANGE, PIDBOX_EXCHANGE};

/// Why a connection attempt or an established session failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("invalid broker URL `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("connecting to {broker} timed out after {secs}s")]
    ConnectTimeout { broker: String, secs: u64 },
    #[error("{action}: {error}")]
    Amqp { action: String, error: lapin::Error },
    /// RabbitMQ cannot change the arguments of an existing queue (406
    /// PRECONDITION_FAILED), so a `--events-queue` declared earlier with
    /// other values refuses the new ones until it is deleted.
    #[error(
        "events queue `{queue}` already exists with a different `{argument}` ({detail}); \
         RabbitMQ cannot change the arguments of an existing queue: {hint}, or delete the \
         queue (`rabbitmqctl delete_queue {queue}`, which discards the events it holds) so \
         celeriac can declare it again"
    )]
    QueueMismatch {
        queue: String,
        argument: String,
        detail: String,
        hint: &'static str,
    },
}

impl IngestError {
    pub(crate) fn amqp(action: impl Into<String>) -> impl FnOnce(lapin::Error) -> IngestError {
        let action = action.into();
        move |error| IngestError::Amqp { action, error }
    }
}
