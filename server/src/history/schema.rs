//! The store's tables, as numbered migrations run at start-up. The README
//! documents the tables for people who query them with `sqlite3` or `psql`.
//!
//! A migration is never edited once released: a change is a new step. The
//! version lives in `celeriac_schema`; a store written by a newer celeriac
//! (a version this binary does not know) is refused rather than guessed at.

/// The two SQL dialects the store speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// The schema version this binary writes.
pub const VERSION: i64 = 4;

/// The columns of `tasks`, in the order the upsert binds them.
pub const TASK_COLUMNS: [&str; 32] = [
    "uuid",
    "name",
    "state",
    "state_rank",
    "sent",
    "received",
    "started",
    "succeeded",
    "failed",
    "retried",
    "revoked",
    "rejected",
    "timestamp",
    "runtime",
    "clock",
    "args",
    "kwargs",
    "result",
    "exception",
    "traceback",
    "eta",
    "expires",
    "retries",
    "worker",
    "client",
    "queue",
    "exchange",
    "routing_key",
    "root_id",
    "parent_id",
    "seen",
    "updated",
];

/// The text PostgreSQL's trigram index covers, and that searches compare
/// against: the same expression, or the index is not used.
pub const PG_SEARCH_TEXT: &str =
    "(uuid || ' ' || coalesce(name, '') || ' ' || coalesce(worker, '') \
     || ' ' || state || ' ' || coalesce(args, '') || ' ' || coalesce(kwargs, '') || ' ' \
     || coalesce(result, '') || ' ' || coalesce(exception, '') || ' ' || coalesce(traceback, ''))";

/// The statements of migration `version` (1-based) in `dialect`.
pub fn migration(dialect: Dialect, version: i64) -> Vec<String> {
    match version {
        1 => v1_tables(dialect),
        2 => v2_search(dialect),
        3 => v3_listing_indexes(),
        4 => v4_workflow_index(),
        _ => Vec::new(),
    }
}

/// Tasks (the latest state of each, by uuid), the audit log, and workers
/// last seen.
fn v1_tables(d: Dialect) -> Vec<String> {
    let (real, int, serial) = match d {
        Dialect::Sqlite => ("REAL", "INTEGER", "INTEGER PRIMARY KEY AUTOINCREMENT"),
        Dialect::Postgres => ("DOUBLE PRECISION", "BIGINT", "BIGSERIAL PRIMARY KEY"),
    };
    vec![
        format!(
            "CREATE TABLE tasks (
                uuid TEXT PRIMARY KEY,
                name TEXT,
                state TEXT NOT NULL,
                state_rank {int} NOT NULL,
                sent {real}, received {real}, started {real}, succeeded {real},
                failed {real}, retried {real}, revoked {real}, rejected {real},
                timestamp {real},
                runtime {real},
                clock {int},
                args TEXT, kwargs TEXT, result TEXT, exception TEXT, traceback TEXT,
                eta TEXT, expires TEXT,
                retries {int},
                worker TEXT, client TEXT, queue TEXT, exchange TEXT, routing_key TEXT,
                root_id TEXT, parent_id TEXT,
                seen {real} NOT NULL,
                updated {real} NOT NULL
            )"
        ),
        "CREATE INDEX tasks_seen ON tasks (seen)".into(),
        "CREATE INDEX tasks_updated ON tasks (updated)".into(),
        "CREATE INDEX tasks_state_updated ON tasks (state, updated)".into(),
        "CREATE INDEX tasks_newest ON tasks ((coalesce(timestamp, 0)), uuid)".into(),
        "CREATE INDEX tasks_name ON tasks ((lower(name)))".into(),
        "CREATE INDEX tasks_worker ON tasks ((lower(worker)))".into(),
        "CREATE INDEX tasks_received ON tasks (received)".into(),
        "CREATE INDEX tasks_started ON tasks (started)".into(),
        "CREATE INDEX tasks_parent ON tasks (parent_id)".into(),
        format!(
            "CREATE TABLE audit (
                id {serial},
                time {real} NOT NULL,
                username TEXT NOT NULL,
                role TEXT NOT NULL,
                command TEXT NOT NULL,
                arguments TEXT NOT NULL,
                target TEXT NOT NULL,
                status {int} NOT NULL,
                replies TEXT NOT NULL,
                no_reply TEXT NOT NULL
            )"
        ),
        format!(
            "CREATE TABLE workers (
                hostname TEXT PRIMARY KEY,
                last_seen {real},
                sw_ident TEXT, sw_ver TEXT, sw_sys TEXT,
                pid {int},
                freq {real},
                processed {int}
            )"
        ),
    ]
}

