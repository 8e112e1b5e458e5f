//! kombu's pidbox over Redis (docs/celery-protocol.md §8.3): requests are
//! published on the fanout exchange's channel `/{db}.celery.pidbox`, in
//! kombu's envelope; replies come through the direct exchange
//! `reply.celery.pidbox`, which on Redis is a lookup of the bindings in the
//! set `_kombu.binding.reply.celery.pidbox` and an `LPUSH` to the bound
//! list. So each call binds a list of its own, `BRPOP`s it, and removes
//! both when done; concurrent calls never see each other's replies.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use serde_json::{json, Map, Value};

use super::keys::{Keys, SEP};
use super::{envelope, Redis};
use crate::mailbox::{Collection, ControlError, Outcome, Request, Target, REPLY_EXCHANGE};

const PIDBOX_EXCHANGE: &str = "celery.pidbox";

/// The pidbox client. Cheap to share; calls run concurrently.
pub struct Pidbox {
    redis: Redis,
    default_timeout: Duration,
    clock: AtomicU64,
    commands: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

impl Pidbox {
    pub fn new(redis: Redis, default_timeout: Duration) -> Pidbox {
        Pidbox {
            redis,
            default_timeout,
            clock: AtomicU64::new(0),
            commands: tokio::sync::Mutex::new(None),
        }
    }

