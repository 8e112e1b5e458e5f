//! Turning deliveries into batches of events, and the bounded channel that
//! carries them to the state owner.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::events::{decode_body_limited, DecodeError, Event, MalformedReason};
use crate::telemetry::{SourceEvent, SourceStatus};

/// Events per batch: large enough that the owner's lock, clock read and
/// metric flushes are amortised over hundreds of events, small enough that
/// readers never wait long for the write lock.
pub const MAX_BATCH_EVENTS: usize = 512;

/// Batches in flight between ingest and the owner. A few are enough to keep
/// both busy; more would only hide back-pressure from the broker, which is
/// where buffering belongs (prefetch bounds the unacked deliveries).
pub const BATCH_CHANNEL_CAPACITY: usize = 4;

/// Ingest's end of the batch channel. Emptied vectors come back from the
/// owner so a busy pipeline stops allocating batch buffers. Each event
/// source (one per broker) holds a clone; they share the recycled buffers.
#[derive(Clone)]
pub struct BatchSender {
    tx: mpsc::Sender<Vec<Event>>,
    recycled: Arc<Mutex<mpsc::Receiver<Vec<Event>>>>,
}

/// The state owner's end of the batch channel.
pub struct BatchReceiver {
    rx: mpsc::Receiver<Vec<Event>>,
    recycle: mpsc::Sender<Vec<Event>>,
}

pub fn batch_channel(capacity: usize) -> (BatchSender, BatchReceiver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    // With one source every buffer is either in flight, being applied, or
    // here, so this capacity means recycling never blocks and never drops a
    // buffer; with several, a buffer that finds it full goes back to the
    // allocator.
    let (recycle, recycled) = mpsc::channel(capacity.max(1) + 2);
    let recycled = Arc::new(Mutex::new(recycled));
    (BatchSender { tx, recycled }, BatchReceiver { rx, recycle })
}

impl BatchSender {
    /// Waits while the channel is full: this is the back-pressure that stops
    /// consumption. Gives the batch back if the owner is gone.
    pub async fn send(&self, batch: Vec<Event>) -> Result<(), Vec<Event>> {
        self.tx.send(batch).await.map_err(|e| e.0)
    }

    /// An empty buffer, recycled when one is available.
    pub fn buffer(&mut self) -> Vec<Event> {
        self.recycled
            .lock()
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(MAX_BATCH_EVENTS + 32))
    }
}

impl BatchReceiver {
    pub async fn recv(&mut self) -> Option<Vec<Event>> {
        self.rx.recv().await
    }

    /// Hands an applied batch's buffer back to ingest, keeping its capacity.
    pub fn recycle(&self, mut batch: Vec<Event>) {
        batch.clear();
        let _ = self.recycle.try_send(batch);
    }
}

/// Counts gathered while a batch is built and flushed to the metrics once
/// per batch, so the per-message path touches no shared counter.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct BatchStats {
    pub messages: u64,
    pub truncated: u64,
    /// Few distinct reasons ever occur, so a vector beats a map.
    pub malformed: Vec<(MalformedReason, u64)>,
}

impl BatchStats {
    fn count_malformed(&mut self, reason: MalformedReason) {
        match self.malformed.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.malformed.push((reason, 1)),
        }
    }

    pub fn flush(&mut self, status: &SourceStatus) {
        status.emit(SourceEvent::Received {
            messages: self.messages,
            truncated: self.truncated,
        });
        for (reason, count) in self.malformed.drain(..) {
            status.emit(SourceEvent::Malformed { reason, count });
        }
        self.messages = 0;
        self.truncated = 0;
    }
}

/// Accumulates decoded events and the delivery tag to ack once they are
/// handed over.
pub(crate) struct BatchBuilder {
    max_event_bytes: usize,
    events: Vec<Event>,
    errors: Vec<DecodeError>,
    last_tag: Option<u64>,
    pub stats: BatchStats,
}

impl BatchBuilder {
    pub fn new(max_event_bytes: usize, buffer: Vec<Event>) -> BatchBuilder {
        BatchBuilder {
            max_event_bytes,
            events: buffer,
            errors: Vec::new(),
            last_tag: None,
            stats: BatchStats::default(),
        }
    }

