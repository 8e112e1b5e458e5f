//! `GET /api/queues/length`: Flower's queue listing, with where the figures
//! come from.

use serde::{Deserialize, Serialize};

/// Where queue statistics came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueSource {
    /// The RabbitMQ management HTTP API.
    Management,
    /// Passive `queue.declare` over AMQP.
    Amqp,
    /// `LLEN` of each queue's lists on Redis.
    Redis,
}

/// `GET /api/queues/length`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueuesLength {
    /// Sorted by name.
    pub active_queues: Vec<QueueStat>,
    /// celeriac's addition: `null` before the first successful poll.
    pub source: Option<QueueSource>,
    /// celeriac's addition: ETA and countdown tasks waiting in RabbitMQ's
    /// native delayed delivery (quorum queues), due later and counted in no
    /// queue's depth; absent when the broker has no such cascade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_broker_side: Option<u64>,
}

/// One queue. Fields a source cannot tell are absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueStat {
    pub name: String,
    /// Ready + unacknowledged. The AMQP fallback only knows ready messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<u64>,
    /// Waiting for delivery (`celery_queue_length`), from either source.
    pub messages_ready: u64,
    /// Delivered, not acked yet (includes worker prefetch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_unacknowledged: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumers: Option<u64>,
    /// Messages published per second (management stats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_rate: Option<f64>,
    /// Messages delivered (or got) per second (management stats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_rate: Option<f64>,
    /// Present only while the queue is idle, as RabbitMQ formats it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_since: Option<String>,
    /// `classic`, `quorum` or `stream` (RabbitMQ's management API only).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub queue_type: Option<String>,
    /// The management API's other keys of the queue (`vhost`, `durable`,
    /// `arguments`, `message_stats`, `memory`, ...), passed on as Flower
    /// passes the whole object, secrets masked; none from other sources.
    #[serde(flatten, default)]
    pub management: serde_json::Map<String, serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_round_trip_leaving_out_what_a_source_cannot_tell() {
        let listing = QueuesLength {
            active_queues: vec![
                QueueStat {
                    name: "celery".into(),
                    messages: Some(3),
                    messages_ready: 2,
                    messages_unacknowledged: Some(1),
                    consumers: Some(1),
                    publish_rate: Some(0.5),
                    deliver_rate: Some(0.25),
                    idle_since: None,
                    queue_type: Some("quorum".into()),
                    management: serde_json::json!({"durable": true, "vhost": "/"})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                },
                QueueStat {
                    name: "emails".into(),
                    messages_ready: 7,
                    ..QueueStat::default()
                },
            ],
            source: Some(QueueSource::Management),
            scheduled_broker_side: Some(4),
        };
        let text = r#"{"active_queues":[{"name":"celery","messages":3,"messages_ready":2,"messages_unacknowledged":1,"consumers":1,"publish_rate":0.5,"deliver_rate":0.25,"type":"quorum","durable":true,"vhost":"/"},{"name":"emails","messages_ready":7}],"source":"management","scheduled_broker_side":4}"#;
        assert_eq!(serde_json::to_string(&listing).unwrap(), text);
        assert_eq!(serde_json::from_str::<QueuesLength>(text).unwrap(), listing);
        let empty = QueuesLength::default();
        let text = r#"{"active_queues":[],"source":null}"#;
        assert_eq!(serde_json::to_string(&empty).unwrap(), text);
        assert_eq!(serde_json::from_str::<QueuesLength>(text).unwrap(), empty);
        assert_eq!(
            serde_json::to_string(&QueueSource::Amqp).unwrap(),
            "\"amqp\""
        );
    }
}
