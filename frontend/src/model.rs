//! The dashboard's client-side state and its reducers. Pure (no DOM, no
//! clock): natively unit-tested, and the wasm UI only reads it.

use std::collections::{HashMap, VecDeque};

pub mod alerts;
pub mod control;

use api::ws::{Ingest, RatePoint, TaskRow, TypeStats, WsMessage};
use api::{TaskState, Worker};

/// Most task rows kept in the browser; the oldest-created go first.
pub const MAX_ROWS: usize = 50_000;
/// Seconds of rates kept (15 minutes).
pub const MAX_RATES: usize = 900;

/// Everything the pages show, as of the last message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Model {
    /// Whether a snapshot has arrived since the page loaded.
    pub synced: bool,
    /// Server clock of the last message (epoch seconds).
    pub now: f64,
    /// Sorted by hostname.
    pub workers: Vec<Worker>,
    /// Creation order, oldest first.
    rows: Vec<TaskRow>,
    index: HashMap<String, usize>,
    pub types: Vec<TypeStats>,
    pub rates: VecDeque<RatePoint>,
    pub ingest: Ingest,
    /// Bumped by every applied message (cheap change detection).
    pub version: u64,
}

impl Model {
    /// Applies one websocket message: a snapshot replaces everything, a
    /// delta upserts.
    pub fn apply(&mut self, msg: WsMessage) {
        self.version += 1;
        match msg {
            WsMessage::Snapshot {
                now,
                workers,
                tasks,
                types,
                rates,
                ingest,
            } => {
                self.synced = true;
                self.now = now;
                self.set_workers(workers);
                self.rows.clear();
                self.index.clear();
                self.upsert(tasks);
                self.types = types;
                self.rates = rates.into_iter().collect();
                self.trim_rates();
                self.ingest = ingest;
            }
            WsMessage::Delta {
                now,
                workers,
                tasks,
                types,
                types_gone,
                rates,
                ingest,
            } => {
                self.now = now;
                if let Some(w) = workers {
                    self.set_workers(w);
                }
                self.upsert(tasks);
                self.upsert_types(types, &types_gone);
                for r in rates {
                    if self.rates.back().is_none_or(|last| r.t > last.t) {
                        self.rates.push_back(r);
                    }
                }
                self.trim_rates();
                if let Some(i) = ingest {
                    self.ingest = i;
                }
            }
        }
    }

    /// Types are kept sorted by name; a delta names only those that changed.
    fn upsert_types(&mut self, types: Vec<TypeStats>, gone: &[String]) {
        if !gone.is_empty() {
            self.types.retain(|t| !gone.contains(&t.name));
        }
        for t in types {
            match self.types.binary_search_by(|x| x.name.cmp(&t.name)) {
                Ok(i) => self.types[i] = t,
                Err(i) => self.types.insert(i, t),
            }
        }
    }

    fn set_workers(&mut self, mut w: Vec<Worker>) {
        w.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        self.workers = w;
    }

    fn trim_rates(&mut self) {
        while self.rates.len() > MAX_RATES {
            self.rates.pop_front();
        }
    }

    fn upsert(&mut self, tasks: Vec<TaskRow>) {
        for t in tasks {
            match self.index.get(&t.uuid) {
                Some(&i) => self.rows[i] = t,
                None => {
                    self.index.insert(t.uuid.clone(), self.rows.len());
                    self.rows.push(t);
                }
            }
        }
        // Evict in chunks so the index is rebuilt rarely.
        if self.rows.len() > MAX_ROWS + MAX_ROWS / 10 {
            let drop = self.rows.len() - MAX_ROWS;
            self.rows.drain(..drop);
            self.index = self
                .rows
                .iter()
                .enumerate()
                .map(|(i, r)| (r.uuid.clone(), i))
                .collect();
        }
    }

    pub fn task(&self, uuid: &str) -> Option<&TaskRow> {
        self.index.get(uuid).map(|&i| &self.rows[i])
    }

    pub fn task_count(&self) -> usize {
        self.rows.len()
    }

