//! celeriac's own health, exported so the monitor is never blind silently:
//! what was ingested, what was malformed or dropped, how far
//! behind the events are, and whether the broker connection is up.

use prometheus::{
    CounterVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// Ingest lag buckets (seconds): sub-millisecond on a healthy box, minutes
/// when a backlog is being drained.
pub const LAG_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Registers `metric` (names are constants: a clash is a programming
/// error) and hands it back.
pub fn register<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> M {
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

pub struct SelfMetrics {
    pub registry: Registry,
    /// Events applied to the state (a `task.multi` message counts each element).
    pub events_ingested: IntCounter,
    /// AMQP messages taken off the events queue.
    pub messages_received: IntCounter,
    /// Bodies or elements that could not be decoded, by reason.
    pub events_malformed: IntCounterVec,
    /// Events lost before we could apply them, by reason (e.g. the broker
    /// expired or overflowed them).
    pub events_dropped: IntCounterVec,
    /// Seconds a source that cannot acknowledge (Redis pub/sub) was not
    /// subscribed after having been: events published then are lost.
    pub events_gap_seconds: CounterVec,
    /// String fields cut to their cap (hostile or broken producers).
    pub fields_truncated: IntCounter,
    /// now − event timestamp, observed per applied event.
    pub ingest_lag: Histogram,
    /// Per event source (`broker`: its URL with the password masked).
    pub broker_connected: IntGaugeVec,
    pub broker_reconnects: IntCounterVec,
    /// Set from the state at scrape time.
    pub tasks_retained: IntGauge,
    pub workers_retained: IntGauge,
    pub tasks_evicted: IntGauge,
    /// Dashboard clients sent a fresh snapshot instead of the deltas they
    /// missed (they lagged, or too much changed in one tick).
    pub ws_resyncs: IntCounter,
    /// The task families' rendered series, kept between scrapes
    /// (created on the first one, with the configured buckets).
    pub task_page: parking_lot::Mutex<Option<super::TaskPage>>,
}

impl SelfMetrics {
    pub fn new() -> SelfMetrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            register(
                &registry,
                IntCounter::new(name, help).expect("valid metric"),
            )
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            register(&registry, c)
        };
        let gauge = |name: &str, help: &str| {
            register(&registry, IntGauge::new(name, help).expect("valid metric"))
        };
        let events_ingested = counter(
            "celeriac_events_ingested_total",
            "Celery events applied to the cluster state",
        );
        let messages_received = counter(
            "celeriac_messages_received_total",
            "AMQP messages consumed from the events queue",
        );
        let events_malformed = counter_vec(
            "celeriac_events_malformed_total",
            "Event bodies or elements skipped because they could not be decoded",
            &["reason"],
        );
        let events_dropped = counter_vec(
            "celeriac_events_dropped_total",
            "Events lost before celeriac could apply them",
            &["reason"],
        );
        let events_gap_seconds = register(
            &registry,
            CounterVec::new(
                Opts::new(
                    "celeriac_events_gap_seconds_total",
                    "Seconds an event source that cannot acknowledge was not subscribed \
                     after a loss; events published meanwhile are lost",
                ),
                &["source"],
            )
            .expect("valid metric"),
        );
        let fields_truncated = counter(
            "celeriac_event_fields_truncated_total",
            "Event string fields cut to their size cap",
        );
        let ingest_lag = Histogram::with_opts(
            HistogramOpts::new(
                "celeriac_ingest_lag_seconds",
                "Delay between an event's timestamp and celeriac applying it",
            )
            .buckets(LAG_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        registry
            .register(Box::new(ingest_lag.clone()))
            .expect("unique metric");
        let broker_connected = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "celeriac_broker_connected",
                    "1 while celeriac is connected to the broker and consuming events",
                ),
                &["broker"],
            )
            .expect("valid metric"),
        );
        let broker_reconnects = counter_vec(
            "celeriac_broker_reconnects_total",
            "Connections to the broker re-established after a loss",
            &["broker"],
        );
        let tasks_retained = gauge("celeriac_tasks_retained", "Tasks held in memory");
        let workers_retained = gauge("celeriac_workers_retained", "Workers held in memory");
        let tasks_evicted = gauge(
            "celeriac_tasks_evicted",
            "Tasks evicted from memory because --max-tasks was reached",
        );
        let ws_resyncs = counter(
            "celeriac_ws_resyncs_total",
            "Dashboard clients resynchronised with a snapshot instead of deltas",
        );
        // Pre-create the common reasons so dashboards see zeros, not gaps.
        for reason in ["invalid_json", "invalid_utf8", "too_large"] {
            events_malformed.with_label_values(&[reason]);
        }
        SelfMetrics {
            registry,
            events_ingested,
            messages_received,
            events_malformed,
            events_dropped,
            events_gap_seconds,
            fields_truncated,
            ingest_lag,
            broker_connected,
            broker_reconnects,
            tasks_retained,
            workers_retained,
            tasks_evicted,
            ws_resyncs,
            task_page: parking_lot::Mutex::new(None),
        }
    }
}

impl Default for SelfMetrics {
    fn default() -> Self {
        Self::new()
    }
}
