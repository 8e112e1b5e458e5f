//! celeriac: a monitor for Celery clusters. See docs/ARCHITECTURE.md.

pub mod alerting;
pub mod app;
pub mod audit;
pub mod auth;
pub mod broker;
pub mod clock;
pub mod config;
pub mod control;
pub mod events;
pub mod feed;
pub mod history;
pub mod http;
pub mod ingest;
pub mod insight;
pub mod mailbox;
pub mod mask;
pub mod metrics;
pub mod oidc;
pub mod owner;
pub mod pyrepr;
pub mod query;
pub mod redact;
pub mod results;
pub mod series;
pub mod shutdown;
pub mod state;
pub mod submit;
pub mod telemetry;
pub mod transport;
pub mod ws;

#[cfg(test)]
pub(crate) mod test_args;

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinSet;

use parking_lot::RwLock;

use crate::app::AppState;
use crate::config::Config;
use crate::feed::Feed;
use crate::metrics::SelfMetrics;
use crate::shutdown::{Shutdown, ShutdownTrigger};
use crate::state::State;
use crate::telemetry::{DashboardTelemetry, SourceStatus};
use crate::transport::Brokers;

/// How long running tasks get to finish after shutdown is requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A started celeriac: HTTP bound and served, ingest and the state owner
/// running.
pub struct Running {
    /// Where HTTP is served (the real port when `--port 0`).
    pub addr: SocketAddr,
    pub app: Arc<AppState>,
    trigger: ShutdownTrigger,
    tasks: JoinSet<&'static str>,
}

impl Running {
    /// The root URL, as printed at start-up.
    pub fn url(&self) -> String {
        format!("http://{}{}/", self.addr, self.app.url_prefix)
    }

    /// A shutdown signal for tasks started beside celeriac (e.g. in tests).
    pub fn shutdown_signal(&self) -> Shutdown {
        self.trigger.subscribe()
    }

    /// Runs until `stop` resolves, then shuts down. A task that ends by
    /// itself before that (the HTTP server failing) is an error.
    pub async fn serve_until(mut self, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
        let early = tokio::select! {
            _ = stop => None,
            Some(done) = self.tasks.join_next() => Some(done),
        };
        let result = match early {
            None => Ok(()),
            Some(Ok(name)) => Err(anyhow::anyhow!("the {name} task stopped unexpectedly")),
            Some(Err(e)) => Err(anyhow::anyhow!("a task failed: {e}")),
        };
        self.stop().await;
        result
    }

    /// Asks every task to stop and waits (a bounded time) for them.
    pub async fn stop(mut self) {
        self.trigger.fire();
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
            tracing::warn!("tasks still running after {SHUTDOWN_GRACE:?}; stopping anyway");
            self.tasks.abort_all();
        }
    }
}

