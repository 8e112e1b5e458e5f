//! String interning: names, hostnames, queues and state names repeat across
//! many tasks, so each is stored once and referenced by a 4-byte symbol.
//!
//! Strings are freed by a sweep, not by reference counts: a count would
//! have to be released wherever a symbol is dropped, evicted task records
//! included, and those are dropped far from the interner. The state marks
//! every symbol it still holds ([`Live`]) and [`Interner::sweep`] frees the
//! rest; a freed slot is reused by a later string.

use std::hash::BuildHasher;
use std::num::NonZeroU32;

use hashbrown::{DefaultHashBuilder, HashTable};

/// An interned string. `Option<Sym>` is 4 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sym(NonZeroU32);

impl Sym {
    fn index(self) -> usize {
        self.0.get() as usize - 1
    }
}

/// A symbol stays valid until a sweep that does not find it live; only the
/// state owner sweeps, and only symbols nothing retained holds are freed.
/// Every string it holds is capped by the decoder.
#[derive(Debug, Default)]
pub struct Interner {
    hasher: DefaultHashBuilder,
    // The table holds indexes into `strings`, so each string is allocated once.
    table: HashTable<u32>,
    /// `None`: a freed slot, listed in `free`.
    strings: Vec<Option<Box<str>>>,
    free: Vec<u32>,
}

/// The symbols a sweep keeps: one bit per slot.
#[derive(Debug)]
pub struct Live(Vec<u64>);

impl Live {
    pub fn mark(&mut self, sym: Sym) {
        let i = sym.index();
        if let Some(w) = self.0.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    pub fn mark_opt(&mut self, sym: Option<Sym>) {
        if let Some(s) = sym {
            self.mark(s);
        }
    }

    pub fn has(&self, sym: Sym) -> bool {
        let i = sym.index();
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

impl Interner {
    pub fn intern(&mut self, s: &str) -> Sym {
        let hash = self.hasher.hash_one(s);
        let strings = &self.strings;
        if let Some(&i) = self
            .table
            .find(hash, |&i| strings[i as usize].as_deref() == Some(s))
        {
            return Self::sym(i);
        }
        let i = match self.free.pop() {
            Some(i) => {
                self.strings[i as usize] = Some(s.into());
                i
            }
            None => {
                let i = u32::try_from(self.strings.len()).unwrap_or(u32::MAX - 1);
                self.strings.push(Some(s.into()));
                i
            }
        };
        let (hasher, strings) = (&self.hasher, &self.strings);
        self.table.insert_unique(hash, i, |&j| {
            hasher.hash_one(strings[j as usize].as_deref().unwrap_or(""))
        });
        Self::sym(i)
    }

    pub fn get(&self, s: &str) -> Option<Sym> {
        let hash = self.hasher.hash_one(s);
        self.table
            .find(hash, |&i| self.strings[i as usize].as_deref() == Some(s))
            .map(|&i| Self::sym(i))
    }

    pub fn resolve(&self, sym: Sym) -> &str {
        self.strings
            .get(sym.index())
            .and_then(Option::as_deref)
            .unwrap_or("")
    }

    /// Strings held (freed ones not counted).
    pub fn len(&self) -> usize {
        self.strings.len() - self.free.len()
    }

    /// An empty mark set sized for every symbol handed out so far.
    pub fn live(&self) -> Live {
        Live(vec![0; self.strings.len().div_ceil(64)])
    }

    /// Frees every string `live` does not mark; returns how many. Symbols of
    /// freed strings must not be resolved again: they may name another
    /// string later.
    pub fn sweep(&mut self, live: &Live) -> usize {
        let (strings, free) = (&mut self.strings, &mut self.free);
        let mut freed = 0;
        self.table.retain(|&mut i| {
            if live.has(Self::sym(i)) {
                return true;
            }
            strings[i as usize] = None;
            free.push(i);
            freed += 1;
            false
        });
        // Trailing free slots are given back, so that the slots (and the next
        // mark set) shrink again after a burst of names.
        while strings.last().is_some_and(Option::is_none) {
            strings.pop();
        }
        let len = strings.len();
        free.retain(|&i| (i as usize) < len);
        if strings.capacity() > 2 * len + 64 {
            strings.shrink_to(len + len / 2);
        }
        freed
    }

    fn sym(i: u32) -> Sym {
        Sym(NonZeroU32::MIN.saturating_add(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_idempotent_and_resolves() {
        let mut i = Interner::default();
        let a = i.intern("w1@vm");
        let b = i.intern("tasks.add");
        assert_eq!(i.intern("w1@vm"), a);
        assert_ne!(a, b);
        assert_eq!(i.resolve(a), "w1@vm");
        assert_eq!(i.resolve(b), "tasks.add");
        assert_eq!(i.get("tasks.add"), Some(b));
        assert_eq!(i.get("nope"), None);
        assert_eq!(i.len(), 2);
        assert_eq!(std::mem::size_of::<Option<Sym>>(), 4);
    }

    #[test]
    fn a_sweep_frees_what_is_not_live_and_reuses_its_slots() {
        let mut i = Interner::default();
        let keep = i.intern("w1@vm");
        let names: Vec<Sym> = (0..100).map(|n| i.intern(&format!("t{n}"))).collect();
        let mut live = i.live();
        live.mark(keep);
        live.mark(names[10]);
        assert_eq!(i.sweep(&live), 99);
        assert_eq!(i.len(), 2);
        assert_eq!(i.resolve(keep), "w1@vm");
        assert_eq!(i.resolve(names[10]), "t10");
        assert_eq!(i.get("t5"), None);
        assert_eq!(i.get("t10"), Some(names[10]));
        // Slots beyond the last live one are given back; freed ones below
        // it are reused before the slots grow.
        assert!(i.live().0.len() * 64 <= 64);
        let again = i.intern("t5");
        assert_ne!(again, keep);
        assert_ne!(again, names[10]);
        assert_eq!(i.resolve(again), "t5");
        assert_eq!(i.intern("t10"), names[10]);
        assert_eq!(i.len(), 3);
        // Nothing freed twice: a second sweep with everything live frees none.
        let mut all = i.live();
        for s in [keep, names[10], again] {
            all.mark(s);
        }
        assert_eq!(i.sweep(&all), 0);
        assert_eq!(i.len(), 3);
    }
}
