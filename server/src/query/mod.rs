//! The pure logic behind Flower's `GET /api/tasks`: parameters, filters,
//! search, ordering and paging. No I/O; the HTTP layer hands over the query
//! pairs and a task iterator and renders what comes back.
//!
//! Compatibility with Flower 2.2 (`flower/api/tasks.py`,
//! `flower/utils/search.py`), and where we deliberately differ:
//! - Values are trimmed and the last of repeated keys wins, as tornado's
//!   `get_argument` does. An empty value counts as absent. Unknown
//!   parameters are ignored.
//! - `workername`, `taskname`, `state` are exact, case-insensitive; the
//!   literal `All` means no filter. A task without that field never matches.
//! - `received_start`/`received_end` are `YYYY-MM-DD HH:MM`, bounds
//!   inclusive; tasks with no `received` are kept. Flower reads them in the
//!   server's local time zone; celeriac reads them as **UTC** (our server
//!   runs in UTC, and a container's "local" zone is not something a client
//!   can know anyway).
//! - `sort_by` is one of `name state received started`, `-` for descending.
//!   Tasks missing the value come first ascending (last descending); the
//!   task id breaks ties, in the same direction. Names and states compare
//!   case-insensitively.
//! - Without `sort_by`: `timestamp` descending (a missing one counts as 0),
//!   then task id descending.
//! - Errors are 400s naming the parameter and echoing the value (Flower
//!   answers a plain-text 400).
//!   Negative values are clamped as Flower 2.2's search does
//!   (`offset = max(offset, 0)`, `end = offset + max(limit, 0)`): a negative
//!   `offset` is 0, a negative `limit` an empty page, like `limit=0`.
//! - A `search` error keeps Flower's exact message (`Substring search terms
//!   must contain at least 3 characters at position 0.`).
//! - Flower escapes query values as HTML before parsing (`xhtml_escape`),
//!   which breaks `"quoted phrases"` and `'` over its API; we do not.

mod indexed;
pub mod search;
mod text;
pub mod tree;

#[cfg(test)]
mod tests;

use std::cmp::{Ordering, Reverse};
use std::num::IntErrorKind;

use crate::state::TaskView;

pub use indexed::Stretch;
pub use search::{Search, SearchError};

/// A rejected parameter. The HTTP layer answers 400 with
/// `{"error": message, "parameter": parameter}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParamError {
    pub parameter: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    Name,
    State,
    Received,
    Started,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    pub field: SortField,
    pub descending: bool,
}

/// A parsed `/api/tasks` request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskQuery {
    /// `None`: every matching task.
    pub limit: Option<usize>,
    pub offset: usize,
    /// `None`: newest `timestamp` first.
    pub sort_by: Option<SortKey>,
    pub workername: Option<String>,
    pub taskname: Option<String>,
    pub state: Option<String>,
    /// Unix seconds, inclusive.
    pub received_start: Option<f64>,
    /// Unix seconds, inclusive.
    pub received_end: Option<f64>,
    /// A workflow: its root task and every task whose `root_id` names it.
    pub root_id: Option<String>,
    pub search: Option<Search>,
}

/// The date format of `received_start`/`received_end` (Python's
/// `%Y-%m-%d %H:%M`).
pub const DATE_FORMAT: &str = "%Y-%m-%d %H:%M";

/// Longest piece of a rejected value echoed back in a message.
const MAX_ECHOED_VALUE: usize = 64;

