//! Publishing raw bodies to `celeryev` as a Celery worker does (§1.4), for
//! tests that need events no real worker would send (garbage, or a steady
//! synthetic stream).

use lapin::options::ExchangeDeclareOptions;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

/// A connection and a channel on which `celeryev` is declared.
pub async fn connect(amqp_url: &str) -> (Connection, Channel) {
    let conn = Connection::connect(amqp_url, ConnectionProperties::default())
        .await
        .expect("connect to RabbitMQ");
    let channel = conn.create_channel().await.expect("open a channel");
    // Exactly Celery's flags, or the broker refuses the declare (§1.1).
    channel
        .exchange_declare(
            "celeryev".into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("declare celeryev");
    (conn, channel)
}

/// The message properties a worker named `hostname` publishes events with.
pub fn properties(hostname: &str) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        ShortString::from("hostname"),
        AMQPValue::LongString(hostname.into()),
    );
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(1)
        .with_headers(headers)
}
