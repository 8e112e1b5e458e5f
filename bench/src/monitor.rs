//! The monitors under test, celeriac and Flower, as child processes: start,
//! wait until ready, read their counters from `/metrics`, time their API.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use reqwest::Client;

use crate::procs::{free_port, Managed};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Celeriac,
    Flower,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Celeriac => "celeriac",
            Kind::Flower => "Flower",
        }
    }
}

/// A counter or gauge the bench watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Events the monitor applied to its state.
    Events,
    /// Tasks it holds (celeriac's gauge; for Flower the `task-sent` events it
    /// counted, one per task).
    Tasks,
}

pub struct Monitor {
    pub kind: Kind,
    pub process: Managed,
    pub base: String,
    http: Client,
}

/// A counter that stopped moving, and when it last moved.
#[derive(Clone, Copy, Debug)]
pub struct Settled {
    pub value: u64,
    /// When the value was first seen at its final level.
    pub at: Instant,
    /// The monitor's CPU time read at `at`.
    pub cpu: Duration,
    /// True when the target was reached (not merely a stall).
    pub reached: bool,
}

impl Monitor {
    /// Starts celeriac against `broker` and waits for its
    /// `celeriac listening on http://IP:PORT` line. Memory only (`--db
    /// none`) unless `args` name a history store.
    pub async fn start_celeriac(
        binary: &Path,
        broker: &str,
        args: &[String],
        log: &Path,
    ) -> Result<Monitor> {
        Monitor::start_celeriac_within(binary, broker, args, log, Duration::from_secs(60)).await
    }

    /// [`Monitor::start_celeriac`], waiting up to `timeout` for the line (a
    /// store to load delays it).
    pub async fn start_celeriac_within(
        binary: &Path,
        broker: &str,
        args: &[String],
        log: &Path,
        timeout: Duration,
    ) -> Result<Monitor> {
        if !binary.exists() {
            bail!(
                "{} does not exist (cargo build --release -p celeriac, or pass --celeriac)",
                binary.display()
            );
        }
        let mut command = Command::new(binary);
        command.arg("--broker").arg(broker).args(["--port", "0"]);
        if !names_a_store(args) {
            // History is on by default; the figures are memory-only unless
            // a scenario asks for a store, and nothing lands in $HOME.
            command.args(["--db", "none"]);
        }
        command.args(args);
        let mut process = Managed::spawn("celeriac", command, log)?;
        let base = process
            .wait_for_line(timeout, |line| {
                line.trim()
                    .strip_prefix("celeriac listening on ")
                    .map(|u| u.trim_end_matches('/').to_owned())
            })
            .await?;
        Ok(Monitor {
            kind: Kind::Celeriac,
            process,
            base,
            http: http_client()?,
        })
    }

