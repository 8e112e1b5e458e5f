//! Publishing task messages as a Celery client does (docs/celery-protocol.md
//! §7), on a connection of its own with publisher confirms and `mandatory`:
//! a message no queue receives comes back (`basic.return`, then the ack)
//! and is reported as unroutable instead of silently dropped. Nothing is
//! declared: a target queue with other flags would answer 406.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};

use crate::submit::{Header, PublishError, TaskMessage};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the broker may take to confirm one message.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

struct Session {
    _connection: Connection,
    channel: Channel,
}

/// The task publisher. Connects on first use and again after a failure;
/// publishes one message at a time on its channel.
pub struct TaskPublisher {
    uri: AMQPUri,
    session: tokio::sync::Mutex<Option<Session>>,
}

impl TaskPublisher {
    pub fn new(uri: AMQPUri) -> TaskPublisher {
        TaskPublisher {
            uri,
            session: tokio::sync::Mutex::new(None),
        }
    }

    pub async fn publish(&self, m: &TaskMessage) -> Result<(), PublishError> {
        let mut slot = self.session.lock().await;
        if !slot
            .as_ref()
            .is_some_and(|s| s.channel.status().connected())
        {
            *slot = Some(self.connect().await?);
        }
        let Some(session) = slot.as_ref() else {
            return Err(PublishError::Unavailable("no channel".into()));
        };
        let result = publish_on(&session.channel, m).await;
        if matches!(result, Err(PublishError::Unavailable(_))) {
            *slot = None;
        }
        result
    }

    async fn connect(&self) -> Result<Session, PublishError> {
        let unavailable =
            |what: &str, e: lapin::Error| PublishError::Unavailable(format!("{what}: {e}"));
        let properties =
            ConnectionProperties::default().with_connection_name("celeriac-publish".into());
        let connection = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect_uri(self.uri.clone(), properties),
        )
        .await
        .map_err(|_| PublishError::Unavailable("connecting timed out".into()))?
        .map_err(|e| unavailable("connecting", e))?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| unavailable("opening a channel", e))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| unavailable("enabling publisher confirms", e))?;
        Ok(Session {
            _connection: connection,
            channel,
        })
    }
}

async fn publish_on(channel: &Channel, m: &TaskMessage) -> Result<(), PublishError> {
    let unavailable = |e: lapin::Error| PublishError::Unavailable(format!("publishing: {e}"));
    let confirm = channel
        .basic_publish(
            m.route.exchange.as_str().into(),
            m.route.routing_key.as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                immediate: false,
            },
            &m.body(),
            properties(m),
        )
        .await
        .map_err(unavailable)?;
    let confirmation = tokio::time::timeout(CONFIRM_TIMEOUT, confirm)
        .await
        .map_err(|_| PublishError::Unavailable("the broker did not confirm in time".into()))?
        .map_err(unavailable)?;
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
            Err(PublishError::Unroutable {
                exchange: m.route.exchange.clone(),
                routing_key: m.route.routing_key.clone(),
                reply: format!("{} {}", returned.reply_code, returned.reply_text),
            })
        }
        Confirmation::Nack(None) => Err(PublishError::Refused),
        Confirmation::NotRequested => Err(PublishError::Unavailable(
            "publisher confirms are off on this channel".into(),
        )),
    }
}

/// Celery's properties: json, utf-8, persistent, the id as correlation id.
pub(crate) fn properties(m: &TaskMessage) -> BasicProperties {
    let mut headers = FieldTable::default();
    for (name, value) in m.headers() {
        headers.insert(name.into(), amqp_value(value));
    }
    let mut p = BasicProperties::default()
        .with_content_type(TaskMessage::CONTENT_TYPE.into())
        .with_content_encoding(TaskMessage::CONTENT_ENCODING.into())
        .with_delivery_mode(TaskMessage::DELIVERY_MODE)
        .with_correlation_id(m.id.as_str().into())
        .with_reply_to(m.reply_to.as_str().into())
        .with_headers(headers);
    if let Some(priority) = m.priority {
        p = p.with_priority(priority);
    }
    if let Some(ms) = m.expiration_ms {
        p = p.with_expiration(ms.to_string().into());
    }
    p
}

/// As py-amqp encodes Python values: `str` as a long string, `int` as a
/// 32-bit int when it fits, `None` as void.
fn amqp_value(h: Header) -> AMQPValue {
    match h {
        Header::Null => AMQPValue::Void,
        Header::Bool(b) => AMQPValue::Boolean(b),
        Header::Int(i) => match i32::try_from(i) {
            Ok(i) => AMQPValue::LongInt(i),
            Err(_) => AMQPValue::LongLongInt(i),
        },
        Header::Float(f) => AMQPValue::Double(f),
        Header::Str(s) => AMQPValue::LongString(LongString::from(s)),
        Header::Array(items) => {
            let mut array = FieldArray::default();
            for item in items {
                array.push(amqp_value(item));
            }
            AMQPValue::FieldArray(array)
        }
        Header::Table(entries) => {
            let mut table = FieldTable::default();
            for (k, v) in entries {
                table.insert(k.into(), amqp_value(v));
            }
            AMQPValue::FieldTable(table)
        }
    }
}
