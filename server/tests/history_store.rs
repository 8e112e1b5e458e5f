//! The history store against the real databases: the embedded SQLite file
//! and the local PostgreSQL (a database of each test's own). Each test runs
//! once per backend.

mod support;

use api::{Task, TaskState};
use celeriac::history::plan::Plan;
use celeriac::history::schema::VERSION;
use celeriac::history::store::TaskWrite;
use celeriac::history::{Store, StoreError, Target};
use celeriac::query::TaskQuery;
use support::postgres::TestDb;

/// A SQLite file in a directory of the test's own, or a fresh database.
enum Backend {
    Sqlite(std::path::PathBuf),
    Postgres(TestDb),
}

impl Backend {
    fn all(test: &str) -> Vec<Backend> {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("history-store")
            .join(format!("{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        vec![
            Backend::Sqlite(dir.join("history.db")),
            Backend::Postgres(TestDb::new(test)),
        ]
    }

    fn target(&self) -> Target {
        match self {
            Backend::Sqlite(p) => Target::Sqlite(p.clone()),
            Backend::Postgres(db) => Target::Postgres(db.url.clone()),
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn task(uuid: &str, state: TaskState, timestamp: f64) -> Task {
    let mut t: Task = serde_json::from_value(serde_json::json!({
        "uuid": uuid, "name": null, "state": "PENDING", "received": null, "sent": null,
        "started": null, "rejected": null, "succeeded": null, "failed": null, "retried": null,
        "revoked": null, "args": null, "kwargs": null, "eta": null, "expires": null,
        "retries": null, "result": null, "exception": null, "timestamp": null, "runtime": null,
        "traceback": null, "exchange": null, "routing_key": null, "clock": null, "client": null,
        "root": null, "root_id": null, "parent": null, "parent_id": null, "children": [],
        "worker": null
    }))
    .unwrap();
    t.state = state;
    t.timestamp = Some(timestamp);
    t
}

fn write(t: Task, seen: f64) -> TaskWrite {
    TaskWrite { task: t, seen }
}

fn query(pairs: &[(&str, &str)]) -> TaskQuery {
    let params: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    TaskQuery::from_params(&params).unwrap()
}

async fn search(store: &Store, pairs: &[(&str, &str)]) -> Vec<String> {
    let q = query(pairs);
    let plan = Plan::of(&q, store.dialect());
    let rows = store.scan(&plan, 0, 100).await.unwrap();
    rows.into_iter()
        .filter(|t| q.matches(&celeriac::state::TaskView::of_api(t)))
        .map(|t| t.uuid)
        .collect()
}

#[test]
fn two_writers_of_one_task_converge_whatever_the_order() {
    use TaskState::*;
    // (first written, then written, the state the row ends with)
    let cases = [
        ((Success, 3.0), (Started, 2.0), Success),
        ((Started, 2.0), (Success, 3.0), Success),
        ((Failure, 2.0), (Success, 3.0), Success),
        ((Success, 3.0), (Failure, 2.0), Success),
        ((Retry, 2.0), (Started, 3.0), Started),
        ((Started, 3.0), (Retry, 2.0), Started),
        ((Started, 1.0), (Retry, 2.0), Retry),
    ];
    for backend in Backend::all("converge") {
        runtime().block_on(async {
            let store = Store::open(&backend.target()).await.unwrap();
            for (i, ((a, ta), (b, tb), want)) in cases.iter().cloned().enumerate() {
                for (order, (first, second)) in
                    [((a.clone(), ta), (b.clone(), tb)), ((b, tb), (a, ta))]
                        .into_iter()
                        .enumerate()
                {
                    let id = format!("case-{i}-{order}");
                    let mut one = task(&id, first.0, first.1);
                    one.args = Some("(1,)".into());
                    let mut two = task(&id, second.0, second.1);
                    two.worker = Some("w1@h".into());
                    store.upsert(&[write(one, 10.0)]).await.unwrap();
                    store.upsert(&[write(two, 11.0)]).await.unwrap();
                    let row = store.task(&id).await.unwrap().unwrap();
                    assert_eq!(row.state, want, "{id} in {:?}", store.dialect());
                    // Neither write erased what the other knew.
                    assert_eq!(row.args.as_deref(), Some("(1,)"));
                    assert_eq!(row.worker.as_deref(), Some("w1@h"));
                }
            }
        });
    }
}

#[test]
fn a_batch_round_trips_every_field_and_children_are_found() {
    for backend in Backend::all("roundtrip") {
        runtime().block_on(async {
            let store = Store::open(&backend.target()).await.unwrap();
            let mut parent = task("p", TaskState::Success, 5.0);
            parent.name = Some("tasks.chain".into());
            parent.args = Some("('x',)".into());
            parent.kwargs = Some("{'k': 1}".into());
            parent.result = Some("'ok'".into());
            parent.sent = Some(1.0);
            parent.received = Some(1.5);
            parent.started = Some(2.0);
            parent.succeeded = Some(5.0);
            parent.runtime = Some(3.0);
            parent.clock = Some(42);
            parent.retries = Some(1);
            parent.eta = Some("2026-12-05T10:00:00+00:00".into());
            parent.exchange = Some("".into());
            parent.routing_key = Some("celery".into());
            parent.queue = Some("celery".into());
            parent.client = Some("gen@h".into());
            parent.worker = Some("w1@h".into());
            let mut child = task("c", TaskState::Failure, 6.0);
            child.parent_id = Some("p".into());
            child.root_id = Some("p".into());
            child.exception = Some("ValueError('kaput')".into());
            child.traceback = Some("Traceback (most recent call last):\n  File \"t.py\"".into());
            // Enough rows to fill the multi-row statement and leave a rest.
            let mut batch = vec![write(parent.clone(), 1.0), write(child, 2.0)];
            batch.extend(
                (0..130).map(|i| write(task(&format!("n{i}"), TaskState::Received, 1.0), 3.0)),
            );
            store.upsert(&batch).await.unwrap();
            assert_eq!(store.count().await.unwrap(), 132);
            let mut got = store.task("p").await.unwrap().unwrap();
            assert_eq!(got.children, ["c"]);
            got.children.clear();
            assert_eq!(got, parent, "{:?}", store.dialect());
            let c = store.task("c").await.unwrap().unwrap();
            assert_eq!(
                (c.parent.as_deref(), c.root.as_deref()),
                (Some("p"), Some("p"))
            );
            // Restart order: the newest seen, handed back oldest first.
            let recent: Vec<String> = store
                .recent(3)
                .await
                .unwrap()
                .into_iter()
                .map(|(t, _)| t.uuid)
                .collect();
            assert_eq!(recent.len(), 3);
            assert!(recent.iter().all(|u| u.starts_with('n')), "{recent:?}");
        });
    }
}

#[test]
fn search_uses_the_substring_index_over_tracebacks_and_filters() {
    for backend in Backend::all("search") {
        runtime().block_on(async {
            let store = Store::open(&backend.target()).await.unwrap();
            let mut a = task("a", TaskState::Failure, 2.0);
            a.name = Some("tasks.fail".into());
            a.traceback = Some("Traceback ...\nZeroDivisionError: division by zero".into());
            a.worker = Some("w1@h".into());
            let mut b = task("b", TaskState::Success, 3.0);
            b.name = Some("tasks.add".into());
            b.args = Some("(2, 'Division')".into());
            let mut c = task("c", TaskState::Failure, 4.0);
            c.name = Some("tasks.fail".into());
            c.exception = Some("KeyError('x')".into());
            store
                .upsert(&[write(a, 1.0), write(b, 1.0), write(c, 1.0)])
                .await
                .unwrap();
            assert_eq!(search(&store, &[("search", "ivisionerr")]).await, ["a"]);
            assert_eq!(search(&store, &[("search", "DIVISION")]).await, ["b", "a"]);
            assert_eq!(
                search(&store, &[("search", "division"), ("state", "FAILURE")]).await,
                ["a"]
            );
            assert_eq!(
                search(&store, &[("taskname", "TASKS.FAIL")]).await,
                ["c", "a"]
            );
            assert_eq!(
                search(&store, &[("workername", "w1@h"), ("sort_by", "name")]).await,
                ["a"]
            );
            assert_eq!(
                search(&store, &[("sort_by", "-name")]).await,
                ["c", "a", "b"]
            );
            assert!(search(&store, &[("search", "nowhere")]).await.is_empty());
        });
    }
}

#[test]
fn retention_deletes_old_tasks_and_keeps_failures_longer() {
    for backend in Backend::all("retention") {
        runtime().block_on(async {
            let store = Store::open(&backend.target()).await.unwrap();
            let day = 86_400.0;
            let now = 100.0 * day;
            let rows = [
                ("old-ok", TaskState::Success, now - 20.0 * day),
                ("old-failed", TaskState::Failure, now - 20.0 * day),
                ("ancient-failed", TaskState::Failure, now - 40.0 * day),
                ("new-ok", TaskState::Success, now - day),
            ];
            let batch: Vec<TaskWrite> = rows
                .iter()
                .map(|(id, s, at)| write(task(id, s.clone(), *at), *at))
                .collect();
            store.upsert(&batch).await.unwrap();
            let gone = store
                .trim_expired(now - 14.0 * day, now - 30.0 * day, 1000)
                .await
                .unwrap();
            assert_eq!(gone, 2);
            for (id, kept) in [
                ("old-ok", false),
                ("old-failed", true),
                ("ancient-failed", false),
                ("new-ok", true),
            ] {
                assert_eq!(store.task(id).await.unwrap().is_some(), kept, "{id}");
            }
            // The index forgets them too.
            assert!(search(&store, &[("search", "ancient")]).await.is_empty());
            assert_eq!(store.trim_oldest(1).await.unwrap(), 1);
            assert_eq!(store.count().await.unwrap(), 1);
        });
    }
}

#[test]
fn a_store_from_the_previous_version_is_migrated_and_a_newer_one_refused() {
    for backend in Backend::all("migrate") {
        runtime().block_on(async {
            let target = backend.target();
            // Version 1 had no search index.
            let old = Store::connect(&target).await.unwrap();
            old.migrate_to(1).await.unwrap();
            let mut t = task("before", TaskState::Failure, 1.0);
            t.traceback = Some("RuntimeError: written by version one".into());
            old.upsert(&[write(t, 1.0)]).await.unwrap();
            old.close().await;

            let store = Store::open(&target).await.unwrap();
            assert_eq!(store.version().await.unwrap(), VERSION);
            assert_eq!(
                search(&store, &[("search", "version one")]).await,
                ["before"]
            );
            store.close().await;

            // A newer celeriac's store is refused, not guessed at.
            let raw = Store::connect(&target).await.unwrap();
            raw.record_version(99).await.unwrap();
            raw.close().await;
            let err = Store::open(&target).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    StoreError::NewerSchema {
                        found: 99,
                        known: VERSION
                    }
                ),
                "{err}"
            );
            assert!(err.to_string().contains("newer celeriac"), "{err}");
        });
    }
}

#[test]
fn the_audit_log_is_kept_newest_first() {
    for backend in Backend::all("audit") {
        runtime().block_on(async {
            let store = Store::open(&backend.target()).await.unwrap();
            for (i, command) in ["pool_grow", "shutdown"].into_iter().enumerate() {
                let entry: api::control::AuditEntry = serde_json::from_value(serde_json::json!({
                    "id": 0, "time": i as f64, "user": "ann", "role": "operator",
                    "command": command, "arguments": {"n": 1}, "target": ["w1@h"],
                    "status": 200, "replies": {"w1@h": {"ok": "done"}}, "no_reply": []
                }))
                .unwrap();
                store.record_audit(&entry).await.unwrap();
            }
            let log = store.audit(10).await.unwrap();
            let commands: Vec<&str> = log.iter().map(|e| e.command.as_str()).collect();
            assert_eq!(commands, ["shutdown", "pool_grow"]);
            assert_eq!(log[0].arguments, serde_json::json!({"n": 1}));
            assert_eq!(log[0].replies["w1@h"]["ok"], "done");
            assert!(log[0].id > log[1].id);
        });
    }
}

/// The listings of one task type, its failures or one state, newest first,
/// read an index in order instead of sorting the matching rows: the cost of
/// a page stays that of the page however many tasks are stored.
#[test]
fn newest_first_listings_by_name_and_state_need_no_sort() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("history-store")
        .join(format!("plans-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("history.db");
    runtime().block_on(async {
        let store = Store::open(&Target::Sqlite(path.clone())).await.unwrap();
        store.close().await;
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let cases: [(&[(&str, &str)], &str); 3] = [
            (
                &[("taskname", "tasks.add"), ("state", "FAILURE")],
                "tasks_name_state_newest",
            ),
            (&[("taskname", "tasks.add")], "tasks_name_newest"),
            (&[("state", "FAILURE")], "tasks_state_newest"),
        ];
        for (pairs, index) in cases {
            let plan = Plan::of(&query(pairs), store.dialect());
            let sql = format!(
                "EXPLAIN QUERY PLAN SELECT uuid FROM tasks {} ORDER BY {} LIMIT 20",
                plan.where_clause(),
                plan.order_by
            );
            let mut q = sqlx::query_as::<_, (i64, i64, i64, String)>(sqlx::AssertSqlSafe(sql));
            for p in &plan.params {
                q = match p {
                    celeriac::history::plan::Param::Text(s) => q.bind(s.clone()),
                    celeriac::history::plan::Param::Real(f) => q.bind(*f),
                    celeriac::history::plan::Param::Int(i) => q.bind(*i),
                };
            }
            let detail: Vec<String> = q
                .fetch_all(&pool)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.3)
                .collect();
            let text = detail.join(" | ");
            assert!(text.contains(index), "{pairs:?}: {text}");
            assert!(!text.contains("TEMP B-TREE"), "{pairs:?} sorts: {text}");
        }
        pool.close().await;
    });
}
