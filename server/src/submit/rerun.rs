//! A known task published again (docs/celery-protocol.md §7.4): its name,
//! its arguments rebuilt from the events' reprs (or replaced by the
//! caller's), to the exchange and routing key its `task-sent` named, as a
//! new top-level task. Refuses what cannot be rebuilt, saying why.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::message::{Route, TaskMessage};
use super::options::{OptionError, Options};
use crate::pyrepr::{self, Dialect, Refusal};

/// Native delayed delivery's exchange: a task routed there waited for its
/// ETA; the re-run, without one, goes to the task's queue.
const DELAYED_EXCHANGE: &str = "celery_delayed_27";

/// What the caller may change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rerun {
    pub args: Option<Vec<Value>>,
    pub kwargs: Option<Map<String, Value>>,
    pub queue: Option<String>,
    pub countdown: Option<f64>,
}

/// What the task record holds, as far as a re-run needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Original<'a> {
    pub id: &'a str,
    pub name: Option<&'a str>,
    pub args: Option<&'a str>,
    pub kwargs: Option<&'a str>,
    pub exchange: Option<&'a str>,
    pub routing_key: Option<&'a str>,
    pub queue: Option<&'a str>,
}

impl<'a> Original<'a> {
    pub fn of(t: &'a api::Task) -> Original<'a> {
        Original {
            id: &t.uuid,
            name: t.name.as_deref(),
            args: t.args.as_deref(),
            kwargs: t.kwargs.as_deref(),
            exchange: t.exchange.as_deref(),
            routing_key: t.routing_key.as_deref(),
            queue: t.queue.as_deref(),
        }
    }

    /// The same, from a task held in memory.
    pub fn of_view(t: &crate::state::TaskView<'a>) -> Original<'a> {
        Original {
            id: t.uuid,
            name: t.name,
            args: t.args,
            kwargs: t.kwargs,
            exchange: t.exchange,
            routing_key: t.routing_key,
            queue: t.queue,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RerunError {
    /// A request body that cannot be used (400).
    #[error("{0}")]
    Body(String),
    /// The task's arguments cannot be rebuilt (422).
    #[error("cannot rebuild {}: {} at `{}`", .0.argument, .0.reason, .0.text)]
    Arguments(Refusal),
    /// The record lacks what a message needs (422).
    #[error("{0}")]
    Incomplete(String),
}

impl From<OptionError> for RerunError {
    fn from(e: OptionError) -> Self {
        RerunError::Body(e.to_string())
    }
}

impl Rerun {
    /// From `POST /api/task/retry/{id}`'s JSON body (may be empty).
    pub fn from_body(body: &Map<String, Value>) -> Result<Rerun, RerunError> {
        let mut r = Rerun::default();
        for (key, value) in body {
            match (key.as_str(), value) {
                (_, Value::Null) => {}
                ("args", Value::Array(a)) => r.args = Some(a.clone()),
                ("args", _) => return Err(RerunError::Body("args must be an array".into())),
                ("kwargs", Value::Object(k)) => r.kwargs = Some(k.clone()),
                ("kwargs", _) => return Err(RerunError::Body("kwargs must be an object".into())),
                ("queue" | "countdown", _) => {}
                (other, _) => {
                    return Err(RerunError::Body(format!(
                        "Unknown field '{other}': a retry takes args, kwargs, queue and countdown"
                    )))
                }
            }
        }
        // The same checks as Flower's options.
        let mut opts = Map::new();
        for key in ["queue", "countdown"] {
            if let Some(v) = body.get(key) {
                opts.insert(key.to_string(), v.clone());
            }
        }
        let o = Options::from_body(&opts)?;
        r.queue = o.queue;
        r.countdown = o.countdown;
        Ok(r)
    }

    /// The message re-running `original` as task `id`.
    pub fn message(
        &self,
        original: &Original<'_>,
        id: String,
        origin: String,
        reply_to: String,
        default_queue: &str,
        now: DateTime<Utc>,
    ) -> Result<TaskMessage, RerunError> {
        let name = original.name.filter(|n| !n.is_empty()).ok_or_else(|| {
            RerunError::Incomplete(format!(
                "the name of task '{}' is unknown (none of its events named it)",
                original.id
            ))
        })?;
        let (args, argsrepr) = match &self.args {
            Some(a) => (a.clone(), None),
            None => {
                let repr = recorded(original.args, "args")?;
                let args =
                    pyrepr::parse_args(repr, Dialect::Saferepr).map_err(RerunError::Arguments)?;
                (args, Some(repr.to_string()))
            }
        };
        let (kwargs, kwargsrepr) = match &self.kwargs {
            Some(k) => (k.clone(), None),
            None => {
                let repr = recorded(original.kwargs, "kwargs")?;
                let kwargs =
                    pyrepr::parse_kwargs(repr, Dialect::Saferepr).map_err(RerunError::Arguments)?;
                (kwargs, Some(repr.to_string()))
            }
        };
        let route = match (&self.queue, original.exchange, original.routing_key) {
            (Some(q), _, _) => Route::queue(q),
            (None, Some(DELAYED_EXCHANGE), _) => {
                Route::queue(original.queue.unwrap_or(default_queue))
            }
            (None, exchange, Some(key)) if !key.is_empty() => Route {
                exchange: exchange.unwrap_or("").to_string(),
                routing_key: key.to_string(),
            },
            (None, _, _) => Route::queue(original.queue.unwrap_or(default_queue)),
        };
        let mut m = TaskMessage::new(id, name.to_string(), args, kwargs, route, origin, reply_to);
        // The original reprs, so the re-run can itself be re-run.
        if let Some(r) = argsrepr {
            m.argsrepr = r;
        }
        if let Some(r) = kwargsrepr {
            m.kwargsrepr = r;
        }
        if let Some(c) = self.countdown.filter(|c| *c != 0.0) {
            let opts = Options {
                countdown: Some(c),
                ..Options::default()
            };
            let route = m.route.clone();
            opts.apply(&mut m, now, default_queue);
            m.route = route;
            m.priority = None;
        }
        Ok(m)
    }
}

fn recorded<'a>(repr: Option<&'a str>, which: &str) -> Result<&'a str, RerunError> {
    let repr = repr.filter(|r| !r.is_empty()).ok_or_else(|| {
        RerunError::Arguments(Refusal {
            argument: which.to_string(),
            reason: "no repr was recorded (the events carried none); pass them in the body".into(),
            text: String::new(),
        })
    })?;
    // Masking happens at ingest, so the real values are gone: re-running
    // would send the mask itself.
    if crate::redact::contains_mask(repr) {
        return Err(RerunError::Arguments(Refusal {
            argument: which.to_string(),
            reason: "arguments were masked by --redact-keys; pass args/kwargs explicitly".into(),
            text: String::new(),
        }));
    }
    Ok(repr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-07T20:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn original() -> Original<'static> {
        Original {
            id: "old",
            name: Some("tasks.add"),
            args: Some("(2, 'it\\'s')"),
            kwargs: Some("{'x': [1]}"),
            exchange: Some(""),
            routing_key: Some("celery"),
            queue: Some("celery"),
        }
    }

    fn run(r: &Rerun, o: &Original<'_>) -> Result<TaskMessage, RerunError> {
        r.message(
            o,
            "new".into(),
            "celeriac@h".into(),
            "oid".into(),
            "celery",
            now(),
        )
    }

    #[test]
    fn masked_arguments_are_not_sent_again() {
        let masked = Original {
            kwargs: Some("{'password': '••••', 'user': 'x'}"),
            ..original()
        };
        match run(&Rerun::default(), &masked) {
            Err(RerunError::Arguments(r)) => {
                assert_eq!(r.argument, "kwargs");
                assert!(r.reason.contains("masked by --redact-keys"), "{r}");
            }
            other => panic!("{other:?}"),
        }
        // Arguments passed in the body replace the masked ones.
        let body = json!({"kwargs": {"password": "real", "user": "x"}});
        let r = Rerun::from_body(body.as_object().unwrap()).unwrap();
        assert_eq!(run(&r, &masked).unwrap().kwargs["password"], "real");
    }

    #[test]
    fn the_original_is_published_again_as_a_new_root() {
        let m = run(&Rerun::default(), &original()).unwrap();
        assert_eq!(m.name, "tasks.add");
        assert_eq!(m.args, vec![json!(2), json!("it's")]);
        assert_eq!(m.kwargs, json!({"x": [1]}).as_object().unwrap().clone());
        assert_eq!(m.argsrepr, "(2, 'it\\'s')");
        assert_eq!(m.kwargsrepr, "{'x': [1]}");
        assert_eq!(m.route, Route::queue("celery"));
        assert_eq!((m.id.as_str(), m.root_id.as_str()), ("new", "new"));
        assert_eq!(m.parent_id, None);
        assert_eq!(
            (m.eta.clone(), m.expires.clone(), m.retries),
            (None, None, 0)
        );

        let topic = Original {
            exchange: Some("tex"),
            routing_key: Some("jobs.a"),
            ..original()
        };
        assert_eq!(
            run(&Rerun::default(), &topic).unwrap().route,
            Route {
                exchange: "tex".into(),
                routing_key: "jobs.a".into()
            }
        );
        let unknown = Original {
            exchange: None,
            routing_key: None,
            queue: None,
            ..original()
        };
        assert_eq!(
            run(&Rerun::default(), &unknown).unwrap().route,
            Route::queue("celery")
        );
    }

    #[test]
    fn the_body_replaces_arguments_route_and_timing() {
        let body = json!({"args": [5], "kwargs": {"y": null}, "queue": "other", "countdown": 10});
        let r = Rerun::from_body(body.as_object().unwrap()).unwrap();
        let m = run(&r, &original()).unwrap();
        assert_eq!(m.args, vec![json!(5)]);
        assert_eq!(m.argsrepr, "(5,)");
        assert_eq!(m.kwargsrepr, "{'y': None}");
        assert_eq!(m.route, Route::queue("other"));
        assert_eq!(m.eta.as_deref(), Some("2026-12-07T20:00:10+00:00"));

        for body in [
            json!({"args": "1"}),
            json!({"kwargs": []}),
            json!({"countdown": "x"}),
            json!({"eta": 1}),
        ] {
            assert!(matches!(
                Rerun::from_body(body.as_object().unwrap()),
                Err(RerunError::Body(_))
            ));
        }
    }

    #[test]
    fn what_cannot_be_rebuilt_is_refused_with_the_reason() {
        let cut = Original {
            args: Some("('xxxx...',)"),
            ..original()
        };
        let e = run(&Rerun::default(), &cut).unwrap_err();
        let RerunError::Arguments(r) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(r.argument, "args[0]");
        assert!(e.to_string().contains("args[0]"), "{e}");
        // Replacing the arguments gets around it.
        let r = Rerun {
            args: Some(vec![]),
            ..Rerun::default()
        };
        assert!(run(&r, &cut).is_ok());

        let no_kwargs = Original {
            kwargs: None,
            ..original()
        };
        assert!(matches!(
            run(&Rerun::default(), &no_kwargs),
            Err(RerunError::Arguments(r)) if r.argument == "kwargs"
        ));
        let no_name = Original {
            name: None,
            ..original()
        };
        assert!(matches!(
            run(&Rerun::default(), &no_name),
            Err(RerunError::Incomplete(_))
        ));
    }
}