    /// Decodes one delivery. A malformed body still takes part in the batch:
    /// its tag is acked with the rest, so it is counted and skipped, never
    /// redelivered forever.
    pub fn push(&mut self, delivery_tag: u64, body: &[u8]) {
        self.last_tag = Some(delivery_tag);
        self.stats.messages += 1;
        let info = decode_body_limited(
            body,
            self.max_event_bytes,
            &mut self.events,
            &mut self.errors,
        );
        self.stats.truncated += u64::from(info.truncated_fields);
        for error in self.errors.drain(..) {
            tracing::debug!(reason = error.reason(), %error, "skipping a malformed event");
            self.stats.count_malformed(error.kind());
        }
    }

    pub fn is_full(&self) -> bool {
        self.events.len() >= MAX_BATCH_EVENTS
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.last_tag.is_none()
    }

    /// The events decoded so far and the last delivery tag they came from;
    /// `next` becomes the buffer of the following batch.
    pub fn take(&mut self, next: Vec<Event>) -> (Vec<Event>, Option<u64>) {
        let events = std::mem::replace(&mut self.events, next);
        (events, self.last_tag.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STARTED: &str = r#"{"hostname": "w1@vm", "utcoffset": 0.0, "pid": 16186, "clock": 7, "uuid": "c474f60e-2f1d-47da-9595-5084041a0790", "timestamp": 1795424223.968743, "type": "task-started"}"#;

    fn multi(n: usize) -> Vec<u8> {
        let items: Vec<&str> = std::iter::repeat_n(STARTED, n).collect();
        format!("[{}]", items.join(", ")).into_bytes()
    }

    #[test]
    fn a_batch_keeps_the_last_tag_and_counts_messages_not_events() {
        let mut b = BatchBuilder::new(1 << 20, Vec::new());
        assert!(b.is_empty());
        b.push(1, STARTED.as_bytes());
        b.push(2, &multi(3));
        let (events, tag) = b.take(Vec::new());
        assert_eq!(events.len(), 4);
        assert_eq!(tag, Some(2));
        assert_eq!(b.stats.messages, 2);
        assert!(b.is_empty());
        assert_eq!(b.take(Vec::new()), (Vec::new(), None));
    }

    #[test]
    fn malformed_bodies_are_counted_by_reason_and_still_acked() {
        let mut b = BatchBuilder::new(64, Vec::new());
        b.push(7, b"not json");
        b.push(8, b"not json either");
        b.push(9, &multi(2));
        let (events, tag) = b.take(Vec::new());
        assert!(events.is_empty());
        assert_eq!(
            tag,
            Some(9),
            "the malformed deliveries are acked with the batch"
        );
        assert_eq!(
            b.stats.malformed,
            vec![
                (MalformedReason::InvalidJson, 2),
                (MalformedReason::TooLarge, 1)
            ]
        );
    }

    #[test]
    fn a_batch_is_full_at_the_event_cap_whatever_the_message_count() {
        let mut b = BatchBuilder::new(1 << 20, Vec::new());
        let body = multi(24);
        let mut tag = 0;
        while !b.is_full() {
            tag += 1;
            b.push(tag, &body);
        }
        assert_eq!(tag as usize, MAX_BATCH_EVENTS.div_ceil(24));
    }

    #[tokio::test]
    async fn buffers_come_back_empty_with_their_capacity() {
        let (mut tx, mut rx) = batch_channel(2);
        let mut buf = tx.buffer();
        buf.push(Event::default());
        let cap = buf.capacity();
        tx.send(buf).await.unwrap();
        let got = rx.recv().await.unwrap();
        assert_eq!(got.len(), 1);
        rx.recycle(got);
        let again = tx.buffer();
        assert!(again.is_empty());
        assert_eq!(again.capacity(), cap);
    }

    #[tokio::test]
    async fn a_full_channel_makes_the_sender_wait() {
        let (tx, mut rx) = batch_channel(1);
        tx.send(vec![Event::default()]).await.unwrap();
        let second = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            tx.send(vec![Event::default()]),
        )
        .await;
        assert!(second.is_err(), "the second batch must wait for the owner");
        rx.recv().await.unwrap();
        tx.send(vec![Event::default()]).await.unwrap();
    }
}
