//! The insight endpoints: `/api/failures`, `/api/queues/latency`,
//! `/api/task/stats`, `/api/diagnosis`, `/api/tasks/stuck` and `/api/advice`.

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

/// Quantiles of one measure, seconds, from a DDSketch: each is within
/// `relative_error` of the true value of that rank; `null` without samples.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    /// Samples behind them.
    pub count: u64,
}

/// Tasks of one name that ended (or were retried) in the window, by the
/// state they reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct OutcomeCounts {
    pub succeeded: u64,
    pub failed: u64,
    pub retried: u64,
    pub revoked: u64,
    pub rejected: u64,
    pub lost: u64,
}

/// One task name's numbers over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskTypeStats {
    pub name: String,
    pub counts: OutcomeCounts,
    /// failed / (succeeded + failed); `null` before either.
    pub failure_rate: Option<f64>,
    /// Tasks that ended (any state in `counts`) per second over the window
    /// (at least a minute).
    pub throughput: f64,
    /// The worker's `runtime` of succeeded tasks; failed − started of
    /// failed ones.
    pub runtime: Quantiles,
    /// Until a worker started the task: from `task-sent` when the producer
    /// sends it, else from `task-received` (the worker's prefetch only).
    pub wait: Quantiles,
    /// Waits measured from `task-sent`.
    pub wait_from_sent: u64,
    /// Waits measured from `task-received` (no `task-sent` seen).
    pub wait_from_received: u64,
}

/// `GET /api/task/stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskStatsResponse {
    /// `5m`, `1h` or `all`.
    pub window: String,
    /// Seconds the window covers now (less than its length shortly after
    /// start-up, or for `all` the time since start).
    pub window_seconds: f64,
    /// The sketches' relative error bound (0.01: each quantile is within
    /// 1 % of the true value of its rank).
    pub relative_error: f64,
    /// Sorted by name.
    pub tasks: Vec<TaskTypeStats>,
    /// Task names beyond `--max-stats-task-names`, counted as `other`.
    pub names_folded: usize,
}

/// A worker that runs tasks but sends no task events (started without
/// `-E`, or `disable_events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerWithoutTaskEvents {
    pub hostname: String,
    /// Tasks it accepted (its heartbeats' `processed`) with no task event.
    pub tasks_unseen: i64,
    /// The heartbeat that first showed them.
    pub since: f64,
    /// Its last task event, if any was seen.
    pub last_task_event: Option<f64>,
}

/// A queue whose tasks arrive without `task-sent`: their producers lack
/// `task_send_sent_event`, so queue wait and latency cannot be measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueWithoutSentEvents {
    /// A queue the workers below consume (from their `active_queues`), or
    /// `unknown` before they answered it. Task events carry no queue
    /// without `task-sent`, so a worker consuming several queues names
    /// each of them.
    pub queue: String,
    pub workers: Vec<String>,
    /// Tasks those workers finished without `task-sent`, since start.
    pub tasks_without_sent: u64,
    /// When the last of them finished.
    pub last_at: f64,
}

/// Why tasks may be missing or unmeasured (`GET /api/diagnosis`, and in
/// `/readyz`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventsDiagnosis {
    pub workers_without_task_events: Vec<WorkerWithoutTaskEvents>,
    pub queues_without_sent_events: Vec<QueueWithoutSentEvents>,
}

/// A task STARTED for longer than it may run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StuckTask {
    pub uuid: String,
    pub name: Option<String>,
    pub worker: Option<String>,
    /// Its `task-started` timestamp.
    pub started: f64,
    /// Seconds since then.
    pub running_for: f64,
    /// The limit it passed, seconds.
    pub limit: f64,
    /// `task_time_limit` (the worker's, from `inspect conf`) or
    /// `stuck_after` (celeriac's `--stuck-after`).
    pub limit_from: String,
}

/// `GET /api/tasks/stuck`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StuckTasks {
    /// Longest running first.
    pub tasks: Vec<StuckTask>,
    /// `--stuck-after`, seconds.
    pub stuck_after: f64,
}

