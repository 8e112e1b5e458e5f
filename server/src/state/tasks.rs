//! The task store: an arena of slots with an index by id, creation-order
//! eviction, and parent/child links.

use std::collections::VecDeque;

use hashbrown::HashMap;

use super::ids::{key_of, parse_uuid, IdText, Key};
use super::intern::Sym;
use super::merge::StateCode;

/// "No value" for the `f64` timestamps below: 8 bytes instead of 16.
pub const NONE: f64 = f64::NAN;

pub fn opt(v: f64) -> Option<f64> {
    (!v.is_nan()).then_some(v)
}

/// One retained task. `size_of::<Task>()` is 408 bytes on x86_64 (checked by
/// a test); strings beyond that are args/kwargs/result/exception/traceback
/// and eta/expires, held as Celery sent them.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: IdText,
    pub root_id: Option<IdText>,
    pub parent_id: Option<IdText>,
    pub state: StateCode,
    pub name: Option<Sym>,
    /// `task-sent`'s name beats `task-received`'s (shadow names).
    pub name_from_sent: bool,
    pub worker: Option<Sym>,
    pub client: Option<Sym>,
    pub queue: Option<Sym>,
    pub exchange: Option<Sym>,
    pub routing_key: Option<Sym>,
    pub sent: f64,
    pub received: f64,
    pub started: f64,
    pub succeeded: f64,
    pub failed: f64,
    pub retried: f64,
    pub revoked: f64,
    pub rejected: f64,
    /// Timestamp of the event that set the current state.
    pub timestamp: f64,
    pub runtime: f64,
    pub clock: Option<u64>,
    pub retries: Option<i64>,
    pub args: Option<Box<str>>,
    pub kwargs: Option<Box<str>>,
    pub result: Option<Box<str>>,
    pub exception: Option<Box<str>>,
    pub traceback: Option<Box<str>>,
    pub eta: Option<Box<str>>,
    pub expires: Option<Box<str>>,
    /// May hold evicted children; readers skip those by generation.
    pub children: Vec<SlotRef>,
}

impl Task {
    fn new(id: IdText) -> Task {
        Task {
            id,
            root_id: None,
            parent_id: None,
            // Celery's `Task.state` starts as PENDING, so a first `task-sent`
            // takes the equal-precedence branch.
            state: StateCode::Pending,
            name: None,
            name_from_sent: false,
            worker: None,
            client: None,
            queue: None,
            exchange: None,
            routing_key: None,
            sent: NONE,
            received: NONE,
            started: NONE,
            succeeded: NONE,
            failed: NONE,
            retried: NONE,
            revoked: NONE,
            rejected: NONE,
            timestamp: NONE,
            runtime: NONE,
            clock: None,
            retries: None,
            args: None,
            kwargs: None,
            result: None,
            exception: None,
            traceback: None,
            eta: None,
            expires: None,
            children: Vec::new(),
        }
    }
}

/// A slot index plus the generation it was filled in, so a reference to an
/// evicted task never resolves to the task that reused its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlotRef {
    pub(super) idx: u32,
    gen: u32,
}

#[derive(Debug)]
struct Slot {
    gen: u32,
    task: Option<Task>,
}

#[derive(Debug)]
pub struct Tasks {
    max: usize,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Creation order; every live task appears exactly once, so eviction
    /// pops the front.
    order: VecDeque<SlotRef>,
    by_uuid: HashMap<u128, u32>,
    by_other: HashMap<Box<str>, u32>,
    /// Children whose parent has not arrived yet (Celery's
    /// `_tasks_to_resolve`), bounded by `max` via `pending_order`.
    pending: HashMap<Key, Vec<SlotRef>>,
    pending_order: VecDeque<Key>,
    evicted: u64,
    /// The records evicted since the last [`Tasks::take_evicted`], at most
    /// `max` of them; `None` once there were more (the change feed then
    /// overflows, and keeping them would double what is retained).
    gone: Option<Vec<(SlotRef, Task)>>,
    /// Slots emptied by eviction since [`Tasks::drain_evicted_slots`], so
    /// the state's index can forget them.
    emptied: Vec<u32>,
}

