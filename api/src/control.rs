//! Remote control on the wire: who is looking (`GET /api/me`), which
//! commands may be sent ([`Command`]), what a control endpoint and bulk
//! revoke answer, and the audit log (`GET /api/audit`). Shared by the
//! server and the dashboard, which hides its controls with [`Me`].

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
    /// Signed in through OpenID Connect (a browser session): the
    /// dashboard offers to sign out, and sends the CSRF token with every
    /// control request.
    #[serde(default)]
    pub session: bool,
    /// The signed-in user's email, when the provider gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
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

/// The remote-control commands celeriac lets an operator send: the pidbox
/// `method`s of `POST /api/control/{command}`, and what the dashboard's
/// actions send. Anything else is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    Revoke,
    RevokeByStampedHeaders,
    RateLimit,
    TimeLimit,
    PoolGrow,
    PoolShrink,
    Autoscale,
    AddConsumer,
    CancelConsumer,
    Shutdown,
    PoolRestart,
    EnableEvents,
    DisableEvents,
    Ping,
    Active,
    Reserved,
    Scheduled,
    Revoked,
    Registered,
    Stats,
    ActiveQueues,
    Conf,
    QueryTask,
}

impl Command {
    /// Every command, actions first, then the read-only ones.
    pub const ALL: [Command; 23] = [
        Command::Revoke,
        Command::RevokeByStampedHeaders,
        Command::RateLimit,
        Command::TimeLimit,
        Command::PoolGrow,
        Command::PoolShrink,
        Command::Autoscale,
        Command::AddConsumer,
        Command::CancelConsumer,
        Command::Shutdown,
        Command::PoolRestart,
        Command::EnableEvents,
        Command::DisableEvents,
        Command::Ping,
        Command::Active,
        Command::Reserved,
        Command::Scheduled,
        Command::Revoked,
        Command::Registered,
        Command::Stats,
        Command::ActiveQueues,
        Command::Conf,
        Command::QueryTask,
    ];

    /// The pidbox method name, as Celery spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Revoke => "revoke",
            Command::RevokeByStampedHeaders => "revoke_by_stamped_headers",
            Command::RateLimit => "rate_limit",
            Command::TimeLimit => "time_limit",
            Command::PoolGrow => "pool_grow",
            Command::PoolShrink => "pool_shrink",
            Command::Autoscale => "autoscale",
            Command::AddConsumer => "add_consumer",
            Command::CancelConsumer => "cancel_consumer",
            Command::Shutdown => "shutdown",
            Command::PoolRestart => "pool_restart",
            Command::EnableEvents => "enable_events",
            Command::DisableEvents => "disable_events",
            Command::Ping => "ping",
            Command::Active => "active",
            Command::Reserved => "reserved",
            Command::Scheduled => "scheduled",
            Command::Revoked => "revoked",
            Command::Registered => "registered",
            Command::Stats => "stats",
            Command::ActiveQueues => "active_queues",
            Command::Conf => "conf",
            Command::QueryTask => "query_task",
        }
    }

    /// The command of a method name; exact, as Celery dispatches.
    pub fn parse(s: &str) -> Option<Command> {
        Command::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Read-only (inspect) commands: they change nothing on the workers, so
    /// they are not actions and the audit log leaves them out (their
    /// replies can be large and hold task arguments).
    pub fn is_inspect(self) -> bool {
        matches!(
            self,
            Command::Ping
                | Command::Active
                | Command::Reserved
                | Command::Scheduled
                | Command::Revoked
                | Command::Registered
                | Command::Stats
                | Command::ActiveQueues
                | Command::Conf
                | Command::QueryTask
        )
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `POST /api/tasks/revoke`: the unfinished tasks a filter selects, and
/// (unless a dry run) each worker's replies to the `revoke` messages.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BulkRevokeResponse {
    pub dry_run: bool,
    pub count: u64,
    pub ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `{nodename: [reply, ...]}`, one reply per `revoke` message (a
    /// message carries up to 500 ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replies: Option<BTreeMap<String, Vec<Value>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_reply: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Serialises `value`, checks the JSON text, and reads it back equal.
    fn round_trip<T>(value: &T, text: &str)
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
    {
        assert_eq!(serde_json::to_string(value).unwrap(), text);
        assert_eq!(&serde_json::from_str::<T>(text).unwrap(), value);
    }

    #[test]
    fn commands_keep_celerys_method_names() {
        for c in Command::ALL {
            assert_eq!(Command::parse(c.as_str()), Some(c));
            round_trip(&c, &format!("\"{}\"", c.as_str()));
        }
        assert_eq!(
            Command::RevokeByStampedHeaders.as_str(),
            "revoke_by_stamped_headers"
        );
        assert_eq!(Command::parse("Ping"), None, "method names are exact");
        assert_eq!(Command::parse("bulk_revoke"), None);
        let inspect: Vec<&str> = Command::ALL
            .into_iter()
            .filter(|c| c.is_inspect())
            .map(Command::as_str)
            .collect();
        assert_eq!(
            inspect,
            [
                "ping",
                "active",
                "reserved",
                "scheduled",
                "revoked",
                "registered",
                "stats",
                "active_queues",
                "conf",
                "query_task"
            ]
        );
    }

    #[test]
    fn bulk_revoke_answers_leave_out_what_a_dry_run_has_not() {
        let dry = BulkRevokeResponse {
            dry_run: true,
            count: 1,
            ids: vec!["a".into()],
            ..BulkRevokeResponse::default()
        };
        round_trip(&dry, r#"{"dry_run":true,"count":1,"ids":["a"]}"#);
        let done = BulkRevokeResponse {
            dry_run: false,
            count: 1,
            ids: vec!["a".into()],
            message: Some("Revoked 1 tasks".into()),
            replies: Some(BTreeMap::from([(
                "w@h".to_string(),
                vec![json!({"ok": "tasks a flagged as revoked"})],
            )])),
            no_reply: Some(vec![]),
        };
        round_trip(
            &done,
            r#"{"dry_run":false,"count":1,"ids":["a"],"message":"Revoked 1 tasks","replies":{"w@h":[{"ok":"tasks a flagged as revoked"}]},"no_reply":[]}"#,
        );
    }

    #[test]
    fn audit_entries_round_trip() {
        let entry = AuditEntry {
            id: 3,
            time: 1_700_000_000.5,
            user: "ann".into(),
            role: "operator".into(),
            command: "revoke".into(),
            arguments: json!({"signal": "SIGKILL", "task_id": "abc", "terminate": true}),
            target: json!("all"),
            status: 200,
            replies: json!({"w1@h": {"ok": "tasks abc flagged as revoked"}}),
            no_reply: vec!["w2@h".into()],
        };
        round_trip(
            &AuditResponse {
                entries: vec![entry],
            },
            r#"{"entries":[{"id":3,"time":1700000000.5,"user":"ann","role":"operator","command":"revoke","arguments":{"signal":"SIGKILL","task_id":"abc","terminate":true},"target":"all","status":200,"replies":{"w1@h":{"ok":"tasks abc flagged as revoked"}},"no_reply":["w2@h"]}]}"#,
        );
    }

    #[test]
    fn control_responses_leave_out_what_is_not_said() {
        let r = ControlResponse {
            message: Some("Shutting down!".into()),
            ..ControlResponse::default()
        };
        round_trip(
            &r,
            r#"{"message":"Shutting down!","replies":{},"no_reply":[]}"#,
        );
    }
}
