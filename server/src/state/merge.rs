//! Celery's task-state precedence (docs/celery-protocol.md §2.5, `celery.states`).

use api::TaskState;

use super::intern::Sym;

/// A task state in 8 bytes; custom state names are interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateCode {
    Pending,
    Received,
    Started,
    Success,
    Failure,
    Retry,
    Revoked,
    Rejected,
    /// An upper-cased custom name such as `PROGRESS`, in the state table.
    Custom(Sym),
    /// celeriac's own: RECEIVED or STARTED on a worker that went offline by
    /// heartbeat expiry, so no outcome will ever come (see `State::tick`).
    Lost,
}

/// The name of [`StateCode::Lost`] on the wire: a custom state to Flower's
/// clients, which list and filter it like any other.
pub const LOST: &str = "LOST";

/// `celery.states.PRECEDENCE` as indexes: lower wins. Unknown and custom
/// states sit at 2, between FAILURE and REVOKED. LOST is an inference, not
/// an event, so it ranks below every state an event can set: whatever the
/// task's events say later wins.
pub fn precedence(s: StateCode) -> u8 {
    match s {
        StateCode::Lost => 9,
        StateCode::Success => 0,
        StateCode::Failure => 1,
        StateCode::Custom(_) => 2,
        StateCode::Revoked => 3,
        StateCode::Started => 4,
        StateCode::Received => 5,
        StateCode::Rejected => 6,
        StateCode::Retry => 7,
        StateCode::Pending => 8,
    }
}

/// The precedence of a state as the API names it (lower wins), for
/// stores that merge records by the same rules.
///
/// LOST ranks as STARTED here, not last as in memory: a store merges
/// whole records with no arrival order, so last would keep every stored
/// STARTED and the store would never learn the task was lost. At STARTED's
/// rank the later timestamp wins: LOST (dated at the worker's expiry) over
/// the STARTED it replaced, a STARTED after a redelivery over LOST, and
/// any outcome over both.
pub fn rank(state: &TaskState) -> u8 {
    match state {
        TaskState::Custom(s) if s == LOST => 4,
        TaskState::Success => 0,
        TaskState::Failure => 1,
        TaskState::Custom(_) => 2,
        TaskState::Revoked => 3,
        TaskState::Started => 4,
        TaskState::Received => 5,
        TaskState::Rejected => 6,
        TaskState::Retry => 7,
        TaskState::Pending => 8,
    }
}

/// What `Task.event` does with an event that would move the task from
/// `current` to `new`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The event sets the state (and the state's timestamp).
    SetState,
    /// The event "happened before" the current state: only its fields merge;
    /// for RECEIVED only the merge-rule fields.
    MergeOnly,
}

/// RETRY always wins, and any event overrides a RETRY; otherwise the state
/// with the higher precedence stays, and equal precedence takes the new one.
pub fn outcome(current: StateCode, new: StateCode) -> Outcome {
    if new != StateCode::Retry
        && current != StateCode::Retry
        && precedence(new) > precedence(current)
    {
        Outcome::MergeOnly
    } else {
        Outcome::SetState
    }
}

/// The built-in states as values a view can borrow.
pub static BUILTIN_STATES: [TaskState; 8] = [
    TaskState::Pending,
    TaskState::Received,
    TaskState::Started,
    TaskState::Success,
    TaskState::Failure,
    TaskState::Retry,
    TaskState::Revoked,
    TaskState::Rejected,
];

impl StateCode {
    pub fn builtin_index(self) -> Option<usize> {
        Some(match self {
            StateCode::Pending => 0,
            StateCode::Received => 1,
            StateCode::Started => 2,
            StateCode::Success => 3,
            StateCode::Failure => 4,
            StateCode::Retry => 5,
            StateCode::Revoked => 6,
            StateCode::Rejected => 7,
            StateCode::Custom(_) | StateCode::Lost => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StateCode::*;

    #[test]
    fn builtin_table_matches_codes() {
        for (i, c) in [
            Pending, Received, Started, Success, Failure, Retry, Revoked, Rejected,
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(c.builtin_index(), Some(i));
        }
    }

    #[test]
    fn the_api_states_rank_as_their_codes() {
        for (i, code) in [
            Pending, Received, Started, Success, Failure, Retry, Revoked, Rejected,
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(rank(&BUILTIN_STATES[i]), precedence(code));
        }
        let custom = TaskState::Custom("PROGRESS".into());
        assert_eq!(rank(&custom), 2);
        assert_eq!(rank(&TaskState::Custom(LOST.into())), precedence(Started));
    }

    #[test]
    fn precedence_rules() {
        // (current, new, outcome)
        let table = [
            (Received, Pending, Outcome::MergeOnly),
            (Started, Received, Outcome::MergeOnly),
            (Success, Started, Outcome::MergeOnly),
            (Success, Retry, Outcome::SetState),
            (Retry, Pending, Outcome::SetState),
            (Failure, Rejected, Outcome::MergeOnly),
            (Started, Started, Outcome::SetState),
            (Pending, Pending, Outcome::SetState),
            (Success, Failure, Outcome::MergeOnly),
            (Failure, Success, Outcome::SetState),
            // Any event overrides an inferred LOST, even one that would
            // lose to the state the task had before it was lost.
            (Lost, Received, Outcome::SetState),
            (Lost, Pending, Outcome::SetState),
            (Lost, Success, Outcome::SetState),
        ];
        for (cur, new, want) in table {
            assert_eq!(outcome(cur, new), want, "{cur:?} <- {new:?}");
        }
    }
}
