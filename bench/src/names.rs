//! The names scenario: a flood of distinct task names (a bug or an attack
//! that names tasks dynamically) against a run of the same load with 50
//! names. Each run is a fresh celeriac in a fresh vhost, fed `--names`
//! tasks (4 events each, the load generator's real shapes) as fast as the
//! box allows, while one dashboard client reads `/ws`; then
//! `/api/task/types` and `/metrics` are timed on what it holds.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::loadgen::{self, Plan};
use crate::monitor::{median, Counter};
use crate::report::fmt_int;
use crate::scenarios::{detail, step, Settings};

/// Distinct names of the flood, and tasks of each run (one name per task).
pub const DEFAULT_NAMES: u64 = 300_000;
/// Names of the run the flood is compared with.
const BASELINE_NAMES: u64 = 50;
/// How long the dashboard client reads, from the first publish.
const WS_WINDOW: Duration = Duration::from_secs(10);

/// What one run measured.
#[derive(Clone, Debug)]
pub struct NamesRun {
    pub names: u64,
    pub tasks: u64,
    pub events: u64,
    /// Events applied per second, from the first publish to the last event
    /// applied.
    pub ingest: f64,
    /// CPU per event over that span.
    pub cpu_us: f64,
    /// Peak resident memory (VmHWM) at the end.
    pub peak_rss: u64,
    /// Bytes the dashboard client received in its window, over the seconds
    /// it read (cut to the run when the run was shorter).
    pub ws_bytes: u64,
    pub ws_secs: f64,
    /// The client's largest message while the flow ran.
    pub ws_largest: u64,
    /// The snapshot a client connecting after the run is sent.
    pub snapshot_bytes: u64,
    /// `GET /api/task/types`: body size and median of 5.
    pub types_bytes: usize,
    pub types_time: Duration,
    /// `GET /metrics`: body size and median of 3.
    pub metrics_bytes: usize,
    pub metrics_time: Duration,
    /// `celeriac_interned_strings` and `celeriac_task_names_folded_total`
    /// (absent in builds without them).
    pub interned: Option<f64>,
    pub folded: Option<f64>,
}

impl NamesRun {
    pub fn ws_rate(&self) -> f64 {
        self.ws_bytes as f64 / self.ws_secs.max(1e-3)
    }
}

#[derive(Clone, Debug)]
pub struct NamesResult {
    pub baseline: NamesRun,
    pub flood: NamesRun,
}

/// Both runs, the baseline first.
pub async fn run(settings: &Settings, names: u64) -> Result<NamesResult> {
    let baseline = one(settings, BASELINE_NAMES, names).await?;
    let flood = one(settings, names, names).await?;
    Ok(NamesResult { baseline, flood })
}

async fn one(settings: &Settings, names: u64, tasks: u64) -> Result<NamesRun> {
    let label = format!("names-{names}");
    let vhost = settings.vhost(&label).await?;
    let outcome = one_in(settings, &vhost, names, tasks, &label).await;
    settings.drop_vhost(&vhost).await;
    outcome
}

async fn one_in(
    settings: &Settings,
    vhost: &str,
    names: u64,
    tasks: u64,
    label: &str,
) -> Result<NamesRun> {
    let mut monitor = crate::scenarios::start_monitor(settings, vhost, &[], label).await?;
    step(&format!(
        "publishing {} tasks with {} names, one dashboard client reading /ws ...",
        fmt_int(tasks),
        fmt_int(names)
    ));
    let before = monitor.read(Counter::Events).await?;
    let cpu_before = monitor.cpu_time()?;
    let client = watch(&monitor.base, WS_WINDOW)?;
    let start = Instant::now();
    let mut plan = Plan::tasks(tasks);
    plan.channels = settings.channels;
    plan.confirms = settings.confirms;
    plan.names = Some(names);
    let published = loadgen::run(&settings.url(vhost), &plan).await?;
    detail(&format!(
        "published {} events in {:.1} s ({} events/s)",
        fmt_int(published.events),
        published.elapsed.as_secs_f64(),
        fmt_int(published.events_per_sec() as u64)
    ));
    let settled = monitor
        .wait_settled(
            Counter::Events,
            Some(before + published.events),
            Duration::from_millis(250),
            Duration::from_secs(30),
            Duration::from_secs(3_600),
        )
        .await?;
    let wall = settled.at.saturating_duration_since(start);
    let events = settled.value - before;
    let ws = tokio::task::spawn_blocking(move || client.join())
        .await
        .context("joining the dashboard client")?
        .map_err(|_| anyhow::anyhow!("the dashboard client panicked"))??;
    let base = monitor.base.clone();
    let snapshot_bytes = tokio::task::spawn_blocking(move || first_message(&base))
        .await
        .context("joining the snapshot reader")??;
    let (types_times, types_body) = monitor.get_timed("/api/task/types", 5).await?;
    let (metrics_times, metrics_body) = monitor.get_timed("/metrics", 3).await?;
    let text = String::from_utf8_lossy(&metrics_body);
    let gauge = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    };
    let r = NamesRun {
        names,
        tasks,
        events,
        ingest: events as f64 / wall.as_secs_f64().max(1e-3),
        cpu_us: crate::scenarios::us_per(settled.cpu.saturating_sub(cpu_before), events),
        peak_rss: peak_rss(monitor.process.pid())?,
        ws_bytes: ws.bytes,
        ws_secs: ws.secs.min(wall.as_secs_f64()),
        ws_largest: ws.largest,
        snapshot_bytes,
        types_bytes: types_body.len(),
        types_time: median(types_times),
        metrics_bytes: metrics_body.len(),
        metrics_time: median(metrics_times),
        interned: gauge("celeriac_interned_strings"),
        folded: gauge("celeriac_task_names_folded_total"),
    };
    detail(&format!(
        "applied {} events at {} events/s, peak RSS {:.0} MiB, dashboard client {:.0} kB/s",
        fmt_int(r.events),
        fmt_int(r.ingest as u64),
        r.peak_rss as f64 / 1048576.0,
        r.ws_rate() / 1000.0
    ));
    Ok(r)
}