    /// Starts Flower 2.2 (`python -m celery ... flower`) and waits for its
    /// health check to answer.
    pub async fn start_flower(
        python: &str,
        broker: &str,
        args: &[String],
        log: &Path,
    ) -> Result<Monitor> {
        let port = free_port()?;
        let mut command = Command::new(python);
        command
            .args(["-m", "celery", "--broker", broker, "flower"])
            .arg(format!("--port={port}"))
            .arg("--address=127.0.0.1")
            .args(args)
            .env("FLOWER_UNAUTHENTICATED_API", "1");
        let mut process = Managed::spawn("Flower", command, log)?;
        let base = format!("http://127.0.0.1:{port}");
        let http = http_client()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            process.ensure_running()?;
            let ok = http
                .get(format!("{base}/healthcheck"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "Flower did not answer /healthcheck within 60 s; see {}",
                    process.log().display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(Monitor {
            kind: Kind::Flower,
            process,
            base,
            http,
        })
    }

    pub fn cpu_time(&self) -> Result<Duration> {
        self.process.cpu_time()
    }

    pub fn rss_bytes(&self) -> Result<u64> {
        self.process.rss_bytes()
    }

    pub async fn metrics(&self) -> Result<String> {
        let url = format!("{}/metrics", self.base);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        if !response.status().is_success() {
            bail!("GET {url}: {}", response.status());
        }
        response
            .text()
            .await
            .with_context(|| format!("reading {url}"))
    }

    pub async fn read(&self, counter: Counter) -> Result<u64> {
        let text = self.metrics().await?;
        let value = match (self.kind, counter) {
            (Kind::Celeriac, Counter::Events) => {
                metric_sum(&text, "celeriac_events_ingested_total", None)
            }
            (Kind::Celeriac, Counter::Tasks) => metric_sum(&text, "celeriac_tasks_retained", None),
            // Flower has no series until its first event.
            (Kind::Flower, Counter::Events) => {
                Some(metric_sum(&text, "flower_events_total", None).unwrap_or(0.0))
            }
            (Kind::Flower, Counter::Tasks) => Some(
                metric_sum(&text, "flower_events_total", Some(r#"type="task-sent""#))
                    .unwrap_or(0.0),
            ),
        };
        let value = value
            .with_context(|| format!("{} /metrics has no {counter:?} counter", self.kind.name()))?;
        Ok(value.max(0.0) as u64)
    }

    /// Polls `counter` every `poll` until it reaches `target`, or has not moved
    /// for `quiet`, or `timeout` passes.
    pub async fn wait_settled(
        &mut self,
        counter: Counter,
        target: Option<u64>,
        poll: Duration,
        quiet: Duration,
        timeout: Duration,
    ) -> Result<Settled> {
        let start = Instant::now();
        let mut last = Settled {
            value: self.read(counter).await?,
            at: Instant::now(),
            cpu: self.cpu_time()?,
            reached: false,
        };
        loop {
            if target.is_some_and(|t| last.value >= t) {
                last.reached = true;
                return Ok(last);
            }
            if last.at.elapsed() >= quiet || start.elapsed() >= timeout {
                return Ok(last);
            }
            tokio::time::sleep(poll).await;
            self.process.ensure_running()?;
            let value = self.read(counter).await?;
            if value != last.value {
                last = Settled {
                    value,
                    at: Instant::now(),
                    cpu: self.cpu_time()?,
                    reached: false,
                };
            }
        }
    }

    /// The history writer's gauges (celeriac with a store only).
    pub async fn history(&self) -> Result<HistoryGauges> {
        let text = self.metrics().await?;
        let read = |name: &str| {
            metric_sum(&text, name, None)
                .map(|v| v.max(0.0) as u64)
                .with_context(|| format!("celeriac /metrics has no {name} (history off?)"))
        };
        Ok(HistoryGauges {
            backlog: read("celeriac_history_backlog")?,
            written: read("celeriac_history_written_total")?,
            write_errors: read("celeriac_history_write_errors_total")?,
            dropped: read("celeriac_history_dropped_total")?,
        })
    }

    /// Median time of `GET /api/tasks?limit=100` over `n` requests, and the
    /// size of the last body.
    pub async fn tasks_api_median(&self, n: usize) -> Result<(Duration, usize)> {
        let (times, body) = self.get_timed("/api/tasks?limit=100", n).await?;
        Ok((median(times), body.len()))
    }

    /// `GET {path}` `n` times (at least once): each request's time to the
    /// last byte of the body, in order, and the last body.
    pub async fn get_timed(&self, path: &str, n: usize) -> Result<(Vec<Duration>, Vec<u8>)> {
        let url = format!("{}{path}", self.base);
        let mut times = Vec::with_capacity(n);
        let mut last = Vec::new();
        for _ in 0..n.max(1) {
            let start = Instant::now();
            let response = self
                .http
                .get(&url)
                .send()
                .await
                .with_context(|| format!("GET {url}"))?;
            let status = response.status();
            let body = response
                .bytes()
                .await
                .with_context(|| format!("reading {url}"))?;
            times.push(start.elapsed());
            if !status.is_success() {
                bail!("GET {url}: {status}");
            }
            last = body.to_vec();
        }
        Ok((times, last))
    }
}

/// The history writer's progress, from celeriac's /metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistoryGauges {
    /// Tasks waiting to be written, the batch in flight included.
    pub backlog: u64,
    /// Task records written so far.
    pub written: u64,
    pub write_errors: u64,
    pub dropped: u64,
}

/// The median of `times` (of an even count, the upper middle).
pub fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// Whether celeriac's arguments choose a history store (`--db X` or
/// `--db=X`, not `--db-backlog`).
fn names_a_store(args: &[String]) -> bool {
    args.iter().any(|a| a == "--db" || a.starts_with("--db="))
}

fn http_client() -> Result<Client> {
    // Flower answers /api/tasks over 100k tasks in seconds; be patient.
    Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .context("building the HTTP client")
}

/// Sum of every sample of metric `name` (all label sets) in Prometheus text,
/// optionally only those whose labels contain `label`. `None` if there is no
/// such sample.
pub fn metric_sum(text: &str, name: &str, label: Option<&str>) -> Option<f64> {
    let mut sum = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (labels, value) = if let Some(body) = rest.strip_prefix('{') {
            let Some(end) = body.rfind('}') else { continue };
            (&body[..end], &body[end + 1..])
        } else if rest.starts_with(' ') {
            ("", rest)
        } else {
            // Another metric sharing the prefix (e.g. `_created`).
            continue;
        };
        if label.is_some_and(|l| !labels.contains(l)) {
            continue;
        }
        let Some(v) = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        else {
            continue;
        };
        sum = Some(sum.unwrap_or(0.0) + v);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOWER: &str = r#"# HELP flower_events_total Number of events
# TYPE flower_events_total counter
flower_events_total{task="tasks.add",type="task-sent",worker="gen1@bench"} 10.0
flower_events_total{task="tasks.add",type="task-received",worker="w1@bench"} 9.0
flower_events_total{task="",type="worker-heartbeat",worker="w1@bench"} 3.0
flower_events_created{task="tasks.add",type="task-sent",worker="gen1@bench"} 1.7954e+09
"#;

    #[test]
    fn sums_all_label_sets_but_not_created() {
        assert_eq!(metric_sum(FLOWER, "flower_events_total", None), Some(22.0));
        assert_eq!(
            metric_sum(FLOWER, "flower_events_total", Some(r#"type="task-sent""#)),
            Some(10.0)
        );
        assert_eq!(metric_sum(FLOWER, "flower_nope", None), None);
    }

    #[test]
    fn a_store_is_named_by_db_alone() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(names_a_store(&args(&["--max-tasks", "5", "--db", "none"])));
        assert!(names_a_store(&args(&["--db=sqlite:/tmp/h.db"])));
        assert!(!names_a_store(&args(&["--db-backlog", "10"])));
        assert!(!names_a_store(&args(&[])));
    }

    #[test]
    fn reads_unlabelled_samples() {
        let text = "# TYPE celeriac_events_ingested_total counter\nceliac 1\ncelerac_x 2\nceleriac_events_ingested_total 1234\nceleriac_events_ingested_total_x 5\n";
        assert_eq!(
            metric_sum(text, "celeriac_events_ingested_total", None),
            Some(1234.0)
        );
    }
}