    /// Oldest-created first.
    pub fn tasks(&self) -> &[TaskRow] {
        &self.rows
    }

    pub fn worker(&self, hostname: &str) -> Option<&Worker> {
        self.workers.iter().find(|w| w.hostname == hostname)
    }

    pub fn workers_online(&self) -> usize {
        self.workers.iter().filter(|w| w.status).count()
    }

    /// Tasks matching `f`, sorted by `sort`.
    pub fn query(&self, f: &Filter, sort: &Sort) -> Vec<&TaskRow> {
        let mut v: Vec<&TaskRow> = self.rows.iter().filter(|t| f.matches(t)).collect();
        sort.apply(&mut v);
        v
    }

    /// Positions in [`Model::tasks`] of the tasks matching `f`, sorted (the
    /// virtualised table keeps these and clones only the visible rows).
    pub fn query_indices(&self, f: &Filter, sort: &Sort) -> Vec<u32> {
        let base = self.rows.as_ptr() as usize;
        let size = std::mem::size_of::<TaskRow>().max(1);
        self.query(f, sort)
            .into_iter()
            .map(|t| ((t as *const TaskRow as usize - base) / size) as u32)
            .collect()
    }

    /// Children of `uuid` among the retained rows.
    pub fn children(&self, uuid: &str) -> Vec<&TaskRow> {
        self.rows
            .iter()
            .filter(|t| t.parent_id.as_deref() == Some(uuid))
            .collect()
    }

    /// Unfinished tasks per queue, busiest first.
    pub fn queue_backlog(&self) -> Vec<(String, usize)> {
        let mut m: HashMap<&str, usize> = HashMap::new();
        for t in &self.rows {
            if !t.state.is_ready() {
                *m.entry(t.queue.as_deref().unwrap_or("celery")).or_default() += 1;
            }
        }
        let mut v: Vec<(String, usize)> = m.into_iter().map(|(q, n)| (q.to_owned(), n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    /// Succeeded and failed over the kept rates (the chart's window).
    pub fn totals(&self) -> (u64, u64) {
        self.rates
            .iter()
            .fold((0, 0), |(s, f), r| (s + r.succeeded, f + r.failed))
    }
}

/// Filters of the tasks page, mirrored in its URL query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub state: Option<String>,
    pub name: Option<String>,
    pub worker: Option<String>,
    /// Substring of uuid, args, kwargs, result or exception.
    pub search: String,
    /// Created at or after (epoch seconds).
    pub from: Option<f64>,
    /// Created at or before (epoch seconds).
    pub to: Option<f64>,
    /// One workflow: the root task and every task whose root it is.
    pub root: Option<String>,
}

impl Filter {
    pub fn matches(&self, t: &TaskRow) -> bool {
        if let Some(s) = &self.state {
            if !t.state.as_str().eq_ignore_ascii_case(s) {
                return false;
            }
        }
        if let Some(n) = &self.name {
            if t.name.as_deref() != Some(n.as_str()) {
                return false;
            }
        }
        if let Some(w) = &self.worker {
            if t.worker.as_deref() != Some(w.as_str()) {
                return false;
            }
        }
        if let Some(r) = &self.root {
            if t.uuid != *r && t.root_id.as_deref() != Some(r.as_str()) {
                return false;
            }
        }
        let created = created(t);
        if self
            .from
            .is_some_and(|from| created.is_none_or(|c| c < from))
        {
            return false;
        }
        if self.to.is_some_and(|to| created.is_none_or(|c| c > to)) {
            return false;
        }
        if !self.search.is_empty() {
            let needle = self.search.to_lowercase();
            let hit = |s: Option<&str>| s.is_some_and(|s| s.to_lowercase().contains(&needle));
            if !(t.uuid.contains(&needle)
                || hit(t.args.as_deref())
                || hit(t.kwargs.as_deref())
                || hit(t.result.as_deref())
                || hit(t.exception.as_deref()))
            {
                return false;
            }
        }
        true
    }

    /// Parses the URL query pairs (unknown keys are ignored).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Filter {
        let mut f = Filter::default();
        for (k, v) in pairs {
            let some = || (!v.is_empty()).then(|| v.to_owned());
            match k {
                "state" => f.state = some(),
                "name" => f.name = some(),
                "worker" => f.worker = some(),
                "q" => f.search = v.to_owned(),
                "from" => f.from = v.parse().ok(),
                "to" => f.to = v.parse().ok(),
                "root" => f.root = some(),
                _ => {}
            }
        }
        f
    }

    /// The query pairs for the URL, in a stable order, empty ones left out.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut v = Vec::new();
        if let Some(s) = &self.state {
            v.push(("state", s.clone()));
        }
        if let Some(s) = &self.name {
            v.push(("name", s.clone()));
        }
        if let Some(s) = &self.worker {
            v.push(("worker", s.clone()));
        }
        if !self.search.is_empty() {
            v.push(("q", self.search.clone()));
        }
        if let Some(t) = self.from {
            v.push(("from", t.to_string()));
        }
        if let Some(t) = self.to {
            v.push(("to", t.to_string()));
        }
        if let Some(r) = &self.root {
            v.push(("root", r.clone()));
        }
        v
    }

