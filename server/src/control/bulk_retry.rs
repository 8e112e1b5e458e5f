//! Bulk retry (`POST /api/tasks/retry`): every finished task matching
//! `/api/tasks`'s filters re-run as the single retry does
//! ([`Submitter::rerun_message`], [`Submitter::publish_rerun`]), with a
//! preflight that publishes nothing. The run is capped per request
//! ([`MAX_BULK_RETRY`]) and paced ([`PUBLISHES_PER_SECOND`]) so that a
//! broad filter cannot flood the broker.

use std::time::Duration;

use api::control::AuditEntry;
use serde::Serialize;
use serde_json::json;

use super::bulk::Selection;
use super::form::{self, Pairs, Rejection};
use crate::auth::Principal;
use crate::query::TaskQuery;
use crate::state::TaskView;
use crate::submit::{Original, PublishError, Publisher, Rerun, Submitter, TaskMessage};

/// Most tasks one request re-runs, and the default `limit`.
pub const MAX_BULK_RETRY: usize = 1000;
/// Publishing pace of a bulk retry.
pub const PUBLISHES_PER_SECOND: u32 = 100;

/// A checked bulk retry request.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkRetry {
    pub dry_run: bool,
    /// How many ready tasks the real run re-runs, in `/api/tasks` order.
    pub limit: usize,
    /// The filter parameters as given, for the audit log.
    pub filters: Vec<(String, String)>,
    pub query: TaskQuery,
}

/// A task the preflight will not re-run, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Blocked {
    pub id: String,
    pub reason: String,
}

/// What the filters select: the re-runs ready to publish (original id and
/// message) and the tasks that cannot be re-run.
#[derive(Debug, Default)]
pub struct Preflight {
    pub ready: Vec<(String, TaskMessage)>,
    pub blocked: Vec<Blocked>,
}

impl Preflight {
    pub fn count(&self) -> usize {
        self.ready.len() + self.blocked.len()
    }
}

/// A re-run that went out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retried {
    pub id: String,
    #[serde(rename = "task-id")]
    pub task_id: String,
}

/// What the real run did.
#[derive(Debug, Default)]
pub struct Run {
    pub retried: Vec<Retried>,
    /// Ready re-runs beyond `limit`, left for another request.
    pub left: usize,
    /// Why publishing stopped before the end.
    pub failure: Option<PublishError>,
}

impl BulkRetry {
    /// `dry_run`, `limit`, the filters; at least one filter or `all=true`.
    pub fn parse(params: &Pairs) -> Result<BulkRetry, Rejection> {
        let dry_run = form::flag(params, "dry_run")?;
        let limit: usize = form::number(params, "limit")?.unwrap_or(MAX_BULK_RETRY);
        if limit == 0 || limit > MAX_BULK_RETRY {
            return Err(Rejection::param(
                "limit",
                format!("limit must be between 1 and {MAX_BULK_RETRY}"),
            ));
        }
        let Selection { filters, query } = Selection::parse(params)?;
        Ok(BulkRetry {
            dry_run,
            limit,
            filters,
            query,
        })
    }

    /// Builds the re-run of every selected task, in `/api/tasks` order;
    /// unfinished tasks and those whose arguments cannot be rebuilt are
    /// blocked with the reason the single retry would give.
    pub fn preflight<'a, P: Publisher>(
        &self,
        tasks: impl Iterator<Item = TaskView<'a>>,
        submitter: &Submitter<P>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Preflight {
        let mut p = Preflight::default();
        let rerun = Rerun::default();
        for t in self.query.run(tasks) {
            let id = t.uuid.to_string();
            if !t.state.is_ready() {
                p.blocked.push(Blocked {
                    id,
                    reason: format!(
                        "the task is {}: only finished tasks are re-run",
                        t.state.as_str()
                    ),
                });
                continue;
            }
            match submitter.rerun_message(&Original::of_view(&t), &rerun, now) {
                Ok(m) => p.ready.push((id, m)),
                Err(e) => p.blocked.push(Blocked {
                    id,
                    reason: e.to_string(),
                }),
            }
        }
        p
    }

    /// Publishes the first `limit` re-runs at [`PUBLISHES_PER_SECOND`],
    /// stopping at the first the broker does not take.
    pub async fn run<P: Publisher>(
        &self,
        ready: Vec<(String, TaskMessage)>,
        submitter: &Submitter<P>,
    ) -> Run {
        let mut run = Run {
            left: ready.len().saturating_sub(self.limit),
            ..Run::default()
        };
        let mut pace = tokio::time::interval(Duration::from_secs(1) / PUBLISHES_PER_SECOND);
        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for (id, message) in ready.into_iter().take(self.limit) {
            pace.tick().await;
            match submitter.publish_rerun(&id, &message).await {
                Ok(()) => run.retried.push(Retried {
                    id,
                    task_id: message.id,
                }),
                Err(e) => {
                    run.failure = Some(e);
                    break;
                }
            }
        }
        run
    }

