//! The inspect cache behind `GET /api/workers` (Flower's `stats`,
//! `registered`, `active_queues`, `conf`, and with a worker name its task
//! lists `active`, `reserved`, `scheduled`, `revoked`; docs/celery-protocol.md §4.5,
//! §6.2). Refreshed on `?refresh=1`, periodically, and for each worker as it
//! comes online (`onboard.rs`); at most [`MAX_CONCURRENT_REFRESHES`]
//! refreshes run at once.

use std::collections::BTreeMap;

use api::control::Command;
use serde_json::{json, Map, Value};
use tokio::sync::Semaphore;

use crate::mailbox::{ControlError, Request, Target};
use parking_lot::RwLock;

use super::command::Roster;
use super::Ops;
use crate::broker::BrokerStats;
use crate::clock;
use crate::mailbox::Mailbox;
use crate::redact::Redactor;
use crate::state::State;

/// Each refresh is up to 8 broadcasts; more at once would only queue on
/// the one control channel.
pub const MAX_CONCURRENT_REFRESHES: usize = 2;

/// Inspect methods Flower 2.2 runs for every worker.
const WORKER_METHODS: [Command; 4] = [
    Command::Stats,
    Command::ActiveQueues,
    Command::Registered,
    Command::Conf,
];
/// And for one worker (`workername=`).
const TASK_METHODS: [Command; 4] = [
    Command::Active,
    Command::Reserved,
    Command::Scheduled,
    Command::Revoked,
];

pub struct InspectCache {
    workers: parking_lot::RwLock<BTreeMap<String, Map<String, Value>>>,
    permits: Semaphore,
    /// `--redact-keys`, for the `args`/`kwargs` reprs of the tasks that
    /// `active`, `reserved` and `scheduled` list.
    redactor: Redactor,
}

impl Default for InspectCache {
    fn default() -> Self {
        Self::new()
    }
}

impl InspectCache {
    pub fn new() -> InspectCache {
        InspectCache {
            workers: parking_lot::RwLock::new(BTreeMap::new()),
            permits: Semaphore::new(MAX_CONCURRENT_REFRESHES),
            redactor: Redactor::default(),
        }
    }

    /// Masks `--redact-keys` in the task lists before they are cached.
    pub fn masking(mut self, redactor: Redactor) -> InspectCache {
        self.redactor = redactor;
        self
    }

    /// The cached inspect fields of `worker` (with their `timestamp`).
    pub fn get(&self, worker: &str) -> Option<Map<String, Value>> {
        self.workers.read().get(worker).cloned()
    }

    /// Whether `worker` has answered an inspect.
    pub fn has(&self, worker: &str) -> bool {
        self.workers.read().contains_key(worker)
    }

    /// Every worker that answered an inspect.
    pub fn names(&self) -> Vec<String> {
        self.workers.read().keys().cloned().collect()
    }

    /// `worker` as `/api/workers` renders it: the event-derived fields,
    /// then the cached inspect fields (Flower's), when there are any.
    pub fn merged(&self, worker: &api::Worker) -> Value {
        let mut value = serde_json::to_value(worker).unwrap_or(Value::Null);
        if let (Value::Object(map), Some(fields)) = (&mut value, self.get(&worker.hostname)) {
            for (k, v) in fields {
                // The event-derived `timestamp` stays; the inspect one is
                // `inspect_timestamp`.
                let k = if k == "timestamp" {
                    "inspect_timestamp".to_string()
                } else {
                    k
                };
                map.insert(k, v);
            }
        }
        value
    }

    fn store(&self, method: &str, replies: BTreeMap<String, Value>, now: f64) {
        let mut workers = self.workers.write();
        for (worker, reply) in replies {
            let reply = masked_reply(&self.redactor, method, reply);
            let entry = workers.entry(worker).or_default();
            entry.insert(method.to_string(), reply);
            entry.insert("timestamp".into(), json!(now));
        }
    }
}

