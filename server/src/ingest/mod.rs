//! Getting events into the state, whatever the broker: the event source's
//! settings and the bounded batch channel between a transport's event
//! source and the state owner, with the decoding batch builder every source
//! uses (`transport/` holds the broker protocols).
//!
//! Architecture Invariant: a source that acknowledges never drops an event
//! on its own. A full batch channel stops consumption (prefetch bounds what
//! is in flight) and the broker buffers; a delivery is acked only after its
//! events were handed over.

mod args;
mod batch;

pub use args::{
    IngestArgs, DEFAULT_BROKER, DEFAULT_ENABLE_EVENTS_INTERVAL_SECS, DEFAULT_EVENTS_MAX_LENGTH,
    DEFAULT_EVENTS_TTL_SECS, DEFAULT_MAX_EVENT_BYTES, DEFAULT_PREFETCH,
};
pub(crate) use batch::BatchBuilder;
pub use batch::{
    batch_channel, BatchReceiver, BatchSender, BATCH_CHANNEL_CAPACITY, MAX_BATCH_EVENTS,
};