    /// The same filters as `/api/tasks` parameters, to search the server's
    /// history (which reaches beyond what this browser holds): one page of
    /// `limit` from `offset`, newest first. The search becomes one quoted
    /// term; the server needs at least 3 characters, so a shorter one is
    /// refused here with the reason.
    pub fn history_params(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<(&'static str, String)>, String> {
        let mut v = vec![("limit", limit.to_string()), ("offset", offset.to_string())];
        if let Some(s) = &self.state {
            v.push(("state", s.clone()));
        }
        if let Some(s) = &self.name {
            v.push(("taskname", s.clone()));
        }
        if let Some(s) = &self.worker {
            v.push(("workername", s.clone()));
        }
        if let Some(r) = &self.root {
            v.push(("root_id", r.clone()));
        }
        let search = self.search.trim();
        if !search.is_empty() {
            if search.chars().count() < 3 {
                return Err("History search needs at least 3 characters.".into());
            }
            let quoted = search.replace('\\', "\\\\").replace('"', "\\\"");
            v.push(("search", format!("\"{quoted}\"")));
        }
        // The server's bounds are whole minutes: widen them, never narrow.
        if let Some(t) = self.from {
            v.push(("received_start", flower_minute(t)));
        }
        if let Some(t) = self.to {
            v.push(("received_end", flower_minute(t + 59.0)));
        }
        Ok(v)
    }
}

/// `/api/tasks`' answer (`{uuid: task}`) as a list in the order the
/// server wrote it (a JSON object's order is the listing's order).
pub fn parse_listing(json: &str) -> Result<Vec<api::Task>, String> {
    struct Listing(Vec<api::Task>);
    impl<'de> serde::Deserialize<'de> for Listing {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Listing, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Listing;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object of tasks by uuid")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Listing, A::Error> {
                    let mut out = Vec::new();
                    while let Some((_, task)) = map.next_entry::<String, api::Task>()? {
                        out.push(task);
                    }
                    Ok(Listing(out))
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_str::<Listing>(json)
        .map(|l| l.0)
        .map_err(|e| format!("unexpected answer from /api/tasks: {e}"))
}

/// Epoch seconds as `/api/tasks` reads times: `YYYY-MM-DD HH:MM`, UTC.
pub fn flower_minute(secs: f64) -> String {
    let secs = secs.floor() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rem / 3_600,
        rem % 3_600 / 60
    )
}

/// When a task was created, as far as known.
pub fn created(t: &TaskRow) -> Option<f64> {
    t.sent.or(t.received).or(t.timestamp)
}

/// Columns the tasks table sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Column {
    Name,
    Uuid,
    State,
    Worker,
    #[default]
    Created,
    Started,
    Updated,
    Runtime,
}

