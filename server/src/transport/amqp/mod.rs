//! RabbitMQ over AMQP 0-9-1 (lapin): the event source, the pidbox client,
//! and queue statistics from the management API or passive declares.
//!
//! ```text
//! source::run ── session ──┬─ consumer: celeryev ─▶ events queue ─▶ decode ─▶ batch ─▶ owner
//!   (backoff loop)         ├─ dlx: celeriac.dlx ─▶ dropped queue ─▶ events_dropped{reason}
//!                          └─ pidbox::Broadcaster: wake-up `heartbeat`, periodic `enable_events`
//! pidbox::Pidbox ─▶ celery.pidbox ─▶ workers ─▶ reply.celery.pidbox ─▶ <oid>.reply queue
//! queue_stats ─▶ management API, else passive queue.declare per queue
//! ```
//!
//! AMQP acknowledges: a delivery is acked only after its events were handed
//! to the state owner, so a slow owner back-pressures the broker, and what
//! the broker itself drops (TTL, max-length) is dead-lettered to us and
//! counted.

mod consumer;
mod dlx;
mod management;
mod passive;
mod pidbox;
mod publish;
mod queue_stats;
mod source;
mod topology;

pub use management::{ManagementApi, QueueTotals};
pub use pidbox::Pidbox;
pub use publish::TaskPublisher;
pub use queue_stats::QueueStats;
pub use source::{amqp_scheme, parse_broker_url, run};
pub use topology::{DLX_EXCHANGE, EVENT_EXCHANGE, PIDBOX_EXCHANGE};

/// Why a connection attempt or an established session failed.
#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
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

impl AmqpError {
    pub(crate) fn amqp(action: impl Into<String>) -> impl FnOnce(lapin::Error) -> AmqpError {
        let action = action.into();
        move |error| AmqpError::Amqp { action, error }
    }
}

/// A RabbitMQ broker, from its URL.
#[derive(Debug, Clone)]
pub struct Amqp {
    url: String,
    uri: lapin::uri::AMQPUri,
}

impl Amqp {
    pub fn new(url: &str) -> Result<Amqp, crate::transport::TransportError> {
        let uri = parse_broker_url(url)?;
        Ok(Amqp {
            url: url.to_string(),
            uri,
        })
    }

    pub fn uri(&self) -> lapin::uri::AMQPUri {
        self.uri.clone()
    }

    pub fn masked_url(&self) -> String {
        crate::mask::mask_password(&self.url)
    }
}
