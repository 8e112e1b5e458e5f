//! Scenario `listing`: what `GET /api/tasks` costs at 1,000,000 retained
//! tasks (the goal: `limit=100` with and without filters ≤ 2 ms; a full
//! listing streamed at ≥ 200,000 tasks/s). In-process, on celeriac's own
//! state and query, no broker: each page is the query plus the rendering
//! of its tasks to Flower's JSON, as the handler does, first through the
//! state's indexes (today's path) and then with the full path forced (every
//! retained task filtered and the best `offset + limit` selected, the path
//! before the indexes and still the one for `search=` and `sort_by`), in
//! the same run on the same state.
//!
//! The state is built from events as ingest builds it: 20 task names, 50
//! workers, one task in twenty failed and one retried, events 2 ms apart
//! (1,000,000 tasks span 2.2 hours, so a `received_end` minute halves them). Memory: the resident set's growth while the state
//! is built, per task, and an index entry's cost measured alone (a
//! `BTreeSet<u128>` of as many entries, built in the same order).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use celeriac::events::{Event, EventKind};
use celeriac::query::TaskQuery;
use celeriac::state::{Limits, State, TaskView};

const NAMES: usize = 20;
const WORKERS: usize = 50;
/// Pages timed per query and path; the median is reported.
const REPS: usize = 5;
/// Matches per chunk of the streamed listing (the handler's).
const CHUNK: usize = 1_000;

pub struct Row {
    pub query: String,
    /// Whether the indexes can answer it at all (not with `search=`).
    pub indexable: bool,
    pub matches: usize,
    pub indexed: Duration,
    pub full: Duration,
}

pub struct ListingResult {
    pub tasks: usize,
    pub build: Duration,
    pub rss_per_task: Option<f64>,
    pub index_entry_bytes: Option<f64>,
    pub rows: Vec<Row>,
    pub stream_tasks: usize,
    pub stream: Duration,
    pub stream_bytes: usize,
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * rustix::param::page_size() as u64)
}

fn build(tasks: usize) -> State {
    let mut state = State::new(Limits {
        max_tasks: tasks,
        max_workers: WORKERS + 10,
        ..Limits::default()
    });
    let mut now = 1_700_000_000.0;
    for n in 0..tasks {
        let uuid = format!("{:08x}-0000-4000-8000-{:012x}", n % 997, n);
        let host = format!("celery@worker{}", n % WORKERS);
        let name = format!("proj.tasks.task_{}", n % NAMES);
        let mut apply = |kind: EventKind, host: &str, dt: f64, f: &dyn Fn(&mut Event)| {
            now += dt;
            let mut e = Event {
                kind,
                hostname: host.to_owned(),
                timestamp: now,
                uuid: Some(uuid.clone()),
                ..Event::default()
            };
            f(&mut e);
            state.apply(&e, now);
        };
        apply(EventKind::TaskSent, "client@web1", 0.002, &|e| {
            e.name = Some(name.clone());
            e.args = Some(format!("({n}, 2)"));
            e.kwargs = Some("{}".into());
            e.queue = Some("celery".into());
        });
        apply(EventKind::TaskReceived, &host, 0.002, &|e| {
            e.name = Some(name.clone());
        });
        apply(EventKind::TaskStarted, &host, 0.002, &|_| {});
        match n % 20 {
            0 => apply(EventKind::TaskFailed, &host, 0.002, &|e| {
                e.exception = Some(format!("ValueError('bad input {n}')"));
            }),
            1 => apply(EventKind::TaskRetried, &host, 0.002, &|e| {
                e.exception = Some("TimeoutError()".into());
            }),
            _ => apply(EventKind::TaskSucceeded, &host, 0.002, &|e| {
                e.result = Some(format!("{}", n + 2));
                e.runtime = Some(0.01);
            }),
        }
    }
    state
}

