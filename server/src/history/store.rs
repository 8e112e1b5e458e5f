//! The history store's I/O: one set of queries over SQLite and PostgreSQL
//! (sqlx's native drivers; the SQL is shared and `$N` parameters work in
//! both). What to write and when is the writer's business; what to ask is
//! the query planner's; this module only talks to the database.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use api::control::AuditEntry;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row};

use super::plan::{Param, Plan};
use super::schema::{self, Dialect, TASK_COLUMNS};
use super::target::Target;

/// How long a statement may run before the store gives up on it (set on
/// PostgreSQL connections; SQLite reads are bounded by the caller).
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections per pool: one writer and a few readers.
const MAX_CONNECTIONS: u32 = 4;
/// Rows per multi-row upsert statement (32 parameters each). SQLite gets
/// few: sqlx looks up every parameter's name when binding, and SQLite
/// finds a name by a linear search, so the cost of a statement grows with
/// the square of its parameters (measured: at 64 rows, 42% of a bulk
/// write was spent there).
fn rows_per_statement(d: Dialect) -> usize {
    match d {
        Dialect::Sqlite => 4,
        Dialect::Postgres => 64,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{context}: {source}")]
    Sql {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the history store has schema version {found}, newer than this celeriac knows \
         ({known}): it was written by a newer celeriac. Upgrade celeriac, or point --db \
         at another store"
    )]
    NewerSchema { found: i64, known: i64 },
    #[error("`--db none` opens no store")]
    NoStore,
    #[error("{0}: no answer within the statement timeout")]
    Timeout(&'static str),
}

type Result<T> = std::result::Result<T, StoreError>;

fn sql(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Sql { context, source }
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same code against whichever pool is open: the queries are the
/// same text for both, but sqlx's types are per database.
macro_rules! with_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            Pool::Sqlite($p) => $body,
            Pool::Postgres($p) => $body,
        }
    };
}

/// Binds a planner parameter.
macro_rules! bind_param {
    ($q:expr, $param:expr) => {
        match $param {
            Param::Text(s) => $q.bind(s.clone()),
            Param::Real(v) => $q.bind(*v),
            Param::Int(v) => $q.bind(*v),
        }
    };
}

/// A task row as `/api/task/info` shows it (without `children`, `root`
/// and `parent`, which the caller fills in).
macro_rules! task_of_row {
    ($row:expr) => {{
        let r = $row;
        let state: String = r.try_get("state")?;
        let clock: Option<i64> = r.try_get("clock")?;
        api::Task {
            uuid: r.try_get("uuid")?,
            name: r.try_get("name")?,
            state: api::TaskState::parse(&state),
            received: r.try_get("received")?,
            sent: r.try_get("sent")?,
            started: r.try_get("started")?,
            rejected: r.try_get("rejected")?,
            succeeded: r.try_get("succeeded")?,
            failed: r.try_get("failed")?,
            retried: r.try_get("retried")?,
            revoked: r.try_get("revoked")?,
            args: r.try_get("args")?,
            kwargs: r.try_get("kwargs")?,
            eta: r.try_get("eta")?,
            expires: r.try_get("expires")?,
            retries: r.try_get("retries")?,
            result: r.try_get("result")?,
            exception: r.try_get("exception")?,
            timestamp: r.try_get("timestamp")?,
            runtime: r.try_get("runtime")?,
            traceback: r.try_get("traceback")?,
            exchange: r.try_get("exchange")?,
            routing_key: r.try_get("routing_key")?,
            clock: clock.map(|c| c.max(0) as u64),
            client: r.try_get("client")?,
            root: None,
            root_id: r.try_get("root_id")?,
            parent: None,
            parent_id: r.try_get("parent_id")?,
            children: Vec::new(),
            worker: r.try_get("worker")?,
            queue: r.try_get("queue")?,
        }
    }};
}

