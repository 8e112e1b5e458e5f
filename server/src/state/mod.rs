//! The cluster model. Pure: no I/O, no clock reads (time is passed in).
//!
//! Tasks merge by Celery's rules (docs/celery-protocol.md §2.5, see `merge`), workers
//! are alive by heartbeat expiry (§2.7, see `workers`), and per-series
//! counters for Prometheus are kept as events arrive (see `aggregates`).
//!
//! Deliberate differences from Celery's `State`:
//! - A task's `timestamp` is the timestamp of the event that set its current
//!   state. Celery also overwrites it (and `clock`) when a lower-precedence
//!   event without a merge rule arrives late (a late `task-sent`, a
//!   `task-started` after `task-succeeded`); we keep the state's own.
//! - Liveness is refreshed by task events at their receive time (`now`), like
//!   heartbeats, not at the sender's timestamp.
//! - JSON `null` never erases a known value (Celery sets the attribute to
//!   `None`): a late event cannot blank `eta`, `parent_id`, ...
//! - Custom task events (`task-progress`) set the state only; their
//!   arbitrary fields are not merged into the task.
//!
//! Series labels (`task_series`) are taken when an event is counted and never
//! moved afterwards, so Prometheus counters stay monotonic: an event of a task
//! whose name is not known yet counts under `unknown`, and one that arrives
//! before the task's `task-sent` (usually `task-received`, §2.4) counts under
//! queue `celery`, as celery-exporter does.
//!
//! Per-name aggregates are bounded (`names`): beyond `max_task_names`
//! distinct names, later names count under `other`. Interned strings are
//! swept (`intern`) when they have doubled since the last sweep, so the
//! names, hostnames and queues of evicted tasks do not pile up.

mod aggregates;
mod changes;
mod ids;
mod index;
mod intern;
mod merge;
mod names;
mod tasks;
mod view;
mod workers;

use api::TaskState;
use hashbrown::{HashMap, HashSet};

use crate::events::{Event, EventKind};

pub use aggregates::{
    exception_class, FlowerPrefetch, Histogram, Stamp, TaskCounts, TaskSeries, EVENT_COUNT_NAMES,
    QUEUE_WAIT_BUCKETS, RUNTIME_BUCKETS, UNKNOWN_EXCEPTION,
};
pub use changes::{Changes, Evicted, TaskId};
pub use merge::{rank as state_rank, LOST};
pub use names::OTHER_NAME;

/// A task id for tests of the change feed's consumers.
#[cfg(test)]
pub fn test_task_id(id: &str) -> TaskId {
    TaskId::new(IdText::new(id))
}
pub use view::TaskView;

use aggregates::{Aggregates, Count};
use changes::Marks;
use ids::IdText;
use index::{time_key, Index, Keys};
pub use index::{Cursor, IndexKey};
use intern::{Interner, Live, Sym};
use merge::{outcome, Outcome, StateCode, BUILTIN_STATES};
use names::TaskNames;
use tasks::{opt, Task, Tasks};
use workers::{WorkerEvent, Workers};

/// Task name used for series of tasks whose name is not known yet.
pub const UNKNOWN_NAME: &str = "unknown";
/// Queue used for series of tasks whose `task-sent` did not name one.
pub const DEFAULT_QUEUE: &str = "celery";

/// Tasks retained by default.
pub const DEFAULT_MAX_TASKS: usize = 100_000;
/// Workers retained by default.
pub const DEFAULT_MAX_WORKERS: usize = 5_000;
/// Distinct task names with aggregates of their own by default.
pub const DEFAULT_MAX_TASK_NAMES: usize = 500;
/// Interned strings below which no sweep runs: a sweep reads every retained
/// task, which is not worth it for a few thousand strings.
const SWEEP_FLOOR: usize = 4_096;

