//! `celeriac-bench`: see the crate docs. `cargo xtask bench` runs it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bench::loadgen::{self, Plan, EVENTS_PER_TASK};
use bench::mgmt::Mgmt;
use bench::monitor::Kind;
use bench::noop::{self, NoopArgs, REPORT_PREFIX};
use bench::report::{self, fmt_int};
use bench::scenarios::{self, step, Results, Settings};
use clap::{ArgAction, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "celeriac-bench",
    about = "Benchmark celeriac against a no-op lapin consumer and Flower, side by side",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,

    #[command(flatten)]
    bench: BenchArgs,
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// Which scenario to run.
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    scenario: Scenario,

    /// Events preloaded for the drain scenario [default: 1,000,000; --quick 50,000].
    #[arg(long)]
    events: Option<u64>,

    /// Rounds of the drain scenario, each draining a fresh backlog with the
    /// no-op consumer and then celeriac; the table shows medians.
    #[arg(long, default_value_t = 1)]
    drain_rounds: u32,

    /// Seconds of publishing in the live scenarios [default: 30; --quick 5].
    #[arg(long)]
    duration: Option<u64>,

    /// Tasks published in the memory scenario [default: 1,000,000; --quick 20,000].
    #[arg(long)]
    tasks: Option<u64>,

    /// Tasks retained for the listing scenario [default: 1,000,000; --quick 100,000].
    #[arg(long)]
    listing_tasks: Option<u64>,

    /// Tasks retained for the celeriac/Flower memory and API comparison
    /// [default: 100,000; --quick 5,000].
    #[arg(long)]
    flower_tasks: Option<u64>,

    /// The celeriac binary [default: target/release/celeriac in the workspace].
    #[arg(long)]
    celeriac: Option<PathBuf>,

    /// A Python with Celery 5.7 and Flower 2.2; Flower is skipped without it.
    #[arg(long, env = "CELERIAC_BENCH_PYTHON")]
    python: Option<String>,

    /// Small sizes for a smoke run.
    #[arg(long)]
    quick: bool,

    /// AMQP URL of the broker, without a vhost (each scenario makes its own).
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672")]
    amqp: String,

    /// RabbitMQ management API (creates and deletes the vhosts).
    #[arg(long, default_value = "http://guest:guest@127.0.0.1:15672")]
    management: String,

    /// Publisher channels.
    #[arg(long, default_value_t = loadgen::DEFAULT_CHANNELS)]
    channels: usize,

    /// Publisher confirms (slower; counts are exact without them too, see
    /// loadgen::Plan::confirms).
    #[arg(long, default_value_t = false, action = ArgAction::Set)]
    confirms: bool,

    /// Events/s offered while the dashboard scenario measures the browser.
    #[arg(long, default_value_t = bench::dashboard::DEFAULT_RATE)]
    dashboard_rate: f64,

    /// node_modules with playwright-core, for the dashboard scenario
    /// [default: $CELERIAC_BENCH_NODE_MODULES, else ~/.cache/celeriac/tools/node_modules].
    #[arg(long)]
    node_modules: Option<PathBuf>,

    /// Where child processes' output goes [default: target/bench-logs/<pid>].
    #[arg(long)]
    logs: Option<PathBuf>,

    /// PostgreSQL server for the drain with history in PostgreSQL; a
    /// throwaway database is made on it per round (skipped when psql or the
    /// server is unavailable).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres: String,

    /// Redis server for the redis scenario (database 15 is emptied and used).
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,

    /// Distinct task names of the names scenario's flood, one per task
    /// [default: 300,000; --quick 20,000].
    #[arg(long)]
    names: Option<u64>,

    /// Tasks written into the store of the history scenario (the issue's
    /// goals are stated at 10,000,000) [default: 1,000,000; --quick 250,000].
    #[arg(long)]
    history_tasks: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Drain,
    Live,
    Memory,
    Flower,
    /// The live dashboard in Chromium: transfer size, first row, event-to-screen delay, long tasks.
    Dashboard,
    /// The alert engine evaluating 500 rules (in-process).
    Alerts,
    /// `/metrics` render at 1000 workers x 200 and x 20 task names (in-process).
    Metrics,
    /// One poll of queue statistics with 3,000 and 10,000 queues (real RabbitMQ).
    BrokerPoll,
    /// `GET /api/tasks` at 1,000,000 retained tasks, indexed and full path, and a streamed full listing (in-process).
    Listing,
    /// The history store: bulk writes, disk per task, restart warm-up, queries beyond memory.
    History,
    /// celeriac on a Redis broker beside a no-op subscriber, one burst for both.
    Redis,
    /// A flood of distinct task names against 50 names: ingest, RSS, /ws traffic, /api/task/types.
    Names,
    All,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// The baseline consumer, run by the drain scenario as a child process.
    #[command(hide = true)]
    NoopConsumer {
        #[arg(long)]
        broker: String,
        #[arg(long)]
        queue: String,
        /// Exit after this many messages.
        #[arg(long)]
        messages: u64,
        #[arg(long, default_value_t = 2_000)]
        prefetch: u16,
        #[arg(long, default_value_t = 500)]
        ack_every: u64,
        /// Run on a current-thread runtime instead of a multi-thread one.
        #[arg(long)]
        current_thread: bool,
    },
    /// The Redis baseline, run by the redis scenario as a child process.
    #[command(hide = true)]
    NoopSubscriber {
        #[arg(long)]
        url: String,
        #[arg(long)]
        messages: u64,
    },
    /// Publish synthetic Celery events into an existing vhost (for manual
    /// runs against a celeriac or Flower you started yourself).
    Loadgen {
        /// AMQP URL including the vhost.
        #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
        broker: String,
        /// Stop after this many tasks (4 events each).
        #[arg(long)]
        tasks: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long)]
        duration: Option<u64>,
        /// Task events per second (default: as fast as the broker takes them).
        #[arg(long)]
        rate: Option<f64>,
        #[arg(long, default_value_t = loadgen::DEFAULT_CHANNELS)]
        channels: usize,
        #[arg(long, default_value_t = false, action = ArgAction::Set)]
        confirms: bool,
        /// No worker heartbeats.
        #[arg(long)]
        no_heartbeats: bool,
        /// Name the tasks `tasks.generated.t{i % N}` instead of four names
        /// (N at least the task count: a distinct name per task).
        #[arg(long)]
        names: Option<u64>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let current_thread = matches!(
        cli.command,
        Some(Sub::NoopConsumer {
            current_thread: true,
            ..
        })
    );
    let runtime = if current_thread {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    let outcome = match runtime {
        Ok(runtime) => runtime.block_on(dispatch(cli)),
        Err(e) => Err(anyhow::Error::new(e).context("starting the async runtime")),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Some(Sub::NoopConsumer {
            broker,
            queue,
            messages,
            prefetch,
            ack_every,
            ..
        }) => noop_consumer(&broker, &queue, messages, prefetch, ack_every).await,
        Some(Sub::Loadgen {
            broker,
            tasks,
            duration,
            rate,
            channels,
            confirms,
            no_heartbeats,
            names,
        }) => {
            let plan = Plan {
                tasks,
                duration: duration.map(Duration::from_secs),
                rate,
                heartbeats: !no_heartbeats,
                channels,
                confirms,
                confirm_window: loadgen::DEFAULT_CONFIRM_WINDOW,
                names,
            };
            publish(&broker, &plan).await
        }
        Some(Sub::NoopSubscriber { url, messages }) => {
            bench::redis_ingest::noop_subscriber(&url, messages).await
        }
        None => bench(cli.bench).await,
    }
}

