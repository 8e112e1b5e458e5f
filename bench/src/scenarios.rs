//! The scenarios, each in a fresh vhost: drain (a preloaded backlog, no-op
//! consumer vs celeriac, without and with a history store), live (publish
//! flat out, count what was lost), memory (RSS per retained task), and
//! Flower side by side.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lapin::{Connection, ConnectionProperties};

use crate::loadgen::{self, Plan, Published, EVENTS_PER_TASK};
use crate::mgmt::{Mgmt, VHOST_PREFIX};
use crate::monitor::{Counter, HistoryGauges, Kind, Monitor};
use crate::noop::{NoopReport, REPORT_PREFIX};
use crate::pg;
use crate::procs::Managed;
use crate::report::{fmt_int, fmt_signed};

/// The durable queue the drain scenario preloads and celeriac then consumes
/// with `--events-queue`.
pub const DRAIN_QUEUE: &str = "celeriac-bench-drain";
/// TTL of the drain queue: far longer than any preload plus drain takes.
const DRAIN_TTL_SECS: u64 = 3_600;
const PREFETCH: u16 = 2_000;
/// The no-op consumer acks with `multiple` every this many deliveries.
const NOOP_ACK_EVERY: u64 = 500;
/// Requests per monitor when timing `GET /api/tasks?limit=100`; the median
/// is reported.
const API_SAMPLES: usize = 20;
/// A history writer whose written count has not moved for this long has
/// stalled.
const HISTORY_QUIET: Duration = Duration::from_secs(60);

pub struct Settings {
    /// AMQP URL without a vhost, e.g. `amqp://guest:guest@127.0.0.1:5672`.
    pub amqp: String,
    pub mgmt: Arc<Mgmt>,
    pub celeriac: PathBuf,
    /// A Python with Celery 5.7 and Flower 2.2, when Flower is to be run.
    pub python: Option<String>,
    pub logs: PathBuf,
    pub drain_events: u64,
    /// Rounds of (no-op drain, celeriac drain); medians are reported.
    pub drain_rounds: u32,
    pub duration: Duration,
    pub memory_tasks: u64,
    pub flower_tasks: u64,
    pub channels: usize,
    pub confirms: bool,
    /// The PostgreSQL server for the drain with history in PostgreSQL.
    pub postgres: String,
    /// The Redis server of the redis scenario, without a database.
    pub redis: String,
    /// Tasks written into the store of the history scenario.
    pub history_tasks: u64,
}

impl Settings {
    pub fn url(&self, vhost: &str) -> String {
        format!("{}/{}", self.amqp.trim_end_matches('/'), vhost)
    }

    pub fn log(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
    }

    fn plan(&self, mut plan: Plan) -> Plan {
        plan.channels = self.channels;
        plan.confirms = self.confirms;
        plan
    }

    pub async fn vhost(&self, scenario: &str) -> Result<String> {
        let name = format!("{VHOST_PREFIX}{}-{scenario}", std::process::id());
        // A leftover of an earlier failure in this same process.
        self.mgmt.delete_vhost(&name).await?;
        self.mgmt.create_vhost(&name).await?;
        Ok(name)
    }

    pub async fn drop_vhost(&self, name: &str) {
        if let Err(e) = self.mgmt.delete_vhost(name).await {
            eprintln!("warning: could not delete vhost {name}: {e:#}");
        }
    }
}

pub fn step(text: &str) {
    println!("==> {text}");
}

pub fn detail(text: &str) {
    println!("    {text}");
}

/// One consumer draining a backlog.
#[derive(Clone, Copy, Debug)]
pub struct Drained {
    pub events: u64,
    pub messages: u64,
    pub wall: Duration,
    pub cpu: Duration,
}

impl Drained {
    pub fn events_per_sec(&self) -> f64 {
        loadgen::per_sec(self.events, self.wall)
    }

    pub fn cpu_us_per_event(&self) -> f64 {
        us_per(self.cpu, self.events)
    }
}

pub fn us_per(cpu: Duration, events: u64) -> f64 {
    if events == 0 {
        f64::NAN
    } else {
        cpu.as_secs_f64() * 1e6 / events as f64
    }
}

