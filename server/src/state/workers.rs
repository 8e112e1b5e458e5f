//! Workers and their liveness by heartbeat expiry (docs/celery-protocol.md §2.7).

use hashbrown::HashMap;

use super::intern::{Interner, Sym};
use super::tasks::{opt, NONE};

/// Celery's `Worker.freq` default: a worker known only from task events
/// is expected to be heard from every minute.
pub const DEFAULT_FREQ: f64 = 60.0;

/// `HEARTBEAT_EXPIRE_WINDOW / 100`: a worker is alive until two heartbeat
/// intervals pass without a sign of it.
pub const EXPIRE_FACTOR: f64 = 2.0;

#[derive(Debug, Clone)]
pub struct Worker {
    pub hostname: Sym,
    pub freq: f64,
    /// Latest receive time of a heartbeat or task event. Kept after
    /// `worker-offline` for display.
    pub last_heartbeat: f64,
    /// False after `worker-offline` until it is heard from again (Celery
    /// empties its heartbeat list).
    pub beating: bool,
    /// When `worker-offline` arrived.
    pub offline_at: f64,
    /// Its heartbeats expired and its unfinished tasks were declared lost;
    /// cleared when it is heard from again.
    pub expired: bool,
    /// Latest receive time of any event, for longest-silent eviction.
    pub last_seen: f64,
    pub active: Option<i64>,
    pub processed: Option<i64>,
    pub loadavg: Option<[f64; 3]>,
    pub sw_ident: Option<Sym>,
    pub sw_ver: Option<Sym>,
    pub sw_sys: Option<Sym>,
    pub pid: Option<i64>,
    pub clock: Option<u64>,
    pub utcoffset: Option<f64>,
    pub timestamp: Option<f64>,
}

impl Worker {
    fn new(hostname: Sym, now: f64) -> Worker {
        Worker {
            hostname,
            freq: DEFAULT_FREQ,
            last_heartbeat: NONE,
            beating: false,
            offline_at: NONE,
            expired: false,
            last_seen: now,
            active: None,
            processed: None,
            loadavg: None,
            sw_ident: None,
            sw_ver: None,
            sw_sys: None,
            pid: None,
            clock: None,
            utcoffset: None,
            timestamp: None,
        }
    }

    pub fn heartbeat_expires(&self) -> Option<f64> {
        if self.beating {
            opt(self.last_heartbeat + self.freq * EXPIRE_FACTOR)
        } else {
            None
        }
    }

    pub fn alive(&self, now: f64) -> bool {
        self.heartbeat_expires().is_some_and(|exp| now < exp)
    }

    /// Since when it has been offline at `now`, if it is.
    fn offline_since(&self, now: f64) -> Option<f64> {
        match self.heartbeat_expires() {
            Some(exp) if now < exp => None,
            Some(exp) => Some(exp),
            None => Some(if self.offline_at.is_nan() {
                self.last_seen
            } else {
                self.offline_at
            }),
        }
    }

    fn beat(&mut self, at: f64) {
        self.last_heartbeat = if self.beating && self.last_heartbeat > at {
            self.last_heartbeat
        } else {
            at
        };
        self.beating = true;
        self.expired = false;
    }

    pub fn to_api(&self, strings: &Interner, now: f64) -> api::Worker {
        let s = |x: Option<Sym>| x.map(|x| strings.resolve(x).to_owned());
        api::Worker {
            hostname: strings.resolve(self.hostname).to_owned(),
            status: self.alive(now),
            active: self.active,
            processed: self.processed,
            loadavg: self.loadavg,
            freq: Some(self.freq),
            sw_ident: s(self.sw_ident),
            sw_ver: s(self.sw_ver),
            sw_sys: s(self.sw_sys),
            pid: self.pid,
            clock: self.clock,
            utcoffset: self.utcoffset,
            timestamp: self.timestamp,
            last_heartbeat: opt(self.last_heartbeat),
            heartbeat_expires: self.heartbeat_expires(),
        }
    }
}

/// What a worker event carries (`worker-online`/`-heartbeat`/`-offline`).
#[derive(Debug, Clone, Copy)]
pub enum WorkerEvent {
    Online,
    Heartbeat,
    Offline,
}

#[derive(Debug)]
pub struct Workers {
    max: usize,
    map: HashMap<Sym, Worker>,
    /// Workers evicted beyond `max` since the last [`Workers::take_evicted`].
    evicted: Vec<Sym>,
}

impl Workers {
    pub fn new(max: usize) -> Workers {
        Workers {
            max: max.max(1),
            map: HashMap::new(),
            evicted: Vec::new(),
        }
    }

    /// The hostnames evicted to stay within `max` since the last call.
    pub fn take_evicted(&mut self) -> Vec<Sym> {
        std::mem::take(&mut self.evicted)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn get(&self, hostname: Sym) -> Option<&Worker> {
        self.map.get(&hostname)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Worker> + '_ {
        self.map.values()
    }

    fn get_or_create(&mut self, hostname: Sym, now: f64) -> &mut Worker {
        if !self.map.contains_key(&hostname) && self.map.len() >= self.max {
            // New workers are rare, so a scan for the longest-silent is fine.
            let victim = self
                .map
                .values()
                .min_by(|a, b| a.last_seen.total_cmp(&b.last_seen))
                .map(|w| w.hostname);
            if let Some(v) = victim {
                self.map.remove(&v);
                self.evicted.push(v);
            }
        }
        self.map
            .entry(hostname)
            .or_insert_with(|| Worker::new(hostname, now))
    }

    /// A task event from `hostname`: the worker exists and is alive. Uses the
    /// receive time, not the event's timestamp as Celery does, so a worker
    /// whose clock is behind is not declared offline.
    pub fn task_seen(&mut self, hostname: Sym, now: f64) {
        let w = self.get_or_create(hostname, now);
        w.last_seen = now;
        w.beat(now);
    }

    /// Returns the worker unless the event was an offline for an unknown
    /// worker, which creates nothing.
    pub fn worker_event(
        &mut self,
        hostname: Sym,
        kind: WorkerEvent,
        now: f64,
    ) -> Option<&mut Worker> {
        if matches!(kind, WorkerEvent::Offline) && !self.map.contains_key(&hostname) {
            return None;
        }
        let w = self.get_or_create(hostname, now);
        w.last_seen = now;
        match kind {
            WorkerEvent::Online | WorkerEvent::Heartbeat => w.beat(now),
            WorkerEvent::Offline => {
                w.beating = false;
                w.offline_at = now;
            }
        }
        Some(w)
    }

    /// Workers whose heartbeats expired since the last call (at `now`),
    /// each reported once until it is heard from again; with the time they
    /// expired. A `worker-offline` is not an expiry: a worker that says
    /// goodbye finished or handed back what it held.
    pub fn newly_expired(&mut self, now: f64) -> Vec<(Sym, f64)> {
        let mut out = Vec::new();
        for w in self.map.values_mut() {
            if w.expired {
                continue;
            }
            if let Some(exp) = w.heartbeat_expires().filter(|&exp| now >= exp) {
                w.expired = true;
                out.push((w.hostname, exp));
            }
        }
        out
    }

    /// Forgets workers offline for longer than `after` seconds at `now`.
    /// Returns the hostnames purged.
    pub fn purge_offline(&mut self, now: f64, after: f64) -> Vec<Sym> {
        let mut purged = Vec::new();
        self.map.retain(|&h, w| {
            let keep = w.offline_since(now).is_none_or(|t| now - t <= after);
            if !keep {
                purged.push(h);
            }
            keep
        });
        purged
    }
}
