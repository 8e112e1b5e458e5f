//! A kombu pidbox client over lapin (celery-protocol §4): requests to the
//! `celery.pidbox` fanout exchange, replies on our own exclusive queue
//! `<oid>.reply.celery.pidbox` bound to the `reply.celery.pidbox` direct
//! exchange, matched to their request by `ticket`.
//!
//! The client owns one connection and channel of its own, opened on first
//! use and again after it breaks. One reader task routes every reply to the
//! call waiting for its ticket; replies for tickets nobody waits for any
//! more (late answers) are dropped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Celery's remote-control request exchange (fanout, transient).
pub const REQUEST_EXCHANGE: &str = "celery.pidbox";
/// Where workers publish replies (direct, transient).
pub const REPLY_EXCHANGE: &str = "reply.celery.pidbox";
/// Celery's `control_queue_expires` and `control_queue_ttl`.
const REPLY_QUEUE_EXPIRES_MS: i32 = 10_000;
const REPLY_QUEUE_TTL_MS: i32 = 300_000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A collection never lasts longer than this many idle timeouts, however
/// slowly replies trickle in (kombu has no such bound without a limit).
const MAX_IDLE_PERIODS: u32 = 10;

/// Which workers a request addresses (celery-protocol §4.2).
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Every worker (`destination: null`).
    All,
    /// Exact nodenames.
    Workers(Vec<String>),
    /// `matcher` is `glob` (fnmatch) or `pcre` (Python `re.match`).
    Pattern { pattern: String, matcher: Matcher },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matcher {
    Glob,
    Pcre,
}

impl Matcher {
    pub fn as_str(self) -> &'static str {
        match self {
            Matcher::Glob => "glob",
            Matcher::Pcre => "pcre",
        }
    }
}

/// One request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Keyword arguments of the command (a JSON object).
    pub arguments: Map<String, Value>,
    pub target: Target,
    /// Whether to ask for and collect replies.
    pub reply: bool,
    /// Idle timeout between replies; the client default when None.
    pub timeout: Option<Duration>,
    /// Workers expected to answer when the target is not a list (the live
    /// workers celeriac knows): collection ends once all of them answered,
    /// and those that did not are reported as "no reply".
    pub expect: Option<Vec<String>>,
}

impl Request {
    pub fn new(method: &str, arguments: Value, target: Target) -> Request {
        Request {
            method: method.to_string(),
            arguments: match arguments {
                Value::Object(m) => m,
                _ => Map::new(),
            },
            target,
            reply: true,
            timeout: None,
            expect: None,
        }
    }

    pub fn without_reply(mut self) -> Request {
        self.reply = false;
        self
    }

    pub fn expecting(mut self, workers: Vec<String>) -> Request {
        self.expect = Some(workers);
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = Some(timeout);
        self
    }

    /// The message body, as `kombu.pidbox.Mailbox._publish` builds it.
    pub fn body(&self, reply: Option<(&str, &str)>) -> Value {
        let (destination, pattern, matcher) = match &self.target {
            Target::All => (Value::Null, Value::Null, Value::Null),
            Target::Workers(list) => (json!(list), Value::Null, Value::Null),
            Target::Pattern { pattern, matcher } => {
                (Value::Null, json!(pattern), json!(matcher.as_str()))
            }
        };
        let mut body = json!({
            "method": self.method,
            "arguments": self.arguments,
            "destination": destination,
            "pattern": pattern,
            "matcher": matcher,
        });
        if let Some((ticket, routing_key)) = reply {
            body["ticket"] = json!(ticket);
            body["reply_to"] = json!({"exchange": REPLY_EXCHANGE, "routing_key": routing_key});
        }
        body
    }

    /// The workers whose replies end collection early, if known.
    fn expected(&self) -> Option<HashSet<String>> {
        match &self.target {
            Target::Workers(list) => Some(list.iter().cloned().collect()),
            _ => self.expect.as_ref().map(|v| v.iter().cloned().collect()),
        }
    }
}

/// Each worker's answer. A worker that answered twice keeps its first reply
/// (kombu's flattening keeps the last and warns; either is a worker bug).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Outcome {
    /// `{nodename: reply}` in nodename order.
    pub replies: BTreeMap<String, Value>,
    /// Addressed (or expected) workers that did not answer in time.
    pub no_reply: Vec<String>,
}

impl Outcome {
    /// The text of an `{"error": ...}` reply.
    pub fn error_of(&self, worker: &str) -> Option<String> {
        self.replies
            .get(worker)
            .and_then(|r| r.get("error"))
            .map(text_of)
    }