/// Where the celeriac of a drain with history keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A drain by celeriac with a history store: the drain itself (until every
/// event is applied), then when the store had every task.
#[derive(Clone, Copy, Debug)]
pub struct HistoryDrained {
    pub drained: Drained,
    /// Tasks preloaded (what the store must end up holding).
    pub tasks: u64,
    /// Spawn → the backlog empty with at least `tasks` records written;
    /// `None` when the writer never got there.
    pub caught_up: Option<Duration>,
    /// celeriac's CPU time at that moment.
    pub cpu_caught_up: Duration,
    /// Task records written by then (a task written before its last event
    /// is written again).
    pub written: u64,
    /// CPU the local PostgreSQL server's processes used from spawn until
    /// caught up (PostgreSQL only: celeriac's own CPU leaves it out).
    pub server_cpu: Option<Duration>,
}

impl HistoryDrained {
    /// The sustained write rate: tasks over the whole time from spawn
    /// until the store held them all.
    pub fn write_rate(&self) -> f64 {
        self.caught_up
            .map_or(f64::NAN, |d| loadgen::per_sec(self.tasks, d))
    }

    /// CPU per event until history caught up (the writer's work included).
    pub fn cpu_us_per_event_caught_up(&self) -> f64 {
        match self.caught_up {
            Some(_) => us_per(self.cpu_caught_up, self.drained.events),
            None => f64::NAN,
        }
    }

    /// The same with the database server's CPU added (PostgreSQL).
    pub fn cpu_us_per_event_with_server(&self) -> f64 {
        match (self.caught_up, self.server_cpu) {
            (Some(_), Some(server)) => us_per(self.cpu_caught_up + server, self.drained.events),
            _ => f64::NAN,
        }
    }
}

#[derive(Debug, Default)]
pub struct DrainResult {
    /// The last backlog (all rounds publish the same number of tasks).
    pub preload: Option<Published>,
    pub noop_runs: Vec<Drained>,
    pub celeriac_runs: Vec<Drained>,
    /// celeriac stopped short of the backlog (events it applied, of how many).
    pub celeriac_short: Option<(u64, u64)>,
    /// celeriac with history in SQLite, then in PostgreSQL, per round.
    pub sqlite_runs: Vec<HistoryDrained>,
    pub postgres_runs: Vec<HistoryDrained>,
}

impl DrainResult {
    pub fn noop(&self) -> Option<Drained> {
        median(&self.noop_runs)
    }

    pub fn celeriac(&self) -> Option<Drained> {
        median(&self.celeriac_runs)
    }

    pub fn with_history(&self, backend: Backend) -> Option<HistoryDrained> {
        median_history(match backend {
            Backend::Sqlite => &self.sqlite_runs,
            Backend::Postgres => &self.postgres_runs,
        })
    }
}

/// The median of each figure on its own (of two runs, the first). Rounds
/// differ by a few heartbeats, so times are scaled to the first round's
/// event count first.
fn median(runs: &[Drained]) -> Option<Drained> {
    let first = runs.first()?;
    let scaled = |d: Duration, run: &Drained| {
        if run.events == 0 {
            d
        } else {
            d.mul_f64(first.events as f64 / run.events as f64)
        }
    };
    let pick = |mut v: Vec<Duration>| {
        v.sort();
        v[(v.len() - 1) / 2]
    };
    Some(Drained {
        events: first.events,
        messages: first.messages,
        wall: pick(runs.iter().map(|r| scaled(r.wall, r)).collect()),
        cpu: pick(runs.iter().map(|r| scaled(r.cpu, r)).collect()),
    })
}

/// The drain figures as [`median`] takes them; the catch-up time and CPU
/// are the medians of the runs that caught up.
fn median_history(runs: &[HistoryDrained]) -> Option<HistoryDrained> {
    let first = runs.first()?;
    let drained: Vec<Drained> = runs.iter().map(|r| r.drained).collect();
    let caught: Vec<&HistoryDrained> = runs.iter().filter(|r| r.caught_up.is_some()).collect();
    let pick = |v: Vec<Duration>| (!v.is_empty()).then(|| crate::monitor::median(v));
    Some(HistoryDrained {
        drained: median(&drained)?,
        tasks: first.tasks,
        caught_up: pick(caught.iter().filter_map(|r| r.caught_up).collect()),
        cpu_caught_up: pick(caught.iter().map(|r| r.cpu_caught_up).collect()).unwrap_or_default(),
        written: first.written,
        server_cpu: pick(caught.iter().filter_map(|r| r.server_cpu).collect()),
    })
}

