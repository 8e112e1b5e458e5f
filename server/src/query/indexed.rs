//! `/api/tasks` through the state's indexes: a newest-first listing walks
//! the newest-first order of every task, or of the tasks of one state, name
//! or worker (the smallest the filters allow), checks the other filters on
//! each task it reads, and stops after `offset + limit` matches. So a page
//! costs what it returns (plus what the filters skip), not what is retained.
//!
//! Only the default order without `search` is answered here; everything
//! else runs [`TaskQuery::run`] over every task, as before. The answers are
//! the same either way (checked on randomized states by the tests).

use std::cmp::Reverse;
use std::iter::Peekable;

use super::{text, Float, TaskQuery};
use crate::state::{Cursor, IndexKey, State, TaskView};

/// One stretch of a newest-first listing.
#[derive(Debug)]
pub struct Stretch<'a> {
    /// Matches in the listing's order.
    pub tasks: Vec<TaskView<'a>>,
    /// Where the next stretch starts; `None` once the order is exhausted.
    pub next: Option<Cursor>,
}

impl TaskQuery {
    /// The page, through the indexes when the query allows, else by
    /// [`TaskQuery::run`] over every retained task.
    pub fn run_state<'a>(&self, state: &'a State) -> Vec<TaskView<'a>> {
        match self.run_indexed(state) {
            Some(page) => page,
            None => self.run(state.tasks()),
        }
    }

    /// Whether the indexes can answer this query: newest first, no search.
    pub fn indexable(&self) -> bool {
        self.sort_by.is_none() && self.search.is_none()
    }

    /// The page through the indexes; `None` when the query needs the
    /// full path (another order, or a search).
    pub fn run_indexed<'a>(&self, state: &'a State) -> Option<Vec<TaskView<'a>>> {
        if !self.indexable() {
            return None;
        }
        if self.limit == Some(0) {
            return Some(Vec::new());
        }
        let need = self
            .limit
            .map_or(usize::MAX, |l| l.saturating_add(self.offset));
        let stretch = self.stretch(state, None, need)?;
        Some(
            stretch
                .tasks
                .into_iter()
                .skip(self.offset)
                .take(self.limit.unwrap_or(usize::MAX))
                .collect(),
        )
    }

    /// At least `need` matches (fewer only when the order ends) from
    /// `below` on, completed to the end of the last one's timestamp so the
    /// next stretch starts at a strictly older one; ignores `offset` and
    /// `limit`. `None` when the query is not [`indexable`](Self::indexable).
    pub fn stretch<'a>(
        &self,
        state: &'a State,
        below: Option<Cursor>,
        need: usize,
    ) -> Option<Stretch<'a>> {
        if !self.indexable() {
            return None;
        }
        let mut walk = match self.narrowest(state) {
            Narrowest::All => Merge::new(vec![state.newest_first(None, below)]),
            Narrowest::Keys(keys) => Merge::new(
                keys.into_iter()
                    .map(|k| state.newest_first(Some(k), below))
                    .collect(),
            ),
            Narrowest::Nothing => {
                return Some(Stretch {
                    tasks: Vec::new(),
                    next: None,
                })
            }
        };
        let mut tasks: Vec<TaskView<'a>> = Vec::new();
        let mut last: Option<Cursor> = None;
        let mut next = None;
        for at in walk.by_ref() {
            if let Some(l) = last.filter(|l| tasks.len() >= need && l.time() != at.time()) {
                // Every entry of `l`'s time was read: resume below it.
                next = Some(l.before_time());
                break;
            }
            let Some(t) = state.indexed(at) else { continue };
            if self.matches(&t) {
                tasks.push(t);
                last = Some(at);
            }
        }
        // The index orders equal timestamps by slot; the listing by id. The
        // stretch is sorted by time already, so this only reorders runs.
        tasks.sort_by_key(|t| Reverse((Float(t.timestamp.unwrap_or(0.0)), t.uuid)));
        Some(Stretch { tasks, next })
    }

    /// The smallest order that holds every match: the keys of one filter
    /// (all those its value matches case-insensitively, usually one).
    fn narrowest(&self, state: &State) -> Narrowest {
        let filters = [
            (self.state.as_deref(), Kind::State),
            (self.taskname.as_deref(), Kind::Name),
            (self.workername.as_deref(), Kind::Worker),
        ];
        let mut best: Option<(usize, Vec<IndexKey>)> = None;
        for (value, kind) in filters {
            let Some(value) = value else { continue };
            let mut total = 0;
            let keys: Vec<IndexKey> = state
                .index_keys()
                .filter(|(k, name, _)| kind.of(*k) && text::eq_folded(name, value))
                .map(|(k, _, n)| {
                    total += n;
                    k
                })
                .collect();
            if best.as_ref().is_none_or(|(n, _)| total < *n) {
                best = Some((total, keys));
            }
        }
        match best {
            None => Narrowest::All,
            Some((_, keys)) if keys.is_empty() => Narrowest::Nothing,
            Some((_, keys)) => Narrowest::Keys(keys),
        }
    }
}