/// The page as the handler renders it.
fn render(page: Vec<TaskView<'_>>) -> usize {
    let tasks: Vec<api::Task> = page.into_iter().map(|t| t.to_api()).collect();
    let mut buf = Vec::new();
    for t in &tasks {
        let _ = serde_json::to_writer(&mut buf, &t.uuid);
        let _ = serde_json::to_writer(&mut buf, t);
    }
    std::hint::black_box(buf.len());
    tasks.len()
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn query(pairs: &[(&str, &str)]) -> anyhow::Result<TaskQuery> {
    let params: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Ok(TaskQuery::from_params(&params)?)
}

pub fn run(tasks: usize) -> anyhow::Result<ListingResult> {
    let rss0 = rss_bytes();
    let t0 = Instant::now();
    let state = build(tasks);
    let build_time = t0.elapsed();
    let rss1 = rss_bytes();
    let rss_per_task = rss0
        .zip(rss1)
        .map(|(a, b)| b.saturating_sub(a) as f64 / tasks as f64);
    // An index entry alone: the same count, inserted in ascending order as
    // timestamps arrive.
    let index_entry_bytes = {
        let before = rss_bytes();
        let set: BTreeSet<u128> = (0..tasks as u128).map(|i| i << 32 | (i % 7)).collect();
        let after = rss_bytes();
        std::hint::black_box(set.len());
        before
            .zip(after)
            .map(|(a, b)| b.saturating_sub(a) as f64 / tasks as f64)
    };

    // The middle of the build's received times: a window over old tasks.
    let mid = chrono_minute(1_700_000_000.0 + tasks as f64 * 0.004);
    let cases: Vec<(&str, TaskQuery)> = vec![
        ("limit=100", query(&[("limit", "100")])?),
        (
            "limit=100&offset=1000",
            query(&[("limit", "100"), ("offset", "1000")])?,
        ),
        (
            "limit=100&state=FAILURE",
            query(&[("limit", "100"), ("state", "FAILURE")])?,
        ),
        (
            "limit=100&taskname=proj.tasks.task_7",
            query(&[("limit", "100"), ("taskname", "proj.tasks.task_7")])?,
        ),
        (
            "limit=100&workername=celery@worker3&state=SUCCESS",
            query(&[
                ("limit", "100"),
                ("workername", "celery@worker3"),
                ("state", "SUCCESS"),
            ])?,
        ),
        // Search always takes the full path: it reads every task's text.
        (
            "limit=100&search=task_7 (a name term)",
            query(&[("limit", "100"), ("search", "task_7")])?,
        ),
        (
            "limit=100&search=args:12345 (one old task's argument)",
            query(&[("limit", "100"), ("search", "args:12345")])?,
        ),
        (
            "limit=100&received_end=<the middle minute>",
            query(&[("limit", "100"), ("received_end", &mid)])?,
        ),
    ];
    let mut rows = Vec::new();
    for (name, q) in cases {
        let mut indexed = Vec::new();
        let mut full = Vec::new();
        let mut matches = 0;
        for _ in 0..REPS {
            let t = Instant::now();
            matches = render(q.run_state(&state));
            indexed.push(t.elapsed());
            let t = Instant::now();
            let forced = render(q.run(state.tasks()));
            full.push(t.elapsed());
            anyhow::ensure!(forced == matches, "{name}: the two paths disagree");
        }
        rows.push(Row {
            query: name.to_owned(),
            indexable: q.indexable(),
            matches,
            indexed: median(indexed),
            full: median(full),
        });
    }

    // The streamed full listing: chunk by chunk, rendered to JSON.
    let all = query(&[])?;
    let t = Instant::now();
    let (mut below, mut n, mut bytes) = (None, 0, 0);
    loop {
        let Some(stretch) = all.stretch(&state, below, CHUNK) else {
            anyhow::bail!("a full listing is not indexable");
        };
        let tasks: Vec<api::Task> = stretch.tasks.iter().map(|t| t.to_api()).collect();
        let mut buf = Vec::with_capacity(tasks.len() * 1_024);
        for t in &tasks {
            let _ = serde_json::to_writer(&mut buf, &t.uuid);
            buf.push(b':');
            let _ = serde_json::to_writer(&mut buf, t);
        }
        n += tasks.len();
        bytes += buf.len();
        match stretch.next {
            Some(c) => below = Some(c),
            None => break,
        }
    }
    Ok(ListingResult {
        tasks,
        build: build_time,
        rss_per_task,
        index_entry_bytes,
        rows,
        stream_tasks: n,
        stream: t.elapsed(),
        stream_bytes: bytes,
    })
}

/// `YYYY-MM-DD HH:MM` (UTC) of a Unix time, as `received_end` takes it.
fn chrono_minute(t: f64) -> String {
    let secs = t as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3_600,
        rem % 3_600 / 60
    )
}

pub fn render_result(r: &ListingResult) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut s = format!(
        "\n/api/tasks at {} retained tasks (in-process; goal ≤ 2 ms a page of 100, \
         a full listing streamed at ≥ 200,000 tasks/s); state built from events in {:.1} s\n",
        r.tasks,
        r.build.as_secs_f64()
    );
    for row in r.rows.iter().filter(|row| !row.indexable) {
        let _ = writeln!(
            s,
            "  {}: {} tasks, {:.1} ms (the full path, whichever is asked: a search reads every task)",
            row.query,
            row.matches,
            ms(row.indexed.min(row.full)),
        );
    }
    for row in r.rows.iter().filter(|row| row.indexable) {
        let _ = writeln!(
            s,
            "  {}: {} tasks, {:.2} ms through the indexes vs {:.1} ms the full path ({:.0}x)",
            row.query,
            row.matches,
            ms(row.indexed),
            ms(row.full),
            row.full.as_secs_f64() / row.indexed.as_secs_f64().max(1e-9)
        );
    }
    let _ = writeln!(
        s,
        "  full listing streamed in chunks of {CHUNK}: {} tasks ({:.0} MB of JSON) in {:.2} s, {:.0} tasks/s",
        r.stream_tasks,
        r.stream_bytes as f64 / 1e6,
        r.stream.as_secs_f64(),
        r.stream_tasks as f64 / r.stream.as_secs_f64().max(1e-9)
    );
    if let (Some(task), Some(entry)) = (r.rss_per_task, r.index_entry_bytes) {
        let _ = writeln!(
            s,
            "  memory: {task:.0} bytes resident per retained task, indexes included; \
             an index entry alone {entry:.1} bytes (4 entries a task: newest-first, state, name, worker, \
             plus 24 bytes of keys: ~{:.0} bytes a task)",
            entry * 4.0 + 24.0
        );
    }
    s
}