/// Whether the workers have task `name`: seen in events, or listed in a
/// worker's cached `registered` reply (Flower checks its own app's
/// registry, which celeriac does not have).
pub fn knows_task(state: &RwLock<State>, inspect: &InspectCache, name: &str) -> bool {
    if state.read().knows_task_name(name) {
        return true;
    }
    inspect.workers.read().values().any(|fields| {
        fields
            .get("registered")
            .and_then(Value::as_array)
            .is_some_and(|tasks| {
                tasks
                    .iter()
                    .filter_map(Value::as_str)
                    // `registered` with `taskinfoitems` appends them: "name [rate_limit=…]".
                    .any(|t| t.split_whitespace().next() == Some(name))
            })
    })
}

/// One worker's reply to inspect `method` with its secrets masked: the
/// broker URL and other secrets of `conf`, matching keys in the arguments
/// of task lists. Everything else as it came.
pub fn masked_reply(redactor: &Redactor, method: &str, reply: Value) -> Value {
    match method {
        "conf" => mask_conf(reply),
        // A worker's broker connection as kombu describes it, transport
        // options included (a Sentinel's `sentinel_kwargs` password, say).
        "stats" => {
            let mut reply = reply;
            if let Some(broker) = reply.get_mut("broker") {
                *broker = mask_conf(broker.take());
            }
            reply
        }
        "active" | "reserved" | "scheduled" => {
            let mut reply = reply;
            mask_task_args(redactor, &mut reply);
            reply
        }
        _ => reply,
    }
}

/// Masks every string `args`/`kwargs`/`result` found in a task list reply
/// (`scheduled` nests each task under `request`).
fn mask_task_args(redactor: &Redactor, v: &mut Value) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(|i| mask_task_args(redactor, i)),
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                match v {
                    Value::String(text) if matches!(k.as_str(), "args" | "kwargs" | "result") => {
                        if let std::borrow::Cow::Owned(m) = redactor.mask(text) {
                            *text = m;
                        }
                    }
                    // Asked without `safe`, a worker sends the arguments as
                    // JSON values rather than reprs.
                    _ if matches!(k.as_str(), "args" | "kwargs" | "result") => {
                        redactor.mask_json(v)
                    }
                    _ => mask_task_args(redactor, v),
                }
            }
        }
        _ => {}
    }
}

/// A worker as `/api/workers` renders it, with the `args` and `kwargs` of
/// the tasks it lists set to null (`--hide-args`, for viewers).
pub fn hide_task_args(worker: &mut Value) {
    fn walk(v: &mut Value) {
        match v {
            Value::Array(items) => items.iter_mut().for_each(walk),
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if matches!(k.as_str(), "args" | "kwargs") {
                        *v = Value::Null;
                    } else {
                        walk(v);
                    }
                }
            }
            _ => {}
        }
    }
    if let Value::Object(map) = worker {
        for list in ["active", "reserved", "scheduled"] {
            if let Some(v) = map.get_mut(list) {
                walk(v);
            }
        }
    }
}

fn arguments(method: &str) -> Value {
    match method {
        "active" => json!({"safe": true}),
        "registered" => json!({"taskinfoitems": []}),
        "conf" => json!({"with_defaults": false}),
        _ => json!({}),
    }
}

/// Runs the inspect broadcasts and stores each worker's replies: Flower's
/// four for every live worker, plus the four task lists when `workername`
/// is given (then only that worker is asked).
pub async fn refresh<M: Mailbox>(
    ops: &Ops<M>,
    state: &RwLock<State>,
    broker: &BrokerStats,
    workername: Option<&str>,
) -> Result<(), ControlError> {
    let mut methods: Vec<&str> = WORKER_METHODS.map(Command::as_str).to_vec();
    let (target, expect) = match workername {
        Some(w) => {
            methods.extend(TASK_METHODS.map(Command::as_str));
            (Target::Workers(vec![w.to_string()]), None)
        }
        None => {
            let roster = Roster::of(&state.read(), &ops.inspect, clock::now());
            (Target::All, Some(roster.alive))
        }
    };
    run(ops, broker, &methods, target, expect).await
}