impl Column {
    pub const ALL: [Column; 8] = [
        Column::Name,
        Column::Uuid,
        Column::State,
        Column::Worker,
        Column::Created,
        Column::Started,
        Column::Updated,
        Column::Runtime,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Column::Name => "name",
            Column::Uuid => "uuid",
            Column::State => "state",
            Column::Worker => "worker",
            Column::Created => "created",
            Column::Started => "started",
            Column::Updated => "updated",
            Column::Runtime => "runtime",
        }
    }

    pub fn parse(s: &str) -> Option<Column> {
        Column::ALL.into_iter().find(|c| c.key() == s)
    }
}

/// A sort order; `desc` puts the largest (newest) first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub column: Column,
    pub desc: bool,
}

impl Default for Sort {
    fn default() -> Self {
        Sort {
            column: Column::Created,
            desc: true,
        }
    }
}

impl Sort {
    /// `created`, `-created` (descending).
    pub fn parse(s: &str) -> Sort {
        let (desc, key) = match s.strip_prefix('-') {
            Some(k) => (true, k),
            None => (false, s),
        };
        Column::parse(key)
            .map(|column| Sort { column, desc })
            .unwrap_or_default()
    }

    pub fn to_param(self) -> String {
        format!("{}{}", if self.desc { "-" } else { "" }, self.column.key())
    }

    /// Clicking a column header: the same column flips, another starts
    /// descending.
    pub fn toggled(self, column: Column) -> Sort {
        if self.column == column {
            Sort {
                column,
                desc: !self.desc,
            }
        } else {
            Sort { column, desc: true }
        }
    }

    pub fn apply(&self, v: &mut [&TaskRow]) {
        use std::cmp::Ordering;
        let num = |a: Option<f64>, b: Option<f64>| {
            a.unwrap_or(f64::NEG_INFINITY)
                .partial_cmp(&b.unwrap_or(f64::NEG_INFINITY))
                .unwrap_or(Ordering::Equal)
        };
        let col = self.column;
        let cmp = |a: &&TaskRow, b: &&TaskRow| -> Ordering {
            match col {
                Column::Name => a.name.cmp(&b.name),
                Column::Uuid => a.uuid.cmp(&b.uuid),
                Column::State => a.state.cmp(&b.state),
                Column::Worker => a.worker.cmp(&b.worker),
                Column::Created => num(created(a), created(b)),
                Column::Started => num(a.started, b.started),
                Column::Updated => num(a.timestamp, b.timestamp),
                Column::Runtime => num(a.runtime, b.runtime),
            }
        };
        // Stable: ties keep creation order.
        if self.desc {
            v.sort_by(|a, b| cmp(b, a));
        } else {
            v.sort_by(cmp);
        }
    }
}

/// The state names offered by the state filter.
pub const STATES: [TaskState; 8] = [
    TaskState::Pending,
    TaskState::Received,
    TaskState::Started,
    TaskState::Success,
    TaskState::Failure,
    TaskState::Retry,
    TaskState::Revoked,
    TaskState::Rejected,
];

/// "3 s ago", "5 min ago", "in 2 h", for a difference in seconds.
pub fn relative(seconds_ago: f64) -> String {
    let (d, future) = if seconds_ago < 0.0 {
        (-seconds_ago, true)
    } else {
        (seconds_ago, false)
    };
    let text = if d < 1.0 {
        return "just now".to_owned();
    } else if d < 60.0 {
        format!("{} s", d as u64)
    } else if d < 3600.0 {
        format!("{} min", (d / 60.0) as u64)
    } else if d < 86400.0 {
        format!("{} h", (d / 3600.0) as u64)
    } else {
        format!("{} d", (d / 86400.0) as u64)
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// A duration for humans: "850 ms", "2.50 s", "3 min 20 s".
pub fn duration(secs: f64) -> String {
    if !secs.is_finite() {
        return "–".to_owned();
    }
    if secs < 1.0 {
        format!("{:.0} ms", secs * 1000.0)
    } else if secs < 60.0 {
        format!("{secs:.2} s")
    } else {
        format!("{} min {} s", (secs / 60.0) as u64, (secs % 60.0) as u64)
    }
}

#[cfg(test)]
mod tests;
