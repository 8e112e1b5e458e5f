//! The typed Celery event and its decoder (celery-protocol.md §1.4, §2).
//!
//! A message body is one JSON object or, for `task.multi`, an array of them.
//! Each element is decoded on its own: a bad element is reported with a
//! reason and skipped, the good ones beside it are kept.

/// What kind of event, from the `type` field (`task-succeeded`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    TaskSent,
    TaskReceived,
    TaskStarted,
    TaskSucceeded,
    TaskFailed,
    TaskRetried,
    TaskRevoked,
    TaskRejected,
    /// Any other `task-<x>` (e.g. `task-progress`, `task-cancelled`); holds `<x>`.
    TaskCustom(String),
    WorkerOnline,
    WorkerHeartbeat,
    WorkerOffline,
    /// Anything else (`worker-elect`, other groups): counted, otherwise ignored.
    Other(String),
}

/// One decoded event. Envelope fields first; the rest are present only on the
/// event types that carry them (celery-protocol §2.2, §2.3).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Event {
    pub kind: EventKind,
    pub hostname: String,
    /// Sender's `time.time()` (UTC epoch seconds), as sent (not TZ-shifted).
    pub timestamp: f64,
    pub utcoffset: Option<f64>,
    pub pid: Option<i64>,
    pub clock: Option<u64>,

    // Task events.
    pub uuid: Option<String>,
    pub name: Option<String>,
    pub args: Option<String>,
    pub kwargs: Option<String>,
    pub root_id: Option<String>,
    pub parent_id: Option<String>,
    pub retries: Option<i64>,
    pub eta: Option<String>,
    pub expires: Option<String>,
    pub queue: Option<String>,
    pub exchange: Option<String>,
    pub routing_key: Option<String>,
    pub result: Option<String>,
    pub runtime: Option<f64>,
    pub exception: Option<String>,
    pub traceback: Option<String>,
    pub terminated: Option<bool>,
    /// An int on the wire normally, a string on one path; kept as text.
    pub signum: Option<String>,
    pub expired: Option<bool>,
    pub requeue: Option<bool>,

    // Worker events.
    pub freq: Option<f64>,
    pub active: Option<i64>,
    pub processed: Option<i64>,
    pub loadavg: Option<[f64; 3]>,
    pub sw_ident: Option<String>,
    pub sw_ver: Option<String>,
    pub sw_sys: Option<String>,
}

impl Default for EventKind {
    fn default() -> Self {
        EventKind::Other(String::new())
    }
}
