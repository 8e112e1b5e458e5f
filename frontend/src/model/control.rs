//! Remote control, the pure part: what an action sends and how the
//! confirmation names it, checking what the user typed, reading each
//! worker's reply, and laying out the inspect tabs and the audit log.

use api::control::{Command, ControlResponse};
use serde_json::Value;

/// Signals offered for "terminate" (Celery accepts any name `signal`
/// knows; these are the useful ones).
pub const SIGNALS: &[&str] = &[
    "SIGTERM", "SIGKILL", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1",
];

/// Most tasks one "revoke the shown tasks" action addresses.
pub const MAX_REVOKE_SHOWN: usize = 1000;

/// A control action, as the confirmation describes it and as it is sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// One task (`/api/task/revoke/{id}`).
    Revoke {
        uuid: String,
        terminate: bool,
        signal: String,
    },
    /// The unfinished tasks the tasks table shows (`/api/control/revoke`).
    RevokeMany {
        ids: Vec<String>,
        terminate: bool,
        signal: String,
    },
    /// `rate` is Celery's syntax (`10/m`); empty disables the limit.
    RateLimit {
        task: String,
        rate: String,
        worker: Option<String>,
    },
    TimeLimit {
        task: String,
        soft: Option<f64>,
        hard: Option<f64>,
        worker: Option<String>,
        /// Restart the pool too: Celery 5.7 prefork workers use a changed
        /// limit for new tasks only after that.
        apply: bool,
    },
    PoolGrow {
        worker: String,
        n: u32,
    },
    PoolShrink {
        worker: String,
        n: u32,
    },
    Autoscale {
        worker: String,
        max: u32,
        min: u32,
    },
    AddConsumer {
        worker: String,
        queue: String,
    },
    CancelConsumer {
        worker: String,
        queue: String,
    },
    PoolRestart {
        worker: String,
    },
    Shutdown {
        worker: String,
    },
    /// Every worker stops consuming the queue, and workers that come online
    /// later are stopped too, until resumed (`/api/queue/pause/{queue}`).
    PauseQueue {
        queue: String,
    },
    /// The workers the pause stopped consume the queue again.
    ResumeQueue {
        queue: String,
    },
}