/// The application state every reader shares, built from the settings, as
/// `start` builds it (benchmarks build one without starting anything).
pub fn assemble(config: &Config, brokers: &Brokers) -> AppState {
    let metrics = Arc::new(SelfMetrics::new());
    let history = history::History::new(&config.history, &metrics.registry).map(Arc::new);
    // One status per broker, in `--broker` order, as `start` spawns them.
    let sources: Arc<[Arc<SourceStatus>]> = brokers
        .iter()
        .map(|t| Arc::new(SourceStatus::new(t.masked_url(), t.acks(), &metrics)))
        .collect();
    let ops = control::Ops::new(
        brokers.control(config.control.inspect_timeout()),
        &config.auth,
        redact::Redactor::new(&config.redact.redact_keys),
    );
    let mut ops = ops;
    // `start` has already refused OIDC settings that do not hold together.
    let oidc = config
        .oidc
        .settings()
        .ok()
        .flatten()
        .map(|s| Arc::new(oidc::Oidc::new(s)));
    ops.auth.sign_in = oidc.is_some();
    metrics::register(&metrics.registry, ops.pauses.gauge.clone());
    AppState {
        state: Arc::new(RwLock::new(State::new(
            config.state.limits(&config.metrics),
        ))),
        sources: sources.clone(),
        dashboard: Arc::new(
            ws::Hub::new(sources, DashboardTelemetry::new(&metrics))
                .hiding_args(config.redact.hide_args),
        ),
        metrics,
        last_event: Arc::default(),
        ops: Arc::new(ops),
        submit: Arc::new(submit::Submitter::new(
            brokers.publisher(),
            &config.submit,
            &hostname(),
        )),
        // `start` has already refused a URL the client cannot parse.
        results: Arc::new(
            results::Backend::from_args(&config.results).unwrap_or(results::Backend::None),
        ),
        broker: Arc::default(),
        alerting: Arc::new(alerting::Alerting::new(&config.alerting)),
        history,
        insight: Arc::new(insight::Insight::new(&config.insight)),
        series: Arc::default(),
        url_prefix: config.http.url_prefix.clone(),
        exporter: config.metrics.clone(),
        hide_args: config.redact.hide_args,
        // `start` has already refused an unreadable secret file.
        sessions: Arc::new(
            auth::Sessions::from_args(&config.session).unwrap_or_else(|_| {
                auth::Sessions::with_key(
                    auth::session::random_bytes(32),
                    config.session.session_ttl,
                )
            }),
        ),
        oidc,
        trust_proxy_headers: config.http.trust_proxy_headers,
    }
}

/// This machine's name, for the `origin` of the tasks celeriac publishes.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The application state as `start` would build it from these flags, for
/// unit tests of the modules that read it. No history store unless the
/// flags name one: unit tests keep nothing on disk.
#[cfg(test)]
pub(crate) fn test_app(flags: &[&str]) -> AppState {
    let memory_only = (!flags.contains(&"--db")).then_some(["--db", "none"]);
    let args = std::iter::once("celeriac")
        .chain(memory_only.into_iter().flatten())
        .chain(flags.iter().copied());
    let config = Config::load_from(args).expect("valid flags");
    let brokers =
        Brokers::from_urls(&config.ingest.broker, &config.redis).expect("valid broker URL");
    assemble(&config, &brokers)
}

/// Every consumer of the state's change feed, told in this order each tick.
/// A new consumer is one `feed::Subscriber` registered here.
fn subscribers(app: &AppState) -> Feed {
    let mut feed = Feed::default();
    feed.subscribe(ws::Dashboard(app.dashboard.clone()));
    feed.subscribe(insight::InsightFeed(app.insight.clone()));
    if let Some(history) = &app.history {
        feed.subscribe(history::writer::HistoryFeed {
            history: history.clone(),
            evicted_seen: app.state.read().evicted_tasks(),
        });
    }
    feed
}

