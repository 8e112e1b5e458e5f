//! Types that cross the wire: REST responses (Flower-compatible) and, later,
//! websocket messages. No I/O here; the crate compiles for wasm32 too.
//!
//! Field order of the structs is the JSON key order, chosen to match what
//! Flower 2.2 returns so existing scripts and diffs keep working.

use serde::{Deserialize, Serialize};

/// The alert engine's state (`GET /api/alerts`).
pub mod alerts;
/// Remote control: `/api/me`, the command set, control answers, bulk
/// revoke, the audit log.
pub mod control;
/// `/readyz`.
pub mod health;
/// Failure groups and queue latency.
pub mod insight;
/// `/api/queues/length`.
pub mod queues;
/// `GET /api/series`.
pub mod series;
/// A task's workflow tree.
pub mod tree;
/// The dashboard's websocket messages.
pub mod ws;

/// A task's state, as Celery names it (`celery.states`), plus custom states
/// sent by `Task.send_event('task-<x>')`, which Celery upper-cases.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskState {
    Pending,
    Received,
    Started,
    Success,
    Failure,
    Retry,
    Revoked,
    Rejected,
    /// A custom state such as `PROGRESS` (from `task-progress`) or
    /// `CANCELLED` (from `task-cancelled`).
    Custom(String),
}

impl TaskState {
    /// The name Celery and Flower use on the wire (`"SUCCESS"`, ...).
    pub fn as_str(&self) -> &str {
        match self {
            TaskState::Pending => "PENDING",
            TaskState::Received => "RECEIVED",
            TaskState::Started => "STARTED",
            TaskState::Success => "SUCCESS",
            TaskState::Failure => "FAILURE",
            TaskState::Retry => "RETRY",
            TaskState::Revoked => "REVOKED",
            TaskState::Rejected => "REJECTED",
            TaskState::Custom(s) => s,
        }
    }

    /// Parses a state name case-insensitively (Flower 2.1+ filters that way).
    pub fn parse(s: &str) -> TaskState {
        match s.to_ascii_uppercase().as_str() {
            "PENDING" => TaskState::Pending,
            "RECEIVED" => TaskState::Received,
            "STARTED" => TaskState::Started,
            "SUCCESS" => TaskState::Success,
            "FAILURE" => TaskState::Failure,
            "RETRY" => TaskState::Retry,
            "REVOKED" => TaskState::Revoked,
            "REJECTED" => TaskState::Rejected,
            other => TaskState::Custom(other.to_string()),
        }
    }

    /// True once the task will not change state by itself any more.
    pub fn is_ready(&self) -> bool {
        matches!(
            self,
            TaskState::Success | TaskState::Failure | TaskState::Revoked | TaskState::Rejected
        )
    }
}

impl Serialize for TaskState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TaskState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(TaskState::parse(&s))
    }
}

/// One task as Flower's `Task.as_dict()` renders it (`/api/tasks` values and
/// `/api/task/info/{id}`), field for field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub uuid: String,
    pub name: Option<String>,
    pub state: TaskState,
    pub received: Option<f64>,
    pub sent: Option<f64>,
    pub started: Option<f64>,
    pub rejected: Option<f64>,
    pub succeeded: Option<f64>,
    pub failed: Option<f64>,
    pub retried: Option<f64>,
    pub revoked: Option<f64>,
    pub args: Option<String>,
    pub kwargs: Option<String>,
    pub eta: Option<String>,
    pub expires: Option<String>,
    pub retries: Option<i64>,
    pub result: Option<String>,
    pub exception: Option<String>,
    pub timestamp: Option<f64>,
    pub runtime: Option<f64>,
    pub traceback: Option<String>,
    pub exchange: Option<String>,
    pub routing_key: Option<String>,
    pub clock: Option<u64>,
    pub client: Option<String>,
    pub root: Option<String>,
    pub root_id: Option<String>,
    pub parent: Option<String>,
    pub parent_id: Option<String>,
    pub children: Vec<String>,
    /// Hostname of the worker that handled it (Flower moves it last).
    pub worker: Option<String>,
    // Beyond Flower: fields celeriac knows and Flower drops.
    /// The queue the producer routed the task to (from `task-sent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
}

/// A worker as known from its events (`worker-online`/`-heartbeat`/`-offline`
/// and task events). Inspect fields (`stats`, `registered`, ...) are added by
/// the remote-control work and are absent until then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Worker {
    pub hostname: String,
    /// Alive by heartbeat expiry: last heartbeat + 2 × freq is in the future.
    pub status: bool,
    pub active: Option<i64>,
    pub processed: Option<i64>,
    pub loadavg: Option<[f64; 3]>,
    pub freq: Option<f64>,
    pub sw_ident: Option<String>,
    pub sw_ver: Option<String>,
    pub sw_sys: Option<String>,
    pub pid: Option<i64>,
    pub clock: Option<u64>,
    pub utcoffset: Option<f64>,
    /// Timestamp of the worker's last event.
    pub timestamp: Option<f64>,
    /// When celeriac last heard from it (receiver clock).
    pub last_heartbeat: Option<f64>,
    /// When it will be declared offline unless it is heard from again.
    pub heartbeat_expires: Option<f64>,
}

/// `GET /api/task/types`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskTypes {
    #[serde(rename = "task-types")]
    pub task_types: Vec<String>,
    /// Names met beyond `--max-task-names`, not listed (celeriac's own key;
    /// absent when none were).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub folded: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The body of every 4xx/5xx JSON answer: what went wrong, and which
/// parameter caused it when one did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_its_wire_name() {
        for s in [
            "PENDING", "RECEIVED", "STARTED", "SUCCESS", "FAILURE", "RETRY", "REVOKED", "REJECTED",
            "PROGRESS",
        ] {
            assert_eq!(TaskState::parse(s).as_str(), s);
        }
        assert_eq!(TaskState::parse("failure"), TaskState::Failure);
    }

    #[test]
    fn task_matches_flowers_shape() {
        let raw = include_str!("../../fixtures/flower-api/info_success.json");
        let flower: serde_json::Value = serde_json::from_str(raw).unwrap();
        let task: Task = serde_json::from_value(flower.clone()).unwrap();
        let ours = serde_json::to_value(&task).unwrap();
        let keys = |v: &serde_json::Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(keys(&ours), keys(&flower));
        assert_eq!(ours, flower);
    }
}
