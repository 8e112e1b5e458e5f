//! Scenario `history`: a SQLite history store of `--history-tasks`
//! synthetic tasks written through celeriac's own `history::Store`, then
//! celeriac restarted on it: how fast the store is written, what a task
//! costs on disk, how long the restart takes to put 100,000 tasks back in
//! memory, and how fast `/api/tasks` answers a filtered listing and a
//! substring search that only the store can answer.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use api::{Task, TaskState};
use celeriac::history::store::TaskWrite;
use celeriac::history::{Store, Target};

use crate::monitor::{median, Monitor};
use crate::report::fmt_int;
use crate::scenarios::{detail, remove_sqlite, sqlite_bytes, step, Settings};

/// Tasks stored by default; the issue states its goals at 10,000,000.
pub const DEFAULT_TASKS: u64 = 1_000_000;
pub const GOAL_TASKS: u64 = 10_000_000;
/// Tasks per write transaction, as celeriac's writer batches them.
pub const BATCH: usize = 5_000;
/// `--max-tasks` of the restarted celeriac: what it loads back.
pub const WARM_TASKS: u64 = 100_000;
/// Requests per query; the median is reported.
const SAMPLES: usize = 20;
/// The tasks' timestamps are spread over this many days up to now.
const DAYS: f64 = 10.0;
const FAILURE_RATIO: f64 = 0.05;
const MODULES: [&str; 10] = [
    "orders",
    "billing",
    "mail",
    "reports",
    "inventory",
    "payments",
    "shipping",
    "users",
    "search",
    "analytics",
];
const VERBS: [&str; 5] = ["process", "sync", "notify", "cleanup", "export"];
const WORKERS: usize = 16;
/// A task name that went out of use: only tasks older than the newest
/// `WARM_TASKS` (and a margin) carry it, so memory holds none of them and
/// the filtered listing is the store's to answer.
pub const RETIRED: &str = "legacy.tasks.rebuild_search_index";
/// A task name no task has.
const NO_SUCH_NAME: &str = "legacy.tasks.never_sent";
/// A function name in exactly one old task's traceback.
pub const NEEDLE: &str = "reconcile_mismatched_ledger_entry";

#[derive(Clone, Debug)]
pub struct HistoryResult {
    /// Tasks in the store (`Store::count` after writing).
    pub tasks: u64,
    /// Time spent in `Store::upsert`, all batches.
    pub write: Duration,
    /// Database plus WAL after the store was closed.
    pub disk_bytes: u64,
    /// Spawn → `celeriac listening on`.
    pub warmup: Duration,
    /// From celeriac's `history loaded: N tasks back in memory` line: N
    /// and the seconds it logged.
    pub loaded: Option<u64>,
    pub load_seconds: Option<f64>,
    pub filtered: Query,
    /// The same listing for a name no task has: memory's scan, the
    /// store's empty answer and HTTP, without the rows.
    pub filtered_none: Query,
    pub search: Query,
    /// Task records celeriac wrote to the store between its start and the
    /// end of the queries (it had nothing new to write).
    pub rewritten: u64,
}

impl HistoryResult {
    pub fn write_rate(&self) -> f64 {
        crate::loadgen::per_sec(self.tasks, self.write)
    }

    pub fn bytes_per_task(&self) -> f64 {
        self.disk_bytes as f64 / self.tasks.max(1) as f64
    }
}

/// One `/api/tasks` query, timed.
#[derive(Clone, Debug)]
pub struct Query {
    pub path: String,
    pub median: Duration,
    /// The first request (a cold page cache).
    pub first: Duration,
    pub rows: usize,
    /// Rows the page should have.
    pub expected: usize,
    /// Every row is what was asked for (the right name and state; the
    /// needle's task).
    pub right: bool,
}

pub async fn run(settings: &Settings) -> Result<HistoryResult> {
    let path = settings.logs.join("history.db");
    remove_sqlite(&path);
    let outcome = run_with(settings, &path).await;
    // Up to gigabytes: not kept.
    remove_sqlite(&path);
    outcome
}

