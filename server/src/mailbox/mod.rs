//! Kombu's pidbox mailbox as celeriac uses it: a remote-control request,
//! its outcome, and the [`Mailbox`] that carries requests to workers
//! (docs/celery-protocol.md §4). The body is the same whatever the broker;
//! each transport implements `Mailbox`; [`Fanout`] carries a request to
//! every broker of a cluster spread over several.

mod fanout;

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

pub use fanout::Fanout;

/// Where workers send their replies: kombu's reply exchange, named in every
/// request that wants answers.
pub const REPLY_EXCHANGE: &str = "reply.celery.pidbox";

/// Where requests go: a transport's control client, or a fake in tests.
pub trait Mailbox: Sync {
    fn call(&self, request: &Request)
        -> impl Future<Output = Result<Outcome, ControlError>> + Send;
}

/// Which workers a request addresses (docs/celery-protocol.md §4.2).
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Every worker (`destination: null`).
    All,
    /// Exact nodenames.
    Workers(Vec<String>),
    /// `matcher` is `glob` (fnmatch) or `pcre` (Python `re.match`).
    Pattern { pattern: String, matcher: Matcher },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matcher {
    Glob,
    Pcre,
}

impl Matcher {
    pub fn as_str(self) -> &'static str {
        match self {
            Matcher::Glob => "glob",
            Matcher::Pcre => "pcre",
        }
    }
}

/// One request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Keyword arguments of the command (a JSON object).
    pub arguments: Map<String, Value>,
    pub target: Target,
    /// Whether to ask for and collect replies.
    pub reply: bool,
    /// Idle timeout between replies; the client default when None.
    pub timeout: Option<Duration>,
    /// Workers expected to answer when the target is not a list (the live
    /// workers celeriac knows): collection ends once all of them answered,
    /// and those that did not are reported as "no reply".
    pub expect: Option<Vec<String>>,
}

impl Request {
    pub fn new(method: &str, arguments: Value, target: Target) -> Request {
        Request {
            method: method.to_string(),
            arguments: match arguments {
                Value::Object(m) => m,
                _ => Map::new(),
            },
            target,
            reply: true,
            timeout: None,
            expect: None,
        }
    }

    pub fn without_reply(mut self) -> Request {
        self.reply = false;
        self
    }

    pub fn expecting(mut self, workers: Vec<String>) -> Request {
        self.expect = Some(workers);
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = Some(timeout);
        self
    }

    /// The message body, as `kombu.pidbox.Mailbox._publish` builds it.
    pub fn body(&self, reply: Option<(&str, &str)>) -> Value {
        let (destination, pattern, matcher) = match &self.target {
            Target::All => (Value::Null, Value::Null, Value::Null),
            Target::Workers(list) => (json!(list), Value::Null, Value::Null),
            Target::Pattern { pattern, matcher } => {
                (Value::Null, json!(pattern), json!(matcher.as_str()))
            }
        };
        let mut body = json!({
            "method": self.method,
            "arguments": self.arguments,
            "destination": destination,
            "pattern": pattern,
            "matcher": matcher,
        });
        if let Some((ticket, routing_key)) = reply {
            body["ticket"] = json!(ticket);
            body["reply_to"] = json!({"exchange": REPLY_EXCHANGE, "routing_key": routing_key});
        }
        body
    }

    /// The workers whose replies end collection early, if known.
    pub fn expected(&self) -> Option<HashSet<String>> {
        match &self.target {
            Target::Workers(list) => Some(list.iter().cloned().collect()),
            _ => self.expect.as_ref().map(|v| v.iter().cloned().collect()),
        }
    }
}

/// Each worker's answer. A worker that answered twice keeps its first reply
/// (kombu's flattening keeps the last and warns; either is a worker bug).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Outcome {
    /// `{nodename: reply}` in nodename order.
    pub replies: BTreeMap<String, Value>,
    /// Addressed (or expected) workers that did not answer in time.
    pub no_reply: Vec<String>,
}

impl Outcome {
    /// The text of an `{"error": ...}` reply.
    pub fn error_of(&self, worker: &str) -> Option<String> {
        self.replies
            .get(worker)
            .and_then(|r| r.get("error"))
            .map(text_of)
    }

