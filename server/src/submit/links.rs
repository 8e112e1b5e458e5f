//! Which task is a re-run of which: the new task's `retry_of` and the old
//! one's `reruns`, kept in memory for `/api/task/info`. Bounded: the oldest
//! links go first.

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;

/// Links kept at most; far more than any operator retries between restarts.
pub const MAX_LINKS: usize = 100_000;

#[derive(Default)]
pub struct Links {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    retry_of: HashMap<String, String>,
    reruns: HashMap<String, Vec<String>>,
    /// New ids, oldest first, for eviction.
    order: VecDeque<String>,
}

impl Links {
    /// Records that `new` re-runs `old`.
    pub fn add(&self, old: &str, new: &str) {
        let mut g = self.inner.lock();
        while g.order.len() >= MAX_LINKS {
            let Some(gone) = g.order.pop_front() else {
                break;
            };
            if let Some(parent) = g.retry_of.remove(&gone) {
                if let Some(list) = g.reruns.get_mut(&parent) {
                    list.retain(|id| *id != gone);
                    if list.is_empty() {
                        g.reruns.remove(&parent);
                    }
                }
            }
        }
        g.retry_of.insert(new.to_string(), old.to_string());
        g.reruns
            .entry(old.to_string())
            .or_default()
            .push(new.to_string());
        g.order.push_back(new.to_string());
    }

    /// The task `id` re-runs, if any.
    pub fn retry_of(&self, id: &str) -> Option<String> {
        self.inner.lock().retry_of.get(id).cloned()
    }

    /// The re-runs of `id`, oldest first.
    pub fn reruns(&self, id: &str) -> Vec<String> {
        self.inner
            .lock()
            .reruns
            .get(id)
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_both_ways_and_evicts_the_oldest() {
        let l = Links::default();
        l.add("a", "b");
        l.add("a", "c");
        l.add("b", "d");
        assert_eq!(l.retry_of("c").as_deref(), Some("a"));
        assert_eq!(l.reruns("a"), ["b", "c"]);
        assert_eq!(l.reruns("b"), ["d"]);
        assert_eq!(l.retry_of("a"), None);
        for i in 0..MAX_LINKS {
            l.add("x", &format!("n{i}"));
        }
        assert_eq!(l.retry_of("b"), None);
        assert!(l.reruns("a").is_empty());
        assert_eq!(l.reruns("x").len(), MAX_LINKS);
    }
}
