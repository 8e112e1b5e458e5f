//! Bulk revoke (`POST /api/tasks/revoke`): every unfinished task matching
//! `/api/tasks`'s filters, sent as `revoke` messages of [`BULK_CHUNK`] ids,
//! with a dry run that only counts.

use std::collections::BTreeMap;

use api::control::{AuditEntry, BulkRevokeResponse, Command};
use serde_json::{json, Value};

use super::command::Roster;
use super::form::{self, Pairs, Rejection};
use super::judge::Verdict;
use crate::auth::Principal;
use crate::mailbox::{ControlError, Outcome, Request};
use crate::query::TaskQuery;
use crate::state::TaskView;

/// Most tasks one bulk revoke may address.
pub const MAX_BULK_REVOKE: usize = 10_000;
/// Ids per `revoke` message in a bulk revoke.
pub const BULK_CHUNK: usize = 500;

/// The filters of `/api/tasks` a bulk action reads; the others (`limit`,
/// `sort_by`, ...) are ignored.
const FILTERS: [&str; 6] = [
    "taskname",
    "state",
    "workername",
    "received_start",
    "received_end",
    "search",
];

/// The tasks a bulk action addresses: `/api/tasks`'s filters, at least one
/// of them unless `all=true`, so a forgotten filter never means "every task".
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// The filter parameters as given, for the audit log.
    pub filters: Vec<(String, String)>,
    pub query: TaskQuery,
}

impl Selection {
    pub fn parse(params: &Pairs) -> Result<Selection, Rejection> {
        let all = form::flag(params, "all")?;
        let filters: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| FILTERS.contains(&k.as_str()))
            .cloned()
            .collect();
        let query = TaskQuery::from_params(&filters)?;
        let filtered = query.taskname.is_some()
            || query.state.is_some()
            || query.workername.is_some()
            || query.received_start.is_some()
            || query.received_end.is_some()
            || query.search.is_some();
        if !filtered && !all {
            return Err(Rejection::param(
                "taskname",
                "give at least one filter (taskname, state, workername, received_start, \
                 received_end, search), or all=true",
            ));
        }
        Ok(Selection { filters, query })
    }
}

/// A checked bulk revoke request.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkRevoke {
    pub dry_run: bool,
    pub terminate: bool,
    pub signal: String,
    /// The filter parameters as given, for the audit log.
    pub filters: Vec<(String, String)>,
    pub query: TaskQuery,
}

impl BulkRevoke {
    /// `dry_run`, `terminate`, `signal`, the filters; at least one filter
    /// or `all=true` is required.
    pub fn parse(params: &Pairs) -> Result<BulkRevoke, Rejection> {
        let dry_run = form::flag(params, "dry_run")?;
        let terminate = form::flag(params, "terminate")?;
        let signal = form::text_or(params, "signal", "SIGTERM");
        let Selection { filters, query } = Selection::parse(params)?;
        Ok(BulkRevoke {
            dry_run,
            terminate,
            signal,
            filters,
            query,
        })
    }

    /// The ids of the unfinished tasks the filters select, in `/api/tasks`
    /// order; refused beyond [`MAX_BULK_REVOKE`], dry run or not.
    pub fn select<'a>(
        &self,
        tasks: impl Iterator<Item = TaskView<'a>>,
    ) -> Result<Vec<String>, Rejection> {
        let ids: Vec<String> = self
            .query
            .run(tasks)
            .into_iter()
            .filter(|t| !t.state.is_ready())
            .map(|t| t.uuid.to_string())
            .collect();
        if ids.len() > MAX_BULK_REVOKE {
            return Err(Rejection::TooMany(ids.len()));
        }
        Ok(ids)
    }

    /// The dry run's answer: what would be revoked.
    pub fn dry_run_answer(ids: Vec<String>) -> BulkRevokeResponse {
        BulkRevokeResponse {
            dry_run: true,
            count: ids.len() as u64,
            ids,
            ..BulkRevokeResponse::default()
        }
    }

    /// One `revoke` per [`BULK_CHUNK`] ids, to every worker, expecting
    /// the live ones.
    pub fn requests(&self, ids: &[String], roster: &Roster) -> Vec<Request> {
        ids.chunks(BULK_CHUNK)
            .map(|chunk| {
                roster.broadcast(
                    Command::Revoke,
                    json!({"task_id": chunk, "terminate": self.terminate, "signal": self.signal}),
                )
            })
            .collect()
    }

    /// What the audit log keeps of it.
    pub fn audit_entry(
        &self,
        who: &Principal,
        ids: &[String],
        collected: &Collected,
        now: f64,
    ) -> AuditEntry {
        let arguments = json!({
            "filters": self.filters.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "terminate": self.terminate,
            "signal": self.signal,
            "count": ids.len(),
            "task_ids": ids,
        });
        AuditEntry {
            target: json!("all"),
            status: collected.verdict().status(),
            replies: json!(collected.replies),
            no_reply: collected.no_reply.clone(),
            ..who.audit_entry(now, "bulk_revoke", arguments)
        }
    }
}