/// Binds HTTP first (so the API answers even while the broker is down), then
/// starts the state owner, ingest and the HTTP server. Each task gets the
/// handles it uses.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let brokers = Brokers::from_urls(&config.ingest.broker, &config.redis).context("--broker")?;
    results::Backend::from_args(&config.results).map_err(anyhow::Error::msg)?;
    let sign_in = config.oidc.settings().map_err(anyhow::Error::msg)?;
    auth::Sessions::from_args(&config.session).map_err(anyhow::Error::msg)?;
    if let Some(s) = &sign_in {
        let path = s.redirect.url().path();
        let prefix = &config.http.url_prefix;
        if !prefix.is_empty() && !path.starts_with(&format!("{prefix}/")) {
            anyhow::bail!(
                "--oidc-redirect-url: the path {path} is outside --url-prefix {prefix}, where celeriac serves nothing"
            );
        }
        http::check_callback(path.strip_prefix(prefix.as_str()).unwrap_or(path))
            .map_err(anyhow::Error::msg)?;
    }
    let listen = config.http.listen();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let app = Arc::new(assemble(&config, &brokers));
    // Say loudly when nobody needs to log in.
    let auth = &app.ops.auth;
    if !auth.enabled() {
        tracing::warn!(
            address = %config.http.address,
            "NO AUTHENTICATION: no users or API tokens are configured (--basic-auth, --viewer, \
             --users, --api-token), so anyone who can reach {addr} can read task arguments and \
             results and control the workers"
        );
    } else {
        tracing::info!("authentication on: {}", auth.summary());
    }
    if let Some(oidc) = app.oidc.clone() {
        tracing::info!(
            issuer = %oidc.settings.issuer.as_str(),
            callback = oidc.callback_path(),
            "sign-in with OpenID Connect at {}/login; sessions last {:?}{}",
            app.url_prefix,
            app.sessions.ttl,
            if config.session.session_secret_file.is_none() {
                " and end when celeriac restarts (no --session-secret-file)"
            } else {
                ""
            }
        );
        // Discovery now, so a wrong issuer shows in the log at once; the
        // first sign-in retries it anyway.
        tokio::spawn(async move {
            if let Err(e) = oidc.warm_up().await {
                tracing::warn!("OpenID Connect: {e}");
            }
        });
    }
    if auth.read_only {
        tracing::info!("read-only mode: every control action is refused");
    }
    // An invalid rule file stops start-up.
    app.alerting
        .start(
            &app.metrics.registry,
            format!("http://{addr}{}/alerts", app.url_prefix),
        )
        .context("--alerts")?;
    // History goes back into memory before ingest starts, so the first
    // events merge into the loaded tasks.
    if let Some(h) = &app.history {
        open_history(h, &app).await?;
    }
    let (trigger, shutdown) = ShutdownTrigger::new();
    let (sender, receiver) = ingest::batch_channel(ingest::BATCH_CHANNEL_CAPACITY);
    let mut tasks = JoinSet::new();

    if let Some(h) = app.history.clone() {
        let (state, audit) = (app.state.clone(), app.ops.audit.clone());
        let sd = shutdown.clone();
        tasks.spawn(async move {
            history::writer::run(h, state, audit, sd).await;
            "history writer"
        });
    }

    let owner = owner::Owner {
        state: app.state.clone(),
        metrics: app.metrics.clone(),
        last_event: app.last_event.clone(),
        feed: subscribers(&app),
        redactor: redact::Redactor::new(&config.redact.redact_keys),
    };
    let sd = shutdown.clone();
    tasks.spawn(async move {
        owner.run(receiver, sd).await;
        "state owner"
    });

    // One event source per broker, each with its own reconnect loop and
    // status, all feeding the one state owner.
    for (t, source) in brokers.iter().zip(app.sources.iter()) {
        let (t, source, sender) = (t.clone(), source.clone(), sender.clone());
        let args = config.ingest.clone();
        let sd = shutdown.clone();
        tasks.spawn(async move {
            t.run_events(source, args, sender, sd).await;
            "ingest"
        });
    }
    drop(sender);

    // Queue depth from the management API or the AMQP fallback.
    let poller = broker::Poller {
        state: app.state.clone(),
        stats: app.broker.clone(),
        interval: Duration::from_secs(config.queue_stats.broker_stats_interval),
        only: config.queue_stats.queues.clone(),
    };
    let client = brokers.queue_stats(&config.queue_stats);
    let sd = shutdown.clone();
    tasks.spawn(async move {
        poller.run(client, sd).await;
        "broker stats"
    });

    // The charts' time series.
    let (series, state, broker, insight) = (
        app.series.clone(),
        app.state.clone(),
        app.broker.clone(),
        app.insight.clone(),
    );
    let sd = shutdown.clone();
    tasks.spawn(async move {
        series::run(series, state, broker, insight, sd).await;
        "chart series"
    });

    // statsd output (idle without --statsd).
    let statsd = metrics::statsd::Statsd {
        state: app.state.clone(),
        broker: app.broker.clone(),
        args: config.metrics.clone(),
    };
    let sd = shutdown.clone();
    tasks.spawn(async move {
        statsd.run(sd).await;
        "statsd"
    });

    // Periodic inspect refresh for /api/workers.
    if config.control.inspect_interval > 0 {
        let (ops, state, broker) = (app.ops.clone(), app.state.clone(), app.broker.clone());
        let sd = shutdown.clone();
        let every = Duration::from_secs(config.control.inspect_interval);
        tasks.spawn(async move {
            control::run_inspect_refresh(ops, state, broker, every, sd).await;
            "inspect refresh"
        });
    }

    // Re-applies queue pauses to workers that consume a paused queue again.
    let ops = app.ops.clone();
    let sd = shutdown.clone();
    tasks.spawn(async move {
        control::pause::run_keeper(ops, sd).await;
        "queue pause keeper"
    });

    // The alert evaluation loop and SIGHUP reload.
    let (a, watched) = (app.alerting.clone(), app.watched());
    let sd = shutdown.clone();
    tasks.spawn(async move {
        alerting::run(a, watched, sd).await;
        "alert evaluation"
    });

    let router = http::router(app.clone());
    let mut sd = shutdown;
    tasks.spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move { sd.fired().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server failed");
        }
        "HTTP server"
    });

    Ok(Running {
        addr,
        app,
        trigger,
        tasks,
    })
}

