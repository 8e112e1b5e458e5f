//! How workers' replies become an answer, with Flower's texts: a worker's
//! `ok` reply is success, its `error` reply Flower's 403, silence 504, an
//! unreachable broker 503. And the audit entry an action leaves.

use api::control::{AuditEntry, Command, ControlResponse};
use serde_json::{json, Value};

use crate::auth::Principal;
use crate::mailbox::{ControlError, Outcome, Request, Target};

/// How an action went, as the HTTP status it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 200.
    Ok,
    /// 403: a worker answered with an error (Flower's status for it).
    Refused,
    /// 504: an addressed worker did not answer in time.
    Silent,
    /// 503: the broker could not be reached.
    Unavailable,
}

impl Verdict {
    pub fn status(self) -> u16 {
        match self {
            Verdict::Ok => 200,
            Verdict::Refused => 403,
            Verdict::Silent => 504,
            Verdict::Unavailable => 503,
        }
    }

    pub fn is_ok(self) -> bool {
        self == Verdict::Ok
    }
}

/// A message with `{name}` placeholders, filled in one pass: values are
/// never scanned again, so a worker or queue named `{error}` stays a name.
#[derive(Debug, Clone, PartialEq)]
pub struct Text {
    template: &'static str,
    values: Vec<(&'static str, String)>,
}

impl Text {
    pub fn new(template: &'static str) -> Text {
        Text {
            template,
            values: Vec::new(),
        }
    }

