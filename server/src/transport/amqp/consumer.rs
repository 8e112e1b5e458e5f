//! The events consumer: pull what the broker has delivered, decode it into
//! a batch, hand the batch over, and ack what was handed over in few,
//! cumulative `basic.ack(multiple)` frames.

use std::future::poll_fn;
use std::task::Poll;
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::BasicAckOptions;
use lapin::{Channel, Consumer};
use tokio::time::Instant;

use crate::ingest::IngestArgs;
use crate::ingest::{BatchBuilder, BatchSender};
use crate::shutdown::Shutdown;
use crate::telemetry::SourceStatus;

/// Longest an applied delivery waits for its ack. Acks are held back to
/// spare the broker, which is the bottleneck of a drain: one ack per
/// quarter of the prefetch window, like the no-op baseline consumer, rather
/// than one per (often small) batch.
const ACK_DELAY: Duration = Duration::from_millis(50);

/// How long a batch that is not full waits once for more deliveries.
const LINGER: Duration = Duration::from_millis(5);

/// How a session of consuming ended.
#[derive(Debug)]
pub(crate) enum SessionEnd {
    Shutdown,
    /// The connection, the channel or the consumer went away; reconnect.
    Lost(String),
    /// The state owner stopped taking batches: nothing left to feed.
    OwnerGone,
}

/// Deliveries handed over but not yet acked.
struct PendingAcks {
    last_tag: Option<u64>,
    count: usize,
    since: Instant,
    every: usize,
}

impl PendingAcks {
    fn new(prefetch: u16) -> PendingAcks {
        PendingAcks {
            last_tag: None,
            count: 0,
            since: Instant::now(),
            every: (usize::from(prefetch) / 4).max(1),
        }
    }

    fn add(&mut self, tag: u64, messages: usize) {
        if self.last_tag.is_none() {
            self.since = Instant::now();
        }
        self.last_tag = Some(tag);
        self.count += messages;
    }

    fn due(&self) -> bool {
        self.last_tag.is_some() && (self.count >= self.every || self.since.elapsed() >= ACK_DELAY)
    }

    fn deadline(&self) -> Option<Instant> {
        self.last_tag.map(|_| self.since + ACK_DELAY)
    }

    async fn flush(&mut self, channel: &Channel) -> Result<(), SessionEnd> {
        let Some(tag) = self.last_tag.take() else {
            return Ok(());
        };
        self.count = 0;
        channel
            .basic_ack(tag, BasicAckOptions { multiple: true })
            .await
            .map_err(|e| SessionEnd::Lost(format!("ack failed: {e}")))
    }
}