enum Narrowest {
    All,
    Keys(Vec<IndexKey>),
    /// A filter no retained task can pass.
    Nothing,
}

#[derive(Clone, Copy)]
enum Kind {
    State,
    Name,
    Worker,
}

impl Kind {
    fn of(self, k: IndexKey) -> bool {
        matches!(
            (self, k),
            (Kind::State, IndexKey::State(_))
                | (Kind::Name, IndexKey::Name(_))
                | (Kind::Worker, IndexKey::Worker(_))
        )
    }
}

/// Newest-first orders merged into one (a filter value that several keys
/// fold to, `tasks.Add` and `tasks.add`).
struct Merge<I: Iterator<Item = Cursor>> {
    parts: Vec<Peekable<I>>,
}

impl<I: Iterator<Item = Cursor>> Merge<I> {
    fn new(parts: Vec<I>) -> Self {
        Merge {
            parts: parts.into_iter().map(Iterator::peekable).collect(),
        }
    }
}

impl<I: Iterator<Item = Cursor>> Iterator for Merge<I> {
    type Item = Cursor;

    fn next(&mut self) -> Option<Cursor> {
        if let [only] = self.parts.as_mut_slice() {
            return only.next();
        }
        let mut best: Option<(usize, Cursor)> = None;
        for (i, p) in self.parts.iter_mut().enumerate() {
            if let Some(&c) = p.peek() {
                if best.is_none_or(|(_, b)| c > b) {
                    best = Some((i, c));
                }
            }
        }
        let (i, _) = best?;
        self.parts[i].next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, EventKind};
    use crate::state::Limits;

