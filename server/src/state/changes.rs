//! What changed between two takes of the change marks (`crate::feed`).
//!
//! Marking is on the hot path (every applied event), so a mark is a slot
//! reference put in a set; slot references are reused after eviction, so
//! they are turned into ids once per take, while the slots still hold the
//! marked tasks. Tasks evicted meanwhile are not found that way: their
//! records are kept at eviction (moved, not copied) and reported apart, as
//! they were; a subscriber that wants one as Flower renders it asks
//! [`super::State::evicted_task`], under its read lock, so nobody pays for
//! the conversion under the write lock or when no subscriber reads them.

use hashbrown::HashSet;

use super::ids::IdText;
use super::tasks::{SlotRef, Task};

/// A task's id as the state stores it: canonical UUIDs inline, so taking
/// one out of the state costs no allocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskId(IdText);

impl TaskId {
    pub(super) fn new(id: IdText) -> TaskId {
        TaskId(id)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for TaskId {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for TaskId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A task that left the state to stay within `max_tasks`.
#[derive(Debug, Clone, PartialEq)]
pub struct Evicted {
    pub id: TaskId,
    /// Its record as it was when evicted.
    pub(super) record: Task,
    /// An event changed it since the previous take: a consumer that keeps
    /// up with `tasks` has not seen its last state.
    pub changed: bool,
}

/// What changed since the previous [`super::State::take_changes`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Retained tasks created or updated, each once, in no particular order.
    pub tasks: Vec<TaskId>,
    /// Tasks evicted, oldest first. An id may also be in `tasks` when an
    /// event re-created the task after its eviction; `tasks` is then the
    /// current record.
    pub evicted: Vec<Evicted>,
    /// A worker event (or a task event refreshing a worker) was applied.
    pub workers: bool,
    /// More than `max_tasks` tasks changed or were evicted: `tasks` and
    /// `evicted` are empty, and readers must resynchronise from the state.
    pub overflow: bool,
}

impl Changes {
    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }
}

/// The marks as they are taken while events are applied.
#[derive(Debug, Default)]
pub(super) struct Marks {
    pub tasks: HashSet<SlotRef>,
    pub workers: bool,
    pub overflow: bool,
}

impl Marks {
    /// Marks the task at `r`, collapsing into `overflow` beyond `max`.
    pub fn task(&mut self, r: SlotRef, max: usize) {
        if self.overflow {
            return;
        }
        if self.tasks.len() >= max {
            self.tasks.clear();
            self.overflow = true;
        } else {
            self.tasks.insert(r);
        }
    }
}
