//! The only place that speaks a broker protocol. A transport plays three
//! roles for the rest of celeriac:
//!
//! - **events**: feeds the state owner's batch channel, reconnecting on its
//!   own, and reports its health through its [`SourceStatus`];
//! - **control**: kombu pidbox requests to workers and their replies;
//! - **queue statistics**: depth and consumers of the cluster's queues;
//! - **publishing tasks**: task messages as a Celery client sends them.
//!
//! The set of transports is closed, so each role is an enum with one arm
//! per transport; a new transport is a new folder here and one arm in
//! [`Transport::from_url`], the one place a broker URL's scheme is read.

pub mod amqp;
mod backoff;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use crate::broker::{QueuePoll, QueueSource, QueueStatsArgs, Several};
use crate::ingest::{BatchSender, IngestArgs};
use crate::mailbox::{ControlError, Fanout, Mailbox, Outcome, Request};
use crate::mask::mask_password;
use crate::shutdown::Shutdown;
use crate::submit::{PublishError, Publisher, TaskMessage};
use crate::telemetry::SourceStatus;

pub use backoff::Backoff;

/// A broker URL celeriac cannot use.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("invalid broker URL `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
}

/// A broker, chosen by its URL's scheme.
#[derive(Debug, Clone)]
pub enum Transport {
    Amqp(amqp::Amqp),
    Redis(self::redis::Redis),
}

impl Transport {
    /// Reads the URL's scheme as kombu does and checks the rest of the URL,
    /// so a bad `--broker` stops start-up with a message naming it. `redis`
    /// holds what kombu's Redis transport takes besides the URL (Sentinel's
    /// master name, the global key prefix).
    pub fn from_url(
        url: &str,
        redis: &self::redis::RedisArgs,
    ) -> Result<Transport, TransportError> {
        let scheme = url
            .split_once("://")
            .map(|(s, _)| s.to_ascii_lowercase())
            .unwrap_or_default();
        // No scheme at all: the AMQP parser says what a broker URL looks like.
        if scheme.is_empty() || amqp::amqp_scheme(&scheme).is_some() {
            return amqp::Amqp::new(url).map(Transport::Amqp);
        }
        if self::redis::redis_scheme(&scheme).is_some() {
            return self::redis::Redis::new(url, redis).map(Transport::Redis);
        }
        Err(TransportError::BadUrl {
            url: mask_password(url),
            reason: format!("unsupported scheme `{scheme}` (celeriac speaks AMQP and Redis)"),
        })
    }

    /// Whether the event source acknowledges what it consumed. One that does
    /// back-pressures the broker when the state owner is slow and loses
    /// nothing; one that does not (a pub/sub channel) can only count the
    /// gaps it sees.
    pub fn acks(&self) -> bool {
        match self {
            Transport::Amqp(_) => true,
            Transport::Redis(_) => false,
        }
    }

    /// The broker URL with its password masked, for logs and answers.
    pub fn masked_url(&self) -> String {
        match self {
            Transport::Amqp(a) => a.masked_url(),
            Transport::Redis(r) => r.masked_url(),
        }
    }

    /// Runs the event source until shutdown or until the state owner is
    /// gone, reconnecting whenever the broker goes away.
    pub async fn run_events(
        &self,
        status: Arc<SourceStatus>,
        args: IngestArgs,
        sender: BatchSender,
        shutdown: Shutdown,
    ) {
        match self {
            Transport::Amqp(a) => amqp::run(status, a.uri(), args, sender, shutdown).await,
            Transport::Redis(r) => {
                self::redis::run(status, r.clone(), args, sender, shutdown).await
            }
        }
    }

    /// A remote-control client; it connects on first use.
    pub fn control(&self, default_timeout: Duration) -> ControlClient {
        match self {
            Transport::Amqp(a) => ControlClient::Amqp(amqp::Pidbox::new(a.uri(), default_timeout)),
            Transport::Redis(r) => {
                ControlClient::Redis(self::redis::Pidbox::new(r.clone(), default_timeout))
            }
        }
    }

    /// A task publisher; it connects on first use.
    pub fn publisher(&self) -> PublishClient {
        match self {
            Transport::Amqp(a) => PublishClient::Amqp(amqp::TaskPublisher::new(a.uri())),
            Transport::Redis(r) => PublishClient::Redis(self::redis::TaskPublisher::new(r.clone())),
        }
    }

    /// A queue statistics poller.
    pub fn queue_stats(&self, args: &QueueStatsArgs) -> QueueStatsClient {
        match self {
            Transport::Amqp(a) => QueueStatsClient::Amqp(amqp::QueueStats::new(a, args)),
            Transport::Redis(r) => QueueStatsClient::Redis(self::redis::QueueStats::new(r, args)),
        }
    }
}

/// The brokers of one cluster, in `--broker` order: usually one; several
/// when the cluster's workers are spread over brokers. Each has its own
/// event source; remote control reaches them all through a
/// [`Fanout`]; queue statistics merge theirs; tasks celeriac publishes go
/// to the first.
#[derive(Debug, Clone)]
pub struct Brokers(Vec<Transport>);

/// Remote control of a cluster, over all its brokers.
pub type ClusterControl = Fanout<ControlClient>;

