//! A kombu pidbox client over lapin (docs/celery-protocol.md §4): requests to the
//! `celery.pidbox` fanout exchange, replies on our own exclusive queue
//! `<oid>.reply.celery.pidbox` bound to the `reply.celery.pidbox` direct
//! exchange, matched to their request by `ticket`.
//!
//! The client owns one connection and channel of its own, opened on first
//! use and again after it breaks. One reader task routes every reply to the
//! call waiting for its ticket; replies for tickets nobody waits for any
//! more (late answers) are dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::topology::{amqp_int, ensure_exchange, open_channel, PIDBOX_EXCHANGE};
use super::AmqpError;
use crate::mailbox::{Collection, ControlError, Outcome, Request, Target, REPLY_EXCHANGE};

/// Celery's `control_queue_expires` and `control_queue_ttl`.
const REPLY_QUEUE_EXPIRES_MS: i32 = 10_000;
const REPLY_QUEUE_TTL_MS: i32 = 300_000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

type Waiters = Arc<parking_lot::Mutex<HashMap<String, mpsc::UnboundedSender<(String, Value)>>>>;

struct Session {
    _connection: Connection,
    channel: Channel,
    /// Our routing key on the reply exchange.
    oid: String,
    waiters: Waiters,
    broken: Arc<AtomicBool>,
    reader: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The pidbox client. Cheap to share; calls run concurrently.
pub struct Pidbox {
    uri: AMQPUri,
    default_timeout: Duration,
    clock: AtomicU64,
    session: tokio::sync::Mutex<Option<Arc<Session>>>,
}

impl Pidbox {
    pub fn new(uri: AMQPUri, default_timeout: Duration) -> Pidbox {
        Pidbox {
            uri,
            default_timeout,
            clock: AtomicU64::new(0),
            session: tokio::sync::Mutex::new(None),
        }
    }

    /// Sends `request` and, when it wants replies, collects them: each
    /// reply restarts the idle timeout (kombu's semantics), and collection
    /// ends early once every addressed or expected worker answered.
    pub async fn call(&self, request: &Request) -> Result<Outcome, ControlError> {
        let session = self.session().await?;
        let ticket = uuid::Uuid::new_v4().to_string();
        let receiver = if request.reply {
            let (tx, rx) = mpsc::unbounded_channel();
            session.waiters.lock().insert(ticket.clone(), tx);
            Some(rx)
        } else {
            None
        };
        let _cleanup = Cleanup {
            waiters: &session.waiters,
            ticket: &ticket,
        };
        let timeout = request.timeout.unwrap_or(self.default_timeout);
        let reply = request
            .reply
            .then_some((ticket.as_str(), session.oid.as_str()));
        let body = serde_json::to_vec(&request.body(reply)).unwrap_or_default();
        let clock = self.clock.fetch_add(1, Ordering::Relaxed) + 1;
        let published = session
            .channel
            .basic_publish(
                PIDBOX_EXCHANGE.into(),
                "".into(),
                BasicPublishOptions::default(),
                &body,
                request_properties(clock, crate::clock::now() + timeout.as_secs_f64()),
            )
            .await;
        if let Err(e) = published {
            session.broken.store(true, Ordering::Relaxed);
            return Err(ControlError::Unavailable(format!("publishing: {e}")));
        }
        let Some(mut rx) = receiver else {
            return Ok(Outcome::default());
        };
        let mut collection = Collection::new(request, timeout);
        while let Some(wait) = collection.next_wait() {
            match tokio::time::timeout(wait, rx.recv()).await {
                Ok(Some((node, value))) => collection.add(node, value),
                // The session broke (what arrived is all there is), or the
                // idle timeout passed.
                Ok(None) | Err(_) => break,
            }
        }
        Ok(collection.finish())
    }

    /// The live session, or a new one.
    async fn session(&self) -> Result<Arc<Session>, ControlError> {
        let mut slot = self.session.lock().await;
        if let Some(s) = slot.as_ref() {
            if !s.broken.load(Ordering::Relaxed) && s.channel.status().connected() {
                return Ok(s.clone());
            }
        }
        *slot = None;
        let session = Arc::new(self.connect().await?);
        *slot = Some(session.clone());
        Ok(session)
    }

    async fn connect(&self) -> Result<Session, ControlError> {
        let unavailable =
            |what: &str, e: lapin::Error| ControlError::Unavailable(format!("{what}: {e}"));
        let properties =
            ConnectionProperties::default().with_connection_name("celeriac-control".into());
        let connection = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect_uri(self.uri.clone(), properties),
        )
        .await
        .map_err(|_| ControlError::Unavailable("connecting timed out".into()))?
        .map_err(|e| unavailable("connecting", e))?;
        let exchange = |e: AmqpError| ControlError::Unavailable(e.to_string());
        ensure_exchange(&connection, PIDBOX_EXCHANGE, ExchangeKind::Fanout, false)
            .await
            .map_err(exchange)?;
        ensure_exchange(&connection, REPLY_EXCHANGE, ExchangeKind::Direct, false)
            .await
            .map_err(exchange)?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| unavailable("opening a channel", e))?;
        let oid = uuid::Uuid::new_v4().to_string();
        let queue = format!("{oid}.{REPLY_EXCHANGE}");
        let mut args = FieldTable::default();
        args.insert(
            "x-expires".into(),
            AMQPValue::LongInt(REPLY_QUEUE_EXPIRES_MS),
        );
        args.insert(
            "x-message-ttl".into(),
            AMQPValue::LongInt(REPLY_QUEUE_TTL_MS),
        );
        let options = QueueDeclareOptions {
            durable: false,
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(queue.as_str().into(), options, args)
            .await
            .map_err(|e| unavailable("declaring the reply queue", e))?;
        channel
            .queue_bind(
                queue.as_str().into(),
                REPLY_EXCHANGE.into(),
                oid.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| unavailable("binding the reply queue", e))?;
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                format!("celeriac.control.{oid}").into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| unavailable("consuming the reply queue", e))?;
        let waiters: Waiters = Arc::default();
        let broken = Arc::new(AtomicBool::new(false));
        let reader = tokio::spawn(read_replies(consumer, waiters.clone(), broken.clone()));
        tracing::debug!(queue, "remote-control session opened");
        Ok(Session {
            _connection: connection,
            channel,
            oid,
            waiters,
            broken,
            reader,
        })
    }
}

