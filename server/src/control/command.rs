//! Control requests as typed commands: which workers they address (one
//! known worker, every live worker, a list or a pattern), their parameters
//! checked with Flower's texts, and how their replies are judged. Nothing
//! here sends anything; see [`super::action`].

use std::collections::BTreeSet;
use std::time::Duration;

pub use api::control::Command;
use serde_json::{json, Map, Value};

use super::form::{self, Pairs, Rejection};
use super::judge::{Judge, Text};
use super::InspectCache;
use crate::mailbox::{Matcher, Request, Target};
use crate::state::State;

/// The workers celeriac knows when a request arrives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Roster {
    /// Known from events or inspect replies, alive or not (Flower checks
    /// its inspect cache).
    pub known: BTreeSet<String>,
    /// Alive by heartbeat: a broadcast expects their replies, and stops
    /// waiting once they all answered.
    pub alive: Vec<String>,
}

impl Roster {
    /// The workers `state` knows at `now`, plus those only `inspect` has
    /// heard from.
    pub fn of(state: &State, inspect: &InspectCache, now: f64) -> Roster {
        let mut roster = Roster::default();
        for w in state.workers(now) {
            if w.status {
                roster.alive.push(w.hostname.clone());
            }
            roster.known.insert(w.hostname);
        }
        roster.known.extend(inspect.names());
        roster
    }

    /// `worker`, when it is known.
    pub fn known(&self, worker: &str) -> Result<String, Rejection> {
        if self.known.contains(worker) {
            Ok(worker.to_string())
        } else {
            Err(Rejection::UnknownWorker(worker.to_string()))
        }
    }

    /// A request to every worker, expecting the live ones.
    pub fn broadcast(&self, command: Command, arguments: Value) -> Request {
        Request::new(command.as_str(), arguments, Target::All).expecting(self.alive.clone())
    }
}

/// One known worker, or every worker.
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    One(String),
    All,
}

impl Scope {
    /// `workername` when given (it must be known), else every worker.
    pub fn of(params: &Pairs, roster: &Roster) -> Result<Scope, Rejection> {
        match form::last(params, "workername").filter(|w| !w.is_empty()) {
            Some(w) => roster.known(w).map(Scope::One),
            None => Ok(Scope::All),
        }
    }

    pub fn request(&self, command: Command, arguments: Value, roster: &Roster) -> Request {
        match self {
            Scope::One(w) => Request::new(
                command.as_str(),
                arguments,
                Target::Workers(vec![w.clone()]),
            ),
            Scope::All => roster.broadcast(command, arguments),
        }
    }

    /// One worker's reply with its own text, or every worker's with `all_ok`.
    pub fn judge(&self, all_ok: &str, fail: Text) -> Judge {
        match self {
            Scope::One(w) => Judge::One {
                worker: w.clone(),
                ok: None,
                fail,
            },
            Scope::All => Judge::All {
                ok: all_ok.to_string(),
                fail,
            },
        }
    }
}

/// A request and how its replies are judged.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub request: Request,
    pub judge: Judge,
}

/// `POST /api/task/revoke/{id}`: `terminate` (bool), `signal` (SIGTERM),
/// to every worker. Flower sends it without asking for replies; we ask, so
/// the answer shows each worker's, but do not judge them.
pub fn revoke(id: &str, params: &Pairs, roster: &Roster) -> Result<Prepared, Rejection> {
    let terminate = form::flag(params, "terminate")?;
    let signal = form::text_or(params, "signal", "SIGTERM");
    Ok(Prepared {
        request: roster.broadcast(
            Command::Revoke,
            json!({"task_id": id, "terminate": terminate, "signal": signal}),
        ),
        judge: Judge::Sent(format!("Revoked '{id}'")),
    })
}

/// A task name no worker is known to have: 404, as Flower answers for a
/// name its own app does not register (a worker's error reply would be a
/// 403). Checked after the parameters and before the worker, in Flower's
/// order.
fn known_task(task: &str, task_known: bool) -> Result<(), Rejection> {
    if task_known {
        Ok(())
    } else {
        Err(Rejection::UnknownTask(task.to_string()))
    }
}

