//! The built-in alert engine in the server: loads the rule file
//! (`--alerts`), evaluates it on a fixed interval against the live state,
//! hands notifications to the dispatcher, reloads on SIGHUP or
//! `POST /api/alerts/reload`, and exports its own metrics.
//!
//! The rules, states and windows live in the `alerts` crate; this module
//! only feeds it and keeps the loaded file.

mod args;
mod inputs;
mod metrics;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alerts::notify::{DispatchOptions, Dispatcher};
use alerts::rules::Kind;
use alerts::{Engine, RuleSet};
use api::alerts::AlertsResponse;
use parking_lot::Mutex;

use crate::clock;
use crate::shutdown::Shutdown;

pub use args::AlertingArgs;
pub use inputs::{gather, Watched};

/// Default seconds between two evaluations (`--alerts-interval`).
pub const DEFAULT_INTERVAL_SECS: u64 = 5;

/// The alerting side of [`AppState`]: off without `--alerts`.
pub struct Alerting {
    inner: Arc<Inner>,
    file: Option<PathBuf>,
    interval: Duration,
    /// When this celeriac started: counters are zero then.
    started_at: f64,
    metrics: metrics::Metrics,
}

/// What the metrics collector also reads.
struct Inner {
    loaded: Mutex<Option<Loaded>>,
}

struct Loaded {
    engine: Engine,
    /// Rebuilt with every successful reload; the old one drains and drops.
    dispatcher: Dispatcher,
    loaded_at: f64,
    evaluated_at: Option<f64>,
    reload_error: Option<String>,
}

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("alerting is off: start celeriac with --alerts FILE")]
    Disabled,
    #[error(transparent)]
    Invalid(#[from] alerts::LoadError),
}

