//! Redis as kombu's `redis://` transport uses it (docs/celery-protocol.md
//! §8): the event source over pub/sub, the pidbox client, and queue depth
//! from the queues' lists.
//!
//! ```text
//! events::run ─ PSUBSCRIBE /{db}.celeryev/* ─▶ unwrap envelope ─▶ decode ─▶ batch ─▶ owner
//!   (backoff loop; the time without a subscription is counted as a gap)
//!   └─ pidbox::run_broadcasts: wake-up `heartbeat`, periodic `enable_events`
//! publish::TaskPublisher ─ LPUSH <queue>[\x06\x16<step>] (the default exchange, or a binding's queues)
//! pidbox::Pidbox ─ PUBLISH /{db}.celery.pidbox ─▶ workers ─▶ LPUSH <oid>.reply.celery.pidbox ─▶ BRPOP
//! queue_stats ─▶ LLEN of each queue's priority lists, queues from _kombu.binding.*
//! ```
//!
//! Pub/sub does not acknowledge: events published while celeriac is not
//! subscribed are lost, and only the time without a subscription can be
//! counted.

mod envelope;
mod events;
mod pidbox;
mod publish;
mod queue_stats;
mod url;

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;

pub use events::{events_pattern, run};
pub use pidbox::Pidbox;
pub use publish::TaskPublisher;
pub use queue_stats::QueueStats;
pub use url::redis_scheme;

use crate::transport::TransportError;

/// redis-rs gives up on a connect after 1 s and a reply after 0.5 s by
/// default; a busy broker or a loaded host routinely takes longer, and a
/// monitor that gives up early reports outages that are not there.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A Redis broker, from its URL.
#[derive(Debug, Clone)]
pub struct Redis {
    url: String,
    client: redis::Client,
    /// kombu's virtual host, which also prefixes its pub/sub channels.
    db: i64,
}

impl Redis {
    pub fn new(url: &str) -> Result<Redis, TransportError> {
        let parsed = url::parse(url)?;
        let client =
            redis::Client::open(parsed.connect.as_str()).map_err(|e| TransportError::BadUrl {
                url: crate::mask::mask_password(url),
                reason: e.to_string(),
            })?;
        Ok(Redis {
            url: url.to_string(),
            client,
            db: parsed.db,
        })
    }

    pub fn masked_url(&self) -> String {
        crate::mask::mask_password(&self.url)
    }

    /// A connection for commands, with celeriac's timeouts; `response` None
    /// for one that runs blocking commands (BRPOP) with their own timeout.
    async fn connect(
        &self,
        response: Option<Duration>,
    ) -> redis::RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(response);
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    async fn commands(&self) -> redis::RedisResult<MultiplexedConnection> {
        self.connect(Some(RESPONSE_TIMEOUT)).await
    }
}