impl Brokers {
    /// Every URL as [`Transport::from_url`] reads it; none, or one given
    /// twice (its events would be counted twice), is an error.
    pub fn from_urls(
        urls: &[String],
        redis: &self::redis::RedisArgs,
    ) -> Result<Brokers, TransportError> {
        let mut brokers: Vec<Transport> = Vec::with_capacity(urls.len());
        for url in urls {
            let t = Transport::from_url(url, redis)?;
            if brokers.iter().any(|b| b.masked_url() == t.masked_url()) {
                return Err(TransportError::BadUrl {
                    url: t.masked_url(),
                    reason: "given twice".into(),
                });
            }
            brokers.push(t);
        }
        if brokers.is_empty() {
            return Err(TransportError::BadUrl {
                url: String::new(),
                reason: "no broker URL".into(),
            });
        }
        Ok(Brokers(brokers))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Transport> {
        self.0.iter()
    }

    /// Remote control over every broker.
    pub fn control(&self, default_timeout: Duration) -> ClusterControl {
        Fanout::new(self.0.iter().map(|t| t.control(default_timeout)).collect())
    }

    /// Tasks go to the first broker, as a Celery client with one
    /// `broker_url` would send them.
    pub fn publisher(&self) -> PublishClient {
        self.0[0].publisher()
    }

    /// Queue statistics of every broker, merged.
    pub fn queue_stats(&self, args: &QueueStatsArgs) -> Several<QueueStatsClient> {
        Several::new(
            self.0
                .iter()
                .map(|t| (t.masked_url(), t.queue_stats(args)))
                .collect(),
        )
    }
}

/// Sends pidbox requests and collects the replies.
pub enum ControlClient {
    Amqp(amqp::Pidbox),
    Redis(self::redis::Pidbox),
}

/// Sends `request` and, when it wants replies, collects them until every
/// addressed worker answered or the idle timeout passed.
impl Mailbox for ControlClient {
    async fn call(&self, request: &Request) -> Result<Outcome, ControlError> {
        match self {
            ControlClient::Amqp(p) => p.call(request).await,
            ControlClient::Redis(p) => p.call(request).await,
        }
    }
}

/// Publishes task messages, confirmed by the broker.
pub enum PublishClient {
    Amqp(amqp::TaskPublisher),
    Redis(self::redis::TaskPublisher),
}

impl Publisher for PublishClient {
    async fn publish(&self, message: &TaskMessage) -> Result<(), PublishError> {
        match self {
            PublishClient::Amqp(p) => p.publish(message).await,
            PublishClient::Redis(p) => p.publish(message).await,
        }
    }
}

/// Polls queue statistics.
pub enum QueueStatsClient {
    Amqp(amqp::QueueStats),
    Redis(self::redis::QueueStats),
}

impl QueueSource for QueueStatsClient {
    async fn poll(&mut self, known_queues: impl FnOnce() -> Vec<String> + Send) -> QueuePoll {
        match self {
            QueueStatsClient::Amqp(q) => q.poll(known_queues).await,
            QueueStatsClient::Redis(q) => q.poll(known_queues).await,
        }
    }

    async fn close(self) {
        match self {
            QueueStatsClient::Amqp(q) => q.close().await,
            QueueStatsClient::Redis(q) => q.close().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_picks_the_transport_and_others_are_named() {
        let none = self::redis::RedisArgs::default();
        for url in [
            "amqp://h//",
            "pyamqp://h/",
            "librabbitmq://h",
            "amqps://h/v",
        ] {
            assert!(
                matches!(Transport::from_url(url, &none), Ok(Transport::Amqp(_))),
                "{url}"
            );
        }
        for url in [
            "redis://:secret@localhost:6379/0",
            "rediss://h/1",
            "redis+socket:///s",
            "sentinel://:secret@s1:26379;sentinel://s2?master_name=m",
        ] {
            let t = Transport::from_url(url, &none).unwrap();
            assert!(matches!(t, Transport::Redis(_)), "{url}");
            assert!(!t.acks(), "pub/sub does not acknowledge");
            assert!(!t.masked_url().contains("secret"));
        }
        let err = Transport::from_url("sqs://:secret@h/", &none)
            .unwrap_err()
            .to_string();
        assert!(err.contains("sqs") && !err.contains("secret"), "{err}");
        assert!(Transport::from_url("localhost", &none).is_err());
        assert!(Transport::from_url("amqp://h//", &none).unwrap().acks());
    }

    #[test]
    fn several_brokers_are_distinct_and_at_least_one() {
        let none = self::redis::RedisArgs::default();
        let urls = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let b = Brokers::from_urls(&urls(&["amqp://h/a", "redis://h/1"]), &none).unwrap();
        assert_eq!(b.iter().count(), 2);
        let err = Brokers::from_urls(
            &urls(&["amqp://u:secret@h/a", "amqp://u:secret@h/a"]),
            &none,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("twice") && !err.contains("secret"), "{err}");
        assert!(Brokers::from_urls(&[], &none).is_err());
        let err = Brokers::from_urls(&urls(&["amqp://h/a", "sqs://h"]), &none).unwrap_err();
        assert!(err.to_string().contains("sqs"));
    }
}
