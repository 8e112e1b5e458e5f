//! Running a control action: send its request(s) through a [`Mailbox`],
//! judge the replies, record it in the audit log. Everything comes in as an
//! argument (the mailbox, the log, who asks, the clock), so tests run it
//! against a fake mailbox, without a broker.

use api::control::{BulkRevokeResponse, ControlResponse};

use super::bulk::{BulkRevoke, Collected};
use super::command::{Prepared, Roster, TimeLimit, TIME_LIMIT_APPLIED, TIME_LIMIT_NOTE};
use super::judge::{audit_entry, audited, Verdict};
use crate::audit::Audit;
use crate::auth::Principal;
use crate::mailbox::Mailbox;

/// One caller's actions.
pub struct Controller<'a, M> {
    pub mailbox: &'a M,
    pub audit: &'a Audit,
    pub who: &'a Principal,
    /// Unix seconds, read when an action is recorded.
    pub clock: fn() -> f64,
}

impl<M: Mailbox> Controller<'_, M> {
    /// Sends `prepared`, judges the replies, and records the action
    /// (inspect commands are not actions).
    pub async fn act(&self, prepared: Prepared) -> (Verdict, ControlResponse) {
        let Prepared { request, judge } = prepared;
        let result = self.mailbox.call(&request).await;
        let (verdict, body) = judge.answer(result);
        if audited(&request) {
            let entry = audit_entry(self.who, &request, verdict, &body, (self.clock)());
            self.audit.record(entry);
        }
        (verdict, body)
    }

    /// Sets time limits and, when asked, restarts the pool so they apply;
    /// without the restart the answer notes they do not apply yet.
    pub async fn time_limit(&self, t: TimeLimit) -> (Verdict, ControlResponse) {
        let (mut verdict, mut body) = self.act(t.set).await;
        if !verdict.is_ok() {
            return (verdict, body);
        }
        match t.restart {
            None => body.note = Some(TIME_LIMIT_NOTE.into()),
            Some(restart) => {
                let (v, r) = self.act(restart).await;
                if v.is_ok() {
                    body.message = Some(TIME_LIMIT_APPLIED.into());
                } else {
                    verdict = v;
                    body.message = None;
                    body.error = Some(format!(
                        "time limits set, but not applied: the pool restart failed: {}",
                        r.error.as_deref().unwrap_or("no reply")
                    ));
                    body.note = Some(TIME_LIMIT_NOTE.into());
                }
                body.pool_restart = Some(Box::new(r));
            }
        }
        (verdict, body)
    }

    /// Revokes `ids` (selected by `bulk`) in chunks, stopping at the first
    /// message the broker refuses, and records it.
    pub async fn bulk_revoke(
        &self,
        bulk: &BulkRevoke,
        ids: Vec<String>,
        roster: &Roster,
    ) -> (Verdict, BulkRevokeResponse) {
        let mut collected = Collected::default();
        for request in bulk.requests(&ids, roster) {
            if !collected.add(self.mailbox.call(&request).await) {
                break;
            }
        }
        let verdict = collected.verdict();
        let entry = bulk.audit_entry(self.who, &ids, &collected, (self.clock)());
        self.audit.record(entry);
        (verdict, collected.answer(ids))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use parking_lot::Mutex;
    use serde_json::{json, Value};

    use std::future::Future;

    use super::*;
    use crate::control::command::{self, Command, WORKER_ENDPOINTS};
    use crate::mailbox::{ControlError, Outcome, Request};

    /// Answers each call with the next scripted result, and keeps the
    /// requests.
    #[derive(Default)]
    struct Fake {
        script: Mutex<VecDeque<Result<Outcome, ControlError>>>,
        sent: Mutex<Vec<Request>>,
    }

    impl Fake {
        fn replying(script: Vec<Result<Outcome, ControlError>>) -> Fake {
            Fake {
                script: Mutex::new(script.into()),
                sent: Mutex::default(),
            }
        }
    }

    impl Mailbox for Fake {
        fn call(
            &self,
            request: &Request,
        ) -> impl Future<Output = Result<Outcome, ControlError>> + Send {
            self.sent.lock().push(request.clone());
            let next = self
                .script
                .lock()
                .pop_front()
                .unwrap_or(Ok(Outcome::default()));
            std::future::ready(next)
        }
    }

    fn ok_from(worker: &str, text: &str) -> Result<Outcome, ControlError> {
        Ok(Outcome {
            replies: [(worker.to_string(), json!({ "ok": text }))].into(),
            no_reply: vec![],
        })
    }

    fn roster() -> Roster {
        Roster {
            known: ["w@h".to_string()].into(),
            alive: vec!["w@h".into()],
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn controller<'a>(
        fake: &'a Fake,
        audit: &'a Audit,
        who: &'a Principal,
    ) -> Controller<'a, Fake> {
        Controller {
            mailbox: fake,
            audit,
            who,
            clock: || 42.0,
        }
    }

    #[tokio::test]
    async fn actions_are_audited_and_inspections_are_not() {
        let (audit, who) = (Audit::new(), Principal::anonymous());
        let fake = Fake::replying(vec![
            ok_from("w@h", "pool will grow"),
            ok_from("w@h", "pong"),
        ]);
        let c = controller(&fake, &audit, &who);
        let grow = WORKER_ENDPOINTS
            .iter()
            .find(|e| e.command == Command::PoolGrow)
            .unwrap()
            .prepare("w@h", &pairs(&[("n", "2")]), &roster())
            .unwrap();
        let (v, body) = c.act(grow).await;
        assert_eq!(v, Verdict::Ok);
        assert_eq!(
            body.message.as_deref(),
            Some("Growing 'w@h' worker's pool by 2")
        );
        let ping = command::generic("ping", b"", &roster()).unwrap();
        let (v, body) = c.act(ping).await;
        assert_eq!(
            (v, body.replies["w@h"].clone()),
            (Verdict::Ok, json!({"ok": "pong"}))
        );
        let entries = audit.recent(10);
        assert_eq!(entries.len(), 1, "ping is not an action");
        let e = &entries[0];
        assert_eq!(
            (e.command.as_str(), e.user.as_str(), e.time, e.status),
            ("pool_grow", "anonymous", 42.0, 200)
        );
        assert_eq!(e.arguments, json!({"n": 2}));
    }

    #[tokio::test]
    async fn an_unreachable_broker_is_recorded_as_503() {
        let (audit, who) = (Audit::new(), Principal::anonymous());
        let fake = Fake::replying(vec![Err(ControlError::Unavailable(
            "connecting: refused".into(),
        ))]);
        let c = controller(&fake, &audit, &who);
        let revoke = command::revoke("t1", &[], &roster()).unwrap();
        let (v, body) = c.act(revoke).await;
        assert_eq!(v, Verdict::Unavailable);
        assert!(body.error.unwrap().ends_with("connecting: refused"));
        assert_eq!(audit.recent(1)[0].status, 503);
    }

    #[tokio::test]
    async fn time_limits_note_they_wait_for_a_pool_restart() {
        let (audit, who) = (Audit::new(), Principal::anonymous());
        let fake = Fake::replying(vec![ok_from("w@h", "time limits set successfully")]);
        let c = controller(&fake, &audit, &who);
        let t = command::time_limit(
            "tasks.sleep",
            &pairs(&[("hard", "1"), ("workername", "w@h")]),
            &roster(),
            true,
        )
        .unwrap();
        let (v, body) = c.time_limit(t).await;
        assert_eq!(v, Verdict::Ok);
        assert_eq!(
            body.message.as_deref(),
            Some("time limits set successfully")
        );
        assert_eq!(body.note.as_deref(), Some(TIME_LIMIT_NOTE));
        assert!(body.pool_restart.is_none());
    }

    #[tokio::test]
    async fn applied_time_limits_restart_the_pool() {
        let (audit, who) = (Audit::new(), Principal::anonymous());
        let params = pairs(&[("hard", "1"), ("workername", "w@h"), ("apply", "true")]);
        let fake = Fake::replying(vec![
            ok_from("w@h", "time limits set successfully"),
            ok_from("w@h", "reload started"),
        ]);
        let c = controller(&fake, &audit, &who);
        let (v, body) = c
            .time_limit(command::time_limit("tasks.sleep", &params, &roster(), true).unwrap())
            .await;
        assert_eq!(v, Verdict::Ok);
        assert_eq!(body.message.as_deref(), Some(TIME_LIMIT_APPLIED));
        assert!(body.note.is_none());
        assert_eq!(
            body.pool_restart.unwrap().replies["w@h"],
            json!({"ok": "reload started"})
        );
        let commands: Vec<String> = audit.recent(2).into_iter().map(|e| e.command).collect();
        assert_eq!(commands, ["pool_restart", "time_limit"]);

        // A pool restart that is refused says the limits are set, not applied.
        let fake = Fake::replying(vec![
            ok_from("w@h", "time limits set successfully"),
            Ok(Outcome {
                replies: [(
                    "w@h".to_string(),
                    json!({"error": "Pool restarts not enabled"}),
                )]
                .into(),
                no_reply: vec![],
            }),
        ]);
        let c = controller(&fake, &audit, &who);
        let (v, body) = c
            .time_limit(command::time_limit("tasks.sleep", &params, &roster(), true).unwrap())
            .await;
        assert_eq!(v, Verdict::Refused);
        assert_eq!(body.message, None);
        assert_eq!(
            body.error.as_deref(),
            Some("time limits set, but not applied: the pool restart failed: Pool restarts not enabled")
        );
        assert_eq!(body.note.as_deref(), Some(TIME_LIMIT_NOTE));

        // A refused time limit is not followed by a restart.
        let fake = Fake::replying(vec![Ok(Outcome {
            replies: [("w@h".to_string(), json!({"error": "unknown task"}))].into(),
            no_reply: vec![],
        })]);
        let c = controller(&fake, &audit, &who);
        let (v, body) = c
            .time_limit(command::time_limit("tasks.nope", &params, &roster(), true).unwrap())
            .await;
        assert_eq!(v, Verdict::Refused);
        assert_eq!(
            body.error.as_deref(),
            Some("Failed to set timeouts: 'unknown task'")
        );
        assert_eq!(fake.sent.lock().len(), 1);
    }

    #[tokio::test]
    async fn bulk_revoke_sends_every_chunk_until_the_broker_fails() {
        let (audit, who) = (Audit::new(), Principal::anonymous());
        let bulk = BulkRevoke::parse(&pairs(&[("all", "true")])).unwrap();
        let ids: Vec<String> = (0..1200).map(|i| format!("t{i}")).collect();
        let fake = Fake::replying(vec![
            ok_from("w@h", "a"),
            ok_from("w@h", "b"),
            ok_from("w@h", "c"),
        ]);
        let c = controller(&fake, &audit, &who);
        let (v, answer) = c.bulk_revoke(&bulk, ids.clone(), &roster()).await;
        assert_eq!(v, Verdict::Ok);
        assert_eq!(fake.sent.lock().len(), 3);
        assert_eq!(answer.count, 1200);
        assert_eq!(answer.message.as_deref(), Some("Revoked 1200 tasks"));
        assert_eq!(answer.replies.unwrap()["w@h"].len(), 3);
        let e = &audit.recent(1)[0];
        assert_eq!(
            (e.command.as_str(), e.arguments["count"].clone()),
            ("bulk_revoke", json!(1200))
        );

        let fake = Fake::replying(vec![
            ok_from("w@h", "a"),
            Err(ControlError::Unavailable("publishing: closed".into())),
        ]);
        let c = controller(&fake, &audit, &who);
        let (v, answer) = c.bulk_revoke(&bulk, ids, &roster()).await;
        assert_eq!(v, Verdict::Unavailable);
        assert_eq!(fake.sent.lock().len(), 2, "the third chunk is not sent");
        assert!(answer.message.unwrap().starts_with("revoke failed: "));
        assert_eq!(audit.recent(1)[0].status, 503);
        let _: Value = serde_json::to_value(&audit.recent(1)[0]).unwrap();
    }
}
