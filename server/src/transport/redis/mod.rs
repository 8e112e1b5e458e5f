//! Redis as kombu's `redis://` transport uses it (docs/celery-protocol.md
//! §8): the event source over pub/sub, the pidbox client, and queue depth
//! from the queues' lists; the server found directly or through Sentinel
//! (`sentinel.rs`), every name with kombu's `global_keyprefix` (`keys.rs`).
//!
//! ```text
//! events::run ─ PSUBSCRIBE /{db}.celeryev/* ─▶ unwrap envelope ─▶ decode ─▶ batch ─▶ owner
//!   (backoff loop; the time without a subscription is counted as a gap)
//!   └─ pidbox::run_broadcasts: wake-up `heartbeat`, periodic `enable_events`
//! publish::TaskPublisher ─ LPUSH <queue>[\x06\x16<step>] (the default exchange, or a binding's queues)
//! pidbox::Pidbox ─ PUBLISH /{db}.celery.pidbox ─▶ workers ─▶ LPUSH <oid>.reply.celery.pidbox ─▶ BRPOP
//! queue_stats ─▶ LLEN of each queue's priority lists, queues from _kombu.binding.*
//! Redis::connect / pubsub ─ (sentinel:// only) SENTINEL MASTER <name> on each node ─▶ the master
//! ```
//!
//! Pub/sub does not acknowledge: events published while celeriac is not
//! subscribed are lost, and only the time without a subscription can be
//! counted.

mod args;
mod envelope;
mod events;
mod keys;
mod pidbox;
mod publish;
mod queue_stats;
mod sentinel;
mod url;

use std::time::Duration;

use redis::aio::{MultiplexedConnection, PubSub};
use redis::AsyncConnectionConfig;

pub use args::RedisArgs;
pub use events::run;
pub use pidbox::Pidbox;
pub use publish::TaskPublisher;
pub use queue_stats::QueueStats;
pub use url::redis_scheme;

use crate::transport::TransportError;
use keys::Keys;
use url::Endpoint;

/// redis-rs gives up on a connect after 1 s and a reply after 0.5 s by
/// default; a busy broker or a loaded host routinely takes longer, and a
/// monitor that gives up early reports outages that are not there.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A Redis broker, from its URL and the transport's settings.
#[derive(Debug, Clone)]
pub struct Redis {
    url: String,
    server: Server,
    /// Every key and channel name, with kombu's `global_keyprefix`.
    keys: Keys,
}

/// How a connection finds the server.
#[derive(Debug, Clone)]
enum Server {
    Direct(redis::Client),
    /// Asked of the Sentinel nodes on every connect, so a failover is
    /// followed.
    Sentinel(sentinel::Sentinel),
}

impl Redis {
    /// The URL's query overrides `args` for this broker.
    pub fn new(url: &str, args: &RedisArgs) -> Result<Redis, TransportError> {
        let bad = |reason: String| TransportError::BadUrl {
            url: url::mask(url),
            reason,
        };
        let parsed = url::parse(url)?;
        let server = match parsed.endpoint {
            Endpoint::Direct(connect) => Server::Direct(
                redis::Client::open(connect.as_str()).map_err(|e| bad(e.to_string()))?,
            ),
            Endpoint::Sentinel(nodes) => {
                let name = parsed
                    .master_name
                    .or_else(|| args.redis_master_name.clone())
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| {
                        bad("a sentinel:// broker needs the master's name: \
                             `?master_name=NAME` or --redis-master-name"
                            .into())
                    })?;
                Server::Sentinel(sentinel::Sentinel::new(
                    nodes,
                    name,
                    args.redis_sentinel_password.clone(),
                    parsed.db,
                ))
            }
        };
        let prefix = parsed
            .global_keyprefix
            .or_else(|| args.redis_global_keyprefix.clone())
            .unwrap_or_default();
        Ok(Redis {
            url: url.to_string(),
            server,
            keys: Keys::new(&prefix, parsed.db),
        })
    }

    pub fn masked_url(&self) -> String {
        url::mask(&self.url)
    }

    /// A client for the server; through Sentinel, for the master it names
    /// now.
    async fn client(&self) -> redis::RedisResult<redis::Client> {
        match &self.server {
            Server::Direct(client) => Ok(client.clone()),
            Server::Sentinel(sentinel) => sentinel
                .master()
                .await
                .map_err(|e| redis::RedisError::from(std::io::Error::other(e))),
        }
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
        self.client()
            .await?
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    async fn commands(&self) -> redis::RedisResult<MultiplexedConnection> {
        self.connect(Some(RESPONSE_TIMEOUT)).await
    }

    /// A connection for subscriptions.
    async fn pubsub(&self) -> redis::RedisResult<PubSub> {
        self.client().await?.get_async_pubsub().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_fill_in_what_the_url_does_not_say() {
        let args = RedisArgs {
            redis_master_name: Some("flagged".into()),
            redis_global_keyprefix: Some("flag:".into()),
            ..RedisArgs::default()
        };
        let r = Redis::new("sentinel://:secret@s1;sentinel://s2/5", &args).unwrap();
        assert_eq!(r.keys, Keys::new("flag:", 0));
        assert!(matches!(&r.server, Server::Sentinel(_)));
        assert_eq!(r.masked_url(), "sentinel://:********@s1;sentinel://s2/5");

        let r = Redis::new("redis://h/2?global_keyprefix=url:", &args).unwrap();
        assert_eq!(r.keys, Keys::new("url:", 2));

        let err = Redis::new("sentinel://:secret@s1", &RedisArgs::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--redis-master-name") && !err.contains("secret"),
            "{err}"
        );
        assert!(Redis::new("sentinel://s1?master_name=m", &RedisArgs::default()).is_ok());
    }
}
