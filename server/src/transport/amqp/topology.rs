//! What celeriac declares on the broker, and why each flag is what it is
//! (docs/celery-protocol.md §1.1, §1.2, §4.1; README.md, "The events
//! queue"; `ingest/args.rs` for the defaults).

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ErrorKind, ExchangeKind};

use super::AmqpError;
use crate::ingest::IngestArgs;

/// Celery's event exchange. Every publisher declares it `topic, durable`; a
/// declare with other flags would be refused with 406, so we check it
/// passively and create it only when no worker ever has.
pub const EVENT_EXCHANGE: &str = "celeryev";
/// Where our events queue dead-letters what the broker drops (TTL expiry,
/// max-length overflow), so drops are counted instead of silent. `direct`,
/// and each queue dead-letters with its own routing key, so several
/// celeriac instances on one broker never count each other's drops.
pub const DLX_EXCHANGE: &str = "celeriac.dlx";
/// Celery's remote-control exchange (fanout, transient).
pub const PIDBOX_EXCHANGE: &str = "celery.pidbox";

/// Celery's `event_queue_expires` (60 s): an abandoned per-process queue
/// goes away on its own.
const PROCESS_QUEUE_EXPIRES_MS: u64 = 60_000;
/// The dropped-events queue only feeds a counter; a cap keeps a long outage
/// of a `--events-queue` celeriac from pinning broker memory. Drops beyond
/// it while celeriac is down go uncounted.
const DROPPED_QUEUE_MAX_LENGTH: u64 = 100_000;

/// Flags and arguments of one queue. Always durable, never exclusive or
/// auto-deleted: celeriac's queues outlive a dropped connection, and
/// RabbitMQ 4.3 refuses queues that are neither durable nor exclusive (the
/// deprecated `transient_nonexcl_queues` feature); see [`Queues::new`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QueueSpec {
    pub name: String,
    pub durable: bool,
    pub args: FieldTable,
}

impl QueueSpec {
    /// The same queue as declared without dead-lettering arguments.
    pub fn without_dead_lettering(&self) -> QueueSpec {
        let mut args = FieldTable::default();
        for (k, v) in self.args.inner() {
            if !k.as_str().starts_with("x-dead-letter") {
                args.insert(k.clone(), v.clone());
            }
        }
        QueueSpec {
            args,
            ..self.clone()
        }
    }
}

/// The events queue and the queue its dead letters go to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Queues {
    pub events: QueueSpec,
    pub dropped: QueueSpec,
}

impl Queues {
    /// `instance` names the transient queues of one celeriac process.
    pub fn new(args: &IngestArgs, instance: &str) -> Queues {
        let named = args.events_queue.as_deref();
        let (events_name, dropped_name) = match named {
            Some(name) => (name.to_string(), format!("{name}.dropped")),
            None => (
                format!("celeriac.{instance}"),
                format!("celeriac.{instance}.dropped"),
            ),
        };
        let mut events_args = FieldTable::default();
        events_args.insert(
            "x-message-ttl".into(),
            amqp_int(args.events_ttl.saturating_mul(1000)),
        );
        events_args.insert("x-max-length".into(), amqp_int(args.events_max_length));
        events_args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(DLX_EXCHANGE.into()),
        );
        events_args.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(dropped_name.as_str().into()),
        );
        let mut dropped_args = FieldTable::default();
        dropped_args.insert("x-max-length".into(), amqp_int(DROPPED_QUEUE_MAX_LENGTH));
        if named.is_none() {
            events_args.insert("x-expires".into(), amqp_int(PROCESS_QUEUE_EXPIRES_MS));
            dropped_args.insert("x-expires".into(), amqp_int(PROCESS_QUEUE_EXPIRES_MS));
        }
        // A named queue outlives celeriac so that nothing is lost across a
        // restart. The per-process one is not exclusive, as Celery 5.7's own
        // event receiver queue is, since that dies with the connection and a
        // reconnect would miss what was published in between; it is durable
        // (RabbitMQ 4.3 refuses a transient queue that is not exclusive) and
        // expires 60 s after its last consumer instead, and celeriac deletes
        // it on exit.
        Queues {
            events: QueueSpec {
                name: events_name,
                durable: true,
                args: events_args,
            },
            dropped: QueueSpec {
                name: dropped_name,
                durable: true,
                args: dropped_args,
            },
        }
    }
}

