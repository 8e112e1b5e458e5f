//! Publishing task messages on Redis as kombu's Redis transport does
//! (docs/celery-protocol.md §8.2): the envelope is `LPUSH`ed to the list of
//! each queue the route reaches, the list of the message's priority step.
//! The default exchange (`""`) routes to the queue named by the routing key;
//! a named exchange routes through its binding set
//! (`_kombu.binding.<exchange>`), and a route no binding matches is refused
//! as unroutable rather than dropped, like `mandatory` on RabbitMQ.

use base64::Engine;
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use serde_json::{json, Map, Value};

use super::keys::{Keys, SEP};
use super::Redis;
use crate::submit::{Header, PublishError, TaskMessage};

/// kombu's default `priority_steps`.
const PRIORITY_STEPS: [u8; 4] = [0, 3, 6, 9];

/// The task publisher. Connects on first use and again after a failure.
pub struct TaskPublisher {
    redis: Redis,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

impl TaskPublisher {
    pub fn new(redis: Redis) -> TaskPublisher {
        TaskPublisher {
            redis,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    pub async fn publish(&self, m: &TaskMessage) -> Result<(), PublishError> {
        let mut slot = self.conn.lock().await;
        let conn = match slot.as_mut() {
            Some(c) => c,
            None => slot.insert(
                self.redis
                    .commands()
                    .await
                    .map_err(|e| PublishError::Unavailable(format!("connecting: {e}")))?,
            ),
        };
        let result = publish_on(conn, &self.redis.keys, m).await;
        if matches!(result, Err(PublishError::Unavailable(_))) {
            *slot = None;
        }
        result
    }
}

async fn publish_on(
    conn: &mut MultiplexedConnection,
    keys: &Keys,
    m: &TaskMessage,
) -> Result<(), PublishError> {
    let unavailable = |e: redis::RedisError| PublishError::Unavailable(format!("publishing: {e}"));
    let route = &m.route;
    let queues: Vec<String> = if route.exchange.is_empty() {
        vec![route.routing_key.clone()]
    } else {
        let members: Vec<String> = conn
            .smembers(keys.binding(&route.exchange))
            .await
            .map_err(unavailable)?;
        bound_queues(&members, &route.routing_key)
    };
    if queues.is_empty() {
        return Err(PublishError::Unroutable {
            exchange: route.exchange.clone(),
            routing_key: route.routing_key.clone(),
            reply: "no binding in Redis matches".into(),
        });
    }
    let payload = envelope(m);
    let step = priority_step(m.priority.unwrap_or(0));
    for queue in queues {
        let _: i64 = conn
            .lpush(keys.list(&queue, step), &payload)
            .await
            .map_err(unavailable)?;
    }
    Ok(())
}

/// The queues a direct exchange's binding members route `routing_key` to.
fn bound_queues(members: &[String], routing_key: &str) -> Vec<String> {
    members
        .iter()
        .filter_map(|m| {
            let mut parts = m.splitn(3, SEP);
            let (key, _pattern, queue) = (parts.next()?, parts.next()?, parts.next()?);
            (key == routing_key && !queue.is_empty()).then(|| queue.to_string())
        })
        .collect()
}

/// The step a priority falls in: the largest step not above it.
fn priority_step(priority: u8) -> u8 {
    PRIORITY_STEPS
        .iter()
        .copied()
        .filter(|s| *s <= priority)
        .max()
        .unwrap_or(0)
}

fn header_json(h: Header) -> Value {
    match h {
        Header::Null => Value::Null,
        Header::Bool(b) => json!(b),
        Header::Int(i) => json!(i),
        Header::Float(f) => json!(f),
        Header::Str(s) => json!(s),
        Header::Array(items) => Value::Array(items.into_iter().map(header_json).collect()),
        Header::Table(entries) => Value::Object(
            entries
                .into_iter()
                .map(|(k, v)| (k, header_json(v)))
                .collect(),
        ),
    }
}

/// The message as kombu's Redis transport stores it.
fn envelope(m: &TaskMessage) -> Vec<u8> {
    let headers: Map<String, Value> = m
        .headers()
        .into_iter()
        .map(|(k, v)| (k.to_string(), header_json(v)))
        .collect();
    json!({
        "body": base64::engine::general_purpose::STANDARD.encode(m.body()),
        "content-encoding": TaskMessage::CONTENT_ENCODING,
        "content-type": TaskMessage::CONTENT_TYPE,
        "headers": headers,
        "properties": {
            "correlation_id": m.id,
            "reply_to": m.reply_to,
            "delivery_mode": TaskMessage::DELIVERY_MODE,
            "delivery_info": {"exchange": m.route.exchange, "routing_key": m.route.routing_key},
            "priority": m.priority.unwrap_or(0),
            "body_encoding": "base64",
            "delivery_tag": uuid::Uuid::new_v4().to_string(),
        },
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_fall_in_kombus_steps() {
        let steps: Vec<u8> = [0, 1, 3, 5, 6, 8, 9, 10, 255]
            .into_iter()
            .map(priority_step)
            .collect();
        assert_eq!(steps, [0, 0, 3, 3, 6, 6, 9, 9, 9]);
    }

    #[test]
    fn a_named_exchange_routes_through_its_bindings() {
        let members = vec![
            "celery\x06\x16\x06\x16celery".to_string(),
            "video\x06\x16\x06\x16video".to_string(),
            "video\x06\x16\x06\x16video-backup".to_string(),
        ];
        assert_eq!(bound_queues(&members, "video"), ["video", "video-backup"]);
        assert!(bound_queues(&members, "nope").is_empty());
    }
}