/// A request body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// `application/x-www-form-urlencoded` pairs (Flower's endpoints).
    Form(Vec<(&'static str, String)>),
    /// JSON (`/api/control/{command}`).
    Json(Value),
}

impl Action {
    /// The pidbox command it makes the server send (the server allows
    /// these and no others).
    pub fn command(&self) -> Command {
        match self {
            Action::Revoke { .. } | Action::RevokeMany { .. } => Command::Revoke,
            Action::RateLimit { .. } => Command::RateLimit,
            Action::TimeLimit { .. } => Command::TimeLimit,
            Action::PoolGrow { .. } => Command::PoolGrow,
            Action::PoolShrink { .. } => Command::PoolShrink,
            Action::Autoscale { .. } => Command::Autoscale,
            Action::AddConsumer { .. } | Action::ResumeQueue { .. } => Command::AddConsumer,
            Action::CancelConsumer { .. } | Action::PauseQueue { .. } => Command::CancelConsumer,
            Action::PoolRestart { .. } => Command::PoolRestart,
            Action::Shutdown { .. } => Command::Shutdown,
        }
    }

    /// The path to POST to, under the URL prefix.
    pub fn path(&self) -> String {
        let seg = |s: &str| encode_segment(s);
        match self {
            Action::Revoke { uuid, .. } => format!("/api/task/revoke/{}", seg(uuid)),
            Action::RevokeMany { .. } => format!("/api/control/{}", self.command()),
            Action::RateLimit { task, .. } => format!("/api/task/rate-limit/{}", seg(task)),
            Action::TimeLimit { task, .. } => format!("/api/task/timeout/{}", seg(task)),
            Action::PoolGrow { worker, .. } => format!("/api/worker/pool/grow/{}", seg(worker)),
            Action::PoolShrink { worker, .. } => {
                format!("/api/worker/pool/shrink/{}", seg(worker))
            }
            Action::Autoscale { worker, .. } => {
                format!("/api/worker/pool/autoscale/{}", seg(worker))
            }
            Action::AddConsumer { worker, .. } => {
                format!("/api/worker/queue/add-consumer/{}", seg(worker))
            }
            Action::CancelConsumer { worker, .. } => {
                format!("/api/worker/queue/cancel-consumer/{}", seg(worker))
            }
            Action::PoolRestart { worker } => {
                format!("/api/worker/pool/restart/{}", seg(worker))
            }
            Action::Shutdown { worker } => format!("/api/worker/shutdown/{}", seg(worker)),
            Action::PauseQueue { queue } => format!("/api/queue/pause/{}", seg(queue)),
            Action::ResumeQueue { queue } => format!("/api/queue/resume/{}", seg(queue)),
        }
    }

    pub fn body(&self) -> Body {
        let num = |v: f64| v.to_string();
        let worker_pair = |w: &Option<String>| {
            w.iter()
                .map(|w| ("workername", w.clone()))
                .collect::<Vec<_>>()
        };
        match self {
            Action::Revoke {
                terminate, signal, ..
            } => Body::Form(vec![
                ("terminate", terminate.to_string()),
                ("signal", signal.clone()),
            ]),
            Action::RevokeMany {
                ids,
                terminate,
                signal,
            } => Body::Json(serde_json::json!({
                "arguments": {"task_id": ids, "terminate": terminate, "signal": signal},
            })),
            Action::RateLimit { rate, worker, .. } => {
                let mut v = vec![("ratelimit", rate.clone())];
                v.extend(worker_pair(worker));
                Body::Form(v)
            }
            Action::TimeLimit {
                soft,
                hard,
                worker,
                apply,
                ..
            } => {
                let mut v = Vec::new();
                v.extend(soft.map(|s| ("soft", num(s))));
                v.extend(hard.map(|h| ("hard", num(h))));
                v.extend(worker_pair(worker));
                if *apply {
                    v.push(("apply", "true".into()));
                }
                Body::Form(v)
            }
            Action::PoolGrow { n, .. } | Action::PoolShrink { n, .. } => {
                Body::Form(vec![("n", n.to_string())])
            }
            Action::Autoscale { max, min, .. } => {
                Body::Form(vec![("max", max.to_string()), ("min", min.to_string())])
            }
            Action::AddConsumer { queue, .. } | Action::CancelConsumer { queue, .. } => {
                Body::Form(vec![("queue", queue.clone())])
            }
            Action::PoolRestart { .. }
            | Action::Shutdown { .. }
            | Action::PauseQueue { .. }
            | Action::ResumeQueue { .. } => Body::Form(Vec::new()),
        }
    }

    /// What the confirmation asks: "Terminate (SIGKILL)", "Shut down".
    pub fn title(&self) -> String {
        let revoke = |terminate: bool, signal: &str| {
            if terminate {
                format!("Terminate with {signal}")
            } else {
                "Revoke".to_string()
            }
        };
        match self {
            Action::Revoke {
                terminate, signal, ..
            } => revoke(*terminate, signal),
            Action::RevokeMany {
                terminate, signal, ..
            } => revoke(*terminate, signal),
            Action::RateLimit { rate, .. } if rate.is_empty() => "Remove the rate limit".into(),
            Action::RateLimit { rate, .. } => format!("Set the rate limit to {rate}"),
            Action::TimeLimit {
                soft, hard, apply, ..
            } => {
                let s = |v: &Option<f64>| v.map_or("none".to_string(), |v| format!("{v} s"));
                let then = if *apply { " and restart the pool" } else { "" };
                format!("Set time limits: soft {}, hard {}{then}", s(soft), s(hard))
            }
            Action::PoolGrow { n, .. } => format!("Grow the pool by {n}"),
            Action::PoolShrink { n, .. } => format!("Shrink the pool by {n}"),
            Action::Autoscale { max, min, .. } => format!("Autoscale between {min} and {max}"),
            Action::AddConsumer { queue, .. } => format!("Start consuming from {queue}"),
            Action::CancelConsumer { queue, .. } => format!("Stop consuming from {queue}"),
            Action::PoolRestart { .. } => "Restart the pool".into(),
            Action::Shutdown { .. } => "Shut down".into(),
            Action::PauseQueue { .. } => {
                "Pause: every worker stops consuming it, also after a restart".into()
            }
            Action::ResumeQueue { .. } => "Resume: the paused workers consume it again".into(),
        }
    }

    /// What it acts on: "task 1f2e…", "worker w1@h", "tasks.add on every worker".
    pub fn target(&self) -> String {
        let on = |task: &str, w: &Option<String>| match w {
            Some(w) => format!("{task} on worker {w}"),
            None => format!("{task} on every worker"),
        };
        match self {
            Action::Revoke { uuid, .. } => format!("task {uuid}"),
            Action::RevokeMany { ids, .. } => match ids.len() {
                1 => format!("task {}", ids[0]),
                n => format!("{n} unfinished tasks"),
            },
            Action::RateLimit { task, worker, .. } | Action::TimeLimit { task, worker, .. } => {
                on(task, worker)
            }
            Action::PoolGrow { worker, .. }
            | Action::PoolShrink { worker, .. }
            | Action::Autoscale { worker, .. }
            | Action::AddConsumer { worker, .. }
            | Action::CancelConsumer { worker, .. }
            | Action::PoolRestart { worker }
            | Action::Shutdown { worker } => format!("worker {worker}"),
            Action::PauseQueue { queue } | Action::ResumeQueue { queue } => {
                format!("queue {queue} on every worker")
            }
        }
    }

    /// Whether it loses work or a worker (the confirm button says so).
    pub fn destructive(&self) -> bool {
        matches!(
            self,
            Action::Revoke { .. } | Action::RevokeMany { .. } | Action::Shutdown { .. }
        )
    }

    /// Why there may be no reply at all.
    pub fn silent(&self) -> bool {
        matches!(self, Action::Shutdown { .. })
    }
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Checks a rate limit as Celery reads it: a number, optionally `/s`,
/// `/m` or `/h`; empty removes the limit.
pub fn parse_rate(input: &str) -> Result<String, String> {
    let s = input.trim();
    if s.is_empty() {
        return Ok(String::new());
    }
    let (n, unit) = match s.split_once('/') {
        Some((n, u)) => (n.trim(), Some(u.trim())),
        None => (s, None),
    };
    let ok_number = n.parse::<f64>().is_ok_and(|v| v.is_finite() && v >= 0.0);
    let ok_unit = unit.is_none_or(|u| matches!(u, "s" | "m" | "h"));
    if ok_number && ok_unit {
        Ok(s.replace(' ', ""))
    } else {
        Err(format!(
            "rate limit '{s}' is not a number per s, m or h (e.g. 10/m)"
        ))
    }
}

/// A time limit in seconds; empty means none.
pub fn parse_seconds(what: &str, input: &str) -> Result<Option<f64>, String> {
    let s = input.trim();
    if s.is_empty() {
        return Ok(None);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(Some(v)),
        _ => Err(format!("{what} '{s}' is not a positive number of seconds")),
    }
}

/// The body of a re-run with edited arguments: `args` must be a JSON array
/// and `kwargs` a JSON object, as `POST /api/task/retry/{id}` takes them.
pub fn rerun_body(args: &str, kwargs: &str) -> Result<Value, String> {
    let parse = |what: &str, text: &str| {
        serde_json::from_str::<Value>(text.trim()).map_err(|e| format!("{what} is not JSON: {e}"))
    };
    let args = parse("args", args)?;
    if !args.is_array() {
        return Err("args must be a JSON array, e.g. [1, \"a\"]".into());
    }
    let kwargs = parse("kwargs", kwargs)?;
    if !kwargs.is_object() {
        return Err("kwargs must be a JSON object, e.g. {\"n\": 1}".into());
    }
    Ok(serde_json::json!({ "args": args, "kwargs": kwargs }))
}

/// JSON text for the form's fields, indented when it is long.
pub fn edit_text(v: &Value) -> String {
    let flat = v.to_string();
    if flat.len() <= 60 {
        flat
    } else {
        serde_json::to_string_pretty(v).unwrap_or(flat)
    }
}

/// A positive whole number (pool sizes).
pub fn parse_count(what: &str, input: &str) -> Result<u32, String> {
    let s = input.trim();
    match s.parse::<u32>() {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(format!("{what} '{s}' is not a positive whole number")),
    }
}

/// A time-limit action from the two fields; at least one is needed, and
/// the soft limit must come before the hard one. `apply` restarts the pool
/// after setting them.
pub fn time_limit(
    task: &str,
    soft: &str,
    hard: &str,
    worker: Option<String>,
    apply: bool,
) -> Result<Action, String> {
    let soft = parse_seconds("soft limit", soft)?;
    let hard = parse_seconds("hard limit", hard)?;
    if soft.is_none() && hard.is_none() {
        return Err("give a soft or a hard limit (seconds)".into());
    }
    if let (Some(s), Some(h)) = (soft, hard) {
        if s > h {
            return Err(format!(
                "the soft limit ({s} s) is after the hard one ({h} s)"
            ));
        }
    }
    Ok(Action::TimeLimit {
        task: task.to_owned(),
        soft,
        hard,
        worker,
        apply,
    })
}

/// One worker's answer to an action.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Ok(String),
    Error(String),
    /// Addressed, but silent within the inspect timeout.
    NoReply,
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Reads one reply value: `{"ok": ...}`, `{"error": ...}`, a list of those
/// (bulk revoke), or anything else (shown as JSON, counted as ok).
pub fn classify(v: &Value) -> Reply {
    if let Some(e) = v.get("error") {
        return Reply::Error(text(e));
    }
    if let Some(ok) = v.get("ok") {
        return Reply::Ok(text(ok));
    }
    if let Value::Array(items) = v {
        let all: Vec<Reply> = items.iter().map(classify).collect();
        if let Some(e) = all.iter().find(|r| matches!(r, Reply::Error(_))) {
            return e.clone();
        }
        let oks: Vec<String> = all
            .into_iter()
            .filter_map(|r| match r {
                Reply::Ok(t) => Some(t),
                _ => None,
            })
            .collect();
        return Reply::Ok(oks.join("; "));
    }
    Reply::Ok(text(v))
}

/// Every worker's answer, by name; silent workers last. A follow-up pool
/// restart (time limits applied) adds each worker's answer to it, marked,
/// since that is what decides whether the new limits are in force.
pub fn worker_replies(r: &ControlResponse) -> Vec<(String, Reply)> {
    let mut v: Vec<(String, Reply)> = r
        .replies
        .iter()
        .map(|(w, v)| (w.clone(), classify(v)))
        .collect();
    for w in &r.no_reply {
        if !r.replies.contains_key(w) {
            v.push((w.clone(), Reply::NoReply));
        }
    }
    if let Some(restart) = &r.pool_restart {
        let restarts = worker_replies(restart);
        v.extend(
            restarts
                .into_iter()
                .map(|(w, reply)| (format!("{w} · pool restart"), reply)),
        );
    }
    v
}

/// The inspect tabs of the worker page: (field of `/api/workers`, label).
pub const INSPECT_TABS: &[(&str, &str)] = &[
    ("stats", "Pool / stats"),
    ("active_queues", "Queues"),
    ("registered", "Registered"),
    ("active", "Active"),
    ("reserved", "Reserved"),
    ("scheduled", "Scheduled"),
    ("revoked", "Revoked"),
    ("conf", "Conf"),
];

/// What one inspect tab shows.
#[derive(Debug, Clone, PartialEq)]
pub enum TabContent {
    /// The worker has not answered this inspect (yet).
    Missing,
    /// An empty list.
    Empty,
    Table {
        head: Vec<&'static str>,
        rows: Vec<Vec<String>>,
    },
}

fn field(v: &Value, path: &[&str]) -> String {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(next) => cur = next,
            None => return "–".into(),
        }
    }
    match cur {
        Value::Null => "–".into(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        other => text(other),
    }
}

fn table(head: Vec<&'static str>, rows: Vec<Vec<String>>) -> TabContent {
    if rows.is_empty() {
        TabContent::Empty
    } else {
        TabContent::Table { head, rows }
    }
}

/// Lays out tab `key` of a worker's `/api/workers` entry.
pub fn tab_content(key: &str, worker: &Value) -> TabContent {
    let Some(v) = worker.get(key).filter(|v| !v.is_null()) else {
        return TabContent::Missing;
    };
    let list = || v.as_array().cloned().unwrap_or_default();
    match key {
        "stats" => {
            let rows = [
                ("pool", &["pool", "implementation"][..]),
                ("max concurrency", &["pool", "max-concurrency"]),
                ("processes", &["pool", "processes"]),
                ("autoscaler", &["autoscaler"]),
                ("prefetch count", &["prefetch_count"]),
                ("pid", &["pid"]),
                ("uptime (s)", &["uptime"]),
                ("tasks done", &["total"]),
                ("broker", &["broker", "hostname"]),
                ("transport", &["broker", "transport"]),
                ("max RSS (kB)", &["rusage", "maxrss"]),
            ]
            .iter()
            .map(|(label, path)| vec![label.to_string(), field(v, path)])
            .collect();
            table(vec!["", ""], rows)
        }
        "active_queues" => table(
            vec!["queue", "exchange", "routing key"],
            list()
                .iter()
                .map(|q| {
                    vec![
                        field(q, &["name"]),
                        field(q, &["exchange", "name"]),
                        field(q, &["routing_key"]),
                    ]
                })
                .collect(),
        ),
        "registered" | "revoked" => table(
            vec![if key == "revoked" { "task id" } else { "task" }],
            list().iter().map(|t| vec![text(t)]).collect(),
        ),
        "active" | "reserved" => table(
            vec!["id", "task", "args", "kwargs", "pid"],
            list()
                .iter()
                .map(|t| {
                    vec![
                        field(t, &["id"]),
                        field(t, &["name"]),
                        field(t, &["args"]),
                        field(t, &["kwargs"]),
                        field(t, &["worker_pid"]),
                    ]
                })
                .collect(),
        ),
        "scheduled" => table(
            vec!["id", "task", "eta", "args"],
            list()
                .iter()
                .map(|s| {
                    vec![
                        field(s, &["request", "id"]),
                        field(s, &["request", "name"]),
                        field(s, &["eta"]),
                        field(s, &["request", "args"]),
                    ]
                })
                .collect(),
        ),
        _ => match v.as_object() {
            Some(map) => table(
                vec!["setting", "value"],
                map.iter().map(|(k, v)| vec![k.clone(), text(v)]).collect(),
            ),
            None => table(vec!["value"], vec![vec![text(v)]]),
        },
    }
}

/// The audit page's cells for one entry: target, arguments, replies.
pub fn audit_cells(e: &api::control::AuditEntry) -> (String, String, Vec<(String, Reply)>) {
    let target = match &e.target {
        Value::String(s) if s == "all" => "all workers".to_string(),
        Value::Array(list) => list.iter().map(text).collect::<Vec<_>>().join(", "),
        Value::Object(o) => o
            .get("pattern")
            .map(text)
            .unwrap_or_else(|| e.target.to_string()),
        other => text(other),
    };
    let args = match &e.arguments {
        Value::Object(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| format!("{k}={}", text(v)))
            .collect::<Vec<_>>()
            .join(" "),
        other => text(other),
    };
    let response = ControlResponse {
        replies: e
            .replies
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        no_reply: e.no_reply.clone(),
        ..ControlResponse::default()
    };
    (target, args, worker_replies(&response))
}

/// The CSRF cookie a browser session carries; its value goes in the
/// `X-CSRF-Token` header of every control request.
pub const CSRF_COOKIE: &str = "celeriac_csrf";

/// The session's CSRF token from `document.cookie`, if signed in.
pub fn csrf_token(cookies: &str) -> Option<String> {
    cookies.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == CSRF_COOKIE && !v.is_empty()).then(|| v.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_csrf_token_is_read_from_the_cookies() {
        assert_eq!(
            csrf_token("theme=dark; celeriac_csrf=abc-_123; x=1").as_deref(),
            Some("abc-_123")
        );
        assert_eq!(csrf_token("celeriac_csrf_old=1; theme=dark"), None);
        assert_eq!(csrf_token("celeriac_csrf="), None);
        assert_eq!(csrf_token(""), None);
    }

    #[test]
    fn terminate_posts_flowers_form_to_the_tasks_path() {
        let a = Action::Revoke {
            uuid: "ab/c d".into(),
            terminate: true,
            signal: "SIGKILL".into(),
        };
        assert_eq!(a.path(), "/api/task/revoke/ab%2Fc%20d");
        assert_eq!(
            a.body(),
            Body::Form(vec![
                ("terminate", "true".into()),
                ("signal", "SIGKILL".into())
            ])
        );
        assert_eq!(a.title(), "Terminate with SIGKILL");
        assert!(a.target().contains("ab/c d"));
        assert!(a.destructive());
    }

    #[test]
    fn revoking_many_posts_the_revoke_command() {
        let a = Action::RevokeMany {
            ids: vec!["a".into(), "b".into()],
            terminate: false,
            signal: "SIGTERM".into(),
        };
        assert_eq!(a.command(), Command::Revoke);
        assert_eq!(a.path(), "/api/control/revoke");
        let shutdown = Action::Shutdown { worker: "w".into() };
        assert!(!shutdown.command().is_inspect(), "every action is audited");
        assert_eq!(shutdown.command().as_str(), "shutdown");
    }

    #[test]
    fn worker_actions_name_the_worker_and_send_their_parameters() {
        let a = Action::Autoscale {
            worker: "w1@h".into(),
            max: 8,
            min: 2,
        };
        assert_eq!(a.path(), "/api/worker/pool/autoscale/w1%40h");
        assert_eq!(
            a.body(),
            Body::Form(vec![("max", "8".into()), ("min", "2".into())])
        );
        assert_eq!(a.target(), "worker w1@h");
        let c = Action::AddConsumer {
            worker: "w1@h".into(),
            queue: "emails".into(),
        };
        assert_eq!(c.path(), "/api/worker/queue/add-consumer/w1%40h");
        assert_eq!(c.title(), "Start consuming from emails");
        assert!(Action::Shutdown { worker: "w".into() }.silent());
    }

    #[test]
    fn a_rerun_body_takes_an_array_and_an_object() {
        assert_eq!(
            rerun_body(" [1, \"a\"] ", "{\"n\": 2}"),
            Ok(json!({"args": [1, "a"], "kwargs": {"n": 2}}))
        );
        assert!(rerun_body("{}", "{}")
            .unwrap_err()
            .starts_with("args must be"));
        assert!(rerun_body("[]", "[]")
            .unwrap_err()
            .starts_with("kwargs must be"));
        assert!(rerun_body("[1,", "{}")
            .unwrap_err()
            .starts_with("args is not JSON"));
        assert_eq!(edit_text(&json!([1, 2])), "[1,2]");
        assert!(edit_text(&json!({"k": "x".repeat(80)})).contains('\n'));
    }

    #[test]
    fn pausing_a_queue_posts_to_the_queue_path() {
        let p = Action::PauseQueue {
            queue: "mail out".into(),
        };
        assert_eq!(p.path(), "/api/queue/pause/mail%20out");
        assert_eq!(p.body(), Body::Form(Vec::new()));
        assert_eq!(p.command(), Command::CancelConsumer);
        assert_eq!(p.target(), "queue mail out on every worker");
        assert!(
            !p.destructive(),
            "nothing is lost: messages wait in the queue"
        );
        let r = Action::ResumeQueue {
            queue: "mail out".into(),
        };
        assert_eq!(r.path(), "/api/queue/resume/mail%20out");
        assert_eq!(r.command(), Command::AddConsumer);
    }

    #[test]
    fn limits_for_one_worker_or_all() {
        let all = Action::RateLimit {
            task: "tasks.add".into(),
            rate: "10/m".into(),
            worker: None,
        };
        assert_eq!(all.body(), Body::Form(vec![("ratelimit", "10/m".into())]));
        assert_eq!(all.target(), "tasks.add on every worker");
        let one = time_limit("tasks.add", "5", "", Some("w1@h".into()), false).unwrap();
        assert_eq!(
            one.body(),
            Body::Form(vec![("soft", "5".into()), ("workername", "w1@h".into())])
        );
        assert_eq!(one.target(), "tasks.add on worker w1@h");
        let applied = time_limit("tasks.add", "", "2", None, true).unwrap();
        assert_eq!(
            applied.body(),
            Body::Form(vec![("hard", "2".into()), ("apply", "true".into())])
        );
        assert_eq!(
            applied.title(),
            "Set time limits: soft none, hard 2 s and restart the pool"
        );
    }

    #[test]
    fn bad_input_is_refused_naming_it() {
        assert_eq!(parse_rate(" 10/m ").unwrap(), "10/m");
        assert_eq!(parse_rate("2.5").unwrap(), "2.5");
        assert_eq!(parse_rate("").unwrap(), "");
        assert!(parse_rate("10/d").unwrap_err().contains("'10/d'"));
        assert!(parse_rate("fast").is_err());
        assert!(parse_seconds("soft limit", "-1")
            .unwrap_err()
            .starts_with("soft limit '-1'"));
        assert!(parse_count("n", "0").is_err());
        assert_eq!(parse_count("n", "3"), Ok(3));
        assert!(time_limit("t", "", "", None, false).is_err());
        assert!(time_limit("t", "10", "5", None, false)
            .unwrap_err()
            .contains("after the hard"));
    }

    #[test]
    fn each_workers_reply_is_ok_error_or_silence() {
        let r: ControlResponse = serde_json::from_value(json!({
            "message": "Revoked 'x'",
            "replies": {
                "a@h": {"ok": "tasks x flagged as revoked"},
                "b@h": {"error": "unknown task"},
                "c@h": [{"ok": "one"}, {"ok": "two"}],
            },
            "no_reply": ["d@h"],
        }))
        .unwrap();
        assert_eq!(
            worker_replies(&r),
            vec![
                ("a@h".into(), Reply::Ok("tasks x flagged as revoked".into())),
                ("b@h".into(), Reply::Error("unknown task".into())),
                ("c@h".into(), Reply::Ok("one; two".into())),
                ("d@h".into(), Reply::NoReply),
            ]
        );
    }

    #[test]
    fn applied_time_limits_show_each_workers_pool_restart() {
        let r: ControlResponse = serde_json::from_value(json!({
            "message": "time limits set successfully and applied",
            "replies": {"a@h": {"ok": "time limits set successfully"}, "b@h": {"ok": "time limits set successfully"}},
            "no_reply": [],
            "pool_restart": {
                "message": "reload started",
                "replies": {"a@h": {"ok": "reload started"}, "b@h": {"error": "Pool restarts not enabled"}},
                "no_reply": [],
            },
        }))
        .unwrap();
        let replies = worker_replies(&r);
        assert_eq!(replies.len(), 4);
        assert_eq!(
            replies[2..],
            [
                (
                    "a@h · pool restart".into(),
                    Reply::Ok("reload started".into())
                ),
                (
                    "b@h · pool restart".into(),
                    Reply::Error("Pool restarts not enabled".into())
                ),
            ]
        );
    }

    #[test]
    fn inspect_tabs_lay_out_the_replies() {
        let w = json!({
            "hostname": "w1@h",
            "stats": {"pool": {"implementation": "celery.concurrency.prefork:TaskPool",
                               "max-concurrency": 2, "processes": [11, 12]}},
            "active_queues": [{"name": "celery", "exchange": {"name": "celery"}, "routing_key": "celery"}],
            "active": [],
            "scheduled": [{"eta": "2026-01-01T00:00:00", "request": {"id": "t1", "name": "tasks.add", "args": [1, 2]}}],
            "conf": null,
        });
        let TabContent::Table { rows, .. } = tab_content("stats", &w) else {
            panic!("stats is a table")
        };
        assert!(rows.contains(&vec!["processes".to_string(), "11, 12".to_string()]));
        assert_eq!(
            tab_content("active_queues", &w),
            TabContent::Table {
                head: vec!["queue", "exchange", "routing key"],
                rows: vec![vec!["celery".into(), "celery".into(), "celery".into()]],
            }
        );
        assert_eq!(tab_content("active", &w), TabContent::Empty);
        assert_eq!(tab_content("conf", &w), TabContent::Missing);
        assert_eq!(tab_content("reserved", &w), TabContent::Missing);
        let TabContent::Table { rows, .. } = tab_content("scheduled", &w) else {
            panic!("scheduled is a table")
        };
        assert_eq!(rows[0][..3], ["t1", "tasks.add", "2026-01-01T00:00:00"]);
    }

    #[test]
    fn audit_cells_read_target_arguments_and_replies() {
        let e: api::control::AuditEntry = serde_json::from_value(json!({
            "id": 1, "time": 1.0, "user": "ann", "role": "operator", "command": "revoke",
            "arguments": {"task_id": "x", "terminate": true, "signal": "SIGKILL"},
            "target": "all", "status": 200,
            "replies": {"w1@h": {"ok": "tasks x flagged as revoked"}}, "no_reply": ["w2@h"],
        }))
        .unwrap();
        let (target, args, replies) = audit_cells(&e);
        assert_eq!(target, "all workers");
        assert_eq!(args, "signal=SIGKILL task_id=x terminate=true");
        assert_eq!(replies.len(), 2);
        assert_eq!(replies[1], ("w2@h".into(), Reply::NoReply));
    }
}
