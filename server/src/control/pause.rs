//! Pausing a queue across the cluster: `cancel_consumer` to every worker
//! that consumes it, `add_consumer` to the same workers on resume
//! (docs/celery-protocol.md §4). Celery forgets a cancelled consumer when a
//! worker restarts, so celeriac remembers each pause (in memory: who, since
//! when, which workers) and a keeper task cancels the queue again on any
//! worker found consuming it, until the queue is resumed.
//!
//! Pause, resume and the keeper's rounds run one at a time (an async lock):
//! a keeper round that read `active_queues` before a resume must not cancel
//! the queue after it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use api::control::{Command, ControlResponse};
use parking_lot::Mutex;
use prometheus::{IntGaugeVec, Opts};
use serde::Serialize;
use serde_json::{json, Value};

use super::action::Controller;
use super::command::Prepared;
use super::judge::{Judge, Text, Verdict};
use super::Ops;
use crate::audit::Audit;
use crate::auth::{Principal, Role};
use crate::clock;
use crate::mailbox::{Mailbox, Request, Target};

/// How often the keeper looks for workers consuming a paused queue (only
/// while a queue is paused): one `active_queues` broadcast per round.
pub const KEEPER_INTERVAL: Duration = Duration::from_secs(3);

/// Idle timeout of the `active_queues` broadcast, which always waits it
/// out (see [`active_queues`]); a worker slower than this is found by the
/// next keeper round.
pub const ACTIVE_QUEUES_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle timeout of `cancel_consumer`/`add_consumer`: they address named
/// workers, so collection ends as soon as all of them answered.
pub const CONSUMER_REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Who the keeper's own `cancel_consumer` commands are recorded as.
pub const KEEPER: &str = "celeriac";

/// The exchange and routing key a worker declared for the queue, so that
/// `add_consumer` restores the same binding.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Binding {
    pub exchange: Option<String>,
    pub exchange_type: Option<String>,
    pub routing_key: Option<String>,
}

/// One paused queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Paused {
    pub queue: String,
    /// The user who paused it.
    pub by: String,
    /// Unix seconds.
    pub since: f64,
    /// Workers whose consumer of the queue celeriac cancelled: resume
    /// adds it back to them, and only to them.
    pub workers: BTreeSet<String>,
    #[serde(skip)]
    pub binding: Binding,
}

/// The paused queues, and `celeriac_queue_paused`.
pub struct Pauses {
    queues: Mutex<BTreeMap<String, Paused>>,
    /// 1 per paused queue.
    pub gauge: IntGaugeVec,
    serial: tokio::sync::Mutex<()>,
}

impl Default for Pauses {
    fn default() -> Self {
        Self::new()
    }
}

impl Pauses {
    pub fn new() -> Pauses {
        let gauge = IntGaugeVec::new(
            Opts::new(
                "celeriac_queue_paused",
                "1 while celeriac keeps the queue paused (its consumers cancelled)",
            ),
            &["queue_name"],
        )
        .expect("valid metric");
        Pauses {
            queues: Mutex::new(BTreeMap::new()),
            gauge,
            serial: tokio::sync::Mutex::new(()),
        }
    }

    /// The paused queues, by name.
    pub fn list(&self) -> Vec<Paused> {
        self.queues.lock().values().cloned().collect()
    }

    pub fn is_paused(&self, queue: &str) -> bool {
        self.queues.lock().contains_key(queue)
    }

    fn names(&self) -> BTreeSet<String> {
        self.queues.lock().keys().cloned().collect()
    }

    /// Records a pause; a queue paused again keeps its first `by`/`since`
    /// and gains the workers.
    fn insert(&self, p: Paused) {
        self.gauge.with_label_values(&[&p.queue]).set(1);
        let mut queues = self.queues.lock();
        match queues.get_mut(&p.queue) {
            Some(old) => {
                old.workers.extend(p.workers);
                if old.binding == Binding::default() {
                    old.binding = p.binding;
                }
            }
            None => {
                queues.insert(p.queue.clone(), p);
            }
        }
    }

    fn remove(&self, queue: &str) -> Option<Paused> {
        let p = self.queues.lock().remove(queue);
        if p.is_some() {
            let _ = self.gauge.remove_label_values(&[queue]);
        }
        p
    }