impl TaskQuery {
    pub fn from_params(params: &[(String, String)]) -> Result<TaskQuery, ParamError> {
        let get = |name: &str| {
            params
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim())
                .filter(|v| !v.is_empty())
        };
        let filter = |name: &str| get(name).filter(|v| *v != "All").map(str::to_owned);
        // Flower 2.2: `offset = max(offset, 0)`, `end = offset + max(limit, 0)`.
        let offset = get("offset")
            .map(|v| parse_int("offset", v))
            .transpose()?
            .map_or(0, |o| usize::try_from(o).unwrap_or(0));
        let limit = get("limit")
            .map(|v| parse_int("limit", v))
            .transpose()?
            .map(|l| usize::try_from(l).unwrap_or(0));
        Ok(TaskQuery {
            limit,
            offset,
            sort_by: get("sort_by").map(parse_sort).transpose()?,
            workername: filter("workername"),
            taskname: filter("taskname"),
            state: filter("state"),
            received_start: get("received_start")
                .map(|v| parse_date("received_start", v))
                .transpose()?,
            received_end: get("received_end")
                .map(|v| parse_date("received_end", v))
                .transpose()?,
            root_id: get("root_id").map(str::to_owned),
            search: get("search")
                .map(|v| {
                    Search::parse(v).map_err(|e| ParamError {
                        parameter: "search".into(),
                        message: e.to_string(),
                    })
                })
                .transpose()?
                .filter(|s| !s.is_match_all()),
        })
    }

    /// Whether `t` passes every filter and the search.
    pub fn matches(&self, t: &TaskView<'_>) -> bool {
        fn exact(filter: &Option<String>, value: Option<&str>) -> bool {
            match filter {
                None => true,
                Some(f) => value.is_some_and(|v| text::eq_folded(v, f)),
            }
        }
        if !exact(&self.state, Some(t.state.as_str()))
            || !exact(&self.taskname, t.name)
            || !exact(&self.workername, t.worker)
        {
            return false;
        }
        if let Some(root) = &self.root_id {
            if t.uuid != root && t.root_id != Some(root.as_str()) {
                return false;
            }
        }
        if let Some(received) = t.received {
            if self.received_start.is_some_and(|start| received < start)
                || self.received_end.is_some_and(|end| received > end)
            {
                return false;
            }
        }
        self.search.as_ref().is_none_or(|s| s.matches(t))
    }

    /// Filter, sort, then skip `offset` and keep `limit`; returns the page in
    /// order. With a limit at most about `2 * (offset + limit)` tasks are
    /// held at once and only those are ever sorted, so a page of 100 out of
    /// 100,000 does not sort 100,000.
    pub fn run<'a>(&self, tasks: impl Iterator<Item = TaskView<'a>>) -> Vec<TaskView<'a>> {
        if self.limit == Some(0) {
            return Vec::new();
        }
        let m = |t: &TaskView<'a>| self.matches(t);
        let (offset, limit) = (self.offset, self.limit);
        let Some(sort) = self.sort_by else {
            return page(
                tasks,
                m,
                |t| Reverse((Float(t.timestamp.unwrap_or(0.0)), t.uuid)),
                offset,
                limit,
            );
        };
        // One monomorphised pass per key type and direction keeps the
        // comparisons free of per-call branching on the sort mode.
        fn time<'a>(v: Option<f64>, t: &TaskView<'a>) -> (Option<Float>, &'a str) {
            (v.map(Float), t.uuid)
        }
        match (sort.field, sort.descending) {
            (SortField::Received, false) => page(tasks, m, |t| time(t.received, t), offset, limit),
            (SortField::Received, true) => {
                page(tasks, m, |t| Reverse(time(t.received, t)), offset, limit)
            }
            (SortField::Started, false) => page(tasks, m, |t| time(t.started, t), offset, limit),
            (SortField::Started, true) => {
                page(tasks, m, |t| Reverse(time(t.started, t)), offset, limit)
            }
            (SortField::Name, false) => {
                page(tasks, m, |t| (t.name.map(Folded), t.uuid), offset, limit)
            }
            (SortField::Name, true) => page(
                tasks,
                m,
                |t| Reverse((t.name.map(Folded), t.uuid)),
                offset,
                limit,
            ),
            (SortField::State, false) => page(
                tasks,
                m,
                |t| (Folded(t.state.as_str()), t.uuid),
                offset,
                limit,
            ),
            (SortField::State, true) => page(
                tasks,
                m,
                |t| Reverse((Folded(t.state.as_str()), t.uuid)),
                offset,
                limit,
            ),
        }
    }
}

/// Keeps the tasks that `matches`, orders them by `key` ascending and cuts
/// the page.
///
/// Views are big (hundreds of bytes), so they are moved once into a slot and
/// only `(key, slot)` pairs are sorted or sifted.
fn page<'a, K: Ord>(
    tasks: impl Iterator<Item = TaskView<'a>>,
    matches: impl Fn(&TaskView<'a>) -> bool,
    key: impl Fn(&TaskView<'a>) -> K,
    offset: usize,
    limit: Option<usize>,
) -> Vec<TaskView<'a>> {
    let Some(limit) = limit else {
        let mut slots = Vec::new();
        let mut order = Vec::new();
        tasks.for_each(|t| {
            if matches(&t) {
                order.push(Keyed(key(&t), slots.len()));
                slots.push(Some(t));
            }
        });
        order.sort_unstable();
        return gather(order, slots, offset);
    };
    let keep = offset.saturating_add(limit);
    if keep == 0 {
        return Vec::new();
    }
    // Buffered top-k: candidates pile up until the buffer holds `cap`, then a
    // linear-time selection keeps the best `keep` and the worst of those
    // becomes a threshold that rejects later tasks with one comparison.
    // Unlike a heap, this stays cheap when tasks arrive already in the
    // requested order's reverse, which is the common case: the state yields
    // oldest first and the default order is newest first.
    let cap = keep.saturating_add(keep.max(64));
    // Capacities are only hints: `keep` comes from the client.
    let mut order: Vec<Keyed<K, usize>> = Vec::with_capacity(cap.min(4096));
    let mut slots: Vec<Option<TaskView<'a>>> = Vec::with_capacity(cap.min(4096));
    let mut free: Vec<usize> = Vec::new();
    let mut full = false;
    // Internal iteration (`for_each`, filtering inside) lets the compiler
    // build each view in place rather than copy it out of a `Filter`.
    tasks.for_each(|t| {
        if !matches(&t) {
            return;
        }
        let k = key(&t);
        if full && order.get(keep - 1).is_some_and(|worst| k >= worst.0) {
            return;
        }
        let slot = match free.pop() {
            Some(slot) => {
                slots[slot] = Some(t);
                slot
            }
            None => {
                slots.push(Some(t));
                slots.len() - 1
            }
        };
        order.push(Keyed(k, slot));
        if order.len() >= cap {
            order.select_nth_unstable(keep - 1);
            free.extend(order.drain(keep..).map(|k| k.1));
            full = true;
        }
    });
    order.sort_unstable();
    order.truncate(keep);
    gather(order, slots, offset)
}