/// The replies to a bulk revoke's messages, gathered as they come.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Collected {
    /// Each worker's replies, one per message it answered.
    pub replies: BTreeMap<String, Vec<Value>>,
    /// Workers that missed at least one message, once each.
    pub no_reply: Vec<String>,
    /// Why sending stopped: the messages after it were not sent.
    pub failure: Option<String>,
}

impl Collected {
    /// Adds one message's result; false once sending should stop.
    pub fn add(&mut self, result: Result<Outcome, ControlError>) -> bool {
        match result {
            Ok(o) => {
                for (w, r) in o.replies {
                    self.replies.entry(w).or_default().push(r);
                }
                for w in o.no_reply {
                    if !self.no_reply.contains(&w) {
                        self.no_reply.push(w);
                    }
                }
                true
            }
            Err(e) => {
                self.failure = Some(e.to_string());
                false
            }
        }
    }

    pub fn verdict(&self) -> Verdict {
        if self.failure.is_some() {
            Verdict::Unavailable
        } else {
            Verdict::Ok
        }
    }

    /// The answer, once every message went out (or one failed).
    pub fn answer(self, ids: Vec<String>) -> BulkRevokeResponse {
        let count = ids.len();
        BulkRevokeResponse {
            dry_run: false,
            count: count as u64,
            ids,
            message: Some(match self.failure {
                Some(e) => format!("revoke failed: {e}"),
                None => format!("Revoked {count} tasks"),
            }),
            replies: Some(self.replies),
            no_reply: Some(self.no_reply),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::form::pairs;
    use crate::events::fixtures;
    use crate::state::{Limits, State};

    /// The scenarios' events, only the first `take` of each.
    fn state_of(scenarios: &[(&str, usize)]) -> State {
        let mut state = State::new(Limits::default());
        for (name, take) in scenarios {
            for body in fixtures::scenario(name).iter().take(*take) {
                for event in fixtures::decode(body) {
                    state.apply(&event, 1.0);
                }
            }
        }
        state
    }

    #[test]
    fn a_filter_or_all_is_required() {
        let e = BulkRevoke::parse(&pairs(&[("dry_run", "true")])).unwrap_err();
        assert_eq!(e.parameter(), Some("taskname"));
        let e = BulkRevoke::parse(&pairs(&[("limit", "5"), ("sort_by", "name")])).unwrap_err();
        assert_eq!(e.parameter(), Some("taskname"), "paging is not a filter");
        let b = BulkRevoke::parse(&pairs(&[("all", "1"), ("signal", "SIGKILL")])).unwrap();
        assert_eq!((b.signal.as_str(), b.dry_run), ("SIGKILL", false));
        let b = BulkRevoke::parse(&pairs(&[("state", "RECEIVED"), ("limit", "1")])).unwrap();
        assert_eq!(b.filters, pairs(&[("state", "RECEIVED")]));
        assert_eq!(b.signal, "SIGTERM");
        let e = BulkRevoke::parse(&pairs(&[("received_start", "yesterday")])).unwrap_err();
        assert_eq!(e.parameter(), Some("received_start"));
        let e =
            BulkRevoke::parse(&pairs(&[("taskname", "t"), ("dry_run", "perhaps")])).unwrap_err();
        assert_eq!(e.parameter(), Some("dry_run"));
    }

    #[test]
    fn only_unfinished_tasks_are_selected() {
        // `countdown` stops at task-received: one unfinished task.
        let state = state_of(&[("success", 99), ("failure", 99), ("countdown", 2)]);
        let all = BulkRevoke::parse(&pairs(&[("all", "true")])).unwrap();
        let finished: Vec<String> = state
            .tasks()
            .filter(|t| t.state.is_ready())
            .map(|t| t.uuid.to_string())
            .collect();
        assert!(!finished.is_empty(), "the fixtures hold finished tasks");
        let ids = all.select(state.tasks()).unwrap();
        assert!(ids.iter().all(|id| !finished.contains(id)), "{ids:?}");
        let unfinished = state.tasks().filter(|t| !t.state.is_ready()).count();
        assert_eq!(ids.len(), unfinished);
        assert!(!ids.is_empty(), "the fixtures hold unfinished tasks");
        let answer = BulkRevoke::dry_run_answer(ids.clone());
        assert_eq!(
            serde_json::to_value(&answer).unwrap(),
            json!({"dry_run": true, "count": ids.len(), "ids": ids})
        );
    }

    #[test]
    fn ids_go_out_in_chunks_to_every_live_worker() {
        let b = BulkRevoke::parse(&pairs(&[("all", "true"), ("terminate", "true")])).unwrap();
        let roster = Roster {
            known: Default::default(),
            alive: vec!["a@h".into()],
        };
        let ids: Vec<String> = (0..BULK_CHUNK * 2 + 1).map(|i| format!("t{i}")).collect();
        let requests = b.requests(&ids, &roster);
        let sizes: Vec<usize> = requests
            .iter()
            .map(|r| r.arguments["task_id"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, [BULK_CHUNK, BULK_CHUNK, 1]);
        assert!(requests.iter().all(|r| r.method == "revoke"
            && r.arguments["terminate"] == json!(true)
            && r.expect.as_deref() == Some(&roster.alive[..])));
        assert_eq!(
            requests[2].arguments["task_id"],
            json!([format!("t{}", BULK_CHUNK * 2)])
        );
        assert!(b.requests(&[], &roster).is_empty());
    }

    #[test]
    fn replies_are_gathered_per_worker_and_a_failure_stops_sending() {
        let mut c = Collected::default();
        let one = |replies: &[(&str, &str)], silent: &[&str]| Outcome {
            replies: replies
                .iter()
                .map(|(w, ok)| (w.to_string(), json!({ "ok": ok })))
                .collect(),
            no_reply: silent.iter().map(|w| w.to_string()).collect(),
        };
        assert!(c.add(Ok(one(&[("a", "1")], &["b"]))));
        assert!(c.add(Ok(one(&[("a", "2")], &["b"]))));
        assert_eq!(c.replies["a"], [json!({"ok": "1"}), json!({"ok": "2"})]);
        assert_eq!(c.no_reply, ["b"]);
        assert_eq!(c.verdict(), Verdict::Ok);
        let answer = c.clone().answer(vec!["x".into()]);
        assert_eq!(answer.message.as_deref(), Some("Revoked 1 tasks"));
        assert!(!c.add(Err(ControlError::Unavailable("publishing: closed".into()))));
        assert_eq!(c.verdict(), Verdict::Unavailable);
        let who = Principal::anonymous();
        let b = BulkRevoke::parse(&pairs(&[("taskname", "tasks.add")])).unwrap();
        let e = b.audit_entry(&who, &["x".to_string()], &c, 5.0);
        assert_eq!(
            (e.command.as_str(), e.status, e.time),
            ("bulk_revoke", 503, 5.0)
        );
        assert_eq!(
            e.arguments,
            json!({"filters": [["taskname", "tasks.add"]], "terminate": false,
                   "signal": "SIGTERM", "count": 1, "task_ids": ["x"]})
        );
        assert_eq!(
            c.answer(vec!["x".into()]).message.as_deref(),
            Some("revoke failed: the broker is unavailable for remote control: publishing: closed")
        );
    }
}
