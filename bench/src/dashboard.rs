//! Scenario `dashboard`: the live dashboard's figures, measured in
//! Debian's Chromium driven by playwright-core (`bench/browser/dashboard.cjs`):
//!
//! - the app's transfer size as celeriac serves it (brotli and gzip), read
//!   here over HTTP, and what Chromium actually received;
//! - time to the first rendered worker row (idle, and with the bench's task
//!   count retained);
//! - with a firehose of synthetic events flowing (40,000 events/s offered by
//!   default): the event-to-screen delay of marker tasks on a tasks view
//!   filtered to them, and the longest main-thread task on the unfiltered
//!   tasks page;
//! - that the Queues page lists a real queue with its depth.
//!
//! Markers are tasks `bench.marker` whose args carry their publish time in
//! epoch milliseconds; the page stamps each marker row when it is first
//! painted, on the same machine clock.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::loadgen::{self, Plan, Published};
use crate::mgmt::VHOST_PREFIX;
use crate::monitor::{Counter, Monitor};
use crate::report::fmt_int;
use crate::scenarios::{detail, step, Settings};

/// Events per second offered while the browser measures (the figure the goals are set for).
pub const DEFAULT_RATE: f64 = 40_000.0;
/// Markers published per second during the firehose.
const MARKERS_PER_SEC: u64 = 10;
/// A queue the bench fills so the Queues page has a real one to list.
const PROBE_QUEUE: &str = "orders-bench-probe";
const PROBE_DEPTH: u64 = 37;
/// The firehose is published in chunks of this length, so it can stop
/// whenever the browser is done without abandoning a publisher mid-way.
const CHUNK: Duration = Duration::from_secs(5);
const CHROMIUM: &str = "/usr/bin/chromium";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/browser/dashboard.cjs");

/// Where the browser tools are.
pub struct Options {
    /// `node_modules` holding playwright-core.
    pub node_modules: PathBuf,
    /// Events per second offered during the firehose.
    pub rate: f64,
}

impl Options {
    /// `CELERIAC_BENCH_NODE_MODULES` (set by `cargo xtask bench`), else
    /// where xtask installs them.
    pub fn default_node_modules() -> PathBuf {
        std::env::var_os("CELERIAC_BENCH_NODE_MODULES")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let home = std::env::var_os("HOME").unwrap_or_default();
                Path::new(&home).join(".cache/celeriac/tools/node_modules")
            })
    }
}

/// One asset's size on the wire per encoding.
#[derive(Clone, Debug, Default)]
pub struct AssetSize {
    pub name: String,
    pub identity: u64,
    pub gzip: u64,
    pub brotli: u64,
}

#[derive(Clone, Debug, Default)]
pub struct DashboardResult {
    pub assets: Vec<AssetSize>,
    /// Everything Chromium received for a cold `/workers` load (headers
    /// included).
    pub browser_bytes: Option<u64>,
    pub first_row_ms: Option<f64>,
    pub first_row_retained_ms: Option<f64>,
    pub retained_tasks: u64,
    pub queues_probe_ms: Option<f64>,
    /// Events/s asked of the load generator, what it published, and what
    /// celeriac applied over the same window.
    pub offered_rate: f64,
    pub published_rate: f64,
    pub applied_rate: f64,
    /// Seconds celeriac needed after the flow stopped to apply the rest.
    pub catch_up: Option<f64>,
    pub markers_sent: u64,
    /// Markers published while the marked page watched (up to 3 s before
    /// it looked), and how many of them it painted.
    pub markers_due: Option<f64>,
    pub markers_seen: Option<f64>,
    pub delay_p50_ms: Option<f64>,
    pub delay_p99_ms: Option<f64>,
    pub delay_max_ms: Option<f64>,
    pub longest_task_ms: Option<f64>,
    pub long_tasks: Option<f64>,
    pub long_task_total_ms: Option<f64>,
    pub load_longest_task_ms: Option<f64>,
    /// The filtered (markers) page's long tasks under the same flow.
    pub marker_page_longest_task_ms: Option<f64>,
    pub marker_page_long_task_ms_total: Option<f64>,
    /// The websocket handler's timings per page (`<page>_ws_…`): how much
    /// of the main thread's time goes to decoding and applying deltas.
    pub breakdown: Vec<(String, f64)>,
    pub notes: Vec<String>,
}