/// Flower's four inspect methods for the named workers only (workers that
/// just came online, see `onboard.rs`); done once they all answered.
pub async fn refresh_workers<M: Mailbox>(
    ops: &Ops<M>,
    broker: &BrokerStats,
    workers: &[String],
) -> Result<(), ControlError> {
    let methods = WORKER_METHODS.map(Command::as_str);
    run(
        ops,
        broker,
        &methods,
        Target::Workers(workers.to_vec()),
        None,
    )
    .await
}

async fn run<M: Mailbox>(
    ops: &Ops<M>,
    broker: &BrokerStats,
    methods: &[&str],
    target: Target,
    expect: Option<Vec<String>>,
) -> Result<(), ControlError> {
    let _permit = ops.inspect.permits.acquire().await.ok();
    let calls = methods.iter().map(|m| {
        let mut req = Request::new(m, arguments(m), target.clone());
        req.expect = expect.clone();
        async move { (*m, ops.pidbox.call(&req).await) }
    });
    let results = join_all(calls).await;
    let now = clock::now();
    let mut touched = Vec::new();
    for (method, result) in results {
        let outcome = result?;
        touched.extend(outcome.replies.keys().cloned());
        ops.inspect.store(method, outcome.replies, now);
    }
    // Feed the queue metrics (`celery_active_worker_count`,
    // `celery_active_process_count`): events never say what a worker consumes.
    touched.sort();
    touched.dedup();
    for worker in touched {
        if let Some(info) = ops.inspect.get(&worker).and_then(|m| worker_queues(&m)) {
            broker.set_worker_queues(&worker, info);
        }
    }
    Ok(())
}

/// What a worker consumes, from its cached `active_queues` and `stats`
/// replies, and its `conf` time limits; `None` until `active_queues`
/// has answered with a list.
pub fn worker_queues(inspect: &Map<String, Value>) -> Option<crate::broker::WorkerQueues> {
    let queues = inspect
        .get("active_queues")?
        .as_array()?
        .iter()
        .filter_map(|q| q.get("name")?.as_str().map(str::to_owned))
        .collect();
    let processes = inspect
        .get("stats")
        .and_then(|s| s.pointer("/pool/processes"))
        .and_then(Value::as_array)
        .map_or(0, |p| p.len() as u64);
    // `conf` is asked without defaults: a key is there only when set.
    let limit = |key: &str| {
        inspect
            .get("conf")
            .and_then(|c| c.get(key))
            .and_then(Value::as_f64)
            .filter(|l| l.is_finite() && *l > 0.0)
    };
    Some(crate::broker::WorkerQueues {
        queues,
        processes,
        task_time_limit: limit("task_time_limit"),
        task_soft_time_limit: limit("task_soft_time_limit"),
    })
}

