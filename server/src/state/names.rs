//! Which task names have per-name aggregates of their own.
//!
//! Task names come from the cluster's code, but a bug or an attack can make
//! them unbounded (a name built from data). Everything kept per name (the
//! counters behind `/metrics`, the dashboard's task types, `/api/task/types`)
//! is bounded here: the first `max` names met keep their own aggregates, for
//! good, so a name never moves between its own series and [`OTHER_NAME`]
//! and every counter stays monotonic; later names are counted under
//! [`OTHER_NAME`]. A task's own name is never rewritten: only aggregates
//! fold.

use hashbrown::HashSet;

use super::intern::{Live, Sym};

/// The name folded names are counted under.
pub const OTHER_NAME: &str = "other";

#[derive(Debug)]
pub struct TaskNames {
    max: usize,
    /// The names with aggregates of their own, at most `max`.
    kept: HashSet<Sym>,
    /// Labels outside the cap: `other` and `unknown`.
    own: [Sym; 2],
    /// Folded names still interned, so each is counted once while any
    /// retained task holds it; pruned by every sweep of the interner.
    folded: HashSet<Sym>,
    folded_total: u64,
}

impl TaskNames {
    /// `other` and `unknown` are celeriac's labels and take no place under
    /// the cap.
    pub fn new(max: usize, other: Sym, unknown: Sym) -> TaskNames {
        TaskNames {
            max,
            kept: HashSet::new(),
            own: [other, unknown],
            folded: HashSet::new(),
            folded_total: 0,
        }
    }

    pub fn other(&self) -> Sym {
        self.own[0]
    }

    /// The label aggregates count `name` under: the name itself while the
    /// cap has room or once it has it, else `other`.
    pub fn label(&mut self, name: Sym) -> Sym {
        if self.own.contains(&name) || self.kept.contains(&name) {
            return name;
        }
        if self.kept.len() < self.max {
            self.kept.insert(name);
            return name;
        }
        if self.folded.insert(name) {
            self.folded_total += 1;
        }
        self.other()
    }

    /// Whether `name` has aggregates of its own.
    pub fn is_kept(&self, name: Sym) -> bool {
        self.kept.contains(&name)
    }

    /// The names with aggregates of their own, in no order.
    pub fn kept(&self) -> impl Iterator<Item = Sym> + '_ {
        self.kept.iter().copied()
    }

    /// Names met beyond the cap; a name is counted again only if it comes
    /// back after every task holding it was evicted and its string freed.
    pub fn folded_total(&self) -> u64 {
        self.folded_total
    }

    /// Marks what must stay interned: the kept names and the own labels.
    pub fn mark(&self, live: &mut Live) {
        for &s in self.kept.iter().chain(&self.own) {
            live.mark(s);
        }
    }

    /// Forgets folded names whose strings a sweep is about to free.
    pub fn forget_freed(&mut self, live: &Live) {
        self.folded.retain(|&s| live.has(s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::intern::Interner;

    #[test]
    fn names_beyond_the_cap_fold_and_are_counted_once() {
        let mut strings = Interner::default();
        let (other, unknown) = (strings.intern(OTHER_NAME), strings.intern("unknown"));
        let mut names = TaskNames::new(2, other, unknown);
        let [a, b, c, d] = ["a", "b", "c", "d"].map(|n| strings.intern(n));
        assert_eq!(names.label(a), a);
        assert_eq!(names.label(unknown), unknown, "unknown takes no place");
        assert_eq!(names.label(b), b);
        assert_eq!(names.label(c), other);
        assert_eq!(names.label(c), other);
        assert_eq!(names.label(d), other);
        assert_eq!(names.label(a), a, "a kept name stays kept");
        assert_eq!(names.folded_total(), 2);
        assert!(names.is_kept(b) && !names.is_kept(c));

        // c's string is freed (no task holds it): met again, it counts again.
        let mut live = strings.live();
        names.mark(&mut live);
        live.mark(d);
        names.forget_freed(&live);
        strings.sweep(&live);
        let c = strings.intern("c");
        assert_eq!(names.label(c), other);
        assert_eq!(names.label(d), other);
        assert_eq!(names.folded_total(), 3);
    }
}