    /// The text of an `{"ok": ...}` reply.
    pub fn ok_of(&self, worker: &str) -> Option<String> {
        self.replies
            .get(worker)
            .and_then(|r| r.get("ok"))
            .map(text_of)
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("the broker is unavailable for remote control: {0}")]
    Unavailable(String),
}

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

    pub fn default_timeout(&self) -> Duration {
        self.default_timeout
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
                REQUEST_EXCHANGE.into(),
                "".into(),
                BasicPublishOptions::default(),
                &body,
                request_properties(clock, crate::shared::now() + timeout.as_secs_f64()),
            )
            .await;
        if let Err(e) = published {
            session.broken.store(true, Ordering::Relaxed);
            return Err(ControlError::Unavailable(format!("publishing: {e}")));
        }
        let Some(mut rx) = receiver else {
            return Ok(Outcome::default());
        };
        let expected = request.expected();
        let mut outcome = Outcome::default();
        let deadline = tokio::time::Instant::now() + timeout * MAX_IDLE_PERIODS;
        loop {
            if let Some(exp) = &expected {
                if exp.iter().all(|w| outcome.replies.contains_key(w)) {
                    break;
                }
            }
            let wait = timeout.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            match tokio::time::timeout(wait, rx.recv()).await {
                Ok(Some((node, value))) => {
                    outcome.replies.entry(node).or_insert(value);
                }
                // The session broke: what arrived is all there is.
                Ok(None) => break,
                Err(_) => break,
            }
        }
        if let Some(exp) = expected {
            let mut missing: Vec<String> = exp
                .into_iter()
                .filter(|w| !outcome.replies.contains_key(w))
                .collect();
            missing.sort();
            outcome.no_reply = missing;
        }
        Ok(outcome)
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
        ensure_exchange(&connection, REQUEST_EXCHANGE, ExchangeKind::Fanout).await?;
        ensure_exchange(&connection, REPLY_EXCHANGE, ExchangeKind::Direct).await?;
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

fn request_properties(clock: u64, expires: f64) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        "clock".into(),
        i32::try_from(clock)
            .map(AMQPValue::LongInt)
            .unwrap_or(AMQPValue::LongLongInt(clock as i64)),
    );
    headers.insert("expires".into(), AMQPValue::Double(expires));
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(2)
        .with_priority(0)
        .with_headers(headers)
}

/// A passive check first (someone else's declaration wins), then a declare
/// with Celery's flags (transient, not auto-deleted) if it is missing.
async fn ensure_exchange(
    conn: &Connection,
    name: &str,
    kind: ExchangeKind,
) -> Result<(), ControlError> {
    let err = |e: lapin::Error| ControlError::Unavailable(format!("exchange `{name}`: {e}"));
    let channel = conn.create_channel().await.map_err(err)?;
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..ExchangeDeclareOptions::default()
    };
    if channel
        .exchange_declare(name.into(), kind.clone(), passive, FieldTable::default())
        .await
        .is_ok()
    {
        let _ = channel.close(200, "OK".into()).await;
        return Ok(());
    }
    let channel = conn.create_channel().await.map_err(err)?;
    channel
        .exchange_declare(
            name.into(),
            kind,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(err)?;
    let _ = channel.close(200, "OK".into()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_match_kombus() {
        let r = Request::new("ping", json!({}), Target::All);
        let b = r.body(Some(("t1", "oid")));
        assert_eq!(
            b,
            json!({"method": "ping", "arguments": {}, "destination": null, "pattern": null,
                   "matcher": null, "ticket": "t1",
                   "reply_to": {"exchange": "reply.celery.pidbox", "routing_key": "oid"}})
        );
        let r = Request::new(
            "revoke",
            json!({"task_id": "x", "terminate": true}),
            Target::Workers(vec!["w1@vm".into()]),
        )
        .without_reply();
        let b = r.body(None);
        assert_eq!(b["destination"], json!(["w1@vm"]));
        assert!(b.get("ticket").is_none() && b.get("reply_to").is_none());
        let r = Request::new(
            "ping",
            json!({}),
            Target::Pattern {
                pattern: "w1@.*".into(),
                matcher: Matcher::Pcre,
            },
        );
        let b = r.body(None);
        assert_eq!(
            (b["pattern"].clone(), b["matcher"].clone()),
            (json!("w1@.*"), json!("pcre"))
        );
    }

    #[test]
    fn expected_workers_come_from_the_list_or_the_hint() {
        let r = Request::new("ping", json!({}), Target::Workers(vec!["a".into()]));
        assert_eq!(r.expected(), Some(HashSet::from(["a".to_string()])));
        let r = Request::new("ping", json!({}), Target::All);
        assert_eq!(r.expected(), None);
        let r = r.expecting(vec!["b".into()]);
        assert_eq!(r.expected(), Some(HashSet::from(["b".to_string()])));
    }

    #[test]
    fn outcome_reads_ok_and_error_texts() {
        let mut o = Outcome::default();
        o.replies
            .insert("w".into(), json!({"error": "unknown task"}));
        o.replies.insert("v".into(), json!({"ok": "pong"}));
        assert_eq!(o.error_of("w").as_deref(), Some("unknown task"));
        assert_eq!(o.ok_of("v").as_deref(), Some("pong"));
        assert_eq!(o.ok_of("w"), None);
    }
}