    pub fn with(mut self, name: &'static str, value: impl ToString) -> Text {
        self.values.push((name, value.to_string()));
        self
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(self.template.len());
        let mut rest = self.template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let value = after.find('}').and_then(|close| {
                let name = &after[..close];
                let v = self.values.iter().find(|(n, _)| *n == name)?;
                Some((&v.1, close))
            });
            match value {
                Some((v, close)) => {
                    out.push_str(v);
                    rest = &after[close + 1..];
                }
                None => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// How the replies to one command are judged. Failure texts get the
/// workers' error as `{error}`.
#[derive(Debug, Clone, PartialEq)]
pub enum Judge {
    /// The command went out; replies are not judged (none asked for, or
    /// judging them is the caller's job).
    Sent(String),
    /// One worker: its `ok` reply gives `ok` (its own text when `None`),
    /// its `error` reply (or any other) 403 `fail`, silence 504.
    One {
        worker: String,
        ok: Option<String>,
        fail: Text,
    },
    /// Every worker: 200 `ok` when every reply is `ok`, 403 `fail` with
    /// each other reply, 504 when nobody replied.
    All { ok: String, fail: Text },
}

impl Judge {
    /// The verdict on `outcome`, with the message (`Ok`) or error (`Err`).
    pub fn judge(&self, outcome: &Outcome) -> (Verdict, Result<String, String>) {
        match self {
            Judge::Sent(message) => (Verdict::Ok, Ok(message.clone())),
            Judge::One { worker, ok, fail } => {
                let fail = |e: String| fail.clone().with("error", e).render();
                if let Some(text) = outcome.ok_of(worker) {
                    (Verdict::Ok, Ok(ok.clone().unwrap_or(text)))
                } else if let Some(e) = outcome.error_of(worker) {
                    (Verdict::Refused, Err(fail(e)))
                } else if let Some(r) = outcome.replies.get(worker) {
                    (Verdict::Refused, Err(fail(r.to_string())))
                } else {
                    (Verdict::Silent, Err(format!("No reply from '{worker}'")))
                }
            }
            Judge::All { ok, fail } => {
                let errors: Vec<String> = outcome
                    .replies
                    .iter()
                    .filter(|(_, r)| r.get("ok").is_none())
                    .map(|(w, r)| format!("{w}: {}", r.get("error").unwrap_or(r)))
                    .collect();
                if !errors.is_empty() {
                    let e = errors.join("; ");
                    (
                        Verdict::Refused,
                        Err(fail.clone().with("error", e).render()),
                    )
                } else if outcome.replies.is_empty() {
                    (Verdict::Silent, Err("No worker replied".to_string()))
                } else {
                    (Verdict::Ok, Ok(ok.clone()))
                }
            }
        }
    }

    /// The answer to a call that went `result`.
    pub fn answer(&self, result: Result<Outcome, ControlError>) -> (Verdict, ControlResponse) {
        match result {
            Ok(outcome) => {
                let (verdict, text) = self.judge(&outcome);
                let (message, error) = match text {
                    Ok(m) => (Some(m), None),
                    Err(e) => (None, Some(e)),
                };
                let body = ControlResponse {
                    message,
                    error,
                    replies: outcome.replies,
                    no_reply: outcome.no_reply,
                    ..ControlResponse::default()
                };
                (verdict, body)
            }
            Err(e) => (
                Verdict::Unavailable,
                ControlResponse {
                    error: Some(e.to_string()),
                    ..ControlResponse::default()
                },
            ),
        }
    }
}

/// Whether `request` is an action the audit log records: every command
/// but the read-only ones.
pub fn audited(request: &Request) -> bool {
    !Command::parse(&request.method).is_some_and(Command::is_inspect)
}

/// The audit log's target: `"all"`, the nodenames, or `{pattern, matcher}`.
pub fn target_json(target: &Target) -> Value {
    match target {
        Target::All => json!("all"),
        Target::Workers(list) => json!(list),
        Target::Pattern { pattern, matcher } => {
            json!({"pattern": pattern, "matcher": matcher.as_str()})
        }
    }
}

/// What the audit log keeps of `request`, answered with `verdict` and
/// `body` at `now` (its id is assigned when it is recorded).
pub fn audit_entry(
    who: &Principal,
    request: &Request,
    verdict: Verdict,
    body: &ControlResponse,
    now: f64,
) -> AuditEntry {
    AuditEntry {
        target: target_json(&request.target),
        status: verdict.status(),
        replies: json!(body.replies),
        no_reply: body.no_reply.clone(),
        ..who.audit_entry(
            now,
            request.method.clone(),
            Value::Object(request.arguments.clone()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Matcher;

    fn outcome(replies: &[(&str, Value)], no_reply: &[&str]) -> Outcome {
        Outcome {
            replies: replies
                .iter()
                .map(|(w, r)| (w.to_string(), r.clone()))
                .collect(),
            no_reply: no_reply.iter().map(|w| w.to_string()).collect(),
        }
    }

    fn grow(worker: &str) -> Judge {
        Judge::One {
            worker: worker.into(),
            ok: Some(format!("Growing '{worker}' worker's pool by 1")),
            fail: Text::new("Failed to grow '{worker}' worker's pool: {error}")
                .with("worker", worker),
        }
    }

    #[test]
    fn one_workers_ok_error_or_silence() {
        let j = grow("w@h");
        let ok = outcome(&[("w@h", json!({"ok": "pool will grow"}))], &[]);
        assert_eq!(
            j.judge(&ok),
            (Verdict::Ok, Ok("Growing 'w@h' worker's pool by 1".into()))
        );
        let refused = outcome(&[("w@h", json!({"error": "no pool"}))], &[]);
        assert_eq!(
            j.judge(&refused),
            (
                Verdict::Refused,
                Err("Failed to grow 'w@h' worker's pool: no pool".into())
            )
        );
        // Neither ok nor error: shown as JSON, still a refusal.
        let odd = outcome(&[("w@h", json!([1]))], &[]);
        assert_eq!(
            j.judge(&odd).1,
            Err("Failed to grow 'w@h' worker's pool: [1]".into())
        );
        let silent = outcome(&[("other@h", json!({"ok": "x"}))], &["w@h"]);
        assert_eq!(
            j.judge(&silent),
            (Verdict::Silent, Err("No reply from 'w@h'".into()))
        );
        // Without an ok text of its own, the worker's is the message.
        let own = Judge::One {
            worker: "w@h".into(),
            ok: None,
            fail: Text::new("{error}"),
        };
        let added = outcome(&[("w@h", json!({"ok": "add consumer extra"}))], &[]);
        assert_eq!(own.judge(&added).1, Ok("add consumer extra".into()));
    }

    #[test]
    fn every_worker_must_say_ok() {
        let j = Judge::All {
            ok: "new rate limit set successfully".into(),
            fail: Text::new("Failed to set rate limit: '{error}'"),
        };
        let ok = outcome(&[("a", json!({"ok": "x"})), ("b", json!({"ok": "y"}))], &[]);
        assert_eq!(
            j.judge(&ok),
            (Verdict::Ok, Ok("new rate limit set successfully".into()))
        );
        let mixed = outcome(
            &[
                ("a", json!({"ok": "x"})),
                ("b", json!({"error": "unknown task"})),
                ("c", json!("odd")),
            ],
            &[],
        );
        assert_eq!(
            j.judge(&mixed),
            (
                Verdict::Refused,
                Err(r#"Failed to set rate limit: 'b: "unknown task"; c: "odd"'"#.into())
            )
        );
        assert_eq!(
            j.judge(&outcome(&[], &["a"])),
            (Verdict::Silent, Err("No worker replied".into()))
        );
    }

    #[test]
    fn answers_carry_the_replies_or_the_broker_error() {
        let j = Judge::Sent("sent".into());
        let (v, body) = j.answer(Ok(outcome(&[("a", json!({"ok": "pong"}))], &["b"])));
        assert_eq!(v, Verdict::Ok);
        assert_eq!(body.message.as_deref(), Some("sent"));
        assert_eq!(body.replies["a"], json!({"ok": "pong"}));
        assert_eq!(body.no_reply, ["b"]);
        let (v, body) = j.answer(Err(ControlError::Unavailable("connecting: refused".into())));
        assert_eq!((v, v.status()), (Verdict::Unavailable, 503));
        assert_eq!(
            body.error.as_deref(),
            Some("the broker is unavailable for remote control: connecting: refused")
        );
        assert!(body.message.is_none() && body.replies.is_empty());
    }

    #[test]
    fn texts_fill_each_placeholder_once() {
        let t = Text::new("Failed to add '{queue}' consumer to '{worker}' worker: {error}")
            .with("queue", "{error}")
            .with("worker", "w@h")
            .with("error", "boom");
        assert_eq!(
            t.render(),
            "Failed to add '{error}' consumer to 'w@h' worker: boom"
        );
        assert_eq!(Text::new("a {b} c {").render(), "a {b} c {");
    }

    #[test]
    fn audit_entries_say_who_what_where_and_how_it_went() {
        let who = Principal::new("ann", crate::auth::Role::Operator);
        let request = Request::new(
            "ping",
            json!({}),
            Target::Pattern {
                pattern: "w*".into(),
                matcher: Matcher::Glob,
            },
        );
        assert!(!audited(&request), "inspect commands are not actions");
        let request = Request::new(
            "pool_grow",
            json!({"n": 2}),
            Target::Workers(vec!["w".into()]),
        );
        assert!(audited(&request));
        let body = ControlResponse {
            replies: [("w".to_string(), json!({"ok": "pool will grow"}))].into(),
            no_reply: vec![],
            ..ControlResponse::default()
        };
        let e = audit_entry(&who, &request, Verdict::Ok, &body, 12.5);
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"id": 0, "time": 12.5, "user": "ann", "role": "operator",
                   "command": "pool_grow", "arguments": {"n": 2}, "target": ["w"],
                   "status": 200, "replies": {"w": {"ok": "pool will grow"}}, "no_reply": []})
        );
        assert_eq!(
            target_json(&Target::Pattern {
                pattern: "w.*".into(),
                matcher: Matcher::Pcre
            }),
            json!({"pattern": "w.*", "matcher": "pcre"})
        );
    }
}