async fn run_with(settings: &Settings, path: &Path) -> Result<HistoryResult> {
    let n = settings.history_tasks.max(1);
    step(&format!(
        "writing {} tasks into {} through celeriac's history store, {} per transaction ...",
        fmt_int(n),
        path.display(),
        fmt_int(BATCH as u64)
    ));
    let store = Store::open(&Target::Sqlite(path.to_owned()))
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let mut gen = Records::new(n);
    let mut write = Duration::ZERO;
    let mut shown = 0;
    let wall = Instant::now();
    print!("    written:");
    flush();
    while gen.next < n {
        let batch = gen.batch(BATCH);
        let t = Instant::now();
        store.upsert(&batch).await.context("writing tasks")?;
        write += t.elapsed();
        // One line: a mark every 10%.
        let tenths = gen.next * 10 / n;
        while shown < tenths {
            shown += 1;
            print!(" {}%", shown * 10);
            flush();
        }
    }
    println!();
    let tasks = store.count().await.context("counting tasks")?;
    store.close().await;
    let disk_bytes = sqlite_bytes(path);
    if tasks != n {
        bail!(
            "the store holds {} tasks, {} were written",
            fmt_int(tasks),
            fmt_int(n)
        );
    }
    detail(&format!(
        "{} tasks in {:.1} s of writes ({:.1} s in all): {} tasks/s; {:.1} MiB on disk, {:.0} bytes per task",
        fmt_int(tasks),
        write.as_secs_f64(),
        wall.elapsed().as_secs_f64(),
        fmt_int(crate::loadgen::per_sec(tasks, write) as u64),
        crate::scenarios::mib(disk_bytes),
        disk_bytes as f64 / tasks as f64
    ));
    if gen.retired_failures < 100 {
        println!(
            "    note: only {} failed {RETIRED} tasks: the filtered page cannot fill",
            gen.retired_failures
        );
    }

    let vhost = settings.vhost("history").await?;
    let outcome = restart(settings, &vhost, path, tasks, &gen).await;
    settings.drop_vhost(&vhost).await;
    let (warmup, loaded, load_seconds, [filtered, filtered_none, search], rewritten) = outcome?;
    Ok(HistoryResult {
        tasks,
        write,
        disk_bytes,
        warmup,
        loaded,
        load_seconds,
        filtered,
        filtered_none,
        search,
        rewritten,
    })
}

type Restarted = (Duration, Option<u64>, Option<f64>, [Query; 3], u64);

/// celeriac started on the store: the warm-up, then the two queries.
async fn restart(
    settings: &Settings,
    vhost: &str,
    path: &Path,
    tasks: u64,
    gen: &Records,
) -> Result<Restarted> {
    step(&format!(
        "starting celeriac on the store (--max-tasks {}) ...",
        fmt_int(WARM_TASKS)
    ));
    let args = vec![
        "--db".to_owned(),
        format!("sqlite:{}", path.display()),
        "--max-tasks".to_owned(),
        WARM_TASKS.to_string(),
        "--enable-events".to_owned(),
        "false".to_owned(),
    ];
    let log = settings.log("history-celeriac");
    let celeriac = Monitor::start_celeriac_within(
        &settings.celeriac,
        &settings.url(vhost),
        &args,
        &log,
        Duration::from_secs(600),
    )
    .await?;
    let warmup = celeriac.process.started().elapsed();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let (loaded, load_seconds) = loaded_line(&text);
    detail(&format!(
        "listening {:.2} s after spawn; it logged {} tasks loaded in {} s",
        warmup.as_secs_f64(),
        loaded.map_or("no count of".to_owned(), fmt_int),
        load_seconds.map_or("?".to_owned(), |s| format!("{s:.2}")),
    ));

    let expected = gen.retired_failures.min(100) as usize;
    step(&format!(
        "timing GET /api/tasks?limit=100&taskname={RETIRED}&state=FAILURE ({SAMPLES} requests; {} of {} stored tasks have that name, none in memory) ...",
        fmt_int(gen.retired),
        fmt_int(tasks)
    ));
    let path = format!("/api/tasks?limit=100&taskname={RETIRED}&state=FAILURE");
    let filtered = time_query(&celeriac, &path, expected, |t| {
        t.get("name").and_then(|v| v.as_str()) == Some(RETIRED)
            && t.get("state").and_then(|v| v.as_str()) == Some("FAILURE")
    })
    .await?;
    report(&filtered);
    let path = format!("/api/tasks?limit=100&taskname={NO_SUCH_NAME}&state=FAILURE");
    step(&format!(
        "timing GET {path} ({SAMPLES} requests; no task has that name) ..."
    ));
    let filtered_none = time_query(&celeriac, &path, 0, |_| false).await?;
    report(&filtered_none);

    step(&format!(
        "timing GET /api/tasks?limit=100&search={NEEDLE} ({SAMPLES} requests; one task of {}, stored {:.1} days ago) ...",
        fmt_int(tasks),
        gen.needle_age / 86_400.0
    ));
    let path = format!("/api/tasks?limit=100&search={NEEDLE}");
    let uuid = gen.needle_uuid.clone();
    let search = time_query(&celeriac, &path, 1, |t| {
        t.get("uuid").and_then(|v| v.as_str()) == Some(uuid.as_str())
    })
    .await?;
    report(&search);

    // celeriac's count since it started: it loaded the tasks and had
    // nothing new to write.
    let rewritten = celeriac.history().await?.written;
    if rewritten > 0 {
        detail(&format!(
            "celeriac wrote {} task records back to the store after the restart",
            fmt_int(rewritten)
        ));
    }
    Ok((
        warmup,
        loaded,
        load_seconds,
        [filtered, filtered_none, search],
        rewritten,
    ))
}

