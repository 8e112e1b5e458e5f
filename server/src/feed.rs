//! The change feed: what changed in the state, told to every consumer once
//! per tick.
//!
//! The state marks what each event touches (a set insert, see
//! `State::take_changes`). Once per [`INTERVAL`] the state owner takes those
//! marks under a short write lock, and hands the same [`Changes`] to each
//! [`Subscriber`] in turn; subscribers read the state under read locks, so
//! HTTP readers are never held up by what a subscriber builds. Taking the
//! marks once is what lets several consumers share them: a consumer that
//! took them itself would hide them from the others.
//!
//! A new consumer of state changes is one `Subscriber` registered in
//! `subscribers` in `lib.rs`.

use std::time::Duration;

use parking_lot::{RwLock, RwLockReadGuard};

use crate::state::State;

pub use crate::state::{Changes, Evicted, TaskId};

/// How often the marks are taken and told.
pub const INTERVAL: Duration = Duration::from_millis(250);

/// A consumer of the change feed.
///
/// The contract: `on_changes` is called on the state owner's task, between
/// batches, so it must not block or wait on I/O: ingest waits for it. Work
/// that can (writing history to disk) belongs on a task of its own, fed
/// through a bounded channel. The state does not change during the call, so
/// every id in `changes.tasks` resolves; when `changes.overflow` is set the
/// lists are empty and the subscriber must resynchronise from the state.
pub trait Subscriber: Send {
    fn on_changes(&mut self, changes: &Changes, state: &StateReader<'_>, now: f64);
}

impl<F> Subscriber for F
where
    F: FnMut(&Changes, &StateReader<'_>, f64) + Send,
{
    fn on_changes(&mut self, changes: &Changes, state: &StateReader<'_>, now: f64) {
        self(changes, state, now)
    }
}

/// The state as subscribers may see it: read locks only, since only the
/// owner writes.
pub struct StateReader<'a>(&'a RwLock<State>);

impl<'a> StateReader<'a> {
    pub fn new(state: &'a RwLock<State>) -> StateReader<'a> {
        StateReader(state)
    }

    pub fn read(&self) -> RwLockReadGuard<'a, State> {
        self.0.read()
    }
}

/// The subscribers, told in the order they subscribed.
#[derive(Default)]
pub struct Feed {
    subscribers: Vec<Box<dyn Subscriber>>,
}

impl Feed {
    pub fn subscribe(&mut self, subscriber: impl Subscriber + 'static) {
        self.subscribers.push(Box::new(subscriber));
    }

    /// One tick: takes the marks (the only write lock here) and tells every
    /// subscriber. `now` is the tick's time.
    pub fn publish(&mut self, state: &RwLock<State>, now: f64) {
        let changes = take(state);
        let reader = StateReader(state);
        for s in &mut self.subscribers {
            s.on_changes(&changes, &reader, now);
        }
    }
}

/// Takes the marks under a write lock held only for that.
pub fn take(state: &RwLock<State>) -> Changes {
    state.write().take_changes()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::events::{Event, EventKind};
    use crate::state::Limits;

    fn state(max_tasks: usize) -> RwLock<State> {
        RwLock::new(State::new(Limits {
            max_tasks,
            ..Limits::default()
        }))
    }

    fn apply(state: &RwLock<State>, kind: EventKind, uuid: &str) {
        let ev = Event {
            kind,
            hostname: "w1@vm".into(),
            timestamp: 1.0,
            uuid: Some(uuid.into()),
            name: Some("tasks.add".into()),
            ..Event::default()
        };
        state.write().apply(&ev, 1.0);
    }

    /// Each tick's changes, with the changed tasks' states as read then.
    type Log = Arc<Mutex<Vec<(Changes, Vec<String>)>>>;

    /// A subscriber that keeps what it is told, and what it could read.
    fn recorder() -> (impl Subscriber, Log) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let sub = move |c: &Changes, s: &StateReader<'_>, _now: f64| {
            let state = s.read();
            let mut states: Vec<String> = state
                .changed_tasks(c)
                .map(|t| format!("{}={}", t.uuid, t.state.as_str()))
                .collect();
            states.sort();
            log.lock().unwrap().push((c.clone(), states));
        };
        (sub, seen)
    }

    fn ids(c: &Changes) -> Vec<&str> {
        let mut v: Vec<&str> = c.tasks.iter().map(TaskId::as_str).collect();
        v.sort();
        v
    }

    #[test]
    fn marks_become_ids_once_per_tick_and_every_subscriber_sees_them() {
        let s = state(100);
        let mut feed = Feed::default();
        let (first, seen1) = recorder();
        let (second, seen2) = recorder();
        feed.subscribe(first);
        feed.subscribe(second);
        apply(&s, EventKind::TaskReceived, "a");
        apply(&s, EventKind::TaskStarted, "a");
        apply(&s, EventKind::TaskReceived, "b");
        feed.publish(&s, 2.0);
        feed.publish(&s, 2.25);

        let seen1 = seen1.lock().unwrap();
        assert_eq!(*seen1, *seen2.lock().unwrap());
        assert_eq!(seen1.len(), 2);
        let (c, states) = &seen1[0];
        assert_eq!(ids(c), ["a", "b"]);
        assert_eq!(states, &["a=STARTED", "b=RECEIVED"]);
        assert!(c.workers && !c.overflow && c.evicted.is_empty());
        // Taken once: the next tick has nothing.
        assert_eq!(seen1[1].0, Changes::default());
    }

    #[test]
    fn an_evicted_task_is_reported_with_its_record_not_as_a_dangling_id() {
        let s = state(2);
        let (sub, seen) = recorder();
        let mut feed = Feed::default();
        feed.subscribe(sub);
        apply(&s, EventKind::TaskReceived, "a");
        apply(&s, EventKind::TaskReceived, "b");
        feed.publish(&s, 2.0);
        apply(&s, EventKind::TaskSucceeded, "a");
        // "c" evicts "a" and takes its slot.
        apply(&s, EventKind::TaskReceived, "c");
        feed.publish(&s, 2.25);

        let seen = seen.lock().unwrap();
        let (c, states) = &seen[1];
        assert_eq!(ids(c), ["c"]);
        assert_eq!(states, &["c=RECEIVED"]);
        assert_eq!(c.evicted.len(), 1);
        assert_eq!(c.evicted[0].id, "a");
        let gone = s.read().evicted_task(&c.evicted[0]);
        assert_eq!(gone.state, api::TaskState::Success);
        assert_eq!(gone.name.as_deref(), Some("tasks.add"));
    }

    #[test]
    fn too_many_changes_collapse_into_overflow_for_every_subscriber() {
        let s = state(3);
        let (first, seen1) = recorder();
        let (second, seen2) = recorder();
        let mut feed = Feed::default();
        feed.subscribe(first);
        feed.subscribe(second);
        for id in ["a", "b", "c", "d"] {
            apply(&s, EventKind::TaskReceived, id);
        }
        feed.publish(&s, 2.0);
        apply(&s, EventKind::TaskStarted, "d");
        feed.publish(&s, 2.25);

        let seen1 = seen1.lock().unwrap();
        assert_eq!(*seen1, *seen2.lock().unwrap());
        let (c, states) = &seen1[0];
        assert!(c.overflow && c.workers);
        assert!(c.tasks.is_empty() && c.evicted.is_empty() && states.is_empty());
        // The next tick lists changes again.
        let (c, _) = &seen1[1];
        assert!(!c.overflow);
        assert_eq!(ids(c), ["d"]);
    }
}