    fn add_worker(&self, queue: &str, worker: &str) {
        if let Some(p) = self.queues.lock().get_mut(queue) {
            p.workers.insert(worker.to_string());
        }
    }
}

/// The queue names in one worker's `active_queues` reply.
fn queue_names(reply: &Value) -> impl Iterator<Item = &str> {
    reply
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|q| q.get("name")?.as_str())
}

/// The workers whose `active_queues` reply lists `queue`, and the binding
/// the first of them declared.
pub fn consumers(replies: &BTreeMap<String, Value>, queue: &str) -> (Vec<String>, Binding) {
    let mut workers = Vec::new();
    let mut binding = None;
    for (worker, reply) in replies {
        let Some(q) = reply
            .as_array()
            .into_iter()
            .flatten()
            .find(|q| q.get("name").and_then(Value::as_str) == Some(queue))
        else {
            continue;
        };
        workers.push(worker.clone());
        binding.get_or_insert_with(|| {
            let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
            Binding {
                exchange: text(q.pointer("/exchange/name")),
                exchange_type: text(q.pointer("/exchange/type")),
                routing_key: text(q.get("routing_key")),
            }
        });
    }
    (workers, binding.unwrap_or_default())
}

/// The (worker, queue) pairs where a worker consumes a paused queue.
pub fn strays(
    replies: &BTreeMap<String, Value>,
    paused: &BTreeSet<String>,
) -> Vec<(String, String)> {
    replies
        .iter()
        .flat_map(|(w, reply)| {
            queue_names(reply)
                .filter(|q| paused.contains(*q))
                .map(|q| (w.clone(), q.to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn cancel(queue: &str, workers: Vec<String>) -> Prepared {
    let request = Request::new(
        Command::CancelConsumer.as_str(),
        json!({"queue": queue}),
        Target::Workers(workers),
    )
    .timeout(CONSUMER_REPLY_TIMEOUT);
    Prepared {
        request,
        judge: Judge::All {
            ok: format!("Paused queue '{queue}'"),
            fail: Text::new("Failed to pause queue '{queue}': {error}").with("queue", queue),
        },
    }
}

fn add(queue: &str, binding: &Binding, workers: Vec<String>) -> Prepared {
    let mut arguments = json!({"queue": queue});
    if let Some(e) = &binding.exchange {
        arguments["exchange"] = json!(e);
    }
    if let Some(t) = &binding.exchange_type {
        arguments["exchange_type"] = json!(t);
    }
    if let Some(k) = &binding.routing_key {
        arguments["routing_key"] = json!(k);
    }
    Prepared {
        request: Request::new(
            Command::AddConsumer.as_str(),
            arguments,
            Target::Workers(workers),
        )
        .timeout(CONSUMER_REPLY_TIMEOUT),
        judge: Judge::All {
            ok: format!("Resumed queue '{queue}'"),
            fail: Text::new("Failed to resume queue '{queue}': {error}").with("queue", queue),
        },
    }
}

/// What the answer says beyond the replies.
pub const PAUSE_NOTE: &str = "celeriac cancels the queue again on any worker that starts \
consuming it (a restarted worker, a new one) until it is resumed; pauses are kept in memory \
only: a celeriac restart forgets them";

/// Every worker's `active_queues`. Collection runs to the idle timeout
/// rather than ending once the live workers celeriac knows have answered:
/// a worker it has not heard from yet (just started, or sending no events)
/// consumes queues too.
async fn active_queues<M: Mailbox>(
    mailbox: &M,
) -> Result<BTreeMap<String, Value>, crate::mailbox::ControlError> {
    let request = Request::new(Command::ActiveQueues.as_str(), json!({}), Target::All)
        .timeout(ACTIVE_QUEUES_TIMEOUT);
    Ok(mailbox.call(&request).await?.replies)
}

fn unavailable(e: impl std::fmt::Display) -> (Verdict, ControlResponse) {
    (
        Verdict::Unavailable,
        ControlResponse {
            error: Some(format!("the broker is unavailable: {e}")),
            ..ControlResponse::default()
        },
    )
}

impl<M: Mailbox> Controller<'_, M> {
    /// Pauses `queue`: `cancel_consumer` to every worker consuming it now,
    /// and the pause remembered (unless the broker could not be reached).
    pub async fn pause(&self, pauses: &Pauses, queue: &str) -> (Verdict, ControlResponse) {
        let _serial = pauses.serial.lock().await;
        let replies = match active_queues(self.mailbox).await {
            Ok(r) => r,
            Err(e) => return unavailable(e),
        };
        let (workers, binding) = consumers(&replies, queue);
        let (verdict, mut body) = if workers.is_empty() {
            let body = ControlResponse {
                message: Some(format!("Paused queue '{queue}': no worker consumes it now")),
                ..ControlResponse::default()
            };
            let mut entry =
                self.who
                    .audit_entry((self.clock)(), "pause_queue", json!({"queue": queue}));
            entry.status = 200;
            entry.target = json!([]);
            self.audit.record(entry);
            (Verdict::Ok, body)
        } else {
            self.act(cancel(queue, workers.clone())).await
        };
        if verdict != Verdict::Unavailable {
            pauses.insert(Paused {
                queue: queue.to_string(),
                by: self.who.name.clone(),
                since: (self.clock)(),
                workers: workers.into_iter().collect(),
                binding,
            });
            body.note = Some(PAUSE_NOTE.into());
        }
        (verdict, body)
    }

    /// Resumes `queue`: `add_consumer` to the workers celeriac paused it
    /// on, and the pause forgotten. `None` when the queue is not paused.
    pub async fn resume(&self, pauses: &Pauses, queue: &str) -> Option<(Verdict, ControlResponse)> {
        let _serial = pauses.serial.lock().await;
        let paused = pauses.remove(queue)?;
        let workers: Vec<String> = paused.workers.iter().cloned().collect();
        if workers.is_empty() {
            let mut entry =
                self.who
                    .audit_entry((self.clock)(), "resume_queue", json!({"queue": queue}));
            entry.status = 200;
            entry.target = json!([]);
            self.audit.record(entry);
            return Some((
                Verdict::Ok,
                ControlResponse {
                    message: Some(format!(
                        "Resumed queue '{queue}': no worker had it cancelled"
                    )),
                    ..ControlResponse::default()
                },
            ));
        }
        let (verdict, body) = self.act(add(queue, &paused.binding, workers)).await;
        if verdict == Verdict::Unavailable {
            // Nothing reached the workers: the queue is still paused.
            pauses.insert(paused);
        }
        Some((verdict, body))
    }
}

/// One keeper round: cancels every paused queue on each worker found
/// consuming it, recorded in the audit log as [`KEEPER`]. Answers how many
/// consumers it cancelled.
pub async fn keep<M: Mailbox>(
    mailbox: &M,
    audit: &Audit,
    pauses: &Pauses,
) -> Result<usize, crate::mailbox::ControlError> {
    if pauses.names().is_empty() {
        return Ok(0);
    }
    let _serial = pauses.serial.lock().await;
    let replies = active_queues(mailbox).await?;
    // Read after the broadcast: a queue resumed meanwhile is left alone.
    let found = strays(&replies, &pauses.names());
    let who = Principal::new(KEEPER, Role::Operator);
    let c = Controller {
        mailbox,
        audit,
        who: &who,
        clock: clock::now,
    };
    for (worker, queue) in &found {
        let (verdict, _) = c.act(cancel(queue, vec![worker.clone()])).await;
        tracing::info!(%worker, %queue, ?verdict, "re-applied a queue pause to a worker consuming it");
        if verdict.is_ok() {
            pauses.add_worker(queue, worker);
        }
    }
    Ok(found.len())
}

/// Runs [`keep`] every [`KEEPER_INTERVAL`] until shutdown, on its own task
/// (never the state owner's).
pub async fn run_keeper<M: Mailbox>(ops: Arc<Ops<M>>, mut shutdown: crate::shutdown::Shutdown) {
    let mut ticker = tokio::time::interval(KEEPER_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.fired() => return,
            _ = ticker.tick() => {}
        }
        if ops.pauses.names().is_empty() {
            continue;
        }
        if let Err(e) = keep(&ops.pidbox, &ops.audit, &ops.pauses).await {
            tracing::debug!(error = %e, "queue pause keeper round failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replies() -> BTreeMap<String, Value> {
        [
            (
                "a@h".to_string(),
                json!([{"name": "celery", "exchange": {"name": "celery", "type": "direct"}, "routing_key": "celery"},
                       {"name": "work", "exchange": {"name": "jobs", "type": "topic"}, "routing_key": "work.#"}]),
            ),
            ("b@h".to_string(), json!([{"name": "work"}])),
            ("c@h".to_string(), json!({"error": "nope"})),
        ]
        .into()
    }

    #[test]
    fn consumers_come_from_active_queues_with_the_first_binding() {
        let (workers, binding) = consumers(&replies(), "work");
        assert_eq!(workers, ["a@h", "b@h"]);
        assert_eq!(
            binding,
            Binding {
                exchange: Some("jobs".into()),
                exchange_type: Some("topic".into()),
                routing_key: Some("work.#".into()),
            }
        );
        assert_eq!(consumers(&replies(), "other"), (vec![], Binding::default()));
    }

    #[test]
    fn strays_are_workers_consuming_a_paused_queue() {
        let paused: BTreeSet<String> = ["work".to_string(), "gone".to_string()].into();
        assert_eq!(
            strays(&replies(), &paused),
            [
                ("a@h".to_string(), "work".to_string()),
                ("b@h".to_string(), "work".to_string())
            ]
        );
    }

    #[test]
    fn add_consumer_restores_the_binding() {
        let b = Binding {
            exchange: Some("jobs".into()),
            exchange_type: Some("topic".into()),
            routing_key: Some("work.#".into()),
        };
        let p = add("work", &b, vec!["a@h".into()]);
        assert_eq!(p.request.method, "add_consumer");
        assert_eq!(
            Value::Object(p.request.arguments),
            json!({"queue": "work", "exchange": "jobs", "exchange_type": "topic", "routing_key": "work.#"})
        );
        assert_eq!(p.request.target, Target::Workers(vec!["a@h".into()]));
    }

    /// Answers `active_queues` from a table of what each worker consumes,
    /// and applies `cancel_consumer`/`add_consumer` to it, as workers do.
    struct Cluster {
        consuming: parking_lot::Mutex<BTreeMap<String, BTreeSet<String>>>,
        down: std::sync::atomic::AtomicBool,
        sent: parking_lot::Mutex<Vec<Request>>,
    }

    impl Cluster {
        fn new(workers: &[(&str, &[&str])]) -> Cluster {
            Cluster {
                consuming: parking_lot::Mutex::new(
                    workers
                        .iter()
                        .map(|(w, qs)| (w.to_string(), qs.iter().map(|q| q.to_string()).collect()))
                        .collect(),
                ),
                down: Default::default(),
                sent: Default::default(),
            }
        }

        fn consumes(&self, worker: &str, queue: &str) -> bool {
            self.consuming.lock()[worker].contains(queue)
        }
    }

    impl Mailbox for Cluster {
        fn call(
            &self,
            request: &Request,
        ) -> impl std::future::Future<
            Output = Result<crate::mailbox::Outcome, crate::mailbox::ControlError>,
        > + Send {
            use std::sync::atomic::Ordering;
            self.sent.lock().push(request.clone());
            let r = if self.down.load(Ordering::SeqCst) {
                Err(crate::mailbox::ControlError::Unavailable("refused".into()))
            } else {
                let mut consuming = self.consuming.lock();
                let targets: Vec<String> = match &request.target {
                    Target::Workers(list) => list.clone(),
                    _ => consuming.keys().cloned().collect(),
                };
                let queue = request
                    .arguments
                    .get("queue")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let mut replies = BTreeMap::new();
                for w in targets {
                    let Some(qs) = consuming.get_mut(&w) else {
                        continue;
                    };
                    let reply = match request.method.as_str() {
                        "active_queues" => {
                            json!(qs.iter().map(|q| json!({"name": q})).collect::<Vec<_>>())
                        }
                        "cancel_consumer" => {
                            qs.remove(queue);
                            json!({"ok": format!("no longer consuming from {queue}")})
                        }
                        "add_consumer" => {
                            qs.insert(queue.to_string());
                            json!({"ok": format!("add consumer {queue}")})
                        }
                        other => panic!("unexpected {other}"),
                    };
                    replies.insert(w, reply);
                }
                Ok(crate::mailbox::Outcome {
                    replies,
                    no_reply: vec![],
                })
            };
            std::future::ready(r)
        }
    }

    #[tokio::test]
    async fn a_pause_is_kept_on_a_worker_that_consumes_again_until_resumed() {
        let cluster = Cluster::new(&[
            ("a@h", &["work", "celery"]),
            ("b@h", &["work"]),
            ("c@h", &["celery"]),
        ]);
        let (audit, pauses) = (Audit::new(), Pauses::new());
        let ann = Principal::new("ann", Role::Operator);
        let c = Controller {
            mailbox: &cluster,
            audit: &audit,
            who: &ann,
            clock: || 5.0,
        };

        let (v, body) = c.pause(&pauses, "work").await;
        assert_eq!(v, Verdict::Ok, "{body:?}");
        assert_eq!(body.replies.keys().collect::<Vec<_>>(), ["a@h", "b@h"]);
        assert!(!cluster.consumes("a@h", "work") && cluster.consumes("a@h", "celery"));
        assert_eq!(pauses.list()[0].by, "ann");
        assert_eq!(audit.recent(1)[0].command, "cancel_consumer");

        // Nothing to do while the workers stay as they are.
        assert_eq!(keep(&cluster, &audit, &pauses).await.unwrap(), 0);
        // b restarts, and c is told to consume it: both are cancelled again.
        cluster
            .consuming
            .lock()
            .get_mut("b@h")
            .unwrap()
            .insert("work".into());
        cluster
            .consuming
            .lock()
            .get_mut("c@h")
            .unwrap()
            .insert("work".into());
        assert_eq!(keep(&cluster, &audit, &pauses).await.unwrap(), 2);
        assert!(!cluster.consumes("b@h", "work") && !cluster.consumes("c@h", "work"));
        assert_eq!(audit.recent(1)[0].user, KEEPER);

        // A resume the broker does not carry leaves the queue paused.
        cluster
            .down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let (v, _) = c.resume(&pauses, "work").await.unwrap();
        assert_eq!(v, Verdict::Unavailable);
        assert!(pauses.is_paused("work"));
        cluster
            .down
            .store(false, std::sync::atomic::Ordering::SeqCst);

        // Resume reaches every worker the pause was applied to, c included.
        let (v, body) = c.resume(&pauses, "work").await.unwrap();
        assert_eq!(v, Verdict::Ok, "{body:?}");
        for w in ["a@h", "b@h", "c@h"] {
            assert!(cluster.consumes(w, "work"), "{w}");
        }
        assert!(!pauses.is_paused("work"));
        assert!(c.resume(&pauses, "work").await.is_none());
        assert_eq!(keep(&cluster, &audit, &pauses).await.unwrap(), 0);

        // A queue nobody consumes is still held paused, and audited.
        let (v, body) = c.pause(&pauses, "later").await;
        assert_eq!((v, body.replies.len()), (Verdict::Ok, 0));
        assert_eq!(audit.recent(1)[0].command, "pause_queue");
        cluster
            .consuming
            .lock()
            .get_mut("c@h")
            .unwrap()
            .insert("later".into());
        assert_eq!(keep(&cluster, &audit, &pauses).await.unwrap(), 1);
        assert!(!cluster.consumes("c@h", "later"));
    }

    #[test]
    fn the_gauge_follows_pauses() {
        let pauses = Pauses::new();
        pauses.insert(Paused {
            queue: "work".into(),
            by: "ann".into(),
            since: 1.0,
            workers: BTreeSet::new(),
            binding: Binding::default(),
        });
        pauses.add_worker("work", "a@h");
        assert!(pauses.is_paused("work"));
        assert_eq!(pauses.gauge.with_label_values(&["work"]).get(), 1);
        assert_eq!(pauses.list()[0].workers.len(), 1);
        assert!(pauses.remove("work").is_some());
        assert!(pauses.remove("work").is_none());
        assert!(pauses.list().is_empty());
        let families = {
            let r = prometheus::Registry::new();
            r.register(Box::new(pauses.gauge.clone())).unwrap();
            r.gather()
        };
        assert!(families.iter().all(|f| f.get_metric().is_empty()));
    }
}
