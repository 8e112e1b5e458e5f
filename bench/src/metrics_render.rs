//! Scenario `metrics`: how long celeriac takes to render `/metrics` for a
//! large cluster (the goal: < 50 ms at 1000 workers × 200 task names).
//! In-process, on celeriac's own state and renderer: no broker.
//! The render is what a scrape costs before the first byte goes out (the
//! page is then served from the slices timed here, not copied); a scrape
//! over HTTP through celeriac's router is timed against the same bytes
//! served as one static buffer by a bare axum route, the floor of moving
//! that much text over loopback.
//!
//! The state is built the way ingest builds it, from events: every worker
//! ran every task name (sent by one of ten clients, received, started,
//! succeeded, so each (name, worker) series has counters and the runtime,
//! queue-wait and prefetch histograms), and some tasks failed or retried.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::Bytes;

use celeriac::app::AppState;
use celeriac::events::{Event, EventKind};
use celeriac::state::{Limits, State};

/// Scrapes timed after the first (cold) one.
const STEADY: usize = 7;
/// Tasks whose events land between two steady-state scrapes: a 15 s scrape
/// interval at ~130 tasks/s.
const TASKS_BETWEEN_SCRAPES: usize = 2_000;
const CLIENTS: usize = 10;
const QUEUES: usize = 5;

pub struct RenderResult {
    pub workers: usize,
    pub names: usize,
    /// Distinct names each worker ran (`names` for the cross product).
    pub names_per_worker: usize,
    pub series: usize,
    pub page_bytes: usize,
    pub build: Duration,
    pub first: Duration,
    pub steady_median: Duration,
    pub unchanged_median: Duration,
    /// The longest wait for the state's write lock (what ingest takes)
    /// while the first render ran, and while the steady ones ran.
    pub first_stall: Duration,
    pub steady_stall: Duration,
    /// A whole scrape over HTTP (request to last byte), unchanged state.
    pub http_scrape: Duration,
    /// The same bytes from a static buffer: the transfer floor.
    pub http_static: Duration,
}

/// The cluster shapes measured, as (workers, names, names each worker
/// runs): the goal's full cross product (every worker ran every one of the
/// 200 names), 200 names where workers are specialised (ten pools, each
/// running 20 of them, as clusters route task types to queues), and 20
/// names on every worker.
pub const SHAPES: [(usize, usize, usize); 3] = [(1000, 200, 200), (1000, 200, 20), (1000, 20, 20)];

/// The `j`-th name worker `w` runs: workers fall into pools by `w`, each
/// pool running its own `per_worker` consecutive names.
fn name_of(w: usize, j: usize, names: usize, per_worker: usize) -> usize {
    let pools = (names / per_worker).max(1);
    ((w % pools) * per_worker + j) % names
}

struct Cluster {
    state: State,
    now: f64,
    n: u64,
}

impl Cluster {
    fn apply(&mut self, kind: EventKind, host: &str, uuid: &str, f: impl FnOnce(&mut Event)) {
        let mut e = Event {
            kind,
            hostname: host.to_owned(),
            timestamp: self.now,
            uuid: Some(uuid.to_owned()),
            ..Event::default()
        };
        f(&mut e);
        self.state.apply(&e, self.now);
    }