    /// The shared command connection; a new one after a failure.
    async fn commands(&self) -> Result<MultiplexedConnection, ControlError> {
        let mut slot = self.commands.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = self
            .redis
            .commands()
            .await
            .map_err(|e| ControlError::Unavailable(format!("connecting: {e}")))?;
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn forget_connection(&self) {
        *self.commands.lock().await = None;
    }

    /// Sends `request` and, when it wants replies, collects them: each reply
    /// restarts the idle timeout (kombu's semantics), and collection ends
    /// early once every addressed or expected worker answered.
    pub async fn call(&self, request: &Request) -> Result<Outcome, ControlError> {
        let result = self.call_once(request).await;
        if matches!(result, Err(ControlError::Unavailable(_))) {
            self.forget_connection().await;
        }
        result
    }

    async fn call_once(&self, request: &Request) -> Result<Outcome, ControlError> {
        let unavailable =
            |what: &str, e: redis::RedisError| ControlError::Unavailable(format!("{what}: {e}"));
        let mut conn = self.commands().await?;
        let timeout = request.timeout.unwrap_or(self.default_timeout);
        let clock = self.clock.fetch_add(1, Ordering::Relaxed) + 1;
        if !request.reply {
            let body = request.body(None);
            return publish(&mut conn, &self.redis.keys, &body, clock, timeout)
                .await
                .map(|_| Outcome::default())
                .map_err(|e| unavailable("publishing", e));
        }

        let ticket = uuid::Uuid::new_v4().to_string();
        let oid = uuid::Uuid::new_v4().to_string();
        let reply = ReplyList::new(&self.redis.keys, &oid);
        // A blocking BRPOP holds its connection, so it gets one of its own.
        let mut blocking = self
            .redis
            .connect(None)
            .await
            .map_err(|e| unavailable("connecting", e))?;
        let _: () = conn
            .sadd(&reply.binding_key, &reply.member)
            .await
            .map_err(|e| unavailable("binding the reply list", e))?;
        let collected = async {
            let body = request.body(Some((&ticket, &oid)));
            publish(&mut conn, &self.redis.keys, &body, clock, timeout)
                .await
                .map_err(|e| unavailable("publishing", e))?;
            collect(&mut blocking, &reply.list, &ticket, request, timeout).await
        }
        .await;
        // Best effort: kombu leaves stale bindings behind; we do not.
        let _: Result<(), _> = conn.srem(&reply.binding_key, &reply.member).await;
        let _: Result<(), _> = conn.del(&reply.list).await;
        collected
    }
}

/// A call's reply list and its binding on the reply exchange.
struct ReplyList {
    /// The list's key (with the prefix).
    list: String,
    binding_key: String,
    member: String,
}

impl ReplyList {
    fn new(keys: &Keys, oid: &str) -> ReplyList {
        let queue = format!("{oid}.{REPLY_EXCHANGE}");
        ReplyList {
            list: keys.list(&queue, 0),
            binding_key: keys.binding(REPLY_EXCHANGE),
            // routing key, pattern (none for a direct exchange), queue; the
            // bare name, which the replying worker prefixes.
            member: format!("{oid}{SEP}{SEP}{queue}"),
        }
    }
}

async fn collect(
    blocking: &mut MultiplexedConnection,
    list: &str,
    ticket: &str,
    request: &Request,
    timeout: Duration,
) -> Result<Outcome, ControlError> {
    let mut collection = Collection::new(request, timeout);
    while let Some(wait) = collection.next_wait() {
        // BRPOP's timeout has a resolution of milliseconds; 0 means forever.
        let secs = wait.as_secs_f64().max(0.001);
        let popped: Option<(String, Vec<u8>)> = blocking
            .brpop(list, secs)
            .await
            .map_err(|e| ControlError::Unavailable(format!("waiting for replies: {e}")))?;
        let Some((_, payload)) = popped else { break };
        if envelope::ticket(&payload).as_deref() != Some(ticket) {
            tracing::debug!("dropping a reply to another request");
            continue;
        }
        match envelope::body(&payload).map(|b| serde_json::from_slice::<Value>(&b)) {
            Ok(Ok(Value::Object(map))) => {
                for (node, reply) in map {
                    collection.add(node, reply);
                }
            }
            _ => tracing::debug!("ignoring a reply that is not a JSON object"),
        }
    }
    Ok(collection.finish())
}

/// Publishes a pidbox body as kombu's Mailbox does on Redis.
async fn publish(
    conn: &mut MultiplexedConnection,
    keys: &Keys,
    body: &Value,
    clock: u64,
    expires_in: Duration,
) -> redis::RedisResult<()> {
    let mut headers = Map::new();
    headers.insert("clock".into(), json!(clock));
    headers.insert(
        "expires".into(),
        json!(crate::clock::now() + expires_in.as_secs_f64()),
    );
    let payload = envelope::wrap(body.to_string().as_bytes(), headers, PIDBOX_EXCHANGE, "");
    let _: i64 = conn.publish(keys.pidbox_channel(), payload).await?;
    Ok(())
}

/// Sends the wake-up `heartbeat`, then `enable_events` every `interval`
/// when asked to, until aborted by the event source's session. A failed
/// broadcast is only logged, and the next one connects again.
pub(super) async fn run_broadcasts(redis: Redis, enable_events: Option<Duration>) {
    let mut conn: Option<MultiplexedConnection> = None;
    let mut clock = 0u64;
    let mut method = "heartbeat";
    let mut ticker = enable_events.map(|interval| {
        let mut t = tokio::time::interval(interval);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    loop {
        clock += 1;
        let request = Request::new(method, Value::Object(Map::new()), Target::All).without_reply();
        let sent = match conn.as_mut() {
            Some(c) => {
                publish(
                    c,
                    &redis.keys,
                    &request.body(None),
                    clock,
                    Duration::from_secs(1),
                )
                .await
            }
            None => match redis.commands().await {
                Ok(mut c) => {
                    let sent = publish(
                        &mut c,
                        &redis.keys,
                        &request.body(None),
                        clock,
                        Duration::from_secs(1),
                    )
                    .await;
                    conn = Some(c);
                    sent
                }
                Err(e) => Err(e),
            },
        };
        if let Err(e) = sent {
            tracing::debug!(error = %e, method, "pidbox broadcast failed");
            conn = None;
        }
        let Some(ticker) = ticker.as_mut() else {
            return;
        };
        ticker.tick().await;
        method = "enable_events";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_list_is_bound_as_kombu_binds_a_direct_queue() {
        let r = ReplyList::new(&Keys::new("", 3), "abc");
        assert_eq!(r.list, "abc.reply.celery.pidbox");
        assert_eq!(r.binding_key, "_kombu.binding.reply.celery.pidbox");
        assert_eq!(r.member, "abc\x06\x16\x06\x16abc.reply.celery.pidbox");
        // With a prefix: the keys carry it, the member names the bare list.
        let r = ReplyList::new(&Keys::new("p:", 3), "abc");
        assert_eq!(r.list, "p:abc.reply.celery.pidbox");
        assert_eq!(r.binding_key, "p:_kombu.binding.reply.celery.pidbox");
        assert_eq!(r.member, "abc\x06\x16\x06\x16abc.reply.celery.pidbox");
    }
}