async fn noop_consumer(
    broker: &str,
    queue: &str,
    messages: u64,
    prefetch: u16,
    ack_every: u64,
) -> Result<()> {
    let report = noop::run(&NoopArgs {
        url: broker,
        queue,
        messages,
        prefetch,
        ack_every,
    })
    .await?;
    println!(
        "{REPORT_PREFIX}{}",
        serde_json::to_string(&report).context("encoding the report")?
    );
    Ok(())
}

async fn publish(broker: &str, plan: &Plan) -> Result<()> {
    let published = loadgen::run(broker, plan).await?;
    println!(
        "published {} tasks, {} events in {} messages in {:.1} s ({} events/s), {} refused",
        fmt_int(published.tasks),
        fmt_int(published.events),
        fmt_int(published.messages),
        published.elapsed.as_secs_f64(),
        fmt_int(published.events_per_sec() as u64),
        fmt_int(published.refused),
    );
    Ok(())
}

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_owned()
}

async fn bench(args: BenchArgs) -> Result<()> {
    let pick = |given: Option<u64>, full: u64, quick: u64| {
        given.unwrap_or(if args.quick { quick } else { full })
    };
    let root = workspace_root();
    let mgmt = Arc::new(Mgmt::new(&args.management)?);
    mgmt.check().await?;
    if let Err(e) = mgmt.delete_stale().await {
        eprintln!("warning: could not remove vhosts of earlier runs: {e:#}");
    }
    let settings = Settings {
        amqp: args.amqp.clone(),
        mgmt: mgmt.clone(),
        celeriac: args
            .celeriac
            .clone()
            .unwrap_or_else(|| root.join("target/release/celeriac")),
        python: args.python.clone(),
        logs: args.logs.clone().unwrap_or_else(|| {
            root.join("target/bench-logs")
                .join(std::process::id().to_string())
        }),
        drain_events: pick(args.events, 1_000_000, 50_000),
        drain_rounds: args.drain_rounds.max(1),
        duration: Duration::from_secs(pick(args.duration, 30, 5)),
        memory_tasks: pick(args.tasks, 1_000_000, 20_000),
        flower_tasks: pick(args.flower_tasks, 100_000, 5_000),
        channels: args.channels.max(1),
        confirms: args.confirms,
        postgres: args.postgres.clone(),
        redis: args.redis.clone(),
        history_tasks: pick(args.history_tasks, bench::history::DEFAULT_TASKS, 250_000),
    };
    println!(
        "celeriac-bench: {} CPUs, load average {}, celeriac {}, logs in {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average(),
        settings.celeriac.display(),
        settings.logs.display()
    );
    let mut results = Results::default();
    let load_before = load_average();
    let dashboard = bench::dashboard::Options {
        node_modules: args
            .node_modules
            .clone()
            .unwrap_or_else(bench::dashboard::Options::default_node_modules),
        rate: args.dashboard_rate,
    };
    // Leaving the select drops the scenario in progress, whose children are
    // stopped as they drop; a failed signal registration only disables its
    // branch.
    let mut alerts_eval = None;
    let mut metrics_render = None;
    let mut broker_poll = None;
    let mut listing = None;
    let mut names = None;
    let names_count = pick(args.names, bench::names::DEFAULT_NAMES, 20_000);
    let listing_tasks = pick(args.listing_tasks, 1_000_000, 100_000) as usize;
    let outcome = tokio::select! {
        r = async {
            run(&settings, args.scenario, &mut results).await?;
            if matches!(args.scenario, Scenario::All | Scenario::Alerts) {
                step("scenario alerts (evaluate 500 rules)");
                match bench::alerts_eval::run() {
                    Ok(r) => alerts_eval = Some(r),
                    Err(e) => results.note(format!("alerts: {e:#}")),
                }
            }
            if matches!(args.scenario, Scenario::All | Scenario::Metrics) {
                step("scenario metrics (/metrics render, 1000 workers)");
                match tokio::task::block_in_place(bench::metrics_render::run) {
                    Ok(r) => metrics_render = Some(r),
                    Err(e) => results.note(format!("metrics: {e:#}")),
                }
            }
            if matches!(args.scenario, Scenario::All | Scenario::Listing) {
                step(&format!("scenario listing (/api/tasks at {listing_tasks} retained tasks)"));
                match tokio::task::block_in_place(|| bench::listing::run(listing_tasks)) {
                    Ok(r) => listing = Some(r),
                    Err(e) => results.note(format!("listing: {e:#}")),
                }
            }
            if matches!(args.scenario, Scenario::All | Scenario::BrokerPoll) {
                step("scenario broker-poll (management API, 3,000 and 10,000 queues)");
                match bench::broker_poll::run(&settings).await {
                    Ok(r) => broker_poll = Some(r),
                    Err(e) => results.note(format!("broker-poll: {e:#}")),
                }
            }
            if matches!(args.scenario, Scenario::All | Scenario::Names) {
                step(&format!("scenario names ({} distinct task names against 50)", fmt_int(names_count)));
                match bench::names::run(&settings, names_count).await {
                    Ok(r) => names = Some(r),
                    Err(e) => results.note(format!("names: {e:#}")),
                }
            }
            if matches!(args.scenario, Scenario::All | Scenario::Dashboard) {
                step("scenario dashboard (Chromium)");
                match bench::dashboard::run(&settings, &dashboard).await {
                    Ok(r) => results.dashboard = Some(r),
                    Err(e) => results.note(format!("dashboard: {e:#}")),
                }
            }
            Ok(())
        } => r,
        Ok(()) = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        Some(()) = terminated() => Err(anyhow::anyhow!("terminated")),
    };
    // Children were stopped as their scenarios unwound; vhosts need a call.
    mgmt.delete_created().await;
    println!();
    print!("{}", report::render(&results));
    if let Some(a) = &alerts_eval {
        print!("{}", bench::alerts_eval::render(a));
    }
    if let Some(m) = &metrics_render {
        print!("{}", bench::metrics_render::render(m));
    }
    if let Some(l) = &listing {
        print!("{}", bench::listing::render_result(l));
    }
    if let Some(b) = &broker_poll {
        print!("{}", bench::broker_poll::render(b));
    }
    if let Some(d) = &results.dashboard {
        print!("{}", bench::dashboard::render(d));
    }
    if let Some(n) = &names {
        print!("{}", bench::names::render(n));
    }
    // Other work on the box skews every figure; say how busy it was.
    println!(
        "\nload average at start {load_before}, at end {}",
        load_average()
    );
    outcome
}

