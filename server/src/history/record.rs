//! How a stored task merges with a newer write of it: the rules of the
//! in-memory state (docs/celery-protocol.md §2.5), made independent of the
//! order writes arrive in, so two replicas writing one task, or a replay,
//! end with the same row.
//!
//! In memory, events arrive in one order and RETRY is special: it always
//! wins, and anything overrides it. Between whole records there is no
//! arrival order to lean on, so the rule here is: the lower precedence rank
//! wins; when either record is RETRY, or the ranks are equal, the later
//! state timestamp wins. Fields other than the state's own (`timestamp`,
//! `clock`) merge as in memory: a known value is never erased by an
//! unknown one. The upsert in `store` says the same in SQL; a store test
//! checks that the two agree.

use api::{Task, TaskState};

use crate::state::state_rank;

/// Whether `new`'s state replaces `current`'s.
pub fn wins(new: &Task, current: &Task) -> bool {
    let (n, c) = (state_rank(&new.state), state_rank(&current.state));
    let later = new.timestamp.unwrap_or(0.0) >= current.timestamp.unwrap_or(0.0);
    if new.state == TaskState::Retry || current.state == TaskState::Retry {
        later
    } else {
        n < c || (n == c && later)
    }
}

/// `new` written over `current`, as the store's upsert does it.
pub fn merge(new: &Task, current: &Task) -> Task {
    let state_from = if wins(new, current) { new } else { current };
    let pick = |a: &Option<String>, b: &Option<String>| a.clone().or_else(|| b.clone());
    let time = |a: Option<f64>, b: Option<f64>| a.or(b);
    Task {
        uuid: current.uuid.clone(),
        name: pick(&new.name, &current.name),
        state: state_from.state.clone(),
        received: time(new.received, current.received),
        sent: time(new.sent, current.sent),
        started: time(new.started, current.started),
        rejected: time(new.rejected, current.rejected),
        succeeded: time(new.succeeded, current.succeeded),
        failed: time(new.failed, current.failed),
        retried: time(new.retried, current.retried),
        revoked: time(new.revoked, current.revoked),
        args: pick(&new.args, &current.args),
        kwargs: pick(&new.kwargs, &current.kwargs),
        eta: pick(&new.eta, &current.eta),
        expires: pick(&new.expires, &current.expires),
        retries: new.retries.or(current.retries),
        result: pick(&new.result, &current.result),
        exception: pick(&new.exception, &current.exception),
        timestamp: state_from.timestamp,
        runtime: time(new.runtime, current.runtime),
        traceback: pick(&new.traceback, &current.traceback),
        exchange: pick(&new.exchange, &current.exchange),
        routing_key: pick(&new.routing_key, &current.routing_key),
        clock: state_from.clock,
        client: pick(&new.client, &current.client),
        root: None,
        root_id: pick(&new.root_id, &current.root_id),
        parent: None,
        parent_id: pick(&new.parent_id, &current.parent_id),
        children: Vec::new(),
        worker: pick(&new.worker, &current.worker),
        queue: pick(&new.queue, &current.queue),
    }
}

/// The latest event time a record knows: what retention ages it by.
pub fn last_change(t: &Task) -> Option<f64> {
    [
        t.timestamp,
        t.sent,
        t.received,
        t.started,
        t.succeeded,
        t.failed,
        t.retried,
        t.revoked,
        t.rejected,
    ]
    .into_iter()
    .flatten()
    .filter(|v| v.is_finite())
    .reduce(f64::max)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn task(uuid: &str, state: TaskState, timestamp: f64) -> Task {
        Task {
            uuid: uuid.into(),
            name: None,
            state,
            received: None,
            sent: None,
            started: None,
            rejected: None,
            succeeded: None,
            failed: None,
            retried: None,
            revoked: None,
            args: None,
            kwargs: None,
            eta: None,
            expires: None,
            retries: None,
            result: None,
            exception: None,
            timestamp: Some(timestamp),
            runtime: None,
            traceback: None,
            exchange: None,
            routing_key: None,
            clock: None,
            client: None,
            root: None,
            root_id: None,
            parent: None,
            parent_id: None,
            children: vec![],
            worker: None,
            queue: None,
        }
    }

    /// (current, new, which state the row ends with)
    pub const CASES: [(TaskState, f64, TaskState, f64, TaskState); 7] = [
        // A finished task is not moved back by a late STARTED.
        (
            TaskState::Success,
            3.0,
            TaskState::Started,
            2.0,
            TaskState::Success,
        ),
        (
            TaskState::Started,
            2.0,
            TaskState::Success,
            3.0,
            TaskState::Success,
        ),
        // FAILURE then a later SUCCESS (a retried task's last run): SUCCESS.
        (
            TaskState::Failure,
            2.0,
            TaskState::Success,
            3.0,
            TaskState::Success,
        ),
        (
            TaskState::Success,
            3.0,
            TaskState::Failure,
            2.0,
            TaskState::Success,
        ),
        // RETRY: the later of the two, whichever comes first.
        (
            TaskState::Retry,
            2.0,
            TaskState::Started,
            3.0,
            TaskState::Started,
        ),
        (
            TaskState::Started,
            3.0,
            TaskState::Retry,
            2.0,
            TaskState::Started,
        ),
        (
            TaskState::Started,
            1.0,
            TaskState::Retry,
            2.0,
            TaskState::Retry,
        ),
    ];

    #[test]
    fn a_stored_task_learns_it_was_lost_and_any_later_outcome_wins() {
        let lost = TaskState::Custom(crate::state::LOST.into());
        let started = task("t", TaskState::Started, 10.0);
        let lost_at = task("t", lost.clone(), 14.0);
        assert!(wins(&lost_at, &started));
        assert!(!wins(&started, &lost_at), "order-independent");
        assert!(wins(&task("t", TaskState::Success, 12.0), &lost_at));
        assert!(wins(&task("t", TaskState::Started, 20.0), &lost_at));
        assert!(wins(&lost_at, &task("t", TaskState::Received, 9.0)));
    }

    #[test]
    fn two_writers_converge_whatever_the_order() {
        for (cur, cur_ts, new, new_ts, want) in CASES {
            let a = task("t", cur.clone(), cur_ts);
            let b = task("t", new.clone(), new_ts);
            assert_eq!(merge(&b, &a).state, want, "{cur:?} <- {new:?}");
            assert_eq!(merge(&a, &b).state, want, "{new:?} <- {cur:?}");
        }
    }

    #[test]
    fn an_unknown_value_never_erases_a_known_one() {
        let mut old = task("t", TaskState::Received, 1.0);
        old.args = Some("(1, 2)".into());
        old.worker = Some("w1@h".into());
        let mut new = task("t", TaskState::Success, 2.0);
        new.result = Some("3".into());
        let m = merge(&new, &old);
        assert_eq!(m.args.as_deref(), Some("(1, 2)"));
        assert_eq!(m.worker.as_deref(), Some("w1@h"));
        assert_eq!(m.result.as_deref(), Some("3"));
        assert_eq!((m.state, m.timestamp), (TaskState::Success, Some(2.0)));
    }

    #[test]
    fn the_last_change_is_the_latest_known_time() {
        let mut t = task("t", TaskState::Success, 5.0);
        t.sent = Some(1.0);
        t.succeeded = Some(6.0);
        assert_eq!(last_change(&t), Some(6.0));
        t.timestamp = None;
        t.sent = None;
        t.succeeded = None;
        assert_eq!(last_change(&t), None);
    }
}