#[derive(Clone, Copy, Debug)]
pub struct LiveResult {
    pub published: Published,
    pub processed: u64,
    pub cpu: Duration,
    /// From the start of publishing to the last event processed.
    pub wall: Duration,
}

impl LiveResult {
    pub fn lost(&self) -> i64 {
        self.published.events as i64 - self.processed as i64
    }

    pub fn cpu_us_per_event(&self) -> f64 {
        us_per(self.cpu, self.processed)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct MemoryResult {
    pub tasks_published: u64,
    pub tasks_retained: u64,
    pub rss_start: u64,
    pub rss_end: u64,
    pub api_median: Option<Duration>,
    pub api_bytes: usize,
    pub ingest_wall: Duration,
    pub events_processed: u64,
}

impl MemoryResult {
    pub fn bytes_per_task(&self) -> f64 {
        if self.tasks_retained == 0 {
            f64::NAN
        } else {
            self.rss_end.saturating_sub(self.rss_start) as f64 / self.tasks_retained as f64
        }
    }
}

/// Everything measured in one run; a scenario that failed leaves `None` and a
/// note.
#[derive(Debug, Default)]
pub struct Results {
    pub drain: Option<DrainResult>,
    pub live: Option<LiveResult>,
    pub flower_live: Option<LiveResult>,
    pub memory: Option<MemoryResult>,
    pub celeriac_retained: Option<MemoryResult>,
    pub flower_retained: Option<MemoryResult>,
    pub dashboard: Option<crate::dashboard::DashboardResult>,
    pub history: Option<crate::history::HistoryResult>,
    pub redis: Option<crate::redis_ingest::RedisResult>,
    pub notes: Vec<String>,
}

impl Results {
    pub fn note(&mut self, text: String) {
        println!("    note: {text}");
        self.notes.push(text);
    }
}

async fn preload(settings: &Settings, url: &str, tasks: u64) -> Result<Published> {
    let published = loadgen::run(url, &settings.plan(Plan::tasks(tasks))).await?;
    detail(&format!(
        "published {} events in {} messages in {:.1} s ({} events/s{})",
        fmt_int(published.events),
        fmt_int(published.messages),
        published.elapsed.as_secs_f64(),
        fmt_int(published.events_per_sec() as u64),
        refused_note(&published),
    ));
    Ok(published)
}

fn refused_note(p: &Published) -> String {
    if p.refused > 0 {
        format!(", {} messages refused", fmt_int(p.refused))
    } else {
        String::new()
    }
}

/// Scenario 2: a preloaded backlog drained by the no-op consumer, then
/// (refilled each time) by celeriac without history, with history in
/// SQLite, and with history in PostgreSQL.
pub async fn drain(settings: &Settings, results: &mut Results) -> Result<()> {
    let vhost = settings.vhost("drain").await?;
    let mut result = DrainResult::default();
    let outcome = drain_in(settings, &vhost, &mut result, results).await;
    results.drain = Some(result);
    settings.drop_vhost(&vhost).await;
    outcome
}

async fn drain_in(
    settings: &Settings,
    vhost: &str,
    result: &mut DrainResult,
    results: &mut Results,
) -> Result<()> {
    let url = settings.url(vhost);
    let tasks = settings.drain_events.div_ceil(EVENTS_PER_TASK);
    // The queue must hold the whole backlog; celeriac is given the same
    // bounds so that its declare matches ours.
    let max_length = (tasks * 2 + 100_000).max(1_000_000);
    let connection = Connection::connect(&url, ConnectionProperties::default())
        .await
        .with_context(|| format!("connecting to {}", loadgen::redact(&url)))?;
    let channel = connection
        .create_channel()
        .await
        .context("opening a channel")?;
    loadgen::declare_bound_queue(
        &channel,
        DRAIN_QUEUE,
        loadgen::events_queue_args(DRAIN_QUEUE, DRAIN_TTL_SECS, max_length),
    )
    .await?;

    let postgres = pg::Server::new(&settings.postgres);
    let postgres = match postgres.check() {
        Ok(version) => {
            detail(&format!("PostgreSQL {version} at {}", postgres.describe()));
            if let Err(e) = postgres.drop_stale() {
                eprintln!("warning: could not drop databases of earlier runs: {e:#}");
            }
            Some(postgres)
        }
        Err(e) => {
            results.note(format!("drain with history in PostgreSQL skipped: {e:#}"));
            None
        }
    };

    // Rounds alternate the consumers so that a change in the box's load
    // during the run weighs on all alike.
    let rounds = settings.drain_rounds.max(1);
    for round in 1..=rounds {
        let of = if rounds > 1 {
            format!(" (round {round} of {rounds})")
        } else {
            String::new()
        };
        step(&format!(
            "preloading {} events ({} tasks) into {DRAIN_QUEUE}{of} ...",
            fmt_int(tasks * EVENTS_PER_TASK),
            fmt_int(tasks)
        ));
        let backlog = preload(settings, &url, tasks).await?;
        check_depth(&channel, backlog.messages).await?;
        result.preload = Some(backlog);

        step(&format!(
            "draining with the no-op lapin consumer (prefetch {PREFETCH}, ack multiple every {NOOP_ACK_EVERY}){of} ..."
        ));
        let noop = noop_drain(settings, &url, backlog, round).await?;
        report_drained(&noop);
        result.noop_runs.push(noop);

        step(&format!(
            "refilling {} events{of} ...",
            fmt_int(tasks * EVENTS_PER_TASK)
        ));
        let backlog = preload(settings, &url, tasks).await?;
        check_depth(&channel, backlog.messages).await?;

        step(&format!("draining with celeriac --events-queue{of} ..."));
        let log = format!("drain-celeriac-{round}");
        let (drained, _) =
            celeriac_drain(settings, &url, backlog, max_length, &log, None, results).await?;
        report_drained(&drained);
        result.celeriac_runs.push(drained);
        if drained.events < backlog.events {
            result.celeriac_short = Some((drained.events, backlog.events));
            break;
        }

        for backend in [Backend::Sqlite, Backend::Postgres] {
            if backend == Backend::Postgres && postgres.is_none() {
                continue;
            }
            step(&format!(
                "refilling {} events{of} ...",
                fmt_int(tasks * EVENTS_PER_TASK)
            ));
            let backlog = preload(settings, &url, tasks).await?;
            check_depth(&channel, backlog.messages).await?;
            step(&format!(
                "draining with celeriac --events-queue, history in {}{of} ...",
                backend.name()
            ));
            let run = match backend {
                Backend::Sqlite => {
                    let path = settings.logs.join(format!("drain-history-{round}.db"));
                    remove_sqlite(&path);
                    let db = format!("sqlite:{}", path.display());
                    let run = history_drain(
                        settings, &url, backlog, max_length, round, backend, &db, results,
                    )
                    .await;
                    let bytes = sqlite_bytes(&path);
                    remove_sqlite(&path);
                    let run = run?;
                    detail(&format!(
                        "store: {:.1} MiB, {:.0} bytes per task",
                        mib(bytes),
                        bytes as f64 / backlog.tasks.max(1) as f64
                    ));
                    run
                }
                Backend::Postgres => {
                    let made = postgres
                        .as_ref()
                        .map(|p| p.create(&format!("drain_{round}")))
                        .transpose();
                    let database = match made {
                        Ok(Some(d)) => d,
                        Ok(None) => continue,
                        Err(e) => {
                            results.note(format!(
                                "drain with history in PostgreSQL, round {round}, skipped: {e:#}"
                            ));
                            continue;
                        }
                    };
                    // The database is dropped when `database` goes, after
                    // celeriac has stopped.
                    history_drain(
                        settings,
                        &url,
                        backlog,
                        max_length,
                        round,
                        backend,
                        &database.url,
                        results,
                    )
                    .await?
                }
            };
            match backend {
                Backend::Sqlite => result.sqlite_runs.push(run),
                Backend::Postgres => result.postgres_runs.push(run),
            }
        }
    }
    let _ = connection.close(200, "drained".into()).await;
    Ok(())
}

fn report_drained(d: &Drained) {
    detail(&format!(
        "{} events/s, {:.2} µs CPU per event ({:.1} s, {:.2} s CPU)",
        fmt_int(d.events_per_sec() as u64),
        d.cpu_us_per_event(),
        d.wall.as_secs_f64(),
        d.cpu.as_secs_f64()
    ));
}

/// A drain by celeriac with its history in `db` (a `--db` value): the drain
/// figures, then how long the store took to hold every task.
#[allow(clippy::too_many_arguments)] // one call site per backend, all of them needed
async fn history_drain(
    settings: &Settings,
    url: &str,
    backlog: Published,
    max_length: u64,
    round: u32,
    backend: Backend,
    db: &str,
    results: &mut Results,
) -> Result<HistoryDrained> {
    let log = format!("drain-history-{}-{round}", backend.label());
    let (drained, caught) =
        celeriac_drain(settings, url, backlog, max_length, &log, Some(db), results).await?;
    report_drained(&drained);
    let mut run = HistoryDrained {
        drained,
        tasks: backlog.tasks,
        caught_up: None,
        cpu_caught_up: Duration::ZERO,
        written: 0,
        server_cpu: None,
    };
    if let Some(c) = caught {
        run.caught_up = Some(c.after);
        run.cpu_caught_up = c.cpu;
        run.written = c.gauges.written;
        run.server_cpu = c.server_cpu;
        detail(&format!(
            "history caught up {:.1} s after spawn ({:.1} s after the last event): {} tasks/s, \
             {} records written, {:.2} µs CPU per event in all",
            c.after.as_secs_f64(),
            c.after.saturating_sub(drained.wall).as_secs_f64(),
            fmt_int(run.write_rate() as u64),
            fmt_int(c.gauges.written),
            run.cpu_us_per_event_caught_up()
        ));
        if let Some(server) = c.server_cpu {
            detail(&format!(
                "PostgreSQL server processes: {:.2} s CPU meanwhile, {:.2} µs per event",
                server.as_secs_f64(),
                us_per(server, drained.events)
            ));
        }
    }
    Ok(run)
}

/// When a history store held every task of a drain.
struct CaughtUp {
    /// Since celeriac was spawned.
    after: Duration,
    cpu: Duration,
    gauges: HistoryGauges,
    /// The local PostgreSQL server's CPU since spawn (PostgreSQL only).
    server_cpu: Option<Duration>,
}

/// celeriac draining `backlog` with `--db none` (`db` None) or a store;
/// with a store, once every event is applied, waits for the history
/// writer to catch up.
async fn celeriac_drain(
    settings: &Settings,
    url: &str,
    backlog: Published,
    max_length: u64,
    log: &str,
    db: Option<&str>,
    results: &mut Results,
) -> Result<(Drained, Option<CaughtUp>)> {
    let mut args = vec![
        "--events-queue".to_owned(),
        DRAIN_QUEUE.to_owned(),
        "--events-ttl".to_owned(),
        DRAIN_TTL_SECS.to_string(),
        "--events-max-length".to_owned(),
        max_length.to_string(),
        "--max-tasks".to_owned(),
        "2000000".to_owned(),
        "--enable-events".to_owned(),
        "false".to_owned(),
        "--prefetch".to_owned(),
        PREFETCH.to_string(),
    ];
    if let Some(db) = db {
        args.extend(["--db".to_owned(), db.to_owned()]);
    }
    let server_before = db
        .filter(|d| d.starts_with("postgres"))
        .map(|_| pg::server_cpu());
    let mut celeriac =
        Monitor::start_celeriac(&settings.celeriac, url, &args, &settings.log(log)).await?;
    let spawned = celeriac.process.started();
    let settled = celeriac
        .wait_settled(
            Counter::Events,
            Some(backlog.events),
            Duration::from_millis(100),
            Duration::from_secs(15),
            Duration::from_secs(1_800),
        )
        .await?;
    let caught = match db {
        Some(_) if settled.reached => wait_caught_up(&mut celeriac, backlog.tasks, results)
            .await?
            .map(|(at, cpu, gauges)| CaughtUp {
                after: at - spawned,
                cpu,
                gauges,
                server_cpu: server_before.map(|b| pg::server_cpu().saturating_sub(b)),
            }),
        _ => None,
    };
    celeriac.process.stop(Duration::from_secs(5));
    if !settled.reached {
        results.note(format!(
            "celeriac applied {} of {} events, then stalled; see {}",
            fmt_int(settled.value),
            fmt_int(backlog.events),
            celeriac.process.log().display()
        ));
    }
    let drained = Drained {
        events: settled.value,
        messages: backlog.messages,
        wall: settled.at - spawned,
        cpu: settled.cpu,
    };
    Ok((drained, caught))
}

/// Polls celeriac's /metrics until the history backlog is empty and at
/// least `tasks` records were written: when, the CPU time then, and the
/// gauges. `None` (with a note) when writing stalls.
async fn wait_caught_up(
    celeriac: &mut Monitor,
    tasks: u64,
    results: &mut Results,
) -> Result<Option<(Instant, Duration, HistoryGauges)>> {
    let start = Instant::now();
    let mut last = celeriac.history().await?;
    let mut moved = Instant::now();
    loop {
        let gauges = celeriac.history().await?;
        if gauges.backlog == 0 && gauges.written >= tasks {
            let (at, cpu) = (Instant::now(), celeriac.cpu_time()?);
            if gauges.write_errors > 0 || gauges.dropped > 0 {
                results.note(format!(
                    "history: {} write errors, {} changes dropped; see {}",
                    fmt_int(gauges.write_errors),
                    fmt_int(gauges.dropped),
                    celeriac.process.log().display()
                ));
            }
            return Ok(Some((at, cpu, gauges)));
        }
        if gauges.written != last.written {
            moved = Instant::now();
        }
        last = gauges;
        if moved.elapsed() >= HISTORY_QUIET || start.elapsed() >= Duration::from_secs(1_800) {
            results.note(format!(
                "history never caught up: {} of {} tasks written, backlog {}, {} write errors, \
                 {} dropped; see {}",
                fmt_int(gauges.written),
                fmt_int(tasks),
                fmt_int(gauges.backlog),
                fmt_int(gauges.write_errors),
                fmt_int(gauges.dropped),
                celeriac.process.log().display()
            ));
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        celeriac.process.ensure_running()?;
    }
}

/// A SQLite store's size on disk: the database and its write-ahead log.
pub fn sqlite_bytes(path: &Path) -> u64 {
    let size = |p: PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
    size(path.to_owned()) + size(sidecar(path, "-wal"))
}

/// Deletes a SQLite store and its `-wal` and `-shm` files.
pub fn remove_sqlite(path: &Path) {
    for p in [
        path.to_owned(),
        sidecar(path, "-wal"),
        sidecar(path, "-shm"),
    ] {
        let _ = std::fs::remove_file(p);
    }
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Waits until the queue holds exactly what was published. Routing into the
/// queue trails the publisher's last round trip by a moment, so a short
/// shortfall is waited out; one that lasts means messages were lost.
async fn check_depth(channel: &lapin::Channel, expected: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let depth = u64::from(loadgen::queue_depth(channel, DRAIN_QUEUE).await?);
        if depth == expected {
            return Ok(());
        }
        if depth > expected || Instant::now() >= deadline {
            bail!(
                "{DRAIN_QUEUE} holds {} messages after publishing {}",
                fmt_int(depth),
                fmt_int(expected)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn noop_drain(
    settings: &Settings,
    url: &str,
    backlog: Published,
    round: u32,
) -> Result<Drained> {
    let exe = std::env::current_exe().context("locating celeriac-bench itself")?;
    let mut command = Command::new(exe);
    command
        .arg("noop-consumer")
        .args(["--broker", url, "--queue", DRAIN_QUEUE])
        .arg("--messages")
        .arg(backlog.messages.to_string())
        .arg("--prefetch")
        .arg(PREFETCH.to_string())
        .arg("--ack-every")
        .arg(NOOP_ACK_EVERY.to_string());
    let mut child = Managed::spawn(
        "no-op consumer",
        command,
        &settings.log(&format!("drain-noop-{round}")),
    )?;
    let report: NoopReport = child
        .wait_for_line(Duration::from_secs(1_800), |line| {
            line.strip_prefix(REPORT_PREFIX)
                .and_then(|json| serde_json::from_str(json).ok())
        })
        .await?;
    // Same clock as celeriac's: from spawning the process to the last message.
    let wall = child.started().elapsed();
    child.stop(Duration::from_secs(5));
    if report.messages != backlog.messages {
        bail!(
            "the no-op consumer got {} of {} messages",
            fmt_int(report.messages),
            fmt_int(backlog.messages)
        );
    }
    Ok(Drained {
        events: backlog.events,
        messages: report.messages,
        wall,
        cpu: Duration::from_secs_f64(report.cpu_s),
    })
}

/// Scenario 3 (and 5's Flower half): start the monitor, publish for the
/// configured duration, wait until it stops counting, compare.
pub async fn live(settings: &Settings, kind: Kind, rate: Option<f64>) -> Result<LiveResult> {
    let label = match kind {
        Kind::Celeriac => "live",
        Kind::Flower => "flower-live",
    };
    let vhost = settings.vhost(label).await?;
    let outcome = live_in(settings, &vhost, kind, rate, label).await;
    settings.drop_vhost(&vhost).await;
    outcome
}

/// celeriac on `vhost` with `args`, once its events queue is bound.
pub async fn start_monitor(
    settings: &Settings,
    vhost: &str,
    args: &[String],
    log: &str,
) -> Result<Monitor> {
    start(settings, vhost, Kind::Celeriac, args, log).await
}

async fn start(
    settings: &Settings,
    vhost: &str,
    kind: Kind,
    args: &[String],
    log: &str,
) -> Result<Monitor> {
    let url = settings.url(vhost);
    let monitor = match kind {
        Kind::Celeriac => {
            let mut all = vec!["--enable-events".to_owned(), "false".to_owned()];
            all.extend_from_slice(args);
            Monitor::start_celeriac(&settings.celeriac, &url, &all, &settings.log(log)).await?
        }
        Kind::Flower => {
            let python = settings.python.as_deref().context("no Python for Flower")?;
            Monitor::start_flower(python, &url, args, &settings.log(log)).await?
        }
    };
    // Until its queue is bound, what we publish is unroutable, and the
    // monitor would be blamed for losing it.
    let queue = settings
        .mgmt
        .wait_for_binding(vhost, Duration::from_secs(60))
        .await
        .with_context(|| format!("{} never bound a queue to celeryev", kind.name()))?;
    detail(&format!(
        "{} pid {} on {}, consuming {queue}",
        kind.name(),
        monitor.process.pid(),
        monitor.base
    ));
    Ok(monitor)
}

async fn live_in(
    settings: &Settings,
    vhost: &str,
    kind: Kind,
    rate: Option<f64>,
    label: &str,
) -> Result<LiveResult> {
    let mut monitor = start(settings, vhost, kind, &[], label).await?;
    let offered = rate.map_or("as fast as the box allows".to_owned(), |r| {
        format!("at {} events/s", fmt_int(r as u64))
    });
    step(&format!(
        "publishing to {} for {} s {offered} ...",
        kind.name(),
        settings.duration.as_secs()
    ));
    let before = monitor.read(Counter::Events).await?;
    let cpu_before = monitor.cpu_time()?;
    let start = Instant::now();
    let mut plan = settings.plan(Plan::timed(settings.duration));
    plan.rate = rate;
    let published = loadgen::run(&settings.url(vhost), &plan).await?;
    detail(&format!(
        "published {} events in {:.1} s ({} events/s{})",
        fmt_int(published.events),
        published.elapsed.as_secs_f64(),
        fmt_int(published.events_per_sec() as u64),
        refused_note(&published),
    ));
    step(&format!("waiting until {} stops counting ...", kind.name()));
    // Flower's /metrics is Python work on its only core: poll it gently.
    let poll = match kind {
        Kind::Celeriac => Duration::from_millis(250),
        Kind::Flower => Duration::from_secs(1),
    };
    let settled = monitor
        .wait_settled(
            Counter::Events,
            Some(before + published.events),
            poll,
            Duration::from_secs(5),
            Duration::from_secs(1_800),
        )
        .await?;
    let result = LiveResult {
        published,
        processed: settled.value - before,
        cpu: settled.cpu.saturating_sub(cpu_before),
        wall: settled.at.saturating_duration_since(start),
    };
    detail(&format!(
        "{} processed {} events, lost {}, {:.2} µs CPU per event",
        kind.name(),
        fmt_int(result.processed),
        fmt_signed(result.lost()),
        result.cpu_us_per_event()
    ));
    Ok(result)
}

/// Scenario 4 (and 5's retained-task half): RSS growth per retained task,
/// then the `/api/tasks?limit=100` latency at that size.
pub async fn memory(
    settings: &Settings,
    kind: Kind,
    tasks: u64,
    rate: Option<f64>,
    label: &str,
) -> Result<MemoryResult> {
    let vhost = settings.vhost(label).await?;
    let outcome = memory_in(settings, &vhost, kind, tasks, rate, label).await;
    settings.drop_vhost(&vhost).await;
    outcome
}

async fn memory_in(
    settings: &Settings,
    vhost: &str,
    kind: Kind,
    tasks: u64,
    rate: Option<f64>,
    label: &str,
) -> Result<MemoryResult> {
    let args = match kind {
        // A long TTL and a queue bound above the whole load, so what is
        // measured is memory, never broker-side drops.
        Kind::Celeriac => vec![
            "--max-tasks".to_owned(),
            tasks.to_string(),
            "--events-max-length".to_owned(),
            (tasks * 2 + 100_000).to_string(),
            "--events-ttl".to_owned(),
            DRAIN_TTL_SECS.to_string(),
        ],
        Kind::Flower => vec![format!("--max_tasks={tasks}")],
    };
    let mut monitor = start(settings, vhost, kind, &args, label).await?;
    // Let start-up allocations settle before the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_start = monitor.rss_bytes()?;
    let offered = rate.map_or(String::new(), |r| {
        format!(" at {} events/s", fmt_int(r as u64))
    });
    step(&format!(
        "publishing {} tasks to {}{offered} ...",
        fmt_int(tasks),
        kind.name()
    ));
    let start = Instant::now();
    let mut plan = settings.plan(Plan::tasks(tasks));
    plan.rate = rate;
    let published = loadgen::run(&settings.url(vhost), &plan).await?;
    detail(&format!(
        "published {} events in {:.1} s ({} events/s{})",
        fmt_int(published.events),
        published.elapsed.as_secs_f64(),
        fmt_int(published.events_per_sec() as u64),
        refused_note(&published),
    ));
    step(&format!(
        "waiting until {} holds the tasks ...",
        kind.name()
    ));
    let poll = match kind {
        Kind::Celeriac => Duration::from_millis(250),
        Kind::Flower => Duration::from_secs(1),
    };
    let settled = monitor
        .wait_settled(
            Counter::Tasks,
            Some(published.tasks),
            poll,
            Duration::from_secs(10),
            Duration::from_secs(3_600),
        )
        .await?;
    let ingest_wall = settled.at.saturating_duration_since(start);
    let events_processed = monitor.read(Counter::Events).await?;
    // Allocator caches and Python's GC settle in a moment.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_end = monitor.rss_bytes()?;
    let mut result = MemoryResult {
        tasks_published: published.tasks,
        tasks_retained: settled.value,
        rss_start,
        rss_end,
        api_median: None,
        api_bytes: 0,
        ingest_wall,
        events_processed,
    };
    detail(&format!(
        "{} holds {} tasks; RSS {:.1} → {:.1} MiB, {:.0} bytes per task",
        kind.name(),
        fmt_int(result.tasks_retained),
        mib(rss_start),
        mib(rss_end),
        result.bytes_per_task()
    ));
    step(&format!(
        "timing GET /api/tasks?limit=100 on {} ({API_SAMPLES} requests) ...",
        kind.name()
    ));
    match monitor.tasks_api_median(API_SAMPLES).await {
        Ok((median, bytes)) => {
            result.api_median = Some(median);
            result.api_bytes = bytes;
            detail(&format!(
                "median {:.1} ms ({} bytes)",
                median.as_secs_f64() * 1e3,
                fmt_int(bytes as u64)
            ));
        }
        Err(e) => println!("    note: {} /api/tasks failed: {e:#}", kind.name()),
    }
    Ok(result)
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Whether `python -m flower --version` works.
pub fn flower_available(python: &str) -> Result<String> {
    let output = Command::new(python)
        .args(["-m", "flower", "--version"])
        .output()
        .with_context(|| format!("running {python} -m flower --version"))?;
    if !output.status.success() {
        bail!(
            "{python} -m flower --version failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    // `-m flower --version` prints Celery's version; ask Flower for its own.
    let version = Command::new(python)
        .args(["-c", "import flower; print(flower.__version__)"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "(version unknown)".to_owned());
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(events: u64, wall_ms: u64, cpu_ms: u64) -> Drained {
        Drained {
            events,
            messages: events / 2,
            wall: Duration::from_millis(wall_ms),
            cpu: Duration::from_millis(cpu_ms),
        }
    }

    #[test]
    fn median_takes_each_figure_on_its_own() {
        let m =
            median(&[run(1000, 30, 9), run(1000, 10, 12), run(1000, 20, 10)]).expect("three runs");
        assert_eq!(m.wall, Duration::from_millis(20));
        assert_eq!(m.cpu, Duration::from_millis(10));
        assert!(median(&[]).is_none());
    }

    #[test]
    fn median_scales_to_the_first_round() {
        let m =
            median(&[run(1000, 10, 10), run(2000, 40, 40), run(2000, 40, 40)]).expect("three runs");
        assert_eq!(m.events, 1000);
        assert_eq!(m.wall, Duration::from_millis(20));
    }
}
