//! What the engine evaluates: a plain snapshot of celeriac's live state,
//! built by the server under a short read lock (or by a test, or the bench).

/// A histogram with **cumulative** bucket counts over `bounds` given in
/// [`Inputs`] (Prometheus layout; `+Inf` is `count`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Hist {
    pub cumulative: Vec<u64>,
    pub count: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct QueueInput {
    pub name: String,
    /// Messages waiting for delivery.
    pub ready: u64,
    /// Consumers attached; `None` when the stats source cannot tell.
    pub consumers: Option<u64>,
}

/// Monotonic counters of one (task name, queue) pair since celeriac started.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeriesInput {
    pub task: String,
    pub queue: String,
    pub succeeded: u64,
    pub failed: u64,
    /// Tasks declared LOST (their worker's heartbeats expired mid-task).
    pub lost: u64,
    pub runtime: Hist,
    pub queue_wait: Hist,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StartedTask {
    pub name: String,
    pub worker: String,
    /// Unix seconds of `task-started`.
    pub started_at: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WorkerInput {
    pub hostname: String,
    /// Unix seconds it went offline (missed heartbeats or `worker-offline`);
    /// `None` while online.
    pub offline_since: Option<f64>,
}

/// A failure group that is open (never resolved, or reopened).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FailureGroupInput {
    pub fingerprint: String,
    pub exception: String,
    /// Task names it affected (a bounded list).
    pub tasks: Vec<String>,
    /// Unix seconds it was first seen, or reopened.
    pub opened_at: f64,
    /// Failures since then.
    pub count: u64,
}

/// One queue's latency, from `task-sent` events.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueLatencyInput {
    pub name: String,
    /// Seconds the oldest task sent and not yet received has waited (0
    /// when none waits).
    pub oldest_age: f64,
}

/// celeriac's own ingest counters since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EventCounters {
    /// Events applied to the state.
    pub ingested: u64,
    /// Messages that could not be decoded.
    pub malformed: u64,
    /// Events the broker dropped before celeriac got them.
    pub dropped: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inputs {
    /// Unix seconds of this evaluation.
    pub now: f64,
    /// Unix seconds celeriac started (the reference for `no_events` before
    /// any event arrived).
    pub started_at: f64,
    /// `None` until queue statistics have been read once: queue rules are
    /// then skipped rather than seeing every queue as empty.
    pub queues: Option<Vec<QueueInput>>,
    pub series: Vec<SeriesInput>,
    /// Bucket bounds of every `SeriesInput::runtime`.
    pub runtime_bounds: Vec<f64>,
    /// Bucket bounds of every `SeriesInput::queue_wait`.
    pub queue_wait_bounds: Vec<f64>,
    /// Tasks currently in STARTED (only filled when a rule needs them).
    pub started: Vec<StartedTask>,
    pub workers: Vec<WorkerInput>,
    pub last_event_at: Option<f64>,
    pub events: EventCounters,
    /// Open failure groups (only filled when a rule needs them).
    pub failure_groups: Vec<FailureGroupInput>,
    /// Queues seen in `task-sent` events.
    pub queue_latency: Vec<QueueLatencyInput>,
}