async fn terminated() -> Option<()> {
    let mut signal =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok()?;
    signal.recv().await
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn run(settings: &Settings, scenario: Scenario, results: &mut Results) -> Result<()> {
    let wants = |s: Scenario| scenario == Scenario::All || scenario == s;
    if wants(Scenario::Drain) {
        step("scenario drain");
        if let Err(e) = scenarios::drain(settings, results).await {
            results.note(format!("drain: {e:#}"));
        }
    }
    if wants(Scenario::Redis) {
        let tasks = settings.drain_events / EVENTS_PER_TASK;
        step(&format!(
            "scenario redis ({} tasks, {} messages, published once to celeriac and a no-op subscriber)",
            fmt_int(tasks),
            fmt_int(tasks * 2)
        ));
        match bench::redis_ingest::run(settings, &settings.redis, tasks).await {
            Ok(r) => results.redis = Some(r),
            Err(e) => results.note(format!("redis: {e:#}")),
        }
    }
    if wants(Scenario::History) {
        step(&format!(
            "scenario history ({} tasks in SQLite)",
            fmt_int(settings.history_tasks)
        ));
        match bench::history::run(settings).await {
            Ok(r) => results.history = Some(r),
            Err(e) => results.note(format!("history: {e:#}")),
        }
    }
    if wants(Scenario::Live) || wants(Scenario::Flower) {
        step("scenario live (celeriac)");
        match scenarios::live(settings, Kind::Celeriac, None).await {
            Ok(r) => results.live = Some(r),
            Err(e) => results.note(format!("live (celeriac): {e:#}")),
        }
    }
    let flower = if wants(Scenario::Flower) {
        match settings.python.as_deref() {
            None => {
                results.note("Flower skipped: CELERIAC_BENCH_PYTHON / --python not set".to_owned());
                false
            }
            Some(python) => match scenarios::flower_available(python) {
                Ok(version) => {
                    println!("    Flower {version}");
                    true
                }
                Err(e) => {
                    results.note(format!("Flower skipped: {e:#}"));
                    false
                }
            },
        }
    } else {
        false
    };
    if flower {
        step("scenario live (Flower, at celeriac's offered rate)");
        let rate = match &results.live {
            Some(live) => live.published.events_per_sec(),
            None => {
                results.note(
                    "Flower live offered 10,000 events/s: celeriac's live run gave no rate"
                        .to_owned(),
                );
                10_000.0
            }
        };
        match scenarios::live(settings, Kind::Flower, Some(rate)).await {
            Ok(r) => results.flower_live = Some(r),
            Err(e) => results.note(format!("live (Flower): {e:#}")),
        }
    }
    if wants(Scenario::Memory) {
        step("scenario memory (celeriac)");
        match scenarios::memory(
            settings,
            Kind::Celeriac,
            settings.memory_tasks,
            None,
            "memory",
        )
        .await
        {
            Ok(r) => results.memory = Some(r),
            Err(e) => results.note(format!("memory: {e:#}")),
        }
    }
    if wants(Scenario::Flower) {
        step(&format!(
            "scenario retained (celeriac, {} tasks)",
            fmt_int(settings.flower_tasks)
        ));
        match scenarios::memory(
            settings,
            Kind::Celeriac,
            settings.flower_tasks,
            None,
            "retained-celeriac",
        )
        .await
        {
            Ok(r) => results.celeriac_retained = Some(r),
            Err(e) => results.note(format!("retained (celeriac): {e:#}")),
        }
    }
    if flower {
        step(&format!(
            "scenario retained (Flower, {} tasks)",
            fmt_int(settings.flower_tasks)
        ));
        // Below what Flower keeps up with, so its 5 s TTL drops nothing and
        // it retains every task.
        let capacity = results
            .flower_live
            .map(|f| f.processed as f64 / f.wall.as_secs_f64().max(1.0))
            .unwrap_or(2_000.0);
        let rate = (capacity * 0.7).clamp(300.0, 5_000.0);
        match scenarios::memory(
            settings,
            Kind::Flower,
            settings.flower_tasks,
            Some(rate),
            "retained-flower",
        )
        .await
        {
            Ok(r) => results.flower_retained = Some(r),
            Err(e) => results.note(format!("retained (Flower): {e:#}")),
        }
    }
    Ok(())
}