    /// xorshift64*: enough randomness for test inputs, reproducible by seed.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
        }
        fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
            xs[self.below(xs.len())]
        }
    }

    const NAMES: &[&str] = &["tasks.add", "tasks.Add", "tasks.mul", "tâsks.ÉTÉ"];
    const WORKERS: &[&str] = &["w1@h", "W1@h", "w2@h", "w3@h"];

    fn id(i: usize) -> String {
        // Canonical UUIDs and other ids, which order differently as text.
        if i.is_multiple_of(3) {
            format!("task-{i}")
        } else {
            format!("{:08x}-0000-4000-8000-{:012x}", i * 7919 % 100_000, i)
        }
    }

    /// A state built from random events over few timestamps (so many tie),
    /// with evictions, worker losses and restored records.
    fn random_state(seed: u64, events: usize, max_tasks: usize) -> State {
        let mut rng = Rng(seed);
        let mut s = State::new(Limits {
            max_tasks,
            ..Limits::default()
        });
        for n in 0..events {
            let ts = 1_000.0 + rng.below(40) as f64;
            let host = rng.pick(WORKERS);
            if rng.below(50) == 0 {
                let online = Event {
                    kind: EventKind::WorkerOnline,
                    hostname: host.into(),
                    timestamp: ts,
                    freq: Some(2.0),
                    ..Event::default()
                };
                s.apply(&online, ts);
                // Everything this worker holds as RECEIVED/STARTED goes LOST.
                s.tick(ts + 1_000.0);
                continue;
            }
            let uuid = id(rng.below(events / 2 + 1));
            if rng.below(40) == 0 {
                let Some(mut t) = s.task(&uuid).map(|t| t.to_api()) else {
                    continue;
                };
                // A record a store gave back, without a timestamp.
                t.uuid = format!("restored-{n}");
                t.timestamp = None;
                s.restore(&t);
                continue;
            }
            let kind = match rng.below(9) {
                0 => EventKind::TaskSent,
                1 => EventKind::TaskReceived,
                2 => EventKind::TaskStarted,
                3 => EventKind::TaskSucceeded,
                4 => EventKind::TaskFailed,
                5 => EventKind::TaskRetried,
                6 => EventKind::TaskRevoked,
                7 => EventKind::TaskRejected,
                _ => EventKind::TaskCustom("progress".into()),
            };
            let ev = Event {
                kind,
                hostname: host.into(),
                timestamp: ts,
                uuid: Some(uuid),
                name: (rng.below(4) > 0).then(|| rng.pick(NAMES).to_owned()),
                ..Event::default()
            };
            s.apply(&ev, ts);
        }
        s
    }

    fn queries() -> Vec<TaskQuery> {
        let mut out = Vec::new();
        let states = [
            None,
            Some("SUCCESS"),
            Some("received"),
            Some("Progress"),
            Some("LOST"),
            Some("PENDING"),
            Some("nope"),
        ];
        let names = [None, Some("tasks.add"), Some("TÂSKS.été"), Some("nope")];
        let workers = [None, Some("w1@h"), Some("w3@H")];
        let received = [
            (None, None),
            (Some(1_010.0), None),
            (Some(1_005.0), Some(1_020.0)),
        ];
        let pages = [
            (None, 0),
            (Some(0), 0),
            (Some(1), 0),
            (Some(7), 3),
            (Some(50), 40),
        ];
        for state in states {
            for name in names {
                for worker in workers {
                    for (start, end) in received {
                        for (limit, offset) in pages {
                            out.push(TaskQuery {
                                limit,
                                offset,
                                state: state.map(str::to_owned),
                                taskname: name.map(str::to_owned),
                                workername: worker.map(str::to_owned),
                                received_start: start,
                                received_end: end,
                                ..TaskQuery::default()
                            });
                        }
                    }
                }
            }
        }
        out
    }

    fn ids(page: &[TaskView<'_>]) -> Vec<String> {
        page.iter().map(|t| t.uuid.to_owned()).collect()
    }

    #[test]
    fn the_indexed_path_answers_as_the_full_one() {
        let qs = queries();
        for seed in 1..=6u64 {
            // Small enough to evict, large enough to page through.
            for (events, max) in [(400, 1_000), (1_500, 120)] {
                let s = random_state(seed, events, max);
                assert!(s.task_count() > 0);
                let mut nonempty = 0;
                for q in &qs {
                    let full = ids(&q.run(s.tasks()));
                    let indexed = q.run_indexed(&s).map(|p| ids(&p));
                    assert_eq!(indexed.as_ref(), Some(&full), "seed {seed}, {q:?}");
                    nonempty += usize::from(!full.is_empty());
                }
                // The comparison means something only if pages had tasks.
                assert!(nonempty > qs.len() / 6, "{nonempty} of {}", qs.len());
            }
        }
    }

    #[test]
    fn stretches_concatenate_to_the_full_listing() {
        let s = random_state(7, 2_000, 300);
        for q in queries().iter().filter(|q| q.limit.is_none()) {
            let full = ids(&q.run(s.tasks()));
            let mut all = Vec::new();
            let mut below = None;
            loop {
                let st = q.stretch(&s, below, 5).expect("indexable");
                assert!(st.next.is_none() || st.tasks.len() >= 5);
                all.extend(ids(&st.tasks));
                match st.next {
                    Some(c) => below = Some(c),
                    None => break,
                }
            }
            assert_eq!(all, full, "{q:?}");
        }
    }

    #[test]
    fn searches_and_other_orders_take_the_full_path() {
        let s = random_state(3, 300, 1_000);
        let params = |pairs: &[(&str, &str)]| {
            let p: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            TaskQuery::from_params(&p).unwrap()
        };
        for q in [
            params(&[("sort_by", "-received")]),
            params(&[("search", "add")]),
        ] {
            assert!(q.run_indexed(&s).is_none());
            assert_eq!(ids(&q.run_state(&s)), ids(&q.run(s.tasks())));
        }
    }
}