async fn time_query(
    celeriac: &Monitor,
    path: &str,
    expected: usize,
    right: impl Fn(&serde_json::Value) -> bool,
) -> Result<Query> {
    let (times, body) = celeriac.get_timed(path, SAMPLES).await?;
    let page: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&body).with_context(|| format!("parsing the answer to {path}"))?;
    Ok(Query {
        path: path.to_owned(),
        first: times.first().copied().unwrap_or_default(),
        median: median(times),
        rows: page.len(),
        expected,
        right: page.len() == expected && page.values().all(right),
    })
}

fn report(q: &Query) {
    detail(&format!(
        "median {:.1} ms (first {:.1} ms); {} rows{}",
        q.median.as_secs_f64() * 1e3,
        q.first.as_secs_f64() * 1e3,
        q.rows,
        if q.right {
            String::new()
        } else {
            format!(", expected {} matching rows", q.expected)
        }
    ));
}

/// The task count and seconds of celeriac's `history loaded: N tasks back
/// in memory` log line.
fn loaded_line(log: &str) -> (Option<u64>, Option<f64>) {
    let Some(line) = log.lines().find(|l| l.contains("history loaded: ")) else {
        return (None, None);
    };
    let line = strip_ansi(line);
    let count = line
        .split("history loaded: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    let seconds = line
        .split("seconds=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.parse().ok());
    (count, seconds)
}

/// `s` without terminal colour sequences (`ESC [ … letter`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn flush() {
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
}

/// Synthetic task records, oldest first: 50 task names (one retired
/// before the newest tasks), ~5% FAILURE with an exception and a Python
/// traceback, the rest SUCCESS with a result; args and kwargs as Python
/// reprs; 16 workers; timestamps spread over the last ten days; `seen`
/// increasing with them.
pub struct Records {
    rng: fastrand::Rng,
    names: Vec<String>,
    total: u64,
    /// The next task's index (0 is the oldest).
    pub next: u64,
    start: f64,
    step: f64,
    /// Tasks from this index on no longer use `RETIRED`.
    retired_until: u64,
    needle_at: u64,
    pub retired: u64,
    pub retired_failures: u64,
    pub needle_uuid: String,
    /// How long before now the needle's task ran (s).
    pub needle_age: f64,
}

impl Records {
    pub fn new(total: u64) -> Records {
        let now = celeriac::clock::now();
        let span = DAYS * 86_400.0;
        let mut names: Vec<String> = MODULES
            .iter()
            .flat_map(|m| VERBS.iter().map(move |v| format!("{m}.tasks.{v}_{m}")))
            .collect();
        // 49 in use throughout, the 50th retired.
        names.pop();
        Records {
            rng: fastrand::Rng::with_seed(20_251_123),
            names,
            total,
            next: 0,
            start: now - span,
            step: span / total.max(1) as f64,
            retired_until: total.saturating_sub(WARM_TASKS + WARM_TASKS / 10),
            needle_at: total / 4,
            retired: 0,
            retired_failures: 0,
            needle_uuid: String::new(),
            needle_age: 0.0,
        }
    }

    /// The next `n` tasks (fewer at the end).
    pub fn batch(&mut self, n: usize) -> Vec<TaskWrite> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n && self.next < self.total {
            out.push(self.task(self.next));
            self.next += 1;
        }
        out
    }

    fn task(&mut self, i: u64) -> TaskWrite {
        let rng = &mut self.rng;
        let uuid = uuid::Builder::from_random_bytes(rng.u128(..).to_le_bytes())
            .into_uuid()
            .to_string();
        let retired = i < self.retired_until && rng.usize(..self.names.len() + 1) == 0;
        let k = rng.usize(..self.names.len());
        let name = if retired {
            RETIRED.to_owned()
        } else {
            self.names[k].clone()
        };
        let module = name.split('.').next().unwrap_or("app").to_owned();
        let needle = i == self.needle_at;
        let failed = needle || rng.f64() < FAILURE_RATIO;
        let sent = self.start + self.step * i as f64;
        let received = sent + 0.002 + rng.f64() * 0.1;
        let started = received + 0.001 + rng.f64() * 0.01;
        // Mostly quick, some long.
        let runtime = 0.005 + rng.f64().powi(3) * 5.0;
        let done = started + runtime;
        let n = rng.u32(1..10_000_000);
        let region = n % 3 + 1;
        let (args, kwargs, result) = match k % 5 {
            0 => (
                format!("({n},)"),
                "{'priority': 'high', 'notify': True}".to_owned(),
                format!("{{'id': {n}, 'status': 'done', 'items': {}}}", n % 7 + 1),
            ),
            1 => (
                format!("('{module}', {n}, 'eu-west-{region}')"),
                format!("{{'since': {:.0}, 'full': False}}", sent - 3_600.0),
                format!("{{'synced': {}, 'skipped': {}}}", n % 500, n % 13),
            ),
            2 => (
                format!("('user{n}@example.com',)"),
                "{'template': 'welcome', 'locale': 'en_US'}".to_owned(),
                "None".to_owned(),
            ),
            3 => (
                format!("([{n}, {}, {}],)", n + 1, n + 2),
                "{'batch_size': 500, 'dry_run': False}".to_owned(),
                format!("{}", n % 1_000),
            ),
            _ => (
                format!("('{module}', 'eu-west-{region}')"),
                "{'format': 'csv', 'recipients': ['ops@example.com']}".to_owned(),
                format!("'s3://exports/{module}/{n}.csv'"),
            ),
        };
        let worker = format!("celery@worker-{:02}.prod", rng.usize(..WORKERS) + 1);
        let (exception, traceback) = if failed {
            let (e, tb) = failure(rng, &name, &module, n, needle);
            (Some(e), Some(tb))
        } else {
            (None, None)
        };
        if retired {
            self.retired += 1;
            if failed {
                self.retired_failures += 1;
            }
        }
        if needle {
            self.needle_uuid = uuid.clone();
            self.needle_age = celeriac::clock::now() - done;
        }
        let task = Task {
            uuid: uuid.clone(),
            name: Some(name),
            state: if failed {
                TaskState::Failure
            } else {
                TaskState::Success
            },
            received: Some(received),
            sent: Some(sent),
            started: Some(started),
            rejected: None,
            succeeded: (!failed).then_some(done),
            failed: failed.then_some(done),
            retried: None,
            revoked: None,
            args: Some(args),
            kwargs: Some(kwargs),
            eta: None,
            expires: None,
            retries: Some(0),
            result: (!failed).then_some(result),
            exception,
            timestamp: Some(done),
            runtime: (!failed).then_some(runtime),
            traceback,
            exchange: Some(String::new()),
            routing_key: Some(module.clone()),
            clock: Some(i * 3 + 3),
            client: Some(format!("web-{}@prod", n % 4 + 1)),
            root: None,
            root_id: Some(uuid),
            parent: None,
            parent_id: None,
            children: Vec::new(),
            worker: Some(worker),
            queue: Some(module),
        };
        TaskWrite {
            task,
            // When celeriac first wrote it: increasing with the tasks.
            seen: sent + 0.5,
        }
    }
}

