//! String interning: names, hostnames, queues and state names repeat across
//! many tasks, so each is stored once and referenced by a 4-byte symbol.

use std::hash::BuildHasher;
use std::num::NonZeroU32;

use hashbrown::{DefaultHashBuilder, HashTable};

/// An interned string. `Option<Sym>` is 4 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sym(NonZeroU32);

/// Append-only: symbols stay valid for the life of the interner. Hostile
/// input could grow it, but every string it holds is capped by the decoder.
#[derive(Debug, Default)]
pub struct Interner {
    hasher: DefaultHashBuilder,
    // The table holds indexes into `strings`, so each string is allocated once.
    table: HashTable<u32>,
    strings: Vec<Box<str>>,
}

impl Interner {
    pub fn intern(&mut self, s: &str) -> Sym {
        let hash = self.hasher.hash_one(s);
        let strings = &self.strings;
        if let Some(&i) = self.table.find(hash, |&i| &*strings[i as usize] == s) {
            return Self::sym(i);
        }
        let i = u32::try_from(self.strings.len()).unwrap_or(u32::MAX - 1);
        self.strings.push(s.into());
        let (hasher, strings) = (&self.hasher, &self.strings);
        self.table
            .insert_unique(hash, i, |&j| hasher.hash_one(&*strings[j as usize]));
        Self::sym(i)
    }

    pub fn get(&self, s: &str) -> Option<Sym> {
        let hash = self.hasher.hash_one(s);
        self.table
            .find(hash, |&i| &*self.strings[i as usize] == s)
            .map(|&i| Self::sym(i))
    }

    pub fn resolve(&self, sym: Sym) -> &str {
        self.strings.get(sym.0.get() as usize - 1).map_or("", |s| s)
    }

    pub fn len(&self) -> usize {
        self.strings.len()
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
}
