//! Fire-and-forget broadcasts to every worker over Celery's pidbox
//! (celery-protocol §1.6, §4.1-§4.2): the wake-up `heartbeat` once per
//! connection, so workers announce themselves at once instead of within
//! their next heartbeat period, and `enable_events` periodically, as Flower
//! does, so workers started without `-E` still send task events.

use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};

use super::topology::{amqp_int, ensure_exchange, open_channel, PIDBOX_EXCHANGE};
use super::IngestError;
use crate::shared::now;

pub(crate) struct Pidbox {
    channel: Channel,
    /// Our Lamport clock: workers only take the max with theirs, so a
    /// counter that starts at zero is enough.
    clock: u64,
}

impl Pidbox {
    pub async fn open(conn: &Connection) -> Result<Pidbox, IngestError> {
        ensure_exchange(conn, PIDBOX_EXCHANGE, ExchangeKind::Fanout, false).await?;
        Ok(Pidbox {
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
                request_properties(self.clock, now() + 1.0),
            )
            .await
            .map(drop)
    }
}

/// A request to every worker with no reply wanted (no `ticket`, no
/// `reply_to`), exactly as Celery's `broadcast(..., reply=False)` sends it.
pub(crate) fn request_body(method: &str) -> Vec<u8> {
    let method = serde_json::Value::from(method);
    format!(
        r#"{{"method":{method},"arguments":{{}},"destination":null,"pattern":null,"matcher":null}}"#
    )
    .into_bytes()
}

pub(crate) fn request_properties(clock: u64, expires: f64) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert("clock".into(), amqp_int(clock));
    // Workers ignore `expires`, but Celery always sends it as a double.
    headers.insert("expires".into(), AMQPValue::Double(expires));
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(2)
        .with_priority(0)
        .with_headers(headers)
}

/// Sends the wake-up heartbeat, then `enable_events` every `interval` when
/// asked to, until the connection breaks; the session aborts it when it
/// ends. A failure here is only logged: the consumer notices a dead
/// connection on its own.
pub(crate) async fn run(mut pidbox: Pidbox, enable_events: Option<Duration>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_celerys_reply_less_broadcast() {
        assert_eq!(
            String::from_utf8(request_body("heartbeat")).unwrap(),
            r#"{"method":"heartbeat","arguments":{},"destination":null,"pattern":null,"matcher":null}"#
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
