//! Scenario `redis`: celeriac subscribed to a Redis broker's events beside a
//! no-op subscriber, both receiving the same published burst (pub/sub sends
//! every message to every subscriber). Each is measured by the share of the
//! burst it received, how long after the first publish it had the last
//! message, and its CPU per message.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use base64::Engine;
use futures_lite::StreamExt;
use serde::{Deserialize, Serialize};

use crate::loadgen::{Generator, EVENTS_PER_TASK, MESSAGES_PER_TASK};
use crate::monitor::{metric_sum, Monitor};
use crate::procs::{cpu_time, Managed};
use crate::report::fmt_int;
use crate::scenarios::{detail, Settings};

/// The database the scenario empties and uses.
const DB: u32 = 15;
/// PUBLISH commands per pipelined round trip.
const PIPELINE: usize = 500;
/// A subscriber that received nothing new for this long has all it will get.
const QUIET: Duration = Duration::from_secs(3);

/// What the no-op subscriber prints as its last stdout line.
pub const SUBSCRIBER_PREFIX: &str = "noop-subscriber-report ";

#[derive(Debug, Serialize, Deserialize)]
pub struct SubscriberReport {
    pub messages: u64,
    /// Epoch seconds of the last message.
    pub last_at: f64,
    pub cpu_s: f64,
}

/// One subscriber's share of the burst.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    pub messages: u64,
    /// From the first publish to the last message received.
    pub wall: Duration,
    pub cpu: Duration,
}

impl Received {
    pub fn messages_per_sec(&self) -> f64 {
        crate::loadgen::per_sec(self.messages, self.wall)
    }

