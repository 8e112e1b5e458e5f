//! The AMQP fallback: a passive `queue.declare` per known queue, each on a
//! throwaway channel, since a missing queue (404) closes the channel
//! (docs/celery-protocol.md §5.3). `message_count` counts ready messages only;
//! `consumer_count` is live. One connection of its own, opened on first use
//! and again after it breaks, never shared with ingest.

use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};

use crate::broker::QueueStat;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One probe: open a channel, declare, close.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Prober {
    uri: AMQPUri,
    connection: Option<Connection>,
}

impl Prober {
    pub fn new(uri: AMQPUri) -> Prober {
        Prober {
            uri,
            connection: None,
        }
    }

    async fn connection(&mut self) -> Result<&Connection, String> {
        if let Some(c) = &self.connection {
            if c.status().connected() {
                return Ok(self.connection.as_ref().expect("checked above"));
            }
            self.connection = None;
        }
        let uri = self.uri.clone();
        let properties =
            ConnectionProperties::default().with_connection_name("celeriac queue stats".into());
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect_uri(uri, properties))
            .await
            .map_err(|_| format!("connect timed out after {}s", CONNECT_TIMEOUT.as_secs()))?
            .map_err(|e| format!("connect: {e}"))?;
        Ok(self.connection.insert(conn))
    }

    /// Probes every name; missing queues are left out. Fails only when the
    /// broker cannot be reached at all.
    pub async fn poll(&mut self, names: &[String]) -> Result<Vec<QueueStat>, String> {
        let conn = self.connection().await?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            match tokio::time::timeout(PROBE_TIMEOUT, probe(conn, name)).await {
                Ok(Ok(Some(q))) => out.push(q),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    if !conn.status().connected() {
                        self.connection = None;
                        return Err(e);
                    }
                    tracing::debug!(queue = %name, "passive declare failed: {e}");
                }
                Err(_) => {
                    self.connection = None;
                    return Err(format!("probing `{name}` timed out"));
                }
            }
        }
        Ok(out)
    }

    pub async fn close(&mut self) {
        if let Some(c) = self.connection.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), c.close(200, "bye".into())).await;
        }
    }
}

/// `Ok(None)` when the queue does not exist.
async fn probe(conn: &Connection, name: &str) -> Result<Option<QueueStat>, String> {
    let channel = conn
        .create_channel()
        .await
        .map_err(|e| format!("opening a channel: {e}"))?;
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    match channel
        .queue_declare(name.into(), options, FieldTable::default())
        .await
    {
        Ok(q) => {
            let _ = channel.close(200, "OK".into()).await;
            Ok(Some(QueueStat {
                name: name.to_owned(),
                messages_ready: u64::from(q.message_count()),
                consumers: Some(u64::from(q.consumer_count())),
                ..QueueStat::default()
            }))
        }
        // 404 NOT_FOUND closed the channel; nothing to clean up.
        Err(e) if matches!(e.kind(), lapin::ErrorKind::ProtocolError(p) if p.get_id() == 404) => {
            Ok(None)
        }
        Err(e) => Err(e.to_string()),
    }
}
