//! Queries that reach beyond memory: memory answers what it can, the
//! store the rest, in the same shapes and order.
//!
//! Memory holds the newest tasks in their latest state; the store holds
//! every task, each as of its last write (a second or so behind). So a
//! listing takes the best `offset + limit` candidates from each, prefers
//! memory's record of a task both know, and orders and pages the union
//! with the in-memory query itself.

use std::time::{Duration, Instant};

use hashbrown::HashSet;
use parking_lot::RwLock;

use super::plan::Plan;
use super::store::{Store, StoreError, STATEMENT_TIMEOUT};
use super::History;
use crate::query::TaskQuery;
use crate::state::{State, TaskView};

/// Stored rows one listing may read, at most: a search the index cannot
/// narrow is checked row by row, and stops here.
pub const MAX_SCANNED: usize = 50_000;
/// Stored rows a listing without `limit` adds to memory's, at most.
pub const MAX_UNLIMITED: usize = 10_000;
/// Rows fetched per statement while scanning a search.
const CHUNK: usize = 2_000;
/// A store query slower than this is logged.
const SLOW: Duration = Duration::from_millis(500);

impl History {
    /// Whether memory may lack tasks the store has: memory evicted some,
    /// or the store had more than memory holds when it was loaded.
    pub fn reaches_beyond(&self, state: &State) -> bool {
        state.evicted_tasks() > 0 || self.store_fuller_than_memory()
    }
}

/// `/api/task/info`: memory's record, else the store's.
pub async fn task(
    history: Option<&History>,
    state: &RwLock<State>,
    uuid: &str,
) -> Result<Option<api::Task>, StoreError> {
    if let Some(t) = state.read().task(uuid).map(|t| t.to_api()) {
        return Ok(Some(t));
    }
    let Some(store) = history.and_then(History::store) else {
        return Ok(None);
    };
    bounded("reading a task", store.task(uuid)).await
}

/// Whether the memory's answer is the whole answer: nothing lies beyond
/// memory, or a newest-first page that memory filled (the store's extra
/// tasks are older: they were evicted first).
pub fn memory_suffices(beyond: bool, q: &TaskQuery, memory_matches: usize) -> bool {
    if !beyond {
        return true;
    }
    match q.limit {
        Some(limit) => q.sort_by.is_none() && memory_matches >= q.offset.saturating_add(limit),
        None => false,
    }
}

/// `/api/tasks` over memory and the store. `memory` is the in-memory
/// query's answer for the first `offset + limit` matches (offset 0).
pub async fn tasks(
    store: &Store,
    state: &RwLock<State>,
    q: &TaskQuery,
    memory: Vec<api::Task>,
) -> Result<Vec<api::Task>, StoreError> {
    let need = match q.limit {
        Some(limit) => q.offset.saturating_add(limit),
        None => memory.len().saturating_add(MAX_UNLIMITED),
    };
    let stored = scan(store, q, need).await?;
    // Memory's record wins: the store's copy of a task in memory may be
    // a write behind, so it is dropped even when memory's does not match.
    let in_memory: HashSet<String> = {
        let s = state.read();
        stored
            .iter()
            .filter(|t| s.task(&t.uuid).is_some())
            .map(|t| t.uuid.clone())
            .collect()
    };
    let mut all = memory;
    all.extend(stored.into_iter().filter(|t| !in_memory.contains(&t.uuid)));
    let page = q.run(all.iter().map(TaskView::of_api));
    let uuids: Vec<&str> = page.iter().map(|v| v.uuid).collect();
    let mut by_id: hashbrown::HashMap<&str, &api::Task> =
        all.iter().map(|t| (t.uuid.as_str(), t)).collect();
    Ok(uuids
        .into_iter()
        .filter_map(|u| by_id.remove(u).cloned())
        .collect())
}

/// The first `need` stored tasks that match `q`, in its order.
async fn scan(store: &Store, q: &TaskQuery, need: usize) -> Result<Vec<api::Task>, StoreError> {
    let plan = Plan::of(q, store.dialect());
    let started = Instant::now();
    let mut out = Vec::new();
    let mut offset = 0;
    // Without a search the SQL filters are the query's: one statement.
    let chunk = if q.search.is_some() {
        CHUNK.max(need)
    } else {
        need
    };
    while out.len() < need && offset < MAX_SCANNED.max(need) {
        let rows = bounded("searching history", store.scan(&plan, offset, chunk)).await?;
        let n = rows.len();
        offset += n;
        out.extend(rows.into_iter().filter(|t| q.matches(&TaskView::of_api(t))));
        if n < chunk {
            break;
        }
    }
    out.truncate(need);
    let took = started.elapsed();
    if took >= SLOW {
        tracing::warn!(?took, rows = offset, where_clause = %plan.where_clause(), "slow history query");
    }
    Ok(out)
}

