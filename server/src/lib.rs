//! celeriac: a monitor for Celery clusters. See docs/ARCHITECTURE.md.

pub mod alerting; // alerting (issue 6)
pub mod audit; // control/auth (issue 5)
pub mod auth; // control/auth (issue 5)
pub mod broker;
pub mod config;
pub mod control; // control/auth (issue 5)
pub mod events;
pub mod feed;
pub mod http;
pub mod ingest;
pub mod mask;
pub mod metrics;
pub mod owner;
pub mod query;
pub mod shared;
pub mod state;
pub mod ws; // dashboard: the /ws live feed

#[cfg(test)]
pub(crate) mod test_args;

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinSet;

use crate::config::Config;
use crate::shared::{Shared, Shutdown, ShutdownTrigger};

/// How long running tasks get to finish after shutdown is requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A started celeriac: HTTP bound and served, ingest and the state owner
/// running.
pub struct Running {
    /// Where HTTP is served (the real port when `--port 0`).
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    trigger: ShutdownTrigger,
    tasks: JoinSet<&'static str>,
}

impl Running {
    /// The root URL, as printed at start-up.
    pub fn url(&self) -> String {
        format!(
            "http://{}{}/",
            self.addr, self.shared.config.http.url_prefix
        )
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

/// Binds HTTP first (so the API answers even while the broker is down), then
/// starts the state owner, ingest and the HTTP server.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let uri = ingest::parse_broker_url(&config.ingest.broker).context("--broker")?;
    let listen = config.http.listen();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let shared = Arc::new(Shared::new(config));
    // control/auth (issue 5): say loudly when nobody needs to log in.
    let auth = &shared.ops.auth;
    if !auth.enabled() {
        tracing::warn!(
            address = %shared.config.http.address,
            "NO AUTHENTICATION: no users or API tokens are configured (--basic-auth, --viewer, \
             --users, --api-token), so anyone who can reach {addr} can read task arguments and \
             results and control the workers"
        );
    } else {
        tracing::info!("authentication on: {}", auth.summary());
    }
    if auth.read_only {
        tracing::info!("read-only mode: every control action is refused");
    }
    // alerting (issue 6): an invalid rule file stops start-up.
    shared
        .alerting
        .start(
            &shared.metrics.registry,
            format!("http://{addr}{}/alerts", shared.config.http.url_prefix),
        )
        .context("--alerts")?;
    let (trigger, shutdown) = ShutdownTrigger::new();
    let (sender, receiver) = ingest::batch_channel(ingest::BATCH_CHANNEL_CAPACITY);
    let mut tasks = JoinSet::new();

    let s = shared.clone();
    let sd = shutdown.clone();
    tasks.spawn(async move {
        owner::run(s, receiver, sd).await;
        "state owner"
    });

    let s = shared.clone();
    let sd = shutdown.clone();
    tasks.spawn(async move {
        ingest::run(s, uri, sender, sd).await;
        "ingest"
    });

    // Broker stats: queue depth from the management API or the AMQP fallback.
    let s = shared.clone();
    let sd = shutdown.clone();
    tasks.spawn(async move {
        broker::run(s, sd).await;
        "broker stats"
    });
    // Metrics: statsd output (idle without --statsd).
    let s = shared.clone();
    let sd = shutdown.clone();
    tasks.spawn(async move {
        metrics::statsd::run(s, sd).await;
        "statsd"
    });

    // control/auth (issue 5): periodic inspect refresh for /api/workers.
    if shared.config.control.inspect_interval > 0 {
        let s = shared.clone();
        let sd = shutdown.clone();
        let every = Duration::from_secs(shared.config.control.inspect_interval);
        tasks.spawn(async move {
            control::run_inspect_refresh(s, every, sd).await;
            "inspect refresh"
        });
    }

    // alerting (issue 6): the evaluation loop and SIGHUP reload.
    let s = shared.clone();
    let sd = shutdown.clone();
    tasks.spawn(async move {
        alerting::run(s, sd).await;
        "alert evaluation"
    });

    let router = http::router(shared.clone());
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
        shared,
        trigger,
        tasks,
    })
}

/// The whole program after configuration: logs to stderr, the listening
/// line to stdout, and a graceful stop on SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    init_tracing(&config.log)?;
    let running = start(config).await?;
    let url = running.url();
    {
        // Scripts and integration tests wait for this exact line.
        let mut out = std::io::stdout().lock();
        writeln!(out, "celeriac listening on {url}").context("writing to stdout")?;
        out.flush().context("writing to stdout")?;
    }
    tracing::info!(
        broker = %running.shared.config.ingest.broker_masked(),
        "celeriac {} listening on {url}",
        env!("CARGO_PKG_VERSION")
    );
    running.serve_until(termination()).await
}

fn init_tracing(filter: &str) -> anyhow::Result<()> {
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
    // Already installed (several runs in one test process) is fine.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .try_init();
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
