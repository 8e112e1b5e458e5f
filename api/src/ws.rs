//! Messages of the dashboard's websocket (`/ws`), server to client.
//!
//! On connect the server sends one [`WsMessage::Snapshot`], then at most one
//! [`WsMessage::Delta`] per publish interval (250 ms) carrying only what
//! changed. A client that falls behind receives a fresh snapshot instead of a
//! backlog of deltas. Deltas are idempotent upserts, so applying one that
//! overlaps the snapshot is harmless.

use serde::{Deserialize, Serialize};

use crate::{TaskState, Worker};

/// Longest `args`/`kwargs`/`result`/`exception` text carried in a
/// [`TaskRow`]; the full text is at `/api/task/info/{uuid}`.
pub const ROW_TEXT_MAX: usize = 256;

/// The compact form of a task for the live table. Keys are short because a
/// snapshot carries thousands of rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRow {
    #[serde(rename = "u")]
    pub uuid: String,
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "s")]
    pub state: TaskState,
    #[serde(rename = "w", default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    #[serde(rename = "q", default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<f64>,
    #[serde(rename = "rcv", default, skip_serializing_if = "Option::is_none")]
    pub received: Option<f64>,
    #[serde(rename = "st", default, skip_serializing_if = "Option::is_none")]
    pub started: Option<f64>,
    /// Time of the event that set the current state.
    #[serde(rename = "ts", default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<f64>,
    #[serde(rename = "rt", default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<f64>,
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub args: Option<String>,
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    pub kwargs: Option<String>,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    #[serde(rename = "rid", default, skip_serializing_if = "Option::is_none")]
    pub root_id: Option<String>,
    #[serde(rename = "rty", default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
}

/// Cuts `s` to at most [`ROW_TEXT_MAX`] bytes on a char boundary, marking
/// the cut with `…`.
pub fn clip(s: &str) -> String {
    if s.len() <= ROW_TEXT_MAX {
        return s.to_owned();
    }
    let mut end = ROW_TEXT_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Per task name, from the server's aggregates (all tasks ever seen, not
/// only the retained ones).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TypeStats {
    pub name: String,
    pub sent: u64,
    pub received: u64,
    pub started: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub retried: u64,
    pub revoked: u64,
    pub rejected: u64,
    /// Runtime quantiles in seconds, from the runtime histogram (upper
    /// bucket bounds, so an over-estimate); `None` before any success.
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    /// Tasks finished (succeeded + failed) per second over the last minute.
    pub throughput: f64,
}

/// Tasks finished in one second of server time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RatePoint {
    /// Start of the second, epoch seconds.
    pub t: f64,
    pub succeeded: u64,
    pub failed: u64,
}

/// Health of the event source, as `/readyz` sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Ingest {
    pub consuming: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Tasks the server retains (the snapshot may carry fewer).
    pub tasks_retained: u64,
    pub tasks_evicted: u64,
    /// When the counters behind the per-type figures started (celeriac's
    /// start; tasks loaded back from history are not counted again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counting_since: Option<f64>,
}

/// One websocket message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WsMessage {
    /// Everything the dashboard shows: sent on connect and to resynchronise.
    Snapshot {
        /// Server clock, epoch seconds (worker liveness is relative to it).
        now: f64,
        workers: Vec<Worker>,
        /// The most recently created retained tasks, oldest first.
        tasks: Vec<TaskRow>,
        /// Every task type, sorted by name (at most `--max-task-names` and
        /// `other`).
        types: Vec<TypeStats>,
        /// Up to the last 15 minutes, oldest first.
        rates: Vec<RatePoint>,
        ingest: Ingest,
    },
    /// What changed since the previous message.
    Delta {
        now: f64,
        /// Every worker, when any changed (or liveness may have).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workers: Option<Vec<Worker>>,
        /// Tasks created or changed, upserted by uuid.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tasks: Vec<TaskRow>,
        /// The task types that changed since the previous message (once a
        /// second at most), upserted by name. Bounded: names beyond the
        /// server's `--max-task-names` are counted under `other`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        types: Vec<TypeStats>,
        /// Task types gone since the previous message (every series of the
        /// name left with purged workers).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        types_gone: Vec<String>,
        /// Seconds completed since the previous message.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        rates: Vec<RatePoint>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ingest: Option<Ingest>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_cuts_on_a_char_boundary() {
        assert_eq!(clip("abc"), "abc");
        let long = "é".repeat(200);
        let c = clip(&long);
        assert!(c.ends_with('…'));
        assert!(c.len() <= ROW_TEXT_MAX + '…'.len_utf8());
    }

    #[test]
    fn messages_round_trip() {
        let m = WsMessage::Delta {
            now: 1.0,
            workers: None,
            tasks: vec![TaskRow {
                uuid: "u".into(),
                name: Some("t".into()),
                state: TaskState::Success,
                worker: None,
                queue: None,
                sent: None,
                received: Some(1.0),
                started: None,
                timestamp: Some(2.0),
                runtime: Some(0.5),
                args: None,
                kwargs: None,
                result: None,
                exception: None,
                parent_id: None,
                root_id: None,
                retries: None,
            }],
            types: vec![],
            types_gone: vec![],
            rates: vec![],
            ingest: None,
        };
        let s = serde_json::to_string(&m).unwrap();
        assert!(s.starts_with(r#"{"type":"delta""#), "{s}");
        assert_eq!(serde_json::from_str::<WsMessage>(&s).unwrap(), m);
    }
}