/// Tasks per page of an export.
pub const EXPORT_PAGE: usize = 1_000;

/// Every task a query matches, newest first, a page at a time: from the
/// store when there is one (each row replaced by memory's newer record of
/// the task when memory holds it), else from memory. Tasks changed in the
/// last moment and not written yet are not in a store's export.
pub struct Export {
    query: TaskQuery,
    source: ExportSource,
    /// Tasks still to hand out (`limit`), and to skip first (`offset`).
    left: usize,
    skip: usize,
}

enum ExportSource {
    Memory(std::vec::IntoIter<api::Task>),
    Store {
        store: Store,
        plan: Plan,
        after: Option<(f64, String)>,
        done: bool,
    },
}

impl Export {
    pub fn new(history: Option<&History>, state: &RwLock<State>, q: TaskQuery) -> Export {
        let left = q.limit.unwrap_or(usize::MAX);
        let skip = q.offset;
        let source = match history.and_then(History::store) {
            Some(store) => ExportSource::Store {
                plan: Plan::of(&q, store.dialect()),
                store,
                after: None,
                done: false,
            },
            None => {
                let mut all = q.clone();
                all.limit = None;
                all.offset = 0;
                let tasks: Vec<api::Task> = {
                    let s = state.read();
                    all.run_state(&s).into_iter().map(|t| t.to_api()).collect()
                };
                ExportSource::Memory(tasks.into_iter())
            }
        };
        Export {
            query: q,
            source,
            left,
            skip,
        }
    }

    /// The next page; `None` once every task was handed out.
    pub async fn next_page(
        &mut self,
        state: &RwLock<State>,
    ) -> Result<Option<Vec<api::Task>>, StoreError> {
        while self.left > 0 {
            let page = match &mut self.source {
                ExportSource::Memory(it) => it.by_ref().take(EXPORT_PAGE).collect::<Vec<_>>(),
                ExportSource::Store { done: true, .. } => Vec::new(),
                ExportSource::Store {
                    store,
                    plan,
                    after,
                    done,
                } => {
                    let key = after.as_ref().map(|(ts, id)| (*ts, id.as_str()));
                    let rows = bounded(
                        "exporting history",
                        store.scan_after(plan, key, EXPORT_PAGE),
                    )
                    .await?;
                    *done = rows.len() < EXPORT_PAGE;
                    *after = rows
                        .last()
                        .map(|t| (t.timestamp.unwrap_or(0.0), t.uuid.clone()));
                    let s = state.read();
                    rows.into_iter()
                        .map(|t| s.task(&t.uuid).map(|v| v.to_api()).unwrap_or(t))
                        .filter(|t| self.query.matches(&TaskView::of_api(t)))
                        .collect()
                }
            };
            let exhausted = match &self.source {
                ExportSource::Memory(it) => it.len() == 0,
                ExportSource::Store { done, .. } => *done,
            };
            let skipped = page.len().min(self.skip);
            self.skip -= skipped;
            let mut page: Vec<api::Task> = page.into_iter().skip(skipped).collect();
            page.truncate(self.left);
            self.left -= page.len();
            if !page.is_empty() {
                return Ok(Some(page));
            }
            if exhausted {
                break;
            }
        }
        Ok(None)
    }
}

/// Runs a store query within the statement timeout (SQLite has none of
/// its own).
async fn bounded<T>(
    what: &'static str,
    f: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(STATEMENT_TIMEOUT, f).await {
        Ok(r) => r,
        Err(_) => Err(StoreError::Timeout(what)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> TaskQuery {
        let params: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TaskQuery::from_params(&params).unwrap()
    }

    #[test]
    fn memory_answers_newest_first_pages_it_fills() {
        let page = q(&[("limit", "10"), ("offset", "5")]);
        assert!(memory_suffices(false, &q(&[]), 0));
        assert!(memory_suffices(true, &page, 15));
        assert!(!memory_suffices(true, &page, 14));
        // Another order, or everything: the store may hold some of it.
        assert!(!memory_suffices(
            true,
            &q(&[("limit", "10"), ("sort_by", "name")]),
            100
        ));
        assert!(!memory_suffices(true, &q(&[]), 1_000));
    }
}