impl DashboardResult {
    fn total(&self, pick: fn(&AssetSize) -> u64) -> u64 {
        self.assets.iter().map(pick).sum()
    }
}

/// Runs the scenario in its own vhost.
pub async fn run(settings: &Settings, options: &Options) -> Result<DashboardResult> {
    let playwright = options.node_modules.join("playwright-core");
    if !playwright.join("package.json").is_file() {
        bail!(
            "{} is missing: `cargo xtask bench` installs it (or set CELERIAC_BENCH_NODE_MODULES)",
            playwright.display()
        );
    }
    if !Path::new(CHROMIUM).is_file() {
        bail!("{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)");
    }
    let vhost = format!("{VHOST_PREFIX}{}-dashboard", std::process::id());
    settings.mgmt.delete_vhost(&vhost).await?;
    settings.mgmt.create_vhost(&vhost).await?;
    let outcome = run_in(settings, options, &vhost, &playwright).await;
    if let Err(e) = settings.mgmt.delete_vhost(&vhost).await {
        eprintln!("warning: could not delete vhost {vhost}: {e:#}");
    }
    outcome
}

/// The bench's channel and confirm settings applied to `p`.
fn plan(settings: &Settings, mut p: Plan) -> Plan {
    p.channels = settings.channels;
    p.confirms = settings.confirms;
    p
}

fn url(settings: &Settings, vhost: &str) -> String {
    format!("{}/{}", settings.amqp.trim_end_matches('/'), vhost)
}