/// Awaits every future concurrently (a tiny `join_all`).
async fn join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// Masks secrets in a worker's `conf` reply: passwords in URLs, and the
/// values of settings whose name says they are secret. Celery already masks
/// some (`broker_url`); we do not rely on it.
pub fn mask_conf(conf: Value) -> Value {
    crate::mask::mask_secrets(conf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_queues_come_from_active_queues_and_pool_processes() {
        let inspect = json!({
            "active_queues": [{"name": "celery"}, {"name": "work"}],
            "stats": {"pool": {"processes": [101, 102, 103]}},
        });
        let got = worker_queues(inspect.as_object().unwrap()).unwrap();
        assert_eq!(got.queues, ["celery", "work"]);
        assert_eq!(got.processes, 3);
        assert_eq!(
            (got.task_time_limit, got.task_soft_time_limit),
            (None, None)
        );
        // Time limits from `conf`, where the worker sets them.
        let limited = json!({
            "active_queues": [],
            "conf": {"task_time_limit": 30, "task_soft_time_limit": 20.5},
        });
        let got = worker_queues(limited.as_object().unwrap()).unwrap();
        assert_eq!(
            (got.task_time_limit, got.task_soft_time_limit),
            (Some(30.0), Some(20.5))
        );
        // Without active_queues nothing is known yet; stats alone is not enough.
        let stats_only = json!({"stats": {"pool": {"processes": [1]}}});
        assert!(worker_queues(stats_only.as_object().unwrap()).is_none());
    }

    #[test]
    fn task_lists_as_json_values_are_masked() {
        // `active` asked without `safe`: arguments as JSON, not reprs.
        let r = Redactor::new("password");
        let active = json!([{"id": "a", "args": [{"password": "p1"}, 60],
                             "kwargs": {"password": "p2", "user": "y"}}]);
        let text = masked_reply(&r, "active", active).to_string();
        assert!(!text.contains("p1") && !text.contains("p2"), "{text}");
        assert!(
            text.contains("\"user\":\"y\"") && text.contains("60"),
            "{text}"
        );
        let other = masked_reply(&r, "stats", json!({"password": "kept"}));
        assert_eq!(
            other["password"], "kept",
            "only task lists, conf and stats' broker are masked"
        );
        let stats = json!({"broker": {"hostname": "sentinel://:pw@h1;sentinel://:pw@h2",
            "transport_options": {"sentinel_kwargs": {"password": "pw"}}}});
        let text = masked_reply(&r, "stats", stats).to_string();
        assert!(!text.contains("pw@") && !text.contains("\"pw\""), "{text}");
    }

    #[test]
    fn task_lists_are_masked() {
        let cache = InspectCache::new().masking(Redactor::new("password"));
        let active = json!([{"id": "a", "args": "({'password': 'p1'},)",
                             "kwargs": "{'password': 'p2', 'n': 1}"}]);
        let scheduled = json!([{"eta": "x", "request": {"kwargs": "{'Password': 'p3'}"}}]);
        let replies = |v: Value| BTreeMap::from([("w".to_string(), v)]);
        cache.store("active", replies(active), 1.0);
        cache.store("scheduled", replies(scheduled), 1.0);
        let text = Value::Object(cache.get("w").unwrap()).to_string();
        assert!(
            !text.contains("p1") && !text.contains("p2") && !text.contains("p3"),
            "{text}"
        );
        assert!(text.contains("'n': 1") && text.contains("••••"), "{text}");

        let mut worker = Value::Object(cache.get("w").unwrap());
        worker["name"] = json!("w");
        hide_task_args(&mut worker);
        assert!(worker["active"][0]["kwargs"].is_null() && worker["active"][0]["args"].is_null());
        assert!(worker["scheduled"][0]["request"]["kwargs"].is_null());
        assert_eq!(
            (worker["active"][0]["id"].as_str(), worker["name"].as_str()),
            (Some("a"), Some("w"))
        );
    }

    #[test]
    fn conf_secrets_are_masked() {
        let conf = json!({
            "broker_url": "amqp://guest:hunter2@rabbit:5672//",
            "result_backend": "redis://:pw@redis:6379/0",
            "broker_transport_options": {"sentinel_kwargs": {"password": "pw"}},
            "aws_secret_access_key": "abc",
            "task_default_routing_key": "celery",
            "broker_login_method": null,
            "urls": ["amqp://u:p@h//"],
        });
        let m = mask_conf(conf);
        let text = m.to_string();
        assert!(!text.contains("hunter2") && !text.contains(":pw@") && !text.contains("\"pw\""));
        assert!(!text.contains("abc") && !text.contains("u:p@"), "{text}");
        assert_eq!(m["task_default_routing_key"], "celery");
        assert_eq!(m["broker_url"], "amqp://guest:********@rabbit:5672//");
        assert!(m["broker_login_method"].is_null());
    }

    #[tokio::test]
    async fn join_all_keeps_order() {
        let futs = (0..3u64).map(|i| async move {
            tokio::time::sleep(std::time::Duration::from_millis(30 - i * 10)).await;
            i
        });
        assert_eq!(join_all(futs).await, vec![0, 1, 2]);
    }
}