impl Tasks {
    pub fn new(max: usize) -> Tasks {
        Tasks {
            // A store that retains nothing would lose the task an event is
            // being applied to; one is the least that works.
            max: max.max(1),
            slots: Vec::new(),
            free: Vec::new(),
            order: VecDeque::new(),
            by_uuid: HashMap::new(),
            by_other: HashMap::new(),
            pending: HashMap::new(),
            pending_order: VecDeque::new(),
            evicted: 0,
            gone: Some(Vec::new()),
            emptied: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The records evicted since the last call, oldest first, with the
    /// slot each was in; `None` when more than `max` were, and were let go.
    pub fn take_evicted(&mut self) -> Option<Vec<(SlotRef, Task)>> {
        self.gone.replace(Vec::new())
    }

    /// The slots evicted since the last call.
    pub fn drain_evicted_slots(&mut self) -> std::vec::Drain<'_, u32> {
        self.emptied.drain(..)
    }

    /// The task in slot `idx`, whatever its generation.
    pub fn at(&self, idx: u32) -> Option<&Task> {
        self.slots.get(idx as usize)?.task.as_ref()
    }

    pub fn find(&self, id: &str) -> Option<SlotRef> {
        let idx = match parse_uuid(id) {
            Some(u) => self.by_uuid.get(&u),
            None => self.by_other.get(id),
        }?;
        Some(SlotRef {
            idx: *idx,
            gen: self.slots[*idx as usize].gen,
        })
    }

    fn find_key(&self, key: &Key) -> Option<SlotRef> {
        let idx = match key {
            Key::Uuid(u) => self.by_uuid.get(u),
            Key::Other(s) => self.by_other.get(s),
        }?;
        Some(SlotRef {
            idx: *idx,
            gen: self.slots[*idx as usize].gen,
        })
    }

    pub fn get(&self, r: SlotRef) -> Option<&Task> {
        let slot = self.slots.get(r.idx as usize)?;
        if slot.gen == r.gen {
            slot.task.as_ref()
        } else {
            None
        }
    }

    pub fn get_mut(&mut self, r: SlotRef) -> Option<&mut Task> {
        let slot = self.slots.get_mut(r.idx as usize)?;
        if slot.gen == r.gen {
            slot.task.as_mut()
        } else {
            None
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (SlotRef, &Task)> + '_ {
        self.order.iter().filter_map(|&r| Some((r, self.get(r)?)))
    }

    /// Every record the state still holds: the retained tasks and those
    /// evicted since the last [`Tasks::take_evicted`] (still to be reported).
    pub fn records(&self) -> impl Iterator<Item = &Task> + '_ {
        let gone = self.gone.iter().flatten().map(|(_, t)| t);
        self.slots
            .iter()
            .filter_map(|s| s.task.as_ref())
            .chain(gone)
    }

    /// The task with this id, created (after evicting the oldest beyond
    /// `max`) if unknown. The bool says whether it was created.
    pub fn get_or_create(&mut self, id: &str) -> (SlotRef, bool) {
        if let Some(r) = self.find(id) {
            return (r, false);
        }
        while self.order.len() >= self.max {
            self.evict_oldest();
        }
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot { gen: 0, task: None });
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let slot = &mut self.slots[idx as usize];
        let text = IdText::new(id);
        let key = key_of(id);
        slot.task = Some(Task::new(text));
        let r = SlotRef { idx, gen: slot.gen };
        match &key {
            Key::Uuid(u) => {
                self.by_uuid.insert(*u, idx);
            }
            Key::Other(s) => {
                self.by_other.insert(s.clone(), idx);
            }
        }
        self.order.push_back(r);
        self.resolve_pending(&key, r);
        (r, true)
    }

    fn evict_oldest(&mut self) {
        let Some(r) = self.order.pop_front() else {
            return;
        };
        let slot = &mut self.slots[r.idx as usize];
        if slot.gen != r.gen {
            return;
        }
        if let Some(task) = slot.task.take() {
            match &task.id {
                IdText::Uuid(_) => {
                    if let Some(u) = parse_uuid(task.id.as_str()) {
                        self.by_uuid.remove(&u);
                    }
                }
                IdText::Other(s) => {
                    self.by_other.remove(s);
                }
            }
            self.evicted += 1;
            if let Some(gone) = &mut self.gone {
                if gone.len() < self.max {
                    gone.push((r, task));
                } else {
                    self.gone = None;
                }
            }
        }
        slot.gen = slot.gen.wrapping_add(1);
        self.free.push(r.idx);
        self.emptied.push(r.idx);
    }

