//! Settings of the event source: which broker, how celeriac's events queue
//! is declared, and whether workers are asked to send events.

use std::time::Duration;

use clap::ArgAction;

pub const DEFAULT_BROKER: &str = "amqp://guest:guest@localhost:5672//";
/// Celery's own default is 5 s, which makes a monitor that lags for 5 s lose
/// events silently. Ten minutes covers any burst celeriac can drain (1M
/// events at ~30k/s is ~35 s) and restarts of a stalled host, while
/// `--events-max-length` still bounds what the broker holds for us.
pub const DEFAULT_EVENTS_TTL_SECS: u64 = 600;
/// Bounds the broker memory a dead or stalled celeriac can pin (an event
/// message is ~0.5 KB, so ~500 MB at most). Overflow drops the oldest.
pub const DEFAULT_EVENTS_MAX_LENGTH: u64 = 1_000_000;
/// Unacked deliveries in flight between the broker and the state owner.
pub const DEFAULT_PREFETCH: u16 = 2_000;
/// Celery truncates reprs near 1 KB; a body this large is not a real event.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;
/// Flower broadcasts `enable_events` every 5 s.
pub const DEFAULT_ENABLE_EVENTS_INTERVAL_SECS: u64 = 5;

#[derive(Debug, Clone, clap::Args)]
pub struct IngestArgs {
    /// URL of the Celery broker (`amqp://`, `redis://`, ...). Repeat the
    /// flag for a cluster spread over several brokers: celeriac consumes
    /// events from each and merges them into one view.
    #[arg(long, env = "CELERY_BROKER_URL", default_value = DEFAULT_BROKER,
          action = clap::ArgAction::Append, value_name = "URL")]
    pub broker: Vec<String>,

    /// Broadcast `enable_events` to all workers periodically, as Flower does.
    #[arg(long, env = "CELERIAC_ENABLE_EVENTS", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub enable_events: bool,

    /// Seconds between two `enable_events` broadcasts.
    #[arg(long, env = "CELERIAC_ENABLE_EVENTS_INTERVAL", default_value_t = DEFAULT_ENABLE_EVENTS_INTERVAL_SECS,
          value_parser = clap::value_parser!(u64).range(1..), value_name = "SECONDS")]
    pub enable_events_interval: u64,

    /// Consume this named, durable queue bound to `celeryev`, so nothing is
    /// lost while celeriac restarts. Without it celeriac declares a queue of
    /// its own, `celeriac.<uuid>`, that survives a dropped connection for a
    /// minute and is deleted when celeriac exits.
    #[arg(long, env = "CELERIAC_EVENTS_QUEUE", value_name = "NAME")]
    pub events_queue: Option<String>,

    /// Message TTL (seconds) of the events queue. Longer than Celery's 5 s,
    /// which loses events whenever a monitor lags.
    #[arg(long, env = "CELERIAC_EVENTS_TTL", default_value_t = DEFAULT_EVENTS_TTL_SECS,
          value_parser = clap::value_parser!(u64).range(1..), value_name = "SECONDS")]
    pub events_ttl: u64,

    /// Most messages the events queue may hold (`x-max-length`); the oldest
    /// are dropped beyond it, and counted.
    #[arg(long, env = "CELERIAC_EVENTS_MAX_LENGTH", default_value_t = DEFAULT_EVENTS_MAX_LENGTH,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub events_max_length: u64,

    /// AMQP prefetch (unacked deliveries in flight).
    #[arg(long, env = "CELERIAC_PREFETCH", default_value_t = DEFAULT_PREFETCH,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub prefetch: u16,

    /// Event bodies larger than this are counted as malformed and skipped.
    #[arg(long, env = "CELERIAC_MAX_EVENT_BYTES", default_value_t = DEFAULT_MAX_EVENT_BYTES)]
    pub max_event_bytes: usize,
}

impl IngestArgs {
    pub fn enable_events_interval(&self) -> Duration {
        Duration::from_secs(self.enable_events_interval)
    }
}