/// Binds one task's columns, in `TASK_COLUMNS` order.
macro_rules! bind_task {
    ($q:expr, $w:expr) => {{
        let w: &TaskWrite = $w;
        let t = &w.task;
        $q.bind(t.uuid.clone())
            .bind(t.name.clone())
            .bind(t.state.as_str().to_owned())
            .bind(i64::from(crate::state::state_rank(&t.state)))
            .bind(t.sent)
            .bind(t.received)
            .bind(t.started)
            .bind(t.succeeded)
            .bind(t.failed)
            .bind(t.retried)
            .bind(t.revoked)
            .bind(t.rejected)
            .bind(t.timestamp)
            .bind(t.runtime)
            .bind(t.clock.map(|c| c.min(i64::MAX as u64) as i64))
            .bind(t.args.clone())
            .bind(t.kwargs.clone())
            .bind(t.result.clone())
            .bind(t.exception.clone())
            .bind(t.traceback.clone())
            .bind(t.eta.clone())
            .bind(t.expires.clone())
            .bind(t.retries)
            .bind(t.worker.clone())
            .bind(t.client.clone())
            .bind(t.queue.clone())
            .bind(t.exchange.clone())
            .bind(t.routing_key.clone())
            .bind(t.root_id.clone())
            .bind(t.parent_id.clone())
            .bind(w.seen)
            .bind(super::record::last_change(t).unwrap_or(w.seen))
    }};
}

/// One task to write: its record and when celeriac first saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskWrite {
    pub task: api::Task,
    /// Celeriac's clock when the task was first written (restart order).
    pub seen: f64,
}

/// An open, migrated store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    dialect: Dialect,
    /// The upsert of a full chunk of rows, and of one row.
    upsert_full: Arc<str>,
    upsert_one: Arc<str>,
}

impl Store {
    fn new(pool: Pool, dialect: Dialect) -> Store {
        Store {
            pool,
            dialect,
            upsert_full: upsert_sql(dialect, rows_per_statement(dialect)).into(),
            upsert_one: upsert_sql(dialect, 1).into(),
        }
    }

