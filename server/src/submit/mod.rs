//! Submitting tasks as a Celery 5.7 client does: the protocol-2 task
//! message (`message.rs`, docs/celery-protocol.md §7), Flower's
//! `apply_async` options (`options.rs`), a known task published again
//! (`rerun.rs`), the links between a task and its
//! re-runs (`links.rs`), and the [`Publisher`] a transport implements. No
//! broker here: tests check the message field by field and a transport
//! puts it on the wire.

pub mod args;
pub mod links;
pub mod message;
pub mod options;
pub mod rerun;

use std::future::Future;

pub use args::SubmitArgs;
pub use links::Links;
pub use message::{Header, Route, TaskMessage};
pub use options::{OptionError, Options};
pub use rerun::{Original, Rerun, RerunError};

/// Where task messages go: a transport's publisher (with publisher confirms
/// and `mandatory`), or a fake in tests.
pub trait Publisher: Sync {
    fn publish(
        &self,
        message: &TaskMessage,
    ) -> impl Future<Output = Result<(), PublishError>> + Send;
}

/// Why a task message was not accepted by the broker.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PublishError {
    #[error("the broker is unavailable: {0}")]
    Unavailable(String),
    /// The broker returned the message: no queue is bound for its route.
    #[error(
        "no queue receives exchange `{exchange}` routing key `{routing_key}`: the broker \
         returned the message ({reply})"
    )]
    Unroutable {
        exchange: String,
        routing_key: String,
        reply: String,
    },
    #[error("the broker refused the message (nack)")]
    Refused,
}

/// What submitting needs at run time.
pub struct Submitter<P> {
    pub publisher: P,
    pub links: Links,
    /// Celery's `task_default_queue`.
    pub default_queue: String,
    /// The producer nodename in `origin` (`celeriac@<host>`).
    pub origin: String,
    /// This client's oid, sent as `reply_to` as Celery clients do.
    pub oid: String,
}

impl<P: Publisher> Submitter<P> {
    pub fn new(publisher: P, args: &SubmitArgs, host: &str) -> Submitter<P> {
        Submitter {
            publisher,
            links: Links::default(),
            default_queue: args.task_queue.clone(),
            origin: format!("celeriac@{host}"),
            oid: uuid::Uuid::new_v4().to_string(),
        }
    }
}

impl<P: Publisher> Submitter<P> {
    /// The message re-running `original` as a new task: what the single
    /// and the bulk retry both publish.
    pub fn rerun_message(
        &self,
        original: &Original<'_>,
        rerun: &Rerun,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<TaskMessage, RerunError> {
        rerun.message(
            original,
            uuid::Uuid::new_v4().to_string(),
            self.origin.clone(),
            self.oid.clone(),
            &self.default_queue,
            now,
        )
    }

    /// Publishes the re-run `message` of task `original_id`, and links the
    /// two once the broker took it.
    pub async fn publish_rerun(
        &self,
        original_id: &str,
        message: &TaskMessage,
    ) -> Result<(), PublishError> {
        self.publisher.publish(message).await?;
        self.links.add(original_id, &message.id);
        Ok(())
    }
}
