//! `GET /api/failures` (failure groups) and `GET /api/queues/latency`.

use serde::{Deserialize, Serialize};

/// Whether a failure group is being looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupState {
    Open,
    Resolved,
}

impl GroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Open => "open",
            GroupState::Resolved => "resolved",
        }
    }
}

/// Who set a mark, and when (Unix seconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    pub by: String,
    pub at: f64,
}

/// One failure of the group, as it came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureSample {
    pub task_id: String,
    pub task_name: Option<String>,
    pub worker: Option<String>,
    /// The exception's repr, message included.
    pub exception: Option<String>,
    pub traceback: Option<String>,
}

/// Failures in one 5-minute bucket starting at `at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendPoint {
    pub at: f64,
    pub count: u64,
}

/// Failures of one bug: the same exception type at the same place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureGroup {
    pub fingerprint: String,
    /// The exception type.
    pub exception: String,
    /// The frames that locate it (`file in function: source line`), outermost first.
    pub frames: Vec<String>,
    pub count: u64,
    pub first_seen: f64,
    pub last_seen: f64,
    /// Task names affected, first seen first, at most a few.
    pub tasks: Vec<String>,
    /// More task names than `tasks` lists were affected.
    pub tasks_truncated: bool,
    pub workers: Vec<String>,
    pub workers_truncated: bool,
    /// A failure from when the group was first seen.
    pub sample: FailureSample,
    /// Non-empty 5-minute buckets of the last 24 hours, oldest first.
    pub trend: Vec<TrendPoint>,
    pub state: GroupState,
    /// The last resolve, kept after a reopen.
    pub resolved: Option<Mark>,
    pub unresolved: Option<Mark>,
    /// When a failure reopened it after a resolve.
    pub reopened_at: Option<f64>,
}

/// `GET /api/failures`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FailuresResponse {
    /// Sorted by `last_seen`, newest first, after filters and `limit`.
    pub groups: Vec<FailureGroup>,
    /// Groups matching the filters, before `limit`.
    pub total: usize,
    /// Groups dropped to stay within `--max-failure-groups` since start.
    pub evicted: u64,
}

/// One queue's latency, from `task-sent` events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueLatency {
    pub name: String,
    /// Tasks sent and not yet received by a worker.
    pub waiting: u64,
    /// Seconds the oldest of them has waited; 0 when none waits.
    pub oldest_task_age: f64,
    /// Its `task-sent` timestamp.
    pub oldest_sent: Option<f64>,
    /// sent → started of tasks that started in the window, seconds
    /// (nearest-rank, exact); `null` without any.
    pub wait_p50: Option<f64>,
    pub wait_p95: Option<f64>,
    pub wait_samples: u64,
}

/// `GET /api/queues/latency`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueuesLatency {
    /// Sorted by name.
    pub queues: Vec<QueueLatency>,
    /// The window of `wait_p50` / `wait_p95`, seconds.
    pub wait_window: f64,
    /// Queue names beyond `--max-latency-queues`, tracked together as `other`.
    pub queues_folded: usize,
}