    /// Records `child` under its parent: at once if the parent is retained,
    /// else when the parent arrives. A task that names itself as parent (a
    /// retry's re-sent message) is not its own child.
    pub fn link_parent(&mut self, child: SlotRef) {
        let Some(task) = self.get(child) else { return };
        let Some(parent_id) = task.parent_id.as_ref() else {
            return;
        };
        if *parent_id == task.id {
            return;
        }
        let key = parent_id.key();
        match self.find_key(&key) {
            Some(parent) => self.add_child(parent, child),
            None => {
                let waiting = self.pending.entry(key.clone()).or_default();
                if !waiting.contains(&child) {
                    waiting.push(child);
                }
                self.pending_order.push_back(key);
                while self.pending_order.len() > self.max {
                    if let Some(old) = self.pending_order.pop_front() {
                        self.pending.remove(&old);
                    }
                }
            }
        }
    }

    fn resolve_pending(&mut self, key: &Key, parent: SlotRef) {
        let Some(children) = self.pending.remove(key) else {
            return;
        };
        let Some(parent_text) = self.get(parent).map(|p| p.id.clone()) else {
            return;
        };
        for child in children {
            // The child may have been evicted, or re-parented since.
            let still = self
                .get(child)
                .is_some_and(|c| c.parent_id.as_ref() == Some(&parent_text));
            if still && child != parent {
                self.add_child(parent, child);
            }
        }
    }

    fn add_child(&mut self, parent: SlotRef, child: SlotRef) {
        let live: Vec<bool>;
        {
            let Some(p) = self.get(parent) else { return };
            if p.children.contains(&child) {
                return;
            }
            // Prune evicted children now and then so a long-lived parent of
            // many short-lived children stays small.
            let n = p.children.len();
            live = if n >= 16 && n.is_power_of_two() {
                p.children.iter().map(|&c| self.get(c).is_some()).collect()
            } else {
                Vec::new()
            };
        }
        let Some(p) = self.get_mut(parent) else {
            return;
        };
        if !live.is_empty() {
            let mut it = live.iter();
            p.children.retain(|_| it.next().copied().unwrap_or(true));
        }
        p.children.push(child);
    }

    /// Ids of the retained children of `task`.
    pub fn children<'a>(&'a self, task: &'a Task) -> impl Iterator<Item = &'a str> + 'a {
        task.children
            .iter()
            .filter_map(|&c| self.get(c).map(|t| t.id.as_str()))
    }

    pub fn contains(&self, id: &IdText) -> bool {
        self.find_key(&id.key()).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_stays_small() {
        let size = std::mem::size_of::<Task>();
        assert!(size <= 408, "size_of::<Task>() = {size}");
    }

    #[test]
    fn eviction_is_oldest_created_first_and_slots_are_reused_safely() {
        let mut t = Tasks::new(3);
        let ids: Vec<String> = (0..5).map(|i| format!("t{i}")).collect();
        let refs: Vec<SlotRef> = ids.iter().map(|id| t.get_or_create(id).0).collect();
        assert_eq!(t.len(), 3);
        assert_eq!(t.evicted(), 2);
        assert!(t.find("t0").is_none() && t.find("t1").is_none());
        assert!(t.find("t2").is_some() && t.find("t4").is_some());
        // t3 reused t0's slot: the old reference must not see it.
        assert!(t.get(refs[0]).is_none());
        assert_eq!(t.get(refs[3]).map(|x| x.id.as_str()), Some("t3"));
        // Touching an old task does not refresh it: order is by creation.
        t.get_or_create("t2");
        t.get_or_create("t5");
        assert!(t.find("t2").is_none());
        let left: Vec<&str> = t.iter().map(|(_, x)| x.id.as_str()).collect();
        assert_eq!(left, ["t3", "t4", "t5"]);
    }
}