async fn run_in(
    settings: &Settings,
    options: &Options,
    vhost: &str,
    playwright: &Path,
) -> Result<DashboardResult> {
    let broker = url(settings, vhost);
    let retained = settings.flower_tasks;
    let args = vec![
        "--enable-events".to_owned(),
        "false".to_owned(),
        "--max-tasks".to_owned(),
        retained.max(1_000).to_string(),
    ];
    let mut celeriac = Monitor::start_celeriac(
        &settings.celeriac,
        &broker,
        &args,
        &settings.logs.join("dashboard-celeriac.log"),
    )
    .await?;
    settings
        .mgmt
        .wait_for_binding(vhost, Duration::from_secs(60))
        .await
        .context("celeriac never bound a queue to celeryev")?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;

    let mut result = DashboardResult {
        retained_tasks: retained,
        offered_rate: options.rate,
        ..DashboardResult::default()
    };
    step("dashboard: transfer size as served");
    result.assets = asset_sizes(&http, &celeriac.base).await?;
    for a in &result.assets {
        detail(&format!(
            "{}: {} B raw, {} B gzip, {} B brotli",
            a.name,
            fmt_int(a.identity),
            fmt_int(a.gzip),
            fmt_int(a.brotli)
        ));
    }

    // A few tasks and the four workers' heartbeats, and a real queue.
    loadgen::run(&broker, &plan(settings, Plan::tasks(200))).await?;
    fill_probe_queue(&broker).await?;

    step("dashboard: Chromium (playwright-core)");
    std::fs::create_dir_all(&settings.logs)?;
    let mut node = tokio::process::Command::new("node")
        .arg(SCRIPT)
        .env("PLAYWRIGHT_CORE", playwright)
        .env("CHROMIUM", CHROMIUM)
        .env("CELERIAC_URL", &celeriac.base)
        .env("PHASE_SECS", settings.duration.as_secs().max(5).to_string())
        .env("PROBE_QUEUE", PROBE_QUEUE)
        .env("PROBE_DEPTH", PROBE_DEPTH.to_string())
        .env("SCREENSHOTS", &settings.logs)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting node (Node.js 18 or later is needed)")?;
    let mut to_node = node.stdin.take().context("node stdin")?;
    let mut lines = BufReader::new(node.stdout.take().context("node stdout")?).lines();
    let mut flow: Option<Flow> = None;
    while let Some(line) = lines.next_line().await.context("reading node's output")? {
        let (kind, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let answer = match kind {
            "FIGURE" => {
                record(&mut result, rest);
                continue;
            }
            "NOTE" => {
                detail(rest);
                result.notes.push(rest.to_owned());
                continue;
            }
            "ASK" => match rest {
                "preload" => {
                    preload(settings, &broker, &mut celeriac, retained).await?;
                    "OK".to_owned()
                }
                "firehose" => {
                    step(&format!(
                        "dashboard: firehose at {} events/s offered, {MARKERS_PER_SEC} markers/s",
                        fmt_int(options.rate as u64)
                    ));
                    flow = Some(Flow::start(settings, &broker, options.rate, &celeriac).await?);
                    "OK".to_owned()
                }
                "markers" => {
                    let f = flow
                        .as_ref()
                        .context("node asked for markers before a firehose")?;
                    let sent = f
                        .sent
                        .lock()
                        .map_err(|_| anyhow::anyhow!("marker list poisoned"))?;
                    serde_json::to_string(&*sent)?
                }
                "stop" => {
                    let f = flow
                        .take()
                        .context("node asked to stop before a firehose")?;
                    f.stop(&mut celeriac, &mut result).await?;
                    format!(
                        "{{\"published_rate\": {:.0}, \"applied_rate\": {:.0}}}",
                        result.published_rate, result.applied_rate
                    )
                }
                other => bail!("the browser script asked for `{other}`"),
            },
            _ => {
                detail(&line);
                continue;
            }
        };
        to_node.write_all(format!("{answer}\n").as_bytes()).await?;
        to_node.flush().await?;
    }
    let status = node.wait().await.context("waiting for node")?;
    if let Some(f) = flow.take() {
        f.stop(&mut celeriac, &mut result).await?;
    }
    celeriac.process.stop(Duration::from_secs(5));
    if !status.success() {
        bail!(
            "the browser script failed ({status}); celeriac's log is {}",
            celeriac.process.log().display()
        );
    }
    Ok(result)
}

fn record(result: &mut DashboardResult, rest: &str) {
    let Some((name, value)) = rest.split_once(' ') else {
        return;
    };
    let Ok(v) = value.trim().parse::<f64>() else {
        return;
    };
    // Infinite: a marker that was never painted (see `ms`).
    let v = Some(v).filter(|v| !v.is_nan());
    detail(&format!("{name} = {value}"));
    match name {
        "first_worker_row_ms" => result.first_row_ms = v,
        "browser_transfer_bytes" => result.browser_bytes = v.map(|v| v as u64),
        "queues_page_probe_ms" => result.queues_probe_ms = v,
        "first_worker_row_retained_ms" => result.first_row_retained_ms = v,
        "markers_due" => result.markers_due = v,
        "markers_seen" => result.markers_seen = v,
        "marker_page_longest_task_ms" => result.marker_page_longest_task_ms = v,
        "marker_page_long_task_ms_total" => result.marker_page_long_task_ms_total = v,
        "event_to_screen_p50_ms" => result.delay_p50_ms = v,
        "event_to_screen_p99_ms" => result.delay_p99_ms = v,
        "event_to_screen_max_ms" => result.delay_max_ms = v,
        "tasks_page_load_longest_task_ms" => result.load_longest_task_ms = v,
        "tasks_page_longest_task_ms" => result.longest_task_ms = v,
        "tasks_page_long_tasks" => result.long_tasks = v,
        "tasks_page_long_task_ms_total" => result.long_task_total_ms = v,
        other if other.contains("_ws_") => {
            if let Some(v) = v {
                result.breakdown.push((other.to_owned(), v));
            }
        }
        _ => {}
    }
}

/// `index.html` and the files it references (`./app-….js`,
/// `./app_bg-….wasm`), each fetched as identity, gzip and brotli; the bytes
/// counted are the body as sent (this client never decompresses).
async fn asset_sizes(http: &reqwest::Client, base: &str) -> Result<Vec<AssetSize>> {
    let index_url = format!("{base}/");
    let index = http
        .get(&index_url)
        .send()
        .await
        .with_context(|| format!("GET {index_url}"))?
        .text()
        .await?;
    if !index.contains("celeriac-prefix") {
        bail!(
            "this celeriac does not embed the dashboard: build it with `cargo xtask build` \
             (which sets CELERIAC_DASHBOARD_DIR)"
        );
    }
    let names = asset_names(&index);
    if names.len() < 3 {
        bail!("index.html references no app .js and .wasm: {index:.400}");
    }
    let mut sizes = Vec::new();
    for name in names {
        let url = format!("{base}/{name}");
        let mut size = AssetSize {
            name: if name.is_empty() {
                "index.html".to_owned()
            } else {
                name.clone()
            },
            ..AssetSize::default()
        };
        for (encoding, slot) in [
            ("identity", &mut size.identity),
            ("gzip", &mut size.gzip),
            ("br", &mut size.brotli),
        ] {
            let response = http
                .get(&url)
                .header("accept-encoding", encoding)
                .send()
                .await
                .with_context(|| format!("GET {url}"))?;
            if !response.status().is_success() {
                bail!("GET {url}: {}", response.status());
            }
            let body = response.bytes().await?;
            *slot = body.len() as u64;
        }
        sizes.push(size);
    }
    Ok(sizes)
}

/// `""` (index.html itself) and every `./….js` / `./….wasm` that
/// index.html references, once each.
fn asset_names(index: &str) -> Vec<String> {
    let mut names = vec![String::new()];
    for piece in index.split('"') {
        if let Some(name) = piece.strip_prefix("./") {
            if (name.ends_with(".js") || name.ends_with(".wasm"))
                && !names.iter().any(|n| n == name)
            {
                names.push(name.to_owned());
            }
        }
    }
    names
}

/// Declares a durable queue on the default exchange and puts
/// [`PROBE_DEPTH`] messages in it (deleted with the vhost).
async fn fill_probe_queue(broker: &str) -> Result<()> {
    let conn = Connection::connect(broker, ConnectionProperties::default())
        .await
        .with_context(|| format!("connecting to {}", loadgen::redact(broker)))?;
    let channel = conn.create_channel().await?;
    channel
        .queue_declare(
            PROBE_QUEUE.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("declaring {PROBE_QUEUE}"))?;
    for i in 0..PROBE_DEPTH {
        channel
            .basic_publish(
                "".into(),
                PROBE_QUEUE.into(),
                BasicPublishOptions::default(),
                format!("probe {i}").as_bytes(),
                BasicProperties::default(),
            )
            .await?;
    }
    let _ = conn.close(200, "probe filled".into()).await;
    Ok(())
}

/// Publishes tasks flat out until celeriac retains `count` of them.
async fn preload(
    settings: &Settings,
    broker: &str,
    celeriac: &mut Monitor,
    count: u64,
) -> Result<()> {
    step(&format!(
        "dashboard: retaining {} tasks in celeriac",
        fmt_int(count)
    ));
    let published = loadgen::run(broker, &plan(settings, Plan::tasks(count))).await?;
    let settled = celeriac
        .wait_settled(
            Counter::Tasks,
            Some(count),
            Duration::from_millis(200),
            Duration::from_secs(15),
            Duration::from_secs(600),
        )
        .await?;
    detail(&format!(
        "published {} events; celeriac retains {} tasks",
        fmt_int(published.events),
        fmt_int(settled.value)
    ));
    if !settled.reached {
        bail!(
            "celeriac retained {} of {} tasks, then stalled",
            fmt_int(settled.value),
            fmt_int(count)
        );
    }
    Ok(())
}

/// The firehose and the markers, running until stopped.
struct Flow {
    stop: Arc<AtomicBool>,
    firehose: tokio::task::JoinHandle<Result<Published>>,
    markers: tokio::task::JoinHandle<Result<u64>>,
    /// Publish times (epoch ms) of the markers sent so far.
    sent: Arc<Mutex<Vec<u64>>>,
    started: Instant,
    events_before: u64,
}

impl Flow {
    async fn start(
        settings: &Settings,
        broker: &str,
        rate: f64,
        celeriac: &Monitor,
    ) -> Result<Flow> {
        let stop = Arc::new(AtomicBool::new(false));
        let events_before = celeriac.read(Counter::Events).await?;
        let mut plan = plan(settings, Plan::timed(CHUNK));
        plan.rate = Some(rate);
        let firehose = {
            let (stop, broker) = (stop.clone(), broker.to_owned());
            tokio::spawn(async move {
                let mut total = Published::default();
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let p = loadgen::run(&broker, &plan).await?;
                    total.tasks += p.tasks;
                    total.messages += p.messages;
                    total.events += p.events;
                    total.refused += p.refused;
                }
                total.elapsed = started.elapsed();
                Ok(total)
            })
        };
        let sent = Arc::new(Mutex::new(Vec::new()));
        let markers = {
            let (stop, broker, sent) = (stop.clone(), broker.to_owned(), sent.clone());
            tokio::spawn(async move { publish_markers(&broker, stop, sent).await })
        };
        Ok(Flow {
            stop,
            firehose,
            markers,
            sent,
            started: Instant::now(),
            events_before,
        })
    }

    async fn stop(self, celeriac: &mut Monitor, result: &mut DashboardResult) -> Result<()> {
        // What celeriac applied while the browser watched.
        let events_now = celeriac.read(Counter::Events).await?;
        let window = self.started.elapsed();
        self.stop.store(true, Ordering::Relaxed);
        let published = self.firehose.await.context("firehose task")??;
        let markers = self.markers.await.context("marker task")??;
        let stopped = Instant::now();
        result.published_rate = published.events_per_sec();
        result.applied_rate =
            loadgen::per_sec(events_now.saturating_sub(self.events_before), window);
        result.markers_sent = markers;
        let settled = celeriac
            .wait_settled(
                Counter::Events,
                None,
                Duration::from_millis(200),
                Duration::from_secs(3),
                Duration::from_secs(300),
            )
            .await?;
        result.catch_up = Some(settled.at.saturating_duration_since(stopped).as_secs_f64());
        detail(&format!(
            "published {} events/s ({} events, {} markers); celeriac applied {} events/s while the browser watched, \
             and caught up {:.1} s after the flow stopped",
            fmt_int(result.published_rate as u64),
            fmt_int(published.events),
            fmt_int(markers),
            fmt_int(result.applied_rate as u64),
            result.catch_up.unwrap_or(0.0)
        ));
        Ok(())
    }
}

