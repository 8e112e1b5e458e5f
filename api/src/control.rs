//! Remote control on the wire: who is looking (`GET /api/me`), what a
//! control endpoint answers, and the audit log (`GET /api/audit`). Shared
//! by the server and the dashboard, which hides its controls with [`Me`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `GET /api/me`: the caller and what it may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    /// The user name (`anonymous` when no users are configured).
    pub user: String,
    pub role: MeRole,
    /// Whether any users or tokens are configured. When false, anyone who
    /// can reach celeriac may control the workers.
    pub auth_enabled: bool,
    /// `--read-only`: control is refused for everyone.
    pub read_only: bool,
    /// Whether control requests from this caller would be accepted.
    pub can_control: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MeRole {
    Operator,
    Viewer,
    /// No users configured: nobody logs in.
    Anonymous,
}

/// The answer of every control endpoint (Flower's `message` or `error`,
/// plus each worker's reply and the addressed workers that did not answer).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ControlResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `{nodename: reply}`; a reply is usually `{"ok": ...}` or
    /// `{"error": ...}`.
    #[serde(default)]
    pub replies: BTreeMap<String, Value>,
    #[serde(default)]
    pub no_reply: Vec<String>,
    /// What the replies do not say: set where an acknowledged command does
    /// not take full effect (a time limit before its pool restarts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The follow-up `pool_restart` of `/api/task/timeout?apply=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_restart: Option<Box<ControlResponse>>,
}

/// `GET /api/audit`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditResponse {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
}

/// One control action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: u64,
    /// Unix seconds.
    pub time: f64,
    pub user: String,
    /// `operator` or `viewer`.
    pub role: String,
    /// The pidbox method (`revoke`, ...) or `bulk_revoke`.
    pub command: String,
    pub arguments: Value,
    /// `"all"`, a list of nodenames, or `{pattern, matcher}`.
    pub target: Value,
    /// The HTTP status the action answered with.
    pub status: u16,
    /// `{nodename: reply}` (bulk revoke: `{nodename: [reply, ...]}`).
    pub replies: Value,
    #[serde(default)]
    pub no_reply: Vec<String>,
}