/// `POST /api/task/rate-limit/{name}`: `ratelimit` (required),
/// `workername` (Flower requires it; without it every worker is asked).
/// `task_known`: whether a worker has the task (see
/// [`super::inspect::knows_task`]).
pub fn rate_limit(
    task: &str,
    params: &Pairs,
    roster: &Roster,
    task_known: bool,
) -> Result<Prepared, Rejection> {
    let rate = form::required(params, "ratelimit")?;
    known_task(task, task_known)?;
    let scope = Scope::of(params, roster)?;
    // Celery reads a bare number as tasks per second.
    let rate = match rate.parse::<f64>() {
        Ok(n) => json!(n),
        Err(_) => json!(rate),
    };
    Ok(Prepared {
        request: scope.request(
            Command::RateLimit,
            json!({"task_name": task, "rate_limit": rate}),
            roster,
        ),
        judge: scope.judge(
            "new rate limit set successfully",
            Text::new("Failed to set rate limit: '{error}'"),
        ),
    })
}

/// Celery 5.7's `time_limit` command only updates the task registry
/// (`registered` shows it); prefork request classes copy the limits when the
/// consumer builds its strategies (`create_request_cls`), which happens at
/// start and on `pool_restart` (`WorkController.reload` calls
/// `update_strategies`). Tested in `tests/control.rs`.
pub const TIME_LIMIT_NOTE: &str = "Running prefork workers keep applying \
the old limits to new tasks until their pool restarts (apply=true here, or \
POST /api/worker/pool/restart/{worker}; both need worker_pool_restarts=True) \
or the worker restarts; `registered` shows the new limits at once.";

/// What `/api/task/timeout?apply=true` answers once the pool restarted.
pub const TIME_LIMIT_APPLIED: &str = "time limits set successfully and applied: the pool \
restarts, new tasks get the new limits";

/// `POST /api/task/timeout/{name}`: `soft`, `hard` (seconds), `workername`;
/// beyond Flower, `apply=true` follows up with a `pool_restart` of the same
/// workers, the only control path that makes Celery 5.7 prefork workers use
/// the new limits for new tasks (see [`TIME_LIMIT_NOTE`]).
#[derive(Debug, Clone)]
pub struct TimeLimit {
    pub set: Prepared,
    /// The follow-up `pool_restart`, with `apply=true`.
    pub restart: Option<Prepared>,
}

pub fn time_limit(
    task: &str,
    params: &Pairs,
    roster: &Roster,
    task_known: bool,
) -> Result<TimeLimit, Rejection> {
    let soft: Option<f64> = form::number(params, "soft")?;
    let hard: Option<f64> = form::number(params, "hard")?;
    let apply = form::flag(params, "apply")?;
    known_task(task, task_known)?;
    let scope = Scope::of(params, roster)?;
    let restart = apply.then(|| Prepared {
        request: scope.request(Command::PoolRestart, json!({"reload": false}), roster),
        judge: scope.judge("reload started", Text::new("{error}")),
    });
    Ok(TimeLimit {
        set: Prepared {
            request: scope.request(
                Command::TimeLimit,
                json!({"task_name": task, "hard": hard, "soft": soft}),
                roster,
            ),
            judge: scope.judge(
                "time limits set successfully",
                Text::new("Failed to set timeouts: '{error}'"),
            ),
        },
        restart,
    })
}

/// What a worker endpoint reads, and so what its command's arguments are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// Nothing; sends `{}`, and asks for no reply (`shutdown` never
    /// replies).
    NothingNoReply,
    /// Nothing; sends `{"reload": false}` (no module reload).
    NoReload,
    /// `n`, a count, 1 when absent.
    Count,
    /// `min` and `max`, both required.
    Bounds,
    /// `queue`, required.
    Queue,
}

impl Takes {
    /// Whether the endpoint reads its parameters at all.
    pub fn reads_parameters(self) -> bool {
        !matches!(self, Takes::NothingNoReply | Takes::NoReload)
    }
}

/// One of Flower's `/api/worker/...` endpoints: one command to the worker
/// the path names. `ok` and `fail` are Flower's texts, with `{worker}`,
/// the parameters (`{n}`, `{min}`, `{max}`, `{queue}`) and, in `fail`,
/// the worker's `{error}`; no `ok` passes the worker's own reply on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerEndpoint {
    /// The route, under the URL prefix; `{w}` is the worker.
    pub path: &'static str,
    pub command: Command,
    pub takes: Takes,
    pub ok: Option<&'static str>,
    pub fail: &'static str,
}