#[allow(clippy::disallowed_methods)] // marker stamps the browser compares with its own wall clock
fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `bench.marker` tasks, [`MARKERS_PER_SEC`], each one `task.multi`
/// message (received, started, succeeded) whose args are its publish time.
async fn publish_markers(
    broker: &str,
    stop: Arc<AtomicBool>,
    sent_at: Arc<Mutex<Vec<u64>>>,
) -> Result<u64> {
    let conn = Connection::connect(broker, ConnectionProperties::default())
        .await
        .with_context(|| format!("connecting to {}", loadgen::redact(broker)))?;
    let channel = conn.create_channel().await?;
    let host = loadgen::worker_name(0);
    let props = loadgen::properties(&host);
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / MARKERS_PER_SEC));
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let id = uuid::Uuid::new_v4();
        let ms = epoch_ms();
        let ts = ms as f64 / 1000.0;
        let body = format!(
            r#"[{{"hostname": "{host}", "utcoffset": 0.0, "pid": 1, "clock": 0, "uuid": "{id}", "name": "bench.marker", "args": "({ms},)", "kwargs": "{{}}", "root_id": "{id}", "parent_id": null, "retries": 0, "timestamp": {ts}, "type": "task-received"}}, {{"hostname": "{host}", "utcoffset": 0.0, "pid": 1, "clock": 0, "uuid": "{id}", "timestamp": {ts}, "type": "task-started"}}, {{"hostname": "{host}", "utcoffset": 0.0, "pid": 1, "clock": 0, "uuid": "{id}", "result": "None", "runtime": 0.001, "timestamp": {ts}, "type": "task-succeeded"}}]"#
        );
        channel
            .basic_publish(
                loadgen::EXCHANGE.into(),
                "task.multi".into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                props.clone(),
            )
            .await
            .context("publishing a marker")?;
        sent += 1;
        if let Ok(mut v) = sent_at.lock() {
            v.push(ms);
        }
    }
    let _ = conn.close(200, "markers done".into()).await;
    Ok(sent)
}

