//! What Celery's key-value result backends store per task (`celery-task-meta-<id>`,
//! json serializer) and how Flower answers with it. Pure.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{json, Value};

/// Celery's `READY_STATES`: a result is final.
pub const READY_STATES: &[&str] = &["SUCCESS", "FAILURE", "REVOKED"];
/// `celery.contrib.abortable`'s state.
pub const ABORTED: &str = "ABORTED";
/// How long Celery keeps a result by default (`result_expires`, one day).
pub const RESULT_EXPIRES_SECS: u64 = 86_400;

/// Key prefix of Celery's key-value backends.
pub fn key(task_id: &str) -> String {
    format!("celery-task-meta-{task_id}")
}

/// One stored result.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    pub status: String,
    pub result: Value,
    pub traceback: Option<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the stored result of task {task_id} is not Celery's JSON meta: {reason}")]
pub struct MetaError {
    pub task_id: String,
    pub reason: String,
}

impl Meta {
    /// From the stored bytes (Celery's json `result_serializer`).
    pub fn parse(task_id: &str, bytes: &[u8]) -> Result<Meta, MetaError> {
        let err = |reason: String| MetaError {
            task_id: task_id.to_string(),
            reason,
        };
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| err(format!("{e} (is result_serializer json?)")))?;
        let status = v["status"]
            .as_str()
            .ok_or_else(|| err("no `status`".into()))?
            .to_string();
        Ok(Meta {
            status,
            result: v.get("result").cloned().unwrap_or(Value::Null),
            traceback: v["traceback"].as_str().map(str::to_string),
        })
    }

    pub fn ready(&self) -> bool {
        READY_STATES.contains(&self.status.as_str())
    }

    /// Flower's `safe_result`: a JSON value as is; an exception (Celery
    /// stores `{exc_type, exc_message, exc_module}`) as its Python repr.
    pub fn safe_result(&self) -> Value {
        match &self.result {
            Value::Object(m) if m.contains_key("exc_type") => {
                let name = m["exc_type"].as_str().unwrap_or("Exception");
                let args = match &m.get("exc_message") {
                    Some(Value::Array(a)) => a.clone(),
                    Some(Value::Null) | None => Vec::new(),
                    Some(other) => vec![(*other).clone()],
                };
                let inner = crate::pyrepr::render_args(&args);
                // `ValueError('x')`, not `ValueError('x',)`.
                let inner = if args.len() == 1 {
                    format!("{})", inner.trim_end_matches(",)"))
                } else {
                    inner
                };
                Value::String(format!("{name}{inner}"))
            }
            other => other.clone(),
        }
    }
}

/// What `AbortableAsyncResult.abort()` stores: state ABORTED, no result.
pub fn aborted(task_id: &str) -> Vec<u8> {
    let meta = json!({
        "status": ABORTED,
        "result": null,
        "traceback": null,
        "children": [],
        "date_done": null,
        "task_id": task_id,
    });
    serde_json::to_vec(&meta).unwrap_or_default()
}

/// A JSON object with its keys in the order given (Flower's dicts keep
/// insertion order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ordered(pub Vec<(&'static str, Value)>);

impl Ordered {
    pub fn push(&mut self, key: &'static str, value: impl Into<Value>) {
        self.0.push((key, value.into()));
    }
}

impl Serialize for Ordered {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Flower's `update_response_result`: `result`, and `traceback` on failure.
pub fn add_result(answer: &mut Ordered, meta: &Meta) {
    answer.push("result", meta.safe_result());
    if meta.status == "FAILURE" {
        answer.push("traceback", meta.traceback.clone());
    }
}

/// `GET /api/task/result/{id}`: `{"task-id", "state"}`, plus the result
/// once it is ready. A task the backend has nothing for is PENDING.
pub fn result_answer(task_id: &str, meta: Option<&Meta>) -> Ordered {
    let mut a = Ordered::default();
    a.push("task-id", task_id);
    a.push("state", meta.map_or("PENDING", |m| m.status.as_str()));
    if let Some(m) = meta.filter(|m| m.ready()) {
        add_result(&mut a, m);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_results_answer_as_flower_does() {
        let ok = Meta::parse(
            "i",
            br#"{"status": "SUCCESS", "result": 5, "traceback": null, "children": [], "date_done": "2026-12-07T20:00:00.000000+00:00", "task_id": "i"}"#,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&result_answer("i", Some(&ok))).unwrap(),
            r#"{"task-id":"i","state":"SUCCESS","result":5}"#
        );
        let failed = Meta::parse(
            "i",
            br#"{"status": "FAILURE", "result": {"exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"}, "traceback": "Traceback ...", "task_id": "i"}"#,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&result_answer("i", Some(&failed))).unwrap(),
            r#"{"task-id":"i","state":"FAILURE","result":"ValueError('boom')","traceback":"Traceback ..."}"#
        );
        let started = Meta::parse("i", br#"{"status": "STARTED", "result": {"pid": 1}}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&result_answer("i", Some(&started))).unwrap(),
            r#"{"task-id":"i","state":"STARTED"}"#
        );
        assert_eq!(
            serde_json::to_string(&result_answer("i", None)).unwrap(),
            r#"{"task-id":"i","state":"PENDING"}"#
        );
        let two = Meta {
            status: "FAILURE".into(),
            result: json!({"exc_type": "KeyError", "exc_message": ["a", 2]}),
            traceback: None,
        };
        assert_eq!(two.safe_result(), json!("KeyError('a', 2)"));
        assert!(Meta::parse("i", b"\x80\x04pickle").is_err());
        let aborted: Value = serde_json::from_slice(&aborted("i")).unwrap();
        assert_eq!(aborted["status"], "ABORTED");
    }
}