/// Flower's worker endpoints.
pub const WORKER_ENDPOINTS: &[WorkerEndpoint] = &[
    WorkerEndpoint {
        path: "/api/worker/shutdown/{w}",
        command: Command::Shutdown,
        takes: Takes::NothingNoReply,
        ok: Some("Shutting down!"),
        fail: "",
    },
    WorkerEndpoint {
        path: "/api/worker/pool/restart/{w}",
        command: Command::PoolRestart,
        takes: Takes::NoReload,
        ok: Some("Restarting '{worker}' worker's pool"),
        fail: "Failed to restart the '{worker}' pool: {error}",
    },
    WorkerEndpoint {
        path: "/api/worker/pool/grow/{w}",
        command: Command::PoolGrow,
        takes: Takes::Count,
        ok: Some("Growing '{worker}' worker's pool by {n}"),
        fail: "Failed to grow '{worker}' worker's pool: {error}",
    },
    WorkerEndpoint {
        path: "/api/worker/pool/shrink/{w}",
        command: Command::PoolShrink,
        takes: Takes::Count,
        ok: Some("Shrinking '{worker}' worker's pool by {n}"),
        fail: "Failed to shrink '{worker}' worker's pool: {error}",
    },
    WorkerEndpoint {
        path: "/api/worker/pool/autoscale/{w}",
        command: Command::Autoscale,
        takes: Takes::Bounds,
        ok: Some("Autoscaling '{worker}' worker (min={min}, max={max})"),
        fail: "Failed to autoscale '{worker}' worker: {error}",
    },
    WorkerEndpoint {
        path: "/api/worker/queue/add-consumer/{w}",
        command: Command::AddConsumer,
        takes: Takes::Queue,
        ok: None,
        fail: "Failed to add '{queue}' consumer to '{worker}' worker: {error}",
    },
    WorkerEndpoint {
        path: "/api/worker/queue/cancel-consumer/{w}",
        command: Command::CancelConsumer,
        takes: Takes::Queue,
        ok: None,
        fail: "Failed to cancel '{queue}' consumer from '{worker}' worker: {error}",
    },
];

impl WorkerEndpoint {
    /// The command to `worker`: parameters first (400), then whether the
    /// worker is known (404), as Flower checks them.
    pub fn prepare(
        &self,
        worker: &str,
        params: &Pairs,
        roster: &Roster,
    ) -> Result<Prepared, Rejection> {
        let mut arguments = Map::new();
        let mut values: Vec<(&'static str, String)> = Vec::new();
        match self.takes {
            Takes::NothingNoReply => {}
            Takes::NoReload => {
                arguments.insert("reload".into(), json!(false));
            }
            Takes::Count => {
                let n: u32 = form::number(params, "n")?.unwrap_or(1);
                arguments.insert("n".into(), json!(n));
                values.push(("n", n.to_string()));
            }
            Takes::Bounds => {
                let min: u32 = form::required_number(params, "min")?;
                let max: u32 = form::required_number(params, "max")?;
                arguments.insert("min".into(), json!(min));
                arguments.insert("max".into(), json!(max));
                values.extend([("min", min.to_string()), ("max", max.to_string())]);
            }
            Takes::Queue => {
                let queue = form::required(params, "queue")?;
                arguments.insert("queue".into(), json!(queue));
                values.push(("queue", queue.to_string()));
            }
        }
        let worker = roster.known(worker)?;
        values.push(("worker", worker.clone()));
        let text = |template: &'static str| {
            values
                .iter()
                .fold(Text::new(template), |t, (k, v)| t.with(k, v))
        };
        let mut request = Request::new(
            self.command.as_str(),
            Value::Object(arguments),
            Target::Workers(vec![worker.clone()]),
        );
        let judge = if self.takes == Takes::NothingNoReply {
            request = request.without_reply();
            Judge::Sent(self.ok.map(|t| text(t).render()).unwrap_or_default())
        } else {
            Judge::One {
                worker,
                ok: self.ok.map(|t| text(t).render()),
                fail: text(self.fail),
            }
        };
        Ok(Prepared { request, judge })
    }
}

/// The JSON body of `POST /api/control/{command}`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GenericBody {
    #[serde(default)]
    arguments: Map<String, Value>,
    destination: Option<Vec<String>>,
    pattern: Option<String>,
    matcher: Option<String>,
    /// Idle timeout in seconds (default `--inspect-timeout`, at most 30).
    timeout: Option<f64>,
    /// Ask for replies (default true; `shutdown` never replies).
    reply: Option<bool>,
}