/// The views named by `order` from `offset` on, in that order.
fn gather<'a, K>(
    order: Vec<Keyed<K, usize>>,
    mut slots: Vec<Option<TaskView<'a>>>,
    offset: usize,
) -> Vec<TaskView<'a>> {
    order
        .into_iter()
        .skip(offset)
        .filter_map(|Keyed(_, slot)| slots.get_mut(slot).and_then(Option::take))
        .collect()
}

/// A value ordered by its key alone.
struct Keyed<K, V>(K, V);

impl<K: Ord, V> PartialEq for Keyed<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl<K: Ord, V> Eq for Keyed<K, V> {}
impl<K: Ord, V> PartialOrd for Keyed<K, V> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<K: Ord, V> Ord for Keyed<K, V> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}

/// A timestamp with a total order (event timestamps are never NaN, but a
/// sort must not misbehave if one were).
#[derive(Clone, Copy)]
struct Float(f64);

impl PartialEq for Float {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Float {}
impl PartialOrd for Float {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Float {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// A string ordered case-insensitively, as Flower's `casefold()` keys are.
#[derive(Clone, Copy)]
struct Folded<'a>(&'a str);

impl PartialEq for Folded<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Folded<'_> {}
impl PartialOrd for Folded<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Folded<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        text::cmp_folded(self.0, other.0)
    }
}

fn invalid(parameter: &str, value: &str, expected: &str) -> ParamError {
    let shown: String = value.chars().take(MAX_ECHOED_VALUE).collect();
    let ellipsis = if shown.len() < value.len() { "..." } else { "" };
    ParamError {
        parameter: parameter.into(),
        message: format!(
            "Invalid value '{shown}{ellipsis}' for parameter '{parameter}': expected {expected}"
        ),
    }
}

fn parse_int(parameter: &str, value: &str) -> Result<i128, ParamError> {
    // Python's int() takes a leading '+'; Rust's parse does too. Anything
    // beyond a usize either way is refused rather than saturated.
    let max = usize::MAX as i128;
    match value.parse::<i128>() {
        Ok(v) if (-max..=max).contains(&v) => Ok(v),
        Ok(_) => Err(invalid(parameter, value, "a smaller integer")),
        Err(e) => Err(invalid(
            parameter,
            value,
            match e.kind() {
                IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => "a smaller integer",
                _ => "an integer",
            },
        )),
    }
}

fn parse_sort(value: &str) -> Result<SortKey, ParamError> {
    // Flower strips every leading '-' (`lstrip('-')`), so `--name` is
    // descending too.
    let field = match value.trim_start_matches('-') {
        "name" => SortField::Name,
        "state" => SortField::State,
        "received" => SortField::Received,
        "started" => SortField::Started,
        _ => {
            return Err(invalid(
                "sort_by",
                value,
                "one of name, state, received, started, optionally prefixed with '-' for descending order",
            ))
        }
    };
    Ok(SortKey {
        field,
        descending: value.starts_with('-'),
    })
}

fn parse_date(parameter: &str, value: &str) -> Result<f64, ParamError> {
    chrono::NaiveDateTime::parse_from_str(value, DATE_FORMAT)
        .map(|dt| dt.and_utc().timestamp() as f64)
        .map_err(|_| {
            invalid(
                parameter,
                value,
                "a UTC date and time as 'YYYY-MM-DD HH:MM'",
            )
        })
}