/// Bounds on what the state retains.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Tasks retained; the oldest-created is evicted beyond this (min 1).
    pub max_tasks: usize,
    /// Workers retained; the longest-silent is evicted beyond this (min 1).
    pub max_workers: usize,
    /// Seconds after which an offline worker is forgotten; `None` keeps them.
    pub purge_offline_after: Option<f64>,
    /// Distinct task names with aggregates of their own (`--max-task-names`);
    /// later names are counted under [`OTHER_NAME`].
    pub max_task_names: usize,
    /// Upper bounds of the runtime histogram (`--buckets`).
    pub runtime_buckets: std::sync::Arc<[f64]>,
    /// Upper bounds of the queue wait and prefetch histograms
    /// (`--queue-wait-buckets`): ascending, finite, positive.
    pub queue_wait_buckets: std::sync::Arc<[f64]>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_tasks: DEFAULT_MAX_TASKS,
            max_workers: DEFAULT_MAX_WORKERS,
            purge_offline_after: None,
            max_task_names: DEFAULT_MAX_TASK_NAMES,
            runtime_buckets: RUNTIME_BUCKETS.into(),
            queue_wait_buckets: QUEUE_WAIT_BUCKETS.into(),
        }
    }
}

/// The model of one cluster.
#[derive(Debug)]
pub struct State {
    limits: Limits,
    strings: Interner,
    tasks: Tasks,
    workers: Workers,
    aggregates: Aggregates,
    /// Which names have aggregates of their own (`/api/task/types` lists them).
    names: TaskNames,
    /// Interned strings at which the next sweep runs.
    sweep_at: usize,
    /// Interned strings freed by sweeps so far.
    strings_freed: u64,
    /// Custom state names by interned event subject (`progress` → PROGRESS).
    subject_states: HashMap<Sym, StateCode>,
    /// Values views borrow for custom states.
    custom_states: HashMap<Sym, TaskState>,
    /// What views of a LOST task borrow.
    lost_state: TaskState,
    /// Tasks declared LOST so far.
    lost_total: u64,
    unknown_name: Sym,
    default_queue: Sym,
    /// The change feed: what changed since the last `take_changes`.
    /// Bounded: beyond `max_tasks` marks it collapses into `overflow`.
    changes: Marks,
    /// Newest-first orders over the tasks, kept as they change.
    index: Index,
}

impl State {
    pub fn new(limits: Limits) -> State {
        let mut strings = Interner::default();
        let unknown_name = strings.intern(UNKNOWN_NAME);
        let default_queue = strings.intern(DEFAULT_QUEUE);
        let other_name = strings.intern(OTHER_NAME);
        let names = TaskNames::new(limits.max_task_names, other_name, unknown_name);
        let aggregates = Aggregates::new(
            limits.runtime_buckets.clone(),
            limits.queue_wait_buckets.clone(),
        );
        State {
            tasks: Tasks::new(limits.max_tasks),
            workers: Workers::new(limits.max_workers),
            limits,
            strings,
            aggregates,
            names,
            sweep_at: SWEEP_FLOOR,
            strings_freed: 0,
            subject_states: HashMap::new(),
            custom_states: HashMap::new(),
            lost_state: TaskState::Custom(LOST.to_owned()),
            lost_total: 0,
            unknown_name,
            default_queue,
            changes: Marks::default(),
            index: Index::default(),
        }
    }

    /// Brings the index up to date with the task in `r` and with the
    /// evictions its creation caused. Called after every change to a task.
    fn reindex(&mut self, r: tasks::SlotRef) {
        for slot in self.tasks.drain_evicted_slots() {
            self.index.remove(slot);
        }
        if let Some(t) = self.tasks.get(r) {
            let keys = Keys {
                time: time_key(t.timestamp),
                state: t.state,
                name: t.name,
                worker: t.worker,
            };
            self.index.update(r.idx, keys);
        }
    }

    /// The change feed: takes what changed since last time. Run once per
    /// tick, not per event: here the marks become ids and the evicted
    /// records owned snapshots.
    pub fn take_changes(&mut self) -> Changes {
        // Here, because the previous tick's `Changes` (whose evicted records
        // hold symbols) were told to every subscriber and dropped by now.
        self.sweep_strings();
        let marks = std::mem::take(&mut self.changes);
        let gone = self.tasks.take_evicted();
        let overflow = marks.overflow || gone.is_none();
        if overflow {
            return Changes {
                workers: marks.workers,
                overflow,
                ..Changes::default()
            };
        }
        // A mark whose slot no longer resolves is a task evicted since:
        // it is reported in `evicted`, from its record.
        let tasks = marks
            .tasks
            .iter()
            .filter_map(|&r| self.tasks.get(r))
            .map(|t| TaskId::new(t.id.clone()))
            .collect();
        let evicted = gone
            .unwrap_or_default()
            .into_iter()
            .map(|(slot, record)| Evicted {
                id: TaskId::new(record.id.clone()),
                changed: marks.tasks.contains(&slot),
                record,
            })
            .collect();
        Changes {
            tasks,
            evicted,
            workers: marks.workers,
            overflow,
        }
    }