    /// Opens (creating the SQLite file and its directory if need be) and
    /// migrates the store.
    pub async fn open(target: &Target) -> Result<Store> {
        let store = Store::connect(target).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens the store without migrating it (tests of the migrations).
    pub async fn connect(target: &Target) -> Result<Store> {
        Ok(match target {
            Target::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
                        path: dir.display().to_string(),
                        source,
                    })?;
                }
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(STATEMENT_TIMEOUT);
                let pool = SqlitePoolOptions::new()
                    .max_connections(MAX_CONNECTIONS)
                    .acquire_timeout(STATEMENT_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(sql("opening the SQLite store"))?;
                Store::new(Pool::Sqlite(pool), Dialect::Sqlite)
            }
            Target::Postgres(url) => {
                let timeout = format!("{}", STATEMENT_TIMEOUT.as_millis());
                let options = PgConnectOptions::from_str(url)
                    .map_err(sql("reading the PostgreSQL URL"))?
                    .options([("statement_timeout", timeout.as_str())]);
                let pool = PgPoolOptions::new()
                    .max_connections(MAX_CONNECTIONS)
                    .acquire_timeout(STATEMENT_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(sql("connecting to PostgreSQL"))?;
                Store::new(Pool::Postgres(pool), Dialect::Postgres)
            }
            Target::None => return Err(StoreError::NoStore),
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The schema version the store is at (0: empty).
    pub async fn version(&self) -> Result<i64> {
        with_pool!(&self.pool, p => {
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS celeriac_schema (version BIGINT NOT NULL)",
            )
            .execute(p)
            .await
            .map_err(sql("creating the schema table"))?;
            let v: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM celeriac_schema")
                .fetch_one(p)
                .await
                .map_err(sql("reading the schema version"))?;
            Ok(v.unwrap_or(0))
        })
    }

    /// Notes that the schema is at `version` (what a migration does last;
    /// tests use it to fake a store from a newer celeriac).
    pub async fn record_version(&self, version: i64) -> Result<()> {
        self.version().await?;
        with_pool!(&self.pool, p => {
            sqlx::query("INSERT INTO celeriac_schema (version) VALUES ($1)")
                .bind(version)
                .execute(p)
                .await
                .map_err(sql("recording the schema version"))?;
        });
        Ok(())
    }

    /// Runs the migrations the store lacks, each in its own transaction.
    async fn migrate(&self) -> Result<()> {
        self.migrate_to(schema::VERSION).await
    }

    /// Migrates up to `version` (tests start from an older schema).
    pub async fn migrate_to(&self, version: i64) -> Result<()> {
        let found = self.version().await?;
        if found > schema::VERSION {
            return Err(StoreError::NewerSchema {
                found,
                known: schema::VERSION,
            });
        }
        for v in found + 1..=version {
            let steps = schema::migration(self.dialect, v);
            with_pool!(&self.pool, p => {
                let mut tx = p.begin().await.map_err(sql("starting a migration"))?;
                for step in &steps {
                    sqlx::query(AssertSqlSafe(step.as_str()))
                        .execute(&mut *tx)
                        .await
                        .map_err(sql("migrating the history schema"))?;
                }
                sqlx::query("INSERT INTO celeriac_schema (version) VALUES ($1)")
                    .bind(v)
                    .execute(&mut *tx)
                    .await
                    .map_err(sql("recording the schema version"))?;
                tx.commit().await.map_err(sql("committing a migration"))?;
            });
            tracing::info!(version = v, "history store migrated");
        }
        Ok(())
    }

    /// Writes `tasks` (each uuid at most once) in one transaction, merging
    /// each with its stored row by `record::merge`'s rules.
    pub async fn upsert(&self, tasks: &[TaskWrite]) -> Result<()> {
        if tasks.is_empty() {
            return Ok(());
        }
        with_pool!(&self.pool, p => {
            let mut tx = p.begin().await.map_err(sql("starting a history write"))?;
            let mut chunks = tasks.chunks_exact(rows_per_statement(self.dialect));
            for chunk in chunks.by_ref() {
                let mut q = sqlx::query(AssertSqlSafe(self.upsert_full.clone()));
                for w in chunk {
                    q = bind_task!(q, w);
                }
                q.execute(&mut *tx).await.map_err(sql("writing tasks"))?;
            }
            for w in chunks.remainder() {
                let q = sqlx::query(AssertSqlSafe(self.upsert_one.clone()));
                bind_task!(q, w)
                    .execute(&mut *tx)
                    .await
                    .map_err(sql("writing tasks"))?;
            }
            tx.commit().await.map_err(sql("committing tasks"))?;
        });
        Ok(())
    }

    /// One stored task with its stored children, as `/api/task/info` shows
    /// it.
    pub async fn task(&self, uuid: &str) -> Result<Option<api::Task>> {
        let select = format!(
            "SELECT {} FROM tasks WHERE uuid = $1",
            TASK_COLUMNS.join(", ")
        );
        let children = "SELECT uuid FROM tasks WHERE parent_id = $1 AND uuid <> $1 \
                        ORDER BY seen LIMIT 1000";
        with_pool!(&self.pool, p => {
            let Some(row) = sqlx::query(AssertSqlSafe(select.as_str()))
                .bind(uuid)
                .fetch_optional(p)
                .await
                .map_err(sql("reading a task"))?
            else {
                return Ok(None);
            };
            let mut task = (|| -> std::result::Result<api::Task, sqlx::Error> {
                Ok(task_of_row!(&row))
            })()
            .map_err(sql("reading a task"))?;
            task.children = sqlx::query_scalar(children)
                .bind(uuid)
                .fetch_all(p)
                .await
                .map_err(sql("reading a task's children"))?;
            Ok(Some(linked(task)))
        })
    }

    /// The `n` tasks celeriac saw last, oldest first (to refill memory).
    pub async fn recent(&self, n: usize) -> Result<Vec<(api::Task, f64)>> {
        let select = format!(
            "SELECT * FROM (SELECT {} FROM tasks ORDER BY seen DESC LIMIT $1) AS recent \
             ORDER BY seen",
            TASK_COLUMNS.join(", ")
        );
        with_pool!(&self.pool, p => {
            let rows = sqlx::query(AssertSqlSafe(select.as_str()))
                .bind(n as i64)
                .fetch_all(p)
                .await
                .map_err(sql("loading recent tasks"))?;
            rows.iter()
                .map(|row| -> std::result::Result<(api::Task, f64), sqlx::Error> {
                    Ok((task_of_row!(row), row.try_get("seen")?))
                })
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(sql("loading recent tasks"))
        })
    }

    /// The rows `plan` selects, in its order, from `offset`, at most `limit`.
    pub async fn scan(&self, plan: &Plan, offset: usize, limit: usize) -> Result<Vec<api::Task>> {
        let n = plan.params.len();
        let select = format!(
            "SELECT {} FROM tasks {} ORDER BY {} LIMIT ${} OFFSET ${}",
            TASK_COLUMNS.join(", "),
            plan.where_clause(),
            plan.order_by,
            n + 1,
            n + 2
        );
        with_pool!(&self.pool, p => {
            let mut q = sqlx::query(AssertSqlSafe(select.as_str()));
            for param in &plan.params {
                q = bind_param!(q, param);
            }
            let rows = q
                .bind(limit as i64)
                .bind(offset as i64)
                .fetch_all(p)
                .await
                .map_err(sql("searching history"))?;
            rows.iter()
                .map(|row| -> std::result::Result<api::Task, sqlx::Error> {
                    Ok(linked(task_of_row!(row)))
                })
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(sql("searching history"))
        })
    }

    /// Up to `limit` rows `plan` selects, newest first, strictly after
    /// `after` (the `(timestamp or 0, uuid)` of the last row of the
    /// previous page): a walk over any number of rows at constant cost per
    /// page.
    pub async fn scan_after(
        &self,
        plan: &Plan,
        after: Option<(f64, &str)>,
        limit: usize,
    ) -> Result<Vec<api::Task>> {
        match after {
            Some((ts, uuid)) => self.scan(&plan.after(ts, uuid), 0, limit).await,
            None => self.scan(&plan.newest_first(), 0, limit).await,
        }
    }

    /// Tasks stored.
    pub async fn count(&self) -> Result<u64> {
        with_pool!(&self.pool, p => {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
                .fetch_one(p)
                .await
                .map_err(sql("counting tasks"))?;
            Ok(n.max(0) as u64)
        })
    }

    /// Deletes at most `batch` tasks past their retention: failures last
    /// changed before `failed_before`, others before `before`. Returns how
    /// many went.
    pub async fn trim_expired(&self, before: f64, failed_before: f64, batch: u64) -> Result<u64> {
        let others = "DELETE FROM tasks WHERE uuid IN (SELECT uuid FROM tasks \
                      WHERE updated < $1 AND state <> 'FAILURE' LIMIT $2)";
        let failed = "DELETE FROM tasks WHERE uuid IN (SELECT uuid FROM tasks \
                      WHERE state = 'FAILURE' AND updated < $1 LIMIT $2)";
        let mut gone = 0;
        for (statement, cutoff) in [(others, before), (failed, failed_before)] {
            with_pool!(&self.pool, p => {
                gone += sqlx::query(statement)
                    .bind(cutoff)
                    .bind(batch as i64)
                    .execute(p)
                    .await
                    .map_err(sql("trimming history"))?
                    .rows_affected();
            });
        }
        Ok(gone)
    }

    /// Deletes the `n` tasks seen first (beyond `--history-max-tasks`).
    pub async fn trim_oldest(&self, n: u64) -> Result<u64> {
        let statement = "DELETE FROM tasks WHERE uuid IN \
                         (SELECT uuid FROM tasks ORDER BY seen LIMIT $1)";
        with_pool!(&self.pool, p => {
            Ok(sqlx::query(statement)
                .bind(n as i64)
                .execute(p)
                .await
                .map_err(sql("trimming history"))?
                .rows_affected())
        })
    }

    /// Appends an audit entry; returns the id the store gave it.
    pub async fn record_audit(&self, e: &AuditEntry) -> Result<u64> {
        let statement = "INSERT INTO audit (time, username, role, command, arguments, target, \
                         status, replies, no_reply) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                         RETURNING id";
        let no_reply = serde_json::to_string(&e.no_reply).unwrap_or_default();
        with_pool!(&self.pool, p => {
            let id: i64 = sqlx::query_scalar(statement)
                .bind(e.time)
                .bind(&e.user)
                .bind(&e.role)
                .bind(&e.command)
                .bind(e.arguments.to_string())
                .bind(e.target.to_string())
                .bind(i64::from(e.status))
                .bind(e.replies.to_string())
                .bind(&no_reply)
                .fetch_one(p)
                .await
                .map_err(sql("writing the audit log"))?;
            Ok(id.max(0) as u64)
        })
    }

    /// The newest `limit` audit entries, newest first.
    pub async fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        let select = "SELECT id, time, username, role, command, arguments, target, status, \
                      replies, no_reply FROM audit ORDER BY id DESC LIMIT $1";
        let json = |s: String| serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s));
        with_pool!(&self.pool, p => {
            let rows = sqlx::query(select)
                .bind(limit.min(i64::MAX as usize) as i64)
                .fetch_all(p)
                .await
                .map_err(sql("reading the audit log"))?;
            rows.iter()
                .map(|r| -> std::result::Result<AuditEntry, sqlx::Error> {
                    let id: i64 = r.try_get("id")?;
                    let status: i64 = r.try_get("status")?;
                    let no_reply: String = r.try_get("no_reply")?;
                    Ok(AuditEntry {
                        id: id.max(0) as u64,
                        time: r.try_get("time")?,
                        user: r.try_get("username")?,
                        role: r.try_get("role")?,
                        command: r.try_get("command")?,
                        arguments: json(r.try_get("arguments")?),
                        target: json(r.try_get("target")?),
                        status: u16::try_from(status).unwrap_or(0),
                        replies: json(r.try_get("replies")?),
                        no_reply: serde_json::from_str(&no_reply).unwrap_or_default(),
                    })
                })
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(sql("reading the audit log"))
        })
    }

    /// Records when each worker was last heard from.
    pub async fn upsert_workers(&self, workers: &[api::Worker]) -> Result<()> {
        let statement = format!(
            "INSERT INTO workers (hostname, last_seen, sw_ident, sw_ver, sw_sys, pid, freq, \
             processed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (hostname) DO UPDATE SET \
             last_seen = {max}(coalesce(excluded.last_seen, 0), coalesce(workers.last_seen, 0)), \
             sw_ident = coalesce(excluded.sw_ident, workers.sw_ident), \
             sw_ver = coalesce(excluded.sw_ver, workers.sw_ver), \
             sw_sys = coalesce(excluded.sw_sys, workers.sw_sys), \
             pid = coalesce(excluded.pid, workers.pid), \
             freq = coalesce(excluded.freq, workers.freq), \
             processed = coalesce(excluded.processed, workers.processed)",
            max = greatest(self.dialect)
        );
        with_pool!(&self.pool, p => {
            let mut tx = p.begin().await.map_err(sql("writing workers"))?;
            for w in workers {
                sqlx::query(AssertSqlSafe(statement.as_str()))
                    .bind(&w.hostname)
                    .bind(w.last_heartbeat)
                    .bind(&w.sw_ident)
                    .bind(&w.sw_ver)
                    .bind(&w.sw_sys)
                    .bind(w.pid)
                    .bind(w.freq)
                    .bind(w.processed)
                    .execute(&mut *tx)
                    .await
                    .map_err(sql("writing workers"))?;
            }
            tx.commit().await.map_err(sql("writing workers"))?;
        });
        Ok(())
    }

    pub async fn close(&self) {
        with_pool!(&self.pool, p => p.close().await)
    }
}

