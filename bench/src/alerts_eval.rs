//! Scenario `alerts`: how long the alert engine takes to evaluate 500 rules
//! against a synthetic live state of realistic size (the goal is < 10 ms per
//! evaluation). In-process: no broker, no celeriac binary.

use std::fmt::Write;
use std::time::{Duration, Instant};

use alerts::inputs::{
    EventCounters, Hist, Inputs, QueueInput, SeriesInput, StartedTask, WorkerInput,
};
use alerts::Engine;

pub const RULES: usize = 500;
const QUEUES: usize = 200;
const TASK_NAMES: usize = 100;
const QUEUES_PER_TASK: usize = 5;
const WORKERS: usize = 100;
const STARTED: usize = 2_000;
/// Evaluations before timing, so windows have a full history (5 s apart
/// over a 5 min window: 60 samples).
const WARMUP: usize = 70;
const TIMED: usize = 200;

pub struct AlertsEvalResult {
    pub rules: usize,
    pub series: usize,
    pub median: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// 500 rules cycling through every kind, with globs as users write them.
fn rule_file() -> String {
    let mut s = String::from(
        "notifiers:\n  - name: ops\n    webhook: {url: \"http://127.0.0.1:9/\"}\nrules:\n",
    );
    let kinds = [
        "    kind: queue_length\n    queue: \"q{i}*\"\n    above: 1000\n    for: 5m\n",
        "    kind: queue_wait_p95\n    queue: \"q*\"\n    above: 1m\n    window: 5m\n",
        "    kind: task_failure_rate\n    task: \"proj.tasks.t{i}*\"\n    above: 10%\n    min_tasks: 20\n    window: 5m\n",
        "    kind: task_runtime_p95\n    task: \"proj.*\"\n    above: 30s\n    window: 5m\n",
        "    kind: task_stuck_started\n    older_than: 1h\n",
        "    kind: worker_offline\n    worker: \"w{i}*\"\n    above: 1m\n",
        "    kind: queue_unconsumed\n    for: 2m\n",
        "    kind: workers_online\n    below: 10\n",
        "    kind: no_events\n    above: 10m\n",
        "    kind: malformed_rate\n    above: 1%\n",
        "    kind: events_lost\n",
    ];
    for i in 0..RULES {
        let body = kinds[i % kinds.len()].replace("{i}", &(i % 10).to_string());
        let _ = write!(
            s,
            "  - name: R{i}\n{body}    annotations: {{summary: \"{{{{ $labels.queue }}}} {{{{ $value }}}}\"}}\n"
        );
    }
    s
}

fn inputs(step: usize) -> Inputs {
    let now = 1_700_000_000.0 + step as f64 * 5.0;
    let k = step as u64;
    let hist = |n: u64| Hist {
        cumulative: (1..=14).map(|b| n * b / 14).collect(),
        count: n,
    };
    Inputs {
        now,
        started_at: 1_700_000_000.0,
        queues: Some(
            (0..QUEUES)
                .map(|q| QueueInput {
                    name: format!("q{q}"),
                    ready: (q as u64 * 7 + k) % 2_000,
                    consumers: Some((q % 3) as u64),
                })
                .collect(),
        ),
        series: (0..TASK_NAMES * QUEUES_PER_TASK)
            .map(|i| SeriesInput {
                task: format!("proj.tasks.t{}", i / QUEUES_PER_TASK),
                queue: format!("q{}", i % QUEUES),
                succeeded: k * 50 + i as u64,
                failed: k * (i as u64 % 7),
                lost: 0,
                runtime: hist(k * 50),
                queue_wait: hist(k * 50),
            })
            .collect(),
        runtime_bounds: vec![
            0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
        ],
        queue_wait_bounds: vec![
            0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
        ],
        started: (0..STARTED)
            .map(|i| StartedTask {
                name: format!("proj.tasks.t{}", i % TASK_NAMES),
                worker: format!("w{}@host", i % WORKERS),
                started_at: now - (i as f64 * 3.0),
            })
            .collect(),
        workers: (0..WORKERS)
            .map(|w| WorkerInput {
                hostname: format!("w{w}@host"),
                offline_since: (w % 17 == 0).then_some(now - 120.0),
            })
            .collect(),
        last_event_at: Some(now - 1.0),
        events: EventCounters {
            ingested: k * 10_000,
            malformed: k * 3,
            dropped: k / 10,
        },
        failure_groups: Vec::new(),
        queue_latency: Vec::new(),
    }
}

pub fn run() -> anyhow::Result<AlertsEvalResult> {
    let set = alerts::parse("bench-rules.yaml", &rule_file())?;
    let rules = set.rules.len();
    let mut engine = Engine::new(set, 1_700_000_000.0, None);
    // Inputs are built outside the timed section: the server builds them
    // under the state lock, which is a separate cost.
    let all: Vec<Inputs> = (0..WARMUP + TIMED).map(inputs).collect();
    let mut times = Vec::with_capacity(TIMED);
    for (i, input) in all.iter().enumerate() {
        let t = Instant::now();
        let out = engine.evaluate(input);
        let elapsed = t.elapsed();
        std::hint::black_box(out);
        if i >= WARMUP {
            times.push(elapsed);
        }
    }
    times.sort();
    Ok(AlertsEvalResult {
        rules,
        series: all[0].series.len(),
        median: times[times.len() / 2],
        p99: times[times.len() * 99 / 100],
        max: *times.last().expect("timed runs"),
    })
}

pub fn render(r: &AlertsEvalResult) -> String {
    format!(
        "\nalert engine: {} rules over {QUEUES} queues, {} task series, {WORKERS} workers, {STARTED} started tasks\n\
         evaluation: median {:.2} ms, p99 {:.2} ms, max {:.2} ms (goal < 10 ms)\n",
        r.rules,
        r.series,
        r.median.as_secs_f64() * 1e3,
        r.p99.as_secs_f64() * 1e3,
        r.max.as_secs_f64() * 1e3,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_rule_file_is_valid_and_covers_every_kind() {
        let set = alerts::parse("bench", &super::rule_file()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(set.rules.len(), super::RULES);
        let kinds: std::collections::HashSet<_> = set.rules.iter().map(|r| r.kind).collect();
        assert_eq!(kinds.len(), 11);
    }
}