    /// The one audit entry of a real run.
    pub fn audit_entry(
        &self,
        who: &Principal,
        preflight_count: usize,
        blocked: usize,
        run: &Run,
        status: u16,
        now: f64,
    ) -> AuditEntry {
        let arguments = json!({
            "filters": self.filters.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "limit": self.limit,
            "count": preflight_count,
            "blocked": blocked,
            "retried": run.retried.len(),
        });
        AuditEntry {
            target: json!("tasks"),
            status,
            replies: json!({
                "retried": run.retried,
                "error": run.failure.as_ref().map(ToString::to_string),
            }),
            ..who.audit_entry(now, "bulk_retry", arguments)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use parking_lot::Mutex;

    use super::*;
    use crate::events::{Event, EventKind};
    use crate::state::{Limits, State};
    use crate::submit::SubmitArgs;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[derive(Default)]
    struct Fake {
        sent: Mutex<Vec<String>>,
        fail_after: Option<usize>,
    }

    impl Publisher for Fake {
        fn publish(
            &self,
            message: &TaskMessage,
        ) -> impl Future<Output = Result<(), PublishError>> + Send {
            let mut sent = self.sent.lock();
            let r = if self.fail_after.is_some_and(|n| sent.len() >= n) {
                Err(PublishError::Unavailable("closed".into()))
            } else {
                sent.push(message.id.clone());
                Ok(())
            };
            std::future::ready(r)
        }
    }

    fn submitter(fake: Fake) -> Submitter<Fake> {
        let args = SubmitArgs {
            task_queue: "celery".into(),
        };
        Submitter::new(fake, &args, "h")
    }

    fn event(kind: EventKind, uuid: &str, ts: f64) -> Event {
        Event {
            kind,
            hostname: "w@h".into(),
            timestamp: ts,
            uuid: Some(uuid.into()),
            ..Event::default()
        }
    }

    /// Three failures of `tasks.f` (one with a truncated repr), one still
    /// running.
    fn state() -> State {
        let mut s = State::new(Limits::default());
        for (i, (id, args)) in [
            ("a", "(1,)"),
            ("b", "('x...',"),
            ("c", "(3,)"),
            ("d", "(4,)"),
        ]
        .iter()
        .enumerate()
        {
            let ts = 1.0 + i as f64;
            let mut received = event(EventKind::TaskReceived, id, ts);
            received.name = Some("tasks.f".into());
            received.args = Some(args.to_string());
            received.kwargs = Some("{}".into());
            s.apply(&received, ts);
            if *id != "d" {
                s.apply(&event(EventKind::TaskFailed, id, ts + 0.5), ts + 0.5);
            }
        }
        s
    }

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn parameters_are_checked() {
        assert!(BulkRetry::parse(&pairs(&[])).is_err());
        let b = BulkRetry::parse(&pairs(&[("taskname", "tasks.f")])).unwrap();
        assert_eq!((b.limit, b.dry_run), (MAX_BULK_RETRY, false));
        for bad in ["0", "1001", "x"] {
            let e = BulkRetry::parse(&pairs(&[("taskname", "t"), ("limit", bad)])).unwrap_err();
            assert!(
                matches!(e, Rejection::Param { ref parameter, .. } if parameter == "limit"),
                "{bad}: {e}"
            );
        }
        assert!(
            BulkRetry::parse(&pairs(&[("all", "true"), ("dry_run", "1")]))
                .unwrap()
                .dry_run
        );
    }

    #[tokio::test]
    async fn preflight_blocks_what_cannot_be_rebuilt_and_the_run_is_capped() {
        let s = state();
        let sub = submitter(Fake::default());
        let b = BulkRetry::parse(&pairs(&[("taskname", "tasks.f"), ("limit", "1")])).unwrap();
        let p = b.preflight(s.tasks(), &sub, now());
        assert_eq!(p.count(), 4);
        let mut ready: Vec<&str> = p.ready.iter().map(|(id, _)| id.as_str()).collect();
        ready.sort();
        assert_eq!(ready, ["a", "c"]);
        let blocked: Vec<(&str, &str)> = p
            .blocked
            .iter()
            .map(|b| (b.id.as_str(), b.reason.as_str()))
            .collect();
        assert!(
            blocked
                .iter()
                .any(|(id, r)| *id == "b" && r.contains("args")),
            "{blocked:?}"
        );
        assert!(
            blocked
                .iter()
                .any(|(id, r)| *id == "d" && r.contains("RECEIVED")),
            "{blocked:?}"
        );
        let first = p.ready[0].0.clone();
        let run = b.run(p.ready, &sub).await;
        assert_eq!(run.retried.len(), 1);
        assert_eq!(run.left, 1);
        assert_eq!(run.retried[0].id, first);
        assert_eq!(*sub.publisher.sent.lock(), [run.retried[0].task_id.clone()]);
        assert_eq!(
            sub.links.reruns(&first),
            vec![run.retried[0].task_id.clone()]
        );
    }

    #[tokio::test]
    async fn the_run_stops_at_the_first_refused_publish() {
        let s = state();
        let sub = submitter(Fake {
            fail_after: Some(1),
            ..Fake::default()
        });
        let b = BulkRetry::parse(&pairs(&[("state", "FAILURE")])).unwrap();
        let p = b.preflight(s.tasks(), &sub, now());
        let run = b.run(p.ready, &sub).await;
        assert_eq!(run.retried.len(), 1);
        assert!(matches!(run.failure, Some(PublishError::Unavailable(_))));
        let e = b.audit_entry(&Principal::anonymous(), 3, 1, &run, 503, 7.0);
        assert_eq!((e.command.as_str(), e.status), ("bulk_retry", 503));
        assert_eq!(e.arguments["retried"], 1);
    }
}