/// `root` and `parent` as `/api/task/info` names them: the store holds
/// every task, so the ids it knows are the links.
fn linked(mut t: api::Task) -> api::Task {
    t.root = t.root_id.clone();
    t.parent = t.parent_id.clone().filter(|p| *p != t.uuid);
    t
}

fn greatest(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => "max",
        Dialect::Postgres => "greatest",
    }
}

fn least(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => "min",
        Dialect::Postgres => "least",
    }
}

/// `INSERT … VALUES (…) × rows ON CONFLICT … DO UPDATE` with the merge
/// rules of `record::merge`.
pub fn upsert_sql(d: Dialect, rows: usize) -> String {
    let width = TASK_COLUMNS.len();
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let ps: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", ps.join(", "))
        })
        .collect();
    let wins = "(CASE WHEN excluded.state = 'RETRY' OR tasks.state = 'RETRY' \
                OR excluded.state_rank = tasks.state_rank \
                THEN coalesce(excluded.timestamp, 0) >= coalesce(tasks.timestamp, 0) \
                ELSE excluded.state_rank < tasks.state_rank END)";
    let sets: Vec<String> = TASK_COLUMNS
        .iter()
        .filter(|c| **c != "uuid")
        .map(|c| match *c {
            "state" | "state_rank" | "timestamp" | "clock" => {
                format!("{c} = CASE WHEN {wins} THEN excluded.{c} ELSE tasks.{c} END")
            }
            "seen" => format!("seen = {}(tasks.seen, excluded.seen)", least(d)),
            "updated" => format!("updated = {}(tasks.updated, excluded.updated)", greatest(d)),
            _ => format!("{c} = coalesce(excluded.{c}, tasks.{c})"),
        })
        .collect();
    format!(
        "INSERT INTO tasks ({}) VALUES {} ON CONFLICT (uuid) DO UPDATE SET {}",
        TASK_COLUMNS.join(", "),
        values.join(", "),
        sets.join(", ")
    )
}