    /// One task of `name` on worker `w`, through to its end.
    fn task(&mut self, w: usize, t: usize) {
        self.n += 1;
        self.now += 0.000_01;
        let uuid = format!("{:032x}", self.n);
        let host = format!("w{w}@host{}", w % 50);
        let name = format!("proj.tasks.task_{t}");
        let client = format!(
            "gen{}@web{}",
            self.n as usize % CLIENTS,
            self.n as usize % CLIENTS
        );
        let wait = (t % 40) as f64 * 0.05;
        self.apply(EventKind::TaskSent, &client, &uuid, |e| {
            e.name = Some(name.clone());
            e.queue = Some(format!("q{}", t % QUEUES));
            e.timestamp -= wait + 0.01;
        });
        self.apply(EventKind::TaskReceived, &host, &uuid, |e| {
            e.name = Some(name);
            e.timestamp -= wait;
        });
        self.apply(EventKind::TaskStarted, &host, &uuid, |_| {});
        let n = self.n;
        match n % 20 {
            0 => self.apply(EventKind::TaskFailed, &host, &uuid, |e| {
                e.exception = Some(format!("ValueError('bad input {n}')"));
            }),
            1 => self.apply(EventKind::TaskRetried, &host, &uuid, |e| {
                e.exception = Some("TimeoutError()".into());
            }),
            _ => self.apply(EventKind::TaskSucceeded, &host, &uuid, |e| {
                e.runtime = Some((t % 50) as f64 * 0.02);
            }),
        }
    }
}

fn build(workers: usize, names: usize, per_worker: usize) -> Cluster {
    let mut c = Cluster {
        // Aggregates outlive tasks: 10,000 retained tasks keep the build
        // small without changing the series.
        state: State::new(Limits {
            max_tasks: 10_000,
            max_workers: workers + 10,
            ..Limits::default()
        }),
        now: 1_700_000_000.0,
        n: 0,
    };
    for w in 0..workers {
        let host = format!("w{w}@host{}", w % 50);
        let now = c.now;
        c.apply(EventKind::WorkerHeartbeat, &host, "", |e| {
            e.uuid = None;
            e.freq = Some(2.0);
            e.active = Some(1);
            e.loadavg = Some([0.5, 0.4, 0.3]);
            e.timestamp = now;
        });
        for j in 0..per_worker {
            c.task(w, name_of(w, j, names, per_worker));
        }
    }
    c
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub fn run_shape(workers: usize, names: usize, per_worker: usize) -> anyhow::Result<RenderResult> {
    let t = Instant::now();
    let mut cluster = build(workers, names, per_worker);
    let build_time = t.elapsed();
    // Memory only, as the earlier figures were.
    let config = celeriac::config::Config::load_from(["celeriac", "--db", "none"])
        .map_err(|e| anyhow::anyhow!("config: {e}"))?;
    let brokers = celeriac::transport::Brokers::from_urls(&config.ingest.broker, &config.redis)?;
    let shared = celeriac::assemble(&config, &brokers);
    let now = cluster.now;
    // The state is moved in and out around each batch of new events, as
    // the state owner would apply them between scrapes.
    let state = std::mem::replace(&mut cluster.state, State::new(Limits::default()));
    *shared.state.write() = state;
    let series = shared.state.read().task_series().count();

    let render = |shared: &AppState| {
        let t = Instant::now();
        let page = celeriac::metrics::render_page(shared.scrape(), now);
        let elapsed = t.elapsed();
        (elapsed, page.len())
    };
    let (first, page_bytes, first_stall) = with_writer(&shared, || render(&shared));
    let mut unchanged = Vec::new();
    for _ in 0..3 {
        unchanged.push(render(&shared).0);
    }
    let mut steady = Vec::new();
    let mut steady_stall = Duration::ZERO;
    for round in 0..STEADY {
        {
            let mut state = shared.state.write();
            std::mem::swap(&mut cluster.state, &mut state);
            for i in 0..TASKS_BETWEEN_SCRAPES {
                let k = round * TASKS_BETWEEN_SCRAPES + i;
                let w = (k * 7919) % workers;
                cluster.task(w, name_of(w, (k * 104_729) % per_worker, names, per_worker));
            }
            std::mem::swap(&mut cluster.state, &mut state);
        }
        let (elapsed, _, stall) = with_writer(&shared, || render(&shared));
        steady.push(elapsed);
        steady_stall = steady_stall.max(stall);
    }
    let whole = Bytes::from(celeriac::metrics::render(shared.scrape(), now));
    let (http_scrape, http_static) = tokio::runtime::Handle::current()
        .block_on(over_http(Arc::new(shared), whole))
        .context("scraping over HTTP")?;
    Ok(RenderResult {
        first_stall,
        steady_stall,
        http_scrape,
        http_static,
        workers,
        names,
        names_per_worker: per_worker,
        series,
        page_bytes,
        build: build_time,
        first,
        steady_median: median(steady),
        unchanged_median: median(unchanged),
    })
}

/// Runs `render` while another thread takes the state's write lock over
/// and over, as the state owner applying events does; returns what
/// `render` returned and the longest the writer waited.
fn with_writer(
    shared: &AppState,
    render: impl FnOnce() -> (Duration, usize),
) -> (Duration, usize, Duration) {
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut longest = Duration::ZERO;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                drop(shared.state.write());
                longest = longest.max(t.elapsed());
                std::thread::sleep(Duration::from_micros(200));
            }
            longest
        });
        let (elapsed, len) = render();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let stall = writer.join().expect("the writer thread");
        (elapsed, len, stall)
    })
}