/// A failed task's exception and traceback (the needle's has one more
/// frame, with `NEEDLE` in it).
fn failure(
    rng: &mut fastrand::Rng,
    name: &str,
    module: &str,
    n: u32,
    needle: bool,
) -> (String, String) {
    let function = name.rsplit('.').next().unwrap_or("run");
    let exception = match rng.usize(..5) {
        0 => format!("ValueError('{module} record {n} has no items')"),
        1 => format!("KeyError('customer_{n}')"),
        2 => "TimeoutError('upstream did not answer within 30 s')".to_owned(),
        3 => format!(
            "ConnectionError('connection to db-{}.internal:5432 refused')",
            n % 4 + 1
        ),
        _ => format!(
            "IntegrityError('duplicate key value violates unique constraint \"{module}_pkey\"')"
        ),
    };
    let (kind, message) = exception
        .split_once('(')
        .map(|(k, m)| (k, m.trim_end_matches(')').trim_matches('\'')))
        .unwrap_or(("Exception", ""));
    let mut tb = String::from(
        "Traceback (most recent call last):\n  File \"/srv/app/venv/lib/python3.11/site-packages/celery/app/trace.py\", line 477, in trace_task\n    R = retval = fun(*args, **kwargs)\n                 ^^^^^^^^^^^^^^^^^^^^\n  File \"/srv/app/venv/lib/python3.11/site-packages/celery/app/trace.py\", line 760, in __protected_call__\n    return self.run(*args, **kwargs)\n           ^^^^^^^^^^^^^^^^^^^^^^^^^\n",
    );
    tb.push_str(&format!(
        "  File \"/srv/app/{module}/tasks.py\", line {}, in {function}\n    result = {module}_service.handle(record_id={n})\n",
        40 + n % 400
    ));
    tb.push_str(&format!(
        "  File \"/srv/app/{module}/service.py\", line {}, in handle\n    return self._apply(record, options)\n",
        100 + n % 900
    ));
    if needle {
        tb.push_str(&format!(
            "  File \"/srv/app/billing/ledger.py\", line 977, in {NEEDLE}\n    entry.reconcile(strict=True)\n"
        ));
    }
    tb.push_str(&format!(
        "  File \"/srv/app/{module}/service.py\", line {}, in _apply\n    raise {kind}(...)\n{kind}: {message}\n",
        200 + n % 700
    ));
    (exception, tb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_oldest_first_with_one_needle_and_a_retired_name() {
        let total = 300_000;
        let mut gen = Records::new(total);
        let mut last_seen = f64::MIN;
        let (mut failures, mut needles, mut names) = (0, 0, std::collections::HashSet::new());
        let mut newest_retired = 0;
        while gen.next < total {
            let first = gen.next;
            for (j, w) in gen.batch(BATCH).into_iter().enumerate() {
                assert!(w.seen > last_seen);
                last_seen = w.seen;
                let t = &w.task;
                names.insert(t.name.clone().unwrap());
                if t.state == TaskState::Failure {
                    failures += 1;
                    assert!(t.traceback.as_deref().unwrap().contains("Traceback"));
                    assert!(t.exception.is_some() && t.result.is_none());
                } else {
                    assert!(t.result.is_some() && t.traceback.is_none());
                }
                let text = [&t.args, &t.kwargs, &t.result, &t.exception, &t.traceback];
                if text
                    .iter()
                    .any(|f| f.as_deref().is_some_and(|s| s.contains(NEEDLE)))
                {
                    needles += 1;
                }
                if t.name.as_deref() == Some(RETIRED) {
                    newest_retired = first + j as u64;
                }
            }
        }
        assert_eq!(needles, 1);
        assert_eq!(names.len(), 50);
        assert!(newest_retired < total - WARM_TASKS);
        assert!(gen.retired_failures >= 100, "{}", gen.retired_failures);
        let ratio = failures as f64 / total as f64;
        assert!((0.04..0.06).contains(&ratio), "{ratio}");
    }

    #[test]
    fn the_loaded_line_is_read_through_colours() {
        let line = "2026-01-01T00:00:00Z \u{1b}[32m INFO\u{1b}[0m \u{1b}[2mceleriac::history\u{1b}[0m\u{1b}[2m:\u{1b}[0m history loaded: 100000 tasks back in memory \u{1b}[3mtasks\u{1b}[0m\u{1b}[2m=\u{1b}[0m100000 \u{1b}[3mseconds\u{1b}[0m\u{1b}[2m=\u{1b}[0m1.25\n";
        assert_eq!(loaded_line(line), (Some(100_000), Some(1.25)));
        assert_eq!(loaded_line("nothing"), (None, None));
    }
}