    /// An evicted task as `/api/task/info` would have shown it (`root`,
    /// `parent` and `children` name only the tasks retained now).
    pub fn evicted_task(&self, evicted: &Evicted) -> api::Task {
        self.view(&evicted.record).to_api()
    }

    /// The ids of every retained task, oldest-created first.
    pub fn task_ids(&self) -> impl Iterator<Item = TaskId> + '_ {
        self.tasks.iter().map(|(_, t)| TaskId::new(t.id.clone()))
    }

    /// Puts back a task as a store kept it (history, at start-up), unless
    /// an event already made it known. Not an event: no counters move and
    /// no change is marked, since the store already has it.
    pub fn restore(&mut self, t: &api::Task) {
        if self.tasks.find(&t.uuid).is_some() {
            return;
        }
        let state = self.custom_state(t.state.as_str());
        let (r, _) = self.tasks.get_or_create(&t.uuid);
        let strings = &mut self.strings;
        let Some(task) = self.tasks.get_mut(r) else {
            return;
        };
        let mut sym = |s: &Option<String>| s.as_deref().map(|s| strings.intern(s));
        task.state = state;
        task.name = sym(&t.name);
        task.name_from_sent = t.sent.is_some();
        task.worker = sym(&t.worker);
        task.client = sym(&t.client);
        task.queue = sym(&t.queue);
        task.exchange = sym(&t.exchange);
        task.routing_key = sym(&t.routing_key);
        let time = |v: Option<f64>| v.unwrap_or(tasks::NONE);
        task.sent = time(t.sent);
        task.received = time(t.received);
        task.started = time(t.started);
        task.succeeded = time(t.succeeded);
        task.failed = time(t.failed);
        task.retried = time(t.retried);
        task.revoked = time(t.revoked);
        task.rejected = time(t.rejected);
        task.timestamp = time(t.timestamp);
        task.runtime = time(t.runtime);
        task.clock = t.clock;
        task.retries = t.retries;
        let text = |v: &Option<String>| v.as_deref().map(Box::from);
        task.args = text(&t.args);
        task.kwargs = text(&t.kwargs);
        task.result = text(&t.result);
        task.exception = text(&t.exception);
        task.traceback = text(&t.traceback);
        task.eta = text(&t.eta);
        task.expires = text(&t.expires);
        task.root_id = t.root_id.as_deref().map(IdText::new);
        task.parent_id = t.parent_id.as_deref().map(IdText::new);
        let name = task.name;
        if t.parent_id.is_some() {
            self.tasks.link_parent(r);
        }
        if let Some(n) = name {
            self.names.label(n);
        }
        self.reindex(r);
    }

    /// Dashboard (`/ws`): the changed tasks still retained.
    pub fn changed_tasks<'a>(&'a self, c: &'a Changes) -> impl Iterator<Item = TaskView<'a>> {
        c.tasks.iter().filter_map(|id| self.task(id.as_str()))
    }

    /// Dashboard (`/ws`): the `n` most recently created tasks, oldest first.
    pub fn recent_tasks(&self, n: usize) -> impl Iterator<Item = TaskView<'_>> {
        let skip = self.tasks.len().saturating_sub(n);
        self.tasks.iter().skip(skip).map(|(_, t)| self.view(t))
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Applies one event. `now` = when celeriac received it (Celery's
    /// `local_received`).
    pub fn apply(&mut self, event: &Event, now: f64) {
        let kind = match &event.kind {
            EventKind::WorkerOnline => WorkerEvent::Online,
            EventKind::WorkerHeartbeat => WorkerEvent::Heartbeat,
            EventKind::WorkerOffline => WorkerEvent::Offline,
            EventKind::Other(_) => return,
            _ => {
                self.apply_task(event, now);
                return self.forget_evicted_workers();
            }
        };
        self.apply_worker(event, kind, now);
        self.forget_evicted_workers();
    }

    fn apply_worker(&mut self, ev: &Event, kind: WorkerEvent, now: f64) {
        self.changes.workers = true;
        let host = self.strings.intern(&ev.hostname);
        let strings = &mut self.strings;
        let Some(w) = self.workers.worker_event(host, kind, now) else {
            return;
        };
        // Celery sets every field the event carries; absent ones (the
        // wake-up reply has no active/processed/loadavg) keep their value.
        if let Some(f) = ev.freq.filter(|f| f.is_finite() && *f > 0.0) {
            w.freq = f;
        }
        w.active = ev.active.or(w.active);
        w.processed = ev.processed.or(w.processed);
        w.loadavg = ev.loadavg.or(w.loadavg);
        let mut sym =
            |s: &Option<String>, old: Option<Sym>| s.as_deref().map(|s| strings.intern(s)).or(old);
        w.sw_ident = sym(&ev.sw_ident, w.sw_ident);
        w.sw_ver = sym(&ev.sw_ver, w.sw_ver);
        w.sw_sys = sym(&ev.sw_sys, w.sw_sys);
        w.pid = ev.pid.or(w.pid);
        w.clock = ev.clock.or(w.clock);
        w.utcoffset = ev.utcoffset.or(w.utcoffset);
        w.timestamp = Some(ev.timestamp);
    }

    fn state_code(&mut self, kind: &EventKind) -> StateCode {
        match kind {
            EventKind::TaskSent => StateCode::Pending,
            EventKind::TaskReceived => StateCode::Received,
            EventKind::TaskStarted => StateCode::Started,
            EventKind::TaskSucceeded => StateCode::Success,
            EventKind::TaskFailed => StateCode::Failure,
            EventKind::TaskRetried => StateCode::Retry,
            EventKind::TaskRevoked => StateCode::Revoked,
            EventKind::TaskRejected => StateCode::Rejected,
            EventKind::TaskCustom(subject) => self.custom_state(subject),
            // Not task events; callers never ask.
            EventKind::WorkerOnline
            | EventKind::WorkerHeartbeat
            | EventKind::WorkerOffline
            | EventKind::Other(_) => StateCode::Pending,
        }
    }

    /// Celery upper-cases the subject; a subject that names a built-in
    /// state (`task-pending`) is that state, with its precedence.
    fn custom_state(&mut self, subject: &str) -> StateCode {
        let subj = self.strings.intern(subject);
        if let Some(&code) = self.subject_states.get(&subj) {
            return code;
        }
        let code = match TaskState::parse(subject) {
            // A store gives LOST back as it wrote it (history, at start-up).
            TaskState::Custom(s) if s == LOST => StateCode::Lost,
            TaskState::Pending => StateCode::Pending,
            TaskState::Received => StateCode::Received,
            TaskState::Started => StateCode::Started,
            TaskState::Success => StateCode::Success,
            TaskState::Failure => StateCode::Failure,
            TaskState::Retry => StateCode::Retry,
            TaskState::Revoked => StateCode::Revoked,
            TaskState::Rejected => StateCode::Rejected,
            custom @ TaskState::Custom(_) => {
                let sym = self.strings.intern(custom.as_str());
                self.custom_states.entry(sym).or_insert(custom);
                StateCode::Custom(sym)
            }
        };
        self.subject_states.insert(subj, code);
        code
    }

    fn apply_task(&mut self, ev: &Event, now: f64) {
        let Some(uuid) = ev.uuid.as_deref() else {
            return;
        };
        let host = self.strings.intern(&ev.hostname);
        let is_sent = ev.kind == EventKind::TaskSent;
        if !is_sent {
            self.workers.task_seen(host, now);
        }
        let new_state = self.state_code(&ev.kind);
        let (r, _) = self.tasks.get_or_create(uuid);
        self.changes.task(r, self.limits.max_tasks);
        self.changes.workers |= !is_sent;
        let strings = &mut self.strings;
        let Some(task) = self.tasks.get_mut(r) else {
            return;
        };
        let ts = ev.timestamp;
        let count = match &ev.kind {
            EventKind::TaskSent => {
                task.sent = ts;
                Some(Count::Sent)
            }
            EventKind::TaskReceived => {
                task.received = ts;
                Some(Count::Received)
            }
            EventKind::TaskStarted => {
                task.started = ts;
                // Metrics: queue wait (sent → started) and prefetch time
                // (received → started); ETA/countdown tasks are excluded.
                let eta = task.eta.is_some() || ev.eta.is_some();
                let since = |t: f64| (!eta && !t.is_nan()).then(|| (ts - t).max(0.0));
                Some(Count::Started {
                    queue_wait: since(task.sent),
                    prefetch: since(task.received),
                })
            }
            EventKind::TaskSucceeded => {
                task.succeeded = ts;
                Some(Count::Succeeded {
                    runtime: ev.runtime,
                })
            }
            EventKind::TaskFailed => {
                task.failed = ts;
                Some(Count::Failed {
                    exception: ev.exception.as_deref(),
                })
            }
            EventKind::TaskRetried => {
                task.retried = ts;
                Some(Count::Retried)
            }
            EventKind::TaskRevoked => {
                task.revoked = ts;
                Some(Count::Revoked)
            }
            EventKind::TaskRejected => {
                task.rejected = ts;
                Some(Count::Rejected)
            }
            _ => None,
        };
        if is_sent {
            task.client = Some(host);
        } else {
            task.worker = Some(host);
        }
        let fields = match outcome(task.state, new_state) {
            Outcome::SetState => {
                task.state = new_state;
                task.timestamp = ts;
                task.clock = ev.clock;
                Fields::All
            }
            Outcome::MergeOnly if new_state == StateCode::Received => Fields::ReceivedRule,
            Outcome::MergeOnly => Fields::All,
        };
        let mut parent_changed = false;
        if !matches!(ev.kind, EventKind::TaskCustom(_)) {
            parent_changed = merge_fields(task, ev, fields, strings);
        }
        let (name, queue) = (task.name, task.queue);
        // Flower's prefetch gauges read the task as the event left it.
        let flower =
            aggregates::flower_step(&ev.kind, task.eta.is_some(), task.received, task.started);
        if parent_changed {
            self.tasks.link_parent(r);
        }
        if let Some(c) = count {
            let label = name.map_or(self.unknown_name, |n| self.names.label(n));
            let queue = queue.unwrap_or(self.default_queue);
            self.aggregates.count(label, host, queue, c);
            if let Some(step) = flower {
                self.aggregates.flower(label, host, queue, step);
            }
        }
        self.reindex(r);
    }

    /// Metrics: the series of workers evicted beyond `max_workers` go with
    /// them, as a purged worker's do; otherwise a cluster whose workers come
    /// and go (pods with new names) would grow its series without bound.
    fn forget_evicted_workers(&mut self) {
        let evicted = self.workers.take_evicted();
        self.aggregates.remove_hosts(&evicted);
    }

    /// Housekeeping at `now`: declare lost the unfinished tasks of workers
    /// whose heartbeats expired, and forget workers offline longer than
    /// `purge_offline_after`.
    pub fn tick(&mut self, now: f64) {
        for (host, expired_at) in self.workers.newly_expired(now) {
            self.mark_lost(host, expired_at);
        }
        if let Some(after) = self.limits.purge_offline_after {
            let purged = self.workers.purge_offline(now, after);
            // Metrics: a purged worker's task series go with it.
            self.aggregates.remove_hosts(&purged);
        }
    }

    /// A worker that dies without a word (SIGKILL, the OOM killer, a lost
    /// host) sends no `task-failed`: what it had RECEIVED or STARTED would
    /// show so for ever. Once its heartbeats expire those tasks are LOST,
    /// at the expiry time, counted under the worker they died on. A scan
    /// of the retained tasks, but only when a worker expires.
    fn mark_lost(&mut self, host: Sym, at: f64) {
        let lost: Vec<tasks::SlotRef> = self
            .tasks
            .iter()
            .filter(|(_, t)| {
                t.worker == Some(host)
                    && matches!(t.state, StateCode::Received | StateCode::Started)
            })
            .map(|(r, _)| r)
            .collect();
        for r in lost {
            self.changes.task(r, self.limits.max_tasks);
            let Some(task) = self.tasks.get_mut(r) else {
                continue;
            };
            task.state = StateCode::Lost;
            task.timestamp = at;
            let (name, queue) = (task.name, task.queue);
            self.lost_total += 1;
            let label = name.map_or(self.unknown_name, |n| self.names.label(n));
            self.aggregates.count(
                label,
                host,
                queue.unwrap_or(self.default_queue),
                Count::Lost,
            );
            self.reindex(r);
        }
    }

    /// Tasks declared LOST since start.
    pub fn lost_total(&self) -> u64 {
        self.lost_total
    }

    pub fn task(&self, uuid: &str) -> Option<TaskView<'_>> {
        let r = self.tasks.find(uuid)?;
        Some(self.view(self.tasks.get(r)?))
    }

    /// All retained tasks, oldest-created first.
    pub fn tasks(&self) -> impl Iterator<Item = TaskView<'_>> {
        self.tasks.iter().map(|(_, t)| self.view(t))
    }

    /// The retained tasks of the workflow rooted at `root`: the root, every
    /// task whose `root_id` names it, and whatever hangs below those through
    /// children links (a task sent without a root id still has a parent).
    /// At most `max` of them; the bool says whether some were left out.
    ///
    /// One pass over the retained tasks comparing inline ids: a workflow's
    /// members can be anywhere in creation order, and no request is frequent
    /// enough to pay for an index by root on every event.
    pub fn workflow(&self, root: &str, max: usize) -> (Vec<TaskView<'_>>, bool) {
        let root_text = IdText::new(root);
        let mut seen: HashSet<tasks::SlotRef> = HashSet::new();
        let mut members: Vec<tasks::SlotRef> = Vec::new();
        let mut truncated = false;
        let mut take = |r: tasks::SlotRef, members: &mut Vec<tasks::SlotRef>| {
            if members.len() >= max {
                truncated = true;
            } else if seen.insert(r) {
                members.push(r);
            }
        };
        if let Some(r) = self.tasks.find(root) {
            take(r, &mut members);
        }
        for (r, t) in self.tasks.iter() {
            if t.root_id.as_ref() == Some(&root_text) {
                take(r, &mut members);
            }
        }
        let mut next = 0;
        while next < members.len() {
            if let Some(t) = self.tasks.get(members[next]) {
                for &child in &t.children {
                    if self.tasks.get(child).is_some() {
                        take(child, &mut members);
                    }
                }
            }
            next += 1;
        }
        let views = members
            .into_iter()
            .filter_map(|r| self.tasks.get(r))
            .map(|t| self.view(t))
            .collect();
        (views, truncated)
    }

    /// The keys of the secondary orders that hold tasks: each with the
    /// text a filter compares (state, name or hostname) and its task count.
    pub fn index_keys(&self) -> impl Iterator<Item = (IndexKey, &str, usize)> {
        self.index.keys().map(|(k, n)| {
            let text = match k {
                IndexKey::State(code) => self.state_ref(code).as_str(),
                IndexKey::Name(s) | IndexKey::Worker(s) => self.strings.resolve(s),
            };
            (k, text, n)
        })
    }

    /// Retained tasks newest `timestamp` first (none counts as 0; equal
    /// timestamps in no set order), all or those under `key`, from below
    /// `below` on. Costs what is read, not what is retained.
    pub fn newest_first(
        &self,
        key: Option<IndexKey>,
        below: Option<Cursor>,
    ) -> impl Iterator<Item = Cursor> + '_ {
        self.index.newest_first(key, below)
    }

    /// The task at an index entry.
    pub fn indexed(&self, at: Cursor) -> Option<TaskView<'_>> {
        self.tasks.at(at.slot()).map(|t| self.view(t))
    }

    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// Workers with liveness evaluated at `now`, sorted by hostname.
    pub fn workers(&self, now: f64) -> Vec<api::Worker> {
        let mut v: Vec<api::Worker> = self
            .workers
            .iter()
            .map(|w| w.to_api(&self.strings, now))
            .collect();
        v.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        v
    }

    pub fn worker(&self, hostname: &str, now: f64) -> Option<api::Worker> {
        let sym = self.strings.get(hostname)?;
        Some(self.workers.get(sym)?.to_api(&self.strings, now))
    }

    /// Sorted task names with aggregates of their own (Flower's
    /// `/api/task/types`): every name seen, up to `max_task_names`.
    pub fn task_types(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .names
            .kept()
            .map(|s| self.strings.resolve(s).to_owned())
            .collect();
        v.sort();
        v
    }

    /// Whether `name` is a task name seen: one with aggregates of its own,
    /// or that of a retained task.
    pub fn knows_task_name(&self, name: &str) -> bool {
        self.strings.get(name).is_some_and(|s| {
            self.names.is_kept(s)
                || self
                    .newest_first(Some(IndexKey::Name(s)), None)
                    .next()
                    .is_some()
        })
    }

    /// Task names met beyond `max_task_names`, counted under `other`.
    pub fn task_names_folded(&self) -> u64 {
        self.names.folded_total()
    }

    /// Interned strings freed so far (names, hostnames, queues that nothing
    /// retained holds any more).
    pub fn interned_strings_freed(&self) -> u64 {
        self.strings_freed
    }

    /// Frees the interned strings nothing holds, once they have doubled
    /// since the last sweep (and are above [`SWEEP_FLOOR`]), so the cost of a
    /// sweep (a read of every retained task) is spread over as many new
    /// strings as are held. Symbols must not outlive this call anywhere but
    /// in the state: every holder is marked here.
    fn sweep_strings(&mut self) {
        if self.strings.len() < self.sweep_at {
            return;
        }
        let mut live = self.strings.live();
        for s in [self.unknown_name, self.default_queue] {
            live.mark(s);
        }
        self.names.mark(&mut live);
        for t in self.tasks.records() {
            mark_task(&mut live, t);
        }
        for w in self.workers.iter() {
            live.mark(w.hostname);
            for s in [w.sw_ident, w.sw_ver, w.sw_sys] {
                live.mark_opt(s);
            }
        }
        self.aggregates.mark(&mut live);
        self.index.mark(&mut live);
        for (&subject, code) in &self.subject_states {
            live.mark(subject);
            if let StateCode::Custom(s) = code {
                live.mark(*s);
            }
        }
        for &s in self.custom_states.keys() {
            live.mark(s);
        }
        self.names.forget_freed(&live);
        self.strings_freed += self.strings.sweep(&live) as u64;
        self.sweep_at = (2 * self.strings.len()).max(SWEEP_FLOOR);
    }

    /// A sweep now, whatever the count (tests).
    #[cfg(test)]
    pub fn sweep_now(&mut self) {
        self.sweep_at = 0;
        self.sweep_strings();
    }

    /// Pre-aggregated counters per (name, hostname, queue), for Prometheus.
    pub fn task_series(&self) -> impl Iterator<Item = TaskSeries<'_>> {
        self.aggregates.iter(&self.strings)
    }

    /// Distinct names, hostnames, queues, ... held. Those no retained task,
    /// worker or aggregate holds any more are freed by the next sweep
    /// (once the count doubled), so this stays within about twice what is
    /// retained.
    pub fn interned_strings(&self) -> usize {
        self.strings.len()
    }

    /// How many tasks were evicted by `max_tasks`.
    pub fn evicted_tasks(&self) -> u64 {
        self.tasks.evicted()
    }

    fn state_ref(&self, code: StateCode) -> &TaskState {
        match code.builtin_index() {
            Some(i) => &BUILTIN_STATES[i],
            None => match code {
                StateCode::Lost => &self.lost_state,
                StateCode::Custom(sym) => {
                    self.custom_states.get(&sym).unwrap_or(&BUILTIN_STATES[0])
                }
                _ => &BUILTIN_STATES[0],
            },
        }
    }

    fn view<'a>(&'a self, t: &'a Task) -> TaskView<'a> {
        let s = |x: Option<Sym>| x.map(|x| self.strings.resolve(x));
        let known = |id: &'a Option<IdText>| {
            id.as_ref()
                .filter(|id| **id == t.id || self.tasks.contains(id))
                .map(IdText::as_str)
        };
        TaskView {
            uuid: t.id.as_str(),
            name: s(t.name),
            state: self.state_ref(t.state),
            sent: opt(t.sent),
            received: opt(t.received),
            started: opt(t.started),
            succeeded: opt(t.succeeded),
            failed: opt(t.failed),
            retried: opt(t.retried),
            revoked: opt(t.revoked),
            rejected: opt(t.rejected),
            timestamp: opt(t.timestamp),
            args: t.args.as_deref(),
            kwargs: t.kwargs.as_deref(),
            eta: t.eta.as_deref(),
            expires: t.expires.as_deref(),
            retries: t.retries,
            result: t.result.as_deref(),
            exception: t.exception.as_deref(),
            traceback: t.traceback.as_deref(),
            runtime: opt(t.runtime),
            exchange: s(t.exchange),
            routing_key: s(t.routing_key),
            queue: s(t.queue),
            clock: t.clock,
            client: s(t.client),
            worker: s(t.worker),
            root_id: t.root_id.as_ref().map(IdText::as_str),
            parent_id: t.parent_id.as_ref().map(IdText::as_str),
            root: known(&t.root_id),
            parent: known(&t.parent_id),
            children: self.tasks.children(t).collect(),
        }
    }
}