impl Alerting {
    pub fn new(args: &AlertingArgs) -> Alerting {
        let inner = Arc::new(Inner {
            loaded: Mutex::new(None),
        });
        Alerting {
            metrics: metrics::Metrics::new(inner.clone()),
            inner,
            file: args.alerts.clone(),
            interval: Duration::from_secs_f64(args.alerts_interval.max(0.05)),
            started_at: clock::now(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.file.is_some()
    }

    /// Reads the rule file at start-up; an invalid file stops celeriac.
    /// Needs a tokio runtime (the dispatcher spawns a task per notifier).
    pub fn start(
        &self,
        registry: &prometheus::Registry,
        generator_url: String,
    ) -> anyhow::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let set = alerts::load_file(file)?;
        tracing::info!(
            file = %file.display(),
            rules = set.rules.len(),
            notifiers = set.notifiers.len(),
            "alert rules loaded; evaluating every {:?}",
            self.interval
        );
        let dispatcher = Dispatcher::new(&set.notifiers, DispatchOptions::default());
        *self.inner.loaded.lock() = Some(Loaded {
            engine: Engine::new(set, self.started_at, Some(generator_url)),
            dispatcher,
            loaded_at: clock::now(),
            evaluated_at: None,
            reload_error: None,
        });
        self.metrics.register(registry)
    }

    /// Re-reads the rule file. On error the previous rules stay in force and
    /// the error shows in `GET /api/alerts`.
    pub fn reload(&self) -> Result<usize, ReloadError> {
        let file = self.file.as_ref().ok_or(ReloadError::Disabled)?;
        let result = alerts::load_file(file);
        let mut guard = self.inner.loaded.lock();
        let loaded = guard.as_mut().ok_or(ReloadError::Disabled)?;
        match result {
            Ok(set) => {
                let n = set.rules.len();
                let notifiers = (set.notifiers != loaded.engine.rule_set().notifiers)
                    .then(|| set.notifiers.clone());
                // Resolves of removed rules go out through the notifiers
                // they were configured with, before those change.
                for o in loaded.engine.replace_rules(set, clock::now()) {
                    loaded.dispatcher.send(&o.notifier, o.notification);
                }
                // Unchanged notifiers keep their queue, counters and the
                // alerts they keep alive in Alertmanager; only changed ones
                // restart.
                if let Some(notifiers) = notifiers {
                    loaded.dispatcher.reconfigure(&notifiers);
                }
                loaded.loaded_at = clock::now();
                loaded.reload_error = None;
                tracing::info!(file = %file.display(), rules = n, "alert rules reloaded");
                Ok(n)
            }
            Err(e) => {
                tracing::error!("alert rules not reloaded, keeping the previous ones: {e}");
                loaded.reload_error = Some(e.to_string());
                Err(e.into())
            }
        }
    }

    /// One evaluation now: gathers the inputs, runs every rule, queues the
    /// notifications. Returns how many were queued.
    pub fn evaluate(&self, shared: &Watched) -> usize {
        let started = Instant::now();
        let with_started = {
            let guard = self.inner.loaded.lock();
            let Some(l) = guard.as_ref() else { return 0 };
            l.engine
                .rules()
                .iter()
                .any(|r| r.kind == Kind::TaskStuckStarted)
        };
        let now = clock::now();
        let inputs = gather(shared, now, self.started_at, with_started);
        let mut guard = self.inner.loaded.lock();
        let Some(l) = guard.as_mut() else { return 0 };
        let out = l.engine.evaluate(&inputs);
        l.evaluated_at = Some(now);
        let n = out.len();
        for o in out {
            tracing::info!(
                rule = %o.notification.rule,
                status = o.notification.status.as_str(),
                notifier = %o.notifier,
                labels = ?o.notification.labels,
                "alert notification"
            );
            l.dispatcher.send(&o.notifier, o.notification);
        }
        drop(guard);
        self.metrics
            .evaluation
            .observe(started.elapsed().as_secs_f64());
        n
    }

    /// The rule file (`--alerts`), if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// `GET /api/alerts`.
    pub fn response(&self) -> AlertsResponse {
        let mut r = AlertsResponse {
            enabled: self.enabled(),
            file: self.file.as_ref().map(|f| f.display().to_string()),
            eval_interval_secs: self.interval.as_secs_f64(),
            ..AlertsResponse::default()
        };
        if let Some(l) = self.inner.loaded.lock().as_ref() {
            r.loaded_at = Some(l.loaded_at);
            r.evaluated_at = l.evaluated_at;
            r.reload_error = l.reload_error.clone();
            r.rules = l.engine.status();
            r.notifiers = l.dispatcher.stats();
        }
        r
    }
}

/// The evaluation loop (and the SIGHUP listener); idles until shutdown when
/// alerting is off.
pub async fn run(alerting: Arc<Alerting>, watched: Watched, mut shutdown: Shutdown) {
    if !alerting.enabled() {
        shutdown.fired().await;
        return;
    }
    let mut hangup = hangup_signal();
    let mut tick = tokio::time::interval(alerting.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.fired() => return,
            _ = tick.tick() => {
                let (a, w) = (alerting.clone(), watched.clone());
                // Gathering takes the state read lock and may scan tasks:
                // keep it off the async workers.
                if let Err(e) = tokio::task::spawn_blocking(move || a.evaluate(&w)).await {
                    tracing::error!("alert evaluation failed: {e}");
                }
            }
            Some(()) = recv(&mut hangup) => {
                tracing::info!("SIGHUP: reloading alert rules");
                let _ = alerting.reload();
            }
        }
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGHUP; reload with POST /api/alerts/reload");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {
    None
}

async fn recv(h: &mut Hangup) -> Option<()> {
    #[cfg(unix)]
    if let Some(s) = h {
        return s.recv().await;
    }
    let _ = h;
    std::future::pending().await
}

/// `celeriac check-alerts FILE...`: validates rule files without starting.
/// Prints `FILE:LINE: problem` and exits 1 on the first bad file.
pub fn check_command(args: &[String]) -> ExitCode {
    if args.is_empty() || args.iter().any(|a| a == "-h" || a == "--help") {
        eprintln!("usage: celeriac check-alerts FILE...\n\nValidates alert rule files (see alerts/README.md) without starting celeriac.");
        return if args.is_empty() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let mut ok = true;
    for file in args {
        match check_file(Path::new(file)) {
            Ok(set) => println!(
                "{file}: OK ({}, {})",
                counted(set.rules.len(), "rule"),
                counted(set.notifiers.len(), "notifier")
            ),
            Err(e) => {
                eprintln!("{e}");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

pub fn check_file(path: &Path) -> Result<RuleSet, alerts::LoadError> {
    alerts::load_file(path)
}

/// `--alerts-interval`: `5`, `0.5` (seconds) or `500ms`, `10s`.
pub fn parse_interval(s: &str) -> Result<f64, String> {
    let secs = match s.trim().parse::<f64>() {
        Ok(v) => v,
        Err(_) => alerts::rules::parse_duration(s)?.0,
    };
    if secs.is_finite() && secs >= 0.05 {
        Ok(secs)
    } else {
        Err(format!("`{s}` is too short: at least 50ms"))
    }
}

/// `1 rule`, `2 rules`.
fn counted(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_takes_seconds_or_a_duration() {
        assert_eq!(parse_interval("5").unwrap(), 5.0);
        assert_eq!(parse_interval("0.5").unwrap(), 0.5);
        assert_eq!(parse_interval("500ms").unwrap(), 0.5);
        assert_eq!(parse_interval("1m").unwrap(), 60.0);
        assert!(parse_interval("0").unwrap_err().contains("too short"));
        assert!(parse_interval("5x").unwrap_err().contains("bad duration"));
    }

    /// `gather` reads what the rules need from a state fed with captured
    /// events, and the engine fires on it.
    #[test]
    fn gathered_inputs_drive_the_engine() {
        use crate::events::fixtures;
        let shared = crate::test_app(&[]);
        let now = clock::now();
        {
            let mut state = shared.state.write();
            for name in ["online", "failure", "offline"] {
                for body in fixtures::scenario(name) {
                    for event in fixtures::decode(&body) {
                        state.apply(&event, now);
                    }
                }
            }
        }
        let inputs = gather(&shared.watched(), now + 1.0, now - 10.0, true);
        let fail = inputs
            .series
            .iter()
            .find(|s| s.task == "tasks.fail")
            .expect("the failing task's series");
        assert_eq!((fail.succeeded, fail.failed), (0, 1));
        let w3 = inputs
            .workers
            .iter()
            .find(|w| w.hostname == "w3@vm")
            .expect("w3");
        assert!(w3.offline_since.is_some(), "worker-offline was received");
        assert!(inputs.queues.is_none(), "no queue statistics polled yet");

        let set = alerts::parse(
            "t.yaml",
            "rules:\n  - name: F\n    kind: task_failure_rate\n    above: 50%\n    min_tasks: 1\n  - name: W\n    kind: worker_offline\n    worker: \"w3@*\"\n",
        )
        .unwrap();
        let mut engine = Engine::new(set, now - 10.0, None);
        engine.evaluate(&inputs);
        let status = engine.status();
        assert_eq!(
            status[0].state,
            api::alerts::AlertState::Firing,
            "{status:?}"
        );
        assert_eq!(status[0].instances[0].labels["task"], "tasks.fail");
        assert_eq!(
            status[1].state,
            api::alerts::AlertState::Firing,
            "{status:?}"
        );
    }

    #[test]
    fn alerting_is_off_without_a_file() {
        let a = Alerting::new(&crate::test_args::parse::<AlertingArgs>(&[]));
        assert!(!a.enabled());
        let r = a.response();
        assert!(!r.enabled && r.rules.is_empty());
        assert_eq!(r.eval_interval_secs, 5.0);
        assert!(matches!(a.reload(), Err(ReloadError::Disabled)));
    }
}