/// Median time to GET `/metrics` to its last byte from celeriac's router,
/// and from a bare route answering `page` (same bytes, one buffer).
async fn over_http(shared: Arc<AppState>, page: Bytes) -> anyhow::Result<(Duration, Duration)> {
    let len = page.len();
    let floor = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let page = page.clone();
            async move { page }
        }),
    );
    let celeriac = serve(celeriac::http::router(shared)).await?;
    let floor = serve(floor).await?;
    let client = reqwest::Client::new();
    let mut times = (Vec::new(), Vec::new());
    for _ in 0..3 {
        times.0.push(scrape(&client, &celeriac, len).await?);
        times.1.push(scrape(&client, &floor, len).await?);
    }
    Ok((median(times.0), median(times.1)))
}

async fn serve(app: axum::Router) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/metrics", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

async fn scrape(client: &reqwest::Client, url: &str, len: usize) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let mut response = client.get(url).send().await?.error_for_status()?;
    let mut got = 0;
    while let Some(chunk) = response.chunk().await? {
        got += chunk.len();
    }
    let elapsed = t.elapsed();
    // The router renders at the wall clock's time, when the bench's workers
    // are long offline: their load-average lines are left out.
    anyhow::ensure!(
        got.abs_diff(len) < len / 100 + 1000,
        "{url} sent {got} bytes, expected about {len}"
    );
    Ok(elapsed)
}

pub fn run() -> anyhow::Result<Vec<RenderResult>> {
    SHAPES.iter().map(|&(w, n, p)| run_shape(w, n, p)).collect()
}

pub fn render(results: &[RenderResult]) -> String {
    let mut s =
        String::from("\n/metrics render (in-process; goal < 50 ms at 1000 workers x 200 names)\n");
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for r in results {
        let _ = writeln!(
            s,
            "  {} workers x {} names ({} per worker): {} series, page {:.1} MB; first render {:.0} ms, \
             then median {:.1} ms with {TASKS_BETWEEN_SCRAPES} tasks between scrapes, \
             {:.1} ms unchanged (state built from events in {:.1} s); \
             longest wait of an event writer during the first render {:.1} ms, during the others {:.1} ms; \
             whole scrape over HTTP {:.0} ms vs the same bytes from a static buffer {:.0} ms ({:.2}x)",
            r.workers,
            r.names,
            r.names_per_worker,
            r.series,
            r.page_bytes as f64 / 1e6,
            ms(r.first),
            ms(r.steady_median),
            ms(r.unchanged_median),
            r.build.as_secs_f64(),
            ms(r.first_stall),
            ms(r.steady_stall),
            ms(r.http_scrape),
            ms(r.http_static),
            r.http_scrape.as_secs_f64() / r.http_static.as_secs_f64(),
        );
    }
    s
}