/// Marks every symbol a task record holds.
fn mark_task(live: &mut Live, t: &Task) {
    for s in [
        t.name,
        t.worker,
        t.client,
        t.queue,
        t.exchange,
        t.routing_key,
    ] {
        live.mark_opt(s);
    }
    if let StateCode::Custom(s) = t.state {
        live.mark(s);
    }
}

/// Which of an event's fields merge into the task.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fields {
    All,
    /// Celery's `merge_rules[RECEIVED]`: name, args, kwargs, parent_id,
    /// root_id, retries, eta, expires.
    ReceivedRule,
}

/// Merges the event's fields into the task; returns whether `parent_id`
/// changed. `timestamp` and `clock` are not fields here: they go with the
/// state.
fn merge_fields(task: &mut Task, ev: &Event, fields: Fields, strings: &mut Interner) -> bool {
    if let Some(n) = ev.name.as_deref() {
        if ev.kind == EventKind::TaskSent {
            task.name = Some(strings.intern(n));
            task.name_from_sent = true;
        } else if !task.name_from_sent {
            task.name = Some(strings.intern(n));
        }
    }
    set_str(&mut task.args, &ev.args);
    set_str(&mut task.kwargs, &ev.kwargs);
    set_id(&mut task.root_id, &ev.root_id);
    let parent_changed = set_id(&mut task.parent_id, &ev.parent_id);
    task.retries = ev.retries.or(task.retries);
    set_str(&mut task.eta, &ev.eta);
    set_str(&mut task.expires, &ev.expires);
    if fields == Fields::ReceivedRule {
        return parent_changed;
    }
    let mut sym =
        |s: &Option<String>, old: Option<Sym>| s.as_deref().map(|s| strings.intern(s)).or(old);
    task.queue = sym(&ev.queue, task.queue);
    task.exchange = sym(&ev.exchange, task.exchange);
    task.routing_key = sym(&ev.routing_key, task.routing_key);
    set_str(&mut task.result, &ev.result);
    set_str(&mut task.exception, &ev.exception);
    set_str(&mut task.traceback, &ev.traceback);
    if let Some(rt) = ev.runtime {
        task.runtime = rt;
    }
    parent_changed
}

/// Sets `slot` if the event has a value, reusing the allocation when equal
/// (`task-sent` and `task-received` repeat args and kwargs).
fn set_str(slot: &mut Option<Box<str>>, v: &Option<String>) {
    if let Some(v) = v.as_deref() {
        if slot.as_deref() != Some(v) {
            *slot = Some(v.into());
        }
    }
}

fn set_id(slot: &mut Option<IdText>, v: &Option<String>) -> bool {
    match v.as_deref() {
        Some(v) if !slot.as_ref().is_some_and(|s| s.is(v)) => {
            *slot = Some(IdText::new(v));
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