/// `POST /api/control/{command}` with a JSON body `{arguments, destination
/// | pattern + matcher, timeout, reply}`: any [`Command`] to every worker, a
/// list, or a pattern. Replies are not judged: that is the caller's job.
pub fn generic(method: &str, body: &[u8], roster: &Roster) -> Result<Prepared, Rejection> {
    let command =
        Command::parse(method).ok_or_else(|| Rejection::UnknownCommand(method.to_string()))?;
    let b: GenericBody = if body.iter().all(|c| c.is_ascii_whitespace()) {
        GenericBody::default()
    } else {
        serde_json::from_slice(body)
            .map_err(|e| Rejection::Body(format!("Invalid JSON body: {e}")))?
    };
    let target = match (b.destination, b.pattern) {
        (Some(_), Some(_)) => {
            return Err(Rejection::param(
                "destination",
                "give destination or pattern, not both",
            ))
        }
        (Some(list), None) if list.is_empty() => {
            return Err(Rejection::param("destination", "empty destination"))
        }
        (Some(list), None) => Target::Workers(list),
        (None, Some(pattern)) => {
            let matcher = match b.matcher.as_deref().unwrap_or("glob") {
                "glob" => Matcher::Glob,
                "pcre" => Matcher::Pcre,
                other => {
                    return Err(Rejection::param(
                        "matcher",
                        format!("unknown matcher '{other}' (glob or pcre)"),
                    ))
                }
            };
            Target::Pattern { pattern, matcher }
        }
        (None, None) => Target::All,
    };
    let mut request = Request::new(command.as_str(), Value::Object(b.arguments), target);
    if command == Command::Shutdown || b.reply == Some(false) {
        request = request.without_reply();
    }
    if let Some(t) = b.timeout {
        if !(t > 0.0 && t <= 30.0) {
            return Err(Rejection::param(
                "timeout",
                "timeout must be in (0, 30] seconds",
            ));
        }
        request = request.timeout(Duration::from_secs_f64(t));
    }
    if request.target == Target::All {
        request = request.expecting(roster.alive.clone());
    }
    Ok(Prepared {
        request,
        judge: Judge::Sent("sent".to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::form::pairs;

    fn roster() -> Roster {
        Roster {
            known: ["a@h", "b@h", "gone@h"].map(String::from).into(),
            alive: vec!["a@h".into(), "b@h".into()],
        }
    }

    fn endpoint(command: Command) -> &'static WorkerEndpoint {
        WORKER_ENDPOINTS
            .iter()
            .find(|e| e.command == command)
            .unwrap()
    }

    #[test]
    fn one_known_worker_or_every_live_one() {
        let r = roster();
        assert_eq!(
            Scope::of(&pairs(&[("workername", "gone@h")]), &r),
            Ok(Scope::One("gone@h".into())),
            "known but offline is still addressed"
        );
        assert_eq!(Scope::of(&pairs(&[("workername", "")]), &r), Ok(Scope::All));
        assert_eq!(
            Scope::of(&pairs(&[("workername", "x@h")]), &r),
            Err(Rejection::UnknownWorker("x@h".into()))
        );
        let all = Scope::All.request(Command::Ping, json!({}), &r);
        assert_eq!(
            (all.target, all.expect),
            (Target::All, Some(r.alive.clone()))
        );
        let one = Scope::One("a@h".into()).request(Command::Ping, json!({}), &r);
        assert_eq!(
            (one.target, one.expect),
            (Target::Workers(vec!["a@h".into()]), None)
        );
    }

    #[test]
    fn revoke_goes_to_every_worker_with_its_signal() {
        let p = revoke("t1", &pairs(&[("terminate", "yes")]), &roster()).unwrap();
        assert_eq!(p.request.method, "revoke");
        assert_eq!(
            Value::Object(p.request.arguments),
            json!({"task_id": "t1", "terminate": true, "signal": "SIGTERM"})
        );
        assert_eq!(p.request.expect, Some(roster().alive));
        assert_eq!(p.judge, Judge::Sent("Revoked 't1'".into()));
        let e = revoke("t1", &pairs(&[("terminate", "2")]), &roster()).unwrap_err();
        assert_eq!(e.parameter(), Some("terminate"));
    }

    #[test]
    fn rate_limits_are_numbers_when_they_can_be() {
        let r = roster();
        let p = rate_limit("tasks.add", &pairs(&[("ratelimit", "10")]), &r, true).unwrap();
        assert_eq!(p.request.arguments["rate_limit"], json!(10.0));
        assert!(matches!(p.judge, Judge::All { .. }));
        let p = rate_limit(
            "tasks.add",
            &pairs(&[("ratelimit", "10/m"), ("workername", "a@h")]),
            &r,
            true,
        )
        .unwrap();
        assert_eq!(p.request.arguments["rate_limit"], json!("10/m"));
        assert_eq!(p.request.target, Target::Workers(vec!["a@h".into()]));
        // The missing parameter is named before the worker is looked up.
        let e = rate_limit("t", &pairs(&[("workername", "x@h")]), &r, false).unwrap_err();
        assert_eq!(
            (e.parameter(), e.to_string().as_str()),
            (Some("ratelimit"), "Missing argument ratelimit")
        );
    }

    /// Flower's order: parameters (400), the task (404), the worker (404).
    #[test]
    fn an_unknown_task_is_refused_before_the_worker_is_looked_up() {
        let r = roster();
        let both = pairs(&[("ratelimit", "1/s"), ("workername", "x@h")]);
        let e = rate_limit("tasks.nope", &both, &r, false).unwrap_err();
        assert_eq!(
            (e.status(), e.to_string().as_str()),
            (404, "Unknown task 'tasks.nope'")
        );
        let e = rate_limit("tasks.add", &both, &r, true).unwrap_err();
        assert_eq!(e, Rejection::UnknownWorker("x@h".into()));
        let e = time_limit("tasks.nope", &pairs(&[("soft", "1")]), &r, false).unwrap_err();
        assert_eq!(e.to_string(), "Unknown task 'tasks.nope'");
        let e = time_limit("tasks.nope", &pairs(&[("soft", "x")]), &r, false).unwrap_err();
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn time_limits_restart_the_pool_only_when_applied() {
        let r = roster();
        let t = time_limit(
            "tasks.sleep",
            &pairs(&[("hard", "1"), ("workername", "a@h")]),
            &r,
            true,
        )
        .unwrap();
        assert_eq!(
            Value::Object(t.set.request.arguments.clone()),
            json!({"task_name": "tasks.sleep", "hard": 1.0, "soft": null})
        );
        assert!(t.restart.is_none());
        let t = time_limit(
            "tasks.sleep",
            &pairs(&[("soft", "0.5"), ("apply", "true")]),
            &r,
            true,
        )
        .unwrap();
        let restart = t.restart.unwrap();
        assert_eq!(restart.request.method, "pool_restart");
        assert_eq!(restart.request.expect, Some(r.alive.clone()));
        let e = time_limit("t", &pairs(&[("soft", "soon")]), &r, true).unwrap_err();
        assert_eq!(e.to_string(), "Invalid argument 'soon' for 'soft'");
    }

    #[test]
    fn worker_endpoints_send_their_parameters_and_say_flowers_texts() {
        let r = roster();
        let p = endpoint(Command::Autoscale)
            .prepare("a@h", &pairs(&[("min", "1"), ("max", "3")]), &r)
            .unwrap();
        assert_eq!(p.request.method, "autoscale");
        assert_eq!(
            Value::Object(p.request.arguments),
            json!({"min": 1, "max": 3})
        );
        assert_eq!(p.request.target, Target::Workers(vec!["a@h".into()]));
        let Judge::One { ok, fail, .. } = p.judge else {
            panic!("one worker")
        };
        assert_eq!(
            ok.as_deref(),
            Some("Autoscaling 'a@h' worker (min=1, max=3)")
        );
        assert_eq!(
            fail.with("error", "off").render(),
            "Failed to autoscale 'a@h' worker: off"
        );

        let p = endpoint(Command::PoolGrow).prepare("a@h", &[], &r).unwrap();
        assert_eq!(Value::Object(p.request.arguments), json!({"n": 1}));
        let p = endpoint(Command::PoolRestart)
            .prepare("a@h", &[], &r)
            .unwrap();
        assert_eq!(Value::Object(p.request.arguments), json!({"reload": false}));

        let p = endpoint(Command::Shutdown).prepare("a@h", &[], &r).unwrap();
        assert!(!p.request.reply, "shutdown never replies");
        assert_eq!(p.judge, Judge::Sent("Shutting down!".into()));

        let p = endpoint(Command::CancelConsumer)
            .prepare("a@h", &pairs(&[("queue", "extra")]), &r)
            .unwrap();
        let Judge::One { ok, fail, .. } = p.judge else {
            panic!("one worker")
        };
        assert_eq!(ok, None, "the worker's own text is the message");
        assert_eq!(
            fail.with("error", "e").render(),
            "Failed to cancel 'extra' consumer from 'a@h' worker: e"
        );
    }

    #[test]
    fn worker_endpoints_refuse_parameters_before_unknown_workers() {
        let r = roster();
        let add = endpoint(Command::AddConsumer);
        let e = add.prepare("x@h", &[], &r).unwrap_err();
        assert_eq!((e.status(), e.parameter()), (400, Some("queue")));
        let e = add
            .prepare("x@h", &pairs(&[("queue", "q")]), &r)
            .unwrap_err();
        assert_eq!(e, Rejection::UnknownWorker("x@h".into()));
        let scale = endpoint(Command::Autoscale);
        let e = scale
            .prepare("a@h", &pairs(&[("max", "3")]), &r)
            .unwrap_err();
        assert_eq!(e.to_string(), "Missing argument min");
        let e = endpoint(Command::PoolShrink)
            .prepare("a@h", &pairs(&[("n", "-1")]), &r)
            .unwrap_err();
        assert_eq!(e.parameter(), Some("n"));
    }

    #[test]
    fn worker_endpoints_cover_flowers_paths_once() {
        let paths: BTreeSet<&str> = WORKER_ENDPOINTS.iter().map(|e| e.path).collect();
        assert_eq!(paths.len(), WORKER_ENDPOINTS.len());
        for e in WORKER_ENDPOINTS {
            assert!(e.path.starts_with("/api/worker/") && e.path.ends_with("/{w}"));
            assert!(!e.command.is_inspect());
            assert_eq!(
                e.takes.reads_parameters(),
                !matches!(e.command, Command::Shutdown | Command::PoolRestart)
            );
        }
    }

    #[test]
    fn generic_commands_address_all_a_list_or_a_pattern() {
        let r = roster();
        let p = generic("ping", b"  ", &r).unwrap();
        assert_eq!(
            (p.request.target.clone(), p.request.expect),
            (Target::All, Some(r.alive.clone()))
        );
        assert_eq!(p.judge, Judge::Sent("sent".into()));
        let p = generic("ping", br#"{"pattern": "a@*", "timeout": 0.5}"#, &r).unwrap();
        assert_eq!(
            p.request.target,
            Target::Pattern {
                pattern: "a@*".into(),
                matcher: Matcher::Glob
            }
        );
        assert_eq!(p.request.timeout, Some(Duration::from_millis(500)));
        assert_eq!(p.request.expect, None);
        let p = generic("shutdown", br#"{"destination": ["a@h"]}"#, &r).unwrap();
        assert!(!p.request.reply);
        let p = generic(
            "revoke",
            br#"{"arguments": {"task_id": ["x"]}, "reply": false}"#,
            &r,
        )
        .unwrap();
        assert!(!p.request.reply);
        assert_eq!(p.request.arguments["task_id"], json!(["x"]));
    }

    #[test]
    fn generic_commands_refuse_naming_what_is_wrong() {
        let r = roster();
        let refused = |method: &str, body: &str| generic(method, body.as_bytes(), &r).unwrap_err();
        assert_eq!(
            refused("drop_tables", ""),
            Rejection::UnknownCommand("drop_tables".into())
        );
        assert_eq!(refused("drop_tables", "").status(), 404);
        let e = refused("ping", r#"{"destination": ["a"], "pattern": "a"}"#);
        assert_eq!(e.parameter(), Some("destination"));
        assert_eq!(
            refused("ping", r#"{"destination": []}"#).to_string(),
            "empty destination"
        );
        let e = refused("ping", r#"{"pattern": "a", "matcher": "regex"}"#);
        assert_eq!(
            (e.parameter(), e.to_string().as_str()),
            (Some("matcher"), "unknown matcher 'regex' (glob or pcre)")
        );
        assert_eq!(
            refused("ping", r#"{"timeout": 31}"#).parameter(),
            Some("timeout")
        );
        let e = refused("ping", r#"{"destinations": ["a"]}"#);
        assert_eq!(e.status(), 400);
        assert!(
            e.to_string()
                .starts_with("Invalid JSON body: unknown field `destinations`"),
            "{e}"
        );
    }
}