/// An integer as py-amqp encodes it (signed 32-bit when it fits), so
/// arguments compare equal to those Celery tools declare.
pub(crate) fn amqp_int(v: u64) -> AMQPValue {
    match i32::try_from(v) {
        Ok(v) => AMQPValue::LongInt(v),
        Err(_) => AMQPValue::LongLongInt(i64::try_from(v).unwrap_or(i64::MAX)),
    }
}

fn reply_code(error: &lapin::Error) -> Option<u16> {
    match error.kind() {
        ErrorKind::ProtocolError(e) => Some(e.get_id()),
        _ => None,
    }
}

/// Makes sure an exchange exists without risking a 406 on one that others
/// declared: a passive check first, and a real declare (with exactly the
/// flags Celery uses) only if it is missing.
pub(crate) async fn ensure_exchange(
    conn: &Connection,
    name: &str,
    kind: ExchangeKind,
    durable: bool,
) -> Result<(), AmqpError> {
    let channel = open_channel(conn).await?;
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..ExchangeDeclareOptions::default()
    };
    match channel
        .exchange_declare(name.into(), kind.clone(), passive, FieldTable::default())
        .await
    {
        Ok(()) => {
            close_quietly(&channel).await;
            return Ok(());
        }
        Err(e) if reply_code(&e) == Some(404) => {}
        Err(e) => return Err(AmqpError::amqp(format!("checking exchange `{name}`"))(e)),
    }
    // The 404 closed that channel.
    let channel = open_channel(conn).await?;
    let options = ExchangeDeclareOptions {
        durable,
        auto_delete: false,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(name.into(), kind, options, FieldTable::default())
        .await
        .map_err(AmqpError::amqp(format!("declaring exchange `{name}`")))?;
    close_quietly(&channel).await;
    Ok(())
}

/// Declares a queue; a refusal because the queue already exists with other
/// arguments is reported naming the queue, the argument and the fix.
/// Declares `spec`; returns the messages the queue holds (what was
/// published while nobody consumed it).
pub(crate) async fn declare_queue(channel: &Channel, spec: &QueueSpec) -> Result<u32, AmqpError> {
    let options = QueueDeclareOptions {
        passive: false,
        durable: spec.durable,
        exclusive: false,
        auto_delete: false,
        nowait: false,
    };
    channel
        .queue_declare(spec.name.as_str().into(), options, spec.args.clone())
        .await
        .map(|queue| queue.message_count())
        .map_err(|error| match (reply_code(&error), &error.kind()) {
            (Some(406), ErrorKind::ProtocolError(e)) => {
                queue_mismatch(&spec.name, e.get_message().as_str())
            }
            _ => AmqpError::amqp(format!("declaring queue `{}`", spec.name))(error),
        })
}

pub(crate) async fn bind_queue(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    routing_key: &str,
) -> Result<(), AmqpError> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            routing_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(AmqpError::amqp(format!(
            "binding queue `{queue}` to `{exchange}` with `{routing_key}`"
        )))
}

pub(crate) async fn open_channel(conn: &Connection) -> Result<Channel, AmqpError> {
    conn.create_channel()
        .await
        .map_err(AmqpError::amqp("opening a channel"))
}

async fn close_quietly(channel: &Channel) {
    // A setup channel left open would only waste a channel slot; failing to
    // close it says nothing the next operation would not.
    let _ = channel.close(200, "OK".into()).await;
}

