//! The cardinality guard: at most `--max-task-names` distinct task names per
//! metric. Names are kept in first-seen order (the order the state created
//! their series), so a name never moves between its own series and `other`
//! and every exported counter stays monotonic; series of later names are
//! summed into `name="other"` per (hostname, queue).

use hashbrown::{HashMap, HashSet};

use crate::state::{TaskCounts, TaskSeries};

/// The name folded series are exported under.
pub const OTHER: &str = "other";

/// Folded series, owned; borrow them into [`TaskSeries`] with [`Folded::series`].
pub struct Folded<'a> {
    merged: Vec<((&'a str, &'a str), TaskCounts)>,
    /// Distinct names folded into `other`.
    pub names_folded: usize,
}

impl<'a> Folded<'a> {
    pub fn series(&self) -> impl Iterator<Item = TaskSeries<'_>> + '_ {
        self.merged
            .iter()
            .map(|((hostname, queue), counts)| TaskSeries {
                name: OTHER,
                hostname,
                queue,
                counts,
            })
    }
}

/// Keeps the series of the first `max` names in `series` and returns the
/// others summed.
pub fn fold<'a>(series: &mut Vec<TaskSeries<'a>>, max: usize) -> Folded<'a> {
    let mut names: HashSet<&str> = HashSet::new();
    let mut folded_names: HashSet<&str> = HashSet::new();
    let mut merged: Vec<((&'a str, &'a str), TaskCounts)> = Vec::new();
    let mut index: HashMap<(&'a str, &'a str), usize> = HashMap::new();
    series.retain(|s| {
        if names.contains(s.name) || (names.len() < max && names.insert(s.name)) {
            return true;
        }
        folded_names.insert(s.name);
        let key = (s.hostname, s.queue);
        let i = *index.entry(key).or_insert_with(|| {
            merged.push((key, TaskCounts::default()));
            merged.len() - 1
        });
        add(&mut merged[i].1, s.counts);
        false
    });
    Folded {
        merged,
        names_folded: folded_names.len(),
    }
}

fn add(into: &mut TaskCounts, c: &TaskCounts) {
    into.sent += c.sent;
    into.received += c.received;
    into.started += c.started;
    into.succeeded += c.succeeded;
    into.rejected += c.rejected;
    into.revoked += c.revoked;
    into.retried += c.retried;
    for (class, n) in c.failed() {
        match into.failed.iter_mut().find(|(k, _)| k == class) {
            Some((_, m)) => *m += n,
            None => into.failed.push((class.to_owned(), n)),
        }
    }
    into.runtime.add(&c.runtime);
    into.queue_wait.add(&c.queue_wait);
    into.prefetch.add(&c.prefetch);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_beyond_the_cap_fold_into_other_per_host_and_queue() {
        let mut c = TaskCounts {
            succeeded: 1,
            ..TaskCounts::default()
        };
        c.runtime.observe(0.2);
        let s = |name| TaskSeries {
            name,
            hostname: "w1@vm",
            queue: "celery",
            counts: &c,
        };
        let mut series = vec![s("a"), s("b"), s("a"), s("c"), s("d")];
        let folded = fold(&mut series, 2);
        let kept: Vec<&str> = series.iter().map(|s| s.name).collect();
        assert_eq!(kept, ["a", "b", "a"]);
        assert_eq!(folded.names_folded, 2);
        let other: Vec<_> = folded.series().collect();
        assert_eq!(other.len(), 1);
        assert_eq!(other[0].name, OTHER);
        assert_eq!(other[0].counts.succeeded, 2);
        assert_eq!(other[0].counts.runtime.count, 2);
    }
}