pub(crate) async fn consume(
    status: &SourceStatus,
    args: &IngestArgs,
    channel: &Channel,
    consumer: &mut Consumer,
    sender: &mut BatchSender,
    shutdown: &mut Shutdown,
) -> SessionEnd {
    let mut batch = BatchBuilder::new(args.max_event_bytes, sender.buffer());
    let mut acks = PendingAcks::new(args.prefetch);
    loop {
        // Wait for the first delivery of a batch, acking what is pending if
        // nothing comes for a while...
        let first = match acks.deadline() {
            Some(deadline) => tokio::select! {
                _ = shutdown.fired() => return stop(&mut acks, channel).await,
                next = consumer.next() => next,
                _ = tokio::time::sleep_until(deadline) => {
                    if let Err(end) = acks.flush(channel).await {
                        return end;
                    }
                    continue;
                }
            },
            None => tokio::select! {
                _ = shutdown.fired() => return stop(&mut acks, channel).await,
                next = consumer.next() => next,
            },
        };
        let mut ended = match first {
            Some(Ok(d)) => {
                batch.push(d.delivery_tag, &d.data);
                None
            }
            Some(Err(e)) => return SessionEnd::Lost(e.to_string()),
            None => return SessionEnd::Lost(CANCELLED.to_string()),
        };
        // ...then take whatever else is already here, linger once, and take
        // what arrived meanwhile. Without the pause a consumer that keeps up
        // is woken for every message, and the owner for every tiny batch:
        // those wake-ups, not decoding, dominated the CPU cost of a drain.
        // With 5 ms a drain costs about the CPU per event of a no-op lapin
        // consumer, and a few milliseconds of latency are invisible to a
        // monitor.
        drain_ready(consumer, &mut batch, &mut ended).await;
        if ended.is_none() && !batch.is_full() {
            tokio::select! {
                _ = shutdown.fired() => return stop(&mut acks, channel).await,
                _ = tokio::time::sleep(LINGER) => {}
            }
            drain_ready(consumer, &mut batch, &mut ended).await;
        }

        let messages = batch.stats.messages as usize;
        batch.stats.flush(status);
        let (events, last_tag) = batch.take(sender.buffer());
        if !events.is_empty() {
            tokio::select! {
                // Not handed over, so not acked: the broker keeps them for
                // the next consumer of a named queue.
                _ = shutdown.fired() => return stop(&mut acks, channel).await,
                sent = sender.send(events) => if sent.is_err() {
                    return SessionEnd::OwnerGone;
                }
            }
        }
        // Malformed deliveries are acked along with the rest: counted and
        // skipped, never redelivered forever.
        if let Some(tag) = last_tag {
            acks.add(tag, messages);
        }
        if let Some(end) = ended {
            // The channel is gone; what was not acked will be redelivered.
            return end;
        }
        if acks.due() {
            if let Err(end) = acks.flush(channel).await {
                return end;
            }
        }
    }
}

/// Acks what was handed over before stopping, so a named queue does not
/// redeliver (and the state count twice) what was already applied.
async fn stop(acks: &mut PendingAcks, channel: &Channel) -> SessionEnd {
    let _ = tokio::time::timeout(Duration::from_secs(1), acks.flush(channel)).await;
    SessionEnd::Shutdown
}

const CANCELLED: &str = "the broker cancelled the consumer (events queue deleted?)";

/// Adds the deliveries that are ready now to the batch, up to its cap.
async fn drain_ready(
    consumer: &mut Consumer,
    batch: &mut BatchBuilder,
    ended: &mut Option<SessionEnd>,
) {
    while ended.is_none() && !batch.is_full() {
        match try_next(consumer).await {
            Some(Some(Ok(d))) => batch.push(d.delivery_tag, &d.data),
            Some(Some(Err(e))) => *ended = Some(SessionEnd::Lost(e.to_string())),
            Some(None) => *ended = Some(SessionEnd::Lost(CANCELLED.to_string())),
            None => break,
        }
    }
}

/// The next delivery if one is ready now (`Some`), else `None` at once.
async fn try_next(
    consumer: &mut Consumer,
) -> Option<Option<lapin::Result<lapin::message::Delivery>>> {
    poll_fn(|cx| match consumer.poll_next(cx) {
        Poll::Ready(item) => Poll::Ready(Some(item)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_wait_for_a_quarter_of_prefetch_or_a_short_delay() {
        let mut acks = PendingAcks::new(2000);
        assert!(!acks.due() && acks.deadline().is_none());
        acks.add(10, 10);
        assert!(!acks.due());
        let deadline = acks.deadline().unwrap();
        acks.add(499, 489);
        assert_eq!(
            acks.deadline(),
            Some(deadline),
            "the oldest delivery sets the deadline"
        );
        assert!(!acks.due());
        acks.add(500, 1);
        assert!(acks.due(), "500 = 2000 / 4 messages");

        let mut acks = PendingAcks::new(2000);
        acks.add(1, 1);
        acks.since -= ACK_DELAY;
        assert!(acks.due(), "a lone delivery is acked after ACK_DELAY");

        assert_eq!(PendingAcks::new(1).every, 1);
    }
}
