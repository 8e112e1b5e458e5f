//! The tasks waiting to be written: each id once (a task that changes ten
//! times before the writer comes round is written once, as it is then),
//! first come first written, bounded. Pure.

use std::collections::VecDeque;

use hashbrown::HashMap;

use crate::state::TaskId;

/// A task to write: read from the state when written, or, for a task
/// evicted from memory meanwhile, its record as it was evicted.
#[derive(Debug, Clone, PartialEq)]
pub enum Pending {
    InState,
    Evicted(Box<api::Task>),
}

#[derive(Debug)]
pub struct Backlog {
    cap: usize,
    order: VecDeque<TaskId>,
    pending: HashMap<TaskId, Pending>,
    dropped: u64,
}

impl Backlog {
    pub fn new(cap: usize) -> Backlog {
        Backlog {
            cap: cap.max(1),
            order: VecDeque::new(),
            pending: HashMap::new(),
            dropped: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Changes lost because the backlog was full, since it was made.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn contains(&self, id: &TaskId) -> bool {
        self.pending.contains_key(id)
    }

    /// A task changed in memory. Returns false when it was dropped.
    pub fn mark(&mut self, id: &TaskId) -> bool {
        self.put(id, Pending::InState, false)
    }

    /// A task left memory: `record` is what to write for it.
    pub fn evicted(&mut self, id: &TaskId, record: api::Task) -> bool {
        self.put(id, Pending::Evicted(Box::new(record)), true)
    }

    fn put(&mut self, id: &TaskId, what: Pending, replace: bool) -> bool {
        if let Some(slot) = self.pending.get_mut(id) {
            if replace {
                *slot = what;
            }
            return true;
        }
        if self.pending.len() >= self.cap {
            self.dropped += 1;
            return false;
        }
        self.pending.insert(id.clone(), what);
        self.order.push_back(id.clone());
        true
    }

    /// Up to `n` tasks, oldest marked first.
    pub fn take(&mut self, n: usize) -> Vec<(TaskId, Pending)> {
        let mut out = Vec::with_capacity(n.min(self.pending.len()));
        while out.len() < n {
            let Some(id) = self.order.pop_front() else {
                break;
            };
            if let Some(p) = self.pending.remove(&id) {
                out.push((id, p));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::record::tests::task;

    fn id(s: &str) -> TaskId {
        crate::state::test_task_id(s)
    }

    #[test]
    fn a_task_is_written_once_however_often_it_changed() {
        let mut b = Backlog::new(10);
        assert!(b.mark(&id("a")) && b.mark(&id("b")) && b.mark(&id("a")));
        assert_eq!(b.len(), 2);
        let taken: Vec<String> = b.take(10).into_iter().map(|(i, _)| i.to_string()).collect();
        assert_eq!(taken, ["a", "b"]);
        assert!(b.is_empty());
    }

    #[test]
    fn an_evicted_record_replaces_a_pending_read_but_not_the_reverse() {
        let mut b = Backlog::new(10);
        b.mark(&id("a"));
        let rec = task("a", api::TaskState::Success, 1.0);
        b.evicted(&id("a"), rec.clone());
        b.mark(&id("a"));
        assert_eq!(b.take(1), [(id("a"), Pending::Evicted(Box::new(rec)))]);
    }

    #[test]
    fn beyond_its_bound_changes_are_dropped_and_counted() {
        let mut b = Backlog::new(2);
        b.mark(&id("a"));
        b.mark(&id("b"));
        assert!(!b.mark(&id("c")));
        assert!(b.mark(&id("a")), "a pending task is no new entry");
        assert_eq!((b.len(), b.dropped()), (2, 1));
        assert_eq!(b.take(1).len(), 1);
        assert!(b.mark(&id("c")));
    }
}