/// Substring search through a trigram index: SQLite's FTS5 `trigram`
/// tokenizer (kept in step with `tasks` by triggers, re-indexing a task
/// only when its text changed), PostgreSQL's `pg_trgm`.
fn v2_search(d: Dialect) -> Vec<String> {
    match d {
        Dialect::Sqlite => {
            let cols = "uuid, name, worker, state, args, kwargs, result, exception, traceback";
            let new = "new.uuid, new.name, new.worker, new.state, new.args, new.kwargs, \
                       new.result, new.exception, new.traceback";
            let old = "old.uuid, old.name, old.worker, old.state, old.args, old.kwargs, \
                       old.result, old.exception, old.traceback";
            let changed = "old.name IS NOT new.name OR old.worker IS NOT new.worker \
                 OR old.state IS NOT new.state OR old.args IS NOT new.args \
                 OR old.kwargs IS NOT new.kwargs OR old.result IS NOT new.result \
                 OR old.exception IS NOT new.exception OR old.traceback IS NOT new.traceback";
            vec![
                format!(
                    "CREATE VIRTUAL TABLE tasks_search USING fts5({cols}, content='tasks', \
                     content_rowid='rowid', tokenize='trigram')"
                ),
                format!(
                    "CREATE TRIGGER tasks_search_insert AFTER INSERT ON tasks BEGIN \
                     INSERT INTO tasks_search (rowid, {cols}) VALUES (new.rowid, {new}); END"
                ),
                format!(
                    "CREATE TRIGGER tasks_search_delete AFTER DELETE ON tasks BEGIN \
                     INSERT INTO tasks_search (tasks_search, rowid, {cols}) \
                     VALUES ('delete', old.rowid, {old}); END"
                ),
                format!(
                    "CREATE TRIGGER tasks_search_update AFTER UPDATE ON tasks WHEN {changed} BEGIN \
                     INSERT INTO tasks_search (tasks_search, rowid, {cols}) \
                     VALUES ('delete', old.rowid, {old}); \
                     INSERT INTO tasks_search (rowid, {cols}) VALUES (new.rowid, {new}); END"
                ),
                // Tasks stored before this version.
                "INSERT INTO tasks_search (tasks_search) VALUES ('rebuild')".into(),
            ]
        }
        Dialect::Postgres => vec![
            "CREATE EXTENSION IF NOT EXISTS pg_trgm".into(),
            format!("CREATE INDEX tasks_search ON tasks USING gin ({PG_SEARCH_TEXT} gin_trgm_ops)"),
        ],
    }
}

/// The listings people run most (a task type, its failures, one state),
/// newest first, read in index order and stop at the page's end instead of
/// sorting every row of the name or state: ~48 ms at 1M stored tasks and
/// ~360 ms at 10M before, a few milliseconds after. The plain name index is
/// a prefix of the first, so it goes.
fn v3_listing_indexes() -> Vec<String> {
    vec![
        "CREATE INDEX tasks_name_newest ON tasks ((lower(name)), (coalesce(timestamp, 0)), uuid)"
            .into(),
        "CREATE INDEX tasks_name_state_newest ON tasks \
         ((lower(name)), state, (coalesce(timestamp, 0)), uuid)"
            .into(),
        "CREATE INDEX tasks_state_newest ON tasks (state, (coalesce(timestamp, 0)), uuid)".into(),
        "DROP INDEX tasks_name".into(),
    ]
}

/// `/api/tasks?root_id=` (a workflow's tasks) reads its rows by root
/// instead of scanning the table for them.
fn v4_workflow_index() -> Vec<String> {
    vec!["CREATE INDEX tasks_root ON tasks (root_id)".into()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_up_to_the_current_has_statements() {
        for d in [Dialect::Sqlite, Dialect::Postgres] {
            for v in 1..=VERSION {
                assert!(!migration(d, v).is_empty(), "{d:?} v{v}");
            }
            assert!(migration(d, VERSION + 1).is_empty());
        }
    }

    #[test]
    fn the_tasks_table_has_every_bound_column() {
        let ddl = &migration(Dialect::Sqlite, 1)[0];
        for c in TASK_COLUMNS {
            assert!(ddl.contains(&format!("{c} ")), "{c}");
        }
    }
}
