//! The event source on Redis: `PSUBSCRIBE /{db}.celeryev/*`, unwrap each
//! message's kombu envelope and feed the body to the same decoder and batch
//! channel as AMQP (docs/celery-protocol.md §8.1).
//!
//! Pub/sub has no acknowledgement and no buffering: what is published while
//! celeriac is not subscribed is gone, and a slow state owner cannot push
//! back (Redis drops a subscriber whose output buffer overflows, which this
//! loop sees as a lost connection). So this source counts the time it was
//! not subscribed (`celeriac_events_gap_seconds_total`) instead of claiming
//! that nothing was lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};

use super::{envelope, pidbox, Redis};
use crate::ingest::{BatchBuilder, BatchSender, IngestArgs};
use crate::shutdown::Shutdown;
use crate::telemetry::{SourceEvent, SourceStatus};
use crate::transport::Backoff;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A subscribed connection carries no replies of its own, so a silently
/// dead one (a half-open TCP connection) would wait forever: a PING now and
/// then finds out.
const PING_INTERVAL: Duration = Duration::from_secs(15);
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a batch that is not full waits once for more messages, as on
/// AMQP: fewer wake-ups of the owner for a few milliseconds of latency.
const LINGER: Duration = Duration::from_millis(5);

enum SessionEnd {
    Shutdown,
    OwnerGone,
    Lost(String),
}

/// Runs until shutdown (or until the state owner is gone), subscribing again
/// whenever the connection breaks.
pub async fn run(
    status: Arc<SourceStatus>,
    redis: Redis,
    args: IngestArgs,
    mut sender: BatchSender,
    mut shutdown: Shutdown,
) {
    let pattern = redis.keys.events_pattern();
    let mut backoff = Backoff::new();
    let mut ever_connected = false;
    let mut reported: Option<String> = None;
    // When the last subscription ended: the gap lasts until the next one.
    let mut lost_at: Option<Instant> = None;
    loop {
        if shutdown.is_fired() {
            return;
        }
        let attempt = tokio::select! {
            _ = shutdown.fired() => return,
            s = subscribe(&redis, &pattern) => s,
        };
        let reason = match attempt {
            Ok((sink, stream)) => {
                if let Some(since) = lost_at.take() {
                    status.emit(SourceEvent::Gap {
                        seconds: since.elapsed().as_secs_f64(),
                    });
                }
                reported = None;
                status.emit(SourceEvent::Connected {
                    reconnect: ever_connected,
                    queue: &pattern,
                    // Pub/sub keeps nothing for a subscriber to catch up on.
                    backlog: 0,
                });
                ever_connected = true;
                // Only now that we listen do we ask workers to speak up.
                let enable = args.enable_events.then(|| args.enable_events_interval());
                let broadcasts = tokio::spawn(pidbox::run_broadcasts(redis.clone(), enable));

                let started = Instant::now();
                let end = consume(&status, &args, sink, stream, &mut sender, &mut shutdown).await;
                broadcasts.abort();
                status.emit(SourceEvent::Lost);
                if started.elapsed() >= Backoff::HEALTHY_SESSION {
                    backoff.reset();
                }
                match end {
                    SessionEnd::Shutdown => return,
                    SessionEnd::OwnerGone => {
                        tracing::debug!("state owner gone; ingest stops");
                        return;
                    }
                    SessionEnd::Lost(reason) => {
                        lost_at = Some(Instant::now());
                        format!("subscription lost: {reason}")
                    }
                }
            }
            Err(e) => e,
        };
        let delay = backoff.next_delay();
        status.emit(SourceEvent::Retrying {
            reason: &reason,
            delay,
            repeated: reported.as_deref() == Some(reason.as_str()),
        });
        reported = Some(reason);
        tokio::select! {
            _ = shutdown.fired() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

async fn subscribe(redis: &Redis, pattern: &str) -> Result<(PubSubSink, PubSubStream), String> {
    let open = async {
        let mut pubsub = redis.pubsub().await?;
        pubsub.psubscribe(pattern).await?;
        Ok::<_, redis::RedisError>(pubsub.split())
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, open).await {
        Ok(Ok(pair)) => Ok(pair),
        Ok(Err(e)) => Err(format!("subscribing to `{pattern}`: {e}")),
        Err(_) => Err(format!(
            "subscribing to `{pattern}` timed out after {}s",
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}

async fn consume(
    status: &SourceStatus,
    args: &IngestArgs,
    mut sink: PubSubSink,
    mut stream: PubSubStream,
    sender: &mut BatchSender,
    shutdown: &mut Shutdown,
) -> SessionEnd {
    let mut batch = BatchBuilder::new(args.max_event_bytes, sender.buffer());
    // Pub/sub has no delivery tags; the builder only needs increasing ones.
    let mut tag = 0u64;
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            _ = shutdown.fired() => return SessionEnd::Shutdown,
            message = stream.next() => message,
            _ = ping.tick() => {
                match tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => continue,
                    Ok(Err(e)) => return SessionEnd::Lost(format!("PING failed: {e}")),
                    Err(_) => return SessionEnd::Lost(format!(
                        "no answer to PING within {}s", PING_TIMEOUT.as_secs()
                    )),
                }
            }
        };
        let Some(message) = first else {
            return SessionEnd::Lost("the server closed the connection".into());
        };
        push(&mut batch, &mut tag, &message);
        let mut closed = drain_ready(&mut stream, &mut batch, &mut tag).await;
        if !closed && !batch.is_full() {
            tokio::select! {
                _ = shutdown.fired() => return SessionEnd::Shutdown,
                _ = tokio::time::sleep(LINGER) => {}
            }
            closed = drain_ready(&mut stream, &mut batch, &mut tag).await;
        }
        batch.stats.flush(status);
        let (events, _) = batch.take(sender.buffer());
        if !events.is_empty() {
            tokio::select! {
                _ = shutdown.fired() => return SessionEnd::Shutdown,
                sent = sender.send(events) => if sent.is_err() {
                    return SessionEnd::OwnerGone;
                }
            }
        }
        if closed {
            return SessionEnd::Lost("the server closed the connection".into());
        }
    }
}

/// A body that is not a kombu envelope is still handed to the decoder,
/// which counts it under the reason that fits (invalid JSON, no type...).
fn push(batch: &mut BatchBuilder, tag: &mut u64, message: &redis::Msg) {
    *tag += 1;
    let payload = message.get_payload_bytes();
    match envelope::body(payload) {
        Ok(body) => batch.push(*tag, &body),
        Err(_) => batch.push(*tag, payload),
    }
}

/// Adds the messages that are ready now, up to the batch's cap; true when
/// the stream ended.
async fn drain_ready(stream: &mut PubSubStream, batch: &mut BatchBuilder, tag: &mut u64) -> bool {
    while !batch.is_full() {
        match futures_lite::future::poll_once(stream.next()).await {
            Some(Some(message)) => push(batch, tag, &message),
            Some(None) => return true,
            None => break,
        }
    }
    false
}
