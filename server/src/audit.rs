//! The audit log: every control action, who asked, when, the
//! command, its arguments and target, and each worker's reply. Kept in
//! memory (the newest [`AUDIT_CAPACITY`]) for `GET /api/audit`, and written
//! to the log (target `celeriac::audit`) as it happens.

use std::collections::VecDeque;

use crate::redact::Redactor;

/// Entries `GET /api/audit` can return; older ones are only in the log.
pub const AUDIT_CAPACITY: usize = 1000;

/// One entry, as `GET /api/audit` sends it.
pub use api::control::AuditEntry;

/// Where entries go beyond memory (the history store).
pub type Sink = Box<dyn Fn(&AuditEntry) + Send + Sync>;

pub struct Audit {
    entries: parking_lot::Mutex<(u64, VecDeque<AuditEntry>)>,
    sink: std::sync::OnceLock<Sink>,
    /// `--redact-keys`: arguments an operator passed (a retry's edited
    /// kwargs, a submitted task's) are readable by viewers here.
    redactor: Redactor,
}

impl Default for Audit {
    fn default() -> Self {
        Self::new()
    }
}

impl Audit {
    pub fn new() -> Audit {
        Audit {
            entries: parking_lot::Mutex::new((0, VecDeque::new())),
            sink: std::sync::OnceLock::new(),
            redactor: Redactor::default(),
        }
    }

    /// Masks `--redact-keys` in every entry's arguments and replies.
    pub fn masking(mut self, redactor: Redactor) -> Audit {
        self.redactor = redactor;
        self
    }

    /// Sends every entry recorded from now on to `sink` too (once).
    pub fn set_sink(&self, sink: Sink) {
        let _ = self.sink.set(sink);
    }

    /// Puts back entries a store kept (newest first, as `recent` gives
    /// them); ids continue after the newest.
    pub fn restore(&self, newest_first: Vec<AuditEntry>) {
        let mut guard = self.entries.lock();
        for e in newest_first.into_iter().rev() {
            guard.0 = guard.0.max(e.id);
            if guard.1.len() == AUDIT_CAPACITY {
                guard.1.pop_front();
            }
            guard.1.push_back(e);
        }
    }

    /// Records `entry` (its `id` is assigned here) and logs it.
    pub fn record(&self, mut entry: AuditEntry) -> u64 {
        self.redactor.mask_json(&mut entry.arguments);
        self.redactor.mask_json(&mut entry.replies);
        let id = {
            let mut guard = self.entries.lock();
            guard.0 += 1;
            entry.id = guard.0;
            if guard.1.len() == AUDIT_CAPACITY {
                guard.1.pop_front();
            }
            guard.1.push_back(entry.clone());
            guard.0
        };
        if let Some(sink) = self.sink.get() {
            sink(&entry);
        }
        tracing::info!(
            target: "celeriac::audit",
            id,
            user = %entry.user,
            command = %entry.command,
            arguments = %entry.arguments,
            target_workers = %entry.target,
            status = entry.status,
            replies = %entry.replies,
            no_reply = ?entry.no_reply,
            "control action"
        );
        id
    }

    /// The newest `limit` entries, newest first.
    pub fn recent(&self, limit: usize) -> Vec<AuditEntry> {
        self.entries
            .lock()
            .1
            .iter()
            .rev()
            .take(limit)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn entry(command: &str) -> AuditEntry {
        AuditEntry {
            id: 0,
            time: 1.0,
            user: "ann".into(),
            role: crate::auth::Role::Operator.as_str().into(),
            command: command.into(),
            arguments: Value::Null,
            target: Value::from("all"),
            status: 200,
            replies: Value::Null,
            no_reply: vec![],
        }
    }

    #[test]
    fn secrets_in_arguments_and_replies_are_masked() {
        let audit = Audit::new().masking(Redactor::new("password"));
        let mut e = entry("retry");
        e.arguments = serde_json::json!({"edited": {"kwargs": {"password": "s1", "u": "x"}}});
        e.replies = serde_json::json!({"kwargs": {"Password": "s2"}});
        audit.record(e);
        let text = serde_json::to_string(&audit.recent(1)).unwrap();
        assert!(!text.contains("s1") && !text.contains("s2"), "{text}");
        assert!(
            text.contains("\"u\":\"x\"") && text.contains("••••"),
            "{text}"
        );
    }

    #[test]
    fn newest_first_and_bounded() {
        let audit = Audit::new();
        for i in 0..AUDIT_CAPACITY + 5 {
            audit.record(entry(&format!("c{i}")));
        }
        let recent = audit.recent(2);
        assert_eq!(recent[0].command, format!("c{}", AUDIT_CAPACITY + 4));
        assert_eq!(recent[0].id, AUDIT_CAPACITY as u64 + 5);
        assert_eq!(audit.recent(usize::MAX).len(), AUDIT_CAPACITY);
    }
}