    /// The text of an `{"ok": ...}` reply.
    pub fn ok_of(&self, worker: &str) -> Option<String> {
        self.replies
            .get(worker)
            .and_then(|r| r.get("ok"))
            .map(text_of)
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A collection never lasts longer than this many idle timeouts, however
/// slowly replies trickle in (kombu has no such bound without a limit).
const MAX_IDLE_PERIODS: u32 = 10;

/// The replies to one request as they arrive, whatever carries them:
/// kombu's idle timeout (each reply restarts it), an early end once every
/// addressed or expected worker answered, and a bound on the whole wait.
pub struct Collection {
    expected: Option<HashSet<String>>,
    outcome: Outcome,
    idle: Duration,
    deadline: Instant,
}

impl Collection {
    pub fn new(request: &Request, idle: Duration) -> Collection {
        Collection {
            expected: request.expected(),
            outcome: Outcome::default(),
            idle,
            deadline: Instant::now() + idle * MAX_IDLE_PERIODS,
        }
    }

    /// How long to wait for the next reply; `None` once collection is over.
    pub fn next_wait(&self) -> Option<Duration> {
        if let Some(exp) = &self.expected {
            if exp.iter().all(|w| self.outcome.replies.contains_key(w)) {
                return None;
            }
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        (!left.is_zero()).then(|| self.idle.min(left))
    }

    pub fn add(&mut self, node: String, reply: Value) {
        self.outcome.replies.entry(node).or_insert(reply);
    }

    /// What was collected, with the expected workers that did not answer.
    pub fn finish(mut self) -> Outcome {
        if let Some(exp) = self.expected {
            let mut missing: Vec<String> = exp
                .into_iter()
                .filter(|w| !self.outcome.replies.contains_key(w))
                .collect();
            missing.sort();
            self.outcome.no_reply = missing;
        }
        self.outcome
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("the broker is unavailable for remote control: {0}")]
    Unavailable(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_collection_ends_once_the_addressed_workers_answered() {
        let r = Request::new(
            "ping",
            json!({}),
            Target::Workers(vec!["b@h".into(), "a@h".into(), "c@h".into()]),
        );
        let mut c = Collection::new(&r, Duration::from_secs(1));
        assert!(c.next_wait().is_some_and(|w| w <= Duration::from_secs(1)));
        c.add("b@h".into(), json!({"ok": "pong"}));
        c.add("b@h".into(), json!({"ok": "again"}));
        c.add("a@h".into(), json!({"ok": "pong"}));
        assert!(c.next_wait().is_some(), "c@h has not answered");
        let outcome = c.finish();
        assert_eq!(
            outcome.ok_of("b@h").as_deref(),
            Some("pong"),
            "the first reply stays"
        );
        assert_eq!(outcome.no_reply, ["c@h"]);

        let mut c = Collection::new(&r, Duration::from_secs(1));
        for w in ["a@h", "b@h", "c@h"] {
            c.add(w.into(), json!({"ok": "pong"}));
        }
        assert_eq!(c.next_wait(), None);
        assert!(c.finish().no_reply.is_empty());

        // Everyone, with nobody expected: only the idle timeout ends it.
        let c = Collection::new(
            &Request::new("ping", json!({}), Target::All),
            Duration::ZERO,
        );
        assert_eq!(c.next_wait(), None);
    }

    #[test]
    fn bodies_match_kombus() {
        let r = Request::new("ping", json!({}), Target::All);
        let b = r.body(Some(("t1", "oid")));
        assert_eq!(
            b,
            json!({"method": "ping", "arguments": {}, "destination": null, "pattern": null,
                   "matcher": null, "ticket": "t1",
                   "reply_to": {"exchange": "reply.celery.pidbox", "routing_key": "oid"}})
        );
        let r = Request::new(
            "revoke",
            json!({"task_id": "x", "terminate": true}),
            Target::Workers(vec!["w1@vm".into()]),
        )
        .without_reply();
        let b = r.body(None);
        assert_eq!(b["destination"], json!(["w1@vm"]));
        assert!(b.get("ticket").is_none() && b.get("reply_to").is_none());
        let r = Request::new(
            "ping",
            json!({}),
            Target::Pattern {
                pattern: "w1@.*".into(),
                matcher: Matcher::Pcre,
            },
        );
        let b = r.body(None);
        assert_eq!(
            (b["pattern"].clone(), b["matcher"].clone()),
            (json!("w1@.*"), json!("pcre"))
        );
    }

    #[test]
    fn expected_workers_come_from_the_list_or_the_hint() {
        let r = Request::new("ping", json!({}), Target::Workers(vec!["a".into()]));
        assert_eq!(r.expected(), Some(HashSet::from(["a".to_string()])));
        let r = Request::new("ping", json!({}), Target::All);
        assert_eq!(r.expected(), None);
        let r = r.expecting(vec!["b".into()]);
        assert_eq!(r.expected(), Some(HashSet::from(["b".to_string()])));
    }

    #[test]
    fn outcome_reads_ok_and_error_texts() {
        let mut o = Outcome::default();
        o.replies
            .insert("w".into(), json!({"error": "unknown task"}));
        o.replies.insert("v".into(), json!({"ok": "pong"}));
        assert_eq!(o.error_of("w").as_deref(), Some("unknown task"));
        assert_eq!(o.ok_of("v").as_deref(), Some("pong"));
        assert_eq!(o.ok_of("w"), None);
    }
}