/// Opens the history store and loads it into memory. A store that cannot
/// work as configured (a file that cannot be created, a schema from a
/// newer celeriac) stops start-up; a server that does not answer yet does
/// not: the writer keeps trying, and loads it when it comes.
async fn open_history(h: &Arc<history::History>, app: &AppState) -> anyhow::Result<()> {
    use history::StoreError;
    tracing::info!(store = %h.target.describe(), "history store");
    let sink = h.clone();
    app.ops
        .audit
        .set_sink(Box::new(move |entry| sink.record_audit(entry)));
    let opened = tokio::time::timeout(history::store::STATEMENT_TIMEOUT * 2, h.open()).await;
    let store = match opened {
        Ok(Ok(store)) => store,
        Ok(Err(e @ (StoreError::Sql { .. } | StoreError::Timeout(_))))
            if matches!(h.target, history::Target::Postgres(_)) =>
        {
            tracing::warn!(error = %e, "history store unavailable at start-up; will keep trying");
            return Ok(());
        }
        Ok(Err(e)) => return Err(e).context("--db"),
        Err(_) => {
            tracing::warn!("history store did not answer at start-up; will keep trying");
            return Ok(());
        }
    };
    h.load(&store, &app.state, &app.ops.audit)
        .await
        .context("loading history")?;
    Ok(())
}

/// The whole program after configuration: logs to stderr, the listening
/// line to stdout, and a graceful stop on SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    init_tracing(&config.log, config.log_format)?;
    let running = start(config).await?;
    let url = running.url();
    {
        // Scripts and integration tests wait for this exact line.
        let mut out = std::io::stdout().lock();
        writeln!(out, "celeriac listening on {url}").context("writing to stdout")?;
        out.flush().context("writing to stdout")?;
    }
    let brokers: Vec<&str> = running.app.sources.iter().map(|s| s.name()).collect();
    tracing::info!(
        broker = %brokers.join(", "),
        "celeriac {} listening on {url}",
        env!("CARGO_PKG_VERSION")
    );
    running.serve_until(termination()).await
}

fn init_tracing(filter: &str, format: config::LogFormat) -> anyhow::Result<()> {
    // lapin logs every channel the broker closes at ERROR, including the
    // expected 404 of a passive declare; ingest reports the failures that
    // matter itself, with the broker's reason. `--log lapin=debug` brings
    // lapin's own lines back.
    let directives = if filter.contains("lapin") {
        filter.to_string()
    } else {
        format!("{filter},lapin=off")
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .with_context(|| format!("--log: invalid filter `{filter}`"))?;
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    // Colour codes are for people at a terminal; in a file or a log
    // shipper they are noise. Already installed (several runs in one test
    // process) is fine.
    let _ = match format {
        config::LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        config::LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
    Ok(())
}

/// Resolves on the first SIGINT or SIGTERM.
async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops celeriac");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down");
}
