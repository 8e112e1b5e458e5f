//! The cardinality guard: at most `--max-task-names` distinct task names per
//! metric. Names are kept in first-seen order (the order the state created
//! their series), so a name never moves between its own series and `other`
//! and every exported counter stays monotonic; series of later names are
//! summed into `name="other"` per (hostname, queue).

use std::hash::{Hash, Hasher};

use hashbrown::{HashMap, HashSet};

use crate::state::{Stamp, TaskCounts, TaskSeries};

/// The name folded series are exported under.
pub const OTHER: &str = "other";

/// Folded series, owned; borrow them into [`TaskSeries`] with [`Folded::series`].
pub struct Folded<'a> {
    merged: Vec<((&'a str, &'a str), TaskCounts, Stamp)>,
    /// Distinct names folded into `other`.
    pub names_folded: usize,
}

impl<'a> Folded<'a> {
    pub fn series(&self) -> impl Iterator<Item = TaskSeries<'_>> + '_ {
        self.merged
            .iter()
            .map(|((hostname, queue), counts, stamp)| TaskSeries {
                name: OTHER,
                hostname,
                queue,
                counts,
                stamp: *stamp,
            })
    }
}

/// Keeps the series of the first `max` names in `series` and returns the
/// others summed.
pub fn fold<'a>(series: &mut Vec<TaskSeries<'a>>, max: usize) -> Folded<'a> {
    let mut names: HashSet<&str> = HashSet::new();
    let mut folded_names: HashSet<&str> = HashSet::new();
    let mut merged: Vec<((&'a str, &'a str), TaskCounts, Stamp)> = Vec::new();
    let mut index: HashMap<(&'a str, &'a str), usize> = HashMap::new();
    series.retain(|s| {
        if names.contains(s.name) || (names.len() < max && names.insert(s.name)) {
            return true;
        }
        folded_names.insert(s.name);
        let key = (s.hostname, s.queue);
        let i = *index.entry(key).or_insert_with(|| {
            let stamp = Stamp {
                id: folded_id(key),
                changed: 0,
            };
            merged.push((key, TaskCounts::default(), stamp));
            merged.len() - 1
        });
        let (_, counts, stamp) = &mut merged[i];
        add(counts, s.counts);
        // Changes whenever a part changes, is added or is dropped, whatever
        // the order; a sum of the parts' stamps could stand still when one
        // part goes as another changes.
        stamp.changed = stamp.changed.wrapping_add(mix(s.stamp));
        false
    });
    Folded {
        merged,
        names_folded: folded_names.len(),
    }
}

/// Folded series' ids: the top bit set, apart from the state's own (a
/// counter), and the same for the same (hostname, queue) on every scrape.
fn folded_id(key: (&str, &str)) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish() | 1 << 63
}

/// splitmix64's finaliser over a part's stamp.
fn mix(s: Stamp) -> u64 {
    let mut z = s.id.rotate_left(32) ^ s.changed;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn add(into: &mut TaskCounts, c: &TaskCounts) {
    into.sent += c.sent;
    into.received += c.received;
    into.started += c.started;
    into.succeeded += c.succeeded;
    into.rejected += c.rejected;
    into.revoked += c.revoked;
    into.retried += c.retried;
    into.lost += c.lost;
    for (class, n) in c.failed() {
        match into.failed.iter_mut().find(|(k, _)| k == class) {
            Some((_, m)) => *m += n,
            None => into.failed.push((class.to_owned(), n)),
        }
    }
    into.runtime.add(&c.runtime);
    into.queue_wait.add(&c.queue_wait);
    into.prefetch.add(&c.prefetch);
    into.flower.add(&c.flower);
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
        let s = |name, id| TaskSeries {
            name,
            hostname: "w1@vm",
            queue: "celery",
            counts: &c,
            stamp: Stamp { id, changed: id },
        };
        let mut series = vec![s("a", 1), s("b", 2), s("a", 3), s("c", 4), s("d", 5)];
        let folded = fold(&mut series, 2);
        let kept: Vec<&str> = series.iter().map(|s| s.name).collect();
        assert_eq!(kept, ["a", "b", "a"]);
        assert_eq!(folded.names_folded, 2);
        let other: Vec<_> = folded.series().collect();
        assert_eq!(other.len(), 1);
        assert_eq!(other[0].name, OTHER);
        assert_eq!(other[0].counts.succeeded, 2);
        assert_eq!(other[0].counts.runtime.count, 2);

        // The folded series keeps its id, and its stamp changes when a
        // part changes or goes.
        let folded_stamp = |series: Vec<TaskSeries<'_>>| {
            let mut series = series;
            let f = fold(&mut series, 2);
            let s = f.series().next().unwrap().stamp;
            s
        };
        let base = folded_stamp(vec![s("a", 1), s("b", 2), s("c", 4), s("d", 5)]);
        assert_eq!(base, other[0].stamp);
        assert!(base.id >= 1 << 63);
        let mut changed = s("d", 5);
        changed.stamp.changed = 6;
        let after = folded_stamp(vec![s("a", 1), s("b", 2), s("c", 4), changed]);
        assert_eq!(after.id, base.id);
        assert_ne!(after.changed, base.changed);
        let dropped = folded_stamp(vec![s("a", 1), s("b", 2), s("d", 5)]);
        assert_ne!(dropped.changed, base.changed);
    }
}