/// What the dashboard client read.
struct Ws {
    bytes: u64,
    secs: f64,
    largest: u64,
}

/// The size of the first `/ws` message: the snapshot a new client gets.
fn first_message(base: &str) -> Result<u64> {
    let addr = base.trim_start_matches("http://");
    let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .context("setting a read timeout")?;
    let (mut ws, _) = connect_ws(addr, stream)?;
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Text(t)) => {
                let _ = ws.close(None);
                return Ok(t.len() as u64);
            }
            Ok(_) => {}
            Err(e) => anyhow::bail!("reading /ws: {e}"),
        }
    }
}

/// A dashboard client on its own thread: reads `/ws` for `window`.
fn watch(base: &str, window: Duration) -> Result<std::thread::JoinHandle<Result<Ws>>> {
    let addr = base.trim_start_matches("http://").to_owned();
    let stream = TcpStream::connect(&addr).with_context(|| format!("connecting to {addr}"))?;
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .context("setting a read timeout")?;
    let (mut ws, _) = connect_ws(&addr, stream)?;
    Ok(std::thread::spawn(move || {
        let start = Instant::now();
        let mut r = Ws {
            bytes: 0,
            secs: 0.0,
            largest: 0,
        };
        while start.elapsed() < window {
            match ws.read() {
                Ok(tungstenite::Message::Text(t)) => {
                    let n = t.len() as u64;
                    r.bytes += n;
                    r.largest = r.largest.max(n);
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => anyhow::bail!("reading /ws: {e}"),
            }
        }
        r.secs = start.elapsed().as_secs_f64();
        let _ = ws.close(None);
        Ok(r)
    }))
}

/// A `/ws` client without tungstenite's 16 MB message limit: a build
/// without the bound sends tens of megabytes in one message, which is a
/// figure to report, not an error.
fn connect_ws(
    addr: &str,
    stream: TcpStream,
) -> Result<(
    tungstenite::WebSocket<TcpStream>,
    tungstenite::handshake::client::Response,
)> {
    let config = tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None);
    tungstenite::client::client_with_config(format!("ws://{addr}/ws"), stream, Some(config))
        .map_err(|e| anyhow::anyhow!("websocket handshake on /ws: {e}"))
}

/// VmHWM of a process: its peak resident memory so far.
fn peak_rss(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .context("no VmHWM in /proc/PID/status")
}

pub fn render(r: &NamesResult) -> String {
    let (b, f) = (&r.baseline, &r.flood);
    let mib = |n: u64| format!("{:.0} MiB", n as f64 / 1048576.0);
    let kb = |n: f64| format!("{:.0} kB", n / 1000.0);
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| fmt_int(v as u64));
    let rows: Vec<(&str, String, String)> = vec![
        ("events applied", fmt_int(b.events), fmt_int(f.events)),
        (
            "ingest (events/s, first publish to last applied)",
            fmt_int(b.ingest as u64),
            format!(
                "{} ({:.0}%)",
                fmt_int(f.ingest as u64),
                100.0 * f.ingest / b.ingest.max(1e-9)
            ),
        ),
        (
            "CPU per event",
            format!("{:.2} µs", b.cpu_us),
            format!("{:.2} µs", f.cpu_us),
        ),
        ("peak RSS (VmHWM)", mib(b.peak_rss), mib(f.peak_rss)),
        (
            "dashboard client, bytes/s over its window",
            format!("{}/s over {:.1} s", kb(b.ws_rate()), b.ws_secs),
            format!("{}/s over {:.1} s", kb(f.ws_rate()), f.ws_secs),
        ),
        (
            "dashboard client, largest message",
            kb(b.ws_largest as f64),
            kb(f.ws_largest as f64),
        ),
        (
            "snapshot to a client connecting after the run",
            kb(b.snapshot_bytes as f64),
            kb(f.snapshot_bytes as f64),
        ),
        (
            "GET /api/task/types (median of 5)",
            format!("{} in {}", kb(b.types_bytes as f64), ms(b.types_time)),
            format!("{} in {}", kb(f.types_bytes as f64), ms(f.types_time)),
        ),
        (
            "GET /metrics (median of 3)",
            format!("{} in {}", kb(b.metrics_bytes as f64), ms(b.metrics_time)),
            format!("{} in {}", kb(f.metrics_bytes as f64), ms(f.metrics_time)),
        ),
        ("interned strings", opt(b.interned), opt(f.interned)),
        ("task names folded", opt(b.folded), opt(f.folded)),
    ];
    let mut out = format!(
        "\nTask names ({} tasks each: {} names, then one name per task)\n",
        fmt_int(f.tasks),
        b.names
    );
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let w2 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let (left, right) = (
        format!("{} names", b.names),
        format!("{} names", fmt_int(f.names)),
    );
    out.push_str(&format!("{:<w$}  {left:<w2$}  {right}\n", ""));
    for (k, a, c) in rows {
        out.push_str(&format!("{k:<w$}  {a:<w2$}  {c}\n"));
    }
    out.push_str("goals: ingest within 20% of the 50-name run, RSS bounded, a dashboard client under 1 MB/s\n");
    out
}
