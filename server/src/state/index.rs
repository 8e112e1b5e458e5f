//! Orders over the retained tasks, kept by the state owner as events
//! arrive, so that Flower's common listings (newest first, filtered by
//! state, name or worker, paged) read what they return instead of sorting
//! everything retained.
//!
//! One order, newest `timestamp` first, over every task and per state,
//! name and worker. An entry is one `u128`: the timestamp's total-order
//! bits above the task's slot index, so a `BTreeSet<u128>` holds each order
//! at 16 bytes an entry plus the B-tree's nodes. Tasks with equal
//! timestamps come out in slot order, not by id: the reader re-orders each
//! run of equal timestamps (see `query::indexed`), which keeps the entries
//! small.
//!
//! The index remembers each slot's current keys, so an update removes the
//! old entries without the caller knowing what they were. Maps drop a key
//! once its last task goes, so memory follows what is retained.

use std::collections::BTreeSet;
use std::ops::Bound;

use hashbrown::HashMap;

use super::intern::{Live, Sym};
use super::merge::StateCode;

/// What the index knows of one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keys {
    /// [`time_key`] of the task's `timestamp` (none counts as 0).
    pub time: u64,
    pub state: StateCode,
    pub name: Option<Sym>,
    pub worker: Option<Sym>,
}

/// A secondary order's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndexKey {
    State(StateCode),
    Name(Sym),
    Worker(Sym),
}

/// A place in an order: the entries strictly below it come next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor(u128);

impl Cursor {
    /// The slot this entry names.
    pub fn slot(self) -> u32 {
        // The low 32 bits are the slot by construction.
        (self.0 & u128::from(u32::MAX)) as u32
    }

    /// The entry's [`time_key`].
    pub fn time(self) -> u64 {
        // The bits above the slot are the time by construction.
        (self.0 >> 32) as u64
    }

    /// The place below which every entry is older than this one.
    pub fn before_time(self) -> Cursor {
        Cursor(entry(self.time(), 0))
    }
}

/// Maps a timestamp to bits whose unsigned order is `f64::total_cmp`'s,
/// the order the default listing sorts by. No timestamp (NaN here) counts
/// as 0, as the listing reads it.
pub fn time_key(timestamp: f64) -> u64 {
    let t = if timestamp.is_nan() { 0.0 } else { timestamp };
    let bits = t.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

fn entry(time: u64, slot: u32) -> u128 {
    (u128::from(time) << 32) | u128::from(slot)
}

#[derive(Debug, Default)]
pub struct Index {
    /// By slot index: the keys the entries below were made from.
    keys: Vec<Option<Keys>>,
    newest: BTreeSet<u128>,
    by: HashMap<IndexKey, BTreeSet<u128>>,
}

impl Index {
    /// Sets the keys of the task in `slot`, moving its entries if they
    /// changed.
    pub fn update(&mut self, slot: u32, keys: Keys) {
        let i = slot as usize;
        if self.keys.len() <= i {
            self.keys.resize(i + 1, None);
        }
        if self.keys[i] == Some(keys) {
            return;
        }
        self.remove(slot);
        let e = entry(keys.time, slot);
        self.newest.insert(e);
        for k in secondary(&keys) {
            self.by.entry(k).or_default().insert(e);
        }
        self.keys[i] = Some(keys);
    }

    /// Forgets the task in `slot` (evicted).
    pub fn remove(&mut self, slot: u32) {
        let Some(old) = self.keys.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        let e = entry(old.time, slot);
        self.newest.remove(&e);
        for k in secondary(&old) {
            if let Some(set) = self.by.get_mut(&k) {
                set.remove(&e);
                if set.is_empty() {
                    self.by.remove(&k);
                }
            }
        }
    }

    /// The secondary keys that hold tasks, with how many each holds.
    pub fn keys(&self) -> impl Iterator<Item = (IndexKey, usize)> + '_ {
        self.by.iter().map(|(k, set)| (*k, set.len()))
    }

    /// Marks the names and workers the index holds.
    pub fn mark(&self, live: &mut Live) {
        for k in self.keys.iter().flatten() {
            live.mark_opt(k.name);
            live.mark_opt(k.worker);
        }
    }

    /// Tasks in the index.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.newest.len()
    }

    /// Entries newest first, strictly below `below` when given; from every
    /// task, or from the tasks under `key`.
    pub fn newest_first(
        &self,
        key: Option<IndexKey>,
        below: Option<Cursor>,
    ) -> impl Iterator<Item = Cursor> + '_ {
        let set = match key {
            None => Some(&self.newest),
            Some(k) => self.by.get(&k),
        };
        let upper = below.map_or(Bound::Unbounded, |c| Bound::Excluded(c.0));
        set.into_iter()
            .flat_map(move |s| s.range((Bound::Unbounded, upper)).rev())
            .map(|&e| Cursor(e))
    }

    /// Tasks under `key`.
    #[cfg(test)]
    pub fn count(&self, key: IndexKey) -> usize {
        self.by.get(&key).map_or(0, BTreeSet::len)
    }
}

fn secondary(k: &Keys) -> impl Iterator<Item = IndexKey> {
    [
        Some(IndexKey::State(k.state)),
        k.name.map(IndexKey::Name),
        k.worker.map(IndexKey::Worker),
    ]
    .into_iter()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(time: f64, state: StateCode) -> Keys {
        Keys {
            time: time_key(time),
            state,
            name: None,
            worker: None,
        }
    }

    #[test]
    fn time_keys_order_as_total_cmp_and_none_counts_as_zero() {
        let xs = [-1e9, -1.5, -0.0, 0.0, 1e-300, 1.0, 1.7e9, f64::INFINITY];
        for w in xs.windows(2) {
            assert!(time_key(w[0]) < time_key(w[1]), "{w:?}");
        }
        assert_eq!(time_key(f64::NAN), time_key(0.0));
    }

    #[test]
    fn updates_move_entries_and_removal_drops_empty_keys() {
        let mut ix = Index::default();
        ix.update(0, keys(10.0, StateCode::Received));
        ix.update(1, keys(20.0, StateCode::Received));
        ix.update(0, keys(30.0, StateCode::Success));
        let order: Vec<u32> = ix.newest_first(None, None).map(Cursor::slot).collect();
        assert_eq!(order, [0, 1]);
        assert_eq!(ix.count(IndexKey::State(StateCode::Received)), 1);
        assert_eq!(ix.count(IndexKey::State(StateCode::Success)), 1);
        ix.remove(0);
        ix.remove(0);
        assert_eq!(ix.len(), 1);
        assert_eq!(ix.keys().count(), 1, "SUCCESS has no task left");
        let first = ix.newest_first(None, None).next();
        assert_eq!(first.map(Cursor::slot), Some(1));
        let after = first.and_then(|c| ix.newest_first(None, Some(c)).next());
        assert_eq!(after, None);
    }
}