    pub fn cpu_us_per_message(&self) -> f64 {
        crate::scenarios::us_per(self.cpu, self.messages)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RedisResult {
    pub published: u64,
    pub events: u64,
    pub publish_wall: Duration,
    pub celeriac: Received,
    pub noop: Received,
}

#[allow(clippy::disallowed_methods)] // the publisher and the subscriber are two processes: wall time is their common clock
fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn envelope(body: &str, routing_key: &str) -> Vec<u8> {
    serde_json::json!({
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"hostname": "bench"},
        "properties": {
            "body_encoding": "base64",
            "delivery_info": {"exchange": "celeryev", "routing_key": routing_key},
            "delivery_mode": 1,
            "delivery_tag": uuid::Uuid::new_v4().to_string(),
            "priority": 0,
        },
    })
    .to_string()
    .into_bytes()
}

/// The burst, as kombu's Redis transport would carry it: a `task.sent` and
/// a `task.multi` message per task.
fn burst(tasks: u64) -> Vec<(String, Vec<u8>)> {
    let mut generator = Generator::new(7);
    let (mut sent, mut multi) = (String::new(), String::new());
    let mut out = Vec::with_capacity((tasks * MESSAGES_PER_TASK) as usize);
    for _ in 0..tasks {
        generator.next_task(&mut sent, &mut multi);
        out.push((
            format!("/{DB}.celeryev/task.sent"),
            envelope(&sent, "task.sent"),
        ));
        out.push((
            format!("/{DB}.celeryev/task.multi"),
            envelope(&multi, "task.multi"),
        ));
    }
    out
}

pub async fn run(settings: &Settings, redis: &str, tasks: u64) -> Result<RedisResult> {
    let url = format!("{}/{DB}", redis.trim_end_matches('/'));
    let client = redis::Client::open(url.as_str()).context("the Redis URL")?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let _: () = redis::cmd("FLUSHDB").query_async(&mut conn).await?;
    let messages = burst(tasks);
    let total = messages.len() as u64;

    let mut celeriac = Monitor::start_celeriac(
        &settings.celeriac,
        &url,
        &["--enable-events".into(), "false".into()],
        &settings.log("redis-celeriac"),
    )
    .await?;
    let ready = Instant::now();
    while celeriac.get_timed("/readyz", 1).await.is_err()
        || metric_sum(
            &celeriac.metrics().await?,
            "celeriac_broker_connected",
            None,
        ) != Some(1.0)
    {
        if ready.elapsed() > Duration::from_secs(30) {
            bail!("celeriac did not subscribe to {url} within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let exe = std::env::current_exe().context("locating celeriac-bench itself")?;
    let mut command = Command::new(exe);
    command
        .arg("noop-subscriber")
        .args(["--url", &url])
        .args(["--messages", &total.to_string()]);
    let mut noop = Managed::spawn("no-op subscriber", command, &settings.log("redis-noop"))?;
    noop.wait_for_line(Duration::from_secs(30), |line| {
        (line.trim() == "subscribed").then_some(())
    })
    .await?;

    let celeriac_cpu = celeriac.cpu_time()?;
    let received_before = received(&celeriac).await?;
    let started_at = epoch();
    let started = Instant::now();
    for chunk in messages.chunks(PIPELINE) {
        let mut pipe = redis::pipe();
        for (channel, payload) in chunk {
            pipe.publish(channel, payload).ignore();
        }
        let _: () = pipe.query_async(&mut conn).await?;
    }
    let publish_wall = started.elapsed();
    detail(&format!(
        "published {} messages ({} events) in {:.2} s",
        fmt_int(total),
        fmt_int(tasks * EVENTS_PER_TASK),
        publish_wall.as_secs_f64()
    ));

    // celeriac: until its count reaches the burst or stops moving.
    let (mut last, mut last_at, mut last_change) = (received_before, started, Instant::now());
    loop {
        let now = received(&celeriac).await?;
        if now != last {
            (last, last_at, last_change) = (now, Instant::now(), Instant::now());
        }
        if now - received_before >= total || last_change.elapsed() > QUIET {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let celeriac_result = Received {
        messages: last - received_before,
        wall: last_at.duration_since(started),
        cpu: celeriac.cpu_time()?.saturating_sub(celeriac_cpu),
    };
    let report: SubscriberReport = noop
        .wait_for_line(Duration::from_secs(120), |line| {
            line.strip_prefix(SUBSCRIBER_PREFIX)
                .and_then(|json| serde_json::from_str(json).ok())
        })
        .await?;
    noop.stop(Duration::from_secs(2));
    celeriac.process.stop(Duration::from_secs(5));
    let _: Result<(), _> = redis::cmd("FLUSHDB").query_async(&mut conn).await;
    Ok(RedisResult {
        published: total,
        events: tasks * EVENTS_PER_TASK,
        publish_wall,
        celeriac: celeriac_result,
        noop: Received {
            messages: report.messages,
            wall: Duration::from_secs_f64((report.last_at - started_at).max(0.0)),
            cpu: Duration::from_secs_f64(report.cpu_s),
        },
    })
}

async fn received(celeriac: &Monitor) -> Result<u64> {
    let text = celeriac.metrics().await?;
    Ok(metric_sum(&text, "celeriac_messages_received_total", None).unwrap_or(0.0) as u64)
}

/// The baseline: subscribes to the events pattern, counts messages, does
/// nothing else; reports once `messages` arrived or nothing came for a while.
pub async fn noop_subscriber(url: &str, messages: u64) -> Result<()> {
    let client = redis::Client::open(url).context("the Redis URL")?;
    let db = url.rsplit('/').next().unwrap_or("0");
    let mut pubsub = client.get_async_pubsub().await.context("subscribing")?;
    pubsub.psubscribe(format!("/{db}.celeryev/*")).await?;
    println!("subscribed");
    let mut stream = pubsub.into_on_message();
    let (mut count, mut last_at) = (0u64, epoch());
    while count < messages {
        match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
            Ok(Some(message)) => {
                std::hint::black_box(message.get_payload_bytes());
                count += 1;
                last_at = epoch();
            }
            _ => break,
        }
    }
    let cpu = cpu_time(std::process::id())?;
    let report = SubscriberReport {
        messages: count,
        last_at,
        cpu_s: cpu.as_secs_f64(),
    };
    println!("{SUBSCRIBER_PREFIX}{}", serde_json::to_string(&report)?);
    Ok(())
}
