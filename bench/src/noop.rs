//! The baseline: a lapin consumer that does nothing with what it receives.
//! It runs as its own process (`celeriac-bench noop-consumer`) so its CPU time
//! is its own, measured like celeriac's.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_lite::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use serde::{Deserialize, Serialize};

/// What the no-op consumer prints as its last stdout line (one JSON object
/// after this prefix).
pub const REPORT_PREFIX: &str = "noop-report ";

#[derive(Debug, Serialize, Deserialize)]
pub struct NoopReport {
    pub messages: u64,
    /// From connect to the last ack.
    pub elapsed_s: f64,
    /// From the first delivery to the last ack.
    pub consuming_s: f64,
    /// User + system CPU of the whole process from `/proc/<pid>/stat`: all
    /// threads, including lapin's I/O thread.
    pub cpu_s: f64,
}

pub struct NoopArgs<'a> {
    pub url: &'a str,
    pub queue: &'a str,
    pub messages: u64,
    pub prefetch: u16,
    pub ack_every: u64,
}

/// Consumes `messages` messages from `queue`, acking with `multiple` every
/// `ack_every`, and reports.
pub async fn run(args: &NoopArgs<'_>) -> Result<NoopReport> {
    let start = Instant::now();
    let connection = Connection::connect(args.url, ConnectionProperties::default())
        .await
        .context("connecting")?;
    let channel = connection
        .create_channel()
        .await
        .context("opening a channel")?;
    channel
        .basic_qos(args.prefetch, BasicQosOptions::default())
        .await
        .context("basic.qos")?;
    let mut consumer = channel
        .basic_consume(
            args.queue.into(),
            "noop".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("consuming {}", args.queue))?;
    let ack_every = args.ack_every.max(1);
    let mut received: u64 = 0;
    let mut unacked: u64 = 0;
    let mut first: Option<Instant> = None;
    let mut last_tag = 0;
    while received < args.messages {
        let Some(delivery) = consumer.next().await else {
            break;
        };
        let delivery = delivery.context("consumer error")?;
        first.get_or_insert_with(Instant::now);
        received += 1;
        unacked += 1;
        last_tag = delivery.delivery_tag;
        if unacked >= ack_every {
            channel
                .basic_ack(last_tag, BasicAckOptions { multiple: true })
                .await
                .context("basic.ack")?;
            unacked = 0;
        }
    }
    if unacked > 0 {
        channel
            .basic_ack(last_tag, BasicAckOptions { multiple: true })
            .await
            .context("basic.ack")?;
    }
    let end = Instant::now();
    let cpu_s = self_cpu().as_secs_f64();
    let _ = connection.close(200, "done".into()).await;
    Ok(NoopReport {
        messages: received,
        elapsed_s: (end - start).as_secs_f64(),
        consuming_s: first.map_or(0.0, |f| (end - f).as_secs_f64()),
        cpu_s,
    })
}

/// CPU time of this process, all threads, read the same way as the other
/// processes' (`/proc/<pid>/stat`), so the baselines compare like for like.
fn self_cpu() -> Duration {
    crate::procs::cpu_time(std::process::id()).unwrap_or(Duration::ZERO)
}