/// How urgent a piece of advice is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Tasks are not being served as they should now (no consumer, a
    /// queue that grows without bound, a time limit being hit).
    Critical,
    /// The target is missed or soon will be.
    Warning,
    /// Worth doing; nothing is late because of it yet.
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// What a piece of advice is about (`README.md`, "Advice", explains each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// Tasks arrive in a queue no live worker consumes.
    NoWorkers,
    /// Fewer processes consume a queue than keep its p95 wait under the
    /// target.
    UnderCapacity,
    /// A task type's runtime p95 is within 10 % of its time limit.
    NearTimeLimit,
    /// A few slow task types delay many fast ones: route them to a queue
    /// of their own.
    RouteSlowTasks,
    /// Fast task types sit in a queue of slow ones: route them to a queue
    /// of their own.
    RouteFastTasks,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::NoWorkers => "no_workers",
            FindingKind::UnderCapacity => "under_capacity",
            FindingKind::NearTimeLimit => "near_time_limit",
            FindingKind::RouteSlowTasks => "route_slow_tasks",
            FindingKind::RouteFastTasks => "route_fast_tasks",
        }
    }
}

/// One piece of advice: what was found, with its numbers, and what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: Severity,
    pub queue: String,
    /// The task types it names (those to move, the one near its limit);
    /// empty for a queue as a whole.
    pub tasks: Vec<String>,
    /// What was found, with the numbers behind it.
    pub summary: String,
    /// What to do about it.
    pub action: String,
    /// The settings and commands that do it, one per line, to copy
    /// (`<app>` stands for the Celery app's module).
    pub snippets: Vec<String>,
}

/// One task type's share of a queue over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueTaskType {
    pub name: String,
    /// Tasks (attempts) that arrived: `task-sent`, or a worker's receipt
    /// without it.
    pub arrived: u64,
    /// Per second over the window.
    pub arrival_rate: f64,
    /// Tasks that succeeded or failed, with a runtime.
    pub completed: u64,
    pub runtime_mean: Option<f64>,
    pub runtime_p50: Option<f64>,
    pub runtime_p95: Option<f64>,
    /// Its part of the queue's processing time (sum of runtimes), 0..1.
    pub work_share: Option<f64>,
    /// The smallest `task_soft_time_limit` / `task_time_limit` among the
    /// queue's workers that set one (`inspect conf`), seconds.
    pub soft_time_limit: Option<f64>,
    pub time_limit: Option<f64>,
}

/// One queue's load and capacity over the window, and what the M/M/c model
/// makes of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueCapacity {
    pub name: String,
    pub arrived: u64,
    /// λ, tasks per second.
    pub arrival_rate: f64,
    pub completed: u64,
    /// Tasks completed per second (throughput).
    pub completion_rate: f64,
    /// Mean runtime (1/μ), seconds.
    pub runtime_mean: Option<f64>,
    pub runtime_p50: Option<f64>,
    pub runtime_p95: Option<f64>,
    /// μ, tasks per second one process completes (1 / mean runtime).
    pub service_rate: Option<f64>,
    /// λ/μ: the processes the arrivals keep busy on average.
    pub offered_load: Option<f64>,
    /// Live workers consuming the queue (`inspect active_queues`).
    pub workers: Vec<String>,
    /// Their pool processes (`inspect stats`); `null` when unknown.
    pub processes: Option<u64>,
    /// Of those, running a task at their last heartbeat (`active`).
    pub busy: Option<u64>,
    /// offered_load / processes (above 1: the queue grows without bound).
    pub utilisation: Option<f64>,
    /// The fewest processes for which P(wait > target) ≤ 5 % (M/M/c);
    /// `null` without enough completed tasks to know the runtime, or above
    /// 10,000.
    pub processes_needed: Option<u64>,
    /// P(wait > target) with `processes`, by the model.
    pub wait_over_target: Option<f64>,
    /// The observed sent → started p95 (`/api/queues/latency`, last 5 min).
    pub observed_wait_p95: Option<f64>,
    /// Sorted by name.
    pub task_types: Vec<QueueTaskType>,
}

/// `GET /api/advice`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AdviceResponse {
    /// `5m` or `1h`.
    pub window: String,
    /// Seconds the window covers now.
    pub window_seconds: f64,
    /// `--advice-wait-target`, seconds: the p95 queue wait to stay under.
    pub wait_target: f64,
    /// The probability of a longer wait the target allows (0.05: p95).
    pub wait_probability: f64,
    /// Completed tasks a queue needs in the window before the model (and
    /// so `processes_needed`) judges it.
    pub min_completed: u64,
    /// Most severe first, then by kind, queue and task names.
    pub findings: Vec<Finding>,
    /// Sorted by name.
    pub queues: Vec<QueueCapacity>,
}