/// Removes a call's waiter however the call ends (a dropped HTTP request
/// included).
struct Cleanup<'a> {
    waiters: &'a Waiters,
    ticket: &'a str,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        self.waiters.lock().remove(self.ticket);
    }
}

async fn read_replies(mut consumer: lapin::Consumer, waiters: Waiters, broken: Arc<AtomicBool>) {
    while let Some(delivery) = consumer.next().await {
        let Ok(delivery) = delivery else { break };
        let Some(ticket) = ticket_of(&delivery.properties) else {
            continue;
        };
        let Some(tx) = waiters.lock().get(&ticket).cloned() else {
            tracing::debug!(ticket, "dropping a reply nobody waits for");
            continue;
        };
        match serde_json::from_slice::<Value>(&delivery.data) {
            Ok(Value::Object(map)) => {
                for (node, reply) in map {
                    let _ = tx.send((node, reply));
                }
            }
            _ => tracing::debug!("ignoring a reply that is not a JSON object"),
        }
    }
    broken.store(true, Ordering::Relaxed);
    // Dropping the senders ends every collection at once.
    waiters.lock().clear();
}

fn ticket_of(properties: &BasicProperties) -> Option<String> {
    let headers = properties.headers().as_ref()?;
    match headers.inner().get("ticket")? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

pub(super) fn request_properties(clock: u64, expires: f64) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert("clock".into(), amqp_int(clock));
    headers.insert("expires".into(), AMQPValue::Double(expires));
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(2)
        .with_priority(0)
        .with_headers(headers)
}

/// Fire-and-forget broadcasts to every worker, one per event-source
/// connection: the wake-up `heartbeat`, so workers announce themselves at
/// once instead of within their next heartbeat period, and `enable_events`
/// periodically, as Flower does, so workers started without `-E` still send
/// task events.
pub(crate) struct Broadcaster {
    channel: Channel,
    /// Our Lamport clock: workers only take the max with theirs, so a
    /// counter that starts at zero is enough.
    clock: u64,
}

impl Broadcaster {
    pub async fn open(conn: &Connection) -> Result<Broadcaster, AmqpError> {
        ensure_exchange(conn, PIDBOX_EXCHANGE, ExchangeKind::Fanout, false).await?;
        Ok(Broadcaster {
            channel: open_channel(conn).await?,
            clock: 0,
        })
    }

    pub async fn broadcast(&mut self, method: &str) -> Result<(), lapin::Error> {
        self.clock += 1;
        let body = request_body(method);
        self.channel
            .basic_publish(
                PIDBOX_EXCHANGE.into(),
                "".into(),
                BasicPublishOptions::default(),
                &body,
                request_properties(self.clock, crate::clock::now() + 1.0),
            )
            .await
            .map(drop)
    }
}

/// Sends the wake-up heartbeat, then `enable_events` every `interval` when
/// asked to, until the connection breaks; the session aborts it when it
/// ends. A failure here is only logged: the consumer notices a dead
/// connection on its own.
pub(crate) async fn run_broadcasts(mut pidbox: Broadcaster, enable_events: Option<Duration>) {
    if let Err(e) = pidbox.broadcast("heartbeat").await {
        tracing::debug!(error = %e, "wake-up heartbeat broadcast failed");
        return;
    }
    let Some(interval) = enable_events else {
        return;
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(e) = pidbox.broadcast("enable_events").await {
            tracing::debug!(error = %e, "enable_events broadcast failed");
            return;
        }
    }
}

/// A request to every worker with no reply wanted (no `ticket`, no
/// `reply_to`), exactly as Celery's `broadcast(..., reply=False)` sends it.
pub(crate) fn request_body(method: &str) -> Vec<u8> {
    let request = Request::new(method, Value::Object(Map::new()), Target::All).without_reply();
    request.body(None).to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_celerys_reply_less_broadcast() {
        let v: serde_json::Value = serde_json::from_slice(&request_body("heartbeat")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"method": "heartbeat", "arguments": {}, "destination": null,
                               "pattern": null, "matcher": null})
        );
        let v: serde_json::Value = serde_json::from_slice(&request_body("enable_events")).unwrap();
        assert_eq!(v["method"], "enable_events");
        assert!(v.get("reply_to").is_none() && v.get("ticket").is_none());
    }

    #[test]
    fn properties_carry_an_int_clock_and_a_double_expiry() {
        let p = request_properties(92, 1795424489.099288);
        assert_eq!(
            p.content_type().as_ref().map(|s| s.as_str()),
            Some("application/json")
        );
        assert_eq!(p.reply_to(), &None);
        let headers = p.headers().as_ref().unwrap().inner();
        assert_eq!(headers.get("clock"), Some(&AMQPValue::LongInt(92)));
        assert_eq!(
            headers.get("expires"),
            Some(&AMQPValue::Double(1795424489.099288))
        );
    }
}