fn ms(v: Option<f64>) -> String {
    match v {
        None => "–".to_owned(),
        Some(v) if v.is_infinite() => "not painted".to_owned(),
        Some(v) => format!("{v:.0} ms"),
    }
}

/// The dashboard's lines of the final report.
pub fn render(d: &DashboardResult) -> String {
    let kb = |b: u64| format!("{:.0} kB", b as f64 / 1000.0);
    let mut out = String::from(
        "\ndashboard (Chromium via playwright-core)        measured            goal\n",
    );
    let mut line = |what: &str, value: String, goal: &str| {
        out.push_str(&format!("  {what:<46} {value:<19} {goal}\n"));
    };
    line(
        "app transfer, brotli (index + js + wasm)",
        kb(d.total(|a| a.brotli)),
        "< 1.5 MB",
    );
    line("app transfer, gzip", kb(d.total(|a| a.gzip)), "< 1.5 MB");
    line("app uncompressed", kb(d.total(|a| a.identity)), "");
    if let Some(b) = d.browser_bytes {
        line("received by Chromium (cold /workers load)", kb(b), "");
    }
    line(
        "first worker row, idle (median of 3)",
        ms(d.first_row_ms),
        "< 1 s",
    );
    line(
        &format!(
            "first worker row, {} tasks retained",
            fmt_int(d.retained_tasks)
        ),
        ms(d.first_row_retained_ms),
        "< 1 s",
    );
    line(
        "firehose offered / published (events/s)",
        format!(
            "{} / {}",
            fmt_int(d.offered_rate as u64),
            fmt_int(d.published_rate as u64)
        ),
        "40,000",
    );
    line(
        "applied by celeriac meanwhile (events/s)",
        fmt_int(d.applied_rate as u64),
        "",
    );
    if let Some(c) = d.catch_up {
        line(
            "celeriac caught up after the flow (s)",
            format!("{c:.1}"),
            "",
        );
    }
    line(
        "markers painted / due (of all sent)",
        format!(
            "{} / {} ({})",
            d.markers_seen.map_or("–".into(), |v| fmt_int(v as u64)),
            d.markers_due.map_or("–".into(), |v| fmt_int(v as u64)),
            fmt_int(d.markers_sent)
        ),
        "",
    );
    line("event-to-screen p50", ms(d.delay_p50_ms), "");
    line("event-to-screen p99", ms(d.delay_p99_ms), "< 500 ms");
    line("event-to-screen max", ms(d.delay_max_ms), "");
    line(
        "longest main-thread task, tasks page",
        ms(d.longest_task_ms),
        "< 200 ms",
    );
    line(
        "long tasks (> 50 ms) / their total",
        format!(
            "{} / {}",
            d.long_tasks.map_or("–".into(), |v| fmt_int(v as u64)),
            ms(d.long_task_total_ms)
        ),
        "",
    );
    line(
        "longest task, marker-filtered page / total",
        format!(
            "{} / {}",
            ms(d.marker_page_longest_task_ms),
            ms(d.marker_page_long_task_ms_total)
        ),
        "",
    );
    line(
        "longest task while loading the tasks page",
        ms(d.load_longest_task_ms),
        "",
    );
    for (name, v) in &d.breakdown {
        line(&format!("  {name}"), format!("{v:.0}"), "");
    }
    if let Some(q) = d.queues_probe_ms {
        line(
            "Queues page listed the probe queue's depth",
            format!("after {q:.0} ms"),
            "",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_app_files_index_html_references() {
        let index = r#"<link rel="modulepreload" href="./app-e8b657cc17dc701e.js">
<link rel="preload" href="./app_bg-789c01c1406fdbc6.wasm" as="fetch">
<a href="./api/workers">api</a>
<script type="module">import init from "./app-e8b657cc17dc701e.js"; init("./app_bg-789c01c1406fdbc6.wasm");</script>"#;
        assert_eq!(
            asset_names(index),
            [
                "",
                "app-e8b657cc17dc701e.js",
                "app_bg-789c01c1406fdbc6.wasm"
            ]
        );
    }

    #[test]
    fn figures_from_the_browser_land_in_the_report() {
        let mut r = DashboardResult::default();
        record(&mut r, "event_to_screen_p99_ms 673");
        record(&mut r, "event_to_screen_max_ms Infinity");
        record(&mut r, "tasks_page_ws_handler_p50_ms 9");
        record(&mut r, "first_worker_row_ms NaN");
        record(&mut r, "garbage");
        assert_eq!(r.delay_p99_ms, Some(673.0));
        assert_eq!(r.first_row_ms, None);
        assert_eq!(
            r.breakdown,
            [("tasks_page_ws_handler_p50_ms".to_owned(), 9.0)]
        );
        let text = render(&r);
        assert!(text.contains("673 ms"), "{text}");
        // A marker never painted is reported as such, not as a number.
        assert!(text.contains("not painted"), "{text}");
    }
}