/// RabbitMQ says e.g. `PRECONDITION_FAILED - inequivalent arg 'x-message-ttl'
/// for queue 'q' in vhost '/': received the value '600000' of type
/// 'signedint' but current value is '5000' of type 'signedint'`.
pub(crate) fn queue_mismatch(queue: &str, broker_text: &str) -> AmqpError {
    let argument = broker_text
        .split_once("inequivalent arg '")
        .and_then(|(_, rest)| rest.split_once('\''))
        .map(|(arg, _)| arg.to_string())
        .unwrap_or_else(|| "flags or arguments".to_string());
    let hint = match argument.as_str() {
        "x-message-ttl" => "start celeriac with the `--events-ttl` the queue was declared with",
        "x-max-length" => {
            "start celeriac with the `--events-max-length` the queue was declared with"
        }
        "durable" | "exclusive" | "auto_delete" => {
            "the queue was declared by something other than celeriac; choose another `--events-queue` name"
        }
        _ => "the queue was declared by another program or celeriac version; choose another `--events-queue` name",
    };
    AmqpError::QueueMismatch {
        queue: queue.to_string(),
        argument,
        detail: broker_text.to_string(),
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(flags: &[&str]) -> IngestArgs {
        crate::test_args::parse(flags)
    }

    fn arg<'a>(spec: &'a QueueSpec, key: &str) -> Option<&'a AMQPValue> {
        spec.args.inner().get(key)
    }

    #[test]
    fn the_default_queue_is_per_process_durable_expiring_with_generous_ttl_and_a_cap() {
        let q = Queues::new(
            &config(&["--events-ttl", "600", "--events-max-length", "1000"]),
            "abc",
        );
        let e = &q.events;
        assert_eq!(e.name, "celeriac.abc");
        assert!(
            e.durable,
            "RabbitMQ 4.3 refuses transient non-exclusive queues"
        );
        assert_eq!(arg(e, "x-message-ttl"), Some(&AMQPValue::LongInt(600_000)));
        assert_eq!(arg(e, "x-expires"), Some(&AMQPValue::LongInt(60_000)));
        assert_eq!(arg(e, "x-max-length"), Some(&AMQPValue::LongInt(1000)));
        assert_eq!(
            arg(e, "x-dead-letter-exchange"),
            Some(&AMQPValue::LongString("celeriac.dlx".into()))
        );
        assert_eq!(
            arg(e, "x-dead-letter-routing-key"),
            Some(&AMQPValue::LongString("celeriac.abc.dropped".into()))
        );
        let d = &q.dropped;
        assert_eq!(d.name, "celeriac.abc.dropped");
        assert!(d.durable);
        assert_eq!(arg(d, "x-expires"), Some(&AMQPValue::LongInt(60_000)));
    }

    #[test]
    fn a_named_queue_is_durable_and_never_expires() {
        let q = Queues::new(&config(&["--events-queue", "mon"]), "ignored");
        let e = &q.events;
        assert_eq!(e.name, "mon");
        assert!(e.durable);
        assert_eq!(arg(e, "x-expires"), None);
        assert_eq!(
            arg(e, "x-message-ttl"),
            Some(&amqp_int(crate::ingest::DEFAULT_EVENTS_TTL_SECS * 1000))
        );
        assert_eq!(
            arg(e, "x-dead-letter-routing-key"),
            Some(&AMQPValue::LongString("mon.dropped".into()))
        );
        let plain = e.without_dead_lettering();
        assert_eq!(plain.args.inner().len(), 2);
        assert_eq!(arg(&plain, "x-max-length"), arg(e, "x-max-length"));
        let d = &q.dropped;
        assert_eq!(d.name, "mon.dropped");
        assert!(d.durable);
        assert_eq!(arg(d, "x-expires"), None);
    }

    #[test]
    fn integers_take_the_narrowest_signed_type() {
        assert_eq!(amqp_int(5000), AMQPValue::LongInt(5000));
        assert_eq!(amqp_int(1 << 40), AMQPValue::LongLongInt(1 << 40));
        assert_eq!(amqp_int(u64::MAX), AMQPValue::LongLongInt(i64::MAX));
    }

    #[test]
    fn a_mismatch_names_the_queue_the_argument_and_the_flag() {
        let e = queue_mismatch(
            "mon",
            "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'mon' in vhost '/': \
             received the value '600000' of type 'signedint' but current value is '5000' of type 'signedint'",
        );
        let text = e.to_string();
        assert!(text.contains("`mon`"), "{text}");
        assert!(text.contains("`x-message-ttl`"), "{text}");
        assert!(text.contains("--events-ttl"), "{text}");
        assert!(text.contains("current value is '5000'"), "{text}");

        let text = queue_mismatch("mon", "PRECONDITION_FAILED - something else").to_string();
        assert!(text.contains("flags or arguments"), "{text}");
    }
}
